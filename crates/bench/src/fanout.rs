//! `fanout`: N clients in the lobby (over IRC, in one channel); S of them each send M
//! messages, as fast as a window of unacknowledged messages allows (or at a fixed total
//! rate); every client records the latency, order and loss of what it receives.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::dial::{nick, Dialer, Target};
use crate::irc;
use crate::peer::{self, Incoming, Proto};
use crate::proc_stats::ProcStats;
use crate::report::{FanoutReport, Latencies};
use crate::BenchError;

/// Options of `parley bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// The server, the protocol, and how to connect.
    #[command(flatten)]
    pub target: Target,
    /// Clients in the room.
    #[arg(long, default_value_t = 500)]
    pub clients: usize,
    /// How many of them send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages per sender.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Messages each sender may have unacknowledged (native: not yet answered; line and
    /// IRC: not yet seen by an observing client).
    #[arg(long, default_value_t = 20)]
    pub window: u64,
    /// A fixed total rate in messages per second instead of as fast as possible.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// The server's process id, to report its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Milliseconds to wait between the last client joining and the first message, so
    /// the server has sent the arrival storm's join notices before the clock starts
    /// (else the first messages queue behind them and its CPU time counts them).
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// What every client task shares.
struct Tally {
    start: Instant,
    received: AtomicU64,
    lost: AtomicU64,
    out_of_order: AtomicU64,
    /// Per sender: messages seen by the observer (the last client), for line senders'
    /// window, and acknowledgements for native ones.
    progress: Vec<AtomicU64>,
    progressed: Vec<Notify>,
    done: Notify,
    expected: u64,
}

/// Runs the fan-out benchmark.
pub async fn fanout(args: FanoutArgs) -> Result<FanoutReport, BenchError> {
    let proto = args.target.proto;
    let dialer = Arc::new(Dialer::new(&args.target, args.clients)?);
    let senders = args.senders.min(args.clients);
    if args.clients < 2 || senders == 0 {
        return Err(BenchError::Usage("fanout needs at least 2 clients and 1 sender".into()));
    }
    // The observer that paces line and IRC senders must not be a sender itself: servers
    // do not echo a message to its sender.
    if proto != Proto::Native && senders >= args.clients {
        return Err(BenchError::Usage("over line and IRC, fanout needs a client that does not send".into()));
    }
    // "bench SENDER SEQ MICROS " is at most 6 + 20 + 20 + 20 bytes.
    if proto == Proto::Irc && args.size + 66 + irc::privmsg_overhead(dialer.channel()) > irc::MAX_LINE {
        return Err(BenchError::Usage(format!("--size {} makes lines over IRC's 512 bytes", args.size)));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let run = std::process::id();
    // Senders are the first clients, so they connect (and, over IRC, join) first.
    let (readers, mut writers): (Vec<_>, Vec<_>) =
        dialer.connect_all(0..args.clients, |i| nick('b', i, run), |_| None).await?.into_iter().unzip();
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let expected = args.messages * senders as u64 * (args.clients as u64 - 1);
    let tally = Arc::new(Tally {
        start: Instant::now(),
        received: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        progress: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        progressed: (0..senders).map(|_| Notify::new()).collect(),
        done: Notify::new(),
        expected,
    });
    let server_before = args.server_pid.map(ProcStats::read).transpose()?;

    let observer = args.clients - 1;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    for (index, reader) in readers.into_iter().enumerate() {
        let tally = tally.clone();
        let is_observer = index == observer && proto != Proto::Native;
        let sender_index = (index < senders).then_some(index);
        let stopped = stopped.clone();
        receivers.push(tokio::spawn(receive(reader, tally, senders, is_observer, sender_index, proto, stopped)));
    }
    let per_sender_rate = args.rate.map(|rate| rate / senders as f64);
    // The listeners' write halves stay open until the end: dropping one would close
    // that client's side and make it leave the room.
    let listeners = writers.split_off(senders);
    let mut sending = Vec::new();
    for (index, writer) in writers.into_iter().enumerate() {
        let tally = tally.clone();
        let args = args.clone();
        sending.push(tokio::spawn(send(writer, index, tally, args, per_sender_rate, deadline)));
    }
    // The senders' write halves, too, stay open until the end.
    let mut senders_done = Vec::with_capacity(sending.len());
    for task in sending {
        senders_done.push(task.await.map_err(|e| BenchError::Protocol(e.to_string()))??);
    }
    let finished = tokio::time::timeout_at(deadline.into(), async {
        while tally.received.load(Ordering::Relaxed) < expected {
            tally.done.notified().await;
        }
    })
    .await
    .is_ok();
    let elapsed = tally.start.elapsed();
    let server_after = args.server_pid.map(ProcStats::read).transpose()?;
    let _ = stop.send(true);
    let mut latencies = Latencies::default();
    for task in receivers {
        if let Ok(Ok(samples)) = task.await {
            latencies.extend(samples);
        }
    }
    drop((listeners, senders_done));
    let received = tally.received.load(Ordering::Relaxed);
    Ok(FanoutReport::new(
        &args,
        senders,
        expected,
        received,
        expected.saturating_sub(received).max(tally.lost.load(Ordering::Relaxed)),
        tally.out_of_order.load(Ordering::Relaxed),
        elapsed,
        finished,
        latencies,
        server_before.zip(server_after),
    ))
}

async fn send(
    mut writer: peer::Writer,
    index: usize,
    tally: Arc<Tally>,
    args: FanoutArgs,
    rate: Option<f64>,
    deadline: Instant,
) -> Result<peer::Writer, BenchError> {
    let padding = "p".repeat(args.size);
    for seq in 0..args.messages {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout("the senders ran out of time".into()));
        }
        match rate {
            Some(rate) => {
                let due = tally.start + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            None => {
                while seq >= tally.progress[index].load(Ordering::Acquire) + args.window {
                    let notified = tally.progressed[index].notified();
                    if seq < tally.progress[index].load(Ordering::Acquire) + args.window {
                        break;
                    }
                    if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                        return Err(BenchError::Timeout("a sender's window never opened: messages are lost".into()));
                    }
                }
            }
        }
        let sent_at = tally.start.elapsed().as_micros();
        writer.say(&format!("bench {index} {seq} {sent_at} {padding}")).await?;
    }
    Ok(writer)
}

/// Reads until aborted; returns its latency samples in microseconds.
async fn receive(
    mut reader: peer::Reader,
    tally: Arc<Tally>,
    senders: usize,
    is_observer: bool,
    own_index: Option<usize>,
    proto: Proto,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<u32>, BenchError> {
    let mut next_seq = vec![0u64; senders];
    let mut samples = Vec::new();
    while !*stopped.borrow() {
        let mut got = 0;
        let draining = reader.drain(|incoming| match incoming {
            Incoming::Message(text) => {
                let Some((sender, seq, sent_at)) = parse(text) else { return };
                let Some(expected) = next_seq.get_mut(sender) else { return };
                if seq < *expected {
                    tally.out_of_order.fetch_add(1, Ordering::Relaxed);
                } else {
                    if seq > *expected {
                        tally.lost.fetch_add(seq - *expected, Ordering::Relaxed);
                    }
                    *expected = seq + 1;
                }
                let now = tally.start.elapsed().as_micros();
                samples.push(u32::try_from(now.saturating_sub(sent_at)).unwrap_or(u32::MAX));
                got += 1;
                if is_observer {
                    tally.progress[sender].store(seq + 1, Ordering::Release);
                    tally.progressed[sender].notify_one();
                }
            }
            Incoming::Ack if proto == Proto::Native => {
                if let Some(index) = own_index {
                    tally.progress[index].fetch_add(1, Ordering::AcqRel);
                    tally.progressed[index].notify_one();
                }
            }
            Incoming::Ack | Incoming::Other => {}
        });
        // Cancel-safe: an interrupted drain has only waited for the socket.
        tokio::select! {
            drained = draining => drained?,
            _ = stopped.changed() => break,
        }
        if got > 0 && tally.received.fetch_add(got, Ordering::Relaxed) + got >= tally.expected {
            tally.done.notify_one();
        }
    }
    Ok(samples)
}

/// `bench SENDER SEQ MICROS [padding]`.
fn parse(text: &[u8]) -> Option<(usize, u64, u128)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "bench" {
        return None;
    }
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn message_texts_parse() {
        assert_eq!(parse(b"bench 3 17 123456 ppp"), Some((3, 17, 123_456)));
        assert_eq!(parse(b"bench 3 17 9"), Some((3, 17, 9)));
        assert_eq!(parse(b"hello 3 17 9"), None);
        assert_eq!(parse(b"bench x"), None);
    }
}
