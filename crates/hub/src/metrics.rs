//! What the hub counts, for the server's `/metrics`: plain atomics, written by the hub
//! task (and its journal and readers) with relaxed stores, read by whoever scrapes. A
//! scrape never sends the hub anything and never takes a lock the hub takes, so it can
//! neither wait on the hub nor make it wait.
//!
//! No count here is per user or per room: the number of series stays the same however
//! many there are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A histogram over fixed buckets, of atomics: observing is a few relaxed atomic adds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound (not cumulative), and one for above the last.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// The sum of observations, an `f64` in its bits.
    sum: AtomicU64,
}

/// What a [`Histogram`] holds at one moment, as Prometheus shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Each upper bound with the count of observations at or below it (cumulative),
    /// ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// How many observations.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

impl Histogram {
    /// A histogram whose buckets end at `bounds` (increasing), and above.
    #[must_use]
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, value: f64) {
        let at = self.bounds.iter().position(|bound| value <= *bound).unwrap_or(self.bounds.len());
        if let Some(bucket) = self.buckets.get(at) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    /// Counts a duration, in seconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    /// The buckets, count and sum now. Read one by one, so a scrape during an
    /// observation may see it in the count and not yet in a bucket; the next scrape
    /// sees it whole.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (at, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(at).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: self.count.load(Ordering::Relaxed),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// Latency buckets, in seconds: from 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Batch-size buckets, in messages (the journal's batches hold at most 1024).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The hub's counts. One per hub, shared through [`crate::HubHandle::metrics`].
#[derive(Debug)]
pub struct HubMetrics {
    /// Chat messages accepted (room and private), before they are stored.
    pub messages_accepted: AtomicU64,
    /// Chat messages put into a recipient's outbox: one per message per recipient, the
    /// sender's own answer excepted.
    pub deliveries: AtomicU64,
    /// Sessions disconnected because their send queue overflowed.
    pub slow_consumers: AtomicU64,
    /// Failed password checks: logins, SASL, `hello` with a password.
    pub auth_failures: AtomicU64,
    /// Sessions now registered.
    pub sessions: AtomicU64,
    /// From a message's acceptance to its last delivery into an outbox (the store's
    /// commit included), in seconds.
    pub fanout_seconds: Histogram,
    /// Messages per journal commit.
    pub commit_batch: Histogram,
    /// How long each journal commit took, in seconds.
    pub commit_seconds: Histogram,
    /// How long each search took in the store, in seconds.
    pub search_seconds: Histogram,
}

impl Default for HubMetrics {
    fn default() -> Self {
        HubMetrics {
            messages_accepted: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            slow_consumers: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            fanout_seconds: Histogram::new(LATENCY_BUCKETS),
            commit_batch: Histogram::new(BATCH_BUCKETS),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
            search_seconds: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl HubMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_cumulatively_with_its_sum() {
        let histogram = Histogram::new(&[1.0, 5.0]);
        for value in [0.5, 1.0, 3.0, 7.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(1.0, 2), (5.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum - 11.5).abs() < 1e-9);
    }
}
