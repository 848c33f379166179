//! `churn`: connections arriving at a fixed rate, each registering, joining, saying a
//! few messages and quitting; how fast the server takes them in, and what fails.
//!
//! Arrivals are open-loop: each is due at its time whatever happened to the earlier
//! ones, and its registration latency counts from that time, so a server (or a
//! `--connect-concurrency` limit) that falls behind shows as latency, not as a slower
//! generator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dial::{nick, Dialer, Target};
use crate::proc_stats::ProcStats;
use crate::report::{ChurnReport, Latencies};
use crate::BenchError;

/// Options of `parley bench churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// The server, the protocol, and how to connect.
    #[command(flatten)]
    pub target: Target,
    /// New connections per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds during which connections arrive.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Messages each connection says before it quits.
    #[arg(long, default_value_t = 3)]
    pub messages: u64,
    /// Connections in progress at most; an arrival beyond this is skipped and counted,
    /// so a server that stops answering cannot make the generator hold unbounded sockets.
    #[arg(long, default_value_t = 5000)]
    pub max_in_flight: usize,
    /// The server's process id, to report its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// How one connection's life ended.
enum Outcome {
    /// Registered after this long, said its messages and quit.
    Done(Duration),
    /// Something failed; the text says what.
    Failed(String),
}

/// Runs the churn benchmark.
pub async fn churn(args: ChurnArgs) -> Result<ChurnReport, BenchError> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(BenchError::Usage("--rate must be a positive number".into()));
    }
    let arrivals = (args.rate * args.duration_secs as f64).round() as usize;
    let dialer = Arc::new(Dialer::new(&args.target, arrivals)?);
    // Everything still running this long after the last arrival is counted as failed.
    let deadline = Duration::from_secs(args.duration_secs + args.target.register_timeout_secs + 10);
    let run = std::process::id();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let server_before = args.server_pid.map(ProcStats::read).transpose()?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(arrivals);
    let mut skipped = 0;
    for index in 0..arrivals {
        let due = start + Duration::from_secs_f64(index as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        if in_flight.fetch_add(1, Ordering::AcqRel) >= args.max_in_flight {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            skipped += 1;
            continue;
        }
        let (dialer, in_flight) = (dialer.clone(), in_flight.clone());
        let messages = args.messages;
        tasks.push(tokio::spawn(async move {
            let nick = nick('c', index, run);
            let outcome = match one(&dialer, index, &nick, messages, due).await {
                Ok(registered) => Outcome::Done(registered),
                // Without the nick, equal failures count together.
                Err(e) => Outcome::Failed(e.to_string().replace(&nick, "NICK")),
            };
            in_flight.fetch_sub(1, Ordering::AcqRel);
            (outcome, Instant::now())
        }));
    }
    let mut latencies = Latencies::default();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut completed = 0;
    let mut last = start;
    let until = start + deadline;
    for task in tasks {
        let outcome = match tokio::time::timeout_at(until.into(), task).await {
            Ok(Ok((outcome, finished))) => {
                last = last.max(finished);
                outcome
            }
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Failed("unfinished at the deadline".into()),
        };
        match outcome {
            Outcome::Done(registered) => {
                completed += 1;
                latencies.push(u32::try_from(registered.as_micros()).unwrap_or(u32::MAX));
            }
            Outcome::Failed(why) => *errors.entry(why).or_default() += 1,
        }
    }
    let server_after = args.server_pid.map(ProcStats::read).transpose()?;
    Ok(ChurnReport::new(
        &args,
        arrivals,
        completed,
        skipped,
        errors,
        last.duration_since(start),
        &latencies,
        server_before.zip(server_after),
    ))
}

/// One connection's life; returns how long it took to register (and join) from the
/// moment it was due.
async fn one(dialer: &Dialer, index: usize, nick: &str, messages: u64, due: Instant) -> Result<Duration, BenchError> {
    let (mut reader, mut writer) = dialer.connect(index, nick, None).await?;
    let registered = due.elapsed();
    for seq in 0..messages {
        writer.say(&format!("churn {index} {seq}")).await?;
    }
    writer.quit().await?;
    reader.until_closed(Duration::from_secs(2)).await;
    Ok(registered)
}
