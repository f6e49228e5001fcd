//! The request target as the origin will read it: the normal forms of the host and the path
//! that every routing decision is made on, and that the origin receives. Pure functions, below
//! the configuration and the gateway, which both use them.

mod host;
mod path;

pub use host::normalise_host;
pub use path::{PathError, normalise as normalise_path};
