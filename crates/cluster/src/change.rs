//! A moderation change as it travels between nodes: the hub's [`Change`] (a topic, a
//! kick, a ban or mute, an operator, a room's settings, a registration, a server ban)
//! in JSON, carried as a presence entry ([`crate::WirePresence::Moderated`]), so that
//! every node applies what an operator did on one, in the log's order. The change is
//! already in the shared database when it travels: the receiving hub applies it and
//! writes nothing.

use chrono::DateTime;
use parley_hub::{
    Account, AccountId, Change, Changed, Mask, Nick, Restriction, RoomModes, RoomName, ServerBan, Timestamp, Topic,
};
use serde::{Deserialize, Serialize};

/// The hub's [`Change`] in the cluster's encoding. Persisted in the stream: fields may be
/// added, never renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireChange {
    /// Who did it.
    pub actor: String,
    /// Where; absent for the whole server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Kept (a registered room, or the server).
    pub durable: bool,
    /// When, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// What.
    pub what: WireChanged,
}

/// [`Changed`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs, reason = "each variant is the hub's Changed of the same name")]
pub enum WireChanged {
    Topic {
        text: String,
    },
    Kicked {
        nick: String,
        reason: Option<String>,
    },
    Restricted {
        restriction: WireRestriction,
    },
    Lifted {
        ban: bool,
        mask: String,
    },
    Promoted {
        nick: String,
    },
    Demoted {
        nick: String,
    },
    Opped {
        account: i64,
        name: String,
    },
    Deopped {
        account: i64,
        name: String,
    },
    Modes {
        modes: WireModes,
    },
    Registered {
        founder: Option<(i64, String)>,
        since: u64,
        modes: WireModes,
        topic: Option<(String, String, i64)>,
        restrictions: Vec<WireRestriction>,
    },
    Unregistered,
    ServerBanned {
        mask: String,
        until_us: Option<i64>,
        reason: Option<String>,
    },
    ServerUnbanned {
        mask: String,
    },
}

/// A [`Restriction`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "the fields of the hub's Restriction")]
pub struct WireRestriction {
    pub room: String,
    pub ban: bool,
    pub mask: String,
    pub until_us: Option<i64>,
    pub reason: Option<String>,
    pub set_by: Option<String>,
    pub set_at_us: Option<i64>,
}

/// [`RoomModes`] on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs, reason = "the fields of the hub's RoomModes")]
pub struct WireModes {
    pub moderated: bool,
    pub secret: bool,
    pub private: bool,
    pub topic_locked: bool,
    pub invite_only: bool,
    pub key: Option<String>,
    pub limit: Option<usize>,
}

fn micros(at: Timestamp) -> i64 {
    at.timestamp_micros()
}

impl From<&RoomModes> for WireModes {
    fn from(m: &RoomModes) -> WireModes {
        WireModes {
            moderated: m.moderated,
            secret: m.secret,
            private: m.private,
            topic_locked: m.topic_locked,
            invite_only: m.invite_only,
            key: m.key.clone(),
            limit: m.limit,
        }
    }
}

impl From<WireModes> for RoomModes {
    fn from(m: WireModes) -> RoomModes {
        RoomModes {
            moderated: m.moderated,
            secret: m.secret,
            private: m.private,
            topic_locked: m.topic_locked,
            invite_only: m.invite_only,
            key: m.key,
            limit: m.limit,
        }
    }
}

impl From<&Restriction> for WireRestriction {
    fn from(r: &Restriction) -> WireRestriction {
        WireRestriction {
            room: r.room.as_str().to_owned(),
            ban: r.ban,
            mask: r.mask.to_string(),
            until_us: r.until.map(micros),
            reason: r.reason.clone(),
            set_by: r.set_by.as_ref().map(|n| n.as_str().to_owned()),
            set_at_us: r.set_at.map(micros),
        }
    }
}

impl From<&Change> for WireChange {
    fn from(c: &Change) -> WireChange {
        let nick = |n: &Nick| n.as_str().to_owned();
        let what = match &c.what {
            Changed::Topic(text) => WireChanged::Topic { text: text.clone() },
            Changed::Kicked { nick: n, reason } => WireChanged::Kicked { nick: nick(n), reason: reason.clone() },
            Changed::Restricted(r) => WireChanged::Restricted { restriction: r.into() },
            Changed::Lifted { ban, mask } => WireChanged::Lifted { ban: *ban, mask: mask.to_string() },
            Changed::Promoted(n) => WireChanged::Promoted { nick: nick(n) },
            Changed::Demoted(n) => WireChanged::Demoted { nick: nick(n) },
            Changed::Opped(a) => WireChanged::Opped { account: a.id.0, name: nick(&a.name) },
            Changed::Deopped(a) => WireChanged::Deopped { account: a.id.0, name: nick(&a.name) },
            Changed::Modes(m) => WireChanged::Modes { modes: m.into() },
            Changed::Registered { founder, since, modes, topic, restrictions } => WireChanged::Registered {
                founder: founder.as_ref().map(|a| (a.id.0, nick(&a.name))),
                since: *since,
                modes: modes.into(),
                topic: topic.as_ref().map(wire_topic),
                restrictions: restrictions.iter().map(WireRestriction::from).collect(),
            },
            Changed::Unregistered => WireChanged::Unregistered,
            Changed::ServerBanned(ban) => WireChanged::ServerBanned {
                mask: ban.mask.to_string(),
                until_us: ban.until.map(micros),
                reason: ban.reason.clone(),
            },
            Changed::ServerUnbanned(mask) => WireChanged::ServerUnbanned { mask: mask.to_string() },
        };
        WireChange {
            actor: nick(&c.actor),
            room: c.room.as_ref().map(|r| r.as_str().to_owned()),
            durable: c.durable,
            at_us: micros(c.at),
            what,
        }
    }
}

fn nick(n: &str) -> Result<Nick, String> {
    Nick::parse(n, usize::MAX).map_err(|e| format!("nick {n:?}: {e:?}"))
}

fn room(r: &str) -> Result<RoomName, String> {
    RoomName::parse(r, usize::MAX).map_err(|e| format!("room {r:?}: {e:?}"))
}

fn mask(m: &str) -> Result<Mask, String> {
    Mask::parse(m, usize::MAX).ok_or_else(|| format!("mask {m:?}"))
}

fn time(us: i64) -> Result<Timestamp, String> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| format!("time {us}"))
}

/// A [`Topic`] on the wire: its text, who set it, when (microseconds since the Unix
/// epoch).
pub(crate) type WireTopic = (String, String, i64);

pub(crate) fn wire_topic(t: &Topic) -> WireTopic {
    (t.text.clone(), t.by.as_str().to_owned(), micros(t.at))
}

pub(crate) fn topic_of((text, by, at): WireTopic) -> Result<Topic, String> {
    Ok(Topic { text, by: nick(&by)?, at: time(at)? })
}

fn account(id: i64, name: &str) -> Result<Account, String> {
    Ok(Account { id: AccountId(id), name: nick(name)? })
}

impl WireRestriction {
    fn into_restriction(self) -> Result<Restriction, String> {
        Ok(Restriction {
            room: room(&self.room)?,
            ban: self.ban,
            mask: mask(&self.mask)?,
            until: self.until_us.map(time).transpose()?,
            reason: self.reason,
            set_by: self.set_by.as_deref().map(nick).transpose()?,
            set_at: self.set_at_us.map(time).transpose()?,
        })
    }
}

impl WireChange {
    /// The hub's change again; why not, if a name, mask or time does not pass this
    /// node's rules.
    pub fn into_change(self) -> Result<Change, String> {
        let what = match self.what {
            WireChanged::Topic { text } => Changed::Topic(text),
            WireChanged::Kicked { nick: n, reason } => Changed::Kicked { nick: nick(&n)?, reason },
            WireChanged::Restricted { restriction } => Changed::Restricted(restriction.into_restriction()?),
            WireChanged::Lifted { ban, mask: m } => Changed::Lifted { ban, mask: mask(&m)? },
            WireChanged::Promoted { nick: n } => Changed::Promoted(nick(&n)?),
            WireChanged::Demoted { nick: n } => Changed::Demoted(nick(&n)?),
            WireChanged::Opped { account: id, name } => Changed::Opped(account(id, &name)?),
            WireChanged::Deopped { account: id, name } => Changed::Deopped(account(id, &name)?),
            WireChanged::Modes { modes } => Changed::Modes(modes.into()),
            WireChanged::Registered { founder, since, modes, topic, restrictions } => Changed::Registered {
                founder: founder.map(|(id, name)| account(id, &name)).transpose()?,
                since,
                modes: modes.into(),
                topic: topic.map(topic_of).transpose()?,
                restrictions: restrictions
                    .into_iter()
                    .map(WireRestriction::into_restriction)
                    .collect::<Result<_, _>>()?,
            },
            WireChanged::Unregistered => Changed::Unregistered,
            WireChanged::ServerBanned { mask: m, until_us, reason } => {
                Changed::ServerBanned(ServerBan { mask: mask(&m)?, until: until_us.map(time).transpose()?, reason })
            }
            WireChanged::ServerUnbanned { mask: m } => Changed::ServerUnbanned(mask(&m)?),
        };
        Ok(Change {
            actor: nick(&self.actor)?,
            room: self.room.as_deref().map(room).transpose()?,
            durable: self.durable,
            at: time(self.at_us)?,
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_goes_there_and_back() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_000_000).expect("a time");
        let dev = RoomName::parse("Dev", 32).expect("room");
        let ada = Nick::parse("ada", 32).expect("nick");
        let restriction = Restriction {
            room: dev.clone(),
            ban: true,
            mask: Mask::parse("*!*@example.org", 32).expect("mask"),
            until: Some(at),
            reason: Some("spam".into()),
            set_by: Some(ada.clone()),
            set_at: Some(at),
        };
        let modes = RoomModes { moderated: true, key: Some("k".into()), limit: Some(9), ..RoomModes::default() };
        let founder = Account { id: AccountId(4), name: ada.clone() };
        let changes = [
            Changed::Topic("hello".into()),
            Changed::Kicked { nick: ada.clone(), reason: None },
            Changed::Restricted(restriction.clone()),
            Changed::Lifted { ban: false, mask: Mask::parse("10.0.0.1", 32).expect("mask") },
            Changed::Promoted(ada.clone()),
            Changed::Demoted(ada.clone()),
            Changed::Opped(founder.clone()),
            Changed::Deopped(founder.clone()),
            Changed::Modes(modes.clone()),
            Changed::Registered {
                founder: Some(founder),
                since: 7,
                modes,
                topic: Some(Topic { text: "t".into(), by: ada.clone(), at }),
                restrictions: vec![restriction],
            },
            Changed::Unregistered,
            Changed::ServerBanned(ServerBan { mask: Mask::Nick(ada.clone()), until: None, reason: None }),
            Changed::ServerUnbanned(Mask::Nick(ada.clone())),
        ];
        for what in changes {
            let change = Change { actor: ada.clone(), room: Some(dev.clone()), durable: true, at, what };
            let json = serde_json::to_string(&WireChange::from(&change)).expect("encodes");
            let back: WireChange = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back.into_change().expect("valid"), change, "{json}");
        }
    }

    #[test]
    fn a_change_this_node_cannot_read_is_an_error() {
        let bad = r#"{"actor":"ada","durable":false,"at_us":0,"what":{"kind":"lifted","ban":true,"mask":"a b"}}"#;
        let wire: WireChange = serde_json::from_str(bad).expect("decodes");
        assert!(wire.into_change().is_err());
    }
}
