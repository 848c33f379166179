//! What only the PostgreSQL store has to do: survive its server restarting, share a
//! schema between stores that open it at once, refuse a schema from a newer Parley, and
//! say clearly when it cannot connect. (Everything both stores do is in conformance.rs.)

use std::sync::Arc;

use chrono::Utc;
use parley_hub::{AccountId, Cursor, Kind, MessageStore as _, Nick, Party, Record, RoomName, StoreError};
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
        meta: None,
        userhost: None,
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
    let version = server.psql(name, "SELECT version FROM parley_schema");
    assert_eq!(version.trim(), parley_store::postgres_schema_version().to_string(), "every migration, once");
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
    let tls = format!("postgres://parley@127.0.0.1:{free}/chat?sslmode=require");
    assert!(
        matches!(PostgresStore::open(&tls, Retention::default()), Err(PostgresError::TlsRequired)),
        "said, not tried"
    );
}

/// A data directory copied from a fixture, removed when dropped.
struct Copy(std::path::PathBuf);

impl Copy {
    fn of(fixture: &str) -> Copy {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
        let to = std::env::temp_dir().join(format!("parley-import-{fixture}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).expect("creates the copy");
        std::fs::copy(from.join(parley_store::DB_FILE), to.join(parley_store::DB_FILE)).expect("copies");
        Copy(to)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_imported_database_reads_back_as_the_sqlite_one_did_and_once_only() {
    use parley_hub::{AccountStore as _, Cursor, ModerationStore as _, Party, Verdict};
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    // A database made by an older release (accounts, registered rooms with operators,
    // topics and bans, mutes, server bans, private messages with accounts and guests).
    let data = Copy::of("v5");
    let sqlite = parley_store::SqliteStore::open(&data.0, Retention::default()).expect("opens");
    let postgres = PostgresStore::open(&url, Retention::default()).expect("opens");
    let moved = postgres.import(&sqlite).expect("imports");
    assert_eq!((moved.accounts, moved.rooms, moved.server_bans), (3, 2, 2));

    assert_eq!(postgres.accounts().expect("reads"), sqlite.accounts().expect("reads"), "ids and names");
    assert_eq!(postgres.list_accounts().expect("reads"), sqlite.list_accounts().expect("reads"), "roles, dates");
    assert_eq!(postgres.moderation().expect("reads"), sqlite.moderation().expect("reads"));
    assert_eq!(postgres.audit(1000).expect("reads"), sqlite.audit(1000).expect("reads"));
    let seqs = sqlite.last_seqs().expect("reads");
    assert_eq!(postgres.last_seqs().expect("reads"), seqs);
    for (room, _) in &seqs {
        assert_eq!(postgres.recent(room, 0, 1000).expect("reads"), sqlite.recent(room, 0, 1000).expect("reads"));
    }
    assert_eq!(postgres.last_private_seq().expect("reads"), sqlite.last_private_seq().expect("reads"));
    assert_eq!(postgres.last_guest().expect("reads"), sqlite.last_guest().expect("reads"));
    let accounts = sqlite.accounts().expect("reads");
    for a in &accounts {
        for b in &accounts {
            let (a, b) = (Party::Account(a.id), Party::Account(b.id));
            let page = |store: &dyn parley_hub::Store| store.conversation(a, b, Cursor::Latest, u64::MAX, 100);
            assert_eq!(page(&postgres).expect("reads"), page(&sqlite).expect("reads"));
        }
    }
    assert!(matches!(
        postgres.verify(&Nick::parse("chief", 32).expect("nick"), "chiefpass1"),
        Ok(Verdict::Right { admin: true, .. })
    ));
    let newcomer = postgres.register(&Nick::parse("newcomer", 32).expect("nick"), "password1").expect("ok");
    let newest = accounts.iter().map(|a| a.id).max().expect("accounts");
    assert!(newcomer.expect("registers").id > newest, "ids continue after the imported ones");

    match postgres.import(&sqlite) {
        Err(e @ parley_store::ImportError::NotEmpty { .. }) => {
            assert!(e.to_string().contains("accounts"), "says what is there: {e}");
        }
        other => panic!("a database in use must be refused: {other:?}"),
    }
    assert_eq!(postgres.accounts().expect("reads").len(), accounts.len() + 1, "and left as it was");
}

#[test]
fn a_call_from_a_thread_that_runs_async_tasks_blocks_it_and_does_not_panic() {
    // Store calls belong on blocking threads; one made from an async task (a mistake
    // the hub never makes) must cost that thread the wait, as on SQLite, not crash it.
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let seqs = runtime.block_on(async {
        let store = PostgresStore::open(&url, Retention::default()).expect("opens");
        store.append(&[said(1), said(2)]).expect("appends");
        let lobby = RoomName::parse("lobby", 32).expect("room");
        let seqs: Vec<u64> = store.recent(&lobby, 0, 10).expect("reads").iter().map(|r| r.seq).collect();
        drop(store);
        seqs
    });
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn a_message_written_again_by_another_node_is_kept_once() {
    // The nodes of a cluster each write every message of the shared log, room and
    // private alike, in batches that overlap.
    let Some(server) = TestPostgres::shared() else { return };
    let url = server.database();
    let (one, two) = (
        PostgresStore::open(&url, Retention::default()).expect("opens").shared_by_nodes(),
        PostgresStore::open(&url, Retention::default()).expect("opens").shared_by_nodes(),
    );
    let private = |seq: u64| {
        let mut record = Record::clone(&said(seq));
        record.room = None;
        record.to = Some(Nick::parse("bob", 32).expect("nick"));
        (record.sender, record.recipient) = (Some(Party::Account(AccountId(1))), Some(Party::Account(AccountId(2))));
        Arc::new(record)
    };
    one.append(&[said(1), said(2), private(1)]).expect("appends");
    two.append(&[said(2), said(3), private(1), private(2)]).expect("appends what is partly there");
    one.append(&[said(1), said(2), said(3), private(2)]).expect("appends what is all there");
    let lobby = RoomName::parse("lobby", 32).expect("room");
    let kept = two.recent(&lobby, 0, 10).expect("reads");
    assert_eq!(kept.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3], "each once");
    let between = one
        .conversation(Party::Account(AccountId(1)), Party::Account(AccountId(2)), Cursor::Latest, u64::MAX, 10)
        .expect("reads");
    assert_eq!(between.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2], "each private message once");
}
