//! Moderation over real sockets and a real SQLite file: operators and admins, topics,
//! kicks, bans (by nick and by address, in a room and off the server), mutes, and all
//! of it kept across a restart with an audit log.

mod support;

use parley_proto::msg::{ErrorCode, LeaveReason, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_server::Config;
use support::{LineClient, NativeClient};

fn code(answer: Result<Reply, ServerMsg>) -> Option<ErrorCode> {
    match answer {
        Err(ServerMsg::Error { code, .. }) => Some(code),
        _ => None,
    }
}

fn dev() -> Option<String> {
    Some("dev".into())
}

/// A native client registered as `nick` (an account) and in the room `dev`.
async fn account_in_dev(addr: std::net::SocketAddr, nick: &str) -> NativeClient {
    let mut client = NativeClient::join(addr, nick).await;
    let registered = client.request(&Request::Register { password: format!("{nick}-password") }, b"").await;
    assert!(registered.is_ok(), "{registered:?}");
    assert!(client.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    client
}

fn no_flood(c: &mut Config) {
    c.limits.flood_rate_per_sec = 0;
}

#[tokio::test]
async fn operators_moderate_their_room_and_nobody_else_can() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    // alice creates dev while logged in: she is its first operator.
    let mut alice = account_in_dev(server.native, "alice").await;
    let mut carol = account_in_dev(server.native, "carol").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    bob.send("/join dev").await;
    bob.expect_line("You joined dev. Users here: @alice, bob, carol").await;

    bob.send("/topic mine now").await;
    bob.expect_line("Error: Only operators of dev may do that.").await;
    let topic = Request::Topic { room: dev(), topic: Some("release on Friday".into()) };
    assert!(matches!(alice.request(&topic, b"").await, Ok(Reply::Moderated { .. })));
    bob.expect_line("*** alice set the topic of dev: release on Friday").await;
    bob.send("/topic").await;
    let shown = bob.next_line().await.expect("a line");
    assert!(shown.starts_with("Topic of dev: release on Friday (set by alice, "), "{shown}");

    // A mute stops bob's messages until it is lifted.
    assert!(alice.request(&Request::Mute { room: dev(), nick: "bob".into(), seconds: None }, b"").await.is_ok());
    bob.expect_line("*** alice muted bob in dev.").await;
    bob.send("anyone?").await;
    bob.expect_line("Error: You are muted in dev.").await;
    assert!(alice.request(&Request::Unmute { room: dev(), nick: "bob".into() }, b"").await.is_ok());
    bob.expect_line("*** alice unmuted bob in dev.").await;
    bob.send("back").await;
    let said =
        carol.expect(|r| matches!(&r.msg, ServerMsg::Message { from, .. } if from == "bob").then(|| r.text())).await;
    assert_eq!(said, "back");

    // A kick puts bob out, telling everyone why; he may come back.
    let kick = Request::Kick { room: dev(), nick: "bob".into(), reason: Some("too loud".into()) };
    assert!(alice.request(&kick, b"").await.is_ok());
    bob.expect_line("bob was kicked from dev (by alice: too loud).").await;
    let left = carol.expect(|r| matches!(&r.msg, ServerMsg::Left { .. }).then(|| r.msg.clone())).await;
    assert!(matches!(left, ServerMsg::Left { reason: LeaveReason::Kicked, .. }), "{left:?}");
    bob.send("/join dev").await;
    bob.expect_line("You joined dev. Users here: @alice, bob, carol").await;
    bob.expect_line("Topic: release on Friday").await;

    // A ban puts him out and keeps him out.
    let ban = Request::Ban { room: dev(), mask: "bob".into(), seconds: None, reason: Some("trolling".into()) };
    assert!(alice.request(&ban, b"").await.is_ok());
    bob.expect_line("bob was kicked from dev (banned by alice: trolling).").await;
    bob.send("/join dev").await;
    bob.expect_line("Error: You are banned from dev: trolling.").await;

    // Operators make operators: accounts for good, guests while they stay; only
    // members are kicked.
    let not_here = alice.request(&Request::Kick { room: dev(), nick: "bob".into(), reason: None }, b"").await;
    assert_eq!(code(not_here), Some(ErrorCode::NotHere));
    let guest = alice.request(&Request::Op { room: dev(), nick: "bob".into() }, b"").await;
    assert_eq!(code(guest), Some(ErrorCode::NotHere), "a guest operates a room only while in it");
    let early = carol.request(&Request::Unban { room: dev(), mask: "bob".into() }, b"").await;
    assert_eq!(code(early), Some(ErrorCode::NotOperator));
    assert!(alice.request(&Request::Op { room: dev(), nick: "carol".into() }, b"").await.is_ok());
    assert!(carol.request(&Request::Unban { room: dev(), mask: "bob".into() }, b"").await.is_ok());
    bob.send("/join dev").await;
    bob.expect_line("You joined dev. Users here: @alice, bob, @carol").await;
    let bad =
        carol.request(&Request::Ban { room: dev(), mask: "not a mask".into(), seconds: None, reason: None }, b"").await;
    assert_eq!(code(bad), Some(ErrorCode::BadMask));

    // Bans, operators and topics outlive the server.
    let ban = Request::Ban { room: dev(), mask: "bob".into(), seconds: Some(3600), reason: None };
    assert!(carol.request(&ban, b"").await.is_ok());
    server.shutdown().await;
    let server = support::start_in(data.path(), no_flood).await;
    let mut bob = LineClient::join(server.line, "bob").await;
    bob.send("/join dev").await;
    bob.expect_line("Error: You are banned from dev.").await;
    let mut carol = NativeClient::join(server.native, "carol").await;
    let login = Request::Auth { name: None, password: "carol-password".into() };
    assert!(carol.request(&login, b"").await.is_ok());
    let joined = carol.request(&Request::Join { room: "dev".into() }, b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { topic: Some(t), .. }) if t == "release on Friday"), "{joined:?}");
    assert!(carol.request(&Request::Unban { room: dev(), mask: "bob".into() }, b"").await.is_ok(), "still an operator");
    server.shutdown().await;

    let audit = support::with_owner_store(data.path(), |store| store.audit(100).expect("reads"));
    let actions: Vec<&str> = audit.iter().rev().map(|line| line.action.as_str()).collect();
    assert_eq!(actions, ["register", "topic", "mute", "unmute", "kick", "ban", "op", "unban", "ban", "unban"]);
    assert_eq!((audit[0].actor.as_str(), audit[0].target.as_deref()), ("carol", Some("bob")));
}

#[tokio::test]
async fn an_admin_bans_an_address_from_the_server() {
    let data = support::tempdir::TempDir::new();
    {
        // The owner makes an admin with `parley admin`, on the data directory.
        use parley_hub::Nick;
        support::with_owner_store(data.path(), |store| {
            let root = Nick::parse("root", 32).expect("nick");
            let root = store.register(&root, "root-password").expect("registers").expect("a new account");
            assert!(store.set_admin(&root, true).expect("grants"));
        });
    }
    let server = support::start_in(data.path(), no_flood).await;
    let mut root = NativeClient::join(server.native, "someone").await;
    let login = Request::Auth { name: Some("root".into()), password: "root-password".into() };
    assert!(root.request(&login, b"").await.is_ok());
    let mut pest = LineClient::connect_from([127, 0, 0, 2], server.line).await;
    pest.expect_prompt().await;
    pest.send("pest").await;
    pest.expect_line("Welcome to the chat, pest!").await;

    // A server ban takes the address off the server, on every gateway.
    let ban = Request::ServerBan { mask: "127.0.0.2".into(), seconds: None, reason: Some("spam".into()) };
    assert!(matches!(root.request(&ban, b"").await, Ok(Reply::ServerModerated { .. })));
    let last = pest.expect_closed().await;
    assert!(last.iter().any(|l| l.ends_with("*** You are banned from this server: spam.")), "{last:?}");
    let mut again = LineClient::connect_from([127, 0, 0, 2], server.line).await;
    again.expect_prompt().await;
    again.send("other").await;
    let refused = again.expect_closed().await;
    assert_eq!(refused, ["Error: You are banned from this server: spam."]);
    let mut native = NativeClient::connect_from([127, 0, 0, 2], server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "third".into(), password: None };
    assert_eq!(code(native.request(&hello, b"").await), Some(ErrorCode::ServerBanned));
    // Admins read the audit log; nobody else does.
    let audit = root.request(&Request::Audit { limit: None }, b"").await;
    assert!(
        matches!(&audit, Ok(Reply::Audit { entries }) if entries.first().is_some_and(|e| e.action == "server ban" && e.target.as_deref() == Some("127.0.0.2"))),
        "{audit:?}"
    );
    // Other addresses are still welcome.
    let mut fine = NativeClient::connect(server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "fine".into(), password: None };
    assert!(fine.request(&hello, b"").await.is_ok());
    let refused = fine.request(&Request::Audit { limit: None }, b"").await;
    assert_eq!(code(refused), Some(ErrorCode::NotAdmin));
    server.shutdown().await;
}
