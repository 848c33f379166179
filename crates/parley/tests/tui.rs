//! `parley chat` on a terminal, as a person sees it: the real binary runs inside tmux
//! against a real server, keys are typed with `send-keys` and the screen is read with
//! `capture-pane`. Every wait polls the screen until what is expected shows, with a
//! deadline, instead of sleeping for a fixed time.
//!
//! Without tmux these tests are skipped with a message, except in CI (`CI=true`), where
//! a missing tmux is a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use parley_server::{Config, Listener, ListenerKind, Server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod support;

/// How long anything may take to show. Generous: CI machines are shared.
const WAIT: Duration = Duration::from_secs(10);

/// Is tmux here? If not: skip loudly, or fail in CI.
fn tmux_available() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is required for the terminal UI tests in CI; install it (apt-get install tmux)"
        );
        // Straight to stderr: the test harness captures `eprintln!` of passing tests,
        // and a skipped test must not look like a passed one.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"!!! SKIPPING a terminal UI test: tmux is not installed (apt-get install tmux) !!!\n",
        );
    }
    found
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-tui-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

struct TestServer {
    line: SocketAddr,
    native: SocketAddr,
    running: support::Running,
}

/// A server with a plain line listener and a plain native one, on the given addresses
/// (port 0: any).
async fn start(data: &Path, line: &str, native: &str) -> TestServer {
    start_with(data, line, native, |_| {}).await
}

async fn start_with(data: &Path, line: &str, native: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
    let listen = |kind, addr: &str| Listener { kind, tls: false, addr: addr.to_owned(), proxy_protocol: false };
    let mut config = Config {
        data_dir: data.to_owned(),
        listeners: vec![listen(ListenerKind::Line, line), listen(ListenerKind::Native, native)],
        ..Config::default()
    };
    adjust(&mut config);
    let server = Server::bind(config).await.expect("binds");
    let bound = server.local_addrs();
    let find = |kind| bound.iter().find(|b| b.kind == kind).map(|b| b.addr).expect("bound");
    let (line, native) = (find(ListenerKind::Line), find(ListenerKind::Native));
    let running = support::Running::start(server);
    TestServer { line, native, running }
}

impl TestServer {
    async fn shutdown(self) {
        self.running.stop(WAIT).await;
    }
}

/// A TCP relay to `target`; aborting its task cuts every connection through it and
/// closes its port, as a network that goes away would, while the server stays up.
fn relay(listener: tokio::net::TcpListener, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            links.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}

/// Someone else in the chat, over the line protocol.
struct Peer {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Peer {
    async fn join(addr: SocketAddr, name: &str) -> Peer {
        let (reader, mut writer) = TcpStream::connect(addr).await.expect("connects").into_split();
        writer.write_all(format!("{name}\n").as_bytes()).await.expect("name");
        let mut peer = Peer { reader: BufReader::new(reader), writer };
        peer.expect(&format!("Welcome to the chat, {name}!")).await;
        peer
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

/// A private tmux server running one `parley chat`, killed when dropped.
struct Screen {
    socket: String,
    /// The server's socket file, which tmux leaves behind after `kill-server`.
    socket_path: Option<PathBuf>,
}

impl Screen {
    /// Starts `parley chat ARGS` in an 80x24 terminal with HOME in `home`. When it
    /// exits, the pane prints its exit status and whether the terminal is back in
    /// canonical (cooked) mode, then waits, so a test can read both.
    fn start(name: &str, home: &Path, args: &[String]) -> Screen {
        let socket = format!("parley-tui-{}-{name}", std::process::id());
        let mut screen = Screen { socket, socket_path: None };
        let chat = std::iter::once(env!("CARGO_BIN_EXE_parley").to_owned())
            .chain(std::iter::once("chat".to_owned()))
            .chain(args.iter().cloned())
            .map(|word| format!("'{word}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let script = format!(
            "HOME='{}' {chat}; echo \"chat exited with $?\"; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon; exec sleep 600",
            home.display()
        );
        screen.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24", "sh", "-c", &script]);
        let path = screen.tmux(&["display-message", "-p", "#{socket_path}"]);
        screen.socket_path = Some(PathBuf::from(path.trim_end()));
        screen
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output =
            Command::new("tmux").arg("-L").arg(&self.socket).args(args).env_remove("TMUX").output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types text as it is.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Presses keys by tmux's names (`Enter`, `C-n`, `M-3`, `Escape`).
    fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Pastes text the way a terminal does for a mouse or Ctrl-Shift-V paste: inside
    /// bracketed-paste markers when the program asked for them.
    fn paste(&self, text: &str) {
        self.tmux(&["set-buffer", "--", text]);
        self.tmux(&["paste-buffer", "-p", "-t", "0"]);
    }

    fn rows(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p", "-t", "0"]).lines().map(|l| l.trim_end().to_owned()).collect()
    }

    /// Polls the screen until `ready` holds; fails with the screen after [`WAIT`].
    async fn wait_for(&self, what: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if ready(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{}", rows.join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_for_text(&self, text: &str) -> Vec<String> {
        self.wait_for(text, |rows| rows.iter().any(|r| r.contains(text))).await
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").env_remove("TMUX").output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn input_row(rows: &[String]) -> &str {
    rows.last().map_or("", String::as_str)
}

fn count(rows: &[String], text: &str) -> usize {
    rows.iter().filter(|r| r.contains(text)).count()
}

#[tokio::test]
async fn typing_is_never_disturbed_rooms_switch_and_help_shows() {
    if !tmux_available() {
        return;
    }
    let data = temp_dir("typing");
    let server = start(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let mut bob = Peer::join(server.line, "bob").await;
    let args = ["--plain".to_owned(), "--name".to_owned(), "ann".to_owned(), server.native.to_string()];
    let screen = Screen::start("typing", &data, &args);
    screen.wait_for_text("Welcome to the chat, ann!").await;
    bob.expect("ann has joined the chat!").await;

    // Half a line typed, then messages arrive: they show, and the line stays as it was.
    screen.type_text("half a li");
    screen.wait_for("the half-typed line", |rows| input_row(rows) == "[#lobby] half a li").await;
    bob.say("interrupting you, ann").await;
    bob.say("日本語も 👍 ok").await;
    let rows = screen
        .wait_for("both messages", |rows| {
            let shown = |text: &str| rows.iter().any(|r| r.contains(text));
            shown("bob: 日本語も 👍 ok") && shown("bob: interrupting you, ann") && rows[1].ends_with("│2 here")
        })
        .await;
    assert!(rows.iter().any(|r| r.contains("bob: interrupting you, ann")), "{}", rows.join("\n"));
    assert_eq!(input_row(&rows), "[#lobby] half a li", "{}", rows.join("\n"));
    assert!(rows[1].ends_with("│2 here"), "the member list: {}", rows.join("\n"));
    screen.type_text("ne, done");
    screen.press(&["Enter"]);
    bob.expect("ann: half a line, done").await;
    screen.wait_for_text("ann: half a line, done").await;

    // A paste of several lines is one message.
    screen.paste("first line\nsecond line");
    screen.wait_for("the pasted text", |rows| input_row(rows).contains("first line↵second line")).await;
    screen.press(&["Enter"]);
    bob.expect("ann: first line").await;
    bob.expect("ann: second line").await;

    // Rooms: join one, get an unread count for the other, switch with Ctrl-P and Alt-3.
    screen.type_text("/join dev");
    screen.press(&["Enter"]);
    let rows = screen
        .wait_for("the new room", |rows| {
            input_row(rows) == "[#dev]" && rows.iter().any(|r| r.contains("You joined dev."))
        })
        .await;
    assert!(rows.iter().any(|r| r.contains("You joined dev.")), "{}", rows.join("\n"));
    bob.say("lobby news").await;
    screen.wait_for("an unread count", |rows| rows.iter().any(|r| r.starts_with("2 #lobby    1│"))).await;
    screen.press(&["C-p"]);
    let rows = screen
        .wait_for("the lobby again", |rows| {
            input_row(rows) == "[#lobby]"
                && rows.iter().any(|r| r.contains("bob: lobby news"))
                && rows.iter().any(|r| r.starts_with("2 #lobby     │"))
        })
        .await;
    assert!(rows.iter().any(|r| r.contains("bob: lobby news")), "{}", rows.join("\n"));
    assert!(rows.iter().any(|r| r.starts_with("2 #lobby     │")), "read now: {}", rows.join("\n"));
    screen.press(&["M-3"]);
    screen.wait_for("dev by its number", |rows| input_row(rows) == "[#dev]").await;

    // /help is an overlay; Esc closes it and the room is still there.
    screen.type_text("/help");
    screen.press(&["Enter"]);
    // A capture can catch a frame half written to the terminal: wait for the whole
    // overlay, not only its title.
    let commands = ["Help: Esc closes", "/join ROOM", "/msg NAME text", "/who"];
    screen.wait_for("the help overlay", |rows| commands.iter().all(|c| rows.iter().any(|r| r.contains(c)))).await;
    screen.press(&["Escape"]);
    screen.wait_for("the overlay to close", |rows| !rows.iter().any(|r| r.contains("Help: Esc closes"))).await;

    // A narrow terminal: the side lists give way, the title tells the window's number.
    screen.tmux(&["resize-window", "-t", "0", "-x", "40", "-y", "12"]);
    let rows =
        screen.wait_for("the narrow layout", |rows| rows.first().is_some_and(|r| r.starts_with("[3/3] #dev"))).await;
    assert_eq!(rows.len(), 12, "{}", rows.join("\n"));
    assert_eq!(input_row(&rows), "[#dev]", "{}", rows.join("\n"));
    screen.tmux(&["resize-window", "-t", "0", "-x", "80", "-y", "24"]);
    screen.wait_for("the wide layout again", |rows| rows.get(1).is_some_and(|r| r.starts_with("1 server"))).await;

    // /quit leaves, with status 0 and the terminal back in its normal mode.
    screen.type_text("/quit");
    screen.press(&["Enter"]);
    let rows = screen.wait_for_text("chat exited with 0").await;
    let restored = rows.iter().skip_while(|r| !r.contains("chat exited with")).nth(1).cloned().unwrap_or_default();
    assert_eq!(restored, "icanon", "the terminal is not in raw mode any more: {}", rows.join("\n"));
    bob.expect("ann has left the chat.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_comes_back_without_repeating_messages() {
    if !tmux_available() {
        return;
    }
    let data = temp_dir("reconnect");
    let server = start(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let (line, native) = (server.line, server.native);
    let mut bob = Peer::join(line, "bob").await;
    let args = ["--plain".to_owned(), "--name".to_owned(), "ann".to_owned(), native.to_string()];
    let screen = Screen::start("reconnect", &data, &args);
    screen.wait_for_text("Welcome to the chat, ann!").await;
    bob.expect("ann has joined the chat!").await;
    bob.say("said before the drop").await;
    screen.wait_for_text("bob: said before the drop").await;
    screen.type_text("/join dev");
    screen.press(&["Enter"]);
    screen.wait_for("dev", |rows| input_row(rows) == "[#dev]").await;
    screen.type_text("in dev before");
    screen.press(&["Enter"]);
    screen.wait_for_text("ann: in dev before").await;

    server.shutdown().await;
    screen.wait_for_text("RECONNECTING").await;
    screen.type_text("kept while away");

    // The same addresses again, the same history.
    let server = start(&data, &line.to_string(), &native.to_string()).await;
    let rows = screen
        .wait_for("the reconnection", |rows| {
            rows.iter().any(|r| r.contains("Reconnected.")) && rows.iter().any(|r| r.ends_with("│ connected"))
        })
        .await;
    assert!(rows.iter().any(|r| r.ends_with("│ connected")), "{}", rows.join("\n"));
    assert_eq!(input_row(&rows), "[#dev] kept while away");
    assert_eq!(count(&rows, "ann: in dev before"), 1, "{}", rows.join("\n"));
    let mut bob = Peer::join(line, "bob").await;
    bob.say("said after the drop").await;
    screen.press(&["M-2"]);
    let rows = screen.wait_for_text("bob: said after the drop").await;
    assert_eq!(count(&rows, "bob: said before the drop"), 1, "history again, but no duplicates: {}", rows.join("\n"));
    // Back in dev too: what is typed there still goes there.
    screen.press(&["M-3", "Enter"]);
    screen.wait_for_text("ann: kept while away").await;
    screen.press(&["C-c"]);
    screen.wait_for_text("chat exited with 0").await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_said_while_the_network_was_away_are_fetched_once() {
    if !tmux_available() {
        return;
    }
    let data = temp_dir("catch-up");
    // Newcomers get only the latest message, so what was missed must come from paging.
    let server = start_with(&data, "127.0.0.1:0", "127.0.0.1:0", |c| c.history.on_join = 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
    let relayed = listener.local_addr().expect("relay address");
    let network = relay(listener, server.native);
    let mut bob = Peer::join(server.line, "bob").await;
    let mut carol = Peer::join(server.line, "carol").await;
    let args = ["--plain".to_owned(), "--name".to_owned(), "ann".to_owned(), relayed.to_string()];
    let screen = Screen::start("catch-up", &data, &args);
    screen.wait_for_text("Welcome to the chat, ann!").await;
    bob.say("before the outage").await;
    screen.wait_for_text("bob: before the outage").await;

    network.abort();
    screen.wait_for_text("RECONNECTING").await;
    for n in 1..=3 {
        bob.say(&format!("missed {n}")).await;
    }
    // Carol has them, so they are stored.
    carol.expect("bob: missed 3").await;

    let network = relay(tokio::net::TcpListener::bind(relayed).await.expect("relay binds again"), server.native);
    let rows = screen
        .wait_for("the missed messages", |rows| {
            rows.iter().any(|r| r.contains("Reconnected.")) && rows.iter().any(|r| r.contains("bob: missed 3"))
        })
        .await;
    for text in ["bob: before the outage", "bob: missed 1", "bob: missed 2", "bob: missed 3"] {
        assert_eq!(count(&rows, text), 1, "{text}: {}", rows.join("\n"));
    }
    let order: Vec<usize> = ["missed 1", "missed 2", "missed 3"]
        .iter()
        .map(|text| rows.iter().position(|r| r.contains(text)).unwrap_or(usize::MAX))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {}", rows.join("\n"));
    screen.press(&["C-c"]);
    screen.wait_for_text("chat exited with 0").await;
    network.abort();
    server.shutdown().await;
}

#[tokio::test]
async fn a_logged_in_chat_comes_back_logged_in_without_the_password() {
    if !tmux_available() {
        return;
    }
    let data = temp_dir("token");
    let server = start(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let (line, native) = (server.line, server.native);
    let args = ["--plain".to_owned(), "--name".to_owned(), "ann".to_owned(), native.to_string()];
    let screen = Screen::start("token", &data, &args);
    screen.wait_for_text("Welcome to the chat, ann!").await;
    screen.type_text("/register longpassword1");
    screen.press(&["Enter"]);
    screen.wait_for_text("ann is now your account").await;

    // The server restarts: the connection comes back with the token, not as a guest.
    server.shutdown().await;
    screen.wait_for_text("RECONNECTING").await;
    let server = start(&data, &line.to_string(), &native.to_string()).await;
    screen.wait_for_text("Reconnected.").await;
    screen.type_text("/sessions");
    screen.press(&["Enter"]);
    let rows = screen.wait_for_text("(this one)").await;
    assert!(rows.iter().any(|r| r.contains("native")), "{}", rows.join("\n"));

    // Revoked meanwhile (a password change elsewhere): the next reconnect says so and
    // comes back as a guest.
    let mut bob = Peer::join(line, "bob").await;
    bob.say("hello ann").await;
    screen.wait_for_text("bob: hello ann").await;
    let owner = parley_client::Client::connect(&native.to_string(), &parley_client::Transport::Plain)
        .await
        .expect("connects")
        .0;
    owner.hello("someone").await.expect("welcomed");
    owner.login(Some("ann"), "longpassword1").await.expect("logs in");
    owner.change_password("longpassword1", "longpassword2").await.expect("changes");
    drop(owner);
    server.shutdown().await;
    screen.wait_for_text("RECONNECTING").await;
    let server = start(&data, &line.to_string(), &native.to_string()).await;
    screen.wait_for_text("Your session has ended").await;
    screen.wait_for_text("Reconnected.").await;
    screen.press(&["C-c"]);
    screen.wait_for_text("chat exited with 0").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_server_is_replaced_by_the_next_one_and_giving_up_exits_with_status_2() {
    if !tmux_available() {
        return;
    }
    let data = temp_dir("failover");
    let first = start(&data.join("a"), "127.0.0.1:0", "127.0.0.1:0").await;
    let second = start(&data.join("b"), "127.0.0.1:0", "127.0.0.1:0").await;
    let (a, b) = (first.native, second.native);
    let args = ["--plain", "--name", "ann", "--reconnect-for", "2", &format!("{a},{b}")].map(str::to_owned);
    let screen = Screen::start("failover", &data, &args);
    screen.wait_for_text("Welcome to the chat, ann!").await;

    first.shutdown().await;
    screen.wait_for_text(&format!("Connected to {b}.")).await;
    screen.wait_for_text("Reconnected.").await;
    let mut bob = Peer::join(second.line, "bob").await;
    bob.say("hello on b").await;
    screen.wait_for_text("bob: hello on b").await;
    screen.type_text("heard on b");
    screen.press(&["Enter"]);
    bob.expect("ann: heard on b").await;

    // Nowhere left to go: after two seconds of tries, the chat ends with status 2.
    second.shutdown().await;
    let rows = screen.wait_for_text("chat exited with 2").await;
    assert!(rows.iter().any(|r| r.contains("No server answered within 2 s")), "{}", rows.join("\n"));
}
