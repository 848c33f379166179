//! A few-second fan-out over both protocols against a real server: nothing lost,
//! nothing out of order.

use parley_bench::{fanout, FanoutArgs, Proto};
use parley_server::{Config, Listener, ListenerKind, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fanout_loses_nothing_over_either_protocol() {
    let data = std::env::temp_dir().join(format!("parley-bench-smoke-{}", std::process::id()));
    let listen = |kind| Listener { kind, tls: false, addr: "127.0.0.1:0".into() };
    let mut config = Config {
        data_dir: data.clone(),
        listeners: vec![listen(ListenerKind::Line), listen(ListenerKind::Native)],
        ..Config::default()
    };
    config.limits.flood_rate_per_sec = 0;
    let server = Server::bind(config).await.expect("binds");
    let bound = server.local_addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    for (proto, kind) in [(Proto::Native, ListenerKind::Native), (Proto::Line, ListenerKind::Line)] {
        let addr = bound.iter().find(|b| b.kind == kind).expect("bound").addr;
        let report = fanout(FanoutArgs {
            addr: addr.to_string(),
            proto,
            clients: 8,
            senders: 3,
            messages: 200,
            window: 10,
            rate: None,
            size: 16,
            server_pid: Some(std::process::id()),
            timeout_secs: 30,
        })
        .await
        .expect("runs");
        assert!(report.complete, "{report}");
        assert_eq!((report.lost, report.out_of_order), (0, 0), "{report}");
        assert_eq!(report.deliveries_received, 200 * 3 * 7);
        assert!(report.latency_ms.max >= report.latency_ms.p50);
    }
    let _ = stop.send(());
    running.await.expect("joins").expect("runs");
    let _ = std::fs::remove_dir_all(data);
}
