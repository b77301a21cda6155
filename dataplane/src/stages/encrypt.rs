//! Encrypt: IP packets for a peer in, WireGuard transport frames for the outside port out.
//!
//! A first pass finds each packet's sending keypair (cached per peer), reserves its
//! nonce, pads the plaintext to a multiple of 16 (never past the MTU; whitepaper 5.4.6)
//! and lines it up; one backend call seals the batch; a post pass prepends the transport
//! header, UDP, IP and Ethernet toward the peer's endpoint. The outer header carries the
//! inner packet's ECN field (RFC 6040) and the configured DSCP (module `ecn`), read
//! before sealing.
//!
//! A packet for a peer with no usable keypair goes to the control thread, which queues it
//! and starts a handshake. A frame whose next hop has no known link-layer address goes to
//! control complete but for its destination MAC.

use crate::buf::PacketBuf;
use crate::counters::{EncryptDrop, Punt, WorkerCounters};
use crate::crypto::{Backend, CryptoJob, TAG_LEN};
use crate::meta;
use crate::session::{Keypair, Sessions};
use crate::tables::{Neighbors, Side, Tables};
use crate::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use crate::wire::{
    ethernet, ipv4, ipv6, udp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet,
    MacAddr, UdpPacket,
};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Outer headers of the largest kind: Ethernet + IPv6 + UDP + transport header.
pub const MAX_OVERHEAD: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN + TRANSPORT_HEADER_LEN;

/// Where a peer's packets go this vector.
struct Path {
    endpoint: SocketAddr,
    src: IpAddr,
    /// `None` until the next hop's link-layer address is known.
    dst_mac: Option<[u8; 6]>,
}

pub struct Scratch<B> {
    keys: Vec<Arc<Keypair>>,
    paths: Vec<Path>,
    jobs: Vec<CryptoJob>,
    held: Vec<B>,
    /// Whether each held packet carries data (an empty one is a keepalive).
    data: Vec<bool>,
    /// Each held packet's outer DSCP and ECN byte.
    tos: Vec<u8>,
}

impl<B> Default for Scratch<B> {
    fn default() -> Self {
        Scratch {
            keys: Vec::new(),
            paths: Vec::new(),
            jobs: Vec::new(),
            held: Vec::new(),
            data: Vec::new(),
            tos: Vec::new(),
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
    src_mac: [u8; 6],
    listen_port: u16,
    tos: u8,
) {
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
            ip.fill_checksum();
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
            // IPv6 requires the UDP checksum (RFC 8200 8.1).
            let mut u = UdpPacket::new_unchecked(&mut pkt.data_mut()[ipv6::HEADER_LEN..]);
            u.fill_checksum_v6(&src, &dst);
            EtherType::Ipv6
        }
        _ => unreachable!("source address chosen by the endpoint's family"),
    };

    let hdr = pkt.prepend(ethernet::HEADER_LEN).expect("headroom checked");
    let mut eth = EthernetFrame::new_unchecked(hdr);
    eth.set_dst_addr(MacAddr(p.dst_mac.unwrap_or([0; 6])));
    eth.set_src_addr(MacAddr(src_mac));
    eth.set_ethertype(ethertype);
}

#[allow(clippy::too_many_arguments)]
pub fn run<B: PacketBuf>(
    pkts: &mut Vec<B>,
    t: &Tables,
    n: &Neighbors,
    sessions: &Sessions,
    backend: &mut Backend,
    now: u64,
    c: &WorkerCounters,
    s: &mut Scratch<B>,
    out: &mut Vec<B>,
    punt: &mut Vec<B>,
) {
    s.keys.clear();
    s.paths.clear();
    s.jobs.clear();
    let mtu = t.mtu as usize;

    for mut pkt in pkts.drain(..) {
        let peer = pkt.meta() as u32;
        let cached = s.keys.iter().rposition(|k| k.peer.id == peer);
        let key = match cached {
            Some(i) => Some(i),
            None => match sessions.sending(peer) {
                Some(kp) => match path(&kp, t, n) {
                    Ok(p) => {
                        s.keys.push(kp);
                        s.paths.push(p);
                        Some(s.keys.len() - 1)
                    }
                    Err(reason) => {
                        c.encrypt.inc(reason);
                        continue;
                    }
                },
                None => None,
            },
        };
        let counter = key.and_then(|k| s.keys[k].reserve_nonces(1, now).ok());
        let (Some(key), Some(counter)) = (key, counter) else {
            // No keypair, or it is too old or used up: control queues the packet and
            // makes a new one.
            c.punt.inc(Punt::NoSession);
            pkt.set_meta(meta::punt(Punt::NoSession, Side::Inside, peer));
            punt.push(pkt);
            continue;
        };
        let pad = padding(pkt.len(), mtu);
        if pkt.headroom() < MAX_OVERHEAD || pkt.tailroom() < pad + TAG_LEN {
            c.encrypt.inc(EncryptDrop::NoRoom);
            continue;
        }
        s.data.push(!pkt.is_empty());
        s.tos.push(t.outer_dscp.outer_tos(pkt.data()));
        if let Some(tail) = pkt.append(pad) {
            tail.fill(0);
        }
        s.jobs.push(CryptoJob {
            pkt: s.held.len() as u16,
            key: key as u16,
            counter,
            ok: false,
        });
        s.held.push(pkt);
    }

    c.runtime
        .timed(crate::counters::Stage::EncryptCrypto, s.jobs.len(), || {
            backend.seal_batch(&mut s.held, &s.keys, &mut s.jobs);
        });

    let outside = t.port(Side::Outside);
    for (((mut pkt, job), data), tos) in s
        .held
        .drain(..)
        .zip(s.jobs.iter())
        .zip(s.data.drain(..))
        .zip(s.tos.drain(..))
    {
        if !job.ok {
            c.encrypt.inc(EncryptDrop::NoRoom);
            continue;
        }
        let kp = &s.keys[job.key as usize];
        let p = &s.paths[job.key as usize];
        encapsulate(
            &mut pkt,
            kp,
            job.counter,
            p,
            outside.mac,
            t.listen_port,
            tos,
        );
        kp.peer
            .stats
            .add_tx(1, (pkt.len() - ethernet::HEADER_LEN) as u64, data, now);
        c.traffic.encrypted.inc();
        if p.dst_mac.is_some() {
            out.push(pkt);
        } else {
            c.punt.inc(Punt::NoNeighbor);
            pkt.set_meta(meta::punt(Punt::NoNeighbor, Side::Outside, kp.peer.id));
            punt.push(pkt);
        }
    }
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
