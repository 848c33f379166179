//! A room's settings, as IRC's channel modes name them, and the other facts about users
//! that every gateway can ask for (who is who, how busy the server is).
//!
//! The settings live in the hub, not in the IRC gateway, so they hold for every gateway:
//! a line user cannot talk in a moderated room either. Like an IRC channel's modes they
//! last while the room has members; operators, bans and topics are durable
//! ([`crate::moderation`]).

use std::net::IpAddr;
use std::sync::Arc;

use crate::event::Timestamp;
use crate::name::{Nick, RoomName};

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomModes {
    /// Only operators and voiced members may speak (`+m`).
    pub moderated: bool,
    /// Hidden from room lists and from others' WHOIS (`+s`).
    pub secret: bool,
    /// Only operators may set the topic (`+t`, on by default).
    pub topic_locked: bool,
    /// Only the invited may join (`+i`).
    pub invite_only: bool,
    /// Joining needs this key (`+k`).
    pub key: Option<String>,
    /// At most this many members (`+l`).
    pub limit: Option<usize>,
}

impl Default for RoomModes {
    fn default() -> Self {
        Self { moderated: false, secret: false, topic_locked: true, invite_only: false, key: None, limit: None }
    }
}

/// A room mode, with the argument it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMode {
    /// `m`.
    Moderated,
    /// `s`.
    Secret,
    /// `t`.
    TopicLocked,
    /// `i`.
    InviteOnly,
    /// `k`: the key (when removing, whatever was given).
    Key(String),
    /// `l`: the limit (when removing, 0).
    Limit(usize),
    /// `v`: a member who may speak in a moderated room.
    Voice(Nick),
    /// `o`: an operator (an account; see [`crate::Action::Op`]).
    Op(Nick),
    /// `b`: a ban, by nick or address.
    Ban(String),
}

impl RoomMode {
    /// IRC's letter for the mode.
    #[must_use]
    pub fn letter(&self) -> char {
        match self {
            RoomMode::Moderated => 'm',
            RoomMode::Secret => 's',
            RoomMode::TopicLocked => 't',
            RoomMode::InviteOnly => 'i',
            RoomMode::Key(_) => 'k',
            RoomMode::Limit(_) => 'l',
            RoomMode::Voice(_) => 'v',
            RoomMode::Op(_) => 'o',
            RoomMode::Ban(_) => 'b',
        }
    }

    /// The mode's argument, if it has one when set (`set`) or removed.
    #[must_use]
    pub fn argument(&self, set: bool) -> Option<String> {
        match self {
            RoomMode::Moderated | RoomMode::Secret | RoomMode::TopicLocked | RoomMode::InviteOnly => None,
            RoomMode::Key(key) => Some(if set { key.clone() } else { "*".to_owned() }),
            RoomMode::Limit(limit) => set.then(|| limit.to_string()),
            RoomMode::Voice(nick) | RoomMode::Op(nick) => Some(nick.to_string()),
            RoomMode::Ban(mask) => Some(mask.clone()),
        }
    }
}

/// One mode set or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// Set (`+`) or removed (`-`).
    pub set: bool,
    /// Which.
    pub mode: RoomMode,
}

impl ModeChange {
    /// `+m`, `-k *`, `+v bob`: the change as IRC writes it, for people.
    #[must_use]
    pub fn describe(&self) -> String {
        let sign = if self.set { '+' } else { '-' };
        match self.mode.argument(self.set) {
            Some(argument) => format!("{sign}{} {argument}", self.mode.letter()),
            None => format!("{sign}{}", self.mode.letter()),
        }
    }
}

/// One member of a room, as member lists show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The nick.
    pub nick: Nick,
    /// An operator of the room.
    pub op: bool,
    /// Voiced in the room.
    pub voice: bool,
    /// Marked away.
    pub away: bool,
    /// A server administrator.
    pub admin: bool,
}

/// What the server says about one user (IRC's WHOIS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whois {
    /// The nick.
    pub nick: Nick,
    /// The account they are logged in to.
    pub account: Option<Nick>,
    /// What their client said about them (IRC's real name), if anything.
    pub realname: Option<Arc<str>>,
    /// The rooms the asker may see them in, with whether they are an operator there.
    pub rooms: Vec<(RoomName, bool)>,
    /// When they connected.
    pub since: Timestamp,
    /// Seconds since they last said something.
    pub idle_secs: u64,
    /// Their away message.
    pub away: Option<Arc<str>>,
    /// A server administrator (or IRC operator).
    pub admin: bool,
    /// Their address: shown only to themselves and to administrators.
    pub address: Option<IpAddr>,
}

/// How busy the server is (IRC's LUSERS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Sessions connected.
    pub users: usize,
    /// The most connected at once since the server started.
    pub max_users: usize,
    /// Rooms with members.
    pub rooms: usize,
    /// Administrators connected.
    pub admins: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_irc_writes_them() {
        let nick = Nick::parse("bob", 32).expect("valid");
        let change = |set, mode| ModeChange { set, mode }.describe();
        assert_eq!(change(true, RoomMode::Moderated), "+m");
        assert_eq!(change(false, RoomMode::Key("sesame".into())), "-k *");
        assert_eq!(change(true, RoomMode::Key("sesame".into())), "+k sesame");
        assert_eq!(change(true, RoomMode::Limit(10)), "+l 10");
        assert_eq!(change(false, RoomMode::Limit(0)), "-l");
        assert_eq!(change(true, RoomMode::Voice(nick)), "+v bob");
    }
}
