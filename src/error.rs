//! Error types: configuration errors that name file, line and key, and gateway errors that map
//! to a status in exactly one place (`gateway::fail`).

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file, located by line and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is not tied to a line (file unreadable).
    pub line: usize,
    /// Dotted key path such as `room[0].origin`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Why starting the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("token key: {0}")]
    Key(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// Everything that can go wrong while answering one public request. `gateway::fail` turns each
/// variant into a status, a page and a metric.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no room serves host {0:?}")]
    UnknownHost(String),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("request body larger than the limit")]
    BodyTooLarge,
    #[error("CONNECT is not served")]
    MethodNotAllowed,
    #[error("no request body data within body_timeout")]
    BodyTimeout,
    #[error("request target longer than the limit")]
    UriTooLong,
    #[error("request headers larger than the limit")]
    HeadersTooLarge,
    #[error("origin unreachable: {0}")]
    OriginDown(String),
    #[error("origin did not answer in time")]
    OriginTimeout,
    #[error("origin answered with framing or a head that cannot be relayed safely: {0}")]
    OriginInvalid(String),
    #[error("page rendering failed: {0}")]
    Render(String),
}

impl GatewayError {
    /// The label of `anteroom_client_errors_total{kind}` for errors that are the client's own
    /// fault; `None` for the origin's and anteroom's.
    pub fn client_kind(&self) -> Option<&'static str> {
        Some(match self {
            GatewayError::UnknownHost(_) => "unknown_host",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::BodyTooLarge => "body_too_large",
            GatewayError::MethodNotAllowed => "method",
            GatewayError::BodyTimeout => "body_timeout",
            GatewayError::UriTooLong => "uri_too_long",
            GatewayError::HeadersTooLarge => "headers_too_large",
            GatewayError::OriginDown(_)
            | GatewayError::OriginTimeout
            | GatewayError::OriginInvalid(_)
            | GatewayError::Render(_) => return None,
        })
    }

    /// A short machine name of the failure, for JSON answers.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::OriginDown(_) => "origin_unreachable",
            GatewayError::OriginTimeout => "origin_timeout",
            GatewayError::OriginInvalid(_) => "origin_invalid_response",
            GatewayError::Render(_) => "internal",
            other => other.client_kind().unwrap_or("internal"),
        }
    }
}
