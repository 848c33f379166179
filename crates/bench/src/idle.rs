//! `idle`: N registered connections that do nothing; the server's memory per connection.
//!
//! One process may hold only as many sockets as its descriptor limit (`ulimit -Hn`,
//! 20,000 on the project's machines), so with `--processes K` the first process
//! re-executes itself K times, each child holding every K-th connection, and measures
//! the server once all of them are registered.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::dial::{nick, Dialer, Target};
use crate::peer::Proto;
use crate::proc_stats::ProcStats;
use crate::report::IdleReport;
use crate::BenchError;

/// Options of `parley bench idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// The server, the protocol, and how to connect.
    #[command(flatten)]
    pub target: Target,
    /// Connections to open and register.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// The server's process id (required: memory is read from /proc).
    #[arg(long)]
    pub server_pid: u32,
    /// Seconds to hold the connections before measuring: idle connections are what is
    /// measured, and Parley parks a quiet connection after a second, its allocator
    /// returning what the task held over about ten.
    #[arg(long, default_value_t = 30)]
    pub hold_secs: u64,
    /// IRC: clients per channel (`#idle0`, `#idle1`, … after `--channel`); 0 puts
    /// everyone in `--channel`, where each join costs a names list as long as the room.
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// Spread the connections over this many processes (each re-executes this program
    /// with the same arguments), when one process's descriptor limit is too low.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Set by the first process on the others: hold every `--processes`-th connection
    /// from this one, report when registered, and hold until standard input closes.
    #[arg(long, hide = true)]
    pub shard: Option<usize>,
}

/// What a child process reports once its connections are registered.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Ready {
    connections: usize,
    connect_secs: f64,
}

/// Runs the idle benchmark. In a child process (`--shard`) it reports to its parent on
/// standard output, holds until standard input closes, and returns `None`.
pub async fn idle(args: IdleArgs) -> Result<Option<IdleReport>, BenchError> {
    if let Some(shard) = args.shard {
        hold_shard(&args, shard).await?;
        return Ok(None);
    }
    let before = ProcStats::read(args.server_pid)?;
    let start = Instant::now();
    let held = if args.processes > 1 {
        Held::Children(spawn_shards(&args).await?)
    } else {
        Held::Here(connect(&args, 0, 1).await?)
    };
    let connect_time = start.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let after = ProcStats::read(args.server_pid)?;
    drop(held);
    Ok(Some(IdleReport::new(&args, connect_time, before, after)))
}

/// Connections held until dropped, here or in child processes.
enum Held {
    /// Tasks that keep reading (and answering pings); aborted on drop.
    Here(Vec<tokio::task::JoinHandle<()>>),
    /// Children that hold until their standard input closes or they are killed.
    Children(Vec<tokio::process::Child>),
}

impl Drop for Held {
    fn drop(&mut self) {
        match self {
            Held::Here(readers) => readers.iter().for_each(tokio::task::JoinHandle::abort),
            // Their connections close with them; they would also go when their
            // standard input closes, but not at once.
            Held::Children(children) => {
                for child in children {
                    let _ = child.start_kill();
                }
            }
        }
    }
}

/// Connects this process's share of the connections (every `of`-th from `shard`) and
/// keeps them reading.
async fn connect(args: &IdleArgs, shard: usize, of: usize) -> Result<Vec<tokio::task::JoinHandle<()>>, BenchError> {
    let dialer = Arc::new(Dialer::new(&args.target, args.connections)?);
    let run = std::process::id();
    let channel = |i: usize| match (args.target.proto, args.room_size) {
        (Proto::Irc, size) if size > 0 => Some(format!("{}idle{}", args.target.channel, i / size)),
        _ => None,
    };
    let run = if of > 1 { std::os::unix::process::parent_id() } else { run };
    let held = dialer.connect_all((shard..args.connections).step_by(of), |i| nick('i', i, run), channel).await?;
    // Idle clients still read what the server sends (everyone's join notices, pings),
    // as real ones do; otherwise the measurement would be of queued notices.
    Ok(held
        .into_iter()
        .map(|(mut reader, writer)| {
            tokio::spawn(async move {
                let _writer = writer;
                while reader.drain(|_| {}).await.is_ok() {}
            })
        })
        .collect())
}

/// A child: connect, say so on standard output, hold until standard input closes.
async fn hold_shard(args: &IdleArgs, shard: usize) -> Result<(), BenchError> {
    let start = Instant::now();
    let held = connect(args, shard, args.processes.max(1)).await?;
    let ready = Ready { connections: held.len(), connect_secs: start.elapsed().as_secs_f64() };
    let line = serde_json::to_string(&ready).map_err(|e| BenchError::Protocol(e.to_string()))?;
    println!("{line}");
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    drop(Held::Here(held));
    Ok(())
}

/// Starts the children and waits until every one has registered its connections.
async fn spawn_shards(args: &IdleArgs) -> Result<Vec<tokio::process::Child>, BenchError> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::with_capacity(args.processes);
    for shard in 0..args.processes {
        let child = tokio::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .arg("--shard")
            .arg(shard.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        children.push(child);
    }
    // At worst every wave of a child's connections takes the registration timeout.
    let waves = args.connections.div_ceil(args.processes) / args.target.connect_concurrency.max(1) + 1;
    let limit = Duration::from_secs(args.target.register_timeout_secs.saturating_mul(waves as u64));
    for child in &mut children {
        let stdout = child.stdout.take().ok_or_else(|| BenchError::Protocol("child without stdout".into()))?;
        let mut line = String::new();
        tokio::time::timeout(limit, BufReader::new(stdout).read_line(&mut line))
            .await
            .map_err(|_| BenchError::Timeout("a child process did not register its connections in time".into()))??;
        let ready: Ready = serde_json::from_str(line.trim())
            .map_err(|_| BenchError::Protocol("a child process failed to register its connections".into()))?;
        if ready.connections == 0 && args.connections >= args.processes {
            return Err(BenchError::Protocol("a child process registered nothing".into()));
        }
    }
    Ok(children)
}
