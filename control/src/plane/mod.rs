//! The control plane: everything that is not per-packet, on the control thread.
//!
//! Contract: sans-IO. [`ControlPlane::handle`] takes a packet a worker handed over (its
//! `meta` says why) and [`ControlPlane::tick`] runs the timers; both take the time as an
//! argument and a function that allocates a packet buffer, and leave the frames to send
//! in [`ControlPlane::out`] (each with `meta::send_on(side)`). The caller moves those to
//! a worker's transmit ring (production) or wherever a test wants them.
//!
//! It owns the handshake engine of every peer, allocates receiver indexes, installs and
//! retires keypairs in the shared [`Sessions`], queues packets for peers that have no
//! session yet (bounded) and sends them once the handshake completes, sends keepalives,
//! answers ARP/ND and resolves next hops.

pub mod fragment;
pub mod frames;
pub mod host;
pub mod icmp;
pub mod load;
pub mod neighbor;
pub mod round;
pub mod stats;
pub mod timers;

use crate::noise::{CookieChecker, HandshakeError, Identity, PeerHandshake, Tai64N};
use dataplane::activity::{Table, Totals};
use dataplane::buf::PacketBuf;
use dataplane::counters::{Punt, WorkerCounters};
use dataplane::crypto::Backend;
use dataplane::lpm::PrefixTable;
use dataplane::meta;
use dataplane::session::{limits, Keypair, Peer, Sessions};
use dataplane::stages::{encrypt, Poll};
use dataplane::tables::{Shared, Side, Tables};
use dataplane::wire::wireguard::{self, CookieReply, MessageKind, Response};
use dataplane::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet};
use neighbor::Resolver;
use rand_core::{CryptoRng, RngCore};
pub use round::{ControlIo, Round};
pub use stats::{ControlDrop, ControlEvent, ControlStats};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x25519_dalek::{PublicKey, StaticSecret};

/// Packets queued per peer while its handshake runs (wireguard-go `QueueStagedSize`,
/// `device/queueconstants_default.go`: 128).
pub const STAGED_PER_PEER: usize = 128;

/// How often a peer with a session has its timers looked at, at the least: the workers
/// note its traffic without telling control, so this is how late control may learn that
/// a keepalive or a handshake became due (at most a second of a 10 s or 15 s timer, and
/// of the 120 s after which a sender wants a new handshake).
const RECHECK: u64 = 1_000_000_000;

/// Largest random extra wait before a handshake retry (whitepaper 6.1: "some jitter";
/// wireguard-go adds up to 333 ms, `device/timers.go`).
const RETRY_JITTER_MS: u32 = 334;

/// The time, as both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// `dataplane::clock::now_ns` (or a simulated value in tests).
    pub mono: u64,
    pub wall: SystemTime,
}

impl Now {
    pub fn real() -> Now {
        Now {
            mono: dataplane::clock::now_ns(),
            wall: SystemTime::now(),
        }
    }

    fn dur(&self) -> Duration {
        Duration::from_nanos(self.mono)
    }
}

/// A peer as control needs it configured.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub public_key: [u8; 32],
    pub preshared_key: Option<[u8; 32]>,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<(IpAddr, u8)>,
    pub persistent_keepalive: Option<u16>,
}

impl std::fmt::Debug for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSpec")
            .field("public_key", &crate::keys::encode(&self.public_key))
            .field("preshared_key", &self.preshared_key.map(|_| "<redacted>"))
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .finish()
    }
}

/// Per-peer state on the control thread.
struct PeerState<B> {
    spec: PeerSpec,
    shared: Arc<Peer>,
    /// What the workers had counted for this peer id when the peer was added (ids are
    /// reused); its traffic is what came after.
    activity_base: Totals,
    hs: PeerHandshake,
    /// Wall-clock time of the latest completed handshake.
    last_handshake: Option<SystemTime>,
    handshakes: u64,
    persistent_keepalive: Option<u64>,
    staged: VecDeque<B>,
    previous: Option<Arc<Keypair>>,
    current: Option<Arc<Keypair>>,
    next: Option<Arc<Keypair>>,
    /// Since when we have been trying to complete a handshake.
    attempt_since: Option<u64>,
    last_initiation: u64,
    retry_at: u64,
    pending_index: Option<u32>,
}

impl<B> PeerState<B> {
    fn keypairs(&self) -> impl Iterator<Item = &Arc<Keypair>> {
        self.previous
            .iter()
            .chain(self.current.iter())
            .chain(self.next.iter())
    }

    fn can_send(&self, now: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|k| k.age(now) < limits::REJECT_AFTER_TIME)
    }
}

/// The state of live peer `$i` (an id from `by_key`, `pending` or the peer loop, which
/// never name a removed peer). A macro rather than a method so that the borrow is of the
/// `peers` field only.
macro_rules! peer_mut {
    ($s:ident, $i:expr) => {
        $s.peers[$i].as_mut().expect("a live peer id")
    };
}
macro_rules! peer {
    ($s:ident, $i:expr) => {
        $s.peers[$i].as_ref().expect("a live peer id")
    };
}

pub struct ControlPlane<B: PacketBuf, R: RngCore + CryptoRng> {
    identity: Identity,
    /// The private key `identity` was made from, for `wg showconf`; wiped on drop.
    private_key: crate::config::Key,
    shared: Arc<Shared>,
    /// By peer id; `None` is a free id.
    peers: Vec<Option<PeerState<B>>>,
    by_key: HashMap<[u8; 32], usize>,
    /// Each allowed network and the peer id it belongs to (cryptokey routing is built
    /// from this).
    owners: HashMap<(IpAddr, u8), usize>,
    /// Inside `batch`: the tables are published once, at its end.
    batching: bool,
    /// Routes changed since the tables were last published.
    routes_dirty: bool,
    /// Where the search for a free id starts, so that a removed peer's id is reused as
    /// late as possible.
    next_id: usize,
    /// Local indexes of initiations in flight, by their slot in `Sessions`.
    pending: HashMap<usize, (u32, usize)>,
    resolver: Resolver<B>,
    backend: Backend,
    enc: encrypt::Scratch<B>,
    /// Counters of the encrypt runs control makes itself (staged packets, keepalives).
    pub counters: Arc<WorkerCounters>,
    /// Control's own count of the peers' traffic it encrypts.
    activity: Arc<Table>,
    pub stats: ControlStats,
    rng: R,
    icmp_limit: icmp::RateLimit,
    /// When the initiator of a session replaces it (Rekey-After-Time, or shorter for
    /// tests).
    rekey_after: u64,
    /// Handshake messages waiting, oldest first (bounded: `load::HANDSHAKE_QUEUE`).
    handshakes: VecDeque<B>,
    load: load::Load,
    limiter: load::SourceLimiter,
    cookies: CookieChecker,
    /// When each peer next needs its timers run (`tick`); idle peers have none.
    timers: timers::Wheel,
    /// The peers `timers` found due, reused from tick to tick.
    due: Vec<u32>,
    /// The kernel's side of the gateway's own addresses, when a control port exists.
    pub host: Option<host::HostPort>,
    /// Frames to send, each with `meta::send_on(side)`.
    pub out: Vec<B>,
    /// What a round received from the workers, reused from round to round.
    received: Vec<B>,
    /// A frame from the control port, reused from round to round.
    host_buf: Vec<u8>,
}

/// A worker-style buffer allocator.
pub type Alloc<'a, B> = &'a mut dyn FnMut() -> Option<B>;

impl<B: PacketBuf, R: RngCore + CryptoRng> ControlPlane<B, R> {
    /// A control plane for `specs` (peer `i` gets id `i`). `shared` holds the tables of
    /// the ports; control adds the peers' allowed IPs to them and publishes them.
    pub fn new(
        private_key: &[u8; 32],
        specs: &[PeerSpec],
        shared: Arc<Shared>,
        rng: R,
    ) -> Result<Self, String> {
        let mut plane = ControlPlane {
            identity: Identity::new(StaticSecret::from(*private_key)),
            private_key: crate::config::Key::from_bytes(*private_key),
            activity: shared.activity.writer(),
            shared,
            peers: Vec::new(),
            by_key: HashMap::new(),
            owners: HashMap::new(),
            batching: false,
            routes_dirty: false,
            next_id: 0,
            pending: HashMap::new(),
            resolver: Resolver::default(),
            backend: Backend::software(),
            enc: encrypt::Scratch::default(),
            counters: Arc::new(WorkerCounters::default()),
            stats: ControlStats::default(),
            rng,
            icmp_limit: icmp::RateLimit::default(),
            rekey_after: limits::REKEY_AFTER_TIME,
            handshakes: VecDeque::new(),
            load: load::Load::default(),
            limiter: load::SourceLimiter::default(),
            cookies: CookieChecker::new(),
            timers: timers::Wheel::new(0),
            due: Vec::new(),
            host: None,
            out: Vec::new(),
            received: Vec::new(),
            host_buf: Vec::new(),
        };
        for (i, spec) in specs.iter().enumerate() {
            plane
                .insert_peer(spec.clone())
                .map_err(|e| format!("peers[{i}]: {e}"))?;
        }
        plane.publish_tables();
        Ok(plane)
    }

    /// Shortens Rekey-After-Time (for tests); applies to sessions made from now on.
    pub fn set_rekey_after(&mut self, rekey_after: u64) {
        self.rekey_after = rekey_after.min(limits::REKEY_AFTER_TIME);
    }

    /// Adds a peer; its id is returned. The tables are published.
    pub fn add_peer(&mut self, spec: PeerSpec) -> Result<u32, String> {
        let id = self.insert_peer(spec)?;
        self.routes_changed();
        Ok(id)
    }

    fn insert_peer(&mut self, spec: PeerSpec) -> Result<u32, String> {
        if self.by_key.contains_key(&spec.public_key) {
            return Err("public_key: this peer exists already".into());
        }
        let hs = PeerHandshake::new(
            &self.identity,
            PublicKey::from(spec.public_key),
            spec.preshared_key.as_ref(),
        )
        .map_err(|e| format!("public_key: {e}"))?;
        let max = self.sessions().max_peers();
        let id = (0..max)
            .map(|k| (self.next_id + k) % max)
            .find(|&i| self.peers.get(i).is_none_or(|p| p.is_none()))
            .ok_or_else(|| format!("no room: wgdp holds at most {max} peers"))?;
        self.next_id = (id + 1) % max;
        if self.peers.len() <= id {
            self.peers.resize_with(id + 1, || None);
        }
        self.by_key.insert(spec.public_key, id);
        for &net in &spec.allowed_ips {
            self.owners.insert(net, id);
        }
        self.peers[id] = Some(PeerState {
            shared: Arc::new(Peer::new(id as u32, spec.endpoint)),
            activity_base: self.shared.activity.total(id as u32),
            hs,
            last_handshake: None,
            handshakes: 0,
            persistent_keepalive: spec
                .persistent_keepalive
                .map(|s| dataplane::clock::secs(s as u64)),
            spec,
            staged: VecDeque::new(),
            previous: None,
            current: None,
            next: None,
            attempt_since: None,
            last_initiation: 0,
            retry_at: 0,
            pending_index: None,
        });
        // A reused id's old deadline is not this peer's; one with a persistent keepalive
        // has its timers run at the next tick.
        self.timers.disarm(id as u32);
        if peer!(self, id).persistent_keepalive.is_some() {
            self.wake(id);
        }
        Ok(id as u32)
    }

    /// Have peer `i`'s timers run at the next tick (its state changed).
    fn wake(&mut self, i: usize) {
        self.timers.arm_by(i as u32, 0);
    }

    /// Removes the peer with `public_key`: its keypairs, queued packets and routes go.
    /// False if there is no such peer.
    pub fn remove_peer(&mut self, public_key: &[u8; 32]) -> bool {
        let Some(id) = self.by_key.remove(public_key) else {
            return false;
        };
        let Some(ps) = self.peers[id].take() else {
            return false;
        };
        self.disown(id, &ps.spec.allowed_ips);
        for k in ps.keypairs() {
            self.shared.sessions.remove(k.local_index);
        }
        self.shared.sessions.clear_sending(id as u32);
        if let Some(idx) = ps.pending_index {
            let slot = self.slot(idx);
            self.pending.remove(&slot);
        }
        self.stats
            .dropped_n(ControlDrop::PeerRemoved, ps.staged.len());
        self.timers.disarm(id as u32);
        self.routes_changed();
        true
    }

    /// Forget that peer `id` owns `nets`.
    fn disown(&mut self, id: usize, nets: &[(IpAddr, u8)]) {
        for net in nets {
            if self.owners.get(net) == Some(&id) {
                self.owners.remove(net);
            }
        }
    }

    /// Changes a peer in place (preshared key, endpoint, allowed IPs, keepalive),
    /// keeping its sessions. A new preshared key applies from the next handshake.
    /// False if there is no such peer.
    pub fn update_peer(&mut self, spec: PeerSpec) -> bool {
        let Some(&id) = self.by_key.get(&spec.public_key) else {
            return false;
        };
        let Some(ps) = self.peers[id].as_mut() else {
            return false;
        };
        if ps.spec == spec {
            return true;
        }
        if ps.spec.preshared_key != spec.preshared_key {
            ps.hs.set_preshared_key(spec.preshared_key.as_ref());
        }
        if spec.endpoint != ps.spec.endpoint {
            if let Some(e) = spec.endpoint {
                ps.shared.set_endpoint(e);
            }
        }
        ps.persistent_keepalive = spec
            .persistent_keepalive
            .map(|s| dataplane::clock::secs(s as u64));
        let routes_changed = ps.spec.allowed_ips != spec.allowed_ips;
        let old = std::mem::replace(&mut ps.spec, spec);
        self.wake(id);
        if routes_changed {
            self.disown(id, &old.allowed_ips);
            for &net in &peer!(self, id).spec.allowed_ips {
                self.owners.insert(net, id);
            }
            self.routes_changed();
        }
        true
    }

    /// Apply several changes (`add_peer`, `remove_peer`, `update_peer`,
    /// `set_port_tables`) and publish the tables once, at the end, so that a change of
    /// many peers costs one rebuild of cryptokey routing, not one per peer.
    pub fn batch<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.batching, true);
        let r = f(self);
        self.batching = outer;
        if !outer && self.routes_dirty {
            self.publish_tables();
        }
        r
    }

    /// The routes changed: publish now, or at the end of the batch.
    fn routes_changed(&mut self) {
        self.routes_dirty = true;
        if !self.batching {
            self.publish_tables();
        }
    }

    /// The configuration of the peer with `public_key`.
    pub fn peer_spec(&self, public_key: &[u8; 32]) -> Option<&PeerSpec> {
        let &id = self.by_key.get(public_key)?;
        self.peers.get(id)?.as_ref().map(|p| &p.spec)
    }

    /// The public key of the peer that owns network `net` among its allowed IPs.
    pub fn owner_of(&self, net: (IpAddr, u8)) -> Option<&[u8; 32]> {
        let &id = self.owners.get(&net)?;
        self.peers.get(id)?.as_ref().map(|p| &p.spec.public_key)
    }

    /// Replaces the gateway's private key. Every session and handshake in progress is
    /// dropped, since they were made with the old key.
    pub fn set_private_key(&mut self, private_key: &[u8; 32]) {
        self.identity = Identity::new(StaticSecret::from(*private_key));
        self.private_key = crate::config::Key::from_bytes(*private_key);
        let identity = &self.identity;
        let mut broken = Vec::new();
        for ps in self.peers.iter_mut().flatten() {
            if ps.hs.set_identity(identity).is_err() {
                broken.push(ps.spec.public_key);
            }
        }
        self.reset_sessions();
        // A peer whose key is now our own cannot be talked to; it goes.
        for key in broken {
            self.remove_peer(&key);
        }
    }

    fn reset_sessions(&mut self) {
        for ps in self.peers.iter_mut().flatten() {
            for k in ps.keypairs() {
                self.shared.sessions.remove(k.local_index);
            }
            self.shared.sessions.clear_sending(ps.shared.id);
            ps.previous = None;
            ps.current = None;
            ps.next = None;
            ps.attempt_since = None;
            ps.pending_index = None;
        }
        self.pending.clear();
    }

    /// The configured peers.
    pub fn peer_specs(&self) -> impl Iterator<Item = &PeerSpec> {
        self.peers.iter().flatten().map(|p| &p.spec)
    }

    /// What an operator sees of each peer.
    pub fn peer_views(&self) -> impl Iterator<Item = PeerView<'_>> {
        self.peers.iter().flatten().map(|p| self.view(p))
    }

    /// What an operator sees of each peer that has a session, a handshake under way,
    /// packets waiting or a persistent keepalive: the peers whose timers are armed.
    /// Costs a scan of one word per peer id, and a look at those peers only.
    pub fn active_peer_views(&self) -> impl Iterator<Item = PeerView<'_>> {
        self.timers
            .armed_peers()
            .filter_map(|i| self.peers.get(i as usize)?.as_ref())
            .map(|p| self.view(p))
    }

    /// Peers configured.
    pub fn peer_count(&self) -> usize {
        self.by_key.len()
    }

    /// Peers `active_peer_views` would show (the timers armed).
    pub fn active_peer_count(&self) -> usize {
        self.timers.len()
    }

    fn view<'a>(&'a self, p: &'a PeerState<B>) -> PeerView<'a> {
        PeerView {
            spec: &p.spec,
            peer: &p.shared,
            activity: self
                .shared
                .activity
                .total(p.shared.id)
                .since(p.activity_base),
            last_handshake: p.last_handshake,
            handshakes: p.handshakes,
        }
    }

    /// Peer `i`'s traffic, summed over the workers and control.
    fn activity_of(&self, i: usize) -> Totals {
        let ps = peer!(self, i);
        self.shared.activity.total(i as u32).since(ps.activity_base)
    }

    /// The tables the workers use now.
    pub fn current_tables(&self) -> Arc<Tables> {
        self.tables()
    }

    /// Replaces the port tables (addresses, routes, listen port, MTU) and keeps the
    /// peers' routes.
    pub fn set_port_tables(&mut self, base: Tables) {
        self.shared.tables.store(Arc::new(base));
        self.routes_changed();
    }

    /// Rebuilds cryptokey routing from the peers and publishes the tables.
    fn publish_tables(&mut self) {
        let mut allowed = PrefixTable::new();
        for (&(addr, len), &id) in &self.owners {
            if let Some(ps) = self.peers.get(id).and_then(Option::as_ref) {
                allowed.insert(addr, len, ps.shared.clone());
            }
        }
        let t = self.tables().with_allowed(allowed);
        self.shared.tables.store(Arc::new(t));
        self.routes_dirty = false;
    }

    pub fn private_key(&self) -> &crate::config::Key {
        &self.private_key
    }

    pub fn public_key(&self) -> [u8; 32] {
        *self.identity.public_key().as_bytes()
    }

    pub fn neighbor_stats(&self) -> &neighbor::NeighborStats {
        &self.resolver.stats
    }

    fn tables(&self) -> Arc<Tables> {
        self.shared.tables.load_full()
    }

    fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }

    fn error(&mut self, e: HandshakeError) {
        *self.stats.handshake_errors.entry(e.name()).or_default() += 1;
    }

    /// A packet a worker handed over.
    pub fn handle(&mut self, pkt: B, now: Now, alloc: Alloc<'_, B>) {
        let m = pkt.meta();
        let side = meta::side(m);
        let t = self.tables();
        match meta::punt_reason(m) {
            Some(Punt::Handshake) => {
                if self.handshakes.len() >= load::HANDSHAKE_QUEUE {
                    self.stats.dropped(ControlDrop::HandshakeQueueFull);
                } else {
                    self.handshakes.push_back(pkt);
                }
            }
            Some(Punt::Arp) => self
                .resolver
                .handle_arp(side, &pkt, &t, alloc, &mut self.out),
            Some(Punt::Nd) => self
                .resolver
                .handle_nd(side, &pkt, &t, alloc, &mut self.out),
            Some(Punt::NoSession) => {
                // The peer may have been removed, its id even given to a new peer, since
                // the worker routed the packet: route it again.
                let id = meta::peer(m);
                if dst_addr(pkt.data())
                    .and_then(|d| t.allowed.lookup(d))
                    .map(|p| p.id)
                    == Some(id)
                {
                    self.stage(id as usize, pkt, now, alloc)
                } else {
                    self.stats.dropped(ControlDrop::PeerGone);
                }
            }
            Some(Punt::NoNeighbor) => self.resolve_frame(side, pkt, &t, now, alloc),
            Some(Punt::Local) => match self.host.as_mut() {
                Some(h) => h.deliver_frame(pkt.data()),
                None => self.stats.dropped(ControlDrop::NoControlPort),
            },
            Some(Punt::TunnelLocal) => match self.host.as_mut() {
                Some(h) => h.deliver(pkt.data()),
                None => self.stats.dropped(ControlDrop::NoControlPort),
            },
            Some(Punt::IcmpError) => {
                self.icmp_error(side, meta::peer(m) as usize, pkt, &t, now, alloc)
            }
            Some(Punt::Fragment) => self.fragment(pkt, &t, now, alloc),
            None => self.stats.dropped(ControlDrop::UnknownPunt),
        }
        self.publish_neighbors();
    }

    fn publish_neighbors(&mut self) {
        if let Some(n) = self.resolver.take_dirty() {
            self.shared.neighbors.store(Arc::new(n));
        }
    }

    /// A frame complete but for its destination MAC: find the next hop of its IP
    /// destination on `side` and send it there.
    fn resolve_frame(&mut self, side: Side, frame: B, t: &Tables, now: Now, alloc: Alloc<'_, B>) {
        let dst = EthernetFrame::new_checked(frame.data())
            .ok()
            .and_then(|e| dst_addr(e.payload()));
        match dst.and_then(|d| t.port(side).next_hop(d)) {
            Some(hop) => self
                .resolver
                .resolve(side, hop, frame, t, now.mono, alloc, &mut self.out),
            None => self.stats.dropped(ControlDrop::NoRoute),
        }
    }

    /// Answer a packet the route stage could not forward with the ICMP error it needs,
    /// sent back where it came from: to a host on the inside, or through the tunnel to
    /// the peer `peer` that sent it. The source is the gateway's inside address of the
    /// family (its address inside the tunnel's networks), else its outside one.
    fn icmp_error(
        &mut self,
        from: Side,
        peer: usize,
        pkt: B,
        t: &Tables,
        now: Now,
        alloc: Alloc<'_, B>,
    ) {
        let (kind, to) = match icmp::needed(pkt.data(), t.mtu) {
            Ok(e) => e,
            Err(_) => {
                self.stats.dropped(ControlDrop::IcmpSuppressed);
                return;
            }
        };
        if !self.icmp_limit.allow(now.mono) {
            self.stats.dropped(ControlDrop::IcmpRateLimited);
            return;
        }
        let src = t
            .port(Side::Inside)
            .source_for(to)
            .or_else(|| t.port(Side::Outside).source_for(to));
        let Some(src) = src else {
            self.stats.dropped(ControlDrop::NoSourceAddress);
            return;
        };
        let Some(mut b) = alloc() else {
            self.stats.dropped(ControlDrop::NoBuffer);
            return;
        };
        // Through the tunnel the error must fit the tunnel.
        let limit = match from {
            Side::Inside => usize::MAX,
            Side::Outside => usize::from(t.mtu),
        };
        if !icmp::write(&mut b, kind, src, pkt.data(), limit) {
            self.stats.dropped(ControlDrop::Malformed);
            return;
        }
        drop(pkt);
        self.stats.count(ControlEvent::IcmpSent);
        match from {
            Side::Inside => {
                let mac = t.port(Side::Inside).mac;
                if !frames::push_ethernet(&mut b, [0; 6], mac) {
                    self.stats.dropped(ControlDrop::Malformed);
                    return;
                }
                self.resolve_frame(Side::Inside, b, t, now, alloc);
            }
            Side::Outside => self.stage(peer, b, now, alloc),
        }
    }

    /// A frame the kernel sent on the control port: answered here (ARP, ND) or routed
    /// like a packet from the inside, except that its TTL is left alone (it starts
    /// here): through the tunnel if a peer's allowed IPs hold its destination, else out
    /// of the port whose routes match it best.
    pub fn from_host(&mut self, frame: &[u8], now: Now, alloc: Alloc<'_, B>) {
        let Some(h) = self.host.as_mut() else {
            return;
        };
        let host::FromHost::Route(ip) = h.from_host(frame) else {
            return;
        };
        let t = self.tables();
        let Some(dst) = dst_addr(&ip) else {
            return;
        };
        let Some(mut b) = alloc() else {
            self.stats.dropped(ControlDrop::NoBuffer);
            return;
        };
        if b.append(ip.len()).map(|d| d.copy_from_slice(&ip)).is_none() {
            self.stats.dropped(ControlDrop::Malformed);
            return;
        }
        if let Some(peer) = t.allowed.lookup(dst) {
            // The TAP's MTU is the tunnel's, so the kernel sends nothing larger.
            self.stage(peer.id as usize, b, now, alloc);
            self.publish_neighbors();
            return;
        }
        let best = |side| t.port(side).fib.lookup_with_len(dst).map(|(len, _)| len);
        let side = match (best(Side::Outside), best(Side::Inside)) {
            (Some(o), Some(i)) if i >= o => Side::Inside,
            (Some(_), _) => Side::Outside,
            (None, Some(_)) => Side::Inside,
            (None, None) => {
                self.stats.dropped(ControlDrop::NoRoute);
                return;
            }
        };
        if !frames::push_ethernet(&mut b, [0; 6], t.port(side).mac) {
            self.stats.dropped(ControlDrop::Malformed);
            return;
        }
        self.resolve_frame(side, b, &t, now, alloc);
        self.publish_neighbors();
    }

    /// Split an IPv4 packet for a peer that is over the tunnel MTU and may be
    /// fragmented; the fragments go the way of any packet for that peer.
    fn fragment(&mut self, pkt: B, t: &Tables, now: Now, alloc: Alloc<'_, B>) {
        let peer = Ipv4Packet::new_checked(pkt.data())
            .ok()
            .and_then(|p| t.allowed.lookup(IpAddr::V4(p.dst_addr())))
            .map(|p| p.id as usize);
        let frags = peer.map(|_| fragment::split(pkt.data(), t.mtu, alloc));
        match (peer, frags) {
            (Some(peer), Some(Ok(frags))) => {
                self.stats.count(ControlEvent::Fragmented);
                for f in frags {
                    self.stage(peer, f, now, alloc);
                }
            }
            _ => self.stats.dropped(ControlDrop::NotFragmentable),
        }
    }

    /// Works through at most `budget` waiting handshake messages, oldest first; returns
    /// how many. Under load (see `load`) they need a valid mac2 or get a cookie reply,
    /// and each source is rate-limited.
    pub fn poll_handshakes(&mut self, now: Now, alloc: Alloc<'_, B>, budget: usize) -> usize {
        let under_load = self.load.update(self.handshakes.len(), now.mono);
        let mut done = 0;
        while done < budget {
            let Some(pkt) = self.handshakes.pop_front() else {
                break;
            };
            if under_load {
                self.stats.count(ControlEvent::UnderLoad);
            }
            self.handle_handshake(pkt, now, alloc, under_load);
            done += 1;
        }
        self.publish_neighbors();
        done
    }

    fn handle_handshake(&mut self, pkt: B, now: Now, alloc: Alloc<'_, B>, under_load: bool) {
        let Some(dg) = frames::parse_udp(pkt.data()) else {
            self.error(HandshakeError::Malformed);
            return;
        };
        let msg = &pkt.data()[dg.payload.0..dg.payload.0 + dg.payload.1];
        let kind = wireguard::classify(msg);
        if matches!(kind, Ok(MessageKind::Initiation | MessageKind::Response)) {
            // mac1 first: one keyed hash, before any other work.
            if let Err(e) = self.identity.verify_mac1(msg) {
                return self.error(e);
            }
            if under_load {
                let src = load::cookie_source(dg.src);
                if self.cookies.verify_mac2(msg, &src, now.dur()).is_err() {
                    match self.cookies.create_reply(
                        &self.identity,
                        msg,
                        &src,
                        now.dur(),
                        &mut self.rng,
                    ) {
                        Ok(reply) => {
                            self.stats.count(ControlEvent::CookieRepliesSent);
                            self.send_udp(dg.src, Some(dg.src_mac), &reply, now, alloc);
                        }
                        Err(e) => self.error(e),
                    }
                    return;
                }
                if !self.limiter.allow(dg.src.ip(), now.mono) {
                    self.stats.dropped(ControlDrop::RateLimited);
                    return;
                }
            }
        }
        match kind {
            Ok(MessageKind::Initiation) => {
                let msg = msg.to_vec();
                self.on_initiation(&msg, dg, now, alloc)
            }
            Ok(MessageKind::Response) => {
                let msg = msg.to_vec();
                self.on_response(&msg, dg, now, alloc)
            }
            Ok(MessageKind::CookieReply) => {
                let receiver = CookieReply::new_checked(msg).map(|c| c.receiver());
                let peer = receiver.ok().and_then(|r| self.pending_peer(r));
                match peer {
                    Some(i) => {
                        if let Err(e) = peer_mut!(self, i).hs.consume_cookie_reply(msg, now.dur()) {
                            self.error(e);
                        }
                    }
                    None => self.error(HandshakeError::WrongIndex),
                }
            }
            _ => self.error(HandshakeError::Malformed),
        }
    }

    fn slot(&self, index: u32) -> usize {
        index as usize & (self.sessions().index_slots() - 1)
    }

    fn pending_peer(&self, index: u32) -> Option<usize> {
        match self.pending.get(&self.slot(index)) {
            Some((i, p)) if *i == index => Some(*p),
            _ => None,
        }
    }

    /// A fresh receiver index whose slot is free.
    fn new_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if self.sessions().index_free(i) && !self.pending.contains_key(&self.slot(i)) {
                return i;
            }
        }
    }

    fn send_udp(
        &mut self,
        dg_to: SocketAddr,
        dst_mac: Option<[u8; 6]>,
        msg: &[u8],
        now: Now,
        alloc: Alloc<'_, B>,
    ) {
        let t = self.tables();
        let port = t.port(Side::Outside);
        let Some(src_ip) = port.source_for(dg_to.ip()) else {
            self.stats.dropped(ControlDrop::NoSourceAddress);
            return;
        };
        let Some(mut b) = alloc() else {
            self.stats.dropped(ControlDrop::NoBuffer);
            return;
        };
        let src = SocketAddr::new(src_ip, t.listen_port);
        if !frames::write_udp(&mut b, port.mac, dst_mac.unwrap_or([0; 6]), src, dg_to, msg) {
            self.stats.dropped(ControlDrop::Malformed);
            return;
        }
        match dst_mac {
            Some(_) => {
                b.set_meta(meta::send_on(Side::Outside));
                self.out.push(b);
            }
            None => match port.next_hop(dg_to.ip()) {
                Some(hop) => {
                    self.resolver
                        .resolve(Side::Outside, hop, b, &t, now.mono, alloc, &mut self.out)
                }
                None => self.stats.dropped(ControlDrop::NoRoute),
            },
        }
    }

    fn on_initiation(&mut self, msg: &[u8], dg: frames::Datagram, now: Now, alloc: Alloc<'_, B>) {
        let info = match self.identity.consume_initiation(msg) {
            Ok(i) => i,
            Err(e) => return self.error(e),
        };
        let Some(&i) = self.by_key.get(info.initiator_static().as_bytes()) else {
            return self.error(HandshakeError::UnknownPeer);
        };
        if let Err(e) = peer_mut!(self, i).hs.accept_initiation(info, now.dur()) {
            return self.error(e);
        }
        let local = self.new_index();
        let (reply, session) =
            match peer_mut!(self, i)
                .hs
                .create_response(local, now.dur(), &mut self.rng)
            {
                Ok(r) => r,
                Err(e) => return self.error(e),
            };
        let ps = peer_mut!(self, i);
        let kp = Arc::new(Keypair::new(
            ps.shared.clone(),
            session.local_index,
            session.remote_index,
            &session.send_key,
            &session.recv_key,
            false,
            now.mono,
        ));
        // Whitepaper 5.4.6 / wireguard-go `BeginSymmetricSession`: the responder keeps the
        // new keypair as "next" until the initiator's first packet confirms it.
        let old_next = ps.next.replace(kp.clone());
        ps.shared.set_endpoint(dg.src);
        if let Some(old) = old_next {
            self.shared.sessions.remove(old.local_index);
        }
        if self.shared.sessions.install(kp).is_err() {
            self.stats.dropped(ControlDrop::IndexTaken);
            return;
        }
        self.stats.count(ControlEvent::ResponsesSent);
        self.stats.count(ControlEvent::HandshakesCompleted);
        let ps = peer_mut!(self, i);
        ps.handshakes += 1;
        ps.last_handshake = Some(now.wall);
        self.wake(i);
        self.send_udp(dg.src, Some(dg.src_mac), &reply, now, alloc);
    }

    fn on_response(&mut self, msg: &[u8], dg: frames::Datagram, now: Now, alloc: Alloc<'_, B>) {
        let receiver = match Response::new_checked(msg) {
            Ok(r) => r.receiver(),
            Err(_) => return self.error(HandshakeError::Malformed),
        };
        let Some(i) = self.pending_peer(receiver) else {
            return self.error(HandshakeError::WrongIndex);
        };
        let session = match peer_mut!(self, i)
            .hs
            .consume_response(&self.identity, msg, now.dur())
        {
            Ok(s) => s,
            Err(e) => return self.error(e),
        };
        let slot = self.slot(receiver);
        self.pending.remove(&slot);
        let ps = peer_mut!(self, i);
        ps.pending_index = None;
        ps.attempt_since = None;
        ps.shared.set_endpoint(dg.src);
        let kp = Arc::new(
            Keypair::new(
                ps.shared.clone(),
                session.local_index,
                session.remote_index,
                &session.send_key,
                &session.recv_key,
                true,
                now.mono,
            )
            .with_rekey_after(self.rekey_after),
        );
        let retired: Vec<u32> = ps
            .previous
            .take()
            .into_iter()
            .chain(ps.next.take())
            .map(|k| k.local_index)
            .collect();
        ps.previous = ps.current.replace(kp.clone());
        for idx in retired {
            self.shared.sessions.remove(idx);
        }
        if self.shared.sessions.install(kp.clone()).is_err() {
            self.stats.dropped(ControlDrop::IndexTaken);
            return;
        }
        self.shared.sessions.set_sending(kp);
        self.stats.count(ControlEvent::HandshakesCompleted);
        let ps = peer_mut!(self, i);
        ps.handshakes += 1;
        ps.last_handshake = Some(now.wall);
        self.wake(i);
        // Send what waited; with nothing waiting, a keepalive confirms the keypair to
        // the responder (whitepaper 6.4 / wireguard-go `SendKeepalive` after a response).
        if peer_mut!(self, i).staged.is_empty() {
            self.send_keepalive(i, now, alloc);
        } else {
            self.flush_staged(i, now, alloc);
        }
    }

    /// Start (or retry) a handshake with peer `i`.
    fn initiate(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>, why: &'static str) {
        let st = self.activity_of(i);
        tracing::debug!(
            peer = %crate::keys::encode(&peer!(self, i).spec.public_key),
            id = i,
            why,
            since_rx_ms = now.mono.saturating_sub(st.rx.last) / 1_000_000,
            since_tx_data_ms = now.mono.saturating_sub(st.tx.last_data) / 1_000_000,
            "initiating a handshake"
        );
        let Some(endpoint) = peer_mut!(self, i).shared.endpoint() else {
            peer_mut!(self, i)
                .shared
                .want_handshake
                .store(false, Ordering::Relaxed);
            return;
        };
        if let Some(old) = peer_mut!(self, i).pending_index.take() {
            let slot = self.slot(old);
            self.pending.remove(&slot);
        }
        let local = self.new_index();
        let wall = Tai64N::from_system_time(now.wall);
        let msg = match peer_mut!(self, i).hs.create_initiation(
            &self.identity,
            local,
            wall,
            now.dur(),
            &mut self.rng,
        ) {
            Ok(m) => m,
            Err(e) => return self.error(e),
        };
        let slot = self.slot(local);
        self.pending.insert(slot, (local, i));
        let jitter = (self.rng.next_u32() % RETRY_JITTER_MS) as u64 * 1_000_000;
        let ps = peer_mut!(self, i);
        ps.pending_index = Some(local);
        ps.last_initiation = now.mono;
        ps.attempt_since.get_or_insert(now.mono);
        ps.retry_at = now.mono + limits::REKEY_TIMEOUT + jitter;
        ps.shared.want_handshake.store(false, Ordering::Relaxed);
        let retry_at = ps.retry_at;
        self.timers.arm(i as u32, retry_at);
        self.stats.count(ControlEvent::InitiationsSent);
        self.send_udp(endpoint, None, &msg, now, alloc);
    }

    /// Queue a packet for a peer without a usable session, and make sure a handshake
    /// is under way.
    fn stage(&mut self, i: usize, pkt: B, now: Now, alloc: Alloc<'_, B>) {
        let Some(ps) = self.peers.get_mut(i).and_then(Option::as_mut) else {
            self.stats.dropped(ControlDrop::PeerGone);
            return;
        };
        if ps.staged.len() >= STAGED_PER_PEER {
            ps.staged.pop_front();
            self.stats.dropped(ControlDrop::StagedFull);
        }
        ps.staged.push_back(pkt);
        self.timers.arm_by(i as u32, 0);
        if ps.can_send(now.mono) && self.shared.sessions.sending(ps.shared.id).is_some() {
            // A keypair became usable after the worker looked.
            self.flush_staged(i, now, alloc);
        } else if ps.attempt_since.is_none() {
            self.initiate(i, now, alloc, "a packet is waiting");
        }
    }

    fn encrypt_and_send(&mut self, mut pkts: Vec<B>, now: Now, alloc: Alloc<'_, B>) {
        let t = self.tables();
        let n = self.shared.neighbors.load_full();
        let mut frames = Vec::new();
        let mut punts = Vec::new();
        let mut dropped = Vec::new();
        let mut p = Poll {
            now: now.mono,
            tables: &t,
            neighbors: &n,
            sessions: &self.shared.sessions,
            counters: &self.counters,
            activity: &self.activity,
            backend: &mut self.backend,
            crew: None,
            dropped: &mut dropped,
        };
        encrypt::run(&mut p, &mut pkts, &mut self.enc, &mut frames, &mut punts);
        B::free_all(&mut dropped);
        for mut f in frames {
            f.set_meta(meta::send_on(Side::Outside));
            self.out.push(f);
        }
        for p in punts {
            match meta::punt_reason(p.meta()) {
                Some(Punt::NoNeighbor) => self.resolve_frame(Side::Outside, p, &t, now, alloc),
                _ => self.stats.dropped(ControlDrop::NoKeypair),
            }
        }
    }

    fn flush_staged(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>) {
        let id = peer_mut!(self, i).shared.id;
        let pkts: Vec<B> = peer_mut!(self, i)
            .staged
            .drain(..)
            .map(|mut p| {
                p.set_meta(meta::for_peer(id));
                p
            })
            .collect();
        self.encrypt_and_send(pkts, now, alloc);
    }

    fn send_keepalive(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>) {
        let Some(mut b) = alloc() else {
            self.stats.dropped(ControlDrop::NoBuffer);
            return;
        };
        b.set_meta(meta::for_peer(peer_mut!(self, i).shared.id));
        self.stats.count(ControlEvent::KeepalivesSent);
        self.encrypt_and_send(vec![b], now, alloc);
    }

    /// Run the timers of the peers that are due (module `timers`) and of neighbor
    /// resolution. A peer is looked at when a deadline it armed has come: a handshake
    /// retry, a keepalive, a handshake for data that got no answer, its keys' expiry,
    /// and, while it has a session, at least every `RECHECK` for what the workers'
    /// counts of its traffic say. Peers without a session, a handshake or a persistent
    /// keepalive are not looked at at all.
    pub fn tick(&mut self, now: Now, alloc: Alloc<'_, B>) {
        let t = now.mono;
        let mut due = std::mem::take(&mut self.due);
        self.timers.expire(t, &mut due);
        for &i in &due {
            let i = i as usize;
            if self.peers.get(i).is_none_or(|p| p.is_none()) {
                continue;
            }
            let st = self.run_timers(i, now, alloc);
            if let Some(at) = self.next_check(i, t, &st) {
                self.timers.arm_by(i as u32, at);
            }
        }
        due.clear();
        self.due = due;
        let tables = self.tables();
        self.resolver.tick(&tables, t, alloc, &mut self.out);
        self.publish_neighbors();
    }

    /// Peer `i`'s timers (whitepaper 6), at `now`; what the workers counted of its
    /// traffic, for `next_check`.
    fn run_timers(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>) -> Totals {
        let t = now.mono;
        self.expire_keypairs(i, t);
        let ps = peer_mut!(self, i);
        // The responder's keypair became current when the initiator used it.
        if ps.next.as_ref().is_some_and(|k| k.is_confirmed()) {
            let old = ps.previous.take();
            ps.previous = ps.current.take();
            ps.current = ps.next.take();
            if let Some(old) = old {
                self.shared.sessions.remove(old.local_index);
            }
        }
        let st = self.activity_of(i);
        let ps = peer!(self, i);
        let (last_rx, last_rx_data) = (st.rx.last, st.rx.last_data);
        let (last_tx, last_tx_data) = (st.tx.last, st.tx.last_data);

        if let Some(since) = ps.attempt_since {
            if t >= ps.retry_at {
                if t.saturating_sub(since) >= limits::REKEY_ATTEMPT_TIME {
                    // Whitepaper 6.4: give up after Rekey-Attempt-Time and drop what
                    // waited.
                    let ps = peer_mut!(self, i);
                    ps.attempt_since = None;
                    self.stats
                        .dropped_n(ControlDrop::HandshakeGaveUp, ps.staged.len());
                    ps.staged.clear();
                    self.stats.count(ControlEvent::HandshakeTimeouts);
                    if let Some(idx) = ps.pending_index.take() {
                        let slot = self.slot(idx);
                        self.pending.remove(&slot);
                    }
                } else {
                    self.initiate(i, now, alloc, "retry");
                }
            }
            return st;
        }
        let want = ps.shared.want_handshake.load(Ordering::Relaxed);
        // Sent data but heard nothing for Keepalive-Timeout + Rekey-Timeout. The
        // workers' times may be a little newer than `t`, which was read earlier:
        // differences saturate at zero.
        let dead = last_tx_data > 0
            && last_tx_data > last_rx
            && t.saturating_sub(last_tx_data) >= limits::KEEPALIVE_TIMEOUT + limits::REKEY_TIMEOUT;
        let rate_ok = ps.last_initiation == 0
            || t.saturating_sub(ps.last_initiation) >= limits::REKEY_TIMEOUT;
        if (want || dead || !ps.staged.is_empty()) && rate_ok {
            let why = if want {
                "rekey asked for"
            } else if dead {
                "no answer to data"
            } else {
                "packets waiting"
            };
            self.initiate(i, now, alloc, why);
            return st;
        }
        if !ps.can_send(t) {
            if ps.persistent_keepalive.is_some() && rate_ok && ps.shared.endpoint().is_some() {
                self.initiate(i, now, alloc, "persistent keepalive");
            }
            return st;
        }
        // Whitepaper 6.5: answer data with a keepalive if we had nothing to send for
        // Keepalive-Timeout.
        let passive = last_rx_data > 0
            && last_rx_data > last_tx
            && t.saturating_sub(last_rx_data) >= limits::KEEPALIVE_TIMEOUT;
        let persistent = ps
            .persistent_keepalive
            .is_some_and(|k| t.saturating_sub(last_tx.max(last_rx)) >= k);
        if passive || persistent {
            self.send_keepalive(i, now, alloc);
            // Control counts what it sends itself: the keepalive is in the traffic now.
            return self.activity_of(i);
        }
        st
    }

    /// When peer `i`'s timers next need to run, from what `run_timers` left at `t` and
    /// its traffic `st`; `None` for a peer that has nothing to wait for (no session, no
    /// handshake, nothing queued, no persistent keepalive).
    fn next_check(&self, i: usize, t: u64, st: &Totals) -> Option<u64> {
        let ps = peer!(self, i);
        if ps.attempt_since.is_some() {
            return Some(ps.retry_at);
        }
        let rate_ok_at = if ps.last_initiation == 0 {
            0
        } else {
            ps.last_initiation + limits::REKEY_TIMEOUT
        };
        let mut at = u64::MAX;
        if !ps.staged.is_empty() {
            at = at.min(rate_ok_at.max(t + timers::TICK));
        }
        let keys = ps.keypairs().next().is_some();
        if keys || ps.persistent_keepalive.is_some() {
            at = at.min(t + RECHECK);
        }
        for k in ps.keypairs() {
            let expires = (3 * limits::REJECT_AFTER_TIME).saturating_sub(k.age(t));
            at = at.min(t + expires);
        }
        if ps.can_send(t) {
            let (rx, tx) = (&st.rx, &st.tx);
            if rx.last_data > 0 && rx.last_data > tx.last {
                at = at.min(rx.last_data + limits::KEEPALIVE_TIMEOUT);
            }
            if tx.last_data > 0 && tx.last_data > rx.last {
                let dead = tx.last_data + limits::KEEPALIVE_TIMEOUT + limits::REKEY_TIMEOUT;
                at = at.min(dead.max(rate_ok_at));
            }
            if let Some(k) = ps.persistent_keepalive {
                at = at.min(tx.last.max(rx.last) + k);
            }
        }
        (at != u64::MAX).then_some(at)
    }

    /// Forget keypairs older than three times Reject-After-Time (whitepaper 6.3: keys are
    /// zeroed after 540 s); the memory is wiped when the last worker lets go.
    fn expire_keypairs(&mut self, i: usize, now: u64) {
        let limit = 3 * limits::REJECT_AFTER_TIME;
        let ps = peer_mut!(self, i);
        let mut gone = Vec::new();
        for slot in [&mut ps.previous, &mut ps.current, &mut ps.next] {
            if slot.as_ref().is_some_and(|k| k.age(now) >= limit) {
                gone.push(slot.take().unwrap());
            }
        }
        if ps.current.is_none() && !gone.is_empty() {
            self.shared.sessions.clear_sending(ps.shared.id);
        }
        for k in gone {
            self.shared.sessions.remove(k.local_index);
            self.stats.count(ControlEvent::KeypairsExpired);
        }
    }

    /// Packets waiting for a handshake or a next hop.
    pub fn queued(&self) -> usize {
        self.peers
            .iter()
            .flatten()
            .map(|p| p.staged.len())
            .sum::<usize>()
            + self.resolver.pending_frames()
            + self.handshakes.len()
    }

    /// Drop every queued packet and keypair (shutdown).
    pub fn clear(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            p.staged.clear();
            for k in p.keypairs() {
                self.shared.sessions.remove(k.local_index);
            }
            self.shared.sessions.clear_sending(p.shared.id);
            p.previous = None;
            p.current = None;
            p.next = None;
        }
        self.resolver = Resolver::default();
        self.handshakes.clear();
        self.out.clear();
    }
}

/// The destination of an IP packet.
fn dst_addr(ip: &[u8]) -> Option<IpAddr> {
    match ip.first()? >> 4 {
        4 => Ipv4Packet::new_checked(ip)
            .ok()
            .map(|p| IpAddr::V4(p.dst_addr())),
        6 => Ipv6Packet::new_checked(ip)
            .ok()
            .map(|p| IpAddr::V6(p.dst_addr())),
        _ => None,
    }
}

/// One peer as the operator sees it (UAPI, metrics).
pub struct PeerView<'a> {
    pub spec: &'a PeerSpec,
    pub peer: &'a Arc<Peer>,
    /// Its traffic, summed over the workers.
    pub activity: Totals,
    pub last_handshake: Option<SystemTime>,
    pub handshakes: u64,
}
