//! Nicks in a cluster, as the hub sees them: before a session of this node takes a
//! nick, the cluster's registry must grant this node the nick's claim.
//!
//! A lone hub knows every session there is, so its own table of nicks decides. In a
//! cluster the nodes' tables are apart, so a nick goes to a session only once this node
//! holds its claim in the cluster's registry (the server puts a linearizable key-value
//! bucket behind [`NickClaims`]): of two nodes asking for one nick, exactly one is
//! granted it, and the other's session is told the nick is taken, as a local clash
//! would tell it. Nobody is renamed after the fact, except when the registry reports a
//! claim lost (this node was cut off for longer than a lease and the claim aged out).
//!
//! A claim is made on the nick's skeleton (what it looks like, [`crate::skeleton`]), so
//! `alice` and Cyrillic `аlice` are one claim, and conflict across nodes as they do in
//! one hub. The hub knows no NATS: this trait is all it sees.

use std::future::Future;
use std::pin::Pin;

/// What a claim comes to: granted (`true`, this node holds it now) or held by another
/// claim (`false`, on any node, this one included).
pub type ClaimFuture = Pin<Box<dyn Future<Output = Result<bool, ClaimError>> + Send>>;

/// The cluster's nick registry, for the hub.
pub trait NickClaims: Send + Sync {
    /// Asks for the claim on `key` (a nick's skeleton) for this node. The hub awaits it
    /// off its task. An error means the registry could not answer; the claim may have
    /// been stored all the same, in which case it ages out unrefreshed within a lease.
    fn claim(&self, key: String) -> ClaimFuture;

    /// Gives up this node's claim on `key`, which it holds: no session of this node uses
    /// a nick with that key any more. Never waits; a release that fails leaves the claim
    /// to age out within a lease.
    fn release(&self, key: String);
}

/// Why a claim could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster's nick registry is unreachable: {0}")]
pub struct ClaimError(pub String);
