//! Delivery under load on one thread: many short fan-out rounds over IRC, the server
//! and every client on the test's one thread (as `parley serve --threads 1` runs the
//! hub and every connection), each client checking every sender's order as messages
//! arrive, and at the end what each received against what the store holds.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parley_hub::{Cursor, Page, RoomName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const ROUNDS: usize = 40;
const LISTENERS: usize = 24;
const SENDERS: usize = 4;
const MESSAGES: usize = 60;
/// Messages a sender may have said and not yet seen echoed (`echo-message`).
const WINDOW: usize = 8;

/// A sender's own messages seen echoed, which open its window.
#[derive(Default)]
struct Echoes {
    seen: AtomicUsize,
    more: Notify,
}

/// Connects and registers as `nick`, with `echo-message`, and joins the lobby, where the
/// rounds are said.
async fn connect(addr: SocketAddr, nick: &str) -> (Lines, OwnedWriteHalf) {
    let (reader, mut writer) = TcpStream::connect(addr).await.expect("connects").into_split();
    let hello =
        format!("CAP REQ :echo-message\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP END\r\nJOIN #lobby\r\n");
    writer.write_all(hello.as_bytes()).await.expect("sends");
    let mut lines = BufReader::new(reader);
    while !next_line(&mut lines).await.contains(" 366 ") {}
    (lines, writer)
}

type Lines = BufReader<OwnedReadHalf>;

async fn next_line(lines: &mut Lines) -> String {
    let mut line = String::new();
    let read = tokio::time::timeout(support::WAIT, lines.read_line(&mut line)).await;
    assert!(read.expect("a line in time").expect("readable") > 0, "the connection stays open");
    line
}

/// What one client read of a round: each message of the round, `(sender, n)`, in the
/// order it arrived (its own as echoes, which open its sending window).
async fn read_round(mut lines: Lines, round: usize, me: usize, echoes: Arc<Vec<Echoes>>) -> Vec<(usize, usize)> {
    let mut got = Vec::new();
    let mut next = [0; SENDERS];
    let prefix = format!("PRIVMSG #lobby :r{round} ");
    while next.iter().any(|n| *n < MESSAGES) {
        let line = next_line(&mut lines).await;
        let Some(at) = line.find(&prefix) else { continue };
        let mut words = line[at + prefix.len()..].split_whitespace();
        let sender: usize = words.next().and_then(|w| w.parse().ok()).expect("a sender");
        let n: usize = words.next().and_then(|w| w.parse().ok()).expect("a number");
        assert_eq!(n, next[sender], "round {round}: client {me} read {line:?} from sender {sender}");
        next[sender] = n + 1;
        got.push((sender, n));
        if sender == me {
            echoes[me].seen.fetch_add(1, Ordering::AcqRel);
            echoes[me].more.notify_one();
        }
    }
    got
}

#[tokio::test(flavor = "current_thread")]
async fn short_fanout_rounds_on_one_thread_deliver_every_stored_message_in_order() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |config| {
        config.limits.flood_rate_per_sec = 0;
        config.limits.max_connections_per_ip = 1000;
    })
    .await;
    let addr = server.irc.expect("an IRC listener");
    let mut read = Vec::new();
    for round in 0..ROUNDS {
        // Senders are clients 0..SENDERS; every client reads the whole round.
        let echoes: Arc<Vec<Echoes>> = Arc::new((0..SENDERS).map(|_| Echoes::default()).collect());
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        for me in 0..SENDERS + LISTENERS {
            let (lines, writer) = connect(addr, &format!("c{me}r{round}")).await;
            writers.push(writer);
            readers.push(tokio::spawn(read_round(lines, round, me, echoes.clone())));
        }
        let mut senders = Vec::new();
        for (me, mut writer) in writers.drain(..SENDERS).enumerate() {
            let echoes = echoes.clone();
            senders.push(tokio::spawn(async move {
                let mine = &echoes[me];
                for n in 0..MESSAGES {
                    while n >= mine.seen.load(Ordering::Acquire) + WINDOW {
                        let more = mine.more.notified();
                        if n < mine.seen.load(Ordering::Acquire) + WINDOW {
                            break;
                        }
                        tokio::time::timeout(support::WAIT, more).await.expect("an echo in time");
                    }
                    let line = format!("PRIVMSG #lobby :r{round} {me} {n}\r\n");
                    writer.write_all(line.as_bytes()).await.expect("sends");
                }
                writer
            }));
        }
        for sender in senders {
            writers.insert(0, sender.await.expect("sender"));
        }
        let mut round_read = Vec::new();
        for reader in readers {
            round_read.push(reader.await.expect("reader"));
        }
        for mut writer in writers {
            let _ = writer.write_all(b"QUIT :round over\r\n").await;
        }
        read.push(round_read);
    }
    server.shutdown().await;

    // Every message is stored, and each client read its round's messages in the
    // store's order.
    let room = RoomName::parse("lobby", 32).expect("a room name");
    let stored = support::with_owner_store(data.path(), |store| {
        let mut stored: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
        let mut after = 0;
        loop {
            let page = Page { room: room.clone(), cursor: Cursor::After(after), since: 0, upto: u64::MAX, limit: 500 };
            let records = store.page(&page).expect("reads");
            let Some(last) = records.last() else { return stored };
            after = last.seq;
            for record in &records {
                let mut words = record.text.split_whitespace();
                let round =
                    words.next().and_then(|w| w.strip_prefix('r')).and_then(|w| w.parse().ok()).expect("a round");
                let sender = words.next().and_then(|w| w.parse().ok()).expect("a sender");
                let n = words.next().and_then(|w| w.parse().ok()).expect("a number");
                stored.entry(round).or_default().push((sender, n));
            }
        }
    });
    for (round, clients) in read.iter().enumerate() {
        let in_store = &stored[&round];
        assert_eq!(in_store.len(), SENDERS * MESSAGES, "round {round}: every message stored");
        for (me, got) in clients.iter().enumerate() {
            assert_eq!(got, in_store, "round {round}: client {me} read the store's messages in its order");
        }
    }
}
