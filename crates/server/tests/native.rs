//! The native framed protocol over real sockets, and users of both gateways together.

mod support;

use bytes::{BufMut, BytesMut};
use parley_proto::msg::{
    encode_request, ErrorCode, LeaveReason, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION,
};
use support::{LineClient, NativeClient};

fn say(room: &str) -> Request {
    Request::Say { room: room.into(), reply_to: None, tags: None }
}

fn error_code(answer: Result<Reply, ServerMsg>) -> ErrorCode {
    match answer {
        Err(ServerMsg::Error { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_welcomes_into_the_lobby() {
    let server = support::start().await;
    let _alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::connect(server.native).await;
    let welcome =
        bob.request(&Request::Hello { version: PROTOCOL_VERSION, nick: "bob".into(), password: None }, b"").await;
    assert_eq!(
        welcome,
        Ok(Reply::Welcome {
            version: PROTOCOL_VERSION,
            nick: "bob".into(),
            room: "lobby".into(),
            members: vec!["alice".into(), "bob".into()],
            max_text: 4096,
            history: vec![],
            topic: None,
            nodes: vec![],
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_welcome_lists_the_clusters_nodes_when_configured() {
    let nodes = vec!["a.example.org:7780".to_owned(), "b.example.org:7780".to_owned(), "https://b.example.org".into()];
    let configured = nodes.clone();
    let server = support::start_with(move |c| c.cluster.nodes = configured).await;
    for version in [1, PROTOCOL_VERSION] {
        let mut client = NativeClient::connect(server.native).await;
        let hello = Request::Hello { version, nick: format!("v{version}"), password: None };
        let Ok(Reply::Welcome { nodes: told, .. }) = client.request(&hello, b"").await else {
            panic!("welcomed in version {version}")
        };
        assert_eq!(told, nodes, "version {version}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_handshake_refuses_until_it_succeeds() {
    let server = support::start().await;
    let _alice = NativeClient::join(server.native, "alice").await;
    let mut client = NativeClient::connect(server.native).await;
    assert_eq!(error_code(client.request(&Request::Who { room: "lobby".into() }, b"").await), ErrorCode::NotRegistered);
    let hello = |nick: &str, version| Request::Hello { version, nick: nick.into(), password: None };
    assert_eq!(error_code(client.request(&hello("Alice", PROTOCOL_VERSION), b"").await), ErrorCode::NickTaken);
    assert_eq!(error_code(client.request(&hello("a b", PROTOCOL_VERSION), b"").await), ErrorCode::InvalidNick);
    assert_eq!(error_code(client.request(&hello("zed", 99), b"").await), ErrorCode::UnsupportedVersion);
    assert!(client.request(&hello("zed", PROTOCOL_VERSION), b"").await.is_ok());
    assert_eq!(error_code(client.request(&hello("zed2", PROTOCOL_VERSION), b"").await), ErrorCode::AlreadyRegistered);
    server.shutdown().await;
}

#[tokio::test]
async fn messages_carry_room_sender_sequence_and_utc_time() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;
    for (n, text) in ["one", "two", "three"].iter().enumerate() {
        let said = alice.request(&say("lobby"), text.as_bytes()).await.expect("said");
        let Reply::Said { seq, ts, .. } = said else { panic!("said expected, got {said:?}") };
        assert_eq!(seq, n as u64 + 1);
        let (got_seq, got_ts, got_text) = bob
            .expect(|r| match &r.msg {
                ServerMsg::Message { room, from, seq, ts, .. } if room == "lobby" && from == "alice" => {
                    Some((*seq, ts.clone(), r.text()))
                }
                _ => None,
            })
            .await;
        assert_eq!((got_seq, got_ts.as_str(), got_text.as_str()), (seq, ts.as_str(), *text));
        let parsed = chrono::DateTime::parse_from_rfc3339(&ts).expect("RFC 3339");
        assert_eq!(parsed.offset().local_minus_utc(), 0, "UTC");
        assert!(ts.ends_with('Z'));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn structured_answers_for_every_request() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;
    assert_eq!(
        alice.request(&Request::Join { room: "#ops".into() }, b"").await,
        Ok(Reply::Joined {
            room: "ops".into(),
            members: vec!["alice".into()],
            history: vec![],
            topic: None,
            read: None
        })
    );
    // Native users may be in several rooms at once.
    assert_eq!(
        alice.request(&Request::Who { room: "lobby".into() }, b"").await,
        Ok(Reply::Who { room: "lobby".into(), members: vec!["alice".into(), "bob".into()] })
    );
    let rooms = alice.request(&Request::Rooms, b"").await.expect("rooms");
    let Reply::Rooms { rooms } = rooms else { panic!("{rooms:?}") };
    let summary: Vec<_> = rooms.iter().map(|r| (r.name.as_str(), r.members, r.joined)).collect();
    assert_eq!(summary, vec![("lobby", 2, true), ("ops", 1, true)]);
    assert_eq!(alice.request(&Request::Ping, b"").await, Ok(Reply::Pong));
    assert_eq!(alice.request(&Request::Nick { nick: "Al".into() }, b"").await, Ok(Reply::Nick { nick: "Al".into() }));
    let renamed = bob.expect(|r| matches!(&r.msg, ServerMsg::Nick { .. }).then(|| r.msg.clone())).await;
    assert!(matches!(renamed, ServerMsg::Nick { old, new, .. } if old == "alice" && new == "Al"));
    assert_eq!(
        alice.request(&Request::Part { room: Some("ops".into()) }, b"").await,
        Ok(Reply::Parted { room: "ops".into() })
    );
    assert_eq!(error_code(alice.request(&Request::Who { room: "ops".into() }, b"").await), ErrorCode::NoSuchRoom);
    assert_eq!(error_code(alice.request(&say("ops"), b"hi").await), ErrorCode::NoSuchRoom, "nobody is in it");
    assert_eq!(error_code(alice.request(&say("lobby"), b"  ").await), ErrorCode::EmptyMessage);
    assert_eq!(error_code(alice.request(&say("lobby"), &[b'x'; 4097]).await), ErrorCode::MessageTooLong);
    assert_eq!(
        error_code(alice.request(&Request::Whisper { to: "nobody".into(), reply_to: None, tags: None }, b"hi").await),
        ErrorCode::NoSuchNick
    );
    assert_eq!(error_code(alice.request(&Request::Join { room: "a b".into() }, b"").await), ErrorCode::InvalidRoom);
    assert_eq!(alice.request(&Request::Quit { reason: Some("lunch".into()) }, b"").await, Ok(Reply::Bye));
    assert!(alice.expect_closed().await.is_empty());
    let left = bob.expect(|r| matches!(&r.msg, ServerMsg::Left { .. }).then(|| r.msg.clone())).await;
    assert!(
        matches!(&left, ServerMsg::Left { nick, reason: LeaveReason::Quit, detail: Some(d), .. } if nick == "Al" && d == "lunch"),
        "{left:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn line_and_native_users_share_rooms_and_private_messages() {
    let server = support::start().await;
    let mut line = LineClient::join(server.line, "liam").await;
    let mut native = NativeClient::join(server.native, "nora").await;
    line.expect_line("nora has joined the chat!").await;

    line.send("hello from the terminal").await;
    let text =
        native.expect(|r| matches!(&r.msg, ServerMsg::Message { from, .. } if from == "liam").then(|| r.text())).await;
    assert_eq!(text, "hello from the terminal");

    native.request(&say("lobby"), b"hello from native").await.expect("said");
    line.expect_stamped("nora: hello from native").await;

    native
        .request(&Request::Whisper { to: "LIAM".into(), reply_to: None, tags: None }, b"psst")
        .await
        .expect("whispered");
    line.expect_stamped("[private] nora: psst").await;
    line.send("/msg nora hi back").await;
    line.expect_stamped("[private to nora] hi back").await;
    let (from, text) = native
        .expect(|r| match &r.msg {
            ServerMsg::Whisper { from, to, .. } if to == "nora" => Some((from.clone(), r.text())),
            _ => None,
        })
        .await;
    assert_eq!((from.as_str(), text.as_str()), ("liam", "hi back"));

    // Text from another gateway cannot break a line user's framing or forge a line.
    native.request(&say("lobby"), b"two\nlines\x1b[2J").await.expect("said");
    line.expect_stamped("nora: two").await;
    line.expect_stamped("nora: lines\u{FFFD}[2J").await;

    native.request(&Request::Join { room: "dev".into() }, b"").await.expect("joined");
    line.send("/join dev").await;
    line.expect_line("You joined dev. Users here: liam, @nora").await;
    let joined = native
        .expect(|r| matches!(&r.msg, ServerMsg::Joined { room, .. } if room == "dev").then(|| r.msg.clone()))
        .await;
    assert!(matches!(joined, ServerMsg::Joined { nick, arrival: false, .. } if nick == "liam"));
    server.shutdown().await;
}

#[tokio::test]
async fn frames_split_one_byte_per_write_and_many_in_one_write() {
    // Framing, not flood control, is under test here.
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;

    let mut one = BytesMut::new();
    encode_request(100, &say("lobby"), "trickle ✓".as_bytes(), &mut one).expect("encodes");
    for byte in one.iter() {
        alice.send_raw(&[*byte]).await;
    }
    assert!(matches!(alice.answer(100).await, Ok(Reply::Said { .. })));

    let mut many = BytesMut::new();
    for n in 0..200u64 {
        encode_request(1000 + n, &say("lobby"), format!("burst {n}").as_bytes(), &mut many).expect("encodes");
    }
    alice.send_raw(&many).await;
    for n in 0..200u64 {
        assert!(matches!(alice.answer(1000 + n).await, Ok(Reply::Said { .. })));
    }
    let first = bob.expect(|r| matches!(&r.msg, ServerMsg::Message { .. }).then(|| r.text())).await;
    assert_eq!(first, "trickle ✓");
    for n in 0..200u64 {
        let text = bob.expect(|r| matches!(&r.msg, ServerMsg::Message { .. }).then(|| r.text())).await;
        assert_eq!(text, format!("burst {n}"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_announced_to_native_clients() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut unregistered = NativeClient::connect(server.native).await;
    // Make sure the unregistered connection is being served before shutting down.
    let mut probe = BytesMut::new();
    encode_request(1, &Request::Ping, b"", &mut probe).expect("encodes");
    unregistered.send_raw(&probe).await;
    assert_eq!(error_code(unregistered.answer(1).await), ErrorCode::NotRegistered);
    server.shutdown().await;
    for client in [&mut alice, &mut unregistered] {
        let last = client.expect_closed().await;
        assert!(
            last.iter().any(
                |r| matches!(&r.msg, ServerMsg::Shutdown { message, .. } if message == "Server is shutting down.")
            ),
            "{last:?}"
        );
    }
}

#[tokio::test]
async fn a_raw_hello_frame_written_by_hand_is_understood() {
    // The bytes a client in another language would write, following docs/PROTOCOL.md.
    let server = support::start().await;
    let mut client = NativeClient::connect(server.native).await;
    let header = br#"{"type":"hello","id":1,"version":1,"nick":"handmade"}"#;
    let mut frame = BytesMut::new();
    frame.put_u16(u16::try_from(header.len()).expect("short"));
    frame.extend_from_slice(header);
    client.send_raw(&frame).await;
    assert!(matches!(client.answer(1).await, Ok(Reply::Welcome { nick, .. }) if nick == "handmade"));
    server.shutdown().await;
}

#[tokio::test]
async fn actions_away_whois_and_invitations() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;
    let mut line = LineClient::join(server.line, "carol").await;

    assert!(alice.request(&Request::Act { room: "lobby".into(), reply_to: None }, b"waves").await.is_ok());
    let kind = bob
        .expect(|r| match &r.msg {
            ServerMsg::Message { from, kind, .. } if from == "alice" => Some(kind.clone()),
            _ => None,
        })
        .await;
    assert_eq!(kind.as_deref(), Some("action"));
    line.expect_line("* alice waves").await;
    let joined = bob.request(&Request::Join { room: "lobby".into() }, b"").await;
    let Ok(Reply::Joined { history, .. }) = joined else { panic!("joined: {joined:?}") };
    assert_eq!(history.last().and_then(|h| h.kind.as_deref()), Some("action"), "history keeps it an action");

    assert_eq!(
        alice.request(&Request::Away { message: Some("lunch".into()) }, b"").await,
        Ok(Reply::Away { away: true })
    );
    let whois = bob.request(&Request::Whois { nick: "alice".into() }, b"").await;
    assert!(
        matches!(&whois, Ok(Reply::Whois { nick, away: Some(away), rooms, .. }) if nick == "alice" && away == "lunch" && rooms == &["lobby"]),
        "{whois:?}"
    );
    assert_eq!(alice.request(&Request::Away { message: None }, b"").await, Ok(Reply::Away { away: false }));
    let nobody = bob.request(&Request::Whois { nick: "nobody".into() }, b"").await;
    assert_eq!(error_code(nobody), ErrorCode::NoSuchNick);

    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let invited = alice.request(&Request::Invite { room: Some("dev".into()), nick: "bob".into() }, b"").await;
    assert_eq!(invited, Ok(Reply::Invited { nick: "bob".into(), room: "dev".into() }));
    let notice = bob.expect(|r| matches!(r.msg, ServerMsg::Notice { .. }).then(|| r.text())).await;
    assert_eq!(notice, "alice invites you to dev.");
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_store_a_message_parked_behind_a_part_still_goes_out() {
    // alice's "two" waits behind her part, which waits behind "one": once "one" is
    // delivered, the part and then "two" must follow without anything else happening.
    let server = support::start_with(|c| {
        c.history.store = false;
        c.limits.flood_rate_per_sec = 0;
    })
    .await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let mut bob = NativeClient::join(server.native, "bob").await;
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert!(bob.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let mut frames = BytesMut::new();
    encode_request(101, &say("lobby"), b"one", &mut frames).expect("encodes");
    encode_request(102, &Request::Part { room: Some("lobby".into()) }, b"", &mut frames).expect("encodes");
    encode_request(103, &say("dev"), b"two", &mut frames).expect("encodes");
    alice.send_raw(&frames).await;
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = bob
            .expect(|r| match &r.msg {
                ServerMsg::Message { room, .. } => Some(format!("{room}: {}", r.text())),
                ServerMsg::Left { room, nick, .. } => Some(format!("{nick} left {room}")),
                _ => None,
            })
            .await;
        seen.push(event);
    }
    assert_eq!(seen, ["lobby: one", "alice left lobby", "dev: two"]);
    server.shutdown().await;
}

/// The next room message `client` receives, as its frame came.
async fn next_message_frame(client: &mut NativeClient) -> parley_proto::native::Frame {
    loop {
        let frame = client.next_frame().await.expect("a message before the end");
        if frame.envelope.kind.as_deref() == Some("message") {
            return frame;
        }
    }
}

#[tokio::test]
async fn version_2_gets_room_messages_with_compact_headers_and_version_1_with_json() {
    let server = support::start().await;
    let mut old = NativeClient::join_in(server.native, "old", 1).await;
    let mut new = NativeClient::join_in(server.native, "new", 2).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let Ok(Reply::Said { seq: first, .. }) = alice.request(&say("lobby"), b"hello").await else { panic!("said") };
    assert!(alice.request(&Request::Act { room: "lobby".into(), reply_to: None }, b"waves").await.is_ok());
    let reply = Request::Say { room: "lobby".into(), reply_to: Some(first), tags: None };
    assert!(alice.request(&reply, "réponse".as_bytes()).await.is_ok());

    // (compact for version 2?, the text): a reply's target needs the JSON header.
    let expected = [(true, "hello"), (true, "waves"), (false, "réponse")];
    for (compact, text) in expected {
        let (json, short) = (next_message_frame(&mut old).await, next_message_frame(&mut new).await);
        assert_eq!(json.header[0], b'{', "version 1 is JSON only");
        assert_eq!(short.header[0] == parley_proto::compact::MESSAGE, compact, "{text}");
        if compact {
            assert!(short.header.len() < 40, "a compact header of {} bytes", short.header.len());
        }
        let (json, short) = (Received::from_frame(json).expect("JSON"), Received::from_frame(short).expect("either"));
        assert_eq!(short.msg, json.msg, "the same event in both versions");
        assert_eq!((short.text(), json.text()), (text.to_owned(), text.to_owned()));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_version_the_server_does_not_speak_is_refused_and_another_hello_may_follow() {
    let server = support::start().await;
    let mut client = NativeClient::connect(server.native).await;
    for version in [0, PROTOCOL_VERSION + 1, u32::MAX] {
        let hello = Request::Hello { version, nick: "zed".into(), password: None };
        match client.request(&hello, b"").await {
            Err(ServerMsg::Error { code: ErrorCode::UnsupportedVersion, message, .. }) => {
                assert!(message.contains(&format!("not {version}")), "{message}");
            }
            other => panic!("version {version} accepted: {other:?}"),
        }
    }
    let hello = Request::Hello { version: 1, nick: "zed".into(), password: None };
    assert!(matches!(client.request(&hello, b"").await, Ok(Reply::Welcome { version: 1, .. })));
    server.shutdown().await;
}
