//! What the cluster tests share: nodes on a test cluster, records, waiting.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_cluster::testing::TestCluster;
use parley_cluster::{Delivered, Follower, Link, LogConfig, RoomLog};
use parley_hub::{Kind, Nick, Record, RoomName};

/// Logs what the crate and the NATS client do to the test's output, at the level
/// `RUST_LOG` asks (e.g. `RUST_LOG=parley_cluster=debug,async_nats=debug`; nothing
/// without it), with the time of each line: a failure under load is read from it.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A node's link, connected to server `first` first.
pub async fn link(cluster: &TestCluster, first: usize, name: &str) -> Link {
    parley_cluster::connect(&cluster.urls_from(first), name).await.expect("connects")
}

/// A node's log.
pub async fn log(link: &Link, node: &str) -> Arc<RoomLog> {
    RoomLog::open(link, LogConfig::new(node)).await.expect("opens the log")
}

pub fn room(name: &str) -> RoomName {
    RoomName::parse(name, 200).expect("a room name")
}

/// A message from `from` in `room`, its text `text`.
pub fn said(room: &RoomName, from: &str, text: &str) -> Record {
    Record {
        room: Some(room.clone()),
        seq: 0,
        from: Nick::parse(from, 50).expect("a nick"),
        sender: None,
        to: None,
        recipient: None,
        at: chrono::Utc::now(),
        kind: Kind::Text,
        text: text.into(),
        meta: None,
        userhost: None,
    }
}

/// Reads from `follower` until `done` says enough, within `within`.
pub async fn read_until(
    follower: &mut Follower,
    within: Duration,
    mut done: impl FnMut(&[Delivered]) -> bool,
) -> Vec<Delivered> {
    let mut read = Vec::new();
    let deadline = Instant::now() + within;
    while !done(&read) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, follower.next()).await {
            Ok(Ok(delivered)) => read.push(delivered),
            Ok(Err(e)) => panic!("the follower failed: {e}"),
            Err(_) => panic!("only {} messages arrived within {within:?}", read.len()),
        }
    }
    read
}

/// Polls `check` until it holds, within `within`: for states nothing announces (a
/// claim aging out, a cluster coming back).
pub async fn eventually<F: Future<Output = bool>>(within: Duration, what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (seq, text) of what a follower read in `room`.
pub fn seqs_and_texts(read: &[Delivered], room: &RoomName) -> Vec<(u64, String)> {
    read.iter()
        .filter(|d| d.record.room.as_ref() == Some(room))
        .map(|d| (d.record.seq, d.record.text.to_string()))
        .collect()
}
