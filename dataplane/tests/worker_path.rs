//! The worker loop on plain memory: frames in on either port, frames out, with every
//! packet accounted for (sent, handed to control, or dropped under a named reason).

use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::{DecryptDrop, Punt, RouteDrop, WorkerCounters};
use dataplane::crypto::{Backend, TransportKey};
use dataplane::memio::MemIo;
use dataplane::meta;
use dataplane::session::{Keypair, Peer, Sessions};
use dataplane::tables::{LocalAddr, Neighbors, PortTables, Shared, Side, Tables};
use dataplane::wire::wireguard::Transport;
use dataplane::wire::{
    ethernet, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, UdpPacket,
};
use dataplane::worker::Worker;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
const K_SEND: [u8; 32] = [0x11; 32];
const K_RECV: [u8; 32] = [0x22; 32];
const LOCAL_INDEX: u32 = 0x0000_1001;
const REMOTE_INDEX: u32 = 0x2002_0000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Gw {
    worker: Worker<MemIo>,
    shared: Arc<Shared>,
    peer: Arc<Peer>,
}

fn gateway(with_keypair: bool, with_neighbors: bool) -> Gw {
    let mut outside = PortTables::new(
        OUT_MAC,
        vec![
            LocalAddr {
                addr: ip("198.19.0.2"),
                prefix_len: 24,
            },
            LocalAddr {
                addr: ip("2001:2:0:1::2"),
                prefix_len: 64,
            },
        ],
    );
    outside.fib.insert(
        ip("0.0.0.0"),
        0,
        dataplane::tables::NextHop::Via(ip("198.19.0.254")),
    );
    let inside = PortTables::new(
        IN_MAC,
        vec![
            LocalAddr {
                addr: ip("198.18.2.1"),
                prefix_len: 24,
            },
            LocalAddr {
                addr: ip("2001:2:0:2::1"),
                prefix_len: 64,
            },
        ],
    );
    let peer = Arc::new(Peer::new(0, Some("198.19.0.1:51820".parse().unwrap())));
    let allowed = [(ip("198.18.99.2"), 32, 0), (ip("2001:2:0:99::"), 64, 0)]
        .into_iter()
        .collect();
    let tables = Tables {
        ports: [outside, inside],
        allowed,
        listen_port: 51820,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, Sessions::new(12, 8)));
    if with_keypair {
        let kp = Arc::new(Keypair::new(
            peer.clone(),
            LOCAL_INDEX,
            REMOTE_INDEX,
            &K_SEND,
            &K_RECV,
            true,
            1,
        ));
        shared.sessions.install(kp.clone()).unwrap();
        shared.sessions.set_sending(kp);
    }
    if with_neighbors {
        let mut n = Neighbors::default();
        n.insert(Side::Outside, ip("198.19.0.1"), PEER_MAC);
        n.insert(Side::Inside, ip("198.18.2.2"), LAN_MAC);
        n.insert(Side::Inside, ip("2001:2:0:2::2"), LAN_MAC);
        shared.neighbors.store(Arc::new(n));
    }
    let io = MemIo {
        now: 1_000,
        ..Default::default()
    };
    let worker = Worker::new(
        io,
        shared.clone(),
        Arc::new(WorkerCounters::default()),
        Backend::software(),
        256,
    );
    Gw {
        worker,
        shared,
        peer,
    }
}

/// An IPv4 UDP packet (no Ethernet) with `payload_len` bytes of payload.
fn ipv4_udp(src: &str, dst: &str, payload_len: usize, ttl: u8) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 8 + payload_len];
    let total = b.len();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(total as u16);
        p.set_dont_frag(true);
        p.set_ttl(ttl);
        p.set_protocol(IpProtocol::Udp);
        p.set_src_addr(src.parse().unwrap());
        p.set_dst_addr(dst.parse().unwrap());
        p.fill_checksum();
    }
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(40000);
    u.set_dst_port(5201);
    u.set_len((8 + payload_len) as u16);
    for (i, x) in u.payload_mut().iter_mut().enumerate() {
        *x = i as u8;
    }
    u.fill_checksum_v4(src.parse().unwrap(), dst.parse().unwrap());
    b
}

fn ipv6_udp(src: &str, dst: &str, payload_len: usize) -> Vec<u8> {
    let mut b = vec![0u8; 40 + 8 + payload_len];
    {
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_payload_len((8 + payload_len) as u16);
        p.set_next_header(IpProtocol::Udp);
        p.set_hop_limit(64);
        p.set_src_addr(&src.parse().unwrap());
        p.set_dst_addr(&dst.parse().unwrap());
    }
    let mut u = UdpPacket::new_unchecked(&mut b[40..]);
    u.set_src_port(40000);
    u.set_dst_port(5201);
    u.set_len((8 + payload_len) as u16);
    u.fill_checksum_v6(&src.parse().unwrap(), &dst.parse().unwrap());
    b
}

fn frame(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> HeapBuf {
    let mut b = vec![0u8; 14 + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut b[..]);
    f.set_dst_addr(MacAddr(dst));
    f.set_src_addr(MacAddr(src));
    f.set_ethertype(ethertype);
    f.payload_mut().copy_from_slice(payload);
    HeapBuf::new(&b)
}

/// What the peer would send: `inner` sealed with the peer's sending key (our K_RECV).
fn from_peer(inner: &[u8], receiver: u32, counter: u64, key: &[u8; 32]) -> HeapBuf {
    from_peer_at(
        inner,
        receiver,
        counter,
        key,
        "198.19.0.1:51820".parse().unwrap(),
    )
}

/// A transport message from `src`.
fn from_peer_at(
    inner: &[u8],
    receiver: u32,
    counter: u64,
    key: &[u8; 32],
    src: SocketAddr,
) -> HeapBuf {
    let SocketAddr::V4(src) = src else {
        panic!("IPv4 sources only");
    };
    let pad = (16 - inner.len() % 16) % 16;
    let mut msg = vec![0u8; 16];
    {
        let mut t = Transport::new_unchecked(&mut msg[..]);
        t.set_message_type();
        t.set_receiver(receiver);
        t.set_counter(counter);
    }
    let mut body = inner.to_vec();
    body.resize(inner.len() + pad, 0);
    let tag = TransportKey::new(key).seal(counter, &mut body);
    msg.extend_from_slice(&body);
    msg.extend_from_slice(&tag);
    let mut b = vec![0u8; 20 + 8];
    b.extend_from_slice(&msg);
    let total = b.len();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(total as u16);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::Udp);
        p.set_src_addr(*src.ip());
        p.set_dst_addr("198.19.0.2".parse().unwrap());
        p.fill_checksum();
    }
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(src.port());
    u.set_dst_port(51820);
    u.set_len((total - 20) as u16);
    frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &b)
}

/// Every packet that entered was sent, punted, dropped, or was a keepalive.
fn assert_conserved(c: &WorkerCounters) {
    let t = &c.traffic;
    let entered = t.rx_outside.get() + t.rx_inside.get() + t.from_control.get();
    let left =
        t.tx_outside.get() + t.tx_inside.get() + c.punt.total() + c.drops() + t.keepalives_rx.get();
    assert_eq!(entered, left, "packets lost inside the worker: {c:?}");
}

#[test]
fn inside_to_peer_is_encrypted_toward_its_endpoint() {
    let mut gw = gateway(true, true);
    let inner = ipv4_udp("198.18.2.2", "198.18.99.2", 100, 64);
    gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner));
    gw.worker.poll();
    let out = std::mem::take(&mut gw.worker.io.tx[0]);
    assert_eq!(out.len(), 1);
    let f = EthernetFrame::new_checked(out[0].data()).unwrap();
    assert_eq!(f.dst_addr(), MacAddr(PEER_MAC));
    assert_eq!(f.src_addr(), MacAddr(OUT_MAC));
    let ip4 = Ipv4Packet::new_checked(f.payload()).unwrap();
    assert!(ip4.verify_checksum());
    assert_eq!(ip4.src_addr(), "198.19.0.2".parse::<Ipv4Addr>().unwrap());
    assert_eq!(ip4.dst_addr(), "198.19.0.1".parse::<Ipv4Addr>().unwrap());
    let udp = UdpPacket::new_checked(ip4.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (51820, 51820));
    let t = Transport::new_checked(udp.payload()).unwrap();
    assert_eq!(t.receiver(), REMOTE_INDEX);
    assert_eq!(t.counter(), 0);
    // 128 bytes of inner packet: padded to 128, plus header and tag.
    assert_eq!(udp.payload().len(), 16 + 128 + 16);
    let mut sealed = udp.payload()[16..].to_vec();
    let n = TransportKey::new(&K_SEND).open(0, &mut sealed).unwrap();
    let mut expect = inner.clone();
    Ipv4Packet::new_unchecked(&mut expect[..]).set_ttl(63);
    Ipv4Packet::new_unchecked(&mut expect[..]).fill_checksum();
    assert_eq!(&sealed[..inner.len()], &expect[..]);
    assert!(sealed[inner.len()..n].iter().all(|b| *b == 0));
    assert_eq!(gw.shared.activity.total(gw.peer.id).tx.packets, 1);
    assert_conserved(gw.worker.counters());
}

#[test]
fn peer_to_inside_is_decrypted_and_forwarded() {
    let mut gw = gateway(true, true);
    let inner = ipv4_udp("198.18.99.2", "198.18.2.2", 333, 64);
    gw.worker.io.rx[0].push_back(from_peer(&inner, LOCAL_INDEX, 0, &K_RECV));
    let inner6 = ipv6_udp("2001:2:0:99::5", "2001:2:0:2::2", 50);
    gw.worker.io.rx[0].push_back(from_peer(&inner6, LOCAL_INDEX, 1, &K_RECV));
    gw.worker.poll();
    let out = std::mem::take(&mut gw.worker.io.tx[1]);
    assert_eq!(out.len(), 2, "{:?}", gw.worker.counters());
    let f = EthernetFrame::new_checked(out[0].data()).unwrap();
    assert_eq!(f.dst_addr(), MacAddr(LAN_MAC));
    assert_eq!(f.src_addr(), MacAddr(IN_MAC));
    assert_eq!(f.payload().len(), inner.len(), "padding trimmed");
    let p = Ipv4Packet::new_checked(f.payload()).unwrap();
    assert_eq!(p.ttl(), 63);
    assert!(p.verify_checksum());
    assert_eq!(p.payload(), &inner[20..]);
    let f6 = EthernetFrame::new_checked(out[1].data()).unwrap();
    assert_eq!(f6.ethertype(), EtherType::Ipv6);
    let p6 = Ipv6Packet::new_checked(f6.payload()).unwrap();
    assert_eq!(p6.hop_limit(), 63);
    assert_eq!(p6.dst_addr(), "2001:2:0:2::2".parse::<Ipv6Addr>().unwrap());
    // The peer's endpoint follows its authenticated packets.
    assert_eq!(
        gw.peer.endpoint(),
        Some("198.19.0.1:51820".parse::<SocketAddr>().unwrap())
    );
    assert_conserved(gw.worker.counters());
}

#[test]
fn hostile_transport_is_dropped_by_name() {
    let mut gw = gateway(true, true);
    let good = ipv4_udp("198.18.99.2", "198.18.2.2", 64, 64);
    let q = &mut gw.worker.io.rx[0];
    q.push_back(from_peer(&good, LOCAL_INDEX, 7, &K_RECV));
    // Replayed.
    q.push_back(from_peer(&good, LOCAL_INDEX, 7, &K_RECV));
    // Wrong key: fails authentication.
    q.push_back(from_peer(&good, LOCAL_INDEX, 8, &[0x33; 32]));
    // Unknown receiver index.
    q.push_back(from_peer(&good, 0xdead_beef, 9, &K_RECV));
    // Spoofed inner source, authenticated.
    let spoofed = ipv4_udp("198.18.5.5", "198.18.2.2", 64, 64);
    q.push_back(from_peer(&spoofed, LOCAL_INDEX, 10, &K_RECV));
    // Keepalive: authenticated, empty.
    q.push_back(from_peer(&[], LOCAL_INDEX, 11, &K_RECV));
    // Truncated transport message (classify refuses it: shorter than header + tag).
    let mut short = from_peer(&good, LOCAL_INDEX, 12, &K_RECV);
    let cut = short.len() - 100;
    short.trim(cut);
    q.push_back(short);
    gw.worker.poll();
    let c = gw.worker.counters();
    assert_eq!(gw.worker.io.tx[1].len(), 1);
    assert_eq!(c.decrypt.get(DecryptDrop::Replay), 1);
    assert_eq!(c.decrypt.get(DecryptDrop::BadTag), 1);
    assert_eq!(c.decrypt.get(DecryptDrop::UnknownIndex), 1);
    assert_eq!(c.route.get(RouteDrop::SourceNotAllowed), 1);
    assert_eq!(c.traffic.keepalives_rx.get(), 1);
    assert_eq!(c.drops(), 5);
    assert_conserved(c);
}

#[test]
fn no_session_and_unresolved_neighbors_go_to_control() {
    let mut gw = gateway(false, false);
    let inner = ipv4_udp("198.18.2.2", "198.18.99.2", 10, 64);
    gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner));
    // For the gateway itself.
    let local = ipv4_udp("198.18.2.2", "198.18.2.1", 10, 64);
    gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &local));
    // TTL 1: needs an ICMP time exceeded.
    let dying = ipv4_udp("198.18.2.2", "198.18.99.2", 10, 1);
    gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &dying));
    // For another host's MAC: not ours.
    gw.worker.io.rx[1].push_back(frame(LAN_MAC, IN_MAC, EtherType::Ipv4, &inner));
    // A handshake initiation (type 1, 148 bytes) on the outside.
    let mut hs = vec![0u8; 148];
    hs[0] = 1;
    let mut b = vec![0u8; 28];
    b.extend_from_slice(&hs);
    let total = b.len();
    {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(total as u16);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::Udp);
        p.set_src_addr("198.19.0.1".parse().unwrap());
        p.set_dst_addr("198.19.0.2".parse().unwrap());
        p.fill_checksum();
    }
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(1234);
    u.set_dst_port(51820);
    u.set_len((total - 20) as u16);
    gw.worker.io.rx[0].push_back(frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &b));
    gw.worker.poll();

    let reasons: Vec<_> = gw
        .worker
        .io
        .punted
        .iter()
        .map(|p| (meta::punt_reason(p.meta()).unwrap(), meta::side(p.meta())))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Punt::Handshake, Side::Outside),
            (Punt::Local, Side::Inside),
            (Punt::IcmpError, Side::Inside),
            (Punt::NoSession, Side::Inside),
        ]
    );
    let c = gw.worker.counters();
    assert_eq!(
        c.classify.get(dataplane::counters::ClassifyDrop::OtherHost),
        1
    );
    assert_conserved(c);

    // With a keypair but no neighbor: the sealed frame goes to control for resolution.
    let kp = Arc::new(Keypair::new(
        gw.peer.clone(),
        5,
        6,
        &K_SEND,
        &K_RECV,
        true,
        1,
    ));
    gw.shared.sessions.install(kp.clone()).unwrap();
    gw.shared.sessions.set_sending(kp);
    gw.worker.io.punted.clear();
    gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner));
    gw.worker.poll();
    assert_eq!(gw.worker.io.punted.len(), 1);
    assert_eq!(
        meta::punt_reason(gw.worker.io.punted[0].meta()),
        Some(Punt::NoNeighbor)
    );
    assert_eq!(meta::side(gw.worker.io.punted[0].meta()), Side::Outside);
    assert_conserved(gw.worker.counters());
}

#[test]
fn frames_from_control_leave_by_their_side() {
    let mut gw = gateway(true, true);
    let mut f = frame(LAN_MAC, IN_MAC, EtherType::Arp, &[0u8; 28]);
    f.set_meta(meta::send_on(Side::Inside));
    gw.worker.io.control.push_back(f);
    gw.worker.poll();
    assert_eq!(gw.worker.io.tx[1].len(), 1);
    assert_eq!(gw.worker.io.tx[0].len(), 0);
    assert_eq!(ethernet::HEADER_LEN + 28, gw.worker.io.tx[1][0].len());
    assert_conserved(gw.worker.counters());
}

#[test]
fn hostile_frames_on_both_ports_are_dropped_by_name() {
    use dataplane::counters::ClassifyDrop as C;
    let mut gw = gateway(true, true);
    let to_gw = ipv4_udp("198.19.0.1", "198.19.0.2", 32, 64);
    let to_lan = ipv4_udp("198.18.2.2", "198.18.99.2", 32, 64);
    let bad_sum = |ip: &[u8]| {
        let mut b = ip.to_vec();
        b[10] ^= 0xff;
        b
    };
    let too_long = |ip: &[u8]| {
        let mut b = ip.to_vec();
        Ipv4Packet::new_unchecked(&mut b[..]).set_total_len(1400);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    };
    // A WireGuard message of an unknown type to the listen port.
    let mut wrong_type = ipv4_udp("198.19.0.1", "198.19.0.2", 32, 64);
    {
        let mut u = UdpPacket::new_unchecked(&mut wrong_type[20..]);
        u.set_dst_port(51820);
        u.payload_mut()[0] = 9;
        u.set_checksum(0);
    }
    // A fragment to the listen port.
    let mut frag = wrong_type.clone();
    frag[40] = 1;
    {
        let mut p = Ipv4Packet::new_unchecked(&mut frag[..]);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.fill_checksum();
    }
    let o = &mut gw.worker.io.rx[Side::Outside.index()];
    o.push_back(HeapBuf::new(&[0u8; 10]));
    o.push_back(frame([2, 9, 9, 9, 9, 9], PEER_MAC, EtherType::Ipv4, &to_gw));
    o.push_back(frame(OUT_MAC, PEER_MAC, EtherType::Unknown(0x88b5), &to_gw));
    o.push_back(frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &bad_sum(&to_gw)));
    o.push_back(frame(
        OUT_MAC,
        PEER_MAC,
        EtherType::Ipv4,
        &ipv4_udp("198.19.0.1", "198.19.0.99", 32, 64),
    ));
    o.push_back(frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &wrong_type));
    o.push_back(frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &too_long(&to_gw)));
    o.push_back(frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &frag));
    // Authenticated, but what it carries is no IP packet.
    o.push_back(from_peer(&[0xff; 16], LOCAL_INDEX, 20, &K_RECV));
    let i = &mut gw.worker.io.rx[Side::Inside.index()];
    i.push_back(HeapBuf::new(&[0u8; 10]));
    i.push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &bad_sum(&to_lan)));
    i.push_back(frame(IN_MAC, LAN_MAC, EtherType::Unknown(0x88b5), &to_lan));
    i.push_back(frame(
        IN_MAC,
        LAN_MAC,
        EtherType::Ipv4,
        &ipv4_udp("198.18.2.2", "224.0.0.5", 32, 64),
    ));
    i.push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &too_long(&to_lan)));
    gw.worker.poll();

    let c = gw.worker.counters();
    let got: Vec<(&str, u64)> = c.classify.snapshot().filter(|(_, n)| *n > 0).collect();
    assert_eq!(
        got,
        vec![
            (C::Malformed.name(), 4),
            (C::OtherHost.name(), 1),
            (C::UnknownEtherType.name(), 2),
            (C::BadChecksum.name(), 2),
            (C::NotLocal.name(), 2),
            (C::Fragment.name(), 1),
            (C::BadMessage.name(), 1),
        ],
        "{c:?}"
    );
    assert_eq!(c.decrypt.get(DecryptDrop::BadInner), 1);
    assert!(gw.worker.io.tx.iter().all(|q| q.is_empty()));
    assert!(gw.worker.io.punted.is_empty());
    assert_eq!(c.drops(), 14);
    assert_conserved(c);
}

#[test]
fn an_initiator_receiving_under_an_old_keypair_asks_for_a_rekey() {
    use std::sync::atomic::Ordering;
    const S: u64 = 1_000_000_000;
    let mut gw = gateway(true, true);
    let good = ipv4_udp("198.18.99.2", "198.18.2.2", 64, 64);
    // Whitepaper 6.2: Reject-After-Time - Keepalive-Timeout - Rekey-Timeout = 165 s.
    gw.worker.io.now = 1 + 164 * S;
    gw.worker.io.rx[0].push_back(from_peer(&good, LOCAL_INDEX, 1, &K_RECV));
    gw.worker.poll();
    assert!(!gw.peer.want_handshake.load(Ordering::Relaxed));
    gw.worker.io.now = 1 + 165 * S;
    gw.worker.io.rx[0].push_back(from_peer(&good, LOCAL_INDEX, 2, &K_RECV));
    gw.worker.poll();
    assert!(gw.peer.want_handshake.load(Ordering::Relaxed));
    // Both packets were delivered: asking for a rekey drops nothing.
    assert_eq!(gw.worker.io.tx[Side::Inside.index()].len(), 2);
    // After Reject-After-Time the keypair is refused.
    gw.worker.io.now = 1 + 180 * S;
    gw.worker.io.rx[0].push_back(from_peer(&good, LOCAL_INDEX, 3, &K_RECV));
    gw.worker.poll();
    assert_eq!(gw.worker.counters().decrypt.get(DecryptDrop::Expired), 1);
}

/// Runtime accounting moves with traffic, and its packet counts agree with the worker's
/// own counters: every packet received is counted once by rx and by classify, decrypt
/// and encrypt see what they decrypted or encrypted (plus their drops), the crypto shares
/// count each job, and tx what left.
#[test]
fn runtime_accounting_agrees_with_the_packet_counters() {
    use dataplane::counters::Stage;
    let mut gw = gateway(true, true);
    let polls = 5u64;
    for round in 0..polls {
        for i in 0..7u64 {
            let inner = ipv4_udp("198.18.99.2", "198.18.2.2", 100 + i as usize, 64);
            gw.worker.io.rx[0].push_back(from_peer(&inner, LOCAL_INDEX, round * 7 + i, &K_RECV));
        }
        // A replay: decrypt drops it, but it went through decrypt.
        gw.worker.io.rx[0].push_back(from_peer(
            &ipv4_udp("198.18.99.2", "198.18.2.2", 10, 64),
            LOCAL_INDEX,
            round * 7,
            &K_RECV,
        ));
        for _ in 0..3 {
            let inner = ipv4_udp("198.18.2.2", "198.18.99.2", 200, 64);
            gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner));
        }
        gw.worker.poll();
        gw.worker.io.tx[0].clear();
        gw.worker.io.tx[1].clear();
    }
    // Polls with nothing to do: rx runs, nothing else.
    gw.worker.poll();
    let c = gw.worker.counters();
    let rt = &c.runtime;
    let t = &c.traffic;
    let get = |s: Stage| {
        let r = rt.get(s);
        (
            r.calls.get(),
            r.vectors.get(),
            r.packets.get(),
            r.clocks.get(),
        )
    };
    assert_eq!(t.decrypted.get(), polls * 7);
    assert_eq!(c.decrypt.get(DecryptDrop::Replay), polls);
    assert_eq!(t.encrypted.get(), polls * 3);

    let (calls, vectors, packets, clocks) = get(Stage::Rx);
    assert_eq!(calls, polls + 1, "one rx step (both ports) per poll");
    assert_eq!(vectors, polls, "the empty poll has no vector");
    assert_eq!(packets, t.rx_outside.get() + t.rx_inside.get());
    assert!(clocks > 0);
    assert_eq!(
        get(Stage::Classify).2,
        t.rx_outside.get() + t.rx_inside.get()
    );
    assert_eq!(get(Stage::Decrypt).2, t.decrypted.get() + c.decrypt.total());
    assert_eq!(get(Stage::DecryptCrypto).2, t.decrypted.get() + polls);
    assert_eq!(get(Stage::Offload).2, t.rx_inside.get());
    assert_eq!(get(Stage::Route).2, t.decrypted.get() + t.rx_inside.get());
    assert_eq!(get(Stage::Encrypt).2, t.encrypted.get());
    assert_eq!(get(Stage::EncryptCrypto).2, t.encrypted.get());
    assert_eq!(get(Stage::Tx).2, t.tx_outside.get() + t.tx_inside.get());
    for s in [
        Stage::Classify,
        Stage::Decrypt,
        Stage::Route,
        Stage::Encrypt,
        Stage::Tx,
    ] {
        let (calls, vectors, _, clocks) = get(s);
        assert_eq!(calls, vectors, "{} only runs with packets", s.name());
        assert!(clocks > 0, "{} took no time", s.name());
    }
    // The crypto share is part of its stage's clocks.
    assert!(get(Stage::DecryptCrypto).3 <= get(Stage::Decrypt).3);
    assert!(get(Stage::EncryptCrypto).3 <= get(Stage::Encrypt).3);
    assert_eq!(get(Stage::Control), (0, 0, 0, 0));
    assert_conserved(c);
}

/// Packets of two peers interleaved in one vector, as a port delivers many flows: each
/// keypair's replay window, nonces, counters and endpoint are handled once per vector
/// (grouped by keypair), with the results packet-by-packet handling gives.
#[test]
fn interleaved_keypairs_share_a_vector() {
    const LOCAL_B: u32 = 0x0000_2002;
    const REMOTE_B: u32 = 0x3003_0000;
    const K_SEND_B: [u8; 32] = [0x44; 32];
    const K_RECV_B: [u8; 32] = [0x55; 32];
    let mut gw = gateway(true, true);
    let peer_b = Arc::new(Peer::new(1, Some("198.19.0.7:51820".parse().unwrap())));
    let mut t = (**gw.shared.tables.load()).clone();
    t.allowed = (t.allowed.entries().into_iter())
        .chain([(ip("198.18.98.2"), 32, peer_b.id)])
        .collect();
    gw.shared.tables.store(Arc::new(t));
    let mut n = (**gw.shared.neighbors.load()).clone();
    n.insert(Side::Outside, ip("198.19.0.7"), PEER_MAC);
    n.insert(Side::Outside, ip("198.19.0.9"), PEER_MAC);
    gw.shared.neighbors.store(Arc::new(n));
    let kb = Arc::new(Keypair::new(
        peer_b.clone(),
        LOCAL_B,
        REMOTE_B,
        &K_SEND_B,
        &K_RECV_B,
        true,
        1,
    ));
    gw.shared.sessions.install(kb.clone()).unwrap();
    gw.shared.sessions.set_sending(kb);

    // Decrypt: A and B interleaved; A roams mid-vector; each sends one counter twice.
    let (a_home, a_away, b_home): (SocketAddr, SocketAddr, SocketAddr) = (
        "198.19.0.1:51820".parse().unwrap(),
        "198.19.0.9:4444".parse().unwrap(),
        "198.19.0.7:51820".parse().unwrap(),
    );
    let from_a = |len, counter, src| {
        let inner = ipv4_udp("198.18.99.2", "198.18.2.2", len, 64);
        from_peer_at(&inner, LOCAL_INDEX, counter, &K_RECV, src)
    };
    let from_b = |len, counter| {
        let inner = ipv4_udp("198.18.98.2", "198.18.2.2", len, 64);
        from_peer_at(&inner, LOCAL_B, counter, &K_RECV_B, b_home)
    };
    let q = &mut gw.worker.io.rx[0];
    q.push_back(from_a(10, 0, a_home));
    q.push_back(from_b(20, 0));
    q.push_back(from_a(30, 1, a_away));
    q.push_back(from_b(21, 0));
    q.push_back(from_a(11, 0, a_home));
    q.push_back(from_b(40, 1));
    gw.worker.poll();
    let out = std::mem::take(&mut gw.worker.io.tx[1]);
    let payloads: Vec<usize> = out
        .iter()
        .map(|f| f.len() - ethernet::HEADER_LEN - 28)
        .collect();
    assert_eq!(
        payloads,
        [10, 20, 30, 40],
        "vector order kept, duplicates gone"
    );
    let c = gw.worker.counters();
    assert_eq!(c.decrypt.get(DecryptDrop::Replay), 2);
    let rx = |p: &Peer| gw.shared.activity.total(p.id).rx.packets;
    assert_eq!((rx(&gw.peer), rx(&peer_b)), (2, 2));
    assert_eq!(
        gw.peer.endpoint(),
        Some(a_away),
        "A follows its latest packet"
    );
    assert_eq!(peer_b.endpoint(), Some(b_home));
    // The next vector: an old counter is refused before any crypto.
    gw.worker.io.rx[0].push_back(from_a(12, 1, a_away));
    gw.worker.poll();
    assert_eq!(gw.worker.counters().decrypt.get(DecryptDrop::Replay), 3);
    assert!(gw.worker.io.tx[1].is_empty());

    // Encrypt: A, B, A, A, B from the inside; each keypair's nonces run on in vector
    // order.
    for dst in [
        "198.18.99.2",
        "198.18.98.2",
        "198.18.99.2",
        "198.18.99.2",
        "198.18.98.2",
    ] {
        let inner = ipv4_udp("198.18.2.2", dst, 50, 64);
        gw.worker.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner));
    }
    gw.worker.poll();
    let sent: Vec<(u32, u64)> = gw.worker.io.tx[0]
        .iter()
        .map(|f| {
            let e = EthernetFrame::new_checked(f.data()).unwrap();
            let p = Ipv4Packet::new_checked(e.payload()).unwrap();
            let u = UdpPacket::new_checked(p.payload()).unwrap();
            let t = Transport::new_checked(u.payload()).unwrap();
            (t.receiver(), t.counter())
        })
        .collect();
    assert_eq!(
        sent,
        [
            (REMOTE_INDEX, 0),
            (REMOTE_B, 0),
            (REMOTE_INDEX, 1),
            (REMOTE_INDEX, 2),
            (REMOTE_B, 1)
        ]
    );
    let tx = |p: &Peer| gw.shared.activity.total(p.id).tx.packets;
    assert_eq!((tx(&gw.peer), tx(&peer_b)), (3, 2));
    // A's endpoint moved: its frames go there.
    let e = EthernetFrame::new_checked(gw.worker.io.tx[0][0].data()).unwrap();
    let p = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert_eq!(p.dst_addr(), "198.19.0.9".parse::<Ipv4Addr>().unwrap());
    assert_conserved(gw.worker.counters());
}

/// Ports whose devices check and fill checksums: classify takes the device's verdict on
/// a received IPv4 header instead of summing it, and encrypt leaves the outer checksums to
/// the device, asking for them on the packet.
#[test]
fn checksums_are_left_to_devices_that_offer_them() {
    use dataplane::buf::{RxChecksum, TxChecksum};
    use dataplane::counters::ClassifyDrop;
    let mut gw = gateway(true, true);
    let mut t = (**gw.shared.tables.load()).clone();
    t.ports[Side::Outside.index()].offloads = dpdk_sys::Offloads {
        rx_ipv4_checksum: true,
        tx_ipv4_checksum: true,
        tx_udp_checksum: true,
    };
    gw.shared.tables.store(Arc::new(t));

    // Received: a broken header the device calls good passes, a sound one it calls bad
    // is dropped, and without a verdict the header is summed as before.
    let inner = ipv4_udp("198.18.2.2", "198.18.99.2", 100, 64);
    let mut broken = inner.clone();
    broken[10] ^= 0xff;
    let mut judged = |ip: &[u8], verdict| {
        let mut f = frame(IN_MAC, LAN_MAC, EtherType::Ipv4, ip);
        f.set_rx_ipv4_checksum(verdict);
        gw.worker.io.rx[Side::Inside.index()].push_back(f);
    };
    judged(&broken, RxChecksum::Good);
    judged(&inner, RxChecksum::Bad);
    judged(&broken, RxChecksum::Unknown);
    judged(&inner, RxChecksum::Unknown);
    gw.worker.poll();
    let c = gw.worker.counters();
    assert_eq!(c.classify.get(ClassifyDrop::BadChecksum), 2, "{c:?}");
    let out = std::mem::take(&mut gw.worker.io.tx[Side::Outside.index()]);
    assert_eq!(out.len(), 2);

    // Sent over IPv4: the header checksum is 0, for the device to fill.
    for pkt in &out {
        let f = EthernetFrame::new_checked(pkt.data()).unwrap();
        let ip4 = Ipv4Packet::new_checked(f.payload()).unwrap();
        assert_eq!(ip4.checksum(), 0);
        assert_eq!(pkt.tx_checksum(), Some((14, 20, TxChecksum::Ipv4Header)));
    }

    // Sent over IPv6: the UDP checksum field holds the pseudo-header's sum; completed the
    // way a device does (the sum of the datagram with it, complemented), it verifies.
    let peer6: SocketAddr = "[2001:2:0:1::9]:51820".parse().unwrap();
    gw.peer.set_endpoint(peer6);
    let mut n = (**gw.shared.neighbors.load()).clone();
    n.insert(Side::Outside, peer6.ip(), PEER_MAC);
    gw.shared.neighbors.store(Arc::new(n));
    gw.worker.io.rx[Side::Inside.index()].push_back(frame(
        IN_MAC,
        LAN_MAC,
        EtherType::Ipv4,
        &inner,
    ));
    gw.worker.poll();
    let mut out = std::mem::take(&mut gw.worker.io.tx[Side::Outside.index()]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].tx_checksum(), Some((14, 40, TxChecksum::Ipv6Udp)));
    let ip6 = &mut out[0].data_mut()[14..];
    let (src, dst) = {
        let p = Ipv6Packet::new_checked(&*ip6).unwrap();
        (p.src_addr(), p.dst_addr())
    };
    let udp = &mut ip6[40..];
    let pseudo =
        dataplane::wire::checksum::pseudo_header_v6(&src, &dst, IpProtocol::Udp, udp.len() as u32);
    assert_eq!(u16::from_be_bytes([udp[6], udp[7]]), pseudo);
    let filled = !dataplane::wire::checksum::data(udp);
    udp[6..8].copy_from_slice(&filled.to_be_bytes());
    assert!(UdpPacket::new_checked(&*udp)
        .unwrap()
        .verify_checksum_v6(&src, &dst));
    assert_conserved(gw.worker.counters());
}

/// An IPv4 UDP packet whose identification field numbers it.
fn numbered(src: &str, dst: &str, n: u16) -> Vec<u8> {
    let mut b = ipv4_udp(src, dst, 32, 64);
    let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
    p.set_ident(n);
    p.fill_checksum();
    b
}

/// A worker sharing with a second one (module `spread`), as `wgdp` builds them.
fn crew_of_two(gw: Gw) -> (Worker<MemIo>, Worker<MemIo>, Arc<Shared>, Arc<Peer>) {
    let mut crews = dataplane::spread::crews(2).into_iter();
    let owner = gw.worker.with_crew(crews.next().unwrap(), true);
    let helper = Worker::new(
        MemIo {
            now: 1_000,
            ..Default::default()
        },
        gw.shared.clone(),
        Arc::new(WorkerCounters::default()),
        Backend::software(),
        256,
    )
    .with_crew(crews.next().unwrap(), true);
    (owner, helper, gw.shared, gw.peer)
}

/// One peer's tunnel, both ways, on a worker that cannot keep up and a quiet one: the
/// quiet one opens and seals part of every vector, and every packet leaves the first
/// worker in the order it arrived, the nonces of what it sends in that order too.
#[test]
fn one_busy_tunnel_shares_its_aead_and_keeps_its_order() {
    use dataplane::counters::SpreadEvent;
    const ROUNDS: u16 = 12;
    const BURST: u16 = 256;
    let (mut owner, mut helper, shared, peer) = crew_of_two(gateway(true, true));
    let mut sent = 0u16;
    for _ in 0..ROUNDS {
        for _ in 0..BURST {
            let inner = numbered("198.18.99.2", "198.18.2.2", sent);
            owner.io.rx[0].push_back(from_peer(&inner, LOCAL_INDEX, sent.into(), &K_RECV));
            let lan = numbered("198.18.2.2", "198.18.99.2", sent);
            owner.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &lan));
            sent += 1;
        }
        owner.poll();
        helper.poll();
    }
    // What is still in flight comes back and leaves.
    for _ in 0..16 {
        if owner.in_flight() == 0 {
            break;
        }
        helper.poll();
        owner.poll();
    }
    assert_eq!(owner.in_flight(), 0);

    let decrypted: Vec<u16> = owner.io.tx[1]
        .iter()
        .map(|f| {
            let f = EthernetFrame::new_checked(f.data()).unwrap();
            Ipv4Packet::new_checked(f.payload()).unwrap().ident()
        })
        .collect();
    assert_eq!(
        decrypted,
        (0..sent).collect::<Vec<_>>(),
        "decrypted out of order"
    );
    let mut nonces = Vec::new();
    let mut encrypted = Vec::new();
    for f in &owner.io.tx[0] {
        let f = EthernetFrame::new_checked(f.data()).unwrap();
        let ip4 = Ipv4Packet::new_checked(f.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip4.payload()).unwrap();
        let t = Transport::new_checked(udp.payload()).unwrap();
        let mut sealed = udp.payload()[16..].to_vec();
        TransportKey::new(&K_SEND)
            .open(t.counter(), &mut sealed)
            .expect("a frame that authenticates");
        nonces.push(t.counter());
        encrypted.push(Ipv4Packet::new_checked(&sealed[..]).unwrap().ident());
    }
    assert_eq!(
        encrypted,
        (0..sent).collect::<Vec<_>>(),
        "sealed out of order"
    );
    assert_eq!(
        nonces,
        (0..u64::from(sent)).collect::<Vec<_>>(),
        "nonces out of order"
    );

    // The second worker did part of both, and sent nothing of its own.
    let (o, h) = (owner.counters(), helper.counters());
    assert!(h.spread.get(SpreadEvent::HelpedOpen) > 0, "{:?}", h.spread);
    assert!(h.spread.get(SpreadEvent::HelpedSeal) > 0, "{:?}", h.spread);
    assert_eq!(
        o.spread.get(SpreadEvent::HandedOpen),
        h.spread.get(SpreadEvent::HelpedOpen)
    );
    assert_eq!(
        o.spread.get(SpreadEvent::HandedSeal),
        h.spread.get(SpreadEvent::HelpedSeal)
    );
    assert!(helper.io.tx.iter().all(Vec::is_empty));
    assert_eq!(o.decrypt.total() + o.encrypt.total(), 0, "{o:?}");
    assert_conserved(o);
    assert_conserved(h);
    let total = shared.activity.total(peer.id);
    assert_eq!(
        (total.rx.packets, total.tx.packets),
        (sent.into(), sent.into())
    );
}

/// Two workers that are both busy (many peers spread by RSS) share nothing: neither is
/// quiet enough to help the other.
#[test]
fn busy_workers_share_nothing() {
    let (mut a, mut b, _, _) = crew_of_two(gateway(true, true));
    let mut n = 0u16;
    for _ in 0..12 {
        for w in [&mut a, &mut b] {
            for _ in 0..256 {
                let lan = numbered("198.18.2.2", "198.18.99.2", n);
                w.io.rx[1].push_back(frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &lan));
                n += 1;
            }
            w.poll();
        }
    }
    for w in [&a, &b] {
        let c = w.counters();
        assert_eq!(c.spread.total(), 0, "{:?}", c.spread);
        assert_eq!(c.traffic.tx_outside.get(), 12 * 256);
        assert_eq!(w.in_flight(), 0);
        assert_conserved(c);
    }
}
