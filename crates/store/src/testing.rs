//! A PostgreSQL server for tests (the `test-postgres` feature; never in the binary):
//! initialised in a temporary directory and listening on a free port of 127.0.0.1, run
//! as the `postgres` user when the tests run as root (PostgreSQL refuses root), and
//! stopped and deleted when the last test using it lets go of it.
//!
//! The binaries are looked for in `PARLEY_POSTGRES_BIN`, then in Debian's
//! `/usr/lib/postgresql/<version>/bin` (the newest). Without them, [`TestPostgres::shared`]
//! says so loudly and returns `None`, so the test can skip, unless `CI=true`, where a
//! missing PostgreSQL is a failure: CI installs it (`.ci/run`).

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A running test server; stopped when dropped.
pub struct TestPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

static SHARED: Mutex<Weak<TestPostgres>> = Mutex::new(Weak::new());
static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PARLEY_POSTGRES_BIN") {
        return Some(PathBuf::from(dir)).filter(|bin| bin.join("postgres").exists());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The binaries' directory; `None`, said loudly, when PostgreSQL is not installed.
fn installed() -> Option<PathBuf> {
    let bin = bin_dir();
    if bin.is_none() {
        let why = "PostgreSQL is not installed (no postgres in PARLEY_POSTGRES_BIN or /usr/lib/postgresql/*/bin)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}; CI must install it (.ci/run)");
        // Straight to the process's stderr: the test harness captures `eprintln!`, and a
        // skip must be seen.
        let _ =
            writeln!(std::io::stderr(), "\n*** SKIPPED: {why}; apt-get install -y postgresql to run this test ***\n");
    }
    bin
}

impl TestPostgres {
    /// The server shared by this test process's tests, started if none runs; `None`
    /// (after saying why on standard error) when PostgreSQL is not installed outside CI.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is missing and `CI=true`, or cannot be started.
    #[must_use]
    pub fn shared() -> Option<Arc<TestPostgres>> {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = shared.upgrade() {
            return Some(running);
        }
        let bin = installed()?;
        let started = Arc::new(TestPostgres::start(bin));
        *shared = Arc::downgrade(&started);
        Some(started)
    }

    /// A server of the caller's own (for a test that stops or restarts it); `None` as
    /// for [`TestPostgres::shared`].
    ///
    /// # Panics
    ///
    /// As [`TestPostgres::shared`].
    #[must_use]
    pub fn own() -> Option<TestPostgres> {
        installed().map(TestPostgres::start)
    }

    /// Stops the server (fast: open connections are cut); [`TestPostgres::start_again`]
    /// brings it back.
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        self.run(&self.tool("pg_ctl"), &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"], true);
    }

    /// Starts a stopped server again on the same port and data; what was committed is
    /// kept.
    pub fn start_again(&self) {
        self.pg_ctl_start().unwrap_or_else(|failure| panic!("{failure}"));
    }

    /// Stops the server (fast: open connections are cut) and starts it again on the same
    /// port and data; what was committed is kept.
    pub fn restart(&self) {
        // With its log named, the server does not inherit pg_ctl's output pipes (which
        // would keep them open, and this call waiting, for as long as it runs).
        let (data, log) = (self.data().display().to_string(), self.dir.join("log").display().to_string());
        self.run(&self.tool("pg_ctl"), &["-D", &data, "-l", &log, "-m", "fast", "-w", "-t", "60", "restart"], true);
    }

    fn start(bin: PathBuf) -> TestPostgres {
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("parley-postgres-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates the test PostgreSQL's directory");
        let free_port =
            || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut server = TestPostgres { bin, dir, port: free_port(), as_postgres: root };
        if root {
            server.run("chown", &["-R", "postgres:", &server.dir.display().to_string()], false);
        }
        let data = server.data().display().to_string();
        server.run(
            &server.tool("initdb"),
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            true,
        );
        // A port found free may be taken by another test's server before this one binds
        // it: then another port is tried.
        let mut attempts = 1;
        loop {
            match server.pg_ctl_start() {
                Ok(()) => return server,
                Err(_) if attempts < 3 => {
                    attempts += 1;
                    server.port = free_port();
                }
                Err(failure) => panic!("{failure}"),
            }
        }
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let (data, log) = (self.data().display().to_string(), self.dir.join("log").display().to_string());
        self.try_run(&self.tool("pg_ctl"), &["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60", "start"], true)
            .map(drop)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    /// Runs `program`, as the `postgres` user if `as_postgres` and the tests run as
    /// root; panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str], as_postgres: bool) -> String {
        self.try_run(program, args, as_postgres).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// As [`TestPostgres::run`], with the failure (and the server's log) as an error.
    fn try_run(&self, program: &str, args: &[&str], as_postgres: bool) -> Result<String, String> {
        let mut command = if as_postgres && self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            return Err(format!("{program} {args:?} failed: {out}{}\n{log}", String::from_utf8_lossy(&output.stderr)));
        }
        Ok(out)
    }

    /// A new, empty database on the server, as a `postgres://` URL.
    #[must_use]
    pub fn database(&self) -> String {
        let name = format!("parley_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of the database `name`.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` in the database `name` with `psql`, returning what it prints
    /// (unaligned, without headers).
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let port = self.port.to_string();
        self.run(
            &self.tool("psql"),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", name, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            false,
        )
    }

    /// The directory the server lives in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &self.tool("pg_ctl")]);
            c
        } else {
            Command::new(self.tool("pg_ctl"))
        };
        let stopped = command
            .args(["-D", &data, "-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            eprintln!("the test PostgreSQL in {} did not stop cleanly", self.dir.display());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
