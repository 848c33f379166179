//! The fan-out's own accounting, against a stand-in IRC server that is known to lose one
//! message and to swap two: the report must say exactly that, so a run that reports
//! nothing lost and nothing out of order can be believed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use parley_bench::{fanout, FanoutArgs, Proto, Target};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Which room messages (counted from 0, in the order the server read them) it drops, and
/// which it holds back until the next one has gone out.
const DROPPED: usize = 7;
const HELD: usize = 20;

#[derive(Default)]
struct Room {
    members: Vec<(usize, mpsc::UnboundedSender<String>)>,
    said: usize,
    held: Option<(usize, String)>,
}

impl Room {
    fn relay(&mut self, from: usize, line: &str) {
        let n = self.said;
        self.said += 1;
        if n == DROPPED {
            return;
        }
        if n == HELD {
            self.held = Some((from, line.to_owned()));
            return;
        }
        self.send(from, line);
        if let Some((from, line)) = self.held.take() {
            self.send(from, &line);
        }
    }

    fn send(&self, from: usize, line: &str) {
        for (member, out) in &self.members {
            if *member != from {
                let _ = out.send(line.to_owned());
            }
        }
    }
}

/// Just enough IRC: `001` after `USER`, `366` after `JOIN`, `PRIVMSG` relayed to
/// everyone else, the connection closed after `QUIT`.
async fn client(stream: TcpStream, me: usize, room: Arc<Mutex<Room>>) {
    let (reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let writing = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(reader).lines();
    let mut nick = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.splitn(2, ' ');
        match (words.next().unwrap_or(""), words.next().unwrap_or("")) {
            ("NICK", name) => nick = name.to_owned(),
            ("USER", _) => {
                let _ = tx.send(format!(":stand.in 001 {nick} :Welcome\r\n"));
            }
            ("JOIN", channel) => {
                room.lock().expect("room").members.push((me, tx.clone()));
                let _ = tx.send(format!(":stand.in 366 {nick} {channel} :End of /NAMES list.\r\n"));
            }
            ("PRIVMSG", rest) => {
                let line = format!(":{nick}!u@h PRIVMSG {rest}\r\n");
                room.lock().expect("room").relay(me, &line);
            }
            ("QUIT", _) => break,
            _ => {}
        }
    }
    room.lock().expect("room").members.retain(|(member, _)| *member != me);
    drop(tx);
    let _ = writing.await;
}

async fn stand_in() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("an address");
    let room = Arc::new(Mutex::new(Room::default()));
    tokio::spawn(async move {
        let mut next = 0;
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(client(stream, next, room.clone()));
            next += 1;
        }
    });
    addr
}

#[tokio::test]
async fn one_lost_and_one_late_message_are_reported_as_such() {
    let addr = stand_in().await;
    let clients = 6;
    let report = fanout(FanoutArgs {
        target: Target {
            addr: vec![addr.to_string()],
            proto: Proto::Irc,
            native_version: parley_proto::msg::PROTOCOL_VERSION,
            channel: "#lobby".into(),
            connect_concurrency: 10,
            register_timeout_secs: 10,
            source_addrs: 1,
        },
        clients,
        senders: 2,
        messages: 40,
        window: 4,
        rate: None,
        size: 0,
        server_pid: Vec::new(),
        settle_ms: 0,
        // The run cannot complete (a message is lost): it ends at this deadline.
        timeout_secs: 3,
        repeat: 1,
    })
    .await
    .expect("runs");
    let receivers = clients as u64 - 1;
    // The dropped message reached nobody; the held one reached everyone, late.
    assert_eq!(report.deliveries_received, 2 * 40 * receivers - receivers, "{report}");
    assert_eq!((report.lost, report.out_of_order), (receivers, receivers), "{report}");
    assert!(!report.complete && !report.clean(), "{report}");
}
