//! The origin's address, whatever the request's authority says. An HTTP/2 origin reads the site's
//! host from `:authority` (nginx refuses a `Host` header beside a different one), so requests to
//! an `h2` or `auto` room carry the site's host as their authority; this connector still dials
//! the room's origin, and TLS checks the origin's name as it does for HTTP/1.1.

use std::task::{Context, Poll};

use http::Uri;
use http::uri::Authority;

/// Dials `target` for every request (when set), keeping the request's scheme.
#[derive(Clone)]
pub struct FixedTarget<C> {
    inner: C,
    target: Option<Authority>,
}

impl<C> FixedTarget<C> {
    pub fn new(inner: C, target: Option<Authority>) -> Self {
        FixedTarget { inner, target }
    }
}

impl<C: tower_service::Service<Uri>> tower_service::Service<Uri> for FixedTarget<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let Some(target) = &self.target else {
            return self.inner.call(uri);
        };
        let mut parts = uri.into_parts();
        parts.authority = Some(target.clone());
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        match Uri::from_parts(parts) {
            Ok(dial) => self.inner.call(dial),
            // Unreachable: a scheme and an authority that were valid together still are.
            Err(_) => self.inner.call(Uri::from_static("http://0.0.0.0:0/")),
        }
    }
}
