//! Accounts in the hub: registering the current nick, logging in (with a session, or
//! before one exists), changing the password, deleting the account, and protecting
//! registered nicks from everyone but their owner.
//!
//! Hashing and checking passwords is slow on purpose, so it runs on the blocking pool,
//! paced and in fair turns (`pacing`); the outcome comes back to the hub task as a
//! [`Completion`] and is applied there, like everything else that changes chat state.
//! Every login, whatever the way in, goes through the same checks: the password, the
//! account's admin role as the store has it now, and server bans.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::oneshot;

use super::claiming::LogIn;
use super::pacing::Check;
use super::tokens::issue;
use super::{store_failed, Answer, Completion, Hub};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, Notice, Renaming, Reply};
use crate::handle::{SessionId, Verified};
use crate::identity::{Account, Arrival};
use crate::name::Nick;
use crate::outbox::{Outbox, Shared};
use crate::store::{Store, StoreError, Verdict};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted, in bytes: hashing cost grows with it.
pub const MAX_PASSWORD: usize = 1024;

/// A token for a login that asked to be remembered and whose password was right, issued
/// on the blocking pool inside the check.
fn remembering(
    store: &dyn Store,
    result: &Result<Verdict, StoreError>,
    remember: Option<String>,
    idle: std::time::Duration,
) -> Option<(String, u64)> {
    match (result, remember) {
        (Ok(Verdict::Right { account, .. }), Some(description)) => issue(store, account.id, &description, idle),
        _ => None,
    }
}

fn check_password(password: &str) -> Result<(), HubError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(HubError::WeakPassword { min: MIN_PASSWORD, max: MAX_PASSWORD });
    }
    Ok(())
}

impl Hub {
    /// Queues a password check for `address` on `account` (a name's key): refused at
    /// once while that address must wait after failures, else run in its turn.
    fn check(
        &mut self,
        address: Option<IpAddr>,
        account: &str,
        work: impl FnOnce() -> Completion + Send + 'static,
    ) -> Result<(), HubError> {
        self.pacing.admit(address, account, Instant::now())?;
        let check: Check = Box::new(work);
        if !self.turns.queue(address, check) {
            return Err(HubError::Busy);
        }
        self.checks += 1;
        self.start_checks();
        Ok(())
    }

    /// Starts every check whose turn has come.
    fn start_checks(&mut self) {
        for (net, check) in self.turns.next() {
            let completions = self.completions.clone();
            tokio::task::spawn_blocking(move || {
                let then = Box::new(check());
                let _ = completions.send(Completion::CheckDone { net, then });
            });
        }
    }

    /// The store, for a command that needs accounts.
    fn accounts_store(&self) -> Result<Arc<dyn Store>, HubError> {
        self.store.clone().ok_or(HubError::NoAccounts)
    }

    pub(super) fn register(
        &mut self,
        id: SessionId,
        req: RequestId,
        password: String,
        remember: Option<String>,
    ) -> Result<Answer, HubError> {
        let store = self.accounts_store()?;
        check_password(&password)?;
        let state = self.state(id);
        let (nick, address) = (state.nick.clone(), state.address);
        if self.accounts.contains_key(&nick) {
            return Err(HubError::AccountExists(nick.to_string()));
        }
        self.refuse_reserved(&nick)?;
        self.refuse_lookalike_nick(&nick)?;
        let idle = self.limits.token_idle;
        self.check(address, &nick.key(), move || {
            let result = store.register(&nick, &password);
            let token = match (&result, remember) {
                (Ok(Some(account)), Some(description)) => issue(store.as_ref(), account.id, &description, idle),
                _ => None,
            };
            Completion::Registered { session: id, req, result, token }
        })?;
        Ok(Answer::Later)
    }

    pub(super) fn login(
        &mut self,
        id: SessionId,
        req: RequestId,
        name: Option<String>,
        password: String,
        remember: Option<String>,
    ) -> Result<Answer, HubError> {
        let store = self.accounts_store()?;
        let state = self.state(id);
        let address = state.address;
        let name = match name {
            Some(name) => Nick::parse(&name, self.limits.max_nick_len).map_err(|_| HubError::BadLogin)?,
            None => state.nick.clone(),
        };
        let key = name.key();
        let idle = self.limits.token_idle;
        self.check(address, &key, move || {
            let result = store.verify(&name, &password);
            let token = remembering(store.as_ref(), &result, remember, idle);
            Completion::Verified { session: id, req, name, address, result, token }
        })?;
        Ok(Answer::Later)
    }

    /// Checks a `hello`'s password off the hub task; registering goes on in
    /// [`Completion::Admitted`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &mut self,
        nick: String,
        password: String,
        remember: Option<String>,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    ) {
        let address = arrival.address;
        let prepared = self.accounts_store().and_then(|store| {
            let name = Nick::parse(&nick, self.limits.max_nick_len)?;
            Ok((store, name))
        });
        let (store, name) = match prepared {
            Ok(ready) => ready,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        let key = name.key();
        // `done` must reach the completion when the check runs, or this caller when it
        // is refused: it waits in a cell the work takes it from.
        let cell = Arc::new(std::sync::Mutex::new(Some(done)));
        let taken = cell.clone();
        let idle = self.limits.token_idle;
        let queued = self.check(address, &key, move || {
            let result = store.verify(&name, &password);
            let token = remembering(store.as_ref(), &result, remember, idle);
            let done = taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            Completion::Admitted { name, arrival, req, outbox, done, result, token }
        });
        if let Err(e) = queued {
            if let Some(done) = cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                let _ = done.send(Err(e));
            }
        }
    }

    /// Checks a password for a gateway that has no session yet (IRC's SASL).
    pub(super) fn verify_only(
        &mut self,
        name: String,
        password: String,
        address: Option<IpAddr>,
        done: oneshot::Sender<Result<Verified, HubError>>,
    ) {
        let store = match self.accounts_store() {
            Ok(store) => store,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        // A name that cannot be a nick has no account: the same answer as a wrong one.
        let Ok(name) = Nick::parse(&name, self.limits.max_nick_len) else {
            let _ = done.send(Err(HubError::BadLogin));
            return;
        };
        let key = name.key();
        let cell = Arc::new(std::sync::Mutex::new(Some(done)));
        let taken = cell.clone();
        let queued = self.check(address, &key, move || {
            let result = store.verify(&name, &password);
            let done = taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            Completion::Checked { name, address, done, result }
        });
        if let Err(e) = queued {
            if let Some(done) = cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                let _ = done.send(Err(e));
            }
        }
    }

    /// Registers a session logged in to `account` (its password checked), taking the
    /// account's nick from whoever has it.
    pub(super) fn log_in_connecting(
        &mut self,
        account: Account,
        admin: bool,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        token: Option<(String, u64)>,
    ) -> Result<SessionId, HubError> {
        let (address, userhost) = (arrival.address, Some(&*arrival.userhost));
        if let Some(ban) = self.server_bans.find(Utc::now(), &account.name, Some(&account.name), address, userhost) {
            self.discard_token(account.id, token);
            return Err(HubError::ServerBanned { reason: ban.reason.clone() });
        }
        if arrival.lobby {
            if let Err(e) = self.may_enter_lobby(&account.name, Some(&account.name), address, userhost) {
                self.discard_token(account.id, token);
                return Err(e);
            }
        }
        self.know_account(&account, admin);
        if let Some(&holder) = self.nicks.get(&account.name) {
            self.rename_to_guest(holder, Renaming::OwnerLoggedIn { account: account.name.clone() });
        }
        let nick = account.name.to_string();
        let account_id = account.id;
        let token_id = token.as_ref().map(|(_, id)| *id);
        let connected = self.connect(&nick, Some(account), arrival, req, outbox, token.map(|(token, _)| token));
        match (&connected, token_id) {
            (Ok(session), Some(token_id)) => {
                self.session_tokens.insert(*session, token_id);
            }
            (Err(_), Some(token_id)) => self.discard_token(account_id, Some((String::new(), token_id))),
            _ => {}
        }
        connected
    }

    /// Takes in what a successful check says of an account: it exists under this name,
    /// and it is (or is no longer) a server administrator.
    fn know_account(&mut self, account: &Account, admin: bool) {
        self.drop_account_names(account);
        self.hold_nick(&account.name);
        self.accounts.insert(account.name.clone(), account.id);
        if admin {
            self.admins.insert(account.id);
        } else {
            self.admins.remove(&account.id);
        }
    }

    pub(super) fn change_password(
        &mut self,
        id: SessionId,
        req: RequestId,
        old: String,
        new: String,
    ) -> Result<Answer, HubError> {
        let store = self.accounts_store()?;
        let state = self.state(id);
        let account = state.account.clone().ok_or(HubError::NotLoggedIn)?;
        let address = state.address;
        check_password(&new)?;
        let key = account.name.key();
        self.check(address, &key, move || {
            let result = match store.verify_id(account.id, &old) {
                Ok(true) => store.set_password(account.id, &new),
                other => other,
            };
            Completion::PasswordSet { session: id, req, address, account, result }
        })?;
        Ok(Answer::Later)
    }

    /// Deletes the session's account, its password as proof.
    pub(super) fn unregister(&mut self, id: SessionId, req: RequestId, password: String) -> Result<Answer, HubError> {
        let store = self.accounts_store()?;
        let state = self.state(id);
        let account = state.account.clone().ok_or(HubError::NotLoggedIn)?;
        let address = state.address;
        let key = account.name.key();
        self.check(address, &key, move || {
            let result = match store.verify_id(account.id, &password) {
                Ok(true) => store.delete_account(account.id, account.name.as_str()),
                Ok(false) => Ok(false),
                Err(e) => Err(e),
            };
            Completion::Unregistered { session: id, req, address, account, result }
        })?;
        Ok(Answer::Later)
    }

    /// Applies the outcome of work done off the hub task; the session it answered goes
    /// on with what waited behind the answer.
    pub(super) fn complete(&mut self, done: Completion) {
        if let Some(session) = done.session() {
            self.complete_for(done);
            self.resume(session);
        } else {
            self.complete_for(done);
        }
        self.drop_slow_consumers();
    }

    fn complete_for(&mut self, done: Completion) {
        match done {
            Completion::CheckDone { net, then } => {
                self.checks -= 1;
                self.turns.done(net);
                self.start_checks();
                self.complete(*then);
            }
            Completion::Registered { session, req, result, token } => {
                let answer = match result {
                    Ok(Some(account)) => {
                        self.know_account(&account, false);
                        match self.sessions.get_mut(&session) {
                            Some(state) => {
                                state.account = Some(account.clone());
                                self.tell_account(session);
                                Ok(self.remembered(session, Reply::Registered { account: account.name }, token))
                            }
                            None => Err(HubError::ShuttingDown),
                        }
                    }
                    Ok(None) => {
                        let nick = self.sessions.get(&session).map(|s| s.nick.to_string()).unwrap_or_default();
                        Err(HubError::AccountExists(nick))
                    }
                    Err(e) => Err(store_failed(&e)),
                };
                self.reply(session, req, answer);
            }
            Completion::Verified { session, req, name, address, result, token } => {
                match self.judge(address, &name, result) {
                    Ok((account, admin)) => self.finish_login(session, req, account, admin, token),
                    Err(e) => self.reply(session, req, Err(e)),
                }
            }
            Completion::PasswordSet { session, req, address, account, result } => {
                let answer = match result {
                    Ok(true) => {
                        self.pacing.record(address, &account.name.key(), true, Instant::now());
                        // A password changed because it leaked must not leave whoever
                        // used it connected: the account's other connections end.
                        self.sign_out_everywhere(account.id, None, Some(session));
                        Ok(Reply::PasswordChanged)
                    }
                    Ok(false) => {
                        self.pacing.record(address, &account.name.key(), false, Instant::now());
                        Err(HubError::BadLogin)
                    }
                    Err(e) => Err(store_failed(&e)),
                };
                self.reply(session, req, answer);
            }
            Completion::Unregistered { session, req, address, account, result } => {
                let answer = match result {
                    Ok(true) => {
                        self.pacing.record(address, &account.name.key(), true, Instant::now());
                        self.forget_account(&account);
                        self.tell_account(session);
                        Ok(Reply::Unregistered { account: account.name })
                    }
                    Ok(false) => {
                        self.pacing.record(address, &account.name.key(), false, Instant::now());
                        Err(HubError::BadLogin)
                    }
                    Err(e) => Err(store_failed(&e)),
                };
                self.reply(session, req, answer);
            }
            Completion::TokenRevoked { revoker, account, token, result } => {
                self.token_revoked(revoker, account, token, result);
            }
            Completion::Marked { session, req, account, key, target, at, result } => {
                self.marker_written(session, req, account, key, target, at, result);
            }
            Completion::Deleted { session, req, pending, result } => {
                self.deletion_written(session, req, pending, result);
            }
            Completion::Moderated { session, req, life, change, result } => {
                self.moderated(session, req, life, change, result);
            }
            Completion::ModesSet { session, req, room, modes, voiced, applied, result } => {
                self.modes_stored(session, req, room, modes, voiced, applied, result);
            }
            Completion::Admitted { name, arrival, req, outbox, done, result, token } => {
                let judged = self.judge(arrival.address, &name, result);
                match (judged, done) {
                    (Ok((account, admin)), Some(done)) => {
                        let resumed = None;
                        self.arrive_logged_in(LogIn { account, admin, arrival, req, outbox, token, resumed, done });
                    }
                    (Ok((account, _)), None) => self.discard_token(account.id, token),
                    (Err(e), Some(done)) => {
                        let _ = done.send(Err(e));
                    }
                    (Err(_), None) => {}
                }
            }
            Completion::Claimed { key, nick, result, then } => self.claim_answered(key, &nick, result, *then),
            Completion::Checked { name, address, done, result } => {
                let result = self.judge(address, &name, result).and_then(|(account, admin)| {
                    if let Some(ban) =
                        self.server_bans.find(Utc::now(), &account.name, Some(&account.name), address, None)
                    {
                        return Err(HubError::ServerBanned { reason: ban.reason.clone() });
                    }
                    self.know_account(&account, admin);
                    Ok(Verified { account, admin })
                });
                if let Some(done) = done {
                    let _ = done.send(result);
                }
            }
            Completion::GraceOver { session, nick } => {
                self.timers -= 1;
                let squatting = self
                    .sessions
                    .get(&session)
                    .is_some_and(|state| state.nick == nick && state.account_name() != Some(&nick));
                if squatting && self.accounts.contains_key(&nick) {
                    self.rename_to_guest(session, Renaming::NotLoggedIn { nick });
                }
            }
            Completion::Read { session, req } => self.read_done(session, req),
            Completion::TokenChecked { address, key, purpose, result } => {
                self.token_checked(address, &key, purpose, result);
            }
        }
    }

    /// What a password check comes to, paced: the account and its role, or why not.
    fn judge(
        &mut self,
        address: Option<IpAddr>,
        name: &Nick,
        result: Result<Verdict, StoreError>,
    ) -> Result<(Account, bool), HubError> {
        let now = Instant::now();
        match result {
            Ok(Verdict::Right { account, admin }) => {
                self.pacing.record(address, &name.key(), true, now);
                Ok((account, admin))
            }
            Ok(Verdict::Wrong) => {
                crate::metrics::HubMetrics::add(&self.metrics.auth_failures, 1);
                self.pacing.record(address, &name.key(), false, now);
                Err(HubError::BadLogin)
            }
            Ok(Verdict::NoAccount) => {
                // Deleted since (by `parley admin`): the nick is free again.
                if self.accounts.remove(name).is_some() {
                    self.release_nick(name);
                }
                crate::metrics::HubMetrics::add(&self.metrics.auth_failures, 1);
                self.pacing.record(address, &name.key(), false, now);
                Err(HubError::BadLogin)
            }
            Err(e) => Err(store_failed(&e)),
        }
    }

    /// The session proved it owns `account`: unless the account is banned from the
    /// server, it takes the account's nick (from whoever else has it) and its role, and
    /// leaves the rooms the account is banned from.
    pub(super) fn logged_in(&mut self, id: SessionId, account: Account, admin: bool) -> Result<Reply, HubError> {
        let Some(state) = self.sessions.get(&id) else {
            return Err(HubError::ShuttingDown);
        };
        if let Some(ban) =
            self.server_bans.find(Utc::now(), &account.name, Some(&account.name), state.address, Some(&state.userhost))
        {
            return Err(HubError::ServerBanned { reason: ban.reason.clone() });
        }
        self.know_account(&account, admin);
        let nick = account.name.clone();
        let state = self.state_mut(id);
        state.account = Some(account);
        if state.nick.as_str() != nick.as_str() {
            if let Some(&holder) = self.nicks.get(&nick) {
                if holder != id {
                    self.rename_to_guest(holder, Renaming::OwnerLoggedIn { account: nick.clone() });
                }
            }
            self.change_nick(id, nick.clone(), false);
        }
        self.eject_everywhere(id);
        self.tell_account(id);
        // The account may operate some of its rooms: their member lists elsewhere show it.
        for room in self.sessions.get(&id).map(|s| s.rooms.clone()).unwrap_or_default() {
            self.tell_cluster_marks(id, &room);
        }
        Ok(Reply::LoggedIn { account: nick.clone(), nick })
    }

    /// Tells those who share a room with the session which account it is logged in to
    /// now.
    fn tell_account(&mut self, id: SessionId) {
        let Some(state) = self.sessions.get(&id) else { return };
        let (nick, account, rooms) = (state.nick.clone(), state.account_name().cloned(), state.rooms.clone());
        let event = Shared::new(Event::Account { nick, account, userhost: state.userhost.clone() });
        let told = self.tell_room_mates(id, &rooms, &event, false);
        self.tell_watchers(id, &event.event, &told);
    }

    /// An account was deleted: its name is free, its roles and registrations gone, and
    /// every session logged in to it is a guest from now on.
    fn forget_account(&mut self, account: &Account) {
        self.drop_account_names(account);
        self.admins.remove(&account.id);
        self.markers.remove(&account.id);
        let founded: Vec<crate::name::RoomName> = self
            .charters
            .iter()
            .filter(|(_, c)| c.founder() == Some(account.id))
            .map(|(name, _)| name.clone())
            .collect();
        for charter in self.charters.values_mut() {
            charter.ops.remove(&account.id);
        }
        for name in founded {
            if let Some(charter) = self.charters.get_mut(&name) {
                charter.registration = None;
                charter.ops.clear();
            }
            if !self.rooms.contains_key(&name) {
                self.close_room(&name);
            }
        }
        for state in self.sessions.values_mut() {
            if state.account.as_ref().is_some_and(|a| a.id == account.id) {
                state.account = None;
            }
        }
        tracing::info!(account = %account.name, "account deleted");
    }

    /// After a session registered under a registered nick: warn it, and rename it when
    /// the grace period ends unless it has logged in by then.
    pub(super) fn warn_squatter(&mut self, id: SessionId, nick: &Nick) {
        let grace = self.limits.login_grace;
        let notice = Notice::NickRegistered { nick: nick.clone(), grace_secs: grace.as_secs() };
        self.tell(id, &Event::Notice { at: Utc::now(), notice });
        self.timers += 1;
        let completions = self.completions.clone();
        let (session, nick) = (id, nick.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = completions.send(Completion::GraceOver { session, nick });
        });
    }

    /// Forgets every name the account was known by.
    fn drop_account_names(&mut self, account: &Account) {
        let names: Vec<Nick> =
            self.accounts.iter().filter(|(_, id)| **id == account.id).map(|(name, _)| name.clone()).collect();
        for name in names {
            self.accounts.remove(&name);
            self.release_nick(&name);
        }
    }

    /// Gives the session a free `Guest_N` nick, telling it why.
    pub(crate) fn rename_to_guest(&mut self, id: SessionId, cause: Renaming) {
        let mut n = id.0;
        let guest = loop {
            let candidate = Nick::parse(&self.guest_nick(n), usize::MAX)
                .unwrap_or_else(|_| unreachable!("a guest nick is a valid nick"));
            if !self.nicks.contains_key(&candidate)
                && !self.accounts.contains_key(&candidate)
                && self.refuse_lookalike_nick(&candidate).is_ok()
            {
                break candidate;
            }
            n = n.wrapping_add(1_000_000);
        };
        let notice = Notice::Renamed { nick: guest.clone(), cause };
        self.tell(id, &Event::Notice { at: Utc::now(), notice });
        self.change_nick(id, guest, true);
    }
}
