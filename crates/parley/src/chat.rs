//! `parley chat`: the client over the native protocol. On a terminal it is a full-screen
//! UI (`tui`); in a pipe, or with `--plain-ui`, it is the plain client here, which reads
//! the server and the keyboard at the same time (one task each) and prints classic
//! `[HH:MM:SS] name: text` lines in local time. Both reconnect when the connection is
//! lost (`failover`): to the same server or another node of its cluster, signed in
//! again, back in the same rooms, and caught up on what was said meanwhile.

mod failover;
mod format;
mod tui;

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use parley_client::{Audience, Client, ErrorCode, Event, Events, HistoryCursor, Reply, Request, Transport, Trust};
use parley_proto::line::Input;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use format::{clock, eprint_line, print_line};

/// Exit status when the server goes away (and no other answers in time) or refuses us.
pub(crate) const SERVER_GONE: u8 = 2;

/// Messages fetched per catch-up page after a reconnect, and the most pages per room;
/// past that the user is told to use `/history`, so a client back from a long absence
/// does not print a day of a busy room.
const CATCH_UP_PAGE: u32 = 200;
const CATCH_UP_PAGES: usize = 10;

/// How long a lost connection's event printer may take to print its last events.
const PRINTER_WAIT: Duration = Duration::from_secs(1);

/// Messages `/history` shows when not told how many.
const DEFAULT_HISTORY_LINES: u32 = 20;

/// Options of `parley chat`.
#[derive(clap::Args, Debug)]
pub(crate) struct ChatArgs {
    /// The server, HOST:PORT. Several (or a comma-separated list) for failover: the
    /// first that answers is used, the others when the connection is lost. Default:
    /// localhost:7780 (TLS), or localhost:7778 with --plain.
    #[arg(value_name = "ADDR")]
    addrs: Vec<String>,
    /// Another server to fail over to, HOST:PORT (the same as another ADDR); repeatable.
    #[arg(long = "server", value_name = "ADDR")]
    servers: Vec<String>,
    /// After the connection is lost, how long to keep trying the servers (the ones
    /// given, then the nodes the server listed) before giving up, in seconds; 0 does not
    /// reconnect.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    reconnect_for: u64,
    /// Your name; asked for when missing.
    #[arg(long)]
    name: Option<String>,
    /// Plain TCP instead of TLS (anyone on the path can read it).
    #[arg(long, conflicts_with = "insecure")]
    plain: bool,
    /// TLS without checking the server's certificate: encrypted, but anyone on the path
    /// can pretend to be the server.
    #[arg(long)]
    insecure: bool,
    /// Where the fingerprints of self-signed servers are remembered. Default:
    /// ~/.config/parley/known_hosts.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// The plain line client even on a terminal (it is always used in a pipe).
    #[arg(long)]
    plain_ui: bool,
    /// No terminal bell on mentions and private messages (full-screen UI).
    #[arg(long)]
    no_bell: bool,
    /// Leave the mouse to the terminal, for selecting text; the wheel no longer scrolls
    /// (full-screen UI).
    #[arg(long)]
    no_mouse: bool,
}

/// What the reader of the keyboard and the printer of events share, and what a
/// reconnect needs: who we are, where we are, and how far we have seen.
#[derive(Debug, Default)]
struct Rooms {
    /// The rooms we are in, the current one last.
    joined: Vec<String>,
    /// Our nick, to sign in again under it.
    nick: String,
    /// The account's resume token, after `/login` or `/register`: a reconnect logs in
    /// with it instead of asking for the password again.
    token: Option<String>,
    /// The highest seq shown or said per room (key: the name in lower case): where the
    /// catch-up after a reconnect starts.
    last: HashMap<String, u64>,
    /// The highest seq a reconnect's catch-up printed per room: a live event at or
    /// below it is one already shown.
    caught_up: HashMap<String, u64>,
}

impl Rooms {
    fn saw(&mut self, room: &str, seq: u64) {
        let last = self.last.entry(room.to_ascii_lowercase()).or_insert(0);
        *last = (*last).max(seq);
    }

    fn last_seen(&self, room: &str) -> u64 {
        self.last.get(&room.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    fn caught_up(&mut self, room: &str, seq: u64) {
        self.saw(room, seq);
        self.caught_up.insert(room.to_ascii_lowercase(), seq);
    }

    /// Whether a live message was already printed by the catch-up.
    fn shown(&self, room: &str, seq: u64) -> bool {
        self.caught_up.get(&room.to_ascii_lowercase()).is_some_and(|up| seq <= *up)
    }

    fn current(&self) -> Option<String> {
        self.joined.last().cloned()
    }

    fn enter(&mut self, room: String) {
        self.joined.retain(|r| !r.eq_ignore_ascii_case(&room));
        self.joined.push(room);
    }

    fn leave(&mut self, room: &str) {
        self.joined.retain(|r| !r.eq_ignore_ascii_case(room));
    }
}

type Shared = Arc<Mutex<Rooms>>;

fn rooms(shared: &Shared) -> std::sync::MutexGuard<'_, Rooms> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("async runtime")?;
    let result = runtime.block_on(chat(args));
    // Standard input is read on a blocking thread that no one can interrupt; waiting for
    // it would keep the chat open after the server has gone until the user pressed Enter.
    runtime.shutdown_background();
    result
}

async fn chat(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let transport = if args.plain {
        Transport::Plain
    } else if args.insecure {
        eprintln!("WARNING: --insecure: the server's certificate will not be checked.");
        Transport::Tls(Trust::Insecure)
    } else {
        let known_hosts = args
            .known_hosts
            .clone()
            .or_else(parley_client::trust::default_known_hosts)
            .context("no home directory for known_hosts; pass --known-hosts FILE")?;
        Transport::Tls(Trust::Verify { known_hosts })
    };
    let mut given = failover::split_addrs(&args.addrs);
    given.extend(failover::split_addrs(&args.servers));
    if given.is_empty() {
        given.push(if args.plain { "localhost:7778" } else { "localhost:7780" }.to_owned());
    }
    let mut servers = failover::Servers::new(given);
    let Some((addr, client, events, trusted)) = first_connection(&servers, &transport).await else {
        return Ok(ExitCode::from(SERVER_GONE));
    };
    if let Some(trusted) = &trusted {
        eprint_line(&format!("Connected to {addr} over TLS: {trusted}."));
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();

    let Some(welcome) = register(&client, &mut stdin, args.name.as_deref()).await? else {
        return Ok(ExitCode::FAILURE);
    };
    servers.learn(&welcome.nodes);
    let give_up = Duration::from_secs(args.reconnect_for);
    if !args.plain_ui && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        let connect = tui::Connect { addr, servers, transport, give_up };
        let connected = tui::Connected { connect, client, events, welcome, trusted };
        return tui::run(connected, tui::Options { bell: !args.no_bell, mouse: !args.no_mouse }).await;
    }
    print_line(&format!("[{}] Welcome to the chat, {}!", clock(&Utc::now()), welcome.nick));
    if let Some(topic) = &welcome.topic {
        print_line(&format!("[{}] Topic: {topic}", clock(&Utc::now())));
    }
    for line in format::history_lines(&welcome.room, &welcome.history) {
        print_line(&line);
    }
    let shared: Shared = Arc::new(Mutex::new(Rooms {
        joined: vec![welcome.room.clone()],
        nick: welcome.nick.clone(),
        ..Rooms::default()
    }));
    welcome.history.iter().for_each(|m| rooms(&shared).saw(&welcome.room, m.seq));

    let mut client = client;
    let mut printer = tokio::spawn(print_events(events, Vec::new(), shared.clone()));
    loop {
        let farewell = tokio::select! {
            line = stdin.next_line() => {
                let line = line.context("reading standard input")?;
                let Some(line) = line else {
                    // End of input: everything typed before has been answered.
                    let _ = client.quit(None).await;
                    return Ok(ExitCode::SUCCESS);
                };
                match handle(&client, &shared, &line).await {
                    None => continue,
                    Some(Next::Exit(code)) => return Ok(code),
                    // The printer prints the connection's last events, and its farewell.
                    Some(Next::Lost) => match tokio::time::timeout(PRINTER_WAIT, &mut printer).await {
                        Ok(ended) => ended.ok(),
                        Err(_) => {
                            printer.abort();
                            None
                        }
                    },
                }
            }
            ended = &mut printer => ended.ok(),
        };
        eprint_line(&farewell.unwrap_or_else(|| "Connection to the server lost.".to_owned()));
        if give_up.is_zero() {
            return Ok(ExitCode::from(SERVER_GONE));
        }
        let Some((next, events, backlog)) = reconnect(&mut servers, &transport, &shared, give_up).await else {
            return Ok(ExitCode::from(SERVER_GONE));
        };
        client = next;
        printer = tokio::spawn(print_events(events, backlog, shared.clone()));
    }
}

/// Connects to the first of `servers` that answers.
async fn first_connection(
    servers: &failover::Servers,
    transport: &Transport,
) -> Option<(String, Client, Events, Option<parley_client::Trusted>)> {
    for addr in servers.all() {
        match Client::connect(&addr, transport).await {
            Ok((client, events, trusted)) => return Some((addr, client, events, trusted)),
            Err(e) => eprint_line(&format!("Cannot connect to {addr}: {e}")),
        }
    }
    None
}

/// After a lost connection, tries every server, round after round with a growing wait,
/// until one takes us back or `give_up` has passed since the loss (`None`). Typed lines
/// wait in standard input meanwhile and are carried out once reconnected.
async fn reconnect(
    servers: &mut failover::Servers,
    transport: &Transport,
    shared: &Shared,
    give_up: Duration,
) -> Option<(Client, Events, Vec<Event>)> {
    let lost = Instant::now();
    let mut announced: Vec<String> = Vec::new();
    let mut last_error = String::new();
    for round in 0_u32.. {
        if round > 0 {
            let wait = failover::backoff(round);
            if lost.elapsed() + wait > give_up {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        for addr in servers.all() {
            if !announced.contains(&addr) {
                eprint_line(&format!("[{}] Reconnecting to {addr}…", clock(&Utc::now())));
                announced.push(addr.clone());
            }
            match resume(&addr, transport, shared).await {
                Ok((client, events, backlog, nodes)) => {
                    servers.learn(&nodes);
                    return Some((client, events, backlog));
                }
                Err(e) => last_error = format!("{addr}: {e}"),
            }
        }
    }
    eprint_line(&format!("No server answered within {} s ({last_error}); giving up.", give_up.as_secs()));
    None
}

/// Connects to `addr`, signs in again (the resume token, else the same nick), enters
/// the rooms again and prints what each missed, from the last seq seen. Returns the
/// connection, the events that arrived meanwhile, and the cluster's nodes.
async fn resume(
    addr: &str,
    transport: &Transport,
    shared: &Shared,
) -> Result<(Client, Events, Vec<Event>, Vec<String>), parley_client::Error> {
    let (client, mut events, _) = Client::connect(addr, transport).await?;
    let mut backlog = Vec::new();
    let (nick, token, joined) = {
        let rooms = rooms(shared);
        (rooms.nick.clone(), rooms.token.clone(), rooms.joined.clone())
    };
    let welcome = match token {
        Some(token) => match failover::during(client.hello_token(&token), &mut events, &mut backlog).await {
            Err(parley_client::Error::Refused { code: ErrorCode::BadToken, .. }) => {
                rooms(shared).token = None;
                eprint_line("Your session has ended (revoked, expired, or the password changed): you are a guest now.");
                failover::during(client.hello(&nick), &mut events, &mut backlog).await?
            }
            answer => answer?,
        },
        None => failover::during(client.hello(&nick), &mut events, &mut backlog).await?,
    };
    rooms(shared).nick.clone_from(&welcome.nick);
    if !joined.iter().any(|r| r.eq_ignore_ascii_case(&welcome.room)) {
        // The server puts everyone in its first room; the user had left it.
        let _ = failover::during(client.part(Some(&welcome.room)), &mut events, &mut backlog).await;
    }
    for room in joined.iter().filter(|r| !r.eq_ignore_ascii_case(&welcome.room)) {
        match failover::during(client.join(room), &mut events, &mut backlog).await {
            Ok(_) => {}
            Err(parley_client::Error::Refused { message, .. }) => {
                print_line(&format!("[{}] Could not enter {room} again: {message}", clock(&Utc::now())));
                rooms(shared).leave(room);
            }
            Err(e) => return Err(e),
        }
    }
    eprint_line(&format!("[{}] Reconnected to {addr}.", clock(&Utc::now())));
    let (current, joined) = {
        let rooms = rooms(shared);
        (rooms.current(), rooms.joined.clone())
    };
    for room in &joined {
        let mut after = rooms(shared).last_seen(room);
        for page in 1..=CATCH_UP_PAGES {
            let cursor = HistoryCursor::After(after);
            let history = client.history(Some(room), cursor, Some(CATCH_UP_PAGE));
            let (_, messages) = failover::during(history, &mut events, &mut backlog).await?;
            for line in format::missed_lines(room, &messages, current.as_deref()) {
                print_line(&line);
            }
            let Some(last) = messages.last() else { break };
            after = last.seq;
            rooms(shared).caught_up(room, after);
            if messages.len() < CATCH_UP_PAGE as usize {
                break;
            }
            if page == CATCH_UP_PAGES {
                print_line(&format!("More was said in {room} meanwhile; /history N shows it."));
            }
        }
    }
    Ok((client, events, backlog, welcome.nodes))
}

/// Asks for a name until the server accepts one. `None`: refused for good.
async fn register(
    client: &Client,
    stdin: &mut Lines<BufReader<Stdin>>,
    name: Option<&str>,
) -> anyhow::Result<Option<parley_client::Welcome>> {
    if let Some(name) = name {
        return match client.hello(name).await {
            Ok(welcome) => Ok(Some(welcome)),
            Err(e) => {
                eprint_line(&format!("The server refused the name {name}: {e}"));
                Ok(None)
            }
        };
    }
    loop {
        print!("{}", parley_proto::line::USERNAME_PROMPT);
        let _ = std::io::stdout().flush();
        let Some(line) = stdin.next_line().await.context("reading standard input")? else {
            return Ok(None);
        };
        let name = line.trim();
        let name = if name.is_empty() { format!("Guest_{}", std::process::id() % 100_000) } else { name.to_owned() };
        match client.hello(&name).await {
            Ok(welcome) => return Ok(Some(welcome)),
            Err(parley_client::Error::Refused { code: ErrorCode::NickTaken, .. }) => {
                print_line(&format!("The name {name} is already taken; choose another."));
            }
            Err(parley_client::Error::Refused { message, .. }) => print_line(&format!("Sorry: {message}.")),
            Err(e) => return Err(e.into()),
        }
    }
}

/// What follows a typed line that did not simply succeed or fail.
enum Next {
    /// The chat is over.
    Exit(ExitCode),
    /// The connection is lost: reconnect.
    Lost,
}

/// Carries out one typed line.
async fn handle(client: &Client, shared: &Shared, line: &str) -> Option<Next> {
    let now = || clock(&Utc::now());
    // Read before the match: a guard in the scrutinee would live through the arms.
    let current = rooms(shared).current();
    let outcome = match Input::parse(line) {
        Input::Say(text) if text.trim().is_empty() => Ok(()),
        Input::Say(text) => match current {
            None => {
                print_line("Error: you are not in a room; /join one");
                Ok(())
            }
            Some(room) => client.say(&room, &text).await.map(|(seq, _)| rooms(shared).saw(&room, seq)),
        },
        Input::Me(text) => match current {
            None => {
                print_line("Error: you are not in a room; /join one");
                Ok(())
            }
            Some(room) => client.act(&room, &text).await.map(|(seq, _)| rooms(shared).saw(&room, seq)),
        },
        Input::Away(message) => client.call(&Request::Away { message }).await.map(|reply| {
            for line in format::reply_lines(&reply) {
                print_line(&line);
            }
        }),
        Input::Whois(nick) => client.call(&Request::Whois { nick }).await.map(|reply| {
            for line in format::reply_lines(&reply) {
                print_line(&line);
            }
        }),
        Input::Invite(nick) => client.call(&Request::Invite { room: current.clone(), nick }).await.map(|reply| {
            for line in format::reply_lines(&reply) {
                print_line(&line);
            }
        }),
        Input::Msg { to, text } => client.whisper(&to, &text).await.map(|to| {
            for part in text.lines() {
                print_line(&format!("[{}] [private to {to}] {part}", now()));
            }
        }),
        Input::Join(room) => client.join(&room).await.map(|joined| {
            print_line(&format!("[{}] You joined {}. Users here: {}", now(), joined.room, joined.members.join(", ")));
            if let Some(topic) = &joined.topic {
                print_line(&format!("[{}] Topic: {topic}", now()));
            }
            for line in format::history_lines(&joined.room, &joined.history) {
                print_line(&line);
            }
            let mut rooms = rooms(shared);
            joined.history.iter().for_each(|m| rooms.saw(&joined.room, m.seq));
            rooms.enter(joined.room);
        }),
        Input::Search(query) => client.search(&query, None).await.map(|found| {
            if found.is_empty() {
                print_line(&format!("No messages found for \"{query}\"."));
            }
            for (room, message) in &found {
                let place = room.as_ref().map_or_else(|| "[private]".to_owned(), |r| format!("{r} #{}", message.seq));
                let stamp = message.at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S");
                for part in message.text.lines() {
                    print_line(&format!("[{stamp}] {place} {}: {part}", message.from));
                }
            }
        }),
        Input::Context(seq) => {
            let around = HistoryCursor::Before(seq.saturating_add(6));
            client.history(current.as_deref(), around, Some(11)).await.map(|(room, messages)| {
                for line in format::history_lines(&room, &messages) {
                    print_line(&line);
                }
            })
        }
        Input::Delete { seq, reason } => match current.clone() {
            None => {
                print_line("Error: you are not in a room; /join one");
                Ok(())
            }
            Some(room) => client.call(&Request::Delete { room, seq, reason }).await.map(|reply| {
                if let Reply::Deleted { room, seq } = reply {
                    print_line(&format!("[{}] *** You deleted message #{seq} of {room}.", now()));
                }
            }),
        },
        Input::Topic(topic) => {
            client.call(&Request::Topic { room: current.clone(), topic }).await.map(|reply| match reply {
                Reply::Topic { room, topic: Some(topic), by, .. } => {
                    print_line(&format!("Topic of {room}: {topic} (set by {})", by.unwrap_or_default()));
                }
                Reply::Topic { room, topic: None, .. } => print_line(&format!("{room} has no topic.")),
                _ => {}
            })
        }
        Input::Audit(n) => {
            let limit = n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            client.call(&Request::Audit { limit }).await.map(|reply| {
                if let Reply::Audit { entries } = reply {
                    for e in entries {
                        let place = e.room.map(|r| format!(" in {r}")).unwrap_or_default();
                        let target = e.target.map(|t| format!(" {t}")).unwrap_or_default();
                        let detail = e.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                        print_line(&format!("[{}] {}: {}{target}{place}{detail}", e.ts, e.actor, e.action));
                    }
                }
            })
        }
        Input::Kick { nick, reason } => {
            client.call(&Request::Kick { room: current.clone(), nick, reason }).await.map(drop)
        }
        Input::Ban { mask, duration, reason } => {
            let seconds = duration.map(|d| d.as_secs());
            client.call(&Request::Ban { room: current.clone(), mask, seconds, reason }).await.map(drop)
        }
        Input::Unban(mask) => client.call(&Request::Unban { room: current.clone(), mask }).await.map(drop),
        Input::ServerBan { mask, duration, reason } => {
            let seconds = duration.map(|d| d.as_secs());
            client.call(&Request::ServerBan { mask, seconds, reason }).await.map(|_| print_line("Server ban set."))
        }
        Input::ServerUnban(mask) => {
            client.call(&Request::ServerUnban { mask }).await.map(|_| print_line("Server ban lifted."))
        }
        Input::ServerBans => client.call(&Request::ServerBans).await.map(|reply| {
            if let Reply::ServerBans { bans } = reply {
                if bans.is_empty() {
                    print_line("Nobody is banned from the server.");
                }
                for ban in bans {
                    let until = ban.until.map_or_else(|| "until lifted".to_owned(), |t| format!("until {t}"));
                    let reason = ban.reason.map(|r| format!(": {r}")).unwrap_or_default();
                    print_line(&format!("{} ({until}){reason}", ban.mask));
                }
            }
        }),
        Input::Room { register } => {
            let request = if register {
                Request::RoomRegister { room: current.clone() }
            } else {
                Request::RoomUnregister { room: current.clone() }
            };
            client.call(&request).await.map(drop)
        }
        Input::Unregister(password) => client.call(&Request::Unregister { password }).await.map(|_| {
            rooms(shared).token = None;
            print_line(&format!(
                "[{}] Your account is deleted, with your private messages; you are a guest now.",
                now()
            ));
        }),
        Input::Mute { nick, duration } => {
            let seconds = duration.map(|d| d.as_secs());
            client.call(&Request::Mute { room: current.clone(), nick, seconds }).await.map(drop)
        }
        Input::Unmute(nick) => client.call(&Request::Unmute { room: current.clone(), nick }).await.map(drop),
        Input::Op(nick) => client.call(&Request::Op { room: current.clone(), nick }).await.map(drop),
        Input::Deop(nick) => client.call(&Request::Deop { room: current.clone(), nick }).await.map(drop),
        // Remembered: after a lost connection the token logs in again.
        Input::Register(password) => client.register_remembered(&password).await.map(|(account, token)| {
            rooms(shared).token = Some(token);
            print_line(&format!(
                "[{}] {account} is now your account. Next time, log in with /login {account} PASSWORD.",
                now()
            ));
        }),
        Input::Login { name, password } => {
            client.login_remembered(name.as_deref(), &password).await.map(|(nick, token)| {
                let mut rooms = rooms(shared);
                (rooms.nick, rooms.token) = (nick.clone(), Some(token));
                print_line(&format!("[{}] You are logged in as {nick}.", now()));
            })
        }
        Input::Password { old, new } => match client.change_password(&old, &new).await {
            // The change revoked every token of the account: this connection takes a new
            // one, so that it still comes back by itself after a lost connection.
            Ok(()) => {
                rooms(shared).token = client.login_remembered(None, &new).await.ok().map(|(_, token)| token);
                print_line(&format!("[{}] Your password is changed.", now()));
                Ok(())
            }
            Err(e) => Err(e),
        },
        Input::Sessions => client.sessions().await.map(|sessions| {
            for line in tui::session_lines(&sessions) {
                print_line(&line);
            }
        }),
        Input::RevokeSession(id) => client
            .revoke_session(id)
            .await
            .map(|()| print_line(&format!("[{}] Session {id} is revoked: it no longer logs anyone in.", now()))),
        Input::Conversation { with, n } => {
            let limit = n.map_or(DEFAULT_HISTORY_LINES, |n| u32::try_from(n).unwrap_or(u32::MAX));
            client.conversation(&with, HistoryCursor::Latest, Some(limit)).await.map(|messages| {
                if messages.is_empty() {
                    print_line(&format!("No private messages with {with} yet."));
                    return;
                }
                print_line(&format!("--- Private messages with {with}: {} messages ---", messages.len()));
                for line in format::past_lines(&messages) {
                    print_line(&line);
                }
                print_line("--- End of history ---");
            })
        }
        Input::History(n) => {
            let limit = n.map_or(DEFAULT_HISTORY_LINES, |n| u32::try_from(n).unwrap_or(u32::MAX));
            client.history(current.as_deref(), HistoryCursor::Latest, Some(limit)).await.map(|(room, messages)| {
                if messages.is_empty() {
                    print_line(&format!("No history in {room} yet."));
                }
                for line in format::history_lines(&room, &messages) {
                    print_line(&line);
                }
            })
        }
        Input::Part => match current {
            None => {
                print_line("Error: you are not in a room");
                Ok(())
            }
            Some(room) => client.part(Some(&room)).await.map(|room| {
                rooms(shared).leave(&room);
                print_line(&format!("[{}] You left {room}.", now()));
            }),
        },
        Input::Nick(nick) => client.nick(&nick).await.map(|nick| {
            print_line(&format!("[{}] You are now known as {nick}.", now()));
            rooms(shared).nick = nick;
        }),
        Input::Who => match current {
            None => {
                print_line("Error: you are not in a room");
                Ok(())
            }
            Some(room) => client.who(&room).await.map(|(room, members)| {
                print_line(&format!("Users in {room} ({}): {}", members.len(), members.join(", ")));
            }),
        },
        Input::Rooms => client.rooms().await.map(|list| print_line(&format::room_list(&list))),
        Input::Help => {
            let join = "enter ROOM (it is created if nobody is there); it becomes your room";
            print!("{}", parley_proto::line::help(join, "leave the chat (also: quit, exit, q, or end of input)"));
            Ok(())
        }
        Input::Usage(usage) => {
            print_line(&format!("Usage: {usage}"));
            Ok(())
        }
        Input::Unknown(name) => {
            print_line(&format!("Error: unknown command /{name} (try /help)"));
            Ok(())
        }
        Input::Send { path, to } => {
            let audience = match (to, current) {
                (Some(nick), _) => Audience::User(nick),
                (None, Some(room)) => Audience::Room(room),
                (None, None) => {
                    print_line("Error: you are not in a room; /join one, or /send PATH NICK");
                    return None;
                }
            };
            let path = PathBuf::from(path);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut bar = StderrBar::default();
            let sent = client.send_file(&path, audience.clone(), |p| bar.show("Sending", &name, &p)).await;
            bar.finish();
            sent.map(|sent| {
                let place = match audience {
                    Audience::Room(room) => format!("in {room}"),
                    Audience::User(nick) => format!("with {nick}"),
                };
                let text = serde_json::to_string(&sent.info).unwrap_or_default();
                print_line(&format!("[{}] You {} {place}", now(), format::file_words(&text)));
            })
        }
        Input::Get { id, path } => {
            let mut bar = StderrBar::default();
            let dest = path.map(PathBuf::from);
            let fetched = client.get_file(&id, dest.as_deref(), |p| bar.show("Getting", &id, &p)).await;
            bar.finish();
            fetched.map(|got| {
                print_line(&format!(
                    "[{}] Saved {} ({}, SHA-256 verified) from {} to {}",
                    now(),
                    got.info.name,
                    parley_client::human_size(got.info.size),
                    got.from,
                    got.path.display()
                ));
            })
        }
        Input::Quit => {
            let _ = client.quit(None).await;
            return Some(Next::Exit(ExitCode::SUCCESS));
        }
    };
    match outcome {
        Ok(()) => None,
        Err(parley_client::Error::Refused { message, .. }) => {
            print_line(&format!("Error: {message}"));
            None
        }
        // A file that cannot be read or written, or a download that failed its check,
        // ends that command, not the chat.
        Err(e @ (parley_client::Error::Io(_) | parley_client::Error::Corrupt { .. })) => {
            print_line(&format!("Error: {e}"));
            None
        }
        Err(parley_client::Error::Disconnected) => {
            eprint_line("Not done: the connection to the server is lost.");
            Some(Next::Lost)
        }
        Err(e) => {
            eprint_line(&format!("Error: {e}"));
            Some(Next::Exit(ExitCode::from(SERVER_GONE)))
        }
    }
}

/// A progress bar on standard error, redrawn in place at most ten times a second.
#[derive(Default)]
struct StderrBar {
    drawn: Option<Instant>,
}

impl StderrBar {
    fn show(&mut self, verb: &str, name: &str, progress: &parley_client::Progress) {
        let due = !matches!(self.drawn, Some(at) if at.elapsed() < Duration::from_millis(100));
        if due || progress.done == progress.total {
            eprint!("\r{}\x1b[K", format::progress(verb, name, progress));
            self.drawn = Some(Instant::now());
        }
    }

    fn finish(&self) {
        if self.drawn.is_some() {
            eprintln!();
        }
    }
}

/// Prints `backlog` (what arrived while reconnecting), then events until the
/// connection ends; returns what to tell the user then. A message the catch-up after a
/// reconnect already printed is not printed again.
async fn print_events(mut events: Events, backlog: Vec<Event>, shared: Shared) -> String {
    let mut farewell = None;
    let mut backlog = backlog.into_iter();
    while let Some(event) = match backlog.next() {
        Some(event) => Some(event),
        None => events.next().await,
    } {
        let current = {
            let mut rooms = rooms(&shared);
            match &event {
                Event::Message { room, seq, .. } if rooms.shown(room, *seq) => continue,
                Event::Message { room, seq, .. } => rooms.saw(room, *seq),
                Event::NickChanged { old, new, .. } if old.eq_ignore_ascii_case(&rooms.nick) => {
                    rooms.nick.clone_from(new);
                }
                Event::Left { room, nick, reason: parley_client::LeaveReason::Kicked, .. }
                    if nick.eq_ignore_ascii_case(&rooms.nick) =>
                {
                    rooms.leave(room);
                }
                _ => {}
            }
            rooms.current()
        };
        match &event {
            Event::Shutdown { message } => farewell = Some(format!("[{}] {message}", clock(&Utc::now()))),
            Event::Closed { .. } => break,
            _ => {}
        }
        for line in format::event_lines(&event, current.as_deref()) {
            print_line(&line);
        }
    }
    farewell.unwrap_or_else(|| "Connection to the server lost.".to_owned())
}
