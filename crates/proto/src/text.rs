//! Text on its way to a terminal: what others wrote must not be able to drive it.
//!
//! A terminal obeys control characters in what it prints: `ESC` starts sequences that
//! move the cursor, clear the screen, retitle the window or (OSC 52) write the
//! clipboard, and the C1 controls U+0080–U+009F are 8-bit forms of the same (U+009B is a
//! whole CSI). Every client and gateway that writes someone else's text to a terminal
//! passes it through [`printable`] or [`printable_line`] first. Controls are replaced by
//! U+FFFD, visibly, so that nothing said disappears without a trace and what remains of
//! a sequence (`�]52;c;…`) shows that one was tried.

use std::borrow::Cow;

/// What a control character becomes.
pub const REPLACEMENT: char = '\u{FFFD}';

/// `text` with every control character replaced by [`REPLACEMENT`], except tab and
/// newline: C0 controls (ESC, BEL, CR, backspace, ...), DEL, and the C1 controls
/// U+0080–U+009F. Borrowed when there is nothing to replace, which is almost always.
#[must_use]
pub fn printable(text: &str) -> Cow<'_, str> {
    replace(text, |c| c == '\n' || c == '\t')
}

/// Like [`printable`], but newlines are replaced too: for text that must stay on one
/// line, where a newline could forge a line that seems to come from someone else.
#[must_use]
pub fn printable_line(text: &str) -> Cow<'_, str> {
    replace(text, |c| c == '\t')
}

fn replace(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    // A control is a byte below 0x20, 0x7F, or (C1) 0xC2 followed by 0x80..=0x9F: a
    // byte scan finds most text clean without decoding it.
    let suspect = |b: &u8| *b < 0x20 || *b == 0x7F || *b == 0xC2;
    if !text.bytes().any(|b| suspect(&b)) {
        return Cow::Borrowed(text);
    }
    if !text.chars().any(|c| c.is_control() && !keep(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| if c.is_control() && !keep(c) { REPLACEMENT } else { c }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_lose_their_escape_and_stay_visible() {
        assert_eq!(printable("\x1b]52;c;ZWNobyBwd25lZA==\x07"), "\u{FFFD}]52;c;ZWNobyBwd25lZA==\u{FFFD}");
        assert_eq!(printable("\x1b[2J"), "\u{FFFD}[2J");
        assert_eq!(printable("\u{9b}31m red"), "\u{FFFD}31m red");
        assert_eq!(printable("del\x7f bs\x08 cr\r nul\0"), "del\u{FFFD} bs\u{FFFD} cr\u{FFFD} nul\u{FFFD}");
    }

    #[test]
    fn tabs_and_newlines_stay_unless_the_text_is_one_line() {
        assert_eq!(printable("a\tb\nc"), "a\tb\nc");
        assert_eq!(printable_line("a\tb\nc"), "a\tb\u{FFFD}c");
    }

    #[test]
    fn clean_text_is_borrowed_and_unchanged() {
        for text in ["", "hello", "café ½ ¡hola! ÂÃ", "日本語 👍🏽", "\u{a0}non-breaking"] {
            assert!(matches!(printable(text), Cow::Borrowed(t) if t == text), "{text:?}");
            assert!(matches!(printable_line(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn every_control_is_replaced_and_nothing_else() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            let shown = printable_line(&text);
            let control = u32::from(c) < 0x20 && c != '\t' || (0x7F..=0x9F).contains(&u32::from(c));
            let expected = if control { REPLACEMENT.to_string() } else { text.clone() };
            assert_eq!(shown, expected, "U+{:04X}", u32::from(c));
        }
    }
}
