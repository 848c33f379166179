//! A [`Store`](crate::Store) in memory: the reference implementation of every store
//! trait, for tests of the hub and of gateways. Simple rather than fast, and it keeps
//! passwords as given (it never touches a disk, and it is not for production).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::event::Timestamp;
use crate::history::{Activity, Cursor, Page, Record, Search, Timeline};
use crate::identity::{Account, AccountId, Party};
use crate::moderation::{AuditLine, Change, Changed, Moderation, RegisteredRoom};
use crate::name::{Nick, RoomName};
use crate::store::{
    AccountStore, Deletion, MessageStore, ModerationStore, ReadMarker, SearchStore, StoreError, TokenStore, Verdict,
};
use crate::tokens::{SessionToken, TokenUse};

#[derive(Default)]
struct Kept {
    messages: Vec<Record>,
    /// Read markers by account and target.
    markers: HashMap<(AccountId, String), Timestamp>,
    /// Each room's last seq, which deleting its last message does not lower.
    last_seqs: HashMap<RoomName, u64>,
    /// Accounts by id, with their passwords.
    accounts: Vec<(Account, String)>,
    next_account: i64,
    admins: Vec<AccountId>,
    rooms: HashMap<RoomName, RegisteredRoom>,
    server_bans: Vec<crate::moderation::ServerBan>,
    audit: Vec<AuditLine>,
    /// Resume tokens, with their hashes.
    tokens: Vec<(SessionToken, Vec<u8>)>,
    next_token: u64,
}

/// Everything the hub keeps, in memory.
#[derive(Default)]
pub struct MemoryStore {
    kept: Mutex<Kept>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message stored, in the order stored.
    #[must_use]
    pub fn messages(&self) -> Vec<Record> {
        self.kept().messages.clone()
    }

    /// Gives or takes the server-admin role, as `parley admin` does.
    pub fn set_admin(&self, id: AccountId, admin: bool) {
        let mut kept = self.kept();
        kept.admins.retain(|a| *a != id);
        if admin {
            kept.admins.push(id);
        }
    }
}

fn page_of(mut records: Vec<Record>, cursor: Cursor, since: u64, upto: u64, limit: usize) -> Vec<Record> {
    records.sort_by_key(|r| r.seq);
    crate::history::page_of(&records, &|r| r.seq, cursor, since, upto, limit)
}

impl Kept {
    /// The messages of `timeline`, in the order stored.
    fn timeline<'a>(&'a self, timeline: &'a Timeline) -> impl Iterator<Item = &'a Record> + 'a {
        self.messages.iter().filter(move |r| match timeline {
            Timeline::Room(room) => r.room.as_ref() == Some(room),
            Timeline::Conversation { me, with } => {
                r.room.is_none()
                    && ((r.sender == Some(*me) && r.recipient == Some(*with))
                        || (r.sender == Some(*with) && r.recipient == Some(*me)))
            }
        })
    }
}

impl MessageStore for MemoryStore {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        let mut kept = self.kept();
        for record in batch {
            if let Some(room) = &record.room {
                let seq = kept.last_seqs.entry(room.clone()).or_default();
                *seq = (*seq).max(record.seq);
            }
            kept.messages.push((**record).clone());
        }
        Ok(())
    }

    fn last_seqs(&self) -> Result<Vec<(RoomName, u64)>, StoreError> {
        let last = self.kept().last_seqs.clone();
        Ok(last.into_iter().collect())
    }

    fn recent(&self, room: &RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        let page = Page { room: room.clone(), cursor: Cursor::Latest, since, upto: u64::MAX, limit };
        self.page(&page)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        let records: Vec<Record> =
            self.kept().messages.iter().filter(|r| r.room.as_ref() == Some(&page.room)).cloned().collect();
        Ok(page_of(records, page.cursor, page.since, page.upto, page.limit))
    }

    fn delete(&self, room: &RoomName, seq: u64, since: u64, author: Option<Party>) -> Result<Deletion, StoreError> {
        let mut kept = self.kept();
        let found = kept.messages.iter().position(|r| r.room.as_ref() == Some(room) && r.seq == seq && seq >= since);
        let Some(index) = found else {
            return Ok(Deletion::NoSuchMessage);
        };
        if author.is_some() && kept.messages[index].sender != author {
            return Ok(Deletion::NotAuthor);
        }
        Ok(Deletion::Deleted(Box::new(kept.messages.remove(index))))
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        Ok(self.kept().messages.iter().filter(|r| r.room.is_none()).map(|r| r.seq).max().unwrap_or(0))
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        let guest = |p: &Option<Party>| match p {
            Some(Party::Guest(g)) => g.0,
            _ => 0,
        };
        Ok(self.kept().messages.iter().map(|r| guest(&r.sender).max(guest(&r.recipient))).max().unwrap_or(0))
    }

    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let timeline = Timeline::Conversation { me, with };
        let records = self.kept().timeline(&timeline).cloned().collect();
        Ok(page_of(records, cursor, 0, upto, limit))
    }

    fn seq_at(&self, timeline: &Timeline, since: u64, at: Timestamp) -> Result<u64, StoreError> {
        let kept = self.kept();
        Ok(kept.timeline(timeline).filter(|r| r.seq >= since && r.at <= at).map(|r| r.seq).max().unwrap_or(0))
    }

    fn activity(
        &self,
        rooms: &[(RoomName, u64)],
        party: Party,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<Activity>, StoreError> {
        let kept = self.kept();
        let mut latest: Vec<Activity> = Vec::new();
        let inside = |r: &Record| r.at > from && r.at < to;
        for (room, since) in rooms {
            let last = kept.messages.iter().filter(|r| r.room.as_ref() == Some(room) && r.seq >= *since && inside(r));
            if let Some(at) = last.map(|r| r.at).max() {
                latest.push(Activity { room: Some(room.clone()), with: None, at });
            }
        }
        let mine = kept.messages.iter().filter(|r| r.room.is_none() && inside(r));
        for record in mine {
            let other = match (record.sender, record.recipient) {
                (Some(s), Some(r)) if s == party => (r, record.to.clone()),
                (Some(s), Some(r)) if r == party => (s, Some(record.from.clone())),
                _ => continue,
            };
            let (other, Some(nick)) = other else { continue };
            match latest.iter_mut().find(|a| a.with.as_ref().is_some_and(|(p, _)| *p == other)) {
                Some(known) if known.at <= record.at => {
                    known.at = record.at;
                    known.with = Some((other, nick));
                }
                Some(_) => {}
                None => latest.push(Activity { room: None, with: Some((other, nick)), at: record.at }),
            }
        }
        latest.sort_by_key(|a| a.at);
        Ok(latest.split_off(latest.len().saturating_sub(limit)))
    }
}

impl SearchStore for MemoryStore {
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        let words: Vec<String> = search.words.iter().map(|w| w.to_lowercase()).collect();
        let visible = |r: &&Record| match &r.room {
            Some(room) => search.rooms.iter().any(|(name, since)| name == room && r.seq >= *since),
            None => search.private_of.is_some_and(|me| r.sender == Some(me) || r.recipient == Some(me)),
        };
        let mut found: Vec<Record> = self
            .kept()
            .messages
            .iter()
            .filter(visible)
            .filter(|r| search.from.as_ref().is_none_or(|from| *from == r.from))
            .filter(|r| search.before.is_none_or(|t| r.at < t) && search.after.is_none_or(|t| r.at >= t))
            .filter(|r| {
                let text = r.text.to_lowercase();
                words.iter().all(|w| text.contains(w.as_str()))
            })
            .cloned()
            .collect();
        found.reverse();
        Ok(found.into_iter().skip(search.offset).take(search.limit).collect())
    }
}

impl AccountStore for MemoryStore {
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(self.kept().accounts.iter().map(|(a, _)| a.clone()).collect())
    }

    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError> {
        let mut kept = self.kept();
        if kept.accounts.iter().any(|(a, _)| a.name == *name) {
            return Ok(None);
        }
        kept.next_account += 1;
        let account = Account { id: AccountId(kept.next_account), name: name.clone() };
        kept.accounts.push((account.clone(), password.to_owned()));
        Ok(Some(account))
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        let kept = self.kept();
        Ok(match kept.accounts.iter().find(|(a, _)| a.name == *name) {
            None => Verdict::NoAccount,
            Some((_, kept_password)) if kept_password != password => Verdict::Wrong,
            Some((account, _)) => Verdict::Right { account: account.clone(), admin: kept.admins.contains(&account.id) },
        })
    }

    fn verify_id(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        Ok(self.kept().accounts.iter().any(|(a, p)| a.id == id && p == password))
    }

    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        let mut kept = self.kept();
        let found = kept.accounts.iter_mut().find(|(a, _)| a.id == id);
        let changed = found.map(|(_, p)| *p = password.to_owned()).is_some();
        kept.tokens.retain(|(t, _)| t.account != id);
        Ok(changed)
    }

    fn read_markers(&self) -> Result<Vec<ReadMarker>, StoreError> {
        let kept = self.kept();
        let markers = kept.markers.iter();
        Ok(markers
            .map(|((account, target), at)| ReadMarker { account: *account, target: target.clone(), at: *at })
            .collect())
    }

    fn mark_read(&self, account: AccountId, target: &str, at: Timestamp) -> Result<(), StoreError> {
        let mut kept = self.kept();
        let held = kept.markers.entry((account, target.to_owned())).or_insert(at);
        *held = (*held).max(at);
        Ok(())
    }

    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError> {
        let mut kept = self.kept();
        let Some(index) = kept.accounts.iter().position(|(a, _)| a.id == id) else {
            return Ok(false);
        };
        kept.markers.retain(|(account, _), _| *account != id);
        kept.tokens.retain(|(t, _)| t.account != id);
        let (account, _) = kept.accounts.remove(index);
        kept.admins.retain(|a| *a != id);
        kept.rooms.retain(|_, room| room.founder != Some(id));
        for room in kept.rooms.values_mut() {
            room.ops.retain(|a| *a != id);
        }
        let party = Some(Party::Account(id));
        kept.messages.retain(|r| r.room.is_some() || (r.sender != party && r.recipient != party));
        kept.audit.push(AuditLine {
            at: chrono::Utc::now(),
            actor: actor.to_owned(),
            action: "delete account".to_owned(),
            room: None,
            target: Some(account.name.to_string()),
            detail: None,
        });
        Ok(true)
    }
}

impl TokenStore for MemoryStore {
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: Timestamp,
        keep: usize,
        unused_since: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let mut kept = self.kept();
        if !kept.accounts.iter().any(|(a, _)| a.id == account) {
            return Ok(None);
        }
        kept.next_token += 1;
        let id = kept.next_token;
        let token = SessionToken { id, account, created: at, last_used: at, description: description.to_owned() };
        kept.tokens.push((token, hash.to_vec()));
        kept.tokens.retain(|(t, _)| t.account != account || t.last_used >= unused_since);
        let mine: Vec<u64> = kept.tokens.iter().filter(|(t, _)| t.account == account).map(|(t, _)| t.id).collect();
        let excess = mine.len().saturating_sub(keep);
        // Ids grow with time: the first are the oldest.
        let oldest: Vec<u64> = mine.into_iter().take(excess).collect();
        kept.tokens.retain(|(t, _)| !oldest.contains(&t.id));
        Ok(Some(id))
    }

    fn use_token(&self, hash: &[u8], at: Timestamp, unused_since: Timestamp) -> Result<Option<TokenUse>, StoreError> {
        let mut kept = self.kept();
        let Some(index) = kept.tokens.iter().position(|(_, h)| h == hash) else {
            return Ok(None);
        };
        if kept.tokens[index].0.last_used < unused_since {
            kept.tokens.remove(index);
            return Ok(None);
        }
        kept.tokens[index].0.last_used = at;
        let token = kept.tokens[index].0.clone();
        let Some((account, _)) = kept.accounts.iter().find(|(a, _)| a.id == token.account) else {
            return Ok(None);
        };
        let account = account.clone();
        let admin = kept.admins.contains(&account.id);
        Ok(Some(TokenUse { token, account, admin }))
    }

    fn tokens(&self, account: AccountId) -> Result<Vec<SessionToken>, StoreError> {
        let mut tokens: Vec<SessionToken> =
            self.kept().tokens.iter().filter(|(t, _)| t.account == account).map(|(t, _)| t.clone()).collect();
        tokens.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(b.id.cmp(&a.id)));
        Ok(tokens)
    }

    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError> {
        let mut kept = self.kept();
        let before = kept.tokens.len();
        kept.tokens.retain(|(t, _)| !(t.account == account && t.id == id));
        Ok(kept.tokens.len() < before)
    }
}

impl ModerationStore for MemoryStore {
    fn moderation(&self) -> Result<Moderation, StoreError> {
        let kept = self.kept();
        Ok(Moderation {
            admins: kept.admins.clone(),
            rooms: kept.rooms.values().cloned().collect(),
            server_bans: kept.server_bans.clone(),
        })
    }

    fn record(&self, change: &Change) -> Result<(), StoreError> {
        let mut kept = self.kept();
        let room = change.room.clone();
        if change.durable {
            apply(&mut kept, change);
        }
        kept.audit.push(AuditLine {
            at: change.at,
            actor: change.actor.to_string(),
            action: change.what.action().to_owned(),
            room: room.map(|r| r.to_string()),
            target: None,
            detail: None,
        });
        Ok(())
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        Ok(self.kept().audit.iter().rev().take(limit).cloned().collect())
    }
}

/// Keeps a durable change.
fn apply(kept: &mut Kept, change: &Change) {
    let Some(name) = change.room.clone() else {
        match &change.what {
            Changed::ServerBanned(ban) => {
                kept.server_bans.retain(|b| b.mask != ban.mask);
                kept.server_bans.push(ban.clone());
            }
            Changed::ServerUnbanned(mask) => kept.server_bans.retain(|b| b.mask != *mask),
            _ => {}
        }
        return;
    };
    if let Changed::Registered { founder, since, modes, topic, restrictions } = &change.what {
        kept.rooms.insert(
            name.clone(),
            RegisteredRoom {
                room: name,
                founder: founder.as_ref().map(|a| a.id),
                registered: change.at,
                since: *since,
                modes: modes.clone(),
                ops: founder.iter().map(|a| a.id).collect(),
                topic: topic.clone(),
                restrictions: restrictions.clone(),
            },
        );
        return;
    }
    if matches!(change.what, Changed::Unregistered) {
        kept.rooms.remove(&name);
        return;
    }
    let Some(room) = kept.rooms.get_mut(&name) else {
        return;
    };
    match &change.what {
        Changed::Topic(text) => {
            room.topic = (!text.is_empty()).then(|| crate::moderation::Topic {
                text: text.clone(),
                by: change.actor.clone(),
                at: change.at,
            });
        }
        Changed::Restricted(r) => {
            room.restrictions.retain(|x| !(x.ban == r.ban && x.mask == r.mask));
            room.restrictions.push(r.clone());
        }
        Changed::Lifted { ban, mask } => room.restrictions.retain(|x| !(x.ban == *ban && x.mask == *mask)),
        Changed::Opped(account) if !room.ops.contains(&account.id) => room.ops.push(account.id),
        Changed::Deopped(account) => room.ops.retain(|a| *a != account.id),
        Changed::Modes(modes) => room.modes = modes.clone(),
        _ => {}
    }
}
