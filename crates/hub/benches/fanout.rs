//! The hub's fan-out without sockets: one sender, a room of 100 sessions, every message
//! encoded once and copied into 99 outboxes. The ceiling the gateways and sockets work
//! under.
//!
//! `cargo bench -p parley-hub --bench fanout`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use parley_hub::{Batch, Command, Event, Kind, Limits, Outbox, RequestId, Session, Wire};

const MEMBERS: usize = 100;

/// A line-protocol-like encoding, cached once per event for the whole room.
struct Lines;

impl Wire for Lines {
    fn cache_slot(&self) -> Option<usize> {
        Some(0)
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        if let Event::Message { from, seq, text, .. } = event {
            out.extend_from_slice(format!("[14:30:45] {from}: {text} ({seq})\n").as_bytes());
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (sender, outboxes) = runtime.block_on(async {
        let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("hub");
        let mut outboxes = Vec::new();
        let mut sessions: Vec<Session> = Vec::new();
        for n in 0..MEMBERS {
            let outbox = Arc::new(Outbox::new(Lines, 1 << 30));
            sessions.push(hub.connect(&format!("member{n}"), None, RequestId(0), outbox.clone()).await.expect("joins"));
            outboxes.push(outbox);
        }
        (sessions, outboxes)
    });
    let mut group = c.benchmark_group("hub");
    group.sample_size(20);
    group.throughput(Throughput::Elements((MEMBERS - 1) as u64));
    group.bench_function("fan-out of one message to 99 members (per delivery)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut scratch = BytesMut::new();
                // Drain what earlier iterations left (join notices, replies).
                for outbox in &outboxes {
                    while tokio::time::timeout(Duration::from_millis(1), outbox.take(&mut scratch)).await.is_ok() {
                        scratch.clear();
                    }
                }
                let start = Instant::now();
                for _ in 0..iters {
                    let say = Command::Say {
                        room: None,
                        kind: Kind::Text,
                        text: "hello everyone, the deploy is done".into(),
                        meta: Default::default(),
                    };
                    sender[0].send(RequestId(1), say).await.expect("sent");
                }
                // The last member's outbox holds every message once the hub is done.
                let last = &outboxes[MEMBERS - 1];
                let mut lines = 0;
                while lines < iters {
                    assert_eq!(last.take(&mut scratch).await, Batch::Bytes);
                    lines += scratch.iter().filter(|b| **b == b'\n').count() as u64;
                    scratch.clear();
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
