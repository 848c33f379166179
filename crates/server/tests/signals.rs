//! Replies, reactions, typing and client tags: the same typed data on every gateway.
//! IRC clients that asked for `message-tags` see `+draft/reply`, `+draft/react` and
//! `+typing` (on PRIVMSG and TAGMSG), native clients see fields and events; replies and
//! client tags are kept with the message and come back in history after a restart;
//! reactions and typing are relayed live only, to whoever may see the room.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg};
use support::{IrcClient, NativeClient};

fn no_flood(c: &mut parley_server::Config) {
    c.limits.flood_rate_per_sec = 0;
}

async fn say(client: &mut NativeClient, text: &str, reply_to: Option<u64>) -> Result<Reply, ServerMsg> {
    let request = Request::Say { room: "dev".into(), reply_to, tags: None };
    client.request(&request, text.as_bytes()).await
}

fn code(answer: Result<Reply, ServerMsg>) -> ErrorCode {
    match answer {
        Err(ServerMsg::Error { code, .. }) => code,
        other => panic!("refused, got {other:?}"),
    }
}

/// The value of `tag` in an IRC line's tag section.
fn tag<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let section = line.strip_prefix('@')?.split(' ').next()?;
    section.split(';').find_map(|t| {
        let (key, value) = t.split_once('=').unwrap_or((t, ""));
        (key == tag).then_some(value)
    })
}

#[tokio::test]
async fn replies_and_client_tags_reach_every_gateway_and_survive_a_restart() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    let irc = server.irc.expect("an IRC listener");
    // alice opens dev logged in, so it is registered and its history outlives it.
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: "alice-password".into() }, b"").await.is_ok());
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let mut ivy = IrcClient::join(irc, "ivy", "message-tags echo-message server-time").await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;
    let mut otto = IrcClient::join(irc, "otto", "").await;
    otto.send("JOIN #dev").await;
    otto.expect(" 366 otto #dev ").await;

    let Ok(Reply::Said { seq: first, .. }) = say(&mut alice, "shall we ship?", None).await else {
        panic!("said");
    };
    ivy.expect("PRIVMSG #dev :shall we ship?").await;
    otto.expect("PRIVMSG #dev :shall we ship?").await;

    // An IRC reply with a client tag: the native member sees both as fields, the
    // sender's echo carries them, a client without message-tags sees the plain text.
    ivy.send(&format!("@+draft/reply=dev/{first};+example.com/mood=sure\\sthing PRIVMSG #dev :yes")).await;
    let echo = ivy.expect("PRIVMSG #dev :yes").await;
    assert_eq!(tag(&echo, "+draft/reply"), Some(format!("dev/{first}").as_str()), "{echo}");
    assert_eq!(tag(&echo, "+example.com/mood"), Some("sure\\sthing"), "{echo}");
    let (reply_to, tags) = alice
        .expect(|r| match &r.msg {
            ServerMsg::Message { reply_to, tags, .. } if r.text() == "yes" => Some((*reply_to, tags.clone())),
            _ => None,
        })
        .await;
    assert_eq!(reply_to, Some(first));
    assert_eq!(tags, Some([("example.com/mood".to_owned(), "sure thing".to_owned())].into()));
    let plain = otto.expect("PRIVMSG #dev :yes").await;
    assert!(!plain.starts_with('@'), "no tags without message-tags: {plain}");

    // A native reply reaches IRC as +draft/reply.
    let Ok(Reply::Said { seq: second, .. }) = say(&mut alice, "then ship it", Some(first)).await else {
        panic!("said");
    };
    let line = ivy.expect("PRIVMSG #dev :then ship it").await;
    assert_eq!(tag(&line, "+draft/reply"), Some(format!("dev/{first}").as_str()), "{line}");
    // A reply to a message the room has not had is refused.
    assert_eq!(code(say(&mut alice, "to the future", Some(second + 100)).await), ErrorCode::NoSuchMessage);
    assert_eq!(code(say(&mut alice, "to nothing", Some(0)).await), ErrorCode::NoSuchMessage);

    server.shutdown().await;
    let server = support::start_in(data.path(), no_flood).await;
    let mut alice = NativeClient::connect(server.native).await;
    let hello = Request::Hello { version: 1, nick: "alice".into(), password: Some("alice-password".into()) };
    assert!(matches!(alice.request(&hello, b"").await, Ok(Reply::Welcome { .. })));
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let request = Request::History { room: Some("dev".into()), before: None, after: None, limit: Some(10) };
    let Ok(Reply::History { messages, .. }) = alice.request(&request, b"").await else { panic!("history") };
    let kept: Vec<(&str, Option<u64>, bool)> =
        messages.iter().map(|m| (m.text.as_str(), m.reply_to, m.tags.is_some())).collect();
    assert_eq!(
        kept,
        [("shall we ship?", None, false), ("yes", Some(first), true), ("then ship it", Some(first), false)]
    );
    let mut ivy = IrcClient::join(
        server.irc.expect("an IRC listener"),
        "ivy",
        "message-tags batch server-time draft/chathistory",
    )
    .await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;
    ivy.send("CHATHISTORY LATEST #dev * 10").await;
    let replayed = ivy.collect_until("BATCH -").await;
    let yes = replayed.iter().find(|l| l.ends_with("PRIVMSG #dev :yes")).expect("replayed");
    assert_eq!(tag(yes, "+draft/reply"), Some(format!("dev/{first}").as_str()), "{yes}");
    assert_eq!(tag(yes, "+example.com/mood"), Some("sure\\sthing"), "{yes}");
    server.shutdown().await;
}

#[tokio::test]
async fn reactions_and_typing_are_relayed_live_between_gateways() {
    let server = support::start_with(no_flood).await;
    let irc = server.irc.expect("an IRC listener");
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let mut ivy = IrcClient::join(irc, "ivy", "message-tags echo-message").await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;
    let mut otto = IrcClient::join(irc, "otto", "").await;
    otto.send("JOIN #dev").await;
    otto.expect(" 366 otto #dev ").await;
    let Ok(Reply::Said { seq, .. }) = say(&mut alice, "lunch?", None).await else { panic!("said") };
    ivy.expect("PRIVMSG #dev :lunch?").await;
    otto.expect("PRIVMSG #dev :lunch?").await;

    // IRC typing and reaction reach the native member as events.
    ivy.send("@+typing=active TAGMSG #dev").await;
    let echo = ivy.expect("TAGMSG #dev").await;
    assert_eq!(tag(&echo, "+typing"), Some("active"), "echoed: {echo}");
    let state = alice
        .expect(|r| match &r.msg {
            ServerMsg::Typing { room, from, state, .. } => Some((room.clone(), from.clone(), state.clone())),
            _ => None,
        })
        .await;
    assert_eq!(state, (Some("dev".to_owned()), "ivy".to_owned(), "active".to_owned()));
    ivy.send(&format!("@+draft/react=🍕;+draft/reply=dev/{seq} TAGMSG #dev")).await;
    ivy.expect("TAGMSG #dev").await;
    let reaction = alice
        .expect(|r| match &r.msg {
            ServerMsg::Reaction { seq, from, reaction, removed, .. } => {
                Some((*seq, from.clone(), reaction.clone(), *removed))
            }
            _ => None,
        })
        .await;
    assert_eq!(reaction, (seq, "ivy".to_owned(), "🍕".to_owned(), false));

    // Native reaction and typing reach IRC as TAGMSG, only for message-tags clients.
    let react = Request::React { room: Some("dev".into()), with: None, seq, reaction: "👍".into(), remove: true };
    assert!(matches!(alice.request(&react, b"").await, Ok(Reply::Signalled { .. })));
    let line = ivy.expect("TAGMSG #dev").await;
    assert!(line.contains(":alice!"), "{line}");
    assert_eq!(tag(&line, "+draft/unreact"), Some("👍"), "{line}");
    assert_eq!(tag(&line, "+draft/reply"), Some(format!("dev/{seq}").as_str()), "{line}");
    let typing = Request::Typing { room: Some("dev".into()), to: None, state: "done".into() };
    assert!(alice.request(&typing, b"").await.is_ok());
    assert_eq!(tag(&ivy.expect("TAGMSG #dev").await, "+typing"), Some("done"));
    // otto asked for no tags: the next thing he reads is the next message.
    assert!(say(&mut alice, "after the signals", None).await.is_ok());
    let next = otto.next_line().await.expect("a line");
    assert!(next.ends_with("PRIVMSG #dev :after the signals"), "otto saw {next:?}");

    // Reactions name a delivered message; reactions and states are checked.
    let future =
        Request::React { room: Some("dev".into()), with: None, seq: seq + 50, reaction: "👍".into(), remove: false };
    assert_eq!(code(alice.request(&future, b"").await), ErrorCode::NoSuchMessage);
    let long = Request::React { room: Some("dev".into()), with: None, seq, reaction: "x".repeat(65), remove: false };
    assert_eq!(code(alice.request(&long, b"").await), ErrorCode::BadReaction);
    let odd = Request::Typing { room: Some("dev".into()), to: None, state: "thinking".into() };
    assert_eq!(code(alice.request(&odd, b"").await), ErrorCode::BadRequest);
    let elsewhere = Request::Typing { room: Some("ops".into()), to: None, state: "active".into() };
    assert!(matches!(code(alice.request(&elsewhere, b"").await), ErrorCode::NotInRoom | ErrorCode::NoSuchRoom));

    // In a conversation: typing reaches only the other party.
    let private = Request::Typing { room: None, to: Some("ivy".into()), state: "active".into() };
    assert!(alice.request(&private, b"").await.is_ok());
    let line = ivy.expect("TAGMSG ivy").await;
    assert_eq!(tag(&line, "+typing"), Some("active"), "{line}");
    ivy.send("@+typing=paused TAGMSG alice").await;
    let state = alice
        .expect(|r| match &r.msg {
            ServerMsg::Typing { room: None, from, state, .. } => Some((from.clone(), state.clone())),
            _ => None,
        })
        .await;
    assert_eq!(state, ("ivy".to_owned(), "paused".to_owned()));
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_or_malformed_client_tags_are_refused_and_the_session_goes_on() {
    let server = support::start_with(no_flood).await;
    let irc = server.irc.expect("an IRC listener");
    let mut ivy = IrcClient::join(irc, "ivy", "message-tags echo-message").await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;

    // Client tag data over 4094 bytes (within the 8191 bytes of the whole section).
    let big = format!("@+example.com/big={} PRIVMSG #dev :hello", "v".repeat(4100));
    ivy.send(&big).await;
    ivy.expect(" 417 ivy :Input line was too long").await;
    ivy.send("@+draft/react=\\s;+draft/reply=dev/1 TAGMSG #dev").await;
    ivy.expect("FAIL").await;
    // A TAGMSG to nowhere, and one without tags (`412`, as InspIRCd answers).
    ivy.send("@+typing=active TAGMSG #nowhere").await;
    let refused = ivy.next_line().await.expect("a line");
    assert!(refused.contains(" 403 ") || refused.contains(" 401 ") || refused.contains(" 442 "), "{refused}");
    ivy.send("TAGMSG #dev").await;
    ivy.expect(" 412 ivy :No text to send").await;
    // Tags from a client that did not ask for message-tags are not relayed.
    let mut otto = IrcClient::join(irc, "otto", "").await;
    otto.send("JOIN #dev").await;
    otto.expect(" 366 otto #dev ").await;
    otto.send("@+typing=active TAGMSG #dev").await;
    otto.send("@+example.com/x=1 PRIVMSG #dev :untagged").await;
    ivy.expect("JOIN #dev").await;
    let relayed = ivy.next_line().await.expect("a line");
    assert!(relayed.ends_with("PRIVMSG #dev :untagged"), "no TAGMSG before the message: {relayed}");
    assert!(tag(&relayed, "+example.com/x").is_none(), "{relayed}");
    otto.expect_nothing_more().await;

    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    let tags = (0..40).map(|i| (format!("t{i}"), String::new())).collect();
    let request = Request::Say { room: "dev".into(), reply_to: None, tags: Some(tags) };
    assert_eq!(code(alice.request(&request, b"too many").await), ErrorCode::BadTags);
    let request =
        Request::Say { room: "dev".into(), reply_to: None, tags: Some([("bad name".into(), "v".into())].into()) };
    assert_eq!(code(alice.request(&request, b"bad").await), ErrorCode::BadTags);
    assert!(say(&mut alice, "still here", None).await.is_ok());
    ivy.expect("PRIVMSG #dev :still here").await;
    server.shutdown().await;
}
