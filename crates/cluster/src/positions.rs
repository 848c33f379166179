//! Where each node has read the log up to: a key-value bucket (`parley_positions`, one
//! value per node, no expiry) holding the stream position up to which the node's store
//! has every message, so that a node starting again follows the log from there instead
//! of reading all the log retains.

use std::sync::Arc;

use async_nats::jetstream::kv;

use crate::connect::Link;
use crate::LogError;

/// The bucket's name.
const BUCKET: &str = "parley_positions";

/// The nodes' positions in the log.
pub struct Positions {
    kv: kv::Store,
}

fn jetstream(e: impl std::fmt::Display) -> LogError {
    LogError::JetStream(e.to_string())
}

impl Positions {
    /// Opens the bucket, creating it if no node has yet (as the nick registry does: the
    /// stream first, for nats-server 2.9).
    ///
    /// # Errors
    ///
    /// When JetStream cannot be reached or refuses the bucket.
    pub async fn open(link: &Link, replicas: usize) -> Result<Arc<Positions>, LogError> {
        crate::connect::open_stream(link, crate::connect::bucket_config(BUCKET, replicas))
            .await
            .map_err(LogError::JetStream)?;
        let kv = link.js.get_key_value(BUCKET).await.map_err(jetstream)?;
        Ok(Arc::new(Positions { kv }))
    }

    /// Where `node` has read up to, if it ever said.
    ///
    /// # Errors
    ///
    /// When the bucket cannot be read.
    pub async fn load(&self, node: &str) -> Result<Option<u64>, LogError> {
        let value = self.kv.get(node).await.map_err(jetstream)?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    /// Records that `node`'s store has every message up to `position`.
    ///
    /// # Errors
    ///
    /// When the bucket cannot be written (the next save will do).
    pub async fn save(&self, node: &str, position: u64) -> Result<(), LogError> {
        self.kv.put(node, position.to_string().into()).await.map_err(jetstream)?;
        Ok(())
    }
}
