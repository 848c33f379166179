//! Signals: typing, reactions and client tags, relayed at once to a room's members or a
//! conversation's other party and never stored, as IRC servers relay `TAGMSG`. They
//! wait behind their sender's unstored messages like any operation (`Hub::apply`), so a
//! reaction never arrives before the message it reacts to.

use chrono::Utc;

use super::Hub;
use crate::command::Marked;
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::outbox::Shared;
use crate::signal::{ClientTags, Signal};

impl Hub {
    /// `Command::Signal`: whoever may speak in a room may signal there (a muted user's
    /// typing would be noise nobody can answer); a reaction names a message that was
    /// delivered there.
    pub(super) fn signal(
        &mut self,
        id: SessionId,
        target: Marked,
        signal: Signal,
        tags: ClientTags,
    ) -> Result<Reply, HubError> {
        let at = Utc::now();
        self.last_signal = self.last_signal.saturating_add(1);
        let signal_id = self.last_signal;
        let state = self.state(id);
        let (from, account) = (state.nick.clone(), state.account_name().cloned());
        match target {
            Marked::Room(name) => {
                let room = self.joined_room(id, &name)?;
                self.may_say(id, &room)?;
                if let Signal::React(reaction) = &signal {
                    let committed = self.logs.get(&room).map_or(0, |log| log.committed);
                    if reaction.seq > committed {
                        return Err(HubError::NoSuchMessage { room: room.to_string(), seq: reaction.seq });
                    }
                }
                let event = Shared::new(Event::Signal {
                    id: signal_id,
                    room: Some(room.clone()),
                    from,
                    to: None,
                    at,
                    account,
                    signal: signal.clone(),
                    tags: tags.clone(),
                });
                if let Some(members) = self.rooms.get(&room) {
                    members.broadcast(&event, Some(id), &mut self.overflowed);
                }
                Ok(Reply::Signalled { id: signal_id, room: Some(room), to: None, at, signal, tags })
            }
            Marked::With(nick) => {
                let receiver = self.session_named(&nick)?;
                let to = self.state(receiver).nick.clone();
                if let Signal::React(reaction) = &signal {
                    if reaction.seq > self.private_committed {
                        return Err(HubError::NoSuchMessage { room: to.to_string(), seq: reaction.seq });
                    }
                }
                let event = Event::Signal {
                    id: signal_id,
                    room: None,
                    from,
                    to: Some(to.clone()),
                    at,
                    account,
                    signal: signal.clone(),
                    tags: tags.clone(),
                };
                if receiver != id {
                    self.tell(receiver, &event);
                }
                Ok(Reply::Signalled { id: signal_id, room: None, to: Some(to), at, signal, tags })
            }
        }
    }
}
