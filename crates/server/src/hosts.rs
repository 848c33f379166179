//! Who a user is in `nick!user@host`, for users of every gateway: the user name their
//! client gave (IRC's `USER`) or one made from their nick, and a host from their address
//! as `[irc] hosts` says: a cloak (a keyed hash, the default), the address, or the
//! server's name. The real address is for operators alone (IRC's WHOIS `378`).
//!
//! The cloak's key is 32 random bytes kept in `data_dir/keys/cloak.key` (readable by the
//! server's user alone, and in `parley admin backup`), made on the first start: the same address shows the same cloak
//! across restarts and reconnects, and without the key a cloak cannot be turned back
//! into an address, nor an address guessed by hashing candidates.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parley_hub::Userhost;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::config::Hosts as Mode;

/// The longest user name, `~` included (`USERLEN` in `005`).
pub(crate) const USERLEN: usize = 10;

/// The cloak key's file in the data directory.
const KEY_FILE: &str = "keys/cloak.key";

/// How hosts are made for this server.
pub(crate) struct Hosts {
    mode: Mode,
    /// The cloak's key, in `cloak` mode.
    key: Option<hmac::Key>,
    server_name: String,
}

/// Why the cloak key cannot be had.
#[derive(Debug, thiserror::Error)]
#[error("cannot read or create the cloak key {path}: {source}")]
pub struct CloakKeyError {
    /// The key's file.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl Hosts {
    /// Hosts in `mode`; in `cloak` mode with the key in `data_dir` (made if missing).
    /// Blocks on disk.
    pub(crate) fn load(mode: Mode, data_dir: &Path, server_name: &str) -> Result<Hosts, CloakKeyError> {
        let key = match mode {
            Mode::Cloak => Some(cloak_key(&data_dir.join(KEY_FILE))?),
            Mode::Ip | Mode::Fixed => None,
        };
        Ok(Hosts { mode, key, server_name: server_name.to_owned() })
    }

    /// Hosts with a key of this process alone (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(mode: Mode) -> Hosts {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).expect("randomness");
        Hosts { mode, key: Some(key), server_name: "parley.test".to_owned() }
    }

    /// The host a client from `address` shows.
    pub(crate) fn host(&self, address: Option<IpAddr>) -> String {
        let Some(address) = address.map(canonical) else {
            return self.server_name.clone();
        };
        match (self.mode, &self.key) {
            (Mode::Fixed, _) => self.server_name.clone(),
            (Mode::Ip, _) | (Mode::Cloak, None) => {
                let text = address.to_string();
                // A leading `:` would end IRC's parameters early (`::1` is `0::1`).
                if text.starts_with(':') {
                    format!("0{text}")
                } else {
                    text
                }
            }
            (Mode::Cloak, Some(key)) => cloak(key, address),
        }
    }

    /// The user name and host of a client from `address` whose user name is `user`
    /// (already made valid with [`username`]).
    pub(crate) fn userhost(&self, user: &str, address: Option<IpAddr>) -> Arc<Userhost> {
        Userhost::new(user, &self.host(address))
    }
}

/// An IPv4-mapped IPv6 address is its IPv4 address, so that one client shows one host
/// whichever listener it came through.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// `ADDRESS.NETWORK.IP`: eight hex digits of the keyed hash of the address, then of its
/// network (the /24 of an IPv4 address, the /64 of an IPv6 one), so that a ban on
/// `*!*@*.NETWORK.IP` covers a network as a ban on an address range would.
fn cloak(key: &hmac::Key, address: IpAddr) -> String {
    let (whole, network): (Vec<u8>, Vec<u8>) = match address {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o.to_vec(), vec![4, o[0], o[1], o[2]])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut network = vec![6];
            network.extend_from_slice(&o[..8]);
            (o.to_vec(), network)
        }
    };
    let part = |label: &[u8], data: &[u8]| {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(label);
        ctx.update(data);
        let tag = ctx.sign();
        tag.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    format!("{}.{}.IP", part(b"address", &whole), part(b"network", &network))
}

/// Reads the cloak key, or makes one and keeps it (owner-only) on the first start.
fn cloak_key(path: &Path) -> Result<hmac::Key, CloakKeyError> {
    let error = |source| CloakKeyError { path: path.to_owned(), source };
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes)),
        Ok(_) => return Err(error(io::Error::new(io::ErrorKind::InvalidData, "shorter than 32 bytes"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| error(io::Error::other("no randomness for a key")))?;
    write_new_private(path, &bytes).map_err(error)?;
    tracing::info!(path = %path.display(), "made the key of the users' host cloaks");
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// Creates a file only its owner can read; fails if it exists (two servers starting on
/// one data directory keep the first key).
fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Whether `c` may be in a user name, as IRC servers allow them (InspIRCd's rule):
/// ASCII letters and digits and `-.[\]^_`{|}~`.
fn user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.[\\]^_`{|}~".contains(c)
}

/// The user name a client gave with `USER`, or its nick when its protocol has no user
/// name (line and native clients), as shown: `~` (no ident lookup vouches for it), then
/// the characters a user name may hold, cut to [`USERLEN`]; `~user` if none is left.
///
/// InspIRCd refuses a name with other characters, and the client would stay
/// unregistered; clients that send their nick as the user name (HexChat, many bots)
/// would then be stuck with a nick such as `José`, which Parley accepts, so the
/// characters are left out instead.
pub(crate) fn username(given: &str) -> String {
    let kept: String = given.chars().filter(|c| user_char(*c) && *c != '~').take(USERLEN - 1).collect();
    if kept.is_empty() {
        "~user".to_owned()
    } else {
        format!("~{kept}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloaks_are_stable_distinct_and_shaped() {
        let hosts = Hosts::for_tests(Mode::Cloak);
        let one: IpAddr = "127.0.0.1".parse().expect("address");
        let two: IpAddr = "127.0.0.2".parse().expect("address");
        let far: IpAddr = "192.0.2.1".parse().expect("address");
        let (a, b, c) = (hosts.host(Some(one)), hosts.host(Some(two)), hosts.host(Some(far)));
        assert_eq!(a, hosts.host(Some(one)), "stable");
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('.').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert!(parts[..2].iter().all(|p| p.len() == 8 && p.chars().all(|c| c.is_ascii_hexdigit())), "{a}");
        assert_eq!(parts[2], "IP");
        assert_eq!(a.split('.').nth(1), b.split('.').nth(1), "one /24, one network part");
        assert_ne!(a.split('.').nth(1), c.split('.').nth(1));
        assert!(!a.contains("127"), "{a}");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("address");
        assert_eq!(hosts.host(Some(mapped)), a, "IPv4-mapped is IPv4");
        let v6: IpAddr = "2001:db8::1".parse().expect("address");
        assert!(hosts.host(Some(v6)).ends_with(".IP"));
    }

    #[test]
    fn other_modes() {
        let ip = Hosts::for_tests(Mode::Ip);
        assert_eq!(ip.host(Some("192.0.2.7".parse().expect("address"))), "192.0.2.7");
        assert_eq!(ip.host(Some("::1".parse().expect("address"))), "0::1");
        let fixed = Hosts::for_tests(Mode::Fixed);
        assert_eq!(fixed.host(Some("192.0.2.7".parse().expect("address"))), "parley.test");
    }

    #[test]
    fn a_kept_key_gives_the_same_cloaks() {
        let dir = std::env::temp_dir().join(format!("parley-cloak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let address = Some("198.51.100.4".parse().expect("address"));
        let first = Hosts::load(Mode::Cloak, &dir, "s").expect("made").host(address);
        let again = Hosts::load(Mode::Cloak, &dir, "s").expect("read").host(address);
        assert_eq!(first, again);
        std::fs::remove_dir_all(&dir).expect("cleaned");
    }

    #[test]
    fn user_names_as_servers_take_them() {
        assert_eq!(username("alice"), "~alice");
        assert_eq!(username("~alice"), "~alice");
        assert_eq!(username("averyverylongname"), "~averyvery");
        assert_eq!(username("a[b]^c"), "~a[b]^c");
        assert_eq!(username("al@i!ce\u{7}"), "~alice");
        assert_eq!(username("José"), "~Jos");
        assert_eq!(username("李雷"), "~user");
        assert_eq!(username(""), "~user");
    }
}
