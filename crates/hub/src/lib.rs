//! # parley-hub
//!
//! The chat itself: sessions, the nick registry, rooms, per-room ordering and timestamps,
//! private messages, and delivery into each session's bounded [`Outbox`].
//!
//! Gateways send typed [`Command`]s through a cloneable [`HubHandle`]; the hub answers
//! with typed [`Event`]s that it appends to the sessions' outboxes, encoded by each
//! gateway's [`Wire`]. One actor task owns all chat state and is its only writer.
//!
//! What the hub must never do: know a wire format or a socket, or wait for a session.
//! Delivery never blocks: a session whose outbox overflows is disconnected (the
//! slow-consumer rule), and everyone else carries on.
#![warn(missing_docs)]

mod actor;
mod address;
mod command;
mod error;
mod event;
mod history;
mod journal;
mod moderation;
mod modes;
mod name;
mod outbox;
mod room;
mod search;
mod throttle;

pub use actor::{
    spawn, HubHandle, Limits, Session, SessionId, Verified, Whereabouts, MAX_HISTORY_PAGE, MAX_PASSWORD, MAX_REASON,
    MIN_PASSWORD,
};
pub use address::Network;
pub use command::{Command, RequestId};
pub use error::HubError;
pub use event::{Event, LeaveReason, Reply, RoomSummary, Timestamp};
pub use history::{Cursor, Kind, Page, Record, RoomHistory, Search, Store, StoreError, Verdict};
pub use moderation::{Action, AuditLine, Change, Changed, Mask, Moderation, Restriction};
pub use modes::{Member, ModeChange, RoomMode, RoomModes, Stats, Whois};
pub use name::{Nick, RoomName};
pub use outbox::{Batch, Outbox, Overflow, Wire, CACHE_SLOTS};
pub use throttle::{Admit, FloodLimits, Throttle};

/// The name of the room every new session joins.
pub const LOBBY: &str = "lobby";
