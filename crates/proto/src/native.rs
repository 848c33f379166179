//! The native framed protocol.
//!
//! A frame is a 2-byte big-endian length of a JSON header, that many bytes of UTF-8 JSON,
//! then exactly `content-length` bytes of payload (text, JSON or binary, as the header's
//! `content-type` says):
//!
//! ```text
//! +--------+---------------------------------------------+----------------+
//! | u16 BE | {"type":"say","room":"lobby","id":7,        | hello          |
//! | 0x0062 |  "content-type":"text/plain; charset=utf-8",|                |
//! |        |  "content-length":5}                        |                |
//! +--------+---------------------------------------------+----------------+
//! ```
//!
//! This module frames bytes; [`crate::msg`] gives the headers their meaning. The decoder
//! parses only the [`Envelope`] (the fields every header has) because it needs
//! `content-length` to find the end of the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

/// The size of the header-length prefix.
pub const PREFIX_LEN: usize = 2;

/// The fields of a header that the framing layer itself reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The message type (`"say"`, `"message"`, `"result"`, ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The request id, echoed in the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// The payload's media type, e.g. `text/plain; charset=utf-8` or `application/json`.
    #[serde(rename = "content-type", default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How many payload bytes follow the header.
    #[serde(rename = "content-length", default)]
    pub content_length: u64,
}

/// One whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header's JSON text, exactly as received.
    pub header: Bytes,
    /// The header's framing fields, already parsed.
    pub envelope: Envelope,
    /// The payload: `envelope.content_length` bytes.
    pub payload: Bytes,
}

/// Why bytes could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header-length prefix announced more than the limit. Fatal: the stream cannot
    /// be trusted to resynchronise.
    #[error("header of {len} bytes is over the limit of {max}")]
    HeaderTooLong {
        /// The announced header length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The header was not a JSON object with well-typed framing fields. Fatal: without a
    /// trustworthy `content-length` the end of the frame is unknown.
    #[error("malformed header: {0}")]
    MalformedHeader(String),
    /// The header announced a payload over the limit. Recoverable: the decoder skips the
    /// payload as it arrives, without buffering it, and decodes the next frame after it.
    #[error("payload of {len} bytes is over the limit of {max}")]
    PayloadTooLarge {
        /// The id of the request that carried it, if the header had one.
        id: Option<u64>,
        /// The announced payload length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
}

impl FrameError {
    /// True when the connection must be closed after reporting this error.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        !matches!(self, FrameError::PayloadTooLarge { .. })
    }
}

/// A bounded decoder of native frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// At most 65,535, the prefix's range: two bytes, as every connection keeps one.
    max_header: u16,
    max_payload: usize,
    /// Payload bytes of a rejected frame still to be skipped.
    skipping: u64,
    /// The parsed header of the frame at the front of the buffer, whose payload is still
    /// arriving: parsed once, not again on every read while a large payload trickles in.
    /// Boxed: an idle connection's decoder holds a pointer, not a whole envelope.
    pending: Option<Box<(usize, Envelope)>>,
    /// Whether headers may be compact ([`crate::compact`]): a client of version 2
    /// reads them; a server reads JSON only.
    compact: bool,
}

impl FrameDecoder {
    /// A decoder accepting headers of at most `max_header` bytes (at most 65,535, the
    /// prefix's range) and payloads of at most `max_payload` bytes.
    #[must_use]
    pub fn new(max_header: usize, max_payload: usize) -> Self {
        Self {
            max_header: u16::try_from(max_header).unwrap_or(u16::MAX),
            max_payload,
            skipping: 0,
            pending: None,
            compact: false,
        }
    }

    /// The same decoder, reading compact headers ([`crate::compact`]) as well as JSON
    /// ones: what a client that asked for version 2 of the protocol reads.
    #[must_use]
    pub fn accepting_compact(mut self) -> Self {
        self.compact = true;
        self
    }

    /// Takes one whole frame from the front of `buf`; `Ok(None)` means more bytes are
    /// needed. Checks every limit before it waits for (and so buffers) the bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skipping > 0 {
            let n = usize::try_from(self.skipping).map_or(buf.len(), |s| s.min(buf.len()));
            buf.advance(n);
            self.skipping -= n as u64;
            if self.skipping > 0 {
                return Ok(None);
            }
        }
        let (header_len, envelope) = match self.pending.take() {
            Some(pending) => *pending,
            None => match self.decode_header(buf)? {
                Some(parsed) => parsed,
                None => return Ok(None),
            },
        };
        // Within `max_payload`, which is a usize.
        let payload_len = usize::try_from(envelope.content_length).unwrap_or(usize::MAX);
        let total = (PREFIX_LEN + header_len).saturating_add(payload_len);
        if buf.len() < total {
            // No reservation for the announced payload: memory grows only as its bytes
            // arrive, so announcing a large payload and sending it slowly costs the
            // server nothing.
            self.pending = Some(Box::new((header_len, envelope)));
            return Ok(None);
        }
        buf.advance(PREFIX_LEN);
        let header = buf.split_to(header_len).freeze();
        let payload = buf.split_to(payload_len).freeze();
        Ok(Some(Frame { header, envelope, payload }))
    }

    /// Reads and checks the prefix and header at the front of `buf`: `Ok(None)` until the
    /// whole header is there, then its length and envelope. A payload over the limit is
    /// reported here and its bytes are skipped from then on.
    fn decode_header(&mut self, buf: &mut BytesMut) -> Result<Option<(usize, Envelope)>, FrameError> {
        if buf.len() < PREFIX_LEN {
            return Ok(None);
        }
        let header_len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        let max_header = usize::from(self.max_header);
        if header_len > max_header {
            return Err(FrameError::HeaderTooLong { len: header_len, max: max_header });
        }
        // A JSON object starts with `{`: refuse anything else (a TLS ClientHello, an HTTP
        // request, stray text) at its first byte instead of waiting for a bogus header.
        if buf.len() > PREFIX_LEN && !self.starts_header(buf[PREFIX_LEN]) {
            return Err(FrameError::MalformedHeader("a header must be a JSON object".into()));
        }
        if header_len == 0 {
            return Err(FrameError::MalformedHeader("a header must be a JSON object".into()));
        }
        if buf.len() < PREFIX_LEN + header_len {
            buf.reserve(PREFIX_LEN + header_len - buf.len());
            return Ok(None);
        }
        let header = &buf[PREFIX_LEN..PREFIX_LEN + header_len];
        let envelope = if self.compact && crate::compact::is_compact(header[0]) {
            crate::compact::envelope(header).map_err(|e| FrameError::MalformedHeader(e.to_string()))?
        } else {
            parse_envelope(header)?
        };
        if envelope.content_length > self.max_payload as u64 {
            buf.advance(PREFIX_LEN + header_len);
            self.skipping = envelope.content_length;
            let available = self.skipping.min(buf.len() as u64);
            // `available` is at most `buf.len()`, so the conversion cannot fail.
            buf.advance(usize::try_from(available).unwrap_or(0));
            self.skipping -= available;
            return Err(FrameError::PayloadTooLarge {
                id: envelope.id,
                len: envelope.content_length,
                max: self.max_payload,
            });
        }
        Ok(Some((header_len, envelope)))
    }
}

impl FrameDecoder {
    /// Whether a header may start with `byte`.
    fn starts_header(&self, byte: u8) -> bool {
        byte == b'{' || (self.compact && crate::compact::is_compact(byte))
    }
}

fn parse_envelope(header: &[u8]) -> Result<Envelope, FrameError> {
    if header.first() != Some(&b'{') {
        return Err(FrameError::MalformedHeader("a header must be a JSON object".into()));
    }
    serde_json::from_slice(header).map_err(|e| FrameError::MalformedHeader(e.to_string()))
}

#[cfg(feature = "codec")]
impl tokio_util::codec::Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameCodecError> {
        FrameDecoder::decode(self, src).map_err(FrameCodecError::Frame)
    }
}

/// The error type of the frame codec when it drives a `tokio_util` stream.
#[cfg(feature = "codec")]
#[derive(Debug, thiserror::Error)]
pub enum FrameCodecError {
    /// Bytes that are not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The underlying stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The header serialised to more than 65,535 bytes.
    #[error("header of {0} bytes does not fit the 2-byte length prefix")]
    HeaderTooLong(usize),
    /// The header could not be serialised.
    #[error("header could not be serialised: {0}")]
    Json(#[from] serde_json::Error),
}

/// Appends one frame to `dst`: `header` (any value serialising to a JSON object, typically
/// a tagged [`crate::msg`] enum) with `content-type` and `content-length` added, then
/// `payload`. Leaves `dst` as it was on error.
pub fn encode_frame<H: Serialize>(
    header: &H,
    content_type: Option<&str>,
    payload: &[u8],
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct WithContent<'a, H> {
        #[serde(flatten)]
        header: &'a H,
        #[serde(rename = "content-type", skip_serializing_if = "Option::is_none")]
        content_type: Option<&'a str>,
        #[serde(rename = "content-length", skip_serializing_if = "is_zero")]
        content_length: usize,
    }
    let start = dst.len();
    dst.put_u16(0);
    let content_type = if payload.is_empty() { None } else { content_type };
    let with_content = WithContent { header, content_type, content_length: payload.len() };
    if let Err(e) = serde_json::to_writer((&mut *dst).writer(), &with_content) {
        dst.truncate(start);
        return Err(e.into());
    }
    close_frame(dst, start, payload)
}

/// Ends a frame whose header was written after a placeholder prefix at `start`: fills in
/// the prefix and appends `payload`, or (a header over 65,535 bytes) leaves `dst` as it
/// was before `start`.
pub(crate) fn close_frame(dst: &mut BytesMut, start: usize, payload: &[u8]) -> Result<(), EncodeError> {
    let header_len = dst.len() - start - PREFIX_LEN;
    let Ok(prefix) = u16::try_from(header_len) else {
        dst.truncate(start);
        return Err(EncodeError::HeaderTooLong(header_len));
    };
    dst[start..start + PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
    dst.extend_from_slice(payload);
    Ok(())
}

// serde's skip_serializing_if passes a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame_bytes(header: &serde_json::Value, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_frame(header, Some("text/plain; charset=utf-8"), payload, &mut buf).expect("encodes");
        buf
    }

    #[test]
    fn a_frame_round_trips() {
        let mut buf = frame_bytes(&json!({"type": "say", "id": 7, "room": "lobby"}), b"hello");
        let frame = FrameDecoder::new(4096, 4096).decode(&mut buf).expect("valid").expect("whole");
        assert_eq!(frame.envelope.kind.as_deref(), Some("say"));
        assert_eq!(frame.envelope.id, Some(7));
        assert_eq!(frame.envelope.content_length, 5);
        assert_eq!(&frame.payload[..], b"hello");
        assert!(buf.is_empty());
    }

    #[test]
    fn the_documented_example_is_byte_exact() {
        // The hex dump in docs/PROTOCOL.md.
        let header =
            br#"{"type":"say","room":"lobby","id":7,"content-type":"text/plain; charset=utf-8","content-length":5}"#;
        let mut expected = BytesMut::new();
        expected.put_u16(u16::try_from(header.len()).expect("short"));
        expected.extend_from_slice(header);
        expected.extend_from_slice(b"hello");
        let mut encoded = BytesMut::new();
        let say = crate::msg::Request::Say { room: "lobby".into(), reply_to: None, tags: None };
        crate::msg::encode_request(7, &say, b"hello", &mut encoded).expect("encodes");
        assert_eq!(encoded, expected);
        assert_eq!(&encoded[..2], &[0x00, 0x62]);
    }

    #[test]
    fn an_oversized_payload_is_skipped_without_buffering() {
        let mut d = FrameDecoder::new(4096, 4);
        let mut buf = frame_bytes(&json!({"type": "say", "id": 1}), b"too long");
        buf.truncate(buf.len() - 3);
        assert_eq!(d.decode(&mut buf), Err(FrameError::PayloadTooLarge { id: Some(1), len: 8, max: 4 }));
        assert!(buf.is_empty());
        buf.extend_from_slice(b"ong");
        buf.extend_from_slice(&frame_bytes(&json!({"type": "ping", "id": 2}), b""));
        let next = d.decode(&mut buf).expect("valid").expect("whole");
        assert_eq!(next.envelope.id, Some(2));
    }

    #[test]
    fn a_huge_claim_is_rejected_before_any_payload_arrives() {
        let mut d = FrameDecoder::new(4096, 1 << 20);
        let mut buf = BytesMut::new();
        let header = br#"{"type":"say","content-length":4294967296}"#;
        buf.put_u16(u16::try_from(header.len()).expect("short"));
        buf.extend_from_slice(header);
        assert!(matches!(d.decode(&mut buf), Err(FrameError::PayloadTooLarge { len: 4_294_967_296, .. })));
        assert!(buf.capacity() < 1 << 20, "no room was reserved for the claimed payload");
    }

    #[test]
    fn a_header_not_starting_like_json_is_refused_at_its_first_byte() {
        let mut d = FrameDecoder::new(65_535, 64);
        // The start of a TLS ClientHello: it announces a 0x1603-byte "header".
        let mut buf = BytesMut::from(&b"\x16\x03\x01"[..]);
        assert!(matches!(d.decode(&mut buf), Err(FrameError::MalformedHeader(_))));
        let mut buf = BytesMut::from(&b"\x00\x00"[..]);
        assert!(matches!(d.decode(&mut buf), Err(FrameError::MalformedHeader(_))));
    }

    #[test]
    fn header_limits_and_malformed_headers_are_fatal() {
        let mut d = FrameDecoder::new(8, 64);
        let mut buf = frame_bytes(&json!({"type": "say"}), b"");
        let err = d.decode(&mut buf).expect_err("too long");
        assert!(err.is_fatal());

        let mut d = FrameDecoder::new(4096, 64);
        let mut buf = BytesMut::new();
        buf.put_u16(3);
        buf.extend_from_slice(b"{x}");
        let err = d.decode(&mut buf).expect_err("not JSON");
        assert!(matches!(err, FrameError::MalformedHeader(_)) && err.is_fatal());

        let mut buf = BytesMut::new();
        let header = br#"{"type":"say","content-length":"five"}"#;
        buf.put_u16(u16::try_from(header.len()).expect("short"));
        buf.extend_from_slice(header);
        assert!(matches!(d.decode(&mut buf), Err(FrameError::MalformedHeader(_))));
    }
}
