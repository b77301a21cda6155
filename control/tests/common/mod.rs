//! Two wgdp gateways back to back on plain memory, on a simulated clock: each a worker
//! on `MemIo` and its control plane driven by `ControlPlane::round`, with a LAN host that
//! answers ARP and an outside "wire" between them. Shared by `pair.rs` and
//! `uapi_socket.rs`; each test crate uses a part of it.
#![allow(dead_code)]

use control::plane::{ControlPlane, Now, PeerSpec};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::WorkerCounters;
use dataplane::crypto::Backend;
use dataplane::memio::MemIo;
use dataplane::session::Sessions;
use dataplane::tables::{LocalAddr, PortTables, Shared, Side, Tables};
use dataplane::wire::{
    ethernet, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, IpProtocol, Ipv4Packet,
    MacAddr, UdpPacket,
};
use dataplane::worker::Worker;
use rand_core::OsRng;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use x25519_dalek::StaticSecret;

pub const MS: u64 = 1_000_000;

pub struct Gw {
    pub worker: Worker<MemIo>,
    pub shared: Arc<Shared>,
    pub plane: ControlPlane<HeapBuf, OsRng>,
    pub lan_mac: [u8; 6],
    pub lan_ip: IpAddr,
    pub in_mac: [u8; 6],
    /// IP packets delivered to the LAN host.
    pub delivered: Vec<Vec<u8>>,
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A gateway with one peer, `spec`, its outside, inside and LAN host addresses `addrs`
/// (each in a /24), and its MACs numbered `id`.
pub fn gateway(
    key: &StaticSecret,
    spec: PeerSpec,
    addrs: [&str; 3],
    id: u8,
    sessions: Sessions,
) -> Gw {
    let [outside, inside, lan] = addrs;
    let out_mac = [2, id, 0, 0, 0, 1];
    let in_mac = [2, id, 0, 0, 0, 2];
    let local = |addr: &str| {
        vec![LocalAddr {
            addr: ip(addr),
            prefix_len: 24,
        }]
    };
    let tables = Tables {
        ports: [
            PortTables::new(out_mac, local(outside)),
            PortTables::new(in_mac, local(inside)),
        ],
        allowed: Default::default(),
        listen_port: 51820,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, sessions));
    let plane = ControlPlane::new(&key.to_bytes(), &[spec], shared.clone(), OsRng).unwrap();
    let worker = Worker::new(
        MemIo::default(),
        shared.clone(),
        Arc::new(WorkerCounters::default()),
        Backend::software(),
        256,
    );
    Gw {
        worker,
        shared,
        plane,
        lan_mac: [2, id, 0, 0, 0, 9],
        lan_ip: ip(lan),
        in_mac,
        delivered: Vec::new(),
    }
}

pub fn now(mono: u64) -> Now {
    Now {
        mono,
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(mono),
    }
}

/// One round: each worker polls, control runs a round of its loop, frames cross
/// the outside "wire", and each LAN host answers ARP and takes its packets.
pub fn step(a: &mut Gw, b: &mut Gw, t: u64) {
    step_through(a, b, t, &mut |_| {});
}

/// A step whose outside wire passes every frame from A to B through `router` first.
pub fn step_through(a: &mut Gw, b: &mut Gw, t: u64, router: &mut dyn FnMut(&mut [u8])) {
    for g in [&mut *a, &mut *b] {
        g.worker.io.now = t;
        g.worker.poll();
        // The control loop wgdp runs, on the worker's plain-memory queues.
        g.plane.round(now(t), &mut g.worker.io);
        g.worker.poll();
        // The LAN host.
        for f in std::mem::take(&mut g.worker.io.tx[Side::Inside.index()]) {
            let eth = EthernetFrame::new_checked(f.data()).unwrap();
            match eth.ethertype() {
                EtherType::Arp => {
                    let req = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap());
                    if req.operation == ArpOperation::Request
                        && IpAddr::V4(req.target_protocol_addr) == g.lan_ip
                    {
                        let reply = req.reply(MacAddr(g.lan_mac));
                        let mut b = vec![0u8; 14 + 28];
                        let mut e = EthernetFrame::new_unchecked(&mut b[..]);
                        e.set_dst_addr(MacAddr(g.in_mac));
                        e.set_src_addr(MacAddr(g.lan_mac));
                        e.set_ethertype(EtherType::Arp);
                        reply.emit(&mut ArpPacket::new_unchecked(&mut b[14..]));
                        g.worker.io.rx[Side::Inside.index()].push_back(HeapBuf::new(&b));
                    }
                }
                _ => {
                    assert_eq!(eth.dst_addr(), MacAddr(g.lan_mac));
                    g.delivered.push(eth.payload().to_vec());
                }
            }
        }
    }
    // The outside wire.
    let mut ab = std::mem::take(&mut a.worker.io.tx[0]);
    for f in &mut ab {
        router(f.data_mut());
    }
    let ba = std::mem::take(&mut b.worker.io.tx[0]);
    b.worker.io.rx[0].extend(ab);
    a.worker.io.rx[0].extend(ba);
}

pub fn lan_packet(g: &Gw, dst: &str, n: u8) -> HeapBuf {
    lan_packet_sized(g, dst, n, 60, 64)
}

/// A UDP packet of `len` bytes with DF set and `ttl`, from `g`'s LAN host.
pub fn lan_packet_sized(g: &Gw, dst: &str, n: u8, len: usize, ttl: u8) -> HeapBuf {
    let mut p = vec![0u8; len];
    let total = p.len();
    {
        let mut h = Ipv4Packet::new_unchecked(&mut p[..]);
        h.set_version(4);
        h.set_header_len(20);
        h.set_total_len(total as u16);
        h.set_dont_frag(true);
        h.set_ttl(ttl);
        h.set_protocol(IpProtocol::Udp);
        h.set_src_addr(match g.lan_ip {
            IpAddr::V4(a) => a,
            _ => unreachable!(),
        });
        h.set_dst_addr(dst.parse().unwrap());
        h.fill_checksum();
    }
    let mut u = UdpPacket::new_unchecked(&mut p[20..]);
    u.set_src_port(1000);
    u.set_dst_port(2000);
    u.set_len((len - 20) as u16);
    u.payload_mut().fill(n);
    let mut b = vec![0u8; ethernet::HEADER_LEN];
    let mut e = EthernetFrame::new_unchecked(&mut b[..]);
    e.set_dst_addr(MacAddr(g.in_mac));
    e.set_src_addr(MacAddr(g.lan_mac));
    e.set_ethertype(EtherType::Ipv4);
    b.extend_from_slice(&p);
    HeapBuf::new(&b)
}
