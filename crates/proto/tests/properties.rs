//! Property tests of the codecs: what is encoded decodes back the same however the bytes
//! are split, no input makes a decoder panic, and no decoder returns or holds more than
//! its limits allow.

use bytes::BytesMut;
use parley_proto::line::{Input, LineDecoder, LineError};
use parley_proto::msg::{
    encode_request, encode_result, encode_server_msg, AuditEntry, ErrorCode, HistoryEntry, LeaveReason, Received,
    Reply, Request, RoomInfo, ServerMsg, JSON, TEXT,
};
use parley_proto::native::{Frame, FrameDecoder, FrameError, PREFIX_LEN};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Any string: every Unicode scalar value may appear, including the quotes, backslashes,
/// control characters and newlines that JSON must escape.
fn text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u32>(), text(), proptest::option::of(text())).prop_map(|(version, nick, password)| Request::Hello {
            version,
            nick,
            password
        }),
        text().prop_map(|room| Request::Join { room }),
        proptest::option::of(text()).prop_map(|room| Request::Part { room }),
        (text(), proptest::option::of(any::<u64>()), proptest::option::of(tags()))
            .prop_map(|(room, reply_to, tags)| Request::Say { room, reply_to, tags }),
        text().prop_map(|to| Request::Whisper { to, reply_to: None, tags: None }),
        (proptest::option::of(text()), proptest::option::of(text()), text())
            .prop_map(|(room, to, state)| Request::Typing { room, to, state }),
        (proptest::option::of(text()), any::<u64>(), text(), any::<bool>())
            .prop_map(|(room, seq, reaction, remove)| { Request::React { room, with: None, seq, reaction, remove } }),
        text().prop_map(|nick| Request::Nick { nick }),
        text().prop_map(|room| Request::Who { room }),
        Just(Request::Rooms),
        (
            proptest::option::of(text()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(room, before, after, limit)| Request::History { room, before, after, limit }),
        (text(), proptest::option::of(any::<u32>())).prop_map(|(query, page)| Request::Search { query, page }),
        text().prop_map(|password| Request::Register { password }),
        (proptest::option::of(text()), text()).prop_map(|(name, password)| Request::Auth { name, password }),
        (text(), text()).prop_map(|(old, new)| Request::Password { old, new }),
        Just(Request::Ping),
        proptest::option::of(text()).prop_map(|reason| Request::Quit { reason }),
    ]
}

fn tags() -> impl Strategy<Value = std::collections::BTreeMap<String, String>> {
    proptest::collection::btree_map(text(), text(), 0..3)
}

/// Every server message but `result`, which travels with a [`Reply`] instead of text.
fn event() -> impl Strategy<Value = ServerMsg> {
    let reason = prop_oneof![Just(LeaveReason::Part), Just(LeaveReason::Quit), Just(LeaveReason::Lost)];
    prop_oneof![
        (proptest::option::of(any::<u64>()), proptest::sample::select(ErrorCode::ALL), text())
            .prop_map(|(id, code, message)| ServerMsg::Error { id, code, message }),
        (text(), text(), any::<u64>(), text(), proptest::option::of(text())).prop_map(|(room, from, seq, ts, kind)| {
            ServerMsg::Message { room, from, seq, ts, kind, reply_to: seq.checked_sub(1), tags: None }
        }),
        (any::<u64>(), text(), text(), text(), proptest::option::of(text())).prop_map(|(seq, from, to, ts, kind)| {
            ServerMsg::Whisper { seq, from, to, ts, kind, reply_to: None, tags: None }
        }),
        (proptest::option::of(text()), text(), text(), text()).prop_map(|(room, from, state, ts)| ServerMsg::Typing {
            room,
            from,
            state,
            ts
        }),
        (proptest::option::of(text()), any::<u64>(), text(), text(), any::<bool>(), text()).prop_map(
            |(room, seq, from, reaction, removed, ts)| ServerMsg::Reaction {
                room,
                with: None,
                seq,
                from,
                reaction,
                removed,
                ts
            }
        ),
        (text(), text(), text(), any::<bool>()).prop_map(|(room, nick, ts, arrival)| ServerMsg::Joined {
            room,
            nick,
            ts,
            arrival
        }),
        (text(), text(), text(), reason, proptest::option::of(text()))
            .prop_map(|(room, nick, ts, reason, detail)| ServerMsg::Left { room, nick, ts, reason, detail }),
        (text(), text(), text()).prop_map(|(old, new, ts)| ServerMsg::Nick { old, new, ts }),
        text().prop_map(|ts| ServerMsg::Ping { ts }),
        (text(), text()).prop_map(|(message, ts)| ServerMsg::Shutdown { message, ts }),
        text().prop_map(|ts| ServerMsg::Notice { ts }),
    ]
}

fn entries() -> impl Strategy<Value = Vec<HistoryEntry>> {
    let entry = (any::<u64>(), text(), text(), proptest::option::of(text()), text())
        .prop_map(|(seq, from, ts, kind, text)| HistoryEntry { seq, from, ts, kind, text, reply_to: None, tags: None });
    vec(entry, 0..4)
}

fn reply() -> impl Strategy<Value = Reply> {
    let names = || vec(text(), 0..6);
    let room_info =
        (text(), any::<usize>(), any::<bool>()).prop_map(|(name, members, joined)| RoomInfo { name, members, joined });
    prop_oneof![
        (any::<u32>(), text(), text(), names(), any::<usize>(), entries(), proptest::option::of(text()), names())
            .prop_map(|(version, nick, room, members, max_text, history, topic, nodes)| Reply::Welcome {
                version,
                nick,
                room,
                members,
                max_text,
                history,
                topic,
                nodes
            }),
        (text(), names(), entries(), proptest::option::of(text()))
            .prop_map(|(room, members, history, topic)| Reply::Joined { room, members, history, topic, read: None }),
        (text(), proptest::option::of((text(), text(), text()))).prop_map(|(room, t)| Reply::Topic {
            room,
            topic: t.as_ref().map(|t| t.0.clone()),
            by: t.as_ref().map(|t| t.1.clone()),
            ts: t.map(|t| t.2)
        }),
        (text(), text(), text()).prop_map(|(action, room, target)| Reply::Moderated { action, room, target }),
        vec((text(), text(), text(), proptest::option::of(text())), 0..3).prop_map(|lines| Reply::Audit {
            entries: lines
                .into_iter()
                .map(|(ts, actor, action, room)| AuditEntry { ts, actor, action, room, target: None, detail: None })
                .collect()
        }),
        (text(), entries()).prop_map(|(room, messages)| Reply::History { room, messages }),
        text().prop_map(|room| Reply::Parted { room }),
        (text(), any::<u64>(), text()).prop_map(|(room, seq, ts)| Reply::Said { room, seq, ts }),
        (text(), text(), any::<u64>()).prop_map(|(to, ts, seq)| Reply::Whispered { to, ts, seq }),
        text().prop_map(|ts| Reply::Signalled { ts }),
        (text(), names()).prop_map(|(room, members)| Reply::Who { room, members }),
        vec(room_info, 0..6).prop_map(|rooms| Reply::Rooms { rooms }),
        text().prop_map(|nick| Reply::Nick { nick }),
        text().prop_map(|account| Reply::Registered { account }),
        (text(), text()).prop_map(|(account, nick)| Reply::LoggedIn { account, nick }),
        Just(Reply::PasswordChanged),
        Just(Reply::Pong),
        Just(Reply::Bye),
    ]
}

/// Up to 4 KiB of payload. Cheaper to generate than a `vec` of `any::<u8>()` when many
/// frames are needed; its bytes cover every value, and `{` and `\0` (a frame's own
/// first bytes) often.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    (0usize..4096, any::<u64>()).prop_map(|(len, seed)| {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 8 {
                    0 => b'{',
                    1 => 0,
                    _ => (x >> 32) as u8,
                }
            })
            .collect()
    })
}

/// What a server writes: an event with its text, or the result of a request.
#[derive(Debug, Clone)]
enum Outgoing {
    Event(ServerMsg, String),
    Result(u64, Reply),
}

fn outgoing() -> impl Strategy<Value = Outgoing> {
    prop_oneof![
        (event(), vec(any::<char>(), 0..200).prop_map(String::from_iter)).prop_map(|(m, t)| Outgoing::Event(m, t)),
        (any::<u64>(), reply()).prop_map(|(id, r)| Outgoing::Result(id, r)),
    ]
}

/// How a stream is cut into reads: piece sizes, used in turn and cycled. One in four
/// cases delivers one byte at a time.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![Just(vec![1]), vec(1usize..8, 1..16), vec(1usize..512, 1..16), vec(1usize..8192, 1..4),]
}

/// Cuts `bytes` into pieces whose sizes come from `cuts`, cycled.
fn pieces<'a>(bytes: &'a [u8], cuts: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    let mut sizes = cuts.iter().copied().cycle();
    std::iter::from_fn(move || {
        if at >= bytes.len() {
            return None;
        }
        let end = (at + sizes.next().unwrap_or(1).max(1)).min(bytes.len());
        let piece = &bytes[at..end];
        at = end;
        Some(piece)
    })
}

/// Bytes that look like frames often enough to reach every branch of the decoder: a
/// header-length prefix (right, or a little off), a header made of framing fields with
/// well- and ill-typed values, and some payload.
fn frameish() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        (0u64..1200).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("\"say\"".to_owned()),
        Just("null".to_owned()),
        Just("{}".to_owned()),
    ];
    let key = prop_oneof![
        Just("type"),
        Just("id"),
        Just("content-length"),
        Just("content-type"),
        Just("room"),
        Just("content-length"),
    ];
    let header = vec((key, value), 0..4).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    let prefix_error = prop_oneof![8 => Just(0i64), 1 => -3i64..3];
    let garbage = vec(any::<u8>(), 0..8);
    (header, prefix_error, vec(any::<u8>(), 0..700), garbage).prop_map(|(header, off, payload, garbage)| {
        let len = u16::try_from((header.len() as i64 + off).max(0)).unwrap_or(u16::MAX);
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&garbage);
        bytes
    })
}

/// Input for the frame decoder's robustness tests: random bytes, or frame-like pieces.
fn hostile_frames() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..4096),
        vec(frameish(), 1..6).prop_map(|parts| parts.concat()),
        // Valid frames with something hostile after them.
        (vec((request(), any::<u64>(), vec(any::<u8>(), 0..300)), 1..4), frameish()).prop_map(|(frames, tail)| {
            let mut wire = BytesMut::new();
            for (request, id, payload) in &frames {
                encode_request(*id, request, payload, &mut wire).expect("encodes");
            }
            wire.extend_from_slice(&tail);
            wire.to_vec()
        }),
    ]
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Decodes what `buf` holds until the decoder needs more bytes or fails fatally.
/// Returns the frames and recoverable errors seen, and whether a fatal error ended it.
fn drain_frames(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> (Vec<Result<Frame, FrameError>>, bool) {
    let mut out = Vec::new();
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return (out, false),
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e));
                if fatal {
                    return (out, true);
                }
            }
        }
    }
}

/// Feeds `wire` to a fresh decoder in pieces, stopping at a fatal error.
fn decode_in_pieces(
    wire: &[u8],
    cuts: &[usize],
    max_header: usize,
    max_payload: usize,
) -> Vec<Result<Frame, FrameError>> {
    let mut decoder = FrameDecoder::new(max_header, max_payload);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces(wire, cuts) {
        buf.extend_from_slice(piece);
        let (got, fatal) = drain_frames(&mut decoder, &mut buf);
        out.extend(got);
        if fatal {
            break;
        }
    }
    out
}

fn decode_lines(decoder: &mut LineDecoder, buf: &mut BytesMut, out: &mut Vec<Result<String, LineError>>) {
    loop {
        match decoder.decode(buf) {
            Ok(Some(line)) => out.push(Ok(line)),
            Ok(None) => return,
            Err(e) => out.push(Err(e)),
        }
    }
}

/// `decode_eof` until it has nothing more to give.
fn decode_lines_at_eof(decoder: &mut LineDecoder, buf: &mut BytesMut, out: &mut Vec<Result<String, LineError>>) {
    // Each call consumes a line or ends; the bound only guards against a decoder that
    // would loop forever.
    for _ in 0..=buf.len() + 1 {
        match decoder.decode_eof(buf) {
            Ok(Some(line)) => out.push(Ok(line)),
            Ok(None) => return,
            Err(e) => out.push(Err(e)),
        }
    }
    panic!("decode_eof never returned Ok(None)");
}

/// Cuts a string to at most `max` bytes at a character boundary.
fn truncate_to(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

/// A line the decoder gives back unchanged: no `\n`, and no `\r` at the end (which would
/// read as part of a `\r\n`).
fn clean_line(s: String) -> String {
    let s: String = s.chars().filter(|c| *c != '\n').collect();
    s.trim_end_matches('\r').to_owned()
}

/// What the line decoder should make of a whole input, from its definition: split at
/// `\n`, drop one `\r` before it, judge the length, then the encoding. Whatever follows
/// the last `\n` is a last line when it is not empty.
fn line_model(bytes: &[u8], max: usize) -> Vec<Result<String, LineError>> {
    let judge = |line: &[u8]| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Err(LineError::TooLong { max });
        }
        std::str::from_utf8(line).map(str::to_owned).map_err(|_| LineError::InvalidUtf8)
    };
    let mut parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    let mut out: Vec<_> = parts.into_iter().map(judge).collect();
    if !last.is_empty() {
        out.push(judge(last));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Native frames
// ---------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn a_request_frame_decodes_to_what_was_encoded(
        request in request(),
        id in any::<u64>(),
        payload in vec(any::<u8>(), 0..4096),
    ) {
        let mut buf = BytesMut::new();
        encode_request(id, &request, &payload, &mut buf).expect("encodes");
        let header_len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        prop_assert_eq!(buf.len(), PREFIX_LEN + header_len + payload.len());
        let wire_header = buf[PREFIX_LEN..PREFIX_LEN + header_len].to_vec();

        let frame = FrameDecoder::new(65_535, 1 << 20).decode(&mut buf).expect("valid").expect("whole");
        prop_assert!(buf.is_empty(), "the decoder took exactly one frame");
        prop_assert_eq!(&frame.header[..], &wire_header[..]);
        prop_assert_eq!(frame.envelope.kind.as_deref(), Some(request.kind()));
        prop_assert_eq!(frame.envelope.id, Some(id));
        prop_assert_eq!(frame.envelope.content_length, payload.len() as u64);
        // A frame without payload carries neither `content-type` nor `content-length`.
        let content_type = (!payload.is_empty()).then_some(TEXT);
        prop_assert_eq!(frame.envelope.content_type.as_deref(), content_type);
        prop_assert_eq!(&frame.payload[..], &payload[..]);
        prop_assert_eq!(Request::from_frame(&frame), Ok(request));
    }

}

proptest! {
    // A quarter of the cases feed one byte at a time, and until a frame's payload is
    // complete each call parses its header again: fewer, longer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn request_frames_decode_the_same_however_the_stream_is_cut(
        frames in vec((request(), any::<u64>(), payload()), 1..6),
        cuts in chunking(),
    ) {
        let mut wire = BytesMut::new();
        for (request, id, payload) in &frames {
            encode_request(*id, request, payload, &mut wire).expect("encodes");
        }
        let mut decoded = Vec::new();
        for frame in decode_in_pieces(&wire, &cuts, 65_535, 1 << 20) {
            let frame = frame.expect("valid frames");
            let request = Request::from_frame(&frame).expect("a request");
            decoded.push((request, frame.envelope.id.expect("an id"), frame.payload.to_vec()));
        }
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn server_frames_decode_the_same_however_the_stream_is_cut(
        sent in vec(outgoing(), 1..6),
        cuts in chunking(),
    ) {
        let mut wire = BytesMut::new();
        for out in &sent {
            match out {
                Outgoing::Event(msg, text) => encode_server_msg(msg, text.as_bytes(), &mut wire).expect("encodes"),
                Outgoing::Result(id, reply) => encode_result(*id, reply, &mut wire).expect("encodes"),
            }
        }
        let frames = decode_in_pieces(&wire, &cuts, 65_535, 1 << 20);
        prop_assert_eq!(frames.len(), sent.len());
        for (frame, out) in frames.into_iter().zip(&sent) {
            let frame = frame.expect("a valid frame");
            let content_type = frame.envelope.content_type.clone();
            let received = Received::from_frame(frame).expect("a server message");
            match out {
                Outgoing::Event(msg, text) => {
                    prop_assert_eq!(&received.msg, msg);
                    prop_assert_eq!(&received.payload[..], text.as_bytes());
                    prop_assert_eq!(content_type.as_deref(), (!text.is_empty()).then_some(TEXT));
                }
                Outgoing::Result(id, reply) => {
                    prop_assert_eq!(&received.msg, &ServerMsg::Result { id: *id });
                    prop_assert_eq!(content_type.as_deref(), Some(JSON));
                    prop_assert_eq!(&received.reply().expect("a reply"), reply);
                }
            }
        }
    }

}

proptest! {
    #[test]
    fn hostile_bytes_never_panic_and_never_get_past_the_limits(
        bytes in hostile_frames(),
        max_header in 0usize..300,
        max_payload in 0usize..600,
        cuts in chunking(),
    ) {
        let mut decoder = FrameDecoder::new(max_header, max_payload);
        let mut buf = BytesMut::new();
        'feed: for piece in pieces(&bytes, &cuts) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.header.len() <= max_header);
                        prop_assert_eq!(frame.header.first(), Some(&b'{'));
                        prop_assert!(frame.payload.len() <= max_payload);
                        prop_assert_eq!(frame.payload.len() as u64, frame.envelope.content_length);
                        let _ = Request::from_frame(&frame);
                        let _ = Received::from_frame(frame);
                    }
                    Ok(None) => {
                        // Waiting for more: what is held is one unfinished frame, within
                        // the limits, never an announced payload over them.
                        prop_assert!(
                            buf.len() < PREFIX_LEN + max_header + max_payload,
                            "{} bytes buffered with limits {max_header} + {max_payload}", buf.len()
                        );
                        break;
                    }
                    Err(FrameError::PayloadTooLarge { len, max, .. }) => {
                        prop_assert!(len > max_payload as u64);
                        prop_assert_eq!(max, max_payload);
                    }
                    Err(e) => {
                        prop_assert!(e.is_fatal());
                        // A fatal error consumes nothing: asking again cannot yield a
                        // frame cut from the middle of the bad one.
                        prop_assert!(decoder.decode(&mut buf).is_err_and(|e| e.is_fatal()));
                        break 'feed;
                    }
                }
            }
        }
    }

    #[test]
    fn how_hostile_bytes_are_cut_never_changes_what_is_decoded(
        bytes in hostile_frames(),
        max_header in 0usize..300,
        max_payload in 0usize..600,
        cuts in chunking(),
    ) {
        let whole = decode_in_pieces(&bytes, &[bytes.len().max(1)], max_header, max_payload);
        let cut = decode_in_pieces(&bytes, &cuts, max_header, max_payload);
        prop_assert_eq!(cut, whole);
    }

    #[test]
    fn oversized_payloads_are_skipped_and_the_frames_after_them_decode(
        frames in vec((proptest::option::of(any::<u64>()), 0usize..700), 1..8),
        max_payload in 0usize..300,
        cuts in chunking(),
    ) {
        let mut wire = BytesMut::new();
        for (i, (id, size)) in frames.iter().enumerate() {
            // Payload bytes that look like frames, to catch a decoder that stops skipping early.
            let payload: Vec<u8> = (0..*size).map(|n| if n % 3 == 0 { 0 } else { b'{' }).collect();
            let header = match id {
                Some(id) => serde_json::json!({"type": "say", "room": "r", "n": i, "id": id}),
                None => serde_json::json!({"type": "say", "room": "r", "n": i}),
            };
            parley_proto::native::encode_frame(&header, Some(TEXT), &payload, &mut wire).expect("encodes");
        }
        let expected: Vec<Result<(Option<u64>, usize), FrameError>> = frames
            .iter()
            .map(|&(id, size)| {
                if size > max_payload {
                    Err(FrameError::PayloadTooLarge { id, len: size as u64, max: max_payload })
                } else {
                    Ok((id, size))
                }
            })
            .collect();

        let mut decoder = FrameDecoder::new(1024, max_payload);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(piece);
            let (out, fatal) = drain_frames(&mut decoder, &mut buf);
            prop_assert!(!fatal);
            got.extend(out.into_iter().map(|r| r.map(|f| (f.envelope.id, f.payload.len()))));
            prop_assert!(buf.len() < PREFIX_LEN + 1024 + max_payload, "a skipped payload is never buffered");
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, expected);
    }
}

// ---------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn lines_decode_the_same_however_the_stream_is_cut(
        max in 0usize..120,
        lines in vec((vec(any::<char>(), 0..40).prop_map(String::from_iter), any::<bool>()), 0..20),
        last in vec(any::<char>(), 0..40).prop_map(String::from_iter),
        cuts in chunking(),
    ) {
        let lines: Vec<(String, bool)> =
            lines.into_iter().map(|(l, crlf)| (clean_line(truncate_to(clean_line(l), max)), crlf)).collect();
        let last = clean_line(truncate_to(clean_line(last), max));
        let mut wire = String::new();
        for (line, crlf) in &lines {
            wire.push_str(line);
            wire.push_str(if *crlf { "\r\n" } else { "\n" });
        }
        wire.push_str(&last);

        let mut decoder = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(wire.as_bytes(), &cuts) {
            buf.extend_from_slice(piece);
            decode_lines(&mut decoder, &mut buf, &mut got);
            prop_assert!(buf.len() <= max + 1, "only one unfinished line, within the limit, is held");
        }
        decode_lines_at_eof(&mut decoder, &mut buf, &mut got);
        let mut expected: Vec<Result<String, LineError>> = lines.into_iter().map(|(l, _)| Ok(l)).collect();
        if !last.is_empty() {
            expected.push(Ok(last));
        }
        prop_assert_eq!(got, expected);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn each_overlong_line_is_one_error_and_the_next_line_still_decodes(
        max in 0usize..64,
        items in vec((any::<bool>(), vec(any::<char>(), 0..80).prop_map(String::from_iter), any::<bool>()), 1..12),
        last in proptest::option::of((any::<bool>(), vec(any::<char>(), 1..80).prop_map(String::from_iter))),
        cuts in chunking(),
    ) {
        // (overlong?, text) -> the line as sent and what the decoder must make of it.
        let shape = |overlong: bool, text: String| -> (String, Result<String, LineError>) {
            if overlong {
                let mut line = clean_line(text);
                while line.len() <= max {
                    line.push('x');
                }
                if line.ends_with('\r') {
                    line.push('x');
                }
                (line, Err(LineError::TooLong { max }))
            } else {
                let line = clean_line(truncate_to(clean_line(text), max));
                (line.clone(), Ok(line))
            }
        };
        let mut wire = String::new();
        let mut expected = Vec::new();
        for (overlong, text, crlf) in items {
            let (line, outcome) = shape(overlong, text);
            wire.push_str(&line);
            wire.push_str(if crlf { "\r\n" } else { "\n" });
            expected.push(outcome);
        }
        if let Some((overlong, text)) = last {
            let (line, outcome) = shape(overlong, text);
            if !line.is_empty() {
                wire.push_str(&line);
                expected.push(outcome);
            }
        }

        let mut decoder = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(wire.as_bytes(), &cuts) {
            buf.extend_from_slice(piece);
            decode_lines(&mut decoder, &mut buf, &mut got);
            prop_assert!(buf.len() <= max + 1, "an over-long line is never buffered");
        }
        decode_lines_at_eof(&mut decoder, &mut buf, &mut got);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_decode_as_the_definition_of_a_line_says(
        bytes in vec(any::<u8>().prop_map(|b| match b % 8 { 0 => b'\n', 1 => b'\r', 2 | 3 => b'a', _ => b }), 0..600),
        max in 0usize..40,
        cuts in chunking(),
    ) {
        let mut decoder = LineDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(&bytes, &cuts) {
            buf.extend_from_slice(piece);
            decode_lines(&mut decoder, &mut buf, &mut got);
            prop_assert!(buf.len() <= max + 1);
        }
        decode_lines_at_eof(&mut decoder, &mut buf, &mut got);
        prop_assert_eq!(got, line_model(&bytes, max));
    }
}

// ---------------------------------------------------------------------------------------
// Typed input
// ---------------------------------------------------------------------------------------

/// One word: at least one character, none of them white space.
fn word() -> impl Strategy<Value = String> {
    vec(any::<char>().prop_filter("not white space", |c| !c.is_whitespace()), 1..12).prop_map(String::from_iter)
}

proptest! {
    #[test]
    fn typed_input_never_panics(line in prop_oneof![
        any::<String>(),
        any::<String>().prop_map(|s| format!("/{s}")),
        (proptest::sample::select(&["msg", "m", "w", "whisper", "nick", "join", "MSG", "quit", "part"][..]), any::<String>())
            .prop_map(|(c, s)| format!("/{c}{s}")),
    ]) {
        let _ = Input::parse(&line);
    }

    #[test]
    fn msg_sends_its_text_to_its_nick(
        nick in word(),
        first in any::<char>().prop_filter("not white space", |c| !c.is_whitespace()),
        rest in any::<String>(),
    ) {
        let text = format!("{first}{rest}");
        // A command line is trimmed at both ends, so white space at the end of the text is
        // not sent; only the text's start is kept exactly.
        let sent = text.trim_end().to_owned();
        prop_assert_eq!(Input::parse(&format!("/msg {nick} {text}")), Input::Msg { to: nick, text: sent });
    }

    #[test]
    fn text_that_is_not_a_command_is_said_unchanged(line in any::<String>()) {
        prop_assume!(!line.starts_with('/') && !matches!(line.trim(), "quit" | "exit" | "q"));
        prop_assert_eq!(Input::parse(&line), Input::Say(line.clone()));
        // `//` escapes a leading slash.
        prop_assert_eq!(Input::parse(&format!("//{line}")), Input::Say(format!("/{line}")));
    }

    #[test]
    fn nick_and_join_take_exactly_one_word(name in word()) {
        prop_assert_eq!(Input::parse(&format!("/nick {name}")), Input::Nick(name.clone()));
        prop_assert_eq!(Input::parse(&format!("/join {name}")), Input::Join(name.clone()));
        prop_assert_eq!(Input::parse(&format!("/nick {name} {name}")), Input::Usage("/nick NEW_NAME"));
    }
}
