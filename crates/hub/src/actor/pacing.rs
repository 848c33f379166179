//! Pacing password checks, so that guessing is slow and never starves anyone else.
//!
//! Two rules. *Backoff*: after failures, the next attempt for the same account from the
//! same network waits 1, 2, 4 … seconds (at most five minutes), and a network that fails
//! on many accounts waits too; a success clears its account's count. An attacker's
//! failures from one network never slow the owner logging in from another. *Fair
//! turns*: checks (about 50 ms of CPU each, by design) run a few at once, one per
//! network at a time, networks taking turns; so a few connections hammering logins get
//! their share, not every slot, and a class behind one address waits its turn instead
//! of being refused.
//!
//! A network is an IPv4 address, or an IPv6 /64 (see [`Network`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use super::Completion;
use crate::address::Network;
use crate::error::HubError;

/// Password checks running at once, server-wide.
const RUNNING: usize = 4;

/// Checks one network may have waiting for a turn; more are refused as busy.
const WAITING_PER_NETWORK: usize = 16;

/// Failures on different accounts a network may have before it is slowed down too.
const NETWORK_FREE_FAILURES: u32 = 5;

/// The longest wait either rule imposes.
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(900);

/// The most networks and (network, account) pairs remembered; beyond it the oldest
/// records go first, so an attacker with many addresses cannot grow this without bound.
const REMEMBERED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next attempt may be made, after `free` failures without waiting.
    fn not_before(self, free: u32) -> Option<Instant> {
        let over = self.count.checked_sub(free).filter(|n| *n > 0)?;
        let wait = Duration::from_secs(1u64 << (over - 1).min(16)).min(LONGEST_WAIT);
        Some(self.last + wait)
    }
}

/// Who failed, and when they may try again.
#[derive(Debug, Default)]
pub(crate) struct Pacing {
    networks: HashMap<Network, Failures>,
    pairs: HashMap<(Network, String), Failures>,
}

/// The network a check is charged to; a client without an address (an in-process
/// gateway, a test) counts as one network.
pub(crate) fn network_of(address: Option<IpAddr>) -> Network {
    Network::of(address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
}

impl Pacing {
    /// Whether an attempt on `account` (its name's key) from `address` may be made now.
    pub(crate) fn admit(&mut self, address: Option<IpAddr>, account: &str, now: Instant) -> Result<(), HubError> {
        let net = network_of(address);
        let waits = [
            self.networks.get(&net).and_then(|f| f.not_before(NETWORK_FREE_FAILURES)),
            self.pairs.get(&(net, account.to_owned())).and_then(|f| f.not_before(0)),
        ];
        match waits.into_iter().flatten().max().filter(|t| *t > now) {
            None => Ok(()),
            Some(until) => {
                let retry_after_secs = until.duration_since(now).as_secs().max(1);
                tracing::warn!(network = %net, account, retry_after_secs, "login refused: too many failures");
                Err(HubError::TooManyAttempts { retry_after_secs })
            }
        }
    }

    /// Records the outcome of a check.
    pub(crate) fn record(&mut self, address: Option<IpAddr>, account: &str, success: bool, now: Instant) {
        let net = network_of(address);
        let pair = (net, account.to_owned());
        if success {
            self.pairs.remove(&pair);
            return;
        }
        tracing::warn!(network = %net, account, "failed login");
        let fresh = Failures { count: 0, last: now };
        count_failure(self.networks.entry(net).or_insert(fresh), now);
        count_failure(self.pairs.entry(pair).or_insert(fresh), now);
        if self.networks.len() + self.pairs.len() > REMEMBERED {
            self.forget_oldest(now);
        }
    }

    /// Forgets what no longer slows anyone down, then, if still too many are kept, the
    /// oldest half.
    fn forget_oldest(&mut self, now: Instant) {
        self.networks.retain(|_, f| now.duration_since(f.last) <= FORGET_AFTER);
        self.pairs.retain(|_, f| now.duration_since(f.last) <= FORGET_AFTER);
        if self.networks.len() + self.pairs.len() > REMEMBERED {
            let mut times: Vec<Instant> = self.networks.values().chain(self.pairs.values()).map(|f| f.last).collect();
            times.sort_unstable();
            let cutoff = times[times.len() / 2];
            self.networks.retain(|_, f| f.last > cutoff);
            self.pairs.retain(|_, f| f.last > cutoff);
        }
    }
}

/// One more failure, counting from zero again after a long quiet.
fn count_failure(failures: &mut Failures, now: Instant) {
    if now.duration_since(failures.last) > FORGET_AFTER {
        failures.count = 0;
    }
    failures.count = failures.count.saturating_add(1);
    failures.last = now;
}

/// A password check waiting for its turn: the work, run on the blocking pool.
pub(crate) type Check = Box<dyn FnOnce() -> Completion + Send>;

/// Password checks in flight and waiting, taken in turns by network.
#[derive(Default)]
pub(crate) struct Turns {
    running: HashSet<Network>,
    waiting: HashMap<Network, VecDeque<Check>>,
    /// Networks with checks waiting, in the order their turn comes.
    order: VecDeque<Network>,
}

impl Turns {
    /// Queues a check for `address`; false when that network has too many waiting.
    pub(crate) fn queue(&mut self, address: Option<IpAddr>, check: Check) -> bool {
        let net = network_of(address);
        let queue = self.waiting.entry(net).or_default();
        if queue.len() >= WAITING_PER_NETWORK {
            return false;
        }
        if queue.is_empty() {
            self.order.push_back(net);
        }
        queue.push_back(check);
        true
    }

    /// The checks that may start now (each marked running), in turn order.
    pub(crate) fn next(&mut self) -> Vec<(Network, Check)> {
        let mut ready = Vec::new();
        let mut passed = 0;
        while self.running.len() < RUNNING && passed < self.order.len() {
            let Some(net) = self.order.pop_front() else {
                break;
            };
            if self.running.contains(&net) {
                self.order.push_back(net);
                passed += 1;
                continue;
            }
            let Some(queue) = self.waiting.get_mut(&net) else {
                continue;
            };
            if let Some(check) = queue.pop_front() {
                self.running.insert(net);
                ready.push((net, check));
            }
            if queue.is_empty() {
                self.waiting.remove(&net);
            } else {
                self.order.push_back(net);
            }
            passed = 0;
        }
        ready
    }

    /// A check for `net` finished.
    pub(crate) fn done(&mut self, net: Network) {
        self.running.remove(&net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("address"))
    }

    #[test]
    fn failures_back_off_per_account_and_network_without_locking_out_others() {
        let mut pacing = Pacing::default();
        let start = Instant::now();
        let attacker = address("203.0.113.9");
        pacing.admit(attacker, "chief", start).expect("first try");
        pacing.record(attacker, "chief", false, start);
        // One failure: a second's wait for that account from there.
        assert!(matches!(pacing.admit(attacker, "chief", start), Err(HubError::TooManyAttempts { .. })));
        // The owner, elsewhere, is not slowed at all.
        pacing.admit(address("198.51.100.1"), "chief", start).expect("owner from elsewhere");
        // Nor is the same network on another account, until it fails on many.
        pacing.admit(attacker, "bob", start).expect("another account");
        let later = start + Duration::from_secs(2);
        pacing.admit(attacker, "chief", later).expect("after the wait");
        // Doubling: after five failures in a row the next waits 16 s.
        let mut now = later;
        for _ in 0..3 {
            pacing.record(attacker, "chief", false, now);
            now += Duration::from_secs(60);
        }
        pacing.record(attacker, "chief", false, now);
        match pacing.admit(attacker, "chief", now) {
            Err(HubError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 16),
            other => panic!("expected a wait, got {other:?}"),
        }
        // More than five failures on the network slow it down for every account.
        pacing.admit(attacker, "zed", now).expect("five are free");
        pacing.record(attacker, "bob", false, now);
        assert!(matches!(pacing.admit(attacker, "zed", now), Err(HubError::TooManyAttempts { .. })));
        // A success clears the account's count.
        pacing.record(attacker, "chief", true, now);
        assert!(!pacing.pairs.contains_key(&(network_of(attacker), "chief".to_owned())));
        assert!(pacing.pairs.contains_key(&(network_of(attacker), "bob".to_owned())));
    }

    #[test]
    fn a_v6_network_is_its_64_and_long_waits_are_capped() {
        let mut pacing = Pacing::default();
        let now = Instant::now();
        for _ in 0..40 {
            pacing.record(address("2001:db8:1:2::1"), "chief", false, now);
        }
        match pacing.admit(address("2001:db8:1:2:ffff::9"), "chief", now) {
            Err(HubError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 300),
            other => panic!("expected the longest wait, got {other:?}"),
        }
        pacing.admit(address("2001:db8:1:3::1"), "chief", now).expect("another /64");
    }

    #[test]
    fn networks_take_turns_and_each_runs_one_check_at_a_time() {
        let mut turns = Turns::default();
        let check = || -> Check {
            Box::new(|| Completion::Read { session: crate::handle::SessionId(0), req: crate::command::RequestId(0) })
        };
        let (a, b) = (address("10.0.0.1"), address("10.0.0.2"));
        for _ in 0..5 {
            assert!(turns.queue(a, check()));
        }
        assert!(turns.queue(b, check()));
        let started: Vec<Network> = turns.next().into_iter().map(|(net, _)| net).collect();
        // One per network, whatever a has queued.
        assert_eq!(started, [network_of(a), network_of(b)]);
        assert!(turns.next().is_empty(), "both networks are busy");
        turns.done(network_of(a));
        assert_eq!(turns.next().len(), 1);
        for _ in 0..WAITING_PER_NETWORK {
            turns.queue(b, check());
        }
        assert!(!turns.queue(b, check()), "a network's queue is bounded");
    }
}
