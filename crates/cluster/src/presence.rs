//! Presence as it travels between nodes: the hub's [`Presence`] in JSON, on the log's
//! stream under `parley.presence.<node>`, so that every node reads every node's changes
//! in the same order as the messages around them.
//!
//! Unlike a message, a change has no seq and is never refused: it is published as it
//! comes, one at a time in the order the hub told them (one queue per node), so that a
//! join is never read after the part that followed it.

use std::sync::Arc;

use parley_hub::{LeaveReason, Marks, ModeChange, Nick, Party, Presence, RoomMode, RoomName, Userhost};

use crate::change::{topic_of, wire_topic, WireChange, WireModes};
use serde::{Deserialize, Serialize};

/// The prefix of presence subjects; the last token is the node's run.
pub(crate) const PRESENCE: &str = "parley.presence";

/// The hub's [`Presence`] in the cluster's encoding. Persisted in the stream: fields may
/// be added, never renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum WirePresence {
    /// [`Presence::Arrived`].
    Arrived {
        /// The session.
        session: u64,
        /// The nick.
        nick: String,
        /// The user name and host.
        userhost: (String, String),
        /// The account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// The party ([`Party::to_i64`]).
        party: i64,
    },
    /// [`Presence::Joined`].
    Joined {
        /// The session.
        session: u64,
        /// The room, as spelled.
        room: String,
        /// The nick.
        nick: String,
        /// The user name and host.
        userhost: (String, String),
        /// The account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// The real name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        realname: Option<String>,
        /// The party ([`Party::to_i64`]).
        party: i64,
        /// Operates the room; absent when not.
        #[serde(default, skip_serializing_if = "is_false")]
        op: bool,
        /// Voiced in the room; absent when not.
        #[serde(default, skip_serializing_if = "is_false")]
        voice: bool,
    },
    /// [`Presence::Marked`].
    Marked {
        /// The session.
        session: u64,
        /// The room.
        room: String,
        /// Operates the room.
        #[serde(default)]
        op: bool,
        /// Voiced in the room.
        #[serde(default)]
        voice: bool,
    },
    /// [`Presence::Invited`].
    Invited {
        /// The room.
        room: String,
        /// Who is invited.
        nick: String,
        /// Who invites.
        by: String,
        /// The user name and host of who invites.
        userhost: (String, String),
    },
    /// [`Presence::Left`].
    Left {
        /// The session.
        session: u64,
        /// The room.
        room: String,
        /// Why ([`reason_name`]).
        reason: String,
        /// Who put them out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// The reason given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// [`Presence::Gone`].
    Gone {
        /// The session.
        session: u64,
        /// Why.
        reason: String,
        /// The quit message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// [`Presence::Renamed`].
    Renamed {
        /// The session.
        session: u64,
        /// The new nick.
        nick: String,
    },
    /// [`Presence::Away`].
    Away {
        /// The session.
        session: u64,
        /// The away message; absent when back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// [`Presence::Moderated`].
    Moderated {
        /// The change.
        moderation: Box<WireChange>,
    },
    /// [`Presence::Modes`].
    Modes {
        /// The room.
        room: String,
        /// Who changed them.
        by: String,
        /// The settings now.
        modes: WireModes,
        /// What changed.
        changes: Vec<WireModeChange>,
    },
    /// [`Presence::Settings`].
    Settings {
        /// The room.
        room: String,
        /// Its settings.
        modes: WireModes,
        /// Its topic: the text, who set it, when (microseconds since the Unix epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<(String, String, i64)>,
    },
    /// [`Presence::SignedOut`].
    SignedOut {
        /// The account's id.
        account: i64,
        /// The revoked token's id; absent: every connection of the account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<u64>,
    },
    /// [`Presence::Hello`].
    Hello,
    /// [`Presence::Reset`].
    Reset,
    /// [`Presence::Settled`].
    Settled,
}

/// A leave reason's name on the wire.
fn reason_name(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Part => "part",
        LeaveReason::Quit => "quit",
        LeaveReason::Lost => "lost",
        LeaveReason::Kicked => "kicked",
        LeaveReason::Banned => "banned",
        LeaveReason::ServerBanned => "server_banned",
        LeaveReason::SlowConsumer => "slow_consumer",
        LeaveReason::SignedOut => "signed_out",
    }
}

/// A leave reason from its name; one this version does not know is a lost connection.
fn reason_of(name: &str) -> LeaveReason {
    match name {
        "part" => LeaveReason::Part,
        "quit" => LeaveReason::Quit,
        "kicked" => LeaveReason::Kicked,
        "banned" => LeaveReason::Banned,
        "server_banned" => LeaveReason::ServerBanned,
        "slow_consumer" => LeaveReason::SlowConsumer,
        "signed_out" => LeaveReason::SignedOut,
        _ => LeaveReason::Lost,
    }
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_false(b: &bool) -> bool {
    !*b
}

fn text(t: Option<&Arc<str>>) -> Option<String> {
    t.map(ToString::to_string)
}

impl From<&Presence> for WirePresence {
    fn from(p: &Presence) -> WirePresence {
        match p {
            Presence::Arrived { session, nick, userhost, account, party } => WirePresence::Arrived {
                session: *session,
                nick: nick.as_str().to_owned(),
                userhost: (userhost.user.to_string(), userhost.host.to_string()),
                account: account.as_ref().map(|a| a.as_str().to_owned()),
                party: party.to_i64(),
            },
            Presence::Joined { session, room, nick, userhost, account, realname, party, marks } => {
                WirePresence::Joined {
                    session: *session,
                    room: room.as_str().to_owned(),
                    nick: nick.as_str().to_owned(),
                    userhost: (userhost.user.to_string(), userhost.host.to_string()),
                    account: account.as_ref().map(|a| a.as_str().to_owned()),
                    realname: text(realname.as_ref()),
                    party: party.to_i64(),
                    op: marks.op,
                    voice: marks.voice,
                }
            }
            Presence::Marked { session, room, marks } => WirePresence::Marked {
                session: *session,
                room: room.as_str().to_owned(),
                op: marks.op,
                voice: marks.voice,
            },
            Presence::Invited { room, nick, by, userhost } => WirePresence::Invited {
                room: room.as_str().to_owned(),
                nick: nick.as_str().to_owned(),
                by: by.as_str().to_owned(),
                userhost: (userhost.user.to_string(), userhost.host.to_string()),
            },
            Presence::Left { session, room, reason, by, detail } => WirePresence::Left {
                session: *session,
                room: room.as_str().to_owned(),
                reason: reason_name(*reason).to_owned(),
                by: by.as_ref().map(|b| b.as_str().to_owned()),
                detail: text(detail.as_ref()),
            },
            Presence::Gone { session, reason, detail } => WirePresence::Gone {
                session: *session,
                reason: reason_name(*reason).to_owned(),
                detail: text(detail.as_ref()),
            },
            Presence::Renamed { session, nick } => {
                WirePresence::Renamed { session: *session, nick: nick.as_str().to_owned() }
            }
            Presence::Away { session, text: away } => {
                WirePresence::Away { session: *session, text: text(away.as_ref()) }
            }
            Presence::Moderated(change) => {
                WirePresence::Moderated { moderation: Box::new(WireChange::from(&**change)) }
            }
            Presence::Modes { room, by, modes, changes } => WirePresence::Modes {
                room: room.as_str().to_owned(),
                by: by.as_str().to_owned(),
                modes: modes.into(),
                changes: changes.iter().map(WireModeChange::from).collect(),
            },
            Presence::Settings { room, modes, topic } => WirePresence::Settings {
                room: room.as_str().to_owned(),
                modes: modes.into(),
                topic: topic.as_ref().map(wire_topic),
            },
            Presence::SignedOut { account, token } => WirePresence::SignedOut { account: account.0, token: *token },
            Presence::Hello => WirePresence::Hello,
            Presence::Reset => WirePresence::Reset,
            Presence::Settled => WirePresence::Settled,
        }
    }
}

/// One [`ModeChange`] on the wire: `mode` is its name; `key`, `limit` or `nick` its
/// argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireModeChange {
    /// Set, or removed.
    pub set: bool,
    /// `moderated`, `secret`, `private`, `topic_locked`, `invite_only`, `key`, `limit`
    /// or `voice`.
    pub mode: String,
    /// The key, for `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The limit, for `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Who, for `voice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
}

impl From<&ModeChange> for WireModeChange {
    fn from(c: &ModeChange) -> WireModeChange {
        let mut wire = WireModeChange { set: c.set, mode: String::new(), key: None, limit: None, nick: None };
        wire.mode = match &c.mode {
            RoomMode::Moderated => "moderated",
            RoomMode::Secret => "secret",
            RoomMode::Private => "private",
            RoomMode::TopicLocked => "topic_locked",
            RoomMode::InviteOnly => "invite_only",
            RoomMode::Key(key) => {
                wire.key = Some(key.clone());
                "key"
            }
            RoomMode::Limit(limit) => {
                wire.limit = Some(*limit);
                "limit"
            }
            RoomMode::Voice(nick) => {
                wire.nick = Some(nick.as_str().to_owned());
                "voice"
            }
        }
        .to_owned();
        wire
    }
}

impl WireModeChange {
    fn into_change(self) -> Result<ModeChange, String> {
        let mode = match self.mode.as_str() {
            "moderated" => RoomMode::Moderated,
            "secret" => RoomMode::Secret,
            "private" => RoomMode::Private,
            "topic_locked" => RoomMode::TopicLocked,
            "invite_only" => RoomMode::InviteOnly,
            "key" => RoomMode::Key(self.key.unwrap_or_default()),
            "limit" => RoomMode::Limit(self.limit.unwrap_or(0)),
            "voice" => {
                let nick = self.nick.unwrap_or_default();
                RoomMode::Voice(Nick::parse(&nick, usize::MAX).map_err(|e| format!("nick {nick:?}: {e:?}"))?)
            }
            other => return Err(format!("mode {other:?}")),
        };
        Ok(ModeChange { set: self.set, mode })
    }
}

impl WirePresence {
    /// The hub's presence again; why not, if a name does not pass this node's rules.
    pub fn into_presence(self) -> Result<Presence, String> {
        let nick = |n: &str| Nick::parse(n, usize::MAX).map_err(|e| format!("nick {n:?}: {e:?}"));
        let room = |r: &str| RoomName::parse(r, usize::MAX).map_err(|e| format!("room {r:?}: {e:?}"));
        Ok(match self {
            WirePresence::Arrived { session, nick: n, userhost, account, party } => Presence::Arrived {
                session,
                nick: nick(&n)?,
                userhost: Userhost::new(&userhost.0, &userhost.1),
                account: account.as_deref().map(nick).transpose()?,
                party: Party::from_i64(party).ok_or_else(|| format!("party {party}"))?,
            },
            WirePresence::Joined { session, room: r, nick: n, userhost, account, realname, party, op, voice } => {
                Presence::Joined {
                    session,
                    room: room(&r)?,
                    nick: nick(&n)?,
                    userhost: Userhost::new(&userhost.0, &userhost.1),
                    account: account.as_deref().map(nick).transpose()?,
                    realname: realname.map(Arc::from),
                    party: Party::from_i64(party).ok_or_else(|| format!("party {party}"))?,
                    marks: Marks { op, voice },
                }
            }
            WirePresence::Marked { session, room: r, op, voice } => {
                Presence::Marked { session, room: room(&r)?, marks: Marks { op, voice } }
            }
            WirePresence::Invited { room: r, nick: n, by, userhost } => Presence::Invited {
                room: room(&r)?,
                nick: nick(&n)?,
                by: nick(&by)?,
                userhost: Userhost::new(&userhost.0, &userhost.1),
            },
            WirePresence::Left { session, room: r, reason, by, detail } => Presence::Left {
                session,
                room: room(&r)?,
                reason: reason_of(&reason),
                by: by.as_deref().map(nick).transpose()?,
                detail: detail.map(Arc::from),
            },
            WirePresence::Gone { session, reason, detail } => {
                Presence::Gone { session, reason: reason_of(&reason), detail: detail.map(Arc::from) }
            }
            WirePresence::Renamed { session, nick: n } => Presence::Renamed { session, nick: nick(&n)? },
            WirePresence::Away { session, text } => Presence::Away { session, text: text.map(Arc::from) },
            WirePresence::Moderated { moderation } => Presence::Moderated(Box::new(moderation.into_change()?)),
            WirePresence::Modes { room: r, by, modes, changes } => Presence::Modes {
                room: room(&r)?,
                by: nick(&by)?,
                modes: modes.into(),
                changes: changes.into_iter().map(WireModeChange::into_change).collect::<Result<_, _>>()?,
            },
            WirePresence::Settings { room: r, modes, topic } => {
                Presence::Settings { room: room(&r)?, modes: modes.into(), topic: topic.map(topic_of).transpose()? }
            }
            WirePresence::SignedOut { account, token } => {
                Presence::SignedOut { account: parley_hub::AccountId(account), token }
            }
            WirePresence::Hello => Presence::Hello,
            WirePresence::Reset => Presence::Reset,
            WirePresence::Settled => Presence::Settled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_goes_there_and_back() {
        let room = RoomName::parse("Dev", 32).expect("room");
        let ada = Nick::parse("ada", 32).expect("nick");
        let changes = [
            Presence::Arrived {
                session: 3,
                nick: ada.clone(),
                userhost: Userhost::new("~ada", "example.org"),
                account: None,
                party: Party::from_i64(7).expect("an account"),
            },
            Presence::Joined {
                session: 3,
                room: room.clone(),
                nick: ada.clone(),
                userhost: Userhost::new("~ada", "example.org"),
                account: Some(ada.clone()),
                realname: Some(Arc::from("Ada")),
                party: Party::from_i64(-4).expect("a guest"),
                marks: Marks { op: true, voice: false },
            },
            Presence::Marked { session: 3, room: room.clone(), marks: Marks { op: false, voice: true } },
            Presence::Invited {
                room: room.clone(),
                nick: ada.clone(),
                by: Nick::parse("op", 32).expect("nick"),
                userhost: Userhost::new("~op", "example.org"),
            },
            Presence::Left {
                session: 3,
                room,
                reason: LeaveReason::Kicked,
                by: Some(ada.clone()),
                detail: Some(Arc::from("spam")),
            },
            Presence::Gone { session: 3, reason: LeaveReason::Quit, detail: None },
            Presence::Renamed { session: 3, nick: ada },
            Presence::Away { session: 3, text: Some(Arc::from("lunch")) },
            Presence::Modes {
                room: RoomName::parse("dev", 32).expect("room"),
                by: Nick::parse("op", 32).expect("nick"),
                modes: parley_hub::RoomModes { moderated: true, ..parley_hub::RoomModes::default() },
                changes: vec![
                    ModeChange { set: true, mode: RoomMode::Moderated },
                    ModeChange { set: true, mode: RoomMode::Voice(Nick::parse("ada", 32).expect("nick")) },
                    ModeChange { set: false, mode: RoomMode::Key(String::new()) },
                    ModeChange { set: true, mode: RoomMode::Limit(5) },
                ],
            },
            Presence::Settings {
                room: RoomName::parse("dev", 32).expect("room"),
                modes: parley_hub::RoomModes { key: Some("k".into()), ..parley_hub::RoomModes::default() },
                topic: Some(parley_hub::Topic {
                    text: "plans".into(),
                    by: Nick::parse("op", 32).expect("nick"),
                    at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("a time"),
                }),
            },
            Presence::Settings {
                room: RoomName::parse("dev", 32).expect("room"),
                modes: parley_hub::RoomModes::default(),
                topic: None,
            },
            Presence::SignedOut { account: parley_hub::AccountId(12), token: Some(99) },
            Presence::SignedOut { account: parley_hub::AccountId(12), token: None },
            Presence::Hello,
            Presence::Reset,
            Presence::Settled,
        ];
        for change in changes {
            let json = serde_json::to_string(&WirePresence::from(&change)).expect("encodes");
            let back: WirePresence = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back.into_presence().expect("valid"), change, "{json}");
        }
    }

    /// A join told by a node of the previous release has no marks: none.
    #[test]
    fn a_join_without_marks_has_none() {
        let old = r#"{"change":"joined","session":1,"room":"dev","nick":"ada","userhost":["~a","h"],"party":-1}"#;
        let wire: WirePresence = serde_json::from_str(old).expect("decodes");
        let Ok(Presence::Joined { marks, .. }) = wire.into_presence() else { panic!("a join") };
        assert_eq!(marks, Marks::default());
        let unmarked = WirePresence::from(&Presence::Joined {
            session: 1,
            room: RoomName::parse("dev", 32).expect("room"),
            nick: Nick::parse("ada", 32).expect("nick"),
            userhost: Userhost::new("~a", "h"),
            account: None,
            realname: None,
            party: Party::from_i64(-1).expect("a guest"),
            marks: Marks::default(),
        });
        let json = serde_json::to_string(&unmarked).expect("encodes");
        assert!(!json.contains("op") && !json.contains("voice"), "{json}");
    }

    #[test]
    fn what_this_node_would_refuse_is_an_error() {
        let bad = r#"{"change":"renamed","session":1,"nick":"1bad"}"#;
        let wire: WirePresence = serde_json::from_str(bad).expect("decodes");
        assert!(wire.into_presence().is_err());
        let unknown_reason = r#"{"change":"gone","session":1,"reason":"added later"}"#;
        let wire: WirePresence = serde_json::from_str(unknown_reason).expect("decodes");
        assert_eq!(wire.into_presence(), Ok(Presence::Gone { session: 1, reason: LeaveReason::Lost, detail: None }));
    }
}
