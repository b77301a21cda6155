//! One peer's engine on the control thread, and the table of peers by id.
//!
//! Contract: [`PeerState`] owns what concerns one peer alone: its configuration, its
//! handshake (`noise::PeerHandshake`), its three keypair slots, the state of its
//! handshake attempts, and the packets waiting for a session. Its methods make the
//! decisions of whitepaper 6 for that peer (which keypair is current, when a handshake
//! is retried or given up, when a keepalive is due, when its timers next need to run)
//! and return what the rest of the gateway has to do: keypairs to withdraw from the
//! shared `Sessions`, a [`Due`] action, a deadline. They do no I/O and touch nothing
//! shared but the peer's own `dataplane::session::Peer`. The control plane
//! (`plane/mod.rs`) does the rest: receiver indexes, `Sessions`, frames, counters, the
//! timer wheel.
//!
//! [`Peers`] holds the peers by id (a free id is `None`) and by public key, and hands
//! out the next free id after the last one given, so that a removed peer's id is reused
//! as late as possible.

use super::timers;
use super::{PeerSpec, RECHECK};
use crate::noise::PeerHandshake;
use dataplane::activity::Totals;
use dataplane::session::{limits, Keypair, Peer};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Packets queued per peer while its handshake runs (wireguard-go `QueueStagedSize`,
/// `device/queueconstants_default.go`: 128).
pub const STAGED_PER_PEER: usize = 128;

/// What a peer's timers ask of the control plane ([`PeerState::on_timers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    Nothing,
    /// Send a handshake initiation (a first one or a retry), for this reason.
    Initiate(&'static str),
    /// The handshake was given up after Rekey-Attempt-Time (whitepaper 6.4): this many
    /// waiting packets were dropped, and the initiation with this local index (if any)
    /// is no longer pending.
    GiveUp {
        dropped: usize,
        pending: Option<u32>,
    },
    /// Send a keepalive.
    Keepalive,
}

/// Per-peer state on the control thread.
pub(super) struct PeerState<B> {
    pub spec: PeerSpec,
    /// What the workers see of the peer.
    pub shared: Arc<Peer>,
    /// What the workers had counted for this peer id when the peer was added (ids are
    /// reused); its traffic is what came after.
    pub activity_base: Totals,
    pub hs: PeerHandshake,
    /// Wall-clock time of the latest completed handshake.
    pub last_handshake: Option<SystemTime>,
    pub handshakes: u64,
    /// `spec.persistent_keepalive` in clock units.
    persistent_keepalive: Option<u64>,
    staged: VecDeque<B>,
    previous: Option<Arc<Keypair>>,
    current: Option<Arc<Keypair>>,
    next: Option<Arc<Keypair>>,
    /// Since when we have been trying to complete a handshake.
    attempt_since: Option<u64>,
    last_initiation: u64,
    /// When control first saw data received after the last packet sent to the peer
    /// (0: not since); the passive keepalive is due `KEEPALIVE_TIMEOUT` after it.
    rx_unanswered: u64,
    retry_at: u64,
    /// The local index of our initiation in flight.
    pub pending_index: Option<u32>,
    /// Changes when what a handshake job of this peer was made from may have changed
    /// (a new peer on a reused id, a new preshared key, sessions reset for a new private
    /// key): a job's result for another generation is dropped (`plane/dh.rs`).
    generation: u64,
}

/// A generation no peer had before.
fn fresh_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn keepalive_interval(spec: &PeerSpec) -> Option<u64> {
    spec.persistent_keepalive
        .map(|s| dataplane::clock::secs(s as u64))
}

impl<B> PeerState<B> {
    pub fn new(
        spec: PeerSpec,
        shared: Arc<Peer>,
        activity_base: Totals,
        hs: PeerHandshake,
    ) -> Self {
        PeerState {
            persistent_keepalive: keepalive_interval(&spec),
            spec,
            shared,
            activity_base,
            hs,
            last_handshake: None,
            handshakes: 0,
            staged: VecDeque::new(),
            previous: None,
            current: None,
            next: None,
            attempt_since: None,
            last_initiation: 0,
            rx_unanswered: 0,
            retry_at: 0,
            pending_index: None,
            generation: fresh_generation(),
        }
    }

    /// See the field: compared with a handshake job's when its result is applied.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn has_persistent_keepalive(&self) -> bool {
        self.persistent_keepalive.is_some()
    }

    /// Takes the configuration `spec` for the peer's preshared key, endpoint and
    /// keepalive (its sessions stay); the old configuration is returned.
    pub fn reconfigure(&mut self, spec: PeerSpec) -> PeerSpec {
        if self.spec.preshared_key != spec.preshared_key {
            self.hs.set_preshared_key(spec.preshared_key.as_ref());
            self.generation = fresh_generation();
        }
        if spec.endpoint != self.spec.endpoint {
            if let Some(e) = spec.endpoint {
                self.shared.set_endpoint(e);
            }
        }
        self.persistent_keepalive = keepalive_interval(&spec);
        std::mem::replace(&mut self.spec, spec)
    }

    /// The keypairs it holds: previous, current, next.
    pub fn keypairs(&self) -> impl Iterator<Item = &Arc<Keypair>> {
        self.previous
            .iter()
            .chain(self.current.iter())
            .chain(self.next.iter())
    }

    /// Whether its current keypair may still send at `now`.
    pub fn can_send(&self, now: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|k| k.age(now) < limits::REJECT_AFTER_TIME)
    }

    /// Whether a handshake of ours is under way.
    pub fn attempting(&self) -> bool {
        self.attempt_since.is_some()
    }

    /// Packets waiting for a session.
    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    /// Queues a packet until a session exists; true if the queue was full and its
    /// oldest packet went.
    pub fn stage(&mut self, pkt: B) -> bool {
        let full = self.staged.len() >= STAGED_PER_PEER;
        if full {
            self.staged.pop_front();
        }
        self.staged.push_back(pkt);
        full
    }

    /// The waiting packets, oldest first.
    pub fn take_staged(&mut self) -> impl Iterator<Item = B> + '_ {
        self.staged.drain(..)
    }

    /// Drops every keypair and the handshake under way (a new private key, shutdown),
    /// and the waiting packets if `staged`; returns the keypairs to withdraw.
    pub fn reset(&mut self, staged: bool) -> Vec<Arc<Keypair>> {
        if staged {
            self.staged.clear();
        }
        self.attempt_since = None;
        self.pending_index = None;
        self.generation = fresh_generation();
        [self.previous.take(), self.current.take(), self.next.take()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// We sent an initiation with local index `local` at `now` (the caller took the
    /// one it replaces from `pending_index`); the next try is at `retry_at`.
    pub fn initiation_sent(&mut self, local: u32, now: u64, retry_at: u64) {
        self.pending_index = Some(local);
        self.last_initiation = now;
        self.attempt_since.get_or_insert(now);
        self.retry_at = retry_at;
        self.shared.want_handshake.store(false, Ordering::Relaxed);
    }

    /// A handshake completed at `wall` and its keypair was installed.
    pub fn completed(&mut self, wall: SystemTime) {
        self.handshakes += 1;
        self.last_handshake = Some(wall);
    }

    /// As responder: the new keypair waits as `next` until the initiator's first packet
    /// confirms it (whitepaper 5.4.6, wireguard-go `BeginSymmetricSession`). Returns the
    /// `next` it replaces.
    pub fn responder_session(&mut self, kp: Arc<Keypair>) -> Option<Arc<Keypair>> {
        self.next.replace(kp)
    }

    /// As initiator: the new keypair becomes `current` at once, the old `current`
    /// `previous`; the old `previous` and any `next` are returned, to withdraw.
    pub fn initiator_session(&mut self, kp: Arc<Keypair>) -> Vec<Arc<Keypair>> {
        self.pending_index = None;
        self.attempt_since = None;
        let retired = self
            .previous
            .take()
            .into_iter()
            .chain(self.next.take())
            .collect();
        self.previous = self.current.replace(kp);
        retired
    }

    /// Keypairs older than three times Reject-After-Time, taken out (whitepaper 6.3:
    /// keys are zeroed after 540 s; the memory is wiped when the last worker lets go).
    pub fn expire_keypairs(&mut self, now: u64) -> Vec<Arc<Keypair>> {
        let limit = 3 * limits::REJECT_AFTER_TIME;
        let mut gone = Vec::new();
        for slot in [&mut self.previous, &mut self.current, &mut self.next] {
            if slot.as_ref().is_some_and(|k| k.age(now) >= limit) {
                gone.extend(slot.take());
            }
        }
        gone
    }

    /// Whether it has no keypair to send with.
    pub fn has_current(&self) -> bool {
        self.current.is_some()
    }

    /// The responder's keypair becomes `current` once the initiator used it; the old
    /// `previous` is returned, to withdraw.
    pub fn promote_confirmed(&mut self) -> Option<Arc<Keypair>> {
        if !self.next.as_ref().is_some_and(|k| k.is_confirmed()) {
            return None;
        }
        let old = self.previous.take();
        self.previous = self.current.take();
        self.current = self.next.take();
        old
    }

    /// What its timers ask for at `t`, with `st` what the workers counted of its
    /// traffic (whitepaper 6): retry or give up a handshake, start one (rekey asked for
    /// by a worker, data without an answer, packets waiting, a persistent keepalive
    /// without a session), or send a keepalive.
    pub fn on_timers(&mut self, t: u64, st: &Totals) -> Due {
        let (last_rx, last_rx_data) = (st.rx.last, st.rx.last_data);
        let (last_tx, last_tx_data) = (st.tx.last, st.tx.last_data);
        if let Some(since) = self.attempt_since {
            if t < self.retry_at {
                return Due::Nothing;
            }
            if t.saturating_sub(since) < limits::REKEY_ATTEMPT_TIME {
                return Due::Initiate("retry");
            }
            // Whitepaper 6.4: give up after Rekey-Attempt-Time and drop what waited.
            self.attempt_since = None;
            let dropped = self.staged.len();
            self.staged.clear();
            return Due::GiveUp {
                dropped,
                pending: self.pending_index.take(),
            };
        }
        let want = self.shared.want_handshake.load(Ordering::Relaxed);
        // Sent data but heard nothing for Keepalive-Timeout + Rekey-Timeout. The
        // workers' times may be a little newer than `t`, which was read earlier:
        // differences saturate at zero.
        let dead = last_tx_data > 0
            && last_tx_data > last_rx
            && t.saturating_sub(last_tx_data) >= limits::KEEPALIVE_TIMEOUT + limits::REKEY_TIMEOUT;
        let rate_ok = self.last_initiation == 0
            || t.saturating_sub(self.last_initiation) >= limits::REKEY_TIMEOUT;
        if (want || dead || !self.staged.is_empty()) && rate_ok {
            return Due::Initiate(if want {
                "rekey asked for"
            } else if dead {
                "no answer to data"
            } else {
                "packets waiting"
            });
        }
        if !self.can_send(t) {
            let keepalive = self.persistent_keepalive.is_some() && self.shared.endpoint().is_some();
            return if keepalive && rate_ok {
                Due::Initiate("persistent keepalive")
            } else {
                Due::Nothing
            };
        }
        // Whitepaper 6.5: answer data with a keepalive if we had nothing to send for
        // Keepalive-Timeout after it came. As the Linux and Go implementations do, the
        // wait starts at the first data since we last sent, not the last: a peer that
        // sends without pause and gets nothing back hears a keepalive every 10 s, and
        // so never reaches its 15 s timer for a new handshake (docs/architecture.md,
        // section 5). Control sees the workers' figures every RECHECK (1 s), so the
        // wait starts at most that much late.
        let passive = last_rx_data > 0 && last_rx_data > last_tx && {
            self.rx_unanswered = self.unanswered_since(last_rx_data, last_tx);
            t.saturating_sub(self.rx_unanswered) >= limits::KEEPALIVE_TIMEOUT
        };
        let persistent = self
            .persistent_keepalive
            .is_some_and(|k| t.saturating_sub(last_tx.max(last_rx)) >= k);
        if passive || persistent {
            Due::Keepalive
        } else {
            Due::Nothing
        }
    }

    /// When data that got no answer first came, as far as control saw: the first
    /// `last_rx_data` it noted after `last_tx`, or this one if it noted none yet.
    fn unanswered_since(&self, last_rx_data: u64, last_tx: u64) -> u64 {
        if self.rx_unanswered > last_tx {
            self.rx_unanswered
        } else {
            last_rx_data
        }
    }

    /// When its timers next need to run, from what they left at `t` and its traffic
    /// `st`; `None` for a peer that has nothing to wait for (no session, no handshake,
    /// nothing queued, no persistent keepalive).
    pub fn next_check(&self, t: u64, st: &Totals) -> Option<u64> {
        if self.attempt_since.is_some() {
            return Some(self.retry_at);
        }
        let rate_ok_at = if self.last_initiation == 0 {
            0
        } else {
            self.last_initiation + limits::REKEY_TIMEOUT
        };
        let mut at = u64::MAX;
        if !self.staged.is_empty() {
            at = at.min(rate_ok_at.max(t + timers::TICK));
        }
        let keys = self.keypairs().next().is_some();
        if keys || self.persistent_keepalive.is_some() {
            at = at.min(t + RECHECK);
        }
        for k in self.keypairs() {
            let expires = (3 * limits::REJECT_AFTER_TIME).saturating_sub(k.age(t));
            at = at.min(t + expires);
        }
        if self.can_send(t) {
            let (rx, tx) = (&st.rx, &st.tx);
            if rx.last_data > 0 && rx.last_data > tx.last {
                let since = self.unanswered_since(rx.last_data, tx.last);
                at = at.min(since + limits::KEEPALIVE_TIMEOUT);
            }
            if tx.last_data > 0 && tx.last_data > rx.last {
                let dead = tx.last_data + limits::KEEPALIVE_TIMEOUT + limits::REKEY_TIMEOUT;
                at = at.min(dead.max(rate_ok_at));
            }
            if let Some(k) = self.persistent_keepalive {
                at = at.min(tx.last.max(rx.last) + k);
            }
        }
        (at != u64::MAX).then_some(at)
    }
}

/// The peers, by id and by public key.
pub(super) struct Peers<B> {
    /// By peer id; `None` is a free id.
    slots: Vec<Option<PeerState<B>>>,
    by_key: HashMap<[u8; 32], usize>,
    /// Where the search for a free id starts.
    next_id: usize,
}

impl<B> Default for Peers<B> {
    fn default() -> Self {
        Peers {
            slots: Vec::new(),
            by_key: HashMap::new(),
            next_id: 0,
        }
    }
}

impl<B> Peers<B> {
    /// Peers held.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The id of the peer with `key`.
    pub fn id_of(&self, key: &[u8; 32]) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    pub fn get(&self, id: usize) -> Option<&PeerState<B>> {
        self.slots.get(id)?.as_ref()
    }

    pub fn get_mut(&mut self, id: usize) -> Option<&mut PeerState<B>> {
        self.slots.get_mut(id)?.as_mut()
    }

    /// Live peer `id`: an id from `id_of`, a pending initiation or the timer wheel,
    /// which never name a removed peer.
    pub fn live(&self, id: usize) -> &PeerState<B> {
        self.get(id).expect("a live peer id")
    }

    pub fn live_mut(&mut self, id: usize) -> &mut PeerState<B> {
        self.get_mut(id).expect("a live peer id")
    }

    /// The peer with `key`.
    pub fn by_key(&self, key: &[u8; 32]) -> Option<&PeerState<B>> {
        self.get(self.id_of(key)?)
    }

    /// The next free id below `max` from where the last search ended.
    pub fn free_id(&self, max: usize) -> Option<usize> {
        (0..max)
            .map(|k| (self.next_id + k) % max)
            .find(|&i| self.get(i).is_none())
    }

    /// Puts `peer` at `id` (from `free_id`).
    pub fn insert(&mut self, id: usize, max: usize, peer: PeerState<B>) {
        if self.slots.len() <= id {
            self.slots.resize_with(id + 1, || None);
        }
        self.next_id = (id + 1) % max;
        self.by_key.insert(peer.spec.public_key, id);
        self.slots[id] = Some(peer);
    }

    /// Takes out the peer with `key`, and its id.
    pub fn remove(&mut self, key: &[u8; 32]) -> Option<(usize, PeerState<B>)> {
        let id = self.by_key.remove(key)?;
        Some((id, self.slots.get_mut(id)?.take()?))
    }

    pub fn iter(&self) -> impl Iterator<Item = &PeerState<B>> {
        self.slots.iter().flatten()
    }

    /// The peers with id `from` or more, in id order; the ids below cost nothing.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &PeerState<B>> {
        self.slots.get(from..).unwrap_or(&[]).iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PeerState<B>> {
        self.slots.iter_mut().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::Identity;
    use dataplane::activity::Count;
    use dataplane::clock::secs;
    use x25519_dalek::{PublicKey, StaticSecret};

    fn engine(keepalive: Option<u16>) -> PeerState<u32> {
        let ours = Identity::new(StaticSecret::from([1; 32]));
        let theirs = PublicKey::from(&StaticSecret::from([2; 32]));
        let spec = PeerSpec {
            public_key: *theirs.as_bytes(),
            preshared_key: None,
            endpoint: Some("198.19.0.1:51820".parse().unwrap()),
            allowed_ips: vec![],
            persistent_keepalive: keepalive,
        };
        let hs = PeerHandshake::new(&ours, theirs, None).unwrap();
        PeerState::new(
            spec.clone(),
            Arc::new(Peer::new(0, spec.endpoint)),
            Totals::default(),
            hs,
        )
    }

    fn keypair(p: &PeerState<u32>, index: u32, initiator: bool, created: u64) -> Arc<Keypair> {
        Arc::new(Keypair::new(
            p.shared.clone(),
            index,
            100 + index,
            &[3; 32],
            &[4; 32],
            initiator,
            created,
        ))
    }

    fn traffic(rx_data: u64, tx_data: u64) -> Totals {
        let count = |at| Count {
            packets: u64::from(at > 0),
            bytes: 0,
            last: at,
            last_data: at,
        };
        Totals {
            rx: count(rx_data),
            tx: count(tx_data),
        }
    }

    const IDLE: Totals = Totals {
        rx: Count {
            packets: 0,
            bytes: 0,
            last: 0,
            last_data: 0,
        },
        tx: Count {
            packets: 0,
            bytes: 0,
            last: 0,
            last_data: 0,
        },
    };

    #[test]
    fn an_idle_peer_without_keepalive_waits_for_nothing() {
        let mut p = engine(None);
        assert_eq!(p.on_timers(secs(1), &IDLE), Due::Nothing);
        assert_eq!(p.next_check(secs(1), &IDLE), None);
    }

    #[test]
    fn a_handshake_is_retried_after_rekey_timeout_and_given_up_after_rekey_attempt_time() {
        let mut p = engine(None);
        assert!(!p.stage(1));
        assert_eq!(
            p.on_timers(secs(1), &IDLE),
            Due::Initiate("packets waiting")
        );
        p.initiation_sent(7, secs(1), secs(6));
        assert_eq!(p.next_check(secs(1), &IDLE), Some(secs(6)));
        assert_eq!(
            p.on_timers(secs(5), &IDLE),
            Due::Nothing,
            "before its retry time"
        );
        assert_eq!(p.on_timers(secs(6), &IDLE), Due::Initiate("retry"));
        p.initiation_sent(8, secs(6), secs(91));
        assert_eq!(
            p.on_timers(secs(91), &IDLE),
            Due::GiveUp {
                dropped: 1,
                pending: Some(8)
            },
            "90 s after the first initiation"
        );
        assert!(!p.attempting());
        assert_eq!(p.staged(), 0);
    }

    #[test]
    fn the_staged_queue_keeps_the_newest_packets() {
        let mut p = engine(None);
        for n in 0..STAGED_PER_PEER as u32 {
            assert!(!p.stage(n));
        }
        assert!(p.stage(999), "the oldest went");
        let kept: Vec<u32> = p.take_staged().collect();
        assert_eq!(kept.len(), STAGED_PER_PEER);
        assert_eq!((kept[0], *kept.last().unwrap()), (1, 999));
    }

    #[test]
    fn data_received_without_an_answer_gets_a_keepalive_after_keepalive_timeout() {
        let mut p = engine(None);
        let kp = keypair(&p, 1, true, secs(1));
        assert!(p.initiator_session(kp).is_empty());
        let st = traffic(secs(2), 0);
        // With a session it is looked at every RECHECK, as workers count its traffic.
        assert_eq!(p.next_check(secs(2), &st), Some(secs(2) + RECHECK));
        assert_eq!(p.on_timers(secs(11), &st), Due::Nothing);
        assert_eq!(p.on_timers(secs(12), &st), Due::Keepalive);
    }

    #[test]
    fn a_peer_that_sends_without_pause_hears_a_keepalive_every_keepalive_timeout() {
        // The Linux and Go implementations start the 10 s at the first data after
        // their last send, so a peer sending one way without pause hears a keepalive
        // every 10 s and never reaches its 15 s timer for a new handshake. Waiting for
        // 10 s of silence instead (as wgdp once did) sent nothing, and every such
        // peer made a new handshake every 15 s.
        let mut p = engine(None);
        p.initiator_session(keypair(&p, 1, true, secs(1)));
        let mut last_tx = secs(1);
        let mut keepalives = Vec::new();
        // Data every 100 ms from 2 s to 60 s, control looking every second.
        for s in 2..=60u64 {
            let st = Totals {
                rx: Count {
                    packets: 1,
                    bytes: 0,
                    last: secs(s),
                    last_data: secs(s),
                },
                tx: Count {
                    packets: 1,
                    bytes: 0,
                    last: last_tx,
                    last_data: secs(1),
                },
            };
            assert!(p
                .next_check(secs(s), &st)
                .is_some_and(|at| at <= secs(s) + RECHECK));
            if p.on_timers(secs(s), &st) == Due::Keepalive {
                keepalives.push(s);
                last_tx = secs(s);
            }
        }
        // 10 s after the first data control saw since its last send: that data came
        // up to a second before control looked (here at the keepalive's own second),
        // so the gap is 10 s plus at most RECHECK, well inside the peer's 15 s.
        assert_eq!(keepalives, [12, 23, 34, 45, 56]);
    }

    #[test]
    fn data_sent_without_an_answer_starts_a_handshake() {
        let mut p = engine(None);
        p.initiator_session(keypair(&p, 1, true, secs(1)));
        let st = traffic(0, secs(2));
        let dead = secs(2) + limits::KEEPALIVE_TIMEOUT + limits::REKEY_TIMEOUT;
        assert_eq!(p.on_timers(dead - 1, &st), Due::Nothing);
        assert_eq!(p.on_timers(dead, &st), Due::Initiate("no answer to data"));
    }

    #[test]
    fn a_persistent_keepalive_makes_a_session_and_keeps_it_alive() {
        let mut p = engine(Some(25));
        assert_eq!(
            p.on_timers(secs(1), &IDLE),
            Due::Initiate("persistent keepalive")
        );
        p.initiator_session(keypair(&p, 1, true, secs(1)));
        let st = traffic(secs(2), secs(2));
        assert_eq!(p.on_timers(secs(26), &st), Due::Nothing);
        assert_eq!(p.on_timers(secs(27), &st), Due::Keepalive);
    }

    #[test]
    fn a_responder_keypair_becomes_current_once_confirmed_and_keys_expire() {
        let mut p = engine(None);
        let first = keypair(&p, 1, false, secs(1));
        assert!(p.responder_session(first.clone()).is_none());
        assert!(!p.has_current());
        assert!(p.promote_confirmed().is_none(), "not confirmed yet");
        first.confirm();
        assert!(p.promote_confirmed().is_none());
        assert!(p.has_current());
        // A newer session as initiator: the first becomes previous.
        p.initiator_session(keypair(&p, 2, true, secs(100)));
        assert_eq!(p.keypairs().count(), 2);
        let gone = p.expire_keypairs(secs(1) + 3 * limits::REJECT_AFTER_TIME);
        assert_eq!(gone.iter().map(|k| k.local_index).collect::<Vec<_>>(), [1]);
        assert!(p.has_current());
        let gone = p.expire_keypairs(secs(100) + 3 * limits::REJECT_AFTER_TIME);
        assert_eq!(gone.len(), 1);
        assert!(!p.has_current());
        assert_eq!(p.next_check(secs(700), &IDLE), None);
    }

    /// Counts up: the same "random" bytes for the same seed.
    struct Counting(u8);

    impl rand_core::RngCore for Counting {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for Counting {}

    #[test]
    fn handshakes_made_on_threads_are_those_made_on_one() {
        use crate::noise::Tai64N;
        use crate::plane::Handshakes;
        let private = [5; 32];
        let mut specs: Vec<PeerSpec> = (0..9u8)
            .map(|i| PeerSpec {
                public_key: *PublicKey::from(&StaticSecret::from([i + 20; 32])).as_bytes(),
                preshared_key: (i % 2 == 0).then_some([i; 32]),
                endpoint: None,
                allowed_ips: vec![],
                persistent_keepalive: None,
            })
            .collect();
        // A key of small order: no handshake is possible with it.
        specs[4].public_key = [0; 32];
        let one = Handshakes::make(&private, &specs, 1);
        let four = Handshakes::make(&private, &specs, 4);
        let identity = Identity::new(StaticSecret::from(private));
        assert_eq!(one.0.len(), four.0.len());
        for (i, (a, b)) in one.0.into_iter().zip(four.0).enumerate() {
            let (mut a, mut b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(a), Err(b)) => {
                    assert_eq!((i, a.name()), (4, b.name()));
                    continue;
                }
                _ => panic!("peer {i}: one made, the other refused"),
            };
            assert_eq!(a.remote_static(), b.remote_static());
            // The same initiation from the same ephemeral key: the same static-static
            // secret and preshared key underneath.
            let wall = Tai64N::from_system_time(std::time::UNIX_EPOCH);
            let now = std::time::Duration::from_secs(1);
            let ma = a
                .create_initiation(&identity, 1, wall, now, &mut Counting(0))
                .unwrap();
            let mb = b
                .create_initiation(&identity, 1, wall, now, &mut Counting(0))
                .unwrap();
            assert_eq!(ma, mb, "peer {i}");
        }
    }

    /// Cryptokey routing as published, changed network by network, is what a table
    /// built anew from the peers would be, through adds, removals, updates, networks
    /// taken from one peer by another, batches and new port tables.
    #[test]
    fn the_published_routes_are_those_of_the_peers() {
        use crate::plane::ControlPlane;
        use dataplane::buf::HeapBuf;
        use dataplane::session::Sessions;
        use dataplane::tables::{PortTables, Shared, Tables};
        use std::collections::BTreeSet;
        use std::net::{IpAddr, Ipv4Addr};

        let tables = || Tables {
            ports: [
                PortTables::new([2, 0, 0, 0, 0, 1], vec![]),
                PortTables::new([2, 0, 0, 0, 0, 2], vec![]),
            ],
            allowed: Default::default(),
            listen_port: 51820,
            mtu: 1420,
            outer_dscp: Default::default(),
        };
        let shared = Arc::new(Shared::new(tables(), Sessions::new(10, 64)));
        let mut plane: ControlPlane<HeapBuf, Counting> =
            ControlPlane::new(&[5; 32], &[], shared, Counting(0)).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let key = |k: u64| *PublicKey::from(&StaticSecret::from([k as u8 + 1; 32])).as_bytes();
        // Networks from a small pool, so that peers take them from each other.
        let net = |n: u64| (IpAddr::V4(Ipv4Addr::new(198, 18, n as u8, 0)), 24u8);
        let spec = |k: u64, nets: &[u64]| PeerSpec {
            public_key: key(k),
            preshared_key: None,
            endpoint: None,
            allowed_ips: nets.iter().map(|&n| net(n)).collect(),
            persistent_keepalive: None,
        };
        for step in 0..400 {
            let k = next(40);
            let nets: Vec<u64> = (0..next(4)).map(|_| next(60)).collect();
            match next(10) {
                0..=3 => {
                    let _ = plane.add_peer(spec(k, &nets));
                }
                4 | 5 => {
                    plane.remove_peer(&key(k));
                }
                6 | 7 => {
                    plane.update_peer(spec(k, &nets));
                }
                8 => {
                    plane.batch(|p| {
                        for j in 0..5 {
                            let k = (k + j) % 40;
                            if p.update_peer(spec(k, &nets)) {
                                continue;
                            }
                            let _ = p.add_peer(spec(k, &nets));
                        }
                        p.remove_peer(&key((k + 7) % 40));
                    });
                }
                _ => plane.set_port_tables(tables()),
            }
            let ids: HashMap<u32, [u8; 32]> = plane
                .peer_views()
                .map(|v| (v.peer.id, v.spec.public_key))
                .collect();
            let published: BTreeSet<((IpAddr, u8), [u8; 32])> = plane
                .current_tables()
                .allowed
                .entries()
                .into_iter()
                .map(|(a, l, p)| ((a, l), ids[&p]))
                .collect();
            let owned: BTreeSet<((IpAddr, u8), [u8; 32])> = (0..60)
                .filter_map(|n| Some((net(n), *plane.owner_of(net(n))?)))
                .collect();
            assert_eq!(published, owned, "step {step}");
        }
    }

    #[test]
    fn ids_are_reused_as_late_as_possible() {
        let mut peers: Peers<u32> = Peers::default();
        for id in 0..3 {
            let mut p = engine(None);
            p.spec.public_key = [id as u8 + 10; 32];
            assert_eq!(peers.free_id(4), Some(id));
            peers.insert(id, 4, p);
        }
        let (id, _) = peers.remove(&[10; 32]).unwrap();
        assert_eq!(id, 0);
        assert_eq!(peers.free_id(4), Some(3), "the never used id first");
        assert_eq!(peers.len(), 2);
        assert!(peers.by_key(&[11; 32]).is_some());
    }
}
