//! Search over a million stored messages: how fast messages are stored with their index
//! (the rate indexing keeps up with), and how long a search takes.
//!
//! `cargo bench -p parley-store --bench search`

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use parley_hub::{AccountId, Kind, MessageStore as _, Nick, Party, Record, RoomName, Search, SearchStore as _};
use parley_store::{Retention, SqliteStore};

const MESSAGES: u64 = 1_000_000;
const ROOMS: u64 = 10;
const BATCH: usize = 1024;

/// A word list in which a few words are common and most are rare, like chat.
struct Words {
    state: u64,
}

impl Words {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A word whose rank is skewed towards 0: `w0` is in most messages, `w4999` rare.
    fn word(&mut self) -> String {
        let r = self.next() % 1_000_000;
        let rank = (r * r / 1_000_000) * 5000 / 1_000_000;
        format!("w{rank}")
    }

    fn text(&mut self) -> String {
        let n = 4 + self.next() % 12;
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

fn fill(store: &SqliteStore) {
    let rooms: Vec<RoomName> = (0..ROOMS).map(|r| RoomName::parse(&format!("room{r}"), 32).expect("room")).collect();
    let senders: Vec<Nick> = (0..50).map(|s| Nick::parse(&format!("user{s}"), 32).expect("nick")).collect();
    let mut words = Words { state: 0x9E37_79B9_7F4A_7C15 };
    let start_time = Utc::now() - Duration::days(100);
    let started = Instant::now();
    let mut seqs = vec![0u64; ROOMS as usize];
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..MESSAGES {
        let room = (n % ROOMS) as usize;
        seqs[room] += 1;
        batch.push(Arc::new(Record {
            room: Some(rooms[room].clone()),
            seq: seqs[room],
            from: senders[(n % 50) as usize].clone(),
            sender: None,
            to: None,
            recipient: None,
            at: start_time + Duration::seconds(i64::try_from(n * 8).unwrap_or(0)),
            kind: Kind::Text,
            text: words.text().into(),
            meta: None,
            userhost: None,
        }));
        if batch.len() == BATCH {
            store.append(&batch).expect("appends");
            batch.clear();
        }
    }
    store.append(&batch).expect("appends");
    let secs = started.elapsed().as_secs_f64();
    println!("stored and indexed {MESSAGES} messages in {secs:.1} s: {:.0} messages/s", MESSAGES as f64 / secs);
}

fn search(words: &[&str], rooms: u64) -> Search {
    Search {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        from: None,
        rooms: (0..rooms).map(|r| (RoomName::parse(&format!("room{r}"), 32).expect("room"), 0)).collect(),
        private_of: Some(Party::Account(AccountId(1))),
        before: None,
        after: None,
        limit: 20,
        offset: 0,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("parley-search-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = SqliteStore::open(&dir, Retention::default()).expect("opens");
    fill(&store);
    let mut group = c.benchmark_group(format!("search {MESSAGES} messages"));
    group.sample_size(20);
    let rare = search(&["w4000"], ROOMS);
    group.bench_function("a rare word, every room", |b| b.iter(|| store.search(&rare).expect("searches")));
    let two = search(&["w100", "w200"], ROOMS);
    group.bench_function("two mid words, every room", |b| b.iter(|| store.search(&two).expect("searches")));
    let common = search(&["w0"], ROOMS);
    group.bench_function("the commonest word, every room", |b| b.iter(|| store.search(&common).expect("searches")));
    let one_room = search(&["w50"], 1);
    group.bench_function("a mid word, one room of ten", |b| b.iter(|| store.search(&one_room).expect("searches")));
    let mut from = search(&["w50"], ROOMS);
    from.from = Some(Nick::parse("user7", 32).expect("nick"));
    group.bench_function("a mid word, from one sender", |b| b.iter(|| store.search(&from).expect("searches")));
    group.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
