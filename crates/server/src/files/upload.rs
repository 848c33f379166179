//! One upload in progress: its bytes go straight to a temporary file and through the
//! SHA-256, one piece at a time, so the server holds at most one piece of it in memory
//! whatever the file's size.

use std::path::PathBuf;
use std::sync::Arc;

use ring::digest::{Context, SHA256};
use tokio::io::AsyncWriteExt;

use super::{hex, FileError, FileStore, Reservation, Share, MAX_NAME_BYTES};

/// An upload that has started and not yet finished.
pub(crate) struct Upload {
    store: Arc<FileStore>,
    share: Share,
    temp: PathBuf,
    file: tokio::fs::File,
    hasher: Context,
    received: u64,
    reservation: Option<Reservation>,
    /// Set once the temporary file is gone (moved or deleted), so drop leaves it be.
    settled: bool,
}

/// Where an upload stands after a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// More to come; this many bytes so far.
    More(u64),
    /// Every byte has arrived.
    Complete,
}

impl Upload {
    /// Checks an offer and starts it: the share's id, size, name and hash are in
    /// `share`; the quota is charged now, so two uploads at once cannot both squeeze
    /// under it.
    pub(crate) async fn begin(store: &Arc<FileStore>, mut share: Share) -> Result<Upload, FileError> {
        share.info.name = clean_name(&share.info.name)?;
        share.info.sha256 = share.info.sha256.to_ascii_lowercase();
        if share.info.sha256.len() != 64 || !share.info.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FileError::Bad("sha256 must be 64 hex digits".into()));
        }
        if share.info.media_type.is_empty()
            || share.info.media_type.len() > 255
            || share.info.media_type.contains(|c: char| c.is_control() || c.is_whitespace())
        {
            share.info.media_type = "application/octet-stream".into();
        }
        let on_disk = {
            let (store, owner) = (store.clone(), share.owner.clone());
            tokio::task::spawn_blocking(move || store.shared_usage(&owner)).await.map_err(std::io::Error::other)??
        };
        let reservation = store.reserve(&share.owner, share.info.size, on_disk)?;
        let temp = store.temp_path(&share.info.file);
        let file = tokio::fs::File::create(&temp).await?;
        Ok(Upload {
            store: store.clone(),
            share,
            temp,
            file,
            hasher: Context::new(&SHA256),
            received: 0,
            reservation: Some(reservation),
            settled: false,
        })
    }

    /// The file's id.
    pub(crate) fn id(&self) -> &str {
        &self.share.info.file
    }

    /// Writes the piece that starts at `offset`, which must be where the last one ended.
    pub(crate) async fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<Progress, FileError> {
        if offset != self.received {
            return Err(FileError::Bad(format!("expected the piece at offset {}, not {offset}", self.received)));
        }
        let end = self.received.saturating_add(bytes.len() as u64);
        if end > self.share.info.size {
            return Err(FileError::Bad(format!("more bytes than the {} announced", self.share.info.size)));
        }
        if bytes.is_empty() && end < self.share.info.size {
            return Err(FileError::Bad("an empty piece".into()));
        }
        self.file.write_all(bytes).await?;
        self.hasher.update(bytes);
        self.received = end;
        Ok(if end == self.share.info.size { Progress::Complete } else { Progress::More(end) })
    }

    /// Checks the hash and, if it matches, keeps the file and its share. On any failure
    /// the temporary file is deleted and the quota given back.
    pub(crate) async fn finish(mut self) -> Result<Share, FileError> {
        self.file.flush().await?;
        self.file.sync_all().await?;
        let got = hex(self.hasher.clone().finish().as_ref());
        if got != self.share.info.sha256 {
            return Err(FileError::Checksum { announced: self.share.info.sha256.clone(), got });
        }
        self.store.commit(&self.temp, &self.share).await?;
        self.settled = true;
        if let Some(reservation) = self.reservation.take() {
            reservation.keep();
        }
        Ok(self.share.clone())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // An abandoned upload leaves nothing behind. Deleting is quick, but it is still
        // a disk call: off the runtime's workers when there is a runtime.
        let temp = std::mem::take(&mut self.temp);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(move || remove(&temp));
            }
            Err(_) => remove(&temp),
        }
    }
}

fn remove(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), "cannot delete an abandoned upload: {e}");
        }
    }
}

/// The file's name without any directory, as a name the server will show.
fn clean_name(name: &str) -> Result<String, FileError> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim();
    if base.is_empty() || base == "." || base == ".." || base.contains(char::is_control) {
        return Err(FileError::Bad("the file needs a name without control characters".into()));
    }
    if base.len() > MAX_NAME_BYTES {
        return Err(FileError::Bad(format!("a file name is at most {MAX_NAME_BYTES} bytes")));
    }
    Ok(base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_directories_and_bad_ones_are_refused() {
        assert_eq!(clean_name("/home/bob/report.pdf").expect("valid"), "report.pdf");
        assert_eq!(clean_name("C:\\Users\\bob\\a b.txt").expect("valid"), "a b.txt");
        assert!(clean_name("dir/").is_err());
        assert!(clean_name("..").is_err());
        assert!(clean_name("bell\u{7}").is_err());
    }
}
