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
mod charter;
mod claims;
mod command;
mod error;
mod event;
mod handle;
mod history;
mod identity;
mod journal;
mod ledger;
mod log;
mod lookalike;
mod memory;
mod metrics;
mod moderation;
mod modes;
mod name;
mod outbox;
mod presence;
mod room;
mod search;
mod signal;
mod store;
mod throttle;
mod tokens;
mod watch;

pub use actor::{
    spawn, spawn_clustered, ClusterNicks, Clustered, Limits, MAX_HISTORY_PAGE, MAX_PASSWORD, MAX_REASON,
    MAX_RESTRICTION_DAYS, MIN_PASSWORD,
};
pub use address::Network;
pub use claims::{ClaimError, ClaimFuture, NickClaims};
pub use command::{Audience, Command, HistoryQuery, Marked, Point, RequestId, Watch};
pub use error::{HubError, ModeProblem, NameRule, SearchProblem};
pub use event::{Event, LeaveReason, MarkTarget, Notice, Renaming, Reply, RoomChange, RoomSummary, Timestamp};
pub use handle::{Destination, Health, HubHandle, Login, Session, SessionId, TokenHolder, Verified, Whereabouts};
pub use history::{Activity, Cursor, Kind, Page, Record, Search, Timeline};
pub use identity::{Account, AccountId, Arrival, GuestId, Party, Userhost};
pub use ledger::{Ledger, Logged, Ticket};
pub use memory::MemoryStore;
pub use metrics::{Histogram, HistogramSnapshot, HubMetrics, BATCH_BUCKETS, LATENCY_BUCKETS};
pub use moderation::{
    Action, AuditLine, Change, Changed, Mask, Moderation, RegisteredRoom, Restriction, ServerAction, ServerBan, Topic,
};
pub use modes::{Member, ModeChange, RoomMode, RoomModes, Stats, Visibility, Whois};
pub use name::{case_mapping, key_of, set_case_mapping, skeleton, CaseMapping, Nick, RoomName};
pub use outbox::{Batch, Outbox, Overflow, Wire, CACHE_SLOTS};
pub use presence::{Marks, Presence};
pub use signal::{ClientTags, Meta, Reaction, Signal, Typing, MAX_REACTION, MAX_TAGS, MAX_TAG_BYTES};
pub use store::{
    AccountStore, Deletion, MessageStore, ModerationStore, ReadMarker, SearchStore, Store, StoreError, TokenStore,
    Verdict,
};
pub use throttle::{Admit, FloodLimits, Throttle};
pub use tokens::{
    clean_description, token_hash, SessionInfo, SessionToken, TokenUse, DEFAULT_TOKEN_IDLE, MAX_TOKENS_PER_ACCOUNT,
    MAX_TOKEN_DESCRIPTION, MAX_TOKEN_TEXT, TOKEN_BYTES,
};

/// The name of the room every new session joins.
pub const LOBBY: &str = "lobby";
