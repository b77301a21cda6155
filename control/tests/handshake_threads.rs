//! The Diffie-Hellman work of handshakes on threads (`plane/dh.rs`): the gateway's
//! control plane, driven by `ControlPlane::round` on plain memory, against remote peers
//! played by the project's noise engine, each with a static key of its own.
//!
//! - The same messages give the same outcome whether the work runs on the control
//!   thread or on one or four threads: the same peers answered with responses their
//!   engines accept, the same handshakes completed as initiator, and the same
//!   refusals, counted under the same reasons (bad mac1, replayed initiation, stale
//!   timestamp, initiations too fast, unknown key, replayed response).
//! - Thousands of peers that all initiate at once (and retry, with the cookie they got
//!   when the gateway was under load) all get sessions, and control's counters account
//!   for every initiation it was handed.

use control::noise::{HandshakeError, Identity, PeerHandshake, Tai64N};
use control::plane::dh::DhWork;
use control::plane::{frames, ControlDrop, ControlEvent, ControlPlane, PeerSpec};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::Punt;
use dataplane::memio::MemIo;
use dataplane::meta;
use dataplane::session::Sessions;
use dataplane::tables::{Shared, Side};
use dataplane::wire::wireguard::{self, MessageKind, Transport};
use dataplane::wire::{ArpRepr, IpProtocol, MacAddr, UdpPacket};
use rand_core::OsRng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use x25519_dalek::{PublicKey, StaticSecret};

#[path = "common/world.rs"]
mod world;
use world::*;

/// How long a test may wait for the threads (real time): far more than they need.
const PATIENCE: Duration = Duration::from_secs(120);

type Plane = ControlPlane<HeapBuf, OsRng>;

/// The remote peers: an identity each (peer `i`'s key from `i`), and their handshake
/// with the gateway.
struct Remote {
    identity: Identity,
    hs: PeerHandshake,
}

fn secret(i: usize) -> StaticSecret {
    // X25519 clamps the low bits of the first byte and the high bit of the last.
    let mut b = [0x5a; 32];
    b[1..9].copy_from_slice(&(i as u64).to_le_bytes());
    StaticSecret::from(b)
}

const GW_KEY: [u8; 32] = [0x42; 32];

fn gw_public() -> PublicKey {
    PublicKey::from(&StaticSecret::from(GW_KEY))
}

fn remotes(n: usize) -> Vec<Remote> {
    (0..n)
        .map(|i| {
            let identity = Identity::new(secret(i));
            let hs = PeerHandshake::new(&identity, gw_public(), None).unwrap();
            Remote { identity, hs }
        })
        .collect()
}

/// A gateway with peers `0..n` (each with its endpoint and a /32), the DH work on
/// `threads` threads (0: the control thread), that knows the router's MAC.
fn gateway(n: usize, threads: usize) -> Plane {
    let specs: Vec<PeerSpec> = (0..n)
        .map(|i| PeerSpec {
            public_key: *PublicKey::from(&secret(i)).as_bytes(),
            preshared_key: None,
            endpoint: Some(endpoint(i)),
            allowed_ips: vec![(IpAddr::V4(tunnel_addr(i)), 32)],
            persistent_keepalive: None,
        })
        .collect();
    let shared = Arc::new(Shared::new(tables(), Sessions::new(22, 1 << 20)));
    let mut plane = ControlPlane::new(&GW_KEY, &specs, shared, OsRng).unwrap();
    let alloc = &mut || Some(HeapBuf::new(&[]));
    plane.set_handshake_work(DhWork::with_threads(threads, None).unwrap(), now(T0), alloc);
    assert_eq!(plane.handshake_threads(), threads);
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
    plane
}

/// A handshake message from `from` as the outside worker punts it.
fn punted(from: SocketAddr, msg: &[u8]) -> HeapBuf {
    let mut b = HeapBuf::new(&[]);
    let gw = SocketAddr::new(IpAddr::V4(GW_OUTSIDE), LISTEN_PORT);
    assert!(frames::write_udp(&mut b, ROUTER_MAC, GW_MAC, from, gw, msg));
    b.set_meta(meta::punt(Punt::Handshake, Side::Outside, 0));
    b
}

/// A packet from the LAN for peer `i`, as the encrypt stage punts it without a session.
fn punted_no_session(i: usize) -> HeapBuf {
    let mut p = vec![0u8; 20 + 8 + 16];
    frames::write_ipv4(&mut p, LAN_HOST, tunnel_addr(i), IpProtocol::Udp, 24);
    let mut u = UdpPacket::new_unchecked(&mut p[20..]);
    u.set_src_port(1000);
    u.set_dst_port(2000);
    u.set_len(24);
    u.fill_checksum_v4(LAN_HOST, tunnel_addr(i));
    let mut b = HeapBuf::new(&p);
    b.set_meta(meta::punt(Punt::NoSession, Side::Inside, i as u32));
    b
}

/// Hands `msgs` to the plane at `t` and runs rounds at `t` until every one was worked
/// through and every result of the threads applied, when `waiting` packets wait for a
/// handshake: the frames sent, as (destination, UDP payload).
fn settle(
    plane: &mut Plane,
    msgs: Vec<HeapBuf>,
    t: u64,
    waiting: usize,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut io = MemIo {
        punted: msgs,
        ..Default::default()
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        plane.round(now(t), &mut io);
        if io.punted.is_empty() && plane.queued() == waiting && plane.handshakes_in_flight() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the handshake threads answer");
        std::thread::yield_now();
    }
    io.control
        .drain(..)
        .map(|f| {
            let dg = frames::parse_udp(f.data()).expect("a UDP frame");
            (dg.dst, f.data()[dg.payload.0..][..dg.payload.1].to_vec())
        })
        .collect()
}

/// What one run of the scenario gave: every count that tells outcomes apart.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Peers whose initiation got a response their engine accepted, and the index
    /// of the initiation it answered.
    answered: BTreeSet<(usize, u32)>,
    /// Peers to which the gateway sent its waiting packet under a new session.
    completed: BTreeSet<usize>,
    errors: BTreeMap<&'static str, u64>,
    events: Vec<(&'static str, u64)>,
    drops: Vec<(&'static str, u64)>,
}

/// The scenario, with the DH work on `threads` threads, for the remotes and
/// messages of `prepare`.
fn scenario(threads: usize, prepared: Prepared) -> Outcome {
    let Prepared {
        n,
        mut remotes,
        first,
        stale,
    } = prepared;
    let mut plane = gateway(n, threads);
    let t1 = T0 + 1_000_000_000;
    // 1. Initiations, replays, damaged and too fast ones, and a stranger's.
    let msgs = first.iter().map(|(i, m)| punted(endpoint(*i), m)).collect();
    let sent = settle(&mut plane, msgs, t1, 0);
    let mut answered = BTreeSet::new();
    for (to, msg) in &sent {
        assert_eq!(wireguard::classify(msg), Ok(MessageKind::Response));
        let i = peer_of(*to);
        let r = &mut remotes[i];
        let s =
            r.hs.consume_response(&r.identity, msg, Duration::from_nanos(t1))
                .expect("the response authenticates");
        answered.insert((i, s.local_index));
    }
    // 2. Later, stale ones: timestamps older than those accepted.
    let t2 = t1 + 1_000_000_000;
    let msgs = stale.iter().map(|(i, m)| punted(endpoint(*i), m)).collect();
    let sent = settle(&mut plane, msgs, t2, 0);
    assert!(sent.is_empty(), "nothing answers a stale initiation");
    // 3. The gateway initiates to the peers with even numbers (a packet waits for
    //    each); they answer; each answer comes twice, and once damaged.
    let t3 = t2 + 1_000_000_000;
    let staged = (0..n).step_by(2).map(punted_no_session).collect();
    let sent = settle(&mut plane, staged, t3, n / 2);
    let mut answers = Vec::new();
    for (to, msg) in &sent {
        assert_eq!(wireguard::classify(msg), Ok(MessageKind::Initiation));
        let i = peer_of(*to);
        let r = &mut remotes[i];
        let info = r.identity.consume_initiation(msg).unwrap();
        r.hs.accept_initiation(info, Duration::from_nanos(t3))
            .unwrap();
        let (resp, _) =
            r.hs.create_response(7000 + i as u32, Duration::from_nanos(t3), &mut OsRng)
                .unwrap();
        answers.push(punted(endpoint(i), &resp));
        answers.push(punted(endpoint(i), &resp));
        let mut bad = resp;
        bad[20] ^= 1;
        answers.push(punted(endpoint(i), &bad));
    }
    let sent = settle(&mut plane, answers, t3 + 1_000_000, 0);
    let mut completed = BTreeSet::new();
    for (to, msg) in &sent {
        let t = Transport::new_checked(&msg[..]).expect("the waiting packet, encrypted");
        let i = peer_of(*to);
        assert_eq!(t.receiver(), 7000 + i as u32);
        assert!(completed.insert(i), "one packet each");
    }
    let errors = plane
        .stats
        .handshake_errors
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    let events = [
        ControlEvent::ResponsesSent,
        ControlEvent::HandshakesCompleted,
        ControlEvent::InitiationsSent,
        ControlEvent::CookieRepliesSent,
    ]
    .into_iter()
    .map(|e| (e.name(), plane.stats.event(e)))
    .collect();
    let drops = [
        ControlDrop::HandshakeOutdated,
        ControlDrop::IndexTaken,
        ControlDrop::RateLimited,
        ControlDrop::HandshakeQueueFull,
    ]
    .into_iter()
    .map(|d| (d.name(), plane.stats.drop_count(d)))
    .collect();
    Outcome {
        answered,
        completed,
        errors,
        events,
        drops,
    }
}

/// Counts up from a seed: the same "random" bytes for the same seed, so the remotes of
/// every run make the same messages.
struct Counting(u64);

impl rand_core::RngCore for Counting {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Counting {}

/// The remotes of the scenario and the messages they send.
struct Prepared {
    n: usize,
    remotes: Vec<Remote>,
    first: Vec<(usize, Vec<u8>)>,
    stale: Vec<(usize, Vec<u8>)>,
}

/// Each remote makes three initiations with its own ephemeral keys: timestamps 100
/// (`old`), 400 (`fast`) and 300 (`new`, made last, the one its engine then awaits a
/// response to). By the peer's number modulo 4, the first batch holds `new` alone;
/// `new` twice (a replay); `new` with a bit flipped (bad mac1), then `new`; `new` then
/// `fast` (newer, but within 20 ms). A stranger's initiation ends it. The second
/// batch holds every `old` (stale).
fn prepare(n: usize) -> Prepared {
    let mut rng = Counting(n as u64);
    let mut remotes = remotes(n);
    let wall = |s: u64| Tai64N::from_system_time(UNIX_EPOCH + Duration::from_secs(s));
    let (mut first, mut stale) = (Vec::new(), Vec::new());
    for (i, r) in remotes.iter_mut().enumerate() {
        let mut make = |index, s| {
            r.hs.create_initiation(&r.identity, index, wall(s), Duration::ZERO, &mut rng)
                .unwrap()
                .to_vec()
        };
        let old = make(1, 100);
        let fast = make(4, 400);
        let new = make(3, 300);
        match i % 4 {
            0 => first.push((i, new)),
            1 => {
                first.push((i, new.clone()));
                first.push((i, new));
            }
            2 => {
                let mut bad = new.clone();
                bad[100] ^= 0x80;
                first.push((i, bad));
                first.push((i, new));
            }
            _ => {
                first.push((i, new));
                first.push((i, fast));
            }
        }
        stale.push((i, old));
    }
    let stranger = Identity::new(StaticSecret::from([0x77; 32]));
    let mut hs = PeerHandshake::new(&stranger, gw_public(), None).unwrap();
    let s = hs
        .create_initiation(&stranger, 9, wall(300), Duration::ZERO, &mut rng)
        .unwrap();
    first.push((n + 1, s.to_vec()));
    Prepared {
        n,
        remotes,
        first,
        stale,
    }
}

#[test]
fn handshake_work_on_threads_gives_what_it_gives_on_the_control_thread() {
    let n = 48;
    let mut outcomes = Vec::new();
    let mut messages = None;
    for threads in [0, 1, 4] {
        let prepared = prepare(n);
        // Every run gets the same bytes.
        let these = (prepared.first.clone(), prepared.stale.clone());
        assert!(messages.get_or_insert_with(|| these.clone()) == &these);
        outcomes.push((threads, scenario(threads, prepared)));
    }
    let (_, one) = &outcomes[0];
    // What the scenario means, checked once on the control thread.
    let errors = |name: &str| one.errors.get(name).copied().unwrap_or(0);
    let (n4, n2) = (n as u64 / 4, n as u64 / 2);
    assert_eq!(errors(HandshakeError::BadMac1.name()), n4 + n2, "{one:?}");
    assert_eq!(errors(HandshakeError::StaleTimestamp.name()), n4 + n as u64);
    assert_eq!(errors(HandshakeError::RateLimited.name()), n4);
    assert_eq!(errors(HandshakeError::UnknownPeer.name()), 1);
    assert_eq!(errors(HandshakeError::WrongIndex.name()), n2);
    assert_eq!(one.errors.len(), 5, "no other refusal: {one:?}");
    assert_eq!(one.answered.len(), n, "every peer answered once");
    assert!(one.answered.iter().all(|&(_, index)| index == 3));
    assert_eq!(one.completed.len(), n / 2);
    assert_eq!(
        one.events,
        [
            ("responses_sent", n as u64),
            ("handshakes_completed", n as u64 + n2),
            ("initiations_sent", n2),
            ("cookie_replies_sent", 0),
        ]
    );
    assert!(one.drops.iter().all(|&(_, c)| c == 0), "{one:?}");
    for (threads, o) in &outcomes[1..] {
        assert_eq!(o, one, "{threads} threads");
    }
}

/// `n` peers that all initiate at once, as after a restart of the gateway, and retry
/// after Rekey-Timeout (whitepaper 6.1) until they have a session, with the cookie the
/// gateway gave them if it was under load. On a simulated clock (a round is 10 ms).
/// Returns control's counters.
fn storm(n: usize, threads: usize) -> Plane {
    const STEP: u64 = 10_000_000;
    const RETRY: u64 = 5_000_000_000;
    let mut plane = gateway(n, threads);
    let mut remotes = remotes(n);
    let mut io = MemIo::default();
    let mut t = T0;
    // Peers due to (re)initiate, in the order of their time.
    let mut due: std::collections::VecDeque<(u64, usize)> = (0..n).map(|i| (t, i)).collect();
    let mut attempts = vec![0u32; n];
    let mut established = vec![false; n];
    let mut sessions = 0;
    let mut delivered = 0u64;
    let deadline = Instant::now() + PATIENCE;
    while sessions < n || plane.queued() > 0 || plane.handshakes_in_flight() > 0 {
        assert!(Instant::now() < deadline, "the storm ends");
        // The simulated clock stands still while the threads work: they are as fast as
        // the control thread, in its time.
        if plane.handshakes_in_flight() > 0 && !plane.handshake_results_ready() {
            std::thread::yield_now();
            continue;
        }
        assert!(
            t < T0 + 600 * 1_000_000_000,
            "every peer got its session in time: {sessions} did ({threads} threads); {:?} {:?} {:?} queued {} in flight {}",
            plane.stats.events,
            plane.stats.drops,
            plane.stats.handshake_errors,
            plane.queued(),
            plane.handshakes_in_flight()
        );
        while due.front().is_some_and(|&(at, _)| at <= t) {
            let (_, i) = due.pop_front().unwrap();
            if established[i] {
                continue;
            }
            attempts[i] += 1;
            let r = &mut remotes[i];
            let index = (attempts[i] << 20) | i as u32;
            let wall = Tai64N::from_system_time(now(t).wall);
            let m =
                r.hs.create_initiation(
                    &r.identity,
                    index,
                    wall,
                    Duration::from_nanos(t),
                    &mut OsRng,
                )
                .unwrap();
            io.punted.push(punted(endpoint(i), &m));
            delivered += 1;
            due.push_back((t + RETRY, i));
        }
        plane.round(now(t), &mut io);
        for f in io.control.drain(..) {
            let dg = frames::parse_udp(f.data()).expect("a UDP frame");
            let msg = &f.data()[dg.payload.0..][..dg.payload.1];
            let i = peer_of(dg.dst);
            let r = &mut remotes[i];
            match wireguard::classify(msg) {
                Ok(MessageKind::Response) => {
                    // A response to an earlier attempt finds the engine waiting for
                    // another: the peer waits for the one to its last.
                    if r.hs
                        .consume_response(&r.identity, msg, Duration::from_nanos(t))
                        .is_ok()
                    {
                        assert!(!established[i], "one session each");
                        established[i] = true;
                        sessions += 1;
                    }
                }
                Ok(MessageKind::CookieReply) => {
                    let _ = r.hs.consume_cookie_reply(msg, Duration::from_nanos(t));
                }
                other => panic!("the gateway sent {other:?}"),
            }
        }
        t += STEP;
    }
    let ev = |e| plane.stats.event(e);
    let dr = |d| plane.stats.drop_count(d);
    let refused: u64 = plane.stats.handshake_errors.values().sum();
    let accounted = ev(ControlEvent::ResponsesSent)
        + ev(ControlEvent::CookieRepliesSent)
        + dr(ControlDrop::HandshakeQueueFull)
        + dr(ControlDrop::RateLimited)
        + dr(ControlDrop::HandshakeOutdated)
        + dr(ControlDrop::IndexTaken)
        + refused;
    assert_eq!(
        accounted, delivered,
        "{threads} threads: every initiation answered, given a cookie, or dropped under a \
         reason: {:?} {:?} {:?}",
        plane.stats.events, plane.stats.drops, plane.stats.handshake_errors
    );
    assert_eq!(
        ev(ControlEvent::HandshakesCompleted),
        ev(ControlEvent::ResponsesSent)
    );
    assert!(ev(ControlEvent::ResponsesSent) >= n as u64);
    plane
}

#[test]
fn thousands_of_peers_at_once_all_get_sessions_and_every_initiation_is_counted() {
    let n = 3000;
    for threads in [0, 2] {
        let plane = storm(n, threads);
        // More at once than the queue holds: the gateway was under load, sent cookies
        // and dropped what did not fit; the peers came back with their cookies.
        assert!(plane.stats.event(ControlEvent::CookieRepliesSent) > 0);
        assert!(plane.stats.drop_count(ControlDrop::HandshakeQueueFull) > 0);
        assert_eq!(plane.active_peer_count(), n, "{threads} threads");
    }
}
