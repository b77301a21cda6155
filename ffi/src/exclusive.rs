//! A run-time check that a single-user resource (an ethdev queue, one end of
//! a single-producer/single-consumer ring) is entered by one thread at a time.
//!
//! DPDK's queue functions are not thread-safe per queue; calling them from two
//! threads at once corrupts the queue. The owners expose them through `&self`
//! so that workers can share one `Port` or `Ring`, and this flag turns the
//! forbidden overlap into a panic instead of memory corruption. Entering is
//! one uncontended atomic swap per burst. The acquire/release pair also orders
//! a queue's state when it moves from one thread to another.

use std::sync::atomic::{AtomicBool, Ordering};

/// One flag on its own cache line, so that workers polling neighbouring
/// queues do not share a line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Exclusive(AtomicBool);

impl Exclusive {
    /// Marks the resource busy until the guard drops; panics if it already is.
    /// `what` describes the resource for that panic message.
    #[inline]
    pub(crate) fn enter(&self, what: impl FnOnce() -> String) -> ExclusiveGuard<'_> {
        if self.0.swap(true, Ordering::Acquire) {
            concurrent_use(what());
        }
        ExclusiveGuard(&self.0)
    }
}

#[cold]
#[inline(never)]
fn concurrent_use(what: String) -> ! {
    panic!("{what} is used by two threads at once; each queue must have a single user")
}

pub(crate) struct ExclusiveGuard<'a>(&'a AtomicBool);

impl Drop for ExclusiveGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
