//! # parley-client
//!
//! An async client for Parley's native protocol, over plain TCP or TLS, used by
//! `parley chat`, the load generator and the server's tests.
//!
//! [`Client::connect`] opens the connection and returns the client (for requests) and
//! its [`Events`] (for what the server sends unasked). [`Client::hello`] registers; it
//! may be retried with another nick on the same connection. Every request method
//! awaits exactly the answer that names its id, so requests may be issued from several
//! tasks while another task reads events.
//!
//! What this crate must never do: print, or decide anything for the user (trusting a
//! new certificate is reported in [`Trusted`], remembering it follows the [`Trust`]
//! policy the caller chose).

mod client;
mod event;
mod transfer;
pub mod trust;

pub use client::{Client, Error, Events, HistoryCursor, Joined, PastMessage, Place, Transport, Welcome};
pub use event::{Event, Kind};
pub use parley_proto::msg::{
    human_size, ErrorCode, FileInfo, LeaveReason, LoginOptions, Reply, Request, RoomInfo, SessionEntry,
};
pub use transfer::{media_type, safe_file_name, Audience, Fetched, Progress, Sent};
pub use trust::{Known, Trust, TrustError, Trusted};
