//! Moderation's vocabulary: who may moderate, what they can do, and what the store keeps
//! of it. The rules themselves are applied by the hub (`actor/moderation.rs`) so that
//! they hold for every gateway.

use std::net::IpAddr;
use std::time::Duration;

use crate::address::Network;
use crate::event::Timestamp;
use crate::identity::{Account, AccountId, Userhost};
use crate::modes::RoomModes;
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
    /// Register the room: its operators, settings, bans, topic and history then outlive
    /// its members (a logged-in operator's call; the founder is their account).
    Register,
    /// Unregister the room: it becomes an ordinary room again, whose settings go when it
    /// empties (its founder's or a server admin's call).
    Unregister,
}

/// What a server administrator asks for of the whole server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAction {
    /// Keep a nick (or account) or an address off the server, and disconnect whoever it
    /// covers now.
    Ban {
        /// A nick, or an IP address.
        mask: String,
        /// How long; `None` is until lifted.
        duration: Option<Duration>,
        /// Why.
        reason: Option<String>,
    },
    /// Lift a server ban.
    Unban {
        /// The nick or address banned.
        mask: String,
    },
}

/// Who or what a restriction applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mask {
    /// A nick, which is also the account of that name.
    Nick(Nick),
    /// Every connection from a network: an IPv4 address, or an IPv6 /64 (see
    /// [`Network`]).
    Address(Network),
    /// A `nick!user@host` pattern (IRC's ban mask, lowercase), where `*` stands for any
    /// run of characters and `?` for one, matched against each session's nick, user
    /// name and host (a cloak, usually): `*!*@a1b2c3d4.e5f6a7b8.IP`.
    Pattern(Box<str>),
}

/// The longest `nick!user@host` pattern a ban takes.
pub(crate) const MAX_PATTERN: usize = 128;

impl Mask {
    /// Reads a nick or an IP address (an IPv6 one with or without `/64`, which it
    /// stands for). An address stands for its [`Network`].
    ///
    /// A `nick!user@host` form is a [`Mask::Pattern`], but for `nick!*@*` (the nick) and
    /// `*!*@ADDRESS` (the address); `user@host` stands for `*!user@host`.
    pub fn parse(text: &str, max_nick: usize) -> Option<Mask> {
        let address = |text: &str| {
            let bare = text.strip_suffix("/64").filter(|t| t.contains(':')).unwrap_or(text);
            bare.parse::<IpAddr>().ok().map(|address| Mask::Address(Network::of(address)))
        };
        if let Some(mask) = address(text) {
            return Some(mask);
        }
        if !text.contains(['!', '@']) {
            return Nick::parse(text, max_nick).ok().map(Mask::Nick);
        }
        let pattern =
            if text.contains('!') { text.to_ascii_lowercase() } else { format!("*!{}", text.to_ascii_lowercase()) };
        let (nick, rest) = pattern.split_once('!')?;
        let (user, host) = rest.split_once('@')?;
        let words_ok = [nick, user, host].iter().all(|w| !w.is_empty() && !w.contains(['!', '@']));
        let bad = |c: char| c.is_whitespace() || c.is_control() || c == ',';
        if !words_ok || pattern.len() > MAX_PATTERN || pattern.contains(bad) {
            return None;
        }
        if user == "*" && host == "*" && nick != "*" {
            if let Ok(nick) = Nick::parse(text.split_once('!').map_or(text, |(n, _)| n), max_nick) {
                return Some(Mask::Nick(nick));
            }
        }
        if nick == "*" && user == "*" {
            if let Some(mask) = address(host) {
                return Some(mask);
            }
        }
        Some(Mask::Pattern(pattern.into()))
    }

    /// Whether it covers a session with this nick, account name, address and user name
    /// and host (without which no pattern covers it).
    #[must_use]
    pub fn covers(
        &self,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> bool {
        match self {
            Mask::Nick(banned) => banned == nick || account == Some(banned),
            Mask::Address(banned) => address.is_some_and(|a| banned.contains(a)),
            Mask::Pattern(pattern) => userhost.is_some_and(|uh| {
                let full = format!("{nick}!{}@{}", uh.user, uh.host).to_ascii_lowercase();
                glob(pattern.as_bytes(), full.as_bytes())
            }),
        }
    }

    /// True for an address mask (whose address only operators are shown).
    #[must_use]
    pub fn is_address(&self) -> bool {
        matches!(self, Mask::Address(_))
    }
}

impl std::fmt::Display for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mask::Nick(nick) => write!(f, "{nick}"),
            Mask::Address(address) => write!(f, "{address}"),
            Mask::Pattern(pattern) => f.write_str(pattern),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of bytes and `?` one byte:
/// the classic two-pointer walk, linear in practice and never worse than the product of
/// the two (both bounded by [`MAX_PATTERN`] and the names' limits).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

/// A ban or a mute in force in a room.
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
    /// Who set it (their nick then); `None` for restrictions kept from before setters
    /// were recorded.
    pub set_by: Option<Nick>,
    /// When it was set; `None` as for `set_by`.
    pub set_at: Option<Timestamp>,
}

impl Restriction {
    /// Whether it applies at `now` to a session with this nick, account and address.
    #[must_use]
    pub fn applies(
        &self,
        now: Timestamp,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> bool {
        self.until.is_none_or(|until| until > now) && self.mask.covers(nick, account, address, userhost)
    }
}

/// A ban from the whole server, checked when a client connects and at every login, on
/// every gateway. Only server administrators set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBan {
    /// Who.
    pub mask: Mask,
    /// Until when; `None` is until lifted.
    pub until: Option<Timestamp>,
    /// Why.
    pub reason: Option<String>,
}

impl ServerBan {
    /// Whether it applies at `now` to a session with this nick, account and address.
    #[must_use]
    pub fn applies(
        &self,
        now: Timestamp,
        nick: &Nick,
        account: Option<&Nick>,
        address: Option<IpAddr>,
        userhost: Option<&Userhost>,
    ) -> bool {
        self.until.is_none_or(|until| until > now) && self.mask.covers(nick, account, address, userhost)
    }
}

/// A room's topic: the text, who set it, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The text.
    pub text: String,
    /// Who set it.
    pub by: Nick,
    /// When.
    pub at: Timestamp,
}

/// A registered room as the store keeps it: its founder, its durable operators, modes,
/// bans and topic, and where the history its members may read begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredRoom {
    /// The room.
    pub room: RoomName,
    /// The account that registered it; `None` for rooms the server registers (the lobby).
    pub founder: Option<AccountId>,
    /// When it was registered.
    pub registered: Timestamp,
    /// The first seq its members may read: registering a room keeps the history of the
    /// life it was registered in, not of earlier lives.
    pub since: u64,
    /// Its settings.
    pub modes: RoomModes,
    /// Its operators' accounts (the founder among them).
    pub ops: Vec<AccountId>,
    /// Its topic.
    pub topic: Option<Topic>,
    /// Its bans and mutes.
    pub restrictions: Vec<Restriction>,
}

/// What the store keeps of moderation, read at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moderation {
    /// Server administrators' accounts.
    pub admins: Vec<AccountId>,
    /// Every registered room.
    pub rooms: Vec<RegisteredRoom>,
    /// Server bans (expired ones may be among them).
    pub server_bans: Vec<ServerBan>,
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
    /// Who did it (their account's name, or their nick when they have none).
    pub actor: Nick,
    /// Where; `None` for the whole server (server bans).
    pub room: Option<RoomName>,
    /// Whether the change is kept: the room is registered (or being registered), or it
    /// concerns the whole server. Changes to an unregistered room are only audited:
    /// they go with the room's life.
    pub durable: bool,
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
            Changed::Promoted(_) | Changed::Opped(_) => "op",
            Changed::Demoted(_) => "deop",
            Changed::Deopped(_) => "deop",
            Changed::Modes(_) => "modes",
            Changed::Registered { .. } => "register",
            Changed::Unregistered => "unregister",
            Changed::ServerBanned(_) => "server ban",
            Changed::ServerUnbanned(_) => "server unban",
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
    /// A member was made an operator of the room while they stay (no account needed).
    Promoted(Nick),
    /// A member stopped being one.
    Demoted(Nick),
    /// An account became an operator of the room.
    Opped(Account),
    /// An account stopped being one.
    Deopped(Account),
    /// A registered room's settings are now these.
    Modes(RoomModes),
    /// The room was registered (`founder` `None`: by the server).
    Registered {
        /// Who founded it.
        founder: Option<Account>,
        /// The first seq its members may read.
        since: u64,
        /// Its settings, operators and topic when registered, kept from now on.
        modes: RoomModes,
        /// Its topic when registered.
        topic: Option<Topic>,
        /// Its bans and mutes when registered.
        restrictions: Vec<Restriction>,
    },
    /// The room is no longer registered.
    Unregistered,
    /// A server ban was added (or replaced).
    ServerBanned(ServerBan),
    /// A server ban was lifted.
    ServerUnbanned(Mask),
}
