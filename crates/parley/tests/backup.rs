//! `parley admin backup` and `restore` as an operator runs them: a backup taken while
//! messages and files flow through a running server restores to a data directory whose
//! history is a prefix of what was acknowledged, every file it names present, and a
//! server started on it serves that history; damaged and newer backups are refused.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley_client::{Audience, Client, FileInfo, HistoryCursor, Kind, PastMessage};

const WAIT: Duration = Duration::from_secs(30);

use support::{connect, Server, TempDir};

/// `parley admin ARGS`, finished.
async fn admin(args: &[&str], paths: &[&Path]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"));
    command.arg("admin").args(args).args(paths).stdin(Stdio::null());
    tokio::time::timeout(WAIT, command.output()).await.expect("in time").expect("runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every message of `room`, paging forward from the start.
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

/// What a writer had acknowledged: per room, seq -> the text said or the file shared.
type Acked = Arc<Mutex<HashMap<&'static str, BTreeMap<u64, Said>>>>;

#[derive(Debug, Clone, PartialEq)]
enum Said {
    Text(String),
    File(FileInfo),
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends a message every 20 ms (50 a second), alternating between the lobby and dev,
/// and shares a file in dev every 25th, until `stop`; counts acknowledgements in
/// `count`.
async fn write(
    client: Client,
    me: usize,
    acked: Acked,
    count: tokio::sync::watch::Sender<usize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    files: PathBuf,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let (room, said, seq) = if n % 25 == 24 {
            let path = files.join(format!("w{me}-{n}.bin"));
            std::fs::write(&path, format!("file {n} of writer {me} ").repeat(100)).expect("written");
            let sent = client.send_file(&path, Audience::Room("dev".into()), |_| {}).await.expect("shared");
            ("dev", Said::File(sent.info), sent.seq)
        } else {
            let room = if n % 2 == 0 { "lobby" } else { "dev" };
            let text = format!("writer{me} message {n}");
            let (seq, _) = client.say(room, &text).await.expect("acknowledged");
            (room, Said::Text(text), seq)
        };
        acked.lock().expect("lock").entry(room).or_default().insert(seq, said);
        count.send_modify(|c| *c += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_a_consistent_prefix_that_a_server_serves() {
    let dir = TempDir::new("live");
    let (data, dest, restored, files) =
        (dir.0.join("data"), dir.0.join("backup"), dir.0.join("restored"), dir.0.join("files"));
    std::fs::create_dir_all(&files).expect("files dir");
    let server = Server::start(&data);

    let acked: Acked = Arc::default();
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for me in 0..2 {
        let client = connect(&server.addr, &format!("writer{me}")).await;
        if me == 0 {
            // A registered room, whose history outlives its members.
            client.register("writer0-password").await.expect("registers");
        }
        client.join("dev").await.expect("joins dev");
        let task = write(client, me, acked.clone(), count_tx.clone(), stopped.clone(), files.clone());
        writers.push(tokio::spawn(task));
    }

    // Once 100 messages are in, back up while they go on.
    let wait_for = |count: &mut tokio::sync::watch::Receiver<usize>, n: usize| {
        let mut count = count.clone();
        async move {
            tokio::time::timeout(WAIT, count.wait_for(|c| *c >= n)).await.expect("in time").expect("writing");
        }
    };
    wait_for(&mut count, 100).await;
    let before: HashMap<&str, u64> = acked
        .lock()
        .expect("lock")
        .iter()
        .map(|(room, said)| (*room, said.keys().max().copied().unwrap_or(0)))
        .collect();
    let out = admin(&["backup", "--data-dir"], &[&data, &dest]).await;
    assert!(out.status.success(), "backup: {}", stderr(&out));
    let after_backup = *count.borrow();
    // The check reads the live data directory too, and finds nothing wrong.
    let checked = admin(&["check", "--data-dir"], &[&data]).await;
    assert!(checked.status.success(), "check: {}", String::from_utf8_lossy(&checked.stdout));
    wait_for(&mut count, after_backup + 100).await;
    stop.send(true).expect("stops the writers");
    for writer in writers {
        tokio::time::timeout(WAIT, writer).await.expect("in time").expect("wrote");
    }
    drop(server);
    let acked = acked.lock().expect("lock").clone();

    let out = admin(&["restore", "--data-dir"], &[&restored, &dest]).await;
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let server = Server::start(&restored);
    let reader = connect(&server.addr, "auditor").await;
    reader.join("dev").await.expect("joins dev");
    let downloads = dir.0.join("downloads");
    std::fs::create_dir_all(&downloads).expect("downloads dir");
    let mut files_checked = 0;
    for room in ["lobby", "dev"] {
        let stored = tokio::time::timeout(WAIT, everything(&reader, room)).await.expect("read in time");
        let sent = &acked[room];
        let seqs: Vec<u64> = stored.iter().map(|m| m.seq).collect();
        let prefix: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(seqs, prefix, "{room}: a prefix, nothing missing, nothing half-written");
        let kept = seqs.len() as u64;
        assert!(
            kept >= before[room],
            "{room}: everything acknowledged before the backup began ({}), has {kept}",
            before[room]
        );
        assert!(kept < *sent.keys().max().expect("sent"), "{room}: not what came after the backup");
        for message in &stored {
            match (&sent[&message.seq], message.kind) {
                (Said::Text(text), Kind::Text) => assert_eq!(&message.text, text, "{room} {}", message.seq),
                (Said::File(info), Kind::File) => {
                    let named: FileInfo = serde_json::from_str(&message.text).expect("a file");
                    assert_eq!(&named, info);
                    // The restored server has it, and serves it intact.
                    let fetched = reader.get_file(&info.file, Some(&downloads), |_| {}).await.expect("downloads");
                    assert_eq!(sha256(&std::fs::read(&fetched.path).expect("read")), info.sha256);
                    files_checked += 1;
                }
                (said, kind) => panic!("{room} {}: {kind:?} stored for {said:?}", message.seq),
            }
        }
    }
    assert!(files_checked >= 2, "the backup held shared files ({files_checked})");

    // And the history goes on from where the backup left it.
    let dev_kept = everything(&reader, "dev").await.len() as u64;
    let (seq, _) = reader.say("dev", "after the restore").await.expect("acknowledged");
    assert_eq!(seq, dev_kept + 1);
}

/// A data directory with history, files and a generated TLS key, written by a server
/// that has stopped.
async fn quiet_data_dir(data: &Path) {
    let server = Server::start(data);
    let alice = connect(&server.addr, "alice").await;
    alice.say("lobby", "hello").await.expect("said");
    let file = data.with_extension("txt");
    std::fs::write(&file, "some bytes to share").expect("written");
    alice.send_file(&file, Audience::Room("lobby".into()), |_| {}).await.expect("shared");
    drop(server);
    let tls = data.join("tls");
    std::fs::create_dir_all(&tls).expect("tls dir");
    std::fs::write(tls.join("key.pem"), "not really a key").expect("key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tls.join("key.pem"), std::fs::Permissions::from_mode(0o600)).expect("private");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("reads") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_incomplete_and_newer_backups_are_refused_and_nothing_is_overwritten() {
    let dir = TempDir::new("refused");
    let (data, dest) = (dir.0.join("data"), dir.0.join("backup"));
    quiet_data_dir(&data).await;
    let out = admin(&["backup", "--data-dir"], &[&data, &dest]).await;
    assert!(out.status.success(), "backup: {}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dest.join("tls/key.pem")).expect("the key is backed up").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key stays private");
        let cloaks = std::fs::metadata(dest.join("keys/cloak.key")).expect("the cloak key is backed up");
        assert_eq!(cloaks.permissions().mode() & 0o777, 0o600, "the cloak key stays private");
        let mode = std::fs::metadata(&dest).expect("the backup").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the backup is its owner's only");
    }

    // A second backup into the same place, or a restore over a data directory: refused.
    let again = admin(&["backup", "--data-dir"], &[&data, &dest]).await;
    assert!(!again.status.success() && stderr(&again).contains("not empty"), "{}", stderr(&again));
    let over = admin(&["restore", "--data-dir"], &[&data, &dest]).await;
    assert!(!over.status.success() && stderr(&over).contains("not empty"), "{}", stderr(&over));

    // A restore of an intact backup works; it is what the damaged ones are made from.
    let good = dir.0.join("good");
    let out = admin(&["restore", "--data-dir"], &[&good, &dest]).await;
    assert!(out.status.success(), "restore: {}", stderr(&out));

    let case = |name: &str| {
        let copy = dir.0.join(name);
        copy_dir(&dest, &copy);
        copy
    };
    let refused = |out: &Output, words: &[&str]| {
        assert!(!out.status.success());
        let text = stderr(out);
        for word in words {
            assert!(text.contains(word), "{word:?} not in {text}");
        }
    };

    // One flipped byte in a shared file.
    let flipped = case("flipped");
    let content = std::fs::read_dir(flipped.join("files"))
        .expect("files")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_name().is_some_and(|n| n.len() == 2))
        .and_then(|d| std::fs::read_dir(d).expect("content dir").next())
        .expect("a content")
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&content).expect("read");
    bytes[0] ^= 1;
    std::fs::write(&content, bytes).expect("written");
    let target = dir.0.join("from-flipped");
    refused(&admin(&["restore", "--data-dir"], &[&target, &flipped]).await, &["damaged backup", "SHA-256"]);
    assert!(!target.exists(), "nothing is left behind");

    // A missing file, and a missing manifest.
    let missing = case("missing");
    std::fs::remove_file(missing.join("parley.db")).expect("removed");
    refused(
        &admin(&["restore", "--data-dir"], &[&target, &missing]).await,
        &["damaged backup", "parley.db is missing"],
    );
    let unfinished = case("unfinished");
    std::fs::remove_file(unfinished.join("manifest.json")).expect("removed");
    refused(&admin(&["restore", "--data-dir"], &[&target, &unfinished]).await, &["not a complete backup"]);

    // A manifest that names a file outside the backup.
    let escaping = case("escaping");
    let manifest = escaping.join("manifest.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).expect("read")).expect("JSON");
    json["files"]["../outside"] = serde_json::json!({ "size": 1, "sha256": "00" });
    std::fs::write(&manifest, serde_json::to_vec(&json).expect("JSON")).expect("written");
    refused(&admin(&["restore", "--data-dir"], &[&target, &escaping]).await, &["damaged backup", "../outside"]);
    assert!(!dir.0.join("outside").exists() && !target.exists(), "nothing is written");

    // A backup from a newer release.
    let newer = case("newer");
    let manifest = newer.join("manifest.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).expect("read")).expect("JSON");
    json["schema"] = (parley_store::schema_version() + 1).into();
    json["schema_release"] = "9.1.0".into();
    std::fs::write(&manifest, serde_json::to_vec(&json).expect("JSON")).expect("written");
    refused(&admin(&["restore", "--data-dir"], &[&target, &newer]).await, &["it needs Parley 9.1.0 or later"]);
    assert!(!target.exists(), "nothing is left behind");
}
