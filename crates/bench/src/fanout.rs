//! `fanout`: N clients in the lobby (over IRC, in one channel); S of them each send M
//! messages, as fast as a window of unacknowledged messages allows (or at a fixed total
//! rate); every client records the latency, order and loss of what it receives.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::dial::{nick, Dialer, Target};
use crate::irc;
use crate::peer::{self, Incoming, Proto};
use crate::proc_stats::ProcStats;
use crate::report::{FanoutReport, FanoutSeries, Latencies};
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
    /// The server's process id, to report its CPU time and memory. Repeatable (or
    /// comma-separated) for a cluster's processes (nodes, NATS servers): the report gives
    /// each one's CPU time and their sum.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Milliseconds to wait between the last client joining and the first message, so
    /// the server has sent the arrival storm's join notices before the clock starts
    /// (else the first messages queue behind them and its CPU time counts them).
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Give up after this many seconds (each run).
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Run this many times, one after another, each with clients of its own, and sum
    /// up: loss or reordering that shows in one run of fifty is found by many short runs
    /// sooner than by one long one.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
}

/// What every client task shares.
struct Tally {
    /// The run's number, in every message's text.
    run: u32,
    start: Instant,
    received: AtomicU64,
    /// Sequence numbers skipped over when a later one arrived first.
    gaps: AtomicU64,
    out_of_order: AtomicU64,
    /// Per sender: messages seen by the observer (the last client), for line senders'
    /// window, and acknowledgements for native ones.
    progress: Vec<AtomicU64>,
    progressed: Vec<Notify>,
    done: Notify,
    expected: u64,
}

/// What one client's receiver hands back when the run ends.
struct Received {
    reader: peer::Reader,
    latencies: Latencies,
    /// Why it stopped reading before the end of the run (the server closed the
    /// connection, or it broke the protocol).
    failed: Option<BenchError>,
}

/// Runs the fan-out benchmark once.
pub async fn fanout(args: FanoutArgs) -> Result<FanoutReport, BenchError> {
    let run = std::process::id();
    let dialer = Arc::new(Dialer::new(&args.target, args.clients)?);
    fanout_once(&args, &dialer, run, 1).await
}

/// Runs the fan-out benchmark `--repeat` times, each run with clients of its own (the
/// last run's have quit and been closed before the next connect), handing each run's
/// report to `each` as it ends.
pub async fn fanout_series(args: FanoutArgs, mut each: impl FnMut(&FanoutReport)) -> Result<FanoutSeries, BenchError> {
    let dialer = Arc::new(Dialer::new(&args.target, args.clients)?);
    let first = std::process::id();
    let mut reports = Vec::with_capacity(args.repeat);
    for index in 0..args.repeat.max(1) {
        // Nicks differ from run to run, in case a server still holds the last run's.
        let run = first.wrapping_add(u32::try_from(index).unwrap_or(0));
        let report = fanout_once(&args, &dialer, run, index + 1).await?;
        each(&report);
        reports.push(report);
    }
    Ok(FanoutSeries::new(&reports))
}

async fn fanout_once(
    args: &FanoutArgs,
    dialer: &Arc<Dialer>,
    run: u32,
    index: usize,
) -> Result<FanoutReport, BenchError> {
    let proto = args.target.proto;
    let senders = args.senders.min(args.clients);
    if args.clients < 2 || senders == 0 {
        return Err(BenchError::Usage("fanout needs at least 2 clients and 1 sender".into()));
    }
    // The observer that paces line and IRC senders must not be a sender itself: servers
    // do not echo a message to its sender.
    if proto != Proto::Native && senders >= args.clients {
        return Err(BenchError::Usage("over line and IRC, fanout needs a client that does not send".into()));
    }
    // "bench RUN SENDER SEQ MICROS " is at most 6 + 11 + 20 + 20 + 20 bytes.
    if proto == Proto::Irc && args.size + 77 + irc::privmsg_overhead(dialer.channel()) > irc::MAX_LINE {
        return Err(BenchError::Usage(format!("--size {} makes lines over IRC's 512 bytes", args.size)));
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    // Senders are the first clients, so they connect (and, over IRC, join) first.
    let (readers, mut writers): (Vec<_>, Vec<_>) =
        dialer.connect_all(0..args.clients, |i| nick('b', i, run), |_| None).await?.into_iter().unzip();
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let expected = args.messages * senders as u64 * (args.clients as u64 - 1);
    let tally = Arc::new(Tally {
        run,
        start: Instant::now(),
        received: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        progress: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        progressed: (0..senders).map(|_| Notify::new()).collect(),
        done: Notify::new(),
        expected,
    });
    let server_before = args.server_pid.iter().map(|pid| ProcStats::read(*pid)).collect::<Result<Vec<_>, _>>()?;

    let observer = args.clients - 1;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut receivers = Vec::new();
    for (index, reader) in readers.into_iter().enumerate() {
        let tally = tally.clone();
        let role = Role {
            observer: index == observer && proto != Proto::Native,
            sender: (index < senders).then_some(index),
            native: proto == Proto::Native,
        };
        receivers.push(tokio::spawn(receive(reader, tally, senders, role, stopped.clone())));
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
    let mut stuck = false;
    for task in sending {
        let (writer, failed) = task.await.map_err(|e| BenchError::Protocol(e.to_string()))?;
        // A sender that gave up (its window never opened, its socket failed) makes the
        // run incomplete; the series goes on, and the report says what arrived.
        stuck |= failed.is_some();
        senders_done.push(writer);
    }
    let finished = !stuck
        && tokio::time::timeout_at(deadline.into(), async {
            while tally.received.load(Ordering::Relaxed) < expected {
                tally.done.notified().await;
            }
        })
        .await
        .is_ok();
    let elapsed = tally.start.elapsed();
    let server_after = args.server_pid.iter().map(|pid| ProcStats::read(*pid)).collect::<Result<Vec<_>, _>>()?;
    let _ = stop.send(true);
    let mut latencies = Latencies::default();
    let mut readers = Vec::with_capacity(receivers.len());
    let mut disconnected = 0;
    for task in receivers {
        let received = task.await.map_err(|e| BenchError::Protocol(e.to_string()))?;
        latencies.merge(&received.latencies);
        disconnected += usize::from(received.failed.is_some());
        readers.push(received.reader);
    }
    let received = tally.received.load(Ordering::Relaxed);
    let out_of_order = tally.out_of_order.load(Ordering::Relaxed);
    // A late arrival fills a gap counted when a later message overtook it.
    let gaps = tally.gaps.load(Ordering::Relaxed).saturating_sub(out_of_order);
    let report = FanoutReport::new(
        args,
        index,
        senders,
        expected,
        received,
        expected.saturating_sub(received).max(gaps),
        out_of_order,
        disconnected,
        elapsed,
        finished,
        &latencies,
        &server_before.into_iter().zip(server_after).collect::<Vec<_>>(),
    );
    let writers = senders_done.into_iter().chain(listeners);
    leave(readers.into_iter().zip(writers)).await;
    Ok(report)
}

/// Every client quits and waits (briefly) for the server to close its connection, so
/// the next run starts with the room as it was.
async fn leave(clients: impl Iterator<Item = (peer::Reader, peer::Writer)>) {
    let leaving: Vec<_> = clients
        .map(|(mut reader, mut writer)| {
            tokio::spawn(async move {
                if writer.quit().await.is_ok() {
                    reader.until_closed(Duration::from_secs(5)).await;
                }
            })
        })
        .collect();
    for task in leaving {
        let _ = task.await;
    }
}

async fn send(
    mut writer: peer::Writer,
    index: usize,
    tally: Arc<Tally>,
    args: FanoutArgs,
    rate: Option<f64>,
    deadline: Instant,
) -> (peer::Writer, Option<BenchError>) {
    let padding = "p".repeat(args.size);
    let mut text = String::new();
    for seq in 0..args.messages {
        if Instant::now() > deadline {
            return (writer, Some(BenchError::Timeout("the senders ran out of time".into())));
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
                        let lost = BenchError::Timeout("a sender's window never opened: messages are lost".into());
                        return (writer, Some(lost));
                    }
                }
            }
        }
        let sent_at = tally.start.elapsed().as_micros();
        text.clear();
        let _ = write!(text, "bench {} {index} {seq} {sent_at} {padding}", tally.run);
        if let Err(e) = writer.say(&text).await {
            return (writer, Some(e));
        }
    }
    (writer, None)
}

/// What a client does besides receiving.
#[derive(Clone, Copy)]
struct Role {
    /// It paces line and IRC senders: what it has seen of each is that sender's progress.
    observer: bool,
    /// It sends, as sender number N.
    sender: Option<usize>,
    /// Over the native protocol, a sender's progress is its acknowledgements.
    native: bool,
}

/// Reads until the run stops (or the connection fails), checking every sender's
/// sequence numbers.
async fn receive(
    mut reader: peer::Reader,
    tally: Arc<Tally>,
    senders: usize,
    role: Role,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Received {
    let mut next_seq = vec![0u64; senders];
    let mut latencies = Latencies::default();
    // Cancel-safe: stopping interrupts a wait for the socket, or at worst a keepalive
    // answer, and the counts of every read handled so far are in the tally.
    let failed = tokio::select! {
        failed = read_all(&mut reader, &tally, role, &mut next_seq, &mut latencies) => Some(failed),
        _ = stopped.wait_for(|stop| *stop) => None,
    };
    Received { reader, latencies, failed }
}

/// The receiving loop: one clock reading per read (every delivery in it arrived then),
/// and one update of the shared counts.
async fn read_all(
    reader: &mut peer::Reader,
    tally: &Tally,
    role: Role,
    next_seq: &mut [u64],
    latencies: &mut Latencies,
) -> BenchError {
    loop {
        if let Err(e) = reader.read_some().await {
            return e;
        }
        let now = u64::try_from(tally.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let (mut got, mut gaps, mut late) = (0, 0, 0);
        let handled = reader.each(|incoming| match incoming {
            Incoming::Message(text) => {
                // Messages of other runs (history shown on joining) are not this run's.
                let Some((run, sender, seq, sent_at)) = parse(text) else { return };
                if run != tally.run {
                    return;
                }
                let Some(expected) = next_seq.get_mut(sender) else { return };
                if seq < *expected {
                    late += 1;
                } else {
                    gaps += seq - *expected;
                    *expected = seq + 1;
                }
                latencies.push(u32::try_from(now.saturating_sub(sent_at)).unwrap_or(u32::MAX));
                got += 1;
                if role.observer {
                    tally.progress[sender].fetch_max(seq + 1, Ordering::AcqRel);
                    tally.progressed[sender].notify_one();
                }
            }
            Incoming::Ack if role.native => {
                if let Some(index) = role.sender {
                    tally.progress[index].fetch_add(1, Ordering::AcqRel);
                    tally.progressed[index].notify_one();
                }
            }
            Incoming::Ack | Incoming::Other => {}
        });
        if let Err(e) = handled {
            return e;
        }
        if gaps > 0 {
            tally.gaps.fetch_add(gaps, Ordering::Relaxed);
        }
        if late > 0 {
            tally.out_of_order.fetch_add(late, Ordering::Relaxed);
        }
        if got > 0 && tally.received.fetch_add(got, Ordering::Relaxed) + got >= tally.expected {
            tally.done.notify_one();
        }
        if let Err(e) = reader.pay_owed().await {
            return e;
        }
    }
}

/// `bench RUN SENDER SEQ MICROS [padding]`, read without building a string: this runs
/// once per delivery.
fn parse(text: &[u8]) -> Option<(u32, usize, u64, u64)> {
    let rest = text.strip_prefix(b"bench ")?;
    let (run, rest) = number(rest)?;
    let (sender, rest) = number(rest)?;
    let (seq, rest) = number(rest)?;
    let (sent_at, _) = number(rest)?;
    Some((u32::try_from(run).ok()?, usize::try_from(sender).ok()?, seq, sent_at))
}

/// A decimal number ended by a space or the end of the text, and what follows it.
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let rest = &text[digits..];
    let rest = match rest.split_first() {
        None => rest,
        Some((b' ', after)) => after,
        Some(_) => return None,
    };
    let value = text[..digits].iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((value, rest))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn message_texts_parse() {
        assert_eq!(parse(b"bench 42 3 17 123456 ppp"), Some((42, 3, 17, 123_456)));
        assert_eq!(parse(b"bench 42 3 17 9"), Some((42, 3, 17, 9)));
        assert_eq!(parse(b"hello 42 3 17 9"), None);
        assert_eq!(parse(b"bench x"), None);
        assert_eq!(parse(b"bench 42 3 17"), None);
        assert_eq!(parse(b"bench 42 3x 17 9"), None);
        assert_eq!(parse(b"bench 42 3 99999999999999999999 9"), None);
        assert_eq!(parse(b"bench 4294967296 3 17 9"), None, "not a run's number");
    }
}
