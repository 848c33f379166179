//! The line decoder, fed arbitrary bytes in arbitrary pieces: every line it returns is
//! within the limit, valid UTF-8 and newline-free, and it never returns more bytes than
//! it was given.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use parley_proto::line::LineDecoder;

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let chunk = usize::from(cut % 32) + 1;
    let mut decoder = LineDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let mut returned = 0;
    let mut check = |line: String| {
        assert!(line.len() <= MAX);
        assert!(!line.contains('\n'));
        returned += line.len();
    };
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(line)) => check(line),
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(buf.len() <= MAX + 1 + chunk, "an unfinished line is bounded by the limit");
    }
    if let Ok(Some(line)) = decoder.decode_eof(&mut buf) {
        check(line);
    }
    assert!(returned <= rest.len());
});
