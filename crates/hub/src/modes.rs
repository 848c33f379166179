//! A room's settings, and the other facts about users that every gateway can ask for
//! (who is who, how busy the server is). Each gateway writes them its own way (IRC as
//! its channel modes).
//!
//! The settings live in the hub, not in the IRC gateway, so they hold for every gateway:
//! a line user cannot talk in a moderated room either. A registered room keeps them for
//! good; any other, while it has members (see [`crate::moderation`]).

use std::net::IpAddr;
use std::sync::Arc;

use crate::event::Timestamp;
use crate::identity::Userhost;
use crate::name::{Nick, RoomName};

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomModes {
    /// Only operators and voiced members may speak.
    pub moderated: bool,
    /// Hidden from room lists, WHOIS and the like for those outside it.
    pub secret: bool,
    /// Left out of room lists and WHOIS for those outside it, though its members and
    /// topic may be asked for (IRC's `+p`).
    pub private: bool,
    /// Only operators may set the topic (on by default).
    pub topic_locked: bool,
    /// Only the invited may join.
    pub invite_only: bool,
    /// Joining needs this key.
    pub key: Option<String>,
    /// At most this many members.
    pub limit: Option<usize>,
}

impl Default for RoomModes {
    fn default() -> Self {
        Self {
            moderated: false,
            secret: false,
            private: false,
            topic_locked: true,
            invite_only: false,
            key: None,
            limit: None,
        }
    }
}

impl RoomModes {
    /// The changes that turn these settings into `to`, as a room's members are told them.
    pub(crate) fn changes_to(&self, to: &RoomModes) -> Vec<ModeChange> {
        let mut changes = Vec::new();
        let mut flag = |from: bool, to: bool, mode: RoomMode| {
            if from != to {
                changes.push(ModeChange { set: to, mode });
            }
        };
        flag(self.moderated, to.moderated, RoomMode::Moderated);
        flag(self.secret, to.secret, RoomMode::Secret);
        flag(self.private, to.private, RoomMode::Private);
        flag(self.topic_locked, to.topic_locked, RoomMode::TopicLocked);
        flag(self.invite_only, to.invite_only, RoomMode::InviteOnly);
        if self.key != to.key {
            let key = to.key.clone().or_else(|| self.key.clone()).unwrap_or_default();
            changes.push(ModeChange { set: to.key.is_some(), mode: RoomMode::Key(key) });
        }
        if self.limit != to.limit {
            changes.push(ModeChange { set: to.limit.is_some(), mode: RoomMode::Limit(to.limit.unwrap_or(0)) });
        }
        changes
    }
}

/// How much of a room those outside it see (IRC's NAMES type: `=`, `*`, `@`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Listed, and open to questions.
    #[default]
    Public,
    /// Not listed, but its members and topic may be asked for (`+p`).
    Private,
    /// As if it did not exist (`+s`).
    Secret,
}

impl Visibility {
    /// A room's, from its settings (secret wins when both are set).
    #[must_use]
    pub fn of(modes: &RoomModes) -> Visibility {
        match (modes.secret, modes.private) {
            (true, _) => Visibility::Secret,
            (false, true) => Visibility::Private,
            (false, false) => Visibility::Public,
        }
    }
}

/// A room mode, with the argument it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMode {
    /// Only operators and voiced members speak.
    Moderated,
    /// Hidden from those outside it.
    Secret,
    /// Left out of lists for those outside it.
    Private,
    /// Only operators set the topic.
    TopicLocked,
    /// Only the invited join.
    InviteOnly,
    /// Joining needs the key (when removing, whatever was given).
    Key(String),
    /// At most this many members (when removing, 0).
    Limit(usize),
    /// A member who may speak in a moderated room.
    Voice(Nick),
}

/// One mode set or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    /// Set (`+`) or removed (`-`).
    pub set: bool,
    /// Which.
    pub mode: RoomMode,
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
    /// What their client said about them (IRC's real name), if anything.
    pub realname: Option<Arc<str>>,
    /// The account they are logged in to.
    pub account: Option<Nick>,
    /// Seconds since they last said something.
    pub idle_secs: u64,
    /// Their user name and host.
    pub userhost: Arc<Userhost>,
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
    /// The rooms the asker may see them in, with whether they are an operator there and
    /// whether voiced.
    pub rooms: Vec<(RoomName, bool, bool)>,
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
    /// Their user name and host.
    pub userhost: Arc<Userhost>,
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
    fn the_changes_between_two_settings_lead_from_one_to_the_other() {
        let from = RoomModes { key: Some("old".into()), ..RoomModes::default() };
        let to = RoomModes { moderated: true, topic_locked: false, limit: Some(5), ..RoomModes::default() };
        let changes = from.changes_to(&to);
        assert_eq!(
            changes,
            [
                ModeChange { set: true, mode: RoomMode::Moderated },
                ModeChange { set: false, mode: RoomMode::TopicLocked },
                ModeChange { set: false, mode: RoomMode::Key("old".into()) },
                ModeChange { set: true, mode: RoomMode::Limit(5) },
            ]
        );
        assert!(to.changes_to(&to).is_empty(), "nothing changed, nothing to tell");
    }
}
