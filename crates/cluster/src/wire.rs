//! A record as it travels between nodes: the hub's [`Record`] in JSON.
//!
//! JSON because the workspace already speaks it (serde_json), an operator can read a
//! stored message with `nats stream get`, and fields can be added without breaking a
//! node of the previous release (unknown fields are ignored, missing optional ones are
//! `None`). A binary encoding would save perhaps a third of a message's bytes, mostly
//! on field names, for one more dependency; the text of a chat message dominates either
//! way.

use std::sync::Arc;

use chrono::DateTime;
use parley_hub::{ClientTags, Kind, Meta, Nick, Party, Record, RoomName, Userhost};
use serde::{Deserialize, Serialize};

/// The hub's [`Record`] in the cluster's encoding. Names are carried as spelled and
/// parsed again on the receiving node, so equality there is by the receiving hub's key;
/// parties as the store's signed numbers. Persisted in the stream: fields may be added,
/// never renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    /// The room, as spelled; absent for a private message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The seq in the room (or among private messages).
    pub seq: u64,
    /// The sender's nick then.
    pub from: String,
    /// The sender ([`Party::to_i64`]); 0 for none.
    #[serde(default)]
    pub sender: i64,
    /// The receiver's nick, for a private message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The receiver ([`Party::to_i64`]); 0 for none.
    #[serde(default)]
    pub recipient: i64,
    /// When the accepting hub took it, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// The kind, as history's content type.
    pub kind: String,
    /// The text.
    pub text: String,
    /// The seq this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// Client tags, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The sender's user name and host, for IRC sources on other nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userhost: Option<(String, String)>,
}

impl From<&Record> for WireRecord {
    fn from(r: &Record) -> WireRecord {
        WireRecord {
            room: r.room.as_ref().map(|room| room.as_str().to_owned()),
            seq: r.seq,
            from: r.from.as_str().to_owned(),
            sender: r.sender.map_or(0, Party::to_i64),
            to: r.to.as_ref().map(|to| to.as_str().to_owned()),
            recipient: r.recipient.map_or(0, Party::to_i64),
            at_us: r.at.timestamp_micros(),
            kind: r.kind.content_type().to_owned(),
            text: r.text.to_string(),
            reply_to: r.meta.as_ref().and_then(|m| m.reply_to),
            tags: r.meta.as_ref().map(|m| m.tags.pairs().to_vec()).unwrap_or_default(),
            userhost: r.userhost.as_ref().map(|u| (u.user.to_string(), u.host.to_string())),
        }
    }
}

impl WireRecord {
    /// The hub's record again; why not, if a name, time or tag does not pass the hub's
    /// rules on this node.
    pub fn into_record(self) -> Result<Record, String> {
        let nick = |n: &str| Nick::parse(n, usize::MAX).map_err(|e| format!("nick {n:?}: {e:?}"));
        let room = match &self.room {
            Some(room) => Some(RoomName::parse(room, usize::MAX).map_err(|e| format!("room {room:?}: {e:?}"))?),
            None => None,
        };
        let at = DateTime::from_timestamp_micros(self.at_us).ok_or_else(|| format!("time {}", self.at_us))?;
        let tags = ClientTags::new(self.tags).map_err(|e| format!("tags: {e:?}"))?;
        Ok(Record {
            room,
            seq: self.seq,
            from: nick(&self.from)?,
            sender: Party::from_i64(self.sender),
            to: self.to.as_deref().map(nick).transpose()?,
            recipient: Party::from_i64(self.recipient),
            at,
            kind: Kind::from_content_type(&self.kind),
            text: Arc::from(self.text),
            meta: Meta { reply_to: self.reply_to, tags }.shared(),
            userhost: self.userhost.map(|(user, host)| Userhost::new(&user, &host)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::WireRecord;

    /// The encoding is persisted in the stream: a message written by this version
    /// must stay readable, and one with fields a later version added must be too.
    #[test]
    fn the_stored_form_is_stable_and_tolerant() {
        let stored = r#"{"room":"Lobby","seq":7,"from":"alice","sender":3,"recipient":0,"at_us":1700000000000000,
            "kind":"text/plain; charset=utf-8; kind=action","text":"waves","reply_to":5,
            "tags":[["draft/react","x"]],"userhost":["~a","h"],"added_later":{"x":1}}"#;
        let wire: WireRecord = serde_json::from_str(stored).expect("decodes");
        let record = wire.clone().into_record().expect("a record");
        assert_eq!(record.room.as_ref().map(|r| r.as_str()), Some("Lobby"));
        assert_eq!((record.seq, record.from.as_str(), record.kind), (7, "alice", parley_hub::Kind::Action));
        assert_eq!(record.sender, Some(parley_hub::Party::Account(parley_hub::AccountId(3))));
        assert_eq!(record.recipient, None);
        assert_eq!(record.meta.as_ref().and_then(|m| m.reply_to), Some(5));
        assert_eq!(WireRecord::from(&record), WireRecord { text: "waves".into(), ..wire });
        let minimal = r#"{"seq":1,"from":"bob","at_us":0,"kind":"","text":""}"#;
        let record = serde_json::from_str::<WireRecord>(minimal).expect("decodes").into_record().expect("a record");
        assert_eq!((record.room, record.sender, record.meta), (None, None, None));
    }

    /// What another node's hub would refuse is an error, not a panic.
    #[test]
    fn names_and_tags_are_checked_again() {
        for bad in [
            r#"{"seq":1,"from":"1bad","at_us":0,"kind":"","text":""}"#,
            r#"{"room":"a b","seq":1,"from":"ok","at_us":0,"kind":"","text":""}"#,
            r#"{"seq":1,"from":"ok","at_us":0,"kind":"","text":"","tags":[["bad tag","x"]]}"#,
            r#"{"seq":1,"from":"ok","at_us":9223372036854775807,"kind":"","text":""}"#,
        ] {
            let wire: WireRecord = serde_json::from_str(bad).expect("decodes");
            assert!(wire.into_record().is_err(), "{bad} is refused");
        }
    }
}
