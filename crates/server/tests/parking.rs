//! Parked connections (`gateway::parking`), over real sockets: a quiet plain connection
//! gives up its task, and its input, its events, its idle ping and the server's
//! shutdown each bring it back, with nothing lost or reordered across many parkings.
//! (The test support parks connections after 25 ms, so every other test parks too:
//! backpressure.rs's slow consumer, for one, overflows a parked connection's queue.)

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use parley_server::{Config, Listener, ListenerKind};
use support::{IrcClient, LineClient, TestServer, WAIT};

async fn start(adjust: impl FnOnce(&mut Config)) -> (TestServer, SocketAddr) {
    let server = support::start_with(|config| {
        config.listeners.push(Listener::new(ListenerKind::Metrics, false, "127.0.0.1:0"));
        adjust(config);
    })
    .await;
    let metrics = server.bound.iter().find(|b| b.kind == ListenerKind::Metrics).expect("a metrics listener").addr;
    (server, metrics)
}

/// `parley_connections_parked` now.
async fn parked(metrics: SocketAddr) -> u64 {
    let answer = support::http(metrics, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    let body = String::from_utf8(answer.body).expect("text");
    body.lines()
        .find_map(|l| l.strip_prefix("parley_connections_parked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no parley_connections_parked in {body}"))
}

/// Waits until `parley_connections_parked` is `want`.
async fn until_parked(metrics: SocketAddr, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = parked(metrics).await;
        if now == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now} connections parked, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_parked_connection_wakes_for_its_input_and_its_events() {
    let (server, metrics) = start(|_| {}).await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    ada.expect(":bob!").await;
    until_parked(metrics, 2).await;
    // An event for a parked connection: bob's message wakes ada's.
    bob.send("PRIVMSG #lobby :are you there?").await;
    ada.expect("PRIVMSG #lobby :are you there?").await;
    until_parked(metrics, 2).await;
    // Input to a parked connection: it is read and answered.
    ada.send("PING :still-here").await;
    ada.expect("PONG parley.local :still-here").await;
    until_parked(metrics, 2).await;
    // A line client parks the same way.
    let mut cleo = LineClient::join(server.line, "cleo").await;
    ada.expect(":cleo!").await;
    until_parked(metrics, 3).await;
    cleo.send("hello from the line").await;
    bob.expect("PRIVMSG #lobby :hello from the line").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_is_pinged_and_dropped_when_silent() {
    let (server, metrics) = start(|config| {
        config.limits.idle_ping_secs = 1;
        config.limits.idle_timeout_secs = 2;
    })
    .await;
    let mut quiet = IrcClient::join(server.irc_addr(), "quiet", "").await;
    until_parked(metrics, 1).await;
    // The alarm wakes it for its ping; it answers once, then not again.
    quiet.expect("PING :parley.local").await;
    quiet.send("PONG :parley.local").await;
    until_parked(metrics, 1).await;
    quiet.expect("PING :parley.local").await;
    let closing = quiet.expect_closed().await;
    assert!(closing.iter().any(|l| l.contains("Ping timeout")), "{closing:?}");
    until_parked(metrics, 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn parked_connections_hear_the_shutdown() {
    let (server, metrics) = start(|_| {}).await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut cleo = LineClient::join(server.line, "cleo").await;
    ada.expect(":cleo!").await;
    until_parked(metrics, 2).await;
    server.shutdown().await;
    let closing = ada.expect_closed().await;
    assert!(closing.iter().any(|l| l.contains("Server is shutting down")), "{closing:?}");
    let closing = cleo.expect_closed().await;
    assert!(closing.iter().any(|l| l.contains("Server is shutting down")), "{closing:?}");
}

/// Many parkings and wakings, in every order against messages: every receiver gets
/// every other sender's messages, each sender's in order.
#[tokio::test]
async fn nothing_is_lost_or_reordered_across_many_parkings() {
    const SENDERS: usize = 8;
    const MESSAGES: usize = 30;
    let (server, metrics) = start(|config| config.limits.park_after_ms = 5).await;
    let addr = server.irc_addr();
    let mut clients = Vec::new();
    for i in 0..SENDERS {
        clients.push(IrcClient::join(addr, &format!("p{i}"), "").await);
    }
    // Everyone has seen everyone join.
    let last = format!(":p{}!", SENDERS - 1);
    for client in &mut clients[..SENDERS - 1] {
        client.expect(&last).await;
    }
    let runs: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                let mut next = [0usize; SENDERS];
                next[i] = MESSAGES;
                let mut sent = 0;
                while sent < MESSAGES || next.iter().any(|&n| n < MESSAGES) {
                    if sent < MESSAGES {
                        client.send(&format!("PRIVMSG #lobby :m {i} {sent}")).await;
                        sent += 1;
                        // Pauses around the parking time, so that messages find their
                        // receivers parked, parking, and awake.
                        tokio::time::sleep(Duration::from_millis(((i * 7 + sent * 3) % 12) as u64)).await;
                        continue;
                    }
                    let line = client.expect("PRIVMSG #lobby :m ").await;
                    let words: Vec<&str> = line.rsplit(":m ").next().expect("a body").split(' ').collect();
                    let (from, n): (usize, usize) =
                        (words[0].parse().expect("a sender"), words[1].parse().expect("a number"));
                    assert_eq!(n, next[from], "p{i} got p{from}'s message {n} out of order");
                    next[from] += 1;
                }
                client
            })
        })
        .collect();
    let mut clients = Vec::new();
    for run in runs {
        clients.push(tokio::time::timeout(WAIT * 3, run).await.expect("in time").expect("no receiver failed"));
    }
    // They all park again once it is over.
    until_parked(metrics, SENDERS as u64).await;
    server.shutdown().await;
}
