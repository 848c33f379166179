//! Search over a real SQLite file: only what the user may see, filters, paging, the way
//! back to a result's neighbours, and clear errors.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, SearchHit, ServerMsg};
use support::{LineClient, NativeClient};

async fn found(client: &mut NativeClient, query: &str, page: Option<u32>) -> Vec<SearchHit> {
    match client.request(&Request::Search { query: query.into(), page }, b"").await {
        Ok(Reply::Found { results, .. }) => results,
        other => panic!("expected results, got {other:?}"),
    }
}

fn texts(hits: &[SearchHit]) -> Vec<&str> {
    let mut texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
    texts.sort_unstable();
    texts
}

#[tokio::test]
async fn users_find_what_they_may_see_and_nothing_else() {
    let server = support::start().await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: "correct-horse".into() }, b"").await.is_ok());
    let mut bob = LineClient::join(server.line, "bob").await;
    let say = |room: &str| Request::Say { room: room.into(), reply_to: None, tags: None };
    assert!(alice.request(&say("lobby"), b"the deploy starts at nine").await.is_ok());
    assert!(alice.request(&say("lobby"), b"coffee first").await.is_ok());
    assert!(alice.request(&Request::Join { room: "ops".into() }, b"").await.is_ok());
    assert!(alice.request(&say("ops"), b"deploy password is hunter2").await.is_ok());
    assert!(alice
        .request(&Request::Whisper { to: "bob".into(), reply_to: None, tags: None }, b"private deploy notes")
        .await
        .is_ok());
    bob.expect_line("[private] alice: private deploy notes").await;

    // bob is in the lobby only, a guest: the lobby's messages, and the private message
    // to him (to this session of his), not ops'.
    bob.send("/search DEPLOY").await;
    bob.expect_line("--- Found for \"DEPLOY\", page 1: ---").await;
    let (_, mut hits) =
        bob.expect_line("--- End of results: /context SEQ shows a message among its neighbours ---").await;
    hits.sort();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits[0].ends_with("] [private to bob] alice: private deploy notes"), "{hits:?}");
    assert!(hits[1].ends_with("] lobby #1 alice: the deploy starts at nine"), "{hits:?}");
    bob.send("/search deploy in:ops").await;
    bob.expect_line("Error: You are not in ops.").await;
    bob.send("/search from:alice").await;
    bob.expect_line("Error: Give at least one word to look for.").await;
    bob.send("/search").await;
    bob.expect_line("Usage: /search WORDS [from:NICK] [in:ROOM] [before:YYYY-MM-DD] [after:YYYY-MM-DD] [page:N]").await;
    bob.send("/search deploy after:2999-01-01").await;
    bob.expect_line("No messages found for \"deploy after:2999-01-01\" (page 1).").await;

    // alice, logged in and in both rooms, also finds her private message.
    let all = found(&mut alice, "deploy", None).await;
    assert_eq!(texts(&all), ["deploy password is hunter2", "private deploy notes", "the deploy starts at nine"]);
    let private = all.iter().find(|h| h.room.is_none()).expect("the whisper");
    assert_eq!((private.from.as_str(), private.to.as_deref()), ("alice", Some("bob")));
    let ops = found(&mut alice, "deploy in:ops", None).await;
    assert_eq!(texts(&ops), ["deploy password is hunter2"]);
    assert!(found(&mut alice, "deploy", Some(2)).await.is_empty(), "one page holds everything");
    let bad = alice.request(&Request::Search { query: "deploy before:soon".into(), page: None }, b"").await;
    assert!(matches!(bad, Err(ServerMsg::Error { code: ErrorCode::BadSearch, .. })), "{bad:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn results_page_and_lead_back_to_their_neighbours() {
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for n in 1..=45 {
        let text = if n % 2 == 1 { format!("needle {n}") } else { format!("hay {n}") };
        assert!(alice
            .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, text.as_bytes())
            .await
            .is_ok());
    }
    let first = found(&mut alice, "needle", None).await;
    let second = found(&mut alice, "needle", Some(2)).await;
    assert_eq!((first.len(), second.len()), (20, 3), "23 needles, 20 to a page");
    let mut seqs: Vec<u64> = first.iter().chain(&second).map(|h| h.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=45).step_by(2).collect::<Vec<_>>());

    let mut bob = LineClient::join(server.line, "bob").await;
    bob.send("/context 21").await;
    bob.expect_line("--- History of lobby: 11 messages, #16 to #26 ---").await;
    support::assert_stamped(&bob.next_line().await.expect("a line"), "alice: hay 16");
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_store_there_is_nothing_to_search() {
    let server = support::start_with(|c| c.history.store = false).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let refused = alice.request(&Request::Search { query: "anything".into(), page: None }, b"").await;
    assert!(matches!(refused, Err(ServerMsg::Error { code: ErrorCode::HistoryUnavailable, .. })), "{refused:?}");
    server.shutdown().await;
}
