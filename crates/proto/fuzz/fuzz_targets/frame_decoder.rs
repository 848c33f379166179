//! The frame decoder, fed arbitrary bytes in arbitrary pieces: every frame respects both
//! limits and its own content-length, a skipped payload is never buffered, and whatever
//! it returns can be interpreted without panicking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use parley_proto::msg::{Received, Request};
use parley_proto::native::FrameDecoder;

const MAX_HEADER: usize = 1024;
const MAX_PAYLOAD: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let chunk = usize::from(cut) + 1;
    let mut decoder = FrameDecoder::new(MAX_HEADER, MAX_PAYLOAD);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.header.len() <= MAX_HEADER);
                    assert!(frame.payload.len() <= MAX_PAYLOAD);
                    assert_eq!(frame.payload.len() as u64, frame.envelope.content_length);
                    let _ = Request::from_frame(&frame);
                    let _ = Received::from_frame(frame);
                }
                Ok(None) => break,
                Err(e) if e.is_fatal() => return,
                Err(_) => {}
            }
        }
        assert!(buf.len() <= 2 + MAX_HEADER + MAX_PAYLOAD + chunk, "buffering stays within the limits");
    }
});
