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
        why: String,
    },
    /// The room name breaks the room rules.
    #[error("{room:?} is not a valid room name: {why}")]
    InvalidRoom {
        /// The name as given.
        room: String,
        /// Which rule it breaks.
        why: String,
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
    #[error("the nick {0} is registered already; log in with /login {0} PASSWORD")]
    AccountExists(String),
    /// A wrong name or password.
    #[error("wrong account name or password")]
    BadLogin,
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
    /// Too many password checks are running; try again.
    #[error("the server is busy checking passwords; try again in a moment")]
    Busy,
    /// The server keeps no history (it runs without a store).
    #[error("this server keeps no history to search")]
    NoHistory,
    /// A search query that cannot be read.
    #[error("{0}")]
    BadSearch(String),
    /// Only server admins may do that.
    #[error("only server admins may do that")]
    NotAdmin,
    /// Only the room's operators and server admins may do that.
    #[error("only operators of {0} may do that")]
    NotOperator(String),
    /// Banned from a room (the lobby: from the server).
    #[error("you are banned from {room}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Banned {
        /// The room.
        room: String,
        /// Why, if the moderator said.
        reason: Option<String>,
    },
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
    BadMode(String),
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
    /// The message could not be stored, so it was not sent.
    #[error("the message could not be saved, so it was not sent: {0}")]
    Store(String),
    /// The server is shutting down and takes no new sessions.
    #[error("the server is shutting down")]
    ShuttingDown,
}
