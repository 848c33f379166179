//! The upgrade fixtures' generator. Each schema version the store has written has a data
//! directory under `crates/store/tests/fixtures/vN`, made by driving that version's own
//! server, and `crates/store/tests/upgrade.rs` opens each one with today's code.
//!
//! This test drives today's server through what a fixture must hold (accounts, an admin,
//! a registered room with operators, a topic, a ban and a mute, lobby mutes and server
//! bans, an unregistered room, private messages between accounts and from a guest, files
//! shared in a room and privately, a resume token) and fails when today's schema version has no fixture
//! yet. To write it, after adding a migration:
//!
//! ```sh
//! PARLEY_WRITE_FIXTURE=1 cargo test -p parley --test fixtures
//! ```
//!
//! then commit the new directory and give it a test in `crates/store/tests/upgrade.rs`.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use parley_client::{Audience, Client, Reply, Request};
use parley_server::{Config, Listener, ListenerKind, Server};

const WAIT: Duration = Duration::from_secs(30);

use support::{connect, TempDir};

/// Runs `parley admin --data-dir DATA ARGS`; it must succeed.
fn admin(data: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(out.status.success(), "parley admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn call(client: &Client, request: Request) {
    let answer = client.call(&request).await;
    assert!(
        matches!(answer, Ok(Reply::Moderated { .. } | Reply::ServerModerated { .. } | Reply::Topic { .. })),
        "{request:?}: {answer:?}"
    );
}

/// Writes a data directory with everything a fixture holds into `data`, through a real
/// server, stopped cleanly at the end.
async fn write_fixture(data: &Path) {
    let config = Config {
        data_dir: data.to_owned(),
        listeners: vec![Listener::new(ListenerKind::Native, false, "127.0.0.1:0")],
        ..Config::default()
    };
    let server = Server::bind(config).await.expect("binds");
    let addr = server.local_addrs()[0].addr.to_string();
    let running = support::Running::start(server);

    // Accounts, in this order; chief is made a server admin by the owner.
    let chief = connect(&addr, "chief").await;
    chief.register("chiefpass1").await.expect("registers");
    let alice = connect(&addr, "alice").await;
    alice.register("alicepass1").await.expect("registers");
    let bob = connect(&addr, "bob").await;
    bob.register("bobpass1").await.expect("registers");
    admin(data, &["users", "grant", "chief", "admin"]);
    // A resume token (schema 9): alice's connection stays logged in.
    alice.login_remembered(None, "alicepass1").await.expect("logs in, remembered");
    chief.login(None, "chiefpass1").await.expect("logs in again, an admin now");

    // The lobby: guests talk, one is muted; server bans by nick and by address.
    let carol = connect(&addr, "carol").await;
    carol.say("lobby", "hello from carol").await.expect("said");
    alice.say("lobby", "hello from alice").await.expect("said");
    call(&chief, Request::Mute { room: Some("lobby".into()), nick: "carol".into(), seconds: None }).await;
    call(&chief, Request::ServerBan { mask: "spammer".into(), seconds: None, reason: Some("spam".into()) }).await;
    call(&chief, Request::ServerBan { mask: "10.9.9.9".into(), seconds: None, reason: None }).await;

    // A registered room (its creator is logged in) with a second operator, a topic, a
    // ban by address and a mute, and a file shared in it.
    alice.join("staff").await.expect("founds staff");
    bob.join("staff").await.expect("joins staff");
    call(&alice, Request::Op { room: Some("staff".into()), nick: "bob".into() }).await;
    call(&alice, Request::Topic { room: Some("staff".into()), topic: Some("secret plans".into()) }).await;
    call(&bob, Request::Ban { room: Some("staff".into()), mask: "10.1.2.3".into(), seconds: None, reason: None }).await;
    call(&alice, Request::Mute { room: Some("staff".into()), nick: "noisy".into(), seconds: Some(3600 * 24 * 365) })
        .await;
    alice.say("staff", "staff only words").await.expect("said");
    let files = TempDir::new("files");
    let plan = files.0.join("plan.txt");
    std::fs::write(&plan, "the plan, in a file\n").expect("written");
    alice.send_file(&plan, Audience::Room("staff".into()), |_| {}).await.expect("shared in staff");

    // An unregistered room: a guest's, gone when its last member leaves.
    let dave = connect(&addr, "dave").await;
    dave.join("guestroom").await.expect("creates guestroom");
    dave.say("guestroom", "a guest's room").await.expect("said");

    // Private messages: between accounts, from a guest, and a file shared privately.
    alice.whisper("bob", "private from alice").await.expect("whispered");
    bob.whisper("alice", "private from bob").await.expect("whispered");
    dave.whisper("alice", "private from a guest").await.expect("whispered");
    let notes = files.0.join("notes.bin");
    std::fs::write(&notes, (0..=255u8).cycle().take(5_000).collect::<Vec<u8>>()).expect("written");
    bob.send_file(&notes, Audience::User("alice".into()), |_| {}).await.expect("shared with alice");

    running.stop(WAIT).await;
}

fn schema_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("opens");
    conn.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("a version")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("reads") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_schema_has_an_upgrade_fixture() {
    let data = TempDir::new("write");
    write_fixture(&data.0).await;
    let version = schema_version(&data.0.join("parley.db"));
    assert_eq!(version, parley_store::schema_version(), "the server writes today's schema");

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures");
    let target = fixtures.join(format!("v{version}"));
    if std::env::var_os("PARLEY_WRITE_FIXTURE").is_some() && !target.exists() {
        // What a fixture keeps: the database and the files, not temporary uploads.
        std::fs::create_dir_all(&target).expect("creates the fixture");
        let conn = rusqlite::Connection::open(data.0.join("parley.db")).expect("opens");
        let into = target.join("parley.db");
        conn.execute("VACUUM INTO ?1", [into.to_str().expect("a UTF-8 path")]).expect("copies the database, one file");
        let _ = std::fs::remove_dir_all(data.0.join("files/tmp"));
        copy_dir(&data.0.join("files"), &target.join("files"));
    }
    assert!(
        target.join("parley.db").is_file(),
        "schema version {version} has no upgrade fixture: run `PARLEY_WRITE_FIXTURE=1 cargo test -p parley --test \
         fixtures`, commit {}, and test it in crates/store/tests/upgrade.rs",
        target.display()
    );
}
