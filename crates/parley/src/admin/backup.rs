//! `parley admin backup` and `parley admin restore`: a data directory copied while the
//! server runs, and put back.
//!
//! A backup is a directory:
//!
//! ```text
//! manifest.json   written last: what the backup holds, each file with its size and SHA-256
//! parley.db       the database, one consistent snapshot (SQLite's VACUUM INTO)
//! files/...       the shared files: contents and shares, not uploads in progress
//! tls/...         the generated certificate and its key, when the server made them
//! keys/...        the key of users' host cloaks, so a restored server cloaks alike
//! ```
//!
//! The database is copied first and the files after: a file reaches the file store
//! (content, then share) before its message reaches the database, so every file a
//! message in the snapshot names is on disk by the time the files are copied. Files
//! shared after the snapshot may be copied too; nothing names them, and the server
//! deletes unnamed contents at its start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

/// The manifest's name in a backup.
pub(crate) const MANIFEST: &str = "manifest.json";

/// The layout this release writes and reads.
const FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// The backup's layout; a newer one is refused.
    format: u32,
    /// The release that took the backup.
    parley: String,
    /// The database's schema version.
    schema: i64,
    /// The oldest release that reads the database, as it records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_release: Option<String>,
    /// When the backup was taken (RFC 3339, UTC).
    created: String,
    /// Every file, by its path in the backup (`/`-separated), with its size and SHA-256.
    files: BTreeMap<String, Entry>,
}

/// A file's size and SHA-256 (lowercase hex).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// Copies the data directory `data_dir` into the new directory `dest`.
pub(crate) fn backup(data_dir: &Path, dest: &Path) -> anyhow::Result<()> {
    let db = data_dir.join(parley_store::DB_FILE);
    if !db.is_file() {
        bail!("{} has no database ({}): is it a data directory?", data_dir.display(), db.display());
    }
    if !is_empty_or_missing(dest)? {
        bail!("{} exists and is not empty: a backup never overwrites anything", dest.display());
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    // It holds private messages, password hashes and the TLS key: its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o700))?;
    }
    let taken = take(data_dir, dest);
    if taken.is_err() {
        // What is there is no backup: without its manifest nothing would restore it.
        let _ = std::fs::remove_dir_all(dest);
    }
    let (manifest, messages) = taken?;
    let bytes: u64 = manifest.files.values().map(|e| e.size).sum();
    eprintln!(
        "Backed up {} ({} messages, schema version {}): {} files, {} bytes, in {}.",
        data_dir.display(),
        messages,
        manifest.schema,
        manifest.files.len(),
        bytes,
        dest.display()
    );
    Ok(())
}

fn take(data_dir: &Path, dest: &Path) -> anyhow::Result<(Manifest, u64)> {
    let copy = dest.join(parley_store::DB_FILE);
    let schema = parley_store::snapshot(data_dir, &copy)?;
    let seen = parley_store::inspect(&copy, &parley_store::Retention::default())?;
    if !seen.problems.is_empty() {
        bail!("the database's copy fails SQLite's integrity check: {}", seen.problems.join("; "));
    }
    let mut files = BTreeMap::new();
    files.insert(parley_store::DB_FILE.to_owned(), hash_file(&copy)?);
    for dir in ["files", "tls", "keys"] {
        copy_tree(&data_dir.join(dir), dest, Path::new(dir), &mut files)?;
    }
    let manifest = Manifest {
        format: FORMAT,
        parley: env!("CARGO_PKG_VERSION").to_owned(),
        schema,
        schema_release: seen.release,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        files,
    };
    let partial = dest.join(format!("{MANIFEST}.part"));
    std::fs::write(&partial, serde_json::to_vec_pretty(&manifest)?)?;
    File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, dest.join(MANIFEST))?;
    Ok((manifest, seen.messages))
}

/// Copies the tree `root/rel` to `dest/rel`, recording each file; uploads in progress
/// (`files/tmp`) and files being written (`*.part`) are left out, and a file deleted
/// while the copy runs is skipped.
fn copy_tree(from: &Path, dest: &Path, rel: &Path, files: &mut BTreeMap<String, Entry>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    std::fs::create_dir_all(dest.join(rel))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let rel = rel.join(&name);
        if rel == Path::new("files/tmp") || name.to_string_lossy().ends_with(".part") {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), dest, &rel, files)?;
        } else if kind.is_file() {
            match copy_hashed(&entry.path(), &dest.join(&rel)) {
                Ok(copied) => {
                    files.insert(manifest_path(&rel)?, copied);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("copying {}", entry.path().display())),
            }
        }
    }
    Ok(())
}

/// Puts the backup `src` in place as the new data directory `data_dir`, after checking
/// every file against the manifest.
pub(crate) fn restore(src: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let manifest = read_manifest(src)?;
    if !is_empty_or_missing(data_dir)? {
        bail!(
            "{} exists and is not empty: restore into a new directory (move the old one aside first)",
            data_dir.display()
        );
    }
    if !manifest.files.contains_key(parley_store::DB_FILE) {
        bail!("damaged backup {}: its manifest lists no {}", src.display(), parley_store::DB_FILE);
    }
    // Copied beside the target and renamed into place at the end: an interrupted
    // restore leaves no half data directory behind.
    let name = data_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let staging = data_dir.with_file_name(format!(".{name}.restoring"));
    let _ = std::fs::remove_dir_all(&staging);
    let copied = copy_checked(src, &manifest, &staging);
    let copied = copied.and_then(|()| {
        let seen = parley_store::inspect(&staging.join(parley_store::DB_FILE), &parley_store::Retention::default())?;
        if !seen.problems.is_empty() {
            bail!(
                "damaged backup {}: its database fails SQLite's integrity check: {}",
                src.display(),
                seen.problems.join("; ")
            );
        }
        if seen.schema != manifest.schema {
            bail!(
                "damaged backup {}: its database has schema version {}, its manifest says {}",
                src.display(),
                seen.schema,
                manifest.schema
            );
        }
        Ok(seen.messages)
    });
    let messages = match copied {
        Ok(messages) => messages,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if data_dir.exists() {
        std::fs::remove_dir(data_dir).with_context(|| format!("replacing the empty {}", data_dir.display()))?;
    }
    std::fs::rename(&staging, data_dir)
        .with_context(|| format!("moving the restored data to {}", data_dir.display()))?;
    eprintln!(
        "Restored the backup of {} ({messages} messages, schema version {}, {} files) to {}.",
        manifest.created,
        manifest.schema,
        manifest.files.len(),
        data_dir.display()
    );
    eprintln!("Start the server on it with --data-dir {} (or data_dir in its configuration).", data_dir.display());
    Ok(())
}

fn read_manifest(src: &Path) -> anyhow::Result<Manifest> {
    let path = src.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "{} is not a complete backup: it has no {MANIFEST} (a backup is written last, so an interrupted one has none)",
            src.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).with_context(|| format!("damaged backup: {} is unreadable", path.display()))?;
    if manifest.format > FORMAT {
        bail!(
            "the backup {} was written by Parley {} in backup format {}; this is Parley {}, which reads format {FORMAT}: \
             it needs Parley {} or later",
            src.display(),
            manifest.parley,
            manifest.format,
            env!("CARGO_PKG_VERSION"),
            manifest.parley
        );
    }
    if manifest.schema > parley_store::schema_version() {
        let too_new = parley_store::MigrateError::TooNew {
            found: manifest.schema,
            known: parley_store::schema_version(),
            needs: manifest.schema_release.clone(),
        };
        bail!("cannot restore the backup {}: {too_new}", src.display());
    }
    Ok(manifest)
}

/// Copies every file the manifest lists from `src` to `dest`, checking each one's size
/// and SHA-256 as it is copied.
fn copy_checked(src: &Path, manifest: &Manifest, dest: &Path) -> anyhow::Result<()> {
    for (name, want) in &manifest.files {
        let rel = safe_path(name)
            .with_context(|| format!("damaged backup {}: the manifest names {name:?}", src.display()))?;
        let to = dest.join(&rel);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let got = match copy_hashed(&src.join(&rel), &to) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                bail!("damaged backup {}: {name} is missing", src.display())
            }
            Err(e) => return Err(e).with_context(|| format!("copying {name}")),
        };
        if got.size != want.size || got.sha256 != want.sha256 {
            bail!(
                "damaged backup {}: {name} has {} bytes with SHA-256 {}, the manifest says {} bytes with SHA-256 {}",
                src.display(),
                got.size,
                got.sha256,
                want.size,
                want.sha256
            );
        }
    }
    Ok(())
}

/// A manifest's path as a relative path that stays inside the directory it names a
/// file of.
fn safe_path(name: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(name);
    if name.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("not a plain relative path");
    }
    Ok(path.to_owned())
}

fn manifest_path(rel: &Path) -> anyhow::Result<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let parts = parts.with_context(|| format!("{} is not UTF-8", rel.display()))?;
    Ok(parts.join("/"))
}

fn is_empty_or_missing(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Copies `from` to the new file `to` (with `from`'s permissions: a private key stays
/// private), returning what was written.
fn copy_hashed(from: &Path, to: &Path) -> io::Result<Entry> {
    let source = File::open(from)?;
    let mut target = File::create(to)?;
    target.set_permissions(source.metadata()?.permissions())?;
    let copied = read_hashed(source, &mut target)?;
    target.sync_all()?;
    Ok(copied)
}

/// The size and SHA-256 of a file.
pub(crate) fn hash_file(path: &Path) -> io::Result<Entry> {
    read_hashed(File::open(path)?, io::sink())
}

/// Reads `source` to its end, writing it to `target`, and hashes it on the way.
fn read_hashed(mut source: impl io::Read, mut target: impl io::Write) -> io::Result<Entry> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            return Ok(Entry { size, sha256: hex(hash.finish().as_ref()) });
        }
        hash.update(&buf[..n]);
        target.write_all(&buf[..n])?;
        size += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
