//! Frames the control thread builds: UDP datagrams for handshake messages, ARP, and
//! neighbor discovery. All are written into a fresh buffer from the pool.

use dataplane::buf::PacketBuf;
use dataplane::wire::{
    arp, ethernet, icmpv6, ipv4, ipv6, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, UdpPacket,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where a received datagram came from and went to, read off its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub src_mac: [u8; 6],
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Offset and length of the UDP payload in the frame.
    pub payload: (usize, usize),
}

/// Parse an Ethernet/IP/UDP frame.
pub fn parse_udp(frame: &[u8]) -> Option<Datagram> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src_ip, dst_ip, l4, l4_len) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ethernet::HEADER_LEN + ip.header_len(),
                ip.payload().len(),
            )
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Udp {
                return None;
            }
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                ethernet::HEADER_LEN + ipv6::HEADER_LEN,
                ip.payload().len(),
            )
        }
        _ => return None,
    };
    let udp = UdpPacket::new_checked(&frame[l4..l4 + l4_len]).ok()?;
    Some(Datagram {
        src_mac: eth.src_addr().0,
        src: SocketAddr::new(src_ip, udp.src_port()),
        dst: SocketAddr::new(dst_ip, udp.dst_port()),
        payload: (l4 + dataplane::wire::udp::HEADER_LEN, udp.payload().len()),
    })
}

/// Write `payload` as a UDP datagram from `src` to `dst` into `buf` (which must be
/// empty), with an Ethernet header from `src_mac` to `dst_mac`.
pub fn write_udp<B: PacketBuf>(
    buf: &mut B,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> bool {
    let ip_len = match dst {
        SocketAddr::V4(_) => ipv4::HEADER_LEN,
        SocketAddr::V6(_) => ipv6::HEADER_LEN,
    };
    let udp_len = dataplane::wire::udp::HEADER_LEN + payload.len();
    let total = ethernet::HEADER_LEN + ip_len + udp_len;
    let Some(data) = buf.append(total) else {
        return false;
    };
    let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
    eth.set_dst_addr(MacAddr(dst_mac));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(if dst.is_ipv4() {
        EtherType::Ipv4
    } else {
        EtherType::Ipv6
    });
    let l3 = &mut data[ethernet::HEADER_LEN..];
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            write_ipv4(l3, s, d, IpProtocol::Udp, udp_len);
            let mut u = UdpPacket::new_unchecked(&mut l3[ipv4::HEADER_LEN..]);
            fill_udp(&mut u, src.port(), dst.port(), payload);
            u.fill_checksum_v4(s, d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            write_ipv6(l3, &s, &d, IpProtocol::Udp, udp_len, 64);
            let mut u = UdpPacket::new_unchecked(&mut l3[ipv6::HEADER_LEN..]);
            fill_udp(&mut u, src.port(), dst.port(), payload);
            u.fill_checksum_v6(&s, &d);
        }
        _ => return false,
    }
    true
}

fn fill_udp(u: &mut UdpPacket<&mut [u8]>, sport: u16, dport: u16, payload: &[u8]) {
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len((dataplane::wire::udp::HEADER_LEN + payload.len()) as u16);
    u.set_checksum(0);
    u.payload_mut().copy_from_slice(payload);
}

/// Puts an Ethernet header from `src_mac` to `dst_mac` in front of the IP packet in
/// `buf`, with the EtherType of its version; false without headroom or IP packet.
pub fn push_ethernet<B: PacketBuf>(buf: &mut B, dst_mac: [u8; 6], src_mac: [u8; 6]) -> bool {
    let ethertype = match buf.data().first().map(|b| b >> 4) {
        Some(4) => EtherType::Ipv4,
        Some(6) => EtherType::Ipv6,
        _ => return false,
    };
    let Some(hdr) = buf.prepend(ethernet::HEADER_LEN) else {
        return false;
    };
    let mut eth = EthernetFrame::new_unchecked(hdr);
    eth.set_dst_addr(MacAddr(dst_mac));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(ethertype);
    true
}

pub fn write_ipv4(b: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, l4: usize) {
    let mut ip = Ipv4Packet::new_unchecked(b);
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len((ipv4::HEADER_LEN + l4) as u16);
    ip.set_ident(0);
    ip.clear_flags();
    ip.set_frag_offset(0);
    ip.set_ttl(64);
    ip.set_protocol(proto);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

pub fn write_ipv6(
    b: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    proto: IpProtocol,
    l4: usize,
    hop_limit: u8,
) {
    let mut ip = Ipv6Packet::new_unchecked(b);
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len(l4 as u16);
    ip.set_next_header(proto);
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

/// An ARP packet (request or reply) in an Ethernet frame.
pub fn write_arp<B: PacketBuf>(
    buf: &mut B,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    repr: &ArpRepr,
) -> bool {
    let Some(data) = buf.append(ethernet::HEADER_LEN + arp::PACKET_LEN) else {
        return false;
    };
    let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
    eth.set_dst_addr(MacAddr(dst_mac));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(EtherType::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(
        &mut data[ethernet::HEADER_LEN..],
    ));
    true
}

/// The flags of a neighbor advertisement (RFC 4861 4.4) besides Override, which wgdp
/// always sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaFlags {
    /// It answers a solicitation.
    pub solicited: bool,
    /// The sender is a router.
    pub router: bool,
}

/// A neighbor solicitation (RFC 4861 4.3) for `target`, or an advertisement (4.4) of
/// `target` answering a solicitation, in an Ethernet frame. Both carry our link-layer
/// address as an option; `flags` apply to an advertisement.
#[allow(clippy::too_many_arguments)]
pub fn write_nd<B: PacketBuf>(
    buf: &mut B,
    message: Icmpv6Message,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    target: &Ipv6Addr,
    flags: NaFlags,
) -> bool {
    let icmp_len = icmpv6::ND_HEADER_LEN + icmpv6::LL_ADDR_OPTION_LEN;
    let Some(data) = buf.append(ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmp_len) else {
        return false;
    };
    let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
    eth.set_dst_addr(MacAddr(dst_mac));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(EtherType::Ipv6);
    let l3 = &mut data[ethernet::HEADER_LEN..];
    // RFC 4861 6.1.2 / 7.1.2: ND messages are sent with hop limit 255 and refused otherwise.
    write_ipv6(l3, src, dst, IpProtocol::Icmpv6, icmp_len, 255);
    let mut icmp = Icmpv6Packet::new_unchecked(&mut l3[ipv6::HEADER_LEN..]);
    icmp.set_msg_type(message);
    icmp.set_msg_code(0);
    icmp.clear_rest_of_header();
    icmp.set_target_addr(target);
    let option = if message == Icmpv6Message::NeighborAdvert {
        icmp.set_solicited_flag(flags.solicited);
        icmp.set_router_flag(flags.router);
        icmp.set_override_flag(true);
        icmpv6::LinkLayerOption::Target
    } else {
        icmpv6::LinkLayerOption::Source
    };
    icmp.set_ll_addr_option(option, MacAddr(src_mac));
    icmp.fill_checksum(src, dst);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::buf::HeapBuf;

    #[test]
    fn udp_round_trip_v4_and_v6() {
        for (src, dst) in [
            ("198.19.0.2:51820", "198.19.0.1:40000"),
            ("[2001:2:0:1::2]:51820", "[2001:2:0:1::1]:40000"),
        ] {
            let mut b = HeapBuf::new(&[]);
            let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            assert!(write_udp(&mut b, [1; 6], [2; 6], src, dst, b"hello"));
            let d = parse_udp(b.data()).unwrap();
            assert_eq!((d.src, d.dst, d.src_mac), (src, dst, [1; 6]));
            assert_eq!(&b.data()[d.payload.0..d.payload.0 + d.payload.1], b"hello");
        }
    }
}
