//! The native framed protocol: `hello` handshake, then requests with ids, each answered
//! by exactly one `result` or `error`, and server events with UTC timestamps and per-room
//! sequence numbers. Specified in docs/PROTOCOL.md.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{SecondsFormat, Utc};
use parley_hub::{
    Action, ClientTags, Command, Cursor, Event, HubError, Kind, LeaveReason, MarkTarget, Marked, Member, Meta,
    Reaction, Record, Reply, RequestId, ServerAction, Signal, Timestamp, Typing, Wire,
};
use parley_proto::msg::{
    self, AuditEntry, ErrorCode, HistoryEntry, LoginOptions, Request, RequestError, RoomInfo, SearchHit, ServerMsg,
    SessionEntry, OLDEST_VERSION, PROTOCOL_VERSION,
};
use parley_proto::native::{Frame, FrameDecoder, FrameError};

use super::{words, Connect, Dialogue, Ending, Farewell, Protocol, ReadEnd, Refusal, Turn};
use crate::server::{Shared, SHUTDOWN_MESSAGE};

mod transfer;

use transfer::{Outcome, Transfers};

/// Native sessions of version 1 share the second slot of an event's encoding cache,
/// those of version 2 the fifth.
const CACHE_SLOT: usize = 1;
const COMPACT_CACHE_SLOT: usize = 4;

/// Messages in a `history` page when the request names no limit.
const DEFAULT_HISTORY_PAGE: usize = 50;

/// What a WebSocket's upgrade request said that a native session uses: the session
/// cookie (for a `hello` with `resume`) and the user agent (for tokens' descriptions).
#[derive(Debug, Clone, Default)]
pub(crate) struct Upgrade {
    /// The `parley_session` cookie's value.
    pub(crate) cookie: Option<String>,
    /// The `User-Agent` header.
    pub(crate) user_agent: Option<String>,
}

tokio::task_local! {
    /// Set by the HTTP gateway around a `/ws` session: what its upgrade request said.
    pub(crate) static UPGRADE: Upgrade;
}

/// What one frame asks for, once checked.
pub(crate) enum Inbound {
    Request {
        id: u64,
        request: Request,
        payload: Bytes,
        /// The login options of a `hello`, `auth` or `register` (boxed: nearly always
        /// absent).
        options: Option<Box<LoginOptions>>,
    },
    /// A bad frame, already answered; the connection goes on.
    Answered(Bytes),
    /// A bad frame after which the stream cannot be trusted.
    Fatal(Bytes, String),
}

/// The next frame, checked; `None` when more bytes are needed. A peer that stops
/// mid-frame simply leaves: there is nobody to answer.
fn next_inbound(buf: &mut BytesMut, decoder: &mut FrameDecoder) -> Option<Inbound> {
    match decoder.decode(buf) {
        Ok(Some(frame)) => Some(check(&frame)),
        Ok(None) => None,
        Err(e) => {
            let (id, code) = match &e {
                FrameError::HeaderTooLong { .. } => (None, ErrorCode::HeaderTooLong),
                FrameError::MalformedHeader(_) => (None, ErrorCode::BadHeader),
                FrameError::PayloadTooLarge { id, .. } => (*id, ErrorCode::PayloadTooLarge),
            };
            let reply = error_frame(id, code, &e.to_string());
            Some(if e.is_fatal() { Inbound::Fatal(reply, e.to_string()) } else { Inbound::Answered(reply) })
        }
    }
}

fn check(frame: &Frame) -> Inbound {
    let id = frame.envelope.id.unwrap_or(0);
    match Request::from_frame(frame) {
        Ok(request) => {
            let options = matches!(request, Request::Hello { .. } | Request::Auth { .. } | Request::Register { .. })
                .then(|| LoginOptions::from_frame(frame))
                .filter(|options| *options != LoginOptions::default())
                .map(Box::new);
            Inbound::Request { id, request, payload: frame.payload.clone(), options }
        }
        Err(e) => {
            let code = match e {
                RequestError::MissingType | RequestError::UnknownType(_) => ErrorCode::UnknownType,
                RequestError::Invalid(_) => ErrorCode::BadRequest,
            };
            Inbound::Answered(error_frame(Some(id), code, &e.to_string()))
        }
    }
}

/// The native protocol, for the connection driver.
pub(crate) struct Native {
    decoder: FrameDecoder,
    /// Made at the first transfer request: most connections never send a file, and
    /// this state would otherwise sit in every connection's task.
    transfers: Option<Box<Transfers>>,
    /// Who the client is, boxed: a pointer in every connection's task instead of 40
    /// bytes, which keeps the task within tokio's 1,024-byte step (docs/BENCHMARKS.md).
    client: Box<Client>,
}

/// What a native session knows of its client.
struct Client {
    /// The id of the `hello` being answered, while registering.
    hello: u64,
    /// The client's address, for tokens' descriptions.
    peer: IpAddr,
    /// What the WebSocket upgrade said, for a `/ws` session.
    upgrade: Option<Upgrade>,
    /// The protocol version the client's `hello` asked for.
    version: u32,
    /// The cluster's nodes, for the `welcome`.
    nodes: Arc<[String]>,
}

impl Protocol for Native {
    type Input = Inbound;
    const PINGS: bool = true;

    fn new(peer: SocketAddr, shared: &Shared) -> Native {
        let limits = &shared.limits;
        Native {
            decoder: FrameDecoder::new(limits.max_frame_header, limits.max_frame_payload),
            transfers: None,
            client: Box::new(Client {
                hello: 0,
                peer: peer.ip(),
                upgrade: UPGRADE.try_with(Clone::clone).ok(),
                version: OLDEST_VERSION,
                nodes: shared.nodes.clone(),
            }),
        }
    }

    fn wire(&self) -> Box<dyn Wire> {
        let nodes = self.client.nodes.clone();
        if self.client.version >= 2 {
            Box::new(NativeWire::<2> { nodes })
        } else {
            Box::new(NativeWire::<1> { nodes })
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Option<Inbound> {
        next_inbound(buf, &mut self.decoder)
    }

    /// Until a `hello` is accepted.
    async fn register(&mut self, inbound: Inbound, out: &mut BytesMut, _: &Shared) -> Dialogue {
        let answer = match inbound {
            Inbound::Answered(bytes) => bytes,
            Inbound::Fatal(bytes, why) => {
                out.extend_from_slice(&bytes);
                return Dialogue::End(Ending::Protocol(why));
            }
            Inbound::Request { id, request: Request::Hello { version, nick, password }, options, .. } => {
                if !(OLDEST_VERSION..=PROTOCOL_VERSION).contains(&version) {
                    let why = format!(
                        "this server speaks protocol versions {OLDEST_VERSION} to {PROTOCOL_VERSION}, not {version}"
                    );
                    error_frame(Some(id), ErrorCode::UnsupportedVersion, &why)
                } else {
                    self.client.version = version;
                    match self.hello(id, nick, password, options.map(|o| *o).unwrap_or_default()) {
                        Ok(connect) => {
                            self.client.hello = id;
                            return Dialogue::Connect(connect);
                        }
                        Err(answer) => answer,
                    }
                }
            }
            Inbound::Request { id, request, .. } => {
                let why = format!("send hello before {}", request.kind());
                error_frame(Some(id), ErrorCode::NotRegistered, &why)
            }
        };
        out.extend_from_slice(&answer);
        Dialogue::Continue
    }

    fn refused(&mut self, error: &HubError, out: &mut BytesMut) -> bool {
        out.extend_from_slice(&hub_error_frame(self.client.hello, error));
        !matches!(error, HubError::ServerBanned { .. })
    }

    /// Turns a request into a hub command.
    async fn handle(&mut self, inbound: Inbound, turn: &mut Turn<'_>) -> Result<(), ReadEnd> {
        let transfers = self.transfers.as_deref();
        let streaming = matches!(&inbound, Inbound::Request { request, payload, .. }
            if transfers.is_some_and(|t| t.streaming(request, payload)));
        if !streaming {
            turn.pace().await?;
        }
        let session = turn.session;
        let (id, request, payload, options) = match inbound {
            Inbound::Request { id, request, payload, options } => (id, request, payload, options),
            Inbound::Answered(bytes) => {
                tracing::info!(session = ?session.id(), "bad request answered with an error");
                return turn.relay(bytes).await;
            }
            Inbound::Fatal(bytes, why) => {
                tracing::info!(session = ?session.id(), "closing after a protocol error: {why}");
                let _ = turn.relay(bytes).await;
                return Err(ReadEnd::Fatal(why));
            }
        };
        let req = RequestId(id);
        let text = || match std::str::from_utf8(&payload) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(error_frame(Some(id), ErrorCode::BadPayload, "the text is not valid UTF-8")),
        };
        let command = match request {
            Request::Hello { .. } => {
                Err(error_frame(Some(id), ErrorCode::AlreadyRegistered, "hello was already accepted"))
            }
            Request::Join { room } => Ok(Command::Join { room, exclusive: false, key: None }),
            Request::Part { room } => Ok(Command::Part { room, reason: None }),
            Request::Say { room, reply_to, tags } => text().and_then(|text| {
                let meta = meta(id, reply_to, tags)?;
                Ok(Command::Say { room: Some(room), kind: Kind::Text, text, meta })
            }),
            Request::Whisper { to, reply_to, tags } => text().and_then(|text| {
                let meta = meta(id, reply_to, tags)?;
                Ok(Command::Whisper { to, kind: Kind::Text, text, meta })
            }),
            Request::Typing { room, to, state } => typing(id, room, to, &state),
            Request::React { room, with, seq, reaction, remove } => react(id, room, with, seq, reaction, remove),
            Request::Nick { nick } => Ok(Command::Nick { nick }),
            Request::Who { room } => Ok(Command::Who { room: Some(room) }),
            Request::Rooms => Ok(Command::Rooms),
            Request::History { room, before, after, limit } => {
                let limit = limit.map_or(DEFAULT_HISTORY_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX));
                match cursor(before, after) {
                    Some(cursor) => Ok(Command::History { room, cursor, limit }),
                    None => Err(error_frame(Some(id), ErrorCode::BadRequest, "give before or after, not both")),
                }
            }
            Request::Conversation { with, before, after, limit } => {
                let limit = limit.map_or(DEFAULT_HISTORY_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX));
                match cursor(before, after) {
                    Some(cursor) => Ok(Command::Conversation { with, cursor, limit }),
                    None => Err(error_frame(Some(id), ErrorCode::BadRequest, "give before or after, not both")),
                }
            }
            Request::MarkRead { room, with, ts } => mark_read(id, room, with, ts.as_deref()),
            Request::Delete { room, seq, reason } => Ok(Command::Delete { room: Some(room), seq, reason }),
            Request::Topic { room, topic } => Ok(Command::Topic { room, text: topic }),
            Request::Audit { limit } => Ok(Command::Audit {
                limit: limit.map_or(DEFAULT_HISTORY_PAGE, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            }),
            Request::Kick { room, nick, reason } => {
                Ok(Command::Moderate { room, action: Action::Kick { nick, reason } })
            }
            Request::Ban { room, mask, seconds, reason } => {
                let duration = seconds.map(Duration::from_secs);
                Ok(Command::Moderate { room, action: Action::Ban { mask: words::bare_mask(&mask), duration, reason } })
            }
            Request::Unban { room, mask } => {
                Ok(Command::Moderate { room, action: Action::Unban { mask: words::bare_mask(&mask) } })
            }
            Request::Mute { room, nick, seconds } => Ok(Command::Moderate {
                room,
                action: Action::Mute { nick, duration: seconds.map(Duration::from_secs) },
            }),
            Request::Unmute { room, nick } => Ok(Command::Moderate { room, action: Action::Unmute { nick } }),
            Request::Op { room, nick } => Ok(Command::Moderate { room, action: Action::Op { nick } }),
            Request::Deop { room, nick } => Ok(Command::Moderate { room, action: Action::Deop { nick } }),
            Request::Search { query, page } => Ok(Command::Search {
                query: match page {
                    Some(page) => format!("{query} page:{page}"),
                    None => query,
                },
            }),
            Request::Register { password } => Ok(self.remember(Command::Register { password }, options.as_deref())),
            Request::Auth { name, password } => {
                Ok(self.remember(Command::Login { name, password }, options.as_deref()))
            }
            Request::Sessions => Ok(Command::Sessions),
            Request::RevokeSession { session } => Ok(Command::RevokeSession { id: session }),
            Request::Password { old, new } => Ok(Command::Password { old, new }),
            Request::Unregister { password } => Ok(Command::Unregister { password }),
            Request::RoomRegister { room } => Ok(Command::Moderate { room, action: Action::Register }),
            Request::RoomUnregister { room } => Ok(Command::Moderate { room, action: Action::Unregister }),
            Request::ServerBan { mask, seconds, reason } => Ok(Command::ServerModerate {
                action: ServerAction::Ban {
                    mask: words::bare_mask(&mask),
                    duration: seconds.map(Duration::from_secs),
                    reason,
                },
            }),
            Request::ServerUnban { mask } => {
                Ok(Command::ServerModerate { action: ServerAction::Unban { mask: words::bare_mask(&mask) } })
            }
            Request::ServerBans => Ok(Command::ServerBans),
            Request::Act { room, reply_to } => text().map(|text| Command::Say {
                room: Some(room),
                kind: Kind::Action,
                text,
                meta: Meta { reply_to, tags: ClientTags::default() },
            }),
            Request::Away { message } => Ok(Command::Away { text: message }),
            Request::Whois { nick } => Ok(Command::Whois { nick }),
            Request::Invite { room, nick } => Ok(Command::Invite { nick, room }),
            Request::Upload { .. }
            | Request::Chunk { .. }
            | Request::Download { .. }
            | Request::Read { .. }
            | Request::Thumbnail { .. } => {
                let shared = turn.shared;
                let transfers = self.transfers.get_or_insert_with(|| Box::new(Transfers::new(shared)));
                match transfers.handle(session, id, request, payload).await {
                    Outcome::Post(command) => Ok(command),
                    Outcome::Answer(bytes) => Err(bytes),
                }
            }
            Request::Ping => Ok(Command::Ping),
            Request::Quit { reason } => {
                return match session.quit(req, reason).await {
                    Ok(()) => Err(ReadEnd::Quit),
                    Err(_) => Err(ReadEnd::Closed),
                };
            }
        };
        match command {
            Ok(command) => turn.send(req, command).await,
            Err(bytes) => turn.relay(bytes).await,
        }
    }

    fn ping(&self) -> Option<Bytes> {
        Some(frame(&ServerMsg::Ping { ts: ts(&Utc::now()) }, b""))
    }

    fn farewell(&self, why: Farewell) -> Option<Bytes> {
        match why {
            Farewell::Shutdown => Some(frame(&shutdown_msg(&Utc::now()), b"")),
            Farewell::HandshakeTimeout => {
                Some(error_frame(None, ErrorCode::NotRegistered, "no hello within the handshake timeout"))
            }
            Farewell::Flood => {
                Some(error_frame(None, ErrorCode::ExcessFlood, "you sent faster than the server allows for too long"))
            }
            // A ClientHello on a plain port fails as a header too long, and the others
            // see a ping timeout as the reason it left.
            Farewell::NotTls | Farewell::PingTimeout => None,
        }
    }

    /// What a refused connection reads before it is closed.
    fn refusal(why: Refusal) -> Bytes {
        let code = match why {
            Refusal::ServerFull => ErrorCode::ServerFull,
            Refusal::TooManyFromAddress => ErrorCode::TooManyConnections,
        };
        error_frame(None, code, &why.to_string())
    }
}

impl Native {
    /// What a `hello` asks the hub for: a guest, a password login (remembered or not),
    /// a token login, or one with the WebSocket's session cookie; or the error to answer.
    fn hello(&self, id: u64, nick: String, password: Option<String>, options: LoginOptions) -> Result<Connect, Bytes> {
        let req = RequestId(id);
        let token = if options.resume {
            match self.client.upgrade.as_ref().and_then(|u| u.cookie.clone()) {
                Some(cookie) => Some(cookie),
                None => {
                    return Err(error_frame(Some(id), ErrorCode::BadToken, "no session cookie came with the upgrade"))
                }
            }
        } else {
            options.token
        };
        match (token, password) {
            (Some(_), Some(_)) => {
                Err(error_frame(Some(id), ErrorCode::BadRequest, "give a password or a token, not both"))
            }
            (Some(token), None) => Ok(Connect::Token { token, req }),
            (None, Some(password)) if options.remember => {
                Ok(Connect::Remembered { nick, password, description: self.description(), req })
            }
            (None, password) => Ok(Connect::Nick { nick, password, req }),
        }
    }

    /// A login or registration, remembered when its options ask.
    fn remember(&self, command: Command, options: Option<&LoginOptions>) -> Command {
        if options.is_some_and(|o| o.remember) {
            Command::Remember { command: Box::new(command), description: self.description() }
        } else {
            command
        }
    }

    /// Where a token is issued, for the account's session list.
    fn description(&self) -> String {
        let peer = self.client.peer;
        match self.client.upgrade.as_ref() {
            Some(Upgrade { user_agent: Some(agent), .. }) => format!("web {peer} {agent}"),
            Some(_) => format!("web {peer}"),
            None => format!("native {peer}"),
        }
    }
}

/// A `mark_read` request as a command: one place (`room` or `with`) and a valid time.
fn mark_read(id: u64, room: Option<String>, with: Option<String>, ts: Option<&str>) -> Result<Command, Bytes> {
    let target = match (room, with) {
        (Some(room), None) => Marked::Room(room),
        (None, Some(with)) => Marked::With(with),
        _ => return Err(error_frame(Some(id), ErrorCode::BadRequest, "give room or with, one of them")),
    };
    let at = match ts.map(chrono::DateTime::parse_from_rfc3339).transpose() {
        Ok(at) => at.map(|at| at.with_timezone(&Utc)),
        Err(_) => return Err(error_frame(Some(id), ErrorCode::BadRequest, "ts is not an RFC 3339 time")),
    };
    Ok(Command::MarkRead { target, at })
}

/// A marker's place as the protocol names it: `room` or `with`.
fn marked(target: &MarkTarget) -> (Option<String>, Option<String>) {
    match target {
        MarkTarget::Room(room) => (Some(room.to_string()), None),
        MarkTarget::With(nick) => (None, Some(nick.to_string())),
    }
}

/// A message's metadata from its request's fields.
fn meta(id: u64, reply_to: Option<u64>, tags: Option<BTreeMap<String, String>>) -> Result<Meta, Bytes> {
    let tags = ClientTags::new(tags.unwrap_or_default().into_iter().collect()).map_err(|e| hub_error_frame(id, &e))?;
    Ok(Meta { reply_to, tags })
}

/// Where a signal goes: `room` or `to`/`with`, exactly one.
fn signal_target(id: u64, room: Option<String>, to: Option<String>) -> Result<Marked, Bytes> {
    match (room, to) {
        (Some(room), None) => Ok(Marked::Room(room)),
        (None, Some(nick)) => Ok(Marked::With(nick)),
        _ => Err(error_frame(Some(id), ErrorCode::BadRequest, "give room or the other user, not both")),
    }
}

fn typing(id: u64, room: Option<String>, to: Option<String>, state: &str) -> Result<Command, Bytes> {
    let target = signal_target(id, room, to)?;
    let Some(state) = Typing::parse(state) else {
        return Err(error_frame(Some(id), ErrorCode::BadRequest, "state is active, paused or done"));
    };
    Ok(Command::Signal { target, signal: Signal::Typing(state), tags: ClientTags::default() })
}

fn react(
    id: u64,
    room: Option<String>,
    with: Option<String>,
    seq: u64,
    reaction: String,
    removed: bool,
) -> Result<Command, Bytes> {
    let target = signal_target(id, room, with)?;
    let reaction = Reaction::new(seq, reaction, removed).map_err(|e| hub_error_frame(id, &e))?;
    Ok(Command::Signal { target, signal: Signal::React(reaction), tags: ClientTags::default() })
}

/// Client tags as the protocol writes them: a JSON object, absent when there are none.
fn tag_map(meta: Option<&Meta>) -> Option<BTreeMap<String, String>> {
    meta.filter(|m| !m.tags.is_empty()).map(|m| m.tags.pairs().iter().cloned().collect())
}

/// A page's cursor from `before` and `after`; `None` when both are given.
fn cursor(before: Option<u64>, after: Option<u64>) -> Option<Cursor> {
    match (before, after) {
        (Some(_), Some(_)) => None,
        (Some(seq), None) => Some(Cursor::Before(seq)),
        (None, Some(seq)) => Some(Cursor::After(seq)),
        (None, None) => Some(Cursor::Latest),
    }
}

/// The protocol's error code for a hub error: the one place they are mapped.
fn error_code(e: &HubError) -> ErrorCode {
    match e {
        HubError::NickTaken(_) => ErrorCode::NickTaken,
        HubError::InvalidNick { .. } => ErrorCode::InvalidNick,
        HubError::InvalidRoom { .. } => ErrorCode::InvalidRoom,
        HubError::RoomLookalike { .. } => ErrorCode::RoomLookalike,
        HubError::NoSuchNick(_) => ErrorCode::NoSuchNick,
        HubError::NoSuchRoom(_) => ErrorCode::NoSuchRoom,
        HubError::NotInRoom(_) | HubError::NoRoom => ErrorCode::NotInRoom,
        HubError::EmptyMessage => ErrorCode::EmptyMessage,
        HubError::MessageTooLong { .. } => ErrorCode::MessageTooLong,
        HubError::TagsTooLong { .. } | HubError::BadTag(_) => ErrorCode::BadTags,
        HubError::BadReaction { .. } => ErrorCode::BadReaction,
        HubError::TooManyRooms { .. } => ErrorCode::TooManyRooms,
        HubError::ShuttingDown => ErrorCode::ShuttingDown,
        HubError::StoreWrite => ErrorCode::StoreFailed,
        HubError::NotShared { maybe: false } | HubError::ClusterUnreachable => ErrorCode::ClusterUnreachable,
        HubError::NotShared { maybe: true } => ErrorCode::Unconfirmed,
        HubError::StoreRead => ErrorCode::StoreUnreadable,
        HubError::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
        HubError::ServerBanned { .. } => ErrorCode::ServerBanned,
        HubError::TooLong { .. } => ErrorCode::TooLong,
        HubError::TooManyBans { .. } => ErrorCode::TooManyBans,
        HubError::RoomRegistered(_) => ErrorCode::RoomRegistered,
        HubError::RoomNotRegistered(_) => ErrorCode::RoomNotRegistered,
        HubError::TooManyRegistered { .. } => ErrorCode::TooManyRegistered,
        HubError::NotFounder(_) => ErrorCode::NotFounder,
        HubError::NoSuchMessage { .. } => ErrorCode::NoSuchMessage,
        HubError::NotAuthor(_) => ErrorCode::NotAuthor,
        HubError::NoAccounts => ErrorCode::AccountsUnavailable,
        HubError::AccountExists(_) => ErrorCode::AccountExists,
        HubError::BadLogin => ErrorCode::BadLogin,
        HubError::BadToken => ErrorCode::BadToken,
        HubError::NoSuchSession(_) => ErrorCode::NoSuchSession,
        HubError::NotRememberable => ErrorCode::BadRequest,
        HubError::NotLoggedIn => ErrorCode::NotLoggedIn,
        HubError::WeakPassword { .. } => ErrorCode::WeakPassword,
        HubError::NickRegistered(_) => ErrorCode::NickRegistered,
        HubError::Busy => ErrorCode::Busy,
        HubError::NoHistory => ErrorCode::HistoryUnavailable,
        HubError::NotOperator(_) => ErrorCode::NotOperator,
        HubError::NotAdmin => ErrorCode::NotAdmin,
        HubError::Banned { .. } => ErrorCode::Banned,
        HubError::Muted(_) => ErrorCode::Muted,
        HubError::NotHere { .. } => ErrorCode::NotHere,
        HubError::NoSuchAccount(_) => ErrorCode::NoSuchAccount,
        HubError::BadMask(_) => ErrorCode::BadMask,
        HubError::BadSearch(_) => ErrorCode::BadSearch,
        HubError::Moderated(_) => ErrorCode::Muted,
        HubError::WrongKey(_) | HubError::RoomFull(_) | HubError::InviteOnly(_) => ErrorCode::Banned,
        HubError::AlreadyInRoom { .. } | HubError::BadMode(_) => ErrorCode::BadRequest,
    }
}

fn hub_error_frame(id: u64, e: &HubError) -> Bytes {
    error_frame(Some(id), error_code(e), &words::error(e))
}

fn error_frame(id: Option<u64>, code: ErrorCode, message: &str) -> Bytes {
    frame(&ServerMsg::Error { id, code, message: message.to_owned() }, b"")
}

fn frame(msg: &ServerMsg, text: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    encode(msg, text, &mut out);
    out.freeze()
}

fn encode(msg: &ServerMsg, text: &[u8], out: &mut BytesMut) {
    // Only a header over 64 KiB can fail, and every field here is bounded far below.
    if let Err(e) = msg::encode_server_msg(msg, text, out) {
        tracing::error!("cannot encode {msg:?}: {e}");
    }
}

/// A `message` or `whisper` event: text, or for a file its description as JSON.
fn encode_message(msg: &ServerMsg, kind: Kind, text: &str, out: &mut BytesMut) {
    if kind != Kind::File {
        return encode(msg, text.as_bytes(), out);
    }
    if let Err(e) = parley_proto::native::encode_frame(msg, Some(msg::JSON), text.as_bytes(), out) {
        tracing::error!("cannot encode {msg:?}: {e}");
    }
}

/// A `message` event with a compact header (version 2): text, an action or a notice,
/// with neither a reply's target nor client tags, which only JSON carries.
fn encode_compact(room: &str, from: &str, seq: u64, at: &Timestamp, kind: Kind, text: &str, out: &mut BytesMut) {
    use parley_proto::compact;
    let kind = match kind {
        Kind::Action => compact::Kind::Action,
        Kind::Notice => compact::Kind::Notice,
        Kind::Text | Kind::File => compact::Kind::Text,
    };
    // The server's clock is past 1970.
    let ts_ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let message = compact::Message { room, from, seq, ts_ms, kind };
    if let Err(e) = compact::encode_message(&message, text.as_bytes(), out) {
        tracing::error!("cannot encode a message in {room}: {e}");
    }
}

/// The answer to the `chunk` that completed an upload, from the hub's answer to the
/// file's message; `None` when the text is not a file's description.
fn shared(text: &str, room: Option<String>, to: Option<String>, seq: u64, at: &Timestamp) -> Option<msg::Reply> {
    let info: msg::FileInfo = serde_json::from_str(text).ok()?;
    Some(msg::Reply::Shared { file: info.file, room, to, seq, ts: ts(at) })
}

fn shutdown_msg(at: &Timestamp) -> ServerMsg {
    ServerMsg::Shutdown { message: SHUTDOWN_MESSAGE.to_owned(), ts: ts(at) }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T14:30:45.123Z`.
fn ts(at: &Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn names(members: &[Member]) -> Vec<String> {
    members.iter().map(|m| m.nick.to_string()).collect()
}

/// The protocol's name for a kind of message; ordinary text has none.
fn kind_name(kind: Kind) -> Option<String> {
    let name = match kind {
        Kind::Text => return None,
        Kind::Action => "action",
        Kind::Notice => "notice",
        Kind::File => "file",
    };
    Some(name.to_owned())
}

/// Encodes hub events as native frames of protocol version `VERSION`.
pub(crate) struct NativeWire<const VERSION: u32> {
    /// The cluster's nodes, told in the `welcome` (the same for every session of the
    /// server, so an encoding cached in a slot is still every session's).
    nodes: Arc<[String]>,
}

impl<const VERSION: u32> Wire for NativeWire<VERSION> {
    fn cache_slot(&self) -> Option<usize> {
        Some(if VERSION >= 2 { COMPACT_CACHE_SLOT } else { CACHE_SLOT })
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        match event {
            Event::Message { room, from, seq, at, kind, text, meta: None, .. }
                if VERSION >= 2 && *kind != Kind::File =>
            {
                encode_compact(room.as_str(), from.as_str(), *seq, at, *kind, text, out);
            }
            Event::Message { room, from, seq, at, kind, text, meta, .. } => {
                let msg = ServerMsg::Message {
                    room: room.to_string(),
                    from: from.to_string(),
                    seq: *seq,
                    ts: ts(at),
                    kind: kind_name(*kind),
                    reply_to: meta.as_ref().and_then(|m| m.reply_to),
                    tags: tag_map(meta.as_deref()),
                };
                encode_message(&msg, *kind, text, out);
            }
            Event::Whisper { seq, from, to, at, kind, text, meta, .. } => {
                let msg = ServerMsg::Whisper {
                    seq: *seq,
                    from: from.to_string(),
                    to: to.to_string(),
                    ts: ts(at),
                    kind: kind_name(*kind),
                    reply_to: meta.as_ref().and_then(|m| m.reply_to),
                    tags: tag_map(meta.as_deref()),
                };
                encode_message(&msg, *kind, text, out);
            }
            Event::Signal { room, from, at, signal, .. } => {
                let (room, from_name) = (room.as_ref().map(ToString::to_string), from.to_string());
                let msg = match signal {
                    Signal::Typing(state) => {
                        ServerMsg::Typing { room, from: from_name, state: state.as_str().to_owned(), ts: ts(at) }
                    }
                    Signal::React(reaction) => ServerMsg::Reaction {
                        // In a conversation: the other user, as the receiver sees it.
                        with: if room.is_none() { Some(from_name.clone()) } else { None },
                        room,
                        seq: reaction.seq,
                        from: from_name,
                        reaction: reaction.reaction.clone(),
                        removed: reaction.removed,
                        ts: ts(at),
                    },
                    // Tags alone are for IRC clients that asked for them.
                    Signal::Tags => return,
                };
                encode(&msg, b"", out);
            }
            Event::Notice { at, notice } => {
                encode(&ServerMsg::Notice { ts: ts(at) }, words::notice(notice).as_bytes(), out);
            }
            // An IRC user's words to some of a room's members (`PRIVMSG @#room`): told as
            // a notice, as the native protocol has no message without a seq.
            Event::SaidTo { room, audience, from, at, kind, text, .. } => {
                let said = match kind {
                    Kind::Action => format!("* {from} {text}"),
                    _ => format!("{from}: {text}"),
                };
                let words = format!("[to {}] {said}", words::audience(room, *audience));
                encode(&ServerMsg::Notice { ts: ts(at) }, words.as_bytes(), out);
            }
            Event::Mode { room, by, at, changes, .. } => {
                encode(&ServerMsg::Notice { ts: ts(at) }, words::modes_changed(by, room, changes).as_bytes(), out);
            }
            Event::Moderated { room, by, at, what, .. } => {
                encode(&ServerMsg::Notice { ts: ts(at) }, words::room_change(by, room, what).as_bytes(), out);
            }
            Event::Topic { room, by, at, text, .. } => {
                encode(&ServerMsg::Notice { ts: ts(at) }, words::topic_change(by, room, text).as_bytes(), out);
            }
            Event::Invited { room, by, at, .. } => {
                let text = format!("{by} invites you to {room}.");
                encode(&ServerMsg::Notice { ts: ts(at) }, text.as_bytes(), out);
            }
            // The native protocol has no away status yet.
            Event::Away { .. } | Event::Account { .. } | Event::InviteSent { .. } | Event::Realname { .. } => {}
            // Watch lists are IRC's (MONITOR).
            Event::SignedOn { .. } | Event::SignedOff { .. } | Event::Watched(_) => {}
            Event::Joined { room, nick, at, arrival, .. } => {
                let msg =
                    ServerMsg::Joined { room: room.to_string(), nick: nick.to_string(), ts: ts(at), arrival: *arrival };
                encode(&msg, b"", out);
            }
            Event::Left { room, nick, at, reason, by, detail, .. } => {
                let (kind, detail) = match reason {
                    LeaveReason::Part => (msg::LeaveReason::Part, detail.as_deref().map(str::to_owned)),
                    LeaveReason::Quit => (msg::LeaveReason::Quit, detail.as_deref().map(str::to_owned)),
                    LeaveReason::Kicked | LeaveReason::Banned => {
                        (msg::LeaveReason::Kicked, Some(words::put_out(*reason, by.as_ref(), detail.as_deref())))
                    }
                    LeaveReason::Lost
                    | LeaveReason::ServerBanned
                    | LeaveReason::SlowConsumer
                    | LeaveReason::SignedOut => (msg::LeaveReason::Lost, words::departure(*reason, detail.as_deref())),
                };
                let msg = ServerMsg::Left {
                    room: room.to_string(),
                    nick: nick.to_string(),
                    ts: ts(at),
                    reason: kind,
                    detail,
                };
                encode(&msg, b"", out);
            }
            Event::Marker { target, at } => {
                let (room, with) = marked(target);
                encode(&ServerMsg::Marker { room, with, ts: ts(at) }, b"", out);
            }
            Event::Deleted { room, seq, by, author, said_at, at, reason, .. } => {
                let msg = ServerMsg::Deleted {
                    room: room.to_string(),
                    seq: *seq,
                    by: by.to_string(),
                    author: author.to_string(),
                    said_ts: ts(said_at),
                    ts: ts(at),
                    reason: reason.as_deref().map(str::to_owned),
                };
                encode(&msg, b"", out);
            }
            Event::NickChanged { old, new, at, .. } => {
                encode(&ServerMsg::Nick { old: old.to_string(), new: new.to_string(), ts: ts(at) }, b"", out);
            }
            Event::Shutdown { at, message } => {
                encode(&ServerMsg::Shutdown { message: message.to_string(), ts: ts(at) }, b"", out);
            }
            Event::SignedOut { .. } => {
                let message = words::SIGNED_OUT.to_owned();
                encode(&ServerMsg::Error { id: None, code: ErrorCode::SignedOut, message }, b"", out);
            }
            Event::Banned { reason, .. } => {
                let why = reason.as_deref().map_or_else(
                    || "you are banned from this server".to_owned(),
                    |r| format!("you are banned from this server: {r}"),
                );
                encode(&ServerMsg::Error { id: None, code: ErrorCode::ServerBanned, message: why }, b"", out);
            }
            Event::Reply { req, result: Ok(Reply::Remembered { reply, token }) } => {
                let Some(body) = reply_body(reply, VERSION, &self.nodes) else {
                    return;
                };
                if let Err(e) = msg::encode_result_with_token(req.0, &body, token, out) {
                    tracing::error!("cannot encode a result: {e}");
                }
            }
            Event::Reply { req, result: Ok(reply) } => {
                let Some(body) = reply_body(reply, VERSION, &self.nodes) else {
                    return;
                };
                if let Err(e) = msg::encode_result(req.0, &body, out) {
                    tracing::error!("cannot encode a result: {e}");
                }
            }
            Event::Reply { req, result: Err(e) } => out.extend_from_slice(&hub_error_frame(req.0, e)),
        }
    }
}

fn entries(records: &[Arc<Record>]) -> Vec<HistoryEntry> {
    records
        .iter()
        .map(|r| HistoryEntry {
            seq: r.seq,
            from: r.from.to_string(),
            ts: ts(&r.at),
            kind: kind_name(r.kind),
            text: r.text.to_string(),
            reply_to: r.meta.as_ref().and_then(|m| m.reply_to),
            tags: tag_map(r.meta.as_deref()),
        })
        .collect()
}

/// The native form of a reply; `None` for answers to commands the native protocol has
/// no request for (no native session can cause them).
fn reply_body(reply: &Reply, version: u32, nodes: &[String]) -> Option<msg::Reply> {
    Some(match reply {
        Reply::Welcome { nick, room, members, max_text, history, topic, .. } => msg::Reply::Welcome {
            version,
            nick: nick.to_string(),
            // Native sessions start in the lobby: a room is always there.
            room: room.as_ref().map_or_else(|| parley_hub::LOBBY.to_owned(), ToString::to_string),
            members: names(members),
            max_text: *max_text,
            history: entries(history),
            topic: topic.as_ref().map(|(text, _, _)| text.clone()),
            nodes: nodes.to_vec(),
        },
        Reply::Joined { room, members, history, topic, read, .. } => msg::Reply::Joined {
            room: room.to_string(),
            members: names(members),
            history: entries(history),
            topic: topic.as_ref().map(|(text, _, _)| text.clone()),
            read: read.as_ref().map(ts),
        },
        Reply::Marker { target, at } => {
            let (room, with) = marked(target);
            msg::Reply::Marker { room, with, ts: at.as_ref().map(ts) }
        }
        Reply::Deleted { room, seq, .. } => msg::Reply::Deleted { room: room.to_string(), seq: *seq },
        Reply::Topic { room, topic } => msg::Reply::Topic {
            room: room.to_string(),
            topic: topic.as_ref().map(|(text, _, _)| text.clone()),
            by: topic.as_ref().map(|(_, by, _)| by.to_string()),
            ts: topic.as_ref().map(|(_, _, at)| ts(at)),
        },
        Reply::Audit(lines) => msg::Reply::Audit {
            entries: lines
                .iter()
                .map(|l| AuditEntry {
                    ts: ts(&l.at),
                    actor: l.actor.clone(),
                    action: l.action.clone(),
                    room: l.room.clone(),
                    target: l.target.clone(),
                    detail: l.detail.clone(),
                })
                .collect(),
        },
        Reply::Moderated { action, room, target } => {
            msg::Reply::Moderated { action: (*action).to_owned(), room: room.to_string(), target: target.clone() }
        }
        Reply::Conversation { with, messages } => {
            msg::Reply::Conversation { with: with.to_string(), messages: entries(messages) }
        }
        Reply::History { room, messages } => {
            msg::Reply::History { room: room.to_string(), messages: entries(messages) }
        }
        Reply::Parted { room } => msg::Reply::Parted { room: room.to_string() },
        Reply::Said { room, seq, at, kind: Kind::File, text, .. } => {
            shared(text, Some(room.to_string()), None, *seq, at)?
        }
        Reply::Whispered { to, seq, at, kind: Kind::File, text, .. } => {
            shared(text, None, Some(to.to_string()), *seq, at)?
        }
        Reply::Said { room, seq, at, .. } => msg::Reply::Said { room: room.to_string(), seq: *seq, ts: ts(at) },
        Reply::Whispered { to, seq, at, .. } => msg::Reply::Whispered { to: to.to_string(), ts: ts(at), seq: *seq },
        Reply::Signalled { at, .. } => msg::Reply::Signalled { ts: ts(at) },
        Reply::Who { room, members, .. } => msg::Reply::Who { room: room.to_string(), members: names(members) },
        Reply::Rooms(rooms) => msg::Reply::Rooms {
            rooms: rooms
                .iter()
                .map(|r| RoomInfo { name: r.name.to_string(), members: r.members, joined: r.joined })
                .collect(),
        },
        Reply::Nick { nick } => msg::Reply::Nick { nick: nick.to_string() },
        Reply::Found { query, page, results } => msg::Reply::Found {
            query: query.clone(),
            page: u32::try_from(*page).unwrap_or(u32::MAX),
            results: results
                .iter()
                .map(|r| SearchHit {
                    room: r.room.as_ref().map(ToString::to_string),
                    seq: r.seq,
                    from: r.from.to_string(),
                    to: r.to.as_ref().map(ToString::to_string),
                    ts: ts(&r.at),
                    text: r.text.to_string(),
                })
                .collect(),
        },
        Reply::Registered { account } => msg::Reply::Registered { account: account.to_string() },
        Reply::LoggedIn { account, nick } => {
            msg::Reply::LoggedIn { account: account.to_string(), nick: nick.to_string() }
        }
        Reply::PasswordChanged => msg::Reply::PasswordChanged,
        Reply::Unregistered { account } => msg::Reply::Unregistered { account: account.to_string() },
        Reply::ServerBans(bans) => msg::Reply::ServerBans {
            bans: bans
                .iter()
                .map(|b| msg::ServerBanInfo {
                    mask: b.mask.to_string(),
                    until: b.until.as_ref().map(ts),
                    reason: b.reason.clone(),
                })
                .collect(),
        },
        Reply::ServerModerated { action, target } => {
            msg::Reply::ServerModerated { action: (*action).to_owned(), target: target.clone() }
        }
        Reply::Pong => msg::Reply::Pong,
        Reply::Bye => msg::Reply::Bye,
        Reply::Remembered { reply, .. } => return reply_body(reply, version, nodes),
        Reply::Sessions(sessions) => msg::Reply::Sessions {
            sessions: sessions
                .iter()
                .map(|s| SessionEntry {
                    id: s.token.id,
                    created: ts(&s.token.created),
                    last_used: ts(&s.token.last_used),
                    description: s.token.description.clone(),
                    current: s.current,
                })
                .collect(),
        },
        Reply::Revoked { id } => msg::Reply::Revoked { session: *id },
        Reply::Away { away } => msg::Reply::Away { away: *away },
        Reply::Whois(whois) => msg::Reply::Whois {
            nick: whois.nick.to_string(),
            account: whois.account.as_ref().map(ToString::to_string),
            rooms: whois.rooms.iter().map(|(room, op, _)| format!("{}{room}", if *op { "@" } else { "" })).collect(),
            since: ts(&whois.since),
            idle_secs: whois.idle_secs,
            away: whois.away.as_deref().map(str::to_owned),
            admin: whois.admin,
        },
        Reply::Invited { nick, room } => msg::Reply::Invited { nick: nick.to_string(), room: room.to_string() },
        // IRC's alone.
        Reply::Targets(_)
        | Reply::Modes { .. }
        | Reply::Invitations { .. }
        | Reply::ModesSet { .. }
        | Reply::Bans { .. }
        | Reply::Stats(_)
        | Reply::Opered
        | Reply::ToldSome { .. }
        | Reply::Presence { .. }
        | Reply::Watched(_)
        | Reply::Unwatched
        | Reply::Described => return None,
    })
}
