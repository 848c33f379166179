//! What sessions may learn about each other and tell about themselves: away messages,
//! WHOIS, server statistics, and a gateway's operator login.

use std::sync::Arc;

use super::{shorten, Hub, MAX_REASON};
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::modes::{Stats, Whois};
use crate::outbox::Shared;

impl Hub {
    /// Marks the session away (or back), telling those who share a room with it.
    pub(super) fn away(&mut self, id: SessionId, text: Option<String>) -> Reply {
        let text: Option<Arc<str>> = text.filter(|t| !t.trim().is_empty()).map(|t| Arc::from(shorten(&t, MAX_REASON)));
        let state = self.state_mut(id);
        let away = text.is_some();
        state.away = text.clone();
        let (nick, rooms, userhost) = (state.nick.clone(), state.rooms.clone(), state.userhost.clone());
        self.tell_cluster(|| crate::presence::Presence::Away { session: id.0, text: text.clone() });
        let event = Shared::new(Event::Away { nick, text, userhost });
        let told = self.tell_room_mates(id, &rooms, &event, false);
        self.tell_watchers(id, &event.event, &told);
        Reply::Away { away }
    }

    /// What the server says about a user to the session: rooms it may see (not secret
    /// ones it is not in), and the address only to the user and to admins.
    pub(super) fn whois(&self, id: SessionId, nick: &str) -> Result<Reply, HubError> {
        let target = match self.session_named(nick) {
            Ok(target) => target,
            Err(e) => return self.whois_elsewhere(id, nick).ok_or(e),
        };
        let state = self.state(target);
        let asker_admin = self.is_admin(id);
        let rooms = state
            .rooms
            .iter()
            .filter(|name| !self.unlisted_for(id, name))
            .map(|name| {
                let voiced = self.rooms.get(name).is_some_and(|room| room.voiced.contains(&target));
                (name.clone(), self.is_op(target, name), voiced)
            })
            .collect();
        Ok(Reply::Whois(Box::new(Whois {
            nick: state.nick.clone(),
            account: state.account_name().cloned(),
            realname: state.realname.clone(),
            rooms,
            since: state.since,
            idle_secs: state.active.elapsed().as_secs(),
            away: state.away.clone(),
            admin: self.is_admin(target),
            address: if target == id || asker_admin { state.address } else { None },
            userhost: state.userhost.clone(),
        })))
    }

    /// WHOIS of someone on another node of a cluster, as far as this node knows them.
    fn whois_elsewhere(&self, id: SessionId, nick: &str) -> Option<Reply> {
        let nick = crate::name::Nick::parse(nick, self.limits.max_nick_len).ok()?;
        let (_, person) = self.elsewhere.named(&nick)?;
        let rooms = person
            .rooms
            .iter()
            .filter(|name| !self.unlisted_for(id, name))
            .map(|name| {
                let marks = person.marks_in(name);
                (name.clone(), marks.op || self.durable_op(person.account.as_ref(), name), marks.voice)
            })
            .collect();
        Some(Reply::Whois(Box::new(Whois {
            nick: person.nick.clone(),
            account: person.account.clone(),
            realname: person.realname.clone(),
            rooms,
            since: person.since,
            idle_secs: 0,
            away: person.away.clone(),
            admin: false,
            address: None,
            userhost: person.userhost.clone(),
        })))
    }

    /// Records what the session's client says about its user. A change (not the first
    /// description, at registration) is news to those who share a room with it.
    pub(super) fn describe(&mut self, id: SessionId, realname: &str) -> Reply {
        let realname: Arc<str> = shorten(realname, MAX_REASON).into();
        let state = self.state_mut(id);
        let before = state.realname.replace(realname.clone());
        if before.is_some_and(|before| before != realname) {
            let (nick, rooms, userhost) = (state.nick.clone(), state.rooms.clone(), state.userhost.clone());
            let event = Shared::new(Event::Realname { nick, realname, userhost });
            let told = self.tell_room_mates(id, &rooms, &event, false);
            self.tell_watchers(id, &event.event, &told);
        }
        Reply::Described
    }

    /// How busy the server is.
    pub(super) fn stats(&self) -> Stats {
        let admins = self.sessions.keys().filter(|id| self.is_admin(**id)).count();
        let rooms_elsewhere = self.elsewhere.rooms().filter(|(room, _)| !self.rooms.contains_key(*room)).count();
        Stats {
            users: self.sessions.len() + self.elsewhere.people(),
            max_users: self.max_users,
            rooms: self.rooms.len() + rooms_elsewhere,
            admins,
        }
    }

    /// Makes the session a server administrator for as long as it is connected.
    pub(super) fn oper(&mut self, id: SessionId) -> Reply {
        let state = self.state_mut(id);
        state.oper = true;
        tracing::info!(nick = %state.nick, "session made a server administrator");
        Reply::Opered
    }
}
