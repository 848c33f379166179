//! Messages: the journal's batched appends (with the search index and retention kept
//! up on the same writer), room pages and private conversations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parley_hub::{
    Activity, Cursor, Deletion, MessageStore, Nick, Page, Party, Record, RoomName, StoreError, Timeline, Timestamp,
};
use rusqlite::{params, OptionalExtension};

use super::{micros, record, seq_value, write_error, SqliteStore, Writer, RECORD_COLUMNS};

/// The search index is brought up to date once this many messages wait for it, and
/// before every search.
const INDEX_CHUNK: usize = 1000;

/// How often the writer applies the retention rules.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Writer {
    /// Deletes one room message in one transaction with the author check; the search
    /// index forgets it through the delete trigger, and `rooms.last_seq` keeps the order.
    fn delete(&mut self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> rusqlite::Result<Deletion> {
        let tx = self.conn.transaction()?;
        let found = tx
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM messages WHERE room = ?1 AND seq = ?2 AND seq >= ?3"),
                params![room.as_str(), seq_value(seq), seq_value(since)],
                record,
            )
            .optional()?;
        let outcome = match found {
            None => Deletion::NoSuchMessage,
            Some(found) if author.is_some() && found.sender != author => Deletion::NotAuthor,
            Some(found) => {
                tx.execute(
                    "DELETE FROM messages WHERE room = ?1 AND seq = ?2",
                    params![room.as_str(), seq_value(seq)],
                )?;
                Deletion::Deleted(Box::new(found))
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    fn append(&mut self, batch: &[Arc<Record>]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages
                    (room, seq, sender, sender_party, recipient, recipient_party, at_us, content_type, body, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut last_seq = tx.prepare_cached(
                "INSERT INTO rooms (name, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            // Each room's last seq once per batch, not once per message.
            let mut last: Vec<(&str, i64)> = Vec::new();
            for r in batch {
                let room = r.room.as_ref().map(RoomName::as_str);
                let seq = seq_value(r.seq);
                insert.execute(params![
                    room,
                    seq,
                    r.from.as_str(),
                    r.sender.map_or(0, Party::to_i64),
                    r.to.as_ref().map(Nick::as_str),
                    r.recipient.map_or(0, Party::to_i64),
                    micros(r.at),
                    r.kind.content_type(),
                    &*r.text,
                    crate::meta::encode(r.meta.as_deref())
                ])?;
                if let Some(room) = room {
                    match last.iter_mut().find(|(name, _)| *name == room) {
                        Some(entry) => entry.1 = entry.1.max(seq),
                        None => last.push((room, seq)),
                    }
                }
            }
            for (room, seq) in last {
                last_seq.execute(params![room, seq])?;
            }
        }
        tx.commit()?;
        self.unindexed += batch.len();
        if self.unindexed >= INDEX_CHUNK {
            if let Err(e) = self.index() {
                tracing::warn!("updating the search index failed (it is retried): {e}");
            }
        }
        if self.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(Instant::now());
            if let Err(e) = self.prune() {
                tracing::warn!("applying the history retention rules failed: {e}");
            }
        }
        Ok(())
    }

    /// Adds every message not yet in the search index to it, in one transaction.
    pub(super) fn index(&mut self) -> rusqlite::Result<()> {
        if self.unindexed == 0 {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        let from: i64 = tx.query_row("SELECT indexed_up_to FROM fts_state", [], |row| row.get(0))?;
        let upto: i64 = tx.query_row("SELECT coalesce(max(id), ?1) FROM messages", [from], |row| row.get(0))?;
        tx.execute(
            "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE id > ?1 AND id <= ?2",
            [from, upto],
        )?;
        tx.execute("UPDATE fts_state SET indexed_up_to = ?1", [upto])?;
        tx.commit()?;
        self.unindexed = 0;
        Ok(())
    }

    /// Deletes what the retention rules no longer keep.
    pub(super) fn prune(&self) -> rusqlite::Result<u64> {
        let mut deleted = 0;
        if let Some(cutoff) = age_cutoff(&self.retention) {
            deleted += self.conn.execute(&format!("DELETE FROM messages WHERE {TOO_OLD}"), [cutoff])?;
        }
        if let Some(max) = room_limit(&self.retention) {
            deleted += self.conn.execute(&format!("DELETE FROM messages WHERE {OVER_ROOM_LIMIT}"), [max])?;
        }
        if deleted > 0 {
            tracing::info!(deleted, "old history deleted by the retention rules");
        }
        Ok(deleted as u64)
    }
}

/// The messages of a room, over the parameter `:room`.
const ROOM: &str = "room = :room";

/// The private messages between two parties, over the parameters `:me` and `:with`.
const CONVERSATION: &str = "room IS NULL
     AND ((sender_party = :me AND recipient_party = :with) OR (sender_party = :with AND recipient_party = :me))";

/// The messages `max_age` no longer keeps, given [`age_cutoff`] as `?1`.
pub(crate) const TOO_OLD: &str = "at_us < ?1";

/// The room messages `max_per_room` no longer keeps, given [`room_limit`] as `?1`.
pub(crate) const OVER_ROOM_LIMIT: &str =
    "room IS NOT NULL AND seq <= (SELECT last_seq FROM rooms WHERE rooms.name = messages.room) - ?1";

/// The time (in microseconds) before which `max_age` deletes messages, if it is set.
pub(crate) fn age_cutoff(retention: &crate::Retention) -> Option<i64> {
    let max_age = retention.max_age?;
    let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    Some(Utc::now().checked_sub_signed(age).map_or(i64::MIN, micros))
}

/// `max_per_room` as SQLite compares it, if it is set.
pub(crate) fn room_limit(retention: &crate::Retention) -> Option<i64> {
    retention.max_per_room.map(|max| i64::try_from(max).unwrap_or(i64::MAX))
}

impl SqliteStore {
    /// Applies the retention rules now (the writer applies them every ten minutes as it
    /// appends); returns how many messages were deleted.
    pub fn apply_retention(&self) -> Result<u64, StoreError> {
        self.writer().prune().map_err(write_error)
    }

    /// One page, oldest first, of the messages `filter` selects (SQL over the named
    /// parameters in `filter_params`), by seq as `cursor` says, from `since` on and
    /// never past `upto`.
    fn seq_page(
        &self,
        filter: &str,
        filter_params: &[(&str, &dyn rusqlite::ToSql)],
        cursor: Cursor,
        since: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if let Some(halves) = cursor.around_halves(since, limit) {
            let mut page = Vec::new();
            for (half, n) in halves {
                page.extend(self.seq_page(filter, filter_params, half, since, upto, n)?);
            }
            return Ok(page);
        }
        let Some((after, before, newest_first)) = cursor.bounds(since, upto) else { return Ok(Vec::new()) };
        let (after, before) = (seq_value(after), seq_value(before));
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM messages
             WHERE {filter} AND seq > :after AND seq < :before ORDER BY seq {order} LIMIT :limit"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params = filter_params.to_vec();
        params.extend([(":after", &after as &dyn rusqlite::ToSql), (":before", &before), (":limit", &limit)]);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut records = stmt.query_map(params.as_slice(), record)?.collect::<Result<Vec<_>, _>>()?;
            if newest_first {
                records.reverse();
            }
            Ok(records)
        })
    }
}

impl MessageStore for SqliteStore {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        self.writer().append(batch).map_err(write_error)
    }

    fn last_seqs(&self) -> Result<Vec<(RoomName, u64)>, StoreError> {
        self.read(|conn| {
            let mut rooms = conn.prepare("SELECT name, last_seq FROM rooms ORDER BY name")?;
            let listed: Vec<(String, i64)> =
                rooms.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
            Ok(listed
                .into_iter()
                .filter_map(|(name, last)| match RoomName::parse(&name, usize::MAX) {
                    Ok(room) => Some((room, u64::try_from(last).unwrap_or(0))),
                    Err(_) => {
                        tracing::warn!(room = name, "skipping a stored room whose name is no longer valid");
                        None
                    }
                })
                .collect())
        })
    }

    fn recent(&self, room: &RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let page = Page { room: room.clone(), cursor: Cursor::Latest, since, upto: u64::MAX, limit };
        self.page(&page)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        let room = page.room.as_str();
        self.seq_page(ROOM, &[(":room", &room)], page.cursor, page.since, page.upto, page.limit)
    }

    fn delete(&self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> Result<Deletion, StoreError> {
        self.writer().delete(room, seq, since, author).map_err(write_error)
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = self.read(|conn| {
            conn.query_row("SELECT coalesce(max(seq), 0) FROM messages WHERE room IS NULL", [], |row| row.get(0))
        })?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        // Guests are stored as negative parties; the lowest is the last given.
        let lowest: i64 = self.read(|conn| {
            conn.query_row(
                "SELECT min(coalesce(min(sender_party), 0), coalesce(min(recipient_party), 0)) FROM messages",
                [],
                |row| row.get(0),
            )
        })?;
        Ok(lowest.unsigned_abs())
    }

    fn seq_at(&self, timeline: &Timeline, since: u64, at: Timestamp) -> Result<u64, StoreError> {
        let (since, at) = (seq_value(since), micros(at));
        let (room, me, with);
        let (filter, mut params): (&str, Vec<(&str, &dyn rusqlite::ToSql)>) = match timeline {
            Timeline::Room(name) => {
                room = name.as_str();
                (ROOM, vec![(":room", &room)])
            }
            Timeline::Conversation { me: a, with: b } => {
                (me, with) = (a.to_i64(), b.to_i64());
                (CONVERSATION, vec![(":me", &me), (":with", &with)])
            }
        };
        params.extend([(":since", &since as &dyn rusqlite::ToSql), (":at", &at)]);
        let sql = format!(
            "SELECT seq FROM messages WHERE {filter} AND seq >= :since AND at_us <= :at ORDER BY seq DESC LIMIT 1"
        );
        let found: Option<i64> =
            self.read(|conn| conn.prepare_cached(&sql)?.query_row(params.as_slice(), |row| row.get(0)).optional())?;
        Ok(found.map_or(0, |seq| u64::try_from(seq).unwrap_or(0)))
    }

    fn activity(
        &self,
        rooms: &[(RoomName, u64)],
        party: Party,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let (from, to, me) = (micros(from), micros(to), party.to_i64());
        self.read(|conn| {
            let mut found = Vec::new();
            let mut room_latest = conn.prepare_cached(
                "SELECT max(at_us) FROM messages WHERE room = ?1 AND seq >= ?2 AND at_us > ?3 AND at_us < ?4",
            )?;
            for (room, since) in rooms {
                let latest: Option<i64> =
                    room_latest.query_row(params![room.as_str(), seq_value(*since), from, to], |row| row.get(0))?;
                if let Some(at) = latest.and_then(DateTime::from_timestamp_micros) {
                    found.push(Activity { room: Some(room.clone()), with: None, at });
                }
            }
            // Each conversation's latest message in the window, with the other party's
            // nick as that message gives it.
            let mut talks = conn.prepare_cached(
                "SELECT other, at_us, nick FROM (
                     SELECT CASE WHEN sender_party = ?1 THEN recipient_party ELSE sender_party END AS other,
                            at_us,
                            CASE WHEN sender_party = ?1 THEN recipient ELSE sender END AS nick,
                            row_number() OVER (
                                PARTITION BY CASE WHEN sender_party = ?1 THEN recipient_party ELSE sender_party END
                                ORDER BY seq DESC) AS n
                     FROM messages
                     WHERE room IS NULL AND (sender_party = ?1 OR recipient_party = ?1) AND at_us > ?2 AND at_us < ?3
                 ) WHERE n = 1 AND other != 0",
            )?;
            let rows = talks.query_map(params![me, from, to], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, Option<String>>(2)?))
            })?;
            for row in rows {
                let (other, at_us, nick) = row?;
                let nick = nick.and_then(|n| Nick::parse(&n, usize::MAX).ok());
                if let (Some(at), Some(nick)) = (DateTime::from_timestamp_micros(at_us), nick) {
                    found.push(Activity {
                        room: None,
                        with: Some((Party::from_i64(other).unwrap_or(party), nick)),
                        at,
                    });
                }
            }
            found.sort_by_key(|a| a.at);
            Ok(found.split_off(found.len().saturating_sub(limit)))
        })
    }

    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (me, with) = (me.to_i64(), with.to_i64());
        self.seq_page(CONVERSATION, &[(":me", &me), (":with", &with)], cursor, 0, upto, limit)
    }
}
