//! The PostgreSQL store: the same traits as the SQLite store, in a database that several
//! Parley nodes (or one, on a machine of its own) can share.
//!
//! The hub's store calls block (see [`parley_hub::Store`]); `tokio-postgres` is async. The
//! store runs its own small tokio runtime (one worker thread, `parley-postgres`) that
//! drives its connections, and each call blocks its caller, which is always a blocking
//! thread (the journal's, or a blocking task), until its statements are done: the
//! caller polls the call's future itself and parks between wake-ups (`park_on`). Being
//! independent of the caller's runtime, the store works the same under the server and
//! in `parley admin`, and it can be dropped anywhere: dropping it lets its runtime go in
//! the background, never waiting.
//!
//! Connections: one writer (the journal's batches, account and moderation changes,
//! serialized as SQLite's are) and a pool of readers opened as needed (the hub bounds how
//! many reads run at once). A connection found closed (the server restarted, the network
//! failed) is opened again on the next call; the call that found it fails, and the hub
//! tells the client that writing or reading failed. Every call gives up after
//! [`CALL_TIMEOUT`].
//!
//! Durability: a transaction is committed when PostgreSQL says so (with its default
//! `synchronous_commit = on`, flushed to its WAL), so an acknowledged message survives
//! the loss of the Parley process and of the database server's process alike.
//!
//! Names are compared by their key (`Nick::key`, `RoomName::key`), computed here in Rust
//! and stored beside the name in columns with the `C` collation, so PostgreSQL compares
//! exactly what the hub compares, whatever the database's locale.
//!
//! One file per concern, as the hub's traits are split and as in the SQLite store.

mod accounts;
mod import;
mod messages;
mod moderation;
mod schema;
mod search;
mod tokens;

use std::error::Error as _;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parley_hub::{Kind, Nick, Party, Record, RoomName, StoreError};
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::sqlite::Retention;

pub use import::{ImportError, Imported};

/// The PostgreSQL schema version this build writes (and the newest it reads).
#[must_use]
pub fn schema_version() -> i64 {
    schema::latest()
}

/// The longest one call (a batch, a page, a search, a change) may take before it fails:
/// long enough for a large batch on a busy server, short enough that a database that
/// stopped answering is reported instead of holding the journal forever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The columns [`record`] reads, in its order.
const RECORD_COLUMNS: &str =
    "room, seq, sender, sender_party, recipient, recipient_party, at_us, body, content_type, meta, sender_host";

/// Why the PostgreSQL store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The URL asks for TLS, which the store does not speak.
    #[error(
        "the PostgreSQL URL asks for TLS (sslmode=require), but Parley connects to PostgreSQL without it; \
         connect over a local socket, the loopback or a private network, and leave sslmode out"
    )]
    TlsRequired,
    /// The store's runtime could not start.
    #[error("cannot start the PostgreSQL store's runtime: {0}")]
    Runtime(std::io::Error),
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {detail}")]
    Connect {
        /// Where, without the password.
        target: String,
        /// Why.
        detail: String,
    },
    /// The schema could not be brought up to date.
    #[error("cannot prepare the PostgreSQL database at {target}: {detail}")]
    Migrate {
        /// Where, without the password.
        target: String,
        /// Why.
        detail: String,
    },
    /// The database has a schema from a newer Parley.
    #[error("the PostgreSQL database at {target} has schema version {found}, newer than this Parley's {known}; upgrade Parley")]
    TooNew {
        /// Where, without the password.
        target: String,
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
}

/// History, accounts and moderation in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    target: String,
    /// Drives every connection; let go in the background on drop.
    runtime: Option<tokio::runtime::Runtime>,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Client>>,
    /// Written by every node of a cluster: a message already stored is skipped, not
    /// refused (see [`PostgresStore::shared_by_nodes`]).
    shared: bool,
}

struct Writer {
    client: Option<Client>,
    retention: Retention,
    last_prune: Option<Instant>,
}

/// A PostgreSQL error with its cause: `tokio-postgres` says only "db error" in its own
/// message and keeps what the server said in the source.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Why a call failed, before it is told as a read or a write failure.
#[derive(Debug)]
pub(crate) enum Failure {
    Postgres(tokio_postgres::Error),
    TimedOut,
    /// The store is being dropped.
    Closed,
    /// A stored value this build cannot read.
    Corrupt(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Postgres(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Postgres(e) => f.write_str(&describe(e)),
            Failure::TimedOut => write!(f, "PostgreSQL did not answer within {} s", CALL_TIMEOUT.as_secs()),
            Failure::Closed => f.write_str("the PostgreSQL store is closed"),
            Failure::Corrupt(what) => write!(f, "a stored value cannot be read: {what}"),
        }
    }
}

pub(crate) fn read_error(e: Failure) -> StoreError {
    StoreError::Read(e.to_string())
}

pub(crate) fn write_error(e: Failure) -> StoreError {
    StoreError::Write(e.to_string())
}

/// A connection string without its password, for messages and logs.
fn target_of(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}:{port}/{db}", hosts.join(","))
}

/// `url` without its password (what messages and logs show of a database URL); an
/// invalid URL is shown as such, not echoed.
#[must_use]
pub fn redacted(url: &str) -> String {
    url.parse::<Config>().map_or_else(|_| "an invalid PostgreSQL URL".to_owned(), |config| target_of(&config))
}

impl PostgresStore {
    /// Checks that `url` is a PostgreSQL connection string, without connecting.
    pub fn check_url(url: &str) -> Result<(), PostgresError> {
        let config = url.parse::<Config>().map_err(|e| PostgresError::Url(describe(&e)))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(PostgresError::TlsRequired);
        }
        Ok(())
    }

    /// The store of a node of a cluster, which every node writes every message of the
    /// shared log to: appending a message already stored (the same room and seq, or a
    /// private one's seq) skips it instead of refusing the batch. Alone, a duplicate is
    /// a hub's mistake, and refused.
    #[must_use]
    pub fn shared_by_nodes(mut self) -> PostgresStore {
        self.shared = true;
        self
    }

    /// Connects to the database at `url` (a `postgres://` URL or a `key=value`
    /// connection string) and brings its schema up to date.
    pub fn open(url: &str, retention: Retention) -> Result<PostgresStore, PostgresError> {
        Self::check_url(url)?;
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| PostgresError::Url(describe(&e)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("parley");
        }
        let target = target_of(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("parley-postgres")
            .enable_all()
            .build()
            .map_err(PostgresError::Runtime)?;
        let store = PostgresStore {
            config,
            target: target.clone(),
            runtime: Some(runtime),
            writer: Mutex::new(Writer { client: None, retention, last_prune: None }),
            readers: Mutex::new(Vec::new()),
            shared: false,
        };
        let mut writer = store.writer();
        let migrated = store.block_on(async {
            let client = writer
                .connect(&store)
                .await
                .map_err(|e| PostgresError::Connect { target: target.clone(), detail: e.to_string() })?;
            schema::migrate(client, &target).await
        });
        let migrated = match migrated {
            Ok(result) => result,
            Err(e) => Err(PostgresError::Connect { target: target.clone(), detail: e.to_string() }),
        };
        drop(writer);
        migrated?;
        Ok(store)
    }

    /// Where the store is, without the password.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Runs `future` to its end on the calling thread, for at most [`CALL_TIMEOUT`].
    fn block_on<T>(&self, future: impl Future<Output = T>) -> Result<T, Failure> {
        self.block_on_unbounded(async {
            tokio::time::timeout(CALL_TIMEOUT, future).await.map_err(|_| Failure::TimedOut)
        })
        .and_then(|result| result)
    }

    /// Runs `future` to its end on the calling thread, for as long as it takes (a
    /// migration).
    ///
    /// The store's runtime drives the connections and timers (its worker thread); the
    /// caller's thread only polls `future`, parked between wake-ups. Unlike
    /// `Handle::block_on`, this never panics on a thread that runs another runtime's
    /// tasks: a caller that should not block (the hub's contract says store calls come
    /// from blocking threads) blocks, as it would on SQLite, instead of crashing.
    fn block_on_unbounded<T>(&self, future: impl Future<Output = T>) -> Result<T, Failure> {
        let Some(runtime) = &self.runtime else {
            return Err(Failure::Closed);
        };
        let _context = runtime.handle().enter();
        Ok(park_on(future))
    }

    /// Opens a connection, with its driver on the store's runtime.
    async fn connect(&self) -> Result<Client, Failure> {
        let (client, connection) = self.config.connect(NoTls).await?;
        let target = self.target.clone();
        let runtime = self.runtime.as_ref().ok_or(Failure::Closed)?;
        runtime.spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(target = %target, "a PostgreSQL connection failed: {}", describe(&e));
            }
        });
        Ok(client)
    }

    /// The writer, for a change in one transaction.
    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled read connection (one is opened when none is free), back in the pool
    /// when dropped unless it was lost.
    fn reader(&self) -> Reader<'_> {
        let client = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        Reader { store: self, client }
    }

    /// Runs a read (made of a [`Reader`]) to its end.
    fn read<T>(&self, read: impl Future<Output = Result<T, Failure>>) -> Result<T, StoreError> {
        self.block_on(read).and_then(|result| result).map_err(read_error)
    }

    /// Runs a change (made on the [`Writer`]) to its end.
    fn write<T>(&self, change: impl Future<Output = Result<T, Failure>>) -> Result<T, StoreError> {
        self.block_on(change).and_then(|result| result).map_err(write_error)
    }
}

/// A read connection borrowed from the pool.
struct Reader<'s> {
    store: &'s PostgresStore,
    client: Option<Client>,
}

impl Reader<'_> {
    /// The connection, opened if there was none or it was lost.
    async fn client(&mut self) -> Result<&Client, Failure> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.store.connect().await?);
        }
        self.client.as_ref().ok_or(Failure::Closed)
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            self.store.readers.lock().unwrap_or_else(PoisonError::into_inner).push(client);
        }
    }
}

impl Writer {
    /// The writer's connection, opened again if it is closed.
    async fn connect(&mut self, store: &PostgresStore) -> Result<&mut Client, Failure> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(store.connect().await?);
        }
        self.client.as_mut().ok_or(Failure::Closed)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing the clients ends their connections' tasks; the runtime is let go
        // without waiting for them, which is allowed from any thread, async or not.
        self.writer.get_mut().unwrap_or_else(PoisonError::into_inner).client = None;
        self.readers.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Wakes a thread parked in [`park_on`].
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking between wake-ups.
fn park_on<T>(future: impl Future<Output = T>) -> T {
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return value;
        }
        std::thread::park();
    }
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// A seq as PostgreSQL stores it (a bigint; seqs never come near its end).
fn seq_value(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Column `index` of `row`, or why it cannot be read.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, Failure> {
    row.try_get(index).map_err(Failure::Postgres)
}

fn nick_or_corrupt(text: &str) -> Result<Nick, Failure> {
    Nick::parse(text, usize::MAX).map_err(|e| Failure::Corrupt(e.to_string()))
}

fn room_or_corrupt(text: &str) -> Result<RoomName, Failure> {
    RoomName::parse(text, usize::MAX).map_err(|e| Failure::Corrupt(e.to_string()))
}

/// A row of `SELECT {RECORD_COLUMNS}`.
fn record(row: &Row) -> Result<Record, Failure> {
    let room: Option<String> = get(row, 0)?;
    let room = room.as_deref().map(room_or_corrupt).transpose()?;
    let seq: i64 = get(row, 1)?;
    let from = nick_or_corrupt(get(row, 2)?)?;
    let sender = Party::from_i64(get(row, 3)?);
    let to: Option<&str> = get(row, 4)?;
    let to = to.map(nick_or_corrupt).transpose()?;
    let recipient = Party::from_i64(get(row, 5)?);
    let at_us: i64 = get(row, 6)?;
    let at = DateTime::from_timestamp_micros(at_us).ok_or_else(|| Failure::Corrupt(format!("bad time {at_us}")))?;
    let body: &str = get(row, 7)?;
    let kind = Kind::from_content_type(get(row, 8)?);
    let meta = crate::meta::decode(get(row, 9)?).map_err(Failure::Corrupt)?;
    let seq = u64::try_from(seq).unwrap_or(0);
    let userhost = crate::meta::userhost(get(row, 10)?);
    Ok(Record { room, seq, from, sender, to, recipient, at, kind, text: body.into(), meta, userhost })
}
