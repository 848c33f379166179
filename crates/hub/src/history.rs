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
    /// The message it answers and the client tags, if any.
    pub meta: Option<Arc<crate::signal::Meta>>,
    /// The sender's user name and host (their IRC source), for a message said since
    /// the server started; the store does not keep them (`None` once read back).
    pub userhost: Option<Arc<crate::identity::Userhost>>,
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
    /// The latest messages, but only those after this seq.
    LatestAfter(u64),
    /// The messages around this seq: half the page before it, the rest from it on.
    Around(u64),
    /// The messages strictly between two seqs: the earliest of them, or the latest
    /// when `latest`.
    Between {
        /// The page starts after this seq.
        after: u64,
        /// And ends before this one.
        before: u64,
        /// Take the latest of the messages between, not the earliest.
        latest: bool,
    },
}

impl Cursor {
    /// The seq bounds (exclusive) and order of the one query that serves this cursor,
    /// within `first..=last`; `None` for [`Cursor::Around`], which takes two.
    #[must_use]
    pub fn bounds(self, first: u64, last: u64) -> Option<(u64, u64, bool)> {
        let (after, before) = (first.saturating_sub(1), last.saturating_add(1));
        Some(match self {
            Cursor::Latest => (after, before, true),
            Cursor::Before(seq) => (after, seq.min(before), true),
            Cursor::After(seq) => (seq.max(after), before, false),
            Cursor::LatestAfter(seq) => (seq.max(after), before, true),
            Cursor::Between { after: a, before: b, latest } => (a.max(after), b.min(before), latest),
            Cursor::Around(_) => return None,
        })
    }

    /// For [`Cursor::Around`], the two one-query cursors, each with its limit, whose
    /// pages one after the other make the page: the latest `limit / 2` before the seq,
    /// then the earliest rest from it on (`first` is the first seq the reader may see).
    #[must_use]
    pub fn around_halves(self, first: u64, limit: usize) -> Option<[(Cursor, usize); 2]> {
        let Cursor::Around(at) = self else { return None };
        let at = at.max(first);
        let earlier = limit / 2;
        Some([(Cursor::Before(at), earlier), (Cursor::After(at.saturating_sub(1)), limit - earlier)])
    }
}

/// A page out of records in seq order, as the stores read one in SQL: for the memory
/// store and the hub's own tail. `first..=last` are the seqs the reader may see.
pub(crate) fn page_of<R: Clone>(
    records: &[R],
    seq: &dyn Fn(&R) -> u64,
    cursor: Cursor,
    first: u64,
    last: u64,
    limit: usize,
) -> Vec<R> {
    if let Some(halves) = cursor.around_halves(first, limit) {
        return halves.into_iter().flat_map(|(half, n)| page_of(records, seq, half, first, last, n)).collect();
    }
    let Some((after, before, latest)) = cursor.bounds(first, last) else { return Vec::new() };
    let between = records.iter().filter(|r| seq(r) > after && seq(r) < before);
    if latest {
        let mut page: Vec<R> = between.rev().take(limit).cloned().collect();
        page.reverse();
        page
    } else {
        between.take(limit).cloned().collect()
    }
}

/// Whose messages a history read is about: a room's, or the conversation between two
/// parties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timeline {
    /// A room.
    Room(RoomName),
    /// The private messages between `me` and `with`.
    Conversation {
        /// The reader.
        me: Party,
        /// The other party.
        with: Party,
    },
}

/// Where someone was talked to lately (IRC's `CHATHISTORY TARGETS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The room, for a room.
    pub room: Option<RoomName>,
    /// The other party of a conversation, and their nick in its latest message.
    pub with: Option<(Party, Nick)>,
    /// When its latest message in the window was said.
    pub at: Timestamp,
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
