//! What only the PostgreSQL store has to do: survive its server restarting, share a
//! schema between stores that open it at once, refuse a schema from a newer Parley, and
//! say clearly when it cannot connect. (Everything both stores do is in conformance.rs.)

use std::sync::Arc;

use chrono::Utc;
use parley_hub::{Kind, MessageStore as _, Nick, Record, RoomName, StoreError};
use parley_store::testing::TestPostgres;
use parley_store::{PostgresError, PostgresStore, Retention};

fn said(seq: u64) -> Arc<Record> {
    Arc::new(Record {
        room: Some(RoomName::parse("lobby", 32).expect("room")),
        seq,
        from: Nick::parse("ada", 32).expect("nick"),
        sender: None,
        to: None,
        recipient: None,
        at: Utc::now(),
        kind: Kind::Text,
        text: format!("m{seq}").into(),
    })
}

#[test]
fn a_restarted_server_costs_at_most_the_call_that_found_it_gone() {
    let Some(server) = TestPostgres::own() else { return };
    let url = server.database();
    let store = PostgresStore::open(&url, Retention::default()).expect("opens");
    let lobby = RoomName::parse("lobby", 32).expect("room");
    store.append(&[said(1), said(2)]).expect("appends");
    assert_eq!(store.recent(&lobby, 0, 10).expect("reads").len(), 2);
    server.restart();
    // The writer's and the reader's connections were cut: the first call on each may
    // fail, clearly, and the next one connects again.
    match store.append(&[said(3)]) {
        Ok(()) => {}
        Err(StoreError::Write(why)) => {
            assert!(why.contains("connection") || why.contains("terminat"), "a clear reason: {why}");
            store.append(&[said(3)]).expect("appends after reconnecting");
        }
        Err(other) => panic!("a write fails as a write: {other}"),
    }
    let after = store.recent(&lobby, 0, 10).or_else(|_| store.recent(&lobby, 0, 10)).expect("reads");
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3], "nothing committed was lost");
}

#[test]
fn stores_opening_one_database_at_once_migrate_it_once() {
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    let opened: Vec<PostgresStore> = std::thread::scope(|scope| {
        let openers: Vec<_> =
            (0..4).map(|_| scope.spawn(|| PostgresStore::open(&url, Retention::default()).expect("opens"))).collect();
        openers.into_iter().map(|o| o.join().expect("opens")).collect()
    });
    opened[0].append(&[said(1)]).expect("appends");
    assert_eq!(opened[3].last_seqs().expect("reads").len(), 1, "one database");
    let name = url.rsplit('/').next().expect("a database name");
    assert_eq!(server.psql(name, "SELECT version FROM parley_schema").trim(), "1");
}

#[test]
fn a_database_from_a_newer_parley_is_refused() {
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    drop(PostgresStore::open(&url, Retention::default()).expect("opens"));
    let name = url.rsplit('/').next().expect("a database name");
    server.psql(name, "UPDATE parley_schema SET version = 99");
    match PostgresStore::open(&url, Retention::default()) {
        Err(e @ PostgresError::TooNew { found: 99, .. }) => assert!(e.to_string().contains("upgrade Parley"), "{e}"),
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a newer schema must not be opened"),
    }
}

#[test]
fn an_unreachable_or_invalid_database_is_a_clear_error_without_the_password() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("an address").port();
    let url = format!("postgres://parley:hunter2@127.0.0.1:{free}/chat");
    match PostgresStore::open(&url, Retention::default()) {
        Err(e @ PostgresError::Connect { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("127.0.0.1:{free}/chat")), "{text}");
            assert!(!text.contains("hunter2"), "the password stays secret: {text}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("nothing listens there"),
    }
    assert!(matches!(PostgresStore::open("postgres://[::1", Retention::default()), Err(PostgresError::Url(_))));
}
