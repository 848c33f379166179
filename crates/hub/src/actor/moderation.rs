//! Moderation in the hub: who may moderate a room (server admins, and the room's
//! operators), and what topics, kicks, bans, mutes and operator grants do. A change is
//! made durable first (with its audit line), then applied, like a message.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;

use super::{shorten, Completion, Hub, SessionId, MAX_REASON};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply, Timestamp};
use crate::moderation::{Action, Change, Changed, Mask, Moderation, Restriction};
use crate::modes::{ModeChange, RoomMode};
use crate::name::{Nick, RoomName};
use crate::outbox::Shared;

/// A room's topic: the text, who set it, when.
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub(crate) text: String,
    pub(crate) by: Nick,
    pub(crate) at: Timestamp,
}

impl Hub {
    /// Takes in what the store kept of moderation.
    pub(super) fn restore_moderation(&mut self, kept: Moderation) {
        self.admins.extend(kept.admins);
        for (room, account) in kept.ops {
            self.ops.entry(room).or_default().insert(account);
        }
        let now = Utc::now();
        self.restrictions.extend(kept.restrictions.into_iter().filter(|r| r.until.is_none_or(|until| until > now)));
        for (room, text, by, at) in kept.topics {
            self.topics.insert(room, Topic { text, by, at });
        }
    }

    /// Whether the session may moderate `room`: a server admin (by account, or made one
    /// by its gateway), or an operator of the room.
    pub(super) fn may_moderate(&self, id: SessionId, room: &RoomName) -> bool {
        let state = self.state(id);
        if state.oper {
            return true;
        }
        let Some(account) = state.account.as_ref() else {
            return false;
        };
        self.admins.contains(account) || self.ops.get(room).is_some_and(|ops| ops.contains(account))
    }

    /// Whether the session is an operator of `room` (what member lists mark with `@`).
    pub(super) fn is_op(&self, id: SessionId, room: &RoomName) -> bool {
        let account = self.sessions.get(&id).and_then(|s| s.account.as_ref());
        account.is_some_and(|a| self.ops.get(room).is_some_and(|ops| ops.contains(a)))
    }

    /// The ban or mute in force in `room` for the session, if any.
    pub(super) fn restricted(&self, id: SessionId, room: &RoomName, ban: bool) -> Option<&Restriction> {
        let state = self.sessions.get(&id)?;
        self.restricted_as(room, ban, &state.nick, state.account.as_ref(), state.address)
    }

    pub(super) fn restricted_as(
        &self,
        room: &RoomName,
        ban: bool,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
    ) -> Option<&Restriction> {
        let now = Utc::now();
        self.restrictions.iter().find(|r| r.ban == ban && r.room == *room && r.applies(now, nick, account, address))
    }

    /// A room operator's or admin's action: checked here, made durable by the store (on
    /// the blocking pool), then applied when it reports (`moderated`).
    pub(super) fn moderate(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        action: Action,
    ) -> Result<(), HubError> {
        let room = match room {
            Some(name) => RoomName::parse(name, self.limits.max_room_len)?,
            None => self.target_room(id, None)?,
        };
        // Without `+t`, any member may set the topic.
        let open_topic = matches!(action, Action::Topic(_))
            && self.rooms.get(&room).is_some_and(|r| !r.modes.topic_locked && r.contains(id));
        if !open_topic && !self.may_moderate(id, &room) {
            return Err(HubError::NotOperator(room.to_string()));
        }
        let state = self.state(id);
        let actor = state.account.clone().unwrap_or_else(|| state.nick.clone());
        let what = self.resolve(&room, action)?;
        let change = Change { actor, room, at: Utc::now(), what };
        let Some(store) = self.store.clone() else {
            self.apply_change(id, req, change);
            return Ok(());
        };
        self.writes += 1;
        let completions = self.completions.clone();
        tokio::task::spawn_blocking(move || {
            let result = store.record(&change);
            let _ = completions.send(Completion::Moderated { session: id, req, change, result });
        });
        Ok(())
    }

    /// Checks an action's target and turns it into the change to make.
    fn resolve(&self, room: &RoomName, action: Action) -> Result<Changed, HubError> {
        let max_nick = self.limits.max_nick_len;
        let member = |nick: &str| -> Result<Nick, HubError> {
            let nick = Nick::parse(nick, max_nick).map_err(|_| HubError::NoSuchNick(nick.to_owned()))?;
            let in_room = self.nicks.get(&nick).is_some_and(|id| self.rooms.get(room).is_some_and(|r| r.contains(*id)));
            if !in_room {
                return Err(HubError::NotHere { nick: nick.to_string(), room: room.to_string() });
            }
            Ok(self.nicks.get(&nick).and_then(|id| self.sessions.get(id)).map_or(nick, |s| s.nick.clone()))
        };
        let account = |nick: &str| -> Result<Nick, HubError> {
            Nick::parse(nick, max_nick)
                .ok()
                .and_then(|nick| self.registered.get(&nick).cloned())
                .ok_or_else(|| HubError::NoSuchAccount(nick.to_owned()))
        };
        let mask = |text: &str| Mask::parse(text, max_nick).ok_or_else(|| HubError::BadMask(text.to_owned()));
        let until = |duration: Option<std::time::Duration>| {
            duration.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() + d)
        };
        Ok(match action {
            Action::Topic(text) => Changed::Topic(shorten(text.trim(), MAX_REASON)),
            Action::Kick { nick, reason } => {
                Changed::Kicked { nick: member(&nick)?, reason: reason.map(|r| shorten(&r, MAX_REASON)) }
            }
            Action::Ban { mask: text, duration, reason } => Changed::Restricted(Restriction {
                room: room.clone(),
                ban: true,
                mask: mask(&text)?,
                until: until(duration),
                reason: reason.map(|r| shorten(&r, MAX_REASON)),
            }),
            Action::Unban { mask: text } => Changed::Lifted { ban: true, mask: mask(&text)? },
            Action::Mute { nick, duration } => Changed::Restricted(Restriction {
                room: room.clone(),
                ban: false,
                mask: mask(&nick)?,
                until: until(duration),
                reason: None,
            }),
            Action::Unmute { nick } => Changed::Lifted { ban: false, mask: mask(&nick)? },
            Action::Op { nick } => Changed::Opped(account(&nick)?),
            Action::Deop { nick } => Changed::Deopped(account(&nick)?),
        })
    }

    /// The store reported a moderation change: apply it, or tell the moderator it failed.
    pub(super) fn moderated(
        &mut self,
        id: SessionId,
        req: RequestId,
        change: Change,
        result: Result<(), crate::StoreError>,
    ) {
        self.writes -= 1;
        match result {
            Ok(()) => self.apply_change(id, req, change),
            Err(e) => self.reply(id, req, Err(HubError::Store(e.0))),
        }
    }

    fn apply_change(&mut self, id: SessionId, req: RequestId, change: Change) {
        let Change { actor, room, at, what } = change;
        let action = what.action();
        let by = self.sessions.get(&id).map_or_else(|| actor.clone(), |s| s.nick.clone());
        let target = match &what {
            Changed::Topic(text) => text.clone(),
            Changed::Kicked { nick, reason } => {
                let why = reason.as_deref().map_or_else(|| format!("by {actor}"), |r| format!("by {actor}: {r}"));
                self.kick(&room, nick, &why, &by);
                nick.to_string()
            }
            Changed::Restricted(restriction) => {
                let target = restriction.mask.to_string();
                let how_long = restriction
                    .until
                    .map_or_else(String::new, |t| format!(" until {}", t.format("%Y-%m-%d %H:%M UTC")));
                if restriction.ban {
                    let why = match &restriction.reason {
                        Some(reason) => format!("banned by {actor}: {reason}"),
                        None => format!("banned by {actor}"),
                    };
                    self.restrictions.push(restriction.clone());
                    let text = format!("{actor} banned {target} from {room}{how_long}.");
                    let change = ModeChange { set: true, mode: RoomMode::Ban(restriction.mask.ban_mask()) };
                    self.mode_event(&room, &by, vec![change], &text);
                    self.eject(&room, &why, &by);
                } else {
                    self.restrictions.push(restriction.clone());
                    self.room_notice(&room, &format!("{actor} muted {target} in {room}{how_long}."));
                }
                target
            }
            Changed::Lifted { ban, mask } => {
                self.restrictions.retain(|r| !(r.room == room && r.ban == *ban && r.mask == *mask));
                if *ban {
                    let change = ModeChange { set: false, mode: RoomMode::Ban(mask.ban_mask()) };
                    self.mode_event(&room, &by, vec![change], &format!("{actor} unbanned {mask} in {room}."));
                } else {
                    self.room_notice(&room, &format!("{actor} unmuted {mask} in {room}."));
                }
                mask.to_string()
            }
            Changed::Opped(account) => {
                self.ops.entry(room.clone()).or_default().insert(account.clone());
                let changes = self.op_changes(&room, account, true);
                self.mode_event(&room, &by, changes, &format!("{actor} made {account} an operator of {room}."));
                account.to_string()
            }
            Changed::Deopped(account) => {
                if let Some(ops) = self.ops.get_mut(&room) {
                    ops.remove(account);
                }
                let changes = self.op_changes(&room, account, false);
                self.mode_event(&room, &by, changes, &format!("{actor} took {account}'s operator role in {room}."));
                account.to_string()
            }
        };
        if let Changed::Topic(text) = &what {
            if text.is_empty() {
                self.topics.remove(&room);
            } else {
                self.topics.insert(room.clone(), Topic { text: text.clone(), by: actor.clone(), at });
            }
            let shown = if text.is_empty() {
                format!("{actor} cleared the topic of {room}.")
            } else {
                format!("{actor} set the topic of {room}: {text}")
            };
            if let Some(members) = self.rooms.get(&room) {
                let event = Shared::new(Event::Topic {
                    room: members.name.clone(),
                    by: by.clone(),
                    at,
                    text: Arc::from(text.as_str()),
                    sentence: Arc::from(shown.as_str()),
                });
                members.broadcast(&event, None, &mut self.overflowed);
            }
        }
        self.reply(id, req, Ok(Reply::Moderated { action, room, target }));
    }

    /// The operator mode changes that giving or taking `account`'s role in `room` makes
    /// visible: one per session of that account in the room.
    fn op_changes(&self, room: &RoomName, account: &Nick, set: bool) -> Vec<ModeChange> {
        let Some(members) = self.rooms.get(room) else {
            return Vec::new();
        };
        members
            .member_ids()
            .filter_map(|id| self.sessions.get(&id))
            .filter(|s| s.account.as_ref() == Some(account))
            .map(|s| ModeChange { set, mode: RoomMode::Op(s.nick.clone()) })
            .collect()
    }

    /// Tells everyone in `room` that its modes changed.
    pub(super) fn mode_event(&mut self, room: &RoomName, by: &Nick, changes: Vec<ModeChange>, text: &str) {
        if let Some(members) = self.rooms.get(room) {
            let event = Shared::new(Event::Mode {
                room: members.name.clone(),
                by: by.clone(),
                at: Utc::now(),
                changes,
                text: Arc::from(text),
            });
            members.broadcast(&event, None, &mut self.overflowed);
        }
    }

    /// Takes `nick` out of `room`, telling everyone there, them included.
    fn kick(&mut self, room: &RoomName, nick: &Nick, why: &str, by: &Nick) {
        let Some(&target) = self.nicks.get(nick) else {
            return;
        };
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        if !members.contains(target) {
            return;
        }
        let left = Shared::new(Event::Left {
            room: members.name.clone(),
            nick: nick.clone(),
            at: Utc::now(),
            reason: LeaveReason::Kicked,
            by: Some(by.clone()),
            detail: Some(Arc::from(why)),
        });
        members.broadcast(&left, None, &mut self.overflowed);
        if let Some(state) = self.sessions.get_mut(&target) {
            state.rooms.retain(|r| r != room);
        }
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(target);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    /// Puts out of `room` everyone a ban in it now applies to; a lobby ban takes them
    /// off the server.
    fn eject(&mut self, room: &RoomName, why: &str, by: &Nick) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let banned: Vec<(SessionId, Nick)> = members
            .member_ids()
            .filter(|id| self.restricted(*id, room, true).is_some())
            .filter_map(|id| self.sessions.get(&id).map(|s| (id, s.nick.clone())))
            .collect();
        for (id, nick) in banned {
            if *room == self.lobby {
                self.notice(id, &format!("You are {why}."));
                if let Some(state) = self.remove_session(id, LeaveReason::Lost, Some(Arc::from(why))) {
                    state.outbox.close();
                }
            } else {
                self.kick(room, &nick, why, by);
            }
        }
    }

    /// A line of information for everyone in `room`.
    fn room_notice(&mut self, room: &RoomName, text: &str) {
        if let Some(members) = self.rooms.get(room) {
            let notice = Shared::new(Event::Notice { at: Utc::now(), text: Arc::from(text) });
            members.broadcast(&notice, None, &mut self.overflowed);
        }
    }

    /// The audit log, for server admins; read on the blocking pool and answered into the
    /// session's outbox, like a history page.
    pub(super) fn audit(&mut self, id: SessionId, req: RequestId, limit: usize) -> Result<(), HubError> {
        let state = self.state(id);
        if !state.account.as_ref().is_some_and(|account| self.admins.contains(account)) {
            return Err(HubError::NotAdmin);
        }
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let limit = limit.clamp(1, crate::MAX_HISTORY_PAGE);
        self.answer_from_store(id, req, move || store.audit(limit).map(Reply::Audit));
        Ok(())
    }

    /// The topic of a room, for `/topic` without text.
    pub(super) fn topic(&self, id: SessionId, room: Option<&str>) -> Result<Reply, HubError> {
        let room = match room {
            Some(name) => RoomName::parse(name, self.limits.max_room_len)?,
            None => self.target_room(id, None)?,
        };
        let topic = self.topics.get(&room).map(|t| (t.text.clone(), t.by.clone(), t.at));
        Ok(Reply::Topic { room, topic })
    }

    /// The topic of a room, for newcomers: its text, who set it, when.
    pub(super) fn topic_of(&self, room: &RoomName) -> Option<(String, Nick, Timestamp)> {
        self.topics.get(room).map(|t| (t.text.clone(), t.by.clone(), t.at))
    }

    /// Makes a logged-in session that creates a room its first operator, durably.
    pub(super) fn crown_creator(&mut self, id: SessionId, room: &RoomName) {
        if *room == self.lobby || self.ops.get(room).is_some_and(|ops| !ops.is_empty()) {
            return;
        }
        let Some(account) = self.sessions.get(&id).and_then(|s| s.account.clone()) else {
            return;
        };
        self.ops.entry(room.clone()).or_default().insert(account.clone());
        if let Some(store) = self.store.clone() {
            let change =
                Change { actor: account.clone(), room: room.clone(), at: Utc::now(), what: Changed::Opped(account) };
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.record(&change) {
                    tracing::warn!("could not record a room's first operator: {e}");
                }
            });
        }
    }
}
