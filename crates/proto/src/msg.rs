//! The typed messages of the native protocol: [`Request`]s from clients, [`ServerMsg`]s
//! from the server, and the [`Reply`] bodies of results.
//!
//! Every header is a JSON object tagged by `"type"`. Text travels in the payload
//! (`text/plain; charset=utf-8`); a result's body travels in the payload as
//! `application/json`, so a long list never presses against the 64 KiB header limit.
//! The names and values here are the protocol: they are persisted in clients' code and
//! must stay stable. Add, never rename.

use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::native::{encode_frame, EncodeError, Frame};

/// The newest protocol version this crate speaks, sent in `hello` and `welcome`.
/// Version 2 is version 1 plus compact `message` headers ([`crate::compact`]).
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version this crate speaks: a server answers a `hello` of any
/// version from this one to [`PROTOCOL_VERSION`] in that version.
pub const OLDEST_VERSION: u32 = 1;
/// The content type of text payloads.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// The content type of JSON payloads (result bodies).
pub const JSON: &str = "application/json";
/// The content type of binary payloads (pieces of a file).
pub const BINARY: &str = "application/octet-stream";

/// A request from a client. Each carries an `id` in its header; the server answers it
/// with exactly one `result` or `error` naming that id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// The handshake: the first request on a connection.
    Hello {
        /// The protocol version the client speaks.
        version: u32,
        /// The nick the client wants; left out (or ignored) with a `token`, which logs
        /// in to the token's account under its name.
        #[serde(default)]
        nick: String,
        /// The password of the account `nick`, to log in at once: the nick is taken from
        /// whoever has it, with no grace period. Without it, the client may `auth` later.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// Enter a room, creating it if nobody is there.
    Join {
        /// The room's name (a leading `#` is ignored).
        room: String,
    },
    /// Leave a room; without a name, the room joined last.
    Part {
        /// The room to leave.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Say the payload's text in a room.
    Say {
        /// The room to speak in.
        room: String,
        /// The seq of the message this one answers, in the same room or conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// Tags for other clients, relayed and kept as they are (names like
        /// `example.com/key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<BTreeMap<String, String>>,
    },
    /// Send the payload's text privately to one user.
    Whisper {
        /// The nick of the receiver.
        to: String,
        /// The seq of the message this one answers, in the same room or conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// Tags for other clients, relayed and kept as they are (names like
        /// `example.com/key`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<BTreeMap<String, String>>,
    },
    /// Tell a room (`room`) or someone (`to`) whether you are typing: `active` (repeat
    /// at most every 3 seconds while typing), `paused`, `done` (sent or cleared).
    Typing {
        /// The room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other user, in a conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// `active`, `paused` or `done`.
        state: String,
    },
    /// React to a message of a room (`room`) or of a conversation (`with`), or take the
    /// reaction back (`remove`).
    React {
        /// The room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other user, in a conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// The message's seq.
        seq: u64,
        /// An emoji or a short word, at most 64 bytes.
        reaction: String,
        /// Take the reaction back.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        remove: bool,
    },
    /// Change nick.
    Nick {
        /// The new nick.
        nick: String,
    },
    /// List the users in a room.
    Who {
        /// The room to list.
        room: String,
    },
    /// List the rooms on the server.
    Rooms,
    /// Read a page of a room's history (a room you are in). Without a cursor, the latest
    /// messages; with `before`, the latest before that seq (scrolling back); with
    /// `after`, the earliest after it (catching up after a reconnect).
    History {
        /// The room; without one, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Only messages with a lower seq.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// Only messages with a higher seq.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// The most messages wanted; the server caps it at 500. Default: 50.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Move your read marker in a room (`room`) or a conversation (`with`) forward to
    /// `ts` (the time of the last message read), or, without `ts`, ask where it is.
    /// Your other sessions get a `marker` event when it moves.
    MarkRead {
        /// The room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other user of a conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Read up to this instant, RFC 3339.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// Delete a message of a room: your own, or anyone's as the room's operator or a
    /// server admin. Every member gets a `deleted` event; the message leaves history,
    /// search and what newcomers are shown.
    Delete {
        /// The room.
        room: String,
        /// The message's place in the room's order.
        seq: u64,
        /// Why, shown to the members.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Show a room's topic, or set it (operators).
    Topic {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The new topic (empty clears it); without it, the topic is shown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
    /// Put someone out of a room (operators).
    Kick {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Who.
        nick: String,
        /// Why, shown to the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Keep a nick (or account) or an IP address out of a room (operators); a ban in
    /// `lobby` keeps them off the server.
    Ban {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// A nick or an IP address.
        mask: String,
        /// For how many seconds; without it, until lifted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift a ban (operators).
    Unban {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The nick or address.
        mask: String,
    },
    /// Stop someone from speaking in a room (operators).
    Mute {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Who.
        nick: String,
        /// For how many seconds; without it, until lifted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u64>,
    },
    /// Let them speak again (operators).
    Unmute {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Who.
        nick: String,
    },
    /// Make an account an operator of a room (operators).
    Op {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The account.
        nick: String,
    },
    /// Take the operator role away (operators).
    Deop {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The account.
        nick: String,
    },
    /// The latest lines of the audit log (server admins).
    Audit {
        /// How many; the server caps it at 500. Default: 50.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Read a page of your private messages with someone (logged-in users only), with
    /// the same cursors as `history`.
    Conversation {
        /// The other party's nick.
        with: String,
        /// Only messages with a lower seq.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// Only messages with a higher seq.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// The most messages wanted; the server caps it at 500. Default: 50.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Full-text search over the history you may see: your rooms, and your own private
    /// messages when logged in.
    Search {
        /// Words (all must appear) and filters: `from:NICK`, `in:ROOM`, `before:DATE`,
        /// `after:DATE` (YYYY-MM-DD, UTC).
        query: String,
        /// The page of 20 results, from 1. Default: 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page: Option<u32>,
    },
    /// Make your current nick an account protected by `password`, and log in to it.
    Register {
        /// At least 8 characters.
        password: String,
    },
    /// Log in to an account, taking its nick (from whoever has it).
    Auth {
        /// The account; without it, your current nick.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Its password.
        password: String,
    },
    /// Change the password of the account you are logged in to.
    Password {
        /// The current password.
        old: String,
        /// The new one, at least 8 characters.
        new: String,
    },
    /// Say the payload's text in a room as an action (`/me waves` shows as
    /// `* alice waves`).
    Act {
        /// The room to act in.
        room: String,
        /// The seq of the message this one answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
    },
    /// Mark yourself away with a message, or back without one.
    Away {
        /// The away message; without it, you are back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// What the server says about a user.
    Whois {
        /// Who.
        nick: String,
    },
    /// Invite someone into a room you are in (operators only in an invite-only room).
    Invite {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Who.
        nick: String,
    },
    /// Register a room you operate (logged in): its operators, settings, bans, topic
    /// and history then outlive its members. A room a logged-in user creates is
    /// registered to them already (up to the server's limit per account).
    RoomRegister {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Unregister a room (its founder, or a server admin): its state goes when it
    /// empties.
    RoomUnregister {
        /// The room; without it, the room joined last.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Delete the account you are logged in to: its roles, private messages and files
    /// go, and its name is free again. Answered by [`Reply::Unregistered`].
    Unregister {
        /// The account's password, as proof.
        password: String,
    },
    /// Keep a nick (or account) or an address (an IPv6 address: its /64) off the server,
    /// and disconnect whoever it covers (server admins).
    ServerBan {
        /// A nick or an IP address.
        mask: String,
        /// For how many seconds (at most 3660 days); without it, until lifted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u64>,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Lift a server ban (server admins).
    ServerUnban {
        /// The nick or address.
        mask: String,
    },
    /// The server bans in force (server admins).
    ServerBans,
    /// Offer a file to a room (`room`) or to one user (`to`): the first step of an
    /// upload, answered by [`Reply::Upload`] with the file's id. The bytes follow in
    /// `chunk` requests.
    Upload {
        /// The room to share it in (one you are in).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The user to share it with privately.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The file's name, without any directory.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// Its media type, e.g. `application/pdf`.
        media_type: String,
        /// The SHA-256 of its bytes, 64 lowercase hex digits.
        sha256: String,
    },
    /// The next piece of the file being uploaded, in the payload (binary). The piece
    /// that completes the file is answered by [`Reply::Shared`], the others by
    /// [`Reply::Received`].
    Chunk {
        /// The upload's file id.
        file: String,
        /// Where the piece starts: the number of bytes sent before it.
        offset: u64,
    },
    /// Ask to download a shared file: answered by [`Reply::Download`] with its details,
    /// after which `read` requests fetch its bytes.
    Download {
        /// The file's id, from the message that shared it.
        file: String,
    },
    /// Read the piece of a downloading file that starts at `offset`: answered by a
    /// [`ServerMsg::Data`] frame carrying the bytes.
    Read {
        /// The file's id.
        file: String,
        /// Where the piece starts.
        offset: u64,
    },
    /// A small preview of a shared image (PNG, JPEG, GIF or WebP), at most 320 pixels
    /// on its long side, as a PNG: answered by one [`ServerMsg::Data`] frame (offset
    /// 0) carrying the whole thumbnail, with the same checks as `download`.
    Thumbnail {
        /// The file's id.
        file: String,
    },
    /// List the resume tokens of your account: answered by [`Reply::Sessions`].
    Sessions,
    /// Revoke one of your account's resume tokens: answered by [`Reply::Revoked`].
    RevokeSession {
        /// The token's id, from [`Reply::Sessions`] (not the token).
        session: u64,
    },
    /// Ask for a `pong` result; for latency and keepalive.
    Ping,
    /// Leave the chat; the server answers `bye` and closes the connection.
    Quit {
        /// Shown to others in place of the default "left the chat".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Request {
    /// The request's `type` string.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Join { .. } => "join",
            Request::Part { .. } => "part",
            Request::Say { .. } => "say",
            Request::Whisper { .. } => "whisper",
            Request::Typing { .. } => "typing",
            Request::React { .. } => "react",
            Request::Nick { .. } => "nick",
            Request::Who { .. } => "who",
            Request::Rooms => "rooms",
            Request::History { .. } => "history",
            Request::Conversation { .. } => "conversation",
            Request::Delete { .. } => "delete",
            Request::MarkRead { .. } => "mark_read",
            Request::Topic { .. } => "topic",
            Request::Audit { .. } => "audit",
            Request::Kick { .. } => "kick",
            Request::Ban { .. } => "ban",
            Request::Unban { .. } => "unban",
            Request::Mute { .. } => "mute",
            Request::Unmute { .. } => "unmute",
            Request::Op { .. } => "op",
            Request::Deop { .. } => "deop",
            Request::Search { .. } => "search",
            Request::Act { .. } => "act",
            Request::Away { .. } => "away",
            Request::Whois { .. } => "whois",
            Request::Invite { .. } => "invite",
            Request::Register { .. } => "register",
            Request::Auth { .. } => "auth",
            Request::Password { .. } => "password",
            Request::RoomRegister { .. } => "room_register",
            Request::RoomUnregister { .. } => "room_unregister",
            Request::Unregister { .. } => "unregister",
            Request::ServerBan { .. } => "server_ban",
            Request::ServerUnban { .. } => "server_unban",
            Request::ServerBans => "server_bans",
            Request::Upload { .. } => "upload",
            Request::Chunk { .. } => "chunk",
            Request::Download { .. } => "download",
            Request::Read { .. } => "read",
            Request::Thumbnail { .. } => "thumbnail",
            Request::Sessions => "sessions",
            Request::RevokeSession { .. } => "revoke_session",
            Request::Ping => "ping",
            Request::Quit { .. } => "quit",
        }
    }

    /// Reads the request in a decoded frame's header.
    pub fn from_frame(frame: &Frame) -> Result<Request, RequestError> {
        let Some(kind) = frame.envelope.kind.as_deref() else {
            return Err(RequestError::MissingType);
        };
        if !KNOWN_REQUESTS.contains(&kind) {
            return Err(RequestError::UnknownType(kind.to_owned()));
        }
        serde_json::from_slice(&frame.header).map_err(|e| RequestError::Invalid(e.to_string()))
    }
}

const KNOWN_REQUESTS: &[&str] = &[
    "hello",
    "join",
    "part",
    "say",
    "whisper",
    "typing",
    "react",
    "nick",
    "who",
    "rooms",
    "history",
    "conversation",
    "delete",
    "mark_read",
    "topic",
    "audit",
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "op",
    "deop",
    "search",
    "register",
    "auth",
    "password",
    "room_register",
    "room_unregister",
    "unregister",
    "server_ban",
    "server_unban",
    "server_bans",
    "act",
    "away",
    "whois",
    "invite",
    "upload",
    "chunk",
    "download",
    "read",
    "thumbnail",
    "sessions",
    "revoke_session",
    "ping",
    "quit",
];

/// Why a well-framed header is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The header has no `type`.
    #[error("the header has no \"type\"")]
    MissingType,
    /// The `type` is not one this server knows.
    #[error("unknown request type {0:?}")]
    UnknownType(String),
    /// A field is missing or has the wrong type.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// A request succeeded; the payload is its [`Reply`] as JSON.
    Result {
        /// The request's id.
        id: u64,
    },
    /// A request failed, or the connection did something wrong.
    Error {
        /// The request's id, when the error answers a request whose id could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
    /// Someone said the payload's text in a room.
    Message {
        /// The room.
        room: String,
        /// The sender's nick.
        from: String,
        /// The message's place in the room's order, from 1.
        seq: u64,
        /// When the server accepted it, RFC 3339 in UTC.
        ts: String,
        /// `action` (`/me`) or `notice`; absent for ordinary text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// The seq of the message this one answers, in the same room or conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// Tags the sender's client attached for other clients.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<BTreeMap<String, String>>,
    },
    /// Someone sent the payload's text privately.
    Whisper {
        /// Its place in the order of private messages (for `conversation` paging).
        #[serde(default)]
        seq: u64,
        /// The sender's nick.
        from: String,
        /// The receiver's nick.
        to: String,
        /// When the server accepted it, RFC 3339 in UTC.
        ts: String,
        /// `action` (`/me`) or `notice`; absent for ordinary text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// The seq of the message this one answers, in the same room or conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        /// Tags the sender's client attached for other clients.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<BTreeMap<String, String>>,
    },
    /// Someone in a room you are in, or in a conversation with you, is typing (or
    /// stopped). Show it for about 6 seconds unless `active` comes again; `done` ends it.
    Typing {
        /// The room; absent in a conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Who.
        from: String,
        /// `active`, `paused` or `done`.
        state: String,
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// Someone reacted to a message (or took the reaction back: `removed`).
    Reaction {
        /// The room; absent in a conversation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// In a conversation, the other user (for the sender's other sessions, the
        /// receiver; for the receiver, the sender).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// The message's seq.
        seq: u64,
        /// Who reacted.
        from: String,
        /// The reaction.
        reaction: String,
        /// True when the reaction was taken back.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        removed: bool,
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// You read further on another of your sessions: clear what is unread up to `ts`.
    Marker {
        /// The room, for a room's marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other user, for a conversation's marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Read up to this instant, RFC 3339 in UTC.
        ts: String,
    },
    /// A message of a room you are in was deleted: show it as deleted, or drop it.
    Deleted {
        /// The room.
        room: String,
        /// The deleted message's seq.
        seq: u64,
        /// Who deleted it.
        by: String,
        /// Who had said it.
        author: String,
        /// When it was said, RFC 3339 in UTC.
        said_ts: String,
        /// When it was deleted, RFC 3339 in UTC.
        ts: String,
        /// Why, if they said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Someone entered a room.
    Joined {
        /// The room.
        room: String,
        /// Who entered.
        nick: String,
        /// When, RFC 3339 in UTC.
        ts: String,
        /// True when this is their arrival on the server, not a move between rooms.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        arrival: bool,
    },
    /// Someone left a room.
    Left {
        /// The room.
        room: String,
        /// Who left.
        nick: String,
        /// When, RFC 3339 in UTC.
        ts: String,
        /// Why.
        reason: LeaveReason,
        /// Their quit message, or why the server disconnected them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Someone you share a room with changed nick.
    Nick {
        /// The old nick.
        old: String,
        /// The new nick.
        new: String,
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// The server has heard nothing from you for a while: send any request (`ping` is
    /// the usual one) or be disconnected when the idle timeout runs out.
    Ping {
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// Information for you alone; the payload is the text (e.g. that your nick is
    /// registered and you must log in, or that the server renamed you).
    Notice {
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// The answer to `read`: a piece of a file, in the payload (binary).
    Data {
        /// The `read` request's id.
        id: u64,
        /// The file's id.
        file: String,
        /// Where the piece starts in the file.
        offset: u64,
    },
    /// The server is shutting down and will close the connection.
    Shutdown {
        /// Why, for people.
        message: String,
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// A type this version does not know. The protocol grows by adding types, so a client
    /// ignores these instead of failing; the server never sends this variant itself.
    #[serde(other)]
    Unknown,
}

/// Why someone left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left the room and are still on the server.
    Part,
    /// They left the chat.
    Quit,
    /// Their connection was lost or closed by the server.
    Lost,
    /// An operator put them out of the room; `detail` says who and why.
    Kicked,
}

/// The body of a `result`: what the request achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// The answer to `hello`: you are in.
    Welcome {
        /// The protocol version the server speaks.
        version: u32,
        /// The nick you have.
        nick: String,
        /// The room you were put in.
        room: String,
        /// Who is in it, you included, sorted.
        members: Vec<String>,
        /// The longest message text the server accepts, in bytes.
        max_text: usize,
        /// The room's latest messages, oldest first: what was said before you came.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        history: Vec<HistoryEntry>,
        /// The room's topic, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Where the client can reach every node of the server's cluster, to move to
        /// another when this one goes away: `HOST:PORT` for native clients, full
        /// `http(s)://` URLs for browsers. Empty (and absent) for a server alone.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<String>,
    },
    /// The answer to `join`.
    Joined {
        /// The room's name as the server spells it.
        room: String,
        /// Who is in it, you included, sorted.
        members: Vec<String>,
        /// The room's latest messages, oldest first: what was said before you came.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        history: Vec<HistoryEntry>,
        /// The room's topic, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Your read marker in it (RFC 3339 in UTC), if you have one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<String>,
    },
    /// The answer to `mark_read`: your read marker there now (absent: none yet).
    Marker {
        /// The room, for a room's marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The other user, for a conversation's marker.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        /// Read up to this instant, RFC 3339 in UTC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// The answer to `delete`: the message is gone, and the members told.
    Deleted {
        /// The room.
        room: String,
        /// The deleted message's seq.
        seq: u64,
    },
    /// The answer to `topic` without a new topic.
    Topic {
        /// The room.
        room: String,
        /// The topic; absent when the room has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Who set it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// When, RFC 3339 in UTC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<String>,
    },
    /// The answer to `audit`: newest first.
    Audit {
        /// The lines.
        entries: Vec<AuditEntry>,
    },
    /// The answer to a moderation request (`topic` with a topic, `kick`, `ban`, ...).
    Moderated {
        /// The request's type.
        action: String,
        /// The room.
        room: String,
        /// Whom it concerned (or the new topic).
        target: String,
    },
    /// The answer to `history`.
    History {
        /// The room.
        room: String,
        /// The page, oldest first; empty when there is nothing more.
        messages: Vec<HistoryEntry>,
    },
    /// The answer to `part`.
    Parted {
        /// The room you left.
        room: String,
    },
    /// The answer to `say`: the message is accepted and ordered.
    Said {
        /// The room.
        room: String,
        /// Its place in the room's order.
        seq: u64,
        /// The server's timestamp, RFC 3339 in UTC.
        ts: String,
    },
    /// The answer to `whisper`: delivered to the receiver's queue.
    Whispered {
        /// The receiver's nick.
        to: String,
        /// The server's timestamp, RFC 3339 in UTC.
        ts: String,
        /// Its place in the order of private messages (0 from servers before it was
        /// sent).
        #[serde(default)]
        seq: u64,
    },
    /// The answer to `typing` and `react`: the room's members, or the other user, were
    /// told.
    Signalled {
        /// When, RFC 3339 in UTC.
        ts: String,
    },
    /// The answer to `who`.
    Who {
        /// The room.
        room: String,
        /// Who is in it, sorted.
        members: Vec<String>,
    },
    /// The answer to `rooms`.
    Rooms {
        /// Every room with at least one member, sorted by name.
        rooms: Vec<RoomInfo>,
    },
    /// The answer to `nick`.
    Nick {
        /// The nick you have now.
        nick: String,
    },
    /// The answer to `conversation`.
    Conversation {
        /// The other party.
        with: String,
        /// The page, oldest first; `from` tells who wrote each.
        messages: Vec<HistoryEntry>,
    },
    /// The answer to `search`.
    Found {
        /// The query as given.
        query: String,
        /// The page, from 1.
        page: u32,
        /// The messages found, best match first; fewer than 20 means there are no more.
        results: Vec<SearchHit>,
    },
    /// The answer to `register`: your nick is now an account and you are logged in.
    Registered {
        /// The account's name.
        account: String,
    },
    /// The answer to `auth`: you are logged in, and the account's nick is yours.
    LoggedIn {
        /// The account's name.
        account: String,
        /// Your nick now.
        nick: String,
    },
    /// The answer to `password`.
    PasswordChanged,
    /// The answer to `unregister`: the account is gone, and you are a guest.
    Unregistered {
        /// The account's name, free again.
        account: String,
    },
    /// The answer to `server_bans`.
    ServerBans {
        /// The bans in force.
        bans: Vec<ServerBanInfo>,
    },
    /// The answer to `server_ban` and `server_unban`.
    ServerModerated {
        /// The request's type.
        action: String,
        /// Whom it concerned.
        target: String,
    },
    /// The answer to `away`.
    Away {
        /// Whether you are marked away now.
        away: bool,
    },
    /// The answer to `whois`.
    Whois {
        /// Their nick.
        nick: String,
        /// The account they are logged in to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        /// The rooms you may see them in; operators' with `@` in front.
        rooms: Vec<String>,
        /// When they connected, RFC 3339 in UTC.
        since: String,
        /// Seconds since they last said something.
        idle_secs: u64,
        /// Their away message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        away: Option<String>,
        /// A server administrator.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        admin: bool,
    },
    /// The answer to `invite`.
    Invited {
        /// Who was invited.
        nick: String,
        /// Where to.
        room: String,
    },
    /// The answer to `upload`: send the bytes in `chunk` requests.
    Upload {
        /// The id the file will be known by.
        file: String,
        /// The most bytes one `chunk` may carry.
        chunk: usize,
    },
    /// The answer to a `chunk` that does not complete the file.
    Received {
        /// The file's id.
        file: String,
        /// How many of its bytes the server holds now.
        received: u64,
    },
    /// The answer to the `chunk` that completes the file: it checked out and is shared.
    Shared {
        /// The file's id.
        file: String,
        /// The room it was shared in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The user it was shared with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The message's place in the room's order (or in the order of private messages).
        seq: u64,
        /// When the server accepted it, RFC 3339 in UTC.
        ts: String,
    },
    /// The answer to `download`: the file's details; fetch its bytes with `read`.
    Download {
        /// What the file is.
        #[serde(flatten)]
        info: FileInfo,
        /// Who shared it.
        from: String,
        /// The most bytes one `data` frame carries.
        chunk: usize,
        /// The most `read` requests to have unanswered at once; more may overflow the
        /// send queue and cost the connection.
        window: usize,
    },
    /// The answer to `sessions`: your account's resume tokens, most recently used
    /// first.
    Sessions {
        /// The tokens (never the tokens themselves: their ids and what is known of them).
        sessions: Vec<SessionEntry>,
    },
    /// The answer to `revoke_session`: the token no longer logs anyone in.
    Revoked {
        /// Its id.
        session: u64,
    },
    /// The answer to `ping`.
    Pong,
    /// The answer to `quit`; the server closes the connection after it.
    Bye,
}

/// One resume token of an account, as `sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// Its id, to revoke it by.
    pub id: u64,
    /// When it was issued, RFC 3339 in UTC.
    pub created: String,
    /// When it was last used (to log in, or to fetch a file), RFC 3339 in UTC.
    pub last_used: String,
    /// Where it was issued: gateway, address, user agent when known.
    pub description: String,
    /// This connection logged in with it, or was given it.
    pub current: bool,
}

/// The login options a `hello`, `auth` or `register` may carry beside its own fields:
/// `remember` asks for a resume token (returned as `token` in the result's body);
/// `token` (on `hello`, instead of `password`) logs in with one; `resume` (on `hello`
/// over WebSocket) logs in with the `parley_session` cookie of the upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOptions {
    /// Issue a resume token on success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remember: bool,
    /// Log in with this resume token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Log in with the WebSocket upgrade's session cookie.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
}

impl LoginOptions {
    /// The options of a request frame's header; none when it has none (or they are not
    /// well typed, which the request itself reports).
    #[must_use]
    pub fn from_frame(frame: &Frame) -> LoginOptions {
        serde_json::from_slice(&frame.header).unwrap_or_default()
    }
}

/// Appends a request frame with its `id` and login options to `dst`.
pub fn encode_request_with(
    id: u64,
    request: &Request,
    options: &LoginOptions,
    payload: &[u8],
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct WithOptions<'a> {
        #[serde(flatten)]
        request: &'a Request,
        #[serde(flatten)]
        options: &'a LoginOptions,
        id: u64,
    }
    encode_frame(&WithOptions { request, options, id }, Some(TEXT), payload, dst)
}

/// Appends a `result` frame answering request `id` with `reply` and the resume token
/// issued with it (a body field `token` beside the reply's own).
pub fn encode_result_with_token(id: u64, reply: &Reply, token: &str, dst: &mut BytesMut) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct WithToken<'a> {
        #[serde(flatten)]
        reply: &'a Reply,
        token: &'a str,
    }
    let body = serde_json::to_vec(&WithToken { reply, token })?;
    encode_frame(&ServerMsg::Result { id }, Some(JSON), &body, dst)
}

/// A shared file, as its message announces it: the text of a message of kind `file`
/// is this object as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// The id to `download` it by.
    pub file: String,
    /// Its name, without any directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The SHA-256 of its bytes, in lowercase hex.
    pub sha256: String,
}

impl FileInfo {
    /// Reads the text of a message of kind `file`; `None` if it is not a description.
    #[must_use]
    pub fn from_text(text: &str) -> Option<FileInfo> {
        serde_json::from_str(text).ok()
    }
}

/// A message from a room's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Its place in the room's order.
    pub seq: u64,
    /// The sender's nick.
    pub from: String,
    /// When the server accepted it, RFC 3339 in UTC.
    pub ts: String,
    /// `action` (`/me`) or `notice`; absent for ordinary text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The text.
    pub text: String,
    /// The seq of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// Tags the sender's client attached for other clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// A size for people: `512 B`, `1.2 KB`, `3.4 MB`, `1.1 GB` (powers of 1000, like
/// most file managers), the same in every gateway and client.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    // Precision is irrelevant past the first decimal.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When, RFC 3339 in UTC.
    pub ts: String,
    /// Who acted.
    pub actor: String,
    /// What (`ban`, `kick`, `topic`, `op`, `grant admin`, ...).
    pub action: String,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// On whom or what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Reason, duration, or the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A message found by `search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The room it was said in; absent for a private message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Its place in the room's order (0 for a private message): ask `history` with
    /// `before: seq + 6, limit: 11` for the messages around it.
    pub seq: u64,
    /// The sender's nick.
    pub from: String,
    /// The receiver of a private message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// When the server accepted it, RFC 3339 in UTC.
    pub ts: String,
    /// The text.
    pub text: String,
}

/// One line of the room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The room's name.
    pub name: String,
    /// How many users are in it.
    pub members: usize,
    /// Whether you are one of them.
    pub joined: bool,
}

/// One server ban, as `server_bans` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBanInfo {
    /// The nick or address (an IPv6 address stands for its /64).
    pub mask: String,
    /// When it ends (RFC 3339, UTC); absent: until lifted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The stable error codes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The header is not a JSON object with well-typed framing fields; the server closes
    /// the connection.
    BadHeader,
    /// The header length is over the limit; the server closes the connection.
    HeaderTooLong,
    /// The payload is over the limit; the server skipped it.
    PayloadTooLarge,
    /// The request's `type` is missing or unknown.
    UnknownType,
    /// A field is missing or has the wrong type.
    BadRequest,
    /// A text payload is not valid UTF-8.
    BadPayload,
    /// The request needs a completed `hello` first.
    NotRegistered,
    /// `hello` was sent twice.
    AlreadyRegistered,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// Someone else has that nick.
    NickTaken,
    /// The nick is not valid (length, characters).
    InvalidNick,
    /// The room name is not valid (length, characters).
    InvalidRoom,
    /// Nobody has that nick.
    NoSuchNick,
    /// No room has that name.
    NoSuchRoom,
    /// You are not in that room (or in any room).
    NotInRoom,
    /// The message text is empty.
    EmptyMessage,
    /// The message text is over the limit.
    MessageTooLong,
    /// Client tags over the limits (32 tags, 4094 bytes), or one with a name or value
    /// that may not be relayed.
    BadTags,
    /// A reaction that is empty, over 64 bytes, or has control characters.
    BadReaction,
    /// The server is shutting down.
    ShuttingDown,
    /// This server keeps no accounts.
    AccountsUnavailable,
    /// The nick is registered already.
    AccountExists,
    /// Wrong account name or password.
    BadLogin,
    /// The request needs you to be logged in.
    NotLoggedIn,
    /// The password is shorter than 8 characters or longer than 1024 bytes.
    WeakPassword,
    /// The nick belongs to an account you are not logged in to.
    NickRegistered,
    /// The server is busy checking other passwords; try again.
    Busy,
    /// Only the room's operators and server admins may do that.
    NotOperator,
    /// Only server admins may do that.
    NotAdmin,
    /// You are banned from that room (from `lobby`: from the server).
    Banned,
    /// You are muted in that room.
    Muted,
    /// The user named is not in that room.
    NotHere,
    /// There is no account of that name.
    NoSuchAccount,
    /// A ban mask that is neither a nick nor an IP address.
    BadMask,
    /// This server keeps no history to search.
    HistoryUnavailable,
    /// The search query cannot be read (no word, or a malformed filter).
    BadSearch,
    /// The message could not be stored in the history (a full disk, a locked
    /// database), so it was not sent.
    StoreFailed,
    /// A server of a cluster could not hand the message to the cluster (it cannot
    /// reach it), so it was not sent; the client may send it again, here or to
    /// another of the cluster's servers.
    ClusterUnreachable,
    /// The cluster did not confirm the message in time: it may have been sent or not.
    /// If it was, it arrives as any message does.
    Unconfirmed,
    /// You are already in as many rooms as the server allows.
    TooManyRooms,
    /// You sent faster than the server's flood limit for too long; the server closes
    /// the connection.
    ExcessFlood,
    /// The server has as many connections as it allows; it closes the connection.
    ServerFull,
    /// Your address has as many connections as the server allows; it closes the
    /// connection.
    TooManyConnections,
    /// Too many failed logins from your address (or for that account from it): wait
    /// before trying again.
    TooManyAttempts,
    /// You are banned from the server; it closes the connection.
    ServerBanned,
    /// A ban or mute longer than the server allows (3660 days).
    TooLong,
    /// The ban list is full.
    TooManyBans,
    /// A new room's name looks like an existing room's (Cyrillic `а` for Latin `a`).
    RoomLookalike,
    /// The room is registered already.
    RoomRegistered,
    /// The room is not registered.
    RoomNotRegistered,
    /// You have registered as many rooms as the server allows.
    TooManyRegistered,
    /// Only the room's founder (or a server admin) may do that.
    NotFounder,
    /// The server could not read its history; nothing changed.
    StoreUnreadable,
    /// The file is larger than the server accepts.
    FileTooLarge,
    /// The file would take you over your storage quota.
    QuotaExceeded,
    /// No shared file has that id, or you may not see it.
    NoSuchFile,
    /// The bytes received do not have the SHA-256 announced; nothing was kept.
    ChecksumMismatch,
    /// This server does not take files, or cannot store them now.
    FilesUnavailable,
    /// The room has no message with that seq (or none you may see, or it was deleted).
    NoSuchMessage,
    /// Only a message's author, the room's operators and server admins may delete it.
    NotAuthor,
    /// The resume token is unknown, revoked or expired: log in with the password.
    BadToken,
    /// Your account has no resume token with that id.
    NoSuchSession,
    /// The resume token this connection logged in with was revoked (by its owner, from
    /// another connection, or by a browser logging out), or the account's password was
    /// changed from another connection: the server closes the connection. Log in again
    /// with the password.
    SignedOut,
    /// The file is not an image the server makes thumbnails of (PNG, JPEG, GIF, WebP),
    /// or it could not be decoded within the limits.
    NotAnImage,
    /// A code this client does not know yet (servers may add codes).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, `Unknown` last (it is what a client reads a code it does not know
    /// as; servers do not send it).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadHeader,
        ErrorCode::HeaderTooLong,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownType,
        ErrorCode::BadRequest,
        ErrorCode::BadPayload,
        ErrorCode::NotRegistered,
        ErrorCode::AlreadyRegistered,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NickTaken,
        ErrorCode::InvalidNick,
        ErrorCode::InvalidRoom,
        ErrorCode::NoSuchNick,
        ErrorCode::NoSuchRoom,
        ErrorCode::NotInRoom,
        ErrorCode::EmptyMessage,
        ErrorCode::MessageTooLong,
        ErrorCode::BadTags,
        ErrorCode::BadReaction,
        ErrorCode::ShuttingDown,
        ErrorCode::StoreFailed,
        ErrorCode::ClusterUnreachable,
        ErrorCode::Unconfirmed,
        ErrorCode::AccountsUnavailable,
        ErrorCode::AccountExists,
        ErrorCode::BadLogin,
        ErrorCode::NotLoggedIn,
        ErrorCode::WeakPassword,
        ErrorCode::NickRegistered,
        ErrorCode::Busy,
        ErrorCode::HistoryUnavailable,
        ErrorCode::BadSearch,
        ErrorCode::NotOperator,
        ErrorCode::NotAdmin,
        ErrorCode::Banned,
        ErrorCode::Muted,
        ErrorCode::NotHere,
        ErrorCode::NoSuchAccount,
        ErrorCode::BadMask,
        ErrorCode::TooManyRooms,
        ErrorCode::ExcessFlood,
        ErrorCode::ServerFull,
        ErrorCode::TooManyConnections,
        ErrorCode::TooManyAttempts,
        ErrorCode::ServerBanned,
        ErrorCode::TooLong,
        ErrorCode::TooManyBans,
        ErrorCode::RoomLookalike,
        ErrorCode::RoomRegistered,
        ErrorCode::RoomNotRegistered,
        ErrorCode::TooManyRegistered,
        ErrorCode::NotFounder,
        ErrorCode::StoreUnreadable,
        ErrorCode::FileTooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::NoSuchFile,
        ErrorCode::ChecksumMismatch,
        ErrorCode::FilesUnavailable,
        ErrorCode::NoSuchMessage,
        ErrorCode::NotAuthor,
        ErrorCode::BadToken,
        ErrorCode::NoSuchSession,
        ErrorCode::SignedOut,
        ErrorCode::NotAnImage,
        ErrorCode::Unknown,
    ];
}

/// Appends a request frame with its `id` to `dst`.
pub fn encode_request(id: u64, request: &Request, payload: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct WithId<'a> {
        #[serde(flatten)]
        request: &'a Request,
        id: u64,
    }
    encode_frame(&WithId { request, id }, Some(TEXT), payload, dst)
}

/// Appends a server message frame to `dst`; a non-empty payload is text.
pub fn encode_server_msg(msg: &ServerMsg, text: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    encode_frame(msg, Some(TEXT), text, dst)
}

/// Appends a `data` frame answering the `read` request `id` with a piece of `file`.
pub fn encode_data(id: u64, file: &str, offset: u64, bytes: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    encode_frame(&ServerMsg::Data { id, file: file.to_owned(), offset }, Some(BINARY), bytes, dst)
}

/// Appends a `chunk` request frame with its `id` carrying a piece of an upload.
pub fn encode_chunk(id: u64, file: &str, offset: u64, bytes: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    #[derive(Serialize)]
    struct WithId<'a> {
        #[serde(flatten)]
        request: &'a Request,
        id: u64,
    }
    let request = Request::Chunk { file: file.to_owned(), offset };
    encode_frame(&WithId { request: &request, id }, Some(BINARY), bytes, dst)
}

/// Appends a `result` frame answering request `id` with `reply` to `dst`.
pub fn encode_result(id: u64, reply: &Reply, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let body = serde_json::to_vec(reply)?;
    encode_frame(&ServerMsg::Result { id }, Some(JSON), &body, dst)
}

/// Why a frame's header is not a server message.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// A JSON header that is no server message.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A compact header that could not be read.
    #[error(transparent)]
    Compact(#[from] crate::compact::CompactError),
}

/// A server message read back from a frame, with its payload: what a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The header.
    pub msg: ServerMsg,
    /// The payload (message text, or the JSON of a reply).
    pub payload: Bytes,
}

impl Received {
    /// Reads a server message from a decoded frame, its header JSON or compact.
    pub fn from_frame(frame: Frame) -> Result<Received, ReceiveError> {
        let msg = match frame.header.first() {
            Some(&first) if crate::compact::is_compact(first) => {
                crate::compact::decode(&frame.header)?.to_server_msg()?
            }
            _ => serde_json::from_slice(&frame.header)?,
        };
        Ok(Received { msg, payload: frame.payload })
    }

    /// The reply carried by a `result`.
    pub fn reply(&self) -> Result<Reply, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// The resume token a `result` carries beside its reply, if any.
    #[must_use]
    pub fn token(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
        }
        serde_json::from_slice::<Token>(&self.payload).ok()?.token
    }

    /// The payload as text, replacing invalid UTF-8.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::FrameDecoder;

    fn one_frame(buf: &mut BytesMut) -> Frame {
        FrameDecoder::new(65_535, 1 << 20).decode(buf).expect("valid").expect("whole")
    }

    #[test]
    fn requests_round_trip_with_their_id() {
        let requests = [
            Request::Hello { version: 1, nick: "alice".into(), password: None },
            Request::Join { room: "dev".into() },
            Request::Part { room: None },
            Request::Say { room: "lobby".into(), reply_to: None, tags: None },
            Request::Say {
                room: "lobby".into(),
                reply_to: Some(12),
                tags: Some([("example.com/x".to_owned(), "1".to_owned())].into()),
            },
            Request::Whisper { to: "bob".into(), reply_to: None, tags: None },
            Request::Typing { room: Some("dev".into()), to: None, state: "active".into() },
            Request::React { room: None, with: Some("bob".into()), seq: 3, reaction: "👍".into(), remove: true },
            Request::Nick { nick: "al".into() },
            Request::Who { room: "lobby".into() },
            Request::Rooms,
            Request::Ping,
            Request::Quit { reason: Some("bye".into()) },
        ];
        for (id, request) in (1..).zip(requests) {
            let mut buf = BytesMut::new();
            encode_request(id, &request, b"text", &mut buf).expect("encodes");
            let frame = one_frame(&mut buf);
            assert_eq!(frame.envelope.id, Some(id));
            assert_eq!(frame.envelope.kind.as_deref(), Some(request.kind()));
            assert_eq!(Request::from_frame(&frame), Ok(request));
            assert_eq!(&frame.payload[..], b"text");
        }
    }

    #[test]
    fn unknown_and_invalid_requests_are_told_apart() {
        let mut buf = BytesMut::new();
        encode_frame(&serde_json::json!({"type": "dance", "id": 3}), None, b"", &mut buf).expect("encodes");
        assert_eq!(Request::from_frame(&one_frame(&mut buf)), Err(RequestError::UnknownType("dance".into())));
        encode_frame(&serde_json::json!({"type": "join", "id": 4}), None, b"", &mut buf).expect("encodes");
        assert!(matches!(Request::from_frame(&one_frame(&mut buf)), Err(RequestError::Invalid(_))));
        encode_frame(&serde_json::json!({"id": 5}), None, b"", &mut buf).expect("encodes");
        assert_eq!(Request::from_frame(&one_frame(&mut buf)), Err(RequestError::MissingType));
    }

    #[test]
    fn results_carry_their_reply_as_json() {
        let reply = Reply::Who { room: "lobby".into(), members: vec!["alice".into(), "bob".into()] };
        let mut buf = BytesMut::new();
        encode_result(9, &reply, &mut buf).expect("encodes");
        let frame = one_frame(&mut buf);
        assert_eq!(frame.envelope.content_type.as_deref(), Some(JSON));
        let received = Received::from_frame(frame).expect("valid");
        assert_eq!(received.msg, ServerMsg::Result { id: 9 });
        assert_eq!(received.reply().expect("a reply"), reply);
    }

    #[test]
    fn unknown_message_types_read_as_unknown() {
        let msg: ServerMsg = serde_json::from_str(r#"{"type":"sticker","room":"lobby"}"#).expect("parses");
        assert_eq!(msg, ServerMsg::Unknown);
        let known: Result<ServerMsg, _> = serde_json::from_str(r#"{"type":"message","room":"lobby"}"#);
        assert!(known.is_err(), "a known type with missing fields is still an error");
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1234), "1.2 KB");
        assert_eq!(human_size(52_428_800), "52.4 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }

    #[test]
    fn unknown_error_codes_do_not_break_old_clients() {
        let code: ErrorCode = serde_json::from_str("\"rate_limited_someday\"").expect("parses");
        assert_eq!(code, ErrorCode::Unknown);
    }
}
