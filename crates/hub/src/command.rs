//! Commands: what a session asks of the hub, the same for every gateway.

/// A gateway's own identifier for a command, echoed in the [`crate::Event::Reply`] that
/// answers it. Gateways without request ids use `RequestId(0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RequestId(pub u64);

/// What a registered session asks the hub to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Enter a room (creating it if empty).
    Join {
        /// The room's name as the user typed it.
        room: String,
        /// Leave every other room once inside this one: the line protocol's one-room
        /// model.
        exclusive: bool,
        /// The room's key, if it has one (`+k`).
        key: Option<String>,
    },
    /// Leave a room; `None` means the room joined last.
    Part {
        /// The room's name as the user typed it.
        room: Option<String>,
        /// Why, shown to the room's members (IRC's PART reason).
        reason: Option<String>,
    },
    /// Say something in a room; `None` means the room joined last.
    Say {
        /// The room's name as the user typed it.
        room: Option<String>,
        /// What kind of message.
        kind: crate::history::Kind,
        /// The text.
        text: String,
        /// The message it answers, and tags for other clients.
        meta: crate::signal::Meta,
    },
    /// Send a private message.
    Whisper {
        /// The receiver's nick.
        to: String,
        /// What kind of message.
        kind: crate::history::Kind,
        /// The text.
        text: String,
        /// The message it answers, and tags for other clients.
        meta: crate::signal::Meta,
    },
    /// Say something to a room's operators only, or to its operators and voiced members
    /// (IRC's `PRIVMSG @#room`, `+#room`). It reaches those in the room now and is not
    /// kept: a room's history is every member's.
    SayTo {
        /// The room.
        room: String,
        /// Who of its members.
        audience: Audience,
        /// What kind of message.
        kind: crate::history::Kind,
        /// The text.
        text: String,
    },
    /// Tell a room's members, or someone in a conversation, something without a
    /// message: typing, a reaction, client tags. Nothing is stored.
    Signal {
        /// The room, or the conversation's other party.
        target: Marked,
        /// What.
        signal: crate::signal::Signal,
        /// Tags for other clients.
        tags: crate::signal::ClientTags,
    },
    /// Change a room's settings or voice (operators only; operator roles and bans are
    /// [`Command::Moderate`]'s, being durable).
    Mode {
        /// The room.
        room: String,
        /// The changes, applied in order.
        changes: Vec<crate::modes::ModeChange>,
    },
    /// Show a room's settings.
    Modes {
        /// The room.
        room: String,
    },
    /// List the bans in force in a room.
    Bans {
        /// The room.
        room: String,
    },
    /// Invite someone into a room the session is in.
    Invite {
        /// Who.
        nick: String,
        /// Where; `None` means the room joined last.
        room: Option<String>,
    },
    /// The rooms the session is invited into and has not joined yet.
    Invitations,
    /// Mark the session away with a message, or back (`None`).
    Away {
        /// The away message.
        text: Option<String>,
    },
    /// What the server knows of a user.
    Whois {
        /// Who.
        nick: String,
    },
    /// How busy the server is.
    Stats,
    /// Make the session a server administrator: its gateway has checked the credentials
    /// (IRC's `OPER`, against the server's configuration).
    Oper,
    /// Record what the client says about its user (IRC's real name), for WHOIS.
    Describe {
        /// The description.
        realname: String,
    },
    /// Change nick.
    Nick {
        /// The new nick.
        nick: String,
    },
    /// List a room's users; `None` means the room joined last.
    Who {
        /// The room's name as the user typed it.
        room: Option<String>,
    },
    /// List the rooms.
    Rooms,
    /// Show a room's topic (`text: None`), or set it (operators only).
    Topic {
        /// The room; `None` means the room joined last.
        room: Option<String>,
        /// The new topic; empty clears it.
        text: Option<String>,
    },
    /// The latest lines of the audit log (server admins only).
    Audit {
        /// How many (at most [`crate::MAX_HISTORY_PAGE`]).
        limit: usize,
    },
    /// A moderation action in a room (operators and admins only).
    Moderate {
        /// The room; `None` means the room joined last.
        room: Option<String>,
        /// What to do.
        action: crate::moderation::Action,
    },
    /// Read a page of the logged-in session's private messages with someone.
    Conversation {
        /// The other party's nick (or account).
        with: String,
        /// Where the page starts.
        cursor: crate::history::Cursor,
        /// The most messages wanted (at most [`crate::MAX_HISTORY_PAGE`]).
        limit: usize,
    },
    /// Search the history the session may see: its rooms, and its own private messages
    /// when logged in.
    Search {
        /// Words and filters (`from:NICK`, `in:ROOM`, `before:DATE`, `after:DATE`,
        /// `page:N`).
        query: String,
    },
    /// Register the session's nick as an account with this password.
    Register {
        /// The password.
        password: String,
    },
    /// Log in to an account, taking its nick.
    Login {
        /// The account's name; `None` means the session's nick.
        name: Option<String>,
        /// Its password.
        password: String,
    },
    /// Delete the account the session is logged in to, with its password as proof: its
    /// roles, private messages and files go, and its name is free again.
    Unregister {
        /// The account's password.
        password: String,
    },
    /// A server administrator's action on the whole server (server bans).
    ServerModerate {
        /// What to do.
        action: crate::moderation::ServerAction,
    },
    /// List the server bans in force (server administrators only).
    ServerBans,
    /// Change the password of the account the session is logged in to.
    Password {
        /// The current password.
        old: String,
        /// The new one.
        new: String,
    },
    /// Read a page of a room's history; `None` means the room joined last.
    History {
        /// The room's name as the user typed it.
        room: Option<String>,
        /// Where the page starts.
        cursor: crate::history::Cursor,
        /// The most messages wanted (at most [`crate::MAX_HISTORY_PAGE`]).
        limit: usize,
    },
    /// Delete a message from a room: its author may, and so may the room's operators
    /// and server admins. It leaves history, search and replays, and every member is
    /// told.
    Delete {
        /// The room; `None` means the room joined last.
        room: Option<String>,
        /// The message's place in the room's order.
        seq: u64,
        /// Why, shown to the members (operators deleting others' words say why).
        reason: Option<String>,
    },
    /// Read markers: set the session's marker for a room or conversation (`at`: the
    /// time of the last message read; markers only move forward), or ask for it (`None`).
    MarkRead {
        /// Where.
        target: Marked,
        /// Read up to this instant.
        at: Option<crate::event::Timestamp>,
    },
    /// IRC's `CHATHISTORY`: a page of a room or a conversation, by message or by time.
    ChatHistory {
        /// Whose.
        target: Marked,
        /// Which part.
        query: HistoryQuery,
        /// The most messages.
        limit: usize,
    },
    /// IRC's `CHATHISTORY TARGETS`: the session's rooms and conversations with messages
    /// after `from` and before `to`.
    ChatTargets {
        /// The window's start (exclusive).
        from: crate::event::Timestamp,
        /// Its end (exclusive).
        to: crate::event::Timestamp,
        /// The most targets.
        limit: usize,
    },
    /// Do `command`, a [`Command::Login`] or [`Command::Register`], and when it
    /// succeeds issue a resume token described by `description` (gateway, address, user
    /// agent): the answer comes as [`crate::Reply::Remembered`].
    Remember {
        /// The login or registration.
        command: Box<Command>,
        /// Where the token is issued, for the account's session list.
        description: String,
    },
    /// List the resume tokens of the session's account.
    Sessions,
    /// Revoke one of the resume tokens of the session's account, by its id.
    RevokeSession {
        /// The token's id (from [`Command::Sessions`]), not the token.
        id: u64,
    },
    /// Change or read the session's watch list (IRC's `MONITOR`): the nicks whose
    /// owners coming and going it is told of, as [`crate::Event::SignedOn`] and
    /// [`crate::Event::SignedOff`].
    Watch(Watch),
    /// Ask for a pong.
    Ping,
    /// Leave the chat.
    Quit {
        /// Shown to others.
        reason: Option<String>,
    },
}

/// What a [`Command::Watch`] does to the session's watch list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// Watch these nicks too, in order, until the list is full ([`crate::Limits`]'s
    /// `max_watched`); nicks that are not valid are passed over, as IRC servers do.
    /// Answered with who of those added is on now.
    Add(Vec<String>),
    /// Stop watching these nicks.
    Remove(Vec<String>),
    /// Stop watching anyone.
    Clear,
    /// The nicks watched.
    List,
    /// Who of the nicks watched is on now.
    Status,
}

/// Which of a room's members a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Its operators.
    Operators,
    /// Its operators and voiced members.
    Voiced,
}

/// What a read marker is for, as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// A room the session is in.
    Room(String),
    /// The private conversation with this nick (an account's name, or a guest's nick).
    With(String),
}

/// A place in a room's or conversation's history: a message (its seq) or an instant.
/// An instant means its whole millisecond, as clients write it: messages said within it
/// are neither before nor after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The message with this seq.
    Seq(u64),
    /// This instant.
    Time(crate::event::Timestamp),
}

/// Which part of a history `ChatHistory` reads (IRC's `CHATHISTORY` subcommands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The latest messages; with a point, only those after it.
    Latest(Option<Point>),
    /// The messages just before the point.
    Before(Point),
    /// The messages just after the point.
    After(Point),
    /// The messages around the point: half before, the rest from it on.
    Around(Point),
    /// The messages strictly between two points, from the first towards the second.
    Between(Point, Point),
}
