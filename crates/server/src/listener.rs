//! Accept loops. They do nothing slow: accept, take a connection slot, spawn. Handshakes
//! run in the spawned task, under a deadline.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::ListenerKind;
use crate::gateway::{self, Ending};
use crate::server::{Bound, Shared};
use crate::tls::Tls;

/// Accepts connections until the server stops.
pub(crate) async fn accept_loop(
    bound: Bound,
    listener: TcpListener,
    tls: Option<Tls>,
    slots: Arc<Semaphore>,
    shared: Shared,
) {
    let kind = bound.label();
    let mut backoff = Duration::from_millis(10);
    loop {
        // Waiting for a slot before accepting leaves excess clients in the kernel's
        // backlog instead of in our memory.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            () = shared.stopping.cancelled() => return,
        };
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
        // Replies are batched by the writer; Nagle would only add delayed-ACK latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let shared_for_task = shared.clone();
        let (tls, kind, protocol) = (tls.clone(), kind.clone(), bound.kind);
        shared.tasks.spawn(async move {
            let _slot = slot;
            let shared = shared_for_task;
            let active = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(%kind, %peer, active, "connected");
            // One deadline for the whole registration: TLS handshake, then name or hello.
            let deadline = tokio::time::Instant::now() + shared.limits.handshake_timeout();
            let ending = match tls {
                None => {
                    let (reader, writer) = stream.into_split();
                    serve(protocol, reader, writer, peer, deadline, &shared).await
                }
                Some(tls) => match tokio::time::timeout_at(deadline, tls.acceptor().accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let (reader, writer) = tokio::io::split(stream);
                        serve(protocol, reader, writer, peer, deadline, &shared).await
                    }
                    Ok(Err(e)) => Ending::Tls(e.to_string()),
                    Err(_) => Ending::HandshakeTimeout,
                },
            };
            let active = shared.active.fetch_sub(1, Ordering::Relaxed) - 1;
            tracing::info!(%kind, %peer, active, "disconnected: {ending}");
        });
    }
}

async fn serve<R, W>(
    protocol: ListenerKind,
    reader: R,
    writer: W,
    peer: std::net::SocketAddr,
    deadline: tokio::time::Instant,
    shared: &Shared,
) -> Ending
where
    R: tokio::io::AsyncRead + Unpin + Send,
    W: tokio::io::AsyncWrite + Unpin + Send,
{
    match protocol {
        ListenerKind::Line => gateway::line::serve(reader, writer, peer, deadline, shared).await,
        ListenerKind::Native => gateway::native::serve(reader, writer, peer, deadline, shared).await,
    }
}
