//! Cluster mode with nodes as processes: three `parley serve` processes sharing one
//! PostgreSQL database and a 3-server NATS cluster on loopback. A node is killed with
//! SIGKILL while a sender's messages flow; its clients move to the other nodes and catch
//! up by cursor, and the node, started again on its data directory under its name,
//! serves the whole room to newcomers. (The in-process tests of the same mode are in
//! crates/server/tests/cluster.rs.)
//!
//! Without nats-server or PostgreSQL the test says it skips, and fails under `CI=true`.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use parley_client::{Client, Event, HistoryCursor, Transport};
use parley_cluster::testing::TestCluster;
use parley_store::testing::TestPostgres;
use support::TempDir;
use tokio::sync::{mpsc, watch};

/// How long anything awaited may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(20);

/// How soon a killed node's clients must be back in the room through another node.
const FAILOVER_WITHIN: Duration = Duration::from_secs(10);

/// How soon the nicks a killed node held are free again: its lease in the cluster (10 s),
/// a check of the leases (every 2 s), the freeing, and room to spare; a nick's own lease
/// (30 s) would be later.
const NICKS_FREE_WITHIN: Duration = Duration::from_secs(20);

/// One `parley serve` process of the cluster; killed and reaped when dropped, so a
/// failing test leaves no node behind.
struct Node {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
    /// Held open: the node's standard output, after its listening line.
    _stdout: Option<BufReader<ChildStdout>>,
    /// Its native listener.
    addr: String,
}

impl Node {
    /// Starts node `name` on `dir` (its data directory, made if missing), connected to
    /// the NATS servers `nats` (the first tried first) and the database `database`, and
    /// waits for its listening line.
    fn start(name: &str, dir: &Path, nats: &[String], database: &str) -> Node {
        std::fs::create_dir_all(dir).expect("data directory");
        let config = dir.join("parley.toml");
        // The sender sends as fast as its acknowledgements come back.
        std::fs::write(&config, "[limits]\nflood_rate_per_sec = 0\n").expect("config written");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("node.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", "native=127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir)
            .args(["--cluster", &nats.join(","), "--node", name, "--database", database])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("parley serve starts");
        let stdout = child.stdout.take().expect("stdout");
        // The listening line, read on a thread of its own so that a node that hangs at
        // start fails the test instead of blocking it.
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let read = stdout.read_line(&mut line);
            let _ = tx.send((read.map(|_| line), stdout));
        });
        let mut node =
            Node { name: name.to_owned(), dir: dir.to_owned(), child: Some(child), _stdout: None, addr: String::new() };
        let (line, stdout) = match rx.recv_timeout(PATIENCE) {
            Ok((Ok(line), stdout)) => (line, stdout),
            Ok((Err(e), _)) => panic!("{name} said nothing: {e}\n{}", node.log()),
            Err(_) => panic!("{name} did not listen within {PATIENCE:?}\n{}", node.log()),
        };
        let Some(addr) = line.trim_end().strip_prefix("listening native=") else {
            panic!("{name} did not start: {line:?}\n{}", node.log());
        };
        node.addr = addr.to_owned();
        node._stdout = Some(stdout);
        node
    }

    /// Ends the process as a crash would: SIGKILL, no shutdown, no goodbye.
    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("killed");
            child.wait().expect("reaped");
        }
    }

    /// What the node logged, for a failure's message.
    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!("--- last lines of {}'s log ---\n{}", self.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// The NATS cluster, the database and three nodes. Fields drop in order: the nodes
/// first, then NATS, then the directories.
struct Cluster {
    nodes: Vec<Node>,
    nats: TestCluster,
    database: String,
    _postgres: std::sync::Arc<TestPostgres>,
    dir: TempDir,
}

impl Cluster {
    /// Three nodes, `node-i` trying NATS server `i` first; `None` (said loudly) without
    /// nats-server or PostgreSQL outside CI.
    async fn start() -> Option<Cluster> {
        let postgres = TestPostgres::shared()?;
        let nats = TestCluster::start().await?;
        let database = postgres.database();
        let dir = TempDir::new("cluster");
        let mut cluster = Cluster { nodes: Vec::new(), nats, database, _postgres: postgres, dir };
        for i in 0..3 {
            let node = cluster.start_node(i);
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    /// Starts node `i` on its data directory (again, after a kill).
    fn start_node(&self, i: usize) -> Node {
        let name = format!("node-{i}");
        Node::start(&name, &self.dir.0.join(&name), &self.nats.urls_from(i), &self.database)
    }
}

/// A message of `dev` as a client sees it: seq, sender, text.
type Seen = (u64, String, String);

/// What a client's events are turned into.
#[derive(Debug)]
enum Got {
    Message(Seen),
    Closed,
}

/// A client in room `dev`, whose events a task forwards as they come.
struct Member {
    client: Client,
    got: mpsc::UnboundedReceiver<Got>,
}

impl Member {
    /// Connects to `addr` as `nick` and joins `dev`.
    async fn join(addr: &str, nick: &str) -> Result<Member, parley_client::Error> {
        let (client, mut events, _) = Client::connect(addr, &Transport::Plain).await?;
        let (tx, got) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let got = match event {
                    Event::Message { room, from, seq, text, .. } if room == "dev" => Got::Message((seq, from, text)),
                    Event::Closed { .. } => Got::Closed,
                    _ => continue,
                };
                if tx.send(got).is_err() {
                    return;
                }
            }
        });
        client.hello(nick).await?;
        client.join("dev").await?;
        Ok(Member { client, got })
    }

    /// The next thing that happened to the client, within [`PATIENCE`].
    async fn next(&mut self, who: &str) -> Got {
        match tokio::time::timeout(PATIENCE, self.got.recv()).await {
            Ok(Some(got)) => got,
            Ok(None) => Got::Closed,
            Err(_) => panic!("{who} heard nothing for {PATIENCE:?}"),
        }
    }

    /// Messages until the one with seq `last`.
    async fn messages_until(&mut self, who: &str, last: u64) -> Vec<Seen> {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|(seq, _, _): &Seen| *seq < last) {
            match self.next(who).await {
                Got::Message(message) => seen.push(message),
                Got::Closed => panic!("{who}'s connection closed after {seen:?}"),
            }
        }
        seen
    }

    /// Messages until the connection closes.
    async fn messages_until_closed(&mut self, who: &str) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            match self.next(who).await {
                Got::Message(message) => seen.push(message),
                Got::Closed => return seen,
            }
        }
    }

    /// The room's history after seq `after`, page by page until an empty one.
    async fn history_after(&self, mut after: u64) -> Vec<Seen> {
        let mut all = Vec::new();
        loop {
            let (_, page) =
                self.client.history(Some("dev"), HistoryCursor::After(after), Some(50)).await.expect("history");
            let Some(last) = page.last() else { return all };
            after = last.seq;
            all.extend(page.into_iter().map(|m| (m.seq, m.from, m.text)));
        }
    }
}

/// Joins `dev` through the first of `addrs` that takes the client, trying again until
/// [`FAILOVER_WITHIN`] has passed since `since`. Until the cluster frees the killed
/// node's nicks, the client's is still held there: it comes back as `nick_`, as the
/// browser client does.
async fn fail_over(addrs: &[&str], nick: &str, since: Instant) -> (Member, Duration) {
    loop {
        for addr in addrs {
            for nick in [nick.to_owned(), format!("{nick}_")] {
                if let Ok(member) = Member::join(addr, &nick).await {
                    return (member, since.elapsed());
                }
            }
        }
        assert!(since.elapsed() < FAILOVER_WITHIN, "{nick} found no node within {FAILOVER_WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts `seqs` run 1, 2, 3… with neither gap nor repeat.
fn assert_dense(who: &str, seen: &[Seen]) {
    let seqs: Vec<u64> = seen.iter().map(|(seq, _, _)| *seq).collect();
    let dense: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, dense, "{who}: no gap, no repeat");
}

/// What a client of the killed node saw: live until the kill, then (on another node)
/// the history after its last seq, then live again, where messages the history already
/// gave (those that arrived while it was being fetched) are the only ones skipped.
/// Each part must itself be gapless and without repeats.
fn stitched(who: &str, before: Vec<Seen>, caught_up: Vec<Seen>, live: Vec<Seen>) -> Vec<Seen> {
    let last = before.last().map_or(0, |(seq, _, _)| *seq);
    let ascending = |part: &[Seen]| part.windows(2).all(|w| w[1].0 == w[0].0 + 1);
    assert!(ascending(&before), "{who}: live before the kill is gapless: {before:?}");
    assert!(ascending(&caught_up), "{who}: the catch-up is gapless: {caught_up:?}");
    assert!(ascending(&live), "{who}: live after the rejoin is gapless: {live:?}");
    assert!(caught_up.first().is_none_or(|(seq, _, _)| *seq == last + 1), "{who}: catch-up starts after {last}");
    let caught = caught_up.last().map_or(last, |(seq, _, _)| *seq);
    assert!(
        live.first().is_none_or(|(seq, _, _)| *seq <= caught + 1),
        "{who}: nothing between the catch-up (to {caught}) and live ({live:?})"
    );
    let mut all = before;
    all.extend(caught_up);
    all.extend(live.into_iter().filter(|(seq, _, _)| *seq > caught));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_fail_over_and_catch_up_and_the_node_comes_back() {
    let Some(mut cluster) = Cluster::start().await else { return };
    const SENT: u64 = 300;
    const KILL_AFTER: u64 = 80;
    // The second client of node 0 comes back later, so that it has this many at least
    // to catch up.
    const LATE_BY: u64 = 30;
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.addr.clone()).collect();
    let mut early = Member::join(&addrs[0], "early").await.expect("early joins on node 0");
    let mut tardy = Member::join(&addrs[0], "tardy").await.expect("tardy joins on node 0");
    let mut one = Member::join(&addrs[1], "one").await.expect("one joins on node 1");
    let mut two = Member::join(&addrs[2], "two").await.expect("two joins on node 2");
    let sender = Member::join(&addrs[1], "sender").await.expect("the sender joins on node 1");
    // Someone on node 2 who only watches who leaves `dev`.
    let (watcher, mut watched, _) = Client::connect(&addrs[2], &Transport::Plain).await.expect("connects");
    watcher.hello("watcher").await.expect("welcome");
    watcher.join("dev").await.expect("joins");
    let (left_tx, mut left) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = watched.next().await {
            if let Event::Left { room, nick, .. } = event {
                if room == "dev" && left_tx.send(nick).is_err() {
                    return;
                }
            }
        }
    });

    // The sender streams from node 1, each message after the last one's acknowledgement.
    let (acked_tx, mut acked) = watch::channel(0u64);
    let sending = tokio::spawn(async move {
        let mut sent = Vec::new();
        for k in 1..=SENT {
            let text = format!("m{k}");
            let (seq, _) = sender.client.say("dev", &text).await.expect("every message is taken");
            sent.push((seq, "sender".to_owned(), text));
            let _ = acked_tx.send(k);
        }
        (sender, sent)
    });

    let reached = |n: u64| move |k: &u64| *k >= n;
    tokio::time::timeout(PATIENCE, acked.wait_for(reached(KILL_AFTER))).await.expect("in time").expect("sending");
    cluster.nodes[0].kill_9();
    let killed = Instant::now();
    let acked_at_kill = *acked.borrow();

    // `early` moves at once, to node 1 (or 2); `tardy` once LATE_BY more are taken, to
    // node 2 (or 1).
    let early_before = early.messages_until_closed("early").await;
    let (mut early, early_took) = fail_over(&[&addrs[1], &addrs[2]], "early", killed).await;
    let early_caught_up = early.history_after(early_before.last().map_or(0, |m| m.0)).await;
    let tardy_before = tardy.messages_until_closed("tardy").await;
    tokio::time::timeout(PATIENCE, acked.wait_for(reached(acked_at_kill + LATE_BY)))
        .await
        .expect("in time")
        .expect("sending");
    let (mut tardy, tardy_took) = fail_over(&[&addrs[2], &addrs[1]], "tardy", killed).await;
    let tardy_caught_up = tardy.history_after(tardy_before.last().map_or(0, |m| m.0)).await;
    assert!(early_took < FAILOVER_WITHIN && tardy_took < FAILOVER_WITHIN);
    eprintln!(
        "back in the room after the kill: early in {early_took:?} ({} to catch up), tardy in {tardy_took:?} ({})",
        early_caught_up.len(),
        tardy_caught_up.len()
    );
    assert!(
        tardy_caught_up.len() as u64 >= LATE_BY,
        "tardy caught up on what it missed: {} messages",
        tardy_caught_up.len()
    );

    // The killed node's lease runs out (10 s) and the others free the nicks it held:
    // both come back to their own.
    for (who, member) in [("early", &early), ("tardy", &tardy)] {
        loop {
            match member.client.nick(who).await {
                Ok(_) => break,
                Err(e) => assert!(killed.elapsed() < NICKS_FREE_WITHIN, "{who} still held after the kill: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("the killed node's nicks were free again {:?} after the kill", killed.elapsed());
    // And the others were told that its users left.
    let mut gone = Vec::new();
    while gone.len() < 2 {
        let nick = tokio::time::timeout(NICKS_FREE_WITHIN, left.recv()).await.expect("in time").expect("watching");
        if nick == "early" || nick == "tardy" {
            gone.push(nick);
        }
    }
    assert!(killed.elapsed() < NICKS_FREE_WITHIN, "the killed node's users left after {:?}", killed.elapsed());
    drop(watcher);

    let (sender, sent) = sending.await.expect("the sender");
    assert_dense("the acknowledgements", &sent);
    let early_live = early.messages_until("early", SENT).await;
    let tardy_live = tardy.messages_until("tardy", SENT).await;
    let views = [
        ("early", stitched("early", early_before, early_caught_up, early_live)),
        ("tardy", stitched("tardy", tardy_before, tardy_caught_up, tardy_live)),
        ("one", one.messages_until("one", SENT).await),
        ("two", two.messages_until("two", SENT).await),
    ];
    for (who, seen) in &views {
        assert_eq!(seen, &sent, "{who} saw every acknowledged message once, in the log's order");
    }

    // Node 0 again, on the same data directory under the same name: a newcomer there
    // gets the whole room, and the node takes part again both ways.
    cluster.nodes[0] = cluster.start_node(0);
    let mut newcomer = Member::join(&cluster.nodes[0].addr, "newcomer").await.expect("a newcomer on node 0");
    assert_eq!(newcomer.history_after(0).await, sent, "the restarted node serves the whole room");
    let (seq, _) = newcomer.client.say("dev", "back").await.expect("the restarted node takes a message");
    assert_eq!(seq, SENT + 1);
    let back = vec![(SENT + 1, "newcomer".to_owned(), "back".to_owned())];
    for (who, member) in [("early", &mut early), ("tardy", &mut tardy), ("one", &mut one), ("two", &mut two)] {
        assert_eq!(member.messages_until(who, SENT + 1).await, back, "{who} hears the restarted node");
    }
    let (seq, _) = sender.client.say("dev", "welcome back").await.expect("taken");
    assert_eq!(
        newcomer.messages_until("newcomer", seq).await,
        [(SENT + 2, "sender".to_owned(), "welcome back".to_owned())],
        "the restarted node delivers the others' messages live"
    );
}
