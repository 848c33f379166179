//! The server's lifecycle: bind, run until told to stop, then stop in order.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{label, Config, ConfigError, Limits, ListenerKind};
use crate::files::FileStore;
use crate::listener;
use crate::tls::{CertSource, Tls, TlsError};

/// What the server tells every client when it stops.
pub(crate) const SHUTDOWN_MESSAGE: &str = "Server is shutting down.";

/// A failure that stops the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// TLS cannot be set up.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The file store cannot be opened.
    #[error("cannot open the file store in {path}: {source}")]
    Files {
        /// The data directory.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// This process already compares names another way (a second server in one
    /// process, configured differently).
    #[error("names are compared as {fixed:?} in this process already; {asked:?} cannot be used too")]
    CaseMapping {
        /// What the configuration asks for.
        asked: parley_hub::CaseMapping,
        /// What is in force.
        fixed: parley_hub::CaseMapping,
    },
    /// The history database cannot be opened.
    #[error(transparent)]
    Store(#[from] parley_store::OpenError),
    /// The cluster could not be joined.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The PostgreSQL database cannot be reached or prepared.
    #[error(transparent)]
    Postgres(#[from] parley_store::PostgresError),
    /// The stored history cannot be read.
    #[error("cannot read the stored history: {0}")]
    History(#[from] parley_hub::StoreError),
    /// The hub stopped while the server was running (it panicked): the server stops
    /// too, so that whatever supervises it restarts it, instead of accepting
    /// connections nobody answers.
    #[error("the hub stopped unexpectedly ({0}); stopping the server")]
    HubDied(String),
    /// A plain-text listener would be reachable from the network.
    #[error(
        "the plain-text listener {label}={addr} is reachable from the network, where anyone can read it; \
         use {label}+tls, bind it to a loopback address, or allow it with --allow-plain-remote"
    )]
    PlainRemote {
        /// The listener's label.
        label: String,
        /// The address it bound.
        addr: SocketAddr,
    },
    /// The key of the users' host cloaks cannot be read or made.
    #[error(transparent)]
    CloakKey(#[from] crate::hosts::CloakKeyError),
    /// A listener cannot bind.
    #[error("cannot listen on {addr} ({kind}): {source}")]
    Bind {
        /// The listener's kind.
        kind: ListenerKind,
        /// The address as configured.
        addr: String,
        /// Why.
        source: io::Error,
    },
}

/// A server whose sockets are bound, ready to [`run`](Server::run).
pub struct Server {
    config: Config,
    listeners: Vec<(Bound, TcpListener)>,
    tls: Option<Tls>,
    hub: parley_hub::HubHandle,
    hub_task: tokio::task::JoinHandle<()>,
    files: Option<Arc<FileStore>>,
    hosts: Arc<crate::hosts::Hosts>,
}

/// A bound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Its protocol.
    pub kind: ListenerKind,
    /// Whether the protocol runs inside TLS.
    pub tls: bool,
    /// The address it bound, with the real port when port 0 was asked for.
    pub addr: SocketAddr,
    /// Whether every connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
}

impl Bound {
    /// `KIND` or `KIND+tls`, as in `listening` lines.
    #[must_use]
    pub fn label(&self) -> String {
        label(self.kind, self.tls)
    }
}

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) hub: parley_hub::HubHandle,
    pub(crate) limits: Arc<Limits>,
    /// Cancelled when the server starts shutting down.
    pub(crate) stopping: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Open connections, for the logs.
    pub(crate) active: Arc<AtomicUsize>,
    /// Open connections per client address, for `max_connections_per_ip`.
    pub(crate) per_address: listener::AddressCounts,
    /// What the IRC gateway says about the server.
    pub(crate) irc: Arc<crate::gateway::irc::Identity>,
    /// How users' hosts are shown (`[irc] hosts`).
    pub(crate) hosts: Arc<crate::hosts::Hosts>,
    /// Shared files; `None` when file sharing is off.
    pub(crate) files: Option<Arc<FileStore>>,
    /// The HTTP gateway's files and settings.
    pub(crate) web: Arc<crate::gateway::web::Site>,
    /// Where clients can reach every node of the cluster (`[cluster] nodes`), told in
    /// each native `welcome`; empty for a server alone.
    pub(crate) nodes: Arc<[String]>,
    /// What the server counts outside the hub.
    pub(crate) metrics: Arc<crate::metrics::ServerMetrics>,
    /// What `/metrics` shows.
    pub(crate) exported: Arc<crate::metrics::Metrics>,
    /// Parked connections' idle deadlines.
    pub(crate) alarms: Arc<crate::gateway::parking::Alarms>,
    /// The runtime, for tasks spawned by wakers that may run outside its context.
    pub(crate) runtime: tokio::runtime::Handle,
}

#[cfg(test)]
impl Shared {
    /// What connection tasks share, with default limits, on a hub of their own and no
    /// store, for the server's unit tests.
    pub(crate) async fn for_tests() -> Shared {
        let config = Config::default();
        let limits = Arc::new(config.limits.clone());
        let (hub, _task) = parley_hub::spawn(config.limits.hub(&config.history), None).await.expect("a hub");
        Shared {
            irc: Arc::new(crate::gateway::irc::Identity::new(&config.irc, &limits)),
            hosts: Arc::new(crate::hosts::Hosts::for_tests(config.irc.hosts)),
            limits,
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            active: Arc::default(),
            per_address: listener::AddressCounts::default(),
            files: None,
            web: Arc::new(crate::gateway::web::Site::new(&config.web, &config.cluster.nodes)),
            nodes: Arc::from(config.cluster.nodes.clone()),
            exported: Arc::new(crate::metrics::Metrics::new(Arc::default(), hub.metrics().clone(), None)),
            metrics: Arc::default(),
            alarms: Arc::new(crate::gateway::parking::Alarms::new()),
            runtime: tokio::runtime::Handle::current(),
            hub,
        }
    }
}

impl Server {
    /// Validates the configuration, creates the data directory, sets up TLS (generating
    /// a certificate on the first start if none is configured), opens the history and
    /// starts the hub on it, and binds every listener.
    pub async fn bind(mut config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        let descriptors = crate::descriptors::raise();
        if let Some(limit) = descriptors {
            if limit.now > limit.was {
                tracing::info!(from = limit.was, to = limit.now, "raised the open-file limit");
            }
        }
        if config.limits.max_connections == 0 {
            let memory = crate::descriptors::memory();
            let send_queue = config.limits.send_queue_bytes;
            config.limits.max_connections =
                crate::descriptors::max_connections(descriptors.map(|l| l.now), memory, send_queue);
            tracing::info!(max_connections = config.limits.max_connections, "connections allowed at once");
        }
        // Before any name is read: the store's, the hub's and every gateway's.
        parley_hub::set_case_mapping(config.names.casemapping.hub())
            .map_err(|fixed| ServerError::CaseMapping { asked: config.names.casemapping.hub(), fixed })?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| ServerError::DataDir { path: config.data_dir.clone(), source })?;
        let hosts = Arc::new(crate::hosts::Hosts::load(config.irc.hosts, &config.data_dir, &config.irc.server_name)?);
        let tls = if config.listeners.iter().any(|l| l.tls) {
            let source = match (&config.tls.cert, &config.tls.key) {
                (Some(cert), Some(key)) => CertSource::Files { cert: cert.clone(), key: key.clone() },
                _ => CertSource::Generated { dir: config.data_dir.join("tls") },
            };
            Some(Tls::load(source)?)
        } else {
            None
        };
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for spec in &config.listeners {
            let socket = TcpListener::bind(&spec.addr).await.map_err(|source| ServerError::Bind {
                kind: spec.kind,
                addr: spec.addr.clone(),
                source,
            })?;
            let addr = socket.local_addr().map_err(|source| ServerError::Bind {
                kind: spec.kind,
                addr: spec.addr.clone(),
                source,
            })?;
            if !spec.tls && !addr.ip().is_loopback() {
                if !config.allow_plain_remote {
                    return Err(ServerError::PlainRemote { label: spec.label(), addr });
                }
                tracing::warn!("{}={addr} is plain text on the network: anyone on the path can read it", spec.label());
            }
            listeners
                .push((Bound { kind: spec.kind, tls: spec.tls, addr, proxy_protocol: spec.proxy_protocol }, socket));
        }
        let files = if config.files.enabled {
            let (dir, limits) = (config.data_dir.clone(), config.files.clone());
            let node = config.cluster.enabled().then(|| config.cluster.node_name());
            let opened = tokio::task::spawn_blocking(move || FileStore::open(&dir, limits, node.as_deref()))
                .await
                .map_err(io::Error::other)
                .and_then(|opened| opened)
                .map_err(|source| ServerError::Files { path: config.data_dir.clone(), source })?;
            Some(Arc::new(opened))
        } else {
            None
        };
        let store: Option<Arc<dyn parley_hub::Store>> = if config.history.store {
            let retention = config.history.retention();
            let dir = config.data_dir.clone();
            let url = config.database.url.clone();
            let clustered = config.cluster.enabled();
            let db = tokio::task::spawn_blocking(move || -> Result<Box<dyn parley_hub::Store>, ServerError> {
                Ok(match url {
                    Some(url) => {
                        let db = parley_store::PostgresStore::open(&url, retention)?;
                        let db = if clustered { db.shared_by_nodes() } else { db };
                        tracing::info!(database = db.target(), "history, accounts and moderation in PostgreSQL");
                        Box::new(db)
                    }
                    None => Box::new(parley_store::SqliteStore::open(&dir, retention)?),
                })
            })
            .await
            .map_err(|e| parley_hub::StoreError::Read(e.to_string()))??;
            Some(Arc::new(crate::store::Kept { db, files: files.clone() }))
        } else {
            None
        };
        let limits = config.limits.hub(&config.history);
        let (hub, hub_task) = match store {
            Some(store) if config.cluster.enabled() => {
                let cluster = crate::cluster::join(&config.cluster).await?;
                parley_hub::spawn_clustered(limits, store, cluster).await?
            }
            store => parley_hub::spawn(limits, store).await?,
        };
        Ok(Server { config, listeners, tls, hub, hub_task, files, hosts })
    }

    /// A handle on the server's hub (for tests, and for embedding the server).
    #[must_use]
    pub fn hub(&self) -> parley_hub::HubHandle {
        self.hub.clone()
    }

    /// Every bound listener.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<Bound> {
        self.listeners.iter().map(|(bound, _)| *bound).collect()
    }

    /// The TLS state, when a listener uses TLS: its certificate's fingerprint, and
    /// [`Tls::reload`] for SIGHUP.
    #[must_use]
    pub fn tls(&self) -> Option<Tls> {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes, then tells every client, lets queued output
    /// flush (within `shutdown_grace_ms`), closes every connection and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let limits = Arc::new(self.config.limits.clone());
        let (hub, hub_task) = (self.hub, self.hub_task);
        let metrics = Arc::new(crate::metrics::ServerMetrics::default());
        let shared = Shared {
            hub: hub.clone(),
            limits: limits.clone(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            active: Arc::new(AtomicUsize::new(0)),
            per_address: listener::AddressCounts::default(),
            irc: Arc::new(crate::gateway::irc::Identity::new(&self.config.irc, &limits)),
            hosts: self.hosts.clone(),
            files: self.files.clone(),
            web: Arc::new(crate::gateway::web::Site::new(&self.config.web, &self.config.cluster.nodes)),
            nodes: Arc::from(self.config.cluster.nodes.clone()),
            exported: Arc::new(crate::metrics::Metrics::new(
                metrics.clone(),
                hub.metrics().clone(),
                self.files.clone(),
            )),
            metrics,
            alarms: Arc::new(crate::gateway::parking::Alarms::new()),
            runtime: tokio::runtime::Handle::current(),
        };
        shared.tasks.spawn(shared.alarms.clone().ring(shared.stopping.clone()));
        if self.listeners.iter().any(|(bound, _)| bound.kind == ListenerKind::Web) {
            let (files, bytes) = shared.web.client_size();
            tracing::info!(files, bytes, "the browser client is built in");
        }
        let slots = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
        for (bound, socket) in self.listeners {
            let tls = if bound.tls { self.tls.clone() } else { None };
            shared.tasks.spawn(listener::accept_loop(bound, socket, tls, slots.clone(), shared.clone()));
        }
        tracing::info!(data_dir = %self.config.data_dir.display(), "server running");

        let mut hub_task = hub_task;
        let died = tokio::select! {
            () = shutdown => None,
            ended = &mut hub_task => Some(match ended {
                Err(e) if e.is_panic() => "it panicked".to_owned(),
                Err(e) => e.to_string(),
                Ok(()) => "it ended".to_owned(),
            }),
        };
        if let Some(why) = died {
            tracing::error!("the hub stopped unexpectedly ({why}); the server stops so that it can be restarted");
            shared.stopping.cancel();
            shared.tasks.close();
            return Err(ServerError::HubDied(why));
        }
        tracing::info!("shutting down");
        shared.stopping.cancel();
        hub.shutdown(SHUTDOWN_MESSAGE).await;
        shared.tasks.close();
        let grace = limits.shutdown_grace() + std::time::Duration::from_secs(1);
        if tokio::time::timeout(grace, shared.tasks.wait()).await.is_err() {
            tracing::warn!("some connections did not close within the grace period; dropping them");
        }
        drop(shared);
        drop(hub);
        // The hub ends once the last handle is gone (connections dropped above release
        // theirs) and every message it accepted is stored.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), hub_task).await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds and runs a server with `config` until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}
