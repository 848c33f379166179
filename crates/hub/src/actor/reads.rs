//! Reading history: pages of a room or a conversation, searches, the audit log. Reads
//! change no chat state, so they run on the blocking pool and answer straight into the
//! session's outbox; the hub only bounds them: a few per session, a few at once.
//!
//! Every read is limited to what joining shows: a room's history from where its current
//! life (or its registration) began, and a session's own private messages.

use std::sync::Arc;

use super::{Answer, Completion, Hub, MAX_HISTORY_PAGE};
use crate::command::{HistoryQuery, Marked, Point, RequestId};
use crate::error::HubError;
use crate::event::{Event, MarkTarget, Reply, Timestamp};
use crate::handle::SessionId;
use crate::history::{Cursor, Page, Record, Search, Timeline};
use crate::identity::Party;
use crate::name::{Nick, RoomName};
use crate::search::{self, Query};
use crate::store::StoreError;

/// History reads one session may have waiting or running; more are refused as busy.
/// (A client catching up after a reconnect asks for a few rooms at once.)
pub(super) const READS_PER_SESSION: usize = 4;

impl Hub {
    /// Answers `req` with what `read` finds in the store, read on the blocking pool once
    /// one of the read permits is free, and delivered straight into the session's
    /// outbox. (An overflow kills the outbox, and the connection ends as a slow
    /// consumer.)
    fn answer_from_store(
        &mut self,
        id: SessionId,
        req: RequestId,
        read: impl FnOnce() -> Result<Reply, StoreError> + Send + 'static,
    ) -> Result<Answer, HubError> {
        self.answer_off_hub(id, req, move || read().map_err(|e| super::store_failed(&e)))
    }

    /// Answers `req` with what `work` finds, run as [`Hub::answer_from_store`] runs a
    /// read: on the blocking pool under a read permit, counted as one of the session's
    /// reads, its answer delivered straight into the session's outbox.
    pub(super) fn answer_off_hub(
        &mut self,
        id: SessionId,
        req: RequestId,
        work: impl FnOnce() -> Result<Reply, HubError> + Send + 'static,
    ) -> Result<Answer, HubError> {
        let state = self.state_mut(id);
        if state.reads >= READS_PER_SESSION {
            return Err(HubError::Busy);
        }
        state.reads += 1;
        let outbox = state.outbox.clone();
        self.reading += 1;
        let (permits, completions) = (self.read_permits.clone(), self.completions.clone());
        tokio::spawn(async move {
            // The semaphore is never closed; without a permit there is nothing to read.
            if let Ok(_permit) = permits.acquire_owned().await {
                let result = tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                    Err(super::store_failed(&StoreError::Read(format!("a read task failed: {e}"))))
                });
                let _ = outbox.deliver(&Event::Reply { req, result });
            }
            let _ = completions.send(Completion::Read { session: id, req });
        });
        Ok(Answer::Later)
    }

    /// A read finished: the session may read again.
    pub(super) fn read_done(&mut self, id: SessionId, req: RequestId) {
        self.reading = self.reading.saturating_sub(1);
        if let Some(state) = self.sessions.get_mut(&id) {
            state.reads = state.reads.saturating_sub(1);
        }
        self.answered(id, req);
    }

    /// The party `name` stands for in a conversation: the account of that name (whether
    /// or not it is online), or the guest using that nick now.
    pub(super) fn party_named(&self, name: &str) -> Result<(Nick, Party), HubError> {
        let nick = Nick::parse(name, self.limits.max_nick_len).map_err(|_| HubError::NoSuchNick(name.to_owned()))?;
        if let Some((account, id)) = self.accounts.get_key_value(&nick) {
            return Ok((account.clone(), Party::Account(*id)));
        }
        let session = self.nicks.get(&nick).ok_or_else(|| HubError::NoSuchNick(name.to_owned()))?;
        let state = self.state(*session);
        Ok((state.nick.clone(), state.party()))
    }

    /// A page of the session's private messages with `with`: the ones between its party
    /// (its account, or this guest session) and theirs.
    pub(super) fn conversation(
        &mut self,
        id: SessionId,
        req: RequestId,
        with: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Answer, HubError> {
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let me = self.state(id).party();
        let (with, party) = self.party_named(with)?;
        let (limit, upto) = (limit.clamp(1, MAX_HISTORY_PAGE), self.private_committed);
        self.answer_from_store(id, req, move || {
            let records = store.conversation(me, party, cursor, upto, limit)?;
            Ok(Reply::Conversation { with, messages: records.into_iter().map(Arc::new).collect() })
        })
    }

    /// Searches what the session may see: its rooms' visible history, and its own
    /// private messages.
    pub(super) fn search(&mut self, id: SessionId, req: RequestId, text: &str) -> Result<Answer, HubError> {
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let query = Query::parse(text, self.limits.max_nick_len, self.limits.max_room_len)?;
        let state = self.state(id);
        // `in:ROOM` narrows the search to that room: private messages are in no room.
        // The room as the session joined it, spelled as the store keeps it.
        let (rooms, private_of) = match query.room {
            Some(room) => match state.rooms.iter().find(|r| **r == room) {
                Some(joined) => (vec![joined.clone()], None),
                None => return Err(HubError::NotInRoom(room.to_string())),
            },
            None => (state.rooms.clone(), Some(state.party())),
        };
        let rooms = rooms.into_iter().map(|room| {
            let since = self.since(&room);
            (room, since)
        });
        let search = Search {
            words: query.words,
            from: query.from,
            rooms: rooms.collect(),
            private_of,
            before: query.before,
            after: query.after,
            limit: search::PAGE,
            // The page is at most search::MAX_PAGE (checked when parsed).
            offset: query.page.saturating_sub(1).saturating_mul(search::PAGE),
        };
        let (query, page) = (text.to_owned(), query.page);
        let metrics = self.metrics.clone();
        self.answer_from_store(id, req, move || {
            let started = std::time::Instant::now();
            let found = store.search(&search);
            metrics.search_seconds.observe_duration(started.elapsed());
            let found = found?;
            Ok(Reply::Found { query, page, results: found.into_iter().map(Arc::new).collect() })
        })
    }

    /// The latest messages of a room its members may read, for a session entering it.
    pub(crate) fn recent(&self, name: &RoomName) -> Vec<Arc<Record>> {
        let since = self.since(name);
        self.logs.get(name).map(|log| log.recent(self.limits.history_on_join, since)).unwrap_or_default()
    }

    /// A page of a room the session is in, from where its visible history begins.
    /// Answered here from memory without a store; with one, read off the task.
    pub(super) fn history(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Answer, HubError> {
        let name = self.target_room(id, room)?;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let since = self.since(&name);
        let log = self.logs.get(&name);
        let Some(store) = self.store.clone() else {
            let messages = log.map(|log| log.page(cursor, limit, since)).unwrap_or_default();
            return Ok(Reply::History { room: name, messages }.into());
        };
        let upto = log.map_or(0, |log| log.committed);
        let page = Page { room: name.clone(), cursor, since, upto, limit };
        self.answer_from_store(id, req, move || {
            let records = store.page(&page)?;
            Ok(Reply::History { room: name, messages: records.into_iter().map(Arc::new).collect() })
        })
    }

    /// The audit log, for server admins.
    pub(super) fn audit(&mut self, id: SessionId, req: RequestId, limit: usize) -> Result<Answer, HubError> {
        if !self.is_admin(id) {
            return Err(HubError::NotAdmin);
        }
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        self.answer_from_store(id, req, move || store.audit(limit).map(Reply::Audit))
    }
}

/// The cursor a query means, with instants placed in the order by `seq_at` (the seq of
/// the latest message said at or before an instant).
fn cursor_of<E>(query: HistoryQuery, mut seq_at: impl FnMut(Timestamp) -> Result<u64, E>) -> Result<Cursor, E> {
    let seq_at = &mut seq_at;
    Ok(match query {
        HistoryQuery::Latest(None) => Cursor::Latest,
        HistoryQuery::Latest(Some(point)) => Cursor::LatestAfter(after(point, seq_at)?),
        HistoryQuery::After(point) => Cursor::After(after(point, seq_at)?),
        HistoryQuery::Around(point) => Cursor::Around(after(point, seq_at)?),
        HistoryQuery::Before(point) => Cursor::Before(before(point, seq_at)?),
        HistoryQuery::Between(from, to) => {
            let forward = match (from, to) {
                (Point::Seq(a), Point::Seq(b)) => a <= b,
                (Point::Time(a), Point::Time(b)) => a <= b,
                (a, b) => after(a, seq_at)? <= after(b, seq_at)?,
            };
            let (low, high) = if forward { (from, to) } else { (to, from) };
            Cursor::Between { after: after(low, seq_at)?, before: before(high, seq_at)?, latest: !forward }
        }
    })
}

/// The seq a page starting after `point` starts after. After an instant means after
/// its millisecond (as clients write it): the messages said within it are left out.
fn after<E>(point: Point, seq_at: &mut impl FnMut(Timestamp) -> Result<u64, E>) -> Result<u64, E> {
    match point {
        Point::Seq(seq) => Ok(seq),
        Point::Time(at) => seq_at(at + chrono::Duration::microseconds(999)),
    }
}

/// The seq a page ending before `point` ends before: before an instant means said
/// before it.
fn before<E>(point: Point, seq_at: &mut impl FnMut(Timestamp) -> Result<u64, E>) -> Result<u64, E> {
    match point {
        Point::Seq(seq) => Ok(seq),
        Point::Time(at) => seq_at(at - chrono::Duration::microseconds(1)).map(|seq| seq.saturating_add(1)),
    }
}

impl Hub {
    /// `Command::ChatHistory`: a page of a room the session is in, or of one of its
    /// conversations, by message or by time.
    pub(super) fn chat_history(
        &mut self,
        id: SessionId,
        req: RequestId,
        target: Marked,
        query: HistoryQuery,
        limit: usize,
    ) -> Result<Answer, HubError> {
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        match target {
            Marked::Room(name) => {
                let room = self.target_room(id, Some(&name))?;
                let since = self.since(&room);
                let log = self.logs.get(&room);
                let Some(store) = self.store.clone() else {
                    let cursor = cursor_of::<std::convert::Infallible>(query, |at| {
                        Ok(log.map_or(0, |log| log.seq_at(since, at)))
                    })
                    .unwrap_or_else(|never| match never {});
                    let messages = log.map(|log| log.page(cursor, limit, since)).unwrap_or_default();
                    return Ok(Reply::History { room, messages }.into());
                };
                let upto = log.map_or(0, |log| log.committed);
                self.answer_from_store(id, req, move || {
                    let timeline = Timeline::Room(room.clone());
                    let cursor = cursor_of(query, |at| store.seq_at(&timeline, since, at))?;
                    let page = Page { room: room.clone(), cursor, since, upto, limit };
                    let records = store.page(&page)?;
                    Ok(Reply::History { room, messages: records.into_iter().map(Arc::new).collect() })
                })
            }
            Marked::With(nick) => {
                let store = self.store.clone().ok_or(HubError::NoHistory)?;
                let me = self.state(id).party();
                let (with, party) = self.party_named(&nick)?;
                let upto = self.private_committed;
                self.answer_from_store(id, req, move || {
                    let timeline = Timeline::Conversation { me, with: party };
                    let cursor = cursor_of(query, |at| store.seq_at(&timeline, 0, at))?;
                    let records = store.conversation(me, party, cursor, upto, limit)?;
                    Ok(Reply::Conversation { with, messages: records.into_iter().map(Arc::new).collect() })
                })
            }
        }
    }

    /// `Command::ChatTargets`: the session's rooms (their visible history) and its
    /// conversations with messages in the window.
    pub(super) fn chat_targets(
        &mut self,
        id: SessionId,
        req: RequestId,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Answer, HubError> {
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let state = self.state(id);
        let party = state.party();
        let rooms: Vec<(RoomName, u64)> = state.rooms.iter().map(|room| (room.clone(), self.since(room))).collect();
        self.answer_from_store(id, req, move || {
            let found = store.activity(&rooms, party, from, to, limit)?;
            let targets = found
                .into_iter()
                .filter_map(|a| match (a.room, a.with) {
                    (Some(room), _) => Some((MarkTarget::Room(room), a.at)),
                    (None, Some((_, nick))) => Some((MarkTarget::With(nick), a.at)),
                    (None, None) => None,
                })
                .collect();
            Ok(Reply::Targets(targets))
        })
    }
}
