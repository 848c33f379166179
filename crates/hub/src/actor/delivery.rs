//! A message from acceptance to every outbox: checked and numbered on the hub task,
//! stored by the journal in batches, then delivered to the room (or the receiver) and
//! acknowledged to its sender, in commit order. Nobody sees a message before it is
//! stored, and a session's other operations wait behind its unstored messages (see
//! `Hub::apply`).

use std::sync::Arc;

use chrono::Utc;

use super::{store_failed, Answer, Hub};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::history::{Kind, Record};
use crate::identity::Userhost;
use crate::journal::Committed;
use crate::metrics::HubMetrics;
use crate::name::{Nick, RoomName};
use crate::outbox::{RunItem, Shared};
use crate::signal::Meta;
use crate::store::StoreError;

/// A message accepted and waiting for its batch to be stored.
pub(crate) struct Unstored {
    pub(crate) sender: SessionId,
    pub(crate) req: RequestId,
    /// The receiver of a private message.
    pub(crate) receiver: Option<SessionId>,
    pub(crate) record: Arc<Record>,
    /// When the hub accepted it, for the fan-out latency.
    pub(crate) accepted: std::time::Instant,
    /// New to this node, so delivered once stored. A clustered node also stores what
    /// its cluster's log gives back that it had already (read from the store at start,
    /// written there by another node), and delivers none of it again.
    pub(crate) fresh: bool,
    /// Its position in the cluster's log; 0 alone.
    pub(crate) position: u64,
}

impl Hub {
    pub(super) fn check_text(&self, text: &str) -> Result<(), HubError> {
        if text.trim().is_empty() {
            return Err(HubError::EmptyMessage);
        }
        if text.len() > self.limits.max_message_bytes {
            return Err(HubError::MessageTooLong { max: self.limits.max_message_bytes });
        }
        Ok(())
    }

    pub(super) fn say(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        kind: Kind,
        text: String,
        meta: Meta,
    ) -> Result<Answer, HubError> {
        self.check_text(&text)?;
        let name = self.target_room(id, room)?;
        self.may_say(id, &name)?;
        let log = self.logs.entry(name.clone()).or_default();
        if let Some(answered) = meta.reply_to.filter(|s| *s == 0 || *s > log.assigned) {
            return Err(HubError::NoSuchMessage { room: name.to_string(), seq: answered });
        }
        // Clustered, the log numbers the message; the hub only guesses the next seq.
        let seq = if self.ledger.is_some() { log.assigned.saturating_add(1) } else { log.next_seq() };
        let state = self.state_mut(id);
        let now = std::time::Instant::now();
        state.active = now;
        let (from, sender, userhost) = (state.nick.clone(), Some(state.party()), state.userhost.clone());
        let record = Record {
            room: Some(name),
            seq,
            from,
            sender,
            to: None,
            recipient: None,
            at: Utc::now(),
            kind,
            text: text.into(),
            meta: meta.shared(),
            userhost: Some(userhost),
        };
        self.accept(Unstored {
            sender: id,
            req,
            receiver: None,
            record: Arc::new(record),
            accepted: now,
            fresh: true,
            position: 0,
        });
        Ok(Answer::Later)
    }

    /// Whether the session may say something in `name` now: not muted there, and
    /// allowed to speak by the room's settings.
    pub(crate) fn may_say(&self, id: SessionId, name: &RoomName) -> Result<(), HubError> {
        if self.restricted(id, name, false).is_some() {
            return Err(HubError::Muted(name.to_string()));
        }
        if !self.may_speak(id, name) {
            return Err(HubError::Moderated(name.to_string()));
        }
        Ok(())
    }

    pub(super) fn whisper(
        &mut self,
        id: SessionId,
        req: RequestId,
        to: &str,
        kind: Kind,
        text: String,
        meta: Meta,
    ) -> Result<Answer, HubError> {
        self.check_text(&text)?;
        // Here, or (in a cluster) on another node, whose hub delivers it.
        let (target, to, recipient) = match self.session_named(to) {
            Ok(target) => {
                let receiver = self.state(target);
                (Some(target), receiver.nick.clone(), receiver.party())
            }
            Err(e) => {
                let nick = Nick::parse(to, self.limits.max_nick_len).map_err(|_| e.clone())?;
                let (_, person) = self.elsewhere.named(&nick).ok_or(e)?;
                (None, person.nick.clone(), person.party)
            }
        };
        if let Some(answered) = meta.reply_to.filter(|s| *s == 0 || *s > self.private_assigned) {
            return Err(HubError::NoSuchMessage { room: to.to_string(), seq: answered });
        }
        let state = self.state_mut(id);
        let now = std::time::Instant::now();
        state.active = now;
        let (from, sender, userhost) = (state.nick.clone(), Some(state.party()), state.userhost.clone());
        let seq = self.private_assigned.saturating_add(1);
        if self.ledger.is_none() {
            self.private_assigned = seq;
        }
        let record = Record {
            room: None,
            seq,
            from,
            sender,
            to: Some(to),
            recipient: Some(recipient),
            at: Utc::now(),
            kind,
            text: text.into(),
            meta: meta.shared(),
            userhost: Some(userhost),
        };
        let message = Unstored {
            sender: id,
            req,
            receiver: target,
            record: Arc::new(record),
            accepted: now,
            fresh: true,
            position: 0,
        };
        self.accept(message);
        Ok(Answer::Later)
    }

    /// Hands an accepted message to the journal, or delivers it at once without a store.
    /// Nobody sees it, and its sender is not answered, before it is stored.
    pub(super) fn accept(&mut self, message: Unstored) {
        if self.store_broken {
            self.reply(message.sender, message.req, Err(HubError::StoreWrite));
            return;
        }
        HubMetrics::add(&self.metrics.messages_accepted, 1);
        if self.ledger.is_some() {
            return self.submit(message);
        }
        self.journal_push(message);
    }

    /// Queues a message for the journal, to be delivered once its batch is stored (or
    /// at the end of the round, without a store).
    pub(super) fn journal_push(&mut self, message: Unstored) {
        match &self.journal {
            Some(journal) if journal.write(message.record.clone()) => {
                *self.unstored_by.entry(message.sender).or_default() += 1;
                self.unstored.push_back(message);
            }
            Some(_) => {
                self.journal_lost();
                self.reply(message.sender, message.req, Err(HubError::StoreWrite));
            }
            None => {
                *self.unstored_by.entry(message.sender).or_default() += 1;
                self.unstored.push_back(message);
            }
        }
    }

    /// The journal reports a batch: deliver and acknowledge its messages, or tell their
    /// senders they were not kept.
    ///
    /// Consecutive messages to one room go out as a run: each member's outbox takes the
    /// whole run under one lock, with one wake-up of its writer (`Outbox::deliver_run`).
    pub(super) fn committed(&mut self, done: Committed) {
        let mut settled = Vec::new();
        let mut run = Vec::new();
        let mut run_room: Option<RoomName> = None;
        let mut accepted = Vec::with_capacity(done.count);
        let mut written = 0;
        for _ in 0..done.count {
            let Some(message) = self.unstored.pop_front() else {
                break;
            };
            settled.push(message.sender);
            written = written.max(message.position);
            if !message.fresh {
                // Stored for the record; this node had it already.
                continue;
            }
            if done.result.is_ok() {
                accepted.push(message.accepted);
            }
            let live_room = match (&done.result, &message.record.room) {
                (Ok(()), Some(name)) if self.rooms.contains_key(name) => Some(name.clone()),
                _ => None,
            };
            if live_room.is_none() || live_room != run_room {
                self.flush_run(&mut run, run_room.take());
            }
            match live_room {
                Some(name) => {
                    run.push(self.run_item(message));
                    run_room = Some(name);
                }
                None => self.deliver(message, done.result.clone()),
            }
        }
        self.flush_run(&mut run, run_room);
        if let (Some(ledger), true, Ok(())) = (&self.ledger, written > 0, &done.result) {
            ledger.written(written);
        }
        // Every message of the batch is in every outbox it goes to.
        let delivered = std::time::Instant::now();
        for accepted in accepted {
            self.metrics.fanout_seconds.observe_duration(delivered.saturating_duration_since(accepted));
        }
        self.settle(settled);
        self.drop_slow_consumers();
    }

    /// A stored room message made ready for its room's run: kept in the room's log, its
    /// event for the members, and the answer its sender gets.
    fn run_item(&mut self, message: Unstored) -> RunItem {
        let Unstored { sender, req, record, .. } = message;
        let userhost = sender_of(&record);
        let keep = self.limits.history_on_join;
        let name = record.room.clone().unwrap_or_else(|| self.lobby.clone());
        self.logs.entry(name.clone()).or_default().commit(record.clone(), keep);
        // The sender's account as it is now; a sender gone before the commit shows none.
        let account = self.sessions.get(&sender).and_then(|s| s.account_name().cloned());
        let room = self.rooms.get(&name).map_or_else(|| name.clone(), |room| room.name.clone());
        let shared = Shared::new(Event::Message {
            room,
            from: record.from.clone(),
            seq: record.seq,
            at: record.at,
            kind: record.kind,
            account,
            text: record.text.clone(),
            meta: record.meta.clone(),
            userhost,
        });
        let (seq, at, kind, text, meta) =
            (record.seq, record.at, record.kind, record.text.clone(), record.meta.clone());
        let reply = Event::Reply { req, result: Ok(Reply::Said { room: name, seq, at, kind, text, meta }) };
        RunItem { shared, sender, reply }
    }

    /// Delivers a run of messages to their room, and answers the senders no longer in it.
    fn flush_run(&mut self, run: &mut Vec<RunItem>, room: Option<RoomName>) {
        if run.is_empty() {
            return;
        }
        let items = std::mem::take(run);
        let mut answered = vec![false; items.len()];
        if let Some(room) = room.as_ref().and_then(|name| self.rooms.get(name)) {
            room.broadcast_run(&items, &mut answered, &mut self.overflowed);
            let members = room.len() as u64;
            let senders_in = answered.iter().filter(|a| **a).count() as u64;
            HubMetrics::add(&self.metrics.deliveries, (members * items.len() as u64).saturating_sub(senders_in));
        }
        for (item, answered) in items.iter().zip(answered) {
            if !answered {
                if let Some(state) = self.sessions.get(&item.sender) {
                    if state.outbox.deliver(&item.reply).is_err() {
                        self.overflowed.push(item.sender);
                    }
                }
            }
        }
    }

    /// Without a store, accepted messages count as stored at the end of each round of
    /// operations: they go out in runs like a committed batch, and a session's other
    /// operations still wait behind its messages.
    pub(super) fn flush_unstored(&mut self) {
        // Delivering resumes operations parked behind these messages, and they may be
        // messages too: go on until none is left (the parked queues are finite).
        while self.journal.is_none() && !self.store_broken && !self.unstored.is_empty() {
            let count = self.unstored.len();
            self.committed(Committed { count, result: Ok(()) });
        }
    }

    /// Counts the messages of `senders` as no longer unstored, and resumes the sessions
    /// left with none.
    pub(super) fn settle(&mut self, senders: Vec<SessionId>) {
        for sender in senders {
            if let Some(count) = self.unstored_by.get_mut(&sender) {
                *count -= 1;
                if *count == 0 {
                    self.unstored_by.remove(&sender);
                    self.resume(sender);
                }
            }
        }
    }

    /// The journal stopped: every waiting message fails, and so does every later one.
    pub(super) fn journal_lost(&mut self) {
        tracing::error!("the history writer stopped; messages are refused from now on");
        self.store_broken = true;
        self.journal = None;
        let mut settled = Vec::new();
        while let Some(message) = self.unstored.pop_front() {
            settled.push(message.sender);
            self.deliver(message, Err(StoreError::Write("the history writer stopped".into())));
        }
        self.settle(settled);
        self.drop_slow_consumers();
    }

    fn deliver(&mut self, message: Unstored, stored: Result<(), StoreError>) {
        let Unstored { sender, req, receiver, record, .. } = message;
        let userhost = sender_of(&record);
        if let Err(e) = stored {
            self.reply(sender, req, Err(store_failed(&e)));
            return;
        }
        // The sender's account as it is now; a sender gone before the commit shows none.
        let account = self.sessions.get(&sender).and_then(|s| s.account_name().cloned());
        let reply = match &record.room {
            Some(name) => {
                let keep = self.limits.history_on_join;
                self.logs.entry(name.clone()).or_default().commit(record.clone(), keep);
                if let Some(room) = self.rooms.get(name) {
                    let message = Shared::new(Event::Message {
                        room: room.name.clone(),
                        from: record.from.clone(),
                        seq: record.seq,
                        at: record.at,
                        kind: record.kind,
                        account,
                        text: record.text.clone(),
                        meta: record.meta.clone(),
                        userhost: userhost.clone(),
                    });
                    room.broadcast(&message, Some(sender), &mut self.overflowed);
                    let others = (room.len() - usize::from(room.contains(sender))) as u64;
                    HubMetrics::add(&self.metrics.deliveries, others);
                }
                let (seq, at, kind, text, meta) =
                    (record.seq, record.at, record.kind, record.text.clone(), record.meta.clone());
                Reply::Said { room: name.clone(), seq, at, kind, text, meta }
            }
            None => {
                self.private_committed = self.private_committed.max(record.seq);
                let to = record.to.clone().unwrap_or_else(|| record.from.clone());
                let event = Event::Whisper {
                    seq: record.seq,
                    from: record.from.clone(),
                    to: to.clone(),
                    at: record.at,
                    kind: record.kind,
                    account,
                    text: record.text.clone(),
                    meta: record.meta.clone(),
                    userhost,
                };
                let mut away = None;
                if let Some((target, state)) = receiver.and_then(|r| self.sessions.get(&r).map(|s| (r, s))) {
                    away = state.away.clone();
                    if state.outbox.deliver(&event).is_err() {
                        self.overflowed.push(target);
                    }
                    HubMetrics::add(&self.metrics.deliveries, 1);
                }
                let (seq, at, kind, text, meta) =
                    (record.seq, record.at, record.kind, record.text.clone(), record.meta.clone());
                Reply::Whispered { to, seq, at, kind, text, meta, away }
            }
        };
        self.reply(sender, req, Ok(reply));
    }
}

/// The user name and host of a message's sender, for its event: the hub records them on
/// every message it accepts.
fn sender_of(record: &Record) -> Arc<Userhost> {
    record.userhost.clone().unwrap_or_else(Userhost::unknown)
}
