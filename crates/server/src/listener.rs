//! Accept loops. They do nothing slow: accept, take a connection slot, spawn. Handshakes
//! run in the spawned task, under a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use parley_hub::Network;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::ListenerKind;
use crate::gateway::irc::Irc;
use crate::gateway::line::Line;
use crate::gateway::native::Native;
use crate::gateway::{self, Ending, Protocol, Refusal};
use crate::metrics::{Gateway, ServerMetrics};
use crate::server::{Bound, Shared};
use crate::tls::Tls;

/// How long a refused client gets to read why.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// TCP keepalive: finds peers that vanished without a word (a laptop closed, a cable
/// pulled) after about two minutes of silence, for protocols with no ping of their own.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 4;

/// Open connections per client network, shared by every listener: an IPv4 address, or
/// an IPv6 /64, with an IPv4-mapped address counted as its IPv4 address
/// ([`Network`]), so that neither a dual-stack listener nor a /64's many addresses
/// give one party more than `max_connections_per_ip`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressCounts(Arc<Mutex<HashMap<Network, usize>>>);

impl AddressCounts {
    /// A place for one more connection from `ip`, unless its network has `max` open.
    fn take(&self, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let network = Network::of(ip);
        // Held for one map operation, never across an await.
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(network).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { counts: self.clone(), network })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&Network::of(ip)).copied().unwrap_or(0)
    }
}

/// One connection counted against its network; dropping it gives the place back.
struct AddressSlot {
    counts: AddressCounts,
    network: Network,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.network);
            }
        }
    }
}

fn configure(stream: &TcpStream, peer: SocketAddr) {
    // Replies are batched by the writer; Nagle would only add delayed-ACK latency.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%peer, "cannot set TCP keepalive: {e}");
    }
}

/// Tells a refused client why, in its protocol, and closes. TLS listeners just close:
/// a handshake costs more than the refusal is worth.
async fn refuse(mut stream: TcpStream, bound: Bound, why: Refusal) {
    if bound.tls {
        return;
    }
    let message = match bound.kind {
        ListenerKind::Line => Line::refusal(why),
        ListenerKind::Native => Native::refusal(why),
        ListenerKind::Irc => Irc::refusal(why),
        ListenerKind::Web | ListenerKind::Metrics => gateway::web::refusal(why),
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        stream.write_all(&message).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts connections until the server stops.
pub(crate) async fn accept_loop(
    bound: Bound,
    listener: TcpListener,
    tls: Option<Tls>,
    slots: Arc<Semaphore>,
    shared: Shared,
) {
    // Each connection holds a pointer to what connections share, not a copy of its
    // dozen handles (96 bytes in every connection's task, idle or not).
    let shared = Arc::new(shared);
    let kind = bound.label();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.stopping.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Out of descriptors or memory, usually: wait for connections to close
                // rather than spin.
                tracing::warn!(%kind, "accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        configure(&stream, peer);
        if bound.proxy_protocol {
            // The peer is the proxy: the client, and so its place under
            // `max_connections_per_ip`, is known once the connection's header is read.
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    shared.tasks.spawn(proxied(stream, tls.clone(), peer, bound, permit, shared.clone()));
                }
                Err(_) => {
                    tracing::info!(%kind, proxy = %peer, "refused: {}", Refusal::ServerFull);
                    ServerMetrics::count(&shared.metrics.refused);
                    shared.tasks.spawn(refuse(stream, bound, Refusal::ServerFull));
                }
            }
            continue;
        }
        let address_slot = shared.per_address.take(peer.ip(), shared.limits.max_connections_per_ip);
        let slot = match (slots.clone().try_acquire_owned(), address_slot) {
            (Ok(slot), Some(address_slot)) => (slot, address_slot),
            (slot, address_slot) => {
                let why = if slot.is_err() { Refusal::ServerFull } else { Refusal::TooManyFromAddress };
                drop((slot, address_slot));
                tracing::info!(%kind, %peer, network = %Network::of(peer.ip()), "refused: {why}");
                ServerMetrics::count(&shared.metrics.refused);
                shared.tasks.spawn(refuse(stream, bound, why));
                continue;
            }
        };
        let tls = tls.clone();
        match bound.kind {
            ListenerKind::Line => spawn::<Line>(stream, tls, peer, Door::of(bound), slot, &shared),
            ListenerKind::Native => spawn::<Native>(stream, tls, peer, Door::of(bound), slot, &shared),
            ListenerKind::Irc => spawn::<Irc>(stream, tls, peer, Door::of(bound), slot, &shared),
            ListenerKind::Web | ListenerKind::Metrics => {
                shared.tasks.spawn(web_connection(stream, tls, peer, Door::of(bound), slot, shared.clone()));
            }
        }
    }
}

/// The task of one HTTP connection, plain or TLS: its requests, and the WebSocket
/// session it may become (or, on a metrics listener, its scrapes).
// Not an `async fn`: it would keep each argument twice (see above).
#[allow(clippy::manual_async_fn)]
fn web_connection(
    stream: TcpStream,
    tls: Option<Tls>,
    peer: SocketAddr,
    door: Door,
    slot: Slot,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send + 'static {
    // An `async move` block, not an `async fn`, like every connection task here: an
    // `async fn` keeps each argument twice in its future, for the connection's life.
    async move {
        let deadline = opened(&shared, door, peer);
        let metrics = door.kind == ListenerKind::Metrics;
        let ending = match tls {
            None => Box::pin(gateway::web::serve(stream, peer, metrics, &shared)).await,
            Some(tls) => {
                // The handshake's outcome (the TLS stream, 1.2 KB, until it is moved into
                // the session) is not kept across the session's wait: only the box.
                let serving = {
                    // Boxed: the handshake's state is not kept in the task once it is done.
                    let accepted = tokio::time::timeout_at(deadline, Box::pin(tls.acceptor().accept(stream))).await;
                    match accepted {
                        Ok(Ok(stream)) => Ok(Box::pin(gateway::web::serve(stream, peer, metrics, &shared))),
                        Ok(Err(e)) => Err(Ending::Tls(e.to_string())),
                        Err(_) => Err(Ending::HandshakeTimeout),
                    }
                };
                match serving {
                    Ok(serving) => serving.await,
                    Err(ending) => ending,
                }
            }
        };
        closed(&shared, door, peer, &ending);
        drop(slot);
    }
}

/// A connection through a proxy that speaks the PROXY protocol: its header first,
/// under the handshake deadline, then the connection as the client's own.
async fn proxied(
    mut stream: TcpStream,
    tls: Option<Tls>,
    proxy: SocketAddr,
    bound: Bound,
    permit: tokio::sync::OwnedSemaphorePermit,
    shared: Arc<Shared>,
) {
    let kind = bound.label();
    let deadline = tokio::time::Instant::now() + shared.limits.handshake_timeout();
    let peer = match tokio::time::timeout_at(deadline, crate::proxy::read_header(&mut stream)).await {
        Ok(Ok(client)) => client.unwrap_or(proxy),
        Ok(Err(e)) => {
            tracing::info!(%kind, %proxy, "closed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%kind, %proxy, "closed: no PROXY protocol header in time");
            return;
        }
    };
    let Some(address_slot) = shared.per_address.take(peer.ip(), shared.limits.max_connections_per_ip) else {
        let why = Refusal::TooManyFromAddress;
        tracing::info!(%kind, %peer, %proxy, network = %Network::of(peer.ip()), "refused: {why}");
        ServerMetrics::count(&shared.metrics.refused);
        drop(permit);
        refuse(stream, bound, why).await;
        return;
    };
    let slot = (permit, address_slot);
    match bound.kind {
        ListenerKind::Line => Box::pin(connection::<Line>(stream, tls, peer, Door::of(bound), slot, shared)).await,
        ListenerKind::Native => Box::pin(connection::<Native>(stream, tls, peer, Door::of(bound), slot, shared)).await,
        ListenerKind::Irc => Box::pin(connection::<Irc>(stream, tls, peer, Door::of(bound), slot, shared)).await,
        ListenerKind::Web | ListenerKind::Metrics => {
            Box::pin(web_connection(stream, tls, peer, Door::of(bound), slot, shared)).await;
        }
    }
}

/// A connection of protocol `P`, plain or TLS, run in the current task.
async fn connection<P: Protocol + 'static>(
    stream: TcpStream,
    tls: Option<Tls>,
    peer: SocketAddr,
    door: Door,
    slot: Slot,
    shared: Arc<Shared>,
) {
    match tls {
        None => plain_connection::<P>(stream, peer, door, slot, shared).await,
        Some(tls) => tls_connection::<P>(stream, tls, peer, door, slot, shared).await,
    }
}

/// Spawns a connection's task. Each protocol, plain or over TLS, is a task type of its
/// own, so that a connection's future is the size its own protocol needs.
fn spawn<P: Protocol + 'static>(
    stream: TcpStream,
    tls: Option<Tls>,
    peer: SocketAddr,
    door: Door,
    slot: Slot,
    shared: &Arc<Shared>,
) {
    match tls {
        None => shared.tasks.spawn(plain_connection::<P>(stream, peer, door, slot, shared.clone())),
        Some(tls) => shared.tasks.spawn(tls_connection::<P>(stream, tls, peer, door, slot, shared.clone())),
    };
}

/// A connection's place under `max_connections` and `max_connections_per_ip`, held for
/// its life (its task drops it last).
type Slot = (tokio::sync::OwnedSemaphorePermit, AddressSlot);

/// What a connection's task keeps of its listener, for its whole life: its protocol and
/// whether it runs in TLS (not the listener's address, 40 bytes in every task).
#[derive(Debug, Clone, Copy)]
struct Door {
    kind: ListenerKind,
    tls: bool,
}

impl Door {
    fn of(bound: Bound) -> Door {
        Door { kind: bound.kind, tls: bound.tls }
    }

    fn label(self) -> String {
        crate::config::label(self.kind, self.tls)
    }
}

/// The task of one plain-text connection; it parks while quiet
/// ([`gateway::parking`]). Plain and TLS connections are separate tasks, so a plain one
/// does not carry the room for a TLS handshake's state in its future.
fn plain_connection<P: Protocol + 'static>(
    stream: TcpStream,
    peer: SocketAddr,
    door: Door,
    slot: Slot,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send + 'static {
    let (reader, writer) = stream.into_split();
    let deadline = opened(&shared, door, peer);
    let gateway = Gateway::of(door.kind);
    gateway::parking::serve::<P, _>(reader, writer, peer, deadline, gateway, shared, Leaving { door, peer, slot })
}

/// What a plain connection's last task does when it ends: it is counted out, and its
/// place is given back.
struct Leaving {
    door: Door,
    peer: SocketAddr,
    slot: Slot,
}

impl gateway::parking::Leave for Leaving {
    fn left(self, ending: &Ending, shared: &Shared) {
        closed(shared, self.door, self.peer, ending);
        drop(self.slot);
    }
}

/// The task of one TLS connection: the handshake, then the protocol.
// Not an `async fn`: it would keep each argument twice (see above).
#[allow(clippy::manual_async_fn)]
fn tls_connection<P: Protocol + 'static>(
    stream: TcpStream,
    tls: Tls,
    peer: SocketAddr,
    door: Door,
    slot: Slot,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let deadline = opened(&shared, door, peer);
        // The handshake's outcome (the TLS stream, 1.2 KB, until it is moved into the
        // session) is not kept across the session's wait: only the session's box.
        let serving = {
            // Boxed: the handshake's state (a TLS connection and its stream) is not kept
            // in the task once it is done.
            let accepted = tokio::time::timeout_at(deadline, Box::pin(tls.acceptor().accept(stream))).await;
            match accepted {
                Ok(Ok(stream)) => {
                    let (reader, writer) = tokio::io::split(stream);
                    let reader = gateway::Stream(reader);
                    let gateway = Gateway::of(door.kind);
                    Ok(Box::pin(gateway::serve::<P, _, _>(reader, writer, peer, deadline, gateway, &shared)))
                }
                Ok(Err(e)) => Err(Ending::Tls(e.to_string())),
                Err(_) => Err(Ending::HandshakeTimeout),
            }
        };
        let ending = match serving {
            Ok(serving) => serving.await,
            Err(ending) => ending,
        };
        closed(&shared, door, peer, &ending);
        drop(slot);
    }
}

/// Counts and logs a new connection; returns its registration deadline, which covers
/// the TLS handshake and the name or hello that follows.
fn opened(shared: &Shared, door: Door, peer: SocketAddr) -> tokio::time::Instant {
    let gateway = Gateway::of(door.kind);
    shared.metrics.connections.add(gateway, 1);
    shared.metrics.connections_open.add(gateway, 1);
    let active = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(kind = %door.label(), %peer, active, "connected");
    tokio::time::Instant::now() + shared.limits.handshake_timeout()
}

fn closed(shared: &Shared, door: Door, peer: SocketAddr, ending: &Ending) {
    shared.metrics.connections_open.add(Gateway::of(door.kind), -1);
    let active = shared.active.fetch_sub(1, Ordering::Relaxed) - 1;
    tracing::info!(kind = %door.label(), %peer, active, "disconnected: {ending}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    /// The size of a plain connection's task for each protocol (what a connection
    /// holds while it is busy), and of its parked cell (what it holds while it is
    /// quiet: docs/BENCHMARKS.md, "Idle memory").
    /// `cargo test -p parley-server connection_futures -- --nocapture` shows them.
    #[tokio::test]
    async fn connection_futures_stay_small() {
        use crate::gateway::parking::parked_size;
        let shared = Shared::for_tests().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("an address");
        let slots = Arc::new(Semaphore::new(10));
        for kind in [ListenerKind::Line, ListenerKind::Native, ListenerKind::Irc, ListenerKind::Web] {
            let _client = TcpStream::connect(addr).await.expect("connects");
            let (stream, peer) = listener.accept().await.expect("accepts");
            let slot = (
                slots.clone().try_acquire_owned().expect("a place"),
                shared.per_address.take(peer.ip(), 10).expect("a place"),
            );
            let (door, shared) = (Door { kind, tls: false }, Arc::new(shared.clone()));
            let (task, parked) = match kind {
                ListenerKind::Line => (
                    size_of_val(&plain_connection::<Line>(stream, peer, door, slot, shared)),
                    parked_size::<Line, Leaving>(),
                ),
                ListenerKind::Native => (
                    size_of_val(&plain_connection::<Native>(stream, peer, door, slot, shared)),
                    parked_size::<Native, Leaving>(),
                ),
                ListenerKind::Irc => (
                    size_of_val(&plain_connection::<Irc>(stream, peer, door, slot, shared)),
                    parked_size::<Irc, Leaving>(),
                ),
                ListenerKind::Web | ListenerKind::Metrics => {
                    (size_of_val(&web_connection(stream, None, peer, door, slot, shared)), 0)
                }
            };
            eprintln!("a plain {kind} connection: its task's future {task} bytes, parked {parked} bytes");
            // A quiet connection holds its parked cell; a busy one its task too. A new
            // await that holds a large future, or a protocol state that grows, shows
            // here first: tokio rounds a task up to 128 bytes.
            let (most_task, most_parked) = if kind == ListenerKind::Web { (400, 0) } else { (1408, 400) };
            assert!(task <= most_task, "a {kind} connection's future grew to {task} bytes");
            assert!(parked <= most_parked, "a parked {kind} connection grew to {parked} bytes");
        }
    }

    #[test]
    fn a_64_shares_one_count_and_places_come_back() {
        let counts = AddressCounts::default();
        let first = counts.take(ip("2001:db8:1:2::1"), 2).expect("a place");
        let second = counts.take(ip("2001:db8:1:2:ffff::7"), 2).expect("a place");
        assert!(counts.take(ip("2001:db8:1:2::99"), 2).is_none(), "the /64 is full");
        let elsewhere = counts.take(ip("2001:db8:1:3::1"), 2).expect("another /64 has its own");
        drop(first);
        assert_eq!(counts.open(ip("2001:db8:1:2::5")), 1);
        let third = counts.take(ip("2001:db8:1:2::99"), 2).expect("a place given back");
        drop((second, third, elsewhere));
        assert!(counts.0.lock().expect("unpoisoned").is_empty(), "nothing is kept for networks with no connection");
    }

    #[test]
    fn a_mapped_address_shares_its_ipv4_address_count() {
        let counts = AddressCounts::default();
        let _v4 = counts.take(ip("192.0.2.1"), 1).expect("a place");
        assert!(counts.take(ip("::ffff:192.0.2.1"), 1).is_none());
        assert!(counts.take(ip("192.0.2.2"), 1).is_some());
    }
}
