//! Any request, id and payload encodes to a frame that decodes back to exactly the same.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use parley_proto::msg::{encode_request, Request};
use parley_proto::native::FrameDecoder;

#[derive(Debug, Arbitrary)]
enum Kind {
    Hello(u32, String, Option<String>),
    History(Option<String>, Option<u64>, Option<u64>, Option<u32>),
    Conversation(String, Option<u64>, Option<u64>, Option<u32>),
    Search(String, Option<u32>),
    Register(String),
    Auth(Option<String>, String),
    Password(String, String),
    Topic(Option<String>, Option<String>),
    Kick(Option<String>, String, Option<String>),
    Ban(Option<String>, String, Option<u64>, Option<String>),
    Unban(Option<String>, String),
    Mute(Option<String>, String, Option<u64>),
    Unmute(Option<String>, String),
    Op(Option<String>, String),
    Deop(Option<String>, String),
    Audit(Option<u32>),
    Join(String),
    Part(Option<String>),
    Say(String),
    Whisper(String),
    Nick(String),
    Who(String),
    Rooms,
    Ping,
    Quit(Option<String>),
    Act(String),
    Away(Option<String>),
    Whois(String),
    Invite(Option<String>, String),
    Upload(Option<String>, Option<String>, String, u64, String, String),
    Chunk(String, u64),
    Download(String),
    Read(String, u64),
    RoomRegister(Option<String>),
    RoomUnregister(Option<String>),
    Unregister(String),
    ServerBan(String, Option<u64>, Option<String>),
    ServerUnban(String),
    ServerBans,
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
        Kind::Hello(version, nick, password) => Request::Hello { version, nick, password },
        Kind::History(room, before, after, limit) => Request::History { room, before, after, limit },
        Kind::Conversation(with, before, after, limit) => Request::Conversation { with, before, after, limit },
        Kind::Search(query, page) => Request::Search { query, page },
        Kind::Register(password) => Request::Register { password },
        Kind::Auth(name, password) => Request::Auth { name, password },
        Kind::Password(old, new) => Request::Password { old, new },
        Kind::Topic(room, topic) => Request::Topic { room, topic },
        Kind::Kick(room, nick, reason) => Request::Kick { room, nick, reason },
        Kind::Ban(room, mask, seconds, reason) => Request::Ban { room, mask, seconds, reason },
        Kind::Unban(room, mask) => Request::Unban { room, mask },
        Kind::Mute(room, nick, seconds) => Request::Mute { room, nick, seconds },
        Kind::Unmute(room, nick) => Request::Unmute { room, nick },
        Kind::Op(room, nick) => Request::Op { room, nick },
        Kind::Deop(room, nick) => Request::Deop { room, nick },
        Kind::Audit(limit) => Request::Audit { limit },
        Kind::Join(room) => Request::Join { room },
        Kind::Part(room) => Request::Part { room },
        Kind::Say(room) => Request::Say { room },
        Kind::Whisper(to) => Request::Whisper { to },
        Kind::Nick(nick) => Request::Nick { nick },
        Kind::Who(room) => Request::Who { room },
        Kind::Rooms => Request::Rooms,
        Kind::Ping => Request::Ping,
        Kind::Quit(reason) => Request::Quit { reason },
        Kind::Act(room) => Request::Act { room },
        Kind::Away(message) => Request::Away { message },
        Kind::Whois(nick) => Request::Whois { nick },
        Kind::Invite(room, nick) => Request::Invite { room, nick },
        Kind::Upload(room, to, name, size, media_type, sha256) => {
            Request::Upload { room, to, name, size, media_type, sha256 }
        }
        Kind::Chunk(file, offset) => Request::Chunk { file, offset },
        Kind::Download(file) => Request::Download { file },
        Kind::Read(file, offset) => Request::Read { file, offset },
        Kind::RoomRegister(room) => Request::RoomRegister { room },
        Kind::RoomUnregister(room) => Request::RoomUnregister { room },
        Kind::Unregister(password) => Request::Unregister { password },
        Kind::ServerBan(mask, seconds, reason) => Request::ServerBan { mask, seconds, reason },
        Kind::ServerUnban(mask) => Request::ServerUnban { mask },
        Kind::ServerBans => Request::ServerBans,
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
