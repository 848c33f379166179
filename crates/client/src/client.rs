//! The connection: one background task reads frames and routes them (answers to the
//! request that waits for them, events to [`Events`]); requests write through a shared
//! writer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use parley_proto::msg::{
    encode_request, encode_request_with, ErrorCode, HistoryEntry, LoginOptions, Received, Reply, Request, RoomInfo,
    ServerMsg, SessionEntry, OLDEST_VERSION, PROTOCOL_VERSION,
};
use parley_proto::native::FrameDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::trust::{self, Trust, TrustError, Trusted};

/// How long connecting (TCP, TLS and the answer to `hello`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Events waiting to be read. When the caller falls this far behind, the reader stops
/// reading the socket, which slows the server's sending to us (and, if we stay behind,
/// gets us disconnected as a slow consumer): the right outcome for a client that does
/// not keep up.
const EVENT_QUEUE: usize = 1024;

/// The largest frame the client accepts: the server's own limits are far below.
const MAX_HEADER: usize = 65_535;
const MAX_PAYLOAD: usize = 16 << 20;

/// How to reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP: anyone on the path can read it.
    Plain,
    /// TLS, trusting the server as `trust` says.
    Tls(Trust),
}

/// Why a request or the connection failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused the request.
    #[error("{message}")]
    Refused {
        /// The protocol's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The connection is closed.
    #[error("the connection to the server is closed")]
    Disconnected,
    /// Connecting took too long.
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
    /// The server's certificate is not trusted (or has changed).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The address is not `HOST:PORT`.
    #[error("{0:?} is not HOST:PORT")]
    Address(String),
    /// The network failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The server sent something that is not the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// A file's bytes do not have the SHA-256 they should; nothing was kept.
    #[error("the file's SHA-256 is {got}, not {expected}; it was not kept")]
    Corrupt {
        /// What the file should hash to.
        expected: String,
        /// What it hashed to.
        got: String,
    },
}

/// What the server said when it accepted `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// Your nick.
    pub nick: String,
    /// The room you were put in.
    pub room: String,
    /// Who is there, you included.
    pub members: Vec<String>,
    /// The longest message text the server accepts, in bytes.
    pub max_text: usize,
    /// What was said in the room before you came, oldest first.
    pub history: Vec<PastMessage>,
    /// The room's topic.
    pub topic: Option<String>,
    /// Where every node of the server's cluster can be reached (`HOST:PORT` for this
    /// client, `http(s)://` URLs for browsers), to move to another when this one goes
    /// away; empty for a server alone.
    pub nodes: Vec<String>,
}

/// Where a read marker is: a room, or the conversation with a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// A room.
    Room(&'a str),
    /// The private conversation with this nick.
    With(&'a str),
}

/// The server's answer to [`Client::join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room's name as the server spells it.
    pub room: String,
    /// Who is there, you included.
    pub members: Vec<String>,
    /// What was said in the room before you came, oldest first.
    pub history: Vec<PastMessage>,
    /// The room's topic.
    pub topic: Option<String>,
    /// Where you read up to in it (on any of your sessions), if anywhere.
    pub read: Option<DateTime<Utc>>,
}

/// A message from a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastMessage {
    /// Its place in the room's order.
    pub seq: u64,
    /// The sender's nick.
    pub from: String,
    /// When the server accepted it.
    pub at: DateTime<Utc>,
    /// What kind of message.
    pub kind: crate::Kind,
    /// The text.
    pub text: String,
}

/// Where a page of history starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryCursor {
    /// The latest messages.
    Latest,
    /// The latest messages before this seq: scrolling back.
    Before(u64),
    /// The earliest messages after this seq: catching up after a reconnect.
    After(u64),
}

fn past(entries: Vec<HistoryEntry>) -> Vec<PastMessage> {
    entries
        .into_iter()
        .map(|e| PastMessage {
            seq: e.seq,
            from: e.from,
            at: crate::event::time(&e.ts),
            kind: crate::Kind::from_wire(e.kind.as_deref()),
            text: e.text,
        })
        .collect()
}

/// What answers a request: a result, or (for `read`) a piece of a file.
#[derive(Debug)]
pub(crate) enum Answered {
    /// A `result`'s body.
    Reply(Reply),
    /// A `result`'s body with the resume token issued with it.
    Remembered(Reply, String),
    /// A `data` frame.
    Data {
        /// Where the piece starts in the file.
        offset: u64,
        /// The bytes.
        bytes: bytes::Bytes,
    },
}

pub(crate) type Answer = Result<Answered, Error>;
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Answer>>>>>;
type Writer = Arc<tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

/// A connection to a Parley server. Cheap to clone; every clone shares the connection.
#[derive(Clone)]
pub struct Client {
    writer: Writer,
    next_id: Arc<AtomicU64>,
    /// Requests waiting for their answer; `None` once the connection is closed.
    pending: Pending,
}

/// The events of a connection, ending with [`Event::Closed`].
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` after [`Event::Closed`].
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`). With TLS, the certificate is checked against
    /// `HOST`, and [`Trusted`] says how it was accepted.
    pub async fn connect(addr: &str, transport: &Transport) -> Result<(Client, Events, Option<Trusted>), Error> {
        let host = addr.rsplit_once(':').map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'));
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return Err(Error::Address(addr.to_owned()));
        };
        let connecting = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            match transport {
                Transport::Plain => {
                    let (reader, writer) = stream.into_split();
                    Ok::<_, Error>((
                        Box::new(reader) as Reader,
                        Box::new(writer) as Box<dyn AsyncWrite + Send + Unpin>,
                        None,
                    ))
                }
                Transport::Tls(trust) => {
                    let (config, check) = trust::client_config(trust, addr)?;
                    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                        .map_err(|_| Error::Address(addr.to_owned()))?;
                    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                    let stream = match connector.connect(name, stream).await {
                        Ok(stream) => stream,
                        Err(_) if check.refused() => {
                            return Err(check.outcome(trust, addr).err().map_or(Error::Disconnected, Error::from))
                        }
                        Err(e) => return Err(e.into()),
                    };
                    let trusted = check.outcome(trust, addr)?;
                    let (reader, writer) = tokio::io::split(stream);
                    Ok((
                        Box::new(reader) as Reader,
                        Box::new(writer) as Box<dyn AsyncWrite + Send + Unpin>,
                        Some(trusted),
                    ))
                }
            }
        };
        let (reader, writer, trusted) =
            tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.map_err(|_| Error::Timeout(CONNECT_TIMEOUT))??;
        let (client, events) = Client::over(reader, writer);
        Ok((client, events, trusted))
    }

    /// A client over an already connected byte stream (for tests and other transports).
    pub fn over(
        reader: impl AsyncRead + Send + Unpin + 'static,
        writer: impl AsyncWrite + Send + Unpin + 'static,
    ) -> (Client, Events) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let client = Client {
            writer: Arc::new(tokio::sync::Mutex::new(Box::new(writer))),
            next_id: Arc::new(AtomicU64::new(1)),
            pending: Arc::new(Mutex::new(Some(HashMap::new()))),
        };
        tokio::spawn(read_loop(Box::new(reader), client.clone(), tx));
        (client, Events { rx })
    }

    /// Registers as `nick`. A refusal (`nick_taken`, `invalid_nick`) leaves the
    /// connection open for another try.
    pub async fn hello(&self, nick: &str) -> Result<Welcome, Error> {
        Ok(self.hello_with(nick, None, &LoginOptions::default()).await?.0)
    }

    /// Registers logged in to the account `nick` with its password, and asks for a
    /// resume token: the welcome and the token (`None` if the server kept none).
    pub async fn hello_remembered(&self, nick: &str, password: &str) -> Result<(Welcome, Option<String>), Error> {
        let options = LoginOptions { remember: true, ..LoginOptions::default() };
        self.hello_with(nick, Some(password), &options).await
    }

    /// Registers logged in with a resume token, under its account's name. A token that
    /// is unknown, revoked or expired is refused with `bad_token`.
    pub async fn hello_token(&self, token: &str) -> Result<Welcome, Error> {
        let options = LoginOptions { token: Some(token.to_owned()), ..LoginOptions::default() };
        Ok(self.hello_with("", None, &options).await?.0)
    }

    /// `hello` with a password and login options, as the protocol has it: in the
    /// newest protocol version, or in version 1 from a server that speaks only that.
    pub async fn hello_with(
        &self,
        nick: &str,
        password: Option<&str>,
        options: &LoginOptions,
    ) -> Result<(Welcome, Option<String>), Error> {
        match self.hello_in(PROTOCOL_VERSION, nick, password, options).await {
            Err(Error::Refused { code: ErrorCode::UnsupportedVersion, .. }) => {
                self.hello_in(OLDEST_VERSION, nick, password, options).await
            }
            answered => answered,
        }
    }

    async fn hello_in(
        &self,
        version: u32,
        nick: &str,
        password: Option<&str>,
        options: &LoginOptions,
    ) -> Result<(Welcome, Option<String>), Error> {
        let hello = Request::Hello { version, nick: nick.to_owned(), password: password.map(str::to_owned) };
        match tokio::time::timeout(CONNECT_TIMEOUT, self.request_with(&hello, options)).await {
            Err(_) => Err(Error::Timeout(CONNECT_TIMEOUT)),
            Ok(Ok((Reply::Welcome { nick, room, members, max_text, history, topic, nodes, .. }, token))) => {
                Ok((Welcome { nick, room, members, max_text, history: past(history), topic, nodes }, token))
            }
            Ok(Ok((other, _))) => Err(unexpected(&other)),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Logs in like [`Client::login`] and asks for a resume token: the nick and the
    /// token.
    pub async fn login_remembered(&self, name: Option<&str>, password: &str) -> Result<(String, String), Error> {
        let auth = Request::Auth { name: name.map(str::to_owned), password: password.to_owned() };
        let options = LoginOptions { remember: true, ..LoginOptions::default() };
        match self.request_with(&auth, &options).await? {
            (Reply::LoggedIn { nick, .. }, Some(token)) => Ok((nick, token)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// Registers like [`Client::register`] and asks for a resume token: the account's
    /// name and the token.
    pub async fn register_remembered(&self, password: &str) -> Result<(String, String), Error> {
        let options = LoginOptions { remember: true, ..LoginOptions::default() };
        match self.request_with(&Request::Register { password: password.to_owned() }, &options).await? {
            (Reply::Registered { account }, Some(token)) => Ok((account, token)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// The resume tokens of the logged-in account.
    pub async fn sessions(&self) -> Result<Vec<SessionEntry>, Error> {
        match self.request(&Request::Sessions, b"").await? {
            Reply::Sessions { sessions } => Ok(sessions),
            other => Err(unexpected(&other)),
        }
    }

    /// Revokes one of the logged-in account's resume tokens, by its id.
    pub async fn revoke_session(&self, session: u64) -> Result<(), Error> {
        match self.request(&Request::RevokeSession { session }, b"").await? {
            Reply::Revoked { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The preview of a shared image (PNG bytes).
    pub async fn thumbnail(&self, file: &str) -> Result<bytes::Bytes, Error> {
        let request = Request::Thumbnail { file: file.to_owned() };
        let answer = self.start(|id, frame| encode_request(id, &request, b"", frame)).await?;
        match answer.await.unwrap_or(Err(Error::Disconnected))? {
            Answered::Data { bytes, .. } => Ok(bytes),
            Answered::Reply(other) | Answered::Remembered(other, _) => Err(unexpected(&other)),
        }
    }

    /// Says `text` in `room`; returns its sequence number and the server's timestamp.
    pub async fn say(&self, room: &str, text: &str) -> Result<(u64, DateTime<Utc>), Error> {
        match self.request(&Request::Say { room: room.to_owned(), reply_to: None, tags: None }, text.as_bytes()).await?
        {
            Reply::Said { seq, ts, .. } => Ok((seq, crate::event::time(&ts))),
            other => Err(unexpected(&other)),
        }
    }

    /// Does `text` in `room` as an action (`* alice waves`); returns its seq and time.
    pub async fn act(&self, room: &str, text: &str) -> Result<(u64, DateTime<Utc>), Error> {
        match self.request(&Request::Act { room: room.to_owned(), reply_to: None }, text.as_bytes()).await? {
            Reply::Said { seq, ts, .. } => Ok((seq, crate::event::time(&ts))),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `text` privately to `to`; returns the receiver's nick as its owner spells it.
    pub async fn whisper(&self, to: &str, text: &str) -> Result<String, Error> {
        match self.request(&Request::Whisper { to: to.to_owned(), reply_to: None, tags: None }, text.as_bytes()).await?
        {
            Reply::Whispered { to, .. } => Ok(to),
            other => Err(unexpected(&other)),
        }
    }

    /// Enters `room`; returns its name as the server spells it, its members and its
    /// latest messages.
    pub async fn join(&self, room: &str) -> Result<Joined, Error> {
        match self.request(&Request::Join { room: room.to_owned() }, b"").await? {
            Reply::Joined { room, members, history, topic, read } => {
                let read = read.as_deref().map(crate::event::time);
                Ok(Joined { room, members, history: past(history), topic, read })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Moves your read marker in a room or a conversation forward to `at` (markers never
    /// move back); returns where it is now. Your other sessions are told.
    pub async fn mark_read(&self, place: Place<'_>, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, Error> {
        let ts = Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let request = match place {
            Place::Room(room) => Request::MarkRead { room: Some(room.to_owned()), with: None, ts },
            Place::With(nick) => Request::MarkRead { room: None, with: Some(nick.to_owned()), ts },
        };
        match self.request(&request, b"").await? {
            Reply::Marker { ts, .. } => Ok(ts.as_deref().map(crate::event::time)),
            other => Err(unexpected(&other)),
        }
    }

    /// Leaves `room` (or the room joined last); returns the room left.
    pub async fn part(&self, room: Option<&str>) -> Result<String, Error> {
        match self.request(&Request::Part { room: room.map(str::to_owned) }, b"").await? {
            Reply::Parted { room } => Ok(room),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes nick; returns the new nick.
    pub async fn nick(&self, nick: &str) -> Result<String, Error> {
        match self.request(&Request::Nick { nick: nick.to_owned() }, b"").await? {
            Reply::Nick { nick } => Ok(nick),
            other => Err(unexpected(&other)),
        }
    }

    /// The members of `room`.
    pub async fn who(&self, room: &str) -> Result<(String, Vec<String>), Error> {
        match self.request(&Request::Who { room: room.to_owned() }, b"").await? {
            Reply::Who { room, members } => Ok((room, members)),
            other => Err(unexpected(&other)),
        }
    }

    /// A page of the history of `room` (or the room joined last), oldest first, at most
    /// `limit` messages (the server's default when `None`). An empty page means there is
    /// nothing more in that direction.
    pub async fn history(
        &self,
        room: Option<&str>,
        cursor: HistoryCursor,
        limit: Option<u32>,
    ) -> Result<(String, Vec<PastMessage>), Error> {
        let (before, after) = match cursor {
            HistoryCursor::Latest => (None, None),
            HistoryCursor::Before(seq) => (Some(seq), None),
            HistoryCursor::After(seq) => (None, Some(seq)),
        };
        let request = Request::History { room: room.map(str::to_owned), before, after, limit };
        match self.request(&request, b"").await? {
            Reply::History { room, messages } => Ok((room, past(messages))),
            other => Err(unexpected(&other)),
        }
    }

    /// Searches the history this session may see; returns one page of results (20),
    /// best first, as past messages with their room (`None` for a private message).
    pub async fn search(&self, query: &str, page: Option<u32>) -> Result<Vec<(Option<String>, PastMessage)>, Error> {
        match self.request(&Request::Search { query: query.to_owned(), page }, b"").await? {
            Reply::Found { results, .. } => Ok(results
                .into_iter()
                .map(|hit| {
                    let message = PastMessage {
                        seq: hit.seq,
                        from: hit.from,
                        at: crate::event::time(&hit.ts),
                        kind: crate::Kind::Text,
                        text: hit.text,
                    };
                    (hit.room, message)
                })
                .collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes the current nick an account with `password` and logs in to it; returns the
    /// account's name.
    pub async fn register(&self, password: &str) -> Result<String, Error> {
        match self.request(&Request::Register { password: password.to_owned() }, b"").await? {
            Reply::Registered { account } => Ok(account),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in to the account `name` (the current nick's without one); returns the nick
    /// the session has now, the account's.
    pub async fn login(&self, name: Option<&str>, password: &str) -> Result<String, Error> {
        let auth = Request::Auth { name: name.map(str::to_owned), password: password.to_owned() };
        match self.request(&auth, b"").await? {
            Reply::LoggedIn { nick, .. } => Ok(nick),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes the logged-in account's password.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), Error> {
        match self.request(&Request::Password { old: old.to_owned(), new: new.to_owned() }, b"").await? {
            Reply::PasswordChanged => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends any request and waits for its answer: for requests without a method of
    /// their own here (moderation).
    pub async fn call(&self, request: &Request) -> Result<Reply, Error> {
        self.request(request, b"").await
    }

    /// A page of this (logged-in) session's private messages with `with`, oldest first.
    pub async fn conversation(
        &self,
        with: &str,
        cursor: HistoryCursor,
        limit: Option<u32>,
    ) -> Result<Vec<PastMessage>, Error> {
        let (before, after) = match cursor {
            HistoryCursor::Latest => (None, None),
            HistoryCursor::Before(seq) => (Some(seq), None),
            HistoryCursor::After(seq) => (None, Some(seq)),
        };
        let request = Request::Conversation { with: with.to_owned(), before, after, limit };
        match self.request(&request, b"").await? {
            Reply::Conversation { messages, .. } => Ok(past(messages)),
            other => Err(unexpected(&other)),
        }
    }

    /// The rooms on the server.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>, Error> {
        match self.request(&Request::Rooms, b"").await? {
            Reply::Rooms { rooms } => Ok(rooms),
            other => Err(unexpected(&other)),
        }
    }

    /// A round trip to the server.
    pub async fn ping(&self) -> Result<(), Error> {
        match self.request(&Request::Ping, b"").await? {
            Reply::Pong => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Leaves the chat; the server closes the connection after answering.
    pub async fn quit(&self, reason: Option<&str>) -> Result<(), Error> {
        match self.request(&Request::Quit { reason: reason.map(str::to_owned) }, b"").await? {
            Reply::Bye => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends any request and awaits its answer.
    pub async fn request(&self, request: &Request, payload: &[u8]) -> Result<Reply, Error> {
        let answer = self.start(|id, frame| encode_request(id, request, payload, frame)).await?;
        match answer.await.unwrap_or(Err(Error::Disconnected))? {
            Answered::Reply(reply) | Answered::Remembered(reply, _) => Ok(reply),
            Answered::Data { .. } => Err(Error::Protocol("a data frame answered a request that is no read".into())),
        }
    }

    /// Sends a request with login options and awaits its answer, with the resume token
    /// the answer carries, if any.
    pub async fn request_with(
        &self,
        request: &Request,
        options: &LoginOptions,
    ) -> Result<(Reply, Option<String>), Error> {
        let answer = self.start(|id, frame| encode_request_with(id, request, options, b"", frame)).await?;
        match answer.await.unwrap_or(Err(Error::Disconnected))? {
            Answered::Reply(reply) => Ok((reply, None)),
            Answered::Remembered(reply, token) => Ok((reply, Some(token))),
            Answered::Data { .. } => Err(Error::Protocol("a data frame answered a request that is no read".into())),
        }
    }

    /// Sends the request that `encode` writes for a fresh id, without waiting for its
    /// answer: the receiver gets it. Lets transfers keep several requests in flight.
    pub(crate) async fn start(
        &self,
        encode: impl FnOnce(u64, &mut BytesMut) -> Result<(), parley_proto::native::EncodeError>,
    ) -> Result<oneshot::Receiver<Answer>, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::new();
        encode(id, &mut frame).map_err(|e| Error::Protocol(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(pending) = pending.as_mut() else { return Err(Error::Disconnected) };
            pending.insert(id, tx);
        }
        let written = async {
            let mut writer = self.writer.lock().await;
            writer.write_all(&frame).await
        };
        if let Err(e) = written.await {
            self.forget(id);
            return Err(e.into());
        }
        Ok(rx)
    }

    fn forget(&self, id: u64) {
        if let Some(pending) = self.pending.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            pending.remove(&id);
        }
    }

    /// Hands an answer to the request waiting for it.
    fn answer(&self, id: u64, answer: Answer) {
        let waiting = self.pending.lock().unwrap_or_else(PoisonError::into_inner).as_mut().and_then(|p| p.remove(&id));
        if let Some(waiting) = waiting {
            let _ = waiting.send(answer);
        }
    }

    /// Fails every waiting request; later ones fail at once.
    fn close(&self) {
        let waiting = self.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
        for (_, tx) in waiting.into_iter().flatten() {
            let _ = tx.send(Err(Error::Disconnected));
        }
    }
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;

/// Reads frames until the connection ends, routing answers and events.
async fn read_loop(mut reader: Reader, client: Client, events: mpsc::Sender<Event>) {
    // Compact headers come only after a `hello` of version 2, and only from a server
    // that speaks it: reading them from the start costs nothing.
    let mut decoder = FrameDecoder::new(MAX_HEADER, MAX_PAYLOAD).accepting_compact();
    let mut buf = BytesMut::with_capacity(8192);
    let reason = loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                let received = match Received::from_frame(frame) {
                    Ok(received) => received,
                    Err(e) => break format!("the server sent a message this client does not understand: {e}"),
                };
                route(&client, &events, received).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => break format!("the server sent a malformed frame: {e}"),
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => break "the server closed the connection".to_owned(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "the server closed the connection".to_owned()
            }
            Err(e) => break format!("the connection failed: {e}"),
        }
    };
    client.close();
    let _ = events.send(Event::Closed { reason }).await;
}

async fn route(client: &Client, events: &mpsc::Sender<Event>, received: Received) {
    match &received.msg {
        ServerMsg::Result { id } => {
            let answer = received
                .reply()
                .map(|reply| match received.token() {
                    Some(token) => Answered::Remembered(reply, token),
                    None => Answered::Reply(reply),
                })
                .map_err(|e| Error::Protocol(format!("a result body: {e}")));
            client.answer(*id, answer);
        }
        ServerMsg::Data { id, offset, .. } => {
            client.answer(*id, Ok(Answered::Data { offset: *offset, bytes: received.payload.clone() }));
        }
        ServerMsg::Error { id: Some(id), code, message } => {
            client.answer(*id, Err(Error::Refused { code: *code, message: message.clone() }));
        }
        ServerMsg::Ping { .. } => {
            // Any request answers a keepalive ping; the pong needs no waiting.
            let client = client.clone();
            tokio::spawn(async move {
                let _ = client.ping().await;
            });
        }
        _ => {
            if let Some(event) = Event::from_server(received.msg, &received.payload) {
                // A full queue makes us stop reading: back-pressure, not loss.
                let _ = events.send(event).await;
            }
        }
    }
}

fn unexpected(reply: &Reply) -> Error {
    Error::Protocol(format!("unexpected answer {reply:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::native::encode_frame;
    use serde_json::json;

    /// The protocol grows by adding message types: a client that meets one it does not
    /// know skips it and goes on reading, instead of hanging up.
    #[tokio::test]
    async fn unknown_message_types_are_skipped() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (reader, writer) = tokio::io::split(ours);
        let (_client, mut events) = Client::over(reader, writer);
        let mut wire = BytesMut::new();
        let future = json!({"type": "sticker", "room": "lobby", "emoji": "+1"});
        encode_frame(&future, None, b"", &mut wire).expect("encodes");
        let message =
            json!({"type": "message", "room": "lobby", "from": "ada", "seq": 1, "ts": "2026-01-02T03:04:05Z"});
        encode_frame(&message, Some("text/plain; charset=utf-8"), b"still here", &mut wire).expect("encodes");
        let (_, mut server) = tokio::io::split(theirs);
        server.write_all(&wire).await.expect("writes");
        let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("in time");
        assert!(
            matches!(&event, Some(Event::Message { from, text, .. }) if from == "ada" && text == "still here"),
            "{event:?}"
        );
    }

    /// A server that speaks only version 1: the client says hello again in it, and
    /// reads its JSON headers as before.
    #[tokio::test]
    async fn a_server_of_version_1_is_greeted_again_in_version_1() {
        let (ours, theirs) = tokio::io::duplex(4096);
        let (reader, writer) = tokio::io::split(ours);
        let (client, _events) = Client::over(reader, writer);
        let old_server = async move {
            let (mut from_client, mut to_client) = tokio::io::split(theirs);
            let mut decoder = FrameDecoder::new(65_535, 1 << 20);
            let mut buf = BytesMut::new();
            let mut asked = Vec::new();
            loop {
                let Some(frame) = decoder.decode(&mut buf).expect("valid frames") else {
                    if from_client.read_buf(&mut buf).await.expect("reads") == 0 {
                        return asked;
                    }
                    continue;
                };
                let id = frame.envelope.id.expect("an id");
                let Ok(Request::Hello { version, .. }) = Request::from_frame(&frame) else { panic!("a hello") };
                asked.push(version);
                let mut out = BytesMut::new();
                if version == 1 {
                    let welcome = Reply::Welcome {
                        version: 1,
                        nick: "ada".into(),
                        room: "lobby".into(),
                        members: vec!["ada".into()],
                        max_text: 4096,
                        history: vec![],
                        topic: None,
                        nodes: vec![],
                    };
                    parley_proto::msg::encode_result(id, &welcome, &mut out).expect("encodes");
                } else {
                    let refusal = ServerMsg::Error {
                        id: Some(id),
                        code: ErrorCode::UnsupportedVersion,
                        message: format!("this server speaks protocol version 1, not {version}"),
                    };
                    parley_proto::msg::encode_server_msg(&refusal, b"", &mut out).expect("encodes");
                }
                to_client.write_all(&out).await.expect("writes");
                if version == 1 {
                    return asked;
                }
            }
        };
        let (welcome, asked) = tokio::join!(client.hello("ada"), old_server);
        assert_eq!(welcome.expect("welcomed").nick, "ada");
        assert_eq!(asked, [PROTOCOL_VERSION, 1]);
    }
}
