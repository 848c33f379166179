//! Nicks and room names: validated once, compared by a normalised key.
//!
//! Two ways to compare names, chosen once per server (`[names] casemapping`):
//!
//! - [`CaseMapping::Precis`] (the default): letters and digits of any script, so that
//!   `José`, `Zoë` and `李雷` are names, normalised and compared as RFC 8265's
//!   UsernameCaseMapped profile says (width mapping, Unicode lower case, NFC, the bidi
//!   rule). IRC calls this `CASEMAPPING=rfc8265`.
//! - [`CaseMapping::Ascii`]: ASCII letters and digits only, compared without ASCII case
//!   (IRC's `CASEMAPPING=ascii`), for networks whose clients expect it.
//!
//! Either way the ASCII characters a name may hold are IRC's, so that every name a user
//! of one gateway picks is usable from every other: letters, digits and `-_[]\`^{}|` for
//! nicks (not starting with a digit or `-`), letters, digits and `-_.` for rooms. Names
//! that only look alike (Cyrillic `а` for Latin `a`) are told apart by [`skeleton`],
//! which the hub checks against the names already taken.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use precis_core::profile::PrecisFastInvocation;
use precis_profiles::{UsernameCaseMapped, UsernameCasePreserved};

use crate::error::{HubError, NameRule};

/// How names are normalised and compared on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseMapping {
    /// RFC 8265 (PRECIS UsernameCaseMapped): letters of any script.
    #[default]
    Precis,
    /// ASCII letters only, compared without ASCII case.
    Ascii,
}

static CASE_MAPPING: OnceLock<CaseMapping> = OnceLock::new();

/// Fixes how this process compares names. Names are compared the same way everywhere
/// (hub, store, gateways), so it is chosen once, before any name is read; a second,
/// different choice is refused with the one in force.
pub fn set_case_mapping(mapping: CaseMapping) -> Result<(), CaseMapping> {
    let chosen = *CASE_MAPPING.get_or_init(|| mapping);
    if chosen == mapping {
        Ok(())
    } else {
        Err(chosen)
    }
}

/// How this process compares names (fixed at the first name read, if not chosen before).
#[must_use]
pub fn case_mapping() -> CaseMapping {
    *CASE_MAPPING.get_or_init(CaseMapping::default)
}

/// The key `text` compares by, if it were a name: what a stored name that may not
/// parse any more (an old record) is matched with.
#[must_use]
pub fn key_of(text: &str) -> String {
    match case_mapping() {
        CaseMapping::Precis => {
            UsernameCaseMapped::enforce(text).map_or_else(|_| text.to_lowercase(), std::borrow::Cow::into_owned)
        }
        CaseMapping::Ascii => text.to_ascii_lowercase(),
    }
}

/// What a name looks like, for telling apart names that only look alike: Unicode's
/// confusables skeleton (UTS #39) of its key. `аlice` (Cyrillic а) and `alice` have
/// the same skeleton; so do `rnoon` and `moon`. Under ASCII case mapping names are
/// compared by key alone: the skeleton is the key.
#[must_use]
pub fn skeleton(key: &str) -> String {
    match case_mapping() {
        CaseMapping::Precis => unicode_security::skeleton(key).collect(),
        CaseMapping::Ascii => key.to_owned(),
    }
}

/// A name as its owner spells it, the key it compares by, and (once asked for) what it
/// looks like.
struct Spelled {
    display: Box<str>,
    key: Box<str>,
    skeleton: OnceLock<Box<str>>,
}

impl Spelled {
    fn new(display: &str, key: &str) -> Self {
        Self { display: display.into(), key: key.into(), skeleton: OnceLock::new() }
    }

    fn skeleton(&self) -> &str {
        self.skeleton.get_or_init(|| skeleton(&self.key).into())
    }
}

/// A valid nick. Equality, ordering and hashing go by its key; display keeps the
/// user's spelling.
#[derive(Clone)]
pub struct Nick(Arc<Spelled>);

/// A valid room name, without any leading `#`. Equality, ordering and hashing go by
/// its key.
#[derive(Clone)]
pub struct RoomName(Arc<Spelled>);

fn is_nick_special(c: char) -> bool {
    matches!(c, '-' | '_' | '[' | ']' | '\\' | '`' | '^' | '{' | '}' | '|')
}

/// Checks `name` against the name rules (`ascii_allowed` says which ASCII characters
/// are), with `max_len` characters at most; the spelling to show and the key.
fn spell(name: &str, max_len: usize, ascii_allowed: fn(char) -> bool) -> Result<Spelled, NameRule> {
    if name.is_empty() {
        return Err(NameRule::Empty);
    }
    if name.chars().count() > max_len {
        return Err(NameRule::TooLong { max: max_len });
    }
    let mapping = case_mapping();
    if let Some(bad) =
        name.chars().find(|c| if c.is_ascii() { !ascii_allowed(*c) } else { mapping == CaseMapping::Ascii })
    {
        return Err(NameRule::Character(bad));
    }
    match mapping {
        CaseMapping::Ascii => Ok(Spelled::new(name, &name.to_ascii_lowercase())),
        CaseMapping::Precis => {
            let display = UsernameCasePreserved::enforce(name).map_err(|e| precis_rule(name, &e))?;
            let key = UsernameCaseMapped::enforce(display.as_ref()).map_err(|e| precis_rule(name, &e))?;
            // Width mapping and normalisation may change the length (a decomposed `ë`
            // is composed): the limit holds for what is kept.
            if display.chars().count() > max_len {
                return Err(NameRule::TooLong { max: max_len });
            }
            Ok(Spelled::new(&display, &key))
        }
    }
}

/// Why RFC 8265 refuses a name.
fn precis_rule(name: &str, error: &precis_core::Error) -> NameRule {
    match error {
        precis_core::Error::BadCodepoint(info) => char::from_u32(info.cp)
            .or_else(|| name.chars().nth(info.position))
            .map_or(NameRule::Mixed, NameRule::Character),
        _ => NameRule::Mixed,
    }
}

impl Nick {
    /// Checks `name` against the nick rules, with `max_len` characters at most.
    pub fn parse(name: &str, max_len: usize) -> Result<Nick, HubError> {
        let invalid = |why| HubError::InvalidNick { nick: name.to_owned(), why };
        let spelled = spell(name, max_len, |c| c.is_ascii_alphanumeric() || is_nick_special(c)).map_err(invalid)?;
        if let Some(first) = spelled.display.chars().next().filter(|c| c.is_ascii_digit() || *c == '-') {
            return Err(invalid(NameRule::Start(first)));
        }
        Ok(Nick(Arc::new(spelled)))
    }

    /// The nick as its owner spells it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0.display
    }

    /// The form names are compared and stored unique by: two nicks are the same name
    /// exactly when their keys are equal.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.key.to_string()
    }

    /// The key, borrowed.
    #[must_use]
    pub fn key_str(&self) -> &str {
        &self.0.key
    }

    /// What the nick looks like (see [`skeleton`]).
    #[must_use]
    pub fn skeleton(&self) -> &str {
        self.0.skeleton()
    }
}

impl RoomName {
    /// Checks `name` (a leading `#` is dropped) against the room rules, with `max_len`
    /// characters at most.
    pub fn parse(name: &str, max_len: usize) -> Result<RoomName, HubError> {
        let bare = name.strip_prefix('#').unwrap_or(name);
        let spelled = spell(bare, max_len, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .map_err(|why| HubError::InvalidRoom { room: name.to_owned(), why })?;
        Ok(RoomName(Arc::new(spelled)))
    }

    /// The room's name as its creator spelled it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0.display
    }

    /// The form room names are compared and stored unique by.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.key.to_string()
    }

    /// The key, borrowed.
    #[must_use]
    pub fn key_str(&self) -> &str {
        &self.0.key
    }

    /// What the name looks like (see [`skeleton`]).
    #[must_use]
    pub fn skeleton(&self) -> &str {
        self.0.skeleton()
    }
}

macro_rules! compared_by_key {
    ($name:ident) => {
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.key == other.0.key
            }
        }
        impl Eq for $name {}
        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.0.key.hash(state);
            }
        }
        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.key.cmp(&other.0.key)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.display)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0.display, f)
            }
        }
    };
}

compared_by_key!(Nick);
compared_by_key!(RoomName);

#[cfg(test)]
mod tests {
    //! Under the default mapping (RFC 8265); `tests/ascii_names.rs` covers ASCII in a
    //! process of its own, since the mapping is fixed once per process.
    use super::*;

    fn hash(n: &impl Hash) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        n.hash(&mut h);
        h.finish()
    }

    #[test]
    fn nicks_are_validated() {
        assert_eq!(case_mapping(), CaseMapping::Precis);
        for good in ["Alice", "Guest_51234", "[m]|x^", "José", "Zoë", "李雷", "Дмитрий", "émile", "ñandú"]
        {
            assert!(Nick::parse(good, 32).is_ok(), "{good:?}");
        }
        for bad in ["", "al ice", "9lives", "-dash", "tab\there", "bell\u{7}", "a:b", "#chan", "a!b", "a@b", "x,y", "*"]
        {
            assert!(matches!(Nick::parse(bad, 32), Err(HubError::InvalidNick { .. })), "{bad:?}");
        }
        // Symbols, punctuation and spaces outside ASCII are not letters.
        for bad in ["a\u{a0}b", "☃", "a€", "a\u{200b}b", "a\u{2028}", "ab\u{3000}"] {
            assert!(matches!(Nick::parse(bad, 32), Err(HubError::InvalidNick { .. })), "{bad:?}");
        }
        assert!(Nick::parse(&"a".repeat(33), 32).is_err());
        assert!(Nick::parse(&"a".repeat(32), 32).is_ok());
        assert!(Nick::parse(&"é".repeat(32), 32).is_ok());
    }

    #[test]
    fn nicks_compare_by_their_key() {
        let a = Nick::parse("Alice", 32).expect("valid");
        let b = Nick::parse("aLICE", 32).expect("valid");
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(a.as_str(), "Alice");
        assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);

        let upper = Nick::parse("JOSÉ", 32).expect("valid");
        let lower = Nick::parse("josé", 32).expect("valid");
        assert_eq!(upper, lower);
        assert_eq!(hash(&upper), hash(&lower));
        assert_eq!(upper.key(), "josé");
        assert_eq!(upper.as_str(), "JOSÉ");
        // A decomposed ë (e and a combining diaeresis) is the same name, kept composed.
        let decomposed = Nick::parse("Zoe\u{308}", 32).expect("valid");
        assert_eq!(decomposed, Nick::parse("zoë", 32).expect("valid"));
        assert_eq!(decomposed.as_str(), "Zoë");
        // Fullwidth letters are their ordinary selves.
        assert_eq!(Nick::parse("ＡＢＣ", 32).expect("valid"), Nick::parse("abc", 32).expect("valid"));
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let latin = Nick::parse("alice", 32).expect("valid");
        let cyrillic = Nick::parse("\u{430}lice", 32).expect("valid");
        assert_ne!(latin, cyrillic, "different names");
        assert_eq!(latin.skeleton(), cyrillic.skeleton(), "that look the same");
        assert_eq!(Nick::parse("ALICE", 32).expect("valid").skeleton(), latin.skeleton());
        assert_ne!(Nick::parse("alicia", 32).expect("valid").skeleton(), latin.skeleton());
        assert_eq!(
            Nick::parse("rnoon", 32).expect("valid").skeleton(),
            Nick::parse("moon", 32).expect("valid").skeleton()
        );
        assert_eq!(
            RoomName::parse("#p\u{430}ris", 32).expect("valid").skeleton(),
            RoomName::parse("#Paris", 32).expect("valid").skeleton()
        );
    }

    #[test]
    fn mixed_directions_are_refused() {
        // Hebrew letters alone are fine; a Hebrew name ending in a Latin letter is not.
        assert!(Nick::parse("\u{5e9}\u{5dc}\u{5d5}\u{5dd}", 32).is_ok());
        let mixed = Nick::parse("\u{5e9}\u{5dc}a", 32);
        assert!(
            matches!(mixed, Err(HubError::InvalidNick { why: NameRule::Mixed | NameRule::Character(_), .. })),
            "{mixed:?}"
        );
    }

    #[test]
    fn rooms_drop_one_hash() {
        assert_eq!(RoomName::parse("#Dev", 32).expect("valid").as_str(), "Dev");
        assert_eq!(RoomName::parse("dev", 32), RoomName::parse("#DEV", 32));
        assert_eq!(RoomName::parse("#Café", 32), RoomName::parse("#CAFÉ", 32));
        assert!(RoomName::parse("#日本語", 32).is_ok());
        for bad in ["", "#", "##dev", "a b", "dev,ops", "a[b", "caf\u{e9}\u{a0}"] {
            assert!(RoomName::parse(bad, 32).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_second_different_mapping_is_refused() {
        assert_eq!(set_case_mapping(CaseMapping::Precis), Ok(()));
        assert_eq!(set_case_mapping(CaseMapping::Ascii), Err(CaseMapping::Precis));
    }
}
