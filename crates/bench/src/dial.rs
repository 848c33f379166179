//! How the benchmark's clients reach the server: which server, which protocol, which
//! source address each client uses, how many register at once and for how long. The
//! options are shared by every mode, because every server has its quirks here (ngIRCd's
//! listen backlog is 10; InspIRCd registers clients on a once-a-second timer).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::peer::{self, Dial, Proto, Reader, Writer};
use crate::{loopback, BenchError};

/// Ephemeral ports one source address may use towards one server port: Linux's default
/// range (32768–60999) holds 28,232; leave some to everything else on the machine.
const PORTS_PER_SOURCE: usize = 20_000;

/// The server, the protocol, and how to connect to it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The server's listener for `--proto`, HOST:PORT on loopback; several (repeated or
    /// comma-separated) for the nodes of a cluster: client k connects to the k-th modulo
    /// their number, so clients and senders (the first clients) spread evenly.
    #[arg(long, required = true, value_delimiter = ',')]
    pub addr: Vec<String>,
    /// The protocol the clients speak.
    #[arg(long, value_enum, default_value = "native")]
    pub proto: Proto,
    /// Native: the protocol version the clients ask for. Version 2 receives room
    /// messages with a compact binary header, version 1 with a JSON one.
    #[arg(long, default_value_t = parley_proto::msg::PROTOCOL_VERSION)]
    pub native_version: u32,
    /// IRC: the channel the clients join.
    #[arg(long, default_value = "#lobby")]
    pub channel: String,
    /// Clients connecting and registering at once. ngIRCd's listen backlog is 10, so
    /// more than 10 there overflows it and connections wait for SYN retransmits.
    #[arg(long, default_value_t = 50)]
    pub connect_concurrency: usize,
    /// Seconds one client may take to connect, register (and, over IRC, join).
    /// Generous by default: InspIRCd completes registrations on a once-a-second timer,
    /// and a server that looks up every client's hostname may wait for DNS.
    #[arg(long, default_value_t = 30)]
    pub register_timeout_secs: u64,
    /// Connect from this many loopback addresses (127.0.0.1, 127.0.0.2, …) in turn.
    /// 0 (the default) picks one per 20,000 connections: each source address has about
    /// 28,000 ephemeral ports towards one server port. 1 leaves it to the kernel.
    #[arg(long, default_value_t = 0)]
    pub source_addrs: u32,
}

/// A `Target` made concrete for a run of `count` clients.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    /// One per server address, in the order given.
    dials: Vec<Dial>,
    sources: u32,
    concurrency: Arc<Semaphore>,
}

impl Dialer {
    pub(crate) fn new(target: &Target, count: usize) -> Result<Dialer, BenchError> {
        let addrs = target.addr.iter().map(|addr| loopback(addr)).collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err(BenchError::Usage("no server address".into()));
        }
        // Each server port has its own ephemeral ports per source address, so the
        // clients one source must hold are those of one server.
        let sources = match target.source_addrs {
            0 => u32::try_from(count.div_ceil(addrs.len()).div_ceil(PORTS_PER_SOURCE)).unwrap_or(u32::MAX),
            n => n,
        };
        if sources > 1 && addrs.iter().any(|addr| !addr.is_ipv4()) {
            return Err(BenchError::Usage("spreading source addresses needs IPv4 server addresses".into()));
        }
        let dials = addrs
            .into_iter()
            .map(|addr| Dial {
                addr,
                proto: target.proto,
                native_version: target.native_version,
                source: None,
                channel: target.channel.clone(),
                timeout: Duration::from_secs(target.register_timeout_secs),
            })
            .collect();
        Ok(Dialer { dials, sources, concurrency: Arc::new(Semaphore::new(target.connect_concurrency.max(1))) })
    }

    /// The source address of client `index`: 127.0.0.1 onwards, in turn among the
    /// clients of its server.
    fn source(&self, index: usize) -> Option<IpAddr> {
        if self.sources <= 1 {
            return None;
        }
        let offset = u32::try_from(index / self.dials.len() % self.sources as usize).unwrap_or(0);
        Some(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + offset)))
    }

    /// Connects and registers client `index` as `nick` (over IRC joining `channel`, or
    /// the target's channel), waiting for a place among the clients connecting at once.
    pub(crate) async fn connect(
        &self,
        index: usize,
        nick: &str,
        channel: Option<String>,
    ) -> Result<(Reader, Writer), BenchError> {
        let _permit = self.concurrency.acquire().await.map_err(|e| BenchError::Protocol(e.to_string()))?;
        let mut dial = self.dials[index % self.dials.len()].clone();
        dial.source = self.source(index);
        if let Some(channel) = channel {
            dial.channel = channel;
        }
        peer::connect(&dial, nick).await
    }

    /// Connects clients `indices`, all at once up to the concurrency limit, in order.
    pub(crate) async fn connect_all(
        self: &Arc<Self>,
        indices: impl Iterator<Item = usize>,
        nick: impl Fn(usize) -> String,
        channel: impl Fn(usize) -> Option<String>,
    ) -> Result<Vec<(Reader, Writer)>, BenchError> {
        let tasks: Vec<_> = indices
            .map(|i| {
                let dialer = self.clone();
                let (nick, channel) = (nick(i), channel(i));
                tokio::spawn(async move { dialer.connect(i, &nick, channel).await })
            })
            .collect();
        let mut clients = Vec::with_capacity(tasks.len());
        for task in tasks {
            clients.push(task.await.map_err(|e| BenchError::Protocol(e.to_string()))??);
        }
        Ok(clients)
    }

    /// IRC: the channel.
    pub(crate) fn channel(&self) -> &str {
        &self.dials[0].channel
    }
}

/// A nick unique within a run and between runs close in time, at most 9 characters
/// (RFC 1459's limit, still ngIRCd's default): `prefix`, the client's index, and the
/// generator's process id, in a base of the letters and digits that look like no other
/// (no `0`/`o`, `1`/`l`/`i`, `rn`/`m`, `vv`/`w`), so that a server refusing look-alike
/// nicks takes every one of them.
pub(crate) fn nick(prefix: char, index: usize, run: u32) -> String {
    const DIGITS: &[u8] = b"abcdefghjkpqstxyz23456789";
    let base = DIGITS.len() as u64;
    let digits = |mut n: u64, out: &mut String, width: usize| {
        let mut kept = Vec::new();
        while n > 0 || kept.len() < width {
            kept.push(DIGITS[usize::try_from(n % base).unwrap_or(0)]);
            n /= base;
        }
        out.extend(kept.iter().rev().map(|d| char::from(*d)));
    };
    let mut nick = String::with_capacity(9);
    nick.push(prefix);
    digits(index as u64, &mut nick, 1);
    nick.push('_');
    digits(u64::from(run % 625), &mut nick, 2);
    nick
}

#[cfg(test)]
mod tests {
    use super::{nick, Dialer, Target};
    use crate::peer::Proto;

    fn target(source_addrs: u32) -> Target {
        Target {
            addr: vec!["127.0.0.1:6667".into()],
            proto: Proto::Irc,
            native_version: parley_proto::msg::PROTOCOL_VERSION,
            channel: "#lobby".into(),
            connect_concurrency: 10,
            register_timeout_secs: 5,
            source_addrs,
        }
    }

    #[test]
    fn nicks_are_short_and_distinct() {
        assert_eq!(nick('b', 0, 0), "ba_aa");
        assert_eq!(nick('i', 24, 624), "i9_99");
        let nicks: std::collections::HashSet<_> = (0..50_000).map(|i| nick('i', i, 4242)).collect();
        assert_eq!(nicks.len(), 50_000);
        assert!(nicks.iter().all(|n| n.len() <= 9));
        // Distinct to the server too, which refuses a nick that looks like one in use.
        let looks: std::collections::HashSet<_> = nicks.iter().map(|n| parley_hub::skeleton(n)).collect();
        assert_eq!(looks.len(), 50_000, "no two look alike");
    }

    #[test]
    fn source_addresses_rotate_over_loopback() {
        let one = Dialer::new(&target(0), 19_000).expect("dialer");
        assert_eq!(one.source(7), None);
        let auto = Dialer::new(&target(0), 50_000).expect("dialer");
        assert_eq!(auto.source(0).map(|a| a.to_string()), Some("127.0.0.1".into()));
        assert_eq!(auto.source(4).map(|a| a.to_string()), Some("127.0.0.2".into()));
        let many = Dialer::new(&target(300), 10).expect("dialer");
        assert_eq!(many.source(299).map(|a| a.to_string()), Some("127.0.1.44".into()));
    }

    #[test]
    fn only_loopback_is_a_target() {
        let mut remote = target(1);
        remote.addr = vec!["192.0.2.1:6667".into()];
        assert!(Dialer::new(&remote, 1).is_err());
        remote.addr = vec!["127.0.0.1:6667".into(), "192.0.2.1:6667".into()];
        assert!(Dialer::new(&remote, 1).is_err(), "every address is checked");
    }

    #[test]
    fn clients_spread_over_the_servers_in_turn() {
        let mut three = target(0);
        three.addr = vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into(), "127.0.0.1:7003".into()];
        let dialer = Dialer::new(&three, 60_000).expect("dialer");
        let port = |i: usize| dialer.dials[i % dialer.dials.len()].addr.port();
        assert_eq!((0..6).map(port).collect::<Vec<_>>(), [7001, 7002, 7003, 7001, 7002, 7003]);
        // 20,000 clients a server: one source address is enough for each.
        assert_eq!(dialer.source(5), None);
        let crowded = Dialer::new(&three, 150_000).expect("dialer");
        assert_eq!(crowded.source(0).map(|a| a.to_string()), Some("127.0.0.1".into()));
        assert_eq!(crowded.source(2).map(|a| a.to_string()), Some("127.0.0.1".into()), "first of server 3");
        assert_eq!(crowded.source(3).map(|a| a.to_string()), Some("127.0.0.2".into()), "second of server 1");
    }
}
