//! Congestion signals across the tunnel: the ECN field (RFC 3168) of inner and outer IP
//! headers, handled as RFC 6040 ("Tunnelling of Explicit Congestion Notification")
//! prescribes, and the outer DSCP (docs/architecture.md, "Congestion signals").
//!
//! - Encapsulation (encrypt) copies the inner ECN field to the outer header (RFC 6040
//!   section 4.1, normal mode), so a congested router between the peers can mark CE
//!   instead of dropping.
//! - Decapsulation (decrypt) combines outer and inner ECN by RFC 6040 section 4.2,
//!   Figure 4: an outer CE marks an ECT inner packet CE; an outer CE over a Not-ECT
//!   inner packet must be dropped (the inner transport could not hear the mark).
//!
//! Works on the bytes of the inner IP packet, IPv4 or IPv6; anything else is left alone.

use crate::wire::checksum;

/// Not ECN-capable transport.
pub const NOT_ECT: u8 = 0b00;
/// ECN-capable transport, ECT(1).
pub const ECT_1: u8 = 0b01;
/// ECN-capable transport, ECT(0).
pub const ECT_0: u8 = 0b10;
/// Congestion experienced.
pub const CE: u8 = 0b11;

/// The byte that holds DSCP and ECN: IPv4's former ToS (byte 1); IPv6's traffic class,
/// split over bytes 0 and 1.
#[inline]
fn traffic_class(ip: &[u8]) -> Option<u8> {
    match ip.first()? >> 4 {
        4 if ip.len() >= 20 => Some(ip[1]),
        6 if ip.len() >= 40 => Some((ip[0] << 4) | (ip[1] >> 4)),
        _ => None,
    }
}

/// The ECN field of an IP packet; `None` if it is not one.
#[inline]
pub fn get(ip: &[u8]) -> Option<u8> {
    traffic_class(ip).map(|tc| tc & 0b11)
}

/// The DSCP of an IP packet; `None` if it is not one.
#[inline]
pub fn dscp(ip: &[u8]) -> Option<u8> {
    traffic_class(ip).map(|tc| tc >> 2)
}

/// Sets the ECN field of an IP packet, keeping an IPv4 header checksum valid by an
/// incremental update (RFC 1624).
pub fn set(ip: &mut [u8], ecn: u8) {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            let old = u16::from_be_bytes([ip[0], ip[1]]);
            ip[1] = (ip[1] & !0b11) | (ecn & 0b11);
            let new = u16::from_be_bytes([ip[0], ip[1]]);
            let sum = u16::from_be_bytes([ip[10], ip[11]]);
            ip[10..12].copy_from_slice(&checksum::update(sum, old, new).to_be_bytes());
        }
        Some(6) if ip.len() >= 40 => {
            // The traffic class's low two bits are bits 4 and 5 of byte 1.
            ip[1] = (ip[1] & !0b0011_0000) | ((ecn & 0b11) << 4);
        }
        _ => {}
    }
}

/// The outer ECN field for an inner packet with ECN field `inner` (RFC 6040 section 4.1,
/// normal mode: a copy).
#[inline]
pub fn encapsulate(inner: u8) -> u8 {
    inner & 0b11
}

/// The inner packet's ECN field after decapsulation, from the arriving outer and inner
/// fields; `None` where RFC 6040 says to drop the packet (CE outside, Not-ECT inside).
///
/// RFC 6040 section 4.2, Figure 4 (rows: inner; columns: outer):
///
/// ```text
///              Not-ECT   ECT(0)    ECT(1)    CE
///   Not-ECT    Not-ECT   Not-ECT   Not-ECT   drop
///   ECT(0)     ECT(0)    ECT(0)    ECT(1)    CE
///   ECT(1)     ECT(1)    ECT(1)    ECT(1)    CE
///   CE         CE        CE        CE        CE
/// ```
///
/// (The RFC marks Not-ECT under ECT(0)/ECT(1) outer, and ECT(0)/ECT(1) under CE inner,
/// as combinations a compliant encapsulator never makes; they are still forwarded.)
#[inline]
pub fn decapsulate(outer: u8, inner: u8) -> Option<u8> {
    match (inner & 0b11, outer & 0b11) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (CE, _) | (_, CE) => Some(CE),
        (ECT_0, ECT_1) => Some(ECT_1),
        (inner, _) => Some(inner),
    }
}

/// Where the outer DSCP comes from (`wireguard.outer_dscp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterDscp {
    /// This code point on every outer header; 0 (the default) tells nothing about the
    /// inner traffic.
    Fixed(u8),
    /// The inner packet's own code point, so the network between the peers can keep
    /// the inner traffic's classes apart (and can see them).
    Inner,
}

impl Default for OuterDscp {
    fn default() -> Self {
        OuterDscp::Fixed(0)
    }
}

impl OuterDscp {
    /// The outer header's DSCP and ECN byte (IPv4 ToS, IPv6 traffic class) for `inner`.
    #[inline]
    pub fn outer_tos(self, inner: &[u8]) -> u8 {
        let dscp = match self {
            OuterDscp::Fixed(d) => d,
            OuterDscp::Inner => dscp(inner).unwrap_or(0),
        };
        (dscp << 2) | encapsulate(get(inner).unwrap_or(NOT_ECT))
    }
}

#[cfg(test)]
mod tests;
