//! Databases made by earlier releases open in this one: each fixture under
//! `tests/fixtures/vN` is a data directory written by the release whose schema version
//! was N (made by driving that release's server: accounts, rooms with operators, topics,
//! bans in a room and in the lobby, mutes, private messages with accounts and guests, a
//! shared file). Opening migrates it; everything must read back as this release means it,
//! and every file a message names is in the data directory with the bytes it names.
//!
//! `crates/parley/tests/fixtures.rs` writes the fixture of today's schema, and fails
//! until there is one.

use std::path::{Path, PathBuf};

use parley_hub::{
    AccountStore as _, Cursor, Kind, Mask, MessageStore as _, ModerationStore as _, Nick, Page, Party, Record,
    RoomName, TokenStore, Verdict,
};
use parley_store::{Retention, SqliteStore};

/// A copy of a fixture in a fresh directory, removed when dropped.
struct Copy(PathBuf);

impl Copy {
    fn of(fixture: &str) -> Copy {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(fixture);
        let to = std::env::temp_dir().join(format!("parley-upgrade-{fixture}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&to);
        copy_dir(&from, &to);
        Copy(to)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates the copy");
    for entry in std::fs::read_dir(from).expect("reads the fixture") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

fn nick(name: &str) -> Nick {
    Nick::parse(name, 32).expect("nick")
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name, 32).expect("room")
}

/// Every message of `room` there is, oldest first.
fn history(store: &SqliteStore, name: &str) -> Vec<Record> {
    let page = Page { room: room(name), cursor: Cursor::Latest, since: 0, upto: u64::MAX, limit: 500 };
    store.page(&page).expect("reads")
}

/// Checks that the file a file message names is shared in `data` and its bytes hash to
/// what the message says; returns the file's name.
fn file_is_there(data: &Path, message: &Record) -> String {
    assert_eq!(message.kind, Kind::File);
    let info: serde_json::Value = serde_json::from_str(&message.text).expect("a file's description");
    let field = |name: &str| info[name].as_str().expect("a field").to_owned();
    let share = data.join("files/shares").join(format!("{}.json", field("file")));
    let share: serde_json::Value = serde_json::from_slice(&std::fs::read(&share).expect("the share")).expect("JSON");
    let sha256 = field("sha256");
    assert_eq!(share["sha256"].as_str(), Some(sha256.as_str()));
    let bytes = std::fs::read(data.join("files").join(&sha256[..2]).join(&sha256[2..])).expect("the content");
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, sha256, "the bytes are the file's");
    assert_eq!(info["size"].as_u64(), Some(bytes.len() as u64));
    field("name")
}

#[test]
fn a_version_5_database_migrates_and_reads_back() {
    let data = Copy::of("v5");
    let store = SqliteStore::open(&data.0, Retention::default()).expect("migrates");

    // Accounts got ids, in the order they were registered; passwords still work.
    let accounts = store.accounts().expect("accounts");
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "chief"]);
    let id = |name: &str| accounts.iter().find(|a| a.name.as_str() == name).expect("account").id;
    assert!(id("chief") < id("alice") && id("alice") < id("bob"), "numbered by registration");
    let Verdict::Right { account, admin } = store.verify(&nick("chief"), "chiefpass1").expect("verifies") else {
        panic!("chief's password still works");
    };
    assert_eq!((account.id, admin), (id("chief"), true), "chief's admin role is the account's, by id");
    assert!(matches!(store.verify(&nick("alice"), "alicepass1"), Ok(Verdict::Right { admin: false, .. })));

    // Rooms with operators became registered rooms, founded by their first operator,
    // with their operators, topic and bans; the lobby is the server's. Lobby bans are
    // server bans now; the lobby's mute stays a mute in the lobby.
    let kept = store.moderation().expect("moderation");
    assert_eq!(kept.admins, [id("chief")]);
    let registered: Vec<&str> = kept.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(registered, ["lobby", "staff"], "guestroom had no operator: it is not registered");
    let lobby = &kept.rooms[0];
    assert_eq!((lobby.founder, lobby.since), (None, 0));
    assert_eq!(lobby.restrictions.len(), 1, "the mute of carol");
    assert!(!lobby.restrictions[0].ban);
    let staff = &kept.rooms[1];
    assert_eq!((staff.founder, staff.since), (Some(id("alice")), 0), "all of its history stays visible");
    let mut ops = staff.ops.clone();
    ops.sort();
    assert_eq!(ops, [id("alice"), id("bob")]);
    assert_eq!(staff.topic.as_ref().map(|t| t.text.as_str()), Some("secret plans"));
    assert_eq!(staff.restrictions.len(), 1);
    assert_eq!(staff.restrictions[0].mask, Mask::parse("10.1.2.3", 32).expect("mask"));
    let mut server_bans: Vec<String> = kept.server_bans.iter().map(|b| b.mask.to_string()).collect();
    server_bans.sort();
    assert_eq!(server_bans, ["10.9.9.9", "spammer"]);

    // Messages read back, and room seqs continue.
    let seqs = store.last_seqs().expect("seqs");
    let last = |name: &str| seqs.iter().find(|(r, _)| r.as_str() == name).map(|(_, s)| *s);
    assert_eq!((last("lobby"), last("staff"), last("guestroom")), (Some(2), Some(1), Some(1)));
    let page = Page { room: room("staff"), cursor: Cursor::Latest, since: 0, upto: u64::MAX, limit: 10 };
    let staff_history = store.page(&page).expect("reads");
    assert_eq!(staff_history.iter().map(|r| &*r.text).collect::<Vec<_>>(), ["staff only words"]);

    // Private messages between accounts are bound to them; the one from a guest is
    // bound to nobody (its nick could have been anyone's).
    let (alice, bob) = (Party::Account(id("alice")), Party::Account(id("bob")));
    let talk = store.conversation(alice, bob, Cursor::Latest, u64::MAX, 10).expect("reads");
    assert_eq!(talk.iter().map(|r| &*r.text).collect::<Vec<_>>(), ["private from alice", "private from bob"]);
    let from_guest = store.last_private_seq().expect("reads");
    assert_eq!(from_guest, 3);
    let all = store.conversation(alice, Party::Guest(parley_hub::GuestId(1)), Cursor::Latest, u64::MAX, 10);
    assert!(all.expect("reads").is_empty());

    // The file shared in the lobby is there.
    let lobby_history = history(&store, "lobby");
    assert_eq!(file_is_there(&data.0, lobby_history.last().expect("a message")), "hello.txt");

    // Opening again changes nothing more.
    drop(store);
    let again = SqliteStore::open(&data.0, Retention::default()).expect("opens again");
    assert_eq!(again.accounts().expect("accounts").len(), 3);
}

#[test]
fn a_version_6_database_migrates_and_reads_back() {
    generated_content_reads_back("v6");
}

#[test]
fn a_version_7_database_migrates_and_reads_back() {
    generated_content_reads_back("v7");
}

#[test]
fn a_version_8_database_migrates_and_reads_back() {
    generated_content_reads_back("v8");
}

#[test]
fn a_version_9_database_opens_and_reads_back() {
    generated_content_reads_back("v9");
}

#[test]
fn a_version_10_database_opens_and_reads_back_its_resume_token() {
    generated_content_reads_back("v10");
    let data = Copy::of("v10");
    let store = SqliteStore::open(&data.0, Retention::default()).expect("opens");
    let alice = store.account_named(&nick("alice")).expect("reads").expect("alice");
    let tokens = store.tokens(alice.id).expect("reads");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(tokens[0].description.starts_with("native 127.0.0.1"), "{tokens:?}");
    for other in ["chief", "bob"] {
        let account = store.account_named(&nick(other)).expect("reads").expect("an account");
        assert!(store.tokens(account.id).expect("reads").is_empty(), "{other} asked for none");
    }
}

/// What `crates/parley/tests/fixtures.rs` writes (from schema 6 on) reads back.
fn generated_content_reads_back(fixture: &str) {
    let data = Copy::of(fixture);
    let store = SqliteStore::open(&data.0, Retention::default()).expect("opens");

    let accounts = store.accounts().expect("accounts");
    let id = |name: &str| accounts.iter().find(|a| a.name.as_str() == name).expect("account").id;
    assert!(id("chief") < id("alice") && id("alice") < id("bob"), "numbered by registration");
    for (name, password, is_admin) in
        [("chief", "chiefpass1", true), ("alice", "alicepass1", false), ("bob", "bobpass1", false)]
    {
        let Verdict::Right { account, admin } = store.verify(&nick(name), password).expect("verifies") else {
            panic!("{name}'s password still works");
        };
        assert_eq!((account.id, admin), (id(name), is_admin), "{name}");
    }

    // The registered rooms, their operators, topic, bans and mutes; the lobby's mute and
    // the server bans.
    let kept = store.moderation().expect("moderation");
    assert_eq!(kept.admins, [id("chief")]);
    let registered: Vec<&str> = kept.rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(registered, ["lobby", "staff"], "guestroom went with its last member");
    let lobby = &kept.rooms[0];
    assert_eq!(lobby.founder, None);
    assert_eq!(lobby.restrictions.len(), 1);
    assert!(!lobby.restrictions[0].ban && lobby.restrictions[0].mask == Mask::parse("carol", 32).expect("mask"));
    let staff = &kept.rooms[1];
    assert_eq!((staff.founder, staff.since), (Some(id("alice")), 1));
    let mut ops = staff.ops.clone();
    ops.sort();
    assert_eq!(ops, [id("alice"), id("bob")]);
    assert_eq!(staff.topic.as_ref().map(|t| (t.text.as_str(), t.by.as_str())), Some(("secret plans", "alice")));
    let mut restrictions: Vec<(bool, String, bool)> =
        staff.restrictions.iter().map(|r| (r.ban, r.mask.to_string(), r.until.is_some())).collect();
    restrictions.sort();
    assert_eq!(restrictions, [(false, "noisy".to_owned(), true), (true, "10.1.2.3".to_owned(), false)]);
    let mut server_bans: Vec<(String, Option<&str>)> =
        kept.server_bans.iter().map(|b| (b.mask.to_string(), b.reason.as_deref())).collect();
    server_bans.sort();
    assert_eq!(server_bans, [("10.9.9.9".to_owned(), None), ("spammer".to_owned(), Some("spam"))]);

    // History, room seqs, and the file shared in staff.
    let seqs = store.last_seqs().expect("seqs");
    let last = |name: &str| seqs.iter().find(|(r, _)| r.as_str() == name).map(|(_, s)| *s);
    assert_eq!((last("lobby"), last("staff"), last("guestroom")), (Some(2), Some(2), Some(1)));
    let lobby_history = history(&store, "lobby");
    let said: Vec<(&str, &str)> = lobby_history.iter().map(|r| (r.from.as_str(), &*r.text)).collect();
    assert_eq!(said, [("carol", "hello from carol"), ("alice", "hello from alice")]);
    assert_eq!(lobby_history[1].sender, Some(Party::Account(id("alice"))));
    let staff_history = history(&store, "staff");
    assert_eq!(&*staff_history[0].text, "staff only words");
    assert_eq!(file_is_there(&data.0, &staff_history[1]), "plan.txt");

    // Private messages, with the file bob sent alice.
    let (alice, bob) = (Party::Account(id("alice")), Party::Account(id("bob")));
    let talk = store.conversation(alice, bob, Cursor::Latest, u64::MAX, 10).expect("reads");
    assert_eq!(talk.len(), 3);
    assert_eq!(talk.iter().take(2).map(|r| &*r.text).collect::<Vec<_>>(), ["private from alice", "private from bob"]);
    assert_eq!(file_is_there(&data.0, &talk[2]), "notes.bin");
    assert_eq!(store.last_private_seq().expect("reads"), 4);

    // Opening again changes nothing.
    drop(store);
    let again = SqliteStore::open(&data.0, Retention::default()).expect("opens again");
    assert_eq!(again.accounts().expect("accounts").len(), 3);
}
