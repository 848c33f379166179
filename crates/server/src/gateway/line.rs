//! The classic line protocol: a username prompt, then one line per message, rendered as
//! `[HH:MM:SS] name: text` in the server's local time. `nc` and `telnet` are clients.
//!
//! A line user is in one room at a time: `/join` moves them (the hub's exclusive join),
//! so every line they see belongs to the room they are in and needs no room tag.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use bytes::{Bytes, BytesMut};
use chrono::{Local, Utc};
use parley_hub::{
    Action, Command, Cursor, Event, HubError, Kind, LeaveReason, Member, Record, Reply, RequestId, RoomName,
    ServerAction, Timestamp, Wire,
};
use parley_proto::line::{clock, help, stamp, Input, LineDecoder, LineError, USERNAME_PROMPT};
use parley_proto::text::{printable, printable_line};

use super::{words, Connect, Dialogue, Farewell, Protocol, ReadEnd, Refusal, Turn, EXCESS_FLOOD};
use crate::server::{Shared, SHUTDOWN_MESSAGE};

/// Line sessions share the first slot of an event's encoding cache.
const CACHE_SLOT: usize = 0;

/// Line requests carry no ids.
const NO_ID: RequestId = RequestId(0);

/// Messages `/context` shows on each side of the one asked for.
const CONTEXT: u64 = 5;

/// Lines `/history` shows when not told how many.
const DEFAULT_HISTORY_LINES: usize = 20;

/// What `/help` shows, built once.
static HELP: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(help("move to ROOM (it is created if nobody is there)", "leave the chat (also: quit, exit, q)"))
});

/// The line protocol, for the connection driver.
pub(crate) struct Line {
    decoder: LineDecoder,
    /// The client's port, for a guest's name.
    port: u16,
    /// The name asked for last, while registering (a boxed `str`: this state lives in
    /// the connection's task for its whole life, where every byte counts per connection).
    asked: Box<str>,
}

impl Protocol for Line {
    type Input = Result<String, LineError>;
    /// Line sessions have no protocol keepalive; TCP keepalive finds dead peers.
    const PINGS: bool = false;

    fn new(peer: SocketAddr, shared: &Shared) -> Line {
        Line { decoder: LineDecoder::new(shared.limits.max_line_bytes), port: peer.port(), asked: Box::default() }
    }

    fn wire(&self) -> Box<dyn Wire> {
        Box::new(LineWire)
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Option<Self::Input> {
        self.decoder.decode(buf).transpose()
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<Self::Input> {
        self.decoder.decode_eof(buf).transpose()
    }

    fn greeting(&self) -> Option<Bytes> {
        Some(Bytes::from_static(USERNAME_PROMPT.as_bytes()))
    }

    /// The username prompt, until the hub accepts a name.
    async fn register(&mut self, input: Self::Input, out: &mut BytesMut, _: &Shared) -> Dialogue {
        let line = match input {
            Ok(line) => line,
            Err(e) => {
                out.extend_from_slice(format!("{}\n{USERNAME_PROMPT}", line_error(&e)).as_bytes());
                return Dialogue::Continue;
            }
        };
        let name = line.trim();
        self.asked = if name.is_empty() { format!("Guest_{}", self.port).into() } else { name.into() };
        Dialogue::Connect(Connect::Nick { nick: self.asked.to_string(), password: None, req: NO_ID })
    }

    fn refused(&mut self, error: &HubError, out: &mut BytesMut) -> bool {
        let reason = match error {
            HubError::ServerBanned { .. } => {
                out.extend_from_slice(format!("{}\n", hub_error(error)).as_bytes());
                return false;
            }
            HubError::NickTaken(_) => format!("The name {} is already taken; choose another.", self.asked),
            other => format!("Sorry: {}.", words::error(other)),
        };
        out.extend_from_slice(format!("{}\n{USERNAME_PROMPT}", one_line(&reason)).as_bytes());
        true
    }

    /// Turns a typed line into a hub command.
    async fn handle(&mut self, input: Self::Input, turn: &mut Turn<'_>) -> Result<(), ReadEnd> {
        let line = match input {
            Ok(line) => line,
            Err(e) => {
                tracing::info!("bad line from {:?}: {e}", turn.session.id());
                return turn.relay(format!("{}\n", line_error(&e)).into()).await;
            }
        };
        let input = Input::parse(&line);
        // Pressing Enter on an empty line is not an attempt to say something.
        if matches!(&input, Input::Say(text) if text.trim().is_empty()) {
            return Ok(());
        }
        turn.pace().await?;
        let command = match input {
            Input::Say(text) => Command::Say { room: None, kind: Kind::Text, text, meta: Default::default() },
            Input::Me(text) => Command::Say { room: None, kind: Kind::Action, text, meta: Default::default() },
            Input::Msg { to, text } => Command::Whisper { to, kind: Kind::Text, text, meta: Default::default() },
            Input::Away(text) => Command::Away { text },
            Input::Whois(nick) => Command::Whois { nick },
            Input::Invite(nick) => Command::Invite { nick, room: None },
            Input::Who => Command::Who { room: None },
            Input::Rooms => Command::Rooms,
            Input::Nick(nick) => Command::Nick { nick },
            Input::Join(room) => Command::Join { room, exclusive: true, key: None },
            Input::Part => Command::Part { room: None, reason: None },
            Input::Search(query) => Command::Search { query },
            Input::Context(seq) => Command::History {
                room: None,
                cursor: Cursor::Before(seq.saturating_add(CONTEXT + 1)),
                limit: 2 * usize::try_from(CONTEXT).unwrap_or(5) + 1,
            },
            Input::Delete { seq, reason } => Command::Delete { room: None, seq, reason },
            Input::Topic(text) => Command::Topic { room: None, text },
            Input::Audit(n) => Command::Audit { limit: n.unwrap_or(DEFAULT_HISTORY_LINES) },
            Input::Kick { nick, reason } => Command::Moderate { room: None, action: Action::Kick { nick, reason } },
            Input::Ban { mask, duration, reason } => Command::Moderate {
                room: None,
                action: Action::Ban { mask: words::bare_mask(&mask), duration, reason },
            },
            Input::Unban(mask) => {
                Command::Moderate { room: None, action: Action::Unban { mask: words::bare_mask(&mask) } }
            }
            Input::ServerBan { mask, duration, reason } => Command::ServerModerate {
                action: ServerAction::Ban { mask: words::bare_mask(&mask), duration, reason },
            },
            Input::ServerUnban(mask) => {
                Command::ServerModerate { action: ServerAction::Unban { mask: words::bare_mask(&mask) } }
            }
            Input::ServerBans => Command::ServerBans,
            Input::Room { register: true } => Command::Moderate { room: None, action: Action::Register },
            Input::Room { register: false } => Command::Moderate { room: None, action: Action::Unregister },
            Input::Unregister(password) => Command::Unregister { password },
            Input::Mute { nick, duration } => Command::Moderate { room: None, action: Action::Mute { nick, duration } },
            Input::Unmute(nick) => Command::Moderate { room: None, action: Action::Unmute { nick } },
            Input::Op(nick) => Command::Moderate { room: None, action: Action::Op { nick } },
            Input::Deop(nick) => Command::Moderate { room: None, action: Action::Deop { nick } },
            Input::Register(password) => Command::Register { password },
            Input::Login { name, password } => Command::Login { name, password },
            Input::Password { old, new } => Command::Password { old, new },
            Input::Sessions => Command::Sessions,
            Input::RevokeSession(id) => Command::RevokeSession { id },
            Input::Conversation { with, n } => {
                Command::Conversation { with, cursor: Cursor::Latest, limit: n.unwrap_or(DEFAULT_HISTORY_LINES) }
            }
            Input::History(n) => {
                Command::History { room: None, cursor: Cursor::Latest, limit: n.unwrap_or(DEFAULT_HISTORY_LINES) }
            }
            Input::Quit => {
                return match turn.session.quit(NO_ID, None).await {
                    Ok(()) => Err(ReadEnd::Quit),
                    Err(_) => Err(ReadEnd::Closed),
                };
            }
            Input::Help => return turn.relay(HELP.clone()).await,
            Input::Usage(usage) => return turn.relay(format!("Usage: {usage}\n").into()).await,
            Input::Send { .. } | Input::Get { .. } => {
                let why = "Error: files travel over the native protocol; use parley chat to send and get them\n";
                return turn.relay(why.into()).await;
            }
            Input::Unknown(name) => {
                return turn.relay(format!("Error: unknown command /{name} (try /help)\n").into()).await;
            }
        };
        turn.send(NO_ID, command).await
    }

    fn farewell(&self, why: Farewell) -> Option<Bytes> {
        let text = match why {
            Farewell::Shutdown => format!("\n{SHUTDOWN_MESSAGE}\n"),
            Farewell::HandshakeTimeout => "\nYou took too long to choose a name. Goodbye.\n".to_owned(),
            Farewell::NotTls => "\nThis port speaks plain text, not TLS.\n".to_owned(),
            Farewell::Flood => {
                format!("Error: you are sending faster than the server allows; disconnected ({EXCESS_FLOOD}).\n")
            }
            Farewell::PingTimeout => return None,
        };
        Some(text.into())
    }

    /// What a refused connection reads before it is closed.
    fn refusal(why: Refusal) -> Bytes {
        let mut text = why.to_string();
        if let Some(first) = text.get(..1) {
            let upper = first.to_uppercase();
            text.replace_range(..1, &upper);
        }
        format!("Sorry: {text}.\n").into()
    }
}

fn line_error(e: &LineError) -> String {
    match e {
        LineError::TooLong { max } => format!("Error: that line was longer than {max} bytes and was dropped."),
        LineError::InvalidUtf8 => "Error: that line was not valid UTF-8 text and was dropped.".to_owned(),
    }
}

/// How a hub error reads in the line protocol: the one place they are mapped. Errors
/// carry others' words (a ban's reason), so they are one printable line.
fn hub_error(e: &HubError) -> String {
    let mut text = one_line(&words::error(e));
    if let Some(first) = text.get(..1) {
        let upper = first.to_uppercase();
        text.replace_range(..1, &upper);
    }
    format!("Error: {text}.")
}

/// A notice from the server, a line per line of it: `[HH:MM:SS] *** text`.
fn notice_lines(at: &Timestamp, text: &str, line: &mut String) {
    for part in text_lines(text) {
        let _ = writeln!(line, "[{}] *** {part}", clock(at));
    }
}

/// Encodes hub events as the lines a line-protocol user reads.
pub(crate) struct LineWire;

impl Wire for LineWire {
    fn cache_slot(&self) -> Option<usize> {
        Some(CACHE_SLOT)
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        let mut line = String::new();
        match event {
            Event::Message { from, at, kind, text, .. } => {
                for part in text_lines(text) {
                    let _ = writeln!(line, "[{}] {}", clock(at), said(from, *kind, &part));
                }
            }
            Event::Whisper { from, at, kind, text, .. } => {
                for part in text_lines(text) {
                    let _ = writeln!(line, "[{}] [private] {}", clock(at), said(from, *kind, &part));
                }
            }
            Event::Notice { at, notice } => notice_lines(at, &words::notice(notice), &mut line),
            Event::Mode { room, by, at, changes, .. } => {
                notice_lines(at, &words::modes_changed(by, room, changes), &mut line);
            }
            Event::Moderated { room, by, at, what, .. } => {
                notice_lines(at, &words::room_change(by, room, what), &mut line)
            }
            Event::Topic { room, by, at, text, .. } => {
                notice_lines(at, &words::topic_change(by, room, text), &mut line)
            }
            // Line users have no unread counts to clear.
            Event::Marker { .. } => {}
            Event::SaidTo { room, audience, from, at, kind, text, .. } => {
                let to = words::audience(room, *audience);
                for part in text_lines(text) {
                    let _ = writeln!(line, "[{}] [to {to}] {}", clock(at), said(from, *kind, &part));
                }
            }
            // Typing, reactions and client tags are for clients that show them beside
            // the messages; a line terminal has nowhere to put them.
            Event::Signal { .. } => {}
            Event::Deleted { room, seq, by, author, said_at, at, reason, .. } => {
                let text = words::deleted(by, author, said_at, reason.as_deref().map(one_line).as_deref());
                notice_lines(at, &format!("{text} (#{seq} in {room})"), &mut line);
            }
            Event::Invited { room, by, at, .. } => {
                let _ = writeln!(line, "[{}] *** {by} invites you to {room}: /join {room}", clock(at));
            }
            // Line users see who is away when they ask (/whois), not every change.
            Event::Away { .. } | Event::Account { .. } | Event::InviteSent { .. } | Event::Realname { .. } => {}
            // Watch lists are IRC's (MONITOR).
            Event::SignedOn { .. } | Event::SignedOff { .. } | Event::Watched(_) => {}
            Event::Joined { nick, at, arrival: true, .. } => {
                let _ = writeln!(line, "[{}] {nick} has joined the chat!", clock(at));
            }
            Event::Joined { room, nick, at, arrival: false, .. } => {
                let _ = writeln!(line, "[{}] {nick} has joined {room}.", clock(at));
            }
            Event::Left {
                room,
                nick,
                at,
                reason: reason @ (LeaveReason::Kicked | LeaveReason::Banned),
                by,
                detail,
                ..
            } => {
                let why = words::put_out(*reason, by.as_ref(), detail.as_deref());
                let _ = writeln!(line, "[{}] {nick} was kicked from {room} ({}).", clock(at), one_line(&why));
            }
            Event::Left { room, nick, at, reason: LeaveReason::Part, .. } => {
                let _ = writeln!(line, "[{}] {nick} has left {room}.", clock(at));
            }
            Event::Left { nick, at, reason, detail, .. } => match words::departure(*reason, detail.as_deref()) {
                Some(detail) => {
                    let _ = writeln!(line, "[{}] {nick} has left the chat ({}).", clock(at), one_line(&detail));
                }
                None => {
                    let _ = writeln!(line, "[{}] {nick} has left the chat.", clock(at));
                }
            },
            Event::NickChanged { old, new, at, .. } => {
                let _ = writeln!(line, "[{}] {old} is now known as {new}.", clock(at));
            }
            Event::Shutdown { at, message } => {
                let _ = writeln!(line, "[{}] {message}", clock(at));
            }
            Event::SignedOut { at } => {
                let _ = writeln!(line, "[{}] *** {}.", clock(at), words::SIGNED_OUT);
            }
            Event::Banned { at, reason } => {
                let why = reason.as_deref().map(|r| format!(": {}", one_line(r))).unwrap_or_default();
                let _ = writeln!(line, "[{}] *** You are banned from this server{why}.", clock(at));
            }
            Event::Reply { result: Ok(reply), .. } => reply_lines(reply, &mut line),
            Event::Reply { result: Err(e), .. } => {
                let _ = writeln!(line, "{}", hub_error(e));
            }
        }
        // Fields that may hold others' text are made printable where they are written;
        // this pass is for any that is not, so that no control character ever reaches a
        // line user's terminal. It finds nothing to replace in almost every event.
        out.extend_from_slice(printable(&line).as_bytes());
    }
}

fn reply_lines(reply: &Reply, line: &mut String) {
    let now = clock(&Utc::now());
    let _ = match reply {
        Reply::Welcome { nick, room, history, topic, .. } => {
            let _ = writeln!(line, "[{now}] Welcome to the chat, {nick}!");
            if let Some((topic, _, _)) = topic {
                let _ = writeln!(line, "[{now}] Topic: {}", one_line(topic));
            }
            if let Some(room) = room {
                history_lines(room, history, line);
            }
            Ok(())
        }
        Reply::Joined { room, members, history, topic, .. } => {
            let _ = writeln!(line, "[{now}] You joined {room}. Users here: {}", join_names(members));
            if let Some((topic, _, _)) = topic {
                let _ = writeln!(line, "[{now}] Topic: {}", one_line(topic));
            }
            history_lines(room, history, line);
            Ok(())
        }
        Reply::Conversation { with, messages } if messages.is_empty() => {
            writeln!(line, "No private messages with {with} yet.")
        }
        Reply::Conversation { with, messages } => {
            let _ = writeln!(line, "--- Private messages with {with}: {} messages ---", messages.len());
            past_lines(messages, line);
            writeln!(line, "--- End of history ---")
        }
        Reply::History { room, messages } if messages.is_empty() => writeln!(line, "No history in {room} yet."),
        Reply::History { room, messages } => {
            history_lines(room, messages, line);
            Ok(())
        }
        Reply::Parted { room } => writeln!(line, "[{now}] You left {room}. Use /join ROOM to enter a room."),
        // Line users neither mark nor ask for targets.
        Reply::Said { .. }
        | Reply::Signalled { .. }
        | Reply::ToldSome { .. }
        | Reply::Marker { .. }
        | Reply::Targets(_) => Ok(()),
        Reply::Deleted { room, seq, author, said_at, .. } => {
            let said = said_at.with_timezone(&Local).format("%H:%M:%S");
            writeln!(line, "[{now}] *** You deleted {author}'s message #{seq} of {said} in {room}.")
        }
        Reply::Whispered { to, at, kind, text, away, .. } => {
            for part in text_lines(text) {
                let shown = match kind {
                    Kind::Text => part,
                    Kind::Action => format!("* {part}"),
                    Kind::Notice => format!("(notice) {part}"),
                    Kind::File => "(a file)".to_owned(),
                };
                let _ = writeln!(line, "[{}] [private to {to}] {shown}", clock(at));
            }
            match away {
                Some(away) => writeln!(line, "[{now}] {to} is away: {}", one_line(away)),
                None => Ok(()),
            }
        }
        Reply::Modes { room, modes, .. } => writeln!(line, "Settings of {room}: {}", describe_modes(modes)),
        // The line protocol asks for no list of invitations.
        Reply::ModesSet { .. } | Reply::Opered | Reply::Described | Reply::Invitations { .. } => Ok(()),
        Reply::Presence { .. } | Reply::Watched(_) | Reply::Unwatched => Ok(()),
        Reply::Bans { room, bans } if bans.is_empty() => writeln!(line, "Nobody is banned from {room}."),
        Reply::Bans { room, bans } => {
            let list: Vec<String> = bans.iter().map(|b| b.mask.to_string()).collect();
            writeln!(line, "Banned from {room}: {}", list.join(", "))
        }
        Reply::Invited { nick, room } => writeln!(line, "[{now}] You invited {nick} to {room}."),
        Reply::Away { away: true } => writeln!(line, "[{now}] You are marked away; /away alone brings you back."),
        Reply::Away { away: false } => writeln!(line, "[{now}] You are back."),
        Reply::Whois(whois) => {
            let _ = write!(line, "{}", whois_lines(whois));
            Ok(())
        }
        Reply::Stats(stats) => writeln!(
            line,
            "{} users online (at most {} so far), {} rooms, {} admins online.",
            stats.users, stats.max_users, stats.rooms, stats.admins
        ),
        Reply::Who { room, members, .. } => {
            writeln!(line, "Users in {room} ({}): {}", members.len(), join_names(members))
        }
        Reply::Rooms(rooms) if rooms.is_empty() => writeln!(line, "No rooms yet. Use /join ROOM to create one."),
        Reply::Rooms(rooms) => {
            let list: Vec<String> = rooms
                .iter()
                .map(|r| {
                    let here = if r.joined { ", you are here" } else { "" };
                    let users = if r.members == 1 { "user" } else { "users" };
                    format!("{} ({} {users}{here})", r.name, r.members)
                })
                .collect();
            writeln!(line, "Rooms: {}", list.join(", "))
        }
        Reply::Nick { nick } => writeln!(line, "[{now}] You are now known as {nick}."),
        Reply::Found { query, page, results } if results.is_empty() => {
            writeln!(line, "No messages found for \"{}\" (page {page}).", one_line(query))
        }
        Reply::Found { query, page, results } => {
            let _ = writeln!(line, "--- Found for \"{}\", page {page}: ---", one_line(query));
            for hit in results {
                let stamp = hit.at.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
                let place = match (&hit.room, &hit.to) {
                    (Some(room), _) => format!("{room} #{}", hit.seq),
                    (None, Some(to)) => format!("[private to {to}]"),
                    (None, None) => "[private]".to_owned(),
                };
                for part in text_lines(&hit.text) {
                    let _ = writeln!(line, "[{stamp}] {place} {}: {part}", hit.from);
                }
            }
            let more = if results.len() >= 20 { format!("; page:{} for more", page + 1) } else { String::new() };
            writeln!(line, "--- End of results: /context SEQ shows a message among its neighbours{more} ---")
        }
        Reply::Topic { room, topic: None } => writeln!(line, "{room} has no topic."),
        Reply::Topic { room, topic: Some((text, by, at)) } => {
            writeln!(
                line,
                "Topic of {room}: {} (set by {by}, {})",
                one_line(text),
                at.with_timezone(&Local).format("%Y-%m-%d %H:%M")
            )
        }
        Reply::Moderated { .. } => Ok(()),
        Reply::Audit(lines) if lines.is_empty() => writeln!(line, "The audit log is empty."),
        Reply::Audit(lines) => {
            let _ = writeln!(line, "--- Audit log, newest first: ---");
            for entry in lines {
                let _ = writeln!(line, "{}", audit_line(entry));
            }
            writeln!(line, "--- End of the audit log ---")
        }
        Reply::Registered { account } => {
            writeln!(line, "[{now}] {account} is now your account. Next time, log in with /login {account} PASSWORD.")
        }
        Reply::LoggedIn { account, .. } => writeln!(line, "[{now}] You are logged in as {account}."),
        Reply::PasswordChanged => writeln!(line, "[{now}] Your password is changed."),
        Reply::Remembered { reply, .. } => {
            reply_lines(reply, line);
            Ok(())
        }
        Reply::Sessions(sessions) if sessions.is_empty() => {
            writeln!(line, "Your account stays logged in nowhere: no client holds a session token.")
        }
        Reply::Sessions(sessions) => {
            let _ = writeln!(line, "--- Where your account stays logged in, most recent first: ---");
            for session in sessions {
                let token = &session.token;
                let _ = writeln!(
                    line,
                    "{:>4}{} used {}, since {}: {}",
                    token.id,
                    if session.current { " (this one)" } else { "" },
                    token.last_used.with_timezone(&Local).format("%Y-%m-%d %H:%M"),
                    token.created.with_timezone(&Local).format("%Y-%m-%d"),
                    one_line(&token.description)
                );
            }
            writeln!(line, "--- /sessions revoke ID logs one out ---")
        }
        Reply::Revoked { id } => writeln!(line, "[{now}] Session {id} is revoked: it no longer logs anyone in."),
        Reply::Unregistered { account } => {
            writeln!(line, "[{now}] The account {account} is deleted, with your private messages; you are a guest now.")
        }
        Reply::ServerBans(bans) if bans.is_empty() => writeln!(line, "Nobody is banned from the server."),
        Reply::ServerBans(bans) => {
            let _ = writeln!(line, "--- Server bans: ---");
            for ban in bans {
                let until = ban.until.map_or_else(
                    || "until lifted".to_owned(),
                    |t| format!("until {}", t.with_timezone(&Local).format("%Y-%m-%d %H:%M")),
                );
                let reason = ban.reason.as_deref().map(|r| format!(": {}", one_line(r))).unwrap_or_default();
                let _ = writeln!(line, "{} ({until}){reason}", ban.mask);
            }
            writeln!(line, "--- End of server bans ---")
        }
        Reply::ServerModerated { action, target } => writeln!(line, "[{now}] Done: {action} {target}."),
        Reply::Pong => writeln!(line, "Pong."),
        Reply::Bye => writeln!(line, "Goodbye!"),
    };
}

/// Past messages, between two marker lines so they are not taken for new ones; each
/// with its time, and its date when it was not today.
fn history_lines(room: &RoomName, messages: &[Arc<Record>], line: &mut String) {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return;
    };
    let _ = writeln!(line, "--- History of {room}: {} messages, #{} to #{} ---", messages.len(), first.seq, last.seq);
    past_lines(messages, line);
    let _ = writeln!(line, "--- End of history ---");
}

fn audit_line(entry: &parley_hub::AuditLine) -> String {
    let at = entry.at.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let target = entry.target.as_deref().map(|t| format!(" {}", one_line(t))).unwrap_or_default();
    let room = entry.room.as_deref().map(|r| format!(" in {r}")).unwrap_or_default();
    let detail = entry.detail.as_deref().map(|d| format!(" ({})", one_line(d))).unwrap_or_default();
    format!("[{at}] {}: {}{target}{room}{detail}", entry.actor, entry.action)
}

/// Past messages, each with its time, and its date when it was not today.
fn past_lines(messages: &[Arc<Record>], line: &mut String) {
    for message in messages {
        let stamp = stamp(&message.at);
        for part in text_lines(&message.text) {
            let _ = writeln!(line, "[{stamp}] {}", said(&message.from, message.kind, &part));
        }
    }
}

/// Members' names, operators marked `@` and voiced ones `+` as chat users know them.
fn join_names(members: &[Member]) -> String {
    let names: Vec<String> = members
        .iter()
        .map(|m| {
            let mark = if m.op {
                "@"
            } else if m.voice {
                "+"
            } else {
                ""
            };
            format!("{mark}{}", m.nick)
        })
        .collect();
    names.join(", ")
}

/// One line of text as said by `from`: `alice: hi`, `* alice waves`, `-alice- note`.
fn said(from: &dyn std::fmt::Display, kind: Kind, text: &str) -> String {
    match kind {
        Kind::Text => format!("{from}: {text}"),
        Kind::Action => format!("* {from} {text}"),
        Kind::Notice => format!("-{from}- {text}"),
        Kind::File => format!("*** {}", crate::files::announcement(&from.to_string(), text)),
    }
}

/// A room's settings in words.
fn describe_modes(modes: &parley_hub::RoomModes) -> String {
    let mut parts = Vec::new();
    if modes.moderated {
        parts.push("moderated".to_owned());
    }
    if modes.secret {
        parts.push("secret".to_owned());
    }
    if modes.private {
        parts.push("private".to_owned());
    }
    if modes.invite_only {
        parts.push("invite-only".to_owned());
    }
    if modes.key.is_some() {
        parts.push("needs a key".to_owned());
    }
    if let Some(limit) = modes.limit {
        parts.push(format!("at most {limit} members"));
    }
    parts.push(if modes.topic_locked { "topic set by operators" } else { "topic set by anyone" }.to_owned());
    parts.join(", ")
}

fn whois_lines(whois: &parley_hub::Whois) -> String {
    let mut out = String::new();
    let nick = &whois.nick;
    let _ = writeln!(out, "--- {nick} ---");
    if let Some(account) = &whois.account {
        let _ = writeln!(out, "  logged in as {account}");
    }
    if let Some(realname) = &whois.realname {
        let _ = writeln!(out, "  {}", one_line(realname));
    }
    if !whois.rooms.is_empty() {
        let rooms: Vec<String> =
            whois.rooms.iter().map(|(room, op, _)| if *op { format!("@{room}") } else { room.to_string() }).collect();
        let _ = writeln!(out, "  in {}", rooms.join(", "));
    }
    if let Some(address) = whois.address {
        let _ = writeln!(out, "  connected from {address}");
    }
    let since = whois.since.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let _ = writeln!(out, "  online since {since}, idle {}", parley_proto::line::idle(whois.idle_secs));
    if let Some(away) = &whois.away {
        let _ = writeln!(out, "  away: {}", one_line(away));
    }
    if whois.admin {
        let _ = writeln!(out, "  a server administrator");
    }
    out
}

/// The lines of a message, with control characters replaced, so that text from another
/// gateway can neither break the line framing, forge a line from someone else, nor drive
/// the reader's terminal.
fn text_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines().map(one_line)
}

fn one_line(text: &str) -> String {
    printable_line(text).into_owned()
}
