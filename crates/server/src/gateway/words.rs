//! What the hub's typed errors and events say to people, and how room settings are
//! written: the words the line and native protocols show (and IRC where it has no
//! numeric of its own), in one place so that the gateways say the same thing.
//!
//! The hub speaks data only; its errors' `Display` is for the server's log.

use parley_hub::{
    Audience, HubError, LeaveReason, Mask, ModeChange, ModeProblem, NameRule, Nick, Notice, Renaming, RoomChange,
    RoomMode, RoomName, SearchProblem, Timestamp,
};

/// A deleted message, as those who cannot be told otherwise read it:
/// `carol deleted bob's message of 14:30:45: spam`.
pub(crate) fn deleted(by: &Nick, author: &Nick, said_at: &Timestamp, reason: Option<&str>) -> String {
    let whose = if by == author { "their".to_owned() } else { format!("{author}'s") };
    let said = said_at.with_timezone(&chrono::Local).format("%H:%M:%S");
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    format!("{by} deleted {whose} message of {said}{why}")
}

/// Who a message to some of a room's members is for: `the operators of dev`.
pub(crate) fn audience(room: &RoomName, audience: Audience) -> String {
    match audience {
        Audience::Operators => format!("the operators of {room}"),
        Audience::Voiced => format!("the operators and voiced members of {room}"),
    }
}

/// A refusal, as a sentence without its final period (`the nick bob is already taken`).
pub(crate) fn error(e: &HubError) -> String {
    match e {
        HubError::NickTaken(nick) => format!("the nick {nick} is already taken"),
        HubError::InvalidNick { nick, why } => format!("{nick:?} is not a valid nick: {}", name_rule(why, true)),
        HubError::InvalidRoom { room, why } => format!("{room:?} is not a valid room name: {}", name_rule(why, false)),
        HubError::RoomLookalike { room, existing } => {
            format!("#{room} looks too much like the room #{existing}; choose another name")
        }
        HubError::NoSuchNick(nick) => format!("no user is called {nick}"),
        HubError::NoSuchRoom(room) => format!("there is no room called {room}"),
        HubError::NotInRoom(room) => format!("you are not in {room}"),
        HubError::NoRoom => "you are not in a room; join one first".to_owned(),
        HubError::EmptyMessage => "the message is empty".to_owned(),
        HubError::MessageTooLong { max } => format!("the message is longer than {max} bytes"),
        HubError::TagsTooLong { max } => {
            format!("the tags are over {max} bytes or more than {} in number", parley_hub::MAX_TAGS)
        }
        HubError::BadTag(name) => format!("{name:?} is not a tag that may be relayed"),
        HubError::BadReaction { max } => format!("a reaction is 1 to {max} bytes of text, without spaces at its ends"),
        HubError::TooManyRooms { max } => format!("you are already in {max} rooms, the most allowed; leave one first"),
        HubError::NoAccounts => "this server keeps no accounts".to_owned(),
        HubError::AccountExists(name) => format!("the nick {name} is registered already"),
        HubError::BadLogin => "wrong account name or password".to_owned(),
        HubError::BadToken => "unknown, revoked or expired session token: log in with your password".to_owned(),
        HubError::NoSuchSession(id) => format!("you have no session {id} (see /sessions)"),
        HubError::NotRememberable => "only a login or a registration can be remembered".to_owned(),
        HubError::NotLoggedIn => "you are not logged in".to_owned(),
        HubError::WeakPassword { min, max } => {
            format!("a password has at least {min} characters and at most {max} bytes")
        }
        HubError::NickRegistered(nick) => format!("the nick {nick} is registered; log in to use it"),
        HubError::Busy => "the server is busy; try again in a moment".to_owned(),
        HubError::TooManyAttempts { retry_after_secs } => {
            format!("too many failed logins; try again in {retry_after_secs} seconds")
        }
        HubError::NoHistory => "this server keeps no history to search".to_owned(),
        HubError::BadSearch(problem) => search_problem(problem),
        HubError::NotAdmin => "only server admins may do that".to_owned(),
        HubError::NotOperator(room) => format!("only operators of {room} may do that"),
        HubError::ServerBanned { reason } => format!("you are banned from this server{}", because(reason.as_deref())),
        HubError::Banned { room, reason } => format!("you are banned from {room}{}", because(reason.as_deref())),
        HubError::Muted(room) => format!("you are muted in {room}"),
        HubError::Moderated(room) => format!("{room} is moderated; only operators and voiced users may speak"),
        HubError::WrongKey(room) => format!("{room} needs a key to join"),
        HubError::RoomFull(room) => format!("{room} is full"),
        HubError::InviteOnly(room) => format!("{room} is invite-only; ask an operator for an invitation"),
        HubError::AlreadyInRoom { nick, room } => format!("{nick} is already in {room}"),
        HubError::BadMode(problem) => mode_problem(problem),
        HubError::NotHere { nick, room } => format!("{nick} is not in {room}"),
        HubError::NoSuchAccount(name) => format!("there is no account called {name}"),
        HubError::BadMask(mask) => format!("{mask:?} is neither a nick nor an IP address"),
        HubError::TooLong { max_days } => {
            format!("a ban or mute lasts at most {max_days} days; leave the duration out for one until lifted")
        }
        HubError::TooManyBans { max } => format!("the ban list is full ({max}); lift a ban first"),
        HubError::RoomRegistered(room) => format!("{room} is registered already"),
        HubError::NoSuchMessage { room, seq } => format!("{room} has no message #{seq} you can see"),
        HubError::NotAuthor(room) => {
            format!("only its author or an operator of {room} may delete that message")
        }
        HubError::RoomNotRegistered(room) => format!("{room} is not registered"),
        HubError::TooManyRegistered { max } => format!("you have registered {max} rooms, the most allowed"),
        HubError::NotFounder(room) => format!("only the founder of {room} may do that"),
        HubError::StoreRead => "the server could not read its history".to_owned(),
        HubError::StoreWrite => "the server could not save this, so it was not done".to_owned(),
        HubError::NotShared { maybe: false } => {
            "this server cannot reach the rest of its cluster, so the message was not sent".to_owned()
        }
        HubError::NotShared { maybe: true } => {
            "the cluster did not confirm the message in time: it may or may not have been sent".to_owned()
        }
        HubError::ClusterUnreachable => {
            "this server cannot reach the rest of its cluster to check that nick, so it was not taken".to_owned()
        }
        HubError::ShuttingDown => "the server is shutting down".to_owned(),
    }
}

/// `: reason`, or nothing.
fn because(reason: Option<&str>) -> String {
    reason.map(|r| format!(": {r}")).unwrap_or_default()
}

fn name_rule(rule: &NameRule, nick: bool) -> String {
    let what = if nick { "a nick" } else { "a room name" };
    match rule {
        NameRule::Empty => format!("{what} cannot be empty"),
        NameRule::TooLong { max } => format!("{what} has at most {max} characters"),
        NameRule::Character(bad) if nick => {
            format!("{bad:?} is not allowed; use letters, digits and - _ [ ] \\ ` ^ {{ }} |")
        }
        NameRule::Character(bad) => format!("{bad:?} is not allowed; use letters, digits and - _ ."),
        NameRule::Start(_) => "a nick cannot start with a digit or '-'".to_owned(),
        NameRule::Mixed => format!("{what} cannot mix right-to-left and left-to-right letters like this"),
        NameRule::Reserved => format!("{what} cannot look like the Guest-… nicks the server gives"),
    }
}

fn search_problem(problem: &SearchProblem) -> String {
    match problem {
        SearchProblem::NoWords => "give at least one word to look for".to_owned(),
        SearchProblem::Date { filter, value } => format!("{filter}: takes a date as YYYY-MM-DD, not {value:?}"),
        SearchProblem::Page { value, max } => format!("page: takes a number from 1 to {max}, not {value:?}"),
    }
}

fn mode_problem(problem: &ModeProblem) -> String {
    match problem {
        ModeProblem::Key { max } => format!("a key has 1 to {max} bytes, without spaces, commas or colons"),
        ModeProblem::Limit { max } => format!("a member limit is from 1 to {max}"),
    }
}

/// ` until 2026-12-09 14:30 UTC`, or nothing.
fn until(at: Option<&Timestamp>) -> String {
    at.map(|t| format!(" until {}", t.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default()
}

/// A moderator's change, as a sentence with its final period.
pub(crate) fn room_change(by: &Nick, room: &RoomName, what: &RoomChange) -> String {
    match what {
        RoomChange::Banned { mask, until: end } => format!("{by} banned {mask} from {room}{}.", until(end.as_ref())),
        RoomChange::Unbanned { mask } => format!("{by} unbanned {mask} in {room}."),
        RoomChange::Muted { mask, until: end } => format!("{by} muted {mask} in {room}{}.", until(end.as_ref())),
        RoomChange::Unmuted { mask } => format!("{by} unmuted {mask} in {room}."),
        RoomChange::Promoted { nick } => format!("{by} made {nick} an operator of {room}."),
        RoomChange::Opped { account, .. } => format!("{by} made {account} an operator of {room}."),
        RoomChange::Demoted { nick } => format!("{by} took {nick}'s operator role in {room}."),
        RoomChange::Deopped { account, .. } => format!("{by} took {account}'s operator role in {room}."),
        RoomChange::Registered { founder: Some(founder) } => format!("{room} is now registered to {founder}."),
        RoomChange::Registered { founder: None } => format!("{room} is now registered."),
        RoomChange::Unregistered => format!("{room} is no longer registered."),
    }
}

/// A topic change, as a sentence.
pub(crate) fn topic_change(by: &Nick, room: &RoomName, text: &str) -> String {
    if text.is_empty() {
        format!("{by} cleared the topic of {room}.")
    } else {
        format!("{by} set the topic of {room}: {text}")
    }
}

/// A change of settings, as a sentence.
pub(crate) fn modes_changed(by: &Nick, room: &RoomName, changes: &[ModeChange]) -> String {
    let described: Vec<String> = changes.iter().map(describe).collect();
    format!("{by} set {} on {room}.", described.join(" "))
}

/// A notice for one session, as sentences.
pub(crate) fn notice(notice: &Notice) -> String {
    match notice {
        Notice::NickRegistered { nick, grace_secs } => format!(
            "The nick {nick} is registered. Log in with /login {nick} PASSWORD within {grace_secs} seconds, \
             or you will be renamed."
        ),
        Notice::Renamed { nick, cause } => format!("You are now known as {nick}: {}.", renaming(cause)),
    }
}

/// What a connection is told as it ends because its resume token was revoked.
pub(crate) const SIGNED_OUT: &str =
    "you were signed out: your session was revoked, or your password changed; log in with your password";

/// Why the server renamed someone.
pub(crate) fn renaming(cause: &Renaming) -> String {
    match cause {
        Renaming::OwnerLoggedIn { account } => format!("{account} logged in"),
        Renaming::NotLoggedIn { nick } => format!("you did not log in as {nick}"),
        Renaming::ClaimLost { nick } => {
            format!("this server lost touch with its cluster, and {nick} may be someone else's now")
        }
    }
}

/// Why someone left the chat, in parentheses after "has left the chat", or `None` for
/// a plain departure.
pub(crate) fn departure(reason: LeaveReason, detail: Option<&str>) -> Option<String> {
    match (reason, detail) {
        (LeaveReason::ServerBanned, Some(reason)) => Some(format!("banned: {reason}")),
        (LeaveReason::ServerBanned, None) => Some("banned".to_owned()),
        (LeaveReason::SlowConsumer, _) => Some("send queue exceeded".to_owned()),
        (LeaveReason::SignedOut, _) => Some("signed out".to_owned()),
        (_, detail) => detail.map(str::to_owned),
    }
}

/// Why someone was put out of a room: `by alice: too loud`, `banned by alice: spam`.
pub(crate) fn put_out(reason: LeaveReason, by: Option<&Nick>, detail: Option<&str>) -> String {
    let by = by.map_or_else(|| "the server".to_owned(), ToString::to_string);
    let banned = if reason == LeaveReason::Banned { "banned " } else { "" };
    match detail {
        Some(detail) => format!("{banned}by {by}: {detail}"),
        None => format!("{banned}by {by}"),
    }
}

/// IRC's letter for a room setting, which the line protocol shows too.
pub(crate) fn letter(mode: &RoomMode) -> char {
    match mode {
        RoomMode::Moderated => 'm',
        RoomMode::Secret => 's',
        RoomMode::Private => 'p',
        RoomMode::TopicLocked => 't',
        RoomMode::InviteOnly => 'i',
        RoomMode::Key(_) => 'k',
        RoomMode::Limit(_) => 'l',
        RoomMode::Voice(_) => 'v',
    }
}

/// A setting's argument, if it has one when set (`set`) or removed.
pub(crate) fn argument(mode: &RoomMode, set: bool) -> Option<String> {
    match mode {
        RoomMode::Moderated | RoomMode::Secret | RoomMode::Private | RoomMode::TopicLocked | RoomMode::InviteOnly => {
            None
        }
        // A removed key is shown as it was given, as IRC servers echo it.
        RoomMode::Key(key) => Some(if set || !key.is_empty() { key.clone() } else { "*".to_owned() }),
        RoomMode::Limit(limit) => set.then(|| limit.to_string()),
        RoomMode::Voice(nick) => Some(nick.to_string()),
    }
}

/// `+m`, `-k *`, `+v bob`: a change as IRC writes it.
pub(crate) fn describe(change: &ModeChange) -> String {
    let sign = if change.set { '+' } else { '-' };
    match argument(&change.mode, change.set) {
        Some(argument) => format!("{sign}{} {argument}", letter(&change.mode)),
        None => format!("{sign}{}", letter(&change.mode)),
    }
}

/// A ban's mask as ban lists and IRC's `+b` show it: `nick!*@*`, `*!*@ADDRESS`.
pub(crate) fn ban_mask(mask: &Mask) -> String {
    match mask {
        Mask::Nick(nick) => format!("{nick}!*@*"),
        Mask::Address(network) => format!("*!*@{network}"),
        Mask::Pattern(pattern) => pattern.to_string(),
    }
}

/// What a user typed as a ban's mask, with IRC's mask forms (`nick!*@*`, `*!*@ADDRESS`,
/// `user@ADDRESS`) read as the nick or the address the hub takes; other
/// `nick!user@host` forms (a cloaked host) stay patterns, which the hub matches.
pub(crate) fn bare_mask(text: &str) -> String {
    let is_address = |host: &str| Mask::parse(host, 0).is_some_and(|m| m.is_address());
    if let Some(address) = text.strip_prefix("*!*@").filter(|host| is_address(host)) {
        return address.to_owned();
    }
    if let Some(nick) = text.strip_suffix("!*@*") {
        return nick.to_owned();
    }
    match text.split_once('@') {
        Some((_, host)) if !text.contains('!') && is_address(host) => host.to_owned(),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_irc_writes_them() {
        let nick = Nick::parse("bob", 32).expect("valid");
        let change = |set, mode| describe(&ModeChange { set, mode });
        assert_eq!(change(true, RoomMode::Moderated), "+m");
        assert_eq!(change(false, RoomMode::Key("sesame".into())), "-k sesame", "as given");
        assert_eq!(change(false, RoomMode::Key(String::new())), "-k *");
        assert_eq!(change(true, RoomMode::Key("sesame".into())), "+k sesame");
        assert_eq!(change(true, RoomMode::Limit(10)), "+l 10");
        assert_eq!(change(false, RoomMode::Limit(0)), "-l");
        assert_eq!(change(true, RoomMode::Voice(nick)), "+v bob");
    }

    #[test]
    fn masks_read_back_from_what_ban_lists_show() {
        for text in ["mallory", "10.0.0.1", "2001:db8::/64"] {
            let mask = Mask::parse(text, 32).expect("a mask");
            assert_eq!(Mask::parse(&bare_mask(&ban_mask(&mask)), 32), Some(mask));
        }
        assert_eq!(bare_mask("anyone@192.0.2.7"), "192.0.2.7");
        assert_eq!(bare_mask("mallory"), "mallory");
    }

    #[test]
    fn every_refusal_has_words() {
        let errors = [
            HubError::InvalidNick { nick: "9x".into(), why: NameRule::Start('9') },
            HubError::BadSearch(SearchProblem::Page { value: "0".into(), max: 1000 }),
            HubError::BadMode(ModeProblem::Limit { max: 5 }),
            HubError::TooManyAttempts { retry_after_secs: 4 },
        ];
        for e in errors {
            let words = error(&e);
            assert!(!words.is_empty() && !words.ends_with('.'), "{words}");
        }
    }
}
