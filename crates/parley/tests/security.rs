//! Deleting an account as the owner does it, with `parley admin users delete` on a
//! server's data directory: whoever registers the name next starts with none of the
//! deleted account's powers.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use std::time::Duration;

use parley_client::{Client, ErrorCode, Event, Events, Reply, Request, Transport};

use support::{connect, Server, TempDir};

/// Runs `parley admin --data-dir DATA ARGS` with `input` on standard input; it must
/// succeed.
fn admin(data: &Path, args: &[&str], input: &str) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("written");
    let out = child.wait_with_output().expect("finishes");
    assert!(out.status.success(), "parley admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Waits for a notice with `text`.
async fn notice(events: &mut Events, text: &str) {
    let wait = async {
        loop {
            match events.next().await {
                Some(Event::Notice { text: got, .. }) if got == text => return,
                Some(_) => {}
                None => panic!("closed before the notice {text:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the notice in time");
}

fn refused(answer: Result<Reply, parley_client::Error>) -> ErrorCode {
    match answer {
        Err(parley_client::Error::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Finding 2 of issue 12: roles were kept by name, so after `parley admin users delete
/// chief` and a restart, a guest who registered `chief` was an admin and operated the
/// old chief's rooms. Now the new `chief` is a new account: no admin, no operator of
/// any room the old one operated, none of the old one's room history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_registered_again_after_parley_admin_deletes_it_has_none_of_the_old_powers() {
    let data = TempDir::new("delete");
    admin(&data.0, &["users", "add", "chief"], "chief-password\n");
    admin(&data.0, &["users", "grant", "chief", "admin"], "");
    admin(&data.0, &["users", "add", "owner"], "owner-password\n");

    let server = Server::start(&data.0);
    let chief = connect(&server.addr, "visitor").await;
    chief.login(Some("chief"), "chief-password").await.expect("logged in");
    assert!(matches!(chief.call(&Request::Audit { limit: None }).await, Ok(Reply::Audit { .. })), "an admin");
    chief.join("hq").await.expect("founds hq");
    chief.say("hq", "the old chief's plans").await.expect("said");
    let topic = Request::Topic { room: Some("hq".into()), topic: Some("the old chief's hq".into()) };
    chief.call(&topic).await.expect("topic set");
    let (owner, mut events, _) = Client::connect(&server.addr, &Transport::Plain).await.expect("connects");
    owner.hello("someone").await.expect("welcomed");
    owner.login(Some("owner"), "owner-password").await.expect("logged in");
    owner.join("ops").await.expect("founds ops");
    notice(&mut events, "ops is now registered to owner.").await;
    owner.call(&Request::Op { room: Some("ops".into()), nick: "chief".into() }).await.expect("chief operates ops");

    // Deleted while the server runs; then the server restarts.
    admin(&data.0, &["users", "delete", "chief"], "");
    drop((chief, owner, server));
    let server = Server::start(&data.0);
    let usurper = connect(&server.addr, "chief").await;
    assert_eq!(usurper.register("usurper-password").await.expect("the name is free"), "chief");

    assert_eq!(refused(usurper.call(&Request::Audit { limit: None }).await), ErrorCode::NotAdmin);
    let whois = usurper.call(&Request::Whois { nick: "chief".into() }).await;
    assert!(matches!(whois, Ok(Reply::Whois { admin: false, .. })), "{whois:?}");
    usurper.join("ops").await.expect("joins ops");
    let ban = Request::Ban { room: Some("ops".into()), mask: "owner".into(), seconds: None, reason: None };
    assert_eq!(refused(usurper.call(&ban).await), ErrorCode::NotOperator);
    let joined = usurper.join("hq").await.expect("joins hq");
    assert!(joined.history.is_empty(), "{:?}", joined.history);
    assert_eq!(joined.topic, None);
    let (_, past) = usurper.history(Some("hq"), parley_client::HistoryCursor::Latest, None).await.expect("a page");
    assert!(past.is_empty(), "{past:?}");
    assert!(usurper.search("plans", None).await.expect("searched").is_empty());
}
