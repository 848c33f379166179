//! Output buffers shared by every session, so that a busy session does not allocate a
//! fresh buffer (and grow it by reallocation, touching new pages) for every batch, and
//! an idle one holds none.
//!
//! Measured with 500 clients in one room (docs/BENCHMARKS.md): allocating, regrowing and
//! freeing a buffer per batch, with the page faults of fresh memory, was about a fifth
//! of the server's CPU. Keeping each session's buffer instead doubled idle memory per
//! connection. A pool bounded in number and size keeps both: buffers circulate among the
//! sessions that are sending, and the pool's own size is fixed, whatever the number of
//! connections.

use std::sync::{Mutex, PoisonError};

use bytes::BytesMut;

/// Buffers below this capacity are not worth keeping (they are cheap to grow again).
const SMALLEST_KEPT: usize = 4 * 1024;

/// Buffers above this capacity (after a burst) are freed, not kept.
const LARGEST_KEPT: usize = 256 * 1024;

/// The most buffers kept: at most 128 × 256 KiB, whatever the number of sessions.
const MOST_KEPT: usize = 128;

/// The free buffers, and the fewest there were since the last [`trim`]: that many were
/// not needed by anyone in that time.
struct Free {
    buffers: Vec<BytesMut>,
    unused: usize,
}

impl Free {
    const fn new() -> Free {
        Free { buffers: Vec::new(), unused: 0 }
    }

    fn take(&mut self) -> Option<BytesMut> {
        let buffer = self.buffers.pop();
        self.unused = self.unused.min(self.buffers.len());
        buffer
    }

    fn give(&mut self, mut buf: BytesMut) {
        if buf.capacity() < SMALLEST_KEPT || buf.capacity() > LARGEST_KEPT || self.buffers.len() >= MOST_KEPT {
            return;
        }
        buf.clear();
        self.buffers.push(buf);
    }

    fn trim(&mut self) -> usize {
        let surplus = self.unused.min(self.buffers.len());
        self.buffers.truncate(self.buffers.len() - surplus);
        self.unused = self.buffers.len();
        surplus
    }
}

static FREE: Mutex<Free> = Mutex::new(Free::new());

fn free() -> std::sync::MutexGuard<'static, Free> {
    FREE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An empty buffer from the pool, when it has one. When it has none, the caller grows
/// its own from nothing: a pool that handed out new buffers of a fixed size would
/// give one to every session of a busy moment (thousands arriving at once), and the
/// allocator keeps that peak.
pub(crate) fn take() -> Option<BytesMut> {
    free().take()
}

/// Gives a buffer back for another session; one too large (or a full pool) frees it.
pub(crate) fn give(buf: BytesMut) {
    // A buffer that is not kept is freed outside the lock.
    if buf.capacity() >= SMALLEST_KEPT && buf.capacity() <= LARGEST_KEPT {
        free().give(buf);
    }
}

/// Frees the buffers nobody took since the last call, and returns how many: called
/// every second or so, the pool keeps what a busy server circulates and gives an idle
/// one's back (after a join storm it held about a megabyte, for nobody).
pub(crate) fn trim() -> usize {
    free().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_nobody_takes_are_freed_at_the_next_trim() {
        let mut free = Free::new();
        for _ in 0..4 {
            free.give(BytesMut::with_capacity(SMALLEST_KEPT));
        }
        // Given back since the last trim: not yet known to be unused.
        assert_eq!(free.trim(), 0);
        // One taken and given back between trims: three were never needed.
        let taken = free.take().expect("a buffer");
        free.give(taken);
        assert_eq!(free.trim(), 3);
        assert_eq!(free.buffers.len(), 1);
        assert_eq!(free.trim(), 1, "the last one, unused for a whole period, goes too");
        assert!(free.take().is_none());
        // Too small and too large are never kept.
        free.give(BytesMut::with_capacity(SMALLEST_KEPT / 2));
        free.give(BytesMut::with_capacity(LARGEST_KEPT * 2));
        assert!(free.buffers.is_empty());
    }
}
