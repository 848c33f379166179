//! One benchmark client: registers over either protocol, then sends messages and reads
//! whatever arrives, with as little work per message as the measurement allows.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use parley_proto::msg::{encode_request, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_proto::native::FrameDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::BenchError;

/// Which protocol the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// The framed native protocol.
    Native,
    /// The classic line protocol.
    Line,
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

pub(crate) struct Reader {
    proto: Proto,
    socket: OwnedReadHalf,
    buf: BytesMut,
    frames: FrameDecoder,
    /// Between a line server's history markers: past messages, not this run's.
    in_history: bool,
}

pub(crate) struct Writer {
    proto: Proto,
    socket: OwnedWriteHalf,
    out: BytesMut,
    next_id: u64,
}

/// Connects and registers as `nick`; the client is then in the lobby.
pub(crate) async fn connect(addr: SocketAddr, proto: Proto, nick: String) -> Result<(Reader, Writer), BenchError> {
    let nick = nick.as_str();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (socket, write) = stream.into_split();
    let mut reader = Reader {
        proto,
        socket,
        buf: BytesMut::with_capacity(64 * 1024),
        frames: FrameDecoder::new(65_535, 1 << 20),
        in_history: false,
    };
    let mut writer = Writer { proto, socket: write, out: BytesMut::new(), next_id: 1 };
    match proto {
        Proto::Native => {
            let hello = Request::Hello { version: PROTOCOL_VERSION, nick: nick.to_owned(), password: None };
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
            writer.socket.write_all(format!("{nick}\n").as_bytes()).await?;
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
    }
    Ok((reader, writer))
}

impl Writer {
    async fn request(&mut self, request: &Request, payload: &[u8]) -> Result<(), BenchError> {
        self.out.clear();
        encode_request(self.next_id, request, payload, &mut self.out)
            .map_err(|e| BenchError::Protocol(e.to_string()))?;
        self.next_id += 1;
        self.socket.write_all(&self.out).await?;
        Ok(())
    }

    /// Says `text` in the lobby.
    pub(crate) async fn say(&mut self, text: &str) -> Result<(), BenchError> {
        match self.proto {
            Proto::Native => self.request(&Request::Say { room: "lobby".into() }, text.as_bytes()).await,
            Proto::Line => {
                self.out.clear();
                self.out.extend_from_slice(text.as_bytes());
                self.out.extend_from_slice(b"\n");
                self.socket.write_all(&self.out).await?;
                Ok(())
            }
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
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(end + 1);
                return Ok(line[..end].to_vec());
            }
            self.fill().await?;
        }
    }

    /// Reads what is buffered or arrives next, handing each item to `each`; returns
    /// after one read's worth, so the caller can check its deadline.
    pub(crate) async fn drain(&mut self, mut each: impl FnMut(Incoming<'_>)) -> Result<(), BenchError> {
        self.fill().await?;
        match self.proto {
            Proto::Native => {
                while let Some(frame) =
                    self.frames.decode(&mut self.buf).map_err(|e| BenchError::Protocol(e.to_string()))?
                {
                    // The framing layer already read the type; only messages carry text.
                    match frame.envelope.kind.as_deref() {
                        Some("message") => each(Incoming::Message(&frame.payload)),
                        Some("result") => each(Incoming::Ack),
                        _ => each(Incoming::Other),
                    }
                }
            }
            Proto::Line => {
                while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                    // "[HH:MM:SS] nick: text": the text starts after the first ": ".
                    let line = &self.buf[..end];
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
                    self.buf.advance(end + 1);
                }
            }
        }
        Ok(())
    }
}
