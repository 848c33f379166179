//! `parley serve --database postgres://…`: a real server process on a PostgreSQL server
//! of the test's own (on 127.0.0.1; skipped loudly when PostgreSQL is not installed, a
//! failure in CI), and `parley admin migrate --to postgres://…` moving a data
//! directory's SQLite database into it.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use parley_client::{Client, HistoryCursor};
use parley_store::testing::TestPostgres;

const WAIT: Duration = Duration::from_secs(30);

use support::{connect, Server, TempDir};

/// The texts of `room`'s latest messages, oldest first.
async fn texts(client: &Client, room: &str) -> Vec<String> {
    let (_, page) = client.history(Some(room), HistoryCursor::Latest, Some(100)).await.expect("a page");
    page.into_iter().map(|m| m.text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_keeps_history_accounts_and_search_across_a_kill_9() {
    let Some(postgres) = TestPostgres::shared() else { return };
    let url = postgres.database();
    let first_data = TempDir::new("serve-1");
    let server = Server::start_with(&first_data.0, &["--database", &url]);
    let ada = connect(&server.addr, "ada").await;
    ada.register("ada's password").await.expect("registers");
    let mut acked = Vec::new();
    for n in 0..20 {
        let text = format!("message {n} about the café");
        let (seq, _) = tokio::time::timeout(WAIT, ada.say("lobby", &text)).await.expect("in time").expect("acked");
        acked.push((seq, text));
    }
    server.kill_9();
    assert!(!first_data.0.join("parley.db").exists(), "nothing went to SQLite");

    // Another data directory, the same database: everything comes from PostgreSQL.
    let second_data = TempDir::new("serve-2");
    let server = Server::start_with(&second_data.0, &["--database", &url]);
    let bob = connect(&server.addr, "bob").await;
    let (_, page) = bob.history(Some("lobby"), HistoryCursor::Latest, Some(100)).await.expect("a page");
    let stored: Vec<(u64, String)> = page.into_iter().map(|m| (m.seq, m.text)).collect();
    assert_eq!(stored, acked, "every acknowledged message, once, in order, with its seq");
    let (seq, _) = bob.say("lobby", "after the restart").await.expect("acked");
    assert_eq!(seq, acked.last().expect("sent").0 + 1, "the room's order continues");
    let found = bob.search("CAFE 7", None).await.expect("searches");
    assert_eq!(found.len(), 1, "search runs in PostgreSQL, accents folded: {found:?}");
    assert_eq!(found[0].1.text, "message 7 about the café");
    let again = connect(&server.addr, "ada2").await;
    assert_eq!(again.login(Some("ada"), "ada's password").await.expect("logs in"), "ada", "the account was kept");
    let stranger = connect(&server.addr, "carol").await;
    assert!(stranger.login(Some("ada"), "wrong password").await.is_err(), "with its password");

    // Chat logs come out of the same database, while the server runs.
    let export = parley(&["log", "export", "--database", &url, "--room", "LOBBY", "--format", "jsonl"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 21);
    assert_eq!(lines[7]["text"], "message 7 about the café");
    assert_eq!(lines[20]["text"], "after the restart");
    let unknown = parley(&["log", "export", "--database", &url, "--room", "nowhere"]);
    assert!(!unknown.status.success(), "a room without history is refused");
}

fn parley(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parley")).args(args).stdin(Stdio::null()).output().expect("runs parley")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_data_directory_into_postgres_and_refuses_a_database_in_use() {
    let Some(postgres) = TestPostgres::shared() else { return };
    let url = postgres.database();
    let data = TempDir::new("migrate");
    let data_dir = data.0.display().to_string();

    // A server on SQLite: accounts, a registered room with a topic, messages, a
    // private message.
    let server = Server::start(&data.0);
    let ada = connect(&server.addr, "ada").await;
    ada.register("ada's password").await.expect("registers");
    let bob = connect(&server.addr, "bob").await;
    bob.register("bob's password").await.expect("registers");
    // A room a logged-in user creates is registered to them.
    ada.join("staff").await.expect("joins");
    let topic = parley_proto::msg::Request::Topic { room: Some("staff".into()), topic: Some("plans".into()) };
    ada.call(&topic).await.expect("sets the topic");
    for n in 0..5 {
        ada.say("staff", &format!("staff note {n}")).await.expect("acked");
        bob.say("lobby", &format!("lobby chat {n}")).await.expect("acked");
    }
    ada.whisper("bob", "a private word").await.expect("sent");
    let before_lobby = texts(&bob, "lobby").await;
    let before_staff = texts(&ada, "staff").await;
    drop((ada, bob));
    server.kill_9();

    let moved = parley(&["admin", "--data-dir", &data_dir, "migrate", "--to", &url]);
    let said = String::from_utf8_lossy(&moved.stderr).into_owned();
    assert!(moved.status.success(), "migrates: {said}");
    assert!(said.contains("11 messages, 2 accounts,"), "says what it moved: {said}");

    // Once moved, the database is not empty: a second run refuses, changing nothing.
    let again = parley(&["admin", "--data-dir", &data_dir, "migrate", "--to", &url]);
    let refused = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(!again.status.success(), "a second migration must be refused");
    assert!(refused.contains("not empty"), "clearly: {refused}");

    // A server on PostgreSQL, with an empty data directory, has it all.
    let fresh = TempDir::new("migrate-fresh");
    let server = Server::start_with(&fresh.0, &["--database", &url]);
    let ada = connect(&server.addr, "guest1").await;
    assert_eq!(ada.login(Some("ada"), "ada's password").await.expect("logs in"), "ada");
    ada.join("staff").await.expect("joins the registered room");
    assert_eq!(texts(&ada, "staff").await, before_staff, "the registered room's history");
    assert_eq!(texts(&ada, "lobby").await, before_lobby);
    let private = ada.conversation("bob", HistoryCursor::Latest, Some(10)).await.expect("reads");
    assert_eq!(private.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["a private word"]);
    let found = ada.search("staff note 3", None).await.expect("searches");
    assert_eq!(found.len(), 1, "the search index is built: {found:?}");
    let (seq, _) = ada.say("staff", "after the move").await.expect("acked");
    assert_eq!(seq, 6, "the room's order continues");
    let audit = parley(&["admin", "--database", &url, "audit"]);
    let lines = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(lines.contains("topic") && lines.contains("plans"), "the audit log moved too: {lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_database_the_server_refuses_messages_clearly_and_carries_on_when_it_returns() {
    use parley_client::Error;
    use parley_proto::msg::ErrorCode;
    let Some(postgres) = TestPostgres::own() else { return };
    let postgres = std::sync::Arc::new(postgres);
    let url = postgres.database();
    let data = TempDir::new("pg-outage");
    let server = Server::start_with(&data.0, &["--database", &url]);
    let ada = connect(&server.addr, "ada").await;
    let bob = connect(&server.addr, "bob").await;
    let mut acked = Vec::new();
    for n in 0..3 {
        let text = format!("before {n}");
        ada.say("lobby", &text).await.expect("acknowledged");
        acked.push(text);
    }
    let blocking = |f: fn(&TestPostgres), postgres: &std::sync::Arc<TestPostgres>| {
        let postgres = postgres.clone();
        tokio::task::spawn_blocking(move || f(&postgres))
    };

    // PostgreSQL is down: a message is refused as unsaved, and nobody receives it.
    blocking(TestPostgres::stop, &postgres).await.expect("stops");
    match ada.say("lobby", "while it is down").await {
        Err(Error::Refused { code: ErrorCode::StoreFailed, .. }) => {}
        other => panic!("a message that cannot be stored is refused as such: {other:?}"),
    }
    assert!(bob.ping().await.is_ok(), "the server serves on");

    // It comes back; the server, never restarted, stores again.
    blocking(TestPostgres::start_again, &postgres).await.expect("starts");
    for n in 0..3 {
        let text = format!("after {n}");
        ada.say("lobby", &text).await.expect("stored on a new connection");
        acked.push(text);
    }
    assert_eq!(texts(&bob, "lobby").await, acked, "every acknowledged message, and only those, in order");

    // A restart of PostgreSQL under a running server costs at most the calls that
    // found their connection cut.
    blocking(TestPostgres::restart, &postgres).await.expect("restarts");
    match ada.say("lobby", "after a restart").await {
        Ok(_) => acked.push("after a restart".to_owned()),
        Err(Error::Refused { code: ErrorCode::StoreFailed, .. }) => {}
        Err(other) => panic!("refused for the wrong reason: {other}"),
    }
    ada.say("lobby", "and again").await.expect("stored");
    acked.push("and again".to_owned());
    let (_, page) = match bob.history(Some("lobby"), HistoryCursor::Latest, Some(100)).await {
        Err(Error::Refused { code: ErrorCode::StoreUnreadable, .. }) => {
            bob.history(Some("lobby"), HistoryCursor::Latest, Some(100)).await
        }
        first => first,
    }
    .expect("reads once connected again");
    let stored: Vec<String> = page.into_iter().map(|m| m.text).collect();
    assert_eq!(stored, acked);
    drop(server);
    tokio::task::spawn_blocking(move || drop(postgres)).await.expect("stops");
}
