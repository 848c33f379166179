//! Client-only tags (IRCv3 `message-tags`): what a client's `+`-prefixed tags ask of
//! the hub, and the hub's message metadata and signals as tags again. Three are typed,
//! shared with every gateway: `+draft/reply` (the message answered), `+typing` and
//! `+draft/react`/`+draft/unreact`; the others travel as opaque client tags.

use parley_hub::{key_of, ClientTags, HubError, Meta, Reaction, RoomName, Signal, Typing};
use parley_proto::irc::Message;

use super::wire::msgid;

const REPLY: &str = "draft/reply";
const TYPING: &str = "typing";
const REACT: &str = "draft/react";
const UNREACT: &str = "draft/unreact";

/// The client-only tags of a message, without their `+`.
fn client_only(message: &Message) -> Vec<(String, String)> {
    message
        .tags
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix('+')?.to_owned(), value.clone().unwrap_or_default())))
        .collect()
}

/// The seq a `+draft/reply` msgid names, when it is a message of `target` (a channel's
/// `room/seq`, or `pm/seq` in a conversation); `None` for anything else, which is then
/// not relayed as a reply.
fn answered(msgid: &str, target: &str) -> Option<u64> {
    let (place, seq) = msgid.rsplit_once('/')?;
    let seq: u64 = seq.parse().ok()?;
    let same = match target.strip_prefix('#') {
        Some(channel) => key_of(channel) == key_of(place),
        None => place == "pm",
    };
    (same && seq > 0).then_some(seq)
}

/// A PRIVMSG's or NOTICE's metadata: the message it answers, and the other client tags.
/// Typing and reaction tags on a message are not the message's: they are dropped.
pub(super) fn meta(message: &Message, target: &str) -> Result<Meta, HubError> {
    let mut reply_to = None;
    let mut rest = Vec::new();
    for (key, value) in client_only(message) {
        match key.as_str() {
            REPLY => reply_to = reply_to.or_else(|| answered(&value, target)),
            TYPING | REACT | UNREACT => {}
            _ => rest.push((key, value)),
        }
    }
    Ok(Meta { reply_to, tags: ClientTags::new(rest)? })
}

/// A TAGMSG as a hub signal: typing, a reaction (with the `+draft/reply` it needs), or
/// only client tags; `None` when it carries nothing to relay.
pub(super) fn signal(message: &Message, target: &str) -> Result<Option<(Signal, ClientTags)>, HubError> {
    let mut typing = None;
    let mut reaction: Option<(String, bool)> = None;
    let mut reply = None;
    let mut rest = Vec::new();
    for (key, value) in client_only(message) {
        match key.as_str() {
            TYPING => typing = typing.or(Typing::parse(&value)),
            REACT => reaction = reaction.or(Some((value, false))),
            UNREACT => reaction = reaction.or(Some((value, true))),
            REPLY => reply = reply.or_else(|| answered(&value, target)),
            _ => rest.push((key, value)),
        }
    }
    let tags = ClientTags::new(rest)?;
    let signal = match (reaction, reply, typing) {
        (Some((reaction, removed)), Some(seq), _) => Signal::React(Reaction::new(seq, reaction, removed)?),
        (_, _, Some(typing)) => Signal::Typing(typing),
        _ if !tags.is_empty() => Signal::Tags,
        _ => return Ok(None),
    };
    Ok(Some((signal, tags)))
}

/// A signal's `msgid`: no `/`, so that no command takes it for a message's
/// (`room/seq`), which history and redaction look up.
pub(super) fn signal_msgid(id: u64) -> String {
    format!("t{id}")
}

/// A message's metadata as client tags, for sessions with `message-tags`.
pub(super) fn of_meta(meta: Option<&Meta>, room: Option<&RoomName>) -> Vec<(String, String)> {
    let Some(meta) = meta else { return Vec::new() };
    let mut tags = Vec::with_capacity(meta.tags.pairs().len() + 1);
    if let Some(seq) = meta.reply_to {
        tags.push((format!("+{REPLY}"), msgid(room, seq)));
    }
    tags.extend(meta.tags.pairs().iter().map(|(k, v)| (format!("+{k}"), v.clone())));
    tags
}

/// A signal as client tags.
pub(super) fn of_signal(signal: &Signal, tags: &ClientTags, room: Option<&RoomName>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(tags.pairs().len() + 2);
    match signal {
        Signal::Typing(typing) => out.push((format!("+{TYPING}"), typing.as_str().to_owned())),
        Signal::React(reaction) => {
            let key = if reaction.removed { UNREACT } else { REACT };
            out.push((format!("+{key}"), reaction.reaction.clone()));
            out.push((format!("+{REPLY}"), msgid(room, reaction.seq)));
        }
        Signal::Tags => {}
    }
    out.extend(tags.pairs().iter().map(|(k, v)| (format!("+{k}"), v.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line).expect("parses")
    }

    #[test]
    fn a_reply_names_a_message_of_the_same_place() {
        let m = parse("@+draft/reply=Dev/12;+example.com/x=1 PRIVMSG #dev :yes");
        let meta = meta(&m, "#dev").expect("valid");
        assert_eq!(meta.reply_to, Some(12));
        assert_eq!(meta.tags.pairs(), &[("example.com/x".to_owned(), "1".to_owned())]);
        assert_eq!(meta_of("@+draft/reply=ops/12 PRIVMSG #dev :x", "#dev"), None, "another room's message");
        assert_eq!(meta_of("@+draft/reply=pm/3 PRIVMSG bob :x", "bob"), Some(3));
        assert_eq!(meta_of("@+draft/reply=dev/x PRIVMSG #dev :x", "#dev"), None);
        assert_eq!(meta_of("@+draft/reply=dev/0 PRIVMSG #dev :x", "#dev"), None);
    }

    fn meta_of(line: &str, target: &str) -> Option<u64> {
        meta(&parse(line), target).expect("valid").reply_to
    }

    #[test]
    fn tagmsg_becomes_typing_a_reaction_or_tags() {
        let typing = signal(&parse("@+typing=active TAGMSG #dev"), "#dev").expect("valid");
        assert_eq!(typing.map(|s| s.0), Some(Signal::Typing(Typing::Active)));
        let react = signal(&parse("@+draft/react=👍;+draft/reply=dev/4 TAGMSG #dev"), "#dev").expect("valid");
        assert_eq!(react.map(|s| s.0), Some(Signal::React(Reaction::new(4, "👍".into(), false).expect("valid"))));
        let lone = signal(&parse("@+draft/react=👍 TAGMSG #dev"), "#dev").expect("valid");
        assert_eq!(lone, None, "a reaction to no message is nothing");
        let other = signal(&parse("@+x=1 TAGMSG #dev"), "#dev").expect("valid").expect("tags");
        assert_eq!(other.0, Signal::Tags);
        assert_eq!(signal(&parse("@msgid=x TAGMSG #dev"), "#dev").expect("valid"), None, "server tags are not relayed");
        let spaced = signal(&parse("@+draft/react=\\s;+draft/reply=dev/4 TAGMSG #dev"), "#dev");
        assert!(matches!(spaced, Err(HubError::BadReaction { .. })), "{spaced:?}");
    }
}
