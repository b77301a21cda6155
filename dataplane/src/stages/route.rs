//! Route: plaintext IP packets in; packets for a peer (to encrypt) or finished frames
//! for the inside port out.
//!
//! - A packet that came through the tunnel must come from an address its peer is allowed
//!   to use (cryptokey routing, whitepaper 2): the longest allowed-IPs match of its
//!   source must be that very peer.
//! - The destination's longest allowed-IPs match chooses the peer to send to; otherwise
//!   the inside port's routes (connected networks, `routes`, `gateway`) choose the next
//!   hop, whose link-layer address comes from the neighbor table.
//! - TTL / hop limit is decremented once per forward. Packets that need an ICMP error
//!   (time exceeded, too big for the tunnel), IPv4 packets too big for the tunnel that
//!   may be fragmented, and packets whose next hop is not resolved yet go to the
//!   control thread, unchanged but for the last; packets for our own addresses too.
//!
//! Input packets start at the IP header; those from the tunnel carry their peer's id in
//! `meta`. Packets for a peer leave with the peer's id in `meta`.

use crate::buf::PacketBuf;
use crate::counters::{Punt, RouteDrop};
use crate::meta;
use crate::stages::Poll;
use crate::tables::{Neighbors, Side, Tables};
use crate::wire::{ethernet, EtherType, EthernetFrame, Ipv4Packet, Ipv6Packet, MacAddr};
use std::net::IpAddr;

enum Next {
    Peer(u32),
    Inside([u8; 6]),
    Punt(Punt),
}

struct Header {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    /// IPv4 with DF clear: may be fragmented.
    may_fragment: bool,
    v6: bool,
}

fn header(data: &[u8]) -> Option<Header> {
    match data.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(data).ok()?;
            Some(Header {
                src: IpAddr::V4(ip.src_addr()),
                dst: IpAddr::V4(ip.dst_addr()),
                ttl: ip.ttl(),
                may_fragment: !ip.dont_frag(),
                v6: false,
            })
        }
        6 => {
            let ip = Ipv6Packet::new_checked(data).ok()?;
            Some(Header {
                src: IpAddr::V6(ip.src_addr()),
                dst: IpAddr::V6(ip.dst_addr()),
                ttl: ip.hop_limit(),
                may_fragment: false,
                v6: true,
            })
        }
        _ => None,
    }
}

fn is_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

fn decide(
    len: usize,
    src_peer: Option<u32>,
    h: &Header,
    t: &Tables,
    n: &Neighbors,
) -> Result<Next, RouteDrop> {
    if let Some(id) = src_peer {
        if t.allowed.lookup(h.src).map(|p| p.id) != Some(id) {
            return Err(RouteDrop::SourceNotAllowed);
        }
    }
    if !is_unicast(h.dst) {
        return Err(RouteDrop::BadAddress);
    }
    if t.port(Side::Inside).is_local(h.dst) || t.port(Side::Outside).is_local(h.dst) {
        // From the inside, classify has already punted these as frames.
        return Ok(Next::Punt(Punt::TunnelLocal));
    }
    if h.ttl <= 1 {
        return Ok(Next::Punt(Punt::IcmpError));
    }
    if let Some(peer) = t.allowed.lookup(h.dst) {
        if src_peer == Some(peer.id) {
            return Err(RouteDrop::Loop);
        }
        if len > t.mtu as usize {
            return Ok(Next::Punt(if h.may_fragment {
                Punt::Fragment
            } else {
                Punt::IcmpError
            }));
        }
        return Ok(Next::Peer(peer.id));
    }
    let hop = t
        .port(Side::Inside)
        .next_hop(h.dst)
        .ok_or(RouteDrop::NoRoute)?;
    match n.get(Side::Inside, hop) {
        Some(mac) => Ok(Next::Inside(mac)),
        None => Ok(Next::Punt(Punt::NoNeighbor)),
    }
}

fn decrement(pkt: &mut impl PacketBuf, v6: bool) {
    // The TTL was checked above 1 in `decide`, so both always succeed.
    let ok = if v6 {
        Ipv6Packet::new_unchecked(pkt.data_mut()).decrement_hop_limit()
    } else {
        Ipv4Packet::new_unchecked(pkt.data_mut()).decrement_ttl()
    };
    debug_assert!(ok);
}

/// Prepend an Ethernet header; false if there is no headroom.
fn push_ethernet(pkt: &mut impl PacketBuf, dst: [u8; 6], src: [u8; 6], v6: bool) -> bool {
    let Some(hdr) = pkt.prepend(ethernet::HEADER_LEN) else {
        return false;
    };
    let mut eth = EthernetFrame::new_unchecked(hdr);
    eth.set_dst_addr(MacAddr(dst));
    eth.set_src_addr(MacAddr(src));
    eth.set_ethertype(if v6 { EtherType::Ipv6 } else { EtherType::Ipv4 });
    true
}

/// Route `pkts` (IP packets that came in on `from`): to a peer (`to_peer`), out of the
/// inside port as frames (`to_inside`), to control (`punt`), or dropped.
#[inline(never)]
pub fn run<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    from: Side,
    pkts: &mut Vec<B>,
    to_peer: &mut Vec<B>,
    to_inside: &mut Vec<B>,
    punt: &mut Vec<B>,
) {
    let (t, n, c) = (p.tables, p.neighbors, p.counters);
    let inside_mac = t.port(Side::Inside).mac;
    for mut pkt in pkts.drain(..) {
        let src_peer = (from == Side::Outside).then(|| pkt.meta() as u32);
        let Some(h) = header(pkt.data()) else {
            c.route.inc(RouteDrop::Malformed);
            p.discard(pkt);
            continue;
        };
        match decide(pkt.len(), src_peer, &h, t, n) {
            Ok(Next::Peer(id)) => {
                decrement(&mut pkt, h.v6);
                pkt.set_meta(id as u64);
                to_peer.push(pkt);
            }
            Ok(Next::Inside(mac)) => {
                decrement(&mut pkt, h.v6);
                if push_ethernet(&mut pkt, mac, inside_mac, h.v6) {
                    to_inside.push(pkt);
                } else {
                    c.route.inc(RouteDrop::NoHeadroom);
                    p.discard(pkt);
                }
            }
            Ok(Next::Punt(reason)) => {
                if reason == Punt::NoNeighbor {
                    // Control resolves the next hop and sends the frame as it is then.
                    decrement(&mut pkt, h.v6);
                    if !push_ethernet(&mut pkt, [0; 6], inside_mac, h.v6) {
                        c.route.inc(RouteDrop::NoHeadroom);
                        p.discard(pkt);
                        continue;
                    }
                }
                c.punt.inc(reason);
                // An unresolved frame is to be sent on the inside; everything else is
                // about the port it came from.
                let side = if reason == Punt::NoNeighbor {
                    Side::Inside
                } else {
                    from
                };
                pkt.set_meta(meta::punt(reason, side, src_peer.unwrap_or(0)));
                punt.push(pkt);
            }
            Err(reason) => {
                c.route.inc(reason);
                p.discard(pkt);
            }
        }
    }
}
