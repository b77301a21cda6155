//! Typed views over packet bytes.
//!
//! Each protocol lives in its own file and offers a view type (`Frame` for Ethernet,
//! `Packet` for everything else) that wraps any `T: AsRef<[u8]>`: a slice, an mbuf's
//! data, a `Vec`. A view owns no memory, copies nothing and allocates nothing; reading a
//! field is an index and a byte-order conversion, so the data plane can build a view per
//! packet at line rate.
//!
//! # Contract
//!
//! - `new_unchecked(buffer)` wraps the buffer as is. Getters and setters index the
//!   buffer directly and panic if it is too short for the field they touch. Use it only
//!   for buffers we sized ourselves, e.g. when building a packet.
//! - `new_checked(buffer)` first calls `check_len`, which validates everything a getter
//!   relies on: the buffer holds the fixed header, the version field is the one the view
//!   parses, header-length and length fields are self-consistent and fit in the buffer.
//!   After it returns `Ok`, no getter, no `payload()` and no setter of a field inside
//!   the validated header panics (for fields that only some message types carry, such
//!   as the ICMPv6 Neighbor Discovery target, the module says which types are covered).
//!   Anything that arrives from the network goes through `new_checked`.
//! - Setters of length fields (`set_total_len`, `set_header_len`, ...) can break what
//!   `check_len` established; call `check_len` again before trusting `payload()` of a
//!   packet whose lengths were rewritten.
//! - A buffer may be longer than the packet (Ethernet pads short frames to 60 bytes):
//!   `payload()` honours the packet's own length field and ignores trailing bytes.
//! - Checksums are never verified implicitly. Callers decide where a checksum matters
//!   (`verify_checksum`) and fill them when building (`fill_checksum`).
//! - Multi-byte fields are big-endian on the wire; getters and setters convert.
//!
//! The module uses `core` only (apart from the `std::error::Error` impls), so it stays
//! easy to move into a `no_std` build.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::{Range, RangeFrom};

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod udp;
pub mod wireguard;

pub use arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{EtherType, Frame as EthernetFrame, MacAddr};
pub use icmpv4::{Message as Icmpv4Message, Packet as Icmpv4Packet};
pub use icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet};
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use udp::Packet as UdpPacket;

/// Byte range of a fixed-size field inside a header.
type Field = Range<usize>;
/// Byte range from a field's start to the end of the buffer.
type Rest = RangeFrom<usize>;

/// Why a buffer cannot be viewed as the requested protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the header, or than the length a header field claims.
    Truncated,
    /// A field contradicts the structure: a header length below the minimum, a total
    /// length shorter than the header, a zero-length option.
    Malformed,
    /// The version field names a version this view does not parse.
    UnsupportedVersion,
    /// Well-formed, but a variant we do not handle (e.g. ARP over a non-Ethernet link).
    Unsupported,
    /// The type field names no message this view knows.
    UnknownType,
    /// The message is not of a length its type allows (WireGuard handshake messages
    /// have exactly one length).
    BadLength,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "packet truncated",
            WireError::Malformed => "malformed packet",
            WireError::UnsupportedVersion => "unsupported protocol version",
            WireError::Unsupported => "unsupported packet variant",
            WireError::UnknownType => "unknown message type",
            WireError::BadLength => "wrong length for the message type",
        })
    }
}

// `std` rather than `core::error::Error`, which needs Rust 1.81 (the workspace's MSRV is
// 1.80); this is the module's only use of `std`.
impl std::error::Error for WireError {}

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next_header`), IANA "Assigned Internet
/// Protocol Numbers".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    HopByHop,
    Icmp,
    Tcp,
    Udp,
    Ipv6Route,
    Ipv6Frag,
    Icmpv6,
    Ipv6NoNxt,
    Ipv6Opts,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(other) => other,
        }
    }
}

/// Reads a big-endian `u16` at `field`. The `try_into` cannot fail for a two-byte field
/// and compiles to a plain load.
#[inline]
fn read_u16(data: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(data[field].try_into().unwrap())
}

#[inline]
fn write_u16(data: &mut [u8], field: Field, value: u16) {
    data[field].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn read_u32(data: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(data[field].try_into().unwrap())
}

#[inline]
fn write_u32(data: &mut [u8], field: Field, value: u32) {
    data[field].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn read_ipv4(data: &[u8], field: Field) -> Ipv4Addr {
    Ipv4Addr::from(<[u8; 4]>::try_from(&data[field]).unwrap())
}

#[inline]
fn read_ipv6(data: &[u8], field: Field) -> Ipv6Addr {
    Ipv6Addr::from(<[u8; 16]>::try_from(&data[field]).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_protocol_round_trips_every_value() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(IpProtocol::from(value)), value);
        }
        assert_eq!(IpProtocol::from(17), IpProtocol::Udp);
        assert_eq!(IpProtocol::from(58), IpProtocol::Icmpv6);
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
    }

    #[test]
    fn errors_display_for_operators() {
        assert_eq!(WireError::Truncated.to_string(), "packet truncated");
        assert_eq!(
            WireError::UnsupportedVersion.to_string(),
            "unsupported protocol version"
        );
    }
}

/// Deterministic pseudo-random buffers for the "no getter panics after `new_checked`"
/// tests in each protocol file.
#[cfg(test)]
pub(crate) mod test_util {
    /// xorshift64*: enough to scatter bytes, no dependency.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }

        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub fn fill(&mut self, buf: &mut [u8]) {
            for byte in buf {
                *byte = self.next_u64() as u8;
            }
        }
    }

    /// Calls `check` on every prefix of `sample` and on `rounds` random buffers that
    /// start like `sample` but with random bytes mixed in, so the header fields take
    /// both plausible and absurd values.
    pub fn for_each_mutation(sample: &[u8], rounds: usize, mut check: impl FnMut(&[u8])) {
        for len in 0..=sample.len() {
            check(&sample[..len]);
        }
        let mut rng = Rng::new(0x5eed_0000 ^ sample.len() as u64);
        let mut buf = [0u8; 256];
        for _ in 0..rounds {
            let len = (rng.next_u64() as usize) % (sample.len() + 16).min(buf.len());
            let buf = &mut buf[..len];
            rng.fill(buf);
            for (i, byte) in buf.iter_mut().enumerate() {
                // Keep about half of the sample's bytes so version and type fields often
                // hold valid values and the length checks are what gets exercised.
                if i < sample.len() && rng.next_u64() & 1 == 0 {
                    *byte = sample[i];
                }
            }
            check(buf);
        }
    }
}
