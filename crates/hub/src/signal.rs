//! What clients tell each other beside the words: the message a message answers, tags
//! the server does not interpret, and signals that carry no message at all (someone is
//! typing, someone reacted to a message). They are data the hub checks and relays the
//! same way for every gateway; each gateway words them its way (IRC as `+draft/reply`,
//! `+typing`, `+draft/react` tags, the native protocol as fields and events).

use std::sync::Arc;

use crate::error::HubError;

/// The most bytes of client tags one message or signal may carry, keys and values
/// together: IRC's limit on the tag data a client sends (IRCv3 `message-tags`).
pub const MAX_TAG_BYTES: usize = 4094;

/// The most tags on one message or signal.
pub const MAX_TAGS: usize = 32;

/// The longest reaction, in bytes: an emoji sequence or a short word.
pub const MAX_REACTION: usize = 64;

/// Tags a client attached for other clients, which the server relays and keeps with the
/// message without reading them: `(name, value)` pairs, names in the IRCv3 form
/// `vendor/name` or `name` (without IRC's `+` prefix), values possibly empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTags(Vec<(String, String)>);

impl ClientTags {
    /// Checks tags a client sent: names of letters, digits, `-`, `.`, `/` (at most
    /// one `/`, after a vendor), values without control characters, at most
    /// [`MAX_TAGS`] of them in [`MAX_TAG_BYTES`]. The first of a repeated name wins.
    pub fn new(pairs: Vec<(String, String)>) -> Result<ClientTags, HubError> {
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        if pairs.len() > MAX_TAGS || bytes > MAX_TAG_BYTES {
            return Err(HubError::TagsTooLong { max: MAX_TAG_BYTES });
        }
        let mut kept: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !valid_name(&name) || value.chars().any(char::is_control) {
                return Err(HubError::BadTag(name.chars().take(64).collect()));
            }
            if !kept.iter().any(|(k, _)| *k == name) {
                kept.push((name, value));
            }
        }
        Ok(ClientTags(kept))
    }

    /// The tags, in the order the client gave them.
    #[must_use]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn valid_name(name: &str) -> bool {
    let (vendor, key) = name.rsplit_once('/').unwrap_or(("", name));
    let vendor_ok = vendor.is_empty() || vendor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    !key.is_empty()
        && name.len() <= 200
        && vendor_ok
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// What a message carries beside its text: the message it answers and the client tags.
/// Kept with the message in history, so replays show the same.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// The seq of the message this one answers, in the same room or conversation.
    pub reply_to: Option<u64>,
    /// Tags for other clients.
    pub tags: ClientTags,
}

impl Meta {
    /// `None` when there is nothing to carry, so that a plain message costs nothing.
    #[must_use]
    pub fn shared(self) -> Option<Arc<Meta>> {
        (self.reply_to.is_some() || !self.tags.is_empty()).then(|| Arc::new(self))
    }
}

/// Where someone is with a message they are writing (IRCv3 `typing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Typing {
    /// Writing now; clients show it for about 6 seconds unless it is repeated.
    Active,
    /// Stopped for a while, with text still in the input.
    Paused,
    /// Stopped: sent or cleared.
    Done,
}

impl Typing {
    /// The state's name on every wire: `active`, `paused`, `done`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Typing::Active => "active",
            Typing::Paused => "paused",
            Typing::Done => "done",
        }
    }

    /// The state named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Typing> {
        match name {
            "active" => Some(Typing::Active),
            "paused" => Some(Typing::Paused),
            "done" => Some(Typing::Done),
            _ => None,
        }
    }
}

/// A reaction to a message, or taking one back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    /// The message's seq, in the room or conversation the signal goes to.
    pub seq: u64,
    /// The reaction: an emoji or a short word.
    pub reaction: String,
    /// True when the reaction is taken back.
    pub removed: bool,
}

impl Reaction {
    /// Checks what a client sent: a reaction of 1 to [`MAX_REACTION`] bytes without
    /// control characters or spaces at its ends. (The hub checks the seq, knowing the
    /// room.)
    pub fn new(seq: u64, reaction: String, removed: bool) -> Result<Reaction, HubError> {
        if reaction.is_empty()
            || reaction.len() > MAX_REACTION
            || reaction.trim() != reaction
            || reaction.chars().any(char::is_control)
        {
            return Err(HubError::BadReaction { max: MAX_REACTION });
        }
        Ok(Reaction { seq, reaction, removed })
    }
}

/// What a client tells the others in a room or conversation without a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Whether they are typing.
    Typing(Typing),
    /// A reaction to a message.
    React(Reaction),
    /// Only client tags (IRC's `TAGMSG` with tags the server does not interpret).
    Tags,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Result<ClientTags, HubError> {
        ClientTags::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn client_tags_are_checked_and_bounded() {
        assert!(tags(&[("example.com/x", "1"), ("y", "")]).is_ok());
        assert_eq!(tags(&[("a", "1"), ("a", "2")]).expect("kept").pairs(), &[("a".to_owned(), "1".to_owned())]);
        for bad in ["", "a b", "x/", "a=b", "v;x", "é"] {
            assert!(matches!(tags(&[(bad, "v")]), Err(HubError::BadTag(_))), "{bad:?}");
        }
        assert!(matches!(tags(&[("a", "line\nbreak")]), Err(HubError::BadTag(_))));
        let long = "v".repeat(MAX_TAG_BYTES);
        assert!(matches!(tags(&[("a", &long)]), Err(HubError::TagsTooLong { .. })));
        let many: Vec<(String, String)> = (0..=MAX_TAGS).map(|i| (format!("t{i}"), String::new())).collect();
        assert!(matches!(ClientTags::new(many), Err(HubError::TagsTooLong { .. })));
    }

    #[test]
    fn reactions_are_checked() {
        assert!(Reaction::new(1, "👍".into(), false).is_ok());
        for bad in ["", " x", "a\u{7}", &"x".repeat(MAX_REACTION + 1)] {
            assert!(matches!(Reaction::new(3, bad.to_owned(), false), Err(HubError::BadReaction { .. })), "{bad:?}");
        }
    }

    #[test]
    fn a_message_without_meta_carries_none() {
        assert_eq!(Meta::default().shared(), None);
        assert!(Meta { reply_to: Some(3), tags: ClientTags::default() }.shared().is_some());
    }
}
