//! The chat as the terminal UI shows it, with no terminal in sight: one buffer for the
//! server, one per room and one per private conversation, each with its scrollback,
//! unread count and (for rooms) members. Everything here is plain data changed by plain
//! methods, so it is tested without a screen or a server.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parley_client::{Event, Kind as MessageKind, LeaveReason, PastMessage};

/// Lines a buffer keeps; older ones are dropped, so a client left open for weeks holds
/// bounded memory. `/history` fetches older messages again.
pub(crate) const MAX_LINES: usize = 5_000;

/// What a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Answers and notices that belong to no room; always the first buffer.
    Server,
    /// A room we are in.
    Room,
    /// Private messages with one other user.
    Private,
}

/// What a line of scrollback says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// Someone's message (ours included).
    Message {
        /// The sender.
        from: String,
        /// The text, possibly several lines.
        text: String,
        /// An action (`/me waves`), shown as `* alice waves`.
        action: bool,
    },
    /// Something that happened: joins, leaves, notices, command output.
    Info(String),
    /// A refusal or a mistyped command.
    Error(String),
}

/// What a message says, and how: text or an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Words<'a> {
    pub(crate) kind: MessageKind,
    pub(crate) text: &'a str,
}

impl<'a> Words<'a> {
    /// Ordinary text.
    pub(crate) fn plain(text: &'a str) -> Self {
        Words { kind: MessageKind::Text, text }
    }
}

/// One entry of a scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// When it happened (the server's clock for messages).
    pub(crate) at: DateTime<Utc>,
    /// The message's place in its room (or in the private numbering), which is how a
    /// message that arrives twice (live and in a catch-up page) is recognised.
    pub(crate) seq: Option<u64>,
    /// What it says.
    pub(crate) body: Body,
    /// It names us, or is a private message to us: highlighted, and rings the bell.
    pub(crate) mention: bool,
}

impl Line {
    fn info(at: DateTime<Utc>, text: impl Into<String>) -> Line {
        Line { at, seq: None, body: Body::Info(text.into()), mention: false }
    }
}

/// A room, a conversation or the server's own messages.
#[derive(Debug, Clone)]
pub(crate) struct Buffer {
    /// What it is.
    pub(crate) kind: Kind,
    /// The room's name or the other user's nick, as the server spells it.
    pub(crate) name: String,
    /// The scrollback, oldest first; messages with a seq are kept in seq order.
    pub(crate) lines: VecDeque<Line>,
    /// Messages added since the buffer was last looked at.
    pub(crate) unread: usize,
    /// How many of those name us.
    pub(crate) mentions: usize,
    /// The room's members, sorted without regard to case.
    pub(crate) members: Vec<String>,
    /// The room's topic.
    pub(crate) topic: Option<String>,
    /// How many lines the view is scrolled back from the newest; 0 follows new lines.
    pub(crate) scroll: usize,
    /// The highest seq held, so that live messages (the usual case) append at once.
    max_seq: Option<u64>,
    /// Where the user read up to, on this screen or another session (a room's read
    /// marker); messages after it are unread.
    pub(crate) read: Option<DateTime<Utc>>,
}

impl Buffer {
    fn new(kind: Kind, name: &str) -> Buffer {
        Buffer {
            kind,
            name: name.to_owned(),
            lines: VecDeque::new(),
            unread: 0,
            mentions: 0,
            members: Vec::new(),
            topic: None,
            scroll: 0,
            max_seq: None,
            read: None,
        }
    }

    /// Adds a line where its seq puts it; `false` when a line with that seq is already
    /// here (a message seen live and again in a catch-up page).
    fn insert(&mut self, line: Line) -> bool {
        let Some(seq) = line.seq else {
            self.append(line);
            return true;
        };
        if !matches!(self.max_seq, Some(max) if seq <= max) {
            self.max_seq = Some(seq);
            self.append(line);
            return true;
        }
        // An older message (a catch-up or /history page): after the last message before
        // it, scanning from the newest end where such pages usually land.
        let mut at = 0;
        for (i, held) in self.lines.iter().enumerate().rev() {
            match held.seq {
                Some(s) if s == seq => return false,
                Some(s) if s < seq => {
                    at = i + 1;
                    break;
                }
                _ => {}
            }
        }
        self.lines.insert(at, line);
        self.trim();
        true
    }

    fn append(&mut self, line: Line) {
        self.lines.push_back(line);
        if self.scroll > 0 {
            // Keep the lines being read where they are.
            self.scroll += 1;
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.lines.len() > MAX_LINES {
            self.lines.pop_front();
        }
        self.scroll = self.scroll.min(self.lines.len().saturating_sub(1));
    }

    fn add_member(&mut self, nick: &str) {
        if !self.members.iter().any(|m| m.eq_ignore_ascii_case(nick)) {
            self.members.push(nick.to_owned());
            sort_nicks(&mut self.members);
        }
    }

    fn remove_member(&mut self, nick: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|m| !m.eq_ignore_ascii_case(nick));
        self.members.len() != before
    }
}

fn sort_nicks(nicks: &mut [String]) {
    nicks.sort_by_key(|n| n.to_ascii_lowercase());
}

/// The state of the connection, for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// Connected and registered.
    Connected,
    /// The connection dropped; the next try is under way or waiting.
    Reconnecting {
        /// How many tries so far.
        attempt: u32,
        /// Why the last connection or try ended.
        reason: String,
    },
}

/// A message as a scrollback line; a shared file reads as an action: `* bob shared
/// report.pdf (1.2 MB, application/pdf): /get ID`.
fn message_body(from: &str, kind: MessageKind, text: &str) -> Body {
    match kind {
        MessageKind::File => {
            Body::Message { from: from.to_owned(), text: super::super::format::file_words(text), action: true }
        }
        _ => Body::Message { from: from.to_owned(), text: text.to_owned(), action: kind == MessageKind::Action },
    }
}

/// Whether something added deserves the user's attention beyond an unread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attention {
    /// Nothing special.
    None,
    /// A message names us, or someone wrote to us privately: ring the bell.
    Bell,
}

/// Everything the screen shows, apart from the line being typed.
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// Our nick.
    pub(crate) nick: String,
    /// The server's buffer first, then rooms, then conversations.
    pub(crate) buffers: Vec<Buffer>,
    /// The buffer on screen.
    pub(crate) current: usize,
    /// The server, as given on the command line.
    pub(crate) server: String,
    /// How the connection is secured, in a few words (`plain`, `TLS (CA)`, a fingerprint).
    pub(crate) security: String,
    /// The connection's state.
    pub(crate) link: Link,
    /// The round trip of the last ping.
    pub(crate) lag: Option<Duration>,
    /// The progress of a file transfer, while one runs.
    pub(crate) transfer: Option<String>,
}

impl State {
    /// A state with only the server's buffer.
    pub(crate) fn new(server: &str, security: &str, nick: &str) -> State {
        State {
            nick: nick.to_owned(),
            buffers: vec![Buffer::new(Kind::Server, "server")],
            current: 0,
            server: server.to_owned(),
            security: security.to_owned(),
            link: Link::Connected,
            lag: None,
            transfer: None,
        }
    }

    /// The buffer on screen.
    pub(crate) fn current(&self) -> &Buffer {
        // `current` is kept in range by every method that changes `buffers`.
        &self.buffers[self.current.min(self.buffers.len() - 1)]
    }

    /// The room on screen, if the current buffer is a room.
    pub(crate) fn current_room(&self) -> Option<&str> {
        let buffer = self.current();
        (buffer.kind == Kind::Room).then_some(buffer.name.as_str())
    }

    /// The index of a buffer, names compared without regard to case.
    pub(crate) fn find(&self, kind: Kind, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| b.kind == kind && b.name.eq_ignore_ascii_case(name))
    }

    /// The index of a buffer, made if missing: rooms after the last room, conversations
    /// at the end, so the sidebar reads server, rooms, people.
    pub(crate) fn open(&mut self, kind: Kind, name: &str) -> usize {
        if let Some(i) = self.find(kind, name) {
            return i;
        }
        let at = match kind {
            Kind::Server => return 0,
            Kind::Room => self.buffers.iter().rposition(|b| b.kind != Kind::Private).map_or(1, |i| i + 1),
            Kind::Private => self.buffers.len(),
        };
        self.buffers.insert(at, Buffer::new(kind, name));
        if self.current >= at {
            self.current += 1;
        }
        at
    }

    /// Removes a buffer (a room left, a conversation closed); the server's stays.
    pub(crate) fn close(&mut self, index: usize) {
        if index == 0 || index >= self.buffers.len() {
            return;
        }
        self.buffers.remove(index);
        if self.current >= index {
            self.current = self.current.saturating_sub(1);
        }
    }

    /// The read marker of a room or conversation (`kind`, `name`) moved to `at` (on
    /// another session, or as the server has it after a join): what is older is read
    /// there, so it is not unread here.
    pub(crate) fn marker(&mut self, kind: Kind, name: &str, at: DateTime<Utc>) {
        let Some(index) = self.find(kind, name) else { return };
        let nick = self.nick.clone();
        let buffer = &mut self.buffers[index];
        if buffer.read.is_some_and(|read| read >= at) {
            return;
        }
        buffer.read = Some(at);
        let unread = buffer.lines.iter().filter(|l| l.at > at && is_from_others(l, &nick));
        let (count, mentions) = unread.fold((0, 0), |(n, m), l| (n + 1, m + usize::from(l.mention)));
        buffer.unread = buffer.unread.min(count);
        buffer.mentions = buffer.mentions.min(mentions);
    }

    /// The read marker to send for the room or conversation on screen: the time of its
    /// newest message, when that is newer than what the server has. Taking it counts it
    /// as sent.
    pub(crate) fn take_marker(&mut self) -> Option<(Kind, String, DateTime<Utc>)> {
        let index = self.current.min(self.buffers.len() - 1);
        let buffer = &mut self.buffers[index];
        if buffer.kind == Kind::Server {
            return None;
        }
        let newest = buffer.lines.iter().rev().find(|l| matches!(l.body, Body::Message { .. }))?.at;
        if buffer.read.is_some_and(|read| read >= newest) {
            return None;
        }
        buffer.read = Some(newest);
        Some((buffer.kind, buffer.name.clone(), newest))
    }

    /// Shows buffer `index` and marks it read.
    pub(crate) fn switch(&mut self, index: usize) {
        if index < self.buffers.len() {
            self.current = index;
            let buffer = &mut self.buffers[index];
            buffer.unread = 0;
            buffer.mentions = 0;
        }
    }

    /// Shows the next buffer (`step` 1) or the previous one (`step` -1), wrapping.
    pub(crate) fn cycle(&mut self, forward: bool) {
        let n = self.buffers.len();
        let next = if forward { (self.current + 1) % n } else { (self.current + n - 1) % n };
        self.switch(next);
    }

    /// Adds a line to buffer `index`, counting it unread when it is a message not on
    /// screen. `false` when it was a duplicate.
    fn add(&mut self, index: usize, line: Line, counts: bool) -> bool {
        let on_screen = index == self.current;
        let Some(buffer) = self.buffers.get_mut(index) else { return false };
        let is_message = matches!(line.body, Body::Message { .. });
        let (mention, at) = (line.mention, line.at);
        if !buffer.insert(line) {
            return false;
        }
        // What was read on another session (before the read marker) is not unread.
        let read_elsewhere = buffer.read.is_some_and(|read| at <= read);
        if counts && is_message && !on_screen && !read_elsewhere {
            buffer.unread += 1;
            if mention {
                buffer.mentions += 1;
            }
        }
        true
    }

    /// An informational line in buffer `index`.
    pub(crate) fn info(&mut self, index: usize, at: DateTime<Utc>, text: impl Into<String>) {
        self.add(index, Line::info(at, text), false);
    }

    /// An informational line in the buffer on screen.
    pub(crate) fn note(&mut self, at: DateTime<Utc>, text: impl Into<String>) {
        self.info(self.current, at, text);
    }

    /// An error line in the buffer on screen.
    pub(crate) fn error(&mut self, at: DateTime<Utc>, text: impl Into<String>) {
        let line = Line { at, seq: None, body: Body::Error(text.into()), mention: false };
        self.add(self.current, line, false);
    }

    /// A message in a room we are in (ours included). Messages for rooms we have no
    /// buffer for are from before we left them and are dropped.
    pub(crate) fn room_message(
        &mut self,
        room: &str,
        from: &str,
        seq: u64,
        at: DateTime<Utc>,
        Words { kind, text }: Words<'_>,
        counts: bool,
    ) -> Attention {
        let Some(index) = self.find(Kind::Room, room) else { return Attention::None };
        let ours = from.eq_ignore_ascii_case(&self.nick);
        let mention = !ours && kind != MessageKind::File && mentions(text, &self.nick);
        let body = message_body(from, kind, text);
        let added = self.add(index, Line { at, seq: Some(seq), body, mention }, counts);
        if added && mention {
            Attention::Bell
        } else {
            Attention::None
        }
    }

    /// A message of `room` was deleted: it stays in its place, as deleted, so that
    /// the conversation around it still reads (and a catch-up page does not bring it
    /// back: its seq is held).
    pub(crate) fn deleted(&mut self, room: &str, seq: u64, by: &str, author: &str, reason: Option<&str>) {
        let Some(index) = self.find(Kind::Room, room) else { return };
        let whose = if by == author { "by its author".to_owned() } else { format!("by {by}") };
        let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
        let buffer = &mut self.buffers[index];
        if let Some(line) = buffer.lines.iter_mut().find(|line| line.seq == Some(seq)) {
            line.body = Body::Info(format!("(a message from {author}, deleted {whose}{why})"));
            line.mention = false;
        }
    }

    /// A private message between us and `with`; `seq` is `None` for ours, which the
    /// server does not number back to us.
    pub(crate) fn private_message(
        &mut self,
        with: &str,
        from: &str,
        seq: Option<u64>,
        at: DateTime<Utc>,
        Words { kind, text }: Words<'_>,
        counts: bool,
    ) -> Attention {
        let index = self.open(Kind::Private, with);
        let ours = from.eq_ignore_ascii_case(&self.nick);
        let body = message_body(from, kind, text);
        let added = self.add(index, Line { at, seq, body, mention: !ours }, counts);
        if added && !ours && counts {
            Attention::Bell
        } else {
            Attention::None
        }
    }

    /// Past messages of a room (on join, after a reconnect, from `/history`), merged by
    /// seq so that none shows twice. `counts`: they were missed, so they count unread.
    pub(crate) fn room_history(&mut self, room: &str, messages: &[PastMessage], counts: bool) {
        for m in messages {
            self.room_message(room, &m.from, m.seq, m.at, Words { kind: m.kind, text: &m.text }, counts);
        }
    }

    /// A room we entered (or re-entered after a reconnect): its buffer, members, topic
    /// and latest messages.
    pub(crate) fn joined(
        &mut self,
        room: &str,
        members: &[String],
        topic: Option<&str>,
        history: &[PastMessage],
    ) -> usize {
        let index = self.open(Kind::Room, room);
        let buffer = &mut self.buffers[index];
        buffer.members = members.to_vec();
        sort_nicks(&mut buffer.members);
        buffer.topic = topic.map(str::to_owned);
        self.room_history(room, history, false);
        index
    }

    /// Applies an event from the server.
    pub(crate) fn apply(&mut self, event: &Event) -> Attention {
        match event {
            Event::Message { room, from, seq, ts, kind, text } => {
                self.room_message(room, from, *seq, *ts, Words { kind: *kind, text }, true)
            }
            Event::Whisper { seq, from, to, ts, kind, text } => {
                let with = if from.eq_ignore_ascii_case(&self.nick) { to } else { from };
                self.private_message(with, from, Some(*seq), *ts, Words { kind: *kind, text }, true)
            }
            Event::Joined { room, nick, ts, arrival } => {
                if let Some(index) = self.find(Kind::Room, room) {
                    self.buffers[index].add_member(nick);
                    let text = if *arrival {
                        format!("{nick} has joined the chat")
                    } else {
                        format!("{nick} has joined {room}")
                    };
                    self.info(index, *ts, text);
                }
                Attention::None
            }
            Event::Left { room, nick, ts, reason, detail } => {
                let Some(index) = self.find(Kind::Room, room) else { return Attention::None };
                self.buffers[index].remove_member(nick);
                let why = detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
                if nick.eq_ignore_ascii_case(&self.nick) {
                    // We are out of the room: its window goes (as after /part), so that
                    // /join enters it again instead of showing a window that no longer
                    // receives anything.
                    self.close(index);
                    self.error(*ts, format!("You were kicked from {room}{why}"));
                    return Attention::Bell;
                }
                let text = match reason {
                    LeaveReason::Kicked => format!("{nick} was kicked from {room}{why}"),
                    LeaveReason::Part => format!("{nick} has left {room}{why}"),
                    _ => format!("{nick} has left the chat{why}"),
                };
                self.info(index, *ts, text);
                Attention::None
            }
            Event::Marker { room: Some(room), at, .. } => {
                self.marker(Kind::Room, room, *at);
                Attention::None
            }
            Event::Marker { room: None, with: Some(with), at } => {
                self.marker(Kind::Private, with, *at);
                Attention::None
            }
            Event::Marker { room: None, with: None, .. } => Attention::None,
            Event::Deleted { room, seq, by, author, reason, .. } => {
                self.deleted(room, *seq, by, author, reason.as_deref());
                Attention::None
            }
            // A window shows messages, not who is typing.
            Event::Typing { .. } => Attention::None,
            Event::Reaction { room, seq, from, reaction, removed } => {
                let found = match room {
                    Some(room) => self.find(Kind::Room, room),
                    None => self.find(Kind::Private, from),
                };
                if let Some(index) = found {
                    let what = if *removed { "took back" } else { "reacted" };
                    self.info(index, Utc::now(), format!("{from} {what} {reaction} on message #{seq}"));
                }
                Attention::None
            }
            Event::NickChanged { old, new, ts } => {
                if old.eq_ignore_ascii_case(&self.nick) {
                    self.nick.clone_from(new);
                }
                for index in 0..self.buffers.len() {
                    let buffer = &mut self.buffers[index];
                    let renamed = match buffer.kind {
                        Kind::Room => {
                            let was_here = buffer.remove_member(old);
                            if was_here {
                                buffer.add_member(new);
                            }
                            was_here
                        }
                        Kind::Private if buffer.name.eq_ignore_ascii_case(old) => {
                            buffer.name.clone_from(new);
                            true
                        }
                        _ => false,
                    };
                    if renamed {
                        self.info(index, *ts, format!("{old} is now known as {new}"));
                    }
                }
                Attention::None
            }
            Event::Notice { ts, text } => {
                self.note(*ts, format!("*** {text}"));
                Attention::None
            }
            Event::Error { message, .. } => {
                self.error(Utc::now(), message.clone());
                Attention::None
            }
            Event::Shutdown { message } => {
                self.info(0, Utc::now(), message.clone());
                if self.current != 0 {
                    self.note(Utc::now(), message.clone());
                }
                Attention::None
            }
            Event::Closed { .. } => Attention::None,
        }
    }

    /// Scrolls the buffer on screen back (positive) or forward (negative) by `lines`.
    pub(crate) fn scroll(&mut self, lines: isize) {
        let index = self.current;
        if let Some(buffer) = self.buffers.get_mut(index) {
            let max = buffer.lines.len().saturating_sub(1);
            buffer.scroll = buffer.scroll.saturating_add_signed(lines).min(max);
        }
    }

    /// Unread messages outside the buffer on screen, and how many of them name us.
    pub(crate) fn unread_elsewhere(&self) -> (usize, usize) {
        self.buffers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.current)
            .fold((0, 0), |(u, m), (_, b)| (u + b.unread, m + b.mentions))
    }
}

/// Whether `text` names `nick` as a word of its own (case aside), so that "ann" does
/// not match "annual".
pub(crate) fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    let nick = nick.to_ascii_lowercase();
    let is_name_char = |c: char| c.is_alphanumeric() || "-_[]\\`^{}|".contains(c);
    lower.match_indices(&nick).any(|(at, _)| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + nick.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

/// Whether a line is a message someone else said (what can be unread).
fn is_from_others(line: &Line, nick: &str) -> bool {
    matches!(&line.body, Body::Message { from, .. } if !from.eq_ignore_ascii_case(nick))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + i64::from(second), 0).expect("valid")
    }

    fn past(seq: u64, from: &str, text: &str) -> PastMessage {
        PastMessage {
            seq,
            from: from.into(),
            at: at(u32::try_from(seq).unwrap_or(0)),
            kind: MessageKind::Text,
            text: text.into(),
        }
    }

    fn texts(buffer: &Buffer) -> Vec<String> {
        buffer
            .lines
            .iter()
            .map(|l| match &l.body {
                Body::Message { from, text, .. } => format!("{from}: {text}"),
                Body::Info(text) => format!("* {text}"),
                Body::Error(text) => format!("! {text}"),
            })
            .collect()
    }

    fn with_lobby() -> State {
        let mut state = State::new("localhost:7780", "plain", "ann");
        let lobby = state.joined("lobby", &["bob".into(), "ann".into()], Some("hi"), &[past(1, "bob", "one")]);
        state.switch(lobby);
        state
    }

    #[test]
    fn messages_seen_twice_show_once_and_late_ones_take_their_place() {
        let mut state = with_lobby();
        state.room_message("lobby", "bob", 3, at(3), Words::plain("three"), true);
        state.info(1, at(4), "carol has joined lobby");
        // A catch-up page overlapping what arrived live.
        state.room_history("lobby", &[past(1, "bob", "one"), past(2, "ann", "two"), past(3, "bob", "three")], true);
        state.room_message("lobby", "bob", 4, at(5), Words::plain("four"), true);
        assert_eq!(
            texts(state.current()),
            vec!["bob: one", "ann: two", "bob: three", "* carol has joined lobby", "bob: four"]
        );
    }

    #[test]
    fn a_deleted_message_is_shown_deleted_in_its_place_and_a_catch_up_does_not_bring_it_back() {
        let mut state = with_lobby();
        state.room_message("lobby", "bob", 2, at(2), Words::plain("ann: oops, secret"), true);
        state.room_message("lobby", "bob", 3, at(3), Words::plain("three"), true);
        let deleted = Event::Deleted {
            room: "lobby".into(),
            seq: 2,
            by: "carol".into(),
            author: "bob".into(),
            said: at(2),
            ts: at(4),
            reason: Some("spam".into()),
        };
        assert_eq!(state.apply(&deleted), Attention::None);
        let shown = vec!["bob: one", "* (a message from bob, deleted by carol: spam)", "bob: three"];
        assert_eq!(texts(state.current()), shown);
        assert!(!state.current().lines[1].mention, "a deleted mention no longer highlights");
        state.room_history("lobby", &[past(1, "bob", "one"), past(3, "bob", "three")], true);
        assert_eq!(texts(state.current()), shown);
    }

    #[test]
    fn unread_counts_messages_off_screen_and_mentions_ring() {
        let mut state = with_lobby();
        let dev = state.joined("dev", &[], None, &[past(7, "bob", "old news")]);
        assert_eq!(state.buffers[dev].unread, 0, "history on join is not unread");
        assert_eq!(state.room_message("dev", "bob", 8, at(8), Words::plain("anyone?"), true), Attention::None);
        assert_eq!(state.room_message("dev", "bob", 9, at(9), Words::plain("ANN: look"), true), Attention::Bell);
        assert_eq!(
            state.room_message("dev", "ann", 10, at(10), Words::plain("ann here"), true),
            Attention::None,
            "our own"
        );
        assert_eq!((state.buffers[dev].unread, state.buffers[dev].mentions), (3, 1));
        assert_eq!(state.unread_elsewhere(), (3, 1));
        state.switch(dev);
        assert_eq!((state.buffers[dev].unread, state.buffers[dev].mentions), (0, 0));
    }

    #[test]
    fn private_messages_open_a_conversation_and_ring() {
        let mut state = with_lobby();
        let event = Event::Whisper {
            seq: 5,
            from: "Bob".into(),
            to: "ann".into(),
            ts: at(1),
            kind: MessageKind::Text,
            text: "psst".into(),
        };
        assert_eq!(state.apply(&event), Attention::Bell);
        assert_eq!(state.apply(&event), Attention::None, "a duplicate");
        let bob = state.find(Kind::Private, "bob").expect("opened");
        assert_eq!(bob, 2, "after the rooms");
        assert_eq!(texts(&state.buffers[bob]), vec!["Bob: psst"]);
        // A room joined later goes before the conversation, and the screen stays put.
        state.switch(bob);
        state.joined("dev", &[], None, &[]);
        assert_eq!(state.current().name, "Bob");
        assert_eq!(
            state.buffers.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["server", "lobby", "dev", "Bob"]
        );
    }

    #[test]
    fn nick_changes_rename_members_conversations_and_us() {
        let mut state = with_lobby();
        state.private_message("bob", "bob", Some(1), at(1), Words::plain("hi"), true);
        state.apply(&Event::NickChanged { old: "bob".into(), new: "robert".into(), ts: at(2) });
        assert_eq!(state.buffers[1].members, vec!["ann", "robert"]);
        assert_eq!(state.buffers[2].name, "robert");
        state.apply(&Event::NickChanged { old: "ann".into(), new: "anna".into(), ts: at(3) });
        assert_eq!(state.nick, "anna");
    }

    #[test]
    fn joins_and_leaves_keep_the_member_list() {
        let mut state = with_lobby();
        state.apply(&Event::Joined { room: "lobby".into(), nick: "Carol".into(), ts: at(1), arrival: true });
        state.apply(&Event::Left {
            room: "lobby".into(),
            nick: "bob".into(),
            ts: at(2),
            reason: LeaveReason::Quit,
            detail: Some("bye".into()),
        });
        assert_eq!(state.buffers[1].members, vec!["ann", "Carol"]);
        assert_eq!(&texts(&state.buffers[1])[1..], ["* Carol has joined the chat", "* bob has left the chat (bye)"]);
        let kicked = Event::Left {
            room: "lobby".into(),
            nick: "ANN".into(),
            ts: at(3),
            reason: LeaveReason::Kicked,
            detail: Some("by carol".into()),
        };
        assert_eq!(state.apply(&kicked), Attention::Bell);
        assert_eq!(state.find(Kind::Room, "lobby"), None, "the window went");
        assert_eq!(texts(state.current()), ["! You were kicked from lobby (by carol)"]);
    }

    #[test]
    fn scrolling_holds_the_view_while_lines_arrive() {
        let mut state = with_lobby();
        for seq in 2..20 {
            state.room_message("lobby", "bob", seq, at(0), Words::plain("x"), true);
        }
        state.scroll(5);
        state.room_message("lobby", "bob", 20, at(0), Words::plain("new"), true);
        assert_eq!(state.current().scroll, 6);
        state.scroll(-100);
        assert_eq!(state.current().scroll, 0);
        state.scroll(1_000);
        assert_eq!(state.current().scroll, state.current().lines.len() - 1);
    }

    #[test]
    fn closing_a_buffer_keeps_a_valid_screen() {
        let mut state = with_lobby();
        let dev = state.joined("dev", &[], None, &[]);
        state.switch(dev);
        state.close(dev);
        assert_eq!(state.current().name, "lobby");
        state.close(0);
        assert_eq!(state.buffers.len(), 2, "the server's buffer stays");
    }

    #[test]
    fn mentions_are_whole_words() {
        assert!(mentions("hey Ann, lunch?", "ann"));
        assert!(mentions("ann", "ann"));
        assert!(mentions("@ann: ok", "ann"));
        assert!(!mentions("annual report", "ann"));
        assert!(!mentions("joann", "ann"));
        assert!(!mentions("anything", ""));
        assert!(mentions("日本 ann 日本", "ann"));
    }
}
