//! History as the server process keeps it: acknowledged messages survive `kill -9`, and
//! `parley log export` reads a room's history while the server runs.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use parley_client::{Client, HistoryCursor, PastMessage};

const WAIT: Duration = Duration::from_secs(30);

use support::{connect, Server, TempDir};

/// Every message of `room`, paging forward from the start as a reconnecting client does.
async fn everything(client: &Client, room: &str) -> Vec<PastMessage> {
    let mut all: Vec<PastMessage> = Vec::new();
    loop {
        let after = all.last().map_or(0, |m| m.seq);
        let (_, page) = client.history(Some(room), HistoryCursor::After(after), Some(500)).await.expect("a page");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_exactly_once_and_in_order() {
    const CLIENTS: usize = 5;
    const MESSAGES: usize = 600;
    let data = TempDir::new("kill9");
    let server = Server::start(&data.0);
    let mut sending = Vec::new();
    for c in 0..CLIENTS {
        let client = connect(&server.addr, &format!("writer{c}")).await;
        if c == 0 {
            // A registered room (its creator is logged in), whose history outlives its
            // members and restarts; a guest's room would start a new life after one.
            client.register("writer0-password").await.expect("registers");
        }
        client.join("dev").await.expect("joins dev");
        sending.push(tokio::spawn(async move {
            let mut acked = Vec::with_capacity(MESSAGES);
            for n in 0..MESSAGES {
                let room = if n % 2 == 0 { "lobby" } else { "dev" };
                let text = format!("writer{c} message {n}");
                let (seq, _) = client.say(room, &text).await.expect("acknowledged");
                acked.push((room, seq, text));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for sender in sending {
        acked.extend(tokio::time::timeout(WAIT, sender).await.expect("in time").expect("sent"));
    }
    // Right after the last acknowledgement: no chance to flush anything more.
    server.kill_9();

    let server = Server::start(&data.0);
    let reader = connect(&server.addr, "auditor").await;
    reader.join("dev").await.expect("joins dev");
    for room in ["lobby", "dev"] {
        let stored = tokio::time::timeout(WAIT, everything(&reader, room)).await.expect("read in time");
        assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq), "{room}: per-room order");
        let by_seq: HashMap<u64, &PastMessage> = stored.iter().map(|m| (m.seq, m)).collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for message in &stored {
            *count.entry(message.text.as_str()).or_default() += 1;
        }
        let mine: Vec<_> = acked.iter().filter(|(r, _, _)| *r == room).collect();
        assert_eq!(mine.len(), CLIENTS * MESSAGES / 2);
        for (_, seq, text) in mine {
            let found = by_seq.get(seq).map(|m| m.text.as_str());
            assert_eq!(found, Some(text.as_str()), "{room}: acknowledged seq {seq} is in history");
            assert_eq!(count.get(text.as_str()), Some(&1), "{room}: {text:?} is there exactly once");
        }
    }
    // And the rooms go on from where they were.
    let (seq, _) = reader.say("dev", "after the crash").await.expect("acknowledged");
    let last_dev = acked.iter().filter(|(r, _, _)| *r == "dev").map(|(_, s, _)| *s).max().expect("some");
    assert!(seq > last_dev, "seq {seq} continues after {last_dev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_export_reads_a_room_while_the_server_runs() {
    let data = TempDir::new("export");
    let server = Server::start(&data.0);
    let alice = connect(&server.addr, "alice").await;
    alice.join("dev").await.expect("joins");
    for text in ["first", "second\nwith a second line", "third"] {
        alice.say("dev", text).await.expect("acknowledged");
    }
    alice.say("lobby", "not in dev").await.expect("acknowledged");

    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["log", "export", "--data-dir"])
            .arg(&data.0)
            .args(args)
            .output()
            .expect("runs")
    };
    let text = export(&["--room", "dev"]);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8(text.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("--- ") && lines[0].ends_with(" ---"), "a day line: {lines:?}");
    for (line, said) in lines[1..].iter().zip(["first", "second", "with a second line", "third"]) {
        assert_eq!(line.get(..1), Some("["), "{line}");
        assert_eq!(line.get(9..11), Some("] "), "{line}");
        assert_eq!(line.get(11..), Some(format!("alice: {said}").as_str()), "{line}");
    }

    let jsonl = export(&["--room", "DEV", "--format", "jsonl"]);
    assert!(jsonl.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8(jsonl.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(rows[1]["text"], "second\nwith a second line");
    assert_eq!(rows[0]["from"], "alice");

    let future = export(&["--room", "dev", "--since", "2999-01-01"]);
    assert!(future.status.success() && future.stdout.is_empty(), "nothing since a future day");
    let unknown = export(&["--room", "nowhere"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no room called nowhere"), "a clear error");
    let bad_date = export(&["--room", "dev", "--since", "yesterday"]);
    assert!(!bad_date.status.success());
    assert!(String::from_utf8_lossy(&bad_date.stderr).contains("--since takes YYYY-MM-DD"));
    drop(server);
}

/// Runs `parley admin --data-dir DATA ARGS`, with `input` on standard input.
fn admin(data: &Path, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    // A command that refuses its arguments exits without reading its input.
    match child.stdin.take().expect("stdin").write_all(input.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.expect("written"),
    }
    child.wait_with_output().expect("finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_manages_accounts_that_users_log_in_to() {
    let data = TempDir::new("admin");
    let added = admin(&data.0, &["users", "add", "Grace"], "first-password\n");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let again = admin(&data.0, &["users", "add", "grace"], "other-password\n");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let weak = admin(&data.0, &["users", "add", "henry"], "short\n");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8 characters"));
    let invalid = admin(&data.0, &["users", "add", "no spaces"], "first-password\n");
    assert!(!invalid.status.success(), "names follow the nick rules");
    let listed = admin(&data.0, &["users", "list"], "");
    let listed = String::from_utf8(listed.stdout).expect("UTF-8");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with("Grace\tregistered "), "{listed}");

    let granted = admin(&data.0, &["users", "grant", "grace", "admin"], "");
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));
    let unknown = admin(&data.0, &["users", "grant", "nobody", "admin"], "");
    assert!(!unknown.status.success(), "only accounts get roles");
    let revoked = admin(&data.0, &["users", "revoke", "grace", "admin"], "");
    assert!(revoked.status.success());
    let audit = String::from_utf8(admin(&data.0, &["audit"], "").stdout).expect("UTF-8");
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].ends_with("parley admin\trevoke admin Grace")
            || lines[0].ends_with("parley admin\trevoke admin grace"),
        "{audit}"
    );
    assert!(lines[1].contains("grant admin"), "{audit}");

    let server = Server::start(&data.0);
    let user = connect(&server.addr, "visitor").await;
    assert_eq!(user.login(Some("grace"), "first-password").await.expect("logs in"), "Grace");
    // Reset while the server runs: the next login needs the new password.
    let reset = admin(&data.0, &["users", "reset-password", "grace"], "second-password\n");
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    let other = connect(&server.addr, "other").await;
    assert!(other.login(Some("grace"), "first-password").await.is_err());
    let deleted = admin(&data.0, &["users", "delete", "GRACE"], "");
    assert!(deleted.status.success());
    assert!(other.login(Some("grace"), "second-password").await.is_err(), "deleted");
    let missing = admin(&data.0, &["users", "delete", "grace"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no account called grace"));
}

/// Text that would drive a terminal: an OSC 52 clipboard write (ending in BEL), a screen
/// clear, and a CSI in its 8-bit C1 form.
const HOSTILE: &str = "\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J \u{9b}31m";

/// What is left of [`HOSTILE`] on a terminal: the controls replaced, visibly.
const DEFUSED: &str = "\u{FFFD}]52;c;ZWNobyBwd25lZA==\u{FFFD} \u{FFFD}[2J \u{FFFD}31m";

fn assert_printable(shown: &str) {
    assert!(!shown.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "a control character: {shown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_and_the_text_export_are_printable_and_jsonl_is_exact() {
    use parley_client::Request;
    let data = TempDir::new("hostile");
    assert!(admin(&data.0, &["users", "add", "alice"], "alice-password\n").status.success());
    let server = Server::start(&data.0);
    let alice = connect(&server.addr, "alice").await;
    alice.login(Some("alice"), "alice-password").await.expect("logged in");
    alice.join("dev").await.expect("joins");
    alice.say("dev", HOSTILE).await.expect("acknowledged");
    let topic = Request::Topic { room: Some("dev".into()), topic: Some(HOSTILE.into()) };
    alice.call(&topic).await.expect("topic set");
    let ban =
        Request::Ban { room: Some("dev".into()), mask: "mallory".into(), seconds: None, reason: Some(HOSTILE.into()) };
    alice.call(&ban).await.expect("banned");

    let export = |format: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["log", "export", "--room", "dev", "--format", format, "--data-dir"])
            .arg(&data.0)
            .output()
            .expect("runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let text = export("text");
    assert_printable(&text);
    assert!(text.lines().any(|l| l.ends_with(&format!("] alice: {DEFUSED}"))), "{text}");
    // JSON escapes what it must: the export keeps the text exactly as it was said.
    let jsonl = export("jsonl");
    let row: serde_json::Value = serde_json::from_str(jsonl.lines().next().expect("a line")).expect("JSON");
    assert_eq!(row["text"], HOSTILE);

    let audit = admin(&data.0, &["audit"], "");
    assert!(audit.status.success());
    let audit = String::from_utf8(audit.stdout).expect("UTF-8");
    assert_printable(&audit);
    assert!(audit.lines().any(|l| l.contains(&format!("alice\ttopic {DEFUSED} in dev"))), "{audit}");
    assert!(audit.lines().any(|l| l.contains(&format!("alice\tban mallory in dev ({DEFUSED}"))), "{audit}");
    drop(server);
}
