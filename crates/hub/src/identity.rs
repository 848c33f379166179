//! Who owns what: accounts by a stable id, guests by the session they had.
//!
//! Authority and private data never hang on a name someone else can take later. A nick
//! is a label; an account is an [`AccountId`] the store assigns once and never reuses,
//! so a name deleted today and registered again tomorrow is a different account, with
//! none of the old one's roles, conversations or files. A guest owns what it says
//! privately through a [`GuestId`] that ends with its connection.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::name::Nick;

/// An account's identity: assigned by the store when the account is registered, never
/// reused (persisted; the numbers must stay stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

/// A guest session's identity for what it owns (its private messages). Numbered by the
/// hub across restarts (the store says where numbering stopped), never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestId(pub u64);

/// The owner of a private message or file: an account, or a guest session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// A logged-in user's account.
    Account(AccountId),
    /// A guest, for as long as its session lasts.
    Guest(GuestId),
}

impl Party {
    /// One number for storage: accounts positive, guests negative. (Persisted.)
    #[must_use]
    pub fn to_i64(self) -> i64 {
        match self {
            Party::Account(AccountId(id)) => id,
            Party::Guest(GuestId(id)) => i64::try_from(id).map_or(i64::MIN, |id| -id),
        }
    }

    /// The party a stored number stands for; `None` for 0 (nobody: messages kept from
    /// before parties were recorded).
    #[must_use]
    pub fn from_i64(n: i64) -> Option<Party> {
        match n {
            0 => None,
            n if n > 0 => Some(Party::Account(AccountId(n))),
            n => Some(Party::Guest(GuestId(n.unsigned_abs()))),
        }
    }

    /// The account, when the party is one.
    #[must_use]
    pub fn account(self) -> Option<AccountId> {
        match self {
            Party::Account(id) => Some(id),
            Party::Guest(_) => None,
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Account(AccountId(id)) => write!(f, "account {id}"),
            Party::Guest(GuestId(id)) => write!(f, "guest {id}"),
        }
    }
}

/// An account: its id, and its name as registered (the nick it protects).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Account {
    /// Its identity.
    pub id: AccountId,
    /// Its name.
    pub name: Nick,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_survive_storage_and_zero_is_nobody() {
        for party in [Party::Account(AccountId(7)), Party::Guest(GuestId(7)), Party::Guest(GuestId(1))] {
            assert_eq!(Party::from_i64(party.to_i64()), Some(party));
        }
        assert_eq!(Party::Account(AccountId(7)).to_i64(), 7);
        assert_eq!(Party::Guest(GuestId(7)).to_i64(), -7);
        assert_eq!(Party::from_i64(0), None);
    }
}

/// The user and host of a session's `nick!user@host`, as IRC shows every user of every
/// gateway: given by its gateway when it connects (IRC's `USER` name, a host cloaked from
/// the address) and fixed for the session's life. The hub keeps one per session and puts
/// the same `Arc` in every event that needs a source, so a fan-out copies a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Userhost {
    /// The user name (`~alice`).
    pub user: Box<str>,
    /// The host (a cloak, an address or the server's name).
    pub host: Box<str>,
}

impl Userhost {
    /// A user name and host.
    #[must_use]
    pub fn new(user: &str, host: &str) -> Arc<Userhost> {
        Arc::new(Userhost { user: user.into(), host: host.into() })
    }

    /// What a session whose gateway gave none shows (hub-only clients: tests, benches).
    #[must_use]
    pub fn unknown() -> Arc<Userhost> {
        Userhost::new("~user", "parley")
    }
}

/// What a gateway says of a session as it connects, besides its nick and login.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The client's address, for bans, pacing and guests' quotas.
    pub address: Option<IpAddr>,
    /// Its user name and host.
    pub userhost: Arc<Userhost>,
    /// Whether it starts in the lobby (the line protocol's room; IRC clients choose
    /// their channels themselves). A session outside the lobby is welcomed into no room.
    pub lobby: bool,
}

impl Arrival {
    /// From `address`, into the lobby, with no user name or host of its own.
    #[must_use]
    pub fn lobby(address: Option<IpAddr>) -> Arrival {
        Arrival { address, userhost: Userhost::unknown(), lobby: true }
    }
}
