//! A model-based test of the hub: proptest makes sequences of commands from several
//! sessions (joining, parting, talking, nicks, room modes, bans and mutes with extreme
//! durations, accounts, server bans, history and search with extreme arguments, quits,
//! disconnects and reconnects), drives the real hub with them one step at a time, and
//! after every step compares the hub with a plain model of it:
//!
//! - the hub task is alive (nothing panicked);
//! - the answer to the step's command is the one the model gives (a reply, with what it
//!   carries: history, members, search results; or which `HubError`);
//! - every session received exactly the events the model says (room messages, its own
//!   messages' `Said`, private messages, joins, leaves, nick changes, server bans), in
//!   order: each member gets each message committed in its room while it is a member,
//!   nobody gets a message of a room it is not in;
//! - each session's nick, account and rooms (with where each room's visible history
//!   begins) are the model's, and nicks are unique;
//! - per room, the seqs a session receives only grow, and the seqs committed are 1, 2, 3
//!   … with no gap.
//!
//! Each step waits for the answer to its command (`Event::Reply` with the step's
//! `RequestId`) before the next, so the hub and the model see one order. What cannot be
//! predicted exactly is named where it is allowed: login pacing near the end of a wait
//! (either answer, then the model follows the hub), and the order in which one server
//! ban puts several sessions out.
//!
//! Durations are chosen so that no ban or mute expires during a case (none, zero, an
//! hour and up): a ban that ends mid-case would make the answer depend on the clock.
//! Commands may name people and rooms by what they are when the step runs (`@1`: slot
//! 1's nick now; `@here`: the session's latest room), and a few multi-step scenarios
//! (a ban and its target coming back, a room's new life) are mixed in, so that blind
//! generation still reaches the states worth checking.
//!
//! The case count comes from `PARLEY_MODEL_CASES` (each of the two tests runs that
//! many; the default, 512, keeps both under half a minute in a debug build on two
//! cores), the most steps per case from `PARLEY_MODEL_STEPS` (100);
//! `PARLEY_MODEL_STATS=1` prints how often each answer came. A long local run:
//!
//! ```sh
//! PARLEY_MODEL_CASES=100000 cargo test --release -p parley-hub --test model -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parley_hub::{
    Account, AccountId, AccountStore, Action, Batch, Command, Cursor, Event, GuestId, HubError, HubHandle, Kind,
    LeaveReason, Limits, Mask, MemoryStore, ModeChange, ModeProblem, Network, Nick, Outbox, Party, Reply, RequestId,
    RoomChange, RoomMode, RoomModes, RoomName, SearchProblem, ServerAction, Session, Store, Wire,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------
// The hub's limits in this test: small, so that their edges are reached in a few steps.
// ---------------------------------------------------------------------------------------

const MAX_NICK: usize = 16;
const MAX_ROOM: usize = 16;
const MAX_TEXT: usize = 64;
const MAX_ROOMS: usize = 3;
const MAX_BANS: usize = 3;
const MAX_SERVER_BANS: usize = 2;
const MAX_FOUNDED: usize = 1;
const LOBBY: &str = "lobby";

fn limits(history_on_join: usize) -> Limits {
    Limits {
        max_nick_len: MAX_NICK,
        max_room_len: MAX_ROOM,
        max_message_bytes: MAX_TEXT,
        max_rooms_per_session: MAX_ROOMS,
        inbox: 64,
        history_on_join,
        // Longer than any case: nobody is renamed by the clock.
        login_grace: Duration::from_secs(3600),
        announce_up_to: 500,
        max_bans_per_room: MAX_BANS,
        max_server_bans: MAX_SERVER_BANS,
        max_rooms_per_account: MAX_FOUNDED,
        max_reads: 2,
        token_idle: parley_hub::DEFAULT_TOKEN_IDLE,
        max_watched: 3,
    }
}

/// How long one step may take before the test calls it a hang.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Each slot's first nick, taken when the case starts.
const SLOT_NICKS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// Each slot's address: slots 2 and 3 are one network (an IPv4 address and the same
/// address IPv4-mapped), and so are 4 and 5 (one IPv6 /64).
const SLOT_ADDRESSES: [&str; 6] =
    ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::ffff:127.0.0.3", "2001:db8::1", "2001:db8::2"];

/// An account the store has before the hub starts, a server admin.
const ROOT: &str = "root";
const ROOT_PASSWORD: &str = "correct horse";

/// Nicks, with case variants of one another, a guest's and an admin's; then invalid
/// ones (picked a tenth of the time).
const NICKS: &[&str] =
    &["alice", "Alice", "ALICE", "bob", "carol", "dave", "erin", "root", "Root", "Guest_1", "Guest_3"];
const BAD_NICKS: &[&str] = &["9lives", "", "al ice", "nick_far_too_long"];

/// Rooms, some named more often than others so that sessions meet; with case variants,
/// and enough of them for the most rooms a session may be in.
const ROOMS: &[&str] = &["dev", "dev", "#Dev", "ops", "ops", "#OPS", "misc", "misc", "lobby", "LOBBY"];
const BAD_ROOMS: &[&str] = &["", "#", "bad room", "room_far_too_long"];

const KEYS: &[&str] = &["sesame", "Sesame"];
const BAD_KEYS: &[&str] = &["", "a b", "k:y", "0123456789abcdef0123456789abcdef!"];

const PASSWORDS: &[&str] = &[ROOT_PASSWORD, "letmein-now", "wrong password"];
const BAD_PASSWORDS: &[&str] = &["hunter2"];

const TEXTS: &[&str] = &[
    "hello world",
    "Hello deploy",
    "deploy now",
    "héllo wörld",
    "error: 12:30 hello",
    "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
    "éééééééééééééééééééééééééééééééé",
];
/// Empty, blank, or one byte over the limit (in ASCII, and with a two-byte character).
const BAD_TEXTS: &[&str] = &[
    "",
    "   ",
    "\t\n",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyé",
];

// Names resolved against the model when the step runs, so that commands name people
// and rooms that are there (none of them is a valid nick or room name).

/// Another slot's session, by its nick now (`@N`) or its address (`@@N`).
const NICK_REFS: &[&str] = &["@0", "@1", "@2", "@3", "@4", "@5"];
const ADDRESS_REFS: &[&str] = &["@@0", "@@1", "@@2", "@@3", "@@4", "@@5"];

/// The room the session joined last (the lobby when it is in none), for commands that
/// must name a room.
const HERE: &str = "@here";

/// The room the slot's session last left or was put out of (the lobby if none), for
/// coming back: to a ban, a key, a new life.
const BACK: &str = "@back";

/// Ban and mute masks: nicks in IRC's forms, and addresses covering one slot or two;
/// then ones that are neither.
const MASKS: &[&str] = &[
    "alice",
    "Alice!*@*",
    "bob",
    "carol",
    "root",
    "Guest_3",
    "127.0.0.2",
    "*!*@127.0.0.3",
    "::ffff:127.0.0.1",
    "2001:db8::99",
    "2001:db8::/64",
];
const BAD_MASKS: &[&str] = &["bad mask", "*!*@nonsense", "9lives"];

const SEARCHES: &[&str] = &[
    "hello",
    "HELLO",
    "deploy",
    "wörld",
    "hello deploy",
    "hello page:0",
    "hello page:1",
    "hello page:2",
    "hello page:1000",
    "hello page:1001",
    "hello page:18446744073709551616",
    "hello page:-1",
    "page:1",
    "",
    "hello from:alice",
    "hello from:Bob",
    "hello from:9lives",
    "hello in:dev",
    "hello in:#lobby",
    "hello in:bad/room",
    "hello after:2000-01-01",
    "hello before:2000-01-01",
    "hello after:9999-12-31",
    "hello before:9999-12-31",
    "hello after:yesterday",
    "hello before:2026-13-01",
    "error: 12:30",
    "hello to:x",
];

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Durations of bans and mutes: none of them ends during a case. Half of them are
/// usual ones; the rest are zero, the longest allowed, and beyond it to the largest.
fn duration() -> impl Strategy<Value = Option<Duration>> {
    let usual = select(vec![None, Some(HOUR), Some(DAY)]);
    let edges = select(vec![
        Some(Duration::ZERO),
        Some(DAY * 3660),
        Some(DAY * 3660 + Duration::from_secs(1)),
        Some(Duration::from_secs(100_000_000 * 86_400)),
        Some(Duration::from_secs(u64::MAX)),
        Some(Duration::MAX),
    ]);
    prop_oneof![usual, edges]
}

fn cursors() -> Vec<Cursor> {
    vec![
        Cursor::Latest,
        Cursor::Before(u64::MAX),
        Cursor::Before(0),
        Cursor::Before(3),
        Cursor::After(u64::MAX),
        Cursor::After(0),
        Cursor::After(2),
        Cursor::LatestAfter(1),
        Cursor::LatestAfter(u64::MAX),
        Cursor::Around(0),
        Cursor::Around(3),
        Cursor::Around(u64::MAX),
        Cursor::Between { after: 1, before: 5, latest: false },
        Cursor::Between { after: 0, before: u64::MAX, latest: true },
        Cursor::Between { after: 4, before: 2, latest: false },
    ]
}

const PAGE_LIMITS: &[usize] = &[0, 1, 3, 500, 501, usize::MAX];

// ---------------------------------------------------------------------------------------
// Steps, and how proptest makes them.
// ---------------------------------------------------------------------------------------

/// One step of a case, from the session in `slot`. A step for a slot without a session
/// (other than `Connect`), or a `Connect` for one with a session, is skipped.
#[derive(Debug, Clone)]
enum Step {
    /// A new session in the slot: a guest, or logged in from the start.
    Connect { slot: usize, nick: &'static str, password: Option<&'static str> },
    /// The connection ends without a quit.
    Disconnect { slot: usize },
    /// The session quits.
    Quit { slot: usize },
    /// The session sends a command.
    Send { slot: usize, command: Command },
}

#[derive(Debug, Clone)]
struct Case {
    slots: usize,
    history_on_join: usize,
    steps: Vec<Step>,
}

/// A string from `good`, or now and then from `bad`.
fn string(good: &'static [&'static str], bad: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![9 => select(good), 1 => select(bad)].prop_map(str::to_owned)
}

fn nick() -> impl Strategy<Value = String> {
    prop_oneof![5 => select(NICK_REFS), 4 => select(NICKS), 1 => select(BAD_NICKS)].prop_map(str::to_owned)
}

fn room() -> impl Strategy<Value = String> {
    string(ROOMS, BAD_ROOMS)
}

/// A room for a command that must name one: mostly the session's latest.
fn named_room() -> impl Strategy<Value = String> {
    prop_oneof![2 => Just(HERE.to_owned()), 1 => room()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![6 => select(TEXTS), 1 => select(BAD_TEXTS)].prop_map(str::to_owned)
}

fn mask() -> impl Strategy<Value = String> {
    let refs = prop_oneof![3 => select(NICK_REFS), 1 => select(ADDRESS_REFS)];
    prop_oneof![4 => refs, 4 => select(MASKS), 1 => select(BAD_MASKS)].prop_map(str::to_owned)
}

fn password() -> impl Strategy<Value = String> {
    string(PASSWORDS, BAD_PASSWORDS)
}

fn valid_nick() -> impl Strategy<Value = Nick> {
    select(NICKS).prop_map(|n| Nick::parse(n, MAX_NICK).expect("a valid nick"))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![8 => Just(Kind::Text), 1 => Just(Kind::Action), 1 => Just(Kind::Notice)]
}

fn mode_change() -> impl Strategy<Value = ModeChange> {
    let mode = prop_oneof![
        Just(RoomMode::Moderated),
        Just(RoomMode::Secret),
        Just(RoomMode::Private),
        Just(RoomMode::TopicLocked),
        Just(RoomMode::InviteOnly),
        string(KEYS, BAD_KEYS).prop_map(RoomMode::Key),
        select(vec![0, 1, 2, 1_000_000, 1_000_001, usize::MAX]).prop_map(RoomMode::Limit),
        valid_nick().prop_map(RoomMode::Voice),
    ];
    (prop::bool::weighted(0.7), mode).prop_map(|(set, mode)| ModeChange { set, mode })
}

fn action() -> impl Strategy<Value = Action> {
    let reason = prop::option::of(select(vec!["spam", "   ", "flood"]).prop_map(str::to_owned));
    prop_oneof![
        2 => text().prop_map(Action::Topic),
        3 => (nick(), reason.clone()).prop_map(|(nick, reason)| Action::Kick { nick, reason }),
        7 => (mask(), duration(), reason)
            .prop_map(|(mask, duration, reason)| Action::Ban { mask, duration, reason }),
        2 => mask().prop_map(|mask| Action::Unban { mask }),
        5 => (mask(), duration()).prop_map(|(nick, duration)| Action::Mute { nick, duration }),
        2 => mask().prop_map(|nick| Action::Unmute { nick }),
        3 => nick().prop_map(|nick| Action::Op { nick }),
        2 => nick().prop_map(|nick| Action::Deop { nick }),
        2 => Just(Action::Register),
        2 => Just(Action::Unregister),
    ]
}

fn server_action() -> impl Strategy<Value = ServerAction> {
    prop_oneof![
        3 => (mask(), duration(), prop::option::of(Just("go away".to_owned())))
            .prop_map(|(mask, duration, reason)| ServerAction::Ban { mask, duration, reason }),
        2 => mask().prop_map(|mask| ServerAction::Unban { mask }),
    ]
}

/// A room for a command that may also name none (the session's latest room).
fn maybe_room() -> impl Strategy<Value = Option<String>> {
    prop_oneof![3 => Just(None), 1 => room().prop_map(Some)]
}

fn chat_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        14 => (prop_oneof![3 => room(), 1 => Just(BACK.to_owned())], prop::bool::weighted(0.25), prop::option::weighted(0.2, string(KEYS, BAD_KEYS)))
            .prop_map(|(room, exclusive, key)| Command::Join { room, exclusive, key }),
        10 => maybe_room().prop_map(|room| Command::Part { room, reason: None }),
        16 => (maybe_room(), kind(), text()).prop_map(|(room, kind, text)| Command::Say { room, kind, text, meta: Default::default() }),
        4 => (nick(), text())
            .prop_map(|(to, text)| Command::Whisper { to, kind: Kind::Text, text, meta: Default::default() }),
        5 => nick().prop_map(|nick| Command::Nick { nick }),
        3 => (nick(), maybe_room()).prop_map(|(nick, room)| Command::Invite { nick, room }),
        2 => maybe_room().prop_map(|room| Command::Who { room }),
    ]
}

fn moderation_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => (named_room(), prop::collection::vec(mode_change(), 1..3))
            .prop_map(|(room, changes)| Command::Mode { room, changes }),
        12 => (maybe_room(), action()).prop_map(|(room, action)| Command::Moderate { room, action }),
        3 => server_action().prop_map(|action| Command::ServerModerate { action }),
        3 => Just(Command::Oper),
        1 => named_room().prop_map(|room| Command::Modes { room }),
        1 => named_room().prop_map(|room| Command::Bans { room }),
    ]
}

fn account_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => password().prop_map(|password| Command::Register { password }),
        5 => (prop::option::of(nick()), password())
            .prop_map(|(name, password)| Command::Login { name, password }),
        2 => password().prop_map(|password| Command::Unregister { password }),
        1 => (password(), password()).prop_map(|(old, new)| Command::Password { old, new }),
    ]
}

fn read_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        5 => (maybe_room(), select(cursors()), select(PAGE_LIMITS))
            .prop_map(|(room, cursor, limit)| Command::History { room, cursor, limit }),
        2 => (nick(), select(cursors()), select(PAGE_LIMITS))
            .prop_map(|(with, cursor, limit)| Command::Conversation { with, cursor, limit }),
        4 => select(SEARCHES).prop_map(|query| Command::Search { query: query.to_owned() }),
    ]
}

fn step(slots: usize) -> impl Strategy<Value = Step> {
    let slot = 0..slots;
    prop_oneof![
        40 => (slot.clone(), chat_command()).prop_map(|(slot, command)| Step::Send { slot, command }),
        28 => (slot.clone(), moderation_command()).prop_map(|(slot, command)| Step::Send { slot, command }),
        10 => (slot.clone(), account_command()).prop_map(|(slot, command)| Step::Send { slot, command }),
        10 => (slot.clone(), read_command()).prop_map(|(slot, command)| Step::Send { slot, command }),
        6 => (slot.clone(), prop_oneof![9 => select(NICKS), 1 => select(BAD_NICKS)], prop::option::weighted(0.4, select(PASSWORDS)))
            .prop_map(|(slot, nick, password)| Step::Connect { slot, nick, password }),
        3 => slot.clone().prop_map(|slot| Step::Disconnect { slot }),
        3 => slot.prop_map(|slot| Step::Quit { slot }),
    ]
}

/// A few steps that belong together, which blind steps seldom line up: a ban or mute
/// and its target trying to come back or speak; more messages than a search page; a
/// room founded by an account, its roles given and taken; a session talking alone in a
/// room, leaving it and coming back to a new life, then reading its history.
fn scenario(slots: usize) -> impl Strategy<Value = Vec<Step>> {
    let pair = (0..slots, 0..slots);
    let send = |slot, command| Step::Send { slot, command };
    prop_oneof![
        (pair.clone(), duration()).prop_map(move |((a, b), duration)| {
            let action = Action::Ban { mask: format!("@{b}"), duration, reason: Some("spam".into()) };
            vec![
                send(a, Command::Moderate { room: None, action }),
                send(b, Command::Join { room: BACK.into(), exclusive: false, key: None }),
            ]
        }),
        (pair, duration(), select(TEXTS)).prop_map(move |((a, b), duration, text)| {
            let action = Action::Mute { nick: format!("@{b}"), duration };
            vec![
                send(a, Command::Moderate { room: None, action }),
                send(b, Command::Say { room: None, kind: Kind::Text, text: text.into(), meta: Default::default() }),
            ]
        }),
        (0..slots, 21..26usize, select(vec!["hello page:2", "hello", "hello page:3"])).prop_map(
            move |(a, n, query)| {
                let say =
                    Command::Say { room: None, kind: Kind::Text, text: "hello world".into(), meta: Default::default() };
                let mut steps = vec![send(a, say); n];
                steps.push(send(a, Command::Search { query: query.into() }));
                steps
            }
        ),
        (0..slots, 0..slots, select(ROOMS), select(vec![Action::Unregister, Action::Register])).prop_map(
            move |(a, b, room, action)| {
                let join = |room: &str| Command::Join { room: room.into(), exclusive: false, key: None };
                let moderate = |action| Command::Moderate { room: Some(room.into()), action };
                vec![
                    send(a, Command::Register { password: "letmein-now".into() }),
                    send(a, join(room)),
                    send(b, join(room)),
                    send(b, moderate(Action::Deop { nick: format!("@{a}") })),
                    send(a, moderate(Action::Kick { nick: format!("@{b}"), reason: None })),
                    send(b, moderate(Action::Op { nick: format!("@{a}") })),
                    send(a, moderate(action)),
                    send(a, Command::Part { room: Some(room.into()), reason: None }),
                    send(b, Command::Who { room: Some(room.into()) }),
                ]
            }
        ),
        (0..slots, select(TEXTS), select(SEARCHES)).prop_map(move |(a, text, query)| {
            vec![
                send(a, Command::Say { room: None, kind: Kind::Text, text: text.into(), meta: Default::default() }),
                send(a, Command::Part { room: None, reason: None }),
                send(a, Command::Join { room: BACK.into(), exclusive: false, key: None }),
                send(a, Command::History { room: None, cursor: Cursor::Latest, limit: 50 }),
                send(a, Command::Search { query: query.into() }),
            ]
        }),
    ]
}

fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    let slots = prop_oneof![3 => Just(3usize), 1 => 4..=6usize];
    (slots, select(vec![0, 2, 5, 50])).prop_flat_map(move |(slots, history_on_join)| {
        let chunk = prop_oneof![12 => step(slots).prop_map(|step| vec![step]), 1 => scenario(slots)];
        let steps = prop::collection::vec(chunk, 1..=max_steps).prop_map(|chunks| chunks.concat());
        // Half the cases begin with a server admin, so that more moderation takes effect.
        (prop::bool::ANY, steps).prop_map(move |(admin, mut steps)| {
            if admin {
                steps.insert(0, Step::Send { slot: 0, command: Command::Oper });
            }
            steps.truncate(max_steps);
            Case { slots, history_on_join, steps }
        })
    })
}

// ---------------------------------------------------------------------------------------
// The harness: sessions over a wire that records every event it encodes.
// ---------------------------------------------------------------------------------------

/// Encodes each event as its index (4 bytes) in a log the test owns, where a copy of the
/// event is kept: the outbox counts and queues real bytes, and the test reads back
/// exactly the events that went through it, in order.
struct Recorder {
    log: Arc<Mutex<Vec<Event>>>,
}

impl Wire for Recorder {
    fn cache_slot(&self) -> Option<usize> {
        None
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let index = u32::try_from(log.len()).expect("fewer than 2^32 events");
        log.push(event.clone());
        out.extend_from_slice(&index.to_le_bytes());
    }
}

/// One connection: its session (while the hub has it), its outbox, and the events read
/// from the outbox and not yet looked at.
struct Client {
    session: Option<Session>,
    outbox: Arc<Outbox>,
    log: Arc<Mutex<Vec<Event>>>,
    /// Received since the step began.
    events: Vec<Event>,
}

impl Client {
    fn new() -> Client {
        let log = Arc::new(Mutex::new(Vec::new()));
        // Far more than a case produces: nobody here is a slow consumer.
        let outbox = Arc::new(Outbox::new(Recorder { log: log.clone() }, 1 << 24));
        Client { session: None, outbox, log, events: Vec::new() }
    }

    /// Moves whatever the outbox holds into `events`, without waiting.
    async fn drain(&mut self) {
        while !self.outbox.is_empty() {
            let mut buf = BytesMut::new();
            if self.outbox.take(&mut buf).await == Batch::Dead {
                break;
            }
            self.ingest(&buf);
        }
    }

    fn ingest(&mut self, bytes: &[u8]) {
        assert_eq!(bytes.len() % 4, 0, "whole events only");
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        for index in bytes.chunks_exact(4) {
            let index = u32::from_le_bytes(index.try_into().expect("four bytes"));
            self.events.push(log[usize::try_from(index).expect("an index")].clone());
        }
    }

    fn find_reply(&self, req: RequestId) -> Option<Result<Reply, HubError>> {
        self.events.iter().find_map(|event| match event {
            Event::Reply { req: r, result } if *r == req => Some(result.clone()),
            _ => None,
        })
    }

    /// Waits for the answer to `req`; `None` if the outbox closed without one (a session
    /// put off the server by its own server ban).
    async fn reply(&mut self, req: RequestId) -> Result<Option<Result<Reply, HubError>>, String> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            self.drain().await;
            if let Some(reply) = self.find_reply(req) {
                return Ok(Some(reply));
            }
            if self.outbox.is_closed() {
                return Ok(None);
            }
            let mut buf = BytesMut::new();
            match tokio::time::timeout_at(deadline, self.outbox.take(&mut buf)).await {
                Ok(Batch::Dead) => return Err("the outbox overflowed".into()),
                Ok(_) => self.ingest(&buf),
                Err(_) => return Err(format!("no answer to {req:?} in {STEP_TIMEOUT:?}")),
            }
        }
    }

    /// Waits to be told that a room was registered (one registered on its creation says
    /// so to its creator once the store has it).
    async fn registration(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            self.drain().await;
            let registered = |e: &Event| matches!(e, Event::Moderated { what: RoomChange::Registered { .. }, .. });
            if self.events.iter().any(registered) {
                return Ok(());
            }
            let mut buf = BytesMut::new();
            match tokio::time::timeout_at(deadline, self.outbox.take(&mut buf)).await {
                Ok(Batch::Bytes) => self.ingest(&buf),
                Ok(batch) => return Err(format!("the outbox ended ({batch:?}) before the registration")),
                Err(_) => return Err("not told of the registration in time".into()),
            }
        }
    }
}

fn address(slot: usize) -> IpAddr {
    SLOT_ADDRESSES[slot].parse().expect("an address")
}

/// What the driver saw of one step.
#[derive(Debug)]
struct Observed {
    /// The answer to the step's command (or the connect's outcome); `None` when none came.
    reply: Option<Result<Reply, HubError>>,
    /// When the step was sent, and when its answer was read: the hub's clock read for
    /// pacing falls between the two.
    sent: Instant,
    done: Instant,
}

// ---------------------------------------------------------------------------------------
// What is compared: answers and events, reduced to what the model decides.
// ---------------------------------------------------------------------------------------

/// A member as member lists show one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MemberView {
    nick: String,
    op: bool,
    voice: bool,
    admin: bool,
}

/// An answer, reduced to what the model predicts. Room names are their keys (names are
/// compared without case); nicks are as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Welcome {
        nick: String,
        members: Vec<MemberView>,
        history: Vec<u64>,
    },
    Joined {
        room: String,
        members: Vec<MemberView>,
        history: Vec<u64>,
        topic: Option<String>,
    },
    Parted {
        room: String,
    },
    Said {
        room: String,
        seq: u64,
    },
    Whispered {
        to: String,
        seq: u64,
    },
    Nick {
        nick: String,
    },
    Invited {
        nick: String,
        room: String,
    },
    Who {
        room: String,
        members: Vec<MemberView>,
    },
    Modes {
        room: String,
        modes: RoomModes,
        key_hidden: bool,
    },
    ModesSet {
        room: String,
    },
    Bans {
        room: String,
        masks: Vec<String>,
    },
    Moderated {
        action: String,
        room: String,
        target: String,
    },
    ServerModerated {
        action: String,
        target: String,
    },
    Opered,
    Registered {
        account: String,
    },
    LoggedIn {
        account: String,
        nick: String,
    },
    Unregistered {
        account: String,
    },
    PasswordChanged,
    History {
        room: String,
        seqs: Vec<u64>,
    },
    Conversation {
        with: String,
        seqs: Vec<u64>,
    },
    Found {
        page: usize,
        results: Vec<(Option<String>, u64)>,
    },
    Bye,
    /// Anything else (the test sends nothing else).
    Other(String),
    Error(String),
    /// No answer: the session was put off the server by the step.
    Nothing,
}

/// A `HubError` as compared: the variant and its names without case; free-form
/// explanations and retry times left out.
fn error_key(e: &HubError) -> String {
    match e {
        HubError::InvalidNick { .. } => "InvalidNick".into(),
        HubError::InvalidRoom { .. } => "InvalidRoom".into(),
        HubError::TooManyAttempts { .. } => "TooManyAttempts".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn members_view(members: &[parley_hub::Member]) -> Vec<MemberView> {
    let mut view: Vec<MemberView> = members
        .iter()
        .map(|m| MemberView { nick: m.nick.to_string(), op: m.op, voice: m.voice, admin: m.admin })
        .collect();
    view.sort_by_key(|m| (m.nick.to_lowercase(), m.nick.clone()));
    view
}

fn seqs(records: &[Arc<parley_hub::Record>]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn answer_of(result: &Result<Reply, HubError>) -> Answer {
    let reply = match result {
        Err(e) => return Answer::Error(error_key(e)),
        Ok(reply) => reply,
    };
    match reply {
        Reply::Welcome { nick, members, history, .. } => {
            Answer::Welcome { nick: nick.to_string(), members: members_view(members), history: seqs(history) }
        }
        Reply::Joined { room, members, history, topic, .. } => Answer::Joined {
            room: room.key(),
            members: members_view(members),
            history: seqs(history),
            topic: topic.as_ref().map(|(text, _, _)| text.clone()),
        },
        Reply::Parted { room } => Answer::Parted { room: room.key() },
        Reply::Said { room, seq, .. } => Answer::Said { room: room.key(), seq: *seq },
        Reply::Whispered { to, seq, .. } => Answer::Whispered { to: to.to_string(), seq: *seq },
        Reply::Nick { nick } => Answer::Nick { nick: nick.to_string() },
        Reply::Invited { nick, room } => Answer::Invited { nick: nick.to_string(), room: room.key() },
        Reply::Who { room, members, .. } => Answer::Who { room: room.key(), members: members_view(members) },
        Reply::Modes { room, modes, key_hidden, .. } => {
            Answer::Modes { room: room.key(), modes: modes.clone(), key_hidden: *key_hidden }
        }
        Reply::ModesSet { room } => Answer::ModesSet { room: room.key() },
        Reply::Bans { room, bans } => {
            Answer::Bans { room: room.key(), masks: bans.iter().map(|b| b.mask.to_string()).collect() }
        }
        Reply::Moderated { action, room, target } => {
            Answer::Moderated { action: (*action).to_owned(), room: room.key(), target: target.to_lowercase() }
        }
        Reply::ServerModerated { action, target } => {
            Answer::ServerModerated { action: (*action).to_owned(), target: target.to_lowercase() }
        }
        Reply::Opered => Answer::Opered,
        Reply::Registered { account } => Answer::Registered { account: account.to_string() },
        Reply::LoggedIn { account, nick } => Answer::LoggedIn { account: account.to_string(), nick: nick.to_string() },
        Reply::Unregistered { account } => Answer::Unregistered { account: account.to_string() },
        Reply::PasswordChanged => Answer::PasswordChanged,
        Reply::History { room, messages } => Answer::History { room: room.key(), seqs: seqs(messages) },
        Reply::Conversation { with, messages } => Answer::Conversation { with: with.to_string(), seqs: seqs(messages) },
        Reply::Found { page, results, .. } => Answer::Found {
            page: *page,
            results: results.iter().map(|r| (r.room.as_ref().map(RoomName::key), r.seq)).collect(),
        },
        Reply::Bye => Answer::Bye,
        other => Answer::Other(format!("{other:?}")),
    }
}

/// An event a session receives, reduced to what the model decides. Room names are keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// A message in a room.
    Message {
        room: String,
        seq: u64,
        from: String,
        text: String,
    },
    /// The answer to the session's own message: its copy of it.
    Said {
        room: String,
        seq: u64,
    },
    Whisper {
        seq: u64,
        from: String,
        to: String,
        text: String,
    },
    Whispered {
        seq: u64,
        to: String,
    },
    Joined {
        room: String,
        nick: String,
    },
    Left {
        room: String,
        nick: String,
        reason: String,
    },
    NickChanged {
        old: String,
        new: String,
    },
    Banned,
}

fn seen(event: &Event) -> Option<Seen> {
    Some(match event {
        Event::Message { room, from, seq, text, .. } => {
            Seen::Message { room: room.key(), seq: *seq, from: from.to_string(), text: text.to_string() }
        }
        Event::Reply { result: Ok(Reply::Said { room, seq, .. }), .. } => Seen::Said { room: room.key(), seq: *seq },
        Event::Whisper { seq, from, to, text, .. } => {
            Seen::Whisper { seq: *seq, from: from.to_string(), to: to.to_string(), text: text.to_string() }
        }
        Event::Reply { result: Ok(Reply::Whispered { to, seq, .. }), .. } => {
            Seen::Whispered { seq: *seq, to: to.to_string() }
        }
        Event::Joined { room, nick, .. } => Seen::Joined { room: room.key(), nick: nick.to_string() },
        Event::Left { room, nick, reason, .. } => {
            Seen::Left { room: room.key(), nick: nick.to_string(), reason: format!("{reason:?}") }
        }
        Event::NickChanged { old, new, .. } => Seen::NickChanged { old: old.to_string(), new: new.to_string() },
        Event::Banned { .. } => Seen::Banned,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// The model: the hub's rules, written as plainly as possible over ordinary maps.
// ---------------------------------------------------------------------------------------

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// `text` cut to at most `max` bytes on a character boundary.
fn shorten(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

const MAX_REASON: usize = parley_hub::MAX_REASON;

#[derive(Debug, Clone)]
struct MSession {
    slot: usize,
    nick: String,
    account: Option<i64>,
    /// Room keys, the latest joined last.
    rooms: Vec<String>,
    address: IpAddr,
    oper: bool,
    guest: u64,
}

#[derive(Debug, Clone)]
struct MAccount {
    name: String,
    password: String,
    admin: bool,
}

/// A ban or mute in force (none ends during a case; one with a zero duration never is).
#[derive(Debug, Clone)]
struct MRestriction {
    ban: bool,
    mask: Mask,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
struct MCharter {
    since: u64,
    registered: bool,
    founder: Option<i64>,
    modes: RoomModes,
    ops: BTreeSet<i64>,
    topic: Option<String>,
    restrictions: Vec<MRestriction>,
}

impl MCharter {
    fn fresh(since: u64) -> MCharter {
        MCharter {
            since,
            registered: false,
            founder: None,
            modes: RoomModes::default(),
            ops: BTreeSet::new(),
            topic: None,
            restrictions: Vec::new(),
        }
    }
}

/// A room with members (by session number).
#[derive(Debug, Clone, Default)]
struct MRoom {
    members: Vec<u64>,
    voiced: BTreeSet<u64>,
    ops: BTreeSet<u64>,
    invited: BTreeSet<u64>,
}

/// A room's counter and the latest messages the hub keeps in memory.
#[derive(Debug, Clone, Default)]
struct MLog {
    assigned: u64,
    recent: VecDeque<u64>,
}

/// What the store keeps, in commit order.
#[derive(Debug, Clone)]
enum Stored {
    Room { room: String, seq: u64, from: String, text: String },
    Private { seq: u64, sender: Party, recipient: Party, from: String, text: String },
}

#[derive(Debug, Clone)]
struct MServerBan {
    mask: Mask,
    /// False for one made with a zero duration: kept by the hub until it needs the
    /// place, but never in force.
    live: bool,
    reason: Option<String>,
}

/// Failed logins: how many, and when the last one was, as an interval (the hub read
/// its clock somewhere between sending the command and reading its answer).
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    lo: Instant,
    hi: Instant,
}

/// A moderation change, checked and resolved, about to be applied.
#[derive(Debug, Clone)]
enum Change {
    Topic(String),
    Kicked(String),
    Restricted { restriction: MRestriction, live: bool },
    Lifted { ban: bool, mask: Mask },
    Promoted(String),
    Demoted(String),
    Opped(i64),
    Deopped(i64),
    Registered(i64),
    Unregistered,
}

/// The query a search parses into, as far as the model needs it.
struct Query {
    words: Vec<String>,
    from: Option<String>,
    room: Option<RoomName>,
    /// Whether messages said today pass the date filters.
    dates_pass: bool,
    page: usize,
}

#[derive(Debug, Clone)]
struct Model {
    store: bool,
    keep: usize,
    slots: Vec<Option<u64>>,
    next_id: u64,
    last_guest: u64,
    sessions: BTreeMap<u64, MSession>,
    nicks: BTreeMap<String, u64>,
    accounts: BTreeMap<i64, MAccount>,
    names: BTreeMap<String, i64>,
    next_account: i64,
    charters: BTreeMap<String, MCharter>,
    rooms: BTreeMap<String, MRoom>,
    logs: BTreeMap<String, MLog>,
    stored: Vec<Stored>,
    private_seq: u64,
    server_bans: Vec<MServerBan>,
    net_failures: BTreeMap<Network, Failures>,
    pair_failures: BTreeMap<(Network, String), Failures>,
    /// The room each slot's session last left or was put out of.
    left: Vec<Option<String>>,
    /// What each slot is to receive during the current step.
    out: BTreeMap<usize, Vec<Seen>>,
    /// Slots put off the server during the current step by a server ban, with their
    /// nicks: the hub takes them out in no particular order, so each may or may not see
    /// the others leave first.
    thrown_out: BTreeMap<usize, String>,
}

impl Model {
    fn new(store: bool, keep: usize, slots: usize) -> Model {
        let mut lobby = MCharter::fresh(0);
        lobby.registered = true;
        let mut model = Model {
            store,
            keep,
            slots: vec![None; slots],
            left: vec![None; slots],
            next_id: 1,
            last_guest: 0,
            sessions: BTreeMap::new(),
            nicks: BTreeMap::new(),
            accounts: BTreeMap::new(),
            names: BTreeMap::new(),
            next_account: 0,
            charters: BTreeMap::from([(LOBBY.to_owned(), lobby)]),
            rooms: BTreeMap::new(),
            logs: BTreeMap::new(),
            stored: Vec::new(),
            private_seq: 0,
            server_bans: Vec::new(),
            net_failures: BTreeMap::new(),
            pair_failures: BTreeMap::new(),
            out: BTreeMap::new(),
            thrown_out: BTreeMap::new(),
        };
        if store {
            model.next_account = 1;
            let root = MAccount { name: ROOT.into(), password: ROOT_PASSWORD.into(), admin: true };
            model.accounts.insert(1, root);
            model.names.insert(ROOT.into(), 1);
        }
        model
    }

    // -- who is who ----------------------------------------------------------------------

    fn session(&self, sid: u64) -> &MSession {
        &self.sessions[&sid]
    }

    fn account_name(&self, sid: u64) -> Option<String> {
        self.session(sid).account.map(|a| self.accounts[&a].name.clone())
    }

    fn party(&self, sid: u64) -> Party {
        let s = self.session(sid);
        s.account.map_or(Party::Guest(GuestId(s.guest)), |a| Party::Account(AccountId(a)))
    }

    fn is_admin(&self, sid: u64) -> bool {
        let s = self.session(sid);
        s.oper || s.account.is_some_and(|a| self.accounts[&a].admin)
    }

    fn is_member(&self, sid: u64, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.members.contains(&sid))
    }

    fn is_op(&self, sid: u64, room: &str) -> bool {
        if self.rooms.get(room).is_some_and(|r| r.ops.contains(&sid)) {
            return true;
        }
        let account = self.session(sid).account;
        account.is_some_and(|a| self.charters.get(room).is_some_and(|c| c.ops.contains(&a)))
    }

    fn may_moderate(&self, sid: u64, room: &str) -> bool {
        self.is_admin(sid) || self.is_op(sid, room)
    }

    fn hidden_from(&self, sid: u64, room: &str) -> bool {
        let secret = self.charters.get(room).is_some_and(|c| c.modes.secret);
        secret && !self.is_member(sid, room) && !self.is_admin(sid)
    }

    fn covers(mask: &Mask, nick: &str, account: Option<&str>, address: IpAddr) -> bool {
        match mask {
            Mask::Nick(banned) => banned.key() == key(nick) || account.is_some_and(|a| key(a) == banned.key()),
            Mask::Address(network) => Network::of(address) == *network,
            // The model bans nicks and addresses only.
            Mask::Pattern(_) => false,
        }
    }

    /// The ban (`ban`) or mute in force in `room` for the session.
    fn restricted(&self, sid: u64, room: &str, ban: bool) -> Option<MRestriction> {
        let s = self.session(sid);
        let account = self.account_name(sid);
        let charter = self.charters.get(room)?;
        charter
            .restrictions
            .iter()
            .find(|r| r.ban == ban && Self::covers(&r.mask, &s.nick, account.as_deref(), s.address))
            .cloned()
    }

    /// The server ban in force for this nick, account and address: its reason.
    fn server_ban(&self, nick: &str, account: Option<&str>, address: IpAddr) -> Option<Option<String>> {
        let by_nick = |name: &str| {
            self.server_bans.iter().find(|b| b.live && matches!(&b.mask, Mask::Nick(n) if n.key() == key(name)))
        };
        by_nick(nick)
            .or_else(|| account.and_then(by_nick))
            .or_else(|| {
                let network = Network::of(address);
                self.server_bans.iter().find(|b| b.live && b.mask == Mask::Address(network))
            })
            .map(|b| b.reason.clone())
    }

    fn members(&self, room: &str) -> Vec<MemberView> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        let mut members: Vec<MemberView> = r
            .members
            .iter()
            .map(|&sid| MemberView {
                nick: self.session(sid).nick.clone(),
                op: self.is_op(sid, room),
                voice: r.voiced.contains(&sid),
                admin: self.is_admin(sid),
            })
            .collect();
        members.sort_by_key(|m| (m.nick.to_lowercase(), m.nick.clone()));
        members
    }

    fn since(&self, room: &str) -> u64 {
        self.charters.get(room).map_or(u64::MAX, |c| c.since)
    }

    /// The latest messages a session entering `room` gets.
    fn recent(&self, room: &str) -> Vec<u64> {
        let since = self.since(room);
        let held: Vec<u64> =
            self.logs.get(room).map(|l| l.recent.iter().copied().filter(|s| *s >= since).collect()).unwrap_or_default();
        held[held.len().saturating_sub(self.keep)..].to_vec()
    }

    fn founded_by(&self, account: i64) -> usize {
        self.charters.values().filter(|c| c.founder == Some(account)).count()
    }

    fn emit(&mut self, sid: u64, seen: Seen) {
        let slot = self.session(sid).slot;
        self.out.entry(slot).or_default().push(seen);
    }

    /// `@N` as the nick of slot N's session now (its first nick when it has none), `@@N`
    /// as slot N's address; anything else as it is.
    fn person(&self, text: &str) -> String {
        let slot = |n: &str| n.parse::<usize>().expect("a slot") % self.slots.len();
        if let Some(n) = text.strip_prefix("@@") {
            return SLOT_ADDRESSES[slot(n)].to_owned();
        }
        match text.strip_prefix('@') {
            Some(n) => {
                self.slots[slot(n)].map_or_else(|| SLOT_NICKS[slot(n)].to_owned(), |sid| self.session(sid).nick.clone())
            }
            None => text.to_owned(),
        }
    }

    /// The command with the people it names resolved (see [`Model::person`]), and the
    /// room `@here` as the session's latest.
    fn name_people(&self, sid: u64, command: &Command) -> Command {
        let mut command = command.clone();
        if let Command::Mode { room, .. } | Command::Modes { room } | Command::Bans { room } = &mut command {
            if room == HERE {
                LOBBY.clone_into(room);
                if let Some(latest) = self.session(sid).rooms.last() {
                    latest.clone_into(room);
                }
            }
        }
        if let Command::Join { room, .. } = &mut command {
            if room == BACK {
                let left = self.left[self.session(sid).slot].as_deref();
                left.unwrap_or(LOBBY).clone_into(room);
            }
        }
        let who = |text: &mut String| *text = self.person(text);
        match &mut command {
            Command::Whisper { to: nick, .. }
            | Command::Nick { nick }
            | Command::Invite { nick, .. }
            | Command::Conversation { with: nick, .. }
            | Command::Login { name: Some(nick), .. } => who(nick),
            Command::Moderate { action, .. } => match action {
                Action::Kick { nick, .. }
                | Action::Ban { mask: nick, .. }
                | Action::Unban { mask: nick }
                | Action::Mute { nick, .. }
                | Action::Unmute { nick }
                | Action::Op { nick }
                | Action::Deop { nick } => who(nick),
                Action::Topic(_) | Action::Register | Action::Unregister => {}
            },
            Command::ServerModerate { action: ServerAction::Ban { mask, .. } | ServerAction::Unban { mask } } => {
                who(mask);
            }
            _ => {}
        }
        command
    }

    /// Whether joining as `command` asks will register a new room on the joiner's
    /// account: the store then writes it after the answer, and the driver waits for it.
    fn registers_on_join(&self, slot: usize, command: &Command) -> bool {
        let Command::Join { room, exclusive, .. } = command else {
            return false;
        };
        let Some(sid) = self.slots[slot] else {
            return false;
        };
        let Some(account) = self.session(sid).account else {
            return false;
        };
        let Ok(name) = RoomName::parse(room, MAX_ROOM) else {
            return false;
        };
        let room = name.key();
        let rooms = &self.session(sid).rooms;
        let too_many = !exclusive && rooms.len() >= MAX_ROOMS && !rooms.contains(&room);
        room != LOBBY && !self.charters.contains_key(&room) && !too_many && self.founded_by(account) < MAX_FOUNDED
    }

    // -- pacing --------------------------------------------------------------------------

    fn wait(failures: Failures, free: u32) -> Option<Duration> {
        let over = failures.count.checked_sub(free).filter(|n| *n > 0)?;
        Some(Duration::from_secs(1u64 << (over - 1).min(16)).min(Duration::from_secs(300)))
    }

    /// Whether a password check for `account` from `network` is taken now. When the
    /// clock could have gone either way (a wait ends between sending and answering),
    /// the hub's answer decides.
    fn admitted(&self, network: Network, account: &str, obs: &Observed) -> bool {
        let rules = [
            (self.net_failures.get(&network).copied(), 5),
            (self.pair_failures.get(&(network, account.to_owned())).copied(), 0),
        ];
        let (mut surely_refused, mut surely_taken) = (false, true);
        for (failures, free) in rules {
            let Some(failures) = failures else { continue };
            let Some(wait) = Self::wait(failures, free) else { continue };
            surely_refused |= obs.done < failures.lo + wait;
            surely_taken &= obs.sent >= failures.hi + wait;
        }
        if surely_refused {
            false
        } else if surely_taken {
            true
        } else {
            !matches!(obs.reply, Some(Err(HubError::TooManyAttempts { .. })))
        }
    }

    fn failed(&mut self, network: Network, account: &str, obs: &Observed) {
        let fresh = Failures { count: 0, lo: obs.sent, hi: obs.done };
        for failures in [
            self.net_failures.entry(network).or_insert(fresh),
            self.pair_failures.entry((network, account.to_owned())).or_insert(fresh),
        ] {
            failures.count += 1;
            failures.lo = obs.sent;
            failures.hi = obs.done;
        }
    }

    fn succeeded(&mut self, network: Network, account: &str) {
        self.pair_failures.remove(&(network, account.to_owned()));
    }
}

impl Model {
    // -- sessions, rooms, nicks ----------------------------------------------------------

    /// Why a client may not come in: a server ban, or a ban in the lobby, where every
    /// session starts (entering it checks what joining it checks).
    fn banned_at_connect(&self, nick: &str, account: Option<&str>, address: IpAddr) -> Option<HubError> {
        if let Some(reason) = self.server_ban(nick, account, address) {
            return Some(HubError::ServerBanned { reason });
        }
        let lobby = &self.charters[LOBBY];
        let ban = lobby.restrictions.iter().find(|r| r.ban && Self::covers(&r.mask, nick, account, address))?;
        Some(HubError::Banned { room: LOBBY.to_owned(), reason: ban.reason.clone() })
    }

    fn connect(&mut self, slot: usize, nick: &str, account: Option<i64>) -> Result<Answer, HubError> {
        let nick = Nick::parse(nick, MAX_NICK)?;
        if self.nicks.contains_key(&nick.key()) {
            return Err(HubError::NickTaken(nick.to_string()));
        }
        let account_name = account.map(|a| self.accounts[&a].name.clone());
        if let Some(refused) = self.banned_at_connect(nick.as_str(), account_name.as_deref(), address(slot)) {
            return Err(refused);
        }
        let sid = self.next_id;
        self.next_id += 1;
        self.last_guest += 1;
        let session = MSession {
            slot,
            nick: nick.to_string(),
            account,
            rooms: Vec::new(),
            address: address(slot),
            oper: false,
            guest: self.last_guest,
        };
        self.sessions.insert(sid, session);
        self.nicks.insert(nick.key(), sid);
        self.slots[slot] = Some(sid);
        self.enter(sid, LOBBY);
        Ok(Answer::Welcome { nick: nick.to_string(), members: self.members(LOBBY), history: self.recent(LOBBY) })
    }

    fn connect_as(&mut self, slot: usize, nick: &str, password: &str, obs: &Observed) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoAccounts);
        }
        let name = Nick::parse(nick, MAX_NICK)?;
        let network = Network::of(address(slot));
        if !self.admitted(network, &name.key(), obs) {
            return Err(HubError::TooManyAttempts { retry_after_secs: 0 });
        }
        let account = match self.names.get(&name.key()) {
            Some(&a) if self.accounts[&a].password == password => a,
            _ => {
                self.failed(network, &name.key(), obs);
                return Err(HubError::BadLogin);
            }
        };
        self.succeeded(network, &name.key());
        let account_name = self.accounts[&account].name.clone();
        if let Some(refused) = self.banned_at_connect(&account_name, Some(&account_name), address(slot)) {
            return Err(refused);
        }
        if let Some(&holder) = self.nicks.get(&key(&account_name)) {
            self.rename_to_guest(holder);
        }
        self.connect(slot, &account_name, Some(account))
    }

    fn remove_session(&mut self, sid: u64, reason: LeaveReason) {
        let Some(session) = self.sessions.get(&sid).cloned() else {
            return;
        };
        self.nicks.remove(&key(&session.nick));
        for room in &session.rooms {
            self.leave(sid, &session.nick, room, reason);
        }
        self.sessions.remove(&sid);
        self.slots[session.slot] = None;
    }

    fn enter(&mut self, sid: u64, room: &str) {
        if !self.rooms.contains_key(room) {
            self.open_room(sid, room);
        }
        let nick = self.session(sid).nick.clone();
        let members = self.rooms.entry(room.to_owned()).or_default().members.clone();
        if !members.contains(&sid) {
            for member in members {
                self.emit(member, Seen::Joined { room: room.to_owned(), nick: nick.clone() });
            }
            self.rooms.get_mut(room).expect("just made").members.push(sid);
        }
        let rooms = &mut self.sessions.get_mut(&sid).expect("a session").rooms;
        rooms.retain(|r| r != room);
        rooms.push(room.to_owned());
    }

    /// A room's first member opens it: a registered room as it was, any other as a new
    /// life with its creator as operator (and registered to the creator's account).
    fn open_room(&mut self, creator: u64, room: &str) {
        if self.charters.contains_key(room) {
            if room != LOBBY {
                note("a registered room filling again");
            }
            return;
        }
        let since = self.logs.get(room).map_or(1, |l| l.assigned + 1);
        if since > 1 {
            note("a room's new life after messages");
        }
        if let Some(log) = self.logs.get_mut(room) {
            log.recent.clear();
        }
        self.charters.insert(room.to_owned(), MCharter::fresh(since));
        let mut members = MRoom::default();
        members.ops.insert(creator);
        self.rooms.insert(room.to_owned(), members);
        let Some(account) = self.session(creator).account else {
            return;
        };
        if room != LOBBY && self.founded_by(account) < MAX_FOUNDED {
            if let Ok(account) = self.registration(creator, room) {
                self.apply(room, Change::Registered(account));
            }
        }
    }

    fn leave(&mut self, sid: u64, nick: &str, room: &str, reason: LeaveReason) {
        let slot = self.session(sid).slot;
        self.left[slot] = Some(room.to_owned());
        let Some(members) = self.rooms.get_mut(room) else {
            return;
        };
        members.members.retain(|m| *m != sid);
        members.voiced.remove(&sid);
        members.ops.remove(&sid);
        if members.members.is_empty() {
            self.rooms.remove(room);
            self.close_room(room);
            return;
        }
        for member in members.members.clone() {
            let left = Seen::Left { room: room.to_owned(), nick: nick.to_owned(), reason: format!("{reason:?}") };
            self.emit(member, left);
        }
    }

    /// The last member left: an unregistered room's life ends.
    fn close_room(&mut self, room: &str) {
        if self.charters.get(room).is_some_and(|c| c.registered) {
            return;
        }
        self.charters.remove(room);
        if let Some(log) = self.logs.get_mut(room) {
            log.recent.clear();
        }
    }

    fn change_nick(&mut self, sid: u64, new: String, tell_self: bool) {
        let session = self.sessions.get_mut(&sid).expect("a session");
        let old = std::mem::replace(&mut session.nick, new.clone());
        let rooms = session.rooms.clone();
        self.nicks.remove(&key(&old));
        self.nicks.insert(key(&new), sid);
        let mut told = BTreeSet::from([sid]);
        let mut targets = if tell_self { vec![sid] } else { Vec::new() };
        for room in &rooms {
            if let Some(members) = self.rooms.get(room) {
                targets.extend(members.members.iter().copied().filter(|m| told.insert(*m)));
            }
        }
        for target in targets {
            self.emit(target, Seen::NickChanged { old: old.clone(), new: new.clone() });
        }
    }

    fn rename_to_guest(&mut self, sid: u64) {
        let mut n = sid;
        let guest = loop {
            let candidate = format!("Guest_{n}");
            if !self.nicks.contains_key(&key(&candidate)) && !self.names.contains_key(&key(&candidate)) {
                break candidate;
            }
            n = n.wrapping_add(1_000_000);
        };
        self.change_nick(sid, guest, true);
    }

    fn target_room(&self, sid: u64, room: Option<&str>) -> Result<String, HubError> {
        let rooms = &self.session(sid).rooms;
        match room {
            None => rooms.last().cloned().ok_or(HubError::NoRoom),
            Some(text) => {
                let name = RoomName::parse(text, MAX_ROOM)?;
                let room = name.key();
                if rooms.contains(&room) {
                    Ok(room)
                } else if !(self.rooms.contains_key(&room) || self.charters.contains_key(&room))
                    || self.hidden_from(sid, &room)
                {
                    Err(HubError::NoSuchRoom(name.to_string()))
                } else {
                    Err(HubError::NotInRoom(name.to_string()))
                }
            }
        }
    }

    /// The room named, which the session must be in; a secret one it is not in does
    /// not exist for it.
    fn joined_room(&self, sid: u64, text: &str) -> Result<String, HubError> {
        let name = RoomName::parse(text, MAX_ROOM)?;
        let room = name.key();
        match self.rooms.get(&room) {
            Some(r) if r.members.contains(&sid) => Ok(room),
            Some(_) if !self.hidden_from(sid, &room) => Err(HubError::NotInRoom(room)),
            _ => Err(HubError::NoSuchRoom(room)),
        }
    }

    fn session_named(&self, text: &str) -> Result<u64, HubError> {
        Nick::parse(text, MAX_NICK)
            .ok()
            .and_then(|n| self.nicks.get(&n.key()).copied())
            .ok_or_else(|| HubError::NoSuchNick(text.to_owned()))
    }

    fn join(&mut self, sid: u64, text: &str, exclusive: bool, key_given: Option<&str>) -> Result<Answer, HubError> {
        let room = RoomName::parse(text, MAX_ROOM)?.key();
        let rooms = &self.session(sid).rooms;
        if !exclusive && rooms.len() >= MAX_ROOMS && !rooms.contains(&room) {
            return Err(HubError::TooManyRooms { max: MAX_ROOMS });
        }
        if let Some(ban) = self.restricted(sid, &room, true) {
            return Err(HubError::Banned { room, reason: ban.reason });
        }
        if let Some(charter) = self.charters.get(&room) {
            if !self.is_member(sid, &room) && !self.may_moderate(sid, &room) {
                let members = self.rooms.get(&room);
                let invited = members.is_some_and(|r| r.invited.contains(&sid));
                if charter.modes.invite_only && !invited {
                    return Err(HubError::InviteOnly(room));
                }
                if charter.modes.key.as_deref().is_some_and(|k| Some(k) != key_given) && !invited {
                    return Err(HubError::WrongKey(room));
                }
                let count = members.map_or(0, |r| r.members.len());
                if charter.modes.limit.is_some_and(|limit| count >= limit) {
                    return Err(HubError::RoomFull(room));
                }
            }
        }
        self.enter(sid, &room);
        if let Some(members) = self.rooms.get_mut(&room) {
            members.invited.remove(&sid);
        }
        if exclusive {
            let session = self.sessions.get_mut(&sid).expect("a session");
            let others: Vec<String> = session.rooms.iter().filter(|r| **r != room).cloned().collect();
            session.rooms.retain(|r| *r == room);
            let nick = session.nick.clone();
            for other in others {
                self.leave(sid, &nick, &other, LeaveReason::Part);
            }
        }
        let topic = self.charters.get(&room).and_then(|c| c.topic.clone());
        Ok(Answer::Joined { members: self.members(&room), history: self.recent(&room), topic, room })
    }

    fn part(&mut self, sid: u64, room: Option<&str>) -> Result<Answer, HubError> {
        let room = self.target_room(sid, room)?;
        let session = self.sessions.get_mut(&sid).expect("a session");
        session.rooms.retain(|r| *r != room);
        let nick = session.nick.clone();
        self.leave(sid, &nick, &room, LeaveReason::Part);
        Ok(Answer::Parted { room })
    }

    fn rename(&mut self, sid: u64, text: &str) -> Result<Answer, HubError> {
        let new = Nick::parse(text, MAX_NICK)?;
        if self.nicks.get(&new.key()).is_some_and(|owner| *owner != sid) {
            return Err(HubError::NickTaken(new.to_string()));
        }
        if self.names.contains_key(&new.key()) && self.account_name(sid).map(|a| key(&a)) != Some(new.key()) {
            return Err(HubError::NickRegistered(new.to_string()));
        }
        self.change_nick(sid, new.to_string(), false);
        Ok(Answer::Nick { nick: new.to_string() })
    }

    fn invite(&mut self, sid: u64, nick: &str, room: Option<&str>) -> Result<Answer, HubError> {
        let target = self.session_named(nick)?;
        let room = match room {
            Some(text) => self.joined_room(sid, text)?,
            None => self.target_room(sid, None)?,
        };
        let invite_only = self.charters.get(&room).is_some_and(|c| c.modes.invite_only);
        if invite_only && !self.may_moderate(sid, &room) {
            return Err(HubError::NotOperator(room));
        }
        let nick = self.session(target).nick.clone();
        let members = self.rooms.get_mut(&room).expect("the session is in it");
        if members.members.contains(&target) {
            return Err(HubError::AlreadyInRoom { nick, room });
        }
        members.invited.insert(target);
        Ok(Answer::Invited { nick, room })
    }

    fn who(&self, sid: u64, room: Option<&str>) -> Result<Answer, HubError> {
        let room = match room {
            None => self.target_room(sid, None)?,
            Some(text) => RoomName::parse(text, MAX_ROOM)?.key(),
        };
        if !self.rooms.contains_key(&room) || self.hidden_from(sid, &room) {
            return Err(HubError::NoSuchRoom(room));
        }
        Ok(Answer::Who { members: self.members(&room), room })
    }

    // -- messages ------------------------------------------------------------------------

    fn check_text(text: &str) -> Result<(), HubError> {
        if text.trim().is_empty() {
            return Err(HubError::EmptyMessage);
        }
        if text.len() > MAX_TEXT {
            return Err(HubError::MessageTooLong { max: MAX_TEXT });
        }
        Ok(())
    }

    fn say(&mut self, sid: u64, room: Option<&str>, text: &str) -> Result<Answer, HubError> {
        Self::check_text(text)?;
        let room = self.target_room(sid, room)?;
        if self.restricted(sid, &room, false).is_some() {
            return Err(HubError::Muted(room));
        }
        let moderated = self.charters.get(&room).is_some_and(|c| c.modes.moderated);
        let voiced = self.rooms.get(&room).is_some_and(|r| r.voiced.contains(&sid));
        if moderated && !voiced && !self.may_moderate(sid, &room) {
            return Err(HubError::Moderated(room));
        }
        let keep = self.keep;
        let log = self.logs.entry(room.clone()).or_default();
        log.assigned += 1;
        let seq = log.assigned;
        if keep > 0 {
            if log.recent.len() >= keep {
                log.recent.pop_front();
            }
            log.recent.push_back(seq);
        }
        let from = self.session(sid).nick.clone();
        self.stored.push(Stored::Room { room: room.clone(), seq, from: from.clone(), text: text.to_owned() });
        for member in self.rooms[&room].members.clone() {
            let seen = if member == sid {
                Seen::Said { room: room.clone(), seq }
            } else {
                Seen::Message { room: room.clone(), seq, from: from.clone(), text: text.to_owned() }
            };
            self.emit(member, seen);
        }
        Ok(Answer::Said { room, seq })
    }

    fn whisper(&mut self, sid: u64, to: &str, text: &str) -> Result<Answer, HubError> {
        Self::check_text(text)?;
        let target = self.session_named(to)?;
        let to = self.session(target).nick.clone();
        let from = self.session(sid).nick.clone();
        self.private_seq += 1;
        let seq = self.private_seq;
        let (sender, recipient) = (self.party(sid), self.party(target));
        self.stored.push(Stored::Private { seq, sender, recipient, from: from.clone(), text: text.to_owned() });
        self.emit(target, Seen::Whisper { seq, from, to: to.clone(), text: text.to_owned() });
        self.emit(sid, Seen::Whispered { seq, to: to.clone() });
        Ok(Answer::Whispered { to, seq })
    }
}

/// Whether a key is one a client could send back (the hub's rule).
fn usable_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 32 && !key.contains([' ', ',', ':']) && !key.chars().any(char::is_control)
}

/// Whether a ban or mute of `duration` is in force once made; refused beyond the
/// longest allowed.
fn in_force(duration: Option<Duration>) -> Result<bool, HubError> {
    match duration {
        None => Ok(true),
        Some(d) if d > DAY * 3660 => Err(HubError::TooLong { max_days: parley_hub::MAX_RESTRICTION_DAYS }),
        Some(d) => Ok(!d.is_zero()),
    }
}

impl Model {
    // -- settings and moderation ---------------------------------------------------------

    fn set_modes(&mut self, sid: u64, room: &str, changes: &[ModeChange]) -> Result<Answer, HubError> {
        let room = self.joined_room(sid, room)?;
        if !self.may_moderate(sid, &room) {
            return Err(HubError::NotOperator(room));
        }
        let mut modes = self.charters[&room].modes.clone();
        let mut voiced = self.rooms[&room].voiced.clone();
        for change in changes {
            let set = change.set;
            match &change.mode {
                RoomMode::Voice(nick) => {
                    let target = self.nicks.get(&nick.key()).copied().filter(|t| self.is_member(*t, &room));
                    let target =
                        target.ok_or_else(|| HubError::NotHere { nick: nick.to_string(), room: room.clone() })?;
                    if set {
                        voiced.insert(target);
                    } else {
                        voiced.remove(&target);
                    }
                }
                RoomMode::Key(key) if set && !usable_key(key) => {
                    return Err(HubError::BadMode(ModeProblem::Key { max: 32 }))
                }
                RoomMode::Limit(limit) if set && !(1..=1_000_000).contains(limit) => {
                    return Err(HubError::BadMode(ModeProblem::Limit { max: 1_000_000 }))
                }
                RoomMode::Moderated => modes.moderated = set,
                RoomMode::Secret => modes.secret = set,
                RoomMode::Private => modes.private = set,
                RoomMode::TopicLocked => modes.topic_locked = set,
                RoomMode::InviteOnly => modes.invite_only = set,
                RoomMode::Key(key) => modes.key = set.then(|| key.clone()),
                RoomMode::Limit(limit) => modes.limit = set.then_some(*limit),
            }
        }
        self.charters.get_mut(&room).expect("a charter").modes = modes;
        self.rooms.get_mut(&room).expect("members").voiced = voiced;
        Ok(Answer::ModesSet { room })
    }

    fn modes(&self, sid: u64, room: &str) -> Result<Answer, HubError> {
        let room = RoomName::parse(room, MAX_ROOM)?.key();
        if !self.rooms.contains_key(&room) || self.hidden_from(sid, &room) {
            return Err(HubError::NoSuchRoom(room));
        }
        let member = self.is_member(sid, &room) || self.may_moderate(sid, &room);
        let mut modes = self.charters[&room].modes.clone();
        let key_hidden = !member && modes.key.is_some();
        if key_hidden {
            modes.key = None;
        }
        Ok(Answer::Modes { room, modes, key_hidden })
    }

    fn bans(&self, sid: u64, text: &str) -> Result<Answer, HubError> {
        let room = match self.joined_room(sid, text) {
            Ok(room) => room,
            Err(e) => {
                let room = RoomName::parse(text, MAX_ROOM)?.key();
                let exists = self.rooms.contains_key(&room) || self.charters.contains_key(&room);
                if !self.is_admin(sid) && (!exists || self.hidden_from(sid, &room)) {
                    return Err(e);
                }
                room
            }
        };
        let moderator = self.may_moderate(sid, &room);
        let masks = self
            .charters
            .get(&room)
            .map(|c| {
                let shown = c.restrictions.iter().filter(|r| r.ban && (moderator || !r.mask.is_address()));
                shown.map(|r| r.mask.to_string()).collect()
            })
            .unwrap_or_default();
        Ok(Answer::Bans { room, masks })
    }

    fn registration(&self, sid: u64, room: &str) -> Result<i64, HubError> {
        let account = self.session(sid).account.ok_or(HubError::NotLoggedIn)?;
        if self.charters[room].registered {
            return Err(HubError::RoomRegistered(room.to_owned()));
        }
        if self.founded_by(account) >= MAX_FOUNDED {
            return Err(HubError::TooManyRegistered { max: MAX_FOUNDED });
        }
        Ok(account)
    }

    fn moderate(&mut self, sid: u64, room: Option<&str>, action: &Action) -> Result<Answer, HubError> {
        let room = match room {
            Some(text) => match self.joined_room(sid, text) {
                Ok(room) => room,
                Err(e) => {
                    let room = RoomName::parse(text, MAX_ROOM)?.key();
                    if !(self.is_admin(sid) && self.charters.contains_key(&room)) {
                        return Err(e);
                    }
                    room
                }
            },
            None => self.target_room(sid, None)?,
        };
        let charter = &self.charters[&room];
        let allowed = match action {
            Action::Topic(_) => {
                (self.is_member(sid, &room) && !charter.modes.topic_locked) || self.may_moderate(sid, &room)
            }
            Action::Unregister => {
                let account = self.session(sid).account;
                self.is_admin(sid) || (account.is_some() && charter.founder == account)
            }
            _ => self.may_moderate(sid, &room),
        };
        if !allowed {
            return Err(match action {
                Action::Unregister => HubError::NotFounder(room),
                _ => HubError::NotOperator(room),
            });
        }
        let change = self.resolve(sid, &room, action)?;
        let answer = self.apply(&room, change);
        // With a store the change is applied when the store reports, and then a room
        // left empty is closed (without one, nothing that could empty it is durable).
        if self.store && !self.rooms.contains_key(&room) {
            self.close_room(&room);
        }
        Ok(answer)
    }

    fn resolve(&self, sid: u64, room: &str, action: &Action) -> Result<Change, HubError> {
        let member = |nick: &str| -> Result<String, HubError> {
            let parsed = Nick::parse(nick, MAX_NICK).map_err(|_| HubError::NoSuchNick(nick.to_owned()))?;
            let id = self.nicks.get(&parsed.key()).ok_or_else(|| HubError::NoSuchNick(nick.to_owned()))?;
            let shown = self.session(*id).nick.clone();
            if !self.is_member(*id, room) {
                return Err(HubError::NotHere { nick: shown, room: room.to_owned() });
            }
            Ok(shown)
        };
        let account = |nick: &str| Nick::parse(nick, MAX_NICK).ok().and_then(|n| self.names.get(&n.key()).copied());
        let mask = |text: &str| Mask::parse(text, MAX_NICK).ok_or_else(|| HubError::BadMask(text.to_owned()));
        let charter = &self.charters[room];
        let has_space = |ban: bool, mask: &Mask| {
            let same = charter.restrictions.iter().any(|r| r.ban == ban && r.mask == *mask);
            if same || charter.restrictions.len() < MAX_BANS {
                Ok(())
            } else {
                Err(HubError::TooManyBans { max: MAX_BANS })
            }
        };
        Ok(match action {
            Action::Topic(text) => Change::Topic(shorten(if text.trim().is_empty() { "" } else { text }, MAX_REASON)),
            Action::Kick { nick, .. } => Change::Kicked(member(nick)?),
            Action::Ban { mask: text, duration, reason } => {
                let mask = mask(text)?;
                let live = in_force(*duration)?;
                has_space(true, &mask)?;
                let reason = reason.as_deref().map(|r| shorten(r, MAX_REASON));
                Change::Restricted { restriction: MRestriction { ban: true, mask, reason }, live }
            }
            Action::Unban { mask: text } => Change::Lifted { ban: true, mask: mask(text)? },
            Action::Mute { nick, duration } => {
                let mask = mask(nick)?;
                let live = in_force(*duration)?;
                has_space(false, &mask)?;
                Change::Restricted { restriction: MRestriction { ban: false, mask, reason: None }, live }
            }
            Action::Unmute { nick } => Change::Lifted { ban: false, mask: mask(nick)? },
            Action::Op { nick } => match account(nick).filter(|_| charter.registered) {
                Some(account) => Change::Opped(account),
                None => Change::Promoted(member(nick)?),
            },
            Action::Deop { nick } => match account(nick).filter(|a| charter.ops.contains(a)) {
                Some(account) => Change::Deopped(account),
                None => Change::Demoted(member(nick)?),
            },
            Action::Register => Change::Registered(self.registration(sid, room)?),
            Action::Unregister => {
                if room == LOBBY {
                    return Err(HubError::NotFounder(room.to_owned()));
                }
                if !charter.registered {
                    return Err(HubError::RoomNotRegistered(room.to_owned()));
                }
                Change::Unregistered
            }
        })
    }

    fn apply(&mut self, room: &str, change: Change) -> Answer {
        let moderated = |action: &str, target: String| Answer::Moderated {
            action: action.to_owned(),
            room: room.to_owned(),
            target: target.to_lowercase(),
        };
        let charter = self.charters.get_mut(room).expect("a charter");
        match change {
            Change::Topic(text) => {
                charter.topic = (!text.is_empty()).then(|| text.clone());
                moderated("topic", text)
            }
            Change::Kicked(nick) => {
                self.kick(room, &nick, LeaveReason::Kicked);
                moderated("kick", nick)
            }
            Change::Restricted { restriction, live } => {
                let (ban, target) = (restriction.ban, restriction.mask.to_string());
                let list = &mut charter.restrictions;
                match list.iter().position(|r| r.ban == ban && r.mask == restriction.mask) {
                    Some(at) if live => list[at] = restriction,
                    Some(at) => {
                        list.remove(at);
                    }
                    None if live => list.push(restriction),
                    None => {}
                }
                if ban {
                    self.eject(room);
                }
                moderated(if ban { "ban" } else { "mute" }, target)
            }
            Change::Lifted { ban, mask } => {
                charter.restrictions.retain(|r| !(r.ban == ban && r.mask == mask));
                moderated(if ban { "unban" } else { "unmute" }, mask.to_string())
            }
            Change::Promoted(nick) => {
                if let Some(&target) = self.nicks.get(&key(&nick)) {
                    if let Some(members) = self.rooms.get_mut(room).filter(|r| r.members.contains(&target)) {
                        members.ops.insert(target);
                    }
                }
                moderated("op", nick)
            }
            Change::Demoted(nick) => {
                if let Some(&target) = self.nicks.get(&key(&nick)) {
                    if let Some(members) = self.rooms.get_mut(room).filter(|r| r.members.contains(&target)) {
                        members.ops.remove(&target);
                    }
                }
                moderated("deop", nick)
            }
            Change::Opped(account) => {
                charter.ops.insert(account);
                moderated("op", self.accounts[&account].name.clone())
            }
            Change::Deopped(account) => {
                charter.ops.remove(&account);
                let theirs: Vec<u64> =
                    self.sessions.iter().filter(|(_, s)| s.account == Some(account)).map(|(id, _)| *id).collect();
                if let Some(members) = self.rooms.get_mut(room) {
                    for session in theirs {
                        members.ops.remove(&session);
                    }
                }
                moderated("deop", self.accounts[&account].name.clone())
            }
            Change::Registered(account) => {
                note("a room registered");
                charter.registered = true;
                charter.founder = Some(account);
                charter.ops.insert(account);
                moderated("register", self.accounts[&account].name.clone())
            }
            Change::Unregistered => {
                charter.registered = false;
                charter.founder = None;
                let ops = std::mem::take(&mut charter.ops);
                let operating: Vec<u64> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.account.is_some_and(|a| ops.contains(&a)))
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(members) = self.rooms.get_mut(room) {
                    let staying: Vec<u64> = operating.into_iter().filter(|s| members.members.contains(s)).collect();
                    members.ops.extend(staying);
                }
                moderated("unregister", room.to_owned())
            }
        }
    }

    /// Puts `nick` out of `room` (kicked, or banned), telling everyone there, them
    /// included.
    fn kick(&mut self, room: &str, nick: &str, reason: LeaveReason) {
        let Some(&target) = self.nicks.get(&key(nick)) else {
            return;
        };
        if !self.is_member(target, room) {
            return;
        }
        for member in self.rooms[room].members.clone() {
            let left = Seen::Left { room: room.to_owned(), nick: nick.to_owned(), reason: format!("{reason:?}") };
            self.emit(member, left);
        }
        self.sessions.get_mut(&target).expect("a session").rooms.retain(|r| r != room);
        let slot = self.session(target).slot;
        self.left[slot] = Some(room.to_owned());
        let members = self.rooms.get_mut(room).expect("members");
        members.members.retain(|m| *m != target);
        members.voiced.remove(&target);
        members.ops.remove(&target);
        if members.members.is_empty() {
            self.rooms.remove(room);
            self.close_room(room);
        }
    }

    /// Puts out of `room` everyone a ban in it now covers.
    fn eject(&mut self, room: &str) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        let banned: Vec<String> = members
            .members
            .iter()
            .filter(|m| self.restricted(**m, room, true).is_some())
            .map(|m| self.session(*m).nick.clone())
            .collect();
        for nick in banned {
            self.kick(room, &nick, LeaveReason::Banned);
        }
    }

    fn moderate_server(&mut self, sid: u64, action: &ServerAction) -> Result<Answer, HubError> {
        if !self.is_admin(sid) {
            return Err(HubError::NotAdmin);
        }
        let mask = |text: &str| Mask::parse(text, MAX_NICK).ok_or_else(|| HubError::BadMask(text.to_owned()));
        match action {
            ServerAction::Ban { mask: text, duration, reason } => {
                let mask = mask(text)?;
                let live = in_force(*duration)?;
                let present = self.server_bans.iter().any(|b| b.mask == mask);
                if !present && self.server_bans.len() >= MAX_SERVER_BANS {
                    self.server_bans.retain(|b| b.live);
                }
                if !present && self.server_bans.len() >= MAX_SERVER_BANS {
                    return Err(HubError::TooManyBans { max: MAX_SERVER_BANS });
                }
                let reason = reason.as_deref().map(|r| shorten(r, MAX_REASON));
                let covered: Vec<u64> = self
                    .sessions
                    .iter()
                    .filter(|(id, s)| {
                        live && Self::covers(&mask, &s.nick, self.account_name(**id).as_deref(), s.address)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let target = mask.to_string();
                self.server_bans.retain(|b| b.mask != mask);
                self.server_bans.push(MServerBan { mask, live, reason });
                for id in &covered {
                    self.emit(*id, Seen::Banned);
                    let s = self.session(*id);
                    self.thrown_out.insert(s.slot, s.nick.clone());
                    self.remove_session(*id, LeaveReason::ServerBanned);
                }
                if covered.contains(&sid) {
                    return Ok(Answer::Nothing);
                }
                Ok(Answer::ServerModerated { action: "server ban".into(), target: target.to_lowercase() })
            }
            ServerAction::Unban { mask: text } => {
                let mask = mask(text)?;
                self.server_bans.retain(|b| b.mask != mask);
                Ok(Answer::ServerModerated { action: "server unban".into(), target: mask.to_string().to_lowercase() })
            }
        }
    }
}

fn weak(password: &str) -> bool {
    password.chars().count() < parley_hub::MIN_PASSWORD || password.len() > parley_hub::MAX_PASSWORD
}

fn weak_password() -> HubError {
    HubError::WeakPassword { min: parley_hub::MIN_PASSWORD, max: parley_hub::MAX_PASSWORD }
}

fn too_many_attempts() -> HubError {
    HubError::TooManyAttempts { retry_after_secs: 0 }
}

/// One page of `seqs` (ascending), as a cursor and limit choose it.
fn page(mut seqs: Vec<u64>, cursor: Cursor, limit: usize) -> Vec<u64> {
    let limit = limit.clamp(1, parley_hub::MAX_HISTORY_PAGE);
    match cursor {
        Cursor::Latest => seqs.split_off(seqs.len().saturating_sub(limit)),
        Cursor::Before(before) => {
            seqs.retain(|s| *s < before);
            seqs.split_off(seqs.len().saturating_sub(limit))
        }
        Cursor::After(after) => seqs.into_iter().filter(|s| *s > after).take(limit).collect(),
        Cursor::LatestAfter(after) => {
            seqs.retain(|s| *s > after);
            seqs.split_off(seqs.len().saturating_sub(limit))
        }
        Cursor::Around(at) => {
            let (mut earlier, later): (Vec<u64>, Vec<u64>) = seqs.into_iter().partition(|s| *s < at);
            let mut around = earlier.split_off(earlier.len().saturating_sub(limit / 2));
            around.extend(later.into_iter().take(limit - limit / 2));
            around
        }
        Cursor::Between { after, before, latest } => {
            seqs.retain(|s| *s > after && *s < before);
            if latest {
                seqs.split_off(seqs.len().saturating_sub(limit))
            } else {
                seqs.truncate(limit);
                seqs
            }
        }
    }
}

/// Whether messages said today pass `filter:DATE`; an unreadable date is refused.
fn date_passes(filter: &'static str, date: &str) -> Result<bool, HubError> {
    let bad = || HubError::BadSearch(SearchProblem::Date { filter, value: date.to_owned() });
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
    let today = chrono::Utc::now().date_naive();
    assert!((day - today).num_days().abs() > 2, "dates in the pool are far from today");
    Ok(if filter == "before" { today < day } else { day <= today })
}

fn parse_query(text: &str) -> Result<Query, HubError> {
    let mut query = Query { words: Vec::new(), from: None, room: None, dates_pass: true, page: 1 };
    for token in text.split_whitespace() {
        match token.split_once(':') {
            Some(("from", nick)) => query.from = Some(Nick::parse(nick, MAX_NICK)?.key()),
            Some(("in", room)) => query.room = Some(RoomName::parse(room, MAX_ROOM)?),
            Some(("before", date)) => query.dates_pass &= date_passes("before", date)?,
            Some(("after", date)) => query.dates_pass &= date_passes("after", date)?,
            Some(("page", n)) => {
                query.page = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| HubError::BadSearch(SearchProblem::Page { value: n.to_owned(), max: 1000 }))?;
            }
            _ => query.words.push(token.to_owned()),
        }
    }
    if query.words.is_empty() {
        return Err(HubError::BadSearch(SearchProblem::NoWords));
    }
    Ok(query)
}

impl Model {
    // -- accounts ------------------------------------------------------------------------

    fn network(&self, sid: u64) -> Network {
        Network::of(self.session(sid).address)
    }

    fn register(&mut self, sid: u64, password: &str, obs: &Observed) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoAccounts);
        }
        if weak(password) {
            return Err(weak_password());
        }
        let nick = self.session(sid).nick.clone();
        if self.names.contains_key(&key(&nick)) {
            return Err(HubError::AccountExists(nick));
        }
        if !self.admitted(self.network(sid), &key(&nick), obs) {
            return Err(too_many_attempts());
        }
        self.next_account += 1;
        let id = self.next_account;
        self.accounts.insert(id, MAccount { name: nick.clone(), password: password.to_owned(), admin: false });
        self.names.insert(key(&nick), id);
        self.sessions.get_mut(&sid).expect("a session").account = Some(id);
        Ok(Answer::Registered { account: nick })
    }

    fn login(&mut self, sid: u64, name: Option<&str>, password: &str, obs: &Observed) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoAccounts);
        }
        let name = match name {
            Some(text) => Nick::parse(text, MAX_NICK).map_err(|_| HubError::BadLogin)?.key(),
            None => key(&self.session(sid).nick),
        };
        let network = self.network(sid);
        if !self.admitted(network, &name, obs) {
            return Err(too_many_attempts());
        }
        let account = match self.names.get(&name) {
            Some(&a) if self.accounts[&a].password == password => a,
            _ => {
                self.failed(network, &name, obs);
                return Err(HubError::BadLogin);
            }
        };
        self.succeeded(network, &name);
        let account_name = self.accounts[&account].name.clone();
        let address = self.session(sid).address;
        if let Some(reason) = self.server_ban(&account_name, Some(&account_name), address) {
            return Err(HubError::ServerBanned { reason });
        }
        self.sessions.get_mut(&sid).expect("a session").account = Some(account);
        if self.session(sid).nick != account_name {
            if let Some(&holder) = self.nicks.get(&key(&account_name)) {
                if holder != sid {
                    self.rename_to_guest(holder);
                }
            }
            self.change_nick(sid, account_name.clone(), false);
        }
        let nick = self.session(sid).nick.clone();
        for room in self.session(sid).rooms.clone() {
            if self.restricted(sid, &room, true).is_some() {
                self.kick(&room, &nick, LeaveReason::Banned);
            }
        }
        Ok(Answer::LoggedIn { account: account_name.clone(), nick: account_name })
    }

    fn unregister(&mut self, sid: u64, password: &str, obs: &Observed) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoAccounts);
        }
        let account = self.session(sid).account.ok_or(HubError::NotLoggedIn)?;
        let name = self.accounts[&account].name.clone();
        let network = self.network(sid);
        if !self.admitted(network, &key(&name), obs) {
            return Err(too_many_attempts());
        }
        if self.accounts[&account].password != password {
            self.failed(network, &key(&name), obs);
            return Err(HubError::BadLogin);
        }
        self.succeeded(network, &key(&name));
        self.forget_account(account);
        Ok(Answer::Unregistered { account: name })
    }

    fn forget_account(&mut self, account: i64) {
        self.names.retain(|_, a| *a != account);
        let founded: Vec<String> =
            self.charters.iter().filter(|(_, c)| c.founder == Some(account)).map(|(n, _)| n.clone()).collect();
        for charter in self.charters.values_mut() {
            charter.ops.remove(&account);
        }
        for room in founded {
            let charter = self.charters.get_mut(&room).expect("a charter");
            charter.registered = false;
            charter.founder = None;
            charter.ops.clear();
            if !self.rooms.contains_key(&room) {
                self.close_room(&room);
            }
        }
        for session in self.sessions.values_mut() {
            if session.account == Some(account) {
                session.account = None;
            }
        }
        let party = Party::Account(AccountId(account));
        self.stored.retain(
            |s| !matches!(s, Stored::Private { sender, recipient, .. } if *sender == party || *recipient == party),
        );
        self.accounts.remove(&account);
    }

    fn change_password(&mut self, sid: u64, old: &str, new: &str, obs: &Observed) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoAccounts);
        }
        let account = self.session(sid).account.ok_or(HubError::NotLoggedIn)?;
        if weak(new) {
            return Err(weak_password());
        }
        let name = key(&self.accounts[&account].name);
        let network = self.network(sid);
        if !self.admitted(network, &name, obs) {
            return Err(too_many_attempts());
        }
        if self.accounts[&account].password != old {
            self.failed(network, &name, obs);
            return Err(HubError::BadLogin);
        }
        self.succeeded(network, &name);
        new.clone_into(&mut self.accounts.get_mut(&account).expect("an account").password);
        Ok(Answer::PasswordChanged)
    }

    // -- reading -------------------------------------------------------------------------

    fn history(&self, sid: u64, room: Option<&str>, cursor: Cursor, limit: usize) -> Result<Answer, HubError> {
        let room = self.target_room(sid, room)?;
        let since = self.since(&room);
        let held: Vec<u64> = if self.store {
            self.stored
                .iter()
                .filter_map(|s| match s {
                    Stored::Room { room: r, seq, .. } if *r == room && *seq >= since => Some(*seq),
                    _ => None,
                })
                .collect()
        } else {
            let log = self.logs.get(&room);
            log.map(|l| l.recent.iter().copied().filter(|s| *s >= since).collect()).unwrap_or_default()
        };
        Ok(Answer::History { seqs: page(held, cursor, limit), room })
    }

    fn party_named(&self, text: &str) -> Result<(String, Party), HubError> {
        let nick = Nick::parse(text, MAX_NICK).map_err(|_| HubError::NoSuchNick(text.to_owned()))?;
        if let Some(&account) = self.names.get(&nick.key()) {
            return Ok((self.accounts[&account].name.clone(), Party::Account(AccountId(account))));
        }
        let sid = self.nicks.get(&nick.key()).ok_or_else(|| HubError::NoSuchNick(text.to_owned()))?;
        Ok((self.session(*sid).nick.clone(), self.party(*sid)))
    }

    fn conversation(&self, sid: u64, with: &str, cursor: Cursor, limit: usize) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoHistory);
        }
        let me = self.party(sid);
        let (with, party) = self.party_named(with)?;
        let mut held: Vec<u64> = self
            .stored
            .iter()
            .filter_map(|s| match s {
                Stored::Private { seq, sender, recipient, .. }
                    if (*sender == me && *recipient == party) || (*sender == party && *recipient == me) =>
                {
                    Some(*seq)
                }
                _ => None,
            })
            .collect();
        held.sort_unstable();
        Ok(Answer::Conversation { with, seqs: page(held, cursor, limit) })
    }

    fn search(&self, sid: u64, text: &str) -> Result<Answer, HubError> {
        if !self.store {
            return Err(HubError::NoHistory);
        }
        let query = parse_query(text)?;
        let joined = &self.session(sid).rooms;
        let (rooms, private_of) = match &query.room {
            Some(room) if joined.contains(&room.key()) => (vec![room.key()], None),
            Some(room) => return Err(HubError::NotInRoom(room.to_string())),
            None => (joined.clone(), Some(self.party(sid))),
        };
        let words: Vec<String> = query.words.iter().map(|w| w.to_lowercase()).collect();
        let matches = |from: &str, text: &str| {
            let text = text.to_lowercase();
            query.dates_pass
                && query.from.as_ref().is_none_or(|f| *f == key(from))
                && words.iter().all(|w| text.contains(w.as_str()))
        };
        let mut found: Vec<(Option<String>, u64)> = self
            .stored
            .iter()
            .filter_map(|s| match s {
                Stored::Room { room, seq, from, text } => {
                    let visible = rooms.contains(room) && *seq >= self.since(room);
                    (visible && matches(from, text)).then(|| (Some(room.clone()), *seq))
                }
                Stored::Private { seq, sender, recipient, from, text } => {
                    let visible = private_of.is_some_and(|me| *sender == me || *recipient == me);
                    (visible && matches(from, text)).then_some((None, *seq))
                }
            })
            .collect();
        found.reverse();
        let results = found.into_iter().skip((query.page - 1) * 20).take(20).collect();
        Ok(Answer::Found { page: query.page, results })
    }

    // -- a step --------------------------------------------------------------------------

    /// Takes a step the hub has been driven through (`obs`, for what only the clock
    /// decides) and says what the hub should have answered; what each session should
    /// have received is left in `out`.
    fn step(&mut self, step: &Step, obs: &Observed) -> Answer {
        self.out.clear();
        self.thrown_out.clear();
        let result = match step {
            Step::Connect { slot, nick, password: None } => self.connect(*slot, nick, None),
            Step::Connect { slot, nick, password: Some(password) } => self.connect_as(*slot, nick, password, obs),
            Step::Disconnect { slot } => {
                let sid = self.slots[*slot].expect("a session");
                self.remove_session(sid, LeaveReason::Lost);
                Ok(Answer::Nothing)
            }
            Step::Quit { slot } => {
                let sid = self.slots[*slot].expect("a session");
                self.remove_session(sid, LeaveReason::Quit);
                Ok(Answer::Bye)
            }
            Step::Send { slot, command } => {
                let sid = self.slots[*slot].expect("a session");
                self.command(sid, command, obs)
            }
        };
        result.unwrap_or_else(|e| Answer::Error(error_key(&e)))
    }

    fn command(&mut self, sid: u64, command: &Command, obs: &Observed) -> Result<Answer, HubError> {
        match command {
            Command::Join { room, exclusive, key } => self.join(sid, room, *exclusive, key.as_deref()),
            Command::Part { room, .. } => self.part(sid, room.as_deref()),
            Command::Say { room, text, .. } => self.say(sid, room.as_deref(), text),
            Command::Whisper { to, text, .. } => self.whisper(sid, to, text),
            Command::Nick { nick } => self.rename(sid, nick),
            Command::Invite { nick, room } => self.invite(sid, nick, room.as_deref()),
            Command::Who { room } => self.who(sid, room.as_deref()),
            Command::Mode { room, changes } => self.set_modes(sid, room, changes),
            Command::Modes { room } => self.modes(sid, room),
            Command::Bans { room } => self.bans(sid, room),
            Command::Moderate { room, action } => self.moderate(sid, room.as_deref(), action),
            Command::ServerModerate { action } => self.moderate_server(sid, action),
            Command::Oper => {
                self.sessions.get_mut(&sid).expect("a session").oper = true;
                Ok(Answer::Opered)
            }
            Command::Register { password } => self.register(sid, password, obs),
            Command::Login { name, password } => self.login(sid, name.as_deref(), password, obs),
            Command::Unregister { password } => self.unregister(sid, password, obs),
            Command::Password { old, new } => self.change_password(sid, old, new, obs),
            Command::History { room, cursor, limit } => self.history(sid, room.as_deref(), *cursor, *limit),
            Command::Conversation { with, cursor, limit } => self.conversation(sid, with, *cursor, *limit),
            Command::Search { query } => self.search(sid, query),
            other => unreachable!("the test does not send {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running a case: the hub and the model side by side.
// ---------------------------------------------------------------------------------------

struct Run {
    hub: HubHandle,
    task: tokio::task::JoinHandle<()>,
    clients: Vec<Option<Client>>,
    model: Model,
    /// Per slot and room, the last seq received: it only grows.
    last_seq: BTreeMap<(usize, String), u64>,
    /// Per room, every seq a sender was told was committed.
    committed: BTreeMap<String, BTreeSet<u64>>,
    steps: usize,
}

impl Run {
    async fn start(case: &Case, with_store: bool) -> Result<Run, String> {
        let store: Option<Arc<dyn Store>> = if with_store {
            let store = MemoryStore::new();
            let root = Nick::parse(ROOT, MAX_NICK).expect("a nick");
            let account = store.register(&root, ROOT_PASSWORD).map_err(|e| e.to_string())?.expect("a new account");
            assert_eq!(account, Account { id: AccountId(1), name: root });
            store.set_admin(AccountId(1), true);
            Some(Arc::new(store))
        } else {
            None
        };
        let (hub, task) = parley_hub::spawn(limits(case.history_on_join), store).await.map_err(|e| e.to_string())?;
        let model = Model::new(with_store, case.history_on_join, case.slots);
        let clients = (0..case.slots).map(|_| None).collect();
        Ok(Run { hub, task, clients, model, last_seq: BTreeMap::new(), committed: BTreeMap::new(), steps: 0 })
    }

    fn client(&mut self, slot: usize) -> Result<&mut Client, String> {
        self.clients[slot].as_mut().ok_or_else(|| format!("slot {slot} has no connection"))
    }

    /// Sends a step to the hub and waits for its answer.
    async fn drive(&mut self, step: &Step, req: RequestId, await_registration: bool) -> Result<Observed, String> {
        let sent = Instant::now();
        let reply = match step {
            Step::Connect { slot, nick, password } => {
                let mut client = Client::new();
                let at = Some(address(*slot));
                let outbox = client.outbox.clone();
                let connecting = async {
                    match password {
                        None => self.hub.connect(nick, at, req, outbox).await,
                        Some(password) => self.hub.connect_as(nick, (*password).to_owned(), at, req, outbox).await,
                    }
                };
                match tokio::time::timeout(STEP_TIMEOUT, connecting).await {
                    Err(_) => return Err("the connect was not answered".into()),
                    Ok(Err(e)) => Some(Err(e)),
                    Ok(Ok(session)) => {
                        client.session = Some(session);
                        let reply = client.reply(req).await?;
                        self.clients[*slot] = Some(client);
                        reply
                    }
                }
            }
            Step::Disconnect { slot } => {
                let client = self.client(*slot)?;
                let session = client.session.as_ref().ok_or("no session")?;
                session.disconnect(None).await;
                // Answered after the disconnect: the session is gone by then.
                match session.whereabouts().await {
                    Ok(None) => None,
                    other => return Err(format!("still there after disconnecting: {other:?}")),
                }
            }
            Step::Quit { slot } => {
                let client = self.client(*slot)?;
                let session = client.session.as_ref().ok_or("no session")?;
                session.quit(req, None).await.map_err(|e| e.to_string())?;
                client.reply(req).await?
            }
            Step::Send { slot, command } => {
                let client = self.client(*slot)?;
                let session = client.session.as_ref().ok_or("no session")?;
                session.send(req, command.clone()).await.map_err(|e| e.to_string())?;
                let reply = client.reply(req).await?;
                if await_registration && matches!(reply, Some(Ok(Reply::Joined { .. }))) {
                    client.registration().await?;
                }
                reply
            }
        };
        Ok(Observed { reply, sent, done: Instant::now() })
    }

    async fn step(&mut self, step: &Step) -> Result<(), String> {
        let step = &match step {
            Step::Send { slot, command } => match self.model.slots[*slot] {
                Some(sid) => Step::Send { slot: *slot, command: self.model.name_people(sid, command) },
                None => return Ok(()),
            },
            other => other.clone(),
        };
        let slot = match step {
            Step::Connect { slot, .. } | Step::Disconnect { slot } | Step::Quit { slot } | Step::Send { slot, .. } => {
                *slot
            }
        };
        let connecting = matches!(step, Step::Connect { .. });
        if self.model.slots[slot].is_some() == connecting {
            return Ok(());
        }
        self.steps += 1;
        let req = RequestId(u64::try_from(self.steps).expect("a count"));
        let await_registration = match step {
            Step::Send { command, .. } => self.model.store && self.model.registers_on_join(slot, command),
            _ => false,
        };
        let observed = self.drive(step, req, await_registration).await.map_err(|e| format!("{step:?}\n{e}"))?;
        if self.task.is_finished() {
            return Err(format!("{step:?}\nthe hub task ended (it panicked)"));
        }
        for client in self.clients.iter_mut().flatten() {
            client.drain().await;
        }
        let rooms_before: Vec<Option<Vec<String>>> =
            self.model.slots.iter().map(|sid| sid.map(|sid| self.model.session(sid).rooms.clone())).collect();
        let expected = self.model.step(step, &observed);
        let answer = observed.reply.as_ref().map_or(Answer::Nothing, answer_of);
        count_answer(&answer);
        if answer != expected {
            return Err(format!("{step:?}\nanswered\n  {answer:?}\nwhere the model says\n  {expected:?}"));
        }
        self.compare_events(&rooms_before).map_err(|e| format!("{step:?}\n{e}"))?;
        self.check_sessions().await.map_err(|e| format!("{step:?}\n{e}"))
    }

    /// What each session received during the step, against the model.
    fn compare_events(&mut self, rooms_before: &[Option<Vec<String>>]) -> Result<(), String> {
        let unordered = self.model.thrown_out.len() > 1;
        for (slot, rooms_before) in rooms_before.iter().enumerate() {
            let Some(client) = self.clients[slot].as_mut() else {
                continue;
            };
            let events = std::mem::take(&mut client.events);
            let mut got: Vec<Seen> = events.iter().filter_map(seen).collect();
            let mut want = self.model.out.remove(&slot).unwrap_or_default();
            for seen in &got {
                if let Seen::Message { room, seq, .. } | Seen::Said { room, seq } = seen {
                    let last = self.last_seq.entry((slot, room.clone())).or_default();
                    if *seq <= *last {
                        return Err(format!("slot {slot} received seq {seq} of {room} after seq {last}"));
                    }
                    *last = *seq;
                }
                if let Seen::Said { room, seq } = seen {
                    self.committed.entry(room.clone()).or_default().insert(*seq);
                }
            }
            if self.model.thrown_out.contains_key(&slot) {
                // Put off the server with others at once: it may or may not see the
                // others go before it is told.
                let others: Vec<&String> = self.model.thrown_out.values().collect();
                let theirs = |s: &Seen| matches!(s, Seen::Left { nick, .. } if others.contains(&nick));
                got.retain(|s| !theirs(s));
                want.retain(|s| !theirs(s));
            }
            if unordered {
                got.sort();
                want.sort();
            }
            if got != want {
                let rooms = rooms_before;
                return Err(format!(
                    "slot {slot} (in {rooms:?} before the step) received\n  {got:?}\nwhere the model says\n  {want:?}"
                ));
            }
        }
        if let Some((slot, _)) = self.model.out.iter().find(|(_, seen)| !seen.is_empty()) {
            return Err(format!("the model has events for slot {slot}, which has no connection"));
        }
        Ok(())
    }

    /// Every session as the hub has it (nick, account, rooms and where their visible
    /// history begins) against the model; sessions the model says are gone are gone.
    async fn check_sessions(&mut self) -> Result<(), String> {
        let mut nicks = BTreeSet::new();
        for slot in 0..self.clients.len() {
            let Some(client) = self.clients[slot].as_ref() else {
                continue;
            };
            let session = client.session.as_ref().ok_or("a client without a session")?;
            let found = session.whereabouts().await.map_err(|e| e.to_string())?;
            let Some(sid) = self.model.slots[slot] else {
                if found.is_some() {
                    return Err(format!("slot {slot} is still connected: {found:?}"));
                }
                // Gone: dropping the session now tells the hub nothing new.
                self.clients[slot] = None;
                continue;
            };
            let found = found.ok_or_else(|| format!("slot {slot} is gone where the model has it"))?;
            let s = self.model.session(sid);
            let want_rooms: Vec<(String, u64)> = s.rooms.iter().map(|r| (r.clone(), self.model.since(r))).collect();
            let got_rooms: Vec<(String, u64)> = found.rooms.iter().map(|(r, since)| (r.key(), *since)).collect();
            let got_account = found.account.map(|a| a.name.to_string());
            let want = (&s.nick, self.model.account_name(sid), &want_rooms);
            if (&found.nick.to_string(), got_account.clone(), &got_rooms) != want {
                return Err(format!(
                    "slot {slot} is ({}, {got_account:?}, {got_rooms:?}) where the model says {want:?}",
                    found.nick
                ));
            }
            if !nicks.insert(found.nick.key()) {
                return Err(format!("two sessions are called {}", found.nick));
            }
        }
        Ok(())
    }

    /// At the end: every room's committed seqs are 1, 2, 3 … with no gap.
    fn check_order(&self) -> Result<(), String> {
        for (room, seqs) in &self.committed {
            let n = u64::try_from(seqs.len()).expect("a count");
            if !seqs.iter().copied().eq(1..=n) {
                return Err(format!("{room}'s committed seqs have a gap: {seqs:?}"));
            }
        }
        Ok(())
    }
}

async fn run(case: &Case, with_store: bool) -> Result<(), String> {
    let mut run = Run::start(case, with_store).await?;
    let opening =
        (0..case.slots).map(|slot| Step::Connect { slot, nick: SLOT_NICKS[slot], password: None }).collect::<Vec<_>>();
    for (n, step) in opening.iter().chain(&case.steps).enumerate() {
        if let Err(e) = run.step(step).await {
            let n = n.checked_sub(case.slots).map_or_else(|| format!("opening {n}"), |n| format!("step {n}"));
            return Err(format!("{n}: {e}"));
        }
    }
    run.check_order()?;
    STEPS.set(STEPS.get() + run.steps);
    drop(run.clients);
    drop(run.hub);
    Ok(())
}

fn run_case(case: &Case, with_store: bool) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(run(case, with_store)).map_err(TestCaseError::fail)
}

thread_local! {
    /// Steps the hub took on this thread (skipped ones not counted), for the summary of
    /// a run: each test checks its cases on a thread of its own.
    static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// With `PARLEY_MODEL_STATS` set, how often each answer came (and a few states were
    /// reached) on this thread, to see what the cases reach.
    static ANSWERS: std::cell::RefCell<BTreeMap<String, usize>> = const { std::cell::RefCell::new(BTreeMap::new()) };
}

fn count_answer(answer: &Answer) {
    if std::env::var_os("PARLEY_MODEL_STATS").is_none() {
        return;
    }
    let shown = format!("{answer:?}");
    let word = |s: &str| s.chars().take_while(char::is_ascii_alphanumeric).collect::<String>();
    let name = match answer {
        Answer::Error(e) => format!("Error({})", word(e)),
        _ => word(&shown),
    };
    note(&name);
}

/// Counts something a case reached, with `PARLEY_MODEL_STATS` set.
fn note(what: &str) {
    if std::env::var_os("PARLEY_MODEL_STATS").is_some() {
        ANSWERS.with_borrow_mut(|answers| *answers.entry(what.to_owned()).or_default() += 1);
    }
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the cases, shrinks a failing one to a minimal sequence, and says how much ran.
fn check(with_store: bool) {
    let cases = env("PARLEY_MODEL_CASES", 512);
    let max_steps = usize::try_from(env("PARLEY_MODEL_STEPS", 100)).expect("a count");
    let config = ProptestConfig {
        cases,
        source_file: Some(file!()),
        test_name: Some(if with_store { "with_a_store" } else { "without_a_store" }),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // A failure is reported shrunk as far as two minutes take it.
        max_shrink_time: 120_000,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    STEPS.set(0);
    let result = runner.run(&case(max_steps), |case| run_case(&case, with_store));
    let steps = STEPS.get();
    let store = if with_store { "with a store" } else { "without a store" };
    eprintln!("model {store}: {cases} cases, {steps} steps in {:.1?}", started.elapsed());
    if std::env::var_os("PARLEY_MODEL_STATS").is_some() {
        let answers = ANSWERS.take();
        let mut answers: Vec<(String, usize)> = answers.into_iter().collect();
        answers.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        eprintln!("model {store}, answers: {answers:?}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Runs `check` on a thread with a larger stack: generating and shrinking these nested
/// strategies in a debug build takes more than a test thread's default 2 MiB.
fn check_on_a_big_stack(with_store: bool) {
    let checker = std::thread::Builder::new().stack_size(64 << 20).spawn(move || check(with_store));
    if let Err(panic) = checker.expect("a thread").join() {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn the_hub_with_a_store_agrees_with_its_model() {
    check_on_a_big_stack(true);
}

#[test]
fn the_hub_without_a_store_agrees_with_its_model() {
    check_on_a_big_stack(false);
}
