//! Failed `OPER` attempts on one connection, paced so that guessing an operator's
//! password is slow, as InspIRCd's penalty and ergo's disconnect make it. Every failure
//! reads the same (`491 Invalid oper credentials`, an unknown name or a wrong password
//! alike), is logged with the client's address, and makes the next `OPER` on that
//! connection wait longer: `oper_retry_ms`, doubled at each further failure; at
//! `max_oper_failures` the connection is closed. Only an `OPER` waits (its reader
//! holds the commands sent after it, which keep their order).
//!
//! Pure and clock-driven, like the flood throttle, so it is tested without time.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between two attempts, whatever the configuration says: the
/// doubling is bounded.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// One connection's record of failed `OPER` attempts.
#[derive(Debug, Clone)]
pub(super) struct OperPacing {
    /// The client's address, for the log.
    pub(super) peer: Option<IpAddr>,
    failures: u32,
    max_failures: u32,
    first_wait: Duration,
    /// When the next attempt may be checked.
    ready_at: Option<Instant>,
}

impl OperPacing {
    pub(super) fn new(peer: Option<IpAddr>, max_failures: u32, first_wait: Duration) -> OperPacing {
        OperPacing { peer, failures: 0, max_failures: max_failures.max(1), first_wait, ready_at: None }
    }

    /// When the next attempt may be checked; `None`: at once.
    pub(super) fn ready_at(&self) -> Option<Instant> {
        self.ready_at
    }

    /// How many attempts have failed so far.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failed attempt at `now`. False when the connection has failed too often
    /// and must be closed.
    pub(super) fn failed(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.max_failures {
            return false;
        }
        let doublings = self.failures - 1;
        let wait = 2u32.checked_pow(doublings).and_then(|factor| self.first_wait.checked_mul(factor));
        self.ready_at = Some(now + wait.map_or(MAX_WAIT, |wait| wait.min(MAX_WAIT)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing(max_failures: u32, first_wait_ms: u64) -> OperPacing {
        OperPacing::new(Some([192, 0, 2, 1].into()), max_failures, Duration::from_millis(first_wait_ms))
    }

    #[test]
    fn each_failure_doubles_the_wait_until_the_connection_is_closed() {
        let mut pacing = pacing(5, 1000);
        let now = Instant::now();
        assert_eq!(pacing.ready_at(), None, "the first attempt is checked at once");
        for seconds in [1, 2, 4, 8] {
            assert!(pacing.failed(now));
            assert_eq!(pacing.ready_at(), Some(now + Duration::from_secs(seconds)));
        }
        assert!(!pacing.failed(now), "the fifth failure closes the connection");
        assert_eq!(pacing.failures(), 5);
    }

    #[test]
    fn the_wait_is_bounded() {
        let mut pacing = pacing(100, 1000);
        let now = Instant::now();
        for _ in 0..99 {
            assert!(pacing.failed(now));
            assert!(pacing.ready_at().is_some_and(|at| at <= now + MAX_WAIT));
        }
        assert_eq!(pacing.ready_at(), Some(now + MAX_WAIT));
        assert!(!pacing.failed(now));
    }
}
