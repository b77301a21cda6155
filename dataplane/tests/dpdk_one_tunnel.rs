//! One tunnel on two workers: a single peer whose traffic, both ways, reaches queue 0 of
//! each port (one outer UDP flow, one inner flow: RSS cannot spread it), with a second
//! worker whose queues stay empty. Two real `Worker<DpdkIo>`s on EAL lcores 1 and 2
//! (`--lcores 0@0,1@1,2@0`: lcore 2 shares the CPU of the test's own thread), built as
//! `wgdp` builds them (`spread::crews`, `Worker::with_crew`).
//!
//! Worker 0 cannot keep up from its first vector on (the test fills its queues before
//! the workers start, and keeps them filled), so it hands part of its AEAD to worker 1.
//! The test checks that every packet came out of worker 0's queues exactly once and in
//! the order it went in, that the nonces of the sealed packets are 0, 1, 2, ... in that
//! order, that worker 1 opened and sealed some of them and sent none itself, and that
//! every mbuf is back in its pool.
//!
//! Needs root (DPDK EAL); skipped with a message otherwise. One test per file, as
//! `rte_eal_init` runs once per process. No PCI device is probed and no hugepage is used.

mod common;

use common::{
    frame, ipv4_ports, ipv4_udp, is_root, live_keypair, mbuf, rig, start_workers, transport,
    StopOnDrop, RING_SLOTS,
};
use dataplane::allowed::Writer;
use dataplane::counters::SpreadEvent;
use dataplane::crypto::TransportKey;
use dataplane::session::{Peer, Sessions};
use dataplane::tables::{Neighbors, Shared, Side, Tables};
use dataplane::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use dataplane::wire::{EtherType, EthernetFrame, Ipv4Packet, MacAddr, UdpPacket};
use dpdk_sys::{Mbuf, Mempool, Ring};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "dpdk_one_tunnel";
const WORKERS: usize = 2;
/// Packets each way.
const PACKETS: usize = 20_000;
/// Packets the test keeps queued for worker 0 per direction, at most.
const QUEUED: usize = 2048;
const LISTEN_PORT: u16 = 51820;
const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
/// What we seal with (the peer opens), and what the peer seals with (we open).
const K_SEND: [u8; 32] = [0x41; 32];
const K_RECV: [u8; 32] = [0x82; 32];
const LOCAL_INDEX: u32 = 0x100;
const REMOTE_INDEX: u32 = 0x7000_0000;
const LAN: &str = "198.18.2.2";
const BEHIND: &str = "198.18.100.1";

const EAL_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "--lcores",
    "0@0,1@1,2@0",
    "--log-level",
    "warning",
    "--file-prefix=wgdp-dpdk_one_tunnel",
];

fn endpoint() -> SocketAddr {
    "198.19.1.1:51820".parse().unwrap()
}

fn gateway() -> (Arc<Shared>, Arc<Peer>) {
    let peer = Arc::new(Peer::new(0, Some(endpoint())));
    // In rte_fib, as wgdp has them.
    let allowed = Writer::new(true).build([(BEHIND.parse().unwrap(), 32, 0)]);
    assert!(allowed.on_fib());
    let tables = Tables {
        ports: ipv4_ports(OUT_MAC, IN_MAC),
        allowed,
        listen_port: LISTEN_PORT,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, Sessions::new(12, 4)));
    live_keypair(
        &shared,
        &peer,
        (LOCAL_INDEX, REMOTE_INDEX),
        &K_SEND,
        &K_RECV,
    );
    let mut n = Neighbors::default();
    n.insert(Side::Inside, LAN.parse().unwrap(), LAN_MAC);
    n.insert(Side::Outside, endpoint().ip(), PEER_MAC);
    shared.neighbors.store(Arc::new(n));
    (shared, peer)
}

/// An IPv4/UDP packet whose payload is its number, padded to a few hundred bytes.
fn inner(src: &str, dst: &str, seq: usize) -> Vec<u8> {
    let mut payload = (seq as u32).to_be_bytes().to_vec();
    payload.resize(200 + seq % 300, 0x5a);
    ipv4_udp(src, dst, 40000, 5201, &payload)
}

/// The number of an inner packet.
fn number(ip: &[u8]) -> usize {
    u32::from_be_bytes(ip[28..32].try_into().unwrap()) as usize
}

/// The peer's transport message `seq` to us.
fn from_peer(seq: usize) -> Vec<u8> {
    let msg = transport(LOCAL_INDEX, seq as u64, &K_RECV, &inner(BEHIND, LAN, seq));
    let ip = endpoint().ip().to_string();
    let udp = ipv4_udp(&ip, "198.19.0.2", LISTEN_PORT, LISTEN_PORT, &msg);
    frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &udp)
}

fn to_peer(seq: usize) -> Vec<u8> {
    frame(IN_MAC, LAN_MAC, EtherType::Ipv4, &inner(LAN, BEHIND, seq))
}

/// Puts more of `next..end` into `ring`, up to `QUEUED` queued and never more than a
/// ring holds (its slots less one) not yet taken back (`done`) out of the other port,
/// whose TX ring then always has room; the new `next`.
fn feed(
    pool: &Mempool,
    ring: &Ring,
    next: usize,
    end: usize,
    done: usize,
    make: fn(usize) -> Vec<u8>,
) -> usize {
    let room = QUEUED
        .saturating_sub(ring.count() as usize)
        .min((RING_SLOTS as usize - 1).saturating_sub(next - done));
    let end = (next + room).min(end);
    let mut pkts: Vec<Mbuf> = (next..end).map(|s| mbuf(pool, &make(s))).collect();
    let n = ring.enqueue_burst(&mut pkts);
    assert_eq!(n, end - next, "{TEST}: ring of {RING_SLOTS} full");
    end
}

#[test]
fn one_tunnel_on_two_workers_keeps_its_order() {
    if !is_root() {
        eprintln!("{TEST}: skipped: needs root (DPDK EAL)");
        return;
    }
    let (eal, pool, outside, inside) = rig(TEST, EAL_ARGS, "dot", WORKERS);
    let (shared, peer) = gateway();

    // Worker 0's queues are full before it starts: it cannot keep up from the first
    // vector on.
    let mut fed_out = feed(&pool, &outside.rx[0], 0, PACKETS, 0, from_peer);
    let mut fed_in = feed(&pool, &inside.rx[0], 0, PACKETS, 0, to_peer);

    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let (counters, control_rings) = start_workers(
        &eal,
        "dot_a",
        WORKERS,
        256,
        &shared,
        [&outside, &inside],
        &pool,
        &stop.0,
    );

    // Keep worker 0 fed, and check what leaves as it leaves.
    let opener = TransportKey::new(&K_SEND);
    let (mut decrypted, mut encrypted) = (0usize, 0usize);
    let mut out: Vec<Mbuf> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (decrypted < PACKETS || encrypted < PACKETS) && Instant::now() < deadline {
        fed_out = feed(
            &pool,
            &outside.rx[0],
            fed_out,
            PACKETS,
            decrypted,
            from_peer,
        );
        fed_in = feed(&pool, &inside.rx[0], fed_in, PACKETS, encrypted, to_peer);
        inside.tx[0].dequeue_burst(&mut out, 512);
        for m in out.drain(..) {
            let f = EthernetFrame::new_checked(m.data()).unwrap();
            assert_eq!(f.dst_addr(), MacAddr(LAN_MAC));
            assert_eq!(number(f.payload()), decrypted, "decrypted out of order");
            decrypted += 1;
        }
        outside.tx[0].dequeue_burst(&mut out, 512);
        for m in out.drain(..) {
            let f = EthernetFrame::new_checked(m.data()).unwrap();
            let ip = Ipv4Packet::new_checked(f.payload()).unwrap();
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            let t = Transport::new_checked(udp.payload()).unwrap();
            assert_eq!(t.receiver(), REMOTE_INDEX);
            assert_eq!(t.counter(), encrypted as u64, "nonce out of order");
            let mut body = udp.payload()[TRANSPORT_HEADER_LEN..].to_vec();
            let n = opener
                .open(t.counter(), &mut body)
                .unwrap_or_else(|| panic!("counter {} does not open", t.counter()));
            assert_eq!(number(&body[..n]), encrypted, "sealed out of order");
            encrypted += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    stop.0.store(true, Ordering::Relaxed);
    for w in 0..WORKERS {
        assert_eq!(eal.wait_lcore(w as u32 + 1), 0, "worker {w} failed");
    }
    assert_eq!((decrypted, encrypted), (PACKETS, PACKETS), "{counters:?}");

    // Worker 1 opened and sealed part of the tunnel's packets, and sent none.
    let (owner, helper) = (&counters[0], &counters[1]);
    for (handed, helped) in [
        (SpreadEvent::HandedOpen, SpreadEvent::HelpedOpen),
        (SpreadEvent::HandedSeal, SpreadEvent::HelpedSeal),
    ] {
        assert!(helper.spread.get(helped) > 0, "{:?}", helper.spread);
        assert_eq!(owner.spread.get(handed), helper.spread.get(helped));
    }
    assert_eq!(
        helper.traffic.tx_outside.get() + helper.traffic.tx_inside.get(),
        0
    );
    for (w, c) in counters.iter().enumerate() {
        assert_eq!(c.drops(), 0, "worker {w}: {c:?}");
        assert_eq!(c.punt.total(), 0, "worker {w}: {c:?}");
    }
    for q in 0..WORKERS {
        assert_eq!((outside.tx[q].count(), inside.tx[q].count()), (0, 0));
    }
    let a = shared.activity.total(peer.id);
    assert_eq!(
        (a.rx.packets, a.tx.packets),
        (PACKETS as u64, PACKETS as u64)
    );
    eprintln!(
        "{TEST}: worker 1 opened {} and sealed {} of {PACKETS} each way",
        helper.spread.get(SpreadEvent::HelpedOpen),
        helper.spread.get(SpreadEvent::HelpedSeal)
    );

    for (to, from) in &control_rings {
        assert_eq!((to.count(), from.count()), (0, 0));
    }
    drop(control_rings);

    // Stopped in the middle of shared work: what the workers hold when told to stop
    // still leaves (the owner's flights drain, the helper serves them until none is
    // out), and every mbuf comes back.
    let (more, end) = (PACKETS, 2 * PACKETS);
    let fed = feed(&pool, &outside.rx[0], more, end, more, from_peer) - more
        + feed(&pool, &inside.rx[0], more, end, more, to_peer)
        - more;
    stop.0.store(false, Ordering::Relaxed);
    let (counters, control_rings) = start_workers(
        &eal,
        "dot_b",
        WORKERS,
        256,
        &shared,
        [&outside, &inside],
        &pool,
        &stop.0,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters[1].spread.total() == 0 && Instant::now() < deadline {
        std::hint::spin_loop();
    }
    stop.0.store(true, Ordering::Relaxed);
    for w in 0..WORKERS {
        assert_eq!(eal.wait_lcore(w as u32 + 1), 0, "worker {w} failed");
    }
    let (owner, helper) = (&counters[0], &counters[1]);
    assert!(helper.spread.total() > 0, "{:?}", helper.spread);
    let t = &owner.traffic;
    assert_eq!(
        t.rx_outside.get() + t.rx_inside.get(),
        t.tx_outside.get() + t.tx_inside.get(),
        "{owner:?}"
    );
    assert_eq!(owner.drops(), 0, "{owner:?}");
    let mut left: Vec<Mbuf> = Vec::new();
    for wire in [&outside, &inside] {
        for ring in wire.rx.iter().chain(&wire.tx) {
            ring.dequeue_burst(&mut left, RING_SLOTS as usize);
        }
    }
    // Every packet fed is in a ring: never read, or sent.
    assert_eq!(left.len(), fed);
    drop(left);
    drop(control_rings);
    drop((outside, inside));
    assert_eq!(pool.in_use_count(), 0, "mbufs still out");
    drop(pool);
}
