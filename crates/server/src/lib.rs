//! # parley-server
//!
//! Listeners, gateways and the server's lifecycle: binds the configured sockets, starts
//! the hub, runs one task per connection, and shuts everything down in order.
//!
//! - [`config`]: the TOML configuration and its documented defaults.
//! - `listener`: accept loops (cheap: accept, spawn, nothing slow).
//! - `files`: shared files on disk (content-addressed, streamed, with quotas).
//! - `gateway`: one module per protocol (`line`, `native`), translating between one wire
//!   format and the hub's commands and events, over a shared connection driver.
//!
//! Nothing depends on this crate but the `parley` binary. It is the only crate that wires
//! concrete pieces together.

mod cluster;
pub mod config;
mod descriptors;
mod files;
mod gateway;
mod hosts;
mod listener;
mod metrics;
mod proxy;
mod server;
mod store;
mod tls;

pub use cluster::ClusterError;
pub use config::{Cluster, Config, ConfigError, Database, Hosts, Irc, Listener, ListenerKind, LogFormat, Oper};
pub use hosts::CloakKeyError;
pub use server::{run, Bound, Server, ServerError};
pub use tls::{Tls, TlsError};

/// Deletes the shares that belong to a deleted account (shared by it, or sent to it
/// privately) from the data directory, while a server runs on it or not: what `parley
/// admin users delete` does beside deleting the account. (The content goes at the
/// server's next start.) Blocks on disk.
pub fn forget_account_files(data_dir: &std::path::Path, account: parley_hub::AccountId) -> std::io::Result<usize> {
    files::forget_account_in(data_dir, account)
}
