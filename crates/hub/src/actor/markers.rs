//! Read markers: where a user read up to in each room and conversation, shared by all
//! their sessions. An account's markers are kept by the store and held here; a guest's
//! live in its session and end with it. Markers are instants (the time of the last
//! message read, as IRC's `draft/read-marker` has them) and only move forward.

use chrono::Utc;

use super::{Answer, Completion, Hub};
use crate::command::{Marked, RequestId};
use crate::error::HubError;
use crate::event::{Event, MarkTarget, Reply, Timestamp};
use crate::handle::SessionId;
use crate::identity::AccountId;
use crate::name::RoomName;
use crate::store::StoreError;

impl Hub {
    /// The key a room's marker is kept under.
    pub(super) fn room_key(room: &RoomName) -> String {
        format!("#{}", room.key_str())
    }

    /// The session's marker under `key`: its account's, or its own as a guest.
    pub(super) fn marker(&self, id: SessionId, key: &str) -> Option<Timestamp> {
        let state = self.sessions.get(&id)?;
        match &state.account {
            Some(account) => self.markers.get(&account.id)?.get(key).copied(),
            None => state.markers.as_ref().and_then(|markers| markers.get(key).copied()),
        }
    }

    /// `Command::MarkRead`: answers the marker, after moving it forward if `at` is later.
    pub(super) fn mark_read(
        &mut self,
        id: SessionId,
        req: RequestId,
        target: Marked,
        at: Option<Timestamp>,
    ) -> Result<Answer, HubError> {
        let (target, key) = match target {
            // Only rooms one is in: a marker must not tell whether a secret room exists.
            Marked::Room(name) => {
                let room = self.joined_room(id, &name)?;
                let key = Self::room_key(&room);
                (MarkTarget::Room(room), key)
            }
            Marked::With(nick) => {
                let (nick, party) = self.party_named(&nick)?;
                (MarkTarget::With(nick), format!("@{}", party.to_i64()))
            }
        };
        let current = self.marker(id, &key);
        // Nobody reads what has not been said yet.
        let at = at.map(|at| at.min(Utc::now()));
        let later = match (at, current) {
            (Some(at), Some(current)) => (at > current).then_some(at),
            (Some(at), None) => Some(at),
            (None, _) => None,
        };
        let Some(at) = later else {
            return Ok(Reply::Marker { target, at: current }.into());
        };
        let account = self.state(id).account.as_ref().map(|a| a.id);
        match (account, self.store.clone()) {
            (None, _) => {
                self.state_mut(id).markers.get_or_insert_default().insert(key, at);
                Ok(Reply::Marker { target, at: Some(at) }.into())
            }
            (Some(account), None) => {
                self.marked(id, account, key, target.clone(), at);
                Ok(Reply::Marker { target, at: Some(at) }.into())
            }
            (Some(account), Some(store)) => {
                self.writes += 1;
                let completions = self.completions.clone();
                self.write(move || {
                    let result = store.mark_read(account, &key, at);
                    let _ = completions.send(Completion::Marked { session: id, req, account, key, target, at, result });
                });
                Ok(Answer::Later)
            }
        }
    }

    /// The store kept a marker: hold it, tell the account's other sessions, answer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn marker_written(
        &mut self,
        id: SessionId,
        req: RequestId,
        account: AccountId,
        key: String,
        target: MarkTarget,
        at: Timestamp,
        result: Result<(), StoreError>,
    ) {
        self.writes -= 1;
        match result {
            Ok(()) => {
                let at = self.marked(id, account, key, target.clone(), at);
                self.reply(id, req, Ok(Reply::Marker { target, at: Some(at) }));
            }
            Err(e) => self.reply(id, req, Err(super::store_failed(&e))),
        }
        self.drop_slow_consumers();
    }

    /// Moves the account's marker forward to `at` (a write that finished after a later
    /// one leaves the later), telling its other sessions of a move. Returns the marker.
    fn marked(
        &mut self,
        id: SessionId,
        account: AccountId,
        key: String,
        target: MarkTarget,
        at: Timestamp,
    ) -> Timestamp {
        let held = self.markers.entry(account).or_default().entry(key).or_insert(at);
        if *held > at {
            return *held;
        }
        *held = at;
        let event = Event::Marker { target, at };
        let others: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(other, state)| **other != id && state.account.as_ref().is_some_and(|a| a.id == account))
            .map(|(other, _)| *other)
            .collect();
        for other in others {
            self.tell(other, &event);
        }
        at
    }
}
