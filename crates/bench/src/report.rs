//! Results, as a table for people and one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::churn::ChurnArgs;
use crate::fanout::FanoutArgs;
use crate::idle::IdleArgs;
use crate::peer::Proto;
use crate::proc_stats::ProcStats;

/// Latency samples in microseconds.
#[derive(Debug, Default)]
pub(crate) struct Latencies(Vec<u32>);

impl Latencies {
    pub(crate) fn extend(&mut self, samples: Vec<u32>) {
        self.0.extend(samples);
    }

    pub(crate) fn push(&mut self, sample: u32) {
        self.0.push(sample);
    }

    /// Sorts the samples and reads the percentiles.
    fn percentiles(mut self) -> Percentiles {
        self.0.sort_unstable();
        let q = |q| Latencies::quantile(&self.0, q);
        Percentiles { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: q(1.0) }
    }

    /// The `q` quantile (0..=1) in milliseconds, from the sorted samples.
    fn quantile(sorted: &[u32], q: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
        f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
    }
}

/// The result of a fan-out run.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// The protocol.
    pub proto: Proto,
    /// Clients in the room.
    pub clients: usize,
    /// Clients that sent.
    pub senders: usize,
    /// Messages sent in all.
    pub messages_sent: u64,
    /// Deliveries that should have arrived.
    pub deliveries_expected: u64,
    /// Deliveries that arrived.
    pub deliveries_received: u64,
    /// Deliveries that never arrived.
    pub lost: u64,
    /// Deliveries that arrived after a later one from the same sender.
    pub out_of_order: u64,
    /// Whether every expected delivery arrived before the timeout.
    pub complete: bool,
    /// From the first message to the last delivery, in seconds.
    pub elapsed_secs: f64,
    /// Deliveries per second of wall-clock time.
    pub deliveries_per_sec: f64,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Percentiles,
    /// The server's CPU seconds during the run, when its pid was given.
    pub server_cpu_secs: Option<f64>,
    /// Deliveries per server CPU-second: the headline figure.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// The server's peak resident memory, in KiB.
    pub server_peak_rss_kib: Option<u64>,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl FanoutReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        args: &FanoutArgs,
        senders: usize,
        expected: u64,
        received: u64,
        lost: u64,
        out_of_order: u64,
        elapsed: Duration,
        complete: bool,
        latencies: Latencies,
        server: Option<(ProcStats, ProcStats)>,
    ) -> FanoutReport {
        let cpu = server.map(|(before, after)| after.cpu_secs - before.cpu_secs);
        FanoutReport {
            proto: args.target.proto,
            clients: args.clients,
            senders,
            messages_sent: args.messages * senders as u64,
            deliveries_expected: expected,
            deliveries_received: received,
            lost,
            out_of_order,
            complete,
            elapsed_secs: elapsed.as_secs_f64(),
            deliveries_per_sec: received as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: latencies.percentiles(),
            server_cpu_secs: cpu,
            deliveries_per_server_cpu_sec: cpu.filter(|c| *c > 0.0).map(|c| received as f64 / c),
            server_peak_rss_kib: server.map(|(_, after)| after.peak_rss_kib),
        }
    }
}

impl fmt::Display for FanoutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fanout over {:?}: {} clients, {} senders", self.proto, self.clients, self.senders)?;
        writeln!(f, "  messages sent           {}", self.messages_sent)?;
        writeln!(
            f,
            "  deliveries              {} of {} ({} lost, {} out of order)",
            self.deliveries_received, self.deliveries_expected, self.lost, self.out_of_order
        )?;
        writeln!(f, "  elapsed                 {:.2} s", self.elapsed_secs)?;
        writeln!(f, "  deliveries per second   {:.0}", self.deliveries_per_sec)?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency ms              p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if let (Some(cpu), Some(per_cpu)) = (self.server_cpu_secs, self.deliveries_per_server_cpu_sec) {
            writeln!(f, "  server CPU              {cpu:.2} s")?;
            writeln!(f, "  deliveries per server CPU-second  {per_cpu:.0}")?;
        }
        if let Some(peak) = self.server_peak_rss_kib {
            writeln!(f, "  server peak RSS         {peak} KiB")?;
        }
        Ok(())
    }
}

/// The result of a churn run.
#[derive(Debug, Serialize)]
pub struct ChurnReport {
    /// The protocol.
    pub proto: Proto,
    /// The arrival rate asked for, connections per second.
    pub rate: f64,
    /// Seconds of arrivals.
    pub duration_secs: u64,
    /// Messages each connection said.
    pub messages_each: u64,
    /// Connections due in the run.
    pub arrivals: usize,
    /// Connections that registered, said their messages and quit.
    pub completed: usize,
    /// Arrivals not attempted because `--max-in-flight` connections were in progress.
    pub skipped: usize,
    /// Connections that failed, in all.
    pub errors: u64,
    /// How many failed for each reason.
    pub error_kinds: BTreeMap<String, u64>,
    /// Completed connections per second, from the first arrival to the last completion.
    pub achieved_per_sec: f64,
    /// From due to registered (and joined, over IRC), in milliseconds.
    pub registration_ms: Percentiles,
    /// The server's CPU seconds during the run, when its pid was given.
    pub server_cpu_secs: Option<f64>,
    /// The server's peak resident memory, in KiB.
    pub server_peak_rss_kib: Option<u64>,
}

impl ChurnReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        args: &ChurnArgs,
        arrivals: usize,
        completed: usize,
        skipped: usize,
        error_kinds: BTreeMap<String, u64>,
        elapsed: Duration,
        latencies: Latencies,
        server: Option<(ProcStats, ProcStats)>,
    ) -> ChurnReport {
        ChurnReport {
            proto: args.target.proto,
            rate: args.rate,
            duration_secs: args.duration_secs,
            messages_each: args.messages,
            arrivals,
            completed,
            skipped,
            errors: error_kinds.values().sum(),
            error_kinds,
            achieved_per_sec: completed as f64 / elapsed.as_secs_f64().max(1e-9),
            registration_ms: latencies.percentiles(),
            server_cpu_secs: server.map(|(before, after)| after.cpu_secs - before.cpu_secs),
            server_peak_rss_kib: server.map(|(_, after)| after.peak_rss_kib),
        }
    }
}

impl fmt::Display for ChurnReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "churn over {:?}: {} connections due at {}/s for {} s, {} messages each",
            self.proto, self.arrivals, self.rate, self.duration_secs, self.messages_each
        )?;
        writeln!(f, "  completed               {} ({} failed, {} skipped)", self.completed, self.errors, self.skipped)?;
        writeln!(f, "  achieved                {:.1} connections/s", self.achieved_per_sec)?;
        let l = &self.registration_ms;
        writeln!(
            f,
            "  registration ms         p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.max
        )?;
        for (why, count) in &self.error_kinds {
            writeln!(f, "  error ×{count:<6}          {why}")?;
        }
        if let Some(cpu) = self.server_cpu_secs {
            writeln!(f, "  server CPU              {cpu:.2} s")?;
        }
        if let Some(peak) = self.server_peak_rss_kib {
            writeln!(f, "  server peak RSS         {peak} KiB")?;
        }
        Ok(())
    }
}

/// The result of an idle run.
#[derive(Debug, Serialize)]
pub struct IdleReport {
    /// The protocol.
    pub proto: Proto,
    /// Connections held.
    pub connections: usize,
    /// Processes that held them.
    pub processes: usize,
    /// How long connecting and registering them all took, in seconds.
    pub connect_secs: f64,
    /// Server resident memory before, in KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection held, in KiB.
    pub rss_after_kib: u64,
    /// The difference per connection, in KiB.
    pub kib_per_connection: f64,
}

impl IdleReport {
    pub(crate) fn new(args: &IdleArgs, connect: Duration, before: ProcStats, after: ProcStats) -> IdleReport {
        IdleReport {
            proto: args.target.proto,
            connections: args.connections,
            processes: args.processes.max(1),
            connect_secs: connect.as_secs_f64(),
            rss_before_kib: before.rss_kib,
            rss_after_kib: after.rss_kib,
            kib_per_connection: after.rss_kib.saturating_sub(before.rss_kib) as f64 / args.connections.max(1) as f64,
        }
    }
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "idle over {:?}: {} registered connections from {} process(es) in {:.2} s",
            self.proto, self.connections, self.processes, self.connect_secs
        )?;
        writeln!(f, "  server RSS              {} KiB before, {} KiB after", self.rss_before_kib, self.rss_after_kib)?;
        writeln!(f, "  per idle connection     {:.2} KiB", self.kib_per_connection)
    }
}

#[cfg(test)]
mod tests {
    use super::Latencies;

    #[test]
    fn quantiles_pick_from_sorted_samples() {
        let sorted: Vec<u32> = (1..=1000).collect();
        assert!((Latencies::quantile(&sorted, 0.5) - 0.5).abs() < 0.002);
        assert!((Latencies::quantile(&sorted, 0.99) - 0.99).abs() < 0.002);
        assert!((Latencies::quantile(&sorted, 1.0) - 1.0).abs() < f64::EPSILON);
        assert!(Latencies::quantile(&[], 0.5).abs() < f64::EPSILON);
    }
}
