//! A real server on loopback for each test, and small clients that wait for what they
//! expect with a timeout instead of sleeping.
//!
//! With `PARLEY_TEST_DATABASE=postgres`, every server keeps its history, accounts and
//! moderation in PostgreSQL instead of SQLite: a database of its own per data directory
//! (so a server started again on the directory finds it), on a PostgreSQL server the
//! tests start on 127.0.0.1. CI runs the tests that read and write the store both ways.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use parley_proto::msg::{encode_request, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_proto::native::{Frame, FrameDecoder};
use parley_server::{Config, Listener, ListenerKind, Server};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub line: SocketAddr,
    pub native: SocketAddr,
    pub line_tls: Option<SocketAddr>,
    pub native_tls: Option<SocketAddr>,
    pub irc: Option<SocketAddr>,
    pub irc_tls: Option<SocketAddr>,
    /// The TLS certificate's SHA-256 fingerprint, when a TLS listener exists.
    pub fingerprint: Option<String>,
    /// The TLS state, to reload the certificate as SIGHUP would.
    pub tls: Option<parley_server::Tls>,
    /// Every listener, as bound.
    pub bound: Vec<parley_server::Bound>,
    /// The server's hub, to drive it without sockets.
    pub hub: parley_hub::HubHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _data: Option<tempdir::TempDir>,
}

/// Starts a server with default limits.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// Starts a server after `adjust` has changed its configuration.
pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let data = tempdir::TempDir::new();
    let mut server = start_in(data.path(), adjust).await;
    server._data = Some(data);
    server
}

/// Starts a server on a data directory the caller keeps, to start another on it later.
pub async fn start_in(data: &std::path::Path, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config {
        data_dir: data.to_owned(),
        listeners: vec![
            Listener { kind: ListenerKind::Line, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Native, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Line, tls: true, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Native, tls: true, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Irc, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Irc, tls: true, addr: "127.0.0.1:0".into(), proxy_protocol: false },
        ],
        ..Config::default()
    };
    // The server's name as every user's host, so that lines can be compared whole
    // (tests/irc_identity.rs covers cloaks and addresses).
    config.irc.hosts = parley_server::Hosts::Fixed;
    config.database.url = tempdir::database_of(data);
    // Plain connections park after 25 ms of quiet (a second by default), so that the
    // tests' connections park and wake between most of their exchanges.
    config.limits.park_after_ms = 25;
    adjust(&mut config);
    if !config.history.store {
        config.database.url = None;
    }
    let server = Server::bind(config).await.expect("server binds");
    let addrs = server.local_addrs();
    let find = |kind, tls| addrs.iter().find(|b| b.kind == kind && b.tls == tls).map(|b| b.addr);
    let (line, native) = (find(ListenerKind::Line, false), find(ListenerKind::Native, false));
    let (line_tls, native_tls) = (find(ListenerKind::Line, true), find(ListenerKind::Native, true));
    let (irc, irc_tls) = (find(ListenerKind::Irc, false), find(ListenerKind::Irc, true));
    let tls = server.tls();
    let hub = server.hub();
    let fingerprint = tls.as_ref().map(parley_server::Tls::fingerprint);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    TestServer {
        line: line.expect("a line listener"),
        native: native.expect("a native listener"),
        line_tls,
        native_tls,
        irc,
        irc_tls,
        fingerprint,
        tls,
        bound: addrs,
        hub,
        stop: Some(stop),
        task: Some(task),
        _data: None,
    }
}

impl TestServer {
    /// The IRC listener's address.
    pub fn irc_addr(&self) -> SocketAddr {
        self.irc.expect("an IRC listener")
    }

    /// Stops the server and waits until it has finished.
    pub async fn shutdown(self) {
        // The hub stops once its last handle is gone: the test's goes first.
        let TestServer { hub, mut stop, mut task, _data, .. } = self;
        drop(hub);
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = task.take() {
            tokio::time::timeout(WAIT, task).await.expect("server stops in time").expect("server task");
        }
    }
}

/// Runs `f` on the store of the data directory `data` (SQLite, or its PostgreSQL
/// database when the tests run on PostgreSQL), opened beside the server as `parley
/// admin` opens it. On a thread of its own: store calls block, and a test's runtime
/// has other tasks to run meanwhile.
pub fn with_owner_store<T: Send>(data: &std::path::Path, f: impl FnOnce(&OwnerStore) -> T + Send) -> T {
    std::thread::scope(|scope| {
        let owner = scope.spawn(|| {
            let retention = parley_store::Retention::default();
            let store = match tempdir::database_of(data) {
                Some(url) => {
                    OwnerStore::Postgres(Box::new(parley_store::PostgresStore::open(&url, retention).expect("opens")))
                }
                None => OwnerStore::Sqlite(Box::new(parley_store::SqliteStore::open(data, retention).expect("opens"))),
            };
            f(&store)
        });
        owner.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A store as the server's owner holds it: the hub's traits, and the role commands.
pub enum OwnerStore {
    Sqlite(Box<parley_store::SqliteStore>),
    Postgres(Box<parley_store::PostgresStore>),
}

impl OwnerStore {
    /// Gives or takes the server-admin role, as `parley admin users grant` does.
    pub fn set_admin(&self, account: &parley_hub::Account, admin: bool) -> Result<bool, parley_hub::StoreError> {
        match self {
            OwnerStore::Sqlite(store) => store.set_admin(account, admin),
            OwnerStore::Postgres(store) => store.set_admin(account, admin),
        }
    }
}

impl std::ops::Deref for OwnerStore {
    type Target = dyn parley_hub::Store;

    fn deref(&self) -> &Self::Target {
        match self {
            OwnerStore::Sqlite(store) => &**store,
            OwnerStore::Postgres(store) => &**store,
        }
    }
}

/// A minimal temporary directory, removed on drop.
/// Sessions of the client library (`parley chat`'s), for tests of accounts and resume
/// tokens.
pub mod remembered {
    use std::net::SocketAddr;

    use parley_client::{Client, Transport};

    /// The password of the accounts these helpers make.
    pub const PASSWORD: &str = "a-long-enough-password";

    /// A connected client whose events are drained (what these tests look at are
    /// answers, which events must not back up).
    pub async fn client(addr: SocketAddr) -> Client {
        let (client, mut events, _) = Client::connect(&addr.to_string(), &Transport::Plain).await.expect("connects");
        tokio::spawn(async move { while events.next().await.is_some() {} });
        client
    }

    /// A new account `nick`, its session logged in, and a token from a remembered login.
    pub async fn account_with_token(addr: SocketAddr, nick: &str) -> (Client, String) {
        let owner = client(addr).await;
        owner.hello(nick).await.expect("welcomed");
        owner.register(PASSWORD).await.expect("registers");
        let (now, token) = owner.login_remembered(None, PASSWORD).await.expect("logs in, remembered");
        assert_eq!(now, nick);
        (owner, token)
    }
}

pub mod tempdir {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use parley_store::testing::TestPostgres;

    /// A data directory, and with `PARLEY_TEST_DATABASE=postgres` its database (the
    /// PostgreSQL server kept running as long as the directory lives).
    pub struct TempDir(PathBuf, Option<Arc<TestPostgres>>);

    /// Each data directory's database URL, when the tests run on PostgreSQL.
    static DATABASES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

    /// The PostgreSQL database of the data directory `data`, if the tests run on
    /// PostgreSQL.
    pub fn database_of(data: &Path) -> Option<String> {
        let databases = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
        databases.as_ref().and_then(|d| d.get(data).cloned())
    }

    impl TempDir {
        pub fn new() -> TempDir {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("parley-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&path).expect("temp dir");
            let postgres = (std::env::var("PARLEY_TEST_DATABASE").as_deref() == Ok("postgres")).then(|| {
                let postgres = TestPostgres::shared().expect("PARLEY_TEST_DATABASE=postgres needs PostgreSQL");
                let url = postgres.database();
                let mut databases = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
                databases.get_or_insert_with(HashMap::new).insert(path.clone(), url);
                postgres
            });
            TempDir(path, postgres)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
            if let Some(databases) = DATABASES.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                databases.remove(&self.0);
            }
        }
    }
}

pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Connects over TLS, accepting exactly the certificate with `fingerprint`.
pub async fn connect_tls(addr: SocketAddr, fingerprint: &str) -> (Reader, Writer, SocketAddr) {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let local = stream.local_addr().expect("local addr");
    let connector = tls::pinned_connector(fingerprint);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .expect("handshake in time")
        .expect("TLS handshake");
    let (reader, writer) = tokio::io::split(stream);
    (Box::new(reader), Box::new(writer), local)
}

/// A TLS client that trusts one certificate, by fingerprint.
pub mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Pinned {
        fingerprint: String,
        provider: Arc<CryptoProvider>,
    }

    pub fn fingerprint(der: &[u8]) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if fingerprint(end_entity) == self.fingerprint {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!("unexpected certificate {}", fingerprint(end_entity))))
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    }

    pub fn pinned_connector(fingerprint: &str) -> tokio_rustls::TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned { fingerprint: fingerprint.to_owned(), provider: provider.clone() });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// A line-protocol client, like `nc`.
pub struct LineClient {
    pub reader: BufReader<Reader>,
    pub writer: Writer,
    pub local: SocketAddr,
}

impl LineClient {
    /// Connects without answering the prompt.
    pub async fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        LineClient::over(stream)
    }

    /// Connects from a chosen loopback address (all of 127.0.0.0/8 is this machine),
    /// without answering the prompt.
    pub async fn connect_from(source: [u8; 4], addr: SocketAddr) -> LineClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((source, 0))).expect("bind a loopback source");
        LineClient::over(socket.connect(addr).await.expect("connects"))
    }

    fn over(stream: TcpStream) -> LineClient {
        let local = stream.local_addr().expect("local addr");
        let (reader, writer) = stream.into_split();
        LineClient { reader: BufReader::new(Box::new(reader)), writer: Box::new(writer), local }
    }

    /// Connects over TLS without answering the prompt.
    pub async fn connect_tls(addr: SocketAddr, fingerprint: &str) -> LineClient {
        let (reader, writer, local) = connect_tls(addr, fingerprint).await;
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
            let mut line = String::new();
            let Ok(read) = tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await else {
                panic!("no line ending with {tail:?} in time; got {skipped:?}");
            };
            match read.expect("readable") {
                0 => panic!("stream ended waiting for {tail:?}; got {skipped:?}"),
                _ => {
                    let line = line.trim_end_matches('\n').to_owned();
                    if line.ends_with(tail) {
                        return (line, skipped);
                    }
                    skipped.push(line);
                }
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
        loop {
            let mut line = String::new();
            let Ok(read) = tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await else {
                panic!("the connection did not close in time; got {lines:?}");
            };
            if read.expect("readable") == 0 {
                return lines;
            }
            lines.push(line.trim_end_matches('\n').to_owned());
        }
    }

    /// Proves that nothing else is queued for this client: a `/who` is answered next.
    pub async fn expect_nothing_more(&mut self) {
        self.send("/who").await;
        let line = self.next_line().await.expect("a line");
        assert!(line.starts_with("Users in "), "expected only the /who answer, got {line:?}");
    }
}

/// An IRC client speaking raw lines.
pub struct IrcClient {
    pub reader: BufReader<Reader>,
    pub writer: Writer,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl IrcClient {
    pub async fn connect(addr: SocketAddr) -> IrcClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (reader, writer) = stream.into_split();
        IrcClient { reader: BufReader::new(Box::new(reader)), writer: Box::new(writer), seen: Vec::new() }
    }

    pub async fn connect_tls(addr: SocketAddr, fingerprint: &str) -> IrcClient {
        let (reader, writer, _) = connect_tls(addr, fingerprint).await;
        IrcClient { reader: BufReader::new(reader), writer, seen: Vec::new() }
    }

    /// Connects from a chosen loopback address.
    pub async fn connect_from(source: [u8; 4], addr: SocketAddr) -> IrcClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((source, 0))).expect("bind a loopback source");
        let (reader, writer) = socket.connect(addr).await.expect("connects").into_split();
        IrcClient { reader: BufReader::new(Box::new(reader)), writer: Box::new(writer), seen: Vec::new() }
    }

    /// Connects, registers as `nick` (after asking for `caps`, if any), joins `#lobby`
    /// (where the line and native users are) and reads up to the end of its NAMES.
    pub async fn join(addr: SocketAddr, nick: &str, caps: &str) -> IrcClient {
        let mut client = IrcClient::connect(addr).await;
        client.register(nick, caps).await;
        client.send("JOIN #lobby").await;
        client.expect(" 366 ").await;
        client
    }

    pub async fn register(&mut self, nick: &str, caps: &str) {
        if !caps.is_empty() {
            self.send(&format!("CAP REQ :{caps}")).await;
        }
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :{nick} the tester")).await;
        if !caps.is_empty() {
            self.expect(" ACK ").await;
            self.send("CAP END").await;
        }
        self.expect(" 001 ").await;
        self.welcomed().await;
    }

    /// Reads up to the end of the welcome burst: the MOTD's end, or `422` without one.
    pub async fn welcomed(&mut self) {
        loop {
            let line = self.expect(" ").await;
            if line.contains(" 376 ") || line.contains(" 422 ") {
                return;
            }
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.expect("sends");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("sends");
    }

    /// The next line without its CRLF; `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("a line in time; seen so far: {:#?}", self.seen))
            .expect("readable");
        if n == 0 {
            return None;
        }
        assert!(line.ends_with("\r\n"), "a whole IRC line: {line:?}");
        line.truncate(line.len() - 2);
        assert!(line.len() <= 512 || line.starts_with('@'), "a line within 512 bytes: {line:?}");
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads lines until one contains `part`; returns it.
    pub async fn expect(&mut self, part: &str) -> String {
        loop {
            match self.next_line().await {
                Some(line) if line.contains(part) => return line,
                Some(_) => {}
                None => panic!("stream ended waiting for {part:?}; seen {:#?}", self.seen),
            }
        }
    }

    /// Reads lines until one contains `part`, returning those before it too.
    /// The lines answering `input`, up to the PONG of a PING sent after it (the sync
    /// point IRC clients and bots rely on), that PONG left out.
    pub async fn answers(&mut self, input: &str) -> Vec<String> {
        self.send(input).await;
        self.send("PING :answered").await;
        let mut lines = self.collect_until("PONG parley.local :answered").await;
        lines.pop();
        lines
    }

    pub async fn collect_until(&mut self, part: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next_line().await {
                Some(line) => {
                    let done = line.contains(part);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                None => panic!("stream ended waiting for {part:?}; seen {:#?}", self.seen),
            }
        }
    }

    /// Proves nothing else is queued: a PING is answered next.
    pub async fn expect_nothing_more(&mut self) {
        self.send("PING :nothing-more").await;
        let line = self.next_line().await.expect("a line");
        assert!(line.ends_with("PONG parley.local :nothing-more"), "expected only the PONG, got {line:?}");
    }

    /// Waits for the server to close the connection, returning what came before.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line);
        }
        lines
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
    pub reader: Reader,
    pub writer: Writer,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_id: u64,
}

impl NativeClient {
    pub async fn connect(addr: SocketAddr) -> NativeClient {
        let stream = TcpStream::connect(addr).await.expect("connects");
        let (reader, writer) = stream.into_split();
        NativeClient::over(Box::new(reader), Box::new(writer))
    }

    /// Connects from a chosen loopback address, without saying hello.
    pub async fn connect_from(source: [u8; 4], addr: SocketAddr) -> NativeClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((source, 0))).expect("bind a loopback source");
        let (reader, writer) = socket.connect(addr).await.expect("connects").into_split();
        NativeClient::over(Box::new(reader), Box::new(writer))
    }

    /// Connects over TLS, trusting the certificate with `fingerprint`.
    pub async fn connect_tls(addr: SocketAddr, fingerprint: &str) -> NativeClient {
        let (reader, writer, _) = connect_tls(addr, fingerprint).await;
        NativeClient::over(reader, writer)
    }

    fn over(reader: Reader, writer: Writer) -> NativeClient {
        NativeClient {
            reader,
            writer,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(65_535, 16 << 20).accepting_compact(),
            next_id: 1,
        }
    }

    /// Connects and completes the hello handshake as `nick`.
    pub async fn join(addr: SocketAddr, nick: &str) -> NativeClient {
        NativeClient::join_in(addr, nick, PROTOCOL_VERSION).await
    }

    /// Connects and completes the hello handshake as `nick` in protocol `version`.
    pub async fn join_in(addr: SocketAddr, nick: &str, version: u32) -> NativeClient {
        let mut client = NativeClient::connect(addr).await;
        let reply = client.request(&Request::Hello { version, nick: nick.into(), password: None }, b"").await;
        assert!(
            matches!(reply, Ok(Reply::Welcome { version: spoken, .. }) if spoken == version),
            "a welcome in version {version} expected, got {reply:?}"
        );
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
        let frame = self.next_frame().await?;
        Some(Received::from_frame(frame).expect("a known server message"))
    }

    /// The next frame from the server, as it came; `None` when the server closed the
    /// connection.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf).expect("the server sends valid frames") {
                return Some(frame);
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

/// What one raw HTTP/1.1 exchange got back; header names in lowercase.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A header's value, its name matched whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends one raw request on a new connection and reads the answer to the end.
pub async fn http(addr: SocketAddr, request: &str) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT * 2, stream.read_to_end(&mut raw)).await.expect("answered in time").expect("reads");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head");
    let head = String::from_utf8(raw[..split].to_vec()).expect("a text head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned())).collect();
    HttpAnswer { status, headers, body: raw[split + 4..].to_vec() }
}
