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
    encode_request(3, &Request::Say { room: "lobby".into() }, b"cut short", &mut frame).expect("encodes");
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
    native_user.request(&Request::Say { room: "lobby".into() }, b"all quiet").await.expect("said");
    line_user.expect_line("solid: all quiet").await;
    server.shutdown().await;
}
