//! A node of a cluster: the hub's [`Ledger`] on the cluster's shared log
//! (`parley-cluster`'s [`RoomLog`] on NATS JetStream), and the follower that gives the
//! hub every node's messages back in the log's order.
//!
//! The hub submits each message it accepts under a ticket; the log numbers it, stores it
//! on a quorum of NATS servers and, through this node's follower, hands it back with
//! its ticket (the message id carries it), so the hub answers the sender when the
//! message comes round, as every other node delivers it. A refusal (NATS unreachable,
//! no answer in time) goes straight back to the hub.

use std::sync::Arc;

use parley_cluster::{LogConfig, LogError, RoomLog};
use parley_hub::{Clustered, Ledger, Logged, Record, Ticket};
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
}

/// The hub's ledger: submissions go to the log, refusals back to the hub.
struct Node {
    log: Arc<RoomLog>,
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
}

/// Joins the cluster: connects to NATS, opens the shared log, and starts following it
/// from its beginning (what the log retains). The hub writes every message to the shared
/// database, where those some node wrote already are kept once, and delivers only those
/// newer than what the database held when it started.
///
/// # Errors
///
/// When no NATS server answers or JetStream refuses the log.
pub(crate) async fn join(config: &Cluster) -> Result<Clustered, ClusterError> {
    let servers = config.servers.join(",");
    let failed = |source| ClusterError::Log { servers: servers.clone(), source };
    let node = config.node_name();
    let link = parley_cluster::connect(&config.servers, &node).await.map_err(failed)?;
    let log_config = LogConfig { replicas: config.replicas, ..LogConfig::new(&node) };
    let log = RoomLog::open(&link, log_config).await.map_err(failed)?;
    let mut follower = log.follow(0).await.map_err(failed)?;
    tracing::info!(node, servers, "a node of the cluster");
    let (logged, news) = mpsc::unbounded_channel();
    let ledger = Arc::new(Node { log: log.clone(), logged: logged.downgrade() });
    tokio::spawn(async move {
        loop {
            match follower.next().await {
                Ok(delivered) => {
                    let ticket = log.ticket_of(&delivered);
                    if logged.send(Logged::Message { record: delivered.record, ticket }).is_err() {
                        return;
                    }
                }
                Err(LogError::Undecodable { position, why }) => {
                    tracing::error!(position, "a message in the cluster's log cannot be read, skipped: {why}");
                }
                Err(e) => {
                    // Dropping the sender tells the hub: it refuses messages from now on.
                    tracing::error!("following the cluster's log stopped: {e}");
                    return;
                }
            }
        }
    });
    Ok(Clustered { ledger, logged: news })
}
