//! IRCv3 `draft/chathistory` with every subcommand and both kinds of reference, checked
//! the way the IRC test suites check servers: ten messages said in a channel, each in a
//! millisecond of its own, then LATEST, BEFORE, AFTER, BETWEEN (both ways), AROUND and
//! TARGETS, by `msgid=` and by `timestamp=`, and the refusals.

mod support;

use std::time::Duration;

use support::IrcClient;

const CAPS: &str = "message-tags server-time echo-message batch draft/chathistory";

/// A message as history gives it back: its id, its time, its text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Said {
    msgid: String,
    time: String,
    text: String,
}

fn tag<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';').find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
}

fn said(line: &str) -> Said {
    let text = line.split(" :").last().expect("a text").to_owned();
    let msgid = tag(line, "msgid").expect("a msgid").to_owned();
    let time = tag(line, "time").expect("a time").to_owned();
    Said { msgid, time, text }
}

/// Waits until the clock is past the millisecond of `time`, so that the next message
/// gets a time of its own (references by time mean a whole millisecond).
async fn past(time: &str) {
    let then = chrono::DateTime::parse_from_rfc3339(time).expect("a time");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while chrono::Utc::now() < then + chrono::Duration::milliseconds(1) {
        assert!(tokio::time::Instant::now() < deadline, "the clock stands still");
        tokio::time::sleep(Duration::from_micros(250)).await;
    }
}

/// One CHATHISTORY answer: the messages of its batch, in order.
async fn history(client: &mut IrcClient, command: &str) -> Vec<Said> {
    client.send(command).await;
    let lines = client.collect_until(" BATCH -").await;
    let start = lines.iter().position(|l| l.contains(" BATCH +")).unwrap_or_else(|| panic!("a batch: {lines:#?}"));
    lines[start..].iter().filter(|l| l.contains(" PRIVMSG ")).map(|l| said(l)).collect()
}

#[tokio::test]
async fn every_subcommand_pages_by_msgid_and_by_timestamp() {
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let irc = server.irc.expect("an IRC listener");
    let mut ann = IrcClient::join(irc, "ann", CAPS).await;
    ann.send("JOIN #h").await;
    ann.expect(" #h :End of /NAMES list.").await;
    let mut sent: Vec<Said> = Vec::new();
    for n in 0..10 {
        if let Some(last) = sent.last() {
            past(&last.time).await;
        }
        ann.send(&format!("PRIVMSG #h :message {n}")).await;
        let echo = ann.expect(&format!(" PRIVMSG #h :message {n}")).await;
        sent.push(said(&echo));
    }
    let m = |range: std::ops::Range<usize>| sent[range].to_vec();
    let (id, at) = (|n: usize| sent[n].msgid.clone(), |n: usize| sent[n].time.clone());

    assert_eq!(history(&mut ann, "CHATHISTORY LATEST #h * 20").await, m(0..10));
    assert_eq!(history(&mut ann, "CHATHISTORY LATEST #h * 5").await, m(5..10));
    assert_eq!(history(&mut ann, "CHATHISTORY LATEST #h * 1").await, m(9..10));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY LATEST #h msgid={} 20", id(4))).await, m(5..10));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY LATEST #h timestamp={} 20", at(4))).await, m(5..10));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY LATEST #h msgid={} 2", id(4))).await, m(8..10));

    assert_eq!(history(&mut ann, &format!("CHATHISTORY BEFORE #h msgid={} 20", id(6))).await, m(0..6));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY BEFORE #h timestamp={} 20", at(6))).await, m(0..6));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY BEFORE #h timestamp={} 2", at(6))).await, m(4..6));

    assert_eq!(history(&mut ann, &format!("CHATHISTORY AFTER #h msgid={} 20", id(3))).await, m(4..10));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY AFTER #h timestamp={} 20", at(3))).await, m(4..10));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY AFTER #h timestamp={} 3", at(3))).await, m(4..7));

    for (a, b) in [(id(0), id(9)), (at(0), at(9))] {
        let kind = if a.contains('/') { "msgid" } else { "timestamp" };
        let forward = format!("CHATHISTORY BETWEEN #h {kind}={a} {kind}={b}");
        let backward = format!("CHATHISTORY BETWEEN #h {kind}={b} {kind}={a}");
        assert_eq!(history(&mut ann, &format!("{forward} 20")).await, m(1..9), "{kind}");
        assert_eq!(history(&mut ann, &format!("{backward} 20")).await, m(1..9), "{kind}");
        assert_eq!(history(&mut ann, &format!("{forward} 3")).await, m(1..4), "{kind}: from the first");
        assert_eq!(history(&mut ann, &format!("{backward} 3")).await, m(6..9), "{kind}: from the first");
    }

    assert_eq!(history(&mut ann, &format!("CHATHISTORY AROUND #h msgid={} 1", id(7))).await, m(7..8));
    assert_eq!(history(&mut ann, &format!("CHATHISTORY AROUND #h msgid={} 3", id(7))).await, m(6..9));
    let around = history(&mut ann, &format!("CHATHISTORY AROUND #h timestamp={} 3", at(7))).await;
    assert!(around.contains(&sent[7]) && around.len() == 3, "{around:#?}");

    // Refusals: a target one is not in, a reference of another kind or place.
    ann.send("CHATHISTORY LATEST #nowhere * 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_TARGET LATEST #nowhere :").await;
    ann.send("CHATHISTORY BEFORE #h * 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_PARAMS BEFORE #h :").await;
    ann.send("CHATHISTORY AFTER #h msgid=elsewhere/3 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_PARAMS AFTER #h :").await;
    ann.send("CHATHISTORY AFTER #h timestamp=yesterday 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_PARAMS AFTER #h :").await;
    ann.send("CHATHISTORY SIDEWAYS #h * 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_PARAMS SIDEWAYS #h :").await;
    ann.send("CHATHISTORY BETWEEN #h * 10").await;
    ann.expect(" 461 ann CHATHISTORY ").await;
    server.shutdown().await;
}

#[tokio::test]
async fn conversations_page_too_and_targets_list_where_one_was_talked_to() {
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let irc = server.irc.expect("an IRC listener");
    let mut ann = IrcClient::join(irc, "ann", CAPS).await;
    let mut bob = IrcClient::join(irc, "bob", CAPS).await;
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    ann.send("JOIN #quiet,#busy").await;
    ann.expect(" #busy :End of /NAMES list.").await;
    ann.send("PRIVMSG #busy :hello busy").await;
    let busy = said(&ann.expect(" PRIVMSG #busy :hello busy").await);
    let mut talk = Vec::new();
    for n in 0..3 {
        let (from, to) = if n % 2 == 0 { (&mut ann, "bob") } else { (&mut bob, "ann") };
        from.send(&format!("PRIVMSG {to} :psst {n}")).await;
        talk.push(said(&from.expect(&format!(" PRIVMSG {to} :psst {n}")).await));
    }
    bob.expect(" PRIVMSG bob :psst 2").await;
    assert_eq!(history(&mut ann, "CHATHISTORY LATEST bob * 10").await, talk);
    assert_eq!(history(&mut bob, "CHATHISTORY LATEST ann * 2").await, talk[1..]);
    let after_first = format!("CHATHISTORY AFTER bob msgid={} 10", talk[0].msgid);
    assert_eq!(history(&mut ann, &after_first).await, talk[1..]);

    // TARGETS: #busy and the conversation with bob, oldest first; #quiet had nothing.
    let end = chrono::Utc::now() + chrono::Duration::seconds(1);
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    ann.send(&format!("CHATHISTORY TARGETS timestamp={} timestamp={} 10", stamp(start), stamp(end))).await;
    let lines = ann.collect_until(" BATCH -").await;
    assert!(lines.iter().any(|l| l.contains(" BATCH +") && l.ends_with(" draft/chathistory-targets")), "{lines:#?}");
    let targets: Vec<String> =
        lines.iter().filter_map(|l| l.split(" CHATHISTORY TARGETS ").nth(1)).map(str::to_owned).collect();
    assert_eq!(targets, [format!("#busy {}", busy.time), format!("bob {}", talk[2].time)]);
    // A window before anything was said lists nothing.
    let early = stamp(start - chrono::Duration::hours(1));
    ann.send(&format!("CHATHISTORY TARGETS timestamp={early} timestamp={} 10", stamp(start))).await;
    let lines = ann.collect_until(" BATCH -").await;
    assert!(!lines.iter().any(|l| l.contains(" CHATHISTORY TARGETS ")), "{lines:#?}");
    ann.send("CHATHISTORY TARGETS * * 10").await;
    ann.expect(" FAIL CHATHISTORY INVALID_PARAMS TARGETS * :").await;
    server.shutdown().await;
}
