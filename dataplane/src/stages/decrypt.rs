//! Decrypt: transport messages in, authenticated inner IP packets out.
//!
//! Shape (VPP `wg_input`), in passes over the vector so that what is shared with other
//! threads is touched once per keypair per vector, not once per packet:
//! 1. each message's receiver index is looked up (through a per-vector cache, so each
//!    distinct index costs one table lookup, unknown ones included) and what can be
//!    refused without crypto is (truncated, unknown index, expired keypair);
//! 2. the replay check against each keypair's window, which only reads (the packets
//!    grouped by keypair, each group in vector order);
//! 3. one backend call opens the rest;
//! 4. the authenticated counters are recorded, one lock-free batch per keypair;
//! 5. in vector order, the padding is trimmed off by the inner packet's own length and a
//!    congestion mark of the outer header is carried over to the inner one (RFC 6040;
//!    module `ecn`);
//! 6. each keypair's peer is updated once: activity counters, confirmation of a new
//!    keypair, the endpoint (roaming), a handshake when an initiator's keypair is old.
//!
//! Output packets start at the inner IP header and carry their peer's id in `meta`, for
//! route's source check.

use crate::buf::PacketBuf;
use crate::counters::{DecryptDrop, Stage};
use crate::crypto::CryptoJob;
use crate::ecn;
use crate::meta;
use crate::session::{limits, Keypair};
use crate::spread::Back;
use crate::stages::classify::Origin;
use crate::stages::{start_flight, Groups, Poll, VectorCache, PREFETCH_AHEAD};
use crate::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use crate::wire::{Ipv4Packet, Ipv6Packet};
use dpdk_sys::AeadDirection;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a packet the stage holds stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Passed the replay check; goes to the AEAD.
    Pending,
    /// Counter already seen, before or after the AEAD.
    Replay,
    /// Did not authenticate.
    BadTag,
    /// Authenticated and recorded in the replay window.
    Opened,
}

/// What the stage knows of one packet it holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    src: Origin,
    /// Length of the transport message, for the peer's byte count.
    wire_len: u16,
    /// Position of its keypair in `Scratch::keys`.
    key: u16,
    counter: u64,
    state: State,
}

/// What a keypair's packets of this vector add up to.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    packets: u64,
    bytes: u64,
    data: bool,
    /// Position of its last authenticated packet, and where that packet came from.
    last: Option<(u16, SocketAddr)>,
}

/// The cache's answer for a receiver index that no keypair has, so that a vector full of
/// them costs one table lookup per distinct index.
const UNKNOWN: u16 = u16::MAX;

/// A packet handed to an asynchronous backend or another worker, waiting for its turn
/// to leave.
struct Flying<B> {
    /// `None` while another worker has it.
    pkt: Option<B>,
    kp: Arc<Keypair>,
    held: Held,
}

/// Buffers decrypt reuses from vector to vector.
pub struct Scratch<B> {
    /// With an asynchronous backend, or while vectors are shared with other workers:
    /// every packet of those vectors, in arrival order, until its AEAD is done and those
    /// before it have left; the first is number `flight_base`.
    flight: VecDeque<Flying<B>>,
    flight_base: u64,
    pending: Vec<bool>,
    /// The keypairs seen this vector, found by receiver index through `cache`.
    keys: Vec<Arc<Keypair>>,
    tally: Vec<Tally>,
    cache: VectorCache,
    groups: Groups,
    jobs: Vec<CryptoJob>,
    held: Vec<B>,
    info: Vec<Held>,
    endpoints: Vec<(u16, u16)>,
    /// The packets of one keypair its replay window refused after they authenticated.
    refused: Vec<u16>,
}

impl<B> Default for Scratch<B> {
    fn default() -> Self {
        Scratch {
            flight: VecDeque::new(),
            flight_base: 0,
            pending: Vec::new(),
            keys: Vec::new(),
            tally: Vec::new(),
            cache: VectorCache::default(),
            groups: Groups::default(),
            jobs: Vec::new(),
            held: Vec::new(),
            info: Vec::new(),
            refused: Vec::new(),
            endpoints: Vec::new(),
        }
    }
}

/// The inner packet's length by its own header, or `None` if it is no IP packet that
/// fits in `data`.
fn inner_len(data: &[u8]) -> Option<usize> {
    match data.first()? >> 4 {
        4 => Ipv4Packet::new_checked(data)
            .ok()
            .map(|p| p.total_len() as usize),
        6 => Ipv6Packet::new_checked(data).ok().map(|p| p.total_len()),
        _ => None,
    }
}

/// Decrypt `pkts` (transport messages from `sources`) into `out`.
#[inline(never)]
pub fn run<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    pkts: &mut Vec<B>,
    sources: &[Origin],
    s: &mut Scratch<B>,
    out: &mut Vec<B>,
) {
    debug_assert_eq!(pkts.len(), sources.len());
    let c = p.counters;
    let now = p.now;
    s.keys.clear();
    s.tally.clear();
    s.jobs.clear();
    s.info.clear();
    s.cache.next_vector();

    // Find each message's keypair, and refuse what needs no crypto to refuse.
    let mut rest = pkts.drain(..);
    for src in sources.iter().copied() {
        let Some(mut pkt) = rest.next() else { break };
        // The AEAD reads the ciphertext after the first line (classify brought that one).
        if let Some(ahead) = rest.as_slice().get(PREFETCH_AHEAD - 1) {
            ahead.prefetch(64, false);
            ahead.prefetch(128, false);
        }
        let (index, counter) = match Transport::new_checked(pkt.data()) {
            Ok(t) => (t.receiver(), t.counter()),
            Err(_) => {
                c.decrypt.inc(DecryptDrop::Truncated);
                p.discard(pkt);
                continue;
            }
        };
        let key = match s.cache.get(index) {
            Some(k) => k,
            None => {
                let k = match p.sessions.lookup(index) {
                    Some(kp) => {
                        s.keys.push(kp);
                        s.tally.push(Tally::default());
                        (s.keys.len() - 1) as u16
                    }
                    None => UNKNOWN,
                };
                s.cache.insert(index, k);
                k
            }
        };
        if key == UNKNOWN {
            c.decrypt.inc(DecryptDrop::UnknownIndex);
            p.discard(pkt);
            continue;
        }
        if !s.keys[key as usize].can_receive(now) {
            c.decrypt.inc(DecryptDrop::Expired);
            p.discard(pkt);
            continue;
        }
        s.info.push(Held {
            src,
            wire_len: pkt.len() as u16,
            key,
            counter,
            state: State::Pending,
        });
        pkt.adj(TRANSPORT_HEADER_LEN);
        s.held.push(pkt);
    }

    // The replay check, without a lock and without writing; only what passes is opened.
    s.groups.build(s.info.iter().map(|h| h.key), s.keys.len());
    for (k, kp) in s.keys.iter().enumerate() {
        let group = s.groups.of(k);
        if group.is_empty() {
            continue;
        }
        let window = kp.replay().view();
        for &i in group {
            let h = &mut s.info[i as usize];
            if window.check(h.counter).is_err() {
                h.state = State::Replay;
            }
        }
    }
    for (i, h) in s.info.iter().enumerate() {
        if h.state == State::Pending {
            s.jobs.push(CryptoJob {
                pkt: i as u16,
                key: h.key,
                counter: h.counter,
                ok: false,
            });
        }
    }

    // A vector that is shared with other workers, or that follows packets still in
    // flight, goes through the flight, which keeps arrival order.
    let sharing = !p.backend.is_async()
        && p.crew
            .as_deref_mut()
            .is_some_and(|crew| crew.plan(AeadDirection::Open, s.jobs.len()));
    if p.backend.is_async() || sharing || !s.flight.is_empty() {
        through_flight(p, s, sharing);
    } else {
        let backend = &mut *p.backend;
        c.runtime.timed(Stage::DecryptCrypto, s.jobs.len(), || {
            backend.open_batch(&mut s.held, &s.keys, &mut s.jobs);
        });
        for job in &s.jobs {
            s.info[job.pkt as usize].state = if job.ok { State::Opened } else { State::BadTag };
        }
    }

    // Record the authenticated counters, one batch per keypair (a few compare-exchanges
    // for a vector, and other workers may record into the same window meanwhile). Two
    // packets with one counter may both have passed the check; only the first is
    // accepted.
    for (k, kp) in s.keys.iter().enumerate() {
        let group = s.groups.of(k);
        if group.is_empty() {
            continue;
        }
        let (info, refused) = (&s.info, &mut s.refused);
        let opened = group
            .iter()
            .filter(|&&i| info[i as usize].state == State::Opened)
            .map(|&i| (i, info[i as usize].counter));
        kp.replay().record(opened, |i, _| refused.push(i));
        for i in s.refused.drain(..) {
            s.info[i as usize].state = State::Replay;
        }
    }

    for (i, (mut pkt, h)) in s.held.drain(..).zip(s.info.iter()).enumerate() {
        match h.state {
            State::Opened => {}
            State::Replay => {
                c.decrypt.inc(DecryptDrop::Replay);
                p.discard(pkt);
                continue;
            }
            State::BadTag | State::Pending => {
                c.decrypt.inc(DecryptDrop::BadTag);
                p.discard(pkt);
                continue;
            }
        }
        let tally = &mut s.tally[h.key as usize];
        tally.packets += 1;
        tally.bytes += u64::from(h.wire_len);
        tally.last = Some((i as u16, h.src.src));
        if pkt.is_empty() {
            c.traffic.keepalives_rx.inc();
            p.discard(pkt);
            continue;
        }
        tally.data = true;
        let Some(len) = inner_len(pkt.data()).filter(|&len| len <= pkt.len()) else {
            c.decrypt.inc(DecryptDrop::BadInner);
            p.discard(pkt);
            continue;
        };
        pkt.trim(pkt.len() - len);
        if h.src.ecn != ecn::NOT_ECT {
            let inner = ecn::get(pkt.data()).unwrap_or(ecn::NOT_ECT);
            match ecn::decapsulate(h.src.ecn, inner) {
                Some(e) if e == inner => {}
                Some(e) => ecn::set(pkt.data_mut(), e),
                None => {
                    c.decrypt.inc(DecryptDrop::CeOnNotEct);
                    p.discard(pkt);
                    continue;
                }
            }
        }
        pkt.set_meta(meta::for_peer(s.keys[h.key as usize].peer.id));
        c.traffic.decrypted.inc();
        out.push(pkt);
    }

    // What each keypair's peer learns from this vector, once per keypair.
    finish_peers(p, s);
}

/// With an asynchronous backend, a vector shared with other workers (module `spread`), or
/// packets still in flight: the vector joins the flight, each packet's AEAD done at
/// once, submitted to the device or handed to another worker; those finished, and every
/// packet before them, leave it in arrival order into `held`/`info`, with the keypair
/// list rebuilt for them.
fn through_flight<B: PacketBuf>(p: &mut Poll<'_, B>, s: &mut Scratch<B>, sharing: bool) {
    let first = s.flight_base + s.flight.len() as u64;
    start_flight(
        p,
        AeadDirection::Open,
        &mut s.held,
        &s.keys,
        &mut s.jobs,
        first,
        sharing,
        &mut s.pending,
    );
    for (job, &pending) in s.jobs.iter().zip(s.pending.iter()) {
        if !pending {
            s.info[job.pkt as usize].state = if job.ok { State::Opened } else { State::BadTag };
        }
    }
    // Packets handed to another worker join without their buffer, until it is back.
    let mut held = s.held.drain(..);
    for h in s.info.drain(..) {
        let kp = s.keys[h.key as usize].clone();
        s.flight.push_back(Flying {
            pkt: held.next(),
            kp,
            held: h,
        });
    }
    drop(held);
    let (flight, base) = (&mut s.flight, s.flight_base);
    p.backend.collect(AeadDirection::Open, |user, ok| {
        if let Some(f) = flight.get_mut((user - base) as usize) {
            f.held.state = if ok { State::Opened } else { State::BadTag };
        }
    });
    if let Some(crew) = p.crew.as_deref_mut() {
        crew.collect(AeadDirection::Open, |task| {
            task.give_back(base, |at, back| {
                if let Some(f) = flight.get_mut(at) {
                    match back {
                        Back::Buffer(pkt) => f.pkt = Some(pkt),
                        Back::Done(ok) => {
                            f.held.state = if ok { State::Opened } else { State::BadTag }
                        }
                    }
                }
            })
        });
    }
    s.keys.clear();
    s.tally.clear();
    s.cache.next_vector();
    while s
        .flight
        .front()
        .is_some_and(|f| f.pkt.is_some() && f.held.state != State::Pending)
    {
        let Flying { pkt, kp, mut held } = s.flight.pop_front().expect("front");
        s.flight_base += 1;
        held.key = match s.cache.get(kp.local_index) {
            Some(k) => k,
            None => {
                let k = s.keys.len() as u16;
                s.cache.insert(kp.local_index, k);
                s.keys.push(kp);
                s.tally.push(Tally::default());
                k
            }
        };
        s.held.push(pkt.expect("checked above"));
        s.info.push(held);
    }
    s.groups.build(s.info.iter().map(|h| h.key), s.keys.len());
}

/// Packets of this stage handed to an asynchronous backend and not yet out.
pub fn in_flight<B>(s: &Scratch<B>) -> usize {
    s.flight.len()
}

/// What each keypair's peer learns from the packets that left, once per keypair.
fn finish_peers<B: PacketBuf>(p: &mut Poll<'_, B>, s: &mut Scratch<B>) {
    let now = p.now;
    s.endpoints.clear();
    for (k, (kp, tally)) in s.keys.iter().zip(s.tally.iter()).enumerate() {
        if tally.packets == 0 {
            continue;
        }
        let peer = &kp.peer;
        p.activity
            .add_rx(peer.id, tally.packets, tally.bytes, tally.data, now);
        if !kp.is_confirmed() && kp.confirm() {
            p.sessions.promote(kp);
        }
        if kp.initiator && kp.age(now) >= limits::REKEY_ON_RECEIVE_AGE {
            peer.request_handshake();
        }
        if let Some((pos, _)) = tally.last {
            s.endpoints.push((pos, k as u16));
        }
    }
    // Whitepaper 6.5: the endpoint follows the latest authenticated packet, so the
    // keypairs are applied in the order of their last packets.
    s.endpoints.sort_unstable();
    for &(_, k) in &s.endpoints {
        if let Some((_, src)) = s.tally[k as usize].last {
            s.keys[k as usize].peer.set_endpoint(src);
        }
    }
}
