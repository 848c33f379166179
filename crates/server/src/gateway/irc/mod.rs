//! The IRC gateway: RFC 1459/2812 as clients use them, with IRCv3 capabilities, so that
//! irssi, WeeChat, HexChat and bots join the same rooms as everyone else. A room `name`
//! is the channel `#name`. Specified for users in docs/IRC.md.
//!
//! Everyone appears as `nick!user@host`, users of every gateway alike: the user name
//! their client gave (`~`-prefixed, as servers without ident do) or one made from their
//! nick, and a host cloaked from their address (see `crate::hosts`); the hub keeps both
//! per session and puts them in the events that need a source.

mod caps;
mod commands;
mod labels;
mod oper;
mod register;
mod tags;
mod wire;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use parley_hub::{Command, HubError, Member, Nick, RequestId, RoomName, Timestamp, Userhost};

use super::{Dialogue, Farewell, Protocol, ReadEnd, Refusal, Turn};
use crate::server::Shared;

/// The server's version, as `002`, `004` and `VERSION` give it.
pub(crate) const VERSION: &str = concat!("parley-", env!("CARGO_PKG_VERSION"));

/// `nick!user@host`.
pub(crate) fn source(nick: &Nick, userhost: &Userhost) -> String {
    source_str(nick.as_str(), userhost)
}

/// [`source`] for a nick as text.
pub(crate) fn source_str(nick: &str, userhost: &Userhost) -> String {
    format!("{nick}!{}@{}", userhost.user, userhost.host)
}

/// The source of a message from the history, whose sender's user name and host are not
/// kept: `nick!*@*`.
pub(crate) fn past_source(nick: &Nick) -> String {
    format!("{nick}!*@*")
}

/// Text safe in a trailing parameter: no line breaks or NUL from other gateways' users.
pub(crate) fn clean(text: &str) -> String {
    text.chars().map(|c| if matches!(c, '\r' | '\n' | '\0') { ' ' } else { c }).collect()
}

/// Whether `given` is the secret `expected` (a connection or operator password), in
/// time that tells nothing about either: both are hashed with a key of this process and
/// the tags compared by ring in constant time, so neither where they differ nor the
/// secret's length shows in how long the answer takes.
pub(crate) fn same_secret(expected: &str, given: &str) -> bool {
    static KEY: std::sync::LazyLock<Option<ring::hmac::Key>> = std::sync::LazyLock::new(|| {
        ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()).ok()
    });
    // Without randomness for a key (it never happens on a running system), nothing
    // matches: failing closed is better than a comparison that leaks.
    let Some(key) = KEY.as_ref() else { return false };
    let tag = ring::hmac::sign(key, expected.as_bytes());
    ring::hmac::verify(key, given.as_bytes(), tag.as_ref()).is_ok()
}

/// A word from the client as a numeric parameter: never empty, never with a space.
pub(crate) fn wire_param(text: &str) -> String {
    let word: String = text.chars().filter(|c| !c.is_whitespace() && !c.is_control()).take(64).collect();
    if word.is_empty() {
        "*".to_owned()
    } else {
        word
    }
}

/// What the server says about itself to IRC clients, built once at start.
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) network: String,
    pub(crate) motd: Option<String>,
    pub(crate) admin: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) opers: Vec<crate::config::Oper>,
    pub(crate) started: Timestamp,
    /// The `005` tokens, a line's worth each.
    pub(crate) isupport: Vec<Vec<String>>,
    pub(crate) max_nick: usize,
    /// The most channels of one JOIN or PART: as many as a session may be in.
    pub(crate) max_join_targets: usize,
    /// The channels every client joins once registered (`[irc] autojoin`).
    pub(crate) autojoin: Vec<String>,
    /// Failed `OPER`s that close a connection, and the wait after the first.
    pub(crate) max_oper_failures: u32,
    pub(crate) oper_retry: std::time::Duration,
}

impl Identity {
    pub(crate) fn new(irc: &crate::config::Irc, limits: &crate::config::Limits) -> Identity {
        let tokens = vec![
            format!("AWAYLEN={}", parley_hub::MAX_REASON),
            format!(
                "CASEMAPPING={}",
                match parley_hub::case_mapping() {
                    parley_hub::CaseMapping::Precis => "rfc8265",
                    parley_hub::CaseMapping::Ascii => "ascii",
                }
            ),
            format!("CHANLIMIT=#:{}", limits.max_rooms_per_session),
            "CHANMODES=b,k,l,imnpst".to_owned(),
            format!("CHANNELLEN={}", limits.max_room_len + 1),
            "CHANTYPES=#".to_owned(),
            format!("CHATHISTORY={}", parley_hub::MAX_HISTORY_PAGE),
            "ELIST=MNU".to_owned(),
            format!("KICKLEN={}", parley_hub::MAX_REASON),
            "MODES=4".to_owned(),
            format!("MONITOR={}", limits.max_watched_nicks),
            "MSGREFTYPES=msgid,timestamp".to_owned(),
            format!("NETWORK={}", irc.network),
            format!("NICKLEN={}", limits.max_nick_len),
            "PREFIX=(ov)@+".to_owned(),
            "STATUSMSG=@+".to_owned(),
            format!(
                "TARGMAX=JOIN:{join},PART:{join},PRIVMSG:{privmsg},NOTICE:{privmsg},NAMES:{names},WHOIS:{privmsg},KICK:{kick},LIST:",
                join = limits.max_rooms_per_session,
                privmsg = commands::MAX_TARGETS,
                names = commands::MAX_NAMES,
                kick = commands::MAX_KICKS,
            ),
            format!("TOPICLEN={}", parley_hub::MAX_REASON),
            format!("USERLEN={}", crate::hosts::USERLEN),
            "UTF8ONLY".to_owned(),
            "WHOX".to_owned(),
        ];
        Identity {
            name: irc.server_name.clone(),
            network: irc.network.clone(),
            motd: irc.motd.clone(),
            admin: irc.admin.clone(),
            password: irc.password.clone(),
            opers: irc.opers.clone(),
            started: chrono::Utc::now(),
            isupport: tokens.chunks(12).map(<[String]>::to_vec).collect(),
            max_nick: limits.max_nick_len,
            max_join_targets: limits.max_rooms_per_session,
            autojoin: irc.autojoin.clone(),
            max_oper_failures: limits.max_oper_failures,
            oper_retry: limits.oper_retry(),
        }
    }
}

/// What an answer from the hub answers: recorded by the reader under the request's id,
/// so the wire can write the numerics that command expects.
#[derive(Debug, Clone, Default)]
pub(crate) enum Context {
    /// Nothing particular (registration, or a command answered by an event).
    #[default]
    None,
    Join {
        channel: String,
    },
    Part {
        channel: String,
        reason: Option<String>,
    },
    Privmsg {
        target: String,
    },
    Names {
        channel: String,
    },
    Who {
        mask: String,
        whox: Option<commands::Whox>,
    },
    WhoNick {
        mask: String,
        whox: Option<commands::Whox>,
    },
    Whois {
        nick: String,
    },
    Topic {
        channel: String,
    },
    List {
        filter: commands::ListFilter,
    },
    /// A mode query (`letter` `?`), the ban list (`b` without a `target`), or changes.
    Mode {
        channel: String,
        letter: char,
        target: String,
    },
    Kick {
        channel: String,
    },
    Invite {
        channel: String,
    },
    Nick,
    Away,
    Lusers,
    ChatHistory {
        sub: String,
        target: String,
    },
    Redact {
        channel: String,
        msgid: String,
    },
    MarkRead {
        target: String,
    },
    Oper,
    /// One nick of a `USERHOST` or `ISON`, whose answers are gathered into one reply
    /// once the `last` is in.
    Presence {
        ison: bool,
        last: bool,
    },
    /// `WHO mask` (not a channel), asked of each channel the client is in: who matches
    /// is gathered until the `last` answer.
    WhoMask {
        mask: String,
        opers: bool,
        whox: Option<commands::Whox>,
        last: bool,
    },
    /// `SETNAME`: the new real name, echoed once recorded.
    Setname {
        realname: String,
    },
    /// `MODE nick` for someone else: whether they exist decides the numeric.
    UserMode {
        nick: String,
    },
    Quit {
        reason: Option<String>,
    },
}

impl Context {
    /// The channel the command was about, for numerics that name it.
    fn channel(&self) -> Option<&str> {
        match self {
            Context::Join { channel }
            | Context::Part { channel, .. }
            | Context::Names { channel }
            | Context::Topic { channel }
            | Context::Mode { channel, .. }
            | Context::Kick { channel }
            | Context::Invite { channel } => Some(channel),
            Context::Privmsg { target } if target.starts_with('#') => Some(target),
            _ => None,
        }
    }

    /// The IRC command, for standard replies (`FAIL COMMAND ...`).
    fn command(&self) -> &'static str {
        match self {
            Context::None => "*",
            Context::Join { .. } => "JOIN",
            Context::Part { .. } => "PART",
            Context::Privmsg { .. } => "PRIVMSG",
            Context::Names { .. } => "NAMES",
            Context::Who { .. } | Context::WhoNick { .. } | Context::WhoMask { .. } => "WHO",
            Context::Whois { .. } => "WHOIS",
            Context::Topic { .. } => "TOPIC",
            Context::List { .. } => "LIST",
            Context::Mode { .. } => "MODE",
            Context::Kick { .. } => "KICK",
            Context::Invite { .. } => "INVITE",
            Context::Nick => "NICK",
            Context::Away => "AWAY",
            Context::Lusers => "LUSERS",
            Context::ChatHistory { .. } => "CHATHISTORY",
            Context::Redact { .. } => "REDACT",
            Context::MarkRead { .. } => "MARKREAD",
            Context::Oper => "OPER",
            Context::UserMode { .. } => "MODE",
            Context::Setname { .. } => "SETNAME",
            Context::Presence { ison: true, .. } => "ISON",
            Context::Presence { ison: false, .. } => "USERHOST",
            Context::Quit { .. } => "QUIT",
        }
    }
}

/// What one connection's reader and wire share.
pub(crate) struct Link {
    pub(crate) caps: caps::Caps,
    pub(crate) server: Arc<Identity>,
    next_request: AtomicU64,
    /// The client is an IRC operator (user mode `+o`), since a successful `OPER`.
    oper: AtomicBool,
    /// The address it connects from, which WHOX shows it of itself.
    address: Option<std::net::IpAddr>,
    /// The rest, under one lock: every critical section is a single assignment or
    /// lookup, and one mutex over them all is a third of the size of one for each
    /// (an idle connection's memory is a tracked figure: docs/BENCHMARKS.md).
    state: Mutex<LinkState>,
}

/// What the reader and the wire share, besides the atomics.
struct LinkState {
    /// The client's nick as it knows it.
    me: String,
    /// The account it is logged in to, for `account-tag` on its echoed messages.
    account: Option<Nick>,
    /// The real name it gave with `USER`, for its own JOINs with `extended-join`.
    realname: String,
    /// Its user name (`*` until `USER`) and host, as the hub is given them.
    userhost: Arc<Userhost>,
    /// The channels the client is in, in the order it joined them, as the hub's
    /// answers and events tell them (for `JOIN 0` and `WHO mask`).
    channels: Vec<RoomName>,
    /// Requests in flight and what their answers gather; made by the first request and
    /// freed once nothing is in flight, so that an idle connection keeps no tables.
    in_flight: Option<Box<InFlight>>,
}

/// What a link keeps only while requests are in flight.
#[derive(Default)]
struct InFlight {
    /// Contexts of requests not answered yet, in the order of their ids: answers come
    /// in the order of the requests, so the one answered is nearly always the first.
    pending: VecDeque<(u64, Context)>,
    /// How the answers of labeled requests not answered yet are framed, by request id
    /// (`labeled-response`).
    framings: Vec<(u64, labels::Framing)>,
    /// The `labeled-response` batches the client has been told of and not told the end
    /// of (a labeled answer in several parts opens its batch with its first line).
    open_batches: Vec<String>,
    /// The answers of a `USERHOST` or `ISON` gathered so far.
    gathered: Vec<String>,
    /// The members a `WHO mask` found so far, with the channel each was found in.
    found: Vec<(RoomName, Member)>,
}

impl InFlight {
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
            && self.framings.is_empty()
            && self.open_batches.is_empty()
            && self.gathered.is_empty()
            && self.found.is_empty()
    }
}

impl LinkState {
    /// The tables of requests in flight, made when first needed.
    fn in_flight(&mut self) -> &mut InFlight {
        self.in_flight.get_or_insert_with(Box::default)
    }

    /// Frees the tables once nothing is in flight (their capacity would stay).
    fn settle(&mut self) {
        if self.in_flight.as_ref().is_some_and(|in_flight| in_flight.is_empty()) {
            self.in_flight = None;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single assignment or map operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    pub(crate) fn new(server: Arc<Identity>, address: Option<std::net::IpAddr>, host: &str) -> Link {
        Link {
            caps: caps::Caps::default(),
            server,
            next_request: AtomicU64::new(1),
            oper: AtomicBool::new(false),
            address,
            state: Mutex::new(LinkState {
                me: "*".to_owned(),
                account: None,
                realname: String::new(),
                userhost: Userhost::new("*", host),
                channels: Vec::new(),
                in_flight: None,
            }),
        }
    }

    /// The address the client connects from.
    pub(crate) fn address(&self) -> Option<std::net::IpAddr> {
        self.address
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        lock(&self.state)
    }

    pub(crate) fn me(&self) -> String {
        self.state().me.clone()
    }

    pub(crate) fn set_me(&self, nick: &str) {
        nick.clone_into(&mut self.state().me);
    }

    /// The client's user name and host.
    pub(crate) fn userhost(&self) -> Arc<Userhost> {
        self.state().userhost.clone()
    }

    /// The client's user name, from `USER` (already made valid).
    pub(crate) fn set_user(&self, user: &str) {
        let mut state = self.state();
        state.userhost = Userhost::new(user, &state.userhost.host);
    }

    /// The client's own `nick!user@host`, as it is now.
    pub(crate) fn source(&self) -> String {
        source_str(&self.me(), &self.userhost())
    }

    /// The user modes the client has: `+i` always, `+o` once it is an operator.
    pub(crate) fn user_modes(&self) -> &'static str {
        if self.oper.load(Ordering::Acquire) {
            "+io"
        } else {
            "+i"
        }
    }

    /// The channels the client is in.
    pub(crate) fn channels(&self) -> Vec<RoomName> {
        self.state().channels.clone()
    }

    /// Whether the client is in `room`.
    pub(crate) fn in_channel(&self, room: &str) -> bool {
        RoomName::parse(room, usize::MAX).is_ok_and(|room| self.state().channels.contains(&room))
    }

    fn entered(&self, room: &RoomName) {
        let channels = &mut self.state().channels;
        if !channels.contains(room) {
            channels.push(room.clone());
        }
    }

    fn left(&self, room: &RoomName) {
        self.state().channels.retain(|r| r != room);
    }

    pub(crate) fn set_realname(&self, realname: &str) {
        realname.clone_into(&mut self.state().realname);
    }

    /// The real name the client gave with `USER` (or `SETNAME`).
    pub(crate) fn realname(&self) -> String {
        self.state().realname.clone()
    }

    pub(crate) fn account(&self) -> Option<Nick> {
        self.state().account.clone()
    }

    pub(crate) fn set_account(&self, account: Option<Nick>) {
        self.state().account = account;
    }

    /// A request id for `context`, remembered until its answer is encoded.
    pub(crate) fn expect(&self, context: Context) -> RequestId {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        self.state().in_flight().pending.push_back((id, context));
        RequestId(id)
    }

    /// [`Link::expect`] for a part of a labeled line's answer, framed as `framing` says.
    fn expect_framed(&self, context: Context, framing: Option<labels::Framing>) -> RequestId {
        let req = self.expect(context);
        if let Some(framing) = framing {
            self.state().in_flight().framings.push((req.0, framing));
        }
        req
    }

    /// How the answer to a request is framed, when it answers a labeled line (even if
    /// the client has turned the capability off since: a part carries lines of its own).
    fn framing(&self, id: u64) -> Option<labels::Framing> {
        let state = self.state();
        let framings = state.in_flight.as_ref().map(|in_flight| &in_flight.framings);
        framings?.iter().find(|(req, _)| *req == id).map(|(_, framing)| framing.clone())
    }

    /// A new batch reference for a labeled answer, unique on this connection (drawn from
    /// the request ids; a playback batch is named `h` after its request).
    fn batch_ref(&self) -> String {
        format!("l{}", self.next_request.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether the client has been told the batch `batch` opened.
    fn batch_open(&self, batch: &str) -> bool {
        let state = self.state();
        state.in_flight.as_ref().is_some_and(|in_flight| in_flight.open_batches.iter().any(|b| b == batch))
    }

    /// The client was told the batch `batch` opened, or (`open` false) ended.
    fn set_batch_open(&self, batch: &str, open: bool) {
        let mut state = self.state();
        let batches = &mut state.in_flight().open_batches;
        batches.retain(|b| b != batch);
        if open {
            batches.push(batch.to_owned());
        } else if batches.is_empty() {
            *batches = Vec::new();
        }
        state.settle();
    }

    /// The context of a request, while it is being answered.
    fn context(&self, id: u64) -> Context {
        let state = self.state();
        let pending = state.in_flight.as_ref().map(|in_flight| &in_flight.pending);
        pending
            .and_then(|p| p.iter().find(|(req, _)| *req == id))
            .map(|(_, context)| context.clone())
            .unwrap_or_default()
    }

    /// Forgets a request's context once its answer has been given.
    fn answered(&self, id: u64) {
        let mut state = self.state();
        let Some(in_flight) = state.in_flight.as_mut() else { return };
        if let Some(at) = in_flight.pending.iter().position(|(req, _)| *req == id) {
            in_flight.pending.remove(at);
        }
        if let Some(at) = in_flight.framings.iter().position(|(req, _)| *req == id) {
            in_flight.framings.swap_remove(at);
        }
        // An idle connection keeps no tables: a queue keeps its capacity when emptied,
        // and a few requests at once (registration's) would leave one in every session.
        state.settle();
    }

    /// The client was told its nick changed (a rename by the server, or a login).
    fn renamed(&self, old: &Nick, new: &Nick) {
        let me = &mut self.state().me;
        if old.as_str().eq_ignore_ascii_case(me) {
            *me = new.to_string();
        }
    }

    /// One answer of a `USERHOST` or `ISON` in progress.
    fn gather(&self, item: String) {
        self.state().in_flight().gathered.push(item);
    }

    /// The answers of a `USERHOST` or `ISON`, now that the last is in.
    fn take_gathered(&self) -> Vec<String> {
        let mut state = self.state();
        let gathered = state.in_flight.as_mut().map(|in_flight| std::mem::take(&mut in_flight.gathered));
        state.settle();
        gathered.unwrap_or_default()
    }

    /// Adds the members of `room` that a `WHO mask` matches and has not found yet.
    fn find(&self, room: &RoomName, members: impl Iterator<Item = Member>) {
        let mut state = self.state();
        let found = &mut state.in_flight().found;
        for member in members {
            if !found.iter().any(|(_, m)| m.nick == member.nick) {
                found.push((room.clone(), member));
            }
        }
    }

    /// What a `WHO mask` found, now that the last channel's members are in.
    fn take_found(&self) -> Vec<(RoomName, Member)> {
        let mut state = self.state();
        let found = state.in_flight.as_mut().map(|in_flight| std::mem::take(&mut in_flight.found));
        state.settle();
        found.unwrap_or_default()
    }
}

/// IRC, for the connection driver.
pub(crate) struct Irc {
    link: Arc<Link>,
    input: commands::Input,
    /// What registration has gathered; boxed, and gone once registered, so that a
    /// session does not carry it in its task for its whole life.
    pending: Option<Box<register::Pending>>,
    /// Made at the first `OPER`: nearly no connection ever sends one.
    oper: Option<Box<oper::OperPacing>>,
}

impl Protocol for Irc {
    type Input = commands::Read;
    const PINGS: bool = true;
    const LOBBY: bool = false;

    fn new(peer: SocketAddr, shared: &Shared) -> Irc {
        Irc {
            link: Arc::new(Link::new(shared.irc.clone(), Some(peer.ip()), &shared.hosts.host(Some(peer.ip())))),
            input: commands::Input::new(),
            pending: None,
            oper: None,
        }
    }

    fn wire(&self) -> Box<dyn parley_hub::Wire> {
        Box::new(wire::IrcWire { link: self.link.clone() })
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Option<commands::Read> {
        self.input.decode(buf, &self.link)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<commands::Read> {
        self.input.decode_eof(buf, &self.link)
    }

    async fn register(&mut self, read: commands::Read, out: &mut BytesMut, shared: &Shared) -> Dialogue {
        let pending = self.pending.get_or_insert_default();
        register::step(read, pending, &self.link, out, shared).await
    }

    fn refused(&mut self, error: &HubError, out: &mut BytesMut) -> bool {
        register::refused(error, self.pending.get_or_insert_default(), &self.link, out)
    }

    /// The real name, then the channels of `[irc] autojoin`, each joined as the
    /// client's own `JOIN` would be: after the welcome, with its JOIN, 353 and 366.
    fn registered(&mut self) -> Vec<(RequestId, Command)> {
        let realname = self.pending.take().map(|mut pending| pending.take_realname()).unwrap_or_default();
        let mut commands = vec![(self.link.expect(Context::None), Command::Describe { realname })];
        for channel in &self.link.server.autojoin {
            let context = Context::Join { channel: channel.clone() };
            let room = channel.trim_start_matches('#').to_owned();
            commands.push((self.link.expect(context), Command::Join { room, exclusive: false, key: None }));
        }
        commands
    }

    fn userhost(&self) -> Option<Arc<Userhost>> {
        Some(self.link.userhost())
    }

    async fn handle(&mut self, read: commands::Read, turn: &mut Turn<'_>) -> Result<(), ReadEnd> {
        commands::handle(read, turn, &self.link, &mut self.oper).await
    }

    fn ping(&self) -> Option<Bytes> {
        Some(format!("PING :{}\r\n", self.link.server.name).into())
    }

    fn farewell(&self, why: Farewell) -> Option<Bytes> {
        let why = match why {
            Farewell::NotTls => return Some(Bytes::from_static(b"ERROR :This port speaks plain IRC, not TLS\r\n")),
            Farewell::Shutdown => "Server is shutting down",
            Farewell::HandshakeTimeout => "Registration timed out",
            Farewell::Flood => "Excess Flood",
            Farewell::PingTimeout => "Ping timeout",
        };
        Some(commands::closing(&self.link, why))
    }

    /// What a refused connection reads before it is closed.
    fn refusal(why: Refusal) -> Bytes {
        format!("ERROR :Closing link: {why}\r\n").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("hunter2", "hunter2"));
        assert!(!same_secret("hunter2", "hunter"));
        assert!(!same_secret("hunter2", "hunter22"));
        assert!(!same_secret("hunter2", "Hunter2"));
        assert!(!same_secret("hunter2", ""));
        assert!(same_secret("", ""));
        assert!(same_secret("pässwörd 🔑", "pässwörd 🔑"));
    }

    /// An idle connection's link holds no tables: they are made by the first request
    /// and freed once nothing is in flight or gathered.
    #[test]
    fn an_idle_link_keeps_no_tables() {
        let config = crate::Config::default();
        let limits = Arc::new(config.limits.clone());
        let link = Link::new(Arc::new(Identity::new(&config.irc, &limits)), None, "host");
        assert!(link.state().in_flight.is_none());
        let (first, second) = (link.expect(Context::default()), link.expect(Context::default()));
        link.gather("ada=+ada@host".to_owned());
        link.set_batch_open("l1", true);
        link.answered(first.0);
        link.answered(second.0);
        assert!(link.state().in_flight.is_some(), "a gathered answer and an open batch are still held");
        assert_eq!(link.take_gathered(), vec!["ada=+ada@host".to_owned()]);
        assert!(link.batch_open("l1"));
        link.set_batch_open("l1", false);
        assert!(link.state().in_flight.is_none(), "nothing in flight: no tables");
    }
}
