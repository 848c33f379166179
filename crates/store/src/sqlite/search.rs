//! Full-text search over SQLite FTS5, limited to what the searcher may see: each of
//! their rooms from where its visible history begins, and their own private messages.

use parley_hub::{Nick, Party, Record, Search, SearchStore, StoreError};

use super::{micros, record, seq_value, write_error, SqliteStore, RECORD_COLUMNS};

/// Search ranks this many of the newest matches (see `search`).
pub(crate) const CANDIDATES: usize = 2000;

/// An FTS5 query requiring every word, each quoted so that nothing a user types is
/// read as query syntax; `None` when there is no word to look for.
fn fts_query(words: &[String]) -> Option<String> {
    let quoted: Vec<String> =
        words.iter().filter(|w| !w.trim().is_empty()).map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
    (!quoted.is_empty()).then(|| quoted.join(" "))
}

impl SearchStore for SqliteStore {
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let Some(matching) = fts_query(&search.words) else {
            return Ok(Vec::new());
        };
        let me = search.private_of.map(Party::to_i64);
        let from = search.from.as_ref().map(Nick::key);
        let before = search.before.map_or(i64::MAX, micros);
        let after = search.after.map_or(i64::MIN, micros);
        let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(search.offset).unwrap_or(i64::MAX);
        // Which messages the user may see: each of their rooms from its first visible
        // seq (two placeholders each, after the seven fixed ones), and their own private
        // messages.
        let rooms: Vec<String> =
            (0..search.rooms.len()).map(|i| format!("(m.room = ?{} AND m.seq >= ?{})", 2 * i + 8, 2 * i + 9)).collect();
        let rooms = if rooms.is_empty() { "0".to_owned() } else { rooms.join(" OR ") };
        // Whatever waits for the index goes in first, so a search sees every message.
        self.writer().index().map_err(write_error)?;
        // Ranked among the newest matches the user may see: FTS5 walks its matches newest
        // first and stops after CANDIDATES, so a common word costs no more than a rare
        // one; then bm25 orders those. In a chat, the newest of many matches are the
        // ones wanted; a narrower query reaches further back.
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM (
                 SELECT m.id AS id, m.room AS room, m.seq AS seq, m.sender AS sender, m.sender_party AS sender_party,
                        m.recipient AS recipient, m.recipient_party AS recipient_party, m.at_us AS at_us,
                        m.body AS body, m.content_type AS content_type, m.meta AS meta, bm25(messages_fts) AS score
                 FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                 WHERE messages_fts MATCH ?1
                   AND (({rooms})
                        OR (m.room IS NULL AND ?2 IS NOT NULL
                            AND (m.sender_party = ?2 OR m.recipient_party = ?2)))
                   AND (?3 IS NULL OR name_key(m.sender) = ?3)
                   AND m.at_us < ?4 AND m.at_us >= ?5
                 ORDER BY messages_fts.rowid DESC
                 LIMIT {CANDIDATES}
             )
             ORDER BY score, id DESC
             LIMIT ?6 OFFSET ?7"
        );
        let names: Vec<(&str, i64)> = search.rooms.iter().map(|(r, since)| (r.as_str(), seq_value(*since))).collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&matching, &me, &from, &before, &after, &limit, &offset];
        for (name, since) in &names {
            values.push(name);
            values.push(since);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(values.as_slice(), record)?;
            rows.collect()
        })
    }
}
