//! The stages of the packet path, one module each. Every stage takes a whole vector,
//! moves each packet to exactly one output (the next stage, the control thread) or drops
//! it under one of its named reasons, and leaves its input empty.
//!
//! Every stage takes the poll's context, [`Poll`] (as DPDK's l3fwd passes its
//! `lcore_conf` and VPP its node runtime): the clock read once per poll, the tables
//! loaded once per poll, the worker's counters and crypto backend, and the bin where
//! dropped packets wait to be freed together at the end of the poll.
//!
//! Stage entry points are `#[inline(never)]`: called once per vector, the call costs
//! nothing per packet, and a profile of the worker (`scripts/bench.sh profile --perf`)
//! then names each stage.

pub mod classify;
pub mod decrypt;
pub mod encrypt;
pub mod offload;
pub mod route;

use crate::activity::Table;
use crate::buf::PacketBuf;
use crate::counters::Stage;
use crate::counters::WorkerCounters;
use crate::crypto::{Backend, CryptoJob};
use crate::session::Keypair;
use crate::session::Sessions;
use crate::spread::Crew;
use crate::tables::{Neighbors, Tables};
use dpdk_sys::AeadDirection;
use std::sync::Arc;

/// What every stage of one poll shares.
pub struct Poll<'a, B> {
    /// `clock::now_ns` at the start of the poll.
    pub now: u64,
    pub tables: &'a Tables,
    pub neighbors: &'a Neighbors,
    pub sessions: &'a Sessions,
    pub counters: &'a WorkerCounters,
    /// This thread's count of each peer's traffic.
    pub activity: &'a Table,
    pub backend: &'a mut Backend,
    /// The worker's way to share AEAD work with the others (`None`: it works alone).
    pub crew: Option<&'a mut Crew<B>>,
    /// Dropped packets (already counted), freed in one call at the end of the poll.
    pub dropped: &'a mut Vec<B>,
}

impl<B: PacketBuf> Poll<'_, B> {
    /// Put a packet whose drop has been counted into the bin.
    #[inline]
    pub fn discard(&mut self, pkt: B) {
        self.dropped.push(pkt);
    }
}

/// A vector's AEAD as it joins a stage's flight: submitted to an asynchronous backend
/// (reported later by `Backend::collect`), or done here but for the tail `sharing` hands
/// to other workers (reported later by `Crew::collect`). `pending[j]` tells whether job
/// `j` is still out; the others have their `ok`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_flight<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    dir: AeadDirection,
    pkts: &mut Vec<B>,
    keys: &[Arc<Keypair>],
    jobs: &mut [CryptoJob],
    first: u64,
    sharing: bool,
    pending: &mut Vec<bool>,
) {
    let c = p.counters;
    let stage = match dir {
        AeadDirection::Open => Stage::DecryptCrypto,
        AeadDirection::Seal => Stage::EncryptCrypto,
    };
    let backend = &mut *p.backend;
    if backend.is_async() {
        c.runtime.timed(stage, jobs.len(), || {
            backend.submit(dir, pkts, keys, jobs, first, pending);
        });
        return;
    }
    let kept = match p.crew.as_deref_mut() {
        Some(crew) if sharing => crew.share(pkts, keys, jobs, first, backend, c),
        _ => jobs.len(),
    };
    c.runtime.timed(stage, kept, || match dir {
        AeadDirection::Open => backend.open_batch(pkts, keys, &mut jobs[..kept]),
        AeadDirection::Seal => backend.seal_batch(pkts, keys, &mut jobs[..kept]),
    });
    pending.clear();
    pending.extend((0..jobs.len()).map(|j| j >= kept));
}

/// How many packets ahead of the one a pass works on it prefetches the lines that pass
/// will touch: far enough to hide a miss to memory another core or a device wrote, near
/// enough that the lines are still there when their turn comes (docs/architecture.md,
/// "Prefetching").
pub const PREFETCH_AHEAD: usize = 4;

/// A key of a [`VectorCache`]: a receiver index, a peer id, an address.
pub trait CacheKey: Copy + Eq + Default {
    /// 32 well-spread bits of the key.
    fn spread(self) -> u32;
}

impl CacheKey for u32 {
    #[inline]
    fn spread(self) -> u32 {
        // Receiver indexes are random and peer ids dense: a multiplicative hash spreads
        // both (Knuth's 2^32 / golden ratio).
        self.wrapping_mul(0x9e37_79b9)
    }
}

impl CacheKey for u128 {
    #[inline]
    fn spread(self) -> u32 {
        let folded = (self as u64) ^ ((self >> 64) as u64).rotate_left(17);
        (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
    }
}

/// A direct-mapped cache from a key (a receiver index, a peer id, an address) to what a
/// stage found for it, valid for one vector: [`VectorCache::next_vector`] forgets every
/// entry in O(1) by moving to a new generation. A collision overwrites: the loser is
/// looked up again, never wrongly found.
pub struct VectorCache<K = u32, V = u16> {
    slots: Box<[Slot<K, V>]>,
    generation: u16,
}

#[derive(Clone, Copy, Default)]
struct Slot<K, V> {
    key: K,
    value: V,
    generation: u16,
}

const CACHE_SLOTS: usize = 512;

impl<K: CacheKey, V: Copy + Default> Default for VectorCache<K, V> {
    fn default() -> Self {
        VectorCache {
            slots: vec![Slot::default(); CACHE_SLOTS].into_boxed_slice(),
            // Slots start at generation 0, so the first vector is 1.
            generation: 1,
        }
    }
}

impl<K: CacheKey, V: Copy + Default> VectorCache<K, V> {
    /// Forget every entry.
    #[inline]
    pub fn next_vector(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Once every 65535 vectors: old slots could look current again.
            self.slots.fill(Slot::default());
            self.generation = 1;
        }
    }

    #[inline]
    fn slot(key: K) -> usize {
        (key.spread() >> 23) as usize % CACHE_SLOTS
    }

    #[inline]
    pub fn get(&self, key: K) -> Option<V> {
        let s = &self.slots[Self::slot(key)];
        (s.generation == self.generation && s.key == key).then_some(s.value)
    }

    #[inline]
    pub fn insert(&mut self, key: K, value: V) {
        self.slots[Self::slot(key)] = Slot {
            key,
            value,
            generation: self.generation,
        };
    }

    /// The cached value of `key`, or `find(key)`, cached.
    #[inline]
    pub fn get_or(&mut self, key: K, find: impl FnOnce() -> V) -> V {
        match self.get(key) {
            Some(v) => v,
            None => {
                let v = find();
                self.insert(key, v);
                v
            }
        }
    }
}

/// Packet positions grouped by a small key (a keypair's position in the vector's list),
/// each group in vector order: a counting sort, so that a stage takes each keypair's
/// lock or counter once per vector instead of once per packet.
#[derive(Default)]
pub struct Groups {
    /// Where each key's group starts in `order`, and one past the last.
    starts: Vec<u32>,
    order: Vec<u16>,
}

impl Groups {
    /// Group positions `0..keys.len()` by `keys[i]` (each below `n_keys`).
    pub fn build(&mut self, keys: impl Iterator<Item = u16> + Clone, n_keys: usize) {
        self.starts.clear();
        self.starts.resize(n_keys + 1, 0);
        for k in keys.clone() {
            self.starts[k as usize + 1] += 1;
        }
        for i in 1..=n_keys {
            self.starts[i] += self.starts[i - 1];
        }
        let total = self.starts[n_keys] as usize;
        self.order.clear();
        self.order.resize(total, 0);
        // Fill each group from its start; `starts` is restored afterwards.
        for (i, k) in keys.enumerate() {
            let at = &mut self.starts[k as usize];
            self.order[*at as usize] = i as u16;
            *at += 1;
        }
        for i in (1..=n_keys).rev() {
            self.starts[i] = self.starts[i - 1];
        }
        self.starts[0] = 0;
    }

    /// The positions of key `k`, in vector order.
    #[inline]
    pub fn of(&self, k: usize) -> &[u16] {
        &self.order[self.starts[k] as usize..self.starts[k + 1] as usize]
    }
}

/// A poll's context with everything owned, for stage tests.
#[cfg(test)]
pub(crate) struct TestPoll<B> {
    pub tables: Tables,
    pub neighbors: Neighbors,
    pub sessions: Sessions,
    pub counters: WorkerCounters,
    pub activity: std::sync::Arc<Table>,
    pub backend: Backend,
    pub dropped: Vec<B>,
    pub now: u64,
}

#[cfg(test)]
impl<B> TestPoll<B> {
    pub fn new(tables: Tables) -> Self {
        TestPoll {
            tables,
            neighbors: Neighbors::default(),
            sessions: Sessions::new(8, 4),
            counters: WorkerCounters::default(),
            activity: crate::activity::Activity::new(4).writer(),
            backend: Backend::Ring,
            dropped: Vec::new(),
            now: 0,
        }
    }

    pub fn poll(&mut self) -> Poll<'_, B> {
        Poll {
            now: self.now,
            tables: &self.tables,
            neighbors: &self.neighbors,
            sessions: &self.sessions,
            counters: &self.counters,
            activity: &self.activity,
            backend: &mut self.backend,
            crew: None,
            dropped: &mut self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_forgets_each_vector_and_survives_wrapping() {
        let mut c: VectorCache = VectorCache::default();
        c.insert(0xdead_beef, 3);
        assert_eq!(c.get(0xdead_beef), Some(3));
        assert_eq!(c.get(0xdead_beee), None);
        c.next_vector();
        assert_eq!(c.get(0xdead_beef), None);
        for _ in 0..70_000 {
            c.insert(7, 1);
            c.next_vector();
        }
        assert_eq!(c.get(7), None);
        // Colliding keys: the later one wins, the earlier is simply not found.
        let a = 5u32;
        let b = (1u32..)
            .find(|&k| {
                k != a && VectorCache::<u32, u16>::slot(k) == VectorCache::<u32, u16>::slot(a)
            })
            .unwrap();
        c.insert(a, 1);
        c.insert(b, 2);
        assert_eq!((c.get(a), c.get(b)), (None, Some(2)));
    }

    #[test]
    fn groups_keep_vector_order() {
        let keys = [2u16, 0, 2, 1, 0, 2];
        let mut g = Groups::default();
        g.build(keys.iter().copied(), 4);
        assert_eq!(g.of(0), &[1, 4]);
        assert_eq!(g.of(1), &[3]);
        assert_eq!(g.of(2), &[0, 2, 5]);
        assert_eq!(g.of(3), &[] as &[u16]);
        g.build([].iter().copied(), 0);
        g.build([0u16; 3].iter().copied(), 1);
        assert_eq!(g.of(0), &[0, 1, 2]);
    }
}
