//! Messages: the journal's batched appends (with the search index and retention kept
//! up on the same writer), room pages and private conversations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parley_hub::{Cursor, Deletion, MessageStore, Nick, Page, Party, Record, RoomName, StoreError};
use rusqlite::{params, OptionalExtension};

use super::{micros, record, seq_value, write_error, SqliteStore, Writer, RECORD_COLUMNS};

/// The search index is brought up to date once this many messages wait for it, and
/// before every search.
const INDEX_CHUNK: usize = 1000;

/// How often the writer applies the retention rules.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

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
                    (room, seq, sender, sender_party, recipient, recipient_party, at_us, content_type, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                    &*r.text
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
    pub(super) fn prune(&self) -> rusqlite::Result<()> {
        let mut deleted = 0;
        if let Some(max_age) = self.retention.max_age {
            let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
            let cutoff = Utc::now().checked_sub_signed(age).map_or(i64::MIN, micros);
            deleted += self.conn.execute("DELETE FROM messages WHERE at_us < ?1", [cutoff])?;
        }
        if let Some(max) = self.retention.max_per_room {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            deleted += self.conn.execute(
                "DELETE FROM messages WHERE room IS NOT NULL
                 AND seq <= (SELECT last_seq FROM rooms WHERE rooms.name = messages.room) - ?1",
                [max],
            )?;
        }
        if deleted > 0 {
            tracing::info!(deleted, "old history deleted by the retention rules");
        }
        Ok(())
    }
}

impl SqliteStore {
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
        let end = seq_value(upto).saturating_add(1);
        let first = seq_value(since).saturating_sub(1);
        let (after, before, newest_first) = match cursor {
            Cursor::Latest => (first, end, true),
            Cursor::Before(before) => (first, seq_value(before).min(end), true),
            Cursor::After(after) => (seq_value(after).max(first), end, false),
        };
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
        self.seq_page("room = :room", &[(":room", &room)], page.cursor, page.since, page.upto, page.limit)
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

    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (me, with) = (me.to_i64(), with.to_i64());
        self.seq_page(
            "room IS NULL
             AND ((sender_party = :me AND recipient_party = :with) OR (sender_party = :with AND recipient_party = :me))",
            &[(":me", &me), (":with", &with)],
            cursor,
            0,
            upto,
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{said, seqs, TempDir};
    use super::super::Retention;
    use super::*;
    use parley_hub::{AccountId, GuestId, SearchStore as _};

    fn page(cursor: Cursor, since: u64, upto: u64, limit: usize) -> Page {
        Page { room: RoomName::parse("Lobby", 32).expect("room"), cursor, since, upto, limit }
    }

    #[test]
    fn messages_survive_reopening_and_page_by_seq_from_where_the_reader_may_see() {
        let dir = TempDir::new("reopen");
        {
            let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
            let batch: Vec<_> = (1..=10).map(|n| said("lobby", n, &format!("m{n}"))).collect();
            store.append(&batch).expect("appends");
            let whisper = Record {
                room: None,
                seq: 1,
                to: Some(Nick::parse("bob", 32).expect("nick")),
                sender: Some(Party::Guest(GuestId(7))),
                recipient: Some(Party::Account(AccountId(3))),
                ..(*said("lobby", 0, "psst")).clone()
            };
            store.append(&[Arc::new(whisper)]).expect("appends");
        }
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("reopens");
        let rooms = store.last_seqs().expect("rooms");
        assert_eq!(rooms.len(), 1, "private messages belong to no room");
        assert_eq!((rooms[0].0.as_str(), rooms[0].1), ("lobby", 10));
        let lobby = RoomName::parse("lobby", 32).expect("room");
        assert_eq!(seqs(&store.recent(&lobby, 0, 3).expect("recent")), [8, 9, 10]);
        assert_eq!(seqs(&store.recent(&lobby, 9, 3).expect("recent")), [9, 10], "from since on");
        assert_eq!(seqs(&store.page(&page(Cursor::Latest, 0, 10, 4)).expect("page")), [7, 8, 9, 10]);
        assert_eq!(seqs(&store.page(&page(Cursor::Latest, 0, 8, 2)).expect("page")), [7, 8], "never past upto");
        assert_eq!(seqs(&store.page(&page(Cursor::Before(5), 0, 10, 3)).expect("page")), [2, 3, 4]);
        assert_eq!(seqs(&store.page(&page(Cursor::Before(5), 3, 10, 3)).expect("page")), [3, 4]);
        assert_eq!(seqs(&store.page(&page(Cursor::After(7), 0, 9, 10)).expect("page")), [8, 9]);
        assert_eq!(seqs(&store.page(&page(Cursor::After(1), 6, 9, 2)).expect("page")), [6, 7]);
        assert_eq!(
            seqs(&store.page(&page(Cursor::Before(u64::MAX), u64::MAX, u64::MAX, 5)).expect("page")),
            [] as [u64; 0]
        );
        let duplicate = store.append(&[said("lobby", 10, "again")]);
        assert!(matches!(duplicate, Err(StoreError::Write(_))), "a seq is stored once");
        assert_eq!(store.last_guest().expect("reads"), 7);
        let (guest, account) = (Party::Guest(GuestId(7)), Party::Account(AccountId(3)));
        let talk = store.conversation(account, guest, Cursor::Latest, 10, 10).expect("reads");
        assert_eq!(talk.len(), 1);
        assert_eq!((talk[0].sender, talk[0].recipient), (Some(guest), Some(account)));
        let other = Party::Guest(GuestId(8));
        assert!(store.conversation(account, other, Cursor::Latest, 10, 10).expect("reads").is_empty());
    }

    #[test]
    fn retention_keeps_the_newest_per_room_and_the_order_continues() {
        let dir = TempDir::new("retention");
        let retention = Retention { max_per_room: Some(3), ..Retention::default() };
        let store = SqliteStore::open(&dir.0, retention).expect("opens");
        let batch: Vec<_> = (1..=8).map(|n| said("lobby", n, "x")).collect();
        store.append(&batch).expect("appends");
        let lobby = RoomName::parse("lobby", 32).expect("room");
        assert_eq!(seqs(&store.recent(&lobby, 0, 50).expect("recent")), [6, 7, 8]);
        assert_eq!(store.last_seqs().expect("rooms")[0].1, 8);
        let more: Vec<_> = (9..=12).map(|n| said("lobby", n, "x")).collect();
        store.append(&more).expect("appends");
        store.writer().prune().expect("prunes");
        assert_eq!(seqs(&store.recent(&lobby, 0, 50).expect("recent")), [10, 11, 12]);
    }

    #[test]
    fn a_deleted_message_leaves_pages_and_search_and_its_seq_is_never_given_again() {
        let dir = TempDir::new("delete");
        let lobby = RoomName::parse("lobby", 32).expect("room");
        let (ada, bob) = (Party::Account(AccountId(1)), Party::Guest(GuestId(2)));
        let by = |seq: u64, party: Party, text: &str| {
            Arc::new(Record { sender: Some(party), ..(*said("lobby", seq, text)).clone() })
        };
        {
            let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
            store.append(&[by(1, ada, "hello"), by(2, bob, "secret plans"), by(3, bob, "oops")]).expect("appends");
            // Indexed first, so that the deletion must take it out of the index too.
            store.writer().index().expect("indexes");
            assert_eq!(store.delete(&lobby, 2, 0, Some(ada)).expect("deletes"), Deletion::NotAuthor);
            assert_eq!(store.delete(&lobby, 2, 3, None).expect("deletes"), Deletion::NoSuchMessage, "before since");
            assert_eq!(store.delete(&lobby, 9, 0, None).expect("deletes"), Deletion::NoSuchMessage);
            let Deletion::Deleted(gone) = store.delete(&lobby, 2, 0, Some(bob)).expect("deletes") else {
                panic!("the author deletes their own");
            };
            assert_eq!(&*gone.text, "secret plans");
            assert_eq!(store.delete(&lobby, 2, 0, Some(bob)).expect("deletes"), Deletion::NoSuchMessage, "once");
            assert!(matches!(store.delete(&lobby, 3, 0, None), Ok(Deletion::Deleted(_))), "an operator's");
            let found = store
                .search(&parley_hub::Search {
                    words: vec!["secret".into()],
                    from: None,
                    rooms: vec![(lobby.clone(), 0)],
                    private_of: None,
                    before: None,
                    after: None,
                    limit: 10,
                    offset: 0,
                })
                .expect("searches");
            assert!(found.is_empty(), "search forgets it: {found:?}");
        }
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("reopens");
        assert_eq!(seqs(&store.recent(&lobby, 0, 10).expect("recent")), [1]);
        assert_eq!(store.last_seqs().expect("rooms")[0].1, 3, "the order goes on after the deleted last message");
    }
}
