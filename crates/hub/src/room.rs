//! A room with members: who they are, in the order they joined, and what lasts only
//! while they are there (voice, operator places given to a session, invitations). Its
//! settings and durable state are its [`crate::charter::Charter`]; its message counter
//! and latest messages its [`crate::log::RoomLog`]; both outlive it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::handle::SessionId;
use crate::name::RoomName;
use crate::outbox::{Outbox, RunItem, Shared};

/// A room. Members keep their outbox beside their id, so a fan-out touches no map.
pub(crate) struct Room {
    pub(crate) name: RoomName,
    members: Vec<(SessionId, Arc<Outbox>)>,
    /// Members who may speak when it is moderated.
    pub(crate) voiced: HashSet<SessionId>,
    /// Members who operate the room while they stay (its creator, and whoever an
    /// operator makes one) without an account's durable role.
    pub(crate) ops: HashSet<SessionId>,
    /// Sessions invited in, until they join.
    pub(crate) invited: HashSet<SessionId>,
}

impl Room {
    pub(crate) fn new(name: RoomName) -> Self {
        Self { name, members: Vec::new(), voiced: HashSet::new(), ops: HashSet::new(), invited: HashSet::new() }
    }

    pub(crate) fn contains(&self, id: SessionId) -> bool {
        self.members.iter().any(|(member, _)| *member == id)
    }

    pub(crate) fn add(&mut self, id: SessionId, outbox: Arc<Outbox>) {
        if !self.contains(id) {
            self.members.push((id, outbox));
        }
    }

    pub(crate) fn remove(&mut self, id: SessionId) {
        self.members.retain(|(member, _)| *member != id);
        self.voiced.remove(&id);
        self.ops.remove(&id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    pub(crate) fn member_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.members.iter().map(|(id, _)| *id)
    }

    /// Delivers a run of messages to every member, each member's own messages as their
    /// replies (see [`Outbox::deliver_run`]); marks in `answered` the items whose sender
    /// is a member (and so got its reply), and collects the members whose outbox
    /// overflowed, for the hub to disconnect.
    pub(crate) fn broadcast_run(&self, run: &[RunItem], answered: &mut [bool], overflowed: &mut Vec<SessionId>) {
        for (id, outbox) in &self.members {
            for (item, answered) in run.iter().zip(answered.iter_mut()) {
                *answered |= item.sender == *id;
            }
            if outbox.deliver_run(run, *id).is_err() {
                overflowed.push(*id);
            }
        }
    }

    /// Delivers `first` to the members not in `told` (and adds them to it), `again` to
    /// the others: one piece of news told in several rooms, heard as news once.
    pub(crate) fn broadcast_once(
        &self,
        first: &Shared,
        again: &Shared,
        told: &mut HashSet<SessionId>,
        overflowed: &mut Vec<SessionId>,
    ) {
        for (id, outbox) in &self.members {
            let shared = if told.insert(*id) { first } else { again };
            if outbox.deliver_shared(shared).is_err() {
                overflowed.push(*id);
            }
        }
    }

    /// Delivers `shared` to every member but `except`; returns the members whose outbox
    /// overflowed, for the hub to disconnect.
    pub(crate) fn broadcast(&self, shared: &Shared, except: Option<SessionId>, overflowed: &mut Vec<SessionId>) {
        for (id, outbox) in &self.members {
            if Some(*id) != except && outbox.deliver_shared(shared).is_err() {
                overflowed.push(*id);
            }
        }
    }
}
