//! The IRC gateway over real sockets: registration, channels, messages across gateways,
//! modes backed by the hub's moderation, IRCv3 capabilities, and the numeric for each
//! bad input.

mod support;

use parley_proto::msg::Request;
use support::{IrcClient, LineClient, NativeClient};

/// Makes `name` an account with `password` (through the line protocol, as any user
/// could), and leaves.
async fn account(server: &support::TestServer, name: &str, password: &str) {
    let mut line = LineClient::join(server.line, name).await;
    line.send(&format!("/register {password}")).await;
    line.expect_line(&format!("is now your account. Next time, log in with /login {name} PASSWORD.")).await;
    line.send("/quit").await;
    line.expect_closed().await;
}

/// Registers over IRC logged in to an account with SASL PLAIN, and joins `#lobby`.
async fn sasl_join(server: &support::TestServer, name: &str, password: &str, caps: &str) -> IrcClient {
    use base64::Engine as _;
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.send(&format!("CAP REQ :sasl {caps}")).await;
    client.send(&format!("NICK {name}")).await;
    client.send(&format!("USER {name} 0 * :{name}")).await;
    client.expect(" ACK ").await;
    client.send("AUTHENTICATE PLAIN").await;
    client.expect("AUTHENTICATE +").await;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0{name}\0{password}"));
    client.send(&format!("AUTHENTICATE {payload}")).await;
    client.expect(" 903 ").await;
    client.send("CAP END").await;
    client.expect(" 001 ").await;
    client.welcomed().await;
    client.send("JOIN #lobby").await;
    client.expect(" 366 ").await;
    client
}

#[tokio::test]
async fn registration_follows_the_modern_sequence() {
    let server = support::start_with(|config| {
        config.irc.server_name = "chat.example.org".into();
        config.irc.autojoin = vec!["#lobby".into()];
    })
    .await;
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.send("CAP LS 302").await;
    let ls = client.expect(" CAP * LS ").await;
    for cap in ["message-tags", "server-time", "echo-message", "multi-prefix", "batch", "sasl=PLAIN", "account-tag"] {
        assert!(ls.split(' ').any(|c| c.trim_start_matches(':') == cap), "{cap} offered: {ls}");
    }
    client.send("NICK ada").await;
    client.send("USER ada 0 * :Ada Lovelace").await;
    client.send("PING :early").await;
    client.expect("PONG chat.example.org :early").await;
    client.send("CAP END").await;
    let lines = client.collect_until(" 366 ").await;
    let codes: Vec<&str> = lines.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    // No 252 while no operator is online.
    let expected = ["001", "002", "003", "004", "005", "005", "251", "254", "255", "265", "266", "422"];
    assert_eq!(&codes[..expected.len()], expected, "{lines:#?}");
    assert!(
        lines[0].starts_with(":chat.example.org 001 ada :Welcome to the Parley IRC network, ada!~ada@chat.example.org")
    );
    assert!(lines[3].starts_with(":chat.example.org 004 ada chat.example.org parley-"));
    let isupport = lines[4..6].join(" ");
    for token in ["CASEMAPPING=rfc8265", "CHANTYPES=#", "CHANMODES=b,k,l,imnpst", "PREFIX=(ov)@+", "NICKLEN=32"] {
        assert!(isupport.contains(token), "{token} in {isupport}");
    }
    assert!(isupport.contains("NETWORK=Parley") && isupport.contains("CHANNELLEN=33"));
    assert_eq!(lines[expected.len()], ":ada!~ada@chat.example.org MODE ada +i", "the user modes it starts with");
    // `[irc] autojoin`, after the welcome, as the client's own JOIN would be.
    assert_eq!(lines[expected.len() + 1], ":ada!~ada@chat.example.org JOIN #lobby");
    assert!(lines.iter().any(|l| l == ":chat.example.org 353 ada = #lobby :ada"), "{lines:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn registration_errors_have_their_numerics() {
    let server = support::start().await;
    let _taken = IrcClient::join(server.irc_addr(), "taken", "").await;
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.send("PRIVMSG #lobby :too early").await;
    client.expect(" 451 * PRIVMSG :You have not registered").await;
    client.send("NICK").await;
    client.expect(" 431 ").await;
    client.send("NICK 9lives").await;
    client.expect(" 432 * 9lives :Erroneous nickname").await;
    client.send("USER only two").await;
    client.expect(" 461 * USER :Not enough parameters").await;
    // A taken nick is told at once, and the client is still without one.
    client.send("NICK taken").await;
    client.expect(" 433 * taken :Nickname is already in use").await;
    client.send("NICK TAKEN").await;
    client.expect(" 433 * TAKEN :Nickname is already in use").await;
    client.send("USER t 0 * :T").await;
    client.send("NICK untaken").await;
    client.expect(" 001 untaken ").await;
    client.send("USER again 0 * :again").await;
    client.expect(" 462 untaken :You may not reregister").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_connection_password_is_checked_before_registering() {
    let server = support::start_with(|config| config.irc.password = Some("letmein".into())).await;
    let mut wrong = IrcClient::connect(server.irc_addr()).await;
    wrong.send("PASS guess").await;
    wrong.send("NICK guesser").await;
    wrong.send("USER g 0 * :g").await;
    let closing = wrong.expect_closed().await;
    assert!(closing.iter().any(|l| l.contains(" 464 ")), "{closing:?}");
    assert!(closing.last().is_some_and(|l| l.starts_with("ERROR :")), "{closing:?}");
    let mut right = IrcClient::connect(server.irc_addr()).await;
    right.send("PASS letmein").await;
    right.register("member", "").await;
    server.shutdown().await;
}

#[tokio::test]
async fn messages_cross_between_irc_line_and_native() {
    let server = support::start().await;
    let mut alice = IrcClient::join(server.irc_addr(), "alice", "").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    let mut carol = NativeClient::join(server.native, "carol").await;
    alice.expect(":bob!~bob@parley.local JOIN #lobby").await;
    alice.expect(":carol!~carol@parley.local JOIN #lobby").await;

    alice.send("PRIVMSG #lobby :hello from irc").await;
    bob.expect_line("alice: hello from irc").await;
    carol.expect(|r| (r.payload.as_ref() == b"hello from irc").then_some(())).await;

    bob.send("hello from the line").await;
    alice.expect(":bob!~bob@parley.local PRIVMSG #lobby :hello from the line").await;
    assert!(carol
        .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, b"hello from native")
        .await
        .is_ok());
    alice.expect(":carol!~carol@parley.local PRIVMSG #lobby :hello from native").await;

    alice.send("PRIVMSG #lobby :\u{1}ACTION waves\u{1}").await;
    bob.expect_line("* alice waves").await;
    alice.send("PRIVMSG bob :psst, bob").await;
    bob.expect_line("[private] alice: psst, bob").await;
    bob.send("/msg alice psst back").await;
    alice.expect(":bob!~bob@parley.local PRIVMSG alice :psst back").await;
    alice.send("NOTICE carol :a notice").await;
    let kind = carol.expect(|r| match &r.msg {
        parley_proto::msg::ServerMsg::Whisper { kind, .. } => Some(kind.clone()),
        _ => None,
    });
    assert_eq!(kind.await.as_deref(), Some("notice"));

    // A long message from another gateway arrives whole, in lines IRC clients accept.
    let long = "word ".repeat(300);
    assert!(carol
        .request(&Request::Say { room: "lobby".into(), reply_to: None, tags: None }, long.trim().as_bytes())
        .await
        .is_ok());
    let mut words = 0;
    while words < 300 {
        let line = alice.expect(":carol!~carol@parley.local PRIVMSG #lobby :").await;
        words += line.split(" :").nth(1).map_or(0, |t| t.split_whitespace().count());
    }
    assert_eq!(words, 300);

    bob.send("/quit").await;
    alice.expect(":bob!~bob@parley.local QUIT :Client exited").await;
    alice.send("QUIT :see you").await;
    let closing = alice.expect_closed().await;
    assert!(closing.last().is_some_and(|l| l.starts_with("ERROR :Closing link")), "{closing:?}");
    carol
        .expect(|r| match &r.msg {
            parley_proto::msg::ServerMsg::Left { nick, detail, .. } if nick == "alice" => {
                assert_eq!(detail.as_deref(), Some("see you"));
                Some(())
            }
            _ => None,
        })
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn capabilities_add_tags_echo_and_batches() {
    let server = support::start().await;
    account(&server, "dana", "dana-password").await;
    let mut dana = sasl_join(&server, "dana", "dana-password", "").await;
    let caps = "server-time message-tags echo-message batch account-tag multi-prefix away-notify";
    let mut eve = IrcClient::join(server.irc_addr(), "eve", caps).await;
    dana.send("PRIVMSG #lobby :tagged").await;
    let line = eve.expect(" PRIVMSG #lobby :tagged").await;
    assert!(line.starts_with("@time=20"), "{line}");
    assert!(line.contains(";msgid=lobby/") && line.contains(";account=dana "), "{line}");
    eve.send("PRIVMSG #lobby :echoed").await;
    let echo = eve.expect(":eve!~eve@parley.local PRIVMSG #lobby :echoed").await;
    assert!(echo.contains("msgid=lobby/"), "echo carries the stored message's id: {echo}");

    // Playback on joining: the room's history, in a batch, with the original times.
    eve.send("JOIN #archive").await;
    eve.expect(" 366 ").await;
    for n in 1..=3 {
        eve.send(&format!("PRIVMSG #archive :old {n}")).await;
        eve.expect(&format!("PRIVMSG #archive :old {n}")).await;
    }
    let mut late = IrcClient::join(server.irc_addr(), "late", "server-time batch message-tags").await;
    late.expect("BATCH -").await;
    late.send("JOIN #archive").await;
    let lines = late.collect_until("BATCH -").await;
    let start = lines.iter().position(|l| l.contains(" BATCH +")).expect("a batch opens");
    assert!(lines[start].ends_with("chathistory #archive"), "{lines:#?}");
    let replayed: Vec<&String> = lines.iter().filter(|l| l.contains("PRIVMSG #archive :old")).collect();
    assert_eq!(replayed.len(), 3);
    assert!(replayed.iter().all(|l| l.starts_with("@batch=") && l.contains(";time=")), "{replayed:#?}");

    // CHATHISTORY pages by message id.
    let mut fetcher = IrcClient::join(server.irc_addr(), "fetcher", "draft/chathistory batch message-tags").await;
    fetcher.send("JOIN #archive").await;
    let joined = fetcher.collect_until(" 366 ").await;
    assert!(!joined.iter().any(|l| l.contains("old 1")), "chathistory clients fetch history themselves");
    fetcher.send("CHATHISTORY LATEST #archive * 2").await;
    let page = fetcher.collect_until("BATCH -").await;
    let texts: Vec<&str> = page.iter().filter_map(|l| l.split(" :").last()).filter(|t| t.starts_with("old")).collect();
    assert_eq!(texts, ["old 2", "old 3"]);
    fetcher.send("CHATHISTORY BEFORE #archive msgid=archive/2 10").await;
    let page = fetcher.collect_until("BATCH -").await;
    assert!(page.iter().any(|l| l.ends_with(":old 1")) && !page.iter().any(|l| l.ends_with(":old 2")));
    fetcher.send("CHATHISTORY BEFORE #archive timestamp=2026-01-01T00:00:00.000Z 10").await;
    let page = fetcher.collect_until("BATCH -").await;
    assert!(!page.iter().any(|l| l.contains(":old")), "nothing was said before 2026: {page:#?}");

    // away-notify and multi-prefix.
    dana.send("AWAY :lunch").await;
    dana.expect(" 306 dana ").await;
    eve.expect(":dana!~dana@parley.local AWAY :lunch").await;
    eve.send("PRIVMSG dana :are you there?").await;
    eve.expect(" 301 eve dana :lunch").await;
    eve.send("WHO #lobby").await;
    let who = eve.collect_until(" 315 ").await;
    assert!(who.iter().any(|l| l.contains(" dana G")), "{who:#?}");
    dana.send("AWAY").await;
    dana.expect(" 305 dana ").await;
    eve.expect(":dana!~dana@parley.local AWAY").await;
    server.shutdown().await;
}

#[tokio::test]
async fn sasl_logs_in_to_parley_accounts() {
    let server = support::start().await;
    account(&server, "frank", "frank-password").await;
    use base64::Engine as _;
    // A wrong password (from another address, which it slows down for this account).
    let mut wrong = IrcClient::connect_from([127, 0, 0, 2], server.irc_addr()).await;
    wrong.send("CAP REQ :sasl").await;
    wrong.send("AUTHENTICATE PLAIN").await;
    wrong.expect("AUTHENTICATE +").await;
    let payload = base64::engine::general_purpose::STANDARD.encode("\0frank\0not-it");
    wrong.send(&format!("AUTHENTICATE {payload}")).await;
    wrong.expect(" 904 ").await;
    wrong.send("AUTHENTICATE PLAIN").await;
    wrong.expect("AUTHENTICATE +").await;
    wrong.send(&format!("AUTHENTICATE {payload}")).await;
    wrong.expect(" 904 * :SASL authentication failed: too many failed logins; try again in ").await;
    wrong.send("AUTHENTICATE SCRAM-SHA-256").await;
    wrong.expect(" 908 * PLAIN :are available SASL mechanisms").await;

    // Logged in, the account's nick is theirs whatever NICK said.
    let mut frank = IrcClient::connect(server.irc_addr()).await;
    frank.send("CAP REQ :sasl").await;
    frank.send("NICK someone").await;
    frank.send("USER f 0 * :f").await;
    frank.send("AUTHENTICATE PLAIN").await;
    frank.expect("AUTHENTICATE +").await;
    let payload = base64::engine::general_purpose::STANDARD.encode("frank\0frank\0frank-password");
    frank.send(&format!("AUTHENTICATE {payload}")).await;
    frank.expect(" 900 someone someone!~f@parley.local frank :You are now logged in as frank").await;
    frank.expect(" 903 ").await;
    frank.send("CAP END").await;
    frank.expect(" 001 frank ").await;
    frank.send("WHOIS frank").await;
    frank.expect(" 330 frank frank frank :is logged in as").await;
    server.shutdown().await;
}

#[tokio::test]
async fn channel_modes_hold_for_every_gateway() {
    let server = support::start().await;
    account(&server, "olga", "olga-password").await;
    let mut olga = sasl_join(&server, "olga", "olga-password", "multi-prefix").await;
    olga.send("JOIN #club").await;
    let joined = olga.collect_until(" 366 ").await;
    assert!(joined.iter().any(|l| l.ends_with("353 olga = #club :@olga")), "a logged-in creator operates: {joined:#?}");
    olga.send("MODE #club").await;
    olga.expect(" 324 olga #club +nt").await;
    olga.expect(" 329 olga #club ").await;

    let mut guest = IrcClient::join(server.irc_addr(), "guest", "").await;
    let mut liner = LineClient::join(server.line, "liner").await;
    guest.send("JOIN #club").await;
    guest.expect(" 366 ").await;
    liner.send("/join club").await;
    liner.expect_line("You joined club. Users here: guest, liner, @olga").await;
    olga.expect(":liner!~liner@parley.local JOIN #club").await;

    // +m: only operators and voiced users speak, whichever protocol they use.
    olga.send("MODE #club +m").await;
    olga.expect(":olga!~olga@parley.local MODE #club +m").await;
    guest.expect(":olga!~olga@parley.local MODE #club +m").await;
    guest.send("PRIVMSG #club :may I?").await;
    guest.expect(" 404 guest #club :Cannot send to channel").await;
    liner.send("may I?").await;
    liner.expect_line("is moderated; only operators and voiced users may speak.").await;
    olga.send("MODE #club +v guest").await;
    guest.expect(":olga!~olga@parley.local MODE #club +v guest").await;
    guest.send("PRIVMSG #club :thank you").await;
    olga.expect(":guest!~guest@parley.local PRIVMSG #club :thank you").await;
    olga.send("NAMES #club").await;
    olga.expect(" 353 olga = #club :+guest liner @olga").await;

    // Not an operator: 482.
    guest.send("MODE #club -m").await;
    guest.expect(" 482 guest #club :You're not channel operator").await;
    guest.send("KICK #club liner").await;
    guest.expect(" 482 guest #club ").await;
    guest.send("TOPIC #club :mine now").await;
    guest.expect(" 482 guest #club ").await;
    olga.send("MODE #club -t").await;
    olga.expect("MODE #club -t").await;
    guest.send("TOPIC #club :anyone may").await;
    olga.expect(":guest!~guest@parley.local TOPIC #club :anyone may").await;
    liner.expect_line("*** guest set the topic of club: anyone may").await;
    guest.send("TOPIC #club").await;
    guest.expect(" 332 guest #club :anyone may").await;
    guest.expect(" 333 guest #club guest ").await;

    // +k, +l, +i with INVITE.
    olga.send("MODE #club +kl sesame 4").await;
    olga.expect(":olga!~olga@parley.local MODE #club +kl sesame 4").await;
    let mut late = IrcClient::join(server.irc_addr(), "late", "").await;
    late.send("JOIN #club").await;
    late.expect(" 475 late #club :Cannot join channel (+k)").await;
    late.send("JOIN #club sesame").await;
    late.expect(":late!~late@parley.local JOIN #club").await;
    late.expect(" 332 late #club :anyone may").await;
    late.expect(" 333 late #club guest ").await;
    let mut fifth = IrcClient::join(server.irc_addr(), "fifth", "").await;
    fifth.send("JOIN #club sesame").await;
    fifth.expect(" 471 fifth #club :Cannot join channel (+l)").await;
    olga.send("MODE #club -kl+i").await;
    olga.expect("MODE #club -kl+i *").await;
    fifth.send("JOIN #club").await;
    fifth.expect(" 473 fifth #club :Cannot join channel (+i)").await;
    olga.send("INVITE fifth #club").await;
    olga.expect(" 341 olga fifth #club").await;
    fifth.expect(":olga!~olga@parley.local INVITE fifth :#club").await;
    fifth.send("JOIN #club").await;
    fifth.expect(":fifth!~fifth@parley.local JOIN #club").await;
    olga.send("INVITE fifth #club").await;
    olga.expect(" 443 olga fifth #club :is already on channel").await;

    // Bans: +b with its list, the banned one is put out and cannot come back.
    olga.send("MODE #club +b late").await;
    late.expect("MODE #club +b late!*@*").await;
    late.expect(":olga!~olga@parley.local KICK #club late :banned by olga").await;
    olga.send("MODE #club +b").await;
    olga.expect(" 367 olga #club late!*@* ").await;
    olga.expect(" 368 olga #club :End of channel ban list").await;
    late.send("JOIN #club sesame").await;
    late.expect(" 474 late #club :Cannot join channel (+b)").await;

    // Unknown and malformed modes.
    olga.send("MODE #club +z").await;
    olga.expect(" 472 olga z :is an unknown mode char to me").await;
    olga.send("MODE #club +o nobody").await;
    olga.expect(" 401 olga nobody :No such nick/channel").await;
    olga.send("MODE #club +l many").await;
    olga.expect(" 696 olga #club l many :").await;
    olga.send("KICK #club liner :out").await;
    liner.expect_line("liner was kicked from club (by olga: out).").await;
    server.shutdown().await;
}

#[tokio::test]
async fn errors_after_registration_have_their_numerics() {
    let server = support::start().await;
    let mut ivan = IrcClient::join(server.irc_addr(), "ivan", "").await;
    let cases = [
        ("PRIVMSG nobody :hi", " 401 ivan nobody :No such nick/channel"),
        ("PRIVMSG #nowhere :hi", " 403 ivan #nowhere :No such channel"),
        ("PRIVMSG", " 411 ivan :No recipient given (PRIVMSG)"),
        ("PRIVMSG #lobby", " 412 ivan :No text to send"),
        ("PART #nowhere", " 403 ivan #nowhere :No such channel"),
        ("JOIN lobby", " 476 ivan lobby :Invalid channel name"),
        ("JOIN #bad!name", " 403 ivan #bad!name :No such channel"),
        ("JOIN", " 461 ivan JOIN :Not enough parameters"),
        ("KICK #lobby", " 461 ivan KICK :Not enough parameters"),
        ("FROBNICATE", " 421 ivan FROBNICATE :Unknown command"),
        ("NICK 1bad", " 432 ivan 1bad :Erroneous nickname"),
        ("MODE someone +i", " 401 ivan someone :No such nick"),
        ("INVITE nobody #lobby", " 401 ivan nobody :No such nick/channel"),
        ("OPER root secret", " 491 ivan :Invalid oper credentials"),
        ("AUTHENTICATE PLAIN", " 907 ivan "),
        ("PING", " 461 ivan PING :Not enough parameters"),
    ];
    for (input, answer) in cases {
        ivan.send(input).await;
        let line = ivan.next_line().await.expect("an answer");
        assert!(line.contains(answer), "{input:?} answered {line:?}, expected {answer:?}");
    }
    ivan.send("WHOIS nobody").await;
    ivan.expect(" 401 ivan nobody :No such nick/channel").await;
    ivan.expect(" 318 ivan nobody :End of /WHOIS list.").await;
    // A body over 512 bytes: 417, and the connection goes on.
    ivan.send(&format!("PRIVMSG #lobby :{}", "x".repeat(600))).await;
    ivan.expect(" 417 ivan :Input line was too long").await;
    ivan.send_raw(b"PRIVMSG #lobby :caf\xe9\r\n").await;
    ivan.expect("FAIL * INVALID_UTF8").await;
    ivan.send_raw(b"PRIVMSG #lobby :nul\0inside\r\n").await;
    ivan.expect(" 400 ivan * :Lines may not contain NUL or CR characters").await;
    ivan.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn failed_oper_attempts_look_alike_wait_longer_each_time_and_end_the_connection() {
    const RETRY: std::time::Duration = std::time::Duration::from_millis(300);
    let server = support::start_with(|config| {
        config.irc.opers.push(parley_server::Oper { name: "root".into(), password: "root-pass".into() });
        config.limits.oper_retry_ms = 300;
        config.limits.max_oper_failures = 3;
    })
    .await;
    let mut mallory = IrcClient::join(server.irc_addr(), "mallory", "").await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    mallory.expect(":watcher!~watcher@parley.local JOIN #lobby").await;
    // An unknown name and a wrong password read the same.
    // A wait is counted from a failure, which comes after its attempt was sent.
    let first_sent = tokio::time::Instant::now();
    mallory.send("OPER nobody guess").await;
    let unknown = mallory.expect(" 491 ").await;
    let second_sent = tokio::time::Instant::now();
    mallory.send("OPER root guess").await;
    let wrong = mallory.expect(" 491 ").await;
    assert_eq!(unknown, wrong);
    assert_eq!(wrong, ":parley.local 491 mallory :Invalid oper credentials");
    let waited = first_sent.elapsed();
    assert!(waited >= RETRY, "the second attempt was answered {waited:?} after the first was sent");
    // The third attempt waits twice as long, and is the last.
    mallory.send("OPER root guess-again").await;
    let closing = mallory.expect_closed().await;
    let waited = second_sent.elapsed();
    assert!(waited >= 2 * RETRY, "the third attempt was answered {waited:?} after the second was sent");
    assert_eq!(closing[0], ":parley.local 491 mallory :Invalid oper credentials", "{closing:?}");
    assert!(
        closing[1].starts_with("ERROR :Closing link: mallory!~mallory@parley.local (Too many failed OPER attempts)")
    );
    watcher.expect_line("mallory has left the chat (too many failed OPER attempts).").await;
    server.shutdown().await;
}

#[tokio::test]
async fn comma_lists_keep_to_targmax() {
    let server = support::start_with(|config| config.limits.max_rooms_per_session = 3).await;
    let mut ivan = IrcClient::join(server.irc_addr(), "ivan", "").await;
    let isupport = ivan.seen.iter().find(|l| l.contains("TARGMAX=")).expect("TARGMAX").clone();
    assert!(isupport.contains(" TARGMAX=JOIN:3,PART:3,PRIVMSG:4,NOTICE:4,NAMES:1,WHOIS:4,KICK:4,LIST: "), "{isupport}");
    let _kim = LineClient::join(server.line, "kim").await;
    ivan.expect(":kim!~kim@parley.local JOIN #lobby").await;
    // Over the limit, nothing is done and the first target over it is named.
    let cases = [
        ("JOIN #a,#b,#c,#d", " 407 ivan #d :Too many targets"),
        ("PART #lobby,#a,#b,#c", " 407 ivan #c :Too many targets"),
        ("NAMES #lobby,#a", " 407 ivan #a :Too many targets"),
        ("KICK #lobby kim,ivan,kim,ivan,kim :bye", " 407 ivan kim :Too many targets"),
        ("PRIVMSG kim,a,b,c,d :hi", " 407 ivan d :Too many targets"),
    ];
    for (input, answer) in cases {
        ivan.send(input).await;
        let line = ivan.next_line().await.expect("an answer");
        assert!(line.contains(answer), "{input:?} answered {line:?}, expected {answer:?}");
    }
    ivan.expect_nothing_more().await;
    // At the limit, every target is served.
    ivan.send("JOIN #a,#b").await;
    ivan.expect(":ivan!~ivan@parley.local JOIN #a").await;
    ivan.expect(":ivan!~ivan@parley.local JOIN #b").await;
    ivan.send("NAMES #lobby").await;
    ivan.expect(" 366 ivan #lobby ").await;
    server.shutdown().await;
}

#[tokio::test]
async fn each_target_of_a_comma_list_counts_against_flood_control() {
    let server = support::start_with(|config| {
        config.limits.flood_burst = 4;
        config.limits.flood_rate_per_sec = 5;
        config.limits.flood_grace_secs = 0;
        config.limits.max_rooms_per_session = 10;
    })
    .await;
    let mut ivan = IrcClient::join(server.irc_addr(), "ivan", "").await;
    // Two lines, but eight channels: twice the burst.
    ivan.send("JOIN #a,#b,#c,#d").await;
    ivan.send("PART #a,#b,#c,#d").await;
    ivan.send("PING :still-here").await;
    let closing = ivan.expect_closed().await;
    assert!(!closing.iter().any(|l| l.contains("PONG")), "{closing:#?}");
    assert!(closing.last().is_some_and(|l| l.ends_with("(Excess Flood)")), "{closing:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn whois_who_list_and_lusers_describe_the_server() {
    let server = support::start_with(|config| {
        config.irc.opers.push(parley_server::Oper { name: "root".into(), password: "root-pass".into() });
        config.irc.motd = Some("Be kind.\nHave fun.".into());
        config.limits.oper_retry_ms = 50;
    })
    .await;
    let mut judy = IrcClient::join(server.irc_addr(), "judy", "").await;
    let _line = LineClient::join(server.line, "kim").await;
    judy.send("WHOIS kim").await;
    let whois = judy.collect_until(" 318 ").await;
    assert!(whois.iter().any(|l| l.contains(" 311 judy kim ~kim parley.local * :kim")), "{whois:#?}");
    assert!(whois.iter().any(|l| l.contains(" 319 judy kim :#lobby")), "{whois:#?}");
    assert!(!whois.iter().any(|l| l.contains(" 378 ")), "others' addresses stay private: {whois:#?}");
    judy.send("WHO kim").await;
    judy.expect(" 352 judy #lobby ~kim parley.local parley.local kim H :0 kim").await;
    judy.expect(" 315 judy kim ").await;
    judy.send("TOPIC #lobby :welcome all").await;
    judy.expect(" 482 judy #lobby ").await;
    judy.send("OPER root wrong").await;
    judy.expect(" 491 judy :Invalid oper credentials").await;
    judy.send("OPER root root-pass").await;
    judy.expect(" 381 judy :You are now an IRC operator").await;
    // Topics (like away messages and reasons) are cut to 390 bytes by the hub, for every
    // gateway: one IRC line.
    judy.send(&format!("TOPIC #lobby :{}", "é".repeat(230))).await;
    let long = judy.expect(":judy!~judy@parley.local TOPIC #lobby :").await;
    assert_eq!(long.split_once(" :").map(|(_, topic)| topic.len()), Some(390), "{long}");
    judy.send("TOPIC #lobby :welcome all").await;
    judy.expect(":judy!~judy@parley.local TOPIC #lobby :welcome all").await;
    judy.send("LIST").await;
    let list = judy.collect_until(" 323 ").await;
    assert!(list.iter().any(|l| l.contains(" 322 judy #lobby 2 :welcome all")), "{list:#?}");
    judy.send("LUSERS").await;
    judy.expect(" 251 judy :There are 2 users").await;
    judy.expect(" 252 judy 1 :operator(s) online").await;
    judy.send("MOTD").await;
    judy.expect(" 375 ").await;
    judy.expect(" 372 judy :- Be kind.").await;
    judy.expect(" 376 ").await;
    judy.send("WHO #lobby").await;
    let who = judy.collect_until(" 315 ").await;
    assert!(who.iter().any(|l| l.contains(" judy H* ")), "operators are marked: {who:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_quit_is_one_line_however_many_channels_were_shared() {
    let server = support::start().await;
    let mut leo = IrcClient::join(server.irc_addr(), "leo", "").await;
    let mut mia = IrcClient::join(server.irc_addr(), "mia", "").await;
    for channel in ["#a", "#b"] {
        leo.send(&format!("JOIN {channel}")).await;
        mia.send(&format!("JOIN {channel}")).await;
    }
    leo.expect(":mia!~mia@parley.local JOIN #b").await;
    mia.send("QUIT :gone fishing").await;
    leo.expect(":mia!~mia@parley.local QUIT :Quit: gone fishing").await;
    leo.expect_nothing_more().await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_observer_sees_each_quit_once_after_a_rejoin() {
    // Two observers per capability profile: encodings are shared within a profile, so
    // what one observer was told must not decide what the other is told.
    const FULL: &str = "message-tags server-time account-tag away-notify";
    let server = support::start().await;
    let mut observers = Vec::new();
    for (nick, caps) in [("ann", ""), ("bob", ""), ("cy", FULL), ("dee", FULL)] {
        let mut observer = IrcClient::join(server.irc_addr(), nick, caps).await;
        observer.send("JOIN #a,#b").await;
        observer.expect(&format!(":{nick}!~{nick}@parley.local JOIN #b")).await;
        observer.expect(" 366 ").await;
        observers.push(observer);
    }
    for round in ["first", "second"] {
        let mut max = IrcClient::join(server.irc_addr(), "max", "").await;
        max.send("JOIN #a,#b").await;
        for observer in &mut observers {
            observer.expect(":max!~max@parley.local JOIN #b").await;
        }
        max.send(&format!("QUIT :{round}")).await;
        max.expect_closed().await;
        for observer in &mut observers {
            // Three channels shared (the lobby, #a, #b), one QUIT each time.
            observer.expect(&format!(":max!~max@parley.local QUIT :Quit: {round}")).await;
            observer.expect_nothing_more().await;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn quiet_clients_are_pinged_then_dropped() {
    let server = support::start_with(|config| {
        config.limits.idle_ping_secs = 1;
        config.limits.idle_timeout_secs = 2;
    })
    .await;
    let mut quiet = IrcClient::join(server.irc_addr(), "quiet", "").await;
    quiet.expect("PING :parley.local").await;
    quiet.send("PONG :parley.local").await;
    quiet.expect("PING :parley.local").await;
    let closing = quiet.expect_closed().await;
    assert!(closing.iter().any(|l| l.contains("Ping timeout")), "{closing:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn irc_runs_over_tls() {
    let server = support::start().await;
    let fingerprint = server.fingerprint.clone().expect("a certificate");
    let mut secure = IrcClient::connect_tls(server.irc_tls.expect("an irc+tls listener"), &fingerprint).await;
    secure.register("secure", "").await;
    let mut plain = IrcClient::join(server.irc_addr(), "plain", "").await;
    secure.send("PRIVMSG plain :over tls").await;
    plain.expect(":secure!~secure@parley.local PRIVMSG plain :over tls").await;
    server.shutdown().await;
}

#[tokio::test]
async fn services_register_rooms_and_accounts_and_opers_set_server_bans() {
    let data = support::tempdir::TempDir::new();
    let server = support::start_in(data.path(), |config| {
        config.irc.opers.push(parley_server::Oper { name: "boss".into(), password: "boss-password".into() });
    })
    .await;
    // An account made over IRC with NickServ, and a guest's channel registered by it.
    let mut rita = IrcClient::join(server.irc_addr(), "rita", "").await;
    rita.send("JOIN #garden").await;
    rita.expect(" 366 rita #garden ").await;
    rita.send("CS REGISTER #garden").await;
    rita.expect("FAIL * ACCOUNT_REQUIRED").await;
    rita.send("NS REGISTER rita-password").await;
    rita.expect(" 900 rita ").await;
    rita.send("PRIVMSG ChanServ :REGISTER #garden").await;
    rita.expect("NOTICE #garden :garden is now registered to rita.").await;
    rita.send("CS REGISTER #garden").await;
    rita.expect("FAIL * FAILED :garden is registered already").await;
    rita.send("CS FROB").await;
    rita.expect(":ChanServ!ChanServ@services NOTICE rita :Usage: CS REGISTER #channel").await;
    rita.send("MODE #garden +k sesame").await;
    rita.expect("MODE #garden +k sesame").await;
    rita.send("PART #garden").await;
    rita.expect(" PART #garden").await;

    // Empty, a registered room keeps its key: a newcomer gains nothing.
    let mut sam = IrcClient::join(server.irc_addr(), "sam", "").await;
    sam.send("JOIN #garden").await;
    sam.expect(" 475 sam #garden :Cannot join channel (+k)").await;

    // KLINE is for operators; it puts the covered session off the server.
    sam.send("KLINE rita 1h :no").await;
    sam.expect(" 481 sam :Permission Denied").await;
    let mut boss = IrcClient::join(server.irc_addr(), "boss", "").await;
    boss.send("OPER boss boss-password").await;
    boss.expect(" 381 boss ").await;
    boss.send("KLINE sam 1h :no reason at all").await;
    boss.expect("NOTICE boss :Done: server ban sam").await;
    sam.expect(" 465 sam :You are banned from this server (K-lined: no reason at all)").await;
    sam.expect("ERROR :Closing link: sam!~sam@parley.local (K-lined: no reason at all)").await;
    let mut again = IrcClient::connect(server.irc_addr()).await;
    again.send("NICK sam").await;
    again.send("USER s 0 * :s").await;
    again.expect(" 465 sam :You are banned from this server (K-lined: no reason at all)").await;
    boss.send("UNKLINE sam").await;
    boss.expect("NOTICE boss :Done: server unban sam").await;
    boss.send("KLINE other 99999999d").await;
    boss.expect("FAIL * FAILED :a ban or mute lasts at most 3660 days").await;
    // NickServ deletes the account, and with it the room's registration.
    rita.send("NS UNREGISTER rita-password").await;
    rita.expect(" 901 rita ").await;
    server.shutdown().await;
}
