//! File descriptors: every connection holds one, so the process's limit is the ceiling
//! on connections. At start the soft limit is raised to the hard one (an unprivileged
//! process may), and `max_connections = 0` (the default) takes what the limit and the
//! machine's memory allow, instead of a fixed number that is wrong on most machines.

/// Descriptors kept for everything but connections: the database (a writer and the
/// read pool), files being uploaded or read, listeners, TLS material, logs.
const RESERVE: u64 = 128;

/// What the process may open, after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    /// The soft limit before.
    pub(crate) was: u64,
    /// The soft limit now.
    pub(crate) now: u64,
}

/// Raises the soft descriptor limit to the hard limit. `None` where the platform says
/// nothing (then no ceiling is derived from it).
pub(crate) fn raise() -> Option<Limit> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let was = limit.current?;
    let Some(hard) = limit.maximum else {
        // Unlimited: nothing to raise to, and nothing to bound connections by.
        return Some(Limit { was, now: was });
    };
    if hard <= was {
        return Some(Limit { was, now: was });
    }
    let raised = rustix::process::Rlimit { current: Some(hard), maximum: Some(hard) };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(Limit { was, now: hard }),
        Err(e) => {
            tracing::warn!(soft = was, hard, "cannot raise the descriptor limit: {e}");
            Some(Limit { was, now: was })
        }
    }
}

/// The machine's memory in bytes, from `/proc/meminfo`; `None` elsewhere.
pub(crate) fn memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The default ceiling on connections: the descriptors left after the reserve, and no
/// more connections than could each fill their send queue in the machine's memory.
/// At least 1, so that a tiny limit still serves someone.
pub(crate) fn max_connections(descriptors: Option<u64>, memory: Option<u64>, send_queue_bytes: usize) -> usize {
    let by_descriptors = descriptors.map_or(u64::MAX, |d| d.saturating_sub(RESERVE));
    let queue = u64::try_from(send_queue_bytes.max(1)).unwrap_or(u64::MAX);
    let by_memory = memory.map_or(u64::MAX, |m| m / queue);
    usize::try_from(by_descriptors.min(by_memory).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_smaller_of_descriptors_and_memory() {
        const GIB: u64 = 1 << 30;
        // This machine: 20,000 descriptors, 24 GiB, 1 MiB send queues.
        assert_eq!(max_connections(Some(20_000), Some(24 * GIB), 1 << 20), 19_872);
        // A small box: memory decides.
        assert_eq!(max_connections(Some(1_048_576), Some(2 * GIB), 1 << 20), 2_048);
        // Unknown memory, unlimited descriptors: unbounded; a tiny limit still serves.
        assert_eq!(max_connections(None, None, 1 << 20), usize::MAX);
        assert_eq!(max_connections(Some(64), None, 1 << 20), 1);
        assert_eq!(max_connections(Some(20_000), Some(GIB), 0), 19_872, "a zero queue is no division by zero");
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limit = raise().expect("Linux reports descriptor limits");
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(now.current, Some(limit.now));
        assert!(limit.now >= limit.was);
        if let Some(hard) = now.maximum {
            assert_eq!(limit.now, hard);
        }
    }
}
