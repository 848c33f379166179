//! The browser client (`crates/server/web/`) in a real headless Chromium against a real
//! server: users on four gateways in one room, scrolling back, the 10,000-message
//! reconnect with no gap and no duplicate, read markers across devices, an image upload
//! with its preview, search results that jump into the history, hostile text shown as
//! text, and the origin check on the WebSocket upgrade.
//!
//! The pages are driven over the DevTools protocol (`chromium/mod.rs`); every wait polls
//! the page's DOM until a condition holds, with a timeout. Without Chromium these tests
//! are skipped loudly (they fail under `CI=true`).

mod chromium;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use chromium::{DevTools, Page};
use parley_proto::msg::{Reply, Request, ServerMsg};
use parley_server::{Config, Listener, ListenerKind};
use serde_json::{json, Value};
use support::{IrcClient, LineClient, NativeClient, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with a web listener, and a DevTools connection to the shared browser.
struct Site {
    server: TestServer,
    web: SocketAddr,
    tools: Arc<DevTools>,
}

fn no_flood(config: &mut Config) {
    config.limits.flood_rate_per_sec = 0;
}

/// Starts a server (after `adjust`) with a web listener; `None` when there is no browser.
async fn site(adjust: impl FnOnce(&mut Config)) -> Option<Site> {
    let browser = chromium::chromium()?;
    let server = support::start_with(|config| {
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        adjust(config);
    })
    .await;
    let web = server.bound.iter().find(|b| b.kind == ListenerKind::Web).map(|b| b.addr).expect("a web listener");
    let tools = DevTools::connect(browser).await;
    Some(Site { server, web, tools })
}

impl Site {
    fn url(&self) -> String {
        format!("http://{}/", self.web)
    }

    /// A new tab (a browser context of its own) showing the login form.
    async fn open(&self, width: u32, height: u32) -> Page {
        let page = self.tools.page(width, height).await;
        page.goto(&self.url()).await;
        page.wait_for("!document.getElementById('login').hidden", "the login form").await;
        page
    }

    /// A user signed in as a guest, looking at the lobby.
    async fn guest(&self, nick: &str) -> Page {
        let page = self.open(1280, 800).await;
        sign_in(&page, nick, "").await;
        page
    }
}

async fn sign_in(page: &Page, nick: &str, password: &str) {
    page.type_into("#login-nick", nick).await;
    if !password.is_empty() {
        page.type_into("#login-password", password).await;
    }
    page.press("Enter", 0).await;
    page.wait_for(
        &format!(
            "!document.getElementById('app').hidden && document.getElementById('me-nick').textContent === {}",
            json!(nick)
        ),
        &format!("{nick} to be signed in"),
    )
    .await;
}

/// The messages a buffer shows, in order: `[seq, from, text]`.
fn shown(buffer: &str) -> String {
    format!(
        "[...document.querySelectorAll('[data-buffer=\"{buffer}\"] .msg[data-seq]')]\
         .map(li => [Number(li.dataset.seq), li.dataset.from, li.querySelector('.body').textContent])"
    )
}

/// A condition: the buffer shows a message whose text is `text`.
fn shows(buffer: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('[data-buffer=\"{buffer}\"] .msg .body')].some(b => b.textContent === {})",
        json!(text)
    )
}

/// A request, from its JSON header: the tests name only the fields they use, so
/// fields added to requests later leave them unchanged.
fn request(header: Value) -> Request {
    serde_json::from_value(header).expect("a request the protocol knows")
}

fn said(room: &str) -> Request {
    request(json!({"type": "say", "room": room}))
}

/// A page's reported problems must be none (no exception, no policy violation).
fn assert_clean(page: &Page, who: &str) {
    let problems = page.problems();
    assert!(problems.is_empty(), "{who}'s page reported problems: {problems:#?}");
}

#[tokio::test]
async fn two_browsers_a_line_user_and_an_irc_user_chat_in_one_room() {
    let Some(site) = site(no_flood).await else { return };
    let started = Instant::now();
    let alice = site.guest("alice").await;
    let bob = site.guest("bob").await;
    let mut carol = LineClient::join(site.server.line, "carol").await;
    let mut dave = IrcClient::join(site.server.irc.expect("an IRC listener"), "dave", "").await;

    // Everyone is in the lobby, and the browsers list each other.
    alice
        .wait_for(
            "['alice','bob','carol','dave'].every(n => [...document.querySelectorAll('#member-list button')].some(b => b.textContent === n))",
            "all four in alice's member list",
        )
        .await;

    alice.send_line("hello from alice's browser").await;
    bob.wait_for(&shows("r:lobby", "hello from alice's browser"), "alice's message in bob's browser").await;
    carol.expect_line("alice: hello from alice's browser").await;
    dave.expect("PRIVMSG #lobby :hello from alice's browser").await;

    carol.send("hi from the line").await;
    dave.send("PRIVMSG #lobby :and from IRC").await;
    for page in [&alice, &bob] {
        page.wait_for(&shows("r:lobby", "hi from the line"), "the line user's message").await;
        page.wait_for(&shows("r:lobby", "and from IRC"), "the IRC user's message").await;
    }
    bob.send_line("/me waves to everyone").await;
    alice.wait_for(&shows("r:lobby", "waves to everyone"), "bob's action").await;
    assert_eq!(
        alice.eval("document.querySelector('[data-buffer=\"r:lobby\"] .msg.k-action .line').textContent").await,
        json!("*bob waves to everyone")
    );
    dave.expect("PRIVMSG #lobby :\u{1}ACTION waves to everyone\u{1}").await;

    // The same messages, in the same order, in both browsers.
    let (seen_by_alice, seen_by_bob) = (alice.eval(&shown("r:lobby")).await, bob.eval(&shown("r:lobby")).await);
    assert_eq!(seen_by_alice, seen_by_bob);
    let texts: Vec<&str> = seen_by_alice.as_array().expect("a list").iter().filter_map(|m| m[2].as_str()).collect();
    assert_eq!(texts, ["hello from alice's browser", "hi from the line", "and from IRC", "waves to everyone"]);

    // By keyboard: into the log, up to the last message, R to answer it.
    alice.eval("document.querySelector('[data-buffer=\"r:lobby\"]').focus()").await;
    alice.press("ArrowUp", 0).await;
    alice
        .wait_for(
            "document.activeElement.matches('.msg') && document.activeElement.dataset.from === 'bob'",
            "bob's action focused",
        )
        .await;
    alice.press("r", 0).await;
    alice.wait_for("!document.getElementById('replying').hidden", "the reply line").await;
    assert_eq!(
        alice.eval("document.getElementById('replying-text').textContent").await,
        json!("Replying to bob: waves to everyone")
    );
    alice.send_line("welcome back").await;
    bob.wait_for(&shows("r:lobby", "welcome back"), "alice's reply").await;
    alice.wait_for("document.getElementById('replying').hidden", "the reply line gone once sent").await;

    // A private message from IRC opens a conversation with an unread badge.
    dave.send("PRIVMSG bob :psst, bob").await;
    bob.wait_for(&shows("p:dave", "psst, bob"), "dave's private message").await;
    bob.wait_for(
        "document.querySelector('#privates [data-key=\"p:dave\"] .badge.count')?.textContent === '1'",
        "an unread badge on the conversation",
    )
    .await;
    // Alt+Down twice goes from the lobby to the conversation (rooms first, then people).
    bob.press("ArrowDown", 1).await;
    bob.wait_for("document.getElementById('buffer-title').textContent === 'dave'", "Alt+Down to the conversation")
        .await;
    bob.wait_for("!document.querySelector('#privates [data-key=\"p:dave\"] .badge')", "the badge cleared when read")
        .await;
    bob.send_line("hello dave").await;
    dave.expect("PRIVMSG dave :hello dave").await;

    eprintln!("four users chatted in {:?}", started.elapsed());
    assert_clean(&alice, "alice");
    assert_clean(&bob, "bob");
    alice.close().await;
    bob.close().await;
    site.server.shutdown().await;
}

#[tokio::test]
async fn scrolling_back_pages_through_the_whole_history() {
    let Some(site) = site(no_flood).await else { return };
    let mut sam = NativeClient::join(site.server.native, "sam").await;
    for i in 1..=320 {
        sam.request(&said("lobby"), format!("line {i}").as_bytes()).await.expect("said");
    }
    // Time to the first message: page load to login form, then sign-in to the first
    // message shown, as the page itself measures them.
    let page = site.tools.page(1280, 800).await;
    page.goto(&site.url()).await;
    let form = page.wait_for("!document.getElementById('login').hidden && performance.now()", "the login form").await;
    page.eval(
        "window.__first = new Promise(done => new MutationObserver((_, o) => {            if (document.querySelector('.msg')) { o.disconnect(); done(performance.now()); }          }).observe(document.body, {childList: true, subtree: true})); true",
    )
    .await;
    let before = page.eval("performance.now()").await;
    sign_in(&page, "reader", "").await;
    let first = page.eval("window.__first").await;
    let navigation = page.eval("performance.getEntriesByType('navigation')[0].loadEventEnd").await;
    eprintln!(
        "page loaded in {navigation} ms, login form shown at {form} ms; first message {:.0} ms after signing in",
        first.as_f64().unwrap_or(0.0) - before.as_f64().unwrap_or(0.0)
    );
    page.wait_for(&shows("r:lobby", "line 320"), "the latest message").await;
    let first = page.eval(&shown("r:lobby")).await;
    assert!(first.as_array().expect("a list").len() <= 100, "the first view is one page, not everything");

    // Scroll to the top until the first message is there.
    page.wait_for(
        "(() => { const log = document.querySelector('[data-buffer=\"r:lobby\"]'); log.scrollTop = 0; \
         log.dispatchEvent(new Event('scroll')); return document.querySelector('[data-buffer=\"r:lobby\"] .start'); })()",
        "the beginning of the room after scrolling back",
    )
    .await;
    let all = page.eval(&shown("r:lobby")).await;
    let seqs: Vec<u64> = all.as_array().expect("a list").iter().filter_map(|m| m[0].as_u64()).collect();
    let texts: Vec<String> =
        all.as_array().expect("a list").iter().filter_map(|m| m[2].as_str().map(str::to_owned)).collect();
    assert_eq!(seqs.len(), 320, "every message once");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, without a gap");
    assert_eq!(texts.first().map(String::as_str), Some("line 1"));
    assert_eq!(texts.last().map(String::as_str), Some("line 320"));
    // Day separators: one at least, never two in a row.
    let days = page.eval("document.querySelectorAll('[data-buffer=\"r:lobby\"] .day').length").await;
    assert!(days.as_u64().is_some_and(|d| d >= 1), "{days}");
    assert_clean(&page, "reader");
    page.close().await;
    site.server.shutdown().await;
}

/// The whole history of `room` as the server keeps it: `[seq, from, text]`.
async fn server_history(client: &mut NativeClient, room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page =
            client.request(&request(json!({"type": "history", "room": room, "after": after, "limit": 500})), b"").await;
        let Ok(Reply::History { messages, .. }) = page else { panic!("a history page, got {page:?}") };
        let Some(last) = messages.last() else { break };
        after = last.seq;
        all.extend(messages.into_iter().map(|m| json!([m.seq, m.from, m.text])));
    }
    all
}

#[tokio::test]
async fn after_a_reconnect_the_view_is_the_servers_history_with_no_gap_and_no_duplicate() {
    let Some(site) = site(|config| {
        no_flood(config);
        config.limits.max_rooms_per_session = 20;
    })
    .await
    else {
        return;
    };
    let rooms = ["alpha", "beta", "gamma"];
    let mut sender = NativeClient::join(site.server.native, "sender").await;
    for room in rooms {
        assert!(sender.request(&request(json!({"type": "join", "room": room})), b"").await.is_ok());
        sender.request(&said(room), format!("before, in {room}").as_bytes()).await.expect("said");
    }
    let page = site.guest("wanderer").await;
    for room in rooms {
        page.send_line(&format!("/join {room}")).await;
        page.wait_for(&shows(&format!("r:{room}"), &format!("before, in {room}")), "the room's history").await;
    }

    page.send_line("/disconnect").await;
    page.wait_for("!document.getElementById('banner').hidden", "the page to show it is offline").await;
    // The server has seen the browser go: its departure reaches the sender.
    sender
        .expect(|r| {
            matches!(&r.msg, ServerMsg::Left { nick, room, .. } if nick == "wanderer" && room == "gamma").then_some(())
        })
        .await;

    // 10,000 messages in three rooms while the browser is away, pipelined by the sender.
    let started = Instant::now();
    let total = 10_000;
    let mut ids = std::collections::VecDeque::new();
    for i in 0..total {
        let room = rooms[i % 3];
        ids.push_back(sender.send(&said(room), format!("message {i} in {room}").as_bytes()).await);
        if ids.len() >= 200 {
            let id = ids.pop_front().expect("a request");
            sender.answer(id).await.expect("said");
        }
    }
    while let Some(id) = ids.pop_front() {
        sender.answer(id).await.expect("said");
    }
    eprintln!("10,000 messages sent in {:?}", started.elapsed());

    let reconnected = Instant::now();
    page.send_line("/reconnect").await;
    for (i, room) in rooms.iter().enumerate() {
        let last = (0..total).rev().find(|n| n % 3 == i).expect("a last message");
        page.wait_for(&shows(&format!("r:{room}"), &format!("message {last} in {room}")), "the last message").await;
    }
    page.wait_for("document.getElementById('banner').hidden", "the page to be back online").await;
    eprintln!("caught up with 10,000 messages in {:?}", reconnected.elapsed());

    for room in rooms {
        let kept = server_history(&mut sender, room).await;
        let view = page.eval(&shown(&format!("r:{room}"))).await;
        let view = view.as_array().expect("a list");
        assert_eq!(view.len(), kept.len(), "{room}: as many messages as the server keeps");
        assert!(view.iter().zip(&kept).all(|(a, b)| a == b), "{room}: the same messages in the same order");
        let mut seqs: Vec<u64> = view.iter().filter_map(|m| m[0].as_u64()).collect();
        seqs.dedup();
        assert_eq!(seqs.len(), view.len(), "{room}: no duplicate");
    }
    let weight = page
        .eval("[document.getElementsByTagName('*').length, performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1048576) : null]")
        .await;
    eprintln!("with 10,000+ messages shown: {} DOM elements, {} MiB of JavaScript heap", weight[0], weight[1]);
    // Still live after the catch-up.
    sender.request(&said("beta"), b"and one more").await.expect("said");
    page.wait_for(&shows("r:beta", "and one more"), "a live message after the catch-up").await;
    assert_clean(&page, "wanderer");
    page.close().await;
    site.server.shutdown().await;
}

/// The unread count the sidebar shows for a buffer (0 without a badge).
fn unread(key: &str) -> String {
    format!("Number(document.querySelector('.buffers [data-key=\"{key}\"] .badge.count')?.textContent || 0)")
}

#[tokio::test]
async fn reading_on_one_device_clears_the_unread_count_on_the_other() {
    let Some(site) = site(no_flood).await else { return };
    // ann's account, made from a native client: her "laptop".
    let mut laptop = NativeClient::join(site.server.native, "ann").await;
    laptop.request(&request(json!({"type": "register", "password": "ann-password"})), b"").await.expect("registered");
    let mut bob = NativeClient::join(site.server.native, "bob").await;
    bob.request(&request(json!({"type": "join", "room": "dev"})), b"").await.expect("joined");

    // ann signs in in the browser too: her "phone". The laptop stays logged in to her
    // account (under another nick).
    let phone = site.open(1280, 800).await;
    sign_in(&phone, "ann", "ann-password").await;
    laptop.request(&request(json!({"type": "join", "room": "dev"})), b"").await.expect("joined");
    phone.send_line("/join dev").await;
    phone.wait_for("document.getElementById('buffer-title').textContent === '# dev'", "dev shown").await;
    phone.click(".buffers [data-key=\"r:lobby\"]").await;
    phone.wait_for("document.getElementById('buffer-title').textContent === '# lobby'", "back in the lobby").await;

    let mut last_ts = String::new();
    for i in 1..=3 {
        match bob.request(&said("dev"), format!("news {i}").as_bytes()).await {
            Ok(Reply::Said { ts, .. }) => last_ts = ts,
            other => panic!("said, got {other:?}"),
        }
    }
    phone.wait_for(&format!("{} === 3", unread("r:dev")), "3 unread in dev on the phone").await;
    assert_eq!(phone.eval("document.title").await, json!("(3) Parley – #lobby"), "the title counts them");

    // Read on the laptop: the phone's count clears.
    let marked = laptop.request(&request(json!({"type": "mark_read", "room": "dev", "ts": last_ts})), b"").await;
    assert!(matches!(&marked, Ok(Reply::Marker { ts: Some(ts), .. }) if *ts == last_ts), "{marked:?}");
    phone.wait_for(&format!("{} === 0", unread("r:dev")), "the count cleared by the laptop's marker").await;

    // Two more; reading them on the phone moves the laptop's marker.
    for i in 4..=5 {
        if let Ok(Reply::Said { ts, .. }) = bob.request(&said("dev"), format!("news {i}").as_bytes()).await {
            last_ts = ts;
        }
    }
    phone.wait_for(&format!("{} === 2", unread("r:dev")), "2 unread").await;
    phone.click(".buffers [data-key=\"r:dev\"]").await;
    let moved = laptop
        .expect(|r| match &r.msg {
            ServerMsg::Marker { room: Some(room), ts, .. } if room == "dev" && *ts == last_ts => Some(ts.clone()),
            _ => None,
        })
        .await;
    assert_eq!(moved, last_ts);
    phone.wait_for(&format!("{} === 0", unread("r:dev")), "read on the phone").await;
    assert_clean(&phone, "ann");
    phone.close().await;
    site.server.shutdown().await;
}

/// Drops a PNG made in the page (`width`×`height`, named `name`) onto the chat, as a
/// user dragging a file from their desktop would.
async fn drop_png(page: &Page, name: &str, width: u32, height: u32) {
    page.eval(&format!(
        "(async () => {{ const c = document.createElement('canvas'); c.width = {width}; c.height = {height}; \
         const g = c.getContext('2d'); g.fillStyle = '#4f5bd5'; g.fillRect(0, 0, {width}, {height}); \
         g.fillStyle = '#ffcc00'; g.fillRect(8, 8, {width} / 2, {height} / 2); \
         const blob = await new Promise(r => c.toBlob(r, 'image/png')); \
         const file = new File([blob], {name}, {{type: 'image/png'}}); \
         const dt = new DataTransfer(); dt.items.add(file); \
         const main = document.getElementById('main'); \
         main.dispatchEvent(new DragEvent('dragenter', {{dataTransfer: dt, bubbles: true}})); \
         main.dispatchEvent(new DragEvent('drop', {{dataTransfer: dt, bubbles: true, cancelable: true}})); \
         return blob.size; }})()",
        name = json!(name)
    ))
    .await;
}

#[tokio::test]
async fn a_dropped_image_is_uploaded_with_progress_and_previewed_by_others() {
    let Some(site) = site(no_flood).await else { return };
    let alice = site.guest("alice").await;
    let bob = site.guest("bob").await;
    let mut carl = NativeClient::join(site.server.native, "carl").await;

    drop_png(&alice, "sunset.png", 640, 480).await;
    // The shared file reaches a native client as a file message...
    let file = carl
        .expect(|r| match &r.msg {
            ServerMsg::Message { kind: Some(kind), from, .. } if kind == "file" && from == "alice" => {
                serde_json::from_slice::<Value>(&r.payload).ok()
            }
            _ => None,
        })
        .await;
    assert_eq!(file["name"], "sunset.png");
    assert_eq!(file["media_type"], "image/png");
    // ...and both browsers show its preview, decoded from the bytes checked against
    // their SHA-256.
    for page in [&alice, &bob] {
        let size = page
            .wait_for(
                "(() => { const img = document.querySelector('[data-buffer=\"r:lobby\"] img.preview'); \
                 return img && img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null; })()",
                "the image preview",
            )
            .await;
        // The server's thumbnail, or (from a server without thumbnails) the image itself.
        let (w, h) = (size[0].as_u64().unwrap_or(0), size[1].as_u64().unwrap_or(0));
        assert!(w > 0 && w <= 640 && w * 480 == h * 640, "a preview of the image's shape: {size}");
        assert_eq!(
            page.eval("document.querySelector('[data-buffer=\"r:lobby\"] .file-name').textContent").await,
            json!("sunset.png")
        );
        assert_eq!(page.eval("document.querySelector('img.preview').src.startsWith('blob:')").await, json!(true));
    }
    // The upload's progress bar is gone once the file is shared.
    alice.wait_for("document.querySelectorAll('#uploads li').length === 0", "the progress bar to go").await;
    assert_clean(&alice, "alice");
    assert_clean(&bob, "bob");
    alice.close().await;
    bob.close().await;
    site.server.shutdown().await;
}

#[tokio::test]
async fn a_search_result_jumps_into_the_history() {
    let Some(site) = site(no_flood).await else { return };
    let mut sam = NativeClient::join(site.server.native, "sam").await;
    let mut needle = 0;
    for i in 1..=400 {
        let text = if i == 37 { "the deploy key is in the vault".to_owned() } else { format!("chatter {i}") };
        if let Ok(Reply::Said { seq, .. }) = sam.request(&said("lobby"), text.as_bytes()).await {
            if i == 37 {
                needle = seq;
            }
        }
    }
    let page = site.guest("seeker").await;
    page.wait_for(&shows("r:lobby", "chatter 400"), "the latest message").await;
    page.type_into("#search", "vault from:sam").await;
    page.press("Enter", 0).await;
    page.wait_for("document.querySelectorAll('#results-list .hit').length === 1", "one search result").await;
    assert_eq!(
        page.eval("document.querySelector('#results-list .hit .body').textContent").await,
        json!("the deploy key is in the vault")
    );
    page.click("#results-list .hit").await;
    let found = page
        .wait_for(
            &format!("document.querySelector('[data-buffer=\"r:lobby\"] .msg[data-seq=\"{needle}\"].flash .body')?.textContent"),
            "the result shown in the history",
        )
        .await;
    assert_eq!(found, json!("the deploy key is in the vault"));
    // The jump loaded the pages between: still no gap.
    let seqs: Vec<u64> =
        page.eval(&shown("r:lobby")).await.as_array().expect("a list").iter().filter_map(|m| m[0].as_u64()).collect();
    assert!(seqs.first().is_some_and(|first| *first <= needle));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap after the jump");
    assert_clean(&page, "seeker");
    page.close().await;
    site.server.shutdown().await;
}

#[tokio::test]
async fn typing_replies_and_reactions_are_shown_across_browsers() {
    let Some(site) = site(no_flood).await else { return };
    // A server without typed events answers `unknown_type`: the page then sends no more
    // `typing` and says reactions are not taken, and these features have nothing to show.
    let mut probe = NativeClient::join(site.server.native, "probe").await;
    let typing = raw(&mut probe, &json!({"type": "typing", "room": "lobby", "state": "done"}), b"").await;
    if let Err(ServerMsg::Error { code, .. }) = &typing {
        if *code == parley_proto::msg::ErrorCode::UnknownType {
            eprintln!("\n*** SKIPPED: this server has no typing, replies or reactions yet ***\n");
            site.server.shutdown().await;
            return;
        }
    }
    drop(probe);
    let alice = site.guest("alice").await;
    let bob = site.guest("bob").await;
    bob.send_line("who's up for lunch?").await;
    alice.wait_for(&shows("r:lobby", "who's up for lunch?"), "bob's question").await;

    // Typing shows on the other side, and goes once the message is sent.
    alice.type_into("#input", "me!").await;
    bob.wait_for("document.getElementById('typing').textContent.includes('alice is typing')", "alice typing").await;

    // A reply by keyboard carries the original's seq; bob sees the quote, which jumps.
    alice.eval("document.getElementById('input').value = ''").await;
    alice.eval("document.querySelector('[data-buffer=\"r:lobby\"]').focus()").await;
    alice.press("ArrowUp", 0).await;
    alice.press("r", 0).await;
    alice.send_line("me! the usual place?").await;
    bob.wait_for(
        "[...document.querySelectorAll('[data-buffer=\"r:lobby\"] .msg .quote')].some(q => q.textContent.includes(\"who's up for lunch?\"))",
        "the quote of bob's question in alice's reply",
    )
    .await;
    bob.wait_for("document.getElementById('typing').textContent === ''", "typing gone once she sent").await;

    // bob reacts with E and the first reaction; alice sees the chip, and takes it back
    // for herself by clicking it (adding hers, then removing it).
    bob.eval("document.querySelector('[data-buffer=\"r:lobby\"]').focus()").await;
    bob.press("ArrowUp", 0).await;
    bob.press("e", 0).await;
    bob.wait_for("document.activeElement.closest('.picker')", "the reaction picker").await;
    bob.press("Enter", 0).await;
    let chip = "document.querySelector('[data-buffer=\"r:lobby\"] .msg[data-from=\"alice\"] .chip')";
    alice.wait_for(&format!("{chip}?.textContent === '👍 1'"), "bob's reaction on alice's message").await;
    alice.click("[data-buffer=\"r:lobby\"] .msg[data-from=\"alice\"] .chip").await;
    bob.wait_for(&format!("{chip}?.textContent === '👍 2'"), "alice's reaction too").await;
    // Her own page must know she reacted before a second click can take it back.
    alice.wait_for(&format!("{chip}?.textContent === '👍 2'"), "alice's own reaction on her page").await;
    alice.click("[data-buffer=\"r:lobby\"] .msg[data-from=\"alice\"] .chip").await;
    bob.wait_for(&format!("{chip}?.textContent === '👍 1'"), "alice's reaction taken back").await;
    assert_clean(&alice, "alice");
    assert_clean(&bob, "bob");
    alice.close().await;
    bob.close().await;
    site.server.shutdown().await;
}

/// Sends a request as raw bytes (one a protocol crate without it could not encode) and
/// waits for its answer.
async fn raw(client: &mut NativeClient, header: &Value, payload: &[u8]) -> Result<Reply, ServerMsg> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut header = header.clone();
    header["id"] = json!(id);
    if !payload.is_empty() {
        header["content-type"] = json!("text/plain; charset=utf-8");
        header["content-length"] = json!(payload.len());
    }
    let header = header.to_string();
    let mut frame = u16::try_from(header.len()).expect("a short header").to_be_bytes().to_vec();
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(payload);
    client.send_raw(&frame).await;
    client.answer(id).await
}

/// The status of a raw HTTP request.
async fn http_status(web: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(web).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let n = tokio::time::timeout(support::WAIT, stream.read(&mut byte)).await.expect("answered").expect("reads");
        if n == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).trim().to_owned()
}

#[tokio::test]
async fn a_kept_session_survives_a_reload_and_ends_with_sign_out() {
    let Some(site) = site(no_flood).await else { return };
    // A server that keeps no browser sessions answers 405: the page then asks for the
    // password again, which the other tests cover.
    let probe = http_status(
        site.web,
        &format!(
            "POST /session HTTP/1.1\r\nHost: {web}\r\nOrigin: http://{web}\r\nContent-Type: text/plain\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nbad",
            web = site.web
        ),
    )
    .await;
    if probe.contains(" 405 ") || probe.contains(" 404 ") {
        eprintln!("\n*** SKIPPED: this server keeps no browser sessions (POST /session: {probe}) ***\n");
        site.server.shutdown().await;
        return;
    }
    let mut rita = NativeClient::join(site.server.native, "rita").await;
    rita.request(&request(json!({"type": "register", "password": "rita-password"})), b"").await.expect("registered");
    rita.request(&request(json!({"type": "quit"})), b"").await.expect("bye");

    let page = site.open(1280, 800).await;
    page.click("#login-remember").await;
    sign_in(&page, "rita", "rita-password").await;
    page.wait_for("localStorage.getItem('parley.session') === 'rita'", "the session kept").await;
    assert_eq!(page.eval("document.cookie").await, json!(""), "the cookie is not the page's to read");

    // A reload signs in again without the form: the cookie goes with the upgrade.
    page.call("Page.reload", json!({})).await;
    page.wait_for(
        "document.readyState === 'complete' && !document.getElementById('app').hidden \
         && document.getElementById('me-nick').textContent === 'rita'",
        "rita resumed after a reload",
    )
    .await;
    assert_eq!(page.eval("document.getElementById('login').hidden").await, json!(true));

    // Signing out ends the session: the next load asks for the password.
    page.click("#logout").await;
    page.wait_for("!document.getElementById('login').hidden", "the login form after signing out").await;
    page.call("Page.reload", json!({})).await;
    page.wait_for(
        "document.readyState === 'complete' && !document.getElementById('login').hidden",
        "the login form again",
    )
    .await;
    assert_clean(&page, "rita");
    page.close().await;
    site.server.shutdown().await;
}

const HOSTILE: [&str; 5] = [
    "<img src=x onerror=\"window.__pwned=1\">",
    "<script>window.__pwned=2</script>",
    "javascript:window.__pwned=3",
    "<a href=\"javascript:window.__pwned=4\">click me</a>",
    "<svg onload=\"window.__pwned=5\"></svg> & &amp; &lt;",
];

#[tokio::test]
async fn hostile_bodies_nicks_topics_and_file_names_are_shown_as_text() {
    let Some(site) = site(no_flood).await else { return };
    let page = site.guest("victim").await;
    let mut mallory = NativeClient::join(site.server.native, "mallory").await;
    mallory.request(&request(json!({"type": "join", "room": "den"})), b"").await.expect("joined");
    let topic = HOSTILE[0];
    mallory.request(&request(json!({"type": "topic", "room": "den", "topic": topic})), b"").await.expect("topic set");
    for body in HOSTILE {
        mallory.request(&said("lobby"), body.as_bytes()).await.expect("said");
    }
    // A file whose name is markup, of a type that must never be shown inline.
    let bytes = b"<svg xmlns='http://www.w3.org/2000/svg' onload='window.__pwned=6'/>";
    let digest = ring_hex(bytes);
    let name = "<img src=x onerror=window.__pwned=7>.svg";
    let upload = mallory
        .request(
            &request(json!({"type": "upload", "room": "lobby", "name": name, "size": bytes.len(), "media_type": "image/svg+xml", "sha256": digest})),
            b"",
        )
        .await;
    let Ok(Reply::Upload { file, .. }) = upload else { panic!("an upload, got {upload:?}") };
    let shared = mallory.request(&request(json!({"type": "chunk", "file": file, "offset": 0})), bytes).await;
    assert!(matches!(shared, Ok(Reply::Shared { .. })), "{shared:?}");
    // Nicks cannot hold markup: the server refuses one that tries.
    let mut markup = NativeClient::connect(site.server.native).await;
    let refused = markup.request(&request(json!({"type": "hello", "version": 1, "nick": "<b>x</b>"})), b"").await;
    assert!(refused.is_err(), "{refused:?}");
    // The oddest nick the rules allow is shown as it is.
    let odd = NativeClient::join(site.server.native, "[x]{`^|}\\").await;

    page.wait_for(&shows("r:lobby", HOSTILE[4]), "the last hostile body").await;
    page.wait_for("document.querySelector('[data-buffer=\"r:lobby\"] .file-name')", "the file message").await;
    let bodies = page.eval(&shown("r:lobby")).await;
    let texts: Vec<&str> = bodies.as_array().expect("a list").iter().filter_map(|m| m[2].as_str()).collect();
    assert_eq!(&texts[..HOSTILE.len()], HOSTILE, "every body shown literally");
    assert_eq!(
        page.eval("document.querySelector('[data-buffer=\"r:lobby\"] .file-name').textContent").await,
        json!(name)
    );
    assert_eq!(page.eval("document.querySelectorAll('img.preview').length").await, json!(0), "no SVG preview");
    page.wait_for(
        "[...document.querySelectorAll('#member-list button')].some(b => b.textContent === '[x]{`^|}\\\\')",
        "the odd nick listed as it is",
    )
    .await;
    page.send_line("/join den").await;
    page.wait_for(&format!("document.getElementById('topic').textContent === {}", json!(topic)), "the topic as text")
        .await;

    let verdict = page
        .eval(
            "({pwned: window.__pwned ?? null, \
              imgs: document.querySelectorAll('img[src=\"x\"], .log img:not(.preview), .log script, .log svg, #topic img').length, \
              js: document.querySelectorAll('a[href^=\"javascript:\" i]').length})",
        )
        .await;
    assert_eq!(verdict, json!({"pwned": null, "imgs": 0, "js": 0}), "no script ran and no markup was made");
    assert_clean(&page, "victim");
    drop(odd);
    page.close().await;
    site.server.shutdown().await;
}

fn ring_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The answer's status line to a WebSocket upgrade of `/ws` from a page at `origin`.
async fn upgrade_status(web: SocketAddr, origin: &str) -> String {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {web}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n"
    );
    http_status(web, &request).await
}

#[tokio::test]
async fn a_websocket_from_another_sites_page_is_refused() {
    // Plain HTTP: no browser needed.
    let server = support::start_with(|config| {
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
    })
    .await;
    let web = server.bound.iter().find(|b| b.kind == ListenerKind::Web).map(|b| b.addr).expect("a web listener");
    assert!(upgrade_status(web, "http://evil.example").await.contains(" 403 "), "another site's page is refused");
    assert!(upgrade_status(web, "null").await.contains(" 403 "), "an opaque origin is refused");
    assert!(upgrade_status(web, &format!("http://{web}")).await.contains(" 101 "), "the page's own origin is accepted");
    server.shutdown().await;
}

/// Screenshots for the README, at a phone's width and a laptop's. Run on demand:
/// `cargo test -p parley-server --test browser -- --ignored screenshots`.
#[tokio::test]
#[ignore = "writes docs/screenshots/; run on demand"]
async fn screenshots() {
    let Some(site) = site(no_flood).await else { return };
    let mut people = Vec::new();
    for nick in ["maya", "tomás", "priya", "jonas", "li_wei"] {
        let mut client = NativeClient::join(site.server.native, nick).await;
        client.request(&request(json!({"type": "join", "room": "design"})), b"").await.expect("joined");
        people.push(client);
    }
    people[0]
        .request(
            &request(
                json!({"type": "topic", "room": "design", "topic": "v2 launch: Friday 15:00 · mockups in #design"}),
            ),
            b"",
        )
        .await
        .expect("topic");
    let lines = [
        (0, "morning all! the new onboarding mockups are up"),
        (1, "nice, the colour palette works much better in dark mode"),
        (2, "agreed. can we keep the empty state illustration from v1?"),
        (3, "I'll check with marketing, they had opinions about it"),
        (0, "spec is at https://example.org/specs/onboarding-v2"),
        (4, "reviewing now ☕"),
        (1, "anna: does friday still work for the demo?"),
    ];
    let mut seqs = Vec::new();
    for (who, text) in lines {
        match people[who].request(&said("design"), text.as_bytes()).await {
            Ok(Reply::Said { seq, .. }) => seqs.push(seq),
            other => panic!("said, got {other:?}"),
        }
    }
    people[2].request(&said("lobby"), b"lunch at 12:30?").await.expect("said");
    // Where the server has them: a reply, reactions (and, below, someone typing).
    let typed = raw(&mut people[0], &json!({"type": "typing", "room": "design", "state": "done"}), b"").await.is_ok();
    let answer = json!({"type": "say", "room": "design", "reply_to": seqs[2]});
    raw(&mut people[3], &answer, "it stays, it tested well".as_bytes()).await.expect("said");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("a directory");
    let page = site.open(1280, 800).await;
    std::fs::write(dir.join("browser-login.png"), page.screenshot().await).expect("written");
    sign_in(&page, "anna", "").await;
    page.send_line("/join design").await;
    page.wait_for(&shows("r:design", "anna: does friday still work for the demo?"), "the conversation").await;
    page.send_line("yes! I'll book the big room").await;
    page.wait_for(&shows("r:design", "yes! I'll book the big room"), "anna's answer").await;
    drop_png(&page, "onboarding-mockup.png", 480, 270).await;
    page.wait_for("document.querySelector('img.preview')?.naturalWidth", "the preview").await;
    people[3].request(&said("design"), b"looks great \xF0\x9F\x91\x8D").await.expect("said");
    people[4].send(&request(json!({"type": "whisper", "to": "anna"})), b"got a minute after the demo?").await;
    page.wait_for(&shows("r:design", "looks great 👍"), "the last message").await;
    if typed {
        for (who, reaction) in [(1, "👍"), (2, "👍"), (3, "🎉")] {
            let react = json!({"type": "react", "room": "design", "seq": seqs[4], "reaction": reaction});
            raw(&mut people[who], &react, b"").await.expect("reacted");
        }
        page.wait_for("document.querySelectorAll('.chip').length === 2", "the reactions").await;
        raw(&mut people[0], &json!({"type": "typing", "room": "design", "state": "active"}), b"")
            .await
            .expect("typing");
        page.wait_for("document.getElementById('typing').textContent.includes('maya')", "maya typing").await;
    }
    page.wait_for("document.querySelector('#privates [data-key=\"p:li_wei\"]')", "the conversation").await;
    for (theme, name) in [("light", "browser-1280-light.png"), ("dark", "browser-1280-dark.png")] {
        page.eval(&format!("document.documentElement.dataset.theme = '{theme}'")).await;
        page.eval("document.querySelector('[data-buffer=\"r:design\"]').scrollTop = 1e9").await;
        std::fs::write(dir.join(name), page.screenshot().await).expect("written");
    }
    page.type_into("#search", "mockups").await;
    page.press("Enter", 0).await;
    page.wait_for("document.querySelectorAll('#results-list .hit').length === 1", "a search result").await;
    std::fs::write(dir.join("browser-search.png"), page.screenshot().await).expect("written");
    page.click("#results-close").await;
    page.eval("document.getElementById('search').value = ''").await;
    page.press("k", 2).await;
    page.wait_for("document.getElementById('switcher').open", "the switcher").await;
    page.call("Input.insertText", json!({"text": "de"})).await;
    std::fs::write(std::env::temp_dir().join("parley-switcher.png"), page.screenshot().await).expect("written");
    page.press("Enter", 0).await;
    page.wait_for("!document.getElementById('switcher').open", "the switcher to close").await;
    page.resize(360, 740).await;
    page.eval("document.documentElement.dataset.theme = 'light'").await;
    page.eval("document.querySelector('[data-buffer=\"r:design\"]').scrollTop = 1e9").await;
    page.wait_for("document.getElementById('sidebar').getBoundingClientRect().right <= 0", "the sidebar to slide away")
        .await;
    assert_eq!(page.eval("document.documentElement.scrollWidth").await, json!(360), "nothing wider than the screen");
    std::fs::write(dir.join("browser-360.png"), page.screenshot().await).expect("written");
    page.click("#toggle-sidebar").await;
    page.wait_for("document.getElementById('sidebar').getBoundingClientRect().left >= 0", "the sidebar to slide in")
        .await;
    std::fs::write(dir.join("browser-360-sidebar.png"), page.screenshot().await).expect("written");
    assert_clean(&page, "anna");
    page.close().await;
    site.server.shutdown().await;
}

/// A free port on the loopback interface, for a server whose address another server's
/// configuration must name before it starts.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

#[tokio::test]
async fn a_lost_node_is_replaced_by_another_that_its_welcome_listed() {
    let Some(browser) = chromium::chromium() else { return };
    let first_web = free_addr();
    let second = support::start_with(|config| {
        no_flood(config);
        config.listeners.push(Listener::new(ListenerKind::Web, false, "127.0.0.1:0"));
        config.web.allowed_origins = vec![format!("http://{first_web}")];
    })
    .await;
    let second_web = second.bound.iter().find(|b| b.kind == ListenerKind::Web).map(|b| b.addr).expect("web");
    let first = support::start_with(|config| {
        no_flood(config);
        config.listeners.push(Listener::new(ListenerKind::Web, false, &first_web.to_string()));
        // A native node, which the browser skips, and the second's web listener.
        config.cluster.nodes = vec![second.native.to_string(), format!("http://{second_web}/")];
    })
    .await;
    let site = Site { server: first, web: first_web, tools: DevTools::connect(browser).await };
    let page = site.guest("roamer").await;
    page.send_line("/join dev").await;
    page.wait_for("document.querySelector('[data-buffer=\"r:dev\"]') !== null", "dev to open").await;
    let mut bob = NativeClient::join(second.native, "bob").await;
    assert!(bob.request(&request(json!({"type": "join", "room": "dev"})), b"").await.is_ok());

    let lost = Instant::now();
    site.server.shutdown().await;
    bob.expect(|r| {
        matches!(&r.msg, ServerMsg::Joined { nick, room, .. } if nick == "roamer" && room == "dev").then_some(())
    })
    .await;
    eprintln!("the browser was back in dev on the second node {:?} after the first stopped", lost.elapsed());
    page.wait_for("document.getElementById('banner').hidden", "the page to be back online").await;
    bob.request(&said("dev"), b"welcome to the second node").await.expect("said");
    page.wait_for(&shows("r:dev", "welcome to the second node"), "a message on the second node").await;
    page.send_line("heard on the second node").await;
    bob.expect(|r| {
        matches!(&r.msg, ServerMsg::Message { from, room, .. } if from == "roamer" && room == "dev")
            .then(|| r.payload.clone())
            .filter(|text| &text[..] == b"heard on the second node")
    })
    .await;
    // The browser logs its tries at the stopped node; nothing else went wrong.
    let refused = format!("WebSocket connection to 'ws://{first_web}/ws' failed");
    let problems: Vec<String> = page.problems().into_iter().filter(|p| !p.contains(&refused)).collect();
    assert!(problems.is_empty(), "roamer's page reported problems: {problems:#?}");
    page.close().await;
    second.shutdown().await;
}
