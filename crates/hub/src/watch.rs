//! Watch lists: the nicks each session asked to be told about when someone takes them
//! or gives them up (IRC's `MONITOR`), and the index from a nick to the sessions that
//! watch it, so that a sign-on, a sign-off or a nick change costs one lookup and a
//! delivery per watcher, never a pass over every session.
//!
//! Nicks are compared by their key (the server's case mapping), as the nick registry
//! compares them. A session that watches nothing has no entry in either map: an idle
//! connection costs nothing here (docs/BENCHMARKS.md, "Idle memory").

use std::collections::HashMap;

use crate::handle::SessionId;
use crate::name::Nick;

/// Every session's watch list, and who watches each nick.
#[derive(Default)]
pub(crate) struct WatchLists {
    /// Each watching session's nicks, in the order it added them, spelled as it did.
    lists: HashMap<SessionId, Vec<Nick>>,
    /// The sessions watching each nick.
    watchers: HashMap<Nick, Vec<SessionId>>,
}

/// What adding a nick to a watch list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// It is on the list now.
    Yes,
    /// It was on the list already.
    Already,
    /// The list holds its most already; nothing changed.
    ListFull,
}

impl WatchLists {
    /// Adds `nick` to the session's list, unless the list holds `max` nicks.
    pub(crate) fn add(&mut self, id: SessionId, nick: Nick, max: usize) -> Added {
        let list = self.lists.get(&id).map_or(&[][..], Vec::as_slice);
        if list.contains(&nick) {
            return Added::Already;
        }
        if list.len() >= max {
            return Added::ListFull;
        }
        self.watchers.entry(nick.clone()).or_default().push(id);
        self.lists.entry(id).or_default().push(nick);
        Added::Yes
    }

    /// Takes `nick` off the session's list, if it is on it.
    pub(crate) fn remove(&mut self, id: SessionId, nick: &Nick) {
        let Some(list) = self.lists.get_mut(&id) else { return };
        let Some(at) = list.iter().position(|n| n == nick) else { return };
        list.remove(at);
        if list.is_empty() {
            self.lists.remove(&id);
        }
        self.unwatch(id, nick);
    }

    /// Empties the session's list (it cleared it, or it is gone).
    pub(crate) fn clear(&mut self, id: SessionId) {
        for nick in self.lists.remove(&id).unwrap_or_default() {
            self.unwatch(id, &nick);
        }
    }

    /// The session's list, in the order it added the nicks.
    pub(crate) fn list(&self, id: SessionId) -> &[Nick] {
        self.lists.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The sessions that watch `nick`.
    pub(crate) fn watchers(&self, nick: &Nick) -> &[SessionId] {
        self.watchers.get(nick).map_or(&[], Vec::as_slice)
    }

    /// How many sessions watch something, and how many nicks are watched.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.lists.len(), self.watchers.len())
    }

    /// Takes the session out of the nick's watchers, and the nick out of the index when
    /// nobody watches it any more.
    fn unwatch(&mut self, id: SessionId, nick: &Nick) {
        let Some(watchers) = self.watchers.get_mut(nick) else { return };
        if let Some(at) = watchers.iter().position(|w| *w == id) {
            watchers.swap_remove(at);
        }
        if watchers.is_empty() {
            self.watchers.remove(nick);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(name: &str) -> Nick {
        Nick::parse(name, 32).expect("a valid nick")
    }

    #[test]
    fn nicks_are_watched_by_key_and_listed_as_spelled() {
        let mut lists = WatchLists::default();
        let (a, b) = (SessionId(1), SessionId(2));
        assert_eq!(lists.add(a, nick("Bob"), 10), Added::Yes);
        assert_eq!(lists.add(a, nick("BOB"), 10), Added::Already);
        assert_eq!(lists.add(b, nick("bob"), 10), Added::Yes);
        assert_eq!(lists.watchers(&nick("bOb")), &[a, b]);
        assert_eq!(lists.list(a).iter().map(Nick::as_str).collect::<Vec<_>>(), ["Bob"]);
        lists.remove(a, &nick("bob"));
        assert_eq!(lists.watchers(&nick("bob")), &[b]);
        assert!(lists.list(a).is_empty());
        assert_eq!(lists.sizes(), (1, 1));
        // The server's case mapping, not ASCII's (RFC 8265 unless set otherwise).
        assert_eq!(lists.add(a, nick("JOSÉ"), 10), Added::Yes);
        assert_eq!(lists.watchers(&nick("josé")), &[a]);
    }

    #[test]
    fn a_full_list_takes_no_more() {
        let mut lists = WatchLists::default();
        let a = SessionId(1);
        assert_eq!(lists.add(a, nick("one"), 2), Added::Yes);
        assert_eq!(lists.add(a, nick("two"), 2), Added::Yes);
        assert_eq!(lists.add(a, nick("three"), 2), Added::ListFull);
        assert_eq!(lists.add(a, nick("ONE"), 2), Added::Already, "a nick on the list is not refused as over it");
        assert!(lists.watchers(&nick("three")).is_empty());
        assert_eq!(lists.sizes(), (1, 2));
    }

    #[test]
    fn clearing_leaves_nothing_behind() {
        let mut lists = WatchLists::default();
        let (a, b) = (SessionId(1), SessionId(2));
        for name in ["one", "two", "three"] {
            lists.add(a, nick(name), 10);
        }
        lists.add(b, nick("two"), 10);
        lists.clear(a);
        assert_eq!(lists.sizes(), (1, 1), "only b's watch of two is left");
        assert_eq!(lists.watchers(&nick("two")), &[b]);
        lists.clear(b);
        assert_eq!(lists.sizes(), (0, 0));
        lists.remove(b, &nick("two"));
        lists.clear(b);
        assert_eq!(lists.sizes(), (0, 0), "removing what is not there changes nothing");
    }
}
