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

static FREE: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());

/// An empty buffer from the pool, when it has one. When it has none, the caller grows
/// its own from nothing: a pool that handed out new buffers of a fixed size would
/// give one to every session of a busy moment (thousands arriving at once), and the
/// allocator keeps that peak.
pub(crate) fn take() -> Option<BytesMut> {
    FREE.lock().unwrap_or_else(PoisonError::into_inner).pop()
}

/// Gives a buffer back for another session; one too large (or a full pool) frees it.
pub(crate) fn give(mut buf: BytesMut) {
    if buf.capacity() < SMALLEST_KEPT || buf.capacity() > LARGEST_KEPT {
        return;
    }
    buf.clear();
    let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    if free.len() < MOST_KEPT {
        free.push(buf);
    }
}
