//! The public listener's TLS with rustls (ring): certificates chosen by SNI from the
//! configuration in force (a reload that changes a certificate applies to the next handshake).

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::Config;

/// Picks the certificate for each handshake from the configuration in force.
struct Resolver {
    config: Arc<ArcSwap<Config>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.config.load().tls.for_name(hello.server_name())
    }
}

/// The public listener's TLS: TLS 1.3 and 1.2, ALPN h2 then http/1.1, certificates by SNI.
pub fn server_config(config: Arc<ArcSwap<Config>>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut c = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { config }));
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}
