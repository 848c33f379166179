//! Resume tokens in the hub: issuing one after a login that asked for it, logging in
//! with one (from `hello`, or for a gateway that only needs to know whose it is: a
//! browser fetching a file), listing and revoking an account's tokens.
//!
//! A token login passes the same checks as a password login: server bans and the
//! lobby's bans, and the pacing of failures. An unknown, revoked or expired token counts
//! as a wrong password, charged to its network and to that token (as a password failure
//! is charged to the network and the account): retrying the same bad token waits 1, 2,
//! 4 … seconds, and a network that fails with many tokens waits for every login, as for
//! passwords. A browser whose stale cookie failed once is not kept from using its new
//! one. (A token is 256 random bits: pacing is not what keeps it from being guessed; it
//! keeps a client that hammers from costing anything.) Token lookups do not wait in the
//! password checks' turns: one costs a hash and one indexed read, not a deliberately
//! slow hash. They run on the blocking pool, a few at once (the read permits).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use tokio::sync::oneshot;

use super::{store_failed, Answer, Completion, Hub};
use crate::command::RequestId;
use crate::error::HubError;
use crate::event::{Event, LeaveReason, Reply};
use crate::handle::{SessionId, TokenHolder, Whereabouts};
use crate::identity::{Account, AccountId, Party};
use crate::outbox::Outbox;
use crate::store::{Store, StoreError};
use crate::tokens::{mint, token_hash, SessionInfo, TokenUse, MAX_TOKENS_PER_ACCOUNT, MAX_TOKEN_TEXT};

/// The pacing key a token's attempts are charged to: no nick can have it.
fn pacing_key(hash: &[u8]) -> String {
    let mut key = String::from("\u{0}token ");
    for b in hash.iter().take(8) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// What a token lookup was for.
pub(crate) enum TokenPurpose {
    /// A `hello` with a token: register a session logged in to its account.
    Connect {
        arrival: crate::identity::Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    },
    /// A gateway asking whose it is.
    Check { done: oneshot::Sender<Result<TokenHolder, HubError>> },
}

/// Issues a token for `account` on the blocking pool (inside a login's check): the token
/// and its id, or `None` when it could not be kept (logged: the login goes on without).
pub(crate) fn issue(
    store: &dyn Store,
    account: AccountId,
    description: &str,
    idle: std::time::Duration,
) -> Option<(String, u64)> {
    let Some((token, hash)) = mint() else {
        tracing::error!("no randomness for a resume token");
        return None;
    };
    let now = Utc::now();
    let unused_since = now - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
    match store.issue_token(account, &hash, description, now, MAX_TOKENS_PER_ACCOUNT, unused_since) {
        Ok(Some(id)) => Some((token, id)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!("keeping a resume token failed: {e}");
            None
        }
    }
}

impl Hub {
    /// The instant before which an unused token has expired.
    fn unused_since(&self) -> crate::event::Timestamp {
        Utc::now() - chrono::Duration::from_std(self.limits.token_idle).unwrap_or(chrono::Duration::MAX)
    }

    /// Looks `token` up for `purpose`, paced; the answer comes back as a completion.
    pub(super) fn look_up_token(&mut self, token: String, address: Option<IpAddr>, purpose: TokenPurpose) {
        let refuse = |purpose: TokenPurpose, e: HubError| match purpose {
            TokenPurpose::Connect { done, .. } => {
                let _ = done.send(Err(e));
            }
            TokenPurpose::Check { done } => {
                let _ = done.send(Err(e));
            }
        };
        let store = match self.store.clone() {
            Some(store) => store,
            None => return refuse(purpose, HubError::NoAccounts),
        };
        let hash = token_hash(&token);
        let key = pacing_key(&hash);
        if let Err(e) = self.pacing.admit(address, &key, Instant::now()) {
            return refuse(purpose, e);
        }
        if token.is_empty() || token.len() > MAX_TOKEN_TEXT {
            self.token_failed(address, &key);
            return refuse(purpose, HubError::BadToken);
        }
        let unused_since = self.unused_since();
        self.checks += 1;
        let (permits, completions) = (self.read_permits.clone(), self.completions.clone());
        tokio::spawn(async move {
            let result = match permits.acquire_owned().await {
                Ok(_permit) => {
                    let found =
                        tokio::task::spawn_blocking(move || store.use_token(&hash, Utc::now(), unused_since)).await;
                    found.unwrap_or_else(|e| Err(StoreError::Read(format!("a token lookup failed: {e}"))))
                }
                Err(_) => Err(StoreError::Read("no read permits".into())),
            };
            let _ = completions.send(Completion::TokenChecked { address, key, purpose, result });
        });
    }

    fn token_failed(&mut self, address: Option<IpAddr>, key: &str) {
        crate::metrics::HubMetrics::add(&self.metrics.auth_failures, 1);
        self.pacing.record(address, key, false, Instant::now());
    }

    /// A token lookup finished.
    pub(super) fn token_checked(
        &mut self,
        address: Option<IpAddr>,
        key: &str,
        purpose: TokenPurpose,
        result: Result<Option<TokenUse>, StoreError>,
    ) {
        self.checks -= 1;
        let found = match result {
            Ok(Some(found)) => {
                self.pacing.record(address, key, true, Instant::now());
                Ok(found)
            }
            Ok(None) => {
                self.token_failed(address, key);
                Err(HubError::BadToken)
            }
            Err(e) => Err(store_failed(&e)),
        };
        match purpose {
            TokenPurpose::Connect { arrival, req, outbox, done } => match found {
                Ok(found) => self.arrive_logged_in(super::claiming::LogIn {
                    account: found.account,
                    admin: found.admin,
                    arrival,
                    req,
                    outbox,
                    token: None,
                    resumed: Some(found.token.id),
                    done,
                }),
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            },
            TokenPurpose::Check { done } => {
                let result = found.and_then(|found| {
                    if let Some(ban) =
                        self.server_bans.find(Utc::now(), &found.account.name, Some(&found.account.name), address, None)
                    {
                        return Err(HubError::ServerBanned { reason: ban.reason.clone() });
                    }
                    Ok(TokenHolder {
                        token: found.token.id,
                        whereabouts: self.account_whereabouts(&found.account, address),
                        account: found.account,
                    })
                });
                let _ = done.send(result);
            }
        }
    }

    /// Where an account is: every room one of its sessions is in now. A gateway with no
    /// session of its own (a browser fetching a file) reads with this.
    fn account_whereabouts(&self, account: &Account, address: Option<IpAddr>) -> Whereabouts {
        let mut rooms: Vec<(crate::name::RoomName, u64)> = Vec::new();
        for state in self.sessions.values() {
            if state.account.as_ref().is_none_or(|a| a.id != account.id) {
                continue;
            }
            for room in &state.rooms {
                if !rooms.iter().any(|(r, _)| r == room) {
                    rooms.push((room.clone(), self.since(room)));
                }
            }
        }
        Whereabouts {
            nick: account.name.clone(),
            account: Some(account.clone()),
            party: Party::Account(account.id),
            address,
            rooms,
        }
    }

    /// A token issued for a login that then failed (a ban): nobody holds it.
    pub(super) fn discard_token(&self, account: AccountId, token: Option<(String, u64)>) {
        let (Some((_, id)), Some(store)) = (token, self.store.clone()) else { return };
        self.write(move || {
            if let Err(e) = store.revoke_token(account, id) {
                tracing::warn!("revoking an unused resume token failed: {e}");
            }
        });
    }

    /// The answer to a login that asked to be remembered: the answer and the token.
    pub(super) fn remembered(&mut self, id: SessionId, reply: Reply, token: Option<(String, u64)>) -> Reply {
        match token {
            Some((token, token_id)) => {
                self.session_tokens.insert(id, token_id);
                Reply::Remembered { reply: Box::new(reply), token }
            }
            None => reply,
        }
    }

    /// `Sessions`: the account's tokens.
    pub(super) fn list_sessions(&mut self, id: SessionId, req: RequestId) -> Result<Answer, HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        let account = self.state(id).account.clone().ok_or(HubError::NotLoggedIn)?;
        let current = self.session_tokens.get(&id).copied();
        self.answer_off_hub(id, req, move || {
            let tokens = store.tokens(account.id).map_err(|e| store_failed(&e))?;
            let sessions =
                tokens.into_iter().map(|token| SessionInfo { current: Some(token.id) == current, token }).collect();
            Ok(Reply::Sessions(sessions))
        })
    }

    /// `RevokeSession`: one of the account's tokens, by id.
    pub(super) fn revoke_session(&mut self, id: SessionId, req: RequestId, token: u64) -> Result<Answer, HubError> {
        let store = self.store.clone().ok_or(HubError::NoAccounts)?;
        let account = self.state(id).account.as_ref().ok_or(HubError::NotLoggedIn)?.id;
        self.revoke(store, Revoker::Session(id, req), account, token);
        Ok(Answer::Later)
    }

    /// A gateway revoking the token it was shown (a browser logging out).
    pub(super) fn revoke_held(&mut self, account: AccountId, token: u64, done: oneshot::Sender<Result<(), HubError>>) {
        let Some(store) = self.store.clone() else {
            let _ = done.send(Err(HubError::NoAccounts));
            return;
        };
        self.revoke(store, Revoker::Gateway(done), account, token);
    }

    /// Deletes a token off the hub task; the hub hears back in `token_revoked`.
    fn revoke(&mut self, store: Arc<dyn Store>, revoker: Revoker, account: AccountId, token: u64) {
        self.writes += 1;
        let completions = self.completions.clone();
        self.write(move || {
            let result = store.revoke_token(account, token);
            let _ = completions.send(Completion::TokenRevoked { revoker, account, token, result });
        });
    }

    /// A token is revoked: the connections that logged in with it (or were given it)
    /// end, except the one that revoked it; then whoever asked is answered.
    ///
    /// A revoked token that kept its connections would leave a stolen one's thief
    /// connected after its owner saw it in `/sessions` and revoked it.
    pub(super) fn token_revoked(
        &mut self,
        revoker: Revoker,
        account: AccountId,
        token: u64,
        result: Result<bool, StoreError>,
    ) {
        self.writes -= 1;
        if let Ok(true) = result {
            self.sign_out_everywhere(account, Some(token), revoker.session());
        }
        match revoker {
            Revoker::Session(id, req) => {
                let answer = match result {
                    Ok(true) => Ok(Reply::Revoked { id: token }),
                    Ok(false) => Err(HubError::NoSuchSession(token)),
                    Err(e) => Err(store_failed(&e)),
                };
                self.reply(id, req, answer);
            }
            Revoker::Gateway(done) => {
                let _ = done.send(result.map(|_| ()).map_err(|e| store_failed(&e)));
            }
        }
    }

    /// [`Hub::sign_out`] here and on the other nodes of a cluster, which share the
    /// accounts and their tokens.
    pub(super) fn sign_out_everywhere(&mut self, account: AccountId, token: Option<u64>, except: Option<SessionId>) {
        self.sign_out(account, token, except);
        self.tell_cluster(|| crate::presence::Presence::SignedOut { account, token });
    }

    /// Ends the sessions here logged in to `account` (but `except`): those holding its
    /// revoked token `token`, or every one (`None`), telling each and its rooms why.
    pub(super) fn sign_out(&mut self, account: AccountId, token: Option<u64>, except: Option<SessionId>) {
        let holders: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(id, state)| Some(**id) != except && state.account.as_ref().is_some_and(|a| a.id == account))
            .map(|(id, _)| *id)
            .filter(|id| token.is_none() || self.session_tokens.get(id) == token.as_ref())
            .collect();
        for holder in holders {
            self.tell(holder, &Event::SignedOut { at: Utc::now() });
            if let Some(state) = self.remove_session(holder, LeaveReason::SignedOut, None) {
                state.outbox.close();
            }
        }
    }
}

/// Who revoked a token, to be answered.
pub(crate) enum Revoker {
    /// A session's `RevokeSession`.
    Session(SessionId, RequestId),
    /// A gateway's (a browser logging out).
    Gateway(oneshot::Sender<Result<(), HubError>>),
}

impl Revoker {
    /// The session waiting for the answer, if a session asked.
    pub(super) fn session(&self) -> Option<SessionId> {
        match self {
            Revoker::Session(id, _) => Some(*id),
            Revoker::Gateway(_) => None,
        }
    }
}
