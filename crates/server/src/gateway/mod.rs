//! Gateways: one module per protocol, over one connection driver.
//!
//! Every connection has two halves run by one task: a reader that decodes the client's
//! input and sends commands to the hub, and a writer that drains the session's
//! [`Outbox`]. Only the writer writes to the socket once the session exists.

pub(crate) mod irc;
pub(crate) mod line;
pub(crate) mod native;
pub(crate) mod words;

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{Admit, Batch, Outbox, Session, Throttle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::Shared;

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, so that closing with unread input does not reset the connection and destroy
/// the farewell the client has not read yet.
const LINGER: Duration = Duration::from_millis(500);

/// A read buffer starts this small (most chat input is a short line or frame) and
/// doubles while reads fill it.
const READ_CHUNK: usize = 512;

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

/// Why a reader loop stopped.
pub(crate) enum ReadEnd {
    /// End of input.
    Closed,
    /// The client quit (the hub has been told).
    Quit,
    /// A fatal protocol error, already queued for the client.
    Fatal(String),
    /// A broken limit, already reported to the client; the text is what others see.
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
            ReadEnd::Limit(why) => Ending::Limit(why),
            ReadEnd::Io(e) => Ending::Io(e),
        }
    }
}

/// Reads more bytes into `buf`; `Ok(0)` is the end of input.
pub(crate) async fn read_more<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(buf.capacity().clamp(READ_CHUNK, 64 * 1024));
    }
    match reader.read_buf(buf).await {
        // Most TLS clients close the socket without a close_notify alert; for a chat
        // session that is an ordinary end of input, not a failure.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        read => read,
    }
}

/// What a session is told, and the others see, when it floods.
pub(crate) const EXCESS_FLOOD: &str = "excess flood";

/// What the others see when a session stops answering pings.
pub(crate) const PING_TIMEOUT: &str = "ping timeout";

/// Flood control before one command: waits when the session is over its rate. False
/// means the session has flooded for too long and must be disconnected.
pub(crate) async fn pace(throttle: &mut Throttle) -> bool {
    // tokio's clock, so that tests with paused time control it too.
    match throttle.admit(tokio::time::Instant::now().into_std()) {
        Admit::Now => true,
        Admit::After(wait) => {
            tokio::time::sleep(wait).await;
            true
        }
        Admit::Flood => false,
    }
}

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

/// How a writer loop stopped without an I/O error.
enum WriterEnd {
    /// The outbox closed and everything in it was written.
    Flushed,
    /// The outbox overflowed.
    Dead,
}

/// Drains the outbox into the socket: each wake-up writes everything queued in one call.
async fn write_loop<W: AsyncWrite + Unpin>(outbox: &Outbox, writer: &mut W) -> io::Result<WriterEnd> {
    let mut buf = BytesMut::new();
    loop {
        let batch = outbox.take(&mut buf).await;
        if batch == Batch::Dead {
            return Ok(WriterEnd::Dead);
        }
        if !buf.is_empty() {
            writer.write_all(&buf).await?;
            // The written buffer goes back to the shared pool: the next batch is queued in
            // another (the outbox takes one when it starts queueing), and an idle session
            // holds no output memory at all.
            Outbox::recycle(std::mem::take(&mut buf));
        }
        if batch == Batch::Last {
            writer.flush().await?;
            writer.shutdown().await?;
            return Ok(WriterEnd::Flushed);
        }
    }
}

/// Runs a registered session until it ends: `reader` feeds the hub, the writer drains
/// `outbox`. Tells the hub when the session ends, whichever side ended it.
pub(crate) async fn drive<W: AsyncWrite + Unpin>(
    session: &Session,
    outbox: &Outbox,
    reader: impl Future<Output = ReadEnd>,
    writer: &mut W,
    shared: &Shared,
) -> Ending {
    let grace = shared.limits.shutdown_grace();
    let writing = write_loop(outbox, writer);
    tokio::pin!(reader, writing);
    let ending = tokio::select! {
        end = &mut reader => {
            if !matches!(end, ReadEnd::Quit) {
                session.disconnect(end.detail()).await;
            }
            // The hub closes the outbox once it has handled the quit or disconnect; what
            // was queued before (replies, the error that ended the session) goes out first.
            let _ = tokio::time::timeout(grace, &mut writing).await;
            end.into()
        }
        written = &mut writing => match written {
            Ok(WriterEnd::Flushed) => Ending::ServerClosed,
            Ok(WriterEnd::Dead) => Ending::SlowConsumer,
            Err(e) => Ending::Io(e),
        },
        () = outbox.dead() => Ending::SlowConsumer,
        () = shared.stopping.cancelled() => {
            // The hub has been told to say goodbye to everyone and close every outbox.
            let _ = tokio::time::timeout(grace, &mut writing).await;
            Ending::Shutdown
        }
    };
    session.disconnect(None).await;
    ending
}

/// Reads and discards input for a short while after the server has said its last word,
/// so the client reads that word before the connection goes away.
pub(crate) async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    let mut scratch = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = reader.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
