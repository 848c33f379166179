//! Compact event headers: version 2 of the native protocol.
//!
//! Most of what a chat server writes is one kind of frame: someone's words, copied to
//! every member of a room. In version 1 its JSON header is about 150 bytes for five
//! bytes of text, and writing those bytes is most of a delivery's cost. Version 2 keeps
//! the frame (`[u16 BE header length][header][payload]`) and lets the server send a
//! `message` event's header in binary, about 25 bytes:
//!
//! ```text
//! +------+----------------+------+-----+----+------------+------------+
//! | type | content-length | kind | seq | ts | room       | from       |
//! | 0x01 | varint         | u8   | var | var| var + UTF-8| var + UTF-8|
//! +------+----------------+------+-----+----+------------+------------+
//! ```
//!
//! - `type` is below 0x20, so it can never be the `{` a JSON header starts with: a
//!   reader tells the two apart by the header's first byte.
//! - `content-length` comes second whatever the type, so the framing layer finds a
//!   frame's end without knowing its type.
//! - Numbers are unsigned LEB128 varints: seven bits a byte, least significant first,
//!   the high bit set on every byte but the last (at most 10 bytes).
//! - `kind`: 0 text, 1 action, 2 notice. `ts` is milliseconds since 1970-01-01 UTC.
//!   Strings are a varint byte length, then that many bytes of UTF-8.
//!
//! The payload is the text. Messages that carry more (a file's description, a reply's
//! target, client tags) keep their JSON header, which version 2 clients read as well.

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, SecondsFormat};

use crate::msg::ServerMsg;
use crate::native::{close_frame, EncodeError, Envelope, PREFIX_LEN};

/// The type code of a compact `message` event.
pub const MESSAGE: u8 = 0x01;

/// The most bytes a varint of a `u64` takes.
const MAX_VARINT: usize = 10;

/// The kind of words a compact message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary text.
    Text = 0,
    /// Something the sender does (`/me`).
    Action = 1,
    /// A notice, never answered automatically.
    Notice = 2,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            0 => Some(Kind::Text),
            1 => Some(Kind::Action),
            2 => Some(Kind::Notice),
            _ => None,
        }
    }

    /// The protocol's name for the kind; ordinary text has none.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self {
            Kind::Text => None,
            Kind::Action => Some("action"),
            Kind::Notice => Some("notice"),
        }
    }
}

/// A `message` event as its compact header says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The room.
    pub room: &'a str,
    /// The sender's nick.
    pub from: &'a str,
    /// The message's place in the room's order.
    pub seq: u64,
    /// When the server accepted it, in milliseconds since 1970-01-01 UTC.
    pub ts_ms: u64,
    /// Text, action or notice.
    pub kind: Kind,
}

/// Why a compact header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The header ended inside a field.
    #[error("the header ends inside its {0}")]
    Truncated(&'static str),
    /// A varint ran past ten bytes, or past 64 bits.
    #[error("the {0} is not a valid number")]
    BadNumber(&'static str),
    /// A type code this version does not define.
    #[error("unknown compact header type 0x{0:02x}")]
    UnknownType(u8),
    /// A kind byte this version does not define.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A string that is not UTF-8.
    #[error("the {0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A timestamp out of the calendar's range.
    #[error("the timestamp is out of range")]
    BadTime,
    /// Bytes after the last field.
    #[error("{0} bytes after the header's last field")]
    Trailing(usize),
}

/// Appends a whole frame to `dst`: the prefix, `msg`'s compact header and `text`. Leaves
/// `dst` as it was on error (a header over 65,535 bytes, from names no server allows).
pub fn encode_message(msg: &Message<'_>, text: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.reserve(PREFIX_LEN + 4 * MAX_VARINT + 3 + msg.room.len() + msg.from.len() + text.len());
    dst.put_u16(0);
    dst.put_u8(MESSAGE);
    put_varint(dst, text.len() as u64);
    dst.put_u8(msg.kind as u8);
    put_varint(dst, msg.seq);
    put_varint(dst, msg.ts_ms);
    put_str(dst, msg.room);
    put_str(dst, msg.from);
    close_frame(dst, start, text)
}

/// Whether `byte`, a header's first, starts a compact header.
#[must_use]
pub fn is_compact(byte: u8) -> bool {
    byte < 0x20
}

/// The framing fields of a compact header: its type's name and its `content-length`.
pub fn envelope(header: &[u8]) -> Result<Envelope, CompactError> {
    let mut reader = Reader(header);
    let kind = match reader.byte("type")? {
        MESSAGE => "message",
        other => return Err(CompactError::UnknownType(other)),
    };
    let content_length = reader.varint("content-length")?;
    Ok(Envelope { kind: Some(kind.to_owned()), id: None, content_type: None, content_length })
}

/// Reads a whole compact header.
pub fn decode(header: &[u8]) -> Result<Message<'_>, CompactError> {
    let mut reader = Reader(header);
    match reader.byte("type")? {
        MESSAGE => {}
        other => return Err(CompactError::UnknownType(other)),
    }
    reader.varint("content-length")?;
    let kind = reader.byte("kind")?;
    let kind = Kind::from_byte(kind).ok_or(CompactError::UnknownKind(kind))?;
    let seq = reader.varint("seq")?;
    let ts_ms = reader.varint("ts")?;
    let room = reader.str("room")?;
    let from = reader.str("from")?;
    if !reader.0.is_empty() {
        return Err(CompactError::Trailing(reader.0.len()));
    }
    Ok(Message { room, from, seq, ts_ms, kind })
}

impl Message<'_> {
    /// The same event as version 1 has it.
    pub fn to_server_msg(&self) -> Result<ServerMsg, CompactError> {
        let ms = i64::try_from(self.ts_ms).map_err(|_| CompactError::BadTime)?;
        let at = DateTime::from_timestamp_millis(ms).ok_or(CompactError::BadTime)?;
        Ok(ServerMsg::Message {
            room: self.room.to_owned(),
            from: self.from.to_owned(),
            seq: self.seq,
            ts: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: self.kind.name().map(str::to_owned),
            reply_to: None,
            tags: None,
        })
    }
}

fn put_varint(dst: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        // The low seven bits, with the high bit saying more follow.
        dst.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    dst.put_u8(n as u8);
}

fn put_str(dst: &mut BytesMut, s: &str) {
    put_varint(dst, s.len() as u64);
    dst.extend_from_slice(s.as_bytes());
}

/// The unread rest of a header.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self, field: &'static str) -> Result<u8, CompactError> {
        let (&first, rest) = self.0.split_first().ok_or(CompactError::Truncated(field))?;
        self.0 = rest;
        Ok(first)
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, CompactError> {
        let mut n = 0u64;
        for i in 0..MAX_VARINT {
            let byte = self.byte(field)?;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit only.
            if i == MAX_VARINT - 1 && bits > 1 {
                return Err(CompactError::BadNumber(field));
            }
            n |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(CompactError::BadNumber(field))
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, CompactError> {
        let len = usize::try_from(self.varint(field)?).map_err(|_| CompactError::Truncated(field))?;
        if self.0.len() < len {
            return Err(CompactError::Truncated(field));
        }
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(bytes).map_err(|_| CompactError::NotUtf8(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::FrameDecoder;

    fn hello() -> Message<'static> {
        Message { room: "lobby", from: "alice", seq: 12, ts_ms: 1_795_617_045_123, kind: Kind::Text }
    }

    #[test]
    fn a_message_round_trips_through_the_frame_decoder() {
        let mut buf = BytesMut::new();
        encode_message(&hello(), b"hello", &mut buf).expect("encodes");
        let frame = FrameDecoder::new(65_535, 1 << 20).accepting_compact().decode(&mut buf).expect("valid");
        let frame = frame.expect("whole");
        assert_eq!(frame.envelope.kind.as_deref(), Some("message"));
        assert_eq!(frame.envelope.content_length, 5);
        assert_eq!(&frame.payload[..], b"hello");
        assert_eq!(decode(&frame.header), Ok(hello()));
        assert!(buf.is_empty());
    }

    #[test]
    fn varints_cover_every_u64_and_refuse_overlong_ones() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, n);
            assert!(buf.len() <= MAX_VARINT);
            assert_eq!(Reader(&buf).varint("n"), Ok(n));
        }
        assert_eq!(Reader(&[0xff; 10]).varint("n"), Err(CompactError::BadNumber("n")));
        assert_eq!(Reader(&[0x80; 11]).varint("n"), Err(CompactError::BadNumber("n")));
        assert_eq!(Reader(&[0x80, 0x80]).varint("n"), Err(CompactError::Truncated("n")));
    }

    #[test]
    fn damaged_headers_are_errors_not_panics() {
        let mut buf = BytesMut::new();
        encode_message(&hello(), b"hello", &mut buf).expect("encodes");
        let header = &buf[PREFIX_LEN..buf.len() - 5];
        for cut in 0..header.len() {
            assert!(decode(&header[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = header.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer), Err(CompactError::Trailing(1)));
        let mut kind = header.to_vec();
        kind[2] = 9;
        assert_eq!(decode(&kind), Err(CompactError::UnknownKind(9)));
        assert_eq!(envelope(&[0x02, 0]), Err(CompactError::UnknownType(2)));
        let far = Message { ts_ms: u64::MAX, ..hello() };
        assert_eq!(far.to_server_msg(), Err(CompactError::BadTime));
    }
}
