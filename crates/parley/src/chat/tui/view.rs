//! Drawing the model: a title bar, the sidebar of windows, the scrollback, the member
//! list, the status line and the input line, plus the help overlay. Lines are wrapped
//! here, by terminal columns (CJK and most emoji take two), with continuation rows
//! indented under the text so a long message stays readable. Rendering reads the model
//! and never changes it, so tests draw into ratatui's `TestBackend` and compare text.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use parley_proto::text::{printable, REPLACEMENT};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as Row, Span, Text};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use unicode_segmentation::UnicodeSegmentation as _;
use unicode_width::UnicodeWidthStr as _;

use super::app::{help_text, App};
use super::state::{Body, Buffer, Kind, Line, Link, State};

/// Columns of the sidebar and the member list, and the terminal widths from which they
/// are shown: below them, the scrollback gets the room (the title bar then tells the
/// window's number and the unread count elsewhere).
const SIDEBAR: u16 = 14;
const SIDEBAR_FROM: u16 = 50;
const MEMBERS: u16 = 13;
const MEMBERS_FROM: u16 = 72;

/// Colours for nicks, chosen by a hash of the nick so that each person keeps theirs.
/// Dark blue and black are left out: unreadable on common dark backgrounds.
const NICK_COLOURS: [Color; 10] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::LightBlue,
    Color::LightGreen,
    Color::LightRed,
    Color::LightMagenta,
    Color::LightCyan,
    Color::Red,
];

/// When, for the clock on each line: the moment of drawing and the local offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// The current time.
    pub(crate) at: DateTime<Utc>,
    /// The local time zone's offset from UTC.
    pub(crate) offset: FixedOffset,
}

impl Now {
    /// Now, in the local time zone.
    pub(crate) fn local() -> Now {
        let at = Utc::now();
        Now { at, offset: *at.with_timezone(&chrono::Local).offset() }
    }

    fn date(&self, at: &DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.offset).date_naive()
    }
}

/// The colour of a nick: the same for the same nick (case aside) in every session.
pub(crate) fn nick_colour(nick: &str) -> Color {
    // FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
    let hash = nick
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3));
    NICK_COLOURS[usize::try_from(hash % NICK_COLOURS.len() as u64).unwrap_or(0)]
}

/// Draws the whole screen.
pub(crate) fn render(frame: &mut Frame<'_>, app: &App, now: &Now) {
    let area = frame.area();
    let [title, body, status, input] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)])
            .areas(area);
    let sidebar = if area.width >= SIDEBAR_FROM { SIDEBAR } else { 0 };
    let members = if area.width >= MEMBERS_FROM && app.state.current().kind == Kind::Room { MEMBERS } else { 0 };
    let [side, scrollback, list] =
        Layout::horizontal([Constraint::Length(sidebar), Constraint::Min(1), Constraint::Length(members)]).areas(body);

    render_title(frame, title, &app.state, sidebar == 0);
    if sidebar > 0 {
        render_sidebar(frame, side, &app.state);
    }
    render_scrollback(frame, scrollback, &app.state, now);
    if members > 0 {
        render_members(frame, list, &app.state);
    }
    render_status(frame, status, &app.state);
    render_input(frame, input, app);
    if let Some(scroll) = app.help {
        render_help(frame, area, scroll);
    }
    defuse(frame.buffer_mut());
}

/// Replaces every cell that holds a control character. ratatui puts one into a cell like
/// any other character and crossterm writes cells as they are, so a nick, a room or a
/// topic with an ESC in it would drive the terminal. Texts are cleaned where they are
/// laid out (so widths add up); this pass is for anything that was not. A control is
/// a grapheme of its own, one column wide, so its cell takes one replacement character.
fn defuse(buffer: &mut ratatui::buffer::Buffer) {
    for cell in &mut buffer.content {
        if cell.symbol().contains(char::is_control) {
            cell.set_char(REPLACEMENT);
        }
    }
}

fn bar() -> Style {
    Style::new().fg(Color::White).bg(Color::Blue)
}

fn display_name(buffer: &Buffer) -> String {
    match buffer.kind {
        Kind::Room => format!("#{}", buffer.name),
        Kind::Private | Kind::Server => buffer.name.clone(),
    }
}

fn render_title(frame: &mut Frame<'_>, area: Rect, state: &State, narrow: bool) {
    let buffer = state.current();
    let mut spans = Vec::new();
    if narrow {
        spans.push(Span::raw(format!("[{}/{}] ", state.current + 1, state.buffers.len())));
    }
    spans.push(Span::styled(display_name(buffer), Style::new().add_modifier(Modifier::BOLD)));
    let about = match buffer.kind {
        Kind::Room => buffer.topic.as_deref().map(|t| format!(": {}", clean(t))).unwrap_or_default(),
        Kind::Private => " (private)".to_owned(),
        Kind::Server => format!(": {}", state.server),
    };
    spans.push(Span::raw(about));
    if narrow {
        let (unread, mentions) = state.unread_elsewhere();
        if unread > 0 {
            let style =
                if mentions > 0 { Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD) } else { Style::new() };
            spans.push(Span::styled(format!(" · {unread} unread"), style));
        }
    }
    frame.render_widget(Paragraph::new(Row::from(spans)).style(bar()), area);
}

fn render_sidebar(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let block = Block::new().borders(Borders::RIGHT).border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let rows: Vec<Row<'_>> = state
        .buffers
        .iter()
        .enumerate()
        .map(|(i, buffer)| {
            let number = match i {
                0..=8 => format!("{}", i + 1),
                9 => "0".to_owned(),
                _ => " ".to_owned(),
            };
            let count = if buffer.unread > 0 { format!(" {}", buffer.unread) } else { String::new() };
            let room = width.saturating_sub(2 + count.width());
            let name = truncate(&display_name(buffer), room);
            let pad = width.saturating_sub(2 + name.width() + count.width());
            let text = format!("{number} {name}{}{count}", " ".repeat(pad));
            let style = if i == state.current {
                Style::new().add_modifier(Modifier::REVERSED)
            } else if buffer.mentions > 0 {
                Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD)
            } else if buffer.unread > 0 {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            Row::styled(text, style)
        })
        .collect();
    frame.render_widget(Paragraph::new(rows), inner);
}

fn render_members(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let block = Block::new().borders(Borders::LEFT).border_style(Style::new().fg(Color::DarkGray));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buffer = state.current();
    let width = usize::from(inner.width);
    let mut rows = vec![Row::styled(
        truncate(&format!("{} here", buffer.members.len()), width),
        Style::new().add_modifier(Modifier::DIM),
    )];
    rows.extend(buffer.members.iter().map(|nick| {
        let mut style = Style::new().fg(nick_colour(nick));
        if nick.eq_ignore_ascii_case(&state.nick) {
            style = style.add_modifier(Modifier::BOLD);
        }
        Row::styled(truncate(nick, width), style)
    }));
    frame.render_widget(Paragraph::new(rows), inner);
}

/// The rows of the scrollback that fit in `area`, newest at the bottom, with a date
/// line wherever the day changes.
fn render_scrollback(frame: &mut Frame<'_>, area: Rect, state: &State, now: &Now) {
    let buffer = state.current();
    let height = usize::from(area.height);
    let width = usize::from(area.width);
    let end = buffer.lines.len().saturating_sub(buffer.scroll);
    let mut reversed: Vec<Row<'static>> = Vec::new();
    for i in (0..end).rev() {
        let line = &buffer.lines[i];
        let mut rows = line_rows(line, width, &state.nick, now);
        let day = now.date(&line.at);
        let previous = i.checked_sub(1).map(|p| now.date(&buffer.lines[p].at));
        let new_day = match previous {
            Some(previous) => previous != day,
            None => day != now.date(&now.at),
        };
        if new_day {
            rows.insert(0, date_row(day, width));
        }
        reversed.extend(rows.into_iter().rev());
        if reversed.len() >= height {
            break;
        }
    }
    reversed.truncate(height);
    reversed.reverse();
    let shown = u16::try_from(reversed.len()).unwrap_or(area.height);
    let bottom = Rect { y: area.y + area.height - shown, height: shown, ..area };
    frame.render_widget(Paragraph::new(Text::from(reversed)), bottom);
}

fn date_row(day: NaiveDate, width: usize) -> Row<'static> {
    let label = format!(" {} ", day.format("%A %-d %B %Y"));
    let side = width.saturating_sub(label.width()) / 2;
    let text = format!("{}{label}{}", "─".repeat(side), "─".repeat(width.saturating_sub(side + label.width())));
    Row::styled(truncate(&text, width), Style::new().fg(Color::DarkGray))
}

/// One scrollback entry as rows of at most `width` columns.
fn line_rows(line: &Line, width: usize, nick: &str, now: &Now) -> Vec<Row<'static>> {
    let clock = format!("[{}] ", line.at.with_timezone(&now.offset).format("%H:%M:%S"));
    let mut pieces = vec![(clock.clone(), Style::new().fg(Color::DarkGray))];
    let indent = match &line.body {
        Body::Message { from, text, action } => {
            let mut nick_style = Style::new().fg(nick_colour(from));
            if from.eq_ignore_ascii_case(nick) {
                nick_style = nick_style.add_modifier(Modifier::BOLD);
            }
            let text_style =
                if line.mention { Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD) } else { Style::new() };
            if *action {
                pieces.push(("* ".to_owned(), nick_style));
            }
            pieces.push((from.clone(), nick_style));
            pieces.push((if *action { " " } else { ": " }.to_owned(), Style::new()));
            pieces.push((clean_keep_lines(text), text_style));
            let hanging = clock.width() + from.width() + 2 + if *action { 2 } else { 0 };
            if hanging * 2 <= width {
                hanging
            } else {
                clock.width()
            }
        }
        Body::Info(text) => {
            pieces.push((format!("* {}", clean_keep_lines(text)), Style::new().fg(Color::Cyan)));
            clock.width() + 2
        }
        Body::Error(text) => {
            pieces.push((format!("! {}", clean_keep_lines(text)), Style::new().fg(Color::LightRed)));
            clock.width() + 2
        }
    };
    wrap(&pieces, width, indent)
}

/// Lays styled text out in rows of `width` columns: words move to the next row whole
/// when they fit there, longer ones are cut by grapheme; `\n` starts a new row; rows
/// after the first start with `indent` spaces.
fn wrap(pieces: &[(String, Style)], width: usize, indent: usize) -> Vec<Row<'static>> {
    let indent = if indent + 4 > width { 0 } else { indent };
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut column = 0;
    let mut break_row = |spans: &mut Vec<Span<'static>>, column: &mut usize| {
        // The spaces where a row breaks are not shown.
        while spans.last().is_some_and(|s| !s.content.is_empty() && s.content.trim().is_empty()) {
            spans.pop();
        }
        rows.push(Row::from(std::mem::take(spans)));
        if indent > 0 {
            spans.push(Span::raw(" ".repeat(indent)));
        }
        *column = indent;
    };
    for (text, style) in pieces {
        for token in tokens(text) {
            if token == "\n" {
                break_row(&mut spans, &mut column);
                continue;
            }
            let w = token.width();
            if column + w <= width {
                spans.push(Span::styled(token.to_owned(), *style));
                column += w;
                continue;
            }
            let blank = token.trim().is_empty();
            if blank {
                break_row(&mut spans, &mut column);
                continue;
            }
            if column > indent && indent + w <= width {
                break_row(&mut spans, &mut column);
                spans.push(Span::styled(token.to_owned(), *style));
                column += w;
                continue;
            }
            for grapheme in token.graphemes(true) {
                let gw = grapheme.width();
                if column + gw > width && column > indent {
                    break_row(&mut spans, &mut column);
                }
                spans.push(Span::styled(grapheme.to_owned(), *style));
                column += gw;
            }
        }
    }
    rows.push(Row::from(spans));
    rows
}

/// Splits text into runs of spaces, runs of other characters, and single newlines.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut kind = None;
    for (at, c) in text.char_indices() {
        let this = if c == '\n' { 2 } else { u8::from(c.is_whitespace()) };
        if kind.is_some_and(|k| k != this || this == 2) {
            out.push(&text[start..at]);
            start = at;
        }
        kind = Some(this);
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn render_status(frame: &mut Frame<'_>, area: Rect, state: &State) {
    let lag = state.lag.map_or_else(|| "lag ?".to_owned(), |lag| format!("lag {} ms", lag.as_millis()));
    let link = match &state.link {
        Link::Connected => Span::raw("connected"),
        Link::Reconnecting { attempt, reason } => Span::styled(
            format!("RECONNECTING (try {attempt}): {}", clean(reason)),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
    };
    let mut spans = vec![Span::styled(format!(" {} ", state.nick), Style::new().add_modifier(Modifier::BOLD))];
    // First after the nick, so that even a narrow terminal shows that newer lines are
    // hidden.
    let scroll = state.current().scroll;
    if scroll > 0 {
        let style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
        spans.push(Span::styled(format!("│ ↑{scroll} back (Esc) "), style));
    }
    // A transfer's progress comes before the connection details, which matter less
    // while it runs and are the first to be cut on a narrow terminal.
    if let Some(progress) = &state.transfer {
        spans.push(Span::styled(format!("│ {} ", clean(progress)), Style::new().fg(Color::Cyan)));
    }
    spans.push(Span::raw(format!("│ {} {} │ {lag} │ ", state.server, state.security)));
    spans.push(link);
    frame.render_widget(Paragraph::new(Row::from(spans)).style(bar()), area);
}

fn render_input(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let prompt = format!("[{}] ", display_name(app.state.current()));
    let prompt = truncate(&prompt, usize::from(area.width) / 2);
    let room = usize::from(area.width).saturating_sub(prompt.width() + 1);
    let (visible, cursor) = app.editor.view(room);
    let row =
        Row::from(vec![Span::styled(prompt.clone(), Style::new().add_modifier(Modifier::BOLD)), Span::raw(visible)]);
    frame.render_widget(Paragraph::new(row), area);
    if app.help.is_none() {
        let x = area.x + u16::try_from(prompt.width() + cursor).unwrap_or(area.width).min(area.width.saturating_sub(1));
        frame.set_cursor_position(Position { x, y: area.y });
    }
}

fn render_help(frame: &mut Frame<'_>, area: Rect, scroll: u16) {
    let width = area.width.saturating_sub(4).min(100);
    let height = area.height.saturating_sub(2);
    let popup = Rect { x: area.x + (area.width - width) / 2, y: area.y + 1, width, height };
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(" Help: Esc closes, Up/Down/PageUp/PageDown scroll ");
    let help = Paragraph::new(help_text()).block(block).wrap(Wrap { trim: false }).scroll((scroll, 0));
    frame.render_widget(help, popup);
}

/// At most `width` columns of `text`.
fn truncate(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for grapheme in text.graphemes(true) {
        let w = grapheme.width();
        if used + w > width {
            break;
        }
        used += w;
        out.push_str(grapheme);
    }
    out
}

/// Text from others without control characters, which could move the cursor or
/// rewrite the screen; newlines and tabs become spaces.
fn clean(text: &str) -> String {
    printable(&text.replace(['\n', '\t'], " ")).into_owned()
}

/// Like [`clean`], but keeps newlines (the wrapper turns them into rows).
fn clean_keep_lines(text: &str) -> String {
    text.lines().map(clean).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::tui::session::Update;
    use crate::chat::tui::state::State;
    use parley_client::{Event, PastMessage};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn now() -> Now {
        // 2027-01-15 08:00:00 UTC, shown in UTC.
        Now {
            at: DateTime::from_timestamp(1_800_000_000, 0).expect("valid"),
            offset: FixedOffset::east_opt(0).expect("UTC"),
        }
    }

    fn at(minutes_before: i64) -> DateTime<Utc> {
        now().at - chrono::Duration::minutes(minutes_before)
    }

    fn past(seq: u64, from: &str, minutes_before: i64, text: &str) -> PastMessage {
        PastMessage {
            seq,
            from: from.into(),
            at: at(minutes_before),
            kind: parley_client::Kind::Text,
            text: text.into(),
        }
    }

    fn app() -> App {
        let mut app = App::new(State::new("chat.example.org:7780", "TLS (CA)", "ann"), true);
        app.update(Update::Joined {
            room: "lobby".into(),
            members: vec!["ann".into(), "bob".into(), "carol".into()],
            topic: Some("release on Friday".into()),
            history: vec![
                past(1, "bob", 60 * 24, "yesterday's news"),
                past(2, "carol", 3, "morning all"),
                past(3, "bob", 2, "hi ann, coffee?"),
            ],
            read: None,
            show: false,
        });
        app.update(Update::Joined {
            room: "dev".into(),
            members: vec!["ann".into()],
            topic: None,
            history: vec![],
            read: None,
            show: false,
        });
        app.state.switch(1);
        app.update(Update::Event(Event::Message {
            room: "dev".into(),
            from: "dave".into(),
            seq: 1,
            ts: at(1),
            kind: parley_client::Kind::Text,
            text: "build is green".into(),
        }));
        app.update(Update::Lag(std::time::Duration::from_millis(12)));
        app
    }

    fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal.draw(|frame| render(frame, app, &now())).expect("draws");
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                let mut row = String::new();
                let mut skip = 0;
                for x in 0..width {
                    let symbol = buffer[(x, y)].symbol();
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    skip = symbol.width().saturating_sub(1);
                    row.push_str(symbol);
                }
                row.trim_end().to_owned()
            })
            .collect()
    }

    #[test]
    fn the_main_screen_at_80_by_24() {
        let mut app = app();
        "half a li".chars().for_each(|c| {
            app.act(super::super::keys::Action::Insert(c));
        });
        let rows = screen(&app, 80, 24);
        assert_eq!(rows[0], "#lobby: release on Friday");
        assert!(rows[1].starts_with("1 server     │"), "{rows:#?}");
        assert!(rows[2].starts_with("2 #lobby     │"), "{rows:#?}");
        assert!(rows[3].starts_with("3 #dev      1│"), "unread count: {rows:#?}");
        assert!(rows[1].ends_with("│3 here"), "{rows:#?}");
        assert!(rows[2].ends_with("│ann"), "{rows:#?}");
        assert!(rows[3].ends_with("│bob"), "{rows:#?}");
        assert!(rows[4].ends_with("│carol"), "{rows:#?}");
        let body: Vec<String> =
            rows[1..22].iter().map(|r| r.chars().skip(14).take(53).collect::<String>().trim_end().to_owned()).collect();
        assert_eq!(
            &body[16..],
            [
                "───────────── Thursday 14 January 2027 ──────────────",
                "[08:00:00] bob: yesterday's news",
                "────────────── Friday 15 January 2027 ───────────────",
                "[07:57:00] carol: morning all",
                "[07:58:00] bob: hi ann, coffee?",
            ],
            "{rows:#?}"
        );
        assert_eq!(rows[22], " ann │ chat.example.org:7780 TLS (CA) │ lag 12 ms │ connected");
        assert_eq!(rows[23], "[#lobby] half a li");
    }

    #[test]
    fn a_narrow_terminal_drops_the_side_lists_and_wraps() {
        let app = app();
        let rows = screen(&app, 40, 12);
        assert_eq!(rows[0], "[2/3] #lobby: release on Friday · 1 unre");
        assert_eq!(
            rows[5..10],
            [
                "─────── Thursday 14 January 2027 ───────",
                "[08:00:00] bob: yesterday's news",
                "──────── Friday 15 January 2027 ────────",
                "[07:57:00] carol: morning all",
                "[07:58:00] bob: hi ann, coffee?",
            ],
            "{rows:#?}"
        );
        assert_eq!(rows[10], " ann │ chat.example.org:7780 TLS (CA) │");
        assert_eq!(rows[11], "[#lobby]");
    }

    #[test]
    fn long_and_wide_text_wraps_by_columns_under_the_text() {
        let mut app = app();
        app.update(Update::Event(Event::Message {
            room: "lobby".into(),
            from: "bob".into(),
            seq: 4,
            ts: at(0),
            kind: parley_client::Kind::Text,
            text: "日本語のテキストは二列ずつ使います 👍🏽 ok".into(),
        }));
        let rows = screen(&app, 40, 12);
        // 16 columns of prefix and 12 two-column characters fill the 40 exactly.
        assert_eq!(rows[8], "[08:00:00] bob: 日本語のテキストは二列ず", "{rows:#?}");
        assert_eq!(rows[9], "                つ使います 👍🏽 ok", "{rows:#?}");
    }

    #[test]
    fn the_help_overlay_lists_the_commands() {
        let mut app = app();
        app.help = Some(0);
        let rows = screen(&app, 80, 24);
        assert!(rows[1].contains("Help: Esc closes"), "{rows:#?}");
        assert!(rows.iter().any(|r| r.contains("/join ROOM")), "{rows:#?}");
        assert!(rows.iter().any(|r| r.contains("/msg NAME text")), "{rows:#?}");
    }

    #[test]
    fn the_status_line_shows_reconnecting() {
        let mut app = app();
        app.update(Update::Link(Link::Reconnecting { attempt: 3, reason: "connection refused".into() }));
        let rows = screen(&app, 100, 24);
        assert!(rows[22].ends_with("│ lag 12 ms │ RECONNECTING (try 3): connection refused"), "{rows:#?}");
    }

    #[test]
    fn scrolling_back_shows_older_lines_and_says_so() {
        let mut app = app();
        for seq in 4..40 {
            app.update(Update::Event(Event::Message {
                room: "lobby".into(),
                from: "bob".into(),
                seq,
                ts: at(0),
                kind: parley_client::Kind::Text,
                text: format!("message {seq}"),
            }));
        }
        app.page = 21;
        app.act(super::super::keys::Action::PageUp);
        let rows = screen(&app, 80, 24);
        assert!(rows[21].contains("bob: message 20"), "19 lines back: {rows:#?}");
        assert!(rows[22].starts_with(" ann │ ↑19 back (Esc) │ chat.example.org"), "{rows:#?}");
        app.act(super::super::keys::Action::Escape);
        let rows = screen(&app, 80, 24);
        assert!(rows[21].contains("bob: message 39"), "{rows:#?}");
    }

    #[test]
    fn wrapping_breaks_between_words_and_cuts_long_ones() {
        let text = |rows: Vec<Row<'_>>| rows.iter().map(ToString::to_string).collect::<Vec<_>>();
        let style = Style::new();
        assert_eq!(text(wrap(&[("one two three".into(), style)], 8, 2)), ["one two", "  three"]);
        assert_eq!(text(wrap(&[("abcdefghij".into(), style)], 6, 2)), ["abcdef", "  ghij"]);
        assert_eq!(text(wrap(&[("a\nb".into(), style)], 6, 2)), ["a", "  b"]);
        assert_eq!(text(wrap(&[("日本語".into(), style)], 5, 0)), ["日本", "語"]);
    }

    #[test]
    fn control_characters_from_others_never_reach_a_cell() {
        // ratatui draws a control character into a cell like any other character, and
        // crossterm writes cells as they are: an ESC in a nick or a topic would reach the
        // terminal. What others wrote is shown with its controls replaced.
        const HOSTILE: &str = "\x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J \u{9b}31m";
        let mut app = app();
        let evil = "ev\x1b[2Jil\u{9b}";
        app.update(Update::Joined {
            room: "lo\x1bbby".into(),
            members: vec!["ann".into(), evil.into()],
            topic: Some(HOSTILE.into()),
            history: vec![past(9, evil, 1, HOSTILE)],
            read: None,
            show: true,
        });
        app.update(Update::Event(Event::Whisper {
            seq: 1,
            from: evil.into(),
            to: "ann".into(),
            ts: at(0),
            kind: parley_client::Kind::Text,
            text: HOSTILE.into(),
        }));
        app.update(Update::Link(Link::Reconnecting { attempt: 1, reason: HOSTILE.into() }));
        let rows = screen(&app, 120, 24);
        for row in &rows {
            assert!(!row.chars().any(char::is_control), "a control character in {row:?}");
        }
        let all = rows.join("\n");
        assert!(all.contains("\u{FFFD}]52;c;ZWNobyBwd25lZA==\u{FFFD}"), "the text stays visible: {rows:#?}");
        assert!(all.contains("ev\u{FFFD}[2Jil\u{FFFD}"), "the nick stays visible: {rows:#?}");
    }

    #[test]
    fn nick_colours_are_stable_and_ignore_case() {
        assert_eq!(nick_colour("Alice"), nick_colour("alice"));
        let colours: std::collections::HashSet<_> =
            ["a", "b", "c", "d", "e", "f", "g"].iter().map(|n| nick_colour(n)).collect();
        assert!(colours.len() > 3, "nicks spread over the palette");
    }
}
