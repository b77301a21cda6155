//! Ethernet -> IPv4/IPv6 -> UDP/ICMP/ICMPv6 views on arbitrary bytes: once as a frame,
//! and once each view straight on the bytes. After `new_checked` succeeds no accessor
//! may panic, the lengths it promised must hold, and filling a checksum must make it
//! verify. The Internet checksum is compared with a byte-at-a-time reference, and its
//! incremental update (RFC 1624) must keep a message verifying.

#![no_main]

use dataplane::wire::{
    checksum, icmpv6, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Message, Icmpv6Packet,
    IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket,
};
use libfuzzer_sys::fuzz_target;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    checksum_properties(data);

    match EthernetFrame::new_checked(data) {
        Ok(eth) => {
            assert!(data.len() >= 14);
            assert_eq!(eth.payload().len(), data.len() - 14);
            black_box((eth.dst_addr(), eth.src_addr(), eth.dst_addr().is_unicast()));
            match eth.ethertype() {
                EtherType::Ipv4 => ipv4(eth.payload()),
                EtherType::Ipv6 => ipv6(eth.payload()),
                other => assert_eq!(EtherType::from(u16::from(other)), other),
            }
        }
        Err(_) => assert!(data.len() < 14),
    }

    // Every view directly on the bytes: the fuzzer need not find an Ethernet header to
    // reach the inner parsers.
    ipv4(data);
    ipv6(data);
    udp(
        data,
        &Addrs::V4(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)),
    );
    icmpv4(data);
    icmpv6(data, &Ipv6Addr::LOCALHOST, &Ipv6Addr::UNSPECIFIED);
});

enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// RFC 1071 one byte pair at a time: the reference for the word-at-a-time sum.
fn reference_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        sum += (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn checksum_properties(data: &[u8]) {
    let sum = checksum::data(data);
    let reference = reference_sum(data);
    // 0x0000 and 0xffff are both zero in one's complement; only an all-zero input can
    // sum to 0x0000 in the reference, and the fast sum may fold it either way.
    assert!(
        sum == reference || (sum | reference == 0xffff && (sum == 0 || reference == 0)),
        "checksum::data {sum:#06x}, reference {reference:#06x}"
    );

    // Incremental update: a message with a correct checksum in word 0 still verifies
    // after word `k` changes and the checksum is patched (RFC 1624 equation 3).
    if data.len() >= 8 {
        let mut buf = data[4..].to_vec();
        buf.truncate(buf.len() & !1);
        if buf.len() >= 4 {
            buf[0] = 0;
            buf[1] = 0;
            let cs = !checksum::data(&buf);
            buf[..2].copy_from_slice(&cs.to_be_bytes());
            assert_eq!(checksum::data(&buf), 0xffff, "a filled checksum verifies");
            let words = buf.len() / 2;
            let k = 1 + usize::from(data[0]) % (words - 1);
            let old = u16::from_be_bytes([buf[2 * k], buf[2 * k + 1]]);
            let new = u16::from_be_bytes([data[1], data[2]]);
            buf[2 * k..2 * k + 2].copy_from_slice(&new.to_be_bytes());
            let patched = checksum::update(cs, old, new);
            buf[..2].copy_from_slice(&patched.to_be_bytes());
            // RFC 1624 section 3: equation 3 yields +0 where recomputing yields -0 only
            // when every covered word is zero, which no IP header is (its version).
            let all_zero = buf[2..].iter().all(|&b| b == 0);
            assert!(
                all_zero || checksum::data(&buf) == 0xffff,
                "RFC 1624 update of {cs:#06x} for {old:#06x} -> {new:#06x}"
            );
        }
    }

    // Pseudo-headers against the bytes they stand for.
    if data.len() >= 40 {
        let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
        let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
        let len = u16::from_be_bytes([data[8], data[9]]);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, data[10]]);
        bytes.extend_from_slice(&len.to_be_bytes());
        let fast = checksum::pseudo_header_v4(src, dst, IpProtocol::from(data[10]), len);
        same_sum(fast, reference_sum(&bytes));

        let src6 = Ipv6Addr::from(<[u8; 16]>::try_from(&data[..16]).unwrap());
        let dst6 = Ipv6Addr::from(<[u8; 16]>::try_from(&data[16..32]).unwrap());
        let len6 = u32::from_be_bytes(data[32..36].try_into().unwrap());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src6.octets());
        bytes.extend_from_slice(&dst6.octets());
        bytes.extend_from_slice(&len6.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, data[36]]);
        let fast = checksum::pseudo_header_v6(&src6, &dst6, IpProtocol::from(data[36]), len6);
        same_sum(fast, reference_sum(&bytes));
    }
}

/// Equal as one's-complement numbers (0x0000 and 0xffff are both zero).
fn same_sum(a: u16, b: u16) {
    let norm = |x: u16| if x == 0xffff { 0 } else { x };
    assert_eq!(norm(a), norm(b), "sums {a:#06x} and {b:#06x}");
}

fn ipv4(buf: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(buf) else {
        return;
    };
    let header_len = ip.header_len();
    let total_len = usize::from(ip.total_len());
    assert_eq!(ip.version(), 4);
    assert!(20 <= header_len && header_len <= total_len && total_len <= buf.len());
    assert_eq!(ip.payload().len(), total_len - header_len);
    assert_eq!(ip.options().len(), header_len - 20);
    black_box((
        ip.dscp(),
        ip.ecn(),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
        ip.checksum(),
        ip.src_addr(),
        ip.dst_addr(),
    ));
    let valid = ip.verify_checksum();

    let mut copy = buf.to_vec();
    let mut m = Ipv4Packet::new_checked(&mut copy[..]).expect("same bytes");
    if m.decrement_ttl() {
        assert!(ip.ttl() > 1);
        assert_eq!(m.ttl(), ip.ttl() - 1);
        if valid {
            assert!(m.verify_checksum(), "decrement_ttl broke a valid checksum");
        }
    } else {
        assert!(ip.ttl() <= 1);
        assert_eq!(
            &copy[..],
            buf,
            "a refused decrement leaves the packet alone"
        );
    }
    let mut m = Ipv4Packet::new_checked(&mut copy[..]).expect("same lengths");
    m.fill_checksum();
    assert!(m.verify_checksum());
    let offset = ip.frag_offset() & !7;
    m.set_frag_offset(offset);
    m.set_dont_frag(!ip.dont_frag());
    m.set_more_frags(!ip.more_frags());
    m.set_ecn(ip.ecn() ^ 1);
    assert_eq!(m.frag_offset(), offset);
    assert_eq!(m.dont_frag(), !ip.dont_frag());
    assert_eq!(m.more_frags(), !ip.more_frags());
    assert_eq!(m.ecn(), ip.ecn() ^ 1);
    assert_eq!(m.dscp(), ip.dscp());
    assert!(
        m.check_len().is_ok(),
        "flag setters do not touch the lengths"
    );
    m.options_mut().fill(1);
    m.payload_mut().fill(0);

    let addrs = Addrs::V4(ip.src_addr(), ip.dst_addr());
    match ip.protocol() {
        IpProtocol::Udp => udp(ip.payload(), &addrs),
        IpProtocol::Icmp => icmpv4(ip.payload()),
        _ => {}
    }
}

fn ipv6(buf: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(buf) else {
        return;
    };
    assert_eq!(ip.version(), 6);
    assert_eq!(ip.total_len(), 40 + usize::from(ip.payload_len()));
    assert!(ip.total_len() <= buf.len());
    assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
    black_box((
        ip.traffic_class(),
        ip.flow_label(),
        ip.src_addr(),
        ip.dst_addr(),
    ));

    let mut copy = buf.to_vec();
    let mut m = Ipv6Packet::new_checked(&mut copy[..]).expect("same bytes");
    if m.decrement_hop_limit() {
        assert_eq!(m.hop_limit(), ip.hop_limit() - 1);
    } else {
        assert!(ip.hop_limit() <= 1);
    }
    m.set_traffic_class(!ip.traffic_class());
    m.set_flow_label(ip.flow_label() ^ 0x5_5555);
    assert_eq!(m.traffic_class(), !ip.traffic_class());
    assert_eq!(m.flow_label(), ip.flow_label() ^ 0x5_5555);
    assert_eq!(
        m.version(),
        6,
        "traffic class and flow label leave the version"
    );
    assert_eq!(m.payload_len(), ip.payload_len());

    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.next_header() {
        IpProtocol::Udp => udp(ip.payload(), &Addrs::V6(src, dst)),
        IpProtocol::Icmpv6 => icmpv6(ip.payload(), &src, &dst),
        _ => {}
    }
}

fn udp(buf: &[u8], addrs: &Addrs) {
    let Ok(u) = UdpPacket::new_checked(buf) else {
        return;
    };
    let len = usize::from(u.len());
    assert!(8 <= len && len <= buf.len());
    assert_eq!(u.payload().len(), len - 8);
    black_box((u.src_port(), u.dst_port(), u.checksum()));
    let mut copy = buf.to_vec();
    let mut m = UdpPacket::new_checked(&mut copy[..]).expect("same bytes");
    match addrs {
        Addrs::V4(s, d) => {
            black_box(u.verify_checksum_v4(*s, *d));
            m.fill_checksum_v4(*s, *d);
            assert_ne!(m.checksum(), 0, "a computed zero goes out as 0xffff");
            assert!(m.verify_checksum_v4(*s, *d));
            m.fill_checksum_v6(&s.to_ipv6_mapped(), &d.to_ipv6_mapped());
            assert!(m.verify_checksum_v6(&s.to_ipv6_mapped(), &d.to_ipv6_mapped()));
        }
        Addrs::V6(s, d) => {
            black_box(u.verify_checksum_v6(s, d));
            m.fill_checksum_v6(s, d);
            assert_ne!(m.checksum(), 0);
            assert!(m.verify_checksum_v6(s, d));
        }
    }
    let _ = black_box(dataplane::wire::wireguard::classify(u.payload()));
}

fn icmpv4(buf: &[u8]) {
    let Ok(icmp) = Icmpv4Packet::new_checked(buf) else {
        assert!(buf.len() < 8);
        return;
    };
    assert_eq!(icmp.data().len(), buf.len() - 8);
    black_box((
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.next_hop_mtu(),
        icmp.verify_checksum(),
    ));
    let mut copy = buf.to_vec();
    let mut m = Icmpv4Packet::new_checked(&mut copy[..]).expect("same bytes");
    m.fill_checksum();
    assert!(m.verify_checksum());
}

fn icmpv6(buf: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    let Ok(icmp) = Icmpv6Packet::new_checked(buf) else {
        return;
    };
    assert!(buf.len() >= icmpv6::HEADER_LEN);
    assert_eq!(icmp.data().len(), buf.len() - icmpv6::HEADER_LEN);
    let ty = icmp.msg_type();
    black_box((
        ty.is_error(),
        icmp.msg_code(),
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.mtu(),
        icmp.router_flag(),
        icmp.solicited_flag(),
        icmp.override_flag(),
        icmp.verify_checksum(src, dst),
    ));
    if matches!(
        ty,
        Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert
    ) {
        assert!(buf.len() >= icmpv6::ND_HEADER_LEN);
        black_box(icmp.target_addr());
        // `new_checked` validated the whole option list: the iterator walks all of it.
        let mut walked = 0;
        for option in icmp.nd_options() {
            assert!(!option.data.is_empty() && (option.data.len() + 2) % 8 == 0);
            walked += option.data.len() + 2;
        }
        assert_eq!(walked, buf.len() - icmpv6::ND_HEADER_LEN);
        black_box((
            icmp.ll_addr(icmpv6::LinkLayerOption::Source),
            icmp.ll_addr(icmpv6::LinkLayerOption::Target),
        ));
    } else {
        // On other types the option iterator is still safe, merely meaningless.
        black_box(icmp.nd_options().count());
    }
    let mut copy = buf.to_vec();
    let mut m = Icmpv6Packet::new_checked(&mut copy[..]).expect("same bytes");
    m.fill_checksum(src, dst);
    assert!(m.verify_checksum(src, dst));
}
