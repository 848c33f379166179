//! Names that only look alike: who holds which, so that nobody takes a name that
//! passes for one already in use.
//!
//! Two names are the same name when their keys are equal ([`crate::Nick::key`]); two
//! different names look alike when their confusables skeletons are equal
//! ([`crate::name::skeleton`]): Cyrillic `аlice` and Latin `alice`, `rnoon` and `moon`.
//! The hub counts, per skeleton, the holders of each key (sessions using a nick,
//! accounts, rooms), and refuses a new name whose skeleton is held under another key,
//! as if the name itself were taken. Names held before this check existed may share a
//! skeleton; they keep working, and neither passes for a third.

use std::collections::HashMap;

/// The keys held under each skeleton, with how many holders each has.
///
/// Every session's nick is held here, so a skeleton almost always has one key, and
/// that key is usually the skeleton itself: those cost one entry and no allocation
/// beyond the skeleton's (a map per skeleton was about 200 bytes per session).
#[derive(Debug, Default)]
pub(crate) struct Lookalikes {
    by_skeleton: HashMap<Box<str>, Holders>,
}

/// The keys held under one skeleton.
#[derive(Debug)]
enum Holders {
    /// One key (`None`: the skeleton itself), and its holders.
    One { key: Option<Box<str>>, count: u32 },
    /// Several keys, each with its holders.
    // Boxed so that an entry is 32 bytes, not a map's 56: almost every skeleton has one key.
    #[allow(clippy::box_collection)]
    Many(Box<HashMap<Box<str>, u32>>),
}

impl Holders {
    /// The holders of `key` (`skeleton`'s) to count up, made a key of these if it is not.
    fn count_of(&mut self, key: &str, skeleton: &str) -> &mut u32 {
        if let Holders::One { key: held, count } = self {
            let held = held.as_deref().unwrap_or(skeleton);
            if held != key {
                let mut keys = HashMap::with_capacity(2);
                keys.insert(Box::from(held), *count);
                *self = Holders::Many(Box::new(keys));
            }
        }
        match self {
            Holders::One { count, .. } => count,
            Holders::Many(keys) => keys.entry(Box::from(key)).or_insert(0),
        }
    }
}

impl Lookalikes {
    /// One more holder of the name with this key and skeleton.
    pub(crate) fn hold(&mut self, key: &str, skeleton: &str) {
        match self.by_skeleton.get_mut(skeleton) {
            Some(holders) => *holders.count_of(key, skeleton) += 1,
            None => {
                let key = (key != skeleton).then(|| Box::from(key));
                self.by_skeleton.insert(Box::from(skeleton), Holders::One { key, count: 1 });
            }
        }
    }

    /// One holder fewer (a session renamed or gone, an account deleted, a room closed).
    pub(crate) fn release(&mut self, key: &str, skeleton: &str) {
        let Some(holders) = self.by_skeleton.get_mut(skeleton) else {
            return;
        };
        let empty = match holders {
            Holders::One { key: held, count } => {
                if held.as_deref().unwrap_or(skeleton) == key {
                    *count = count.saturating_sub(1);
                }
                *count == 0
            }
            Holders::Many(keys) => {
                if let Some(count) = keys.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        keys.remove(key);
                    }
                }
                keys.is_empty()
            }
        };
        if empty {
            self.by_skeleton.remove(skeleton);
        }
    }

    /// A name held under another key that looks like the name with this key and
    /// skeleton: the key it is held under.
    pub(crate) fn resembles<'a>(&'a self, key: &str, skeleton: &'a str) -> Option<&'a str> {
        let (held_skeleton, holders) = self.by_skeleton.get_key_value(skeleton)?;
        match holders {
            Holders::One { key: held, .. } => {
                Some(held.as_deref().unwrap_or(held_skeleton)).filter(|held| *held != key)
            }
            Holders::Many(keys) => keys.keys().map(|held| &**held).find(|held| *held != key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Nick;

    fn held(names: &mut Lookalikes, nick: &str) {
        let nick = Nick::parse(nick, 32).expect("valid");
        names.hold(nick.key_str(), nick.skeleton());
    }

    fn resembles(names: &Lookalikes, nick: &str) -> Option<String> {
        let nick = Nick::parse(nick, 32).expect("valid");
        names.resembles(nick.key_str(), nick.skeleton()).map(str::to_owned)
    }

    #[test]
    fn a_lookalike_of_a_held_name_is_found_until_the_last_holder_lets_go() {
        let mut names = Lookalikes::default();
        held(&mut names, "alice");
        held(&mut names, "Alice");
        assert_eq!(resembles(&names, "\u{430}lice"), Some("alice".to_owned()));
        assert_eq!(resembles(&names, "ALICE"), None, "the same name is not a look-alike");
        assert_eq!(resembles(&names, "bob"), None);
        let alice = Nick::parse("alice", 32).expect("valid");
        names.release(alice.key_str(), alice.skeleton());
        assert!(resembles(&names, "\u{430}lice").is_some(), "one holder is left");
        names.release(alice.key_str(), alice.skeleton());
        assert_eq!(resembles(&names, "\u{430}lice"), None);
        assert!(names.by_skeleton.is_empty(), "nothing is kept for names nobody holds");
    }

    #[test]
    fn several_keys_under_one_skeleton_are_counted_apart() {
        let mut names = Lookalikes::default();
        // Held before the check existed: two keys with one skeleton.
        names.hold("alice", "alice");
        names.hold("\u{430}lice", "alice");
        names.hold("\u{430}lice", "alice");
        assert_eq!(names.resembles("alice", "alice"), Some("\u{430}lice"));
        assert_eq!(names.resembles("\u{430}lice", "alice"), Some("alice"));
        names.release("alice", "alice");
        assert_eq!(names.resembles("\u{430}lice", "alice"), None, "alone under its skeleton");
        assert_eq!(names.resembles("alice", "alice"), Some("\u{430}lice"));
        names.release("\u{430}lice", "alice");
        assert!(names.resembles("alice", "alice").is_some(), "one holder is left");
        names.release("bob", "alice");
        names.release("\u{430}lice", "alice");
        assert!(names.by_skeleton.is_empty());
        // A key other than its skeleton, alone.
        names.hold("i0x", "iox");
        assert_eq!(names.resembles("iox", "iox"), Some("i0x"));
        assert_eq!(names.resembles("i0x", "iox"), None);
        names.release("iox", "iox");
        assert_eq!(names.resembles("iox", "iox"), Some("i0x"), "releasing another key takes nothing");
        names.release("i0x", "iox");
        assert!(names.by_skeleton.is_empty());
    }
}
