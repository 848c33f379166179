//! Reading history: pages of a room or a conversation, searches, the audit log. Reads
//! change no chat state, so they run on the blocking pool and answer straight into the
//! session's outbox; the hub only bounds them: a few per session, a few at once.
//!
//! Every read is limited to what joining shows: a room's history from where its current
//! life (or its registration) began, and a session's own private messages.

use std::sync::Arc;

use super::{Answer, Completion, Hub, MAX_HISTORY_PAGE};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::handle::SessionId;
use crate::history::{Cursor, Page, Record, Search};
use crate::identity::Party;
use crate::name::{Nick, RoomName};
use crate::search::{self, Query};
use crate::store::StoreError;

/// History reads one session may have waiting or running; more are refused as busy.
/// (A client catching up after a reconnect asks for a few rooms at once.)
const READS_PER_SESSION: usize = 4;

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
                let result = tokio::task::spawn_blocking(read).await;
                let result = match result {
                    Ok(result) => result.map_err(|e| super::store_failed(&e)),
                    Err(e) => Err(super::store_failed(&StoreError::Read(format!("a read task failed: {e}")))),
                };
                let _ = outbox.deliver(&Event::Reply { req, result });
            }
            let _ = completions.send(Completion::Read { session: id });
        });
        Ok(Answer::Later)
    }

    /// A read finished: the session may read again.
    pub(super) fn read_done(&mut self, id: SessionId) {
        self.reading = self.reading.saturating_sub(1);
        if let Some(state) = self.sessions.get_mut(&id) {
            state.reads = state.reads.saturating_sub(1);
        }
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
