//! Room keys as NATS subject tokens.
//!
//! A subject token may not contain `.`, `*`, `>` or white space, and a room's key may
//! contain anything the name rules allow in any script (and `.`). So the token is the
//! key's UTF-8 bytes in lower-case hex: one token whatever the name, never a wildcard,
//! the same on every node, and reversible for an operator reading the stream. Base32
//! would be 20% shorter; a room key is at most a few hundred bytes, far under NATS's
//! 4 KiB control line, so the simpler encoding wins.

use std::fmt::Write as _;

/// The subject token of a room (or nick) key.
#[must_use]
pub fn room_token(key: &str) -> String {
    let mut token = String::with_capacity(key.len() * 2);
    for byte in key.bytes() {
        let _ = write!(token, "{byte:02x}");
    }
    token
}

/// The key a token stands for; `None` if it is not one [`room_token`] makes.
#[must_use]
pub fn token_key(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || !token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| token.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}
