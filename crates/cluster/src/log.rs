//! The rooms' shared log: one JetStream stream that every node publishes its rooms'
//! messages into and follows in full, so that every node delivers the same messages in
//! the same order.
//!
//! **Dense seqs by creating each (room, seq) once.** A message of room `r` with seq `n`
//! is published on its own subject, `parley.room.<token of r>.<n>` (private messages:
//! `parley.private.<n>`), with `Nats-Expected-Last-Subject-Sequence: 0`: JetStream
//! stores it only if that subject has no message yet. So each seq of a room is taken
//! exactly once, by whichever node's publish JetStream orders first; the others are
//! refused, read the room's last seq, renumber and try again. A node numbers only after
//! the last seq it knows, and learns the real last one on every refusal, so seqs are
//! 1, 2, 3, … with no gap, and the stream order of a room's messages is their seq order.
//!
//! Why not one subject per room with the expected sequence of the room's last message
//! (the textbook optimistic concurrency)? On a replicated stream, nats-server before
//! 2.9.21/2.10 checks a non-zero expected sequence only against what is already
//! stored, before the write goes through Raft, so concurrent publishes expecting the
//! same last message may all be stored (nats-server issue 4320); Debian 12's 2.9.10
//! does this, as the first probe of this crate saw (hundreds of doubled seqs in 200
//! rounds of 9 racing publishers). An expected sequence of 0 is checked where the write
//! is applied, in Raft order, and held in the same probe (0 doubles in 1,800 races).
//!
//! **Retries without doubles.** Each attempt carries a `Nats-Msg-Id` (the node's name
//! and a counter). A publish whose acknowledgement was lost is sent again with the same
//! id and seq: JetStream's duplicate window answers with the first copy, and past the
//! window the refusal leads to reading the message at that seq, which carries the id.
//!
//! **Order within a node.** Messages to one room from one node are published one at a
//! time, in the order they were submitted (a queue per room, drained by one task), so a
//! sender's messages keep their order. Rooms do not wait for each other.
//!
//! **Following.** Every node reads the whole stream through a [`Follower`]: an
//! ephemeral push consumer, no acknowledgements (the node keeps its own position, which
//! is the stream sequence of the last message it handled), flow-controlled, and
//! replaced by a new one, under a new name, from the last position read when it falls
//! silent, skips a delivery or the connection is re-established, so the node sees every
//! message once, in stream order, across reconnects and server deaths (`follower.rs`
//! says why it is not the client library's ordered consumer). A durable pull consumer
//! per node would keep the position in JetStream instead, at the price of an
//! acknowledgement per message and a consumer per node to clean up after a node that is
//! gone for good; the node needs its position with its own state (history written up to
//! there) anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use parley_hub::{Presence, Record, RoomName};
use tokio::sync::oneshot;

use crate::connect::Link;
use crate::follower::Follower;
use crate::presence::{WirePresence, PRESENCE};
use crate::subject::room_token;
use crate::wire::WireRecord;
use crate::LogError;

/// The prefix of a room's subjects.
const ROOMS: &str = "parley.room";
/// The prefix of private messages' subjects (numbered together, as in the hub).
const PRIVATE: &str = "parley.private";
/// The header that repeats a message's seq, for operators reading the stream.
const SEQ_HEADER: &str = "Parley-Seq";

/// How long a publish that found no stream leader waits before trying again.
const ELECTION_PAUSE: Duration = Duration::from_millis(100);

/// How many rooms' queues (and last seqs) a node keeps while they are idle. An idle
/// room's entry is only a cache: its last seq is read again from the stream when it is
/// gone.
const MAX_IDLE_ROOMS: usize = 4096;

/// How the log's stream is set up, and how long a publish may take.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The stream's name. default: `PARLEY_ROOMS`
    pub stream: String,
    /// Copies JetStream keeps of each message: 3 for a 3-server cluster (a publish is
    /// acknowledged once 2 have it, and one server may be lost). default: 3
    pub replicas: usize,
    /// How long JetStream remembers message ids to drop a repeated publish: longer than
    /// any retry of one message. default: 2 minutes
    pub duplicate_window: Duration,
    /// This node's name, unique in the cluster: it makes message ids unique.
    pub node: String,
    /// How long a publish may take, retries included, before it fails; a node cut off
    /// from NATS fails its publishes within this. default: 4 s
    pub publish_within: Duration,
    /// How long the stream keeps a message: a node starting reads what is kept (every
    /// message is in the shared database too, written by every node that read it).
    /// Longer than any outage a node should catch up from by itself. default: 24 h
    pub max_age: Duration,
}

impl LogConfig {
    /// The defaults, for the node `node`.
    #[must_use]
    pub fn new(node: &str) -> LogConfig {
        LogConfig {
            stream: "PARLEY_ROOMS".into(),
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            node: node.into(),
            publish_within: Duration::from_secs(4),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Where a published message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its seq in its room (or among private messages).
    pub seq: u64,
    /// Its position in the stream: followers deliver it after everything before it.
    pub position: u64,
}

/// A message a [`Follower`] read.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its position in the stream; a follower started after it will not read it again.
    pub position: u64,
    /// The message, its seq the one it was stored under.
    pub record: Record,
    /// The id it was published under (`Nats-Msg-Id`): [`RoomLog::ticket_of`] tells
    /// whether this node's log published it, and under which ticket.
    pub id: Option<String>,
}

/// The shared log of every room's messages, on one JetStream stream. Cheap to share
/// (`Arc`); publishing needs a tokio runtime.
pub struct RoomLog {
    link: Link,
    stream: stream::Stream,
    config: LogConfig,
    /// What this run of the node puts before a message's ticket to make its id: the
    /// node's name and the time the log was opened, so that a node restarted within the
    /// duplicate window never repeats an id of its previous run (JetStream would take a
    /// new message for the old one, and drop it).
    id_prefix: String,
    /// This run of the node, as other nodes' followers name it (the id prefix without
    /// its dash): the last token of its presence subject.
    run: String,
    /// The next ticket of [`RoomLog::submit`].
    attempts: AtomicU64,
    /// This node's presence changes waiting to be published, in order.
    presence: tokio::sync::mpsc::UnboundedSender<Presence>,
    /// Set when a presence change could not be published: the other nodes may have
    /// missed it (see [`RoomLog::presence_missed`]).
    presence_missed: Arc<AtomicBool>,
    /// Each room's queue of messages waiting to be published and the last seq this node
    /// knows of it, under a lock held only to push or pop (never across an `.await`).
    rooms: Mutex<HashMap<String, Room>>,
}

#[derive(Default)]
struct Room {
    last: u64,
    queue: VecDeque<Pending>,
    draining: bool,
}

struct Pending {
    id: String,
    record: Record,
    done: oneshot::Sender<Result<Appended, LogError>>,
}

/// The subject prefix of a record's room, or of private messages.
fn prefix_of(room: Option<&RoomName>) -> String {
    match room {
        Some(room) => format!("{ROOMS}.{}", room_token(room.key_str())),
        None => PRIVATE.to_owned(),
    }
}

fn jetstream(e: impl std::fmt::Display) -> LogError {
    LogError::JetStream(e.to_string())
}

impl RoomLog {
    /// Opens the log's stream, creating it if no node has yet.
    ///
    /// # Errors
    ///
    /// When JetStream cannot be reached or refuses the stream.
    pub async fn open(link: &Link, config: LogConfig) -> Result<Arc<RoomLog>, LogError> {
        let stream = crate::connect::open_stream(
            link,
            stream::Config {
                name: config.stream.clone(),
                subjects: vec![format!("{ROOMS}.*.*"), format!("{PRIVATE}.*"), format!("{PRESENCE}.*")],
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: config.duplicate_window,
                max_age: config.max_age,
                ..Default::default()
            },
        )
        .await
        .map_err(LogError::JetStream)?;
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros());
        let run = format!("{}-{started}", config.node);
        let id_prefix = format!("{run}-");
        let presence_missed = Arc::new(AtomicBool::new(false));
        let (presence, changes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(publish_presence(
            link.clone(),
            format!("{PRESENCE}.{run}"),
            config.publish_within,
            changes,
            presence_missed.clone(),
        ));
        Ok(Arc::new(RoomLog {
            link: link.clone(),
            stream,
            config,
            id_prefix,
            run,
            presence,
            presence_missed,
            attempts: AtomicU64::new(0),
            rooms: Mutex::new(HashMap::new()),
        }))
    }

    /// Queues `record` for its room (`record.room`; `None`: the private messages) and
    /// returns where its outcome will arrive. Messages submitted for one room are
    /// published in submission order; `record.seq` is the seq the caller expects it to
    /// get (its last known seq plus one, or 0 for "don't know"), a lower bound only: the
    /// outcome says the seq it got. It must come from the log (what this node's
    /// follower or publishes saw, or the store's copy of it): a seq more than one past
    /// the log's last would leave a gap. Never waits; needs a tokio runtime. The queue
    /// is not bounded here: the hub bounds what a session may have unacknowledged.
    pub fn submit(self: &Arc<Self>, record: Record) -> oneshot::Receiver<Result<Appended, LogError>> {
        let ticket = self.attempts.fetch_add(1, Ordering::Relaxed);
        self.submit_as(ticket, record)
    }

    /// [`RoomLog::submit`] under the caller's `ticket`, which a follower's
    /// [`Delivered`] gives back ([`RoomLog::ticket_of`]). Tickets must be unique for the
    /// life of this log; a caller uses either its own or [`RoomLog::submit`]'s, never both.
    pub fn submit_as(self: &Arc<Self>, ticket: u64, record: Record) -> oneshot::Receiver<Result<Appended, LogError>> {
        let (done, outcome) = oneshot::channel();
        let prefix = prefix_of(record.room.as_ref());
        let id = format!("{}{ticket}", self.id_prefix);
        let start = {
            let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            let room = rooms.entry(prefix.clone()).or_default();
            room.queue.push_back(Pending { id, record, done });
            !std::mem::replace(&mut room.draining, true)
        };
        if start {
            let log = Arc::clone(self);
            tokio::spawn(async move { log.drain(prefix).await });
        }
        outcome
    }

    /// Publishes `record` (as [`RoomLog::submit`]) and waits until JetStream has stored
    /// it on a quorum of servers.
    ///
    /// # Errors
    ///
    /// Within [`LogConfig::publish_within`]: [`LogError::Unavailable`] when no server
    /// could be reached, [`LogError::Unconfirmed`] when the outcome is unknown, or
    /// another [`LogError`].
    pub async fn append(self: &Arc<Self>, record: Record) -> Result<Appended, LogError> {
        self.submit(record).await.unwrap_or(Err(LogError::Closed))
    }

    /// Publishes one room's queue, one message at a time, until it is empty.
    async fn drain(&self, prefix: String) {
        loop {
            let (pending, last) = {
                let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
                let idle = rooms.len() > MAX_IDLE_ROOMS;
                let Some(room) = rooms.get_mut(&prefix) else { return };
                match room.queue.pop_front() {
                    Some(pending) => (pending, room.last),
                    None => {
                        room.draining = false;
                        if idle {
                            rooms.remove(&prefix);
                        }
                        return;
                    }
                }
            };
            let outcome = self.publish(&prefix, last, &pending.id, pending.record).await;
            if let Ok(appended) = &outcome {
                let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(room) = rooms.get_mut(&prefix) {
                    room.last = room.last.max(appended.seq);
                }
            }
            // The caller may have stopped waiting; the message is in the log regardless.
            let _ = pending.done.send(outcome);
        }
    }

    /// One message: publish at the next seq, renumbering while others take it, retrying
    /// with the same id while the outcome is unknown, all within the publish bound.
    async fn publish(&self, prefix: &str, last: u64, id: &str, mut record: Record) -> Result<Appended, LogError> {
        let deadline = Instant::now() + self.config.publish_within;
        let mut seq = record.seq.max(last + 1);
        let mut sent = false;
        let mut renumbered = 0;
        let unknown = |sent: bool| if sent { LogError::Unconfirmed } else { LogError::Unavailable };
        loop {
            if !self.connected_by(deadline).await {
                return Err(unknown(sent));
            }
            record.seq = seq;
            let payload = serde_json::to_vec(&WireRecord::from(&record)).map_err(jetstream)?;
            let subject = format!("{prefix}.{seq}");
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(id)
                .expected_last_subject_sequence(0)
                .header(SEQ_HEADER, seq.to_string());
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ack = tokio::time::timeout(remaining, async {
                self.link.js.send_publish(subject.clone(), message).await?.await
            })
            .await;
            let error = match ack {
                Err(_elapsed) => return Err(LogError::Unconfirmed),
                Ok(Ok(ack)) => return Ok(Appended { seq, position: ack.sequence }),
                Ok(Err(error)) => error,
            };
            match error.kind() {
                PublishErrorKind::WrongLastSequence => {
                    // The seq is taken: by this very message, if an earlier attempt was
                    // stored after all, else by another node.
                    match self.stream.get_last_raw_message_by_subject(&subject).await {
                        Ok(taken) if taken.headers.get("Nats-Msg-Id").is_some_and(|v| v.as_str() == id) => {
                            return Ok(Appended { seq, position: taken.sequence });
                        }
                        Ok(_) => {}
                        // Unreadable now: if an attempt may have landed, renumbering
                        // could store the message twice. Ask again (same seq, same id)
                        // while time remains.
                        Err(_) if sent => continue,
                        Err(_) => {}
                    }
                    renumbered += 1;
                    // Each try is a race with the other nodes' next messages, and a node
                    // whose round trip is longer (busier, or reconnected through another
                    // server) loses most of them while the others publish flat out: on
                    // a loaded machine one lost 33 in a row within a tenth of a second,
                    // another the 64 that used to be the bound. So a message is given up
                    // as contended only when its whole publish bound has gone by.
                    if Instant::now() >= deadline {
                        tracing::debug!(subject, renumbered, "giving up a contended message");
                        return Err(LogError::Contended { attempts: renumbered });
                    }
                    // The node that took this seq is sending the next one as soon as it
                    // hears so, which is when this node hears it lost: trying the next seq
                    // at once races it fairly, where reading the room's last seq first
                    // would always arrive a round trip late (and starve this node in a
                    // busy room). Only a node that keeps losing is so far behind that it
                    // reads where the room is.
                    seq += 1;
                    if renumbered.is_multiple_of(3) {
                        if let Ok(last) = self.last_seq(prefix).await {
                            seq = seq.max(last + 1);
                        }
                    }
                }
                PublishErrorKind::MaxPayloadExceeded => return Err(LogError::TooLarge),
                PublishErrorKind::StreamNotFound => {
                    // Nobody answered for the subject: the stream's leader is being
                    // elected (its server died), or the stream is gone. Nothing was
                    // stored; try again while time remains (briefly apart, as
                    // the election takes a moment).
                    if Instant::now() + ELECTION_PAUSE >= deadline {
                        return Err(unknown(sent));
                    }
                    tokio::time::sleep(ELECTION_PAUSE).await;
                }
                PublishErrorKind::TimedOut
                | PublishErrorKind::BrokenPipe
                | PublishErrorKind::MaxAckPending
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::Other => {
                    // Perhaps stored: the next attempt has the same id and seq.
                    sent = true;
                    tracing::debug!(subject, "publish not confirmed, retrying: {error}");
                }
            }
        }
    }

    /// Waits (polling the client's state) until connected, or until `deadline`.
    async fn connected_by(&self, deadline: Instant) -> bool {
        loop {
            if self.link.is_connected() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last seq stored under `prefix`: its subjects are created in seq order, so the
    /// last message of the prefix has the highest.
    async fn last_seq(&self, prefix: &str) -> Result<u64, LogError> {
        match self.stream.get_last_raw_message_by_subject(&format!("{prefix}.*")).await {
            Ok(message) => message
                .subject
                .rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| LogError::JetStream(format!("unexpected subject {}", message.subject))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(e) => Err(jetstream(e)),
        }
    }

    /// The position of the log's last entry; 0 while it has none.
    ///
    /// # Errors
    ///
    /// When JetStream cannot answer.
    pub async fn last_position(&self) -> Result<u64, LogError> {
        let mut stream = self.stream.clone();
        Ok(stream.info().await.map_err(jetstream)?.state.last_sequence)
    }

    /// The last seq of `room` (`None`: of private messages) in the log; 0 if it has none.
    ///
    /// # Errors
    ///
    /// When JetStream cannot answer.
    pub async fn last_seq_of(&self, room: Option<&RoomName>) -> Result<u64, LogError> {
        self.last_seq(&prefix_of(room)).await
    }

    /// Follows the whole log from the message after stream position `after` (0: from
    /// the start). See [`Follower`] for how it survives a server's death.
    ///
    /// # Errors
    ///
    /// When JetStream cannot create the follower's consumer within 25 s.
    pub async fn follow(&self, after: u64) -> Result<Follower, LogError> {
        Follower::start(&self.link, &self.config.stream, after).await
    }

    /// Publishes a change in who is on this node, after every change announced before
    /// it. Never waits; a change that cannot be published within the publish bound is
    /// dropped and noted ([`RoomLog::presence_missed`]).
    pub fn announce(&self, presence: Presence) {
        let _ = self.presence.send(presence);
    }

    /// Whether a presence change was dropped since the last call: then the node should
    /// announce everything again (a reset) once it is connected.
    pub fn presence_missed(&self) -> bool {
        self.presence_missed.swap(false, Ordering::Relaxed)
    }

    /// This run of the node, as [`crate::Entry::Presence`] names a node.
    #[must_use]
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The ticket `delivered` was submitted under, when this log published it.
    #[must_use]
    pub fn ticket_of(&self, delivered: &Delivered) -> Option<u64> {
        delivered.id.as_deref()?.strip_prefix(self.id_prefix.as_str())?.parse().ok()
    }

    /// The link the log publishes on.
    #[must_use]
    pub fn link(&self) -> &Link {
        &self.link
    }
}

/// Publishes a node's presence changes one at a time, in order, each within `within`
/// (waiting for a connection, and retrying while unconfirmed: a change published twice
/// is the same change twice, which the hubs take as once).
async fn publish_presence(
    link: Link,
    subject: String,
    within: Duration,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<Presence>,
    missed: Arc<AtomicBool>,
) {
    while let Some(change) = changes.recv().await {
        let Ok(payload) = serde_json::to_vec(&WirePresence::from(&change)) else { continue };
        let payload = bytes::Bytes::from(payload);
        let deadline = Instant::now() + within;
        let published = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break false;
            }
            let attempt = tokio::time::timeout(remaining, async {
                link.js.publish(subject.clone(), payload.clone()).await?.await
            })
            .await;
            match attempt {
                Ok(Ok(_)) => break true,
                Err(_elapsed) => break false,
                Ok(Err(e)) => {
                    tracing::debug!(subject, "presence not published yet: {e}");
                    tokio::time::sleep(ELECTION_PAUSE).await;
                }
            }
        };
        if !published {
            tracing::warn!(subject, "a presence change could not be published; the node will tell everything again");
            missed.store(true, Ordering::Relaxed);
        }
    }
}
