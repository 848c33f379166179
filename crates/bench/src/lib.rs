//! # parley-bench
//!
//! A load generator for Parley's line and native protocols and for IRC (Parley's IRC
//! gateway or any IRC server, so they can be compared): `fanout` measures how fast one
//! room delivers to many clients (throughput, latency percentiles, loss and order, and
//! the server's CPU seconds per delivery), `idle` measures server memory per idle
//! registered connection, `churn` how fast connections can arrive, register and leave.
//! Loopback only, bounded in time and connections.

mod churn;
mod dial;
mod fanout;
mod idle;
mod irc;
mod peer;
mod proc_stats;
mod report;

pub use churn::{churn, ChurnArgs};
pub use dial::Target;
pub use fanout::{fanout, fanout_series, FanoutArgs};
pub use idle::{idle, IdleArgs};
pub use peer::Proto;
pub use report::{ChurnReport, FanoutReport, FanoutSeries, IdleReport, Percentiles};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target is not on this machine.
    #[error("{0} is not a loopback address; the load generator only targets this machine")]
    NotLoopback(String),
    /// The options cannot make a valid run.
    #[error("{0}")]
    Usage(String),
    /// Cannot connect or talk to the server.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server answered something unexpected.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The run took longer than its limit.
    #[error("{0}")]
    Timeout(String),
}

/// The modes of `parley bench`.
#[derive(Debug, clap::Subcommand)]
pub enum Mode {
    /// N clients in one room; S of them send; everyone measures what arrives.
    Fanout(FanoutArgs),
    /// N registered connections that hold still; server memory per connection.
    Idle(IdleArgs),
    /// Connections arriving at a rate, each registering, chatting briefly and quitting.
    Churn(ChurnArgs),
}

/// Resolves `addr` and refuses anything that is not loopback.
pub(crate) fn loopback(addr: &str) -> Result<std::net::SocketAddr, BenchError> {
    use std::net::ToSocketAddrs as _;
    let resolved = addr.to_socket_addrs()?.next().ok_or_else(|| BenchError::NotLoopback(addr.to_owned()))?;
    if resolved.ip().is_loopback() {
        Ok(resolved)
    } else {
        Err(BenchError::NotLoopback(addr.to_owned()))
    }
}
