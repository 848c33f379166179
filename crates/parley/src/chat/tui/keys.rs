//! Which key does what: terminal events in, editor and screen actions out. Kept apart
//! from what the actions do, so the key reference (`KEYS`, shown by `/help`) and the
//! map are read side by side.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Type a character.
    Insert(char),
    /// Text pasted in one go (bracketed paste), newlines and all.
    Paste(String),
    /// Send the line.
    Submit,
    /// Delete before the cursor.
    Backspace,
    /// Delete under the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor to the previous word.
    WordLeft,
    /// Cursor past the next word.
    WordRight,
    /// Cursor to the start.
    Home,
    /// Cursor to the end.
    End,
    /// Delete the word before the cursor.
    DeleteWord,
    /// Delete to the start of the line.
    KillToStart,
    /// Delete to the end of the line.
    KillToEnd,
    /// The previous line sent.
    HistoryBack,
    /// The next line sent.
    HistoryForward,
    /// Complete the word before the cursor.
    Complete,
    /// Scroll back a page.
    PageUp,
    /// Scroll forward a page.
    PageDown,
    /// Scroll back a few lines (mouse wheel).
    WheelUp,
    /// Scroll forward a few lines (mouse wheel).
    WheelDown,
    /// The next buffer in the sidebar.
    NextBuffer,
    /// The previous buffer in the sidebar.
    PreviousBuffer,
    /// Buffer number N (from 0) in the sidebar.
    GoTo(usize),
    /// Close the help, or stop scrolling back.
    Escape,
    /// Leave the chat.
    Quit,
    /// The terminal changed size, or needs drawing anew.
    Redraw,
}

/// The keys, as `/help` lists them (and the README repeats).
pub(crate) const KEYS: &str = "\
Keys:
  Enter               send the line (Alt-Enter: a new line in the same message)
  Left, Right, Home, End, Ctrl-A, Ctrl-E, Alt-B, Alt-F   move in the line
  Backspace, Delete   delete a character
  Ctrl-W, Ctrl-U, Ctrl-K   delete the word before, everything before, everything after
  Up, Down            the lines you sent before
  Tab                 complete a nick, a #room or a /command (again: the next choice)
  PageUp, PageDown, mouse wheel   scroll back and forth; Esc: back to the newest
  Ctrl-N, Ctrl-P, Alt-1 .. Alt-9, Alt-0   next, previous, or that number of window
  Ctrl-L              draw the screen again
  Ctrl-C              leave the chat (as /quit)
Paste several lines at once to send them as one message. In a private window, what
you type goes to that person; /part closes the window.
";

/// The action for a terminal event, if it has one.
pub(crate) fn action(event: &Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => key_action(key),
        Event::Paste(text) => Some(Action::Paste(text.clone())),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::ScrollUp => Some(Action::WheelUp),
            MouseEventKind::ScrollDown => Some(Action::WheelDown),
            _ => None,
        },
        Event::Resize(..) | Event::FocusGained => Some(Action::Redraw),
        _ => None,
    }
}

fn key_action(key: &KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    Some(match key.code {
        KeyCode::Char(c) if ctrl => match c.to_ascii_lowercase() {
            'c' => Action::Quit,
            'a' => Action::Home,
            'e' => Action::End,
            'b' => Action::Left,
            'f' => Action::Right,
            'w' => Action::DeleteWord,
            'h' => Action::Backspace,
            'u' => Action::KillToStart,
            'k' => Action::KillToEnd,
            'd' => Action::Delete,
            'n' => Action::NextBuffer,
            'p' => Action::PreviousBuffer,
            'l' => Action::Redraw,
            _ => return None,
        },
        KeyCode::Char(c) if alt => match c {
            '0' => Action::GoTo(9),
            '1'..='9' => Action::GoTo(usize::from(c as u8 - b'1')),
            'b' => Action::WordLeft,
            'f' => Action::WordRight,
            _ => return None,
        },
        KeyCode::Char(c) => Action::Insert(c),
        KeyCode::Enter if alt => Action::Insert('\n'),
        KeyCode::Enter => Action::Submit,
        KeyCode::Backspace if alt || ctrl => Action::DeleteWord,
        KeyCode::Backspace => Action::Backspace,
        KeyCode::Delete => Action::Delete,
        KeyCode::Left if alt || ctrl => Action::WordLeft,
        KeyCode::Right if alt || ctrl => Action::WordRight,
        KeyCode::Left => Action::Left,
        KeyCode::Right => Action::Right,
        KeyCode::Home => Action::Home,
        KeyCode::End => Action::End,
        KeyCode::Up => Action::HistoryBack,
        KeyCode::Down => Action::HistoryForward,
        KeyCode::Tab => Action::Complete,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Esc => Action::Escape,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Action> {
        action(&Event::Key(KeyEvent::new(code, modifiers)))
    }

    #[test]
    fn keys_map_to_actions() {
        assert_eq!(key(KeyCode::Char('é'), KeyModifiers::NONE), Some(Action::Insert('é')));
        assert_eq!(key(KeyCode::Char('W'), KeyModifiers::SHIFT), Some(Action::Insert('W')));
        assert_eq!(key(KeyCode::Char('w'), KeyModifiers::CONTROL), Some(Action::DeleteWord));
        assert_eq!(key(KeyCode::Char('u'), KeyModifiers::CONTROL), Some(Action::KillToStart));
        assert_eq!(key(KeyCode::Char('n'), KeyModifiers::CONTROL), Some(Action::NextBuffer));
        assert_eq!(key(KeyCode::Char('p'), KeyModifiers::CONTROL), Some(Action::PreviousBuffer));
        assert_eq!(key(KeyCode::Char('1'), KeyModifiers::ALT), Some(Action::GoTo(0)));
        assert_eq!(key(KeyCode::Char('0'), KeyModifiers::ALT), Some(Action::GoTo(9)));
        assert_eq!(key(KeyCode::Enter, KeyModifiers::ALT), Some(Action::Insert('\n')));
        assert_eq!(key(KeyCode::Char('c'), KeyModifiers::CONTROL), Some(Action::Quit));
        assert_eq!(key(KeyCode::F(5), KeyModifiers::NONE), None);
        assert_eq!(action(&Event::Paste("a\nb".into())), Some(Action::Paste("a\nb".into())));
    }
}
