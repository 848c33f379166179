//! `parley chat` (the line client, in a pipe) when its server goes away: it reconnects to
//! another server it was given or that the welcome listed, signs in again, re-enters its
//! rooms, and shows what was said meanwhile once, in order.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_client::{Client, Event, Events, Transport};
use parley_server::{Config, Listener, ListenerKind, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

mod support;

use support::TempDir;

/// The longest wait for anything; the failover itself must take less than 10 s.
const WAIT: Duration = Duration::from_secs(10);

/// A server running in this process on a plain native listener.
struct TestServer {
    native: SocketAddr,
    running: support::Running,
}

impl TestServer {
    /// Starts a server on `data`, its native listener on `addr` (`127.0.0.1:0` for any).
    async fn start(data: &Path, addr: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let native = Listener { kind: ListenerKind::Native, tls: false, addr: addr.into(), proxy_protocol: false };
        let mut config = Config { data_dir: data.to_owned(), listeners: vec![native], ..Config::default() };
        config.limits.flood_rate_per_sec = 0;
        adjust(&mut config);
        let server = Server::bind(config).await.expect("binds");
        let native = server.local_addrs().first().expect("a listener").addr;
        let running = support::Running::start(server);
        TestServer { native, running }
    }

    async fn shutdown(self) {
        self.running.stop(WAIT).await;
    }
}

/// `parley chat --plain` in a pipe, its output read line by line as it comes.
struct Chat {
    child: Child,
    stdin: ChildStdin,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every line of standard output read so far.
    shown: Vec<String>,
}

impl Chat {
    fn start(args: &[&str], data: &Path) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["chat", "--plain", "--known-hosts"])
            .arg(data.join("known_hosts"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("parley chat starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Chat { child, stdin, stdout, stderr, shown: Vec::new() }
    }

    async fn type_line(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("typed");
    }

    /// Waits for a line of standard output ending with `tail`.
    async fn expect_shown(&mut self, tail: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline.into(), self.stdout.recv())
                .await
                .unwrap_or_else(|_| panic!("no {tail:?} in time; shown: {:#?}", self.shown))
                .unwrap_or_else(|| panic!("output ended before {tail:?}; shown: {:#?}", self.shown));
            self.shown.push(line.clone());
            if line.ends_with(tail) {
                return;
            }
        }
    }

    /// Waits for a line of standard error containing `part`.
    async fn expect_status(&mut self, part: &str) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout_at((started + WAIT).into(), self.stderr.recv())
                .await
                .unwrap_or_else(|_| panic!("no {part:?} in time; status lines: {seen:#?}"))
                .unwrap_or_else(|| panic!("standard error ended before {part:?}: {seen:#?}"));
            if line.contains(part) {
                return;
            }
            seen.push(line);
        }
    }

    /// Quits, and returns the exit status.
    async fn quit(mut self) -> std::process::ExitStatus {
        self.type_line("/quit").await;
        tokio::time::timeout(WAIT, self.child.wait()).await.expect("exits in time").expect("status")
    }
}

fn lines(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A native client of the test's own, whose events are kept.
async fn member(addr: SocketAddr, nick: &str) -> (Client, Events) {
    let (client, events, _) = Client::connect(&addr.to_string(), &Transport::Plain).await.expect("connects");
    client.hello(nick).await.expect("welcomed");
    (client, events)
}

/// Waits for an event that `wanted` accepts.
async fn expect_event(events: &mut Events, what: &str, wanted: impl Fn(&Event) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} in time"))
            .unwrap_or_else(|| panic!("the connection ended before {what}"));
        if wanted(&event) {
            return;
        }
    }
}

fn said(event: &Event, room: &str, nick: &str, said: &str) -> bool {
    matches!(event, Event::Message { room: r, from, text, .. } if r == room && from == nick && text == said)
}

/// The client is given two servers that share nothing; the first goes away, and the
/// client carries on on the second: in its rooms again, hearing and heard.
async fn fails_over(data: &TempDir, first_knows_second: bool) {
    let second = TestServer::start(&data.0.join("b"), "127.0.0.1:0", |_| {}).await;
    let b = second.native;
    let first = TestServer::start(&data.0.join("a"), "127.0.0.1:0", |c| c.cluster.nodes = vec![b.to_string()]).await;
    let a = first.native.to_string();
    // Given: the first, a dead address, and the second (a comma list and --server);
    // or the first alone, whose welcome lists the second.
    let given = format!("{a},127.0.0.1:1");
    let b_arg = b.to_string();
    let mut args = vec!["--name", "ann"];
    if first_knows_second {
        args.push(&a);
    } else {
        args.extend([given.as_str(), "--server", b_arg.as_str()]);
    }
    let mut chat = Chat::start(&args, &data.0);
    chat.expect_shown("Welcome to the chat, ann!").await;
    chat.type_line("/join dev").await;
    chat.expect_shown("You joined dev. Users here: ann").await;

    let (bob, mut bob_events) = member(b, "bob").await;
    bob.join("dev").await.expect("joins");
    let stopped = Instant::now();
    first.shutdown().await;
    chat.expect_status(&format!("Reconnected to {b}.")).await;
    let took = stopped.elapsed();
    assert!(took < WAIT, "{took:?}");
    eprintln!("reconnected to the second server {took:?} after the first began to stop");
    expect_event(
        &mut bob_events,
        "ann back in dev",
        |e| matches!(e, Event::Joined { room, nick, .. } if room == "dev" && nick == "ann"),
    )
    .await;
    bob.say("dev", "welcome to b").await.expect("said");
    chat.expect_shown("bob: welcome to b").await;
    chat.type_line("hello from b").await;
    expect_event(&mut bob_events, "ann's message", |e| said(e, "dev", "ann", "hello from b")).await;
    assert!(chat.quit().await.success());
    second.shutdown().await;
}

#[tokio::test]
async fn a_lost_server_is_replaced_by_the_next_one_given() {
    fails_over(&TempDir::new("given"), false).await;
}

#[tokio::test]
async fn a_lost_server_is_replaced_by_a_node_its_welcome_listed() {
    fails_over(&TempDir::new("listed"), true).await;
}

/// A relay whose gate the test opens and closes: closed, it drops every new
/// connection at once, as a server that is not there yet would.
struct Gate {
    addr: SocketAddr,
    to: Arc<Mutex<Option<SocketAddr>>>,
}

impl Gate {
    async fn open_to(to: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let to = Arc::new(Mutex::new(Some(to)));
        let target = to.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Some(server) = *target.lock().expect("unpoisoned") else { continue };
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Gate { addr, to }
    }

    fn set(&self, to: Option<SocketAddr>) {
        *self.to.lock().expect("unpoisoned") = to;
    }
}

#[tokio::test]
async fn what_was_said_while_the_server_restarted_is_shown_once_in_order() {
    let data = TempDir::new("restart");
    let server = TestServer::start(&data.0, "127.0.0.1:0", |_| {}).await;
    let port = server.native;
    // The client reaches the server through a gate, so that it comes back only after
    // the others have spoken on the restarted server.
    let gate = Gate::open_to(port).await;
    let mut chat = Chat::start(&["--name", "ann", &gate.addr.to_string()], &data.0);
    chat.expect_shown("Welcome to the chat, ann!").await;
    let (bob, mut bob_events) = member(port, "bob").await;
    bob.say("lobby", "before").await.expect("said");
    chat.expect_shown("bob: before").await;
    // Said by the client itself: not shown again after the reconnect either.
    chat.type_line("mine").await;
    expect_event(&mut bob_events, "ann's message", |e| said(e, "lobby", "ann", "mine")).await;
    drop(bob);

    gate.set(None);
    server.shutdown().await;
    chat.expect_status("Reconnecting to").await;
    let server = TestServer::start(&data.0, &port.to_string(), |_| {}).await;
    assert_eq!(server.native, port, "the same port");
    let (carol, _carol_events) = member(port, "carol").await;
    for text in ["missed 1", "missed 2", "missed 3"] {
        carol.say("lobby", text).await.expect("said");
    }
    gate.set(Some(port));
    chat.expect_status(&format!("Reconnected to {}.", gate.addr)).await;
    chat.expect_shown("carol: missed 3").await;
    carol.say("lobby", "live again").await.expect("said");
    chat.expect_shown("carol: live again").await;
    let said: Vec<&str> = chat
        .shown
        .iter()
        .filter_map(|line| line.split_once("] ").map(|(_, rest)| rest))
        .filter(|rest| ["ann: ", "bob: ", "carol: "].iter().any(|who| rest.starts_with(who)))
        .collect();
    assert_eq!(
        said,
        ["bob: before", "carol: missed 1", "carol: missed 2", "carol: missed 3", "carol: live again"],
        "{:#?}",
        chat.shown
    );
    assert!(chat.quit().await.success());
    server.shutdown().await;
}
