//! What users type, and the names they choose: the command parser and the hub's name
//! rules never panic, and what they accept obeys the documented rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_hub::{Nick, RoomName};
use parley_proto::line::Input;

fuzz_target!(|text: &str| {
    match Input::parse(text) {
        Input::Msg { to, text } => {
            assert!(!to.is_empty() && !to.contains(char::is_whitespace));
            assert!(!text.trim().is_empty());
        }
        Input::Nick(arg) | Input::Join(arg) => assert!(!arg.is_empty() && !arg.contains(char::is_whitespace)),
        _ => {}
    }
    // Names (RFC 8265, the default): IRC's ASCII characters, and no space, control or
    // other separator from anywhere else; a name's spelling is the name. (Its key need
    // not be a name: `İ` lower-cases to `i` and a dot above, one letter more, and
    // Cherokee's small letters are newer than RFC 8265's tables.)
    let unicode_ok = |c: char| c.is_ascii() || !(c.is_whitespace() || c.is_control());
    if let Ok(nick) = Nick::parse(text, 32) {
        let name = nick.as_str();
        assert!(name.chars().count() <= 32 && !name.is_empty());
        assert!(name
            .chars()
            .all(|c| unicode_ok(c) && (!c.is_ascii() || c.is_ascii_alphanumeric() || "-_[]\\`^{}|".contains(c))));
        assert!(!name.starts_with(|c: char| c.is_ascii_digit() || c == '-'));
        assert_eq!(Nick::parse(name, 32).ok().as_ref(), Some(&nick));
    }
    if let Ok(room) = RoomName::parse(text, 32) {
        let name = room.as_str();
        assert!(name.chars().count() <= 32 && !name.is_empty());
        assert!(name
            .chars()
            .all(|c| unicode_ok(c) && (!c.is_ascii() || c.is_ascii_alphanumeric() || "-_.".contains(c))));
        assert_eq!(RoomName::parse(name, 32).ok().as_ref(), Some(&room));
    }
});
