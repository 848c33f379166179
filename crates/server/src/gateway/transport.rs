//! What a connection's input arrives through: a byte stream (TCP, TLS), whose bytes
//! the driver appends to the connection's buffer for the protocol to cut into units,
//! or a message transport (a WebSocket), each of whose messages is one unit.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;

/// Bytes read at once into a connection that holds no buffer: on the stack of one
/// poll, never in the connection's state. Most chat input is a short line or frame.
const STACK_READ: usize = 2048;

/// A buffer holding a partial unit grows by at least this much, doubling while reads
/// fill it.
const READ_CHUNK: usize = 512;

/// What one wait for input brought.
pub(crate) enum Received {
    /// Bytes, appended to the buffer.
    Bytes,
    /// One whole message.
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

    /// For a connection about to park: `Ready` when input (or its end) is waiting,
    /// else `Pending`, and `cx`'s waker is woken when it comes. Reads nothing. A
    /// transport that cannot tell says `Ready`, so its connections never park.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }
}

/// A byte stream's reading half (TLS).
pub(crate) struct Stream<R>(pub(crate) R);

impl<R: AsyncRead + Unpin + Send> Receive for Stream<R> {
    fn receive(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<Received>> + Send {
        receive_bytes(&mut self.0, buf)
    }

    fn discard(&mut self) -> impl Future<Output = ()> + Send {
        discard_bytes(&mut self.0)
    }
}

/// A plain TCP connection's reading half: a byte stream whose readiness can be
/// watched without reading, so its connections can park.
pub(crate) struct Tcp(pub(crate) OwnedReadHalf);

impl Receive for Tcp {
    fn receive(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<Received>> + Send {
        receive_bytes(&mut self.0, buf)
    }

    fn discard(&mut self) -> impl Future<Output = ()> + Send {
        discard_bytes(&mut self.0)
    }

    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Readiness for reading includes the end of input and a failure.
        self.0.as_ref().poll_read_ready(cx).map(|_| ())
    }
}

/// [`Receive::receive`] for a byte stream.
fn receive_bytes<'r, 'b, R: AsyncRead + Unpin + Send>(
    reader: &'r mut R,
    buf: &'b mut BytesMut,
) -> impl Future<Output = io::Result<Received>> + Send + use<'r, 'b, R> {
    poll_fn(move |cx| {
        let read = if buf.capacity() == 0 {
            // No buffer while idle: what arrives is read onto the stack, during this
            // poll only, and a buffer is made for just that much.
            let mut stack = [0u8; STACK_READ];
            let mut read = ReadBuf::new(&mut stack);
            ready!(Pin::new(&mut *reader).poll_read(cx, &mut read)).map(|()| {
                buf.extend_from_slice(read.filled());
                read.filled().len()
            })
        } else {
            // A partial unit is buffered: read onto its end, growing by doubling.
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(buf.capacity().clamp(READ_CHUNK, 64 * 1024));
            }
            // `read_buf`'s future holds nothing but its two references, so making
            // one per poll loses nothing.
            ready!(pin!(reader.read_buf(buf)).poll(cx))
        };
        Poll::Ready(match read {
            Ok(0) => Ok(Received::Closed),
            Ok(_) => Ok(Received::Bytes),
            // Most TLS clients close the socket without a close_notify alert; for a
            // chat session that is an ordinary end of input, not a failure.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Received::Closed),
            Err(e) => Err(e),
        })
    })
}

/// [`Receive::discard`] for a byte stream.
fn discard_bytes<R: AsyncRead + Unpin + Send>(reader: &mut R) -> impl Future<Output = ()> + Send + '_ {
    poll_fn(move |cx| loop {
        let mut scratch = [0u8; STACK_READ];
        let mut read = ReadBuf::new(&mut scratch);
        match ready!(Pin::new(&mut *reader).poll_read(cx, &mut read)) {
            Ok(()) if !read.filled().is_empty() => {}
            _ => return Poll::Ready(()),
        }
    })
}
