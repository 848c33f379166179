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
    if let Ok(nick) = Nick::parse(text, 32) {
        let name = nick.as_str();
        assert!(name.chars().count() <= 32 && !name.is_empty());
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-_[]\\`^{}|".contains(c)));
        assert!(!name.starts_with(|c: char| c.is_ascii_digit() || c == '-'));
    }
    if let Ok(room) = RoomName::parse(text, 32) {
        let name = room.as_str();
        assert!(name.chars().count() <= 32 && !name.is_empty());
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }
});
