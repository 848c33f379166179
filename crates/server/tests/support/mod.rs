//! A real server on loopback for each test, and small clients that wait for what they
//! expect with a timeout instead of sleeping.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use parley_proto::msg::{encode_request, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_proto::native::FrameDecoder;
use parley_server::{Config, Listener, ListenerKind, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub line: SocketAddr,
    pub native: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _data: tempdir::TempDir,
}

/// Starts a server with default limits.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server after `adjust` has changed its configuration.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let data = tempdir::TempDir::new();
    let mut config = Config {
        data_dir: data.path().to_owned(),
        listeners: vec![
            Listener { kind: ListenerKind::Line, addr: "127.0.0.1:0".into() },
            Listener { kind: ListenerKind::Native, addr: "127.0.0.1:0".into() },
        ],
        ..Config::default()
    };
    adjust(&mut config);
    let server = Server::bind(config).await.expect("server binds");
    let addrs = server.local_addrs();
    let find = |kind| addrs.iter().find(|(k, _)| *k == kind).map(|(_, a)| *a).expect("listener bound");
    let (line, native) = (find(ListenerKind::Line), find(ListenerKind::Native));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    TestServer { line, native, stop: Some(stop), task: Some(task), _data: data }
}

impl TestServer {
    /// Stops the server and waits until it has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("server stops in time").expect("server task");
        }
    }
}

/// A minimal temporary directory, removed on drop.
pub mod tempdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("parley-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).expect("temp dir");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A line-protocol client, like `nc`.
pub struct LineClient {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
    pub local: SocketAddr,
}

impl LineClient {
    /// Connects without answering the prompt.
    pub async fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let local = stream.local_addr().expect("local addr");
        let (reader, writer) = stream.into_split();
        LineClient { reader: BufReader::new(reader), writer, local }
    }

    /// Connects, answers the prompt with `name` and reads the welcome.
    pub async fn join(addr: SocketAddr, name: &str) -> LineClient {
        let mut client = LineClient::connect(addr).await;
        client.expect_prompt().await;
        client.send(name).await;
        client.expect_line(&format!("Welcome to the chat, {name}!")).await;
        client
    }

    pub async fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\n").as_bytes()).await.expect("sends");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("sends");
    }

    /// Reads the username prompt (which has no newline).
    pub async fn expect_prompt(&mut self) {
        let prompt = parley_proto::line::USERNAME_PROMPT.as_bytes();
        let mut got = vec![0u8; prompt.len()];
        tokio::time::timeout(WAIT, self.reader.read_exact(&mut got)).await.expect("prompt in time").expect("prompt");
        assert_eq!(String::from_utf8_lossy(&got), parley_proto::line::USERNAME_PROMPT);
    }

    /// The next line, without its newline; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .expect("readable");
        if n == 0 {
            return None;
        }
        assert!(line.ends_with('\n'), "a whole line: {line:?}");
        line.pop();
        Some(line)
    }

    /// Reads lines until one ends with `tail` (ignoring its timestamp); returns it and
    /// the lines skipped before it.
    pub async fn expect_line(&mut self, tail: &str) -> (String, Vec<String>) {
        let mut skipped = Vec::new();
        loop {
            match self.next_line().await {
                Some(line) if line.ends_with(tail) => return (line, skipped),
                Some(line) => skipped.push(line),
                None => panic!("stream ended waiting for {tail:?}; got {skipped:?}"),
            }
        }
    }

    /// The next line must be exactly `[HH:MM:SS] ` followed by `text`.
    pub async fn expect_stamped(&mut self, text: &str) {
        let line = self.next_line().await.expect("a line");
        assert_stamped(&line, text);
    }

    /// Waits for the server to close the connection, returning what came before.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line);
        }
        lines
    }

    /// Proves that nothing else is queued for this client: a `/who` is answered next.
    pub async fn expect_nothing_more(&mut self) {
        self.send("/who").await;
        let line = self.next_line().await.expect("a line");
        assert!(line.starts_with("Users in "), "expected only the /who answer, got {line:?}");
    }
}

/// Asserts `line` is `[HH:MM:SS] text` with a plausible clock.
pub fn assert_stamped(line: &str, text: &str) {
    let bytes = line.as_bytes();
    let stamp_ok = bytes.len() > 11
        && bytes[0] == b'['
        && bytes[3] == b':'
        && bytes[6] == b':'
        && bytes[9] == b']'
        && bytes[10] == b' '
        && [1, 2, 4, 5, 7, 8].iter().all(|i| bytes[*i].is_ascii_digit());
    assert!(stamp_ok, "no [HH:MM:SS] stamp in {line:?}");
    assert_eq!(&line[11..], text, "in {line:?}");
}

/// A raw native-protocol client, built on the proto crate alone.
pub struct NativeClient {
    pub reader: OwnedReadHalf,
    pub writer: OwnedWriteHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_id: u64,
}

impl NativeClient {
    pub async fn connect(addr: SocketAddr) -> NativeClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (reader, writer) = stream.into_split();
        NativeClient { reader, writer, buf: BytesMut::new(), decoder: FrameDecoder::new(65_535, 16 << 20), next_id: 1 }
    }

    /// Connects and completes the hello handshake as `nick`.
    pub async fn join(addr: SocketAddr, nick: &str) -> NativeClient {
        let mut client = NativeClient::connect(addr).await;
        let reply = client.request(&Request::Hello { version: PROTOCOL_VERSION, nick: nick.into() }, b"").await;
        assert!(matches!(reply, Ok(Reply::Welcome { .. })), "welcome expected, got {reply:?}");
        client
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("sends");
    }

    /// Sends a request and returns its id.
    pub async fn send(&mut self, request: &Request, payload: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_request(id, request, payload, &mut out).expect("encodes");
        self.send_raw(&out).await;
        id
    }

    /// Sends a request and waits for its answer, skipping events.
    pub async fn request(&mut self, request: &Request, payload: &[u8]) -> Result<Reply, ServerMsg> {
        let id = self.send(request, payload).await;
        self.answer(id).await
    }

    /// Waits for the answer to request `id`, skipping events.
    pub async fn answer(&mut self, id: u64) -> Result<Reply, ServerMsg> {
        loop {
            let received = self.next().await.expect("an answer before the end");
            match &received.msg {
                ServerMsg::Result { id: got } if *got == id => return Ok(received.reply().expect("a reply body")),
                ServerMsg::Error { id: Some(got), .. } if *got == id => return Err(received.msg),
                _ => {}
            }
        }
    }

    /// The next message from the server; `None` when the server closed the connection.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("the server sends valid frames") {
                return Some(Received::from_frame(frame).expect("a known server message"));
            }
            let n = tokio::time::timeout(WAIT, self.reader.read_buf(&mut self.buf))
                .await
                .expect("a frame in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Waits for the first message `pick` accepts, skipping the others.
    pub async fn expect<T>(&mut self, mut pick: impl FnMut(&Received) -> Option<T>) -> T {
        loop {
            let received = self.next().await.expect("stream ended before the expected message");
            if let Some(found) = pick(&received) {
                return found;
            }
        }
    }

    /// Waits for the server to close the connection; returns what came before.
    pub async fn expect_closed(&mut self) -> Vec<Received> {
        let mut got = Vec::new();
        while let Some(received) = self.next().await {
            got.push(received);
        }
        got
    }
}
