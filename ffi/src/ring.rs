//! Lock-free rings of mbufs between lcores.
//!
//! Contract:
//! - A [`Ring`] carries only [`Mbuf`]s. Enqueue moves ownership of the
//!   accepted mbufs into the ring; dequeue moves it out to the caller.
//! - Dropping the ring frees every mbuf still inside, then the ring itself.
//! - `Ring` is `Send + Sync`. A ring created with `single_producer` (or
//!   `single_consumer`) must be enqueued to (dequeued from) by one thread at a
//!   time; overlapping calls panic instead of corrupting it. Multi-producer
//!   and multi-consumer ends may be used from any number of threads.

use std::ffi::{c_void, CString};
use std::fmt;
use std::ptr::{self, NonNull};

use crate::error::Error;
use crate::exclusive::Exclusive;
use crate::lifecycle::OwnerToken;
use crate::mbuf::Mbuf;
use crate::sys;

/// A DPDK ring of mbufs; see the module docs.
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
    name: String,
    /// Present on single-producer rings only.
    producer: Option<Exclusive>,
    /// Present on single-consumer rings only.
    consumer: Option<Exclusive>,
    _owner: OwnerToken,
}

// SAFETY: rte_ring is designed for use across threads; the single-producer
// and single-consumer ends are guarded by `producer`/`consumer`.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring with `count` slots (a power of two; it holds
    /// `count - 1` mbufs). `name` must be unique in the process and shorter
    /// than `RTE_RING_NAMESIZE` (29) bytes.
    pub fn new(
        name: &str,
        count: u32,
        single_producer: bool,
        single_consumer: bool,
    ) -> Result<Ring, Error> {
        let op = || format!("rte_ring_create({name:?})");
        let owner = OwnerToken::acquire(&op())?;
        if !count.is_power_of_two() || count < 2 {
            return Err(Error::invalid(
                op(),
                libc::EINVAL,
                format!("count {count} is not a power of two of at least 2"),
            ));
        }
        let cname = CString::new(name)
            .map_err(|_| Error::invalid(op(), libc::EINVAL, "the name contains a NUL byte"))?;
        let mut flags = 0;
        if single_producer {
            flags |= sys::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= sys::RING_F_SC_DEQ;
        }
        // SAFETY: the EAL is running (owner token); NUL-terminated name that
        // DPDK copies.
        let raw = unsafe { sys::rte_ring_create(cname.as_ptr(), count, sys::SOCKET_ID_ANY, flags) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno(op()))?;
        Ok(Ring {
            raw,
            name: name.to_owned(),
            producer: single_producer.then(Exclusive::default),
            consumer: single_consumer.then(Exclusive::default),
            _owner: owner,
        })
    }

    /// Moves as many mbufs as fit from the front of `pkts` into the ring;
    /// the rest stay in `pkts`, in order. Returns how many were enqueued.
    ///
    /// # Panics
    /// On a single-producer ring, if another thread is enqueueing right now.
    #[inline]
    pub fn enqueue_burst(&self, pkts: &mut Vec<Mbuf>) -> usize {
        let _user = self
            .producer
            .as_ref()
            .map(|p| p.enter(|| format!("producer end of ring {}", self.name)));
        let count = u32::try_from(pkts.len()).unwrap_or(u32::MAX);
        // SAFETY: the ring is alive; the Vec holds `count` owned mbufs laid
        // out as pointers; a single-producer end is used by this thread only.
        let done = unsafe {
            sys::rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                pkts.as_ptr().cast::<*mut c_void>(),
                count,
                ptr::null_mut(),
            )
        } as usize;
        // The ring owns the enqueued mbufs now: remove them without freeing.
        pkts.drain(..done).for_each(std::mem::forget);
        done
    }

    /// Moves up to `max` mbufs from the ring to the end of `out` (which grows
    /// if needed). Returns how many were dequeued.
    ///
    /// # Panics
    /// On a single-consumer ring, if another thread is dequeueing right now.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let _user = self
            .consumer
            .as_ref()
            .map(|c| c.enter(|| format!("consumer end of ring {}", self.name)));
        let max = max.min(u32::MAX as usize);
        out.reserve(max);
        // SAFETY: the ring is alive and holds only owned mbufs; the spare
        // capacity holds `max` pointers and Mbuf is a transparent pointer;
        // a single-consumer end is used by this thread only.
        unsafe {
            let spare = out.as_mut_ptr().add(out.len()).cast::<*mut c_void>();
            let n =
                sys::rte_ring_dequeue_burst(self.raw.as_ptr(), spare, max as u32, ptr::null_mut())
                    as usize;
            out.set_len(out.len() + n);
            n
        }
    }

    /// Mbufs in the ring now.
    pub fn count(&self) -> u32 {
        // SAFETY: the ring is alive.
        unsafe { sys::rte_ring_count(self.raw.as_ptr()) }
    }

    /// Free slots now.
    pub fn free_count(&self) -> u32 {
        // SAFETY: the ring is alive.
        unsafe { sys::rte_ring_free_count(self.raw.as_ptr()) }
    }

    /// The most mbufs the ring can hold (`count - 1`).
    pub fn capacity(&self) -> u32 {
        // SAFETY: the ring is alive.
        unsafe { sys::rte_ring_get_capacity(self.raw.as_ptr()) }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("name", &self.name)
            .field("count", &self.count())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut left = Vec::new();
        while self.dequeue_burst(&mut left, 256) > 0 {
            Mbuf::free_bulk(&mut left);
        }
        // SAFETY: the ring is empty and nobody else can reach it (`&mut self`).
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) };
    }
}
