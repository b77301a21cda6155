//! Frame builders, ports and workers shared by the DPDK worker tests (`dpdk_worker.rs`,
//! `dpdk_workers.rs`, `dpdk_one_tunnel.rs`). Each test crate uses a part of it.
#![allow(dead_code)]

use dataplane::counters::WorkerCounters;
use dataplane::crypto::{Backend, TransportKey};
use dataplane::mbuf::DpdkIo;
use dataplane::session::{self, Keypair, Peer};
use dataplane::spread;
use dataplane::tables::{LocalAddr, PortTables, Shared};
use dataplane::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use dataplane::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};
use dataplane::worker::{Idle, Worker};
use dpdk_sys::{Eal, Mbuf, Mempool, Port, Ring};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `/proc/self` belongs to the process's effective user.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An IPv4/UDP packet from `src`:`sport` to `dst`:`dport` with both checksums.
pub fn ipv4_udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut b = vec![0u8; 20 + 8 + payload.len()];
    let total = b.len() as u16;
    let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
    p.set_version(4);
    p.set_header_len(20);
    p.set_total_len(total);
    p.set_ttl(64);
    p.set_protocol(IpProtocol::Udp);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len(total - 20);
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum_v4(src, dst);
    b
}

/// An Ethernet frame around `payload`.
pub fn frame(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 14 + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut b[..]);
    f.set_dst_addr(MacAddr(dst));
    f.set_src_addr(MacAddr(src));
    f.set_ethertype(ethertype);
    f.payload_mut().copy_from_slice(payload);
    b
}

/// A transport message to `receiver`: `inner` padded to 16 bytes and sealed under `key`
/// with `counter`.
pub fn transport(receiver: u32, counter: u64, key: &[u8; 32], inner: &[u8]) -> Vec<u8> {
    let mut msg = vec![0u8; TRANSPORT_HEADER_LEN];
    let mut t = Transport::new_unchecked(&mut msg[..]);
    t.set_message_type();
    t.set_receiver(receiver);
    t.set_counter(counter);
    let mut body = inner.to_vec();
    body.resize(inner.len().next_multiple_of(16), 0);
    let tag = TransportKey::new(key).seal(counter, &mut body);
    msg.extend_from_slice(&body);
    msg.extend_from_slice(&tag);
    msg
}

/// The ports of the multi-worker tests: outside 198.19.0.2/16, inside 198.18.2.1/24.
pub fn ipv4_ports(outside_mac: [u8; 6], inside_mac: [u8; 6]) -> [PortTables; 2] {
    let port = |mac, addr: &str, prefix_len| {
        PortTables::new(
            mac,
            vec![LocalAddr {
                addr: addr.parse().unwrap(),
                prefix_len,
            }],
        )
    };
    [
        port(outside_mac, "198.19.0.2", 16),
        port(inside_mac, "198.18.2.1", 24),
    ]
}

/// Installs a keypair of `peer` made now (workers read the real clock) as its sending
/// one, with `send` the key we seal with and `recv` the one we open with.
pub fn live_keypair(
    shared: &Shared,
    peer: &Arc<Peer>,
    (local, remote): (u32, u32),
    send: &[u8; 32],
    recv: &[u8; 32],
) {
    let kp = Arc::new(Keypair::new(
        peer.clone(),
        local,
        remote,
        send,
        recv,
        true,
        session::now(),
    ));
    shared.sessions.install(kp.clone()).unwrap();
    shared.sessions.set_sending(kp);
}

/// An mbuf of `pool` holding `bytes`.
pub fn mbuf(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool
        .alloc()
        .expect("the pool holds every frame of the test");
    m.append(bytes.len() as u16)
        .expect("a frame fits in one mbuf")
        .copy_from_slice(bytes);
    m
}

/// Slots of each ring behind a [`Wire`].
pub const RING_SLOTS: u32 = 4096;

/// One port over a ring per queue and direction: what a test puts in `rx[q]` arrives
/// on queue `q`, and what a worker sends on queue `q` waits in `tx[q]`.
pub struct Wire {
    pub port: Arc<Port>,
    pub rx: Vec<Arc<Ring>>,
    pub tx: Vec<Arc<Ring>>,
}

impl Wire {
    pub fn new(test: &str, name: &str, pool: &Mempool, queues: usize) -> Wire {
        let ring = |dir: &str, q: usize, sp: bool, sc: bool| {
            Arc::new(Ring::new(&format!("{name}_{dir}{q}"), RING_SLOTS, sp, sc).unwrap())
        };
        let rx: Vec<_> = (0..queues).map(|q| ring("rx", q, true, false)).collect();
        let tx: Vec<_> = (0..queues).map(|q| ring("tx", q, false, true)).collect();
        let port =
            Port::start_on_rings(name, &rx, &tx, pool).unwrap_or_else(|e| panic!("{test}: {e}"));
        Wire {
            port: Arc::new(port),
            rx,
            tx,
        }
    }
}

/// The EAL with `eal_args`, a pool of 16383 mbufs, and two ports of `queues` queue pairs
/// (outside, inside), their DPDK objects named with `prefix`.
pub fn rig(
    test: &str,
    eal_args: &[&str],
    prefix: &str,
    queues: usize,
) -> (Eal, Mempool, Wire, Wire) {
    let eal = Eal::init(eal_args).unwrap_or_else(|e| panic!("{test}: {e}"));
    let room = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let pool = Mempool::pktmbuf(
        &format!("{prefix}_pool"),
        16383,
        256,
        room,
        dpdk_sys::SOCKET_ID_ANY,
    )
    .unwrap_or_else(|e| panic!("{test}: {e}"));
    let outside = Wire::new(test, &format!("{prefix}_out"), &pool, queues);
    let inside = Wire::new(test, &format!("{prefix}_in"), &pool, queues);
    (eal, pool, outside, inside)
}

/// Stops the workers when a test ends, whether it passes or panics.
pub struct StopOnDrop(pub Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `workers` workers on lcores 1.. over queues 0.. of the two ports, with vectors of
/// `burst` and sharing AEAD work as `wgdp` makes them share, each with its control rings
/// (named after `run`); their counters and rings.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn start_workers(
    eal: &Eal,
    run: &str,
    workers: usize,
    burst: usize,
    shared: &Arc<Shared>,
    [outside, inside]: [&Wire; 2],
    pool: &Mempool,
    stop: &Arc<AtomicBool>,
) -> (Vec<Arc<WorkerCounters>>, Vec<(Arc<Ring>, Arc<Ring>)>) {
    let mut counters = Vec::new();
    let mut control_rings = Vec::new();
    let mut crews = spread::crews(workers).into_iter();
    for w in 0..workers {
        let ring = |name: &str| {
            Arc::new(Ring::new(&format!("{run}_{name}{w}"), 1024, true, true).unwrap())
        };
        let (to_control, from_control) = (ring("to_ctl"), ring("from_ctl"));
        let io = DpdkIo {
            ports: [outside.port.clone(), inside.port.clone()],
            queue: w as u16,
            to_control: to_control.clone(),
            from_control: from_control.clone(),
            pool: pool.clone(),
            doorbell: None,
        };
        let c = Arc::new(WorkerCounters::default());
        let mut worker = Worker::new(io, shared.clone(), c.clone(), Backend::software(), burst)
            .with_crew(crews.next().unwrap(), true);
        let flag = stop.clone();
        eal.remote_launch(w as u32 + 1, move || {
            worker.run(&flag, Idle::Poll);
            0
        })
        .unwrap();
        counters.push(c);
        control_rings.push((to_control, from_control));
    }
    (counters, control_rings)
}
