//! IRCv3 capabilities: which ones Parley offers, and the set a client has enabled.
//!
//! The set lives in an atomic shared by the connection's reader (which handles `CAP`)
//! and its [`super::wire::IrcWire`] (which encodes what the hub says), because the wire
//! runs on the hub's task.

use std::sync::atomic::{AtomicU32, Ordering};

/// A capability Parley offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    /// Tags on messages (`msgid`, and client tags are accepted and dropped).
    MessageTags,
    /// `time=` on every message, with the time the server accepted it.
    ServerTime,
    /// The sender receives its own messages back, as stored.
    EchoMessage,
    /// Every prefix (`@+nick`) in NAMES and WHO, not only the highest.
    MultiPrefix,
    /// Batches (history playback, chathistory answers).
    Batch,
    /// SASL PLAIN against Parley accounts.
    Sasl,
    /// `account=` on messages from logged-in users.
    AccountTag,
    /// AWAY changes of channel members, as they happen.
    AwayNotify,
    /// `nick!user@host` in NAMES.
    UserhostInNames,
    /// `CHATHISTORY`; such clients ask for history and get no playback on JOIN.
    ChatHistory,
    /// Told of invitations to channels one is in.
    InviteNotify,
    /// Told when capabilities change (implied by `CAP LS 302`; none change here).
    Notify,
    /// `REDACT`: deleting messages, and being told of deletions as `REDACT`.
    Redaction,
    /// `MARKREAD`: read markers shared between one's sessions.
    ReadMarker,
    /// JOIN says the account and real name of who joined.
    ExtendedJoin,
    /// `AWAY`, `ACCOUNT` and `SETNAME` (with their capabilities) of monitored nicks
    /// that share no channel with one, too.
    ExtendedMonitor,
    /// `ACCOUNT` lines when someone in one's channels logs in or out.
    AccountNotify,
    /// `SETNAME` changes one's real name; told of others' changes.
    Setname,
    /// `@label=…` on a line comes back on its answer (with `batch`; see `labels.rs`).
    LabeledResponse,
}

impl Cap {
    /// Every capability, in the order `CAP LS` lists them.
    pub(crate) const ALL: [Cap; 19] = [
        Cap::MessageTags,
        Cap::ServerTime,
        Cap::EchoMessage,
        Cap::MultiPrefix,
        Cap::Batch,
        Cap::Sasl,
        Cap::AccountTag,
        Cap::AwayNotify,
        Cap::UserhostInNames,
        Cap::ChatHistory,
        Cap::InviteNotify,
        Cap::Notify,
        Cap::Redaction,
        Cap::ReadMarker,
        Cap::ExtendedJoin,
        Cap::ExtendedMonitor,
        Cap::AccountNotify,
        Cap::Setname,
        Cap::LabeledResponse,
    ];

    /// Its name on the wire.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cap::MessageTags => "message-tags",
            Cap::ServerTime => "server-time",
            Cap::EchoMessage => "echo-message",
            Cap::MultiPrefix => "multi-prefix",
            Cap::Batch => "batch",
            Cap::Sasl => "sasl",
            Cap::AccountTag => "account-tag",
            Cap::AwayNotify => "away-notify",
            Cap::UserhostInNames => "userhost-in-names",
            Cap::ChatHistory => "draft/chathistory",
            Cap::InviteNotify => "invite-notify",
            Cap::Notify => "cap-notify",
            Cap::Redaction => "draft/message-redaction",
            Cap::ReadMarker => "draft/read-marker",
            Cap::ExtendedJoin => "extended-join",
            Cap::ExtendedMonitor => "extended-monitor",
            Cap::AccountNotify => "account-notify",
            Cap::Setname => "setname",
            Cap::LabeledResponse => "labeled-response",
        }
    }

    /// The capability of that name.
    pub(crate) fn named(name: &str) -> Option<Cap> {
        Cap::ALL.into_iter().find(|cap| cap.name().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// How `CAP LS 302` shows it (with its value, for those that have one).
    pub(crate) fn advertised(self) -> String {
        match self {
            Cap::Sasl => "sasl=PLAIN".to_owned(),
            other => other.name().to_owned(),
        }
    }
}

/// The capabilities that change how shared events (messages, joins, away) look; two
/// sessions with the same set of these see the same bytes.
pub(crate) const EVENT_CAPS: [Cap; 4] = [Cap::MessageTags, Cap::ServerTime, Cap::AccountTag, Cap::AwayNotify];

/// The capabilities a client has enabled.
#[derive(Debug, Default)]
pub(crate) struct Caps(AtomicU32);

impl Caps {
    pub(crate) fn has(&self, cap: Cap) -> bool {
        self.0.load(Ordering::Acquire) & cap.bit() != 0
    }

    pub(crate) fn set(&self, cap: Cap, on: bool) {
        if on {
            self.0.fetch_or(cap.bit(), Ordering::AcqRel);
        } else {
            self.0.fetch_and(!cap.bit(), Ordering::AcqRel);
        }
    }

    /// How many of the [`EVENT_CAPS`] are on: none, all, or some.
    pub(crate) fn event_profile(&self) -> Profile {
        match EVENT_CAPS.iter().filter(|cap| self.has(**cap)).count() {
            0 => Profile::Plain,
            n if n == EVENT_CAPS.len() => Profile::Full,
            _ => Profile::Mixed,
        }
    }
}

/// How a session's enabled capabilities group it for shared encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// None of the event capabilities.
    Plain,
    /// All of them (what modern clients ask for).
    Full,
    /// Some: encoded for this session alone.
    Mixed,
}

/// Applies `CAP REQ`'s list (`a -b c`): all or nothing, as the specification asks.
/// Returns whether every capability was known.
pub(crate) fn request(caps: &Caps, list: &str) -> bool {
    let mut changes = Vec::new();
    for item in list.split_whitespace() {
        let (name, on) = match item.strip_prefix('-') {
            Some(name) => (name, false),
            None => (item, true),
        };
        match Cap::named(name) {
            Some(cap) => changes.push((cap, on)),
            None => return false,
        }
    }
    for (cap, on) in changes {
        caps.set(cap, on);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_all_or_nothing() {
        let caps = Caps::default();
        assert!(request(&caps, "server-time multi-prefix"));
        assert!(caps.has(Cap::ServerTime) && caps.has(Cap::MultiPrefix));
        assert!(!request(&caps, "batch no-such-cap"));
        assert!(!caps.has(Cap::Batch), "nothing of a refused request is enabled");
        assert!(request(&caps, "-server-time"));
        assert!(!caps.has(Cap::ServerTime));
    }

    #[test]
    fn profiles_group_the_event_caps() {
        let caps = Caps::default();
        assert_eq!(caps.event_profile(), Profile::Plain);
        caps.set(Cap::ServerTime, true);
        assert_eq!(caps.event_profile(), Profile::Mixed);
        for cap in EVENT_CAPS {
            caps.set(cap, true);
        }
        assert_eq!(caps.event_profile(), Profile::Full);
        caps.set(Cap::EchoMessage, true);
        assert_eq!(caps.event_profile(), Profile::Full, "echo-message changes only the sender's own view");
    }
}
