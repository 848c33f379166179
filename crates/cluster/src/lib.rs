//! Parley's cluster primitives, on NATS JetStream: what several nodes must agree on
//! without a home-made consensus.
//!
//! - [`RoomLog`]: one replicated stream holding every room's messages, in which each
//!   room's seqs are 1, 2, 3, … with no gap and no duplicate whichever node publishes,
//!   and which every node follows in the same order ([`Follower`]).
//! - [`NickRegistry`]: nick claims in a JetStream key-value bucket: of nodes racing for
//!   one nick exactly one wins, and a dead node's claims expire with its leases.
//!   [`HubClaims`] is the same registry as the hub asks it ([`parley_hub::NickClaims`]).
//!
//! It owns the NATS side of the cluster and nothing else: no session, no room state, no
//! wire format. It speaks the hub's [`parley_hub::Record`] and a nick's key as the hub
//! computes it; the hub does not depend on it (nor on NATS). See "Cluster mode" in
//! docs/ARCHITECTURE.md for why each primitive is built the way it is.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod change;
mod claims;
mod connect;
mod error;
mod follower;
mod log;
mod nicks;
mod positions;
mod presence;
mod subject;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

pub use change::{WireChange, WireChanged, WireModes, WireRestriction};
pub use claims::HubClaims;
pub use connect::{connect, Link};
pub use error::{LogError, NickError};
pub use follower::Entry;
pub use follower::Follower;
pub use log::{Appended, Delivered, LogConfig, RoomLog};
pub use nicks::{Claim, NickConfig, NickRegistry, Refreshed};
pub use positions::Positions;
pub use presence::{WireModeChange, WirePresence};
pub use subject::{room_token, token_key};
pub use wire::WireRecord;
