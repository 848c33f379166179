//! Messages: the journal's batched appends (one statement per batch, whatever its
//! size), retention on the same writer, room pages and private conversations.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use parley_hub::{
    Activity, Cursor, Deletion, MessageStore, Nick, Page, Party, Record, RoomName, StoreError, Timeline, Timestamp,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::{get, micros, record, room_or_corrupt, seq_value, Failure, PostgresStore, RECORD_COLUMNS};
use crate::sqlite::PRUNE_EVERY;
use crate::ExportError;

/// A batch as columns, for one `INSERT ... SELECT FROM unnest(...)`.
#[derive(Default)]
struct Columns<'a> {
    room: Vec<Option<&'a str>>,
    room_key: Vec<Option<String>>,
    seq: Vec<i64>,
    sender: Vec<&'a str>,
    sender_key: Vec<String>,
    sender_party: Vec<i64>,
    recipient: Vec<Option<&'a str>>,
    recipient_party: Vec<i64>,
    at_us: Vec<i64>,
    content_type: Vec<&'static str>,
    body: Vec<&'a str>,
    meta: Vec<Option<String>>,
    sender_host: Vec<Option<String>>,
}

/// Inserts a batch of messages, given as arrays of their columns.
const INSERT: &str = "INSERT INTO messages
        (room, room_key, seq, sender, sender_key, sender_party, recipient, recipient_party, at_us,
         content_type, body, meta, sender_host)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                          $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[],
                          $13::text[])";

/// Appends `batch` in one transaction, with each room's last seq. A message already
/// stored (the same room and seq; a private one: the same seq) refuses the batch, or,
/// `shared` by the nodes of a cluster, is left as it is.
pub(super) async fn append(client: &mut Client, batch: &[Arc<Record>], shared: bool) -> Result<(), Failure> {
    let mut c = Columns::default();
    // Each room's last seq once per batch, not once per message.
    let mut last: Vec<(&str, String, i64)> = Vec::new();
    for r in batch {
        let room = r.room.as_ref();
        let seq = seq_value(r.seq);
        c.room.push(room.map(RoomName::as_str));
        c.room_key.push(room.map(RoomName::key));
        c.seq.push(seq);
        c.sender.push(r.from.as_str());
        c.sender_key.push(r.from.key());
        c.sender_party.push(r.sender.map_or(0, Party::to_i64));
        c.recipient.push(r.to.as_ref().map(Nick::as_str));
        c.recipient_party.push(r.recipient.map_or(0, Party::to_i64));
        c.at_us.push(micros(r.at));
        c.content_type.push(r.kind.content_type());
        c.body.push(&r.text);
        c.meta.push(crate::meta::encode(r.meta.as_deref()));
        c.sender_host.push(r.userhost.as_deref().map(|u| format!("{}@{}", u.user, u.host)));
        if let Some(room) = room {
            let key = room.key();
            match last.iter_mut().find(|(_, k, _)| *k == key) {
                Some(entry) => entry.2 = entry.2.max(seq),
                None => last.push((room.as_str(), key, seq)),
            }
        }
    }
    let tx = client.transaction().await?;
    // Every node of a cluster writes every message: what is stored already is skipped.
    let insert =
        if shared { format!("{INSERT} ON CONFLICT DO NOTHING").into() } else { std::borrow::Cow::Borrowed(INSERT) };
    tx.execute(
        &*insert,
        &[
            &c.room,
            &c.room_key,
            &c.seq,
            &c.sender,
            &c.sender_key,
            &c.sender_party,
            &c.recipient,
            &c.recipient_party,
            &c.at_us,
            &c.content_type,
            &c.body,
            &c.meta,
            &c.sender_host,
        ],
    )
    .await?;
    if !last.is_empty() {
        let names: Vec<&str> = last.iter().map(|(name, _, _)| *name).collect();
        let keys: Vec<&str> = last.iter().map(|(_, key, _)| key.as_str()).collect();
        let seqs: Vec<i64> = last.iter().map(|(_, _, seq)| *seq).collect();
        tx.execute(
            "INSERT INTO rooms (key, name, last_seq)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
             ON CONFLICT (key) DO UPDATE SET last_seq = greatest(rooms.last_seq, excluded.last_seq)",
            &[&keys, &names, &seqs],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes what the retention rules no longer keep.
pub(super) async fn prune(client: &Client, retention: &crate::Retention) -> Result<u64, Failure> {
    let mut deleted = 0;
    if let Some(max_age) = retention.max_age {
        let age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now().checked_sub_signed(age).map_or(i64::MIN, micros);
        deleted += client.execute("DELETE FROM messages WHERE at_us < $1", &[&cutoff]).await?;
    }
    if let Some(max) = retention.max_per_room {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        deleted += client
            .execute(
                "DELETE FROM messages m USING rooms r
                 WHERE m.room_key = r.key AND m.seq <= r.last_seq - $1",
                &[&max],
            )
            .await?;
    }
    if deleted > 0 {
        tracing::info!(deleted, "old history deleted by the retention rules");
    }
    Ok(deleted)
}

impl PostgresStore {
    /// Calls `each` with every message of `room` since `since`, oldest first, reading in
    /// pages so that memory stays flat however long the history (as
    /// [`crate::SqliteStore::export`]).
    pub fn export(
        &self,
        room: &str,
        since: Option<DateTime<Utc>>,
        mut each: impl FnMut(&Record) -> std::io::Result<()>,
    ) -> Result<u64, ExportError> {
        const PAGE: i64 = 1000;
        let key = RoomName::parse(room, usize::MAX).map_or_else(|_| room.to_ascii_lowercase(), |r| r.key());
        let since_us = since.map_or(i64::MIN, micros);
        let read_error = |e: StoreError| ExportError::Read(e.to_string());
        let mut reader = self.reader();
        let known = self
            .read(async {
                Ok(reader.client().await?.query_opt("SELECT name FROM rooms WHERE key = $1", &[&key]).await?.is_some())
            })
            .map_err(read_error)?;
        if !known {
            return Err(ExportError::NoSuchRoom(room.to_owned()));
        }
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM messages
             WHERE room_key = $1 AND seq > $2 AND at_us >= $3 ORDER BY seq LIMIT $4"
        );
        let (mut after, mut written) = (0i64, 0);
        loop {
            let page = self
                .read(async {
                    let rows = reader.client().await?.query(&sql, &[&key, &after, &since_us, &PAGE]).await?;
                    rows.iter().map(record).collect::<Result<Vec<_>, _>>()
                })
                .map_err(read_error)?;
            let Some(last) = page.last() else {
                return Ok(written);
            };
            after = seq_value(last.seq);
            for message in &page {
                each(message).map_err(ExportError::Write)?;
                written += 1;
            }
        }
    }

    /// Applies the retention rules now (the writer applies them every ten minutes as it
    /// appends); returns how many messages were deleted.
    pub fn apply_retention(&self) -> Result<u64, StoreError> {
        let mut writer = self.writer();
        self.write(async {
            let retention = writer.retention.clone();
            let client = writer.connect(self).await?;
            prune(client, &retention).await
        })
    }

    /// One page, oldest first, of the messages `filter` selects (SQL over the
    /// parameters `$4` on, in `filter_params`), by seq as `cursor` says, from `since` on
    /// and never past `upto`.
    fn seq_page(
        &self,
        filter: &str,
        filter_params: &[&(dyn ToSql + Sync)],
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
             WHERE {filter} AND seq > $1 AND seq < $2 ORDER BY seq {order} LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&after, &before, &limit];
        params.extend_from_slice(filter_params);
        let mut reader = self.reader();
        self.read(async {
            let rows = reader.client().await?.query(&sql, &params).await?;
            let mut records = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            if newest_first {
                records.reverse();
            }
            Ok(records)
        })
    }
}

impl MessageStore for PostgresStore {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        let mut writer = self.writer();
        self.write(async {
            append(writer.connect(self).await?, batch, self.shared).await?;
            if writer.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                writer.last_prune = Some(Instant::now());
                let retention = writer.retention.clone();
                if let Err(e) = prune(writer.connect(self).await?, &retention).await {
                    tracing::warn!("applying the history retention rules failed: {e}");
                }
            }
            Ok(())
        })
    }

    fn last_seqs(&self) -> Result<Vec<(RoomName, u64)>, StoreError> {
        let mut reader = self.reader();
        self.read(async {
            let rows = reader.client().await?.query("SELECT name, last_seq FROM rooms ORDER BY key", &[]).await?;
            let mut rooms = Vec::with_capacity(rows.len());
            for row in &rows {
                let name: &str = get(row, 0)?;
                let last: i64 = get(row, 1)?;
                match room_or_corrupt(name) {
                    Ok(room) => rooms.push((room, u64::try_from(last).unwrap_or(0))),
                    Err(_) => tracing::warn!(room = name, "skipping a stored room whose name is no longer valid"),
                }
            }
            Ok(rooms)
        })
    }

    fn recent(&self, room: &RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let page = Page { room: room.clone(), cursor: Cursor::Latest, since, upto: u64::MAX, limit };
        self.page(&page)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        let key = page.room.key();
        self.seq_page("room_key = $4", &[&key], page.cursor, page.since, page.upto, page.limit)
    }

    fn delete(&self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> Result<Deletion, StoreError> {
        // The check and the deletion in one transaction; the search index is the row's
        // own column, so it goes with it, and `rooms.last_seq` keeps the order.
        let (key, seq, since) = (room.key(), seq_value(seq), seq_value(since));
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            let found = tx
                .query_opt(
                    &format!(
                        "SELECT {RECORD_COLUMNS} FROM messages WHERE room_key = $1 AND seq = $2 AND seq >= $3 FOR UPDATE"
                    ),
                    &[&key, &seq, &since],
                )
                .await?;
            let outcome = match found.as_ref().map(record).transpose()? {
                None => Deletion::NoSuchMessage,
                Some(found) if author.is_some() && found.sender != author => Deletion::NotAuthor,
                Some(found) => {
                    tx.execute("DELETE FROM messages WHERE room_key = $1 AND seq = $2", &[&key, &seq]).await?;
                    Deletion::Deleted(Box::new(found))
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
    }

    fn seq_at(&self, timeline: &Timeline, since: u64, at: Timestamp) -> Result<u64, StoreError> {
        let (since, at) = (seq_value(since), micros(at));
        let (key, me, with);
        let (filter, params): (&str, Vec<&(dyn ToSql + Sync)>) = match timeline {
            Timeline::Room(room) => {
                key = room.key();
                ("room_key = $3", vec![&since, &at, &key])
            }
            Timeline::Conversation { me: a, with: b } => {
                (me, with) = (a.to_i64(), b.to_i64());
                (
                    "room_key IS NULL
                     AND ((sender_party = $3 AND recipient_party = $4) OR (sender_party = $4 AND recipient_party = $3))",
                    vec![&since, &at, &me, &with],
                )
            }
        };
        let sql =
            format!("SELECT seq FROM messages WHERE {filter} AND seq >= $1 AND at_us <= $2 ORDER BY seq DESC LIMIT 1");
        let mut reader = self.reader();
        let found: Option<i64> = self.read(async {
            let row = reader.client().await?.query_opt(&sql, &params).await?;
            row.as_ref().map(|row| get(row, 0)).transpose()
        })?;
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
        let mut reader = self.reader();
        self.read(async {
            let client = reader.client().await?;
            let mut found = Vec::new();
            for (room, since) in rooms {
                let (key, since) = (room.key(), seq_value(*since));
                let row = client
                    .query_one(
                        "SELECT max(at_us) FROM messages WHERE room_key = $1 AND seq >= $2 AND at_us > $3 AND at_us < $4",
                        &[&key, &since, &from, &to],
                    )
                    .await?;
                let latest: Option<i64> = get(&row, 0)?;
                if let Some(at) = latest.and_then(DateTime::from_timestamp_micros) {
                    found.push(Activity { room: Some(room.clone()), with: None, at });
                }
            }
            // Each conversation's latest message in the window, with the other party's
            // nick as that message gives it.
            let rows = client
                .query(
                    "SELECT DISTINCT ON (other) other, at_us, nick FROM (
                         SELECT CASE WHEN sender_party = $1 THEN recipient_party ELSE sender_party END AS other,
                                seq, at_us,
                                CASE WHEN sender_party = $1 THEN recipient ELSE sender END AS nick
                         FROM messages
                         WHERE room_key IS NULL AND (sender_party = $1 OR recipient_party = $1)
                           AND at_us > $2 AND at_us < $3
                     ) talks WHERE other <> 0 ORDER BY other, seq DESC",
                    &[&me, &from, &to],
                )
                .await?;
            for row in &rows {
                let (other, at_us, nick): (i64, i64, Option<&str>) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
                let nick = nick.and_then(|n| Nick::parse(n, usize::MAX).ok());
                if let (Some(at), Some(nick), Some(other)) =
                    (DateTime::from_timestamp_micros(at_us), nick, Party::from_i64(other))
                {
                    found.push(Activity { room: None, with: Some((other, nick)), at });
                }
            }
            found.sort_by_key(|a| a.at);
            Ok(found.split_off(found.len().saturating_sub(limit)))
        })
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        let mut reader = self.reader();
        let last: i64 = self.read(async {
            let row = reader
                .client()
                .await?
                .query_one("SELECT coalesce(max(seq), 0) FROM messages WHERE room_key IS NULL", &[])
                .await?;
            get(&row, 0)
        })?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        // Guests are stored as negative parties; the lowest is the last given.
        let mut reader = self.reader();
        let lowest: i64 = self.read(async {
            let row = reader
                .client()
                .await?
                .query_one(
                    "SELECT least(coalesce(min(sender_party), 0), coalesce(min(recipient_party), 0)) FROM messages",
                    &[],
                )
                .await?;
            get(&row, 0)
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
            "room_key IS NULL
             AND ((sender_party = $4 AND recipient_party = $5) OR (sender_party = $5 AND recipient_party = $4))",
            &[&me, &with],
            cursor,
            0,
            upto,
            limit,
        )
    }
}
