//! A restart storm (issue 13, "The restart storm"): a gateway with N configured peers
//! (default 100000) comes back after a restart while every peer still sends, so every
//! peer makes a handshake at once; how long until each has its session back, and how
//! many handshakes a second the gateway reached on the way.
//!
//! The gateway is wgdp's control plane, the code the control lcore runs
//! (`ControlPlane::round` on plain memory, `dataplane::memio::MemIo`), with real
//! X25519, the handshake queue and cookies under load as in production, and its
//! Diffie-Hellman work on `--threads` threads (`plane/dh.rs`; 0: the control thread).
//! The peers are played by wgdp's own handshake engine, each with its own static key,
//! as WireGuard peers behave (whitepaper 6.1, wireguard-go `device/timers.go`):
//! - each sends its first initiation at a random moment in the first second after the
//!   gateway is back (they all noticed the gateway was gone: their data got no answer);
//! - with no response, it retries after Rekey-Timeout (5 s) plus up to 333 ms of
//!   jitter, with mac2 if the gateway sent it a cookie reply meanwhile;
//! - a response to its latest initiation gives it its session (every response is
//!   checked by the peer's engine, after the timing).
//!
//! Messages reach control as through one worker's ring to it (4096; beyond, dropped
//! as `ring_full`), of which each round takes a burst of 256 into the handshake queue
//! (1024; beyond, `handshake_queue_full`), as `wgdp`'s rounds do (`gateway.rs`,
//! `RING_SIZE`, `RING_BURST`).
//!
//! Time: the gateway's clock runs while the gateway works (each round's wall time,
//! and the time the control loop sleeps on its doorbell until a thread finishes a job)
//! and stands still while the peers make their messages, since real peers are other
//! machines; when the gateway is idle and no peer is due, it jumps to the next peer's
//! time. So "all back after" is what the gateway's own speed and the protocol's
//! timers make of the storm, on this machine's CPUs.
//!
//! usage: target/release/examples/restart_storm [N] [--threads K]
//! Prints a Markdown table row per run and a line of counters.

use control::noise::{Identity, PeerHandshake, Tai64N};
use control::plane::dh::DhWork;
use control::plane::{frames, ControlDrop, ControlEvent, ControlPlane, Handshakes, PeerSpec};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::Punt;
use dataplane::memio::MemIo;
use dataplane::meta;
use dataplane::session::Sessions;
use dataplane::tables::{Shared, Side};
use dataplane::wire::wireguard::{self, MessageKind, Response};
use dataplane::wire::{ArpRepr, MacAddr};
use rand_core::{OsRng, RngCore};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};

#[path = "../tests/common/world.rs"]
mod world;
use world::*;

/// `wgdp`'s receiver index space (`gateway.rs`, `INDEX_BITS`).
const INDEX_BITS: u32 = 22;
/// A worker's ring to control, and what a round takes from it (`gateway.rs`,
/// `RING_SIZE`, `RING_BURST`).
const RING: usize = 4096;
const RING_BURST: usize = 256;
const SEC: u64 = 1_000_000_000;
/// Rekey-Timeout and the retry jitter (whitepaper 6.1; wireguard-go adds up to 333 ms).
const RETRY: u64 = 5 * SEC;
const JITTER: u64 = 333_000_000;

/// A peer: its engine, the index of its latest initiation, and whether the response
/// to it came (kept for the check after the timing).
struct Remote {
    identity: Identity,
    hs: PeerHandshake,
    index: u32,
    attempts: u32,
    response: Option<Vec<u8>>,
}

struct Run {
    start: f64,
    storm: f64,
    peak: u64,
    delivered: u64,
    ring_full: u64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 100_000usize;
    let mut threads = 0usize;
    while let Some(a) = args.next() {
        if a == "--threads" {
            threads = args
                .next()
                .and_then(|t| t.parse().ok())
                .expect("--threads K");
        } else {
            n = a.parse().expect("usage: restart_storm [N] [--threads K]");
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |t| t.get());

    // ---- the peers (not timed)
    let gw_secret = StaticSecret::random_from_rng(OsRng);
    let gw_key = gw_secret.to_bytes();
    let gw_public = PublicKey::from(&gw_secret);
    let mut remotes: Vec<Remote> = (0..n)
        .map(|_| {
            let identity = Identity::new(StaticSecret::random_from_rng(OsRng));
            let hs = PeerHandshake::new(&identity, gw_public, None).expect("peer handshake");
            Remote {
                identity,
                hs,
                index: 0,
                attempts: 0,
                response: None,
            }
        })
        .collect();
    let specs: Vec<PeerSpec> = remotes
        .iter()
        .enumerate()
        .map(|(i, r)| PeerSpec {
            public_key: *r.identity.public_key().as_bytes(),
            preshared_key: None,
            endpoint: Some(endpoint(i)),
            allowed_ips: vec![(IpAddr::V4(tunnel_addr(i)), 32)],
            persistent_keepalive: None,
        })
        .collect();

    // ---- the gateway starts: its peers' static-static DH on every CPU, as `wgdp`
    let t0 = Instant::now();
    let shared = Arc::new(Shared::new(
        tables(),
        Sessions::new(INDEX_BITS, control::gateway::MAX_PEERS),
    ));
    let handshakes = Handshakes::make(&gw_key, &specs, cpus);
    let mut plane: ControlPlane<HeapBuf, OsRng> =
        ControlPlane::with_handshakes(&gw_key, &specs, handshakes, shared, OsRng)
            .expect("control plane");
    let bell = Arc::new(dataplane::doorbell::Doorbell::new().expect("eventfd"));
    let ring = bell.clone();
    let work = DhWork::with_threads(threads, Some(Arc::new(move || ring.ring()))).expect("threads");
    let alloc = &mut || Some(HeapBuf::new(&[]));
    plane.set_handshake_work(work, now(T0), alloc);
    let mut arp = HeapBuf::new(&[]);
    assert!(frames::write_arp(
        &mut arp,
        [0xff; 6],
        ROUTER_MAC,
        &ArpRepr::request(MacAddr(ROUTER_MAC), ROUTER, GW_OUTSIDE),
    ));
    arp.set_meta(meta::punt(Punt::Arp, Side::Outside, 0));
    plane.handle(arp, now(T0), alloc);
    plane.out.clear();
    let start = t0.elapsed().as_secs_f64();

    // ---- the storm
    let run = storm(&mut plane, &mut remotes, &bell, start);

    // ---- every session checked by its peer's engine (not timed)
    let mut checked = 0;
    for r in remotes.iter_mut() {
        let msg = r
            .response
            .take()
            .expect("a response to its latest initiation");
        r.hs.consume_response(&r.identity, &msg, Duration::from_secs(1))
            .expect("the response authenticates");
        checked += 1;
    }
    assert_eq!(checked, n);

    let ev = |e| plane.stats.event(e);
    let dr = |d| plane.stats.drop_count(d);
    let refused: u64 = plane.stats.handshake_errors.values().sum();
    let accounted = ev(ControlEvent::ResponsesSent)
        + ev(ControlEvent::CookieRepliesSent)
        + dr(ControlDrop::HandshakeQueueFull)
        + dr(ControlDrop::RateLimited)
        + dr(ControlDrop::HandshakeOutdated)
        + dr(ControlDrop::IndexTaken)
        + refused
        + run.ring_full;
    assert_eq!(
        accounted, run.delivered,
        "every initiation answered, given a cookie or dropped under a reason"
    );
    let who = if threads == 0 {
        "0 (the control thread)".to_string()
    } else {
        threads.to_string()
    };
    println!(
        "| {n} | {who} | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} |",
        run.start,
        run.storm,
        n as f64 / run.storm,
        run.peak,
        run.delivered,
        ev(ControlEvent::ResponsesSent),
        ev(ControlEvent::CookieRepliesSent),
        dr(ControlDrop::HandshakeQueueFull) + run.ring_full,
        dr(ControlDrop::RateLimited) + refused,
    );
    eprintln!(
        "counters: events {:?}; drops {:?}; refused {:?}; ring_full {}; CPU: {}, {cpus} for this process",
        plane.stats.events,
        plane.stats.drops,
        plane.stats.handshake_errors,
        run.ring_full,
        cpu_model()
    );
}

/// Runs the storm until every peer has its session: the times, the peak rate and the
/// counts the gateway's counters do not hold.
fn storm(
    plane: &mut ControlPlane<HeapBuf, OsRng>,
    remotes: &mut [Remote],
    bell: &dataplane::doorbell::Doorbell,
    start: f64,
) -> Run {
    let n = remotes.len();
    let mut rng = OsRng;
    // Peers due to (re)initiate, by time (gateway clock, ns since the restart).
    let mut due: BinaryHeap<Reverse<(u64, usize)>> =
        (0..n).map(|i| Reverse((rng.next_u64() % SEC, i))).collect();
    let mut io = MemIo::default();
    let mut ring: std::collections::VecDeque<HeapBuf> = std::collections::VecDeque::new();
    let mut t = 0u64;
    let (mut back, mut delivered, mut ring_full) = (0usize, 0u64, 0u64);
    // Handshakes completed in each second of the storm.
    let mut per_second: Vec<u64> = Vec::new();
    let wall = |mono: u64| Tai64N::from_system_time(now(T0 + mono).wall);
    while back < n {
        // The peers whose time has come send (the gateway's clock stands still).
        while let Some(&Reverse((at, i))) = due.peek() {
            if at > t {
                break;
            }
            due.pop();
            let r = &mut remotes[i];
            if r.response.is_some() {
                continue;
            }
            r.attempts += 1;
            r.index = (r.attempts << 20) | i as u32;
            let m =
                r.hs.create_initiation(
                    &r.identity,
                    r.index,
                    wall(at),
                    Duration::from_nanos(T0 + at),
                    &mut rng,
                )
                .expect("initiation");
            delivered += 1;
            if ring.len() >= RING {
                ring_full += 1;
            } else {
                ring.push_back(punted_message(i, &m));
            }
            due.push(Reverse((at + RETRY + rng.next_u64() % JITTER, i)));
        }
        // The gateway's round, on its clock.
        let take = ring.len().min(RING_BURST);
        io.punted.extend(ring.drain(..take));
        let c = Instant::now();
        let round = plane.round(now(T0 + t), &mut io);
        let mut spent = c.elapsed().as_nanos() as u64;
        if round.work == 0 && plane.handshakes_in_flight() > 0 {
            // The control loop sleeps until a thread rings.
            let c = Instant::now();
            bell.prepare();
            if !plane.handshake_results_ready() {
                let mut p = libc::pollfd {
                    fd: bell.fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one live pollfd; at most 100 ms.
                unsafe { libc::poll(&mut p, 1, 100) };
            }
            bell.woke();
            spent += c.elapsed().as_nanos() as u64;
        }
        t += spent.max(1);
        // What the gateway sent reaches the peers (their work: the clock stands still).
        for f in io.control.drain(..) {
            let dg = frames::parse_udp(f.data()).expect("a UDP frame");
            let msg = &f.data()[dg.payload.0..dg.payload.0 + dg.payload.1];
            let i = peer_of(dg.dst);
            let r = &mut remotes[i];
            match wireguard::classify(msg) {
                Ok(MessageKind::Response) => {
                    let to = Response::new_checked(msg).expect("a response").receiver();
                    // A response to an earlier attempt: the peer awaits another.
                    if to == r.index && r.response.is_none() {
                        r.response = Some(msg.to_vec());
                        back += 1;
                        let s = (t / SEC) as usize;
                        if per_second.len() <= s {
                            per_second.resize(s + 1, 0);
                        }
                        per_second[s] += 1;
                    }
                }
                Ok(MessageKind::CookieReply) => {
                    let _ = r.hs.consume_cookie_reply(msg, Duration::from_nanos(T0 + t));
                }
                other => panic!("the gateway sent {other:?}"),
            }
        }
        // Idle, and nobody due yet: to the next peer's time.
        let busy = round.work > 0 || plane.handshakes_in_flight() > 0 || !ring.is_empty();
        if !busy {
            if let Some(&Reverse((at, _))) = due.peek() {
                t = t.max(at);
            }
        }
    }
    let storm = t as f64 / SEC as f64;
    // What is still queued or in flight (earlier attempts of peers that are back) is
    // worked through, for the counters.
    while !ring.is_empty() || plane.queued() > 0 || plane.handshakes_in_flight() > 0 {
        let take = ring.len().min(RING_BURST);
        io.punted.extend(ring.drain(..take));
        t += 1_000_000;
        if plane.round(now(T0 + t), &mut io).work == 0 {
            std::thread::yield_now();
        }
        io.control.clear();
    }
    Run {
        start,
        storm,
        peak: per_second.iter().copied().max().unwrap_or(0),
        delivered,
        ring_full,
    }
}

/// A handshake message from peer `i`'s endpoint as the outside worker punts it.
fn punted_message(i: usize, msg: &[u8]) -> HeapBuf {
    let mut b = HeapBuf::new(&[]);
    let gw = SocketAddr::new(IpAddr::V4(GW_OUTSIDE), LISTEN_PORT);
    assert!(frames::write_udp(
        &mut b,
        ROUTER_MAC,
        GW_MAC,
        endpoint(i),
        gw,
        msg
    ));
    b.set_meta(meta::punt(Punt::Handshake, Side::Outside, 0));
    b
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
