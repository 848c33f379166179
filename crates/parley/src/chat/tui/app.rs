//! What the keys and the connection's updates do to the screen's model: the one place
//! that decides, for instance, that text typed in a private window is a private
//! message, or that `/help` opens the overlay instead of asking the server. No terminal
//! and no network here: effects on the outside world are returned as [`Effect`]s.

use chrono::Utc;
use parley_proto::line::Input;

use super::input::{Candidates, Editor};
use super::keys::{Action, KEYS};
use super::session::{Command, Update};
use super::state::{Attention, Kind, Link, State, Words};

/// Lines the mouse wheel scrolls per step.
const WHEEL_LINES: isize = 3;

/// While a room stays on screen, its read marker is sent at most this often (a busy
/// room would otherwise cost a request per message); switching windows sends at once.
const MARK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What the event loop must do outside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Hand a command to the connection.
    Send(Command),
    /// Tell the server the user has read a room or conversation up to `at`.
    MarkRead {
        /// A room, or a conversation.
        kind: Kind,
        /// Its name: the room's, or the other user's nick.
        name: String,
        /// The newest message on screen.
        at: chrono::DateTime<Utc>,
    },
    /// Ring the terminal's bell.
    Bell,
    /// Clear the terminal and draw everything again.
    Redraw,
    /// Leave: the connection said goodbye.
    Exit,
}

/// The screen's whole model: the chat, the line being typed, and the overlay.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// Rooms, conversations, connection.
    pub(crate) state: State,
    /// The line being typed.
    pub(crate) editor: Editor,
    /// The help overlay, when open, scrolled by this many lines.
    pub(crate) help: Option<u16>,
    /// Ring the bell on mentions and private messages.
    pub(crate) bell: bool,
    /// Rows of scrollback on screen, for PageUp/PageDown (set by the event loop after
    /// each draw).
    pub(crate) page: usize,
    /// `/quit` was sent; waiting for the connection's goodbye.
    pub(crate) quitting: bool,
    /// The window and the time of the last read marker sent.
    marked: Option<(String, std::time::Instant)>,
}

/// The text of the help overlay: every command, then every key.
pub(crate) fn help_text() -> String {
    let join = "enter ROOM (created if nobody is there) in a window of its own";
    let quit = "leave the chat (also Ctrl-C)";
    format!("{}\n{KEYS}", parley_proto::line::help(join, quit))
}

impl App {
    /// A model for a fresh connection.
    pub(crate) fn new(state: State, bell: bool) -> App {
        App { state, editor: Editor::default(), help: None, bell, page: 20, quitting: false, marked: None }
    }

    /// The read marker to send for the room on screen, if it shows messages the server
    /// does not know are read: at once after a switch, then at most every
    /// [`MARK_EVERY`].
    pub(crate) fn read_marks(&mut self, now: std::time::Instant) -> Vec<Effect> {
        let shown = self.state.current().name.clone();
        let due = match &self.marked {
            Some((last, at)) => *last != shown || now.duration_since(*at) >= MARK_EVERY,
            None => true,
        };
        if !due {
            return Vec::new();
        }
        match self.state.take_marker() {
            Some((kind, name, at)) => {
                self.marked = Some((name.clone(), now));
                vec![Effect::MarkRead { kind, name, at }]
            }
            None => Vec::new(),
        }
    }

    /// Carries out a key's action.
    pub(crate) fn act(&mut self, action: Action) -> Vec<Effect> {
        if let Some(scroll) = self.help {
            let lines = u16::try_from(help_text().lines().count()).unwrap_or(u16::MAX);
            let step = u16::try_from(self.page.max(2) - 1).unwrap_or(u16::MAX);
            let moved = match action {
                Action::Escape => None,
                Action::HistoryBack | Action::WheelUp => Some(scroll.saturating_sub(1)),
                Action::HistoryForward | Action::WheelDown => Some(scroll.saturating_add(1)),
                Action::PageUp => Some(scroll.saturating_sub(step)),
                Action::PageDown => Some(scroll.saturating_add(step)),
                Action::Redraw => Some(scroll),
                Action::Quit => return self.quit(),
                // Anything else closes the overlay and does what it does.
                other => {
                    self.help = None;
                    return self.act(other);
                }
            };
            self.help = moved.map(|s| s.min(lines.saturating_sub(1)));
            return Vec::new();
        }
        let page = isize::try_from(self.page.saturating_sub(2).max(1)).unwrap_or(isize::MAX);
        match action {
            Action::Insert(c) => self.editor.insert(c),
            Action::Paste(text) => self.editor.paste(&text),
            Action::Submit => return self.submit(),
            Action::Backspace => self.editor.backspace(),
            Action::Delete => self.editor.delete(),
            Action::Left => self.editor.left(),
            Action::Right => self.editor.right(),
            Action::WordLeft => self.editor.word_left(),
            Action::WordRight => self.editor.word_right(),
            Action::Home => self.editor.home(),
            Action::End => self.editor.end(),
            Action::DeleteWord => self.editor.delete_word(),
            Action::KillToStart => self.editor.kill_to_start(),
            Action::KillToEnd => self.editor.kill_to_end(),
            Action::HistoryBack => self.editor.history_back(),
            Action::HistoryForward => self.editor.history_forward(),
            Action::Complete => self.complete(),
            Action::PageUp => self.state.scroll(page),
            Action::PageDown => self.state.scroll(-page),
            Action::WheelUp => self.state.scroll(WHEEL_LINES),
            Action::WheelDown => self.state.scroll(-WHEEL_LINES),
            Action::Escape => self.state.scroll(isize::MIN),
            Action::NextBuffer => self.state.cycle(true),
            Action::PreviousBuffer => self.state.cycle(false),
            Action::GoTo(index) => self.state.switch(index),
            Action::Quit => return self.quit(),
            Action::Redraw => return vec![Effect::Redraw],
        }
        Vec::new()
    }

    fn complete(&mut self) {
        let buffer = self.state.current();
        let nicks = match buffer.kind {
            Kind::Room => buffer.members.clone(),
            Kind::Private => vec![buffer.name.clone()],
            Kind::Server => Vec::new(),
        };
        let rooms: Vec<String> =
            self.state.buffers.iter().filter(|b| b.kind == Kind::Room).map(|b| b.name.clone()).collect();
        self.editor.complete(Candidates { nicks: &nicks, rooms: &rooms });
    }

    fn quit(&mut self) -> Vec<Effect> {
        self.quitting = true;
        vec![Effect::Send(Command { input: Input::Quit, room: None })]
    }

    /// Enter: what the line means depends on the window it is typed in.
    fn submit(&mut self) -> Vec<Effect> {
        let text = self.editor.take();
        if text.trim().is_empty() {
            return Vec::new();
        }
        let now = Utc::now();
        let buffer = self.state.current();
        let (kind, name) = (buffer.kind, buffer.name.clone());
        let room = self.state.current_room().map(str::to_owned);
        let send = |input| vec![Effect::Send(Command { input, room: room.clone() })];
        match Input::parse(&text) {
            Input::Help => self.help = Some(0),
            Input::Quit => return self.quit(),
            Input::Usage(usage) => self.state.error(now, format!("Usage: {usage}")),
            Input::Unknown(command) => self.state.error(now, format!("Unknown command /{command} (try /help)")),
            Input::Say(text) => match kind {
                Kind::Room => return send(Input::Say(text)),
                Kind::Private => return send(Input::Msg { to: name, text }),
                Kind::Server => self.state.error(now, "This window is not a room: /join one, or Ctrl-N to another."),
            },
            Input::Part if kind == Kind::Private => self.state.close(self.state.current),
            Input::Join(wanted) => {
                let bare = wanted.trim_start_matches('#');
                match self.state.find(Kind::Room, bare) {
                    Some(index) => self.state.switch(index),
                    None => return send(Input::Join(wanted)),
                }
            }
            input => return send(input),
        }
        Vec::new()
    }

    /// Applies what the connection reports.
    pub(crate) fn update(&mut self, update: Update) -> Vec<Effect> {
        let now = Utc::now();
        let attention = match update {
            Update::Link(link) => {
                match (&self.state.link, &link) {
                    (Link::Connected, Link::Reconnecting { reason, .. }) => {
                        self.state.note(now, format!("Connection lost ({reason}); reconnecting."));
                    }
                    (Link::Reconnecting { .. }, Link::Connected) => self.state.note(now, "Reconnected."),
                    _ => {}
                }
                self.state.link = link;
                Attention::None
            }
            // The connection keeps it; nothing to show.
            Update::Session(_) => Attention::None,
            Update::Lag(lag) => {
                self.state.lag = Some(lag);
                Attention::None
            }
            Update::Nick(nick) => {
                self.state.nick = nick;
                Attention::None
            }
            Update::Joined { room, members, topic, history, read, show } => {
                let index = self.state.joined(&room, &members, topic.as_deref(), &history);
                if let Some(read) = read {
                    self.state.marker(Kind::Room, &room, read);
                }
                if show {
                    self.state.switch(index);
                    self.state.info(index, now, format!("You joined {room}. Users here: {}", members.join(", ")));
                    if let Some(topic) = topic {
                        self.state.info(index, now, format!("Topic: {topic}"));
                    }
                }
                Attention::None
            }
            Update::Parted { room } => {
                if let Some(index) = self.state.find(Kind::Room, &room) {
                    self.state.close(index);
                }
                self.state.note(now, format!("You left {room}."));
                Attention::None
            }
            Update::Event(event) => self.state.apply(&event),
            Update::Said { room, seq, at, kind, text } => {
                let nick = self.state.nick.clone();
                self.state.room_message(&room, &nick, seq, at, Words { kind, text: &text }, false)
            }
            Update::Whispered { to, at, text } => {
                let nick = self.state.nick.clone();
                self.state.private_message(&to, &nick, None, at, Words::plain(&text), false)
            }
            Update::Missed { room, messages } => {
                self.state.room_history(&room, &messages, true);
                Attention::None
            }
            Update::History { room, messages } => {
                self.state.room_history(&room, &messages, false);
                Attention::None
            }
            Update::Conversation { with, messages } => {
                for m in &messages {
                    self.state.private_message(
                        &with,
                        &m.from,
                        Some(m.seq),
                        m.at,
                        Words { kind: m.kind, text: &m.text },
                        false,
                    );
                }
                let index = self.state.open(Kind::Private, &with);
                self.state.switch(index);
                Attention::None
            }
            Update::Members { room, members } => {
                if let Some(index) = self.state.find(Kind::Room, &room) {
                    self.state.buffers[index].members = members;
                    self.state.buffers[index].members.sort_by_key(|n| n.to_ascii_lowercase());
                }
                Attention::None
            }
            Update::Topic { room, topic } => {
                if let Some(index) = self.state.find(Kind::Room, &room) {
                    self.state.buffers[index].topic = topic;
                }
                Attention::None
            }
            Update::Notes(lines) => {
                for line in lines {
                    self.state.note(now, line);
                }
                Attention::None
            }
            Update::Failed(message) => {
                self.state.error(now, message);
                Attention::None
            }
            Update::Transfer(progress) => {
                self.state.transfer = progress;
                Attention::None
            }
            Update::Bye => return vec![Effect::Exit],
        };
        if attention == Attention::Bell && self.bell {
            vec![Effect::Bell]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        let mut app = App::new(State::new("localhost:7778", "plain", "ann"), true);
        let joined = Update::Joined {
            room: "lobby".into(),
            members: vec!["ann".into(), "bob".into()],
            topic: None,
            history: Vec::new(),
            read: None,
            show: true,
        };
        app.update(joined);
        app
    }

    fn typed(app: &mut App, text: &str) -> Vec<Effect> {
        text.chars().for_each(|c| {
            app.act(Action::Insert(c));
        });
        app.act(Action::Submit)
    }

    fn sent(input: Input, room: Option<&str>) -> Vec<Effect> {
        vec![Effect::Send(Command { input, room: room.map(str::to_owned) })]
    }

    #[test]
    fn what_is_typed_goes_where_the_window_says() {
        let mut app = app();
        assert_eq!(typed(&mut app, "hello"), sent(Input::Say("hello".into()), Some("lobby")));
        app.update(Update::Whispered { to: "Bob".into(), at: Utc::now(), text: "psst".into() });
        app.act(Action::NextBuffer);
        assert_eq!(app.state.current().name, "Bob");
        assert_eq!(typed(&mut app, "hi"), sent(Input::Msg { to: "Bob".into(), text: "hi".into() }, None));
        assert_eq!(typed(&mut app, "/part"), Vec::new(), "closes the conversation without asking the server");
        assert_eq!(app.state.current().name, "lobby");
        assert_eq!(typed(&mut app, "/join #LOBBY"), Vec::new(), "already there: just shown");
        assert_eq!(typed(&mut app, "/who"), sent(Input::Who, Some("lobby")));
        app.act(Action::GoTo(0));
        assert_eq!(typed(&mut app, "hello?"), Vec::new());
        assert!(app
            .state
            .current()
            .lines
            .back()
            .is_some_and(|l| matches!(l.body, super::super::state::Body::Error(_))));
    }

    #[test]
    fn help_opens_an_overlay_that_scrolls_and_closes() {
        let mut app = app();
        assert_eq!(typed(&mut app, "/help"), Vec::new());
        assert_eq!(app.help, Some(0));
        app.act(Action::HistoryForward);
        app.act(Action::HistoryForward);
        assert_eq!(app.help, Some(2));
        app.act(Action::Escape);
        assert_eq!(app.help, None);
        typed(&mut app, "/help");
        app.act(Action::Insert('x'));
        assert_eq!((app.help, app.editor.text()), (None, "x"), "typing closes it and types");
    }

    #[test]
    fn a_room_on_screen_is_marked_read_and_a_marker_from_elsewhere_clears_unread() {
        use std::time::{Duration, Instant};
        let mut app = app();
        let base = Utc::now() - chrono::Duration::minutes(5);
        let said = |room: &str, seq: u64| {
            Update::Event(parley_client::Event::Message {
                room: room.into(),
                from: "bob".into(),
                seq,
                ts: base + chrono::Duration::seconds(i64::try_from(seq).unwrap_or(0)),
                kind: parley_client::Kind::Text,
                text: format!("message {seq}"),
            })
        };
        let start = Instant::now();
        assert_eq!(app.read_marks(start), Vec::new(), "nothing said yet");
        app.update(said("lobby", 1));
        let first = base + chrono::Duration::seconds(1);
        assert_eq!(app.read_marks(start), vec![Effect::MarkRead { kind: Kind::Room, name: "lobby".into(), at: first }]);
        // While the room stays on screen, markers wait a little, then follow.
        app.update(said("lobby", 2));
        assert_eq!(app.read_marks(start + Duration::from_millis(500)), Vec::new());
        let second = base + chrono::Duration::seconds(2);
        assert_eq!(
            app.read_marks(start + MARK_EVERY),
            vec![Effect::MarkRead { kind: Kind::Room, name: "lobby".into(), at: second }]
        );

        // dev is joined knowing where ann read on another device: older is not unread.
        let history: Vec<parley_client::PastMessage> = Vec::new();
        app.update(Update::Joined {
            room: "dev".into(),
            members: vec!["ann".into()],
            topic: None,
            history,
            read: Some(base + chrono::Duration::seconds(11)),
            show: false,
        });
        for seq in 10..=13 {
            app.update(said("dev", seq));
        }
        let dev = app.state.find(Kind::Room, "dev").expect("dev");
        assert_eq!(app.state.buffers[dev].unread, 2, "only what came after the marker");
        // Read on the phone: the count clears here.
        let marker = parley_client::Event::Marker {
            room: Some("dev".into()),
            with: None,
            at: base + chrono::Duration::seconds(13),
        };
        app.update(Update::Event(marker));
        assert_eq!(app.state.buffers[dev].unread, 0);
        // Switching to it sends nothing: the server has it read already.
        app.state.switch(dev);
        assert_eq!(app.read_marks(start + MARK_EVERY * 2), Vec::new());

        // Conversations are marked too, by the other user's nick.
        let whisper_at = base + chrono::Duration::seconds(20);
        app.update(Update::Event(parley_client::Event::Whisper {
            seq: 4,
            from: "bob".into(),
            to: "ann".into(),
            ts: whisper_at,
            kind: parley_client::Kind::Text,
            text: "psst".into(),
        }));
        let bob = app.state.find(Kind::Private, "bob").expect("a window for bob");
        app.state.switch(bob);
        let marked = app.read_marks(start + MARK_EVERY * 2);
        assert_eq!(marked, vec![Effect::MarkRead { kind: Kind::Private, name: "bob".into(), at: whisper_at }]);
    }

    #[test]
    fn quitting_waits_for_the_goodbye() {
        let mut app = app();
        assert_eq!(app.act(Action::Quit), sent(Input::Quit, None));
        assert!(app.quitting);
        assert_eq!(app.update(Update::Bye), vec![Effect::Exit]);
    }

    #[test]
    fn the_bell_rings_for_mentions_and_private_messages_when_wanted() {
        let mut app = app();
        let at = Utc::now();
        let mention = |seq| {
            Update::Event(parley_client::Event::Message {
                room: "lobby".into(),
                from: "bob".into(),
                seq,
                ts: at,
                kind: parley_client::Kind::Text,
                text: "ann: ping".into(),
            })
        };
        assert_eq!(app.update(mention(1)), vec![Effect::Bell]);
        app.bell = false;
        assert_eq!(app.update(mention(2)), Vec::new());
    }

    #[test]
    fn losing_and_regaining_the_connection_is_told() {
        let mut app = app();
        app.update(Update::Link(Link::Reconnecting { attempt: 1, reason: "the server closed the connection".into() }));
        app.update(Update::Link(Link::Reconnecting { attempt: 2, reason: "refused".into() }));
        app.update(Update::Link(Link::Connected));
        let infos: Vec<_> = app
            .state
            .current()
            .lines
            .iter()
            .filter_map(|l| match &l.body {
                super::super::state::Body::Info(text) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            &infos[infos.len() - 2..],
            ["Connection lost (the server closed the connection); reconnecting.", "Reconnected."]
        );
    }
}
