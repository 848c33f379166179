//! Clients behind a reverse proxy are seen with their own addresses: from the PROXY
//! protocol (versions 1 and 2) on listeners that take it, and from `X-Forwarded-For`
//! on web listeners, only when a trusted proxy sends it.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use parley_server::{Config, Listener, ListenerKind, Oper};
use support::{IrcClient, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

fn proxied(kind: ListenerKind) -> Listener {
    Listener { proxy_protocol: true, ..Listener::new(kind, false, "127.0.0.1:0") }
}

async fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
    support::start_with(|config| {
        config.listeners.push(proxied(ListenerKind::Irc));
        config.listeners.push(proxied(ListenerKind::Web));
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        config.irc.opers.push(Oper { name: "root".into(), password: "root-pass".into() });
        adjust(config);
    })
    .await
}

fn find(server: &TestServer, kind: ListenerKind, proxy_protocol: bool) -> SocketAddr {
    server
        .bound
        .iter()
        .find(|b| b.kind == kind && b.proxy_protocol == proxy_protocol && !b.tls)
        .expect("a listener")
        .addr
}

/// An operator on the plain IRC listener, who sees addresses in WHOIS (`378`).
async fn operator(server: &TestServer) -> IrcClient {
    let mut oper = IrcClient::join(server.irc.expect("an IRC listener"), "oscar", "").await;
    oper.send("OPER root root-pass").await;
    oper.expect(" 381 oscar ").await;
    oper
}

async fn address_of(oper: &mut IrcClient, nick: &str) -> String {
    oper.send(&format!("WHOIS {nick}")).await;
    let whois = oper.collect_until(" 318 ").await;
    let line = whois.iter().find(|l| l.contains(" 378 ")).unwrap_or_else(|| panic!("a 378 in {whois:#?}"));
    line.rsplit(' ').next().expect("the address").to_owned()
}

/// A version 2 PROXY header for a TCP/IPv4 client.
fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&8080u16.to_be_bytes());
    header
}

async fn irc_behind_proxy(server: &TestServer, client: &str, nick: &str) -> IrcClient {
    let mut irc = IrcClient::connect(find(server, ListenerKind::Irc, true)).await;
    irc.send_raw(format!("PROXY TCP4 {client} 127.0.0.1 51000 6667\r\n").as_bytes()).await;
    irc.send_raw(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes()).await;
    irc
}

#[tokio::test]
async fn an_irc_client_behind_the_proxy_protocol_is_seen_and_counted_with_its_own_address() {
    let server = start(|config| config.limits.max_connections_per_ip = 2).await;
    let mut oper = operator(&server).await;

    let mut pat = irc_behind_proxy(&server, "203.0.113.7", "pat").await;
    pat.expect(" 001 pat ").await;
    assert_eq!(address_of(&mut oper, "pat").await, "203.0.113.7");

    // Every connection comes from the proxy (127.0.0.1); each client is counted alone.
    let mut first = irc_behind_proxy(&server, "198.51.100.1", "first").await;
    first.expect(" 001 first ").await;
    let mut second = irc_behind_proxy(&server, "198.51.100.1", "second").await;
    second.expect(" 001 second ").await;
    let mut third = irc_behind_proxy(&server, "198.51.100.1", "third").await;
    let closing = third.expect_closed().await;
    assert!(
        closing.iter().any(|l| l.contains("too many connections from your address")),
        "the third from one address is refused: {closing:#?}"
    );
    let mut other = irc_behind_proxy(&server, "198.51.100.2", "other").await;
    other.expect(" 001 other ").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_without_its_proxy_header_is_closed() {
    let server = start(|_| {}).await;
    let mut direct = TcpStream::connect(find(&server, ListenerKind::Irc, true)).await.expect("connects");
    direct.write_all(b"NICK sneaky\r\nUSER sneaky 0 * :sneaky\r\n").await.expect("sends");
    let mut said = Vec::new();
    // Closed without a word (reset, as the line was not read to its end).
    let read = tokio::time::timeout(WAIT, direct.read_to_end(&mut said)).await.expect("closed in time");
    assert!(read.is_err() || said.is_empty(), "{}", String::from_utf8_lossy(&said));
    server.shutdown().await;
}

/// Opens `/irc` on `stream`, registers as `nick` and waits for the welcome.
async fn irc_over_websocket(
    stream: TcpStream,
    host: SocketAddr,
    headers: &[(&'static str, &str)],
    nick: &str,
) -> impl Drop {
    let mut request = format!("ws://{host}/irc").into_client_request().expect("a request");
    for (name, value) in headers {
        request.headers_mut().insert(*name, HeaderValue::from_str(value).expect("a value"));
    }
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("in time")
        .expect("upgraded");
    ws.send(Message::Binary(Bytes::from(format!("NICK {nick}")))).await.expect("sends");
    ws.send(Message::Binary(Bytes::from(format!("USER {nick} 0 * :{nick}")))).await.expect("sends");
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("in time") {
            Some(Ok(Message::Text(line))) if line.contains(&format!(" 001 {nick} ")) => break,
            Some(Ok(_)) => {}
            other => panic!("no welcome: {other:?}"),
        }
    }
    Box::new(ws)
}

#[tokio::test]
async fn a_browser_behind_the_proxy_protocol_is_seen_with_its_own_address() {
    let server = start(|_| {}).await;
    let mut oper = operator(&server).await;
    let addr = find(&server, ListenerKind::Web, true);
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    stream.write_all(&v2_header([192, 0, 2, 33], 40000)).await.expect("sends");
    let _ws = irc_over_websocket(stream, addr, &[], "bella").await;
    assert_eq!(address_of(&mut oper, "bella").await, "192.0.2.33");
    server.shutdown().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let server = start(|config| config.web.trusted_proxies = vec!["127.0.0.1/32".parse().expect("a network")]).await;
    let mut oper = operator(&server).await;
    let addr = find(&server, ListenerKind::Web, false);

    let from_proxy = TcpStream::connect(addr).await.expect("connects");
    let _trusted = irc_over_websocket(from_proxy, addr, &[("x-forwarded-for", "192.0.2.44")], "viaproxy").await;
    assert_eq!(address_of(&mut oper, "viaproxy").await, "192.0.2.44");

    // From 127.0.0.2, which is no trusted proxy, the header is ignored.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).expect("binds a loopback source");
    let stranger = socket.connect(addr).await.expect("connects");
    let _untrusted = irc_over_websocket(stranger, addr, &[("x-forwarded-for", "192.0.2.45")], "spoofer").await;
    assert_eq!(address_of(&mut oper, "spoofer").await, "127.0.0.2");
    server.shutdown().await;
}
