//! IRC's `MONITOR` (IRCv3 monitor): a watch list per session, answered at once, and
//! `730`/`731` whenever someone takes or gives up a watched nick, however they come
//! (any gateway, a rename, a login) and however they go (QUIT, a dropped connection,
//! a rename).

mod support;

use support::{IrcClient, LineClient};

/// A client registered as `nick`, its welcome read.
async fn registered(server: &support::TestServer, nick: &str) -> IrcClient {
    registered_with(server, nick, "").await
}

/// A client registered as `nick` with capabilities, its welcome read.
async fn registered_with(server: &support::TestServer, nick: &str, caps: &str) -> IrcClient {
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.register(nick, caps).await;
    // The last of the welcome: the user mode every user has.
    client.expect(&format!(" MODE {nick} +i")).await;
    client
}

#[tokio::test]
async fn the_list_is_answered_at_once_and_compared_without_case() {
    let server = support::start().await;
    let mut ada = IrcClient::connect(server.irc_addr()).await;
    ada.send("NICK ada").await;
    ada.send("USER ada 0 * :Ada").await;
    let burst = ada.collect_until(" MODE ada +i").await;
    assert!(burst.iter().any(|l| l.contains(" 005 ") && l.contains(" MONITOR=100 ")), "{burst:#?}");
    let _bob = registered(&server, "bob").await;

    // Those on with their user and host, the others as given; nicks that cannot be
    // nicks are passed over, and one given twice (in any case) counts once.
    assert_eq!(
        ada.answers("MONITOR + Bob,carol,bad!nick,,9lives,BOB").await,
        [":parley.local 730 ada :bob!~bob@parley.local", ":parley.local 731 ada :carol"]
    );
    assert_eq!(ada.answers("MONITOR + CAROL,bob").await, Vec::<String>::new(), "both watched already");
    assert_eq!(
        ada.answers("MONITOR L").await,
        [":parley.local 732 ada :Bob,carol", ":parley.local 733 ada :End of MONITOR list"]
    );
    assert_eq!(
        ada.answers("monitor s").await,
        [":parley.local 730 ada :bob!~bob@parley.local", ":parley.local 731 ada :carol"]
    );
    assert_eq!(ada.answers("MONITOR - CAROL,nobody").await, Vec::<String>::new());
    assert_eq!(
        ada.answers("MONITOR L").await,
        [":parley.local 732 ada :Bob", ":parley.local 733 ada :End of MONITOR list"]
    );
    assert_eq!(ada.answers("MONITOR C").await, Vec::<String>::new());
    assert_eq!(ada.answers("MONITOR L").await, [":parley.local 733 ada :End of MONITOR list"]);
    assert_eq!(ada.answers("MONITOR S").await, Vec::<String>::new());

    // Bad input is answered.
    assert_eq!(ada.answers("MONITOR").await, [":parley.local 461 ada MONITOR :Not enough parameters"]);
    assert_eq!(ada.answers("MONITOR +").await, [":parley.local 461 ada MONITOR :Not enough parameters"]);
    assert_eq!(ada.answers("MONITOR - :").await, [":parley.local 461 ada MONITOR :Not enough parameters"]);
    assert_eq!(ada.answers("MONITOR X").await, [":parley.local 400 ada MONITOR X :Unknown subcommand"]);
    server.shutdown().await;
}

#[tokio::test]
async fn watchers_hear_of_arrivals_renames_and_departures() {
    let server = support::start().await;
    let mut ada = registered(&server, "ada").await;
    let mut dee = registered(&server, "dee").await;
    assert_eq!(ada.answers("MONITOR + carol,cy").await, [":parley.local 731 ada :carol,cy"]);
    assert_eq!(dee.answers("MONITOR + CAROL").await, [":parley.local 731 dee :CAROL"]);

    // Two watchers of one nick: each is told, as the nick's owner spells it.
    let mut carol = registered(&server, "Carol").await;
    assert_eq!(ada.expect(" 730 ").await, ":parley.local 730 ada :Carol!~Carol@parley.local");
    assert_eq!(dee.expect(" 730 ").await, ":parley.local 730 dee :Carol!~Carol@parley.local");

    // A change of case is the same nick: nobody is told.
    carol.send("NICK carol").await;
    carol.expect(" NICK ").await;
    ada.expect_nothing_more().await;
    dee.expect_nothing_more().await;

    // A rename gives one nick up and takes another.
    carol.send("NICK cy").await;
    carol.expect(" NICK ").await;
    assert_eq!(ada.expect(" 731 ").await, ":parley.local 731 ada :carol");
    assert_eq!(ada.expect(" 730 ").await, ":parley.local 730 ada :cy!~Carol@parley.local");
    assert_eq!(dee.expect(" 731 ").await, ":parley.local 731 dee :carol");
    dee.expect_nothing_more().await;

    // QUIT gives it up.
    carol.send("QUIT :bye").await;
    carol.expect_closed().await;
    assert_eq!(ada.expect(" 731 ").await, ":parley.local 731 ada :cy");
    ada.expect_nothing_more().await;
    dee.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn nicks_are_matched_as_the_server_compares_them() {
    let server = support::start().await;
    let mut ada = registered(&server, "ada").await;
    assert_eq!(ada.answers("MONITOR + JOSÉ").await, [":parley.local 731 ada :JOSÉ"]);
    let _jose = registered(&server, "josé").await;
    let online = ada.expect(" 730 ").await;
    assert!(online.starts_with(":parley.local 730 ada :josé!"), "{online}");
    assert_eq!(
        ada.answers("MONITOR L").await,
        [":parley.local 732 ada :JOSÉ", ":parley.local 733 ada :End of MONITOR list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_and_other_gateways_count_as_coming_and_going() {
    let server = support::start().await;
    let mut ada = registered(&server, "ada").await;
    assert_eq!(ada.answers("MONITOR + bob,lin").await, [":parley.local 731 ada :bob,lin"]);

    // Gone without a QUIT: the socket is simply dropped.
    let bob = registered(&server, "bob").await;
    assert_eq!(ada.expect(" 730 ").await, ":parley.local 730 ada :bob!~bob@parley.local");
    drop(bob);
    assert_eq!(ada.expect(" 731 ").await, ":parley.local 731 ada :bob");

    // A user of the line protocol is watched as any other.
    let lin = LineClient::join(server.line, "lin").await;
    assert!(ada.expect(" 730 ").await.starts_with(":parley.local 730 ada :lin!"));
    drop(lin);
    assert_eq!(ada.expect(" 731 ").await, ":parley.local 731 ada :lin");
    server.shutdown().await;
}

#[tokio::test]
async fn the_list_goes_with_its_session_and_works_for_accounts_alike() {
    let server = support::start().await;
    // An account, and a guest watching its name.
    let mut rita = registered(&server, "rita").await;
    rita.send("NS REGISTER rita-password").await;
    rita.expect(" 900 rita ").await;
    let mut ada = registered(&server, "ada").await;
    assert_eq!(
        ada.answers("MONITOR + rita,bob").await,
        [":parley.local 730 ada :rita!~rita@parley.local", ":parley.local 731 ada :bob"]
    );
    // The account's session watches too.
    assert_eq!(rita.answers("MONITOR + bob").await, [":parley.local 731 rita :bob"]);
    rita.send("QUIT").await;
    rita.expect_closed().await;
    assert_eq!(ada.expect(" 731 ").await, ":parley.local 731 ada :rita");

    // Logging in takes the account's nick: those watching it are told.
    let mut guest = registered(&server, "someone").await;
    guest.send("NS IDENTIFY rita rita-password").await;
    guest.expect(" NICK :rita").await;
    assert_eq!(ada.expect(" 730 ").await, ":parley.local 730 ada :rita!~someone@parley.local");

    // ada leaves; a new session with her nick starts with an empty list, and nobody
    // is told of bob on her behalf.
    ada.send("QUIT").await;
    ada.expect_closed().await;
    let mut again = registered(&server, "ada").await;
    assert_eq!(again.answers("MONITOR L").await, [":parley.local 733 ada :End of MONITOR list"]);
    let _bob = registered(&server, "bob").await;
    // rita's old list went with her old session too: her new one hears nothing of bob.
    guest.expect_nothing_more().await;
    again.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_list_takes_no_more_and_says_which_were_left_out() {
    let server = support::start_with(|config| config.limits.max_watched_nicks = 3).await;
    let mut ada = IrcClient::connect(server.irc_addr()).await;
    ada.send("NICK ada").await;
    ada.send("USER ada 0 * :Ada").await;
    let burst = ada.collect_until(" MODE ada +i").await;
    assert!(burst.iter().any(|l| l.contains(" MONITOR=3 ")), "{burst:#?}");
    let _bob = registered(&server, "bob").await;

    assert_eq!(
        ada.answers("MONITOR + one,bob,bad!nick,two,three,four").await,
        [
            ":parley.local 734 ada 3 three,four :Monitor list is full.",
            ":parley.local 730 ada :bob!~bob@parley.local",
            ":parley.local 731 ada :one,two",
        ]
    );
    assert_eq!(ada.answers("MONITOR + five").await, [":parley.local 734 ada 3 five :Monitor list is full."]);
    assert_eq!(ada.answers("MONITOR + ONE").await, Vec::<String>::new(), "on the list already, not over it");
    assert_eq!(ada.answers("MONITOR - two").await, Vec::<String>::new());
    assert_eq!(ada.answers("MONITOR + five").await, [":parley.local 731 ada :five"]);
    assert_eq!(
        ada.answers("MONITOR L").await,
        [":parley.local 732 ada :one,bob,five", ":parley.local 733 ada :End of MONITOR list"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn long_lists_are_split_into_lines_that_fit() {
    let server = support::start().await;
    let mut ada = registered(&server, "ada").await;
    // 100 nicks of 32 characters, answered in lines of at most 512 bytes (the client's
    // reader checks each line's length).
    let nicks: Vec<String> = (0..100).map(|i| format!("watched_{i:0>24}")).collect();
    for chunk in nicks.chunks(10) {
        let answer = ada.answers(&format!("MONITOR + {}", chunk.join(","))).await;
        assert_eq!(answer, [format!(":parley.local 731 ada :{}", chunk.join(","))]);
    }
    let in_lists = |lines: &[String], code: &str| -> Vec<String> {
        let prefix = format!(":parley.local {code} ada :");
        lines
            .iter()
            .flat_map(|line| line.strip_prefix(&prefix).unwrap_or_else(|| panic!("a {code} line: {line}")).split(','))
            .map(str::to_owned)
            .collect()
    };
    let listed = ada.answers("MONITOR L").await;
    let (end, lists) = listed.split_last().expect("lines");
    assert_eq!(end, ":parley.local 733 ada :End of MONITOR list");
    assert!(lists.len() > 1, "more than one 732 line: {listed:#?}");
    assert_eq!(in_lists(lists, "732"), nicks);
    let status = ada.answers("MONITOR S").await;
    assert!(status.len() > 1, "more than one 731 line: {status:#?}");
    assert_eq!(in_lists(&status, "731"), nicks);
    server.shutdown().await;
}

#[tokio::test]
async fn extended_monitor_tells_of_watched_users_outside_shared_channels() {
    let server = support::start().await;
    let mut ada = registered_with(&server, "ada", "extended-monitor away-notify setname account-notify").await;
    // cy has the notifications but not extended-monitor; dee has both, and shares a
    // channel with bob, where she hears of him already.
    let mut cy = registered_with(&server, "cy", "away-notify setname account-notify").await;
    let mut dee = registered_with(&server, "dee", "extended-monitor away-notify").await;
    for watcher in [&mut ada, &mut cy, &mut dee] {
        watcher.send("MONITOR + bob").await;
        watcher.expect(" 731 ").await;
    }
    let mut bob = registered(&server, "bob").await;
    for watcher in [&mut ada, &mut cy, &mut dee] {
        watcher.expect(" 730 ").await;
    }
    bob.send("JOIN #room").await;
    bob.expect(" 366 ").await;
    dee.send("JOIN #room").await;
    dee.expect(" 366 ").await;

    bob.send("AWAY :lunch").await;
    bob.expect(" 306 ").await;
    assert_eq!(ada.expect(" AWAY ").await, ":bob!~bob@parley.local AWAY :lunch");
    assert_eq!(dee.expect(" AWAY ").await, ":bob!~bob@parley.local AWAY :lunch");
    bob.send("SETNAME :Robert").await;
    bob.send("NS REGISTER bob-password").await;
    bob.expect(" 900 ").await;
    assert_eq!(ada.expect(" SETNAME ").await, ":bob!~bob@parley.local SETNAME :Robert");
    assert_eq!(ada.expect(" ACCOUNT ").await, ":bob!~bob@parley.local ACCOUNT bob");
    // Once each, and nothing to those without extended-monitor.
    ada.expect_nothing_more().await;
    dee.expect_nothing_more().await;
    cy.expect_nothing_more().await;
    server.shutdown().await;
}
