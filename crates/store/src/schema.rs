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
    // 6: identity is an id, not a name. Accounts get stable ids (AUTOINCREMENT: never
    // reused, so a name deleted and registered again is a new account) and a unique key
    // (the name as compared); roles and operator places name the id. Private messages
    // name their parties (accounts positive, guest sessions negative, 0 unknown): a
    // private message kept from before is bound to an account only if it was said after
    // that account was registered (before, the nick could have been anyone's). Rooms
    // that had operators were durable already: they become registered rooms, founded by
    // their first operator, keeping all their history, and the lobby is the server's.
    // Other rooms' topics and bans went with their members. Bans in the lobby kept
    // people off the server: they become server bans.
    "CREATE TABLE accounts_v6 (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT NOT NULL,
        key           TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_us    INTEGER NOT NULL
    ) STRICT;
    INSERT INTO accounts_v6 (name, key, password_hash, created_us)
        SELECT name, lower(name), password_hash, created_us FROM accounts ORDER BY created_us, name;
    DROP TABLE accounts;
    ALTER TABLE accounts_v6 RENAME TO accounts;

    CREATE TABLE roles_v6 (
        account INTEGER NOT NULL,
        role    TEXT NOT NULL,
        PRIMARY KEY (account, role)
    ) STRICT;
    INSERT OR IGNORE INTO roles_v6 (account, role)
        SELECT a.id, r.role FROM roles r JOIN accounts a ON a.key = lower(r.account);
    DROP TABLE roles;
    ALTER TABLE roles_v6 RENAME TO roles;

    CREATE TABLE registered_rooms (
        key           TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        founder       INTEGER,
        registered_us INTEGER NOT NULL,
        since         INTEGER NOT NULL,
        moderated     INTEGER NOT NULL DEFAULT 0,
        secret        INTEGER NOT NULL DEFAULT 0,
        topic_locked  INTEGER NOT NULL DEFAULT 1,
        invite_only   INTEGER NOT NULL DEFAULT 0,
        room_key      TEXT,
        member_limit  INTEGER
    ) STRICT;
    INSERT INTO registered_rooms (key, name, founder, registered_us, since)
        SELECT lower(o.room), min(o.room), min(a.id), unixepoch() * 1000000, 0
        FROM room_ops o JOIN accounts a ON a.key = lower(o.account)
        GROUP BY lower(o.room);
    INSERT OR IGNORE INTO registered_rooms (key, name, founder, registered_us, since)
        VALUES ('lobby', 'lobby', NULL, unixepoch() * 1000000, 0);
    UPDATE registered_rooms SET founder = NULL WHERE key = 'lobby';

    CREATE TABLE room_ops_v6 (
        room    TEXT NOT NULL,
        account INTEGER NOT NULL,
        PRIMARY KEY (room, account)
    ) STRICT;
    INSERT OR IGNORE INTO room_ops_v6 (room, account)
        SELECT lower(o.room), a.id FROM room_ops o JOIN accounts a ON a.key = lower(o.account);
    DROP TABLE room_ops;
    ALTER TABLE room_ops_v6 RENAME TO room_ops;

    CREATE TABLE server_bans (
        mask     TEXT PRIMARY KEY COLLATE NOCASE,
        until_us INTEGER,
        reason   TEXT
    ) STRICT;
    INSERT OR REPLACE INTO server_bans (mask, until_us, reason)
        SELECT mask, until_us, reason FROM restrictions WHERE lower(room) = 'lobby' AND ban = 1;
    CREATE TABLE restrictions_v6 (
        room     TEXT NOT NULL,
        ban      INTEGER NOT NULL,
        mask     TEXT NOT NULL COLLATE NOCASE,
        until_us INTEGER,
        reason   TEXT,
        PRIMARY KEY (room, ban, mask)
    ) STRICT;
    INSERT OR IGNORE INTO restrictions_v6 (room, ban, mask, until_us, reason)
        SELECT lower(room), ban, mask, until_us, reason FROM restrictions
        WHERE lower(room) IN (SELECT key FROM registered_rooms) AND NOT (lower(room) = 'lobby' AND ban = 1);
    DROP TABLE restrictions;
    ALTER TABLE restrictions_v6 RENAME TO restrictions;

    CREATE TABLE topics_v6 (
        room   TEXT PRIMARY KEY,
        topic  TEXT NOT NULL,
        set_by TEXT NOT NULL,
        at_us  INTEGER NOT NULL
    ) STRICT;
    INSERT OR IGNORE INTO topics_v6 (room, topic, set_by, at_us)
        SELECT lower(room), topic, set_by, at_us FROM topics WHERE lower(room) IN (SELECT key FROM registered_rooms);
    DROP TABLE topics;
    ALTER TABLE topics_v6 RENAME TO topics;

    ALTER TABLE messages ADD COLUMN sender_party INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN recipient_party INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET
        sender_party = coalesce((SELECT a.id FROM accounts a
            WHERE a.key = lower(messages.sender) AND a.created_us <= messages.at_us), 0),
        recipient_party = coalesce((SELECT a.id FROM accounts a
            WHERE a.key = lower(messages.recipient) AND a.created_us <= messages.at_us), 0)
        WHERE room IS NULL;
    DROP INDEX messages_private;
    CREATE INDEX messages_private ON messages (sender_party, recipient_party, seq) WHERE room IS NULL;",
    // 7: facts about the file itself. `schema_release` is the release that brought the
    // schema to its version, the oldest that can read it, so that an older release
    // refusing the file can say which one it needs.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;",
    // 8: read markers: where each account read up to in a room (`#` and the room's key) or
    // a conversation (`@` and the other party), as an instant.
    "CREATE TABLE read_markers (
        account INTEGER NOT NULL,
        target  TEXT NOT NULL,
        at_us   INTEGER NOT NULL,
        PRIMARY KEY (account, target)
    ) STRICT, WITHOUT ROWID;",
    // 9: what a message carries beside its text (the message it answers, client tags),
    // as JSON, NULL for the many messages without; a registered room's private setting
    // (`+p`); who set a ban or mute, and when (NULL for those kept before).
    "ALTER TABLE messages ADD COLUMN meta TEXT;
    ALTER TABLE registered_rooms ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE restrictions ADD COLUMN set_by TEXT;
    ALTER TABLE restrictions ADD COLUMN set_at_us INTEGER;",
    // 10: resume tokens, kept as their SHA-256: whose, when issued and last used, and
    // where issued (gateway, address, user agent). Ids are never reused
    // (AUTOINCREMENT), so revoking by id never hits a later token.
    "CREATE TABLE session_tokens (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account     INTEGER NOT NULL,
        hash        BLOB NOT NULL UNIQUE,
        created_us  INTEGER NOT NULL,
        used_us     INTEGER NOT NULL,
        description TEXT NOT NULL
    ) STRICT;
    CREATE INDEX session_tokens_by_account ON session_tokens (account, used_us);",
];

/// This release, as the database records it.
const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The file was written by a newer Parley.
    #[error(
        "the database has schema version {found}{}, and this is Parley {RELEASE}, which reads versions up to {known}: \
         it needs {}",
        needs.as_ref().map(|r| format!(", written by Parley {r}")).unwrap_or_default(),
        needs.as_ref().map_or_else(|| "a newer Parley".to_owned(), |r| format!("Parley {r} or later"))
    )]
    TooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
        /// The oldest release that reads it, as the database records it.
        needs: Option<String>,
    },
    /// SQLite failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The schema version this build writes (and the newest it reads).
#[must_use]
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub(crate) fn latest() -> i64 {
    schema_version()
}

/// The database's schema version, refused if it is newer than this build's.
pub(crate) fn check_version(conn: &Connection) -> Result<i64, MigrateError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > latest() {
        // A database of a release from before `meta` cannot be newer than this one,
        // but a damaged one may lack it: then the message says less.
        let needs = conn.query_row("SELECT value FROM meta WHERE key = 'schema_release'", [], |row| row.get(0)).ok();
        return Err(MigrateError::TooNew { found, known: latest(), needs });
    }
    Ok(found)
}

/// Applies every migration the database lacks, each in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let found = check_version(conn)?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        if version + 1 == MIGRATIONS.len() {
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_release', ?1)", [RELEASE])?;
        }
        tx.commit()?;
        tracing::info!(version = version + 1, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_database_is_refused_naming_the_release_it_needs() {
        let mut conn = Connection::open_in_memory().expect("opens");
        migrate(&mut conn).expect("creates");
        let release: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'schema_release'", [], |row| row.get(0)).expect("kept");
        assert_eq!(release, RELEASE);

        conn.pragma_update(None, "user_version", latest() + 2).expect("a newer version");
        conn.execute("UPDATE meta SET value = '9.1.0' WHERE key = 'schema_release'", []).expect("a newer release");
        let refused = migrate(&mut conn).expect_err("refused");
        let text = refused.to_string();
        let newer = latest() + 2;
        assert!(text.contains(&format!("schema version {newer}, written by Parley 9.1.0")), "{text}");
        assert!(text.contains(&format!("reads versions up to {}", latest())), "{text}");
        assert!(text.ends_with("it needs Parley 9.1.0 or later"), "{text}");

        conn.execute("DROP TABLE meta", []).expect("damaged");
        let text = migrate(&mut conn).expect_err("refused").to_string();
        assert!(text.ends_with("it needs a newer Parley"), "{text}");
    }
}
