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
//! What the tables say of an address (the peer its source belongs to; where its
//! destination goes) is the same for every packet of a vector, so it is found once per
//! distinct address per vector, through per-vector caches (`Scratch`); the checks that
//! depend on the packet itself (TTL, length, a loop back to its own peer) are made on
//! each packet.
//!
//! Input packets start at the IP header; those from the tunnel carry their peer's id in
//! `meta`. Packets for a peer leave with the peer's id in `meta`.

use crate::buf::PacketBuf;
use crate::counters::{Punt, RouteDrop};
use crate::meta;
use crate::stages::{Poll, VectorCache};
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

/// Where the tables send a destination address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Dest {
    /// One of the gateway's own addresses.
    #[default]
    Local,
    /// In a peer's allowed IPs.
    Peer(u32),
    /// Out of the inside port to a next hop with this link-layer address.
    Inside([u8; 6]),
    /// Out of the inside port, next hop not resolved yet.
    NoNeighbor,
    /// Nowhere.
    NoRoute,
}

fn destination(dst: IpAddr, t: &Tables, n: &Neighbors) -> Dest {
    if t.port(Side::Inside).is_local(dst) || t.port(Side::Outside).is_local(dst) {
        return Dest::Local;
    }
    if let Some(peer) = t.allowed.lookup(dst) {
        return Dest::Peer(peer);
    }
    match t.port(Side::Inside).next_hop(dst) {
        None => Dest::NoRoute,
        Some(hop) => n
            .get(Side::Inside, hop)
            .map_or(Dest::NoNeighbor, Dest::Inside),
    }
}

/// An address as a cache key: IPv4 with a bit no IPv6 address of ours has set apart.
#[inline]
fn key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128 | (1u128 << 127),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The per-vector caches of what the tables say of addresses.
#[derive(Default)]
pub struct Scratch {
    /// Source address -> the peer whose allowed IPs hold it (`u32::MAX`: none).
    sources: VectorCache<u128, u32>,
    dests: VectorCache<u128, Dest>,
}

const NO_PEER: u32 = u32::MAX;

fn decide(
    len: usize,
    src_peer: Option<u32>,
    h: &Header,
    s: &mut Scratch,
    t: &Tables,
    n: &Neighbors,
) -> Result<Next, RouteDrop> {
    if let Some(id) = src_peer {
        let owner = s
            .sources
            .get_or(key(h.src), || t.allowed.lookup(h.src).unwrap_or(NO_PEER));
        if owner != id {
            return Err(RouteDrop::SourceNotAllowed);
        }
    }
    if !is_unicast(h.dst) {
        return Err(RouteDrop::BadAddress);
    }
    let dest = s.dests.get_or(key(h.dst), || destination(h.dst, t, n));
    if dest == Dest::Local {
        // From the inside, classify has already punted these as frames.
        return Ok(Next::Punt(Punt::TunnelLocal));
    }
    if h.ttl <= 1 {
        return Ok(Next::Punt(Punt::IcmpError));
    }
    match dest {
        Dest::Peer(peer) => {
            if src_peer == Some(peer) {
                return Err(RouteDrop::Loop);
            }
            if len > t.mtu as usize {
                return Ok(Next::Punt(if h.may_fragment {
                    Punt::Fragment
                } else {
                    Punt::IcmpError
                }));
            }
            Ok(Next::Peer(peer))
        }
        Dest::Inside(mac) => Ok(Next::Inside(mac)),
        Dest::NoNeighbor => Ok(Next::Punt(Punt::NoNeighbor)),
        Dest::NoRoute => Err(RouteDrop::NoRoute),
        Dest::Local => unreachable!("handled above"),
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
    s: &mut Scratch,
    to_peer: &mut Vec<B>,
    to_inside: &mut Vec<B>,
    punt: &mut Vec<B>,
) {
    let (t, n, c) = (p.tables, p.neighbors, p.counters);
    let inside_mac = t.port(Side::Inside).mac;
    s.sources.next_vector();
    s.dests.next_vector();
    for mut pkt in pkts.drain(..) {
        let src_peer = match from {
            Side::Inside => None,
            Side::Outside => match meta::peer_of(pkt.meta()) {
                Some(id) => Some(id),
                None => {
                    // Decrypt notes every packet's peer; without one it cannot pass.
                    c.route.inc(RouteDrop::SourceNotAllowed);
                    p.discard(pkt);
                    continue;
                }
            },
        };
        let Some(h) = header(pkt.data()) else {
            c.route.inc(RouteDrop::Malformed);
            p.discard(pkt);
            continue;
        };
        match decide(pkt.len(), src_peer, &h, s, t, n) {
            Ok(Next::Peer(id)) => {
                decrement(&mut pkt, h.v6);
                pkt.set_meta(meta::for_peer(id));
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
