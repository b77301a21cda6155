//! Replay window for transport counters, shared by the workers of one keypair without a
//! lock.
//!
//! Contract: `check` says whether a counter could still be accepted and writes nothing; it
//! runs before the AEAD open so that a replay costs no decryption, and its answer is only
//! advice (another worker may record the same counter in between). `record` runs after
//! authentication and is the verdict that counts: each counter is accepted at most once,
//! and refused when it is at or beyond [`REJECT_AFTER_MESSAGES`] or more than
//! [`WINDOW_SIZE`] below the highest accepted counter. Counter 0 is accepted once, like any
//! other. A batch is judged as if its counters were recorded one by one, in order, so the
//! verdicts are those of the single-threaded RFC 6479 window this replaces.
//!
//! Layout: 256 slots of 64 bits, each holding a 32-bit tag (the low half of the block
//! number, block = counter / 32) above that block's 32-bit bitmap. Block `b` lives in slot
//! `b mod 256`, so the ring spans 8192 counters. A slot with no bits was never published
//! to, and it counts as earlier than any block. That is 2 KB of slots plus 8 B for
//! `highest` per keypair. Consecutive counters of one block are merged into one mask and
//! published with a single compare-exchange, so an in-order vector of 256 counters costs
//! about nine of them, on two cache lines, and one `fetch_max`.
//!
//! Why no counter is accepted twice, whatever the interleaving of recorders:
//! 1. A slot only changes by a compare-exchange from the value just read, either to the
//!    same tag with more bits or to a later tag (positive wrapping difference, or any tag
//!    when the slot is empty). Per slot, tags therefore only move forward, and under one
//!    tag no bit is ever cleared.
//! 2. A counter is accepted only by the compare-exchange that sets its bit under its
//!    block's tag, from a value that has its tag without the bit, or an earlier tag. After
//!    it the slot holds that tag with the bit, or a later tag, and both refuse the counter
//!    from then on. Two recorders racing on one counter are ordered by the slot's
//!    modification order, and the second one's compare-exchange reads the first one's
//!    result.
//! 3. Moving a slot to a later tag drops a block at least 256 blocks earlier, whose
//!    counters are all at least 256 * 32 - 31 = 8161 below the one being recorded, which is
//!    outside the window. Dropping them changes no verdict, because the later tag, and then
//!    `highest`, refuse them as too old.
//! 4. The order in (1) is the wrapping order on 32-bit tags. It is a true order only
//!    between blocks fewer than 2^31 apart, that is, counters fewer than 2^36 apart. Every
//!    counter passes the window check against `highest` before it reaches its slot. With
//!    one recorder, or with no batch in flight, `highest` is exact. So after a counter is
//!    recorded, and for as long as it stays inside the window, only its own block writes to
//!    its slot: every other block mapping there is at least 256 blocks away, so it is either
//!    too old to pass or pushes the counter out of the window. Therefore no choice of
//!    counter values, however far apart, gets a counter accepted twice. Wrapping can only
//!    affect a counter 2^36 or more ahead of its slot's last use, and it errs by refusing
//!    that counter: the slot looks newer, or its old bits look like duplicates. While
//!    batches run concurrently, `highest` lags behind the batches in flight, so a wrong
//!    order would also need one of them to jump 2^36 counters ahead while another records.
//!    Only the key holder can produce such a counter, and it can send fresh counters anyway.
//!    A sender's real counters run consecutively from 0, and 2^36 of them within
//!    Reject-After-Time (180 s) would mean 380 million packets per second on one keypair.
//!
//! Orderings are all Relaxed. Each acceptance is decided by one read-modify-write of one
//! slot, and such operations always read the latest value in that slot's modification
//! order, which is all (2) needs. `highest` is a monotone bound on how old a counter may be.
//! Reading a stale value only lets the slot tags decide. No other memory is published
//! through the window.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters at or beyond this value are never accepted (whitepaper section 6.1,
/// Reject-After-Messages = 2^64 - 2^13 - 1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

/// Counters this far below the highest accepted one are still accepted once: 8128, the
/// window of wireguard-go (`device/replay`) and the Linux module (`COUNTER_WINDOW_SIZE`).
pub const WINDOW_SIZE: u64 = 8128;

const BLOCK_SHIFT: u32 = 5;
const BLOCK_BITS: u64 = 1 << BLOCK_SHIFT;
const SLOTS: usize = 256;

const _: () = assert!(SLOTS.is_power_of_two());
// Argument (3): a block evicted from its slot must lie wholly outside the window of the
// counter that evicts it.
const _: () = assert!(SLOTS as u64 * BLOCK_BITS - (BLOCK_BITS - 1) > WINDOW_SIZE);
// The ring must stay small. Each worker touches it once per vector of packets.
const _: () = assert!(core::mem::size_of::<ReplayWindow>() == SLOTS * 8 + 8);

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Already seen.
    Duplicate,
    /// More than `WINDOW_SIZE` below the highest counter seen.
    TooOld,
    /// At or beyond `REJECT_AFTER_MESSAGES`.
    Exhausted,
}

pub struct ReplayWindow {
    /// Highest accepted counter + 1, or 0 when none was accepted yet. The offset lets
    /// counter 0 count as accepted and still leave room for "none".
    highest: AtomicU64,
    /// `tag << 32 | bits`, see the module documentation.
    slots: [AtomicU64; SLOTS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest.load(Relaxed).checked_sub(1))
            .finish_non_exhaustive()
    }
}

#[inline]
fn slot_of(block: u64) -> usize {
    block as usize & (SLOTS - 1)
}

#[inline]
fn bit_of(counter: u64) -> u32 {
    1 << (counter & (BLOCK_BITS - 1))
}

/// A slot nothing was published to. Every published mask has a bit set, so a slot without
/// bits can only be this one, and it counts as earlier than any block. No initial tag
/// could do that: under the wrapping order any tag is later than half of all blocks, and
/// counters in that half would be refused from a fresh window.
const EMPTY: u64 = 0;

#[inline]
fn pack(tag: u32, bits: u32) -> u64 {
    (tag as u64) << 32 | bits as u64
}

#[inline]
fn unpack(slot: u64) -> (u32, u32) {
    ((slot >> 32) as u32, slot as u32)
}

/// How far the block tagged `tag` is ahead of the one tagged `other`. A positive result
/// means later. The result is meaningful under 2^31 blocks of distance (module doc, 4).
#[inline]
fn ahead(tag: u32, other: u32) -> i32 {
    tag.wrapping_sub(other) as i32
}

/// The checks that need no slot: `highest` is the encoded highest accepted counter (+1).
#[inline]
fn outside_window(counter: u64, highest: u64) -> Result<(), ReplayError> {
    if counter >= REJECT_AFTER_MESSAGES {
        return Err(ReplayError::Exhausted);
    }
    // No overflow: counter < REJECT_AFTER_MESSAGES leaves 2^13 of headroom.
    if highest > counter + WINDOW_SIZE + 1 {
        return Err(ReplayError::TooOld);
    }
    Ok(())
}

/// The window as read once for checking a vector of counters (`ReplayWindow::view`).
pub struct View<'a> {
    window: &'a ReplayWindow,
    highest: u64,
}

impl View<'_> {
    /// Could `counter` be accepted? Only reads. A counter above every accepted one is
    /// answered without looking at its slot: the answer is advice, and `record` decides.
    #[inline]
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        outside_window(counter, self.highest)?;
        if counter >= self.highest {
            return Ok(());
        }
        let block = counter >> BLOCK_SHIFT;
        let slot = self.window.slots[slot_of(block)].load(Relaxed);
        if slot == EMPTY {
            return Ok(());
        }
        let (tag, bits) = unpack(slot);
        match ahead(block as u32, tag) {
            0 if bits & bit_of(counter) != 0 => Err(ReplayError::Duplicate),
            d if d < 0 => Err(ReplayError::TooOld),
            _ => Ok(()),
        }
    }
}

impl ReplayWindow {
    pub const fn new() -> Self {
        ReplayWindow {
            highest: AtomicU64::new(0),
            slots: [const { AtomicU64::new(EMPTY) }; SLOTS],
        }
    }

    /// The window as it is now, to check a vector's counters against.
    #[inline]
    pub fn view(&self) -> View<'_> {
        View {
            window: self,
            highest: self.highest.load(Relaxed),
        }
    }

    /// Could `counter` be accepted? Only reads.
    #[inline]
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        self.view().check(counter)
    }

    /// Record authenticated counters, each with a tag of the caller's (its packet).
    /// `refused` is called with the tag and the reason of each counter that is not
    /// accepted; every other counter was accepted by this call. A counter that appears
    /// twice is accepted at most once.
    #[inline]
    pub fn record<T: Copy + Default>(
        &self,
        counters: impl IntoIterator<Item = (T, u64)>,
        mut refused: impl FnMut(T, ReplayError),
    ) {
        let start = self.highest.load(Relaxed);
        // The batch's own counters count for the window as soon as they pass the
        // pre-checks: when one is still refused at its slot, that is because the same or
        // a later counter was accepted, so `hi` never claims more than the truth.
        let mut hi = start;
        // The run of counters of one block waiting to be published together, one bit
        // each; `tags[b]` is the tag of the counter with bit `b`.
        let (mut block, mut mask) = (0u64, 0u32);
        let mut tags = [T::default(); BLOCK_BITS as usize];
        for (tag, counter) in counters {
            if let Err(why) = outside_window(counter, hi) {
                refused(tag, why);
                continue;
            }
            let bit = bit_of(counter);
            // A repeated counter starts a new run. The slot then refuses it, so the
            // mask keeps one counter per bit and refusals map back to one tag each.
            if mask != 0 && (counter >> BLOCK_SHIFT != block || mask & bit != 0) {
                self.flush(block, mask, &tags, &mut refused);
                mask = 0;
            }
            block = counter >> BLOCK_SHIFT;
            mask |= bit;
            tags[(counter & (BLOCK_BITS - 1)) as usize] = tag;
            hi = hi.max(counter + 1);
        }
        if mask != 0 {
            self.flush(block, mask, &tags, &mut refused);
        }
        if hi > start {
            self.highest.fetch_max(hi, Relaxed);
        }
    }

    /// Record one authenticated counter.
    pub fn update(&self, counter: u64) -> Result<(), ReplayError> {
        let mut verdict = Ok(());
        self.record([((), counter)], |_, why| verdict = Err(why));
        verdict
    }

    /// Highest accepted counter, 0 when none was accepted yet.
    pub fn highest(&self) -> u64 {
        self.highest.load(Relaxed).saturating_sub(1)
    }

    /// Publish a run (`mask` of `block`) and report its refusals. Called once per block
    /// of a batch, and kept out of line so the loop over counters stays small.
    #[inline(never)]
    fn flush<T: Copy>(
        &self,
        block: u64,
        mask: u32,
        tags: &[T; BLOCK_BITS as usize],
        refused: &mut impl FnMut(T, ReplayError),
    ) {
        let (mut lost, why) = self.publish(block, mask);
        while lost != 0 {
            refused(tags[lost.trailing_zeros() as usize], why);
            lost &= lost - 1;
        }
    }

    /// Set `mask` in the slot of `block`. Returns the bits refused, and why.
    fn publish(&self, block: u64, mask: u32) -> (u32, ReplayError) {
        let slot = &self.slots[slot_of(block)];
        let tag = block as u32;
        let mut current = slot.load(Relaxed);
        loop {
            let (current_tag, bits) = unpack(current);
            let distance = if current == EMPTY {
                1
            } else {
                ahead(tag, current_tag)
            };
            let (new, seen) = if distance == 0 {
                let seen = bits & mask;
                if seen == mask {
                    // Nothing to add, so do not dirty the line.
                    return (mask, ReplayError::Duplicate);
                }
                (current | mask as u64, seen)
            } else if distance > 0 {
                // The slot is empty or holds a block from an earlier lap, out of the
                // window (3).
                (pack(tag, mask), 0)
            } else {
                // A later lap: someone accepted a counter at least 8161 above these.
                return (mask, ReplayError::TooOld);
            };
            match slot.compare_exchange_weak(current, new, Relaxed, Relaxed) {
                Ok(_) => return (seen, ReplayError::Duplicate),
                Err(now) => current = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicU32;
    use std::sync::Barrier;

    /// splitmix64: deterministic, enough to shuffle test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                v.swap(i, self.below(i as u64 + 1) as usize);
            }
        }

        /// Cut `v` into pieces of 1..=max elements.
        fn split<T: Clone>(&mut self, v: &[T], max: u64) -> Vec<Vec<T>> {
            let mut out = Vec::new();
            let mut rest = v;
            while !rest.is_empty() {
                let n = (1 + self.below(max) as usize).min(rest.len());
                out.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            out
        }
    }

    /// The specification, one counter at a time.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u64>,
        max: Option<u64>,
    }

    impl Model {
        fn update(&mut self, counter: u64) -> Result<(), ReplayError> {
            if counter >= REJECT_AFTER_MESSAGES {
                return Err(ReplayError::Exhausted);
            }
            if self
                .max
                .is_some_and(|m| m > counter && m - counter > WINDOW_SIZE)
            {
                return Err(ReplayError::TooOld);
            }
            if !self.seen.insert(counter) {
                return Err(ReplayError::Duplicate);
            }
            self.max = self.max.max(Some(counter));
            Ok(())
        }
    }

    /// The refusals of a batch tagged by position, in position order.
    fn record(w: &ReplayWindow, counters: &[u64]) -> Vec<(usize, ReplayError)> {
        let mut out = Vec::new();
        w.record(counters.iter().copied().enumerate(), |i, why| {
            out.push((i, why))
        });
        out.sort_by_key(|&(i, _)| i);
        out
    }

    fn snapshot(w: &ReplayWindow) -> (u64, Vec<u64>) {
        (
            w.highest.load(Relaxed),
            w.slots.iter().map(|s| s.load(Relaxed)).collect(),
        )
    }

    #[test]
    fn in_order() {
        let w = ReplayWindow::new();
        for c in 0..20_000 {
            assert_eq!(w.update(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.highest(), 19_999);
    }

    #[test]
    fn reordered_inside_window_accepted_once() {
        let w = ReplayWindow::new();
        w.update(10_000).unwrap();
        for c in (10_000 - WINDOW_SIZE..10_000).rev() {
            assert_eq!(w.update(c), Ok(()), "counter {c}");
        }
        for c in 10_000 - WINDOW_SIZE..=10_000 {
            assert_eq!(w.update(c), Err(ReplayError::Duplicate), "counter {c}");
        }
    }

    #[test]
    fn duplicate() {
        let w = ReplayWindow::new();
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.update(0), Err(ReplayError::Duplicate));
        assert_eq!(w.update(5), Ok(()));
        assert_eq!(w.check(5), Err(ReplayError::Duplicate));
        assert_eq!(w.update(3), Ok(()));
        assert_eq!(w.update(3), Err(ReplayError::Duplicate));
    }

    #[test]
    fn too_old() {
        let w = ReplayWindow::new();
        w.update(WINDOW_SIZE + 100).unwrap();
        assert_eq!(w.check(99), Err(ReplayError::TooOld));
        assert_eq!(w.check(100), Ok(()));
        assert_eq!(w.update(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn far_jump_ahead_clears_old_bits() {
        let w = ReplayWindow::new();
        for c in 0..500 {
            w.update(c).unwrap();
        }
        let far = 1_000_000_007;
        w.update(far).unwrap();
        // Everything that was seen before is now too old, and counters just below the
        // new highest are fresh, including those whose bit positions were set before.
        assert_eq!(w.check(499), Err(ReplayError::TooOld));
        for c in far - WINDOW_SIZE..far {
            assert_eq!(w.check(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.update(far), Err(ReplayError::Duplicate));
        // A jump smaller than the ring clears only what it passes.
        w.update(far + 100).unwrap();
        assert_eq!(w.check(far), Err(ReplayError::Duplicate));
        assert_eq!(w.check(far + 50), Ok(()));
    }

    #[test]
    fn exhausted() {
        let w = ReplayWindow::new();
        assert_eq!(w.update(REJECT_AFTER_MESSAGES), Err(ReplayError::Exhausted));
        assert_eq!(w.update(u64::MAX), Err(ReplayError::Exhausted));
        assert_eq!(w.update(REJECT_AFTER_MESSAGES - 1), Ok(()));
    }

    #[test]
    fn fresh_window_sees_nothing() {
        let w = ReplayWindow::new();
        for c in (0..3 * SLOTS as u64 * BLOCK_BITS).chain([1 << 35, REJECT_AFTER_MESSAGES - 1]) {
            assert_eq!(w.check(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.highest(), 0);
    }

    #[test]
    fn batch_mixed_verdicts() {
        use ReplayError::*;
        let w = ReplayWindow::new();
        w.update(10_000).unwrap();
        w.update(9_990).unwrap();
        let batch = [
            10_001,                // 0 fresh
            10_000,                // 1 seen before
            1_000,                 // 2 far below 10_000
            REJECT_AFTER_MESSAGES, // 3
            10_002,                // 4 fresh
            10_002,                // 5 repeated at once
            9_990,                 // 6 seen before, another block
            9_991,                 // 7 fresh
            u64::MAX,              // 8
            10_001,                // 9 repeated later in the batch
            20_000,                // 10 fresh, moves the window
            11_871,                // 11 now 8129 below 20_000
            11_872,                // 12 exactly WINDOW_SIZE below: fresh
            9_991,                 // 13 accepted above, now too old: age comes first
        ];
        assert_eq!(
            record(&w, &batch),
            [
                (1, Duplicate),
                (2, TooOld),
                (3, Exhausted),
                (5, Duplicate),
                (6, Duplicate),
                (8, Exhausted),
                (9, Duplicate),
                (11, TooOld),
                (13, TooOld),
            ]
        );
        assert_eq!(w.highest(), 20_000);
        for c in [11_872, 20_000] {
            assert_eq!(w.check(c), Err(Duplicate), "counter {c}");
        }
        assert_eq!(w.check(11_871), Err(TooOld));
        assert_eq!(w.check(11_873), Ok(()));
        assert_eq!(w.check(19_999), Ok(()));
        assert!(record(&w, &[]).is_empty());
    }

    #[test]
    fn batch_across_blocks_and_ring_laps() {
        use ReplayError::*;
        let w = ReplayWindow::new();
        // 625 blocks in one call: the 256-slot ring laps twice.
        let all: Vec<u64> = (0..20_000).collect();
        assert!(record(&w, &all).is_empty());
        assert_eq!(w.highest(), 19_999);
        for c in 0..20_000 {
            let expected = if c < 19_999 - WINDOW_SIZE {
                Err(TooOld)
            } else {
                Err(Duplicate)
            };
            assert_eq!(w.check(c), expected, "counter {c}");
        }

        // Backwards across block boundaries, then past the top.
        let low = 19_999 - WINDOW_SIZE;
        let batch: Vec<u64> = (low - 40..20_100).rev().collect();
        let refused = record(&w, &batch);
        let expected: Vec<(usize, ReplayError)> = batch
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c < 20_000)
            .map(|(i, &c)| {
                // Once 20_099 is in, the window starts at 20_099 - WINDOW_SIZE.
                (
                    i,
                    if c < 20_099 - WINDOW_SIZE {
                        TooOld
                    } else {
                        Duplicate
                    },
                )
            })
            .collect();
        assert_eq!(refused, expected);

        // Two counters one lap apart in one batch: the second evicts the first's block.
        let w = ReplayWindow::new();
        let lap = SLOTS as u64 * BLOCK_BITS;
        assert_eq!(record(&w, &[100, 100 + lap, 100, 101 + lap]), [(2, TooOld)]);
        assert_eq!(w.check(100 + lap), Err(Duplicate));
        assert_eq!(w.check(101 + lap), Err(Duplicate));
        assert_eq!(w.check(102 + lap), Ok(()));
        // The window now starts at 101 + lap - WINDOW_SIZE = 165.
        assert_eq!(w.check(165), Ok(()));
        assert_eq!(w.check(164), Err(TooOld));
        assert_eq!(w.check(100), Err(TooOld));
    }

    #[test]
    fn far_jump_in_batch() {
        use ReplayError::*;
        let w = ReplayWindow::new();
        let far = 1_000_000_000;
        let batch = [
            5,
            far,
            6,
            far - 1_000,
            far - WINDOW_SIZE,
            far - WINDOW_SIZE - 1,
            far,
        ];
        assert_eq!(
            record(&w, &batch),
            [(2, TooOld), (5, TooOld), (6, Duplicate)]
        );
        assert_eq!(w.highest(), far);
        assert_eq!(w.check(5), Err(TooOld));
        assert_eq!(w.check(far - 1_000), Err(Duplicate));
        assert_eq!(w.check(far - 999), Ok(()));
    }

    #[test]
    fn check_never_writes() {
        let w = ReplayWindow::new();
        assert!(record(&w, &[5_000, 4_999, 0, 31, 32, 8_000]).is_empty());
        let before = snapshot(&w);
        let mut fine = Vec::new();
        for _ in 0..3 {
            fine.clear();
            for c in (0..40_000).chain([REJECT_AFTER_MESSAGES, u64::MAX]) {
                if w.check(c).is_ok() {
                    fine.push(c);
                }
            }
        }
        assert_eq!(snapshot(&w), before);
        assert_eq!(fine.len(), 40_000 - 6);
        assert!(record(&w, &fine).is_empty());
        assert_eq!(w.highest(), 39_999);
    }

    /// Another worker has published a counter one lap ahead but not raised `highest`
    /// yet: the window check still lets the old block through, and the slot must refuse it
    /// rather than evict the newer block.
    #[test]
    fn newer_slot_in_flight_refuses_older_lap() {
        use ReplayError::*;
        let w = ReplayWindow::new();
        let lap = SLOTS as u64 * BLOCK_BITS;
        assert!(record(&w, &[100, 101]).is_empty());
        let ahead = 100 + lap;
        assert_eq!(
            w.publish(ahead >> BLOCK_SHIFT, bit_of(ahead)),
            (0, Duplicate)
        );
        assert_eq!(w.highest(), 101);
        for c in [100, 101] {
            assert_eq!(w.check(c), Err(TooOld), "counter {c}");
        }
        // Above every accepted counter, the check answers without the slot; its answer
        // is advice, and recording refuses.
        assert_eq!(w.check(102), Ok(()));
        assert_eq!(record(&w, &[102, 100, 1_000]), [(0, TooOld), (1, TooOld)]);
        assert_eq!(record(&w, &[ahead, ahead + 1]), [(0, Duplicate)]);
        assert_eq!(w.check(ahead), Err(Duplicate));
    }

    /// Random batches against the one-at-a-time model: same verdicts, same order.
    #[test]
    fn batches_match_model() {
        let mut rng = Rng(0x7e57);
        let w = ReplayWindow::new();
        let mut model = Model::default();
        let mut base: u64 = 0;
        let mut recent: Vec<u64> = Vec::new();
        for _ in 0..3_000 {
            let len = 1 + rng.below(300);
            let mut batch = Vec::new();
            for _ in 0..len {
                let c = match rng.below(100) {
                    0..=59 => base + rng.below(64),
                    60..=79 => base.saturating_sub(rng.below(WINDOW_SIZE + 200)),
                    80..=89 if !recent.is_empty() => {
                        recent[rng.below(recent.len() as u64) as usize]
                    }
                    90..=93 => rng.below(base + 1),
                    94 => REJECT_AFTER_MESSAGES + rng.below(3),
                    95 => {
                        base += 1_000 + rng.below(1 << 20);
                        base
                    }
                    _ => base + rng.below(20_000),
                };
                batch.push(c);
            }
            base += rng.below(200);
            let expected: Vec<(usize, ReplayError)> = batch
                .iter()
                .enumerate()
                .filter_map(|(i, &c)| model.update(c).err().map(|e| (i, e)))
                .collect();
            assert_eq!(record(&w, &batch), expected, "batch {batch:?}");
            assert_eq!(w.highest(), model.max.unwrap_or(0));
            recent = batch;
        }
    }

    /// Jumps so large that 32-bit tags wrap may refuse fresh counters, but never accept
    /// one twice.
    #[test]
    fn huge_jumps_never_accept_twice() {
        let w = ReplayWindow::new();
        let mut accepted = Vec::new();
        let mut rng = Rng(0x1a2b);
        let mut base = 0u64;
        for step in [
            0,
            1 << 36,
            (1 << 36) + 8192,
            1 << 37,
            (1 << 37) + (1 << 31),
            3 << 40,
        ] {
            base += step;
            let mut batch: Vec<u64> = (base..base + 9_000).collect();
            rng.shuffle(&mut batch);
            let mut ok = vec![true; batch.len()];
            w.record(batch.iter().copied().enumerate(), |i, _| ok[i] = false);
            accepted.extend(batch.iter().zip(&ok).filter(|(_, &ok)| ok).map(|(&c, _)| c));
            let mut again = accepted.clone();
            rng.shuffle(&mut again);
            for piece in rng.split(&again, 256) {
                assert_eq!(record(&w, &piece).len(), piece.len());
            }
        }
        let distinct: HashSet<u64> = accepted.iter().copied().collect();
        assert_eq!(distinct.len(), accepted.len());
    }

    /// Four workers record the same counters, each in its own order and cut into its own
    /// vectors: every counter must be accepted by exactly one of them. The rounds keep all
    /// counters in flight within 2048 of each other, far inside the window, so the verdict
    /// does not depend on the interleaving: only Duplicate can be refused.
    #[test]
    fn concurrent_workers_accept_each_counter_once() {
        const TOTAL: u64 = 200_000;
        const ROUND: u64 = 2048;
        const WORKERS: usize = 4;
        let w = ReplayWindow::new();
        let accepted: Vec<AtomicU32> = (0..TOTAL).map(|_| AtomicU32::new(0)).collect();
        let wrong = AtomicU32::new(0);
        let barrier = Barrier::new(WORKERS);
        std::thread::scope(|s| {
            for t in 0..WORKERS {
                let (w, accepted, wrong, barrier) = (&w, &accepted, &wrong, &barrier);
                s.spawn(move || {
                    let mut rng = Rng(0xc0ffee + t as u64);
                    let mut start = 0;
                    while start < TOTAL {
                        let end = (start + ROUND).min(TOTAL);
                        let mut round: Vec<u64> = (start..end).collect();
                        let mut vectors = if t % 2 == 0 {
                            // Runs of consecutive counters, vectors in shuffled order.
                            let mut v = rng.split(&round, 256);
                            rng.shuffle(&mut v);
                            v
                        } else {
                            // Every counter anywhere.
                            rng.shuffle(&mut round);
                            rng.split(&round, 256)
                        };
                        // Now and then a counter twice in one vector.
                        for v in &mut vectors {
                            if rng.below(4) == 0 {
                                let c = v[rng.below(v.len() as u64) as usize];
                                v.insert(rng.below(v.len() as u64 + 1) as usize, c);
                            }
                        }
                        for v in &vectors {
                            let mut ok = vec![true; v.len()];
                            w.record(v.iter().copied().enumerate(), |i, why| {
                                if why != ReplayError::Duplicate {
                                    wrong.fetch_add(1, Relaxed);
                                }
                                ok[i] = false;
                            });
                            for (&c, _) in v.iter().zip(&ok).filter(|(_, &ok)| ok) {
                                accepted[c as usize].fetch_add(1, Relaxed);
                            }
                        }
                        // No assertion in here: a panicking worker would leave the
                        // others waiting forever.
                        barrier.wait();
                        start = end;
                    }
                });
            }
        });
        assert_eq!(wrong.load(Relaxed), 0);
        for (c, n) in accepted.iter().enumerate() {
            assert_eq!(n.load(Relaxed), 1, "counter {c}");
        }
        assert_eq!(w.highest(), TOTAL - 1);
    }

    /// Workers racing without lockstep, each at its own pace over a region that keeps
    /// moving past the window and around the ring: which worker gets a counter and which
    /// counters end up too old depends on timing, but none may be accepted twice.
    #[test]
    fn concurrent_free_running_never_accepts_twice() {
        const TOTAL: u64 = 300_000;
        const WORKERS: usize = 4;
        let w = ReplayWindow::new();
        let accepted: Vec<AtomicU32> = (0..TOTAL + 512).map(|_| AtomicU32::new(0)).collect();
        std::thread::scope(|s| {
            for t in 0..WORKERS {
                let (w, accepted) = (&w, &accepted);
                s.spawn(move || {
                    let mut rng = Rng(0xfeed + t as u64);
                    let mut at = 0u64;
                    while at < TOTAL {
                        let len = 1 + rng.below(256);
                        let v: Vec<u64> = (0..len)
                            .map(|_| (at + rng.below(512)).saturating_sub(rng.below(9_000)))
                            .collect();
                        let mut ok = vec![true; v.len()];
                        w.record(v.iter().copied().enumerate(), |i, _| ok[i] = false);
                        for (&c, _) in v.iter().zip(&ok).filter(|(_, &ok)| ok) {
                            accepted[c as usize].fetch_add(1, Relaxed);
                        }
                        at += rng.below(600);
                    }
                });
            }
        });
        let mut total = 0;
        for (c, n) in accepted.iter().enumerate() {
            let n = n.load(Relaxed);
            assert!(n <= 1, "counter {c} accepted {n} times");
            total += n;
        }
        assert!(total > 0);
    }
}
