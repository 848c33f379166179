//! Room settings (modes, voice, invitations) and what sessions may learn about each
//! other (WHOIS, away, server statistics). The settings are checked where they apply,
//! for every gateway: joining (`may_enter`) and speaking (`may_speak`).

use std::sync::Arc;

use super::{Hub, SessionId};
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::moderation::Restriction;
use crate::modes::{ModeChange, RoomMode, Stats, Whois};
use crate::name::{Nick, RoomName};
use crate::outbox::Shared;

impl Hub {
    /// Whether the session may join `room` given its settings. Operators and admins
    /// pass every setting (they are the ones who set them); bans are checked apart.
    pub(super) fn may_enter(&self, id: SessionId, name: &RoomName, key: Option<&str>) -> Result<(), HubError> {
        let Some(room) = self.rooms.get(name) else {
            return Ok(());
        };
        if room.contains(id) || self.may_moderate(id, name) {
            return Ok(());
        }
        let invited = room.invited.contains(&id);
        if room.modes.invite_only && !invited {
            return Err(HubError::InviteOnly(name.to_string()));
        }
        if room.modes.key.as_deref().is_some_and(|k| Some(k) != key) && !invited {
            return Err(HubError::WrongKey(name.to_string()));
        }
        if room.modes.limit.is_some_and(|limit| room.len() >= limit) {
            return Err(HubError::RoomFull(name.to_string()));
        }
        Ok(())
    }

    /// Forgets an invitation once used.
    pub(super) fn entered(&mut self, id: SessionId, name: &RoomName) {
        if let Some(room) = self.rooms.get_mut(name) {
            room.invited.remove(&id);
        }
    }

    /// Whether the session may speak in `room` given its settings (mutes are checked
    /// apart).
    pub(super) fn may_speak(&self, id: SessionId, name: &RoomName) -> bool {
        let Some(room) = self.rooms.get(name) else {
            return true;
        };
        !room.modes.moderated || room.voiced.contains(&id) || self.is_op(id, name) || self.may_moderate(id, name)
    }

    fn joined_room(&self, id: SessionId, room: &str) -> Result<RoomName, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        match self.rooms.get(&name) {
            Some(r) if r.contains(id) => Ok(r.name.clone()),
            Some(r) if !r.modes.secret => Err(HubError::NotInRoom(r.name.to_string())),
            _ => Err(HubError::NoSuchRoom(name.to_string())),
        }
    }

    /// Changes a room's settings and voice, all or nothing, and tells its members.
    pub(super) fn set_modes(&mut self, id: SessionId, room: &str, changes: Vec<ModeChange>) -> Result<Reply, HubError> {
        let name = self.joined_room(id, room)?;
        if !self.may_moderate(id, &name) {
            return Err(HubError::NotOperator(name.to_string()));
        }
        // Resolve every voice target first, so that a bad one changes nothing.
        let mut voices = Vec::new();
        for change in &changes {
            match &change.mode {
                RoomMode::Voice(nick) => {
                    let target =
                        self.nicks.get(nick).copied().filter(|t| self.rooms.get(&name).is_some_and(|r| r.contains(*t)));
                    let target =
                        target.ok_or_else(|| HubError::NotHere { nick: nick.to_string(), room: name.to_string() })?;
                    voices.push((target, self.state(target).nick.clone()));
                }
                RoomMode::Op(_) | RoomMode::Ban(_) => {
                    return Err(HubError::BadMode("operators and bans are changed by moderation".into()));
                }
                RoomMode::Key(key) if change.set && (key.is_empty() || key.contains([' ', ',', ':'])) => {
                    return Err(HubError::BadMode(format!("{key:?} is not a usable key")));
                }
                RoomMode::Limit(0) if change.set => {
                    return Err(HubError::BadMode("a member limit is at least 1".into()));
                }
                _ => {}
            }
        }
        let room = self.rooms.get_mut(&name).unwrap_or_else(|| unreachable!("checked above"));
        let mut voices = voices.into_iter();
        let mut applied = Vec::new();
        for change in changes {
            let modes = &mut room.modes;
            let effective = match &change.mode {
                RoomMode::Moderated => std::mem::replace(&mut modes.moderated, change.set) != change.set,
                RoomMode::Secret => std::mem::replace(&mut modes.secret, change.set) != change.set,
                RoomMode::TopicLocked => std::mem::replace(&mut modes.topic_locked, change.set) != change.set,
                RoomMode::InviteOnly => std::mem::replace(&mut modes.invite_only, change.set) != change.set,
                RoomMode::Key(key) => {
                    let new = change.set.then(|| key.clone());
                    std::mem::replace(&mut modes.key, new.clone()) != new
                }
                RoomMode::Limit(limit) => {
                    let new = change.set.then_some(*limit);
                    std::mem::replace(&mut modes.limit, new) != new
                }
                RoomMode::Voice(_) => {
                    let Some((target, nick)) = voices.next() else {
                        continue;
                    };
                    let changed = if change.set { room.voiced.insert(target) } else { room.voiced.remove(&target) };
                    applied.extend(changed.then_some(ModeChange { set: change.set, mode: RoomMode::Voice(nick) }));
                    continue;
                }
                RoomMode::Op(_) | RoomMode::Ban(_) => false,
            };
            if effective {
                applied.push(change);
            }
        }
        if !applied.is_empty() {
            let by = self.state(id).nick.clone();
            let described: Vec<String> = applied.iter().map(ModeChange::describe).collect();
            let text = format!("{by} set {} on {name}.", described.join(" "));
            self.mode_event(&name, &by, applied, &text);
        }
        Ok(Reply::ModesSet { room: name })
    }

    /// A room's settings.
    pub(super) fn modes(&self, room: &str) -> Result<Reply, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        let room = self.rooms.get(&name).ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        Ok(Reply::Modes { room: room.name.clone(), modes: room.modes.clone(), created: room.created })
    }

    /// The bans in force in a room.
    pub(super) fn bans(&self, room: &str) -> Result<Reply, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        let now = chrono::Utc::now();
        let bans: Vec<Restriction> = self
            .restrictions
            .iter()
            .filter(|r| r.ban && r.room == name && r.until.is_none_or(|until| until > now))
            .cloned()
            .collect();
        let room = self.rooms.get(&name).map_or(name, |r| r.name.clone());
        Ok(Reply::Bans { room, bans })
    }

    /// Invites someone into a room the session is in (an operator's call when the room
    /// is invite-only).
    pub(super) fn invite(&mut self, id: SessionId, nick: &str, room: Option<&str>) -> Result<Reply, HubError> {
        let target = Nick::parse(nick, self.limits.max_nick_len)
            .ok()
            .and_then(|n| self.nicks.get(&n).copied())
            .ok_or_else(|| HubError::NoSuchNick(nick.to_owned()))?;
        let name = match room {
            Some(room) => self.joined_room(id, room)?,
            None => self.target_room(id, None)?,
        };
        let members = self.rooms.get(&name).ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        if members.modes.invite_only && !self.may_moderate(id, &name) {
            return Err(HubError::NotOperator(name.to_string()));
        }
        let nick = self.state(target).nick.clone();
        if members.contains(target) {
            return Err(HubError::AlreadyInRoom { nick: nick.to_string(), room: name.to_string() });
        }
        if let Some(room) = self.rooms.get_mut(&name) {
            room.invited.insert(target);
        }
        let by = self.state(id).nick.clone();
        let event = Event::Invited { room: name.clone(), by, at: chrono::Utc::now() };
        if self.state(target).outbox.deliver(&event).is_err() {
            self.overflowed.push(target);
        }
        Ok(Reply::Invited { nick, room: name })
    }

    /// Marks the session away (or back), telling those who share a room with it.
    pub(super) fn away(&mut self, id: SessionId, text: Option<String>) -> Reply {
        let text: Option<Arc<str>> =
            text.filter(|t| !t.trim().is_empty()).map(|t| Arc::from(super::shorten(&t, super::MAX_REASON)));
        let state = self.state_mut(id);
        let away = text.is_some();
        state.away = text.clone();
        let (nick, rooms) = (state.nick.clone(), state.rooms.clone());
        let event = Shared::new(Event::Away { nick, text });
        self.tell_room_mates(id, &rooms, &event, false);
        Reply::Away { away }
    }

    /// What the server says about a user to the session: rooms it may see (not secret
    /// ones it is not in), and the address only to the user and to admins.
    pub(super) fn whois(&self, id: SessionId, nick: &str) -> Result<Reply, HubError> {
        let target = Nick::parse(nick, self.limits.max_nick_len)
            .ok()
            .and_then(|n| self.nicks.get(&n).copied())
            .ok_or_else(|| HubError::NoSuchNick(nick.to_owned()))?;
        let state = self.state(target);
        let asker = self.state(id);
        let asker_admin = asker.oper || asker.account.as_ref().is_some_and(|a| self.admins.contains(a));
        let rooms = state
            .rooms
            .iter()
            .filter(|name| self.rooms.get(*name).is_some_and(|r| !r.modes.secret || r.contains(id) || asker_admin))
            .map(|name| (name.clone(), self.is_op(target, name)))
            .collect();
        let admin = state.oper || state.account.as_ref().is_some_and(|a| self.admins.contains(a));
        Ok(Reply::Whois(Box::new(Whois {
            nick: state.nick.clone(),
            account: state.account.clone(),
            realname: state.realname.clone(),
            rooms,
            since: state.since,
            idle_secs: state.active.elapsed().as_secs(),
            away: state.away.clone(),
            admin,
            address: if target == id || asker_admin { state.address } else { None },
        })))
    }

    /// How busy the server is.
    pub(super) fn stats(&self) -> Reply {
        let admins = self
            .sessions
            .values()
            .filter(|s| s.oper || s.account.as_ref().is_some_and(|a| self.admins.contains(a)))
            .count();
        Reply::Stats(Stats { users: self.sessions.len(), max_users: self.max_users, rooms: self.rooms.len(), admins })
    }

    /// Makes the session a server administrator for as long as it is connected.
    pub(super) fn oper(&mut self, id: SessionId) -> Reply {
        let state = self.state_mut(id);
        state.oper = true;
        tracing::info!(nick = %state.nick, "session made a server administrator");
        Reply::Opered
    }
}
