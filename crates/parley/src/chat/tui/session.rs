//! The connection to the server, on a task of its own so that the screen never waits
//! for the network: it carries out the user's commands one at a time (in the order
//! typed, so messages keep their order), forwards the server's events, measures the
//! lag, and when the connection drops it reconnects with backoff (to the same server or
//! another node of its cluster: `chat::failover`), re-enters the rooms and fetches what
//! was said meanwhile. It reports everything to the screen as
//! [`Update`]s; the screen's model drops what it already has by seq, so a message that
//! arrives both live and in a catch-up page shows once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parley_client::{Client, Event, Events, HistoryCursor, PastMessage, Place, Reply, Request, Transport};
use parley_proto::line::Input;
use tokio::sync::mpsc;

use super::super::failover::{self, during, Servers};
use super::super::format;
use super::state::Link;

/// How often the lag is measured. A ping is tiny; every 10 s keeps the status line
/// current without adding traffic anyone would notice.
const PING_EVERY: Duration = Duration::from_secs(10);

/// A ping not answered this long means the connection is dead even if TCP has not
/// noticed yet (a laptop that slept, a network that went away): reconnect.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How long `/quit` waits for the server's goodbye before leaving anyway.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// Messages fetched per catch-up page, and the most pages fetched per room after a
/// reconnect; past that the user is told to use `/history`, so a client back from a
/// week away does not download a week of a busy room.
const CATCH_UP_PAGE: u32 = 200;
const CATCH_UP_PAGES: usize = 10;

/// Messages `/history` fetches when not told how many.
const DEFAULT_HISTORY: u32 = 20;

/// Where to reconnect.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    /// `HOST:PORT` of the server connected now.
    pub(crate) addr: String,
    /// Every server to try after a drop: the ones given, then the cluster's nodes.
    pub(crate) servers: Servers,
    /// Plain or TLS, and whom to trust.
    pub(crate) transport: Transport,
    /// How long after a drop to keep trying before giving up.
    pub(crate) give_up: Duration,
}

/// A line the user typed, parsed, with the room on screen (commands such as `/who` and
/// plain text apply to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// What to do.
    pub(crate) input: Input,
    /// The room on screen, if the screen shows a room.
    pub(crate) room: Option<String>,
}

/// What the screen asks of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A line the user typed.
    Typed(Command),
    /// The user has seen a room or conversation up to `at`: move the read marker (the
    /// server tells the user's other sessions).
    MarkRead {
        /// A room, or a conversation.
        kind: super::state::Kind,
        /// The room's name, or the other user's nick.
        name: String,
        /// The newest message shown.
        at: DateTime<Utc>,
    },
}

/// What the connection tells the screen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Update {
    /// The connection's state changed.
    Link(Link),
    /// The round trip of a ping.
    Lag(Duration),
    /// Our nick (after `/nick`, `/login`, or a reconnect).
    Nick(String),
    /// The resume token the connection logs in with after a drop (`None`: none, log in
    /// as a guest under the same nick).
    Session(Option<String>),
    /// We are in a room: entered now (`show`: the user asked, so show it), or again
    /// after a reconnect.
    Joined {
        /// The room.
        room: String,
        /// Who is there.
        members: Vec<String>,
        /// Its topic.
        topic: Option<String>,
        /// Its latest messages.
        history: Vec<PastMessage>,
        /// Where we read up to in it (on any session).
        read: Option<DateTime<Utc>>,
        /// Bring it on screen.
        show: bool,
    },
    /// We left a room.
    Parted {
        /// The room.
        room: String,
    },
    /// An event from the server.
    Event(Event),
    /// Our message in a room, as the server numbered it.
    Said {
        /// The room.
        room: String,
        /// Its seq.
        seq: u64,
        /// The server's time.
        at: DateTime<Utc>,
        /// Text or an action.
        kind: parley_client::Kind,
        /// The text.
        text: String,
    },
    /// Our private message.
    Whispered {
        /// The receiver, as they spell their nick.
        to: String,
        /// The server's time.
        at: DateTime<Utc>,
        /// The text.
        text: String,
    },
    /// Messages said in a room while we were disconnected.
    Missed {
        /// The room.
        room: String,
        /// The messages, oldest first.
        messages: Vec<PastMessage>,
    },
    /// A page of a room's history the user asked for.
    History {
        /// The room.
        room: String,
        /// The messages, oldest first.
        messages: Vec<PastMessage>,
    },
    /// A page of a private conversation the user asked for.
    Conversation {
        /// The other user.
        with: String,
        /// The messages, oldest first (their seqs are the private numbering).
        messages: Vec<PastMessage>,
    },
    /// The members of a room (`/who`).
    Members {
        /// The room.
        room: String,
        /// Who.
        members: Vec<String>,
    },
    /// A room's topic (`/topic`).
    Topic {
        /// The room.
        room: String,
        /// The topic.
        topic: Option<String>,
    },
    /// Lines of an answer (search results, the room list, confirmations).
    Notes(Vec<String>),
    /// A command failed.
    Failed(String),
    /// A file transfer's progress line; `None` when it is over.
    Transfer(Option<String>),
    /// `/quit` is done: the screen may close.
    Bye,
}

/// What the connection task remembers across reconnects: who we are, where we are,
/// and the last message seen in each room.
#[derive(Debug, Clone, Default)]
struct Memory {
    nick: String,
    /// The account's resume token, after `/login` or `/register`: a reconnect logs in
    /// with it instead of asking for the password again.
    token: Option<String>,
    /// The rooms we are in, in the order entered.
    rooms: Vec<String>,
    /// The highest seq seen per room (key: the room's name in lower case).
    last: HashMap<String, u64>,
}

impl Memory {
    fn saw(&mut self, room: &str, seq: u64) {
        let last = self.last.entry(room.to_ascii_lowercase()).or_insert(0);
        *last = (*last).max(seq);
    }

    fn last_seen(&self, room: &str) -> u64 {
        self.last.get(&room.to_ascii_lowercase()).copied().unwrap_or(0)
    }

    fn entered(&mut self, room: &str) {
        if !self.rooms.iter().any(|r| r.eq_ignore_ascii_case(room)) {
            self.rooms.push(room.to_owned());
        }
    }

    fn left(&mut self, room: &str) {
        self.rooms.retain(|r| !r.eq_ignore_ascii_case(room));
    }

    /// Learns from what is about to be shown.
    fn learn(&mut self, update: &Update) {
        match update {
            Update::Nick(nick) => self.nick.clone_from(nick),
            Update::Session(token) => self.token.clone_from(token),
            Update::Joined { room, history, .. } => {
                self.entered(room);
                history.iter().for_each(|m| self.saw(room, m.seq));
            }
            Update::Parted { room } => self.left(room),
            Update::Said { room, seq, .. } => self.saw(room, *seq),
            Update::Missed { room, messages } | Update::History { room, messages } => {
                messages.iter().for_each(|m| self.saw(room, m.seq));
            }
            Update::Event(Event::Message { room, seq, .. }) => self.saw(room, *seq),
            Update::Event(Event::NickChanged { old, new, .. }) if old.eq_ignore_ascii_case(&self.nick) => {
                self.nick.clone_from(new);
            }
            Update::Event(Event::Left { room, nick, reason: parley_client::LeaveReason::Kicked, .. })
                if nick.eq_ignore_ascii_case(&self.nick) =>
            {
                self.left(room);
            }
            _ => {}
        }
    }
}

/// How the connection ended.
enum Ended {
    /// The user quit, or the screen is gone: stop.
    Stop,
    /// It dropped: reconnect.
    Lost(String),
}

/// Runs the connection until the user quits or the screen goes away (`None`), or no
/// server answered in time after a drop (`Some`: what to tell the user). `client` and
/// `events` are the first connection, already registered as `nick` in `room`.
pub(crate) async fn run(
    mut connect: Connect,
    mut client: Client,
    mut events: Events,
    nick: String,
    room: String,
    mut commands: mpsc::Receiver<Ask>,
    updates: mpsc::Sender<Update>,
) -> Option<String> {
    let mut memory = Memory { nick, token: None, rooms: vec![room], last: HashMap::new() };
    loop {
        let reason = match serve(&client, &mut events, &mut commands, &updates, &mut memory).await {
            Ended::Stop => return None,
            Ended::Lost(reason) => reason,
        };
        match reconnect(&mut connect, &mut commands, &updates, &mut memory, reason).await {
            Reconnected::Yes(next, next_events) => {
                client = next;
                events = next_events;
            }
            Reconnected::Stop => return None,
            Reconnected::GaveUp(why) => return Some(why),
        }
    }
}

/// How a reconnect ended.
enum Reconnected {
    /// On a new connection.
    Yes(Client, Events),
    /// The user quit, or the screen is gone.
    Stop,
    /// No server answered in time.
    GaveUp(String),
}

/// Hands an update to the screen, learning from it first. `Err`: the screen is gone.
async fn show(updates: &mpsc::Sender<Update>, memory: &mut Memory, update: Update) -> Result<(), ()> {
    memory.learn(&update);
    updates.send(update).await.map_err(drop)
}

/// Forwards one event; `Some` when it ends the connection.
async fn forward(event: Event, updates: &mpsc::Sender<Update>, memory: &mut Memory) -> Option<Ended> {
    if let Event::Closed { reason } = event {
        return Some(Ended::Lost(reason));
    }
    show(updates, memory, Update::Event(event)).await.err().map(|()| Ended::Stop)
}

async fn forward_all(events: Vec<Event>, updates: &mpsc::Sender<Update>, memory: &mut Memory) -> Option<Ended> {
    for event in events {
        if let Some(ended) = forward(event, updates, memory).await {
            return Some(ended);
        }
    }
    None
}

/// One connection's life: events, commands and pings until it ends.
async fn serve(
    client: &Client,
    events: &mut Events,
    commands: &mut mpsc::Receiver<Ask>,
    updates: &mpsc::Sender<Update>,
    memory: &mut Memory,
) -> Ended {
    let mut pings = tokio::time::interval(PING_EVERY);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ended::Lost("the connection closed".to_owned()) };
                if let Some(ended) = forward(event, updates, memory).await {
                    return ended;
                }
            }
            request = commands.recv() => {
                let command = match request {
                    None => return Ended::Stop,
                    Some(Ask::Typed(command)) => command,
                    Some(Ask::MarkRead { kind, name, at }) => {
                        let mut backlog = Vec::new();
                        let place = match kind {
                            super::state::Kind::Private => Place::With(&name),
                            _ => Place::Room(&name),
                        };
                        // A marker that cannot be set is no news for the user: the
                        // next one covers it.
                        if let Err(e) = during(client.mark_read(place, at), events, &mut backlog).await {
                            tracing::debug!("the read marker of {name} was not set: {e}");
                        }
                        if let Some(ended) = forward_all(backlog, updates, memory).await {
                            return ended;
                        }
                        continue;
                    }
                };
                if command.input == Input::Quit {
                    let _ = tokio::time::timeout(QUIT_WAIT, client.quit(None)).await;
                    let _ = updates.send(Update::Bye).await;
                    return Ended::Stop;
                }
                if matches!(command.input, Input::Send { .. } | Input::Get { .. }) {
                    // A transfer may take minutes: it runs beside the chat, not in the
                    // queue of commands.
                    tokio::spawn(transfer(client.clone(), command, updates.clone()));
                    continue;
                }
                let mut backlog = Vec::new();
                let outcome = during(execute(client, command), events, &mut backlog).await;
                for update in outcome {
                    if show(updates, memory, update).await.is_err() {
                        return Ended::Stop;
                    }
                }
                if let Some(ended) = forward_all(backlog, updates, memory).await {
                    return ended;
                }
            }
            _ = pings.tick() => {
                let started = Instant::now();
                let mut backlog = Vec::new();
                match tokio::time::timeout(PING_TIMEOUT, during(client.ping(), events, &mut backlog)).await {
                    Ok(Ok(())) => {
                        if show(updates, memory, Update::Lag(started.elapsed())).await.is_err() {
                            return Ended::Stop;
                        }
                    }
                    // The connection is closing; its `Closed` event says why.
                    Ok(Err(_)) => {}
                    Err(_) => {
                        let _ = forward_all(backlog, updates, memory).await;
                        return Ended::Lost(format!("no answer to a ping in {} s", PING_TIMEOUT.as_secs()));
                    }
                }
                if let Some(ended) = forward_all(backlog, updates, memory).await {
                    return ended;
                }
            }
        }
    }
}

/// Tries every server, round after round with a growing wait, until one takes us back,
/// the user quits, or `connect.give_up` has passed since the drop. Commands typed
/// meanwhile are refused with a word of explanation.
async fn reconnect(
    connect: &mut Connect,
    commands: &mut mpsc::Receiver<Ask>,
    updates: &mpsc::Sender<Update>,
    memory: &mut Memory,
    mut reason: String,
) -> Reconnected {
    if connect.give_up.is_zero() {
        return Reconnected::GaveUp(format!("Connection to the server lost ({reason})."));
    }
    let lost = Instant::now();
    let mut announced: Vec<String> = Vec::new();
    for round in 0_u32.. {
        let link = Update::Link(Link::Reconnecting { attempt: round + 1, reason: reason.clone() });
        if updates.send(link).await.is_err() {
            return Reconnected::Stop;
        }
        if round > 0 {
            let wait = failover::backoff(round);
            if lost.elapsed() + wait > connect.give_up {
                break;
            }
            if let Some(stop) = pause(wait, commands, updates).await {
                return stop;
            }
        }
        for addr in connect.servers.all() {
            if !announced.contains(&addr) {
                if updates.send(Update::Notes(vec![format!("Reconnecting to {addr}…")])).await.is_err() {
                    return Reconnected::Stop;
                }
                announced.push(addr.clone());
            }
            match resume(&addr, &connect.transport, updates, memory).await {
                Ok(Some((client, events, nodes))) => {
                    connect.servers.learn(&nodes);
                    connect.addr = addr;
                    if updates.send(Update::Link(Link::Connected)).await.is_err() {
                        return Reconnected::Stop;
                    }
                    return Reconnected::Yes(client, events);
                }
                Ok(None) => return Reconnected::Stop,
                Err(e) => reason = format!("{addr}: {e}"),
            }
        }
    }
    Reconnected::GaveUp(format!("No server answered within {} s ({reason}); giving up.", connect.give_up.as_secs()))
}

/// Waits `wait` between two rounds of attempts, answering the commands typed meanwhile;
/// `Some` when the user quit or the screen is gone.
async fn pause(
    wait: Duration,
    commands: &mut mpsc::Receiver<Ask>,
    updates: &mpsc::Sender<Update>,
) -> Option<Reconnected> {
    let wait = tokio::time::sleep(wait);
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return None,
            command = commands.recv() => match command {
                None => return Some(Reconnected::Stop),
                Some(Ask::Typed(Command { input: Input::Quit, .. })) => {
                    let _ = updates.send(Update::Bye).await;
                    return Some(Reconnected::Stop);
                }
                // Sent again with the next message seen after the reconnect.
                Some(Ask::MarkRead { .. }) => {}
                Some(Ask::Typed(_)) => {
                    let refusal = "Not connected to the server; reconnecting. Try again in a moment.";
                    if updates.send(Update::Failed(refusal.to_owned())).await.is_err() {
                        return Some(Reconnected::Stop);
                    }
                }
            },
        }
    }
}

/// Connects to `addr`, registers under the same nick, re-enters the rooms and catches
/// up on each; with the connection come the cluster's nodes its welcome listed.
/// `Ok(None)`: the screen went away meanwhile.
async fn resume(
    addr: &str,
    transport: &Transport,
    updates: &mpsc::Sender<Update>,
    memory: &mut Memory,
) -> Result<Option<(Client, Events, Vec<String>)>, parley_client::Error> {
    let (client, mut events, _) = Client::connect(addr, transport).await?;
    let mut backlog = Vec::new();
    let welcome = match memory.token.clone() {
        // Logged in with the account's token: no password asked again.
        Some(token) => match during(client.hello_token(&token), &mut events, &mut backlog).await {
            Err(parley_client::Error::Refused { code: parley_client::ErrorCode::BadToken, .. }) => {
                let ended = "Your session has ended (revoked, expired, or the password changed): you are a guest \
                             now; /login again.";
                let Some(()) = show(updates, memory, Update::Session(None)).await.ok() else { return Ok(None) };
                let Some(()) = show(updates, memory, Update::Failed(ended.to_owned())).await.ok() else {
                    return Ok(None);
                };
                during(client.hello(&memory.nick), &mut events, &mut backlog).await?
            }
            answer => answer?,
        },
        None => during(client.hello(&memory.nick), &mut events, &mut backlog).await?,
    };
    let Some(()) = show(updates, memory, Update::Nick(welcome.nick.clone())).await.ok() else { return Ok(None) };
    let Some(()) = show(updates, memory, Update::Notes(vec![format!("Connected to {addr}.")])).await.ok() else {
        return Ok(None);
    };
    let nodes = welcome.nodes;
    let rooms = memory.rooms.clone();
    let mut entered = Vec::new();
    if rooms.iter().any(|r| r.eq_ignore_ascii_case(&welcome.room)) {
        entered.push(Update::Joined {
            room: welcome.room.clone(),
            members: welcome.members,
            topic: welcome.topic,
            history: welcome.history,
            read: None,
            show: false,
        });
    } else {
        // The server puts everyone in its first room; the user had left it.
        let _ = during(client.part(Some(&welcome.room)), &mut events, &mut backlog).await;
    }
    for room in rooms.iter().filter(|r| !r.eq_ignore_ascii_case(&welcome.room)) {
        match during(client.join(room), &mut events, &mut backlog).await {
            Ok(joined) => entered.push(Update::Joined {
                room: joined.room,
                members: joined.members,
                topic: joined.topic,
                history: joined.history,
                read: joined.read,
                show: false,
            }),
            Err(parley_client::Error::Refused { message, .. }) => {
                memory.left(room);
                let refusal = Update::Failed(format!("Could not enter {room} again: {message}"));
                if show(updates, memory, refusal).await.is_err() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    for joined in entered {
        let Update::Joined { room, .. } = &joined else { continue };
        // What was missed first (counted unread), then the room's state; the tail of
        // history that came with the join is mostly already there and is dropped by seq.
        let room = room.clone();
        let mut after = memory.last_seen(&room);
        let mut pages = 0;
        loop {
            let page = during(
                client.history(Some(&room), HistoryCursor::After(after), Some(CATCH_UP_PAGE)),
                &mut events,
                &mut backlog,
            )
            .await?;
            let (_, messages) = page;
            let full = messages.len() >= CATCH_UP_PAGE as usize;
            after = messages.last().map_or(after, |m| m.seq);
            if !messages.is_empty()
                && show(updates, memory, Update::Missed { room: room.clone(), messages }).await.is_err()
            {
                return Ok(None);
            }
            pages += 1;
            if !full {
                break;
            }
            if pages == CATCH_UP_PAGES {
                let more = format!("More was said in {room} while you were away; /history N shows it.");
                if show(updates, memory, Update::Notes(vec![more])).await.is_err() {
                    return Ok(None);
                }
                break;
            }
        }
        if show(updates, memory, joined).await.is_err() {
            return Ok(None);
        }
    }
    // Should this connection have ended already, or the screen be gone, the next step
    // (waiting on its events or on the screen's commands) finds out.
    let _ = forward_all(backlog, updates, memory).await;
    Ok(Some((client, events, nodes)))
}

/// Carries out `/send` or `/get`, reporting progress on the status line (at most ten
/// times a second) and the outcome in the scrollback.
async fn transfer(client: Client, command: Command, updates: mpsc::Sender<Update>) {
    let mut drawn: Option<Instant> = None;
    let mut report = |verb: &str, name: &str, p: parley_client::Progress| {
        if !matches!(drawn, Some(at) if at.elapsed() < Duration::from_millis(100)) {
            drawn = Some(Instant::now());
            // A full queue only skips a frame of the progress bar.
            let _ = updates.try_send(Update::Transfer(Some(format::progress(verb, name, &p))));
        }
    };
    let outcome = match command.input {
        Input::Send { path, to } => {
            let audience = match (to, command.room) {
                (Some(nick), _) => parley_client::Audience::User(nick),
                (None, Some(room)) => parley_client::Audience::Room(room),
                (None, None) => {
                    let _ = updates.send(Update::Failed("You are not in a room; /send PATH NICK.".into())).await;
                    return;
                }
            };
            let path = std::path::PathBuf::from(path);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            client.send_file(&path, audience.clone(), |p| report("Sending", &name, p)).await.map(|sent| {
                let text = serde_json::to_string(&sent.info).unwrap_or_default();
                match audience {
                    parley_client::Audience::Room(room) => vec![Update::Said {
                        room,
                        seq: sent.seq,
                        at: Utc::now(),
                        kind: parley_client::Kind::File,
                        text,
                    }],
                    parley_client::Audience::User(to) => {
                        vec![Update::Notes(vec![format!("You {} with {to}", format::file_words(&text))])]
                    }
                }
            })
        }
        Input::Get { id, path } => {
            let dest = path.map(std::path::PathBuf::from);
            client.get_file(&id, dest.as_deref(), |p| report("Getting", &id, p)).await.map(|got| {
                vec![Update::Notes(vec![format!(
                    "Saved {} ({}, SHA-256 verified) from {} to {}",
                    got.info.name,
                    parley_client::human_size(got.info.size),
                    got.from,
                    got.path.display()
                )])]
            })
        }
        _ => return,
    };
    let _ = updates.send(Update::Transfer(None)).await;
    let shown = outcome.unwrap_or_else(|e| vec![Update::Failed(format!("Error: {e}"))]);
    for update in shown {
        let _ = updates.send(update).await;
    }
}

/// Carries out one command; returns what to show.
async fn execute(client: &Client, command: Command) -> Vec<Update> {
    let Command { input, room } = command;
    let not_in_room = || vec![Update::Failed("You are not in a room; /join one.".to_owned())];
    let outcome: Result<Vec<Update>, parley_client::Error> = match input {
        // Run by `transfer`, beside the command queue.
        Input::Send { .. } | Input::Get { .. } => return Vec::new(),
        Input::Say(text) => match room {
            None => return not_in_room(),
            Some(room) => client
                .say(&room, &text)
                .await
                .map(|(seq, at)| vec![Update::Said { room, seq, at, kind: parley_client::Kind::Text, text }]),
        },
        Input::Me(text) => match room {
            None => return not_in_room(),
            Some(room) => client
                .act(&room, &text)
                .await
                .map(|(seq, at)| vec![Update::Said { room, seq, at, kind: parley_client::Kind::Action, text }]),
        },
        Input::Away(message) => {
            client.call(&Request::Away { message }).await.map(|reply| vec![Update::Notes(format::reply_lines(&reply))])
        }
        Input::Whois(nick) => {
            client.call(&Request::Whois { nick }).await.map(|reply| vec![Update::Notes(format::reply_lines(&reply))])
        }
        Input::Invite(nick) => client
            .call(&Request::Invite { room: room.clone(), nick })
            .await
            .map(|reply| vec![Update::Notes(format::reply_lines(&reply))]),
        Input::Msg { to, text } => client
            .request(&Request::Whisper { to: to.clone(), reply_to: None, tags: None }, text.as_bytes())
            .await
            .map(|reply| match reply {
                Reply::Whispered { to, ts, .. } => {
                    let at = DateTime::parse_from_rfc3339(&ts).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc));
                    vec![Update::Whispered { to, at, text }]
                }
                _ => vec![Update::Whispered { to, at: Utc::now(), text }],
            }),
        Input::Join(name) => client.join(&name).await.map(|joined| {
            vec![Update::Joined {
                room: joined.room,
                members: joined.members,
                topic: joined.topic,
                history: joined.history,
                read: joined.read,
                show: true,
            }]
        }),
        Input::Part => match room {
            None => return not_in_room(),
            Some(room) => client.part(Some(&room)).await.map(|room| vec![Update::Parted { room }]),
        },
        Input::Nick(nick) => client
            .nick(&nick)
            .await
            .map(|nick| vec![Update::Notes(vec![format!("You are now known as {nick}.")]), Update::Nick(nick)]),
        Input::Who => match room {
            None => return not_in_room(),
            Some(room) => client.who(&room).await.map(|(room, members)| {
                let line = format!("Users in {room} ({}): {}", members.len(), members.join(", "));
                vec![Update::Members { room, members }, Update::Notes(vec![line])]
            }),
        },
        Input::Rooms => client.rooms().await.map(|list| vec![Update::Notes(vec![format::room_list(&list)])]),
        Input::History(n) => {
            let limit = n.map_or(DEFAULT_HISTORY, |n| u32::try_from(n).unwrap_or(u32::MAX));
            client.history(room.as_deref(), HistoryCursor::Latest, Some(limit)).await.map(|(room, messages)| {
                let note = match (messages.first(), messages.last()) {
                    (Some(first), Some(last)) => {
                        format!("History of {room}: {} messages, #{} to #{}.", messages.len(), first.seq, last.seq)
                    }
                    _ => format!("No history in {room} yet."),
                };
                vec![Update::History { room, messages }, Update::Notes(vec![note])]
            })
        }
        Input::Conversation { with, n } => {
            let limit = n.map_or(DEFAULT_HISTORY, |n| u32::try_from(n).unwrap_or(u32::MAX));
            client.conversation(&with, HistoryCursor::Latest, Some(limit)).await.map(|messages| {
                if messages.is_empty() {
                    vec![Update::Notes(vec![format!("No private messages with {with} yet.")])]
                } else {
                    vec![Update::Conversation { with, messages }]
                }
            })
        }
        Input::Search(query) => client.search(&query, None).await.map(|found| {
            if found.is_empty() {
                return vec![Update::Notes(vec![format!("No messages found for \"{query}\".")])];
            }
            let lines = found
                .iter()
                .flat_map(|(room, message)| {
                    let place =
                        room.as_ref().map_or_else(|| "[private]".to_owned(), |r| format!("{r} #{}", message.seq));
                    let stamp = message.at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S");
                    let from = message.from.clone();
                    message
                        .text
                        .lines()
                        .map(move |part| format!("[{stamp}] {place} {from}: {part}"))
                        .collect::<Vec<_>>()
                })
                .collect();
            vec![Update::Notes(lines)]
        }),
        Input::Context(seq) => {
            let around = HistoryCursor::Before(seq.saturating_add(6));
            client
                .history(room.as_deref(), around, Some(11))
                .await
                .map(|(room, messages)| vec![Update::Notes(format::history_lines(&room, &messages))])
        }
        Input::Delete { seq, reason } => match room {
            None => return not_in_room(),
            // The window shows the deletion when the server's event arrives.
            Some(room) => client.call(&Request::Delete { room, seq, reason }).await.map(|_| Vec::new()),
        },
        Input::Topic(topic) => {
            client.call(&Request::Topic { room: room.clone(), topic }).await.map(|reply| match reply {
                Reply::Topic { room, topic, by, .. } => {
                    let line = match (&topic, by) {
                        (Some(topic), by) => format!("Topic of {room}: {topic} (set by {})", by.unwrap_or_default()),
                        (None, _) => format!("{room} has no topic."),
                    };
                    vec![Update::Topic { room, topic }, Update::Notes(vec![line])]
                }
                _ => Vec::new(),
            })
        }
        Input::Audit(n) => {
            let limit = n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            client.call(&Request::Audit { limit }).await.map(|reply| match reply {
                Reply::Audit { entries } => {
                    let lines = entries
                        .into_iter()
                        .map(|e| {
                            let place = e.room.map(|r| format!(" in {r}")).unwrap_or_default();
                            let target = e.target.map(|t| format!(" {t}")).unwrap_or_default();
                            let detail = e.detail.map(|d| format!(" ({d})")).unwrap_or_default();
                            format!("[{}] {}: {}{target}{place}{detail}", e.ts, e.actor, e.action)
                        })
                        .collect();
                    vec![Update::Notes(lines)]
                }
                _ => Vec::new(),
            })
        }
        Input::Kick { nick, reason } => client.call(&Request::Kick { room, nick, reason }).await.map(|_| Vec::new()),
        Input::Ban { mask, duration, reason } => {
            let seconds = duration.map(|d| d.as_secs());
            client.call(&Request::Ban { room, mask, seconds, reason }).await.map(|_| Vec::new())
        }
        Input::Unban(mask) => client.call(&Request::Unban { room, mask }).await.map(|_| Vec::new()),
        Input::ServerBan { mask, duration, reason } => {
            let seconds = duration.map(|d| d.as_secs());
            let request = Request::ServerBan { mask, seconds, reason };
            client.call(&request).await.map(|_| vec![Update::Notes(vec!["Server ban set.".to_owned()])])
        }
        Input::ServerUnban(mask) => client
            .call(&Request::ServerUnban { mask })
            .await
            .map(|_| vec![Update::Notes(vec!["Server ban lifted.".to_owned()])]),
        Input::ServerBans => client.call(&Request::ServerBans).await.map(|reply| match reply {
            Reply::ServerBans { bans } if bans.is_empty() => {
                vec![Update::Notes(vec!["Nobody is banned from the server.".to_owned()])]
            }
            Reply::ServerBans { bans } => {
                let lines = bans
                    .into_iter()
                    .map(|ban| {
                        let until = ban.until.map_or_else(|| "until lifted".to_owned(), |t| format!("until {t}"));
                        let reason = ban.reason.map(|r| format!(": {r}")).unwrap_or_default();
                        format!("{} ({until}){reason}", ban.mask)
                    })
                    .collect();
                vec![Update::Notes(lines)]
            }
            _ => Vec::new(),
        }),
        Input::Room { register } => {
            let request = if register { Request::RoomRegister { room } } else { Request::RoomUnregister { room } };
            client.call(&request).await.map(|_| Vec::new())
        }
        Input::Unregister(password) => client.call(&Request::Unregister { password }).await.map(|_| {
            vec![
                Update::Notes(vec![
                    "Your account is deleted, with your private messages; you are a guest now.".to_owned()
                ]),
                Update::Session(None),
            ]
        }),
        Input::Mute { nick, duration } => {
            let seconds = duration.map(|d| d.as_secs());
            client.call(&Request::Mute { room, nick, seconds }).await.map(|_| Vec::new())
        }
        Input::Unmute(nick) => client.call(&Request::Unmute { room, nick }).await.map(|_| Vec::new()),
        Input::Op(nick) => client.call(&Request::Op { room, nick }).await.map(|_| Vec::new()),
        Input::Deop(nick) => client.call(&Request::Deop { room, nick }).await.map(|_| Vec::new()),
        Input::Register(password) => client.register_remembered(&password).await.map(|(account, token)| {
            vec![
                Update::Notes(vec![format!(
                    "{account} is now your account. Next time, log in with /login {account} PASSWORD."
                )]),
                Update::Session(Some(token)),
            ]
        }),
        // Remembered: after a dropped connection the token logs in again.
        Input::Login { name, password } => {
            client.login_remembered(name.as_deref(), &password).await.map(|(nick, token)| {
                vec![
                    Update::Notes(vec![format!("You are logged in as {nick}.")]),
                    Update::Nick(nick),
                    Update::Session(Some(token)),
                ]
            })
        }
        Input::Password { old, new } => match client.change_password(&old, &new).await {
            // The change revoked every token of the account: this connection takes a new
            // one, so that it still comes back by itself after a drop.
            Ok(()) => Ok(match client.login_remembered(None, &new).await {
                Ok((_, token)) => {
                    vec![Update::Notes(vec!["Your password is changed.".to_owned()]), Update::Session(Some(token))]
                }
                Err(_) => vec![Update::Notes(vec!["Your password is changed.".to_owned()]), Update::Session(None)],
            }),
            Err(e) => Err(e),
        },
        Input::Sessions => client.sessions().await.map(|sessions| vec![Update::Notes(session_lines(&sessions))]),
        Input::RevokeSession(id) => client
            .revoke_session(id)
            .await
            .map(|()| vec![Update::Notes(vec![format!("Session {id} is revoked: it no longer logs anyone in.")])]),
        // The screen answers these itself and never sends them.
        Input::Help | Input::Usage(_) | Input::Unknown(_) | Input::Quit => Ok(Vec::new()),
    };
    match outcome {
        Ok(updates) => updates,
        Err(parley_client::Error::Refused { message, .. }) => vec![Update::Failed(message)],
        Err(parley_client::Error::Disconnected) => {
            vec![Update::Failed("Not sent: the connection to the server is lost.".to_owned())]
        }
        Err(e) => vec![Update::Failed(e.to_string())],
    }
}

/// `/sessions` as lines.
pub(crate) fn session_lines(sessions: &[parley_client::SessionEntry]) -> Vec<String> {
    if sessions.is_empty() {
        return vec!["Your account stays logged in nowhere: no client holds a session token.".to_owned()];
    }
    let mut lines = vec!["Where your account stays logged in, most recent first (/sessions revoke ID):".to_owned()];
    for s in sessions {
        let this = if s.current { " (this one)" } else { "" };
        let description = parley_proto::text::printable_line(&s.description);
        // RFC 3339 in UTC, shown to the minute: `2026-11-25 14:30`.
        let minute = |ts: &str| ts.get(..16).unwrap_or(ts).replace('T', " ");
        lines.push(format!(
            "{:>4}{this} used {} UTC, since {}: {description}",
            s.id,
            minute(&s.last_used),
            minute(&s.created)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_follows_rooms_nick_and_the_last_message_seen() {
        let mut memory = Memory { nick: "ann".into(), rooms: vec!["lobby".into()], ..Memory::default() };
        let at = Utc::now();
        let message = |seq| Event::Message {
            room: "Lobby".into(),
            from: "bob".into(),
            seq,
            ts: at,
            kind: parley_client::Kind::Text,
            text: "x".into(),
        };
        memory.learn(&Update::Event(message(7)));
        memory.learn(&Update::Event(message(5)));
        memory.learn(&Update::Said {
            room: "lobby".into(),
            seq: 9,
            at,
            kind: parley_client::Kind::Text,
            text: "y".into(),
        });
        assert_eq!(memory.last_seen("LOBBY"), 9);
        let history =
            vec![PastMessage { seq: 3, from: "bob".into(), at, kind: parley_client::Kind::Text, text: "z".into() }];
        memory.learn(&Update::Joined {
            room: "dev".into(),
            members: vec![],
            topic: None,
            history,
            read: None,
            show: true,
        });
        assert_eq!((memory.rooms.clone(), memory.last_seen("dev")), (vec!["lobby".to_owned(), "dev".to_owned()], 3));
        memory.learn(&Update::Event(Event::NickChanged { old: "ANN".into(), new: "anna".into(), ts: at }));
        memory.learn(&Update::Event(Event::Left {
            room: "dev".into(),
            nick: "anna".into(),
            ts: at,
            reason: parley_client::LeaveReason::Kicked,
            detail: None,
        }));
        assert_eq!((memory.nick.as_str(), memory.rooms.clone()), ("anna", vec!["lobby".to_owned()]));
    }
}
