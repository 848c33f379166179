//! Each room's log in memory: its sequence counter, which outlives the room so that its
//! order never restarts, and its latest committed messages, which newcomers get.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::history::{Cursor, Record};

/// A room's log as the hub keeps it: the seq counter (which outlives the room itself, so
/// a room that empties and fills again continues its order) and the latest committed
/// messages, which newcomers get on joining.
#[derive(Debug, Default)]
pub(crate) struct RoomLog {
    /// The seq given to the last accepted message.
    pub(crate) assigned: u64,
    /// The seq of the last message known to be stored (or delivered, without a store).
    pub(crate) committed: u64,
    recent: VecDeque<Arc<Record>>,
}

impl RoomLog {
    /// The log of a room whose last stored message has `last_seq`.
    pub(crate) fn restored(last_seq: u64) -> Self {
        Self { assigned: last_seq, committed: last_seq, recent: VecDeque::new() }
    }

    /// Takes in the latest messages read from the store, keeping the latest `keep`.
    pub(crate) fn remember(&mut self, records: Vec<Record>, keep: usize) {
        let skip = records.len().saturating_sub(keep);
        self.recent = records.into_iter().skip(skip).map(Arc::new).collect();
    }

    /// Forgets the latest messages: the room's life ended, and nobody may read them as
    /// part of the next one. The counter stays.
    pub(crate) fn forget(&mut self) {
        self.recent = VecDeque::new();
    }

    /// The first seq of a life that begins now.
    pub(crate) fn next_life(&self) -> u64 {
        self.assigned.saturating_add(1)
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        // 2^64 messages in one room cannot happen; saturating keeps it a non-event.
        self.assigned = self.assigned.saturating_add(1);
        self.assigned
    }

    /// Records a message as committed, keeping the latest `keep`.
    pub(crate) fn commit(&mut self, record: Arc<Record>, keep: usize) {
        self.committed = self.committed.max(record.seq);
        if keep == 0 {
            return;
        }
        if self.recent.len() >= keep {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
    }

    /// Forgets a deleted message, so that newcomers are not given it.
    pub(crate) fn remove(&mut self, seq: u64) {
        self.recent.retain(|r| r.seq != seq);
    }

    /// The message `seq`, if it is among the latest held.
    pub(crate) fn get(&self, seq: u64) -> Option<&Arc<Record>> {
        self.recent.iter().find(|r| r.seq == seq)
    }

    /// The latest `n` committed messages from seq `since` on, oldest first.
    pub(crate) fn recent(&self, n: usize, since: u64) -> Vec<Arc<Record>> {
        let visible: Vec<&Arc<Record>> = self.recent.iter().filter(|r| r.seq >= since).collect();
        visible[visible.len().saturating_sub(n)..].iter().map(|r| Arc::clone(r)).collect()
    }

    /// A page served from memory, for a hub without a store: only what is still held,
    /// from seq `since` on.
    pub(crate) fn page(&self, cursor: Cursor, limit: usize, since: u64) -> Vec<Arc<Record>> {
        let held: Vec<Arc<Record>> = self.recent.iter().cloned().collect();
        crate::history::page_of(&held, &|r| r.seq, cursor, since, u64::MAX, limit)
    }

    /// The seq of the latest message held said at or before `at`, from `since` on.
    pub(crate) fn seq_at(&self, since: u64, at: crate::event::Timestamp) -> u64 {
        self.recent.iter().filter(|r| r.seq >= since && r.at <= at).map(|r| r.seq).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Kind;
    use crate::name::{Nick, RoomName};
    use chrono::Utc;

    fn record(seq: u64) -> Arc<Record> {
        Arc::new(Record {
            room: Some(RoomName::parse("lobby", 32).expect("valid")),
            seq,
            from: Nick::parse("ada", 32).expect("valid"),
            sender: None,
            to: None,
            recipient: None,
            at: Utc::now(),
            kind: Kind::Text,
            text: format!("message {seq}").into(),
            meta: None,
            userhost: None,
        })
    }

    fn seqs(records: &[Arc<Record>]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn the_log_keeps_the_latest_and_pages_through_them() {
        let mut log = RoomLog::default();
        for _ in 0..10 {
            let seq = log.next_seq();
            log.commit(record(seq), 5);
        }
        assert_eq!((log.assigned, log.committed), (10, 10));
        assert_eq!(seqs(&log.recent(3, 0)), [8, 9, 10]);
        assert_eq!(seqs(&log.recent(50, 0)), [6, 7, 8, 9, 10]);
        assert_eq!(seqs(&log.recent(50, 9)), [9, 10]);
        assert_eq!(seqs(&log.page(Cursor::Latest, 2, 0)), [9, 10]);
        assert_eq!(seqs(&log.page(Cursor::Before(9), 2, 0)), [7, 8]);
        assert_eq!(seqs(&log.page(Cursor::Before(9), 2, 8)), [8]);
        assert_eq!(seqs(&log.page(Cursor::After(6), 2, 0)), [7, 8]);
    }

    #[test]
    fn a_restored_log_continues_the_order_and_a_new_life_forgets() {
        let recent = (1..=4).map(|seq| (*record(seq)).clone()).collect();
        let mut log = RoomLog::restored(40);
        log.remember(recent, 2);
        assert_eq!(seqs(&log.recent(10, 0)), [3, 4]);
        assert_eq!(log.next_seq(), 41);
        log.forget();
        assert!(log.recent(10, 0).is_empty());
        assert_eq!(log.next_life(), 42);
    }
}
