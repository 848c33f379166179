//! One benchmark client: registers over one of the protocols, then sends messages and
//! reads whatever arrives, with as little work per message as the measurement allows.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use parley_proto::msg::{encode_request, Received, Reply, Request, ServerMsg};
use parley_proto::native::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;

use crate::irc::{self, Line};
use crate::BenchError;

/// Which protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// The framed native protocol.
    Native,
    /// The classic line protocol.
    Line,
    /// IRC (RFC 1459/2812 as clients use it): Parley's IRC gateway or any IRC server.
    Irc,
}

/// The id of the native `ping` requests that answer the server's keepalive pings, so
/// their answers are not mistaken for acknowledgements of messages.
const KEEPALIVE_ID: u64 = u64::MAX;

/// Where and how one client connects.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    /// The server.
    pub(crate) addr: SocketAddr,
    /// The protocol.
    pub(crate) proto: Proto,
    /// Native: the protocol version asked for in `hello`.
    pub(crate) native_version: u32,
    /// The local address to connect from (`None`: the kernel picks).
    pub(crate) source: Option<IpAddr>,
    /// IRC: the channel to join after registering.
    pub(crate) channel: String,
    /// How long connecting, registering and joining may take.
    pub(crate) timeout: Duration,
}

/// Something a client read.
pub(crate) enum Incoming<'a> {
    /// A room message's text.
    Message(&'a [u8]),
    /// An acknowledgement of one of our own messages (native only).
    Ack,
    /// Anything else (joins, lists, …).
    Other,
}

/// The socket's write half, shared: the [`Writer`] sends messages, the [`Reader`]
/// answers keepalive pings (IRC `PING`, native `ping` events) as they arrive, which it
/// must do even for clients that never send. An uncontended async lock costs far less
/// than the `send` it guards, and it keeps a `PONG` from landing inside a message.
type SharedWrite = Arc<Mutex<OwnedWriteHalf>>;

pub(crate) struct Reader {
    proto: Proto,
    socket: OwnedReadHalf,
    write: SharedWrite,
    buf: BytesMut,
    frames: FrameDecoder,
    /// Between a line server's history markers: past messages, not this run's.
    in_history: bool,
    /// Keepalive answers owed to the server, written after the current read's items.
    owed: Vec<u8>,
}

pub(crate) struct Writer {
    proto: Proto,
    socket: SharedWrite,
    channel: String,
    out: BytesMut,
    next_id: u64,
}

/// Connects and registers as `nick`; the client is then in the lobby (native, line) or
/// in `dial.channel` (IRC, once the server has sent the channel's names).
pub(crate) async fn connect(dial: &Dial, nick: &str) -> Result<(Reader, Writer), BenchError> {
    tokio::time::timeout(dial.timeout, connect_now(dial, nick))
        .await
        .map_err(|_| BenchError::Timeout(format!("registration took over {:?}", dial.timeout)))?
}

async fn connect_now(dial: &Dial, nick: &str) -> Result<(Reader, Writer), BenchError> {
    let stream = match dial.source {
        // tokio's own socket binds before connecting; no need for socket2 here.
        Some(source) => {
            let socket = if dial.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(dial.addr).await?
        }
        None => TcpStream::connect(dial.addr).await?,
    };
    stream.set_nodelay(true)?;
    let (socket, write) = stream.into_split();
    let write = Arc::new(Mutex::new(write));
    let mut reader = Reader {
        proto: dial.proto,
        socket,
        write: write.clone(),
        buf: BytesMut::with_capacity(4 * 1024),
        frames: FrameDecoder::new(65_535, 1 << 20).accepting_compact(),
        in_history: false,
        owed: Vec::new(),
    };
    let mut writer =
        Writer { proto: dial.proto, socket: write, channel: dial.channel.clone(), out: BytesMut::new(), next_id: 1 };
    match dial.proto {
        Proto::Native => {
            let hello = Request::Hello { version: dial.native_version, nick: nick.to_owned(), password: None };
            writer.request(&hello, b"").await?;
            loop {
                let frame = reader.next_frame().await?;
                let received = Received::from_frame(frame).map_err(|e| BenchError::Protocol(e.to_string()))?;
                match received.msg {
                    ServerMsg::Result { .. } if matches!(received.reply(), Ok(Reply::Welcome { .. })) => break,
                    ServerMsg::Error { message, .. } => return Err(BenchError::Protocol(message)),
                    _ => {}
                }
            }
        }
        Proto::Line => {
            writer.write(format!("{nick}\n").as_bytes()).await?;
            let welcome = format!("Welcome to the chat, {nick}!");
            loop {
                let line = reader.next_line().await?;
                if line.ends_with(welcome.as_bytes()) {
                    break;
                }
                if line.starts_with(b"Sorry") || line.starts_with(b"The name") {
                    return Err(BenchError::Protocol(String::from_utf8_lossy(&line).into_owned()));
                }
            }
        }
        Proto::Irc => {
            let mut out = Vec::new();
            irc::register(nick, &mut out);
            writer.write(&out).await?;
            reader.irc_until(|line| matches!(line, Line::Welcome)).await?;
            writer.write(format!("JOIN {}\r\n", dial.channel).as_bytes()).await?;
            let channel = dial.channel.as_bytes();
            reader.irc_until(|line| matches!(line, Line::EndOfNames(c) if c.eq_ignore_ascii_case(channel))).await?;
        }
    }
    Ok((reader, writer))
}

impl Writer {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), BenchError> {
        self.socket.lock().await.write_all(bytes).await?;
        Ok(())
    }

    async fn request(&mut self, request: &Request, payload: &[u8]) -> Result<(), BenchError> {
        self.out.clear();
        encode_request(self.next_id, request, payload, &mut self.out)
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        self.next_id += 1;
        self.socket.lock().await.write_all(&self.out).await?;
        Ok(())
    }

    /// Says `text` in the lobby (native, line) or the channel (IRC).
    pub(crate) async fn say(&mut self, text: &str) -> Result<(), BenchError> {
        match self.proto {
            Proto::Native => {
                self.request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, text.as_bytes()).await
            }
            Proto::Line => {
                self.out.clear();
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\n");
                self.socket.lock().await.write_all(&self.out).await?;
                Ok(())
            }
            Proto::Irc => {
                self.out.clear();
                irc::privmsg(&self.channel, text, &mut self.out);
                self.socket.lock().await.write_all(&self.out).await?;
                Ok(())
            }
        }
    }

    /// Leaves the chat the protocol's way; the server then closes the connection.
    pub(crate) async fn quit(&mut self) -> Result<(), BenchError> {
        match self.proto {
            Proto::Native => self.request(&Request::Quit { reason: None }, b"").await,
            Proto::Line => self.write(b"/quit\n").await,
            Proto::Irc => self.write(b"QUIT :bench done\r\n").await,
        }
    }
}

impl Reader {
    async fn fill(&mut self) -> Result<(), BenchError> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        if self.socket.read_buf(&mut self.buf).await? == 0 {
            return Err(BenchError::Protocol("the server closed the connection".into()));
        }
        Ok(())
    }

    /// Writes the keepalive answers the last read made us owe.
    async fn pay(&mut self) -> Result<(), BenchError> {
        if !self.owed.is_empty() {
            self.write.lock().await.write_all(&self.owed).await?;
            self.owed.clear();
        }
        Ok(())
    }

    async fn next_frame(&mut self) -> Result<parley_proto::native::Frame, BenchError> {
        loop {
            if let Some(frame) = self.frames.decode(&mut self.buf).map_err(|e| BenchError::Protocol(e.to_string()))? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    async fn next_line(&mut self) -> Result<Vec<u8>, BenchError> {
        loop {
            if let Some(end) = find_newline(&self.buf) {
                let line = self.buf.split_to(end + 1);
                return Ok(line[..end].to_vec());
            }
            self.fill().await?;
        }
    }

    /// Reads IRC lines, answering `PING`s, until `done` accepts one; a refusal ends it.
    async fn irc_until(&mut self, mut done: impl FnMut(&Line<'_>) -> bool) -> Result<(), BenchError> {
        loop {
            let line = self.next_line().await?;
            match irc::parse(&line) {
                Line::Ping(token) => {
                    let mut pong = b"PONG ".to_vec();
                    pong.extend_from_slice(token);
                    pong.extend_from_slice(b"\r\n");
                    self.write.lock().await.write_all(&pong).await?;
                }
                Line::Refused(text) => return Err(BenchError::Protocol(String::from_utf8_lossy(text).into_owned())),
                parsed if done(&parsed) => return Ok(()),
                _ => {}
            }
        }
    }

    /// Reads what is buffered or arrives next, handing each item to `each`; returns
    /// after one read's worth, so the caller can check its deadline. Cancel-safe while
    /// it waits for the socket (what was read stays in the buffer); cancelled while
    /// answering a keepalive, it only loses that answer.
    pub(crate) async fn drain(&mut self, each: impl FnMut(Incoming<'_>)) -> Result<(), BenchError> {
        self.fill().await?;
        self.each(each)?;
        self.pay().await
    }

    /// Waits for the next read's worth of bytes (one `read`). Cancel-safe: what was
    /// read stays in the buffer for [`Reader::each`].
    pub(crate) async fn read_some(&mut self) -> Result<(), BenchError> {
        self.fill().await
    }

    /// Writes the keepalive answers the last items made us owe.
    pub(crate) async fn pay_owed(&mut self) -> Result<(), BenchError> {
        self.pay().await
    }

    /// Hands each whole item buffered to `each`, without waiting; what is left is the
    /// start of an item still arriving. Keepalives seen are owed until [`Reader::pay_owed`].
    ///
    /// This runs once per delivery, up to several million times a second on one core:
    /// lines are found a word at a time and consumed with one `advance` per read.
    pub(crate) fn each(&mut self, mut each: impl FnMut(Incoming<'_>)) -> Result<(), BenchError> {
        match self.proto {
            Proto::Native => {
                while let Some(frame) =
                    self.frames.decode(&mut self.buf).map_err(|e| BenchError::Protocol(e.to_string()))?
                {
                    // The framing layer already read the type; only messages carry text.
                    match frame.envelope.kind.as_deref() {
                        Some("message") => each(Incoming::Message(&frame.payload)),
                        Some("result") if frame.envelope.id != Some(KEEPALIVE_ID) => each(Incoming::Ack),
                        Some("ping") => {
                            let mut out = BytesMut::new();
                            encode_request(KEEPALIVE_ID, &Request::Ping, b"", &mut out)
                                .map_err(|e| BenchError::Protocol(e.to_string()))?;
                            self.owed.extend_from_slice(&out);
                        }
                        _ => each(Incoming::Other),
                    }
                }
            }
            Proto::Line => {
                let mut start = 0;
                while let Some(end) = find_newline(&self.buf[start..]).map(|at| start + at) {
                    // "[HH:MM:SS] nick: text": the text starts after the first ": ".
                    let line = &self.buf[start..end];
                    if line.starts_with(b"--- History of ") {
                        self.in_history = true;
                    } else if line.starts_with(b"--- End of history ---") {
                        self.in_history = false;
                    }
                    match line.windows(2).position(|w| w == b": ") {
                        Some(at) if !self.in_history && line.get(11..).is_some_and(|rest| rest.starts_with(b"b")) => {
                            each(Incoming::Message(&line[at + 2..]));
                        }
                        _ => each(Incoming::Other),
                    }
                    start = end + 1;
                }
                self.buf.advance(start);
            }
            Proto::Irc => {
                let mut start = 0;
                while let Some(end) = find_newline(&self.buf[start..]).map(|at| start + at) {
                    match irc::parse(&self.buf[start..end]) {
                        Line::Privmsg { text, .. } => each(Incoming::Message(text)),
                        Line::Ping(token) => {
                            self.owed.extend_from_slice(b"PONG ");
                            self.owed.extend_from_slice(token);
                            self.owed.extend_from_slice(b"\r\n");
                        }
                        _ => each(Incoming::Other),
                    }
                    start = end + 1;
                }
                self.buf.advance(start);
            }
        }
        Ok(())
    }

    /// After a quit: reads until the server closes the connection, so the server closes
    /// first and its side, not ours, keeps the TIME_WAIT (our ephemeral ports are the
    /// scarce ones).
    pub(crate) async fn until_closed(&mut self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            loop {
                self.buf.clear();
                match self.socket.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// Where the first `\n` is: eight bytes at a time (a line of a fan-out is about 60 bytes,
/// and a byte-at-a-time search was the generator's largest cost).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // A zero byte in `x` is a newline; the lowest flagged byte is the first one (a
        // higher flag can be false, never a lower one).
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(i * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let tail = bytes.len() - chunks.remainder().len();
    chunks.remainder().iter().position(|b| *b == b'\n').map(|at| tail + at)
}

#[cfg(test)]
mod tests {
    use super::find_newline;

    #[test]
    fn newlines_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'x'; len];
                bytes[at] = b'\n';
                if at + 3 < len {
                    bytes[at + 3] = b'\n';
                }
                assert_eq!(find_newline(&bytes), Some(at), "len {len} at {at}");
            }
            assert_eq!(find_newline(&vec![b'x'; len]), None);
        }
        // Bytes just above and below '\n', and with the high bit set, are not newlines.
        assert_eq!(find_newline(b"\x0b\x09\x8a\xff\x0a\x00"), Some(4));
        assert_eq!(find_newline(b"\x8a\x8a\x8a\x8a\x8a\x8a\x8a\x8a\x8a"), None);
    }
}
