//! The cluster's nick registry: which node holds which nick, in a JetStream key-value
//! bucket, so that of two nodes racing for one nick exactly one wins.
//!
//! **Claiming** writes the nick's key with `Nats-Expected-Last-Subject-Sequence: 0`
//! (the bucket's `create`): stored only if the key has no value. That check is made
//! where writes are applied, in Raft order, so it holds on a replicated bucket even on
//! nats-server 2.9 (see the log module for the non-zero case, which does not).
//!
//! **Expiry by leases.** 2.9 has no per-key TTL, so the bucket has a maximum age (the
//! lease, default 30 s) and each node rewrites every claim it holds every third of a
//! lease, expecting the revision it last wrote. A node that dies stops rewriting and its
//! claims age out within one lease. A rewrite expecting a revision that is no longer the
//! key's (the claim aged out while this node was cut off, and perhaps another took it)
//! is refused, and the claim is reported lost, never silently taken back. A claim not
//! rewritten for two thirds of a lease is treated as lost without trying: a rewrite that
//! late could land just after the claim aged out and another node took it (a non-zero
//! expected revision is checked before Raft on 2.9, so it might not be refused).
//!
//! **Releasing** deletes exactly the stream message of the revision this node wrote
//! (`STREAM.MSG.DELETE` by sequence), not "the key": if the claim aged out and someone
//! else holds the nick now, their revision is another message and stays. It leaves no
//! delete marker, so the next claim is again a create expecting nothing (a marker would
//! make it an update expecting the marker's revision: the check that 2.9 does not
//! make safely; a marker an operator writes with `nats kv del` keeps the nick taken
//! until it ages out, one lease). That needs the bucket's stream to allow deletes, which a bucket made
//! by the client library does not, so this module makes the stream itself, in the
//! bucket layout (`KV_<bucket>`, `$KV.<bucket>.<key>`, one value per key): `nats kv`
//! reads it as usual.
//!
//! **Refreshing thousands** is one pipelined pass: every rewrite is sent without
//! waiting for the previous acknowledgement (at most 256 in flight), so 10,000 nicks
//! cost 10,000 small messages every 10 s and about one round trip of waiting per 256.
//!
//! Keys are the hub's nick keys (normalised, confusable-checked: the caller's), written
//! as hex so that any script is a valid bucket key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{self, UpdateErrorKind};
use async_nats::jetstream::stream::{self, DeleteMessageErrorKind, LastRawMessageErrorKind};
use async_nats::jetstream::ErrorCode;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use crate::connect::{Link, REQUEST_TIMEOUT};
use crate::subject::room_token;
use crate::NickError;

/// Rewrites of claims in flight at once during a refresh.
const REFRESH_WINDOW: usize = 256;

/// How the registry's bucket is set up.
#[derive(Debug, Clone)]
pub struct NickConfig {
    /// The bucket's name. default: `parley_nicks`
    pub bucket: String,
    /// Copies kept of each claim. default: 3
    pub replicas: usize,
    /// How long a claim lives without being rewritten; a dead node's nicks are free
    /// again within this. default: 30 s
    pub lease: Duration,
    /// This node's name, stored as each claim's value.
    pub node: String,
}

impl NickConfig {
    /// The defaults, for the node `node`.
    #[must_use]
    pub fn new(node: &str) -> NickConfig {
        NickConfig { bucket: "parley_nicks".into(), replicas: 3, lease: Duration::from_secs(30), node: node.into() }
    }
}

/// A nick this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The revision (stream sequence) of the claim as last written.
    pub revision: u64,
}

/// What a refresh pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Claims rewritten.
    pub kept: usize,
    /// Claims lost (aged out, perhaps taken by another node): no longer held.
    pub lost: Vec<String>,
    /// Claims whose rewrite failed for want of NATS; tried again next pass, while their
    /// lease lasts.
    pub failed: usize,
}

/// A held claim: its revision and when it was written.
#[derive(Clone, Copy)]
struct Held {
    revision: u64,
    written: Instant,
}

/// This node's side of the cluster's nick registry.
pub struct NickRegistry {
    kv: kv::Store,
    stream: stream::Stream,
    subject_prefix: String,
    config: NickConfig,
    /// The claims this node holds. A tokio mutex, held across the network calls of a
    /// release or a refresh pass, so that a release never deletes a revision a refresh
    /// is replacing (claims insert after their write and do not wait for a pass).
    held: tokio::sync::Mutex<HashMap<String, Held>>,
}

fn unavailable(e: impl std::fmt::Display) -> NickError {
    NickError::Unavailable(e.to_string())
}

impl NickRegistry {
    /// Opens the registry's bucket, creating it if no node has yet.
    ///
    /// # Errors
    ///
    /// When JetStream cannot be reached or refuses the bucket.
    pub async fn open(link: &Link, config: NickConfig) -> Result<Arc<NickRegistry>, NickError> {
        let stream = crate::connect::open_stream(
            link,
            stream::Config {
                // Claims live by their leases (see above).
                max_age: config.lease,
                duplicate_window: config.lease.min(Duration::from_secs(120)),
                ..crate::connect::bucket_config(&config.bucket, config.replicas)
            },
        )
        .await
        .map_err(NickError::Unavailable)?;
        let kv = link.js.get_key_value(config.bucket.clone()).await.map_err(unavailable)?;
        Ok(Arc::new(NickRegistry {
            kv,
            stream,
            subject_prefix: format!("$KV.{}.", config.bucket),
            config,
            held: tokio::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// Claims the nick `key` for this node.
    ///
    /// # Errors
    ///
    /// [`NickError::Taken`] when any node (this one included) holds it;
    /// [`NickError::Unavailable`] when the registry cannot answer in time (the claim may
    /// then have been stored: unrefreshed, it ages out within a lease).
    pub async fn claim(&self, key: &str) -> Result<Claim, NickError> {
        // The lease runs from the write, not from when it is recorded here (which may
        // wait for a refresh pass).
        let written = Instant::now();
        let write = self.kv.update(room_token(key), self.config.node.clone().into(), 0);
        match tokio::time::timeout(REQUEST_TIMEOUT * 2, write).await {
            Ok(Ok(revision)) => {
                self.held.lock().await.insert(key.to_owned(), Held { revision, written });
                Ok(Claim { revision })
            }
            Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(NickError::Taken),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// Releases this node's claim on `key`.
    ///
    /// # Errors
    ///
    /// [`NickError::NotHeld`] when this node does not hold it (never claimed, released,
    /// or aged out: then it is forgotten here and whoever holds it now keeps it);
    /// [`NickError::Unavailable`] when the registry cannot answer (the claim is still
    /// held and refreshed; release again later).
    pub async fn release(&self, key: &str) -> Result<(), NickError> {
        let mut held = self.held.lock().await;
        let Some(claim) = held.get(key).copied() else { return Err(NickError::NotHeld) };
        match self.stream.delete_message(claim.revision).await {
            Ok(_) => {
                held.remove(key);
                Ok(())
            }
            Err(e) => {
                // No such message: the revision aged out (or was deleted); the nick is
                // not ours any more.
                // (2.9 answers a delete of a missing message with 10057, "message
                // delete failed", whose text says why.)
                if let DeleteMessageErrorKind::JetStream(js) = e.kind() {
                    let missing = js.error_code() == ErrorCode::NO_MESSAGE_FOUND
                        || (js.error_code() == ErrorCode::STREAM_MESSAGE_DELETE_FAILED
                            && js.to_string().contains("no message found"));
                    if missing {
                        held.remove(key);
                        return Err(NickError::NotHeld);
                    }
                }
                Err(unavailable(e))
            }
        }
    }

    /// Frees every claim `holder` (another node's name in this registry, see
    /// [`NickConfig::node`]) holds: that node is gone, and its users should not wait a
    /// lease for their nicks. Deletes exactly the revisions it wrote, so a claim taken
    /// since by someone else stays. Returns how many were freed.
    ///
    /// # Errors
    ///
    /// When the registry cannot be read; what was freed by then stays freed.
    pub async fn free_claims_of(&self, holder: &str) -> Result<usize, NickError> {
        let mut keys = self.kv.keys().await.map_err(unavailable)?;
        let mut freed = 0;
        while let Some(key) = keys.next().await {
            let key = key.map_err(unavailable)?;
            let Some(entry) = self.kv.entry(key).await.map_err(unavailable)? else { continue };
            if entry.value.as_ref() == holder.as_bytes() && self.stream.delete_message(entry.revision).await.is_ok() {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Rewrites every claim this node holds, expecting the revision it last wrote, in
    /// one pipelined pass. Call it every third of a lease ([`NickRegistry::keep_alive`]
    /// does).
    pub async fn refresh(&self) -> Refreshed {
        let mut held = self.held.lock().await;
        let mut outcome = Refreshed::default();
        let too_old = self.config.lease * 2 / 3;
        let (due, stale): (Vec<_>, Vec<_>) =
            held.iter().map(|(key, h)| (key.clone(), *h)).partition(|(_, h)| h.written.elapsed() < too_old);
        for (key, claim) in stale {
            // Best effort: deletes exactly this node's revision if it is still there.
            let _ = self.stream.delete_message(claim.revision).await;
            held.remove(&key);
            outcome.lost.push(key);
        }
        let node: bytes::Bytes = self.config.node.clone().into();
        let rewrites = futures_util::stream::iter(due)
            .map(|(key, claim)| {
                let node = node.clone();
                async move {
                    let written = Instant::now();
                    let rewrite = self.kv.update(room_token(&key), node, claim.revision);
                    let result = tokio::time::timeout(REQUEST_TIMEOUT * 2, rewrite).await;
                    (key, written, result)
                }
            })
            .buffer_unordered(REFRESH_WINDOW)
            .collect::<Vec<_>>()
            .await;
        for (key, written, result) in rewrites {
            match result {
                Ok(Ok(revision)) => {
                    held.insert(key, Held { revision, written });
                    outcome.kept += 1;
                }
                Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    held.remove(&key);
                    outcome.lost.push(key);
                }
                Ok(Err(_)) | Err(_) => outcome.failed += 1,
            }
        }
        outcome
    }

    /// Refreshes this node's claims every third of a lease, in a task of its own, until
    /// the returned receiver is dropped. Lost claims arrive on it, each once (at most as
    /// many as the node held, so the channel needs no other bound).
    pub fn keep_alive(self: &Arc<Self>) -> mpsc::UnboundedReceiver<String> {
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(registry.config.lease / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = lost_tx.closed() => return,
                    _ = every.tick() => {}
                }
                let refreshed = registry.refresh().await;
                if refreshed.failed > 0 {
                    tracing::warn!(failed = refreshed.failed, "nick claims could not be refreshed");
                }
                for key in refreshed.lost {
                    if lost_tx.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        lost_rx
    }

    /// This node's name, as its claims hold it.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// Whether this node holds `key`, as far as it knows.
    pub async fn holds(&self, key: &str) -> bool {
        self.held.lock().await.contains_key(key)
    }

    /// The node holding `key` now, asked of the bucket's leader; `None` if nobody does.
    ///
    /// # Errors
    ///
    /// When the registry cannot answer.
    pub async fn holder(&self, key: &str) -> Result<Option<String>, NickError> {
        let subject = format!("{}{}", self.subject_prefix, room_token(key));
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            // A delete or purge marker (written by an operator's `nats kv del`; this
            // module leaves none) means nobody.
            Ok(message) if message.headers.get("KV-Operation").is_some() => Ok(None),
            Ok(message) => Ok(Some(String::from_utf8_lossy(&message.payload).into_owned())),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}
