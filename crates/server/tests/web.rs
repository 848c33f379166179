//! The HTTP gateway over real sockets: the native protocol and IRC over WebSocket
//! (tokio-tungstenite as the browser), plain and TLS, the origin check, the security
//! headers on every response, `/healthz`, and the embedded client's answers.

mod support;

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use parley_proto::msg::{encode_request, Received, Reply, Request, ServerMsg, PROTOCOL_VERSION};
use parley_proto::native::FrameDecoder;
use parley_server::{Config, Listener, ListenerKind};
use support::{http, HttpAnswer, IrcClient, NativeClient, TestServer, WAIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

struct Web {
    server: TestServer,
    plain: SocketAddr,
    tls: SocketAddr,
}

async fn start_web(adjust: impl FnOnce(&mut Config)) -> Web {
    let server = support::start_with(|config| {
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        config.listeners.push(Listener::new(ListenerKind::Web, true, "127.0.0.1:0"));
        adjust(config);
    })
    .await;
    let find = |tls| server.bound.iter().find(|b| b.kind == ListenerKind::Web && b.tls == tls).map(|b| b.addr);
    let (plain, tls) = (find(false).expect("a web listener"), find(true).expect("a web+tls listener"));
    Web { server, plain, tls }
}

/// Every response carries the page policy and nosniff.
trait Secured {
    fn assert_secured(&self);
}

impl Secured for HttpAnswer {
    fn assert_secured(&self) {
        let csp = self.header("content-security-policy").expect("a CSP on every response");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(self.header("x-content-type-options"), Some("nosniff"));
    }
}

async fn get(addr: SocketAddr, path: &str) -> HttpAnswer {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await
}

/// Opens a WebSocket at `path` with extra request headers.
async fn open(
    stream: Box<dyn Io>,
    host: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut request = format!("ws://{host}{path}").into_client_request().expect("a request");
    for (name, value) in headers {
        request.headers_mut().insert(*name, HeaderValue::from_str(value).expect("a header value"));
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream)).await.expect("upgraded in time")
}

async fn open_plain(addr: SocketAddr, path: &str, headers: &[(&'static str, &str)]) -> (Ws, Option<String>) {
    let stream: Box<dyn Io> = Box::new(TcpStream::connect(addr).await.expect("connects"));
    let (ws, response) = open(stream, addr, path, headers).await.expect("the upgrade is accepted");
    let protocol = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().expect("text").to_owned());
    (ws, protocol)
}

/// The next message that is not a control message; `None` once the server closed.
async fn next_message(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time") {
            None | Some(Err(_) | Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(message)) => return Some(message),
        }
    }
}

/// A native client over a WebSocket: one frame per binary message, both ways.
struct WsNative {
    ws: Ws,
    next_id: u64,
}

impl WsNative {
    async fn hello(ws: Ws, nick: &str) -> WsNative {
        let mut client = WsNative { ws, next_id: 1 };
        let hello = Request::Hello { version: PROTOCOL_VERSION, nick: nick.into(), password: None };
        let reply = client.request(&hello, b"").await;
        assert!(matches!(reply, Ok(Reply::Welcome { .. })), "welcomed, got {reply:?}");
        client
    }

    async fn send(&mut self, request: &Request, payload: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = BytesMut::new();
        encode_request(id, request, payload, &mut frame).expect("encodes");
        self.ws.send(Message::Binary(frame.freeze())).await.expect("sends");
        id
    }

    async fn request(&mut self, request: &Request, payload: &[u8]) -> Result<Reply, ServerMsg> {
        let id = self.send(request, payload).await;
        loop {
            let received = self.next().await.expect("an answer before the end");
            match &received.msg {
                ServerMsg::Result { id: got } if *got == id => return Ok(received.reply().expect("a reply")),
                ServerMsg::Error { id: Some(got), .. } if *got == id => return Err(received.msg),
                _ => {}
            }
        }
    }

    /// The next frame; each binary message must hold exactly one.
    async fn next(&mut self) -> Option<Received> {
        let message = next_message(&mut self.ws).await?;
        let Message::Binary(bytes) = message else { panic!("native frames come as binary messages: {message:?}") };
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = FrameDecoder::new(65_535, 16 << 20)
            .accepting_compact()
            .decode(&mut buf)
            .expect("a valid frame")
            .expect("a whole frame");
        assert!(buf.is_empty(), "one frame per message, {} bytes left over", buf.len());
        Some(Received::from_frame(frame).expect("a known message"))
    }

    async fn expect<T>(&mut self, mut pick: impl FnMut(&Received) -> Option<T>) -> T {
        loop {
            let received = self.next().await.expect("the expected message before the end");
            if let Some(found) = pick(&received) {
                return found;
            }
        }
    }
}

fn said_by(from_nick: &'static str) -> impl FnMut(&Received) -> Option<String> {
    move |r| matches!(&r.msg, ServerMsg::Message { from, .. } if from == from_nick).then(|| r.text())
}

#[tokio::test]
async fn the_native_protocol_runs_over_a_websocket_with_tcp_users() {
    let web = start_web(|_| {}).await;
    let (ws, protocol) = open_plain(web.plain, "/ws", &[]).await;
    assert_eq!(protocol, None, "/ws names no subprotocol");
    let mut browser = WsNative::hello(ws, "brenda").await;
    let mut tcp = NativeClient::join(web.server.native, "terry").await;

    browser
        .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"hello from a browser")
        .await
        .expect("said");
    assert_eq!(tcp.expect(said_by("brenda")).await, "hello from a browser");
    tcp.request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, "and back, ünïcode".as_bytes())
        .await
        .expect("said");
    assert_eq!(browser.expect(said_by("terry")).await, "and back, ünïcode");

    // An oversized payload is refused as on TCP, and the session goes on.
    let too_big = vec![b'x'; Config::default().limits.max_frame_payload + 1];
    let refused = browser.request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, &too_big).await;
    assert!(matches!(refused, Err(ServerMsg::Error { .. })), "{refused:?}");
    browser.request(&Request::Ping, b"").await.expect("still served");
    web.server.shutdown().await;
}

#[tokio::test]
async fn the_native_protocol_runs_over_a_websocket_inside_tls() {
    let web = start_web(|_| {}).await;
    let fingerprint = web.server.fingerprint.clone().expect("a certificate");
    let tcp = TcpStream::connect(web.tls).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    let tls = support::tls::pinned_connector(&fingerprint).connect(name, tcp).await.expect("TLS handshake");
    let (ws, _) = open(Box::new(tls), web.tls, "/ws", &[]).await.expect("upgraded");
    let mut browser = WsNative::hello(ws, "secure").await;
    browser.request(&Request::Ping, b"").await.expect("answered");
    web.server.shutdown().await;
}

#[tokio::test]
async fn a_text_message_on_the_native_endpoint_closes_it() {
    let web = start_web(|_| {}).await;
    let (mut ws, _) = open_plain(web.plain, "/ws", &[]).await;
    ws.send(Message::text("{\"type\":\"hello\"}")).await.expect("sends");
    assert!(next_message(&mut ws).await.is_none(), "the server closes the connection");
    web.server.shutdown().await;
}

#[tokio::test]
async fn irc_over_a_binary_websocket_is_one_line_per_message() {
    let web = start_web(|_| {}).await;
    let offer = [("sec-websocket-protocol", "binary.ircv3.net, text.ircv3.net")];
    let (mut ws, protocol) = open_plain(web.plain, "/irc", &offer).await;
    assert_eq!(protocol.as_deref(), Some("binary.ircv3.net"), "the client's first choice");
    let mut tcp = IrcClient::join(web.server.irc.expect("an IRC listener"), "tess", "").await;
    tcp.send("JOIN #web").await;
    tcp.expect(" 366 tess #web ").await;

    for line in ["NICK wendy", "USER wendy 0 * :On the web"] {
        ws.send(Message::Binary(Bytes::from(line))).await.expect("sends");
    }
    // The client may send text messages too, with or without a line ending.
    ws.send(Message::text("JOIN #web\r\n")).await.expect("sends");
    ws.send(Message::Binary(Bytes::from_static(b"PRIVMSG #web :caf\xc3\xa9 from a browser"))).await.expect("sends");
    assert!(tcp.expect("PRIVMSG #web :").await.ends_with("café from a browser"));

    tcp.send("PRIVMSG #web :hi wendy").await;
    let mut seen = Vec::new();
    loop {
        let message = next_message(&mut ws).await.expect("lines before the end");
        let Message::Binary(line) = message else { panic!("binary.ircv3.net lines come as binary: {message:?}") };
        let line = String::from_utf8(line.to_vec()).expect("UTF-8 here");
        assert!(!line.contains('\n') && !line.contains('\r'), "one line per message, no line ending: {line:?}");
        seen.push(line.clone());
        if line.contains("PRIVMSG #web :hi wendy") {
            break;
        }
    }
    assert!(seen.iter().any(|l| l.contains(" 001 wendy ")), "{seen:?}");
    ws.send(Message::Binary(Bytes::from("QUIT :bye"))).await.expect("sends");
    while next_message(&mut ws).await.is_some() {}
    tcp.expect("QUIT").await;
    web.server.shutdown().await;
}

#[tokio::test]
async fn irc_over_a_text_websocket_closes_on_invalid_utf8() {
    let web = start_web(|_| {}).await;
    let (mut ws, protocol) = open_plain(web.plain, "/irc", &[("sec-websocket-protocol", "text.ircv3.net")]).await;
    assert_eq!(protocol.as_deref(), Some("text.ircv3.net"));
    for line in ["NICK tina", "USER tina 0 * :Text"] {
        ws.send(Message::text(line)).await.expect("sends");
    }
    loop {
        let message = next_message(&mut ws).await.expect("the welcome");
        let Message::Text(line) = message else { panic!("text.ircv3.net lines come as text: {message:?}") };
        if line.contains(" 001 tina ") {
            break;
        }
    }
    // A text frame that is not UTF-8 ends the connection.
    let bad = Frame::message(Bytes::from_static(b"PRIVMSG #lobby :\xff\xfe"), OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(bad)).await.expect("sends");
    while next_message(&mut ws).await.is_some() {}
    // Others are not affected: a new session is served.
    let (mut again, _) = open_plain(web.plain, "/irc", &[]).await;
    again.send(Message::text("NICK tina2")).await.expect("sends");
    again.send(Message::text("USER tina2 0 * :Text")).await.expect("sends");
    loop {
        match next_message(&mut again).await.expect("a welcome") {
            Message::Text(line) if line.contains(" 001 tina2 ") => break,
            _ => {}
        }
    }
    web.server.shutdown().await;
}

#[tokio::test]
async fn a_cross_origin_upgrade_is_refused() {
    let web = start_web(|config| config.web.allowed_origins = vec!["https://chat.example.org".into()]).await;
    for path in ["/ws", "/irc"] {
        let stream: Box<dyn Io> = Box::new(TcpStream::connect(web.plain).await.expect("connects"));
        let refused = open(stream, web.plain, path, &[("origin", "https://evil.example")]).await;
        match refused {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
            Err(other) => panic!("a 403 for a foreign origin at {path}, got {other}"),
            Ok(_) => panic!("a foreign origin's upgrade at {path} was accepted"),
        }
    }
    let own = format!("http://{}", web.plain);
    let (ws, _) = open_plain(web.plain, "/ws", &[("origin", &own)]).await;
    WsNative::hello(ws, "samesite").await;
    let (ws, _) = open_plain(web.plain, "/ws", &[("origin", "https://chat.example.org")]).await;
    WsNative::hello(ws, "allowed").await;
    web.server.shutdown().await;
}

#[tokio::test]
async fn every_answer_is_secured_and_health_is_reported() {
    let web = start_web(|_| {}).await;
    let health = get(web.plain, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");
    health.assert_secured();

    let missing = get(web.plain, "/no/such/file.js").await;
    assert_eq!(missing.status, 404);
    missing.assert_secured();

    let post = http(
        web.plain,
        &format!("POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", web.plain),
    )
    .await;
    assert_eq!(post.status, 405);
    post.assert_secured();

    let not_upgraded = get(web.plain, "/ws").await;
    assert_eq!(not_upgraded.status, 426);
    not_upgraded.assert_secured();

    let index = get(web.plain, "/").await;
    index.assert_secured();
    if index.status == 200 {
        assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(index.header("cache-control"), Some("no-cache"));
        assert!(index.header("etag").is_some());
    } else {
        assert_eq!(index.status, 404, "no client built in");
    }
    web.server.shutdown().await;
}

#[tokio::test]
async fn garbage_instead_of_http_affects_no_one_else() {
    let web = start_web(|_| {}).await;
    let mut junk = TcpStream::connect(web.plain).await.expect("connects");
    junk.write_all(b"\x16\x03\x01\x00\xff not http at all\r\n\r\n").await.expect("sends");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, junk.read_to_end(&mut rest)).await.expect("closed in time");
    assert!(rest.is_empty() || rest.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(get(web.plain, "/healthz").await.status, 200);
    web.server.shutdown().await;
}

#[tokio::test]
async fn a_websocket_session_is_flood_controlled_and_must_register_in_time() {
    let web = start_web(|config| {
        config.limits.flood_burst = 2;
        config.limits.flood_rate_per_sec = 1;
        config.limits.flood_grace_secs = 0;
        config.limits.handshake_timeout_secs = 1;
    })
    .await;
    let (ws, _) = open_plain(web.plain, "/ws", &[]).await;
    let mut flooder = WsNative::hello(ws, "flooder").await;
    for _ in 0..10 {
        flooder.send(&Request::Ping, b"").await;
    }
    let mut codes = Vec::new();
    while let Some(received) = flooder.next().await {
        if let ServerMsg::Error { code, .. } = received.msg {
            codes.push(code);
        }
    }
    assert!(codes.contains(&parley_proto::msg::ErrorCode::ExcessFlood), "told why, then closed, as on TCP: {codes:?}");

    // Upgraded, then silent: closed at the registration deadline.
    let (mut silent, _) = open_plain(web.plain, "/irc", &[]).await;
    let mut last = None;
    while let Some(message) = next_message(&mut silent).await {
        last = Some(message);
    }
    let last = last.and_then(|m| m.into_text().ok()).map(|t| t.to_string()).unwrap_or_default();
    assert!(last.contains("Registration timed out"), "{last:?}");
    web.server.shutdown().await;
}
