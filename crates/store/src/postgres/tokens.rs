//! Resume tokens, as in the SQLite store.

use parley_hub::{Account, AccountId, SessionToken, StoreError, Timestamp, TokenStore, TokenUse};
use tokio_postgres::Row;

use super::{get, micros, nick_or_corrupt, time, Failure, PostgresStore};

/// A token's last use is written again only when it is older than this.
const TOUCH_EVERY_US: i64 = 60_000_000;

const COLUMNS: &str = "t.id, t.account, t.created_us, t.used_us, t.description";

fn token(row: &Row) -> Result<SessionToken, Failure> {
    Ok(SessionToken {
        id: u64::try_from(get::<i64>(row, 0)?).unwrap_or(0),
        account: AccountId(get(row, 1)?),
        created: time(get(row, 2)?),
        last_used: time(get(row, 3)?),
        description: get(row, 4)?,
    })
}

impl TokenStore for PostgresStore {
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: Timestamp,
        keep: usize,
        unused_since: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            let row = tx
                .query_opt(
                    "INSERT INTO session_tokens (account, hash, created_us, used_us, description)
                     SELECT $1, $2, $3, $3, $4 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $1) RETURNING id",
                    &[&account.0, &hash, &micros(at), &description],
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let id: i64 = get(&row, 0)?;
            tx.execute(
                "DELETE FROM session_tokens WHERE account = $1 AND (used_us < $2 OR id NOT IN
                    (SELECT id FROM session_tokens WHERE account = $1 ORDER BY id DESC LIMIT $3))",
                &[&account.0, &micros(unused_since), &keep],
            )
            .await?;
            tx.commit().await?;
            Ok(u64::try_from(id).ok())
        })
    }

    fn use_token(&self, hash: &[u8], at: Timestamp, unused_since: Timestamp) -> Result<Option<TokenUse>, StoreError> {
        let mut reader = self.reader();
        let found = self.read(async {
            let row = reader
                .client()
                .await?
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS}, a.name,
                                EXISTS (SELECT 1 FROM roles r WHERE r.account = a.id AND r.role = 'admin')
                         FROM session_tokens t JOIN accounts a ON a.id = t.account WHERE t.hash = $1"
                    ),
                    &[&hash],
                )
                .await?;
            row.map(|row| Ok((token(&row)?, nick_or_corrupt(get(&row, 5)?)?, get::<bool>(&row, 6)?))).transpose()
        })?;
        drop(reader);
        let Some((mut token, name, admin)) = found else {
            return Ok(None);
        };
        let id = i64::try_from(token.id).unwrap_or(i64::MAX);
        if micros(token.last_used) < micros(unused_since) {
            let mut writer = self.writer();
            self.write(async {
                writer.connect(self).await?.execute("DELETE FROM session_tokens WHERE id = $1", &[&id]).await?;
                Ok(())
            })?;
            return Ok(None);
        }
        if micros(at) - micros(token.last_used) >= TOUCH_EVERY_US {
            let mut writer = self.writer();
            let touched = self.write(async {
                let n = writer
                    .connect(self)
                    .await?
                    .execute("UPDATE session_tokens SET used_us = $2 WHERE id = $1", &[&id, &micros(at)])
                    .await?;
                Ok(n)
            })?;
            if touched == 0 {
                return Ok(None);
            }
            token.last_used = at;
        }
        let account = Account { id: token.account, name };
        Ok(Some(TokenUse { token, account, admin }))
    }

    fn tokens(&self, account: AccountId) -> Result<Vec<SessionToken>, StoreError> {
        let mut reader = self.reader();
        self.read(async {
            let rows = reader
                .client()
                .await?
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM session_tokens t WHERE t.account = $1 ORDER BY t.used_us DESC, t.id DESC"
                    ),
                    &[&account.0],
                )
                .await?;
            rows.iter().map(token).collect()
        })
    }

    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError> {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let mut writer = self.writer();
        self.write(async {
            let n = writer
                .connect(self)
                .await?
                .execute("DELETE FROM session_tokens WHERE account = $1 AND id = $2", &[&account.0, &id])
                .await?;
            Ok(n > 0)
        })
    }
}
