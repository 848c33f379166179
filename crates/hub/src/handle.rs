//! The ways into the hub: a cloneable [`HubHandle`] for gateways, and a [`Session`] per
//! registered connection. Both only send operations into the hub's bounded inbox; the
//! hub answers through oneshot channels (registration, queries) or the session's outbox.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, RequestId};
use crate::error::HubError;
use crate::identity::{Account, Arrival, Party};
use crate::name::{Nick, RoomName};
use crate::outbox::Outbox;

/// A session's identity inside the hub. Never reused within one server run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// No session: the sender of a message another node of a cluster accepted. The hub
    /// numbers its sessions from 1.
    pub(crate) const NOBODY: SessionId = SessionId(0);
}

/// How a connecting session proves who it is.
pub enum Login {
    /// It does not: a guest (or a nick someone may have to log in to within the grace).
    Guest,
    /// With the password of the account it names.
    Password {
        /// The password.
        password: String,
        /// Issue a resume token with this description (gateway, address, user agent).
        remember: Option<String>,
    },
    /// With a resume token, for its account.
    Token(String),
    /// Already proven, with [`HubHandle::verify`] (IRC's SASL, before registering).
    Verified(Verified),
}

/// Proof that a client knows an account's password, from [`HubHandle::verify`]. Only the
/// hub makes these, so a gateway cannot log anyone in without the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub(crate) account: Account,
    pub(crate) admin: bool,
}

impl Verified {
    /// The account's name as registered.
    #[must_use]
    pub fn account(&self) -> &Nick {
        &self.account.name
    }
}

/// Who a session is and where it is, for gateway decisions the hub does not make
/// itself (may this session download a file shared in a room?).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whereabouts {
    /// Its nick.
    pub nick: Nick,
    /// The account it is logged in to.
    pub account: Option<Account>,
    /// Who owns what it says privately: its account, or its guest session.
    pub party: Party,
    /// The client's address.
    pub address: Option<IpAddr>,
    /// The rooms it is in, each with the first seq of that room's history it may see
    /// (where the room's current life, or its registration, began).
    pub rooms: Vec<(RoomName, u64)>,
}

/// Whose a resume token is, for a gateway without a session (a browser fetching a
/// file with its session cookie), from [`HubHandle::check_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    /// The account.
    pub account: Account,
    /// The token's id (see [`crate::SessionToken`]).
    pub token: u64,
    /// The account as a reader: every room its sessions are in now.
    pub whereabouts: Whereabouts,
}

/// Where a session may put a message or a file, as the hub would check a message: the
/// room (member, not muted, allowed to speak), or the receiver of a private one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A room, with the first seq of its history the members may see.
    Room(RoomName, u64),
    /// A user now online, and who owns what they receive.
    Person(Nick, Party),
}

pub(crate) enum Op {
    Connect {
        nick: String,
        login: Login,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
        done: oneshot::Sender<Result<SessionId, HubError>>,
    },
    Command {
        session: SessionId,
        req: RequestId,
        command: Command,
    },
    Disconnect {
        session: SessionId,
        detail: Option<String>,
    },
    Relay {
        session: SessionId,
        bytes: Bytes,
    },
    Verify {
        name: String,
        password: String,
        address: Option<IpAddr>,
        done: oneshot::Sender<Result<Verified, HubError>>,
    },
    NickFree {
        nick: String,
        done: oneshot::Sender<Result<(), HubError>>,
    },
    Token {
        token: String,
        address: Option<IpAddr>,
        done: oneshot::Sender<Result<TokenHolder, HubError>>,
    },
    RevokeToken {
        account: crate::identity::AccountId,
        token: u64,
        done: oneshot::Sender<Result<(), HubError>>,
    },
    Shutdown {
        message: String,
    },
    Whereabouts {
        session: SessionId,
        done: oneshot::Sender<Option<Whereabouts>>,
    },
    MaySend {
        session: SessionId,
        room: Option<String>,
        to: Option<String>,
        done: oneshot::Sender<Result<Destination, HubError>>,
    },
    Health {
        done: oneshot::Sender<Health>,
    },
    /// Test hook: make the hub task panic, to prove the server does not outlive it.
    #[cfg(feature = "test-hooks")]
    Crash,
}

/// What the hub says of itself when asked ([`HubHandle::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The history store takes writes (or there is none): its writer has not failed.
    pub store_ok: bool,
    /// Sessions registered now.
    pub sessions: usize,
}

impl Op {
    /// The session whose order this operation keeps, if any (see the hub's parking).
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self {
            Op::Command { session, .. }
            | Op::Disconnect { session, .. }
            | Op::Relay { session, .. }
            | Op::MaySend { session, .. } => Some(*session),
            Op::Connect { .. }
            | Op::Verify { .. }
            | Op::NickFree { .. }
            | Op::Token { .. }
            | Op::RevokeToken { .. }
            | Op::Shutdown { .. }
            | Op::Whereabouts { .. }
            | Op::Health { .. } => None,
            #[cfg(feature = "test-hooks")]
            Op::Crash => None,
        }
    }
}

/// A cloneable way into the hub, held by every gateway.
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) tx: mpsc::Sender<Op>,
    pub(crate) metrics: Arc<crate::metrics::HubMetrics>,
}

impl HubHandle {
    /// Registers a session under `nick` (a guest) and puts it in the lobby (see
    /// [`HubHandle::arrive`] for a session that starts elsewhere). On success
    /// the outbox has received the [`crate::Reply::Welcome`] answering `req`; on failure
    /// nothing was delivered and the gateway may try another nick. `address` is the
    /// client's, for bans, pacing and guests' quotas.
    pub async fn connect(
        &self,
        nick: &str,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.arrive(nick, Login::Guest, Arrival::lobby(address), req, outbox).await
    }

    /// Like [`HubHandle::connect`], logged in to the account `nick` with `password` from
    /// the start: the nick is taken from whoever has it, with no grace period.
    pub async fn connect_as(
        &self,
        nick: &str,
        password: String,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.arrive(nick, Login::Password { password, remember: None }, Arrival::lobby(address), req, outbox).await
    }

    /// Like [`HubHandle::connect_as`], and issues a resume token described by
    /// `description` (gateway, address, user agent): the welcome comes as
    /// [`crate::Reply::Remembered`].
    pub async fn connect_remembered(
        &self,
        nick: &str,
        password: String,
        description: &str,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        let remember = Some(crate::tokens::clean_description(description));
        self.arrive(nick, Login::Password { password, remember }, Arrival::lobby(address), req, outbox).await
    }

    /// Registers a session logged in to the account of the resume token `token`, its
    /// nick the account's name. Fails with [`HubError::BadToken`] for a token that is
    /// unknown, revoked or expired, paced like a wrong password.
    pub async fn connect_with_token(
        &self,
        token: String,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.arrive("", Login::Token(token), Arrival::lobby(address), req, outbox).await
    }

    /// Whose the resume token `token` is, and where that account is now; paced and
    /// checked (server bans) as a token login, and its use recorded.
    pub async fn check_token(&self, token: String, address: Option<IpAddr>) -> Result<TokenHolder, HubError> {
        let (done, result) = oneshot::channel();
        self.tx.send(Op::Token { token, address, done }).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    /// Revokes the token `token` of `account` (a holder logging out).
    pub async fn revoke_token(&self, account: crate::identity::AccountId, token: u64) -> Result<(), HubError> {
        let (done, result) = oneshot::channel();
        self.tx.send(Op::RevokeToken { account, token, done }).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    /// Like [`HubHandle::connect_as`], with the password already checked by
    /// [`HubHandle::verify`].
    pub async fn connect_verified(
        &self,
        verified: Verified,
        address: Option<IpAddr>,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        self.arrive("", Login::Verified(verified), Arrival::lobby(address), req, outbox).await
    }

    /// Checks an account's password without a session (IRC's SASL happens before
    /// registering), paced like every login from `address`. Fails with
    /// [`HubError::BadLogin`], [`HubError::TooManyAttempts`] or [`HubError::Busy`].
    pub async fn verify(&self, name: &str, password: String, address: Option<IpAddr>) -> Result<Verified, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::Verify { name: name.to_owned(), password, address, done };
        self.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    /// Whether a client registering could take `nick` now: `Ok` unless it is invalid
    /// ([`HubError::InvalidNick`]), in use, or looks like one in use
    /// ([`HubError::NickTaken`]). IRC answers `NICK` with this before registering, as
    /// servers do; registering checks again.
    pub async fn nick_free(&self, nick: &str) -> Result<(), HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::NickFree { nick: nick.to_owned(), done };
        self.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    /// Registers a session as [`HubHandle::connect`] does, with what its gateway says of
    /// it: its user name and host, and whether it starts in the lobby. A verified login
    /// takes its account's nick, whatever `nick` says.
    pub async fn arrive(
        &self,
        nick: &str,
        login: Login,
        arrival: Arrival,
        req: RequestId,
        outbox: Arc<Outbox>,
    ) -> Result<Session, HubError> {
        let nick = match &login {
            Login::Verified(verified) => verified.account.name.to_string(),
            Login::Guest | Login::Password { .. } | Login::Token(_) => nick.to_owned(),
        };
        let (done, result) = oneshot::channel();
        let op = Op::Connect { nick, login, arrival, req, outbox, done };
        self.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        let id = result.await.map_err(|_| HubError::ShuttingDown)??;
        Ok(Session { id, hub: self.clone(), gone: AtomicBool::new(false) })
    }

    /// Tells every session the server is shutting down and closes their outboxes; new
    /// sessions are refused from now on.
    pub async fn shutdown(&self, message: &str) {
        // A closed inbox means the hub is already gone, which is what was asked.
        let _ = self.tx.send(Op::Shutdown { message: message.to_owned() }).await;
    }

    /// What the hub counts, readable at any time without asking the hub.
    #[must_use]
    pub fn metrics(&self) -> &Arc<crate::metrics::HubMetrics> {
        &self.metrics
    }

    /// Asks the hub how it is: answered in its turn, like any operation, so an answer
    /// also proves the hub is running and not stuck. Fails once the hub has stopped.
    pub async fn health(&self) -> Result<Health, HubError> {
        let (done, result) = oneshot::channel();
        self.tx.send(Op::Health { done }).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)
    }

    /// Test hook: makes the hub task panic.
    #[cfg(feature = "test-hooks")]
    pub async fn crash(&self) {
        let _ = self.tx.send(Op::Crash).await;
    }
}

/// A registered session, held by its connection task. Dropping it disconnects the
/// session (prefer [`Session::disconnect`], which can wait for room in the inbox).
pub struct Session {
    pub(crate) id: SessionId,
    hub: HubHandle,
    /// Set once the hub has been told the session ended, so it is told once.
    gone: AtomicBool,
}

impl Session {
    /// The session's id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Sends a command; its answer arrives in the outbox as an [`crate::Event::Reply`]
    /// naming `req`. Fails only when the hub has stopped.
    pub async fn send(&self, req: RequestId, command: Command) -> Result<(), HubError> {
        let op = Op::Command { session: self.id, req, command };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }

    /// Queues bytes the gateway encoded itself (help text, an answer to a malformed
    /// request) behind the answers to every command this session sent before, so the
    /// client reads its answers in the order it asked.
    pub async fn relay(&self, bytes: Bytes) -> Result<(), HubError> {
        let op = Op::Relay { session: self.id, bytes };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }

    /// Ends the session because its connection ended; `detail` says why, if the others
    /// should know. Only the first call (or a quit) counts.
    pub async fn disconnect(&self, detail: Option<String>) {
        if !self.gone.swap(true, Ordering::AcqRel) {
            let _ = self.hub.tx.send(Op::Disconnect { session: self.id, detail }).await;
        }
    }

    /// The session's nick, account and rooms as the hub sees them now; `None` once the
    /// session has ended.
    pub async fn whereabouts(&self) -> Result<Option<Whereabouts>, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::Whereabouts { session: self.id, done };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)
    }

    /// Whether the session may send into `room` (the room joined last when both are
    /// `None`) or to the user `to` now, checked as a message would be, in order with
    /// its other commands: gateways ask before accepting a file for either.
    pub async fn may_send(&self, room: Option<String>, to: Option<String>) -> Result<Destination, HubError> {
        let (done, result) = oneshot::channel();
        let op = Op::MaySend { session: self.id, room, to, done };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)?;
        result.await.map_err(|_| HubError::ShuttingDown)?
    }

    /// Sends [`Command::Quit`]: the hub answers [`crate::Reply::Bye`] and closes the
    /// outbox.
    pub async fn quit(&self, req: RequestId, reason: Option<String>) -> Result<(), HubError> {
        if self.gone.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let op = Op::Command { session: self.id, req, command: Command::Quit { reason } };
        self.hub.tx.send(op).await.map_err(|_| HubError::ShuttingDown)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !*self.gone.get_mut() {
            // Best effort when a connection task is torn down without `disconnect`; a
            // full inbox here only happens while the server is stopping anyway.
            let _ = self.hub.tx.try_send(Op::Disconnect { session: self.id, detail: None });
        }
    }
}
