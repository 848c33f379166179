//! What a connection's input arrives through: a byte stream (TCP, TLS), whose bytes
//! the driver appends to the connection's buffer for the protocol to cut into units,
//! or a message transport (a WebSocket), each of whose messages is one unit.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// A read buffer starts this small (most chat input is a short line or frame) and
/// doubles while reads fill it.
const READ_CHUNK: usize = 512;

/// What one wait for input brought.
pub(crate) enum Received {
    /// Bytes, appended to the buffer.
    Bytes,
    /// One whole message.
    #[allow(dead_code, reason = "message transports come with the WebSocket listener")]
    Message(Bytes),
    /// The end of input.
    Closed,
}

/// The receiving half of a transport.
pub(crate) trait Receive: Send + Unpin {
    /// Waits for input: appends bytes to `buf`, or returns a message. Cancel-safe:
    /// nothing read is lost when the wait is dropped.
    fn receive(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<Received>> + Send;

    /// Reads and drops input until its end (or a failure).
    fn discard(&mut self) -> impl Future<Output = ()> + Send;
}

/// A byte stream's reading half (TCP or TLS).
pub(crate) struct Stream<R>(pub(crate) R);

impl<R: AsyncRead + Unpin + Send> Receive for Stream<R> {
    async fn receive(&mut self, buf: &mut BytesMut) -> io::Result<Received> {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(buf.capacity().clamp(READ_CHUNK, 64 * 1024));
        }
        match self.0.read_buf(buf).await {
            Ok(0) => Ok(Received::Closed),
            Ok(_) => Ok(Received::Bytes),
            // Most TLS clients close the socket without a close_notify alert; for a chat
            // session that is an ordinary end of input, not a failure.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Received::Closed),
            Err(e) => Err(e),
        }
    }

    async fn discard(&mut self) {
        let mut scratch = [0u8; 1024];
        while let Ok(n) = self.0.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    }
}
