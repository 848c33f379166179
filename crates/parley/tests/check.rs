//! `parley admin check` as an operator's script runs it: a report on stdout and an exit
//! status, 0 for a healthy data directory, 2 when something is wrong (a damaged or
//! missing file, a damaged database), 1 when it cannot check at all. It never changes
//! what it reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct TempDir(PathBuf);

impl TempDir {
    /// A copy of the upgrade fixture of today's schema: history, accounts, moderation,
    /// a file shared in a room and one privately.
    fn with_fixture(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("parley-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../store/tests/fixtures")
            .join(format!("v{}", parley_store::schema_version()));
        copy_dir(&fixture, &dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("reads") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

fn check(data: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["admin", "check", "--data-dir"])
        .arg(data)
        .args(extra)
        .output()
        .expect("runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reads") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            all.extend(snapshot(&path));
        } else {
            all.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    all.sort();
    all
}

/// The content file of the file shared in the fixture's staff room.
fn content(data: &Path) -> PathBuf {
    data.join("files/63/a2abd795a5dd3d82a93062a77e9b5c4dc87616feaac16f63acfbe5e6ff0dec")
}

#[test]
fn a_healthy_data_directory_passes_and_is_not_changed() {
    let data = TempDir::with_fixture("healthy");
    // A thumbnail the server cached beside a file is neither content nor damage.
    std::fs::write(format!("{}.thumb.png", content(&data.0).display()), b"a preview").expect("written");
    let before = snapshot(&data.0);
    let (status, text) = check(&data.0, &[]);
    assert_eq!(status, Some(0), "{text}");
    let version = parley_store::schema_version();
    for line in [
        &format!("schema version: {version}, by Parley {}", env!("CARGO_PKG_VERSION")),
        "integrity: ok",
        "history: 9 messages in 3 rooms; 3 accounts",
        "files: 2 shares, 2 contents (5.0 KB), 2 named by messages",
        "retention: none (history is kept forever)",
        "status: ok",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert_eq!(snapshot(&data.0), before, "nothing was written");
}

#[test]
fn retention_rules_from_the_configuration_are_counted() {
    let data = TempDir::with_fixture("retention");
    let config = data.0.join("parley.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n[history]\nmax_per_room = 1\n", data.0)).expect("written");
    // The data directory comes from the configuration.
    let out = Command::new(env!("CARGO_BIN_EXE_parley")).args(["admin", "check", "--config"]).arg(&config).output();
    let out = out.expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // The lobby and staff have 2 messages each, guestroom 1: one each goes.
    assert!(
        text.contains("retention: over 1 per room; would delete 0 messages by age and 2 by the per-room limit"),
        "{text}"
    );
}

#[test]
fn a_damaged_or_missing_file_is_a_problem_with_exit_status_2() {
    let data = TempDir::with_fixture("damaged");
    let mut bytes = std::fs::read(content(&data.0)).expect("read");
    bytes[3] ^= 0x20;
    std::fs::write(content(&data.0), bytes).expect("written");
    let (status, text) = check(&data.0, &[]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("problem: ") && text.contains("not to its name (damaged)"), "{text}");
    assert!(text.contains("status: 1 problems"), "{text}");

    std::fs::remove_file(content(&data.0)).expect("removed");
    let (status, text) = check(&data.0, &[]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("(plan.txt): its content is missing"), "{text}");
}

#[test]
fn a_damaged_database_is_a_problem_and_no_database_cannot_be_checked() {
    let data = TempDir::with_fixture("database");
    let db = data.0.join("parley.db");
    let mut bytes = std::fs::read(&db).expect("read");
    // The last page holds rows of some table or index; zero all but its first bytes.
    let page = bytes.len() - 4096;
    bytes[page + 8..].fill(0xff);
    std::fs::write(&db, bytes).expect("written");
    let (status, text) = check(&data.0, &[]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("problem: database: "), "{text}");

    let (status, text) = check(&data.0.join("nowhere"), &[]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("has no database"), "{text}");
}

#[test]
fn a_database_from_a_newer_release_cannot_be_checked_and_says_why() {
    let data = TempDir::with_fixture("newer");
    let conn = rusqlite::Connection::open(data.0.join("parley.db")).expect("opens");
    conn.pragma_update(None, "user_version", parley_store::schema_version() + 1).expect("a newer schema");
    conn.execute("UPDATE meta SET value = '9.1.0' WHERE key = 'schema_release'", []).expect("a newer release");
    drop(conn);
    let (status, text) = check(&data.0, &[]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("it needs Parley 9.1.0 or later"), "{text}");
}
