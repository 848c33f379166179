//! A cluster's shared log, as the hub sees it: where a clustered hub sends the messages
//! it accepts, and what comes back from it.
//!
//! Alone, a hub numbers its rooms' messages itself and delivers each once its journal
//! has stored it. In a cluster several hubs take messages for the same rooms, so none of
//! them may number or deliver on its own: each hands what it accepts to the [`Ledger`]
//! (the server puts the cluster's replicated log behind it), and delivers only what the
//! log gives back, in the log's order, which is the same on every node. A node's own
//! messages come back too, each with the ticket it was submitted under; that is when the
//! sender is answered. The hub knows no NATS: this trait and [`Logged`] are all it sees.

use std::sync::Arc;

use crate::history::Record;
use crate::presence::Presence;

/// A message's ticket: the number a hub gave a message it submitted, which comes back
/// with it.
pub type Ticket = u64;

/// The cluster's log, for the hub.
pub trait Ledger: Send + Sync {
    /// Hands over an accepted message. Its `seq` is the hub's guess (one past the last it
    /// knows for the room, which is at most the log's last): the log gives it the next
    /// free one. What becomes of it arrives as a [`Logged`]: the message itself, with
    /// `ticket`, once the log holds it, or a refusal. Never waits.
    fn submit(&self, ticket: Ticket, record: Record);

    /// Tells the other nodes of a change in who is on this one, after every change told
    /// before it. Never waits; what cannot be told now the ledger tells later, asking
    /// the hub to tell everything again ([`Logged::Reannounce`]).
    fn announce(&self, presence: Presence);

    /// Every message of the log up to `position` is in this node's store: a node
    /// starting again follows the log from there.
    fn written(&self, position: u64);
}

/// What the log tells the hub, in the log's order.
#[derive(Debug)]
pub enum Logged {
    /// A message the log holds, from any node: store it, then deliver it to this node's
    /// sessions. `ticket` is set when this hub submitted it.
    Message {
        /// The message, under the seq the log gave it.
        record: Record,
        /// The ticket it was submitted under, when it was this hub's.
        ticket: Option<Ticket>,
        /// Its position in the log (see [`Ledger::written`]).
        position: u64,
    },
    /// A message this hub submitted that the log could not take.
    Refused {
        /// Its ticket.
        ticket: Ticket,
        /// Whether it may have been stored after all (the log did not answer in time):
        /// then it may still come back as a [`Logged::Message`], and is delivered like
        /// any other node's.
        maybe: bool,
    },
    /// Another node's change in who is on it; `node` names that node's run.
    Presence {
        /// The node that tells.
        node: Arc<str>,
        /// What changed.
        presence: Presence,
    },
    /// A node is gone (its lease in the cluster ran out, or it started again): everyone
    /// it had is gone with it.
    NodeGone {
        /// The node's run, as [`Logged::Presence`] names it.
        node: Arc<str>,
    },
    /// The other nodes may have missed some of this node's changes (it was cut off):
    /// tell them everything again.
    Reannounce,
}
