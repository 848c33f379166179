//! TLS for every listener: one certificate, loaded from PEM files or generated on first
//! start, swapped in place when reloaded (SIGHUP) without touching open connections.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Where the certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertSource {
    /// PEM files given by the operator (e.g. from Let's Encrypt).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A self-signed certificate generated in the data directory on first start.
    Generated {
        /// The data directory's `tls` folder.
        dir: PathBuf,
    },
}

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key does not belong to the certificate, or is not usable.
    #[error("the TLS key does not fit the certificate: {0}")]
    Mismatch(String),
    /// Generating a certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
}

/// The server's TLS state: the acceptor all TLS listeners share, and the certificate it
/// presents, which [`Tls::reload`] replaces.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    store: Arc<CertStore>,
}

struct CertStore {
    source: CertSource,
    provider: Arc<CryptoProvider>,
    current: RwLock<Loaded>,
}

#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("source", &self.source).finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).key.clone())
    }
}

impl Tls {
    /// Loads (or first generates) the certificate.
    pub(crate) fn load(source: CertSource) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(&source, &provider)?;
        let store = Arc::new(CertStore { source, provider: provider.clone(), current: RwLock::new(loaded) });
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), store })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The SHA-256 fingerprint of the certificate presented now, as
    /// `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.store.current.read().unwrap_or_else(PoisonError::into_inner).fingerprint.clone()
    }

    /// Reads the certificate and key again and presents them to new connections; open
    /// connections keep theirs. On error the old certificate stays. Returns the new
    /// fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load(&self.store.source, &self.store.provider)?;
        let fingerprint = loaded.fingerprint.clone();
        *self.store.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(fingerprint)
    }
}

fn load(source: &CertSource, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let (cert_path, key_path) = match source {
        CertSource::Files { cert, key } => (cert.clone(), key.clone()),
        CertSource::Generated { dir } => generate_once(dir)?,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect)
        .map_err(|e| TlsError::Pem { path: cert_path.clone(), why: format!("not a PEM certificate chain ({e})") })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Pem { path: cert_path, why: "no certificate in the file".into() });
    };
    let fingerprint = fingerprint(leaf);
    let key_der = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| TlsError::Pem { path: key_path.clone(), why: format!("not a PEM private key ({e})") })?;
    let key = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Loaded { key: Arc::new(key), fingerprint })
}

/// The SHA-256 fingerprint of a DER certificate, as colon-separated hex pairs.
#[must_use]
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The generated certificate's files, created on the first start and reused after.
fn generate_once(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.to_owned(), source })?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.cert.pem()).map_err(|source| TlsError::Io { path: cert.clone(), source })?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let io = |source| TlsError::Io { path: path.to_owned(), source };
    options.open(path).and_then(|mut file| file.write_all(contents)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_reused_and_reloadable() {
        let dir = std::env::temp_dir().join(format!("parley-tls-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Tls::load(CertSource::Generated { dir: dir.clone() }).expect("generates");
        let again = Tls::load(CertSource::Generated { dir: dir.clone() }).expect("reuses");
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 95);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_ne!(first.reload().expect("regenerates"), again.fingerprint());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused() {
        let dir = std::env::temp_dir().join(format!("parley-tls-mismatch-{}", std::process::id()));
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).expect("a");
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).expect("b");
        std::fs::create_dir_all(&dir).expect("dir");
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert, a.cert.pem()).expect("cert");
        std::fs::write(&key, b.signing_key.serialize_pem()).expect("key");
        let err = Tls::load(CertSource::Files { cert: cert.clone(), key: key.clone() }).err().expect("refused");
        assert!(matches!(err, TlsError::Mismatch(_)), "{err}");
        std::fs::write(&key, "not a key").expect("key");
        let err = Tls::load(CertSource::Files { cert, key }).err().expect("refused");
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
