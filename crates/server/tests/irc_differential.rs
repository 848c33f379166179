//! The IRC gateway against InspIRCd, the server many IRC clients and bots were written
//! against: the scripts in `tests/differential/*.irc` are played against both, and
//! each exchange's replies are compared after normalising what may differ (server
//! names, times, ids, hosts, free text; see `differential/normalise.rs`). Where InspIRCd
//! lacks a feature, the script gives the IRCv3 or modern documents' answer instead, and
//! where Parley differs on purpose, the script says why. It passes when at least 95% of
//! the exchanges agree and every other one is such a deliberate difference.
//!
//! InspIRCd comes from Debian's package, unpacked by `.ci/inspircd` (`.ci/run` calls it);
//! `PARLEY_INSPIRCD` may name another binary. Without it the test is skipped, loudly,
//! except in CI (`CI=true`), where that is a failure. See docs/IRC.md, "How
//! conformance is tested".

mod differential;
mod support;

use std::path::Path;
use std::time::Instant;

use differential::inspircd::{self, InspIRCd};
use differential::normalise::Context;
use differential::run::Target;
use differential::{report, run, script};

/// Parley's name for itself in this test (InspIRCd's is `inspircd.test`).
const PARLEY: &str = "parley.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parley_answers_as_inspircd_does() {
    let binary = inspircd::binary();
    if !binary.exists() {
        let why = format!("no InspIRCd at {} (run .ci/inspircd, or set PARLEY_INSPIRCD)", binary.display());
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED the IRC differential test: {why}");
        return;
    }
    let scripts = script::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential"))
        .unwrap_or_else(|e| panic!("the scripts parse: {e}"));
    let started = Instant::now();
    let reference = InspIRCd::start(&binary).await;
    // Parley twice: without its store, whose writes would otherwise let a reply come
    // after the PONG of a later PING (then nothing marks where an exchange ends), and
    // as it runs by default, which must answer the same.
    let parley = support::start_with(|config| {
        fair(config);
        config.history.store = false;
    })
    .await;
    let stored = support::start_with(fair).await;
    let theirs = Target { name: "InspIRCd", addr: reference.addr };
    let ours = Target { name: "Parley", addr: parley.irc.expect("an IRC listener") };
    let ours_stored = Target { name: "Parley (store on)", addr: stored.irc.expect("an IRC listener") };
    let (their_answers, our_answers, stored_answers) =
        tokio::join!(run::run(&theirs, &scripts), run::run(&ours, &scripts), run::run(&ours_stored, &scripts));
    let their_cx = Context { server: inspircd::SERVER, host: inspircd::HOST };
    let our_cx = Context { server: PARLEY, host: inspircd::HOST };
    let outcomes = report::compare(&scripts, &their_answers, &our_answers, (&their_cx, &our_cx), false);
    let steady = report::compare(&scripts, &our_answers, &stored_answers, (&our_cx, &our_cx), true);
    let peer = format!("InspIRCd {}", reference.version);
    let seconds = started.elapsed().as_secs_f64();
    let (text, summary) = report::write(&outcomes, &steady, scripts.len(), &peer, seconds);
    eprintln!("{text}");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("irc-differential.txt");
    if std::fs::write(&file, &text).is_ok() {
        eprintln!("(also in {})", file.display());
    }
    parley.shutdown().await;
    stored.shutdown().await;
    assert!(summary.passes(), "the IRC gateway differs from InspIRCd: see the report above");
}

/// Parley's settings for a fair comparison: its name for the test, InspIRCd's
/// MOTD and operator, addresses as hosts (as InspIRCd shows them without its cloaking
/// module), no flood control (InspIRCd runs without), and a failed OPER's next try not
/// made to wait. (History is still played back on JOIN: without a store, what
/// is played back is all CHATHISTORY has.)
fn fair(config: &mut parley_server::Config) {
    config.irc.server_name = PARLEY.into();
    config.irc.motd = Some(inspircd::MOTD.into());
    config.irc.hosts = parley_server::Hosts::Ip;
    config.irc.opers = vec!["root:change-me".parse().expect("an oper")];
    config.limits.flood_rate_per_sec = 0;
    config.limits.oper_retry_ms = 1;
}

/// The scripts parse and hold enough exchanges, whether or not InspIRCd is here.
#[test]
fn the_scripts_parse() {
    let scripts = script::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential"))
        .unwrap_or_else(|e| panic!("the scripts parse: {e}"));
    let exchanges =
        scripts.iter().flat_map(|s| &s.steps).filter(|step| matches!(step, script::Step::Exchange(_))).count();
    assert!(exchanges >= 200, "{exchanges} exchanges");
    let bad = script::parse("bad.irc", "== one\nconnect alice\nbob> PING :x\n");
    assert!(bad.is_err_and(|e| e.to_string().starts_with("bad.irc:3: ")), "an unknown client is refused");
}

/// InspIRCd's and Parley's forms of the same replies normalise to the same lines, and
/// different replies stay different.
#[test]
fn normalising_keeps_what_is_compared() {
    use differential::normalise::{normalise, Options};
    let theirs = Context { server: inspircd::SERVER, host: inspircd::HOST };
    let ours = Context { server: PARLEY, host: inspircd::HOST };
    let lines = |v: &[&str]| v.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    let same = |a: &[&str], b: &[&str]| {
        let (a, b) =
            (normalise(&lines(a), &theirs, Options::default()), normalise(&lines(b), &ours, Options::default()));
        assert_eq!(a, b);
    };
    same(
        &[
            "@time=2026-01-01T00:00:00.000Z :inspircd.test 353 ada = #a :@ada bob",
            ":inspircd.test 353 ada = #a :carol",
            ":inspircd.test 366 ada #a :End of /NAMES list.",
        ],
        &[":parley.test 353 ada = #a :carol bob @ada", ":parley.test 366 ada #a :End of NAMES list"],
    );
    same(
        &[
            ":ada!u@127.0.0.1 JOIN :#a",
            ":inspircd.test 333 ada #a ada 1700000000",
            ":inspircd.test 322 ada #a 2 :[+nt] hi",
        ],
        &[":ada!~u@127.0.0.1 JOIN #a", ":parley.test 333 ada #a ada 1800000000", ":parley.test 322 ada #a 2 :hi"],
    );
    same(
        &[":inspircd.test 324 ada #a +klnt key 5", ":inspircd.test 372 ada :Hello."],
        &[":parley.test 324 ada #a +ntkl key 5", ":parley.test 372 ada :- Hello."],
    );
    // The count of connections still registering is left out; user names are compared
    // without Parley's `~`.
    same(&[], &[":parley.test 253 ada 1 :unknown connection(s)"]);
    same(&[":inspircd.test 302 ada :bob=+u@127.0.0.1"], &[":parley.test 302 ada :bob=+~u@127.0.0.1"]);
    same(&[":inspircd.test 311 ada bob u 127.0.0.1 * :Bob"], &[":parley.test 311 ada bob ~u 127.0.0.1 * :Bob"]);
    // MONITOR's lists: in name order however split, 730's items by nick.
    same(
        &[":inspircd.test 730 ada :bob", ":inspircd.test 731 ada :carol,Dee"],
        &[":parley.test 730 ada :bob!~u@127.0.0.1", ":parley.test 731 ada :Dee", ":parley.test 731 ada :carol"],
    );
    let differ = |a: &str, b: &str| {
        let (a, b) =
            (normalise(&lines(&[a]), &theirs, Options::default()), normalise(&lines(&[b]), &ours, Options::default()));
        assert_ne!(a, b);
    };
    differ(":bob!u@127.0.0.1 PART #a :bye", ":bob!~u@127.0.0.1 PART #a");
    differ(":bob!u@127.0.0.1 PART #a", ":bob!~bob@127.0.0.1 PART #a");
    differ(":inspircd.test 403 ada #a :No such channel", ":parley.test 442 ada #a :You're not on that channel");
    differ(":inspircd.test 332 ada #a :one topic", ":parley.test 332 ada #a :another");
    differ(":inspircd.test 731 ada :carol", ":parley.test 731 ada :dee");
    use differential::normalise::whox_idle;
    assert_eq!(whox_idle("WHO #x %acdfhilnorstu,999"), Some(10), "after the client, the token and 8 fields");
    assert_eq!(whox_idle("WHO #x %nl"), Some(2));
    assert_eq!(whox_idle("WHO #x %tnl"), Some(2), "no token given: no token field");
    assert_eq!(whox_idle("WHO #x %n,1"), None);
    let hosts = Options { hosts: true, ..Options::default() };
    let (a, b) = (
        normalise(&lines(&[":inspircd.test 311 ada bob u 127.0.0.1 * :Bob"]), &theirs, hosts),
        normalise(&lines(&[":parley.test 311 ada bob ~u 127.0.0.1 * :Bob"]), &ours, hosts),
    );
    assert_ne!(a, b, "hosts compared when asked");
}
