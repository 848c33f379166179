//! Nicks in a cluster (see `claims.rs`): a session of this node takes a nick only once
//! this node holds the nick's claim in the cluster's registry.
//!
//! Whatever would give a session a nick (connecting as a guest or to an account, `NICK`,
//! logging in to an account) checks locally first, as a lone hub does, and then, if this
//! node does not hold the nick's claim yet, asks the registry off the hub task. The
//! answer comes back as a [`Completion::Claimed`], and the operation runs again from the
//! start, checking locally again: granted, the claim is this node's and the operation
//! goes through; refused, the session is told the nick is taken, as for a local clash;
//! unanswered, that the cluster is unreachable, and it keeps the nick it had. The
//! session's later operations wait behind the answer, as behind a password check.
//!
//! The hub counts the sessions using a nick under each claim it holds, and releases a
//! claim when the last one lets go (renamed away, quit, disconnected, killed) at the
//! end of the operation, so that a nick passed from one session of this node to another
//! (an account's owner logging in takes it from a guest) is never released in between.
//!
//! The guest nicks this hub gives out itself (`Guest-NODE-N`: a lost claim, a login's
//! grace run out, an owner logging in) are not claimed: such a rename must happen at
//! once, not after a round trip that may fail. They are unique by construction instead:
//! they contain this node's name, which no other node has, and a number only this node
//! hands out; and no session on any node may choose a nick that looks like one
//! ([`NameRule::Reserved`]), so no claim can ever be made for one.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{Answer, Completion, Hub};
use crate::claims::{ClaimError, NickClaims};
use crate::command::RequestId;
use crate::error::{HubError, NameRule};
use crate::event::Renaming;
use crate::handle::SessionId;
use crate::identity::{Account, Arrival};
use crate::name::{key_of, skeleton, Nick};
use crate::outbox::Outbox;

/// The claims this node holds in the cluster's registry, and asks for.
pub(crate) struct Claiming {
    /// This node's name as guest nicks contain it.
    node: String,
    registry: Arc<dyn NickClaims>,
    /// What every guest nick the hub gives out looks like at its start.
    guest_prefix: String,
    /// The claims held, by key, with how many sessions of this node use a nick under
    /// each (0 only within the operation that granted or let go of it).
    held: HashMap<String, u32>,
    /// Claims whose last user let go during the current operation: released at its
    /// end unless a session took the nick again meanwhile.
    unused: Vec<String>,
    /// Claims asked for and not yet answered.
    pub(crate) in_flight: usize,
}

impl Claiming {
    pub(super) fn new(node: &str, registry: Arc<dyn NickClaims>) -> Claiming {
        // A server's node names are letters, digits, `-` and `_` already; anything else
        // would make a guest nick that is no nick.
        let node = node.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        Claiming {
            node,
            registry,
            guest_prefix: skeleton(&key_of(GUEST_PREFIX)),
            held: HashMap::new(),
            unused: Vec::new(),
            in_flight: 0,
        }
    }

    /// Whether `nick` looks like a guest nick the hub gives out.
    fn is_guest(&self, nick: &Nick) -> bool {
        nick.skeleton().starts_with(&self.guest_prefix)
    }

    /// The claim `nick` is held under; none for a guest nick the hub gives out.
    fn key<'a>(&self, nick: &'a Nick) -> Option<&'a str> {
        (!self.is_guest(nick)).then(|| nick.skeleton())
    }

    /// One more session of this node uses `nick`.
    fn used(&mut self, nick: &Nick) {
        let Some(key) = self.key(nick) else { return };
        if let Some(users) = self.held.get_mut(key) {
            *users += 1;
        } else {
            // Every path to a nick asks for its claim first (see `Hub::unclaimed`).
            tracing::error!(%nick, "a nick was given without its cluster claim");
            self.held.insert(key.to_owned(), 1);
        }
    }

    /// One session of this node fewer uses `nick`.
    fn let_go(&mut self, nick: &Nick) {
        let Some(key) = self.key(nick) else { return };
        if let Some(users) = self.held.get_mut(key) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.unused.push(key.to_owned());
            }
        }
    }
}

/// How the guest nicks a clustered hub gives out begin.
const GUEST_PREFIX: &str = "Guest-";

/// What waits for a nick's claim: the operation, to run again once it is answered.
pub(crate) enum Pending {
    /// A session connecting as a guest under the nick it asked for.
    Connect {
        nick: String,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    },
    /// A session connecting logged in to an account, under the account's nick.
    LogIn(LogIn),
    /// A session's `NICK`.
    Rename { session: SessionId, req: RequestId, nick: String },
    /// A session logged in to an account (its password checked), taking the account's
    /// nick.
    LoggedIn { session: SessionId, req: RequestId, account: Account, admin: bool, token: Option<(String, u64)> },
}

impl Pending {
    /// The session whose request waits, if it has one yet.
    pub(super) fn session(&self) -> Option<SessionId> {
        match self {
            Pending::Rename { session, .. } | Pending::LoggedIn { session, .. } => Some(*session),
            Pending::Connect { .. } | Pending::LogIn(_) => None,
        }
    }
}

/// A session connecting logged in to an account (by password, token, or a gateway's
/// own check).
pub(crate) struct LogIn {
    pub(crate) account: Account,
    pub(crate) admin: bool,
    pub(crate) arrival: Arrival,
    pub(crate) req: RequestId,
    pub(crate) outbox: Arc<Outbox>,
    /// The resume token issued with the login, when it asked for one.
    pub(crate) token: Option<(String, u64)>,
    /// The resume token it logged in with, if it did.
    pub(crate) resumed: Option<u64>,
    pub(crate) done: oneshot::Sender<Result<SessionId, HubError>>,
}

impl Hub {
    /// The claim a session of this node must get before it takes `nick`: none alone,
    /// for a guest nick the hub gives out, or when this node holds it already.
    pub(super) fn unclaimed(&self, nick: &Nick) -> Option<String> {
        let claiming = self.claiming.as_ref()?;
        let key = claiming.key(nick)?;
        (!claiming.held.contains_key(key)).then(|| key.to_owned())
    }

    /// In a cluster, refuses a nick that looks like a guest nick the hub gives out.
    pub(crate) fn refuse_reserved(&self, nick: &Nick) -> Result<(), HubError> {
        match &self.claiming {
            Some(claiming) if claiming.is_guest(nick) => {
                Err(HubError::InvalidNick { nick: nick.to_string(), why: NameRule::Reserved })
            }
            _ => Ok(()),
        }
    }

    /// The guest nick numbered `n`: `Guest_N` alone, `Guest-NODE-N` in a cluster.
    pub(crate) fn guest_nick(&self, n: u64) -> String {
        match &self.claiming {
            Some(claiming) => format!("{GUEST_PREFIX}{}-{n}", claiming.node),
            None => format!("Guest_{n}"),
        }
    }

    /// A session of this node took `nick`.
    pub(crate) fn use_claim(&mut self, nick: &Nick) {
        if let Some(claiming) = &mut self.claiming {
            claiming.used(nick);
        }
    }

    /// A session of this node let go of `nick`.
    pub(crate) fn let_go_of_claim(&mut self, nick: &Nick) {
        if let Some(claiming) = &mut self.claiming {
            claiming.let_go(nick);
        }
    }

    /// Releases the claims nobody here uses any more; the end of every operation.
    pub(crate) fn release_unused(&mut self) {
        let Some(claiming) = &mut self.claiming else { return };
        for key in std::mem::take(&mut claiming.unused) {
            if claiming.held.get(&key) == Some(&0) {
                claiming.held.remove(&key);
                tracing::debug!(key, "releasing a nick's claim");
                claiming.registry.release(key);
            }
        }
    }

    /// Asks the registry for `key`'s claim, off the task; `then` runs again once it
    /// answers.
    pub(super) fn claim_then(&mut self, key: String, nick: Nick, then: Pending) {
        let Some(claiming) = &mut self.claiming else {
            return self.refuse_pending(then, HubError::ClusterUnreachable);
        };
        claiming.in_flight += 1;
        // The registry bounds how long it takes to answer (the server's adapter gives
        // up after a few seconds with an error).
        let claim = claiming.registry.claim(key.clone());
        let completions = self.completions.clone();
        tokio::spawn(async move {
            let result = claim.await;
            let _ = completions.send(Completion::Claimed { key, nick, result, then: Box::new(then) });
        });
    }

    /// The registry answered a claim: what asked for it runs again (granted), or is
    /// refused.
    pub(super) fn claim_answered(&mut self, key: String, nick: &Nick, result: Result<bool, ClaimError>, then: Pending) {
        let Some(claiming) = &mut self.claiming else { return };
        claiming.in_flight -= 1;
        match result {
            Ok(true) => {
                let users = claiming.held.entry(key.clone()).or_insert(0);
                if *users == 0 {
                    // Released at the end of this operation, unless it takes the nick.
                    claiming.unused.push(key);
                }
                self.go_on(then);
            }
            Ok(false) => {
                tracing::debug!(%nick, "the nick's claim is another's");
                self.refuse_pending(then, HubError::NickTaken(nick.to_string()));
            }
            Err(e) => {
                tracing::warn!(%nick, "{e}");
                self.refuse_pending(then, HubError::ClusterUnreachable);
            }
        }
    }

    /// Runs again an operation whose claim was granted: it checks locally again, and
    /// this node holds the claim now.
    fn go_on(&mut self, then: Pending) {
        match then {
            Pending::Connect { nick, arrival, req, outbox, done } => {
                self.connect_guest(nick, arrival, req, outbox, done);
            }
            Pending::LogIn(login) => self.arrive_logged_in(login),
            Pending::Rename { session, req, nick } => {
                let answer = if self.sessions.contains_key(&session) {
                    self.rename(session, req, &nick)
                } else {
                    Err(HubError::ShuttingDown)
                };
                match answer {
                    Ok(Answer::Now(reply)) => self.reply(session, req, Ok(reply)),
                    Ok(Answer::Later) => {}
                    Err(e) => self.reply(session, req, Err(e)),
                }
            }
            Pending::LoggedIn { session, req, account, admin, token } => {
                self.finish_login(session, req, account, admin, token);
            }
        }
    }

    /// Answers an operation whose claim was not granted with `e`.
    fn refuse_pending(&mut self, then: Pending, e: HubError) {
        match then {
            Pending::Connect { done, .. } => {
                let _ = done.send(Err(e));
            }
            Pending::LogIn(login) => {
                self.discard_token(login.account.id, login.token);
                let _ = login.done.send(Err(e));
            }
            Pending::Rename { session, req, .. } => self.reply(session, req, Err(e)),
            Pending::LoggedIn { session, req, account, token, .. } => {
                self.discard_token(account.id, token);
                self.reply(session, req, Err(e));
            }
        }
    }

    /// A session connects as a guest: checked here first (connecting checks again), so
    /// that a nick in use on this node is refused without asking the cluster.
    pub(super) fn connect_guest(
        &mut self,
        nick: String,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    ) {
        match self.admission(&nick, None, &arrival).map(|checked| (self.unclaimed(&checked), checked)) {
            Err(e) => {
                let _ = done.send(Err(e));
            }
            Ok((Some(key), checked)) => {
                self.claim_then(key, checked, Pending::Connect { nick, arrival, req, outbox, done })
            }
            Ok((None, _)) => {
                let result = self.connect(&nick, None, arrival, req, outbox, None);
                self.answer_connect(result, done);
            }
        }
    }

    /// A session connects logged in to an account, under the account's nick.
    pub(super) fn arrive_logged_in(&mut self, login: LogIn) {
        let name = login.account.name.clone();
        match self.refuse_reserved(&name).map(|()| self.unclaimed(&name)) {
            Err(e) => self.refuse_pending(Pending::LogIn(login), e),
            Ok(Some(key)) => self.claim_then(key, name, Pending::LogIn(login)),
            Ok(None) => {
                let LogIn { account, admin, arrival, req, outbox, token, resumed, done } = login;
                let result = self.log_in_connecting(account, admin, arrival, req, outbox, token);
                if let (Ok(session), Some(resumed)) = (&result, resumed) {
                    self.session_tokens.insert(*session, resumed);
                }
                self.answer_connect(result, done);
            }
        }
    }

    /// A session proved it owns `account`: it logs in, taking the account's nick once
    /// this node holds its claim.
    pub(super) fn finish_login(
        &mut self,
        session: SessionId,
        req: RequestId,
        account: Account,
        admin: bool,
        token: Option<(String, u64)>,
    ) {
        let claim = match self.sessions.contains_key(&session) {
            true => self.refuse_reserved(&account.name).map(|()| self.unclaimed(&account.name)),
            false => Ok(None),
        };
        match claim {
            Err(e) => self.refuse_pending(Pending::LoggedIn { session, req, account, admin, token }, e),
            Ok(Some(key)) => {
                let name = account.name.clone();
                self.claim_then(key, name, Pending::LoggedIn { session, req, account, admin, token });
            }
            Ok(None) => {
                let id = account.id;
                let answer = match self.logged_in(session, account, admin) {
                    Ok(reply) => Ok(self.remembered(session, reply, token)),
                    Err(e) => {
                        self.discard_token(id, token);
                        Err(e)
                    }
                };
                self.reply(session, req, answer);
            }
        }
    }

    /// The registry reports a claim this node held lost: whoever here uses a nick under
    /// it is renamed to a guest nick and told why, so that the nick has one holder in
    /// the cluster, the node that holds its claim now.
    pub(super) fn claim_lost(&mut self, key: &str) {
        let Some(claiming) = &mut self.claiming else { return };
        // Not held (released meanwhile): nobody here uses it.
        if claiming.held.remove(key).is_none() {
            return;
        }
        let holders: Vec<(SessionId, Nick)> = self
            .sessions
            .iter()
            .filter(|(_, state)| state.nick.skeleton() == key)
            .map(|(id, state)| (*id, state.nick.clone()))
            .collect();
        tracing::warn!(key, sessions = holders.len(), "a nick's claim was lost");
        for (id, nick) in holders {
            self.rename_to_guest(id, Renaming::ClaimLost { nick });
        }
        self.drop_slow_consumers();
    }
}
