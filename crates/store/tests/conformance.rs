//! What every store must do, checked against each: the embedded SQLite store and
//! PostgreSQL (a server of the test's own, on 127.0.0.1; skipped loudly when PostgreSQL
//! is not installed, a failure in CI). Each check is one function over a [`Backend`];
//! `conformance!` makes it a test per backend.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use parley_hub::{
    Account, AccountId, Change, Changed, ClientTags, Cursor, Deletion, GuestId, Kind, Mask, Meta, Nick, Page, Party,
    Record, Restriction, RoomModes, RoomName, Search, Store, StoreError, Verdict,
};
use parley_store::testing::TestPostgres;
use parley_store::{AccountEntry, PostgresStore, Retention, SqliteStore};

/// A store under test, and what the checks need beyond the hub's traits (the owner's
/// commands, applying retention now).
trait Backend: Store + Sized {
    /// Where the store keeps its data: a directory, or a database.
    type Place;

    /// A fresh, empty place; `None` when the backend cannot run here.
    fn place(name: &str) -> Option<Self::Place>;
    fn open(place: &Self::Place, retention: Retention) -> Self;
    fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError>;
    fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError>;
    fn apply_retention(&self) -> Result<u64, StoreError>;
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Backend for SqliteStore {
    type Place = TempDir;

    fn place(name: &str) -> Option<TempDir> {
        let dir = std::env::temp_dir().join(format!("parley-conformance-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Some(TempDir(dir))
    }

    fn open(place: &TempDir, retention: Retention) -> Self {
        SqliteStore::open(&place.0, retention).expect("opens")
    }

    fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError> {
        SqliteStore::set_admin(self, account, admin)
    }

    fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        SqliteStore::list_accounts(self)
    }

    fn apply_retention(&self) -> Result<u64, StoreError> {
        SqliteStore::apply_retention(self)
    }
}

impl Backend for PostgresStore {
    /// The server (kept running while the place lives) and the database's URL.
    type Place = (Arc<TestPostgres>, String);

    fn place(_name: &str) -> Option<Self::Place> {
        let server = TestPostgres::shared()?;
        let url = server.database();
        Some((server, url))
    }

    fn open(place: &Self::Place, retention: Retention) -> Self {
        PostgresStore::open(&place.1, retention).expect("opens")
    }

    fn set_admin(&self, account: &Account, admin: bool) -> Result<bool, StoreError> {
        PostgresStore::set_admin(self, account, admin)
    }

    fn list_accounts(&self) -> Result<Vec<AccountEntry>, StoreError> {
        PostgresStore::list_accounts(self)
    }

    fn apply_retention(&self) -> Result<u64, StoreError> {
        PostgresStore::apply_retention(self)
    }
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $check() {
                    let place = <parley_store::SqliteStore as super::Backend>::place(stringify!($check));
                    super::$check::<parley_store::SqliteStore>(&place.expect("a directory"));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $check() {
                    if let Some(place) = <parley_store::PostgresStore as super::Backend>::place(stringify!($check)) {
                        super::$check::<parley_store::PostgresStore>(&place);
                    }
                }
            )*
        }
    };
}

conformance!(
    messages_survive_reopening_and_page_by_seq_from_where_the_reader_may_see,
    retention_keeps_the_newest_per_room_and_the_order_continues,
    search_finds_every_word_only_where_the_user_may_look,
    search_holds_exactly_what_retention_leaves,
    from_finds_a_sender_however_their_name_is_cased,
    a_deleted_message_leaves_pages_and_search_and_its_seq_is_never_given_again,
    read_markers_only_move_forward_and_go_with_their_account,
    accounts_are_registered_once_verified_changed_and_never_renumbered,
    two_stores_on_one_place_give_a_name_to_one_account,
    a_registered_room_keeps_its_state_and_an_unregistered_one_only_its_audit,
    server_bans_are_kept_by_mask_without_regard_to_case,
    deleting_an_account_takes_its_roles_rooms_and_private_words_with_it,
    resume_tokens_are_found_by_hash_capped_expired_and_revoked,
);

fn nick(name: &str) -> Nick {
    Nick::parse(name, 32).expect("nick")
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name, 32).expect("room")
}

fn said(room_name: &str, seq: u64, text: &str) -> Arc<Record> {
    Arc::new(Record {
        room: Some(room(room_name)),
        seq,
        from: nick("ada"),
        sender: None,
        to: None,
        recipient: None,
        at: Utc::now(),
        kind: Kind::Text,
        text: text.into(),
        meta: None,
        userhost: None,
    })
}

fn seqs(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn page(cursor: Cursor, since: u64, upto: u64, limit: usize) -> Page {
    Page { room: room("Lobby"), cursor, since, upto, limit }
}

fn messages_survive_reopening_and_page_by_seq_from_where_the_reader_may_see<S: Backend>(place: &S::Place) {
    {
        let store = S::open(place, Retention::default());
        let mut batch: Vec<_> = (1..=10).map(|n| said("lobby", n, &format!("m{n}"))).collect();
        // The tenth answers the ninth, with a client tag: kept with it.
        let tags = ClientTags::new(vec![("example.com/x".into(), "a;b c".into())]).expect("valid");
        let meta = Meta { reply_to: Some(9), tags }.shared();
        batch[9] = Arc::new(Record { meta, ..(*batch[9]).clone() });
        store.append(&batch).expect("appends");
        let whisper = Record {
            room: None,
            seq: 1,
            to: Some(nick("bob")),
            sender: Some(Party::Guest(GuestId(7))),
            recipient: Some(Party::Account(AccountId(3))),
            kind: Kind::Action,
            ..(*said("lobby", 0, "psst")).clone()
        };
        store.append(&[Arc::new(whisper)]).expect("appends");
    }
    let store = S::open(place, Retention::default());
    let rooms = store.last_seqs().expect("rooms");
    assert_eq!(rooms.len(), 1, "private messages belong to no room");
    assert_eq!((rooms[0].0.as_str(), rooms[0].1), ("lobby", 10));
    let lobby = room("LOBBY");
    assert_eq!(seqs(&store.recent(&lobby, 0, 3).expect("recent")), [8, 9, 10], "names compare by key");
    assert_eq!(seqs(&store.recent(&lobby, 9, 3).expect("recent")), [9, 10], "from since on");
    assert_eq!(seqs(&store.page(&page(Cursor::Latest, 0, 10, 4)).expect("page")), [7, 8, 9, 10]);
    assert_eq!(seqs(&store.page(&page(Cursor::Latest, 0, 8, 2)).expect("page")), [7, 8], "never past upto");
    assert_eq!(seqs(&store.page(&page(Cursor::Before(5), 0, 10, 3)).expect("page")), [2, 3, 4]);
    assert_eq!(seqs(&store.page(&page(Cursor::Before(5), 3, 10, 3)).expect("page")), [3, 4]);
    assert_eq!(seqs(&store.page(&page(Cursor::After(7), 0, 9, 10)).expect("page")), [8, 9]);
    assert_eq!(seqs(&store.page(&page(Cursor::After(1), 6, 9, 2)).expect("page")), [6, 7]);
    assert_eq!(
        seqs(&store.page(&page(Cursor::Before(u64::MAX), u64::MAX, u64::MAX, 5)).expect("page")),
        [] as [u64; 0]
    );
    let first = &store.recent(&lobby, 0, 1).expect("recent")[0];
    assert_eq!((first.text.as_ref(), first.from.as_str(), first.kind), ("m10", "ada", Kind::Text), "as appended");
    let meta = first.meta.as_deref().expect("the metadata is kept");
    assert_eq!(meta.reply_to, Some(9));
    assert_eq!(meta.tags.pairs(), &[("example.com/x".to_owned(), "a;b c".to_owned())]);
    assert!(store.recent(&lobby, 9, 1).expect("recent")[0].meta.is_some());
    assert!(seqs(&store.recent(&lobby, 0, 10).expect("recent")).len() == 10);
    assert!(store.recent(&lobby, 0, 10).expect("recent")[..9].iter().all(|r| r.meta.is_none()), "none without");
    let duplicate = store.append(&[said("Lobby", 10, "again")]);
    assert!(matches!(duplicate, Err(StoreError::Write(_))), "a seq is stored once");
    assert_eq!(store.recent(&lobby, 0, 50).expect("recent").len(), 10, "a failed batch leaves nothing");
    assert_eq!(store.last_private_seq().expect("reads"), 1);
    assert_eq!(store.last_guest().expect("reads"), 7);
    let (guest, account) = (Party::Guest(GuestId(7)), Party::Account(AccountId(3)));
    let talk = store.conversation(account, guest, Cursor::Latest, 10, 10).expect("reads");
    assert_eq!(talk.len(), 1);
    assert_eq!((talk[0].sender, talk[0].recipient), (Some(guest), Some(account)));
    assert_eq!((talk[0].to.as_ref().map(Nick::as_str), talk[0].kind), (Some("bob"), Kind::Action));
    let other = Party::Guest(GuestId(8));
    assert!(store.conversation(account, other, Cursor::Latest, 10, 10).expect("reads").is_empty());
}

fn retention_keeps_the_newest_per_room_and_the_order_continues<S: Backend>(place: &S::Place) {
    let retention = Retention { max_per_room: Some(3), ..Retention::default() };
    let store = S::open(place, retention);
    let batch: Vec<_> = (1..=8).map(|n| said("lobby", n, "x")).collect();
    store.append(&batch).expect("appends");
    let lobby = room("lobby");
    assert_eq!(seqs(&store.recent(&lobby, 0, 50).expect("recent")), [6, 7, 8]);
    assert_eq!(store.last_seqs().expect("rooms")[0].1, 8);
    let more: Vec<_> = (9..=12).map(|n| said("lobby", n, "x")).collect();
    store.append(&more).expect("appends");
    assert_eq!(store.apply_retention().expect("prunes"), 4);
    assert_eq!(seqs(&store.recent(&lobby, 0, 50).expect("recent")), [10, 11, 12]);
    assert_eq!(store.last_seqs().expect("rooms")[0].1, 12, "the order outlives what is deleted");
}

fn search_finds_every_word_only_where_the_user_may_look<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let (ada, bob, carol, dave) = (1, 2, 3, 4);
    let mut batch: Vec<Arc<Record>> = vec![
        said("lobby", 1, "The deploy went fine"),
        said("lobby", 2, "no deploy today, the café is closed"),
        said("ops", 1, "deploy failed: disk full"),
        said("lobby", 3, "unrelated chatter"),
        said("ops", 2, "a later deploy in a new life"),
    ];
    let whisper = |from: (&str, i64), to: (&str, i64), text: &str| {
        Arc::new(Record {
            room: None,
            seq: 0,
            from: nick(from.0),
            sender: Some(Party::Account(AccountId(from.1))),
            to: Some(nick(to.0)),
            recipient: Some(Party::Account(AccountId(to.1))),
            ..(*said("x", 0, text)).clone()
        })
    };
    batch.push(whisper(("ada", ada), ("bob", bob), "secret deploy plan"));
    batch.push(whisper(("carol", carol), ("dave", dave), "their deploy secret"));
    store.append(&batch).expect("appends");
    let search = |words: &[&str], rooms: &[(&str, u64)], me: Option<i64>| Search {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        from: None,
        rooms: rooms.iter().map(|(r, since)| (room(r), *since)).collect(),
        private_of: me.map(|id| Party::Account(AccountId(id))),
        before: None,
        after: None,
        limit: 10,
        offset: 0,
    };
    let texts = |s: &Search| -> Vec<String> {
        let mut found: Vec<String> = store.search(s).expect("searches").iter().map(|r| r.text.to_string()).collect();
        found.sort();
        found
    };
    assert_eq!(
        texts(&search(&["DEPLOY"], &[("Lobby", 0)], None)),
        ["The deploy went fine", "no deploy today, the café is closed"]
    );
    assert_eq!(
        texts(&search(&["deploy", "cafe"], &[("lobby", 0)], None)),
        ["no deploy today, the café is closed"],
        "accents"
    );
    assert_eq!(texts(&search(&["CAFÉ"], &[("lobby", 0)], None)), ["no deploy today, the café is closed"]);
    assert_eq!(
        texts(&search(&["deploy"], &[("ops", 2)], Some(bob))),
        ["a later deploy in a new life", "secret deploy plan"],
        "a room from where its reader may see it, and their own private messages"
    );
    assert!(texts(&search(&["deploy"], &[], None)).is_empty(), "no rooms, no party: nothing");
    assert_eq!(texts(&search(&["deploy"], &[], Some(dave))), ["their deploy secret"], "only their own");
    assert!(texts(&search(&["\"deploy", "OR", "*"], &[("lobby", 0)], None)).is_empty(), "syntax is only words");
    assert_eq!(
        texts(&search(&["deploy", "&", "!fine", "|"], &[("lobby", 0)], None)),
        ["The deploy went fine"],
        "operators are no words: only the words count"
    );
    assert!(texts(&search(&["  "], &[("lobby", 0)], None)).is_empty(), "no words, nothing");
    assert!(texts(&search(&["deplo"], &[("lobby", 0)], None)).is_empty(), "whole words");
    let mut from_ada = search(&["deploy"], &[("lobby", 0), ("ops", 0)], Some(bob));
    from_ada.from = Some(nick("ADA"));
    assert_eq!(texts(&from_ada).len(), 5, "from: compares names by key");
    from_ada.from = Some(nick("carol"));
    assert!(texts(&from_ada).is_empty());
    let mut paged = search(&["deploy"], &[("lobby", 0), ("ops", 0)], None);
    paged.limit = 2;
    let first = store.search(&paged).expect("searches");
    assert_eq!(first.len(), 2);
    paged.offset = 2;
    let second = store.search(&paged).expect("searches");
    assert_eq!(second.len(), 2);
    assert!(first.iter().all(|r| !second.contains(r)), "pages do not overlap");
    let mut later = search(&["deploy"], &[("lobby", 0), ("ops", 0)], None);
    later.after = Some(Utc::now() + chrono::Duration::hours(1));
    assert!(texts(&later).is_empty(), "after:");
    let mut earlier = search(&["deploy"], &[("lobby", 0), ("ops", 0)], None);
    earlier.before = Some(Utc::now() - chrono::Duration::hours(1));
    assert!(texts(&earlier).is_empty(), "before:");
    earlier.before = Some(Utc::now() + chrono::Duration::hours(1));
    assert_eq!(texts(&earlier).len(), 4);
}

fn search_holds_exactly_what_retention_leaves<S: Backend>(place: &S::Place) {
    let retention = Retention { max_per_room: Some(3), ..Retention::default() };
    let store = S::open(place, retention);
    let batch: Vec<_> = (1..=8).map(|n| said("lobby", n, "x")).collect();
    store.append(&batch).expect("appends");
    let search = Search {
        words: vec!["x".into()],
        from: None,
        rooms: vec![(room("lobby"), 0)],
        private_of: None,
        before: None,
        after: None,
        limit: 50,
        offset: 0,
    };
    assert_eq!(store.search(&search).expect("searches").len(), 3);
    let more: Vec<_> = (9..=12).map(|n| said("lobby", n, "x")).collect();
    store.append(&more).expect("appends");
    store.apply_retention().expect("prunes");
    let mut found = store.search(&search).expect("searches");
    found.sort_by_key(|r| r.seq);
    assert_eq!(seqs(&found), [10, 11, 12]);
}

fn accounts_are_registered_once_verified_changed_and_never_renumbered<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let ada = nick("Ada");
    let first = store.register(&ada, "first password").expect("registers").expect("new");
    assert_eq!(store.register(&nick("ada"), "another").expect("answers"), None, "names ignore case");
    let right = store.verify(&nick("ADA"), "first password").expect("verifies");
    assert_eq!(right, Verdict::Right { account: first.clone(), admin: false }, "as registered");
    assert_eq!(store.verify(&ada, "wrong").expect("verifies"), Verdict::Wrong);
    assert_eq!(store.verify(&nick("bob"), "x").expect("verifies"), Verdict::NoAccount);
    assert!(store.set_password(first.id, "second password").expect("changes"));
    assert!(!store.set_password(AccountId(first.id.0 + 100), "x").expect("answers"), "no such account");
    assert!(!store.verify_id(first.id, "first password").expect("verifies"));
    assert!(store.verify_id(first.id, "second password").expect("verifies"));
    assert!(store.set_admin(&first, true).expect("grants"));
    assert!(!store.set_admin(&first, true).expect("answers"), "nothing changed");
    assert_eq!(
        store.verify(&ada, "second password").expect("verifies"),
        Verdict::Right { account: first.clone(), admin: true }
    );
    let bob = store.register(&nick("bob"), "bob's password").expect("registers").expect("new");
    assert_eq!(store.accounts().expect("lists"), [first.clone(), bob.clone()], "by name");
    let listed = store.list_accounts().expect("lists");
    assert_eq!(listed.iter().map(|e| e.admin).collect::<Vec<_>>(), [true, false]);
    assert!(store.delete_account(first.id, "ada").expect("deletes"));
    assert!(!store.delete_account(first.id, "ada").expect("answers"), "once");
    assert_eq!(store.accounts().expect("lists"), [bob]);
    // The name is free again, as a new account with none of the old one's role.
    let again = store.register(&ada, "third password").expect("registers").expect("new");
    assert!(again.id > first.id, "ids are never reused");
    assert_eq!(
        store.verify(&ada, "third password").expect("verifies"),
        Verdict::Right { account: again, admin: false }
    );
    let actions: Vec<String> = store.audit(10).expect("reads").into_iter().map(|l| l.action).collect();
    assert_eq!(actions, ["delete account", "grant admin"], "newest first");
}

fn two_stores_on_one_place_give_a_name_to_one_account<S: Backend>(place: &S::Place) {
    let (one, two) = (S::open(place, Retention::default()), S::open(place, Retention::default()));
    let won = std::thread::scope(|scope| {
        let racers: Vec<_> = [&one, &two]
            .into_iter()
            .map(|store| scope.spawn(move || store.register(&nick("Zed"), "password1").expect("answers")))
            .collect();
        racers.into_iter().filter_map(|racer| racer.join().expect("registers")).count()
    });
    assert_eq!(won, 1, "exactly one registration of a name wins");
    assert_eq!(two.accounts().expect("lists").len(), 1);
    assert_eq!(one.accounts().expect("lists"), two.accounts().expect("lists"));
}

fn change(room_name: Option<&str>, durable: bool, what: Changed) -> Change {
    Change { actor: nick("ada"), room: room_name.map(room), durable, at: Utc::now(), what }
}

fn ban(room_name: &str, mask: &str) -> Restriction {
    Restriction {
        room: room(room_name),
        ban: true,
        mask: Mask::parse(mask, 32).expect("mask"),
        until: None,
        reason: Some("spam".into()),
        set_by: Some(nick("ada")),
        set_at: chrono::DateTime::from_timestamp_micros(1_800_000_000_000_000),
    }
}

fn a_registered_room_keeps_its_state_and_an_unregistered_one_only_its_audit<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let ada = store.register(&nick("ada"), "password1").expect("registers").expect("new");
    let bob = store.register(&nick("bob"), "password1").expect("registers").expect("new");
    let modes =
        RoomModes { secret: true, private: true, key: Some("k3y".into()), limit: Some(10), ..RoomModes::default() };
    let register = Changed::Registered {
        founder: Some(ada.clone()),
        since: 42,
        modes: modes.clone(),
        topic: None,
        restrictions: Vec::new(),
    };
    store.record(&change(Some("Staff"), true, register)).expect("registers");
    store.record(&change(Some("staff"), true, Changed::Restricted(ban("staff", "10.0.0.1")))).expect("bans");
    store.record(&change(Some("staff"), true, Changed::Restricted(ban("staff", "Mallory")))).expect("bans");
    store.record(&change(Some("STAFF"), true, Changed::Restricted(ban("staff", "mallory")))).expect("again");
    store.record(&change(Some("staff"), true, Changed::Topic("plans".into()))).expect("topic");
    store.record(&change(Some("staff"), true, Changed::Opped(bob.clone()))).expect("ops");
    store.record(&change(Some("guests"), false, Changed::Restricted(ban("guests", "10.0.0.2")))).expect("audits");
    store.record(&change(Some("guests"), false, Changed::Topic("gone".into()))).expect("audits");
    let kept = store.moderation().expect("reads");
    let names: Vec<&str> = kept.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names, ["lobby", "Staff"], "the server's lobby and the registered room only");
    let staff = &kept.rooms[1];
    assert_eq!((staff.room.as_str(), staff.founder, staff.since), ("Staff", Some(ada.id), 42));
    assert_eq!(staff.modes, modes);
    assert_eq!(staff.ops, [ada.id, bob.id]);
    assert_eq!(staff.restrictions.len(), 2, "a nick is banned once whatever its case");
    let setter = &staff.restrictions[0];
    assert_eq!((setter.set_by.as_ref().map(Nick::as_str), setter.set_at), (Some("ada"), ban("Staff", "x").set_at));
    let topic = staff.topic.as_ref().expect("a topic");
    assert_eq!((topic.text.as_str(), topic.by.as_str()), ("plans", "ada"));
    let audit = store.audit(20).expect("reads");
    assert_eq!(audit.len(), 8, "every change is audited");
    assert_eq!((audit[0].action.as_str(), audit[0].room.as_deref()), ("topic", Some("guests")));
    store.record(&change(Some("staff"), true, Changed::Deopped(bob))).expect("deops");
    let lifted = Changed::Lifted { ban: true, mask: Mask::parse("MALLORY", 32).expect("mask") };
    store.record(&change(Some("staff"), true, lifted)).expect("lifts");
    let off = RoomModes { moderated: true, ..RoomModes::default() };
    store.record(&change(Some("staff"), true, Changed::Modes(off.clone()))).expect("modes");
    store.record(&change(Some("staff"), true, Changed::Topic(String::new()))).expect("clears");
    let kept = store.moderation().expect("reads");
    let staff = &kept.rooms[1];
    assert_eq!((staff.ops.as_slice(), staff.restrictions.len()), ([ada.id].as_slice(), 1));
    assert_eq!((&staff.modes, &staff.topic), (&off, &None));
    store.record(&change(Some("staff"), true, Changed::Unregistered)).expect("unregisters");
    assert_eq!(store.moderation().expect("reads").rooms.len(), 1, "the lobby only");
}

fn server_bans_are_kept_by_mask_without_regard_to_case<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let server_ban = |mask: &str, reason: &str| {
        Changed::ServerBanned(parley_hub::ServerBan {
            mask: Mask::parse(mask, 32).expect("mask"),
            until: Some(Utc::now() + chrono::Duration::hours(1)),
            reason: Some(reason.into()),
        })
    };
    store.record(&change(None, true, server_ban("Mallory", "first"))).expect("bans");
    store.record(&change(None, true, server_ban("mallory", "second"))).expect("bans again");
    store.record(&change(None, true, server_ban("2001:db8::1", "a network"))).expect("bans");
    let bans = store.moderation().expect("reads").server_bans;
    assert_eq!(bans.len(), 2);
    let mallory = bans.iter().find(|b| !b.mask.is_address()).expect("the nick's ban");
    assert_eq!(mallory.reason.as_deref(), Some("second"), "the latest ban of a mask counts");
    assert!(mallory.until.is_some());
    let unban = Changed::ServerUnbanned(Mask::parse("MALLORY", 32).expect("mask"));
    store.record(&change(None, true, unban)).expect("unbans");
    let bans = store.moderation().expect("reads").server_bans;
    assert_eq!(bans.len(), 1);
    assert!(bans[0].mask.is_address());
}

fn deleting_an_account_takes_its_roles_rooms_and_private_words_with_it<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let chief = store.register(&nick("chief"), "password1").expect("ok").expect("new");
    let other = store.register(&nick("other"), "password1").expect("ok").expect("new");
    store.set_admin(&chief, true).expect("grants");
    let founded = Changed::Registered {
        founder: Some(chief.clone()),
        since: 1,
        modes: RoomModes::default(),
        topic: None,
        restrictions: Vec::new(),
    };
    store.record(&change(Some("hq"), true, founded)).expect("registers");
    let whisper = |seq, from: &Account, to: &Account| {
        Arc::new(Record {
            room: None,
            seq,
            from: from.name.clone(),
            sender: Some(Party::Account(from.id)),
            to: Some(to.name.clone()),
            recipient: Some(Party::Account(to.id)),
            ..(*said("x", 0, "psst")).clone()
        })
    };
    store.append(&[whisper(1, &chief, &other), whisper(2, &other, &chief), said("hq", 1, "kept")]).expect("appends");
    assert!(store.delete_account(chief.id, "parley admin").expect("deletes"));
    let kept = store.moderation().expect("reads");
    assert!(kept.admins.is_empty(), "the role went with the account");
    assert!(kept.rooms.iter().all(|r| r.room.as_str() != "hq"), "so did the room it founded");
    let talk = store.conversation(Party::Account(other.id), Party::Account(chief.id), Cursor::Latest, 10, 10);
    assert!(talk.expect("reads").is_empty(), "and its private words");
    assert_eq!(store.recent(&room("hq"), 0, 10).expect("reads").len(), 1, "its room messages stay");
    let again = store.register(&nick("chief"), "password2").expect("ok").expect("new");
    assert!(!store.moderation().expect("reads").admins.contains(&again.id));
}

fn search_for(words: &[&str], room_name: &str, from: Option<&str>) -> Search {
    Search {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        from: from.map(nick),
        rooms: vec![(room(room_name), 0)],
        private_of: None,
        before: None,
        after: None,
        limit: 10,
        offset: 0,
    }
}

fn from_finds_a_sender_however_their_name_is_cased<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let by = |from: &str, seq: u64| Arc::new(Record { from: nick(from), ..(*said("café", seq, "bonjour")).clone() });
    store.append(&[by("José", 1), by("Zoë", 2), by("JOSÉ", 3)]).expect("appends");
    let seqs = |from: &str| {
        let found = store.search(&search_for(&["bonjour"], "Café", Some(from))).expect("searches");
        let mut seqs: Vec<u64> = found.iter().map(|r| r.seq).collect();
        seqs.sort_unstable();
        seqs
    };
    assert_eq!(seqs("josé"), [1, 3]);
    assert_eq!(seqs("ZOË"), [2]);
    assert!(seqs("jose").is_empty(), "an accent is part of the name");
}

fn a_deleted_message_leaves_pages_and_search_and_its_seq_is_never_given_again<S: Backend>(place: &S::Place) {
    let lobby = room("lobby");
    let (ada, bob) = (Party::Account(AccountId(1)), Party::Guest(GuestId(2)));
    let by = |seq: u64, party: Party, text: &str| {
        Arc::new(Record { sender: Some(party), ..(*said("lobby", seq, text)).clone() })
    };
    {
        let store = S::open(place, Retention::default());
        store.append(&[by(1, ada, "hello"), by(2, bob, "secret plans"), by(3, bob, "oops")]).expect("appends");
        // Searched first (which brings SQLite's index up to date), so that the deletion
        // must take it out of the index too.
        assert_eq!(store.search(&search_for(&["secret"], "lobby", None)).expect("searches").len(), 1);
        assert_eq!(store.delete(&lobby, 2, 0, Some(ada)).expect("deletes"), Deletion::NotAuthor);
        assert_eq!(store.delete(&lobby, 2, 3, None).expect("deletes"), Deletion::NoSuchMessage, "before since");
        assert_eq!(store.delete(&lobby, 9, 0, None).expect("deletes"), Deletion::NoSuchMessage);
        let Deletion::Deleted(gone) = store.delete(&room("LOBBY"), 2, 0, Some(bob)).expect("deletes") else {
            panic!("the author deletes their own");
        };
        assert_eq!(&*gone.text, "secret plans");
        assert_eq!(store.delete(&lobby, 2, 0, Some(bob)).expect("deletes"), Deletion::NoSuchMessage, "once");
        assert!(matches!(store.delete(&lobby, 3, 0, None), Ok(Deletion::Deleted(_))), "an operator's");
        let found = store.search(&search_for(&["secret"], "lobby", None)).expect("searches");
        assert!(found.is_empty(), "search forgets it: {found:?}");
    }
    let store = S::open(place, Retention::default());
    assert_eq!(seqs(&store.recent(&lobby, 0, 10).expect("recent")), [1]);
    assert_eq!(store.last_seqs().expect("rooms")[0].1, 3, "the order goes on after the deleted last message");
}

fn read_markers_only_move_forward_and_go_with_their_account<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let ada = store.register(&nick("ada"), "password1").expect("registers").expect("new");
    let bob = store.register(&nick("bob"), "password1").expect("registers").expect("new");
    let now = Utc::now();
    let earlier = now - chrono::Duration::minutes(5);
    store.mark_read(ada.id, "#lobby", now).expect("marks");
    store.mark_read(ada.id, "#lobby", earlier).expect("marks");
    store.mark_read(ada.id, "@2", earlier).expect("marks");
    store.mark_read(bob.id, "#lobby", earlier).expect("marks");
    let mut markers = store.read_markers().expect("reads");
    markers.sort_by(|a, b| (a.account, &a.target).cmp(&(b.account, &b.target)));
    let seen: Vec<(AccountId, &str, i64)> =
        markers.iter().map(|m| (m.account, m.target.as_str(), m.at.timestamp_micros())).collect();
    assert_eq!(
        seen,
        [
            (ada.id, "#lobby", now.timestamp_micros()),
            (ada.id, "@2", earlier.timestamp_micros()),
            (bob.id, "#lobby", earlier.timestamp_micros())
        ],
        "a marker never moves back"
    );
    assert!(store.delete_account(ada.id, "ada").expect("deletes"));
    let left: Vec<AccountId> = store.read_markers().expect("reads").iter().map(|m| m.account).collect();
    assert_eq!(left, [bob.id], "an account's markers go with it");
}

fn resume_tokens_are_found_by_hash_capped_expired_and_revoked<S: Backend>(place: &S::Place) {
    let store = S::open(place, Retention::default());
    let ada = store.register(&nick("ada"), "password1").expect("registers").expect("new");
    let bob = store.register(&nick("bob"), "password1").expect("registers").expect("new");
    let now = Utc::now();
    let month = now - chrono::Duration::days(30);
    let issue = |who: AccountId, hash: &[u8], at| {
        store.issue_token(who, hash, "native 127.0.0.1", at, 3, month).expect("issues").expect("an account")
    };
    let first = issue(ada.id, b"ada-1", now);
    let bobs = issue(bob.id, b"bob-1", now);
    assert!(store.issue_token(AccountId(9999), b"nobody", "x", now, 3, month).expect("runs").is_none());
    let found = store.use_token(b"ada-1", now, month).expect("reads").expect("found");
    assert_eq!((found.account.id, found.account.name.as_str(), found.admin), (ada.id, "ada", false));
    assert_eq!((found.token.id, found.token.description.as_str()), (first, "native 127.0.0.1"));
    assert!(store.use_token(b"ada-2", now, month).expect("reads").is_none(), "an unknown hash");

    // At most three per account here: a fourth revokes the oldest.
    let (second, third) = (issue(ada.id, b"ada-2", now), issue(ada.id, b"ada-3", now));
    let fourth = issue(ada.id, b"ada-4", now);
    let mut ids: Vec<u64> = store.tokens(ada.id).expect("lists").iter().map(|t| t.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [second, third, fourth]);
    assert!(store.use_token(b"ada-1", now, month).expect("reads").is_none(), "the oldest went");

    // Expired: unused since before the limit.
    let later = now + chrono::Duration::days(31);
    assert!(store.use_token(b"ada-2", later, later - chrono::Duration::days(30)).expect("reads").is_none());
    // A use within the idle limit moves it on.
    let used = store.use_token(b"ada-3", later, month).expect("reads").expect("found");
    assert_eq!(used.token.last_used.timestamp_micros(), later.timestamp_micros());

    // Revoking: by its account only.
    assert!(!store.revoke_token(bob.id, third).expect("runs"), "not bob's");
    assert!(store.revoke_token(ada.id, third).expect("revokes"));
    assert!(!store.revoke_token(ada.id, third).expect("runs"), "once");
    assert!(store.use_token(b"ada-3", later, month).expect("reads").is_none());

    // A new password revokes every token of the account, and only of it.
    assert!(store.set_password(ada.id, "password2").expect("changes"));
    assert!(store.tokens(ada.id).expect("lists").is_empty());
    assert_eq!(store.tokens(bob.id).expect("lists").iter().map(|t| t.id).collect::<Vec<_>>(), [bobs]);
    // And a deleted account takes its tokens along.
    assert!(store.delete_account(bob.id, "bob").expect("deletes"));
    assert!(store.use_token(b"bob-1", now, month).expect("reads").is_none());
    assert!(store.tokens(bob.id).expect("lists").is_empty());
}
