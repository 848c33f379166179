//! Watch lists (IRC's `MONITOR`): a session names nicks, and is told whenever someone
//! takes one (connects with it, or changes to it) or gives it up (leaves, however the
//! connection ended, or changes from it). The lists and their index are
//! [`crate::watch::WatchLists`]; this is what the hub does with them.

use std::collections::HashSet;

use super::Hub;
use crate::command::Watch;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::name::Nick;
use crate::watch::Added;

impl Hub {
    /// Changes or reads the session's watch list.
    pub(super) fn watch(&mut self, id: SessionId, watch: Watch) -> Reply {
        match watch {
            Watch::Add(given) => {
                let max = self.limits.max_watched;
                let mut added = Vec::new();
                let mut full = None;
                for (i, text) in given.iter().enumerate() {
                    // Not a nick: nobody can ever have it; passed over, as IRC servers do.
                    let Ok(nick) = Nick::parse(text, self.limits.max_nick_len) else { continue };
                    match self.watches.add(id, nick.clone(), max) {
                        Added::Yes => added.push(nick),
                        Added::Already => {}
                        Added::ListFull => {
                            full = Some((max, given[i..].to_vec()));
                            break;
                        }
                    }
                }
                self.presence(&added, full)
            }
            Watch::Remove(given) => {
                for text in given {
                    if let Ok(nick) = Nick::parse(&text, self.limits.max_nick_len) {
                        self.watches.remove(id, &nick);
                    }
                }
                Reply::Unwatched
            }
            Watch::Clear => {
                self.watches.clear(id);
                Reply::Unwatched
            }
            Watch::List => Reply::Watched(self.watches.list(id).to_vec()),
            Watch::Status => {
                let watched = self.watches.list(id).to_vec();
                self.presence(&watched, None)
            }
        }
    }

    /// Who of `nicks` is on now: those on as they spell their nick, the others as given.
    fn presence(&self, nicks: &[Nick], full: Option<(usize, Vec<String>)>) -> Reply {
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for nick in nicks {
            let here = self.nicks.get(nick).and_then(|owner| self.sessions.get(owner));
            let found = here.map(|s| (&s.nick, &s.userhost)).or_else(|| {
                // On another node of a cluster.
                self.elsewhere.named(nick).map(|(_, person)| (&person.nick, &person.userhost))
            });
            match found {
                Some((nick, userhost)) => online.push((nick.clone(), userhost.clone())),
                None => offline.push(nick.clone()),
            }
        }
        Reply::Presence { online, offline, full }
    }

    /// Tells those watching the session's nick that it is taken.
    pub(crate) fn signed_on(&mut self, id: SessionId) {
        let Some(state) = self.sessions.get(&id) else { return };
        let watchers = self.watches.watchers(&state.nick);
        if watchers.is_empty() {
            return;
        }
        let watchers = watchers.to_vec();
        let event = Event::SignedOn { nick: state.nick.clone(), userhost: state.userhost.clone() };
        for watcher in watchers {
            self.tell(watcher, &event);
        }
    }

    /// Tells those watching the session's nick, but for those `told` of it already as
    /// its room mates, what it told its room mates about itself (`event`: away, account,
    /// description; IRC's `extended-monitor`).
    pub(crate) fn tell_watchers(&mut self, id: SessionId, event: &Event, told: &HashSet<SessionId>) {
        let Some(state) = self.sessions.get(&id) else { return };
        let watchers: Vec<SessionId> =
            self.watches.watchers(&state.nick).iter().filter(|w| !told.contains(w)).copied().collect();
        if watchers.is_empty() {
            return;
        }
        let event = Event::Watched(Box::new(event.clone()));
        for watcher in watchers {
            self.tell(watcher, &event);
        }
    }

    /// Tells those watching `nick` that it is free.
    /// Tells those watching `nick` that someone on another node of a cluster took it.
    pub(crate) fn signed_on_elsewhere(&mut self, nick: &Nick, userhost: &std::sync::Arc<crate::identity::Userhost>) {
        let watchers = self.watches.watchers(nick).to_vec();
        let event = Event::SignedOn { nick: nick.clone(), userhost: userhost.clone() };
        for watcher in watchers {
            self.tell(watcher, &event);
        }
    }

    pub(crate) fn signed_off(&mut self, nick: &Nick) {
        let watchers = self.watches.watchers(nick);
        if watchers.is_empty() {
            return;
        }
        let watchers = watchers.to_vec();
        let event = Event::SignedOff { nick: nick.clone() };
        for watcher in watchers {
            self.tell(watcher, &event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::BytesMut;

    use super::*;
    use crate::command::{Command, RequestId};
    use crate::event::LeaveReason;
    use crate::identity::{Arrival, Userhost};
    use crate::outbox::{Outbox, Wire};

    /// Sign-ons and sign-offs only, one line each.
    struct Comings;

    impl Wire for Comings {
        fn cache_slot(&self) -> Option<usize> {
            None
        }

        fn encode(&self, event: &Event, out: &mut BytesMut) {
            let line = match event {
                Event::SignedOn { nick, userhost } => format!("on {nick}!{}@{}\n", userhost.user, userhost.host),
                Event::SignedOff { nick } => format!("off {nick}\n"),
                _ => return,
            };
            out.extend_from_slice(line.as_bytes());
        }
    }

    fn connect(hub: &mut Hub, nick: &str) -> (SessionId, Arc<Outbox>) {
        let outbox = Arc::new(Outbox::new(Comings, 1 << 20));
        let arrival = Arrival { address: None, userhost: Userhost::new("u", "h"), lobby: false };
        let id = hub.connect(nick, None, arrival, RequestId(0), outbox.clone(), None).expect("registers");
        (id, outbox)
    }

    async fn told(outbox: &Outbox) -> String {
        let mut buf = BytesMut::new();
        if outbox.is_empty() {
            return String::new();
        }
        outbox.take(&mut buf).await;
        String::from_utf8(buf.to_vec()).expect("UTF-8")
    }

    fn watch(hub: &mut Hub, id: SessionId, watch: Watch) {
        hub.command(id, RequestId(1), Command::Watch(watch));
    }

    #[tokio::test]
    async fn watchers_hear_of_comings_and_goings_and_leave_nothing_behind() {
        let mut hub = Hub::new(crate::Limits::default());
        let (ann, ann_out) = connect(&mut hub, "ann");
        let (cy, cy_out) = connect(&mut hub, "cy");
        watch(&mut hub, ann, Watch::Add(vec!["Bob".into(), "dee".into()]));
        watch(&mut hub, cy, Watch::Add(vec!["BOB".into()]));
        told(&ann_out).await;
        told(&cy_out).await;
        let (bob, _) = connect(&mut hub, "bob");
        assert_eq!(told(&ann_out).await, "on bob!u@h\n");
        assert_eq!(told(&cy_out).await, "on bob!u@h\n");
        assert!(hub.rename(bob, RequestId(1), "Dee").is_ok());
        assert_eq!(told(&ann_out).await, "off bob\non Dee!u@h\n");
        assert_eq!(told(&cy_out).await, "off bob\n");
        assert!(hub.rename(bob, RequestId(2), "DEE").is_ok());
        assert_eq!(told(&ann_out).await, "", "a change of case is no coming or going");
        hub.remove_session(bob, LeaveReason::Lost, None);
        assert_eq!(told(&ann_out).await, "off DEE\n");
        // The watchers go: nothing of their lists is left in the index.
        hub.remove_session(ann, LeaveReason::Quit, None);
        assert_eq!(hub.watches.sizes(), (1, 1), "cy's watch of bob alone");
        hub.remove_session(cy, LeaveReason::Lost, None);
        assert_eq!(hub.watches.sizes(), (0, 0));
    }
}
