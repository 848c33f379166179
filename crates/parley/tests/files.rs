//! A 50 MB file between two `parley chat` clients through a real `parley serve`
//! process: the bytes arrive intact (SHA-256 equal on both sides) and the server's
//! peak memory grows far less than the file, because it streams instead of buffering.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use parley_client::{Audience, Client, Event, Events, FileInfo, Kind, Transport};

const SIZE: usize = 50 * 1024 * 1024;

/// The most the server's peak resident memory may grow during the transfer.
const MAX_GROWTH_KB: u64 = 16 * 1024;

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", "native=127.0.0.1:0", "--data-dir"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a listening line");
        let addr = line.trim_end().strip_prefix("listening native=").expect("a native listener").to_owned();
        Server { child, addr }
    }

    /// The process's peak resident set size so far, in KiB (Linux's VmHWM).
    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("a number of kB")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("parley-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Writes `size` pseudo-random bytes (xorshift: incompressible, and fast to make).
fn random_file(path: &Path, size: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("created"));
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).expect("written");
        left -= n;
    }
    file.flush().expect("flushed");
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("readable");
    ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

async fn connect(server: &Server, nick: &str) -> (Client, Events) {
    let (client, events, _) = Client::connect(&server.addr, &Transport::Plain).await.expect("connects");
    client.hello(nick).await.expect("welcomed");
    (client, events)
}

async fn next_file(events: &mut Events) -> FileInfo {
    loop {
        match events.next().await.expect("an event") {
            Event::Message { kind: Kind::File, text, .. } => return FileInfo::from_text(&text).expect("a file"),
            Event::Closed { reason } => panic!("closed: {reason}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_pass_intact_and_the_server_does_not_hold_them() {
    let dir = temp_dir("fifty");
    let server = Server::start(&dir.join("data"));
    let source = dir.join("random.bin");
    random_file(&source, SIZE);

    let (alice, _alice_events) = connect(&server, "alice").await;
    let (bob, mut bob_events) = connect(&server, "bob").await;
    // Warm up the paths a transfer uses (blocking pool, file store) with a small file,
    // so the baseline is the server ready to transfer, not the server idle.
    let small = dir.join("small.bin");
    random_file(&small, 100_000);
    alice.send_file(&small, Audience::Room("lobby".into()), |_| {}).await.expect("shared");
    let info = next_file(&mut bob_events).await;
    bob.get_file(&info.file, Some(&dir.join("small.copy")), |_| {}).await.expect("fetched");
    let before = server.peak_rss_kb();

    let started = Instant::now();
    let mut updates = 0;
    let sent = alice.send_file(&source, Audience::Room("lobby".into()), |_| updates += 1).await.expect("shared");
    let upload = started.elapsed();
    assert!(updates > 100, "progress was reported as pieces were confirmed ({updates} times)");
    let info = next_file(&mut bob_events).await;
    assert_eq!(info, sent.info);

    let started = Instant::now();
    let copy = dir.join("copy.bin");
    let got = bob.get_file(&info.file, Some(&copy), |_| {}).await.expect("fetched");
    let download = started.elapsed();
    let after = server.peak_rss_kb();

    assert_eq!(got.path, copy);
    assert_eq!(sha256(&copy), sha256(&source));
    assert_eq!(sha256(&copy), info.sha256);
    let mb = SIZE as f64 / 1e6;
    eprintln!(
        "50 MiB: upload {:.2} s ({:.0} MB/s), download {:.2} s ({:.0} MB/s); server peak RSS {before} kB -> {after} kB (+{} kB)",
        upload.as_secs_f64(),
        mb / upload.as_secs_f64(),
        download.as_secs_f64(),
        mb / download.as_secs_f64(),
        after - before
    );
    assert!(
        after - before < MAX_GROWTH_KB,
        "the server's peak memory grew by {} kB moving a {} kB file",
        after - before,
        SIZE / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
}
