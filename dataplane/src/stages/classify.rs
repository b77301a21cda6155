//! Classify: the first stage on each port. Sorts received frames by what they are.
//!
//! Outside port: WireGuard transport messages to our listen port go on to decrypt, with
//! the frame stripped down to the message and the sender's address noted (for roaming);
//! handshake messages, ARP, neighbor discovery and other traffic for our own addresses
//! go to the control thread whole; anything else is dropped.
//!
//! Inside port: IP packets to forward go on to route with the Ethernet header stripped;
//! ARP, neighbor discovery and traffic for our own addresses go to control.

use crate::buf::{PacketBuf, RxChecksum};
use crate::counters::{ClassifyDrop, Punt};
use crate::meta;
use crate::stages::{Poll, PREFETCH_AHEAD};
use crate::tables::{PortTables, Side, Tables};
use crate::wire::wireguard::{self, MessageKind};
use crate::wire::{
    ethernet, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket,
};
use std::net::{IpAddr, SocketAddr};

enum Verdict {
    /// A transport message at this offset of the frame, of this length, from this sender.
    Transport(usize, usize, Origin),
    /// An IP packet to forward, at the Ethernet payload, of this length.
    Forward(usize),
    Punt(Punt),
}

type Result<T> = std::result::Result<T, ClassifyDrop>;

/// Is this an ICMPv6 neighbor discovery message (RFC 4861 types 133..=137)?
fn is_nd(ip: &Ipv6Packet<&[u8]>) -> bool {
    ip.next_header() == IpProtocol::Icmpv6
        && ip
            .payload()
            .first()
            .is_some_and(|t| (133..=137).contains(t))
}

/// The part common to both ports: Ethernet, ARP, ND, IP header sanity, and whether the
/// destination is one of our addresses. `Ok(Err(..))` carries the parsed destination for
/// the caller's own decision.
fn l2_l3(
    data: &[u8],
    checked: RxChecksum,
    port: &PortTables,
) -> Result<std::result::Result<Verdict, Ip>> {
    let eth = EthernetFrame::new_checked(data).map_err(|_| ClassifyDrop::Malformed)?;
    let dst_mac = eth.dst_addr();
    if dst_mac.is_unicast() && dst_mac.0 != port.mac {
        return Err(ClassifyDrop::OtherHost);
    }
    let multicast = !dst_mac.is_unicast();
    match eth.ethertype() {
        EtherType::Arp => Ok(Ok(Verdict::Punt(Punt::Arp))),
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| ClassifyDrop::Malformed)?;
            // The device's verdict where it gave one, else the header is summed here.
            let intact = match checked {
                RxChecksum::Good => true,
                RxChecksum::Bad => false,
                RxChecksum::Unknown => ip.verify_checksum(),
            };
            if !intact {
                return Err(ClassifyDrop::BadChecksum);
            }
            Ok(Err(Ip {
                dst: IpAddr::V4(ip.dst_addr()),
                len: ip.total_len() as usize,
                header_len: ip.header_len(),
                udp: ip.protocol() == IpProtocol::Udp,
                fragment: ip.is_fragment(),
                src: IpAddr::V4(ip.src_addr()),
                ecn: ip.ecn(),
                multicast,
            }))
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| ClassifyDrop::Malformed)?;
            if is_nd(&ip) {
                return Ok(Ok(Verdict::Punt(Punt::Nd)));
            }
            Ok(Err(Ip {
                dst: IpAddr::V6(ip.dst_addr()),
                len: ip.total_len(),
                header_len: crate::wire::ipv6::HEADER_LEN,
                udp: ip.next_header() == IpProtocol::Udp,
                fragment: ip.next_header() == IpProtocol::Ipv6Frag,
                src: IpAddr::V6(ip.src_addr()),
                ecn: ip.traffic_class() & 0b11,
                multicast,
            }))
        }
        _ => Err(ClassifyDrop::UnknownEtherType),
    }
}

/// Where a transport message came from: its sender, and the ECN field of the outer IP
/// header, which decrypt combines with the inner packet's (module `ecn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub src: SocketAddr,
    pub ecn: u8,
}

/// What classify needs of an IP header.
struct Ip {
    src: IpAddr,
    ecn: u8,
    dst: IpAddr,
    len: usize,
    header_len: usize,
    udp: bool,
    fragment: bool,
    multicast: bool,
}

impl Ip {
    fn is_unicast_dst(&self) -> bool {
        !self.multicast
            && match self.dst {
                IpAddr::V4(a) => !a.is_multicast() && !a.is_broadcast(),
                IpAddr::V6(a) => !a.is_multicast(),
            }
    }
}

fn outside_one(data: &[u8], checked: RxChecksum, t: &Tables) -> Result<Verdict> {
    let port = t.port(Side::Outside);
    let ip = match l2_l3(data, checked, port)? {
        Ok(v) => return Ok(v),
        Err(ip) => ip,
    };
    if !ip.is_unicast_dst() || !port.is_local(ip.dst) {
        return Err(ClassifyDrop::NotLocal);
    }
    if !ip.udp {
        return Ok(Verdict::Punt(Punt::Local));
    }
    let l4 = ethernet::HEADER_LEN + ip.header_len;
    let udp = UdpPacket::new_checked(&data[l4..ethernet::HEADER_LEN + ip.len])
        .map_err(|_| ClassifyDrop::Malformed)?;
    if udp.dst_port() != t.listen_port {
        return Ok(Verdict::Punt(Punt::Local));
    }
    if ip.fragment {
        return Err(ClassifyDrop::Fragment);
    }
    let payload = udp.payload();
    match wireguard::classify(payload) {
        Ok(MessageKind::Transport) => Ok(Verdict::Transport(
            l4 + crate::wire::udp::HEADER_LEN,
            payload.len(),
            Origin {
                src: SocketAddr::new(ip.src, udp.src_port()),
                ecn: ip.ecn,
            },
        )),
        Ok(_) => Ok(Verdict::Punt(Punt::Handshake)),
        Err(_) => Err(ClassifyDrop::BadMessage),
    }
}

fn inside_one(data: &[u8], checked: RxChecksum, t: &Tables) -> Result<Verdict> {
    let port = t.port(Side::Inside);
    let ip = match l2_l3(data, checked, port)? {
        Ok(v) => return Ok(v),
        Err(ip) => ip,
    };
    if !ip.is_unicast_dst() {
        return Err(ClassifyDrop::NotLocal);
    }
    if port.is_local(ip.dst) || t.port(Side::Outside).is_local(ip.dst) {
        return Ok(Verdict::Punt(Punt::Local));
    }
    Ok(Verdict::Forward(ip.len))
}

/// Prefetch the headers of the first packets of a vector.
#[inline]
fn prefetch_first<B: PacketBuf>(pkts: &[B]) {
    for pkt in pkts.iter().take(PREFETCH_AHEAD) {
        pkt.prefetch(0, false);
    }
}

/// With `rest` the packets after the current one: prefetch the one that is now
/// `PREFETCH_AHEAD` away.
#[inline]
fn prefetch_next<B: PacketBuf>(rest: &[B]) {
    if let Some(pkt) = rest.get(PREFETCH_AHEAD - 1) {
        pkt.prefetch(0, false);
    }
}

fn sort<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    side: Side,
    mut pkt: B,
    verdict: Result<Verdict>,
    fwd: &mut Vec<B>,
    sources: &mut Vec<Origin>,
    punt: &mut Vec<B>,
) {
    let c = p.counters;
    match verdict {
        Ok(Verdict::Transport(offset, len, src)) => {
            let trailer = pkt.len() - offset - len;
            if pkt.adj(offset) && pkt.trim(trailer) {
                fwd.push(pkt);
                sources.push(src);
            } else {
                c.classify.inc(ClassifyDrop::Malformed);
                p.discard(pkt);
            }
        }
        Ok(Verdict::Forward(len)) => {
            let trailer = pkt.len() - ethernet::HEADER_LEN - len;
            if pkt.adj(ethernet::HEADER_LEN) && pkt.trim(trailer) {
                fwd.push(pkt);
            } else {
                c.classify.inc(ClassifyDrop::Malformed);
                p.discard(pkt);
            }
        }
        Ok(Verdict::Punt(reason)) => {
            c.punt.inc(reason);
            pkt.set_meta(meta::punt(reason, side, 0));
            punt.push(pkt);
        }
        Err(reason) => {
            c.classify.inc(reason);
            p.discard(pkt);
        }
    }
}

/// Sort frames from the outside port: transport messages to `transport` (stripped to the
/// message, sender and outer ECN in `sources`), the rest to `punt` or dropped.
#[inline(never)]
pub fn outside<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    rx: &mut Vec<B>,
    transport: &mut Vec<B>,
    sources: &mut Vec<Origin>,
    punt: &mut Vec<B>,
) {
    let mut pkts = rx.drain(..);
    prefetch_first(pkts.as_slice());
    while let Some(pkt) = pkts.next() {
        prefetch_next(pkts.as_slice());
        let verdict = if pkt.is_contiguous() {
            outside_one(pkt.data(), pkt.rx_ipv4_checksum(), p.tables)
        } else {
            Err(ClassifyDrop::MultiSegment)
        };
        sort(p, Side::Outside, pkt, verdict, transport, sources, punt);
    }
}

/// Sort frames from the inside port: IP packets to forward to `fwd` (Ethernet header
/// stripped, trailing padding trimmed), the rest to `punt` or dropped.
#[inline(never)]
pub fn inside<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    rx: &mut Vec<B>,
    fwd: &mut Vec<B>,
    punt: &mut Vec<B>,
) {
    let mut no_sources = Vec::new();
    let mut pkts = rx.drain(..);
    prefetch_first(pkts.as_slice());
    while let Some(pkt) = pkts.next() {
        prefetch_next(pkts.as_slice());
        let verdict = if pkt.is_contiguous() {
            inside_one(pkt.data(), pkt.rx_ipv4_checksum(), p.tables)
        } else {
            Err(ClassifyDrop::MultiSegment)
        };
        sort(p, Side::Inside, pkt, verdict, fwd, &mut no_sources, punt);
    }
}
