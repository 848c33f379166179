//! Property tests of the IRC syntax: no line makes the parser panic, what it accepts obeys
//! IRC's limits, every message it writes parses back to itself, and text split for IRC
//! clients fits their lines.

use bytes::BytesMut;
use parley_proto::irc::{
    escape_tag_value, mask_matches, split_text, unescape_tag_value, Message, MAX_BODY, MAX_LINE_WITH_TAGS, MAX_PARAMS,
};
use parley_proto::line::LineDecoder;
use proptest::collection::vec;
use proptest::prelude::*;

/// A middle parameter: no space, not starting with `:`, not empty; anything else,
/// control characters and non-ASCII included (but no line breaks, which end a line).
fn middle() -> impl Strategy<Value = String> {
    "[^ :\r\n\0][^ \r\n\0]{0,12}"
}

/// A trailing parameter: anything but line breaks.
fn trailing() -> impl Strategy<Value = String> {
    "[^\r\n\0]{0,40}"
}

fn message() -> impl Strategy<Value = Message> {
    (
        vec(("[a-z+][a-z0-9/.-]{0,8}", proptest::option::of("[^\r\n\0]{0,12}")), 0..4),
        proptest::option::of("[a-zA-Z][a-zA-Z0-9!~@.]{0,16}"),
        prop_oneof!["[A-Za-z]{1,10}", "[0-9]{3}"],
        vec(middle(), 0..(MAX_PARAMS - 1)),
        proptest::option::of(trailing()),
    )
        .prop_map(|(tags, source, command, mut params, last)| {
            params.extend(last);
            Message { tags, source, command, params }
        })
}

proptest! {
    #[test]
    fn any_line_parses_or_is_refused_without_panicking(line in any::<String>()) {
        if let Ok(message) = Message::parse(&line) {
            prop_assert!(message.params.len() <= MAX_PARAMS);
            prop_assert!(!message.command.is_empty());
        }
    }

    #[test]
    fn written_messages_parse_back_to_themselves(message in message()) {
        let line = message.to_line();
        prop_assert!(line.ends_with("\r\n"));
        prop_assert_eq!(Message::parse(&line), Ok(message));
    }

    #[test]
    fn parsed_lines_write_back_to_the_same_message(bytes in vec(any::<u8>(), 0..1200), chunk in 1usize..64) {
        let mut decoder = LineDecoder::new(MAX_LINE_WITH_TAGS);
        let mut buf = BytesMut::new();
        for piece in bytes.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Ok(Some(line)) = decoder.decode(&mut buf) {
                if let Ok(message) = Message::parse(&line) {
                    let again = Message::parse(&message.to_line());
                    prop_assert_eq!(again, Ok(message));
                }
            }
        }
    }

    #[test]
    fn bodies_over_512_bytes_are_refused(command in "[A-Z]{1,8}", text in "[a-z ]{600,700}") {
        let line = format!("{command} #a :{text}");
        prop_assert!(line.len() + 2 > MAX_BODY);
        prop_assert!(Message::parse(&line).is_err());
    }

    #[test]
    fn tag_values_survive_escaping(value in any::<String>()) {
        let mut escaped = String::new();
        escape_tag_value(&value, &mut escaped);
        prop_assert!(!escaped.contains([' ', ';', '\r', '\n']));
        prop_assert_eq!(unescape_tag_value(&escaped), value);
    }

    #[test]
    fn split_text_fits_lines_and_keeps_every_word(words in vec("[^ \r\n\0]{1,30}", 0..60), max in 4usize..200) {
        let text = words.join(" ");
        let pieces = split_text(&text, max);
        for piece in &pieces {
            prop_assert!(piece.len() <= max, "{:?} over {}", piece, max);
            prop_assert!(!piece.contains(['\n', '\r', '\0']));
        }
        // Nothing is lost: the pieces hold every character but the white space cut at
        // (a piece of white space alone would be an empty line, and is left out).
        let kept: String = pieces.concat().chars().filter(|c| !c.is_whitespace()).collect();
        let given: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        prop_assert_eq!(kept, given);
    }

    #[test]
    fn masks_match_themselves_and_stars_match_all(text in "[^*?]{0,30}", other in any::<String>()) {
        prop_assert!(mask_matches(&text, &text));
        prop_assert!(mask_matches(&text.to_ascii_uppercase(), &text));
        prop_assert!(mask_matches("*", &other));
        let _ = mask_matches(&other, &text);
    }
}
