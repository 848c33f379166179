//! A node of a cluster: the hub's [`Ledger`] on the cluster's shared log
//! (`parley-cluster`'s [`RoomLog`] on NATS JetStream), the follower that gives the
//! hub every node's messages and presence changes back in the log's order, and the
//! node's lease, by which the others know it is alive.
//!
//! The hub submits each message it accepts under a ticket; the log numbers it, stores it
//! on a quorum of NATS servers and, through this node's follower, hands it back with
//! its ticket (the message id carries it), so the hub answers the sender when the
//! message comes round, as every other node delivers it. A refusal (NATS unreachable,
//! no answer in time) goes straight back to the hub.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use parley_cluster::{Entry, Link, LogConfig, LogError, NickConfig, NickError, NickRegistry, Positions, RoomLog};
use parley_hub::{ClusterNicks, Clustered, Ledger, Logged, Presence, Record, Ticket};
use tokio::sync::mpsc;

use crate::config::Cluster;

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No NATS server answered, or JetStream refused the log.
    #[error("cannot join the cluster through {servers}: {source}")]
    Log {
        /// The servers tried.
        servers: String,
        /// What went wrong.
        source: LogError,
    },
    /// The node's lease could not be taken.
    #[error("cannot take this node's lease in the cluster: {0}")]
    Lease(#[from] NickError),
}

/// How long a node's lease lasts unrenewed: a node that dies (or is cut off from NATS)
/// is taken for gone, with everyone on it, within this and a check.
const LEASE: Duration = Duration::from_secs(10);

/// How often a node checks the leases of the nodes it has heard from, and whether it
/// must tell everything again.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How far back in the log a node that never ran before starts: the messages other
/// nodes may not have written yet (every node writes every message) are at its end.
const FIRST_START_WINDOW: u64 = 10_000;

/// How often a node records where its store has every message of the log up to.
const SAVE_POSITION_EVERY: Duration = Duration::from_secs(2);

/// The hub's ledger: submissions go to the log, refusals back to the hub.
struct Node {
    log: Arc<RoomLog>,
    /// Where this node's store has every message up to (see [`Ledger::written`]).
    written: Arc<AtomicU64>,
    /// Weak: the follower holds the only strong sender, so that the hub hears the
    /// channel close (and refuses messages from then on) when following stops.
    logged: mpsc::WeakUnboundedSender<Logged>,
}

impl Ledger for Node {
    fn submit(&self, ticket: Ticket, record: Record) {
        let outcome = self.log.submit_as(ticket, record);
        let Some(logged) = self.logged.upgrade() else { return };
        tokio::spawn(async move {
            // A stored message comes back through the follower; only a refusal is news.
            let maybe = match outcome.await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(ticket, "a message could not be logged: {e}");
                    matches!(e, LogError::Unconfirmed)
                }
                Err(_) => true,
            };
            let _ = logged.send(Logged::Refused { ticket, maybe });
        });
    }

    fn announce(&self, presence: Presence) {
        self.log.announce(presence);
    }

    fn written(&self, position: u64) {
        self.written.fetch_max(position, Ordering::Relaxed);
    }
}

/// The other nodes' runs this node has heard from, to check their leases.
type Heard = Arc<Mutex<HashSet<String>>>;

/// Joins the cluster: connects to NATS, takes this node's lease, opens the shared log,
/// and follows it from where this node's store has every message (the start of the
/// log's last 10,000 entries on a node's first start), saying hello so that the other
/// nodes tell it who is where. The hub writes every message to the shared database,
/// where those some node wrote already are kept once, and delivers only those newer
/// than what the database held when it started.
///
/// # Errors
///
/// When no NATS server answers or JetStream refuses the log or the lease.
pub(crate) async fn join(config: &Cluster) -> Result<Clustered, ClusterError> {
    let servers = config.servers.join(",");
    let failed = |source| ClusterError::Log { servers: servers.clone(), source };
    let node = config.node_name();
    let link = parley_cluster::connect(&config.servers, &node).await.map_err(failed)?;
    let log_config = LogConfig {
        replicas: config.replicas,
        max_age: Duration::from_secs(config.retain_hours.saturating_mul(3600)),
        ..LogConfig::new(&node)
    };
    let log = RoomLog::open(&link, log_config).await.map_err(failed)?;
    let leases =
        NickConfig { bucket: "parley_nodes".into(), replicas: config.replicas, lease: LEASE, ..NickConfig::new(&node) };
    let leases = NickRegistry::open(&link, leases).await?;
    // The lease's revision is a number of the bucket's stream, never given twice: this
    // run's guests are numbered from it, shifted so that no run's 2^32 guests reach the
    // next run's first (a revision is far below 2^31, as leases are rewritten a few
    // times a minute).
    let lease = leases.claim(log.run()).await?;
    let first_guest = lease.revision << 32;
    // Claims name this run, so that the others can free them when it is gone (a run's
    // guest nicks name the node, which is shorter and readable).
    let nick_claims =
        NickRegistry::open(&link, NickConfig { replicas: config.replicas, ..NickConfig::new(log.run()) }).await?;
    let nicks = ClusterNicks {
        node: node.clone(),
        claims: Arc::new(parley_cluster::HubClaims::new(nick_claims.clone())),
        lost: nick_claims.keep_alive(),
    };
    // From where this node's store has everything; a node's first start reads the end
    // of the log only, as the others have written the rest.
    let positions = Positions::open(&link, config.replicas).await.map_err(failed)?;
    let after = match positions.load(&node).await.map_err(failed)? {
        Some(position) => position,
        None => log.last_position().await.map_err(failed)?.saturating_sub(FIRST_START_WINDOW),
    };
    let mut follower = log.follow(after).await.map_err(failed)?;
    // It reads presence from there on only: the others tell it who is where.
    log.announce(Presence::Hello);
    tracing::info!(node, run = log.run(), servers, after, "a node of the cluster");
    let (logged, news) = mpsc::unbounded_channel();
    let gone = Gone { hub: logged.downgrade(), nicks: nick_claims };
    let written = Arc::new(AtomicU64::new(after));
    tokio::spawn(save_position(positions, node.clone(), written.clone(), logged.downgrade()));
    let ledger = Arc::new(Node { log: log.clone(), written, logged: logged.downgrade() });
    let heard: Heard = Arc::default();
    tokio::spawn(watch_leases(link, log.clone(), leases, heard.clone(), gone.clone()));
    let own_name = format!("{node}-");
    tokio::spawn(async move {
        let mut earlier_runs = HashSet::new();
        loop {
            let news = match follower.next_entry().await {
                Ok(Entry::Message(delivered)) => {
                    let ticket = log.ticket_of(&delivered);
                    Logged::Message { record: delivered.record, ticket, position: delivered.position }
                }
                Ok(Entry::Presence { node: run, presence, .. }) => {
                    if run == log.run() {
                        continue;
                    }
                    if run.strip_prefix(&own_name).is_some_and(|started| started.bytes().all(|b| b.is_ascii_digit())) {
                        // This node's previous run: gone, whatever its lease says.
                        if earlier_runs.insert(run.clone()) {
                            gone.node_gone(&run);
                        }
                        continue;
                    } else {
                        heard.lock().unwrap_or_else(PoisonError::into_inner).insert(run.clone());
                        Logged::Presence { node: Arc::from(run), presence }
                    }
                }
                Err(LogError::Undecodable { position, why }) => {
                    tracing::error!(position, "an entry in the cluster's log cannot be read, skipped: {why}");
                    continue;
                }
                Err(e) => {
                    // Dropping the sender tells the hub: it refuses messages from now on.
                    tracing::error!("following the cluster's log stopped: {e}");
                    return;
                }
            };
            if logged.send(news).is_err() {
                return;
            }
        }
    });
    Ok(Clustered { ledger, logged: news, first_guest, nicks: Some(nicks) })
}

/// Records, every few seconds while the hub runs, where this node's store has every
/// message of the log up to.
async fn save_position(
    positions: Arc<Positions>,
    node: String,
    written: Arc<AtomicU64>,
    hub: mpsc::WeakUnboundedSender<Logged>,
) {
    let mut saved = written.load(Ordering::Relaxed);
    let mut every = tokio::time::interval(SAVE_POSITION_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while hub.upgrade().is_some() {
        every.tick().await;
        let now = written.load(Ordering::Relaxed);
        if now > saved {
            match positions.save(&node, now).await {
                Ok(()) => saved = now,
                Err(e) => tracing::debug!("this node's position in the log could not be saved yet: {e}"),
            }
        }
    }
}

/// What follows a node's run going away: the hub is told (everyone on it leaves), and
/// the nicks it held are freed at once, not a lease later, so that its users, moving to
/// other nodes, find them free.
#[derive(Clone)]
struct Gone {
    hub: mpsc::WeakUnboundedSender<Logged>,
    nicks: Arc<NickRegistry>,
}

impl Gone {
    fn node_gone(&self, run: &str) {
        if let Some(hub) = self.hub.upgrade() {
            let _ = hub.send(Logged::NodeGone { node: Arc::from(run) });
        }
        let (nicks, run) = (self.nicks.clone(), run.to_owned());
        tokio::spawn(async move {
            match nicks.free_claims_of(&run).await {
                Ok(0) => {}
                Ok(freed) => tracing::info!(run, freed, "freed the nicks of a node that went away"),
                Err(e) => tracing::warn!(run, "the nicks of a node that went away could not be freed: {e}"),
            }
        });
    }
}

/// Keeps this node's lease, and every few seconds: tells the hub of the nodes whose
/// lease ran out (everyone on them is gone), and asks it to tell everything again when
/// the other nodes may have missed some of its presence changes (one was dropped while
/// NATS was out of reach, or its own lease ran out meanwhile and the others took it
/// for gone).
async fn watch_leases(link: Link, log: Arc<RoomLog>, leases: Arc<NickRegistry>, heard: Heard, gone: Gone) {
    let mut lost = leases.keep_alive();
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retell = false;
    loop {
        tokio::select! {
            lost = lost.recv() => match lost {
                Some(_) => retell = true,
                None => return,
            },
            _ = every.tick() => {}
        }
        let Some(hub) = gone.hub.upgrade() else { return };
        if !link.is_connected() {
            continue;
        }
        if retell || log.presence_missed() {
            // Taken again first, so that nobody drops what follows as a gone node's.
            if !leases.holds(log.run()).await {
                if let Err(e) = leases.claim(log.run()).await {
                    tracing::warn!("this node's lease could not be taken again: {e}");
                    retell = true;
                    continue;
                }
            }
            retell = false;
            tracing::info!("telling the cluster again who is on this node");
            let _ = hub.send(Logged::Reannounce);
        }
        let runs: Vec<String> = heard.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        for run in runs {
            if let Ok(None) = leases.holder(&run).await {
                heard.lock().unwrap_or_else(PoisonError::into_inner).remove(&run);
                gone.node_gone(&run);
            }
        }
    }
}
