//! A room: its members, in the order they joined. (Its message counter and latest
//! messages are its [`crate::history::RoomLog`], which outlives it.)

use std::collections::HashSet;
use std::sync::Arc;

use crate::actor::SessionId;
use crate::event::Timestamp;
use crate::modes::RoomModes;
use crate::name::RoomName;
use crate::outbox::{Outbox, RunItem, Shared};

/// A room. Members keep their outbox beside their id, so a fan-out touches no map.
pub(crate) struct Room {
    pub(crate) name: RoomName,
    members: Vec<(SessionId, Arc<Outbox>)>,
    /// Its settings, which last while it has members.
    pub(crate) modes: RoomModes,
    /// Members who may speak when it is moderated.
    pub(crate) voiced: HashSet<SessionId>,
    /// Sessions invited in, until they join.
    pub(crate) invited: HashSet<SessionId>,
    /// When it was created (this time).
    pub(crate) created: Timestamp,
}

impl Room {
    pub(crate) fn new(name: RoomName) -> Self {
        Self {
            name,
            members: Vec::new(),
            modes: RoomModes::default(),
            voiced: HashSet::new(),
            invited: HashSet::new(),
            created: chrono::Utc::now(),
        }
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
