//! Accounts over real sockets and a real SQLite file: registering, logging in, changing
//! the password, registered nicks protected from squatters, and all of it kept across a
//! restart.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use support::{LineClient, NativeClient};

const PASSWORD: &str = "correct-horse";

fn code(answer: Result<Reply, ServerMsg>) -> Option<ErrorCode> {
    match answer {
        Err(ServerMsg::Error { code, .. }) => Some(code),
        _ => None,
    }
}

fn auth(name: &str, password: &str) -> Request {
    Request::Auth { name: Some(name.into()), password: password.into() }
}

#[tokio::test]
async fn register_log_in_and_change_the_password_in_both_protocols() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    alice.send("/register short").await;
    alice.expect_line("Error: A password has at least 8 characters and at most 1024 bytes.").await;
    alice.send(&format!("/register {PASSWORD}")).await;
    alice.expect_line("alice is now your account. Next time, log in with /login alice PASSWORD.").await;
    alice.send(&format!("/register {PASSWORD}")).await;
    alice.expect_line("Error: The nick alice is registered already.").await;

    // Wrong guesses (from another address: failures slow down the address they come
    // from, for that account) get one answer, whether or not the account exists.
    let mut mallory = NativeClient::connect_from([127, 0, 0, 2], server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "mallory".into(), password: None };
    assert!(mallory.request(&hello, b"").await.is_ok());
    assert_eq!(code(mallory.request(&auth("alice", "wrong password"), b"").await), Some(ErrorCode::BadLogin));
    assert_eq!(code(mallory.request(&auth("nobody", PASSWORD), b"").await), Some(ErrorCode::BadLogin));
    let mut bob = NativeClient::join(server.native, "bob").await;
    let taken = bob.request(&Request::Nick { nick: "ALICE".into() }, b"").await;
    assert_eq!(code(taken), Some(ErrorCode::NickTaken), "alice is online");
    alice.send("/quit").await;
    alice.expect_closed().await;
    let squat = bob.request(&Request::Nick { nick: "alice".into() }, b"").await;
    assert_eq!(code(squat), Some(ErrorCode::NickRegistered), "a registered nick needs its password");

    let logged_in = bob.request(&auth("Alice", PASSWORD), b"").await;
    assert_eq!(logged_in, Ok(Reply::LoggedIn { account: "alice".into(), nick: "alice".into() }));
    let change = Request::Password { old: PASSWORD.into(), new: "battery-staple".into() };
    assert_eq!(bob.request(&change, b"").await, Ok(Reply::PasswordChanged));
    let change = Request::Password { old: "wrong password".into(), new: "battery-staple".into() };
    assert_eq!(code(bob.request(&change, b"").await), Some(ErrorCode::BadLogin));

    let mut carol = NativeClient::connect_from([127, 0, 0, 3], server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "carol".into(), password: None };
    assert!(carol.request(&hello, b"").await.is_ok());
    let not_logged_in = Request::Password { old: PASSWORD.into(), new: "whatever else".into() };
    assert_eq!(code(carol.request(&not_logged_in, b"").await), Some(ErrorCode::NotLoggedIn));
    assert_eq!(code(carol.request(&auth("alice", PASSWORD), b"").await), Some(ErrorCode::BadLogin), "old one");
    server.shutdown().await;
}

#[tokio::test]
async fn a_squatter_is_asked_to_log_in_then_renamed() {
    let server = support::start_with(|c| c.limits.login_grace_secs = 1).await;
    let mut owner = NativeClient::join(server.native, "owner").await;
    assert!(owner.request(&Request::Register { password: PASSWORD.into() }, b"").await.is_ok());
    assert!(owner.request(&Request::Nick { nick: "moved".into() }, b"").await.is_ok());

    let mut watcher = LineClient::join(server.line, "watcher").await;
    let mut squatter = LineClient::connect(server.line).await;
    squatter.expect_prompt().await;
    squatter.send("Owner").await;
    squatter.expect_line("Welcome to the chat, Owner!").await;
    squatter.expect_line("*** The nick Owner is registered. Log in with /login Owner PASSWORD within 1 seconds, or you will be renamed.").await;
    let (renamed, _) = squatter.expect_line(": you did not log in as Owner.").await;
    let guest = renamed.split("known as ").nth(1).and_then(|rest| rest.split(':').next()).expect("a guest nick");
    assert!(guest.starts_with("Guest_"), "{renamed}");
    watcher.expect_line(&format!("Owner is now known as {guest}.")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn logging_in_takes_the_nick_from_whoever_has_it() {
    let server = support::start().await;
    let mut owner = NativeClient::join(server.native, "owner").await;
    assert!(owner.request(&Request::Register { password: PASSWORD.into() }, b"").await.is_ok());
    assert!(owner.request(&Request::Quit { reason: None }, b"").await.is_ok());

    let mut squatter = LineClient::join(server.line, "owner").await;
    squatter.expect_line("Log in with /login owner PASSWORD within 30 seconds, or you will be renamed.").await;
    let mut back = NativeClient::join(server.native, "returning").await;
    let logged_in = back.request(&auth("owner", PASSWORD), b"").await;
    assert_eq!(logged_in, Ok(Reply::LoggedIn { account: "owner".into(), nick: "owner".into() }));
    squatter.expect_line(": owner logged in.").await;
    let (line, _) = squatter.expect_line("returning is now known as owner.").await;
    assert!(line.starts_with('['), "{line}");
    server.shutdown().await;
}

#[tokio::test]
async fn accounts_are_kept_across_a_restart() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |_| {}).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: PASSWORD.into() }, b"").await.is_ok());
    server.shutdown().await;

    let server = support::start_in(data.path(), |_| {}).await;
    let mut again = NativeClient::connect(server.native).await;
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "alice".into(), password: None };
    assert!(again.request(&hello, b"").await.is_ok());
    let notice = again.expect(|r| matches!(r.msg, ServerMsg::Notice { .. }).then(|| r.text())).await;
    assert!(notice.starts_with("The nick alice is registered."), "{notice}");
    assert_eq!(
        again.request(&Request::Auth { name: None, password: PASSWORD.into() }, b"").await,
        Ok(Reply::LoggedIn { account: "alice".into(), nick: "alice".into() })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_store_there_are_no_accounts() {
    let server = support::start_with(|c| c.history.store = false).await;
    let mut alice = NativeClient::join(server.native, "alice").await;
    let refused = alice.request(&Request::Register { password: PASSWORD.into() }, b"").await;
    assert_eq!(code(refused), Some(ErrorCode::AccountsUnavailable));
    server.shutdown().await;
}

#[tokio::test]
async fn hello_with_a_password_logs_in_at_once_and_takes_the_nick() {
    let server = support::start().await;
    let mut owner = NativeClient::join(server.native, "owner").await;
    assert!(owner.request(&Request::Register { password: PASSWORD.into() }, b"").await.is_ok());
    assert!(owner.request(&Request::Quit { reason: None }, b"").await.is_ok());
    let mut squatter = LineClient::join(server.line, "owner").await;

    // A wrong password from elsewhere: refused, and that address must wait before its
    // next try on this account; the owner, from their own address, need not.
    let mut guesser = NativeClient::connect_from([127, 0, 0, 2], server.native).await;
    let wrong = Request::Hello { version: PROTOCOL_VERSION, nick: "owner".into(), password: Some("wrong-one".into()) };
    assert_eq!(code(guesser.request(&wrong, b"").await), Some(ErrorCode::BadLogin), "no session, try again");
    assert_eq!(code(guesser.request(&wrong, b"").await), Some(ErrorCode::TooManyAttempts), "paced");
    let mut back = NativeClient::connect(server.native).await;
    let right = Request::Hello { version: PROTOCOL_VERSION, nick: "OWNER".into(), password: Some(PASSWORD.into()) };
    let welcome = back.request(&right, b"").await;
    assert!(matches!(&welcome, Ok(Reply::Welcome { nick, .. }) if nick == "owner"), "{welcome:?}");
    squatter.expect_line(": owner logged in.").await;
    // Logged in from the start: no grace-period warning, and account requests work.
    let change = Request::Password { old: PASSWORD.into(), new: "battery-staple".into() };
    assert_eq!(back.request(&change, b"").await, Ok(Reply::PasswordChanged));
    server.shutdown().await;
}
