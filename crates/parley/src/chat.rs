//! `parley chat`: the client over the native protocol. On a terminal it is a full-screen
//! UI (`tui`); in a pipe, or with `--plain-ui`, it is the plain client here, which reads
//! the server and the keyboard at the same time (one task each) and prints classic
//! `[HH:MM:SS] name: text` lines in local time.

mod format;
mod tui;

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use chrono::Utc;
use parley_client::{Audience, Client, ErrorCode, Event, Events, HistoryCursor, Reply, Request, Transport, Trust};
use parley_proto::line::Input;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use format::{clock, eprint_line, print_line};

/// Exit status when the server goes away or refuses us.
const SERVER_GONE: u8 = 2;

/// Messages `/history` shows when not told how many.
const DEFAULT_HISTORY_LINES: u32 = 20;

/// Options of `parley chat`.
#[derive(clap::Args, Debug)]
pub(crate) struct ChatArgs {
    /// The server, HOST:PORT. Default: localhost:7780 (TLS), or localhost:7778 with
    /// --plain.
    addr: Option<String>,
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

/// What the reader of the keyboard and the printer of events share.
#[derive(Debug, Default)]
struct Rooms {
    /// The rooms we are in, the current one last.
    joined: Vec<String>,
}

impl Rooms {
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
    let addr =
        args.addr.clone().unwrap_or_else(|| if args.plain { "localhost:7778" } else { "localhost:7780" }.to_owned());
    let (client, events, trusted) = match Client::connect(&addr, &transport).await {
        Ok(connected) => connected,
        Err(e) => {
            eprint_line(&format!("Cannot connect to {addr}: {e}"));
            return Ok(ExitCode::from(SERVER_GONE));
        }
    };
    if let Some(trusted) = &trusted {
        eprint_line(&format!("Connected to {addr} over TLS: {trusted}."));
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();

    let Some(welcome) = register(&client, &mut stdin, args.name.as_deref()).await? else {
        return Ok(ExitCode::FAILURE);
    };
    if !args.plain_ui && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        let connect = tui::Connect { addr, transport };
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
    let shared: Shared = Arc::new(Mutex::new(Rooms { joined: vec![welcome.room] }));

    let printer = tokio::spawn(print_events(events, shared.clone()));
    tokio::pin!(printer);
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let line = line.context("reading standard input")?;
                let Some(line) = line else {
                    // End of input: everything typed before has been answered.
                    let _ = client.quit(None).await;
                    return Ok(ExitCode::SUCCESS);
                };
                if let Some(code) = handle(&client, &shared, &line).await {
                    return Ok(code);
                }
            }
            ended = &mut printer => {
                let message = ended.unwrap_or_else(|_| "Connection to the server lost.".to_owned());
                eprint_line(&message);
                return Ok(ExitCode::from(SERVER_GONE));
            }
        }
    }
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

/// Carries out one typed line. `Some(code)`: the chat is over.
async fn handle(client: &Client, shared: &Shared, line: &str) -> Option<ExitCode> {
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
            Some(room) => client.say(&room, &text).await.map(drop),
        },
        Input::Me(text) => match current {
            None => {
                print_line("Error: you are not in a room; /join one");
                Ok(())
            }
            Some(room) => client.act(&room, &text).await.map(drop),
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
            rooms(shared).enter(joined.room);
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
        Input::Register(password) => client.register(&password).await.map(|account| {
            print_line(&format!(
                "[{}] {account} is now your account. Next time, log in with /login {account} PASSWORD.",
                now()
            ));
        }),
        Input::Login { name, password } => client
            .login(name.as_deref(), &password)
            .await
            .map(|nick| print_line(&format!("[{}] You are logged in as {nick}.", now()))),
        Input::Password { old, new } => client
            .change_password(&old, &new)
            .await
            .map(|()| print_line(&format!("[{}] Your password is changed.", now()))),
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
        Input::Nick(nick) => {
            client.nick(&nick).await.map(|nick| print_line(&format!("[{}] You are now known as {nick}.", now())))
        }
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
            return Some(ExitCode::SUCCESS);
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
            eprintln!("Connection to the server lost.");
            Some(ExitCode::from(SERVER_GONE))
        }
        Err(e) => {
            eprint_line(&format!("Error: {e}"));
            Some(ExitCode::from(SERVER_GONE))
        }
    }
}

/// A progress bar on standard error, redrawn in place at most ten times a second.
#[derive(Default)]
struct StderrBar {
    drawn: Option<std::time::Instant>,
}

impl StderrBar {
    fn show(&mut self, verb: &str, name: &str, progress: &parley_client::Progress) {
        let due = !matches!(self.drawn, Some(at) if at.elapsed() < std::time::Duration::from_millis(100));
        if due || progress.done == progress.total {
            eprint!("\r{}\x1b[K", format::progress(verb, name, progress));
            self.drawn = Some(std::time::Instant::now());
        }
    }

    fn finish(&self) {
        if self.drawn.is_some() {
            eprintln!();
        }
    }
}

/// Prints events until the connection ends; returns what to tell the user then.
async fn print_events(mut events: Events, shared: Shared) -> String {
    let mut farewell = None;
    while let Some(event) = events.next().await {
        let current = rooms(&shared).current();
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
