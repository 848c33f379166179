//! `idle`: N registered connections that do nothing; the server's memory per connection.

use std::time::{Duration, Instant};

use crate::peer::{self, Proto};
use crate::proc_stats::ProcStats;
use crate::report::IdleReport;
use crate::{loopback, BenchError};

/// Options of `parley bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// The server's listener for `--proto`, HOST:PORT on loopback.
    #[arg(long)]
    pub addr: String,
    /// The protocol the clients speak.
    #[arg(long, value_enum, default_value = "native")]
    pub proto: Proto,
    /// Connections to open and register.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// The server's process id (required: memory is read from /proc).
    #[arg(long)]
    pub server_pid: u32,
    /// Seconds to hold the connections before measuring.
    #[arg(long, default_value_t = 1)]
    pub hold_secs: u64,
}

/// Runs the idle benchmark.
pub async fn idle(args: IdleArgs) -> Result<IdleReport, BenchError> {
    let addr = loopback(&args.addr)?;
    let before = ProcStats::read(args.server_pid)?;
    let start = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    let run = std::process::id() % 10_000;
    for batch in (0..args.connections).collect::<Vec<_>>().chunks(100) {
        let joins: Vec<_> =
            batch.iter().map(|i| tokio::spawn(peer::connect(addr, args.proto, format!("i{i}x{run}")))).collect();
        for join in joins {
            held.push(join.await.map_err(|e| BenchError::Protocol(e.to_string()))??);
        }
    }
    let connect_time = start.elapsed();
    // Idle clients still read what the server sends (everyone's join notices), as real
    // ones do; otherwise the measurement would be of queued notices, not connections.
    let readers: Vec<_> = held
        .into_iter()
        .map(|(mut reader, writer)| {
            tokio::spawn(async move {
                let _writer = writer;
                while reader.drain(|_| {}).await.is_ok() {}
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let after = ProcStats::read(args.server_pid)?;
    for reader in readers {
        reader.abort();
    }
    Ok(IdleReport::new(&args, connect_time, before, after))
}
