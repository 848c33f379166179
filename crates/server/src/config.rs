//! The server's configuration: a TOML file, command-line flags on top, and documented
//! defaults for everything, so `parley serve` runs with no file at all.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest a connection's handshake or idle deadline may be set to, in seconds.
const A_DAY_SECS: u64 = 86_400;

/// Everything `parley serve` can be told. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the server keeps everything it writes. Default: `parley-data` in the
    /// working directory.
    pub data_dir: PathBuf,
    /// The log filter when `RUST_LOG` is not set (`error`, `warn`, `info`, `debug`,
    /// `trace`, or a tracing filter directive). Default: `info`.
    pub log_level: String,
    /// How log lines look: `text` (for people; coloured only on a terminal) or `json`
    /// (one JSON object per line, for log collectors). Default: `text`.
    pub log_format: LogFormat,
    /// Threads that run connections and the hub; 0 means one per CPU core. On a machine
    /// shared with other busy programs (or a load generator), 1 spends the least CPU per
    /// message: no thread hands work to another. Default: 0.
    pub threads: usize,
    /// The listeners. Default: plain line, native, IRC and web on loopback only
    /// (127.0.0.1:7777, 127.0.0.1:7778, 127.0.0.1:6667, 127.0.0.1:8080), and the same
    /// over TLS on every interface (0.0.0.0:7779, 0.0.0.0:7780, 0.0.0.0:6697,
    /// 0.0.0.0:8443); and metrics on loopback only (127.0.0.1:9898).
    #[serde(rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Allow plain-text listeners on addresses other than loopback, where anyone on the
    /// network can read the traffic. Default: false.
    pub allow_plain_remote: bool,
    /// The TLS certificate, for listeners with `tls = true`.
    pub tls: TlsFiles,
    /// What history is kept, and for how long.
    pub history: History,
    /// Where history, accounts and moderation are kept: SQLite in `data_dir`, or
    /// PostgreSQL.
    pub database: Database,
    /// The IRC gateway: the server's name, operators, an optional connection password.
    pub irc: Irc,
    /// Limits that protect the server and its users.
    pub limits: Limits,
    /// File sharing over the native protocol: whether it is on, and its limits.
    pub files: Files,
    /// How nicks, account names and room names are compared.
    pub names: Names,
    /// The HTTP gateway (`web` listeners): which pages may open its WebSockets, and
    /// which reverse proxies are believed about the client's address.
    pub web: Web,
    /// Cluster mode: several servers sharing rooms through NATS JetStream and one
    /// PostgreSQL database. Off unless `servers` lists NATS servers.
    pub cluster: Cluster,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("parley-data"),
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            threads: 0,
            listeners: vec![
                Listener::new(ListenerKind::Line, false, "127.0.0.1:7777"),
                Listener::new(ListenerKind::Native, false, "127.0.0.1:7778"),
                Listener::new(ListenerKind::Line, true, "0.0.0.0:7779"),
                Listener::new(ListenerKind::Native, true, "0.0.0.0:7780"),
                Listener::new(ListenerKind::Irc, false, "127.0.0.1:6667"),
                Listener::new(ListenerKind::Irc, true, "0.0.0.0:6697"),
                Listener::new(ListenerKind::Web, false, "127.0.0.1:8080"),
                Listener::new(ListenerKind::Web, true, "0.0.0.0:8443"),
                Listener::new(ListenerKind::Metrics, false, "127.0.0.1:9898"),
            ],
            allow_plain_remote: false,
            tls: TlsFiles::default(),
            history: History::default(),
            database: Database::default(),
            irc: Irc::default(),
            limits: Limits::default(),
            files: Files::default(),
            web: Web::default(),
            names: Names::default(),
            cluster: Cluster::default(),
        }
    }
}

/// Names: which letters nicks, accounts and rooms may use, and when two are the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Names {
    /// `precis`: letters and digits of any script (`José`, `Zoë`, `李雷`), compared as
    /// RFC 8265 says (case, width and composition do not matter), and a new name that
    /// looks like one in use (Cyrillic `аlice` for `alice`) is refused as taken. IRC
    /// clients are told `CASEMAPPING=rfc8265`. `ascii`: ASCII letters only, compared
    /// without ASCII case (`CASEMAPPING=ascii`), for networks whose clients or bots
    /// expect it. Names are stored by the same key either way for ASCII names, so a
    /// server may switch; names with other letters stop loading under `ascii`.
    /// Default: `precis`.
    pub casemapping: CaseMapping,
}

/// See [`Names::casemapping`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseMapping {
    /// RFC 8265 (PRECIS UsernameCaseMapped).
    #[default]
    Precis,
    /// ASCII letters only.
    Ascii,
}

impl CaseMapping {
    /// The hub's name for it.
    #[must_use]
    pub fn hub(self) -> parley_hub::CaseMapping {
        match self {
            CaseMapping::Precis => parley_hub::CaseMapping::Precis,
            CaseMapping::Ascii => parley_hub::CaseMapping::Ascii,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people to read.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ConfigError::Invalid(format!("the log format is text or json, not {other:?}"))),
        }
    }
}

/// The HTTP gateway: the browser client, `/ws`, `/irc` and `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Web {
    /// Origins (`https://chat.example.org`, scheme and host and port as a browser sends
    /// them) whose pages may open `/ws` and `/irc`, besides the server's own: a page
    /// is always allowed on the host it was loaded from. A browser's upgrade from any
    /// other origin is refused (403). Default: none.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`, `::1`) whose
    /// `X-Forwarded-For` header is believed: a request from one of them is taken to
    /// come from the address the proxy names. From anyone else the header is ignored.
    /// Default: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// File sharing (`/send`, `/get`): files are kept in `data_dir/files/`, named by their
/// SHA-256, and only while an upload checks out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    /// Accept uploads and serve downloads. Default: true.
    pub enabled: bool,
    /// The largest file one upload may carry, in bytes. Default: 104857600 (100 MiB).
    pub max_file_bytes: u64,
    /// The most bytes of files one user may have shared: a logged-in user's account, or,
    /// for guests, everyone from one address (an IPv4 address or an IPv6 /64) together;
    /// 0 means no limit. Default: 1073741824 (1 GiB).
    pub quota_bytes: u64,
}

impl Default for Files {
    fn default() -> Self {
        Self { enabled: true, max_file_bytes: 100 << 20, quota_bytes: 1 << 30 }
    }
}

/// The database: by default the embedded SQLite file `data_dir/parley.db`, which needs no
/// setup; or a PostgreSQL database, for history that lives on a database server (and,
/// later, is shared by several nodes). Shared files stay in `data_dir/files/` either way.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// A PostgreSQL connection URL, `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (or a
    /// `key=value` connection string); the database must exist, and its schema is
    /// created on the first start. Unset keeps everything in SQLite. The connection is
    /// not encrypted (`sslmode=require` is refused): use a local or private network.
    /// Default: unset.
    pub url: Option<String>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        let url = self.url.as_deref().map(parley_store::redacted);
        f.debug_struct("Database").field("url", &url).finish()
    }
}

/// Cluster mode (docs/ARCHITECTURE.md, "Cluster mode"): every node connects to the same
/// NATS servers (with JetStream) and the same PostgreSQL database ([`Database`]); each
/// room's messages are numbered and ordered by a replicated stream, so every node
/// delivers them in the same order, and a nick is held by one session in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// The NATS servers to connect to, `nats://HOST:PORT`: any of them will do, the
    /// client finds the others. Empty: this server runs alone. Default: empty.
    pub servers: Vec<String>,
    /// This node's name, unique in the cluster (letters, digits, `-` and `_`, at most
    /// 64): it tells the nodes' messages and nick claims apart. Empty: the machine's
    /// host name. Default: empty.
    pub node: String,
    /// How many NATS servers keep a copy of each message and nick: 3 with a cluster of
    /// 3 NATS servers (a message is confirmed once 2 have it, and one may be lost), 1
    /// with a single NATS server. Default: 3.
    pub replicas: usize,
    /// Where clients can reach every node of the cluster, told in the `welcome` to
    /// native and browser clients when they connect, so they can move to another node
    /// when theirs goes away: `HOST:PORT` of each node's native listener (for `parley
    /// chat`) and `https://HOST` (or `http://`) of its web listener (for browsers, whose
    /// page policy then allows those nodes' WebSockets). Default: empty.
    pub nodes: Vec<String>,
    /// Hours the cluster's log keeps each message: a node that starts again (or catches
    /// up after an outage) reads the log from where its store stopped, which must still
    /// be kept. Every message is in the shared database too. Default: 24.
    pub retain_hours: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self { servers: Vec::new(), node: String::new(), replicas: 3, nodes: Vec::new(), retain_hours: 24 }
    }
}

impl Cluster {
    /// Whether this server is a node of a cluster.
    #[must_use]
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// This node's name: the configured one, or the machine's host name.
    #[must_use]
    pub fn node_name(&self) -> String {
        if !self.node.is_empty() {
            return self.node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let host: String = host.trim().chars().map(|c| if valid_node_char(c) { c } else { '-' }).take(64).collect();
        if host.is_empty() {
            "parley".to_owned()
        } else {
            host
        }
    }
}

fn valid_node_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_')
}

/// History: every room and private message, kept in the database (see [`Database`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// Keep history in the database. When false, rooms remember their latest messages only while
    /// the server runs, and a restart forgets everything. Default: true.
    pub store: bool,
    /// How many of a room's latest messages a user gets on joining it. Default: 50.
    pub on_join: usize,
    /// Delete messages older than this many days; 0 keeps them forever. Default: 0.
    pub max_age_days: u64,
    /// Keep at most this many messages per room; 0 keeps them all. Default: 0.
    pub max_per_room: u64,
    /// Flush every batch to the disk itself, so that history survives a power cut or an
    /// operating system crash, not only the server being killed. Costs a disk flush per
    /// batch of messages. SQLite only: PostgreSQL's own `synchronous_commit` decides
    /// there (on by default: every commit is flushed). Default: false.
    pub sync_full: bool,
}

impl Default for History {
    fn default() -> Self {
        Self { store: true, on_join: 50, max_age_days: 0, max_per_room: 0, sync_full: false }
    }
}

impl History {
    /// The store's retention rules.
    #[must_use]
    pub fn retention(&self) -> parley_store::Retention {
        parley_store::Retention {
            max_age: (self.max_age_days > 0).then(|| Duration::from_secs(self.max_age_days.saturating_mul(86_400))),
            max_per_room: (self.max_per_room > 0).then_some(self.max_per_room),
            sync_full: self.sync_full,
        }
    }
}

/// The IRC gateway's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Irc {
    /// The server's name: the source of its messages, in `004`, `WHOIS` and `LINKS`.
    /// Default: `parley.local`.
    pub server_name: String,
    /// The network's name, in `005 NETWORK=` and the welcome. Default: `Parley`.
    pub network: String,
    /// A password every IRC client must give with `PASS` before registering (`464`
    /// otherwise). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The message of the day, shown after registering (and by `MOTD`); none sends
    /// `422`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motd: Option<String>,
    /// How to reach whoever runs the server (an e-mail address, a URL), as `ADMIN`
    /// shows it. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// IRC operators (`OPER NAME PASSWORD`), who become server administrators for
    /// their session. Default: none.
    #[serde(rename = "oper", skip_serializing_if = "Vec::is_empty")]
    pub opers: Vec<Oper>,
    /// Channels every IRC client is joined to once registered, after the welcome (as
    /// if it had sent `JOIN`), such as `["#lobby"]`. IRC clients choose their own
    /// channels (and have autojoin lists of their own), so none by default: an IRC user
    /// meets the line protocol's users with `/join #lobby`. Default: none.
    pub autojoin: Vec<String>,
    /// The host every user shows in `nick!user@host`, on IRC and to IRC clients, for
    /// users of every gateway: `cloak` (a keyed hash of the address, such as
    /// `a1b2c3d4.e5f6a7b8.IP`, with the key in `data_dir/keys/cloak.key`), `ip` (the address
    /// itself) or `fixed` (the server's name). Operators see real addresses in WHOIS
    /// whatever this says. Default: `cloak`.
    pub hosts: Hosts,
}

/// See [`Irc::hosts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hosts {
    /// A keyed hash of the address.
    #[default]
    Cloak,
    /// The address.
    Ip,
    /// The server's name.
    Fixed,
}

impl Default for Irc {
    fn default() -> Self {
        Self {
            server_name: "parley.local".to_owned(),
            network: "Parley".to_owned(),
            password: None,
            motd: None,
            admin: None,
            opers: Vec::new(),
            autojoin: Vec::new(),
            hosts: Hosts::Cloak,
        }
    }
}

/// An IRC operator's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Oper {
    /// The name given to `OPER`.
    pub name: String,
    /// The password given to `OPER`.
    pub password: String,
}

impl FromStr for Oper {
    type Err = ConfigError;

    /// Parses `NAME:PASSWORD`, as given to `--oper`.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.split_once(':') {
            Some((name, password)) if !name.is_empty() && !password.is_empty() => {
                Ok(Oper { name: name.to_owned(), password: password.to_owned() })
            }
            _ => Err(ConfigError::Invalid(format!("--oper takes NAME:PASSWORD, not {s:?}"))),
        }
    }
}

/// The TLS certificate and key, as PEM files. When neither is set, the server generates
/// a self-signed certificate in `data_dir/tls/` on its first start and reuses it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (e.g. Let's Encrypt's `fullchain.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key (e.g. Let's Encrypt's `privkey.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// One listening socket and the protocol spoken on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// The protocol: `line`, `native`, `irc`, `web` or `metrics`.
    pub kind: ListenerKind,
    /// Whether the protocol runs inside TLS. Default: false.
    #[serde(default)]
    pub tls: bool,
    /// Where to listen, `IP:PORT` or `HOST:PORT`; port 0 picks a free port.
    pub addr: String,
    /// Every connection starts with a PROXY protocol header (version 1 or 2), sent by
    /// a load balancer or reverse proxy in front of the server, which names the
    /// client's own address; a connection without one is closed. Only for listeners
    /// that nothing but the proxy can reach. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_protocol: bool,
}

impl Listener {
    /// A listener of `kind` on `addr`, without the PROXY protocol.
    #[must_use]
    pub fn new(kind: ListenerKind, tls: bool, addr: &str) -> Listener {
        Listener { kind, tls, addr: addr.to_owned(), proxy_protocol: false }
    }

    /// The listener's kind as written in `--listen` and in `listening` lines, e.g.
    /// `native+tls`.
    #[must_use]
    pub fn label(&self) -> String {
        label(self.kind, self.tls)
    }
}

/// A listener's label: its kind, with `+tls` when it runs inside TLS.
#[must_use]
pub fn label(kind: ListenerKind, tls: bool) -> String {
    if tls {
        format!("{kind}+tls")
    } else {
        kind.to_string()
    }
}

/// The protocols a listener can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// The classic line protocol (`nc`, `telnet`).
    Line,
    /// The framed native protocol (`parley chat`).
    Native,
    /// IRC (irssi, WeeChat, HexChat, bots).
    Irc,
    /// HTTP: the browser client, the native protocol and IRC over WebSocket (`/ws`,
    /// `/irc`), and `/healthz`.
    Web,
    /// HTTP: `/metrics` in the Prometheus text format, and nothing else.
    Metrics,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Line => "line",
            ListenerKind::Native => "native",
            ListenerKind::Irc => "irc",
            ListenerKind::Web => "web",
            ListenerKind::Metrics => "metrics",
        })
    }
}

impl FromStr for ListenerKind {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "line" => Ok(ListenerKind::Line),
            "native" => Ok(ListenerKind::Native),
            "irc" => Ok(ListenerKind::Irc),
            "web" => Ok(ListenerKind::Web),
            "metrics" => Ok(ListenerKind::Metrics),
            other => Err(ConfigError::UnknownKind(other.to_owned())),
        }
    }
}

impl FromStr for Listener {
    type Err = ConfigError;

    /// Parses `KIND=ADDR` or `KIND+tls=ADDR`, as given to `--listen`, optionally
    /// followed by `,proxy` for a listener behind a proxy that speaks the PROXY
    /// protocol.
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let Some((kind, addr)) = s.split_once('=') else {
            return Err(ConfigError::BadListen(s.to_owned()));
        };
        let (addr, proxy_protocol) = match addr.strip_suffix(",proxy") {
            Some(addr) => (addr, true),
            None => (addr, false),
        };
        if addr.is_empty() || addr.contains(',') {
            return Err(ConfigError::BadListen(s.to_owned()));
        }
        let (kind, tls) = match kind.strip_suffix("+tls") {
            Some(kind) => (kind, true),
            None => (kind, false),
        };
        Ok(Listener { kind: kind.parse()?, tls, addr: addr.to_owned(), proxy_protocol })
    }
}

/// The server's limits. Each one bounds what a peer can make the server hold or do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The longest line the line protocol accepts, in bytes. Default: 4096.
    pub max_line_bytes: usize,
    /// The longest native frame header, in bytes (at most 65535). Default: 16384.
    pub max_frame_header: usize,
    /// The largest native frame payload, in bytes. Default: 1048576 (1 MiB).
    pub max_frame_payload: usize,
    /// The longest message text, in bytes. Default: 4096.
    pub max_message_bytes: usize,
    /// The longest nick, in characters. Default: 32.
    pub max_nick_len: usize,
    /// The longest room name, in characters. Default: 32.
    pub max_room_len: usize,
    /// The most output queued for one session before it is disconnected as a slow
    /// consumer, in bytes. Default: 1048576 (1 MiB).
    pub send_queue_bytes: usize,
    /// The most rooms one session may be in at once. Default: 20.
    pub max_rooms_per_session: usize,
    /// How long a new connection has to finish its TLS handshake and choose a name (line)
    /// or say hello (native), in seconds, at most a day. Default: 30.
    pub handshake_timeout_secs: u64,
    /// Native protocol: after this many seconds without a frame from the client, the
    /// server sends it a `ping`. Default: 60.
    pub idle_ping_secs: u64,
    /// Native protocol: after this many seconds without a frame from the client, the
    /// server disconnects it ("ping timeout"). Line-protocol users are people, who may
    /// be silent for hours; dead line connections are found by TCP keepalive instead.
    /// At most a day. Default: 150.
    pub idle_timeout_secs: u64,
    /// After this many milliseconds with nothing read or written, a plain-TCP
    /// connection gives up its task and waits, parked, on its socket and its outbox
    /// (the task is what an idle connection costs most). Its next byte or event brings
    /// the task back. Default: 1000.
    pub park_after_ms: u64,
    /// The most connections open at once; further ones are refused with a message.
    /// Default: 0, automatic: the process's descriptor limit (raised to its hard limit
    /// at start) less 128 kept for the database, files and listeners, and no more than
    /// the machine's memory divided by `send_queue_bytes`.
    pub max_connections: usize,
    /// The most connections open at once from one IP address; an IPv6 /64 counts as one
    /// address, and an IPv4-mapped address as its IPv4 address. Default: 64.
    pub max_connections_per_ip: usize,
    /// Commands a session may send at once after a quiet period. Default: 20.
    pub flood_burst: u32,
    /// Commands per second a session may send in the long run; faster input is slowed
    /// down. 0 turns flood control off. Default: 10.
    pub flood_rate_per_sec: u32,
    /// Seconds a session may stay over the flood rate before it is disconnected for
    /// excess flood. Default: 10.
    pub flood_grace_secs: u64,
    /// Seconds someone who takes a registered nick has to log in before being renamed.
    /// Default: 30.
    pub login_grace_secs: u64,
    /// Days a resume token (a browser's session cookie, `parley chat`'s reconnect) lasts
    /// without being used. Default: 30.
    pub session_idle_days: u64,
    /// IRC: failed `OPER` attempts one connection may make; the last of them closes it.
    /// Default: 5.
    pub max_oper_failures: u32,
    /// IRC: after a failed `OPER`, the next one on that connection is checked only after
    /// this many milliseconds, doubled at each further failure (at most a minute).
    /// Default: 1000.
    pub oper_retry_ms: u64,
    /// Rooms with more members than this stop announcing who joins and leaves, like an
    /// IRC auditorium: announcing every arrival to everyone costs N² messages while a
    /// room of N fills. Default: 500.
    pub announce_joins_up_to: usize,
    /// How many hub operations may be queued before gateways wait. Default: 4096.
    pub hub_inbox: usize,
    /// The most bans and mutes one room keeps (IRC's `MAXLIST b:`); a full list refuses
    /// new ones until one is lifted. Default: 100.
    pub max_bans_per_room: usize,
    /// The most server bans kept. Default: 10000.
    pub max_server_bans: usize,
    /// The most rooms one account may register (a logged-in user's new room is
    /// registered to them while they are under it). Default: 10.
    pub max_rooms_per_account: usize,
    /// History pages and searches read from the store at once; more wait their turn
    /// (each session may have 4 waiting). Default: 8.
    pub max_reads: usize,
    /// The most nicks one session may watch, to be told when they come and go (IRC's
    /// `MONITOR`, advertised as `MONITOR=` in `005`). Default: 100.
    pub max_watched_nicks: usize,
    /// How long shutdown waits for sessions to flush their last output, in
    /// milliseconds. Default: 3000.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 4096,
            max_frame_header: 16_384,
            max_frame_payload: 1 << 20,
            max_message_bytes: 4096,
            max_nick_len: 32,
            max_room_len: 32,
            send_queue_bytes: 1 << 20,
            max_rooms_per_session: 20,
            handshake_timeout_secs: 30,
            idle_ping_secs: 60,
            idle_timeout_secs: 150,
            park_after_ms: 1000,
            max_connections: 0,
            max_connections_per_ip: 64,
            flood_burst: 20,
            flood_rate_per_sec: 10,
            flood_grace_secs: 10,
            hub_inbox: 4096,
            max_bans_per_room: 100,
            max_server_bans: 10_000,
            max_rooms_per_account: 10,
            max_reads: 8,
            max_watched_nicks: 100,
            login_grace_secs: 30,
            session_idle_days: 30,
            max_oper_failures: 5,
            oper_retry_ms: 1000,
            announce_joins_up_to: 500,
            shutdown_grace_ms: 3000,
        }
    }
}

impl Limits {
    /// How long a new connection has to register.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// When a quiet native client is pinged.
    #[must_use]
    pub fn idle_ping(&self) -> Duration {
        Duration::from_secs(self.idle_ping_secs)
    }

    /// When a quiet native client is disconnected.
    #[must_use]
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// How long a plain-TCP connection is quiet before it parks.
    #[must_use]
    pub fn park_after(&self) -> Duration {
        Duration::from_millis(self.park_after_ms)
    }

    /// The flood policy for the hub's throttle.
    #[must_use]
    pub fn flood(&self) -> parley_hub::FloodLimits {
        parley_hub::FloodLimits {
            burst: self.flood_burst,
            rate_per_sec: f64::from(self.flood_rate_per_sec),
            grace: Duration::from_secs(self.flood_grace_secs),
        }
    }

    /// How long the next `OPER` waits after a first failed one.
    #[must_use]
    pub fn oper_retry(&self) -> Duration {
        Duration::from_millis(self.oper_retry_ms)
    }

    /// How long shutdown waits for sessions to flush.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub(crate) fn hub(&self, history: &History) -> parley_hub::Limits {
        parley_hub::Limits {
            max_nick_len: self.max_nick_len,
            max_room_len: self.max_room_len,
            max_message_bytes: self.max_message_bytes,
            max_rooms_per_session: self.max_rooms_per_session,
            inbox: self.hub_inbox,
            history_on_join: history.on_join,
            login_grace: Duration::from_secs(self.login_grace_secs),
            announce_up_to: self.announce_joins_up_to,
            max_bans_per_room: self.max_bans_per_room,
            max_server_bans: self.max_server_bans,
            max_rooms_per_account: self.max_rooms_per_account,
            max_reads: self.max_reads,
            max_watched: self.max_watched_nicks,
            token_idle: Duration::from_secs(self.session_idle_days.min(36_500).saturating_mul(24 * 3600)),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration (unknown keys included).
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A `--listen` value is not `KIND=ADDR`.
    #[error("--listen takes KIND=ADDR or KIND=ADDR,proxy (e.g. line=127.0.0.1:7777), not {0:?}")]
    BadListen(String),
    /// An unknown listener kind.
    #[error("unknown listener kind {0:?}; the kinds are line, native, irc, web and metrics, each optionally +tls")]
    UnknownKind(String),
    /// A value out of range.
    #[error("invalid limit: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a configuration file; keys it does not set keep their defaults.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parses a configuration from TOML text.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// The configuration as a TOML file that [`Config::parse`] reads back unchanged.
    #[must_use]
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        format!("# Parley server configuration (parley serve --config FILE).\n# Every key is optional; these are the values in effect.\n\n{body}")
    }

    /// Checks the values that no type can check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("max_line_bytes", l.max_line_bytes),
            ("max_frame_header", l.max_frame_header),
            ("max_message_bytes", l.max_message_bytes),
            ("max_nick_len", l.max_nick_len),
            ("max_room_len", l.max_room_len),
            ("send_queue_bytes", l.send_queue_bytes),
            ("max_connections_per_ip", l.max_connections_per_ip),
            ("max_rooms_per_session", l.max_rooms_per_session),
            ("hub_inbox", l.hub_inbox),
            ("max_watched_nicks", l.max_watched_nicks),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be above 0")));
        }
        if l.max_oper_failures == 0 {
            return Err(ConfigError::Invalid("max_oper_failures must be above 0".into()));
        }
        if l.max_frame_header > usize::from(u16::MAX) {
            return Err(ConfigError::Invalid("max_frame_header is at most 65535".into()));
        }
        // Bounded, as every deadline is: one this far ahead must stay a time the clock
        // can hold (`Instant + Duration` panics past it).
        if l.handshake_timeout_secs == 0 || l.handshake_timeout_secs > A_DAY_SECS {
            return Err(ConfigError::Invalid(format!("handshake_timeout_secs must be from 1 to {A_DAY_SECS} (a day)")));
        }
        if l.park_after_ms == 0 || l.park_after_ms > 3_600_000 {
            return Err(ConfigError::Invalid("park_after_ms must be from 1 to 3600000 (an hour)".into()));
        }
        if l.idle_ping_secs == 0 || l.idle_timeout_secs <= l.idle_ping_secs {
            return Err(ConfigError::Invalid("idle_timeout_secs must be above idle_ping_secs, above 0".into()));
        }
        if l.idle_timeout_secs > A_DAY_SECS {
            return Err(ConfigError::Invalid(format!("idle_timeout_secs must be at most {A_DAY_SECS} (a day)")));
        }
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid("at least one listener is needed".into()));
        }
        let name = &self.irc.server_name;
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || matches!(c, '!' | '@' | ':' | ',')) {
            return Err(ConfigError::Invalid(format!("irc.server_name {name:?} is not a usable server name")));
        }
        if self.irc.network.is_empty() || self.irc.network.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid("irc.network must be one word".into()));
        }
        // The shape alone: names are parsed once the case mapping is set (joining
        // checks each as a client's JOIN would).
        for channel in &self.irc.autojoin {
            let room = channel.strip_prefix('#').unwrap_or("");
            let odd = |c: char| c.is_whitespace() || c.is_control() || matches!(c, ',' | '#');
            if room.is_empty() || room.chars().count() > self.limits.max_room_len || room.contains(odd) {
                return Err(ConfigError::Invalid(format!("irc.autojoin: {channel:?} is not a channel (#name)")));
            }
        }
        if self.irc.autojoin.len() > self.limits.max_rooms_per_session {
            return Err(ConfigError::Invalid("irc.autojoin lists more channels than max_rooms_per_session".into()));
        }
        if let Some(url) = &self.database.url {
            parley_store::PostgresStore::check_url(url)
                .map_err(|e| ConfigError::Invalid(format!("database.url: {e}")))?;
            if !self.history.store {
                return Err(ConfigError::Invalid(
                    "a database (database.url) and no history (history.store = false) contradict each other".into(),
                ));
            }
        }
        let cluster = &self.cluster;
        if cluster.enabled() {
            if self.database.url.is_none() {
                return Err(ConfigError::Invalid(
                    "cluster mode needs the database its nodes share (database.url, postgres://…)".into(),
                ));
            }
            if let Some(bad) = cluster.servers.iter().find(|s| !(s.starts_with("nats://") || s.starts_with("tls://"))) {
                return Err(ConfigError::Invalid(format!("cluster.servers: {bad:?} is not nats://HOST:PORT")));
            }
            if !cluster.node.is_empty() && (cluster.node.len() > 64 || !cluster.node.chars().all(valid_node_char)) {
                return Err(ConfigError::Invalid("cluster.node: at most 64 letters, digits, '-' and '_'".into()));
            }
            if !(1..=8760).contains(&cluster.retain_hours) {
                return Err(ConfigError::Invalid("cluster.retain_hours is from 1 to 8760 (a year)".into()));
            }
            if !(1..=5).contains(&cluster.replicas) {
                return Err(ConfigError::Invalid("cluster.replicas is from 1 to 5".into()));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid("a TLS certificate needs its key, and a key its certificate".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_configuration_reads_back() {
        let config = Config::default();
        assert_eq!(Config::parse(&config.to_toml()), Ok(config));
    }

    #[test]
    fn the_example_file_is_valid_and_shows_the_defaults() {
        let example = include_str!("../../../config/parley.example.toml");
        assert_eq!(Config::parse(example), Ok(Config::default()));
    }

    #[test]
    fn cluster_mode_needs_a_shared_database_and_a_usable_node_name() {
        let clustered = "[cluster]\nservers = [\"nats://127.0.0.1:4222\"]\nnode = \"a-1\"\n";
        let alone = Config::parse(clustered).expect("parses");
        let err = alone.validate().expect_err("no database").to_string();
        assert!(err.contains("database.url"), "{err}");
        let with_db = format!("{clustered}[database]\nurl = \"postgres://parley@127.0.0.1/chat\"\n");
        let config = Config::parse(&with_db).expect("parses");
        assert!(config.validate().is_ok());
        assert_eq!(config.cluster.node_name(), "a-1");
        for (field, bad) in [("node", "a.b"), ("node", &"n".repeat(65)), ("servers", "127.0.0.1:4222")] {
            let mut config = config.clone();
            match field {
                "node" => config.cluster.node = bad.to_owned(),
                _ => config.cluster.servers = vec![bad.to_owned()],
            }
            let err = config.validate().expect_err(bad).to_string();
            assert!(err.contains(&format!("cluster.{field}")), "{err}");
        }
        let mut config = config;
        config.cluster.replicas = 0;
        assert!(config.validate().is_err());
        assert!(!Config::default().cluster.enabled());
        assert!(!Config::default().cluster.node_name().is_empty());
    }

    #[test]
    fn autojoin_takes_channels_and_hosts_take_their_three_forms() {
        let config = Config::parse("[irc]\nautojoin = [\"#lobby\", \"#café\"]\nhosts = \"ip\"\n").expect("valid");
        assert_eq!(config.irc.hosts, Hosts::Ip);
        assert!(config.validate().is_ok());
        for bad in ["lobby", "#", "#a b", "#a,b"] {
            let mut config = Config::default();
            config.irc.autojoin = vec![bad.to_owned()];
            assert!(config.validate().is_err(), "{bad:?} is no channel");
        }
        assert!(Config::parse("[irc]\nhosts = \"vhost\"\n").is_err());
    }

    #[test]
    fn idle_deadlines_are_at_most_a_day() {
        for (ping, timeout, valid) in [
            (60, 150, true),
            (60, A_DAY_SECS, true),
            (60, A_DAY_SECS + 1, false),
            (A_DAY_SECS, A_DAY_SECS + 1, false),
            (1_000_000_000_000_000, u64::MAX, false),
            (0, 150, false),
            (150, 150, false),
        ] {
            let mut config = Config::default();
            (config.limits.idle_ping_secs, config.limits.idle_timeout_secs) = (ping, timeout);
            assert_eq!(config.validate().is_ok(), valid, "idle_ping_secs = {ping}, idle_timeout_secs = {timeout}");
        }
        for (secs, valid) in [(0, false), (1, true), (A_DAY_SECS, true), (A_DAY_SECS + 1, false), (u64::MAX, false)] {
            let mut config = Config::default();
            config.limits.handshake_timeout_secs = secs;
            assert_eq!(config.validate().is_ok(), valid, "handshake_timeout_secs = {secs}");
        }
    }

    #[test]
    fn parking_waits_at_least_a_millisecond_and_at_most_an_hour() {
        for (ms, valid) in [(0, false), (1, true), (3_600_000, true), (3_600_001, false), (u64::MAX, false)] {
            let mut config = Config::default();
            config.limits.park_after_ms = ms;
            assert_eq!(config.validate().is_ok(), valid, "park_after_ms = {ms}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[limits]\nmax_lines = 3\n").expect_err("unknown key");
        assert!(err.contains("max_lines"), "{err}");
        let err = Config::parse("colour = 1\n").expect_err("unknown key");
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_partial_file_keeps_the_other_defaults() {
        let config = Config::parse("[limits]\nmax_line_bytes = 100\n").expect("valid");
        assert_eq!(config.limits.max_line_bytes, 100);
        assert_eq!(config.limits.max_nick_len, 32);
        assert_eq!(config.listeners, Config::default().listeners);
    }

    #[test]
    fn a_database_url_is_checked_and_its_password_never_shown() {
        let config =
            Config::parse("[database]\nurl = \"postgres://parley:hunter2@db.example:5433/chat\"\n").expect("valid");
        assert!(config.validate().is_ok());
        let shown = format!("{config:?}");
        assert!(shown.contains("db.example:5433/chat") && !shown.contains("hunter2"), "{shown}");
        let mut no_history = config.clone();
        no_history.history.store = false;
        assert!(no_history.validate().is_err(), "a database and no history contradict each other");
        let mut bad = config;
        bad.database.url = Some("postgres://[::1".into());
        let err = bad.validate().expect_err("an invalid URL").to_string();
        assert!(err.contains("database.url"), "{err}");
    }

    #[test]
    fn the_default_listeners_keep_plain_text_on_loopback() {
        let labels: Vec<String> =
            Config::default().listeners.iter().map(|l| format!("{}={}", l.label(), l.addr)).collect();
        assert_eq!(
            labels,
            [
                "line=127.0.0.1:7777",
                "native=127.0.0.1:7778",
                "line+tls=0.0.0.0:7779",
                "native+tls=0.0.0.0:7780",
                "irc=127.0.0.1:6667",
                "irc+tls=0.0.0.0:6697",
                "web=127.0.0.1:8080",
                "web+tls=0.0.0.0:8443",
                "metrics=127.0.0.1:9898",
            ]
        );
    }

    #[test]
    fn listen_flags_parse() {
        let l: Listener = "native=0.0.0.0:9000".parse().expect("valid");
        assert_eq!(l, Listener::new(ListenerKind::Native, false, "0.0.0.0:9000"));
        let l: Listener = "line+tls=[::1]:7779".parse().expect("valid");
        assert_eq!(l, Listener::new(ListenerKind::Line, true, "[::1]:7779"));
        assert_eq!(l.label(), "line+tls");
        let l: Listener = "irc+tls=0.0.0.0:6697".parse().expect("valid");
        assert_eq!(l, Listener::new(ListenerKind::Irc, true, "0.0.0.0:6697"));
        let l: Listener = "web+tls=0.0.0.0:8443".parse().expect("valid");
        assert_eq!(l, Listener::new(ListenerKind::Web, true, "0.0.0.0:8443"));
        let l: Listener = "irc=127.0.0.1:6668,proxy".parse().expect("valid");
        assert_eq!(l, Listener { proxy_protocol: true, ..Listener::new(ListenerKind::Irc, false, "127.0.0.1:6668") });
        assert!(matches!("irc=127.0.0.1:6668,haproxy".parse::<Listener>(), Err(ConfigError::BadListen(_))));
        assert!(matches!("web=,proxy".parse::<Listener>(), Err(ConfigError::BadListen(_))));
        assert!(matches!("xmpp=1.2.3.4:5222".parse::<Listener>(), Err(ConfigError::UnknownKind(_))));
        assert!(matches!("line".parse::<Listener>(), Err(ConfigError::BadListen(_))));
    }
}
