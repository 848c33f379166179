//! Signals: typing, reactions and client tags, relayed at once to a room's members or a
//! conversation's other party and never stored, as IRC servers relay `TAGMSG`. They
//! wait behind their sender's unstored messages like any operation (`Hub::apply`), so a
//! reaction never arrives before the message it reacts to.

use chrono::Utc;

use super::Hub;
use std::sync::Arc;

use crate::command::{Audience, Marked};
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::history::Kind;
use crate::outbox::Shared;
use crate::signal::{ClientTags, Signal};

impl Hub {
    /// `Command::SayTo`: whoever may speak in the room may speak to its operators (or
    /// its operators and voiced members); those among them in the room now hear it.
    pub(super) fn say_to(
        &mut self,
        id: SessionId,
        room: &str,
        audience: Audience,
        kind: Kind,
        text: String,
    ) -> Result<Reply, HubError> {
        self.check_text(&text)?;
        let name = self.joined_room(id, room)?;
        self.may_say(id, &name)?;
        let at = Utc::now();
        let state = self.state(id);
        let (from, account, userhost) = (state.nick.clone(), state.account_name().cloned(), state.userhost.clone());
        let text: Arc<str> = text.into();
        let event =
            Event::SaidTo { room: name.clone(), audience, from, at, account, kind, text: text.clone(), userhost };
        let hearers: Vec<SessionId> = self.rooms.get(&name).map_or_else(Vec::new, |members| {
            members
                .member_ids()
                .filter(|member| *member != id)
                .filter(|member| match audience {
                    Audience::Operators => self.is_op(*member, &name),
                    Audience::Voiced => self.is_op(*member, &name) || members.voiced.contains(member),
                })
                .collect()
        });
        for hearer in hearers {
            self.tell(hearer, &event);
        }
        Ok(Reply::ToldSome { room: name, audience, at, kind, text })
    }

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
        let (from, account, userhost) = (state.nick.clone(), state.account_name().cloned(), state.userhost.clone());
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
                    userhost,
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
                    userhost,
                };
                if receiver != id {
                    self.tell(receiver, &event);
                }
                Ok(Reply::Signalled { id: signal_id, room: None, to: Some(to), at, signal, tags })
            }
        }
    }
}
