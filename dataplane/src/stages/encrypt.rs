//! Encrypt: IP packets for a peer in, WireGuard transport frames for the outside port out.
//!
//! In passes over the vector, so that what is shared with other threads is touched once
//! per keypair per vector:
//! 1. each packet's sending keypair and path (endpoint, source address, next hop) are
//!    found through a per-vector cache by peer id, and counted per keypair;
//! 2. each keypair reserves the nonces of all its packets with one atomic addition;
//! 3. each packet gets the next of its keypair's nonces, is padded to a multiple of 16
//!    (never past the MTU; whitepaper 5.4.6) and lined up; the outer header's ECN field
//!    (RFC 6040) and DSCP (module `ecn`) are read from it before sealing;
//! 4. one backend call seals the batch;
//! 5. the transport header, UDP, IP and Ethernet toward the peer's endpoint are
//!    prepended, and each keypair's peer counts its packets once.
//!
//! A packet for a peer with no usable keypair goes to the control thread, which queues it
//! and starts a handshake. A frame whose next hop has no known link-layer address goes to
//! control complete but for its destination MAC.

use crate::buf::{PacketBuf, TxChecksum};
use crate::counters::{EncryptDrop, Punt, Stage};
use crate::crypto::{CryptoJob, TAG_LEN};
use crate::meta;
use crate::session::Keypair;
use crate::spread::Back;
use crate::stages::{start_flight, Poll, VectorCache, PREFETCH_AHEAD};
use crate::tables::{Neighbors, PortTables, Side, Tables};
use crate::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use crate::wire::{
    checksum, ethernet, ipv4, ipv6, udp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet,
    Ipv6Packet, MacAddr, UdpPacket,
};
use dpdk_sys::AeadDirection;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Outer headers of the largest kind: Ethernet + IPv6 + UDP + transport header.
pub const MAX_OVERHEAD: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN + TRANSPORT_HEADER_LEN;

/// Where a peer's packets go this vector.
#[derive(Clone, Copy)]
struct Path {
    endpoint: SocketAddr,
    src: IpAddr,
    /// `None` until the next hop's link-layer address is known.
    dst_mac: Option<[u8; 6]>,
}

/// A keypair's packets of this vector: how many, the next nonce to give out (`None` if
/// the keypair could not reserve them), and what they add up to once sealed.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    wanted: u64,
    next: Option<u64>,
    packets: u64,
    bytes: u64,
    data: bool,
}

/// What the cache says of a peer besides a keypair's position.
const NO_SESSION: u16 = u16::MAX;
/// A peer whose path failed: `DROP_BASE + EncryptDrop as u16`.
const DROP_BASE: u16 = u16::MAX - 16;

/// A packet handed to an asynchronous backend or another worker, waiting for its turn
/// to leave.
struct Flying<B> {
    /// `None` while another worker has it.
    pkt: Option<B>,
    kp: Arc<Keypair>,
    path: Path,
    counter: u64,
    held: Held,
    /// The device's verdict, once it has one.
    ok: Option<bool>,
}

/// Each held packet's outer DSCP and ECN byte, and whether it carries data (an empty
/// one is a keepalive).
#[derive(Debug, Clone, Copy)]
struct Held {
    tos: u8,
    data: bool,
}

pub struct Scratch<B> {
    /// With an asynchronous backend, or while vectors are shared with other workers:
    /// every packet of those vectors, in order, until it is sealed and those before it
    /// have left; the first is number `flight_base`.
    flight: VecDeque<Flying<B>>,
    flight_base: u64,
    pending: Vec<bool>,
    /// Keypair positions by local index, for the packets leaving the flight.
    leaving: VectorCache,
    keys: Vec<Arc<Keypair>>,
    paths: Vec<Path>,
    tally: Vec<Tally>,
    cache: VectorCache,
    /// Each input packet's keypair position or what the cache said instead.
    keyed: Vec<u16>,
    jobs: Vec<CryptoJob>,
    held: Vec<B>,
    info: Vec<Held>,
}

impl<B> Default for Scratch<B> {
    fn default() -> Self {
        Scratch {
            flight: VecDeque::new(),
            flight_base: 0,
            pending: Vec::new(),
            leaving: VectorCache::default(),
            keys: Vec::new(),
            paths: Vec::new(),
            tally: Vec::new(),
            cache: VectorCache::default(),
            keyed: Vec::new(),
            jobs: Vec::new(),
            held: Vec::new(),
            info: Vec::new(),
        }
    }
}

/// Bytes of zero padding for an inner packet of `len` (whitepaper 5.4.6: pad to a
/// multiple of 16, but a packet that fits the MTU is not padded past it).
#[inline]
pub fn padding(len: usize, mtu: usize) -> usize {
    let padded = (len + 15) & !15;
    if len <= mtu {
        padded.min(mtu) - len
    } else {
        padded - len
    }
}

fn path(kp: &Keypair, t: &Tables, n: &Neighbors) -> Result<Path, EncryptDrop> {
    let endpoint = kp.peer.endpoint().ok_or(EncryptDrop::NoEndpoint)?;
    let port = t.port(Side::Outside);
    let src = port
        .source_for(endpoint.ip())
        .ok_or(EncryptDrop::NoSourceAddress)?;
    let hop = port
        .next_hop(endpoint.ip())
        .ok_or(EncryptDrop::NoOuterRoute)?;
    Ok(Path {
        endpoint,
        src,
        dst_mac: n.get(Side::Outside, hop),
    })
}

/// Write transport header, UDP, IP and Ethernet in front of a sealed payload.
fn encapsulate<B: PacketBuf>(
    pkt: &mut B,
    kp: &Keypair,
    counter: u64,
    p: &Path,
    outside: &PortTables,
    listen_port: u16,
    tos: u8,
) {
    let device = outside.offloads;
    let hdr = pkt
        .prepend(TRANSPORT_HEADER_LEN)
        .expect("headroom checked before sealing");
    let mut t = Transport::new_unchecked(hdr);
    t.set_message_type();
    t.set_receiver(kp.remote_index);
    t.set_counter(counter);

    let udp_len = pkt.len() + udp::HEADER_LEN;
    let hdr = pkt.prepend(udp::HEADER_LEN).expect("headroom checked");
    let mut u = UdpPacket::new_unchecked(hdr);
    u.set_src_port(listen_port);
    u.set_dst_port(p.endpoint.port());
    u.set_len(udp_len as u16);
    u.set_checksum(0);

    let ethertype = match (p.src, p.endpoint.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let hdr = pkt.prepend(ipv4::HEADER_LEN).expect("headroom checked");
            let mut ip = Ipv4Packet::new_unchecked(hdr);
            ip.set_version(4);
            ip.set_header_len(ipv4::HEADER_LEN);
            ip.set_dscp(tos >> 2);
            ip.set_ecn(tos & 0b11);
            ip.set_total_len((udp_len + ipv4::HEADER_LEN) as u16);
            ip.set_ident(0);
            ip.clear_flags();
            ip.set_frag_offset(0);
            ip.set_ttl(64);
            ip.set_protocol(IpProtocol::Udp);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            if device.tx_ipv4_checksum {
                ip.set_checksum(0);
            } else {
                ip.fill_checksum();
            }
            // The UDP checksum stays 0 over IPv4 (RFC 768): the AEAD tag already
            // protects every byte that matters.
            EtherType::Ipv4
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let hdr = pkt.prepend(ipv6::HEADER_LEN).expect("headroom checked");
            let mut ip = Ipv6Packet::new_unchecked(hdr);
            ip.set_version(6);
            ip.set_traffic_class(tos);
            ip.set_flow_label(0);
            ip.set_payload_len(udp_len as u16);
            ip.set_next_header(IpProtocol::Udp);
            ip.set_hop_limit(64);
            ip.set_src_addr(&src);
            ip.set_dst_addr(&dst);
            // IPv6 requires the UDP checksum (RFC 8200 8.1); a device that fills it
            // starts from the pseudo-header's sum.
            let mut u = UdpPacket::new_unchecked(&mut pkt.data_mut()[ipv6::HEADER_LEN..]);
            if device.tx_udp_checksum {
                u.set_checksum(checksum::pseudo_header_v6(
                    &src,
                    &dst,
                    IpProtocol::Udp,
                    udp_len as u32,
                ));
            } else {
                u.fill_checksum_v6(&src, &dst);
            }
            EtherType::Ipv6
        }
        _ => unreachable!("source address chosen by the endpoint's family"),
    };

    let hdr = pkt.prepend(ethernet::HEADER_LEN).expect("headroom checked");
    let mut eth = EthernetFrame::new_unchecked(hdr);
    eth.set_dst_addr(MacAddr(p.dst_mac.unwrap_or([0; 6])));
    eth.set_src_addr(MacAddr(outside.mac));
    eth.set_ethertype(ethertype);
    let l2 = ethernet::HEADER_LEN as u8;
    match ethertype {
        EtherType::Ipv4 if device.tx_ipv4_checksum => {
            pkt.offload_tx_checksum(l2, ipv4::HEADER_LEN as u16, TxChecksum::Ipv4Header)
        }
        EtherType::Ipv6 if device.tx_udp_checksum => {
            pkt.offload_tx_checksum(l2, ipv6::HEADER_LEN as u16, TxChecksum::Ipv6Udp)
        }
        _ => {}
    }
}

/// The cache's entry for `peer`: a new keypair position, `NO_SESSION`, or a drop.
fn find<B>(p: &Poll<'_, B>, s: &mut Scratch<B>, peer: u32) -> u16 {
    let Some(kp) = p.sessions.sending(peer) else {
        return NO_SESSION;
    };
    match path(&kp, p.tables, p.neighbors) {
        Ok(path) => {
            s.keys.push(kp);
            s.paths.push(path);
            s.tally.push(Tally::default());
            (s.keys.len() - 1) as u16
        }
        Err(reason) => DROP_BASE + reason as u16,
    }
}

/// Encrypt `pkts` (IP packets with their peer's id in `meta`) into frames for the
/// outside port in `out`; packets control must handle go to `punt`.
#[inline(never)]
pub fn run<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    pkts: &mut Vec<B>,
    s: &mut Scratch<B>,
    out: &mut Vec<B>,
    punt: &mut Vec<B>,
) {
    let c = p.counters;
    let now = p.now;
    let t = p.tables;
    s.keys.clear();
    s.paths.clear();
    s.tally.clear();
    s.keyed.clear();
    s.jobs.clear();
    s.info.clear();
    s.cache.next_vector();
    let mtu = t.mtu as usize;

    for pkt in pkts.iter() {
        // A packet without a peer note finds no keypair and goes to control, which drops it.
        let peer = meta::peer_of(pkt.meta()).unwrap_or(u32::MAX);
        let k = match s.cache.get(peer) {
            Some(k) => k,
            None => {
                let k = find(p, s, peer);
                s.cache.insert(peer, k);
                k
            }
        };
        if k < DROP_BASE {
            s.tally[k as usize].wanted += 1;
        }
        s.keyed.push(k);
    }

    // One reservation per keypair. A keypair too old or used up sends nothing: control
    // queues its packets and makes a new one.
    for (kp, tally) in s.keys.iter().zip(s.tally.iter_mut()) {
        tally.next = kp.reserve_nonces(tally.wanted, now).ok();
    }

    for (mut pkt, &k) in pkts.drain(..).zip(s.keyed.iter()) {
        let peer = meta::peer_of(pkt.meta()).unwrap_or(u32::MAX);
        if (DROP_BASE..NO_SESSION).contains(&k) {
            let reason = EncryptDrop::ALL[(k - DROP_BASE) as usize];
            c.encrypt.inc(reason);
            p.discard(pkt);
            continue;
        }
        let next = match s.tally.get_mut(k as usize).and_then(|t| t.next.as_mut()) {
            Some(next) => next,
            None => {
                c.punt.inc(Punt::NoSession);
                pkt.set_meta(meta::punt(Punt::NoSession, Side::Inside, peer));
                punt.push(pkt);
                continue;
            }
        };
        let counter = *next;
        *next += 1;
        let pad = padding(pkt.len(), mtu);
        if pkt.headroom() < MAX_OVERHEAD || pkt.tailroom() < pad + TAG_LEN {
            c.encrypt.inc(EncryptDrop::NoRoom);
            p.discard(pkt);
            continue;
        }
        s.info.push(Held {
            tos: t.outer_dscp.outer_tos(pkt.data()),
            data: !pkt.is_empty(),
        });
        if let Some(tail) = pkt.append(pad) {
            tail.fill(0);
        }
        s.jobs.push(CryptoJob {
            pkt: s.held.len() as u16,
            key: k,
            counter,
            ok: false,
        });
        s.held.push(pkt);
    }

    // A vector that is shared with other workers, or that follows packets still in
    // flight, goes through the flight, which keeps their order and so the nonces'.
    let sharing = !p.backend.is_async()
        && p.crew
            .as_deref_mut()
            .is_some_and(|crew| crew.plan(AeadDirection::Seal, s.jobs.len()));
    if p.backend.is_async() || sharing || !s.flight.is_empty() {
        through_flight(p, s, sharing);
    } else {
        let backend = &mut *p.backend;
        c.runtime.timed(Stage::EncryptCrypto, s.jobs.len(), || {
            backend.seal_batch(&mut s.held, &s.keys, &mut s.jobs);
        });
    }

    let outside = t.port(Side::Outside);
    let mut held = s.held.drain(..);
    for (job, h) in s.jobs.iter().zip(s.info.iter()) {
        let mut pkt = held.next().expect("a packet per job");
        // The outer headers go into the headroom, whose lines nobody touched yet.
        if let Some(ahead) = held.as_slice().get(PREFETCH_AHEAD - 1) {
            ahead.prefetch(-(MAX_OVERHEAD as isize), true);
            ahead.prefetch(-1, true);
        }
        if !job.ok {
            c.encrypt.inc(EncryptDrop::SealFailed);
            p.discard(pkt);
            continue;
        }
        let kp = &s.keys[job.key as usize];
        let path = &s.paths[job.key as usize];
        encapsulate(
            &mut pkt,
            kp,
            job.counter,
            path,
            outside,
            t.listen_port,
            h.tos,
        );
        let tally = &mut s.tally[job.key as usize];
        tally.packets += 1;
        tally.bytes += (pkt.len() - ethernet::HEADER_LEN) as u64;
        tally.data |= h.data;
        c.traffic.encrypted.inc();
        if path.dst_mac.is_some() {
            out.push(pkt);
        } else {
            c.punt.inc(Punt::NoNeighbor);
            pkt.set_meta(meta::punt(Punt::NoNeighbor, Side::Outside, kp.peer.id));
            punt.push(pkt);
        }
    }

    for (kp, tally) in s.keys.iter().zip(s.tally.iter()) {
        if tally.packets > 0 {
            p.activity
                .add_tx(kp.peer.id, tally.packets, tally.bytes, tally.data, now);
        }
    }
}

/// With an asynchronous backend, a vector shared with other workers (module `spread`), or
/// packets still in flight: the vector joins the flight, each packet sealed at once,
/// submitted to the device or handed to another worker; those finished, and every packet
/// before them, leave it in order into `held`/`jobs`/`info`, with the keypair and path
/// lists rebuilt for them.
fn through_flight<B: PacketBuf>(p: &mut Poll<'_, B>, s: &mut Scratch<B>, sharing: bool) {
    let first = s.flight_base + s.flight.len() as u64;
    start_flight(
        p,
        AeadDirection::Seal,
        &mut s.held,
        &s.keys,
        &mut s.jobs,
        first,
        sharing,
        &mut s.pending,
    );
    // Packets handed to another worker join without their buffer, until it is back.
    let mut held = s.held.drain(..);
    for ((job, info), &pending) in s.jobs.iter().zip(s.info.drain(..)).zip(s.pending.iter()) {
        s.flight.push_back(Flying {
            pkt: held.next(),
            kp: s.keys[job.key as usize].clone(),
            path: s.paths[job.key as usize],
            counter: job.counter,
            held: info,
            ok: (!pending).then_some(job.ok),
        });
    }
    drop(held);
    let (flight, base) = (&mut s.flight, s.flight_base);
    p.backend.collect(AeadDirection::Seal, |user, ok| {
        if let Some(f) = flight.get_mut((user - base) as usize) {
            f.ok = Some(ok);
        }
    });
    if let Some(crew) = p.crew.as_deref_mut() {
        crew.collect(AeadDirection::Seal, |task| {
            task.give_back(base, |at, back| {
                if let Some(f) = flight.get_mut(at) {
                    match back {
                        Back::Buffer(pkt) => f.pkt = Some(pkt),
                        Back::Done(ok) => f.ok = Some(ok),
                    }
                }
            })
        });
    }
    s.keys.clear();
    s.paths.clear();
    s.tally.clear();
    s.jobs.clear();
    s.leaving.next_vector();
    while let Some(ok) = s.flight.front().and_then(|f| f.pkt.as_ref().and(f.ok)) {
        let f = s.flight.pop_front().expect("front");
        s.flight_base += 1;
        let index = f.kp.local_index;
        let key = match s.leaving.get(index) {
            Some(k) => k,
            None => {
                let k = s.keys.len() as u16;
                s.leaving.insert(index, k);
                s.keys.push(f.kp);
                s.paths.push(f.path);
                s.tally.push(Tally::default());
                k
            }
        };
        s.jobs.push(CryptoJob {
            pkt: s.held.len() as u16,
            key,
            counter: f.counter,
            ok,
        });
        s.held.push(f.pkt.expect("checked above"));
        s.info.push(f.held);
    }
}

/// Packets of this stage handed to an asynchronous backend and not yet out.
pub fn in_flight<B>(s: &Scratch<B>) -> usize {
    s.flight.len()
}

#[cfg(test)]
mod tests {
    use super::padding;

    #[test]
    fn padding_to_sixteen_within_mtu() {
        assert_eq!(padding(0, 1420), 0);
        assert_eq!(padding(1, 1420), 15);
        assert_eq!(padding(16, 1420), 0);
        assert_eq!(padding(84, 1420), 12);
        // 1419 would pad to 1424, past the MTU: only up to 1420.
        assert_eq!(padding(1419, 1420), 1);
        assert_eq!(padding(1420, 1420), 0);
    }
}
