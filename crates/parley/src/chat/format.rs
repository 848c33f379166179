//! How events read in `parley chat`: the classic chat room's lines.

use std::io::Write as _;

use parley_client::{Event, Kind, LeaveReason, PastMessage, Reply, RoomInfo};

pub(super) use parley_proto::line::clock;
use parley_proto::line::stamp;
use parley_proto::text::{printable, printable_line};

/// Past messages between two marker lines, each with its time, and its date when it was
/// not today: the same as the server shows line users.
pub(super) fn history_lines(room: &str, messages: &[PastMessage]) -> Vec<String> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Vec::new();
    };
    let mut lines =
        vec![format!("--- History of {room}: {} messages, #{} to #{} ---", messages.len(), first.seq, last.seq)];
    lines.extend(past_lines(messages));
    lines.push("--- End of history ---".to_owned());
    lines
}

/// Messages said in `room` while the connection was lost, as the live ones would have
/// been printed.
pub(super) fn missed_lines(room: &str, messages: &[PastMessage], current: Option<&str>) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| {
            let event = Event::Message {
                room: room.to_owned(),
                from: m.from.clone(),
                seq: m.seq,
                ts: m.at,
                kind: m.kind,
                text: m.text.clone(),
            };
            event_lines(&event, current)
        })
        .collect()
}

/// Past messages, each with its time, and its date when it was not today.
pub(super) fn past_lines(messages: &[PastMessage]) -> Vec<String> {
    let mut lines = Vec::new();
    for message in messages {
        let stamp = stamp(&message.at);
        lines.extend(message.text.lines().map(|part| format!("[{stamp}] {}", said(&message.from, message.kind, part))));
    }
    lines
}

/// Prints one line and flushes, so a pipe sees it at once. Lines hold others' words
/// (messages, topics, reasons, search results, the audit log): each is made one
/// printable line here, the one way out to the terminal, so that none of them can drive
/// it.
pub(super) fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", printable_line(line));
    let _ = stdout.flush();
}

/// Prints a message on standard error, made printable like [`print_line`] (errors carry
/// the server's words); its own newlines are kept.
pub(super) fn eprint_line(message: &str) {
    eprintln!("{}", printable(message));
}

/// The lines an event prints; `current` is the room the user is in, whose messages need
/// no room tag.
pub(super) fn event_lines(event: &Event, current: Option<&str>) -> Vec<String> {
    let tag = |room: &str| {
        if current.is_some_and(|c| c.eq_ignore_ascii_case(room)) {
            String::new()
        } else {
            format!("[{room}] ")
        }
    };
    match event {
        Event::Message { room, from, ts, kind, text, .. } => {
            text.lines().map(|part| format!("[{}] {}{}", clock(ts), tag(room), said(from, *kind, part))).collect()
        }
        Event::Whisper { from, ts, kind, text, .. } => {
            text.lines().map(|part| format!("[{}] [private] {}", clock(ts), said(from, *kind, part))).collect()
        }
        Event::Joined { nick, ts, arrival: true, .. } => vec![format!("[{}] {nick} has joined the chat!", clock(ts))],
        Event::Joined { room, nick, ts, arrival: false } => vec![format!("[{}] {nick} has joined {room}.", clock(ts))],
        Event::Left { room, nick, ts, reason: LeaveReason::Kicked, detail } => {
            let why = detail.as_deref().map(|d| format!(" ({})", clean(d))).unwrap_or_default();
            vec![format!("[{}] {nick} was kicked from {room}{why}.", clock(ts))]
        }
        Event::Left { room, nick, ts, reason: LeaveReason::Part, .. } => {
            vec![format!("[{}] {nick} has left {room}.", clock(ts))]
        }
        Event::Left { nick, ts, detail: Some(detail), .. } => {
            vec![format!("[{}] {nick} has left the chat ({}).", clock(ts), clean(detail))]
        }
        Event::Left { nick, ts, detail: None, .. } => vec![format!("[{}] {nick} has left the chat.", clock(ts))],
        Event::NickChanged { old, new, ts } => vec![format!("[{}] {old} is now known as {new}.", clock(ts))],
        // The plain client keeps no unread counts, and has no status line for typing.
        Event::Marker { .. } | Event::Typing { .. } => Vec::new(),
        Event::Reaction { room, seq, from, reaction, removed } => {
            let what = if *removed { "took back" } else { "reacted" };
            let place = room.as_deref().map(tag).unwrap_or_default();
            vec![format!(
                "[{}] {place}*** {from} {what} {} on message #{seq}",
                clock(&chrono::Utc::now()),
                clean(reaction)
            )]
        }
        Event::Deleted { room, seq, by, author, said, ts, reason } => {
            let whose = if by == author { "their".to_owned() } else { format!("{author}'s") };
            let why = reason.as_deref().map(|r| format!(": {}", clean(r))).unwrap_or_default();
            vec![format!(
                "[{}] {}*** {by} deleted {whose} message #{seq} of {}{why}",
                clock(ts),
                tag(room),
                clock(said)
            )]
        }
        Event::Error { message, .. } => vec![format!("Error: {message}")],
        Event::Notice { ts, text } => text.lines().map(|part| format!("[{}] *** {}", clock(ts), clean(part))).collect(),
        // Shown by the caller as the farewell.
        Event::Shutdown { .. } | Event::Closed { .. } => Vec::new(),
    }
}

/// One line of text as said by `from`: `alice: hi`, `* alice waves`, `-alice- note`
/// (as the line protocol shows them).
pub(super) fn said(from: &str, kind: Kind, text: &str) -> String {
    match kind {
        Kind::Text => format!("{from}: {}", clean(text)),
        Kind::Action => format!("* {from} {}", clean(text)),
        Kind::Notice => format!("-{from}- {}", clean(text)),
        Kind::File => format!("*** {from} {}", file_words(text)),
    }
}

/// What a file's message says after the sender's name: what was shared and how to
/// get it.
pub(super) fn file_words(text: &str) -> String {
    match parley_client::FileInfo::from_text(text) {
        Some(info) => format!(
            "shared {} ({}, {}): /get {}",
            clean(&info.name),
            parley_client::human_size(info.size),
            clean(&info.media_type),
            info.file
        ),
        None => "shared a file".to_owned(),
    }
}

/// A transfer's progress in one line: bar, percentage, bytes, rate and time left.
pub(super) fn progress(verb: &str, name: &str, p: &parley_client::Progress) -> String {
    const WIDTH: u64 = 20;
    // An empty file is done as soon as it starts.
    let filled = p.done.saturating_mul(WIDTH).checked_div(p.total).map_or(WIDTH, |f| f.min(WIDTH));
    let percent = p.done.saturating_mul(100).checked_div(p.total).unwrap_or(100);
    let bar: String = (0..WIDTH).map(|i| if i < filled { '#' } else { '-' }).collect();
    // Display only: whole bytes per second are plenty.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rate = parley_client::human_size(p.rate() as u64);
    let eta = p.eta().map_or_else(|| "?".to_owned(), |eta| format!("{}s", eta.as_secs()));
    format!(
        "{verb} {} [{bar}] {percent}% {} of {}, {rate}/s, ETA {eta}",
        clean(name),
        parley_client::human_size(p.done),
        parley_client::human_size(p.total)
    )
}

/// What the answers to `/away`, `/whois` and `/invite` say.
pub(super) fn reply_lines(reply: &Reply) -> Vec<String> {
    match reply {
        Reply::Away { away: true } => vec!["You are marked away; /away alone brings you back.".to_owned()],
        Reply::Away { away: false } => vec!["You are back.".to_owned()],
        Reply::Invited { nick, room } => vec![format!("You invited {nick} to {room}.")],
        Reply::Whois { nick, account, rooms, since, idle_secs, away, admin } => {
            let mut lines = vec![format!("--- {nick} ---")];
            if let Some(account) = account {
                lines.push(format!("  logged in as {account}"));
            }
            if !rooms.is_empty() {
                lines.push(format!("  in {}", rooms.join(", ")));
            }
            let since = chrono::DateTime::parse_from_rfc3339(since).map_or_else(
                |_| since.clone(),
                |t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string(),
            );
            lines.push(format!("  online since {since}, idle {}", parley_proto::line::idle(*idle_secs)));
            if let Some(away) = away {
                lines.push(format!("  away: {}", clean(away)));
            }
            if *admin {
                lines.push("  a server administrator".to_owned());
            }
            lines
        }
        // Only the three answers above come to the commands that show them.
        _ => Vec::new(),
    }
}

/// One line of the room list.
pub(super) fn room_list(rooms: &[RoomInfo]) -> String {
    if rooms.is_empty() {
        return "No rooms yet. Use /join ROOM to create one.".to_owned();
    }
    let list: Vec<String> =
        rooms.iter().map(|r| format!("{} ({}{})", r.name, r.members, if r.joined { ", joined" } else { "" })).collect();
    format!("Rooms: {}", list.join(", "))
}

/// Text from others as one line, without control characters that could rewrite the
/// terminal or forge a line.
fn clean(text: &str) -> String {
    printable_line(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn at() -> DateTime<Utc> {
        Utc::now()
    }

    fn without_clock(lines: Vec<String>) -> Vec<String> {
        lines.into_iter().map(|l| l[11..].to_owned()).collect()
    }

    #[test]
    fn messages_in_the_current_room_have_no_tag() {
        let event = Event::Message {
            room: "lobby".into(),
            from: "bob".into(),
            seq: 1,
            ts: at(),
            kind: Kind::Text,
            text: "hi".into(),
        };
        assert_eq!(without_clock(event_lines(&event, Some("Lobby"))), vec!["bob: hi"]);
        assert_eq!(without_clock(event_lines(&event, Some("dev"))), vec!["[lobby] bob: hi"]);
    }

    #[test]
    fn multi_line_text_and_control_characters_cannot_forge_lines() {
        let text = "one\n[12:00:00] mallory: fake\x1b[2J".to_owned();
        let event = Event::Whisper { seq: 1, from: "eve".into(), to: "me".into(), ts: at(), kind: Kind::Text, text };
        assert_eq!(
            without_clock(event_lines(&event, None)),
            vec!["[private] eve: one", "[private] eve: [12:00:00] mallory: fake\u{FFFD}[2J"]
        );
    }

    #[test]
    fn joins_and_leaves_read_like_the_classic_chat_room() {
        let joined = Event::Joined { room: "lobby".into(), nick: "ann".into(), ts: at(), arrival: true };
        assert_eq!(without_clock(event_lines(&joined, Some("lobby"))), vec!["ann has joined the chat!"]);
        let moved = Event::Joined { room: "dev".into(), nick: "ann".into(), ts: at(), arrival: false };
        assert_eq!(without_clock(event_lines(&moved, Some("dev"))), vec!["ann has joined dev."]);
        let left =
            Event::Left { room: "lobby".into(), nick: "ann".into(), ts: at(), reason: LeaveReason::Quit, detail: None };
        assert_eq!(without_clock(event_lines(&left, None)), vec!["ann has left the chat."]);
        let lost = Event::Left {
            room: "lobby".into(),
            nick: "ann".into(),
            ts: at(),
            reason: LeaveReason::Lost,
            detail: Some("send queue exceeded".into()),
        };
        assert_eq!(without_clock(event_lines(&lost, None)), vec!["ann has left the chat (send queue exceeded)."]);
    }

    #[test]
    fn the_room_list_marks_joined_rooms() {
        let rooms = vec![
            RoomInfo { name: "dev".into(), members: 1, joined: false },
            RoomInfo { name: "lobby".into(), members: 3, joined: true },
        ];
        assert_eq!(room_list(&rooms), "Rooms: dev (1), lobby (3, joined)");
        assert_eq!(room_list(&[]), "No rooms yet. Use /join ROOM to create one.");
    }
}
