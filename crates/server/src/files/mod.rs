//! Shared files on disk: where they live, what each share says, and how much each user
//! has shared.
//!
//! Layout under `DATA_DIR/files/`:
//!
//! ```text
//! tmp/ID.part     an upload in progress; deleted when it fails or its connection ends,
//!                 and every temporary file is deleted at startup
//! ab/cdef...      the bytes, named by their SHA-256 (first two hex digits as the
//!                 directory): the same file shared twice is kept once
//! shares/ID.json  one per share: the file's description, who shared it, and where
//!                 (a room, or one user), which decides who may download it
//! ```
//!
//! A file appears in the content directory only by a rename after its SHA-256 checked
//! out, so nobody can ever read a partial file. Nothing here holds a file's bytes in
//! memory: uploads stream to the temporary file, downloads read one piece at a time.

mod upload;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use parley_proto::msg::{human_size, FileInfo};
use parley_proto::text::printable_line;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

pub(crate) use upload::{Progress, Upload};

/// Bytes in a file id: 64 random bits, written as 16 hex digits. Ids need not be
/// secret (downloads are checked against the share), only distinct and short enough
/// to type.
const ID_BYTES: usize = 8;

/// The longest file name kept, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 255;

/// Why a file operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// Over `max_file_bytes`.
    #[error("the file is {} but the server takes at most {}", human_size(*.size), human_size(*.max))]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Over the user's quota.
    #[error("the file ({}) would take you over your quota: {} of {} used", human_size(*.size), human_size(*.used), human_size(*.quota))]
    Quota {
        /// The file's size.
        size: u64,
        /// What the user has shared (or is uploading) already.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// No such share, or not one the asker may see.
    #[error("no file {0} that you may see")]
    NoSuchFile(String),
    /// A room share from someone not in the room.
    #[error("you are not in {0}")]
    NotInRoom(String),
    /// The bytes do not hash to what was announced.
    #[error("the file's SHA-256 is {got}, not {announced} as announced; it was not kept")]
    Checksum {
        /// What the upload said.
        announced: String,
        /// What arrived.
        got: String,
    },
    /// A request that makes no sense at this point (wrong offset, too many bytes).
    #[error("{0}")]
    Bad(String),
    /// The disk failed.
    #[error("the file could not be stored: {0}")]
    Io(#[from] io::Error),
}

/// One share as kept on disk, in `shares/ID.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Share {
    /// What the file is.
    #[serde(flatten)]
    pub(crate) info: FileInfo,
    /// The sharer's nick then.
    pub(crate) from: String,
    /// Whose quota it counts against: the account, or the nick of a guest (lowercase).
    pub(crate) owner: String,
    /// The room it was shared in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) room: Option<String>,
    /// The user it was shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<String>,
}

impl Share {
    /// Whether someone with this nick, account and rooms may download it: the members
    /// of the room it was shared in, or the two parties of a private share.
    pub(crate) fn visible_to(&self, nick: &str, account: Option<&str>, rooms: &[String]) -> bool {
        let me = |name: &str| name.eq_ignore_ascii_case(nick) || account.is_some_and(|a| a.eq_ignore_ascii_case(name));
        match (&self.room, &self.to) {
            (Some(room), _) => rooms.iter().any(|r| r.eq_ignore_ascii_case(room)),
            (None, Some(to)) => me(to) || me(&self.from),
            (None, None) => false,
        }
    }
}

/// The files of one server: its directory, its limits and every user's usage.
pub(crate) struct FileStore {
    root: PathBuf,
    limits: crate::config::Files,
    /// Bytes shared (or being uploaded) per owner.
    usage: Mutex<HashMap<String, u64>>,
    random: SystemRandom,
}

impl FileStore {
    /// Opens `DATA_DIR/files/`, creating it, deleting what interrupted uploads left, and
    /// counting each user's shares for the quota. Blocks on disk: call it off the
    /// runtime's workers.
    pub(crate) fn open(data_dir: &Path, limits: crate::config::Files) -> io::Result<FileStore> {
        let root = data_dir.join("files");
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(root.join("shares"))?;
        let mut usage: HashMap<String, u64> = HashMap::new();
        for entry in std::fs::read_dir(root.join("shares"))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path).map(|bytes| serde_json::from_slice::<Share>(&bytes)) {
                Ok(Ok(share)) => *usage.entry(share.owner).or_default() += share.info.size,
                Ok(Err(e)) => tracing::warn!(path = %path.display(), "ignoring an unreadable share: {e}"),
                Err(e) => tracing::warn!(path = %path.display(), "ignoring an unreadable share: {e}"),
            }
        }
        Ok(FileStore { root, limits, usage: Mutex::new(usage), random: SystemRandom::new() })
    }

    /// The largest file accepted.
    pub(crate) fn max_file_bytes(&self) -> u64 {
        self.limits.max_file_bytes
    }

    /// A fresh file id.
    pub(crate) fn new_id(&self) -> io::Result<String> {
        let mut bytes = [0u8; ID_BYTES];
        self.random.fill(&mut bytes).map_err(|_| io::Error::other("no randomness for a file id"))?;
        Ok(hex(&bytes))
    }

    /// Counts `size` bytes against `owner`'s quota until the returned reservation is
    /// dropped or kept.
    pub(crate) fn reserve(self: &Arc<Self>, owner: &str, size: u64) -> Result<Reservation, FileError> {
        if size > self.limits.max_file_bytes {
            return Err(FileError::TooLarge { size, max: self.limits.max_file_bytes });
        }
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let used = usage.get(owner).copied().unwrap_or(0);
        let quota = self.limits.quota_bytes;
        if quota > 0 && used.saturating_add(size) > quota {
            return Err(FileError::Quota { size, used, quota });
        }
        *usage.entry(owner.to_owned()).or_default() += size;
        Ok(Reservation { store: self.clone(), owner: owner.to_owned(), size, kept: false })
    }

    fn release(&self, owner: &str, size: u64) {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(used) = usage.get_mut(owner) {
            *used = used.saturating_sub(size);
            if *used == 0 {
                usage.remove(owner);
            }
        }
    }

    /// Where an upload in progress is written.
    fn temp_path(&self, id: &str) -> PathBuf {
        self.root.join("tmp").join(format!("{id}.part"))
    }

    /// Where the bytes with this SHA-256 (lowercase hex) are kept.
    pub(crate) fn content_path(&self, sha256: &str) -> PathBuf {
        let (dir, rest) = sha256.split_at(2.min(sha256.len()));
        self.root.join(dir).join(rest)
    }

    fn share_path(&self, id: &str) -> PathBuf {
        self.root.join("shares").join(format!("{id}.json"))
    }

    /// Moves a checked upload into the content directory (dropping it if the same bytes
    /// are there already) and records the share.
    async fn commit(&self, temp: &Path, share: &Share) -> io::Result<()> {
        let content = self.content_path(&share.info.sha256);
        if let Some(dir) = content.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        if tokio::fs::try_exists(&content).await? {
            tokio::fs::remove_file(temp).await?;
        } else {
            tokio::fs::rename(temp, &content).await?;
        }
        let path = self.share_path(&share.info.file);
        let partial = path.with_extension("json.part");
        tokio::fs::write(&partial, serde_json::to_vec(share).map_err(io::Error::other)?).await?;
        tokio::fs::rename(&partial, &path).await
    }

    /// The share with this id, if there is one.
    pub(crate) async fn share(&self, id: &str) -> Option<Share> {
        if !is_id(id) {
            return None;
        }
        let bytes = tokio::fs::read(self.share_path(id)).await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Bytes counted against a quota for an upload in progress; given back on drop unless
/// kept.
pub(crate) struct Reservation {
    store: Arc<FileStore>,
    owner: String,
    size: u64,
    kept: bool,
}

impl Reservation {
    /// The upload succeeded: the bytes stay counted.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.store.release(&self.owner, self.size);
        }
    }
}

/// Whether `id` looks like a file id (so it can name a file safely).
fn is_id(id: &str) -> bool {
    id.len() == ID_BYTES * 2 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What line and IRC users read when a file is shared: who shared what, and how to get
/// it. `text` is the message's text (the file's description as JSON).
pub(crate) fn announcement(from: &str, text: &str) -> String {
    match serde_json::from_str::<FileInfo>(text) {
        Ok(info) => format!(
            "{from} shared {} ({}, {}): /get {} with parley chat",
            printable_line(&info.name),
            human_size(info.size),
            printable_line(&info.media_type),
            info.file
        ),
        Err(_) => format!("{from} shared a file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(room: Option<&str>, to: Option<&str>) -> Share {
        Share {
            info: FileInfo {
                file: "0123456789abcdef".into(),
                name: "report.pdf".into(),
                size: 1_234_567,
                media_type: "application/pdf".into(),
                sha256: "ab".repeat(32),
            },
            from: "bob".into(),
            owner: "bob".into(),
            room: room.map(str::to_owned),
            to: to.map(str::to_owned),
        }
    }

    #[test]
    fn room_shares_are_for_members_and_private_ones_for_the_two_parties() {
        let in_dev = share(Some("dev"), None);
        assert!(in_dev.visible_to("carol", None, &["lobby".into(), "Dev".into()]));
        assert!(!in_dev.visible_to("bob", None, &["lobby".into()]), "even the sharer, once out of the room");
        let private = share(None, Some("alice"));
        assert!(private.visible_to("Alice", None, &[]));
        assert!(private.visible_to("BOB", None, &[]));
        assert!(private.visible_to("guest_1", Some("alice"), &[]));
        assert!(!private.visible_to("carol", None, &["lobby".into()]));
    }

    #[test]
    fn the_announcement_names_sharer_file_size_type_and_command() {
        let text = serde_json::to_string(&share(None, None).info).expect("encodes");
        assert_eq!(
            announcement("bob", &text),
            "bob shared report.pdf (1.2 MB, application/pdf): /get 0123456789abcdef with parley chat"
        );
        assert_eq!(announcement("bob", "{"), "bob shared a file");
    }

    #[test]
    fn ids_are_checked_before_they_name_a_path() {
        assert!(is_id("0123456789abcdef"));
        assert!(!is_id("../../etc/passwd"));
        assert!(!is_id("0123456789ABCDEF"));
    }
}
