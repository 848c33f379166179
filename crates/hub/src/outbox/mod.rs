//! A session's outbound queue: bytes already encoded for its wire format, waiting for the
//! session's writer.
//!
//! Delivery appends to a byte buffer under a short `std::sync::Mutex` (never held across
//! an `.await`); the writer swaps the whole buffer out and writes it in one call, so
//! everything queued since its last wake-up leaves in one `send`. Measured on a minimal
//! server (DESIGN.md), this costs about half the CPU per delivery of a channel of `Bytes`
//! per session, and half the idle memory.
//!
//! The queue is bounded in bytes. Delivery never waits: when a delivery would take the
//! queue over its bound, the queued bytes are dropped, the outbox is marked dead, and the
//! hub disconnects the session (the slow-consumer rule). Nothing else grows per session.

mod pool;

use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::event::Event;

/// How many wire encodings one event caches during a fan-out. Each [`Wire`] names the
/// slot it uses; wire formats that vary per session use no slot.
pub const CACHE_SLOTS: usize = 5;

/// A gateway's encoder: how events look on its wire.
pub trait Wire: Send + Sync + 'static {
    /// The slot (below [`CACHE_SLOTS`]) where the encoding of a shared event is kept, so
    /// that a room of many sessions on this wire encodes each event once. Two wires may
    /// share a slot only if they encode identically.
    fn cache_slot(&self) -> Option<usize>;

    /// The slot for one event: [`Wire::cache_slot`] unless this wire encodes that event
    /// differently for each session (say, with the session's own nick in it).
    fn cache_slot_for(&self, event: &Event) -> Option<usize> {
        let _ = event;
        self.cache_slot()
    }

    /// Appends `event`'s encoding to `out`. Encoding nothing is allowed (an event this
    /// wire does not show).
    ///
    /// Pure: it changes nothing, so that the same event with the same session state
    /// encodes the same bytes. That is what lets one session's encoding of a shared
    /// event be cached and copied to every session in its slot; whatever a session
    /// must remember of an event goes in [`Wire::told`], and who is told what (a quit
    /// once per room-mate) is the hub's decision, made per recipient.
    fn encode(&self, event: &Event, out: &mut BytesMut);

    /// What this session remembers once it has been given `event` (its nick as its
    /// client knows it, a request answered): called once for every event delivered to
    /// it, cached encoding or not, after the event is encoded.
    fn told(&self, event: &Event) {
        let _ = event;
    }
}

/// An event about to be delivered to many sessions, with its encodings cached.
pub(crate) struct Shared {
    pub(crate) event: Event,
    cache: [OnceLock<Bytes>; CACHE_SLOTS],
}

impl Shared {
    pub(crate) fn new(event: Event) -> Self {
        Self { event, cache: Default::default() }
    }
}

/// One message of a run delivered together (see [`Outbox::deliver_run`]): the event
/// for everyone in the room, and the answer its sender gets in its place.
pub(crate) struct RunItem {
    pub(crate) shared: Shared,
    pub(crate) sender: crate::handle::SessionId,
    pub(crate) reply: Event,
}

/// The outbox was over its bound (or dead); the session must be disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// One session's outbound queue. Shared (`Arc`) by the hub, which delivers into it, and
/// the session's connection task, which drains it.
///
/// One task waits on it (the connection's: its writer, and its watch for the outbox's
/// death), so it keeps one waker rather than a `Notify` per thing waited for: an idle
/// session holds every outbox, and two `Notify`s and their waiting futures were about
/// 250 bytes of each.
pub struct Outbox {
    wire: Box<dyn Wire>,
    limit: usize,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    bytes: BytesMut,
    /// No more bytes will be queued; the writer ends once the queue is empty.
    closed: bool,
    /// The outbox overflowed; the connection is to be dropped without writing more.
    dead: bool,
    /// The connection task, while it waits for bytes, the end, or the outbox's death:
    /// woken (and forgotten) when any of them comes.
    waiting: Option<Waker>,
}

impl Queue {
    /// Remembers the task to wake, unless it is the one already remembered.
    fn wait(&mut self, cx: &Context<'_>) {
        match &mut self.waiting {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waiting => *waiting = Some(cx.waker().clone()),
        }
    }
}

/// What the writer gets from [`Outbox::take`].
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// Bytes to write (now in the caller's buffer).
    Bytes,
    /// Bytes to write, and after them the connection ends.
    Last,
    /// The outbox overflowed: drop the connection now.
    Dead,
}

impl Outbox {
    /// An outbox encoding with `wire`, holding at most `limit` unsent bytes.
    pub fn new(wire: impl Wire, limit: usize) -> Self {
        Self::boxed(Box::new(wire), limit)
    }

    /// An outbox encoding with a wire chosen at run time.
    pub fn boxed(wire: Box<dyn Wire>, limit: usize) -> Self {
        Self { wire, limit, queue: Mutex::new(Queue::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The lock is never held across code that can panic halfway through an update of
        // the queue, so a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers one event to this session alone.
    pub(crate) fn deliver(&self, event: &Event) -> Result<(), Overflow> {
        let mut encoded = BytesMut::new();
        self.wire.encode(event, &mut encoded);
        self.wire.told(event);
        self.push(&encoded)
    }

    /// Delivers an event shared by many sessions, encoding it at most once per slot.
    pub(crate) fn deliver_shared(&self, shared: &Shared) -> Result<(), Overflow> {
        match self.cached(shared) {
            Some(bytes) => {
                self.wire.told(&shared.event);
                self.push(bytes)
            }
            None => self.deliver(&shared.event),
        }
    }

    /// Delivers a run of messages for one room at once, under one lock and with one
    /// wake-up: each item's shared event, or its reply when `member` sent it, in order.
    ///
    /// Under load the store commits messages in batches; taking the queue's lock and
    /// waking the writer once per batch instead of once per message is what makes a
    /// busy room cheap (docs/BENCHMARKS.md).
    pub(crate) fn deliver_run(&self, run: &[RunItem], member: crate::handle::SessionId) -> Result<(), Overflow> {
        // Encode first, outside the lock: cached encodings are borrowed from the run,
        // the others (the member's own replies, wires that do not share) owned here.
        let mut owned = Vec::new();
        let mut sources = Vec::with_capacity(run.len());
        for item in run {
            let event = if item.sender == member { &item.reply } else { &item.shared.event };
            let cached = if item.sender == member { None } else { self.cached(&item.shared) };
            match cached {
                Some(bytes) => sources.push(Ok(bytes)),
                None => {
                    let mut encoded = BytesMut::new();
                    self.wire.encode(event, &mut encoded);
                    sources.push(Err(owned.len()));
                    owned.push(encoded);
                }
            }
            self.wire.told(event);
        }
        let mut queue = self.lock();
        let mut was_empty = None;
        for source in sources {
            let bytes = match source {
                Ok(bytes) => bytes,
                Err(index) => &owned[index][..],
            };
            match self.append(&mut queue, bytes) {
                Ok(empty) => {
                    was_empty.get_or_insert(empty);
                }
                Err(Overflow) => return self.overflowed(queue),
            }
        }
        let waiting = if was_empty == Some(true) { queue.waiting.take() } else { None };
        drop(queue);
        if let Some(waker) = waiting {
            waker.wake();
        }
        Ok(())
    }

    /// An event's cached encoding for this wire, made on first use; `None` when this wire
    /// does not share its encoding of the event.
    fn cached<'a>(&self, shared: &'a Shared) -> Option<&'a [u8]> {
        let cell = self.wire.cache_slot_for(&shared.event).and_then(|slot| shared.cache.get(slot))?;
        let bytes = cell.get_or_init(|| {
            let mut out = BytesMut::new();
            self.wire.encode(&shared.event, &mut out);
            out.freeze()
        });
        Some(&bytes[..])
    }

    /// Queues bytes the gateway encoded itself (its own replies and errors), in order with
    /// everything the hub delivers. Fails when the outbox is closed or over its bound.
    pub fn push(&self, bytes: &[u8]) -> Result<(), Overflow> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut queue = self.lock();
        match self.append(&mut queue, bytes) {
            Err(Overflow) => self.overflowed(queue),
            Ok(was_empty) => {
                // A writer busy with an earlier batch comes back for this one on its own;
                // only an empty queue may have a writer asleep on it.
                let waiting = if was_empty { queue.waiting.take() } else { None };
                drop(queue);
                if let Some(waker) = waiting {
                    waker.wake();
                }
                Ok(())
            }
        }
    }

    /// Appends under the lock; `Ok(true)` when the queue was empty (its writer may be
    /// asleep). A closed outbox takes nothing; a dead one, or one this would take over
    /// its bound, is an overflow.
    fn append(&self, queue: &mut Queue, bytes: &[u8]) -> Result<bool, Overflow> {
        if queue.closed {
            return if queue.dead { Err(Overflow) } else { Ok(false) };
        }
        if queue.bytes.len() + bytes.len() > self.limit {
            return Err(Overflow);
        }
        let was_empty = queue.bytes.is_empty();
        if queue.bytes.capacity() == 0 {
            if let Some(pooled) = pool::take() {
                queue.bytes = pooled;
            }
        }
        queue.bytes.extend_from_slice(bytes);
        Ok(was_empty)
    }

    /// Drops what was queued and kills the outbox: the slow-consumer rule.
    fn overflowed(&self, mut queue: MutexGuard<'_, Queue>) -> Result<(), Overflow> {
        if !queue.dead {
            queue.bytes = BytesMut::new();
            queue.closed = true;
            queue.dead = true;
            let waiting = queue.waiting.take();
            drop(queue);
            if let Some(waker) = waiting {
                waker.wake();
            }
        }
        Err(Overflow)
    }

    /// Ends the outbox: the writer writes what is queued, then the connection ends.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        let waiting = queue.waiting.take();
        drop(queue);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().bytes.is_empty()
    }

    /// True once [`close`](Self::close) was called or the outbox overflowed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits for queued bytes and moves them into `buf` (which must be empty), swapping
    /// buffers so that both keep their capacity. Cancel-safe: nothing is taken until it
    /// returns. One task at a time may wait on an outbox (see [`Outbox`]).
    pub async fn take(&self, buf: &mut BytesMut) -> Batch {
        poll_fn(|cx| self.poll_take(cx, buf)).await
    }

    /// [`Outbox::take`], for a caller that polls: `Pending` until there is something to
    /// take, and then this task is woken.
    pub fn poll_take(&self, cx: &Context<'_>, buf: &mut BytesMut) -> Poll<Batch> {
        debug_assert!(buf.is_empty());
        let mut queue = self.lock();
        if queue.dead {
            return Poll::Ready(Batch::Dead);
        }
        if !queue.bytes.is_empty() || queue.closed {
            std::mem::swap(&mut queue.bytes, buf);
            return Poll::Ready(if queue.closed { Batch::Last } else { Batch::Bytes });
        }
        queue.wait(cx);
        Poll::Pending
    }

    /// `Ready` when the connection has something to do here (bytes queued, the outbox
    /// closed, or dead); otherwise `Pending`, and `cx`'s waker is woken when it has.
    /// Takes nothing: what a parked connection registers before it lets its task go.
    pub fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut queue = self.lock();
        if queue.dead || queue.closed || !queue.bytes.is_empty() {
            return Poll::Ready(());
        }
        queue.wait(cx);
        Poll::Pending
    }

    /// Gives a written batch's buffer back (see [`Outbox::take`]): busy sessions' buffers
    /// circulate through a bounded pool instead of being allocated per batch.
    pub fn recycle(buf: BytesMut) {
        pool::give(buf);
    }

    /// Resolves when the outbox has overflowed. Cancel-safe. One task at a time may
    /// wait on an outbox (see [`Outbox`]).
    pub async fn dead(&self) {
        poll_fn(|cx| self.poll_dead(cx)).await;
    }

    /// [`Outbox::dead`], for a caller that polls: `Pending` until the outbox has
    /// overflowed, and then this task is woken (it is also woken when bytes are queued
    /// into an empty outbox, or it closes).
    pub fn poll_dead(&self, cx: &Context<'_>) -> Poll<()> {
        let mut queue = self.lock();
        if queue.dead {
            return Poll::Ready(());
        }
        queue.wait(cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counting(Arc<AtomicUsize>);

    impl Wire for Counting {
        fn cache_slot(&self) -> Option<usize> {
            Some(0)
        }
        fn encode(&self, _event: &Event, out: &mut BytesMut) {
            self.0.fetch_add(1, Ordering::Relaxed);
            out.extend_from_slice(b"event\n");
        }
    }

    fn pong() -> Event {
        Event::Reply { req: crate::RequestId(1), result: Ok(crate::Reply::Pong) }
    }

    #[tokio::test]
    async fn a_shared_event_is_encoded_once_for_many_sessions() {
        let encodes = Arc::new(AtomicUsize::new(0));
        let outboxes: Vec<_> = (0..10).map(|_| Outbox::new(Counting(encodes.clone()), 1024)).collect();
        let shared = Shared::new(pong());
        for outbox in &outboxes {
            outbox.deliver_shared(&shared).expect("room");
        }
        assert_eq!(encodes.load(Ordering::Relaxed), 1);
        let mut buf = BytesMut::new();
        assert_eq!(outboxes[3].take(&mut buf).await, Batch::Bytes);
        assert_eq!(&buf[..], b"event\n");
    }

    #[tokio::test]
    async fn the_writer_gets_everything_queued_in_one_batch_then_the_end() {
        let outbox = Outbox::new(Counting(Arc::default()), 1024);
        outbox.push(b"one\n").expect("room");
        outbox.push(b"two\n").expect("room");
        outbox.close();
        let mut buf = BytesMut::new();
        assert_eq!(outbox.take(&mut buf).await, Batch::Last);
        assert_eq!(&buf[..], b"one\ntwo\n");
    }

    #[tokio::test]
    async fn overflow_drops_the_queue_and_kills_the_outbox() {
        let outbox = Outbox::new(Counting(Arc::default()), 8);
        outbox.push(b"12345").expect("room");
        assert_eq!(outbox.push(b"6789"), Err(Overflow));
        assert_eq!(outbox.push(b"x"), Err(Overflow));
        outbox.dead().await;
        let mut buf = BytesMut::new();
        assert_eq!(outbox.take(&mut buf).await, Batch::Dead);
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn take_waits_for_bytes() {
        let outbox = Arc::new(Outbox::new(Counting(Arc::default()), 64));
        let writer = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut buf = BytesMut::new();
                let batch = outbox.take(&mut buf).await;
                (batch, buf)
            })
        };
        tokio::task::yield_now().await;
        outbox.push(b"late").expect("room");
        let (batch, buf) = writer.await.expect("writer ran");
        assert_eq!((batch, &buf[..]), (Batch::Bytes, &b"late"[..]));
    }
}
