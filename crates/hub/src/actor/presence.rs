//! Presence across a cluster (see `presence.rs`): telling the other nodes who is where on
//! this one, and taking in what they tell, so that this node's members hear of
//! arrivals, departures, nick changes and absences on other nodes as of their own.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;

use super::Hub;
use crate::event::{Event, LeaveReason};
use crate::handle::SessionId;
use crate::name::RoomName;
use crate::outbox::Shared;
use crate::presence::{Marks, Person, Presence, Whereabout};

/// Why the sessions of a node that went away left, as their room mates are told.
const NODE_GONE: &str = "the server they were on went away";

impl Hub {
    /// Tells the other nodes, when in a cluster.
    pub(crate) fn tell_cluster(&self, presence: impl FnOnce() -> Presence) {
        if let Some(ledger) = &self.ledger {
            ledger.announce(presence());
        }
    }

    /// The session arrived: the other nodes are told.
    pub(crate) fn tell_cluster_arrived(&self, id: SessionId) {
        let Some(state) = self.sessions.get(&id) else { return };
        self.tell_cluster(|| Presence::Arrived {
            session: id.0,
            nick: state.nick.clone(),
            userhost: state.userhost.clone(),
            account: state.account_name().cloned(),
            party: state.party(),
        });
    }

    /// The session entered `room`: the other nodes are told, with its marks there.
    pub(crate) fn tell_cluster_joined(&self, id: SessionId, room: &RoomName) {
        let Some(state) = self.sessions.get(&id) else { return };
        self.tell_cluster(|| Presence::Joined {
            session: id.0,
            room: room.clone(),
            nick: state.nick.clone(),
            userhost: state.userhost.clone(),
            account: state.account_name().cloned(),
            realname: state.realname.clone(),
            party: state.party(),
            marks: self.marks_of(id, room),
        });
    }

    /// The marks member lists show for a session of this node in `room`.
    pub(crate) fn marks_of(&self, id: SessionId, room: &RoomName) -> Marks {
        Marks { op: self.is_op(id, room), voice: self.rooms.get(room).is_some_and(|r| r.voiced.contains(&id)) }
    }

    /// The marks of a session of this node in `room` may have changed: the other nodes
    /// are told them (a member there only; its marks go with it when it leaves).
    pub(crate) fn tell_cluster_marks(&self, id: SessionId, room: &RoomName) {
        if self.ledger.is_none() || !self.rooms.get(room).is_some_and(|r| r.contains(id)) {
            return;
        }
        self.tell_cluster(|| Presence::Marked { session: id.0, room: room.clone(), marks: self.marks_of(id, room) });
    }

    /// What another node told.
    pub(super) fn heard(&mut self, node: Arc<str>, presence: Presence) {
        match presence {
            Presence::Arrived { session, nick, userhost, account, party } => {
                let person = Person::new(nick.clone(), userhost.clone(), account, None, party);
                if self.elsewhere.arrive((node, session), person) {
                    self.signed_on_elsewhere(&nick, &userhost);
                }
            }
            Presence::Joined { session, room, nick, userhost, account, realname, party, marks } => {
                let person = Person::new(nick.clone(), userhost.clone(), account.clone(), realname.clone(), party);
                if !self.elsewhere.enter((node, session), person, &room, marks) {
                    return;
                }
                self.adopt_room(&room);
                let Some(members) = self.rooms.get(&room) else { return };
                if members.len() + self.elsewhere.count_in(&room) <= self.limits.announce_up_to {
                    let joined = Shared::new(Event::Joined {
                        room: members.name.clone(),
                        nick,
                        at: Utc::now(),
                        arrival: false,
                        account,
                        realname,
                        userhost,
                    });
                    members.broadcast(&joined, None, &mut self.overflowed);
                }
            }
            // Quietly: what changed the marks (an operator's change, a mode) was told to
            // the members here as it was applied.
            Presence::Marked { session, room, marks } => {
                self.elsewhere.mark(&(node, session), &room, marks);
            }
            Presence::Invited { room, nick, by, userhost } => self.invited_from_elsewhere(&room, &nick, by, userhost),
            Presence::Left { session, room, reason, by, detail } => {
                let at = (node, session);
                if !self.elsewhere.leave(&at, &room) {
                    return;
                }
                self.close_if_empty(&room);
                let Some(person) = self.elsewhere.get(&at) else { return };
                let Some(members) = self.rooms.get(&room) else { return };
                let announced = members.len() + self.elsewhere.count_in(&room) < self.limits.announce_up_to;
                if announced || matches!(reason, LeaveReason::Kicked | LeaveReason::Banned) {
                    let by_userhost = by.as_ref().map(|by| self.userhost_named(by));
                    let left = Shared::new(Event::Left {
                        room: members.name.clone(),
                        nick: person.nick.clone(),
                        at: Utc::now(),
                        reason,
                        by,
                        detail,
                        again: false,
                        userhost: person.userhost.clone(),
                        by_userhost,
                    });
                    members.broadcast(&left, None, &mut self.overflowed);
                }
            }
            Presence::Gone { session, reason, detail } => self.gone_elsewhere(&(node, session), reason, detail),
            Presence::Renamed { session, nick } => {
                let at = (node, session);
                let Some(old) = self.elsewhere.rename(&at, nick.clone()) else { return };
                let Some(person) = self.elsewhere.get(&at) else { return };
                let userhost = person.userhost.clone();
                if old != nick {
                    self.signed_off(&old);
                    self.signed_on_elsewhere(&nick, &userhost);
                }
                let Some(person) = self.elsewhere.get(&at) else { return };
                let changed = Shared::new(Event::NickChanged {
                    old,
                    new: nick,
                    at: Utc::now(),
                    userhost: person.userhost.clone(),
                });
                let rooms = person.rooms.clone();
                self.tell_members_of(&rooms, &changed);
            }
            Presence::Away { session, text } => {
                let at = (node, session);
                let Some(person) = self.elsewhere.set_away(&at, text.clone()) else { return };
                let away =
                    Shared::new(Event::Away { nick: person.nick.clone(), text, userhost: person.userhost.clone() });
                let rooms = person.rooms.clone();
                self.tell_members_of(&rooms, &away);
            }
            Presence::Moderated(change) => self.apply_change(SessionId::NOBODY, None, *change),
            Presence::Modes { room, by, modes, changes } => self.modes_elsewhere(&room, by, modes, &changes),
            Presence::Settings { room, modes, topic } => self.settings_elsewhere(&room, modes, topic),
            Presence::SignedOut { account, token } => self.sign_out(account, token, None),
            Presence::Hello => self.reannounce(),
            Presence::Reset => self.elsewhere.mark_stale(&node),
            Presence::Settled => {
                for at in self.elsewhere.stale_on(&node) {
                    self.gone_elsewhere(&at, LeaveReason::Lost, Some(Arc::from(NODE_GONE)));
                }
            }
        }
        self.drop_slow_consumers();
    }

    /// A node went away: so did everyone on it.
    pub(super) fn node_gone(&mut self, node: &str) {
        let people = self.elsewhere.on_node(node);
        if !people.is_empty() {
            tracing::info!(node, sessions = people.len(), "a node of the cluster went away");
        }
        for at in people {
            self.gone_elsewhere(&at, LeaveReason::Lost, Some(Arc::from(NODE_GONE)));
        }
        self.drop_slow_consumers();
    }

    /// Tells the other nodes everything again: every session in every room (with its
    /// marks there), who is away, and the settings and topic of every room with members
    /// here (after their joins, so that a node hearing of a room late has adopted it),
    /// between a reset and its end.
    pub(super) fn reannounce(&self) {
        if self.ledger.is_none() {
            return;
        }
        self.tell_cluster(|| Presence::Reset);
        for (id, state) in &self.sessions {
            self.tell_cluster_arrived(*id);
            for room in &state.rooms {
                self.tell_cluster_joined(*id, room);
            }
            if let Some(text) = &state.away {
                self.tell_cluster(|| Presence::Away { session: id.0, text: Some(text.clone()) });
            }
        }
        for charter in self.rooms.keys().filter_map(|room| self.charters.get(room)) {
            self.tell_cluster(|| Presence::Settings {
                room: charter.name.clone(),
                modes: charter.modes.clone(),
                topic: charter.topic.clone(),
            });
        }
        self.tell_cluster(|| Presence::Settled);
    }

    /// Another node told a room's settings and topic again: what this node did not know
    /// of them (it adopted the room from presence, and heard no change since) it takes,
    /// telling its members here only what changed; what it knows it keeps, as a change
    /// made meanwhile may have overtaken what was told.
    fn settings_elsewhere(
        &mut self,
        room: &RoomName,
        modes: crate::modes::RoomModes,
        topic: Option<crate::moderation::Topic>,
    ) {
        let Some(charter) = self.charters.get_mut(room) else { return };
        let mut changes = Vec::new();
        if !charter.known.modes {
            changes = charter.modes.changes_to(&modes);
            charter.modes = modes;
            charter.known.modes = true;
        }
        let mut new_topic = None;
        if !charter.known.topic {
            if charter.topic != topic {
                new_topic = Some(topic.clone());
            }
            charter.topic = topic;
            charter.known.topic = true;
        }
        if !self.rooms.contains_key(room) {
            return;
        }
        let server = self.actor_name(SessionId::NOBODY);
        if !changes.is_empty() {
            self.announce_modes(room, server.clone(), changes);
        }
        if let (Some(topic), Some(members)) = (new_topic, self.rooms.get(room)) {
            let (by, text) = topic.map_or((server, Arc::from("")), |t| (t.by, Arc::from(t.text)));
            let at = Utc::now();
            let userhost = self.userhost_named(&by);
            let event = Shared::new(Event::Topic { room: members.name.clone(), by, at, text, userhost });
            members.broadcast(&event, None, &mut self.overflowed);
        }
    }

    /// Someone elsewhere left the chat: each of their room mates here is told once.
    fn gone_elsewhere(&mut self, at: &Whereabout, reason: LeaveReason, detail: Option<Arc<str>>) {
        let Some(person) = self.elsewhere.remove(at) else { return };
        for room in &person.rooms {
            self.close_if_empty(room);
        }
        self.signed_off(&person.nick);
        let mut told = HashSet::new();
        for room in &person.rooms {
            let Some(members) = self.rooms.get(room) else { continue };
            if members.len() + self.elsewhere.count_in(room) >= self.limits.announce_up_to {
                continue;
            }
            let left = |again| {
                Shared::new(Event::Left {
                    room: members.name.clone(),
                    nick: person.nick.clone(),
                    at: Utc::now(),
                    reason,
                    by: None,
                    detail: detail.clone(),
                    again,
                    userhost: person.userhost.clone(),
                    by_userhost: None,
                })
            };
            members.broadcast_once(&left(false), &left(true), &mut told, &mut self.overflowed);
        }
    }

    /// A room with members on another node has a charter here too, as one with members
    /// here has: what its operators change (its topic, settings, bans) is applied to it,
    /// and holds for whoever joins it here.
    fn adopt_room(&mut self, room: &RoomName) {
        if !self.charters.contains_key(room) {
            self.hold_room(room);
            let mut charter = crate::charter::Charter::fresh(room.clone(), 1, crate::modes::RoomModes::default());
            charter.known = crate::charter::Known { modes: false, topic: false };
            self.charters.insert(room.clone(), charter);
        }
    }

    /// The room has no member left anywhere: an unregistered one's life ends.
    fn close_if_empty(&mut self, room: &RoomName) {
        if !self.rooms.contains_key(room) && self.elsewhere.count_in(room) == 0 {
            self.close_room(room);
        }
    }

    /// Delivers `event` once to each member here of any of `rooms`.
    fn tell_members_of(&mut self, rooms: &[RoomName], event: &Shared) {
        let mut told = HashSet::new();
        for room in rooms.iter().filter_map(|name| self.rooms.get(name)) {
            if room.len() + self.elsewhere.count_in(&room.name) > self.limits.announce_up_to {
                continue;
            }
            for member in room.member_ids() {
                if told.insert(member) {
                    if let Some(state) = self.sessions.get(&member) {
                        if state.outbox.deliver_shared(event).is_err() {
                            self.overflowed.push(member);
                        }
                    }
                }
            }
        }
    }
}
