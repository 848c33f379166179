//! History: what a message looks like once kept, the [`Store`] that keeps it, and each
//! room's log in memory (its sequence counter and its latest messages, for newcomers).
//!
//! The hub defines the store's interface so that it decides what is kept and when; the
//! SQLite implementation lives in `parley-store`, and a PostgreSQL one can follow without
//! the hub changing.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::Timestamp;
use crate::name::{Nick, RoomName};

/// A message as history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The room it was said in; `None` for a private message.
    pub room: Option<RoomName>,
    /// Its place in the room's order, from 1; for a private message, its place in the
    /// order of all private messages.
    pub seq: u64,
    /// The sender.
    pub from: Nick,
    /// The receiver of a private message.
    pub to: Option<Nick>,
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

    /// The kind's name in protocols that spell it out (`text`, `action`, `notice`,
    /// `file`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Action => "action",
            Kind::Notice => "notice",
            Kind::File => "file",
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
    /// The rooms to search: the user's rooms, or the one they named.
    pub rooms: Vec<RoomName>,
    /// Also the private messages to and from this account (logged-in users only: a
    /// guest's nick may have been someone else's yesterday).
    pub private_of: Option<Nick>,
    /// Only messages before this instant.
    pub before: Option<Timestamp>,
    /// Only messages at or after this instant.
    pub after: Option<Timestamp>,
    /// The most results.
    pub limit: usize,
    /// Results to skip: the page times the limit.
    pub offset: usize,
}

/// What the store knows of one room when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomHistory {
    /// The room.
    pub room: RoomName,
    /// The seq of its last stored message.
    pub last_seq: u64,
    /// Its latest messages, oldest first.
    pub recent: Vec<Record>,
}

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// There is no such account.
    NoAccount,
    /// The password is not the account's.
    Wrong,
    /// The password is right; the account's name as registered.
    Right(Nick),
}

/// Why the store failed. The message is for the server's log and the sender's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Durable history and accounts. Calls block on disk (and, for passwords, on hashing):
/// the hub makes them from its writer thread and from blocking tasks, never from its own
/// task.
pub trait Store: Send + Sync + 'static {
    /// Makes every record in `batch` durable, all or none (one transaction: the group
    /// commit).
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError>;

    /// Every room with stored messages, with its last seq and its latest `recent`
    /// messages.
    fn rooms(&self, recent: usize) -> Result<Vec<RoomHistory>, StoreError>;

    /// One page of a room's history, oldest first.
    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError>;

    /// The seq of the last stored private message (they are numbered together).
    fn last_private_seq(&self) -> Result<u64, StoreError>;

    /// One page of the private messages between `me` and `with`, oldest first; `upto`
    /// as in [`Page`].
    fn conversation(
        &self,
        me: &Nick,
        with: &Nick,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// The messages matching `search`, best match first.
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError>;

    /// Admins, room operators, bans, mutes and topics.
    fn moderation(&self) -> Result<crate::moderation::Moderation, StoreError>;

    /// Makes a moderation change durable, with its audit line, in one transaction.
    fn record(&self, change: &crate::moderation::Change) -> Result<(), StoreError>;

    /// Whether the account is a server admin.
    fn is_admin(&self, account: &Nick) -> Result<bool, StoreError>;

    /// The latest `limit` lines of the audit log, newest first.
    fn audit(&self, limit: usize) -> Result<Vec<crate::moderation::AuditLine>, StoreError>;

    /// Every registered account's name.
    fn accounts(&self) -> Result<Vec<Nick>, StoreError>;

    /// Registers the account `name` with `password`; false if it exists already.
    fn register(&self, name: &Nick, password: &str) -> Result<bool, StoreError>;

    /// Checks `password` against the account `name`.
    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError>;

    /// Replaces the password of `name`; false if there is no such account.
    fn set_password(&self, name: &Nick, password: &str) -> Result<bool, StoreError>;
}

/// A room's log as the hub keeps it: the seq counter (which outlives the room itself, so
/// a room that empties and fills again continues its order) and the latest committed
/// messages, which newcomers get on joining.
#[derive(Debug, Default)]
pub(crate) struct RoomLog {
    /// The seq given to the last accepted message.
    pub(crate) assigned: u64,
    /// The seq of the last message known to be stored (or delivered, without a store).
    pub(crate) committed: u64,
    recent: VecDeque<Arc<Record>>,
}

impl RoomLog {
    pub(crate) fn restored(history: RoomHistory, keep: usize) -> Self {
        let skip = history.recent.len().saturating_sub(keep);
        let recent = history.recent.into_iter().skip(skip).map(Arc::new).collect();
        Self { assigned: history.last_seq, committed: history.last_seq, recent }
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.assigned += 1;
        self.assigned
    }

    /// Records a message as committed, keeping the latest `keep`.
    pub(crate) fn commit(&mut self, record: Arc<Record>, keep: usize) {
        self.committed = self.committed.max(record.seq);
        if keep == 0 {
            return;
        }
        if self.recent.len() >= keep {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// The latest `n` committed messages, oldest first.
    pub(crate) fn recent(&self, n: usize) -> Vec<Arc<Record>> {
        self.recent.iter().skip(self.recent.len().saturating_sub(n)).cloned().collect()
    }

    /// A page served from memory, for a hub without a store: only what is still held.
    pub(crate) fn page(&self, cursor: Cursor, limit: usize) -> Vec<Arc<Record>> {
        let held = self.recent.iter();
        let mut page: Vec<Arc<Record>> = match cursor {
            Cursor::Latest => held.rev().take(limit).cloned().collect(),
            Cursor::Before(seq) => held.rev().filter(|r| r.seq < seq).take(limit).cloned().collect(),
            Cursor::After(seq) => {
                return held.filter(|r| r.seq > seq).take(limit).cloned().collect();
            }
        };
        page.reverse();
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn record(seq: u64) -> Arc<Record> {
        Arc::new(Record {
            room: Some(RoomName::parse("lobby", 32).expect("valid")),
            seq,
            from: Nick::parse("ada", 32).expect("valid"),
            to: None,
            at: Utc::now(),
            kind: Kind::Text,
            text: format!("message {seq}").into(),
        })
    }

    fn seqs(records: &[Arc<Record>]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn the_log_keeps_the_latest_and_pages_through_them() {
        let mut log = RoomLog::default();
        for _ in 0..10 {
            let seq = log.next_seq();
            log.commit(record(seq), 5);
        }
        assert_eq!((log.assigned, log.committed), (10, 10));
        assert_eq!(seqs(&log.recent(3)), [8, 9, 10]);
        assert_eq!(seqs(&log.recent(50)), [6, 7, 8, 9, 10]);
        assert_eq!(seqs(&log.page(Cursor::Latest, 2)), [9, 10]);
        assert_eq!(seqs(&log.page(Cursor::Before(9), 2)), [7, 8]);
        assert_eq!(seqs(&log.page(Cursor::After(6), 2)), [7, 8]);
    }

    #[test]
    fn a_restored_log_continues_the_order() {
        let room = RoomName::parse("lobby", 32).expect("valid");
        let recent = (1..=4).map(|seq| (*record(seq)).clone()).collect();
        let mut log = RoomLog::restored(RoomHistory { room, last_seq: 40, recent }, 2);
        assert_eq!(seqs(&log.recent(10)), [3, 4]);
        assert_eq!(log.next_seq(), 41);
    }
}
