//! Presence across a cluster: who is on the other nodes, and in which rooms.
//!
//! A clustered hub tells the other nodes of every change in who is where among its own
//! sessions ([`Presence`], through the [`crate::Ledger`]), and keeps what the others tell
//! it ([`Elsewhere`]), so that member lists, `WHO`, `WHOIS` and private messages reach
//! everyone in the cluster, and its members hear of arrivals and departures on other
//! nodes as of those on their own. A node is known by the name its log gives it for
//! this run; when it goes (its lease in the cluster ran out, or it started again under
//! a new run), everyone it had is gone with it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::event::LeaveReason;
use crate::identity::{Party, Userhost};
use crate::name::{Nick, RoomName};

/// A change in who is on this node, for the other nodes. `session` is the session's
/// number on the node that tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// A session arrived (before any room: a user in none still takes private messages
    /// and answers `WHOIS`).
    Arrived {
        /// The session.
        session: u64,
        /// Its nick.
        nick: Nick,
        /// Its user name and host.
        userhost: Arc<Userhost>,
        /// The account it is logged in to.
        account: Option<Nick>,
        /// Who owns its private messages.
        party: Party,
    },
    /// A session entered a room.
    Joined {
        /// The session.
        session: u64,
        /// The room.
        room: RoomName,
        /// Its nick.
        nick: Nick,
        /// Its user name and host.
        userhost: Arc<Userhost>,
        /// The account it is logged in to.
        account: Option<Nick>,
        /// What its client says about its user.
        realname: Option<Arc<str>>,
        /// Who owns its private messages.
        party: Party,
        /// Its marks in the room as it enters (a room's creator operates it).
        marks: Marks,
    },
    /// A session's marks in a room changed (made operator or not, voiced or not). Shown
    /// in member lists on other nodes; what a session may do is decided on its own node.
    Marked {
        /// The session.
        session: u64,
        /// The room.
        room: RoomName,
        /// Its marks there now.
        marks: Marks,
    },
    /// An operator invited the holder of `nick`, on another node, into `room`: their
    /// node keeps the invitation and tells them.
    Invited {
        /// The room.
        room: RoomName,
        /// Who is invited.
        nick: Nick,
        /// Who invites.
        by: Nick,
        /// The user name and host of who invites.
        userhost: Arc<Userhost>,
    },
    /// A session left a room, still connected.
    Left {
        /// The session.
        session: u64,
        /// The room.
        room: RoomName,
        /// Why.
        reason: LeaveReason,
        /// Who put it out, for a kick or a ban.
        by: Option<Nick>,
        /// The reason given.
        detail: Option<Arc<str>>,
    },
    /// A session ended, leaving every room.
    Gone {
        /// The session.
        session: u64,
        /// Why.
        reason: LeaveReason,
        /// Its quit message, or why the connection ended.
        detail: Option<Arc<str>>,
    },
    /// A session changed nick.
    Renamed {
        /// The session.
        session: u64,
        /// The new nick.
        nick: Nick,
    },
    /// A session went away (with a message) or came back (`None`).
    Away {
        /// The session.
        session: u64,
        /// The away message.
        text: Option<Arc<str>>,
    },
    /// An operator's change (topic, kick, ban or mute, operators, registration, a
    /// server ban), written to the shared database by the node it was made on: the
    /// others apply it, writing nothing.
    Moderated(Box<crate::moderation::Change>),
    /// A room's settings or voices changed (`MODE`), as `changes` says, by `by`.
    Modes {
        /// The room.
        room: RoomName,
        /// Who changed them.
        by: Nick,
        /// The room's settings now.
        modes: crate::modes::RoomModes,
        /// What changed, as its members are told.
        changes: Vec<crate::modes::ModeChange>,
    },
    /// A room's settings and topic as the telling node has them, told again with its
    /// members after a [`Presence::Hello`] or [`Presence::Reset`]: a node that adopted the
    /// room from presence takes what it does not know yet (quietly when nothing
    /// changes); one that knows keeps its own.
    Settings {
        /// The room.
        room: RoomName,
        /// Its settings.
        modes: crate::modes::RoomModes,
        /// Its topic.
        topic: Option<crate::moderation::Topic>,
    },
    /// Connections logged in to an account end, on every node: those holding its
    /// resume token `token` (revoked), or every one (`None`: its password changed).
    SignedOut {
        /// Whose.
        account: crate::identity::AccountId,
        /// The revoked token's id.
        token: Option<u64>,
    },
    /// A node started: every other node tells it everything (a reset), since it
    /// follows the log from where it stopped, not from the log's beginning.
    Hello,
    /// The node tells everything again (what others heard from it may have missed
    /// something while it was cut off): what follows until [`Presence::Settled`]
    /// confirms what they knew, quietly, and what it does not confirm is gone.
    Reset,
    /// The end of a [`Presence::Reset`].
    Settled,
}

/// How a member is marked in a room's member lists: an operator of it (`@` on IRC), a
/// voiced member (`+`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// Operates the room (while it stays, or by its account's durable role).
    pub op: bool,
    /// May speak when the room is moderated.
    pub voice: bool,
}

impl Marks {
    /// Neither mark.
    pub(crate) fn is_none(self) -> bool {
        self == Marks::default()
    }
}

/// A session on another node, as this node knows it.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) nick: Nick,
    pub(crate) userhost: Arc<Userhost>,
    pub(crate) account: Option<Nick>,
    pub(crate) realname: Option<Arc<str>>,
    pub(crate) away: Option<Arc<str>>,
    pub(crate) party: Party,
    pub(crate) rooms: Vec<RoomName>,
    /// Their marks in the rooms where they have any, as their node tells.
    pub(crate) marks: HashMap<RoomName, Marks>,
    /// Not confirmed since its node's [`Presence::Reset`].
    pub(crate) stale: bool,
    /// When this node first heard of them.
    pub(crate) since: crate::event::Timestamp,
}

/// Where a person is: their node's run and their session there.
pub(crate) type Whereabout = (Arc<str>, u64);

/// Everyone on the other nodes, by node and session, by room and by nick.
#[derive(Debug, Default)]
pub(crate) struct Elsewhere {
    people: HashMap<Whereabout, Person>,
    by_room: HashMap<RoomName, HashSet<Whereabout>>,
    by_nick: HashMap<Nick, Whereabout>,
}

impl Elsewhere {
    pub(crate) fn get(&self, at: &Whereabout) -> Option<&Person> {
        self.people.get(at)
    }

    pub(crate) fn named(&self, nick: &Nick) -> Option<(&Whereabout, &Person)> {
        let at = self.by_nick.get(nick)?;
        self.people.get_key_value(at)
    }

    /// Who is in `room` elsewhere.
    pub(crate) fn in_room(&self, room: &RoomName) -> impl Iterator<Item = &Person> {
        self.by_room.get(room).into_iter().flatten().filter_map(|at| self.people.get(at))
    }

    pub(crate) fn count_in(&self, room: &RoomName) -> usize {
        self.by_room.get(room).map_or(0, HashSet::len)
    }

    /// Rooms with someone elsewhere.
    pub(crate) fn rooms(&self) -> impl Iterator<Item = (&RoomName, usize)> {
        self.by_room.iter().map(|(room, people)| (room, people.len()))
    }

    pub(crate) fn people(&self) -> usize {
        self.people.len()
    }

    /// Adds a person in no room yet (or confirms one after a reset); false if known.
    pub(crate) fn arrive(&mut self, at: Whereabout, person: Person) -> bool {
        if let Some(known) = self.people.get_mut(&at) {
            known.stale = false;
            return false;
        }
        self.by_nick.insert(person.nick.clone(), at.clone());
        self.people.insert(at, person);
        true
    }

    /// Adds a person to a room (creating the person) with their marks there; false if
    /// they were there already (their marks are taken as told all the same).
    pub(crate) fn enter(&mut self, at: Whereabout, person: Person, room: &RoomName, marks: Marks) -> bool {
        let known = self.people.entry(at.clone()).or_insert_with(|| person.clone());
        known.stale = false;
        set_marks(known, room, marks);
        if known.nick != person.nick {
            self.by_nick.remove(&known.nick);
            known.nick = person.nick.clone();
        }
        self.by_nick.insert(person.nick, at.clone());
        if known.rooms.contains(room) {
            return false;
        }
        known.rooms.push(room.clone());
        self.by_room.entry(room.clone()).or_default().insert(at);
        true
    }

    /// Takes a person out of a room; false if they were not there.
    pub(crate) fn leave(&mut self, at: &Whereabout, room: &RoomName) -> bool {
        let Some(person) = self.people.get_mut(at) else { return false };
        let before = person.rooms.len();
        person.rooms.retain(|r| r != room);
        if person.rooms.len() == before {
            return false;
        }
        person.marks.remove(room);
        if let Some(people) = self.by_room.get_mut(room) {
            people.remove(at);
            if people.is_empty() {
                self.by_room.remove(room);
            }
        }
        true
    }

    /// A person's marks in a room they are in changed; false if they are not there.
    pub(crate) fn mark(&mut self, at: &Whereabout, room: &RoomName, marks: Marks) -> bool {
        let Some(person) = self.people.get_mut(at).filter(|p| p.rooms.contains(room)) else { return false };
        set_marks(person, room, marks);
        true
    }

    /// Forgets a person, returning what was known of them.
    pub(crate) fn remove(&mut self, at: &Whereabout) -> Option<Person> {
        let person = self.people.remove(at)?;
        if self.by_nick.get(&person.nick) == Some(at) {
            self.by_nick.remove(&person.nick);
        }
        for room in &person.rooms {
            if let Some(people) = self.by_room.get_mut(room) {
                people.remove(at);
                if people.is_empty() {
                    self.by_room.remove(room);
                }
            }
        }
        Some(person)
    }

    pub(crate) fn rename(&mut self, at: &Whereabout, nick: Nick) -> Option<Nick> {
        let person = self.people.get_mut(at)?;
        let old = std::mem::replace(&mut person.nick, nick.clone());
        if self.by_nick.get(&old) == Some(at) {
            self.by_nick.remove(&old);
        }
        self.by_nick.insert(nick, at.clone());
        Some(old)
    }

    pub(crate) fn set_away(&mut self, at: &Whereabout, text: Option<Arc<str>>) -> Option<&Person> {
        let person = self.people.get_mut(at)?;
        person.away = text;
        Some(person)
    }

    /// Everyone known on `node`'s run.
    pub(crate) fn on_node(&self, node: &str) -> Vec<Whereabout> {
        self.people.keys().filter(|(n, _)| &**n == node).cloned().collect()
    }

    /// Marks everyone on `node` unconfirmed.
    pub(crate) fn mark_stale(&mut self, node: &str) {
        for ((n, _), person) in &mut self.people {
            if &**n == node {
                person.stale = true;
            }
        }
    }

    /// Those on `node` still unconfirmed.
    pub(crate) fn stale_on(&self, node: &str) -> Vec<Whereabout> {
        self.people.iter().filter(|((n, _), p)| &**n == node && p.stale).map(|(at, _)| at.clone()).collect()
    }
}

/// Keeps a person's marks in `room`, only those that say something.
fn set_marks(person: &mut Person, room: &RoomName, marks: Marks) {
    if marks.is_none() {
        person.marks.remove(room);
    } else {
        person.marks.insert(room.clone(), marks);
    }
}

impl Person {
    /// Someone just heard of, in no room yet, present and not away.
    pub(crate) fn new(
        nick: Nick,
        userhost: Arc<Userhost>,
        account: Option<Nick>,
        realname: Option<Arc<str>>,
        party: Party,
    ) -> Person {
        Person {
            nick,
            userhost,
            account,
            realname,
            away: None,
            party,
            rooms: Vec::new(),
            marks: HashMap::new(),
            stale: false,
            since: chrono::Utc::now(),
        }
    }

    /// Their marks in `room`, as their node told.
    pub(crate) fn marks_in(&self, room: &RoomName) -> Marks {
        self.marks.get(room).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(nick: &str) -> Person {
        let party = Party::Guest(crate::identity::GuestId(1));
        Person::new(Nick::parse(nick, 32).expect("nick"), Userhost::unknown(), None, None, party)
    }

    #[test]
    fn the_indexes_follow_every_change_and_empty_out() {
        let mut elsewhere = Elsewhere::default();
        let dev = RoomName::parse("dev", 32).expect("room");
        let ops = RoomName::parse("ops", 32).expect("room");
        let at: Whereabout = (Arc::from("n1"), 7);
        let op = Marks { op: true, voice: false };
        assert!(elsewhere.enter(at.clone(), person("ada"), &dev, op));
        assert!(!elsewhere.enter(at.clone(), person("ada"), &dev, op), "already there");
        assert!(elsewhere.enter(at.clone(), person("ada"), &ops, Marks::default()));
        assert!(elsewhere.mark(&at, &ops, Marks { op: false, voice: true }));
        assert!(!elsewhere.mark(&at, &RoomName::parse("elsewhere", 32).expect("room"), op), "not there");
        let ada = elsewhere.get(&at).expect("ada");
        assert_eq!((ada.marks_in(&dev), ada.marks_in(&ops).voice), (op, true));
        assert_eq!(elsewhere.count_in(&dev), 1);
        assert_eq!(
            elsewhere.rename(&at, Nick::parse("ada2", 32).expect("nick")).map(|n| n.to_string()),
            Some("ada".into())
        );
        assert!(elsewhere.named(&Nick::parse("ada", 32).expect("nick")).is_none());
        assert!(elsewhere.named(&Nick::parse("ADA2", 32).expect("nick")).is_some());
        assert!(elsewhere.leave(&at, &dev));
        assert!(!elsewhere.leave(&at, &dev));
        assert!(elsewhere.get(&at).expect("ada").marks_in(&dev).is_none(), "marks go with the room");
        assert_eq!(elsewhere.count_in(&dev), 0);
        elsewhere.mark_stale("n1");
        assert_eq!(elsewhere.stale_on("n1"), std::slice::from_ref(&at));
        assert!(elsewhere.remove(&at).is_some());
        assert_eq!((elsewhere.people(), elsewhere.rooms().count()), (0, 0));
        assert!(elsewhere.by_nick.is_empty());
    }
}
