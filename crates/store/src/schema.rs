//! The schema, as migrations embedded in the binary and applied in order on open. The
//! database's `user_version` counts those applied; a database from a newer Parley is
//! refused rather than misread.

use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Append only: a
/// migration that has shipped never changes.
const MIGRATIONS: &[&str] = &[
    // 1: room and private messages, and each room's last seq (which outlives pruning,
    // so a room's order never restarts).
    "CREATE TABLE messages (
        id           INTEGER PRIMARY KEY,
        room         TEXT COLLATE NOCASE,
        seq          INTEGER NOT NULL,
        sender       TEXT NOT NULL,
        recipient    TEXT,
        at_us        INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        body         TEXT NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX messages_by_room ON messages (room, seq) WHERE room IS NOT NULL;
    CREATE INDEX messages_private ON messages (sender COLLATE NOCASE, recipient COLLATE NOCASE, id)
        WHERE room IS NULL;
    CREATE INDEX messages_by_time ON messages (at_us);
    CREATE TABLE rooms (
        name     TEXT PRIMARY KEY COLLATE NOCASE,
        last_seq INTEGER NOT NULL
    ) STRICT;",
    // 2: accounts. The password hash is a PHC string (argon2id with its parameters and
    // salt), so the parameters can change without a migration.
    "CREATE TABLE accounts (
        name          TEXT PRIMARY KEY COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        created_us    INTEGER NOT NULL
    ) STRICT;",
    // 3: full-text search over message bodies, an external-content FTS5 index kept by
    // triggers in the same transaction as the messages (so it is never behind), and
    // built for the messages already stored.
    "CREATE VIRTUAL TABLE messages_fts USING fts5(
        body, content = 'messages', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');",
    // 4: the search index is brought up to date in large chunks instead of one message
    // at a time (indexing in bulk costs a fifth as much), so it trails the messages:
    // `fts_state` says how far it goes, and only indexed messages are removed from it.
    "DROP TRIGGER messages_fts_insert;
    DROP TRIGGER messages_fts_delete;
    CREATE TABLE fts_state (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_up_to INTEGER NOT NULL
    ) STRICT;
    INSERT INTO fts_state (id, indexed_up_to) VALUES (1, (SELECT coalesce(max(id), 0) FROM messages));
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.id <= (SELECT indexed_up_to FROM fts_state) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;",
    // 5: moderation. Server admins, room operators, bans and mutes (by nick or address,
    // until a time or lifted), topics, and the audit log of every action.
    "CREATE TABLE roles (
        account TEXT NOT NULL COLLATE NOCASE,
        role    TEXT NOT NULL,
        PRIMARY KEY (account, role)
    ) STRICT;
    CREATE TABLE room_ops (
        room    TEXT NOT NULL COLLATE NOCASE,
        account TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (room, account)
    ) STRICT;
    CREATE TABLE restrictions (
        room       TEXT NOT NULL COLLATE NOCASE,
        ban        INTEGER NOT NULL,
        mask       TEXT NOT NULL COLLATE NOCASE,
        until_us   INTEGER,
        reason     TEXT,
        PRIMARY KEY (room, ban, mask)
    ) STRICT;
    CREATE TABLE topics (
        room   TEXT PRIMARY KEY COLLATE NOCASE,
        topic  TEXT NOT NULL,
        set_by TEXT NOT NULL,
        at_us  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at_us  INTEGER NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        room   TEXT,
        target TEXT,
        detail TEXT
    ) STRICT;",
];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The file was written by a newer Parley.
    #[error("the database has schema version {found}, newer than this Parley's {known}; upgrade Parley")]
    TooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema version this build writes.
pub(crate) fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Applies every migration the database lacks, each in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > latest() {
        return Err(MigrateError::TooNew { found, known: latest() });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = version + 1, "database schema migrated");
    }
    Ok(())
}
