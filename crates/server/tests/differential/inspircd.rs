//! InspIRCd, the reference: Debian's package unpacked by `.ci/inspircd` (never
//! installed), run from this folder's `inspircd.conf` on a free loopback port, stopped
//! when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::tempdir::TempDir;

/// The server's name and its users' host, as the config and the loopback make them.
pub const SERVER: &str = "inspircd.test";
pub const HOST: &str = "127.0.0.1";

/// The message of the day, the same as the test's Parley has.
pub const MOTD: &str = "Differential test.\nSecond line.";

pub struct InspIRCd {
    pub addr: SocketAddr,
    pub version: String,
    _child: Child,
    _dir: TempDir,
}

/// Where the unpacked binary is: `PARLEY_INSPIRCD`, or where `.ci/inspircd` puts it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PARLEY_INSPIRCD") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/inspircd/root/usr/sbin/inspircd")
}

impl InspIRCd {
    /// Starts it and waits until it says it runs.
    pub async fn start(binary: &Path) -> InspIRCd {
        let usr = binary.parent().and_then(Path::parent).expect("the binary is ROOT/usr/sbin/inspircd");
        let modules = usr.join("lib/inspircd/modules");
        let dir = TempDir::new();
        // A free port: the system picks one for a listener that is closed at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let template = include_str!("inspircd.conf");
        let config = template
            .replace("@PORT@", &port.to_string())
            .replace("@RUN@", &dir.path().display().to_string())
            .replace("@MODULES@", &modules.display().to_string());
        std::fs::write(dir.path().join("inspircd.conf"), config).expect("writes the config");
        std::fs::write(dir.path().join("motd.txt"), format!("{MOTD}\n")).expect("writes the MOTD");
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(dir.path().join("inspircd.conf"))
            .args(["--nofork", "--runasroot"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starts {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("its output");
        let mut lines = BufReader::new(stdout).lines();
        let mut said = Vec::new();
        let running = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                let ready = line.contains("is now running");
                said.push(line);
                if ready {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(running, Ok(true)), "InspIRCd did not start: {said:#?}");
        // Whatever it says later is read and dropped, so that it never waits on a pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        InspIRCd { addr: SocketAddr::from(([127, 0, 0, 1], port)), version: version(binary), _child: child, _dir: dir }
    }
}

/// What `inspircd --version` says (`InspIRCd-3.15.0-debian`).
fn version(binary: &Path) -> String {
    let output = std::process::Command::new(binary).arg("--version").output();
    let text = output.ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    if text.is_empty() {
        "InspIRCd (version unknown)".to_owned()
    } else {
        text
    }
}
