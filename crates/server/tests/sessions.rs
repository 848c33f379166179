//! Resume tokens over real sockets: issued by a remembered login, used by `hello` after
//! a restart, listed and revoked from another session, refused (`bad_token`) once
//! expired, revoked, or their account deleted or its password changed; the browser's
//! path (`POST /session` sets the cookie, a WebSocket `hello` with `resume` uses it,
//! `DELETE /session` ends it), refused from other sites; and guessing is paced.

mod support;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use parley_client::{Client, Error, ErrorCode, Event, Events, LeaveReason, LoginOptions, Transport};
use parley_proto::msg::{encode_request_with, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_proto::native::FrameDecoder;
use parley_server::{Config, Listener, ListenerKind};
use support::remembered::{account_with_token, client, PASSWORD};
use support::{http, HttpAnswer, WAIT};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn refused_with(result: Result<impl std::fmt::Debug, Error>, want: ErrorCode) {
    match result {
        Err(Error::Refused { code, .. }) if code == want => {}
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_logs_in_after_a_restart_in_place_of_the_password() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |_| {}).await;
    let owner = client(server.native).await;
    owner.hello("Ada").await.expect("welcomed");
    owner.register(PASSWORD).await.expect("registers");
    drop(owner);
    let fresh = client(server.native).await;
    let (welcome, token) = fresh.hello_remembered("ada", PASSWORD).await.expect("logs in");
    assert_eq!(welcome.nick, "Ada", "the account's name");
    let token = token.expect("a token with the welcome");
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    let plain = client(server.native).await;
    let (_, none) = plain.hello_with("bystander", None, &LoginOptions::default()).await.expect("a guest");
    assert!(none.is_none(), "no token unless asked");
    server.shutdown().await;

    let server = support::start_in(data.path(), |_| {}).await;
    let back = client(server.native).await;
    let welcome = back.hello_token(&token).await.expect("the token logs in after a restart");
    assert_eq!(welcome.nick, "Ada");
    let sessions = back.sessions().await.expect("lists");
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current, "{sessions:?}");
    assert!(sessions[0].description.starts_with("native 127.0.0.1"), "{sessions:?}");
    // A hello with both a token and a password is refused as a bad request.
    let both = client(server.native).await;
    let options = LoginOptions { token: Some(token.clone()), ..LoginOptions::default() };
    refused_with(both.hello_with("ada", Some(PASSWORD), &options).await, ErrorCode::BadRequest);
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_revoked_from_another_session_is_refused() {
    let server = support::start().await;
    let (first, token_one) = account_with_token(server.native, "grace").await;
    let second = client(server.native).await;
    let (_, token_two) = second.hello_remembered("grace", PASSWORD).await.expect("logs in");
    let token_two = token_two.expect("a token");
    let listed = second.sessions().await.expect("lists");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let theirs = listed.iter().find(|s| !s.current).expect("the other session's token");
    assert!(listed.iter().any(|s| s.current), "{listed:?}");
    assert!(!listed.iter().any(|s| s.description.contains(&token_one)), "the list never shows a token");
    second.revoke_session(theirs.id).await.expect("revokes");
    refused_with(second.revoke_session(theirs.id).await, ErrorCode::NoSuchSession);
    // The connection that held it is signed out (revoking_a_token_signs_out_…).
    assert!(matches!(first.sessions().await, Err(Error::Disconnected)), "signed out");
    assert_eq!(second.sessions().await.expect("lists").len(), 1);

    let later = client(server.native).await;
    refused_with(later.hello_token(&token_one).await, ErrorCode::BadToken);
    // A guest has no sessions to list.
    let guest = client(server.native).await;
    guest.hello("someone").await.expect("welcomed");
    refused_with(guest.sessions().await, ErrorCode::NotLoggedIn);
    // The other token still works: a failure slows down that token, not the others.
    let again = client(server.native).await;
    assert_eq!(again.hello_token(&token_two).await.expect("still valid").nick, "grace");
    server.shutdown().await;
}

/// The next event that `want` picks out, within [`WAIT`].
async fn event_where<T>(events: &mut Events, what: &str, want: impl Fn(Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(found) = want(events.next().await.unwrap_or_else(|| panic!("closed before {what}"))) {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {WAIT:?}"))
}

#[tokio::test]
async fn revoking_a_token_signs_out_the_connections_holding_it() {
    let server = support::start().await;
    let addr = server.native.to_string();
    // Hana's token is in use on one connection (a thief's, say), which is in #dev.
    let (held, mut held_events, _) = Client::connect(&addr, &Transport::Plain).await.expect("connects");
    held.hello("hana").await.expect("welcomed");
    held.register(PASSWORD).await.expect("registers");
    held.login_remembered(None, PASSWORD).await.expect("logs in, remembered");
    held.join("dev").await.expect("joins");
    let (mate, mut mate_events, _) = Client::connect(&addr, &Transport::Plain).await.expect("connects");
    mate.hello("mika").await.expect("welcomed");
    mate.join("dev").await.expect("joins");
    // Hana, from another connection with a token of her own, revokes it.
    let owner = client(server.native).await;
    let (_, own) = owner.hello_remembered("hana", PASSWORD).await.expect("logs in");
    let own = own.expect("a token");
    let listed = owner.sessions().await.expect("lists");
    let theirs = listed.iter().find(|s| !s.current).expect("the other connection's token");
    owner.revoke_session(theirs.id).await.expect("revokes");
    // That connection is told, then closed.
    let told = event_where(&mut held_events, "the sign-out", |event| match event {
        Event::Error { code, message } => Some((code, message)),
        _ => None,
    })
    .await;
    assert_eq!(told.0, ErrorCode::SignedOut, "{told:?}");
    event_where(&mut held_events, "the close", |event| matches!(event, Event::Closed { .. }).then_some(())).await;
    // Its room mates see it leave (under the nick it had: hana's later login took hers).
    let left = event_where(&mut mate_events, "the holder leaving", |event| match event {
        Event::Left { room, reason, detail, .. } if room == "dev" => Some((room, reason, detail)),
        _ => None,
    })
    .await;
    assert_eq!(left, ("dev".to_owned(), LeaveReason::Lost, Some("signed out".to_owned())));
    // The connection that revoked it goes on, and its own token still logs in.
    let listed = owner.sessions().await.expect("still connected");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].current, "{listed:?}");
    let again = client(server.native).await;
    assert_eq!(again.hello_token(&own).await.expect("still valid").nick, "hana");
    // Revoking a token nobody holds ends nobody (and the asker goes on).
    let spare = client(server.native).await;
    let (_, spare_token) = spare.hello_remembered("hana", PASSWORD).await.expect("logs in");
    assert!(spare_token.is_some());
    drop(spare);
    let listed = owner.sessions().await.expect("lists");
    assert_eq!(listed.len(), 2, "the owner's and the spare: {listed:?}");
    for session in listed.iter().filter(|s| !s.current) {
        owner.revoke_session(session.id).await.expect("revokes");
    }
    assert_eq!(owner.sessions().await.expect("still connected").len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    // Tokens that go unused for 0 days expire at once.
    let server = support::start_with(|config| config.limits.session_idle_days = 0).await;
    let (_owner, token) = account_with_token(server.native, "brief").await;
    let later = client(server.native).await;
    refused_with(later.hello_token(&token).await, ErrorCode::BadToken);
    server.shutdown().await;
}

#[tokio::test]
async fn a_new_password_or_a_deleted_account_ends_every_token() {
    let server = support::start().await;
    let (owner, token) = account_with_token(server.native, "carol").await;
    owner.change_password(PASSWORD, "another long password").await.expect("changes");
    refused_with(client(server.native).await.hello_token(&token).await, ErrorCode::BadToken);

    let (owner, token) = account_with_token(server.native, "dora").await;
    let gone = owner.call(&Request::Unregister { password: PASSWORD.into() }).await;
    assert!(matches!(gone, Ok(Reply::Unregistered { .. })), "{gone:?}");
    refused_with(client(server.native).await.hello_token(&token).await, ErrorCode::BadToken);
    server.shutdown().await;
}

#[tokio::test]
async fn a_new_password_signs_out_the_accounts_other_connections() {
    let server = support::start().await;
    let addr = server.native.to_string();
    let (owner, token) = account_with_token(server.native, "ivy").await;
    // Two other connections of the account: one with the token, one with the password.
    let (by_token, mut by_token_events, _) = Client::connect(&addr, &Transport::Plain).await.expect("connects");
    by_token.hello_token(&token).await.expect("logs in with the token");
    let (by_password, mut by_password_events, _) = Client::connect(&addr, &Transport::Plain).await.expect("connects");
    by_password.hello("laptop").await.expect("welcomed");
    by_password.login(Some("ivy"), PASSWORD).await.expect("logs in");
    // And someone else.
    let bystander = client(server.native).await;
    bystander.hello("jules").await.expect("welcomed");

    owner.change_password(PASSWORD, "another long password").await.expect("changes");
    for events in [&mut by_token_events, &mut by_password_events] {
        let told = event_where(events, "the sign-out", |event| match event {
            Event::Error { code, .. } => Some(code),
            _ => None,
        })
        .await;
        assert_eq!(told, ErrorCode::SignedOut);
        event_where(events, "the close", |event| matches!(event, Event::Closed { .. }).then_some(())).await;
    }
    // The connection that changed it goes on, with no token left; so does the bystander.
    assert!(owner.sessions().await.expect("still connected").is_empty());
    refused_with(bystander.sessions().await, ErrorCode::NotLoggedIn);
    // The new password logs in.
    let again = client(server.native).await;
    again.hello_with("ivy", Some("another long password"), &LoginOptions::default()).await.expect("logs in");
    server.shutdown().await;
}

#[tokio::test]
async fn guessing_tokens_is_paced_and_timed_against_passwords() {
    let server = support::start().await;
    let (_owner, token) = account_with_token(server.native, "erin").await;

    // What a login costs: the password (argon2id) against the token (a hash and a read).
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        let c = client(server.native).await;
        c.hello_with("erin", Some(PASSWORD), &LoginOptions::default()).await.expect("password login");
    }
    let password = started.elapsed() / rounds;
    let started = Instant::now();
    for _ in 0..rounds {
        client(server.native).await.hello_token(&token).await.expect("token login");
    }
    let by_token = started.elapsed() / rounds;
    eprintln!("login over loopback: password {password:?}, token {by_token:?} (mean of {rounds})");
    assert!(by_token < password, "a token login skips the deliberately slow hash");

    let guess = "A".repeat(43);
    refused_with(client(server.native).await.hello_token(&guess).await, ErrorCode::BadToken);
    // Right after a failure, that token waits; a valid one from the same network does not.
    refused_with(client(server.native).await.hello_token(&guess).await, ErrorCode::TooManyAttempts);
    client(server.native).await.hello_token(&token).await.expect("another token is not slowed");
    // A network that fails with many tokens waits for every one, as for passwords.
    let mut refused = None;
    for n in 0..8 {
        match client(server.native).await.hello_token(&format!("{n}{}", "B".repeat(42))).await {
            Err(Error::Refused { code: ErrorCode::BadToken, .. }) => {}
            Err(Error::Refused { code: ErrorCode::TooManyAttempts, .. }) => {
                refused = Some(n);
                break;
            }
            other => panic!("a guess was {other:?}"),
        }
    }
    assert_eq!(refused, Some(5), "six failures from a network are free (the first guess and five), then it waits");
    refused_with(client(server.native).await.hello_token(&token).await, ErrorCode::TooManyAttempts);
    server.shutdown().await;
}

/// The web listener of a server with one.
async fn web_server() -> (support::TestServer, SocketAddr) {
    let server = support::start_with(|config: &mut Config| {
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
    })
    .await;
    let web = server.bound.iter().find(|b| b.kind == ListenerKind::Web).expect("a web listener").addr;
    (server, web)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

async fn post_session(web: SocketAddr, origin: &str, token: &str) -> (u16, Vec<(String, String)>) {
    let request = format!(
        "POST /session HTTP/1.1\r\nHost: {web}\r\nOrigin: {origin}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{token}",
        token.len()
    );
    let HttpAnswer { status, headers, .. } = http(web, &request).await;
    (status, headers)
}

/// A `hello` over a WebSocket whose upgrade carries `cookie`: the answer.
async fn hello_over_websocket(
    web: SocketAddr,
    cookie: Option<&str>,
    hello: &Request,
    options: &LoginOptions,
) -> Received {
    let stream = TcpStream::connect(web).await.expect("connects");
    let mut request = format!("ws://{web}/ws").into_client_request().expect("a request");
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", HeaderValue::from_str(cookie).expect("a value"));
    }
    request.headers_mut().insert("user-agent", HeaderValue::from_static("TestBrowser/1.0"));
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("in time")
        .expect("upgraded");
    let mut frame = BytesMut::new();
    encode_request_with(1, hello, options, b"", &mut frame).expect("encodes");
    ws.send(Message::Binary(frame.freeze())).await.expect("sends");
    let mut decoder = FrameDecoder::new(64 * 1024, 1 << 20).accepting_compact();
    loop {
        let message = tokio::time::timeout(WAIT, ws.next()).await.expect("an answer in time");
        let Some(Ok(Message::Binary(bytes))) = message else { panic!("closed before an answer: {message:?}") };
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = decoder.decode(&mut buf).expect("a frame").expect("whole");
        let received = Received::from_frame(frame).expect("a message");
        if matches!(received.msg, ServerMsg::Result { id: 1 } | ServerMsg::Error { id: Some(1), .. }) {
            return received;
        }
    }
}

/// A `hello` with `resume` over a WebSocket carrying `cookie`: the answer's header.
async fn resume_over_websocket(web: SocketAddr, cookie: &str) -> ServerMsg {
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: String::new(), password: None };
    let options = LoginOptions { resume: true, ..LoginOptions::default() };
    let received = hello_over_websocket(web, Some(cookie), &hello, &options).await;
    if let ServerMsg::Result { .. } = received.msg {
        let reply = received.reply().expect("a reply");
        assert!(matches!(reply, Reply::Welcome { .. }), "{reply:?}");
    }
    received.msg
}

#[tokio::test]
async fn a_browser_keeps_its_session_in_a_cookie_that_a_websocket_hello_resumes() {
    let (server, web) = web_server().await;
    let (owner, token) = account_with_token(server.native, "fern").await;
    let origin = format!("http://{web}");

    // From another site: refused, and no cookie.
    let (status, headers) = post_session(web, "http://evil.example", &token).await;
    assert_eq!(status, 403);
    assert!(header(&headers, "set-cookie").is_none());

    let (status, headers) = post_session(web, &origin, &token).await;
    assert_eq!(status, 204);
    let cookie = header(&headers, "set-cookie").expect("a cookie");
    assert!(cookie.starts_with(&format!("parley_session={token};")), "{cookie}");
    for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
        assert!(cookie.split("; ").any(|p| p == part), "{part} in {cookie}");
    }
    let sent = format!("theme=dark; parley_session={token}");
    assert!(matches!(resume_over_websocket(web, &sent).await, ServerMsg::Result { .. }));
    // Resuming uses the token; it makes no new one.
    let listed = owner.sessions().await.expect("lists");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].current, "the owner's session was given it: {listed:?}");
    // A browser logging in with its password gets a token described with its agent.
    let hello = Request::Hello { version: PROTOCOL_VERSION, nick: "fern".into(), password: Some(PASSWORD.into()) };
    let options = LoginOptions { remember: true, ..LoginOptions::default() };
    let answer = hello_over_websocket(web, None, &hello, &options).await;
    assert!(answer.token().is_some_and(|t| t.len() == 43 && t != token), "a new token in the welcome");
    let listed = owner.sessions().await.expect("lists");
    let browser = listed.iter().find(|s| s.description.starts_with("web 127.0.0.1")).expect("the browser's");
    assert_eq!(browser.description, "web 127.0.0.1 TestBrowser/1.0");

    // Logging out: the token is revoked and the cookie cleared.
    let delete = format!(
        "DELETE /session HTTP/1.1\r\nHost: {web}\r\nOrigin: {origin}\r\nCookie: parley_session={token}\r\n\
         Connection: close\r\n\r\n"
    );
    let HttpAnswer { status, headers, .. } = http(web, &delete).await;
    assert_eq!(status, 204);
    assert!(
        header(&headers, "set-cookie").is_some_and(|c| c.starts_with("parley_session=;") && c.contains("Max-Age=0"))
    );
    match resume_over_websocket(web, &sent).await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::BadToken),
        other => panic!("a revoked cookie logged in: {other:?}"),
    }
    // Without a cookie, resume is refused too; and POST /session with a wrong token is 401.
    match resume_over_websocket(web, "theme=dark").await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::BadToken),
        other => panic!("logged in without a cookie: {other:?}"),
    }
    let (status, _) = post_session(web, &origin, &"B".repeat(43)).await;
    assert_eq!(status, 401);
    let (status, headers) = post_session(web, &origin, &"B".repeat(43)).await;
    assert_eq!(status, 429, "paced");
    assert!(header(&headers, "retry-after").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_line_user_lists_and_revokes_the_accounts_sessions() {
    let server = support::start().await;
    let (_owner, token) = account_with_token(server.native, "gus").await;
    let mut line = support::LineClient::join(server.line, "visitor").await;
    line.send("/sessions").await;
    line.expect_line("You are not logged in.").await;
    line.send(&format!("/login gus {PASSWORD}")).await;
    line.expect_line("You are logged in as gus.").await;
    line.send("/sessions").await;
    line.expect_line("most recent first: ---").await;
    let (entry, _) = line.expect_line("native 127.0.0.1").await;
    assert!(!entry.contains("(this one)"), "the line session holds no token: {entry}");
    assert!(!entry.contains(&token), "a token is never shown: {entry}");
    let id: u64 = entry.split_whitespace().next().and_then(|n| n.parse().ok()).expect("an id first");
    line.expect_line("--- /sessions revoke ID logs one out ---").await;
    line.send("/sessions revoke x").await;
    line.expect_line("Usage: /sessions revoke ID, ID a number /sessions shows").await;
    line.send(&format!("/sessions revoke {}", id + 100)).await;
    line.expect_line(&format!("You have no session {} (see /sessions).", id + 100)).await;
    line.send(&format!("/sessions revoke {id}")).await;
    line.expect_line(&format!("Session {id} is revoked: it no longer logs anyone in.")).await;
    line.send("/sessions").await;
    line.expect_line("no client holds a session token.").await;
    refused_with(client(server.native).await.hello_token(&token).await, ErrorCode::BadToken);
    server.shutdown().await;
}
