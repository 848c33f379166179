//! Flood control: a token bucket per session, applied by each gateway's reader before it
//! sends a command to the hub.
//!
//! A short burst passes at once; beyond it commands are admitted at the sustained rate,
//! and the reader waits (so a flooder is slowed by its own TCP window, not by a queue in
//! the server); a client that stays over the rate for longer than the grace period is
//! disconnected for excess flood. Pure and clock-driven, so it is tested without time.

use std::time::{Duration, Instant};

/// The flood policy. Every field is a server configuration value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodLimits {
    /// Commands admitted at once after a quiet period.
    pub burst: u32,
    /// Commands per second admitted in the long run; 0 turns flood control off.
    pub rate_per_sec: f64,
    /// How long a client may stay over the rate before it is disconnected.
    pub grace: Duration,
}

/// What to do with the next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Now,
    /// Wait this long, then send it.
    After(Duration),
    /// The client has flooded for longer than the grace period: disconnect it.
    Flood,
}

/// One session's token bucket. Only its reader touches it, so it needs no lock. The
/// limits are the caller's, given at each command: every idle connection keeps its
/// bucket for its whole life, and a copy of the limits in each would be 32 bytes more
/// of every connection's task.
#[derive(Debug, Clone)]
pub struct Throttle {
    tokens: f64,
    last: Instant,
    /// Since when every command has found the bucket empty.
    over_since: Option<Instant>,
}

impl Throttle {
    /// A full bucket at `now`.
    #[must_use]
    pub fn new(limits: &FloodLimits, now: Instant) -> Self {
        Self { tokens: f64::from(limits.burst.max(1)), last: now, over_since: None }
    }

    /// Takes a token for one command arriving at `now`, under `limits` (the ones the
    /// bucket was made with).
    pub fn admit(&mut self, limits: &FloodLimits, now: Instant) -> Admit {
        let rate = limits.rate_per_sec;
        if rate <= 0.0 {
            return Admit::Now;
        }
        let capacity = f64::from(limits.burst.max(1));
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.over_since = None;
            return Admit::Now;
        }
        let since = *self.over_since.get_or_insert(now);
        if now.saturating_duration_since(since) > limits.grace {
            return Admit::Flood;
        }
        // The caller sends the command after the wait; account for it now.
        let wait = Duration::from_secs_f64((1.0 - self.tokens) / rate);
        self.tokens -= 1.0;
        Admit::After(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FloodLimits = FloodLimits { burst: 5, rate_per_sec: 2.0, grace: Duration::from_secs(10) };

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let start = Instant::now();
        let mut throttle = Throttle::new(&LIMITS, start);
        for _ in 0..5 {
            assert_eq!(throttle.admit(&LIMITS, start), Admit::Now);
        }
        assert_eq!(throttle.admit(&LIMITS, start), Admit::After(Duration::from_millis(500)));
        // After waiting as told, the next one waits one more interval.
        let later = start + Duration::from_millis(500);
        assert_eq!(throttle.admit(&LIMITS, later), Admit::After(Duration::from_millis(500)));
    }

    #[test]
    fn a_quiet_period_refills_the_bucket() {
        let start = Instant::now();
        let mut throttle = Throttle::new(&LIMITS, start);
        for _ in 0..5 {
            throttle.admit(&LIMITS, start);
        }
        let rested = start + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(throttle.admit(&LIMITS, rested), Admit::Now);
        }
    }

    #[test]
    fn a_sustained_flood_is_cut_off_after_the_grace_period() {
        let start = Instant::now();
        let mut throttle = Throttle::new(&LIMITS, start);
        let mut now = start;
        let mut verdict = Admit::Now;
        // A client that obeys every wait but always has the next command ready.
        for _ in 0..100 {
            verdict = throttle.admit(&LIMITS, now);
            match verdict {
                Admit::Now => {}
                Admit::After(wait) => now += wait,
                Admit::Flood => break,
            }
        }
        assert_eq!(verdict, Admit::Flood);
        assert!(now - start > LIMITS.grace && now - start < LIMITS.grace + Duration::from_secs(3));
    }

    #[test]
    fn a_client_at_the_rate_is_never_cut_off() {
        let start = Instant::now();
        let mut throttle = Throttle::new(&LIMITS, start);
        for n in 1..1000 {
            let now = start + Duration::from_millis(500 * n);
            assert_eq!(throttle.admit(&LIMITS, now), Admit::Now);
        }
    }

    #[test]
    fn a_zero_rate_turns_it_off() {
        let start = Instant::now();
        let off = FloodLimits { rate_per_sec: 0.0, ..LIMITS };
        let mut throttle = Throttle::new(&off, start);
        assert!((0..10_000).all(|_| throttle.admit(&off, start) == Admit::Now));
    }
}
