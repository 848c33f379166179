//! The hub with a store: nothing is delivered or acknowledged before it is stored, a
//! failed write is an error its sender sees (and nobody else sees the message), and
//! writes are grouped into batches when they come faster than the disk.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{
    Account, AccountId, AccountStore, Batch, Command, Event, HubHandle, Limits, MemoryStore, MessageStore,
    ModerationStore, Nick, Outbox, Page, Party, Record, Reply, RequestId, Search, SearchStore, Session, Store,
    StoreError, Verdict, Wire,
};

/// A store in memory that can be told to fail, and that takes a while per batch.
#[derive(Default)]
struct Flaky {
    failing: AtomicBool,
    batches: AtomicUsize,
    stored: Mutex<Vec<Record>>,
    slow: bool,
    rest: MemoryStore,
}

impl MessageStore for Flaky {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        if self.slow {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Write("database or disk is full".into()));
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.stored.lock().expect("lock").extend(batch.iter().map(|r| (**r).clone()));
        Ok(())
    }

    fn last_seqs(&self) -> Result<Vec<(parley_hub::RoomName, u64)>, StoreError> {
        self.rest.last_seqs()
    }

    fn recent(&self, room: &parley_hub::RoomName, since: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.rest.recent(room, since, limit)
    }

    fn page(&self, page: &Page) -> Result<Vec<Record>, StoreError> {
        self.rest.page(page)
    }

    fn delete(
        &self,
        room: &parley_hub::RoomName,
        seq: u64,
        since: u64,
        author: Option<Party>,
    ) -> Result<parley_hub::Deletion, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Write("database or disk is full".into()));
        }
        self.rest.delete(room, seq, since, author)
    }

    fn seq_at(
        &self,
        timeline: &parley_hub::Timeline,
        since: u64,
        at: parley_hub::Timestamp,
    ) -> Result<u64, StoreError> {
        self.rest.seq_at(timeline, since, at)
    }

    fn activity(
        &self,
        rooms: &[(parley_hub::RoomName, u64)],
        party: Party,
        from: parley_hub::Timestamp,
        to: parley_hub::Timestamp,
        limit: usize,
    ) -> Result<Vec<parley_hub::Activity>, StoreError> {
        self.rest.activity(rooms, party, from, to, limit)
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        self.rest.last_private_seq()
    }

    fn last_guest(&self) -> Result<u64, StoreError> {
        self.rest.last_guest()
    }

    fn conversation(
        &self,
        me: Party,
        with: Party,
        cursor: parley_hub::Cursor,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.rest.conversation(me, with, cursor, upto, limit)
    }
}

impl SearchStore for Flaky {
    fn search(&self, search: &Search) -> Result<Vec<Record>, StoreError> {
        self.rest.search(search)
    }
}

impl AccountStore for Flaky {
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.rest.accounts()
    }

    fn read_markers(&self) -> Result<Vec<parley_hub::ReadMarker>, StoreError> {
        self.rest.read_markers()
    }

    fn mark_read(&self, account: AccountId, target: &str, at: parley_hub::Timestamp) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Write("database or disk is full".into()));
        }
        self.rest.mark_read(account, target, at)
    }

    fn register(&self, name: &Nick, password: &str) -> Result<Option<Account>, StoreError> {
        self.rest.register(name, password)
    }

    fn verify(&self, name: &Nick, password: &str) -> Result<Verdict, StoreError> {
        self.rest.verify(name, password)
    }

    fn verify_id(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        self.rest.verify_id(id, password)
    }

    fn set_password(&self, id: AccountId, password: &str) -> Result<bool, StoreError> {
        self.rest.set_password(id, password)
    }

    fn delete_account(&self, id: AccountId, actor: &str) -> Result<bool, StoreError> {
        self.rest.delete_account(id, actor)
    }
}

impl parley_hub::TokenStore for Flaky {
    fn issue_token(
        &self,
        account: AccountId,
        hash: &[u8],
        description: &str,
        at: parley_hub::Timestamp,
        keep: usize,
        unused_since: parley_hub::Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        self.rest.issue_token(account, hash, description, at, keep, unused_since)
    }

    fn use_token(
        &self,
        hash: &[u8],
        at: parley_hub::Timestamp,
        unused_since: parley_hub::Timestamp,
    ) -> Result<Option<parley_hub::TokenUse>, StoreError> {
        self.rest.use_token(hash, at, unused_since)
    }

    fn tokens(&self, account: AccountId) -> Result<Vec<parley_hub::SessionToken>, StoreError> {
        self.rest.tokens(account)
    }

    fn revoke_token(&self, account: AccountId, id: u64) -> Result<bool, StoreError> {
        self.rest.revoke_token(account, id)
    }
}

impl ModerationStore for Flaky {
    fn moderation(&self) -> Result<parley_hub::Moderation, StoreError> {
        self.rest.moderation()
    }

    fn record(&self, change: &parley_hub::Change) -> Result<(), StoreError> {
        self.rest.record(change)
    }

    fn audit(&self, limit: usize) -> Result<Vec<parley_hub::AuditLine>, StoreError> {
        self.rest.audit(limit)
    }
}

/// One line per event, enough to tell them apart.
struct TestWire;

impl Wire for TestWire {
    fn cache_slot(&self) -> Option<usize> {
        None
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        let line = match event {
            Event::Message { from, seq, text, .. } => format!("message {seq} {from} {text}"),
            Event::Reply { result: Ok(Reply::Said { seq, .. }), .. } => format!("said {seq}"),
            Event::Reply { result: Err(e), .. } => format!("error {e}"),
            _ => "other".to_owned(),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\n");
    }
}

struct Peer {
    session: Session,
    outbox: Arc<Outbox>,
    lines: Vec<String>,
}

impl Peer {
    async fn join(hub: &HubHandle, nick: &str) -> Peer {
        let outbox = Arc::new(Outbox::new(TestWire, 1 << 24));
        let session = hub.connect(nick, None, RequestId(0), outbox.clone()).await.expect("registers");
        Peer { session, outbox, lines: Vec::new() }
    }

    async fn say(&self, text: &str) {
        let command =
            Command::Say { room: None, kind: parley_hub::Kind::Text, text: text.to_owned(), meta: Default::default() };
        self.session.send(RequestId(1), command).await.expect("sent");
    }

    /// The next line that is not `other`.
    async fn next(&mut self) -> String {
        loop {
            if let Some(at) = self.lines.iter().position(|l| l != "other") {
                let line = self.lines.remove(at);
                self.lines.drain(..at);
                return line;
            }
            self.lines.clear();
            let mut buf = BytesMut::new();
            let batch = tokio::time::timeout(Duration::from_secs(10), self.outbox.take(&mut buf)).await;
            assert!(matches!(batch, Ok(Batch::Bytes)), "more output in time");
            let text = String::from_utf8(buf.to_vec()).expect("UTF-8");
            self.lines.extend(text.lines().map(str::to_owned));
        }
    }
}

async fn hub_on(store: Arc<Flaky>) -> HubHandle {
    let store: Arc<dyn Store> = store;
    let (hub, _task) = parley_hub::spawn(Limits::default(), Some(store)).await.expect("starts");
    hub
}

#[tokio::test]
async fn a_failed_write_is_the_senders_error_and_nobody_sees_the_message() {
    let store = Arc::new(Flaky::default());
    let hub = hub_on(store.clone()).await;
    let mut alice = Peer::join(&hub, "alice").await;
    let mut bob = Peer::join(&hub, "bob").await;

    store.failing.store(true, Ordering::SeqCst);
    alice.say("lost").await;
    let error = alice.next().await;
    assert!(error.starts_with("error the server could not save this"), "{error}");
    assert!(!error.contains("disk is full"), "the store's detail stays in the server's log: {error}");

    store.failing.store(false, Ordering::SeqCst);
    alice.say("kept").await;
    assert_eq!(alice.next().await, "said 2");
    assert_eq!(bob.next().await, "message 2 alice kept", "the failed message never reached bob");
    let stored: Vec<String> = store.stored.lock().expect("lock").iter().map(|r| r.text.to_string()).collect();
    assert_eq!(stored, ["kept"]);
}

#[tokio::test]
async fn writes_faster_than_the_disk_are_grouped_and_stay_in_order() {
    const MESSAGES: u64 = 500;
    let store = Arc::new(Flaky { slow: true, ..Flaky::default() });
    let hub = hub_on(store.clone()).await;
    let alice = Peer::join(&hub, "alice").await;
    let mut bob = Peer::join(&hub, "bob").await;
    for n in 1..=MESSAGES {
        alice.say(&format!("m{n}")).await;
    }
    for n in 1..=MESSAGES {
        assert_eq!(bob.next().await, format!("message {n} alice m{n}"));
    }
    let batches = store.batches.load(Ordering::SeqCst);
    assert!(batches < 100, "{MESSAGES} messages in {batches} transactions");
    let seqs: Vec<u64> = store.stored.lock().expect("lock").iter().map(|r| r.seq).collect();
    assert!(seqs.iter().copied().eq(1..=MESSAGES), "stored once each, in order");
}
