//! ARP and IPv6 neighbor discovery views on arbitrary bytes, both bare and behind an
//! Ethernet (and IPv6) header. A checked ARP packet must survive parse -> emit
//! byte for byte, and the in-place reply must equal the parsed reply. A checked
//! NS/NA must expose a fully walkable option list; an NS built from the fuzzer's target
//! and MAC must parse back to them. MAC address text must round-trip through Display.

#![no_main]

use dataplane::wire::{
    arp, icmpv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, Ipv6Packet, MacAddr,
};
use libfuzzer_sys::fuzz_target;
use std::hint::black_box;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    arp_view(data);
    nd_view(data);
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        match eth.ethertype() {
            EtherType::Arp => arp_view(eth.payload()),
            EtherType::Ipv6 => {
                if let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) {
                    nd_view(ip.payload());
                }
            }
            _ => {}
        }
    }
    build_ns(data);
    mac_text(data);
});

fn arp_view(buf: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(buf) else {
        return;
    };
    assert!(buf.len() >= arp::PACKET_LEN);
    assert_eq!(packet.hardware_type(), 1);
    assert_eq!(packet.protocol_type(), 0x0800);
    assert_eq!((packet.hardware_len(), packet.protocol_len()), (6, 4));
    let repr = ArpRepr::parse(&packet);
    assert_eq!(
        ArpOperation::from(u16::from(repr.operation)),
        repr.operation
    );

    // Every byte of the 28 is a field the repr holds or a constant check_len demands.
    let mut emitted = [0u8; arp::PACKET_LEN];
    repr.emit(&mut ArpPacket::new_unchecked(&mut emitted[..]));
    assert_eq!(
        &emitted[..],
        &buf[..arp::PACKET_LEN],
        "parse -> emit is lossless"
    );
    assert_eq!(repr.buffer_len(), arp::PACKET_LEN);

    let ours = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let mut copy = buf.to_vec();
    let mut in_place = ArpPacket::new_checked(&mut copy[..]).expect("same bytes");
    in_place.make_reply(ours);
    let replied = ArpRepr::parse(&ArpPacket::new_checked(&copy[..]).expect("still ARP"));
    assert_eq!(replied, repr.reply(ours));
    assert_eq!(
        &copy[arp::PACKET_LEN..],
        &buf[arp::PACKET_LEN..],
        "padding untouched"
    );

    let request = ArpRepr::request(ours, repr.target_protocol_addr, repr.sender_protocol_addr);
    let mut built = [0u8; arp::PACKET_LEN];
    request.emit(&mut ArpPacket::new_unchecked(&mut built[..]));
    let parsed = ArpPacket::new_checked(&built[..]).expect("a request we build parses");
    assert_eq!(ArpRepr::parse(&parsed), request);
}

fn nd_view(buf: &[u8]) {
    let Ok(icmp) = Icmpv6Packet::new_checked(buf) else {
        return;
    };
    let ty = icmp.msg_type();
    if !matches!(
        ty,
        Icmpv6Message::NeighborSolicit | Icmpv6Message::NeighborAdvert
    ) {
        return;
    }
    assert!(buf.len() >= icmpv6::ND_HEADER_LEN);
    let target = icmp.target_addr();
    let mut walked = 0;
    for option in icmp.nd_options() {
        assert!((option.data.len() + 2) % 8 == 0);
        walked += option.data.len() + 2;
    }
    assert_eq!(walked, buf.len() - icmpv6::ND_HEADER_LEN);
    for which in [
        icmpv6::LinkLayerOption::Source,
        icmpv6::LinkLayerOption::Target,
    ] {
        if let Some(mac) = icmp.ll_addr(which) {
            black_box(mac.is_unicast());
        }
    }
    black_box((
        icmp.router_flag(),
        icmp.solicited_flag(),
        icmp.override_flag(),
    ));

    let group = icmpv6::solicited_node_addr(&target);
    assert!(group.is_multicast());
    assert_eq!(group.octets()[13..], target.octets()[13..]);
    let mac = icmpv6::multicast_mac(&group);
    assert!(mac.is_multicast() && !mac.is_broadcast());
}

/// An NS for a target and with a source link-layer option taken from the input.
fn build_ns(data: &[u8]) {
    if data.len() < 22 {
        return;
    }
    let target = Ipv6Addr::from(<[u8; 16]>::try_from(&data[..16]).unwrap());
    let mac = MacAddr(data[16..22].try_into().unwrap());
    let mut b = [0u8; icmpv6::ND_HEADER_LEN + icmpv6::LL_ADDR_OPTION_LEN];
    let mut m = Icmpv6Packet::new_unchecked(&mut b[..]);
    m.set_msg_type(Icmpv6Message::NeighborSolicit);
    m.set_msg_code(0);
    m.clear_rest_of_header();
    m.set_target_addr(&target);
    m.set_ll_addr_option(icmpv6::LinkLayerOption::Source, mac);
    let src = Ipv6Addr::from(0xfe80u128 << 112 | 1);
    let dst = icmpv6::solicited_node_addr(&target);
    m.fill_checksum(&src, &dst);
    let p = Icmpv6Packet::new_checked(&b[..]).expect("an NS we build parses");
    assert!(p.verify_checksum(&src, &dst));
    assert_eq!(p.target_addr(), target);
    assert_eq!(p.ll_addr(icmpv6::LinkLayerOption::Source), Some(mac));
    assert_eq!(p.ll_addr(icmpv6::LinkLayerOption::Target), None);
}

fn mac_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(mac) = text.parse::<MacAddr>() {
            assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
        }
    }
    if data.len() >= 6 {
        let mac = MacAddr(data[..6].try_into().unwrap());
        assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
    }
}
