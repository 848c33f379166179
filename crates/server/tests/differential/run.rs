//! Plays the scripts against one server and records, for each exchange, the lines each
//! client read: everything up to the answer to a `PING` it sent after the exchange's
//! line (the sync point), which the server answers only after what it did before.

use std::net::SocketAddr;
use std::time::Duration;

use parley_proto::irc::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::script::{Exchange, Script, Spec, Step};

/// The longest wait for one line. Only a server that stopped answering makes a wait
/// this long; the report then shows `<no answer>`.
const WAIT: Duration = Duration::from_secs(5);

/// A server under test.
pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
}

/// What each client read during one exchange, clients in the order the script made them.
pub type Observed = Vec<(String, Vec<String>)>;

/// The observations of every exchange of every script, in order.
pub async fn run(target: &Target, scripts: &[Script]) -> Vec<Vec<Observed>> {
    let mut all = Vec::new();
    for script in scripts {
        all.push(run_script(target, script).await);
    }
    all
}

async fn run_script(target: &Target, script: &Script) -> Vec<Observed> {
    let mut clients: Vec<Conn> = Vec::new();
    let mut observed = Vec::new();
    for step in &script.steps {
        match step {
            Step::Connect(specs) => connect(target, &mut clients, specs).await,
            Step::Open(names) => {
                for name in names {
                    clients.push(Conn::open(target, name).await);
                }
            }
            Step::Exchange(exchange) => observed.push(exchange_on(&mut clients, exchange).await),
        }
    }
    // Every client leaves, so the next script starts on an empty server.
    for conn in clients.iter_mut().filter(|c| c.open) {
        conn.send("QUIT :done").await;
        conn.read_to_close().await;
    }
    observed
}

/// Registers clients, all at once (InspIRCd completes registrations on a timer once a
/// second: together they wait for one tick).
async fn connect(target: &Target, clients: &mut Vec<Conn>, specs: &[Spec]) {
    let first = clients.len();
    for spec in specs {
        let mut conn = Conn::open(target, &spec.name).await;
        if !spec.caps.is_empty() {
            conn.send("CAP LS 302").await;
            // One at a time: a server refuses a whole request for one it lacks.
            for cap in &spec.caps {
                conn.send(&format!("CAP REQ :{cap}")).await;
            }
        }
        conn.send(&format!("NICK {}", spec.name)).await;
        conn.send(&format!("USER u 0 * :Real {}", spec.name)).await;
        if !spec.caps.is_empty() {
            conn.send("CAP END").await;
        }
        clients.push(conn);
    }
    for conn in &mut clients[first..] {
        let lines = conn.until(&["376", "422"]).await;
        let done = lines.last().is_some_and(|l| command(l).is_some_and(|c| c == "376" || c == "422"));
        assert!(done, "{} did not register on {}: {lines:#?}", conn.name, target.name);
    }
    for conn in &mut clients[first..] {
        conn.sync().await;
    }
}

async fn exchange_on(clients: &mut [Conn], exchange: &Exchange) -> Observed {
    let mut seen: Observed = clients.iter().filter(|c| c.open).map(|c| (c.name.clone(), Vec::new())).collect();
    let sender = clients.iter().position(|c| c.name == exchange.client).expect("the script names its clients");
    let quits = exchange.line.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("QUIT"));
    if clients[sender].open {
        let conn = &mut clients[sender];
        conn.send(&exchange.line).await;
        let mut lines = if exchange.closes || quits {
            conn.read_to_close().await
        } else if exchange.until.is_empty() {
            conn.sync().await
        } else {
            let until: Vec<&str> = exchange.until.iter().map(String::as_str).collect();
            let mut lines = conn.until(&until).await;
            if conn.open {
                lines.extend(conn.sync().await);
            }
            lines
        };
        let said = lines.last().is_some_and(|l| l == CLOSED);
        if !conn.open && !said {
            lines.push(CLOSED.to_owned());
        }
        record(&mut seen, &conn.name, lines);
    } else {
        // The server closed the connection earlier: the script goes on without it.
        seen.push((exchange.client.clone(), vec![NOT_CONNECTED.to_owned()]));
    }
    for (i, conn) in clients.iter_mut().enumerate() {
        if i != sender && conn.open {
            let lines = conn.sync().await;
            record(&mut seen, &conn.name, lines);
        }
    }
    seen
}

fn record(seen: &mut Observed, name: &str, lines: Vec<String>) {
    if let Some((_, got)) = seen.iter_mut().find(|(n, _)| n == name) {
        got.extend(lines);
    }
}

/// A line's command, if it parses.
pub fn command(line: &str) -> Option<String> {
    Message::parse(line).ok().map(|m| m.command.to_ascii_uppercase())
}

/// Stands for the end of a connection among a client's lines.
pub const CLOSED: &str = "<connection closed>";

/// Stands for a line a client could not send, its connection being closed.
pub const NOT_CONNECTED: &str = "<not connected>";

/// Stands for a server that did not answer in time.
pub const NO_ANSWER: &str = "<no answer>";

struct Conn {
    name: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    open: bool,
    pings: u64,
}

enum Next {
    Line(String),
    Closed,
    Late,
}

impl Conn {
    async fn open(target: &Target, name: &str) -> Conn {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(target.addr))
            .await
            .unwrap_or_else(|_| panic!("{} accepts in time", target.name))
            .unwrap_or_else(|e| panic!("{} accepts: {e}", target.name));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (reader, writer) = stream.into_split();
        Conn { name: name.to_owned(), reader: BufReader::new(reader), writer, open: true, pings: 0 }
    }

    async fn send(&mut self, line: &str) {
        // A server that closed the connection makes this fail; reading says so.
        let _ = self.writer.write_all(format!("{line}\r\n").as_bytes()).await;
    }

    async fn next(&mut self) -> Next {
        let mut bytes = Vec::new();
        match tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut bytes)).await {
            Err(_) => Next::Late,
            Ok(Err(_) | Ok(0)) => {
                self.open = false;
                Next::Closed
            }
            Ok(Ok(_)) => {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Next::Line(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    /// Sends `PING :sync-N` and reads up to its answer: `PONG … :sync-N`, or before
    /// registration InspIRCd's `451 * PING`, which comes in order all the same.
    async fn sync(&mut self) -> Vec<String> {
        self.pings += 1;
        let token = format!("sync-{}", self.pings);
        self.send(&format!("PING :{token}")).await;
        let mut lines = Vec::new();
        loop {
            match self.next().await {
                Next::Line(line) => {
                    if let Ok(m) = Message::parse(&line) {
                        let pong = m.command.eq_ignore_ascii_case("PONG") && m.params.last() == Some(&token);
                        let refused = m.command == "451" && m.param(1).is_some_and(|p| p.eq_ignore_ascii_case("PING"));
                        if pong || refused {
                            return lines;
                        }
                    }
                    lines.push(line);
                }
                Next::Closed => {
                    lines.push(CLOSED.to_owned());
                    return lines;
                }
                Next::Late => {
                    lines.push(NO_ANSWER.to_owned());
                    return lines;
                }
            }
        }
    }

    /// Reads up to a line with one of `commands`, included.
    async fn until(&mut self, commands: &[&str]) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next().await {
                Next::Line(line) => {
                    let done = command(&line).is_some_and(|c| commands.contains(&c.as_str()));
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Next::Closed => {
                    lines.push(CLOSED.to_owned());
                    return lines;
                }
                Next::Late => {
                    lines.push(NO_ANSWER.to_owned());
                    return lines;
                }
            }
        }
    }

    /// Reads to the end of the connection.
    async fn read_to_close(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.next().await {
                Next::Line(line) => lines.push(line),
                Next::Closed => {
                    lines.push(CLOSED.to_owned());
                    return lines;
                }
                Next::Late => {
                    lines.push(NO_ANSWER.to_owned());
                    self.open = false;
                    return lines;
                }
            }
        }
    }
}
