//! History's vocabulary: what a message looks like once kept, and what a reader may
//! ask of it (a page of a room or a conversation, a search).

use std::sync::Arc;

use crate::event::Timestamp;
use crate::identity::Party;
use crate::name::{Nick, RoomName};

/// A message as history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The room it was said in; `None` for a private message.
    pub room: Option<RoomName>,
    /// Its place in the room's order, from 1; for a private message, its place in the
    /// order of all private messages.
    pub seq: u64,
    /// The sender's nick then.
    pub from: Nick,
    /// Who sent it: their account, or their guest session; `None` for messages kept from
    /// before senders were recorded.
    pub sender: Option<Party>,
    /// The receiver's nick then, for a private message.
    pub to: Option<Nick>,
    /// Who a private message is for, as [`Record::sender`]: a conversation is read by
    /// its parties, not by whoever has their nick now.
    pub recipient: Option<Party>,
    /// When the hub accepted it.
    pub at: Timestamp,
    /// What kind of message it is.
    pub kind: Kind,
    /// The text.
    pub text: Arc<str>,
}

/// What kind of text a message is. Stored as a content type, so that history keeps an
/// action an action whichever gateway reads it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Ordinary text.
    #[default]
    Text,
    /// Something the sender does, written in the third person (IRC's `/me waves`).
    Action,
    /// A notice: text that no program should answer automatically (IRC's `NOTICE`).
    Notice,
    /// A shared file: the text is its description as JSON (id, name, size, media type,
    /// SHA-256), written by the gateway that took the upload. The hub orders, stores and
    /// delivers it like any message and never reads it; each gateway shows it its way.
    File,
}

impl Kind {
    /// The content type history stores it as.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Text => "text/plain; charset=utf-8",
            Kind::Action => "text/plain; charset=utf-8; kind=action",
            Kind::Notice => "text/plain; charset=utf-8; kind=notice",
            Kind::File => "application/json; kind=file",
        }
    }

    /// Reads a stored content type; anything unknown is text.
    #[must_use]
    pub fn from_content_type(content_type: &str) -> Kind {
        if content_type.ends_with("kind=action") {
            Kind::Action
        } else if content_type.ends_with("kind=notice") {
            Kind::Notice
        } else if content_type.ends_with("kind=file") {
            Kind::File
        } else {
            Kind::Text
        }
    }
}

/// Which part of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// The latest messages.
    Latest,
    /// The latest messages before this seq.
    Before(u64),
    /// The earliest messages after this seq: what a reconnecting client missed.
    After(u64),
}

/// A request for one page of a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The room.
    pub room: RoomName,
    /// Where the page starts.
    pub cursor: Cursor,
    /// The first seq the reader may see (where the room's current life, or its
    /// registration, began).
    pub since: u64,
    /// The last seq to include: the room's last committed message when the page was asked
    /// for, so that a page never overlaps what is delivered live afterwards.
    pub upto: u64,
    /// The most messages to return.
    pub limit: usize,
}

/// A full-text search over what one user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Every word must appear (in any order, any case, accents ignored).
    pub words: Vec<String>,
    /// Only messages from this sender.
    pub from: Option<Nick>,
    /// The rooms to search (the user's rooms, or the one they named), each with the
    /// first seq its reader may see.
    pub rooms: Vec<(RoomName, u64)>,
    /// Also the private messages to and from this party.
    pub private_of: Option<Party>,
    /// Only messages before this instant.
    pub before: Option<Timestamp>,
    /// Only messages at or after this instant.
    pub after: Option<Timestamp>,
    /// The most results.
    pub limit: usize,
    /// Results to skip: the page times the limit.
    pub offset: usize,
}
