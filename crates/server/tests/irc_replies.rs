//! IRC replies as InspIRCd gives them (the reference of the differential test,
//! `irc_differential.rs`): each test pins down a group of replies the differential found
//! different, so that they stay the same once fixed.

mod support;

use support::IrcClient;

/// The answers to `input`, up to the PONG of a PING sent after it (others' arrivals in and
/// departures from the lobby, where every test user starts, left out).
async fn answers(client: &mut IrcClient, input: &str) -> Vec<String> {
    let mut lines = client.answers(input).await;
    lines.retain(|l| !l.contains(" JOIN #lobby") && !l.contains(" PART #lobby"));
    lines
}

#[tokio::test]
async fn user_modes_and_oper_are_told_as_servers_tell_them() {
    let server = support::start_with(|config| {
        config.irc.opers.push(parley_server::Oper { name: "root".into(), password: "root-pass".into() });
    })
    .await;
    let mut ada = IrcClient::connect(server.irc_addr()).await;
    ada.send("NICK ada").await;
    ada.send("USER u 0 * :Ada").await;
    let burst = ada.collect_until(" MODE ada +i").await;
    assert!(!burst.iter().any(|l| l.contains(" 252 ")), "no 252 without operators: {burst:#?}");
    let motd_end = burst.iter().position(|l| l.contains(" 422 ")).expect("the MOTD's end");
    assert_eq!(burst[motd_end + 1..], [":ada!~u@parley.local MODE ada +i"], "{burst:#?}");
    let _bob = IrcClient::join(server.irc_addr(), "bob", "").await;

    assert_eq!(answers(&mut ada, "MODE ada").await, [":parley.local 221 ada +i"]);
    assert_eq!(answers(&mut ada, "MODE ADA").await, [":parley.local 221 ada +i"]);
    assert_eq!(answers(&mut ada, "MODE ada +z").await, [":parley.local 501 ada z :is not a recognised user mode."]);
    assert_eq!(answers(&mut ada, "MODE nobody").await, [":parley.local 401 ada nobody :No such nick"]);
    assert_eq!(
        answers(&mut ada, "MODE bob +i").await,
        [":parley.local 502 ada :Can't view or change mode for other users"]
    );
    assert_eq!(
        answers(&mut ada, "OPER root root-pass").await,
        [":parley.local MODE ada +o", ":parley.local 381 ada :You are now an IRC operator"]
    );
    assert_eq!(answers(&mut ada, "MODE ada").await, [":parley.local 221 ada +io"]);
    ada.send("LUSERS").await;
    ada.expect(" 252 ada 1 :operator(s) online").await;
    server.shutdown().await;
}

#[tokio::test]
async fn missing_parameters_are_461() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    for command in ["PING", "WHOIS", "WHOWAS", "CAP"] {
        let lines = answers(&mut ada, command).await;
        assert_eq!(lines, [format!(":parley.local 461 ada {command} :Not enough parameters")]);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn joins_parts_kicks_and_quits_as_servers_word_them() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "server-time").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;

    // A name that is no channel: 476.
    assert_eq!(answers(&mut ada, "JOIN nochannel").await, [":parley.local 476 ada nochannel :Invalid channel name"]);
    // The client's own JOIN carries its time, as every event does.
    let joined = answers(&mut ada, "JOIN #k").await;
    assert!(joined[0].starts_with("@time=") && joined[0].ends_with(" :ada!~ada@parley.local JOIN #k"), "{joined:#?}");
    for client in [&mut bob, &mut cy] {
        client.send("JOIN #k").await;
        client.expect(" 366 ").await;
    }
    // Several nicks in one KICK; without a reason, the kicker's nick is the reason.
    ada.send("KICK #k bob,cy :both of you").await;
    ada.expect(":ada!~ada@parley.local KICK #k bob :both of you").await;
    ada.expect(":ada!~ada@parley.local KICK #k cy :both of you").await;
    bob.send("JOIN #k").await;
    bob.expect(" 366 ").await;
    ada.expect(":bob!~bob@parley.local JOIN #k").await;
    ada.send("KICK #k bob").await;
    ada.expect(":ada!~ada@parley.local KICK #k bob :ada").await;
    bob.expect(":ada!~ada@parley.local KICK #k bob :ada").await;
    // The nick one has, exactly: nothing happens.
    assert_eq!(answers(&mut ada, "NICK ada").await, Vec::<String>::new());
    // A removed key is echoed as given; a limit without a number is 696 for `l`.
    ada.send("MODE #k +k sesame").await;
    ada.expect("MODE #k +k sesame").await;
    ada.send("MODE #k -k sesame").await;
    ada.expect(":ada!~ada@parley.local MODE #k -k sesame").await;
    let limit = answers(&mut ada, "MODE #k +l").await;
    assert!(limit.iter().any(|l| l.starts_with(":parley.local 696 ada #k l * :")), "{limit:#?}");
    // Changing modes from outside asks for an operator.
    assert_eq!(answers(&mut bob, "MODE #k +m").await, [":parley.local 482 bob #k :You're not channel operator"]);
    // QUIT without a reason, and with an empty one.
    cy.send("JOIN #k").await;
    cy.expect(" 366 ").await;
    ada.expect("cy!~cy@parley.local JOIN #k").await;
    cy.send("QUIT").await;
    ada.expect(":cy!~cy@parley.local QUIT :Client exited").await;
    bob.send("QUIT :").await;
    ada.expect(":bob!~bob@parley.local QUIT :Quit: ").await;
    server.shutdown().await;
}

#[tokio::test]
async fn names_who_topic_whois_and_list_answer_as_servers_do() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;
    ada.send("JOIN #one").await;
    ada.expect(" 366 ").await;
    bob.send("JOIN #one,#two").await;
    bob.expect(" 366 bob #two").await;

    // A secret channel's NAMES says `@`.
    ada.send("MODE #one +s").await;
    ada.expect("MODE #one +s").await;
    let names = answers(&mut ada, "NAMES #one").await;
    assert_eq!(names[0], ":parley.local 353 ada @ #one :@ada bob");
    ada.send("MODE #one -s").await;
    ada.expect("MODE #one -s").await;
    // Everyone is invisible: outside a channel, its members are not listed.
    assert_eq!(answers(&mut cy, "NAMES #one").await, [":parley.local 366 cy #one :End of /NAMES list."]);
    assert_eq!(answers(&mut cy, "WHO #one").await, [":parley.local 315 cy #one :End of /WHO list."]);
    // 333 names the setter by nick.
    ada.send("TOPIC #one :hello").await;
    ada.expect(" TOPIC #one :hello").await;
    bob.expect(" TOPIC #one :hello").await;
    let topic = answers(&mut bob, "TOPIC #one").await;
    assert!(topic[1].starts_with(":parley.local 333 bob #one ada "), "{topic:#?}");
    // The channel as it is spelled, not as asked.
    let topic = answers(&mut bob, "TOPIC #ONE").await;
    assert_eq!(topic[0], ":parley.local 332 bob #one :hello");
    // A topic is kept as given, spaces and all.
    ada.send("TOPIC #one : spaced out ").await;
    bob.expect(":ada!~ada@parley.local TOPIC #one : spaced out ").await;
    // WHOIS shows where one connects from (378) and one's modes (379) to oneself.
    let whois = answers(&mut bob, "WHOIS bob").await;
    assert!(whois.iter().any(|l| l.contains(" 378 bob bob :is connecting from *@127.0.0.1 127.0.0.1")), "{whois:#?}");
    assert!(whois.iter().any(|l| l.contains(" 379 bob bob :is using modes +i")), "{whois:#?}");
    let whois = answers(&mut ada, "WHOIS bob").await;
    assert!(!whois.iter().any(|l| l.contains(" 378 ") || l.contains(" 379 ")), "{whois:#?}");
    // LIST with ELIST filters: users (>, <) and masks (M, N).
    let list = |lines: Vec<String>| -> Vec<String> {
        lines.iter().filter(|l| l.contains(" 322 ")).map(|l| l.split(' ').nth(3).unwrap_or("").to_owned()).collect()
    };
    // (#lobby has the three of them.)
    assert_eq!(list(answers(&mut cy, "LIST >1,<3").await), ["#one"]);
    assert_eq!(list(answers(&mut cy, "LIST <2,#t*").await), ["#two"]);
    assert_eq!(list(answers(&mut cy, "LIST *ne").await), ["#one"]);
    let mut not_one = list(answers(&mut cy, "LIST !#one").await);
    not_one.sort();
    assert_eq!(not_one, ["#lobby", "#two"]);
    server.shutdown().await;
}

#[tokio::test]
async fn who_and_whox_tell_real_names_channels_and_fields() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    ada.send("JOIN #w").await;
    ada.expect(" 366 ").await;
    bob.send("PART #lobby").await;
    bob.expect(" PART #lobby").await;
    bob.send("JOIN #w").await;
    bob.expect(" 366 ").await;
    ada.send("MODE #w +v bob").await;
    ada.expect("MODE #w +v bob").await;

    let who = answers(&mut ada, "WHO #w").await;
    assert_eq!(
        who,
        [
            ":parley.local 352 ada #w ~ada parley.local parley.local ada H@ :0 ada the tester",
            ":parley.local 352 ada #w ~bob parley.local parley.local bob H+ :0 bob the tester",
            ":parley.local 315 ada #w :End of /WHO list.",
        ]
    );
    // A nick: the first channel one may see them in, with their status there.
    let who = answers(&mut ada, "WHO bob").await;
    assert_eq!(who[0], ":parley.local 352 ada #w ~bob parley.local parley.local bob H+ :0 bob the tester");
    assert_eq!(answers(&mut ada, "WHO").await, [":parley.local 461 ada WHO :Not enough parameters"]);
    // WHOX: the fields asked for, in their fixed order, and the token.
    let whox = answers(&mut ada, "WHO #w %tcnuhraf,42").await;
    assert_eq!(
        whox,
        [
            ":parley.local 354 ada 42 #w ~ada parley.local ada H@ 0 :ada the tester",
            ":parley.local 354 ada 42 #w ~bob parley.local bob H+ 0 :bob the tester",
            ":parley.local 315 ada #w :End of /WHO list.",
        ]
    );
    let whox = answers(&mut ada, "WHO #w %nio").await;
    assert_eq!(whox[..2], [":parley.local 354 ada 127.0.0.1 ada 0", ":parley.local 354 ada 255.255.255.255 bob 0"]);
    assert_eq!(answers(&mut ada, "WHO bob %n").await[0], ":parley.local 354 ada bob");
    let idle = answers(&mut ada, "WHO bob %l").await;
    assert!(idle[0].strip_prefix(":parley.local 354 ada ").is_some_and(|s| s.parse::<u64>().is_ok()), "{idle:#?}");
    // WHOIS of several nicks answers each; 319 marks the voiced.
    let whois = answers(&mut ada, "WHOIS nobody,bob").await;
    assert_eq!(
        whois[..2],
        [":parley.local 401 ada nobody :No such nick/channel", ":parley.local 318 ada nobody :End of /WHOIS list."]
    );
    assert!(whois.iter().any(|l| l.ends_with(" 319 ada bob :+#w")), "{whois:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn userhost_and_ison_tell_who_is_here() {
    let server = support::start_with(|config| {
        config.irc.opers.push(parley_server::Oper { name: "root".into(), password: "root-pass".into() });
    })
    .await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    assert_eq!(answers(&mut ada, "USERHOST bob").await, [":parley.local 302 ada bob=+~bob@parley.local"]);
    assert_eq!(
        answers(&mut ada, "USERHOST bob ada nobody").await,
        [":parley.local 302 ada :bob=+~bob@parley.local ada=+~ada@parley.local"]
    );
    assert_eq!(answers(&mut ada, "USERHOST").await, [":parley.local 461 ada USERHOST :Not enough parameters"]);
    ada.send("OPER root root-pass").await;
    ada.expect(" 381 ").await;
    bob.send("AWAY :lunch").await;
    bob.expect(" 306 ").await;
    assert_eq!(
        answers(&mut bob, "USERHOST ada bob").await,
        [":parley.local 302 bob :ada*=+~ada@parley.local bob=-~bob@parley.local"]
    );
    assert_eq!(answers(&mut bob, "ISON ada").await, [":parley.local 303 bob ada"]);
    assert_eq!(answers(&mut bob, "ISON ada nobody BOB #x").await, [":parley.local 303 bob :ada bob"]);
    assert_eq!(answers(&mut bob, "ISON :nobody").await, [":parley.local 303 bob :"]);
    assert_eq!(answers(&mut bob, "ISON").await, [":parley.local 461 bob ISON :Not enough parameters"]);
    server.shutdown().await;
}

#[tokio::test]
async fn part_reasons_reach_the_channel_and_missing_channels_are_403() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    ada.send("JOIN #p").await;
    ada.expect(" 366 ").await;
    bob.send("JOIN #p").await;
    bob.expect(" 366 ").await;
    bob.send("PART #p :see you").await;
    bob.expect(":bob!~bob@parley.local PART #p :see you").await;
    ada.expect(":bob!~bob@parley.local PART #p :see you").await;
    assert_eq!(answers(&mut bob, "PART #p").await, [":parley.local 442 bob #p :You're not on that channel"]);
    assert_eq!(answers(&mut bob, "PART #nowhere").await, [":parley.local 403 bob #nowhere :No such channel"]);
    assert_eq!(answers(&mut bob, "PRIVMSG #nowhere :hi").await, [":parley.local 403 bob #nowhere :No such channel"]);
    server.shutdown().await;
}

#[tokio::test]
async fn admin_tells_how_to_reach_whoever_runs_the_server() {
    let server = support::start_with(|config| config.irc.admin = Some("ops@example.org".into())).await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    assert_eq!(
        answers(&mut ada, "ADMIN").await,
        [
            ":parley.local 256 ada parley.local :Administrative info",
            ":parley.local 257 ada :parley.local chat server",
            ":parley.local 258 ada :on the Parley network",
            ":parley.local 259 ada :ops@example.org",
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn extended_join_tells_the_account_and_real_name() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "extended-join").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    let ls = answers(&mut ada, "CAP LS").await;
    assert!(ls[0].split([' ', ':']).any(|c| c == "extended-join"), "{ls:#?}");
    let joined = answers(&mut ada, "JOIN #x").await;
    assert_eq!(joined[0], ":ada!~ada@parley.local JOIN #x * :ada the tester", "its own JOIN too");
    bob.send("JOIN #x").await;
    bob.expect(":bob!~bob@parley.local JOIN #x").await;
    ada.expect(":bob!~bob@parley.local JOIN #x * :bob the tester").await;
    // Without the capability, JOIN is plain.
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;
    cy.send("JOIN #x").await;
    cy.expect(":cy!~cy@parley.local JOIN #x").await;
    bob.expect(":cy!~cy@parley.local JOIN #x").await;
    ada.expect(":cy!~cy@parley.local JOIN #x * :cy the tester").await;
    server.shutdown().await;
}

#[tokio::test]
async fn account_notify_tells_logins_and_logouts_in_shared_channels() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "account-notify").await;
    let mut plain = IrcClient::join(server.irc_addr(), "plain", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    plain.expect(":bob!~bob@parley.local JOIN #lobby").await;
    bob.send("NS REGISTER bob-password-1").await;
    bob.expect(" 900 ").await;
    ada.expect(":bob!~bob@parley.local ACCOUNT bob").await;
    bob.send("NS UNREGISTER bob-password-1").await;
    bob.expect(" 901 ").await;
    ada.expect(":bob!~bob@parley.local ACCOUNT *").await;
    // Only those who asked for it are told.
    plain.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn join_0_rejoins_and_who_masks_go_by_the_channels_one_is_in() {
    let server = support::start_with(|config| {
        config.irc.opers.push(parley_server::Oper { name: "root".into(), password: "root-pass".into() });
    })
    .await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;
    for client in [&mut ada, &mut bob, &mut cy] {
        client.send("PART #lobby").await;
        client.expect(" PART #lobby").await;
    }
    ada.send("JOIN #w").await;
    ada.expect(" 366 ").await;
    bob.send("JOIN #w,#v").await;
    bob.expect(" 366 bob #v ").await;
    ada.expect(":bob!~bob@parley.local JOIN #w").await;
    // Joining a channel one is in says nothing.
    assert_eq!(answers(&mut bob, "JOIN #W").await, Vec::<String>::new());
    // A mask finds those in one's channels (everyone is invisible), each once.
    let who = answers(&mut ada, "WHO b*").await;
    assert_eq!(
        who,
        [
            ":parley.local 352 ada #w ~bob parley.local parley.local bob H :0 bob the tester",
            ":parley.local 315 ada b* :End of /WHO list."
        ]
    );
    assert_eq!(answers(&mut cy, "WHO b*").await, [":parley.local 315 cy b* :End of /WHO list."]);
    assert_eq!(answers(&mut ada, "WHO b* %cn").await[0], ":parley.local 354 ada #w bob", "WHOX too");
    ada.send("OPER root root-pass").await;
    ada.expect(" 381 ").await;
    let opers = answers(&mut bob, "WHO 0 o").await;
    assert_eq!(
        opers,
        [
            ":parley.local 352 bob #w ~ada parley.local parley.local ada H*@ :0 ada the tester",
            ":parley.local 315 bob * :End of /WHO list."
        ]
    );
    // Kicked, one may join again.
    ada.send("KICK #w bob").await;
    bob.expect(" KICK #w bob ").await;
    bob.send("JOIN #w").await;
    bob.expect(":bob!~bob@parley.local JOIN #w").await;
    bob.expect(" 366 ").await;
    // JOIN 0 parts every channel.
    let parted = answers(&mut bob, "JOIN 0").await;
    assert_eq!(parted.len(), 2, "{parted:#?}");
    assert!(
        parted.contains(&":bob!~bob@parley.local PART #v".to_owned())
            && parted.contains(&":bob!~bob@parley.local PART #w".to_owned())
    );
    ada.expect(":bob!~bob@parley.local PART #w").await;
    server.shutdown().await;
}

#[tokio::test]
async fn invite_without_a_channel_lists_ones_invitations() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    assert_eq!(answers(&mut bob, "INVITE").await, [":parley.local 337 bob :End of INVITE list"]);
    ada.send("JOIN #inv").await;
    ada.expect(" 366 ").await;
    ada.send("INVITE bob #inv").await;
    ada.expect(" 341 ada bob #inv").await;
    bob.expect(":ada!~ada@parley.local INVITE bob :#inv").await;
    assert_eq!(
        answers(&mut bob, "INVITE ada").await,
        [":parley.local 336 bob #inv", ":parley.local 337 bob :End of INVITE list"]
    );
    bob.send("JOIN #inv").await;
    bob.expect(" 366 ").await;
    assert_eq!(answers(&mut bob, "INVITE").await, [":parley.local 337 bob :End of INVITE list"], "used up");
    server.shutdown().await;
}

#[tokio::test]
async fn invite_notify_tells_the_channel_of_invitations() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "invite-notify").await;
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;
    let _dave = IrcClient::join(server.irc_addr(), "dave", "").await;
    let _eve = IrcClient::join(server.irc_addr(), "eve", "").await;
    ada.send("JOIN #inv").await;
    ada.expect(" 366 ").await;
    for client in [&mut bob, &mut cy] {
        client.send("JOIN #inv").await;
        client.expect(" 366 ").await;
    }
    ada.send("INVITE dave #inv").await;
    ada.expect(" 341 ada dave #inv").await;
    bob.expect(":ada!~ada@parley.local INVITE dave #inv").await;
    // Invite-only: only operators are told.
    ada.send("MODE #inv +i").await;
    bob.expect("MODE #inv +i").await;
    ada.send("INVITE eve #inv").await;
    ada.expect(" 341 ada eve #inv").await;
    assert_eq!(answers(&mut bob, "PING :x").await, [":parley.local PONG parley.local :x"]);
    cy.expect("MODE #inv +i").await;
    cy.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn setname_changes_the_real_name_for_everyone_who_asked() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "setname").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "setname").await;
    let mut cy = IrcClient::join(server.irc_addr(), "cy", "").await;
    bob.expect(":cy!~cy@parley.local JOIN #lobby").await;
    assert_eq!(answers(&mut ada, "SETNAME :Ada Lovelace").await, [":ada!~ada@parley.local SETNAME :Ada Lovelace"]);
    bob.expect(":ada!~ada@parley.local SETNAME :Ada Lovelace").await;
    let whois = answers(&mut cy, "WHOIS ada").await;
    assert!(whois[0].ends_with(" 311 cy ada ~ada parley.local * :Ada Lovelace"), "{whois:#?}");
    let refused = answers(&mut ada, "SETNAME :").await;
    assert!(refused[0].starts_with(":parley.local FAIL SETNAME INVALID_REALNAME :"), "{refused:#?}");
    // Without the capability, nobody is told.
    cy.send("SETNAME :Cy").await;
    bob.expect(":cy!~cy@parley.local SETNAME :Cy").await;
    cy.expect_nothing_more().await;
    server.shutdown().await;
}

/// Answers that the store gives (a history page, a topic written to a registered room)
/// come before the answers to the commands sent after them: a PING's PONG marks where
/// a command's answer ends, for clients and bots that wait for it.
#[tokio::test]
async fn answers_from_the_store_come_in_the_order_of_the_requests() {
    use parley_proto::msg::{Reply, Request};
    let server = support::start_with(|c| c.limits.flood_rate_per_sec = 0).await;
    // alice opens a registered room (she is logged in) and fills its history.
    let mut alice = support::NativeClient::join(server.native, "alice").await;
    assert!(alice.request(&Request::Register { password: "alice-password".into() }, b"").await.is_ok());
    assert!(alice.request(&Request::Join { room: "dev".into() }, b"").await.is_ok());
    for n in 0..20 {
        let say = Request::Say { room: "dev".into(), reply_to: None, tags: None };
        assert!(matches!(alice.request(&say, format!("line {n}").as_bytes()).await, Ok(Reply::Said { .. })));
    }
    let mut ivy = IrcClient::join(server.irc_addr(), "ivy", "batch server-time message-tags draft/chathistory").await;
    ivy.send("JOIN #dev").await;
    ivy.expect(" 366 ivy #dev ").await;
    for round in 0..20 {
        ivy.send_raw(format!("CHATHISTORY LATEST #dev * 5\r\nPING :round{round}\r\n").as_bytes()).await;
        let lines = ivy.collect_until(&format!("PONG parley.local :round{round}")).await;
        let end = lines.iter().position(|l| l.contains("BATCH -"));
        assert!(end.is_some(), "the history page before the PONG, round {round}: {lines:#?}");
    }
    server.shutdown().await;
}

/// `+p`: a private channel is left out of LIST and WHOIS for those outside it, for whom
/// it still exists (NAMES answers, with no one in it as every user is `+i`, where a secret
/// one would not); its members see it as ever, of type `*` in NAMES.
#[tokio::test]
async fn a_private_channel_is_unlisted_but_answers_names() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    let mut bob = IrcClient::join(server.irc_addr(), "bob", "").await;
    ada.send("JOIN #quiet").await;
    ada.expect(" 366 ada #quiet ").await;
    let set = answers(&mut ada, "MODE #quiet +p").await;
    assert_eq!(set, [":ada!~ada@parley.local MODE #quiet +p"]);
    let modes = answers(&mut ada, "MODE #quiet").await;
    assert!(modes[0].contains(" 324 ada #quiet +nps") || modes[0].contains(" 324 ada #quiet +npt"), "{modes:?}");
    let list = answers(&mut bob, "LIST").await;
    assert!(!list.iter().any(|l| l.contains("#quiet")), "unlisted: {list:?}");
    let whois = answers(&mut bob, "WHOIS ada").await;
    assert!(!whois.iter().any(|l| l.contains("#quiet")), "not in WHOIS: {whois:?}");
    let names = answers(&mut bob, "NAMES #quiet").await;
    assert_eq!(names, [":parley.local 366 bob #quiet :End of /NAMES list."]);
    bob.send("JOIN #quiet").await;
    bob.expect(" 366 bob #quiet ").await;
    let names = answers(&mut bob, "NAMES #quiet").await;
    assert_eq!(names[0], ":parley.local 353 bob * #quiet :@ada bob", "{names:?}");
    let inside = answers(&mut ada, "LIST").await;
    assert!(inside.iter().any(|l| l.contains(" 322 ada #quiet 2 ")), "{inside:?}");
    server.shutdown().await;
}

/// The ban list names who set each ban and when, as every server's `367` does.
#[tokio::test]
async fn the_ban_list_says_who_set_each_ban_and_when() {
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "").await;
    ada.send("JOIN #gate").await;
    ada.expect(" 366 ada #gate ").await;
    let before = chrono::Utc::now().timestamp();
    answers(&mut ada, "MODE #gate +b troll!*@*").await;
    let list = answers(&mut ada, "MODE #gate +b").await;
    let line = &list[0];
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[1..6], ["367", "ada", "#gate", "troll!*@*", "ada"], "{line}");
    let at: i64 = fields[6].parse().expect("a time");
    assert!((before..=chrono::Utc::now().timestamp()).contains(&at), "{line}");
    assert!(list[1].contains(" 368 ada #gate "), "{list:?}");
    server.shutdown().await;
}

/// `STATUSMSG`: `PRIVMSG @#room` reaches the room's operators, `+#room` its operators and
/// voiced members, on every gateway; nobody else, and nothing is kept in history.
#[tokio::test]
async fn messages_to_a_channels_operators_reach_only_them() {
    use parley_proto::msg::{Reply, Request, ServerMsg};
    let server = support::start().await;
    let mut ada = IrcClient::join(server.irc_addr(), "ada", "echo-message").await;
    ada.send("JOIN #desk").await;
    ada.expect(" 366 ada #desk ").await;
    let mut vic = IrcClient::join(server.irc_addr(), "vic", "").await;
    vic.send("JOIN #desk").await;
    vic.expect(" 366 vic #desk ").await;
    let mut pat = IrcClient::join(server.irc_addr(), "pat", "").await;
    pat.send("JOIN #desk").await;
    pat.expect(" 366 pat #desk ").await;
    let mut nina = support::NativeClient::join(server.native, "nina").await;
    assert!(nina.request(&Request::Join { room: "desk".into() }, b"").await.is_ok());
    answers(&mut ada, "MODE #desk +v vic").await;
    vic.expect("MODE #desk +v vic").await;
    pat.expect("MODE #desk +v vic").await;

    // pat, a plain member, writes to the operators: only ada hears it.
    pat.send("PRIVMSG @#desk :a word with the ops").await;
    ada.expect(":pat!~pat@parley.local PRIVMSG @#desk :a word with the ops").await;
    // vic writes to the voiced: ada (operator) and vic's own echo-less session only.
    vic.send("PRIVMSG +#desk :voices only").await;
    ada.expect(":vic!~vic@parley.local PRIVMSG +#desk :voices only").await;
    // ada writes to the voiced: vic hears it, ada gets her echo, pat nothing.
    ada.send("PRIVMSG +#desk :for vic").await;
    vic.expect(":ada!~ada@parley.local PRIVMSG +#desk :for vic").await;
    ada.expect(":ada!~ada@parley.local PRIVMSG +#desk :for vic").await;
    // A normal message shows what pat and nina saw before it: nothing.
    ada.send("PRIVMSG #desk :for everyone").await;
    let next = pat.next_line().await.expect("a line");
    assert!(next.ends_with("PRIVMSG #desk :for everyone"), "pat saw {next:?}");
    let first = nina
        .expect(|r| match &r.msg {
            ServerMsg::Message { .. } => Some(r.text()),
            ServerMsg::Notice { .. } if r.text().starts_with("[to ") => Some(r.text()),
            _ => None,
        })
        .await;
    assert_eq!(first, "for everyone", "nina is not an operator");
    let history = Request::History { room: Some("desk".into()), before: None, after: None, limit: Some(10) };
    let Ok(Reply::History { messages, .. }) = nina.request(&history, b"").await else { panic!("history") };
    let texts: Vec<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["for everyone"], "not kept");
    // From outside the channel: refused as a message to the channel would be.
    let mut out = IrcClient::join(server.irc_addr(), "out", "").await;
    let refused = answers(&mut out, "PRIVMSG @#desk :hello?").await;
    assert!(refused[0].contains(" 404 ") || refused[0].contains(" 442 "), "{refused:?}");
    server.shutdown().await;
}
