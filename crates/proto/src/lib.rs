//! # parley-proto
//!
//! Parley's wire formats, as pure functions over bytes: no sockets, no runtime, no rooms.
//!
//! - [`line`]: the classic line protocol that `nc` and `telnet` speak: a bounded line
//!   decoder and the parser for the slash commands typed in it.
//! - [`native`]: the framed native protocol: `[u16 BE header length][JSON header][payload]`,
//!   where the header's `content-length` says how many payload bytes follow.
//! - [`compact`]: version 2's binary header for the `message` events that are most of
//!   what a server writes.
//! - [`msg`]: the typed requests, replies and events carried in native frames.
//! - [`irc`]: IRC's message syntax (RFC 1459/2812 lines with IRCv3 tags), for the IRC
//!   gateway: parsing, writing, tag escaping, CTCP actions, masks.
//! - [`text`]: text on its way to a terminal, without the control characters that would
//!   let others drive it; every client and gateway that prints others' text uses it.
//!
//! Every decoder takes its limits when it is built and rejects oversized input before it
//! buffers it. `Ok(None)` from a decoder always means "need more bytes", never an error.
//! With the `codec` feature (on by default) the decoders also implement
//! `tokio_util::codec::Decoder`, so they can drive a `Framed` stream.
#![warn(missing_docs)]

pub mod compact;
pub mod irc;
pub mod line;
pub mod msg;
pub mod native;
pub mod text;
