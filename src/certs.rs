//! TLS material as plain data, read with the configuration: the public listener's certificates
//! by host name, certificate pairs and CA files from PEM, and the TLS settings for origins.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The public listener's certificates by host name.
#[derive(Default)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`: any one label in front.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate: for clients that send no SNI (an IP literal, old clients).
    fallback: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Certs {
    pub fn is_empty(&self) -> bool {
        self.fallback.is_none()
    }

    /// Serves `key` for `hosts` (lower-case; `*.example.com` for one label under it).
    pub fn add(&mut self, hosts: &[String], key: Arc<CertifiedKey>) {
        for h in hosts {
            match h.strip_prefix("*.") {
                Some(parent) => self.wildcard.insert(parent.to_string(), key.clone()),
                None => self.exact.insert(h.clone(), key.clone()),
            };
        }
        self.fallback.get_or_insert(key);
    }

    /// The certificate for the name a client asked for.
    pub fn for_name(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.fallback.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        self.fallback.clone()
    }
}

/// Which file of a certificate pair is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFile {
    Cert,
    Key,
}

/// Reads a certificate chain and its private key (PEM). The error says which file is at fault
/// and names it.
pub fn load_key_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, (PairFile, String)> {
    let bad_cert = |e: &dyn std::fmt::Display| (PairFile::Cert, format!("{}: {e}", cert.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad_cert(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad_cert(&e))?;
    if chain.is_empty() {
        return Err(bad_cert(&"no certificate in it"));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| (PairFile::Key, format!("{}: {e}", key.display())))?;
    let signing = any_supported_type(&der).map_err(|e| {
        (
            PairFile::Key,
            format!("{}: not a usable private key: {e}", key.display()),
        )
    })?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        Ok(()) => Ok(Arc::new(pair)),
        // The certificate could not be read to compare: its fault, not the key's.
        Err(rustls::Error::InvalidCertificate(e)) => {
            Err(bad_cert(&format!("not a readable certificate: {e:?}")))
        }
        Err(e) => Err((
            PairFile::Key,
            format!(
                "{} does not match the certificate in {}: {e}",
                key.display(),
                cert.display()
            ),
        )),
    }
}

/// Reads the CA certificates (PEM) an origin's certificate must chain to.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))? {
        let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("{}: not a CA certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(roots)
}

/// TLS to origins: the webpki roots, or only `roots` when a room names its own CA.
pub fn client_config(roots: Option<RootCertStore>) -> Result<ClientConfig, rustls::Error> {
    let roots = roots.unwrap_or_else(|| RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    });
    Ok(
        ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
