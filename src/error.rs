//! Error types: configuration errors that name file, line and key, and gateway errors that map
//! to a status in exactly one place (`gateway`'s `answer::fail`).

use std::fmt;
use std::path::PathBuf;

use http::StatusCode;

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
    #[error("shared store: {0}")]
    Store(String),
}

/// Everything that can go wrong while answering one public request. The gateway's
/// `answer::fail` turns each variant into a status, a page and a metric.
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

    /// The status of the answer to this error: the one mapping, used by the gateway's
    /// `answer::fail`.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::UriTooLong => StatusCode::URI_TOO_LONG,
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::OriginDown(_) | GatewayError::OriginInvalid(_) => StatusCode::BAD_GATEWAY,
            GatewayError::OriginTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The label of `anteroom_upstream_errors_total{kind}` for the origin's own failures
    /// (a client's bad or slow body is not the origin's); `None` for everything else.
    pub fn upstream_kind(&self) -> Option<&'static str> {
        match self {
            GatewayError::OriginTimeout => Some("timeout"),
            GatewayError::OriginDown(_) => Some("connect"),
            GatewayError::OriginInvalid(_) => Some("invalid_response"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GatewayError as E;
    use http::StatusCode as S;

    /// The client's own faults: 4xx, a client kind (also their JSON name), no upstream kind.
    #[test]
    fn each_client_fault_has_one_status_and_its_label() {
        let table = [
            (
                E::UnknownHost("x".into()),
                S::MISDIRECTED_REQUEST,
                "unknown_host",
            ),
            (E::BadRequest("x"), S::BAD_REQUEST, "bad_request"),
            (E::BodyTooLarge, S::PAYLOAD_TOO_LARGE, "body_too_large"),
            (E::MethodNotAllowed, S::METHOD_NOT_ALLOWED, "method"),
            (E::BodyTimeout, S::REQUEST_TIMEOUT, "body_timeout"),
            (E::UriTooLong, S::URI_TOO_LONG, "uri_too_long"),
            (
                E::HeadersTooLarge,
                S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
        ];
        for (e, status, kind) in table {
            assert_eq!(e.status(), status, "{e}");
            assert!(status.is_client_error(), "{e}");
            assert_eq!(e.client_kind(), Some(kind), "{e}");
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.upstream_kind(), None, "{e}");
        }
    }

    /// The origin's and anteroom's failures: 5xx, no client kind; the origin's own carry the
    /// upstream kind `anteroom_upstream_errors_total` counts them under.
    #[test]
    fn each_server_failure_has_one_status_and_its_labels() {
        let table = [
            (
                E::OriginDown("x".into()),
                S::BAD_GATEWAY,
                Some("connect"),
                "origin_unreachable",
            ),
            (
                E::OriginTimeout,
                S::GATEWAY_TIMEOUT,
                Some("timeout"),
                "origin_timeout",
            ),
            (
                E::OriginInvalid("x".into()),
                S::BAD_GATEWAY,
                Some("invalid_response"),
                "origin_invalid_response",
            ),
            (
                E::Render("x".into()),
                S::INTERNAL_SERVER_ERROR,
                None,
                "internal",
            ),
        ];
        for (e, status, upstream, kind) in table {
            assert_eq!(e.status(), status, "{e}");
            assert!(status.is_server_error(), "{e}");
            assert_eq!(e.client_kind(), None, "{e}");
            assert_eq!(e.upstream_kind(), upstream, "{e}");
            assert_eq!(e.kind(), kind, "{e}");
        }
    }
}
