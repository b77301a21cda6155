//! Packet-buffer pools.
//!
//! Contract:
//! - [`Mempool`] is a cheap, clonable handle (`Send + Sync`); the pool is
//!   freed with `rte_mempool_free` when the last handle drops. A
//!   [`Port`](crate::Port) keeps a handle to the pools its RX queues fill
//!   from, so a pool always outlives the ports using it.
//! - Mbufs are not counted as handles. If the last handle drops while mbufs
//!   are still out (`in_use_count() > 0`), the pool is deliberately leaked
//!   (and reported on stderr) instead of freed under them; then the EAL is not
//!   cleaned up either. Free every mbuf before dropping its pool.
//! - Allocation is thread-safe. On an EAL lcore it goes through that lcore's
//!   cache; on other threads straight to the shared ring.

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::Error;
use crate::lifecycle::OwnerToken;
use crate::mbuf::Mbuf;
use crate::sys;

/// A handle to a pktmbuf pool; see the module docs.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    owner: Option<OwnerToken>,
}

// SAFETY: rte_mempool operations used here are thread-safe (the default
// multi-producer/multi-consumer ring ops; the per-lcore caches are only used
// by their own lcore).
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n` mbufs, each with `data_room` bytes of buffer
    /// (headroom included; `RTE_MBUF_DEFAULT_BUF_SIZE` is the usual value),
    /// a per-lcore cache of `cache` mbufs, on NUMA `socket`
    /// (`SOCKET_ID_ANY` for no preference). `name` must be unique in the
    /// process and shorter than `RTE_MEMPOOL_NAMESIZE` (26) bytes.
    pub fn pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, Error> {
        let op = || format!("rte_pktmbuf_pool_create({name:?})");
        let owner = OwnerToken::acquire(&op())?;
        let cname = CString::new(name)
            .map_err(|_| Error::invalid(op(), libc::EINVAL, "the name contains a NUL byte"))?;
        // SAFETY: the EAL is running (owner token); arguments are plain values
        // and a NUL-terminated name that DPDK copies.
        let raw =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno(op()))?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_owned(),
                owner: Some(owner),
            }),
        })
    }

    /// One mbuf, reset to an empty packet; `None` if the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive while `self` is.
        let raw = unsafe { sys::rte_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf that we now own.
        (!raw.is_null()).then(|| unsafe { Mbuf::from_raw(raw) })
    }

    /// Appends `n` fresh mbufs to `out`, or none at all (returning false) if
    /// the pool has fewer than `n` available.
    #[inline]
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        out.reserve(n);
        // SAFETY: the spare capacity holds `n` pointers; Mbuf is a transparent
        // rte_mbuf pointer. On success DPDK wrote `n` valid, owned mbufs.
        unsafe {
            let spare = out.as_mut_ptr().add(out.len()).cast::<*mut sys::rte_mbuf>();
            if sys::rte_pktmbuf_alloc_bulk(self.as_ptr(), spare, count) != 0 {
                return false;
            }
            out.set_len(out.len() + n);
        }
        true
    }

    /// Mbufs available for allocation (in the pool and in lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is alive.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs allocated and not yet freed (held by Rust, NIC queues or rings).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: the pool is alive.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Total number of mbufs in the pool.
    pub fn capacity(&self) -> u32 {
        // SAFETY: the pool is alive; `size` is fixed at creation.
        unsafe { (*self.as_ptr()).size }
    }

    /// Returns to the pool every mbuf that nobody can reach any more, and how
    /// many there were.
    ///
    /// Some drivers keep mbufs in rings they share with the kernel and forget
    /// them when the port closes: DPDK 22.11's AF_XDP driver (zero-copy UMEM
    /// over the pool) never frees what sits in its fill, RX and completion
    /// rings in `eth_dev_close`, about 2k mbufs per queue. Such mbufs are
    /// still counted as in use, so the pool could never be freed.
    ///
    /// The caller promises that no mbuf of this pool is referenced anywhere:
    /// every port whose queues used it is closed, no [`Mbuf`] or
    /// [`Ring`](crate::Ring) holds one, and no lcore is allocating from it.
    /// Then the pool's free objects (its ring plus every lcore cache) are the
    /// reachable ones, and every other object is an orphan.
    ///
    /// # Safety
    /// See above: any mbuf still referenced would be handed out twice.
    pub unsafe fn reclaim_orphans(&self) -> u32 {
        let mp = self.as_ptr();
        // Empty the lcore caches into the shared ring, so one drain sees every
        // free object.
        for lcore in 0..sys::RTE_MAX_LCORE {
            let cache = sys::rte_mempool_default_cache(mp, lcore);
            if !cache.is_null() {
                sys::rte_mempool_cache_flush(cache, mp);
            }
        }
        let mut free: Vec<*mut libc::c_void> = Vec::with_capacity(self.capacity() as usize);
        let mut obj = std::ptr::null_mut();
        while sys::rte_mempool_generic_get(mp, &mut obj, 1, std::ptr::null_mut()) == 0 {
            free.push(obj);
        }
        let mut all: Vec<*mut libc::c_void> = Vec::with_capacity(self.capacity() as usize);
        sys::rte_mempool_obj_iter(mp, Some(collect_obj), (&mut all as *mut Vec<_>).cast());
        free.sort_unstable();
        let mut orphans = 0u32;
        for &obj in &all {
            if free.binary_search(&obj).is_err() {
                // An orphan was allocated with rte_pktmbuf_alloc and never
                // returned: give it the state of a freed mbuf.
                let m = obj.cast::<sys::rte_mbuf>();
                sys::rte_mbuf_refcnt_set(m, 1);
                sys::rte_pktmbuf_reset(m);
                sys::rte_mempool_generic_put(mp, &obj, 1, std::ptr::null_mut());
                orphans += 1;
            }
        }
        for obj in free {
            sys::rte_mempool_generic_put(mp, &obj, 1, std::ptr::null_mut());
        }
        orphans
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The underlying pool, for DPDK calls this crate does not wrap. It stays
    /// valid while any handle to this pool exists.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }
}

/// `rte_mempool_obj_iter` callback: appends each object to the `Vec` behind
/// `opaque`.
unsafe extern "C" fn collect_obj(
    _mp: *mut sys::rte_mempool,
    opaque: *mut libc::c_void,
    obj: *mut libc::c_void,
    _idx: u32,
) {
    // SAFETY: `reclaim_orphans` passes a live `&mut Vec` for the duration of
    // the iteration.
    unsafe { (*opaque.cast::<Vec<*mut libc::c_void>>()).push(obj) };
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("avail", &self.avail_count())
            .finish()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is alive until freed below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle and no mbuf refers to the pool any more.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        } else {
            eprintln!(
                "dpdk-sys: mempool {:?} dropped with {in_use} mbuf(s) still in use; leaking it",
                self.name
            );
            // The leaked pool stays an owner, which keeps the EAL's memory
            // (and so the outstanding mbufs) valid.
            std::mem::forget(self.owner.take());
        }
    }
}
