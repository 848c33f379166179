//! Deleting messages: the author deletes their own, an operator anyone's, nobody else
//! anything; every gateway is told in its own words (native `deleted`, IRC `REDACT`
//! with `draft/message-redaction` or a notice without, a line for line users), and the
//! message leaves history, search and what newcomers are shown.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg};
use support::{IrcClient, LineClient, NativeClient};

fn no_flood(c: &mut parley_server::Config) {
    c.limits.flood_rate_per_sec = 0;
}

async fn say(client: &mut NativeClient, text: &str) -> u64 {
    match client.request(&Request::Say { room: "dev".into(), reply_to: None, tags: None }, text.as_bytes()).await {
        Ok(Reply::Said { seq, .. }) => seq,
        other => panic!("said, got {other:?}"),
    }
}

async fn delete(client: &mut NativeClient, seq: u64, reason: Option<&str>) -> Result<Reply, ServerMsg> {
    let request = Request::Delete { room: "dev".into(), seq, reason: reason.map(str::to_owned) };
    client.request(&request, b"").await
}

fn code(answer: Result<Reply, ServerMsg>) -> ErrorCode {
    match answer {
        Err(ServerMsg::Error { code, .. }) => code,
        other => panic!("refused, got {other:?}"),
    }
}

async fn history(client: &mut NativeClient) -> Vec<(u64, String)> {
    let request = Request::History { room: Some("dev".into()), before: None, after: None, limit: Some(50) };
    match client.request(&request, b"").await {
        Ok(Reply::History { messages, .. }) => messages.into_iter().map(|m| (m.seq, m.text)).collect(),
        other => panic!("history, got {other:?}"),
    }
}

#[tokio::test]
async fn authors_and_operators_delete_and_every_gateway_is_told() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    let irc = server.irc.expect("an IRC listener");

    // alice creates dev logged in: she is its operator. bob is a guest member.
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: "alice-password".into() }, b"").await.is_ok());
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let mut bob = NativeClient::join(server.native, "bob").await;
    assert!(bob.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let mut lena = LineClient::join(server.line, "lena").await;
    lena.send("/join dev").await;
    lena.expect_line("You joined dev. Users here: @alice, bob, lena").await;
    let mut ivy = IrcClient::join(irc, "ivy", "draft/message-redaction echo-message message-tags").await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;
    let mut otto = IrcClient::join(irc, "otto", "").await;
    otto.send("JOIN #dev").await;
    otto.expect(" 366 otto #dev ").await;

    let kept = say(&mut bob, "kept").await;
    let oops = say(&mut bob, "a secret oops").await;
    let spam = say(&mut bob, "buy spam").await;
    lena.expect_line("bob: buy spam").await;
    ivy.expect(":buy spam").await;
    otto.expect(":buy spam").await;

    // Nobody else's words: a member who is not an operator is refused, as is a
    // message that does not exist.
    let mut carl = NativeClient::join(server.native, "carl").await;
    assert!(carl.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert_eq!(code(delete(&mut carl, oops, None).await), ErrorCode::NotAuthor);
    assert_eq!(code(delete(&mut bob, 10_000, None).await), ErrorCode::NoSuchMessage);
    assert_eq!(code(delete(&mut bob, u64::MAX, None).await), ErrorCode::NoSuchMessage);

    // The author deletes their own.
    assert_eq!(delete(&mut bob, oops, None).await, Ok(Reply::Deleted { room: "dev".into(), seq: oops }));
    let told = alice
        .expect(|r| match &r.msg {
            ServerMsg::Deleted { room, seq, by, author, .. } => Some((room.clone(), *seq, by.clone(), author.clone())),
            _ => None,
        })
        .await;
    assert_eq!(told, ("dev".to_owned(), oops, "bob".to_owned(), "bob".to_owned()));
    let (line, _) = lena.expect_line(&format!("(#{oops} in dev)")).await;
    assert!(line.contains("*** bob deleted their message of "), "{line}");
    ivy.expect(&format!(":bob!~bob@parley.local REDACT #dev dev/{oops}")).await;
    let notice = otto.expect(" NOTICE #dev :").await;
    assert!(notice.contains("bob deleted their message of "), "{notice}");
    assert_eq!(code(delete(&mut bob, oops, None).await), ErrorCode::NoSuchMessage, "gone once");

    // The operator deletes someone else's, with a reason; from IRC an operator uses
    // REDACT with the msgid the server tagged.
    assert!(delete(&mut alice, spam, Some("no ads")).await.is_ok());
    let (line, _) = lena.expect_line(&format!("(#{spam} in dev)")).await;
    assert!(line.contains("*** alice deleted bob's message of ") && line.contains(": no ads"), "{line}");
    ivy.expect(&format!(":alice!~alice@parley.local REDACT #dev dev/{spam} :no ads")).await;

    // It is gone from history, search and a newcomer's view; what is left stays.
    assert_eq!(history(&mut carl).await, vec![(kept, "kept".to_owned())]);
    let found = carl.request(&Request::Search { query: "secret".into(), page: None }, b"").await;
    assert!(matches!(&found, Ok(Reply::Found { results, .. }) if results.is_empty()), "{found:?}");
    let mut newcomer = NativeClient::join(server.native, "nina").await;
    match newcomer.request(&Request::Join { room: "dev".into() }, b"").await {
        Ok(Reply::Joined { history, .. }) => {
            assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [kept]);
        }
        other => panic!("joined, got {other:?}"),
    }

    // IRC: refusals are standard replies naming the target and msgid.
    let last = say(&mut bob, "mine").await;
    ivy.expect(":mine").await;
    ivy.send(&format!("REDACT #dev dev/{last}")).await;
    ivy.expect(&format!(" FAIL REDACT REDACT_FORBIDDEN #dev dev/{last} :")).await;
    ivy.send("REDACT #dev dev/99999").await;
    ivy.expect(" FAIL REDACT UNKNOWN_MSGID #dev dev/99999 :").await;
    ivy.send(&format!("REDACT #dev other/{last}")).await;
    ivy.expect(&format!(" FAIL REDACT UNKNOWN_MSGID #dev other/{last} :")).await;
    ivy.send(&format!("REDACT #elsewhere elsewhere/{last}")).await;
    ivy.expect(&format!(" FAIL REDACT INVALID_TARGET #elsewhere elsewhere/{last} :")).await;
    ivy.send("PRIVMSG #dev :my own words").await;
    let echoed = ivy.expect(":ivy!~ivy@parley.local PRIVMSG #dev :my own words").await;
    let mine = echoed.split("msgid=").nth(1).and_then(|t| t.split([';', ' ']).next()).expect("a msgid").to_owned();
    ivy.send(&format!("REDACT #dev {mine} :typo")).await;
    ivy.expect(&format!(":ivy!~ivy@parley.local REDACT #dev {mine} :typo")).await;
    let told = bob
        .expect(|r| match &r.msg {
            ServerMsg::Deleted { by, reason, .. } if by == "ivy" => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(told.as_deref(), Some("typo"));

    // A line user deletes their own by the number /search shows.
    lena.send("hello from lena").await;
    lena.send("/search lena").await;
    let (hit, _) = lena.expect_line("lena: hello from lena").await;
    let number = hit.split(" dev #").nth(1).and_then(|t| t.split(' ').next()).expect("a #SEQ").to_owned();
    lena.send(&format!("/delete {number}")).await;
    let (done, _) = lena.expect_line(" in dev.").await;
    assert!(done.contains(&format!("*** You deleted lena's message #{number} of ")), "{done}");
    let seq: u64 = number.parse().expect("a number");
    let told = alice
        .expect(|r| match &r.msg {
            ServerMsg::Deleted { seq: deleted, by, .. } if by == "lena" => Some(*deleted),
            _ => None,
        })
        .await;
    assert_eq!(told, seq);
    server.shutdown().await;
}

#[tokio::test]
async fn a_deleted_message_stays_gone_after_a_restart_and_its_seq_is_not_given_again() {
    let data = support::tempdir::TempDir::new();
    let last = {
        let server = support::start_in(data.path(), no_flood).await;
        let mut alice = NativeClient::join(server.native, "alice").await;
        assert!(alice.request(&Request::Register { password: "alice-password".into() }, b"").await.is_ok());
        assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
        say(&mut alice, "first").await;
        let last = say(&mut alice, "regret").await;
        let deleted = delete(&mut alice, last, None).await;
        assert!(deleted.is_ok(), "{deleted:?}");
        server.shutdown().await;
        last
    };
    let server = support::start_in(data.path(), no_flood).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Auth { name: None, password: "alice-password".into() }, b"").await.is_ok());
    match alice.request(&Request::Join { room: "dev".into() }, b"").await {
        Ok(Reply::Joined { history, .. }) => {
            assert_eq!(history.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["first"]);
        }
        other => panic!("joined, got {other:?}"),
    }
    assert_eq!(say(&mut alice, "again").await, last + 1, "the order goes on after the deleted message");
    server.shutdown().await;
}
