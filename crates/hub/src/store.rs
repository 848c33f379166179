//! The store the hub needs, as one trait per concern: messages, search, accounts and
//! moderation. [`Store`] is all of them; the SQLite implementation lives in
//! `parley-store`, [`crate::MemoryStore`] keeps everything in memory for tests.
//!
//! The hub defines the interface so that it decides what is kept and when. Every call
//! blocks (on disk, and for passwords on hashing): the hub makes them from its journal
//! thread and from blocking tasks, never from its own task.

use std::sync::Arc;

use crate::event::Timestamp;
use crate::history::{Activity, Cursor, Page, Record, Search, Timeline};
use crate::identity::{Account, AccountId, Party};
use crate::moderation::{AuditLine, Change, Moderation};
use crate::name::{Nick, RoomName};
use crate::tokens::{SessionToken, TokenUse};

/// Why the store failed, with the detail for the server's log. Clients are told only
/// whether a read or a write failed (see [`crate::HubError`]): the detail may name
/// files and tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Reading failed; nothing changed.
    #[error("reading the store failed: {0}")]
    Read(String),
    /// Writing failed; what was to be written was not kept.
    #[error("writing to the store failed: {0}")]
    Write(String),
}

/// Messages: appending them in batches, and reading pages back.
pub trait MessageStore: Send + Sync {
    /// Makes every record in `batch` durable, all or none (one transaction: the group
    /// commit).
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError>;

    /// Every room with stored messages, with the seq of its last one.
    fn last_seqs(&self) -> Result<Vec<(RoomName, u64)>, StoreError>;

    /// A room's latest `limit` messages from seq `since` on, oldest first.
    fn recent(&self, room: &RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// One page of a room's history, oldest first.
    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError>;

    /// Deletes the message `seq` of `room`, if its seq is `since` or later and, when
    /// `author` is given, that party sent it: the check and the deletion in one
    /// transaction. The message leaves history and search; the room's order goes on
    /// after it (seqs are never reused).
    fn delete(&self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> Result<Deletion, StoreError>;

    /// The seq of the latest message of `timeline` said at or before `at` (0 if none),
    /// from seq `since` on: where a time falls in the order.
    fn seq_at(&self, timeline: &Timeline, since: u64, at: Timestamp) -> Result<u64, StoreError>;

    /// The rooms of `rooms` (each with the first seq its reader may see) and the
    /// conversations of `party` with a message said after `from` and before `to`, each
    /// with its latest such message's time; the `limit` most recent, oldest first.
    fn activity(
        &self,
        rooms: &[(RoomName, u64)],
        party: Party,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError>;

    /// The seq of the last stored private message (they are numbered together).
    fn last_private_seq(&self) -> Result<u64, StoreError>;

    /// The highest guest number any stored message names, so that guests of the next
    /// run are numbered after it.
    fn last_guest(&self) -> Result<u64, StoreError>;

    /// One page of the private messages between the parties `me` and `with`, oldest
    /// first; `upto` as in [`Page`].
    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;
}

/// What [`MessageStore::delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// The message is gone; this is what it was.
    Deleted(Box<Record>),
    /// There is no such message (never, deleted already, or before `since`).
    NoSuchMessage,
    /// The message is someone else's.
    NotAuthor,
}

/// Full-text search.
pub trait SearchStore: Send + Sync {
    /// The messages matching `search`, best match first.
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError>;
}

/// Where an account read up to in one room or conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMarker {
    /// Whose.
    pub account: AccountId,
    /// Where: `#` and a room's key, or `@` and the other party's number (see
    /// [`crate::Party::to_i64`]).
    pub target: String,
    /// Read up to this instant.
    pub at: Timestamp,
}

/// The outcome of a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// There is no such account.
    NoAccount,
    /// The password is not the account's.
    Wrong,
    /// The password is right.
    Right {
        /// The account, its name as registered.
        account: Account,
        /// Whether it is a server administrator now.
        admin: bool,
    },
}

/// Accounts, by stable id; names are unique, compared by [`Nick::key`].
pub trait AccountStore: Send + Sync {
    /// Every account.
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;

    /// Registers the account `name` with `password`; `None` if the name is taken.
    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError>;

    /// Checks `password` against the account `name`.
    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError>;

    /// Checks `password` against the account `id` (a session proving it again, to
    /// change its password or delete itself).
    fn verify_id(&self, id: AccountId, password: &str) -> Result<bool, StoreError>;

    /// Replaces the password of `id`; false if there is no such account.
    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError>;

    /// Every account's read markers.
    fn read_markers(&self) -> Result<Vec<ReadMarker>, StoreError>;

    /// Moves the account's read marker for `target` to `at`, never back: a later
    /// marker already kept stays.
    fn mark_read(&self, account: AccountId, target: &str, at: Timestamp) -> Result<(), StoreError>;

    /// Deletes the account and everything that grants it power or holds its private
    /// words, in one transaction: its roles, operator places, the registration of the
    /// rooms it founded, and the private messages it sent or received. `actor` is
    /// recorded in the audit log. False if there was no such account.
    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError>;
}

/// Resume tokens, kept as their SHA-256 (see [`crate::token_hash`]). Changing an
/// account's password ([`AccountStore::set_password`]) or deleting it revokes every
/// token of that account in the same transaction.
pub trait TokenStore: Send + Sync {
    /// Keeps a new token of `account`, issued `at`, and revokes the account's tokens
    /// beyond the newest `keep` and those unused since `unused_since`. Its id, or `None`
    /// if there is no such account (deleted meanwhile).
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: Timestamp,
        keep: usize,
        unused_since: Timestamp,
    ) -> Result<Option<u64>, StoreError>;

    /// The token with this hash, used `at`: `None` if there is none, or it was last used
    /// before `unused_since` (then it is revoked). Its last use is recorded (at most
    /// once a minute, so that fetching files does not write on every request).
    fn use_token(&self, hash: &[u8], at: Timestamp, unused_since: Timestamp) -> Result<Option<TokenUse>, StoreError>;

    /// The account's tokens, most recently used first.
    fn tokens(&self, account: AccountId) -> Result<Vec<SessionToken>, StoreError>;

    /// Revokes the account's token `id`; false if it has no such token.
    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError>;
}

/// Moderation: roles, registered rooms, bans, and the audit log.
pub trait ModerationStore: Send + Sync {
    /// Server admins, registered rooms (with their operators, modes, bans, topics) and
    /// server bans.
    fn moderation(&self) -> Result<Moderation, StoreError>;

    /// Makes a moderation change durable, with its audit line, in one transaction.
    fn record(&self, change: &Change) -> Result<(), StoreError>;

    /// The latest `limit` lines of the audit log, newest first.
    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError>;
}

/// Everything the hub keeps durable.
pub trait Store: MessageStore + SearchStore + AccountStore + ModerationStore + TokenStore + 'static {}

impl<T: MessageStore + SearchStore + AccountStore + ModerationStore + TokenStore + 'static> Store for T {}
