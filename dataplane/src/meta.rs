//! The 64-bit note a packet carries between a worker and the control thread
//! (`PacketBuf::meta`).
//!
//! Worker -> control: bits 0..8 the [`Punt`] reason, 8..16 the [`Side`] the packet
//! arrived on, 32..64 the peer id where the reason concerns a peer (`NoSession`).
//! Control -> worker: bits 8..16 the side to send the frame out of.

use crate::counters::Punt;
use crate::tables::Side;

#[inline]
pub fn punt(reason: Punt, side: Side, peer: u32) -> u64 {
    reason as u64 | (side as u64) << 8 | (peer as u64) << 32
}

#[inline]
pub fn punt_reason(meta: u64) -> Option<Punt> {
    Punt::from_u8(meta as u8)
}

#[inline]
pub fn side(meta: u64) -> Side {
    if (meta >> 8) as u8 == Side::Inside as u8 {
        Side::Inside
    } else {
        Side::Outside
    }
}

#[inline]
pub fn peer(meta: u64) -> u32 {
    (meta >> 32) as u32
}

/// A frame control wants sent out of `side`.
#[inline]
pub fn send_on(side: Side) -> u64 {
    (side as u64) << 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = punt(Punt::NoSession, Side::Inside, 0xdead_beef);
        assert_eq!(punt_reason(m), Some(Punt::NoSession));
        assert_eq!(side(m), Side::Inside);
        assert_eq!(peer(m), 0xdead_beef);
        assert_eq!(side(send_on(Side::Outside)), Side::Outside);
    }
}
