//! docs/PROTOCOL.md is checked against the code: its hex dumps are the encoder's bytes,
//! every JSON example is exactly what the encoder writes, and its error table names every
//! error code.

use bytes::BytesMut;
use parley_proto::msg::{
    encode_chunk, encode_data, encode_request, encode_request_with, encode_result, encode_result_with_token,
    encode_server_msg, AuditEntry, ErrorCode, FileInfo, HistoryEntry, LeaveReason, LoginOptions, Received, Reply,
    Request, RoomInfo, SearchHit, ServerMsg, SessionEntry, JSON,
};
use parley_proto::native::{encode_frame, FrameDecoder, FrameError, PREFIX_LEN};

const DOC: &str = include_str!("../../../docs/PROTOCOL.md");

const TS: &str = "2026-11-25T14:30:45.123Z";

/// The frames the document dumps byte by byte, in order.
fn dumped_frames() -> Vec<BytesMut> {
    let mut say = BytesMut::new();
    encode_request(7, &Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"hello", &mut say)
        .expect("encodes");
    let mut who = BytesMut::new();
    let members = vec!["alice".to_owned(), "bob".to_owned()];
    encode_result(8, &Reply::Who { room: "lobby".into(), members }, &mut who).expect("encodes");
    let mut message = BytesMut::new();
    let event = ServerMsg::Message {
        room: "lobby".into(),
        from: "alice".into(),
        seq: 12,
        ts: TS.into(),
        kind: None,
        reply_to: None,
        tags: None,
    };
    encode_server_msg(&event, b"hello", &mut message).expect("encodes");
    // The same event in version 2.
    let mut compact = BytesMut::new();
    let at = chrono::DateTime::parse_from_rfc3339(TS).expect("a time").timestamp_millis();
    let short = parley_proto::compact::Message {
        room: "lobby",
        from: "alice",
        seq: 12,
        ts_ms: u64::try_from(at).expect("after 1970"),
        kind: parley_proto::compact::Kind::Text,
    };
    parley_proto::compact::encode_message(&short, b"hello", &mut compact).expect("encodes");
    vec![say, who, message, compact]
}

/// The header of a frame, as text.
fn header_of(frame: &[u8]) -> String {
    let len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
    String::from_utf8(frame[PREFIX_LEN..PREFIX_LEN + len].to_vec()).expect("UTF-8")
}

fn request_header(id: u64, request: &Request, payload: &[u8]) -> String {
    let mut buf = BytesMut::new();
    encode_request(id, request, payload, &mut buf).expect("encodes");
    header_of(&buf)
}

fn event_header(msg: &ServerMsg, text: &[u8]) -> String {
    let mut buf = BytesMut::new();
    encode_server_msg(msg, text, &mut buf).expect("encodes");
    header_of(&buf)
}

/// The file of the file-transfer examples.
const FILE: &str = "3f2a9c41d2e07b58";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn report() -> FileInfo {
    FileInfo {
        file: FILE.to_owned(),
        name: "report.pdf".to_owned(),
        size: 1_234_567,
        media_type: "application/pdf".to_owned(),
        sha256: SHA.to_owned(),
    }
}

/// The headers and JSON of the file-transfer examples.
fn file_examples() -> Vec<String> {
    let s = |v: &str| v.to_owned();
    let upload = |room: Option<&str>, to: Option<&str>| Request::Upload {
        room: room.map(s),
        to: to.map(s),
        name: s("report.pdf"),
        size: 1_234_567,
        media_type: s("application/pdf"),
        sha256: s(SHA),
    };
    let mut out = vec![
        request_header(40, &upload(Some("lobby"), None), b""),
        request_header(41, &upload(None, Some("bob")), b""),
        request_header(44, &Request::Download { file: s(FILE) }, b""),
        request_header(45, &Request::Read { file: s(FILE), offset: 65_536 }, b""),
    ];
    let piece = vec![0u8; 65_536];
    let mut chunk = BytesMut::new();
    encode_chunk(42, FILE, 0, &piece, &mut chunk).expect("encodes");
    out.push(header_of(&chunk));
    let mut data = BytesMut::new();
    encode_data(45, FILE, 65_536, &piece, &mut data).expect("encodes");
    out.push(header_of(&data));
    let description = serde_json::to_string(&report()).expect("serialises");
    out.push(description.clone());
    let mut message = BytesMut::new();
    let event = ServerMsg::Message {
        room: s("lobby"),
        from: s("alice"),
        seq: 14,
        ts: s(TS),
        kind: Some(s("file")),
        reply_to: None,
        tags: None,
    };
    encode_frame(&event, Some(JSON), description.as_bytes(), &mut message).expect("encodes");
    out.push(header_of(&message));
    let replies = [
        Reply::Upload { file: s(FILE), chunk: 65_536 },
        Reply::Received { file: s(FILE), received: 65_536 },
        Reply::Shared { file: s(FILE), room: Some(s("lobby")), to: None, seq: 14, ts: s(TS) },
        Reply::Shared { file: s(FILE), room: None, to: Some(s("bob")), seq: 33, ts: s(TS) },
        Reply::Download { info: report(), from: s("alice"), chunk: 65_536, window: 7 },
    ];
    out.extend(replies.iter().map(|r| serde_json::to_string(r).expect("serialises")));
    let too_large = ServerMsg::Error {
        id: Some(40),
        code: ErrorCode::FileTooLarge,
        message: s("the file is 1.2 GB but the server takes at most 104.9 MB"),
    };
    out.push(event_header(&too_large, b""));
    out
}

/// The token of the session examples.
const TOKEN: &str = "q3J5cmF0aW9uLXRva2VuLWV4YW1wbGUtMzItYnl0ZXM";

/// The headers and JSON of the resume-token examples.
fn session_examples() -> Vec<String> {
    let s = |v: &str| v.to_owned();
    let with = |id: u64, request: &Request, options: LoginOptions| {
        let mut buf = BytesMut::new();
        encode_request_with(id, request, &options, b"", &mut buf).expect("encodes");
        header_of(&buf)
    };
    let remember = LoginOptions { remember: true, ..LoginOptions::default() };
    let hello =
        |nick: &str, password: Option<&str>| Request::Hello { version: 1, nick: s(nick), password: password.map(s) };
    let mut out = vec![
        with(70, &hello("alice", Some("correct horse")), remember.clone()),
        with(71, &hello("", None), LoginOptions { token: Some(s(TOKEN)), ..LoginOptions::default() }),
        with(72, &hello("", None), LoginOptions { resume: true, ..LoginOptions::default() }),
        with(73, &Request::Auth { name: Some(s("alice")), password: s("correct horse") }, remember),
        request_header(74, &Request::Sessions, b""),
        request_header(75, &Request::RevokeSession { session: 12 }, b""),
        request_header(76, &Request::Thumbnail { file: s(FILE) }, b""),
    ];
    let mut body = BytesMut::new();
    let logged_in = Reply::LoggedIn { account: s("alice"), nick: s("alice") };
    encode_result_with_token(73, &logged_in, TOKEN, &mut body).expect("encodes");
    let frame = FrameDecoder::new(65_535, 1 << 20).decode(&mut body).expect("a frame").expect("whole");
    out.push(String::from_utf8(frame.payload.to_vec()).expect("UTF-8"));
    let sessions = Reply::Sessions {
        sessions: vec![
            SessionEntry {
                id: 12,
                created: ts("09:00:00.000"),
                last_used: ts("14:30:45.123"),
                description: s("web 203.0.113.7 Mozilla/5.0 (X11; Linux x86_64) Firefox/145.0"),
                current: false,
            },
            SessionEntry {
                id: 14,
                created: ts("14:30:40.000"),
                last_used: ts("14:30:40.000"),
                description: s("native 198.51.100.4"),
                current: true,
            },
        ],
    };
    out.push(serde_json::to_string(&sessions).expect("serialises"));
    out.push(serde_json::to_string(&Reply::Revoked { session: 12 }).expect("serialises"));
    let bad = ServerMsg::Error {
        id: Some(71),
        code: ErrorCode::BadToken,
        message: s("unknown, revoked or expired session token: log in with your password"),
    };
    out.push(event_header(&bad, b""));
    out
}

fn ts(time: &str) -> String {
    format!("2026-11-25T{time}Z")
}

/// Every JSON line the document shows, as the encoder writes it.
fn json_examples() -> Vec<String> {
    let s = |v: &str| v.to_owned();
    let names = |v: &[&str]| v.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let hello_everyone = b"hello, everyone";
    let mut out = vec![
        request_header(1, &Request::Hello { version: 1, nick: s("alice"), password: None }, b""),
        request_header(2, &Request::Join { room: s("dev") }, b""),
        request_header(3, &Request::Part { room: Some(s("dev")) }, b""),
        request_header(4, &Request::Say { room: s("lobby"), reply_to: None, tags: None }, hello_everyone),
        request_header(5, &Request::Whisper { to: s("bob"), reply_to: None, tags: None }, b"psst"),
        request_header(6, &Request::Nick { nick: s("alicia") }, b""),
        request_header(7, &Request::Who { room: s("lobby") }, b""),
        request_header(8, &Request::Rooms, b""),
        request_header(9, &Request::Ping, b""),
        request_header(10, &Request::Quit { reason: Some(s("lunch")) }, b""),
        request_header(11, &Request::Part { room: None }, b""),
        request_header(12, &Request::Quit { reason: None }, b""),
        request_header(14, &Request::History { room: Some(s("lobby")), before: None, after: None, limit: None }, b""),
        request_header(
            15,
            &Request::History { room: Some(s("lobby")), before: Some(40), after: None, limit: Some(2) },
            b"",
        ),
        request_header(
            16,
            &Request::History { room: Some(s("lobby")), before: None, after: Some(41), limit: None },
            b"",
        ),
        request_header(20, &Request::Search { query: s("deploy from:bob after:2026-11-01"), page: None }, b""),
        request_header(21, &Request::Search { query: s("deploy"), page: Some(2) }, b""),
        request_header(22, &Request::Conversation { with: s("bob"), before: None, after: Some(30), limit: None }, b""),
        request_header(61, &Request::MarkRead { room: Some(s("dev")), with: None, ts: Some(ts("14:30:47.000")) }, b""),
        request_header(62, &Request::MarkRead { room: None, with: Some(s("bob")), ts: None }, b""),
        request_header(
            63,
            &Request::Say {
                room: s("dev"),
                reply_to: Some(41),
                tags: Some([(s("example.com/colour"), s("blue"))].into()),
            },
            b"agreed",
        ),
        request_header(64, &Request::Typing { room: Some(s("dev")), to: None, state: s("active") }, b""),
        request_header(65, &Request::Typing { room: None, to: Some(s("bob")), state: s("done") }, b""),
        request_header(
            66,
            &Request::React { room: Some(s("dev")), with: None, seq: 41, reaction: s("👍"), remove: false },
            b"",
        ),
        request_header(
            67,
            &Request::React { room: Some(s("dev")), with: None, seq: 41, reaction: s("👍"), remove: true },
            b"",
        ),
        request_header(60, &Request::Delete { room: s("dev"), seq: 41, reason: Some(s("posted by mistake")) }, b""),
        request_header(23, &Request::Topic { room: Some(s("dev")), topic: Some(s("release on Friday")) }, b""),
        request_header(24, &Request::Kick { room: Some(s("dev")), nick: s("mallory"), reason: Some(s("spam")) }, b""),
        request_header(
            25,
            &Request::Ban { room: Some(s("dev")), mask: s("mallory"), seconds: Some(86_400), reason: Some(s("spam")) },
            b"",
        ),
        request_header(26, &Request::Ban { room: None, mask: s("203.0.113.7"), seconds: None, reason: None }, b""),
        request_header(27, &Request::Mute { room: Some(s("dev")), nick: s("bob"), seconds: Some(600) }, b""),
        request_header(28, &Request::Op { room: Some(s("dev")), nick: s("carol") }, b""),
        request_header(29, &Request::Hello { version: 1, nick: s("alice"), password: Some(s("correct horse")) }, b""),
        request_header(30, &Request::Audit { limit: Some(20) }, b""),
        request_header(17, &Request::Register { password: s("correct horse") }, b""),
        request_header(31, &Request::Act { room: s("lobby"), reply_to: None }, b"waves"),
        request_header(32, &Request::Away { message: Some(s("lunch")) }, b""),
        request_header(33, &Request::Whois { nick: s("bob") }, b""),
        request_header(34, &Request::Invite { room: Some(s("dev")), nick: s("bob") }, b""),
        request_header(18, &Request::Auth { name: Some(s("alice")), password: s("correct horse") }, b""),
        request_header(19, &Request::Password { old: s("correct horse"), new: s("battery staple") }, b""),
    ];
    let past = |seq: u64, from: &str, time: &str, text: &str| HistoryEntry {
        seq,
        from: s(from),
        ts: ts(time),
        kind: None,
        text: s(text),
        reply_to: None,
        tags: None,
    };
    let replies = [
        Reply::Welcome {
            version: 1,
            nick: s("alice"),
            room: s("lobby"),
            members: names(&["alice", "bob"]),
            max_text: 4096,
            history: vec![],
            topic: None,
            nodes: vec![],
        },
        Reply::Welcome {
            version: 2,
            nick: s("alice"),
            room: s("lobby"),
            members: names(&["alice"]),
            max_text: 4096,
            history: vec![],
            topic: None,
            nodes: names(&["chat-a.example.org:7780", "chat-b.example.org:7780", "https://chat-b.example.org"]),
        },
        Reply::Joined { room: s("dev"), members: names(&["alice", "carol"]), history: vec![], topic: None, read: None },
        Reply::Joined {
            room: s("dev"),
            members: names(&["alice", "carol"]),
            history: vec![past(7, "carol", "14:29:02.250", "anyone here?")],
            topic: Some(s("release on Friday")),
            read: Some(ts("14:29:02.250")),
        },
        Reply::Topic {
            room: s("dev"),
            topic: Some(s("release on Friday")),
            by: Some(s("carol")),
            ts: Some(ts("09:00:00.000")),
        },
        Reply::Topic { room: s("lobby"), topic: None, by: None, ts: None },
        Reply::Deleted { room: s("dev"), seq: 41 },
        Reply::Marker { room: Some(s("dev")), with: None, ts: Some(ts("14:30:47.000")) },
        Reply::Marker { room: None, with: Some(s("bob")), ts: None },
        Reply::Moderated { action: s("ban"), room: s("dev"), target: s("mallory") },
        Reply::Audit {
            entries: vec![AuditEntry {
                ts: ts("09:05:40.000"),
                actor: s("carol"),
                action: s("ban"),
                room: Some(s("dev")),
                target: Some(s("mallory")),
                detail: Some(s("spam")),
            }],
        },
        Reply::History {
            room: s("lobby"),
            messages: vec![past(38, "bob", "14:20:11.500", "lunch?"), past(39, "alice", "14:20:15.000", "yes")],
        },
        Reply::History { room: s("lobby"), messages: vec![] },
        Reply::Registered { account: s("alice") },
        Reply::LoggedIn { account: s("alice"), nick: s("alice") },
        Reply::PasswordChanged,
        Reply::Away { away: true },
        Reply::Whois {
            nick: s("bob"),
            account: Some(s("bob")),
            rooms: names(&["@dev", "lobby"]),
            since: ts("08:00:00.000"),
            idle_secs: 42,
            away: Some(s("lunch")),
            admin: false,
        },
        Reply::Invited { nick: s("bob"), room: s("dev") },
        Reply::Conversation {
            with: s("bob"),
            messages: vec![past(31, "alice", "14:30:46.001", "psst"), past(32, "bob", "14:30:50.000", "what?")],
        },
        Reply::Found {
            query: s("deploy from:bob after:2026-11-01"),
            page: 1,
            results: vec![
                SearchHit {
                    room: Some(s("ops")),
                    seq: 118,
                    from: s("bob"),
                    to: None,
                    ts: ts("09:12:40.000"),
                    text: s("deploy done"),
                },
                SearchHit {
                    room: None,
                    seq: 0,
                    from: s("bob"),
                    to: Some(s("alice")),
                    ts: ts("09:10:02.500"),
                    text: s("deploy at 9?"),
                },
            ],
        },
        Reply::Parted { room: s("dev") },
        Reply::Said { room: s("lobby"), seq: 12, ts: s(TS) },
        Reply::Whispered { to: s("bob"), ts: ts("14:30:46.001"), seq: 31 },
        Reply::Signalled { ts: ts("14:30:48.000") },
        Reply::Who { room: s("lobby"), members: names(&["alice", "bob"]) },
        Reply::Rooms {
            rooms: vec![
                RoomInfo { name: s("dev"), members: 2, joined: true },
                RoomInfo { name: s("lobby"), members: 5, joined: true },
            ],
        },
        Reply::Nick { nick: s("alicia") },
        Reply::Pong,
        Reply::Bye,
    ];
    out.extend(replies.iter().map(|r| serde_json::to_string(r).expect("serialises")));
    let header_too_long = FrameError::HeaderTooLong { len: 20_000, max: 16_384 };
    let payload_too_large = FrameError::PayloadTooLarge { id: Some(13), len: 2_000_000, max: 1_048_576 };
    let notice = b"The nick alice is registered. Log in with /login alice PASSWORD within 30 seconds, or else.";
    let events: [(ServerMsg, &[u8]); 22] = [
        (
            ServerMsg::Message {
                room: s("lobby"),
                from: s("alice"),
                seq: 12,
                ts: s(TS),
                kind: None,
                reply_to: None,
                tags: None,
            },
            hello_everyone,
        ),
        (
            ServerMsg::Whisper {
                seq: 31,
                from: s("alice"),
                to: s("bob"),
                ts: ts("14:30:46.001"),
                kind: None,
                reply_to: None,
                tags: None,
            },
            b"psst",
        ),
        (
            ServerMsg::Message {
                room: s("lobby"),
                from: s("alice"),
                seq: 13,
                ts: ts("14:30:47.000"),
                kind: Some(s("action")),
                reply_to: None,
                tags: None,
            },
            b"waves",
        ),
        (ServerMsg::Joined { room: s("lobby"), nick: s("carol"), ts: ts("14:31:00.000"), arrival: true }, b""),
        (ServerMsg::Joined { room: s("dev"), nick: s("carol"), ts: ts("14:31:05.000"), arrival: false }, b""),
        (
            ServerMsg::Left {
                room: s("dev"),
                nick: s("carol"),
                ts: ts("14:31:30.000"),
                reason: LeaveReason::Part,
                detail: None,
            },
            b"",
        ),
        (
            ServerMsg::Left {
                room: s("lobby"),
                nick: s("carol"),
                ts: ts("14:32:00.000"),
                reason: LeaveReason::Quit,
                detail: Some(s("lunch")),
            },
            b"",
        ),
        (
            ServerMsg::Left {
                room: s("lobby"),
                nick: s("dave"),
                ts: ts("14:33:00.000"),
                reason: LeaveReason::Lost,
                detail: Some(s("send queue exceeded")),
            },
            b"",
        ),
        (ServerMsg::Nick { old: s("alice"), new: s("alicia"), ts: ts("14:34:00.000") }, b""),
        (ServerMsg::Marker { room: Some(s("dev")), with: None, ts: ts("14:30:47.000") }, b""),
        (
            ServerMsg::Message {
                room: s("dev"),
                from: s("carol"),
                seq: 42,
                ts: ts("14:30:48.000"),
                kind: None,
                reply_to: Some(41),
                tags: Some([(s("example.com/colour"), s("blue"))].into()),
            },
            b"agreed",
        ),
        (ServerMsg::Typing { room: Some(s("dev")), from: s("carol"), state: s("active"), ts: ts("14:30:48.500") }, b""),
        (
            ServerMsg::Reaction {
                room: Some(s("dev")),
                with: None,
                seq: 41,
                from: s("carol"),
                reaction: s("👍"),
                removed: false,
                ts: ts("14:30:49.000"),
            },
            b"",
        ),
        (
            ServerMsg::Reaction {
                room: None,
                with: Some(s("bob")),
                seq: 31,
                from: s("bob"),
                reaction: s("🎉"),
                removed: true,
                ts: ts("14:30:49.500"),
            },
            b"",
        ),
        (
            ServerMsg::Deleted {
                room: s("dev"),
                seq: 41,
                by: s("carol"),
                author: s("mallory"),
                said_ts: ts("14:33:10.000"),
                ts: ts("14:34:30.000"),
                reason: Some(s("spam")),
            },
            b"",
        ),
        (ServerMsg::Ping { ts: ts("14:35:00.000") }, b""),
        (ServerMsg::Notice { ts: ts("14:35:30.000") }, notice),
        (ServerMsg::Shutdown { message: s("Server is shutting down."), ts: ts("14:36:00.000") }, b""),
        (ServerMsg::Error { id: Some(4), code: ErrorCode::NotInRoom, message: s("you are not in dev") }, b""),
        (
            ServerMsg::Error { id: Some(1), code: ErrorCode::NickTaken, message: s("the nick alice is already taken") },
            b"",
        ),
        (
            ServerMsg::Error { id: Some(13), code: ErrorCode::PayloadTooLarge, message: payload_too_large.to_string() },
            b"",
        ),
        (ServerMsg::Error { id: None, code: ErrorCode::HeaderTooLong, message: header_too_long.to_string() }, b""),
    ];
    out.extend(events.iter().map(|(msg, text)| event_header(msg, text)));
    out.extend(file_examples());
    out.extend(session_examples());
    out
}

/// The lines of every fenced block whose info string is `lang`.
fn fenced_lines<'a>(lang: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in DOC.lines() {
        if let Some(info) = line.strip_prefix("```") {
            inside = !inside && info.trim() == lang;
            continue;
        }
        if inside && !line.trim().is_empty() {
            out.push(line);
        }
    }
    out
}

/// The document's `xxd` dumps: runs of consecutive lines like
/// `00000000: 0062 7b22 ...  .b{"...`, each run read back into bytes. Checks that every
/// line's offset follows on and its text column shows its bytes.
fn hex_dumps() -> Vec<Vec<u8>> {
    let mut dumps: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in DOC.lines() {
        let is_dump = line.len() > 10
            && line.as_bytes()[8] == b':'
            && line[..8].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !is_dump {
            dumps.extend(current.take());
            continue;
        }
        let bytes = current.get_or_insert_with(Vec::new);
        let offset = usize::from_str_radix(&line[..8], 16).expect("hex offset");
        assert_eq!(offset, bytes.len(), "offset of {line:?}");
        // xxd: "OFFSET: " then 8 groups of 4 hex digits separated by spaces, padded to
        // 39 columns, two spaces, then the text column.
        let rest = &line[10..];
        let (hex, text) = rest.split_at(39.min(rest.len()));
        let hex: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
        let line_bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte")).collect();
        assert!(line_bytes.len() <= 16, "at most 16 bytes a line: {line:?}");
        let shown: String =
            line_bytes.iter().map(|b| if (0x20..0x7f).contains(b) { char::from(*b) } else { '.' }).collect();
        assert_eq!(text.strip_prefix("  "), Some(shown.as_str()), "text column of {line:?}");
        bytes.extend(line_bytes);
    }
    dumps.extend(current);
    dumps
}

#[test]
fn the_hex_dumps_are_the_encoders_bytes() {
    let dumps = hex_dumps();
    let expected = dumped_frames();
    assert_eq!(dumps.len(), expected.len(), "one dump for each of: say request, who result, message event");
    for (dump, frame) in dumps.iter().zip(&expected) {
        assert_eq!(dump[..], frame[..], "\ndoc:     {}\nencoder: {}", header_of(dump), header_of(frame));
    }
    // The brief's own description of the first one.
    assert_eq!(&dumps[0][..2], &[0x00, 0x62]);
    assert_eq!(
        header_of(&dumps[0]),
        r#"{"type":"say","room":"lobby","id":7,"content-type":"text/plain; charset=utf-8","content-length":5}"#
    );
}

#[test]
fn the_dumped_frames_decode_as_the_document_says() {
    let mut wire = BytesMut::new();
    for dump in hex_dumps() {
        wire.extend_from_slice(&dump);
    }
    let mut decoder = FrameDecoder::new(16_384, 1 << 20).accepting_compact();
    let say = decoder.decode(&mut wire).expect("valid").expect("whole");
    assert_eq!(Request::from_frame(&say), Ok(Request::Say { room: "lobby".into(), reply_to: None, tags: None }));
    assert_eq!((say.envelope.id, &say.payload[..]), (Some(7), &b"hello"[..]));
    let who = Received::from_frame(decoder.decode(&mut wire).expect("valid").expect("whole")).expect("valid");
    assert_eq!(who.msg, ServerMsg::Result { id: 8 });
    assert!(matches!(who.reply(), Ok(Reply::Who { .. })));
    let message = Received::from_frame(decoder.decode(&mut wire).expect("valid").expect("whole")).expect("valid");
    assert!(matches!(message.msg, ServerMsg::Message { seq: 12, .. }));
    assert_eq!(message.text(), "hello");
    let compact = Received::from_frame(decoder.decode(&mut wire).expect("valid").expect("whole")).expect("valid");
    assert_eq!(compact, message, "version 2's compact header says what version 1's JSON says");
    assert!(wire.is_empty());
}

#[test]
fn every_json_example_is_what_the_encoder_writes() {
    let examples = json_examples();
    let shown = fenced_lines("json");
    let missing: Vec<&String> = examples.iter().filter(|e| !shown.contains(&e.as_str())).collect();
    assert!(missing.is_empty(), "examples missing from docs/PROTOCOL.md:\n{}", join(&missing));
    let stray: Vec<&&str> = shown.iter().filter(|l| !examples.iter().any(|e| e == *l)).collect();
    assert!(stray.is_empty(), "JSON lines in docs/PROTOCOL.md the encoder does not write:\n{}", join(&stray));
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The wire name of every error code; the match makes a new code fail to compile here
/// until it is added (and so documented).
fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadHeader => "bad_header",
        ErrorCode::HeaderTooLong => "header_too_long",
        ErrorCode::PayloadTooLarge => "payload_too_large",
        ErrorCode::UnknownType => "unknown_type",
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::BadPayload => "bad_payload",
        ErrorCode::NotRegistered => "not_registered",
        ErrorCode::AlreadyRegistered => "already_registered",
        ErrorCode::UnsupportedVersion => "unsupported_version",
        ErrorCode::NickTaken => "nick_taken",
        ErrorCode::InvalidNick => "invalid_nick",
        ErrorCode::InvalidRoom => "invalid_room",
        ErrorCode::NoSuchNick => "no_such_nick",
        ErrorCode::NoSuchRoom => "no_such_room",
        ErrorCode::NotInRoom => "not_in_room",
        ErrorCode::NoSuchMessage => "no_such_message",
        ErrorCode::NotAuthor => "not_author",
        ErrorCode::EmptyMessage => "empty_message",
        ErrorCode::MessageTooLong => "message_too_long",
        ErrorCode::BadTags => "bad_tags",
        ErrorCode::BadReaction => "bad_reaction",
        ErrorCode::ShuttingDown => "shutting_down",
        ErrorCode::StoreFailed => "store_failed",
        ErrorCode::ClusterUnreachable => "cluster_unreachable",
        ErrorCode::Unconfirmed => "unconfirmed",
        ErrorCode::AccountsUnavailable => "accounts_unavailable",
        ErrorCode::AccountExists => "account_exists",
        ErrorCode::BadLogin => "bad_login",
        ErrorCode::NotLoggedIn => "not_logged_in",
        ErrorCode::WeakPassword => "weak_password",
        ErrorCode::NickRegistered => "nick_registered",
        ErrorCode::Busy => "busy",
        ErrorCode::HistoryUnavailable => "history_unavailable",
        ErrorCode::BadSearch => "bad_search",
        ErrorCode::NotOperator => "not_operator",
        ErrorCode::NotAdmin => "not_admin",
        ErrorCode::Banned => "banned",
        ErrorCode::Muted => "muted",
        ErrorCode::NotHere => "not_here",
        ErrorCode::NoSuchAccount => "no_such_account",
        ErrorCode::BadMask => "bad_mask",
        ErrorCode::TooManyRooms => "too_many_rooms",
        ErrorCode::ExcessFlood => "excess_flood",
        ErrorCode::ServerFull => "server_full",
        ErrorCode::TooManyConnections => "too_many_connections",
        ErrorCode::TooManyAttempts => "too_many_attempts",
        ErrorCode::ServerBanned => "server_banned",
        ErrorCode::TooLong => "too_long",
        ErrorCode::TooManyBans => "too_many_bans",
        ErrorCode::RoomLookalike => "room_lookalike",
        ErrorCode::RoomRegistered => "room_registered",
        ErrorCode::RoomNotRegistered => "room_not_registered",
        ErrorCode::TooManyRegistered => "too_many_registered",
        ErrorCode::NotFounder => "not_founder",
        ErrorCode::StoreUnreadable => "store_unreadable",
        ErrorCode::FileTooLarge => "file_too_large",
        ErrorCode::QuotaExceeded => "quota_exceeded",
        ErrorCode::NoSuchFile => "no_such_file",
        ErrorCode::ChecksumMismatch => "checksum_mismatch",
        ErrorCode::FilesUnavailable => "files_unavailable",
        ErrorCode::BadToken => "bad_token",
        ErrorCode::NoSuchSession => "no_such_session",
        ErrorCode::SignedOut => "signed_out",
        ErrorCode::NotAnImage => "not_an_image",
        ErrorCode::Unknown => "unknown",
    }
}

#[test]
fn the_error_table_lists_every_code_once() {
    // Rows of the table look like "| `code` | meaning | afterwards |".
    let rows: Vec<&str> = DOC
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(code, _)| code))
        .filter(|code| serde_json::from_str::<ErrorCode>(&format!("\"{code}\"")).is_ok_and(|c| c != ErrorCode::Unknown))
        .collect();
    for code in ErrorCode::ALL.iter().copied() {
        let name = code_name(code);
        assert_eq!(serde_json::to_string(&code).expect("serialises"), format!("\"{name}\""));
        if code == ErrorCode::Unknown {
            // Not a code a server sends: what a client reads an unknown code as.
            continue;
        }
        let count = rows.iter().filter(|r| **r == name).count();
        assert_eq!(count, 1, "`{name}` should be one row of the error table");
    }
}
