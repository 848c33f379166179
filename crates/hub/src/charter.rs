//! What the hub knows of a room beyond its members: its settings, operators, bans and
//! topic, whether it is registered, and where the history its members may read begins.
//!
//! A registered room's charter is durable and outlives its members; an unregistered
//! room's lives as long as the room has members and goes with its last one, so an empty
//! room never hands a newcomer its past or its powers.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::address::Network;
use crate::error::HubError;
use crate::event::Timestamp;
use crate::identity::{AccountId, Userhost};
use crate::moderation::{Mask, RegisteredRoom, Restriction, ServerBan, Topic};
use crate::modes::RoomModes;
use crate::name::{Nick, RoomName};

/// Who registered a room, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registration {
    /// The founder's account; `None` for the server's own rooms (the lobby).
    pub(crate) founder: Option<AccountId>,
    /// When.
    pub(crate) at: Timestamp,
}

/// A room's charter.
#[derive(Debug, Clone)]
pub(crate) struct Charter {
    /// The room's name as it was created or registered.
    pub(crate) name: RoomName,
    /// Set while the room is registered.
    pub(crate) registration: Option<Registration>,
    /// The first seq its members may read.
    pub(crate) since: u64,
    /// Its settings.
    pub(crate) modes: RoomModes,
    /// Its durable operators (registered rooms; the founder among them).
    pub(crate) ops: HashSet<AccountId>,
    /// Its topic.
    pub(crate) topic: Option<Topic>,
    /// Its bans and mutes, at most the room limit of them.
    pub(crate) restrictions: Vec<Restriction>,
    /// When the room was created (this life) or registered.
    pub(crate) created: Timestamp,
    /// Durable changes to it being written: while any is, the charter stays even if the
    /// room empties, so the change lands on the life it was made in.
    pub(crate) pending: usize,
    /// Its settings once the changes to them on their way to the store are written, and
    /// how many those are: a change made meanwhile builds on these, not on `modes`.
    pub(crate) modes_ahead: Option<(RoomModes, usize)>,
    /// Whether this node knows the room's settings, and its topic, as they are: it made
    /// the room or read it from the store, or heard them or a change of them from the
    /// cluster. A room adopted from another node's presence knows neither until that
    /// node tells them (`Presence::Settings`), and only then takes them from it.
    pub(crate) known: Known,
}

/// What of a room's state this node knows (see [`Charter::known`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// Its settings.
    pub(crate) modes: bool,
    /// Its topic.
    pub(crate) topic: bool,
}

impl Known {
    /// All of it.
    pub(crate) const ALL: Known = Known { modes: true, topic: true };
}

impl Charter {
    /// The lobby: registered by the server, all its history for everyone.
    pub(crate) fn for_lobby(name: RoomName) -> Charter {
        let now = chrono::Utc::now();
        Charter {
            name,
            registration: Some(Registration { founder: None, at: now }),
            since: 0,
            modes: RoomModes::default(),
            ops: HashSet::new(),
            topic: None,
            restrictions: Vec::new(),
            created: now,
            pending: 0,
            modes_ahead: None,
            known: Known::ALL,
        }
    }

    /// A room created now, unregistered, whose history begins at `since`.
    pub(crate) fn fresh(name: RoomName, since: u64, modes: RoomModes) -> Charter {
        let now = chrono::Utc::now();
        Charter {
            name,
            registration: None,
            since,
            modes,
            ops: HashSet::new(),
            topic: None,
            restrictions: Vec::new(),
            created: now,
            pending: 0,
            modes_ahead: None,
            known: Known::ALL,
        }
    }

    /// A registered room as the store kept it.
    pub(crate) fn restored(kept: RegisteredRoom) -> Charter {
        Charter {
            name: kept.room,
            registration: Some(Registration { founder: kept.founder, at: kept.registered }),
            since: kept.since,
            modes: kept.modes,
            ops: kept.ops.into_iter().collect(),
            topic: kept.topic,
            restrictions: kept.restrictions,
            created: kept.registered,
            pending: 0,
            modes_ahead: None,
            known: Known::ALL,
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// Whether changes to it are kept in the store: it is registered, or durable changes
    /// to it are on their way there (its registration among them: the changes made
    /// meanwhile are written after it).
    pub(crate) fn keeps_changes(&self) -> bool {
        self.is_registered() || self.pending > 0
    }

    /// The founder's account, if an account founded it.
    pub(crate) fn founder(&self) -> Option<AccountId> {
        self.registration.as_ref().and_then(|r| r.founder)
    }

    /// The ban (`ban`) or mute in force for a session with this nick, account and
    /// address.
    pub(crate) fn restriction(
        &self,
        now: Timestamp,
        ban: bool,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> Option<&Restriction> {
        self.restrictions.iter().find(|r| r.ban == ban && r.applies(now, nick, account, address, userhost))
    }

    /// Adds a ban or mute, replacing one on the same mask; expired ones are dropped
    /// first, and a full list refuses a new mask.
    pub(crate) fn restrict(&mut self, restriction: Restriction, now: Timestamp, max: usize) -> Result<(), HubError> {
        self.restrictions.retain(|r| r.until.is_none_or(|until| until > now));
        if let Some(same) =
            self.restrictions.iter_mut().find(|r| r.ban == restriction.ban && r.mask == restriction.mask)
        {
            *same = restriction;
            return Ok(());
        }
        if self.restrictions.len() >= max {
            return Err(HubError::TooManyBans { max });
        }
        self.restrictions.push(restriction);
        Ok(())
    }

    /// Whether a new ban or mute on `mask` would fit.
    pub(crate) fn has_room_for(&self, ban: bool, mask: &Mask, now: Timestamp, max: usize) -> bool {
        let live = self.restrictions.iter().filter(|r| r.until.is_none_or(|until| until > now));
        live.clone().any(|r| r.ban == ban && r.mask == *mask) || live.count() < max
    }

    /// Lifts a ban or mute; false if there was none on that mask.
    pub(crate) fn lift(&mut self, ban: bool, mask: &Mask) -> bool {
        let before = self.restrictions.len();
        self.restrictions.retain(|r| !(r.ban == ban && r.mask == *mask));
        self.restrictions.len() != before
    }

    /// The bans in force.
    pub(crate) fn bans(&self, now: Timestamp) -> impl Iterator<Item = &Restriction> {
        self.restrictions.iter().filter(move |r| r.ban && r.until.is_none_or(|until| until > now))
    }
}

/// Bans from the whole server, indexed so that a check at connect or login costs a few
/// hash lookups whatever their number.
#[derive(Debug, Default)]
pub(crate) struct ServerBans {
    by_nick: HashMap<Nick, ServerBan>,
    by_address: HashMap<Network, ServerBan>,
    /// `nick!user@host` patterns, which no index serves: each is tried in turn.
    by_pattern: HashMap<Box<str>, ServerBan>,
}

impl ServerBans {
    /// The ban in force for a session with this nick, account and address.
    pub(crate) fn find(
        &self,
        now: Timestamp,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> Option<&ServerBan> {
        let live = |ban: &&ServerBan| ban.until.is_none_or(|until| until > now);
        self.by_nick
            .get(nick)
            .filter(live)
            .or_else(|| account.and_then(|a| self.by_nick.get(a)).filter(live))
            .or_else(|| address.and_then(|a| self.by_address.get(&Network::of(a))).filter(live))
            .or_else(|| self.by_pattern.values().find(|ban| ban.applies(now, nick, account, address, userhost)))
    }

    /// Adds a ban, replacing one on the same mask; a full list refuses a new mask.
    pub(crate) fn insert(&mut self, ban: ServerBan, now: Timestamp, max: usize) -> Result<(), HubError> {
        if !self.has_room_for(&ban.mask, now, max) {
            return Err(HubError::TooManyBans { max });
        }
        match &ban.mask {
            Mask::Nick(nick) => self.by_nick.insert(nick.clone(), ban),
            Mask::Address(address) => self.by_address.insert(*address, ban),
            Mask::Pattern(pattern) => self.by_pattern.insert(pattern.clone(), ban),
        };
        Ok(())
    }

    /// Whether a ban on `mask` would fit (expired ones are dropped to make room).
    pub(crate) fn has_room_for(&mut self, mask: &Mask, now: Timestamp, max: usize) -> bool {
        let present = match mask {
            Mask::Nick(nick) => self.by_nick.contains_key(nick),
            Mask::Address(address) => self.by_address.contains_key(address),
            Mask::Pattern(pattern) => self.by_pattern.contains_key(pattern),
        };
        if present {
            return true;
        }
        if self.len() >= max {
            self.by_nick.retain(|_, b| b.until.is_none_or(|until| until > now));
            self.by_address.retain(|_, b| b.until.is_none_or(|until| until > now));
            self.by_pattern.retain(|_, b| b.until.is_none_or(|until| until > now));
        }
        self.len() < max
    }

    /// Lifts the ban on `mask`; false if there was none.
    pub(crate) fn remove(&mut self, mask: &Mask) -> bool {
        match mask {
            Mask::Nick(nick) => self.by_nick.remove(nick).is_some(),
            Mask::Address(address) => self.by_address.remove(address).is_some(),
            Mask::Pattern(pattern) => self.by_pattern.remove(pattern).is_some(),
        }
    }

    /// Every ban in force, nicks first, each group in mask order.
    pub(crate) fn list(&self, now: Timestamp) -> Vec<ServerBan> {
        let mut nicks: Vec<&ServerBan> = self.by_nick.values().collect();
        nicks.sort_by_key(|b| b.mask.to_string());
        let mut addresses: Vec<&ServerBan> = self.by_address.values().collect();
        addresses.sort_by_key(|b| b.mask.to_string());
        let mut patterns: Vec<&ServerBan> = self.by_pattern.values().collect();
        patterns.sort_by_key(|b| b.mask.to_string());
        nicks
            .into_iter()
            .chain(addresses)
            .chain(patterns)
            .filter(|b| b.until.is_none_or(|until| until > now))
            .cloned()
            .collect()
    }

    fn len(&self) -> usize {
        self.by_nick.len() + self.by_address.len() + self.by_pattern.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn nick(name: &str) -> Nick {
        Nick::parse(name, 32).expect("valid")
    }

    fn ban(mask: &str, minutes: Option<i64>) -> Restriction {
        Restriction {
            room: RoomName::parse("dev", 32).expect("valid"),
            ban: true,
            mask: Mask::parse(mask, 32).expect("mask"),
            until: minutes.map(|m| Utc::now() + chrono::Duration::minutes(m)),
            reason: None,
            set_by: None,
            set_at: None,
        }
    }

    #[test]
    fn a_room_keeps_one_ban_per_mask_and_at_most_its_limit() {
        let now = Utc::now();
        let mut charter = Charter::fresh(RoomName::parse("dev", 32).expect("valid"), 1, RoomModes::default());
        charter.restrict(ban("mallory", None), now, 2).expect("room");
        charter.restrict(ban("mallory", Some(5)), now, 2).expect("the same mask again replaces it");
        assert_eq!(charter.restrictions.len(), 1);
        charter.restrict(ban("10.0.0.1", None), now, 2).expect("room");
        assert_eq!(charter.restrict(ban("eve", None), now, 2), Err(HubError::TooManyBans { max: 2 }));
        // An expired ban makes room.
        charter.restrictions[1].until = Some(now - chrono::Duration::minutes(1));
        charter.restrict(ban("eve", None), now, 2).expect("the expired one went");
        let banned = charter.restriction(now, true, &nick("Eve"), None, None, None);
        assert!(banned.is_some());
    }

    #[test]
    fn server_bans_match_nicks_accounts_and_networks() {
        let now = Utc::now();
        let mut bans = ServerBans::default();
        let server_ban =
            |mask: &str| ServerBan { mask: Mask::parse(mask, 32).expect("mask"), until: None, reason: None };
        bans.insert(server_ban("chief"), now, 10).expect("room");
        bans.insert(server_ban("2001:db8:1:2::5"), now, 10).expect("room");
        bans.insert(server_ban("::ffff:10.0.0.7"), now, 10).expect("room");
        assert!(bans.find(now, &nick("CHIEF"), None, None, None).is_some());
        assert!(bans.find(now, &nick("guest"), Some(&nick("chief")), None, None).is_some(), "by account");
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("address");
        assert!(bans.find(now, &nick("guest"), None, Some(same_64), None).is_some(), "one /64");
        let other_64: IpAddr = "2001:db8:1:3::5".parse().expect("address");
        assert!(bans.find(now, &nick("guest"), None, Some(other_64), None).is_none());
        let v4: IpAddr = "10.0.0.7".parse().expect("address");
        assert!(bans.find(now, &nick("guest"), None, Some(v4), None).is_some(), "IPv4-mapped is IPv4");
        assert_eq!(bans.insert(server_ban("x"), now, 3), Err(HubError::TooManyBans { max: 3 }));
        assert!(bans.remove(&Mask::parse("chief", 32).expect("mask")));
        assert!(bans.find(now, &nick("chief"), None, None, None).is_none());
    }
}
