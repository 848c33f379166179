//! File transfer over the native protocol: `upload` then `chunk`s in, `download` then
//! `read`s out. The connection's reader handles these itself, between the disk and the
//! socket, and goes to the hub only to post the finished file as a message: a file's
//! bytes never pass through the hub.
//!
//! Memory stays bounded per connection whatever the file's size: an upload holds the
//! one frame being written (the reader reads nothing more meanwhile, so TCP pushes back
//! on the sender), and a download holds the pieces the client has asked for and not yet
//! read, at most `window` of them.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parley_hub::{Command, Destination, Kind, Session};
use parley_proto::msg::{self, ErrorCode, FileInfo, Request};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error_frame;
use crate::files::{owner_of, FileError, FileStore, Progress, Share, Upload};
use crate::server::Shared;

/// Bytes per piece, both ways (lowered to `max_frame_payload` if that is smaller): large
/// enough that framing costs nothing, small enough that a connection's buffers stay
/// small.
const PIECE: usize = 64 * 1024;

/// Downloads one connection may have open at once; opening another closes the oldest.
const MAX_OPEN_DOWNLOADS: usize = 4;

/// What a transfer request comes to.
pub(super) enum Outcome {
    /// An answer, encoded.
    Answer(Bytes),
    /// The upload is complete and kept: post its message (the hub's answer to it is the
    /// answer to the last `chunk`).
    Post(Command),
}

/// A download in progress.
struct Download {
    share: Share,
    file: tokio::fs::File,
    /// Where the file's cursor is.
    at: u64,
    /// When it was opened, to close the oldest first.
    opened: u64,
}

/// One connection's transfers: at most one upload and a few downloads.
pub(super) struct Transfers {
    files: Option<Arc<FileStore>>,
    /// Boxed: a connection that is not uploading (nearly all, nearly always) holds a
    /// pointer, not an open file and a hash in progress.
    upload: Option<Box<Upload>>,
    /// A B-tree, not a hash map: empty (as in nearly every connection) it is 24 bytes
    /// of the connection's task, not 48, and it holds at most a few entries.
    downloads: BTreeMap<String, Download>,
    opened: u64,
    piece: usize,
    window: usize,
}

impl Transfers {
    pub(super) fn new(shared: &Shared) -> Transfers {
        let piece = PIECE.min(shared.limits.max_frame_payload).max(1);
        // Half the send queue, so answers and chat events still fit beside the pieces.
        let window = (shared.limits.send_queue_bytes / 2 / (piece + 256)).max(1);
        Transfers { files: shared.files.clone(), upload: None, downloads: BTreeMap::new(), opened: 0, piece, window }
    }

    /// Whether this request moves a transfer's bytes (a piece of the upload in progress,
    /// a read of an open download): those are paced by TCP and the file's size, not by
    /// the flood limit meant for chat.
    pub(super) fn streaming(&self, request: &Request, payload: &Bytes) -> bool {
        match request {
            Request::Chunk { file, .. } => !payload.is_empty() && self.upload.as_ref().is_some_and(|u| u.id() == file),
            Request::Read { file, .. } => self.downloads.contains_key(file),
            _ => false,
        }
    }

    /// Carries out `upload`, `chunk`, `download` or `read`.
    pub(super) async fn handle(&mut self, session: &Session, id: u64, request: Request, payload: Bytes) -> Outcome {
        let Some(files) = self.files.clone() else {
            return Outcome::Answer(error_frame(Some(id), ErrorCode::FilesUnavailable, "this server takes no files"));
        };
        let result = match request {
            Request::Upload { room, to, name, size, media_type, sha256 } => {
                let info = FileInfo { file: String::new(), name, size, media_type, sha256 };
                self.begin(id, &files, session, info, room, to).await.map(Outcome::Answer)
            }
            Request::Chunk { file, offset } => self.chunk(id, session, &file, offset, &payload).await,
            Request::Download { file } => self.download(id, &files, session, &file).await.map(Outcome::Answer),
            Request::Read { file, offset } => self.read(id, &file, offset).await.map(Outcome::Answer),
            Request::Thumbnail { file } => return thumbnail(id, &files, session, &file).await,
            _ => Err(FileError::Bad("not a transfer request".into())),
        };
        match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let message = match &e {
                    FileError::Refused(refused) => crate::gateway::words::error(refused),
                    other => other.to_string(),
                };
                Outcome::Answer(error_frame(Some(id), code(&e), &message))
            }
        }
    }

    async fn begin(
        &mut self,
        id: u64,
        files: &Arc<FileStore>,
        session: &Session,
        mut info: FileInfo,
        room: Option<String>,
        to: Option<String>,
    ) -> Result<Bytes, FileError> {
        // A new upload replaces one in progress, which is abandoned.
        self.upload = None;
        if room.is_some() == to.is_some() {
            return Err(FileError::Bad("give room or to, not both".into()));
        }
        // Checked as a message there would be, before anything is stored or charged: a
        // room the session is in and may speak in, or someone online.
        let destination = session.may_send(room.clone(), to.clone()).await.map_err(FileError::Refused)?;
        let me = where_is(session).await?;
        if info.size > files.max_file_bytes() {
            return Err(FileError::TooLarge { size: info.size, max: files.max_file_bytes() });
        }
        info.file = files.new_id()?;
        let owner = owner_of(me.account.as_ref().map(|a| a.id), me.address);
        let (room, since, to, recipient) = match destination {
            Destination::Room(room, since) => (Some(room.to_string()), Some(since), None, None),
            Destination::Person(nick, party) => (None, None, Some(nick.to_string()), Some(party.to_i64())),
        };
        let sender = Some(me.party.to_i64());
        let share = Share { info, from: me.nick.to_string(), owner, room, since, to, sender, recipient };
        let upload = Upload::begin(files, share).await?;
        let reply = msg::Reply::Upload { file: upload.id().to_owned(), chunk: self.piece };
        self.upload = Some(Box::new(upload));
        Ok(result(id, &reply))
    }

    async fn chunk(
        &mut self,
        id: u64,
        session: &Session,
        file: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<Outcome, FileError> {
        let Some(upload) = self.upload.as_mut().filter(|u| u.id() == file) else {
            return Err(FileError::NoSuchFile(file.to_owned()));
        };
        let progress = match upload.write(offset, bytes).await {
            Ok(progress) => {
                if let Some(files) = &self.files {
                    crate::metrics::FileBytes::add(&files.bytes.received, bytes.len());
                }
                progress
            }
            Err(e) => {
                // The upload cannot go on; drop it (and its temporary file).
                self.upload = None;
                return Err(e);
            }
        };
        match progress {
            Progress::More(received) => {
                Ok(Outcome::Answer(result(id, &msg::Reply::Received { file: file.to_owned(), received })))
            }
            Progress::Complete => {
                let Some(upload) = self.upload.take() else {
                    return Err(FileError::NoSuchFile(file.to_owned()));
                };
                let share = (*upload).finish().await?;
                // Checked again: the session may have left the room, been muted, or its
                // receiver gone while the bytes came. A share that cannot be posted is
                // taken back, and so is the quota it took.
                if let Err(refused) = session.may_send(share.room.clone(), share.to.clone()).await {
                    if let Some(files) = &self.files {
                        files.withdraw(&share).await?;
                    }
                    return Err(FileError::Refused(refused));
                }
                let text = serde_json::to_string(&share.info).map_err(std::io::Error::other)?;
                Ok(Outcome::Post(match (share.room, share.to) {
                    (Some(room), _) => {
                        Command::Say { room: Some(room), kind: Kind::File, text, meta: Default::default() }
                    }
                    (None, to) => Command::Whisper {
                        to: to.unwrap_or_default(),
                        kind: Kind::File,
                        text,
                        meta: Default::default(),
                    },
                }))
            }
        }
    }

    async fn download(
        &mut self,
        request: u64,
        files: &Arc<FileStore>,
        session: &Session,
        id: &str,
    ) -> Result<Bytes, FileError> {
        let missing = || FileError::NoSuchFile(id.to_owned());
        let share = files.share(id).await.ok_or_else(missing)?;
        let me = where_is(session).await?;
        if !share.visible_to(&me) {
            return Err(missing());
        }
        let file = match tokio::fs::File::open(files.content_path(&share.info.sha256)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        if self.downloads.len() >= MAX_OPEN_DOWNLOADS && !self.downloads.contains_key(id) {
            let oldest = self.downloads.iter().min_by_key(|(_, d)| d.opened).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.downloads.remove(&oldest);
            }
        }
        let reply = msg::Reply::Download {
            info: share.info.clone(),
            from: share.from.clone(),
            chunk: self.piece,
            window: self.window,
        };
        self.opened += 1;
        self.downloads.insert(id.to_owned(), Download { share, file, at: 0, opened: self.opened });
        Ok(result(request, &reply))
    }

    async fn read(&mut self, id: u64, file: &str, offset: u64) -> Result<Bytes, FileError> {
        let Some(download) = self.downloads.get_mut(file) else {
            return Err(FileError::NoSuchFile(file.to_owned()));
        };
        let size = download.share.info.size;
        if offset > size {
            return Err(FileError::Bad(format!("offset {offset} is past the end ({size} bytes)")));
        }
        // At most one piece: `size - offset` fits a usize once it is below `piece`.
        let len = usize::try_from(size - offset).map_or(self.piece, |rest| rest.min(self.piece));
        if download.at != offset {
            download.file.seek(SeekFrom::Start(offset)).await?;
        }
        let mut piece = vec![0u8; len];
        download.file.read_exact(&mut piece).await?;
        if let Some(files) = &self.files {
            crate::metrics::FileBytes::add(&files.bytes.sent, len);
        }
        download.at = offset + len as u64;
        if download.at == size {
            self.downloads.remove(file);
        }
        let mut out = BytesMut::with_capacity(len + 128);
        msg::encode_data(id, file, offset, &piece, &mut out).map_err(std::io::Error::other)?;
        Ok(out.freeze())
    }
}

/// A `thumbnail`: the preview of a shared image, in one `data` frame, with the checks
/// `download` makes.
async fn thumbnail(request: u64, files: &Arc<FileStore>, session: &Session, id: &str) -> Outcome {
    use crate::files::thumbnail::{self, ThumbnailError};
    let missing = || {
        Outcome::Answer(error_frame(Some(request), ErrorCode::NoSuchFile, &format!("no file {id} that you may see")))
    };
    let Some(share) = files.share(id).await else { return missing() };
    match where_is(session).await {
        Ok(me) if share.visible_to(&me) => {}
        _ => return missing(),
    }
    match thumbnail::thumbnail(files, &share).await {
        Ok(png) => {
            crate::metrics::FileBytes::add(&files.bytes.sent, png.len());
            let mut out = BytesMut::with_capacity(png.len() + 128);
            match msg::encode_data(request, id, 0, &png, &mut out) {
                Ok(()) => Outcome::Answer(out.freeze()),
                Err(e) => Outcome::Answer(error_frame(Some(request), ErrorCode::FilesUnavailable, &e.to_string())),
            }
        }
        Err(ThumbnailError::Io(e)) => {
            tracing::warn!(file = id, "no thumbnail: {e}");
            missing()
        }
        Err(e) => Outcome::Answer(error_frame(Some(request), ErrorCode::NotAnImage, &e.to_string())),
    }
}

async fn where_is(session: &Session) -> Result<parley_hub::Whereabouts, FileError> {
    match session.whereabouts().await {
        Ok(Some(me)) => Ok(me),
        _ => Err(FileError::Io(std::io::Error::other("the session has ended"))),
    }
}

/// A `result` frame answering request `id`.
fn result(id: u64, reply: &msg::Reply) -> Bytes {
    let mut out = BytesMut::new();
    // Only a header over 64 KiB can fail, and these headers are a few dozen bytes.
    if let Err(e) = msg::encode_result(id, reply, &mut out) {
        tracing::error!("cannot encode {reply:?}: {e}");
    }
    out.freeze()
}

/// The protocol's error code for a file error.
fn code(e: &FileError) -> ErrorCode {
    match e {
        FileError::TooLarge { .. } => ErrorCode::FileTooLarge,
        FileError::Quota { .. } => ErrorCode::QuotaExceeded,
        FileError::NoSuchFile(_) => ErrorCode::NoSuchFile,
        FileError::Refused(e) => super::error_code(e),
        FileError::Checksum { .. } => ErrorCode::ChecksumMismatch,
        FileError::Bad(_) => ErrorCode::BadRequest,
        FileError::Io(_) => ErrorCode::FilesUnavailable,
    }
}
