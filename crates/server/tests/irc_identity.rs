//! Who IRC users are to each other: the user name their client gave and a host made from
//! their address (a keyed cloak by default, the address, or the server's name), in every
//! line about them; the real address for operators alone; bans on a cloak; and the
//! channels a new IRC user is in (none, unless `[irc] autojoin` says).

mod support;

use parley_server::{Hosts, Oper};
use support::{IrcClient, LineClient};

/// Registers `nick` from the loopback address `from`, with `USER user`, asking for
/// `caps`; returns the client and the host its welcome gives it (`001 … nick!user@host`).
async fn register(
    server: &support::TestServer,
    from: [u8; 4],
    nick: &str,
    user: &str,
    caps: &str,
) -> (IrcClient, String) {
    let mut client = IrcClient::connect_from(from, server.irc_addr()).await;
    if !caps.is_empty() {
        client.send(&format!("CAP REQ :{caps}")).await;
    }
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {user} 0 * :{nick} the tester")).await;
    if !caps.is_empty() {
        client.expect(" ACK ").await;
        client.send("CAP END").await;
    }
    let welcome = client.expect(" 001 ").await;
    client.welcomed().await;
    let mask = welcome.rsplit(' ').next().expect("a mask");
    let host = mask.split_once('@').map(|(_, host)| host.to_owned()).expect("a host in the welcome");
    assert!(mask.starts_with(&format!("{nick}!")), "{welcome}");
    (client, host)
}

fn is_cloak(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 3
        && parts[2] == "IP"
        && parts[..2].iter().all(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn cloaked(config: &mut parley_server::Config) {
    config.irc.hosts = Hosts::Cloak;
    config.irc.opers.push(Oper { name: "root".into(), password: "root-pass".into() });
}

#[tokio::test]
async fn users_see_each_others_user_name_and_cloaked_host_everywhere() {
    let server = support::start_with(cloaked).await;
    let caps = "userhost-in-names extended-join";
    let (mut ada, ada_host) = register(&server, [127, 0, 0, 1], "ada", "lovelace", caps).await;
    let (mut bob, bob_host) = register(&server, [127, 0, 0, 2], "bob", "builder", caps).await;
    assert!(is_cloak(&ada_host) && is_cloak(&bob_host), "{ada_host} {bob_host}");
    assert_ne!(ada_host, bob_host, "127.0.0.1 and 127.0.0.2 cloak apart");
    let bob_mask = format!("bob!~builder@{bob_host}");

    ada.send("JOIN #id").await;
    ada.expect(" 366 ada #id ").await;
    bob.send("JOIN #id").await;
    let names = bob.expect(" 353 bob ").await;
    assert!(names.contains(&format!("@ada!~lovelace@{ada_host}")), "{names}");
    assert!(names.contains(&bob_mask), "{names}");
    ada.expect(&format!(":{bob_mask} JOIN #id * :bob the tester")).await;

    bob.send("PRIVMSG #id :hello").await;
    ada.expect(&format!(":{bob_mask} PRIVMSG #id :hello")).await;
    bob.send("PRIVMSG ada :psst").await;
    ada.expect(&format!(":{bob_mask} PRIVMSG ada :psst")).await;

    ada.send("WHO #id").await;
    let who = ada.collect_until(" 315 ").await;
    assert!(
        who.iter()
            .any(|l| l.contains(&format!(" 352 ada #id ~builder {bob_host} parley.local bob H :0 bob the tester"))),
        "{who:#?}"
    );
    ada.send("WHO #id %tnuh,7").await;
    let whox = ada.collect_until(" 315 ").await;
    assert!(whox.iter().any(|l| l.ends_with(&format!(" 354 ada 7 ~builder {bob_host} bob"))), "{whox:#?}");
    ada.send("WHOIS bob").await;
    let whois = ada.collect_until(" 318 ").await;
    assert!(
        whois.iter().any(|l| l.contains(&format!(" 311 ada bob ~builder {bob_host} * :bob the tester"))),
        "{whois:#?}"
    );
    ada.send("USERHOST bob").await;
    ada.expect(&format!(" 302 ada bob=+~builder@{bob_host}")).await;

    bob.send("NICK robert").await;
    ada.expect(&format!(":{bob_mask} NICK :robert")).await;
    bob.send("PART #id :later").await;
    ada.expect(&format!(":robert!~builder@{bob_host} PART #id :later")).await;

    // Nothing a non-operator reads tells bob's address.
    assert!(!ada.seen.iter().any(|l| l.contains("127.0.0.2")), "{:#?}", ada.seen);
    server.shutdown().await;
}

#[tokio::test]
async fn a_cloak_is_the_same_on_every_connection_from_an_address() {
    let server = support::start_with(cloaked).await;
    let (mut first, host) = register(&server, [127, 0, 0, 2], "first", "u", "").await;
    first.send("QUIT").await;
    first.expect_closed().await;
    let (_again, same) = register(&server, [127, 0, 0, 2], "again", "u", "").await;
    assert_eq!(host, same);
    let (_other, other) = register(&server, [127, 0, 0, 3], "other", "u", "").await;
    assert_ne!(host, other);
    // The /24 is the cloak's second part, so `*!*@*.NETWORK.IP` covers a network.
    assert_eq!(host.split('.').nth(1), other.split('.').nth(1));
    // A line user from the same address has the same host, and a user name from the nick.
    let (mut watcher, _) = register(&server, [127, 0, 0, 1], "watcher", "w", "").await;
    watcher.send("JOIN #lobby").await;
    watcher.expect(" 366 watcher #lobby ").await;
    let mut liner = LineClient::connect_from([127, 0, 0, 2], server.line).await;
    liner.expect_prompt().await;
    liner.send("lin").await;
    watcher.expect(&format!(":lin!~lin@{host} JOIN #lobby")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn operators_alone_see_the_real_address() {
    let server = support::start_with(cloaked).await;
    let (mut root, _) = register(&server, [127, 0, 0, 1], "root", "r", "").await;
    let (mut nosy, _) = register(&server, [127, 0, 0, 1], "nosy", "n", "").await;
    let (_bob, bob_host) = register(&server, [127, 0, 0, 2], "bob", "b", "").await;
    nosy.send("WHOIS bob").await;
    let whois = nosy.collect_until(" 318 ").await;
    assert!(whois.iter().any(|l| l.contains(&format!(" 311 nosy bob ~b {bob_host} "))), "{whois:#?}");
    assert!(!whois.iter().any(|l| l.contains(" 378 ") || l.contains("127.0.0.2")), "{whois:#?}");
    nosy.send("WHO bob %tni,1").await;
    let whox = nosy.collect_until(" 315 ").await;
    assert!(!whox.iter().any(|l| l.contains("127.0.0.2")), "{whox:#?}");

    root.send("OPER root root-pass").await;
    root.expect(" 381 ").await;
    root.send("WHOIS bob").await;
    let whois = root.collect_until(" 318 ").await;
    assert!(whois.iter().any(|l| l.contains(&format!(" 311 root bob ~b {bob_host} "))), "{whois:#?}");
    assert!(whois.iter().any(|l| l.ends_with(" 378 root bob :is connecting from *@127.0.0.2 127.0.0.2")), "{whois:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn hosts_may_be_addresses_or_the_server_name() {
    let server = support::start_with(|config| config.irc.hosts = Hosts::Ip).await;
    let (_client, host) = register(&server, [127, 0, 0, 2], "ipa", "u", "").await;
    assert_eq!(host, "127.0.0.2");
    server.shutdown().await;

    let server = support::start_with(|config| {
        config.irc.hosts = Hosts::Fixed;
        config.irc.server_name = "irc.example.net".into();
    })
    .await;
    let (_client, host) = register(&server, [127, 0, 0, 2], "fixa", "u", "").await;
    assert_eq!(host, "irc.example.net");
    server.shutdown().await;
}

#[tokio::test]
async fn user_names_are_made_valid_and_a_real_name_is_required() {
    let server = support::start().await;
    let mut client = IrcClient::connect(server.irc_addr()).await;
    client.send("NICK odd").await;
    client.send("USER x 0 * :").await;
    client.expect(" 461 odd USER :Not enough parameters").await;
    client.send("USER x 0 *").await;
    client.expect(" 461 odd USER :Not enough parameters").await;
    client.send("USER a@b!c\u{7}dé.very.long.name 0 * :Odd").await;
    let welcome = client.expect(" 001 ").await;
    assert!(welcome.ends_with(" odd!~abcd.very@parley.local"), "cut to USERLEN, unsafe characters left out: {welcome}");
    let isupport = client.collect_until(" 422 ").await.join(" ");
    assert!(isupport.contains(" USERLEN=10 "), "{isupport}");
    // A user name of nothing usable is `~user`.
    let (_plain, _) = register(&server, [127, 0, 0, 1], "plain", "李雷", "").await;
    client.send("USERHOST plain").await;
    client.expect(" 302 odd plain=+~user@parley.local").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_ban_on_a_cloak_keeps_its_address_out() {
    let server = support::start_with(cloaked).await;
    let (mut op, _) = register(&server, [127, 0, 0, 1], "op", "o", "").await;
    let (mut eve, eve_host) = register(&server, [127, 0, 0, 2], "eve", "e", "").await;
    op.send("JOIN #guarded").await;
    op.expect(" 366 op #guarded ").await;
    eve.send("JOIN #guarded").await;
    eve.expect(" 366 eve #guarded ").await;
    op.send(&format!("MODE #guarded +b *!*@{eve_host}")).await;
    op.expect(&format!(" MODE #guarded +b *!*@{}", eve_host.to_ascii_lowercase())).await;
    // Parley's bans put out whoever they cover at once.
    eve.expect(" KICK #guarded eve ").await;
    eve.send("JOIN #guarded").await;
    eve.expect(" 474 eve #guarded ").await;
    // Another nick from the same address is covered too; another address is not.
    let (mut eve2, _) = register(&server, [127, 0, 0, 2], "eve2", "e", "").await;
    eve2.send("JOIN #guarded").await;
    eve2.expect(" 474 eve2 #guarded ").await;
    let (mut friend, _) = register(&server, [127, 0, 0, 3], "friend", "f", "").await;
    friend.send("JOIN #guarded").await;
    friend.expect(" 366 friend #guarded ").await;
    op.send("MODE #guarded b").await;
    let bans = op.collect_until(" 368 ").await;
    assert!(
        bans.iter().any(|l| l.contains(&format!(" 367 op #guarded *!*@{}", eve_host.to_ascii_lowercase()))),
        "{bans:#?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn irc_users_start_in_no_channel_unless_autojoin_says() {
    let server = support::start_with(|config| {
        config.irc.opers.push(Oper { name: "root".into(), password: "root-pass".into() });
    })
    .await;
    let mut liner = LineClient::join(server.line, "liner").await;
    let (mut ada, _) = register(&server, [127, 0, 0, 1], "ada", "a", "").await;
    ada.send("WHOIS ada").await;
    let whois = ada.collect_until(" 318 ").await;
    assert!(!whois.iter().any(|l| l.contains(" 319 ")), "in no channel: {whois:#?}");
    ada.send("LIST").await;
    let list = ada.collect_until(" 323 ").await;
    assert!(list.iter().any(|l| l.contains(" 322 ada #lobby 1 ")), "the lobby has the line user alone: {list:#?}");
    assert!(!ada.seen.iter().any(|l| l.contains(" JOIN ")), "{:#?}", ada.seen);
    // Meeting the line users is one JOIN away.
    ada.send("JOIN #lobby").await;
    let names = ada.collect_until(" 366 ada #lobby ").await;
    assert!(names.iter().any(|l| l.ends_with(" #lobby :ada liner")), "{names:#?}");
    liner.expect_line("ada has joined lobby.").await;

    // A lobby ban keeps a line user out, and an IRC user out of the lobby alone; a
    // server ban keeps both off the server.
    ada.send("OPER root root-pass").await;
    ada.expect(" 381 ").await;
    ada.send("MODE #lobby +b carol").await;
    ada.expect(" MODE #lobby +b carol!*@*").await;
    let mut carol = IrcClient::connect(server.irc_addr()).await;
    carol.send("NICK carol").await;
    carol.send("USER c 0 * :Carol").await;
    carol.expect(" 001 carol ").await;
    carol.welcomed().await;
    carol.send("JOIN #lobby").await;
    carol.expect(" 474 carol #lobby ").await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    ada.send("KLINE carol 0 :no").await;
    let mut carol = IrcClient::connect(server.irc_addr()).await;
    carol.send("NICK carol").await;
    carol.send("USER c 0 * :Carol").await;
    carol.expect(" 465 ").await;
    carol.expect_closed().await;
    server.shutdown().await;

    let server = support::start_with(|config| config.irc.autojoin = vec!["#lobby".into(), "#news".into()]).await;
    let mut bea = IrcClient::connect(server.irc_addr()).await;
    bea.send("NICK bea").await;
    bea.send("USER b 0 * :Bea").await;
    let burst = bea.collect_until(" 366 bea #news ").await;
    let motd = burst.iter().position(|l| l.contains(" 422 ")).expect("the welcome burst");
    let lobby = burst.iter().position(|l| l.ends_with(" JOIN #lobby")).expect("joined #lobby");
    let news = burst.iter().position(|l| l.ends_with(" JOIN #news")).expect("joined #news");
    assert!(motd < lobby && lobby < news, "after the welcome, in order: {burst:#?}");
    assert!(burst.iter().any(|l| l.contains(" 366 bea #lobby ")), "{burst:#?}");
    server.shutdown().await;
}
