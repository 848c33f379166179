//! The holes an attacker could reach, each closed, over real sockets and a real SQLite
//! file: numbers from clients that no longer stop the hub, identities that are account
//! ids or sessions and never nicks, rooms that keep their protection and their past to
//! themselves, bounded ban lists and reads, paced logins, bans checked at every login,
//! quiet auditoriums, files checked before they are stored, and a server that stops when
//! its hub dies. Each test names the finding of issue 12 it closes.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parley_proto::msg::{
    encode_chunk, ErrorCode, HistoryEntry, Received, Reply, Request, SearchHit, ServerMsg, PROTOCOL_VERSION,
};
use parley_server::{Config, Listener, ListenerKind};
use support::{IrcClient, LineClient, NativeClient, WAIT};

fn code(answer: &Result<Reply, ServerMsg>) -> Option<ErrorCode> {
    match answer {
        Err(ServerMsg::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

fn no_flood(c: &mut Config) {
    c.limits.flood_rate_per_sec = 0;
}

fn hello(nick: &str, password: Option<&str>) -> Request {
    Request::Hello { version: PROTOCOL_VERSION, nick: nick.into(), password: password.map(str::to_owned) }
}

fn auth(name: &str, password: &str) -> Request {
    Request::Auth { name: Some(name.into()), password: password.into() }
}

fn join(room: &str) -> Request {
    Request::Join { room: room.into() }
}

fn say(room: &str) -> Request {
    Request::Say { room: room.into(), reply_to: None, tags: None }
}

fn history(room: &str, before: Option<u64>, after: Option<u64>, limit: Option<u32>) -> Request {
    Request::History { room: Some(room.into()), before, after, limit }
}

fn search(query: &str) -> Request {
    Request::Search { query: query.into(), page: None }
}

/// A guest from `source` (a loopback address), welcomed as `nick`.
async fn native_from(source: [u8; 4], addr: SocketAddr, nick: &str) -> NativeClient {
    let mut client = NativeClient::connect_from(source, addr).await;
    let welcome = client.request(&hello(nick, None), b"").await;
    assert!(matches!(welcome, Ok(Reply::Welcome { .. })), "{welcome:?}");
    client
}

/// A native client that makes its nick an account.
async fn registered(addr: SocketAddr, nick: &str, password: &str) -> NativeClient {
    let mut client = NativeClient::join(addr, nick).await;
    let answer = client.request(&Request::Register { password: password.into() }, b"").await;
    assert!(matches!(answer, Ok(Reply::Registered { .. })), "{answer:?}");
    client
}

/// Makes `name` an account (through the line protocol, as anyone could) and leaves.
async fn line_account(server: &support::TestServer, name: &str, password: &str) {
    let mut line = LineClient::join(server.line, name).await;
    line.send(&format!("/register {password}")).await;
    line.expect_line(&format!("Next time, log in with /login {name} PASSWORD.")).await;
    line.send("/quit").await;
    line.expect_closed().await;
}

/// Makes `name` an account and a server admin on the data directory, as `parley admin
/// users add` and `grant` do.
fn admin_account(data: &Path, name: &str, password: &str) {
    use parley_hub::Nick;
    support::with_owner_store(data, |store| {
        let nick = Nick::parse(name, 32).expect("a nick");
        let account = store.register(&nick, password).expect("registers").expect("a new account");
        assert!(store.set_admin(&account, true).expect("grants"));
    });
}

/// Takes the admin role from `name` on the data directory (while the server runs), as
/// `parley admin users revoke` does.
fn revoke_admin(data: &Path, name: &str) {
    support::with_owner_store(data, |store| {
        let account = store.accounts().expect("reads").into_iter().find(|a| a.name.as_str() == name).expect("exists");
        assert!(store.set_admin(&account, false).expect("revokes"));
    });
}

/// Makes `name` an account on the data directory, as `parley admin users add` does.
fn plain_account(data: &Path, name: &str, password: &str) {
    use parley_hub::Nick;
    support::with_owner_store(data, |store| {
        let nick = Nick::parse(name, 32).expect("a nick");
        store.register(&nick, password).expect("registers").expect("a new account");
    });
}

/// Registers over IRC logged in with SASL PLAIN, asking for `caps` too.
async fn sasl(addr: SocketAddr, name: &str, password: &str, caps: &str) -> IrcClient {
    use base64::Engine as _;
    let mut client = IrcClient::connect(addr).await;
    client.send(&format!("CAP REQ :sasl {caps}")).await;
    client.send(&format!("NICK {name}")).await;
    client.send(&format!("USER {name} 0 * :{name}")).await;
    client.expect(" ACK ").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.expect("AUTHENTICATE +").await;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0{password}"));
    client.send(&format!("AUTHENTICATE {payload}")).await;
    client.expect(" 903 ").await;
    client.send("CAP END").await;
    client.expect(" 001 ").await;
    client.welcomed().await;
    client
}

async fn page(client: &mut NativeClient, request: &Request) -> Vec<HistoryEntry> {
    match client.request(request, b"").await {
        Ok(Reply::History { messages, .. } | Reply::Conversation { messages, .. }) => messages,
        other => panic!("expected a page, got {other:?}"),
    }
}

async fn found(client: &mut NativeClient, query: &str) -> Vec<SearchHit> {
    match client.request(&search(query), b"").await {
        Ok(Reply::Found { results, .. }) => results,
        other => panic!("expected search results, got {other:?}"),
    }
}

fn texts(entries: &[HistoryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.text.as_str()).collect()
}

/// The texts of a CHATHISTORY batch (read up to its end).
async fn chathistory(client: &mut IrcClient, command: &str) -> Vec<String> {
    client.send(command).await;
    let lines = client.collect_until("BATCH -").await;
    assert!(lines.iter().any(|l| l.contains(" BATCH +")), "a batch: {lines:#?}");
    lines.iter().filter(|l| l.contains(" PRIVMSG ")).filter_map(|l| l.split(" :").last().map(str::to_owned)).collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
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

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids for `chunk` frames, far from the ids `NativeClient::send` hands out.
static CHUNK_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

/// Offers `bytes` as a file to a room or a user: the file's id and the largest piece
/// the server takes, or the refusal of the offer.
async fn offer(
    client: &mut NativeClient,
    room: Option<&str>,
    to: Option<&str>,
    bytes: &[u8],
) -> Result<(String, usize), ServerMsg> {
    let upload = Request::Upload {
        room: room.map(str::to_owned),
        to: to.map(str::to_owned),
        name: "notes.txt".into(),
        size: bytes.len() as u64,
        media_type: "text/plain".into(),
        sha256: sha256(bytes),
    };
    match client.request(&upload, b"").await {
        Ok(Reply::Upload { file, chunk }) => Ok((file, chunk)),
        Ok(other) => panic!("expected an upload, got {other:?}"),
        Err(refused) => Err(refused),
    }
}

/// Sends one piece of an upload; its answer.
async fn piece(client: &mut NativeClient, file: &str, offset: u64, bytes: &[u8]) -> Result<Reply, ServerMsg> {
    let id = CHUNK_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut out = BytesMut::new();
    encode_chunk(id, file, offset, bytes, &mut out).expect("encodes");
    client.send_raw(&out).await;
    client.answer(id).await
}

/// Shares `bytes` whole; the file's id, or why it was refused.
async fn share(
    client: &mut NativeClient,
    room: Option<&str>,
    to: Option<&str>,
    bytes: &[u8],
) -> Result<String, ServerMsg> {
    let (file, chunk) = offer(client, room, to, bytes).await?;
    let mut offset = 0;
    for part in bytes.chunks(chunk) {
        match piece(client, &file, offset as u64, part).await? {
            Reply::Received { .. } => offset += part.len(),
            Reply::Shared { file: shared, .. } => {
                assert_eq!((shared.as_str(), offset + part.len()), (file.as_str(), bytes.len()));
                return Ok(file);
            }
            other => panic!("expected a piece taken, got {other:?}"),
        }
    }
    panic!("the last piece was not answered as shared")
}

/// The answers to the requests `ids`, in any order (events skipped).
async fn answers(client: &mut NativeClient, ids: &[u64]) -> Vec<Result<Reply, ServerMsg>> {
    let mut got: Vec<Option<Result<Reply, ServerMsg>>> = vec![None; ids.len()];
    while got.iter().any(Option::is_none) {
        let received = client.next().await.expect("answers before the end");
        let (id, answer) = match &received.msg {
            ServerMsg::Result { id } => (*id, Ok(received.reply().expect("a reply body"))),
            ServerMsg::Error { id: Some(id), .. } => (*id, Err(received.msg.clone())),
            _ => continue,
        };
        if let Some(at) = ids.iter().position(|i| *i == id) {
            got[at] = Some(answer);
        }
    }
    got.into_iter().flatten().collect()
}

fn refusal<T: std::fmt::Debug>(result: Result<T, ServerMsg>) -> ErrorCode {
    match result {
        Err(ServerMsg::Error { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn download(file: &str) -> Request {
    Request::Download { file: file.into() }
}

/// Waits for a message in `room` with `text`, skipping everything else.
async fn heard(client: &mut NativeClient, room: &str, text: &str) -> String {
    client
        .expect(|r: &Received| match &r.msg {
            ServerMsg::Message { room: got, from, .. } if got == room && r.text() == text => Some(from.clone()),
            _ => None,
        })
        .await
}

// Finding 1: numbers from clients.

/// Finding 1: a registered room's operator muting someone for 100000000 days (or, over
/// the native protocol, 10^13 seconds) made `Utc::now() + d` panic: the hub died, the
/// process stayed, and new users got nothing. Both forms are refused; the server serves.
#[tokio::test]
async fn a_ban_or_mute_longer_than_a_date_can_hold_is_refused_and_the_server_serves_on() {
    let server = support::start_with(no_flood).await;
    let mut chief = LineClient::join(server.line, "chief").await;
    chief.send("/register chief-password").await;
    chief.expect_line("Next time, log in with /login chief PASSWORD.").await;
    chief.send("/join ops").await;
    chief.expect_line("You joined ops. Users here: @chief").await;
    chief.expect_line("*** ops is now registered to chief.").await;
    let mut victim = NativeClient::join(server.native, "victim").await;
    assert!(victim.request(&join("ops"), b"").await.is_ok());
    let mut deputy = registered(server.native, "deputy", "deputy-password").await;
    assert!(deputy.request(&join("ops"), b"").await.is_ok());
    chief.send("/op deputy").await;
    chief.expect_line("*** chief made deputy an operator of ops.").await;

    let too_long = "Error: A ban or mute lasts at most 3660 days; leave the duration out for one until lifted.";
    chief.send("/mute victim 100000000d").await;
    chief.expect_line(too_long).await;
    chief.send("/ban victim 100000000d").await;
    chief.expect_line(too_long).await;
    let ops = || Some("ops".to_owned());
    let mute = Request::Mute { room: ops(), nick: "victim".into(), seconds: Some(10_000_000_000_000) };
    assert_eq!(code(&deputy.request(&mute, b"").await), Some(ErrorCode::TooLong));
    let ban = Request::Ban { room: ops(), mask: "victim".into(), seconds: Some(u64::MAX), reason: None };
    assert_eq!(code(&deputy.request(&ban, b"").await), Some(ErrorCode::TooLong));
    // Just within the limit is a ban like any other.
    let ban = Request::Ban { room: ops(), mask: "victim".into(), seconds: Some(3660 * 86_400), reason: None };
    assert!(matches!(deputy.request(&ban, b"").await, Ok(Reply::Moderated { .. })));

    // The refused ones changed nothing, and the hub is alive: a new client registers
    // and chats.
    let mut newcomer = NativeClient::join(server.native, "newcomer").await;
    assert!(matches!(newcomer.request(&say("lobby"), b"still here").await, Ok(Reply::Said { .. })));
    assert_eq!(heard(&mut victim, "lobby", "still here").await, "newcomer");
    let mut liner = LineClient::join(server.line, "liner").await;
    liner.send("me too").await;
    assert_eq!(heard(&mut newcomer, "lobby", "me too").await, "liner");
    server.shutdown().await;
}

/// Finding 1, the same class: every seq, limit, page and size a client sends is bounded
/// before arithmetic. Extreme ones get clear answers, and the server goes on serving.
#[tokio::test]
async fn extreme_seqs_limits_pages_and_sizes_get_clear_answers() {
    let server = support::start_with(no_flood).await;
    let mut alice = registered(server.native, "alice", "alice-password").await;
    for n in 1..=3 {
        assert!(alice.request(&say("lobby"), format!("word {n}").as_bytes()).await.is_ok());
    }
    let max = Some(u64::MAX);
    let before = page(&mut alice, &history("lobby", max, None, Some(u32::MAX))).await;
    assert_eq!(texts(&before), ["word 1", "word 2", "word 3"]);
    assert!(page(&mut alice, &history("lobby", None, max, Some(u32::MAX))).await.is_empty());
    assert!(page(&mut alice, &history("lobby", Some(0), None, Some(0))).await.is_empty());
    let conversation = Request::Conversation { with: "alice".into(), before: max, after: None, limit: Some(u32::MAX) };
    assert!(page(&mut alice, &conversation).await.is_empty());
    let far = Request::Search { query: "word".into(), page: Some(u32::MAX) };
    assert_eq!(code(&alice.request(&far, b"").await), Some(ErrorCode::BadSearch));
    let huge = Request::Upload {
        room: Some("lobby".into()),
        to: None,
        name: "huge.bin".into(),
        size: u64::MAX,
        media_type: "application/octet-stream".into(),
        sha256: "0".repeat(64),
    };
    assert_eq!(code(&alice.request(&huge, b"").await), Some(ErrorCode::FileTooLarge));
    let (file, _) = offer(&mut alice, Some("lobby"), None, b"0123456789").await.expect("offered");
    assert_eq!(code(&piece(&mut alice, &file, u64::MAX, b"0123456789").await), Some(ErrorCode::BadRequest));
    assert_eq!(code(&piece(&mut alice, "0123456789abcdef", u64::MAX, b"x").await), Some(ErrorCode::NoSuchFile));
    let read = Request::Read { file: "0123456789abcdef".into(), offset: u64::MAX };
    assert_eq!(code(&alice.request(&read, b"").await), Some(ErrorCode::NoSuchFile));

    let mut line = LineClient::join(server.line, "liner").await;
    line.send("/context 18446744073709551615").await;
    line.expect_line("--- History of lobby: 3 messages, #1 to #3 ---").await;
    line.expect_line("--- End of history ---").await;
    line.send("/history 18446744073709551615").await;
    line.expect_line("--- History of lobby: 3 messages, #1 to #3 ---").await;
    line.expect_line("--- End of history ---").await;
    line.send("/history alice 18446744073709551615").await;
    line.expect_line("No private messages with alice yet.").await;
    line.send("/search word page:99999999999999999999").await;
    line.expect_line("Error: Page: takes a number from 1 to 1000, not \"99999999999999999999\".").await;
    line.send("/mute alice 99999999999999999999d").await;
    line.expect_line("Usage: /mute NICK [DURATION like 30m, 2h, 7d]").await;

    line_account(&server, "ircer", "ircer-password").await;
    let mut ircer = sasl(server.irc_addr(), "ircer", "ircer-password", "draft/chathistory batch message-tags").await;
    ircer.send("JOIN #lobby").await;
    ircer.expect(" 366 ").await;
    ircer.send("JOIN #x").await;
    ircer.expect(" 366 ").await;
    ircer.send("MODE #x +l 99999999999999999999").await;
    ircer.expect(" 696 ircer #x l 99999999999999999999 :The limit must be a number above 0").await;
    ircer.send("MODE #x +l 18446744073709551615").await;
    ircer.expect(" 696 ircer #x ").await;
    ircer.send("MODE #x").await;
    let modes = ircer.expect(" 324 ").await;
    assert!(modes.ends_with(" 324 ircer #x +nt"), "no limit was set: {modes}");
    let all = chathistory(&mut ircer, "CHATHISTORY BEFORE #lobby msgid=lobby/18446744073709551615 4294967295").await;
    assert_eq!(all, ["word 1", "word 2", "word 3"]);
    let none = chathistory(&mut ircer, "CHATHISTORY AFTER #lobby msgid=lobby/18446744073709551615 10").await;
    assert!(none.is_empty(), "{none:?}");
    ircer.send("CHATHISTORY LATEST #lobby * 99999999999999999999999").await;
    ircer.expect("FAIL CHATHISTORY INVALID_PARAMS LATEST #lobby").await;
    ircer.send("CHATHISTORY BEFORE #lobby msgid=lobby/99999999999999999999999 10").await;
    ircer.expect("FAIL CHATHISTORY INVALID_PARAMS BEFORE #lobby").await;

    // Everyone is still served, and so is someone new.
    let mut late = NativeClient::join(server.native, "late").await;
    assert!(late.request(&say("lobby"), b"all well").await.is_ok());
    assert_eq!(heard(&mut alice, "lobby", "all well").await, "late");
    line.expect_line("late: all well").await;
    ircer.expect(":late!~late@parley.local PRIVMSG #lobby :all well").await;
    server.shutdown().await;
}

// Finding 2 (the account's own deletion; `parley admin users delete` is tested with the
// binary in crates/parley/tests/security.rs).

/// Finding 2: deleting an account removes every power it held. Its owner deletes it
/// with `/unregister PASSWORD` (a wrong password changes nothing); then its name is free,
/// its private messages are gone, and so are its files.
#[tokio::test]
async fn an_account_its_owner_deletes_takes_its_messages_files_and_name_along() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    let mut alice = registered(server.native, "alice", "alice-password").await;
    let mut bob = registered(server.native, "bob", "bob-password").await;
    assert!(alice
        .request(&Request::Whisper { to: "bob".into(), reply_to: None, tags: None }, b"the secret plan")
        .await
        .is_ok());
    let file = share(&mut alice, None, Some("bob"), b"plans in a file").await.expect("shared");
    assert_eq!(found(&mut bob, "secret").await.len(), 1);
    assert!(bob.request(&download(&file), b"").await.is_ok(), "bob may download it now");
    let shares = data.path().join("files").join("shares");
    assert_eq!(files_under(&shares).len(), 1);

    // Over the line protocol, the owner deletes it in one line.
    let mut line = LineClient::join(server.line, "liner").await;
    line.send("/register liner-password").await;
    line.expect_line("Next time, log in with /login liner PASSWORD.").await;
    line.send("/unregister liner-password").await;
    line.expect_line("The account liner is deleted, with your private messages; you are a guest now.").await;

    // A wrong password (here from alice's second session, elsewhere) deletes nothing.
    let mut second = native_from([127, 0, 0, 2], server.native, "second").await;
    assert!(second.request(&auth("alice", "alice-password"), b"").await.is_ok());
    let wrong = Request::Unregister { password: "not-the-password".into() };
    assert_eq!(code(&second.request(&wrong, b"").await), Some(ErrorCode::BadLogin));
    assert_eq!(found(&mut bob, "secret").await.len(), 1, "a wrong password deletes nothing");
    let right = Request::Unregister { password: "alice-password".into() };
    assert_eq!(alice.request(&right, b"").await, Ok(Reply::Unregistered { account: "alice".into() }));

    // Its private messages and files are gone, for bob too.
    assert!(found(&mut bob, "secret").await.is_empty());
    let conversation = Request::Conversation { with: "alice".into(), before: None, after: None, limit: None };
    assert!(page(&mut bob, &conversation).await.is_empty());
    assert_eq!(code(&bob.request(&download(&file), b"").await), Some(ErrorCode::NoSuchFile));
    assert!(files_under(&shares).is_empty(), "{:?}", files_under(&shares));
    // Its name is free: the old password opens nothing, and a newcomer may register it.
    assert!(second.request(&Request::Quit { reason: None }, b"").await.is_ok());
    let mut other = NativeClient::connect_from([127, 0, 0, 3], server.native).await;
    assert_eq!(code(&other.request(&hello("alice", Some("alice-password")), b"").await), Some(ErrorCode::BadLogin));
    let mut newcomer = NativeClient::join(server.native, "alice").await;
    let again = newcomer.request(&Request::Register { password: "another-password".into() }, b"").await;
    assert_eq!(again, Ok(Reply::Registered { account: "alice".into() }));
    let mut elsewhere = native_from([127, 0, 0, 4], server.native, "elsewhere").await;
    assert_eq!(code(&elsewhere.request(&auth("liner", "liner-password"), b"").await), Some(ErrorCode::BadLogin));
    server.shutdown().await;
}

// Finding 3: rooms keep their protection, and their past to themselves.

/// Finding 3: an unregistered room (its creator a guest) with a key and `+s` emptied;
/// then anyone could join, got its history on joining, paged back with history and
/// CHATHISTORY, found it by search, and downloaded the files shared there. Now its next
/// life starts with none of that.
#[tokio::test]
async fn an_emptied_unregistered_room_hands_a_newcomer_none_of_its_past() {
    let server = support::start_with(no_flood).await;
    let mut nat = NativeClient::join(server.native, "nat").await;
    assert!(nat.request(&join("vault"), b"").await.is_ok());
    assert!(nat.request(&say("vault"), b"the combination is 1234").await.is_ok());
    let file = share(&mut nat, Some("vault"), None, b"the safe's manual").await.expect("shared");
    let mut ann = IrcClient::join(server.irc_addr(), "ann", "").await;
    ann.send("JOIN #vault").await;
    ann.expect(" 366 ").await;
    let op = Request::Op { room: Some("vault".into()), nick: "ann".into() };
    assert!(nat.request(&op, b"").await.is_ok());
    ann.expect("MODE #vault +o ann").await;
    ann.send("MODE #vault +sk s3cret").await;
    ann.expect("MODE #vault +sk s3cret").await;
    let mut zed = IrcClient::join(server.irc_addr(), "zed", "draft/chathistory batch message-tags").await;
    zed.send("JOIN #vault").await;
    zed.expect(" 475 zed #vault :Cannot join channel (+k)").await;
    // While it lives, its members find its past.
    assert_eq!(found(&mut nat, "combination").await.len(), 1);
    assert!(nat.request(&download(&file), b"").await.is_ok());

    ann.send("PART #vault").await;
    ann.expect("PART #vault").await;
    assert!(nat.request(&Request::Part { room: Some("vault".into()) }, b"").await.is_ok());

    // Its next life: no key, no secret, none of its past.
    zed.send("JOIN #vault").await;
    zed.expect(" 366 zed #vault ").await;
    zed.send("MODE #vault").await;
    let modes = zed.expect(" 324 ").await;
    assert!(modes.ends_with(" 324 zed #vault +nt"), "{modes}");
    assert!(chathistory(&mut zed, "CHATHISTORY LATEST #vault * 50").await.is_empty());
    assert!(chathistory(&mut zed, "CHATHISTORY BEFORE #vault msgid=vault/100 50").await.is_empty());
    let mut nina = NativeClient::join(server.native, "nina").await;
    let joined = nina.request(&join("vault"), b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, topic: None, .. }) if history.is_empty()), "{joined:?}");
    assert!(page(&mut nina, &history("vault", None, None, None)).await.is_empty());
    assert!(page(&mut nina, &history("vault", Some(u64::MAX), None, Some(500))).await.is_empty());
    assert!(found(&mut nina, "combination").await.is_empty());
    assert_eq!(code(&nina.request(&download(&file), b"").await), Some(ErrorCode::NoSuchFile));
    // Nor does its old creator, back in its new life.
    assert!(nat.request(&join("vault"), b"").await.is_ok());
    assert_eq!(code(&nat.request(&download(&file), b"").await), Some(ErrorCode::NoSuchFile));
    assert!(found(&mut nat, "combination").await.is_empty());
    server.shutdown().await;
}

/// Finding 3: a registered room (created by a logged-in user) keeps its key, `+i` and
/// `+s` when it empties and across a restart: a newcomer is refused and does not see it;
/// its operator, back, still sees its history.
#[tokio::test]
async fn a_registered_room_keeps_its_protection_across_emptying_and_restarts() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    line_account(&server, "reg", "reg-password").await;
    let mut reg = sasl(server.irc_addr(), "reg", "reg-password", "echo-message").await;
    for channel in ["#fort", "#club"] {
        reg.send(&format!("JOIN {channel}")).await;
        reg.expect("is now registered to reg.").await;
    }
    reg.send("MODE #fort +sk s3cret").await;
    reg.expect(":reg!~reg@parley.local MODE #fort +sk s3cret").await;
    reg.send("MODE #club +i").await;
    reg.expect(":reg!~reg@parley.local MODE #club +i").await;
    reg.send("PRIVMSG #fort :fort secret").await;
    reg.expect("PRIVMSG #fort :fort secret").await;
    reg.send("PART #fort,#club").await;
    reg.expect("PART #fort").await;
    reg.expect("PART #club").await;

    async fn refused(server: &support::TestServer, nick: &str) {
        let mut nosy = IrcClient::join(server.irc_addr(), nick, "").await;
        nosy.send("JOIN #fort").await;
        nosy.expect(&format!(" 475 {nick} #fort :Cannot join channel (+k)")).await;
        nosy.send("JOIN #club s3cret").await;
        nosy.expect(&format!(" 473 {nick} #club :Cannot join channel (+i)")).await;
        nosy.send("MODE #fort").await;
        nosy.expect(&format!(" 403 {nick} #fort :No such channel")).await;
        nosy.send("TOPIC #fort").await;
        nosy.expect(&format!(" 403 {nick} #fort :No such channel")).await;
        let mut native = NativeClient::join(server.native, &format!("{nick}2")).await;
        assert_eq!(code(&native.request(&join("fort"), b"").await), Some(ErrorCode::Banned));
        assert_eq!(code(&native.request(&join("club"), b"").await), Some(ErrorCode::Banned));
        let fort = history("fort", None, None, None);
        // Secret: it does not exist for those outside it.
        assert_eq!(code(&native.request(&fort, b"").await), Some(ErrorCode::NoSuchRoom));
        assert!(found(&mut native, "fort").await.is_empty());
    }
    refused(&server, "nosy").await;
    server.shutdown().await;

    let server = support::start_in(data.path(), no_flood).await;
    refused(&server, "again").await;
    let mut back = NativeClient::connect(server.native).await;
    assert!(back.request(&hello("reg", Some("reg-password")), b"").await.is_ok());
    let joined = back.request(&join("fort"), b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if texts(history) == ["fort secret"]), "{joined:?}");
    assert_eq!(texts(&page(&mut back, &history("fort", None, None, None)).await), ["fort secret"]);
    assert_eq!(found(&mut back, "secret").await.len(), 1);
    let mut reg = sasl(server.irc_addr(), "reg", "reg-password", "").await;
    reg.send("JOIN #fort").await;
    reg.expect(" 366 reg #fort ").await;
    reg.send("MODE #fort").await;
    reg.expect(" 324 reg #fort +nstk s3cret").await;
    server.shutdown().await;
}

/// Finding 3: a registered room keeps its key, `+s`, bans and topic across a restart
/// even when its creator set them at once, before its registration was written (an IRC
/// client joining and setting modes in one go); they were applied but never kept. And
/// settings changed one after another, before the first is written, add up: each was
/// made on the settings before all of them, so only the last one stayed.
#[tokio::test]
async fn what_a_creator_sets_while_its_room_is_being_registered_is_kept_too() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    line_account(&server, "reg", "reg-password").await;
    line_account(&server, "buddy", "buddy-password").await;
    let mut reg = sasl(server.irc_addr(), "reg", "reg-password", "").await;
    let at_once = "JOIN #fort\r\nMODE #fort +sk s3cret\r\nMODE #fort +b troll\r\nMODE #fort +o buddy\r\nTOPIC #fort :fort topic\r\n";
    reg.send_raw(at_once.as_bytes()).await;
    reg.expect("fort is now registered to reg.").await;
    reg.expect(":reg!~reg@parley.local TOPIC #fort :fort topic").await;
    let set: Vec<&String> = reg.seen.iter().filter(|l| l.contains(" MODE #fort ")).collect();
    assert_eq!(set.len(), 2, "{set:#?}");
    assert!(!reg.seen.iter().any(|l| l.contains(" 441 ")), "buddy need not be there: {:#?}", reg.seen);
    reg.send_raw(b"JOIN #club\r\nMODE #club +i\r\nMODE #club +k s3cret\r\nMODE #club +l 5\r\nMODE #club -l\r\n").await;
    reg.expect("club is now registered to reg.").await;
    reg.expect(":reg!~reg@parley.local MODE #club -l").await;
    reg.send("MODE #club").await;
    reg.expect(" 324 reg #club +intk s3cret").await;
    reg.send("PART #fort,#club").await;
    reg.expect("PART #club").await;
    server.shutdown().await;

    let server = support::start_in(data.path(), no_flood).await;
    let mut nosy = IrcClient::join(server.irc_addr(), "nosy", "").await;
    nosy.send("JOIN #club").await;
    nosy.expect(" 473 nosy #club :Cannot join channel (+i)").await;
    nosy.send("JOIN #fort").await;
    nosy.expect(" 475 nosy #fort :Cannot join channel (+k)").await;
    nosy.send("MODE #fort").await;
    nosy.expect(" 403 nosy #fort :No such channel").await;
    let mut troll = IrcClient::join(server.irc_addr(), "troll", "").await;
    troll.send("JOIN #fort s3cret").await;
    troll.expect(" 474 troll #fort :Cannot join channel (+b)").await;
    let mut buddy = sasl(server.irc_addr(), "buddy", "buddy-password", "").await;
    buddy.send("JOIN #fort").await;
    buddy.expect(" 353 buddy @ #fort :@buddy").await;
    let mut reg = sasl(server.irc_addr(), "reg", "reg-password", "").await;
    reg.send("JOIN #fort").await;
    reg.expect(" 332 reg #fort :fort topic").await;
    reg.send("MODE #fort").await;
    reg.expect(" 324 reg #fort +nstk s3cret").await;
    reg.send("JOIN #club").await;
    reg.expect(" 366 reg #club ").await;
    reg.send("MODE #club").await;
    reg.expect(" 324 reg #club +intk s3cret").await;
    server.shutdown().await;
}

// Finding 5: private messages and files belong to parties.

/// Finding 5: private messages and files were bound to nicks. A guest's conversation
/// and private file stay its own: whoever takes the nick later (and registers it) sees
/// nothing of them, in any protocol.
#[tokio::test]
async fn whoever_takes_a_guests_nick_later_reads_nothing_of_its_past() {
    let server = support::start_with(no_flood).await;
    let mut alice = registered(server.native, "alice", "alice-password").await;
    let mut carol = NativeClient::join(server.native, "carol").await;
    assert!(carol
        .request(&Request::Whisper { to: "alice".into(), reply_to: None, tags: None }, b"carol's secret")
        .await
        .is_ok());
    assert!(alice
        .request(&Request::Whisper { to: "carol".into(), reply_to: None, tags: None }, b"the secret answer")
        .await
        .is_ok());
    let file = share(&mut alice, None, Some("carol"), b"for carol only").await.expect("shared");
    // The guest reads its own while it stays.
    let conversation = Request::Conversation { with: "alice".into(), before: None, after: None, limit: None };
    assert_eq!(texts(&page(&mut carol, &conversation).await).len(), 3);
    assert_eq!(found(&mut carol, "secret").await.len(), 2);
    assert!(carol.request(&download(&file), b"").await.is_ok());
    assert!(carol.request(&Request::Quit { reason: None }, b"").await.is_ok());

    let mut irc_carol = IrcClient::join(server.irc_addr(), "carol", "draft/chathistory batch message-tags").await;
    assert!(chathistory(&mut irc_carol, "CHATHISTORY LATEST alice * 50").await.is_empty());
    irc_carol.send("QUIT").await;
    irc_carol.expect_closed().await;
    let mut line_carol = LineClient::join(server.line, "carol").await;
    line_carol.send("/history alice").await;
    line_carol.expect_line("No private messages with alice yet.").await;
    line_carol.send("/search secret").await;
    line_carol.expect_line("No messages found for \"secret\" (page 1).").await;
    line_carol.send("/quit").await;
    line_carol.expect_closed().await;
    let mut taker = registered(server.native, "carol", "carol-password").await;
    assert!(page(&mut taker, &conversation).await.is_empty());
    assert!(found(&mut taker, "secret").await.is_empty());
    assert_eq!(code(&taker.request(&download(&file), b"").await), Some(ErrorCode::NoSuchFile));
    server.shutdown().await;
}

// Finding 6: what non-members learn of a room.

/// Finding 6: non-members read a room's key (`324 … +k s3cret`), a secret room's topic
/// and existence, and its ban list with addresses. Now the key is `<key>` to them, a
/// secret room does not exist for them, ban lists are for members, and addresses in
/// them for moderators.
#[tokio::test]
async fn outsiders_learn_nothing_of_a_rooms_key_secrets_or_bans() {
    let server = support::start_with(no_flood).await;
    let addr = server.irc_addr();
    line_account(&server, "own", "own-password").await;
    let mut own = sasl(addr, "own", "own-password", "").await;
    own.send("JOIN #staff").await;
    own.expect(" 366 ").await;
    own.send("MODE #staff +k s3cret").await;
    own.expect("MODE #staff +k s3cret").await;
    own.send("MODE #staff +b *!*@10.1.2.3").await;
    own.expect("MODE #staff +b *!*@10.1.2.3").await;
    own.send("MODE #staff +b troll").await;
    own.expect("MODE #staff +b troll!*@*").await;
    own.send("JOIN #hidden").await;
    own.expect(" 366 ").await;
    own.send("MODE #hidden +s").await;
    own.expect("MODE #hidden +s").await;
    own.send("TOPIC #hidden :the hidden plans").await;
    own.expect("TOPIC #hidden :the hidden plans").await;
    own.send("MODE #staff b").await;
    let list = own.collect_until(" 368 ").await;
    assert!(list.iter().any(|l| l.contains(" 367 own #staff *!*@10.1.2.3 ")), "operators see it all: {list:#?}");

    let mut out = IrcClient::join(addr, "out", "").await;
    out.send("MODE #staff").await;
    out.expect(" 324 out #staff +ntk <key>").await;
    // The ban list, as IRC servers show it to anyone: the nick bans, not the addresses.
    out.send("MODE #staff b").await;
    let bans = out.collect_until(" 368 out #staff ").await;
    assert!(bans.iter().any(|l| l.contains(" 367 out #staff troll!*@* own ")), "{bans:#?}");
    assert!(!bans.iter().any(|l| l.contains("10.1.2.3")), "{bans:#?}");
    out.send("JOIN #staff wrong").await;
    out.expect(" 475 out #staff ").await;
    out.send("MODE #hidden").await;
    out.expect(" 403 out #hidden :No such channel").await;
    out.send("TOPIC #hidden").await;
    out.expect(" 403 out #hidden :No such channel").await;
    out.send("NAMES #hidden").await;
    out.expect(" 366 out #hidden ").await;
    out.send("WHO #hidden").await;
    out.expect(" 315 out #hidden ").await;
    out.send("LIST").await;
    let list = out.collect_until(" 323 ").await;
    assert!(list.iter().any(|l| l.contains(" #staff ")), "{list:#?}");
    assert!(!list.iter().any(|l| l.contains("hidden")), "{list:#?}");
    out.send("WHOIS own").await;
    let whois = out.collect_until(" 318 ").await;
    assert!(whois.iter().any(|l| l.contains(" 319 out own :") && l.contains("#staff")), "{whois:#?}");
    let told: Vec<&String> = out.seen.iter().filter(|l| l.contains("10.1.2.3") || l.contains("hidden")).collect();
    let asked = ["MODE #hidden", "TOPIC #hidden", "NAMES #hidden", "WHO #hidden"].len();
    assert_eq!(told.len(), asked, "only the refusals name it: {told:#?}");

    // A member who does not moderate sees the key and the nick bans, not the addresses.
    let mut member = IrcClient::join(addr, "member", "").await;
    member.send("JOIN #staff s3cret").await;
    member.expect(" 366 member #staff ").await;
    member.send("MODE #staff").await;
    member.expect(" 324 member #staff +ntk s3cret").await;
    member.send("MODE #staff b").await;
    let list = member.collect_until(" 368 ").await;
    assert!(list.iter().any(|l| l.contains(" 367 member #staff troll!*@*")), "{list:#?}");
    assert!(!list.iter().any(|l| l.contains("10.1.2.3")), "{list:#?}");

    let mut native = NativeClient::join(server.native, "native").await;
    let topic = Request::Topic { room: Some("hidden".into()), topic: None };
    assert_eq!(code(&native.request(&topic, b"").await), Some(ErrorCode::NoSuchRoom));
    assert_eq!(code(&native.request(&Request::Who { room: "hidden".into() }, b"").await), Some(ErrorCode::NoSuchRoom));
    let rooms = native.request(&Request::Rooms, b"").await;
    let Ok(Reply::Rooms { rooms }) = rooms else { panic!("rooms expected, got {rooms:?}") };
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"staff") && !names.contains(&"hidden"), "{names:?}");
    let whois = native.request(&Request::Whois { nick: "own".into() }, b"").await;
    let Ok(Reply::Whois { rooms, .. }) = whois else { panic!("whois expected, got {whois:?}") };
    assert!(rooms.iter().any(|r| r.ends_with("staff")) && !rooms.iter().any(|r| r.contains("hidden")), "{rooms:?}");
    assert_eq!(code(&native.request(&join("staff"), b"").await), Some(ErrorCode::Banned), "keyed");
    server.shutdown().await;
}

// Finding 7: bounded ban lists.

/// Finding 7: a room's ban list grew without bound, duplicates too. The same mask twice
/// is one entry, and past `max_bans_per_room` a ban is refused (`too_many_bans`, IRC 478).
#[tokio::test]
async fn a_rooms_ban_list_keeps_one_entry_per_mask_and_stops_at_its_limit() {
    let server = support::start_with(|c| {
        no_flood(c);
        c.limits.max_bans_per_room = 3;
    })
    .await;
    line_account(&server, "ann", "ann-password").await;
    let mut ann = sasl(server.irc_addr(), "ann", "ann-password", "").await;
    ann.send("JOIN #dev").await;
    ann.expect(" 366 ").await;
    for mask in ["mallory", "mallory", "10.0.0.1", "eve"] {
        ann.send(&format!("MODE #dev +b {mask}")).await;
        ann.expect("MODE #dev +b ").await;
    }
    ann.send("MODE #dev b").await;
    let list = ann.collect_until(" 368 ").await;
    let bans: Vec<&String> = list.iter().filter(|l| l.contains(" 367 ")).collect();
    assert_eq!(bans.len(), 3, "{list:#?}");
    ann.send("MODE #dev +b trudy").await;
    ann.expect(" 478 ann #dev b :Channel ban list is full").await;
    let mut alice = registered(server.native, "alice", "alice-password").await;
    assert!(alice.request(&join("dev"), b"").await.is_ok());
    ann.send("MODE #dev +o alice").await;
    ann.expect("MODE #dev +o alice").await;
    let dev = || Some("dev".to_owned());
    let ban = Request::Ban { room: dev(), mask: "trudy".into(), seconds: None, reason: None };
    assert_eq!(code(&alice.request(&ban, b"").await), Some(ErrorCode::TooManyBans));
    let mute = Request::Mute { room: dev(), nick: "ann".into(), seconds: None };
    assert_eq!(code(&alice.request(&mute, b"").await), Some(ErrorCode::TooManyBans), "mutes count too");
    // A ban already listed may be set again (its reason or end changes), and one lifted
    // makes room.
    let again = Request::Ban { room: dev(), mask: "eve".into(), seconds: Some(60), reason: None };
    assert!(alice.request(&again, b"").await.is_ok());
    assert!(alice.request(&Request::Unban { room: dev(), mask: "mallory".into() }, b"").await.is_ok());
    assert!(alice.request(&ban, b"").await.is_ok());
    server.shutdown().await;
}

/// Finding 7: server bans are bounded the same way (`max_server_bans`), one per mask.
#[tokio::test]
async fn server_bans_keep_one_entry_per_mask_and_stop_at_their_limit() {
    let data = support::tempdir::TempDir::new();
    admin_account(data.path(), "root", "root-password");
    let server = support::start_in(data.path(), |c| {
        no_flood(c);
        c.limits.max_server_bans = 3;
    })
    .await;
    let mut root = NativeClient::connect(server.native).await;
    assert!(root.request(&hello("root", Some("root-password")), b"").await.is_ok());
    let ban = |mask: &str| Request::ServerBan { mask: mask.into(), seconds: None, reason: None };
    for mask in ["spammer", "SPAMMER", "10.9.8.7", "2001:db8::1", "2001:db8::2/64"] {
        let answer = root.request(&ban(mask), b"").await;
        assert!(matches!(answer, Ok(Reply::ServerModerated { .. })), "{mask}: {answer:?}");
    }
    let listed = root.request(&Request::ServerBans, b"").await;
    let Ok(Reply::ServerBans { bans }) = listed else { panic!("a list expected, got {listed:?}") };
    assert_eq!(bans.len(), 3, "one per mask, one per /64: {bans:?}");
    assert_eq!(code(&root.request(&ban("another"), b"").await), Some(ErrorCode::TooManyBans));
    let mut kline = sasl(server.irc_addr(), "root", "root-password", "").await;
    kline.send("KLINE another 1h :too many").await;
    kline.expect("FAIL * FAILED :the ban list is full (").await;
    server.shutdown().await;
}

// Finding 8: password guessing.

/// Finding 8: a few connections guessing passwords took every password check (4 at once
/// for the whole server), so honest logins failed as busy; SASL loops were not paced;
/// nothing slowed an address down. Now attackers from five addresses hammering logins
/// every way at once (native `auth`, `hello` with a password, SASL) take their turns,
/// an honest user from another address logs in within the usual wait, each attacker
/// must wait after its first failure on an account, and the owner is not locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_from_many_addresses_never_starves_an_honest_login() {
    let data = support::tempdir::TempDir::new();
    plain_account(data.path(), "victim", "victim-password");
    plain_account(data.path(), "honest", "honest-password");
    let server = support::start_in(data.path(), no_flood).await;
    let (native, irc) = (server.native, server.irc_addr());

    let (sent, mut all_sent) = tokio::sync::mpsc::channel::<()>(16);
    let mut attackers = Vec::new();
    for n in 2..=6u8 {
        let source = [127, 0, 0, n];
        let sent = sent.clone();
        attackers.push(tokio::spawn(async move {
            // Fourteen guesses at once on one connection, most on other names...
            let mut guesser = native_from(source, native, &format!("guesser{n}")).await;
            let mut ids = Vec::new();
            for k in 0..14 {
                let name = if k == 0 { "victim".to_owned() } else { format!("name{k}") };
                ids.push(guesser.send(&auth(&name, "guess-1234"), b"").await);
            }
            // ...with a hello carrying a password, and SASL, beside them.
            let mut hello_guess = NativeClient::connect_from(source, native).await;
            let hello_id = hello_guess.send(&hello("victim", Some("guess-5678")), b"").await;
            let mut sasl_guess = IrcClient::connect_from(source, irc).await;
            sasl_guess.send("CAP REQ :sasl").await;
            sasl_guess.send("AUTHENTICATE PLAIN").await;
            sasl_guess.expect("AUTHENTICATE +").await;
            use base64::Engine as _;
            let payload = base64::engine::general_purpose::STANDARD.encode("\0victim\0guess-9999");
            sasl_guess.send(&format!("AUTHENTICATE {payload}")).await;
            let _ = sent.send(()).await;
            let mut codes: Vec<Option<ErrorCode>> = answers(&mut guesser, &ids).await.iter().map(code).collect();
            codes.push(code(&hello_guess.answer(hello_id).await));
            let sasl_answer = sasl_guess.expect(" 90").await;
            assert!(sasl_answer.contains(" 904 "), "{sasl_answer}");
            (guesser, sasl_guess, codes, payload)
        }));
    }
    drop(sent);
    for _ in 2..=6 {
        all_sent.recv().await.expect("every attacker sent its guesses");
    }
    let started = Instant::now();
    let mut honest = native_from([127, 0, 0, 9], native, "someone").await;
    let logged_in = honest.request(&auth("honest", "honest-password"), b"").await;
    let took = started.elapsed();
    assert_eq!(logged_in, Ok(Reply::LoggedIn { account: "honest".into(), nick: "honest".into() }));
    assert!(took < Duration::from_secs(3), "the honest login took {took:?}");

    for attacker in attackers {
        let (mut guesser, mut sasl_guess, codes, payload) = attacker.await.expect("the attacker ran");
        assert!(codes.iter().all(|c| matches!(c, Some(ErrorCode::BadLogin | ErrorCode::TooManyAttempts))), "{codes:?}");
        assert!(!codes.contains(&Some(ErrorCode::Busy)), "{codes:?}");
        // Each address failed on victim: its next guess, any way, must wait.
        let answer = guesser.request(&auth("victim", "guess-again"), b"").await;
        assert_eq!(code(&answer), Some(ErrorCode::TooManyAttempts), "{answer:?}");
        sasl_guess.send("AUTHENTICATE PLAIN").await;
        sasl_guess.expect("AUTHENTICATE +").await;
        sasl_guess.send(&format!("AUTHENTICATE {payload}")).await;
        sasl_guess.expect(" 904 * :SASL authentication failed: too many failed logins; try again in ").await;
    }
    // The owner, from their own address, is not locked out.
    let mut owner = NativeClient::connect_from([127, 0, 0, 10], native).await;
    let welcome = owner.request(&hello("victim", Some("victim-password")), b"").await;
    assert!(matches!(&welcome, Ok(Reply::Welcome { nick, .. }) if nick == "victim"), "{welcome:?}");
    server.shutdown().await;
}

// Finding 9: roles and bans at every login.

/// Finding 9: an admin whose role was revoked stayed an admin when logging in at connect
/// (SASL, or `hello` with a password). The role is read again at every login.
#[tokio::test]
async fn a_revoked_admin_is_no_admin_at_the_next_login_however_it_logs_in() {
    let data = support::tempdir::TempDir::new();
    admin_account(data.path(), "root", "root-password");
    let server = support::start_in(data.path(), no_flood).await;
    let mut native = NativeClient::connect(server.native).await;
    assert!(native.request(&hello("root", Some("root-password")), b"").await.is_ok());
    assert!(matches!(native.request(&Request::Audit { limit: None }, b"").await, Ok(Reply::Audit { .. })));
    assert!(native.request(&Request::Quit { reason: None }, b"").await.is_ok());
    let mut ircer = sasl(server.irc_addr(), "root", "root-password", "").await;
    ircer.send("WHOIS root").await;
    let whois = ircer.collect_until(" 318 ").await;
    assert!(whois.iter().any(|l| l.contains(" 313 root root ")), "{whois:#?}");
    ircer.send("QUIT").await;
    ircer.expect_closed().await;

    revoke_admin(data.path(), "root");
    let mut native = NativeClient::connect(server.native).await;
    assert!(native.request(&hello("root", Some("root-password")), b"").await.is_ok());
    let audit = native.request(&Request::Audit { limit: None }, b"").await;
    assert_eq!(code(&audit), Some(ErrorCode::NotAdmin), "{audit:?}");
    let mut ircer = sasl(server.irc_addr(), "root", "root-password", "").await;
    ircer.send("WHOIS root").await;
    let whois = ircer.collect_until(" 318 ").await;
    assert!(!whois.iter().any(|l| l.contains(" 313 ")), "{whois:#?}");
    ircer.send("KLINE someone 0 :nope").await;
    ircer.expect(" 481 root :Permission Denied").await;
    server.shutdown().await;
}

/// Finding 9: logging in mid-session skipped the server ban check. A server ban on the
/// account `troll` refuses troll's login from a guest session on another address, in
/// every protocol, and the guest stays a guest.
#[tokio::test]
async fn a_server_banned_account_cannot_log_in_mid_session() {
    let data = support::tempdir::TempDir::new();
    admin_account(data.path(), "root", "root-password");
    plain_account(data.path(), "troll", "troll-password");
    let server = support::start_in(data.path(), no_flood).await;
    let mut root = NativeClient::connect(server.native).await;
    assert!(root.request(&hello("root", Some("root-password")), b"").await.is_ok());
    let ban = Request::ServerBan { mask: "troll".into(), seconds: None, reason: Some("trolling".into()) };
    assert!(matches!(root.request(&ban, b"").await, Ok(Reply::ServerModerated { .. })));

    let mut line = LineClient::connect_from([127, 0, 0, 7], server.line).await;
    line.expect_prompt().await;
    line.send("visitor").await;
    line.expect_line("Welcome to the chat, visitor!").await;
    line.send("/login troll troll-password").await;
    line.expect_line("Error: You are banned from this server: trolling.").await;
    line.send("/whois visitor").await;
    line.expect_line("--- visitor ---").await;
    loop {
        let shown = line.next_line().await.expect("the whois");
        assert!(!shown.contains("logged in as"), "{shown}");
        if shown.starts_with("  online since") {
            break;
        }
    }

    let mut native = native_from([127, 0, 0, 8], server.native, "stranger").await;
    let answer = native.request(&auth("troll", "troll-password"), b"").await;
    assert_eq!(code(&answer), Some(ErrorCode::ServerBanned), "{answer:?}");
    let mut at_connect = NativeClient::connect_from([127, 0, 0, 8], server.native).await;
    let answer = at_connect.request(&hello("troll", Some("troll-password")), b"").await;
    assert_eq!(code(&answer), Some(ErrorCode::ServerBanned), "{answer:?}");
    let mut ircer = IrcClient::join(server.irc_addr(), "wanderer", "").await;
    ircer.send("PRIVMSG NickServ :IDENTIFY troll troll-password").await;
    ircer.expect(" 465 wanderer :You are banned from this server: trolling").await;
    ircer.send("WHOIS wanderer").await;
    let whois = ircer.collect_until(" 318 ").await;
    assert!(!whois.iter().any(|l| l.contains(" 330 ")), "{whois:#?}");
    server.shutdown().await;
}

/// Finding 9: bans are checked at connect. The lobby is a room like any other now, and
/// every session enters it on connecting: a ban there must hold when its subject comes
/// back, as it did when lobby bans were the server's bans, on every gateway and for a
/// login at connect too.
#[tokio::test]
async fn a_ban_in_the_lobby_holds_when_its_subject_connects_again() {
    let data = support::tempdir::TempDir::new();
    admin_account(data.path(), "root", "root-password");
    plain_account(data.path(), "troll", "troll-password");
    let server = support::start_in(data.path(), no_flood).await;
    let mut root = NativeClient::connect(server.native).await;
    assert!(root.request(&hello("root", Some("root-password")), b"").await.is_ok());
    let mut pest = native_from([127, 0, 0, 5], server.native, "pest").await;
    let lobby = || Some("lobby".to_owned());
    let ban = Request::Ban { room: lobby(), mask: "127.0.0.5".into(), seconds: None, reason: Some("spam".into()) };
    assert!(matches!(root.request(&ban, b"").await, Ok(Reply::Moderated { .. })));
    let left = pest
        .expect(|r| match &r.msg {
            ServerMsg::Left { room, nick, reason, .. } if room == "lobby" => Some((nick.clone(), *reason)),
            _ => None,
        })
        .await;
    assert_eq!(left, ("pest".into(), parley_proto::msg::LeaveReason::Kicked));

    let mut native = NativeClient::connect_from([127, 0, 0, 5], server.native).await;
    assert_eq!(code(&native.request(&hello("another", None), b"").await), Some(ErrorCode::Banned));
    let mut line = LineClient::connect_from([127, 0, 0, 5], server.line).await;
    line.expect_prompt().await;
    line.send("yetanother").await;
    line.expect_line("Sorry: you are banned from lobby: spam.").await;
    // An IRC client starts in no channel: the lobby's ban keeps it out of the lobby
    // (server bans keep clients off the server).
    let mut ircer = IrcClient::connect_from([127, 0, 0, 5], server.irc_addr()).await;
    ircer.send("NICK ircpest").await;
    ircer.send("USER ircpest 0 * :ircpest").await;
    ircer.expect(" 001 ircpest ").await;
    ircer.send("JOIN #lobby").await;
    ircer.expect(" 474 ircpest #lobby ").await;

    // A nick ban covers the account of that name logging in at connect, and whoever
    // holds its nick keeps it.
    let mut holder = native_from([127, 0, 0, 6], server.native, "Troll").await;
    let ban = Request::Ban { room: lobby(), mask: "troll".into(), seconds: None, reason: None };
    assert!(matches!(root.request(&ban, b"").await, Ok(Reply::Moderated { .. })));
    let mut troll = NativeClient::connect_from([127, 0, 0, 7], server.native).await;
    assert_eq!(code(&troll.request(&hello("troll", Some("troll-password")), b"").await), Some(ErrorCode::Banned));
    let whois = holder.request(&Request::Whois { nick: "troll".into() }, b"").await;
    assert!(matches!(&whois, Ok(Reply::Whois { nick, .. }) if nick == "Troll"), "{whois:?}");
    native_from([127, 0, 0, 8], server.native, "welcome").await;
    server.shutdown().await;
}

/// Finding 9: a room ban on an account applies to a session that logs in to it
/// mid-session: it is put out of that room at once, and cannot come back.
#[tokio::test]
async fn logging_in_mid_session_puts_the_session_out_of_rooms_that_ban_its_account() {
    let server = support::start_with(no_flood).await;
    let mut olga = registered(server.native, "olga", "olga-password").await;
    assert!(olga.request(&join("den"), b"").await.is_ok());
    let mut imp = registered(server.native, "imp", "imp-password").await;
    assert!(imp.request(&Request::Quit { reason: None }, b"").await.is_ok());
    let ban = Request::Ban { room: Some("den".into()), mask: "imp".into(), seconds: None, reason: None };
    assert!(matches!(olga.request(&ban, b"").await, Ok(Reply::Moderated { .. })));

    let mut stranger = NativeClient::join(server.native, "stranger").await;
    assert!(stranger.request(&join("den"), b"").await.is_ok(), "a guest of another name is not banned");
    let logged_in = stranger.request(&auth("imp", "imp-password"), b"").await;
    assert_eq!(logged_in, Ok(Reply::LoggedIn { account: "imp".into(), nick: "imp".into() }));
    let kicked = olga
        .expect(|r| match &r.msg {
            ServerMsg::Left { room, nick, reason, .. } if room == "den" => Some((nick.clone(), *reason)),
            _ => None,
        })
        .await;
    assert_eq!(kicked, ("imp".into(), parley_proto::msg::LeaveReason::Kicked));
    let answer = stranger.request(&say("den"), b"still here?").await;
    assert_eq!(code(&answer), Some(ErrorCode::NotInRoom), "{answer:?}");
    assert_eq!(code(&stranger.request(&join("den"), b"").await), Some(ErrorCode::Banned));
    server.shutdown().await;
}

// Finding 11: auditoriums.

/// Finding 11: nick and away changes went to every room-mate, whatever
/// `announce_joins_up_to` said. In a room of four with it at 2, a plain member's changes
/// reach nobody who shares only that room (a marker message said after them arrives
/// first), and an operator's reach everyone.
#[tokio::test]
async fn nick_and_away_changes_in_an_auditorium_come_only_from_those_shown() {
    let server = support::start_with(|c| {
        no_flood(c);
        c.limits.announce_joins_up_to = 2;
    })
    .await;
    let addr = server.irc_addr();
    let caps = "away-notify";
    line_account(&server, "boss", "boss-password").await;
    let mut boss = sasl(addr, "boss", "boss-password", caps).await;
    boss.send("JOIN #hall").await;
    boss.expect(" 366 boss #hall ").await;
    let mut eye = IrcClient::join(addr, "eye", caps).await;
    eye.send("JOIN #hall").await;
    eye.expect(" 366 eye #hall ").await;
    eye.send("PART #lobby").await;
    eye.expect("PART #lobby").await;
    let mut plain = NativeClient::join(server.native, "plain").await;
    assert!(plain.request(&join("hall"), b"").await.is_ok());
    assert!(plain.request(&Request::Part { room: Some("lobby".into()) }, b"").await.is_ok());
    let mut liner = LineClient::join(server.line, "liner").await;
    liner.send("/join hall").await;
    liner.expect_line("You joined hall. Users here: @boss, liner").await;

    assert!(plain.request(&Request::Nick { nick: "plainer".into() }, b"").await.is_ok());
    assert!(plain.request(&Request::Away { message: Some("gone fishing".into()) }, b"").await.is_ok());
    assert!(plain.request(&say("hall"), b"marker one").await.is_ok());
    let before = eye.collect_until("PRIVMSG #hall :marker one").await;
    assert!(before.last().is_some_and(|l| l.starts_with(":plainer!")), "{before:#?}");
    assert!(!before.iter().any(|l| l.contains(" NICK ") || l.contains(" AWAY ")), "{before:#?}");
    let (_, skipped) = liner.expect_line("plainer: marker one").await;
    assert!(!skipped.iter().any(|l| l.contains("is now known as")), "{skipped:?}");

    // The operator is shown to everyone, and so are its changes.
    boss.send("NICK bigboss").await;
    boss.expect(":boss!~boss@parley.local NICK :bigboss").await;
    boss.send("AWAY :lunch").await;
    boss.expect(" 306 bigboss ").await;
    eye.expect(":boss!~boss@parley.local NICK :bigboss").await;
    eye.expect(":bigboss!~boss@parley.local AWAY :lunch").await;
    liner.expect_line("boss is now known as bigboss.").await;
    let renamed = plain
        .expect(|r| match &r.msg {
            ServerMsg::Nick { old, new, .. } => Some((old.clone(), new.clone())),
            _ => None,
        })
        .await;
    assert_eq!(renamed, ("boss".into(), "bigboss".into()));
    server.shutdown().await;
}

// Finding 12: the recent-message cache.

/// Finding 12: each room's recent messages were kept forever and all reloaded at start.
/// What shows: an unregistered room's past is not replayed into its next life, and after
/// a restart unregistered rooms start empty, while registered ones replay theirs.
#[tokio::test]
async fn only_registered_rooms_replay_their_past_after_emptying_or_a_restart() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    let mut gus = NativeClient::join(server.native, "gus").await;
    assert!(gus.request(&join("scratch"), b"").await.is_ok());
    assert!(gus.request(&say("scratch"), b"first life").await.is_ok());
    assert!(gus.request(&Request::Part { room: Some("scratch".into()) }, b"").await.is_ok());
    let joined = gus.request(&join("scratch"), b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if history.is_empty()), "{joined:?}");
    assert!(gus.request(&say("scratch"), b"second life").await.is_ok());
    let mut reg = registered(server.native, "reg", "reg-password").await;
    assert!(reg.request(&join("keep"), b"").await.is_ok());
    reg.expect(|r| (r.text() == "keep is now registered to reg.").then_some(())).await;
    assert!(reg.request(&say("keep"), b"kept").await.is_ok());
    let mut mate = NativeClient::join(server.native, "mate").await;
    let joined = mate.request(&join("scratch"), b"").await;
    assert!(
        matches!(&joined, Ok(Reply::Joined { history, .. }) if texts(history) == ["second life"]),
        "the current life is shown to who joins it: {joined:?}"
    );
    server.shutdown().await;

    let server = support::start_in(data.path(), no_flood).await;
    let mut next = NativeClient::join(server.native, "next").await;
    let joined = next.request(&join("scratch"), b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if history.is_empty()), "{joined:?}");
    assert!(page(&mut next, &history("scratch", None, None, None)).await.is_empty());
    let joined = next.request(&join("keep"), b"").await;
    assert!(matches!(&joined, Ok(Reply::Joined { history, .. }) if texts(history) == ["kept"]), "{joined:?}");
    let mut line = LineClient::join(server.line, "liner").await;
    line.send("/join keep").await;
    line.expect_line("--- History of keep: 1 messages, #1 to #1 ---").await;
    line.expect_line("reg: kept").await;
    server.shutdown().await;
}

// Finding 13: files are checked before they are stored, and quotas follow networks.

/// Finding 13: an upload to nobody was stored and charged. Now it is refused before any
/// piece, and nothing reaches the disk.
#[tokio::test]
async fn an_upload_to_nobody_is_refused_before_anything_is_stored() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |c| {
        no_flood(c);
        c.files.quota_bytes = 100;
    })
    .await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let refused = offer(&mut alice, None, Some("nobody"), &[1u8; 100]).await;
    assert_eq!(refusal(refused), ErrorCode::NoSuchNick);
    let refused = offer(&mut alice, Some("nowhere"), None, &[1u8; 100]).await;
    assert_eq!(refusal(refused), ErrorCode::NoSuchRoom);
    let files = data.path().join("files");
    assert!(files_under(&files).is_empty(), "{:?}", files_under(&files));
    // Nothing was charged: the whole quota is still there.
    share(&mut alice, Some("lobby"), None, &[1u8; 100]).await.expect("the quota is whole");
    server.shutdown().await;
}

/// Finding 13: an upload into a room where the sender is muted was stored and charged.
/// Now it is refused when offered, and when the mute comes while the bytes do, at the
/// end, with nothing kept.
#[tokio::test]
async fn an_upload_from_someone_muted_is_refused_and_nothing_is_kept() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |c| {
        no_flood(c);
        c.files.quota_bytes = 100;
    })
    .await;
    let mut op = registered(server.native, "op", "op-password").await;
    assert!(op.request(&join("dev"), b"").await.is_ok());
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&join("dev"), b"").await.is_ok());

    // Muted while the bytes come: refused at the end, nothing kept, the quota whole.
    let (file, _) = offer(&mut alice, Some("dev"), None, &[2u8; 100]).await.expect("offered");
    let mute = Request::Mute { room: Some("dev".into()), nick: "alice".into(), seconds: None };
    assert!(op.request(&mute, b"").await.is_ok());
    assert_eq!(code(&piece(&mut alice, &file, 0, &[2u8; 100]).await), Some(ErrorCode::Muted));
    // Muted before: refused at once.
    assert_eq!(refusal(offer(&mut alice, Some("dev"), None, &[2u8; 100]).await), ErrorCode::Muted);
    let shares = data.path().join("files").join("shares");
    assert!(files_under(&shares).is_empty(), "{:?}", files_under(&shares));
    assert_eq!(code(&alice.request(&download(&file), b"").await), Some(ErrorCode::NoSuchFile));
    share(&mut alice, Some("lobby"), None, &[2u8; 100]).await.expect("the quota is whole");
    server.shutdown().await;
}

/// Finding 13: guests' quotas were per nick, so `/nick` reset them. Now a guest's
/// quota is its network's: a new nick or a new connection does not renew it, and a
/// guest from another address has its own.
#[tokio::test]
async fn a_guests_quota_follows_its_address_not_its_nick() {
    let server = support::start_with(|c| {
        no_flood(c);
        c.files.quota_bytes = 300_000;
    })
    .await;
    let big = vec![3u8; 200_000];
    let mut guest = native_from([127, 0, 0, 3], server.native, "guest").await;
    share(&mut guest, Some("lobby"), None, &big).await.expect("fits");
    assert_eq!(refusal(share(&mut guest, Some("lobby"), None, &big).await), ErrorCode::QuotaExceeded);
    assert!(guest.request(&Request::Nick { nick: "renamed".into() }, b"").await.is_ok());
    assert_eq!(refusal(share(&mut guest, Some("lobby"), None, &big).await), ErrorCode::QuotaExceeded);
    assert!(guest.request(&Request::Quit { reason: None }, b"").await.is_ok());
    let mut again = native_from([127, 0, 0, 3], server.native, "fresh").await;
    assert_eq!(refusal(share(&mut again, Some("lobby"), None, &big).await), ErrorCode::QuotaExceeded);
    let mut other = native_from([127, 0, 0, 4], server.native, "other").await;
    share(&mut other, Some("lobby"), None, &big).await.expect("another address has its own quota");
    server.shutdown().await;
}

// Reads, addresses, and the hub itself.

/// History reads are bounded: one session flooding searches has one read at a time (its
/// requests are answered in order, each after the one before), so it cannot take the
/// store from everyone else, whose searches are still answered.
#[tokio::test]
async fn a_flood_of_searches_from_one_session_is_read_one_at_a_time_and_others_are_served() {
    let server = support::start_with(no_flood).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    for n in 0..20 {
        assert!(alice.request(&say("lobby"), format!("needle {n}").as_bytes()).await.is_ok());
    }
    let mut bob = NativeClient::join(server.native, "bob").await;
    let mut burst = BytesMut::new();
    let first = 500;
    for id in first..first + 6 {
        parley_proto::msg::encode_request(id, &search("needle"), b"", &mut burst).expect("encodes");
    }
    alice.send_raw(&burst).await;
    let ids: Vec<u64> = (first..first + 6).collect();
    let codes: Vec<Option<ErrorCode>> = answers(&mut alice, &ids).await.iter().map(code).collect();
    assert_eq!(codes, [None; 6], "every search answered");
    assert_eq!(found(&mut bob, "needle").await.len(), 20);
    assert_eq!(found(&mut alice, "needle").await.len(), 20, "once its reads are done, it reads again");
    server.shutdown().await;
}

/// Bans count IPv6 addresses by their /64, and IPv4-mapped addresses as IPv4: a server
/// ban on `::1` refuses a client from `::1`, and one on 127.0.0.5 refuses 127.0.0.5
/// arriving on an IPv6 socket as `::ffff:127.0.0.5`.
#[tokio::test]
async fn server_bans_hold_for_ipv6_clients_and_ipv4_mapped_ones() {
    let data = support::tempdir::TempDir::new();
    admin_account(data.path(), "root", "root-password");
    // Loopback IPv6, where the machine has it; an IPv6 socket taking IPv4 clients in
    // any case, on loopback only.
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let server = support::start_in(data.path(), |c| {
        no_flood(c);
        c.allow_plain_remote = true;
        // First, so that the harness takes them as its native and IRC listeners.
        let listener = |kind, addr: &str| Listener { kind, tls: false, addr: addr.into(), proxy_protocol: false };
        c.listeners.insert(0, listener(ListenerKind::Irc, "[::ffff:127.0.0.1]:0"));
        if v6 {
            c.listeners.insert(0, listener(ListenerKind::Native, "[::1]:0"));
        }
    })
    .await;
    let mut root = LineClient::join(server.line, "someone").await;
    root.send("/login root root-password").await;
    root.expect_line("You are logged in as root.").await;

    if v6 {
        let mut before = NativeClient::connect(server.native).await;
        assert!(before.request(&hello("sixer", None), b"").await.is_ok());
        root.send("/serverban ::1 six").await;
        root.expect_line("Done: server ban ::/64.").await;
        let last = before.expect_closed().await;
        assert!(
            last.iter().any(|r| matches!(r.msg, ServerMsg::Error { code: ErrorCode::ServerBanned, .. })),
            "{last:?}"
        );
        let mut after = NativeClient::connect(server.native).await;
        assert_eq!(code(&after.request(&hello("sixer", None), b"").await), Some(ErrorCode::ServerBanned));
    }

    let mapped = SocketAddr::from(([127, 0, 0, 1], server.irc_addr().port()));
    let mut before = IrcClient::connect_from([127, 0, 0, 5], mapped).await;
    before.register("mapped", "").await;
    root.send("/serverban 127.0.0.5 mapped").await;
    root.expect_line("Done: server ban 127.0.0.5.").await;
    before.expect(" 465 ").await;
    let mut after = IrcClient::connect_from([127, 0, 0, 5], mapped).await;
    after.send("NICK mapped").await;
    after.send("USER mapped 0 * :mapped").await;
    after.expect(" 465 ").await;
    let mut elsewhere = IrcClient::connect_from([127, 0, 0, 6], mapped).await;
    elsewhere.register("fine", "").await;
    server.shutdown().await;
}

/// A dead hub ends the server: `run` returns `HubDied` at once and every connection is
/// closed, instead of a process that accepts connections and answers nobody.
#[tokio::test]
async fn a_dead_hub_stops_the_server_and_closes_its_connections() {
    let data = support::tempdir::TempDir::new();
    let config = Config {
        data_dir: data.path().to_owned(),
        listeners: vec![
            Listener { kind: ListenerKind::Line, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false },
            Listener { kind: ListenerKind::Native, tls: false, addr: "127.0.0.1:0".into(), proxy_protocol: false },
        ],
        ..Config::default()
    };
    let server = parley_server::Server::bind(config).await.expect("binds");
    let addrs = server.local_addrs();
    let hub = server.hub();
    let running = tokio::spawn(server.run(std::future::pending()));
    let mut line = LineClient::join(addrs[0].addr, "liner").await;
    let mut native = NativeClient::join(addrs[1].addr, "native").await;

    hub.crash().await;
    let ended = tokio::time::timeout(WAIT, running).await.expect("run returns in time").expect("the task");
    assert!(matches!(ended, Err(parley_server::ServerError::HubDied(_))), "{ended:?}");
    line.expect_closed().await;
    native.expect_closed().await;
}
