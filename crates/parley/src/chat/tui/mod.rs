//! `parley chat` on a terminal: a full-screen client. Three parts run at once:
//!
//! - a thread that blocks on the terminal's input and hands each key, paste, mouse
//!   wheel or resize to the event loop (crossterm's reads block; a thread keeps them off
//!   the async runtime);
//! - the connection task (`session`), which talks to the server, reconnects and
//!   catches up, and reports [`session::Update`]s;
//! - the event loop here, the only owner of the model (`app`, `state`, `input`) and of
//!   the terminal: it applies keys and updates to the model and draws (`view`) after
//!   each batch, so an incoming message redraws the scrollback and never touches the
//!   line being typed.
//!
//! The terminal is restored on every way out: normal exit, error, SIGTERM/SIGHUP, and
//! panics (a panic hook restores it before the message is printed).

mod app;
mod input;
mod keys;
mod session;
mod state;
mod view;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Once;

use anyhow::Context as _;
use chrono::Utc;
use parley_client::{Client, Events, Trusted, Welcome};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use tokio::sync::mpsc;

use app::{App, Effect};
pub(crate) use session::{session_lines, Connect};
use state::State;

/// Commands typed but not yet taken by the connection task. Someone typing cannot fill
/// 64; if a slow server lets it fill anyway, the line is refused with a note rather
/// than the screen freezing.
const COMMAND_QUEUE: usize = 64;

/// Updates from the connection not yet drawn. The event loop drains them quickly; when
/// it falls behind, the connection task waits, which in turn slows its reading from the
/// server (back-pressure, not loss).
const UPDATE_QUEUE: usize = 1024;

/// Terminal events read ahead of the event loop; a paste arrives as one event.
const INPUT_QUEUE: usize = 256;

/// Events handled between two draws at most, so a burst (a paste without bracketed
/// paste, a busy room) costs one draw, not hundreds, while the screen still moves.
const BATCH: usize = 256;

/// How `parley chat` on a terminal behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Ring the terminal's bell on a mention or a private message.
    pub(crate) bell: bool,
    /// Take the mouse (wheel scrolling); without it the terminal's own selection works.
    pub(crate) mouse: bool,
}

/// A registered connection, handed over by `parley chat` once the server has accepted
/// the nick.
pub(crate) struct Connected {
    /// Where it goes, for reconnecting.
    pub(crate) connect: Connect,
    /// The client.
    pub(crate) client: Client,
    /// Its events.
    pub(crate) events: Events,
    /// The server's welcome.
    pub(crate) welcome: Welcome,
    /// How TLS trusted the server (`None` for plain TCP).
    pub(crate) trusted: Option<Trusted>,
}

/// How the connection is secured, in a few words for the status line.
fn security(trusted: Option<&Trusted>) -> String {
    let short = |fingerprint: &str| {
        let bytes: Vec<&str> = fingerprint.split(':').collect();
        match (bytes.get(..2), bytes.len().checked_sub(2).and_then(|from| bytes.get(from..))) {
            (Some(first), Some(last)) if bytes.len() > 4 => format!("{}…{}", first.join(":"), last.join(":")),
            _ => fingerprint.to_owned(),
        }
    };
    match trusted {
        None => "plain".to_owned(),
        Some(Trusted::Authority) => "TLS (CA)".to_owned(),
        Some(Trusted::Remembered { fingerprint } | Trusted::FirstUse { fingerprint }) => {
            format!("TLS sha256 {}", short(fingerprint))
        }
        Some(Trusted::Unchecked { fingerprint }) => format!("TLS UNVERIFIED {}", short(fingerprint)),
    }
}

/// Runs the full-screen client until the user quits.
pub(crate) async fn run(connected: Connected, options: Options) -> anyhow::Result<ExitCode> {
    let Connected { connect, client, events, welcome, trusted } = connected;
    let now = Utc::now();
    let mut state = State::new(&connect.addr, &security(trusted.as_ref()), &welcome.nick);
    let how = trusted.as_ref().map_or_else(|| "plain TCP (not encrypted)".to_owned(), ToString::to_string);
    state.info(0, now, format!("Connected to {}: {how}.", connect.addr));
    let lobby = state.joined(&welcome.room, &welcome.members, welcome.topic.as_deref(), &welcome.history);
    state.switch(lobby);
    state.info(lobby, now, format!("Welcome to the chat, {}! /help lists the commands and keys.", welcome.nick));
    if let Some(topic) = &welcome.topic {
        state.info(lobby, now, format!("Topic: {topic}"));
    }
    let mut app = App::new(state, options.bell);

    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (update_tx, mut updates) = mpsc::channel(UPDATE_QUEUE);
    let session =
        tokio::spawn(session::run(connect, client, events, welcome.nick, welcome.room, command_rx, update_tx));

    let guard = TerminalGuard::enter(options.mouse).context("cannot set up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).context("cannot use the terminal")?;
    let mut input = read_terminal();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let frame = terminal.draw(|frame| view::render(frame, &app, &view::Now::local()))?;
        // Title, status and input take three rows; the rest is scrollback.
        app.page = usize::from(frame.area.height.saturating_sub(3));
        let mut effects = tokio::select! {
            event = input.recv() => match event {
                Some(Ok(event)) => keys::action(&event).map(|action| app.act(action)).unwrap_or_default(),
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => vec![Effect::Exit],
            },
            update = updates.recv() => match update {
                Some(update) => app.update(update),
                None => vec![Effect::Exit],
            },
            () = &mut stop => vec![Effect::Exit],
        };
        for _ in 0..BATCH {
            match input.try_recv() {
                Ok(Ok(event)) => effects.extend(keys::action(&event).map(|action| app.act(action)).unwrap_or_default()),
                Ok(Err(e)) => return Err(e).context("reading the terminal"),
                Err(_) => match updates.try_recv() {
                    Ok(update) => effects.extend(app.update(update)),
                    Err(_) => break,
                },
            }
        }
        effects.extend(app.read_marks(std::time::Instant::now()));
        if carry_out(effects, &mut app, &mut terminal, &command_tx)? {
            break;
        }
    }
    drop(terminal);
    drop(guard);
    // The connection task has ended before the screen only when the user quit or when
    // it gave up; the runtime has one thread, so a task that dropped its end of the
    // update queue has also finished.
    if session.is_finished() {
        if let Ok(Some(why)) = session.await {
            eprintln!("{why}");
            return Ok(ExitCode::from(super::SERVER_GONE));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Does what the model asked; `true` when the chat is over.
fn carry_out(
    effects: Vec<Effect>,
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<std::io::Stdout>>,
    commands: &mpsc::Sender<session::Ask>,
) -> anyhow::Result<bool> {
    for effect in effects {
        match effect {
            Effect::Send(command) => match commands.try_send(session::Ask::Typed(command)) {
                Ok(()) => {}
                // The connection task is gone: nothing is left to say goodbye.
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(true),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    app.state.error(Utc::now(), "Too many commands waiting for the server; not sent.");
                }
            },
            // A marker not sent now is sent with the next one.
            Effect::MarkRead { kind, name, at } => match commands.try_send(session::Ask::MarkRead { kind, name, at }) {
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(true),
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            },
            Effect::Bell => {
                let backend = terminal.backend_mut();
                backend.write_all(b"\x07")?;
                backend.flush()?;
            }
            Effect::Redraw => terminal.clear()?,
            Effect::Exit => return Ok(true),
        }
    }
    Ok(false)
}

/// Reads the terminal on a thread of its own (crossterm's `read` blocks), ending when
/// the event loop is gone or the terminal fails.
fn read_terminal() -> mpsc::Receiver<std::io::Result<event::Event>> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    std::thread::spawn(move || loop {
        let read = event::read();
        let failed = read.is_err();
        if tx.blocking_send(read).is_err() || failed {
            return;
        }
    });
    rx
}

/// Completes on SIGTERM, SIGHUP or SIGINT, so that being killed politely, or the
/// terminal closing, still restores the terminal. (Ctrl-C in the UI is a key, not a
/// signal: raw mode turns signals from the keyboard off.)
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hangup), Ok(mut interrupt)) =
            (signal(SignalKind::terminate()), signal(SignalKind::hangup()), signal(SignalKind::interrupt()))
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hangup.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The terminal in full-screen mode for as long as it lives: raw input, the alternate
/// screen, bracketed paste and (optionally) the mouse. Dropping it restores all of it.
struct TerminalGuard;

impl TerminalGuard {
    fn enter(mouse: bool) -> std::io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        // From here on, an error still restores the terminal through the guard's drop.
        let guard = TerminalGuard;
        let mut stdout = std::io::stdout();
        execute!(stdout, EnterAlternateScreen, EnableBracketedPaste)?;
        if mouse {
            execute!(stdout, EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Puts the terminal back as the shell expects it. Safe to call more than once, and
/// when only part of the setup happened.
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), DisableMouseCapture, DisableBracketedPaste, LeaveAlternateScreen, cursor::Show);
}

/// Restores the terminal before a panic's message is printed, so that the message is
/// readable and the shell usable.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_how_the_server_is_trusted() {
        assert_eq!(security(None), "plain");
        assert_eq!(security(Some(&Trusted::Authority)), "TLS (CA)");
        let fingerprint = "A6:44:A3:15:00:11:68:35".to_owned();
        assert_eq!(security(Some(&Trusted::Remembered { fingerprint: fingerprint.clone() })), "TLS sha256 A6:44…68:35");
        assert_eq!(security(Some(&Trusted::Unchecked { fingerprint })), "TLS UNVERIFIED A6:44…68:35");
    }
}
