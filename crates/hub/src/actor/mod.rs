//! The hub actor: one task that owns every session, nick and room, fed by a bounded
//! channel of operations from the gateways.
//!
//! Golden rule of this loop: it awaits nothing but its own inputs. Deliveries go into
//! outboxes without waiting; a session that cannot keep up is disconnected, never waited
//! for, or one slow reader would stall every room. Work that blocks (the disk, password
//! hashing) runs elsewhere and reports back as a [`Completion`].
//!
//! One idea per file: `delivery` (a message from acceptance to every outbox), `reads`
//! (history pages and searches, off the task), `membership` (sessions entering and
//! leaving rooms, nicks), `rooms` (room settings, registration, lives), `moderation`
//! (operators, bans, topics), `accounts` (registering, logging in, pacing), `people`
//! (away, WHOIS, statistics), `watching` (watch lists: who comes and goes), `clustered`
//! (messages through the cluster's log), `claiming` (nicks granted by the cluster's
//! registry).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::charter::{Charter, ServerBans};
use crate::claims::NickClaims;
use crate::command::{Command, RequestId};
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply};
use crate::handle::{Destination, Health, HubHandle, Login, Op, SessionId, Verified, Whereabouts};
use crate::identity::{Account, AccountId, GuestId, Party};
use crate::journal::{Committed, Journal, OnFailure};
use crate::ledger::{Ledger, Logged, Ticket};
use crate::log::RoomLog;
use crate::lookalike::Lookalikes;
use crate::metrics::HubMetrics;
use crate::moderation::Change;
use crate::name::{Nick, RoomName};
use crate::outbox::Outbox;
use crate::room::Room;
use crate::store::{Store, StoreError, Verdict};
use crate::LOBBY;

mod accounts;
mod claiming;
mod clustered;
mod deletion;
mod delivery;
mod markers;
mod membership;
mod moderation;
mod names;
mod pacing;
mod people;
mod presence;
mod reads;
mod rooms;
mod signals;
mod tokens;
mod watching;

pub use accounts::{MAX_PASSWORD, MIN_PASSWORD};
use delivery::Unstored;

/// Messages accepted but not yet reported stored. At this many the hub stops taking
/// operations until the store catches up, which pushes back on the senders.
const MAX_UNSTORED: usize = 16_384;

/// The most operations the hub takes from its inbox in one round before it delivers
/// what they produced (see `flush_unstored`) and looks at its other inputs again.
const ROUND: usize = 256;

/// The longest topic, away message, or quit, kick or ban reason kept, in bytes (cut on
/// a character boundary): short enough for one IRC line, whichever gateway set it.
pub const MAX_REASON: usize = 390;

/// The most messages one history page holds.
pub const MAX_HISTORY_PAGE: usize = 500;

/// The longest ban or mute, in days: durations are checked against it before any
/// arithmetic, so no number a client sends can overflow a date. Longer ones are refused;
/// a ban without a duration lasts until lifted.
pub const MAX_RESTRICTION_DAYS: u64 = 3660;

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

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
    /// Rooms with more members than this do not announce who joins and leaves, changes
    /// nick or goes away (an auditorium): telling every member of a room of N about
    /// each arrival costs N² deliveries while it fills. Kicks are still announced.
    pub announce_up_to: usize,
    /// The most bans and mutes one room keeps.
    pub max_bans_per_room: usize,
    /// The most server bans kept.
    pub max_server_bans: usize,
    /// The most rooms one account may register.
    pub max_rooms_per_account: usize,
    /// History pages and searches read at once (on the blocking pool); more wait.
    pub max_reads: usize,
    /// How long a resume token lasts unused.
    pub token_idle: std::time::Duration,
    /// The most nicks one session may watch (IRC's `MONITOR` list).
    pub max_watched: usize,
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
            max_bans_per_room: 100,
            max_server_bans: 10_000,
            max_rooms_per_account: 10,
            max_reads: 8,
            token_idle: crate::tokens::DEFAULT_TOKEN_IDLE,
            max_watched: 100,
        }
    }
}

/// One session, as the hub keeps it.
pub(crate) struct SessionState {
    pub(crate) nick: Nick,
    pub(crate) outbox: Arc<Outbox>,
    /// The rooms it is in, the most recently joined last.
    pub(crate) rooms: Vec<RoomName>,
    /// The account it logged in to (or registered).
    pub(crate) account: Option<Account>,
    /// What it owns as a guest (private messages before it logged in).
    pub(crate) guest: GuestId,
    /// The client's address, for bans, pacing and quotas.
    pub(crate) address: Option<IpAddr>,
    /// Its user name and host, put in every event it is the source of.
    pub(crate) userhost: Arc<crate::identity::Userhost>,
    /// Its away message, while away.
    pub(crate) away: Option<Arc<str>>,
    /// What its client says about its user (IRC's real name).
    pub(crate) realname: Option<Arc<str>>,
    /// When it connected.
    pub(crate) since: crate::event::Timestamp,
    /// When it last said something, for idle times.
    pub(crate) active: std::time::Instant,
    /// Made a server administrator by its gateway (IRC's `OPER`).
    pub(crate) oper: bool,
    /// History pages and searches it has waiting or running.
    pub(crate) reads: usize,
    /// A guest's read markers, which end with the session (an account's are the hub's);
    /// boxed, as most sessions set none.
    // Boxed for the size of the record (8 bytes, not a map's 48), not for the map's.
    #[allow(clippy::box_collection)]
    pub(crate) markers: Option<Box<HashMap<String, crate::event::Timestamp>>>,
}

impl SessionState {
    /// Who owns what the session says privately now.
    pub(crate) fn party(&self) -> Party {
        self.account.as_ref().map_or(Party::Guest(self.guest), |a| Party::Account(a.id))
    }

    /// The account's name, if logged in.
    pub(crate) fn account_name(&self) -> Option<&Nick> {
        self.account.as_ref().map(|a| &a.name)
    }
}

/// Work done off the hub task, reported back to it.
pub(crate) enum Completion {
    Registered {
        session: SessionId,
        req: RequestId,
        result: Result<Option<Account>, StoreError>,
        /// The resume token issued with it, when asked for.
        token: Option<(String, u64)>,
    },
    Verified {
        session: SessionId,
        req: RequestId,
        name: Nick,
        address: Option<IpAddr>,
        result: Result<Verdict, StoreError>,
        token: Option<(String, u64)>,
    },
    PasswordSet {
        session: SessionId,
        req: RequestId,
        address: Option<IpAddr>,
        account: Account,
        result: Result<bool, StoreError>,
    },
    Unregistered {
        session: SessionId,
        req: RequestId,
        address: Option<IpAddr>,
        account: Account,
        result: Result<bool, StoreError>,
    },
    GraceOver {
        session: SessionId,
        nick: Nick,
    },
    /// A read marker written.
    Marked {
        session: SessionId,
        req: RequestId,
        account: AccountId,
        key: String,
        target: crate::event::MarkTarget,
        at: crate::event::Timestamp,
        result: Result<(), StoreError>,
    },
    /// A deletion written.
    Deleted {
        session: SessionId,
        req: RequestId,
        pending: deletion::Pending,
        result: Result<crate::store::Deletion, StoreError>,
    },
    /// A moderation change written (`req` `None`: one the hub made itself; `life`: the
    /// room's life when it was asked for).
    Moderated {
        session: SessionId,
        req: Option<RequestId>,
        life: Option<u64>,
        change: Change,
        result: Result<(), StoreError>,
    },
    /// A registered room's new settings written.
    ModesSet {
        session: SessionId,
        req: RequestId,
        room: RoomName,
        modes: crate::modes::RoomModes,
        voiced: HashSet<SessionId>,
        applied: Vec<crate::modes::ModeChange>,
        result: Result<(), StoreError>,
    },
    /// A password check finished for a network; what it found follows.
    CheckDone {
        net: crate::Network,
        then: Box<Completion>,
    },
    /// A password checked for a gateway without a session.
    Checked {
        name: Nick,
        address: Option<IpAddr>,
        done: Option<oneshot::Sender<Result<Verified, HubError>>>,
        result: Result<Verdict, StoreError>,
    },
    /// A `hello` with a password, checked.
    Admitted {
        name: Nick,
        arrival: crate::identity::Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: Option<oneshot::Sender<Result<SessionId, HubError>>>,
        result: Result<Verdict, StoreError>,
        token: Option<(String, u64)>,
    },
    /// A resume token revoked (or found not to be the account's).
    TokenRevoked {
        revoker: tokens::Revoker,
        account: AccountId,
        token: u64,
        result: Result<bool, StoreError>,
    },
    /// A resume token looked up.
    TokenChecked {
        address: Option<IpAddr>,
        /// What the attempt is paced by.
        key: String,
        purpose: tokens::TokenPurpose,
        result: Result<Option<crate::tokens::TokenUse>, StoreError>,
    },
    /// A history page or search finished (its answer is in the session's outbox).
    Read {
        session: SessionId,
        req: RequestId,
    },
    /// The cluster's registry answered a nick's claim; what asked for it goes on.
    Claimed {
        key: String,
        nick: Nick,
        result: Result<bool, crate::claims::ClaimError>,
        then: Box<claiming::Pending>,
    },
}

impl Completion {
    /// The session whose request the work answers, if any.
    fn session(&self) -> Option<SessionId> {
        match self {
            Completion::Registered { session, .. }
            | Completion::Verified { session, .. }
            | Completion::PasswordSet { session, .. }
            | Completion::Unregistered { session, .. }
            | Completion::Marked { session, .. }
            | Completion::Deleted { session, .. }
            | Completion::Moderated { session, .. }
            | Completion::ModesSet { session, .. }
            | Completion::Read { session, .. } => Some(*session),
            Completion::Claimed { then, .. } => then.session(),
            Completion::TokenRevoked { revoker, .. } => revoker.session(),
            Completion::CheckDone { .. }
            | Completion::Admitted { .. }
            | Completion::Checked { .. }
            | Completion::GraceOver { .. }
            | Completion::TokenChecked { .. } => None,
        }
    }
}

/// What a command comes to: an answer now, or one that will follow (the store's, a
/// password check's) into the session's outbox.
pub(crate) enum Answer {
    Now(Reply),
    Later,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Now(reply)
    }
}

pub(crate) struct Hub {
    pub(crate) limits: Limits,
    pub(crate) lobby: RoomName,
    /// Boxed: a session's state is a few hundred bytes, and a table of them keeps
    /// room for up to twice as many as it holds; the table of pointers costs 16 bytes
    /// a place instead (docs/BENCHMARKS.md, "Idle memory").
    pub(crate) sessions: HashMap<SessionId, Box<SessionState>>,
    pub(crate) nicks: HashMap<Nick, SessionId>,
    /// Rooms with members.
    pub(crate) rooms: HashMap<RoomName, Room>,
    /// Every registered room, and every room with members: settings, operators, bans,
    /// topic, and where its visible history begins. An unregistered room's charter goes
    /// when it empties.
    pub(crate) charters: HashMap<RoomName, Charter>,
    /// Every room that ever had a message, empty or not (its seq counter).
    pub(crate) logs: HashMap<RoomName, RoomLog>,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) journal: Option<Journal>,
    /// Accepted messages in the order they went to the journal.
    pub(crate) unstored: VecDeque<Unstored>,
    /// Clustered: the cluster's log, which numbers and orders every room's messages
    /// (see `clustered`).
    pub(crate) ledger: Option<Arc<dyn Ledger>>,
    /// Clustered with a nick registry: the claims this node holds and asks for (see
    /// `claiming`).
    pub(crate) claiming: Option<claiming::Claiming>,
    /// Clustered: messages submitted to the log and not yet given back, by ticket.
    pub(crate) in_log: HashMap<Ticket, Unstored>,
    /// The last ticket given.
    pub(crate) next_ticket: Ticket,
    /// Clustered: who is on the other nodes, and where.
    pub(crate) elsewhere: crate::presence::Elsewhere,
    /// Clustered: this node's sessions invited into a room by an operator on another
    /// node, by room, until they join or the room's life ends (the room may have no
    /// member here to keep them in [`crate::room::Room::invited`]).
    pub(crate) invited_elsewhere: HashMap<RoomName, HashSet<SessionId>>,
    /// Set when the journal stopped: messages are refused from then on.
    pub(crate) store_broken: bool,
    /// How many unstored messages each session has.
    pub(crate) unstored_by: HashMap<SessionId, usize>,
    /// Operations waiting for their session's messages to be stored (see `apply`).
    pub(crate) parked: HashMap<SessionId, VecDeque<Op>>,
    /// The requests each session waits for an answer to from work off the hub task (a
    /// store read or write, a password check): its later operations wait behind them,
    /// so that a session's answers come in the order of its requests.
    pub(crate) awaiting: HashMap<SessionId, Vec<RequestId>>,
    /// The id of the last signal relayed: counted from the start's time in
    /// microseconds, so that ids stay unique across restarts.
    pub(crate) last_signal: u64,
    /// The seq of the last private message accepted, and of the last one stored.
    pub(crate) private_assigned: u64,
    pub(crate) private_committed: u64,
    /// The last guest number given.
    pub(crate) last_guest: u64,
    /// Every account by name: nicks only their owner may keep.
    pub(crate) accounts: HashMap<Nick, AccountId>,
    /// Accounts' read markers, by target key (see `markers`).
    pub(crate) markers: HashMap<AccountId, HashMap<String, crate::event::Timestamp>>,
    /// Nicks in use (sessions' and accounts'), by what they look like.
    pub(crate) nick_looks: Lookalikes,
    /// Names of rooms with a charter, by what they look like.
    pub(crate) room_looks: Lookalikes,
    /// Where work done off the hub task reports.
    pub(crate) completions: mpsc::UnboundedSender<Completion>,
    /// Password checks running or queued.
    pub(crate) checks: usize,
    /// Login grace timers running.
    pub(crate) timers: usize,
    /// Moderation changes being made durable.
    pub(crate) writes: usize,
    /// Where moderation changes go to be written one at a time, in the order they were
    /// made (see `write_in_order`); `None` without a store.
    pub(crate) in_order: Option<mpsc::UnboundedSender<Write>>,
    /// History reads waiting or running.
    pub(crate) reading: usize,
    /// Server administrators' accounts.
    pub(crate) admins: HashSet<AccountId>,
    /// Bans from the whole server.
    pub(crate) server_bans: ServerBans,
    /// Login attempts and their failures, per address and per account from an address.
    pub(crate) pacing: pacing::Pacing,
    /// Password checks running and waiting their turn.
    pub(crate) turns: pacing::Turns,
    /// History reads run this many at once.
    pub(crate) read_permits: Arc<tokio::sync::Semaphore>,
    /// The resume token each session logged in with or was given, by token id.
    pub(crate) session_tokens: HashMap<SessionId, u64>,
    /// The nicks sessions watch, and who watches each (IRC's `MONITOR`).
    pub(crate) watches: crate::watch::WatchLists,
    /// The most sessions connected at once.
    pub(crate) max_users: usize,
    pub(crate) next_id: u64,
    pub(crate) shutting_down: bool,
    /// Sessions whose outbox overflowed during the current operation.
    pub(crate) overflowed: Vec<SessionId>,
    /// What the hub counts, for metrics.
    pub(crate) metrics: Arc<HubMetrics>,
}

/// Starts the hub task, with history kept in `store` if there is one (without, rooms
/// remember their latest messages only while the server runs). Reads what the store
/// holds first, so sequence numbers continue where they stopped. The task ends when
/// every [`HubHandle`] and [`crate::Session`] is dropped and every accepted message is
/// stored.
pub async fn spawn(limits: Limits, store: Option<Arc<dyn Store>>) -> Result<(HubHandle, JoinHandle<()>), StoreError> {
    start(limits, store, None).await
}

/// What a hub in a cluster shares with the other nodes.
pub struct Clustered {
    /// The cluster's log, where accepted messages go.
    pub ledger: Arc<dyn Ledger>,
    /// What the log gives back, in its order: every node's messages, and refusals of
    /// this hub's. The hub stops taking messages when it ends.
    pub logged: mpsc::UnboundedReceiver<Logged>,
    /// This run's guests are numbered from here: a number no other run of any node
    /// starts below (guests own their private messages by number, in the shared
    /// database), e.g. a number the cluster gave this run alone, shifted well clear of
    /// the previous run's.
    pub first_guest: u64,
    /// The cluster's nick registry. `None`: nicks are checked on this node only, as a
    /// lone hub checks them (two nodes may then give one nick to two sessions).
    pub nicks: Option<ClusterNicks>,
}

/// What a clustered hub needs to keep nicks unique across the cluster (see
/// `claims.rs`).
pub struct ClusterNicks {
    /// This node's name, unique in the cluster as a nick is (case and look-alikes
    /// aside): the guest nicks this hub gives out (`Guest-NODE-N`) contain it, so no
    /// other node gives the same one.
    pub node: String,
    /// The registry, which grants each nick's claim to one node at a time.
    pub claims: Arc<dyn NickClaims>,
    /// Keys of claims this node held and lost (their lease ran out while it was cut
    /// off): whoever uses such a nick here is renamed to a guest nick.
    pub lost: mpsc::UnboundedReceiver<String>,
}

/// Starts the hub task of one node of a cluster: as [`spawn`], with a store (the
/// cluster's shared database), and every message numbered and ordered by the cluster's
/// log (see [`Ledger`]).
pub async fn spawn_clustered(
    limits: Limits,
    store: Arc<dyn Store>,
    cluster: Clustered,
) -> Result<(HubHandle, JoinHandle<()>), StoreError> {
    start(limits, Some(store), Some(cluster)).await
}

async fn start(
    limits: Limits,
    store: Option<Arc<dyn Store>>,
    cluster: Option<Clustered>,
) -> Result<(HubHandle, JoinHandle<()>), StoreError> {
    let (tx, mut rx) = mpsc::channel(limits.inbox.max(1));
    let mut hub = Hub::new(limits);
    let metrics = hub.metrics.clone();
    // Without a store nothing is ever reported committed; the branch below stays off.
    let (_no_journal, mut commits) = mpsc::unbounded_channel::<Committed>();
    let (completions, mut completed) = mpsc::unbounded_channel();
    hub.completions = completions;
    if let Some(store) = store {
        hub.restore(store.clone(), cluster.is_some()).await?;
        let on_failure = if cluster.is_some() { OnFailure::Retry } else { OnFailure::Report };
        let (journal, done) = Journal::start(store.clone(), metrics.clone(), on_failure)
            .map_err(|e| StoreError::Write(format!("starting the history writer: {e}")))?;
        hub.journal = Some(journal);
        hub.in_order = Some(write_in_order());
        hub.store = Some(store);
        commits = done;
    }
    // Alone, nothing is ever logged and no claim is lost; the branches below stay off.
    let (_no_log, mut logged) = mpsc::unbounded_channel::<Logged>();
    let (_no_losses, mut lost) = mpsc::unbounded_channel::<String>();
    let mut losses_open = false;
    if let Some(cluster) = cluster {
        hub.ledger = Some(cluster.ledger);
        logged = cluster.logged;
        // Not the store's last guest, which may be another node's, from its range.
        hub.last_guest = cluster.first_guest;
        if let Some(nicks) = cluster.nicks {
            hub.claiming = Some(claiming::Claiming::new(&nicks.node, nicks.claims));
            lost = nicks.lost;
            losses_open = true;
        }
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
                // Followed while sessions can come or this node's messages are out.
                news = logged.recv(), if hub.ledger.is_some() && (inbox_open || !hub.in_log.is_empty()) => {
                    match news {
                        Some(news) => hub.logged(news),
                        None => hub.ledger_lost(),
                    }
                }
                // Lost claims matter while sessions can come (they all have gone when
                // the inbox closes).
                key = lost.recv(), if losses_open && inbox_open => match key {
                    Some(key) => hub.claim_lost(&key),
                    None => losses_open = false,
                },
                // The hub holds a sender itself, so this never ends: it is waited on only
                // while work is out (and grace timers only while sessions can come).
                Some(done) = completed.recv(), if hub.awaits_completions(inbox_open) => {
                    hub.complete(done);
                }
                op = rx.recv(), if inbox_open && hub.backlog() < MAX_UNSTORED => match op {
                    Some(op) => {
                        hub.apply(op);
                        // A round: whatever else is waiting, so that messages accepted
                        // together go out together.
                        for _ in 1..ROUND {
                            if hub.backlog() >= MAX_UNSTORED {
                                hub.flush_unstored();
                                if hub.backlog() >= MAX_UNSTORED {
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
    Ok((HubHandle { tx, metrics }, task))
}

/// A hub that ends with sessions still open (it panicked: a normal end comes after
/// every session has gone) closes their outboxes, so that every connection writes what
/// was queued and ends: connections wait on their outbox, not on the server's stop.
impl Drop for Hub {
    fn drop(&mut self) {
        for state in self.sessions.values() {
            state.outbox.close();
        }
    }
}

impl Hub {
    fn new(limits: Limits) -> Self {
        let lobby = RoomName::parse(LOBBY, usize::MAX).unwrap_or_else(|_| unreachable!("the lobby's name is valid"));
        let read_permits = Arc::new(tokio::sync::Semaphore::new(limits.max_reads.max(1)));
        let mut hub = Self {
            limits,
            lobby: lobby.clone(),
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            rooms: HashMap::new(),
            charters: HashMap::new(),
            logs: HashMap::new(),
            store: None,
            journal: None,
            ledger: None,
            claiming: None,
            in_log: HashMap::new(),
            next_ticket: 0,
            elsewhere: crate::presence::Elsewhere::default(),
            invited_elsewhere: HashMap::new(),
            unstored: VecDeque::new(),
            store_broken: false,
            unstored_by: HashMap::new(),
            parked: HashMap::new(),
            awaiting: HashMap::new(),
            last_signal: u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0),
            private_assigned: 0,
            private_committed: 0,
            last_guest: 0,
            accounts: HashMap::new(),
            markers: HashMap::new(),
            nick_looks: Lookalikes::default(),
            room_looks: Lookalikes::default(),
            completions: mpsc::unbounded_channel().0,
            checks: 0,
            timers: 0,
            writes: 0,
            in_order: None,
            reading: 0,
            admins: HashSet::new(),
            server_bans: ServerBans::default(),
            pacing: pacing::Pacing::default(),
            turns: pacing::Turns::default(),
            read_permits,
            session_tokens: HashMap::new(),
            watches: crate::watch::WatchLists::default(),
            max_users: 0,
            next_id: 1,
            shutting_down: false,
            overflowed: Vec::new(),
            metrics: Arc::default(),
        };
        // The lobby is the server's own registered room: all its history is for
        // everyone who enters it.
        hub.hold_room(&lobby);
        hub.charters.insert(lobby.clone(), Charter::for_lobby(lobby));
        hub
    }

    /// Reads what the store keeps (off the task), before the hub takes any operation.
    /// `every_room`: a node of a cluster, where every room keeps its past (see
    /// `open_room`), so every room's latest messages are read, not only registered
    /// rooms'.
    async fn restore(&mut self, store: Arc<dyn Store>, every_room: bool) -> Result<(), StoreError> {
        let keep = self.limits.history_on_join;
        let lobby = self.lobby.clone();
        let (seqs, accounts, private, guest, moderation, recents, markers) = tokio::task::spawn_blocking(move || {
            let moderation = store.moderation()?;
            // The latest messages of registered rooms only: an unregistered room starts a
            // new life when someone enters it, with none of its past.
            let mut recents = Vec::new();
            for charter in moderation.rooms.iter() {
                recents.push((charter.room.clone(), store.recent(&charter.room, charter.since, keep)?));
            }
            if !moderation.rooms.iter().any(|c| c.room == lobby) {
                recents.push((lobby.clone(), store.recent(&lobby, 0, keep)?));
            }
            if every_room {
                for (room, _) in store.last_seqs()? {
                    if !recents.iter().any(|(kept, _)| *kept == room) {
                        let latest = store.recent(&room, 0, keep)?;
                        recents.push((room, latest));
                    }
                }
            }
            Ok::<_, StoreError>((
                store.last_seqs()?,
                store.accounts()?,
                store.last_private_seq()?,
                store.last_guest()?,
                moderation,
                recents,
                store.read_markers()?,
            ))
        })
        .await
        .map_err(|e| StoreError::Read(format!("reading history failed: {e}")))??;
        for (room, last_seq) in seqs {
            self.logs.insert(room, RoomLog::restored(last_seq));
        }
        for (room, records) in recents {
            self.logs.entry(room).or_default().remember(records, keep);
        }
        for account in accounts {
            self.hold_nick(&account.name);
            self.accounts.insert(account.name, account.id);
        }
        for marker in markers {
            self.markers.entry(marker.account).or_default().insert(marker.target, marker.at);
        }
        (self.private_assigned, self.private_committed) = (private, private);
        self.last_guest = guest;
        self.restore_moderation(moderation);
        Ok(())
    }

    /// Messages accepted and not yet delivered: waiting for the journal, or for the
    /// cluster's log.
    fn backlog(&self) -> usize {
        self.unstored.len() + self.in_log.len()
    }

    /// Whether the loop should wait for completions: only while work is out (and grace
    /// timers only while sessions can still come).
    fn awaits_completions(&self, inbox_open: bool) -> bool {
        self.checks > 0
            || self.writes > 0
            || self.reading > 0
            || self.claiming.as_ref().is_some_and(|c| c.in_flight > 0)
            || (inbox_open && self.timers > 0)
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
        let Some(session) = op.session() else {
            return self.run(op);
        };
        let queued = self.parked.get(&session).is_some_and(|q| !q.is_empty());
        if queued || self.blocked(session, &op) {
            self.parked.entry(session).or_default().push_back(op);
            return;
        }
        self.run(op);
    }

    /// Runs what a session's operations were waiting for, now that its messages are
    /// stored, until one of them is a message being stored again.
    pub(crate) fn resume(&mut self, session: SessionId) {
        while let Some(queue) = self.parked.get_mut(&session) {
            let Some(op) = queue.pop_front() else {
                self.parked.remove(&session);
                return;
            };
            if self.blocked(session, &op) {
                if let Some(queue) = self.parked.get_mut(&session) {
                    queue.push_front(op);
                }
                return;
            }
            self.run(op);
        }
    }

    /// Whether `op` must wait: behind an answer the session awaits, or (unless it is a
    /// message itself) behind the session's unstored messages.
    fn blocked(&self, session: SessionId, op: &Op) -> bool {
        self.awaiting.contains_key(&session) || (!is_message(op) && self.unstored_by.contains_key(&session))
    }

    /// The session's request `req` will be answered after work off the hub task.
    fn await_answer(&mut self, session: SessionId, req: RequestId) {
        self.awaiting.entry(session).or_default().push(req);
    }

    /// The session's request `req` is answered. (Its waiting operations go on when the
    /// work that answered it is done: see `Hub::complete`.)
    pub(crate) fn answered(&mut self, session: SessionId, req: RequestId) {
        let Some(waiting) = self.awaiting.get_mut(&session) else { return };
        let Some(at) = waiting.iter().position(|r| *r == req) else { return };
        waiting.swap_remove(at);
        if waiting.is_empty() {
            self.awaiting.remove(&session);
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Connect { nick, login: Login::Password { password, remember }, arrival, req, outbox, done } => {
                self.admit(nick, password, remember, arrival, req, outbox, done);
            }
            Op::Connect { login: Login::Token(token), arrival, req, outbox, done, .. } => {
                let address = arrival.address;
                self.look_up_token(token, address, tokens::TokenPurpose::Connect { arrival, req, outbox, done });
            }
            Op::Connect { login: Login::Verified(verified), arrival, req, outbox, done, .. } => {
                let Verified { account, admin } = verified;
                self.arrive_logged_in(claiming::LogIn {
                    account,
                    admin,
                    arrival,
                    req,
                    outbox,
                    token: None,
                    resumed: None,
                    done,
                });
            }
            Op::Connect { nick, login: Login::Guest, arrival, req, outbox, done } => {
                self.connect_guest(nick, arrival, req, outbox, done);
            }
            Op::Token { token, address, done } => {
                self.look_up_token(token, address, tokens::TokenPurpose::Check { done });
            }
            Op::RevokeToken { account, token, done } => self.revoke_held(account, token, done),
            Op::Verify { name, password, address, done } => self.verify_only(name, password, address, done),
            Op::NickFree { nick, done } => {
                let _ = done.send(self.nick_free(&nick).map(drop));
            }
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
                let _ = done.send(self.whereabouts(session));
            }
            Op::MaySend { session, room, to, done } => {
                let answer = if self.sessions.contains_key(&session) {
                    self.destination(session, room.as_deref(), to.as_deref())
                } else {
                    Err(HubError::ShuttingDown)
                };
                let _ = done.send(answer);
            }
            Op::Health { done } => {
                let _ = done.send(Health { store_ok: !self.store_broken, sessions: self.sessions.len() });
            }
            #[cfg(feature = "test-hooks")]
            Op::Crash => panic!("the hub was asked to crash (test hook)"),
        }
        self.drop_slow_consumers();
    }

    /// Who and where a session is, for its gateway.
    fn whereabouts(&self, id: SessionId) -> Option<Whereabouts> {
        let state = self.sessions.get(&id)?;
        Some(Whereabouts {
            nick: state.nick.clone(),
            account: state.account.clone(),
            party: state.party(),
            address: state.address,
            rooms: state.rooms.iter().map(|room| (room.clone(), self.since(room))).collect(),
        })
    }

    /// Where a message from the session would go, checked as a message is.
    fn destination(&self, id: SessionId, room: Option<&str>, to: Option<&str>) -> Result<Destination, HubError> {
        if let Some(to) = to {
            let target = self.session_named(to)?;
            let state = self.state(target);
            return Ok(Destination::Person(state.nick.clone(), state.party()));
        }
        let name = self.target_room(id, room)?;
        self.may_say(id, &name)?;
        Ok(Destination::Room(name.clone(), self.since(&name)))
    }

    /// Tells the gateway how registering went; if it gave up waiting, undoes it, as if it
    /// had disconnected.
    pub(crate) fn answer_connect(
        &mut self,
        result: Result<SessionId, HubError>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    ) {
        if let Err(Ok(id)) = done.send(result) {
            self.remove_session(id, LeaveReason::Lost, None);
        }
    }

    fn command(&mut self, id: SessionId, req: RequestId, command: Command) {
        if !self.sessions.contains_key(&id) {
            // Disconnected in the meantime (slow consumer, shutdown): nothing to answer.
            return;
        }
        if let Command::Quit { reason } = command {
            self.quit(id, req, reason);
            return;
        }
        // Awaited until answered: an answer given now, or in the same operation, ends
        // the wait at once; one that comes later from off the hub task, when it comes.
        let message = matches!(command, Command::Say { .. } | Command::Whisper { .. });
        if !message {
            self.await_answer(id, req);
        }
        let answer = match command {
            Command::Join { room, exclusive, key } => self.join(id, &room, exclusive, key.as_deref()).map(Answer::from),
            Command::Part { room, reason } => self.part(id, room.as_deref(), reason).map(Answer::from),
            Command::Say { room, kind, text, meta } => self.say(id, req, room.as_deref(), kind, text, meta),
            Command::Whisper { to, kind, text, meta } => self.whisper(id, req, &to, kind, text, meta),
            Command::Signal { target, signal, tags } => self.signal(id, target, signal, tags).map(Answer::from),
            Command::SayTo { room, audience, kind, text } => {
                self.say_to(id, &room, audience, kind, text).map(Answer::from)
            }
            Command::Conversation { with, cursor, limit } => self.conversation(id, req, &with, cursor, limit),
            Command::History { room, cursor, limit } => self.history(id, req, room.as_deref(), cursor, limit),
            Command::Search { query } => self.search(id, req, &query),
            Command::Topic { room, text: None } => self.topic(id, room.as_deref()).map(Answer::from),
            Command::Topic { room, text: Some(text) } => {
                self.moderate(id, req, room.as_deref(), crate::moderation::Action::Topic(text))
            }
            Command::Moderate { room, action } => self.moderate(id, req, room.as_deref(), action),
            Command::ServerModerate { action } => self.moderate_server(id, req, action),
            Command::ServerBans => self.list_server_bans(id).map(Answer::from),
            Command::Audit { limit } => self.audit(id, req, limit),
            Command::Register { password } => self.register(id, req, password, None),
            Command::Login { name, password } => self.login(id, req, name, password, None),
            Command::Remember { command, description } => {
                let description = crate::tokens::clean_description(&description);
                match *command {
                    Command::Register { password } => self.register(id, req, password, Some(description)),
                    Command::Login { name, password } => self.login(id, req, name, password, Some(description)),
                    _ => Err(HubError::NotRememberable),
                }
            }
            Command::Sessions => self.list_sessions(id, req),
            Command::RevokeSession { id: token } => self.revoke_session(id, req, token),
            Command::Password { old, new } => self.change_password(id, req, old, new),
            Command::Unregister { password } => self.unregister(id, req, password),
            Command::Nick { nick } => self.rename(id, req, &nick),
            Command::Mode { room, changes } => self.set_modes(id, req, &room, changes),
            Command::Modes { room } => self.modes(id, &room).map(Answer::from),
            Command::Bans { room } => self.bans(id, &room).map(Answer::from),
            Command::Invite { nick, room } => self.invite(id, &nick, room.as_deref()).map(Answer::from),
            Command::Invitations => Ok(self.invitations(id).into()),
            Command::Away { text } => Ok(self.away(id, text).into()),
            Command::Whois { nick } => self.whois(id, &nick).map(Answer::from),
            Command::Stats => Ok(Reply::Stats(self.stats()).into()),
            Command::Oper => Ok(self.oper(id).into()),
            Command::Describe { realname } => Ok(self.describe(id, &realname).into()),
            Command::Who { room } => self.who(id, room.as_deref()).map(Answer::from),
            Command::Rooms => Ok(self.rooms(id).into()),
            Command::Delete { room, seq, reason } => self.delete(id, req, room.as_deref(), seq, reason),
            Command::MarkRead { target, at } => self.mark_read(id, req, target, at),
            Command::ChatHistory { target, query, limit } => self.chat_history(id, req, target, query, limit),
            Command::ChatTargets { from, to, limit } => self.chat_targets(id, req, from, to, limit),
            Command::Watch(watch) => Ok(self.watch(id, watch).into()),
            Command::Ping => Ok(Reply::Pong.into()),
            Command::Quit { .. } => unreachable!("handled above"),
        };
        match answer {
            Ok(Answer::Now(reply)) => self.reply(id, req, Ok(reply)),
            Ok(Answer::Later) => {}
            Err(e) => self.reply(id, req, Err(e)),
        }
    }

    pub(crate) fn reply(&mut self, id: SessionId, req: RequestId, result: Result<Reply, HubError>) {
        if let Some(state) = self.sessions.get(&id) {
            if state.outbox.deliver(&Event::Reply { req, result }).is_err() {
                self.overflowed.push(id);
            }
        }
        self.answered(id, req);
    }

    /// Delivers `event` to one session, noting an overflow.
    pub(crate) fn tell(&mut self, id: SessionId, event: &Event) {
        if let Some(state) = self.sessions.get(&id) {
            if state.outbox.deliver(event).is_err() {
                self.overflowed.push(id);
            }
        }
    }

    pub(crate) fn state(&self, id: SessionId) -> &SessionState {
        // Every caller checked that the session exists in this same operation.
        self.sessions.get(&id).unwrap_or_else(|| unreachable!("session {id:?} vanished mid-operation"))
    }

    pub(crate) fn state_mut(&mut self, id: SessionId) -> &mut SessionState {
        self.sessions.get_mut(&id).unwrap_or_else(|| unreachable!("session {id:?} vanished mid-operation"))
    }

    /// The session now using `nick`.
    pub(crate) fn session_named(&self, nick: &str) -> Result<SessionId, HubError> {
        Nick::parse(nick, self.limits.max_nick_len)
            .ok()
            .and_then(|n| self.nicks.get(&n).copied())
            .ok_or_else(|| HubError::NoSuchNick(nick.to_owned()))
    }

    /// Whether the session is a server administrator (by account, or made one by its
    /// gateway).
    pub(crate) fn is_admin(&self, id: SessionId) -> bool {
        self.sessions
            .get(&id)
            .is_some_and(|s| s.oper || s.account.as_ref().is_some_and(|a| self.admins.contains(&a.id)))
    }

    /// The room a command names, or the session's latest room when it names none.
    pub(crate) fn target_room(&self, id: SessionId, room: Option<&str>) -> Result<RoomName, HubError> {
        let state = self.state(id);
        match room {
            None => state.rooms.last().cloned().ok_or(HubError::NoRoom),
            Some(name) => {
                let name = RoomName::parse(name, self.limits.max_room_len)?;
                match state.rooms.iter().find(|r| **r == name) {
                    Some(joined) => Ok(joined.clone()),
                    // A room that is neither registered nor has members (or a secret one
                    // the session is not in) does not exist for it.
                    None if !(self.rooms.contains_key(&name) || self.charters.contains_key(&name))
                        || self.hidden_from(id, &name) =>
                    {
                        Err(HubError::NoSuchRoom(name.to_string()))
                    }
                    None => Err(HubError::NotInRoom(name.to_string())),
                }
            }
        }
    }

    /// The first seq of `room`'s history its members may read now.
    pub(crate) fn since(&self, room: &RoomName) -> u64 {
        self.charters.get(room).map_or(u64::MAX, |c| c.since)
    }

    /// Writes a moderation change after every one sent before it.
    pub(crate) fn write(&self, write: impl FnOnce() + Send + 'static) {
        let write: Write = Box::new(write);
        let unsent = match &self.in_order {
            Some(in_order) => in_order.send(write).err().map(|e| e.0),
            None => Some(write),
        };
        if let Some(write) = unsent {
            tokio::task::spawn_blocking(write);
        }
    }

    /// The next guest number.
    pub(crate) fn next_guest(&mut self) -> GuestId {
        self.last_guest = self.last_guest.saturating_add(1);
        GuestId(self.last_guest)
    }
}

/// A moderation change's write, which reports to the hub when done.
pub(crate) type Write = Box<dyn FnOnce() + Send>;

/// Starts the task that runs moderation writes one at a time on the blocking pool, in
/// the order the hub sent them: a room's kept state is then that of its last change,
/// whichever write would have finished first (a registration wipes and rewrites a
/// room's state, and must land before the changes made after it). Unbounded, like the
/// completions the writes report by: each is a request the hub has taken, and the hub
/// counts them (`writes`).
fn write_in_order() -> mpsc::UnboundedSender<Write> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
    tokio::spawn(async move {
        while let Some(write) = rx.recv().await {
            // A write that panicked reports nothing, as before; the next one goes on.
            let _ = tokio::task::spawn_blocking(write).await;
        }
    });
    tx
}

/// A message, which need not wait behind its session's unstored messages (the journal
/// keeps their order).
fn is_message(op: &Op) -> bool {
    matches!(op, Op::Command { command: Command::Say { .. } | Command::Whisper { .. }, .. })
}

/// A store failure as the client sees it: which kind, never the detail (logged here).
pub(crate) fn store_failed(e: &StoreError) -> HubError {
    tracing::error!("{e}");
    match e {
        StoreError::Read(_) => HubError::StoreRead,
        StoreError::Write(_) => HubError::StoreWrite,
    }
}
