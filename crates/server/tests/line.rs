//! The classic line protocol over real sockets.

mod support;

use support::{assert_stamped, LineClient};

#[tokio::test]
async fn three_clients_chat_with_names_and_timestamps() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    alice.expect_stamped("bob has joined the chat!").await;
    let mut carol = LineClient::join(server.line, "carol").await;
    alice.expect_stamped("carol has joined the chat!").await;
    bob.expect_stamped("carol has joined the chat!").await;

    alice.send("Hello everyone!").await;
    bob.expect_stamped("alice: Hello everyone!").await;
    carol.expect_stamped("alice: Hello everyone!").await;
    bob.send("hi alice").await;
    carol.send("hey").await;
    alice.expect_stamped("bob: hi alice").await;
    alice.expect_stamped("carol: hey").await;
    // No echo: the sender's next line is the answer to /who, not its own message.
    carol.expect_stamped("bob: hi alice").await;
    bob.expect_stamped("carol: hey").await;
    carol.expect_nothing_more().await;

    carol.send("/quit").await;
    let farewell = carol.expect_closed().await;
    assert_eq!(farewell, vec!["Goodbye!".to_owned()]);
    alice.expect_stamped("carol has left the chat.").await;
    bob.expect_stamped("carol has left the chat.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_prompt_and_welcome_are_byte_exact() {
    let server = support::start().await;
    let mut client = LineClient::connect(server.line).await;
    client.expect_prompt().await;
    client.send_raw(b"dave\r\n").await;
    let welcome = client.next_line().await.expect("welcome");
    assert_stamped(&welcome, "Welcome to the chat, dave!");
    server.shutdown().await;
}

#[tokio::test]
async fn an_empty_name_becomes_guest_and_the_source_port() {
    let server = support::start().await;
    let mut client = LineClient::connect(server.line).await;
    client.expect_prompt().await;
    client.send("").await;
    let expected = format!("Welcome to the chat, Guest_{}!", client.local.port());
    client.expect_stamped(&expected).await;
    server.shutdown().await;
}

#[tokio::test]
async fn taken_and_invalid_names_are_refused_and_asked_again() {
    let server = support::start().await;
    let _alice = LineClient::join(server.line, "alice").await;
    let mut other = LineClient::connect(server.line).await;
    other.expect_prompt().await;
    other.send("ALICE").await;
    assert_eq!(other.next_line().await.as_deref(), Some("The name ALICE is already taken; choose another."));
    other.expect_prompt().await;
    other.send("no spaces").await;
    let refusal = other.next_line().await.expect("a reason");
    assert!(refusal.starts_with("Sorry: \"no spaces\" is not a valid nick"), "{refusal}");
    other.expect_prompt().await;
    other.send("alice2").await;
    other.expect_stamped("Welcome to the chat, alice2!").await;
    server.shutdown().await;
}

#[tokio::test]
async fn quit_words_alone_on_a_line_leave_the_chat() {
    let server = support::start().await;
    let mut watcher = LineClient::join(server.line, "watcher").await;
    for (word, name) in [("quit", "q1"), ("exit", "q2"), ("q", "q3"), ("/quit", "q4")] {
        let mut client = LineClient::join(server.line, name).await;
        watcher.expect_stamped(&format!("{name} has joined the chat!")).await;
        client.send(word).await;
        assert_eq!(client.expect_closed().await, vec!["Goodbye!".to_owned()]);
        watcher.expect_stamped(&format!("{name} has left the chat.")).await;
    }
    // Closing the socket without a word is a departure too.
    let client = LineClient::join(server.line, "vanisher").await;
    watcher.expect_stamped("vanisher has joined the chat!").await;
    drop(client);
    watcher.expect_stamped("vanisher has left the chat.").await;
    server.shutdown().await;
}

#[tokio::test]
async fn private_messages_reach_only_their_receiver() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    let mut carol = LineClient::join(server.line, "carol").await;
    alice.send("/msg Bob meet me at noon").await;
    alice.expect_line("[private to bob] meet me at noon").await;
    let (line, _) = bob.expect_line("[private] alice: meet me at noon").await;
    assert_stamped(&line, "[private] alice: meet me at noon");
    carol.expect_nothing_more().await;
    alice.send("/msg nobody hello").await;
    alice.expect_line("Error: No user is called nobody.").await;
    alice.send("/msg bob").await;
    alice.expect_line("Usage: /msg NAME text").await;
    server.shutdown().await;
}

#[tokio::test]
async fn nick_changes_are_announced_and_free_the_old_name() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    alice.send("/nick alicia").await;
    alice.expect_line("You are now known as alicia.").await;
    bob.expect_line("alice is now known as alicia.").await;
    bob.send("/nick alicia").await;
    bob.expect_line("Error: The nick alicia is already taken.").await;
    let _new_alice = LineClient::join(server.line, "alice").await;
    alice.send("hello").await;
    bob.expect_line("alicia: hello").await;
    server.shutdown().await;
}

#[tokio::test]
async fn rooms_separate_conversations() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut bob = LineClient::join(server.line, "bob").await;
    let mut carol = LineClient::join(server.line, "carol").await;
    alice.expect_line("carol has joined the chat!").await;
    bob.expect_line("carol has joined the chat!").await;

    alice.send("/join #Dev").await;
    alice.expect_line("You joined Dev. Users here: @alice").await;
    bob.expect_line("alice has left lobby.").await;
    carol.expect_line("alice has left lobby.").await;
    bob.send("/join dev").await;
    bob.expect_line("You joined Dev. Users here: @alice, bob").await;
    alice.expect_line("bob has joined Dev.").await;
    carol.expect_line("bob has left lobby.").await;

    bob.send("only dev hears this").await;
    alice.expect_line("bob: only dev hears this").await;
    carol.expect_nothing_more().await;

    alice.send("/rooms").await;
    alice.expect_line("Rooms: Dev (2 users, you are here), lobby (1 user)").await;
    alice.send("/who").await;
    alice.expect_line("Users in Dev (2): @alice, bob").await;

    alice.send("/part").await;
    alice.expect_line("You left Dev. Use /join ROOM to enter a room.").await;
    bob.expect_line("alice has left Dev.").await;
    alice.send("anyone?").await;
    alice.expect_line("Error: You are not in a room; join one first.").await;
    alice.send("/join lobby").await;
    alice.expect_line("You joined lobby. Users here: alice, carol").await;
    carol.expect_line("alice has joined lobby.").await;
    alice.send("/join bad,name").await;
    let (line, _) = alice.expect_line("use letters, digits and - _ ..").await;
    assert!(line.starts_with("Error: \"bad,name\" is not a valid room name"), "{line}");
    server.shutdown().await;
}

#[tokio::test]
async fn help_unknown_commands_and_blank_lines() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    alice.send("").await;
    alice.send("/dance").await;
    assert_eq!(alice.next_line().await.as_deref(), Some("Error: unknown command /dance (try /help)"));
    alice.send("/help").await;
    assert_eq!(alice.next_line().await.as_deref(), Some("Commands:"));
    let (_, listed) = alice.expect_line("  /quit               leave the chat (also: quit, exit, q)").await;
    for command in ["/who", "/rooms", "/msg NAME text", "/nick NEW", "/join ROOM", "/part"] {
        assert!(listed.iter().any(|l| l.contains(command)), "{command} missing from {listed:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn answers_come_in_the_order_commands_were_typed() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    alice.send_raw(b"/who\n/bogus\n/rooms\n/help\n/who\n").await;
    assert!(alice.next_line().await.expect("who").starts_with("Users in lobby"));
    assert!(alice.next_line().await.expect("bogus").starts_with("Error: unknown command /bogus"));
    assert!(alice.next_line().await.expect("rooms").starts_with("Rooms: lobby"));
    let (_, _) = alice.expect_line("leave the chat (also: quit, exit, q)").await;
    let (_, _) = alice.expect_line("start a line with // to say something that starts with /.").await;
    assert!(alice.next_line().await.expect("who").starts_with("Users in lobby"));
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_every_client() {
    let server = support::start().await;
    let mut alice = LineClient::join(server.line, "alice").await;
    let mut unnamed = LineClient::connect(server.line).await;
    unnamed.expect_prompt().await;
    server.shutdown().await;
    let last = alice.expect_closed().await;
    assert_eq!(last.len(), 1, "{last:?}");
    assert_stamped(&last[0], "Server is shutting down.");
    assert!(unnamed.expect_closed().await.contains(&"Server is shutting down.".to_owned()));
}
