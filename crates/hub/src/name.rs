//! Nicks and room names: validated once, compared without regard to ASCII case.
//!
//! The character set is IRC's, so that every name a user of one gateway picks is usable
//! from every other gateway: letters, digits and `-_[]\`^{}|` for nicks (not starting
//! with a digit or `-`), and letters, digits and `-_.` for rooms. Case folding is ASCII
//! (IRC's `CASEMAPPING=ascii`).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::{HubError, NameRule};

/// A valid nick. Equality and hashing ignore ASCII case; display keeps the user's case.
#[derive(Clone)]
pub struct Nick(Arc<str>);

/// A valid room name, without any leading `#`. Equality and hashing ignore ASCII case.
#[derive(Clone)]
pub struct RoomName(Arc<str>);

fn is_nick_special(c: char) -> bool {
    matches!(c, '-' | '_' | '[' | ']' | '\\' | '`' | '^' | '{' | '}' | '|')
}

impl Nick {
    /// Checks `name` against the nick rules, with `max_len` characters at most.
    pub fn parse(name: &str, max_len: usize) -> Result<Nick, HubError> {
        let invalid = |why| Err(HubError::InvalidNick { nick: name.to_owned(), why });
        let Some(first) = name.chars().next() else {
            return invalid(NameRule::Empty);
        };
        if name.chars().count() > max_len {
            return invalid(NameRule::TooLong { max: max_len });
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || is_nick_special(*c))) {
            return invalid(NameRule::Character(bad));
        }
        if first.is_ascii_digit() || first == '-' {
            return invalid(NameRule::Start(first));
        }
        Ok(Nick(name.into()))
    }

    /// The nick as its owner spells it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form names are compared and stored unique by: two nicks are the same name
    /// exactly when their keys are equal.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl RoomName {
    /// Checks `name` (a leading `#` is dropped) against the room rules, with `max_len`
    /// characters at most.
    pub fn parse(name: &str, max_len: usize) -> Result<RoomName, HubError> {
        let bare = name.strip_prefix('#').unwrap_or(name);
        let invalid = |why| Err(HubError::InvalidRoom { room: name.to_owned(), why });
        if bare.is_empty() {
            return invalid(NameRule::Empty);
        }
        if bare.chars().count() > max_len {
            return invalid(NameRule::TooLong { max: max_len });
        }
        if let Some(bad) = bare.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return invalid(NameRule::Character(bad));
        }
        Ok(RoomName(bare.into()))
    }

    /// The room's name as its creator spelled it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form room names are compared and stored unique by.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

macro_rules! case_insensitive {
    ($name:ident) => {
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.eq_ignore_ascii_case(&other.0)
            }
        }
        impl Eq for $name {}
        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                for b in self.0.bytes() {
                    state.write_u8(b.to_ascii_lowercase());
                }
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                let fold = |s: &str| s.bytes().map(|b| b.to_ascii_lowercase()).collect::<Vec<_>>();
                fold(&self.0).cmp(&fold(&other.0)).then_with(|| self.0.cmp(&other.0))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

case_insensitive!(Nick);
case_insensitive!(RoomName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_are_validated() {
        assert!(Nick::parse("Alice", 32).is_ok());
        assert!(Nick::parse("Guest_51234", 32).is_ok());
        assert!(Nick::parse("[m]|x^", 32).is_ok());
        for bad in ["", "al ice", "9lives", "-dash", "tab\there", "bell\u{7}", "émile", "a:b", "#chan"] {
            assert!(matches!(Nick::parse(bad, 32), Err(HubError::InvalidNick { .. })), "{bad:?}");
        }
        assert!(Nick::parse(&"a".repeat(33), 32).is_err());
        assert!(Nick::parse(&"a".repeat(32), 32).is_ok());
    }

    #[test]
    fn nicks_compare_without_case() {
        let a = Nick::parse("Alice", 32).expect("valid");
        let b = Nick::parse("aLICE", 32).expect("valid");
        assert_eq!(a, b);
        let hash = |n: &Nick| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            n.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(a.as_str(), "Alice");
    }

    #[test]
    fn rooms_drop_one_hash() {
        assert_eq!(RoomName::parse("#Dev", 32).expect("valid").as_str(), "Dev");
        assert_eq!(RoomName::parse("dev", 32), RoomName::parse("#DEV", 32));
        for bad in ["", "#", "##dev", "a b", "dev,ops"] {
            assert!(RoomName::parse(bad, 32).is_err(), "{bad:?}");
        }
    }
}
