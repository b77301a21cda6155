//! Peers and keypairs as the workers see them, and how control publishes them.
//!
//! Contract:
//! - Control creates a [`Keypair`] (immutable keys, receiver index, creation time) once a
//!   handshake completes and publishes it with [`Sessions::install`]; from then on any
//!   worker finds it by receiver index without a lock. When control retires a keypair it
//!   removes it; the memory (and the keys, zeroed) goes away when the last worker drops
//!   its reference, so no worker ever sees freed keys.
//! - The keypair a peer sends with is a separate slot ([`Sessions::sending`]). Control
//!   fills it for keypairs it initiated; for keypairs where we answered, the first worker
//!   that authenticates a packet under the new keypair promotes it (whitepaper 5.4.6: the
//!   responder may send only after receiving).
//! - Workers count each peer's traffic in their own tables (`activity`) and raise
//!   [`Peer::want_handshake`] when a keypair is getting old; control reads both on its
//!   timer tick. A worker never waits for control.

use crate::clock;
use crate::crypto::TransportKey;
use crate::replay::ReplayWindow;
use arc_swap::ArcSwapOption;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Protocol constants, whitepaper section 6.1 ("Timers & Stateless UX").
pub mod limits {
    use crate::clock::secs;
    pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
    pub use crate::replay::REJECT_AFTER_MESSAGES;
    pub const REKEY_AFTER_TIME: u64 = secs(120);
    pub const REJECT_AFTER_TIME: u64 = secs(180);
    pub const REKEY_ATTEMPT_TIME: u64 = secs(90);
    pub const REKEY_TIMEOUT: u64 = secs(5);
    pub const KEEPALIVE_TIMEOUT: u64 = secs(10);
    /// An initiator that receives under a keypair this old starts a new handshake
    /// (Reject-After-Time - Keepalive-Timeout - Rekey-Timeout = 165 s).
    pub const REKEY_ON_RECEIVE_AGE: u64 = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
}

/// A value on cache lines of its own, so that the threads writing it do not slow down
/// those reading its neighbours (false sharing).
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct CacheLine<T>(pub T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A remote peer as the data path knows it.
#[derive(Debug)]
pub struct Peer {
    /// Slot of this peer in [`Sessions`]; stable for the peer's life.
    pub id: u32,
    endpoint: ArcSwapOption<SocketAddr>,
    /// Raised by a worker that wants control to start a handshake (keypair old, or
    /// none usable); control clears it when it acts.
    pub want_handshake: AtomicBool,
}

impl Peer {
    pub fn new(id: u32, endpoint: Option<SocketAddr>) -> Self {
        Peer {
            id,
            endpoint: ArcSwapOption::from(endpoint.map(Arc::new)),
            want_handshake: AtomicBool::new(false),
        }
    }

    #[inline]
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.load().as_deref().copied()
    }

    /// Move the peer to `addr` if it is not there already (roaming).
    #[inline]
    pub fn set_endpoint(&self, addr: SocketAddr) -> bool {
        if self.endpoint() == Some(addr) {
            return false;
        }
        self.endpoint.store(Some(Arc::new(addr)));
        true
    }

    #[inline]
    pub fn request_handshake(&self) {
        if !self.want_handshake.load(Ordering::Relaxed) {
            self.want_handshake.store(true, Ordering::Relaxed);
        }
    }
}

/// Session keys agreed by one handshake, as the workers use them.
pub struct Keypair {
    /// Our index: the receiver index peers put in transport messages to us.
    pub local_index: u32,
    /// The peer's index, written into every transport message we send.
    pub remote_index: u32,
    pub peer: Arc<Peer>,
    /// True if we sent the initiation.
    pub initiator: bool,
    /// `clock::now_ns` when the handshake completed.
    pub created: u64,
    send: TransportKey,
    recv: TransportKey,
    /// Written by every worker that sends under this keypair.
    send_counter: CacheLine<AtomicU64>,
    /// Written by the workers that receive under it.
    replay: CacheLine<ReplayWindow>,
    /// For a keypair we answered: set by the first authenticated packet under it.
    confirmed: AtomicBool,
    /// Age at which an initiator starts replacing this keypair when it sends:
    /// [`limits::REKEY_AFTER_TIME`] unless configured shorter for testing.
    rekey_after: u64,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("peer", &self.peer.id)
            .field("initiator", &self.initiator)
            .field("created", &self.created)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// Why a keypair refused to seal or open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Expired,
    Exhausted,
}

impl Keypair {
    pub fn new(
        peer: Arc<Peer>,
        local_index: u32,
        remote_index: u32,
        send_key: &[u8; 32],
        recv_key: &[u8; 32],
        initiator: bool,
        created: u64,
    ) -> Self {
        Keypair {
            local_index,
            remote_index,
            peer,
            initiator,
            created,
            send: TransportKey::new(send_key),
            recv: TransportKey::new(recv_key),
            send_counter: CacheLine(AtomicU64::new(0)),
            replay: CacheLine(ReplayWindow::new()),
            confirmed: AtomicBool::new(initiator),
            rekey_after: limits::REKEY_AFTER_TIME,
        }
    }

    /// The same keypair, replaced by its initiator after `rekey_after` nanoseconds
    /// instead of Rekey-After-Time.
    pub fn with_rekey_after(mut self, rekey_after: u64) -> Self {
        self.rekey_after = rekey_after;
        self
    }

    #[inline]
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.created)
    }

    #[inline]
    pub fn send_key(&self) -> &TransportKey {
        &self.send
    }

    #[inline]
    pub fn recv_key(&self) -> &TransportKey {
        &self.recv
    }

    /// May this keypair still receive at `now`?
    #[inline]
    pub fn can_receive(&self, now: u64) -> bool {
        self.age(now) < limits::REJECT_AFTER_TIME
    }

    /// Reserve `n` consecutive nonces for sending; the first is returned. Refused when
    /// the keypair is too old or the counter would pass Reject-After-Messages.
    #[inline]
    pub fn reserve_nonces(&self, n: u64, now: u64) -> Result<u64, KeyUse> {
        if self.age(now) >= limits::REJECT_AFTER_TIME {
            return Err(KeyUse::Expired);
        }
        let first = self.send_counter.fetch_add(n, Ordering::Relaxed);
        if first.saturating_add(n) > limits::REJECT_AFTER_MESSAGES {
            return Err(KeyUse::Exhausted);
        }
        if self.initiator
            && (first + n >= limits::REKEY_AFTER_MESSAGES || self.age(now) >= self.rekey_after)
        {
            // Whitepaper 6.2: the initiator starts a new handshake when its keypair is
            // old or worn, on sending.
            self.peer.request_handshake();
        }
        Ok(first)
    }

    /// Messages sent under this keypair so far.
    pub fn sent(&self) -> u64 {
        self.send_counter.load(Ordering::Relaxed)
    }

    /// The replay window, which every worker that receives under this keypair checks and
    /// records into without a lock.
    #[inline]
    pub fn replay(&self) -> &ReplayWindow {
        &self.replay
    }

    #[inline]
    pub fn is_confirmed(&self) -> bool {
        self.confirmed.load(Ordering::Relaxed)
    }

    /// Mark confirmed; true for the caller that did it first.
    #[inline]
    pub fn confirm(&self) -> bool {
        !self.confirmed.swap(true, Ordering::AcqRel)
    }
}

/// Lock-free tables of keypairs: by our receiver index, and the one each peer sends with.
pub struct Sessions {
    by_index: Box<[ArcSwapOption<Keypair>]>,
    sending: Box<[ArcSwapOption<Keypair>]>,
}

/// Why control could not publish a keypair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallError {
    IndexInUse,
    PeerOutOfRange,
}

impl Sessions {
    /// `index_bits`: receiver indexes use their low `index_bits` bits as the slot;
    /// `max_peers`: the largest peer id + 1.
    pub fn new(index_bits: u32, max_peers: usize) -> Self {
        let slots = 1usize << index_bits;
        Sessions {
            by_index: (0..slots).map(|_| ArcSwapOption::empty()).collect(),
            sending: (0..max_peers).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    #[inline]
    fn slot(&self, index: u32) -> usize {
        index as usize & (self.by_index.len() - 1)
    }

    pub fn index_slots(&self) -> usize {
        self.by_index.len()
    }

    pub fn max_peers(&self) -> usize {
        self.sending.len()
    }

    /// Is the slot for `index` free (control picks random indexes until one is)?
    pub fn index_free(&self, index: u32) -> bool {
        self.by_index[self.slot(index)].load().is_none()
    }

    /// Publish a keypair for receiving.
    pub fn install(&self, kp: Arc<Keypair>) -> Result<(), InstallError> {
        if kp.peer.id as usize >= self.sending.len() {
            return Err(InstallError::PeerOutOfRange);
        }
        let slot = &self.by_index[self.slot(kp.local_index)];
        if slot.load().is_some() {
            return Err(InstallError::IndexInUse);
        }
        slot.store(Some(kp));
        Ok(())
    }

    /// Withdraw the keypair with our index `index` (if it is still the one there).
    pub fn remove(&self, index: u32) -> Option<Arc<Keypair>> {
        let slot = &self.by_index[self.slot(index)];
        let cur = slot.load_full()?;
        if cur.local_index != index {
            return None;
        }
        let old = slot.compare_and_swap(&Some(cur.clone()), None);
        old.as_ref().filter(|o| Arc::ptr_eq(o, &cur))?;
        Some(cur)
    }

    /// The keypair whose receiver index is `index`.
    #[inline]
    pub fn lookup(&self, index: u32) -> Option<Arc<Keypair>> {
        let kp = self.by_index[self.slot(index)].load_full()?;
        (kp.local_index == index).then_some(kp)
    }

    /// The keypair `peer` sends with now.
    #[inline]
    pub fn sending(&self, peer: u32) -> Option<Arc<Keypair>> {
        self.sending.get(peer as usize)?.load_full()
    }

    /// Make `kp` the sending keypair of its peer.
    pub fn set_sending(&self, kp: Arc<Keypair>) {
        self.sending[kp.peer.id as usize].store(Some(kp));
    }

    /// Promote a confirmed responder keypair unless a newer one is already in use.
    pub fn promote(&self, kp: &Arc<Keypair>) {
        self.sending[kp.peer.id as usize].rcu(|cur| match cur {
            Some(c) if c.created > kp.created => Some(c.clone()),
            _ => Some(kp.clone()),
        });
    }

    /// Forget what `peer` sends with (peer removed or its keys expired).
    pub fn clear_sending(&self, peer: u32) {
        if let Some(s) = self.sending.get(peer as usize) {
            s.store(None);
        }
    }
}

impl Drop for Sessions {
    /// Dropping an `ArcSwap` pays its readers' debts: arc-swap walks its process-wide list
    /// of debt slots (a node per thread that ever loaded), with a few SeqCst atomics per
    /// node. Over 2^18 + 16 384 slots that is ~100 ms of CPU on the control lcore at
    /// shutdown, and seconds when that CPU is busy with other work. An empty slot holds
    /// no reference count, so it has no debt worth paying, and nobody can load from it
    /// any more (`&mut self`): only the slots that still hold a keypair (none after
    /// `ControlPlane::clear`) are dropped the ordinary way; the others are freed as
    /// plain memory.
    fn drop(&mut self) {
        for slots in [&mut self.by_index, &mut self.sending] {
            let slots = std::mem::take(slots);
            // SAFETY: `ManuallyDrop<T>` is `repr(transparent)` over `T`, so the slice
            // has the same layout and the same allocation.
            let mut slots = unsafe {
                Box::from_raw(
                    Box::into_raw(slots) as *mut [std::mem::ManuallyDrop<ArcSwapOption<Keypair>>]
                )
            };
            for slot in slots.iter_mut() {
                if slot.load().is_some() {
                    // SAFETY: dropped once, and never used again (the box is freed below
                    // without dropping its elements).
                    unsafe { std::mem::ManuallyDrop::drop(slot) };
                }
            }
        }
    }
}

/// A fresh `clock::now_ns` for callers outside a worker loop.
pub fn now() -> u64 {
    clock::now_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(peer: &Arc<Peer>, index: u32, initiator: bool, created: u64) -> Arc<Keypair> {
        Arc::new(Keypair::new(
            peer.clone(),
            index,
            index ^ 0xffff,
            &[1; 32],
            &[2; 32],
            initiator,
            created,
        ))
    }

    /// Dropping the tables drops the keypairs still in them (and only skips the work
    /// for the empty slots).
    #[test]
    fn dropping_the_tables_releases_what_they_hold() {
        let s = Sessions::new(10, 8);
        let p = Arc::new(Peer::new(3, None));
        let receiving = kp(&p, 77, true, 1);
        let sending = kp(&p, 78, true, 2);
        s.install(receiving.clone()).unwrap();
        s.set_sending(sending.clone());
        assert_eq!(Arc::strong_count(&receiving), 2);
        assert_eq!(Arc::strong_count(&sending), 2);
        drop(s);
        assert_eq!(Arc::strong_count(&receiving), 1);
        assert_eq!(Arc::strong_count(&sending), 1);
    }

    #[test]
    fn install_lookup_remove() {
        let s = Sessions::new(8, 4);
        let p = Arc::new(Peer::new(1, None));
        let a = kp(&p, 0x1234_5601, true, 1);
        s.install(a.clone()).unwrap();
        assert!(s.lookup(0x1234_5601).is_some());
        // Same slot, different index: not found, and the slot is taken.
        assert!(s.lookup(0x9999_9901).is_none());
        assert_eq!(
            s.install(kp(&p, 0x9999_9901, true, 1)).unwrap_err(),
            InstallError::IndexInUse
        );
        assert!(s.remove(0x9999_9901).is_none());
        assert!(s.remove(0x1234_5601).is_some());
        assert!(s.lookup(0x1234_5601).is_none());
        assert!(s.index_free(0x1234_5601));
    }

    #[test]
    fn responder_promotion_keeps_newest() {
        let s = Sessions::new(8, 4);
        let p = Arc::new(Peer::new(2, None));
        let newer = kp(&p, 1, true, 100);
        let older = kp(&p, 2, false, 50);
        s.set_sending(newer.clone());
        s.promote(&older);
        assert_eq!(s.sending(2).unwrap().local_index, 1);
        let newest = kp(&p, 3, false, 200);
        assert!(newest.confirm());
        assert!(!newest.confirm());
        s.promote(&newest);
        assert_eq!(s.sending(2).unwrap().local_index, 3);
    }

    #[test]
    fn nonce_reservation_limits() {
        let p = Arc::new(Peer::new(0, None));
        let k = kp(&p, 7, true, 1_000);
        assert_eq!(k.reserve_nonces(4, 1_000), Ok(0));
        assert_eq!(k.reserve_nonces(1, 1_000), Ok(4));
        assert!(!p.want_handshake.load(Ordering::Relaxed));
        // Past Rekey-After-Time the initiator asks for a handshake but still sends.
        assert_eq!(k.reserve_nonces(1, 1_000 + limits::REKEY_AFTER_TIME), Ok(5));
        assert!(p.want_handshake.load(Ordering::Relaxed));
        assert_eq!(
            k.reserve_nonces(1, 1_000 + limits::REJECT_AFTER_TIME),
            Err(KeyUse::Expired)
        );
        assert!(!k.can_receive(1_000 + limits::REJECT_AFTER_TIME));
    }
}
