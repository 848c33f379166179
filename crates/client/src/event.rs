//! What the server sends without being asked, in chat terms.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parley_proto::msg::{ErrorCode, LeaveReason, ServerMsg};

/// What kind of message: ordinary text, an action (`/me waves`), or a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// Ordinary text.
    #[default]
    Text,
    /// An action, shown as `* alice waves`.
    Action,
    /// A notice (from IRC's `NOTICE`): text nobody should answer automatically.
    Notice,
    /// A shared file: the text is its description as JSON; read it with
    /// [`crate::FileInfo::from_text`].
    File,
}

impl Kind {
    /// The kind a server message names (`action`, `notice`; absent: text).
    pub(crate) fn from_wire(kind: Option<&str>) -> Kind {
        match kind {
            Some("action") => Kind::Action,
            Some("notice") => Kind::Notice,
            Some("file") => Kind::File,
            _ => Kind::Text,
        }
    }
}

/// An event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message in a room you are in.
    Message {
        /// The room.
        room: String,
        /// The sender.
        from: String,
        /// Its place in the room's order.
        seq: u64,
        /// When the server accepted it.
        ts: DateTime<Utc>,
        /// What kind of message.
        kind: Kind,
        /// The text.
        text: String,
    },
    /// A private message (to you).
    Whisper {
        /// Its place in the order of private messages, for
        /// [`crate::Client::conversation`].
        seq: u64,
        /// The sender.
        from: String,
        /// The receiver.
        to: String,
        /// When the server accepted it.
        ts: DateTime<Utc>,
        /// What kind of message.
        kind: Kind,
        /// The text.
        text: String,
    },
    /// You read further in a room (`room`) or a conversation (`with`) on another of
    /// your sessions.
    Marker {
        /// The room, for a room's marker.
        room: Option<String>,
        /// The other user, for a conversation's.
        with: Option<String>,
        /// Read up to this instant.
        at: DateTime<Utc>,
    },
    /// A message of a room you are in was deleted.
    Deleted {
        /// The room.
        room: String,
        /// The deleted message's seq.
        seq: u64,
        /// Who deleted it.
        by: String,
        /// Who had said it.
        author: String,
        /// When it was said.
        said: DateTime<Utc>,
        /// When it was deleted.
        ts: DateTime<Utc>,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// Someone entered a room you are in.
    Joined {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// When.
        ts: DateTime<Utc>,
        /// True when they just arrived on the server.
        arrival: bool,
    },
    /// Someone left a room you are in.
    Left {
        /// The room.
        room: String,
        /// Who.
        nick: String,
        /// When.
        ts: DateTime<Utc>,
        /// Why.
        reason: LeaveReason,
        /// Their quit message, or why the server disconnected them.
        detail: Option<String>,
    },
    /// Someone you share a room with changed nick.
    NickChanged {
        /// The old nick.
        old: String,
        /// The new nick.
        new: String,
        /// When.
        ts: DateTime<Utc>,
    },
    /// Information from the server for you alone (e.g. that your nick is registered).
    Notice {
        /// When.
        ts: DateTime<Utc>,
        /// What.
        text: String,
    },
    /// The server is shutting down.
    Shutdown {
        /// Its message.
        message: String,
    },
    /// An error that answers no request (e.g. the one before the server closes the
    /// connection).
    Error {
        /// The code.
        code: ErrorCode,
        /// The explanation.
        message: String,
    },
    /// Someone in a room you are in, or writing to you, is typing (`active`), paused, or
    /// stopped (`done`).
    Typing {
        /// The room; `None` in a conversation.
        room: Option<String>,
        /// Who.
        from: String,
        /// `active`, `paused` or `done`.
        state: String,
    },
    /// Someone reacted to a message, or took the reaction back.
    Reaction {
        /// The room; `None` in a conversation (then the message is one of yours with
        /// `from`).
        room: Option<String>,
        /// The message's seq.
        seq: u64,
        /// Who.
        from: String,
        /// The reaction.
        reaction: String,
        /// Taken back.
        removed: bool,
    },
    /// The connection is closed; no more events follow.
    Closed {
        /// Why, for people.
        reason: String,
    },
}

/// An RFC 3339 timestamp from the server; a malformed one reads as now.
pub(crate) fn time(ts: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(ts).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

impl Event {
    /// The event a server message carries, if it is one (results, answered errors and
    /// pings are not).
    pub(crate) fn from_server(msg: ServerMsg, payload: &Bytes) -> Option<Event> {
        let text = || String::from_utf8_lossy(payload).into_owned();
        Some(match msg {
            ServerMsg::Message { room, from, seq, ts, kind, .. } => {
                Event::Message { room, from, seq, ts: time(&ts), kind: Kind::from_wire(kind.as_deref()), text: text() }
            }
            ServerMsg::Whisper { seq, from, to, ts, kind, .. } => {
                Event::Whisper { seq, from, to, ts: time(&ts), kind: Kind::from_wire(kind.as_deref()), text: text() }
            }
            ServerMsg::Marker { room, with, ts } => Event::Marker { room, with, at: time(&ts) },
            ServerMsg::Typing { room, from, state, .. } => Event::Typing { room, from, state },
            ServerMsg::Reaction { room, seq, from, reaction, removed, .. } => {
                Event::Reaction { room, seq, from, reaction, removed }
            }
            ServerMsg::Deleted { room, seq, by, author, said_ts, ts, reason } => {
                Event::Deleted { room, seq, by, author, said: time(&said_ts), ts: time(&ts), reason }
            }
            ServerMsg::Joined { room, nick, ts, arrival } => Event::Joined { room, nick, ts: time(&ts), arrival },
            ServerMsg::Left { room, nick, ts, reason, detail } => {
                Event::Left { room, nick, ts: time(&ts), reason, detail }
            }
            ServerMsg::Nick { old, new, ts } => Event::NickChanged { old, new, ts: time(&ts) },
            ServerMsg::Shutdown { message, .. } => Event::Shutdown { message },
            ServerMsg::Notice { ts } => Event::Notice { ts: time(&ts), text: text() },
            ServerMsg::Error { id: None, code, message } => Event::Error { code, message },
            ServerMsg::Result { .. }
            | ServerMsg::Error { id: Some(_), .. }
            | ServerMsg::Ping { .. }
            | ServerMsg::Data { .. }
            | ServerMsg::Unknown => return None,
        })
    }
}
