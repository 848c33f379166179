//! The operator's work on the database beside the server, running or not: a consistent
//! copy (`parley admin backup`) and a read-only inspection (`parley admin check`,
//! `parley admin restore` before it puts a copy in place). Nothing here writes to the
//! data directory.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::messages::{age_cutoff, room_limit, OVER_ROOM_LIMIT, TOO_OLD};
use super::{read_only, OpenError, Retention, DB_FILE};
use crate::schema;

/// What [`inspect`] found in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Its schema version.
    pub schema: i64,
    /// The release that brought it to that version, when it records one (schema 7 on).
    pub release: Option<String>,
    /// What `PRAGMA integrity_check` reported, when it was not `ok`.
    pub problems: Vec<String>,
    /// Its pages, in bytes (the file without its WAL).
    pub bytes: u64,
    /// Stored messages, in rooms and private.
    pub messages: u64,
    /// Rooms that have a history.
    pub rooms: u64,
    /// Accounts.
    pub accounts: u64,
    /// The descriptions (JSON) of every file shared in a message still kept.
    pub shared_files: Vec<String>,
    /// What the retention rules given would delete now: by age, then by the per-room
    /// limit (a message both rules delete is counted once, by age).
    pub would_prune: (u64, u64),
}

/// Copies the database in `data_dir` to the new file `into`, as one consistent snapshot
/// (SQLite's `VACUUM INTO`, in one read transaction: a running server goes on writing,
/// and the copy holds every transaction committed before it began and none after). The
/// copy is compact and has no WAL beside it. Returns its schema version; a database
/// newer than this build is refused.
pub fn snapshot(data_dir: &Path, into: &Path) -> Result<i64, OpenError> {
    let path = data_dir.join(DB_FILE);
    let conn = open(&path)?;
    let version = schema::check_version(&conn).map_err(|source| OpenError::Migrate { path: path.clone(), source })?;
    let target = into.to_str().ok_or_else(|| OpenError::Sqlite {
        path: into.to_owned(),
        source: rusqlite::Error::InvalidPath(into.to_owned()),
    })?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(|source| OpenError::Sqlite { path, source })?;
    Ok(version)
}

/// Reads a database file without changing it (no migration, no WAL checkpoint): its
/// version, integrity, size and contents, and what `retention` would delete. A
/// database newer than this build is refused.
pub fn inspect(db: &Path, retention: &Retention) -> Result<Inspection, OpenError> {
    let conn = open(db)?;
    let version = schema::check_version(&conn).map_err(|source| OpenError::Migrate { path: db.to_owned(), source })?;
    let sqlite = |source| OpenError::Sqlite { path: db.to_owned(), source };
    inspect_open(&conn, version, retention).map_err(sqlite)
}

/// Everything [`inspect`] reports. A database SQLite finds damaged is reported as such,
/// with as much as could be read.
fn inspect_open(conn: &Connection, schema: i64, retention: &Retention) -> rusqlite::Result<Inspection> {
    let mut seen = Inspection {
        schema,
        release: None,
        problems: Vec::new(),
        bytes: 0,
        messages: 0,
        rooms: 0,
        accounts: 0,
        shared_files: Vec::new(),
        would_prune: (0, 0),
    };
    match read_all(conn, retention, &mut seen) {
        Ok(()) => Ok(seen),
        Err(e) if is_damage(&e) => {
            seen.problems.push(e.to_string());
            Ok(seen)
        }
        Err(e) => Err(e),
    }
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

fn read_all(conn: &Connection, retention: &Retention, seen: &mut Inspection) -> rusqlite::Result<()> {
    let count = |sql: &str| -> rusqlite::Result<u64> {
        conn.query_row(sql, [], |row| row.get::<_, i64>(0)).map(|n| u64::try_from(n).unwrap_or(0))
    };
    seen.bytes = count("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")?;
    {
        let mut check = conn.prepare("PRAGMA integrity_check")?;
        let mut rows = check.query([])?;
        while let Some(row) = rows.next()? {
            let line: String = row.get(0)?;
            if line != "ok" {
                seen.problems.push(line);
            }
        }
    }
    if seen.schema >= 7 {
        seen.release = conn.query_row("SELECT value FROM meta WHERE key = 'schema_release'", [], |row| row.get(0)).ok();
    }
    seen.messages = count("SELECT count(*) FROM messages")?;
    seen.rooms = count("SELECT count(*) FROM rooms")?;
    seen.accounts = count("SELECT count(*) FROM accounts")?;
    let mut files = conn.prepare("SELECT body FROM messages WHERE content_type LIKE '%kind=file' ORDER BY id")?;
    seen.shared_files = files.query_map([], |row| row.get(0))?.collect::<Result<Vec<String>, _>>()?;
    let cutoff = age_cutoff(retention);
    let by_age = match cutoff {
        Some(cutoff) => {
            conn.query_row(&format!("SELECT count(*) FROM messages WHERE {TOO_OLD}"), [cutoff], |row| row.get(0))?
        }
        None => 0i64,
    };
    // A message both rules delete is counted once, by age.
    let by_count = match (room_limit(retention), cutoff) {
        (Some(max), None) => {
            conn.query_row(&format!("SELECT count(*) FROM messages WHERE {OVER_ROOM_LIMIT}"), [max], |row| row.get(0))?
        }
        (Some(max), Some(cutoff)) => conn.query_row(
            &format!("SELECT count(*) FROM messages WHERE {OVER_ROOM_LIMIT} AND NOT ({})", TOO_OLD.replace("?1", "?2")),
            [max, cutoff],
            |row| row.get(0),
        )?,
        (None, _) => 0i64,
    };
    seen.would_prune = (u64::try_from(by_age).unwrap_or(0), u64::try_from(by_count).unwrap_or(0));
    Ok(())
}

/// A read-only connection to an existing database (read-only never creates one).
fn open(path: &Path) -> Result<Connection, OpenError> {
    read_only(path).map_err(|source| OpenError::Sqlite { path: PathBuf::from(path), source })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parley_hub::MessageStore as _;

    use super::*;
    use crate::sqlite::tests::{said, TempDir};
    use crate::SqliteStore;

    #[test]
    fn a_snapshot_taken_beside_the_writer_reads_back_and_inspects_clean() {
        let dir = TempDir::new("snapshot");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let batch: Vec<_> = (1..=30).map(|n| said("dev", n, &format!("m{n}"))).collect();
        store.append(&batch).expect("appends");
        let copy = dir.0.join("copy.db");
        assert_eq!(snapshot(&dir.0, &copy).expect("copies"), schema::latest());
        store.append(&[said("dev", 31, "after the copy")]).expect("appends");

        let keep_20 = Retention { max_per_room: Some(20), ..Retention::default() };
        let seen = inspect(&copy, &keep_20).expect("inspects");
        assert_eq!((seen.schema, seen.messages, seen.rooms, seen.accounts), (schema::latest(), 30, 1, 0));
        assert_eq!(seen.release.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
        assert_eq!(seen.would_prune, (0, 10));
        let all_old = Retention { max_age: Some(Duration::ZERO), max_per_room: Some(20), sync_full: false };
        assert_eq!(inspect(&copy, &all_old).expect("inspects").would_prune, (30, 0), "each message counted once");
        assert!(!dir.0.join("copy.db-wal").exists(), "one file");
    }

    #[test]
    fn a_missing_or_damaged_database_is_reported() {
        let dir = TempDir::new("damaged");
        assert!(inspect(&dir.0.join("nothing.db"), &Retention::default()).is_err());
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let batch: Vec<_> =
            (1..=2000).map(|n| said("dev", n, &format!("message number {n} {}", "x".repeat(200)))).collect();
        store.append(&batch).expect("appends");
        let copy = dir.0.join("copy.db");
        snapshot(&dir.0, &copy).expect("copies");
        drop(store);
        // Overwrite a page in the middle of the file with zeros.
        let mut bytes = std::fs::read(&copy).expect("reads");
        let middle = bytes.len() / 2 / 4096 * 4096;
        bytes[middle..middle + 4096].fill(0);
        std::fs::write(&copy, bytes).expect("writes");
        let seen = inspect(&copy, &Retention::default()).expect("damage is reported, not an error");
        assert!(!seen.problems.is_empty(), "a zeroed page is found");
    }
}
