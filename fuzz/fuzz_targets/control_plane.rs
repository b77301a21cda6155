//! The control plane with one peer, driven by a program of operations on a simulated
//! clock: arbitrary punted packets with arbitrary punt reasons, sides and peer ids;
//! genuine handshake messages from the peer (made by a second handshake engine, so
//! handshakes complete and keypairs are installed), optionally damaged; answers to the
//! plane's own initiations; cookie replies both ways; floods of a stranger's initiations
//! that put the plane under load; polls of the handshake queue; ARP and neighbor
//! discovery; packets for the peer that need a session, fragmenting or an ICMP error;
//! what workers report (keypair confirmed, handshake wanted, traffic seen); frames from
//! the host's TAP; ticks.
//!
//! Input: a settings byte (bit 0 a preshared key, bit 1 a control port, bit 2 a
//! persistent keepalive, bit 3 no configured endpoint), a seed byte, then operations:
//! an opcode byte, a buffer-budget byte (0xf0 and up: at most `b - 0xf0` buffers for the
//! operation, so pool exhaustion is reachable) and the opcode's arguments.
//!
//! After every operation: every buffer the plane was given or allocated is queued, in
//! `out`, or freed (counted by `TrackedBuf`); every frame in `out` is tagged with a side,
//! comes from that port's MAC, and parses with valid IP, UDP and ICMPv6 checksums; every
//! handshake message to the peer carries a mac1 the peer accepts; every initiation the
//! plane sends opens with the peer's key; genuine messages never fail on crypto; a
//! cookie reply the plane sends for the peer's latest message opens.
//!
//! With `WGDP_FUZZ_TRACE` set in the environment, each operation and the plane's
//! counters after it are printed, to check what a seed reaches.

#![no_main]

use control::noise::{CookieChecker, PeerHandshake, Session};
use control::plane::frames::parse_udp;
use control::plane::host::HostPort;
use control::plane::{Alloc, ControlPlane, Now, PeerSpec};
use dataplane::buf::PacketBuf;
use dataplane::counters::Punt;
use dataplane::meta;
use dataplane::session::{Peer, Sessions};
use dataplane::tables::{Shared, Side};
use dataplane::wire::wireguard::{self, MessageKind};
use dataplane::wire::{
    icmpv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, UdpPacket,
};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};
use wgdp_fuzz::cast::{self, ALICE, BOB, CAROL, PSK};
use wgdp_fuzz::{
    ethernet_frame, fix_frame, fix_ip, ip_packet, mutate, net, rng, udp_frame, Cursor, Fixups,
    TrackedBuf, MAX_FRAME,
};

const MAX_OPS: usize = 48;
/// Opcodes, taken modulo this.
const OPS: u8 = 13;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
/// Frames the plane sent, kept for the peer to answer.
const WIRE_KEEP: usize = 32;
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];
/// Handshake refusals that a genuine, undamaged message must never earn.
const CRYPTO_ERRORS: [&str; 7] = [
    "malformed",
    "bad_mac1",
    "bad_public_key",
    "decrypt_static",
    "decrypt_timestamp",
    "decrypt_response",
    "unknown_peer",
];

/// The peer: Alice's keys and handshake engine, and Bob's (the plane's) public key.
struct Remote {
    hs: PeerHandshake,
    checker: CookieChecker,
    rng: ChaCha8Rng,
    session: Option<Session>,
    wall_secs: u64,
    next_index: u32,
}

fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("WGDP_FUZZ_TRACE").is_some())
}

fn now(mono: u64) -> Now {
    Now {
        mono,
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(mono),
    }
}

fn errors(plane: &ControlPlane<TrackedBuf, ChaCha8Rng>) -> HashMap<&'static str, u64> {
    plane.stats.handshake_errors.clone()
}

fn assert_no_crypto_errors(
    before: &HashMap<&'static str, u64>,
    plane: &ControlPlane<TrackedBuf, ChaCha8Rng>,
    what: &str,
) {
    for name in CRYPTO_ERRORS {
        assert_eq!(
            before.get(name),
            plane.stats.handshake_errors.get(name),
            "{what}: a genuine message was refused as {name}"
        );
    }
}

/// The peer's message as the outside port hands it over: a frame to our listen port.
fn from_remote(msg: &[u8]) -> TrackedBuf {
    from_source(msg, net::remote_endpoint())
}

fn from_source(msg: &[u8], src: SocketAddr) -> TrackedBuf {
    let frame = udp_frame(
        net::OUTSIDE_MAC,
        net::REMOTE_MAC,
        src,
        SocketAddr::new(IpAddr::V4(net::OUTSIDE_V4), net::LISTEN_PORT),
        msg,
    );
    let mut b = TrackedBuf::new(&frame);
    b.set_meta(meta::punt(Punt::Handshake, Side::Outside, 0));
    b
}

/// Hands a genuine message from the peer to the plane and works it off the handshake
/// queue (after whatever waited before it). Unless `damaged`, it must not be refused
/// for a reason a genuine message cannot earn.
fn deliver_genuine(
    plane: &mut ControlPlane<TrackedBuf, ChaCha8Rng>,
    b: TrackedBuf,
    t: Now,
    alloc: Alloc<'_, TrackedBuf>,
    damaged: bool,
    what: &str,
) {
    plane.poll_handshakes(t, &mut *alloc, usize::MAX);
    let before = errors(plane);
    plane.handle(b, t, &mut *alloc);
    plane.poll_handshakes(t, &mut *alloc, usize::MAX);
    if !damaged {
        assert_no_crypto_errors(&before, plane, what);
    }
}

fn our_frame_to_remote(frame: &[u8]) -> Option<(MessageKind, Vec<u8>)> {
    let dg = parse_udp(frame)?;
    if dg.dst.ip() != IpAddr::V4(net::REMOTE_V4) {
        return None;
    }
    let msg = &frame[dg.payload.0..dg.payload.0 + dg.payload.1];
    wireguard::classify(msg).ok().map(|k| (k, msg.to_vec()))
}

/// The peer's id (cryptokey routing holds ids), and its shared state, which workers
/// reach through a keypair: `None` before the first session.
fn peer_of(shared: &Shared) -> (u32, Option<Arc<Peer>>) {
    let id = shared
        .tables
        .load()
        .allowed
        .lookup(IpAddr::V4(net::PEER_NET_V4))
        .expect("the peer's allowed IPs are published");
    (id, shared.sessions.sending(id).map(|kp| kp.peer.clone()))
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(TrackedBuf::live(), 0, "buffers outlived the previous run");
    let mut cur = Cursor::new(data);
    let settings = cur.u8();
    let seed = cur.u8();
    let psk = (settings & 1 != 0).then_some(PSK);
    let spec = PeerSpec {
        public_key: *cast::public(ALICE).as_bytes(),
        preshared_key: psk,
        endpoint: (settings & 8 == 0).then(net::remote_endpoint),
        allowed_ips: net::peer_allowed(),
        persistent_keepalive: (settings & 4 != 0).then_some(25),
    };
    let shared = Arc::new(Shared::new(net::tables(), Sessions::new(10, 4)));
    // What a worker counts of the peer's traffic.
    let worker = shared.activity.writer();
    let mut plane: ControlPlane<TrackedBuf, ChaCha8Rng> =
        ControlPlane::new(&[0xb0; 32], &[spec], shared.clone(), rng(u64::from(seed)))
            .expect("one valid peer");
    assert_eq!(plane.public_key(), *cast::public(BOB).as_bytes());
    if settings & 2 != 0 {
        plane.host = Some(HostPort::new(HOST_MAC, net::INSIDE_MAC));
    }
    let alice = cast::identity(ALICE);
    let mut remote = Remote {
        hs: PeerHandshake::new(alice, cast::public(BOB), psk.as_ref()).unwrap(),
        checker: CookieChecker::new(),
        rng: rng(u64::from(seed) << 8 | 1),
        session: None,
        wall_secs: 0,
        next_index: 0x1000,
    };
    let mut mono: u64 = 1_000 * SEC;
    let mut wire: Vec<Vec<u8>> = Vec::new();

    for _ in 0..MAX_OPS {
        if cur.is_empty() {
            break;
        }
        let op = cur.u8();
        let budget = cur.u8();
        let mut left = budget.checked_sub(0xf0).map(usize::from);
        let mut alloc = move || match left.as_mut() {
            Some(0) => None,
            Some(n) => {
                *n -= 1;
                Some(TrackedBuf::new(&[]))
            }
            None => Some(TrackedBuf::new(&[])),
        };
        let t = now(mono);

        match op % OPS {
            // An arbitrary punted packet.
            0 => {
                let reason = cur.u8();
                let side = if cur.bool() {
                    Side::Inside
                } else {
                    Side::Outside
                };
                let peer = u32::from(cur.u8() % 3);
                let fix = cur.u8();
                let mut bytes = cur.blob(MAX_FRAME).to_vec();
                let punt = Punt::ALL.get(usize::from(reason % 10)).copied();
                let is_frame = matches!(
                    punt,
                    Some(Punt::Handshake | Punt::Arp | Punt::Nd | Punt::Local | Punt::NoNeighbor)
                );
                if is_frame {
                    if fix & 4 != 0 && bytes.len() >= 6 {
                        bytes[..6].copy_from_slice(&net::mac(side));
                    }
                    fix_frame(&mut bytes, Fixups::from_bits(fix));
                } else {
                    fix_ip(&mut bytes, Fixups::from_bits(fix));
                }
                let m = match punt {
                    Some(p) => meta::punt(p, side, peer),
                    // No such reason: a punt note with that byte where the reason goes.
                    None => meta::punt(Punt::Handshake, side, peer) & !0xff | u64::from(reason),
                };
                let mut b = TrackedBuf::new(&bytes);
                b.set_meta(m);
                plane.handle(b, t, &mut alloc);
            }
            // A handshake initiation from the peer, possibly damaged.
            1 => {
                let edits = usize::from(cur.u8() % 4);
                remote.wall_secs += u64::from(cur.u8() % 3);
                remote.next_index += 1;
                let mut msg = remote
                    .hs
                    .create_initiation(
                        alice,
                        remote.next_index,
                        cast::wall(remote.wall_secs, 0),
                        Duration::from_nanos(mono),
                        &mut remote.rng,
                    )
                    .expect("an initiation to a valid key")
                    .to_vec();
                let damaged = mutate(&mut cur, &mut msg, edits);
                let b = from_remote(&msg);
                deliver_genuine(
                    &mut plane,
                    b,
                    t,
                    &mut alloc,
                    damaged,
                    "the peer's initiation",
                );
            }
            // The peer takes the plane's latest response.
            2 => {
                let latest = wire
                    .iter()
                    .rev()
                    .find_map(|f| match our_frame_to_remote(f) {
                        Some((MessageKind::Response, msg)) => Some(msg),
                        _ => None,
                    });
                if let Some(msg) = latest {
                    alice
                        .verify_mac1(&msg)
                        .expect("the plane's response has the peer's mac1");
                    if let Ok(session) =
                        remote
                            .hs
                            .consume_response(alice, &msg, Duration::from_nanos(mono))
                    {
                        remote.session = Some(session);
                    }
                }
            }
            // The peer answers the plane's latest initiation.
            3 => {
                let latest = wire
                    .iter()
                    .rev()
                    .find_map(|f| match our_frame_to_remote(f) {
                        Some((MessageKind::Initiation, msg)) => Some(msg),
                        _ => None,
                    });
                if let Some(msg) = latest {
                    let info = alice
                        .consume_initiation(&msg)
                        .expect("the plane's initiation opens with the peer's key");
                    assert_eq!(info.initiator_static(), &cast::public(BOB));
                    let accepted = remote
                        .hs
                        .accept_initiation(info, Duration::from_nanos(mono));
                    if accepted.is_ok() {
                        remote.next_index += 1;
                        let (resp, session) = remote
                            .hs
                            .create_response(
                                remote.next_index,
                                Duration::from_nanos(mono),
                                &mut remote.rng,
                            )
                            .expect("a response to an accepted initiation");
                        remote.session = Some(session);
                        let b = from_remote(&resp);
                        deliver_genuine(&mut plane, b, t, &mut alloc, false, "the peer's response");
                    }
                }
            }
            // The peer, under load, answers the plane's latest handshake message with a
            // cookie reply.
            4 => {
                let latest = wire
                    .iter()
                    .rev()
                    .find_map(|f| match our_frame_to_remote(f) {
                        Some((MessageKind::Initiation | MessageKind::Response, msg)) => Some(msg),
                        _ => None,
                    });
                if let Some(msg) = latest {
                    let source = [198, 19, 0, 1, 0xca, 0x6c];
                    let reply = remote
                        .checker
                        .create_reply(
                            alice,
                            &msg,
                            &source,
                            Duration::from_nanos(mono),
                            &mut remote.rng,
                        )
                        .expect("a reply to a handshake message");
                    let b = from_remote(&reply);
                    deliver_genuine(
                        &mut plane,
                        b,
                        t,
                        &mut alloc,
                        false,
                        "the peer's cookie reply",
                    );
                }
            }
            // Time passes; the timers run.
            5 => {
                mono += match cur.u8() % 4 {
                    0 => u64::from(cur.u16()) * MS,
                    1 => u64::from(cur.u8()) * SEC,
                    2 => u64::from(cur.u8()) * 10 * SEC,
                    _ => 0,
                };
                plane.tick(now(mono), &mut alloc);
            }
            // What a worker reports.
            6 => {
                let (id, peer) = peer_of(&shared);
                // Workers read the clock after control did: their times may be newer.
                let when = mono + u64::from(cur.u8()) * MS;
                match cur.u8() % 5 {
                    0 => {
                        if let Some(s) = &remote.session {
                            if let Some(kp) = shared.sessions.lookup(s.remote_index) {
                                kp.confirm();
                            }
                        }
                    }
                    // A worker asks for a rekey, or sees a new address, only with a
                    // keypair in hand.
                    1 => {
                        if let Some(peer) = peer {
                            peer.request_handshake();
                        }
                    }
                    2 => worker.add_rx(id, 1, 96, cur.bool(), when),
                    3 => worker.add_tx(id, 1, 96, cur.bool(), when),
                    _ => {
                        if let Some(peer) = peer {
                            // The peer's first transport message arrives from a new address.
                            peer.set_endpoint(SocketAddr::new(
                                IpAddr::V4(net::REMOTE_V4),
                                cur.u16().max(1),
                            ));
                        }
                    }
                }
            }
            // A packet that needs the peer: no session yet, too big for the tunnel, or an
            // ICMP error.
            7 => {
                let kind = cur.u8();
                let v6 = kind & 4 != 0;
                let len = usize::from(cur.u16()) % 1800;
                let ttl = cur.u8();
                let df = cur.bool();
                let proto = IpProtocol::from(cur.u8());
                let (reason, side) = match kind % 4 {
                    0 => (Punt::NoSession, Side::Inside),
                    1 => (Punt::Fragment, Side::Inside),
                    2 => (Punt::IcmpError, Side::Inside),
                    _ => (Punt::IcmpError, Side::Outside),
                };
                let (lan, far): (IpAddr, IpAddr) = if v6 {
                    ("2001:db8:18::2".parse().unwrap(), net::peer_net_v6().into())
                } else {
                    (net::LAN_V4.into(), net::PEER_NET_V4.into())
                };
                let (src, dst) = match side {
                    Side::Inside => (lan, far),
                    Side::Outside => (far, lan),
                };
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let pkt = ip_packet(src, dst, proto, ttl, df, &payload);
                if pkt.len() <= MAX_FRAME {
                    let mut b = TrackedBuf::new(&pkt);
                    b.set_meta(meta::punt(reason, side, 0));
                    plane.handle(b, t, &mut alloc);
                }
            }
            // ARP or neighbor discovery from the peer's side of the outside link or the
            // LAN host.
            8 => {
                let kind = cur.u8();
                let side = if kind & 2 != 0 {
                    Side::Inside
                } else {
                    Side::Outside
                };
                let (their_mac, their_v4, their_v6, our_v4, our_v6) = match side {
                    Side::Outside => (
                        net::REMOTE_MAC,
                        net::REMOTE_V4,
                        net::remote_v6(),
                        net::OUTSIDE_V4,
                        net::outside_v6(),
                    ),
                    Side::Inside => (
                        net::LAN_MAC,
                        net::LAN_V4,
                        "2001:db8:18::2".parse().unwrap(),
                        net::INSIDE_V4,
                        net::inside_v6(),
                    ),
                };
                let request = kind & 1 != 0;
                let frame = if kind & 4 == 0 {
                    let repr = ArpRepr {
                        operation: if request {
                            ArpOperation::Request
                        } else {
                            ArpOperation::Reply
                        },
                        sender_hardware_addr: MacAddr(their_mac),
                        sender_protocol_addr: their_v4,
                        target_hardware_addr: MacAddr(if request {
                            [0; 6]
                        } else {
                            net::mac(side)
                        }),
                        target_protocol_addr: our_v4,
                    };
                    let mut arp = [0u8; 28];
                    repr.emit(&mut ArpPacket::new_unchecked(&mut arp[..]));
                    let dst = if request { [0xff; 6] } else { net::mac(side) };
                    ethernet_frame(dst, their_mac, EtherType::Arp, &arp)
                } else {
                    // NS for our address, or NA for theirs, as RFC 4861 sends them.
                    let mut nd = [0u8; icmpv6::ND_HEADER_LEN + icmpv6::LL_ADDR_OPTION_LEN];
                    let (dst_ip, dst_mac) = if request {
                        let group = icmpv6::solicited_node_addr(&our_v6);
                        (group, icmpv6::multicast_mac(&group).0)
                    } else {
                        (our_v6, net::mac(side))
                    };
                    let mut m = Icmpv6Packet::new_unchecked(&mut nd[..]);
                    if request {
                        m.set_msg_type(Icmpv6Message::NeighborSolicit);
                        m.set_target_addr(&our_v6);
                        m.set_ll_addr_option(icmpv6::LinkLayerOption::Source, MacAddr(their_mac));
                    } else {
                        m.set_msg_type(Icmpv6Message::NeighborAdvert);
                        m.set_solicited_flag(true);
                        m.set_override_flag(true);
                        m.set_target_addr(&their_v6);
                        m.set_ll_addr_option(icmpv6::LinkLayerOption::Target, MacAddr(their_mac));
                    }
                    let ip = ip_packet(
                        their_v6.into(),
                        dst_ip.into(),
                        IpProtocol::Icmpv6,
                        255,
                        false,
                        &nd,
                    );
                    ethernet_frame(dst_mac, their_mac, EtherType::Ipv6, &ip)
                };
                let reason = if kind & 4 == 0 { Punt::Arp } else { Punt::Nd };
                let mut b = TrackedBuf::new(&frame);
                b.set_meta(meta::punt(reason, side, 0));
                plane.handle(b, t, &mut alloc);
            }
            // The control loop works off the handshake queue: everything, or a few.
            9 => {
                let budget = match cur.u8() {
                    0 => usize::MAX,
                    n => usize::from(n),
                };
                plane.poll_handshakes(t, &mut alloc, budget);
            }
            // A flood: copies of a stranger's initiation (valid mac1, unknown key) from
            // one address, left in the queue.
            10 => {
                let copies = usize::from(cur.u8());
                let src = SocketAddr::new(
                    IpAddr::V4(std::net::Ipv4Addr::new(198, 19, 0, 100 + cur.u8() % 4)),
                    51820,
                );
                let mut carol = PeerHandshake::new(cast::identity(CAROL), cast::public(BOB), None)
                    .expect("a valid key");
                let msg = carol
                    .create_initiation(
                        cast::identity(CAROL),
                        1,
                        cast::wall(0, 0),
                        Duration::from_nanos(mono),
                        &mut remote.rng,
                    )
                    .expect("an initiation to a valid key");
                for _ in 0..copies {
                    plane.handle(from_source(&msg, src), t, &mut alloc);
                }
            }
            // The peer takes the plane's latest cookie reply; one that answers the peer's
            // latest message must open.
            11 => {
                let latest = wire
                    .iter()
                    .rev()
                    .find_map(|f| match our_frame_to_remote(f) {
                        Some((MessageKind::CookieReply, msg)) => Some(msg),
                        _ => None,
                    });
                if let Some(msg) = latest {
                    let receiver = u32::from_le_bytes(msg[4..8].try_into().unwrap());
                    let opened = remote
                        .hs
                        .consume_cookie_reply(&msg, Duration::from_nanos(mono));
                    if receiver == remote.next_index {
                        opened.expect("the plane's cookie reply to the peer's latest message");
                    }
                }
            }
            // A frame from the host's TAP: arbitrary, or an IP packet for the peer.
            _ => {
                let frame = if cur.bool() {
                    let mut f = cur.blob(MAX_FRAME).to_vec();
                    fix_frame(&mut f, Fixups::from_bits(cur.u8()));
                    f
                } else {
                    let payload = cur.blob(64).to_vec();
                    let ip = ip_packet(
                        net::INSIDE_V4.into(),
                        net::PEER_NET_V4.into(),
                        IpProtocol::Udp,
                        64,
                        true,
                        &payload,
                    );
                    ethernet_frame(net::INSIDE_MAC, HOST_MAC, EtherType::Ipv4, &ip)
                };
                plane.from_host(&frame, t, &mut alloc);
                if let Some(h) = plane.host.as_mut() {
                    h.to_host.clear();
                }
            }
        }

        if tracing() {
            eprintln!(
                "op {} at {} ms: {:?} {:?} queued {} out {} remote session {}",
                op % OPS,
                mono / MS,
                plane.stats,
                plane.neighbor_stats(),
                plane.queued(),
                plane.out.len(),
                remote.session.is_some()
            );
        }
        check_out(&plane);
        assert_eq!(
            TrackedBuf::live(),
            plane.queued() + plane.out.len(),
            "after op {op}: a buffer is neither queued, sent nor freed"
        );
        for f in plane.out.drain(..) {
            wire.push(f.data().to_vec());
        }
        if wire.len() > WIRE_KEEP {
            wire.drain(..wire.len() - WIRE_KEEP);
        }
    }

    drop(plane);
    assert_eq!(TrackedBuf::live(), 0, "buffers outlived the control plane");
});

/// What the plane sends must be well-formed and addressed from the right port.
fn check_out(plane: &ControlPlane<TrackedBuf, ChaCha8Rng>) {
    for f in &plane.out {
        let m = f.meta();
        assert!(
            m == meta::send_on(Side::Outside) || m == meta::send_on(Side::Inside),
            "a frame to send carries meta {m:#x}"
        );
        let side = meta::side(m);
        let eth = EthernetFrame::new_checked(f.data()).expect("a whole Ethernet header");
        assert_eq!(
            eth.src_addr(),
            MacAddr(net::mac(side)),
            "sent from its port's MAC"
        );
        match eth.ethertype() {
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).expect("a valid IPv4 header");
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                if ip.protocol() == IpProtocol::Udp && !ip.is_fragment() {
                    let u = UdpPacket::new_checked(ip.payload()).expect("a valid UDP header");
                    assert!(
                        u.verify_checksum_v4(ip.src_addr(), ip.dst_addr()),
                        "UDP checksum"
                    );
                }
            }
            EtherType::Ipv6 => {
                let ip = Ipv6Packet::new_checked(eth.payload()).expect("a valid IPv6 header");
                match ip.next_header() {
                    IpProtocol::Udp => {
                        let u = UdpPacket::new_checked(ip.payload()).expect("a valid UDP header");
                        assert!(u.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
                    }
                    IpProtocol::Icmpv6 => {
                        let i = Icmpv6Packet::new_checked(ip.payload()).expect("valid ICMPv6");
                        assert!(i.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
                    }
                    _ => {}
                }
            }
            EtherType::Arp => {
                ArpPacket::new_checked(eth.payload()).expect("a valid ARP packet");
            }
            other => panic!("sent a frame of EtherType {other:?}"),
        }
        if let Some((MessageKind::Initiation | MessageKind::Response, msg)) =
            our_frame_to_remote(f.data())
        {
            cast::identity(ALICE)
                .verify_mac1(&msg)
                .expect("a handshake message to the peer has the peer's mac1");
        }
    }
}
