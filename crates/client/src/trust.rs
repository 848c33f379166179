//! Whom a client trusts: the system's certificate authorities, and for self-signed
//! servers the fingerprint it saw the first time (trust on first use, like SSH's
//! `known_hosts`). A changed fingerprint is refused, loudly.
//!
//! A server once seen with a certificate that the system's authorities vouch for is
//! remembered as such (`host:port authority` in `known_hosts`), and from then on only
//! such a certificate is accepted for it: otherwise whoever sits on the path could
//! present a self-signed certificate and pass as a server never seen before. Trust on
//! first use is for servers never seen at all.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How the client decides whether to trust a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A certificate signed by a system root, or the fingerprint remembered for this
    /// server in `known_hosts` (remembered on first use when there is none yet).
    Verify {
        /// The `known_hosts` file.
        known_hosts: PathBuf,
    },
    /// Any certificate at all: encryption without authentication. Anyone on the path
    /// can pretend to be the server.
    Insecure,
}

/// How the server's certificate was accepted, for the user to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trusted {
    /// Signed by a certificate authority the system trusts.
    Authority,
    /// The fingerprint matches the one remembered for this server.
    Remembered {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// First contact: the fingerprint is now remembered in `known_hosts`.
    FirstUse {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
    /// Not checked (`Trust::Insecure`).
    Unchecked {
        /// The certificate's SHA-256 fingerprint.
        fingerprint: String,
    },
}

impl fmt::Display for Trusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trusted::Authority => f.write_str("certificate verified by a trusted authority"),
            Trusted::Remembered { fingerprint } => write!(f, "known certificate sha256={fingerprint}"),
            Trusted::FirstUse { fingerprint } => {
                write!(f, "first connection: trusting and remembering certificate sha256={fingerprint}")
            }
            Trusted::Unchecked { fingerprint } => {
                write!(f, "WARNING: certificate NOT verified (--insecure), sha256={fingerprint}")
            }
        }
    }
}

/// Why the client will not trust a server, or cannot record that it does.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The server presents a different certificate from the one remembered for it.
    #[error(
        "THE SERVER'S CERTIFICATE HAS CHANGED.\n\
         {host} presented sha256={presented}\n\
         but {known_hosts} remembers sha256={remembered}.\n\
         Someone may be intercepting the connection, or the server's certificate was replaced.\n\
         If you know it was replaced, delete the line for {host} from {known_hosts} and connect again."
    )]
    Changed {
        /// The server, as `host:port`.
        host: String,
        /// The fingerprint it presented.
        presented: String,
        /// The fingerprint remembered.
        remembered: String,
        /// Where it is remembered.
        known_hosts: String,
    },
    /// The server was once verified by a certificate authority, and now presents a
    /// certificate that no authority of this system vouches for.
    #[error(
        "THE SERVER'S CERTIFICATE IS NOT SIGNED BY A TRUSTED AUTHORITY.\n\
         {host} presented sha256={presented} ({why}),\n\
         but {known_hosts} remembers that {host} had a certificate signed by one.\n\
         Someone may be intercepting the connection, or the server's certificate was replaced by a self-signed one \
         (or has expired).\n\
         If you know why, delete the lines for {host} from {known_hosts} and connect again."
    )]
    NotAuthority {
        /// The server, as `host:port`.
        host: String,
        /// The fingerprint of the certificate it presented.
        presented: String,
        /// Why the system's authorities refused it.
        why: String,
        /// Where it is remembered.
        known_hosts: String,
    },
    /// `known_hosts` cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The SHA-256 fingerprint of a DER certificate, as colon-separated hex pairs (what the
/// server prints at start and `openssl x509 -fingerprint -sha256` shows).
#[must_use]
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The default `known_hosts`: `$XDG_CONFIG_HOME/parley/known_hosts`, or
/// `~/.config/parley/known_hosts`.
#[must_use]
pub fn default_known_hosts() -> Option<PathBuf> {
    let config =
        std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()).map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|home| !home.is_empty()).map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config.join("parley").join("known_hosts"))
}

/// What `known_hosts` remembers of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// It had a certificate signed by an authority the system trusts: only such a
    /// certificate is accepted for it.
    Authority,
    /// Its self-signed certificate had this SHA-256 fingerprint.
    Fingerprint(String),
}

/// The word that marks a server verified by an authority in `known_hosts`; it can never
/// be a fingerprint (those are hex pairs and colons).
const AUTHORITY: &str = "authority";

/// What is remembered for `host` (`host:port`), if anything. Lines are `host:port
/// sha256-fingerprint` or `host:port authority`; `#` starts a comment. A server that
/// has an `authority` line is remembered as [`Known::Authority`] whatever else is there,
/// so that files written before such lines existed are read as before.
pub fn remembered(known_hosts: &Path, host: &str) -> Result<Option<Known>, TrustError> {
    let text = match std::fs::read_to_string(known_hosts) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrustError::Io { path: known_hosts.to_owned(), source }),
    };
    let mut found = None;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut words = line.split_whitespace();
        if words.next() != Some(host) {
            continue;
        }
        match words.next() {
            Some(AUTHORITY) => return Ok(Some(Known::Authority)),
            Some(fingerprint) if found.is_none() => found = Some(Known::Fingerprint(fingerprint.to_owned())),
            _ => {}
        }
    }
    Ok(found)
}

/// Remembers `known` for `host`, creating the file (readable only by its owner) and its
/// folder if needed.
pub fn remember(known_hosts: &Path, host: &str, known: &Known) -> Result<(), TrustError> {
    let io = |source| TrustError::Io { path: known_hosts.to_owned(), source };
    if let Some(dir) = known_hosts.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(known_hosts).map_err(io)?;
    match known {
        Known::Authority => writeln!(file, "{host} {AUTHORITY}").map_err(io),
        Known::Fingerprint(fingerprint) => writeln!(file, "{host} {fingerprint}").map_err(io),
    }
}

/// The rustls configuration for `trust`, and a slot where the verifier records how the
/// server's certificate was accepted (read it after the handshake with
/// [`TrustCheck::outcome`]).
pub(crate) fn client_config(trust: &Trust, host: &str) -> Result<(ClientConfig, TrustCheck), TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = TrustCheck { seen: Arc::new(Mutex::new(None)) };
    let (authority, remembered) = match trust {
        Trust::Insecure => (None, None),
        Trust::Verify { known_hosts } => (system_verifier(&provider), remembered(known_hosts, host)?),
    };
    let verifier = Arc::new(Verifier {
        provider: provider.clone(),
        authority,
        remembered,
        insecure: matches!(trust, Trust::Insecure),
        seen: check.seen.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Io { path: PathBuf::new(), source: std::io::Error::other(e) })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((config, check))
}

/// A verifier against the system's roots, or `None` when the system has none.
fn system_verifier(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok()
}

/// What the verifier concluded, filled in during the handshake.
#[derive(Debug, Clone)]
pub(crate) struct TrustCheck {
    seen: Arc<Mutex<Option<Seen>>>,
}

#[derive(Debug, Clone)]
enum Seen {
    /// Verified by an authority; `first` when that is not remembered yet.
    Authority {
        first: bool,
    },
    Remembered(String),
    New(String),
    Unchecked(String),
    Changed {
        presented: String,
        remembered: String,
    },
    /// Remembered as verified by an authority, and no longer.
    NotAuthority {
        presented: String,
        why: String,
    },
}

impl TrustCheck {
    /// How the certificate was accepted; remembers a first-use fingerprint, or that the
    /// server has a certificate from an authority. `host` and `trust` are those given to
    /// [`client_config`]. Called once the handshake is over and before anything is
    /// sent: an error here means nothing was.
    pub(crate) fn outcome(&self, trust: &Trust, host: &str) -> Result<Trusted, TrustError> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match (seen, trust) {
            (Some(Seen::Authority { first: true }), Trust::Verify { known_hosts }) => {
                remember(known_hosts, host, &Known::Authority)?;
                Ok(Trusted::Authority)
            }
            (Some(Seen::Authority { .. }), _) => Ok(Trusted::Authority),
            (Some(Seen::Remembered(fingerprint)), _) => Ok(Trusted::Remembered { fingerprint }),
            (Some(Seen::Unchecked(fingerprint)), _) => Ok(Trusted::Unchecked { fingerprint }),
            (Some(Seen::New(fingerprint)), Trust::Verify { known_hosts }) => {
                remember(known_hosts, host, &Known::Fingerprint(fingerprint.clone()))?;
                Ok(Trusted::FirstUse { fingerprint })
            }
            (Some(Seen::New(fingerprint)), Trust::Insecure) => Ok(Trusted::Unchecked { fingerprint }),
            (Some(Seen::Changed { presented, remembered }), Trust::Verify { known_hosts }) => {
                Err(TrustError::Changed {
                    host: host.to_owned(),
                    presented,
                    remembered,
                    known_hosts: known_hosts.display().to_string(),
                })
            }
            (Some(Seen::NotAuthority { presented, why }), Trust::Verify { known_hosts }) => {
                Err(TrustError::NotAuthority {
                    host: host.to_owned(),
                    presented,
                    why,
                    known_hosts: known_hosts.display().to_string(),
                })
            }
            (Some(Seen::Changed { presented, .. } | Seen::NotAuthority { presented, .. }), Trust::Insecure) => {
                Ok(Trusted::Unchecked { fingerprint: presented })
            }
            (None, _) => Err(TrustError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("the TLS handshake did not check a certificate"),
            }),
        }
    }

    /// True when the handshake failed because the certificate is refused: it changed,
    /// or it is no longer from an authority.
    pub(crate) fn refused(&self) -> bool {
        matches!(
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner),
            Some(Seen::Changed { .. } | Seen::NotAuthority { .. })
        )
    }
}

#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    authority: Option<Arc<WebPkiServerVerifier>>,
    remembered: Option<Known>,
    insecure: bool,
    seen: Arc<Mutex<Option<Seen>>>,
}

impl Verifier {
    fn record(&self, seen: Seen) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(seen);
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if self.insecure {
            self.record(Seen::Unchecked(presented));
            return Ok(ServerCertVerified::assertion());
        }
        let verified = match &self.authority {
            Some(authority) => authority
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                .map(drop)
                .map_err(|e| e.to_string()),
            None => Err("this system has no certificate authorities".to_owned()),
        };
        let why = match verified {
            Ok(()) => {
                self.record(Seen::Authority { first: self.remembered != Some(Known::Authority) });
                return Ok(ServerCertVerified::assertion());
            }
            Err(why) => why,
        };
        match &self.remembered {
            Some(Known::Authority) => {
                self.record(Seen::NotAuthority { presented, why });
                Err(rustls::Error::General("the server's certificate is not from a trusted authority".into()))
            }
            Some(Known::Fingerprint(remembered)) if *remembered == presented => {
                self.record(Seen::Remembered(presented));
                Ok(ServerCertVerified::assertion())
            }
            Some(Known::Fingerprint(remembered)) => {
                self.record(Seen::Changed { presented, remembered: remembered.clone() });
                Err(rustls::Error::General("the server's certificate has changed".into()))
            }
            None => {
                self.record(Seen::New(presented));
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(text: &str) -> Option<Known> {
        Some(Known::Fingerprint(text.to_owned()))
    }

    #[test]
    fn known_hosts_remembers_per_host_and_port() {
        let path = std::env::temp_dir().join(format!("parley-known-hosts-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        assert_eq!(remembered(&path, "chat.example:7780").expect("readable"), None);
        remember(&path, "chat.example:7780", &Known::Fingerprint("AA:BB".into())).expect("written");
        remember(&path, "other:7780", &Known::Fingerprint("CC:DD".into())).expect("written");
        remember(&path, "ca.example:7780", &Known::Authority).expect("written");
        assert_eq!(remembered(&path, "chat.example:7780").expect("readable"), fingerprint("AA:BB"));
        assert_eq!(remembered(&path, "other:7780").expect("readable"), fingerprint("CC:DD"));
        assert_eq!(remembered(&path, "ca.example:7780").expect("readable"), Some(Known::Authority));
        assert_eq!(remembered(&path, "chat.example:7781").expect("readable"), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn files_from_before_authority_lines_read_as_they_did_and_authority_wins() {
        let path = std::env::temp_dir().join(format!("parley-known-hosts-old-{}", std::process::id()));
        std::fs::write(&path, "# a comment\nold:7780 A6:44:68:35\nold:7780 FF:FF\nboth:7780 12:34\n").expect("written");
        assert_eq!(remembered(&path, "old:7780").expect("readable"), fingerprint("A6:44:68:35"), "the first line");
        assert_eq!(remembered(&path, "both:7780").expect("readable"), fingerprint("12:34"));
        remember(&path, "both:7780", &Known::Authority).expect("written");
        assert_eq!(remembered(&path, "both:7780").expect("readable"), Some(Known::Authority));
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(text.starts_with("# a comment\nold:7780 A6:44:68:35\n"), "appended, never rewritten: {text}");
        assert!(text.ends_with("both:7780 authority\n"), "{text}");
        let _ = std::fs::remove_file(&path);
    }
}
