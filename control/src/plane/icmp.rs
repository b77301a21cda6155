//! ICMP errors about packets the gateway cannot forward: time exceeded when the TTL or
//! hop limit runs out, and "fragmentation needed" (IPv4 with DF) or "packet too big"
//! (IPv6) when a packet for a peer is larger than the tunnel MTU. Without the latter,
//! path MTU discovery through the tunnel fails and TCP stalls on full-sized segments.
//!
//! Contract: [`needed`] reads a packet the route stage punted (it starts at the IP
//! header and has not been changed) and says which error it needs and to whom, or why
//! none may be sent; [`write`] builds the error as an IP packet in an empty buffer. The
//! caller chooses the source address, rate-limits with [`RateLimit`] and sends.

use super::frames::{write_ipv4, write_ipv6};
use dataplane::buf::PacketBuf;
use dataplane::wire::{
    icmpv4, icmpv6, ipv4, ipv6, Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet,
};
use std::net::IpAddr;

/// Which error a packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TTL or hop limit exhausted in transit (ICMPv4 type 11 code 0, ICMPv6 type 3
    /// code 0).
    TimeExceeded,
    /// Larger than `mtu` and not to be fragmented (ICMPv4 type 3 code 4 with the
    /// next-hop MTU, RFC 1191; ICMPv6 type 2, RFC 4443 3.2).
    TooBig { mtu: u16 },
}

/// Why no error is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a whole IP header.
    Malformed,
    /// The packet is itself an ICMP error (RFC 1812 4.3.2.7, RFC 4443 2.4(e.1)).
    AboutError,
    /// An IPv4 fragment other than the first (RFC 1812 4.3.2.7).
    Fragment,
    /// Its source does not name a single host: unspecified, multicast, broadcast or
    /// loopback (RFC 1812 4.3.2.7, RFC 4443 2.4(e.6)).
    BadSource,
    /// Neither its TTL nor its size calls for an error.
    NotNeeded,
}

/// The error `ip` needs given the tunnel `mtu`, and the address to send it to (the
/// packet's source).
pub fn needed(ip: &[u8], mtu: u16) -> Result<(Kind, IpAddr), Refusal> {
    let (src, ttl, about_error) = match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(ip).map_err(|_| Refusal::Malformed)?;
            if p.frag_offset() != 0 {
                return Err(Refusal::Fragment);
            }
            let s = p.src_addr();
            if s.is_unspecified() || s.is_multicast() || s.is_broadcast() || s.is_loopback() {
                return Err(Refusal::BadSource);
            }
            let about_error = p.protocol() == IpProtocol::Icmp
                && p.payload().first().is_some_and(|&t| is_icmpv4_error(t));
            (IpAddr::V4(s), p.ttl(), about_error)
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(ip).map_err(|_| Refusal::Malformed)?;
            let s = p.src_addr();
            if s.is_unspecified() || s.is_multicast() || s.is_loopback() {
                return Err(Refusal::BadSource);
            }
            // Only an ICMPv6 header right after the fixed header is recognised; an
            // error behind extension headers is not, which RFC 4443 2.4(e) tolerates
            // ("if the type cannot be determined" the packet is still answered).
            let about_error = p.next_header() == IpProtocol::Icmpv6
                && p.payload()
                    .first()
                    .is_some_and(|&t| Icmpv6Message::from(t).is_error());
            (IpAddr::V6(s), p.hop_limit(), about_error)
        }
        _ => return Err(Refusal::Malformed),
    };
    if about_error {
        return Err(Refusal::AboutError);
    }
    if ttl <= 1 {
        Ok((Kind::TimeExceeded, src))
    } else if ip.len() > usize::from(mtu) {
        Ok((Kind::TooBig { mtu }, src))
    } else {
        Err(Refusal::NotNeeded)
    }
}

/// ICMPv4 error types (RFC 1812 4.3.2.7 lists them): destination unreachable, source
/// quench, redirect, time exceeded, parameter problem.
fn is_icmpv4_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// Writes the `kind` error from `src` about `original` into `buf` (empty), as an IP
/// packet of at most `limit` bytes: as much of the original as fits under that limit
/// and under the size each protocol allows (576 bytes for ICMPv4, RFC 1812 4.3.2.3;
/// 1280 for ICMPv6, RFC 4443 2.4(c)). False if `src` and the original are of
/// different families, the original is malformed, or the buffer is too small.
pub fn write<B: PacketBuf>(
    buf: &mut B,
    kind: Kind,
    src: IpAddr,
    original: &[u8],
    limit: usize,
) -> bool {
    match src {
        IpAddr::V4(src) => {
            let Ok(orig) = Ipv4Packet::new_checked(original) else {
                return false;
            };
            let dst = orig.src_addr();
            let max = limit.min(icmpv4::MAX_ERROR_PACKET_LEN);
            let head = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
            let Some(quote) = max.checked_sub(head).map(|q| q.min(original.len())) else {
                return false;
            };
            let Some(data) = buf.append(head + quote) else {
                return false;
            };
            write_ipv4(data, src, dst, IpProtocol::Icmp, icmpv4::HEADER_LEN + quote);
            let mut icmp = Icmpv4Packet::new_unchecked(&mut data[ipv4::HEADER_LEN..]);
            icmp.clear_rest_of_header();
            match kind {
                Kind::TimeExceeded => {
                    icmp.set_msg_type(Icmpv4Message::TimeExceeded);
                    icmp.set_msg_code(icmpv4::time_exceeded::TTL_EXPIRED);
                }
                Kind::TooBig { mtu } => {
                    icmp.set_msg_type(Icmpv4Message::DstUnreachable);
                    icmp.set_msg_code(icmpv4::dst_unreachable::FRAG_NEEDED);
                    icmp.set_next_hop_mtu(mtu);
                }
            }
            icmp.data_mut().copy_from_slice(&original[..quote]);
            icmp.fill_checksum();
            true
        }
        IpAddr::V6(src) => {
            let Ok(orig) = Ipv6Packet::new_checked(original) else {
                return false;
            };
            let dst = orig.src_addr();
            let max = limit.min(icmpv6::MAX_ERROR_PACKET_LEN);
            let head = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
            let Some(quote) = max.checked_sub(head).map(|q| q.min(original.len())) else {
                return false;
            };
            let Some(data) = buf.append(head + quote) else {
                return false;
            };
            write_ipv6(
                data,
                &src,
                &dst,
                IpProtocol::Icmpv6,
                icmpv6::HEADER_LEN + quote,
                64,
            );
            let mut icmp = Icmpv6Packet::new_unchecked(&mut data[ipv6::HEADER_LEN..]);
            icmp.clear_rest_of_header();
            match kind {
                Kind::TimeExceeded => {
                    icmp.set_msg_type(Icmpv6Message::TimeExceeded);
                    icmp.set_msg_code(icmpv6::time_exceeded::HOP_LIMIT_EXCEEDED);
                }
                Kind::TooBig { mtu } => {
                    icmp.set_msg_type(Icmpv6Message::PacketTooBig);
                    icmp.set_msg_code(0);
                    icmp.set_mtu(u32::from(mtu));
                }
            }
            icmp.data_mut()[..quote].copy_from_slice(&original[..quote]);
            icmp.fill_checksum(&src, &dst);
            true
        }
    }
}

/// A token bucket for the errors of the whole gateway. RFC 1812 4.3.2.8 and RFC 4443
/// 2.4(f) require limiting the rate of ICMP errors; the figures are Linux's defaults
/// (`net.ipv4.icmp_msgs_per_sec` = 1000, `icmp_msgs_burst` = 50, Documentation/
/// networking/ip-sysctl.rst).
#[derive(Debug, Default)]
pub struct RateLimit {
    bucket: Option<super::load::TokenBucket>,
}

impl RateLimit {
    /// One message per millisecond on average.
    pub const COST: u64 = 1_000_000;
    /// Fifty messages at once.
    pub const BURST: u64 = 50 * Self::COST;

    /// Whether a message may go now (`now` in nanoseconds); if so, it is paid for.
    pub fn allow(&mut self, now: u64) -> bool {
        self.bucket
            .get_or_insert_with(|| super::load::TokenBucket::full(Self::BURST, now))
            .take(now, Self::COST, Self::BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::buf::HeapBuf;
    use dataplane::wire::checksum;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(len: usize, ttl: u8, df: bool, proto: IpProtocol, first: u8) -> Vec<u8> {
        let mut b = vec![0u8; len];
        write_ipv4(
            &mut b,
            Ipv4Addr::new(198, 18, 1, 10),
            Ipv4Addr::new(198, 19, 2, 2),
            proto,
            len - ipv4::HEADER_LEN,
        );
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_ttl(ttl);
        p.set_dont_frag(df);
        p.fill_checksum();
        b[ipv4::HEADER_LEN] = first;
        b
    }

    fn v6(len: usize, hops: u8, proto: IpProtocol, first: u8) -> Vec<u8> {
        let mut b = vec![0u8; len];
        write_ipv6(
            &mut b,
            &"2001:2:0:1::10".parse().unwrap(),
            &"2001:2:0:2::2".parse().unwrap(),
            proto,
            len - ipv6::HEADER_LEN,
            hops,
        );
        b[ipv6::HEADER_LEN] = first;
        b
    }

    #[test]
    fn too_big_v4_quotes_576_bytes() {
        let orig = v4(1500, 64, true, IpProtocol::Tcp, 0);
        let (kind, to) = needed(&orig, 1420).unwrap();
        assert_eq!(kind, Kind::TooBig { mtu: 1420 });
        assert_eq!(to, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10)));
        let mut b = HeapBuf::new(&[]);
        let src = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1));
        assert!(write(&mut b, kind, src, &orig, usize::MAX));
        let ip = Ipv4Packet::new_checked(b.data()).unwrap();
        assert_eq!(b.data().len(), 576);
        assert!(ip.verify_checksum());
        assert_eq!(ip.protocol(), IpProtocol::Icmp);
        assert_eq!(IpAddr::V4(ip.src_addr()), src);
        assert_eq!(IpAddr::V4(ip.dst_addr()), to);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), Icmpv4Message::DstUnreachable);
        assert_eq!(icmp.msg_code(), icmpv4::dst_unreachable::FRAG_NEEDED);
        assert_eq!(icmp.next_hop_mtu(), 1420);
        assert_eq!(icmp.data(), &orig[..548]);
    }

    #[test]
    fn time_exceeded_v6_with_checksum() {
        let orig = v6(200, 1, IpProtocol::Udp, 0);
        let (kind, to) = needed(&orig, 1420).unwrap();
        assert_eq!(kind, Kind::TimeExceeded);
        let src: Ipv6Addr = "2001:2:0:1::1".parse().unwrap();
        let mut b = HeapBuf::new(&[]);
        assert!(write(&mut b, kind, IpAddr::V6(src), &orig, usize::MAX));
        let ip = Ipv6Packet::new_checked(b.data()).unwrap();
        assert_eq!(IpAddr::V6(ip.dst_addr()), to);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Message::TimeExceeded);
        assert_eq!(&ip.payload()[icmpv6::HEADER_LEN..], &orig[..]);
        let pseudo = checksum::pseudo_header_v6(
            &src,
            &ip.dst_addr(),
            IpProtocol::Icmpv6,
            ip.payload().len() as u32,
        );
        assert_eq!(
            checksum::combine(&[pseudo, checksum::data(ip.payload())]),
            0xffff
        );
    }

    #[test]
    fn too_big_v6_fits_the_limit() {
        let orig = v6(1500, 64, IpProtocol::Tcp, 0);
        assert_eq!(needed(&orig, 1420).unwrap().0, Kind::TooBig { mtu: 1420 });
        let mut b = HeapBuf::new(&[]);
        let src = IpAddr::V6("2001:2:0:1::1".parse().unwrap());
        assert!(write(&mut b, Kind::TooBig { mtu: 1420 }, src, &orig, 1280));
        assert_eq!(b.data().len(), 1280);
        let mut b = HeapBuf::new(&[]);
        assert!(write(&mut b, Kind::TooBig { mtu: 1420 }, src, &orig, 600));
        assert_eq!(b.data().len(), 600);
        let icmp = Icmpv6Packet::new_checked(&b.data()[ipv6::HEADER_LEN..]).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Message::PacketTooBig);
        assert_eq!(icmp.mtu(), 1420);
    }

    #[test]
    fn refusals() {
        // An ICMP error about an ICMP error.
        let e = v4(100, 1, false, IpProtocol::Icmp, 11);
        assert_eq!(needed(&e, 1420), Err(Refusal::AboutError));
        // Echo requests are answered.
        let ping = v4(100, 1, false, IpProtocol::Icmp, 8);
        assert_eq!(needed(&ping, 1420).unwrap().0, Kind::TimeExceeded);
        let e6 = v6(100, 1, IpProtocol::Icmpv6, 1);
        assert_eq!(needed(&e6, 1420), Err(Refusal::AboutError));
        let ping6 = v6(100, 1, IpProtocol::Icmpv6, 128);
        assert_eq!(needed(&ping6, 1420).unwrap().0, Kind::TimeExceeded);
        // Not the first fragment.
        let mut frag = v4(100, 1, false, IpProtocol::Udp, 0);
        Ipv4Packet::new_unchecked(&mut frag[..]).set_frag_offset(64);
        assert_eq!(needed(&frag, 1420), Err(Refusal::Fragment));
        // A source that is no single host.
        let mut bcast = v4(100, 1, false, IpProtocol::Udp, 0);
        Ipv4Packet::new_unchecked(&mut bcast[..]).set_src_addr(Ipv4Addr::BROADCAST);
        assert_eq!(needed(&bcast, 1420), Err(Refusal::BadSource));
        let mut mc6 = v6(100, 1, IpProtocol::Udp, 0);
        Ipv6Packet::new_unchecked(&mut mc6[..]).set_src_addr(&"ff02::1".parse().unwrap());
        assert_eq!(needed(&mc6, 1420), Err(Refusal::BadSource));
        // Nothing wrong with it, or not IP at all.
        assert_eq!(
            needed(&v4(100, 64, true, IpProtocol::Udp, 0), 1420),
            Err(Refusal::NotNeeded)
        );
        assert_eq!(needed(&[0x45, 0, 0], 1420), Err(Refusal::Malformed));
        assert_eq!(needed(&[], 1420), Err(Refusal::Malformed));
        // Mixed families or no room.
        let mut b = HeapBuf::new(&[]);
        let src6 = IpAddr::V6("2001:2::1".parse().unwrap());
        assert!(!write(&mut b, Kind::TimeExceeded, src6, &ping, 1280));
        let src4 = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 1));
        assert!(!write(&mut b, Kind::TimeExceeded, src4, &ping, 20));
    }

    #[test]
    fn rate_limit_bursts_then_paces() {
        let mut r = RateLimit::default();
        let t0 = 5_000_000_000;
        let burst = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(burst, 50);
        assert!(!r.allow(t0 + 500_000));
        assert!(r.allow(t0 + 1_000_000));
        // A long pause earns no more than a burst.
        let later = t0 + 10_000_000_000;
        assert_eq!((0..100).filter(|_| r.allow(later)).count(), 50);
    }
}
