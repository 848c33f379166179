//! Which names are in use, so that a new one cannot pass for one of them (see
//! [`crate::lookalike`]): nicks of connected sessions and accounts' names, and the
//! names of rooms with a charter (registered, or with members).

use super::Hub;
use crate::error::HubError;
use crate::name::{Nick, RoomName};

impl Hub {
    /// A session took `nick`, or an account by that name became known.
    pub(crate) fn hold_nick(&mut self, nick: &Nick) {
        self.nick_looks.hold(nick.key_str(), nick.skeleton());
    }

    /// A session let go of `nick`, or the account by that name is gone.
    pub(crate) fn release_nick(&mut self, nick: &Nick) {
        self.nick_looks.release(nick.key_str(), nick.skeleton());
    }

    /// Refuses, as taken, a nick that looks like another one in use.
    pub(crate) fn refuse_lookalike_nick(&self, nick: &Nick) -> Result<(), HubError> {
        match self.nick_looks.resembles(nick.key_str(), nick.skeleton()) {
            Some(held) => {
                tracing::info!(%nick, held, "refused a nick that looks like one in use");
                Err(HubError::NickTaken(nick.to_string()))
            }
            None => Ok(()),
        }
    }

    /// A room got its charter (it was created, or its registration was read).
    pub(crate) fn hold_room(&mut self, room: &RoomName) {
        self.room_looks.hold(room.key_str(), room.skeleton());
    }

    /// A room's charter went (an unregistered room emptied).
    pub(crate) fn release_room(&mut self, room: &RoomName) {
        self.room_looks.release(room.key_str(), room.skeleton());
    }

    /// Refuses to create a room whose name looks like one that exists.
    pub(crate) fn refuse_lookalike_room(&self, room: &RoomName) -> Result<(), HubError> {
        match self.room_looks.resembles(room.key_str(), room.skeleton()) {
            Some(held) => {
                let existing = self
                    .charters
                    .keys()
                    .find(|c| c.key_str() == held)
                    .map_or_else(|| held.to_owned(), |c| c.to_string());
                Err(HubError::RoomLookalike { room: room.to_string(), existing })
            }
            None => Ok(()),
        }
    }
}
