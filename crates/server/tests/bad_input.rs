//! Bad input gets a clear error in the client's protocol, never a panic, and never
//! disturbs anyone else.

mod support;

use bytes::{BufMut, BytesMut};
use parley_proto::msg::{encode_request, ErrorCode, Reply, Request, ServerMsg};
use support::{LineClient, NativeClient};

fn raw_frame(header: &[u8], payload: &[u8]) -> BytesMut {
    let mut frame = BytesMut::new();
    frame.put_u16(u16::try_from(header.len()).expect("short"));
    frame.extend_from_slice(header);
    frame.extend_from_slice(payload);
    frame
}

fn error_of(received: &parley_proto::msg::Received) -> Option<(Option<u64>, ErrorCode)> {
    match &received.msg {
        ServerMsg::Error { id, code, .. } => Some((*id, *code)),
        _ => None,
    }
}

/// A bystander in the lobby who must keep chatting normally through all of it.
async fn bystanders(server: &support::TestServer) -> (LineClient, NativeClient) {
    let line = LineClient::join(server.line, "bystander").await;
    let native = NativeClient::join(server.native, "witness").await;
    (line, native)
}

async fn still_chatting(line: &mut LineClient, native: &mut NativeClient, text: &str) {
    native
        .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, text.as_bytes())
        .await
        .expect("said");
    line.expect_line(&format!("witness: {text}")).await;
}

#[tokio::test]
async fn malformed_json_is_answered_then_the_connection_closes() {
    let server = support::start().await;
    let (mut line, mut native) = bystanders(&server).await;
    let mut bad = NativeClient::join(server.native, "badjson").await;
    bad.send_raw(&raw_frame(b"{\"type\": \"say\", \"room\": ", b"")).await;
    let last = bad.expect_closed().await;
    assert_eq!(last.iter().filter_map(error_of).collect::<Vec<_>>(), vec![(None, ErrorCode::BadHeader)]);
    line.expect_line("badjson has left the chat (protocol error).").await;
    still_chatting(&mut line, &mut native, "after bad json").await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_types_and_bad_fields_are_answered_and_the_session_goes_on() {
    let server = support::start().await;
    let mut client = NativeClient::join(server.native, "curious").await;
    client.send_raw(&raw_frame(br#"{"type":"dance","id":41}"#, b"")).await;
    client.send_raw(&raw_frame(br#"{"id":42}"#, b"")).await;
    client.send_raw(&raw_frame(br#"{"type":"join","id":43,"room":7}"#, b"")).await;
    let invalid_text = {
        let mut frame = BytesMut::new();
        encode_request(
            44,
            &Request::Say { room: "lobby".into(), reply_to: None, tags: None },
            &[0xff, 0xfe, b'x'],
            &mut frame,
        )
        .expect("encodes");
        frame
    };
    client.send_raw(&invalid_text).await;
    for (id, code) in [
        (41, ErrorCode::UnknownType),
        (42, ErrorCode::UnknownType),
        (43, ErrorCode::BadRequest),
        (44, ErrorCode::BadPayload),
    ] {
        let got = client.expect(error_of).await;
        assert_eq!(got, (Some(id), code));
    }
    assert_eq!(client.request(&Request::Ping, b"").await, Ok(Reply::Pong));
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_payload_is_refused_and_skipped() {
    let server = support::start_with(|c| c.limits.max_frame_payload = 1024).await;
    let (mut line, mut native) = bystanders(&server).await;
    let mut big = NativeClient::join(server.native, "big").await;
    let mut frame = BytesMut::new();
    encode_request(7, &Request::Say { room: "lobby".into(), reply_to: None, tags: None }, &[b'a'; 5000], &mut frame)
        .expect("encodes");
    // Split the payload across writes: the server skips it as it arrives.
    big.send_raw(&frame[..1000]).await;
    big.send_raw(&frame[1000..]).await;
    assert_eq!(big.expect(error_of).await, (Some(7), ErrorCode::PayloadTooLarge));
    assert_eq!(big.request(&Request::Ping, b"").await, Ok(Reply::Pong));
    still_chatting(&mut line, &mut native, "after a big payload").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_header_claiming_four_gibibytes_is_refused_before_any_arrives() {
    let server = support::start().await;
    let mut liar = NativeClient::join(server.native, "liar").await;
    liar.send_raw(&raw_frame(br#"{"type":"say","id":9,"room":"lobby","content-length":4294967296}"#, b"x")).await;
    assert_eq!(liar.expect(error_of).await, (Some(9), ErrorCode::PayloadTooLarge));
    server.shutdown().await;
}

#[tokio::test]
async fn a_header_over_the_limit_closes_the_connection() {
    let server = support::start_with(|c| c.limits.max_frame_header = 256).await;
    let (mut line, mut native) = bystanders(&server).await;
    let mut client = NativeClient::join(server.native, "verbose").await;
    let long_room = format!(r#"{{"type":"join","id":3,"room":"{}"}}"#, "r".repeat(300));
    client.send_raw(&raw_frame(long_room.as_bytes(), b"")).await;
    let last = client.expect_closed().await;
    assert_eq!(last.iter().filter_map(error_of).collect::<Vec<_>>(), vec![(None, ErrorCode::HeaderTooLong)]);
    still_chatting(&mut line, &mut native, "after a long header").await;
    server.shutdown().await;
}

#[tokio::test]
async fn bytes_that_are_not_the_protocol_at_all_are_refused() {
    let server = support::start().await;
    let (mut line, mut native) = bystanders(&server).await;
    for junk in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"\x00\x05hello"]
    {
        let mut client = NativeClient::connect(server.native).await;
        client.send_raw(junk).await;
        let last = client.expect_closed().await;
        let errors: Vec<_> = last.iter().filter_map(error_of).collect();
        assert_eq!(errors.len(), 1, "one error for {junk:?}: {errors:?}");
        assert!(matches!(errors[0].1, ErrorCode::HeaderTooLong | ErrorCode::BadHeader), "{errors:?}");
    }
    still_chatting(&mut line, &mut native, "after junk").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_vanishes_mid_frame_leaves_cleanly() {
    let server = support::start().await;
    let (mut line, mut native) = bystanders(&server).await;
    let mut client = NativeClient::join(server.native, "ghost").await;
    let mut frame = BytesMut::new();
    encode_request(
        5,
        &Request::Say { room: "lobby".into(), reply_to: None, tags: None },
        b"never finished",
        &mut frame,
    )
    .expect("encodes");
    client.send_raw(&frame[..frame.len() - 4]).await;
    drop(client);
    line.expect_line("ghost has left the chat.").await;
    // A line client that leaves mid-line does too; its last words arrive whole.
    let mut talker = LineClient::join(server.line, "talker").await;
    line.expect_line("talker has joined the chat!").await;
    talker.send_raw(b"last words without a newline").await;
    drop(talker);
    line.expect_line("talker: last words without a newline").await;
    line.expect_line("talker has left the chat.").await;
    still_chatting(&mut line, &mut native, "after ghosts").await;
    server.shutdown().await;
}

#[tokio::test]
async fn line_protocol_bad_input_is_answered_and_the_session_goes_on() {
    let server = support::start_with(|c| c.limits.max_line_bytes = 100).await;
    let (mut line, mut native) = bystanders(&server).await;

    let mut client = LineClient::connect(server.line).await;
    client.expect_prompt().await;
    client.send(&"n".repeat(150)).await;
    assert_eq!(
        client.next_line().await.as_deref(),
        Some("Error: that line was longer than 100 bytes and was dropped.")
    );
    client.expect_prompt().await;
    client.send_raw(b"\xff\xfename\n").await;
    assert_eq!(client.next_line().await.as_deref(), Some("Error: that line was not valid UTF-8 text and was dropped."));
    client.expect_prompt().await;
    client.send("rough").await;
    client.expect_line("Welcome to the chat, rough!").await;
    line.expect_line("rough has joined the chat!").await;

    client.send(&"x".repeat(5000)).await;
    client.send_raw(b"caf\xc3\n").await;
    client.send_raw(b"\x00\x01\x02\x1b[31m binary\n").await;
    client.send("still here").await;
    assert_eq!(
        client.next_line().await.as_deref(),
        Some("Error: that line was longer than 100 bytes and was dropped.")
    );
    assert_eq!(client.next_line().await.as_deref(), Some("Error: that line was not valid UTF-8 text and was dropped."));
    line.expect_line("rough: \u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}[31m binary").await;
    line.expect_line("rough: still here").await;
    still_chatting(&mut line, &mut native, "after rough input").await;
    server.shutdown().await;
}
