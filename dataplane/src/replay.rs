//! Sliding replay window for transport counters.
//!
//! Contract: `check` says whether a counter could still be accepted without changing
//! anything (used before spending an AEAD open on a packet); `update` is called only after
//! the packet authenticated and records the counter, refusing duplicates and counters
//! that fell out of the window. The window remembers the last [`WINDOW_SIZE`] counters
//! below the highest one seen; anything older is refused.
//!
//! The bitmap is a ring of 64-bit blocks: moving the window forward clears the blocks it
//! passes instead of shifting bits, so a jump of any size costs at most one pass over the
//! ring. Same layout as RFC 6479, with the size WireGuard implementations use.

/// Counters at or beyond this value are never accepted (whitepaper section 6.1,
/// Reject-After-Messages = 2^64 - 2^13 - 1).
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

const BLOCK_BITS: u64 = 64;
const RING_BLOCKS: usize = 128;

/// Counters this far below the highest accepted one are still accepted once:
/// (128 - 1) * 64 = 8128, the window of wireguard-go (`device/replay` /
/// `replay.go`) and the Linux module (`COUNTER_WINDOW_SIZE`).
pub const WINDOW_SIZE: u64 = (RING_BLOCKS as u64 - 1) * BLOCK_BITS;

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

#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted so far (0 before the first one: counter 0 is still
    /// accepted once, through its bit).
    highest: u64,
    blocks: [u64; RING_BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub const fn new() -> Self {
        ReplayWindow {
            highest: 0,
            blocks: [0; RING_BLOCKS],
        }
    }

    #[inline]
    fn slot(counter: u64) -> (usize, u64) {
        let block = (counter / BLOCK_BITS) as usize % RING_BLOCKS;
        (block, 1u64 << (counter % BLOCK_BITS))
    }

    /// Could `counter` be accepted? Changes nothing.
    #[inline]
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= REJECT_AFTER_MESSAGES {
            return Err(ReplayError::Exhausted);
        }
        if counter > self.highest {
            return Ok(());
        }
        if self.highest - counter > WINDOW_SIZE {
            return Err(ReplayError::TooOld);
        }
        let (block, bit) = Self::slot(counter);
        if self.blocks[block] & bit != 0 {
            return Err(ReplayError::Duplicate);
        }
        Ok(())
    }

    /// Record an authenticated counter.
    pub fn update(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        if counter > self.highest {
            let current = self.highest / BLOCK_BITS;
            let target = counter / BLOCK_BITS;
            // Clear the blocks the window moves over; a jump past the whole ring clears
            // all of them.
            let advance = (target - current).min(RING_BLOCKS as u64);
            for i in 1..=advance {
                self.blocks[((current + i) % RING_BLOCKS as u64) as usize] = 0;
            }
            self.highest = counter;
        }
        let (block, bit) = Self::slot(counter);
        self.blocks[block] |= bit;
        Ok(())
    }

    pub fn highest(&self) -> u64 {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000 {
            assert_eq!(w.update(c), Ok(()), "counter {c}");
        }
        assert_eq!(w.highest(), 19_999);
    }

    #[test]
    fn reordered_inside_window_accepted_once() {
        let mut w = ReplayWindow::new();
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
        let mut w = ReplayWindow::new();
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.update(0), Err(ReplayError::Duplicate));
        assert_eq!(w.update(5), Ok(()));
        assert_eq!(w.check(5), Err(ReplayError::Duplicate));
        assert_eq!(w.update(3), Ok(()));
        assert_eq!(w.update(3), Err(ReplayError::Duplicate));
    }

    #[test]
    fn too_old() {
        let mut w = ReplayWindow::new();
        w.update(WINDOW_SIZE + 100).unwrap();
        assert_eq!(w.check(99), Err(ReplayError::TooOld));
        assert_eq!(w.check(100), Ok(()));
        assert_eq!(w.update(0), Err(ReplayError::TooOld));
    }

    #[test]
    fn far_jump_ahead_clears_old_bits() {
        let mut w = ReplayWindow::new();
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
        let mut w = ReplayWindow::new();
        assert_eq!(w.update(REJECT_AFTER_MESSAGES), Err(ReplayError::Exhausted));
        assert_eq!(w.update(u64::MAX), Err(ReplayError::Exhausted));
        assert_eq!(w.update(REJECT_AFTER_MESSAGES - 1), Ok(()));
    }
}
