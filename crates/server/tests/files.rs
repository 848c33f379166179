//! File sharing over real sockets and real files: a share reaches native, line and IRC
//! users; only those who may see it can download it; limits and bad uploads are refused
//! clearly; an interrupted upload leaves nothing behind.

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use parley_client::{Audience, Client, ErrorCode, Event, Events, FileInfo, Kind, Transport};
use parley_proto::msg::{encode_chunk, Reply, Request, ServerMsg};
use support::tempdir::TempDir;
use support::{IrcClient, LineClient, NativeClient, WAIT};

async fn client(server: &support::TestServer, nick: &str) -> (Client, Events) {
    let (client, events, _) = Client::connect(&server.native.to_string(), &Transport::Plain).await.expect("connects");
    client.hello(nick).await.expect("welcomed");
    (client, events)
}

/// The next file shared with this client (in a room or privately).
async fn next_file(events: &mut Events) -> FileInfo {
    loop {
        let event = tokio::time::timeout(WAIT, events.next()).await.expect("in time").expect("an event");
        match event {
            Event::Message { kind: Kind::File, text, .. } | Event::Whisper { kind: Kind::File, text, .. } => {
                return FileInfo::from_text(&text).expect("a file's description");
            }
            Event::Closed { reason } => panic!("closed: {reason}"),
            _ => {}
        }
    }
}

fn refused(e: &parley_client::Error) -> ErrorCode {
    match e {
        parley_client::Error::Refused { code, .. } => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_file_shared_in_a_room_reaches_native_line_and_irc_users() {
    let server = support::start().await;
    let (alice, _alice_events) = client(&server, "alice").await;
    let (bob, mut bob_events) = client(&server, "bob").await;
    let mut carol = LineClient::join(server.line, "carol").await;
    let mut dave = IrcClient::join(server.irc.expect("irc"), "dave", "").await;

    let dir = TempDir::new();
    let source = dir.path().join("notes.txt");
    std::fs::write(&source, b"hello, files").expect("written");
    let sent = alice.send_file(&source, Audience::Room("lobby".into()), |_| {}).await.expect("shared");
    assert_eq!(sent.info.name, "notes.txt");
    assert_eq!(sent.info.media_type, "text/plain");

    let info = next_file(&mut bob_events).await;
    assert_eq!(info, sent.info);
    let saved = dir.path().join("got");
    std::fs::create_dir_all(&saved).expect("dir");
    let got = bob.get_file(&info.file, Some(&saved), |_| {}).await.expect("downloaded");
    assert_eq!(got.from, "alice");
    assert_eq!(got.path, saved.join("notes.txt"));
    assert_eq!(std::fs::read(&got.path).expect("readable"), b"hello, files");

    let told = format!("alice shared notes.txt (12 B, text/plain): /get {} with parley chat", info.file);
    carol.expect_line(&told).await;
    let notice = dave.expect(" NOTICE #lobby :").await;
    assert!(notice.starts_with(":alice!") && notice.ends_with(&format!(":{told}")), "{notice}");

    // It is in the history, in order, like any message.
    let (_, past) = bob.history(Some("lobby"), parley_client::HistoryCursor::Latest, None).await.expect("history");
    let last = past.last().expect("a message");
    assert_eq!((last.kind, last.seq), (Kind::File, sent.seq));
}

#[tokio::test]
async fn a_private_file_is_for_its_two_parties_only() {
    let server = support::start().await;
    let (alice, _a) = client(&server, "alice").await;
    let (bob, mut bob_events) = client(&server, "bob").await;
    let (carol, _c) = client(&server, "carol").await;
    let dir = TempDir::new();
    let source = dir.path().join("secret.pdf");
    std::fs::write(&source, vec![7u8; 200_000]).expect("written");
    let sent = alice.send_file(&source, Audience::User("bob".into()), |_| {}).await.expect("shared");
    assert_eq!(sent.info.media_type, "application/pdf");
    let info = next_file(&mut bob_events).await;
    let saved = dir.path().join("copy.pdf");
    bob.get_file(&info.file, Some(&saved), |_| {}).await.expect("bob may");
    assert_eq!(std::fs::read(&saved).expect("readable"), vec![7u8; 200_000]);
    let denied = carol.get_file(&info.file, Some(&dir.path().join("x")), |_| {}).await.expect_err("carol may not");
    assert_eq!(refused(&denied), ErrorCode::NoSuchFile);
    assert!(!dir.path().join("x").exists());
    let unknown = carol.get_file("0000000000000000", None, |_| {}).await.expect_err("no such file");
    assert_eq!(refused(&unknown), ErrorCode::NoSuchFile);
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_before_any_byte_moves() {
    let server = support::start_with(|c| c.files.max_file_bytes = 1000).await;
    let (alice, _a) = client(&server, "alice").await;
    let dir = TempDir::new();
    let source = dir.path().join("big.bin");
    std::fs::write(&source, vec![0u8; 1001]).expect("written");
    let mut moved = 0;
    let e = alice.send_file(&source, Audience::Room("lobby".into()), |p| moved = p.done).await.expect_err("too large");
    assert_eq!(refused(&e), ErrorCode::FileTooLarge);
    assert!(e.to_string().contains("1.0 KB"), "{e}");
    assert_eq!(moved, 0);
    // The session goes on.
    alice.say("lobby", "still here").await.expect("said");
}

#[tokio::test]
async fn files_are_refused_where_sharing_is_off_or_the_sender_is_not_in_the_room() {
    let server = support::start_with(|c| c.files.enabled = false).await;
    let (alice, _a) = client(&server, "alice").await;
    let dir = TempDir::new();
    let source = dir.path().join("a.txt");
    std::fs::write(&source, b"a").expect("written");
    let e = alice.send_file(&source, Audience::Room("lobby".into()), |_| {}).await.expect_err("off");
    assert_eq!(refused(&e), ErrorCode::FilesUnavailable);

    let server = support::start().await;
    let (alice, _a) = client(&server, "alice").await;
    let e = alice.send_file(&source, Audience::Room("dev".into()), |_| {}).await.expect_err("no dev");
    assert_eq!(refused(&e), ErrorCode::NoSuchRoom);
}

/// Starts an upload of `size` bytes on a raw connection; returns its file id.
async fn offer(client: &mut NativeClient, size: u64, sha256: &str) -> String {
    let upload = Request::Upload {
        room: Some("lobby".into()),
        to: None,
        name: "part.bin".into(),
        size,
        media_type: "application/octet-stream".into(),
        sha256: sha256.into(),
    };
    match client.request(&upload, b"").await {
        Ok(Reply::Upload { file, chunk }) => {
            assert_eq!(chunk, 64 * 1024);
            file
        }
        other => panic!("expected an upload, got {other:?}"),
    }
}

async fn chunk(client: &mut NativeClient, id: u64, file: &str, offset: u64, bytes: &[u8]) {
    let mut out = BytesMut::new();
    encode_chunk(id, file, offset, bytes, &mut out).expect("encodes");
    client.send_raw(&out).await;
}

#[tokio::test]
async fn an_interrupted_upload_leaves_no_file_and_gives_the_quota_back() {
    let data = TempDir::new();
    let server = support::start_in(data.path(), |c| c.files.quota_bytes = 300_000).await;
    let files = data.path().join("files");

    let mut raw = NativeClient::join(server.native, "alice").await;
    let file = offer(&mut raw, 200_000, &"0".repeat(64)).await;
    chunk(&mut raw, 900, &file, 0, &[1u8; 65_536]).await;
    let received = raw.answer(900).await;
    assert!(matches!(received, Ok(Reply::Received { received: 65_536, .. })), "{received:?}");
    assert_eq!(files_under(&files.join("tmp")).len(), 1, "the upload is in a temporary file");
    drop(raw);

    // The temporary file goes once the server sees the connection end.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !files_under(&files.join("tmp")).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the partial upload was not deleted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(files_under(&files).is_empty(), "nothing visible: {:?}", files_under(&files));

    // The quota counts nothing of it: a 200 KB file still fits under 300 KB, a second
    // one does not.
    let (alice, _a) = client(&server, "alice").await;
    let dir = TempDir::new();
    let source = dir.path().join("whole.bin");
    std::fs::write(&source, vec![2u8; 200_000]).expect("written");
    alice.send_file(&source, Audience::Room("lobby".into()), |_| {}).await.expect("fits the quota");
    let e = alice.send_file(&source, Audience::Room("lobby".into()), |_| {}).await.expect_err("over the quota");
    assert_eq!(refused(&e), ErrorCode::QuotaExceeded);
}

#[tokio::test]
async fn temporary_files_left_by_a_crash_are_deleted_at_startup() {
    let data = TempDir::new();
    let tmp = data.path().join("files").join("tmp");
    std::fs::create_dir_all(&tmp).expect("dir");
    std::fs::write(tmp.join("0123456789abcdef.part"), b"half a file").expect("written");
    let _server = support::start_in(data.path(), |_| {}).await;
    assert!(files_under(&tmp).is_empty());
}

#[tokio::test]
async fn bytes_that_do_not_match_the_announced_hash_are_not_kept() {
    let data = TempDir::new();
    let server = support::start_in(data.path(), |_| {}).await;
    let mut raw = NativeClient::join(server.native, "alice").await;
    let file = offer(&mut raw, 4, &"ab".repeat(32)).await;
    chunk(&mut raw, 901, &file, 0, b"oops").await;
    match raw.answer(901).await {
        Err(ServerMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::ChecksumMismatch),
        other => panic!("expected checksum_mismatch, got {other:?}"),
    }
    // Out-of-order pieces are refused too, and end that upload.
    let file = offer(&mut raw, 10, &"ab".repeat(32)).await;
    chunk(&mut raw, 902, &file, 5, b"12345").await;
    match raw.answer(902).await {
        Err(ServerMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::BadRequest),
        other => panic!("expected bad_request, got {other:?}"),
    }
    let files = data.path().join("files");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !files_under(&files).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "left behind: {:?}", files_under(&files));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn shared_names_are_saved_safely_and_never_over_an_existing_file() {
    let server = support::start().await;
    let (alice, _alice_events) = client(&server, "alice").await;
    let (bob, mut bob_events) = client(&server, "bob").await;
    let dir = TempDir::new();
    let (outbox, inbox) = (dir.path().join("out"), dir.path().join("in"));
    std::fs::create_dir_all(&outbox).expect("dir");
    std::fs::create_dir_all(&inbox).expect("dir");
    std::fs::write(inbox.join("bash_profile"), b"mine").expect("written");
    // Each shared name, and the name it is saved under in a folder.
    let cases = [
        (".bash_profile", "bash_profile (1)"),
        (".bash_profile", "bash_profile (2)"),
        ("...", "download"),
        ("CON", "_CON"),
        ("com1.txt", "_com1.txt"),
        ("report .pdf.", "report .pdf"),
    ];
    for (name, saved) in cases {
        let source = outbox.join(name);
        std::fs::write(&source, name.as_bytes()).expect("written");
        let sent = alice.send_file(&source, Audience::Room("lobby".into()), |_| {}).await.expect("shared");
        assert_eq!(sent.info.name, name.trim());
        let info = next_file(&mut bob_events).await;
        let got = bob.get_file(&info.file, Some(&inbox), |_| {}).await.expect("downloaded");
        assert_eq!(got.path, inbox.join(saved), "{name:?}");
        assert_eq!(std::fs::read(&got.path).expect("readable"), name.as_bytes());
    }
    assert_eq!(std::fs::read(inbox.join("bash_profile")).expect("kept"), b"mine");
    assert!(!inbox.join(".bash_profile").exists());
    // A path the user names is used as given.
    let info = next_file_after(&alice, &mut bob_events, &outbox.join(".bash_profile")).await;
    let given = inbox.join(".bash_profile");
    let got = bob.get_file(&info.file, Some(&given), |_| {}).await.expect("downloaded");
    assert_eq!(got.path, given);
    assert!(given.exists());
}

/// Shares `source` in the lobby again and returns it as bob sees it.
async fn next_file_after(alice: &Client, events: &mut Events, source: &Path) -> FileInfo {
    alice.send_file(source, Audience::Room("lobby".into()), |_| {}).await.expect("shared");
    next_file(events).await
}
