//! A bot written with a mainstream IRC bot library (Python's `irc`, jaraco/irc on PyPI)
//! against the IRC gateway: it registers, joins, answers commands from what the
//! library's own channel tracking made of Parley's replies (NAMES prefixes, JOIN, MODE),
//! and quits. `.ci/run` installs the library with pip; without it the test is skipped,
//! loudly, except in CI (`CI=true`), where that is a failure.

mod support;

use std::process::Stdio;

use support::{IrcClient, LineClient};

/// Whether Python can import the library.
fn library_present() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import irc.bot"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_bot_library_joins_answers_and_tracks_the_channel() {
    if !library_present() {
        let why = "python3 with the `irc` library (pip install irc) is not here";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED the IRC bot library test: {why}");
        return;
    }
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let irc = server.irc.expect("an IRC listener");
    let mut lena = LineClient::join(server.line, "lena").await;
    // ivy (in #lobby, as the test clients join it) opens #den before the bot comes: she
    // is its operator.
    let mut ivy = IrcClient::join(irc, "ivy", "").await;
    ivy.send("JOIN #den").await;
    ivy.expect(" 366 ivy #den ").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bots/pingbot.py");
    let mut bot = tokio::process::Command::new("python3")
        .arg(script)
        .arg(irc.port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the bot starts");

    lena.expect_line("pingbot: pingbot ready").await;
    ivy.expect("PRIVMSG #den :pingbot ready").await;
    lena.send("!ping").await;
    lena.expect_line("pingbot: pong, lena").await;
    lena.send("!users").await;
    lena.expect_line("pingbot: users: ivy lena pingbot").await;

    // What the library made of NAMES (`@ivy`), and of the MODE that follows.
    ivy.send("PRIVMSG #den :!ops").await;
    ivy.expect("PRIVMSG #den :ops: ivy").await;
    ivy.send("MODE #den +o pingbot").await;
    ivy.expect("MODE #den +o pingbot").await;
    ivy.send("PRIVMSG #den :!ops").await;
    ivy.expect("PRIVMSG #den :ops: ivy pingbot").await;
    ivy.send("PRIVMSG #den :!users").await;
    ivy.expect("PRIVMSG #den :users: ivy pingbot").await;

    lena.send("!quit").await;
    let status = tokio::time::timeout(support::WAIT, bot.wait()).await.expect("the bot quits in time").expect("waits");
    assert!(status.success(), "the bot ended cleanly: {status:?}");
    lena.expect_line("pingbot has left the chat (asked to leave).").await;
    ivy.expect(" QUIT :Quit: asked to leave").await;
    server.shutdown().await;
}
