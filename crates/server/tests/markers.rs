//! Read markers: where a user read up to in a room or a conversation, shared by all
//! their sessions on every gateway (native `mark_read` and `marker`, IRC `MARKREAD` with
//! `draft/read-marker`), only ever moving forward, and kept across a restart.

mod support;

use parley_proto::msg::{ErrorCode, Reply, Request, ServerMsg};
use support::{IrcClient, NativeClient};

fn no_flood(c: &mut parley_server::Config) {
    c.limits.flood_rate_per_sec = 0;
}

/// A native session logged in to `name` (registered first when `register`).
async fn logged_in(addr: std::net::SocketAddr, nick: &str, name: &str, register: bool) -> NativeClient {
    let mut client = NativeClient::join(addr, nick).await;
    let password = format!("{name}-password");
    let answer = if register {
        client.request(&Request::Register { password }, b"").await
    } else {
        client.request(&Request::Auth { name: Some(name.to_owned()), password }, b"").await
    };
    assert!(answer.is_ok(), "{answer:?}");
    client
}

/// Registers over IRC logged in with SASL PLAIN, with `caps` too.
async fn sasl(addr: std::net::SocketAddr, nick: &str, name: &str, caps: &str) -> IrcClient {
    use base64::Engine as _;
    let mut client = IrcClient::connect(addr).await;
    client.send(&format!("CAP REQ :sasl {caps}")).await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client.expect(" ACK ").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.expect("AUTHENTICATE +").await;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0{name}-password"));
    client.send(&format!("AUTHENTICATE {payload}")).await;
    client.expect(" 903 ").await;
    client.send("CAP END").await;
    client.expect(" 001 ").await;
    client
}

fn mark(room: Option<&str>, with: Option<&str>, ts: Option<&str>) -> Request {
    Request::MarkRead { room: room.map(str::to_owned), with: with.map(str::to_owned), ts: ts.map(str::to_owned) }
}

async fn marker(client: &mut NativeClient, request: &Request) -> Option<String> {
    match client.request(request, b"").await {
        Ok(Reply::Marker { ts, .. }) => ts,
        other => panic!("a marker, got {other:?}"),
    }
}

#[tokio::test]
async fn a_marker_set_on_one_session_reaches_the_others_on_every_gateway_and_never_moves_back() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), no_flood).await;
    let irc = server.irc.expect("an IRC listener");
    let mut bob = NativeClient::join(server.native, "bob").await;
    assert!(bob.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert!(bob.request(&Request::Say { room: "dev".into(), reply_to: None, tags: None }, b"hello").await.is_ok());
    // ann reads on her laptop (native) and her phone (IRC), one account.
    let mut laptop = logged_in(server.native, "ann", "ann", true).await;
    match laptop.request(&Request::Join { room: "dev".into() }, b"").await {
        Ok(Reply::Joined { read, .. }) => assert_eq!(read, None, "nothing read yet"),
        other => panic!("joined, got {other:?}"),
    }
    // Markers are instants (the time of the last message read); these are in the past,
    // as every marker is (the server reads a later one as now).
    let (first, second, third) = (
        "2026-01-01T10:00:01.000Z".to_owned(),
        "2026-01-01T10:00:02.000Z".to_owned(),
        "2026-01-01T10:00:03.000Z".to_owned(),
    );

    let mut phone = sasl(irc, "annphone", "ann", "draft/read-marker").await;
    phone.send("JOIN #dev").await;
    let joined = phone.collect_until(" #dev :End of /NAMES list.").await;
    let from = joined.iter().position(|l| l.ends_with(" JOIN #dev")).expect("the JOIN");
    let joined = &joined[from..];
    let markread = joined.iter().position(|l| l.contains(" MARKREAD #dev *")).expect("the marker with the join");
    let names = joined.iter().position(|l| l.contains(" 353 ")).expect("names");
    assert!(markread < names, "before the names: {joined:#?}");

    // The laptop reads up to the second message: the phone is told.
    assert_eq!(marker(&mut laptop, &mark(Some("dev"), None, Some(&second))).await.as_deref(), Some(second.as_str()));
    phone.expect(&format!(" MARKREAD #dev timestamp={second}")).await;
    // An older marker does not move it back; the answer says where it is.
    phone.send(&format!("MARKREAD #dev timestamp={first}")).await;
    phone.expect(&format!(" MARKREAD #dev timestamp={second}")).await;
    // The phone reads everything: the laptop is told.
    phone.send(&format!("MARKREAD #dev timestamp={third}")).await;
    phone.expect(&format!(" MARKREAD #dev timestamp={third}")).await;
    let told = laptop
        .expect(|r| match &r.msg {
            ServerMsg::Marker { room, with, ts } => Some((room.clone(), with.clone(), ts.clone())),
            _ => None,
        })
        .await;
    assert_eq!(told, (Some("dev".into()), None, third.clone()));
    assert_eq!(marker(&mut laptop, &mark(Some("dev"), None, None)).await.as_deref(), Some(third.as_str()), "asked");
    // A marker in the future is read as now: nobody has read what is not said yet.
    let future = marker(&mut laptop, &mark(Some("dev"), None, Some("2999-01-01T00:00:00.000Z"))).await;
    assert!(future.as_deref().is_some_and(|ts| ts < "2999" && ts >= third.as_str()), "{future:?}");
    let now = future.expect("a marker");

    // Refusals, each in its protocol's words.
    let both = laptop.request(&mark(Some("dev"), Some("bob"), None), b"").await;
    assert!(matches!(both, Err(ServerMsg::Error { code: ErrorCode::BadRequest, .. })), "{both:?}");
    let bad = laptop.request(&mark(Some("dev"), None, Some("yesterday")), b"").await;
    assert!(matches!(bad, Err(ServerMsg::Error { code: ErrorCode::BadRequest, .. })), "{bad:?}");
    let outside = laptop.request(&mark(Some("staff"), None, Some(&first)), b"").await;
    assert!(matches!(outside, Err(ServerMsg::Error { code: ErrorCode::NoSuchRoom, .. })), "{outside:?}");
    phone.send("MARKREAD #dev yesterday").await;
    phone.expect(" FAIL MARKREAD INVALID_PARAMS #dev :").await;
    phone.send(&format!("MARKREAD #staff timestamp={first}")).await;
    phone.expect(" FAIL MARKREAD INVALID_TARGET #staff :").await;
    phone.send("MARKREAD").await;
    phone.expect(" 461 ").await;

    // Conversations have markers too, by the other user.
    assert_eq!(marker(&mut laptop, &mark(None, Some("bob"), None)).await, None);
    assert_eq!(marker(&mut laptop, &mark(None, Some("bob"), Some(&second))).await.as_deref(), Some(second.as_str()));
    phone.expect(&format!(" MARKREAD bob timestamp={second}")).await;

    // A guest's markers are its own session's.
    let mut guest = NativeClient::join(server.native, "gus").await;
    assert!(guest.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    assert_eq!(marker(&mut guest, &mark(Some("dev"), None, None)).await, None);
    assert_eq!(marker(&mut guest, &mark(Some("dev"), None, Some(&first))).await.as_deref(), Some(first.as_str()));
    server.shutdown().await;

    // Kept: after a restart, joining tells where ann read up to.
    let server = support::start_in(data.path(), no_flood).await;
    let mut again = logged_in(server.native, "ann", "ann", false).await;
    match again.request(&Request::Join { room: "dev".into() }, b"").await {
        Ok(Reply::Joined { read, .. }) => assert_eq!(read.as_deref(), Some(now.as_str())),
        other => panic!("joined, got {other:?}"),
    }
    server.shutdown().await;
}
