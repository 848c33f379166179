//! Moderation, as in the SQLite store: server admins, registered rooms with their
//! operators, settings, bans and topics, server bans, and the audit log that records
//! every change. A change to an unregistered room is only audited.

use parley_hub::{
    AccountId, AuditLine, Change, Changed, Mask, Moderation, ModerationStore, Nick, RegisteredRoom, Restriction,
    RoomModes, RoomName, ServerBan, StoreError, Topic,
};
use tokio_postgres::{GenericClient, Transaction};

use super::{get, micros, nick_or_corrupt, room_or_corrupt, time, Failure, PostgresStore};
use crate::sqlite::described;

/// A mask as compared: a nick by its key, as the hub compares nicks; an address or a
/// `nick!user@host` pattern (lowercase already) as written.
pub(super) fn mask_key(mask: &Mask) -> String {
    match mask {
        Mask::Nick(nick) => nick.key(),
        Mask::Address(_) | Mask::Pattern(_) => mask.to_string(),
    }
}

/// Every registered room, with its operators, bans and topic.
async fn registered_rooms(client: &impl GenericClient) -> Result<Vec<RegisteredRoom>, Failure> {
    let rows = client
        .query(
            "SELECT key, name, founder, registered_us, since, moderated, secret, topic_locked, invite_only, room_key,
                    member_limit, private
             FROM registered_rooms ORDER BY key",
            &[],
        )
        .await?;
    let ops = client.prepare("SELECT account FROM room_ops WHERE room = $1 ORDER BY account").await?;
    let restrictions = client
        .prepare(
            "SELECT ban, mask, until_us, reason, set_by, set_at_us FROM restrictions WHERE room = $1
             ORDER BY ban, mask_key",
        )
        .await?;
    let topic = client.prepare("SELECT topic, set_by, at_us FROM topics WHERE room = $1").await?;
    let mut rooms = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: &str = get(row, 0)?;
        let room = room_or_corrupt(get(row, 1)?)?;
        let limit: Option<i64> = get(row, 10)?;
        let modes = RoomModes {
            moderated: get(row, 5)?,
            secret: get(row, 6)?,
            private: get(row, 11)?,
            topic_locked: get(row, 7)?,
            invite_only: get(row, 8)?,
            key: get(row, 9)?,
            limit: limit.and_then(|l| usize::try_from(l).ok()),
        };
        let mut op_ids = Vec::new();
        for op in client.query(&ops, &[&key]).await? {
            op_ids.push(AccountId(get(&op, 0)?));
        }
        let mut kept = Vec::new();
        for r in client.query(&restrictions, &[&key]).await? {
            let until: Option<i64> = get(&r, 2)?;
            if let Some(mask) = Mask::parse(get(&r, 1)?, usize::MAX) {
                kept.push(Restriction {
                    room: room.clone(),
                    ban: get(&r, 0)?,
                    mask,
                    until: until.map(time),
                    reason: get(&r, 3)?,
                    set_by: get::<Option<&str>>(&r, 4)?.and_then(|n| Nick::parse(n, usize::MAX).ok()),
                    set_at: get::<Option<i64>>(&r, 5)?.map(time),
                });
            }
        }
        let topic = match client.query_opt(&topic, &[&key]).await? {
            Some(t) => Some(Topic { text: get(&t, 0)?, by: nick_or_corrupt(get(&t, 1)?)?, at: time(get(&t, 2)?) }),
            None => None,
        };
        let founder: Option<i64> = get(row, 2)?;
        let since: i64 = get(row, 4)?;
        rooms.push(RegisteredRoom {
            room,
            founder: founder.map(AccountId),
            registered: time(get(row, 3)?),
            since: u64::try_from(since).unwrap_or(0),
            modes,
            ops: op_ids,
            topic,
            restrictions: kept,
        });
    }
    Ok(rooms)
}

/// Writes a registered room's settings.
async fn write_modes(tx: &Transaction<'_>, key: &str, modes: &RoomModes) -> Result<(), Failure> {
    let limit = modes.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    tx.execute(
        "UPDATE registered_rooms SET moderated = $2, secret = $3, topic_locked = $4, invite_only = $5,
             room_key = $6, member_limit = $7, private = $8
         WHERE key = $1",
        &[
            &key,
            &modes.moderated,
            &modes.secret,
            &modes.topic_locked,
            &modes.invite_only,
            &modes.key,
            &limit,
            &modes.private,
        ],
    )
    .await?;
    Ok(())
}

async fn write_topic(tx: &Transaction<'_>, key: &str, topic: Option<&Topic>) -> Result<(), Failure> {
    match topic {
        None => tx.execute("DELETE FROM topics WHERE room = $1", &[&key]).await?,
        Some(topic) => {
            tx.execute(
                "INSERT INTO topics (room, topic, set_by, at_us) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (room) DO UPDATE SET topic = excluded.topic, set_by = excluded.set_by,
                     at_us = excluded.at_us",
                &[&key, &topic.text, &topic.by.as_str(), &micros(topic.at)],
            )
            .await?
        }
    };
    Ok(())
}

async fn write_restriction(tx: &Transaction<'_>, key: &str, r: &Restriction) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO restrictions (room, ban, mask, mask_key, until_us, reason, set_by, set_at_us)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (room, ban, mask_key) DO UPDATE SET until_us = excluded.until_us, reason = excluded.reason,
             set_by = excluded.set_by, set_at_us = excluded.set_at_us",
        &[
            &key,
            &r.ban,
            &r.mask.to_string(),
            &mask_key(&r.mask),
            &r.until.map(micros),
            &r.reason,
            &r.set_by.as_ref().map(Nick::as_str),
            &r.set_at.map(micros),
        ],
    )
    .await?;
    Ok(())
}

/// Keeps a durable change to a room (`key`), in the caller's transaction.
async fn keep(tx: &Transaction<'_>, key: &str, change: &Change) -> Result<(), Failure> {
    match &change.what {
        Changed::Registered { founder, since, modes, topic, restrictions } => {
            let founder_id = founder.as_ref().map(|a| a.id.0);
            let name = change.room.as_ref().map_or(key, RoomName::as_str);
            let since = i64::try_from(*since).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO registered_rooms (key, name, founder, registered_us, since) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET name = excluded.name, founder = excluded.founder,
                     registered_us = excluded.registered_us, since = excluded.since",
                &[&key, &name, &founder_id, &micros(change.at), &since],
            )
            .await?;
            // Whatever an earlier registration of the name left goes.
            tx.execute("DELETE FROM room_ops WHERE room = $1", &[&key]).await?;
            tx.execute("DELETE FROM restrictions WHERE room = $1", &[&key]).await?;
            write_modes(tx, key, modes).await?;
            write_topic(tx, key, topic.as_ref()).await?;
            if let Some(id) = founder_id {
                tx.execute("INSERT INTO room_ops (room, account) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&key, &id])
                    .await?;
            }
            for restriction in restrictions {
                write_restriction(tx, key, restriction).await?;
            }
        }
        Changed::Unregistered => {
            for table in
                ["registered_rooms WHERE key", "room_ops WHERE room", "restrictions WHERE room", "topics WHERE room"]
            {
                tx.execute(format!("DELETE FROM {table} = $1").as_str(), &[&key]).await?;
            }
        }
        Changed::Topic(text) => {
            let topic =
                (!text.is_empty()).then(|| Topic { text: text.clone(), by: change.actor.clone(), at: change.at });
            write_topic(tx, key, topic.as_ref()).await?;
        }
        Changed::Restricted(r) => write_restriction(tx, key, r).await?,
        Changed::Lifted { ban, mask } => {
            tx.execute(
                "DELETE FROM restrictions WHERE room = $1 AND ban = $2 AND mask_key = $3",
                &[&key, ban, &mask_key(mask)],
            )
            .await?;
        }
        Changed::Opped(account) => {
            tx.execute(
                "INSERT INTO room_ops (room, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&key, &account.id.0],
            )
            .await?;
        }
        Changed::Deopped(account) => {
            tx.execute("DELETE FROM room_ops WHERE room = $1 AND account = $2", &[&key, &account.id.0]).await?;
        }
        Changed::Modes(modes) => write_modes(tx, key, modes).await?,
        Changed::Kicked { .. } | Changed::Promoted(_) | Changed::Demoted(_) => {}
        Changed::ServerBanned(_) | Changed::ServerUnbanned(_) => {}
    }
    Ok(())
}

/// Keeps a server-wide change.
async fn keep_server(tx: &Transaction<'_>, change: &Change) -> Result<(), Failure> {
    match &change.what {
        Changed::ServerBanned(ban) => {
            tx.execute(
                "INSERT INTO server_bans (mask_key, mask, until_us, reason) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (mask_key) DO UPDATE SET mask = excluded.mask, until_us = excluded.until_us,
                     reason = excluded.reason",
                &[&mask_key(&ban.mask), &ban.mask.to_string(), &ban.until.map(micros), &ban.reason],
            )
            .await?;
        }
        Changed::ServerUnbanned(mask) => {
            tx.execute("DELETE FROM server_bans WHERE mask_key = $1", &[&mask_key(mask)]).await?;
        }
        _ => {}
    }
    Ok(())
}

impl ModerationStore for PostgresStore {
    fn moderation(&self) -> Result<Moderation, StoreError> {
        let mut reader = self.reader();
        self.read(async {
            let client = reader.client().await?;
            let mut kept = Moderation::default();
            for row in client.query("SELECT account FROM roles WHERE role = 'admin' ORDER BY account", &[]).await? {
                kept.admins.push(AccountId(get(&row, 0)?));
            }
            kept.rooms = registered_rooms(client).await?;
            for row in client.query("SELECT mask, until_us, reason FROM server_bans ORDER BY mask_key", &[]).await? {
                let until: Option<i64> = get(&row, 1)?;
                if let Some(mask) = Mask::parse(get(&row, 0)?, usize::MAX) {
                    kept.server_bans.push(ServerBan { mask, until: until.map(time), reason: get(&row, 2)? });
                }
            }
            Ok(kept)
        })
    }

    fn record(&self, change: &Change) -> Result<(), StoreError> {
        let key = change.room.as_ref().map(RoomName::key);
        let (target, detail) = described(change);
        let mut writer = self.writer();
        self.write(async {
            let tx = writer.connect(self).await?.transaction().await?;
            if change.durable {
                match &key {
                    Some(key) => keep(&tx, key, change).await?,
                    None => keep_server(&tx, change).await?,
                }
            }
            tx.execute(
                "INSERT INTO audit (at_us, actor, action, room, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &micros(change.at),
                    &change.actor.as_str(),
                    &change.what.action(),
                    &change.room.as_ref().map(RoomName::as_str),
                    &target,
                    &detail,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn audit(&self, limit: usize) -> Result<Vec<AuditLine>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut reader = self.reader();
        self.read(async {
            let rows = reader
                .client()
                .await?
                .query(
                    "SELECT at_us, actor, action, room, target, detail FROM audit ORDER BY id DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(AuditLine {
                        at: time(get(row, 0)?),
                        actor: get(row, 1)?,
                        action: get(row, 2)?,
                        room: get(row, 3)?,
                        target: get(row, 4)?,
                        detail: get(row, 5)?,
                    })
                })
                .collect()
        })
    }
}
