//! How the hub's events and answers look to an IRC client: message lines with the tags
//! its capabilities ask for, and the numerics that answer each command.
//!
//! Live events are encoded once per capability profile and shared (see
//! [`parley_hub::Wire::cache_slot_for`]); answers are encoded per session, with the
//! [`Context`] the reader recorded for the request they answer.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::BytesMut;
use chrono::SecondsFormat;
use parley_hub::{
    Audience, Event, HubError, Kind, LeaveReason, MarkTarget, Member, Nick, Record, Reply, RoomChange, RoomName,
    RoomSummary, Timestamp, Userhost, Visibility, Wire,
};
use parley_proto::irc::{escape_tag_value, split_text};

use super::caps::{Cap, Profile};
use super::labels::{self, Framing};
use super::{clean, past_source, source, source_str, tags, Context, Link};
use crate::gateway::words;

/// IRC sessions whose clients enabled none of the event capabilities share this slot of
/// an event's encoding cache; those that enabled all of them share the next.
const PLAIN_SLOT: usize = 2;
const FULL_SLOT: usize = 3;

/// Room for the source, command, target and tags' separators within one 512-byte line,
/// so that text split to fit never makes a line the client would cut.
const LINE_ROOM: usize = 510;

/// Encodes hub events for one IRC session.
pub(crate) struct IrcWire {
    pub(crate) link: Arc<Link>,
}

impl Wire for IrcWire {
    fn cache_slot(&self) -> Option<usize> {
        match self.link.caps.event_profile() {
            Profile::Plain => Some(PLAIN_SLOT),
            Profile::Full => Some(FULL_SLOT),
            Profile::Mixed => None,
        }
    }

    fn cache_slot_for(&self, event: &Event) -> Option<usize> {
        match event {
            // With `extended-join`, JOIN lines are this session's own.
            Event::Joined { .. } if self.link.caps.has(Cap::ExtendedJoin) => None,
            // These name the session itself (or are for capabilities no profile
            // groups: `account-notify`, `invite-notify`, `setname`, message redaction
            // and read markers).
            Event::Deleted { .. }
            | Event::Marker { .. }
            | Event::Notice { .. }
            | Event::Invited { .. }
            | Event::Shutdown { .. }
            | Event::Banned { .. }
            | Event::SignedOut { .. }
            | Event::Account { .. }
            | Event::InviteSent { .. }
            | Event::Realname { .. }
            | Event::SignedOn { .. }
            | Event::SignedOff { .. }
            | Event::Watched(_)
            | Event::Reply { .. } => None,
            _ => self.cache_slot(),
        }
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        let mut lines = Lines::new(&self.link);
        lines.event(event);
        // The answer to a labeled line: framed around its finished lines (an answer is
        // this session's alone, never a shared encoding).
        if let Event::Reply { req, .. } = event {
            if let Some(framing) = self.link.framing(req.0) {
                let opened = match &framing {
                    Framing::Part { batch, own, .. } => {
                        lines.text.push_str(own);
                        self.link.batch_open(batch)
                    }
                    Framing::Alone { .. } => false,
                };
                let framed = labels::frame(&lines.text, &framing, opened, &self.link.server.name);
                out.extend_from_slice(framed.as_bytes());
                return;
            }
        }
        out.extend_from_slice(lines.text.as_bytes());
    }

    /// The link learns what the client now knows: its nick and account from the answers
    /// that change them and from a rename by the server; an answered request's context
    /// is forgotten.
    fn told(&self, event: &Event) {
        match event {
            Event::Reply { req, result } => {
                // A part of a labeled answer in several: its batch is open once a part
                // said something, and over after the last.
                if let Some(Framing::Part { batch, last, own, .. }) = self.link.framing(req.0) {
                    if last {
                        self.link.set_batch_open(&batch, false);
                    } else if !self.link.batch_open(&batch) && (!own.is_empty() || self.says_anything(req.0, event)) {
                        self.link.set_batch_open(&batch, true);
                    }
                }
                match result {
                    Ok(Reply::Welcome { nick, room, .. }) => {
                        self.link.set_me(nick.as_str());
                        if let Some(room) = room {
                            self.link.entered(room);
                        }
                    }
                    Ok(Reply::Joined { room, .. }) => self.link.entered(room),
                    Ok(Reply::Parted { room }) => self.link.left(room),
                    Ok(Reply::Nick { nick }) => self.link.set_me(nick.as_str()),
                    Ok(Reply::LoggedIn { account, nick }) => {
                        self.link.set_account(Some(account.clone()));
                        self.link.set_me(nick.as_str());
                    }
                    Ok(Reply::Registered { account }) => self.link.set_account(Some(account.clone())),
                    Ok(Reply::Unregistered { .. }) => self.link.set_account(None),
                    _ => {}
                }
                self.link.answered(req.0);
            }
            Event::NickChanged { old, new, .. } => self.link.renamed(old, new),
            // Put out of a channel (kicked, banned).
            Event::Left { room, nick, .. } if nick.as_str() == self.link.me() => self.link.left(room),
            _ => {}
        }
    }
}

impl IrcWire {
    /// Whether the answer to `req` has a line to show (asked only of the parts of a
    /// labeled answer in several). The gathering answers of `USERHOST`, `ISON` and `WHO
    /// mask` show one with their last part, and their encoding keeps what it gathered,
    /// so it is not run twice; any other answer is encoded again to tell.
    fn says_anything(&self, req: u64, event: &Event) -> bool {
        match self.link.context(req) {
            Context::Presence { last, .. } | Context::WhoMask { last, .. } => last,
            _ => {
                let mut lines = Lines::new(&self.link);
                lines.event(event);
                !lines.text.is_empty()
            }
        }
    }
}

/// A message's target for some of a channel's members (`STATUSMSG`): `@#room`, `+#room`.
fn status_target(room: &RoomName, audience: Audience) -> String {
    match audience {
        Audience::Operators => format!("@#{room}"),
        Audience::Voiced => format!("+#{room}"),
    }
}

/// IRC's time format for `server-time`.
pub(super) fn irc_time(at: &Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A message id: the room and its seq (`lobby/42`), or `pm/SEQ` for private messages,
/// so that CHATHISTORY can page from one.
pub(super) fn msgid(room: Option<&RoomName>, seq: u64) -> String {
    match room {
        Some(room) => format!("{room}/{seq}"),
        None => format!("pm/{seq}"),
    }
}

/// Lines being written for one session.
pub(super) struct Lines<'a> {
    link: &'a Link,
    me: String,
    /// The request being answered, which names its batch (a request's answer opens at
    /// most one).
    answering: u64,
    pub(super) text: String,
}

impl<'a> Lines<'a> {
    pub(super) fn new(link: &'a Link) -> Self {
        Self { link, me: link.me(), answering: 0, text: String::new() }
    }

    /// The batch reference of the answer being written.
    fn batch_id(&self) -> String {
        format!("h{}", self.answering)
    }

    fn server(&self) -> &str {
        &self.link.server.name
    }

    /// `:server CODE me params... :trailing`.
    pub(super) fn numeric(&mut self, code: &str, params: &[&str], trailing: &str) {
        let server = self.link.server.name.clone();
        let _ = write!(self.text, ":{server} {code} {}", self.me);
        for param in params {
            let _ = write!(self.text, " {param}");
        }
        let _ = write!(self.text, " :{}\r\n", clean(trailing));
    }

    /// `:server CODE me params...`, the last parameter data that needs no `:` unless it
    /// is empty or has a space (as `221`, `303`).
    pub(super) fn data(&mut self, code: &str, params: &[&str]) {
        let server = self.link.server.name.clone();
        let _ = write!(self.text, ":{server} {code} {}", self.me);
        for (i, param) in params.iter().enumerate() {
            let last = i + 1 == params.len();
            if last && (param.is_empty() || param.contains(' ') || param.starts_with(':')) {
                let _ = write!(self.text, " :{}", clean(param));
            } else {
                let _ = write!(self.text, " {param}");
            }
        }
        self.text.push_str("\r\n");
    }

    /// `[tags ]:source COMMAND params... [:trailing]`.
    pub(super) fn from(&mut self, source: &str, command: &str, params: &[&str], trailing: Option<&str>, tags: &str) {
        let _ = write!(self.text, "{tags}:{source} {command}");
        for param in params {
            let _ = write!(self.text, " {param}");
        }
        if let Some(trailing) = trailing {
            let _ = write!(self.text, " :{}", clean(trailing));
        }
        self.text.push_str("\r\n");
    }

    /// The tag section (`@a=b;c=d `) for a message, as the capabilities ask.
    pub(super) fn tags(
        &self,
        at: Option<&Timestamp>,
        id: Option<&str>,
        account: Option<&Nick>,
        batch: Option<&str>,
    ) -> String {
        self.tagged(at, id, account, batch, Vec::new())
    }

    /// [`Lines::tags`] with client-only tags (`+name`), which only sessions with
    /// `message-tags` receive.
    pub(super) fn tagged(
        &self,
        at: Option<&Timestamp>,
        id: Option<&str>,
        account: Option<&Nick>,
        batch: Option<&str>,
        client: Vec<(String, String)>,
    ) -> String {
        let caps = &self.link.caps;
        let mut tags: Vec<(&str, String)> = Vec::new();
        if let (Some(batch), true) = (batch, caps.has(Cap::Batch)) {
            tags.push(("batch", batch.to_owned()));
        }
        if let (Some(at), true) = (at, caps.has(Cap::ServerTime)) {
            tags.push(("time", irc_time(at)));
        }
        if let (Some(id), true) = (id, caps.has(Cap::MessageTags)) {
            tags.push(("msgid", id.to_owned()));
        }
        if let (Some(account), true) = (account, caps.has(Cap::AccountTag)) {
            tags.push(("account", account.to_string()));
        }
        let client = if caps.has(Cap::MessageTags) { client } else { Vec::new() };
        tags.extend(client.iter().map(|(key, value)| (key.as_str(), value.clone())));
        if tags.is_empty() {
            return String::new();
        }
        let mut section = String::from("@");
        for (i, (key, value)) in tags.iter().enumerate() {
            if i > 0 {
                section.push(';');
            }
            section.push_str(key);
            section.push('=');
            escape_tag_value(value, &mut section);
        }
        section.push(' ');
        section
    }

    /// `:nick!user@host JOIN #channel`, with `extended-join` followed by the account
    /// (`*` for none) and the real name.
    fn join(&mut self, source: &str, channel: &str, account: Option<&Nick>, realname: &str, tags: &str) {
        if self.link.caps.has(Cap::ExtendedJoin) {
            let account = account.map_or_else(|| "*".to_owned(), ToString::to_string);
            self.from(source, "JOIN", &[channel, &account], Some(realname), tags);
        } else {
            self.from(source, "JOIN", &[channel], None, tags);
        }
    }

    /// The tags of what the session's own command did (its JOIN, PART, NICK), which
    /// happened now.
    fn now_tags(&self) -> String {
        self.tags(Some(&chrono::Utc::now()), None, None, None)
    }

    /// A chat message as PRIVMSG or NOTICE lines (an action as CTCP ACTION), split to
    /// fit IRC's line length; from the history (`userhost` unknown) as `nick!*@*`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn message(
        &mut self,
        tags: &str,
        from: &Nick,
        userhost: Option<&Userhost>,
        target: &str,
        kind: Kind,
        text: &str,
        prefix: Option<&str>,
    ) {
        let source = userhost.map_or_else(|| past_source(from), |userhost| source(from, userhost));
        // A shared file is told in words, as a notice: IRC clients cannot fetch it, and
        // nobody should answer it automatically.
        let announced;
        let text = if kind == Kind::File {
            announced = crate::files::announcement(from.as_str(), text);
            announced.as_str()
        } else {
            text
        };
        let command = if matches!(kind, Kind::Notice | Kind::File) { "NOTICE" } else { "PRIVMSG" };
        let overhead = source.len() + command.len() + target.len() + 6 + if kind == Kind::Action { 9 } else { 0 };
        let overhead = overhead + prefix.map_or(0, str::len);
        for piece in split_text(text, LINE_ROOM.saturating_sub(overhead)) {
            let body = match (kind, prefix) {
                (Kind::Action, Some(prefix)) => format!("\u{1}ACTION {prefix}{piece}\u{1}"),
                (Kind::Action, None) => format!("\u{1}ACTION {piece}\u{1}"),
                (_, Some(prefix)) => format!("{prefix}{piece}"),
                (_, None) => piece,
            };
            let _ = write!(self.text, "{tags}:{source} {command} {target} :{body}\r\n");
        }
    }

    /// `:by MODE #room +ov-b args…`.
    fn mode(&mut self, room: &RoomName, by: &str, changes: &[(bool, char, Option<String>)], tags: &str) {
        let mut params = vec![format!("#{room}"), mode_string(changes)];
        params.extend(changes.iter().filter_map(|(_, _, argument)| argument.clone()));
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        self.from(by, "MODE", &params, None, tags);
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Message { room, from, seq, at, kind, account, text, meta, userhost } => {
                let id = msgid(Some(room), *seq);
                let client = tags::of_meta(meta.as_deref(), Some(room));
                let tags = self.tagged(Some(at), Some(&id), account.as_ref(), None, client);
                self.message(&tags, from, Some(userhost), &format!("#{room}"), *kind, text, None);
            }
            Event::Whisper { seq, from, to, at, kind, account, text, meta, userhost } => {
                let id = msgid(None, *seq);
                let client = tags::of_meta(meta.as_deref(), None);
                let tags = self.tagged(Some(at), Some(&id), account.as_ref(), None, client);
                self.message(&tags, from, Some(userhost), to.as_str(), *kind, text, None);
            }
            Event::SaidTo { room, audience, from, at, account, kind, text, userhost } => {
                let tags = self.tags(Some(at), None, account.as_ref(), None);
                self.message(&tags, from, Some(userhost), &status_target(room, *audience), *kind, text, None);
            }
            Event::Signal { id, room, from, to, at, account, signal, tags, userhost } => {
                // Only clients that asked for message-tags know TAGMSG.
                if self.link.caps.has(Cap::MessageTags) {
                    let client = tags::of_signal(signal, tags, room.as_ref());
                    let msgid = tags::signal_msgid(*id);
                    let section = self.tagged(Some(at), Some(&msgid), account.as_ref(), None, client);
                    let target =
                        room.as_ref().map_or_else(|| to.as_ref().map(ToString::to_string), |r| Some(format!("#{r}")));
                    if let Some(target) = target {
                        self.from(&source(from, userhost), "TAGMSG", &[&target], None, &section);
                    }
                }
            }
            Event::Joined { room, nick, at, account, realname, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                let realname = realname.as_deref().unwrap_or(nick.as_str());
                self.join(&source(nick, userhost), &format!("#{room}"), account.as_ref(), realname, &tags);
            }
            Event::Left { room, nick, at, reason, by, detail, again, userhost, by_userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                let channel = format!("#{room}");
                match reason {
                    LeaveReason::Part => {
                        self.from(&source(nick, userhost), "PART", &[&channel], detail.as_deref(), &tags);
                    }
                    LeaveReason::Kicked | LeaveReason::Banned => {
                        let kicker = match (by, by_userhost) {
                            (Some(by), Some(userhost)) => source(by, userhost),
                            (Some(by), None) => past_source(by),
                            (None, _) => self.server().to_owned(),
                        };
                        let why = match (reason, detail.as_deref(), by) {
                            (LeaveReason::Kicked, Some(detail), _) => detail.to_owned(),
                            (LeaveReason::Kicked, None, _) => String::new(),
                            (_, detail, by) => words::put_out(*reason, by.as_ref(), detail),
                        };
                        self.from(&kicker, "KICK", &[&channel, nick.as_str()], Some(&why), &tags);
                    }
                    LeaveReason::Quit
                    | LeaveReason::Lost
                    | LeaveReason::ServerBanned
                    | LeaveReason::SlowConsumer
                    | LeaveReason::SignedOut => {
                        // One QUIT, however many channels were shared: the hub marks
                        // the rooms after the first.
                        if !again {
                            let why = match (reason, detail) {
                                (LeaveReason::Quit, Some(d)) => format!("Quit: {d}"),
                                (LeaveReason::Quit, None) => "Client exited".to_owned(),
                                (LeaveReason::ServerBanned, d) => {
                                    d.as_deref().map_or_else(|| "K-lined".to_owned(), |d| format!("K-lined: {d}"))
                                }
                                (LeaveReason::SlowConsumer, _) => "SendQ exceeded".to_owned(),
                                (LeaveReason::SignedOut, _) => "Signed out".to_owned(),
                                (_, Some(d)) => d.to_string(),
                                (_, None) => "Connection closed".to_owned(),
                            };
                            self.from(&source(nick, userhost), "QUIT", &[], Some(&why), &tags);
                        }
                    }
                }
            }
            Event::NickChanged { old, new, at, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                self.from(&source(old, userhost), "NICK", &[], Some(new.as_str()), &tags);
            }
            Event::Marker { target, at } => self.markread(target, Some(at)),
            Event::SignedOn { nick, userhost } => self.nick_list("730", &[source(nick, userhost)]),
            Event::SignedOff { nick } => self.nick_list("731", &[nick.to_string()]),
            Event::Watched(event) => {
                if self.link.caps.has(Cap::ExtendedMonitor) {
                    self.event(event);
                }
            }
            Event::Deleted { room, seq, by, author, said_at, at, reason, userhost, .. } => {
                let channel = format!("#{room}");
                if self.link.caps.has(Cap::Redaction) {
                    let tags = self.tags(Some(at), None, None, None);
                    let id = msgid(Some(room), *seq);
                    self.from(&source(by, userhost), "REDACT", &[&channel, &id], reason.as_deref(), &tags);
                } else {
                    let text = words::deleted(by, author, said_at, reason.as_deref());
                    let server = self.server().to_owned();
                    self.from(&server, "NOTICE", &[&channel], Some(&text), "");
                }
            }
            Event::Mode { room, by, at, changes, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                let modes: Vec<(bool, char, Option<String>)> =
                    changes.iter().map(|c| (c.set, words::letter(&c.mode), words::argument(&c.mode, c.set))).collect();
                self.mode(room, &source(by, userhost), &modes, &tags);
            }
            Event::Moderated { room, by, at, what, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                let modes: Vec<(bool, char, Option<String>)> = match what {
                    RoomChange::Banned { mask, .. } => vec![(true, 'b', Some(words::ban_mask(mask)))],
                    RoomChange::Unbanned { mask } => vec![(false, 'b', Some(words::ban_mask(mask)))],
                    RoomChange::Promoted { nick } => vec![(true, 'o', Some(nick.to_string()))],
                    RoomChange::Demoted { nick } => vec![(false, 'o', Some(nick.to_string()))],
                    RoomChange::Opped { sessions, .. } => {
                        sessions.iter().map(|n| (true, 'o', Some(n.to_string()))).collect()
                    }
                    RoomChange::Deopped { sessions, .. } => {
                        sessions.iter().map(|n| (false, 'o', Some(n.to_string()))).collect()
                    }
                    RoomChange::Muted { .. }
                    | RoomChange::Unmuted { .. }
                    | RoomChange::Registered { .. }
                    | RoomChange::Unregistered => Vec::new(),
                };
                if modes.is_empty() {
                    let server = self.server().to_owned();
                    let text = words::room_change(by, room, what);
                    self.from(&server, "NOTICE", &[&format!("#{room}")], Some(&text), &tags);
                } else {
                    self.mode(room, &source(by, userhost), &modes, &tags);
                }
            }
            Event::Topic { room, by, at, text, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                self.from(&source(by, userhost), "TOPIC", &[&format!("#{room}")], Some(text), &tags);
            }
            Event::Away { nick, text, userhost, .. } => {
                if self.link.caps.has(Cap::AwayNotify) {
                    self.from(&source(nick, userhost), "AWAY", &[], text.as_deref(), "");
                }
            }
            Event::Account { nick, account, userhost, .. } => {
                if self.link.caps.has(Cap::AccountNotify) {
                    let account = account.as_ref().map_or("*", Nick::as_str);
                    self.from(&source(nick, userhost), "ACCOUNT", &[account], None, "");
                }
            }
            Event::Realname { nick, realname, userhost, .. } => {
                if self.link.caps.has(Cap::Setname) {
                    self.from(&source(nick, userhost), "SETNAME", &[], Some(realname), "");
                }
            }
            Event::InviteSent { room, by, nick, at, userhost, .. } => {
                if self.link.caps.has(Cap::InviteNotify) {
                    let tags = self.tags(Some(at), None, None, None);
                    self.from(&source(by, userhost), "INVITE", &[nick.as_str(), &format!("#{room}")], None, &tags);
                }
            }
            Event::Invited { room, by, at, userhost, .. } => {
                let tags = self.tags(Some(at), None, None, None);
                let me = self.me.clone();
                self.from(&source(by, userhost), "INVITE", &[&me], Some(&format!("#{room}")), &tags);
            }
            Event::Notice { at, notice } => {
                let text = &words::notice(notice);
                let tags = self.tags(Some(at), None, None, None);
                let (server, me) = (self.server().to_owned(), self.me.clone());
                for piece in split_text(text, LINE_ROOM - server.len() - me.len() - 12) {
                    self.from(&server, "NOTICE", &[&me], Some(&piece), &tags);
                }
            }
            Event::Shutdown { message, .. } => {
                self.text.push_str(&format!("ERROR :Closing link: {}\r\n", clean(message)));
            }
            Event::SignedOut { .. } => {
                let who = source_str(&self.me, &self.link.userhost());
                self.text.push_str(&format!("ERROR :Closing link: {who} (Signed out)\r\n"));
            }
            Event::Banned { reason, .. } => {
                let why = reason.as_deref().map_or_else(|| "K-lined".to_owned(), |r| format!("K-lined: {r}"));
                let me = self.me.clone();
                self.numeric("465", &[], &format!("You are banned from this server ({why})"));
                let who = source_str(&me, &self.link.userhost());
                self.text.push_str(&format!("ERROR :Closing link: {who} ({})\r\n", clean(&why)));
            }
            Event::Reply { req, result } => {
                let context = self.link.context(req.0);
                self.answering = req.0;
                match result {
                    Ok(reply) => self.reply(&context, reply),
                    Err(e) => self.error(&context, e),
                }
            }
        }
    }

    /// What a channel's members look like in NAMES: prefixes as `multi-prefix` asks,
    /// and `nick!user@host` with `userhost-in-names`.
    fn names(&mut self, room: &RoomName, members: &[Member], visibility: Visibility) {
        let multi = self.link.caps.has(Cap::MultiPrefix);
        let userhost = self.link.caps.has(Cap::UserhostInNames);
        let channel = format!("#{room}");
        let symbol = match visibility {
            Visibility::Public => "=",
            Visibility::Private => "*",
            Visibility::Secret => "@",
        };
        let mut batch: Vec<String> = Vec::new();
        let mut length = 0;
        let room_for_names = LINE_ROOM - self.link.server.name.len() - self.me.len() - channel.len() - 12;
        for member in members {
            let mut name = prefixes(member, multi);
            if userhost {
                name.push_str(&source(&member.nick, &member.userhost));
            } else {
                name.push_str(member.nick.as_str());
            }
            if length + name.len() + 1 > room_for_names && !batch.is_empty() {
                self.numeric("353", &[symbol, &channel], &batch.join(" "));
                batch.clear();
                length = 0;
            }
            length += name.len() + 1;
            batch.push(name);
        }
        if !batch.is_empty() {
            self.numeric("353", &[symbol, &channel], &batch.join(" "));
        }
        self.numeric("366", &[&channel], "End of /NAMES list.");
    }

    fn topic(&mut self, room: &RoomName, topic: Option<&(String, Nick, Timestamp)>, say_none: bool) {
        let channel = format!("#{room}");
        match topic {
            Some((text, by, at)) => {
                self.numeric("332", &[&channel], text);
                // The setter's nick alone, as the modern documents have it.
                let (by, at) = (by.to_string(), at.timestamp().to_string());
                let server = self.link.server.name.clone();
                let me = self.me.clone();
                let _ = write!(self.text, ":{server} 333 {me} {channel} {by} {at}\r\n");
            }
            None if say_none => self.numeric("331", &[&channel], "No topic is set."),
            None => {}
        }
    }

    /// Past messages: in a `chathistory` batch when the client takes batches, with
    /// their time as a tag with `server-time`, or in front of the text without it.
    fn playback(&mut self, target: &str, messages: &[Arc<Record>]) {
        if messages.is_empty() {
            return;
        }
        let batch = self.link.caps.has(Cap::Batch).then(|| self.batch_id());
        if let Some(batch) = &batch {
            let server = self.server().to_owned();
            self.from(&server, "BATCH", &[&format!("+{batch}"), "chathistory", target], None, "");
        }
        let stamped = self.link.caps.has(Cap::ServerTime);
        for record in messages {
            let id = msgid(record.room.as_ref(), record.seq);
            let client = tags::of_meta(record.meta.as_deref(), record.room.as_ref());
            let tags = self.tagged(Some(&record.at), Some(&id), None, batch.as_deref(), client);
            let prefix = (!stamped).then(|| format!("[{}] ", parley_proto::line::stamp(&record.at)));
            let to = match (&record.room, &record.to) {
                (Some(room), _) => format!("#{room}"),
                (None, Some(to)) => to.to_string(),
                (None, None) => target.to_owned(),
            };
            self.message(
                &tags,
                &record.from,
                record.userhost.as_deref(),
                &to,
                record.kind,
                &record.text,
                prefix.as_deref(),
            );
        }
        if let Some(batch) = &batch {
            let server = self.server().to_owned();
            self.from(&server, "BATCH", &[&format!("-{batch}")], None, "");
        }
    }

    /// Joined a channel: JOIN, its topic, its names, and (unless the client fetches
    /// history itself) its latest messages.
    fn joined(
        &mut self,
        room: &RoomName,
        members: &[Member],
        history: &[Arc<Record>],
        topic: Option<&(String, Nick, Timestamp)>,
        read: Option<Option<&Timestamp>>,
        visibility: Visibility,
    ) {
        let me = self.me.clone();
        let channel = format!("#{room}");
        let tags = self.now_tags();
        let (account, realname) = (self.link.account(), self.link.realname());
        let realname = if realname.is_empty() { me.clone() } else { realname };
        let own = source_str(&me, &self.link.userhost());
        self.join(&own, &channel, account.as_ref(), &realname, &tags);
        self.topic(room, topic, false);
        // draft/read-marker: the channel's marker comes with the join, before its names.
        if let Some(read) = read {
            self.markread(&MarkTarget::Room(room.clone()), read);
        }
        self.names(room, members, visibility);
        if !self.link.caps.has(Cap::ChatHistory) {
            self.playback(&channel, history);
        }
    }

    fn welcome(&mut self, reply: &Reply) {
        let Reply::Welcome { nick, room, members, history, topic, stats, .. } = reply else {
            return;
        };
        self.me = nick.to_string();
        let server = self.link.server.clone();
        let network = server.network.clone();
        let me = self.me.clone();
        let own = source_str(&me, &self.link.userhost());
        self.numeric("001", &[], &format!("Welcome to the {network} IRC network, {own}"));
        self.numeric("002", &[], &format!("Your host is {}, running version {}", server.name, super::VERSION));
        self.numeric(
            "003",
            &[],
            &format!("This server was created {}", server.started.format("%Y-%m-%d %H:%M:%S UTC")),
        );
        let _ =
            write!(self.text, ":{} 004 {me} {} {} i bhiklmnopstv bklov\r\n", server.name, server.name, super::VERSION);
        for tokens in &server.isupport {
            self.numeric("005", &tokens.iter().map(String::as_str).collect::<Vec<_>>(), "are supported by this server");
        }
        self.lusers(stats);
        self.motd();
        // The user modes it starts with, as servers tell them.
        let tags = self.now_tags();
        self.from(&own, "MODE", &[&me, "+i"], None, &tags);
        if let Some(room) = room {
            self.joined(room, members, history, topic.as_ref(), None, Visibility::Public);
        }
    }

    /// `MARKREAD target timestamp=…` (or `*` when nothing is marked read), for clients
    /// with `draft/read-marker`.
    fn markread(&mut self, target: &MarkTarget, at: Option<&Timestamp>) {
        if !self.link.caps.has(Cap::ReadMarker) {
            return;
        }
        let target = match target {
            MarkTarget::Room(room) => format!("#{room}"),
            MarkTarget::With(nick) => nick.to_string(),
        };
        let marker = at.map_or_else(|| "*".to_owned(), |at| format!("timestamp={}", irc_time(at)));
        let server = self.server().to_owned();
        self.from(&server, "MARKREAD", &[&target, &marker], None, "");
    }

    pub(super) fn lusers(&mut self, stats: &parley_hub::Stats) {
        let (users, max) = (stats.users.to_string(), stats.max_users.to_string());
        self.numeric("251", &[], &format!("There are {users} users and 0 invisible on 1 servers"));
        if stats.admins > 0 {
            self.numeric("252", &[&stats.admins.to_string()], "operator(s) online");
        }
        self.numeric("254", &[&stats.rooms.to_string()], "channels formed");
        self.numeric("255", &[], &format!("I have {users} clients and 0 servers"));
        self.numeric("265", &[&users, &max], &format!("Current local users {users}, max {max}"));
        self.numeric("266", &[&users, &max], &format!("Current global users {users}, max {max}"));
    }

    pub(super) fn motd(&mut self) {
        let server = self.link.server.clone();
        match &server.motd {
            None => self.numeric("422", &[], "MOTD File is missing"),
            Some(motd) => {
                self.numeric("375", &[], &format!("- {} Message of the day - ", server.name));
                for line in motd.lines() {
                    self.numeric("372", &[], &format!("- {line}"));
                }
                self.numeric("376", &[], "End of /MOTD command.");
            }
        }
    }

    fn reply(&mut self, context: &Context, reply: &Reply) {
        match reply {
            Reply::Welcome { .. } => self.welcome(reply),
            Reply::Remembered { reply, .. } => self.reply(context, reply),
            // IRC clients log in with SASL; they never ask for tokens.
            Reply::Sessions(_) | Reply::Revoked { .. } => {}
            Reply::Joined { room, members, history, topic, read, visibility } => {
                self.joined(room, members, history, topic.as_ref(), Some(read.as_ref()), *visibility);
            }
            Reply::Marker { target, at } => self.markread(target, at.as_ref()),
            Reply::Parted { room } => {
                let me = source_str(&self.me, &self.link.userhost());
                let reason = match context {
                    Context::Part { reason: Some(reason), .. } => Some(reason.as_str()),
                    _ => None,
                };
                let tags = self.now_tags();
                self.from(&me, "PART", &[&format!("#{room}")], reason, &tags);
            }
            Reply::Said { room, seq, at, kind, text, meta } => {
                if self.link.caps.has(Cap::EchoMessage) {
                    let id = msgid(Some(room), *seq);
                    let account = self.link.account();
                    let client = tags::of_meta(meta.as_deref(), Some(room));
                    let tags = self.tagged(Some(at), Some(&id), account.as_ref(), None, client);
                    let me = Nick::parse(&self.me, usize::MAX).ok();
                    if let Some(me) = me {
                        self.message(&tags, &me, Some(&self.link.userhost()), &format!("#{room}"), *kind, text, None);
                    }
                }
            }
            // The deleter's own REDACT, as echo-message returns a PRIVMSG.
            Reply::Deleted { room, seq, reason, .. } => {
                if self.link.caps.has(Cap::Redaction) && self.link.caps.has(Cap::EchoMessage) {
                    let id = msgid(Some(room), *seq);
                    let tags = self.tags(Some(&chrono::Utc::now()), None, None, None);
                    if let Ok(me) = Nick::parse(&self.me, usize::MAX) {
                        let own = source(&me, &self.link.userhost());
                        self.from(&own, "REDACT", &[&format!("#{room}"), &id], reason.as_deref(), &tags);
                    }
                }
            }
            Reply::ToldSome { room, audience, at, kind, text } => {
                if self.link.caps.has(Cap::EchoMessage) {
                    let account = self.link.account();
                    let tags = self.tags(Some(at), None, account.as_ref(), None);
                    if let Ok(me) = Nick::parse(&self.me, usize::MAX) {
                        let userhost = self.link.userhost();
                        self.message(&tags, &me, Some(&userhost), &status_target(room, *audience), *kind, text, None);
                    }
                }
            }
            // The sender's own TAGMSG, as echo-message returns a PRIVMSG.
            Reply::Signalled { id, room, to, at, signal, tags } => {
                if self.link.caps.has(Cap::EchoMessage) && self.link.caps.has(Cap::MessageTags) {
                    let client = tags::of_signal(signal, tags, room.as_ref());
                    let account = self.link.account();
                    let msgid = tags::signal_msgid(*id);
                    let section = self.tagged(Some(at), Some(&msgid), account.as_ref(), None, client);
                    let target =
                        room.as_ref().map_or_else(|| to.as_ref().map(ToString::to_string), |r| Some(format!("#{r}")));
                    if let (Some(target), Ok(me)) = (target, Nick::parse(&self.me, usize::MAX)) {
                        self.from(&source(&me, &self.link.userhost()), "TAGMSG", &[&target], None, &section);
                    }
                }
            }
            Reply::Whispered { to, seq, at, kind, text, meta, away } => {
                if self.link.caps.has(Cap::EchoMessage) {
                    let id = msgid(None, *seq);
                    let account = self.link.account();
                    let client = tags::of_meta(meta.as_deref(), None);
                    let tags = self.tagged(Some(at), Some(&id), account.as_ref(), None, client);
                    if let Ok(me) = Nick::parse(&self.me, usize::MAX) {
                        self.message(&tags, &me, Some(&self.link.userhost()), to.as_str(), *kind, text, None);
                    }
                }
                if let (Some(away), false) = (away, *kind == Kind::Notice) {
                    self.numeric("301", &[to.as_str()], away);
                }
            }
            Reply::Who { room, members, visibility } => {
                // Every user is invisible (`+i`): those outside a channel see none of
                // its members.
                let inside = members.iter().any(|m| m.nick.as_str() == self.me);
                let shown = if inside { members.as_slice() } else { &[] };
                match context {
                    Context::WhoMask { mask, opers, whox, last } => {
                        let matching = shown.iter().filter(|member| {
                            (mask == "0" || parley_proto::irc::mask_matches(mask, member.nick.as_str()))
                                && (!opers || member.admin)
                        });
                        self.link.find(room, matching.cloned());
                        self.who_mask_end(mask, whox.as_ref(), *last);
                    }
                    Context::Who { mask, whox } => {
                        for member in shown {
                            self.who_line(&format!("#{room}"), member, whox.as_ref());
                        }
                        self.numeric("315", &[mask], "End of /WHO list.");
                    }
                    _ => self.names(room, shown, *visibility),
                }
            }
            Reply::Rooms(rooms) => self.list(context, rooms),
            Reply::Topic { room, topic } => self.topic(room, topic.as_ref(), true),
            Reply::Nick { nick } => {
                let old = self.me.clone();
                self.me = nick.to_string();
                let tags = self.now_tags();
                self.from(&source_str(&old, &self.link.userhost()), "NICK", &[], Some(nick.as_str()), &tags);
            }
            Reply::Modes { room, modes, created, key_hidden } => {
                let mut letters = String::from("+");
                let mut args = Vec::new();
                for (on, letter) in [
                    (modes.invite_only, 'i'),
                    (modes.moderated, 'm'),
                    (true, 'n'),
                    (modes.private, 'p'),
                    (modes.secret, 's'),
                    (modes.topic_locked, 't'),
                ] {
                    if on {
                        letters.push(letter);
                    }
                }
                if let Some(key) = &modes.key {
                    letters.push('k');
                    args.push(key.clone());
                } else if *key_hidden {
                    // As InspIRCd shows a key to those outside the channel.
                    letters.push('k');
                    args.push("<key>".to_owned());
                }
                if let Some(limit) = modes.limit {
                    letters.push('l');
                    args.push(limit.to_string());
                }
                let channel = format!("#{room}");
                let mut params = vec![channel.as_str(), letters.as_str()];
                params.extend(args.iter().map(String::as_str));
                let (server, me) = (self.server().to_owned(), self.me.clone());
                let _ = write!(self.text, ":{server} 324 {me} {}\r\n", params.join(" "));
                let _ = write!(self.text, ":{server} 329 {me} {channel} {}\r\n", created.timestamp());
            }
            Reply::Bans { room, bans } => {
                let channel = format!("#{room}");
                let server = self.server().to_owned();
                let me = self.me.clone();
                for ban in bans {
                    let mask = words::ban_mask(&ban.mask);
                    // Who set it and when; the server and 0 for bans kept from before
                    // setters were recorded.
                    let setter = ban.set_by.as_ref().map_or(server.as_str(), Nick::as_str);
                    let at = ban.set_at.map_or(0, |at| at.timestamp());
                    let _ = write!(self.text, ":{server} 367 {me} {channel} {mask} {setter} {at}\r\n");
                }
                self.numeric("368", &[&channel], "End of channel ban list");
            }
            Reply::Invited { nick, room } => {
                let channel = format!("#{room}");
                let server = self.server().to_owned();
                let me = self.me.clone();
                let _ = write!(self.text, ":{server} 341 {me} {nick} {channel}\r\n");
            }
            Reply::Invitations { rooms } => {
                for room in rooms {
                    self.data("336", &[&format!("#{room}")]);
                }
                self.numeric("337", &[], "End of INVITE list");
            }
            Reply::Presence { online, offline, full } => {
                if let Some((max, rest)) = full {
                    self.monitor_full(*max, rest);
                }
                let online: Vec<String> = online.iter().map(|(nick, userhost)| source(nick, userhost)).collect();
                self.nick_list("730", &online);
                self.nick_list("731", &offline.iter().map(ToString::to_string).collect::<Vec<_>>());
            }
            Reply::Watched(nicks) => {
                self.nick_list("732", &nicks.iter().map(ToString::to_string).collect::<Vec<_>>());
                self.numeric("733", &[], "End of MONITOR list");
            }
            Reply::Unwatched => {}
            Reply::Away { away: true } => self.numeric("306", &[], "You have been marked as being away"),
            Reply::Away { away: false } => self.numeric("305", &[], "You are no longer marked as being away"),
            Reply::Whois(whois) => self.whois(context, whois),
            Reply::Stats(stats) => self.lusers(stats),
            Reply::Opered => {
                self.link.oper.store(true, std::sync::atomic::Ordering::Release);
                let (server, me) = (self.server().to_owned(), self.me.clone());
                self.from(&server, "MODE", &[&me, "+o"], None, "");
                self.numeric("381", &[], "You are now an IRC operator");
            }
            Reply::History { room, messages } => {
                if let Context::ChatHistory { target, .. } = context {
                    self.history_batch(target, messages);
                } else {
                    self.playback(&format!("#{room}"), messages);
                }
            }
            Reply::Targets(targets) => {
                let batch = self.batch_id();
                let server = self.server().to_owned();
                self.from(&server, "BATCH", &[&format!("+{batch}"), "draft/chathistory-targets"], None, "");
                for (target, at) in targets {
                    let target = match target {
                        MarkTarget::Room(room) => format!("#{room}"),
                        MarkTarget::With(nick) => nick.to_string(),
                    };
                    let tags = self.tags(None, None, None, Some(&batch));
                    self.from(&server, "CHATHISTORY", &["TARGETS", &target, &irc_time(at)], None, &tags);
                }
                self.from(&server, "BATCH", &[&format!("-{batch}")], None, "");
            }
            Reply::Conversation { with, messages } => {
                let target = match context {
                    Context::ChatHistory { target, .. } => target.clone(),
                    _ => with.to_string(),
                };
                self.history_batch(&target, messages);
            }
            Reply::LoggedIn { account, nick } => {
                let me = self.me.clone();
                let who = source_str(nick.as_str(), &self.link.userhost());
                self.numeric("900", &[&who, account.as_str()], &format!("You are now logged in as {account}"));
                if me != nick.as_str() {
                    self.me = nick.to_string();
                    self.from(&source_str(&me, &self.link.userhost()), "NICK", &[], Some(nick.as_str()), "");
                }
            }
            Reply::Registered { account } => {
                let who = source_str(&self.me, &self.link.userhost());
                self.numeric("900", &[&who, account.as_str()], &format!("You are now logged in as {account}"));
            }
            Reply::Unregistered { account } => {
                let who = source_str(&self.me, &self.link.userhost());
                self.numeric("901", &[&who], &format!("You are now logged out; the account {account} is deleted"));
            }
            Reply::ServerBans(bans) => {
                let server = self.server().to_owned();
                for ban in bans {
                    let until = ban.until.as_ref().map_or_else(|| "until lifted".to_owned(), irc_time);
                    let reason = ban.reason.as_deref().unwrap_or("no reason");
                    let text = format!("Server ban {} ({until}): {reason}", ban.mask);
                    let me = self.me.clone();
                    self.from(&server, "NOTICE", &[&me], Some(&text), "");
                }
                let me = self.me.clone();
                self.from(&server, "NOTICE", &[&me], Some("End of server bans"), "");
            }
            Reply::ServerModerated { action, target } => {
                let server = self.server().to_owned();
                let me = self.me.clone();
                self.from(&server, "NOTICE", &[&me], Some(&format!("Done: {action} {target}")), "");
            }
            // Answered by the events they cause (KICK, MODE), or by nothing at all.
            Reply::Described => {
                if let (Context::Setname { realname }, true) = (context, self.link.caps.has(Cap::Setname)) {
                    let me = self.me.clone();
                    self.from(&source_str(&me, &self.link.userhost()), "SETNAME", &[], Some(realname), "");
                }
            }
            Reply::Moderated { .. }
            | Reply::ModesSet { .. }
            | Reply::PasswordChanged
            | Reply::Pong
            | Reply::Found { .. }
            | Reply::Audit(_) => {}
            Reply::Bye => {
                let me = self.me.clone();
                let reason = match context {
                    Context::Quit { reason: Some(reason) } => format!("Quit: {reason}"),
                    _ => "Client quit".to_owned(),
                };
                let who = source_str(&me, &self.link.userhost());
                let _ = write!(self.text, "ERROR :Closing link: {who} ({})\r\n", clean(&reason));
            }
        }
    }

    /// `730`–`732` (MONITOR): a comma list, in as few lines as fit in 512 bytes; no line
    /// when the list is empty.
    fn nick_list(&mut self, code: &str, items: &[String]) {
        // `:server CODE me :list\r\n`.
        let room = LINE_ROOM.saturating_sub(self.server().len() + self.me.len() + code.len() + 6);
        let mut line = String::new();
        for item in items {
            if !line.is_empty() && line.len() + 1 + item.len() > room {
                self.numeric(code, &[], &line);
                line.clear();
            }
            if !line.is_empty() {
                line.push(',');
            }
            line.push_str(item);
        }
        if !line.is_empty() {
            self.numeric(code, &[], &line);
        }
    }

    /// `734` (ERR_MONLISTFULL): the list holds `max` nicks, and the targets from the first
    /// one not added on were not; as many of them as the line has room for.
    fn monitor_full(&mut self, max: usize, rest: &[String]) {
        let max = max.to_string();
        let text = "Monitor list is full.";
        let room = LINE_ROOM.saturating_sub(self.server().len() + self.me.len() + max.len() + text.len() + 12);
        let mut targets = String::new();
        for target in rest.iter().map(|t| super::wire_param(t)).filter(|t| t != "*") {
            if targets.len() + 1 + target.len() > room {
                break;
            }
            if !targets.is_empty() {
                targets.push(',');
            }
            targets.push_str(&target);
        }
        if targets.is_empty() {
            targets.push('*');
        }
        self.numeric("734", &[&max, &targets], text);
    }

    /// A CHATHISTORY answer: always a batch, empty when nothing matched.
    fn history_batch(&mut self, target: &str, messages: &[Arc<Record>]) {
        let batch = self.batch_id();
        let server = self.server().to_owned();
        self.from(&server, "BATCH", &[&format!("+{batch}"), "chathistory", target], None, "");
        for record in messages {
            let id = msgid(record.room.as_ref(), record.seq);
            let client = tags::of_meta(record.meta.as_deref(), record.room.as_ref());
            let tags = self.tagged(Some(&record.at), Some(&id), None, Some(&batch), client);
            let to = match (&record.room, &record.to) {
                (Some(room), _) => format!("#{room}"),
                (None, Some(to)) => to.to_string(),
                (None, None) => target.to_owned(),
            };
            self.message(&tags, &record.from, record.userhost.as_deref(), &to, record.kind, &record.text, None);
        }
        self.from(&server, "BATCH", &[&format!("-{batch}")], None, "");
    }

    /// One user in a WHO answer: `352`, or with WHOX the `354` fields asked for.
    fn who_line(&mut self, channel: &str, member: &Member, whox: Option<&super::commands::Whox>) {
        let mut flags = String::from(if member.away { "G" } else { "H" });
        if member.admin {
            flags.push('*');
        }
        flags.push_str(&prefixes(member, self.link.caps.has(Cap::MultiPrefix)));
        let server = self.server().to_owned();
        let me = self.me.clone();
        let nick = member.nick.as_str();
        let realname = member.realname.as_deref().unwrap_or(nick);
        let Some(whox) = whox else {
            let (user, host) = (&member.userhost.user, &member.userhost.host);
            let _ = write!(self.text, ":{server} 352 {me} {channel} {user} {host} {server} {nick} {flags} :0 ");
            let _ = write!(self.text, "{}\r\n", clean(realname));
            return;
        };
        let mut fields: Vec<String> = Vec::new();
        for field in "tcuihsnfdlao".chars().filter(|f| whox.has(*f)) {
            fields.push(match field {
                't' if whox.token.is_empty() => continue,
                't' => whox.token.clone(),
                'c' => channel.to_owned(),
                'u' => member.userhost.user.to_string(),
                // Addresses are private: a client sees its own alone.
                'i' => match (nick == me, self.link.address) {
                    (true, Some(address)) => address.to_string(),
                    _ => "255.255.255.255".to_owned(),
                },
                'h' => member.userhost.host.to_string(),
                's' => server.clone(),
                'n' => nick.to_owned(),
                'f' => flags.clone(),
                // One server: no hops.
                'd' => "0".to_owned(),
                'l' => member.idle_secs.to_string(),
                'a' => member.account.as_ref().map_or_else(|| "0".to_owned(), ToString::to_string),
                _ => {
                    if member.op || member.voice {
                        "0".to_owned()
                    } else {
                        "n/a".to_owned()
                    }
                }
            });
        }
        let _ = write!(self.text, ":{server} 354 {me}");
        for field in &fields {
            let _ = write!(self.text, " {field}");
        }
        if whox.has('r') {
            let _ = write!(self.text, " :{}", clean(realname));
        }
        self.text.push_str("\r\n");
    }

    fn whois(&mut self, context: &Context, whois: &parley_hub::Whois) {
        let nick = whois.nick.to_string();
        if let Context::Presence { ison, last } = context {
            let item = if *ison {
                nick
            } else {
                let oper = if whois.admin { "*" } else { "" };
                let away = if whois.away.is_some() { '-' } else { '+' };
                format!("{nick}{oper}={away}{}@{}", whois.userhost.user, whois.userhost.host)
            };
            self.link.gather(item);
            self.presence(*ison, *last);
            return;
        }
        if let Context::UserMode { .. } = context {
            self.numeric("502", &[], "Can't view or change mode for other users");
            return;
        }
        if let Context::WhoNick { mask, whox } = context {
            // The first channel the asker may see them in, with their status there.
            let first = whois.rooms.first();
            let member = Member {
                nick: whois.nick.clone(),
                op: first.is_some_and(|(_, op, _)| *op),
                voice: first.is_some_and(|(_, _, voice)| *voice),
                away: whois.away.is_some(),
                admin: whois.admin,
                realname: whois.realname.clone(),
                account: whois.account.clone(),
                idle_secs: whois.idle_secs,
                userhost: whois.userhost.clone(),
            };
            let channel = first.map_or_else(|| "*".to_owned(), |(room, _, _)| format!("#{room}"));
            self.who_line(&channel, &member, whox.as_ref());
            self.numeric("315", &[mask], "End of /WHO list.");
            return;
        }
        let realname = whois.realname.as_deref().unwrap_or(&nick).to_owned();
        self.numeric("311", &[&nick, &whois.userhost.user, &whois.userhost.host, "*"], &realname);
        // Where they connect from, to themselves and to operators alone (the hub gives
        // the address only then).
        if let Some(address) = whois.address {
            self.numeric("378", &[&nick], &format!("is connecting from *@{address} {address}"));
        }
        if !whois.rooms.is_empty() {
            let rooms: Vec<String> =
                whois.rooms.iter().map(|(room, op, voice)| format!("{}#{room}", status(*op, *voice))).collect();
            self.numeric("319", &[&nick], &rooms.join(" "));
        }
        let server = self.link.server.clone();
        self.numeric("312", &[&nick, &server.name], &server.network);
        if whois.admin {
            self.numeric("313", &[&nick], "is an IRC operator");
        }
        if whois.address.is_some() {
            let modes = if whois.admin { "+io" } else { "+i" };
            self.numeric("379", &[&nick], &format!("is using modes {modes}"));
        }

        if let Some(account) = &whois.account {
            self.numeric("330", &[&nick, account.as_str()], "is logged in as");
        }
        if let Some(away) = &whois.away {
            self.numeric("301", &[&nick], away);
        }
        let (idle, signon) = (whois.idle_secs.to_string(), whois.since.timestamp().to_string());
        self.numeric("317", &[&nick, &idle, &signon], "seconds idle, signon time");
        self.numeric("318", &[&nick], "End of /WHOIS list.");
    }

    /// The answer to a `WHO mask`, once the members of the client's last channel are in.
    pub(super) fn who_mask_end(&mut self, mask: &str, whox: Option<&super::commands::Whox>, last: bool) {
        if !last {
            return;
        }
        let found = self.link.take_found();
        for (room, member) in &found {
            self.who_line(&format!("#{room}"), member, whox);
        }
        let mask = if mask == "0" { "*" } else { mask };
        self.numeric("315", &[&super::wire_param(mask)], "End of /WHO list.");
    }

    /// The `302` (USERHOST) or `303` (ISON) reply, once the answer about its last nick
    /// is in.
    fn presence(&mut self, ison: bool, last: bool) {
        if last {
            let items = self.link.take_gathered();
            self.data(if ison { "303" } else { "302" }, &[&items.join(" ")]);
        }
    }

    fn list(&mut self, context: &Context, rooms: &[RoomSummary]) {
        let filter = match context {
            Context::List { filter } => filter.clone(),
            _ => super::commands::ListFilter::default(),
        };
        self.numeric("321", &["Channel"], "Users  Name");
        for room in rooms {
            let channel = format!("#{}", room.name);
            if !filter.admits(&channel, room.members) {
                continue;
            }
            let topic = room.topic.as_deref().unwrap_or("");
            self.numeric("322", &[&channel, &room.members.to_string()], topic);
        }
        self.numeric("323", &[], "End of /LIST");
    }

    /// The numeric for a refused command, as the command's context decides.
    fn error(&mut self, context: &Context, e: &HubError) {
        if let Context::ChatHistory { .. } = context {
            let code = match e {
                HubError::NotInRoom(_)
                | HubError::NoRoom
                | HubError::NoSuchRoom(_)
                | HubError::InvalidRoom { .. }
                | HubError::NoSuchNick(_) => "INVALID_TARGET",
                HubError::NoHistory | HubError::StoreRead => "MESSAGE_ERROR",
                _ => "FAILED",
            };
            self.fail(context, code, &words::error(e));
            return;
        }
        if let Context::MarkRead { target } = context {
            let server = self.server().to_owned();
            let params = ["MARKREAD", "INVALID_TARGET", &super::wire_param(target)];
            self.from(&server, "FAIL", &params, Some(&words::error(e)), "");
            return;
        }
        if let Context::Redact { channel, msgid } = context {
            let code = match e {
                HubError::NoSuchMessage { .. } => "UNKNOWN_MSGID",
                HubError::NotAuthor(_) | HubError::NotOperator(_) => "REDACT_FORBIDDEN",
                HubError::NotInRoom(_) | HubError::NoSuchRoom(_) | HubError::InvalidRoom { .. } | HubError::NoRoom => {
                    "INVALID_TARGET"
                }
                _ => "FAILED",
            };
            let server = self.server().to_owned();
            let params = ["REDACT", code, &super::wire_param(channel), &super::wire_param(msgid)];
            self.from(&server, "FAIL", &params, Some(&words::error(e)), "");
            return;
        }
        // USERHOST and ISON leave out whoever is not there, WHO masks channels gone.
        if let Context::Presence { ison, last } = context {
            self.presence(*ison, *last);
            return;
        }
        if let Context::WhoMask { mask, whox, last, .. } = context {
            self.who_mask_end(mask, whox.as_ref(), *last);
            return;
        }
        let channel = context.channel().map(|c| if c.starts_with('#') { c.to_owned() } else { format!("#{c}") });
        let channel = channel.as_deref().unwrap_or("*");
        let text = words::error(e);
        match e {
            HubError::NickTaken(nick) | HubError::NickRegistered(nick) => {
                self.numeric("433", &[nick], "Nickname is already in use");
            }
            HubError::InvalidNick { nick, .. } => {
                self.numeric("432", &[&super::wire_param(nick)], "Erroneous nickname")
            }
            HubError::RoomLookalike { room, .. } => {
                self.numeric("479", &[&super::wire_param(&format!("#{room}"))], &text);
            }
            HubError::InvalidRoom { room, .. } => {
                let named = if channel == "*" { format!("#{room}") } else { channel.to_owned() };
                self.numeric("403", &[&super::wire_param(&named)], "No such channel");
            }
            HubError::NoSuchNick(nick) => match context {
                Context::Whois { nick: asked } => {
                    self.numeric("401", &[asked], "No such nick/channel");
                    self.numeric("318", &[asked], "End of /WHOIS list.");
                }
                Context::WhoNick { mask, .. } => self.numeric("315", &[mask], "End of /WHO list."),
                Context::UserMode { nick } => self.numeric("401", &[&super::wire_param(nick)], "No such nick"),
                _ => self.numeric("401", &[&super::wire_param(nick)], "No such nick/channel"),
            },
            HubError::NoSuchRoom(room) => match context {
                Context::Names { channel } => self.numeric("366", &[channel], "End of /NAMES list."),
                Context::Who { mask, .. } => self.numeric("315", &[mask], "End of /WHO list."),
                _ => self.numeric("403", &[&format!("#{room}")], "No such channel"),
            },
            HubError::NotInRoom(_) | HubError::NoRoom => match context {
                Context::Privmsg { .. } => self.numeric("404", &[channel], "Cannot send to channel"),
                // Changing modes asks for an operator first, as servers check it.
                Context::Mode { letter, target, .. } if *letter != '?' && !(*letter == 'b' && target.is_empty()) => {
                    self.numeric("482", &[channel], "You're not channel operator");
                }
                _ => self.numeric("442", &[channel], "You're not on that channel"),
            },
            HubError::Muted(_) | HubError::Moderated(_) => {
                self.numeric("404", &[channel], &format!("Cannot send to channel ({text})"));
            }
            HubError::EmptyMessage => self.numeric("412", &[], "No text to send"),
            HubError::MessageTooLong { .. } | HubError::TagsTooLong { .. } => {
                self.numeric("417", &[], "Input line was too long")
            }
            HubError::BadTag(_) | HubError::BadReaction { .. } => {
                let server = self.server().to_owned();
                self.from(&server, "FAIL", &["TAGMSG", "INVALID_TAG"], Some(&text), "");
            }
            HubError::TooManyRooms { .. } => self.numeric("405", &[channel], "You have joined too many channels"),
            HubError::NotOperator(_) => self.numeric("482", &[channel], "You're not channel operator"),
            HubError::NotAdmin => self.numeric("481", &[], "Permission Denied- You're not an IRC operator"),
            HubError::Banned { .. } => self.numeric("474", &[channel], "Cannot join channel (+b)"),
            HubError::WrongKey(_) => self.numeric("475", &[channel], "Cannot join channel (+k)"),
            HubError::RoomFull(_) => self.numeric("471", &[channel], "Cannot join channel (+l)"),
            HubError::InviteOnly(_) => self.numeric("473", &[channel], "Cannot join channel (+i)"),
            HubError::NotHere { nick, .. } => {
                self.numeric("441", &[nick, channel], "They aren't on that channel");
            }
            HubError::AlreadyInRoom { nick, .. } => self.numeric("443", &[nick, channel], "is already on channel"),
            HubError::NoSuchAccount(_) | HubError::BadMask(_) | HubError::BadMode(_) => {
                let (letter, target) = match context {
                    Context::Mode { letter, target, .. } => (letter.to_string(), target.clone()),
                    _ => ("*".to_owned(), "*".to_owned()),
                };
                self.numeric("696", &[channel, &letter, &super::wire_param(&target)], &text);
            }
            HubError::BadLogin => match context {
                Context::Oper => self.numeric("464", &[], "Password incorrect"),
                _ => self.fail(context, "ACCOUNT_REQUIRED", &text),
            },
            HubError::NoHistory => self.fail(context, "MESSAGE_ERROR", &text),
            HubError::NotLoggedIn => self.fail(context, "ACCOUNT_REQUIRED", &text),
            HubError::ShuttingDown => {}
            HubError::NoAccounts
            | HubError::AccountExists(_)
            | HubError::WeakPassword { .. }
            | HubError::Busy
            | HubError::BadSearch(_)
            | HubError::StoreRead
            | HubError::StoreWrite
            | HubError::NotShared { .. }
            | HubError::ClusterUnreachable
            | HubError::TooLong { .. }
            | HubError::RoomRegistered(_)
            | HubError::RoomNotRegistered(_)
            | HubError::TooManyRegistered { .. }
            | HubError::NoSuchMessage { .. }
            | HubError::NotAuthor(_)
            | HubError::BadToken
            | HubError::NoSuchSession(_)
            | HubError::NotRememberable => self.fail(context, "FAILED", &text),
            HubError::NotFounder(_) => self.numeric("482", &[channel], "You're not the channel's founder"),
            // A server's ban list (KLINE) has no numeric of its own.
            HubError::TooManyBans { .. } if channel == "*" => self.fail(context, "FAILED", &text),
            HubError::TooManyBans { .. } => self.numeric("478", &[channel, "b"], "Channel ban list is full"),
            HubError::ServerBanned { reason } => {
                let why = reason.as_deref().map_or_else(
                    || "You are banned from this server".to_owned(),
                    |r| format!("You are banned from this server: {r}"),
                );
                self.numeric("465", &[], &why);
            }
            HubError::TooManyAttempts { .. } => self.fail(context, "RATE_LIMITED", &text),
        }
    }

    /// A standard reply (`FAIL COMMAND CODE :text`) for refusals without a numeric.
    fn fail(&mut self, context: &Context, code: &str, text: &str) {
        let server = self.server().to_owned();
        let command = context.command();
        match context {
            Context::ChatHistory { sub, target } => {
                self.from(&server, "FAIL", &[command, code, sub, &super::wire_param(target)], Some(text), "");
            }
            _ => self.from(&server, "FAIL", &[command, code], Some(text), ""),
        }
    }
}

/// The member's prefix (`@`, `+`, both with `multi-prefix`).
fn prefixes(member: &Member, multi: bool) -> String {
    match (member.op, member.voice, multi) {
        (true, true, true) => "@+".to_owned(),
        (true, _, _) => "@".to_owned(),
        (false, true, _) => "+".to_owned(),
        (false, false, _) => String::new(),
    }
}

/// The highest status (`@`, `+`, or none) of a member.
fn status(op: bool, voice: bool) -> &'static str {
    match (op, voice) {
        (true, _) => "@",
        (false, true) => "+",
        (false, false) => "",
    }
}

/// `+ov-b` for a list of changes.
fn mode_string(changes: &[(bool, char, Option<String>)]) -> String {
    let mut out = String::new();
    let mut sign = None;
    for (set, letter, _) in changes {
        if sign != Some(*set) {
            out.push(if *set { '+' } else { '-' });
            sign = Some(*set);
        }
        out.push(*letter);
    }
    out
}
