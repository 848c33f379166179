//! The `parley serve` command as a user runs it: flags, configuration files, the
//! `listening` lines, and SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn parley() -> Command {
    Command::new(env!("CARGO_BIN_EXE_parley"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A server process that is killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn print_config_prints_a_file_that_reads_back_the_same() {
    let printed = parley().args(["serve", "--print-config"]).output().expect("runs");
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).expect("UTF-8");
    for key in ["data_dir", "[[listener]]", "[limits]", "max_line_bytes", "send_queue_bytes", "handshake_timeout_secs"]
    {
        assert!(text.contains(key), "{key} missing from\n{text}");
    }
    let file = temp_dir("print").join("parley.toml");
    std::fs::write(&file, &text).expect("written");
    let again = parley().args(["serve", "--print-config", "--config"]).arg(&file).output().expect("runs");
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);

    // Flags override the file.
    let overridden = parley()
        .args(["serve", "--print-config", "--listen", "native=127.0.0.1:9999", "--data-dir", "/srv/chat", "--config"])
        .arg(&file)
        .output()
        .expect("runs");
    let overridden = String::from_utf8_lossy(&overridden.stdout);
    assert!(overridden.contains("addr = \"127.0.0.1:9999\""), "{overridden}");
    assert!(!overridden.contains("7777"), "{overridden}");
    assert!(overridden.contains("data_dir = \"/srv/chat\""), "{overridden}");
}

#[test]
fn unknown_configuration_keys_are_named() {
    let file = temp_dir("unknown").join("parley.toml");
    std::fs::write(&file, "[limits]\nmax_line_byte = 10\n").expect("written");
    let out = parley().args(["serve", "--config"]).arg(&file).output().expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_line_byte"), "{stderr}");
}

#[test]
fn bad_listen_flags_are_explained() {
    let out = parley().args(["serve", "--listen", "gopher=127.0.0.1:70"]).output().expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown listener kind \"gopher\""), "{stderr}");
}

#[test]
fn every_subcommand_has_help() {
    let commands: [&[&str]; 7] = [
        &["--help"],
        &["serve", "--help"],
        &["chat", "--help"],
        &["bench", "--help"],
        &["log", "export", "--help"],
        &["admin", "users", "add", "--help"],
        &["admin", "users", "list", "--help"],
    ];
    for args in commands {
        let out = parley().args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: parley"), "{args:?}");
    }
}

#[test]
fn sigterm_tells_clients_and_exits_cleanly() {
    let data = temp_dir("sigterm");
    let child = parley()
        .args(["serve", "--listen", "line=127.0.0.1:0", "--listen", "native=127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut server = Running(child);
    let mut stdout = BufReader::new(server.0.stdout.take().expect("stdout"));
    let mut listening = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a listening line");
        listening.push(line.trim_end().to_owned());
    }
    assert!(listening[0].starts_with("listening line=127.0.0.1:"), "{listening:?}");
    assert!(listening[1].starts_with("listening native=127.0.0.1:"), "{listening:?}");
    let port: u16 = listening[0].rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    assert_ne!(port, 0);

    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut prompt = [0u8; 28];
    client.read_exact(&mut prompt).expect("prompt");
    client.write_all(b"alice\n").expect("name");
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut welcome = String::new();
    reader.read_line(&mut welcome).expect("welcome");
    assert!(welcome.ends_with("Welcome to the chat, alice!\n"), "{welcome:?}");

    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("reads until the server closes");
    assert!(rest.ends_with("] Server is shutting down.\n"), "{rest:?}");
    let exit = wait_for_exit(&mut server.0);
    assert!(exit.success(), "exit status {exit:?}");
    let _ = std::fs::remove_dir_all(data);
}

#[test]
fn a_database_from_a_newer_release_is_refused_with_the_release_it_needs() {
    let data = temp_dir("newer");
    let created = parley().args(["admin", "users", "list", "--data-dir"]).arg(&data).output().expect("runs");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let conn = rusqlite::Connection::open(data.join("parley.db")).expect("opens");
    let newer = parley_store::schema_version() + 1;
    conn.pragma_update(None, "user_version", newer).expect("a newer schema");
    conn.execute("UPDATE meta SET value = '9.1.0' WHERE key = 'schema_release'", []).expect("a newer release");
    drop(conn);

    let out = parley()
        .args(["serve", "--listen", "native=127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("schema version {newer}, written by Parley 9.1.0")), "{stderr}");
    assert!(stderr.contains("it needs Parley 9.1.0 or later"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing listened");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_packaged_configuration_reads_back() {
    let packaged = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/parley.toml");
    let out = parley().args(["serve", "--print-config", "--config"]).arg(&packaged).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "data_dir = \"/var/lib/parley\""), "{text}");
}

/// The first `lines` lines the server logs, with `format`, then stops it.
fn first_log_lines(format: &str, lines: usize) -> Vec<String> {
    let data = temp_dir(&format!("log-{format}"));
    let child = parley()
        .args(["serve", "--log-format", format, "--listen", "line=127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut server = Running(child);
    let mut stderr = BufReader::new(server.0.stderr.take().expect("stderr"));
    let mut logged = Vec::new();
    for _ in 0..lines {
        let mut line = String::new();
        stderr.read_line(&mut line).expect("a log line");
        logged.push(line.trim_end().to_owned());
    }
    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    assert!(wait_for_exit(&mut server.0).success());
    let _ = std::fs::remove_dir_all(data);
    logged
}

#[test]
fn logs_are_json_when_asked_and_uncoloured_off_a_terminal() {
    for line in first_log_lines("json", 1) {
        let object: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(object["level"], "INFO", "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    let text = first_log_lines("text", 1);
    assert!(text[0].contains("INFO"), "{text:?}");
    assert!(!text[0].contains('\u{1b}'), "no colour codes when stderr is not a terminal: {text:?}");
    let bad = parley().args(["serve", "--log-format", "xml"]).output().expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("text or json"), "{}", String::from_utf8_lossy(&bad.stderr));
}
