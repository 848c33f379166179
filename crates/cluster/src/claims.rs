//! The nick registry as the hub sees it ([`parley_hub::NickClaims`]): a claim granted
//! or refused, and the claims this node lost.
//!
//! The hub releases a nick's claim when its last session here lets go of it, and may
//! ask for the same nick again at once (a client reconnecting under its nick: the old
//! connection's release and the new one's claim). Sent as they come, the claim could
//! reach the registry first, find this node's own claim and be refused. So a claim of
//! a key waits for the release of that key under way, if any (at most a few request
//! timeouts: after that it goes anyway and is refused, as it would have been).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use parley_hub::{ClaimError, ClaimFuture, ClusterNicks, NickClaims};

use crate::connect::REQUEST_TIMEOUT;
use crate::{NickError, NickRegistry};

/// How long a release is tried again while NATS cannot answer. Beyond a lease the claim
/// has aged out anyway (and the release is told it is not held).
const RELEASE_RETRY: Duration = Duration::from_secs(1);

/// A release under way: held by its task until it is done.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// This node's registry, for its hub.
pub struct HubClaims {
    registry: Arc<NickRegistry>,
    /// Releases under way, by key.
    releasing: Arc<Mutex<HashMap<String, Gate>>>,
}

impl HubClaims {
    /// The registry, for the hub.
    #[must_use]
    pub fn new(registry: Arc<NickRegistry>) -> HubClaims {
        HubClaims { registry, releasing: Arc::default() }
    }

    /// Everything the hub needs for nicks (`parley_hub::Clustered::nicks`): this node's
    /// name, the registry, and the claims its keep-alive reports lost. Starts the
    /// keep-alive, which refreshes the node's claims until the hub drops the receiver.
    #[must_use]
    pub fn for_hub(registry: &Arc<NickRegistry>) -> ClusterNicks {
        ClusterNicks {
            node: registry.node().to_owned(),
            claims: Arc::new(HubClaims::new(Arc::clone(registry))),
            lost: registry.keep_alive(),
        }
    }
}

impl NickClaims for HubClaims {
    fn claim(&self, key: String) -> ClaimFuture {
        let registry = Arc::clone(&self.registry);
        let release = self.releasing.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned();
        Box::pin(async move {
            if let Some(release) = release {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT * 4, release.lock()).await;
            }
            match registry.claim(&key).await {
                Ok(_) => Ok(true),
                Err(NickError::Taken) => Ok(false),
                Err(e) => Err(ClaimError(e.to_string())),
            }
        })
    }

    fn release(&self, key: String) {
        let gate: Gate = Arc::default();
        // A new mutex: nobody else can hold it yet.
        let Ok(held) = Arc::clone(&gate).try_lock_owned() else { return };
        self.releasing.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), Arc::clone(&gate));
        let (registry, releasing) = (Arc::clone(&self.registry), Arc::clone(&self.releasing));
        tokio::spawn(async move {
            loop {
                match registry.release(&key).await {
                    Ok(()) | Err(NickError::NotHeld | NickError::Taken) => break,
                    Err(e) => {
                        tracing::warn!(key, "{e}; releasing the nick again in a second");
                        tokio::time::sleep(RELEASE_RETRY).await;
                    }
                }
            }
            drop(held);
            let mut releasing = releasing.lock().unwrap_or_else(PoisonError::into_inner);
            if releasing.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) {
                releasing.remove(&key);
            }
        });
    }
}
