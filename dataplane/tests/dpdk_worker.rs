//! A real `Worker<DpdkIo>` on EAL lcore 1, between two ring-backed ports.
//!
//! Each port is a `net_ring` device over two DPDK rings (`Port::start_on_rings`): the
//! port receives what the test enqueues into its "wire in" ring and sends into its "wire
//! out" ring, which the test drains. From the main lcore the test feeds a few thousand
//! frames: transport messages sealed by the peer on the outside, plaintext for the peer
//! on the inside, hostile transport messages (replayed, forged, unknown receiver), ARP on
//! both ports, and frames the control thread asks the worker to send. It checks every
//! frame that comes out, the worker's counters by name, DPDK's port counters, and that
//! afterwards every mbuf is back in its pool.
//!
//! Then the same traffic through a worker whose AEAD is a crypto device
//! (`crypto_aesni_mb0`, asynchronous: submitted in one poll, collected in the same or a
//! later one), polled from the main lcore: every frame comes out as before, in the order
//! it arrived, the device did the work, and a stop with work in flight (`Worker::drain`)
//! leaves nothing behind.
//!
//! Needs root (DPDK EAL); skipped with a message otherwise. `rte_eal_init` runs once per
//! process, so this file holds a single test. No PCI device is probed and no hugepage
//! is used.

mod common;

use common::{frame, ipv4_udp, is_root, mbuf, transport};
use dataplane::activity::Totals;
use dataplane::allowed::Writer;
use dataplane::buf::PacketBuf;
use dataplane::counters::{Punt, WorkerCounters};
use dataplane::crypto::{Backend, TransportKey};
use dataplane::mbuf::DpdkIo;
use dataplane::meta;
use dataplane::session::{self, Keypair, Peer, Sessions};
use dataplane::tables::{LocalAddr, Neighbors, NextHop, PortTables, Shared, Side, Tables};
use dataplane::wire::wireguard::Transport;
use dataplane::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet,
    MacAddr, UdpPacket,
};
use dataplane::worker::{Idle, Worker};
use dpdk_sys::{Eal, Mbuf, Mempool, Port, Ring, SOCKET_ID_ANY};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::slice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEST: &str = "dpdk_worker";

const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
/// Our sending key: the peer opens what we send with it.
const K_SEND: [u8; 32] = [0x11; 32];
/// Our receiving key: the peer seals with it.
const K_RECV: [u8; 32] = [0x22; 32];
const K_FORGED: [u8; 32] = [0x33; 32];
const LOCAL_INDEX: u32 = 0x0000_1001;
const REMOTE_INDEX: u32 = 0x2002_0000;
const LISTEN_PORT: u16 = 51820;

/// Transport messages the peer sealed, counters 0.. in order.
const FROM_PEER: usize = 2000;
/// Plaintext packets from the inside network to the peer.
const TO_PEER: usize = 2000;
/// After every this many good transport messages, hostile ones follow.
const HOSTILE_EVERY: usize = 10;
/// Copies of a message already delivered (one per `HOSTILE_EVERY`).
const REPLAYED: usize = FROM_PEER / HOSTILE_EVERY;
/// The next counter sealed with the wrong key (one per `HOSTILE_EVERY`).
const FORGED: usize = FROM_PEER / HOSTILE_EVERY;
/// A good message addressed to a receiver index nobody has (every other round).
const UNKNOWN_INDEX: usize = FROM_PEER / HOSTILE_EVERY / 2;
/// Frames the control thread queues for each port.
const CONTROL_PER_SIDE: usize = 4;

const RX_OUTSIDE: usize = FROM_PEER + REPLAYED + FORGED + UNKNOWN_INDEX + 1;
const RX_INSIDE: usize = TO_PEER + 1;
const TX_OUTSIDE: usize = TO_PEER + CONTROL_PER_SIDE;
const TX_INSIDE: usize = FROM_PEER + CONTROL_PER_SIDE;
const PUNTED: usize = 2;

const POOL_SIZE: u32 = 8191;
const POOL_CACHE: u32 = 256;
/// Every ring holds all that can be in it at once, so nothing waits on the test.
const RING_SLOTS: u32 = 4096;
const BURST: usize = 32;

/// The EAL options of `ffi/tests`, with this file's own runtime prefix.
const EAL_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "-l",
    "0-1",
    "--log-level",
    "warning",
    "--file-prefix=wgdp-dpdk_worker",
    "--vdev",
    "crypto_aesni_mb0",
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn worker_on_lcore_moves_traffic_and_returns_every_mbuf() {
    if !is_root() {
        eprintln!("{TEST}: skipped: needs root (DPDK EAL)");
        return;
    }
    let eal = Eal::init(EAL_ARGS).unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let data_room = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let pool =
        Mempool::pktmbuf("dw_pool", POOL_SIZE, POOL_CACHE, data_room, SOCKET_ID_ANY).unwrap();

    ring_ports_refuse_single_user_ends(&pool);
    let Rig {
        outside,
        inside,
        to_control,
        from_control,
        io,
    } = Rig::new("", &pool);
    let gw = gateway();
    let counters = Arc::new(WorkerCounters::default());
    let mut worker = Worker::new(
        io,
        gw.shared.clone(),
        counters.clone(),
        Backend::software(),
        BURST,
    );
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let worker_stop = stop.0.clone();
    eal.remote_launch(1, move || {
        worker.run(&worker_stop, Idle::Poll);
        0
    })
    .unwrap();

    let mut outside_in = outside_traffic(&pool);
    let mut inside_in = inside_traffic(&pool);
    let mut control_in = control_frames(&pool);
    assert_eq!(outside_in.len(), RX_OUTSIDE);
    assert_eq!(inside_in.len(), RX_INSIDE);
    assert_eq!(outside.rx.enqueue_burst(&mut outside_in), RX_OUTSIDE);
    assert_eq!(inside.rx.enqueue_burst(&mut inside_in), RX_INSIDE);
    assert_eq!(
        from_control.enqueue_burst(&mut control_in),
        2 * CONTROL_PER_SIDE
    );

    let mut sent_outside = Vec::new();
    let mut sent_inside = Vec::new();
    let mut punted = Vec::new();
    let collect = |out: &mut Vec<Mbuf>, ins: &mut Vec<Mbuf>, punt: &mut Vec<Mbuf>| {
        outside.tx.dequeue_burst(out, 256);
        inside.tx.dequeue_burst(ins, 256);
        to_control.dequeue_burst(punt, 256);
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while (sent_outside.len() < TX_OUTSIDE
        || sent_inside.len() < TX_INSIDE
        || punted.len() < PUNTED)
        && Instant::now() < deadline
    {
        collect(&mut sent_outside, &mut sent_inside, &mut punted);
        std::thread::sleep(Duration::from_micros(100));
    }
    stop.0.store(true, Ordering::Relaxed);
    assert_eq!(eal.wait_lcore(1), 0, "the worker lcore failed");
    // Anything sent after the expected numbers were reached would be an excess.
    collect(&mut sent_outside, &mut sent_inside, &mut punted);

    let c = &*counters;
    // The worker read everything that was offered to it.
    assert_eq!(outside.rx.count(), 0, "{c:?}");
    assert_eq!(inside.rx.count(), 0, "{c:?}");
    assert_eq!(from_control.count(), 0, "{c:?}");

    check_counters(c, &gw.shared.activity.total(gw.peer.id));
    check_port_stats(&outside.port, RX_OUTSIDE, TX_OUTSIDE);
    check_port_stats(&inside.port, RX_INSIDE, TX_INSIDE);
    check_sent_outside(&sent_outside);
    check_sent_inside(&sent_inside);
    check_punted(&punted);

    drop((sent_outside, sent_inside, punted));
    assert_eq!(pool.in_use_count(), 0, "mbufs still out");
    assert_eq!(pool.avail_count(), pool.capacity());
    lcore_caches_are_counted(&eal, &pool);

    asynchronous_cryptodev(&pool);
    assert_eq!(
        pool.in_use_count(),
        0,
        "mbufs still out after the cryptodev run"
    );

    // Teardown in the order dpdk-sys asks for: ports and rings, then the pool, then
    // the EAL (last declared, dropped last).
    drop((outside, inside, to_control, from_control));
    drop(pool);
}

/// Raises the worker's stop flag when dropped, so that a failed assertion on the main
/// lcore unwinds instead of leaving `Eal`'s drop waiting for a worker that never returns.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Both wires, the rings to and from control, and the worker's I/O over them; `suffix`
/// keeps the names of a second rig apart (a port name cannot be used twice).
struct Rig {
    outside: Wire,
    inside: Wire,
    to_control: Arc<Ring>,
    from_control: Arc<Ring>,
    io: DpdkIo,
}

impl Rig {
    fn new(suffix: &str, pool: &Mempool) -> Rig {
        let outside = Wire::new(&format!("outside{suffix}"), pool);
        let inside = Wire::new(&format!("inside{suffix}"), pool);
        // The worker is the only producer of one and the only consumer of the other.
        let ring = |name: &str| {
            Arc::new(Ring::new(&format!("dw_{name}{suffix}"), 1024, true, true).unwrap())
        };
        let (to_control, from_control) = (ring("to_control"), ring("from_control"));
        let io = DpdkIo {
            ports: [outside.port.clone(), inside.port.clone()],
            queue: 0,
            to_control: to_control.clone(),
            from_control: from_control.clone(),
            pool: pool.clone(),
            doorbell: None,
        };
        Rig {
            outside,
            inside,
            to_control,
            from_control,
            io,
        }
    }
}

/// One port and the two rings that stand in for its wire.
struct Wire {
    port: Arc<Port>,
    /// What the port receives: the test produces, the port consumes.
    rx: Arc<Ring>,
    /// What the port sent: the port produces, the test consumes.
    tx: Arc<Ring>,
}

impl Wire {
    fn new(name: &str, pool: &Mempool) -> Wire {
        let rx = Arc::new(Ring::new(&format!("dw_{name}_rx"), RING_SLOTS, true, false).unwrap());
        let tx = Arc::new(Ring::new(&format!("dw_{name}_tx"), RING_SLOTS, false, true).unwrap());
        let port = Port::start_on_rings(name, slice::from_ref(&rx), slice::from_ref(&tx), pool)
            .unwrap_or_else(|e| panic!("{TEST}: {e}"));
        assert_eq!(port.name(), format!("net_ring_{name}"));
        Wire {
            port: Arc::new(port),
            rx,
            tx,
        }
    }
}

/// The port shares the ring ends it uses with the rings' owners, so those ends must be
/// safe for two users.
fn ring_ports_refuse_single_user_ends(pool: &Mempool) {
    let single = Arc::new(Ring::new("dw_single", 64, true, true).unwrap());
    let shared = Arc::new(Ring::new("dw_shared", 64, false, false).unwrap());
    for (rx, tx, mode) in [
        (&single, &shared, "single-consumer"),
        (&shared, &single, "single-producer"),
    ] {
        let err = Port::start_on_rings("refused", slice::from_ref(rx), slice::from_ref(tx), pool)
            .expect_err("a single-user end cannot be shared with the port");
        assert!(
            err.to_string().contains(&format!("dw_single is {mode}")),
            "{err}"
        );
    }
}

struct Gateway {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
}

/// The gateway of `worker_path.rs`: one peer behind 198.18.99.2/32 and 2001:2:0:99::/64
/// at 198.19.0.1:51820, a LAN host at 198.18.2.2 and 2001:2:0:2::2, both neighbors
/// resolved, and one keypair installed for sending and receiving.
fn gateway() -> Gateway {
    let mut outside = PortTables::new(
        OUT_MAC,
        vec![LocalAddr {
            addr: ip("198.19.0.2"),
            prefix_len: 24,
        }],
    );
    outside
        .fib
        .insert(ip("0.0.0.0"), 0, NextHop::Via(ip("198.19.0.254")));
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
    let peer = Arc::new(Peer::new(
        0,
        Some(SocketAddr::new(ip("198.19.0.1"), LISTEN_PORT)),
    ));
    // IPv4 in rte_fib, as wgdp has them.
    let allowed =
        Writer::new(true).build([(ip("198.18.99.2"), 32, 0), (ip("2001:2:0:99::"), 64, 0)]);
    assert!(allowed.on_fib());
    let tables = Tables {
        ports: [outside, inside],
        allowed,
        listen_port: LISTEN_PORT,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, Sessions::new(12, 8)));
    // The worker reads the real clock, so the keypair is made now.
    let kp = Arc::new(Keypair::new(
        peer.clone(),
        LOCAL_INDEX,
        REMOTE_INDEX,
        &K_SEND,
        &K_RECV,
        true,
        session::now(),
    ));
    shared.sessions.install(kp.clone()).unwrap();
    shared.sessions.set_sending(kp);
    let mut n = Neighbors::default();
    n.insert(Side::Outside, ip("198.19.0.1"), PEER_MAC);
    n.insert(Side::Inside, ip("198.18.2.2"), LAN_MAC);
    n.insert(Side::Inside, ip("2001:2:0:2::2"), LAN_MAC);
    shared.neighbors.store(Arc::new(n));
    Gateway { shared, peer }
}

/// Inner packet number `seq`, IPv6 for every fourth, with a UDP payload of varied length
/// (so the padding varies) that starts with `seq`.
fn inner(seq: usize, toward_peer: bool) -> Vec<u8> {
    let payload_len = 8 + seq % 97;
    let mut payload = vec![0u8; payload_len];
    payload[..4].copy_from_slice(&(seq as u32).to_be_bytes());
    for (i, b) in payload[4..].iter_mut().enumerate() {
        *b = (seq + i) as u8;
    }
    let (v4, v6) = if toward_peer {
        (
            ("198.18.2.2", "198.18.99.2"),
            ("2001:2:0:2::2", "2001:2:0:99::7"),
        )
    } else {
        (
            ("198.18.99.2", "198.18.2.2"),
            ("2001:2:0:99::5", "2001:2:0:2::2"),
        )
    };
    if seq % 4 == 3 {
        ipv6_udp(v6.0, v6.1, 40000, 5201, &payload)
    } else {
        ipv4_udp(v4.0, v4.1, 40000, 5201, &payload)
    }
}

fn ipv6_udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut b = vec![0u8; 40 + 8 + payload.len()];
    let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
    p.set_version(6);
    p.set_payload_len((8 + payload.len()) as u16);
    p.set_next_header(IpProtocol::Udp);
    p.set_hop_limit(64);
    p.set_src_addr(&src);
    p.set_dst_addr(&dst);
    let mut u = UdpPacket::new_unchecked(&mut b[40..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len((8 + payload.len()) as u16);
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum_v6(&src, &dst);
    b
}

/// `inner` as the gateway forwards it: one hop less.
fn forwarded(inner: &[u8]) -> Vec<u8> {
    let mut b = inner.to_vec();
    if b[0] >> 4 == 4 {
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_ttl(63);
        p.fill_checksum();
    } else {
        Ipv6Packet::new_unchecked(&mut b[..]).set_hop_limit(63);
    }
    b
}

/// The sequence number `inner` put at the start of the UDP payload.
fn seq_of(ip_packet: &[u8]) -> usize {
    let udp_at = if ip_packet[0] >> 4 == 4 { 20 } else { 40 };
    let p = &ip_packet[udp_at + 8..];
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize
}

fn ethertype_of(ip_packet: &[u8]) -> EtherType {
    if ip_packet[0] >> 4 == 4 {
        EtherType::Ipv4
    } else {
        EtherType::Ipv6
    }
}

/// A transport message from the peer to us: `inner` padded to 16 bytes and sealed
/// under `key` with `counter`, in UDP from the peer's endpoint to our listen port.
fn from_peer(inner: &[u8], receiver: u32, counter: u64, key: &[u8; 32]) -> Vec<u8> {
    let msg = transport(receiver, counter, key, inner);
    let udp = ipv4_udp("198.19.0.1", "198.19.0.2", LISTEN_PORT, LISTEN_PORT, &msg);
    frame(OUT_MAC, PEER_MAC, EtherType::Ipv4, &udp)
}

fn arp(operation: ArpOperation, sender: ([u8; 6], &str), target: ([u8; 6], &str)) -> Vec<u8> {
    let repr = ArpRepr {
        operation,
        sender_hardware_addr: MacAddr(sender.0),
        sender_protocol_addr: sender.1.parse().unwrap(),
        target_hardware_addr: MacAddr(target.0),
        target_protocol_addr: target.1.parse().unwrap(),
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    b
}

/// What arrives on the outside: the peer's messages with counters 0.. in order, and after
/// every `HOSTILE_EVERY` of them a replay of an earlier one, a forgery of the next
/// counter (which must not stop the real one), and every other round a message to an
/// unknown receiver index. Then an ARP request for our outside address.
fn outside_traffic(pool: &Mempool) -> Vec<Mbuf> {
    let mut v = Vec::with_capacity(RX_OUTSIDE);
    for seq in 0..FROM_PEER {
        let counter = seq as u64;
        v.push(mbuf(
            pool,
            &from_peer(&inner(seq, false), LOCAL_INDEX, counter, &K_RECV),
        ));
        if seq % HOSTILE_EVERY == HOSTILE_EVERY - 1 {
            let old = seq - 5;
            let replay = from_peer(&inner(old, false), LOCAL_INDEX, old as u64, &K_RECV);
            v.push(mbuf(pool, &replay));
            let forged = from_peer(&inner(seq + 1, false), LOCAL_INDEX, counter + 1, &K_FORGED);
            v.push(mbuf(pool, &forged));
            if seq % (2 * HOSTILE_EVERY) == HOSTILE_EVERY - 1 {
                let stray = from_peer(&inner(seq, false), LOCAL_INDEX + 1, counter, &K_RECV);
                v.push(mbuf(pool, &stray));
            }
        }
    }
    let who_has = arp(
        ArpOperation::Request,
        (PEER_MAC, "198.19.0.1"),
        ([0; 6], "198.19.0.2"),
    );
    v.push(mbuf(
        pool,
        &frame(MacAddr::BROADCAST.0, PEER_MAC, EtherType::Arp, &who_has),
    ));
    v
}

/// What arrives on the inside: packets from the LAN host to the peer, then an ARP
/// request for our inside address.
fn inside_traffic(pool: &Mempool) -> Vec<Mbuf> {
    let mut v = Vec::with_capacity(RX_INSIDE);
    for seq in 0..TO_PEER {
        let p = inner(seq, true);
        v.push(mbuf(pool, &frame(IN_MAC, LAN_MAC, ethertype_of(&p), &p)));
    }
    let who_has = arp(
        ArpOperation::Request,
        (LAN_MAC, "198.18.2.2"),
        ([0; 6], "198.18.2.1"),
    );
    v.push(mbuf(
        pool,
        &frame(MacAddr::BROADCAST.0, LAN_MAC, EtherType::Arp, &who_has),
    ));
    v
}

/// The ARP reply control sends out of `side`, number `n`.
fn control_frame(side: Side, n: usize) -> Vec<u8> {
    let (ours, theirs) = match side {
        Side::Outside => ((OUT_MAC, "198.19.0.2"), (PEER_MAC, "198.19.0.1")),
        Side::Inside => ((IN_MAC, "198.18.2.1"), (LAN_MAC, "198.18.2.2")),
    };
    let mut reply = arp(ArpOperation::Reply, ours, theirs);
    // Tells the copies apart in the output.
    reply[27] = n as u8;
    frame(theirs.0, ours.0, EtherType::Arp, &reply)
}

fn control_frames(pool: &Mempool) -> Vec<Mbuf> {
    let mut v = Vec::new();
    for n in 0..CONTROL_PER_SIDE {
        for side in Side::BOTH {
            let mut m = mbuf(pool, &control_frame(side, n));
            PacketBuf::set_meta(&mut m, meta::send_on(side));
            v.push(m);
        }
    }
    v
}

/// Every frame a stage saw is accounted for under its name, and nothing else happened.
fn check_counters(c: &WorkerCounters, peer: &Totals) {
    let t = &c.traffic;
    assert_eq!(t.rx_outside.get(), RX_OUTSIDE as u64, "{c:?}");
    assert_eq!(t.rx_inside.get(), RX_INSIDE as u64, "{c:?}");
    assert_eq!(t.from_control.get(), 2 * CONTROL_PER_SIDE as u64, "{c:?}");
    assert_eq!(t.decrypted.get(), FROM_PEER as u64, "{c:?}");
    assert_eq!(t.encrypted.get(), TO_PEER as u64, "{c:?}");
    assert_eq!(t.tx_outside.get(), TX_OUTSIDE as u64, "{c:?}");
    assert_eq!(t.tx_inside.get(), TX_INSIDE as u64, "{c:?}");
    assert_eq!(t.keepalives_rx.get(), 0, "{c:?}");

    assert_eq!(
        nonzero(c.decrypt.snapshot()),
        vec![
            ("unknown_index", UNKNOWN_INDEX as u64),
            ("replay", REPLAYED as u64),
            ("bad_tag", FORGED as u64),
        ]
    );
    for (stage, drops) in [
        ("classify", nonzero(c.classify.snapshot())),
        ("route", nonzero(c.route.snapshot())),
        ("encrypt", nonzero(c.encrypt.snapshot())),
        ("tx", nonzero(c.tx.snapshot())),
    ] {
        assert!(drops.is_empty(), "{stage} dropped {drops:?}");
    }
    assert_eq!(
        nonzero(c.punt.snapshot()),
        vec![(Punt::Arp.name(), PUNTED as u64)]
    );
    assert_eq!(
        c.drops(),
        (UNKNOWN_INDEX + REPLAYED + FORGED) as u64,
        "{c:?}"
    );

    // Every packet that entered left: sent, punted or dropped.
    let entered = t.rx_outside.get() + t.rx_inside.get() + t.from_control.get();
    let left = t.tx_outside.get() + t.tx_inside.get() + c.punt.total() + c.drops();
    assert_eq!(entered, left, "{c:?}");

    assert_eq!(peer.rx.packets, FROM_PEER as u64);
    assert_eq!(peer.tx.packets, TO_PEER as u64);
}

/// The reasons of a counter block that counted something, by name.
fn nonzero(snapshot: impl Iterator<Item = (&'static str, u64)>) -> Vec<(&'static str, u64)> {
    snapshot.filter(|(_, n)| *n > 0).collect()
}

/// DPDK's own count of what crossed the port agrees with the worker's.
fn check_port_stats(port: &Port, received: usize, sent: usize) {
    let s = port.stats();
    assert_eq!(
        (s.ipackets, s.opackets, s.oerrors),
        (received as u64, sent as u64, 0),
        "{}: {s:?}",
        port.name()
    );
}

/// Out of the outside port: every plaintext packet sealed exactly once, to the peer,
/// under our sending key with counters 0.., plus the control frames for that side.
fn check_sent_outside(sent: &[Mbuf]) {
    assert_eq!(sent.len(), TX_OUTSIDE);
    let key = TransportKey::new(&K_SEND);
    let mut control = Vec::new();
    let mut counters = Vec::new();
    let mut seqs = Vec::new();
    for m in sent {
        let f = EthernetFrame::new_checked(m.data()).unwrap();
        if f.ethertype() == EtherType::Arp {
            control.push(m.data().to_vec());
            continue;
        }
        assert_eq!(
            (f.dst_addr(), f.src_addr()),
            (MacAddr(PEER_MAC), MacAddr(OUT_MAC))
        );
        let ip4 = Ipv4Packet::new_checked(f.payload()).unwrap();
        assert!(ip4.verify_checksum());
        assert_eq!(ip4.src_addr(), "198.19.0.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(ip4.dst_addr(), "198.19.0.1".parse::<Ipv4Addr>().unwrap());
        let udp = UdpPacket::new_checked(ip4.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (LISTEN_PORT, LISTEN_PORT));
        let t = Transport::new_checked(udp.payload()).unwrap();
        assert_eq!(t.receiver(), REMOTE_INDEX);
        let mut sealed = t.payload().to_vec();
        let n = key
            .open(t.counter(), &mut sealed)
            .unwrap_or_else(|| panic!("counter {} does not open", t.counter()));
        let plain = &sealed[..n];
        let seq = seq_of(plain);
        let expect = forwarded(&inner(seq, true));
        assert_eq!(n, expect.len().next_multiple_of(16), "seq {seq}");
        assert_eq!(&plain[..expect.len()], &expect[..], "seq {seq}");
        assert!(plain[expect.len()..].iter().all(|b| *b == 0), "seq {seq}");
        counters.push(t.counter());
        seqs.push(seq);
    }
    counters.sort_unstable();
    seqs.sort_unstable();
    assert_eq!(counters, (0..TO_PEER as u64).collect::<Vec<_>>());
    assert_eq!(seqs, (0..TO_PEER).collect::<Vec<_>>());
    check_control_frames(Side::Outside, control);
}

/// Out of the inside port: every authentic message from the peer exactly once, opened,
/// unpadded and one hop older, plus the control frames for that side.
fn check_sent_inside(sent: &[Mbuf]) {
    assert_eq!(sent.len(), TX_INSIDE);
    let mut control = Vec::new();
    let mut seqs = Vec::new();
    for m in sent {
        let f = EthernetFrame::new_checked(m.data()).unwrap();
        if f.ethertype() == EtherType::Arp {
            control.push(m.data().to_vec());
            continue;
        }
        let seq = seq_of(f.payload());
        let p = inner(seq, false);
        assert_eq!(
            m.data(),
            &frame(LAN_MAC, IN_MAC, ethertype_of(&p), &forwarded(&p))[..],
            "seq {seq}"
        );
        seqs.push(seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..FROM_PEER).collect::<Vec<_>>());
    check_control_frames(Side::Inside, control);
}

fn check_control_frames(side: Side, mut sent: Vec<Vec<u8>>) {
    sent.sort();
    let mut expect: Vec<_> = (0..CONTROL_PER_SIDE)
        .map(|n| control_frame(side, n))
        .collect();
    expect.sort();
    assert_eq!(
        sent,
        expect,
        "control frames out of the {} port",
        side.name()
    );
}

/// To control: the two ARP requests, whole, each noted with the side it came in on.
fn check_punted(punted: &[Mbuf]) {
    let mut notes: Vec<_> = punted
        .iter()
        .map(|m| {
            let note = PacketBuf::meta(m);
            let f = EthernetFrame::new_checked(m.data()).unwrap();
            assert_eq!(f.ethertype(), EtherType::Arp);
            (meta::punt_reason(note), meta::side(note).name())
        })
        .collect();
    notes.sort_unstable_by_key(|(_, side)| *side);
    assert_eq!(
        notes,
        vec![
            (Some(Punt::Arp), Side::Inside.name()),
            (Some(Punt::Arp), Side::Outside.name()),
        ]
    );
}

/// `avail_count` includes the per-lcore caches, so the check above holds with mbufs
/// parked in lcore 1's cache, and it is not vacuous: the worker freed the hostile frames
/// on lcore 1, and only lcore 1 can take those back. The main lcore drains the shared
/// pool and its own cache, lcore 1 then gets what its cache holds, and together they
/// hold every mbuf.
fn lcore_caches_are_counted(eal: &Eal, pool: &Mempool) {
    let mut on_main = Vec::new();
    while let Some(m) = pool.alloc() {
        on_main.push(m);
    }
    let worker_pool = pool.clone();
    let from_worker = Arc::new(Mutex::new(Vec::new()));
    let worker_out = from_worker.clone();
    eal.remote_launch(1, move || {
        let mut cached = Vec::new();
        while let Some(m) = worker_pool.alloc() {
            cached.push(m);
        }
        worker_out.lock().unwrap().append(&mut cached);
        0
    })
    .unwrap();
    assert_eq!(eal.wait_lcore(1), 0);
    let on_worker = std::mem::take(&mut *from_worker.lock().unwrap());
    assert!(
        !on_worker.is_empty(),
        "lcore 1 freed mbufs, so its cache holds some"
    );
    assert_eq!(on_main.len() + on_worker.len(), pool.capacity() as usize);
    drop((on_main, on_worker));
    assert_eq!(pool.avail_count(), pool.capacity());
}

/// The traffic of the main test through a worker whose AEAD is `crypto_aesni_mb0` on two
/// queue pairs (one per direction), polled from the main lcore. Frames leave in the order
/// they arrived; the device did the work; `drain` empties the flight.
fn asynchronous_cryptodev(pool: &Mempool) {
    use dpdk_sys::{CryptoDev, CryptoDevConfig};
    let id = CryptoDev::by_name("crypto_aesni_mb0").unwrap();
    let dev = CryptoDev::start(
        id,
        &CryptoDevConfig {
            queue_pairs: 2,
            ..CryptoDevConfig::default()
        },
    )
    .unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let Rig {
        outside,
        inside,
        to_control,
        from_control,
        io,
    } = Rig::new("_cd", pool);
    let gw = gateway();
    let counters = Arc::new(WorkerCounters::default());
    let backend = Backend::cryptodev_for_worker(&dev, 0).unwrap();
    assert!(backend.is_async());
    let mut worker = Worker::new(io, gw.shared.clone(), counters.clone(), backend, BURST);

    let mut outside_in = outside_traffic(pool);
    let mut inside_in = inside_traffic(pool);
    let mut control_in = control_frames(pool);
    assert_eq!(outside.rx.enqueue_burst(&mut outside_in), RX_OUTSIDE);
    assert_eq!(inside.rx.enqueue_burst(&mut inside_in), RX_INSIDE);
    assert_eq!(
        from_control.enqueue_burst(&mut control_in),
        2 * CONTROL_PER_SIDE
    );
    // Poll until the ports are read, then stop as a worker does: what is in flight is
    // finished, nothing new is read.
    let mut polls = 0;
    while (outside.rx.count() > 0 || inside.rx.count() > 0) && polls < 100_000 {
        worker.poll();
        polls += 1;
    }
    worker.drain();
    assert_eq!(worker.in_flight(), 0, "drained");

    let (mut sent_outside, mut sent_inside, mut punted) = (Vec::new(), Vec::new(), Vec::new());
    outside
        .tx
        .dequeue_burst(&mut sent_outside, RING_SLOTS as usize);
    inside
        .tx
        .dequeue_burst(&mut sent_inside, RING_SLOTS as usize);
    to_control.dequeue_burst(&mut punted, 256);
    let c = &*counters;
    check_counters(c, &gw.shared.activity.total(gw.peer.id));
    check_sent_outside(&sent_outside);
    check_sent_inside(&sent_inside);
    check_punted(&punted);

    // In the order they arrived: the inner packets toward the LAN by sequence number,
    // the frames toward the peer by sequence number and nonce.
    let inside_order: Vec<usize> = sent_inside
        .iter()
        .filter_map(|m| {
            let f = EthernetFrame::new_checked(m.data()).unwrap();
            (f.ethertype() != EtherType::Arp).then(|| seq_of(f.payload()))
        })
        .collect();
    assert_eq!(
        inside_order,
        (0..FROM_PEER).collect::<Vec<_>>(),
        "decrypted in order"
    );
    let outside_order: Vec<u64> = sent_outside
        .iter()
        .filter_map(|m| {
            let f = EthernetFrame::new_checked(m.data()).unwrap();
            (f.ethertype() == EtherType::Ipv4).then(|| {
                let ip4 = Ipv4Packet::new_checked(f.payload()).unwrap();
                let udp = UdpPacket::new_checked(ip4.payload()).unwrap();
                Transport::new_checked(udp.payload()).unwrap().counter()
            })
        })
        .collect();
    assert_eq!(
        outside_order,
        (0..TO_PEER as u64).collect::<Vec<_>>(),
        "sealed in order"
    );

    let stats = worker.backend().device_stats().expect("a device backend");
    assert!(
        stats.device_jobs >= (FROM_PEER + TO_PEER) as u64,
        "{stats:?}"
    );
    assert_eq!(stats.queue.timed_out, 0, "{stats:?}");
    drop((sent_outside, sent_inside, punted));
    drop(worker);
    assert_eq!(dev.ops_in_use(), 0);
    drop((outside, inside, to_control, from_control));
}
