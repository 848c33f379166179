//! Cluster mode, in one process: three nodes sharing one PostgreSQL database and a
//! 3-server NATS cluster on loopback, each with its own listeners and clients. (Killing a
//! node outright is in crates/parley/tests/cluster.rs, where nodes are processes.)
//!
//! Without nats-server or PostgreSQL the tests say they skip, and fail under `CI=true`.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parley_cluster::testing::TestCluster;
use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_store::testing::TestPostgres;
use support::{NativeClient, TestServer};

/// Three nodes and what they share.
struct Nodes {
    nats: TestCluster,
    postgres: Arc<TestPostgres>,
    url: String,
    nodes: Vec<TestServer>,
    /// Each node's data directory, kept to start the node again on it.
    dirs: Vec<support::tempdir::TempDir>,
}

impl Nodes {
    /// Three nodes, node `i` connected first to NATS server `i`; `None` (said loudly)
    /// without nats-server or PostgreSQL outside CI.
    async fn start() -> Option<Nodes> {
        Nodes::start_on(TestPostgres::shared()?).await
    }

    /// Three nodes on a PostgreSQL server of the caller's.
    async fn start_on(postgres: Arc<TestPostgres>) -> Option<Nodes> {
        let nats = TestCluster::start().await?;
        let url = postgres.database();
        let dirs: Vec<_> = (0..3).map(|_| support::tempdir::TempDir::new()).collect();
        let mut cluster = Nodes { nats, postgres, url, nodes: Vec::new(), dirs };
        for i in 0..3 {
            let node = cluster.start_node(i).await;
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    /// Starts node `i` on its data directory (again, after a stop).
    async fn start_node(&self, i: usize) -> TestServer {
        let (servers, url) = (self.nats.urls_from(i), self.url.clone());
        support::start_in(self.dirs[i].path(), move |c| {
            c.cluster.servers = servers;
            c.cluster.node = format!("node-{i}");
            c.database.url = Some(url);
            c.limits.flood_rate_per_sec = 0;
            // Every test client comes from 127.0.0.1, a thousand at once in one test.
            c.limits.max_connections_per_ip = 4096;
        })
        .await
    }

    async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

fn say(room: &str) -> Request {
    Request::Say { room: room.into(), reply_to: None, tags: None }
}

async fn joined(node: &TestServer, nick: &str, room: &str) -> NativeClient {
    let mut client = NativeClient::join(node.native, nick).await;
    let reply = client.request(&Request::Join { room: room.into() }, b"").await;
    assert!(matches!(reply, Ok(Reply::Joined { .. })), "{nick} joins {room}: {reply:?}");
    client
}

/// A message of `room` as its members see it: seq, sender, text.
type Seen = (u64, String, String);

/// The next `n` messages of `room` the client is given.
async fn messages(client: &mut NativeClient, room: &str, n: usize) -> Vec<Seen> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        let message = client
            .expect(|r| match &r.msg {
                ServerMsg::Message { room: got, from, seq, .. } if got == room => {
                    Some((*seq, from.clone(), r.text().to_owned()))
                }
                _ => None,
            })
            .await;
        seen.push(message);
    }
    seen
}

/// Sends `texts` into `room` at once and waits for every answer: the seq of each
/// message sent, or the error code of each refused.
async fn send_all(client: &mut NativeClient, room: &str, texts: &[String]) -> Vec<Result<u64, ErrorCode>> {
    let mut ids = Vec::new();
    for text in texts {
        ids.push(client.send(&say(room), text.as_bytes()).await);
    }
    let mut answers = Vec::new();
    for id in ids {
        answers.push(match client.answer(id).await {
            Ok(Reply::Said { seq, .. }) => Ok(seq),
            Err(ServerMsg::Error { code, .. }) => Err(code),
            other => panic!("a message's answer expected, got {other:?}"),
        });
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_on_three_nodes_are_seen_in_one_order_everywhere() {
    let Some(cluster) = Nodes::start().await else { return };
    const EACH: usize = 40;
    let mut listeners = Vec::new();
    let mut senders = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        listeners.push(joined(node, &format!("reader{i}"), "dev").await);
        senders.push(joined(node, &format!("writer{i}"), "dev").await);
    }
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, mut sender)| {
            tokio::spawn(async move {
                let texts: Vec<String> = (0..EACH).map(|k| format!("{i}:{k}")).collect();
                let answers = send_all(&mut sender, "dev", &texts).await;
                (sender, answers)
            })
        })
        .collect();
    let reading: Vec<_> = listeners
        .into_iter()
        .map(|mut listener| tokio::spawn(async move { messages(&mut listener, "dev", 3 * EACH).await }))
        .collect();
    let mut acknowledged = HashSet::new();
    for sending in sending {
        let (_sender, answers) = sending.await.expect("a sender");
        for answer in answers {
            acknowledged.insert(answer.expect("every message is taken"));
        }
    }
    let mut orders = Vec::new();
    for reading in reading {
        orders.push(reading.await.expect("a reader"));
    }
    let seqs: Vec<u64> = orders[0].iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=(3 * EACH) as u64).collect::<Vec<_>>(), "seqs are dense and increasing");
    assert_eq!(acknowledged, seqs.iter().copied().collect(), "each acknowledged message under its seq");
    assert_eq!(orders[0], orders[1], "nodes 0 and 1 delivered the same order");
    assert_eq!(orders[0], orders[2], "nodes 0 and 2 delivered the same order");
    for i in 0..3 {
        let mine: Vec<&str> = orders[0]
            .iter()
            .filter(|(_, from, _)| *from == format!("writer{i}"))
            .map(|(_, _, text)| text.as_str())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|k| format!("{i}:{k}")).collect();
        assert_eq!(mine, sent, "writer{i}'s messages in the order sent");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_refuses_messages_and_rejoins_without_a_restart() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut alice = joined(&cluster.nodes[0], "alice", "dev").await;
    let mut bob = joined(&cluster.nodes[1], "bob", "dev").await;
    assert_eq!(send_all(&mut alice, "dev", &["before".into()]).await, [Ok(1)]);
    assert_eq!(messages(&mut bob, "dev", 1).await, [(1, "alice".into(), "before".into())]);
    for i in 0..3 {
        cluster.nats.kill(i);
    }
    let started = std::time::Instant::now();
    let refused = send_all(&mut alice, "dev", &["while cut off".into()]).await;
    // Unreachable when the node knew it was cut off; unconfirmed when its publish went
    // out before it noticed (the servers were gone: it was not stored).
    assert!(
        matches!(refused[..], [Err(ErrorCode::ClusterUnreachable | ErrorCode::Unconfirmed)]),
        "a clear error: {refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "within 5 s: {:?}", started.elapsed());
    for i in 0..3 {
        cluster.nats.restart(i);
    }
    cluster.nats.wait_ready().await;
    // The node reconnects by itself (its client retries at most 4 s apart).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let seq = loop {
        match send_all(&mut alice, "dev", &["after".into()]).await.remove(0) {
            Ok(seq) => break seq,
            Err(code) => {
                assert!(std::time::Instant::now() < deadline, "still refused after 30 s: {code:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(seq, 2, "the refused message took no seq");
    assert_eq!(messages(&mut bob, "dev", 1).await, [(2, "alice".into(), "after".into())], "bob's node follows again");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_killed_during_a_fan_out_loses_and_doubles_nothing() {
    let Some(cluster) = Nodes::start().await else { return };
    const SENT: usize = 300;
    let mut sender = joined(&cluster.nodes[0], "sender", "dev").await;
    let readers: Vec<NativeClient> = {
        let mut readers = Vec::new();
        for (i, node) in cluster.nodes.iter().enumerate() {
            readers.push(joined(node, &format!("reader{i}"), "dev").await);
        }
        readers
    };
    let texts: Vec<String> = (0..SENT).map(|k| format!("m{k}")).collect();
    let (first, rest) = texts.split_at(SENT / 3);
    let mut answers = send_all(&mut sender, "dev", first).await;
    // The sender's node is connected to NATS server 0 first: kill it mid-stream.
    let killing = tokio::spawn({
        let texts = rest.to_vec();
        async move {
            let answers = send_all(&mut sender, "dev", &texts).await;
            (sender, answers)
        }
    });
    cluster.nats.kill(0);
    let (_sender, more) = killing.await.expect("the sender");
    answers.extend(more);
    let acknowledged: Vec<u64> = answers.iter().filter_map(|a| a.as_ref().ok().copied()).collect();
    let refused = answers.iter().filter(|a| a.is_err()).count();
    assert!(acknowledged.len() >= SENT - refused);
    // What a reader receives after the last acknowledged one: wait for it.
    let last = acknowledged.iter().copied().max().expect("something was acknowledged");
    let mut orders = Vec::new();
    for mut reader in readers {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|(seq, _, _): &Seen| *seq < last) {
            seen.extend(messages(&mut reader, "dev", 1).await);
        }
        orders.push(seen);
    }
    let seqs: Vec<u64> = orders[0].iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "no gap, no duplicate");
    for seq in &acknowledged {
        assert!(seqs.contains(seq), "acknowledged message {seq} delivered");
    }
    assert_eq!(orders[0], orders[1], "nodes 0 and 1 delivered the same order");
    assert_eq!(orders[0], orders[2], "nodes 0 and 2 delivered the same order");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_on_another_node_gets_the_rooms_history() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut alice = joined(&cluster.nodes[0], "alice", "dev").await;
    let texts: Vec<String> = (1..=3).map(|k| format!("early {k}")).collect();
    assert_eq!(send_all(&mut alice, "dev", &texts).await, [Ok(1), Ok(2), Ok(3)]);
    // carol's node has never had a member of dev: she still gets what was said there.
    let mut carol = NativeClient::join(cluster.nodes[2].native, "carol").await;
    let joined = carol.request(&Request::Join { room: "dev".into() }, b"").await;
    let Ok(Reply::Joined { history, .. }) = joined else { panic!("carol joins: {joined:?}") };
    // Her node may not have read all of them from the log yet: what the history lacks
    // arrives live, with no gap and nothing twice.
    let mut seen: Vec<(u64, String)> = history.iter().map(|h| (h.seq, h.text.clone())).collect();
    if seen.len() < 3 {
        let live = messages(&mut carol, "dev", 3 - seen.len()).await;
        seen.extend(live.into_iter().map(|(seq, _, text)| (seq, text)));
    }
    let want: Vec<(u64, String)> = (1..=3).map(|k| (k, format!("early {k}"))).collect();
    assert_eq!(seen, want);
    // Every node writes every message; the history page is read from the shared
    // database, whichever node answers.
    let page = carol
        .request(&Request::History { room: Some("dev".into()), before: None, after: Some(1), limit: None }, b"")
        .await;
    let Ok(Reply::History { messages, .. }) = page else { panic!("a page: {page:?}") };
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_database_delays_messages_and_loses_none() {
    let Some(postgres) = TestPostgres::own() else { return };
    let Some(cluster) = Nodes::start_on(Arc::new(postgres)).await else { return };
    let mut alice = joined(&cluster.nodes[0], "alice", "dev").await;
    let mut bob = joined(&cluster.nodes[1], "bob", "dev").await;
    let first: Vec<String> = (1..=20).map(|k| format!("m{k}")).collect();
    let answers = send_all(&mut alice, "dev", &first).await;
    cluster.postgres.restart();
    let second: Vec<String> = (21..=40).map(|k| format!("m{k}")).collect();
    let more = send_all(&mut alice, "dev", &second).await;
    let acknowledged: Vec<u64> = answers.into_iter().chain(more).map(|a| a.expect("every message is taken")).collect();
    assert_eq!(acknowledged, (1..=40).collect::<Vec<_>>());
    let seen = messages(&mut bob, "dev", 40).await;
    let texts: Vec<String> = seen.iter().map(|(_, _, text)| text.clone()).collect();
    assert_eq!(texts, first.iter().chain(&second).cloned().collect::<Vec<_>>(), "all of them, in order, once");
    // And all of them are in the database.
    let page = bob
        .request(&Request::History { room: Some("dev".into()), before: None, after: Some(0), limit: Some(100) }, b"")
        .await;
    let page = match page {
        Ok(page) => page,
        // The reader's first call after the restart may find its connection cut.
        Err(_) => bob
            .request(
                &Request::History { room: Some("dev".into()), before: None, after: Some(0), limit: Some(100) },
                b"",
            )
            .await
            .expect("a page"),
    };
    let Reply::History { messages, .. } = page else { panic!("a page: {page:?}") };
    assert_eq!(messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_where_is_known_on_every_node() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut alice = joined(&cluster.nodes[0], "alice", "dev").await;
    let mut bob = NativeClient::join(cluster.nodes[1].native, "bob").await;
    // Presence travels through the log: bob's node hears of alice in a moment.
    wait_for_who(&mut bob, "dev", &["alice"]).await;
    let reply = bob.request(&Request::Join { room: "dev".into() }, b"").await;
    let Ok(Reply::Joined { members, .. }) = reply else { panic!("bob joins: {reply:?}") };
    assert!(members.iter().any(|m| m == "alice"), "bob sees alice from another node: {members:?}");
    let arrived = alice
        .expect(|r| match &r.msg {
            ServerMsg::Joined { room, nick, .. } if room == "dev" => Some(nick.clone()),
            _ => None,
        })
        .await;
    assert_eq!(arrived, "bob", "alice hears of bob's arrival on another node");
    // carol, on a third node and in no room with them, sees them all the same.
    let mut carol = NativeClient::join(cluster.nodes[2].native, "carol").await;
    let who = carol.request(&Request::Who { room: "dev".into() }, b"").await;
    let Ok(Reply::Who { members, .. }) = who else { panic!("who: {who:?}") };
    assert_eq!(members, ["alice", "bob"]);
    let whois = carol.request(&Request::Whois { nick: "alice".into() }, b"").await;
    let Ok(Reply::Whois { nick, rooms, .. }) = whois else { panic!("whois: {whois:?}") };
    // alice made dev: she operates it, as carol's node is told.
    assert_eq!((nick.as_str(), rooms), ("alice", vec!["lobby".to_owned(), "@dev".to_owned()]));
    // A private message crosses nodes, and a taken nick is taken everywhere.
    let sent = carol.request(&Request::Whisper { to: "alice".into(), reply_to: None, tags: None }, b"psst").await;
    assert!(matches!(sent, Ok(Reply::Whispered { .. })), "{sent:?}");
    let (from, text) = alice
        .expect(|r| match &r.msg {
            ServerMsg::Whisper { from, .. } => Some((from.clone(), r.text().to_owned())),
            _ => None,
        })
        .await;
    assert_eq!((from.as_str(), text.as_str()), ("carol", "psst"));
    let renamed = carol.request(&Request::Nick { nick: "alice".into() }, b"").await;
    assert!(renamed.is_err(), "alice's nick is taken on every node: {renamed:?}");
    // Departures reach the other nodes: a part, then a quit.
    assert!(bob.request(&Request::Part { room: Some("dev".into()) }, b"").await.is_ok());
    let left = alice
        .expect(|r| match &r.msg {
            ServerMsg::Left { room, nick, reason, .. } if room == "dev" => Some((nick.clone(), *reason)),
            _ => None,
        })
        .await;
    assert_eq!(left, ("bob".to_owned(), parley_proto::msg::LeaveReason::Part));
    assert!(bob.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    wait_for_who(&mut carol, "dev", &["alice", "bob"]).await;
    drop(bob);
    let quit = alice
        .expect(|r| match &r.msg {
            ServerMsg::Left { room, nick, reason, .. } if room == "dev" => Some((nick.clone(), *reason)),
            _ => None,
        })
        .await;
    assert_eq!(quit, ("bob".to_owned(), parley_proto::msg::LeaveReason::Lost), "a lost connection, as told");
    wait_for_who(&mut carol, "dev", &["alice"]).await;
    assert!(alice.request(&Request::Quit { reason: Some("bye".into()) }, b"").await.is_ok());
    wait_for_who(&mut carol, "dev", &[]).await;
    cluster.stop().await;
}

/// Asks `room`'s members until they are `want` (none: the room is gone), for up to 10 s.
async fn wait_for_who(client: &mut NativeClient, room: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let who = client.request(&Request::Who { room: room.into() }, b"").await;
        let members = match &who {
            Ok(Reply::Who { members, .. }) => members.clone(),
            Err(ServerMsg::Error { code: ErrorCode::NoSuchRoom, .. }) => Vec::new(),
            other => panic!("who: {other:?}"),
        };
        if members == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{room} still has {members:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 10 s) until the node of the IRC client `me` has heard through the log
/// that `nick` is in `channel`: WHO shows outsiders nobody (every IRC user is
/// invisible), WHOIS lists a public channel.
async fn hears_of(client: &mut support::IrcClient, me: &str, nick: &str, channel: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = format!(" 319 {me} {nick} ");
    while !client.answers(&format!("WHOIS {nick}")).await.iter().any(|l| l.contains(&listed) && l.contains(channel)) {
        assert!(std::time::Instant::now() < deadline, "{me}'s node never heard of {nick} in {channel}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_users_on_two_nodes_share_a_channel() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    let mut bo = support::IrcClient::join(cluster.nodes[1].irc_addr(), "bo", "").await;
    ada.send("JOIN #dev").await;
    ada.expect(" 366 ada #dev ").await;
    hears_of(&mut bo, "bo", "ada", "#dev").await;
    bo.send("JOIN #dev").await;
    let names = bo.expect(" 353 bo ").await;
    assert!(names.contains("ada") && names.contains("bo"), "NAMES lists both nodes' users: {names}");
    assert!(!names.contains("@bo"), "the channel was created on ada's node: bo is no operator: {names}");
    assert!(ada.expect("JOIN").await.starts_with(":bo!"), "ada sees bo join from another node");
    bo.send("PRIVMSG #dev :hello from node 1").await;
    let line = ada.expect("PRIVMSG #dev").await;
    assert!(line.starts_with(":bo!") && line.ends_with(":hello from node 1"), "{line}");
    let who = ada.answers("WHO #dev").await;
    assert_eq!(who.iter().filter(|l| l.contains(" 352 ")).count(), 2, "WHO lists both: {who:#?}");
    let whois = ada.answers("WHOIS bo").await;
    assert!(whois.iter().any(|l| l.contains(" 311 ada bo ")), "WHOIS of a user on another node: {whois:#?}");
    bo.send("QUIT :off").await;
    let quit = ada.expect("QUIT").await;
    assert!(quit.starts_with(":bo!") && quit.ends_with(":Quit: off"), "{quit}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_on_one_node_moderates_members_on_the_others() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    ada.send("JOIN #dev").await;
    ada.expect(" 366 ada #dev ").await;
    let mut others = Vec::new();
    for (i, nick) in [(1, "bo"), (2, "cy")] {
        let mut client = support::IrcClient::join(cluster.nodes[i].irc_addr(), nick, "").await;
        hears_of(&mut client, nick, "ada", "#dev").await;
        client.send("JOIN #dev").await;
        client.expect(&format!(" 366 {nick} #dev ")).await;
        ada.expect(&format!(":{nick}!")).await;
        others.push(client);
    }
    let [mut bo, mut cy] = <[support::IrcClient; 2]>::try_from(others).unwrap_or_else(|_| unreachable!());
    ada.send("TOPIC #dev :cluster talk").await;
    assert!(bo.expect(" TOPIC #dev ").await.ends_with(":cluster talk"), "the topic reaches another node");
    ada.send("MODE #dev +m").await;
    assert!(cy.expect(" MODE #dev ").await.contains("+m"), "the mode change reaches another node");
    // Seen on bo's node: applied there.
    assert!(bo.expect(" MODE #dev ").await.contains("+m"));
    let refused = bo.answers("PRIVMSG #dev :may I?").await;
    assert!(refused.iter().any(|l| l.contains(" 404 bo #dev ")), "moderated on bo's node too: {refused:#?}");
    ada.send("KICK #dev bo :out").await;
    let kicked = bo.expect(" KICK #dev bo ").await;
    assert!(kicked.starts_with(":ada!") && kicked.ends_with(":out"), "{kicked}");
    assert!(cy.expect(" KICK #dev bo ").await.starts_with(":ada!"), "a third node sees the kick");
    ada.send("MODE #dev +b bo").await;
    cy.expect(" MODE #dev +b ").await;
    // bo's node applies the ban when its follower reads it, perhaps a moment after cy's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers = bo.answers("JOIN #dev").await;
        if answers.iter().any(|l| l.contains(" 474 bo #dev ")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the ban never held on bo's node: {answers:#?}");
        bo.answers("PART #dev").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_thousand_attempts_at_one_nick_on_two_nodes_exactly_one_succeeds() {
    let Some(cluster) = Nodes::start().await else { return };
    const EACH: usize = 500;
    let mut attempts = Vec::new();
    for node in &cluster.nodes[..2] {
        for _ in 0..EACH {
            let addr = node.native;
            attempts.push(tokio::spawn(async move {
                let mut client = NativeClient::connect(addr).await;
                let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "zed".into(), password: None };
                let answer = client.request(&hello, b"").await;
                (answer, client)
            }));
        }
    }
    let (mut welcomed, mut taken, mut other) = (Vec::new(), 0, Vec::new());
    for attempt in attempts {
        let (answer, client) = attempt.await.expect("an attempt");
        match answer {
            Ok(Reply::Welcome { nick, .. }) => welcomed.push((nick, client)),
            Err(ServerMsg::Error { code: ErrorCode::NickTaken, .. }) => taken += 1,
            other_answer => other.push(format!("{other_answer:?}")),
        }
    }
    assert!(
        other.is_empty(),
        "every attempt is welcomed or told the nick is taken: {:?}",
        &other[..other.len().min(3)]
    );
    assert_eq!(welcomed.len(), 1, "exactly one of {} attempts has the nick", 2 * EACH);
    assert_eq!(welcomed[0].0, "zed");
    assert_eq!(taken, 2 * EACH - 1);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_again_is_told_who_is_where_and_serves_the_whole_room() {
    let Some(mut cluster) = Nodes::start().await else { return };
    let mut alice = joined(&cluster.nodes[0], "alice", "dev").await;
    assert_eq!(send_all(&mut alice, "dev", &["before".into()]).await, [Ok(1)]);
    // Node 2 has read and written that message; it stops, and more is said meanwhile.
    let mut carol = NativeClient::join(cluster.nodes[2].native, "carol").await;
    wait_for_who(&mut carol, "dev", &["alice"]).await;
    drop(carol);
    let stopped = cluster.nodes.remove(2);
    stopped.shutdown().await;
    assert_eq!(send_all(&mut alice, "dev", &["while it was down".into()]).await, [Ok(2)]);
    let node = cluster.start_node(2).await;
    cluster.nodes.push(node);
    // It follows the log from where its store was, not from the beginning, so it knows
    // who is where only because the others tell it (its hello): alice is in dev.
    let mut carol = NativeClient::join(cluster.nodes[2].native, "carol").await;
    wait_for_who(&mut carol, "dev", &["alice"]).await;
    let reply = carol.request(&Request::Join { room: "dev".into() }, b"").await;
    let Ok(Reply::Joined { members, history, .. }) = reply else { panic!("carol joins: {reply:?}") };
    assert_eq!(members, ["alice", "carol"]);
    let mut seen: Vec<u64> = history.iter().map(|h| h.seq).collect();
    if seen.len() < 2 {
        seen.extend(messages(&mut carol, "dev", 2 - seen.len()).await.into_iter().map(|(seq, _, _)| seq));
    }
    assert_eq!(seen, [1, 2], "the room's history, what was said while the node was down included");
    assert_eq!(send_all(&mut alice, "dev", &["after".into()]).await, [Ok(3)]);
    assert_eq!(messages(&mut carol, "dev", 1).await, [(3, "alice".into(), "after".into())]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_no_channel_is_found_from_other_nodes() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    ada.send("MONITOR + bo").await;
    ada.expect(" 731 ada :bo").await;
    // bo, on another node, joins no channel at all.
    let mut bo = support::IrcClient::join(cluster.nodes[1].irc_addr(), "bo", "").await;
    assert!(ada.expect(" 730 ada :bo!").await.contains("bo!~bo@"), "ada's watch sees bo come on another node");
    let whois = ada.answers("WHOIS bo").await;
    assert!(whois.iter().any(|l| l.contains(" 311 ada bo ")), "WHOIS finds bo: {whois:#?}");
    ada.send("PRIVMSG bo :hello over there").await;
    let line = bo.expect("PRIVMSG bo").await;
    assert!(line.starts_with(":ada!") && line.ends_with(":hello over there"), "{line}");
    bo.send("QUIT :bye").await;
    ada.expect(" 731 ada :bo").await;
    cluster.stop().await;
}

/// Asks `channel`'s NAMES (up to 10 s) until its list has every one of `want` (nicks
/// with their `@` or `+`, each a whole word) and none of `not`.
async fn names_until(client: &mut support::IrcClient, me: &str, channel: &str, want: &[&str], not: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = format!(" 353 {me} ");
    loop {
        let answers = client.answers(&format!("NAMES {channel}")).await;
        let names: Vec<String> = answers
            .iter()
            .filter(|l| l.contains(&listed))
            .filter_map(|l| l.rsplit_once(" :").map(|(_, names)| names.to_owned()))
            .flat_map(|names| names.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        let has = |nick: &&str| names.iter().any(|n| n == nick);
        if want.iter().all(has) && !not.iter().any(has) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{me} sees {channel} as {names:?}, not {want:?} without {not:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_and_voiced_members_are_marked_on_every_node() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    ada.send("JOIN #dev").await;
    ada.expect(" 366 ada #dev ").await;
    let mut bo = support::IrcClient::join(cluster.nodes[0].irc_addr(), "bo", "").await;
    bo.send("JOIN #dev").await;
    bo.expect(" 366 bo #dev ").await;
    ada.expect(":bo!~bo@parley.local JOIN #dev").await;
    ada.send("MODE #dev +v bo").await;
    ada.expect(" MODE #dev +v bo").await;
    // cy, on another node, sees ada (the channel's creator) as its operator and bo voiced.
    let mut cy = support::IrcClient::join(cluster.nodes[1].irc_addr(), "cy", "").await;
    hears_of(&mut cy, "cy", "bo", "#dev").await;
    cy.send("JOIN #dev").await;
    cy.expect(" 366 cy #dev ").await;
    // (Not cy's JOIN of #lobby, which comes first: ada's node must know cy is in #dev.)
    ada.expect(":cy!~cy@parley.local JOIN #dev").await;
    names_until(&mut cy, "cy", "#dev", &["@ada", "+bo", "cy"], &[]).await;
    // Marks given to a member on another node show where the operator is too.
    ada.send("MODE #dev +v cy").await;
    ada.expect(" MODE #dev +v cy").await;
    assert!(cy.expect(" MODE #dev ").await.contains("+v cy"), "cy's node gives cy the voice");
    names_until(&mut ada, "ada", "#dev", &["@ada", "+bo", "+cy"], &[]).await;
    ada.send("MODE #dev -v bo").await;
    names_until(&mut cy, "cy", "#dev", &["@ada", "bo", "+cy"], &["+bo"]).await;
    ada.send("MODE #dev +o cy").await;
    names_until(&mut ada, "ada", "#dev", &["@ada", "@cy"], &["+cy"]).await;
    ada.send("MODE #dev -o cy").await;
    names_until(&mut ada, "ada", "#dev", &["+cy"], &["@cy"]).await;
    // Leaving takes the marks: cy comes back unmarked.
    cy.send("PART #dev").await;
    cy.expect(" PART #dev").await;
    cy.send("JOIN #dev").await;
    cy.expect(" 366 cy #dev ").await;
    names_until(&mut ada, "ada", "#dev", &["cy"], &["+cy", "@cy"]).await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_invites_a_user_on_another_node_into_an_invite_only_channel() {
    let Some(cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    ada.send("JOIN #vip").await;
    ada.expect(" 366 ada #vip ").await;
    ada.send("MODE #vip +i").await;
    ada.expect(" MODE #vip +i").await;
    let mut bo = support::IrcClient::join(cluster.nodes[1].irc_addr(), "bo", "").await;
    hears_of(&mut bo, "bo", "ada", "#vip").await;
    // bo's node applies +i when its follower reads it: bo is kept out from then on.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answers = bo.answers("JOIN #vip").await;
        if answers.iter().any(|l| l.contains(" 473 bo #vip ")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "+i never held on bo's node: {answers:#?}");
        bo.answers("PART #vip").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ada's node hears of bo (in no channel) in a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ada.answers("WHOIS bo").await.iter().any(|l| l.contains(" 311 ada bo ")) {
        assert!(std::time::Instant::now() < deadline, "ada's node never heard of bo");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nobody = ada.answers("INVITE nobody #vip").await;
    assert!(nobody.iter().any(|l| l.contains(" 401 ada nobody ")), "no such nick: {nobody:#?}");
    let invited = ada.answers("INVITE bo #vip").await;
    assert!(invited.iter().any(|l| l.contains(" 341 ada bo #vip")), "ada is told bo is invited: {invited:#?}");
    let invite = bo.expect(" INVITE bo ").await;
    assert!(invite.starts_with(":ada!") && invite.ends_with("#vip"), "bo is told on his node: {invite}");
    bo.send("JOIN #vip").await;
    bo.expect(" 366 bo #vip ").await;
    assert!(ada.expect(" JOIN ").await.starts_with(":bo!"), "bo is in");
    // Only an operator invites into an invite-only channel, from any node.
    let _cy = support::IrcClient::join(cluster.nodes[0].irc_addr(), "cy", "").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let refused = bo.answers("INVITE cy #vip").await;
        if refused.iter().any(|l| l.contains(" 482 bo #vip ")) {
            break;
        }
        // Until bo's node hears of cy, cy is no such nick there.
        assert!(refused.iter().any(|l| l.contains(" 401 bo cy ")), "bo is no operator: {refused:#?}");
        assert!(std::time::Instant::now() < deadline, "bo's node never heard of cy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_again_knows_a_channels_topic_and_settings() {
    let Some(mut cluster) = Nodes::start().await else { return };
    let mut ada = support::IrcClient::join(cluster.nodes[0].irc_addr(), "ada", "").await;
    ada.send("JOIN #dev").await;
    ada.expect(" 366 ada #dev ").await;
    let mut bo = support::IrcClient::join(cluster.nodes[1].irc_addr(), "bo", "").await;
    hears_of(&mut bo, "bo", "ada", "#dev").await;
    bo.send("JOIN #dev").await;
    bo.expect(" 366 bo #dev ").await;
    ada.send("TOPIC #dev :the plan").await;
    bo.expect(" TOPIC #dev ").await;
    ada.send("MODE #dev +m").await;
    bo.expect(" MODE #dev +m").await;
    // Node 2 reads those changes as they pass, and then a message after them: once it
    // has recorded that its store has that message, it starts again from there, and
    // reads them no more.
    let link = parley_cluster::connect(&cluster.nats.urls_from(2), "test").await.expect("NATS");
    let positions = parley_cluster::Positions::open(&link, 3).await.expect("the positions");
    let before = positions.load("node-2").await.expect("a position");
    ada.send("PRIVMSG #dev :after the changes").await;
    bo.expect("PRIVMSG #dev").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while positions.load("node-2").await.expect("a position") <= before {
        assert!(std::time::Instant::now() < deadline, "node 2 never recorded its position");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = cluster.nodes.remove(2);
    stopped.shutdown().await;
    let node = cluster.start_node(2).await;
    cluster.nodes.push(node);
    // The others tell the started node who is where, and the channel's topic and modes.
    let mut cy = support::IrcClient::join(cluster.nodes[2].irc_addr(), "cy", "").await;
    hears_of(&mut cy, "cy", "ada", "#dev").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let topic = cy.answers("TOPIC #dev").await;
        if topic.iter().any(|l| l.contains(" 332 cy #dev :the plan")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "node 2 never knew the topic: {topic:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let joined = cy.answers("JOIN #dev").await;
    assert!(joined.iter().any(|l| l.contains(" 332 cy #dev :the plan")), "the topic on joining: {joined:#?}");
    let modes = cy.answers("MODE #dev").await;
    let modes = modes.iter().find(|l| l.contains(" 324 cy #dev ")).expect("the channel's modes");
    assert!(modes.split(' ').nth(4).is_some_and(|m| m.contains('m')), "+m on node 2: {modes}");
    let refused = cy.answers("PRIVMSG #dev :may I?").await;
    assert!(refused.iter().any(|l| l.contains(" 404 cy #dev ")), "moderated on node 2: {refused:#?}");
    // Those who knew were told nothing again: the next thing bo sees is cy's arrival.
    let seen = bo.collect_until(" JOIN ").await;
    assert!(seen.last().is_some_and(|l| l.starts_with(":cy!")), "{seen:#?}");
    assert!(!seen.iter().any(|l| l.contains(" MODE ") || l.contains(" TOPIC ")), "nothing again: {seen:#?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_node_signs_out_its_holder_on_another() {
    use parley_client::{Client, Event, Transport};
    use support::remembered::{client, PASSWORD};
    let Some(cluster) = Nodes::start().await else { return };
    // Hana's token is in use on node 1.
    let addr = cluster.nodes[1].native.to_string();
    let (held, mut held_events, _) = Client::connect(&addr, &Transport::Plain).await.expect("connects");
    held.hello("hana").await.expect("welcomed");
    held.register(PASSWORD).await.expect("registers");
    held.login_remembered(None, PASSWORD).await.expect("logs in, remembered");
    // It goes by another nick (an account's nick is held by one node at a time), and
    // hana, on node 0, logs in and revokes the token.
    held.nick("thief").await.expect("renames");
    let owner = client(cluster.nodes[0].native).await;
    owner.hello("laptop").await.expect("welcomed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Until node 1's release of the nick's claim is through.
    while let Err(e) = owner.login(Some("hana"), PASSWORD).await {
        assert!(std::time::Instant::now() < deadline, "logs in within 10 s: {e:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = owner.sessions().await.expect("lists");
    assert_eq!(listed.len(), 1, "the token node 1's connection holds: {listed:?}");
    owner.revoke_session(listed[0].id).await.expect("revokes");
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match held_events.next().await.expect("told before closing") {
                Event::Error { code, .. } => return code,
                _ => continue,
            }
        }
    })
    .await
    .expect("node 1's connection is told within 10 s");
    assert_eq!(told, ErrorCode::SignedOut);
    // The one that revoked it goes on.
    assert_eq!(owner.sessions().await.expect("still connected").len(), 0);
    cluster.stop().await;
}
