//! The hub with a store: nothing is delivered or acknowledged before it is stored, a
//! failed write is an error its sender sees (and nobody else sees the message), and
//! writes are grouped into batches when they come faster than the disk.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{
    Batch, Command, Event, HubHandle, Limits, Nick, Outbox, Page, Record, Reply, RequestId, RoomHistory, Search,
    Session, Store, StoreError, Verdict, Wire,
};

/// A store in memory that can be told to fail, and that takes a while per batch.
#[derive(Default)]
struct Flaky {
    failing: AtomicBool,
    batches: AtomicUsize,
    stored: Mutex<Vec<Record>>,
    slow: bool,
}

impl Store for Flaky {
    fn append(&self, batch: &[Arc<Record>]) -> Result<(), StoreError> {
        if self.slow {
            std::thread::sleep(Duration::from_millis(2));
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError("database or disk is full".into()));
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.stored.lock().expect("lock").extend(batch.iter().map(|r| (**r).clone()));
        Ok(())
    }

    fn rooms(&self, _recent: usize) -> Result<Vec<RoomHistory>, StoreError> {
        Ok(Vec::new())
    }

    fn page(&self, _page: &Page) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }

    fn moderation(&self) -> Result<parley_hub::Moderation, StoreError> {
        Ok(parley_hub::Moderation::default())
    }

    fn record(&self, _change: &parley_hub::Change) -> Result<(), StoreError> {
        Ok(())
    }

    fn is_admin(&self, _account: &Nick) -> Result<bool, StoreError> {
        Ok(false)
    }

    fn audit(&self, _limit: usize) -> Result<Vec<parley_hub::AuditLine>, StoreError> {
        Ok(Vec::new())
    }

    fn last_private_seq(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn conversation(
        &self,
        _me: &Nick,
        _with: &Nick,
        _cursor: parley_hub::Cursor,
        _upto: u64,
        _limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }

    fn search(&self, _search: &Search) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }

    fn accounts(&self) -> Result<Vec<Nick>, StoreError> {
        Ok(Vec::new())
    }

    fn register(&self, _name: &Nick, _password: &str) -> Result<bool, StoreError> {
        Err(StoreError("no accounts here".into()))
    }

    fn verify(&self, _name: &Nick, _password: &str) -> Result<Verdict, StoreError> {
        Ok(Verdict::NoAccount)
    }

    fn set_password(&self, _name: &Nick, _password: &str) -> Result<bool, StoreError> {
        Ok(false)
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
        let command = Command::Say { room: None, kind: parley_hub::Kind::Text, text: text.to_owned() };
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
    assert!(error.starts_with("error the message could not be saved"), "{error}");
    assert!(error.contains("disk is full"), "{error}");

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
