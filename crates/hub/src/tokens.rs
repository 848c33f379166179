//! Resume tokens: what lets a client log in again without its password (a browser's
//! session cookie, the terminal client after a dropped connection).
//!
//! A token is 32 random bytes written in base64url, given to the client once. The store
//! keeps only its SHA-256, so a copy of the database logs nobody in. Each token belongs
//! to one account, says where it was issued (gateway, address, user agent), and is
//! forgotten after it goes unused for the server's idle limit, when its account's
//! password changes or the account is deleted, or when its owner revokes it. An account
//! keeps at most [`MAX_TOKENS_PER_ACCOUNT`]: issuing one more revokes the oldest.

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::event::Timestamp;
use crate::identity::{Account, AccountId};

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;

/// The most tokens one account keeps; issuing another revokes the oldest.
pub const MAX_TOKENS_PER_ACCOUNT: usize = 50;

/// The longest token text looked up: longer ones cannot be a token, and are refused
/// without touching the store.
pub const MAX_TOKEN_TEXT: usize = 64;

/// The longest description kept, in bytes.
pub const MAX_TOKEN_DESCRIPTION: usize = 200;

/// How long a token lasts unused when the server says nothing else: 30 days.
pub const DEFAULT_TOKEN_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A token as the store keeps it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken {
    /// Its id, to list and revoke it by: not the token, and useless without it.
    pub id: u64,
    /// Whose.
    pub account: AccountId,
    /// When it was issued.
    pub created: Timestamp,
    /// When it was last used to log in or to fetch a file.
    pub last_used: Timestamp,
    /// Where it was issued: gateway, address, user agent when known.
    pub description: String,
}

/// A token found and still valid: its row (with the new last use), its account as
/// registered, and whether the account is a server administrator now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    /// The token's row.
    pub token: SessionToken,
    /// Its account.
    pub account: Account,
    /// The account is a server administrator.
    pub admin: bool,
}

/// One line of a session list: a token, and whether the asking session logged in with
/// it (or was given it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The token's row.
    pub token: SessionToken,
    /// It is the asking session's own.
    pub current: bool,
}

/// The SHA-256 of a token's text, as the store keeps it.
#[must_use]
pub fn token_hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// A new token and its hash; `None` when the system has no randomness to give.
pub(crate) fn mint() -> Option<(String, Vec<u8>)> {
    let mut bytes = [0u8; TOKEN_BYTES];
    SystemRandom::new().fill(&mut bytes).ok()?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    Some((token, hash))
}

/// A description as kept: printable, one line, at most [`MAX_TOKEN_DESCRIPTION`] bytes.
#[must_use]
pub fn clean_description(text: &str) -> String {
    let printable: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    crate::actor::shorten(printable.trim(), MAX_TOKEN_DESCRIPTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_hashed_as_written() {
        let (a, hash_a) = mint().expect("randomness");
        let (b, _) = mint().expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes in unpadded base64");
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{a}");
        assert_eq!(hash_a, token_hash(&a));
        assert_eq!(hash_a.len(), 32);
        assert_eq!(clean_description("web\r\n127.0.0.1\u{1b}[31m"), "web  127.0.0.1 [31m");
    }
}
