//! Parking: a plain TCP connection that has been quiet for `park_after_ms` gives up its
//! task, and waits with nothing but its state.
//!
//! A connection's task is what an idle connection costs most (a kilobyte, most of it
//! the room its busiest moment needs: docs/BENCHMARKS.md, "Idle memory"), and most
//! connections of a chat server are idle most of the time. A parked connection is its
//! [`Live`] state in a [`Parked`] cell, which is also the waker it leaves with its
//! socket (for input), its outbox (for output, the server's goodbye, an overflow) and
//! the server's [`Alarms`] (for its idle ping). Whichever comes first takes the state out
//! and spawns a task to run it; the task parks it again once it is quiet again.
//!
//! Only a connection whose transport can say "input is waiting" without reading it
//! (plain TCP: [`Tcp`]) parks; TLS and WebSocket connections keep their task.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::{begin, Ending, Live, Protocol, Receive};
use crate::gateway::transport::Tcp;
use crate::metrics::Gateway;
use crate::server::Shared;

/// What a connection's task does once its session has ended (or never began): its
/// listener's bookkeeping, whichever task that ends up being.
pub(crate) trait Leave: Send + 'static {
    /// The connection is over; its socket is closed.
    fn left(self, ending: &Ending, shared: &Shared);
}

/// Serves one plain TCP connection with protocol `P`, like [`super::serve`], parking
/// it whenever it is quiet; `leave` runs when it ends. This is the registration's task;
/// the session's is [`awake`].
// Not an `async fn`: it would keep each argument twice (see `super::serve`).
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve<P: Protocol + 'static, L: Leave>(
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    deadline: Instant,
    gateway: Gateway,
    shared: Arc<Shared>,
    leave: L,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let begun = begin::<P, _, _>(Tcp(reader), writer, peer, deadline, gateway, &shared).await;
        match begun {
            // The session runs in a task of its own: this one's future holds what
            // registration needed (the arguments above, the dialogue's state) for as
            // long as it lives, so it ends here.
            Ok(live) => {
                let resting = Resting { live, leave, alarm: None, _token: shared.tasks.token() };
                shared.tasks.spawn(awake(resting, None, shared.clone()));
            }
            Err(ended) => leave.left(&ended.into(), &shared),
        }
    }
}

/// A registered connection between tasks.
struct Resting<P, L> {
    live: Live<P, Tcp, OwnedWriteHalf>,
    leave: L,
    /// The idle deadline an alarm is set for, so that parking again does not set
    /// another for the same moment.
    alarm: Option<Instant>,
    /// Counts as a task of the server's while parked, so that shutdown waits for it.
    _token: TaskTrackerToken,
}

/// A connection's task from the session's start or a wake-up: runs it until it ends
/// or parks.
// Not an `async fn`: it would keep each argument twice (see `super::serve`).
#[allow(clippy::manual_async_fn)]
fn awake<P: Protocol + 'static, L: Leave>(
    mut resting: Resting<P, L>,
    mut parked: Option<Arc<Parked<P, L>>>,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        loop {
            if let Some(ending) = resting.live.run(&shared, true).await {
                resting.leave.left(&ending, &shared);
                return;
            }
            // The cell is made at the first parking and kept for the connection's life.
            let cell = parked.get_or_insert_with(|| Arc::new(Parked::new(shared.clone())));
            match cell.park(resting) {
                Some(stirred) => resting = stirred,
                None => return,
            }
        }
    }
}

/// Where a connection rests between tasks, and the waker that wakes it.
pub(crate) struct Parked<P, L> {
    hold: Mutex<Hold<Resting<P, L>>>,
    shared: Arc<Shared>,
}

/// What a [`Parked`] cell holds.
enum Hold<T> {
    /// A task runs the connection.
    Awake,
    /// A task runs the connection, and was woken since it last began to park: it must
    /// look again before it parks.
    Stirred,
    /// Parked: the next wake-up spawns a task for it.
    Asleep(T),
}

impl<P: Protocol + 'static, L: Leave> Parked<P, L> {
    fn new(shared: Arc<Shared>) -> Self {
        Parked { hold: Mutex::new(Hold::Awake), shared }
    }

    fn hold(&self) -> MutexGuard<'_, Hold<Resting<P, L>>> {
        self.hold.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks the connection, unless something for it came meanwhile: then it is given
    /// back to run again.
    fn park(self: &Arc<Self>, mut resting: Resting<P, L>) -> Option<Resting<P, L>> {
        // Wake-ups from before (an alarm set at an earlier parking, a readiness already
        // handled) are forgotten; from here on every one counts.
        *self.hold() = Hold::Awake;
        let waker = Waker::from(self.clone());
        let mut cx = Context::from_waker(&waker);
        let live = &mut resting.live;
        // Leaves this cell as the waker of the socket and the outbox, and looks whether
        // either has something already (its wake-up went to the task that is ending).
        if live.input.reader.poll_input(&mut cx).is_ready() || live.outbox.poll_ready(&cx).is_ready() {
            return Some(resting);
        }
        if P::PINGS && resting.alarm != Some(live.input.idle_at) {
            let weak: Weak<Parked<P, L>> = Arc::downgrade(self);
            self.shared.alarms.set(live.input.idle_at, weak);
            resting.alarm = Some(live.input.idle_at);
        }
        let mut hold = self.hold();
        if matches!(*hold, Hold::Stirred) {
            *hold = Hold::Awake;
            return Some(resting);
        }
        *hold = Hold::Asleep(resting);
        self.shared.metrics.parked.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl<P: Protocol + 'static, L: Leave> Wake for Parked<P, L> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut hold = self.hold();
        match std::mem::replace(&mut *hold, Hold::Stirred) {
            Hold::Asleep(resting) => {
                *hold = Hold::Awake;
                drop(hold);
                self.shared.metrics.parked.fetch_sub(1, Ordering::Relaxed);
                let task = awake(resting, Some(self.clone()), self.shared.clone());
                // Wakers run on the runtime's threads, but not always inside its context
                // (a blocking thread's store answer): spawn on the runtime itself.
                self.shared.tasks.spawn_on(task, &self.shared.runtime);
            }
            Hold::Awake | Hold::Stirred => {}
        }
    }
}

/// What an alarm wakes.
pub(crate) trait Alarm: Send + Sync {
    fn ring(self: Arc<Self>);
}

impl<P: Protocol + 'static, L: Leave> Alarm for Parked<P, L> {
    fn ring(self: Arc<Self>) {
        self.wake_by_ref();
    }
}

/// The idle deadlines of parked connections, rung once a second by one task for the
/// whole server instead of a timer in every connection; the same tick trims the output
/// buffers' pool.
pub(crate) struct Alarms {
    /// Who to wake, by the second (from `epoch`) at or after which their deadline is.
    due: Mutex<BTreeMap<u64, Vec<Weak<dyn Alarm>>>>,
    epoch: Instant,
}

impl Alarms {
    /// How often alarms ring: idle deadlines are a minute or more, so a second late is
    /// on time.
    const TICK: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Alarms { due: Mutex::default(), epoch: Instant::now() }
    }

    fn due(&self) -> MutexGuard<'_, BTreeMap<u64, Vec<Weak<dyn Alarm>>>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes `who` at `at` (or up to a second later), if it is still there then.
    fn set<A: Alarm + 'static>(&self, at: Instant, who: Weak<A>) {
        let second = at.saturating_duration_since(self.epoch).as_secs() + 1;
        let who: Weak<dyn Alarm> = who;
        self.due().entry(second).or_default().push(who);
    }

    /// Rings the alarms that are due, once a second, until `stopping`.
    pub(crate) async fn ring(self: Arc<Self>, stopping: CancellationToken) {
        let mut ticks = tokio::time::interval(Self::TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stopping.cancelled() => return,
            }
            let now = Instant::now().saturating_duration_since(self.epoch).as_secs();
            let due = {
                let mut alarms = self.due();
                let later = alarms.split_off(&(now + 1));
                std::mem::replace(&mut *alarms, later)
            };
            for who in due.into_values().flatten() {
                if let Some(who) = who.upgrade() {
                    who.ring();
                }
            }
            // The same second suits the output buffers' pool: what nobody took since
            // the last tick is freed.
            parley_hub::Outbox::trim_pool();
        }
    }
}

/// What a parked connection of `P` holds (its cell, without the `Arc`'s two counts),
/// for the size test (`listener::tests`).
#[cfg(test)]
pub(crate) fn parked_size<P: Protocol + 'static, L: Leave>() -> usize {
    size_of::<Parked<P, L>>()
}

/// The size of a session task's future (what a connection holds while it is busy),
/// for the same test: read off [`awake`]'s type, without a session to call it with.
#[cfg(test)]
pub(crate) fn awake_size<P: Protocol + 'static, L: Leave>() -> usize {
    fn returned<A, B, C, F>(_: &impl Fn(A, B, C) -> F) -> usize {
        size_of::<F>()
    }
    returned(&awake::<P, L>)
}
