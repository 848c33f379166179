//! Property tests of the codecs: what is encoded decodes back the same, however the
//! bytes are split, and no input makes a decoder panic or exceed its limits.

use bytes::BytesMut;
use parley_proto::line::{Input, LineDecoder, LineError};
use parley_proto::msg::{encode_request, encode_result, encode_server_msg, Received, Reply, Request, ServerMsg};
use parley_proto::native::{FrameDecoder, FrameError};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters JSON must escape.
    ".{0,40}"
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u32>(), text()).prop_map(|(version, nick)| Request::Hello { version, nick }),
        text().prop_map(|room| Request::Join { room }),
        proptest::option::of(text()).prop_map(|room| Request::Part { room }),
        text().prop_map(|room| Request::Say { room }),
        text().prop_map(|to| Request::Whisper { to }),
        text().prop_map(|nick| Request::Nick { nick }),
        text().prop_map(|room| Request::Who { room }),
        Just(Request::Rooms),
        Just(Request::Ping),
        proptest::option::of(text()).prop_map(|reason| Request::Quit { reason }),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (text(), text(), any::<u64>(), text()).prop_map(|(room, from, seq, ts)| ServerMsg::Message {
            room,
            from,
            seq,
            ts
        }),
        (text(), text(), text()).prop_map(|(from, to, ts)| ServerMsg::Whisper { from, to, ts }),
        (text(), text(), text(), any::<bool>()).prop_map(|(room, nick, ts, arrival)| ServerMsg::Joined {
            room,
            nick,
            ts,
            arrival
        }),
        (text(), text()).prop_map(|(old, new)| ServerMsg::Nick { old, new, ts: "t".into() }),
        text().prop_map(|message| ServerMsg::Shutdown { message, ts: "t".into() }),
        text().prop_map(|ts| ServerMsg::Ping { ts }),
    ]
}

/// Cuts `bytes` into pieces whose sizes come from `cuts` (cycled).
fn pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let size = cuts.get(i % cuts.len().max(1)).copied().unwrap_or(bytes.len()).max(1);
        let end = (at + size).min(bytes.len());
        out.push(bytes[at..end].to_vec());
        at = end;
        i += 1;
    }
    out
}

proptest! {
    #[test]
    fn requests_round_trip_through_any_split(
        frames in proptest::collection::vec((request(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..512)), 1..8),
        cuts in proptest::collection::vec(1usize..64, 1..16),
    ) {
        let mut wire = BytesMut::new();
        for (request, id, payload) in &frames {
            encode_request(*id, request, payload, &mut wire).expect("encodes");
        }
        let mut decoder = FrameDecoder::new(65_535, 1 << 20);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(frame) = decoder.decode(&mut buf).expect("valid frames") {
                decoded.push((Request::from_frame(&frame).expect("a request"), frame.envelope.id.expect("an id"), frame.payload.to_vec()));
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn server_messages_and_results_round_trip(
        msg in server_msg(),
        text_payload in ".{0,200}",
        id in any::<u64>(),
        members in proptest::collection::vec(text(), 0..20),
        cuts in proptest::collection::vec(1usize..32, 1..8),
    ) {
        let reply = Reply::Who { room: "r".into(), members };
        let mut wire = BytesMut::new();
        encode_server_msg(&msg, text_payload.as_bytes(), &mut wire).expect("encodes");
        encode_result(id, &reply, &mut wire).expect("encodes");
        let mut decoder = FrameDecoder::new(65_535, 1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(frame) = decoder.decode(&mut buf).expect("valid") {
                got.push(Received::from_frame(frame).expect("a server message"));
            }
        }
        prop_assert_eq!(got.len(), 2);
        prop_assert_eq!(&got[0].msg, &msg);
        prop_assert_eq!(got[0].text(), text_payload);
        prop_assert_eq!(&got[1].msg, &ServerMsg::Result { id });
        prop_assert_eq!(got[1].reply().expect("a reply"), reply);
    }

    #[test]
    fn arbitrary_bytes_never_break_the_frame_decoder_or_its_limits(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        cuts in proptest::collection::vec(1usize..128, 1..8),
    ) {
        let (max_header, max_payload) = (256, 512);
        let mut decoder = FrameDecoder::new(max_header, max_payload);
        let mut buf = BytesMut::new();
        'feed: for piece in pieces(&bytes, &cuts) {
            buf.extend_from_slice(&piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.header.len() <= max_header);
                        prop_assert!(frame.payload.len() <= max_payload);
                        prop_assert_eq!(frame.payload.len() as u64, frame.envelope.content_length);
                        let _ = Request::from_frame(&frame);
                        let _ = Received::from_frame(frame);
                    }
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break 'feed,
                    Err(FrameError::PayloadTooLarge { len, .. }) => prop_assert!(len > max_payload as u64),
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_oversized_payload_is_skipped_and_the_next_frame_still_decodes(
        big in 513usize..5000,
        cuts in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let mut wire = BytesMut::new();
        encode_request(1, &Request::Say { room: "r".into() }, &vec![b'x'; big], &mut wire).expect("encodes");
        encode_request(2, &Request::Ping, b"", &mut wire).expect("encodes");
        let mut decoder = FrameDecoder::new(1024, 512);
        let mut buf = BytesMut::new();
        let (mut refused, mut next) = (0, None);
        for piece in pieces(&wire, &cuts) {
            buf.extend_from_slice(&piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => next = frame.envelope.id,
                    Ok(None) => break,
                    Err(FrameError::PayloadTooLarge { id, .. }) => {
                        prop_assert_eq!(id, Some(1));
                        refused += 1;
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
            prop_assert!(buf.len() <= 2 + 1024 + 512 + 700, "the skipped payload is never buffered");
        }
        prop_assert_eq!((refused, next), (1, Some(2)));
    }

    #[test]
    fn lines_round_trip_through_any_split(
        lines in proptest::collection::vec("[^\n\r]{0,60}", 1..20),
        crlf in any::<bool>(),
        cuts in proptest::collection::vec(1usize..16, 1..8),
    ) {
        let lines: Vec<String> = lines.into_iter().filter(|l| l.len() <= 64).collect();
        let end = if crlf { "\r\n" } else { "\n" };
        let wire: String = lines.iter().map(|l| format!("{l}{end}")).collect();
        let mut decoder = LineDecoder::new(64);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(wire.as_bytes(), &cuts) {
            buf.extend_from_slice(&piece);
            while let Some(line) = decoder.decode(&mut buf).expect("valid lines") {
                got.push(line);
            }
        }
        prop_assert_eq!(got, lines);
    }

    #[test]
    fn each_overlong_line_is_one_error_and_the_next_line_survives(
        long in 65usize..500,
        cuts in proptest::collection::vec(1usize..40, 1..8),
    ) {
        let wire = format!("ok\n{}\nafter\n", "x".repeat(long));
        let mut decoder = LineDecoder::new(64);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in pieces(wire.as_bytes(), &cuts) {
            buf.extend_from_slice(&piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(line)) => got.push(Ok(line)),
                    Ok(None) => break,
                    Err(e) => got.push(Err(e)),
                }
            }
            prop_assert!(buf.len() <= 64 + 2 + 40, "an over-long line is never buffered");
        }
        prop_assert_eq!(got, vec![Ok("ok".to_owned()), Err(LineError::TooLong { max: 64 }), Ok("after".to_owned())]);
    }

    #[test]
    fn arbitrary_bytes_never_break_the_line_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut decoder = LineDecoder::new(100);
        let mut buf = BytesMut::new();
        for piece in pieces(&bytes, &cuts) {
            buf.extend_from_slice(&piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(line)) => prop_assert!(line.len() <= 100 && !line.contains('\n')),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
        }
        if let Ok(Some(last)) = decoder.decode_eof(&mut buf) {
            prop_assert!(last.len() <= 100);
        }
    }

    #[test]
    fn typed_input_never_panics_and_msg_keeps_its_text(line in ".{0,80}", nick in "[a-z][a-z0-9_]{0,10}", said in "[^\\s].{0,40}") {
        let _ = Input::parse(&line);
        // A command line is trimmed at both ends, so trailing white space is not sent.
        let text = said.trim_end().to_owned();
        prop_assert_eq!(Input::parse(&format!("/msg {nick} {said}")), Input::Msg { to: nick, text });
    }
}
