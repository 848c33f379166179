//! What the hub's tests share: sessions whose every event comes to the test.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{Command, Event, HubError, HubHandle, Outbox, Reply, RequestId, Session, Wire};
use tokio::sync::mpsc;

/// Hands every event to the test.
pub(crate) struct Tap(pub(crate) mpsc::UnboundedSender<Event>);

impl Wire for Tap {
    fn cache_slot(&self) -> Option<usize> {
        None
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        let _ = self.0.send(event.clone());
        out.extend_from_slice(b".");
    }
}

/// An outbox whose events come to the returned receiver.
pub(crate) fn tapped() -> (Arc<Outbox>, mpsc::UnboundedReceiver<Event>) {
    let (tx, events) = mpsc::unbounded_channel();
    (Arc::new(Outbox::new(Tap(tx), 1 << 20)), events)
}

/// Waits at most 10 s for `what`.
pub(crate) async fn within<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), what).await.expect("within 10 s")
}

/// A session, and everything it is told.
pub(crate) struct Peer {
    pub(crate) session: Session,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
}

impl Peer {
    /// Sends a command and waits for its answer.
    pub(crate) async fn ask(&mut self, req: u64, command: Command) -> Result<Reply, HubError> {
        self.session.send(RequestId(req), command).await.expect("the hub is up");
        within(async {
            loop {
                match self.events.recv().await.expect("the session is open") {
                    Event::Reply { req: r, result } if r == RequestId(req) => return result,
                    _ => {}
                }
            }
        })
        .await
    }

    pub(crate) async fn rename(&mut self, req: u64, nick: &str) -> Result<Reply, HubError> {
        self.ask(req, Command::Nick { nick: nick.to_owned() }).await
    }

    /// Its nick, as the hub has it now.
    pub(crate) async fn nick(&self) -> String {
        let whereabouts = self.session.whereabouts().await.expect("the hub is up").expect("connected");
        whereabouts.nick.to_string()
    }
}

/// Connects a session from 127.0.0.1.
pub(crate) async fn connect(hub: &HubHandle, nick: &str) -> Result<Peer, HubError> {
    let (outbox, events) = tapped();
    let session =
        within(hub.connect(nick, Some("127.0.0.1".parse().expect("an address")), RequestId(0), outbox)).await?;
    Ok(Peer { session, events })
}

/// What a session asking for a nick in use is told.
pub(crate) fn taken(nick: &str) -> HubError {
    HubError::NickTaken(nick.to_owned())
}
