//! What the `parley` binary's tests share: a temporary directory, a `parley serve`
//! process, and a client connected to it. Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use parley_client::{Client, Events, Transport};

/// A directory of its own for one test, emptied first and deleted when dropped; named
/// after the test binary and the process, so parallel runs never meet.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let binary = env!("CARGO_CRATE_NAME");
        let dir = std::env::temp_dir().join(format!("parley-{binary}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `parley serve` process on a native listener, killed if the test ends first.
pub(crate) struct Server {
    child: Child,
    /// The native listener's address.
    pub(crate) addr: String,
}

impl Server {
    /// Starts a server on `data` with flood control off: the tests' clients send as
    /// fast as their acknowledgements come back.
    pub(crate) fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// As [`Server::start`], with more arguments to `parley serve`.
    pub(crate) fn start_with(data: &Path, args: &[&str]) -> Server {
        std::fs::create_dir_all(data).expect("data directory");
        let config = data.join("parley.toml");
        std::fs::write(&config, "[limits]\nflood_rate_per_sec = 0\n").expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", "native=127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a listening line");
        let addr = line.trim_end().strip_prefix("listening native=").expect("a native listener").to_owned();
        Server { child, addr }
    }

    /// Ends the server as a crash would: `Child::kill` is SIGKILL on Unix, no shutdown,
    /// no flush, no goodbye.
    pub(crate) fn kill_9(mut self) {
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client at `addr` with the nick `nick`, whose events are read (and dropped) so it
/// never stops reading the socket.
pub(crate) async fn connect(addr: &str, nick: &str) -> Client {
    let (client, events, _) = Client::connect(addr, &Transport::Plain).await.expect("connects");
    tokio::spawn(drain(events));
    client.hello(nick).await.expect("welcomed");
    client
}

/// Reads events until the connection ends.
pub(crate) async fn drain(mut events: Events) {
    while events.next().await.is_some() {}
}

/// A server running in this test's process until [`Running::stop`].
pub(crate) struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Runs a bound server on a task of its own.
    pub(crate) fn start(server: parley_server::Server) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("runs");
        });
        Running { stop, task }
    }

    /// Stops the server and waits, at most `within`, for it to end.
    pub(crate) async fn stop(self, within: std::time::Duration) {
        let _ = self.stop.send(());
        tokio::time::timeout(within, self.task).await.expect("stops in time").expect("the server's task");
    }
}
