//! Names of every alphabet on every gateway (`[names] casemapping = "precis"`, the
//! default): `José` at the line prompt, `Zoë` in a native hello and `李雷` in IRC's NICK
//! meet in one room, and a look-alike of a name in use is refused as taken in each
//! protocol's words.

mod support;

use parley_proto::msg::{ErrorCode, Request, ServerMsg, PROTOCOL_VERSION};
use support::{IrcClient, LineClient, NativeClient};

fn hello(nick: &str) -> Request {
    Request::Hello { version: PROTOCOL_VERSION, nick: nick.into(), password: None }
}

#[tokio::test]
async fn jose_zoe_and_li_lei_chat_across_gateways() {
    let server = support::start().await;
    let irc = server.irc.expect("an IRC listener");
    let mut jose = LineClient::join(server.line, "José").await;
    let mut zoe = NativeClient::join(server.native, "Zoë").await;
    jose.expect_stamped("Zoë has joined the chat!").await;
    let mut lei = IrcClient::join(irc, "李雷", "").await;
    jose.expect_stamped("李雷 has joined lobby.").await;

    jose.send("¡hola a todos!").await;
    let heard =
        zoe.expect(|r| matches!(&r.msg, ServerMsg::Message { from, .. } if from == "José").then(|| r.text())).await;
    assert_eq!(heard, "¡hola a todos!");
    lei.expect(":José!").await;
    lei.send("PRIVMSG #lobby :你好").await;
    jose.expect_stamped("李雷: 你好").await;

    // IRC clients are told how names compare.
    let mut probe = IrcClient::connect(irc).await;
    probe.send("NICK probe").await;
    probe.send("USER probe 0 * :Probe").await;
    probe.expect(" CASEMAPPING=rfc8265 ").await;
    probe.expect(" UTF8ONLY ").await;

    // The same name, however it is typed, is taken.
    let mut other = LineClient::connect(server.line).await;
    other.expect_prompt().await;
    other.send("JOSÉ").await;
    assert_eq!(other.next_line().await.as_deref(), Some("The name JOSÉ is already taken; choose another."));
    server.shutdown().await;
}

#[tokio::test]
async fn a_lookalike_nick_is_taken_on_every_gateway() {
    let server = support::start().await;
    let irc = server.irc.expect("an IRC listener");
    let _alice = NativeClient::join(server.native, "alice").await;
    let cyrillic = "\u{430}lice";

    let mut line = LineClient::connect(server.line).await;
    line.expect_prompt().await;
    line.send(cyrillic).await;
    assert_eq!(line.next_line().await, Some(format!("The name {cyrillic} is already taken; choose another.")));

    let mut native = NativeClient::connect(server.native).await;
    match native.request(&hello(cyrillic), b"").await {
        Err(ServerMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::NickTaken),
        other => panic!("refused as taken, got {other:?}"),
    }

    let mut client = IrcClient::connect(irc).await;
    client.send(&format!("NICK {cyrillic}")).await;
    client.send("USER x 0 * :X").await;
    let refused = client.expect(" 433 ").await;
    assert!(refused.contains(&format!(" {cyrillic} :")), "{refused}");

    // A room that passes for an existing one is refused; the room itself is joined.
    let mut bob = IrcClient::join(irc, "bob", "").await;
    bob.send("JOIN #paris").await;
    bob.expect(" 366 bob #paris ").await;
    let mut carol = IrcClient::join(irc, "carol", "").await;
    carol.send("JOIN #p\u{430}ris").await;
    carol.expect(" 479 carol #p\u{430}ris :").await;
    carol.send("JOIN #PARIS").await;
    carol.expect(" 366 carol #paris ").await;
    server.shutdown().await;
}
