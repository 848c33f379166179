//! Rooms' lives and settings: creating a room (a new life, or a registered room filling
//! again), ending an unregistered room's life with its last member, and the settings
//! checked where they apply, for every gateway: joining (`may_enter`) and speaking
//! (`may_speak`). Changing a registered room's settings is durable before it applies.

use std::sync::Arc;

use chrono::Utc;

use super::{Answer, Completion, Hub};
use crate::charter::Charter;
use crate::command::RequestId;
use crate::error::{HubError, ModeProblem};
use crate::event::{Event, Reply, Timestamp};
use crate::handle::SessionId;
use crate::identity::Userhost;
use crate::moderation::{Change, Changed, Restriction};
use crate::modes::{ModeChange, RoomMode, RoomModes};
use crate::name::{Nick, RoomName};
use crate::outbox::Shared;

/// The longest room key, in bytes.
pub(crate) const MAX_KEY: usize = 32;

/// The largest member limit (`+l`) a room may set.
pub(crate) const MAX_MEMBER_LIMIT: usize = 1_000_000;

impl Hub {
    /// A room is created by its first member: a registered room fills again as it was;
    /// any other begins a new life, with its creator as operator while they stay, none
    /// of its past, and (when the creator is logged in) a registration on their account.
    pub(super) fn open_room(&mut self, creator: SessionId, name: &RoomName) {
        if self.charters.contains_key(name) {
            return;
        }
        // Spelled as its history is: a room keeps one spelling in the store, whoever
        // opens it again and however they type it.
        let name = &self.logs.get_key_value(name).map_or_else(|| name.clone(), |(kept, _)| kept.clone());
        // In a cluster, a room this node has no member of may have members on another
        // node, and its life goes on there: every room keeps its whole past, as a
        // registered room does (docs/ARCHITECTURE.md, "Cluster mode").
        let clustered = self.ledger.is_some();
        let since = if clustered { 1 } else { self.logs.get(name).map_or(1, crate::log::RoomLog::next_life) };
        if let Some(log) = self.logs.get_mut(name).filter(|_| !clustered) {
            log.forget();
        }
        self.hold_room(name);
        self.charters.insert(name.clone(), Charter::fresh(name.clone(), since, RoomModes::default()));
        let mut room = crate::room::Room::new(name.clone());
        // In a cluster, a room with members on other nodes was created there: its
        // creator, not this node's first member, is its operator (and registers it).
        let created_here = !(clustered && self.elsewhere.count_in(name) > 0);
        if created_here {
            room.ops.insert(creator);
        }
        self.rooms.insert(name.clone(), room);
        if created_here {
            self.register_on_creation(creator, name);
        }
    }

    /// The last member left: an unregistered room's life ends (its settings, bans and
    /// topic go, and its latest messages are forgotten); a registered one waits as it is.
    pub(super) fn close_room(&mut self, name: &RoomName) {
        // In a cluster, a room still has a life while it has members on other nodes.
        let elsewhere = self.elsewhere.count_in(name) > 0;
        let keep = elsewhere || self.charters.get(name).is_some_and(|c| c.is_registered() || c.pending > 0);
        if !elsewhere {
            self.invited_elsewhere.remove(name);
        }
        if !keep {
            if let Some(charter) = self.charters.remove(name) {
                self.release_room(&charter.name);
            }
            if let Some(log) = self.logs.get_mut(name).filter(|_| self.ledger.is_none()) {
                log.forget();
            }
        }
    }

    /// Whether the session operates `room`: a member made operator while it stays, or
    /// logged in to one of the room's durable operators' accounts.
    pub(crate) fn is_op(&self, id: SessionId, room: &RoomName) -> bool {
        if self.rooms.get(room).is_some_and(|r| r.ops.contains(&id)) {
            return true;
        }
        let account = self.sessions.get(&id).and_then(|s| s.account.as_ref());
        account.is_some_and(|a| self.charters.get(room).is_some_and(|c| c.ops.contains(&a.id)))
    }

    /// Whether the session may moderate `room`: a server admin, or one of its operators.
    pub(crate) fn may_moderate(&self, id: SessionId, room: &RoomName) -> bool {
        self.is_admin(id) || self.is_op(id, room)
    }

    /// Whether the session may join `room` given its settings. Operators and admins
    /// pass every setting (they are the ones who set them); bans are checked apart.
    pub(super) fn may_enter(&self, id: SessionId, name: &RoomName, key: Option<&str>) -> Result<(), HubError> {
        let Some(charter) = self.charters.get(name) else {
            return Ok(());
        };
        let room = self.rooms.get(name);
        if room.is_some_and(|r| r.contains(id)) || self.may_moderate(id, name) {
            return Ok(());
        }
        let invited = room.is_some_and(|r| r.invited.contains(&id))
            || self.invited_elsewhere.get(name).is_some_and(|invited| invited.contains(&id));
        if charter.modes.invite_only && !invited {
            return Err(HubError::InviteOnly(name.to_string()));
        }
        if charter.modes.key.as_deref().is_some_and(|k| Some(k) != key) && !invited {
            return Err(HubError::WrongKey(name.to_string()));
        }
        if charter.modes.limit.is_some_and(|limit| room.map_or(0, crate::room::Room::len) >= limit) {
            return Err(HubError::RoomFull(name.to_string()));
        }
        Ok(())
    }

    /// Forgets an invitation once used.
    pub(super) fn entered(&mut self, id: SessionId, name: &RoomName) {
        if let Some(room) = self.rooms.get_mut(name) {
            room.invited.remove(&id);
        }
        if let Some(invited) = self.invited_elsewhere.get_mut(name) {
            invited.remove(&id);
            if invited.is_empty() {
                self.invited_elsewhere.remove(name);
            }
        }
    }

    /// Whether the session may speak in `room` given its settings (mutes are checked
    /// apart).
    pub(crate) fn may_speak(&self, id: SessionId, name: &RoomName) -> bool {
        let moderated = self.charters.get(name).is_some_and(|c| c.modes.moderated);
        !moderated || self.rooms.get(name).is_some_and(|r| r.voiced.contains(&id)) || self.may_moderate(id, name)
    }

    /// The room a moderation command (a kick, a ban, a deletion) acts on: one the session
    /// is in, or the room it joined last when it names none; server admins also act on
    /// rooms they are not in, registered ones even when empty.
    pub(crate) fn moderated_room(&self, id: SessionId, room: Option<&str>) -> Result<RoomName, HubError> {
        let Some(room) = room else { return self.target_room(id, None) };
        self.joined_room(id, room).or_else(|e| {
            let name = RoomName::parse(room, self.limits.max_room_len)?;
            if self.is_admin(id) && self.charters.contains_key(&name) {
                Ok(name)
            } else {
                Err(e)
            }
        })
    }

    /// The room named, which the session must be in (a secret room it is not in does not
    /// exist for it).
    pub(crate) fn joined_room(&self, id: SessionId, room: &str) -> Result<RoomName, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        match self.rooms.get(&name) {
            Some(r) if r.contains(id) => Ok(r.name.clone()),
            Some(r) if !self.hidden_from(id, &name) => Err(HubError::NotInRoom(r.name.to_string())),
            _ => Err(HubError::NoSuchRoom(name.to_string())),
        }
    }

    /// Changes a room's settings and voice, all or nothing, and tells its members. A
    /// registered room's settings are written first and applied when the store reports.
    pub(super) fn set_modes(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: &str,
        changes: Vec<ModeChange>,
    ) -> Result<Answer, HubError> {
        let name = self.joined_room(id, room)?;
        if !self.may_moderate(id, &name) {
            return Err(HubError::NotOperator(name.to_string()));
        }
        let charter = self.charters.get(&name).ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        let members = self.rooms.get(&name).ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        // Check everything first, so that a bad change changes nothing. Settings on their
        // way to the store are the ones this change builds on.
        let base = charter.modes_ahead.as_ref().map_or(&charter.modes, |(modes, _)| modes);
        let mut modes = base.clone();
        let mut voiced = members.voiced.clone();
        let mut applied = Vec::new();
        for change in changes {
            let effective = match &change.mode {
                RoomMode::Voice(nick) => {
                    let Some(target) = self.nicks.get(nick).copied().filter(|t| members.contains(*t)) else {
                        // A member on another node of a cluster: their node gives or takes
                        // the voice when it hears of the change.
                        let person = self.elsewhere.named(nick).map(|(_, p)| p).filter(|p| p.rooms.contains(&name));
                        let person = person
                            .ok_or_else(|| HubError::NotHere { nick: nick.to_string(), room: name.to_string() })?;
                        let changed = person.marks_in(&name).voice != change.set;
                        let mode = RoomMode::Voice(person.nick.clone());
                        applied.extend(changed.then_some(ModeChange { set: change.set, mode }));
                        continue;
                    };
                    let nick = self.state(target).nick.clone();
                    let changed = if change.set { voiced.insert(target) } else { voiced.remove(&target) };
                    applied.extend(changed.then_some(ModeChange { set: change.set, mode: RoomMode::Voice(nick) }));
                    continue;
                }
                RoomMode::Key(key) if change.set && !usable_key(key) => {
                    return Err(HubError::BadMode(ModeProblem::Key { max: MAX_KEY }));
                }
                RoomMode::Limit(limit) if change.set && !(1..=MAX_MEMBER_LIMIT).contains(limit) => {
                    return Err(HubError::BadMode(ModeProblem::Limit { max: MAX_MEMBER_LIMIT }));
                }
                RoomMode::Moderated => std::mem::replace(&mut modes.moderated, change.set) != change.set,
                RoomMode::Secret => std::mem::replace(&mut modes.secret, change.set) != change.set,
                RoomMode::Private => std::mem::replace(&mut modes.private, change.set) != change.set,
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
            };
            if effective {
                applied.push(change);
            }
        }
        // Behind changes on their way, even a change of voice alone waits its turn.
        let durable = charter.keeps_changes() && (modes != *base || charter.modes_ahead.is_some());
        if !durable {
            self.apply_modes(id, &name, modes, voiced, applied);
            return Ok(Reply::ModesSet { room: name }.into());
        }
        let Some(store) = self.store.clone() else {
            self.apply_modes(id, &name, modes, voiced, applied);
            return Ok(Reply::ModesSet { room: name }.into());
        };
        let change = Change {
            actor: self.actor_name(id),
            room: Some(name.clone()),
            durable: true,
            at: Utc::now(),
            what: Changed::Modes(modes.clone()),
        };
        self.writes += 1;
        if let Some(charter) = self.charters.get_mut(&name) {
            charter.pending += 1;
            let writing = charter.modes_ahead.as_ref().map_or(0, |(_, n)| *n);
            charter.modes_ahead = Some((modes.clone(), writing + 1));
        }
        let completions = self.completions.clone();
        self.write(move || {
            let result = store.record(&change);
            let _ =
                completions.send(Completion::ModesSet { session: id, req, room: name, modes, voiced, applied, result });
        });
        Ok(Answer::Later)
    }

    /// The store kept a registered room's new settings: apply them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn modes_stored(
        &mut self,
        id: SessionId,
        req: RequestId,
        name: RoomName,
        modes: RoomModes,
        voiced: std::collections::HashSet<SessionId>,
        applied: Vec<ModeChange>,
        result: Result<(), crate::StoreError>,
    ) {
        self.writes -= 1;
        if let Some(charter) = self.charters.get_mut(&name) {
            charter.pending = charter.pending.saturating_sub(1);
            charter.modes_ahead = match charter.modes_ahead.take() {
                Some((ahead, writing)) if writing > 1 => Some((ahead, writing - 1)),
                _ => None,
            };
        }
        match result {
            Ok(()) => {
                self.apply_modes(id, &name, modes, voiced, applied);
                self.reply(id, req, Ok(Reply::ModesSet { room: name.clone() }));
            }
            Err(e) => self.reply(id, req, Err(super::store_failed(&e))),
        }
        if !self.rooms.contains_key(&name) {
            self.close_room(&name);
        }
    }

    fn apply_modes(
        &mut self,
        id: SessionId,
        name: &RoomName,
        modes: RoomModes,
        voiced: std::collections::HashSet<SessionId>,
        applied: Vec<ModeChange>,
    ) {
        if !applied.is_empty() {
            self.tell_cluster(|| crate::presence::Presence::Modes {
                room: name.clone(),
                by: self.sessions.get(&id).map(|s| s.nick.clone()).unwrap_or_else(|| self.actor_name(id)),
                modes: modes.clone(),
                changes: applied.clone(),
            });
        }
        if let Some(charter) = self.charters.get_mut(name) {
            charter.modes = modes;
            charter.known.modes = true;
        }
        if let Some(room) = self.rooms.get_mut(name) {
            // Only members can be voiced; one who left meanwhile is not.
            room.voiced = voiced.into_iter().filter(|member| room.contains(*member)).collect();
        }
        self.tell_cluster_voices(name, &applied);
        if !applied.is_empty() {
            let by = self.sessions.get(&id).map(|s| s.nick.clone()).unwrap_or_else(|| self.actor_name(id));
            self.announce_modes(name, by, applied);
        }
    }

    /// Another node of a cluster changed a room's settings or voices: its settings are
    /// the room's here too, and a voice given to a member here is theirs.
    pub(super) fn modes_elsewhere(&mut self, name: &RoomName, by: Nick, modes: RoomModes, changes: &[ModeChange]) {
        if let Some(charter) = self.charters.get_mut(name) {
            charter.modes = modes;
            charter.known.modes = true;
        }
        for change in changes {
            let RoomMode::Voice(nick) = &change.mode else { continue };
            let Some(&member) = self.nicks.get(nick) else { continue };
            if let Some(room) = self.rooms.get_mut(name).filter(|room| room.contains(member)) {
                if change.set {
                    room.voiced.insert(member);
                } else {
                    room.voiced.remove(&member);
                }
            }
        }
        self.tell_cluster_voices(name, changes);
        self.announce_modes(name, by, changes.to_vec());
    }

    /// Tells the other nodes the marks of this node's members whose voice `changes`
    /// gave or took.
    fn tell_cluster_voices(&self, name: &RoomName, changes: &[ModeChange]) {
        for change in changes {
            if let RoomMode::Voice(nick) = &change.mode {
                if let Some(&member) = self.nicks.get(nick) {
                    self.tell_cluster_marks(member, name);
                }
            }
        }
    }

    /// Tells a room's members here that `by` changed its settings.
    pub(super) fn announce_modes(&mut self, name: &RoomName, by: Nick, applied: Vec<ModeChange>) {
        if let Some(members) = self.rooms.get(name) {
            let userhost = self.userhost_named(&by);
            let event =
                Shared::new(Event::Mode { room: members.name.clone(), by, at: Utc::now(), changes: applied, userhost });
            members.broadcast(&event, None, &mut self.overflowed);
        }
    }

    /// A room's settings. Its key is for its members (and those who moderate it); a
    /// secret room does not exist for others.
    pub(super) fn modes(&self, id: SessionId, room: &str) -> Result<Reply, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        let charter = self.charters.get(&name).filter(|_| self.rooms.contains_key(&name));
        let charter = charter.filter(|_| !self.hidden_from(id, &name));
        let charter = charter.ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        let member = self.rooms.get(&name).is_some_and(|r| r.contains(id)) || self.may_moderate(id, &name);
        let mut modes = charter.modes.clone();
        let key_hidden = !member && modes.key.is_some();
        if key_hidden {
            modes.key = None;
        }
        Ok(Reply::Modes { room: charter.name.clone(), modes, created: charter.created, key_hidden })
    }

    /// The bans in force in a room, for its members; addresses only for those who
    /// moderate it.
    pub(super) fn bans(&self, id: SessionId, room: &str) -> Result<Reply, HubError> {
        // Anyone may read a room's ban list, as on IRC servers (a banned user may see
        // why), unless the room is secret to them; address bans are for its moderators.
        let name = self.joined_room(id, room).or_else(|e| {
            let name = RoomName::parse(room, self.limits.max_room_len)?;
            let exists = self.rooms.contains_key(&name) || self.charters.contains_key(&name);
            if self.is_admin(id) || (exists && !self.hidden_from(id, &name)) {
                Ok(name)
            } else {
                Err(e)
            }
        })?;
        let now = Utc::now();
        let moderator = self.may_moderate(id, &name);
        let bans: Vec<Restriction> = self
            .charters
            .get(&name)
            .map(|c| c.bans(now).filter(|r| moderator || !r.mask.is_address()).cloned().collect())
            .unwrap_or_default();
        let room = self.charters.get(&name).map_or(name, |c| c.name.clone());
        Ok(Reply::Bans { room, bans })
    }

    /// Invites someone into a room the session is in (an operator's call when the room
    /// is invite-only).
    pub(super) fn invite(&mut self, id: SessionId, nick: &str, room: Option<&str>) -> Result<Reply, HubError> {
        let target = match self.session_named(nick) {
            Ok(target) => target,
            // On another node of a cluster: their node keeps the invitation.
            Err(e) => {
                let parsed = Nick::parse(nick, self.limits.max_nick_len).map_err(|_| e.clone())?;
                let (_, person) = self.elsewhere.named(&parsed).ok_or(e)?;
                let (nick, rooms) = (person.nick.clone(), person.rooms.clone());
                return self.invite_elsewhere(id, nick, &rooms, room);
            }
        };
        let (name, invite_only) = self.inviting_into(id, room)?;
        let nick = self.state(target).nick.clone();
        let room = self.rooms.get_mut(&name).ok_or_else(|| HubError::NoSuchRoom(name.to_string()))?;
        if room.contains(target) {
            return Err(HubError::AlreadyInRoom { nick: nick.to_string(), room: name.to_string() });
        }
        room.invited.insert(target);
        let others: Vec<SessionId> = room.member_ids().filter(|member| *member != id).collect();
        let (by, userhost) = (self.state(id).nick.clone(), self.state(id).userhost.clone());
        let at = Utc::now();
        self.tell(target, &Event::Invited { room: name.clone(), by: by.clone(), at, userhost: userhost.clone() });
        let sent = Event::InviteSent { room: name.clone(), by, nick: nick.clone(), at, userhost };
        for member in others {
            if !invite_only || self.may_moderate(member, &name) {
                self.tell(member, &sent);
            }
        }
        Ok(Reply::Invited { nick, room: name })
    }

    /// The room the session invites someone into (`room`, or its current one), if it
    /// may: one it is in, and, when the room is invite-only (returned true), one it
    /// operates.
    fn inviting_into(&self, id: SessionId, room: Option<&str>) -> Result<(RoomName, bool), HubError> {
        let name = match room {
            Some(room) => self.joined_room(id, room)?,
            None => self.target_room(id, None)?,
        };
        let invite_only = self.charters.get(&name).is_some_and(|c| c.modes.invite_only);
        if invite_only && !self.may_moderate(id, &name) {
            return Err(HubError::NotOperator(name.to_string()));
        }
        Ok((name, invite_only))
    }

    /// Invites `nick`, on another node of a cluster (in `rooms` there), into a room the
    /// session is in, as [`Hub::invite`] does one here: checked here, kept by their node.
    fn invite_elsewhere(
        &mut self,
        id: SessionId,
        nick: Nick,
        rooms: &[RoomName],
        room: Option<&str>,
    ) -> Result<Reply, HubError> {
        let (name, _) = self.inviting_into(id, room)?;
        if rooms.contains(&name) {
            return Err(HubError::AlreadyInRoom { nick: nick.to_string(), room: name.to_string() });
        }
        let name = self.rooms.get(&name).map_or(name, |r| r.name.clone());
        let (by, userhost) = (self.state(id).nick.clone(), self.state(id).userhost.clone());
        self.tell_cluster(|| crate::presence::Presence::Invited {
            room: name.clone(),
            nick: nick.clone(),
            by: by.clone(),
            userhost: userhost.clone(),
        });
        self.invite_sent(&name, by, &nick, userhost, &[id]);
        Ok(Reply::Invited { nick, room: name })
    }

    /// An operator on another node invited `nick` into `room`: kept, and told, if they
    /// are here; this node's members hear of it as they would of an invitation here.
    pub(super) fn invited_from_elsewhere(&mut self, room: &RoomName, nick: &Nick, by: Nick, userhost: Arc<Userhost>) {
        let target = self.nicks.get(nick).copied();
        if let Some(target) = target.filter(|t| !self.rooms.get(room).is_some_and(|r| r.contains(*t))) {
            self.invited_elsewhere.entry(room.clone()).or_default().insert(target);
            let name = self.charters.get(room).map_or_else(|| room.clone(), |c| c.name.clone());
            let invited = Event::Invited { room: name, by: by.clone(), at: Utc::now(), userhost: userhost.clone() };
            self.tell(target, &invited);
        }
        self.invite_sent(room, by, nick, userhost, &[]);
    }

    /// Tells the members here of `room` (but `except`) that `by` invited `nick`: in an
    /// invite-only room, only those who moderate it.
    fn invite_sent(&mut self, room: &RoomName, by: Nick, nick: &Nick, userhost: Arc<Userhost>, except: &[SessionId]) {
        let Some(members) = self.rooms.get(room) else { return };
        let invite_only = self.charters.get(room).is_some_and(|c| c.modes.invite_only);
        let told: Vec<SessionId> = members
            .member_ids()
            .filter(|member| !except.contains(member))
            .filter(|member| !invite_only || self.may_moderate(*member, room))
            .collect();
        let sent = Event::InviteSent { room: members.name.clone(), by, nick: nick.clone(), at: Utc::now(), userhost };
        for member in told {
            self.tell(member, &sent);
        }
    }

    /// The rooms the session is invited into, by name.
    pub(super) fn invitations(&self, id: SessionId) -> Reply {
        let mut rooms: Vec<RoomName> =
            self.rooms.values().filter(|room| room.invited.contains(&id)).map(|room| room.name.clone()).collect();
        let elsewhere = self.invited_elsewhere.iter().filter(|(_, invited)| invited.contains(&id));
        let elsewhere =
            elsewhere.map(|(room, _)| self.charters.get(room).map_or_else(|| room.clone(), |c| c.name.clone()));
        rooms.extend(elsewhere.filter(|room| !rooms.contains(room)).collect::<Vec<_>>());
        rooms.sort();
        Reply::Invitations { rooms }
    }

    /// The topic of a room, for `/topic` without text; a secret room's only for its
    /// members.
    pub(super) fn topic(&self, id: SessionId, room: Option<&str>) -> Result<Reply, HubError> {
        let room = match room {
            Some(name) => RoomName::parse(name, self.limits.max_room_len)?,
            None => self.target_room(id, None)?,
        };
        let Some(charter) = self.charters.get(&room).filter(|_| !self.hidden_from(id, &room)) else {
            return Err(HubError::NoSuchRoom(room.to_string()));
        };
        // The room as it is spelled, not as asked.
        Ok(Reply::Topic { topic: self.topic_of(&room), room: charter.name.clone() })
    }

    /// The topic of a room, for newcomers: its text, who set it, when.
    pub(crate) fn topic_of(&self, room: &RoomName) -> Option<(String, Nick, Timestamp)> {
        let topic = self.charters.get(room)?.topic.as_ref()?;
        Some((topic.text.clone(), topic.by.clone(), topic.at))
    }

    /// How many rooms an account has founded.
    pub(crate) fn founded_by(&self, account: crate::identity::AccountId) -> usize {
        self.charters.values().filter(|c| c.founder() == Some(account)).count()
    }

    /// The name the audit log gives the session: its account's, else its nick.
    /// The user name and host of the session named `nick`, for an event it is the
    /// source of; an actor no longer here (a moderation finishing after it left) shows
    /// [`Userhost::unknown`].
    pub(crate) fn userhost_named(&self, nick: &Nick) -> Arc<Userhost> {
        self.nicks.get(nick).and_then(|id| self.sessions.get(id)).map_or_else(Userhost::unknown, |s| s.userhost.clone())
    }

    pub(crate) fn actor_name(&self, id: SessionId) -> Nick {
        self.sessions.get(&id).map_or_else(
            || Nick::parse("server", usize::MAX).unwrap_or_else(|_| unreachable!("a valid nick")),
            |s| s.account_name().cloned().unwrap_or_else(|| s.nick.clone()),
        )
    }
}

/// A key a client can send back: 1 to [`MAX_KEY`] bytes, nothing IRC would split on.
fn usable_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY && !key.contains([' ', ',', ':']) && !key.chars().any(char::is_control)
}
