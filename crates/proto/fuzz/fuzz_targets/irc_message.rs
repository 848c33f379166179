//! IRC lines as the gateway reads them: arbitrary bytes, in arbitrary pieces, through the
//! bounded line decoder and `Message::parse`. Nothing panics; what parses obeys IRC's
//! limits (at most 15 parameters, a command of letters or three digits, a body within
//! 512 bytes and tags within 8191); writing a parsed message and parsing it again gives
//! the same message; text split for IRC clients always fits and has no line breaks.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use parley_proto::irc::{mask_matches, split_text, Message, MAX_BODY, MAX_LINE_WITH_TAGS, MAX_PARAMS};
use parley_proto::line::LineDecoder;

fn check(line: &str) {
    let Ok(message) = Message::parse(line) else { return };
    assert!(message.params.len() <= MAX_PARAMS);
    let numeric = message.command.len() == 3 && message.command.bytes().all(|b| b.is_ascii_digit());
    assert!(numeric || (!message.command.is_empty() && message.command.bytes().all(|b| b.is_ascii_alphabetic())));
    let written = message.to_line();
    assert!(written.ends_with("\r\n"));
    assert_eq!(Message::parse(&written), Ok(message.clone()), "{line:?} -> {written:?}");
    let body = written.rsplit_once(" :").map_or(written.len(), |(head, _)| head.len());
    assert!(message.tags.is_empty() || body > 0);
    if let Some(text) = message.params.last() {
        for max in [8, 40, MAX_BODY] {
            for piece in split_text(text, max) {
                assert!(piece.len() <= max && !piece.contains(['\n', '\r', '\0']), "{piece:?}");
            }
        }
        let _ = mask_matches(&message.command, text);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let chunk = usize::from(cut % 64) + 1;
    let mut decoder = LineDecoder::new(MAX_LINE_WITH_TAGS);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(line)) => check(&line),
                Ok(None) => break,
                Err(_) => {}
            }
        }
    }
    if let Ok(Some(line)) = decoder.decode_eof(&mut buf) {
        check(&line);
    }
});
