//! Gateways: one module per protocol, over one connection driver.
//!
//! A gateway is a [`Protocol`]: how its input is decoded, what its registration
//! dialogue says, what each input becomes for the hub, how its events look (its
//! [`Wire`]) and how it says goodbye. Everything else about a connection is the
//! driver's, the same for every protocol and every transport ([`serve`]): the read
//! buffer, the handshake deadline, flood pacing, the idle ping and its timeout, the TLS
//! sniff on plain ports, the writer that drains the session's [`Outbox`], the farewell,
//! the linger, and the ending.
//!
//! A connection is one task. Until the hub accepts a session, the driver writes the
//! dialogue's answers to the socket itself; after, the session's input and its writer
//! run as two futures under one `select!`, and only the writer writes to the socket.

pub(crate) mod irc;
pub(crate) mod line;
pub(crate) mod native;
pub(crate) mod parking;
mod transport;
pub(crate) mod web;
pub(crate) mod words;

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parley_hub::{
    Admit, Arrival, Batch, Command, HubError, Login, Outbox, RequestId, Session, Throttle, Verified, Wire,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

pub(crate) use transport::{Receive, Received, Stream};

use crate::metrics::{Gateway, ServerMetrics};
use crate::server::Shared;

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, so that closing with unread input does not reset the connection and destroy
/// the farewell the client has not read yet.
const LINGER: Duration = Duration::from_millis(500);

/// Why a connection ended, for the log.
#[derive(Debug)]
pub(crate) enum Ending {
    /// The client closed the connection.
    ClientClosed,
    /// The client quit.
    Quit,
    /// The server closed the session (shutdown, or after an error it reported).
    ServerClosed,
    /// The session's outbox overflowed.
    SlowConsumer,
    /// The client did not register in time.
    HandshakeTimeout,
    /// The server is shutting down.
    Shutdown,
    /// The TLS handshake failed.
    Tls(String),
    /// The client broke the protocol beyond recovery (already reported to it).
    Protocol(String),
    /// The client broke a limit (flood, idle timeout) and was disconnected.
    Limit(&'static str),
    /// The socket failed.
    Io(io::Error),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::ClientClosed => f.write_str("client closed the connection"),
            Ending::Quit => f.write_str("client quit"),
            Ending::ServerClosed => f.write_str("closed by the server"),
            Ending::SlowConsumer => f.write_str("send queue exceeded"),
            Ending::HandshakeTimeout => f.write_str("handshake timed out"),
            Ending::Shutdown => f.write_str("server shutting down"),
            Ending::Tls(why) => write!(f, "TLS handshake failed: {why}"),
            Ending::Protocol(why) => write!(f, "protocol error: {why}"),
            Ending::Limit(why) => f.write_str(why),
            Ending::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

/// Why a session's input stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// End of input, or the hub is gone.
    Closed,
    /// The client quit (the hub has been told).
    Quit,
    /// A fatal protocol error, already queued for the client.
    Fatal(String),
    /// The client flooded for longer than the grace; the driver says so.
    Flood,
    /// The client did not answer the idle ping; the driver says so.
    PingTimeout,
    /// Another broken limit, already reported to the client; the text is what others
    /// see.
    Limit(&'static str),
    /// The socket failed.
    Io(io::Error),
}

impl ReadEnd {
    /// What the others are told about the departure.
    fn detail(&self) -> Option<String> {
        match self {
            ReadEnd::Closed | ReadEnd::Quit => None,
            ReadEnd::Fatal(_) => Some("protocol error".to_owned()),
            ReadEnd::Flood => Some(EXCESS_FLOOD.to_owned()),
            ReadEnd::PingTimeout => Some(PING_TIMEOUT.to_owned()),
            ReadEnd::Limit(why) => Some((*why).to_owned()),
            ReadEnd::Io(_) => Some("connection error".to_owned()),
        }
    }
}

impl From<ReadEnd> for Ending {
    fn from(end: ReadEnd) -> Ending {
        match end {
            ReadEnd::Closed => Ending::ClientClosed,
            ReadEnd::Quit => Ending::Quit,
            ReadEnd::Fatal(why) => Ending::Protocol(why),
            ReadEnd::Flood => Ending::Limit(EXCESS_FLOOD),
            ReadEnd::PingTimeout => Ending::Limit(PING_TIMEOUT),
            ReadEnd::Limit(why) => Ending::Limit(why),
            ReadEnd::Io(e) => Ending::Io(e),
        }
    }
}

/// What a session is told, and the others see, when it floods.
pub(crate) const EXCESS_FLOOD: &str = "excess flood";

/// What the others see when a session stops answering pings.
pub(crate) const PING_TIMEOUT: &str = "ping timeout";

/// Why a connection is refused before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The server has `max_connections` open.
    ServerFull,
    /// The client's address has `max_connections_per_ip` open.
    TooManyFromAddress,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::ServerFull => "the server is full; try again later",
            Refusal::TooManyFromAddress => "too many connections from your address",
        })
    }
}

/// Why the server says a last word of its own to a connection, in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Farewell {
    /// The server is stopping before the client registered (once a session exists the
    /// hub says it, as an event).
    Shutdown,
    /// The client did not register within `handshake_timeout_secs`.
    HandshakeTimeout,
    /// A TLS handshake arrived on a plain-text port.
    NotTls,
    /// The client sent faster than flood control allows for too long.
    Flood,
    /// The client did not answer the idle ping in time.
    PingTimeout,
}

/// What the registration dialogue asks the driver to do after one input.
pub(crate) enum Dialogue {
    /// Write what was said; the dialogue goes on.
    Continue,
    /// Write what was said, then ask the hub for a session.
    Connect(Connect),
    /// Write what was said, then close.
    End(Ending),
}

/// How a client asks the hub for a session.
pub(crate) enum Connect {
    /// A nick, and a password when it is an account's.
    Nick { nick: String, password: Option<String>, req: RequestId },
    /// An account already verified (SASL).
    Verified { verified: Verified, req: RequestId },
    /// A nick and its account's password, with a resume token issued with the welcome,
    /// described by `description`.
    Remembered { nick: String, password: String, description: String, req: RequestId },
    /// A resume token, for its account.
    Token { token: String, req: RequestId },
}

/// One protocol, driven by [`serve`]: what is said and how, never when.
///
/// Shaped like rumqttd's `Protocol` under its `Network<P>`: the protocol owns decoding,
/// the registration dialogue's wording, turning input into hub commands, its [`Wire`]
/// and its farewells; the driver owns the socket, the buffer, time, pacing and the
/// ending.
pub(crate) trait Protocol: Send + Sized {
    /// One unit of input: a line, a frame, or an answer to give for one that was not.
    type Input: Send;
    /// Whether the driver pings an idle session ([`Protocol::ping`]) and ends one that
    /// does not answer.
    const PINGS: bool;
    /// Whether a new session starts in the lobby (the line protocol's room) or in no
    /// room, choosing its own (IRC).
    const LOBBY: bool = true;

    /// A new connection's state, before anything is read.
    fn new(peer: SocketAddr, shared: &Shared) -> Self;

    /// The session's encoder, made once per session when registration asks the hub
    /// for one, so that what the dialogue settled (a native client's protocol version)
    /// can choose it.
    fn wire(&self) -> Box<dyn Wire>;

    /// Takes one unit from the front of a byte stream's buffer; `None` when more bytes
    /// are needed. Answers for bad input are units too, so nothing is dropped silently.
    fn decode(&mut self, buf: &mut BytesMut) -> Option<Self::Input>;

    /// The last unit at the end of the stream, from what is left in `buf`.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<Self::Input> {
        let _ = buf;
        None
    }

    /// One whole message of a message transport (a WebSocket message carries one line
    /// or one frame): decoded as if it were a stream holding exactly that message and
    /// then ending, so that nothing of it (a unit being skipped) carries into the next.
    fn decode_message(&mut self, message: Bytes) -> Option<Self::Input> {
        let mut buf = BytesMut::from(&message[..]);
        let unit = self.decode(&mut buf).or_else(|| self.decode_eof(&mut buf));
        buf.clear();
        let _ = self.decode_eof(&mut buf);
        unit
    }

    /// What the server says first, before reading anything.
    fn greeting(&self) -> Option<Bytes> {
        None
    }

    /// One unit of the registration dialogue; what to write goes into `out`.
    fn register(
        &mut self,
        input: Self::Input,
        out: &mut BytesMut,
        shared: &Shared,
    ) -> impl Future<Output = Dialogue> + Send;

    /// The hub refused a session (but for shutting down, which is a [`Farewell`]):
    /// words it into `out`; true when the dialogue goes on, false when it ends here.
    fn refused(&mut self, error: &HubError, out: &mut BytesMut) -> bool;

    /// The user name the client gave, if its protocol has one (IRC's `USER`); others
    /// get one made from their nick.
    fn username(&self) -> Option<String> {
        None
    }

    /// Commands to send the hub as soon as the session exists, in order.
    fn registered(&mut self) -> Vec<(RequestId, Command)> {
        Vec::new()
    }

    /// One unit of a session's input: commands to the hub, or answers relayed through
    /// it (see [`Turn`]). An error ends the session.
    fn handle(&mut self, input: Self::Input, turn: &mut Turn<'_>) -> impl Future<Output = Result<(), ReadEnd>> + Send;

    /// The keepalive the driver sends an idle session, when [`Protocol::PINGS`].
    fn ping(&self) -> Option<Bytes> {
        None
    }

    /// The server's last word for `why`, if the protocol has one.
    fn farewell(&self, why: Farewell) -> Option<Bytes>;

    /// What a connection refused at accept reads before it is closed.
    fn refusal(why: Refusal) -> Bytes;
}

/// What a protocol may do while it handles one unit of a session's input.
pub(crate) struct Turn<'a> {
    pub(crate) session: &'a Session,
    throttle: &'a mut Throttle,
    /// What connections share, for what a protocol makes only when first needed.
    pub(crate) shared: &'a Shared,
}

impl Turn<'_> {
    /// Flood control before one command: waits while the session is over its rate;
    /// fails when it has flooded for too long (the driver then says so and ends it).
    pub(crate) async fn pace(&mut self) -> Result<(), ReadEnd> {
        // tokio's clock, so that tests with paused time control it too.
        match self.throttle.admit(&self.shared.limits.flood(), Instant::now().into_std()) {
            Admit::Now => Ok(()),
            Admit::After(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Admit::Flood => Err(ReadEnd::Flood),
        }
    }

    /// Sends the hub a command; its answer comes through the outbox.
    pub(crate) async fn send(&self, req: RequestId, command: Command) -> Result<(), ReadEnd> {
        self.session.send(req, command).await.map_err(|_| ReadEnd::Closed)
    }

    /// Queues an answer the gateway made itself, behind the answers to earlier commands.
    pub(crate) async fn relay(&self, bytes: Bytes) -> Result<(), ReadEnd> {
        self.session.relay(bytes).await.map_err(|_| ReadEnd::Closed)
    }
}

/// Serves one connection with protocol `P`, from the first byte to the last: the
/// registration dialogue under `deadline`, then the session until it ends. Such a
/// connection keeps its task while it is quiet; plain TCP connections park instead
/// ([`parking::serve`]).
///
/// A plain function returning an `async move` block rather than an `async fn`: an
/// `async fn` keeps each argument twice in its future (as given, and moved into its
/// body), for the connection's whole life.
// Not an `async fn`: it would keep each argument twice (see above).
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve<'a, P, R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    deadline: Instant,
    gateway: Gateway,
    shared: &'a Shared,
) -> impl Future<Output = Ending> + Send + 'a
where
    P: Protocol + 'a,
    R: Receive + 'a,
    W: AsyncWrite + Unpin + Send + 'a,
{
    async move {
        match begin::<P, R, W>(reader, writer, peer, deadline, gateway, shared).await {
            // Without parking, `run` returns only with the ending.
            Ok(mut live) => loop {
                if let Some(ending) = live.run(shared, None).await {
                    break ending;
                }
            },
            Err(ending) => Ending::from(ending),
        }
    }
}

/// A registered session's connection: everything its task works with, owned, so that
/// a quiet one can be handed from one task to the next ([`parking`]).
pub(crate) struct Live<P, R, W> {
    input: Input<P, R>,
    writer: W,
    session: Session,
    outbox: Arc<Outbox>,
    gateway: Gateway,
}

/// A session's input side, between its waits.
struct Input<P, R> {
    protocol: P,
    reader: R,
    /// A partial unit; no allocation while there is none.
    buf: BytesMut,
    throttle: Throttle,
    /// When the client is pinged, for protocols that ping; once pinged, when it is
    /// disconnected for not answering.
    idle_at: Instant,
    pinged: bool,
}

/// Where a connection is left after it ended before it had a session: the ending,
/// already handled (the last word said, the socket closed).
pub(crate) struct Unregistered(Ending);

impl From<Unregistered> for Ending {
    fn from(ended: Unregistered) -> Ending {
        ended.0
    }
}

/// The registration dialogue under `deadline`, then the session's start: the commands
/// the protocol sends first, and the session counted.
// Not an `async fn`: it would keep each argument twice (see `serve`).
#[allow(clippy::manual_async_fn)]
fn begin<'a, P, R, W>(
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    deadline: Instant,
    gateway: Gateway,
    shared: &'a Shared,
) -> impl Future<Output = Result<Live<P, R, W>, Unregistered>> + Send + 'a
where
    P: Protocol + 'a,
    R: Receive + 'a,
    W: AsyncWrite + Unpin + Send + 'a,
{
    async move {
        let mut protocol = P::new(peer, shared);
        let mut buf = BytesMut::new();
        // Boxed: the dialogue's state is needed only until the session exists, and would
        // otherwise stay in the connection's future for its whole life.
        let registering = Box::pin(register(&mut protocol, &mut reader, &mut writer, &mut buf, peer, shared));
        let registered = tokio::select! {
            registered = tokio::time::timeout_at(deadline, registering) => match registered {
                Ok(registered) => registered,
                Err(_) => Err(farewell(&protocol, Farewell::HandshakeTimeout, Ending::HandshakeTimeout)),
            },
            () = shared.stopping.cancelled() => Err(farewell(&protocol, Farewell::Shutdown, Ending::Shutdown)),
        };
        let (session, outbox) = match registered {
            Ok(registered) => registered,
            Err((ending, last_word)) => {
                if let Some(bytes) = last_word {
                    let _ = writer.write_all(&bytes).await;
                }
                return Err(Unregistered(close(ending, &mut reader, &mut writer).await));
            }
        };
        tracing::debug!(%peer, session = ?session.id(), "registered");
        for (req, command) in protocol.registered() {
            let _ = Box::pin(session.send(req, command)).await;
        }
        shared.metrics.sessions_by_gateway.add(gateway, 1);
        let now = Instant::now();
        let throttle = Throttle::new(&shared.limits.flood(), now.into_std());
        let idle_at = now + shared.limits.idle_ping();
        let input = Input { protocol, reader, buf, throttle, idle_at, pinged: false };
        Ok(Live { input, writer, session, outbox, gateway })
    }
}

impl<P: Protocol, R: Receive, W: AsyncWrite + Unpin + Send> Live<P, R, W> {
    /// The session, until it ends (the ending, with the socket closed), or with `park`,
    /// until it has been quiet that long (`None`: the caller parks it, or runs it
    /// again). Without `park` it returns only with the ending.
    // Not an `async fn`: it would keep each argument twice (see `serve`).
    #[allow(clippy::manual_async_fn)]
    fn run<'a>(
        &'a mut self,
        shared: &'a Shared,
        park: Option<Duration>,
    ) -> impl Future<Output = Option<Ending>> + Send + 'a
    where
        P: 'a,
        R: 'a,
        W: 'a,
    {
        async move {
            let metrics = &shared.metrics;
            let gateway = self.gateway;
            // Its input feeds the hub, its output drains the outbox. The server's shutdown
            // needs no wait of its own here: the hub says goodbye to every session and
            // closes its outbox (a hub that dies closes them as it goes), and the output
            // side ends the session once that is written.
            let mut out = Output::new(&self.outbox, &mut self.writer, gateway, shared);
            let ending = match read_loop(&mut self.input, &self.session, &mut out, shared, park).await {
                Ok(Flow::Quiet) => return None,
                Ok(Flow::End(end)) => {
                    if !matches!(end, ReadEnd::Quit) {
                        Box::pin(self.session.disconnect(end.detail())).await;
                    }
                    // The hub closes the outbox once it has handled the quit or disconnect;
                    // what was queued before (replies, the error that ended the session)
                    // goes out first.
                    let _ = tokio::time::timeout(shared.limits.shutdown_grace(), out.finish()).await;
                    end.into()
                }
                Err(ending) => ending,
            };
            Box::pin(self.session.disconnect(None)).await;
            metrics.sessions_by_gateway.add(gateway, -1);
            match ending {
                Ending::Limit(EXCESS_FLOOD) => ServerMetrics::count(&metrics.flood_disconnects),
                Ending::Limit(PING_TIMEOUT) => ServerMetrics::count(&metrics.ping_timeouts),
                _ => {}
            }
            Some(close(ending, &mut self.input.reader, &mut self.writer).await)
        }
    }
}

/// An ending with the protocol's last word for it.
fn farewell<P: Protocol>(protocol: &P, why: Farewell, ending: Ending) -> (Ending, Option<Bytes>) {
    (ending, protocol.farewell(why))
}

/// After the server's last word, ends the write side and lingers, so the client reads
/// that word; a connection that ended otherwise is simply dropped.
async fn close<R: Receive, W: AsyncWrite + Unpin>(ending: Ending, reader: &mut R, writer: &mut W) -> Ending {
    let said_last = matches!(
        ending,
        Ending::Quit
            | Ending::ServerClosed
            | Ending::Shutdown
            | Ending::HandshakeTimeout
            | Ending::Protocol(_)
            | Ending::Limit(_)
    );
    if said_last {
        let _ = writer.shutdown().await;
        linger(reader).await;
    }
    ending
}

/// The registration dialogue, until the hub accepts a session: the session and the
/// outbox its events go to. There is no writer yet, so answers go straight to the
/// socket.
async fn register<P, R, W>(
    protocol: &mut P,
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<(Session, Arc<Outbox>), (Ending, Option<Bytes>)>
where
    P: Protocol,
    R: Receive,
    W: AsyncWrite + Unpin,
{
    let io = |e| (Ending::Io(e), None);
    if let Some(greeting) = protocol.greeting() {
        writer.write_all(&greeting).await.map_err(io)?;
        writer.flush().await.map_err(io)?;
    }
    let mut out = BytesMut::new();
    let mut first = true;
    loop {
        let input = loop {
            if let Some(input) = protocol.decode(buf) {
                break Some(input);
            }
            release(buf);
            match reader.receive(buf).await.map_err(io)? {
                Received::Bytes => {}
                Received::Message(message) => break protocol.decode_message(message),
                Received::Closed => match protocol.decode_eof(buf) {
                    Some(input) => break Some(input),
                    None => return Err((Ending::ClientClosed, None)),
                },
            }
            // A TLS ClientHello (record type 22, version 3.x) would otherwise sit in the
            // buffer as an endless line until the deadline.
            if std::mem::take(&mut first) && buf.starts_with(&[0x16, 0x03]) {
                if let Some(refusal) = protocol.farewell(Farewell::NotTls) {
                    let why = "a TLS handshake on a plain-text port".to_owned();
                    return Err((Ending::Protocol(why), Some(refusal)));
                }
            }
        };
        let Some(input) = input else { continue };
        let connect = match protocol.register(input, &mut out, shared).await {
            Dialogue::Continue => None,
            Dialogue::Connect(connect) => Some(connect),
            Dialogue::End(ending) => return Err((ending, Some(out.split().freeze()))),
        };
        if !out.is_empty() {
            writer.write_all(&out).await.map_err(io)?;
            writer.flush().await.map_err(io)?;
            out.clear();
        }
        if let Some(connect) = connect {
            let address = Some(peer.ip());
            let (nick, login, req) = match connect {
                Connect::Nick { nick, password: Some(password), req } => {
                    (nick, Login::Password { password, remember: None }, req)
                }
                Connect::Nick { nick, password: None, req } => (nick, Login::Guest, req),
                Connect::Verified { verified, req } => (verified.account().to_string(), Login::Verified(verified), req),
                Connect::Remembered { nick, password, description, req } => {
                    let remember = Some(parley_hub::clean_description(&description));
                    (nick, Login::Password { password, remember }, req)
                }
                // The account's name, which the token names, becomes the nick.
                Connect::Token { token, req } => (String::new(), Login::Token(token), req),
            };
            let user = protocol.username().unwrap_or_else(|| crate::hosts::username(&nick));
            let arrival = Arrival { address, userhost: shared.hosts.userhost(&user, address), lobby: P::LOBBY };
            let outbox = Arc::new(Outbox::boxed(protocol.wire(), shared.limits.send_queue_bytes));
            let connected = shared.hub.arrive(&nick, login, arrival, req, outbox.clone()).await;
            match connected {
                Ok(session) => return Ok((session, outbox)),
                Err(HubError::ShuttingDown) => {
                    return Err(farewell(protocol, Farewell::Shutdown, Ending::Shutdown));
                }
                Err(e) => {
                    if !protocol.refused(&e, &mut out) {
                        return Err((Ending::ServerClosed, Some(out.split().freeze())));
                    }
                }
            }
        }
        if !out.is_empty() {
            writer.write_all(&out).await.map_err(io)?;
            writer.flush().await.map_err(io)?;
            out.clear();
        }
    }
}

/// A session's input, until it ends: each unit decoded and handed to the protocol,
/// under flood control and, for protocols that ping, an idle deadline. Every wait is
/// also a turn of the writer (`out`), so output keeps flowing whatever the input side
/// waits for; `Err` is the ending when the output side ended the session first. With
/// `park`, it also returns once nothing was read or written for that long, with nothing
/// half-read or half-written: the connection can then park.
///
/// One future for both sides, rather than a reader and a writer future under a
/// `select!`: a quiet connection waits here, and what it holds while it waits is its
/// connection's memory (docs/BENCHMARKS.md, "Idle memory").
// Not an `async fn`: it would keep each argument twice (see `serve`).
#[allow(clippy::manual_async_fn)]
fn read_loop<'a, 'b, P: Protocol, R: Receive, W: AsyncWrite + Unpin>(
    input: &'a mut Input<P, R>,
    session: &'a Session,
    out: &'a mut Output<'b, W>,
    shared: &'a Shared,
    park: Option<Duration>,
) -> impl Future<Output = Result<Flow, Ending>> + use<'a, 'b, P, R, W> {
    async move {
        let gateway = out.gateway;
        let limits = &shared.limits;
        let Input { protocol, reader, buf, throttle, idle_at, pinged } = input;
        // When the connection may park, if it stays quiet, and how much it had written
        // when that was set.
        let mut quiet_at = park.map(|park| (Instant::now() + park, out.batches));
        let mut heard = false;
        let wake_at = |idle_at: Instant, quiet_at: Option<(Instant, u32)>| match (P::PINGS, quiet_at) {
            (true, Some((quiet, _))) => idle_at.min(quiet),
            (true, None) => idle_at,
            (false, Some((quiet, _))) => quiet,
            // Nothing to wake for: the deadline is never polled.
            (false, None) => idle_at,
        };
        let idle = tokio::time::sleep_until(wake_at(*idle_at, quiet_at));
        tokio::pin!(idle);
        let end = 'session: loop {
            // A unit is taken and its work made in plain code, so that only the work (a
            // pointer) is kept across the wait for it, never the unit itself.
            while let Some(work) =
                protocol.decode(buf).map(|input| work(protocol, input, session, throttle, shared, gateway))
            {
                (heard, *pinged) = (true, false);
                if let Err(end) = out.alongside(work).await? {
                    break 'session end;
                }
            }
            if std::mem::take(&mut heard) {
                let now = Instant::now();
                if P::PINGS {
                    *idle_at = now + limits.idle_ping();
                }
                quiet_at = park.map(|park| (now + park, out.batches));
                idle.as_mut().reset(wake_at(*idle_at, quiet_at));
            }
            // Unless a partial unit is buffered, the buffer goes: the wait holds none.
            release(buf);
            let waited = poll_fn(|cx| {
                if let Poll::Ready(ending) = out.poll(cx) {
                    return Poll::Ready(Waited::Output(ending));
                }
                if (P::PINGS || quiet_at.is_some()) && idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Waited::Idle);
                }
                // Cancel-safe: what is read stays in `buf`, so the wait is made afresh for
                // each poll and never kept.
                pin!(reader.receive(buf)).poll(cx).map(Waited::Input)
            })
            .await;
            let (last, closed) = match waited {
                Waited::Output(ending) => return Err(ending),
                Waited::Idle => {
                    let now = Instant::now();
                    if P::PINGS && now >= *idle_at {
                        if *pinged {
                            break ReadEnd::PingTimeout;
                        }
                        *pinged = true;
                        // Silent since the deadline's start: it ends `idle_timeout` after that,
                        // and never sooner than the time to answer after the ping (a parked
                        // connection's ping may go out up to a second late: its alarm's).
                        let silent_since = *idle_at - limits.idle_ping();
                        let answer_within = limits.idle_timeout() - limits.idle_ping();
                        *idle_at = (silent_since + limits.idle_timeout()).max(now + answer_within);
                        if let Some(ping) = protocol.ping() {
                            if out.alongside(Box::pin(session.relay(ping))).await?.is_err() {
                                break ReadEnd::Closed;
                            }
                        }
                    } else if let (Some(park), Some((quiet, written))) = (park, quiet_at) {
                        if now >= quiet {
                            // Quiet since it was set, with nothing half-done: time to park.
                            if written == out.batches && buf.is_empty() && out.is_idle() {
                                return Ok(Flow::Quiet);
                            }
                            quiet_at = Some((now + park, out.batches));
                        }
                    }
                    idle.as_mut().reset(wake_at(*idle_at, quiet_at));
                    continue;
                }
                Waited::Input(Err(e)) => break ReadEnd::Io(e),
                Waited::Input(Ok(Received::Bytes)) => continue,
                Waited::Input(Ok(Received::Message(message))) => (protocol.decode_message(message), false),
                Waited::Input(Ok(Received::Closed)) => (protocol.decode_eof(buf), true),
            };
            if let Some(work) = last.map(|input| work(protocol, input, session, throttle, shared, gateway)) {
                (heard, *pinged) = (true, false);
                if let Err(end) = out.alongside(work).await? {
                    break end;
                }
            }
            if closed {
                break ReadEnd::Closed;
            }
        };
        let why = match end {
            ReadEnd::Flood => Some(Farewell::Flood),
            ReadEnd::PingTimeout => Some(Farewell::PingTimeout),
            _ => None,
        };
        if let Some(bytes) = why.and_then(|why| protocol.farewell(why)) {
            let _ = out.alongside(Box::pin(session.relay(bytes))).await?;
        }
        Ok(Flow::End(end))
    }
}

/// How a session's input side stopped.
enum Flow {
    /// The session ended.
    End(ReadEnd),
    /// Nothing was read or written for the parking time, and nothing is half-done.
    Quiet,
}

/// The work one unit of input makes: its hub commands or answers, under flood control.
/// Boxed, like every wait of a session but the wait for input: what a busy connection
/// needs is allocated while it is busy, and an idle one holds only the wait.
type Work<'a> = Pin<Box<dyn Future<Output = Result<(), ReadEnd>> + Send + 'a>>;

/// The work of one unit (see [`Work`]), counted.
fn work<'a, P: Protocol>(
    protocol: &'a mut P,
    input: P::Input,
    session: &'a Session,
    throttle: &'a mut Throttle,
    shared: &'a Shared,
    gateway: Gateway,
) -> Work<'a> {
    shared.metrics.messages_in.add(gateway, 1);
    Box::pin(async move {
        let mut turn = Turn { session, throttle, shared };
        protocol.handle(input, &mut turn).await
    })
}

/// What one wait of a session's input side brought.
enum Waited {
    /// Input (or its end, or a failure).
    Input(io::Result<Received>),
    /// The idle deadline passed.
    Idle,
    /// The output side ended the session.
    Output(Ending),
}

/// Frees the read buffer when it holds nothing: a connection waiting for input keeps
/// no buffer, and the next read starts one for what arrived.
fn release(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > 0 {
        *buf = BytesMut::new();
    }
}

/// Where the output side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the outbox.
    Waiting,
    /// Writing the batch taken; the outbox is closed after it when `last`.
    Writing { last: bool },
    /// Flushing the batch written.
    Flushing { last: bool },
    /// Ending the write side after the last batch.
    Closing,
}

/// The output side of a session: drains the outbox into the socket, each batch (all
/// that was queued since the last) in one write. A plain state polled by the input
/// side's waits ([`Output::poll`]), not a future of its own: it holds no buffer and no
/// waiting future while the outbox is empty, only the outbox's one waker.
struct Output<'a, W> {
    outbox: &'a Outbox,
    writer: &'a mut W,
    /// The batch being written; empty (no allocation) between batches.
    batch: BytesMut,
    /// How much of `batch` is written.
    written: usize,
    phase: Phase,
    /// Batches written, counting on (wrapping): whether it wrote since a moment.
    batches: u32,
    gateway: Gateway,
    shared: &'a Shared,
}

impl<'a, W: AsyncWrite + Unpin> Output<'a, W> {
    fn new(outbox: &'a Outbox, writer: &'a mut W, gateway: Gateway, shared: &'a Shared) -> Self {
        Output {
            outbox,
            writer,
            batch: BytesMut::new(),
            written: 0,
            phase: Phase::Waiting,
            batches: 0,
            gateway,
            shared,
        }
    }

    /// Waiting for the outbox with nothing in hand: it can be made again from the
    /// outbox and the writer at any time.
    fn is_idle(&self) -> bool {
        self.phase == Phase::Waiting && self.batch.capacity() == 0
    }

    /// Writes what there is to write; `Ready` only when the output side has ended the
    /// session (the outbox closed and everything was written, the outbox overflowed,
    /// or the socket failed). Not to be polled again once it was ready.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Ending> {
        // A socket whose `send` never finishes is dropped as soon as the outbox dies.
        if self.outbox.poll_dead(cx).is_ready() {
            return Poll::Ready(Ending::SlowConsumer);
        }
        match self.poll_write(cx) {
            Poll::Ready(Ok(())) if self.shared.stopping.is_cancelled() => Poll::Ready(Ending::Shutdown),
            Poll::Ready(Ok(())) => Poll::Ready(Ending::ServerClosed),
            Poll::Ready(Err(e)) => Poll::Ready(Ending::Io(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The write side's steps, until the outbox is closed and written, or `Pending`.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut writer = Pin::new(&mut *self.writer);
        loop {
            match self.phase {
                Phase::Waiting => {
                    let batch = ready!(self.outbox.poll_take(cx, &mut self.batch));
                    let last = match batch {
                        Batch::Dead => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                        Batch::Bytes => false,
                        Batch::Last => true,
                    };
                    self.written = 0;
                    self.phase = Phase::Writing { last };
                }
                Phase::Writing { last } => {
                    while self.written < self.batch.len() {
                        let n = ready!(writer.as_mut().poll_write(cx, &self.batch[self.written..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        self.written += n;
                    }
                    self.phase = Phase::Flushing { last };
                }
                Phase::Flushing { last } => {
                    // A no-op on TCP and TLS; a message transport sends what it cut here.
                    ready!(writer.as_mut().poll_flush(cx))?;
                    if !self.batch.is_empty() {
                        let sent = i64::try_from(self.batch.len()).unwrap_or(i64::MAX);
                        self.shared.metrics.bytes_out.add(self.gateway, sent);
                        // The written buffer goes back to the shared pool: the next batch
                        // is queued in another (the outbox takes one when it starts
                        // queueing), and an idle session holds no output memory at all.
                        Outbox::recycle(std::mem::take(&mut self.batch));
                    }
                    self.batches = self.batches.wrapping_add(1);
                    self.phase = if last { Phase::Closing } else { Phase::Waiting };
                }
                Phase::Closing => return writer.as_mut().poll_shutdown(cx),
            }
        }
    }

    /// Runs `work` while the output side keeps writing; `Err` with the ending when the
    /// output side ended the session first (and `work` is dropped). A plain function
    /// returning a `poll_fn`, like [`serve`], so that its arguments are kept once.
    fn alongside<'s, F: Future + Unpin + 's>(
        &'s mut self,
        mut work: F,
    ) -> impl Future<Output = Result<F::Output, Ending>> + use<'s, 'a, F, W> {
        poll_fn(move |cx| {
            if let Poll::Ready(ending) = self.poll(cx) {
                return Poll::Ready(Err(ending));
            }
            Pin::new(&mut work).poll(cx).map(Ok)
        })
    }

    /// Writes until the output side ends.
    async fn finish(&mut self) -> Ending {
        poll_fn(|cx| self.poll(cx)).await
    }
}

/// Reads and discards input for a short while after the server has said its last word,
/// so the client reads that word before the connection goes away.
async fn linger<R: Receive>(reader: &mut R) {
    let _ = tokio::time::timeout(LINGER, reader.discard()).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parley_proto::msg::{encode_request, Received, Request, ServerMsg, PROTOCOL_VERSION};
    use parley_proto::native::FrameDecoder;
    use tokio::io::{AsyncReadExt, DuplexStream};
    use tokio::sync::mpsc;

    use super::{irc, native, Bytes, BytesMut, Ending, Gateway, Instant, Protocol, Receive, Shared, SocketAddr};
    use crate::gateway::transport::Received as Arrived;
    use std::io;

    /// A message transport, as a WebSocket's will be: each message one unit.
    struct Messages(mpsc::Receiver<Bytes>);

    impl Receive for Messages {
        async fn receive(&mut self, _: &mut BytesMut) -> io::Result<Arrived> {
            Ok(self.0.recv().await.map_or(Arrived::Closed, Arrived::Message))
        }

        async fn discard(&mut self) {
            while self.0.recv().await.is_some() {}
        }
    }

    /// Serves one connection of `P` over [`Messages`]; returns the sender of its input,
    /// the reading end of its output and the task that ends with the connection.
    async fn over_messages<P: Protocol + 'static>(
    ) -> (mpsc::Sender<Bytes>, DuplexStream, tokio::task::JoinHandle<Ending>) {
        let shared = Shared::for_tests().await;
        let (input, messages) = mpsc::channel(8);
        let (server, client) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from(([127, 0, 0, 1], 1));
        let deadline = Instant::now() + Duration::from_secs(10);
        let task = tokio::spawn(async move {
            super::serve::<P, _, _>(Messages(messages), server, peer, deadline, Gateway::Ws, &shared).await
        });
        (input, client, task)
    }

    /// Reads onto `seen` until `text` is in it, and keeps what follows `text` there.
    async fn read_until(output: &mut DuplexStream, seen: &mut Vec<u8>, text: &str) {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = seen.windows(text.len()).position(|w| w == text.as_bytes()) {
                seen.drain(..at + text.len());
                return;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), output.read(&mut chunk))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "closed before {text:?}: {}", String::from_utf8_lossy(seen));
            seen.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn irc_runs_over_a_message_transport() {
        let (input, mut output, task) = over_messages::<irc::Irc>().await;
        for line in ["NICK web", "USER web 0 * :On the web", "JOIN #lobby"] {
            input.send(Bytes::from(line)).await.expect("sent");
        }
        let mut seen = Vec::new();
        read_until(&mut output, &mut seen, " 001 web ").await;
        read_until(&mut output, &mut seen, " 366 web #lobby ").await;
        // A line too long is refused, and the message after it is read whole.
        input.send(Bytes::from(format!("PRIVMSG #lobby :{}", "x".repeat(9000)))).await.expect("sent");
        read_until(&mut output, &mut seen, " 417 web ").await;
        input.send(Bytes::from("QUIT :bye")).await.expect("sent");
        read_until(&mut output, &mut seen, "ERROR :").await;
        assert!(matches!(task.await.expect("ends"), Ending::Quit));
    }

    #[tokio::test]
    async fn native_runs_over_a_message_transport() {
        let (input, mut output, task) = over_messages::<native::Native>().await;
        let mut frame = BytesMut::new();
        let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "webby".into(), password: None };
        encode_request(1, &hello, b"", &mut frame).expect("encodes");
        input.send(frame.split().freeze()).await.expect("sent");
        encode_request(2, &Request::Ping, b"", &mut frame).expect("encodes");
        input.send(frame.split().freeze()).await.expect("sent");
        let mut decoder = FrameDecoder::new(64 * 1024, 1024 * 1024).accepting_compact();
        let mut got = BytesMut::new();
        let mut ids = Vec::new();
        let mut chunk = [0u8; 4096];
        while !ids.contains(&2) {
            let n = tokio::time::timeout(Duration::from_secs(10), output.read(&mut chunk))
                .await
                .expect("in time")
                .expect("read");
            assert!(n > 0, "closed before the answers");
            got.extend_from_slice(&chunk[..n]);
            while let Some(frame) = decoder.decode(&mut got).expect("a frame") {
                if let Ok(Received { msg: ServerMsg::Result { id }, .. }) = Received::from_frame(frame) {
                    ids.push(id);
                }
            }
        }
        assert_eq!(ids, vec![1, 2], "welcomed, then answered");
        drop(input);
        assert!(matches!(task.await.expect("ends"), Ending::ClientClosed));
    }
}
