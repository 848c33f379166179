//! Any request, id and payload encodes to a frame that decodes back to exactly the same.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use parley_proto::msg::{encode_request, Request};
use parley_proto::native::FrameDecoder;

#[derive(Debug, Arbitrary)]
enum Kind {
    Hello(u32, String),
    Join(String),
    Part(Option<String>),
    Say(String),
    Whisper(String),
    Nick(String),
    Who(String),
    Rooms,
    Ping,
    Quit(Option<String>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    kind: Kind,
    id: u64,
    payload: Vec<u8>,
    chunk: u8,
}

fuzz_target!(|input: Input| {
    let request = match input.kind {
        Kind::Hello(version, nick) => Request::Hello { version, nick, password: None },
        Kind::Join(room) => Request::Join { room },
        Kind::Part(room) => Request::Part { room },
        Kind::Say(room) => Request::Say { room },
        Kind::Whisper(to) => Request::Whisper { to },
        Kind::Nick(nick) => Request::Nick { nick },
        Kind::Who(room) => Request::Who { room },
        Kind::Rooms => Request::Rooms,
        Kind::Ping => Request::Ping,
        Kind::Quit(reason) => Request::Quit { reason },
    };
    let mut wire = BytesMut::new();
    if encode_request(input.id, &request, &input.payload, &mut wire).is_err() {
        // Only a header over 65,535 bytes fails, and then nothing was written.
        assert!(wire.is_empty());
        return;
    }
    let mut decoder = FrameDecoder::new(65_535, usize::MAX);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in wire.chunks(usize::from(input.chunk) + 1) {
        buf.extend_from_slice(piece);
        while let Some(frame) = decoder.decode(&mut buf).expect("our own frames are valid") {
            frames.push(frame);
        }
    }
    assert_eq!(frames.len(), 1);
    let frame = &frames[0];
    assert_eq!(frame.envelope.id, Some(input.id));
    assert_eq!(&frame.payload[..], &input.payload[..]);
    assert_eq!(Request::from_frame(frame).expect("a request"), request);
});
