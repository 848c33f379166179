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
//! In a cluster the nodes share one directory (each mounts the same filesystem at its
//! `DATA_DIR/files`): uploads in progress are under `tmp/NODE/`, so that a node starting
//! deletes only its own leftovers; a user's usage is read from the shares on disk at
//! each upload, so that shares made through any node count; and a node starting leaves
//! unreferenced content younger than [`SHARED_GRACE`] alone (another node's upload may
//! have just moved it in, and be writing its share).
//!
//! A file appears in the content directory only by a rename after its SHA-256 checked
//! out, so nobody can ever read a partial file. Nothing here holds a file's bytes in
//! memory: uploads stream to the temporary file, downloads read one piece at a time.

pub(crate) mod thumbnail;
mod upload;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use parley_hub::{AccountId, Party, Whereabouts};
use parley_proto::msg::{human_size, FileInfo};
use parley_proto::text::printable_line;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

pub(crate) use upload::{Progress, Upload};

/// Bytes in a file id: 64 random bits, written as 16 hex digits. Ids need not be
/// secret (downloads are checked against the share), only distinct and short enough
/// to type.
const ID_BYTES: usize = 8;

/// How old unreferenced content in a shared directory must be before a starting node
/// deletes it: far longer than the moment between an upload's rename and its share.
const SHARED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

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
    /// The hub would not take a message there (not in the room, muted, nobody of that
    /// name online, ...).
    #[error(transparent)]
    Refused(parley_hub::HubError),
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

/// One share as kept on disk, in `shares/ID.json`. (Shares written before parties and
/// room lives were recorded read with those fields empty: a private one is then visible
/// to nobody, since its nicks could be anyone's now; a room one only in rooms whose whole
/// history is visible.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Share {
    /// What the file is.
    #[serde(flatten)]
    pub(crate) info: FileInfo,
    /// The sharer's nick then.
    pub(crate) from: String,
    /// Whose quota it counts against (see [`owner_of`]).
    pub(crate) owner: String,
    /// The room it was shared in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) room: Option<String>,
    /// Where the room's visible history began when it was shared: members of a later
    /// life of the room, which starts further on, cannot see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<u64>,
    /// The nick it was shared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<String>,
    /// Who shared it, as a stored party (an account, or a guest session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sender: Option<i64>,
    /// Who a private share is for, as a stored party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) recipient: Option<i64>,
}

impl Share {
    /// Whether the session may download it: a member of the room it was shared in, in
    /// the same life of the room (or, for a registered room, since its history became
    /// visible), or one of the two parties of a private share.
    pub(crate) fn visible_to(&self, me: &Whereabouts) -> bool {
        match (&self.room, self.recipient) {
            (Some(room), _) => {
                let shared_since = self.since.unwrap_or(0);
                me.rooms.iter().any(|(r, since)| r.as_str().eq_ignore_ascii_case(room) && shared_since >= *since)
            }
            (None, Some(recipient)) => {
                let me = me.party.to_i64();
                recipient == me || self.sender == Some(me)
            }
            (None, None) => false,
        }
    }

    /// Whether it belongs to the account `id`: shared by it, counted against it, or
    /// shared privately with it.
    fn belongs_to(&self, id: AccountId) -> bool {
        let party = Party::Account(id).to_i64();
        self.owner == owner_of(Some(id), None) || self.sender == Some(party) || self.recipient == Some(party)
    }
}

/// Whose quota a share counts against: a logged-in user's account, or for a guest
/// everyone from its network (an IPv4 address or an IPv6 /64) together, so that a guest
/// cannot reset its quota by changing nick or reconnecting.
pub(crate) fn owner_of(account: Option<AccountId>, address: Option<IpAddr>) -> String {
    match (account, address) {
        (Some(id), _) => format!("account:{}", id.0),
        (None, Some(address)) => format!("network:{}", parley_hub::Network::of(address)),
        (None, None) => "network:unknown".to_owned(),
    }
}

/// The files of one server: its directory, its limits and every user's usage.
pub(crate) struct FileStore {
    root: PathBuf,
    /// Where this node's uploads in progress are written.
    tmp: PathBuf,
    limits: crate::config::Files,
    /// Shared by the nodes of a cluster: usage is read from disk (see the module).
    shared: bool,
    /// Bytes shared (or being uploaded) per owner; when `shared`, only this node's
    /// uploads in progress.
    usage: Mutex<HashMap<String, u64>>,
    random: SystemRandom,
    /// Bytes received in uploads and sent in downloads, for metrics.
    pub(crate) bytes: crate::metrics::FileBytes,
}

impl FileStore {
    /// Opens `DATA_DIR/files/`, creating it, deleting what interrupted uploads left, and
    /// counting each user's shares for the quota. `node`: this server is that node of a
    /// cluster, and the directory is shared with the other nodes (see the module).
    /// Blocks on disk: call it off the runtime's workers.
    pub(crate) fn open(data_dir: &Path, limits: crate::config::Files, node: Option<&str>) -> io::Result<FileStore> {
        let root = data_dir.join("files");
        let tmp = match node {
            Some(node) => root.join("tmp").join(node),
            None => root.join("tmp"),
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        std::fs::create_dir_all(root.join("shares"))?;
        let mut usage: HashMap<String, u64> = HashMap::new();
        if node.is_none() {
            for (_, share) in read_shares(&root)? {
                *usage.entry(share.owner).or_default() += share.info.size;
            }
        }
        let store = FileStore {
            root,
            tmp,
            limits,
            shared: node.is_some(),
            usage: Mutex::new(usage),
            random: SystemRandom::new(),
            bytes: crate::metrics::FileBytes::default(),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// Deletes every share that belongs to the account `id` (it was deleted). Their
    /// content goes at the next start, when nothing can be uploading (an upload moves
    /// its content in just before it writes its share). Blocks on disk.
    pub(crate) fn forget_account(&self, id: AccountId) -> io::Result<usize> {
        forget_shares(&self.root, id, |share| self.share_gone(&share.owner, share.info.size))
    }

    /// Deletes the share `id` (its message was deleted) and gives its owner's quota
    /// back; its content goes at the next start, as for [`FileStore::forget_account`].
    /// False if there was no such share. Blocks on disk.
    pub(crate) fn forget_share(&self, id: &str) -> io::Result<bool> {
        if !is_id(id) {
            return Ok(false);
        }
        let path = self.share_path(id);
        let share = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Share>(&bytes).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&path)?;
        self.share_gone(&share.owner, share.info.size);
        Ok(true)
    }

    /// Deletes content files that no share refers to (a file whose shares are all
    /// gone). Only at start: see [`FileStore::forget_account`]. Blocks on disk.
    fn collect_garbage(&self) -> io::Result<()> {
        let referenced: std::collections::HashSet<String> =
            read_shares(&self.root)?.into_iter().map(|(_, share)| share.info.sha256).collect();
        for dir in std::fs::read_dir(&self.root)? {
            let dir = dir?;
            let name = dir.file_name().to_string_lossy().into_owned();
            if name.len() != 2 || !dir.file_type()?.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(dir.path())? {
                let file = file?;
                let hash = format!("{name}{}", file.file_name().to_string_lossy());
                // A thumbnail goes with its file.
                let hash = hash.strip_suffix(thumbnail::SUFFIX).unwrap_or(&hash);
                let young = || {
                    file.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|at| at.elapsed().map_or(true, |age| age < SHARED_GRACE))
                };
                let kept = referenced.contains(hash) || (self.shared && young());
                if !kept {
                    std::fs::remove_file(file.path())?;
                }
            }
        }
        Ok(())
    }

    /// Takes back a share that was kept but could not be posted: its record goes and
    /// its owner's quota is given back (its content goes with the next collection).
    pub(crate) async fn withdraw(&self, share: &Share) -> io::Result<()> {
        match tokio::fs::remove_file(self.share_path(&share.info.file)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.share_gone(&share.owner, share.info.size);
        Ok(())
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

    /// What `owner`'s shares on disk take, when the directory is shared (else 0: the
    /// usage map counts them). Blocks on disk.
    pub(crate) fn shared_usage(&self, owner: &str) -> io::Result<u64> {
        if !self.shared {
            return Ok(0);
        }
        Ok(read_shares(&self.root)?
            .into_iter()
            .filter(|(_, share)| share.owner == owner)
            .map(|(_, share)| share.info.size)
            .sum())
    }

    /// Counts `size` bytes against `owner`'s quota until the returned reservation is
    /// dropped or kept; `on_disk` is [`FileStore::shared_usage`].
    pub(crate) fn reserve(self: &Arc<Self>, owner: &str, size: u64, on_disk: u64) -> Result<Reservation, FileError> {
        if size > self.limits.max_file_bytes {
            return Err(FileError::TooLarge { size, max: self.limits.max_file_bytes });
        }
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let used = usage.get(owner).copied().unwrap_or(0).saturating_add(on_disk);
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

    /// A share is gone from disk: its bytes no longer count (a shared directory's usage
    /// is read from disk, and has nothing to give back).
    fn share_gone(&self, owner: &str, size: u64) {
        if !self.shared {
            self.release(owner, size);
        }
    }

    /// Where an upload in progress is written.
    fn temp_path(&self, id: &str) -> PathBuf {
        self.tmp.join(format!("{id}.part"))
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
        // Its share is on disk now: in a shared directory, that is where it counts.
        self.kept = !self.store.shared;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            self.store.release(&self.owner, self.size);
        }
    }
}

/// Deletes the shares under `root` that belong to the account `id`, calling `each` for
/// every one deleted.
fn forget_shares(root: &Path, id: AccountId, mut each: impl FnMut(&Share)) -> io::Result<usize> {
    let mut forgotten = 0;
    for (path, share) in read_shares(root)? {
        if share.belongs_to(id) {
            std::fs::remove_file(&path)?;
            each(&share);
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

/// Deletes a deleted account's shares from a data directory, whether or not a server
/// is running on it (see [`FileStore::forget_account`]).
pub(crate) fn forget_account_in(data_dir: &Path, id: AccountId) -> io::Result<usize> {
    let root = data_dir.join("files");
    if !root.join("shares").is_dir() {
        return Ok(0);
    }
    forget_shares(&root, id, |_| {})
}

/// Every readable share in `root/shares`, with its path.
fn read_shares(root: &Path) -> io::Result<Vec<(PathBuf, Share)>> {
    let mut shares = Vec::new();
    for entry in std::fs::read_dir(root.join("shares"))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path).map(|bytes| serde_json::from_slice::<Share>(&bytes)) {
            Ok(Ok(share)) => shares.push((path, share)),
            Ok(Err(e)) => tracing::warn!(path = %path.display(), "ignoring an unreadable share: {e}"),
            Err(e) => tracing::warn!(path = %path.display(), "ignoring an unreadable share: {e}"),
        }
    }
    Ok(shares)
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
            owner: "account:2".into(),
            room: room.map(str::to_owned),
            since: room.map(|_| 5),
            to: to.map(str::to_owned),
            sender: Some(2),
            recipient: to.map(|_| 1),
        }
    }

    fn me(party: Party, rooms: &[(&str, u64)]) -> Whereabouts {
        Whereabouts {
            nick: parley_hub::Nick::parse("someone", 32).expect("nick"),
            account: None,
            party,
            address: None,
            rooms: rooms.iter().map(|(r, since)| (parley_hub::RoomName::parse(r, 32).expect("room"), *since)).collect(),
        }
    }

    #[test]
    fn room_shares_are_for_members_of_that_life_and_private_ones_for_the_two_parties() {
        let (alice, bob, carol) =
            (Party::Account(AccountId(1)), Party::Account(AccountId(2)), Party::Guest(parley_hub::GuestId(3)));
        let in_dev = share(Some("dev"), None);
        assert!(in_dev.visible_to(&me(carol, &[("lobby", 0), ("Dev", 5)])));
        assert!(in_dev.visible_to(&me(carol, &[("Dev", 1)])), "a registered room's older history");
        assert!(!in_dev.visible_to(&me(carol, &[("Dev", 6)])), "a later life of the room");
        assert!(!in_dev.visible_to(&me(bob, &[("lobby", 0)])), "even the sharer, once out of the room");
        let private = share(None, Some("alice"));
        assert!(private.visible_to(&me(alice, &[])));
        assert!(private.visible_to(&me(bob, &[])));
        assert!(!private.visible_to(&me(carol, &[("lobby", 0)])));
        let old = Share { recipient: None, sender: None, ..share(None, Some("alice")) };
        assert!(!old.visible_to(&me(alice, &[])), "a share bound only to nicks is bound to nobody");
        assert!(private.belongs_to(AccountId(1)) && private.belongs_to(AccountId(2)));
        assert!(!private.belongs_to(AccountId(3)));
    }

    #[test]
    fn guests_share_a_quota_per_network() {
        let v6 = |a: &str| Some(a.parse::<IpAddr>().expect("address"));
        assert_eq!(owner_of(Some(AccountId(4)), v6("10.0.0.1")), "account:4");
        assert_eq!(owner_of(None, v6("2001:db8::1")), owner_of(None, v6("2001:db8::ffff:2")));
        assert_ne!(owner_of(None, v6("10.0.0.1")), owner_of(None, v6("10.0.0.2")));
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

    #[test]
    fn nodes_sharing_a_directory_count_each_others_shares_and_keep_their_uploads() {
        let dir = std::env::temp_dir().join(format!("parley-files-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let limits = crate::config::Files { quota_bytes: 2_000_000, ..crate::config::Files::default() };
        let a = Arc::new(FileStore::open(&dir, limits.clone(), Some("a")).expect("opens"));
        // An upload in progress on a, and content a has just moved in before its share.
        std::fs::write(a.temp_path("00000000000000aa"), b"half").expect("writes");
        let content = a.content_path(&"cd".repeat(32));
        std::fs::create_dir_all(content.parent().expect("a directory")).expect("creates");
        std::fs::write(&content, b"moved in").expect("writes");
        // A share a made.
        let made = share(Some("dev"), None);
        std::fs::write(a.share_path(&made.info.file), serde_json::to_vec(&made).expect("encodes")).expect("writes");
        let b = Arc::new(FileStore::open(&dir, limits.clone(), Some("b")).expect("opens"));
        assert!(a.temp_path("00000000000000aa").exists(), "b's start left a's upload alone");
        assert!(content.exists(), "b's start left young unreferenced content alone");
        let on_disk = b.shared_usage(&made.owner).expect("reads");
        assert_eq!(on_disk, made.info.size, "b counts the share made through a");
        assert!(
            matches!(b.reserve(&made.owner, 1_000_000, on_disk), Err(FileError::Quota { .. })),
            "the quota holds across nodes"
        );
        let fits = b.reserve(&made.owner, 500_000, on_disk).expect("fits");
        assert!(
            matches!(b.reserve(&made.owner, 500_000, on_disk), Err(FileError::Quota { .. })),
            "an upload in progress counts"
        );
        drop(fits);
        assert!(b.reserve(&made.owner, 500_000, on_disk).is_ok(), "and stops counting when it ends");
        // Alone, a server deletes unreferenced content at start.
        let _alone = FileStore::open(&dir, limits, None).expect("opens");
        assert!(!content.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
