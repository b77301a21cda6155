//! How many full WireGuard handshakes per second the control plane completes on one
//! core (issue 13, "Capacity measured"), with real X25519: the gateway's `ControlPlane`
//! with N configured peers, each with a static key of its own, driven through
//! `ControlPlane::round` on plain memory (`dataplane::memio::MemIo`, the loop `wgdp`
//! runs), against N remote peers played by the project's own noise engine.
//!
//! - Responder: each peer's initiation (made beforehand by the peer's engine) arrives
//!   as a worker punts it (the Ethernet/IPv4/UDP frame to the listen port, note
//!   `punt(handshake, outside)`), 32 a round (`round::HANDSHAKE_BUDGET`), well below
//!   the queue depth from which the gateway is under load (`load::UNDER_LOAD_DEPTH`),
//!   so no cookie is ever asked for. Timed: the rounds. Checked afterwards: one response
//!   for every initiation, each accepted by its peer's engine, `handshakes_completed`
//!   = N, no cookie reply, nothing handled under load.
//! - Initiator: a second control plane with the same peers (each with an endpoint,
//!   behind one router whose MAC it learned) gets one packet per peer as the encrypt
//!   stage punts a packet without a session (`punt(no_session, inside, peer)`), and
//!   initiates; timed: those rounds. The peers' engines answer (not timed) and the
//!   responses come back, punted as above; timed: those rounds, in which control
//!   completes the handshake, installs the keypair and sends the waiting packet through
//!   the tunnel.
//! - The same engine alone, the peers' side of the same handshakes (no control plane),
//!   and one X25519 scalar multiplication alone (aws-lc's, as the engine calls it:
//!   `noise::dh`, variable base; and x25519-dalek's, which the engine used before, for
//!   comparison) and a public key made from a secret
//!   (fixed base, as each ephemeral key is), sampled between the rounds so that they run
//!   under the same conditions, to express each handshake in X25519s. The static-static
//!   DH is precomputed when a peer is configured, so each side does three variable-base
//!   multiplications per handshake (responder es, ee, se; initiator es, ee, se) plus the
//!   fixed-base one of its ephemeral key.
//!
//! The control plane draws its randomness from `OsRng`, as `wgdp`'s does, and runs on a
//! simulated clock (1 µs a round), so that no retry timer fires while the peers answer.
//!
//! usage: taskset -c 1 target/release/examples/handshake_rate [N] (default 10000).
//! Prints a Markdown table, the CPU it ran on and the share of the timed wall time the
//! thread had its CPU (below 100 %, something else ran there). Clocks are
//! `dataplane::clock::tsc`.
//!
//! With `--threads 0,1,2` (and no taskset), instead: the gateway as responder with the
//! Diffie-Hellman work of handshakes on each number of threads (`plane/dh.rs`; 0: on
//! the control thread), the control loop sleeping on a doorbell that the threads ring,
//! as `wgdp`'s does. Timed: from the first initiation handed over to the last response
//! sent, in wall time and in CPU time of the whole process (control and threads).

use control::noise::{Identity, PeerHandshake, Tai64N};
use control::plane::dh::DhWork;
use control::plane::{frames, ControlEvent, ControlPlane, Handshakes, PeerSpec};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::clock::tsc;
use dataplane::counters::Punt;
use dataplane::memio::MemIo;
use dataplane::meta;
use dataplane::session::Sessions;
use dataplane::tables::{Shared, Side};
use dataplane::wire::wireguard::{self, MessageKind, Transport, INITIATION_LEN, RESPONSE_LEN};
use dataplane::wire::{ArpRepr, IpProtocol, MacAddr, UdpPacket};
use rand_core::OsRng;
use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};

#[path = "../tests/common/world.rs"]
mod world;
use world::*;

/// `wgdp`'s receiver index space (`gateway.rs`, `INDEX_BITS`).
const INDEX_BITS: u32 = 22;
/// Handshake messages a worker hands over per round: what one round works through
/// (`round::HANDSHAKE_BUDGET`), so the queue never holds more than this.
const BATCH: usize = control::plane::round::HANDSHAKE_BUDGET;
const STEP: u64 = 1_000;
/// X25519 operations of each kind timed after each round.
const DH_PER_ROUND: usize = 8;

const _: () = assert!(BATCH < control::plane::load::UNDER_LOAD_DEPTH);

fn dur(mono: u64) -> Duration {
    Duration::from_nanos(mono)
}

/// A remote peer: its own identity and its handshake state with the gateway.
struct Remote {
    identity: Identity,
    hs: PeerHandshake,
}

type Plane = ControlPlane<HeapBuf, OsRng>;

/// A gateway with `specs`, sized as `wgdp` sizes its sessions, that knows the router's
/// MAC (learned from an ARP request, as from a real router).
fn gateway(key: &[u8; 32], specs: &[PeerSpec], threads: usize) -> Plane {
    let shared = Arc::new(Shared::new(
        tables(),
        Sessions::new(INDEX_BITS, control::gateway::MAX_PEERS),
    ));
    let handshakes = Handshakes::make(key, specs, threads);
    let mut plane = ControlPlane::with_handshakes(key, specs, handshakes, shared, OsRng)
        .expect("control plane");
    let mut arp = HeapBuf::new(&[]);
    assert!(frames::write_arp(
        &mut arp,
        [0xff; 6],
        ROUTER_MAC,
        &ArpRepr::request(MacAddr(ROUTER_MAC), ROUTER, GW_OUTSIDE),
    ));
    arp.set_meta(meta::punt(Punt::Arp, Side::Outside, 0));
    plane.handle(arp, now(T0), &mut || Some(HeapBuf::new(&[])));
    assert_eq!(plane.out.len(), 1, "the ARP reply");
    plane.out.clear();
    plane
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

/// A packet from the LAN for peer `i`, as the encrypt stage punts it without a session.
fn punted_no_session(i: usize) -> HeapBuf {
    let payload = 32;
    let mut p = vec![0u8; 20 + 8 + payload];
    let l4 = 8 + payload;
    frames::write_ipv4(&mut p, LAN_HOST, tunnel_addr(i), IpProtocol::Udp, l4);
    let mut u = UdpPacket::new_unchecked(&mut p[20..]);
    u.set_src_port(1000);
    u.set_dst_port(2000);
    u.set_len(l4 as u16);
    u.payload_mut().fill(i as u8);
    u.fill_checksum_v4(LAN_HOST, tunnel_addr(i));
    let mut b = HeapBuf::new(&p);
    b.set_meta(meta::punt(Punt::NoSession, Side::Inside, i as u32));
    b
}

thread_local! {
    /// Wall time and this thread's CPU time over every `measure`.
    static TIMED: Cell<(f64, f64)> = const { Cell::new((0.0, 0.0)) };
}

/// This thread's CPU time, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec only.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Runs `f`: its wall time and TSC clocks.
fn measure(f: impl FnOnce()) -> (f64, u64) {
    let cpu = thread_cpu();
    let t0 = Instant::now();
    let c0 = tsc();
    f();
    let clocks = tsc().wrapping_sub(c0);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu() - cpu;
    TIMED.with(|t| {
        let (w, c) = t.get();
        t.set((w + secs, c + cpu));
    });
    (secs, clocks)
}

/// Feeds `bufs` to the plane `BATCH` a round, as the workers would hand them over, and
/// returns the frames it sent and the time and the clocks the rounds took. Afterwards
/// `waiting` packets wait (for a handshake). Each frame sent is copied out and its
/// buffer freed at once, as a worker returns a transmitted mbuf to its pool, so that
/// buffers are reused rather than each taking fresh memory. Between rounds, outside
/// the timing, `x25519` takes its samples.
fn rounds(
    plane: &mut Plane,
    bufs: Vec<HeapBuf>,
    mono: &mut u64,
    waiting: usize,
    x25519: &mut X25519,
) -> (Vec<Vec<u8>>, f64, u64) {
    let mut batches: Vec<Vec<HeapBuf>> = Vec::with_capacity(bufs.len() / BATCH + 1);
    let mut it = bufs.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(BATCH).collect());
    }
    let mut io = MemIo::default();
    io.punted.reserve(BATCH);
    let mut sent = Vec::with_capacity(batches.len() * BATCH);
    let (mut secs, mut clocks) = (0.0, 0);
    for mut b in batches {
        let (s, c) = measure(|| {
            io.punted.append(&mut b);
            plane.round(now(*mono), &mut io);
            sent.extend(io.control.drain(..).map(|f| f.data().to_vec()));
        });
        secs += s;
        clocks += c;
        *mono += STEP;
        x25519.sample();
    }
    assert_eq!(plane.queued(), waiting, "every message worked through");
    (sent, secs, clocks)
}

/// Runs `f` for each of `0..n`, timed `BATCH` at a time with `x25519` sampled in between,
/// as `rounds` does: the time and clocks of the `f`s.
fn chunked(n: usize, x25519: &mut X25519, mut f: impl FnMut(usize)) -> (f64, u64) {
    let (mut secs, mut clocks) = (0.0, 0);
    for start in (0..n).step_by(BATCH) {
        let (s, c) = measure(|| (start..n.min(start + BATCH)).for_each(&mut f));
        secs += s;
        clocks += c;
        x25519.sample();
    }
    (secs, clocks)
}

struct Row {
    role: &'static str,
    count: usize,
    secs: f64,
    clocks: u64,
}

/// X25519 alone, a few of each kind after every round of the control plane (not in
/// its timing), so that they run under the same conditions as the handshakes: on a
/// shared or virtual machine, whatever else runs weighs on both alike.
struct X25519 {
    secret: StaticSecret,
    key: control::noise::DhKey,
    public: PublicKey,
    /// Variable base: operations, seconds, clocks.
    dh: (usize, f64, u64),
    /// Variable base, x25519-dalek.
    dalek: (usize, f64, u64),
    /// Fixed base.
    base: (usize, f64, u64),
}

impl X25519 {
    fn new() -> Self {
        let secret = StaticSecret::random_from_rng(OsRng);
        let x = X25519 {
            key: control::noise::DhKey::new(&secret),
            secret,
            public: PublicKey::from(&StaticSecret::random_from_rng(OsRng)),
            dh: (0, 0.0, 0),
            dalek: (0, 0.0, 0),
            base: (0, 0.0, 0),
        };
        // Warm up.
        for _ in 0..100 {
            black_box(black_box(&x.secret).diffie_hellman(black_box(&x.public)));
            let _ = black_box(control::noise::dh(black_box(&x.key), black_box(&x.public)));
        }
        x
    }

    /// `DH_PER_ROUND` of each kind.
    fn sample(&mut self) {
        let (secret, key, public) = (&self.secret, &self.key, &self.public);
        let (secs, clocks) = measure(|| {
            for _ in 0..DH_PER_ROUND {
                let _ = black_box(control::noise::dh(black_box(key), black_box(public)));
            }
        });
        self.dh = (
            self.dh.0 + DH_PER_ROUND,
            self.dh.1 + secs,
            self.dh.2 + clocks,
        );
        let (secs, clocks) = measure(|| {
            for _ in 0..DH_PER_ROUND {
                black_box(black_box(secret).diffie_hellman(black_box(public)));
            }
        });
        self.dalek = (
            self.dalek.0 + DH_PER_ROUND,
            self.dalek.1 + secs,
            self.dalek.2 + clocks,
        );
        let (secs, clocks) = measure(|| {
            for _ in 0..DH_PER_ROUND {
                black_box(control::noise::DhKey::new(black_box(secret)).public_key());
            }
        });
        self.base = (
            self.base.0 + DH_PER_ROUND,
            self.base.1 + secs,
            self.base.2 + clocks,
        );
    }
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

fn errors(plane: &Plane) -> String {
    format!("{:?}", plane.stats.handshake_errors)
}

/// This process's CPU time (every thread), seconds.
fn process_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the timespec only.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The gateway as responder to one initiation from each of `remotes`, with its
/// Diffie-Hellman work on `threads` threads: wall and process CPU seconds from the
/// first initiation handed over to the last response sent. Every response is checked
/// by its peer's engine afterwards.
fn responder_on_threads(
    gw_key: &[u8; 32],
    specs: &[PeerSpec],
    remotes: &mut [Remote],
    threads: usize,
) -> (f64, f64) {
    let n = remotes.len();
    let cpus = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut plane = gateway(gw_key, specs, cpus);
    let bell = Arc::new(dataplane::doorbell::Doorbell::new().expect("eventfd"));
    let ring = bell.clone();
    let work = DhWork::with_threads(threads, Some(Arc::new(move || ring.ring()))).expect("threads");
    plane.set_handshake_work(work, now(T0), &mut || Some(HeapBuf::new(&[])));
    let mono = T0;
    let wall = Tai64N::from_system_time(now(mono).wall);
    let punted: Vec<HeapBuf> = remotes
        .iter_mut()
        .enumerate()
        .map(|(i, r)| {
            let m =
                r.hs.create_initiation(&r.identity, i as u32, wall, dur(mono), &mut OsRng)
                    .expect("initiation");
            punted_message(i, &m)
        })
        .collect();
    let mut io = MemIo::default();
    let mut sent: Vec<Vec<u8>> = Vec::with_capacity(n);
    let mut it = punted.into_iter().peekable();
    let (cpu0, t0) = (process_cpu(), Instant::now());
    let mut mono = mono;
    while it.peek().is_some() || plane.handshakes_in_flight() > 0 {
        // As a worker would: a burst, once control took the last.
        if io.punted.is_empty() && plane.queued() == 0 {
            io.punted.extend(it.by_ref().take(BATCH));
        }
        let round = plane.round(now(mono), &mut io);
        sent.extend(io.control.drain(..).map(|f| f.data().to_vec()));
        mono += STEP;
        if round.work == 0 {
            // As `wgdp` sleeps: until a thread rings, unless a result is there.
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
        }
    }
    let (secs, cpu) = (t0.elapsed().as_secs_f64(), process_cpu() - cpu0);
    assert_eq!(
        plane.stats.event(ControlEvent::HandshakesCompleted),
        n as u64,
        "{}",
        errors(&plane)
    );
    assert_eq!(plane.stats.event(ControlEvent::CookieRepliesSent), 0);
    assert_eq!(sent.len(), n, "one response per initiation");
    for f in &sent {
        let dg = frames::parse_udp(f).expect("a UDP frame");
        let msg = &f[dg.payload.0..dg.payload.0 + dg.payload.1];
        let i = peer_of(dg.dst);
        let r = &mut remotes[i];
        r.hs.consume_response(&r.identity, msg, dur(mono))
            .expect("the response authenticates");
    }
    (secs, cpu)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut n = 10_000;
    let mut thread_counts: Option<Vec<usize>> = None;
    while let Some(a) = args.next() {
        if a == "--threads" {
            let list = args.next().expect("--threads 0,1,2");
            thread_counts = Some(
                list.split(',')
                    .map(|t| t.parse().expect("--threads: numbers"))
                    .collect(),
            );
        } else {
            n = a
                .parse()
                .expect("usage: handshake_rate [N] [--threads 0,1,2]");
        }
    }
    let max = control::gateway::MAX_PEERS;
    assert!(n > 0 && n <= max, "N from 1 to {max}");
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());

    // ---- the peers and the gateway (not timed)
    let gw_secret = StaticSecret::random_from_rng(OsRng);
    let gw_key = gw_secret.to_bytes();
    let gw_public = PublicKey::from(&gw_secret);
    let mut remotes: Vec<Remote> = (0..n)
        .map(|_| {
            let identity = Identity::new(StaticSecret::random_from_rng(OsRng));
            let hs = PeerHandshake::new(&identity, gw_public, None).expect("peer handshake");
            Remote { identity, hs }
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
    if let Some(counts) = thread_counts {
        println!(
            "| handshake threads | handshakes | seconds | handshakes/s | CPU seconds (all threads) | handshakes per CPU second | speed-up |"
        );
        println!("|---|---|---|---|---|---|---|");
        let mut first = None;
        for t in counts {
            let (secs, cpu) = responder_on_threads(&gw_key, &specs, &mut remotes, t);
            let rate = n as f64 / secs;
            let base = *first.get_or_insert(rate);
            let who = if t == 0 {
                "0 (the control thread)".to_string()
            } else {
                t.to_string()
            };
            println!(
                "| {who} | {n} | {secs:.3} | {rate:.0} | {cpu:.3} | {:.0} | {:.2} |",
                n as f64 / cpu,
                rate / base
            );
        }
        println!();
        println!(
            "CPU: {}; {} CPUs for this process; responder, {n} peers, {BATCH} initiations \
             handed over a round; the control loop sleeps on a doorbell the threads ring.",
            cpu_model(),
            threads
        );
        return;
    }
    let mut rows = Vec::new();
    let mut x25519 = X25519::new();

    // ---- 1. the gateway as responder
    let mut plane = gateway(&gw_key, &specs, threads);
    let mut mono = T0;
    let wall = Tai64N::from_system_time(now(mono).wall);
    let mut initiations = Vec::with_capacity(n);
    let (init_secs, init_clocks) = chunked(n, &mut x25519, |i| {
        let r = &mut remotes[i];
        let m =
            r.hs.create_initiation(&r.identity, i as u32, wall, dur(mono), &mut OsRng)
                .expect("initiation");
        initiations.push(m);
    });
    let punted: Vec<HeapBuf> = initiations
        .iter()
        .enumerate()
        .map(|(i, m)| punted_message(i, m))
        .collect();
    let (sent, secs, clocks) = rounds(&mut plane, punted, &mut mono, 0, &mut x25519);
    rows.push(Row {
        role: "responder: initiation in, response out",
        count: n,
        secs,
        clocks,
    });
    let ev = |p: &Plane, e| p.stats.event(e);
    assert_eq!(ev(&plane, ControlEvent::CookieRepliesSent), 0, "no cookie");
    assert_eq!(ev(&plane, ControlEvent::UnderLoad), 0, "never under load");
    assert_eq!(
        ev(&plane, ControlEvent::HandshakesCompleted),
        n as u64,
        "{}",
        errors(&plane)
    );
    assert_eq!(ev(&plane, ControlEvent::ResponsesSent), n as u64);
    assert!(
        plane.stats.handshake_errors.is_empty(),
        "{}",
        errors(&plane)
    );
    assert_eq!(sent.len(), n, "one frame per initiation");
    // Every initiation got exactly one response, which its initiator accepts.
    let mut answered = vec![0u32; n];
    let mut responses: Vec<(usize, [u8; RESPONSE_LEN])> = Vec::with_capacity(n);
    for f in &sent {
        let dg = frames::parse_udp(f).expect("a UDP frame");
        assert_eq!(dg.dst.port(), LISTEN_PORT);
        assert_eq!(dg.src, SocketAddr::new(IpAddr::V4(GW_OUTSIDE), LISTEN_PORT));
        let msg = &f[dg.payload.0..dg.payload.0 + dg.payload.1];
        assert_eq!(wireguard::classify(msg), Ok(MessageKind::Response));
        let i = peer_of(dg.dst);
        answered[i] += 1;
        responses.push((i, msg.try_into().unwrap()));
    }
    assert!(answered.iter().all(|&a| a == 1), "one response each");
    let (consume_secs, consume_clocks) = chunked(n, &mut x25519, |k| {
        let (i, m) = &responses[k];
        let r = &mut remotes[*i];
        let s =
            r.hs.consume_response(&r.identity, m, dur(mono))
                .expect("the response authenticates");
        assert_eq!(s.local_index, *i as u32);
    });
    let engine_initiator = Row {
        role: "initiator, noise engine alone: initiation made, response consumed",
        count: n,
        secs: init_secs + consume_secs,
        clocks: init_clocks + consume_clocks,
    };
    drop(plane);

    // ---- 2. the gateway as initiator
    let mut plane = gateway(&gw_key, &specs, threads);
    let staged: Vec<HeapBuf> = (0..n).map(punted_no_session).collect();
    let (sent, init_secs, init_clocks) = rounds(&mut plane, staged, &mut mono, n, &mut x25519);
    assert_eq!(
        ev(&plane, ControlEvent::InitiationsSent),
        n as u64,
        "{}",
        errors(&plane)
    );
    assert_eq!(sent.len(), n, "one initiation per peer");
    let mut initiated = vec![0u32; n];
    let mut initiations: Vec<(usize, [u8; INITIATION_LEN])> = Vec::with_capacity(n);
    for f in &sent {
        assert_eq!(&f[..6], &ROUTER_MAC, "through the router");
        let dg = frames::parse_udp(f).expect("a UDP frame");
        let msg = &f[dg.payload.0..dg.payload.0 + dg.payload.1];
        assert_eq!(wireguard::classify(msg), Ok(MessageKind::Initiation));
        let i = peer_of(dg.dst);
        initiated[i] += 1;
        initiations.push((i, msg.try_into().unwrap()));
    }
    assert!(initiated.iter().all(|&a| a == 1), "one initiation each");
    // The peers answer (the engine alone, as responder).
    let mut answers: Vec<(usize, [u8; RESPONSE_LEN])> = Vec::with_capacity(n);
    let local = |i: usize| (1 << 30) + i as u32;
    let (engine_secs, engine_clocks) = chunked(n, &mut x25519, |k| {
        let (i, m) = &initiations[k];
        let r = &mut remotes[*i];
        let info = r.identity.consume_initiation(m).expect("initiation opens");
        assert_eq!(info.initiator_static(), &gw_public);
        r.hs.accept_initiation(info, dur(mono))
            .expect("initiation accepted");
        let (msg, _session) =
            r.hs.create_response(local(*i), dur(mono), &mut OsRng)
                .expect("response");
        answers.push((*i, msg));
    });
    let punted: Vec<HeapBuf> = answers.iter().map(|(i, m)| punted_message(*i, m)).collect();
    let (sent, resp_secs, resp_clocks) = rounds(&mut plane, punted, &mut mono, 0, &mut x25519);
    assert_eq!(
        ev(&plane, ControlEvent::HandshakesCompleted),
        n as u64,
        "{}",
        errors(&plane)
    );
    assert_eq!(ev(&plane, ControlEvent::CookieRepliesSent), 0, "no cookie");
    assert_eq!(ev(&plane, ControlEvent::UnderLoad), 0, "never under load");
    assert!(
        plane.stats.handshake_errors.is_empty(),
        "{}",
        errors(&plane)
    );
    // The waiting packet of each peer went out under its new session.
    assert_eq!(sent.len(), n, "one data packet per peer");
    let mut delivered = vec![0u32; n];
    for f in &sent {
        let dg = frames::parse_udp(f).expect("a UDP frame");
        let msg = &f[dg.payload.0..dg.payload.0 + dg.payload.1];
        let i = peer_of(dg.dst);
        let t = Transport::new_checked(msg).expect("a transport message");
        assert_eq!(t.receiver(), local(i), "under the session just made");
        delivered[i] += 1;
    }
    assert!(delivered.iter().all(|&a| a == 1));
    rows.push(Row {
        role: "initiator: initiation out (a packet waiting)",
        count: n,
        secs: init_secs,
        clocks: init_clocks,
    });
    rows.push(Row {
        role: "initiator: response in, session installed, packet sent",
        count: n,
        secs: resp_secs,
        clocks: resp_clocks,
    });
    rows.push(Row {
        role: "initiator: both",
        count: n,
        secs: init_secs + resp_secs,
        clocks: init_clocks + resp_clocks,
    });
    rows.push(Row {
        role: "responder, noise engine alone",
        count: n,
        secs: engine_secs,
        clocks: engine_clocks,
    });
    rows.push(engine_initiator);
    drop(plane);

    // ---- 3. X25519 alone (sampled between the rounds)
    let (dh_ops, dh_secs, dh_clocks) = x25519.dh;
    let (base_ops, base_secs, base_clocks) = x25519.base;
    rows.push(Row {
        role: "X25519, variable base (aws-lc, `noise::dh`, as the engine)",
        count: dh_ops,
        secs: dh_secs,
        clocks: dh_clocks,
    });
    let (dalek_ops, dalek_secs, dalek_clocks) = x25519.dalek;
    rows.push(Row {
        role: "X25519, variable base (x25519-dalek, the engine's before)",
        count: dalek_ops,
        secs: dalek_secs,
        clocks: dalek_clocks,
    });
    rows.push(Row {
        role: "X25519, fixed base (an ephemeral key imported, its public key made)",
        count: base_ops,
        secs: base_secs,
        clocks: base_clocks,
    });

    let dh = dh_secs / dh_ops as f64;
    println!(
        "| role | handshakes | seconds | handshakes/s | clocks per handshake | X25519 per handshake |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let each = r.secs / r.count as f64;
        println!(
            "| {} | {} | {:.4} | {:.0} | {:.0} | {:.2} |",
            r.role,
            r.count,
            r.secs,
            r.count as f64 / r.secs,
            r.clocks as f64 / r.count as f64,
            each / dh
        );
    }
    let tsc_ghz = dh_clocks as f64 / dh_secs / 1e9;
    let base = (base_secs / base_ops as f64) / dh;
    println!();
    println!("CPU: {}", cpu_model());
    let (wall, cpu) = TIMED.with(Cell::get);
    println!();
    println!(
        "On CPU for {:.1} % of the timed wall time (less: something else ran on this CPU, \
         and every rate above is low by as much).",
        (100.0 * cpu / wall).min(100.0)
    );
    println!();
    println!(
        "{n} peers, each with its own static key; {BATCH} handshake messages a round (under \
         load from {}: never reached, no cookie); clocks are TSC ticks ({tsc_ghz:.2} GHz). \
         The X25519 rows count operations, not handshakes: {DH_PER_ROUND} of each kind \
         after every round (and every {BATCH} handshakes of the engine alone), outside \
         their timing. With the static-static DH precomputed per peer, each side of a \
         handshake needs 3 variable-base X25519 and \
         one fixed-base (its ephemeral public key, {base:.2} of a variable-base one here): \
         {:.2} X25519 at the least.",
        control::plane::load::UNDER_LOAD_DEPTH,
        3.0 + base,
    );
}
