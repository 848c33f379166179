//! Where `parley chat` goes when its connection is lost, and how long it keeps trying:
//! the addresses the user gave, then the cluster's nodes the server listed in its
//! `welcome`, tried in that order, round after round, with a wait between rounds that
//! grows from 100 ms to 2 s, until a configurable time since the loss has passed. Both
//! front ends (the line client and the full-screen one) use it.

use std::future::Future;
use std::time::Duration;

use parley_client::{Event, Events};

/// The first wait between two rounds of attempts: a restarted server is usually back
/// within a second, and a node that died is refused at once, so the next is tried soon.
const FIRST_WAIT: Duration = Duration::from_millis(100);

/// The longest wait between rounds: short enough that a client comes back within two
/// seconds of a node becoming reachable.
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// The addresses to try, in order, without repeats (compared without regard to case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Servers {
    /// What the user gave, first.
    given: Vec<String>,
    /// What the last server's welcome listed (`HOST:PORT` entries only: URLs are for
    /// browsers).
    learned: Vec<String>,
}

impl Servers {
    /// The user's addresses, in their order.
    pub(crate) fn new(given: Vec<String>) -> Servers {
        Servers { given, learned: Vec::new() }
    }

    /// Takes the nodes of a `welcome`: the newest list replaces the one before, since
    /// a cluster's nodes may change between two connections.
    pub(crate) fn learn(&mut self, nodes: &[String]) {
        self.learned = nodes.iter().filter(|node| is_native(node)).cloned().collect();
    }

    /// Every address, the given ones first.
    pub(crate) fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for addr in self.given.iter().chain(&self.learned) {
            if !all.iter().any(|a| a.eq_ignore_ascii_case(addr)) {
                all.push(addr.clone());
            }
        }
        all
    }
}

/// Whether a `nodes` entry is for native clients: `HOST:PORT`, not a URL.
fn is_native(node: &str) -> bool {
    !node.contains("://") && !node.trim().is_empty()
}

/// Splits the addresses given on the command line: each may be a comma-separated list.
pub(crate) fn split_addrs(given: &[String]) -> Vec<String> {
    given.iter().flat_map(|a| a.split(',')).map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()
}

/// The wait before round `round` of attempts (from 1; round 0, right after the loss, is
/// not waited for): 100 ms doubling up to 2 s, plus up to a quarter of that which
/// differs between clients, so that the clients of a node that went away do not all
/// knock at the next one at once.
pub(crate) fn backoff(round: u32) -> Duration {
    let base = FIRST_WAIT.saturating_mul(1 << round.saturating_sub(1).min(5)).min(LONGEST_WAIT);
    let spread = (u64::from(std::process::id()) * 7_919 + u64::from(round) * 104_729) % 1_000;
    base + base / 4 * u32::try_from(spread).unwrap_or(0) / 1_000
}

/// Awaits `request` while keeping the events that arrive meanwhile in `backlog`, so that
/// a full event queue can never hold back the answer the request waits for.
pub(crate) async fn during<T>(request: impl Future<Output = T>, events: &mut Events, backlog: &mut Vec<Event>) -> T {
    tokio::pin!(request);
    loop {
        tokio::select! {
            answer = &mut request => return answer,
            Some(event) = events.next() => backlog.push(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_addresses_come_first_then_the_nodes_without_urls_or_repeats() {
        let mut servers = Servers::new(split_addrs(&["a:1, b:2".to_owned(), "c:3".to_owned()]));
        assert_eq!(servers.all(), ["a:1", "b:2", "c:3"]);
        servers.learn(&["B:2".into(), "https://chat.example.org".into(), "d:4".into()]);
        assert_eq!(servers.all(), ["a:1", "b:2", "c:3", "d:4"]);
        servers.learn(&["e:5".into()]);
        assert_eq!(servers.all(), ["a:1", "b:2", "c:3", "e:5"]);
    }

    #[test]
    fn backoff_doubles_from_a_tenth_of_a_second_to_two_seconds() {
        let waits: Vec<Duration> = (1..=8).map(backoff).collect();
        assert!(waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(125), "{waits:?}");
        assert!(waits[1] >= Duration::from_millis(200) && waits[1] <= Duration::from_millis(250), "{waits:?}");
        assert!(waits[5..].iter().all(|w| *w >= Duration::from_secs(2) && *w <= Duration::from_millis(2_500)));
    }
}
