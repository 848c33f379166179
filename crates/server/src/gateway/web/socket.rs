//! The WebSocket transport under the connection driver: each message received is one
//! unit of input ([`Received::Message`]), and the driver's output, written as a byte
//! stream of whole units, is cut back into one message per unit (a native frame, or an
//! IRC line without its CRLF).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parley_proto::native::{Envelope, PREFIX_LEN};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::gateway::{Receive, Received};

/// What a WebSocket runs over: the connection's own stream (TCP, or TLS over it),
/// taken back from the HTTP server once it upgraded.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for S {}

/// How the driver's output is cut into messages, and what input is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `/ws`: one native frame per binary message; a text message is refused.
    Native,
    /// `/irc` with `binary.ircv3.net`: one IRC line per binary message (the client may
    /// send text messages too).
    IrcBinary,
    /// `/irc` with `text.ircv3.net`, or no subprotocol: one IRC line per text message,
    /// made valid UTF-8 (U+FFFD for what is not). A text message that is not UTF-8
    /// closes the connection.
    IrcText,
}

/// The receiving half.
pub(crate) struct WsReceiver<S> {
    stream: SplitStream<WebSocketStream<S>>,
    framing: Framing,
}

/// The sending half: an [`AsyncWrite`] that cuts what it is given into messages.
pub(crate) struct WsSender<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    framing: Framing,
    /// Written bytes not yet cut into a whole unit.
    pending: BytesMut,
    /// Whole units not yet handed to the socket.
    ready: VecDeque<Message>,
}

/// The two halves of `socket`.
pub(crate) fn split<S: Io>(socket: WebSocketStream<S>, framing: Framing) -> (WsReceiver<S>, WsSender<S>) {
    let (sink, stream) = socket.split();
    (WsReceiver { stream, framing }, WsSender { sink, framing, pending: BytesMut::new(), ready: VecDeque::new() })
}

fn failed(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: Io> Receive for WsReceiver<S> {
    async fn receive(&mut self, _buf: &mut BytesMut) -> io::Result<Received> {
        // Cancel-safe: a message is taken from the stream only in the poll that returns it.
        loop {
            return match self.stream.next().await {
                None | Some(Ok(Message::Close(_)) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    Ok(Received::Closed)
                }
                Some(Ok(Message::Binary(bytes))) => Ok(Received::Message(bytes)),
                Some(Ok(Message::Text(text))) => {
                    if self.framing == Framing::Native {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a text message on /ws, which carries binary frames only",
                        ));
                    }
                    Ok(Received::Message(Bytes::from(text)))
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(e)) => Err(failed(e)),
            };
        }
    }

    async fn discard(&mut self) {
        while let Some(Ok(_)) = self.stream.next().await {}
    }
}

impl<S: Io> WsSender<S> {
    /// Moves every whole unit of `pending` into `ready`, as one message each.
    fn cut(&mut self) {
        loop {
            let message = match self.framing {
                Framing::Native => {
                    let Some(len) = native_frame_len(&self.pending) else { return };
                    Message::Binary(self.pending.split_to(len).freeze())
                }
                Framing::IrcBinary | Framing::IrcText => {
                    let Some(end) = self.pending.iter().position(|&b| b == b'\n') else { return };
                    let mut line = self.pending.split_to(end + 1);
                    line.truncate(end);
                    if line.last() == Some(&b'\r') {
                        line.truncate(end - 1);
                    }
                    if line.is_empty() {
                        continue;
                    }
                    if self.framing == Framing::IrcBinary {
                        Message::Binary(line.freeze())
                    } else {
                        match String::from_utf8(line.to_vec()) {
                            Ok(text) => Message::text(text),
                            Err(e) => Message::text(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                        }
                    }
                }
            };
            self.ready.push_back(message);
        }
    }

    /// Hands every ready message to the socket (not yet flushed).
    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.ready.is_empty() {
            ready!(self.sink.poll_ready_unpin(cx)).map_err(failed)?;
            if let Some(message) = self.ready.pop_front() {
                self.sink.start_send_unpin(message).map_err(failed)?;
            }
        }
        // A queue keeps the room of its longest batch (the welcome, a names list: about
        // 2 KiB of places); an idle session keeps none.
        if self.ready.capacity() > 0 {
            self.ready = VecDeque::new();
        }
        Poll::Ready(Ok(()))
    }
}

/// The length of the native frame at the front of `buf`, when it is all there. The
/// bytes are the server's own encoding, so the header parses; if it ever did not, the
/// rest goes as one message rather than never.
fn native_frame_len(buf: &BytesMut) -> Option<usize> {
    if buf.len() < PREFIX_LEN {
        return None;
    }
    let header_len = usize::from((&buf[..PREFIX_LEN]).get_u16());
    let header_end = PREFIX_LEN + header_len;
    let header = buf.get(PREFIX_LEN..header_end)?;
    let total = match serde_json::from_slice::<Envelope>(header) {
        Ok(envelope) => {
            usize::try_from(envelope.content_length).ok().map_or(usize::MAX, |n| header_end.saturating_add(n))
        }
        Err(_) => buf.len(),
    };
    (buf.len() >= total).then_some(total)
}

impl<S: Io> AsyncWrite for WsSender<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was cut before goes first: a socket that does not take messages stops
        // taking bytes too.
        ready!(this.poll_send_ready(cx))?;
        this.pending.extend_from_slice(buf);
        this.cut();
        if this.pending.is_empty() {
            // The messages cut from it share its allocation; an idle session keeps none.
            this.pending = BytesMut::new();
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_ready(cx))?;
        this.sink.poll_flush_unpin(cx).map_err(failed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        // A close frame, then the end of the stream.
        match ready!(self.get_mut().sink.poll_close_unpin(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(failed(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::native::encode_frame;

    #[test]
    fn native_frames_are_found_whole() {
        let mut buf = BytesMut::new();
        encode_frame(&serde_json::json!({"type": "ping"}), None, b"", &mut buf).expect("encodes");
        encode_frame(&serde_json::json!({"type": "message"}), Some("text/plain"), b"hello", &mut buf).expect("encodes");
        let first = native_frame_len(&buf).expect("a whole frame");
        let mut rest = buf.split_off(first);
        assert_eq!(native_frame_len(&rest), Some(rest.len()), "the second frame, payload included");
        rest.truncate(rest.len() - 1);
        assert_eq!(native_frame_len(&rest), None, "a frame missing a byte of payload is not whole");
        assert_eq!(native_frame_len(&BytesMut::from(&[0u8][..])), None);
    }
}
