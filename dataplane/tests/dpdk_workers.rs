//! Three real `Worker<DpdkIo>`s on EAL lcores 1, 2 and 3 (which share the machine's CPUs:
//! `--lcores 0@0,1@1,2@0,3@1`), between two ring-backed ports of three queue pairs each,
//! with many peers: what several workers do to each other's traffic.
//!
//! Each port is a `net_ring` device over one DPDK ring per queue and direction
//! (`Port::start_on_rings`). The test plays RSS: a peer's transport messages reach the
//! outside queue of its endpoint's hash, and the LAN's packets to it the inside queue of
//! another hash, so that every worker decrypts for some peers and encrypts for others,
//! and some peers are decrypted by one worker and encrypted by another. It checks that
//! every packet came out exactly once and in its flow's order, each peer's nonces were
//! used once, every worker did work in both directions, the workers' per-peer counts add
//! up to the traffic, and every mbuf is back in its pool.
//!
//! Needs root (DPDK EAL); skipped with a message otherwise. One test per file, as
//! `rte_eal_init` runs once per process. No PCI device is probed and no hugepage is used.

mod common;

use common::{
    frame, ipv4_ports, ipv4_udp, is_root, live_keypair, mbuf, rig, start_workers, transport,
    StopOnDrop,
};
use dataplane::allowed::Writer;
use dataplane::counters::WorkerCounters;
use dataplane::crypto::TransportKey;
use dataplane::session::{Peer, Sessions};
use dataplane::tables::{Neighbors, Shared, Side, Tables};
use dataplane::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use dataplane::wire::{EtherType, EthernetFrame, Ipv4Packet, MacAddr, UdpPacket};
use dpdk_sys::Mbuf;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "dpdk_workers";
const WORKERS: usize = 3;
const PEERS: usize = 30;
/// Packets each way per peer.
const PER_PEER: usize = 60;
const LISTEN_PORT: u16 = 51820;
const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];

const EAL_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "--lcores",
    "0@0,1@1,2@0,3@1",
    "--log-level",
    "warning",
    "--file-prefix=wgdp-dpdk_workers",
];

/// Peer `p`'s keys: what we send with (it opens), what it seals with (we open).
fn keys(p: usize) -> ([u8; 32], [u8; 32]) {
    ([0x40 + p as u8; 32], [0x80 + p as u8; 32])
}

fn endpoint(p: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(198, 19, 1, p as u8 + 1)),
        LISTEN_PORT,
    )
}

/// The address behind peer `p`.
fn behind(p: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 100, p as u8 + 1)
}

fn local_index(p: usize) -> u32 {
    0x100 + p as u32
}

fn remote_index(p: usize) -> u32 {
    0x7000_0000 + p as u32
}

/// The queue a peer's transport messages reach, and the queue of the LAN's packets to it:
/// two different hashes, as two RSS keys over different headers would give.
fn outside_queue(p: usize) -> usize {
    p % WORKERS
}

fn inside_queue(p: usize) -> usize {
    (p / WORKERS) % WORKERS
}

fn gateway() -> (Arc<Shared>, Vec<Arc<Peer>>) {
    let peers: Vec<Arc<Peer>> = (0..PEERS)
        .map(|p| Arc::new(Peer::new(p as u32, Some(endpoint(p)))))
        .collect();
    // In rte_fib, as wgdp has them.
    let allowed =
        Writer::new(true).build((0..PEERS).map(|p| (IpAddr::V4(behind(p)), 32, p as u32)));
    assert!(allowed.on_fib());
    let tables = Tables {
        ports: ipv4_ports(OUT_MAC, IN_MAC),
        allowed,
        listen_port: LISTEN_PORT,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, Sessions::new(12, PEERS)));
    let mut n = Neighbors::default();
    n.insert(Side::Inside, "198.18.2.2".parse().unwrap(), LAN_MAC);
    for (p, peer) in peers.iter().enumerate() {
        let (send, recv) = keys(p);
        live_keypair(
            &shared,
            peer,
            (local_index(p), remote_index(p)),
            &send,
            &recv,
        );
        n.insert(Side::Outside, endpoint(p).ip(), PEER_MAC);
    }
    shared.neighbors.store(Arc::new(n));
    (shared, peers)
}

/// An IPv4/UDP packet from `src` to `dst` whose payload is (peer, seq).
fn inner(src: Ipv4Addr, dst: Ipv4Addr, p: usize, seq: usize) -> Vec<u8> {
    let mut payload = (p as u32).to_be_bytes().to_vec();
    payload.extend_from_slice(&(seq as u32).to_be_bytes());
    ipv4_udp(&src.to_string(), &dst.to_string(), 40000, 5201, &payload)
}

/// (peer, seq) of an inner packet.
fn mark(ip: &[u8]) -> (usize, usize) {
    let p = &ip[28..36];
    (
        u32::from_be_bytes(p[..4].try_into().unwrap()) as usize,
        u32::from_be_bytes(p[4..].try_into().unwrap()) as usize,
    )
}

/// Peer `p`'s transport message `seq` to us.
fn from_peer(p: usize, seq: usize) -> Vec<u8> {
    let inner = inner(behind(p), "198.18.2.2".parse().unwrap(), p, seq);
    let msg = transport(local_index(p), seq as u64, &keys(p).1, &inner);
    let udp = ipv4_udp(
        &endpoint(p).ip().to_string(),
        "198.19.0.2",
        LISTEN_PORT,
        LISTEN_PORT,
        &msg,
    );
    frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &udp)
}

#[test]
fn three_workers_share_many_peers() {
    if !is_root() {
        eprintln!("{TEST}: skipped: needs root (DPDK EAL)");
        return;
    }
    let (eal, pool, outside, inside) = rig(TEST, EAL_ARGS, "dws", WORKERS);
    let (shared, peers) = gateway();

    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    // As `wgdp` builds them; with vectors of 32 and every worker busy, none shares.
    let (counters, control_rings) = start_workers(
        &eal,
        "dws",
        WORKERS,
        32,
        &shared,
        [&outside, &inside],
        &pool,
        &stop.0,
    );

    // Every peer's traffic, each flow in order on its queue.
    let lan: Ipv4Addr = "198.18.2.2".parse().unwrap();
    for p in 0..PEERS {
        let mut out: Vec<Mbuf> = (0..PER_PEER)
            .map(|s| mbuf(&pool, &from_peer(p, s)))
            .collect();
        let mut ins: Vec<Mbuf> = (0..PER_PEER)
            .map(|s| {
                mbuf(
                    &pool,
                    &frame(
                        IN_MAC,
                        LAN_MAC,
                        EtherType::Ipv4,
                        &inner(lan, behind(p), p, s),
                    ),
                )
            })
            .collect();
        assert_eq!(
            outside.rx[outside_queue(p)].enqueue_burst(&mut out),
            PER_PEER
        );
        assert_eq!(inside.rx[inside_queue(p)].enqueue_burst(&mut ins), PER_PEER);
    }

    let total = PEERS * PER_PEER;
    let (mut sent_out, mut sent_in) = (Vec::new(), Vec::new());
    let collect = |out: &mut Vec<Mbuf>, ins: &mut Vec<Mbuf>| {
        for q in 0..WORKERS {
            outside.tx[q].dequeue_burst(out, 256);
            inside.tx[q].dequeue_burst(ins, 256);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while (sent_out.len() < total || sent_in.len() < total) && Instant::now() < deadline {
        collect(&mut sent_out, &mut sent_in);
        std::thread::sleep(Duration::from_micros(200));
    }
    stop.0.store(true, Ordering::Relaxed);
    for w in 0..WORKERS {
        assert_eq!(eal.wait_lcore(w as u32 + 1), 0, "worker {w} failed");
    }
    collect(&mut sent_out, &mut sent_in);

    // Every worker did both kinds of work, and lost nothing.
    for (w, c) in counters.iter().enumerate() {
        let t = &c.traffic;
        assert!(
            t.decrypted.get() > 0 && t.encrypted.get() > 0,
            "worker {w}: {c:?}"
        );
        assert_eq!(c.drops(), 0, "worker {w}: {c:?}");
        assert_eq!(c.punt.total(), 0, "worker {w}: {c:?}");
        let entered = t.rx_outside.get() + t.rx_inside.get();
        assert_eq!(
            entered,
            t.tx_outside.get() + t.tx_inside.get(),
            "worker {w}: {c:?}"
        );
    }
    let sum = |f: fn(&WorkerCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    assert_eq!(sum(|c| c.traffic.decrypted.get()), total as u64);
    assert_eq!(sum(|c| c.traffic.encrypted.get()), total as u64);

    // Out of the inside: each peer's packets once each, in the order they were sealed.
    assert_eq!(sent_in.len(), total);
    let mut next = vec![0usize; PEERS];
    for m in &sent_in {
        let f = EthernetFrame::new_checked(m.data()).unwrap();
        assert_eq!(f.dst_addr(), MacAddr(LAN_MAC));
        let (p, seq) = mark(f.payload());
        assert_eq!(seq, next[p], "peer {p}: out of order or duplicated");
        next[p] += 1;
    }
    assert!(next.iter().all(|&n| n == PER_PEER));

    // Out of the outside: each peer's packets open with its key, nonces 0.. each once,
    // and the inner packets in order.
    assert_eq!(sent_out.len(), total);
    let mut nonces = vec![Vec::new(); PEERS];
    let mut next = vec![0usize; PEERS];
    for m in &sent_out {
        let f = EthernetFrame::new_checked(m.data()).unwrap();
        let ip = Ipv4Packet::new_checked(f.payload()).unwrap();
        let p = peers
            .iter()
            .position(|x| x.endpoint().map(|e| e.ip()) == Some(IpAddr::V4(ip.dst_addr())))
            .expect("sent to a peer's endpoint");
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let t = Transport::new_checked(udp.payload()).unwrap();
        assert_eq!(t.receiver(), remote_index(p));
        let counter = t.counter();
        let mut body = udp.payload()[TRANSPORT_HEADER_LEN..].to_vec();
        let n = TransportKey::new(&keys(p).0)
            .open(counter, &mut body)
            .unwrap_or_else(|| panic!("peer {p}: counter {counter} does not open"));
        let (q, seq) = mark(&body[..n]);
        assert_eq!(q, p);
        assert_eq!(seq, next[p], "peer {p}: out of order or duplicated");
        next[p] += 1;
        nonces[p].push(counter);
    }
    for (p, mut n) in nonces.into_iter().enumerate() {
        n.sort_unstable();
        assert_eq!(
            n,
            (0..PER_PEER as u64).collect::<Vec<_>>(),
            "peer {p}: nonces"
        );
        let a = shared.activity.total(p as u32);
        assert_eq!(
            (a.rx.packets, a.tx.packets),
            (PER_PEER as u64, PER_PEER as u64)
        );
    }

    drop((sent_out, sent_in));
    for (to, from) in &control_rings {
        assert_eq!((to.count(), from.count()), (0, 0));
    }
    drop(control_rings);
    drop((outside, inside));
    assert_eq!(pool.in_use_count(), 0, "mbufs still out");
    drop(pool);
}
