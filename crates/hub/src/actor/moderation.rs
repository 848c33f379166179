//! Moderation in the hub: who may moderate a room (server admins, and the room's
//! operators), and what topics, kicks, bans, mutes, operator places and registration
//! do; server bans. A change is written first (with its audit line; a registered room's
//! state with it), then applied, like a message.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{shorten, Answer, Completion, Hub, MAX_REASON, MAX_RESTRICTION_DAYS};
use crate::charter::{Charter, Registration};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply, RoomChange, Timestamp};
use crate::handle::SessionId;
use crate::identity::Account;
use crate::moderation::{Action, Change, Changed, Mask, Moderation, Restriction, ServerAction, ServerBan, Topic};
use crate::name::{Nick, RoomName};
use crate::outbox::Shared;

impl Hub {
    /// Takes in what the store kept of moderation.
    pub(super) fn restore_moderation(&mut self, kept: Moderation) {
        self.admins.extend(kept.admins);
        for room in kept.rooms {
            let name = room.room.clone();
            let mut charter = Charter::restored(room);
            if name == self.lobby {
                // The lobby is always the server's, whoever's it was kept as.
                charter.registration = Some(Registration { founder: None, at: charter.created });
                charter.since = 0;
            }
            self.hold_room(&name);
            self.charters.insert(name, charter);
        }
        let now = Utc::now();
        for ban in kept.server_bans.into_iter().filter(|b| b.until.is_none_or(|until| until > now)) {
            // Kept bans were within the limit when made; a lowered limit keeps them all.
            let _ = self.server_bans.insert(ban, now, usize::MAX);
        }
    }

    /// The ban (`ban`) or mute in force in `room` for the session, if any.
    pub(crate) fn restricted(&self, id: SessionId, room: &RoomName, ban: bool) -> Option<&Restriction> {
        let state = self.sessions.get(&id)?;
        let charter = self.charters.get(room)?;
        charter.restriction(Utc::now(), ban, &state.nick, state.account_name(), state.address, Some(&state.userhost))
    }

    /// A room operator's or admin's action: checked here, written by the store (on the
    /// blocking pool), then applied when it reports (`moderated`).
    pub(super) fn moderate(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        action: Action,
    ) -> Result<Answer, HubError> {
        let room = self.moderated_room(id, room)?;
        let charter = self.charters.get(&room).ok_or_else(|| HubError::NoSuchRoom(room.to_string()))?;
        let member = self.rooms.get(&room).is_some_and(|r| r.contains(id));
        let allowed = match &action {
            // Without `+t`, any member may set the topic.
            Action::Topic(_) => (member && !charter.modes.topic_locked) || self.may_moderate(id, &room),
            Action::Unregister => {
                let account = self.state(id).account.as_ref().map(|a| a.id);
                self.is_admin(id) || (account.is_some() && charter.founder() == account)
            }
            _ => self.may_moderate(id, &room),
        };
        if !allowed {
            return Err(match action {
                Action::Unregister => HubError::NotFounder(room.to_string()),
                _ => HubError::NotOperator(room.to_string()),
            });
        }
        let what = self.resolve(id, &room, action)?;
        let durable = charter.keeps_changes() || matches!(what, Changed::Registered { .. });
        let change = Change { actor: self.actor_name(id), room: Some(room), durable, at: Utc::now(), what };
        self.write_change(id, Some(req), change);
        Ok(Answer::Later)
    }

    /// Registers a room its logged-in creator just opened, on their account, if they
    /// have not registered as many as they may.
    pub(super) fn register_on_creation(&mut self, creator: SessionId, room: &RoomName) {
        let Some(account) = self.sessions.get(&creator).and_then(|s| s.account.clone()) else {
            return;
        };
        if *room == self.lobby || self.founded_by(account.id) >= self.limits.max_rooms_per_account {
            return;
        }
        let Ok(what) = self.registration(creator, room) else {
            return;
        };
        let change = Change { actor: account.name, room: Some(room.clone()), durable: true, at: Utc::now(), what };
        self.write_change(creator, None, change);
    }

    /// Writes `change` (off the task) and applies it when the store reports; without a
    /// store, applies it at once.
    fn write_change(&mut self, id: SessionId, req: Option<RequestId>, change: Change) {
        let life = change.room.as_ref().and_then(|room| self.charters.get(room)).map(|c| c.since);
        let Some(store) = self.store.clone() else {
            self.apply_change(id, req, change);
            return;
        };
        if change.durable {
            if let Some(charter) = change.room.as_ref().and_then(|room| self.charters.get_mut(room)) {
                charter.pending += 1;
            }
        }
        self.writes += 1;
        let completions = self.completions.clone();
        self.write(move || {
            let result = store.record(&change);
            let _ = completions.send(Completion::Moderated { session: id, req, life, change, result });
        });
    }

    /// The change a room's registration makes: founded by the session's account, with
    /// the room's state as it is.
    fn registration(&self, id: SessionId, room: &RoomName) -> Result<Changed, HubError> {
        let account = self.state(id).account.clone().ok_or(HubError::NotLoggedIn)?;
        let charter = self.charters.get(room).ok_or_else(|| HubError::NoSuchRoom(room.to_string()))?;
        if charter.is_registered() || charter.pending > 0 {
            return Err(HubError::RoomRegistered(room.to_string()));
        }
        if self.founded_by(account.id) >= self.limits.max_rooms_per_account {
            return Err(HubError::TooManyRegistered { max: self.limits.max_rooms_per_account });
        }
        Ok(Changed::Registered {
            founder: Some(account),
            since: charter.since,
            modes: charter.modes.clone(),
            topic: charter.topic.clone(),
            restrictions: charter.restrictions.clone(),
        })
    }

    /// Checks an action's target and turns it into the change to make.
    fn resolve(&self, id: SessionId, room: &RoomName, action: Action) -> Result<Changed, HubError> {
        let max_nick = self.limits.max_nick_len;
        let members = self.rooms.get(room);
        let member = |nick: &str| -> Result<(SessionId, Nick), HubError> {
            let parsed = Nick::parse(nick, max_nick).map_err(|_| HubError::NoSuchNick(nick.to_owned()))?;
            let Some(id) = self.nicks.get(&parsed).copied() else {
                // On another node of a cluster: that node acts on what is decided here.
                return match self.elsewhere.named(&parsed) {
                    Some((_, person)) if person.rooms.contains(room) => Ok((SessionId::NOBODY, person.nick.clone())),
                    Some((_, person)) => {
                        Err(HubError::NotHere { nick: person.nick.to_string(), room: room.to_string() })
                    }
                    None => Err(HubError::NoSuchNick(nick.to_owned())),
                };
            };
            if !members.is_some_and(|r| r.contains(id)) {
                return Err(HubError::NotHere { nick: self.state(id).nick.to_string(), room: room.to_string() });
            }
            Ok((id, self.state(id).nick.clone()))
        };
        let account = |nick: &str| -> Option<Account> {
            let parsed = Nick::parse(nick, max_nick).ok()?;
            let (name, id) = self.accounts.get_key_value(&parsed)?;
            Some(Account { id: *id, name: name.clone() })
        };
        let mask = |text: &str| Mask::parse(text, max_nick).ok_or_else(|| HubError::BadMask(text.to_owned()));
        // A room being registered is one already: what is done to it now is kept.
        let registered = self.charters.get(room).is_some_and(Charter::keeps_changes);
        let now = Utc::now();
        Ok(match action {
            // Kept as given, spaces and all, as IRC servers keep it; only blank clears.
            Action::Topic(text) => Changed::Topic(shorten(if text.trim().is_empty() { "" } else { &text }, MAX_REASON)),
            Action::Kick { nick, reason } => {
                Changed::Kicked { nick: member(&nick)?.1, reason: reason.map(|r| shorten(&r, MAX_REASON)) }
            }
            Action::Ban { mask: text, duration, reason } => {
                let restriction = Restriction {
                    room: room.clone(),
                    ban: true,
                    mask: mask(&text)?,
                    until: until(now, duration)?,
                    reason: reason.map(|r| shorten(&r, MAX_REASON)),
                    set_by: Some(self.state(id).nick.clone()),
                    set_at: Some(now),
                };
                self.room_has_space(room, &restriction, now)?;
                Changed::Restricted(restriction)
            }
            Action::Unban { mask: text } => Changed::Lifted { ban: true, mask: mask(&text)? },
            Action::Mute { nick, duration } => {
                let restriction = Restriction {
                    room: room.clone(),
                    ban: false,
                    mask: mask(&nick)?,
                    until: until(now, duration)?,
                    reason: None,
                    set_by: Some(self.state(id).nick.clone()),
                    set_at: Some(now),
                };
                self.room_has_space(room, &restriction, now)?;
                Changed::Restricted(restriction)
            }
            Action::Unmute { nick } => Changed::Lifted { ban: false, mask: mask(&nick)? },
            // In a registered room an account's role is durable; anyone else (and anyone
            // in an unregistered room) operates the room while they stay in it.
            Action::Op { nick } => match account(&nick).filter(|_| registered) {
                Some(account) => Changed::Opped(account),
                None => Changed::Promoted(member(&nick)?.1),
            },
            Action::Deop { nick } => {
                let durable = account(&nick).filter(|a| self.charters.get(room).is_some_and(|c| c.ops.contains(&a.id)));
                match durable {
                    Some(account) => Changed::Deopped(account),
                    None => Changed::Demoted(member(&nick)?.1),
                }
            }
            Action::Register => self.registration(id, room)?,
            Action::Unregister => {
                if *room == self.lobby {
                    return Err(HubError::NotFounder(room.to_string()));
                }
                if !registered {
                    return Err(HubError::RoomNotRegistered(room.to_string()));
                }
                Changed::Unregistered
            }
        })
    }

    fn room_has_space(&self, room: &RoomName, restriction: &Restriction, now: Timestamp) -> Result<(), HubError> {
        let max = self.limits.max_bans_per_room;
        let fits =
            self.charters.get(room).is_some_and(|c| c.has_room_for(restriction.ban, &restriction.mask, now, max));
        if fits {
            Ok(())
        } else {
            Err(HubError::TooManyBans { max })
        }
    }

    /// A server administrator's action on the whole server.
    pub(super) fn moderate_server(
        &mut self,
        id: SessionId,
        req: RequestId,
        action: ServerAction,
    ) -> Result<Answer, HubError> {
        if !self.is_admin(id) {
            return Err(HubError::NotAdmin);
        }
        let max_nick = self.limits.max_nick_len;
        let mask = |text: &str| Mask::parse(text, max_nick).ok_or_else(|| HubError::BadMask(text.to_owned()));
        let now = Utc::now();
        let what = match action {
            ServerAction::Ban { mask: text, duration, reason } => {
                let ban = ServerBan {
                    mask: mask(&text)?,
                    until: until(now, duration)?,
                    reason: reason.map(|r| shorten(&r, MAX_REASON)),
                };
                if !self.server_bans.has_room_for(&ban.mask, now, self.limits.max_server_bans) {
                    return Err(HubError::TooManyBans { max: self.limits.max_server_bans });
                }
                Changed::ServerBanned(ban)
            }
            ServerAction::Unban { mask: text } => Changed::ServerUnbanned(mask(&text)?),
        };
        let change = Change { actor: self.actor_name(id), room: None, durable: true, at: now, what };
        self.write_change(id, Some(req), change);
        Ok(Answer::Later)
    }

    /// The server bans in force, for administrators.
    pub(super) fn list_server_bans(&self, id: SessionId) -> Result<Reply, HubError> {
        if !self.is_admin(id) {
            return Err(HubError::NotAdmin);
        }
        Ok(Reply::ServerBans(self.server_bans.list(Utc::now())))
    }

    /// The store reported a moderation change: apply it, or tell the moderator it failed.
    pub(super) fn moderated(
        &mut self,
        id: SessionId,
        req: Option<RequestId>,
        life: Option<u64>,
        change: Change,
        result: Result<(), crate::StoreError>,
    ) {
        self.writes -= 1;
        let room = change.room.clone();
        if change.durable {
            if let Some(charter) = room.as_ref().and_then(|room| self.charters.get_mut(room)) {
                charter.pending = charter.pending.saturating_sub(1);
            }
        }
        // A change to an unregistered room applies to the life it was made in; if that
        // life ended meanwhile, it went with it.
        let same_life = room.as_ref().is_none_or(|r| self.charters.get(r).map(|c| c.since) == life);
        match result {
            Ok(()) if change.durable || same_life => {
                self.tell_cluster(|| crate::presence::Presence::Moderated(Box::new(change.clone())));
                self.apply_change(id, req, change);
            }
            Ok(()) => {
                if let Some(req) = req {
                    self.reply(
                        id,
                        req,
                        Err(HubError::NoSuchRoom(room.as_ref().map_or_else(String::new, |r| r.to_string()))),
                    );
                }
            }
            Err(e) => {
                let error = super::store_failed(&e);
                if let Some(req) = req {
                    self.reply(id, req, Err(error));
                }
            }
        }
        if let Some(room) = room {
            if !self.rooms.contains_key(&room) {
                self.close_room(&room);
            }
        }
    }

    pub(super) fn apply_change(&mut self, id: SessionId, req: Option<RequestId>, change: Change) {
        let Change { actor, room, at, what, .. } = change;
        let action = what.action();
        let by = self.sessions.get(&id).map_or_else(|| actor.clone(), |s| s.nick.clone());
        let Some(room) = room else {
            let target = self.apply_server_change(&actor, what);
            if let Some(req) = req {
                self.reply(id, req, Ok(Reply::ServerModerated { action, target }));
            }
            return;
        };
        if !self.charters.contains_key(&room) {
            // Registered meanwhile by someone else's request, or emptied: re-create only
            // a registration (the store has it).
            if !matches!(what, Changed::Registered { .. }) {
                return;
            }
            let since = match &what {
                Changed::Registered { since, .. } => *since,
                _ => unreachable!("matched above"),
            };
            self.charters.insert(room.clone(), Charter::fresh(room.clone(), since, crate::modes::RoomModes::default()));
        }
        let target = match &what {
            Changed::Topic(text) => {
                self.set_topic(&room, &actor, &by, at, text);
                text.clone()
            }
            Changed::Kicked { nick, reason } => {
                self.kick(&room, nick, LeaveReason::Kicked, reason.as_deref(), &by);
                nick.to_string()
            }
            Changed::Restricted(restriction) => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    // Checked against the limit when asked; changes in flight together
                    // may pass it by a few.
                    let _ = charter.restrict(restriction.clone(), Utc::now(), usize::MAX);
                }
                let (mask, until) = (restriction.mask.clone(), restriction.until);
                if restriction.ban {
                    self.room_event(&room, &by, at, RoomChange::Banned { mask, until });
                    self.eject(&room, restriction.reason.as_deref(), &by);
                } else {
                    self.room_event(&room, &by, at, RoomChange::Muted { mask, until });
                }
                restriction.mask.to_string()
            }
            Changed::Lifted { ban, mask } => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    charter.lift(*ban, mask);
                }
                let change = if *ban {
                    RoomChange::Unbanned { mask: mask.clone() }
                } else {
                    RoomChange::Unmuted { mask: mask.clone() }
                };
                self.room_event(&room, &by, at, change);
                mask.to_string()
            }
            Changed::Promoted(nick) | Changed::Demoted(nick) => {
                let set = matches!(what, Changed::Promoted(_));
                let target = self.nicks.get(nick).copied();
                if let (Some(target), Some(members)) = (target, self.rooms.get_mut(&room)) {
                    if members.contains(target) {
                        if set {
                            members.ops.insert(target);
                        } else {
                            members.ops.remove(&target);
                        }
                    }
                }
                // A member of another node: their node tells.
                if let Some(target) = target {
                    self.tell_cluster_marks(target, &room);
                }
                let nick = nick.clone();
                let change = if set {
                    RoomChange::Promoted { nick: nick.clone() }
                } else {
                    RoomChange::Demoted { nick: nick.clone() }
                };
                self.room_event(&room, &by, at, change);
                nick.to_string()
            }
            Changed::Opped(account) => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    charter.ops.insert(account.id);
                }
                for session in self.members_of(&room, account) {
                    self.tell_cluster_marks(session, &room);
                }
                let sessions = self.sessions_of(&room, account);
                self.room_event(&room, &by, at, RoomChange::Opped { account: account.name.clone(), sessions });
                account.name.to_string()
            }
            Changed::Deopped(account) => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    charter.ops.remove(&account.id);
                }
                // Their sessions keep no operator place given while they stayed either.
                let sessions: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.account.as_ref().is_some_and(|a| a.id == account.id))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(members) = self.rooms.get_mut(&room) {
                    for session in sessions {
                        members.ops.remove(&session);
                    }
                }
                for session in self.members_of(&room, account) {
                    self.tell_cluster_marks(session, &room);
                }
                let sessions = self.sessions_of(&room, account);
                self.room_event(&room, &by, at, RoomChange::Deopped { account: account.name.clone(), sessions });
                account.name.to_string()
            }
            Changed::Modes(modes) => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    charter.modes = modes.clone();
                    charter.known.modes = true;
                }
                String::new()
            }
            Changed::Registered { founder, .. } => {
                if let Some(charter) = self.charters.get_mut(&room) {
                    charter.registration = Some(Registration { founder: founder.as_ref().map(|a| a.id), at });
                    charter.ops.extend(founder.as_ref().map(|a| a.id));
                }
                let founder_name = founder.as_ref().map(|a| a.name.clone());
                self.room_event(&room, &by, at, RoomChange::Registered { founder: founder_name });
                founder.as_ref().map_or_else(String::new, |a| a.name.to_string())
            }
            Changed::Unregistered => {
                let ops: Vec<crate::identity::AccountId> = match self.charters.get_mut(&room) {
                    Some(charter) => {
                        charter.registration = None;
                        charter.ops.drain().collect()
                    }
                    None => Vec::new(),
                };
                // Those who operated it by their account go on operating it while they
                // stay, like the creator of any unregistered room.
                let operating: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.account.as_ref().is_some_and(|a| ops.contains(&a.id)))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(members) = self.rooms.get_mut(&room) {
                    let staying: Vec<SessionId> = operating.into_iter().filter(|s| members.contains(*s)).collect();
                    members.ops.extend(staying);
                }
                self.room_event(&room, &by, at, RoomChange::Unregistered);
                room.to_string()
            }
            Changed::ServerBanned(_) | Changed::ServerUnbanned(_) => unreachable!("server changes have no room"),
        };
        if let Some(req) = req {
            self.reply(id, req, Ok(Reply::Moderated { action, room, target }));
        }
    }

    /// Applies a server ban or unban; the target, for the answer.
    fn apply_server_change(&mut self, actor: &Nick, what: Changed) -> String {
        match what {
            Changed::ServerBanned(ban) => {
                let target = ban.mask.to_string();
                let now = Utc::now();
                let covered: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| ban.applies(now, &s.nick, s.account_name(), s.address, Some(&s.userhost)))
                    .map(|(id, _)| *id)
                    .collect();
                let reason = ban.reason.clone();
                let _ = self.server_bans.insert(ban, now, usize::MAX);
                tracing::info!(%actor, mask = %target, "server ban");
                for id in covered {
                    self.throw_out(id, reason.as_deref());
                }
                target
            }
            Changed::ServerUnbanned(mask) => {
                self.server_bans.remove(&mask);
                tracing::info!(%actor, %mask, "server ban lifted");
                mask.to_string()
            }
            _ => unreachable!("only server changes come here"),
        }
    }

    /// Disconnects a session a server ban covers, telling it and its rooms why.
    pub(crate) fn throw_out(&mut self, id: SessionId, reason: Option<&str>) {
        self.tell(id, &Event::Banned { at: Utc::now(), reason: reason.map(Arc::from) });
        if let Some(state) = self.remove_session(id, LeaveReason::ServerBanned, reason.map(Arc::from)) {
            state.outbox.close();
        }
    }

    fn set_topic(&mut self, room: &RoomName, actor: &Nick, by: &Nick, at: Timestamp, text: &str) {
        if let Some(charter) = self.charters.get_mut(room) {
            charter.topic = (!text.is_empty()).then(|| Topic { text: text.to_owned(), by: actor.clone(), at });
            charter.known.topic = true;
        }
        if let Some(members) = self.rooms.get(room) {
            let userhost = self.userhost_named(by);
            let event = Shared::new(Event::Topic {
                room: members.name.clone(),
                by: by.clone(),
                at,
                text: Arc::from(text),
                userhost,
            });
            members.broadcast(&event, None, &mut self.overflowed);
        }
    }

    /// The nicks of `account`'s sessions in `room`.
    fn sessions_of(&self, room: &RoomName, account: &Account) -> Vec<Nick> {
        let members = self.members_of(room, account);
        members.into_iter().filter_map(|id| self.sessions.get(&id)).map(|s| s.nick.clone()).collect()
    }

    /// `account`'s sessions in `room`.
    fn members_of(&self, room: &RoomName, account: &Account) -> Vec<SessionId> {
        let Some(members) = self.rooms.get(room) else {
            return Vec::new();
        };
        members
            .member_ids()
            .filter(|id| self.sessions.get(id).is_some_and(|s| s.account.as_ref().is_some_and(|a| a.id == account.id)))
            .collect()
    }

    /// Tells everyone in `room` of a moderator's change.
    fn room_event(&mut self, room: &RoomName, by: &Nick, at: Timestamp, what: RoomChange) {
        if let Some(members) = self.rooms.get(room) {
            let userhost = self.userhost_named(by);
            let event =
                Shared::new(Event::Moderated { room: members.name.clone(), by: by.clone(), at, what, userhost });
            members.broadcast(&event, None, &mut self.overflowed);
        }
    }

    /// Takes `nick` out of `room` (kicked, or banned), telling everyone there, them
    /// included.
    fn kick(&mut self, room: &RoomName, nick: &Nick, reason: LeaveReason, detail: Option<&str>, by: &Nick) {
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
            reason,
            by: Some(by.clone()),
            detail: detail.map(Arc::from),
            again: false,
            userhost: self.userhost_named(nick),
            by_userhost: Some(self.userhost_named(by)),
        });
        members.broadcast(&left, None, &mut self.overflowed);
        self.tell_cluster(|| crate::presence::Presence::Left {
            session: target.0,
            room: room.clone(),
            reason,
            by: Some(by.clone()),
            detail: detail.map(Arc::from),
        });
        if let Some(state) = self.sessions.get_mut(&target) {
            state.rooms.retain(|r| r != room);
        }
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(target);
            if members.is_empty() {
                self.rooms.remove(room);
                self.close_room(room);
            }
        }
    }

    /// Puts out of `room` everyone a ban in it now applies to.
    fn eject(&mut self, room: &RoomName, reason: Option<&str>, by: &Nick) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let banned: Vec<Nick> = members
            .member_ids()
            .filter(|id| self.restricted(*id, room, true).is_some())
            .filter_map(|id| self.sessions.get(&id).map(|s| s.nick.clone()))
            .collect();
        for nick in banned {
            self.kick(room, &nick, LeaveReason::Banned, reason, by);
        }
    }

    /// After a login: out of every room the session's account is banned from.
    pub(crate) fn eject_everywhere(&mut self, id: SessionId) {
        let Some(state) = self.sessions.get(&id) else {
            return;
        };
        let (nick, rooms) = (state.nick.clone(), state.rooms.clone());
        for room in rooms {
            if let Some(ban) = self.restricted(id, &room, true) {
                let reason = ban.reason.clone();
                self.kick(&room, &nick, LeaveReason::Banned, reason.as_deref(), &nick);
            }
        }
    }
}

/// When a ban or mute of `duration` from `now` ends; refused beyond the longest allowed,
/// so that no duration a client sends can overflow a date.
fn until(now: Timestamp, duration: Option<Duration>) -> Result<Option<Timestamp>, HubError> {
    let Some(duration) = duration else {
        return Ok(None);
    };
    let too_long = HubError::TooLong { max_days: MAX_RESTRICTION_DAYS };
    if duration > Duration::from_secs(MAX_RESTRICTION_DAYS * 24 * 3600) {
        return Err(too_long);
    }
    let duration = chrono::Duration::from_std(duration).map_err(|_| too_long.clone())?;
    now.checked_add_signed(duration).map(Some).ok_or(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_before_any_arithmetic() {
        let now = Utc::now();
        assert_eq!(until(now, None), Ok(None));
        let day = until(now, Some(Duration::from_secs(86_400))).expect("a day").expect("an end");
        assert_eq!((day - now).num_seconds(), 86_400);
        for huge in [Duration::from_secs(100_000_000 * 86_400), Duration::from_secs(u64::MAX), Duration::MAX] {
            assert_eq!(until(now, Some(huge)), Err(HubError::TooLong { max_days: MAX_RESTRICTION_DAYS }));
        }
    }
}
