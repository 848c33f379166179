//! Sending and fetching files: [`Client::send_file`] and [`Client::get_file`].
//!
//! Both keep a few pieces in flight instead of waiting for each answer, so a transfer
//! runs at the connection's speed rather than one piece per round trip, and both hash
//! as the bytes pass: an upload announces its SHA-256 (the server checks it), and a
//! download is written to a temporary file that becomes the file only once its SHA-256
//! matches the one announced.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parley_proto::msg::{encode_chunk, encode_request, FileInfo, Reply, Request};
use ring::digest::{Context, SHA256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::client::{Answer, Answered, Client, Error};

/// Pieces of an upload in flight at once. The server reads one at a time; the others
/// wait in the socket buffers, which keeps the pipe full.
const UPLOAD_WINDOW: usize = 8;

/// Where a file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Everyone in a room (one you are in).
    Room(String),
    /// One user, privately.
    User(String),
}

/// How far a transfer has come, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes moved.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Time since the transfer started.
    pub elapsed: Duration,
}

impl Progress {
    /// Bytes per second so far.
    #[must_use]
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        // Progress bars need no more than f64's precision.
        #[allow(clippy::cast_precision_loss)]
        let done = self.done as f64;
        if secs > 0.0 {
            done / secs
        } else {
            0.0
        }
    }

    /// The time left at the rate so far; `None` before there is a rate.
    #[must_use]
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        #[allow(clippy::cast_precision_loss)]
        let left = self.total.saturating_sub(self.done) as f64;
        (rate > 0.0).then(|| Duration::from_secs_f64(left / rate))
    }
}

/// A file the server accepted and shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// What was shared; `info.file` is the id others download it by.
    pub info: FileInfo,
    /// The message's seq (in the room, or among private messages).
    pub seq: u64,
}

/// A file downloaded and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// What it is.
    pub info: FileInfo,
    /// Who shared it.
    pub from: String,
    /// Where it was saved.
    pub path: PathBuf,
}

impl Client {
    /// Shares the file at `path` with `audience`: hashes it, announces it, and sends it
    /// in pieces, calling `progress` as the server confirms them.
    pub async fn send_file(
        &self,
        path: &Path,
        audience: Audience,
        mut progress: impl FnMut(Progress),
    ) -> Result<Sent, Error> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Io(std::io::Error::other(format!("{} has no usable file name", path.display()))))?
            .to_owned();
        let (size, sha256) = hash_file(path).await?;
        let media_type = media_type(path).to_owned();
        let (room, to) = match audience {
            Audience::Room(room) => (Some(room), None),
            Audience::User(nick) => (None, Some(nick)),
        };
        let offer = Request::Upload {
            room,
            to,
            name: name.clone(),
            size,
            media_type: media_type.clone(),
            sha256: sha256.clone(),
        };
        let (file_id, piece) = match self.request(&offer, b"").await? {
            Reply::Upload { file, chunk } => (file, chunk.max(1)),
            other => return Err(Error::Protocol(format!("unexpected answer {other:?}"))),
        };
        let started = Instant::now();
        let mut source = tokio::fs::File::open(path).await?;
        let mut in_flight: VecDeque<oneshot::Receiver<Answer>> = VecDeque::new();
        let mut offset = 0u64;
        let mut buf = vec![0u8; piece];
        let mut sent_all = false;
        loop {
            while !sent_all && in_flight.len() < UPLOAD_WINDOW {
                // The size announced is what is sent, even if the file grows meanwhile.
                let want = usize::try_from(size - offset).map_or(piece, |rest| rest.min(piece));
                let n = read_up_to(&mut source, &mut buf[..want]).await?;
                if n < want {
                    return Err(Error::Io(std::io::Error::other("the file shrank while being sent")));
                }
                let (at, bytes) = (offset, &buf[..n]);
                in_flight.push_back(self.start(|id, frame| encode_chunk(id, &file_id, at, bytes, frame)).await?);
                offset += n as u64;
                // An empty file is one empty piece.
                sent_all = offset >= size;
            }
            let Some(next) = in_flight.pop_front() else { break };
            match next.await.unwrap_or(Err(Error::Disconnected))? {
                Answered::Reply(Reply::Received { received, .. }) => {
                    progress(Progress { done: received, total: size, elapsed: started.elapsed() });
                }
                Answered::Reply(Reply::Shared { seq, .. }) => {
                    progress(Progress { done: size, total: size, elapsed: started.elapsed() });
                    let info = FileInfo { file: file_id, name, size, media_type, sha256 };
                    return Ok(Sent { info, seq });
                }
                other => return Err(Error::Protocol(format!("unexpected answer {other:?}"))),
            }
        }
        Err(Error::Protocol("the upload ended without the server sharing the file".into()))
    }

    /// Downloads the file `id` to `dest` (a file, or a directory to put it in under its
    /// own name made safe by [`safe_file_name`]; `None`: the current directory), calling
    /// `progress` as pieces arrive. Without an explicit file name an existing file is
    /// never replaced: the name gets ` (1)`, ` (2)`, ... instead.
    pub async fn get_file(
        &self,
        id: &str,
        dest: Option<&Path>,
        mut progress: impl FnMut(Progress),
    ) -> Result<Fetched, Error> {
        let (info, from, piece, window) = match self.request(&Request::Download { file: id.to_owned() }, b"").await? {
            Reply::Download { info, from, chunk, window } => (info, from, chunk.max(1) as u64, window.max(1)),
            other => return Err(Error::Protocol(format!("unexpected answer {other:?}"))),
        };
        let (path, reserved) = destination(dest, &info.name).await?;
        let temp = path.with_file_name(format!(
            ".{}.parley-part",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("download")
        ));
        let outcome = self.fetch_into(&info, &temp, piece, window, &mut progress).await;
        let outcome = match outcome {
            Ok(()) => tokio::fs::rename(&temp, &path).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let _ = tokio::fs::remove_file(&temp).await;
            if reserved {
                let _ = tokio::fs::remove_file(&path).await;
            }
            return Err(e);
        }
        Ok(Fetched { info, from, path })
    }

    async fn fetch_into(
        &self,
        info: &FileInfo,
        temp: &Path,
        piece: u64,
        window: usize,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), Error> {
        let started = Instant::now();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(temp).await?);
        let mut hasher = Context::new(&SHA256);
        let mut in_flight: VecDeque<(u64, oneshot::Receiver<Answer>)> = VecDeque::new();
        let (mut asked, mut done) = (0u64, 0u64);
        while done < info.size {
            while asked < info.size && in_flight.len() < window {
                let read = Request::Read { file: info.file.clone(), offset: asked };
                in_flight.push_back((asked, self.start(|id, frame| encode_request(id, &read, b"", frame)).await?));
                asked = asked.saturating_add(piece).min(info.size);
            }
            let Some((expected, next)) = in_flight.pop_front() else { break };
            match next.await.unwrap_or(Err(Error::Disconnected))? {
                Answered::Data { offset, bytes } if offset == expected && !bytes.is_empty() => {
                    out.write_all(&bytes).await?;
                    hasher.update(&bytes);
                    done = offset + bytes.len() as u64;
                    progress(Progress { done, total: info.size, elapsed: started.elapsed() });
                }
                other => return Err(Error::Protocol(format!("unexpected answer to a read: {other:?}"))),
            }
        }
        out.flush().await?;
        out.get_ref().sync_all().await?;
        let got = hex(hasher.finish().as_ref());
        if !got.eq_ignore_ascii_case(&info.sha256) {
            return Err(Error::Corrupt { expected: info.sha256.clone(), got });
        }
        if info.size == 0 {
            progress(Progress { done: 0, total: 0, elapsed: started.elapsed() });
        }
        Ok(())
    }
}

/// The longest name a download is saved under, in bytes: with ` (NNNN)` and the
/// temporary name's `.` and `.parley-part` it stays within the 255 bytes most file
/// systems allow.
const MAX_SAVED_NAME: usize = 200;

/// An extension longer than this is part of the name when a long name is shortened.
const MAX_KEPT_EXTENSION: usize = 16;

/// How many ` (N)` names are tried before a download gives up finding a free one.
const MAX_SUFFIX: u32 = 10_000;

/// Names Windows gives to devices, with any extension: a file cannot have them.
const DEVICES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// The name a shared file is saved under when the user gives no file name: the server's
/// name for it is someone else's word, so it is made a plain file name. Only its last
/// path component is kept; control characters, path separators and the characters
/// Windows forbids become `_`, and so do the controls that reorder text on screen (a
/// `report\u{202E}fdp.exe` reads `reportexe.pdf`); leading dots go (no hidden file, no
/// `.bash_profile`), and so do trailing dots and spaces; a device name (`CON`, `com1.txt`)
/// gets a leading `_`; a name over 200 bytes is shortened, keeping its extension; an
/// empty name is `download`.
#[must_use]
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let replaced: String = last
        .chars()
        .map(|c| {
            let forbidden = c.is_control()
                || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}');
            if forbidden {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = replaced.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return "download".to_owned();
    }
    let stem = trimmed.split('.').next().unwrap_or_default().trim_end();
    let mut name =
        if DEVICES.iter().any(|d| d.eq_ignore_ascii_case(stem)) { format!("_{trimmed}") } else { trimmed.to_owned() };
    if name.len() > MAX_SAVED_NAME {
        let extension = name.rfind('.').map(|at| &name[at..]).filter(|e| e.len() <= MAX_KEPT_EXTENSION);
        let extension = extension.unwrap_or_default().to_owned();
        let mut cut = MAX_SAVED_NAME - extension.len();
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        name.push_str(&extension);
    }
    name
}

/// Where a download is saved, and whether that path was created empty here to keep the
/// place (to be removed if the download fails). A `dest` that is not a directory is the
/// user's own choice and used as given; otherwise the file goes into the directory under
/// [`safe_file_name`], and an existing file is never replaced: the name gets ` (1)`,
/// ` (2)`, ... instead. The place is taken with an exclusive create, so that nothing
/// that appears meanwhile is overwritten either.
async fn destination(dest: Option<&Path>, name: &str) -> Result<(PathBuf, bool), Error> {
    let dir = match dest {
        Some(dest) if tokio::fs::metadata(dest).await.is_ok_and(|m| m.is_dir()) => dest.to_owned(),
        Some(dest) => return Ok((dest.to_owned(), false)),
        None => PathBuf::from("."),
    };
    let name = safe_file_name(name);
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    let mut path = dir.join(&name);
    for n in 1..=MAX_SUFFIX {
        match tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await {
            Ok(_) => return Ok((path, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => path = dir.join(format!("{stem} ({n}){ext}")),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Io(std::io::Error::other(format!("no free name for {name} in {}", dir.display()))))
}

/// The size and SHA-256 of a file, read once through.
async fn hash_file(path: &Path) -> Result<(u64, String), Error> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Context::new(&SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(hasher.finish().as_ref())))
}

/// Fills `buf` unless the file ends first; returns how much was read.
async fn read_up_to(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A file's media type, guessed from its extension: the common ones people share in a
/// chat; anything else is `application/octet-stream`.
#[must_use]
pub fn media_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "odt" => "application/vnd.oasis.opendocument.text",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_the_extension() {
        assert_eq!(media_type(Path::new("a/report.PDF")), "application/pdf");
        assert_eq!(media_type(Path::new("photo.jpeg")), "image/jpeg");
        assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn shared_names_become_plain_file_names() {
        let cases = [
            (".bash_profile", "bash_profile"),
            ("../x", "x"),
            ("..\\..\\x.txt", "x.txt"),
            ("a/b", "b"),
            ("/etc/passwd", "passwd"),
            ("dir/", "download"),
            ("", "download"),
            (".", "download"),
            ("..", "download"),
            ("...", "download"),
            ("bell\u{7}\x1b[2J.txt", "bell__[2J.txt"),
            ("c1\u{9b}31m", "c1_31m"),
            ("new\nline", "new_line"),
            ("report\u{202E}fdp.exe", "report_fdp.exe"),
            ("a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
            ("CONSOLE.txt", "CONSOLE.txt"),
            ("trailing. . ", "trailing"),
            ("  spaced name.pdf", "spaced name.pdf"),
            ("日本語.txt", "日本語.txt"),
        ];
        for (name, saved) in cases {
            assert_eq!(safe_file_name(name), saved, "{name:?}");
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_and_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let saved = safe_file_name(&long);
        assert!(saved.len() <= MAX_SAVED_NAME, "{} bytes", saved.len());
        assert!(saved.ends_with("é.pdf"), "{saved}");
        let no_extension = safe_file_name(&"x".repeat(1000));
        assert_eq!(no_extension.len(), MAX_SAVED_NAME);
        let odd_extension = safe_file_name(&format!("a.{}", "b".repeat(500)));
        assert_eq!(odd_extension.len(), MAX_SAVED_NAME);
    }

    #[tokio::test]
    async fn a_destination_never_takes_an_existing_name() {
        let dir = std::env::temp_dir().join(format!("parley-destination-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("notes.txt"), b"mine").expect("written");
        let (first, reserved) = destination(Some(&dir), "../notes.txt").await.expect("a place");
        assert_eq!((first.clone(), reserved), (dir.join("notes (1).txt"), true));
        let (second, _) = destination(Some(&dir), "notes.txt").await.expect("a place");
        assert_eq!(second, dir.join("notes (2).txt"), "the first place is taken as soon as it is chosen");
        let given = dir.join("notes.txt");
        assert_eq!(destination(Some(&given), ".evil").await.expect("as given"), (given, false));
        assert_eq!(std::fs::read(dir.join("notes.txt")).expect("kept"), b"mine");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rate_and_eta_follow_the_bytes() {
        let p = Progress { done: 50, total: 150, elapsed: Duration::from_secs(10) };
        assert!((p.rate() - 5.0).abs() < f64::EPSILON);
        assert_eq!(p.eta(), Some(Duration::from_secs(20)));
    }
}
