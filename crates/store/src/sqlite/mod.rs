//! The SQLite store: one file in the data directory, in WAL mode so that readers (history
//! pages, `parley log export` while the server runs) never wait for the writer.
//!
//! Durability: `synchronous=NORMAL` in WAL mode. A committed transaction is in the WAL
//! file before `append` returns, so it survives the server being killed (`kill -9`, a
//! panic, the OOM killer); an operating system crash or power cut can lose the last
//! transactions. `Retention::sync_full` trades throughput for that too.
//!
//! One file per concern, as the hub's traits are split: `messages` (appending, pages,
//! conversations), `search`, `accounts`, `moderation` (roles, registered rooms, bans,
//! the audit log).

mod accounts;
mod maintenance;
mod messages;
mod moderation;
mod search;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parley_hub::{Kind, Nick, Party, Record, RoomName, Store, StoreError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::schema::{self, MigrateError};

pub use accounts::AccountEntry;
pub use maintenance::{inspect, snapshot, Inspection};
pub(crate) use messages::PRUNE_EVERY;
pub(crate) use moderation::described;
pub(crate) use search::CANDIDATES;

/// The database's file name in the data directory.
pub const DB_FILE: &str = "parley.db";

/// How long a statement waits for a lock held by another process (an export, a backup)
/// before failing; the failure reaches the sender as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns [`record`] reads, in its order: written once, for every query that
/// returns messages.
const RECORD_COLUMNS: &str =
    "room, seq, sender, sender_party, recipient, recipient_party, at_us, body, content_type, meta";

/// What history keeps, and how durably.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete messages older than this; `None` keeps them forever.
    pub max_age: Option<Duration>,
    /// Keep at most this many messages per room; `None` keeps them all.
    pub max_per_room: Option<u64>,
    /// Sync every commit to the disk (`synchronous=FULL`): survives power loss, costs a
    /// disk flush per batch.
    pub sync_full: bool,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite refused the file.
    #[error("cannot open the history database {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot prepare the history database {path}: {source}")]
    Migrate {
        /// The file.
        path: PathBuf,
        /// Why.
        source: MigrateError,
    },
}

/// History in an SQLite file. One connection writes (the hub's journal thread, and
/// moderation and account changes between its batches); readers take a pooled
/// connection of their own.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

struct Writer {
    conn: Connection,
    retention: Retention,
    last_prune: Option<Instant>,
    /// Messages stored but not yet in the search index.
    unindexed: usize,
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

fn write_error(e: rusqlite::Error) -> StoreError {
    StoreError::Write(e.to_string())
}

impl SqliteStore {
    /// Opens (creating and migrating) the database in `data_dir`.
    pub fn open(data_dir: &Path, retention: Retention) -> Result<SqliteStore, OpenError> {
        let path = data_dir.join(DB_FILE);
        let sqlite = |source| OpenError::Sqlite { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", if retention.sync_full { "FULL" } else { "NORMAL" }).map_err(sqlite)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        schema::migrate(&mut conn).map_err(|source| OpenError::Migrate { path: path.clone(), source })?;
        let unindexed: i64 = conn
            .query_row("SELECT count(*) FROM messages WHERE id > (SELECT indexed_up_to FROM fts_state)", [], |row| {
                row.get(0)
            })
            .map_err(sqlite)?;
        let unindexed = usize::try_from(unindexed).unwrap_or(0);
        let writer = Writer { conn, retention, last_prune: None, unindexed };
        Ok(SqliteStore { path, writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) })
    }

    /// Opens an existing database for reading only, beside a running server or not.
    pub fn open_read_only(data_dir: &Path) -> Result<SqliteStore, OpenError> {
        let path = data_dir.join(DB_FILE);
        let conn = read_only(&path).map_err(|source| OpenError::Sqlite { path: path.clone(), source })?;
        schema::check_version(&conn).map_err(|source| OpenError::Migrate { path: path.clone(), source })?;
        // The writer slot holds a read-only connection: `append` on it fails cleanly.
        let writer = Writer { conn, retention: Retention::default(), last_prune: Some(Instant::now()), unindexed: 0 };
        Ok(SqliteStore { path, writer: Mutex::new(writer), readers: Mutex::new(Vec::new()) })
    }

    /// This store as the hub's trait object.
    #[must_use]
    pub fn shared(self) -> Arc<dyn Store> {
        Arc::new(self)
    }

    /// Calls `each` with every message of `room` since `since`, oldest first, reading in
    /// pages so that memory stays flat however long the history. (An export is the
    /// operator's: it includes every life of the room.)
    pub fn export(
        &self,
        room: &str,
        since: Option<DateTime<Utc>>,
        mut each: impl FnMut(&Record) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        const PAGE: i64 = 1000;
        let since_us = since.map_or(i64::MIN, |t| t.timestamp_micros());
        let mut after = 0i64;
        let mut written = 0;
        self.read(|conn| {
            let known: Option<String> =
                conn.query_row("SELECT name FROM rooms WHERE name = ?1", [room], |row| row.get(0)).optional()?;
            if known.is_none() {
                return Ok(Err(ExportError::NoSuchRoom(room.to_owned())));
            }
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM messages
                 WHERE room = ?1 AND seq > ?2 AND at_us >= ?3 ORDER BY seq LIMIT ?4"
            ))?;
            loop {
                let page: Vec<Record> =
                    stmt.query_map(params![room, after, since_us, PAGE], record)?.collect::<Result<_, _>>()?;
                let Some(last) = page.last() else {
                    return Ok(Ok(written));
                };
                after = seq_value(last.seq);
                for message in &page {
                    if let Err(e) = each(message) {
                        return Ok(Err(ExportError::Write(e)));
                    }
                    written += 1;
                }
            }
        })
        .map_err(|e| ExportError::Read(e.to_string()))?
    }

    /// Runs `f` on a pooled read connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => read_only(&self.path).map_err(read_error)?,
        };
        let result = f(&conn).map_err(read_error);
        self.readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        result
    }

    /// The writer connection, for a change in one transaction.
    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The room has no history.
    #[error("no room called {0} has any history")]
    NoSuchRoom(String),
    /// Reading the database failed.
    #[error("reading history failed: {0}")]
    Read(String),
    /// Writing the output failed.
    #[error("writing the export failed: {0}")]
    Write(std::io::Error),
}

fn read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    name_key_function(&conn)?;
    Ok(conn)
}

/// `name_key(text)`: the key a name compares by ([`parley_hub::key_of`]). SQLite's
/// `NOCASE` folds ASCII only; a search `from:JOSÉ` must find what `José` said.
fn name_key_function(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "name_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| Ok(ctx.get::<Option<String>>(0)?.map(|name| parley_hub::key_of(&name))),
    )
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A seq as SQLite stores it (an i64; seqs never come near its end).
fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn corrupt(column: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
}

fn nick_or_corrupt(text: &str) -> rusqlite::Result<Nick> {
    Nick::parse(text, usize::MAX).map_err(|e| corrupt(0, e.to_string()))
}

fn room_or_corrupt(text: &str) -> rusqlite::Result<RoomName> {
    RoomName::parse(text, usize::MAX).map_err(|e| corrupt(0, e.to_string()))
}

/// A row of `SELECT {RECORD_COLUMNS}`.
fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let room: Option<String> = row.get(0)?;
    let room = room.map(|r| RoomName::parse(&r, usize::MAX).map_err(|e| corrupt(0, e.to_string()))).transpose()?;
    let seq: i64 = row.get(1)?;
    let from: String = row.get(2)?;
    let from = Nick::parse(&from, usize::MAX).map_err(|e| corrupt(2, e.to_string()))?;
    let sender = Party::from_i64(row.get(3)?);
    let to: Option<String> = row.get(4)?;
    let to = to.map(|t| Nick::parse(&t, usize::MAX).map_err(|e| corrupt(4, e.to_string()))).transpose()?;
    let recipient = Party::from_i64(row.get(5)?);
    let at_us: i64 = row.get(6)?;
    let at = DateTime::from_timestamp_micros(at_us).ok_or_else(|| corrupt(6, format!("bad time {at_us}")))?;
    let body: String = row.get(7)?;
    let kind = Kind::from_content_type(&row.get::<_, String>(8)?);
    let meta = crate::meta::decode(row.get::<_, Option<String>>(9)?.as_deref()).map_err(|e| corrupt(9, e))?;
    let seq = u64::try_from(seq).unwrap_or(0);
    Ok(Record { room, seq, from, sender, to, recipient, at, kind, text: body.into(), meta, userhost: None })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("parley-store-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn said(room: &str, seq: u64, text: &str) -> Arc<Record> {
        Arc::new(Record {
            room: Some(RoomName::parse(room, 32).expect("room")),
            seq,
            from: Nick::parse("ada", 32).expect("nick"),
            sender: None,
            to: None,
            recipient: None,
            at: Utc::now(),
            kind: Kind::Text,
            text: text.into(),
            meta: None,
            userhost: None,
        })
    }

    #[test]
    fn export_streams_a_room_and_refuses_an_unknown_one() {
        use parley_hub::MessageStore as _;
        let dir = TempDir::new("export");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let batch: Vec<_> = (1..=2500).map(|n| said("dev", n, &format!("m{n}"))).collect();
        store.append(&batch).expect("appends");
        let reader = SqliteStore::open_read_only(&dir.0).expect("opens beside the writer");
        let mut seen = Vec::new();
        let written = reader.export("DEV", None, |r| {
            seen.push(r.seq);
            Ok(())
        });
        assert_eq!(written.expect("exports"), 2500);
        assert!(seen.iter().copied().eq(1..=2500), "every message once, in order");
        assert!(matches!(reader.export("nowhere", None, |_| Ok(())), Err(ExportError::NoSuchRoom(_))));
        assert!(reader.append(&[said("dev", 2501, "no")]).is_err(), "a read-only store cannot write");
    }
}
