//! The room log on a real 3-server NATS cluster: dense seqs from concurrent publishers,
//! one order for every follower, hostile room names, what a record carries.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_cluster::testing::TestCluster;
use parley_cluster::{room_token, token_key};
use parley_hub::{ClientTags, Kind, Meta, Nick, Party, Record, Userhost};
use support::{link, log, read_until, room, said, seqs_and_texts};

const PER_PUBLISHER: usize = 100;

/// Three nodes, each on its own NATS server, publish into one room at once; three
/// followers, one per server, must read one identical sequence: seqs 1..=300 in order,
/// each message once, each publisher's messages in the order it submitted them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_publishers_one_room_one_order_everywhere() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let mut logs = Vec::new();
    for i in 0..3 {
        let link = link(&cluster, i, &format!("node{i}")).await;
        logs.push(log(&link, &format!("node{i}")).await);
    }
    let mut followers = Vec::new();
    for log in &logs {
        followers.push(log.follow(0).await.expect("follows"));
    }
    let lobby = room("lobby");
    let started = Instant::now();
    // Every message is submitted before any is awaited: the three nodes race for every
    // seq, and each node's queue must keep its submission order.
    let mut outcomes = Vec::new();
    for k in 0..PER_PUBLISHER {
        for (i, log) in logs.iter().enumerate() {
            outcomes.push((i, k, log.submit(said(&lobby, &format!("node{i}"), &format!("{i}:{k}")))));
        }
    }
    let mut acked = vec![Vec::new(); 3];
    for (i, k, outcome) in outcomes {
        let appended = outcome.await.expect("an outcome").unwrap_or_else(|e| panic!("{i}:{k} failed: {e}"));
        acked[i].push((k, appended.seq));
    }
    let elapsed = started.elapsed();
    let total = 3 * PER_PUBLISHER;
    eprintln!(
        "{total} messages from 3 nodes into one room (3 replicas): {elapsed:?}, {:.0} messages/s",
        total as f64 / elapsed.as_secs_f64()
    );
    let mut seqs: Vec<u64> = acked.iter().flatten().map(|(_, seq)| *seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>(), "the acknowledged seqs are 1..=N, each once");
    for (i, mine) in acked.iter().enumerate() {
        assert!(mine.windows(2).all(|w| w[0].1 < w[1].1), "node {i}'s messages got seqs in submission order");
    }
    let mut orders = Vec::new();
    for follower in &mut followers {
        let read = read_until(follower, Duration::from_secs(20), |read| read.len() == total).await;
        orders.push(seqs_and_texts(&read, &lobby));
    }
    let first = &orders[0];
    assert_eq!(first.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (1..=total as u64).collect::<Vec<_>>());
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(order, first, "follower {i} reads the same order as follower 0");
    }
    for i in 0..3 {
        let mine: Vec<usize> =
            first.iter().filter_map(|(_, text)| text.strip_prefix(&format!("{i}:"))?.parse().ok()).collect();
        assert_eq!(mine, (0..PER_PUBLISHER).collect::<Vec<_>>(), "node {i}'s messages in its order");
    }
    for (i, mine) in acked.iter().enumerate() {
        for (k, seq) in mine {
            assert_eq!(first[(*seq - 1) as usize].1, format!("{i}:{k}"), "the acknowledged seq is the stored one");
        }
    }
}

/// One node publishing alone, one message at a time: the round trip of a replicated
/// publish, for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_latency_alone() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let link = link(&cluster, 0, "solo").await;
    let log = log(&link, "solo").await;
    let quiet = room("quiet");
    let mut latencies = Vec::new();
    for k in 1..=200u64 {
        let started = Instant::now();
        let appended = log.append(said(&quiet, "solo", "hello")).await.expect("appends");
        latencies.push(started.elapsed());
        assert_eq!(appended.seq, k);
    }
    latencies.sort_unstable();
    eprintln!(
        "one publisher, 3 replicas, loopback: median {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    assert_eq!(log.last_seq_of(Some(&quiet)).await.expect("reads"), 200);
}

/// One node publishing into many rooms at once: rooms do not wait for each other, and
/// each room's seqs are its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_in_parallel() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let link = link(&cluster, 2, "busy").await;
    let log = log(&link, "busy").await;
    let rooms: Vec<_> = (0..200).map(|n| room(&format!("room{n}"))).collect();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for k in 0..10u64 {
        for (n, room) in rooms.iter().enumerate() {
            outcomes.push((n, k, log.submit(said(room, "busy", "hi"))));
        }
    }
    for (n, k, outcome) in outcomes {
        let appended = outcome.await.expect("an outcome").expect("appends");
        assert_eq!(appended.seq, k + 1, "room{n}'s message {k}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "2,000 messages into 200 rooms from one node (3 replicas): {elapsed:?}, {:.0} messages/s",
        2000.0 / elapsed.as_secs_f64()
    );
}

/// A room key becomes one subject token whatever it holds, and back.
#[test]
fn hostile_keys_are_one_token() {
    let hostile = ["a.b", "a..b", "*", ">", "a b", " ", "\t", "日本語", "ünïcødé", "a.*.>", "$JS.API", "", "🦀.🦀"];
    let mut tokens = HashSet::new();
    for key in hostile {
        let token = room_token(key);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{key:?} gave {token:?}");
        assert_eq!(token_key(&token).as_deref(), Some(key), "{key:?} comes back");
        assert!(tokens.insert(token), "{key:?} has a token of its own");
    }
    for bad in ["f", "zz", "+f", "-1", "ff.", "FF"] {
        assert_eq!(token_key(bad), None, "{bad:?} is not a token");
    }
}

/// Rooms whose names are hostile to subjects (dots, other scripts) each get their own
/// seqs from 1, and a record comes back from the log as it went in, private messages
/// and client tags included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_room_names_and_records_round_trip() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let link = link(&cluster, 1, "node").await;
    let log = log(&link, "node").await;
    let mut follower = log.follow(0).await.expect("follows");
    let names = ["a.b", "a", "b", "a..b", "日本語", "ünïcødé", "Ünïcødé", "x.y.z"];
    let mut sent: Vec<Record> = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let room = room(name);
        for _ in 0..2 {
            let mut record = said(&room, "ålice", &format!("in {name} 🦀 \u{202e}"));
            record.sender = Some(Party::Guest(parley_hub::GuestId(7)));
            record.kind = if n % 2 == 0 { Kind::Action } else { Kind::Notice };
            record.meta = Meta {
                reply_to: Some(1),
                tags: ClientTags::new(vec![("+draft/react".trim_start_matches('+').into(), "👍".into())])
                    .expect("tags"),
            }
            .shared();
            record.userhost = Some(Userhost::new("~al", "host.example"));
            let appended = log.append(record.clone()).await.expect("appends");
            record.seq = appended.seq;
            sent.push(record);
        }
    }
    // "Ünïcødé" is the same room as "ünïcødé" (one key): its messages continue its seqs.
    let seqs: Vec<u64> = sent.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 3, 4, 1, 2]);
    let mut private = said(&room("unused"), "bob", "psst");
    private.room = None;
    private.to = Some(Nick::parse("carol", 50).expect("nick"));
    private.sender = Some(Party::Account(parley_hub::AccountId(3)));
    private.recipient = Some(Party::Account(parley_hub::AccountId(4)));
    let appended = log.append(private.clone()).await.expect("appends");
    assert_eq!(appended.seq, 1, "private messages have their own order");
    private.seq = 1;
    sent.push(private);
    let read = read_until(&mut follower, Duration::from_secs(10), |read| read.len() == sent.len()).await;
    for (got, want) in read.iter().zip(&sent) {
        let mut want = want.clone();
        // Kept to the microsecond, as the stores keep it.
        want.at = chrono::DateTime::from_timestamp_micros(want.at.timestamp_micros()).expect("a time");
        assert_eq!(got.record, want);
        assert_eq!(got.record.room.as_ref().map(|r| r.as_str()), want.room.as_ref().map(|r| r.as_str()));
    }
    assert!(read.windows(2).all(|w| w[0].position < w[1].position), "positions increase");
    // A follower started after a position reads only what follows it.
    let mut later = log.follow(read[3].position).await.expect("follows");
    let rest = read_until(&mut later, Duration::from_secs(10), |r| r.len() == sent.len() - 4).await;
    assert_eq!(rest[0].position, read[4].position);
    let _ = Arc::clone(&log);
}
