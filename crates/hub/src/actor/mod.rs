//! The hub actor: one task that owns every session, nick and room, fed by a bounded
//! channel of operations from the gateways.
//!
//! Golden rule of this loop: it awaits nothing but its own inbox. Deliveries go into
//! outboxes without waiting; a session that cannot keep up is disconnected, never waited
//! for, or one slow reader would stall every room.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::command::{Command, RequestId};
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply, RoomSummary};
use crate::history::{Cursor, Kind, Page, Record, RoomLog, Search, Store, StoreError, Verdict};
use crate::journal::{Committed, Journal};
use crate::moderation::{Action, Change, Restriction};
use crate::modes::Member;
use crate::name::{Nick, RoomName};
use crate::outbox::{Outbox, RunItem, Shared};
use crate::room::Room;
use crate::search::{self, Query};
use crate::LOBBY;

mod accounts;
mod channels;
mod moderation;

pub use accounts::{MAX_PASSWORD, MIN_PASSWORD};

/// Why a session was disconnected when its outbox overflowed.
const SEND_QUEUE_EXCEEDED: &str = "send queue exceeded";

/// Messages accepted but not yet reported stored. At this many the hub stops taking
/// operations until the store catches up, which pushes back on the senders.
const MAX_UNSTORED: usize = 16_384;

/// The most operations the hub takes from its inbox in one round before it delivers
/// what they produced (see `flush_unstored`) and looks at its other inputs again.
const ROUND: usize = 256;

/// The longest topic, away message, or quit, kick or ban reason kept, in bytes (cut on
/// a character boundary): short enough for one IRC line, whichever gateway set it.
pub const MAX_REASON: usize = 390;

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The most messages one history page holds.
pub const MAX_HISTORY_PAGE: usize = 500;

/// The hub's limits. Every field is a server configuration value.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest nick, in characters.
    pub max_nick_len: usize,
    /// The longest room name, in characters.
    pub max_room_len: usize,
    /// The longest message text, in bytes.
    pub max_message_bytes: usize,
    /// The most rooms one session may be in at once.
    pub max_rooms_per_session: usize,
    /// How many operations may wait in the hub's inbox. When it is full, gateways'
    /// readers wait, which pushes back on the clients that send the most.
    pub inbox: usize,
    /// How many of a room's latest messages a session gets on joining it.
    pub history_on_join: usize,
    /// How long someone using a registered nick has to log in before being renamed.
    pub login_grace: std::time::Duration,
    /// Rooms with more members than this do not announce who joins and leaves (an
    /// auditorium): telling every member of a room of N about each arrival costs N²
    /// deliveries while it fills. Kicks are still announced.
    pub announce_up_to: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_nick_len: 32,
            max_room_len: 32,
            max_message_bytes: 4096,
            max_rooms_per_session: 20,
            inbox: 4096,
            history_on_join: 50,
            login_grace: std::time::Duration::from_secs(30),
            announce_up_to: 500,
        }
    }
}

/// A session's identity inside the hub. Never reused within one server run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

/// How a connecting session proves who it is.
enum Login {
    /// It does not: a guest (or a nick someone may have to log in to within the grace).
    Guest,
    /// With the password of the account it names.
    Password(String),
    /// Already proven, with [`HubHandle::verify`] (IRC's SASL, before registering).
    Verified(Verified),
}

/// Proof that a client knows an account's password, from [`HubHandle::verify`]. Only the
/// hub makes these, so a gateway cannot log anyone in without the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    account: Nick,
    admin: bool,
}

impl Verified {
    /// The account's name as registered.
    #[must_use]
    pub fn account(&self) -> &Nick {
        &self.account
    }
}

/// Who a session is and where it is, for gateway decisions the hub does not make
/// itself (may this session download a file shared in a room?).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whereabouts {
    /// Its nick.
    pub nick: Nick,
    /// The account it is logged in to.
    pub account: Option<Nick>,
    /// The rooms it is in.
    pub rooms: Vec<RoomName>,
}

enum Op {
    Connect {
        nick: String,
        login: Login,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    },
    Command {
        session: SessionId,
        req: RequestId,
        command: Command,
    },
    Disconnect {
        session: SessionId,
        detail: Option<String>,
    },
    Relay {
        session: SessionId,
        bytes: Bytes,
    },
    Verify {
        name: String,
        password: String,
        done: oneshot::Sender<Result<Verified, HubError>>,
    },
    Shutdown {
        message: String,
    },
    Whereabouts {
        session: SessionId,
        done: oneshot::Sender<Option<Whereabouts>>,
    },
}

/// A cloneable way into the hub, held by every gateway.
#[derive(Clone)]
pub struct HubHandle {
    tx: mpsc::Sender<Op>,
}

/// Starts the hub task, with history kept in `store` if there is one (without, rooms
/// remember their latest messages only while the server runs). Reads what the store
/// holds first, so sequence numbers continue where they stopped. The task ends when
/// every [`HubHandle`] and [`Session`] is dropped and every accepted message is stored.
pub async fn spawn(limits: Limits, store: Option<Arc<dyn Store>>) -> Result<(HubHandle, JoinHandle<()>), StoreError> {
    let (tx, mut rx) = mpsc::channel(limits.inbox.max(1));
    let mut hub = Hub::new(limits);
    // Without a store nothing is ever reported committed; the branch below stays off.
    let (_no_journal, mut commits) = mpsc::unbounded_channel::<Committed>();
    let (completions, mut completed) = mpsc::unbounded_channel();
    hub.completions = completions;
    if let Some(store) = store {
        let keep = hub.limits.history_on_join;
        let reader = store.clone();
        let (kept, moderation) = tokio::task::spawn_blocking(move || {
            let kept = (reader.rooms(keep)?, reader.accounts()?, reader.last_private_seq()?);
            Ok::<_, StoreError>((kept, reader.moderation()?))
        })
        .await
        .map_err(|e| StoreError(format!("reading history failed: {e}")))??;
        let (rooms, accounts, private) = kept;
        hub.restore_moderation(moderation);
        for history in rooms {
            hub.logs.insert(history.room.clone(), RoomLog::restored(history, keep));
        }
        hub.registered.extend(accounts);
        (hub.private_assigned, hub.private_committed) = (private, private);
        let (journal, done) =
            Journal::start(store.clone()).map_err(|e| StoreError(format!("starting the history writer: {e}")))?;
        hub.journal = Some(journal);
        hub.store = Some(store);
        commits = done;
    }
    let task = tokio::spawn(async move {
        let mut inbox_open = true;
        loop {
            tokio::select! {
                biased;
                done = commits.recv(), if !hub.unstored.is_empty() => match done {
                    Some(done) => hub.committed(done),
                    None => hub.journal_lost(),
                },
                // The hub holds a sender itself, so this never ends: it is waited on only
                // while work is out (and grace timers only while sessions can come).
                Some(done) = completed.recv(), if hub.checks > 0 || hub.writes > 0 || (inbox_open && hub.timers > 0) => {
                    hub.complete(done);
                }
                op = rx.recv(), if inbox_open && hub.unstored.len() < MAX_UNSTORED => match op {
                    Some(op) => {
                        hub.apply(op);
                        // A round: whatever else is waiting, so that messages accepted
                        // together go out together.
                        for _ in 1..ROUND {
                            if hub.unstored.len() >= MAX_UNSTORED {
                                hub.flush_unstored();
                                if hub.unstored.len() >= MAX_UNSTORED {
                                    break;
                                }
                            }
                            match rx.try_recv() {
                                Ok(op) => hub.apply(op),
                                Err(_) => break,
                            }
                        }
                        hub.flush_unstored();
                    }
                    None => inbox_open = false,
                },
                else => break,
            }
        }
    });
    Ok((HubHandle { tx }, task))
}

impl HubHandle {
    /// Registers a session under `nick` and puts it in the lobby. On success the outbox
    /// has received the [`Reply::Welcome`] answering `req`; on failure nothing was
    /// delivered and the gateway may try another nick.
    /// `address` is the client's, for address bans.
    pub async fn connect(
        &self,
        nick: &str,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.register(nick, Login::Guest, address, req, outbox).await
    }

    /// Like [`HubHandle::connect`], logged in to the account `nick` with `password` from
    /// the start: the nick is taken from whoever has it, with no grace period.
    pub async fn connect_as(
        &self,
        nick: &str,
        password: String,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.register(nick, Login::Password(password), address, req, outbox).await
    }

    /// Like [`HubHandle::connect_as`], with the password already checked by
    /// [`HubHandle::verify`].
    pub async fn connect_verified(
        &self,
        verified: Verified,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        let nick = verified.account.to_string();
        self.register(&nick, Login::Verified(verified), address, req, outbox).await
    }

    /// Checks an account's password without a session (IRC's SASL happens before
    /// registering). Fails with [`HubError::BadLogin`], or [`HubError::Busy`] when too
    /// many checks are running.
    pub async fn verify(&self, name: &str, password: String) -> Result<Verified, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::Verify { name: name.to_owned(), password, done };
        self.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    async fn register(
        &self,
        nick: &str,
        login: Login,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::Connect { nick: nick.to_owned(), login, address, req, outbox, done };
        self.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        let id = result.await.map_err(|_| HubError::ShuttingDown)??;
        Ok(Session { id, hub: self.clone(), gone: AtomicBool::new(false) })
    }

    /// Tells every session the server is shutting down and closes their outboxes; new
    /// sessions are refused from now on.
    pub async fn shutdown(&self, message: &str) {
        // A closed inbox means the hub is already gone, which is what was asked.
        let _ = self.tx.send(Op::Shutdown { message: message.to_owned() }).await;
    }
}

/// A registered session, held by its connection task. Dropping it disconnects the
/// session (prefer [`Session::disconnect`], which can wait for room in the inbox).
pub struct Session {
    id: SessionId,
    hub: HubHandle,
    /// Set once the hub has been told the session ended, so it is told once.
    gone: AtomicBool,
}

impl Session {
    /// The session's id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Sends a command; its answer arrives in the outbox as an [`Event::Reply`] naming
    /// `req`. Fails only when the hub has stopped.
    pub async fn send(&self, req: RequestId, command: Command) -> Result<(), HubError> {
        let op = Op::Command { session: self.id, req, command };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }

    /// Queues bytes the gateway encoded itself (help text, an answer to a malformed
    /// request) behind the answers to every command this session sent before, so the
    /// client reads its answers in the order it asked.
    pub async fn relay(&self, bytes: Bytes) -> Result<(), HubError> {
        let op = Op::Relay { session: self.id, bytes };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }

    /// Ends the session because its connection ended; `detail` says why, if the others
    /// should know. Only the first call (or a quit) counts.
    pub async fn disconnect(&self, detail: Option<String>) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            let _ = self.hub.tx.send(Op::Disconnect { session: self.id, detail }).await;
        }
    }

    /// The session's nick, account and rooms as the hub sees them now; `None` once the
    /// session has ended.
    pub async fn whereabouts(&self) -> Result<Option<Whereabouts>, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::Whereabouts { session: self.id, done };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)
    }

    /// Sends [`Command::Quit`]: the hub answers [`Reply::Bye`] and closes the outbox.
    pub async fn quit(&self, req: RequestId, reason: Option<String>) -> Result<(), HubError> {
        if self.gone.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let op = Op::Command { session: self.id, req, command: Command::Quit { reason } };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !*self.gone.get_mut() {
            // Best effort when a connection task is torn down without `disconnect`; a
            // full inbox here only happens while the server is stopping anyway.
            let _ = self.hub.tx.try_send(Op::Disconnect { session: self.id, detail: None });
        }
    }
}

struct SessionState {
    nick: Nick,
    outbox: Arc<Outbox>,
    /// The rooms it is in, the most recently joined last.
    rooms: Vec<RoomName>,
    /// The account it logged in to (or registered).
    account: Option<Nick>,
    /// The client's address, for address bans.
    address: Option<IpAddr>,
    /// Its away message, while away.
    away: Option<Arc<str>>,
    /// What its client says about its user (IRC's real name).
    realname: Option<Arc<str>>,
    /// When it connected.
    since: crate::event::Timestamp,
    /// When it last said something, for idle times.
    active: std::time::Instant,
    /// Made a server administrator by its gateway (IRC's `OPER`).
    oper: bool,
}

/// Work done off the hub task, reported back to it.
enum Completion {
    Registered {
        session: SessionId,
        req: RequestId,
        nick: Nick,
        result: Result<bool, StoreError>,
    },
    /// The verdict, and whether the account is a server admin.
    Verified {
        session: SessionId,
        req: RequestId,
        name: Nick,
        result: Result<(Verdict, bool), StoreError>,
    },
    PasswordSet {
        session: SessionId,
        req: RequestId,
        result: Result<bool, StoreError>,
    },
    GraceOver {
        session: SessionId,
        nick: Nick,
    },
    Moderated {
        session: SessionId,
        req: RequestId,
        change: Change,
        result: Result<(), StoreError>,
    },
    /// A password checked for a gateway without a session.
    Checked {
        done: oneshot::Sender<Result<Verified, HubError>>,
        result: Result<(Verdict, bool), StoreError>,
    },
    /// A `hello` with a password, checked.
    Admitted {
        nick: String,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
        result: Result<(Verdict, bool), StoreError>,
    },
}

/// A message accepted and waiting for its batch to be stored.
struct Unstored {
    sender: SessionId,
    req: RequestId,
    /// The receiver of a private message.
    receiver: Option<SessionId>,
    record: Arc<Record>,
}

struct Hub {
    limits: Limits,
    lobby: RoomName,
    sessions: HashMap<SessionId, SessionState>,
    nicks: HashMap<Nick, SessionId>,
    rooms: HashMap<RoomName, Room>,
    /// Every room that ever had a message, empty or not.
    logs: HashMap<RoomName, RoomLog>,
    store: Option<Arc<dyn Store>>,
    journal: Option<Journal>,
    /// Accepted messages in the order they went to the journal.
    unstored: VecDeque<Unstored>,
    /// Set when the journal stopped: messages are refused from then on.
    store_broken: bool,
    /// How many unstored messages each session has.
    unstored_by: HashMap<SessionId, usize>,
    /// Operations waiting for their session's messages to be stored (see `apply`).
    parked: HashMap<SessionId, VecDeque<Op>>,
    /// The seq of the last private message accepted, and of the last one stored.
    private_assigned: u64,
    private_committed: u64,
    /// Every registered account's name: nicks only their owner may keep.
    registered: HashSet<Nick>,
    /// Where work done off the hub task reports.
    completions: mpsc::UnboundedSender<Completion>,
    /// Password checks running on the blocking pool.
    checks: usize,
    /// Login grace timers running.
    timers: usize,
    /// Moderation changes being made durable.
    writes: usize,
    /// Server administrators' accounts.
    admins: HashSet<Nick>,
    /// Each room's operators' accounts (rooms keep them while empty).
    ops: HashMap<RoomName, HashSet<Nick>>,
    /// Bans and mutes in force.
    restrictions: Vec<Restriction>,
    /// Rooms' topics.
    topics: HashMap<RoomName, moderation::Topic>,
    /// The most sessions connected at once.
    max_users: usize,
    next_id: u64,
    shutting_down: bool,
    /// Sessions whose outbox overflowed during the current operation.
    overflowed: Vec<SessionId>,
}

impl Hub {
    fn new(limits: Limits) -> Self {
        let lobby = RoomName::parse(LOBBY, usize::MAX).unwrap_or_else(|_| unreachable!("the lobby's name is valid"));
        Self {
            limits,
            lobby,
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            rooms: HashMap::new(),
            logs: HashMap::new(),
            store: None,
            journal: None,
            unstored: VecDeque::new(),
            store_broken: false,
            unstored_by: HashMap::new(),
            parked: HashMap::new(),
            registered: HashSet::new(),
            private_assigned: 0,
            private_committed: 0,
            completions: mpsc::unbounded_channel().0,
            checks: 0,
            timers: 0,
            writes: 0,
            admins: HashSet::new(),
            ops: HashMap::new(),
            restrictions: Vec::new(),
            topics: HashMap::new(),
            max_users: 0,
            next_id: 1,
            shutting_down: false,
            overflowed: Vec::new(),
        }
    }

    /// Runs an operation, unless its session must first see its own messages delivered.
    ///
    /// A message is delivered only once stored, but a session's other operations (a
    /// part, a nick change, a quit, an answer relayed by its gateway) take effect at
    /// once; run straight away they would overtake the session's own messages still
    /// being stored, and others would see "alice has left" before alice's last words.
    /// So they wait, in order, until the session has nothing left unstored. Messages
    /// need not wait: the journal keeps their order.
    fn apply(&mut self, op: Op) {
        let (session, is_message) = match &op {
            Op::Command { session, command, .. } => {
                (*session, matches!(command, Command::Say { .. } | Command::Whisper { .. }))
            }
            Op::Disconnect { session, .. } | Op::Relay { session, .. } => (*session, false),
            Op::Connect { .. } | Op::Verify { .. } | Op::Shutdown { .. } | Op::Whereabouts { .. } => {
                return self.run(op)
            }
        };
        let queued = self.parked.get(&session).is_some_and(|q| !q.is_empty());
        if queued || (!is_message && self.unstored_by.contains_key(&session)) {
            self.parked.entry(session).or_default().push_back(op);
            return;
        }
        self.run(op);
    }

    /// Runs what a session's operations were waiting for, now that its messages are
    /// stored, until one of them is a message being stored again.
    fn resume(&mut self, session: SessionId) {
        while let Some(queue) = self.parked.get_mut(&session) {
            let blocked = self.unstored_by.contains_key(&session)
                && !matches!(
                    queue.front(),
                    Some(Op::Command { command: Command::Say { .. } | Command::Whisper { .. }, .. })
                );
            if blocked {
                return;
            }
            let Some(op) = queue.pop_front() else {
                self.parked.remove(&session);
                return;
            };
            self.run(op);
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Connect { nick, login: Login::Password(password), address, req, outbox, done } => {
                self.admit(nick, password, address, req, outbox, done);
            }
            Op::Connect { login: Login::Verified(verified), address, req, outbox, done, .. } => {
                let result = self.log_in_connecting(verified.account, verified.admin, address, req, outbox);
                self.answer_connect(result, done);
            }
            Op::Connect { nick, login: Login::Guest, address, req, outbox, done } => {
                let result = self.connect(&nick, None, address, req, outbox);
                self.answer_connect(result, done);
            }
            Op::Verify { name, password, done } => self.verify_only(name, password, done),
            Op::Command { session, req, command } => self.command(session, req, command),
            Op::Disconnect { session, detail } => {
                if let Some(state) = self.remove_session(session, LeaveReason::Lost, detail.map(Arc::from)) {
                    state.outbox.close();
                }
            }
            Op::Relay { session, bytes } => {
                if let Some(state) = self.sessions.get(&session) {
                    if state.outbox.push(&bytes).is_err() {
                        self.overflowed.push(session);
                    }
                }
            }
            Op::Shutdown { message } => self.shutdown(&message),
            Op::Whereabouts { session, done } => {
                let found = self.sessions.get(&session).map(|state| Whereabouts {
                    nick: state.nick.clone(),
                    account: state.account.clone(),
                    rooms: state.rooms.clone(),
                });
                let _ = done.send(found);
            }
        }
        self.drop_slow_consumers();
    }

    /// Tells the gateway how registering went; if it gave up waiting, undoes it, as if it
    /// had disconnected.
    fn answer_connect(
        &mut self,
        result: Result<SessionId, HubError>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    ) {
        if let Err(Ok(id)) = done.send(result) {
            self.remove_session(id, LeaveReason::Lost, None);
        }
    }

    /// Registers a session; `account` when it has already proved it owns the nick.
    fn connect(
        &mut self,
        nick: &str,
        account: Option<Nick>,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<SessionId, HubError> {
        if self.shutting_down {
            return Err(HubError::ShuttingDown);
        }
        let nick = Nick::parse(nick, self.limits.max_nick_len)?;
        if self.nicks.contains_key(&nick) {
            return Err(HubError::NickTaken(nick.to_string()));
        }
        // A ban in the lobby keeps its subjects off the server.
        if let Some(ban) = self.restricted_as(&self.lobby, true, &nick, None, address) {
            return Err(HubError::Banned { room: self.lobby.to_string(), reason: ban.reason.clone() });
        }
        let id = SessionId(self.next_id);
        self.next_id += 1;
        self.nicks.insert(nick.clone(), id);
        self.sessions.insert(
            id,
            SessionState {
                nick: nick.clone(),
                outbox: outbox.clone(),
                rooms: Vec::new(),
                account: account.clone(),
                address,
                away: None,
                realname: None,
                since: Utc::now(),
                active: std::time::Instant::now(),
                oper: false,
            },
        );
        self.max_users = self.max_users.max(self.sessions.len());
        let lobby = self.lobby.clone();
        self.enter(id, &lobby, true);
        let members = self.members_on_entry(&lobby, id);
        let history = self.recent(&lobby);
        let nick_of_new = nick.clone();
        let topic = self.topic_of(&lobby);
        let max_text = self.limits.max_message_bytes;
        let stats = match self.stats() {
            Reply::Stats(stats) => stats,
            _ => unreachable!("stats answers with stats"),
        };
        let welcome = Reply::Welcome { nick, room: lobby, members, max_text, history, topic, stats };
        if outbox.deliver(&Event::Reply { req, result: Ok(welcome) }).is_err() {
            self.overflowed.push(id);
        }
        if self.registered.contains(&nick_of_new) && account.as_ref() != Some(&nick_of_new) {
            self.warn_squatter(id, &nick_of_new);
        }
        tracing::debug!(session = id.0, "session registered");
        Ok(id)
    }

    fn command(&mut self, id: SessionId, req: RequestId, command: Command) {
        if !self.sessions.contains_key(&id) {
            // Disconnected in the meantime (slow consumer, shutdown): nothing to answer.
            return;
        }
        if let Command::Quit { reason } = command {
            let reason = reason.map(|r| Arc::from(shorten(&r, MAX_REASON)));
            if let Some(state) = self.remove_session(id, LeaveReason::Quit, reason) {
                let _ = state.outbox.deliver(&Event::Reply { req, result: Ok(Reply::Bye) });
                state.outbox.close();
            }
            return;
        }
        let result = match command {
            Command::Join { room, exclusive, key } => self.join(id, &room, exclusive, key.as_deref()),
            Command::Part { room } => self.part(id, room.as_deref()),
            Command::Say { room, kind, text } => match self.say(id, req, room.as_deref(), kind, text) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Whisper { to, kind, text } => match self.whisper(id, req, &to, kind, text) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Conversation { with, cursor, limit } => match self.conversation(id, req, &with, cursor, limit) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Topic { room, text: None } => self.topic(id, room.as_deref()),
            Command::Topic { room, text: Some(text) } => {
                match self.moderate(id, req, room.as_deref(), Action::Topic(text)) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            Command::Audit { limit } => match self.audit(id, req, limit) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Moderate { room, action } => match self.moderate(id, req, room.as_deref(), action) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Search { query } => match self.search(id, req, &query) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Register { password } => match self.register(id, req, password) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Login { name, password } => match self.login(id, req, name, password) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::Password { old, new } => match self.change_password(id, req, old, new) {
                Ok(()) => return,
                Err(e) => Err(e),
            },
            Command::History { room, cursor, limit } => match self.history(id, req, room.as_deref(), cursor, limit) {
                Some(answer) => answer,
                None => return,
            },
            Command::Nick { nick } => self.rename(id, &nick),
            Command::Mode { room, changes } => self.set_modes(id, &room, changes),
            Command::Modes { room } => self.modes(&room),
            Command::Bans { room } => self.bans(&room),
            Command::Invite { nick, room } => self.invite(id, &nick, room.as_deref()),
            Command::Away { text } => Ok(self.away(id, text)),
            Command::Whois { nick } => self.whois(id, &nick),
            Command::Stats => Ok(self.stats()),
            Command::Oper => Ok(self.oper(id)),
            Command::Describe { realname } => {
                self.state_mut(id).realname = Some(realname.into());
                Ok(Reply::Described)
            }
            Command::Who { room } => self.who(id, room.as_deref()),
            Command::Rooms => Ok(self.rooms(id)),
            Command::Ping => Ok(Reply::Pong),
            Command::Quit { .. } => unreachable!("handled above"),
        };
        self.reply(id, req, result);
    }

    fn reply(&mut self, id: SessionId, req: RequestId, result: Result<Reply, HubError>) {
        if let Some(state) = self.sessions.get(&id) {
            if state.outbox.deliver(&Event::Reply { req, result }).is_err() {
                self.overflowed.push(id);
            }
        }
    }

    fn state(&self, id: SessionId) -> &SessionState {
        // Every caller checked that the session exists in this same operation.
        self.sessions.get(&id).unwrap_or_else(|| unreachable!("session {id:?} vanished mid-operation"))
    }

    fn state_mut(&mut self, id: SessionId) -> &mut SessionState {
        self.sessions.get_mut(&id).unwrap_or_else(|| unreachable!("session {id:?} vanished mid-operation"))
    }

    /// The room a command names, or the session's latest room when it names none.
    fn target_room(&self, id: SessionId, room: Option<&str>) -> Result<RoomName, HubError> {
        let state = self.state(id);
        match room {
            None => state.rooms.last().cloned().ok_or(HubError::NoRoom),
            Some(name) => {
                let name = RoomName::parse(name, self.limits.max_room_len)?;
                match state.rooms.iter().find(|r| **r == name) {
                    Some(joined) => Ok(joined.clone()),
                    None => Err(HubError::NotInRoom(name.to_string())),
                }
            }
        }
    }

    /// Puts the session in the room (creating it), telling the members already there.
    fn enter(&mut self, id: SessionId, name: &RoomName, arrival: bool) -> RoomName {
        let state = self.sessions.get(&id).unwrap_or_else(|| unreachable!("entering session exists"));
        let (nick, outbox) = (state.nick.clone(), state.outbox.clone());
        let room = self.rooms.entry(name.clone()).or_insert_with(|| Room::new(name.clone()));
        let room_name = room.name.clone();
        if !room.contains(id) {
            room.add(id, outbox);
            if room.len() <= self.limits.announce_up_to {
                let joined = Shared::new(Event::Joined { room: room_name.clone(), nick, at: Utc::now(), arrival });
                room.broadcast(&joined, Some(id), &mut self.overflowed);
            }
        }
        let rooms = &mut self.state_mut(id).rooms;
        rooms.retain(|r| r != name);
        rooms.push(room_name.clone());
        room_name
    }

    /// Takes the session out of one room, telling those who stay.
    fn leave(&mut self, id: SessionId, nick: &Nick, name: &RoomName, reason: LeaveReason, detail: Option<&Arc<str>>) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.remove(id);
        if room.is_empty() {
            self.rooms.remove(name);
            return;
        }
        if room.len() >= self.limits.announce_up_to {
            return;
        }
        let left = Shared::new(Event::Left {
            room: room.name.clone(),
            nick: nick.clone(),
            at: Utc::now(),
            reason,
            by: None,
            detail: detail.cloned(),
        });
        room.broadcast(&left, None, &mut self.overflowed);
    }

    fn join(&mut self, id: SessionId, room: &str, exclusive: bool, key: Option<&str>) -> Result<Reply, HubError> {
        let name = RoomName::parse(room, self.limits.max_room_len)?;
        let rooms = &self.state(id).rooms;
        let max = self.limits.max_rooms_per_session;
        if !exclusive && rooms.len() >= max && !rooms.contains(&name) {
            return Err(HubError::TooManyRooms { max });
        }
        if let Some(ban) = self.restricted(id, &name, true) {
            return Err(HubError::Banned { room: name.to_string(), reason: ban.reason.clone() });
        }
        self.may_enter(id, &name, key)?;
        let created = !self.rooms.contains_key(&name);
        let room = self.enter(id, &name, false);
        self.entered(id, &name);
        if created {
            self.crown_creator(id, &name);
        }
        if exclusive {
            let state = self.state_mut(id);
            let others: Vec<RoomName> = state.rooms.iter().filter(|r| **r != name).cloned().collect();
            state.rooms.retain(|r| *r == name);
            let nick = state.nick.clone();
            for other in others {
                self.leave(id, &nick, &other, LeaveReason::Part, None);
            }
        }
        let members = self.members_on_entry(&name, id);
        let history = self.recent(&name);
        let topic = self.topic_of(&name);
        Ok(Reply::Joined { room, members, history, topic })
    }

    fn part(&mut self, id: SessionId, room: Option<&str>) -> Result<Reply, HubError> {
        let name = self.target_room(id, room)?;
        let state = self.state_mut(id);
        state.rooms.retain(|r| *r != name);
        let nick = state.nick.clone();
        self.leave(id, &nick, &name, LeaveReason::Part, None);
        Ok(Reply::Parted { room: name })
    }

    fn check_text(&self, text: &str) -> Result<(), HubError> {
        if text.trim().is_empty() {
            return Err(HubError::EmptyMessage);
        }
        if text.len() > self.limits.max_message_bytes {
            return Err(HubError::MessageTooLong { max: self.limits.max_message_bytes });
        }
        Ok(())
    }

    fn say(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        kind: Kind,
        text: String,
    ) -> Result<(), HubError> {
        self.check_text(&text)?;
        let name = self.target_room(id, room)?;
        if self.restricted(id, &name, false).is_some() {
            return Err(HubError::Muted(name.to_string()));
        }
        if !self.may_speak(id, &name) {
            return Err(HubError::Moderated(name.to_string()));
        }
        let state = self.state_mut(id);
        state.active = std::time::Instant::now();
        let from = state.nick.clone();
        let seq = self.logs.entry(name.clone()).or_default().next_seq();
        let record = Record { room: Some(name), seq, from, to: None, at: Utc::now(), kind, text: text.into() };
        self.accept(Unstored { sender: id, req, receiver: None, record: Arc::new(record) });
        Ok(())
    }

    fn whisper(&mut self, id: SessionId, req: RequestId, to: &str, kind: Kind, text: String) -> Result<(), HubError> {
        self.check_text(&text)?;
        let target = Nick::parse(to, self.limits.max_nick_len)
            .ok()
            .and_then(|nick| self.nicks.get(&nick).copied())
            .ok_or_else(|| HubError::NoSuchNick(to.to_owned()))?;
        let state = self.state_mut(id);
        state.active = std::time::Instant::now();
        let from = state.nick.clone();
        let to = self.state(target).nick.clone();
        self.private_assigned += 1;
        let seq = self.private_assigned;
        let record = Record { room: None, seq, from, to: Some(to), at: Utc::now(), kind, text: text.into() };
        self.accept(Unstored { sender: id, req, receiver: Some(target), record: Arc::new(record) });
        Ok(())
    }

    /// Hands an accepted message to the journal, or delivers it at once without a store.
    /// Nobody sees it, and its sender is not answered, before it is stored.
    fn accept(&mut self, message: Unstored) {
        if self.store_broken {
            self.reply(message.sender, message.req, Err(HubError::Store("history is unavailable".into())));
            return;
        }
        match &self.journal {
            Some(journal) if journal.write(message.record.clone()) => {
                *self.unstored_by.entry(message.sender).or_default() += 1;
                self.unstored.push_back(message);
            }
            Some(_) => {
                self.journal_lost();
                self.reply(message.sender, message.req, Err(HubError::Store("history is unavailable".into())));
            }
            None => {
                *self.unstored_by.entry(message.sender).or_default() += 1;
                self.unstored.push_back(message);
            }
        }
    }

    /// The journal reports a batch: deliver and acknowledge its messages, or tell their
    /// senders they were not kept.
    ///
    /// Consecutive messages to one room go out as a run: each member's outbox takes the
    /// whole run under one lock, with one wake-up of its writer (`Outbox::deliver_run`).
    fn committed(&mut self, done: Committed) {
        let mut settled = Vec::new();
        let mut run = Vec::new();
        let mut run_room: Option<RoomName> = None;
        for _ in 0..done.count {
            let Some(message) = self.unstored.pop_front() else {
                break;
            };
            settled.push(message.sender);
            let live_room = match (&done.result, &message.record.room) {
                (Ok(()), Some(name)) if self.rooms.contains_key(name) => Some(name.clone()),
                _ => None,
            };
            if live_room.is_none() || live_room != run_room {
                self.flush_run(&mut run, run_room.take());
            }
            match live_room {
                Some(name) => {
                    run.push(self.run_item(message));
                    run_room = Some(name);
                }
                None => self.deliver(message, done.result.clone()),
            }
        }
        self.flush_run(&mut run, run_room);
        self.settle(settled);
        self.drop_slow_consumers();
    }

    /// A stored room message made ready for its room's run: kept in the room's log, its
    /// event for the members, and the answer its sender gets.
    fn run_item(&mut self, message: Unstored) -> RunItem {
        let Unstored { sender, req, record, .. } = message;
        let keep = self.limits.history_on_join;
        let name = record.room.clone().unwrap_or_else(|| self.lobby.clone());
        self.logs.entry(name.clone()).or_default().commit(record.clone(), keep);
        // The sender's account as it is now; a sender gone before the commit shows none.
        let account = self.sessions.get(&sender).and_then(|s| s.account.clone());
        let room = self.rooms.get(&name).map_or_else(|| name.clone(), |room| room.name.clone());
        let shared = Shared::new(Event::Message {
            room,
            from: record.from.clone(),
            seq: record.seq,
            at: record.at,
            kind: record.kind,
            account,
            text: record.text.clone(),
        });
        let (seq, at, kind, text) = (record.seq, record.at, record.kind, record.text.clone());
        let reply = Event::Reply { req, result: Ok(Reply::Said { room: name, seq, at, kind, text }) };
        RunItem { shared, sender, reply }
    }

    /// Delivers a run of messages to their room, and answers the senders no longer in it.
    fn flush_run(&mut self, run: &mut Vec<RunItem>, room: Option<RoomName>) {
        if run.is_empty() {
            return;
        }
        let items = std::mem::take(run);
        let mut answered = vec![false; items.len()];
        if let Some(room) = room.as_ref().and_then(|name| self.rooms.get(name)) {
            room.broadcast_run(&items, &mut answered, &mut self.overflowed);
        }
        for (item, answered) in items.iter().zip(answered) {
            if !answered {
                if let Some(state) = self.sessions.get(&item.sender) {
                    if state.outbox.deliver(&item.reply).is_err() {
                        self.overflowed.push(item.sender);
                    }
                }
            }
        }
    }

    /// Without a store, accepted messages count as stored at the end of each round of
    /// operations: they go out in runs like a committed batch, and a session's other
    /// operations still wait behind its messages.
    fn flush_unstored(&mut self) {
        // Delivering resumes operations parked behind these messages, and they may be
        // messages too: go on until none is left (the parked queues are finite).
        while self.journal.is_none() && !self.store_broken && !self.unstored.is_empty() {
            let count = self.unstored.len();
            self.committed(Committed { count, result: Ok(()) });
        }
    }

    /// Counts the messages of `senders` as no longer unstored, and resumes the sessions
    /// left with none.
    fn settle(&mut self, senders: Vec<SessionId>) {
        for sender in senders {
            if let Some(count) = self.unstored_by.get_mut(&sender) {
                *count -= 1;
                if *count == 0 {
                    self.unstored_by.remove(&sender);
                    self.resume(sender);
                }
            }
        }
    }

    /// The journal stopped: every waiting message fails, and so does every later one.
    fn journal_lost(&mut self) {
        tracing::error!("the history writer stopped; messages are refused from now on");
        self.store_broken = true;
        self.journal = None;
        let mut settled = Vec::new();
        while let Some(message) = self.unstored.pop_front() {
            settled.push(message.sender);
            self.deliver(message, Err(StoreError("the history writer stopped".into())));
        }
        self.settle(settled);
        self.drop_slow_consumers();
    }

    fn deliver(&mut self, message: Unstored, stored: Result<(), StoreError>) {
        let Unstored { sender, req, receiver, record } = message;
        if let Err(e) = stored {
            self.reply(sender, req, Err(HubError::Store(e.0)));
            return;
        }
        // The sender's account as it is now; a sender gone before the commit shows none.
        let account = self.sessions.get(&sender).and_then(|s| s.account.clone());
        let reply = match &record.room {
            Some(name) => {
                let keep = self.limits.history_on_join;
                self.logs.entry(name.clone()).or_default().commit(record.clone(), keep);
                if let Some(room) = self.rooms.get(name) {
                    let message = Shared::new(Event::Message {
                        room: room.name.clone(),
                        from: record.from.clone(),
                        seq: record.seq,
                        at: record.at,
                        kind: record.kind,
                        account,
                        text: record.text.clone(),
                    });
                    room.broadcast(&message, Some(sender), &mut self.overflowed);
                }
                let (seq, at, kind, text) = (record.seq, record.at, record.kind, record.text.clone());
                Reply::Said { room: name.clone(), seq, at, kind, text }
            }
            None => {
                self.private_committed = self.private_committed.max(record.seq);
                let to = record.to.clone().unwrap_or_else(|| record.from.clone());
                let event = Event::Whisper {
                    seq: record.seq,
                    from: record.from.clone(),
                    to: to.clone(),
                    at: record.at,
                    kind: record.kind,
                    account,
                    text: record.text.clone(),
                };
                let mut away = None;
                if let Some((target, state)) = receiver.and_then(|r| self.sessions.get(&r).map(|s| (r, s))) {
                    away = state.away.clone();
                    if state.outbox.deliver(&event).is_err() {
                        self.overflowed.push(target);
                    }
                }
                let (seq, at, kind, text) = (record.seq, record.at, record.kind, record.text.clone());
                Reply::Whispered { to, seq, at, kind, text, away }
            }
        };
        self.reply(sender, req, Ok(reply));
    }

    /// A page of the session's private messages with `with`, read like a history page.
    /// Logged-in sessions only: a guest's nick may have been someone else's yesterday.
    fn conversation(
        &mut self,
        id: SessionId,
        req: RequestId,
        with: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(), HubError> {
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let me = self.state(id).account.clone().ok_or(HubError::NotLoggedIn)?;
        let with = Nick::parse(with, self.limits.max_nick_len)?;
        let (limit, upto) = (limit.clamp(1, MAX_HISTORY_PAGE), self.private_committed);
        self.answer_from_store(id, req, move || {
            let records = store.conversation(&me, &with, cursor, upto, limit)?;
            Ok(Reply::Conversation { with, messages: records.into_iter().map(Arc::new).collect() })
        });
        Ok(())
    }

    /// Answers `req` with what `read` finds in the store, read on the blocking pool and
    /// delivered straight into the session's outbox: a read changes no chat state, so the
    /// hub neither waits for it nor hears back. (An overflow kills the outbox, and the
    /// connection ends as a slow consumer.)
    fn answer_from_store(
        &self,
        id: SessionId,
        req: RequestId,
        read: impl FnOnce() -> Result<Reply, StoreError> + Send + 'static,
    ) {
        let outbox = self.state(id).outbox.clone();
        tokio::task::spawn_blocking(move || {
            let result = read().map_err(|e| HubError::Store(e.0));
            let _ = outbox.deliver(&Event::Reply { req, result });
        });
    }

    /// Searches what the session may see, on the blocking pool, answering into the
    /// session's outbox like a history page.
    fn search(&mut self, id: SessionId, req: RequestId, text: &str) -> Result<(), HubError> {
        let store = self.store.clone().ok_or(HubError::NoHistory)?;
        let query = Query::parse(text, self.limits.max_nick_len, self.limits.max_room_len)?;
        let state = self.state(id);
        // `in:ROOM` narrows the search to that room: private messages are in no room.
        let (rooms, private_of) = match query.room {
            Some(room) if state.rooms.contains(&room) => (vec![room], None),
            Some(room) => return Err(HubError::NotInRoom(room.to_string())),
            None => (state.rooms.clone(), state.account.clone()),
        };
        let search = Search {
            words: query.words,
            from: query.from,
            rooms,
            private_of,
            before: query.before,
            after: query.after,
            limit: search::PAGE,
            offset: (query.page - 1) * search::PAGE,
        };
        let (query, page) = (text.to_owned(), query.page);
        self.answer_from_store(id, req, move || {
            let found = store.search(&search)?;
            Ok(Reply::Found { query, page, results: found.into_iter().map(Arc::new).collect() })
        });
        Ok(())
    }

    /// The latest messages of a room, for a session entering it.
    fn recent(&self, name: &RoomName) -> Vec<Arc<Record>> {
        self.logs.get(name).map(|log| log.recent(self.limits.history_on_join)).unwrap_or_default()
    }

    /// A page of a room the session is in. Answered here from memory without a store;
    /// with one, read by a blocking task that answers into the session's outbox itself
    /// (`None`), so the hub never waits for the disk.
    fn history(
        &mut self,
        id: SessionId,
        req: RequestId,
        room: Option<&str>,
        cursor: Cursor,
        limit: usize,
    ) -> Option<Result<Reply, HubError>> {
        let name = match self.target_room(id, room) {
            Ok(name) => name,
            Err(e) => return Some(Err(e)),
        };
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let log = self.logs.get(&name);
        let Some(store) = self.store.clone() else {
            let messages = log.map(|log| log.page(cursor, limit)).unwrap_or_default();
            return Some(Ok(Reply::History { room: name, messages }));
        };
        let upto = log.map_or(0, |log| log.committed);
        let page = Page { room: name.clone(), cursor, upto, limit };
        self.answer_from_store(id, req, move || {
            let records = store.page(&page)?;
            Ok(Reply::History { room: name, messages: records.into_iter().map(Arc::new).collect() })
        });
        None
    }

    fn rename(&mut self, id: SessionId, nick: &str) -> Result<Reply, HubError> {
        let new = Nick::parse(nick, self.limits.max_nick_len)?;
        if let Some(owner) = self.nicks.get(&new) {
            if *owner != id {
                return Err(HubError::NickTaken(new.to_string()));
            }
        }
        if self.registered.contains(&new) && self.state(id).account.as_ref() != Some(&new) {
            return Err(HubError::NickRegistered(new.to_string()));
        }
        self.change_nick(id, new.clone(), false);
        Ok(Reply::Nick { nick: new })
    }

    /// Gives the session the nick `new` (already checked) and tells everyone who shares
    /// a room with it, once each; the session itself too when the server renamed it.
    fn change_nick(&mut self, id: SessionId, new: Nick, tell_self: bool) {
        let state = self.state_mut(id);
        let old = std::mem::replace(&mut state.nick, new.clone());
        let rooms = state.rooms.clone();
        self.nicks.remove(&old);
        self.nicks.insert(new.clone(), id);
        let changed = Shared::new(Event::NickChanged { old, new, at: Utc::now() });
        self.tell_room_mates(id, &rooms, &changed, tell_self);
    }

    /// Delivers `event` once to each session that shares one of `rooms` with `id`, and
    /// to `id` itself when `include_self` (even when it is in no room).
    fn tell_room_mates(&mut self, id: SessionId, rooms: &[RoomName], event: &Shared, include_self: bool) {
        let mut told = HashSet::from([id]);
        let mut targets = if include_self { vec![id] } else { Vec::new() };
        for room in rooms.iter().filter_map(|name| self.rooms.get(name)) {
            targets.extend(room.member_ids().filter(|member| told.insert(*member)));
        }
        for target in targets {
            if let Some(state) = self.sessions.get(&target) {
                if state.outbox.deliver_shared(event).is_err() {
                    self.overflowed.push(target);
                }
            }
        }
    }

    fn who(&self, id: SessionId, room: Option<&str>) -> Result<Reply, HubError> {
        let name = match room {
            None => self.target_room(id, None)?,
            Some(room) => RoomName::parse(room, self.limits.max_room_len)?,
        };
        match self.rooms.get(&name) {
            Some(room) if room.modes.secret && !room.contains(id) => Err(HubError::NoSuchRoom(name.to_string())),
            Some(room) => Ok(Reply::Who { room: room.name.clone(), members: self.members(&name) }),
            None => Err(HubError::NoSuchRoom(name.to_string())),
        }
    }

    fn rooms(&self, id: SessionId) -> Reply {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter(|room| !room.modes.secret || room.contains(id))
            .map(|room| RoomSummary {
                name: room.name.clone(),
                members: room.len(),
                joined: room.contains(id),
                topic: self.topic_of(&room.name).map(|(text, _, _)| text),
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Reply::Rooms(rooms)
    }

    /// The members a session entering a room is shown: all of them, or in an auditorium
    /// (more than `announce_up_to`) its operators and voiced members and the session
    /// itself, since listing N members to each of N arrivals is N² again. `/who` still
    /// lists everyone.
    fn members_on_entry(&self, name: &RoomName, id: SessionId) -> Vec<Member> {
        let Some(room) = self.rooms.get(name).filter(|room| room.len() > self.limits.announce_up_to) else {
            return self.members(name);
        };
        // Without going through every member: the session, the voiced, and the sessions
        // of the operators' accounts.
        let mut shown: Vec<SessionId> = vec![id];
        shown.extend(room.voiced.iter().copied());
        for account in self.ops.get(name).into_iter().flatten() {
            shown.extend(self.nicks.get(account).copied().filter(|member| room.contains(*member)));
        }
        shown.sort_unstable();
        shown.dedup();
        let ops = self.ops.get(name);
        let mut members: Vec<Member> = shown
            .into_iter()
            .filter_map(|member| self.member(member, room, ops))
            .filter(|m| m.nick == self.state(id).nick || m.op || m.voice)
            .collect();
        members.sort_by(|a, b| a.nick.cmp(&b.nick));
        members
    }

    /// How member lists show one session.
    fn member(&self, id: SessionId, room: &Room, ops: Option<&HashSet<Nick>>) -> Option<Member> {
        let state = self.sessions.get(&id)?;
        Some(Member {
            nick: state.nick.clone(),
            op: state.account.as_ref().is_some_and(|a| ops.is_some_and(|ops| ops.contains(a))),
            voice: room.voiced.contains(&id),
            away: state.away.is_some(),
            admin: state.oper || state.account.as_ref().is_some_and(|a| self.admins.contains(a)),
        })
    }

    /// A room's members, sorted by nick.
    fn members(&self, name: &RoomName) -> Vec<Member> {
        let Some(room) = self.rooms.get(name) else {
            return Vec::new();
        };
        let ops = self.ops.get(name);
        let mut members: Vec<Member> = room.member_ids().filter_map(|id| self.member(id, room, ops)).collect();
        members.sort_by(|a, b| a.nick.cmp(&b.nick));
        members
    }

    /// Forgets a session and takes it out of its rooms, telling their members why.
    fn remove_session(&mut self, id: SessionId, reason: LeaveReason, detail: Option<Arc<str>>) -> Option<SessionState> {
        let state = self.sessions.remove(&id)?;
        self.nicks.remove(&state.nick);
        for room in &state.rooms {
            self.leave(id, &state.nick, room, reason, detail.as_ref());
        }
        tracing::debug!(session = id.0, "session removed");
        Some(state)
    }

    /// Disconnects every session whose outbox overflowed, including those that overflow
    /// while being told that the first ones left.
    fn drop_slow_consumers(&mut self) {
        let detail: Arc<str> = Arc::from(SEND_QUEUE_EXCEEDED);
        while let Some(id) = self.overflowed.pop() {
            if let Some(state) = self.remove_session(id, LeaveReason::Lost, Some(detail.clone())) {
                tracing::info!(nick = %state.nick, "disconnecting a slow consumer: {SEND_QUEUE_EXCEEDED}");
            }
        }
    }

    fn shutdown(&mut self, message: &str) {
        self.shutting_down = true;
        let notice = Shared::new(Event::Shutdown { at: Utc::now(), message: message.into() });
        for state in self.sessions.values() {
            let _ = state.outbox.deliver_shared(&notice);
            state.outbox.close();
        }
    }
}
