//! One tunnel on one worker and on two (docs/benchmarks.md, "One tunnel on two cores"):
//! a single peer's packets, all reaching one worker, pushed through `Worker::poll` as
//! fast as it goes, alone and then with a second worker on another CPU that takes part
//! of each vector's AEAD (`dataplane::spread`, as `dpdk.share_crypto` makes `wgdp` do).
//!
//! The queues are plain memory (`memio::MemIo`), filled before the clock starts with
//! packets that each sit in a buffer of their own on the heap, so the figures are the
//! worker's and the sharing's, without a driver's copies; the ratio of two workers to
//! one is what this measures. The owner runs on CPU 1 and the helper on CPU 0.
//!
//! usage: cargo run --release -p dataplane --example one_tunnel [-- PACKETS [SIZES]]
//! (default 200000 packets each run, frames of 64 and 1420 bytes). Prints a Markdown
//! table: direction, frame, Mpps with one worker and with two, the ratio, and the
//! share of packets the helper opened or sealed. `--json` prints the rows as JSON.

use dataplane::allowed::Writer;
use dataplane::buf::HeapBuf;
use dataplane::clock::tsc;
use dataplane::counters::{SpreadEvent, WorkerCounters};
use dataplane::crypto::{Backend, TransportKey};
use dataplane::memio::MemIo;
use dataplane::session::{self, Keypair, Peer, Sessions};
use dataplane::spread;
use dataplane::tables::{LocalAddr, Neighbors, PortTables, Shared, Side, Tables};
use dataplane::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use dataplane::wire::UdpPacket;
use dataplane::wire::{ethernet, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr};
use dataplane::worker::{Idle, Worker};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const OUT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
const K_SEND: [u8; 32] = [0x11; 32];
const K_RECV: [u8; 32] = [0x22; 32];
const LOCAL_INDEX: u32 = 0x1001;
const REMOTE_INDEX: u32 = 0x2002_0000;
const LAN: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const BEHIND: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 2);
const ENDPOINT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const LISTEN_PORT: u16 = 51820;

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn gateway() -> Arc<Shared> {
    let port = |mac, addr: &str, prefix_len| {
        PortTables::new(
            mac,
            vec![LocalAddr {
                addr: addr.parse().unwrap(),
                prefix_len,
            }],
        )
    };
    let peer = Arc::new(Peer::new(
        0,
        Some(SocketAddr::new(IpAddr::V4(ENDPOINT), LISTEN_PORT)),
    ));
    let allowed = Writer::new(true).build([(IpAddr::V4(BEHIND), 32, 0)]);
    let tables = Tables {
        ports: [
            port(OUT_MAC, "198.19.0.2", 24),
            port(IN_MAC, "198.18.2.1", 24),
        ],
        allowed,
        listen_port: LISTEN_PORT,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, Sessions::new(12, 4)));
    let kp = Arc::new(Keypair::new(
        peer,
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
    n.insert(Side::Outside, IpAddr::V4(ENDPOINT), PEER_MAC);
    n.insert(Side::Inside, IpAddr::V4(LAN), LAN_MAC);
    shared.neighbors.store(Arc::new(n));
    shared
}

/// An IPv4/UDP packet of `len` bytes (at least 28) from `src` to `dst`.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
    p.set_version(4);
    p.set_header_len(20);
    p.set_total_len(len as u16);
    p.set_ttl(64);
    p.set_protocol(IpProtocol::Udp);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(40000);
    u.set_dst_port(5201);
    u.set_len((len - 20) as u16);
    b
}

fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> HeapBuf {
    let mut b = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut b[..]);
    f.set_dst_addr(MacAddr(dst));
    f.set_src_addr(MacAddr(src));
    f.set_ethertype(EtherType::Ipv4);
    f.payload_mut().copy_from_slice(payload);
    HeapBuf::new(&b)
}

/// `count` frames whose inside frame is `size` bytes: transport messages from the peer
/// (`decrypt`) or the LAN's packets to it (`encrypt`).
fn packets(decrypt: bool, size: usize, count: usize) -> Vec<HeapBuf> {
    let inner_len = size - ethernet::HEADER_LEN;
    if !decrypt {
        let inner = ipv4_udp(LAN, BEHIND, inner_len);
        return (0..count).map(|_| frame(IN_MAC, LAN_MAC, &inner)).collect();
    }
    let key = TransportKey::new(&K_RECV);
    let inner = ipv4_udp(BEHIND, LAN, inner_len);
    (0..count)
        .map(|i| {
            let mut msg = vec![0u8; TRANSPORT_HEADER_LEN];
            let mut t = Transport::new_unchecked(&mut msg[..]);
            t.set_message_type();
            t.set_receiver(LOCAL_INDEX);
            t.set_counter(i as u64);
            let mut body = inner.clone();
            body.resize(inner.len().next_multiple_of(16), 0);
            let tag = key.seal(i as u64, &mut body);
            msg.extend_from_slice(&body);
            msg.extend_from_slice(&tag);
            let mut udp = ipv4_udp(ENDPOINT, "198.19.0.2".parse().unwrap(), 28 + msg.len());
            udp[28..].copy_from_slice(&msg);
            let mut u = UdpPacket::new_unchecked(&mut udp[20..]);
            u.set_src_port(LISTEN_PORT);
            u.set_dst_port(LISTEN_PORT);
            frame(OUT_MAC, PEER_MAC, &udp)
        })
        .collect()
}

/// One run: Mpps, and the share of packets a helper did (0 with one worker).
fn run(decrypt: bool, size: usize, count: usize, workers: usize) -> (f64, f64) {
    let shared = gateway();
    let new_io = || MemIo {
        now: dataplane::clock::now_ns(),
        ..Default::default()
    };
    let new_worker = || {
        Worker::new(
            new_io(),
            shared.clone(),
            Arc::new(WorkerCounters::default()),
            Backend::software(),
            256,
        )
    };
    let mut crews = spread::crews(workers).into_iter();
    let mut owner = new_worker().with_crew(crews.next().unwrap(), true);
    let side = if decrypt { 0 } else { 1 };
    owner.io.rx[side].extend(packets(decrypt, size, count));
    let stop = Arc::new(AtomicBool::new(false));
    let helper = crews.next().map(|crew| {
        let mut w = new_worker().with_crew(crew, true);
        let stop = stop.clone();
        std::thread::spawn(move || {
            pin(0);
            w.run(&stop, Idle::Poll);
            w.counters().clone()
        })
    });
    pin(1);
    let t0 = Instant::now();
    let c0 = tsc();
    while !owner.io.rx[side].is_empty() || owner.in_flight() > 0 {
        owner.poll();
    }
    let secs = t0.elapsed().as_secs_f64();
    let _clocks = tsc() - c0;
    stop.store(true, Ordering::Relaxed);
    let helped = helper
        .map(|h| {
            let c = h.join().expect("helper");
            c.spread.get(SpreadEvent::HelpedOpen) + c.spread.get(SpreadEvent::HelpedSeal)
        })
        .unwrap_or(0);
    if std::env::var_os("ONE_TUNNEL_STAGES").is_some() {
        let rt = &owner.counters().runtime;
        let line: Vec<String> = dataplane::counters::Stage::ALL
            .iter()
            .map(|&st| {
                let r = rt.get(st);
                format!("{}={:.0}", st.name(), r.clocks.get() as f64 / count as f64)
            })
            .collect();
        eprintln!(
            "workers={workers} owner clocks per packet: {}",
            line.join(" ")
        );
    }
    let out = owner.io.tx[1 - side].len();
    assert_eq!(out, count, "packets lost: {:?}", owner.counters());
    (count as f64 / secs / 1e6, helped as f64 / count as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mut rest = args.iter().filter(|a| !a.starts_with("--"));
    let count: usize = rest.next().map_or(200_000, |a| a.parse().expect("PACKETS"));
    let sizes: Vec<usize> = rest.next().map_or(vec![64, 1420], |a| {
        a.split(',').map(|s| s.parse().expect("SIZES")).collect()
    });
    let mut rows = Vec::new();
    for &size in &sizes {
        for decrypt in [true, false] {
            // Best of three, each alone and shared, alternating.
            let (mut one, mut two, mut share) = (0f64, 0f64, 0f64);
            for _ in 0..3 {
                one = one.max(run(decrypt, size, count, 1).0);
                let (mpps, helped) = run(decrypt, size, count, 2);
                if mpps > two {
                    (two, share) = (mpps, helped);
                }
            }
            rows.push((decrypt, size, one, two, share));
        }
    }
    if json {
        let rows: Vec<String> = rows
            .iter()
            .map(|&(d, size, one, two, share)| {
                format!(
                    "{{\"direction\": \"{}\", \"size\": {size}, \"one\": {one:.4}, \"two\": {two:.4}, \"helped\": {share:.3}}}",
                    if d { "decrypt" } else { "encrypt" }
                )
            })
            .collect();
        println!("[{}]", rows.join(", "));
        return;
    }
    println!("| direction | frame | 1 worker Mpps | 2 workers Mpps | 2 / 1 | done by the helper |");
    println!("|---|---|---|---|---|---|");
    for (d, size, one, two, share) in rows {
        println!(
            "| {} | {size} B | {one:.3} | {two:.3} | {:.2} | {:.0} % |",
            if d { "decrypt" } else { "encrypt" },
            two / one,
            share * 100.0
        );
    }
}
