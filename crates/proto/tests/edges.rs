//! The codecs at the edges of their ranges: the largest header the prefix can carry, and
//! limits at the top of `usize`.

use bytes::{BufMut, BytesMut};
use parley_proto::line::LineDecoder;
use parley_proto::msg::{encode_request, Request};
use parley_proto::native::{EncodeError, FrameDecoder, FrameError, PREFIX_LEN};

/// A `hello` whose header is exactly `len` bytes long.
fn hello_with_header_of(len: usize) -> Request {
    let mut probe = BytesMut::new();
    encode_request(1, &Request::Hello { version: 1, nick: String::new(), password: None }, b"", &mut probe)
        .expect("encodes");
    let overhead = probe.len() - PREFIX_LEN;
    Request::Hello { version: 1, nick: "n".repeat(len - overhead), password: None }
}

#[test]
fn a_header_of_65535_bytes_is_the_largest_that_encodes_and_decodes() {
    let fits = hello_with_header_of(65_535);
    let mut buf = BytesMut::from(&b"before"[..]);
    encode_request(1, &fits, b"", &mut buf).expect("a 65,535-byte header fits the prefix");
    assert_eq!(&buf[6..8], &[0xff, 0xff]);
    let mut frame_bytes = buf.split_off(6);
    let frame = FrameDecoder::new(65_535, 0).decode(&mut frame_bytes).expect("valid").expect("whole");
    assert_eq!(Request::from_frame(&frame), Ok(fits));
    // A decoder asked for more than the prefix can say is held to 65,535.
    let mut again = BytesMut::new();
    encode_request(1, &hello_with_header_of(65_535), b"", &mut again).expect("encodes");
    assert!(FrameDecoder::new(usize::MAX, 0).decode(&mut again).expect("valid").is_some());
}

#[test]
fn a_longer_header_is_refused_and_leaves_the_buffer_as_it_was() {
    for len in [65_536, 65_537, 70_000, 200_000] {
        let mut buf = BytesMut::from(&b"before"[..]);
        let err = encode_request(1, &hello_with_header_of(len), b"", &mut buf).expect_err("too long");
        assert!(matches!(err, EncodeError::HeaderTooLong(n) if n == len), "{err:?}");
        assert_eq!(&buf[..], b"before");
        // With a payload, `content-type` and `content-length` make it longer still.
        let err = encode_request(1, &hello_with_header_of(len), b"text", &mut buf).expect_err("too long");
        assert!(matches!(err, EncodeError::HeaderTooLong(n) if n > len), "{err:?}");
        assert_eq!(&buf[..], b"before");
    }
}

#[test]
fn a_decoder_with_the_header_limit_at_zero_refuses_every_frame() {
    let mut buf = BytesMut::new();
    encode_request(1, &Request::Ping, b"", &mut buf).expect("encodes");
    let err = FrameDecoder::new(0, 0).decode(&mut buf).expect_err("no header fits");
    assert!(matches!(err, FrameError::HeaderTooLong { max: 0, .. }) && err.is_fatal());
}

#[test]
fn a_line_decoder_without_a_practical_limit_waits_for_the_newline() {
    // Regression: `max_len + 1` once overflowed here (a panic in debug builds, every
    // unfinished line reported as too long in release builds).
    let mut decoder = LineDecoder::new(usize::MAX);
    let mut buf = BytesMut::from("no newline yet");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\n");
    assert_eq!(decoder.decode(&mut buf), Ok(Some("no newline yet".to_owned())));
}

#[test]
fn a_frame_decoder_without_a_practical_payload_limit_waits_for_the_payload() {
    // The 2^64-1 payload bytes have not arrived. Regression: the frame's total length once
    // overflowed here, and the decoder then reserved room for the whole announced payload.
    let mut decoder = FrameDecoder::new(65_535, usize::MAX);
    let header = br#"{"type":"say","room":"r","id":1,"content-length":18446744073709551615}"#;
    let mut buf = BytesMut::new();
    buf.put_u16(u16::try_from(header.len()).expect("short"));
    buf.extend_from_slice(header);
    buf.extend_from_slice(b"some payload");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn an_irc_line_with_a_cr_inside_is_refused() {
    // Found by the irc_message fuzz target: "CAP END\r " reached the parser (the decoder
    // removes only a final "\r"), the "\r" stayed in a parameter, and the message written
    // back ended early and parsed differently. IRC forbids CR and NUL anywhere in a line.
    use parley_proto::irc::{Message, ParseError};
    let mut decoder = LineDecoder::new(parley_proto::irc::MAX_LINE_WITH_TAGS);
    let mut buf = BytesMut::from("NICK ada\r\nCAP END\r \r\n");
    let first = decoder.decode(&mut buf).expect("a line").expect("whole");
    assert!(Message::parse(&first).is_ok());
    let second = decoder.decode(&mut buf).expect("a line").expect("whole");
    assert_eq!(Message::parse(&second), Err(ParseError::ForbiddenCharacter));
}
