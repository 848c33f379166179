//! The classic line protocol: UTF-8 text lines ending in `\n` (a `\r` before it is
//! dropped), and the slash commands a user types.
//!
//! The decoder is bounded: a line longer than the limit is reported once and skipped up
//! to its newline, so a peer can never make the server buffer more than the limit.

use bytes::{Buf, BytesMut};

/// What the server sends before it reads a username.
pub const USERNAME_PROMPT: &str = "Please enter your username: ";

/// A line the decoder could not turn into text. Both are recoverable: the decoder has
/// already skipped the offending line and the next call decodes the line after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line was longer than the decoder's limit (in bytes, without the newline).
    #[error("line longer than {max} bytes")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// The line was not valid UTF-8.
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
}

/// A bounded decoder of `\n`-terminated lines.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    max_len: usize,
    /// Where to resume the search for `\n`, so a line that arrives in many small reads is
    /// scanned once, not once per read.
    scanned: usize,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
}

impl LineDecoder {
    /// A decoder for lines of at most `max_len` bytes (not counting `\r\n`).
    #[must_use]
    pub fn new(max_len: usize) -> Self {
        Self { max_len, scanned: 0, discarding: false }
    }

    /// The longest line this decoder accepts, in bytes.
    #[must_use]
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Takes one whole line from the front of `buf`.
    ///
    /// Returns `Ok(None)` when no whole line is buffered yet. An error consumes the bad
    /// line (or starts skipping it), so the caller may report it and call again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        loop {
            let newline = buf[self.scanned..].iter().position(|b| *b == b'\n');
            match (self.discarding, newline) {
                (true, Some(at)) => {
                    buf.advance(self.scanned + at + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (false, Some(at)) => {
                    let end = self.scanned + at;
                    self.scanned = 0;
                    let line = buf.split_to(end + 1);
                    let text = trim_newline(&line);
                    if text.len() > self.max_len {
                        return Err(LineError::TooLong { max: self.max_len });
                    }
                    return to_text(text).map(Some);
                }
                (false, None) => {
                    // The limit plus room for "\r": anything longer cannot become valid.
                    if buf.len() > self.max_len.saturating_add(1) {
                        self.discarding = true;
                        self.scanned = 0;
                        buf.clear();
                        return Err(LineError::TooLong { max: self.max_len });
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    /// Like [`decode`](Self::decode), for when the peer has closed its side: whatever is
    /// left in `buf` is the last line, even without a newline.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, LineError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if self.discarding || buf.is_empty() {
            buf.clear();
            self.discarding = false;
            self.scanned = 0;
            return Ok(None);
        }
        let rest = buf.split();
        self.scanned = 0;
        let text = trim_newline(&rest);
        if text.len() > self.max_len {
            return Err(LineError::TooLong { max: self.max_len });
        }
        to_text(text).map(Some)
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn to_text(bytes: &[u8]) -> Result<String, LineError> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| LineError::InvalidUtf8)
}

#[cfg(feature = "codec")]
impl tokio_util::codec::Decoder for LineDecoder {
    type Item = String;
    type Error = LineCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<String>, LineCodecError> {
        LineDecoder::decode(self, src).map_err(LineCodecError::Line)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<String>, LineCodecError> {
        LineDecoder::decode_eof(self, src).map_err(LineCodecError::Line)
    }
}

/// The error type of the line codec when it drives a `tokio_util` stream, which also
/// reports I/O errors through the codec.
#[cfg(feature = "codec")]
#[derive(Debug, thiserror::Error)]
pub enum LineCodecError {
    /// A bad line.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One line typed by a user, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Plain text for the current room. A line starting with `//` sends the rest
    /// starting with a single `/`.
    Say(String),
    /// `/help`: list the commands.
    Help,
    /// `/who`: the users in the current room.
    Who,
    /// `/rooms`: the rooms on the server.
    Rooms,
    /// `/msg NAME text`: a private message.
    Msg {
        /// Who it is for.
        to: String,
        /// What it says.
        text: String,
    },
    /// `/me TEXT`: an action, said in the third person (`* alice waves`).
    Me(String),
    /// `/away [MESSAGE]`: mark yourself away with a message, or back without one.
    Away(Option<String>),
    /// `/whois NICK`: what the server says about someone.
    Whois(String),
    /// `/invite NICK`: invite someone into your room.
    Invite(String),
    /// `/nick NEW`: change name.
    Nick(String),
    /// `/join ROOM`: enter (or create) a room, leaving the current one.
    Join(String),
    /// `/part`: leave the current room.
    Part,
    /// `/search WORDS [from:NICK] [in:ROOM] [before:DATE] [after:DATE] [page:N]`.
    Search(String),
    /// `/context SEQ`: the messages around one in the current room.
    Context(u64),
    /// `/delete SEQ [REASON]`: delete a message of the current room (your own; anyone's
    /// as an operator).
    Delete {
        /// The message's number, as `/search` shows it.
        seq: u64,
        /// Why, shown to the room.
        reason: Option<String>,
    },
    /// `/topic [TEXT]`: show the room's topic, or set it.
    Topic(Option<String>),
    /// `/audit [N]`: the latest N lines of the audit log (admins).
    Audit(Option<usize>),
    /// `/kick NICK [reason]`.
    Kick {
        /// Who.
        nick: String,
        /// Why.
        reason: Option<String>,
    },
    /// `/ban NICK|ADDRESS [DURATION] [reason]`.
    Ban {
        /// Who.
        mask: String,
        /// For how long (`30s`, `10m`, `2h`, `7d`); `None`: until lifted.
        duration: Option<std::time::Duration>,
        /// Why.
        reason: Option<String>,
    },
    /// `/unban NICK|ADDRESS`.
    Unban(String),
    /// `/serverban NICK|ADDRESS [DURATION] [reason]`: keep someone off the server
    /// (server admins).
    ServerBan {
        /// Who.
        mask: String,
        /// For how long; `None`: until lifted.
        duration: Option<std::time::Duration>,
        /// Why.
        reason: Option<String>,
    },
    /// `/serverunban NICK|ADDRESS`.
    ServerUnban(String),
    /// `/serverbans`: the server bans in force.
    ServerBans,
    /// `/room register` or `/room unregister`: make the current room durable (its
    /// operators, settings, bans, topic and history outlive its members), or undo it.
    Room {
        /// Register (`true`) or unregister.
        register: bool,
    },
    /// `/unregister PASSWORD`: delete your account.
    Unregister(String),
    /// `/mute NICK [DURATION]`.
    Mute {
        /// Who.
        nick: String,
        /// For how long; `None`: until lifted.
        duration: Option<std::time::Duration>,
    },
    /// `/unmute NICK`.
    Unmute(String),
    /// `/op NICK`: make an account an operator of the room.
    Op(String),
    /// `/deop NICK`.
    Deop(String),
    /// `/register PASSWORD`: make the current nick an account.
    Register(String),
    /// `/sessions`: the account's resume tokens (where it stays logged in).
    Sessions,
    /// `/sessions revoke ID`: revoke one of them.
    RevokeSession(u64),
    /// `/login [NAME] PASSWORD`: log in (to the current nick's account without NAME).
    Login {
        /// The account; `None` means the current nick.
        name: Option<String>,
        /// The password.
        password: String,
    },
    /// `/password OLD NEW`: change the account's password.
    Password {
        /// The current password.
        old: String,
        /// The new one.
        new: String,
    },
    /// `/history [N]`: the last N messages of the current room (`None`: the server's
    /// default).
    History(Option<usize>),
    /// `/history NICK [N]`: the last N private messages with NICK.
    Conversation {
        /// The other party.
        with: String,
        /// How many; `None`: the server's default.
        n: Option<usize>,
    },
    /// `/send PATH [NICK]`: share a file in the current room, or privately with NICK
    /// (`parley chat` only). A path with spaces goes in double quotes.
    Send {
        /// The file.
        path: String,
        /// Who it is for; `None`: the current room.
        to: Option<String>,
    },
    /// `/get ID [PATH]`: download a shared file (`parley chat` only).
    Get {
        /// The file's id, as its message shows it.
        id: String,
        /// Where to save it; `None`: its own name in the current directory.
        path: Option<String>,
    },
    /// `/quit`, or `quit`, `exit`, `q` alone on a line: leave the chat.
    Quit,
    /// A known command used wrongly; the text is its usage line.
    Usage(&'static str),
    /// A slash command nobody knows.
    Unknown(String),
}

impl Input {
    /// Parses one line as typed by a line-protocol user.
    #[must_use]
    pub fn parse(line: &str) -> Input {
        let trimmed = line.trim();
        if matches!(trimmed, "quit" | "exit" | "q") {
            return Input::Quit;
        }
        let Some(command_line) = line.strip_prefix('/') else {
            return Input::Say(line.to_owned());
        };
        if command_line.starts_with('/') {
            return Input::Say(command_line.to_owned());
        }
        let command_line = command_line.trim();
        let (name, args) = match command_line.split_once(char::is_whitespace) {
            Some((name, args)) => (name, args.trim()),
            None => (command_line, ""),
        };
        match name.to_ascii_lowercase().as_str() {
            "help" | "h" | "?" => Input::Help,
            "who" | "names" => Input::Who,
            "rooms" | "list" => Input::Rooms,
            "quit" | "exit" | "q" => Input::Quit,
            "part" | "leave" => Input::Part,
            "search" | "grep" => match args {
                "" => {
                    Input::Usage("/search WORDS [from:NICK] [in:ROOM] [before:YYYY-MM-DD] [after:YYYY-MM-DD] [page:N]")
                }
                query => Input::Search(query.to_owned()),
            },
            "context" => match args.parse::<u64>() {
                Ok(seq) => Input::Context(seq),
                Err(_) => Input::Usage("/context SEQ, the number of a message from /search"),
            },
            "delete" | "del" => {
                let (seq, reason) = args.split_once(' ').map_or((args, ""), |(s, r)| (s, r.trim()));
                match seq.trim_start_matches('#').parse::<u64>() {
                    Ok(seq) => Input::Delete { seq, reason: (!reason.is_empty()).then(|| reason.to_owned()) },
                    Err(_) => Input::Usage("/delete SEQ [reason], SEQ the number of a message from /search"),
                }
            }
            "topic" => Input::Topic((!args.is_empty()).then(|| args.to_owned())),
            "audit" => match args {
                "" => Input::Audit(None),
                n => match n.parse::<usize>() {
                    Ok(n) if n > 0 => Input::Audit(Some(n)),
                    _ => Input::Usage("/audit [N], N a number above 0"),
                },
            },
            "kick" => match args.split_once(char::is_whitespace) {
                Some((nick, reason)) => Input::Kick { nick: nick.to_owned(), reason: Some(reason.trim().to_owned()) },
                None if !args.is_empty() => Input::Kick { nick: args.to_owned(), reason: None },
                None => Input::Usage("/kick NICK [reason]"),
            },
            "ban" => match ban_args(args) {
                Some((mask, duration, reason)) => Input::Ban { mask, duration, reason },
                None => Input::Usage("/ban NICK|ADDRESS [DURATION like 30m, 2h, 7d] [reason]"),
            },
            "serverban" | "kline" => match ban_args(args) {
                Some((mask, duration, reason)) => Input::ServerBan { mask, duration, reason },
                None => Input::Usage("/serverban NICK|ADDRESS [DURATION like 30m, 2h, 7d] [reason]"),
            },
            "serverunban" | "unkline" => match single_word(args) {
                Some(mask) => Input::ServerUnban(mask.to_owned()),
                None => Input::Usage("/serverunban NICK|ADDRESS"),
            },
            "serverbans" => Input::ServerBans,
            "room" => match args.to_ascii_lowercase().as_str() {
                "register" => Input::Room { register: true },
                "unregister" => Input::Room { register: false },
                _ => Input::Usage("/room register|unregister"),
            },
            "unregister" => match single_word(args) {
                Some(password) => Input::Unregister(password.to_owned()),
                None => Input::Usage("/unregister PASSWORD (deletes your account)"),
            },
            "unban" => match single_word(args) {
                Some(mask) => Input::Unban(mask.to_owned()),
                None => Input::Usage("/unban NICK|ADDRESS"),
            },
            "mute" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [nick] => Input::Mute { nick: nick.to_owned(), duration: None },
                [nick, time] => match duration(time) {
                    Some(duration) => Input::Mute { nick: nick.to_owned(), duration: Some(duration) },
                    None => Input::Usage("/mute NICK [DURATION like 30m, 2h, 7d]"),
                },
                _ => Input::Usage("/mute NICK [DURATION like 30m, 2h, 7d]"),
            },
            "unmute" => match single_word(args) {
                Some(nick) => Input::Unmute(nick.to_owned()),
                None => Input::Usage("/unmute NICK"),
            },
            "op" => match single_word(args) {
                Some(nick) => Input::Op(nick.to_owned()),
                None => Input::Usage("/op NICK"),
            },
            "deop" => match single_word(args) {
                Some(nick) => Input::Deop(nick.to_owned()),
                None => Input::Usage("/deop NICK"),
            },
            "register" => match single_word(args) {
                Some(password) => Input::Register(password.to_owned()),
                None => Input::Usage("/register PASSWORD"),
            },
            "login" | "identify" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [password] => Input::Login { name: None, password: password.to_owned() },
                [name, password] => Input::Login { name: Some(name.to_owned()), password: password.to_owned() },
                _ => Input::Usage("/login [NAME] PASSWORD"),
            },
            "password" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [old, new] => Input::Password { old: old.to_owned(), new: new.to_owned() },
                _ => Input::Usage("/password OLD NEW"),
            },
            "sessions" => match args.split_whitespace().collect::<Vec<_>>()[..] {
                [] => Input::Sessions,
                ["revoke", id] => match id.parse::<u64>() {
                    Ok(id) => Input::RevokeSession(id),
                    Err(_) => Input::Usage("/sessions revoke ID, ID a number /sessions shows"),
                },
                _ => Input::Usage("/sessions [revoke ID]"),
            },
            "history" => {
                let count = |n: &str| n.parse::<usize>().ok().filter(|n| *n > 0);
                match args.split_whitespace().collect::<Vec<_>>()[..] {
                    [] => Input::History(None),
                    [n] if n.starts_with(|c: char| c.is_ascii_digit()) => match count(n) {
                        Some(n) => Input::History(Some(n)),
                        None => Input::Usage("/history [NICK] [N], N a number above 0"),
                    },
                    [with] => Input::Conversation { with: with.to_owned(), n: None },
                    [with, n] => match count(n) {
                        Some(n) => Input::Conversation { with: with.to_owned(), n: Some(n) },
                        None => Input::Usage("/history [NICK] [N], N a number above 0"),
                    },
                    _ => Input::Usage("/history [NICK] [N], N a number above 0"),
                }
            }
            "me" | "action" => match args {
                "" => Input::Usage("/me TEXT"),
                text => Input::Me(text.to_owned()),
            },
            "away" => Input::Away((!args.is_empty()).then(|| args.to_owned())),
            "back" => Input::Away(None),
            "whois" | "wi" => match single_word(args) {
                Some(nick) => Input::Whois(nick.to_owned()),
                None => Input::Usage("/whois NICK"),
            },
            "invite" => match single_word(args) {
                Some(nick) => Input::Invite(nick.to_owned()),
                None => Input::Usage("/invite NICK"),
            },
            "nick" => match single_word(args) {
                Some(nick) => Input::Nick(nick.to_owned()),
                None => Input::Usage("/nick NEW_NAME"),
            },
            "join" => match single_word(args) {
                Some(room) => Input::Join(room.to_owned()),
                None => Input::Usage("/join ROOM"),
            },
            "msg" | "m" | "whisper" | "w" => match args.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => {
                    Input::Msg { to: to.to_owned(), text: text.trim_start().to_owned() }
                }
                _ => Input::Usage("/msg NAME text"),
            },
            "send" => match path_and_word(args) {
                Some((path, to)) => Input::Send { path, to },
                None => Input::Usage("/send PATH [NICK] (a path with spaces in \"double quotes\")"),
            },
            "get" => match args.split_once(char::is_whitespace) {
                None if !args.is_empty() => Input::Get { id: args.to_owned(), path: None },
                Some((id, path)) => Input::Get { id: id.to_owned(), path: Some(unquote(path.trim()).to_owned()) },
                None => Input::Usage("/get ID [PATH]"),
            },
            _ => Input::Unknown(name.to_owned()),
        }
    }
}

/// `PATH [WORD]`, the path in double quotes if it has spaces.
fn path_and_word(args: &str) -> Option<(String, Option<String>)> {
    let (path, rest) = match args.strip_prefix('"') {
        Some(quoted) => {
            let (path, rest) = quoted.split_once('"')?;
            (path, rest.trim())
        }
        None => match args.split_once(char::is_whitespace) {
            Some((path, rest)) => (path, rest.trim()),
            None => (args, ""),
        },
    };
    if path.is_empty() || rest.contains(char::is_whitespace) {
        return None;
    }
    Some((path.to_owned(), (!rest.is_empty()).then(|| rest.to_owned())))
}

/// A path without the double quotes around it, if it has them.
fn unquote(path: &str) -> &str {
    path.strip_prefix('"').and_then(|p| p.strip_suffix('"')).unwrap_or(path)
}

/// A message's time as line clients show it: `HH:MM:SS` in local time.
#[must_use]
pub fn clock(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&chrono::Local).format("%H:%M:%S").to_string()
}

/// A past message's time: `HH:MM:SS` when it was today, `YYYY-MM-DD HH:MM:SS` before.
#[must_use]
pub fn stamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    let local = at.with_timezone(&chrono::Local);
    if local.date_naive() == chrono::Local::now().date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// The command list that `/help` shows line-protocol users and `parley chat` users
/// alike; `join` and `quit` say how each treats moving between rooms and leaving.
#[must_use]
pub fn help(join: &str, quit: &str) -> String {
    format!(
        "\
Commands:
  /help               this list
  /who                who is in your room
  /rooms              the rooms on this server
  /msg NAME text      a private message to NAME
  /me TEXT            an action, shown as: * you TEXT
  /away [MESSAGE]     mark yourself away (or back, without a message)
  /whois NICK         who someone is, where they are, how long idle
  /invite NICK        invite someone into your room (operators, in an invite-only room)
  /nick NEW           change your name
  /join ROOM          {join}
  /part               leave your room
  /history [N]        the last N messages of your room (default 20, at most 500)
  /history NICK [N]   your last N private messages with NICK (logged in)
  /search WORDS       find messages; add from:NICK, in:ROOM, before:YYYY-MM-DD, after:YYYY-MM-DD, page:N
  /context SEQ        the messages around message SEQ of your room (the #SEQ /search shows)
  /delete SEQ [reason]  delete message SEQ of your room: yours, or anyone's (operators)
  /topic [TEXT]       show your room's topic, or set it (operators)
  /kick NICK [reason]             put someone out of your room (operators)
  /ban NICK|ADDRESS [30m|2h|7d] [reason]  keep them out (operators; in lobby: off the server)
  /unban NICK|ADDRESS, /mute NICK [30m|2h|7d], /unmute NICK  (operators)
  /op NICK, /deop NICK  make an account an operator of your room, or stop (operators)
  /audit [N]          the latest N moderation actions (server admins)
  /register PASSWORD  make your name an account, so nobody else can use it
  /login [NAME] PASSWORD  log in to your account (and take its name)
  /password OLD NEW   change your account's password
  /sessions [revoke ID]  where your account stays logged in; revoke one
  /send PATH [NICK]   share a file in your room, or privately with NICK (parley chat)
  /get ID [PATH]      download a shared file by the ID its message shows (parley chat)
  /quit               {quit}
Anything else you type is said in your room; start a line with // to say something that starts with /.
"
    )
}

/// An idle time as people read it: `42s`, `5m 3s`, `2h 10m`, `3d 4h`.
#[must_use]
pub fn idle(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A duration as people write it: a number and `s`, `m`, `h` or `d`.
#[must_use]
pub fn duration(text: &str) -> Option<std::time::Duration> {
    let unit = text.chars().last()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = text[..text.len() - 1].parse().ok()?;
    Some(std::time::Duration::from_secs(n.checked_mul(seconds)?))
}

/// `MASK [DURATION] [reason]`, as `/ban` and `/serverban` take them: a second word that
/// is not a duration starts the reason.
fn ban_args(args: &str) -> Option<(String, Option<std::time::Duration>, Option<String>)> {
    let mut words = args.splitn(3, char::is_whitespace);
    let mask = words.next().filter(|m| !m.is_empty())?;
    let (second, rest) = (words.next(), words.next());
    let duration = second.and_then(duration);
    let reason = match (duration, second, rest) {
        (Some(_), _, rest) => rest.map(str::to_owned),
        (None, Some(second), Some(rest)) => Some(format!("{second} {rest}")),
        (None, second, _) => second.map(str::to_owned),
    };
    Some((mask.to_owned(), duration, reason))
}

fn single_word(args: &str) -> Option<&str> {
    (!args.is_empty() && !args.contains(char::is_whitespace)).then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut LineDecoder, buf: &mut BytesMut) -> Vec<Result<String, LineError>> {
        let mut out = Vec::new();
        loop {
            match decoder.decode(buf) {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => return out,
                Err(e) => out.push(Err(e)),
            }
        }
    }

    #[test]
    fn crlf_and_lf_are_both_line_ends() {
        let mut d = LineDecoder::new(64);
        let mut buf = BytesMut::from("hello\r\nworld\n\npartial");
        assert_eq!(decode_all(&mut d, &mut buf), vec![Ok("hello".into()), Ok("world".into()), Ok(String::new())]);
        assert_eq!(&buf[..], b"partial");
        assert_eq!(d.decode_eof(&mut buf), Ok(Some("partial".into())));
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped() {
        let mut d = LineDecoder::new(4);
        let mut buf = BytesMut::from("abcdefgh");
        assert_eq!(d.decode(&mut buf), Err(LineError::TooLong { max: 4 }));
        assert!(buf.is_empty(), "skipped bytes are not kept");
        buf.extend_from_slice(b"ijk\nok\n");
        assert_eq!(decode_all(&mut d, &mut buf), vec![Ok("ok".into())]);
    }

    #[test]
    fn a_line_exactly_at_the_limit_passes_with_crlf() {
        let mut d = LineDecoder::new(4);
        let mut buf = BytesMut::from("abcd\r");
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        assert_eq!(d.decode(&mut buf), Ok(Some("abcd".into())));
    }

    #[test]
    fn invalid_utf8_is_an_error_for_that_line_only() {
        let mut d = LineDecoder::new(64);
        let mut buf = BytesMut::from(&b"ok\n\xff\xfe\nfine\n"[..]);
        assert_eq!(decode_all(&mut d, &mut buf), vec![Ok("ok".into()), Err(LineError::InvalidUtf8), Ok("fine".into())]);
    }

    #[test]
    fn commands_parse() {
        assert_eq!(Input::parse("hello /there"), Input::Say("hello /there".into()));
        assert_eq!(Input::parse("//me waves"), Input::Say("/me waves".into()));
        assert_eq!(Input::parse("/msg bob hi there"), Input::Msg { to: "bob".into(), text: "hi there".into() });
        assert_eq!(Input::parse("/msg bob"), Input::Usage("/msg NAME text"));
        assert_eq!(Input::parse("/send a.pdf"), Input::Send { path: "a.pdf".into(), to: None });
        assert_eq!(Input::parse("/send a.pdf bob"), Input::Send { path: "a.pdf".into(), to: Some("bob".into()) });
        assert_eq!(
            Input::parse("/send \"my file.pdf\" bob"),
            Input::Send { path: "my file.pdf".into(), to: Some("bob".into()) }
        );
        assert!(matches!(Input::parse("/send"), Input::Usage(_)));
        assert_eq!(Input::parse("/get 3f2a"), Input::Get { id: "3f2a".into(), path: None });
        assert_eq!(Input::parse("/get 3f2a /tmp/x"), Input::Get { id: "3f2a".into(), path: Some("/tmp/x".into()) });
        assert_eq!(Input::parse("/nick  carol "), Input::Nick("carol".into()));
        assert_eq!(Input::parse("/nick a b"), Input::Usage("/nick NEW_NAME"));
        assert_eq!(Input::parse("/JOIN dev"), Input::Join("dev".into()));
        assert_eq!(Input::parse("/part"), Input::Part);
        assert_eq!(Input::parse("q"), Input::Quit);
        assert_eq!(Input::parse(" exit "), Input::Quit);
        assert_eq!(Input::parse("/quit bye"), Input::Quit);
        assert_eq!(Input::parse("/dance"), Input::Unknown("dance".into()));
        assert_eq!(Input::parse("/"), Input::Unknown(String::new()));
    }
}
