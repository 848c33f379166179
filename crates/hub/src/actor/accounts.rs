//! Accounts in the hub: registering the current nick, logging in, changing the password,
//! and protecting registered nicks from everyone but their owner.
//!
//! Hashing and checking passwords is slow on purpose, so it runs on the blocking pool;
//! the outcome comes back to the hub task as a [`Completion`] and is applied there, like
//! everything else that changes chat state.

use std::sync::Arc;

use chrono::Utc;

use super::{Completion, Hub, SessionId};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, Reply};
use crate::history::{StoreError, Verdict};
use crate::name::Nick;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 8;
/// The longest password accepted, in bytes: hashing cost grows with it.
pub const MAX_PASSWORD: usize = 1024;
/// Password checks running at once; more are refused, so that a burst of logins cannot
/// take every core.
const MAX_CHECKS: usize = 4;

/// Checks a password and, when it is right, whether the account is a server admin (on
/// the blocking pool: hashing is slow by design).
fn verify_with_role(
    store: &dyn crate::history::Store,
    name: &Nick,
    password: &str,
) -> Result<(Verdict, bool), StoreError> {
    let verdict = store.verify(name, password)?;
    let admin = match &verdict {
        Verdict::Right(account) => store.is_admin(account)?,
        _ => false,
    };
    Ok((verdict, admin))
}

fn check_password(password: &str) -> Result<(), HubError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(HubError::WeakPassword { min: MIN_PASSWORD, max: MAX_PASSWORD });
    }
    Ok(())
}

impl Hub {
    /// Runs `work` on the blocking pool and brings its completion back to the hub.
    fn off_task(&mut self, work: impl FnOnce() -> Completion + Send + 'static) -> Result<(), HubError> {
        if self.checks >= MAX_CHECKS {
            return Err(HubError::Busy);
        }
        self.checks += 1;
        let completions = self.completions.clone();
        tokio::task::spawn_blocking(move || {
            let _ = completions.send(work());
        });
        Ok(())
    }

    pub(super) fn register(&mut self, id: SessionId, req: RequestId, password: String) -> Result<(), HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        check_password(&password)?;
        let nick = self.state(id).nick.clone();
        if self.registered.contains(&nick) {
            return Err(HubError::AccountExists(nick.to_string()));
        }
        self.off_task(move || {
            let result = store.register(&nick, &password);
            Completion::Registered { session: id, req, nick, result }
        })
    }

    pub(super) fn login(
        &mut self,
        id: SessionId,
        req: RequestId,
        name: Option<String>,
        password: String,
    ) -> Result<(), HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        let name = match name {
            Some(name) => Nick::parse(&name, self.limits.max_nick_len).map_err(|_| HubError::BadLogin)?,
            None => self.state(id).nick.clone(),
        };
        self.off_task(move || {
            let result = store.verify(&name, &password).and_then(|verdict| match &verdict {
                Verdict::Right(account) => store.is_admin(account).map(|admin| (verdict, admin)),
                _ => Ok((verdict, false)),
            });
            Completion::Verified { session: id, req, name, result }
        })
    }

    /// Checks a `hello`'s password off the hub task; registering goes on in
    /// [`Completion::Admitted`].
    pub(super) fn admit(
        &mut self,
        nick: String,
        password: String,
        address: Option<std::net::IpAddr>,
        req: RequestId,
        outbox: Arc<crate::outbox::Outbox>,
        done: tokio::sync::oneshot::Sender<Result<SessionId, HubError>>,
    ) {
        let (store, name) = match self.ready_to_check(&nick) {
            Ok(ready) => ready,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        let checking = self.off_task(move || {
            let result = verify_with_role(&*store, &name, &password);
            Completion::Admitted { nick, address, req, outbox, done, result }
        });
        debug_assert!(checking.is_ok(), "ready_to_check found room for the check");
    }

    /// The store and the account's name for a password check without a session, once
    /// there is room for one more check (`Busy` otherwise).
    fn ready_to_check(&self, name: &str) -> Result<(Arc<dyn crate::history::Store>, Nick), HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        let name = Nick::parse(name, self.limits.max_nick_len)?;
        if self.checks >= MAX_CHECKS {
            return Err(HubError::Busy);
        }
        Ok((store, name))
    }

    /// Registers a session logged in to `account` (its password checked), taking the
    /// account's nick from whoever has it.
    pub(super) fn log_in_connecting(
        &mut self,
        account: Nick,
        admin: bool,
        address: Option<std::net::IpAddr>,
        req: RequestId,
        outbox: Arc<crate::outbox::Outbox>,
    ) -> Result<SessionId, HubError> {
        self.registered.insert(account.clone());
        if admin {
            self.admins.insert(account.clone());
        }
        if let Some(&holder) = self.nicks.get(&account) {
            self.rename_to_guest(holder, &format!("{account} logged in"));
        }
        self.connect(account.as_str(), Some(account.clone()), address, req, outbox)
    }

    /// Checks a password for a gateway that has no session yet (IRC's SASL).
    pub(super) fn verify_only(
        &mut self,
        name: String,
        password: String,
        done: tokio::sync::oneshot::Sender<Result<super::Verified, HubError>>,
    ) {
        let (store, name) = match self.ready_to_check(&name) {
            Ok(ready) => ready,
            // A name that cannot be a nick has no account: the same answer as a wrong one.
            Err(HubError::InvalidNick { .. }) => {
                let _ = done.send(Err(HubError::BadLogin));
                return;
            }
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        let checking = self.off_task(move || {
            let result = verify_with_role(&*store, &name, &password);
            Completion::Checked { done, result }
        });
        debug_assert!(checking.is_ok(), "ready_to_check found room for the check");
    }

    pub(super) fn change_password(
        &mut self,
        id: SessionId,
        req: RequestId,
        old: String,
        new: String,
    ) -> Result<(), HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        let account = self.state(id).account.clone().ok_or(HubError::NotLoggedIn)?;
        check_password(&new)?;
        self.off_task(move || {
            let result = match store.verify(&account, &old) {
                Ok(Verdict::Right(_)) => store.set_password(&account, &new),
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            Completion::PasswordSet { session: id, req, result }
        })
    }

    /// Applies the outcome of work done off the hub task.
    pub(super) fn complete(&mut self, done: Completion) {
        match done {
            Completion::Registered { session, req, nick, result } => {
                self.checks -= 1;
                let answer = match result {
                    Ok(true) => {
                        self.registered.insert(nick.clone());
                        if let Some(state) = self.sessions.get_mut(&session) {
                            state.account = Some(nick.clone());
                        }
                        Ok(Reply::Registered { account: nick })
                    }
                    Ok(false) => {
                        self.registered.insert(nick.clone());
                        Err(HubError::AccountExists(nick.to_string()))
                    }
                    Err(e) => Err(store_failed(e)),
                };
                self.reply(session, req, answer);
            }
            Completion::Verified { session, req, name, result } => {
                self.checks -= 1;
                let answer = match result {
                    Ok((Verdict::Right(account), admin)) => {
                        self.registered.insert(account.clone());
                        if admin {
                            self.admins.insert(account.clone());
                        } else {
                            self.admins.remove(&account);
                        }
                        self.logged_in(session, account)
                    }
                    Ok((Verdict::Wrong, _)) => Err(HubError::BadLogin),
                    Ok((Verdict::NoAccount, _)) => {
                        // Deleted by `parley admin` since: the nick is free again.
                        self.registered.remove(&name);
                        Err(HubError::BadLogin)
                    }
                    Err(e) => Err(store_failed(e)),
                };
                self.reply(session, req, answer);
            }
            Completion::PasswordSet { session, req, result } => {
                self.checks -= 1;
                let answer = match result {
                    Ok(true) => Ok(Reply::PasswordChanged),
                    Ok(false) => Err(HubError::BadLogin),
                    Err(e) => Err(store_failed(e)),
                };
                self.reply(session, req, answer);
            }
            Completion::Moderated { session, req, change, result } => self.moderated(session, req, change, result),
            Completion::Admitted { nick, address, req, outbox, done, result } => {
                self.checks -= 1;
                let result = match result {
                    Ok((Verdict::Right(account), admin)) => {
                        self.log_in_connecting(account, admin, address, req, outbox)
                    }
                    Ok((Verdict::NoAccount, _)) => {
                        if let Ok(name) = Nick::parse(&nick, usize::MAX) {
                            self.registered.remove(&name);
                        }
                        Err(HubError::BadLogin)
                    }
                    Ok((Verdict::Wrong, _)) => Err(HubError::BadLogin),
                    Err(e) => Err(store_failed(e)),
                };
                self.answer_connect(result, done);
            }
            Completion::Checked { done, result } => {
                self.checks -= 1;
                let result = match result {
                    Ok((Verdict::Right(account), admin)) => {
                        self.registered.insert(account.clone());
                        Ok(super::Verified { account, admin })
                    }
                    Ok(_) => Err(HubError::BadLogin),
                    Err(e) => Err(store_failed(e)),
                };
                let _ = done.send(result);
            }
            Completion::GraceOver { session, nick } => {
                self.timers -= 1;
                let squatting = self
                    .sessions
                    .get(&session)
                    .is_some_and(|state| state.nick == nick && state.account.as_ref() != Some(&nick));
                if squatting {
                    self.rename_to_guest(session, &format!("you did not log in as {nick}"));
                }
            }
        }
        self.drop_slow_consumers();
    }

    /// The session proved it owns `account`: it takes the account's nick, from whoever
    /// else has it.
    fn logged_in(&mut self, id: SessionId, account: Nick) -> Result<Reply, HubError> {
        let Some(state) = self.sessions.get_mut(&id) else {
            return Err(HubError::ShuttingDown);
        };
        state.account = Some(account.clone());
        if state.nick.as_str() != account.as_str() {
            if let Some(&holder) = self.nicks.get(&account) {
                if holder != id {
                    self.rename_to_guest(holder, &format!("{account} logged in"));
                }
            }
            self.change_nick(id, account.clone(), false);
        }
        Ok(Reply::LoggedIn { account: account.clone(), nick: account })
    }

    /// After a session registered under a registered nick: warn it, and rename it when
    /// the grace period ends unless it has logged in by then.
    pub(super) fn warn_squatter(&mut self, id: SessionId, nick: &Nick) {
        let grace = self.limits.login_grace;
        let text = format!(
            "The nick {nick} is registered. Log in with /login {nick} PASSWORD within {} seconds, \
             or you will be renamed.",
            grace.as_secs()
        );
        self.notice(id, &text);
        self.timers += 1;
        let completions = self.completions.clone();
        let (session, nick) = (id, nick.clone());
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = completions.send(Completion::GraceOver { session, nick });
        });
    }

    /// Gives the session a free `Guest_N` nick, telling it why.
    fn rename_to_guest(&mut self, id: SessionId, why: &str) {
        let mut n = id.0;
        let guest = loop {
            let candidate = Nick::parse(&format!("Guest_{n}"), usize::MAX)
                .unwrap_or_else(|_| unreachable!("Guest_N is a valid nick"));
            if !self.nicks.contains_key(&candidate) && !self.registered.contains(&candidate) {
                break candidate;
            }
            n += 1_000_000;
        };
        self.notice(id, &format!("You are now known as {guest}: {why}."));
        self.change_nick(id, guest, true);
    }

    /// A line of information for one session.
    pub(super) fn notice(&mut self, id: SessionId, text: &str) {
        if let Some(state) = self.sessions.get(&id) {
            if state.outbox.deliver(&Event::Notice { at: Utc::now(), text: Arc::from(text) }).is_err() {
                self.overflowed.push(id);
            }
        }
    }
}

fn store_failed(e: StoreError) -> HubError {
    HubError::Store(e.0)
}
