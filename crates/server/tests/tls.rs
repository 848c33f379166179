//! TLS on every listener kind, with the generated and with provided certificates.

mod support;

use std::process::Stdio;

use parley_proto::msg::{Reply, Request, ServerMsg};
use support::{LineClient, NativeClient};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[tokio::test]
async fn line_and_native_users_chat_over_tls_with_plain_users() {
    let server = support::start().await;
    let fingerprint = server.fingerprint.clone().expect("TLS is on");
    let mut plain = LineClient::join(server.line, "plain").await;

    let mut secure_line = LineClient::connect_tls(server.line_tls.expect("line+tls"), &fingerprint).await;
    secure_line.expect_prompt().await;
    secure_line.send("sealed").await;
    secure_line.expect_line("Welcome to the chat, sealed!").await;
    plain.expect_line("sealed has joined the chat!").await;

    let mut secure_native = NativeClient::connect_tls(server.native_tls.expect("native+tls"), &fingerprint).await;
    let hello = Request::Hello { version: parley_proto::msg::PROTOCOL_VERSION, nick: "vault".into(), password: None };
    assert!(matches!(secure_native.request(&hello, b"").await, Ok(Reply::Welcome { .. })));

    secure_line.send("over TLS").await;
    plain.expect_line("sealed: over TLS").await;
    let text = secure_native
        .expect(|r| matches!(&r.msg, ServerMsg::Message { from, .. } if from == "sealed").then(|| r.text()))
        .await;
    assert_eq!(text, "over TLS");
    plain.send("back in the clear").await;
    secure_line.expect_line("plain: back in the clear").await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_generated_certificate_is_kept_across_restarts() {
    let data = support::tempdir::TempDir::new();
    let dir = data.path().to_owned();
    let first = support::start_with(|c| c.data_dir = dir.clone()).await;
    let fingerprint = first.fingerprint.clone().expect("TLS is on");
    first.shutdown().await;
    assert!(data.path().join("tls/cert.pem").exists() && data.path().join("tls/key.pem").exists());
    let second = support::start_with(|c| c.data_dir = dir.clone()).await;
    assert_eq!(second.fingerprint.as_deref(), Some(fingerprint.as_str()));
    second.shutdown().await;
}

fn write_cert(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("generated");
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, generated.cert.pem()).expect("cert written");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("key written");
    (cert, key, support::tls::fingerprint(generated.cert.der()))
}

#[tokio::test]
async fn a_provided_certificate_is_used_and_reloaded_without_dropping_connections() {
    let files = support::tempdir::TempDir::new();
    let (cert, key, first) = write_cert(files.path(), "first");
    let (cert_in_use, key_in_use) = (files.path().join("live.crt"), files.path().join("live.key"));
    std::fs::copy(&cert, &cert_in_use).expect("copied");
    std::fs::copy(&key, &key_in_use).expect("copied");
    let server = support::start_with(|c| {
        c.tls.cert = Some(cert_in_use.clone());
        c.tls.key = Some(key_in_use.clone());
    })
    .await;
    assert_eq!(server.fingerprint.as_deref(), Some(first.as_str()));
    let line_tls = server.line_tls.expect("line+tls");
    let mut early = LineClient::connect_tls(line_tls, &first).await;
    early.expect_prompt().await;
    early.send("early").await;
    early.expect_line("Welcome to the chat, early!").await;

    let (cert, key, second) = write_cert(files.path(), "second");
    std::fs::copy(&cert, &cert_in_use).expect("copied");
    std::fs::copy(&key, &key_in_use).expect("copied");
    let tls = server.tls.clone().expect("TLS state");
    assert_eq!(tls.reload().expect("reloads"), second);

    let mut late = LineClient::connect_tls(line_tls, &second).await;
    late.expect_prompt().await;
    late.send("late").await;
    late.expect_line("Welcome to the chat, late!").await;
    early.expect_line("late has joined the chat!").await;
    early.send("still connected").await;
    late.expect_line("early: still connected").await;
    // The native listener serves the same, reloaded certificate.
    let mut native = NativeClient::connect_tls(server.native_tls.expect("native+tls"), &second).await;
    assert!(native.request(&Request::Hello { version: 1, nick: "framed".into(), password: None }, b"").await.is_ok());
    early.expect_line("framed has joined the chat!").await;

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&key_in_use, "garbage").expect("written");
    assert!(tls.reload().is_err());
    let mut later = LineClient::connect_tls(line_tls, &second).await;
    later.expect_prompt().await;
    server.shutdown().await;
}

#[tokio::test]
async fn plain_text_to_a_tls_listener_and_tls_to_a_plain_one_are_refused() {
    let server = support::start().await;
    let mut bystander = LineClient::join(server.line, "bystander").await;

    let mut plain_to_tls =
        tokio::net::TcpStream::connect(server.native_tls.expect("native+tls")).await.expect("connects");
    plain_to_tls.write_all(b"hello, is this thing on?\n").await.expect("writes");
    let mut sink = Vec::new();
    let read = tokio::time::timeout(support::WAIT, plain_to_tls.read_to_end(&mut sink)).await.expect("closed in time");
    assert!(read.is_err() || !sink.starts_with(b"Please"), "no chat over a failed handshake");

    let fingerprint = server.fingerprint.clone().expect("TLS is on");
    let connector = support::tls::pinned_connector(&fingerprint);
    let stream = tokio::net::TcpStream::connect(server.line).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let handshake =
        tokio::time::timeout(support::WAIT, connector.connect(name, stream)).await.expect("answered in time");
    assert!(handshake.is_err(), "a plain listener does not speak TLS");

    // The server answers a ClientHello on a plain line port at once, without waiting
    // for the handshake deadline.
    let mut hello_to_plain = tokio::net::TcpStream::connect(server.line).await.expect("connects");
    hello_to_plain.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await.expect("writes");
    let mut answer = Vec::new();
    tokio::time::timeout(support::WAIT, hello_to_plain.read_to_end(&mut answer))
        .await
        .expect("closed well before the handshake deadline")
        .expect("read");
    assert!(String::from_utf8_lossy(&answer).ends_with("This port speaks plain text, not TLS.\n"), "{answer:?}");

    bystander.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn openssl_s_client_can_chat_on_line_tls() {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "openssl is required in CI");
        eprintln!("SKIPPED: openssl is not installed");
        return;
    }
    let server = support::start().await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    let addr = server.line_tls.expect("line+tls");
    let mut child = tokio::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut prompt = vec![0u8; parley_proto::line::USERNAME_PROMPT.len()];
    tokio::time::timeout(support::WAIT, stdout.read_exact(&mut prompt)).await.expect("prompt in time").expect("prompt");
    stdin.write_all(b"ossl\n").await.expect("name");
    let mut welcome = String::new();
    tokio::time::timeout(support::WAIT, stdout.read_line(&mut welcome)).await.expect("in time").expect("welcome");
    assert!(welcome.ends_with("Welcome to the chat, ossl!\n"), "{welcome:?}");
    stdin.write_all(b"typed into s_client\n").await.expect("typed");
    watcher.expect_line("ossl: typed into s_client").await;
    // -quiet implies -ign_eof: s_client stays connected until it is stopped.
    child.kill().await.expect("s_client stops");
    watcher.expect_line("ossl has left the chat.").await;
    server.shutdown().await;
}
