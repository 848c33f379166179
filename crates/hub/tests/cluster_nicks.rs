//! Nicks across a cluster: two hubs, each a node of one cluster, share an in-memory
//! registry of nick claims (linearizable: one lock decides every claim) and give a nick
//! to a session only once their node holds its claim.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley_hub::{
    spawn_clustered, ClaimError, ClaimFuture, ClusterNicks, Clustered, Command, Event, HubError, HubHandle, Ledger,
    Limits, Logged, MemoryStore, NameRule, NickClaims, Notice, Presence, Record, Renaming, Reply, RequestId,
    ServerAction, Ticket,
};
use tokio::sync::mpsc;

mod support;

use support::{connect, taken, tapped, within, Peer};

/// The cluster's registry: which node holds each key.
#[derive(Default)]
struct Registry {
    held: Mutex<HashMap<String, String>>,
    /// While set, every claim fails as an unreachable registry's would.
    unreachable: AtomicBool,
}

impl Registry {
    fn holder(&self, key: &str) -> Option<String> {
        self.held.lock().expect("not poisoned").get(key).cloned()
    }

    /// The claim ages out, as a cut-off node's lease does.
    fn expire(&self, key: &str) {
        self.held.lock().expect("not poisoned").remove(key);
    }
}

/// One node's side of the registry.
struct NodeClaims {
    registry: Arc<Registry>,
    node: String,
}

impl NickClaims for NodeClaims {
    fn claim(&self, key: String) -> ClaimFuture {
        let (registry, node) = (self.registry.clone(), self.node.clone());
        Box::pin(async move {
            // Decided when the claim runs, off the hub task, as a registry's would be.
            tokio::task::yield_now().await;
            if registry.unreachable.load(Ordering::SeqCst) {
                return Err(ClaimError("no server answered".into()));
            }
            let mut held = registry.held.lock().expect("not poisoned");
            if held.contains_key(&key) {
                return Ok(false);
            }
            held.insert(key, node);
            Ok(true)
        })
    }

    fn release(&self, key: String) {
        let mut held = self.registry.held.lock().expect("not poisoned");
        if held.get(&key) == Some(&self.node) {
            held.remove(&key);
        }
    }
}

/// The cluster's log, reduced to one node: gives back every message it is handed, under
/// the next seq of its room.
struct Echo {
    seqs: Mutex<HashMap<Option<String>, u64>>,
    logged: mpsc::UnboundedSender<Logged>,
}

impl Ledger for Echo {
    fn submit(&self, ticket: Ticket, mut record: Record) {
        let mut seqs = self.seqs.lock().expect("not poisoned");
        let seq = seqs.entry(record.room.as_ref().map(|r| r.key())).or_insert(0);
        *seq += 1;
        record.seq = *seq;
        let _ = self.logged.send(Logged::Message { record, ticket: Some(ticket), position: 0 });
    }

    /// Presence is not what these tests are about: each node knows its own sessions only.
    fn announce(&self, _presence: Presence) {}

    fn written(&self, _position: u64) {}
}

/// A node: its hub, and the sender of the claims its registry reports lost.
struct Node {
    hub: HubHandle,
    lost: mpsc::UnboundedSender<String>,
}

async fn node(name: &str, registry: &Arc<Registry>, store: &Arc<MemoryStore>) -> Node {
    node_with(name, registry, store, Limits::default()).await
}

async fn node_with(name: &str, registry: &Arc<Registry>, store: &Arc<MemoryStore>, limits: Limits) -> Node {
    let (logged_tx, logged) = mpsc::unbounded_channel();
    let ledger = Arc::new(Echo { seqs: Mutex::default(), logged: logged_tx });
    let (lost, lost_rx) = mpsc::unbounded_channel();
    let claims = Arc::new(NodeClaims { registry: registry.clone(), node: name.to_owned() });
    let nicks = Some(ClusterNicks { node: name.to_owned(), claims, lost: lost_rx });
    // Each node's guests from a range of its own, as a cluster's lease numbers them.
    let first_guest = u64::from(name.as_bytes()[0]) << 32;
    let cluster = Clustered { ledger, logged, first_guest, nicks };
    let (hub, _task) = spawn_clustered(limits, store.clone(), cluster).await.expect("the hub starts");
    Node { hub, lost }
}

/// A cluster of two nodes, `a` and `b`, with one registry and one database.
async fn cluster() -> (Arc<Registry>, Node, Node) {
    let registry = Arc::new(Registry::default());
    let store = Arc::new(MemoryStore::new());
    let a = node("a", &registry, &store).await;
    let b = node("b", &registry, &store).await;
    (registry, a, b)
}

#[tokio::test]
async fn of_two_sessions_racing_on_two_nodes_one_gets_the_nick() {
    let (registry, a, b) = cluster().await;
    let (on_a, on_b) = tokio::join!(connect(&a.hub, "alice"), connect(&b.hub, "alice"));
    let (winner, loser) = match (on_a, on_b) {
        (Ok(peer), Err(e)) => (("a", peer), e),
        (Err(e), Ok(peer)) => (("b", peer), e),
        (a, b) => panic!("exactly one wins: {:?} / {:?}", a.map(|_| ()), b.map(|_| ())),
    };
    assert_eq!(loser, taken("alice"), "the other is told what a local clash tells");
    assert_eq!(registry.holder("alice").as_deref(), Some(winner.0));
    // The same nick in other spellings, and one that only looks like it, on either node.
    for hub in [&a.hub, &b.hub] {
        for other in ["ALICE", "\u{430}lice"] {
            assert_eq!(connect(hub, other).await.err(), Some(taken(other)), "{other}");
        }
    }
    assert_eq!(winner.1.nick().await, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_attempts_across_two_nodes_give_one_nick_once() {
    let (registry, a, b) = cluster().await;
    // 200 connections asking for one nick, half on each node, all at once.
    let mut attempts = Vec::new();
    for n in 0..200 {
        let hub = if n % 2 == 0 { a.hub.clone() } else { b.hub.clone() };
        attempts.push(tokio::spawn(async move { connect(&hub, "carol").await.map(|peer| peer.session) }));
    }
    let mut won = Vec::new();
    for attempt in attempts {
        match attempt.await.expect("the attempt ends") {
            Ok(session) => won.push(session),
            Err(e) => assert_eq!(e, taken("carol")),
        }
    }
    assert_eq!(won.len(), 1, "exactly one connection gets the nick");
    // 200 sessions, 100 on each node, renaming to one nick at once.
    let mut peers = Vec::new();
    for n in 0..200 {
        let hub = if n % 2 == 0 { &a.hub } else { &b.hub };
        peers.push(connect(hub, &format!("p{n}")).await.expect("connects"));
    }
    let renames: Vec<_> =
        peers.into_iter().map(|mut peer| tokio::spawn(async move { (peer.rename(1, "dave").await, peer) })).collect();
    let mut renamed = 0;
    // Kept: a session dropped is gone, and its nick with it.
    let mut kept = Vec::new();
    for rename in renames {
        let (result, peer) = rename.await.expect("the rename ends");
        match result {
            Ok(Reply::Nick { nick }) => {
                assert_eq!(nick.as_str(), "dave");
                renamed += 1;
            }
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(e) => {
                assert_eq!(e, taken("dave"));
                assert!(peer.nick().await.starts_with('p'), "a loser keeps its nick");
            }
        }
        kept.push(peer);
    }
    assert_eq!(renamed, 1, "exactly one session is renamed");
    assert!(registry.holder("dave").is_some());
}

#[tokio::test]
async fn a_nick_given_up_on_one_node_is_free_on_the_other() {
    let (registry, a, b) = cluster().await;
    let mut alice = connect(&a.hub, "Alice").await.expect("connects");
    let mut bob = connect(&b.hub, "bob").await.expect("connects");
    assert_eq!(bob.rename(1, "alice").await, Err(taken("alice")));
    // A change of case only keeps the claim.
    assert!(alice.rename(1, "alice").await.is_ok());
    assert_eq!(registry.holder("alice").as_deref(), Some("a"));
    assert_eq!(bob.rename(2, "ALICE").await, Err(taken("ALICE")));
    // Renamed away: released.
    assert!(alice.rename(2, "alicia").await.is_ok());
    assert_eq!(registry.holder("alice"), None);
    assert!(bob.rename(3, "alice").await.is_ok(), "bob takes it on the other node");
    assert_eq!(registry.holder("alice").as_deref(), Some("b"));
    assert_eq!(registry.holder("bob"), None, "and bob's old nick is released");
    // Quit: released.
    assert_eq!(alice.rename(3, "alice").await, Err(taken("alice")));
    assert_eq!(bob.ask(4, Command::Quit { reason: None }).await, Ok(Reply::Bye));
    released(&registry, "alice").await;
    assert!(alice.rename(4, "alice").await.is_ok(), "alice takes it back");
    // A lost connection: released.
    let carol = connect(&b.hub, "carol").await.expect("connects");
    assert_eq!(connect(&a.hub, "carol").await.err(), Some(taken("carol")));
    carol.session.disconnect(None).await;
    released(&registry, "carol").await;
    assert_eq!(connect(&a.hub, "carol").await.expect("free again").nick().await, "carol");
    // Banned from the server (a kill): released.
    let _dora = connect(&b.hub, "dora").await.expect("connects");
    assert_eq!(registry.holder("dora").as_deref(), Some("b"));
    let mut admin = connect(&b.hub, "admin").await.expect("connects");
    assert_eq!(admin.ask(1, Command::Oper).await, Ok(Reply::Opered));
    let ban = ServerAction::Ban { mask: "dora".into(), duration: None, reason: None };
    assert!(admin.ask(2, Command::ServerModerate { action: ban }).await.is_ok());
    released(&registry, "dora").await;
}

#[tokio::test]
async fn a_lost_claim_renames_its_holder_to_a_guest_nick_of_its_node() {
    let (registry, a, b) = cluster().await;
    let mut alice = connect(&a.hub, "alice").await.expect("connects");
    let mut bob = connect(&b.hub, "bob").await.expect("connects");
    // Node a was cut off for longer than a lease: the claim aged out, node b's bob took
    // the nick, and a's registry reports the claim lost.
    registry.expire("alice");
    assert!(bob.rename(1, "alice").await.is_ok());
    a.lost.send("alice".into()).expect("the hub follows its losses");
    let renamed = within(async {
        loop {
            if let Event::Notice { notice: Notice::Renamed { nick, cause }, .. } =
                alice.events.recv().await.expect("open")
            {
                return (nick, cause);
            }
        }
    })
    .await;
    let nick = alice.nick().await;
    assert_eq!(renamed.0.as_str(), nick);
    assert!(nick.starts_with("Guest-a-"), "a guest nick of node a: {nick}");
    assert!(matches!(renamed.1, Renaming::ClaimLost { nick } if nick.as_str() == "alice"));
    assert_eq!(registry.holder("alice").as_deref(), Some("b"), "a does not release what it lost");
    assert_eq!(alice.rename(1, "alice").await, Err(taken("alice")), "one holder: bob");
    // Nobody may choose a nick that passes for a guest nick a node gives.
    for guest in ["Guest-b-1", "guest-a-77", "Gu\u{435}st-x"] {
        let refused = bob.rename(2, guest).await;
        assert!(matches!(&refused, Err(HubError::InvalidNick { why: NameRule::Reserved, .. })), "{guest}: {refused:?}");
    }
    assert!(matches!(connect(&b.hub, &nick).await.err(), Some(HubError::InvalidNick { .. })));
    // Guest_N, which clients pick themselves, is an ordinary nick.
    assert!(bob.rename(3, "Guest_5").await.is_ok());
}

#[tokio::test]
async fn an_unreachable_registry_refuses_the_nick_and_the_session_keeps_its_own() {
    let (registry, a, _b) = cluster().await;
    let mut bob = connect(&a.hub, "bob").await.expect("connects");
    registry.unreachable.store(true, Ordering::SeqCst);
    assert_eq!(bob.rename(1, "robert").await, Err(HubError::ClusterUnreachable));
    assert_eq!(bob.nick().await, "bob");
    assert_eq!(connect(&a.hub, "zed").await.err(), Some(HubError::ClusterUnreachable));
    // A case change needs no claim: the node holds it.
    assert!(bob.rename(2, "Bob").await.is_ok());
    registry.unreachable.store(false, Ordering::SeqCst);
    assert!(bob.rename(3, "robert").await.is_ok());
    assert_eq!(registry.holder("robert").as_deref(), Some("a"));
    assert_eq!(registry.holder("bob"), None);
}

#[tokio::test]
async fn an_account_login_takes_its_nick_only_with_the_claim() {
    let (registry, a, b) = cluster().await;
    let mut erin = connect(&a.hub, "erin").await.expect("connects");
    let password = "correct horse".to_owned();
    assert!(erin.ask(1, Command::Register { password: password.clone() }).await.is_ok());
    assert_eq!(erin.ask(2, Command::Quit { reason: None }).await, Ok(Reply::Bye));
    released(&registry, "erin").await;
    // Node b has not heard of the account (it read accounts when it started): a guest
    // takes the nick there.
    let squatter = connect(&b.hub, "erin").await.expect("connects");
    let (outbox, _events) = tapped();
    let owner = within(a.hub.connect_as("erin", password.clone(), None, RequestId(0), outbox)).await;
    assert_eq!(owner.err(), Some(taken("erin")), "the nick has one holder: b's session");
    // Logging in from a session on node a, likewise: it keeps its nick.
    let mut frank = connect(&a.hub, "frank").await.expect("connects");
    let login = frank.ask(1, Command::Login { name: Some("erin".into()), password: password.clone() }).await;
    assert_eq!(login, Err(taken("erin")));
    assert_eq!(frank.nick().await, "frank");
    squatter.session.disconnect(None).await;
    released(&registry, "erin").await;
    let login = frank.ask(2, Command::Login { name: Some("erin".into()), password }).await;
    assert!(matches!(login, Ok(Reply::LoggedIn { .. })), "{login:?}");
    assert_eq!(frank.nick().await, "erin");
    assert_eq!(registry.holder("erin").as_deref(), Some("a"));
    assert_eq!(registry.holder("frank"), None);
}

/// Waits for the notice that the session was renamed: its new nick and why.
async fn renamed(peer: &mut Peer) -> (String, Renaming) {
    within(async {
        loop {
            if let Event::Notice { notice: Notice::Renamed { nick, cause }, .. } =
                peer.events.recv().await.expect("open")
            {
                return (nick.to_string(), cause);
            }
        }
    })
    .await
}

async fn released(registry: &Registry, key: &str) {
    within(async {
        while registry.holder(key).is_some() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_registered_nick_passes_between_sessions_of_one_node_under_one_claim() {
    let registry = Arc::new(Registry::default());
    let store = Arc::new(MemoryStore::new());
    let a = node("a", &registry, &store).await;
    let password = "correct horse".to_owned();
    let mut erin = connect(&a.hub, "erin").await.expect("connects");
    assert!(erin.ask(1, Command::Register { password: password.clone() }).await.is_ok());
    assert_eq!(erin.ask(2, Command::Quit { reason: None }).await, Ok(Reply::Bye));
    released(&registry, "erin").await;
    // Node b starts knowing the account, with a short login grace.
    let limits = Limits { login_grace: Duration::from_millis(50), ..Limits::default() };
    let b = node_with("b", &registry, &store, limits).await;
    // A guest using the nick on b without logging in is renamed to one of b's guest
    // nicks when the grace ends, and b lets go of the claim.
    let mut squatter = connect(&b.hub, "erin").await.expect("connects");
    let (nick, cause) = renamed(&mut squatter).await;
    assert!(nick.starts_with("Guest-b-"), "{nick}");
    assert!(matches!(cause, Renaming::NotLoggedIn { .. }));
    released(&registry, "erin").await;
    // A guest using it on a (whose grace is long) loses it to the owner logging in on a:
    // the nick passes from one session of a to another, and a's claim stays throughout.
    let mut squatter = connect(&a.hub, "erin").await.expect("connects");
    let (outbox, _events) = tapped();
    let owner = within(a.hub.connect_as("erin", password, None, RequestId(0), outbox)).await.expect("logs in");
    let (nick, cause) = renamed(&mut squatter).await;
    assert!(nick.starts_with("Guest-a-"), "{nick}");
    assert!(matches!(cause, Renaming::OwnerLoggedIn { .. }));
    assert_eq!(owner.whereabouts().await.expect("up").expect("connected").nick.as_str(), "erin");
    assert_eq!(registry.holder("erin").as_deref(), Some("a"), "never released in between");
    assert_eq!(connect(&b.hub, "erin").await.err(), Some(taken("erin")));
}
