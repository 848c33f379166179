//! The line being typed: editing, the history of sent lines, and tab completion. Pure
//! text operations, so they are tested without a terminal. The cursor moves by
//! grapheme (an emoji with modifiers, a letter with its accents: one step), and the
//! visible part is measured in terminal columns, where CJK characters and most emoji
//! take two.

use unicode_segmentation::UnicodeSegmentation as _;
use unicode_width::UnicodeWidthStr as _;

/// Lines remembered for Up/Down.
const HISTORY: usize = 500;

/// Every command `/help` lists, for completion.
pub(crate) const COMMANDS: &[&str] = &[
    "/audit",
    "/ban",
    "/context",
    "/delete",
    "/deop",
    "/help",
    "/history",
    "/join",
    "/kick",
    "/login",
    "/msg",
    "/mute",
    "/nick",
    "/op",
    "/part",
    "/password",
    "/quit",
    "/register",
    "/rooms",
    "/search",
    "/topic",
    "/unban",
    "/unmute",
    "/who",
];

/// What completion chooses from.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Candidates<'a> {
    /// The members of the room on screen (or the other party of a conversation).
    pub(crate) nicks: &'a [String],
    /// The rooms we know of.
    pub(crate) rooms: &'a [String],
}

/// An ongoing completion: the word replaced, and the choices Tab cycles through.
#[derive(Debug, Clone)]
struct Completion {
    /// Where the completed word starts (a byte offset).
    start: usize,
    /// Where the inserted choice ends; Tab cycles only while the cursor is there.
    end: usize,
    choices: Vec<String>,
    index: usize,
}

/// The line editor.
#[derive(Debug, Default, Clone)]
pub(crate) struct Editor {
    text: String,
    /// A byte offset into `text`, always at a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// The history entry shown while browsing with Up/Down.
    browsing: Option<usize>,
    /// What was typed before browsing began, given back past the newest entry.
    draft: String,
    completion: Option<Completion>,
}

impl Editor {
    /// The text typed so far.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, as a byte offset into [`text`](Self::text).
    #[cfg(test)]
    pub(crate) fn cursor(&self) -> usize {
        self.cursor
    }

    /// Types one character at the cursor.
    pub(crate) fn insert(&mut self, c: char) {
        self.completion = None;
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Inserts pasted text at the cursor, newlines included (sent as one message).
    /// Carriage returns become newlines and other control characters are dropped, so
    /// a paste can never smuggle escape sequences into a message.
    pub(crate) fn paste(&mut self, text: &str) {
        self.completion = None;
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let clean: String = text.chars().filter(|c| *c == '\n' || *c == '\t' || !c.is_control()).collect();
        let clean = clean.trim_end_matches('\n');
        self.text.insert_str(self.cursor, clean);
        self.cursor += clean.len();
    }

    fn previous_boundary(&self) -> usize {
        self.text[..self.cursor].grapheme_indices(true).next_back().map_or(0, |(at, _)| at)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..].graphemes(true).next().map_or(self.cursor, |g| self.cursor + g.len())
    }

    /// Moves one grapheme left.
    pub(crate) fn left(&mut self) {
        self.completion = None;
        self.cursor = self.previous_boundary();
    }

    /// Moves one grapheme right.
    pub(crate) fn right(&mut self) {
        self.completion = None;
        self.cursor = self.next_boundary();
    }

    /// Moves to the start of the previous word.
    pub(crate) fn word_left(&mut self) {
        self.completion = None;
        self.cursor = self.word_start();
    }

    /// Moves past the end of the next word.
    pub(crate) fn word_right(&mut self) {
        self.completion = None;
        let rest = &self.text[self.cursor..];
        let skip_space = rest.len() - rest.trim_start().len();
        let word = rest[skip_space..].find(char::is_whitespace).unwrap_or(rest.len() - skip_space);
        self.cursor += skip_space + word;
    }

    /// Moves to the start of the line.
    pub(crate) fn home(&mut self) {
        self.completion = None;
        self.cursor = 0;
    }

    /// Moves to the end of the line.
    pub(crate) fn end(&mut self) {
        self.completion = None;
        self.cursor = self.text.len();
    }

    /// Deletes the grapheme before the cursor.
    pub(crate) fn backspace(&mut self) {
        self.completion = None;
        let from = self.previous_boundary();
        self.text.replace_range(from..self.cursor, "");
        self.cursor = from;
    }

    /// Deletes the grapheme under the cursor.
    pub(crate) fn delete(&mut self) {
        self.completion = None;
        let to = self.next_boundary();
        self.text.replace_range(self.cursor..to, "");
    }

    /// Where the word before the cursor starts (spaces before the cursor skipped).
    fn word_start(&self) -> usize {
        let before = self.text[..self.cursor].trim_end();
        before.rfind(char::is_whitespace).map_or(0, |at| at + before[at..].chars().next().map_or(1, char::len_utf8))
    }

    /// Ctrl-W: deletes the word before the cursor, and the spaces after it.
    pub(crate) fn delete_word(&mut self) {
        self.completion = None;
        let from = self.word_start();
        self.text.replace_range(from..self.cursor, "");
        self.cursor = from;
    }

    /// Ctrl-U: deletes everything before the cursor.
    pub(crate) fn kill_to_start(&mut self) {
        self.completion = None;
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl-K: deletes everything from the cursor on.
    pub(crate) fn kill_to_end(&mut self) {
        self.completion = None;
        self.text.truncate(self.cursor);
    }

    /// Enter: takes the line (and remembers it for Up), leaving the editor empty.
    pub(crate) fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.completion = None;
        self.draft.clear();
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        text
    }

    /// Up: the previous line sent (what was being typed is kept for Down).
    pub(crate) fn history_back(&mut self) {
        self.completion = None;
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        self.text.clone_from(&self.history[index]);
        self.cursor = self.text.len();
    }

    /// Down: the next line sent, then what was being typed.
    pub(crate) fn history_forward(&mut self) {
        self.completion = None;
        let Some(index) = self.browsing else { return };
        if index + 1 < self.history.len() {
            self.browsing = Some(index + 1);
            self.text.clone_from(&self.history[index + 1]);
        } else {
            self.browsing = None;
            self.text = std::mem::take(&mut self.draft);
        }
        self.cursor = self.text.len();
    }

    /// Tab: completes the word before the cursor (a command first on the line, a room
    /// after `/join` or `#`, a nick otherwise), or, pressed again, the next choice.
    pub(crate) fn complete(&mut self, candidates: Candidates<'_>) {
        if let Some(completion) = &mut self.completion {
            if completion.end == self.cursor && !completion.choices.is_empty() {
                completion.index = (completion.index + 1) % completion.choices.len();
                let (start, end) = (completion.start, completion.end);
                let choice = completion.choices[completion.index].clone();
                self.text.replace_range(start..end, &choice);
                self.cursor = start + choice.len();
                if let Some(completion) = &mut self.completion {
                    completion.end = self.cursor;
                }
                return;
            }
        }
        let before = &self.text[..self.cursor];
        let start = before.rfind(char::is_whitespace).map_or(0, |at| at + 1);
        let word = &before[start..];
        if word.is_empty() {
            return;
        }
        let first_word = before[..start].trim().is_empty();
        let command = before.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        let lower = word.to_ascii_lowercase();
        let matching = |name: &str| name.to_ascii_lowercase().starts_with(&lower);
        let mut choices: Vec<String> = if first_word && word.starts_with('/') {
            COMMANDS.iter().filter(|c| matching(c)).map(|c| format!("{c} ")).collect()
        } else if let Some(room) = word.strip_prefix('#') {
            let lower = room.to_ascii_lowercase();
            candidates
                .rooms
                .iter()
                .filter(|r| r.to_ascii_lowercase().starts_with(&lower))
                .map(|r| format!("#{r} "))
                .collect()
        } else if command == "/join" && !first_word {
            candidates.rooms.iter().filter(|r| matching(r)).map(|r| format!("{r} ")).collect()
        } else {
            let suffix = if first_word { ": " } else { " " };
            candidates.nicks.iter().filter(|n| matching(n)).map(|n| format!("{n}{suffix}")).collect()
        };
        choices.sort_by_key(|c| c.to_ascii_lowercase());
        choices.dedup();
        let Some(first) = choices.first().cloned() else { return };
        self.text.replace_range(start..self.cursor, &first);
        self.cursor = start + first.len();
        self.completion = Some(Completion { start, end: self.cursor, choices, index: 0 });
    }

    /// What fits in `width` columns: the visible text (newlines shown as `↵`) and the
    /// cursor's column in it. The view slides so that the cursor is always visible.
    pub(crate) fn view(&self, width: usize) -> (String, usize) {
        let shown = |s: &str| s.replace('\n', "↵").replace('\t', " ");
        let before = shown(&self.text[..self.cursor]);
        let after = shown(&self.text[self.cursor..]);
        if width == 0 {
            return (String::new(), 0);
        }
        // Keep the cursor on screen, with room for one more column after it.
        let mut start = 0;
        let graphemes: Vec<(usize, &str)> = before.grapheme_indices(true).collect();
        let mut cursor_col = before.width();
        for (at, g) in &graphemes {
            if cursor_col < width {
                break;
            }
            cursor_col -= g.width();
            start = at + g.len();
        }
        let mut visible = before[start..].to_owned();
        let mut used = cursor_col;
        for g in after.graphemes(true) {
            if used + g.width() > width {
                break;
            }
            used += g.width();
            visible.push_str(g);
        }
        (visible, cursor_col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Editor {
        let mut editor = Editor::default();
        text.chars().for_each(|c| editor.insert(c));
        editor
    }

    #[test]
    fn cursor_keys_move_and_edit_in_the_middle() {
        let mut e = typed("helo");
        e.left();
        e.insert('l');
        assert_eq!(e.text(), "hello");
        e.home();
        e.delete();
        e.insert('j');
        e.end();
        e.backspace();
        assert_eq!(e.text(), "jell");
        assert_eq!(e.cursor(), 4);
    }

    #[test]
    fn wide_and_combined_characters_are_one_step() {
        let mut e = typed("a日👍🏽b");
        e.left();
        e.left();
        e.backspace();
        assert_eq!(e.text(), "a👍🏽b", "the CJK character went whole");
        e.right();
        e.backspace();
        assert_eq!(e.text(), "ab", "the emoji and its skin tone went together");
    }

    #[test]
    fn ctrl_w_and_ctrl_u_and_ctrl_k_delete_words_and_ends() {
        let mut e = typed("say hello  world");
        e.delete_word();
        assert_eq!(e.text(), "say hello  ");
        e.delete_word();
        assert_eq!(e.text(), "say ");
        let mut e = typed("one two three");
        e.word_left();
        e.kill_to_start();
        assert_eq!((e.text(), e.cursor()), ("three", 0));
        e.word_right();
        e.word_left();
        e.right();
        e.kill_to_end();
        assert_eq!(e.text(), "t");
    }

    #[test]
    fn history_browses_back_and_returns_the_draft() {
        let mut e = typed("first");
        e.take();
        "second".chars().for_each(|c| e.insert(c));
        e.take();
        "draft".chars().for_each(|c| e.insert(c));
        e.history_back();
        assert_eq!(e.text(), "second");
        e.history_back();
        e.history_back();
        assert_eq!(e.text(), "first");
        e.history_forward();
        assert_eq!(e.text(), "second");
        e.history_forward();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn a_paste_keeps_its_lines_and_loses_control_characters() {
        let mut e = typed("> ");
        e.paste("line one\r\nline\x1b[2J two\n");
        assert_eq!(e.text(), "> line one\nline[2J two");
        assert_eq!(e.view(80).0, "> line one↵line[2J two");
    }

    #[test]
    fn tab_completes_nicks_rooms_and_commands_and_cycles() {
        let nicks = vec!["bob".to_owned(), "Bobby".to_owned(), "carol".to_owned()];
        let rooms = vec!["dev".to_owned(), "design".to_owned(), "lobby".to_owned()];
        let candidates = Candidates { nicks: &nicks, rooms: &rooms };

        let mut e = typed("bo");
        e.complete(candidates);
        assert_eq!(e.text(), "bob: ");
        e.complete(candidates);
        assert_eq!(e.text(), "Bobby: ");
        e.complete(candidates);
        assert_eq!(e.text(), "bob: ");
        e.insert('h');
        e.insert(' ');
        e.insert('c');
        e.complete(candidates);
        assert_eq!(e.text(), "bob: h carol ", "a nick mid-line gets a space");

        let mut e = typed("/jo");
        e.complete(candidates);
        assert_eq!(e.text(), "/join ");
        "de".chars().for_each(|c| e.insert(c));
        e.complete(candidates);
        assert_eq!(e.text(), "/join design ");
        e.complete(candidates);
        assert_eq!(e.text(), "/join dev ");

        let mut e = typed("see #lo");
        e.complete(candidates);
        assert_eq!(e.text(), "see #lobby ");

        let mut e = typed("zz");
        e.complete(candidates);
        assert_eq!(e.text(), "zz", "nothing matches, nothing changes");
    }

    #[test]
    fn the_view_slides_to_keep_the_cursor_visible_in_columns() {
        let e = typed("0123456789");
        assert_eq!(e.view(5), ("6789".to_owned(), 4));
        let mut e = typed("日本語のテキスト");
        assert_eq!(e.view(7), ("キスト".to_owned(), 6));
        e.home();
        assert_eq!(e.view(7), ("日本語".to_owned(), 0), "a wide character that does not fit is left out");
    }
}
