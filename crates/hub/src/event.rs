//! Events: what the hub tells sessions. Built once per fan-out and encoded at most once
//! per wire format (see [`crate::Outbox`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::command::{Audience, RequestId};
use crate::error::HubError;
use crate::history::{Kind, Record};
use crate::identity::Userhost;
use crate::moderation::{Mask, Restriction};
use crate::modes::{Member, ModeChange, RoomModes, Stats, Visibility, Whois};
use crate::name::{Nick, RoomName};
use crate::signal::{ClientTags, Meta, Signal};

/// A server timestamp, taken when the hub accepted the action.
pub type Timestamp = DateTime<Utc>;

/// Something a session is told.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message in a room the session is in.
    Message {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Nick,
        /// The message's place in the room's order, from 1.
        seq: u64,
        /// When the hub accepted it.
        at: Timestamp,
        /// What kind of message.
        kind: Kind,
        /// The sender's account, if they were logged in.
        account: Option<Nick>,
        /// The text.
        text: Arc<str>,
        /// The message it answers and the client tags, if any.
        meta: Option<Arc<Meta>>,
        /// The user name and host of the sender (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// A private message to the session.
    Whisper {
        /// Its place in the order of private messages.
        seq: u64,
        /// The sender.
        from: Nick,
        /// The receiver.
        to: Nick,
        /// When the hub accepted it.
        at: Timestamp,
        /// What kind of message.
        kind: Kind,
        /// The sender's account, if they were logged in.
        account: Option<Nick>,
        /// The text.
        text: Arc<str>,
        /// The user name and host of the sender (their IRC source).
        userhost: Arc<Userhost>,
        /// The message it answers and the client tags, if any.
        meta: Option<Arc<Meta>>,
    },
    /// Someone in a room the session is in, or in a conversation with it, tells without
    /// a message: typing, a reaction, client tags ([`Signal`]). Nothing is stored.
    Signal {
        /// Unique among signals, for protocols that name each (IRC's `msgid`).
        id: u64,
        /// The room; `None` for a conversation.
        room: Option<RoomName>,
        /// Who.
        from: Nick,
        /// The receiver, in a conversation.
        to: Option<Nick>,
        /// When.
        at: Timestamp,
        /// Their account, if they are logged in.
        account: Option<Nick>,
        /// What.
        signal: Signal,
        /// Tags for other clients.
        tags: ClientTags,
        /// The user name and host of the sender (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// A message to some of a room's members ([`crate::Command::SayTo`]): not kept,
    /// not numbered.
    SaidTo {
        /// The room.
        room: RoomName,
        /// Who of its members it is for.
        audience: Audience,
        /// The sender.
        from: Nick,
        /// When.
        at: Timestamp,
        /// The sender's account, if they are logged in.
        account: Option<Nick>,
        /// What kind of message.
        kind: Kind,
        /// The text.
        text: Arc<str>,
        /// The sender's user name and host.
        userhost: Arc<Userhost>,
    },
    /// Someone entered a room the session is in.
    Joined {
        /// The room.
        room: RoomName,
        /// Who entered.
        nick: Nick,
        /// When.
        at: Timestamp,
        /// True when this is their arrival on the server.
        arrival: bool,
        /// The account they are logged in to (IRC's `extended-join`).
        account: Option<Nick>,
        /// What their client says about them, if it has (IRC's real name).
        realname: Option<Arc<str>>,
        /// The user name and host of who entered (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone left a room the session is in.
    Left {
        /// The room.
        room: RoomName,
        /// Who left.
        nick: Nick,
        /// When.
        at: Timestamp,
        /// Why.
        reason: LeaveReason,
        /// Who put them out, when they were kicked or banned.
        by: Option<Nick>,
        /// Their quit message, the kick's or ban's reason, or what their gateway said of
        /// why the connection ended.
        detail: Option<Arc<str>>,
        /// True when this session was already told of the same departure in another
        /// room (a quit or a lost connection leaves every room at once): protocols
        /// that show a departure from the server once, not once per room (IRC's
        /// `QUIT`), show nothing for this one. The hub decides it per member.
        again: bool,
        /// The user name and host of who left (their IRC source).
        userhost: Arc<Userhost>,
        /// The user name and host of who put them out, with `by`.
        by_userhost: Option<Arc<Userhost>>,
    },
    /// A room's settings or voice changed (`Command::Mode`).
    Mode {
        /// The room.
        room: RoomName,
        /// Who changed them.
        by: Nick,
        /// When.
        at: Timestamp,
        /// What changed, in order.
        changes: Vec<ModeChange>,
        /// The user name and host of who changed them (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// A moderator changed who may do what in a room: bans, mutes, operators,
    /// registration.
    Moderated {
        /// The room.
        room: RoomName,
        /// The moderator's nick.
        by: Nick,
        /// When.
        at: Timestamp,
        /// What changed.
        what: RoomChange,
        /// The user name and host of the moderator (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// A room's topic changed.
    Topic {
        /// The room.
        room: RoomName,
        /// Who set it.
        by: Nick,
        /// When.
        at: Timestamp,
        /// The new topic; empty when it was cleared.
        text: Arc<str>,
        /// The user name and host of who set it (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone the session shares a room with went away or came back.
    Away {
        /// Who.
        nick: Nick,
        /// Their away message; `None` when they are back.
        text: Option<Arc<str>>,
        /// The user name and host of them (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone the session shares a room with logged in to an account, or is no longer
    /// logged in (IRC's `account-notify`).
    Account {
        /// Who.
        nick: Nick,
        /// The account; `None` when they are logged in to none now.
        account: Option<Nick>,
        /// The user name and host of them (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone the session shares a room with changed what their client says about them
    /// (IRC's `setname`).
    Realname {
        /// Who.
        nick: Nick,
        /// Their real name now.
        realname: Arc<str>,
        /// The user name and host of them (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone in a room the session is in invited someone else into it (IRC's
    /// `invite-notify`). Operators are told always; other members unless the room is
    /// invite-only.
    InviteSent {
        /// The room.
        room: RoomName,
        /// Who invited.
        by: Nick,
        /// Who was invited.
        nick: Nick,
        /// When.
        at: Timestamp,
        /// The user name and host of who invited (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone invites the session into a room.
    Invited {
        /// The room.
        room: RoomName,
        /// Who invites.
        by: Nick,
        /// When.
        at: Timestamp,
        /// The user name and host of who invites (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone the session shares a room with changed nick.
    NickChanged {
        /// The old nick.
        old: Nick,
        /// The new nick.
        new: Nick,
        /// When.
        at: Timestamp,
        /// The user name and host of them (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// Someone took a nick the session watches ([`crate::Command::Watch`]): they came
    /// on, or changed to it.
    SignedOn {
        /// The nick, as they spell it.
        nick: Nick,
        /// Their user name and host.
        userhost: Arc<Userhost>,
    },
    /// Someone gave up a nick the session watches: they left, or changed from it.
    SignedOff {
        /// The nick, as they spelled it.
        nick: Nick,
    },
    /// What someone whose nick the session watches, and who shares no room with it,
    /// told their room mates about themselves: an [`Event::Away`], [`Event::Account`]
    /// or [`Event::Realname`] (IRC's `extended-monitor`).
    Watched(Box<Event>),
    /// A message of a room the session is in was deleted.
    Deleted {
        /// The room.
        room: RoomName,
        /// The deleted message's place in the room's order.
        seq: u64,
        /// Who deleted it.
        by: Nick,
        /// Who had said it (their nick then).
        author: Nick,
        /// When it was said.
        said_at: Timestamp,
        /// When it was deleted.
        at: Timestamp,
        /// Why, if they said.
        reason: Option<Arc<str>>,
        /// The user name and host of who deleted it (their IRC source).
        userhost: Arc<Userhost>,
    },
    /// The session's user read further in a room or conversation, on another of their
    /// sessions (their other devices clear the unread count).
    Marker {
        /// Where.
        target: MarkTarget,
        /// Read up to this instant.
        at: Timestamp,
    },
    /// Information from the server for this session alone.
    Notice {
        /// When.
        at: Timestamp,
        /// What.
        notice: Notice,
    },
    /// A server ban covers the session: it is put off the server, and the outbox closes
    /// after this.
    Banned {
        /// When.
        at: Timestamp,
        /// Why, if the administrator said.
        reason: Option<Arc<str>>,
    },
    /// The resume token this connection logged in with (or was given) was revoked, by
    /// its owner from another connection or by a browser logging out, or the account's
    /// password was changed from another connection: the session ends, and the outbox
    /// closes after this.
    SignedOut {
        /// When.
        at: Timestamp,
    },
    /// The server is shutting down; the outbox closes after this.
    Shutdown {
        /// When.
        at: Timestamp,
        /// Why, for people.
        message: Arc<str>,
    },
    /// The answer to one of the session's own commands.
    Reply {
        /// The request it answers.
        req: RequestId,
        /// What happened.
        result: Result<Reply, HubError>,
    },
}

/// Why someone left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// Left the room, still on the server.
    Part,
    /// Left the chat on purpose.
    Quit,
    /// The connection ended without a quit, or its gateway closed it.
    Lost,
    /// An operator put them out of the room.
    Kicked,
    /// A ban in the room now covers them, so they were put out.
    Banned,
    /// A server ban covers them: they were put off the server.
    ServerBanned,
    /// They did not read what they were sent (their send queue overflowed).
    SlowConsumer,
    /// The resume token their connection logged in with was revoked, or their account's
    /// password changed elsewhere: the connection was ended.
    SignedOut,
}

/// A moderator's change to a room, as its members are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// A ban was set (or replaced); the members it covers are put out.
    Banned {
        /// Who.
        mask: Mask,
        /// Until when; `None` is until lifted.
        until: Option<Timestamp>,
    },
    /// A ban was lifted.
    Unbanned {
        /// Whose.
        mask: Mask,
    },
    /// A mute was set (or replaced).
    Muted {
        /// Who.
        mask: Mask,
        /// Until when; `None` is until lifted.
        until: Option<Timestamp>,
    },
    /// A mute was lifted.
    Unmuted {
        /// Whose.
        mask: Mask,
    },
    /// A member operates the room while they stay.
    Promoted {
        /// Who.
        nick: Nick,
    },
    /// A member no longer operates it.
    Demoted {
        /// Who.
        nick: Nick,
    },
    /// An account became a durable operator of the (registered) room.
    Opped {
        /// The account.
        account: Nick,
        /// The nicks of its sessions in the room, now operators.
        sessions: Vec<Nick>,
    },
    /// An account is no longer one.
    Deopped {
        /// The account.
        account: Nick,
        /// The nicks of its sessions in the room, no longer operators.
        sessions: Vec<Nick>,
    },
    /// The room is registered now.
    Registered {
        /// The founder's account; `None`: the server's.
        founder: Option<Nick>,
    },
    /// The room is no longer registered.
    Unregistered,
}

/// Something the server tells one session about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The session's nick is someone's account: it must log in within the grace period
    /// or be renamed.
    NickRegistered {
        /// The nick.
        nick: Nick,
        /// How long it has, in seconds.
        grace_secs: u64,
    },
    /// The server renamed the session.
    Renamed {
        /// Its new nick.
        nick: Nick,
        /// Why.
        cause: Renaming,
    },
}

/// Why the server renamed a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renaming {
    /// The owner of the account of that nick logged in.
    OwnerLoggedIn {
        /// The account.
        account: Nick,
    },
    /// It did not log in to the account of its nick within the grace period.
    NotLoggedIn {
        /// The nick it had.
        nick: Nick,
    },
    /// Its server lost the nick's claim in the cluster (it was cut off for longer than a
    /// lease), and the nick may be another node's session's now.
    ClaimLost {
        /// The nick it had.
        nick: Nick,
    },
}

/// The successful answer to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The session is registered (and in the lobby, if its gateway asked for it).
    Welcome {
        /// Its nick.
        nick: Nick,
        /// The room it was put in; `None` when it starts in none (then `members`,
        /// `history` and `topic` are empty).
        room: Option<RoomName>,
        /// Who is there, itself included, sorted.
        members: Vec<Member>,
        /// The longest message text accepted, in bytes.
        max_text: usize,
        /// The room's latest messages, oldest first.
        history: Vec<Arc<Record>>,
        /// The room's topic: its text, who set it, when.
        topic: Option<(String, Nick, Timestamp)>,
        /// How busy the server is.
        stats: Stats,
    },
    /// The session is in the room.
    Joined {
        /// The room.
        room: RoomName,
        /// Who is there, itself included, sorted.
        members: Vec<Member>,
        /// The room's latest messages, oldest first.
        history: Vec<Arc<Record>>,
        /// The room's topic: its text, who set it, when.
        topic: Option<(String, Nick, Timestamp)>,
        /// Where the session's user read up to in it, if anywhere.
        read: Option<Timestamp>,
        /// How much those outside the room see of it: IRC's NAMES says so.
        visibility: Visibility,
    },
    /// A room's topic: its text, who set it and when; `None` when it has none.
    Topic {
        /// The room.
        room: RoomName,
        /// The topic.
        topic: Option<(String, Nick, Timestamp)>,
    },
    /// The latest lines of the audit log, newest first.
    Audit(Vec<crate::moderation::AuditLine>),
    /// A moderation action is done.
    Moderated {
        /// Which (`kick`, `ban`, ...).
        action: &'static str,
        /// Where.
        room: RoomName,
        /// On whom (or the new topic).
        target: String,
    },
    /// A page of a room's history, oldest first.
    History {
        /// The room.
        room: RoomName,
        /// The messages.
        messages: Vec<Arc<Record>>,
    },
    /// The session left the room.
    Parted {
        /// The room.
        room: RoomName,
    },
    /// The message is stored, ordered and delivered.
    Said {
        /// The room.
        room: RoomName,
        /// Its place in the room's order.
        seq: u64,
        /// When the hub accepted it.
        at: Timestamp,
        /// What kind of message.
        kind: Kind,
        /// The text, for gateways that show the sender a copy.
        text: Arc<str>,
        /// The message it answers and the client tags, as kept.
        meta: Option<Arc<Meta>>,
    },
    /// The message went to those of the room's members it is for.
    ToldSome {
        /// The room.
        room: RoomName,
        /// Who of its members.
        audience: Audience,
        /// When.
        at: Timestamp,
        /// What kind of message.
        kind: Kind,
        /// The text, for gateways that show the sender a copy.
        text: Arc<str>,
    },
    /// The signal went to the room's members or the receiver.
    Signalled {
        /// The signal's id, as the others were told.
        id: u64,
        /// The room; `None` for a conversation.
        room: Option<RoomName>,
        /// The receiver, in a conversation.
        to: Option<Nick>,
        /// When.
        at: Timestamp,
        /// What, for gateways that show the sender a copy.
        signal: Signal,
        /// The tags sent with it.
        tags: ClientTags,
    },
    /// The session's read marker for a room or conversation, after a `MarkRead` (set or
    /// asked for); `None`: nothing marked read there yet.
    Marker {
        /// Where.
        target: MarkTarget,
        /// Read up to this instant.
        at: Option<Timestamp>,
    },
    /// IRC's `CHATHISTORY TARGETS`: the rooms and conversations with messages in the
    /// window, each with its latest message's time, oldest first.
    Targets(Vec<(MarkTarget, Timestamp)>),
    /// The message is deleted, and the room's members told.
    Deleted {
        /// The room.
        room: RoomName,
        /// The deleted message's place in the room's order.
        seq: u64,
        /// Who had said it (their nick then).
        author: Nick,
        /// When it was said.
        said_at: Timestamp,
        /// Why, as given.
        reason: Option<Arc<str>>,
    },
    /// The private message is stored and in the receiver's queue.
    Whispered {
        /// The receiver.
        to: Nick,
        /// Its place in the order of private messages.
        seq: u64,
        /// When the hub accepted it.
        at: Timestamp,
        /// What kind of message.
        kind: Kind,
        /// The text, for gateways that show the sender a copy.
        text: Arc<str>,
        /// The message it answers and the client tags, as kept.
        meta: Option<Arc<Meta>>,
        /// The receiver's away message, if they are away.
        away: Option<Arc<str>>,
    },
    /// A room's settings.
    Modes {
        /// The room.
        room: RoomName,
        /// Its settings.
        modes: RoomModes,
        /// When it was created.
        created: Timestamp,
        /// The room has a key, left out of `modes` because the asker is not a member.
        key_hidden: bool,
    },
    /// The room's settings are changed as asked.
    ModesSet {
        /// The room.
        room: RoomName,
    },
    /// The bans in force in a room.
    Bans {
        /// The room.
        room: RoomName,
        /// The bans.
        bans: Vec<Restriction>,
    },
    /// The invitation is sent.
    Invited {
        /// Who was invited.
        nick: Nick,
        /// Where to.
        room: RoomName,
    },
    /// The rooms the session is invited into and has not joined yet.
    Invitations {
        /// The rooms, by name.
        rooms: Vec<RoomName>,
    },
    /// The session is now away (`true`) or back.
    Away {
        /// Whether it is away.
        away: bool,
    },
    /// What the server says about a user.
    Whois(Box<Whois>),
    /// How busy the server is.
    Stats(Stats),
    /// The session is a server administrator now.
    Opered,
    /// The session's description is recorded.
    Described,
    /// The users of a room.
    Who {
        /// The room.
        room: RoomName,
        /// Who is there, sorted.
        members: Vec<Member>,
        /// How much those outside the room see of it: IRC's NAMES says so.
        visibility: Visibility,
    },
    /// The rooms on the server.
    Rooms(Vec<RoomSummary>),
    /// The session's nick is now this.
    Nick {
        /// The new nick.
        nick: Nick,
    },
    /// A page of the session's private messages with someone, oldest first.
    Conversation {
        /// The other party.
        with: Nick,
        /// The messages.
        messages: Vec<Arc<Record>>,
    },
    /// Search results, best first.
    Found {
        /// The query as given.
        query: String,
        /// The page, from 1.
        page: usize,
        /// The messages found; fewer than a page means there are no more.
        results: Vec<Arc<Record>>,
    },
    /// The nick is now an account, and the session is logged in to it.
    Registered {
        /// The account's name.
        account: Nick,
    },
    /// The session is logged in.
    LoggedIn {
        /// The account.
        account: Nick,
        /// The session's nick now (the account's).
        nick: Nick,
    },
    /// The password is changed.
    PasswordChanged,
    /// The account is deleted; the session is a guest now.
    Unregistered {
        /// The account's name, free again.
        account: Nick,
    },
    /// The server bans in force.
    ServerBans(Vec<crate::moderation::ServerBan>),
    /// A server moderation action is done.
    ServerModerated {
        /// Which (`server ban`, `server unban`).
        action: &'static str,
        /// On whom.
        target: String,
    },
    /// The answer to a login, registration or welcome that asked to be remembered,
    /// with the resume token issued for it (given this once; the store keeps its hash).
    Remembered {
        /// The answer itself.
        reply: Box<Reply>,
        /// The token.
        token: String,
    },
    /// The resume tokens of the session's account, most recently used first.
    Sessions(Vec<crate::tokens::SessionInfo>),
    /// A resume token is revoked.
    Revoked {
        /// Its id.
        id: u64,
    },
    /// Who of the nicks a [`crate::Command::Watch`] added (or, asked for their status,
    /// of all those watched) is on now.
    Presence {
        /// Those on: each nick as its owner spells it, with their user name and host.
        online: Vec<(Nick, Arc<Userhost>)>,
        /// Those not on, as the session spelled them.
        offline: Vec<Nick>,
        /// The list filled up: the most it holds, and the nicks given from the first
        /// one not added on (none of them was added).
        full: Option<(usize, Vec<String>)>,
    },
    /// The nicks the session watches, as it spelled them, in the order it added them.
    Watched(Vec<Nick>),
    /// Nicks are taken off the session's watch list.
    Unwatched,
    /// The answer to a ping.
    Pong,
    /// The session has quit; the outbox closes after this.
    Bye,
}

/// One room in a room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room.
    pub name: RoomName,
    /// How many sessions are in it.
    pub members: usize,
    /// Whether the asking session is one of them.
    pub joined: bool,
    /// Its topic.
    pub topic: Option<String>,
}

/// Where a read marker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkTarget {
    /// A room.
    Room(RoomName),
    /// The private conversation with this user.
    With(Nick),
}
