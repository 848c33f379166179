//! The SQLite store: one file in the data directory, in WAL mode so that readers (history
//! pages, `parley log export` while the server runs) never wait for the writer.
//!
//! Durability: `synchronous=NORMAL` in WAL mode. A committed transaction is in the WAL
//! file before `append` returns, so it survives the server being killed (`kill -9`, a
//! panic, the OOM killer); an operating system crash or power cut can lose the last
//! transactions. `Retention::sync_full` trades throughput for that too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parley_hub::{
    AuditLine, Change, Changed, Cursor, Kind, Mask, Moderation, Nick, Page, Record, RoomHistory, RoomName, Search,
    Store, StoreError, Verdict,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::password;
use crate::schema::{self, MigrateError};

/// The database's file name in the data directory.
pub const DB_FILE: &str = "parley.db";

/// Search ranks this many of the newest matches (see `search`).
pub(crate) const CANDIDATES: usize = 2000;

/// The search index is brought up to date once this many messages wait for it, and
/// before every search.
const INDEX_CHUNK: usize = 1000;

/// How often the writer applies the retention rules.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// How long a statement waits for a lock held by another process (an export, a backup)
/// before failing; the failure reaches the sender as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

/// History in an SQLite file. One connection writes (the hub's journal thread is its
/// only caller); readers take a pooled connection of their own.
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

fn store_error(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
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
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|source| OpenError::Sqlite { path: path.clone(), source })?;
        if found > schema::latest() {
            let source = MigrateError::TooNew { found, known: schema::latest() };
            return Err(OpenError::Migrate { path, source });
        }
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
    /// pages so that memory stays flat however long the history.
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
            let mut stmt = conn.prepare_cached(
                "SELECT room, seq, sender, recipient, at_us, body, content_type FROM messages
                 WHERE room = ?1 AND seq > ?2 AND at_us >= ?3 ORDER BY seq LIMIT ?4",
            )?;
            loop {
                let page: Vec<Record> =
                    stmt.query_map(params![room, after, since_us, PAGE], record)?.collect::<Result<_, _>>()?;
                let Some(last) = page.last() else {
                    return Ok(Ok(written));
                };
                after = i64::try_from(last.seq).unwrap_or(i64::MAX);
                for message in &page {
                    if let Err(e) = each(message) {
                        return Ok(Err(ExportError::Write(e)));
                    }
                    written += 1;
                }
            }
        })
        .map_err(|e| ExportError::Read(e.0))?
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => read_only(&self.path).map_err(store_error)?,
        };
        let result = f(&conn).map_err(store_error);
        self.readers.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        result
    }
}

/// A registered account, as `parley admin users list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's name, which is the nick it protects.
    pub name: String,
    /// When it was registered.
    pub created: DateTime<Utc>,
}

impl SqliteStore {
    /// Every account, by name.
    pub fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT name, created_us FROM accounts ORDER BY name")?;
            let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
            rows.map(|row| {
                row.map(|(name, created_us)| Account {
                    name,
                    created: DateTime::from_timestamp_micros(created_us).unwrap_or_default(),
                })
            })
            .collect()
        })
    }

    /// Deletes the account `name`; false if there was none. Its messages stay.
    pub fn delete_account(&self, name: &Nick) -> Result<bool, StoreError> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let deleted = writer.conn.execute("DELETE FROM accounts WHERE name = ?1", [name.as_str()]);
        deleted.map(|n| n > 0).map_err(store_error)
    }
}

impl SqliteStore {
    /// Gives or takes the server-admin role, recording it in the audit log; false when
    /// nothing changed.
    pub fn set_admin(&self, account: &Nick, admin: bool) -> Result<bool, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = writer.conn.transaction().map_err(store_error)?;
        let changed = if admin {
            tx.execute("INSERT OR IGNORE INTO roles (account, role) VALUES (?1, 'admin')", [account.as_str()])
        } else {
            tx.execute("DELETE FROM roles WHERE account = ?1 AND role = 'admin'", [account.as_str()])
        }
        .map_err(store_error)?;
        if changed > 0 {
            let action = if admin { "grant admin" } else { "revoke admin" };
            tx.execute(
                "INSERT INTO audit (at_us, actor, action, target) VALUES (?1, 'parley admin', ?2, ?3)",
                params![micros(Utc::now()), action, account.as_str()],
            )
            .map_err(store_error)?;
        }
        tx.commit().map_err(store_error)?;
        Ok(changed > 0)
    }
}

fn nick_or_corrupt(text: &str) -> rusqlite::Result<Nick> {
    Nick::parse(text, usize::MAX)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into()))
}

fn room_or_corrupt(text: &str) -> rusqlite::Result<RoomName> {
    RoomName::parse(text, usize::MAX)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into()))
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
    Ok(conn)
}

/// An FTS5 query requiring every word, each quoted so that nothing a user types is
/// read as query syntax; `None` when there is no word to look for.
fn fts_query(words: &[String]) -> Option<String> {
    let quoted: Vec<String> =
        words.iter().filter(|w| !w.trim().is_empty()).map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
    (!quoted.is_empty()).then(|| quoted.join(" "))
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A row of `SELECT room, seq, sender, recipient, at_us, body, content_type`.
fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let corrupt = |column: usize, what: String| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, what.into())
    };
    let room: Option<String> = row.get(0)?;
    let room = room.map(|r| RoomName::parse(&r, usize::MAX).map_err(|e| corrupt(0, e.to_string()))).transpose()?;
    let seq: i64 = row.get(1)?;
    let from: String = row.get(2)?;
    let from = Nick::parse(&from, usize::MAX).map_err(|e| corrupt(2, e.to_string()))?;
    let to: Option<String> = row.get(3)?;
    let to = to.map(|t| Nick::parse(&t, usize::MAX).map_err(|e| corrupt(3, e.to_string()))).transpose()?;
    let at_us: i64 = row.get(4)?;
    let at = DateTime::from_timestamp_micros(at_us).ok_or_else(|| corrupt(4, format!("bad time {at_us}")))?;
    let body: String = row.get(5)?;
    let kind = Kind::from_content_type(&row.get::<_, String>(6)?);
    Ok(Record { room, seq: u64::try_from(seq).unwrap_or(0), from, to, at, kind, text: body.into() })
}

impl Writer {
    fn append(&mut self, batch: &[Arc<Record>]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, sender, recipient, at_us, content_type, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut last_seq = tx.prepare_cached(
                "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            // Each room's last seq once per batch, not once per message.
            let mut last: Vec<(&str, i64)> = Vec::new();
            for r in batch {
                let room = r.room.as_ref().map(RoomName::as_str);
                let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
                let to = r.to.as_ref().map(Nick::as_str);
                insert.execute(params![
                    room,
                    seq,
                    r.from.as_str(),
                    to,
                    micros(r.at),
                    r.kind.content_type(),
                    &*r.text
                ])?;
                if let Some(room) = room {
                    match last.iter_mut().find(|(name, _)| *name == room) {
                        Some(entry) => entry.1 = entry.1.max(seq),
                        None => last.push((room, seq)),
                    }
                }
            }
            for (room, seq) in last {
                last_seq.execute(params![room, seq])?;
            }
        }
        tx.commit()?;
        self.unindexed += batch.len();
        if self.unindexed >= INDEX_CHUNK {
            if let Err(e) = self.index() {
                tracing::warn!("updating the search index failed (it is retried): {e}");
            }
        }
        if self.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(Instant::now());
            if let Err(e) = self.prune() {
                tracing::warn!("applying the history retention rules failed: {e}");
            }
        }
        Ok(())
    }

    /// Adds every message not yet in the search index to it, in one transaction.
    fn index(&mut self) -> rusqlite::Result<()> {
        if self.unindexed == 0 {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        let from: i64 = tx.query_row("SELECT indexed_up_to FROM fts_state", [], |row| row.get(0))?;
        let upto: i64 = tx.query_row("SELECT coalesce(max(id), ?1) FROM messages", [from], |row| row.get(0))?;
        tx.execute(
            "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE id > ?1 AND id <= ?2",
            [from, upto],
        )?;
        tx.execute("UPDATE fts_state SET indexed_up_to = ?1", [upto])?;
        tx.commit()?;
        self.unindexed = 0;
        Ok(())
    }

    /// Deletes what the retention rules no longer keep.
    fn prune(&self) -> rusqlite::Result<()> {
        let mut deleted = 0;
        if let Some(max_age) = self.retention.max_age {
            let cutoff = Utc::now() - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            deleted += self.conn.execute("DELETE FROM messages WHERE at_us < ?1", [micros(cutoff)])?;
        }
        if let Some(max) = self.retention.max_per_room {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            deleted += self.conn.execute(
                "DELETE FROM messages WHERE room IS NOT NULL
                 AND seq <= (SELECT last_seq FROM rooms WHERE rooms.name = messages.room) - ?1",
                [max],
            )?;
        }
        if deleted > 0 {
            tracing::info!(deleted, "old history deleted by the retention rules");
        }
        Ok(())
    }
}

impl SqliteStore {
    /// One page, oldest first, of the messages `filter` selects (SQL over the named
    /// parameters in `filter_params`), by seq as `cursor` says and never past `upto`.
    fn seq_page(
        &self,
        filter: &str,
        filter_params: &[(&str, &dyn rusqlite::ToSql)],
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let seq = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let end = seq(upto).saturating_add(1);
        let (after, before, newest_first) = match cursor {
            Cursor::Latest => (i64::MIN, end, true),
            Cursor::Before(before) => (i64::MIN, seq(before).min(end), true),
            Cursor::After(after) => (seq(after), end, false),
        };
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT room, seq, sender, recipient, at_us, body, content_type FROM messages
             WHERE {filter} AND seq > :after AND seq < :before ORDER BY seq {order} LIMIT :limit"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params = filter_params.to_vec();
        params.extend([(":after", &after as &dyn rusqlite::ToSql), (":before", &before), (":limit", &limit)]);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut records = stmt.query_map(params.as_slice(), record)?.collect::<Result<Vec<_>, _>>()?;
            if newest_first {
                records.reverse();
            }
            Ok(records)
        })
    }
}

impl Store for SqliteStore {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).append(batch).map_err(store_error)
    }

    fn rooms(&self, recent: usize) -> Result<Vec<RoomHistory>, StoreError> {
        let recent = i64::try_from(recent).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut rooms = conn.prepare("SELECT name, last_seq FROM rooms ORDER BY name")?;
            let mut latest = conn.prepare_cached(
                "SELECT room, seq, sender, recipient, at_us, body, content_type FROM messages
                 WHERE room = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let mut out = Vec::new();
            let listed: Vec<(String, i64)> =
                rooms.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
            for (name, last_seq) in listed {
                let Ok(room) = RoomName::parse(&name, usize::MAX) else {
                    tracing::warn!(room = name, "skipping a stored room whose name is no longer valid");
                    continue;
                };
                let mut messages: Vec<Record> =
                    latest.query_map(params![name, recent], record)?.collect::<Result<_, _>>()?;
                messages.reverse();
                out.push(RoomHistory { room, last_seq: u64::try_from(last_seq).unwrap_or(0), recent: messages });
            }
            Ok(out)
        })
    }

    fn moderation(&self) -> Result<Moderation, StoreError> {
        self.read(|conn| {
            let mut kept = Moderation::default();
            let mut stmt = conn.prepare("SELECT account FROM roles WHERE role = 'admin'")?;
            for name in stmt.query_map([], |row| row.get::<_, String>(0))? {
                kept.admins.push(nick_or_corrupt(&name?)?);
            }
            let mut stmt = conn.prepare("SELECT room, account FROM room_ops")?;
            for row in stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))? {
                let (room, account) = row?;
                kept.ops.push((room_or_corrupt(&room)?, nick_or_corrupt(&account)?));
            }
            let mut stmt = conn.prepare("SELECT room, ban, mask, until_us, reason FROM restrictions")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })?;
            for row in rows {
                let (room, ban, mask, until, reason) = row?;
                let Some(mask) = Mask::parse(&mask, usize::MAX) else {
                    continue;
                };
                kept.restrictions.push(parley_hub::Restriction {
                    room: room_or_corrupt(&room)?,
                    ban: ban != 0,
                    mask,
                    until: until.and_then(DateTime::from_timestamp_micros),
                    reason,
                });
            }
            let mut stmt = conn.prepare("SELECT room, topic, set_by, at_us FROM topics")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (room, topic, by, at) = row?;
                let at = DateTime::from_timestamp_micros(at).unwrap_or_default();
                kept.topics.push((room_or_corrupt(&room)?, topic, nick_or_corrupt(&by)?, at));
            }
            Ok(kept)
        })
    }

    fn record(&self, change: &Change) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = writer.conn.transaction().map_err(store_error)?;
        let room = change.room.as_str();
        let at = micros(change.at);
        let (target, detail): (String, Option<String>) = match &change.what {
            Changed::Topic(text) if text.is_empty() => {
                tx.execute("DELETE FROM topics WHERE room = ?1", [room]).map_err(store_error)?;
                (String::new(), None)
            }
            Changed::Topic(text) => {
                tx.execute(
                    "INSERT INTO topics (room, topic, set_by, at_us) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (room) DO UPDATE SET topic = excluded.topic, set_by = excluded.set_by, at_us = excluded.at_us",
                    params![room, text, change.actor.as_str(), at],
                )
                .map_err(store_error)?;
                (text.clone(), None)
            }
            Changed::Kicked { nick, reason } => (nick.to_string(), reason.clone()),
            Changed::Restricted(r) => {
                tx.execute(
                    "INSERT INTO restrictions (room, ban, mask, until_us, reason) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (room, ban, mask) DO UPDATE SET until_us = excluded.until_us, reason = excluded.reason",
                    params![room, i64::from(r.ban), r.mask.to_string(), r.until.map(micros), r.reason],
                )
                .map_err(store_error)?;
                let until = r.until.map(|t| format!("until {}", t.to_rfc3339()));
                let detail = match (&r.reason, until) {
                    (Some(reason), Some(until)) => Some(format!("{reason} ({until})")),
                    (reason, until) => reason.clone().or(until),
                };
                (r.mask.to_string(), detail)
            }
            Changed::Lifted { ban, mask } => {
                tx.execute(
                    "DELETE FROM restrictions WHERE room = ?1 AND ban = ?2 AND mask = ?3",
                    params![room, i64::from(*ban), mask.to_string()],
                )
                .map_err(store_error)?;
                (mask.to_string(), None)
            }
            Changed::Opped(account) => {
                tx.execute("INSERT OR IGNORE INTO room_ops (room, account) VALUES (?1, ?2)", [room, account.as_str()])
                    .map_err(store_error)?;
                (account.to_string(), None)
            }
            Changed::Deopped(account) => {
                tx.execute("DELETE FROM room_ops WHERE room = ?1 AND account = ?2", [room, account.as_str()])
                    .map_err(store_error)?;
                (account.to_string(), None)
            }
        };
        tx.execute(
            "INSERT INTO audit (at_us, actor, action, room, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![at, change.actor.as_str(), change.what.action(), room, target, detail],
        )
        .map_err(store_error)?;
        tx.commit().map_err(store_error)
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT at_us, actor, action, room, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map([limit], |row| {
                Ok(AuditLine {
                    at: DateTime::from_timestamp_micros(row.get(0)?).unwrap_or_default(),
                    actor: row.get(1)?,
                    action: row.get(2)?,
                    room: row.get(3)?,
                    target: row.get(4)?,
                    detail: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    fn is_admin(&self, account: &Nick) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT count(*) FROM roles WHERE account = ?1 AND role = 'admin'",
                [account.as_str()],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = self.read(|conn| {
            conn.query_row("SELECT coalesce(max(seq), 0) FROM messages WHERE room IS NULL", [], |row| row.get(0))
        })?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn conversation(
        &self,
        me: &Nick,
        with: &Nick,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (me, with) = (me.as_str(), with.as_str());
        self.seq_page(
            "room IS NULL
             AND ((sender = :me COLLATE NOCASE AND recipient = :with COLLATE NOCASE)
               OR (sender = :with COLLATE NOCASE AND recipient = :me COLLATE NOCASE))",
            &[(":me", &me), (":with", &with)],
            cursor,
            upto,
            limit,
        )
    }

    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let Some(matching) = fts_query(&search.words) else {
            return Ok(Vec::new());
        };
        let me = search.private_of.as_ref().map(Nick::as_str);
        let from = search.from.as_ref().map(Nick::as_str);
        let before = search.before.map_or(i64::MAX, micros);
        let after = search.after.map_or(i64::MIN, micros);
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(search.offset).unwrap_or(i64::MAX);
        // Which messages the user may see: their rooms (one placeholder each, after the
        // seven fixed ones), and their own private ones.
        let rooms: Vec<String> = (0..search.rooms.len()).map(|i| format!("?{}", i + 8)).collect();
        // Whatever waits for the index goes in first, so a search sees every message.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).index().map_err(store_error)?;
        // Ranked among the newest matches the user may see: FTS5 walks its matches newest
        // first and stops after CANDIDATES, so a common word costs no more than a rare
        // one; then bm25 orders those. In a chat, the newest of many matches are the
        // ones wanted; a narrower query reaches further back.
        let sql = format!(
            "SELECT room, seq, sender, recipient, at_us, body, content_type FROM (
                 SELECT m.id AS id, m.room AS room, m.seq AS seq, m.sender AS sender,
                        m.recipient AS recipient, m.at_us AS at_us, m.body AS body, m.content_type AS content_type,
                        bm25(messages_fts) AS score
                 FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                 WHERE messages_fts MATCH ?1
                   AND (m.room IN ({})
                        OR (m.room IS NULL AND ?2 IS NOT NULL
                            AND (m.sender = ?2 COLLATE NOCASE OR m.recipient = ?2 COLLATE NOCASE)))
                   AND (?3 IS NULL OR m.sender = ?3 COLLATE NOCASE)
                   AND m.at_us < ?4 AND m.at_us >= ?5
                 ORDER BY messages_fts.rowid DESC
                 LIMIT {CANDIDATES}
             )
             ORDER BY score, id DESC
             LIMIT ?6 OFFSET ?7",
            rooms.join(", ")
        );
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&matching, &me, &from, &before, &after, &limit, &offset];
        let names: Vec<&str> = search.rooms.iter().map(RoomName::as_str).collect();
        values.extend(names.iter().map(|n| n as &dyn rusqlite::ToSql));
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(values.as_slice(), record)?;
            rows.collect()
        })
    }

    fn accounts(&self) -> Result<Vec<Nick>, StoreError> {
        let names = self.list_accounts()?;
        Ok(names.into_iter().filter_map(|a| Nick::parse(&a.name, usize::MAX).ok()).collect())
    }

    fn register(&self, name: &Nick, password: &str) -> Result<bool, StoreError> {
        // Hashed before the writer is locked: hashing is slow on purpose, and the
        // journal must not wait for it.
        let hash = password::hash(password).map_err(StoreError)?;
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let inserted = writer.conn.execute(
            "INSERT INTO accounts (name, password_hash, created_us) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
            params![name.as_str(), hash, micros(Utc::now())],
        );
        inserted.map(|n| n > 0).map_err(store_error)
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        let stored: Option<(String, String)> = self.read(|conn| {
            conn.query_row("SELECT name, password_hash FROM accounts WHERE name = ?1", [name.as_str()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
        })?;
        Ok(match stored {
            None => Verdict::NoAccount,
            Some((_, hash)) if !password::matches(password, &hash) => Verdict::Wrong,
            Some((account, _)) => Verdict::Right(Nick::parse(&account, usize::MAX).unwrap_or_else(|_| name.clone())),
        })
    }

    fn set_password(&self, name: &Nick, password: &str) -> Result<bool, StoreError> {
        let hash = password::hash(password).map_err(StoreError)?;
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let updated =
            writer.conn.execute("UPDATE accounts SET password_hash = ?2 WHERE name = ?1", params![name.as_str(), hash]);
        updated.map(|n| n > 0).map_err(store_error)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        let room = page.room.as_str();
        self.seq_page("room = :room", &[(":room", &room)], page.cursor, page.upto, page.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
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

    fn said(room: &str, seq: u64, text: &str) -> Arc<Record> {
        Arc::new(Record {
            room: Some(RoomName::parse(room, 32).expect("room")),
            seq,
            from: Nick::parse("ada", 32).expect("nick"),
            to: None,
            at: Utc::now(),
            kind: Kind::Text,
            text: text.into(),
        })
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    fn page(cursor: Cursor, upto: u64, limit: usize) -> Page {
        Page { room: RoomName::parse("Lobby", 32).expect("room"), cursor, upto, limit }
    }

    #[test]
    fn messages_survive_reopening_and_page_by_seq() {
        let dir = TempDir::new("reopen");
        {
            let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
            let batch: Vec<_> = (1..=10).map(|n| said("lobby", n, &format!("m{n}"))).collect();
            store.append(&batch).expect("appends");
            let whisper = Record {
                room: None,
                seq: 0,
                to: Some(Nick::parse("bob", 32).expect("nick")),
                ..(*said("lobby", 0, "psst")).clone()
            };
            store.append(&[Arc::new(whisper)]).expect("appends");
        }
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("reopens");
        let rooms = store.rooms(3).expect("rooms");
        assert_eq!(rooms.len(), 1, "private messages belong to no room");
        assert_eq!((rooms[0].room.as_str(), rooms[0].last_seq), ("lobby", 10));
        assert_eq!(seqs(&rooms[0].recent), [8, 9, 10]);
        assert_eq!(&*rooms[0].recent[2].text, "m10");
        assert_eq!(seqs(&store.page(&page(Cursor::Latest, 10, 4)).expect("page")), [7, 8, 9, 10]);
        assert_eq!(seqs(&store.page(&page(Cursor::Latest, 8, 2)).expect("page")), [7, 8], "never past upto");
        assert_eq!(seqs(&store.page(&page(Cursor::Before(5), 10, 3)).expect("page")), [2, 3, 4]);
        assert_eq!(seqs(&store.page(&page(Cursor::After(7), 9, 10)).expect("page")), [8, 9]);
        let duplicate = store.append(&[said("lobby", 10, "again")]);
        assert!(duplicate.is_err(), "a seq is stored once");
    }

    #[test]
    fn retention_keeps_the_newest_per_room_and_the_order_continues() {
        let dir = TempDir::new("retention");
        let retention = Retention { max_per_room: Some(3), ..Retention::default() };
        let store = SqliteStore::open(&dir.0, retention).expect("opens");
        let batch: Vec<_> = (1..=8).map(|n| said("lobby", n, "x")).collect();
        store.append(&batch).expect("appends");
        let rooms = store.rooms(50).expect("rooms");
        assert_eq!(seqs(&rooms[0].recent), [6, 7, 8]);
        assert_eq!(rooms[0].last_seq, 8);
        // The search index holds exactly what is left, before and after indexing.
        let search = Search {
            words: vec!["x".into()],
            from: None,
            rooms: vec![RoomName::parse("lobby", 32).expect("room")],
            private_of: None,
            before: None,
            after: None,
            limit: 50,
            offset: 0,
        };
        assert_eq!(store.search(&search).expect("searches").len(), 3);
        let more: Vec<_> = (9..=12).map(|n| said("lobby", n, "x")).collect();
        store.append(&more).expect("appends");
        store.writer.lock().expect("lock").prune().expect("prunes");
        let mut found = store.search(&search).expect("searches");
        found.sort_by_key(|r| r.seq);
        assert_eq!(seqs(&found), [10, 11, 12]);
    }

    #[test]
    fn accounts_are_registered_once_verified_and_changed() {
        let dir = TempDir::new("accounts");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let ada = Nick::parse("Ada", 32).expect("nick");
        assert!(store.register(&ada, "first password").expect("registers"));
        let lower = Nick::parse("ada", 32).expect("nick");
        assert!(!store.register(&lower, "another").expect("answers"), "names ignore case");
        let right = store.verify(&lower, "first password").expect("verifies");
        assert!(matches!(&right, Verdict::Right(name) if name.as_str() == "Ada"), "as registered: {right:?}");
        assert_eq!(store.verify(&ada, "wrong").expect("verifies"), Verdict::Wrong);
        assert_eq!(store.verify(&Nick::parse("bob", 32).expect("nick"), "x").expect("verifies"), Verdict::NoAccount);
        assert!(store.set_password(&ada, "second password").expect("changes"));
        assert_eq!(store.verify(&ada, "first password").expect("verifies"), Verdict::Wrong);
        assert!(matches!(store.verify(&ada, "second password").expect("verifies"), Verdict::Right(_)));
        assert_eq!(store.accounts().expect("lists"), std::slice::from_ref(&ada));
        assert!(store.delete_account(&lower).expect("deletes"));
        assert!(store.list_accounts().expect("lists").is_empty());
    }

    #[test]
    fn search_finds_every_word_only_where_the_user_may_look() {
        let dir = TempDir::new("search");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let nick = |n: &str| Nick::parse(n, 32).expect("nick");
        let room = |r: &str| RoomName::parse(r, 32).expect("room");
        let mut batch: Vec<Arc<Record>> = vec![
            said("lobby", 1, "The deploy went fine"),
            said("lobby", 2, "no deploy today, the café is closed"),
            said("ops", 1, "deploy failed: disk full"),
            said("lobby", 3, "unrelated chatter"),
        ];
        let whisper = |from: &str, to: &str, text: &str| {
            Arc::new(Record {
                room: None,
                seq: 0,
                from: nick(from),
                to: Some(nick(to)),
                ..(*said("x", 0, text)).clone()
            })
        };
        batch.push(whisper("ada", "bob", "secret deploy plan"));
        batch.push(whisper("carol", "dave", "their deploy secret"));
        store.append(&batch).expect("appends");
        let search = |words: &[&str], rooms: &[&str], me: Option<&str>| Search {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            from: None,
            rooms: rooms.iter().map(|r| room(r)).collect(),
            private_of: me.map(nick),
            before: None,
            after: None,
            limit: 10,
            offset: 0,
        };
        let texts = |s: &Search| -> Vec<String> {
            let mut found: Vec<String> =
                store.search(s).expect("searches").iter().map(|r| r.text.to_string()).collect();
            found.sort();
            found
        };
        assert_eq!(
            texts(&search(&["DEPLOY"], &["lobby"], None)),
            ["The deploy went fine", "no deploy today, the café is closed"]
        );
        assert_eq!(
            texts(&search(&["deploy", "cafe"], &["lobby"], None)),
            ["no deploy today, the café is closed"],
            "accents"
        );
        assert_eq!(
            texts(&search(&["deploy"], &["ops"], Some("bob"))),
            ["deploy failed: disk full", "secret deploy plan"]
        );
        assert!(texts(&search(&["deploy"], &[], None)).is_empty(), "no rooms, no account: nothing");
        assert_eq!(texts(&search(&["deploy"], &[], Some("Dave"))), ["their deploy secret"], "only their own");
        assert!(texts(&search(&["\"deploy", "OR", "*"], &["lobby"], None)).is_empty(), "syntax is only words");
        let mut from_ada = search(&["deploy"], &["lobby", "ops"], Some("bob"));
        from_ada.from = Some(nick("ADA"));
        assert_eq!(
            texts(&from_ada),
            [
                "The deploy went fine",
                "deploy failed: disk full",
                "no deploy today, the café is closed",
                "secret deploy plan"
            ]
        );
        let mut paged = search(&["deploy"], &["lobby", "ops"], None);
        paged.limit = 2;
        assert_eq!(store.search(&paged).expect("searches").len(), 2);
        paged.offset = 2;
        assert_eq!(store.search(&paged).expect("searches").len(), 1);
        let mut later = search(&["deploy"], &["lobby", "ops"], None);
        later.after = Some(Utc::now() + chrono::Duration::hours(1));
        assert!(texts(&later).is_empty());
    }

    #[test]
    fn export_streams_a_room_and_refuses_an_unknown_one() {
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
