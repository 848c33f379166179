//! Accounts: stable ids, unique keys, argon2id hashes; deleting one takes everything
//! that gave it power or held its private words, in one transaction.

use chrono::{DateTime, Utc};
use parley_hub::{Account, AccountId, AccountStore, Nick, Party, ReadMarker, StoreError, Timestamp, Verdict};
use rusqlite::{params, OptionalExtension};

use super::{micros, nick_or_corrupt, read_error, write_error, SqliteStore};
use crate::password;

/// A registered account, as `parley admin users list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    /// The account.
    pub account: Account,
    /// When it was registered.
    pub created: DateTime<Utc>,
    /// Whether it is a server administrator.
    pub admin: bool,
}

impl SqliteStore {
    /// Every account, by name, with its role.
    pub fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, created_us, EXISTS (SELECT 1 FROM roles WHERE account = id AND role = 'admin')
                 FROM accounts ORDER BY key",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?, row.get::<_, bool>(3)?))
            })?;
            rows.map(|row| {
                let (id, name, created_us, admin) = row?;
                Ok(AccountEntry {
                    account: Account { id: AccountId(id), name: nick_or_corrupt(&name)? },
                    created: DateTime::from_timestamp_micros(created_us).unwrap_or_default(),
                    admin,
                })
            })
            .collect()
        })
    }

    /// The account called `name`, if there is one.
    pub fn account_named(&self, name: &Nick) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            let found: Option<(i64, String)> = conn
                .query_row("SELECT id, name FROM accounts WHERE key = ?1", [name.key()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            found.map(|(id, name)| Ok(Account { id: AccountId(id), name: nick_or_corrupt(&name)? })).transpose()
        })
    }

    /// Gives or takes the server-admin role, recording it in the audit log; false when
    /// nothing changed.
    pub fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction().map_err(write_error)?;
        let changed = if admin {
            tx.execute("INSERT OR IGNORE INTO roles (account, role) VALUES (?1, 'admin')", [account.id.0])
        } else {
            tx.execute("DELETE FROM roles WHERE account = ?1 AND role = 'admin'", [account.id.0])
        }
        .map_err(write_error)?;
        if changed > 0 {
            let action = if admin { "grant admin" } else { "revoke admin" };
            tx.execute(
                "INSERT INTO audit (at_us, actor, action, target) VALUES (?1, 'parley admin', ?2, ?3)",
                params![micros(Utc::now()), action, account.name.as_str()],
            )
            .map_err(write_error)?;
        }
        tx.commit().map_err(write_error)?;
        Ok(changed > 0)
    }
}

impl AccountStore for SqliteStore {
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(self.list_accounts()?.into_iter().map(|entry| entry.account).collect())
    }

    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError> {
        // Hashed before the writer is locked: hashing is slow on purpose, and the
        // journal must not wait for it.
        let hash = password::hash(password).map_err(StoreError::Write)?;
        let writer = self.writer();
        let inserted = writer
            .conn
            .execute(
                "INSERT INTO accounts (name, key, password_hash, created_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO NOTHING",
                params![name.as_str(), name.key(), hash, micros(Utc::now())],
            )
            .map_err(write_error)?;
        Ok((inserted > 0).then(|| Account { id: AccountId(writer.conn.last_insert_rowid()), name: name.clone() }))
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        let stored: Option<(i64, String, String, bool)> = self.read(|conn| {
            conn.query_row(
                "SELECT id, name, password_hash, EXISTS (SELECT 1 FROM roles WHERE account = id AND role = 'admin')
                 FROM accounts WHERE key = ?1",
                [name.key()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
        })?;
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
        let hash: Option<String> = self.read(|conn| {
            conn.query_row("SELECT password_hash FROM accounts WHERE id = ?1", [id.0], |row| row.get(0)).optional()
        })?;
        Ok(hash.is_some_and(|hash| password::matches(password, &hash)))
    }

    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        let hash = password::hash(password).map_err(StoreError::Write)?;
        let mut writer = self.writer();
        let tx = writer.conn.transaction().map_err(write_error)?;
        let updated = tx
            .execute("UPDATE accounts SET password_hash = ?2 WHERE id = ?1", params![id.0, hash])
            .map_err(write_error)?;
        // Whoever knew the old password may hold a token: none survives the change.
        tx.execute("DELETE FROM session_tokens WHERE account = ?1", [id.0]).map_err(write_error)?;
        tx.commit().map_err(write_error)?;
        Ok(updated > 0)
    }

    fn read_markers(&self) -> Result<Vec<ReadMarker>, StoreError> {
        self.read(|conn| {
            let mut query = conn.prepare("SELECT account, target, at_us FROM read_markers")?;
            let rows = query
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))?;
            let mut markers = Vec::new();
            for row in rows {
                let (account, target, at_us) = row?;
                match DateTime::from_timestamp_micros(at_us) {
                    Some(at) => markers.push(ReadMarker { account: AccountId(account), target, at }),
                    None => tracing::warn!(account, target, "skipping a read marker with a bad time {at_us}"),
                }
            }
            Ok(markers)
        })
    }

    fn mark_read(&self, account: AccountId, target: &str, at: Timestamp) -> Result<(), StoreError> {
        self.writer()
            .conn
            .execute(
                "INSERT INTO read_markers (account, target, at_us) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account, target) DO UPDATE SET at_us = max(at_us, excluded.at_us)",
                params![account.0, target, micros(at)],
            )
            .map(drop)
            .map_err(write_error)
    }

    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction().map_err(write_error)?;
        let name: Option<String> = tx
            .query_row("SELECT name FROM accounts WHERE id = ?1", [id.0], |row| row.get(0))
            .optional()
            .map_err(read_error)?;
        let Some(name) = name else {
            return Ok(false);
        };
        let party = Party::Account(id).to_i64();
        let founded = "SELECT key FROM registered_rooms WHERE founder = ?1";
        let statements = [
            "DELETE FROM roles WHERE account = ?1".to_owned(),
            "DELETE FROM read_markers WHERE account = ?1".to_owned(),
            "DELETE FROM session_tokens WHERE account = ?1".to_owned(),
            format!("DELETE FROM room_ops WHERE account = ?1 OR room IN ({founded})"),
            format!("DELETE FROM restrictions WHERE room IN ({founded})"),
            format!("DELETE FROM topics WHERE room IN ({founded})"),
            "DELETE FROM registered_rooms WHERE founder = ?1".to_owned(),
            "DELETE FROM messages WHERE room IS NULL AND (sender_party = ?1 OR recipient_party = ?1)".to_owned(),
            "DELETE FROM accounts WHERE id = ?1".to_owned(),
        ];
        for sql in &statements {
            let value = if sql.contains("sender_party") { party } else { id.0 };
            tx.execute(sql, [value]).map_err(write_error)?;
        }
        tx.execute(
            "INSERT INTO audit (at_us, actor, action, target) VALUES (?1, ?2, 'delete account', ?3)",
            params![micros(Utc::now()), actor, name],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)?;
        Ok(true)
    }
}
