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

pub mod config;
mod files;
mod gateway;
mod listener;
mod server;
mod tls;

pub use config::{Config, ConfigError, Irc, Listener, ListenerKind, Oper};
pub use server::{run, Bound, Server, ServerError};
pub use tls::{Tls, TlsError};
