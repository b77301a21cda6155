//! Two wgdp gateways back to back on plain memory, on a simulated clock: ARP between
//! their outside ports, the handshake started by a staged packet, data both ways, and
//! the timers that keep the session (keepalive confirmation, retries), and the ICMP
//! errors a router owes its senders.

use control::plane::{ControlDrop, ControlEvent, PeerSpec};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::{DecryptDrop, RouteDrop};
use dataplane::ecn::{self, CE, ECT_0, ECT_1, NOT_ECT};
use dataplane::session::Sessions;
use dataplane::tables::Side;
use dataplane::wire::{ethernet, Icmpv4Packet, IpProtocol, Ipv4Packet};
use rand_core::OsRng;
use std::net::IpAddr;
use std::time::Duration;
use x25519_dalek::{PublicKey, StaticSecret};

mod common;
use common::*;

#[allow(clippy::too_many_arguments)]
fn gateway(
    key: &StaticSecret,
    peer_key: &PublicKey,
    outside: &str,
    inside: &str,
    lan: &str,
    peer_net: &str,
    peer_endpoint: &str,
    id: u8,
) -> Gw {
    let spec = PeerSpec {
        public_key: *peer_key.as_bytes(),
        preshared_key: Some([7; 32]),
        endpoint: Some(peer_endpoint.parse().unwrap()),
        allowed_ips: vec![(ip(peer_net), 24)],
        persistent_keepalive: None,
    };
    common::gateway(key, spec, [outside, inside, lan], id, Sessions::new(10, 4))
}

fn pair() -> (Gw, Gw) {
    let ka = StaticSecret::random_from_rng(OsRng);
    let kb = StaticSecret::random_from_rng(OsRng);
    let a = gateway(
        &ka,
        &PublicKey::from(&kb),
        "198.19.0.1",
        "198.18.1.1",
        "198.18.1.2",
        "198.18.2.0",
        "198.19.0.2:51820",
        1,
    );
    let b = gateway(
        &kb,
        &PublicKey::from(&ka),
        "198.19.0.2",
        "198.18.2.1",
        "198.18.2.2",
        "198.18.1.0",
        "198.19.0.1:51820",
        2,
    );
    (a, b)
}

#[test]
fn first_packet_starts_the_handshake_and_arrives() {
    let (mut a, mut b) = pair();
    let mut t = 1_000 * MS;
    // Three packets before any session exists: staged, then sent after the handshake.
    for n in 0..3 {
        let p = lan_packet(&a, "198.18.2.2", n);
        a.worker.io.rx[Side::Inside.index()].push_back(p);
    }
    for _ in 0..20 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(b.delivered.len(), 3, "staged packets delivered in order");
    for (n, p) in b.delivered.iter().enumerate() {
        assert_eq!(p[28], n as u8);
        // Each gateway is a router hop.
        assert_eq!(Ipv4Packet::new_checked(&p[..]).unwrap().ttl(), 62);
    }
    assert_eq!(a.plane.stats.event(ControlEvent::InitiationsSent), 1);
    assert_eq!(b.plane.stats.event(ControlEvent::ResponsesSent), 1);

    // And back: B's keypair was confirmed by A's first packets.
    let p = lan_packet(&b, "198.18.1.2", 9);
    b.worker.io.rx[Side::Inside.index()].push_back(p);
    for _ in 0..5 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(a.delivered.len(), 1);
    assert_eq!(a.delivered[0][28], 9);
    assert_eq!(
        b.plane.stats.event(ControlEvent::InitiationsSent),
        0,
        "no second handshake needed"
    );
    for g in [&a, &b] {
        let c = g.worker.counters();
        assert_eq!(c.drops(), 0, "{c:?}");
        assert_eq!(g.plane.stats.handshake_errors.len(), 0);
        assert_eq!(g.plane.queued(), 0);
    }
}

#[test]
fn passive_keepalive_after_one_way_traffic() {
    let (mut a, mut b) = pair();
    let mut t = 1_000 * MS;
    let p = lan_packet(&a, "198.18.2.2", 1);
    a.worker.io.rx[Side::Inside.index()].push_back(p);
    for _ in 0..10 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(b.delivered.len(), 1);
    let keepalives = b.plane.stats.event(ControlEvent::KeepalivesSent);
    // B received data and sent nothing back: after Keepalive-Timeout (10 s) it sends a
    // keepalive, which A counts.
    t += 10_000 * MS;
    for _ in 0..3 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(
        b.plane.stats.event(ControlEvent::KeepalivesSent),
        keepalives + 1
    );
    assert!(a.worker.counters().traffic.keepalives_rx.get() >= 1);
}

#[test]
fn unanswered_initiations_are_retried_then_abandoned() {
    let (mut a, _b) = pair();
    let mut t = 1_000 * MS;
    let p = lan_packet(&a, "198.18.2.2", 1);
    a.worker.io.rx[Side::Inside.index()].push_back(p);
    // Nobody answers (not even ARP): run A alone for 100 simulated seconds.
    let start = t;
    while t < start + 100_000 * MS {
        a.worker.io.now = t;
        a.worker.poll();
        a.plane.round(now(t), &mut a.worker.io);
        a.worker.io.control.clear();
        t += 100 * MS;
    }
    // Rekey-Timeout is 5 s plus up to 333 ms of jitter, over Rekey-Attempt-Time (90 s).
    let sent = a.plane.stats.event(ControlEvent::InitiationsSent);
    assert!((16..=19).contains(&sent), "{sent} initiations");
    assert_eq!(a.plane.stats.event(ControlEvent::HandshakeTimeouts), 1);
    assert_eq!(a.plane.stats.drop_count(ControlDrop::HandshakeGaveUp), 1);
    assert_eq!(a.plane.queued(), 0);
}

/// The ICMP message in an IPv4 packet delivered to a LAN host: (source, type, code,
/// next-hop MTU field, quoted bytes).
fn icmp_of(p: &[u8]) -> (IpAddr, u8, u8, u16, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(p).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    (
        IpAddr::V4(ip.src_addr()),
        u8::from(icmp.msg_type()),
        icmp.msg_code(),
        icmp.next_hop_mtu(),
        icmp.data().to_vec(),
    )
}

fn established() -> (Gw, Gw, u64) {
    let (mut a, mut b) = pair();
    let mut t = 1_000 * MS;
    a.worker.io.rx[Side::Inside.index()].push_back(lan_packet(&a, "198.18.2.2", 0));
    for _ in 0..20 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(b.delivered.len(), 1);
    b.delivered.clear();
    (a, b, t)
}

#[test]
fn too_big_for_the_tunnel_gets_fragmentation_needed() {
    let (mut a, mut b, mut t) = established();
    let big = lan_packet_sized(&a, "198.18.2.2", 5, 1500, 64);
    let original = big.data()[ethernet::HEADER_LEN..].to_vec();
    a.worker.io.rx[Side::Inside.index()].push_back(big);
    for _ in 0..3 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert!(b.delivered.is_empty(), "nothing over the MTU went through");
    assert_eq!(a.delivered.len(), 1);
    let (src, ty, code, mtu, quoted) = icmp_of(&a.delivered[0]);
    assert_eq!((src, ty, code, mtu), (ip("198.18.1.1"), 3, 4, 1420));
    // RFC 1812: as much of the original as fits in 576 bytes.
    assert_eq!(a.delivered[0].len(), 576);
    assert_eq!(quoted[..], original[..548]);
    assert_eq!(a.plane.stats.event(ControlEvent::IcmpSent), 1);
    // A packet at the MTU passes.
    a.worker.io.rx[Side::Inside.index()].push_back(lan_packet_sized(&a, "198.18.2.2", 6, 1420, 64));
    for _ in 0..3 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(b.delivered.len(), 1);
    assert_eq!(b.delivered[0].len(), 1420);
}

#[test]
fn ttl_expiring_behind_the_tunnel_is_reported_through_it() {
    let (mut a, mut b, mut t) = established();
    // TTL 2 leaves B with TTL 1 and expires at A: A's time exceeded goes back through
    // the tunnel to B's LAN host.
    b.worker.io.rx[Side::Inside.index()].push_back(lan_packet_sized(&b, "198.18.1.2", 7, 100, 2));
    for _ in 0..5 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert!(a.delivered.is_empty());
    assert_eq!(b.delivered.len(), 1);
    let (src, ty, code, _, quoted) = icmp_of(&b.delivered[0]);
    assert_eq!((src, ty, code), (ip("198.18.1.1"), 11, 0));
    // The quote is the packet as A received it: TTL 1, from B's LAN host.
    let q = Ipv4Packet::new_checked(&quoted[..]).unwrap();
    assert_eq!((q.ttl(), IpAddr::V4(q.src_addr())), (1, ip("198.18.2.2")));

    // TTL 1 from A's own LAN is answered on the LAN.
    a.worker.io.rx[Side::Inside.index()].push_back(lan_packet_sized(&a, "198.18.2.2", 8, 100, 1));
    for _ in 0..3 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(a.delivered.len(), 1);
    assert_eq!(icmp_of(&a.delivered[0]).1, 11);
    assert_eq!(a.plane.stats.event(ControlEvent::IcmpSent), 2);
}

#[test]
fn icmp_errors_are_rate_limited_and_never_about_errors() {
    let (mut a, mut b, mut t) = established();
    for n in 0..80 {
        a.worker.io.rx[Side::Inside.index()].push_back(lan_packet_sized(
            &a,
            "198.18.2.2",
            n,
            100,
            1,
        ));
    }
    step(&mut a, &mut b, t);
    t += MS;
    // A burst of 50, then one per millisecond.
    assert_eq!(a.plane.stats.event(ControlEvent::IcmpSent), 50);
    assert_eq!(a.plane.stats.drop_count(ControlDrop::IcmpRateLimited), 30);
    // An ICMP error with TTL 1 gets nothing back.
    let mut e = lan_packet_sized(&a, "198.18.2.2", 0, 100, 1);
    {
        let d = e.data_mut();
        let mut h = Ipv4Packet::new_unchecked(&mut d[ethernet::HEADER_LEN..]);
        h.set_protocol(IpProtocol::Icmp);
        h.fill_checksum();
        d[ethernet::HEADER_LEN + 20] = 11;
    }
    a.worker.io.rx[Side::Inside.index()].push_back(e);
    step(&mut a, &mut b, t + 100 * MS);
    assert_eq!(a.plane.stats.drop_count(ControlDrop::IcmpSuppressed), 1);
    assert_eq!(a.plane.stats.event(ControlEvent::IcmpSent), 50);
}

#[test]
fn too_big_without_df_is_fragmented() {
    let (mut a, mut b, mut t) = established();
    let mut big = lan_packet_sized(&a, "198.18.2.2", 3, 1900, 64);
    {
        let d = big.data_mut();
        let mut h = Ipv4Packet::new_unchecked(&mut d[ethernet::HEADER_LEN..]);
        h.set_dont_frag(false);
        h.fill_checksum();
    }
    let payload = big.data()[ethernet::HEADER_LEN + 20..].to_vec();
    a.worker.io.rx[Side::Inside.index()].push_back(big);
    for _ in 0..3 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert!(
        a.delivered.is_empty(),
        "no ICMP error for a packet that may be split"
    );
    assert_eq!(a.plane.stats.event(ControlEvent::Fragmented), 1);
    let sizes: Vec<usize> = b.delivered.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1420, 500]);
    let mut joined = Vec::new();
    for f in &b.delivered {
        let p = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert!(p.verify_checksum());
        // One hop at A, one at B.
        assert_eq!(p.ttl(), 62);
        joined.extend_from_slice(p.payload());
    }
    assert_eq!(joined, payload);
}

#[test]
fn peers_change_at_run_time_without_touching_others() {
    let (mut a, mut b, mut t) = established();
    let initiations = a.plane.stats.event(ControlEvent::InitiationsSent);
    let send = |a: &mut Gw, b: &mut Gw, t: &mut u64, n: u8| {
        let p = lan_packet(a, "198.18.2.2", n);
        a.worker.io.rx[Side::Inside.index()].push_back(p);
        for _ in 0..5 {
            step(a, b, *t);
            *t += MS;
        }
    };
    // Another peer comes and goes; B's session is not disturbed.
    let other = PeerSpec {
        public_key: *PublicKey::from(&StaticSecret::random_from_rng(OsRng)).as_bytes(),
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec![(ip("198.18.50.0"), 24)],
        persistent_keepalive: None,
    };
    let id = a.plane.add_peer(other.clone()).unwrap();
    assert_eq!(id, 1);
    assert!(
        a.plane.add_peer(other.clone()).is_err(),
        "no duplicate keys"
    );
    send(&mut a, &mut b, &mut t, 1);
    assert!(a.plane.remove_peer(&other.public_key));
    assert!(!a.plane.remove_peer(&other.public_key));
    send(&mut a, &mut b, &mut t, 2);
    // B's allowed IPs grow; its session stays.
    let mut spec_b = a.plane.peer_specs().next().unwrap().clone();
    spec_b.allowed_ips.push((ip("198.18.60.0"), 24));
    assert!(a.plane.update_peer(spec_b.clone()));
    send(&mut a, &mut b, &mut t, 3);
    let got: Vec<u8> = b.delivered.iter().map(|p| p[28]).collect();
    assert_eq!(got, vec![1, 2, 3]);
    assert_eq!(
        a.plane.stats.event(ControlEvent::InitiationsSent),
        initiations,
        "no new handshake"
    );

    // B goes: its packets have no route and its keypairs are gone.
    assert!(a.plane.remove_peer(&spec_b.public_key));
    let drops = a.worker.counters().route.get(RouteDrop::NoRoute);
    send(&mut a, &mut b, &mut t, 4);
    assert_eq!(a.worker.counters().route.get(RouteDrop::NoRoute), drops + 1);
    assert_eq!(b.delivered.len(), 3);
    // And comes back: a new handshake, and traffic again.
    a.plane.add_peer(spec_b).unwrap();
    send(&mut a, &mut b, &mut t, 5);
    assert_eq!(
        a.plane.stats.event(ControlEvent::InitiationsSent),
        initiations + 1
    );
    assert_eq!(b.delivered.last().unwrap()[28], 5);
    assert_eq!(a.plane.peer_views().next().unwrap().handshakes, 1);
}

/// Runs both gateways for `secs` simulated seconds, A's LAN host sending one packet
/// every `every` ms and B's every `every_b` ms (0: silent); returns the new time.
fn run_traffic(a: &mut Gw, b: &mut Gw, mut t: u64, secs: u64, every: u64, every_b: u64) -> u64 {
    let end = t + secs * 1_000 * MS;
    let mut n = 0u64;
    while t < end {
        if every > 0 && (t / MS) % every == 0 {
            let p = lan_packet(a, "198.18.2.2", (n % 251) as u8);
            a.worker.io.rx[Side::Inside.index()].push_back(p);
            n += 1;
        }
        if every_b > 0 && (t / MS) % every_b == 0 {
            let p = lan_packet(b, "198.18.1.2", 0);
            b.worker.io.rx[Side::Inside.index()].push_back(p);
        }
        step(a, b, t);
        t += 10 * MS;
    }
    t
}

#[test]
fn rekey_after_120_s_under_traffic_loses_nothing() {
    let (mut a, mut b, t) = established();
    // Traffic both ways every 100 ms for 400 s: three rekeys by A (the initiator
    // rekeys at Rekey-After-Time, 120 s, when it sends).
    run_traffic(&mut a, &mut b, t, 400, 100, 100);
    let sent = 4_000;
    assert_eq!(b.delivered.len(), sent, "every packet arrived");
    assert_eq!(a.delivered.len(), sent);
    for (i, p) in b.delivered.iter().enumerate() {
        assert_eq!(p[28], (i % 251) as u8, "in order");
    }
    let handshakes = a.plane.stats.event(ControlEvent::HandshakesCompleted)
        + b.plane.stats.event(ControlEvent::HandshakesCompleted);
    assert!(
        (3..=4).contains(&a.plane.stats.event(ControlEvent::InitiationsSent)),
        "{} initiations",
        a.plane.stats.event(ControlEvent::InitiationsSent)
    );
    assert!(handshakes >= 6, "{handshakes}");
    for g in [&a, &b] {
        assert_eq!(g.worker.counters().drops(), 0, "{:?}", g.worker.counters());
        assert_eq!(g.plane.stats.drops.total(), 0, "{:?}", g.plane.stats);
    }
}

#[test]
fn a_dead_peer_is_rejected_after_180_s_and_forgotten_after_540_s() {
    let (mut a, b, mut t) = established();
    let index = a.shared.sessions.sending(0).expect("A sends").local_index;
    // B dies: nothing A sends is answered any more.
    let start = t;
    let mut sent_after_reject = 0;
    while t < start + 600_000 * MS {
        if (t / MS) % 1_000 == 0 {
            let p = lan_packet(&a, "198.18.2.2", 1);
            a.worker.io.rx[Side::Inside.index()].push_back(p);
        }
        a.worker.io.now = t;
        a.worker.poll();
        a.plane.round(now(t), &mut a.worker.io);
        a.worker.io.control.clear();
        let tx = std::mem::take(&mut a.worker.io.tx[0]);
        // Data packets (transport, type 4) leaving A after Reject-After-Time would
        // be a violation; handshake initiations (type 1) are expected.
        if t - start > 181_000 * MS {
            sent_after_reject += tx.iter().filter(|f| f.data().get(42) == Some(&4)).count();
        }
        if t - start == 300_000 * MS {
            assert!(
                a.shared.sessions.lookup(index).is_some(),
                "still held between 180 s and 540 s"
            );
        }
        t += 100 * MS;
    }
    assert_eq!(
        sent_after_reject, 0,
        "no data under a keypair older than 180 s"
    );
    assert!(
        a.shared.sessions.lookup(index).is_none(),
        "forgotten after 540 s"
    );
    assert!(a.plane.stats.event(ControlEvent::KeypairsExpired) >= 1);
    drop(b);
}

#[test]
fn worker_times_newer_than_the_tick_do_not_look_like_a_dead_peer() {
    let (mut a, _b, t) = established();
    let initiations = a.plane.stats.event(ControlEvent::InitiationsSent);
    // A worker stamped its last send a moment after control read the clock for its
    // tick, and its last receive just before.
    {
        let id = a.plane.peer_views().next().unwrap().peer.id;
        let w = a.shared.activity.writer();
        w.add_rx(id, 0, 0, false, t - MS);
        w.add_tx(id, 0, 0, true, t + MS);
    }
    let mut alloc = || Some(HeapBuf::new(&[]));
    a.plane.tick(now(t), &mut alloc);
    assert_eq!(
        a.plane.stats.event(ControlEvent::InitiationsSent),
        initiations
    );
}

/// Initiations with a valid mac1 for `to`, from a host nobody configured, each from its
/// own source address on the outside subnet.
fn bogus_initiations(to: &PublicKey, n: usize) -> Vec<HeapBuf> {
    use control::noise::{Identity, PeerHandshake, Tai64N};
    let stranger = Identity::new(StaticSecret::random_from_rng(OsRng));
    let mut hs = PeerHandshake::new(&stranger, *to, None).unwrap();
    (0..n)
        .map(|i| {
            let msg = hs
                .create_initiation(
                    &stranger,
                    i as u32,
                    Tai64N::from_system_time(std::time::SystemTime::now()),
                    Duration::from_secs(1_000 + i as u64),
                    &mut OsRng,
                )
                .unwrap();
            let mut b = HeapBuf::new(&[]);
            let src = format!("198.19.0.{}:{}", 10 + i % 200, 1024 + i);
            assert!(control::plane::frames::write_udp(
                &mut b,
                [2, 9, 9, 9, 9, 9],
                [2, 2, 0, 0, 0, 1],
                src.parse().unwrap(),
                "198.19.0.2:51820".parse().unwrap(),
                &msg,
            ));
            b
        })
        .collect()
}

#[test]
fn under_a_flood_of_initiations_cookies_let_the_real_peer_in() {
    let (mut a, mut b) = pair();
    // B's public key is A's peer.
    let b_pub = PublicKey::from(a.plane.peer_specs().next().unwrap().public_key);
    let mut t = 1_000 * MS;
    a.worker.io.rx[Side::Inside.index()].push_back(lan_packet(&a, "198.18.2.2", 1));
    // 200 bogus initiations per step for 12 simulated seconds, a step every
    // millisecond and then every 50 ms: far more than the 32 a round of control's loop
    // works through (`control::plane::round::HANDSHAKE_BUDGET`), so B's handshake
    // queue stays deep. A step's frames fit in one worker burst, so A's initiation,
    // which arrives before the next burst, reaches control before that burst does.
    let mut flood = 0;
    while t < 13_000 * MS && b.delivered.is_empty() {
        let burst = bogus_initiations(&b_pub, 200);
        flood += burst.len();
        b.worker.io.rx[0].extend(burst);
        step(&mut a, &mut b, t);
        // Cookie replies to spoofed sources go nowhere.
        t += MS;
        if t % (50 * MS) == 0 {
            // Let simulated time pass faster between bursts.
            t += 49 * MS;
        }
    }
    let s = &b.plane.stats;
    assert_eq!(b.delivered.len(), 1, "the real peer's packet arrived");
    assert!(s.event(ControlEvent::CookieRepliesSent) > 0, "{s:?}");
    assert!(
        s.drop_count(ControlDrop::HandshakeQueueFull) > 0,
        "the queue stayed bounded: {s:?}"
    );
    assert!(
        a.plane.stats.event(ControlEvent::InitiationsSent) >= 2,
        "A retried with a cookie"
    );
    assert!(b.plane.queued() <= control::plane::load::HANDSHAKE_QUEUE);
    assert!(flood > 10_000);
}

#[test]
fn persistent_keepalive_every_interval_without_traffic() {
    let (mut a, mut b, t) = established();
    let mut spec = a.plane.peer_specs().next().unwrap().clone();
    spec.persistent_keepalive = Some(25);
    assert!(a.plane.update_peer(spec));
    let sent = a.plane.stats.event(ControlEvent::KeepalivesSent);
    let received = b.worker.counters().traffic.keepalives_rx.get();
    // 90 s without data. B confirms A's packet with a keepalive at 10 s; from then on
    // A sends one whenever nothing went either way for 25 s: at 35, 60 and 85 s (any
    // authenticated packet restarts the wait, as in wireguard-go).
    run_traffic(&mut a, &mut b, t, 90, 0, 0);
    assert_eq!(a.plane.stats.event(ControlEvent::KeepalivesSent) - sent, 3);
    assert_eq!(
        b.worker.counters().traffic.keepalives_rx.get() - received,
        3
    );
}

/// RFC 6040 across two gateways: A copies the inner ECN field outside and keeps the outer
/// DSCP at 0; a congested router between them marks CE where the outer field allows it;
/// B carries the mark over to the inner packet (its checksum still valid), and drops a
/// CE mark that a non-compliant router put on a Not-ECT packet, counting it.
#[test]
fn congestion_marks_cross_the_tunnel() {
    let (mut a, mut b, mut t) = established();
    // (inner ECN, router marks CE whatever the outer says, ECN B delivers).
    let cases = [
        (NOT_ECT, false, Some(NOT_ECT)),
        (ECT_0, false, Some(ECT_0)),
        (ECT_1, false, Some(ECT_1)),
        (CE, false, Some(CE)),
        (ECT_0, true, Some(CE)),
        (ECT_1, true, Some(CE)),
        (CE, true, Some(CE)),
        (NOT_ECT, true, None),
    ];
    for (n, (inner, mark, want)) in cases.into_iter().enumerate() {
        let mut p = lan_packet(&a, "198.18.2.2", n as u8);
        {
            let mut h = Ipv4Packet::new_unchecked(&mut p.data_mut()[ethernet::HEADER_LEN..]);
            h.set_dscp(46);
            h.set_ecn(inner);
            h.fill_checksum();
        }
        a.worker.io.rx[Side::Inside.index()].push_back(p);
        let mut outer_seen = Vec::new();
        let mut router = |f: &mut [u8]| {
            let mut h = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            outer_seen.push((h.dscp(), h.ecn()));
            if mark {
                h.set_ecn(CE);
                h.fill_checksum();
            }
        };
        let drops = b.worker.counters().decrypt.get(DecryptDrop::CeOnNotEct);
        for _ in 0..3 {
            step_through(&mut a, &mut b, t, &mut router);
            t += MS;
        }
        assert_eq!(
            outer_seen,
            vec![(0, inner)],
            "outer header for inner ECN {inner}"
        );
        let got = b.delivered.pop();
        assert!(b.delivered.is_empty());
        match want {
            Some(e) => {
                let got = got.expect("delivered");
                let h = Ipv4Packet::new_checked(&got[..]).unwrap();
                assert_eq!((h.dscp(), h.ecn()), (46, e), "inner {inner}, marked {mark}");
                assert!(h.verify_checksum());
                assert_eq!(ecn::get(&got), Some(e));
                assert_eq!(
                    b.worker.counters().decrypt.get(DecryptDrop::CeOnNotEct),
                    drops
                );
            }
            None => {
                assert!(got.is_none(), "CE over Not-ECT must not arrive");
                assert_eq!(
                    b.worker.counters().decrypt.get(DecryptDrop::CeOnNotEct),
                    drops + 1
                );
            }
        }
    }
}
