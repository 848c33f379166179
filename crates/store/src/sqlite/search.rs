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
                        m.body AS body, m.content_type AS content_type, bm25(messages_fts) AS score
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use parley_hub::{AccountId, MessageStore, RoomName};

    use super::super::tests::{said, TempDir};
    use super::super::Retention;
    use super::*;

    #[test]
    fn search_finds_every_word_only_where_the_user_may_look() {
        let dir = TempDir::new("search");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let nick = |n: &str| Nick::parse(n, 32).expect("nick");
        let room = |r: &str| RoomName::parse(r, 32).expect("room");
        let (ada, bob, carol, dave) = (1, 2, 3, 4);
        let mut batch: Vec<Arc<Record>> = vec![
            said("lobby", 1, "The deploy went fine"),
            said("lobby", 2, "no deploy today, the café is closed"),
            said("ops", 1, "deploy failed: disk full"),
            said("lobby", 3, "unrelated chatter"),
            said("ops", 2, "a later deploy in a new life"),
        ];
        let whisper = |from: (&str, i64), to: (&str, i64), text: &str| {
            Arc::new(Record {
                room: None,
                seq: 0,
                from: nick(from.0),
                sender: Some(Party::Account(AccountId(from.1))),
                to: Some(nick(to.0)),
                recipient: Some(Party::Account(AccountId(to.1))),
                ..(*said("x", 0, text)).clone()
            })
        };
        batch.push(whisper(("ada", ada), ("bob", bob), "secret deploy plan"));
        batch.push(whisper(("carol", carol), ("dave", dave), "their deploy secret"));
        store.append(&batch).expect("appends");
        let search = |words: &[&str], rooms: &[(&str, u64)], me: Option<i64>| Search {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            from: None,
            rooms: rooms.iter().map(|(r, since)| (room(r), *since)).collect(),
            private_of: me.map(|id| Party::Account(AccountId(id))),
            before: None,
            after: None,
            limit: 10,
            offset: 0,
        };
        let texts = |s: &Search| -> Vec<String> {
            let mut found: Vec<String> =
                store.search(s).expect("searches").iter().map(|r| r.text.to_string()).collect();
            found.sort();
            found
        };
        assert_eq!(
            texts(&search(&["DEPLOY"], &[("lobby", 0)], None)),
            ["The deploy went fine", "no deploy today, the café is closed"]
        );
        assert_eq!(
            texts(&search(&["deploy", "cafe"], &[("lobby", 0)], None)),
            ["no deploy today, the café is closed"],
            "accents"
        );
        assert_eq!(
            texts(&search(&["deploy"], &[("ops", 2)], Some(bob))),
            ["a later deploy in a new life", "secret deploy plan"],
            "a room from where its reader may see it, and their own private messages"
        );
        assert!(texts(&search(&["deploy"], &[], None)).is_empty(), "no rooms, no party: nothing");
        assert_eq!(texts(&search(&["deploy"], &[], Some(dave))), ["their deploy secret"], "only their own");
        assert!(texts(&search(&["\"deploy", "OR", "*"], &[("lobby", 0)], None)).is_empty(), "syntax is only words");
        let mut from_ada = search(&["deploy"], &[("lobby", 0), ("ops", 0)], Some(bob));
        from_ada.from = Some(nick("ADA"));
        assert_eq!(texts(&from_ada).len(), 5);
        let mut paged = search(&["deploy"], &[("lobby", 0), ("ops", 0)], None);
        paged.limit = 2;
        assert_eq!(store.search(&paged).expect("searches").len(), 2);
        paged.offset = 2;
        assert_eq!(store.search(&paged).expect("searches").len(), 2);
        let mut later = search(&["deploy"], &[("lobby", 0), ("ops", 0)], None);
        later.after = Some(Utc::now() + chrono::Duration::hours(1));
        assert!(texts(&later).is_empty());
    }

    #[test]
    fn from_finds_a_sender_however_their_name_is_cased() {
        let dir = TempDir::new("search-from");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let by = |from: &str, seq: u64| {
            Arc::new(Record { from: Nick::parse(from, 32).expect("nick"), ..(*said("café", seq, "bonjour")).clone() })
        };
        store.append(&[by("José", 1), by("Zoë", 2), by("JOSÉ", 3)]).expect("appends");
        let search = |from: &str| Search {
            words: vec!["bonjour".into()],
            from: Some(Nick::parse(from, 32).expect("nick")),
            rooms: vec![(RoomName::parse("Café", 32).expect("room"), 0)],
            private_of: None,
            before: None,
            after: None,
            limit: 10,
            offset: 0,
        };
        let seqs = |from: &str| {
            let mut seqs: Vec<u64> = store.search(&search(from)).expect("searches").iter().map(|r| r.seq).collect();
            seqs.sort_unstable();
            seqs
        };
        assert_eq!(seqs("josé"), [1, 3]);
        assert_eq!(seqs("ZOË"), [2]);
        assert!(seqs("jose").is_empty(), "an accent is part of the name");
    }

    #[test]
    fn the_index_holds_exactly_what_retention_leaves() {
        let dir = TempDir::new("search-retention");
        let retention = Retention { max_per_room: Some(3), ..Retention::default() };
        let store = SqliteStore::open(&dir.0, retention).expect("opens");
        let batch: Vec<_> = (1..=8).map(|n| said("lobby", n, "x")).collect();
        store.append(&batch).expect("appends");
        let lobby = RoomName::parse("lobby", 32).expect("room");
        let search = Search {
            words: vec!["x".into()],
            from: None,
            rooms: vec![(lobby, 0)],
            private_of: None,
            before: None,
            after: None,
            limit: 50,
            offset: 0,
        };
        assert_eq!(store.search(&search).expect("searches").len(), 3);
        let more: Vec<_> = (9..=12).map(|n| said("lobby", n, "x")).collect();
        store.append(&more).expect("appends");
        store.writer().prune().expect("prunes");
        let mut found = store.search(&search).expect("searches");
        found.sort_by_key(|r| r.seq);
        assert_eq!(found.iter().map(|r| r.seq).collect::<Vec<_>>(), [10, 11, 12]);
    }
}
