//! Reading the whole log, in stream order, from a position on: a node's [`Follower`].
//!
//! **An ephemeral push consumer, replaced whole when it fails.** The follower reads
//! through a consumer of its own (no acknowledgements, flow-controlled, heartbeats every
//! [`HEARTBEAT`]) and keeps its position itself: the stream sequence of the last message
//! it returned. When the consumer stops delivering (nothing heard for
//! [`SILENT_AFTER`]), skips a delivery (a consumer sequence out of turn, or a heartbeat
//! naming a later one), reports anything else, or the connection was re-established
//! under it, the follower drops it and creates a new one starting after its position,
//! under a **new name**, and tries again (briefly apart) until one answers. So it reads
//! every message once, in stream order, across server deaths and reconnects; a message
//! delivered twice by that is dropped.
//!
//! *Why not the client library's ordered consumer* (`push::Ordered` of async-nats
//! 0.51, which this crate used first)? It recreates its consumer under one fixed name
//! per recovery (`<first name>_<n>`), retried with a backoff that grows to 10 s, after
//! 10 s without heartbeats. On a replicated stream, nats-server 2.9 places an
//! ephemeral (one-replica) consumer on a random server of the stream's group, dead or
//! alive (`createGroupForConsumer`: shuffle the peers, take the first), and only that
//! server answers the create. With one of three servers killed, a third of creates go
//! to it and time out (measured: 12 of 30 in a row), and a create repeating a name that
//! was placed there is an update of that placement, so it times out again, every time,
//! for as long as the server stays down. A follower whose consumer lived on the killed
//! server, or whose first recovery attempt landed there, stopped delivering for good:
//! the test that kills a server during a publish run saw a follower stuck at message
//! 150 (the kill) for the whole 30 s, two runs in three on a busy machine. A new name per
//! attempt is a new placement, each a two-in-three chance; the heartbeat here is short
//! enough that a node notices within seconds, not tens of seconds, that its messages
//! stopped. What remains of the outage is JetStream's own: creating a consumer needs
//! the meta leader, and if it was on the dead server the others elect another only
//! after a Raft election timeout (4 to 9 s in 2.9).

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer::{push, AckPolicy, DeliverPolicy};
use async_nats::jetstream::Message;
use async_nats::{HeaderName, StatusCode, Subscriber};
use futures_util::StreamExt as _;
use tokio::time::Instant;

use crate::connect::Link;
use crate::presence::{WirePresence, PRESENCE};
use crate::wire::WireRecord;
use crate::{Delivered, LogError};
use parley_hub::Presence;

/// How often the consumer's server sends a heartbeat while it has nothing to deliver.
/// One small message a second per node is nothing; it is what bounds how long a node
/// may deliver nothing without knowing whether the log is quiet or its consumer gone.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long the follower hears nothing at all (no message, no heartbeat) before it
/// takes its consumer for lost: three heartbeats, so that a server or a client briefly
/// starved of CPU is not mistaken for a dead one (and if it is, a new consumer is
/// created for nothing, and nothing is lost).
pub(crate) const SILENT_AFTER: Duration = Duration::from_secs(3);

/// How long a consumer that lost its reader (its inbox has no subscriber: the node died,
/// or an attempt to create it was given up) lives on its server before the server
/// deletes it.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// The pause after a failed attempt to create a consumer, doubling up to
/// [`MAX_PAUSE`]: an attempt placed on a dead server has already waited for the request
/// timeout; one refused at once (no stream leader during an election, no connection)
/// should not be repeated in a tight loop.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// How long [`crate::RoomLog::follow`] keeps trying to create the first consumer before
/// it reports the log unreachable. Creating a consumer needs JetStream's meta leader,
/// and when its server dies the others elect a new one only after a Raft election
/// timeout, 4 to 9 s in nats-server 2.9, twice that if a vote splits (a follower
/// started just after a kill saw creates time out for over 10 s on a busy machine);
/// then a few attempts may land on the dead server.
pub(crate) const START_WITHIN: Duration = Duration::from_secs(25);

/// The heartbeat header naming the consumer sequence last delivered.
const LAST_CONSUMER: &str = "Nats-Last-Consumer";
/// The heartbeat header of a consumer waiting for a flow-control answer that was lost,
/// carrying the subject to answer on.
const STALLED: &str = "Nats-Consumer-Stalled";

/// What a follower reads: a message, or a node's presence change.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A room's or a private message.
    Message(Delivered),
    /// A change in who is on a node.
    Presence {
        /// Its position in the stream.
        position: u64,
        /// The node's run that told it ([`crate::RoomLog::run`]).
        node: String,
        /// The change.
        presence: Presence,
    },
}

/// One node's reading of the whole log, in stream order, from a position on.
pub struct Follower {
    link: Link,
    stream: String,
    /// The stream sequence of the last message returned (or the starting point).
    last: u64,
    consumer: Option<Consumer>,
    /// When anything last arrived from the consumer (or it was created).
    heard: Instant,
    pause: Duration,
}

/// The consumer being read and what it has delivered.
struct Consumer {
    name: String,
    messages: Subscriber,
    /// The consumer sequence of the last message it delivered.
    delivered: u64,
    /// The client's connection count when it was created: a reconnection since may
    /// have lost deliveries in flight.
    connects: u64,
}

impl Follower {
    /// A follower of `stream` from the message after position `after`, its first
    /// consumer created within [`START_WITHIN`].
    pub(crate) async fn start(link: &Link, stream: &str, after: u64) -> Result<Follower, LogError> {
        let mut follower = Follower {
            link: link.clone(),
            stream: stream.to_owned(),
            last: after,
            consumer: None,
            heard: Instant::now(),
            pause: FIRST_PAUSE,
        };
        let deadline = Instant::now() + START_WITHIN;
        loop {
            match follower.resume().await {
                Ok(()) => return Ok(follower),
                Err(e @ LogError::Closed) => return Err(e),
                Err(e) if Instant::now() + follower.pause >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(stream, "following the log: {e}; trying again");
                    follower.back_off().await;
                }
            }
        }
    }

    /// The next message, skipping presence changes (see [`Follower::next_entry`]).
    ///
    /// # Errors
    ///
    /// As [`Follower::next_entry`].
    pub async fn next(&mut self) -> Result<Delivered, LogError> {
        loop {
            if let Entry::Message(delivered) = self.next_entry().await? {
                return Ok(delivered);
            }
        }
    }

    /// The next entry: a message or a node's presence change. Waits as long as there is none; across a lost connection or a
    /// NATS server's death the follower's consumer is replaced by one starting after
    /// the last position read, so nothing is skipped, and a message delivered twice by
    /// that is dropped here. Cancel-safe: a call dropped while it waits loses nothing
    /// (at worst a consumer being created is left to expire on its server).
    ///
    /// # Errors
    ///
    /// [`LogError::Undecodable`] for a message that is not a record (the follower moves
    /// past it: call again); [`LogError::Closed`] when the connection is closed for good.
    pub async fn next_entry(&mut self) -> Result<Entry, LogError> {
        loop {
            let connects = self.link.client.statistics().connects.load(Ordering::Relaxed);
            let Some(consumer) = self.consumer.as_mut() else {
                match self.resume().await {
                    Ok(()) => {}
                    Err(LogError::Closed) => return Err(LogError::Closed),
                    Err(e) => {
                        tracing::debug!(stream = self.stream, "following the log: {e}; trying again");
                        self.back_off().await;
                    }
                }
                continue;
            };
            if consumer.connects != connects {
                self.replace("the connection was re-established");
                continue;
            }
            // A message already waiting is taken before the silence is judged: a reader
            // that was not asked for a while has not missed anything.
            let message = match tokio::time::timeout_at(self.heard + SILENT_AFTER, consumer.messages.next()).await {
                Err(_silent) => {
                    self.replace("nothing heard from the consumer");
                    continue;
                }
                Ok(None) => return Err(LogError::Closed),
                Ok(Some(message)) => message,
            };
            self.heard = Instant::now();
            match message.status {
                None => {}
                Some(StatusCode::IDLE_HEARTBEAT) => {
                    self.control(&message);
                    continue;
                }
                Some(status) => {
                    self.replace(&format!("the consumer reported {status}"));
                    continue;
                }
            }
            let message = Message { message, context: self.link.js.clone() };
            let Ok(info) = message.info() else { continue };
            let (sequence, position) = (info.consumer_sequence, info.stream_sequence);
            if sequence != consumer.delivered + 1 {
                self.replace("a delivery was skipped");
                continue;
            }
            consumer.delivered = sequence;
            if position <= self.last {
                continue;
            }
            self.last = position;
            if let Some(node) = message.subject.strip_prefix(PRESENCE).and_then(|s| s.strip_prefix('.')) {
                let presence = serde_json::from_slice::<WirePresence>(&message.payload)
                    .map_err(|e| e.to_string())
                    .and_then(WirePresence::into_presence)
                    .map_err(|why| LogError::Undecodable { position, why })?;
                return Ok(Entry::Presence { position, node: node.to_owned(), presence });
            }
            let record = serde_json::from_slice::<WireRecord>(&message.payload)
                .map_err(|e| e.to_string())
                .and_then(WireRecord::into_record)
                .map_err(|why| LogError::Undecodable { position, why })?;
            let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
            return Ok(Entry::Message(Delivered { position, record, id }));
        }
    }

    /// The position of the last message read (or the starting point).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.last
    }

    /// A heartbeat or a flow-control request: answer what asks for an answer, and
    /// replace the consumer if the heartbeat says it delivered something not received.
    fn control(&mut self, message: &async_nats::Message) {
        // A flow-control request (it has a reply subject), or a heartbeat saying the
        // consumer still waits for the answer to one that was lost.
        let stalled = message.headers.as_ref().and_then(|h| h.get(STALLED)).map(|v| v.as_str().to_owned());
        if let Some(reply) = message.reply.as_ref().map(|r| r.to_string()).or(stalled) {
            let client = self.link.client.clone();
            tokio::spawn(async move { client.publish(reply, bytes::Bytes::new()).await });
            return;
        }
        let last = message
            .headers
            .as_ref()
            .and_then(|h| h.get(HeaderName::from_static(LAST_CONSUMER)))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        if let (Some(last), Some(consumer)) = (last, &self.consumer) {
            if last != consumer.delivered {
                self.replace("a heartbeat names a delivery not received");
            }
        }
    }

    /// Drops the consumer (deleting it on its server, in the background: its server may
    /// be the dead one) so that the next read creates another.
    fn replace(&mut self, why: &str) {
        if let Some(consumer) = self.consumer.take() {
            tracing::debug!(
                stream = self.stream,
                consumer = consumer.name,
                position = self.last,
                "replacing the consumer: {why}"
            );
            self.forget(consumer.name);
        }
    }

    /// Deletes consumer `name` in the background, answered or not.
    fn forget(&self, name: String) {
        let (js, stream) = (self.link.js.clone(), self.stream.clone());
        tokio::spawn(async move { js.delete_consumer_from_stream(name, stream).await });
    }

    /// One attempt to create a consumer from the message after the last position read,
    /// under a name never used before, so that JetStream places it afresh.
    async fn resume(&mut self) -> Result<(), LogError> {
        let connects = self.link.client.statistics().connects.load(Ordering::Relaxed);
        let inbox = self.link.client.new_inbox();
        let name = format!("parley_follow_{}", inbox.rsplit('.').next().unwrap_or_default());
        let messages = self.link.client.subscribe(inbox.clone()).await.map_err(|_| LogError::Closed)?;
        let deliver_policy = if self.last == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence { start_sequence: self.last + 1 }
        };
        let config = push::Config {
            deliver_subject: inbox,
            name: Some(name.clone()),
            deliver_policy,
            ack_policy: AckPolicy::None,
            max_deliver: 1,
            flow_control: true,
            idle_heartbeat: HEARTBEAT,
            num_replicas: 1,
            memory_storage: true,
            inactive_threshold: INACTIVE_THRESHOLD,
            ..Default::default()
        };
        match self.link.js.create_consumer_on_stream(config, &self.stream).await {
            Ok(_) => {
                tracing::debug!(stream = self.stream, consumer = name, after = self.last, "following the log");
                self.consumer = Some(Consumer { name, messages, delivered: 0, connects });
                self.heard = Instant::now();
                self.pause = FIRST_PAUSE;
                Ok(())
            }
            Err(e) => {
                // It may exist all the same (placed on a dead server, or answered too
                // late): nothing will read it.
                self.forget(name);
                Err(LogError::JetStream(format!("creating a consumer: {e}")))
            }
        }
    }

    /// Waits before the next attempt to create a consumer, longer each time.
    async fn back_off(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }
}
