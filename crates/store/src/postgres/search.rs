//! Full-text search over the messages' `tsvector`, limited as in the SQLite store to
//! what the searcher may see: each of their rooms from where its visible history
//! begins, and their own private messages.
//!
//! The semantics are SQLite's: every word is required; a word is matched as a phrase of
//! the tokens it holds (`phraseto_tsquery`), so nothing a user types is read as query
//! syntax; case and accents are folded by the `parley_search` configuration; `from:`
//! compares the sender's name key; `before:` and `after:` bound the time. Among the
//! newest [`CANDIDATES`] matches, the best ranked come first (`ts_rank`, as SQLite's
//! `bm25`), then the newest.

use parley_hub::{Party, Record, Search, SearchStore, StoreError};
use tokio_postgres::types::ToSql;

use super::{micros, record, seq_value, PostgresStore, RECORD_COLUMNS};
use crate::sqlite::CANDIDATES;

impl SearchStore for PostgresStore {
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let words: Vec<&str> = search.words.iter().map(String::as_str).filter(|w| !w.trim().is_empty()).collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let me = search.private_of.map(Party::to_i64);
        let from = search.from.as_ref().map(parley_hub::Nick::key);
        let before = search.before.map_or(i64::MAX, micros);
        let after = search.after.map_or(i64::MIN, micros);
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(search.offset).unwrap_or(i64::MAX);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&me, &from, &before, &after, &limit, &offset];
        // Every word, then each room and its first visible seq, as parameters after the
        // six fixed ones.
        let query: Vec<String> =
            (0..words.len()).map(|i| format!("phraseto_tsquery('parley_search', ${})", params.len() + i + 1)).collect();
        let query = query.join(" && ");
        for word in &words {
            params.push(word);
        }
        let rooms: Vec<(String, i64)> = search.rooms.iter().map(|(r, since)| (r.key(), seq_value(*since))).collect();
        let mut visible = Vec::with_capacity(rooms.len());
        for (key, since) in &rooms {
            visible.push(format!("(m.room_key = ${} AND m.seq >= ${})", params.len() + 1, params.len() + 2));
            params.push(key);
            params.push(since);
        }
        let visible = if visible.is_empty() { "false".to_owned() } else { visible.join(" OR ") };
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM (
                 SELECT m.*, ts_rank(m.words, q.query) AS score
                 FROM messages m, (SELECT {query} AS query) q
                 WHERE m.words @@ q.query
                   AND (({visible})
                        OR (m.room_key IS NULL AND $1::bigint IS NOT NULL
                            AND (m.sender_party = $1 OR m.recipient_party = $1)))
                   AND ($2::text IS NULL OR m.sender_key = $2)
                   AND m.at_us < $3 AND m.at_us >= $4
                 ORDER BY m.id DESC
                 LIMIT {CANDIDATES}
             ) found
             ORDER BY score DESC, id DESC
             LIMIT $5 OFFSET $6"
        );
        let mut reader = self.reader();
        self.read(async {
            let rows = reader.client().await?.query(&sql, &params).await?;
            rows.iter().map(record).collect()
        })
    }
}
