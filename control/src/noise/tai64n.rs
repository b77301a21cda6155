//! TAI64N timestamps, the payload of an initiation (whitepaper 5.4.2; the format is
//! D. J. Bernstein's, cr.yp.to/libtai/tai64.html).
//!
//! Twelve bytes: seconds since 1970 plus 2^62 plus 10, as a big-endian `u64`, then the
//! nanoseconds as a big-endian `u32`. Big-endian makes byte order time order, which is
//! how a responder decides whether an initiation is newer than the last one it accepted
//! from the same peer. The value is built from a wall-clock reading the caller supplies:
//! this module never reads a clock.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2^62 (the TAI64 label of 1970) plus the 10 s TAI was ahead of UTC in 1972; the same
/// `base` as wireguard-go `tai64n/tai64n.go`. Peers only compare our timestamps with our
/// own earlier ones, so the constant matters for readability, not for interop.
const UNIX_EPOCH_LABEL: u64 = 0x4000_0000_0000_000a;

/// Nanoseconds are rounded down to a multiple of 2^24 ns (about 16.8 ms), as wireguard-go
/// does with its `whitenerMask`, so an initiation does not publish a precise reading of
/// the sender's clock.
const WHITENER_MASK: u32 = 0x00ff_ffff;

/// A TAI64N timestamp in its wire form. Ordering is time order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tai64N([u8; Tai64N::LEN]);

impl Tai64N {
    /// Length of the wire form.
    pub const LEN: usize = 12;

    /// The timestamp of `secs` seconds and `nanos` nanoseconds after the Unix epoch
    /// (UTC), with the nanoseconds whitened.
    pub fn from_unix(secs: u64, nanos: u32) -> Self {
        let mut bytes = [0u8; Self::LEN];
        bytes[..8].copy_from_slice(&UNIX_EPOCH_LABEL.wrapping_add(secs).to_be_bytes());
        bytes[8..].copy_from_slice(&(nanos & !WHITENER_MASK).to_be_bytes());
        Tai64N(bytes)
    }

    /// The timestamp of a wall-clock reading; readings before 1970 count as 1970.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self::from_unix(since_epoch.as_secs(), since_epoch.subsec_nanos())
    }

    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Tai64N(bytes)
    }

    pub const fn to_bytes(self) -> [u8; Self::LEN] {
        self.0
    }
}

impl fmt::Debug for Tai64N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut label = [0u8; 8];
        label.copy_from_slice(&self.0[..8]);
        let mut nanos = [0u8; 4];
        nanos.copy_from_slice(&self.0[8..]);
        let secs = u64::from_be_bytes(label).wrapping_sub(UNIX_EPOCH_LABEL);
        write!(
            f,
            "Tai64N({secs}.{:09} s after 1970)",
            u32::from_be_bytes(nanos)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wire_form_is_big_endian_label_then_nanoseconds() {
        let stamp = Tai64N::from_unix(1_700_000_000, 0x1234_5678);
        let mut expected = [0u8; 12];
        expected[..8].copy_from_slice(&(0x4000_0000_0000_000a_u64 + 1_700_000_000).to_be_bytes());
        // 0x12345678 with the low 24 bits cleared.
        expected[8..].copy_from_slice(&[0x12, 0, 0, 0]);
        assert_eq!(stamp.to_bytes(), expected);
        assert_eq!(Tai64N::from_bytes(expected), stamp);
    }

    #[test]
    fn order_is_time_order() {
        let earlier = Tai64N::from_unix(1_000, 999_000_000);
        let later = Tai64N::from_unix(1_001, 0);
        assert!(later > earlier);
        assert!(Tai64N::from_unix(1_000, 100_000_000) > Tai64N::from_unix(1_000, 50_000_000));
        // Within one whitening step two readings give the same timestamp.
        assert_eq!(
            Tai64N::from_unix(1_000, 1),
            Tai64N::from_unix(1_000, 16_000_000)
        );
    }

    #[test]
    fn from_system_time() {
        let time = UNIX_EPOCH + Duration::new(86_400, 500_000_000);
        assert_eq!(
            Tai64N::from_system_time(time),
            Tai64N::from_unix(86_400, 500_000_000)
        );
        assert_eq!(
            Tai64N::from_system_time(UNIX_EPOCH - Duration::from_secs(1)),
            Tai64N::from_unix(0, 0)
        );
        assert_eq!(
            format!("{:?}", Tai64N::from_unix(5, 0)),
            "Tai64N(5.000000000 s after 1970)"
        );
    }
}
