//! IRC's message syntax: RFC 1459/2812 lines with IRCv3 message tags.
//!
//! ```text
//! [@tag=value;tag2 ]:source COMMAND param param :trailing param\r\n
//! ```
//!
//! The body (source, command, parameters) is at most 512 bytes with its `\r\n`; tags add
//! at most 8191 bytes of their own (IRCv3 `message-tags`). Lines are read with the
//! bounded [`crate::line::LineDecoder`] at [`MAX_LINE_WITH_TAGS`]; [`Message::parse`]
//! then checks each part against its own limit, so a peer cannot make the server buffer
//! more than one maximal line.

use std::fmt::Write as _;

/// The longest body of a line, `\r\n` included (RFC 1459).
pub const MAX_BODY: usize = 512;

/// The longest tag section, from `@` to the space after it (IRCv3 `message-tags`).
pub const MAX_TAGS: usize = 8191;

/// The longest line a reader accepts, without its `\r\n`: a full tag section and a full
/// body.
pub const MAX_LINE_WITH_TAGS: usize = MAX_TAGS + MAX_BODY - 2;

/// The most parameters a message has (RFC 2812: 14 middle ones and a trailing one).
pub const MAX_PARAMS: usize = 15;

/// A line that is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is empty, or only spaces (clients may send these; they are ignored).
    #[error("empty line")]
    Empty,
    /// The body is longer than [`MAX_BODY`].
    #[error("input line too long")]
    BodyTooLong,
    /// The tag section is longer than [`MAX_TAGS`].
    #[error("message tags too long")]
    TagsTooLong,
    /// There is a source or tags, but no command after them.
    #[error("no command")]
    NoCommand,
    /// The command is neither letters nor a three-digit numeric.
    #[error("malformed command")]
    BadCommand,
    /// The line holds a NUL or a CR before its end, which IRC forbids anywhere in a
    /// message (and which would end the line early for some peers).
    #[error("lines may not contain NUL or CR characters")]
    ForbiddenCharacter,
}

/// One IRC message, owned. Commands are kept as sent; compare them with
/// [`Message::is`], which ignores ASCII case as servers do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The message tags, in order, values unescaped (`None`: a tag without `=`).
    pub tags: Vec<(String, Option<String>)>,
    /// Who sent it (`nick!user@host` or a server name), without the `:`.
    pub source: Option<String>,
    /// The command or three-digit numeric.
    pub command: String,
    /// The parameters; the last may contain spaces.
    pub params: Vec<String>,
}

impl Message {
    /// A message with no tags and no source.
    pub fn new(command: &str, params: &[&str]) -> Message {
        Message {
            tags: Vec::new(),
            source: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Parses one line, without its `\r\n`.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.contains(['\0', '\r', '\n']) {
            return Err(ParseError::ForbiddenCharacter);
        }
        let mut rest = line.trim_start_matches(' ');
        let mut message = Message::default();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (tags, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
            // '@', the tags, and the space that ends them.
            if tags.len() + 2 > MAX_TAGS {
                return Err(ParseError::TagsTooLong);
            }
            message.tags = tags.split(';').filter(|t| !t.is_empty()).map(parse_tag).collect();
            rest = after.trim_start_matches(' ');
        }
        // The body with its "\r\n".
        if rest.len() + 2 > MAX_BODY {
            return Err(ParseError::BodyTooLong);
        }
        if let Some(sourced) = rest.strip_prefix(':') {
            let (source, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
            message.source = Some(source.to_owned());
            rest = after.trim_start_matches(' ');
        }
        if rest.is_empty() {
            return Err(if message.tags.is_empty() && message.source.is_none() && line.trim().is_empty() {
                ParseError::Empty
            } else {
                ParseError::NoCommand
            });
        }
        let (command, mut params) = rest.split_once(' ').unwrap_or((rest, ""));
        let numeric = command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit());
        if !numeric && !command.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ParseError::BadCommand);
        }
        message.command = command.to_owned();
        loop {
            params = params.trim_start_matches(' ');
            if params.is_empty() {
                break;
            }
            if let Some(trailing) = params.strip_prefix(':') {
                message.params.push(trailing.to_owned());
                break;
            }
            // Past the most parameters, the rest is one last parameter (RFC 2812 2.3.1).
            if message.params.len() == MAX_PARAMS - 1 {
                message.params.push(params.to_owned());
                break;
            }
            let (param, after) = params.split_once(' ').unwrap_or((params, ""));
            message.params.push(param.to_owned());
            params = after;
        }
        Ok(message)
    }

    /// Whether this is `command`, ignoring ASCII case.
    #[must_use]
    pub fn is(&self, command: &str) -> bool {
        self.command.eq_ignore_ascii_case(command)
    }

    /// The parameter at `index`.
    #[must_use]
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }

    /// The value of a tag (`Some("")` for a tag without a value).
    #[must_use]
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_deref().unwrap_or(""))
    }

    /// The message as a line, with `\r\n`. The last parameter is written as a trailing one
    /// (`:` first) when it must be: empty, containing a space, or starting with `:`.
    #[must_use]
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        if !self.tags.is_empty() {
            out.push('@');
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                out.push_str(key);
                if let Some(value) = value {
                    out.push('=');
                    escape_tag_value(value, &mut out);
                }
            }
            out.push(' ');
        }
        if let Some(source) = &self.source {
            let _ = write!(out, ":{source} ");
        }
        out.push_str(&self.command);
        for (i, param) in self.params.iter().enumerate() {
            let last = i + 1 == self.params.len();
            if last && (param.is_empty() || param.contains(' ') || param.starts_with(':')) {
                let _ = write!(out, " :{param}");
            } else {
                let _ = write!(out, " {param}");
            }
        }
        out.push_str("\r\n");
        out
    }
}

fn parse_tag(tag: &str) -> (String, Option<String>) {
    match tag.split_once('=') {
        Some((key, value)) => (key.to_owned(), Some(unescape_tag_value(value))),
        None => (tag.to_owned(), None),
    }
}

/// Escapes a tag value as IRCv3 requires (`;` `\` space CR LF).
pub fn escape_tag_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Reverses [`escape_tag_value`]; an unknown escape stands for its character, and a lone
/// trailing `\` is dropped (IRCv3 `message-tags`).
#[must_use]
pub fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The text of a CTCP `ACTION` (what `/me waves` sends: `\x01ACTION waves\x01`).
#[must_use]
pub fn ctcp_action(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("\x01ACTION")?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    Some(inner.strip_prefix(' ').unwrap_or(inner))
}

/// Whether the text is a CTCP request or reply other than `ACTION`.
#[must_use]
pub fn is_ctcp(text: &str) -> bool {
    text.starts_with('\x01') && ctcp_action(text).is_none()
}

/// Splits a message's text into pieces that each fit in `max` bytes and hold no line
/// break: at newlines first, then at the last space before the limit, or at a character
/// boundary when a word is longer than a whole piece. `\r` and NUL are dropped; empty
/// lines are skipped. Chat messages from other protocols can be longer than an IRC line
/// and span several lines; this is how they reach IRC clients whole.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    for line in text.split('\n') {
        let line: String = line.chars().filter(|c| *c != '\r' && *c != '\0').collect();
        let mut rest = line.as_str();
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let at_space = rest[..cut].rfind(' ').filter(|at| *at > max / 2);
            let (piece, after) = match at_space {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => rest.split_at(cut),
            };
            pieces.push(piece.to_owned());
            rest = after;
        }
        if !rest.trim().is_empty() {
            pieces.push(rest.to_owned());
        }
    }
    pieces
}

/// Whether `mask` (with `*` and `?` wildcards) matches `text`, ignoring ASCII case, as
/// IRC compares masks.
#[must_use]
pub fn mask_matches(mask: &str, text: &str) -> bool {
    let (mask, text): (Vec<u8>, Vec<u8>) = (
        mask.bytes().map(|b| b.to_ascii_lowercase()).collect(),
        text.bytes().map(|b| b.to_ascii_lowercase()).collect(),
    );
    // Iterative wildcard matching with one backtrack point: linear in practice, and
    // never exponential whatever the mask.
    let (mut m, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match mask.get(m) {
            Some(b'*') => {
                star = Some((m, t));
                m += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                m += 1;
                t += 1;
            }
            _ => match star {
                Some((sm, st)) => {
                    m = sm + 1;
                    t = st + 1;
                    star = Some((sm, st + 1));
                }
                None => return false,
            },
        }
    }
    mask[m..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line).expect("parses")
    }

    #[test]
    fn parses_the_parts_of_a_message() {
        let m = parse("@time=2026-11-30T12:00:00.000Z;msgid=7;+draft/react :alice!~u@parley PRIVMSG #lobby :hi there");
        assert_eq!(m.tag("time"), Some("2026-11-30T12:00:00.000Z"));
        assert_eq!(m.tag("+draft/react"), Some(""));
        assert_eq!(m.source.as_deref(), Some("alice!~u@parley"));
        assert!(m.is("privmsg"));
        assert_eq!(m.params, ["#lobby", "hi there"]);
        assert_eq!(parse("NICK alice").params, ["alice"]);
        assert_eq!(parse("USER a 0 * :Alice Liddell").params, ["a", "0", "*", "Alice Liddell"]);
        assert_eq!(parse("PRIVMSG #a ::)").params, ["#a", ":)"]);
        assert_eq!(parse("MODE  #a   +o  bob ").params, ["#a", "+o", "bob"]);
        assert_eq!(parse("PING").params, Vec::<String>::new());
        assert_eq!(parse("001 alice :Welcome").command, "001");
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(Message::parse(""), Err(ParseError::Empty));
        assert_eq!(Message::parse("   "), Err(ParseError::Empty));
        assert_eq!(Message::parse(":alice"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse("PRIV-MSG x"), Err(ParseError::BadCommand));
        assert_eq!(Message::parse("12 x"), Err(ParseError::BadCommand));
        assert_eq!(Message::parse("CAP END\r "), Err(ParseError::ForbiddenCharacter));
        assert_eq!(Message::parse("PRIVMSG #a :nul\0byte"), Err(ParseError::ForbiddenCharacter));
    }

    #[test]
    fn limits_body_and_tags_separately() {
        let body = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY - 2 - 12));
        assert_eq!(body.len() + 2, MAX_BODY);
        assert!(Message::parse(&body).is_ok());
        assert_eq!(Message::parse(&format!("{body}x")), Err(ParseError::BodyTooLong));
        let tags = format!("@a={}", "v".repeat(MAX_TAGS - 4));
        assert!(Message::parse(&format!("{tags} {body}")).is_ok());
        assert_eq!(Message::parse(&format!("{tags}v {body}")), Err(ParseError::TagsTooLong));
    }

    #[test]
    fn keeps_at_most_fifteen_parameters() {
        let m = parse("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16");
        assert_eq!(m.params.len(), MAX_PARAMS);
        assert_eq!(m.params[14], "15 16");
    }

    #[test]
    fn tag_values_round_trip_through_escaping() {
        let value = "a;b c\\d\r\ne";
        let mut escaped = String::new();
        escape_tag_value(value, &mut escaped);
        assert_eq!(escaped, "a\\:b\\sc\\\\d\\r\\ne");
        assert_eq!(unescape_tag_value(&escaped), value);
        assert_eq!(unescape_tag_value("x\\"), "x");
        assert_eq!(unescape_tag_value("\\b"), "b");
    }

    #[test]
    fn writes_lines_that_parse_back() {
        let mut m = Message::new("PRIVMSG", &["#lobby", ":) hello"]);
        m.tags.push(("time".into(), Some("2026-11-30T12:00:00.000Z".into())));
        m.source = Some("bob!~u@parley".into());
        let line = m.to_line();
        assert_eq!(line, "@time=2026-11-30T12:00:00.000Z :bob!~u@parley PRIVMSG #lobby ::) hello\r\n");
        assert_eq!(parse(&line), m);
        assert_eq!(Message::new("JOIN", &["#a"]).to_line(), "JOIN #a\r\n");
        assert_eq!(Message::new("TOPIC", &["#a", ""]).to_line(), "TOPIC #a :\r\n");
    }

    #[test]
    fn finds_actions_and_other_ctcp() {
        assert_eq!(ctcp_action("\x01ACTION waves\x01"), Some("waves"));
        assert_eq!(ctcp_action("\x01ACTION waves"), Some("waves"));
        assert_eq!(ctcp_action("waves"), None);
        assert!(is_ctcp("\x01VERSION\x01"));
        assert!(!is_ctcp("\x01ACTION x\x01"));
    }

    #[test]
    fn splits_long_and_multi_line_text() {
        assert_eq!(split_text("one\ntwo\r\n\nthree", 100), ["one", "two", "three"]);
        let words = "lorem ipsum dolor sit amet ".repeat(10);
        for piece in split_text(&words, 40) {
            assert!(piece.len() <= 40, "{piece:?}");
        }
        assert_eq!(split_text(&words, 40).join(" ").split_whitespace().count(), 50);
        let wide = "日本語".repeat(20);
        let pieces = split_text(&wide, 10);
        assert!(pieces.iter().all(|p| p.len() <= 10));
        assert_eq!(pieces.concat(), wide);
    }

    #[test]
    fn matches_masks_like_irc() {
        assert!(mask_matches("*!*@*", "alice!~u@parley"));
        assert!(mask_matches("Alice!*", "alice!~u@parley"));
        assert!(mask_matches("a?ice*", "ALICE"));
        assert!(!mask_matches("bob*", "alice"));
        assert!(mask_matches("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!mask_matches(&"*a".repeat(30), &"a".repeat(29)));
    }
}
