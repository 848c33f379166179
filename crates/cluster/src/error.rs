//! What can go wrong in the cluster, as types the hub can map to its own errors.

/// Why the room log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No NATS server could be reached within the publish bound; nothing was sent, so
    /// the message is certainly not in the log.
    #[error("the cluster's message log is unreachable")]
    Unavailable,
    /// The message was sent but JetStream did not confirm it within the publish bound
    /// (a server died, the link dropped). It may still have been stored: if it was,
    /// every node delivers it like any other.
    #[error("the cluster's message log did not confirm the message in time")]
    Unconfirmed,
    /// Other nodes kept taking the seq this node tried, for the whole publish bound (a
    /// room others fill flat out, faster than this node can race them); the message is
    /// not in the log.
    #[error("the message could not be given a seq after {attempts} attempts")]
    Contended {
        /// How many seqs were tried.
        attempts: u32,
    },
    /// The message is larger than the NATS servers accept.
    #[error("the message is larger than the cluster accepts")]
    TooLarge,
    /// A stored message could not be read back as a record (written by an incompatible
    /// version, or damaged); its position is skipped.
    #[error("message {position} of the log is not a record: {why}")]
    Undecodable {
        /// Its stream position.
        position: u64,
        /// What was wrong with it.
        why: String,
    },
    /// The log's follower ended (the connection was closed for good).
    #[error("the log's follower stopped")]
    Closed,
    /// JetStream refused or failed an operation, with its detail for the log.
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// Why a nick operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NickError {
    /// Another claim holds the nick (on this node or another).
    #[error("the nick is taken")]
    Taken,
    /// This node holds no claim on the nick (never did, released it, or lost it).
    #[error("the nick is not held by this node")]
    NotHeld,
    /// The registry could not be reached or failed, with the detail for the log.
    #[error("the nick registry is unavailable: {0}")]
    Unavailable(String),
}
