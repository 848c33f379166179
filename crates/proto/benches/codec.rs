//! Encode and decode throughput of the wire formats: what one message costs the server
//! before any socket is involved.
//!
//! `cargo bench -p parley-proto --bench codec`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use parley_proto::line::{Input, LineDecoder};
use parley_proto::msg::{encode_request, encode_server_msg, Request, ServerMsg};
use parley_proto::native::FrameDecoder;

const MESSAGES: usize = 1000;
const TEXT: &str = "the deploy is done, and the dashboards look fine so far";

fn lines() -> BytesMut {
    let mut wire = BytesMut::new();
    for n in 0..MESSAGES {
        wire.extend_from_slice(format!("{TEXT} {n}\n").as_bytes());
    }
    wire
}

fn say_frames() -> BytesMut {
    let mut wire = BytesMut::new();
    for n in 0..MESSAGES {
        let text = format!("{TEXT} {n}");
        encode_request(
            n as u64,
            &Request::Say { room: "lobby".into(), reply_to: None, tags: None },
            text.as_bytes(),
            &mut wire,
        )
        .expect("encodes");
    }
    wire
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(MESSAGES as u64));

    let wire = lines();
    group.bench_function("line: decode and parse 1000 lines", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| {
                let mut decoder = LineDecoder::new(4096);
                let mut said = 0;
                while let Ok(Some(line)) = decoder.decode(buf) {
                    if matches!(Input::parse(&line), Input::Say(_)) {
                        said += 1;
                    }
                }
                assert_eq!(said, MESSAGES);
            },
            BatchSize::SmallInput,
        );
    });

    let wire = say_frames();
    group.bench_function("native: decode 1000 say frames into requests", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| {
                let mut decoder = FrameDecoder::new(16_384, 1 << 20);
                let mut said = 0;
                while let Ok(Some(frame)) = decoder.decode(buf) {
                    if matches!(Request::from_frame(&frame), Ok(Request::Say { .. })) {
                        said += 1;
                    }
                }
                assert_eq!(said, MESSAGES);
            },
            BatchSize::SmallInput,
        );
    });

    let message = ServerMsg::Message {
        room: "lobby".into(),
        from: "alice".into(),
        seq: 123_456,
        ts: "2026-11-29T14:30:45.123Z".into(),
        kind: None,
        reply_to: None,
        tags: None,
    };
    group.bench_function("native: encode 1000 message events", |b| {
        let mut out = BytesMut::with_capacity(256 * MESSAGES);
        b.iter(|| {
            out.clear();
            for _ in 0..MESSAGES {
                encode_server_msg(&message, TEXT.as_bytes(), &mut out).expect("encodes");
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
