//! The journal: one thread that writes accepted messages to the [`Store`] in batches
//! (group commit) and tells the hub how each batch went, in order.
//!
//! Whatever queued up while a batch was being written goes into the next one, so under
//! load the cost of a commit is shared by many messages, and when idle a message is
//! written alone, at once. The hub never waits for it: it delivers and acknowledges a
//! message when its batch is reported committed.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::history::Record;
use crate::metrics::HubMetrics;
use crate::store::{Store, StoreError};

/// The most messages in one transaction.
const MAX_BATCH: usize = 1024;

/// Under load (the last batch held more than one message), how long the writer lets a
/// batch fill before committing it: a commit costs about as much as storing 30
/// messages, so waiting this long makes each cost a fraction. A lone message on a quiet
/// server is written at once.
const FILL_UNDER_LOAD: std::time::Duration = std::time::Duration::from_micros(250);

/// How often a clustered node's journal tries a failed batch again, at first and at most.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// What the journal does when a batch cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Reports it: the messages were not sent, and their senders are told so.
    Report,
    /// Tries again until it is written: in a cluster the messages are in the shared log
    /// already, other nodes deliver them, and this node's members must not miss them;
    /// the hub stops taking new operations while its backlog grows.
    Retry,
}

/// The outcome of one batch: the next `count` messages the hub sent.
pub(crate) struct Committed {
    pub(crate) count: usize,
    pub(crate) result: Result<(), StoreError>,
}

/// The hub's end of the journal. Dropping it lets the thread finish what is queued and
/// stop.
pub(crate) struct Journal {
    tx: mpsc::UnboundedSender<Arc<Record>>,
}

impl Journal {
    /// Starts the writer thread; outcomes arrive on the returned receiver.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        metrics: Arc<HubMetrics>,
        on_failure: OnFailure,
    ) -> std::io::Result<(Journal, mpsc::UnboundedReceiver<Committed>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Record>>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("parley-journal".into()).spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut busy = false;
            while let Some(first) = rx.blocking_recv() {
                if busy {
                    std::thread::sleep(FILL_UNDER_LOAD);
                }
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
                busy = batch.len() > 1;
                let started = std::time::Instant::now();
                let mut result = store.append(&batch);
                let mut pause = RETRY_FIRST;
                while let (Err(e), OnFailure::Retry) = (&result, on_failure) {
                    tracing::warn!(messages = batch.len(), "history could not be written, trying again: {e}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                    result = store.append(&batch);
                }
                metrics.commit_seconds.observe_duration(started.elapsed());
                #[allow(clippy::cast_precision_loss, reason = "a batch holds at most 1024 messages")]
                metrics.commit_batch.observe(batch.len() as f64);
                if let Err(e) = &result {
                    tracing::error!(messages = batch.len(), "history could not be written: {e}");
                }
                if done_tx.send(Committed { count: batch.len(), result }).is_err() {
                    break;
                }
                batch.clear();
            }
        })?;
        Ok((Journal { tx }, done_rx))
    }

    /// Queues a message for the next batch. False if the thread has stopped.
    pub(crate) fn write(&self, record: Arc<Record>) -> bool {
        self.tx.send(record).is_ok()
    }
}
