//! A message's round trip through the cluster's log (see `ledger.rs`): a clustered hub
//! submits what it accepts instead of numbering and storing it, and takes back
//! everything the log holds, its own messages and the other nodes', in the log's order.
//! From there a message goes the way a lone hub's does: into the journal, and once
//! stored to this node's sessions, its sender answered if it is here.

use std::sync::Arc;

use super::Hub;
use crate::actor::delivery::Unstored;
use crate::command::RequestId;
use crate::error::HubError;
use crate::handle::SessionId;
use crate::history::Record;
use crate::ledger::{Logged, Ticket};

impl Hub {
    /// Hands an accepted message to the log; it stays the sender's unstored message (its
    /// other operations wait behind it) until the log gives it back or refuses it.
    pub(super) fn submit(&mut self, message: Unstored) {
        let Some(ledger) = self.ledger.clone() else {
            return self.journal_push(message);
        };
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        *self.unstored_by.entry(message.sender).or_default() += 1;
        ledger.submit(ticket, Record::clone(&message.record));
        self.in_log.insert(ticket, message);
    }

    /// What the log said, in its order.
    pub(super) fn logged(&mut self, news: Logged) {
        match news {
            Logged::Message { record, ticket, position } => self.take_logged(record, ticket, position),
            Logged::Refused { ticket, maybe } => {
                if let Some(message) = self.in_log.remove(&ticket) {
                    self.reply(message.sender, message.req, Err(HubError::NotShared { maybe }));
                    self.settle(vec![message.sender]);
                }
            }
            Logged::Presence { node, presence } => self.heard(node, presence),
            Logged::NodeGone { node } => self.node_gone(&node),
            Logged::Reannounce => self.reannounce(),
        }
        self.drop_slow_consumers();
    }

    /// A message the log holds: this hub's own (answered once stored) or another node's.
    /// Only what is new to this node is delivered: the log gives a starting node
    /// everything it retains, and the store may hold some of it already, written by
    /// another node (then this node's sessions read it as history).
    fn take_logged(&mut self, record: Record, ticket: Option<Ticket>, position: u64) {
        let fresh = match &record.room {
            Some(room) => {
                let log = self.logs.entry(room.clone()).or_default();
                let fresh = record.seq > log.assigned;
                log.assigned = log.assigned.max(record.seq);
                fresh
            }
            None => {
                let fresh = record.seq > self.private_assigned;
                self.private_assigned = self.private_assigned.max(record.seq);
                fresh
            }
        };
        let ours = ticket.and_then(|ticket| self.in_log.remove(&ticket));
        let message = match ours {
            Some(mut message) => {
                // Counted again by the journal's queue.
                self.uncount(message.sender);
                message.record = Arc::new(record);
                message.fresh = true;
                message.position = position;
                message
            }
            None => {
                // Another node's private message goes to whoever holds the nick here
                // (nicks are the cluster's: one holder at a time).
                let receiver = match (&record.room, &record.to) {
                    (None, Some(to)) if fresh => self.nicks.get(to).copied(),
                    _ => None,
                };
                Unstored {
                    sender: SessionId::NOBODY,
                    req: RequestId(0),
                    receiver,
                    record: Arc::new(record),
                    accepted: std::time::Instant::now(),
                    fresh,
                    position,
                }
            }
        };
        if self.store_broken {
            self.reply(message.sender, message.req, Err(HubError::StoreWrite));
            return self.settle(vec![message.sender]);
        }
        self.journal_push(message);
    }

    /// The session has one unstored message fewer, without resuming what waits behind it
    /// (the message moves on to another queue, where it is counted again).
    fn uncount(&mut self, sender: SessionId) {
        if let Some(count) = self.unstored_by.get_mut(&sender) {
            *count -= 1;
            if *count == 0 {
                self.unstored_by.remove(&sender);
            }
        }
    }

    /// The log is gone for good (the server stopped following it): every message out
    /// there fails, as may have been sent.
    pub(super) fn ledger_lost(&mut self) {
        tracing::error!("the cluster's log stopped; messages are refused from now on");
        self.ledger = None;
        self.store_broken = true;
        let tickets: Vec<Ticket> = self.in_log.keys().copied().collect();
        for ticket in tickets {
            self.logged(Logged::Refused { ticket, maybe: true });
        }
    }
}
