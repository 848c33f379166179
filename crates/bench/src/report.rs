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

/// Latency samples in microseconds, counted in a histogram: a fan-out of millions of
/// deliveries a second keeps no list of them and sorts nothing at the end.
///
/// Below 64 µs each microsecond has its bucket; above, each power of two is cut into 32
/// buckets, so a percentile is read within about 3% (from the bucket's middle), and the
/// maximum is kept exactly.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    counts: Vec<u64>,
    max: u32,
}

/// Buckets per power of two above the exact range.
const SUB_BUCKETS: u32 = 32;

/// Samples below this many microseconds are counted exactly.
const EXACT: u32 = 2 * SUB_BUCKETS;

impl Default for Latencies {
    fn default() -> Self {
        Latencies { counts: vec![0; Latencies::bucket(u32::MAX) + 1], max: 0 }
    }
}

impl Latencies {
    /// The bucket of a sample.
    fn bucket(sample: u32) -> usize {
        if sample < EXACT {
            return sample as usize;
        }
        let power = 31 - sample.leading_zeros();
        let sub = (sample >> (power - SUB_BUCKETS.trailing_zeros())) & (SUB_BUCKETS - 1);
        (EXACT + (power - EXACT.trailing_zeros()) * SUB_BUCKETS + sub) as usize
    }

    /// The smallest sample of a bucket, and its width.
    fn bounds(bucket: usize) -> (u64, u64) {
        let bucket = u32::try_from(bucket).unwrap_or(u32::MAX);
        if bucket < EXACT {
            return (u64::from(bucket), 1);
        }
        let power = (bucket - EXACT) / SUB_BUCKETS + EXACT.trailing_zeros();
        let sub = (bucket - EXACT) % SUB_BUCKETS;
        let width = 1u64 << (power - SUB_BUCKETS.trailing_zeros());
        ((1u64 << power) + u64::from(sub) * width, width)
    }

    pub(crate) fn push(&mut self, sample: u32) {
        self.counts[Latencies::bucket(sample)] += 1;
        self.max = self.max.max(sample);
    }

    /// Adds another histogram's samples.
    pub(crate) fn merge(&mut self, other: &Latencies) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn percentiles(&self) -> Percentiles {
        let q = |q| self.quantile(q);
        Percentiles { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: f64::from(self.max) / 1000.0 }
    }

    /// The `q` quantile (0..=1) in milliseconds: the middle of the bucket that holds it
    /// (never above the maximum).
    fn quantile(&self, q: f64) -> f64 {
        let len = self.len();
        if len == 0 {
            return 0.0;
        }
        let rank = ((len - 1) as f64 * q).round() as u64;
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen > rank {
                let (low, width) = Latencies::bounds(bucket);
                let middle = (low + (width - 1) / 2).min(u64::from(self.max));
                return middle as f64 / 1000.0;
            }
        }
        f64::from(self.max) / 1000.0
    }
}

/// The result of a fan-out run.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// Which run of a `--repeat` series (from 1).
    pub run: usize,
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
    /// Clients whose connection ended before the run did (the server closed it).
    pub disconnected: usize,
    /// Whether every expected delivery arrived before the timeout.
    pub complete: bool,
    /// From the first message to the last delivery, in seconds.
    pub elapsed_secs: f64,
    /// Deliveries per second of wall-clock time.
    pub deliveries_per_sec: f64,
    /// Latency percentiles in milliseconds.
    pub latency_ms: Percentiles,
    /// The server's CPU seconds during the run, when its pid was given (the sum over
    /// the processes, when several were).
    pub server_cpu_secs: Option<f64>,
    /// Deliveries per server CPU-second: the headline figure.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// The server's peak resident memory, in KiB (the largest of the processes').
    pub server_peak_rss_kib: Option<u64>,
    /// Each process's CPU seconds during the run, in the order of their pids, when
    /// several were given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub process_cpu_secs: Vec<f64>,
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
        run: usize,
        senders: usize,
        expected: u64,
        received: u64,
        lost: u64,
        out_of_order: u64,
        disconnected: usize,
        elapsed: Duration,
        complete: bool,
        latencies: &Latencies,
        servers: &[(ProcStats, ProcStats)],
    ) -> FanoutReport {
        let each: Vec<f64> = servers.iter().map(|(before, after)| after.cpu_secs - before.cpu_secs).collect();
        let cpu = (!each.is_empty()).then(|| each.iter().sum::<f64>());
        FanoutReport {
            run,
            proto: args.target.proto,
            clients: args.clients,
            senders,
            messages_sent: args.messages * senders as u64,
            deliveries_expected: expected,
            deliveries_received: received,
            lost,
            out_of_order,
            disconnected,
            complete,
            elapsed_secs: elapsed.as_secs_f64(),
            deliveries_per_sec: received as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: latencies.percentiles(),
            server_cpu_secs: cpu,
            deliveries_per_server_cpu_sec: cpu.filter(|c| *c > 0.0).map(|c| received as f64 / c),
            server_peak_rss_kib: servers.iter().map(|(_, after)| after.peak_rss_kib).max(),
            process_cpu_secs: if each.len() > 1 { each } else { Vec::new() },
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
            if !self.process_cpu_secs.is_empty() {
                let each: Vec<String> = self.process_cpu_secs.iter().map(|c| format!("{c:.2}")).collect();
                writeln!(f, "  CPU of each process     {} s", each.join(" + "))?;
            }
            writeln!(f, "  deliveries per server CPU-second  {per_cpu:.0}")?;
        }
        if let Some(peak) = self.server_peak_rss_kib {
            writeln!(f, "  server peak RSS         {peak} KiB")?;
        }
        if self.disconnected > 0 {
            writeln!(f, "  disconnected            {} clients", self.disconnected)?;
        }
        Ok(())
    }
}

impl FanoutReport {
    /// Whether every delivery arrived, in order, with every client connected to the end.
    #[must_use]
    pub fn clean(&self) -> bool {
        self.complete && self.lost == 0 && self.out_of_order == 0 && self.disconnected == 0
    }

    /// The run on one line, for a series.
    #[must_use]
    pub fn line(&self) -> String {
        let mut line = format!(
            "run {:>3}: {} of {} deliveries in {:.2} s, {:.2} M/s, {} lost, {} out of order, {} disconnected, p99 {:.1} ms",
            self.run,
            self.deliveries_received,
            self.deliveries_expected,
            self.elapsed_secs,
            self.deliveries_per_sec / 1e6,
            self.lost,
            self.out_of_order,
            self.disconnected,
            self.latency_ms.p99,
        );
        if let Some(cpu) = self.server_cpu_secs {
            line.push_str(&format!(", server CPU {cpu:.2} s"));
        }
        line
    }
}

/// A `--repeat` series of fan-out runs, summed up.
#[derive(Debug, Serialize)]
pub struct FanoutSeries {
    /// Runs made.
    pub runs: usize,
    /// Runs where every delivery arrived, in order, and no client was disconnected.
    pub clean_runs: usize,
    /// Runs that did not finish before their timeout.
    pub incomplete_runs: usize,
    /// Deliveries that arrived, in all runs.
    pub deliveries_received: u64,
    /// Deliveries lost, in all runs.
    pub lost: u64,
    /// Deliveries out of order, in all runs.
    pub out_of_order: u64,
    /// Clients disconnected before the end of their run, in all runs.
    pub disconnected: usize,
    /// The slowest run's deliveries per second.
    pub min_per_sec: f64,
    /// The median run's deliveries per second.
    pub median_per_sec: f64,
    /// The fastest run's deliveries per second.
    pub max_per_sec: f64,
}

impl FanoutSeries {
    pub(crate) fn new(reports: &[FanoutReport]) -> FanoutSeries {
        let mut rates: Vec<f64> = reports.iter().map(|r| r.deliveries_per_sec).collect();
        rates.sort_by(f64::total_cmp);
        FanoutSeries {
            runs: reports.len(),
            clean_runs: reports.iter().filter(|r| r.clean()).count(),
            incomplete_runs: reports.iter().filter(|r| !r.complete).count(),
            deliveries_received: reports.iter().map(|r| r.deliveries_received).sum(),
            lost: reports.iter().map(|r| r.lost).sum(),
            out_of_order: reports.iter().map(|r| r.out_of_order).sum(),
            disconnected: reports.iter().map(|r| r.disconnected).sum(),
            min_per_sec: rates.first().copied().unwrap_or(0.0),
            median_per_sec: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
            max_per_sec: rates.last().copied().unwrap_or(0.0),
        }
    }
}

impl fmt::Display for FanoutSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} runs, {} clean ({} incomplete)", self.runs, self.clean_runs, self.incomplete_runs)?;
        writeln!(
            f,
            "  deliveries              {} ({} lost, {} out of order, {} clients disconnected)",
            self.deliveries_received, self.lost, self.out_of_order, self.disconnected
        )?;
        writeln!(
            f,
            "  deliveries per second   min {:.0}  median {:.0}  max {:.0}",
            self.min_per_sec, self.median_per_sec, self.max_per_sec
        )
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
        latencies: &Latencies,
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
    fn quantiles_come_from_the_histogram_within_three_percent() {
        let mut latencies = Latencies::default();
        for sample in 1..=100_000 {
            latencies.push(sample);
        }
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = q * 100.0;
            let read = latencies.quantile(q);
            assert!((read - exact).abs() <= exact * 0.03, "q {q}: {read} ms, not {exact}");
        }
        assert!((latencies.percentiles().max - 100.0).abs() < f64::EPSILON);
        assert!(Latencies::default().quantile(0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn buckets_cover_every_sample_in_order() {
        let mut last = 0;
        for sample in (0..4096).chain([65_535, 65_536, 1 << 20, u32::MAX - 1, u32::MAX]) {
            let bucket = Latencies::bucket(sample);
            assert!(bucket >= last, "sample {sample}");
            let (low, width) = Latencies::bounds(bucket);
            assert!(low <= u64::from(sample) && u64::from(sample) < low + width, "sample {sample}: {low} + {width}");
            last = bucket;
        }
        let mut small = Latencies::default();
        small.push(7);
        let mut other = Latencies::default();
        other.push(7);
        other.push(9);
        small.merge(&other);
        assert_eq!(small.len(), 3);
        assert!((small.quantile(1.0) - 0.009).abs() < 1e-9);
    }
}
