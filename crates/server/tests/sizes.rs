//! The limits not proved elsewhere: name and message lengths at their edges, a hub inbox
//! of one (back-pressure without loss), and a shutdown that a stuck client cannot hold up.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg};
use support::{LineClient, NativeClient};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

fn code_of(answer: Result<Reply, ServerMsg>) -> Option<ErrorCode> {
    match answer {
        Err(ServerMsg::Error { code, .. }) => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn nicks_rooms_and_messages_are_held_to_their_lengths() {
    let server = support::start_with(|c| {
        c.limits.max_nick_len = 8;
        c.limits.max_room_len = 6;
        c.limits.max_message_bytes = 50;
    })
    .await;
    let mut native = NativeClient::connect(server.native).await;
    let too_long = native.request(&Request::Hello { version: 1, nick: "ninechars".into(), password: None }, b"").await;
    assert_eq!(code_of(too_long), Some(ErrorCode::InvalidNick));
    let at_limit = native.request(&Request::Hello { version: 1, nick: "eightchr".into(), password: None }, b"").await;
    assert!(matches!(at_limit, Ok(Reply::Welcome { .. })), "{at_limit:?}");
    let renamed = native.request(&Request::Nick { nick: "ninechars".into() }, b"").await;
    assert_eq!(code_of(renamed), Some(ErrorCode::InvalidNick));

    let joined = native.request(&Request::Join { room: "sevenrm".into() }, b"").await;
    assert_eq!(code_of(joined), Some(ErrorCode::InvalidRoom));
    assert!(native.request(&Request::Join { room: "sixrmz".into() }, b"").await.is_ok());

    let mut watcher = LineClient::join(server.line, "watcher").await;
    watcher.send("/join sixrmz").await;
    watcher.expect_line("You joined sixrmz. Users here: @eightchr, watcher").await;
    let say = Request::Say { room: "sixrmz".into(), reply_to: None, tags: None };
    let over = native.request(&say, "x".repeat(51).as_bytes()).await;
    assert_eq!(code_of(over), Some(ErrorCode::MessageTooLong));
    let exact = "y".repeat(50);
    assert!(native.request(&say, exact.as_bytes()).await.is_ok());
    // The refused message never reached anyone: the next line is the one at the limit.
    watcher.expect_stamped(&format!("eightchr: {exact}")).await;

    // The line protocol holds the same limits and says so in a line.
    watcher.send(&"z".repeat(51)).await;
    watcher.expect_line("Error: The message is longer than 50 bytes.").await;
    watcher.send("/nick ninechars").await;
    let (refusal, _) = watcher.expect_line("").await;
    assert!(refusal.contains("not a valid nick"), "{refusal:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_hub_inbox_of_one_slows_senders_and_loses_nothing() {
    const SENDERS: usize = 4;
    const MESSAGES: usize = 250;
    let server = support::start_with(|c| {
        c.limits.hub_inbox = 1;
        c.limits.flood_rate_per_sec = 0;
    })
    .await;
    let mut reader = NativeClient::join(server.native, "reader").await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(NativeClient::join(server.native, &format!("sender{s}")).await);
    }
    // Every sender pipelines its whole run without waiting for answers, all at once.
    let runs = senders.into_iter().enumerate().map(|(s, mut sender)| {
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                sender
                    .send(
                        &Request::Say { room: "lobby".into(), reply_to: None, tags: None },
                        format!("{s} {n}").as_bytes(),
                    )
                    .await;
            }
            sender
        })
    });
    let runs: Vec<_> = runs.collect();
    let mut next = [0usize; SENDERS];
    while next.iter().sum::<usize>() < SENDERS * MESSAGES {
        let text = reader.expect(|r| matches!(&r.msg, ServerMsg::Message { .. }).then(|| r.text())).await;
        let (s, n) = text.split_once(' ').expect("sender and number");
        let (s, n): (usize, usize) = (s.parse().expect("sender"), n.parse().expect("number"));
        assert_eq!(n, next[s], "sender {s}'s messages arrive in order, none lost");
        next[s] += 1;
    }
    for run in runs {
        run.await.expect("the sender finished");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_cannot_hold_up_shutdown() {
    // About 10 MB through the room: more than the kernel buffers for a reader that reads
    // nothing, so the server's writer to it is stuck when shutdown comes.
    const MESSAGES: usize = 10_000;
    let server = support::start_with(|c| {
        c.limits.send_queue_bytes = 64 * 1024 * 1024;
        c.limits.flood_rate_per_sec = 0;
        c.limits.shutdown_grace_ms = 200;
    })
    .await;
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stuck = socket.connect(server.line).await.expect("connects");
    let mut prompt = [0u8; 28];
    stuck.read_exact(&mut prompt).await.expect("prompt");
    tokio::io::AsyncWriteExt::write_all(&mut stuck, b"stuck\n").await.expect("name");

    let mut reader = LineClient::join(server.line, "reader").await;
    let mut sender = LineClient::join(server.line, "sender").await;
    reader.expect_line("sender has joined the chat!").await;
    let padding = "p".repeat(1000);
    for batch in 0..MESSAGES / 100 {
        let lines: String = (batch * 100..(batch + 1) * 100).map(|n| format!("message {n} {padding}\n")).collect();
        sender.send_raw(lines.as_bytes()).await;
        reader.expect_line(&format!("message {} {padding}", (batch + 1) * 100 - 1)).await;
    }
    // Every message is queued for the stuck client too, and it is still connected.
    server.shutdown().await;

    // The server stopped (within support::WAIT, or `shutdown` would have failed) and the
    // stuck client's connection is closed: draining it ends.
    let mut sink = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(support::WAIT, async {
        while let Ok(n) = stuck.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the stuck client's connection was closed");
}
