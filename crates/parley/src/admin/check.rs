//! `parley admin check`: a data directory inspected without changing it, while the
//! server runs or not. Exit status 0: nothing wrong; 2: something is (each problem is a
//! `problem:` line); 1: the check itself could not run (no such directory, a database
//! from a newer release).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use parley_proto::msg::{human_size, FileInfo};
use parley_proto::text::printable_line;
use parley_store::Retention;

use super::backup::hash_file;

/// The exit status when the check found problems.
const PROBLEMS: u8 = 2;

/// What the file store holds, checked.
#[derive(Default)]
struct FileStore {
    /// SHA-256 (its name) -> size.
    contents: HashMap<String, u64>,
    /// Share id -> what it says.
    shares: HashMap<String, FileInfo>,
    /// Uploads in progress.
    uploading: usize,
    problems: Vec<String>,
}

pub(crate) fn check(data_dir: &Path, retention: &Retention) -> anyhow::Result<ExitCode> {
    let db = data_dir.join(parley_store::DB_FILE);
    if !db.is_file() {
        anyhow::bail!("{} has no database ({}): is it a data directory?", data_dir.display(), db.display());
    }
    let seen = parley_store::inspect(&db, retention)?;
    let files = read_file_store(&data_dir.join("files")).context("reading the file store")?;
    let mut problems: Vec<String> = seen.problems.iter().map(|p| format!("database: {p}")).collect();
    problems.extend(files.problems.iter().cloned());

    // Every file a kept message names: its share says the same, and its bytes are there.
    let mut withdrawn = 0;
    for text in &seen.shared_files {
        let Ok(named) = serde_json::from_str::<FileInfo>(text) else {
            problems.push(format!("a file message is unreadable: {text}"));
            continue;
        };
        let Some(share) = files.shares.get(&named.file) else {
            // Its sharer's account was deleted, and its shares with it.
            withdrawn += 1;
            continue;
        };
        // (A share's missing content is a problem of the file store, found above.)
        if share.sha256 != named.sha256 || share.size != named.size {
            problems.push(format!("file {}: its share does not match its message", named.file));
        }
    }
    let referenced: std::collections::HashSet<&str> = files.shares.values().map(|s| s.sha256.as_str()).collect();
    let unreferenced = files.contents.keys().filter(|h| !referenced.contains(h.as_str())).count();
    let content_bytes: u64 = files.contents.values().sum();

    let wal = std::fs::metadata(data_dir.join(format!("{}-wal", parley_store::DB_FILE))).map_or(0, |m| m.len());
    let release = seen.release.as_ref().map(|r| format!(", by Parley {r}")).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let mut line = |text: String| writeln!(out, "{}", printable_line(&text));
    line(format!("data directory: {}", data_dir.display()))?;
    line(format!("schema version: {}{release} (this Parley writes {})", seen.schema, parley_store::schema_version()))?;
    line(format!("database: {} ({} in its WAL)", human_size(seen.bytes), human_size(wal)))?;
    line(format!(
        "integrity: {}",
        if seen.problems.is_empty() { "ok".to_owned() } else { format!("{} problems", seen.problems.len()) }
    ))?;
    line(format!("history: {} messages in {} rooms; {} accounts", seen.messages, seen.rooms, seen.accounts))?;
    line(format!(
        "files: {} shares, {} contents ({}), {} named by messages; {} withdrawn with a deleted account, {} named by no \
         share (deleted at the next start), {} uploads in progress",
        files.shares.len(),
        files.contents.len(),
        human_size(content_bytes),
        seen.shared_files.len(),
        withdrawn,
        unreferenced,
        files.uploading
    ))?;
    let (by_age, by_count) = seen.would_prune;
    let rules = match (retention.max_age, retention.max_per_room) {
        (None, None) => "none (history is kept forever)".to_owned(),
        (age, count) => {
            let age = age.map(|a| format!("older than {} days", a.as_secs() / 86_400));
            let count = count.map(|c| format!("over {c} per room"));
            [age, count].into_iter().flatten().collect::<Vec<_>>().join(", ")
        }
    };
    line(format!("retention: {rules}; would delete {by_age} messages by age and {by_count} by the per-room limit"))?;
    for problem in &problems {
        line(format!("problem: {problem}"))?;
    }
    line(format!(
        "status: {}",
        if problems.is_empty() { "ok".to_owned() } else { format!("{} problems", problems.len()) }
    ))?;
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(PROBLEMS) })
}

/// Reads `files/` (see the server's `files` module for its layout), hashing every
/// content.
fn read_file_store(root: &Path) -> anyhow::Result<FileStore> {
    let mut store = FileStore::default();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
        Err(e) => return Err(e.into()),
    };
    for dir in entries {
        let dir = dir?;
        let name = dir.file_name().to_string_lossy().into_owned();
        if !dir.file_type()?.is_dir() {
            continue;
        }
        match name.as_str() {
            "tmp" => store.uploading = std::fs::read_dir(dir.path())?.count(),
            "shares" => {
                for share in std::fs::read_dir(dir.path())? {
                    let path = share?.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("json") {
                        continue;
                    }
                    let read = std::fs::read(&path)
                        .map_err(anyhow::Error::from)
                        .and_then(|bytes| serde_json::from_slice::<FileInfo>(&bytes).map_err(anyhow::Error::from));
                    match read {
                        Ok(info) => {
                            store.shares.insert(info.file.clone(), info);
                        }
                        Err(e) => store.problems.push(format!("{}: unreadable share: {e}", path.display())),
                    }
                }
            }
            _ if name.len() == 2 => {
                for content in std::fs::read_dir(dir.path())? {
                    let content = content?;
                    let named = format!("{name}{}", content.file_name().to_string_lossy());
                    // A thumbnail cached beside its file (`….thumb.png`): a preview, not
                    // content, and made again when missing.
                    if named.contains(".thumb.") {
                        continue;
                    }
                    let got =
                        hash_file(&content.path()).with_context(|| format!("reading {}", content.path().display()))?;
                    if got.sha256 != named {
                        store.problems.push(format!(
                            "{}: its bytes hash to {}, not to its name (damaged)",
                            content.path().display(),
                            got.sha256
                        ));
                    }
                    store.contents.insert(named, got.size);
                }
            }
            _ => {}
        }
    }
    // A share whose content is missing or of another size cannot be downloaded.
    for share in store.shares.values() {
        match store.contents.get(&share.sha256) {
            None => store.problems.push(format!("file {} ({}): its content is missing", share.file, share.name)),
            Some(size) if *size != share.size => store.problems.push(format!(
                "file {} ({}): its content has {size} bytes, its share says {}",
                share.file, share.name, share.size
            )),
            Some(_) => {}
        }
    }
    Ok(store)
}
