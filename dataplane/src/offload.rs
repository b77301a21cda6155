//! Finishing what a host left to its network card: partial TCP/UDP checksums and
//! super-packets (TSO, GSO, GRO), on IP packets (no link header).
//!
//! A sender on the same machine (a container, a VM, a routing daemon) hands its frames to
//! a virtual link with the work its card would do still undone, and the AF_XDP and
//! AF_PACKET drivers pass them to wgdp as they are (docs/architecture.md, "What a host
//! hands the ports"):
//!
//! - **Partial checksum.** The sender wrote only the pseudo-header sum, folded but not
//!   complemented, into the TCP or UDP checksum field (`CHECKSUM_PARTIAL` in the kernel,
//!   `~csum_tcpudp_magic(...)`), expecting the card to add the data and complement.
//!   [`complete`] recognises that field by comparing it with the pseudo-header sum it
//!   computes from the IP header (a handful of additions) and only then sums the data.
//!   A complete checksum equals the pseudo-header sum by chance one time in 65536; the
//!   recomputation then writes back the same valid value, so the test is safe.
//! - **Super-packet.** A TCP packet of up to 64 KB (TSO, or the kernel's GRO on an
//!   AF_PACKET port), or a UDP packet carrying several datagrams of `gso_size` bytes
//!   each (UDP GSO), larger than any link it is meant for. [`plan`] and [`write`] cut it
//!   into packets that fit, the way a card's TSO engine does (RFC 9293 leaves segment
//!   boundaries to the sender; the kernel's `tcp_gso_segment` rules for sequence numbers,
//!   flags and IPv4 identification are followed). A UDP super-packet can be cut only
//!   where the sender's datagrams end, which only the driver's metadata tells
//!   (`gso_size`); without it the packet cannot be cut.

use crate::wire::checksum;
use crate::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};

/// TCP header flags (RFC 9293 3.1; CWR RFC 3168).
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Where the TCP or UDP header of an IP packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    pub v6: bool,
    pub tcp: bool,
    /// Offset of the TCP/UDP header = length of the IP header.
    pub offset: usize,
    /// Length of the TCP/UDP header and its payload.
    pub len: usize,
}

impl L4 {
    /// Offset of the checksum field within the L4 header.
    fn field(&self) -> usize {
        self.offset + if self.tcp { 16 } else { 6 }
    }

    fn min_header(&self) -> usize {
        if self.tcp {
            20
        } else {
            8
        }
    }
}

/// The TCP/UDP header of an unfragmented IP packet whose length fields agree with
/// `ip.len()`; `None` for anything else (other protocols, fragments, IPv6 extension
/// headers before TCP/UDP, which hosts do not send with offloads).
pub fn l4(ip: &[u8]) -> Option<L4> {
    let l4 = match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.is_fragment() || p.total_len() as usize != ip.len() {
                return None;
            }
            L4 {
                v6: false,
                tcp: match p.protocol() {
                    IpProtocol::Tcp => true,
                    IpProtocol::Udp => false,
                    _ => return None,
                },
                offset: p.header_len(),
                len: ip.len() - p.header_len(),
            }
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if p.total_len() != ip.len() {
                return None;
            }
            L4 {
                v6: true,
                tcp: match p.next_header() {
                    IpProtocol::Tcp => true,
                    IpProtocol::Udp => false,
                    _ => return None,
                },
                offset: crate::wire::ipv6::HEADER_LEN,
                len: ip.len() - crate::wire::ipv6::HEADER_LEN,
            }
        }
        _ => return None,
    };
    (l4.len >= l4.min_header()).then_some(l4)
}

/// The folded pseudo-header sum for an L4 length of `len`.
fn pseudo(ip: &[u8], l4: &L4, len: usize) -> u16 {
    let proto = if l4.tcp {
        IpProtocol::Tcp
    } else {
        IpProtocol::Udp
    };
    if l4.v6 {
        let p = Ipv6Packet::new_unchecked(ip);
        checksum::pseudo_header_v6(&p.src_addr(), &p.dst_addr(), proto, len as u32)
    } else {
        let p = Ipv4Packet::new_unchecked(ip);
        checksum::pseudo_header_v4(p.src_addr(), p.dst_addr(), proto, len as u16)
    }
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes the checksum of an L4 segment whose field holds the pseudo-header sum: the sum
/// of the segment as it is is then the pseudo-header plus the data.
fn finish(seg: &mut [u8], field: usize, udp: bool) {
    let mut c = !checksum::data(seg);
    if udp && c == 0 {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        c = 0xffff;
    }
    put16(seg, field, c);
}

/// If the TCP/UDP checksum of `ip` was left partial, complete it; true if that changed
/// the field. Anything else (complete checksums, UDP without checksum, other protocols,
/// fragments) is left untouched.
///
/// A complete checksum equals the pseudo-header sum about once in 65536 packets; it is
/// then recomputed to the value it already has, so a valid packet never changes and
/// is not counted as completed.
pub fn complete(ip: &mut [u8]) -> bool {
    let Some(l4) = l4(ip) else {
        return false;
    };
    let at = l4.field();
    let field = get16(ip, at);
    // Zero is "no checksum" for UDP over IPv4 (and never a folded nonzero sum).
    if field == 0 || field != pseudo(ip, &l4, l4.len) {
        return false;
    }
    finish(&mut ip[l4.offset..], at - l4.offset, !l4.tcp);
    get16(ip, at) != field
}

/// How to cut a super-packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub l4: L4,
    /// IP + TCP/UDP header bytes repeated in every piece.
    pub headers: usize,
    /// Payload bytes per piece (the last may have fewer).
    pub size: usize,
    pub count: usize,
}

/// Why a super-packet cannot be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncuttable {
    /// Not TCP or UDP, a fragment, or headers that do not parse.
    NotTcpUdp,
    /// UDP without the sender's datagram size.
    UdpSizeUnknown,
    /// The headers alone leave no room for payload within `max_len`.
    HeadersTooLong,
}

/// How to cut `ip` into packets of at most `max_len` bytes. `gso_size` is the sender's
/// segment size (payload bytes per piece) where the driver reports it; TCP may be cut
/// finer than the sender asked, UDP only where its datagrams end.
pub fn plan(ip: &[u8], max_len: usize, gso_size: Option<usize>) -> Result<Plan, Uncuttable> {
    let l4 = l4(ip).ok_or(Uncuttable::NotTcpUdp)?;
    let l4_header = if l4.tcp {
        let data_offset = usize::from(ip[l4.offset + 12] >> 4) * 4;
        if data_offset < 20 || data_offset > l4.len {
            return Err(Uncuttable::NotTcpUdp);
        }
        data_offset
    } else {
        8
    };
    let headers = l4.offset + l4_header;
    let room = max_len
        .checked_sub(headers)
        .filter(|&r| r > 0)
        .ok_or(Uncuttable::HeadersTooLong)?;
    let size = match (l4.tcp, gso_size) {
        (true, Some(g)) if g > 0 => g.min(room),
        (true, _) => room,
        (false, Some(g)) if g > 0 && g <= room => g,
        (false, Some(_)) => return Err(Uncuttable::HeadersTooLong),
        (false, None) => return Err(Uncuttable::UdpSizeUnknown),
    };
    let payload = ip.len() - headers;
    let count = payload.div_ceil(size).max(1);
    Ok(Plan {
        l4,
        headers,
        size,
        count,
    })
}

/// Writes piece `i` of `plan` of the super-packet `ip` into `out`, which must be exactly
/// [`Plan::piece_len`] bytes long: headers copied and fixed (lengths, IPv4 identification
/// and header checksum, TCP sequence number and flags), then a complete TCP/UDP checksum.
pub fn write(ip: &[u8], plan: &Plan, i: usize, out: &mut [u8]) {
    let l4 = &plan.l4;
    let start = plan.headers + i * plan.size;
    let end = (start + plan.size).min(ip.len());
    debug_assert_eq!(out.len(), plan.headers + end - start);
    out[..plan.headers].copy_from_slice(&ip[..plan.headers]);
    out[plan.headers..].copy_from_slice(&ip[start..end]);
    let len = out.len();
    if l4.v6 {
        Ipv6Packet::new_unchecked(&mut *out).set_payload_len((len - l4.offset) as u16);
    } else {
        let mut p = Ipv4Packet::new_unchecked(&mut *out);
        let id = p.ident();
        p.set_total_len(len as u16);
        // Consecutive identifications, as the kernel's TSO and GSO give.
        p.set_ident(id.wrapping_add(i as u16));
        p.fill_checksum();
    }
    let seg_len = len - l4.offset;
    let seg = &mut out[l4.offset..];
    if l4.tcp {
        let seq = u32::from_be_bytes(seg[4..8].try_into().unwrap());
        seg[4..8].copy_from_slice(&seq.wrapping_add((i * plan.size) as u32).to_be_bytes());
        if i > 0 {
            // Congestion window reduced: said once, in the first piece.
            seg[13] &= !CWR;
        }
        if i + 1 < plan.count {
            // The end of the sender's write and of the stream belong to the last piece.
            seg[13] &= !(FIN | PSH);
        }
    } else {
        put16(seg, 4, seg_len as u16);
        if !l4.v6 && get16(ip, l4.field()) == 0 {
            // The sender asked for no UDP checksum (IPv4 only).
            return;
        }
    }
    let field = l4.field() - l4.offset;
    put16(seg, field, pseudo(ip, l4, seg_len));
    finish(seg, field, !l4.tcp);
}

impl Plan {
    /// Length of piece `i` (IP header included).
    pub fn piece_len(&self, total: usize, i: usize) -> usize {
        let start = self.headers + i * self.size;
        self.headers + (start + self.size).min(total) - start
    }
}

#[cfg(test)]
mod tests;
