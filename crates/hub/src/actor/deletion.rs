//! Deleting a message: its author may, and so may the room's operators and server
//! admins. The store checks the author and deletes in one transaction (the message may
//! be older than anything the hub holds); then the members are told, and the message
//! leaves the newcomers' replay.

use std::sync::Arc;

use chrono::Utc;

use super::{shorten, store_failed, Answer, Completion, Hub, MAX_REASON};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::identity::Party;
use crate::name::RoomName;
use crate::outbox::Shared;
use crate::store::{Deletion, StoreError};

/// A deletion being written.
pub(crate) struct Pending {
    pub(crate) room: RoomName,
    pub(crate) seq: u64,
    pub(crate) reason: Option<Arc<str>>,
}

impl Hub {
    /// `Command::Delete`: checks what the hub can (the session is in the room, or an
    /// admin; the message is of the room's visible past), and has the store check the
    /// author and delete.
    pub(super) fn delete(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        seq: u64,
        reason: Option<String>,
    ) -> Result<Answer, HubError> {
        let room = self.moderated_room(id, room)?;
        let since = self.since(&room);
        let committed = self.logs.get(&room).map_or(0, |log| log.committed);
        if seq < since || seq > committed {
            return Err(HubError::NoSuchMessage { room: room.to_string(), seq });
        }
        // Operators delete anyone's words; others only their own.
        let author = (!self.may_moderate(id, &room)).then(|| self.state(id).party());
        let reason = reason.map(|r| shorten(r.trim(), MAX_REASON)).filter(|r| !r.is_empty()).map(Arc::from);
        let pending = Pending { room: room.clone(), seq, reason };
        let Some(store) = self.store.clone() else {
            let outcome = self.delete_held(&room, seq, author);
            self.deleted(id, req, pending, Ok(outcome));
            return Ok(Answer::Later);
        };
        self.writes += 1;
        let completions = self.completions.clone();
        self.write(move || {
            let result = store.delete(&room, seq, since, author);
            let _ = completions.send(Completion::Deleted { session: id, req, pending, result });
        });
        Ok(Answer::Later)
    }

    /// Deletes from what the hub holds, for a hub without a store.
    fn delete_held(&mut self, room: &RoomName, seq: u64, author: Option<Party>) -> Deletion {
        let Some(log) = self.logs.get_mut(room) else {
            return Deletion::NoSuchMessage;
        };
        match log.get(seq) {
            None => Deletion::NoSuchMessage,
            Some(record) if author.is_some() && record.sender != author => Deletion::NotAuthor,
            Some(record) => {
                let record = Box::new((**record).clone());
                log.remove(seq);
                Deletion::Deleted(record)
            }
        }
    }

    /// The store reports a deletion: tell the room, answer the session.
    pub(super) fn deletion_written(
        &mut self,
        id: SessionId,
        req: RequestId,
        pending: Pending,
        result: Result<Deletion, StoreError>,
    ) {
        self.writes -= 1;
        self.deleted(id, req, pending, result);
    }

    fn deleted(&mut self, id: SessionId, req: RequestId, pending: Pending, result: Result<Deletion, StoreError>) {
        let Pending { room, seq, reason } = pending;
        let answer = match result {
            Err(e) => Err(store_failed(&e)),
            Ok(Deletion::NoSuchMessage) => Err(HubError::NoSuchMessage { room: room.to_string(), seq }),
            Ok(Deletion::NotAuthor) => Err(HubError::NotAuthor(room.to_string())),
            Ok(Deletion::Deleted(record)) => {
                if let Some(log) = self.logs.get_mut(&room) {
                    log.remove(seq);
                }
                if let (Some((by, userhost)), Some(members)) =
                    (self.sessions.get(&id).map(|s| (s.nick.clone(), s.userhost.clone())), self.rooms.get(&room))
                {
                    let shared = Shared::new(Event::Deleted {
                        room: members.name.clone(),
                        seq,
                        by,
                        author: record.from.clone(),
                        said_at: record.at,
                        at: Utc::now(),
                        reason: reason.clone(),
                        userhost,
                    });
                    members.broadcast(&shared, Some(id), &mut self.overflowed);
                }
                Ok(Reply::Deleted { room, seq, author: record.from, said_at: record.at, reason })
            }
        };
        self.reply(id, req, answer);
        self.drop_slow_consumers();
    }
}
