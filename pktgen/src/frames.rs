//! The frames the generator sends and reads: Ethernet, ARP, IPv4 and UDP, written into
//! plain byte buffers (the generator builds its pools in ordinary memory and copies them
//! into mbufs when it sends).
//!
//! Only what a WireGuard peer and a LAN host on an IPv4 link need: the generator answers
//! ARP for its own addresses, asks for the gateway's, and speaks UDP.

use dataplane::wire::{checksum, IpProtocol};
use std::net::Ipv4Addr;

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
/// Ethernet, IPv4 and UDP headers together.
pub const HEADERS_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ARP_LEN: usize = 28;
pub const BROADCAST: [u8; 6] = [0xff; 6];

pub type Mac = [u8; 6];

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn ethernet(b: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    b[0..6].copy_from_slice(&dst);
    b[6..12].copy_from_slice(&src);
    put16(b, 12, ethertype);
}

/// An ARP request (`op` 1) or reply (`op` 2), RFC 826, padded to the 60-byte minimum.
pub fn arp(op: u16, src_mac: Mac, src_ip: Ipv4Addr, dst_mac: Mac, dst_ip: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0u8; 60];
    let eth_dst = if op == 1 { BROADCAST } else { dst_mac };
    ethernet(&mut b, eth_dst, src_mac, ETHERTYPE_ARP);
    let a = &mut b[ETH_LEN..];
    put16(a, 0, 1); // Ethernet
    put16(a, 2, ETHERTYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a, 6, op);
    a[8..14].copy_from_slice(&src_mac);
    a[14..18].copy_from_slice(&src_ip.octets());
    if op == 2 {
        a[18..24].copy_from_slice(&dst_mac);
    }
    a[24..28].copy_from_slice(&dst_ip.octets());
    b
}

/// Addresses and ports of one UDP datagram over IPv4 on Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFlow {
    pub dst_mac: Mac,
    pub src_mac: Mac,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

/// Writes the Ethernet, IPv4 and UDP headers in front of the `payload_len` bytes of
/// payload already at `b[HEADERS_LEN..]`, with both checksums. `b` must hold exactly
/// `HEADERS_LEN + payload_len` bytes. The identification is `ident`, DF is set (as
/// WireGuard peers and TCP hosts send), TTL 64.
pub fn udp(b: &mut [u8], flow: &UdpFlow, ident: u16) {
    let payload_len = b.len() - HEADERS_LEN;
    ethernet(b, flow.dst_mac, flow.src_mac, ETHERTYPE_IPV4);
    let ip_len = (IPV4_LEN + UDP_LEN + payload_len) as u16;
    {
        let ip = &mut b[ETH_LEN..ETH_LEN + IPV4_LEN];
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip, 2, ip_len);
        put16(ip, 4, ident);
        put16(ip, 6, 0x4000);
        ip[8] = 64;
        ip[9] = 17;
        put16(ip, 10, 0);
        ip[12..16].copy_from_slice(&flow.src.octets());
        ip[16..20].copy_from_slice(&flow.dst.octets());
        let sum = !checksum::data(ip);
        put16(ip, 10, sum);
    }
    let udp_len = (UDP_LEN + payload_len) as u16;
    let u = &mut b[ETH_LEN + IPV4_LEN..];
    put16(u, 0, flow.sport);
    put16(u, 2, flow.dport);
    put16(u, 4, udp_len);
    put16(u, 6, 0);
    let pseudo = checksum::pseudo_header_v4(flow.src, flow.dst, IpProtocol::Udp, udp_len);
    let mut sum = !checksum::combine(&[pseudo, checksum::data(u)]);
    if sum == 0 {
        // RFC 768: a computed zero is sent as all ones; zero means "no checksum".
        sum = 0xffff;
    }
    put16(u, 6, sum);
}

/// What a received frame is, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Arp {
        op: u16,
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
        target_ip: Ipv4Addr,
    },
    Udp {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        payload: &'a [u8],
    },
    /// Anything else: IPv6, other IP protocols, fragments, damaged headers.
    Other,
}

/// Reads a received frame. UDP is returned only when the IPv4 header is intact, the
/// datagram is not a fragment, and the lengths agree; the UDP checksum is not checked
/// (the WireGuard tag, or the payload's own check, covers what matters).
pub fn parse(b: &[u8]) -> Frame<'_> {
    if b.len() < ETH_LEN {
        return Frame::Other;
    }
    match get16(b, 12) {
        ETHERTYPE_ARP if b.len() >= ETH_LEN + ARP_LEN => {
            let a = &b[ETH_LEN..];
            if get16(a, 0) != 1 || get16(a, 2) != ETHERTYPE_IPV4 || a[4] != 6 || a[5] != 4 {
                return Frame::Other;
            }
            let mut sender_mac = [0u8; 6];
            sender_mac.copy_from_slice(&a[8..14]);
            Frame::Arp {
                op: get16(a, 6),
                sender_mac,
                sender_ip: ip_at(a, 14),
                target_ip: ip_at(a, 24),
            }
        }
        ETHERTYPE_IPV4 if b.len() >= HEADERS_LEN => {
            let ip = &b[ETH_LEN..];
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < IPV4_LEN || ip[9] != 17 {
                return Frame::Other;
            }
            let total = usize::from(get16(ip, 2));
            let frag = get16(ip, 6);
            if frag & 0x3fff != 0 || total < ihl + UDP_LEN || total > ip.len() {
                return Frame::Other;
            }
            if checksum::data(&ip[..ihl]) != 0xffff {
                return Frame::Other;
            }
            let u = &ip[ihl..total];
            let udp_len = usize::from(get16(u, 4));
            if udp_len < UDP_LEN || udp_len > u.len() {
                return Frame::Other;
            }
            Frame::Udp {
                src: ip_at(ip, 12),
                dst: ip_at(ip, 16),
                sport: get16(u, 0),
                dport: get16(u, 2),
                payload: &u[UDP_LEN..udp_len],
            }
        }
        _ => Frame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [2, 0, 0, 0, 0, 1];
    const B: Mac = [2, 0, 0, 0, 0, 2];

    #[test]
    fn udp_frames_read_back_with_valid_checksums() {
        let flow = UdpFlow {
            dst_mac: B,
            src_mac: A,
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            sport: 40000,
            dport: 51820,
        };
        for len in [0usize, 1, 22, 1377] {
            let mut b = vec![0u8; HEADERS_LEN + len];
            for (i, x) in b[HEADERS_LEN..].iter_mut().enumerate() {
                *x = i as u8;
            }
            udp(&mut b, &flow, 7);
            // The UDP checksum over pseudo-header, header and payload sums to all ones.
            let u = &b[ETH_LEN + IPV4_LEN..];
            let pseudo =
                checksum::pseudo_header_v4(flow.src, flow.dst, IpProtocol::Udp, u.len() as u16);
            assert_eq!(checksum::combine(&[pseudo, checksum::data(u)]), 0xffff);
            match parse(&b) {
                Frame::Udp {
                    src,
                    dst,
                    sport,
                    dport,
                    payload,
                } => {
                    assert_eq!((src, dst, sport, dport), (flow.src, flow.dst, 40000, 51820));
                    assert_eq!(payload, &b[HEADERS_LEN..]);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn arp_requests_and_replies_read_back() {
        let ip_a = Ipv4Addr::new(198, 18, 0, 1);
        let ip_b = Ipv4Addr::new(198, 18, 0, 2);
        let req = arp(1, A, ip_a, [0; 6], ip_b);
        assert_eq!(&req[..6], &BROADCAST);
        assert_eq!(
            parse(&req),
            Frame::Arp {
                op: 1,
                sender_mac: A,
                sender_ip: ip_a,
                target_ip: ip_b
            }
        );
        let rep = arp(2, B, ip_b, A, ip_a);
        assert_eq!(&rep[..6], &A);
        assert!(matches!(parse(&rep), Frame::Arp { op: 2, sender_mac, .. } if sender_mac == B));
    }

    #[test]
    fn damaged_or_foreign_frames_are_other() {
        let flow = UdpFlow {
            dst_mac: B,
            src_mac: A,
            src: Ipv4Addr::new(198, 18, 0, 1),
            dst: Ipv4Addr::new(198, 18, 0, 2),
            sport: 1,
            dport: 2,
        };
        let mut b = vec![0u8; HEADERS_LEN + 10];
        udp(&mut b, &flow, 1);
        let mut bad = b.clone();
        bad[ETH_LEN + 8] ^= 1; // TTL: header checksum no longer holds
        assert_eq!(parse(&bad), Frame::Other);
        let mut frag = b.clone();
        frag[ETH_LEN + 6] = 0x20; // more fragments
        assert_eq!(parse(&frag), Frame::Other);
        assert_eq!(parse(&b[..20]), Frame::Other);
        let mut v6 = b.clone();
        v6[12] = 0x86;
        v6[13] = 0xdd;
        assert_eq!(parse(&v6), Frame::Other);
    }
}
