//! Accounts, as in the SQLite store: stable ids never reused (an identity column), unique
//! keys (a unique constraint, so of two nodes registering one name exactly one wins),
//! argon2id hashes; deleting one takes everything that gave it power or held its private
//! words, in one transaction.

use chrono::Utc;
use parley_hub::{Account, AccountId, AccountStore, Nick, Party, ReadMarker, StoreError, Timestamp, Verdict};

use super::{get, micros, nick_or_corrupt, time, PostgresStore};
use crate::password;
use crate::AccountEntry;

impl PostgresStore {
    /// Every account, by name, with its role.
    pub fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        let mut reader = self.reader();
        self.read(async {
            let rows = reader
                .client()
                .await?
                .query(
                    "SELECT id, name, created_us,
                            EXISTS (SELECT 1 FROM roles WHERE account = id AND role = 'admin')
                     FROM accounts ORDER BY key",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(AccountEntry {
                        account: Account { id: AccountId(get(row, 0)?), name: nick_or_corrupt(get(row, 1)?)? },
                        created: time(get(row, 2)?),
                        admin: get(row, 3)?,
                    })
                })
                .collect()
        })
    }

    /// The account called `name`, if there is one.
    pub fn account_named(&self, name: &Nick) -> Result<Option<Account>, StoreError> {
        let key = name.key();
        let mut reader = self.reader();
        self.read(async {
            let row = reader.client().await?.query_opt("SELECT id, name FROM accounts WHERE key = $1", &[&key]).await?;
            row.map(|row| Ok(Account { id: AccountId(get(&row, 0)?), name: nick_or_corrupt(get(&row, 1)?)? }))
                .transpose()
        })
    }

    /// Gives or takes the server-admin role, recording it in the audit log; false when
    /// nothing changed.
    pub fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError> {
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            let changed = if admin {
                tx.execute(
                    "INSERT INTO roles (account, role) VALUES ($1, 'admin') ON CONFLICT DO NOTHING",
                    &[&account.id.0],
                )
                .await?
            } else {
                tx.execute("DELETE FROM roles WHERE account = $1 AND role = 'admin'", &[&account.id.0]).await?
            };
            if changed > 0 {
                let action = if admin { "grant admin" } else { "revoke admin" };
                tx.execute(
                    "INSERT INTO audit (at_us, actor, action, target) VALUES ($1, 'parley admin', $2, $3)",
                    &[&micros(Utc::now()), &action, &account.name.as_str()],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(changed > 0)
        })
    }
}

impl AccountStore for PostgresStore {
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(self.list_accounts()?.into_iter().map(|entry| entry.account).collect())
    }

    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError> {
        // Hashed before the writer is locked: hashing is slow on purpose, and the
        // journal must not wait for it.
        let hash = password::hash(password).map_err(StoreError::Write)?;
        let key = name.key();
        let mut writer = self.writer();
        self.write(async {
            let row = writer
                .connect(self)
                .await?
                .query_opt(
                    "INSERT INTO accounts (name, key, password_hash, created_us) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (key) DO NOTHING RETURNING id",
                    &[&name.as_str(), &key, &hash, &micros(Utc::now())],
                )
                .await?;
            row.map(|row| Ok(Account { id: AccountId(get(&row, 0)?), name: name.clone() })).transpose()
        })
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        let key = name.key();
        let mut reader = self.reader();
        let stored: Option<(i64, String, String, bool)> = self.read(async {
            let row = reader
                .client()
                .await?
                .query_opt(
                    "SELECT id, name, password_hash,
                            EXISTS (SELECT 1 FROM roles WHERE account = id AND role = 'admin')
                     FROM accounts WHERE key = $1",
                    &[&key],
                )
                .await?;
            row.map(|row| Ok((get(&row, 0)?, get(&row, 1)?, get(&row, 2)?, get(&row, 3)?))).transpose()
        })?;
        drop(reader);
        Ok(match stored {
            None => {
                // As slow as a wrong password, so timing does not tell which names exist.
                password::matches(password, password::DUMMY);
                Verdict::NoAccount
            }
            Some((_, _, hash, _)) if !password::matches(password, &hash) => Verdict::Wrong,
            Some((id, account, _, admin)) => {
                let name = Nick::parse(&account, usize::MAX).unwrap_or_else(|_| name.clone());
                Verdict::Right { account: Account { id: AccountId(id), name }, admin }
            }
        })
    }

    fn verify_id(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        let mut reader = self.reader();
        let hash: Option<String> = self.read(async {
            let row =
                reader.client().await?.query_opt("SELECT password_hash FROM accounts WHERE id = $1", &[&id.0]).await?;
            row.map(|row| get(&row, 0)).transpose()
        })?;
        drop(reader);
        Ok(hash.is_some_and(|hash| password::matches(password, &hash)))
    }

    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        let hash = password::hash(password).map_err(StoreError::Write)?;
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            let updated = tx.execute("UPDATE accounts SET password_hash = $2 WHERE id = $1", &[&id.0, &hash]).await?;
            // Whoever knew the old password may hold a token: none survives the change.
            tx.execute("DELETE FROM session_tokens WHERE account = $1", &[&id.0]).await?;
            tx.commit().await?;
            Ok(updated > 0)
        })
    }

    fn read_markers(&self) -> Result<Vec<ReadMarker>, StoreError> {
        let mut reader = self.reader();
        self.read(async {
            let rows = reader.client().await?.query("SELECT account, target, at_us FROM read_markers", &[]).await?;
            let mut markers = Vec::with_capacity(rows.len());
            for row in &rows {
                let (account, target, at_us): (i64, String, i64) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
                match chrono::DateTime::from_timestamp_micros(at_us) {
                    Some(at) => markers.push(ReadMarker { account: AccountId(account), target, at }),
                    None => tracing::warn!(account, target, "skipping a read marker with a bad time {at_us}"),
                }
            }
            Ok(markers)
        })
    }

    fn mark_read(&self, account: AccountId, target: &str, at: Timestamp) -> Result<(), StoreError> {
        let mut writer = self.writer();
        self.write(async {
            writer
                .connect(self)
                .await?
                .execute(
                    "INSERT INTO read_markers (account, target, at_us) VALUES ($1, $2, $3)
                     ON CONFLICT (account, target) DO UPDATE SET at_us = greatest(read_markers.at_us, excluded.at_us)",
                    &[&account.0, &target, &micros(at)],
                )
                .await?;
            Ok(())
        })
    }

    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError> {
        let party = Party::Account(id).to_i64();
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            let name = tx.query_opt("SELECT name FROM accounts WHERE id = $1 FOR UPDATE", &[&id.0]).await?;
            let Some(name) = name else {
                return Ok(false);
            };
            let name: String = get(&name, 0)?;
            let founded = "SELECT key FROM registered_rooms WHERE founder = $1";
            let statements = [
                "DELETE FROM roles WHERE account = $1".to_owned(),
                "DELETE FROM read_markers WHERE account = $1".to_owned(),
                "DELETE FROM session_tokens WHERE account = $1".to_owned(),
                format!("DELETE FROM room_ops WHERE account = $1 OR room IN ({founded})"),
                format!("DELETE FROM restrictions WHERE room IN ({founded})"),
                format!("DELETE FROM topics WHERE room IN ({founded})"),
                "DELETE FROM registered_rooms WHERE founder = $1".to_owned(),
                "DELETE FROM messages WHERE room_key IS NULL AND (sender_party = $1 OR recipient_party = $1)"
                    .to_owned(),
                "DELETE FROM accounts WHERE id = $1".to_owned(),
            ];
            for sql in &statements {
                let value = if sql.contains("sender_party") { party } else { id.0 };
                tx.execute(sql.as_str(), &[&value]).await?;
            }
            tx.execute(
                "INSERT INTO audit (at_us, actor, action, target) VALUES ($1, $2, 'delete account', $3)",
                &[&micros(Utc::now()), &actor, &name],
            )
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
