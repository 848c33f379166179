//! Resume tokens: their hashes, whose they are, and when they were last used.

use chrono::DateTime;
use parley_hub::{Account, AccountId, SessionToken, StoreError, Timestamp, TokenStore, TokenUse};
use rusqlite::{params, OptionalExtension, Row};

use super::{micros, nick_or_corrupt, write_error, SqliteStore};

/// A token's last use is written again only when it is older than this, so that a page
/// of thumbnails does not write once per image.
const TOUCH_EVERY_US: i64 = 60_000_000;

const COLUMNS: &str = "t.id, t.account, t.created_us, t.used_us, t.description";

fn token(row: &Row<'_>) -> rusqlite::Result<SessionToken> {
    let time = |us: i64| DateTime::from_timestamp_micros(us).unwrap_or_default();
    Ok(SessionToken {
        id: u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
        account: AccountId(row.get(1)?),
        created: time(row.get(2)?),
        last_used: time(row.get(3)?),
        description: row.get(4)?,
    })
}

impl TokenStore for SqliteStore {
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: Timestamp,
        keep: usize,
        unused_since: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction().map_err(write_error)?;
        let inserted = tx
            .execute(
                "INSERT INTO session_tokens (account, hash, created_us, used_us, description)
                 SELECT ?1, ?2, ?3, ?3, ?4 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)",
                params![account.0, hash, micros(at), description],
            )
            .map_err(write_error)?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        tx.execute(
            "DELETE FROM session_tokens WHERE account = ?1 AND (used_us < ?2 OR id NOT IN
                (SELECT id FROM session_tokens WHERE account = ?1 ORDER BY id DESC LIMIT ?3))",
            params![account.0, micros(unused_since), keep],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)?;
        Ok(u64::try_from(id).ok())
    }

    fn use_token(&self, hash: &[u8], at: Timestamp, unused_since: Timestamp) -> Result<Option<TokenUse>, StoreError> {
        let found = self.read(|conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS}, a.name, EXISTS (SELECT 1 FROM roles r WHERE r.account = a.id AND r.role = 'admin')
                     FROM session_tokens t JOIN accounts a ON a.id = t.account WHERE t.hash = ?1"
                ),
                [hash],
                |row| Ok((token(row)?, nick_or_corrupt(&row.get::<_, String>(5)?)?, row.get::<_, bool>(6)?)),
            )
            .optional()
        })?;
        let Some((mut token, name, admin)) = found else {
            return Ok(None);
        };
        let id = i64::try_from(token.id).unwrap_or(i64::MAX);
        if micros(token.last_used) < micros(unused_since) {
            self.writer().conn.execute("DELETE FROM session_tokens WHERE id = ?1", [id]).map_err(write_error)?;
            return Ok(None);
        }
        if micros(at) - micros(token.last_used) >= TOUCH_EVERY_US {
            // Revoked meanwhile: then it is not valid either.
            let touched = self
                .writer()
                .conn
                .execute("UPDATE session_tokens SET used_us = ?2 WHERE id = ?1", params![id, micros(at)])
                .map_err(write_error)?;
            if touched == 0 {
                return Ok(None);
            }
            token.last_used = at;
        }
        let account = Account { id: token.account, name };
        Ok(Some(TokenUse { token, account, admin }))
    }

    fn tokens(&self, account: AccountId) -> Result<Vec<SessionToken>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM session_tokens t WHERE t.account = ?1 ORDER BY t.used_us DESC, t.id DESC"
            ))?;
            let rows = stmt.query_map([account.0], token)?;
            rows.collect()
        })
    }

    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let deleted = self
            .writer()
            .conn
            .execute("DELETE FROM session_tokens WHERE account = ?1 AND id = ?2", params![account.0, id])
            .map_err(write_error)?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::tests::TempDir;
    use crate::Retention;
    use chrono::Utc;
    use parley_hub::{AccountStore as _, Nick};

    #[test]
    fn a_token_is_found_by_its_hash_touched_and_expires() {
        let dir = TempDir::new("tokens");
        let store = SqliteStore::open(&dir.0, Retention::default()).expect("opens");
        let ada = store.register(&Nick::parse("ada", 32).expect("nick"), "a good password").expect("registers");
        let ada = ada.expect("new");
        let now = Utc::now();
        let long_ago = now - chrono::Duration::days(60);
        let id = store.issue_token(ada.id, b"h1", "native 127.0.0.1", long_ago, 50, long_ago).expect("kept");
        let id = id.expect("an account");
        assert!(store.use_token(b"h2", now, long_ago).expect("reads").is_none());
        let used = store.use_token(b"h1", now, long_ago).expect("reads").expect("found");
        assert_eq!((used.token.id, used.account.id, used.token.last_used), (id, ada.id, now));
        let later = now + chrono::Duration::days(31);
        let expired = store.use_token(b"h1", later, later - chrono::Duration::days(30)).expect("reads");
        assert!(expired.is_none(), "unused for 31 days");
        assert!(store.tokens(ada.id).expect("reads").is_empty(), "and gone");
    }
}
