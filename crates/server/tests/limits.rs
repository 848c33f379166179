//! Every limit holds, at its edge, over real sockets.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use parley_proto::msg::{encode_request, ErrorCode, LeaveReason, Reply, Request, ServerMsg};
use support::{LineClient, NativeClient};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// Connects from a chosen loopback address (all of 127.0.0.0/8 is this machine).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((source, 0))).expect("bind a loopback source");
    socket.connect(addr).await.expect("connects")
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(support::WAIT, stream.read_to_end(&mut got)).await.expect("closed in time").expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn the_connection_cap_holds_and_freed_places_are_reused() {
    let server = support::start_with(|c| c.limits.max_connections = 3).await;
    let first = LineClient::join(server.line, "one").await;
    let _second = LineClient::join(server.line, "two").await;
    let _third = NativeClient::join(server.native, "three").await;

    let mut refused = TcpStream::connect(server.line).await.expect("connects");
    assert_eq!(read_all(&mut refused).await, "Sorry: The server is full; try again later.\n");
    let mut refused = NativeClient::connect(server.native).await;
    let last = refused.expect_closed().await;
    assert!(
        matches!(&last[..], [r] if matches!(r.msg, ServerMsg::Error { code: ErrorCode::ServerFull, .. })),
        "{last:?}"
    );

    drop(first);
    // The place is free once the server has seen the close; until then it refuses.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let mut client = LineClient::connect(server.line).await;
        let mut first_bytes = [0u8; 6];
        client.reader.read_exact(&mut first_bytes).await.expect("an answer");
        if &first_bytes == b"Please" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed place was never reused");
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_per_address_cap_counts_each_address_apart() {
    let server = support::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let _a = LineClient::join(server.line, "a").await;
    let _b = NativeClient::join(server.native, "b").await;
    let mut refused = TcpStream::connect(server.line).await.expect("connects");
    assert_eq!(read_all(&mut refused).await, "Sorry: Too many connections from your address.\n");
    let mut refused = connect_from([127, 0, 0, 1], server.native).await;
    let mut bytes = Vec::new();
    refused.read_to_end(&mut bytes).await.expect("read");
    assert!(String::from_utf8_lossy(&bytes).contains("too_many_connections"));

    let mut elsewhere = connect_from([127, 0, 0, 2], server.line).await;
    let mut prompt = [0u8; 28];
    elsewhere.read_exact(&mut prompt).await.expect("another address is served");
    assert_eq!(&prompt, parley_proto::line::USERNAME_PROMPT.as_bytes());
    server.shutdown().await;
}

#[tokio::test]
async fn an_ipv4_client_counts_once_whether_it_comes_over_ipv4_or_ipv6() {
    // A listener on [::] takes IPv4 clients too, as ::ffff:a.b.c.d; they are the same
    // client as on an IPv4 listener.
    let server = support::start_with(|c| {
        c.limits.max_connections_per_ip = 1;
        c.allow_plain_remote = true;
        c.listeners[0].addr = "[::]:0".into();
    })
    .await;
    let dual_stack = SocketAddr::from(([127, 0, 0, 1], server.line.port()));
    let _native = NativeClient::join(server.native, "native").await;
    let mut refused = connect_from([127, 0, 0, 1], dual_stack).await;
    assert_eq!(read_all(&mut refused).await, "Sorry: Too many connections from your address.\n");

    let mut other = connect_from([127, 0, 0, 3], dual_stack).await;
    let mut prompt = [0u8; 28];
    other.read_exact(&mut prompt).await.expect("another address is served");
    assert_eq!(&prompt, parley_proto::line::USERNAME_PROMPT.as_bytes());
    let mut again = connect_from([127, 0, 0, 3], server.native).await;
    let mut bytes = Vec::new();
    again.read_to_end(&mut bytes).await.expect("read");
    assert!(String::from_utf8_lossy(&bytes).contains("too_many_connections"), "counted as 127.0.0.3 over IPv4 too");
    server.shutdown().await;
}

#[tokio::test]
async fn a_flood_is_throttled_then_disconnected_while_others_chat_in_order() {
    let server = support::start_with(|c| {
        c.limits.flood_burst = 5;
        c.limits.flood_rate_per_sec = 20;
        c.limits.flood_grace_secs = 1;
    })
    .await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut talker = LineClient::join(server.line, "talker").await;
    let mut flooder = LineClient::join(server.line, "flooder").await;
    watcher.expect_line("flooder has joined the chat!").await;
    talker.expect_line("flooder has joined the chat!").await;

    let flood: String = (0..5000).map(|n| format!("spam {n}\n")).collect();
    flooder.send_raw(flood.as_bytes()).await;
    for n in 0..10 {
        talker.send(&format!("normal {n}")).await;
    }
    let mut spam_seen = 0;
    let mut normal_seen = 0;
    loop {
        let line = watcher.next_line().await.expect("the watcher stays");
        if let Some(rest) = line.split_once("] flooder: spam ").map(|(_, r)| r) {
            assert_eq!(rest, spam_seen.to_string(), "admitted spam arrives in order");
            spam_seen += 1;
        } else if let Some(rest) = line.split_once("] talker: normal ").map(|(_, r)| r) {
            assert_eq!(rest, normal_seen.to_string(), "the others' messages keep their order");
            normal_seen += 1;
        } else if line.ends_with("flooder has left the chat (excess flood).") {
            break;
        } else {
            panic!("unexpected {line:?}");
        }
    }
    assert_eq!(normal_seen, 10, "every normal message arrived while the flood was throttled");
    assert!(spam_seen > 5 && spam_seen < 200, "throttled to about burst + rate × grace, got {spam_seen}");
    let farewell = flooder.expect_closed().await;
    assert!(
        farewell
            .iter()
            .any(|l| l == "Error: you are sending faster than the server allows; disconnected (excess flood)."),
        "{farewell:?}"
    );
    talker.send("after the flood").await;
    watcher.expect_line("talker: after the flood").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_short_burst_over_the_limit_is_slowed_not_cut_off() {
    let server = support::start_with(|c| {
        c.limits.flood_burst = 5;
        c.limits.flood_rate_per_sec = 50;
        c.limits.flood_grace_secs = 5;
    })
    .await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut paster = LineClient::join(server.line, "paster").await;
    watcher.expect_line("paster has joined the chat!").await;
    let paste: String = (0..30).map(|n| format!("pasted line {n}\n")).collect();
    paster.send_raw(paste.as_bytes()).await;
    for n in 0..30 {
        watcher.expect_stamped(&format!("paster: pasted line {n}")).await;
    }
    paster.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_pipelined_frames_are_answered_in_order_without_flood_control() {
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let mut client = NativeClient::join(server.native, "pipeliner").await;
    let mut frames = BytesMut::new();
    for id in 0..10_000u64 {
        encode_request(100 + id, &Request::Ping, b"", &mut frames).expect("encodes");
    }
    client.send_raw(&frames).await;
    for id in 0..10_000u64 {
        let received = client.next().await.expect("an answer");
        assert_eq!(received.msg, ServerMsg::Result { id: 100 + id });
    }
    server.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_pipelined_frames_under_flood_control_end_in_a_clear_error() {
    let server = support::start_with(|c| {
        c.limits.flood_burst = 10;
        c.limits.flood_rate_per_sec = 100;
        c.limits.flood_grace_secs = 1;
    })
    .await;
    let mut watcher = NativeClient::join(server.native, "watcher").await;
    let mut client = NativeClient::join(server.native, "pipeliner").await;
    let mut frames = BytesMut::new();
    for id in 0..10_000u64 {
        encode_request(100 + id, &Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"x", &mut frames)
            .expect("encodes");
    }
    client.send_raw(&frames).await;
    let last = client.expect_closed().await;
    let errors: Vec<_> = last
        .iter()
        .filter_map(|r| match r.msg {
            ServerMsg::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![ErrorCode::ExcessFlood]);
    let left = watcher.expect(|r| matches!(&r.msg, ServerMsg::Left { .. }).then(|| r.msg.clone())).await;
    assert!(matches!(left, ServerMsg::Left { reason: LeaveReason::Lost, detail: Some(d), .. } if d == "excess flood"));
    assert_eq!(watcher.request(&Request::Ping, b"").await, Ok(Reply::Pong));
    server.shutdown().await;
}

#[tokio::test]
async fn silent_and_slowloris_connections_are_closed_by_the_handshake_deadline() {
    let server = support::start_with(|c| {
        c.limits.handshake_timeout_secs = 1;
        c.limits.max_connections_per_ip = 1000;
    })
    .await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;

    let mut idle = Vec::new();
    for n in 0..200 {
        let addr = if n % 2 == 0 { server.line } else { server.native };
        idle.push(TcpStream::connect(addr).await.expect("connects"));
    }
    // Half of them dribble one byte at a time, never finishing a name or a hello.
    let dribblers: Vec<_> = idle.drain(100..).collect();
    let dribbling = tokio::spawn(async move {
        let mut dribblers = dribblers;
        for _ in 0..20 {
            for stream in &mut dribblers {
                let _ = tokio::io::AsyncWriteExt::write_all(stream, b"x").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        dribblers
    });

    // Meanwhile, registered users chat as usual.
    for n in 0..20 {
        bob.request(
            &Request::Say { room: "lobby".into(), reply_to: None, tags: None },
            format!("still here {n}").as_bytes(),
        )
        .await
        .expect("said");
        alice.expect_line(&format!("bob: still here {n}")).await;
    }

    let mut all = idle;
    all.extend(dribbling.await.expect("dribbled"));
    for stream in &mut all {
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(support::WAIT, stream.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "a connection outlived the handshake deadline");
    }
    alice.send("and after").await;
    let text = bob.expect(|r| matches!(&r.msg, ServerMsg::Message { .. }).then(|| r.text())).await;
    assert_eq!(text, "and after");
    server.shutdown().await;
}

#[tokio::test]
async fn a_quiet_native_client_is_pinged_then_timed_out() {
    let server = support::start_with(|c| {
        c.limits.idle_ping_secs = 1;
        c.limits.idle_timeout_secs = 2;
    })
    .await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut quiet = NativeClient::join(server.native, "quiet").await;
    let mut lively = NativeClient::join(server.native, "lively").await;
    // The lively client answers every ping; the quiet one never does.
    let answered = tokio::spawn(async move {
        for _ in 0..3 {
            lively.expect(|r| matches!(r.msg, ServerMsg::Ping { .. }).then_some(())).await;
            assert_eq!(lively.request(&Request::Ping, b"").await, Ok(Reply::Pong));
        }
        lively
    });
    let got = quiet.expect_closed().await;
    assert!(got.iter().any(|r| matches!(r.msg, ServerMsg::Ping { .. })), "pinged before the timeout: {got:?}");
    watcher.expect_line("quiet has left the chat (ping timeout).").await;
    let mut lively = answered.await.expect("the lively client answered");
    assert_eq!(lively.request(&Request::Ping, b"").await, Ok(Reply::Pong), "still connected");
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_per_user_are_capped() {
    let server = support::start_with(|c| c.limits.max_rooms_per_session = 3).await;
    let mut client = NativeClient::join(server.native, "collector").await;
    for room in ["a", "b"] {
        assert!(client.request(&Request::Join { room: room.into() }, b"").await.is_ok());
    }
    let refused = client.request(&Request::Join { room: "c".into() }, b"").await;
    assert!(matches!(refused, Err(ServerMsg::Error { code: ErrorCode::TooManyRooms, .. })), "{refused:?}");
    assert!(client.request(&Request::Join { room: "a".into() }, b"").await.is_ok(), "rejoining is not a new room");
    // A line user moves between rooms, so the cap never stands in the way.
    let mut mover = LineClient::join(server.line, "mover").await;
    for room in ["x", "y", "z", "w"] {
        mover.send(&format!("/join {room}")).await;
        mover.expect_line(&format!("You joined {room}. Users here: @mover")).await;
    }
    server.shutdown().await;
}
