//! What the hub refuses, and why. Each gateway maps these to its protocol's replies in
//! exactly one function.

/// A refused command. The session goes on; only the command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Someone else has the nick.
    #[error("the nick {0} is already taken")]
    NickTaken(String),
    /// The nick breaks the nick rules.
    #[error("{nick:?} is not a valid nick: {why}")]
    InvalidNick {
        /// The nick as given.
        nick: String,
        /// Which rule it breaks.
        why: NameRule,
    },
    /// The room name breaks the room rules.
    #[error("{room:?} is not a valid room name: {why}")]
    InvalidRoom {
        /// The name as given.
        room: String,
        /// Which rule it breaks.
        why: NameRule,
    },
    /// A new room's name looks like an existing room's (see `lookalike`).
    #[error("{room:?} looks like the existing room {existing:?}")]
    RoomLookalike {
        /// The name asked for.
        room: String,
        /// The room it could pass for.
        existing: String,
    },
    /// Nobody has that nick.
    #[error("no user is called {0}")]
    NoSuchNick(String),
    /// No room has that name (nobody is in it).
    #[error("there is no room called {0}")]
    NoSuchRoom(String),
    /// The session is not in the named room.
    #[error("you are not in {0}")]
    NotInRoom(String),
    /// The session is in no room at all, and the command needs one.
    #[error("you are not in a room; join one first")]
    NoRoom,
    /// The message has no text.
    #[error("the message is empty")]
    EmptyMessage,
    /// The message is longer than the limit.
    #[error("the message is longer than {max} bytes")]
    MessageTooLong {
        /// The limit in force.
        max: usize,
    },
    /// Client tags over the limits ([`crate::signal::MAX_TAGS`] tags in `max` bytes).
    #[error("the message's tags are longer than {max} bytes or too many")]
    TagsTooLong {
        /// The limit in force.
        max: usize,
    },
    /// A client tag with a name or value that may not be relayed.
    #[error("the tag {0:?} is not a valid client tag")]
    BadTag(String),
    /// A reaction that is empty, too long, or has control characters.
    #[error("a reaction is 1 to {max} bytes of text")]
    BadReaction {
        /// The limit in force.
        max: usize,
    },
    /// The session is already in as many rooms as it may be.
    #[error("you are already in {max} rooms, the most allowed; leave one first")]
    TooManyRooms {
        /// The limit in force.
        max: usize,
    },
    /// The server keeps no accounts (it runs without a store).
    #[error("this server keeps no accounts")]
    NoAccounts,
    /// The nick is registered already.
    #[error("the nick {0} is registered already")]
    AccountExists(String),
    /// A wrong name or password.
    #[error("wrong account name or password")]
    BadLogin,
    /// A resume token that is unknown, revoked or expired.
    #[error("unknown, revoked or expired session token")]
    BadToken,
    /// The account has no resume token with this id.
    #[error("you have no session {0}")]
    NoSuchSession(u64),
    /// Only a login or a registration can be remembered.
    #[error("only a login or a registration can be remembered")]
    NotRememberable,
    /// The command needs a logged-in session.
    #[error("you are not logged in")]
    NotLoggedIn,
    /// The password is too short or too long.
    #[error("a password has at least {min} characters and at most {max} bytes")]
    WeakPassword {
        /// The fewest characters.
        min: usize,
        /// The most bytes.
        max: usize,
    },
    /// The nick belongs to an account the session is not logged in to.
    #[error("the nick {0} is registered; log in to use it")]
    NickRegistered(String),
    /// Too many password checks or history reads are running; try again.
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// Too many failed logins from this address (or for this account from it).
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    TooManyAttempts {
        /// How long until the next attempt is taken.
        retry_after_secs: u64,
    },
    /// The server keeps no history (it runs without a store).
    #[error("this server keeps no history to search")]
    NoHistory,
    /// A search query that cannot be read.
    #[error("{0}")]
    BadSearch(SearchProblem),
    /// Only server admins may do that.
    #[error("only server admins may do that")]
    NotAdmin,
    /// Only the room's operators and server admins may do that.
    #[error("only operators of {0} may do that")]
    NotOperator(String),
    /// Banned from the server.
    #[error("you are banned from this server{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    ServerBanned {
        /// Why, if the administrator said.
        reason: Option<String>,
    },
    /// Banned from a room.
    #[error("you are banned from {room}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Banned {
        /// The room.
        room: String,
        /// Why, if the moderator said.
        reason: Option<String>,
    },
    /// The room has no such message, or not one the session may see.
    #[error("{room} has no message {seq}")]
    NoSuchMessage {
        /// The room.
        room: String,
        /// The seq asked for.
        seq: u64,
    },
    /// Only a message's author, the room's operators and server admins may delete it.
    #[error("only its author or an operator of {0} may delete that message")]
    NotAuthor(String),
    /// Muted in a room.
    #[error("you are muted in {0}")]
    Muted(String),
    /// The room is moderated and the session is neither an operator nor voiced.
    #[error("{0} is moderated; only operators and voiced users may speak")]
    Moderated(String),
    /// The room has a key and it was not given.
    #[error("{0} needs a key to join")]
    WrongKey(String),
    /// The room is at its member limit.
    #[error("{0} is full")]
    RoomFull(String),
    /// The room is invite-only and the session was not invited.
    #[error("{0} is invite-only; ask an operator for an invitation")]
    InviteOnly(String),
    /// The one invited is in the room already.
    #[error("{nick} is already in {room}")]
    AlreadyInRoom {
        /// Who.
        nick: String,
        /// Where.
        room: String,
    },
    /// A mode argument that cannot be used.
    #[error("{0}")]
    BadMode(ModeProblem),
    /// The target of a kick or mute is not in the room.
    #[error("{nick} is not in {room}")]
    NotHere {
        /// Who.
        nick: String,
        /// Where.
        room: String,
    },
    /// Only accounts can be operators.
    #[error("there is no account called {0}")]
    NoSuchAccount(String),
    /// A ban mask that is neither a nick nor an IP address.
    #[error("{0:?} is neither a nick nor an IP address")]
    BadMask(String),
    /// A ban or mute longer than the longest allowed.
    #[error("a ban or mute lasts at most {max_days} days; leave the duration out for one until lifted")]
    TooLong {
        /// The longest, in days.
        max_days: u64,
    },
    /// The room's (or the server's) ban list is full.
    #[error("the ban list is full ({max}); lift a ban first")]
    TooManyBans {
        /// The most bans kept.
        max: usize,
    },
    /// The room is registered already.
    #[error("{0} is registered already")]
    RoomRegistered(String),
    /// The room is not registered.
    #[error("{0} is not registered")]
    RoomNotRegistered(String),
    /// The account has registered as many rooms as it may.
    #[error("you have registered {max} rooms, the most allowed")]
    TooManyRegistered {
        /// The limit in force.
        max: usize,
    },
    /// Only the room's founder (or a server admin) may do that.
    #[error("only the founder of {0} may do that")]
    NotFounder(String),
    /// The store could not be read; nothing changed. The detail is in the server's log.
    #[error("the server could not read its history")]
    StoreRead,
    /// The store could not be written, so nothing was done (a message was not sent).
    /// The detail is in the server's log.
    #[error("the server could not save this, so it was not done")]
    StoreWrite,
    /// A clustered server could not hand the message to the cluster's log (it cannot
    /// reach it, or the log did not answer in time), so it was not sent; `maybe`: the log
    /// did not answer, and it may have been sent after all.
    #[error("the message could not reach the cluster, so it was not sent")]
    NotShared {
        /// The log may have taken it after all.
        maybe: bool,
    },
    /// A clustered server could not ask the cluster's nick registry whether the nick
    /// is free (it cannot reach it, or it did not answer in time), so the nick was not
    /// taken: the session keeps the nick it had (or is not registered).
    #[error("the cluster could not be asked whether the nick is free, so it was not taken")]
    ClusterUnreachable,
    /// The server is shutting down and takes no new sessions.
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// Which rule a nick or room name breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRule {
    /// It is empty.
    #[error("it is empty")]
    Empty,
    /// It is longer than the limit.
    #[error("it has more than {max} characters")]
    TooLong {
        /// The most characters.
        max: usize,
    },
    /// It has a character names may not have.
    #[error("{0:?} is not allowed")]
    Character(char),
    /// It starts with a character names may not start with (a nick: a digit or `-`).
    #[error("it may not start with {0:?}")]
    Start(char),
    /// It mixes right-to-left and left-to-right letters in a way RFC 8265 forbids (it
    /// could be shown in more than one order).
    #[error("it mixes writing directions")]
    Mixed,
    /// It looks like the nicks a clustered server gives guests (`Guest-NODE-N`), which
    /// only the server hands out.
    #[error("it has the form of the nicks the server gives guests")]
    Reserved,
}

/// Why a search query cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchProblem {
    /// There is no word to look for.
    #[error("give at least one word to look for")]
    NoWords,
    /// A `before:` or `after:` filter without a date `YYYY-MM-DD`.
    #[error("{filter}: takes a date as YYYY-MM-DD, not {value:?}")]
    Date {
        /// `before` or `after`.
        filter: &'static str,
        /// What was given.
        value: String,
    },
    /// A `page:` that is not a number from 1 to the most pages.
    #[error("page: takes a number from 1 to {max}, not {value:?}")]
    Page {
        /// What was given.
        value: String,
        /// The last page.
        max: usize,
    },
}

/// Why a mode change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeProblem {
    /// A key must be 1 to `max` bytes, without spaces, commas, colons or controls.
    #[error("a key has 1 to {max} bytes, without spaces, commas or colons")]
    Key {
        /// The longest key.
        max: usize,
    },
    /// A member limit must be from 1 to `max`.
    #[error("a member limit is from 1 to {max}")]
    Limit {
        /// The largest limit.
        max: usize,
    },
}
