//! A few seconds of `parley bench` against a real server, over every protocol it has a
//! listener for: a fan-out loses nothing and keeps order, and churning connections all
//! register, chat and leave without an error, over the native, line and IRC gateways.

use std::net::SocketAddr;

use parley_bench::{churn, fanout, fanout_series, ChurnArgs, FanoutArgs, Proto, Target};
use parley_server::{Config, Listener, ListenerKind, Server};

/// The protocols checked, with the listener that serves each.
const PROTOCOLS: &[(Proto, ListenerKind)] =
    &[(Proto::Native, ListenerKind::Native), (Proto::Line, ListenerKind::Line), (Proto::Irc, ListenerKind::Irc)];

fn target(proto: Proto, addr: SocketAddr) -> Target {
    Target {
        addr: vec![addr.to_string()],
        proto,
        native_version: parley_proto::msg::PROTOCOL_VERSION,
        channel: "#lobby".into(),
        connect_concurrency: 50,
        register_timeout_secs: 10,
        source_addrs: 1,
    }
}

fn small_fanout(proto: Proto, addr: SocketAddr) -> FanoutArgs {
    FanoutArgs {
        target: target(proto, addr),
        clients: 8,
        senders: 3,
        messages: 200,
        window: 10,
        rate: None,
        size: 16,
        server_pid: vec![std::process::id()],
        settle_ms: 100,
        timeout_secs: 30,
        repeat: 1,
    }
}

/// A small fan-out: every delivery arrives, in order.
async fn fanout_loses_nothing(proto: Proto, addr: SocketAddr) {
    let report = fanout(small_fanout(proto, addr)).await.expect("runs");
    assert!(report.complete, "{report}");
    assert_eq!((report.lost, report.out_of_order), (0, 0), "{report}");
    assert_eq!(report.deliveries_received, 200 * 3 * 7);
    assert!(report.latency_ms.max >= report.latency_ms.p50);
    assert_eq!(report.disconnected, 0, "{report}");
}

/// Repeated runs, each with clients of its own that leave before the next connect.
async fn repeated_fanouts_are_summed_up(proto: Proto, addr: SocketAddr) {
    let args = FanoutArgs { repeat: 3, messages: 50, ..small_fanout(proto, addr) };
    let mut seen = Vec::new();
    let series = fanout_series(args, |report| seen.push((report.run, report.clean()))).await.expect("runs");
    assert_eq!(seen, [(1, true), (2, true), (3, true)]);
    assert_eq!((series.runs, series.clean_runs, series.lost, series.out_of_order), (3, 3, 0, 0), "{series}");
    assert_eq!(series.deliveries_received, 3 * 50 * 3 * 7);
}

/// A second of arrivals: each connection registers, chats and quits without an error.
async fn churn_completes(proto: Proto, addr: SocketAddr) {
    let report = churn(ChurnArgs {
        target: target(proto, addr),
        rate: 40.0,
        duration_secs: 1,
        messages: 2,
        max_in_flight: 100,
        server_pid: Some(std::process::id()),
    })
    .await
    .expect("runs");
    assert_eq!((report.completed, report.errors, report.skipped), (40, 0, 0), "{report}");
    assert!(report.registration_ms.p99 >= report.registration_ms.p50, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_and_churn_lose_nothing_over_every_protocol() {
    let data = std::env::temp_dir().join(format!("parley-bench-smoke-{}", std::process::id()));
    let listen = |kind| Listener { kind, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false };
    let mut config = Config {
        data_dir: data.clone(),
        // A second native listener, for clients spread over two addresses.
        listeners: PROTOCOLS.iter().map(|(_, kind)| listen(*kind)).chain([listen(ListenerKind::Native)]).collect(),
        ..Config::default()
    };
    config.limits.flood_rate_per_sec = 0;
    config.limits.max_connections_per_ip = 1000;
    let server = Server::bind(config).await.expect("binds");
    let bound = server.local_addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    for (proto, kind) in PROTOCOLS {
        let addr = bound.iter().find(|b| b.kind == *kind).expect("bound").addr;
        fanout_loses_nothing(*proto, addr).await;
        repeated_fanouts_are_summed_up(*proto, addr).await;
        churn_completes(*proto, addr).await;
    }
    // Version 1's JSON headers, still spoken.
    let native = bound.iter().find(|b| b.kind == ListenerKind::Native).expect("bound").addr;
    let mut json = small_fanout(Proto::Native, native);
    json.target.native_version = 1;
    let report = fanout(json).await.expect("runs");
    assert!(report.complete && report.clean(), "{report}");
    // Clients spread over two addresses, as over a cluster's nodes.
    let mut spread = small_fanout(Proto::Native, native);
    spread.target.addr = bound.iter().filter(|b| b.kind == ListenerKind::Native).map(|b| b.addr.to_string()).collect();
    assert_eq!(spread.target.addr.len(), 2);
    spread.server_pid = vec![std::process::id(), std::process::id()];
    let report = fanout(spread).await.expect("runs");
    assert!(report.complete && report.clean(), "{report}");
    assert_eq!(report.process_cpu_secs.len(), 2, "each process's CPU: {report}");
    let _ = stop.send(());
    running.await.expect("joins").expect("runs");
    let _ = std::fs::remove_dir_all(data);
}
