//! History on a real SQLite file: shown on joining in both protocols, paged by native
//! clients and `/history`, kept across restarts with the rooms' order continuing, and
//! kept in memory only when the store is off.

mod support;

use parley_proto::msg::{ErrorCode, HistoryEntry, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use support::{LineClient, NativeClient};

fn say(room: &str) -> Request {
    Request::Say { room: room.into(), reply_to: None, tags: None }
}

fn history(before: Option<u64>, after: Option<u64>, limit: Option<u32>) -> Request {
    Request::History { room: Some("lobby".into()), before, after, limit }
}

async fn page(client: &mut NativeClient, request: &Request) -> Vec<HistoryEntry> {
    match client.request(request, b"").await {
        Ok(Reply::History { messages, .. }) => messages,
        other => panic!("expected a history page, got {other:?}"),
    }
}

fn seqs(entries: &[HistoryEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

async fn welcome_history(client: &mut NativeClient, nick: &str) -> Vec<HistoryEntry> {
    match client.request(&Request::Hello { version: PROTOCOL_VERSION, nick: nick.into(), password: None }, b"").await {
        Ok(Reply::Welcome { history, .. }) => history,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn newcomers_get_the_latest_messages_in_both_protocols() {
    let server = support::start_with(|c| c.history.on_join = 3).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for n in 1..=4 {
        assert!(alice.request(&say("lobby"), format!("lobby {n}").as_bytes()).await.is_ok());
    }
    let mut bob = LineClient::connect(server.line).await;
    bob.expect_prompt().await;
    bob.send("bob").await;
    bob.expect_line("Welcome to the chat, bob!").await;
    assert_eq!(bob.next_line().await.as_deref(), Some("--- History of lobby: 3 messages, #2 to #4 ---"));
    for n in 2..=4 {
        support::assert_stamped(&bob.next_line().await.expect("a line"), &format!("alice: lobby {n}"));
    }
    assert_eq!(bob.next_line().await.as_deref(), Some("--- End of history ---"));

    let mut carol = NativeClient::connect(server.native).await;
    let past = welcome_history(&mut carol, "carol").await;
    assert_eq!(seqs(&past), [2, 3, 4]);
    assert_eq!((past[0].from.as_str(), past[0].text.as_str()), ("alice", "lobby 2"));

    // Another room has its own history, shown on /join and in the native join result.
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert!(alice.request(&say("dev"), b"in dev").await.is_ok());
    bob.send("/join dev").await;
    bob.expect_line("You joined dev. Users here: @alice, bob").await;
    assert_eq!(bob.next_line().await.as_deref(), Some("--- History of dev: 1 messages, #1 to #1 ---"));
    support::assert_stamped(&bob.next_line().await.expect("a line"), "alice: in dev");
    let joined = carol.request(&Request::Join { room: "DEV".into() }, b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if seqs(history) == [1]), "{joined:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn native_clients_page_back_and_catch_up() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for n in 1..=30 {
        assert!(alice.request(&say("lobby"), format!("m{n}").as_bytes()).await.is_ok());
    }
    let mut bob = NativeClient::join(server.native, "bob").await;
    let latest = page(&mut bob, &history(None, None, Some(10))).await;
    assert_eq!(seqs(&latest), (21..=30).collect::<Vec<_>>());
    assert_eq!(latest[9].text, "m30");
    let back = page(&mut bob, &history(Some(21), None, Some(10))).await;
    assert_eq!(seqs(&back), (11..=20).collect::<Vec<_>>());
    let start = page(&mut bob, &history(Some(3), None, None)).await;
    assert_eq!(seqs(&start), [1, 2]);
    let caught_up = page(&mut bob, &history(None, Some(25), None)).await;
    assert_eq!(seqs(&caught_up), [26, 27, 28, 29, 30]);
    assert!(page(&mut bob, &history(None, Some(30), None)).await.is_empty(), "nothing after the last");
    let capped = page(&mut bob, &history(None, Some(0), Some(100_000))).await;
    assert_eq!(capped.len(), 30, "a limit over 500 is capped, not refused");

    let both = bob.request(&history(Some(5), Some(1), None), b"").await;
    assert!(matches!(both, Err(ServerMsg::Error { code: ErrorCode::BadRequest, .. })), "{both:?}");
    let elsewhere = Request::History { room: Some("dev".into()), before: None, after: None, limit: None };
    let refused = bob.request(&elsewhere, b"").await;
    assert!(matches!(refused, Err(ServerMsg::Error { code: ErrorCode::NoSuchRoom, .. })), "{refused:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn line_users_ask_for_history() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    alice.send("/history").await;
    alice.expect_line("No history in lobby yet.").await;
    for n in 1..=5 {
        alice.send(&format!("line {n}")).await;
    }
    alice.send("/history 2").await;
    alice.expect_line("--- History of lobby: 2 messages, #4 to #5 ---").await;
    support::assert_stamped(&alice.next_line().await.expect("a line"), "alice: line 4");
    support::assert_stamped(&alice.next_line().await.expect("a line"), "alice: line 5");
    alice.expect_line("--- End of history ---").await;
    alice.send("/history 0").await;
    alice.expect_line("Usage: /history [NICK] [N], N a number above 0").await;
    // Guests read their own conversations too; with nobody of that name, there is none.
    alice.send("/history bob").await;
    alice.expect_line("Error: No user is called bob.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn history_survives_a_restart_and_the_order_continues() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |_| {}).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for text in ["before", "the", "restart"] {
        assert!(alice.request(&say("lobby"), text.as_bytes()).await.is_ok());
    }
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert!(alice.request(&say("dev"), b"dev too").await.is_ok());
    // The room empties (it is forgotten by the hub, not by history).
    assert!(alice.request(&Request::Part { room: Some("dev".into()) }, b"").await.is_ok());
    server.shutdown().await;

    let server = support::start_in(data.path(), |_| {}).await;
    let mut bob = NativeClient::connect(server.native).await;
    let past = welcome_history(&mut bob, "bob").await;
    let texts: Vec<&str> = past.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["before", "the", "restart"]);
    let said = bob.request(&say("lobby"), b"after").await;
    assert!(matches!(said, Ok(Reply::Said { seq: 4, .. })), "the order continues: {said:?}");
    // dev was a guest's room, unregistered: it emptied, and its next life shows none
    // of its past; its order goes on all the same.
    let joined = bob.request(&Request::Join { room: "dev".into() }, b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if history.is_empty()), "{joined:?}");
    let said = bob.request(&say("dev"), b"again").await;
    assert!(matches!(said, Ok(Reply::Said { seq: 2, .. })), "{said:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_store_rooms_remember_only_while_the_server_runs() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |c| c.history.store = false).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for n in 1..=3 {
        assert!(alice.request(&say("lobby"), format!("m{n}").as_bytes()).await.is_ok());
    }
    let mut bob = NativeClient::connect(server.native).await;
    assert_eq!(seqs(&welcome_history(&mut bob, "bob").await), [1, 2, 3]);
    assert_eq!(seqs(&page(&mut bob, &history(Some(3), None, Some(1))).await), [2]);
    server.shutdown().await;
    assert!(!data.path().join(parley_store::DB_FILE).exists(), "nothing written");

    let server = support::start_in(data.path(), |c| c.history.store = false).await;
    let mut carol = NativeClient::connect(server.native).await;
    assert!(welcome_history(&mut carol, "carol").await.is_empty(), "a restart forgets");
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_said_just_before_a_part_arrives_before_the_part() {
    let server = support::start().await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut talker = LineClient::join(server.line, "talker").await;
    watcher.expect_line("talker has joined the chat!").await;
    // Written in one go: the part must not overtake the message being stored.
    talker.send_raw(b"goodbye, all\n/nick talked\n/part\n").await;
    watcher.expect_stamped("talker: goodbye, all").await;
    watcher.expect_stamped("talker is now known as talked.").await;
    watcher.expect_stamped("talked has left lobby.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn private_conversations_page_for_their_two_accounts_only_across_a_restart() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |_| {}).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: "alice-password".into() }, b"").await.is_ok());
    let mut bob = LineClient::join(server.line, "bob").await;
    bob.send("/register bob-password").await;
    bob.expect_line("bob is now your account. Next time, log in with /login bob PASSWORD.").await;
    let mut carol = NativeClient::join(server.native, "carol").await;
    for n in 1..=3 {
        assert!(alice
            .request(&Request::Whisper { to: "bob".into(), reply_to: None, tags: None }, format!("a{n}").as_bytes())
            .await
            .is_ok());
        bob.send(&format!("/msg alice b{n}")).await;
        bob.expect_line(&format!("[private to alice] b{n}")).await;
    }
    assert!(carol
        .request(&Request::Whisper { to: "alice".into(), reply_to: None, tags: None }, b"not yours, bob")
        .await
        .is_ok());
    let whisper = alice.expect(|r| matches!(r.msg, ServerMsg::Whisper { .. }).then(|| r.msg.clone())).await;
    assert!(matches!(whisper, ServerMsg::Whisper { seq, .. } if (2..=6).contains(&seq)), "with its seq: {whisper:?}");

    let conversation = |before, after, limit| Request::Conversation { with: "bob".into(), before, after, limit };
    let page = |answer: Result<Reply, ServerMsg>| match answer {
        Ok(Reply::Conversation { messages, .. }) => messages.into_iter().map(|m| (m.seq, m.text)).collect::<Vec<_>>(),
        other => panic!("expected a conversation, got {other:?}"),
    };
    let all = page(alice.request(&conversation(None, None, None), b"").await);
    let texts: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["a1", "b1", "a2", "b2", "a3", "b3"], "both ways, in order, not carol's");
    let last = all.last().map(|(seq, _)| *seq).expect("some");
    let older = page(alice.request(&conversation(Some(last), None, Some(2)), b"").await);
    assert_eq!(older.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["b2", "a3"]);
    let newer = page(alice.request(&conversation(None, Some(all[3].0), None), b"").await);
    assert_eq!(newer.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["a3", "b3"]);
    // A guest reads its own conversations (of this session), never others'.
    let guest = page(carol.request(&conversation(None, None, None), b"").await);
    assert!(guest.is_empty(), "carol never wrote to bob: {guest:?}");
    let with_alice = Request::Conversation { with: "alice".into(), before: None, after: None, limit: None };
    let own = page(carol.request(&with_alice, b"").await);
    assert_eq!(own.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(), ["not yours, bob"]);
    bob.send("/history alice 2").await;
    bob.expect_line("--- Private messages with alice: 2 messages ---").await;
    support::assert_stamped(&bob.next_line().await.expect("a line"), "alice: a3");
    support::assert_stamped(&bob.next_line().await.expect("a line"), "bob: b3");
    server.shutdown().await;

    let server = support::start_in(data.path(), |_| {}).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let login = Request::Auth { name: None, password: "alice-password".into() };
    assert!(alice.request(&login, b"").await.is_ok());
    let mut bob = NativeClient::join(server.native, "somebody").await;
    assert!(bob
        .request(&Request::Auth { name: Some("bob".into()), password: "bob-password".into() }, b"")
        .await
        .is_ok());
    assert!(bob
        .request(&Request::Whisper { to: "alice".into(), reply_to: None, tags: None }, b"after the restart")
        .await
        .is_ok());
    let kept = page(alice.request(&conversation(None, None, None), b"").await);
    assert_eq!(kept.len(), 7);
    assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "the numbering continues: {kept:?}");
    server.shutdown().await;
}
