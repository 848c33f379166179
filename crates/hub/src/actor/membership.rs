//! Sessions arriving and leaving, entering and leaving rooms, and changing nick; who is
//! where, as member lists and room lists show it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;

use super::claiming::Pending;
use super::{shorten, Answer, Hub, SessionState, MAX_REASON};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply, RoomSummary};
use crate::handle::SessionId;
use crate::identity::{Account, Arrival, Userhost};
use crate::modes::{Member, Visibility};
use crate::name::{Nick, RoomName};
use crate::outbox::{Outbox, Shared};
use crate::room::Room;

impl Hub {
    /// The nick, valid, not in use and not like one in use.
    pub(super) fn nick_free(&self, nick: &str) -> Result<Nick, HubError> {
        let nick = Nick::parse(nick, self.limits.max_nick_len)?;
        self.refuse_reserved(&nick)?;
        if self.nicks.contains_key(&nick) || self.elsewhere.named(&nick).is_some() {
            return Err(HubError::NickTaken(nick.to_string()));
        }
        self.refuse_lookalike_nick(&nick)?;
        Ok(nick)
    }

    /// Whether a session may register under `nick` (of the account `account`, if it
    /// proved it owns one): the nick as checked.
    pub(super) fn admission(&self, nick: &str, account: Option<&Nick>, arrival: &Arrival) -> Result<Nick, HubError> {
        if self.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        let nick = self.nick_free(nick)?;
        let address = arrival.address;
        if let Some(ban) = self.server_bans.find(Utc::now(), &nick, account, address, Some(&arrival.userhost)) {
            tracing::info!(%nick, ?address, "refused a banned client");
            return Err(HubError::ServerBanned { reason: ban.reason.clone() });
        }
        if arrival.lobby {
            self.may_enter_lobby(&nick, account, address, Some(&arrival.userhost))?;
        }
        Ok(nick)
    }

    /// Registers a session; `account` when it has already proved it owns the nick (and,
    /// in a cluster, this node holds the nick's claim).
    pub(super) fn connect(
        &mut self,
        nick: &str,
        account: Option<Account>,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        token: Option<String>,
    ) -> Result<SessionId, HubError> {
        let nick = self.admission(nick, account.as_ref().map(|a| &a.name), &arrival)?;
        let Arrival { address, userhost, lobby } = arrival;
        let id = SessionId(self.next_id);
        self.next_id += 1;
        let guest = self.next_guest();
        self.nicks.insert(nick.clone(), id);
        self.hold_nick(&nick);
        self.use_claim(&nick);
        let squatting = self.accounts.contains_key(&nick) && account.as_ref().map(|a| &a.name) != Some(&nick);
        self.sessions.insert(
            id,
            Box::new(SessionState {
                nick: nick.clone(),
                outbox: outbox.clone(),
                rooms: Vec::new(),
                account,
                guest,
                address,
                userhost,
                away: None,
                realname: None,
                since: Utc::now(),
                active: std::time::Instant::now(),
                oper: false,
                reads: 0,
                markers: None,
            }),
        );
        self.max_users = self.max_users.max(self.sessions.len());
        self.tell_cluster_arrived(id);
        let (room, members, history, topic) = if lobby {
            let lobby = self.lobby.clone();
            let room = self.enter(id, &lobby, true);
            (Some(room), self.members_on_entry(&lobby, id), self.recent(&lobby), self.topic_of(&lobby))
        } else {
            (None, Vec::new(), Vec::new(), None)
        };
        let max_text = self.limits.max_message_bytes;
        let stats = self.stats();
        let mut welcome = Reply::Welcome { nick: nick.clone(), room, members, max_text, history, topic, stats };
        if let Some(token) = token {
            welcome = Reply::Remembered { reply: Box::new(welcome), token };
        }
        if outbox.deliver(&Event::Reply { req, result: Ok(welcome) }).is_err() {
            self.overflowed.push(id);
        }
        if squatting {
            self.warn_squatter(id, &nick);
        }
        self.signed_on(id);
        tracing::debug!(session = id.0, "session registered");
        Ok(id)
    }

    /// A session that starts in the lobby is kept out by a ban there, as joining would
    /// keep it out (one that starts elsewhere meets the ban when it joins the lobby;
    /// server bans are their own check).
    pub(super) fn may_enter_lobby(
        &self,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> Result<(), HubError> {
        let charter = self.charters.get(&self.lobby);
        match charter.and_then(|c| c.restriction(Utc::now(), true, nick, account, address, userhost)) {
            Some(ban) => Err(HubError::Banned { room: self.lobby.to_string(), reason: ban.reason.clone() }),
            None => Ok(()),
        }
    }

    /// The session leaves the chat on purpose.
    pub(super) fn quit(&mut self, id: SessionId, req: RequestId, reason: Option<String>) {
        let reason = reason.map(|r| Arc::from(shorten(&r, MAX_REASON)));
        if let Some(state) = self.remove_session(id, LeaveReason::Quit, reason) {
            let _ = state.outbox.deliver(&Event::Reply { req, result: Ok(Reply::Bye) });
            state.outbox.close();
        }
    }

    /// Puts the session in the room, creating it (a new life of it, if it is not
    /// registered) when nobody is there, and tells the members already there.
    pub(super) fn enter(&mut self, id: SessionId, name: &RoomName, arrival: bool) -> RoomName {
        if !self.rooms.contains_key(name) {
            self.open_room(id, name);
        }
        let state = self.sessions.get(&id).unwrap_or_else(|| unreachable!("entering session exists"));
        let (nick, outbox, userhost) = (state.nick.clone(), state.outbox.clone(), state.userhost.clone());
        let (account, realname) = (state.account_name().cloned(), state.realname.clone());
        // The room as its charter spells it (see `open_room`), not as this member typed it.
        let spelled = self.charters.get(name).map_or_else(|| name.clone(), |c| c.name.clone());
        let room = self.rooms.entry(name.clone()).or_insert_with(|| Room::new(spelled));
        let room_name = room.name.clone();
        let entering = !room.contains(id);
        if entering {
            room.add(id, outbox);
            if room.len() <= self.limits.announce_up_to {
                let at = Utc::now();
                let joined = Shared::new(Event::Joined {
                    room: room_name.clone(),
                    nick,
                    at,
                    arrival,
                    account,
                    realname,
                    userhost,
                });
                room.broadcast(&joined, Some(id), &mut self.overflowed);
            }
        }
        let rooms = &mut self.state_mut(id).rooms;
        rooms.retain(|r| r != name);
        rooms.push(room_name.clone());
        if entering {
            self.tell_cluster_joined(id, &room_name);
        }
        room_name
    }

    /// Takes the session out of one room, telling those who stay; the last one out of an
    /// unregistered room ends its life. A departure from every room at once (a quit, a
    /// lost connection) passes the members told so far in `told`, so that each learns of
    /// it once as news and after that `again`.
    pub(super) fn leave(
        &mut self,
        id: SessionId,
        (nick, userhost): (&Nick, &Arc<Userhost>),
        name: &RoomName,
        reason: LeaveReason,
        detail: Option<&Arc<str>>,
        told: Option<&mut HashSet<SessionId>>,
    ) {
        if told.is_none() {
            // A departure from every room at once is told to the cluster once, as gone.
            self.tell_cluster(|| crate::presence::Presence::Left {
                session: id.0,
                room: name.clone(),
                reason,
                by: None,
                detail: detail.cloned(),
            });
        }
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.remove(id);
        if room.is_empty() {
            self.rooms.remove(name);
            self.close_room(name);
            return;
        }
        if room.len() >= self.limits.announce_up_to {
            return;
        }
        let left = |again| {
            Shared::new(Event::Left {
                room: room.name.clone(),
                nick: nick.clone(),
                at: Utc::now(),
                reason,
                by: None,
                detail: detail.cloned(),
                again,
                userhost: userhost.clone(),
                by_userhost: None,
            })
        };
        match told {
            None => room.broadcast(&left(false), None, &mut self.overflowed),
            Some(told) => room.broadcast_once(&left(false), &left(true), told, &mut self.overflowed),
        }
    }

    pub(super) fn join(
        &mut self,
        id: SessionId,
        room: &str,
        exclusive: bool,
        key: Option<&str>,
    ) -> Result<Reply, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        let rooms = &self.state(id).rooms;
        let max = self.limits.max_rooms_per_session;
        if !exclusive && rooms.len() >= max && !rooms.contains(&name) {
            return Err(HubError::TooManyRooms { max });
        }
        if let Some(ban) = self.restricted(id, &name, true) {
            return Err(HubError::Banned { room: name.to_string(), reason: ban.reason.clone() });
        }
        if !self.charters.contains_key(&name) {
            self.refuse_lookalike_room(&name)?;
        }
        self.may_enter(id, &name, key)?;
        let room = self.enter(id, &name, false);
        self.entered(id, &name);
        if exclusive {
            let state = self.state_mut(id);
            let others: Vec<RoomName> = state.rooms.iter().filter(|r| **r != name).cloned().collect();
            state.rooms.retain(|r| *r == name);
            let (nick, userhost) = (state.nick.clone(), state.userhost.clone());
            for other in others {
                self.leave(id, (&nick, &userhost), &other, LeaveReason::Part, None, None);
            }
        }
        let members = self.members_on_entry(&name, id);
        let history = self.recent(&name);
        let topic = self.topic_of(&name);
        let read = self.marker(id, &Self::room_key(&name));
        let visibility = self.visibility(&name);
        Ok(Reply::Joined { room, members, history, topic, read, visibility })
    }

    pub(super) fn part(
        &mut self,
        id: SessionId,
        room: Option<&str>,
        reason: Option<String>,
    ) -> Result<Reply, HubError> {
        let name = self.target_room(id, room)?;
        let state = self.state_mut(id);
        state.rooms.retain(|r| *r != name);
        let (nick, userhost) = (state.nick.clone(), state.userhost.clone());
        let reason = reason.map(|r| Arc::from(shorten(&r, MAX_REASON)));
        self.leave(id, (&nick, &userhost), &name, LeaveReason::Part, reason.as_ref(), None);
        Ok(Reply::Parted { room: name })
    }

    /// The session's `NICK`: checked here, then (in a cluster, unless this node holds
    /// the nick's claim already) once more when the cluster grants the claim.
    pub(super) fn rename(&mut self, id: SessionId, req: RequestId, nick: &str) -> Result<Answer, HubError> {
        let new = Nick::parse(nick, self.limits.max_nick_len)?;
        self.refuse_reserved(&new)?;
        if let Some(owner) = self.nicks.get(&new) {
            if *owner != id {
                return Err(HubError::NickTaken(new.to_string()));
            }
        }
        if self.elsewhere.named(&new).is_some() {
            return Err(HubError::NickTaken(new.to_string()));
        }
        if self.accounts.contains_key(&new) && self.state(id).account_name() != Some(&new) {
            return Err(HubError::NickRegistered(new.to_string()));
        }
        if self.state(id).nick != new {
            self.refuse_lookalike_nick(&new)?;
        }
        if let Some(key) = self.unclaimed(&new) {
            self.claim_then(key, new, Pending::Rename { session: id, req, nick: nick.to_owned() });
            return Ok(Answer::Later);
        }
        self.change_nick(id, new.clone(), false);
        Ok(Reply::Nick { nick: new }.into())
    }

    /// Gives the session the nick `new` (already checked) and tells everyone who shares
    /// a room with it, once each; the session itself too when the server renamed it.
    pub(crate) fn change_nick(&mut self, id: SessionId, new: Nick, tell_self: bool) {
        let state = self.state_mut(id);
        let old = std::mem::replace(&mut state.nick, new.clone());
        let (rooms, userhost) = (state.rooms.clone(), state.userhost.clone());
        self.nicks.remove(&old);
        self.release_nick(&old);
        self.let_go_of_claim(&old);
        self.nicks.insert(new.clone(), id);
        self.hold_nick(&new);
        self.use_claim(&new);
        // A change of case only is the same nick to those watching it.
        let watched = old != new;
        self.tell_cluster(|| crate::presence::Presence::Renamed { session: id.0, nick: new.clone() });
        let changed = Shared::new(Event::NickChanged { old: old.clone(), new, at: Utc::now(), userhost });
        self.tell_room_mates(id, &rooms, &changed, tell_self);
        if watched {
            self.signed_off(&old);
            self.signed_on(id);
        }
    }

    /// Delivers `event` once to each session that shares one of `rooms` with `id`, and
    /// to `id` itself when `include_self` (even when it is in no room). In an
    /// auditorium, where members are not shown everyone, only a change by someone they
    /// are shown (an operator, a voiced member) is told: else one nick change would cost
    /// a delivery per member of the largest room. Returns who was told, `id` included.
    pub(crate) fn tell_room_mates(
        &mut self,
        id: SessionId,
        rooms: &[RoomName],
        event: &Shared,
        include_self: bool,
    ) -> HashSet<SessionId> {
        let mut told = HashSet::from([id]);
        let mut targets = if include_self { vec![id] } else { Vec::new() };
        for room in rooms.iter().filter_map(|name| self.rooms.get(name)) {
            if room.len() > self.limits.announce_up_to && !self.is_op(id, &room.name) && !room.voiced.contains(&id) {
                continue;
            }
            targets.extend(room.member_ids().filter(|member| told.insert(*member)));
        }
        for target in targets {
            if let Some(state) = self.sessions.get(&target) {
                if state.outbox.deliver_shared(event).is_err() {
                    self.overflowed.push(target);
                }
            }
        }
        told
    }

    pub(super) fn who(&self, id: SessionId, room: Option<&str>) -> Result<Reply, HubError> {
        let name = match room {
            None => self.target_room(id, None)?,
            Some(room) => RoomName::parse(room, self.limits.max_room_len)?,
        };
        match self.rooms.get(&name) {
            Some(room) if self.hidden_from(id, &name) => Err(HubError::NoSuchRoom(room.name.to_string())),
            Some(room) => {
                let visibility = self.visibility(&name);
                Ok(Reply::Who { room: room.name.clone(), members: self.members(&name), visibility })
            }
            // Members on other nodes of a cluster only.
            None if self.elsewhere.count_in(&name) > 0 && !self.hidden_from(id, &name) => {
                let visibility = self.visibility(&name);
                Ok(Reply::Who { room: name.clone(), members: self.members(&name), visibility })
            }
            None => Err(HubError::NoSuchRoom(name.to_string())),
        }
    }

    /// How much of `room` those outside it see.
    pub(crate) fn visibility(&self, room: &RoomName) -> Visibility {
        self.charters.get(room).map_or(Visibility::Public, |c| Visibility::of(&c.modes))
    }

    /// Whether the session is outside `room` and no administrator, and so sees only
    /// what the room shows outsiders.
    fn outside(&self, id: SessionId, room: &RoomName) -> bool {
        !self.rooms.get(room).is_some_and(|r| r.contains(id)) && !self.is_admin(id)
    }

    /// Whether `room` is secret and the session neither in it nor an administrator: then
    /// the room does not exist, as far as the session can tell.
    pub(crate) fn hidden_from(&self, id: SessionId, room: &RoomName) -> bool {
        self.visibility(room) == Visibility::Secret && self.outside(id, room)
    }

    /// Whether lists (the room list, WHOIS) leave `room` out for the session: a secret
    /// or private room it is not in.
    pub(crate) fn unlisted_for(&self, id: SessionId, room: &RoomName) -> bool {
        self.visibility(room) != Visibility::Public && self.outside(id, room)
    }

    pub(super) fn rooms(&self, id: SessionId) -> Reply {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter(|room| !self.unlisted_for(id, &room.name))
            .map(|room| RoomSummary {
                name: room.name.clone(),
                members: room.len() + self.elsewhere.count_in(&room.name),
                joined: room.contains(id),
                topic: self.topic_of(&room.name).map(|(text, _, _)| text),
            })
            .collect();
        // Rooms with members on other nodes of a cluster only.
        rooms.extend(
            self.elsewhere
                .rooms()
                .filter(|(name, _)| !self.rooms.contains_key(*name) && !self.unlisted_for(id, name))
                .map(|(name, members)| RoomSummary {
                    name: name.clone(),
                    members,
                    joined: false,
                    topic: self.topic_of(name).map(|(text, _, _)| text),
                }),
        );
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Reply::Rooms(rooms)
    }

    /// The members a session entering a room is shown: all of them, or in an auditorium
    /// (more than `announce_up_to`) its operators and voiced members and the session
    /// itself, since listing N members to each of N arrivals is N² again. `/who` still
    /// lists everyone.
    pub(crate) fn members_on_entry(&self, name: &RoomName, id: SessionId) -> Vec<Member> {
        let Some(room) = self.rooms.get(name).filter(|room| room.len() > self.limits.announce_up_to) else {
            return self.members(name);
        };
        // Without going through every member: the session, the voiced, the session
        // operators, and the sessions of the durable operators' accounts.
        let mut shown: Vec<SessionId> = vec![id];
        shown.extend(room.voiced.iter().copied());
        shown.extend(room.ops.iter().copied());
        if let Some(charter) = self.charters.get(name) {
            let op_accounts = &charter.ops;
            let named = self.accounts.iter().filter(|(_, account)| op_accounts.contains(account));
            for (nick, _) in named {
                shown.extend(self.nicks.get(nick).copied().filter(|member| room.contains(*member)));
            }
        }
        shown.sort_unstable();
        shown.dedup();
        let mut members: Vec<Member> = shown
            .into_iter()
            .filter_map(|member| self.member(member, room))
            .filter(|m| m.nick == self.state(id).nick || m.op || m.voice)
            .collect();
        // The marked ones among those on other nodes of a cluster.
        members.extend(self.remote_members(name).filter(|m| m.op || m.voice));
        members.sort_by(|a, b| a.nick.cmp(&b.nick));
        members
    }

    /// How member lists show one session.
    fn member(&self, id: SessionId, room: &Room) -> Option<Member> {
        let state = self.sessions.get(&id)?;
        Some(Member {
            nick: state.nick.clone(),
            op: self.is_op(id, &room.name),
            voice: room.voiced.contains(&id),
            away: state.away.is_some(),
            admin: self.is_admin(id),
            realname: state.realname.clone(),
            account: state.account_name().cloned(),
            idle_secs: state.active.elapsed().as_secs(),
            userhost: state.userhost.clone(),
        })
    }

    /// A room's members, sorted by nick.
    pub(crate) fn members(&self, name: &RoomName) -> Vec<Member> {
        let mut members: Vec<Member> = match self.rooms.get(name) {
            Some(room) => room.member_ids().filter_map(|id| self.member(id, room)).collect(),
            None => Vec::new(),
        };
        members.extend(self.remote_members(name));
        members.sort_by(|a, b| a.nick.cmp(&b.nick));
        members
    }

    /// How member lists show those in `room` on other nodes of a cluster.
    fn remote_members<'a>(&'a self, name: &'a RoomName) -> impl Iterator<Item = Member> + 'a {
        // Those on other nodes of a cluster, marked as their node tells (or as operators
        // by their account's durable role, which every node knows).
        self.elsewhere.in_room(name).map(|person| Member {
            nick: person.nick.clone(),
            op: person.marks_in(name).op || self.durable_op(person.account.as_ref(), name),
            voice: person.marks_in(name).voice,
            away: person.away.is_some(),
            admin: false,
            realname: person.realname.clone(),
            account: person.account.clone(),
            idle_secs: 0,
            userhost: person.userhost.clone(),
        })
    }

    /// Whether the account named `account` is one of `room`'s durable operators.
    pub(crate) fn durable_op(&self, account: Option<&Nick>, room: &RoomName) -> bool {
        let id = account.and_then(|name| self.accounts.get(name));
        id.is_some_and(|id| self.charters.get(room).is_some_and(|c| c.ops.contains(id)))
    }

    /// Forgets a session and takes it out of its rooms, telling their members why.
    pub(crate) fn remove_session(
        &mut self,
        id: SessionId,
        reason: LeaveReason,
        detail: Option<Arc<str>>,
    ) -> Option<Box<SessionState>> {
        let state = self.sessions.remove(&id)?;
        self.tell_cluster(|| crate::presence::Presence::Gone { session: id.0, reason, detail: detail.clone() });
        self.session_tokens.remove(&id);
        // Invitations from other nodes wait for sessions here; this one will not come.
        self.invited_elsewhere.retain(|_, invited| {
            invited.remove(&id);
            !invited.is_empty()
        });
        self.nicks.remove(&state.nick);
        self.release_nick(&state.nick);
        self.let_go_of_claim(&state.nick);
        // One departure from every room: each member hears of it once as news (IRC
        // shows one QUIT), as `tell_room_mates` tells a nick change once.
        let mut told = HashSet::new();
        for room in &state.rooms {
            self.leave(id, (&state.nick, &state.userhost), room, reason, detail.as_ref(), Some(&mut told));
        }
        // Its watch list goes with it; those who watch its nick are told it is free.
        self.watches.clear(id);
        self.signed_off(&state.nick);
        tracing::debug!(session = id.0, "session removed");
        Some(state)
    }

    /// Disconnects every session whose outbox overflowed, including those that overflow
    /// while being told that the first ones left.
    pub(crate) fn drop_slow_consumers(&mut self) {
        // The end of every operation passes here: the gauge of sessions stays current.
        self.metrics.sessions.store(self.sessions.len() as u64, std::sync::atomic::Ordering::Relaxed);
        while let Some(id) = self.overflowed.pop() {
            if let Some(state) = self.remove_session(id, LeaveReason::SlowConsumer, None) {
                crate::metrics::HubMetrics::add(&self.metrics.slow_consumers, 1);
                tracing::info!(nick = %state.nick, "disconnecting a slow consumer: its send queue overflowed");
            }
        }
        // Every operation's end: the cluster claims of nicks nobody here uses now go.
        self.release_unused();
    }

    pub(super) fn shutdown(&mut self, message: &str) {
        self.shutting_down = true;
        let notice = Shared::new(Event::Shutdown { at: Utc::now(), message: message.into() });
        for state in self.sessions.values() {
            let _ = state.outbox.deliver_shared(&notice);
            state.outbox.close();
        }
    }
}
