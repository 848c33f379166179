//! A 3-server NATS cluster with JetStream for tests (the `testing` feature; never in the
//! binary): each server on free ports of 127.0.0.1 (below the kernel's ephemeral range,
//! so that nothing else is given them while a killed server is down) with its own store
//! directory in a temporary directory, routed to the other two, stopped (killed and
//! waited for) and deleted when dropped. A test may `kill -9` one server and start it again on the same
//! ports and store, as an operator's supervisor would.
//!
//! The binary is looked for in `PARLEY_NATS_SERVER`, then on the `PATH` (Debian's
//! `nats-server` package puts it in `/usr/sbin`). Without it, [`TestCluster::start`]
//! says so loudly and returns `None`, so the test can skip, unless `CI=true`, where a
//! missing server is a failure: CI installs it (`.ci/run`).

use std::hash::BuildHasher as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How many servers the cluster has: the smallest that keeps a quorum (2) with one lost.
pub const SERVERS: usize = 3;

/// How long JetStream may take to elect its meta leader after a (re)start.
const READY_WITHIN: Duration = Duration::from_secs(30);

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// Why the cluster is not ready, with the servers' logs.
enum NotReady {
    /// A server exited.
    Exited(String),
    /// JetStream did not answer in time.
    TooLong(String),
}

/// One server of the cluster.
struct Server {
    name: String,
    port: u16,
    cluster_port: u16,
    store: PathBuf,
    log: PathBuf,
    process: Mutex<Option<Child>>,
}

/// A running test cluster; its servers are killed and their directories deleted when
/// dropped.
pub struct TestCluster {
    bin: PathBuf,
    dir: PathBuf,
    cluster_name: String,
    servers: Vec<Server>,
}

/// The `nats-server` binary; `None`, said loudly, when it is not installed.
fn installed() -> Option<PathBuf> {
    let bin = match std::env::var_os("PARLEY_NATS_SERVER") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.exists()),
        None => std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .chain(["/usr/sbin".into(), "/usr/bin".into()])
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.exists()),
    };
    if bin.is_none() {
        let why = "nats-server is not installed (not in PARLEY_NATS_SERVER, on the PATH or in /usr/sbin)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}; CI must install it (.ci/run)");
        // Straight to the process's stderr: the test harness captures `eprintln!`, and a
        // skip must be seen.
        let _ =
            writeln!(std::io::stderr(), "\n*** SKIPPED: {why}; apt-get install -y nats-server to run this test ***\n");
    }
    bin
}

/// Ports this process has handed to a server, never handed out again: two clusters
/// started at once by tests running in parallel must not share one.
static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// The lowest port a server is given.
const LOWEST_PORT: u16 = 10_000;

/// The first port of the kernel's ephemeral range (the source ports of outgoing
/// connections and the ports `bind` to port 0 gives), 32768 when unknown.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A port free now, never handed out before by this process, and below the kernel's
/// ephemeral range. A port of the range may be given to any outgoing connection as its
/// source port while a killed server is down, and then the server cannot listen on it
/// again when it is restarted ("address already in use", seen after a restart under
/// load); a port below it is only ever taken by a program that asks for it.
fn free_port() -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let top = ephemeral_start();
    let random = std::collections::hash_map::RandomState::new();
    for n in 0..10_000u64 {
        let port = if top > LOWEST_PORT + 1000 {
            LOWEST_PORT + u16::try_from(random.hash_one(n) % u64::from(top - LOWEST_PORT)).unwrap_or(0)
        } else {
            // No room below the range: whatever the kernel gives.
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
        };
        if !handed_out.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port for a test NATS server");
}

/// How many times [`TestCluster::start`] tries fresh ports when a server exits at once
/// (a port taken meanwhile by another program).
const START_ATTEMPTS: usize = 3;

impl TestCluster {
    /// Starts 3 servers and waits until JetStream answers through each of them (its meta
    /// leader is elected); `None` (after saying why on standard error) when nats-server
    /// is not installed outside CI.
    ///
    /// # Panics
    ///
    /// When nats-server is missing and `CI=true`, or the cluster does not come up.
    pub async fn start() -> Option<TestCluster> {
        let bin = installed()?;
        for attempt in 1..=START_ATTEMPTS {
            let cluster = TestCluster::spawn_all(bin.clone());
            match cluster.ready().await {
                Ok(()) => return Some(cluster),
                Err(NotReady::Exited(why)) if attempt < START_ATTEMPTS => {
                    let _ = writeln!(std::io::stderr(), "the test NATS cluster did not start ({why}); new ports");
                }
                Err(NotReady::Exited(why) | NotReady::TooLong(why)) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts 3 servers on new ports and a new store.
    fn spawn_all(bin: PathBuf) -> TestCluster {
        let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("parley-nats-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates the test cluster's directory");
        let servers = (0..SERVERS)
            .map(|i| Server {
                name: format!("parley-test-{i}"),
                port: free_port(),
                cluster_port: free_port(),
                store: dir.join(format!("store-{i}")),
                log: dir.join(format!("server-{i}.log")),
                process: Mutex::new(None),
            })
            .collect();
        let cluster = TestCluster { bin, dir, cluster_name: format!("parley-test-{n}"), servers };
        for i in 0..SERVERS {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&self, i: usize) {
        let server = &self.servers[i];
        let routes: Vec<String> = self
            .servers
            .iter()
            .filter(|other| other.name != server.name)
            .map(|other| format!("nats://127.0.0.1:{}", other.cluster_port))
            .collect();
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &server.port.to_string(), "-n", &server.name, "-js"])
            .arg("-sd")
            .arg(&server.store)
            .args(["--cluster_name", &self.cluster_name])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", server.cluster_port)])
            .args(["--routes", &routes.join(",")])
            .arg("-l")
            .arg(&server.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        *server.process.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
    }

    /// The client URL of server `i`.
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].port)
    }

    /// The client URLs of every server, server `first` first (a client connects to the
    /// first it can reach, and fails over to the others).
    #[must_use]
    pub fn urls_from(&self, first: usize) -> Vec<String> {
        (0..SERVERS).map(|i| self.url((first + i) % SERVERS)).collect()
    }

    /// Kills server `i` with SIGKILL (no goodbye to its peers or clients) and waits for
    /// it to be gone.
    pub fn kill(&self, i: usize) {
        let taken = self.servers[i].process.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut child) = taken {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again, on the same ports and store, after [`TestCluster::kill`].
    ///
    /// # Panics
    ///
    /// When it is still running.
    pub fn restart(&self, i: usize) {
        assert!(
            self.servers[i].process.lock().unwrap_or_else(PoisonError::into_inner).is_none(),
            "server {i} is still running"
        );
        self.spawn(i);
    }

    /// Waits until JetStream answers an account query through every running server,
    /// which it does once the meta leader is elected and known to that server.
    ///
    /// # Panics
    ///
    /// When that takes longer than 30 s, or a server exits; the servers' logs are in the
    /// panic message.
    pub async fn wait_ready(&self) {
        if let Err(NotReady::Exited(why) | NotReady::TooLong(why)) = self.ready().await {
            panic!("{why}");
        }
    }

    async fn ready(&self) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_WITHIN;
        for (i, server) in self.servers.iter().enumerate() {
            if server.process.lock().unwrap_or_else(PoisonError::into_inner).is_none() {
                continue;
            }
            loop {
                if self.answers(i).await {
                    break;
                }
                let exited = server
                    .process
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .and_then(|child| child.try_wait().ok().flatten());
                if let Some(status) = exited {
                    return Err(NotReady::Exited(format!("{} exited ({status}):\n{}", server.name, self.logs())));
                }
                if Instant::now() >= deadline {
                    return Err(NotReady::TooLong(format!("the test NATS cluster is not ready:\n{}", self.logs())));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    async fn answers(&self, i: usize) -> bool {
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(500))
            .request_timeout(Some(Duration::from_millis(500)));
        let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(1), options.connect(self.url(i))).await else {
            return false;
        };
        // The raw API answer, not the client's typed account info: that type has fields
        // 2.9 does not send. An answer without an error means the meta leader is known.
        let answered = match client.request("$JS.API.INFO", bytes::Bytes::new()).await {
            Ok(reply) => serde_json::from_slice::<serde_json::Value>(&reply.payload)
                .is_ok_and(|info| info.get("error").is_none()),
            Err(_) => false,
        };
        let _ = client.drain().await;
        answered
    }

    /// Every server's log, for a failure's message.
    #[must_use]
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .map(|s| {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                format!("--- {} ---\n{}\n", s.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect()
    }

    /// The directory the servers live in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
