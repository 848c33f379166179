//! Moving a node's SQLite database into PostgreSQL (`parley admin migrate --to`):
//! accounts with their ids and password hashes, roles, registered rooms with their
//! operators, settings, bans and topics, server bans, the audit log, every message with
//! its seq, and each room's last seq.
//!
//! All of it goes in one transaction, into a database that must hold nothing yet: a
//! migration either happens whole or leaves the target as it was, and running it again
//! on a database already in use is refused instead of mixing two servers' data.

use parley_hub::{Nick, RoomName};
use rusqlite::params;
use tokio_postgres::Transaction;

use super::{describe, Failure, PostgresStore};
use crate::SqliteStore;

/// Messages copied per statement: a page read from SQLite, one insert into PostgreSQL.
const PAGE: i64 = 5000;

/// What a migration moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Accounts.
    pub accounts: u64,
    /// Room and private messages.
    pub messages: u64,
    /// Registered rooms, the lobby included.
    pub rooms: u64,
    /// Server bans.
    pub server_bans: u64,
    /// Lines of the audit log.
    pub audit: u64,
}

/// Why a migration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The target holds data already.
    #[error(
        "the PostgreSQL database {target} is not empty ({holds}); migrate into a new, empty database \
         (nothing was changed)"
    )]
    NotEmpty {
        /// Where, without the password.
        target: String,
        /// What it holds.
        holds: String,
    },
    /// Reading the SQLite database failed.
    #[error("reading the SQLite database failed: {0}")]
    Read(String),
    /// Writing into PostgreSQL failed; the transaction was rolled back.
    #[error("writing into PostgreSQL failed (nothing was kept): {0}")]
    Write(String),
}

/// A name's key by the hub's rules; a stored name that no longer parses keeps the key it
/// was stored under.
fn nick_key(name: &str) -> String {
    Nick::parse(name, usize::MAX).map_or_else(|_| name.to_lowercase(), |n| n.key())
}

fn room_key(name: &str) -> String {
    RoomName::parse(name, usize::MAX).map_or_else(|_| name.to_lowercase(), |r| r.key())
}

/// A stored mask's key, as the store compares masks.
fn mask_key(mask: &str) -> String {
    parley_hub::Mask::parse(mask, usize::MAX).map_or_else(|| mask.to_lowercase(), |m| super::moderation::mask_key(&m))
}

fn sqlite<T>(result: Result<T, parley_hub::StoreError>) -> Result<T, ImportError> {
    result.map_err(|e| ImportError::Read(e.to_string()))
}

impl From<Failure> for ImportError {
    fn from(e: Failure) -> ImportError {
        ImportError::Write(e.to_string())
    }
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> ImportError {
        ImportError::Write(describe(&e))
    }
}

/// What the target holds, if anything ("3 messages, 1 account").
async fn holdings(tx: &Transaction<'_>) -> Result<Option<String>, ImportError> {
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM accounts),
                    (SELECT count(*) FROM registered_rooms WHERE key <> 'lobby'), (SELECT count(*) FROM audit),
                    (SELECT count(*) FROM server_bans), (SELECT count(*) FROM rooms)",
            &[],
        )
        .await?;
    let names = ["messages", "accounts", "registered rooms", "audit lines", "server bans", "rooms"];
    let mut held = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let n: i64 = row.try_get(i)?;
        if n > 0 {
            held.push(format!("{n} {name}"));
        }
    }
    Ok((!held.is_empty()).then(|| held.join(", ")))
}

impl PostgresStore {
    /// Copies everything `from` keeps into this database, which must be empty, in one
    /// transaction. Shared files are not in the database: they stay in the data
    /// directory.
    pub fn import(&self, from: &SqliteStore) -> Result<Imported, ImportError> {
        let mut writer = self.writer();
        let target = self.target.clone();
        // No call timeout: a large history takes as long as it takes.
        self.block_on_unbounded(async {
            let client = writer.connect(self).await?;
            let tx = client.transaction().await?;
            // Nobody else may write while the copy runs (a server started too early).
            tx.batch_execute(
                "LOCK TABLE messages, rooms, accounts, roles, registered_rooms, room_ops, restrictions, topics,
                      server_bans, audit IN EXCLUSIVE MODE",
            )
            .await?;
            if let Some(holds) = holdings(&tx).await? {
                return Err(ImportError::NotEmpty { target, holds });
            }
            let accounts = accounts(&tx, from).await?;
            let (rooms, server_bans) = moderation(&tx, from).await?;
            let audit = audit(&tx, from).await?;
            let messages = messages(&tx, from).await?;
            tx.commit().await?;
            Ok(Imported { accounts, messages, rooms, server_bans, audit })
        })
        .map_err(ImportError::from)?
    }
}

async fn accounts(tx: &Transaction<'_>, from: &SqliteStore) -> Result<u64, ImportError> {
    let (accounts, last_id, roles) = sqlite(from.read(|conn| {
        let mut stmt = conn.prepare("SELECT id, name, password_hash, created_us FROM accounts ORDER BY id")?;
        let accounts: Vec<(i64, String, String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
        // AUTOINCREMENT's high-water mark: ids of deleted accounts are never given again.
        let last_id: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'accounts'", [], |r| r.get(0))
            .unwrap_or(0);
        let mut stmt = conn.prepare("SELECT account, role FROM roles")?;
        let roles: Vec<(i64, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok((accounts, last_id, roles))
    }))?;
    let insert = tx
        .prepare("INSERT INTO accounts (id, name, key, password_hash, created_us) VALUES ($1, $2, $3, $4, $5)")
        .await?;
    for (id, name, hash, created_us) in &accounts {
        tx.execute(&insert, &[id, name, &nick_key(name), hash, created_us]).await?;
    }
    let high = accounts.iter().map(|a| a.0).max().unwrap_or(0).max(last_id);
    if high > 0 {
        tx.execute("SELECT setval(pg_get_serial_sequence('accounts', 'id'), $1)", &[&high]).await?;
    }
    for (account, role) in &roles {
        tx.execute("INSERT INTO roles (account, role) VALUES ($1, $2)", &[account, role]).await?;
    }
    let markers = sqlite(from.read(|conn| {
        let mut stmt = conn.prepare("SELECT account, target, at_us FROM read_markers")?;
        let markers: Vec<(i64, String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        Ok(markers)
    }))?;
    for (account, target, at_us) in &markers {
        tx.execute("INSERT INTO read_markers (account, target, at_us) VALUES ($1, $2, $3)", &[account, target, at_us])
            .await?;
    }
    // Resume tokens go along, so that nobody is logged out by the move (their ids are
    // new: a token's id only names it in its account's list).
    let tokens = sqlite(from.read(|conn| {
        let mut stmt =
            conn.prepare("SELECT account, hash, created_us, used_us, description FROM session_tokens ORDER BY id")?;
        let tokens: Vec<(i64, Vec<u8>, i64, i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<Result<_, _>>()?;
        Ok(tokens)
    }))?;
    for (account, hash, created_us, used_us, description) in &tokens {
        tx.execute(
            "INSERT INTO session_tokens (account, hash, created_us, used_us, description) VALUES ($1, $2, $3, $4, $5)",
            &[account, hash, created_us, used_us, description],
        )
        .await?;
    }
    Ok(accounts.len() as u64)
}

/// A registered room's row, as SQLite keeps it.
type RoomRow = (String, String, Option<i64>, i64, i64, bool, bool, bool, bool, Option<String>, Option<i64>, bool);

async fn moderation(tx: &Transaction<'_>, from: &SqliteStore) -> Result<(u64, u64), ImportError> {
    #[allow(clippy::type_complexity)]
    let (rooms, ops, restrictions, topics, bans): (
        Vec<RoomRow>,
        Vec<(String, i64)>,
        Vec<(String, bool, String, Option<i64>, Option<String>, Option<String>, Option<i64>)>,
        Vec<(String, String, String, i64)>,
        Vec<(String, Option<i64>, Option<String>)>,
    ) = sqlite(from.read(|conn| {
        let mut stmt = conn.prepare(
            "SELECT key, name, founder, registered_us, since, moderated, secret, topic_locked, invite_only, room_key,
                    member_limit, private
             FROM registered_rooms",
        )?;
        let rooms = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT room, account FROM room_ops")?;
        let ops = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT room, ban, mask, until_us, reason, set_by, set_at_us FROM restrictions")?;
        let restrictions = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT room, topic, set_by, at_us FROM topics")?;
        let topics =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT mask, until_us, reason FROM server_bans")?;
        let bans = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        Ok((rooms, ops, restrictions, topics, bans))
    }))?;
    for (_, name, founder, registered_us, since, moderated, secret, topic_locked, invite_only, key, limit, private) in
        &rooms
    {
        // The lobby's row exists already (the schema makes it): the one kept wins.
        tx.execute(
            "INSERT INTO registered_rooms
                 (key, name, founder, registered_us, since, moderated, secret, topic_locked, invite_only, room_key,
                  member_limit, private)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (key) DO UPDATE SET name = excluded.name, founder = excluded.founder,
                 registered_us = excluded.registered_us, since = excluded.since, moderated = excluded.moderated,
                 secret = excluded.secret, topic_locked = excluded.topic_locked, invite_only = excluded.invite_only,
                 room_key = excluded.room_key, member_limit = excluded.member_limit, private = excluded.private",
            &[
                &room_key(name),
                name,
                founder,
                registered_us,
                since,
                moderated,
                secret,
                topic_locked,
                invite_only,
                key,
                limit,
                private,
            ],
        )
        .await?;
    }
    for (room, account) in &ops {
        tx.execute(
            "INSERT INTO room_ops (room, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&room_key(room), account],
        )
        .await?;
    }
    for (room, ban, mask, until_us, reason, set_by, set_at_us) in &restrictions {
        tx.execute(
            "INSERT INTO restrictions (room, ban, mask, mask_key, until_us, reason, set_by, set_at_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
            &[&room_key(room), ban, mask, &mask_key(mask), until_us, reason, set_by, set_at_us],
        )
        .await?;
    }
    for (room, topic, set_by, at_us) in &topics {
        tx.execute(
            "INSERT INTO topics (room, topic, set_by, at_us) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&room_key(room), topic, set_by, at_us],
        )
        .await?;
    }
    for (mask, until_us, reason) in &bans {
        tx.execute(
            "INSERT INTO server_bans (mask_key, mask, until_us, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&mask_key(mask), mask, until_us, reason],
        )
        .await?;
    }
    Ok((rooms.len() as u64, bans.len() as u64))
}

async fn audit(tx: &Transaction<'_>, from: &SqliteStore) -> Result<u64, ImportError> {
    #[allow(clippy::type_complexity)]
    let lines: Vec<(i64, String, String, Option<String>, Option<String>, Option<String>)> =
        sqlite(from.read(|conn| {
            let mut stmt = conn.prepare("SELECT at_us, actor, action, room, target, detail FROM audit ORDER BY id")?;
            let lines = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?
                .collect::<Result<_, _>>()?;
            Ok(lines)
        }))?;
    // In order: the new ids keep it.
    let insert = tx
        .prepare("INSERT INTO audit (at_us, actor, action, room, target, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .await?;
    for (at_us, actor, action, room, target, detail) in &lines {
        tx.execute(&insert, &[at_us, actor, action, room, target, detail]).await?;
    }
    Ok(lines.len() as u64)
}

/// A message's row, as SQLite keeps it.
type MessageRow = (i64, Option<String>, i64, String, i64, Option<String>, i64, i64, String, String, Option<String>);

async fn messages(tx: &Transaction<'_>, from: &SqliteStore) -> Result<u64, ImportError> {
    let insert = tx
        .prepare(
            "INSERT INTO messages
                (room, room_key, seq, sender, sender_key, sender_party, recipient, recipient_party, at_us,
                 content_type, body, meta)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                                  $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[])",
        )
        .await?;
    let mut after = 0i64;
    let mut copied = 0u64;
    loop {
        let page: Vec<MessageRow> = sqlite(from.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, room, seq, sender, sender_party, recipient, recipient_party, at_us, content_type, body,
                        meta
                 FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, PAGE], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        }))?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.0;
        let room: Vec<Option<&str>> = page.iter().map(|m| m.1.as_deref()).collect();
        let room_keys: Vec<Option<String>> = page.iter().map(|m| m.1.as_deref().map(room_key)).collect();
        let seq: Vec<i64> = page.iter().map(|m| m.2).collect();
        let sender: Vec<&str> = page.iter().map(|m| m.3.as_str()).collect();
        let sender_keys: Vec<String> = page.iter().map(|m| nick_key(&m.3)).collect();
        let sender_party: Vec<i64> = page.iter().map(|m| m.4).collect();
        let recipient: Vec<Option<&str>> = page.iter().map(|m| m.5.as_deref()).collect();
        let recipient_party: Vec<i64> = page.iter().map(|m| m.6).collect();
        let at_us: Vec<i64> = page.iter().map(|m| m.7).collect();
        let content_type: Vec<&str> = page.iter().map(|m| m.8.as_str()).collect();
        let body: Vec<&str> = page.iter().map(|m| m.9.as_str()).collect();
        let meta: Vec<Option<&str>> = page.iter().map(|m| m.10.as_deref()).collect();
        tx.execute(
            &insert,
            &[
                &room,
                &room_keys,
                &seq,
                &sender,
                &sender_keys,
                &sender_party,
                &recipient,
                &recipient_party,
                &at_us,
                &content_type,
                &body,
                &meta,
            ],
        )
        .await?;
        copied += page.len() as u64;
    }
    // Each room's last seq, which outlives pruning.
    let rooms: Vec<(String, i64)> = sqlite(from.read(|conn| {
        let mut stmt = conn.prepare("SELECT name, last_seq FROM rooms")?;
        let rooms = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rooms)
    }))?;
    for (name, last_seq) in &rooms {
        tx.execute(
            "INSERT INTO rooms (key, name, last_seq) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET last_seq = greatest(rooms.last_seq, excluded.last_seq)",
            &[&room_key(name), name, last_seq],
        )
        .await?;
    }
    Ok(copied)
}
