//! IRCv3 `labeled-response` over real sockets: a line tagged `@label=…` by a client
//! that enabled `labeled-response` and `batch` gets its answer back with the label, on
//! its one line, on the opening of a `labeled-response` batch around its lines (or of
//! the batch the answer is already, as CHATHISTORY's), or on an `ACK`; whatever else
//! arrives meanwhile stays untagged and outside the batch.

mod support;

use support::IrcClient;

const CAPS: &str = "batch labeled-response";

/// A client registered with `caps`, in `#lab`.
async fn in_lab(server: &support::TestServer, nick: &str, caps: &str) -> IrcClient {
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.register(nick, caps).await;
    client.send("JOIN #lab").await;
    client.expect(" 366 ").await;
    client
}

/// The lines answering `input`, up to the PONG of an unlabeled PING sent after it
/// (others joining `#lab` left out).
async fn answer(client: &mut IrcClient, input: &str) -> Vec<String> {
    client.send(input).await;
    client.send("PING :answered").await;
    let mut lines = client.collect_until("PONG parley.local :answered").await;
    let pong = lines.pop().expect("the PONG");
    assert!(!pong.starts_with('@'), "the sync PING had no label: {pong}");
    lines.retain(|l| !l.contains(" JOIN #lab"));
    lines
}

/// A tag's value in `line`.
fn tag<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';').find_map(|t| t.strip_prefix(name)?.strip_prefix('='))
}

/// Checks `lines` are one `labeled-response` batch labeled `label` and returns the lines
/// inside it, without their batch tag.
fn batch_of(lines: &[String], label: &str) -> Vec<String> {
    let first = lines.first().unwrap_or_else(|| panic!("an answer: {lines:#?}"));
    let reference = first
        .strip_prefix(&format!("@label={label} :parley.local BATCH +"))
        .and_then(|rest| rest.strip_suffix(" labeled-response"))
        .unwrap_or_else(|| panic!("a labeled batch opens the answer: {lines:#?}"));
    assert_eq!(lines.last().map(String::as_str), Some(format!(":parley.local BATCH -{reference}").as_str()));
    let inner = &lines[1..lines.len() - 1];
    inner
        .iter()
        .map(|line| {
            assert_eq!(tag(line, "batch"), Some(reference), "every line in the batch: {lines:#?}");
            assert_eq!(tag(line, "label"), None, "the label once, on the opening: {lines:#?}");
            let without = line.replacen(&format!("batch={reference}"), "", 1);
            without.strip_prefix("@ ").map_or_else(|| without.replacen("@;", "@", 1), str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_one_line_answer_carries_the_label() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let _bob = in_lab(&server, "bob", "").await;
    // The way clients measure lag.
    assert_eq!(
        answer(&mut ada, "@label=lag1 PING :12345").await,
        ["@label=lag1 :parley.local PONG parley.local :12345"]
    );
    assert_eq!(
        answer(&mut ada, "@label=t TOPIC #lab").await,
        ["@label=t :parley.local 331 ada #lab :No topic is set."]
    );
    assert_eq!(answer(&mut ada, "@label=m MODE ada").await, ["@label=m :parley.local 221 ada +i"]);
    // Errors, whether the gateway or the hub finds them.
    assert_eq!(
        answer(&mut ada, "@label=e1 WHOIS").await,
        ["@label=e1 :parley.local 461 ada WHOIS :Not enough parameters"]
    );
    assert_eq!(
        answer(&mut ada, "@label=e2 PRIVMSG nobody :hello").await,
        ["@label=e2 :parley.local 401 ada nobody :No such nick/channel"]
    );
    assert_eq!(
        answer(&mut ada, "@label=e3 JOIN lab").await,
        ["@label=e3 :parley.local 476 ada lab :Invalid channel name"]
    );
    assert_eq!(answer(&mut ada, "@label=e4 FROB").await, ["@label=e4 :parley.local 421 ada FROB :Unknown command"]);
    // A label's value comes back as it was escaped.
    assert_eq!(answer(&mut ada, "@label=a\\sb\\:c MODE ada").await, ["@label=a\\sb\\:c :parley.local 221 ada +i"]);
    // USERHOST asks the hub once per nick; the answer is still its one line.
    let userhost = answer(&mut ada, "@label=u USERHOST bob nobody ada").await;
    assert_eq!(userhost.len(), 1, "{userhost:#?}");
    assert!(userhost[0].starts_with("@label=u :parley.local 302 ada :bob=+"), "{userhost:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_longer_answer_is_a_labeled_batch() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let _bob = in_lab(&server, "bob", "").await;

    let whois = batch_of(&answer(&mut ada, "@label=w1 WHOIS bob").await, "w1");
    assert!(whois[0].starts_with(":parley.local 311 ada bob "), "{whois:#?}");
    assert!(whois.last().is_some_and(|l| l.starts_with(":parley.local 318 ada bob ")), "{whois:#?}");

    let names = batch_of(&answer(&mut ada, "@label=n1 NAMES #lab").await, "n1");
    assert_eq!(names.len(), 2, "{names:#?}");
    assert!(names[0].starts_with(":parley.local 353 ada = #lab :") && names[0].contains("bob"), "{names:#?}");
    assert_eq!(names[1], ":parley.local 366 ada #lab :End of /NAMES list.");

    let who = batch_of(&answer(&mut ada, "@label=who WHO #lab").await, "who");
    assert_eq!(who.iter().filter(|l| l.contains(" 352 ada #lab ")).count(), 2, "{who:#?}");
    assert_eq!(who.last().map(String::as_str), Some(":parley.local 315 ada #lab :End of /WHO list."));

    let list = batch_of(&answer(&mut ada, "@label=l1 LIST #lab").await, "l1");
    assert_eq!(
        list,
        [
            ":parley.local 321 ada Channel :Users  Name",
            ":parley.local 322 ada #lab 2 :",
            ":parley.local 323 ada :End of /LIST"
        ]
    );

    // A JOIN is answered by its JOIN, the topic and the names.
    let joined = batch_of(&answer(&mut ada, "@label=j1 JOIN #new").await, "j1");
    assert_eq!(joined[0], ":ada!~ada@parley.local JOIN #new");
    assert_eq!(joined.last().map(String::as_str), Some(":parley.local 366 ada #new :End of /NAMES list."));

    // A line of several commands is one batch: here two WHOIS and an error between.
    let several = batch_of(&answer(&mut ada, "@label=w2 WHOIS bob,nobody,ada").await, "w2");
    let numerics: Vec<&str> = several.iter().map(|l| l.split(' ').nth(1).expect("a numeric")).collect();
    assert_eq!(numerics.first(), Some(&"311"), "{several:#?}");
    assert!(numerics.contains(&"401"), "{several:#?}");
    assert_eq!(numerics.iter().filter(|n| **n == "318").count(), 3, "{several:#?}");
    // A line the gateway answers with several lines itself.
    let version = batch_of(&answer(&mut ada, "@label=v VERSION").await, "v");
    assert!(version[0].starts_with(":parley.local 351 ada "), "{version:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_line_answered_by_nothing_gets_an_ack() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let mut bob = in_lab(&server, "bob", "").await;
    // Without echo-message a message has no answer; bob gets it as ever.
    assert_eq!(answer(&mut ada, "@label=s1 PRIVMSG #lab :hello").await, ["@label=s1 :parley.local ACK"]);
    assert_eq!(bob.expect(" PRIVMSG #lab ").await, ":ada!~ada@parley.local PRIVMSG #lab :hello");
    // The specification's own example: a labeled PONG.
    assert_eq!(answer(&mut ada, "@label=p PONG :parley.local").await, ["@label=p :parley.local ACK"]);
    // Joining a channel one is in already says nothing.
    assert_eq!(answer(&mut ada, "@label=j JOIN #lab").await, ["@label=j :parley.local ACK"]);
    // Several parts answered by nothing are one ACK too.
    assert_eq!(answer(&mut ada, "@label=s2 PRIVMSG #lab,bob :twice").await, ["@label=s2 :parley.local ACK"]);
    assert_eq!(bob.expect(" PRIVMSG bob ").await, ":ada!~ada@parley.local PRIVMSG bob :twice");
    // Of two parts, only the second says something: its line is the answer.
    assert_eq!(
        answer(&mut ada, "@label=z MODE #lab +o-z bob").await,
        [":ada!~ada@parley.local MODE #lab +o bob", "@label=z :parley.local 472 ada z :is an unknown mode char to me"]
    );
    assert_eq!(
        answer(&mut ada, "@label=a AWAY").await,
        ["@label=a :parley.local 305 ada :You are no longer marked as being away"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_echoed_message_is_the_answer_and_a_message_to_oneself_is_not() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", "batch labeled-response echo-message").await;
    let mut bob = in_lab(&server, "bob", CAPS).await;
    assert_eq!(
        answer(&mut ada, "@label=e1 PRIVMSG #lab :echoed").await,
        ["@label=e1 :ada!~ada@parley.local PRIVMSG #lab :echoed"]
    );
    assert_eq!(
        bob.expect(" PRIVMSG #lab ").await,
        ":ada!~ada@parley.local PRIVMSG #lab :echoed",
        "no label for others"
    );
    // To oneself: the echo is the answer, the message received is not.
    let to_self = answer(&mut ada, "@label=me PRIVMSG ada :note").await;
    assert_eq!(to_self.len(), 2, "{to_self:#?}");
    assert!(to_self.contains(&":ada!~ada@parley.local PRIVMSG ada :note".to_owned()), "{to_self:#?}");
    let labeled: Vec<&String> = to_self.iter().filter(|l| l.starts_with('@')).collect();
    assert_eq!(labeled, ["@label=me :ada!~ada@parley.local PRIVMSG ada :note"], "{to_self:#?}");
    // To two targets: a batch of both echoes.
    let both = batch_of(&answer(&mut ada, "@label=e2 PRIVMSG #lab,bob :twice").await, "e2");
    assert_eq!(both, [":ada!~ada@parley.local PRIVMSG #lab :twice", ":ada!~ada@parley.local PRIVMSG bob :twice"]);
    server.shutdown().await;
}

#[tokio::test]
async fn history_nests_in_the_labeled_answer_or_is_it() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", "batch labeled-response message-tags draft/chathistory").await;
    let mut bob = in_lab(&server, "bob", "").await;
    for text in ["one", "two"] {
        bob.send(&format!("PRIVMSG #lab :{text}")).await;
        ada.expect(&format!(" PRIVMSG #lab :{text}")).await;
    }
    // CHATHISTORY's answer is a batch already: the label goes on its opening line.
    let history = answer(&mut ada, "@label=h CHATHISTORY LATEST #lab * 10").await;
    assert_eq!(history.len(), 4, "{history:#?}");
    let reference = history[0]
        .strip_prefix("@label=h :parley.local BATCH +")
        .and_then(|rest| rest.strip_suffix(" chathistory #lab"))
        .unwrap_or_else(|| panic!("the history batch, labeled: {history:#?}"));
    assert!(history[1..3].iter().all(|l| tag(l, "batch") == Some(reference) && tag(l, "label").is_none()));
    assert!(history[1].ends_with(" PRIVMSG #lab :one") && history[2].ends_with(" PRIVMSG #lab :two"));
    assert_eq!(history[3], format!(":parley.local BATCH -{reference}"));
    // An error instead of a batch.
    let refused = answer(&mut ada, "@label=h2 CHATHISTORY LATEST #elsewhere * 10").await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(refused[0].starts_with("@label=h2 :parley.local FAIL CHATHISTORY INVALID_TARGET "), "{refused:#?}");

    // Without draft/chathistory, a JOIN plays the channel's latest messages back in a
    // chathistory batch, nested in the labeled one.
    let mut cy = in_lab(&server, "cy", CAPS).await;
    cy.send("PART #lab").await;
    cy.expect(" PART #lab").await;
    let lines = answer(&mut cy, "@label=j JOIN #lab").await;
    let outer = lines[0]
        .strip_prefix("@label=j :parley.local BATCH +")
        .and_then(|rest| rest.strip_suffix(" labeled-response"))
        .unwrap_or_else(|| panic!("a labeled batch: {lines:#?}"))
        .to_owned();
    let opening = lines.iter().position(|l| l.contains(" BATCH +") && l.ends_with(" chathistory #lab"));
    let opening = opening.unwrap_or_else(|| panic!("a playback batch: {lines:#?}"));
    assert_eq!(tag(&lines[opening], "batch"), Some(outer.as_str()), "the inner batch opens in the outer one");
    let inner = lines[opening].split(" BATCH +").nth(1).and_then(|r| r.split(' ').next()).expect("a reference");
    let played: Vec<&String> = lines.iter().filter(|l| l.contains(" PRIVMSG #lab ")).collect();
    assert_eq!(played.len(), 2, "{lines:#?}");
    assert!(played.iter().all(|l| tag(l, "batch") == Some(inner)), "played lines stay in their own batch");
    let closing = lines.iter().position(|l| l.ends_with(&format!(" BATCH -{inner}"))).expect("the inner end");
    assert_eq!(tag(&lines[closing], "batch"), Some(outer.as_str()));
    assert!(lines[1..lines.len() - 1].iter().all(|l| tag(l, "batch").is_some() && tag(l, "label").is_none()));
    assert_eq!(lines.last(), Some(&format!(":parley.local BATCH -{outer}")));
    server.shutdown().await;
}

#[tokio::test]
async fn labels_over_the_limit_or_without_the_capability_change_nothing() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let longest = "x".repeat(64);
    assert_eq!(
        answer(&mut ada, &format!("@label={longest} PING :a")).await,
        [format!("@label={longest} :parley.local PONG parley.local :a")]
    );
    // Over 64 bytes the label is refused, as InspIRCd refuses it: answered as unlabeled.
    let over = "x".repeat(65);
    assert_eq!(answer(&mut ada, &format!("@label={over} PING :b")).await, [":parley.local PONG parley.local :b"]);
    assert_eq!(answer(&mut ada, "@label= PING :c").await, [":parley.local PONG parley.local :c"]);
    assert_eq!(answer(&mut ada, "@label PING :d").await, [":parley.local PONG parley.local :d"]);

    let mut bob = in_lab(&server, "bob", "").await;
    assert_eq!(answer(&mut bob, "@label=x PING :e").await, [":parley.local PONG parley.local :e"]);
    assert_eq!(answer(&mut bob, "@label=x PRIVMSG #lab :hi").await, Vec::<String>::new());
    let whois = answer(&mut bob, "@label=x WHOIS ada").await;
    assert!(whois.iter().all(|l| !l.starts_with('@') && !l.contains(" BATCH ")), "{whois:#?}");
    // labeled-response needs batch, as the specification says.
    let mut cy = IrcClient::connect(server.irc_addr()).await;
    cy.register("cy", "labeled-response").await;
    cy.expect(" MODE cy +i").await;
    assert_eq!(answer(&mut cy, "@label=x PING :f").await, [":parley.local PONG parley.local :f"]);
    server.shutdown().await;
}

#[tokio::test]
async fn answers_back_to_back_keep_their_own_labels() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let _bob = in_lab(&server, "bob", "").await;
    // Sent in one write: the gateway must not mix them up.
    ada.send("@label=a PING :1\r\n@label=b WHOIS bob\r\nPING :2\r\n@label=c PRIVMSG nobody :x\r\n@label=d JOIN #lab")
        .await;
    let lines = answer(&mut ada, "@label=e MODE ada").await;
    assert_eq!(lines[0], "@label=a :parley.local PONG parley.local :1");
    let end = lines.iter().position(|l| l.starts_with(":parley.local BATCH -")).expect("the WHOIS batch's end");
    let whois = batch_of(&lines[1..=end], "b");
    assert!(whois.iter().all(|l| l.contains(" ada bob ")), "{whois:#?}");
    assert_eq!(
        lines[end + 1..],
        [
            ":parley.local PONG parley.local :2",
            "@label=c :parley.local 401 ada nobody :No such nick/channel",
            "@label=d :parley.local ACK",
            "@label=e :parley.local 221 ada +i",
        ]
    );
    // Two answers in several parts, one of them the gateway's own line, back to back:
    // each its own batch, the parts in the order the line made them.
    ada.send("@label=f JOIN #lab,lab,#two\r\n@label=g WHOIS nobody,bob").await;
    let lines = answer(&mut ada, "PING :sync").await;
    let end = lines.iter().position(|l| l.starts_with(":parley.local BATCH -")).expect("the first batch's end");
    let joined = batch_of(&lines[..=end], "f");
    assert_eq!(joined[0], ":parley.local 476 ada lab :Invalid channel name", "{joined:#?}");
    assert_eq!(joined[1], ":ada!~ada@parley.local JOIN #two", "{joined:#?}");
    assert_eq!(joined.last().map(String::as_str), Some(":parley.local 366 ada #two :End of /NAMES list."));
    let whois = batch_of(&lines[end + 1..lines.len() - 1], "g");
    assert_eq!(
        whois[..2],
        [":parley.local 401 ada nobody :No such nick/channel", ":parley.local 318 ada nobody :End of /WHOIS list."]
    );
    assert!(whois[2..].iter().all(|l| l.contains(" ada bob ")), "{whois:#?}");
    assert_eq!(lines.last().map(String::as_str), Some(":parley.local PONG parley.local :sync"));
    // QUIT's answer is the closing ERROR.
    ada.send("@label=q QUIT :done").await;
    let last = ada.expect_closed().await;
    assert_eq!(last, ["@label=q ERROR :Closing link: ada!~ada@parley.local (Quit: done)"]);
    server.shutdown().await;
}

/// Others' messages arriving while a labeled answer is written are neither tagged with
/// the label nor in its batch. bob's burst is being stored while ada's labeled line of
/// two messages opens its batch, so some of it is delivered between the batch's bounds.
#[tokio::test]
async fn others_messages_stay_outside_a_labeled_answer() {
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    let mut ada = in_lab(&server, "ada", "batch labeled-response echo-message").await;
    let mut bob = in_lab(&server, "bob", "").await;
    let _cy = in_lab(&server, "cy", "").await;
    const SAID: usize = 200;
    let mut burst = String::new();
    for i in 0..SAID {
        burst.push_str(&format!("PRIVMSG #lab :news {i}\r\n"));
    }
    tokio::join!(bob.send_raw(burst.as_bytes()), ada.send("@label=w PRIVMSG #lab,cy :mine"));
    let mut seen = 0;
    let mut batch: Option<String> = None;
    let mut answered = Vec::new();
    let mut closed = false;
    let mut inside = 0;
    while seen < SAID || !closed {
        let line = ada.next_line().await.expect("a line");
        if line.contains(" JOIN #lab") {
            continue;
        }
        if line.contains(" PRIVMSG #lab :news ") {
            assert_eq!(line, format!(":bob!~bob@parley.local PRIVMSG #lab :news {seen}"), "untagged, in order");
            seen += 1;
            inside += usize::from(batch.is_some() && !closed);
            continue;
        }
        if let Some(reference) = line.strip_prefix("@label=w :parley.local BATCH +") {
            assert!(batch.is_none(), "one batch: {line}");
            batch = Some(reference.strip_suffix(" labeled-response").expect("a labeled-response batch").to_owned());
            continue;
        }
        let reference = batch.as_deref().unwrap_or_else(|| panic!("the batch opens first: {line}"));
        if line == format!(":parley.local BATCH -{reference}") {
            closed = true;
            continue;
        }
        assert!(!closed, "nothing of the answer after its end: {line}");
        answered.push(line);
    }
    let prefix = format!("@batch={} :ada!~ada@parley.local PRIVMSG ", batch.as_deref().unwrap_or_default());
    assert_eq!(answered, [format!("{prefix}#lab :mine"), format!("{prefix}cy :mine")]);
    eprintln!("{inside} of {SAID} messages arrived between the batch's opening and end");
    server.shutdown().await;
}

/// What a command does for everyone in a channel reaches its author as it reaches the
/// others: untagged, and outside the batch of the answer even when it arrives inside its
/// bounds; the answer itself (nothing, here) is the ACK or the batch.
#[tokio::test]
async fn what_a_command_does_for_everyone_is_not_its_answer() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let mut bob = in_lab(&server, "bob", "").await;
    let _cy = in_lab(&server, "cy", "").await;
    let moded = answer(&mut ada, "@label=m MODE #lab +m").await;
    assert_eq!(moded, [":ada!~ada@parley.local MODE #lab +m", "@label=m :parley.local ACK"]);
    let topic = answer(&mut ada, "@label=t TOPIC #lab :labels").await;
    assert_eq!(topic, [":ada!~ada@parley.local TOPIC #lab :labels", "@label=t :parley.local ACK"]);
    // Two kicks are two parts, each answered by nothing: the answer is an ACK, after
    // the KICK lines, which are not part of it.
    let kicked = answer(&mut ada, "@label=k KICK #lab bob,cy :out").await;
    assert_eq!(
        kicked,
        [
            ":ada!~ada@parley.local KICK #lab bob :out",
            ":ada!~ada@parley.local KICK #lab cy :out",
            "@label=k :parley.local ACK"
        ]
    );
    assert_eq!(bob.expect(" KICK #lab bob").await, ":ada!~ada@parley.local KICK #lab bob :out");
    server.shutdown().await;
}

#[tokio::test]
async fn labeled_response_is_offered_and_taken() {
    let server = support::start().await;
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.send("CAP LS 302").await;
    let ls = client.expect(" CAP * LS ").await;
    assert!(ls.split([' ', ':']).any(|cap| cap == "labeled-response"), "{ls}");
    // The README shows what a client is offered: exactly this.
    let readme = include_str!("../../../README.md");
    assert!(readme.lines().any(|line| line.trim() == ls), "README.md shows another CAP LS than\n{ls}");
    client.send("CAP REQ :labeled-response batch").await;
    assert_eq!(client.expect(" ACK ").await, ":parley.local CAP * ACK :labeled-response batch");
    server.shutdown().await;
}

#[tokio::test]
async fn monitor_answers_are_labeled_too() {
    let server = support::start().await;
    let mut ada = in_lab(&server, "ada", CAPS).await;
    let _bob = in_lab(&server, "bob", "").await;
    // Two lines (one online, one not): a batch.
    let both = answer(&mut ada, "@label=w MONITOR + bob,nobody").await;
    let inside = batch_of(&both, "w");
    assert_eq!(inside.len(), 2, "{both:#?}");
    assert!(inside[0].starts_with(":parley.local 730 ada :bob!"), "{both:#?}");
    assert_eq!(inside[1], ":parley.local 731 ada :nobody");
    // Nothing to say: an ACK. A refusal: the labeled error.
    assert_eq!(answer(&mut ada, "@label=u MONITOR - bob").await, ["@label=u :parley.local ACK"]);
    let refused = answer(&mut ada, "@label=x MONITOR X").await;
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(refused[0].starts_with("@label=x :parley.local 400 ada MONITOR"), "{refused:#?}");
    server.shutdown().await;
}
