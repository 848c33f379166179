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
#[derive(Debug, Default)]
pub(crate) struct Lookalikes {
    by_skeleton: HashMap<String, HashMap<String, u32>>,
}

impl Lookalikes {
    /// One more holder of the name with this key and skeleton.
    pub(crate) fn hold(&mut self, key: &str, skeleton: &str) {
        let keys = self.by_skeleton.entry(skeleton.to_owned()).or_default();
        *keys.entry(key.to_owned()).or_default() += 1;
    }

    /// One holder fewer (a session renamed or gone, an account deleted, a room closed).
    pub(crate) fn release(&mut self, key: &str, skeleton: &str) {
        let Some(keys) = self.by_skeleton.get_mut(skeleton) else {
            return;
        };
        if let Some(count) = keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                keys.remove(key);
            }
        }
        if keys.is_empty() {
            self.by_skeleton.remove(skeleton);
        }
    }

    /// A name held under another key that looks like the name with this key and
    /// skeleton: the key it is held under.
    pub(crate) fn resembles(&self, key: &str, skeleton: &str) -> Option<&str> {
        self.by_skeleton.get(skeleton)?.keys().find(|held| held.as_str() != key).map(String::as_str)
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
}
