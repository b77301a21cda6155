//! Decrypt: transport messages in, authenticated inner IP packets out.
//!
//! Shape (VPP `wg_input`): a first pass looks each message's receiver index up (caching
//! the last keypair), refuses what can be refused without crypto (expired keypair,
//! counter outside the replay window) and lines the rest up as one batch; one backend
//! call opens them all; a post pass records the counter in the replay window (only now,
//! after authentication), updates the peer (activity, roaming, confirmation of a new
//! keypair), trims the padding off by the inner packet's own length and carries a
//! congestion mark of the outer header over to the inner one (RFC 6040; module `ecn`).
//!
//! Output packets start at the inner IP header and carry their peer's id in `meta`, for
//! route's source check.

use crate::buf::PacketBuf;
use crate::counters::{DecryptDrop, WorkerCounters};
use crate::crypto::{Backend, CryptoJob};
use crate::ecn;
use crate::session::{limits, Keypair, Sessions};
use crate::stages::classify::Origin;
use crate::wire::wireguard::{Transport, TRANSPORT_HEADER_LEN};
use crate::wire::{Ipv4Packet, Ipv6Packet};
use std::sync::Arc;

/// Buffers decrypt reuses from vector to vector.
pub struct Scratch<B> {
    keys: Vec<Arc<Keypair>>,
    jobs: Vec<CryptoJob>,
    held: Vec<B>,
    sources: Vec<Origin>,
    wire_len: Vec<u16>,
}

impl<B> Default for Scratch<B> {
    fn default() -> Self {
        Scratch {
            keys: Vec::new(),
            jobs: Vec::new(),
            held: Vec::new(),
            sources: Vec::new(),
            wire_len: Vec::new(),
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

#[allow(clippy::too_many_arguments)]
pub fn run<B: PacketBuf>(
    pkts: &mut Vec<B>,
    sources: &[Origin],
    sessions: &Sessions,
    backend: &mut Backend,
    now: u64,
    c: &WorkerCounters,
    s: &mut Scratch<B>,
    out: &mut Vec<B>,
) {
    debug_assert_eq!(pkts.len(), sources.len());
    s.keys.clear();
    s.jobs.clear();

    for (mut pkt, src) in pkts.drain(..).zip(sources.iter().copied()) {
        let (index, counter) = match Transport::new_checked(pkt.data()) {
            Ok(t) => (t.receiver(), t.counter()),
            Err(_) => {
                c.decrypt.inc(DecryptDrop::Truncated);
                continue;
            }
        };
        let key = match s.keys.last() {
            Some(k) if k.local_index == index => s.keys.len() - 1,
            _ => match sessions.lookup(index) {
                Some(kp) => {
                    s.keys.push(kp);
                    s.keys.len() - 1
                }
                None => {
                    c.decrypt.inc(DecryptDrop::UnknownIndex);
                    continue;
                }
            },
        };
        let kp = &s.keys[key];
        if !kp.can_receive(now) {
            c.decrypt.inc(DecryptDrop::Expired);
            continue;
        }
        if kp.replay_check(counter).is_err() {
            c.decrypt.inc(DecryptDrop::Replay);
            continue;
        }
        s.wire_len.push(pkt.len() as u16);
        pkt.adj(TRANSPORT_HEADER_LEN);
        s.jobs.push(CryptoJob {
            pkt: s.held.len() as u16,
            key: key as u16,
            counter,
            ok: false,
        });
        s.held.push(pkt);
        s.sources.push(src);
    }

    c.runtime
        .timed(crate::counters::Stage::DecryptCrypto, s.jobs.len(), || {
            backend.open_batch(&mut s.held, &s.keys, &mut s.jobs);
        });

    for (((mut pkt, job), src), wire_len) in s
        .held
        .drain(..)
        .zip(s.jobs.iter())
        .zip(s.sources.drain(..))
        .zip(s.wire_len.drain(..))
    {
        if !job.ok {
            c.decrypt.inc(DecryptDrop::BadTag);
            continue;
        }
        let kp = &s.keys[job.key as usize];
        // Two packets with one counter may both pass the check before the batch; only
        // the first to be recorded is accepted.
        if kp.replay_update(job.counter).is_err() {
            c.decrypt.inc(DecryptDrop::Replay);
            continue;
        }
        let peer = &kp.peer;
        let data = !pkt.is_empty();
        peer.stats.add_rx(1, wire_len as u64, data, now);
        if !kp.is_confirmed() && kp.confirm() {
            sessions.promote(kp);
        }
        // Whitepaper 6.5: the endpoint follows the latest authenticated packet.
        peer.set_endpoint(src.src);
        if kp.initiator && kp.age(now) >= limits::REKEY_ON_RECEIVE_AGE {
            peer.request_handshake();
        }
        if !data {
            c.traffic.keepalives_rx.inc();
            continue;
        }
        match inner_len(pkt.data()) {
            Some(len) if len <= pkt.len() => {
                let padding = pkt.len() - len;
                pkt.trim(padding);
                if src.ecn != ecn::NOT_ECT {
                    let inner = ecn::get(pkt.data()).unwrap_or(ecn::NOT_ECT);
                    match ecn::decapsulate(src.ecn, inner) {
                        Some(e) if e == inner => {}
                        Some(e) => ecn::set(pkt.data_mut(), e),
                        None => {
                            c.decrypt.inc(DecryptDrop::CeOnNotEct);
                            continue;
                        }
                    }
                }
                pkt.set_meta(peer.id as u64);
                c.traffic.decrypted.inc();
                out.push(pkt);
            }
            _ => c.decrypt.inc(DecryptDrop::BadInner),
        }
    }
}
