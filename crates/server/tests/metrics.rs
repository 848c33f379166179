//! `/metrics` over real sockets: what each gateway counts, the hub's counts and
//! histograms, a bounded number of series whatever the number of users and rooms, and
//! the Grafana dashboard in `contrib/` asking only for what is exported.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use parley_hub::{Command, Event, Outbox, RequestId, Wire};
use parley_proto::msg::{Request, PROTOCOL_VERSION};
use parley_server::{Config, Listener, ListenerKind};
use support::{IrcClient, LineClient, NativeClient, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(adjust: impl FnOnce(&mut Config)) -> (TestServer, SocketAddr) {
    let server = support::start_with(|config| {
        config.listeners.push(Listener::new(ListenerKind::Metrics, false, "127.0.0.1:0"));
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        adjust(config);
    })
    .await;
    let metrics = server.bound.iter().find(|b| b.kind == ListenerKind::Metrics).expect("a metrics listener").addr;
    (server, metrics)
}

/// The head and body of one GET.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut raw = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut raw)).await.expect("in time").expect("reads");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole answer");
    (head.to_owned(), body.to_owned())
}

/// A scrape: each sample's name with its labels, and its value.
struct Scrape(Vec<(String, f64)>);

impl Scrape {
    async fn of(addr: SocketAddr) -> Scrape {
        let (head, body) = get(addr, "/metrics").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a value");
                (series.to_owned(), value.parse().expect("a number"))
            })
            .collect();
        Scrape(samples)
    }

    fn value(&self, series: &str) -> f64 {
        self.0.iter().find(|(s, _)| s == series).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {series} in the scrape"))
    }

    /// Every metric name sampled.
    fn names(&self) -> BTreeSet<String> {
        self.0.iter().map(|(s, _)| s.split('{').next().unwrap_or(s).to_owned()).collect()
    }
}

#[tokio::test]
async fn each_gateway_and_the_hub_are_counted() {
    let (server, metrics) = start(|config| {
        config.limits.flood_burst = 2;
        config.limits.flood_rate_per_sec = 1;
        config.limits.flood_grace_secs = 0;
    })
    .await;
    let mut owner = NativeClient::join(server.native, "owner").await;
    owner.request(&Request::Register { password: "correct horse battery".into() }, b"").await.expect("registered");
    let mut line = LineClient::join(server.line, "liner").await;
    line.send("hello from the line").await;
    owner.expect(|r| (r.text() == "hello from the line").then_some(())).await;

    // A wrong password, then a flood.
    let mut wrong = NativeClient::connect(server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "owner".into(), password: Some("wrong".into()) };
    assert!(wrong.request(&hello, b"").await.is_err(), "a wrong password is refused");
    let mut flooder = IrcClient::join(server.irc.expect("an IRC listener"), "flooder", "").await;
    for n in 0..10 {
        flooder.send(&format!("PRIVMSG #lobby :{n}")).await;
    }
    flooder.expect_closed().await;

    let scrape = Scrape::of(metrics).await;
    assert_eq!(scrape.value(r#"parley_connections{gateway="line"}"#), 1.0);
    assert_eq!(scrape.value(r#"parley_connections{gateway="metrics"}"#), 1.0, "the scrape itself");
    assert!(scrape.value(r#"parley_connections_accepted_total{gateway="native"}"#) >= 2.0);
    assert_eq!(scrape.value(r#"parley_gateway_sessions{gateway="line"}"#), 1.0);
    assert!(scrape.value(r#"parley_messages_in_total{gateway="line"}"#) >= 1.0, "the line said");
    assert!(scrape.value(r#"parley_bytes_out_total{gateway="native"}"#) > 0.0);
    assert!(scrape.value("parley_messages_accepted_total") >= 1.0);
    assert!(scrape.value("parley_deliveries_total") >= 1.0);
    assert_eq!(scrape.value("parley_auth_failures_total"), 1.0);
    assert_eq!(scrape.value("parley_flood_disconnects_total"), 1.0);
    assert!(scrape.value("parley_fanout_seconds_count") >= 1.0);
    assert!(scrape.value(r#"parley_fanout_seconds_bucket{le="+Inf"}"#) >= 1.0);
    assert!(scrape.value("parley_store_commit_messages_count") >= 1.0);
    assert!(scrape.value("parley_store_commit_seconds_count") >= 1.0);
    assert_eq!(scrape.value("parley_sessions"), 2.0, "owner and liner");

    // Metrics are never served on the public listeners, and the metrics listener serves
    // nothing else.
    let web = server.bound.iter().find(|b| b.kind == ListenerKind::Web).expect("a web listener").addr;
    assert!(get(web, "/metrics").await.0.starts_with("HTTP/1.1 404"));
    assert!(get(metrics, "/healthz").await.0.starts_with("HTTP/1.1 404"));
    server.shutdown().await;
}

/// A session's wire that keeps nothing.
struct Quiet;

impl Wire for Quiet {
    fn cache_slot(&self) -> Option<usize> {
        Some(0)
    }

    fn encode(&self, _: &Event, out: &mut BytesMut) {
        out.extend_from_slice(b".");
    }
}

#[tokio::test]
async fn series_stay_few_with_ten_thousand_users_and_rooms() {
    // Without a store, so that the hub's work is all in memory; what is counted is the
    // same.
    let (server, metrics) = start(|config| config.history.store = false).await;
    let mut sessions = Vec::with_capacity(10_000);
    for n in 0..10_000u64 {
        let outbox = Arc::new(Outbox::new(Quiet, 1 << 20));
        let session = server.hub.connect(&format!("u{n}"), None, RequestId(1), outbox).await.expect("connects");
        // Exclusive: out of the lobby, so that it does not list thousands to each
        // newcomer (what is measured here is the metrics, not the lobby).
        let join = Command::Join { room: format!("room{n}"), exclusive: true, key: None };
        session.send(RequestId(2), join).await.expect("sent");
        sessions.push(session);
    }
    // Answered in turn: every join before it has been handled.
    server.hub.health().await.expect("the hub answers");
    let scrape = Scrape::of(metrics).await;
    assert_eq!(scrape.value("parley_sessions"), 10_000.0);
    let series = scrape.0.len();
    eprintln!("{series} series with 10,000 users in 10,000 rooms");
    assert!(series < 500, "{series} series");
    drop(sessions);
    server.shutdown().await;
}

/// Every metric name a PromQL expression uses.
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("parley_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn exprs(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(expr) if key == "expr" => found.push(expr.clone()),
                    other => exprs(other, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| exprs(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_asks_only_for_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib/grafana/parley.json");
    let text = std::fs::read_to_string(path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 8, "a panel per thing worth watching, {} queries", found.len());
    let (server, metrics) = start(|_| {}).await;
    let exported = Scrape::of(metrics).await.names();
    let mut used = BTreeSet::new();
    for expr in &found {
        let names = names_in(expr);
        assert!(!names.is_empty(), "a query of no Parley metric: {expr}");
        for name in names {
            assert!(exported.contains(&name), "{name} (in {expr}) is not exported; exported: {exported:?}");
            used.insert(name);
        }
    }
    for wanted in ["parley_fanout_seconds_bucket", "parley_deliveries_total", "parley_connections"] {
        assert!(used.contains(wanted), "the dashboard shows {wanted}");
    }
    server.shutdown().await;
}
