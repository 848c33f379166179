//! The hub's store as the server keeps it: the database (SQLite or PostgreSQL), with the
//! file store beside it, so that deleting an account (by `/unregister`) also deletes the
//! files it shared or was sent. Every other call goes straight to the database.

use std::sync::Arc;

use parley_hub::{
    Account, AccountId, AccountStore, Activity, AuditLine, Change, Cursor, Deletion, Kind, MessageStore, Moderation,
    ModerationStore, Nick, Page, Party, ReadMarker, Record, RoomName, Search, SearchStore, SessionToken, Store,
    StoreError, Timeline, Timestamp, TokenStore, TokenUse, Verdict,
};

use crate::files::FileStore;

/// The database, and the files that belong to its accounts.
pub(crate) struct Kept {
    pub(crate) db: Box<dyn Store>,
    pub(crate) files: Option<Arc<FileStore>>,
}

impl MessageStore for Kept {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        self.db.append(batch)
    }

    fn last_seqs(&self) -> Result<Vec<(RoomName, u64)>, StoreError> {
        self.db.last_seqs()
    }

    fn recent(&self, room: &RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.db.recent(room, since, limit)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        self.db.page(page)
    }

    /// A deleted file's message takes its share along: nobody downloads what its
    /// author or an operator took back.
    fn delete(&self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> Result<Deletion, StoreError> {
        let deletion = self.db.delete(room, seq, since, author)?;
        if let (Deletion::Deleted(record), Some(files)) = (&deletion, &self.files) {
            if record.kind == Kind::File {
                if let Some(info) = parley_proto::msg::FileInfo::from_text(&record.text) {
                    // The message is gone either way; a share left behind is unreachable
                    // from history, and its owner can ask an admin.
                    if let Err(e) = files.forget_share(&info.file) {
                        tracing::warn!(file = info.file, "deleting a deleted message's file failed: {e}");
                    }
                }
            }
        }
        Ok(deletion)
    }

    fn seq_at(&self, timeline: &Timeline, since: u64, at: Timestamp) -> Result<u64, StoreError> {
        self.db.seq_at(timeline, since, at)
    }

    fn activity(
        &self,
        rooms: &[(RoomName, u64)],
        party: Party,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        self.db.activity(rooms, party, from, to, limit)
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        self.db.last_private_seq()
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        self.db.last_guest()
    }

    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.db.conversation(me, with, cursor, upto, limit)
    }
}

impl SearchStore for Kept {
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        self.db.search(search)
    }
}

impl AccountStore for Kept {
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.db.accounts()
    }

    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError> {
        self.db.register(name, password)
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        self.db.verify(name, password)
    }

    fn verify_id(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        self.db.verify_id(id, password)
    }

    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        self.db.set_password(id, password)
    }

    fn read_markers(&self) -> Result<Vec<ReadMarker>, StoreError> {
        self.db.read_markers()
    }

    fn mark_read(&self, account: AccountId, target: &str, at: Timestamp) -> Result<(), StoreError> {
        self.db.mark_read(account, target, at)
    }

    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError> {
        let deleted = self.db.delete_account(id, actor)?;
        if deleted {
            if let Some(files) = &self.files {
                match files.forget_account(id) {
                    Ok(shares) => tracing::info!(account = id.0, shares, "a deleted account's files are deleted"),
                    // The account is gone either way; what is left is unreachable (its
                    // id is never given again) and the next start collects it.
                    Err(e) => tracing::warn!(account = id.0, "deleting a deleted account's files failed: {e}"),
                }
            }
        }
        Ok(deleted)
    }
}

impl TokenStore for Kept {
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: Timestamp,
        keep: usize,
        unused_since: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        self.db.issue_token(account, hash, description, at, keep, unused_since)
    }

    fn use_token(&self, hash: &[u8], at: Timestamp, unused_since: Timestamp) -> Result<Option<TokenUse>, StoreError> {
        self.db.use_token(hash, at, unused_since)
    }

    fn tokens(&self, account: AccountId) -> Result<Vec<SessionToken>, StoreError> {
        self.db.tokens(account)
    }

    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError> {
        self.db.revoke_token(account, id)
    }
}

impl ModerationStore for Kept {
    fn moderation(&self) -> Result<Moderation, StoreError> {
        self.db.moderation()
    }

    fn record(&self, change: &Change) -> Result<(), StoreError> {
        self.db.record(change)
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        self.db.audit(limit)
    }
}
