//! Hostile and broken clients: half-closed sockets, resets mid-frame, random bytes.
//! None of them may disturb anyone else.

mod support;

use bytes::BytesMut;
use parley_proto::msg::{encode_request, Request};
use support::{LineClient, NativeClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_half_closed_client_still_gets_its_answers() {
    let server = support::start().await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut client = LineClient::join(server.line, "halfway").await;
    watcher.expect_line("halfway has joined the chat!").await;
    client.send("/who").await;
    client.send("parting words").await;
    client.writer.shutdown().await.expect("half-close");
    let rest = client.expect_closed().await;
    assert_eq!(rest, vec!["Users in lobby (2): halfway, watcher".to_owned()]);
    watcher.expect_line("halfway: parting words").await;
    watcher.expect_line("halfway has left the chat.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_reset_in_the_middle_of_a_frame_only_ends_that_session() {
    let server = support::start().await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut client = NativeClient::join(server.native, "resetter").await;
    let mut frame = BytesMut::new();
    encode_request(3, &Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"cut short", &mut frame)
        .expect("encodes");
    client.send_raw(&frame[..frame.len() / 2]).await;
    drop(client);
    watcher.expect_line("resetter has left the chat.").await;

    // SO_LINGER 0: closing sends RST instead of FIN, in the middle of a frame.
    let mut raw = TcpStream::connect(server.native).await.expect("connects");
    let mut hello = BytesMut::new();
    let request = Request::Hello { version: parley_proto::msg::PROTOCOL_VERSION, nick: "rst".into(), password: None };
    encode_request(1, &request, b"", &mut hello).expect("encodes");
    raw.write_all(&hello).await.expect("hello");
    watcher.expect_line("rst has joined the chat!").await;
    raw.write_all(&frame[..7]).await.expect("partial");
    socket2::SockRef::from(&raw).set_linger(Some(std::time::Duration::ZERO)).expect("linger");
    drop(raw);
    watcher.expect_line("rst has left the chat (connection error).").await;
    watcher.expect_nothing_more().await;
    server.shutdown().await;
}

/// A small deterministic generator, so a failure can be replayed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn random_bytes_on_every_port_never_disturb_anyone() {
    let server = support::start_with(|c| c.limits.handshake_timeout_secs = 2).await;
    let mut line_user = LineClient::join(server.line, "steady").await;
    let mut native_user = NativeClient::join(server.native, "solid").await;
    for seed in 1..=8u64 {
        for addr in [server.line, server.native] {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            let _ = stream.write_all(&noise(seed, 64 * 1024)).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let closed = tokio::time::timeout(support::WAIT, stream.read_to_end(&mut sink)).await;
            assert!(closed.is_ok(), "the server closes a connection that sent noise (seed {seed})");
        }
        // Noise after a successful registration, too.
        let mut registered = LineClient::join(server.line, &format!("noisy{seed}")).await;
        registered.send_raw(&noise(seed + 100, 16 * 1024)).await;
        registered.send("\n/quit").await;
        let rest = registered.expect_closed().await;
        assert_eq!(rest.last().map(String::as_str), Some("Goodbye!"), "seed {seed}");
    }
    native_user
        .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"all quiet")
        .await
        .expect("said");
    line_user.expect_line("solid: all quiet").await;
    server.shutdown().await;
}

/// Text that would drive a terminal: an OSC 52 clipboard write (ending in BEL), a screen
/// clear, and a CSI in its 8-bit C1 form.
const HOSTILE: &str = "\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J \u{9b}31m";

/// What is left of [`HOSTILE`] on a terminal: the controls replaced, visibly.
const DEFUSED: &str = "\u{FFFD}]52;c;ZWNobyBwd25lZA==\u{FFFD} \u{FFFD}[2J \u{FFFD}31m";

fn assert_printable(lines: &[String]) {
    for line in lines {
        assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "a control character reached a terminal: {line:?}");
    }
}

#[tokio::test]
async fn text_from_others_reaches_line_users_without_control_characters() {
    let data = support::tempdir::TempDir::new();
    {
        use parley_hub::Nick;
        support::with_owner_store(data.path(), |store| {
            let root = Nick::parse("root", 32).expect("nick");
            let root = store.register(&root, "root-password").expect("registers").expect("a new account");
            assert!(store.set_admin(&root, true).expect("grants"));
        });
    }
    let server = support::start_in(data.path(), |c| c.limits.flood_rate_per_sec = 0).await;
    let mut root = NativeClient::join(server.native, "someone").await;
    let login = Request::Auth { name: Some("root".into()), password: "root-password".into() };
    root.request(&login, b"").await.expect("logged in");
    let mut victim = LineClient::connect_from([127, 0, 0, 2], server.line).await;
    victim.expect_prompt().await;
    victim.send("victim").await;
    let mut seen = victim.expect_line("Welcome to the chat, victim!").await.1;
    let mut read = |victim_seen: (String, Vec<String>)| {
        seen.extend(victim_seen.1);
        seen.push(victim_seen.0);
    };

    let dev = || Some("dev".to_owned());
    let hostile = || Some(HOSTILE.to_owned());
    root.request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, HOSTILE.as_bytes())
        .await
        .expect("said");
    read(victim.expect_line(&format!("root: {DEFUSED}")).await);
    root.request(&Request::Away { message: hostile() }, b"").await.expect("away");
    victim.send("/msg root are you there?").await;
    read(victim.expect_line(&format!("root is away: {DEFUSED}")).await);
    root.request(&Request::Join { room: "dev".into() }, b"").await.expect("joined");
    root.request(&Request::Topic { room: dev(), topic: hostile() }, b"").await.expect("topic set");
    victim.send("/join dev").await;
    read(victim.expect_line(&format!("Topic: {DEFUSED}")).await);
    root.request(&Request::Kick { room: dev(), nick: "victim".into(), reason: hostile() }, b"").await.expect("kicked");
    read(victim.expect_line(&format!("victim was kicked from dev (by root: {DEFUSED}).")).await);
    let ban = Request::Ban { room: dev(), mask: "victim".into(), seconds: None, reason: hostile() };
    root.request(&ban, b"").await.expect("banned");
    victim.send("/join dev").await;
    read(victim.expect_line(&format!("Error: You are banned from dev: {DEFUSED}.")).await);
    // Off the server: the victim is disconnected, told why, and the next connection
    // from that address is refused with the reason.
    let ban = Request::ServerBan { mask: "127.0.0.2".into(), seconds: None, reason: hostile() };
    root.request(&ban, b"").await.expect("banned");
    seen.extend(victim.expect_closed().await);
    let mut again = LineClient::connect_from([127, 0, 0, 2], server.line).await;
    again.expect_prompt().await;
    again.send("victim").await;
    let refused = again.expect_closed().await;
    assert_eq!(refused, [format!("Error: You are banned from this server: {DEFUSED}.")]);
    seen.extend(refused);
    assert_printable(&seen);
    server.shutdown().await;
}
