//! The slow-consumer rule: a client that does not read is disconnected once its queue
//! is full, and nobody else notices anything but its departure.

mod support;

use std::net::SocketAddr;

use support::LineClient;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

/// Connects with a tiny receive buffer, so the kernel holds little on its behalf.
async fn sluggish(addr: SocketAddr, name: &str) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stream = socket.connect(addr).await.expect("connects");
    let mut prompt = [0u8; 28];
    stream.read_exact(&mut prompt).await.expect("prompt");
    tokio::io::AsyncWriteExt::write_all(&mut stream, format!("{name}\n").as_bytes()).await.expect("name");
    stream
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_the_others_keep_receiving() {
    // 10,000 lines of about 1 KiB: well over what the kernel buffers on the slow
    // client's behalf (Linux lets a loopback send buffer grow to 4 MiB) plus its queue.
    const MESSAGES: usize = 10_000;
    let server = support::start_with(|c| {
        c.limits.send_queue_bytes = 64 * 1024;
        c.limits.flood_rate_per_sec = 0;
    })
    .await;
    let mut reader = LineClient::join(server.line, "reader").await;
    let mut slow = sluggish(server.line, "slow").await;
    reader.expect_line("slow has joined the chat!").await;
    let mut sender = LineClient::join(server.line, "sender").await;
    reader.expect_line("sender has joined the chat!").await;

    // The flood comes in batches small enough for the reader's queue (it must not become
    // a slow consumer itself); the slow client reads nothing, so its queue only grows.
    const BATCH: usize = 32;
    let padding = "p".repeat(1000);
    let mut next = 0;
    let mut slow_left = false;
    for batch in 0..MESSAGES / BATCH {
        let mut lines = String::new();
        for n in batch * BATCH..(batch + 1) * BATCH {
            lines.push_str(&format!("message {n} {padding}\n"));
        }
        sender.send_raw(lines.as_bytes()).await;
        while next < (batch + 1) * BATCH {
            let line = reader.next_line().await.expect("the reader stays connected");
            if line.ends_with("slow has left the chat (send queue exceeded).") {
                slow_left = true;
            } else if let Some(rest) = line.split_once("sender: message ").map(|(_, rest)| rest) {
                let n: usize = rest.split(' ').next().and_then(|n| n.parse().ok()).expect("a number");
                assert_eq!(n, next, "messages arrive in order, none lost");
                next += 1;
            } else {
                panic!("unexpected line {line:?}");
            }
        }
    }
    assert!(slow_left, "the slow consumer was disconnected");

    // The slow client's connection was closed by the server: reading drains what the
    // kernel held, then ends.
    let mut sink = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(support::WAIT, async {
        loop {
            match slow.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the server closed the slow consumer's connection");
    server.shutdown().await;
}
