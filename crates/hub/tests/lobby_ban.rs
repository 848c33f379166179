//! A ban in the lobby keeps whoever it covers out of it for good: every session starts in
//! the lobby, so connecting checks the lobby's bans as joining it does, for guests and
//! for those who log in as they connect. (Found by the model test: a session banned
//! from the lobby was put back in it by reconnecting.)

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{
    AccountStore, Action, Command, Event, HubError, HubHandle, Limits, MemoryStore, Nick, Outbox, Reply, RequestId,
    Session, Store, Wire,
};

/// Keeps a copy of every event; encodes one byte each.
struct Keep(Arc<Mutex<Vec<Event>>>);

impl Wire for Keep {
    fn cache_slot(&self) -> Option<usize> {
        None
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event.clone());
        out.extend_from_slice(b".");
    }
}

struct Peer {
    session: Session,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Peer {
    /// Sends a command and waits for its answer.
    async fn ask(&self, req: u64, command: Command) -> Result<Reply, HubError> {
        self.session.send(RequestId(req), command).await.expect("the hub is up");
        for _ in 0..10_000 {
            let answer = self.events.lock().unwrap_or_else(PoisonError::into_inner).iter().find_map(|e| match e {
                Event::Reply { req: r, result } if *r == RequestId(req) => Some(result.clone()),
                _ => None,
            });
            if let Some(answer) = answer {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("no answer to request {req}");
    }

    async fn rooms(&self) -> Vec<String> {
        let whereabouts = self.session.whereabouts().await.expect("the hub is up").expect("connected");
        whereabouts.rooms.into_iter().map(|(room, _)| room.to_string()).collect()
    }
}

async fn connect(hub: &HubHandle, nick: &str, address: &str, password: Option<&str>) -> Result<Peer, HubError> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let outbox = Arc::new(Outbox::new(Keep(events.clone()), 1 << 20));
    let address = Some(address.parse().expect("an address"));
    let session = match password {
        None => hub.connect(nick, address, RequestId(0), outbox).await?,
        Some(password) => hub.connect_as(nick, password.to_owned(), address, RequestId(0), outbox).await?,
    };
    Ok(Peer { session, events })
}

fn ban(mask: &str) -> Command {
    let action = Action::Ban { mask: mask.to_owned(), duration: None, reason: Some("spam".to_owned()) };
    Command::Moderate { room: Some("lobby".to_owned()), action }
}

fn banned() -> HubError {
    HubError::Banned { room: "lobby".to_owned(), reason: Some("spam".to_owned()) }
}

#[tokio::test]
async fn a_client_banned_from_the_lobby_cannot_come_back_by_reconnecting() {
    let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("starts");
    let alice = connect(&hub, "alice", "127.0.0.1", None).await.expect("alice");
    let bob = connect(&hub, "bob", "127.0.0.2", None).await.expect("bob");
    assert_eq!(alice.ask(1, Command::Oper).await, Ok(Reply::Opered));
    assert!(alice.ask(2, ban("127.0.0.2")).await.is_ok());
    assert!(bob.rooms().await.is_empty(), "the ban put bob out of the lobby");

    bob.session.disconnect(None).await;
    assert_eq!(connect(&hub, "bob", "127.0.0.2", None).await.err(), Some(banned()));
    assert_eq!(connect(&hub, "robert", "::ffff:127.0.0.2", None).await.err(), Some(banned()), "any nick");
    let elsewhere = connect(&hub, "bob", "127.0.0.3", None).await.expect("from another address");
    assert_eq!(elsewhere.rooms().await, ["lobby"]);
    assert!(matches!(
        elsewhere.ask(3, Command::Join { room: "lobby".into(), exclusive: false, key: None }).await,
        Ok(Reply::Joined { .. })
    ));
}

#[tokio::test]
async fn an_account_banned_from_the_lobby_is_refused_before_anyone_is_renamed() {
    let store = MemoryStore::new();
    store.register(&Nick::parse("chief", 32).expect("a nick"), "correct horse").expect("stored");
    let store: Arc<dyn Store> = Arc::new(store);
    let (hub, _task) = parley_hub::spawn(Limits::default(), Some(store)).await.expect("starts");
    let admin = connect(&hub, "admin", "127.0.0.1", None).await.expect("admin");
    assert_eq!(admin.ask(1, Command::Oper).await, Ok(Reply::Opered));
    // A guest holds the nick; the account is banned from the lobby (the guest with it).
    let squatter = connect(&hub, "chief", "127.0.0.2", None).await.expect("a guest may take the nick");
    assert!(admin.ask(2, ban("chief")).await.is_ok());

    let login = connect(&hub, "chief", "127.0.0.3", Some("correct horse")).await;
    assert_eq!(login.err(), Some(banned()));
    let whereabouts = squatter.session.whereabouts().await.expect("up").expect("still connected");
    assert_eq!(whereabouts.nick.as_str(), "chief", "the refused login renamed nobody");
}
