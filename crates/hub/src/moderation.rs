//! Moderation's vocabulary: who may moderate, what they can do, and what the store keeps
//! of it. The rules themselves are applied by the hub (`actor/moderation.rs`) so that
//! they hold for every gateway.

use std::net::IpAddr;
use std::time::Duration;

use crate::event::Timestamp;
use crate::name::{Nick, RoomName};

/// What a moderator asks for in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the room's topic (an empty text clears it).
    Topic(String),
    /// Put someone out of the room; they may come back.
    Kick {
        /// Who.
        nick: String,
        /// Why, shown to the room.
        reason: Option<String>,
    },
    /// Keep a nick (or account) or an IP address out of the room, and put them out if
    /// they are in. A ban in the lobby keeps them off the server.
    Ban {
        /// A nick, or an IP address.
        mask: String,
        /// How long; `None` is until lifted.
        duration: Option<Duration>,
        /// Why.
        reason: Option<String>,
    },
    /// Lift a ban.
    Unban {
        /// The nick or address banned.
        mask: String,
    },
    /// Stop someone from speaking in the room.
    Mute {
        /// Who.
        nick: String,
        /// How long; `None` is until lifted.
        duration: Option<Duration>,
    },
    /// Let them speak again.
    Unmute {
        /// Who.
        nick: String,
    },
    /// Make an account an operator of the room.
    Op {
        /// The account's nick.
        nick: String,
    },
    /// Take the operator role away.
    Deop {
        /// The account's nick.
        nick: String,
    },
}

/// Who or what a restriction applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mask {
    /// A nick, which is also the account of that name.
    Nick(Nick),
    /// Every connection from an address.
    Address(IpAddr),
}

impl Mask {
    /// Reads a nick or an IP address, also in IRC's mask forms `nick!*@*` and
    /// `*!*@ADDRESS` (what ban lists show).
    pub fn parse(text: &str, max_nick: usize) -> Option<Mask> {
        if let Some(address) = text.strip_prefix("*!*@") {
            return address.parse::<IpAddr>().ok().map(Mask::Address);
        }
        let text = text.strip_suffix("!*@*").unwrap_or(text);
        if let Ok(address) = text.parse::<IpAddr>() {
            return Some(Mask::Address(address));
        }
        Nick::parse(text, max_nick).ok().map(Mask::Nick)
    }
}

impl Mask {
    /// The mask as ban lists and IRC's `+b` show it: `nick!*@*` for a nick (and its
    /// account), `*!*@ADDRESS` for an address; [`Mask::parse`] reads it back.
    #[must_use]
    pub fn ban_mask(&self) -> String {
        match self {
            Mask::Nick(nick) => format!("{nick}!*@*"),
            Mask::Address(address) => format!("*!*@{address}"),
        }
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mask::Nick(nick) => write!(f, "{nick}"),
            Mask::Address(address) => write!(f, "{address}"),
        }
    }
}

/// A ban or a mute in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// The room.
    pub room: RoomName,
    /// Ban (`true`) or mute.
    pub ban: bool,
    /// Who.
    pub mask: Mask,
    /// Until when; `None` is until lifted.
    pub until: Option<Timestamp>,
    /// Why.
    pub reason: Option<String>,
}

impl Restriction {
    /// Whether it applies at `now` to a session with this nick, account and address.
    #[must_use]
    pub fn applies(&self, now: Timestamp, nick: &Nick, account: Option<&Nick>, address: Option<IpAddr>) -> bool {
        if self.until.is_some_and(|until| until <= now) {
            return false;
        }
        match &self.mask {
            Mask::Nick(banned) => banned == nick || account == Some(banned),
            Mask::Address(banned) => address == Some(*banned),
        }
    }
}

/// What the store keeps of moderation, read at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moderation {
    /// Server administrators' accounts.
    pub admins: Vec<Nick>,
    /// Each room's operators' accounts.
    pub ops: Vec<(RoomName, Nick)>,
    /// Bans and mutes (expired ones may be among them).
    pub restrictions: Vec<Restriction>,
    /// Each room's topic: the text, who set it, when.
    pub topics: Vec<(RoomName, String, Nick, Timestamp)>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    /// When.
    pub at: Timestamp,
    /// Who acted.
    pub actor: String,
    /// What (`ban`, `kick`, `grant admin`, ...).
    pub action: String,
    /// Where.
    pub room: Option<String>,
    /// On whom or what.
    pub target: Option<String>,
    /// Reason, duration, or the like.
    pub detail: Option<String>,
}

/// One moderation change to make durable, with the audit line that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who did it (their account, or their nick when they have none).
    pub actor: Nick,
    /// Where.
    pub room: RoomName,
    /// When.
    pub at: Timestamp,
    /// What, with the target resolved.
    pub what: Changed,
}

impl Changed {
    /// The action's name, as replies and the audit log give it.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Changed::Topic(_) => "topic",
            Changed::Kicked { .. } => "kick",
            Changed::Restricted(r) if r.ban => "ban",
            Changed::Restricted(_) => "mute",
            Changed::Lifted { ban: true, .. } => "unban",
            Changed::Lifted { .. } => "unmute",
            Changed::Opped(_) => "op",
            Changed::Deopped(_) => "deop",
        }
    }
}

/// The durable effect of a moderation action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The topic is now this (empty: none).
    Topic(String),
    /// Someone was kicked (only audited).
    Kicked {
        /// Who.
        nick: Nick,
        /// Why.
        reason: Option<String>,
    },
    /// A ban or a mute was added.
    Restricted(Restriction),
    /// A ban (`ban: true`) or a mute was lifted.
    Lifted {
        /// Which kind.
        ban: bool,
        /// Whose.
        mask: Mask,
    },
    /// An account became an operator of the room.
    Opped(Nick),
    /// An account stopped being one.
    Deopped(Nick),
}
