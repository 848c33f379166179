//! irssi and WeeChat, the IRC clients people already use, against a real `parley serve`.
//! Each client runs in a private tmux server with a temporary home, so no one's own
//! configuration is read or written; it is typed at with `send-keys` and read with
//! `capture-pane`. A line-protocol user in the same room talks with it both ways, in
//! the room and in private, and has spoken before it came (history), and the client
//! sets and shows a topic. Over plain TCP, and over TLS with the server's self-signed
//! certificate pinned by its fingerprint and SASL PLAIN.
//!
//! Every wait polls the screen or the socket until what is expected shows, with a
//! deadline, instead of sleeping for a fixed time; a failure prints the whole screen.
//! Without tmux, irssi or WeeChat (`apt-get install tmux irssi weechat-curses`) these
//! tests are skipped with a message, except in CI (`CI=true`), where that is a failure.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long anything may take to show. Generous: CI machines are shared, and four
/// clients run at once.
const WAIT: Duration = Duration::from_secs(15);

/// How often a screen or socket is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);

/// The IRC client's nick, and the account it logs in to over TLS.
const NICK: &str = "ircy";

/// The account's password (the hub refuses short ones).
const PASSWORD: &str = "correct-horse-battery";

/// An IRC operator, given to the server with `--oper`: in Parley only operators may set
/// the lobby's topic, and `OPER` makes the session a server admin.
const OPER: (&str, &str) = ("root", "secret");

/// Is `program` here? If not: skip loudly, or fail in CI.
fn available(program: &str, version_flag: &str, package: &str) -> bool {
    let found = Command::new(program).arg(version_flag).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is required for the IRC client tests in CI; install it (apt-get install {package})"
        );
        // Straight to stderr: the test harness captures `eprintln!` of passing tests,
        // and a skipped test must not look like a passed one.
        let message =
            format!("!!! SKIPPING an IRC client test: {program} is not installed (apt-get install {package}) !!!\n");
        let _ = std::io::stderr().write_all(message.as_bytes());
    }
    found
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-irc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `parley serve` with a plain IRC, a TLS IRC and a plain line listener on loopback,
/// joining IRC clients to `#lobby` (`--irc-autojoin`), where the line users are; killed
/// when dropped.
struct Served {
    child: Child,
    irc: SocketAddr,
    irc_tls: SocketAddr,
    line: SocketAddr,
    /// `AB:CD:…`, the SHA-256 of the self-signed certificate.
    fingerprint: String,
    /// Where its stderr goes, named when a test fails.
    log: PathBuf,
}

impl Served {
    fn start(dir: &Path) -> Served {
        let log = dir.join("server.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", "irc=127.0.0.1:0", "--listen", "irc+tls=127.0.0.1:0"])
            .args(["--listen", "line=127.0.0.1:0", "--oper", &format!("{}:{}", OPER.0, OPER.1)])
            .args(["--irc-autojoin", "#lobby", "--data-dir"])
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("parley serve starts");
        // Read on a thread, so that a server that says nothing cannot hang the test.
        let stdout = child.stdout.take().expect("stdout");
        let (lines, said) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut irc, mut irc_tls, mut line, mut fingerprint) = (None, None, None, None);
        let deadline = Instant::now() + WAIT;
        let mut heard = Vec::new();
        while irc.is_none() || irc_tls.is_none() || line.is_none() || fingerprint.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(text) = said.recv_timeout(left) else {
                let _ = child.kill();
                panic!("parley serve did not say where it listens; it said:\n{}", heard.join("\n"));
            };
            let address = |value: &str| value.parse::<SocketAddr>().expect("a listening address");
            if let Some(value) = text.strip_prefix("listening irc=") {
                irc = Some(address(value));
            } else if let Some(value) = text.strip_prefix("listening irc+tls=") {
                irc_tls = Some(address(value));
            } else if let Some(value) = text.strip_prefix("listening line=") {
                line = Some(address(value));
            } else if let Some(value) = text.strip_prefix("tls fingerprint sha256=") {
                fingerprint = Some(value.to_owned());
            }
            heard.push(text);
        }
        let (Some(irc), Some(irc_tls), Some(line), Some(fingerprint)) = (irc, irc_tls, line, fingerprint) else {
            unreachable!("the loop ends when all four are known");
        };
        Served { child, irc, irc_tls, line, fingerprint, log }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = std::io::stderr().write_all(format!("the server's log: {}\n", self.log.display()).as_bytes());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `line` is `[HH:MM:SS] rest`, as the line protocol stamps what it shows.
fn stamped(line: &str, rest: &str) -> bool {
    let Some(clock) = line.strip_prefix('[').and_then(|l| l.get(..8)) else {
        return false;
    };
    let clock_ok =
        clock.bytes().enumerate().all(|(i, b)| if i == 2 || i == 5 { b == b':' } else { b.is_ascii_digit() });
    clock_ok && line.get(9..).is_some_and(|tail| tail.strip_prefix("] ") == Some(rest))
}

/// Someone in the lobby over the line protocol, on a raw socket.
struct Liner {
    stream: TcpStream,
    /// Bytes read past the last whole line.
    partial: Vec<u8>,
    /// Every line read, to show when an expected one does not come.
    seen: Vec<String>,
}

impl Liner {
    fn join(addr: SocketAddr, name: &str) -> Liner {
        let stream = TcpStream::connect(addr).expect("the line listener accepts");
        stream.set_read_timeout(Some(POLL)).expect("read timeout");
        let mut liner = Liner { stream, partial: Vec::new(), seen: Vec::new() };
        // The server asks `Please enter your username: ` without a line break, so the
        // welcome ends the prompt's line.
        liner.say(name);
        liner.expect(&format!("{name}'s welcome"), |l| l.ends_with(&format!("Welcome to the chat, {name}!")));
        liner
    }

    fn say(&mut self, text: &str) {
        self.stream.write_all(format!("{text}\n").as_bytes()).expect("the line client writes");
    }

    /// Reads lines until one matches; fails with everything read after [`WAIT`].
    fn expect(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let bytes: Vec<u8> = self.partial.drain(..=end).collect();
                let line = String::from_utf8_lossy(&bytes).trim_end().to_owned();
                self.seen.push(line.clone());
                if matches(&line) {
                    return line;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the line client timed out waiting for {what}; it read:\n{}",
                self.seen.join("\n")
            );
            let mut buf = [0; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    panic!("the server closed the line client waiting for {what}; it read:\n{}", self.seen.join("\n"))
                }
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("the line client's read failed waiting for {what}: {e}"),
            }
        }
    }

    /// Waits for `[HH:MM:SS] rest`.
    fn expect_stamped(&mut self, rest: &str) -> String {
        self.expect(rest, |l| stamped(l, rest))
    }

    /// Waits until the server has closed the connection.
    fn expect_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
            assert!(Instant::now() < deadline, "the server did not close the line client");
        }
    }
}

/// A private tmux server running one program in a 200x60 terminal, killed when dropped.
struct Screen {
    socket: String,
    /// The server's socket file, which tmux leaves behind after `kill-server`.
    socket_path: Option<PathBuf>,
}

impl Screen {
    /// Runs the shell command `command` with HOME in `home`. When it exits, the pane
    /// prints its exit status and stays, so a test can read both.
    fn start(name: &str, home: &Path, command: &str) -> Screen {
        let socket = format!("parley-irc-{}-{name}", std::process::id());
        let mut screen = Screen { socket, socket_path: None };
        // A UTF-8 terminal, so that names and text in any script are typed and shown.
        let script = format!(
            "export HOME='{}' LANG=C.UTF-8 LC_ALL=C.UTF-8; {command}; echo \"client exited with $?\"; exec sleep 600",
            home.display()
        );
        screen.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "60", "sh", "-c", &script]);
        let path = screen.tmux(&["display-message", "-p", "#{socket_path}"]);
        screen.socket_path = Some(PathBuf::from(path.trim_end()));
        screen
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-u")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types a line and presses Enter.
    fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
        self.tmux(&["send-keys", "-t", "0", "Enter"]);
    }

    fn rows(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p", "-t", "0"]).lines().map(|l| l.trim_end().to_owned()).collect()
    }

    /// Polls the screen until `ready` holds; fails with the screen after [`WAIT`].
    fn wait_for(&self, what: &str, ready: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if ready(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{}", rows.join("\n"));
            std::thread::sleep(POLL);
        }
    }

    fn wait_for_text(&self, text: &str) -> Vec<String> {
        self.wait_for(text, |rows| rows.iter().any(|r| r.contains(text)))
    }

    /// Shows a window (irssi) or buffer (WeeChat). The window may not exist yet (the
    /// JOIN or the private message is still on its way), and then the client refuses
    /// the command, so it is typed again every second until the window shows.
    fn show(&self, client: Client, window: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.type_line(&client.show_command(window));
            let typed = Instant::now();
            loop {
                let rows = self.rows();
                if client.showing(&rows, window) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for the window {window}; the screen:\n{}",
                    rows.join("\n")
                );
                if typed.elapsed() > Duration::from_secs(1) {
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // A test that failed elsewhere (the line client waiting) shows the screen too.
        if std::thread::panicking() {
            let output = Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .args(["capture-pane", "-p", "-t", "0"])
                .env_remove("TMUX")
                .output();
            if let Ok(output) = output {
                let screen = format!("the screen at the failure:\n{}\n", String::from_utf8_lossy(&output.stdout));
                let _ = std::io::stderr().write_all(screen.as_bytes());
            }
        }
        let _ = Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").env_remove("TMUX").output();
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How a test reaches the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Plain,
    /// TLS with the certificate's fingerprint pinned, and SASL PLAIN.
    Tls,
}

/// A real IRC client, and how it looks on the screen.
#[derive(Clone, Copy)]
enum Client {
    Irssi,
    Weechat,
}

impl Client {
    fn program(self) -> &'static str {
        match self {
            Client::Irssi => "irssi",
            Client::Weechat => "weechat",
        }
    }

    fn installed(self) -> bool {
        let package = match self {
            Client::Irssi => "irssi",
            Client::Weechat => "weechat-curses",
        };
        available("tmux", "-V", "tmux") && available(self.program(), "--version", package)
    }

    /// The shell command that starts the client, already connecting: its configuration
    /// lives under `home`, and it runs what a user would type to connect.
    fn command(self, nick: &str, home: &Path, server: &Served, transport: Transport) -> String {
        match self {
            Client::Irssi => {
                let dir = home.join("irssi");
                std::fs::create_dir_all(&dir).expect("irssi's directory");
                // irssi sends a command every 2.2 s once five are queued, which would make
                // this test slow; the few lines it types are far below the server's
                // flood limits.
                let config = format!(
                    "settings = {{\n  core = {{ nick = \"{nick}\"; user_name = \"ircy\"; real_name = \"A test\"; }};\n  \
                     \"irc/core\" = {{ cmd_queue_speed = \"0\"; }};\n  \
                     \"fe-text\" = {{ paste_detect_time = \"0\"; }};\n}};\n"
                );
                std::fs::write(dir.join("config"), config).expect("irssi's config");
                // irssi runs `startup` from its directory as if typed once it has started.
                let startup = match transport {
                    Transport::Plain => format!("/connect {} {}\n", server.irc.ip(), server.irc.port()),
                    // `/server add -tls` checks the certificate against the system's
                    // authorities unless told not to; the pinned fingerprint is checked
                    // either way (a wrong one is refused: "Pinned certificate mismatch").
                    Transport::Tls => format!(
                        "/network add -sasl_mechanism PLAIN -sasl_username {NICK} -sasl_password {PASSWORD} parley\n\
                         /server add -tls -notls_verify -tls_pinned_cert {} -network parley {} {}\n\
                         /connect parley\n",
                        server.fingerprint,
                        server.irc_tls.ip(),
                        server.irc_tls.port(),
                    ),
                };
                std::fs::write(dir.join("startup"), startup).expect("irssi's startup");
                format!("irssi --home='{}'", dir.display())
            }
            Client::Weechat => {
                let dir = home.join("weechat");
                std::fs::create_dir_all(&dir).expect("weechat's directory");
                // WeeChat 4 renamed its `ssl` options `tls`, and turned TLS on for new
                // servers by default: plain TCP is asked for explicitly.
                let tls = if weechat_major() >= 4 { "tls" } else { "ssl" };
                let (addr, security) = match transport {
                    Transport::Plain => (server.irc, format!("-no{tls}")),
                    Transport::Tls => {
                        // WeeChat wants the fingerprint as bare hexadecimal digits, and then
                        // accepts that certificate alone ("fingerprint does NOT match" for
                        // any other).
                        let hex = server.fingerprint.replace(':', "").to_ascii_lowercase();
                        let sasl = format!("-sasl_mechanism=plain -sasl_username={NICK} -sasl_password={PASSWORD}");
                        (server.irc_tls, format!("-{tls} -{tls}_fingerprint={hex} {sasl}"))
                    }
                };
                let add = format!(
                    "/server add parley {}/{} {security} -nicks={nick} -username=ircy -realname=test",
                    addr.ip(),
                    addr.port()
                );
                // Lines typed in quick succession (a loaded machine delivers two
                // `send-keys` at once) would otherwise stop at "Paste 2 lines?".
                let no_paste = "/set weechat.look.paste_max_lines -1";
                format!("weechat --dir '{}' --run-command '{no_paste};{add};/connect parley'", dir.display())
            }
        }
    }

    /// The command that shows a window: `#channel`, a nick's query, or `status`.
    fn show_command(self, window: &str) -> String {
        match (self, window) {
            (Client::Irssi, "status") => "/window 1".to_owned(),
            (Client::Irssi, name) => format!("/window goto {name}"),
            // The core buffer, where the server's messages go by default.
            (Client::Weechat, "status") => "/buffer 1".to_owned(),
            (Client::Weechat, name) => format!("/buffer irc.parley.{name}"),
        }
    }

    /// Whether the screen shows that window as the current one.
    fn showing(self, rows: &[String], window: &str) -> bool {
        match (self, window) {
            // irssi's prompt names the window: `[#lobby]`, `[liner]`, `[(status)]`.
            (Client::Irssi, "status") => rows.last().is_some_and(|r| r == "[(status)]"),
            (Client::Irssi, name) => rows.last().is_some_and(|r| *r == format!("[{name}]")),
            // WeeChat's status bar: `[12:00] [2] [irc/parley] 1:weechat` or `2:#lobby(+nt){2}`.
            // The server's buffer, merged with WeeChat's own, is `server` (or `weechat`).
            (Client::Weechat, "status") => weechat_buffer(rows).is_some_and(|b| b == "server" || b == "weechat"),
            (Client::Weechat, name) => weechat_buffer(rows) == Some(name),
        }
    }

    /// How someone's message in a channel shows.
    fn said(self, nick: &str, text: &str) -> String {
        match self {
            Client::Irssi => format!("{nick}> {text}"),
            Client::Weechat => format!("{nick} | {text}"),
        }
    }

    /// Whether the screen shows that the client has left `channel`: irssi closes the
    /// channel's window, WeeChat keeps its buffer and says so there.
    fn parted(self, rows: &[String], channel: &str) -> bool {
        match self {
            // A whole prompt of another window, not one half drawn.
            Client::Irssi => {
                rows.last().is_some_and(|r| r.starts_with('[') && r.ends_with(']') && *r != format!("[{channel}]"))
            }
            Client::Weechat => rows.iter().any(|r| r.contains(&format!("has left {channel}"))),
        }
    }

    /// How a channel's topic shows when the client joins it (332).
    fn topic(self, channel: &str, topic: &str) -> String {
        match self {
            Client::Irssi => format!("Topic for {channel}: {topic}"),
            Client::Weechat => format!("Topic for {channel} is \"{topic}\""),
        }
    }
}

/// The current buffer's name on WeeChat's status bar:
/// `[12:00] [2] [irc/parley] 2:#lobby(+nt){1}` is `#lobby`, `1:server[parley]` is `server`.
fn weechat_buffer(rows: &[String]) -> Option<&str> {
    let (_, shown) = rows.iter().find_map(|r| r.split_once("[irc/parley] "))?;
    let (number, rest) = shown.split_once(':')?;
    let name = rest.split(['(', '{', '[', ' ']).next().unwrap_or(rest);
    number.bytes().all(|b| b.is_ascii_digit()).then_some(name)
}

/// WeeChat's major version, from `weechat --version` (`3.8`, `4.1.1`).
fn weechat_major() -> u32 {
    let output = Command::new("weechat").arg("--version").output().expect("weechat runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().split('.').next().and_then(|major| major.parse().ok()).expect("a version like 3.8")
}

/// The whole exchange, for one client over one transport.
fn chat_with(client: Client, transport: Transport) {
    if !client.installed() {
        return;
    }
    let name = format!("{}-{}", client.program(), if transport == Transport::Tls { "tls" } else { "plain" });
    let dir = temp_dir(&name);
    let server = Served::start(&dir);

    // Over TLS the client logs in with SASL, so its nick is an account first.
    if transport == Transport::Tls {
        let mut owner = Liner::join(server.line, NICK);
        owner.say(&format!("/register {PASSWORD}"));
        owner.expect_stamped(&format!("{NICK} is now your account. Next time, log in with /login {NICK} PASSWORD."));
        owner.say("/quit");
        owner.expect_closed();
    }

    // History: said before the IRC client comes; `/history` answers once it is stored.
    let mut liner = Liner::join(server.line, "liner");
    liner.say("said before you came");
    liner.say("and this too");
    liner.say("/history 2");
    liner.expect("the history", |l| l.ends_with("] liner: and this too"));

    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let screen = Screen::start(&name, &home, &client.command(NICK, &home, &server, transport));

    // The server joins it to #lobby (`--irc-autojoin`), and plays the history back.
    screen.show(client, "#lobby");
    screen.wait_for_text("has joined #lobby");
    screen.wait_for_text(&client.said("liner", "said before you came"));
    screen.wait_for_text(&client.said("liner", "and this too"));
    liner.expect_stamped(&format!("{NICK} has joined lobby."));

    // In the room, both ways.
    liner.say("hello from the line");
    screen.wait_for_text(&client.said("liner", "hello from the line"));
    screen.type_line("hello from irc");
    liner.expect_stamped(&format!("{NICK}: hello from irc"));
    screen.wait_for_text(&client.said(NICK, "hello from irc"));

    // In private, both ways: the client opens a query window for what it receives.
    screen.type_line("/msg liner psst from irc");
    liner.expect_stamped(&format!("[private] {NICK}: psst from irc"));
    liner.say(&format!("/msg {NICK} psst from the line"));
    screen.show(client, "liner");
    screen.wait_for_text(&client.said("liner", "psst from the line"));

    // The topic: only operators may set the lobby's, so OPER first (in order on one
    // connection, so no wait between the two). Everyone in the room is told, and whoever
    // joins sees it: the client leaves and comes back.
    screen.show(client, "#lobby");
    screen.type_line(&format!("/oper {} {}", OPER.0, OPER.1));
    screen.type_line("/topic #lobby Hello topic");
    liner.expect_stamped(&format!("*** {NICK} set the topic of lobby: Hello topic"));
    screen.type_line("/part #lobby");
    liner.expect_stamped(&format!("{NICK} has left lobby."));
    screen.wait_for("the client to leave #lobby", |rows| client.parted(rows, "#lobby"));
    screen.type_line("/join #lobby");
    liner.expect_stamped(&format!("{NICK} has joined lobby."));
    screen.show(client, "#lobby");
    screen.wait_for_text(&client.topic("#lobby", "Hello topic"));

    // The status window has the registration: welcome, SASL, operator.
    screen.show(client, "status");
    screen.wait_for_text("Welcome to the Parley IRC network");
    screen.wait_for_text("You are now an IRC operator");
    if transport == Transport::Tls {
        screen.wait_for_text(&format!("You are now logged in as {NICK}"));
    }

    // Leaving with a reason the others read.
    screen.type_line("/quit see you");
    liner.expect_stamped(&format!("{NICK} has left the chat (see you)."));
    screen.wait_for_text("client exited with 0");
    drop((screen, liner, server));
    // Kept when the test fails, for the server's log.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn irssi_over_plain_tcp() {
    chat_with(Client::Irssi, Transport::Plain);
}

#[test]
fn irssi_over_tls_with_sasl() {
    chat_with(Client::Irssi, Transport::Tls);
}

#[test]
fn weechat_over_plain_tcp() {
    chat_with(Client::Weechat, Transport::Plain);
}

#[test]
fn weechat_over_tls_with_sasl() {
    chat_with(Client::Weechat, Transport::Tls);
}

/// A nick and a channel in letters other than ASCII, typed into the client: the
/// server compares names as RFC 8265 says, and says so (`CASEMAPPING=rfc8265`).
fn chat_in_utf8(client: Client) {
    if !client.installed() {
        return;
    }
    const ZOE: &str = "Zoë";
    let name = format!("{}-utf8", client.program());
    let dir = temp_dir(&name);
    let server = Served::start(&dir);
    let mut liner = Liner::join(server.line, "liner");
    liner.say("/join #café");
    liner.expect("the join of #café", |l| l.contains("café"));

    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let screen = Screen::start(&name, &home, &client.command(ZOE, &home, &server, Transport::Plain));
    // Registered: the welcome shows, or (on a server that joins IRC users to a
    // channel) the client has switched to that channel.
    screen.wait_for("the registration", |rows| {
        rows.iter().any(|r| r.contains("Welcome to the Parley IRC network") || r.contains(&format!("{ZOE} (")))
    });
    screen.type_line("/join #café");
    liner.expect_stamped(&format!("{ZOE} has joined café."));
    screen.show(client, "#café");
    liner.say("hola Zoë");
    screen.wait_for_text(&client.said("liner", "hola Zoë"));
    screen.type_line("¡hola, liner! 你好");
    liner.expect("Zoë's words", |l| l.contains(&format!("{ZOE}: ¡hola, liner! 你好")));
    screen.type_line("/quit");
    screen.wait_for_text("client exited with 0");
    drop((screen, liner, server));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn irssi_with_a_utf8_nick_and_channel() {
    chat_in_utf8(Client::Irssi);
}

#[test]
fn weechat_with_a_utf8_nick_and_channel() {
    chat_in_utf8(Client::Weechat);
}
