use super::*;

/// Frames captured with `tcpdump -xx` on a veth whose peer (Linux 6.1, offloads at their
/// defaults) sent them: every TCP and UDP checksum below is the partial one the sender's
/// kernel left for the "card". Ethernet header removed.
fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// 198.18.5.1:7000 > 198.18.5.2:38176 SYN-ACK, partial checksum 0x9656.
fn v4_syn_ack() -> Vec<u8> {
    hex(
        "4500 003c 0000 4000 4006 a494 c612 0501 c612 0502 1b58 9520 6ae9 5956 87a5 022c
         a012 fe88 9656 0000 0204 05b4 0402 080a a923 717c 5bfc 7828 0103 030a",
    )
}

/// Same connection, PSH "hello over v4\n", partial checksum 0x965c.
fn v4_tcp_data() -> Vec<u8> {
    hex(
        "4500 0042 91cc 4000 4006 12c2 c612 0501 c612 0502 1b58 9520 6ae9 5957 87a5 022c
         8018 0040 965c 0000 0101 080a a923 717c 5bfc 7828 6865 6c6c 6f20 6f76 6572 2076
         340a",
    )
}

/// 2001:2:5::1.7000 > 2001:2:5::2.39300 PSH "hello over v6\n", partial checksum 0x4047.
fn v6_tcp_data() -> Vec<u8> {
    hex(
        "6003 47b7 002e 0640 2001 0002 0005 0000 0000 0000 0000 0001 2001 0002 0005 0000
         0000 0000 0000 0002 1b58 9984 3c98 ff72 ccbc 9b9b 8018 003f 4047 0000 0101 080a
         9cd5 5ca0 1846 7cff 6865 6c6c 6f20 6f76 6572 2076 360a",
    )
}

/// 198.18.5.1:39281 > 198.18.5.2:9000 UDP "udp datagram v4", partial checksum 0x9650.
fn v4_udp() -> Vec<u8> {
    hex(
        "4500 002b ef80 4000 4011 b519 c612 0501 c612 0502 9971 2328 0017 9650 7564 7020
         6461 7461 6772 616d 2076 34",
    )
}

/// 2001:2:5::1.52795 > 2001:2:5::2.9000 UDP "udp datagram v6", partial checksum 0x403b.
fn v6_udp() -> Vec<u8> {
    hex(
        "6009 9e7c 0017 1140 2001 0002 0005 0000 0000 0000 0000 0001 2001 0002 0005 0000
         0000 0000 0000 0002 ce3b 2328 0017 403b 7564 7020 6461 7461 6772 616d 2076 36",
    )
}

/// RFC 1071 one's-complement sum, a byte pair at a time: the reference the fast code is
/// checked against.
fn ones_sum(words: impl IntoIterator<Item = u16>) -> u16 {
    let mut s: u32 = 0;
    for w in words {
        s += u32::from(w);
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pairs(b: &[u8]) -> Vec<u16> {
    b.chunks(2)
        .map(|p| (u16::from(p[0]) << 8) | u16::from(*p.get(1).unwrap_or(&0)))
        .collect()
}

/// Whether the TCP/UDP checksum of `ip` verifies (pseudo-header built byte by byte).
fn l4_valid(ip: &[u8]) -> bool {
    let mut pseudo = Vec::new();
    let (off, proto) = if ip[0] >> 4 == 4 {
        pseudo.extend_from_slice(&ip[12..20]);
        ((ip[0] & 15) as usize * 4, ip[9])
    } else {
        pseudo.extend_from_slice(&ip[8..40]);
        (40, ip[6])
    };
    let len = ip.len() - off;
    if ip[0] >> 4 == 4 {
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&(len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, proto]);
    }
    let mut words = pairs(&pseudo);
    words.extend(pairs(&ip[off..]));
    ones_sum(words) == 0xffff
}

fn ipv4_header_valid(ip: &[u8]) -> bool {
    ones_sum(pairs(&ip[..(ip[0] & 15) as usize * 4])) == 0xffff
}

#[test]
fn captured_partial_checksums_are_completed() {
    for (name, mut ip, field) in [
        ("v4 syn-ack", v4_syn_ack(), 36),
        ("v4 tcp data", v4_tcp_data(), 36),
        ("v6 tcp data", v6_tcp_data(), 56),
        ("v4 udp", v4_udp(), 26),
        ("v6 udp", v6_udp(), 46),
    ] {
        assert!(
            !l4_valid(&ip),
            "{name}: capture should hold a partial checksum"
        );
        let before = ip.clone();
        assert!(complete(&mut ip), "{name}: not recognised as partial");
        assert!(l4_valid(&ip), "{name}: completed checksum does not verify");
        // Only the two checksum bytes changed.
        let changed: Vec<usize> = (0..ip.len()).filter(|&i| ip[i] != before[i]).collect();
        assert!(
            changed.iter().all(|&i| i == field || i == field + 1),
            "{name}"
        );
        // Once complete, it is left alone.
        let done = ip.clone();
        assert!(!complete(&mut ip), "{name}: completed twice");
        assert_eq!(ip, done);
    }
}

#[test]
fn the_issue_syn_ack_gets_the_checksum_a_card_would_write() {
    // What the issue saw from tcpdump on the SYN-ACK: the field held the pseudo-header
    // sum; a card would have written 0xc5ed (computed by hand from the bytes).
    let mut ip = v4_syn_ack();
    assert!(complete(&mut ip));
    assert_eq!(get16(&ip, 36), 0xc5ed);
}

#[test]
fn valid_checksums_and_other_packets_are_left_alone() {
    let mut rng = crate::wire::test_util::Rng::new(3);
    for base in [v4_tcp_data(), v6_tcp_data(), v4_udp(), v6_udp()] {
        let mut ip = base.clone();
        complete(&mut ip);
        for _ in 0..200 {
            // Random payloads with correct checksums: never rewritten, unless the valid
            // checksum happens to equal the pseudo-header sum, and then to itself.
            let l = l4(&ip).unwrap();
            let hdr = l.offset + if l.tcp { 32 } else { 8 };
            rng.fill(&mut ip[hdr..]);
            let p = pseudo(&ip, &l, l.len);
            put16(&mut ip, l.field(), p);
            finish(&mut ip[l.offset..], l.field() - l.offset, !l.tcp);
            assert!(l4_valid(&ip));
            let before = ip.clone();
            complete(&mut ip);
            assert!(l4_valid(&ip));
            assert_eq!(ip, before);
        }
    }
    // UDP over IPv4 without a checksum.
    let mut ip = v4_udp();
    put16(&mut ip, 26, 0);
    assert!(!complete(&mut ip));
    assert_eq!(get16(&ip, 26), 0);
    // A fragment: its checksum covers bytes this packet does not have.
    let mut ip = v4_tcp_data();
    ip[6] |= 0x20;
    ip[10..12].fill(0);
    let sum = !ones_sum(pairs(&ip[..20]));
    put16(&mut ip, 10, sum);
    let before = ip.clone();
    assert!(!complete(&mut ip));
    assert_eq!(ip, before);
    // ICMP, and a packet whose length field disagrees with its buffer.
    let mut icmp = v4_udp();
    icmp[9] = 1;
    assert!(!complete(&mut icmp));
    let mut short = v4_tcp_data();
    short.pop();
    assert!(!complete(&mut short));
}

#[test]
fn a_valid_checksum_equal_to_the_pseudo_sum_stays_valid() {
    // Find a payload whose correct checksum equals the pseudo-header sum: the one case
    // where a complete field looks partial. Completing it must keep it valid.
    let mut ip = v4_tcp_data();
    let l = l4(&ip).unwrap();
    let p = pseudo(&ip, &l, l.len);
    put16(&mut ip, l.field(), p);
    // Make the data sum what the checksum needs: payload word = required difference.
    // The valid condition: pseudo + data(with field = p) == 0xffff.
    put16(&mut ip, 52, 0);
    let rest = ones_sum(pairs(&ip[l.offset..]));
    let need = !ones_sum([p, rest]);
    put16(&mut ip, 52, need);
    assert!(l4_valid(&ip));
    let before = ip.clone();
    // Left as it was, and not counted as completed: the e2e run with offloads off saw
    // such packets (18 in about a million) counted before this was so.
    assert!(!complete(&mut ip));
    assert_eq!(ip, before);
}

/// A TCP/IPv4 super-packet as a host with TSO hands it over: 64 KB of payload, PSH and
/// FIN on, CWR on, partial checksum.
fn super_tcp(v6: bool, payload: usize) -> Vec<u8> {
    let base = if v6 { v6_tcp_data() } else { v4_tcp_data() };
    let off = if v6 { 40 } else { 20 };
    let hdr = off + 32;
    let mut ip = base[..hdr].to_vec();
    let mut data = vec![0u8; payload];
    crate::wire::test_util::Rng::new(11).fill(&mut data);
    ip.extend_from_slice(&data);
    let len = ip.len();
    if v6 {
        put16(&mut ip, 4, (len - 40) as u16);
    } else {
        put16(&mut ip, 2, len as u16);
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        p.fill_checksum();
    }
    ip[off + 13] |= FIN | PSH | CWR;
    let l = l4(&ip).unwrap();
    let p = pseudo(&ip, &l, l.len);
    put16(&mut ip, l.field(), p);
    ip
}

fn check_tcp_pieces(ip: &[u8], plan: &Plan, max_len: usize) {
    let v6 = plan.l4.v6;
    let off = plan.l4.offset;
    let seq0 = u32::from_be_bytes(ip[off + 4..off + 8].try_into().unwrap());
    let mut joined = Vec::new();
    for i in 0..plan.count {
        let mut out = vec![0u8; plan.piece_len(ip.len(), i)];
        write(ip, plan, i, &mut out);
        assert!(out.len() <= max_len);
        assert!(l4_valid(&out), "piece {i} checksum");
        if v6 {
            assert_eq!(get16(&out, 4) as usize, out.len() - 40);
        } else {
            assert!(ipv4_header_valid(&out), "piece {i} IPv4 header");
            assert_eq!(get16(&out, 2) as usize, out.len());
            assert_eq!(get16(&out, 4), get16(ip, 4).wrapping_add(i as u16));
        }
        let seq = u32::from_be_bytes(out[off + 4..off + 8].try_into().unwrap());
        assert_eq!(seq, seq0.wrapping_add((i * plan.size) as u32));
        let flags = out[off + 13];
        assert_eq!(flags & CWR != 0, i == 0, "CWR only in the first piece");
        let last = i + 1 == plan.count;
        assert_eq!(
            flags & (FIN | PSH) != 0,
            last,
            "FIN/PSH only in the last piece"
        );
        assert_eq!(flags & FIN != 0, last);
        // Everything else of the headers as the original.
        assert_eq!(out[off + 8..off + 13], ip[off + 8..off + 13]);
        assert_eq!(out[off + 14..off + 16], ip[off + 14..off + 16]);
        assert_eq!(out[off + 18..plan.headers], ip[off + 18..plan.headers]);
        joined.extend_from_slice(&out[plan.headers..]);
    }
    assert_eq!(joined, ip[plan.headers..], "payload in order, nothing lost");
}

#[test]
fn a_64k_tcp_super_packet_is_cut_to_the_tunnel_mtu() {
    for v6 in [false, true] {
        let hdr = if v6 { 72 } else { 52 };
        // The largest the length fields allow, IPv4 counting its header.
        let payload = if v6 { 65535 - 32 } else { 65535 - hdr };
        let ip = super_tcp(v6, payload);
        let plan = plan(&ip, 1420, None).unwrap();
        assert_eq!(plan.headers, hdr);
        assert_eq!(plan.size, 1420 - hdr);
        assert_eq!(plan.count, payload.div_ceil(1420 - hdr));
        check_tcp_pieces(&ip, &plan, 1420);
        // The sender's own segment size, where known, is kept when smaller.
        let plan = super::plan(&ip, 1420, Some(1200)).unwrap();
        assert_eq!(plan.size, 1200);
        check_tcp_pieces(&ip, &plan, 1420);
    }
}

#[test]
fn a_udp_gso_packet_is_cut_at_its_datagrams() {
    for v6 in [false, true] {
        let base = if v6 { v6_udp() } else { v4_udp() };
        let off = if v6 { 40 } else { 20 };
        let mut ip = base[..off + 8].to_vec();
        // 40 datagrams of 1200 bytes and a short last one, as UDP_SEGMENT sends them.
        let mut data = vec![0u8; 40 * 1200 + 333];
        crate::wire::test_util::Rng::new(5).fill(&mut data);
        ip.extend_from_slice(&data);
        let len = ip.len();
        if v6 {
            put16(&mut ip, 4, (len - 40) as u16);
        } else {
            put16(&mut ip, 2, len as u16);
            Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
        }
        put16(&mut ip, off + 4, (len - off) as u16);
        let l = l4(&ip).unwrap();
        let p = pseudo(&ip, &l, l.len);
        put16(&mut ip, l.field(), p);

        assert_eq!(plan(&ip, 1420, None), Err(Uncuttable::UdpSizeUnknown));
        assert_eq!(plan(&ip, 1220, Some(1200)), Err(Uncuttable::HeadersTooLong));
        let p = plan(&ip, 1420, Some(1200)).unwrap();
        assert_eq!(p.count, 41);
        let mut joined = Vec::new();
        for i in 0..p.count {
            let mut out = vec![0u8; p.piece_len(ip.len(), i)];
            write(&ip, &p, i, &mut out);
            let expect = if i < 40 { 1200 } else { 333 };
            assert_eq!(out.len(), off + 8 + expect);
            assert_eq!(get16(&out, off + 4) as usize, 8 + expect, "UDP length");
            assert!(l4_valid(&out), "datagram {i}");
            if !v6 {
                assert!(ipv4_header_valid(&out));
            }
            joined.extend_from_slice(&out[off + 8..]);
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn what_cannot_be_cut_says_why() {
    let mut icmp = v4_udp();
    icmp[9] = 1;
    assert_eq!(plan(&icmp, 1420, None), Err(Uncuttable::NotTcpUdp));
    let ip = super_tcp(false, 5000);
    assert_eq!(plan(&ip, 52, None), Err(Uncuttable::HeadersTooLong));
    assert_eq!(plan(&ip, 53, None).unwrap().count, 5000);
}
