//! Names of every alphabet, and names that only look alike: `José` is a nick, `JOSÉ` is
//! the same one, and Cyrillic `аlice` cannot pass for `alice` (a session's nick, an
//! account's, a room's), under the default `[names] casemapping = "precis"`.

use std::sync::Arc;

use parley_hub::{AccountStore, Command, HubError, Limits, MemoryStore, Reply, Store};

mod support;

use support::{connect, taken};

#[tokio::test]
async fn names_of_every_alphabet_are_nicks_and_rooms() {
    let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("starts");
    let mut jose = connect(&hub, "José").await.expect("José is a nick");
    for nick in ["JOSÉ", "jose\u{301}", "ＪＯＳÉ"] {
        assert!(matches!(connect(&hub, nick).await.err(), Some(HubError::NickTaken(_))), "{nick:?} is José's nick");
    }
    assert!(connect(&hub, "Jose").await.is_ok(), "without the accent it is another name");
    let mut lei = connect(&hub, "李雷").await.expect("李雷 is a nick");
    assert!(matches!(
        jose.ask(1, Command::Join { room: "#Café".into(), key: None, exclusive: false }).await,
        Ok(Reply::Joined { .. })
    ));
    // However the room is typed, it is the one room, spelled as its creator spelled it.
    match lei.ask(1, Command::Join { room: "#CAFÉ".into(), key: None, exclusive: false }).await {
        Ok(Reply::Joined { room, members, .. }) => {
            assert_eq!(room.as_str(), "Café");
            assert_eq!(members.len(), 2, "{members:?}");
        }
        other => panic!("joined: {other:?}"),
    }
    // A nick changed only in case is still its owner's.
    assert!(matches!(jose.ask(2, Command::Nick { nick: "JOSÉ".into() }).await, Ok(Reply::Nick { .. })));
}

#[tokio::test]
async fn a_lookalike_of_a_connected_nick_is_taken() {
    let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("starts");
    let _alice = connect(&hub, "alice").await.expect("alice");
    let cyrillic = "\u{430}lice";
    assert_eq!(connect(&hub, cyrillic).await.err(), Some(taken(cyrillic)));
    let mut bob = connect(&hub, "bob").await.expect("bob");
    assert_eq!(bob.ask(1, Command::Nick { nick: cyrillic.into() }).await, Err(taken(cyrillic)));
    assert_eq!(bob.ask(2, Command::Nick { nick: "ALICE".into() }).await, Err(taken("ALICE")));
    assert_eq!(bob.ask(3, Command::Nick { nick: "rnoon".into() }).await, Ok(Reply::Nick { nick: nick("rnoon") }));
    // `moon` looks like `rnoon`, now bob's.
    let mut carol = connect(&hub, "carol").await.expect("carol");
    assert_eq!(carol.ask(1, Command::Nick { nick: "moon".into() }).await, Err(taken("moon")));
    // Once bob lets go of it, the look-alike is free.
    assert!(bob.ask(4, Command::Nick { nick: "bob".into() }).await.is_ok());
    assert_eq!(carol.ask(2, Command::Nick { nick: "moon".into() }).await, Ok(Reply::Nick { nick: nick("moon") }));
}

#[tokio::test]
async fn a_lookalike_of_an_account_is_taken_while_its_owner_is_away() {
    let store = Arc::new(MemoryStore::default());
    store.register(&nick("alice"), "correct horse").expect("registers").expect("a new account");
    let store: Arc<dyn Store> = store;
    let (hub, _task) = parley_hub::spawn(Limits::default(), Some(store)).await.expect("starts");
    let cyrillic = "\u{430}lice";
    assert_eq!(connect(&hub, cyrillic).await.err(), Some(taken(cyrillic)));
    let mut bob = connect(&hub, "bob").await.expect("bob");
    assert_eq!(bob.ask(1, Command::Nick { nick: cyrillic.into() }).await, Err(taken(cyrillic)));
    // An account registered now is protected the same way once its owner goes by
    // another nick.
    let mut dave = connect(&hub, "dave").await.expect("dave");
    assert!(matches!(
        dave.ask(1, Command::Register { password: "correct horse".into() }).await,
        Ok(Reply::Registered { .. })
    ));
    assert_eq!(dave.ask(2, Command::Nick { nick: "david".into() }).await, Ok(Reply::Nick { nick: nick("david") }));
    let lookalike = "d\u{430}ve";
    assert_eq!(connect(&hub, lookalike).await.err(), Some(taken(lookalike)));
    assert_eq!(bob.ask(2, Command::Nick { nick: lookalike.into() }).await, Err(taken(lookalike)));
}

#[tokio::test]
async fn a_room_that_looks_like_an_existing_one_is_not_created() {
    let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("starts");
    let mut alice = connect(&hub, "alice").await.expect("alice");
    let mut bob = connect(&hub, "bob").await.expect("bob");
    assert!(alice.ask(1, Command::Join { room: "#paris".into(), key: None, exclusive: false }).await.is_ok());
    let cyrillic = "#p\u{430}ris";
    assert_eq!(
        bob.ask(1, Command::Join { room: cyrillic.into(), key: None, exclusive: false }).await.err(),
        Some(HubError::RoomLookalike { room: "p\u{430}ris".into(), existing: "paris".into() })
    );
    assert!(
        bob.ask(2, Command::Join { room: "#PARIS".into(), key: None, exclusive: false }).await.is_ok(),
        "the room itself"
    );
    // The lobby is always there.
    assert!(matches!(
        bob.ask(3, Command::Join { room: "#l\u{43e}bby".into(), key: None, exclusive: false }).await,
        Err(HubError::RoomLookalike { .. })
    ));
    // When the unregistered #paris has emptied, the name is free, and so are its look-alikes.
    assert!(alice.ask(2, Command::Part { room: Some("#paris".into()), reason: None }).await.is_ok());
    assert!(bob.ask(4, Command::Part { room: Some("#paris".into()), reason: None }).await.is_ok());
    assert!(bob.ask(5, Command::Join { room: cyrillic.into(), key: None, exclusive: false }).await.is_ok());
}

fn nick(name: &str) -> parley_hub::Nick {
    parley_hub::Nick::parse(name, 32).expect("a valid nick")
}
