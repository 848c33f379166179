//! The HTTP gateway: one HTTP/1.1 server (hyper) per `web` listener, serving
//!
//! - `/`: the browser client's files, embedded at build time ([`assets`]);
//! - `/ws`: the native protocol over WebSocket, one frame per binary message;
//! - `/irc`: IRC over WebSocket (IRCv3's `binary.ircv3.net` and `text.ircv3.net`);
//! - `/healthz`: `200 ok` while the hub answers and the history store takes writes;
//! - `/session` and `/files/…`: the session cookie, and files for browsers ([`session`]).
//!
//! A WebSocket is served by the same connection driver as a TCP connection of its
//! protocol ([`crate::gateway::serve`]), over [`socket`]'s message transport: the same
//! limits, flood control, pings and session rules. The upgrade happens on the HTTP
//! connection's own task, which holds the connection's slot from accept to close.
//!
//! Every response carries a Content-Security-Policy with no inline script and no
//! framing, and `X-Content-Type-Options: nosniff`. A browser's upgrade is refused unless
//! its `Origin` is the page's own host or listed in `[web] allowed_origins`.

pub(crate) mod assets;
pub(crate) mod session;
pub(crate) mod socket;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ALLOW, CONNECTION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use parley_proto::irc::MAX_LINE_WITH_TAGS;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use self::assets::Assets;
use self::socket::Framing;
use super::irc::Irc;
use super::native::Native;
use super::{Ending, Refusal};
use crate::metrics::Gateway;
use crate::server::Shared;

/// A response, its body in memory.
pub(crate) type Reply = Response<Full<Bytes>>;

/// The policy every page runs under: scripts, styles and everything else from the
/// server itself only (no inline script, no `eval`), images also from `data:` and
/// `blob:` URLs (previews made in the page), WebSockets to the same host (and to the
/// cluster's other nodes: [`policy`]), and no page may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// How long `/healthz` waits for the hub to answer before it says it is not ready.
const HEALTH_WAIT: Duration = Duration::from_secs(2);

/// What the HTTP gateway knows beside the connection: its files and its settings.
pub(crate) struct Site {
    assets: Assets,
    allowed_origins: Vec<String>,
    trusted_proxies: Vec<IpNet>,
    /// The page policy, with the cluster's nodes the page may fail over to.
    policy: HeaderValue,
}

impl Site {
    /// The embedded client, with `config`'s origins and proxies, allowed to reach the
    /// web `nodes` of its cluster (`[cluster] nodes`).
    pub(crate) fn new(config: &crate::config::Web, nodes: &[String]) -> Site {
        Site::with_assets(config, nodes, Assets::embedded())
    }

    pub(crate) fn with_assets(config: &crate::config::Web, nodes: &[String], assets: Assets) -> Site {
        let allowed_origins =
            config.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        Site { assets, allowed_origins, trusted_proxies: config.trusted_proxies.clone(), policy: policy(nodes) }
    }

    /// How many files the client has, and their bytes.
    pub(crate) fn client_size(&self) -> (usize, usize) {
        self.assets.size()
    }

    /// Whether a WebSocket may be opened by this request: a client that sends no
    /// `Origin` is not a browser (and cannot be made to open it by a page); a browser
    /// may from a page of this host, or of an allowed origin.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(ORIGIN) else { return true };
        let Ok(origin) = origin.to_str() else { return false };
        let origin = origin.to_ascii_lowercase();
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        let authority = match origin.split_once("://") {
            Some(("http" | "https", authority)) => authority,
            _ => return false,
        };
        headers.get(HOST).and_then(|h| h.to_str().ok()).is_some_and(|host| host.eq_ignore_ascii_case(authority))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy, whose
    /// `X-Forwarded-For` is then read from the right, past every trusted proxy, to the
    /// first address that is not one.
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusted(peer.ip()) {
            return peer;
        }
        let mut client = peer.ip();
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusted(ip) {
                break;
            }
        }
        SocketAddr::new(client, if client == peer.ip() { peer.port() } else { 0 })
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port or in brackets.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

/// Which WebSocket endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Native,
    Irc,
}

/// An accepted upgrade, picked up by the connection once its 101 is sent.
struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    framing: Framing,
    client: SocketAddr,
    /// What a `/ws` session is told of its upgrade request (its cookie, its user agent).
    native: super::native::Upgrade,
}

/// What each request of one connection sees.
struct Connection {
    peer: SocketAddr,
    /// A metrics listener's: `/metrics` and nothing else.
    metrics: bool,
    shared: Shared,
    upgrade: Mutex<Option<Upgrade>>,
}

/// What a connection refused at accept reads: a 503 with the reason.
pub(crate) fn refusal(why: Refusal) -> Bytes {
    let body = format!("{why}\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
         connection: close\r\nx-content-type-options: nosniff\r\n\r\n{body}",
        body.len()
    )
    .into()
}

/// Serves one HTTP connection (plain or already through TLS) until it closes, or,
/// when it upgrades to a WebSocket, until that session ends.
pub(crate) async fn serve<S>(stream: S, peer: SocketAddr, metrics: bool, shared: &Shared) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed, and over before a WebSocket session starts: the HTTP connection's state
    // is not kept for the session's life.
    let (result, upgrade) = Box::pin(requests(stream, peer, metrics, shared)).await;
    match (result, upgrade) {
        (Ok(()), Some(upgrade)) => Box::pin(websocket::<S>(upgrade, shared)).await,
        (Ok(()), None) => Ending::ClientClosed,
        (Err(e), _) if e.is_timeout() => Ending::HandshakeTimeout,
        (Err(e), _) if e.is_incomplete_message() => Ending::ClientClosed,
        (Err(e), _) => Ending::Protocol(format!("HTTP: {e}")),
    }
}

/// Answers the connection's requests until it closes or upgrades. Each request's
/// headers must arrive within `handshake_timeout_secs`.
async fn requests<S>(
    stream: S,
    peer: SocketAddr,
    metrics: bool,
    shared: &Shared,
) -> (hyper::Result<()>, Option<Upgrade>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = Arc::new(Connection { peer, metrics, shared: shared.clone(), upgrade: Mutex::new(None) });
    let requests = connection.clone();
    let service = service_fn(move |request| {
        let connection = requests.clone();
        async move {
            let reply = route(request, &connection).await;
            Ok::<_, Infallible>(secure(reply, &connection.shared.web.policy))
        }
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(shared.limits.handshake_timeout()).max_buf_size(64 * 1024);
    let served = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
    let mut served = std::pin::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = shared.stopping.cancelled() => {
            served.as_mut().graceful_shutdown();
            match tokio::time::timeout(shared.limits.shutdown_grace(), served.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    let upgrade = connection.upgrade.lock().unwrap_or_else(PoisonError::into_inner).take();
    (result, upgrade)
}

/// Runs the session of an upgraded connection.
async fn websocket<S: socket::Io>(upgrade: Upgrade, shared: &Shared) -> Ending {
    // The registration deadline starts with the WebSocket: a browser may have kept the
    // HTTP connection open a while before upgrading it.
    let deadline = Instant::now() + shared.limits.handshake_timeout();
    let upgraded = match tokio::time::timeout_at(deadline, upgrade.on_upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => return Ending::Protocol(format!("WebSocket upgrade: {e}")),
        Err(_) => return Ending::HandshakeTimeout,
    };
    let limits = &shared.limits;
    // A message over these can hold no unit the protocol would accept: the WebSocket
    // layer refuses it, which closes the connection. Anything smaller reaches the
    // protocol, which answers an oversized unit as it does on TCP.
    let max_message = match upgrade.framing {
        Framing::Native => socket_limit(limits.max_frame_header + limits.max_frame_payload + 2),
        Framing::IrcBinary | Framing::IrcText => socket_limit(MAX_LINE_WITH_TAGS * 4),
    };
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    // The connection's own stream, out of hyper's box; with what hyper read past the
    // upgrade, if anything (its read buffer goes with it otherwise).
    let Ok(parts) = upgraded.downcast::<TokioIo<S>>() else {
        return Ending::Protocol("the upgraded connection is not the one accepted".into());
    };
    let (stream, read_buf) = (parts.io.into_inner(), parts.read_buf);
    let read = (!read_buf.is_empty()).then(|| read_buf.to_vec());
    // Dropped here, not kept for the session's life: it holds hyper's whole read buffer.
    drop(read_buf);
    let socket = match read {
        None => WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await,
        Some(read) => WebSocketStream::from_partially_read(stream, read, Role::Server, Some(config)).await,
    };
    let (reader, writer) = socket::split(socket, upgrade.framing);
    let client = upgrade.client;
    match upgrade.framing {
        Framing::Native => {
            let serve = super::serve::<Native, _, _>(reader, writer, client, deadline, Gateway::Ws, shared);
            super::native::UPGRADE.scope(upgrade.native, serve).await
        }
        Framing::IrcBinary | Framing::IrcText => {
            super::serve::<Irc, _, _>(reader, writer, client, deadline, Gateway::IrcWs, shared).await
        }
    }
}

fn socket_limit(n: usize) -> usize {
    n.max(4096)
}

/// The page policy, its `connect-src` extended to the WebSockets of the cluster's nodes
/// given as web URLs (`https://HOST` becomes `wss://HOST`), so that the browser client
/// may move to another node when its own goes away. An entry that is not a plain
/// `http(s)://HOST[:PORT][/PATH]` is left out, so no entry can add anything else to the
/// policy.
fn policy(nodes: &[String]) -> HeaderValue {
    let mut sources = String::new();
    for node in nodes {
        let (scheme, rest) = match node.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("wss", rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("ws", rest),
            _ => continue,
        };
        let host = rest.split('/').next().unwrap_or_default();
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
        if !host.is_empty() && host.chars().all(plain) {
            sources.push_str(&format!(" {scheme}://{}", host.to_ascii_lowercase()));
        }
    }
    let csp = CSP.replace("connect-src 'self'", &format!("connect-src 'self'{sources}"));
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

/// Adds the headers every response carries.
fn secure<B>(mut reply: Response<B>, policy: &HeaderValue) -> Response<B> {
    let headers = reply.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    reply
}

/// A plain-text answer.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    reply
}

/// The pages that answer with files, and the others.
async fn route(request: Request<Incoming>, connection: &Connection) -> Response<session::Body> {
    if !connection.metrics {
        let path = request.uri().path();
        if path == "/session" {
            return session::session(request, connection).await.map(http_body_util::Either::Left);
        }
        if path.starts_with("/files/") {
            return session::file(request, connection).await;
        }
    }
    respond(request, connection).await.map(http_body_util::Either::Left)
}

async fn respond(request: Request<Incoming>, connection: &Connection) -> Reply {
    let method = request.method().clone();
    if connection.metrics {
        return match (request.uri().path(), method == Method::GET || method == Method::HEAD) {
            ("/metrics", true) => metrics(&connection.shared),
            ("/metrics", false) => plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n"),
            _ => plain(StatusCode::NOT_FOUND, "only /metrics is served here\n"),
        };
    }
    match request.uri().path() {
        "/ws" => upgrade(request, connection, Endpoint::Native),
        "/irc" => upgrade(request, connection, Endpoint::Irc),
        path if method != Method::GET && method != Method::HEAD => {
            let _ = path;
            let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served here\n");
            reply.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            reply
        }
        "/healthz" => health(&connection.shared).await,
        path => connection.shared.web.assets.serve(&method, path, request.headers()),
    }
}

/// `/metrics`, in the Prometheus text format.
fn metrics(shared: &Shared) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(shared.exported.scrape())));
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    reply
}

/// `/healthz`: ready when the hub answers in time and its store takes writes.
async fn health(shared: &Shared) -> Reply {
    if shared.stopping.is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match tokio::time::timeout(HEALTH_WAIT, shared.hub.health()).await {
        Ok(Ok(health)) if health.store_ok => plain(StatusCode::OK, "ok\n"),
        Ok(Ok(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, "the history store is failing\n"),
        Ok(Err(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, "the hub has stopped\n"),
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "the hub is not answering\n"),
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The IRC subprotocol to speak: the first of the client's that is known, in the
/// client's order of preference; text messages when it offers neither.
fn irc_framing(headers: &HeaderMap) -> (Framing, Option<&'static str>) {
    let offered =
        headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for protocol in offered {
        match protocol.trim() {
            "binary.ircv3.net" => return (Framing::IrcBinary, Some("binary.ircv3.net")),
            "text.ircv3.net" => return (Framing::IrcText, Some("text.ircv3.net")),
            _ => {}
        }
    }
    (Framing::IrcText, None)
}

/// Accepts a WebSocket upgrade (RFC 6455 §4.2) for `endpoint`, or says why not.
fn upgrade(mut request: Request<Incoming>, connection: &Connection, endpoint: Endpoint) -> Reply {
    let site = &connection.shared.web;
    if request.method() != Method::GET {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "a WebSocket opens with GET\n");
        reply.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return reply;
    }
    let headers = request.headers();
    if !has_token(headers, CONNECTION, "upgrade") || !has_token(headers, UPGRADE, "websocket") {
        let mut reply = plain(StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint\n");
        reply.headers_mut().insert(UPGRADE, HeaderValue::from_static("websocket"));
        reply.headers_mut().insert(CONNECTION, HeaderValue::from_static("upgrade"));
        return reply;
    }
    if headers.get(SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        let mut reply = plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 is spoken here\n");
        reply.headers_mut().insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return reply;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs Sec-WebSocket-Key\n");
    };
    if !site.origin_allowed(headers) {
        tracing::info!(peer = %connection.peer, origin = ?headers.get(ORIGIN), "refused a cross-origin WebSocket");
        return plain(StatusCode::FORBIDDEN, "WebSockets are not opened from pages of other sites\n");
    }
    let accept = derive_accept_key(key.as_bytes());
    let (framing, protocol) = match endpoint {
        Endpoint::Native => (Framing::Native, None),
        Endpoint::Irc => irc_framing(headers),
    };
    let client = site.client(connection.peer, headers);
    let native = super::native::Upgrade {
        cookie: session::cookie(headers),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(parley_hub::clean_description),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    *connection.upgrade.lock().unwrap_or_else(PoisonError::into_inner) =
        Some(Upgrade { on_upgrade, framing, client, native });
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = reply.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Web;

    fn site(allowed: &[&str], trusted: &[&str]) -> Site {
        let config = Web {
            allowed_origins: allowed.iter().map(|s| (*s).to_owned()).collect(),
            trusted_proxies: trusted.iter().map(|s| s.parse().expect("a network")).collect(),
        };
        Site::with_assets(&config, &[], Assets::embedded())
    }

    #[test]
    fn the_policy_lets_the_page_reach_the_clusters_web_nodes_and_nothing_else() {
        let nodes = [
            "https://B.example.org/chat/",
            "http://10.0.0.3:8080",
            "c.example.org:7780",
            "https://evil.example.org; script-src *",
            "ftp://d.example.org",
        ]
        .map(str::to_owned);
        let policy = policy(&nodes);
        let policy = policy.to_str().expect("ASCII");
        assert!(policy.contains("connect-src 'self' wss://b.example.org ws://10.0.0.3:8080; "), "{policy}");
        assert!(!policy.contains("evil") && !policy.contains("c.example.org") && !policy.contains("ftp"), "{policy}");
        assert_eq!(super::policy(&[]).to_str().expect("ASCII"), CSP);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a value"));
        }
        map
    }

    #[test]
    fn origins_are_the_pages_own_host_or_allowed_ones() {
        let site = site(&["https://chat.example.org/"], &[]);
        assert!(site.origin_allowed(&headers(&[("host", "localhost:8080")])), "not a browser");
        assert!(site.origin_allowed(&headers(&[("host", "localhost:8080"), ("origin", "http://localhost:8080")])));
        assert!(site.origin_allowed(&headers(&[("host", "10.0.0.5:8443"), ("origin", "https://Chat.Example.org")])));
        for origin in ["http://evil.example", "http://localhost:8081", "null", "file://localhost:8080"] {
            assert!(!site.origin_allowed(&headers(&[("host", "localhost:8080"), ("origin", origin)])), "{origin}");
        }
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let site = site(&[], &["127.0.0.1/32", "10.0.0.0/8"]);
        let proxy: SocketAddr = "127.0.0.1:5000".parse().expect("an address");
        let stranger: SocketAddr = "192.0.2.9:5000".parse().expect("an address");
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(site.client(stranger, &forwarded), stranger, "an untrusted peer's header is ignored");
        assert_eq!(site.client(proxy, &forwarded).ip(), "198.51.100.7".parse::<IpAddr>().expect("an address"));
        assert_eq!(site.client(proxy, &HeaderMap::new()), proxy);
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(site.client(proxy, &garbage), proxy);
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("an address");
        let one = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        assert_eq!(site.client(mapped, &one).ip(), "2001:db8::1".parse::<IpAddr>().expect("an address"));
    }

    #[test]
    fn the_irc_subprotocol_follows_the_clients_preference() {
        let pick = |offer: &str| irc_framing(&headers(&[("sec-websocket-protocol", offer)])).0;
        assert_eq!(pick("text.ircv3.net, binary.ircv3.net"), Framing::IrcText);
        assert_eq!(pick("binary.ircv3.net,text.ircv3.net"), Framing::IrcBinary);
        assert_eq!(pick("chat, binary.ircv3.net"), Framing::IrcBinary);
        assert_eq!(irc_framing(&HeaderMap::new()), (Framing::IrcText, None));
    }
}
