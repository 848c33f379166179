//! Moderation: server admins, registered rooms with their operators, settings, bans and
//! topics, server bans, and the audit log that records every change. A change to an
//! unregistered room is only audited: its state goes with the room's life.

use chrono::{DateTime, Utc};
use parley_hub::{
    AccountId, AuditLine, Change, Changed, Mask, Moderation, ModerationStore, Nick, RegisteredRoom, Restriction,
    RoomModes, RoomName, ServerBan, StoreError, Topic,
};
use rusqlite::{params, Connection, Transaction};

use super::{micros, nick_or_corrupt, room_or_corrupt, write_error, SqliteStore};

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Every registered room, with its operators, bans and topic.
fn registered_rooms(conn: &Connection) -> rusqlite::Result<Vec<RegisteredRoom>> {
    let mut stmt = conn.prepare(
        "SELECT key, name, founder, registered_us, since, moderated, secret, topic_locked, invite_only, room_key,
                member_limit, private
         FROM registered_rooms ORDER BY key",
    )?;
    let rows = stmt.query_map([], |row| {
        let limit: Option<i64> = row.get(10)?;
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<i64>>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            RoomModes {
                moderated: row.get(5)?,
                secret: row.get(6)?,
                private: row.get(11)?,
                topic_locked: row.get(7)?,
                invite_only: row.get(8)?,
                key: row.get(9)?,
                limit: limit.and_then(|l| usize::try_from(l).ok()),
            },
        ))
    })?;
    let mut ops = conn.prepare_cached("SELECT account FROM room_ops WHERE room = ?1 ORDER BY account")?;
    let mut restrictions = conn.prepare_cached(
        "SELECT ban, mask, until_us, reason, set_by, set_at_us FROM restrictions WHERE room = ?1 ORDER BY ban, mask",
    )?;
    let mut topic = conn.prepare_cached("SELECT topic, set_by, at_us FROM topics WHERE room = ?1")?;
    let mut rooms = Vec::new();
    for row in rows {
        let (key, name, founder, registered_us, since, modes) = row?;
        let room = room_or_corrupt(&name)?;
        let ops = ops.query_map([&key], |row| row.get::<_, i64>(0).map(AccountId))?.collect::<Result<_, _>>()?;
        let mut kept = Vec::new();
        for row in restrictions.query_map([&key], |row| {
            Ok((
                row.get::<_, bool>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<i64>>(5)?,
            ))
        })? {
            let (ban, mask, until, reason, set_by, set_at) = row?;
            if let Some(mask) = Mask::parse(&mask, usize::MAX) {
                let set_by = set_by.and_then(|n| Nick::parse(&n, usize::MAX).ok());
                let (until, set_at) = (until.map(time), set_at.map(time));
                kept.push(Restriction { room: room.clone(), ban, mask, until, reason, set_by, set_at });
            }
        }
        let topic = topic
            .query_map([&key], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))?
            .next()
            .transpose()?
            .map(|(text, by, at)| Ok::<_, rusqlite::Error>(Topic { text, by: nick_or_corrupt(&by)?, at: time(at) }))
            .transpose()?;
        rooms.push(RegisteredRoom {
            room,
            founder: founder.map(AccountId),
            registered: time(registered_us),
            since: u64::try_from(since).unwrap_or(0),
            modes,
            ops,
            topic,
            restrictions: kept,
        });
    }
    Ok(rooms)
}

/// Writes a registered room's settings.
fn write_modes(tx: &Transaction<'_>, key: &str, modes: &RoomModes) -> rusqlite::Result<()> {
    let limit = modes.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    tx.execute(
        "UPDATE registered_rooms SET moderated = ?2, secret = ?3, topic_locked = ?4, invite_only = ?5,
             room_key = ?6, member_limit = ?7, private = ?8
         WHERE key = ?1",
        params![
            key,
            modes.moderated,
            modes.secret,
            modes.topic_locked,
            modes.invite_only,
            modes.key,
            limit,
            modes.private
        ],
    )?;
    Ok(())
}

fn write_topic(tx: &Transaction<'_>, key: &str, topic: Option<&Topic>) -> rusqlite::Result<()> {
    match topic {
        None => tx.execute("DELETE FROM topics WHERE room = ?1", [key])?,
        Some(topic) => tx.execute(
            "INSERT INTO topics (room, topic, set_by, at_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (room) DO UPDATE SET topic = excluded.topic, set_by = excluded.set_by, at_us = excluded.at_us",
            params![key, topic.text, topic.by.as_str(), micros(topic.at)],
        )?,
    };
    Ok(())
}

fn write_restriction(tx: &Transaction<'_>, key: &str, r: &Restriction) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO restrictions (room, ban, mask, until_us, reason, set_by, set_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (room, ban, mask) DO UPDATE SET until_us = excluded.until_us, reason = excluded.reason,
             set_by = excluded.set_by, set_at_us = excluded.set_at_us",
        params![
            key,
            r.ban,
            r.mask.to_string(),
            r.until.map(micros),
            r.reason,
            r.set_by.as_ref().map(Nick::as_str),
            r.set_at.map(micros)
        ],
    )?;
    Ok(())
}

/// Keeps a durable change to a room (`key`), in the caller's transaction.
fn keep(tx: &Transaction<'_>, key: &str, change: &Change) -> rusqlite::Result<()> {
    match &change.what {
        Changed::Registered { founder, since, modes, topic, restrictions } => {
            let founder_id = founder.as_ref().map(|a| a.id.0);
            let name = change.room.as_ref().map_or(key, RoomName::as_str);
            tx.execute(
                "INSERT INTO registered_rooms (key, name, founder, registered_us, since) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, founder = excluded.founder,
                     registered_us = excluded.registered_us, since = excluded.since",
                params![key, name, founder_id, micros(change.at), i64::try_from(*since).unwrap_or(i64::MAX)],
            )?;
            // Whatever an earlier registration of the name left goes.
            tx.execute("DELETE FROM room_ops WHERE room = ?1", [key])?;
            tx.execute("DELETE FROM restrictions WHERE room = ?1", [key])?;
            write_modes(tx, key, modes)?;
            write_topic(tx, key, topic.as_ref())?;
            if let Some(id) = founder_id {
                tx.execute("INSERT OR IGNORE INTO room_ops (room, account) VALUES (?1, ?2)", params![key, id])?;
            }
            for restriction in restrictions {
                write_restriction(tx, key, restriction)?;
            }
        }
        Changed::Unregistered => {
            for table in
                ["registered_rooms WHERE key", "room_ops WHERE room", "restrictions WHERE room", "topics WHERE room"]
            {
                tx.execute(&format!("DELETE FROM {table} = ?1"), [key])?;
            }
        }
        Changed::Topic(text) => {
            let topic =
                (!text.is_empty()).then(|| Topic { text: text.clone(), by: change.actor.clone(), at: change.at });
            write_topic(tx, key, topic.as_ref())?;
        }
        Changed::Restricted(r) => write_restriction(tx, key, r)?,
        Changed::Lifted { ban, mask } => {
            tx.execute(
                "DELETE FROM restrictions WHERE room = ?1 AND ban = ?2 AND mask = ?3",
                params![key, ban, mask.to_string()],
            )?;
        }
        Changed::Opped(account) => {
            tx.execute("INSERT OR IGNORE INTO room_ops (room, account) VALUES (?1, ?2)", params![key, account.id.0])?;
        }
        Changed::Deopped(account) => {
            tx.execute("DELETE FROM room_ops WHERE room = ?1 AND account = ?2", params![key, account.id.0])?;
        }
        Changed::Modes(modes) => write_modes(tx, key, modes)?,
        Changed::Kicked { .. } | Changed::Promoted(_) | Changed::Demoted(_) => {}
        Changed::ServerBanned(_) | Changed::ServerUnbanned(_) => {}
    }
    Ok(())
}

/// Keeps a server-wide change.
fn keep_server(tx: &Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match &change.what {
        Changed::ServerBanned(ban) => {
            tx.execute(
                "INSERT INTO server_bans (mask, until_us, reason) VALUES (?1, ?2, ?3)
                 ON CONFLICT (mask) DO UPDATE SET until_us = excluded.until_us, reason = excluded.reason",
                params![ban.mask.to_string(), ban.until.map(micros), ban.reason],
            )?;
        }
        Changed::ServerUnbanned(mask) => {
            tx.execute("DELETE FROM server_bans WHERE mask = ?1", [mask.to_string()])?;
        }
        _ => {}
    }
    Ok(())
}

/// The audit line's target and detail for a change.
pub(crate) fn described(change: &Change) -> (String, Option<String>) {
    let until = |until: Option<DateTime<Utc>>| until.map(|t| format!("until {}", t.to_rfc3339()));
    let with = |reason: &Option<String>, until: Option<String>| match (reason, until) {
        (Some(reason), Some(until)) => Some(format!("{reason} ({until})")),
        (reason, until) => reason.clone().or(until),
    };
    match &change.what {
        Changed::Topic(text) => (text.clone(), None),
        Changed::Kicked { nick, reason } => (nick.to_string(), reason.clone()),
        Changed::Restricted(r) => (r.mask.to_string(), with(&r.reason, until(r.until))),
        Changed::Lifted { mask, .. } | Changed::ServerUnbanned(mask) => (mask.to_string(), None),
        Changed::Promoted(nick) | Changed::Demoted(nick) => (nick.to_string(), None),
        Changed::Opped(account) | Changed::Deopped(account) => (account.name.to_string(), None),
        Changed::Modes(_) | Changed::Unregistered => (String::new(), None),
        Changed::Registered { founder, .. } => {
            (founder.as_ref().map_or_else(String::new, |a| a.name.to_string()), None)
        }
        Changed::ServerBanned(ban) => (ban.mask.to_string(), with(&ban.reason, until(ban.until))),
    }
}

impl ModerationStore for SqliteStore {
    fn moderation(&self) -> Result<Moderation, StoreError> {
        self.read(|conn| {
            let mut kept = Moderation::default();
            let mut stmt = conn.prepare("SELECT account FROM roles WHERE role = 'admin' ORDER BY account")?;
            for id in stmt.query_map([], |row| row.get::<_, i64>(0))? {
                kept.admins.push(AccountId(id?));
            }
            kept.rooms = registered_rooms(conn)?;
            let mut stmt = conn.prepare("SELECT mask, until_us, reason FROM server_bans ORDER BY mask")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?, row.get::<_, Option<String>>(2)?))
            })?;
            for row in rows {
                let (mask, until, reason) = row?;
                if let Some(mask) = Mask::parse(&mask, usize::MAX) {
                    kept.server_bans.push(ServerBan { mask, until: until.map(time), reason });
                }
            }
            Ok(kept)
        })
    }

    fn record(&self, change: &Change) -> Result<(), StoreError> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction().map_err(write_error)?;
        let key = change.room.as_ref().map(RoomName::key);
        if change.durable {
            match &key {
                Some(key) => keep(&tx, key, change),
                None => keep_server(&tx, change),
            }
            .map_err(write_error)?;
        }
        let (target, detail) = described(change);
        tx.execute(
            "INSERT INTO audit (at_us, actor, action, room, target, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                micros(change.at),
                change.actor.as_str(),
                change.what.action(),
                change.room.as_ref().map(RoomName::as_str),
                target,
                detail
            ],
        )
        .map_err(write_error)?;
        tx.commit().map_err(write_error)
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT at_us, actor, action, room, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map([limit], |row| {
                Ok(AuditLine {
                    at: time(row.get(0)?),
                    actor: row.get(1)?,
                    action: row.get(2)?,
                    room: row.get(3)?,
                    target: row.get(4)?,
                    detail: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }
}
