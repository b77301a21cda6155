//! The control plane: everything that is not per-packet, on the control thread.
//!
//! Contract: sans-IO. [`ControlPlane::handle`] takes a packet a worker handed over (its
//! `meta` says why) and [`ControlPlane::tick`] runs the timers; both take the time as an
//! argument and a function that allocates a packet buffer, and leave the frames to send
//! in [`ControlPlane::out`] (each with `meta::send_on(side)`). The caller moves those to
//! a worker's transmit ring (production) or wherever a test wants them.
//!
//! Each peer's own state and decisions are its engine's (`peer::PeerState`); this
//! module does what they ask with the shared parts: it allocates receiver indexes,
//! installs and retires keypairs in the shared [`Sessions`], sends the handshake
//! messages, the packets that waited for a session and the keepalives, runs the timer
//! wheel, answers ARP/ND and resolves next hops. [`ControlPlane::round`] (`round`) is
//! one turn of the control loop over all of it.

pub mod dh;
pub mod fragment;
pub mod frames;
pub mod host;
pub mod icmp;
pub mod load;
pub mod neighbor;
mod peer;
pub mod round;
pub mod stats;
pub mod timers;

use crate::noise::{CookieChecker, HandshakeError, Identity, PeerHandshake, Tai64N};
use dataplane::activity::{Table, Totals};
use dataplane::buf::PacketBuf;
use dataplane::counters::{Punt, WorkerCounters};
use dataplane::crypto::Backend;
use dataplane::meta;
use dataplane::session::{limits, Keypair, Peer, Sessions};
use dataplane::stages::{encrypt, Poll};
use dataplane::tables::{Shared, Side, Tables};
use dataplane::wire::wireguard::{self, CookieReply, MessageKind, Response};
use dataplane::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet};
use neighbor::Resolver;
pub use peer::STAGED_PER_PEER;
use peer::{Due, PeerState, Peers};
use rand_core::{CryptoRng, RngCore};
pub use round::{ControlIo, Round};
pub use stats::{ControlDrop, ControlEvent, ControlStats};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use x25519_dalek::{PublicKey, StaticSecret};

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

pub struct ControlPlane<B: PacketBuf, R: RngCore + CryptoRng> {
    identity: Identity,
    /// The private key `identity` was made from, for `wg showconf`; wiped on drop.
    private_key: crate::config::Key,
    shared: Arc<Shared>,
    /// By peer id and by public key (`plane/peer.rs`).
    peers: Peers<B>,
    /// Each allowed network and the peer id it belongs to (cryptokey routing is built
    /// from this).
    owners: HashMap<(IpAddr, u8), usize>,
    /// Inside `batch`: the tables are published once, at its end.
    batching: bool,
    /// Routes changed since the tables were last published.
    routes_dirty: bool,
    /// Networks whose owner changed since the tables were last published: the next
    /// publication changes only these, unless `rebuild` (at start: built from every
    /// peer).
    changed_nets: HashSet<(IpAddr, u8)>,
    rebuild: bool,
    /// Makes each published cryptokey routing (`dataplane::allowed`).
    allowed: dataplane::allowed::Writer,
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
    /// The Diffie-Hellman work of handshakes in flight, on threads or here
    /// (`plane/dh.rs`).
    dh: dh::DhWork,
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

/// The handshake state of each peer of a list, made before the control plane: each
/// holds the static-static Diffie-Hellman, precomputed as the kernel does (44 µs a
/// peer on the machines of docs/benchmarks.md, most of the time a start with many peers
/// takes).
pub struct Handshakes(Vec<Result<PeerHandshake, HandshakeError>>);

impl Handshakes {
    /// The handshakes with the peers of `specs` for the gateway's `private_key`, made on
    /// `threads` threads (the CPUs this thread may run on, before DPDK pins it to its
    /// lcore). A key with which no handshake is possible gives its error here and
    /// fails `ControlPlane::with_handshakes` as `ControlPlane::new` would.
    pub fn make(private_key: &[u8; 32], specs: &[PeerSpec], threads: usize) -> Handshakes {
        let identity = Identity::new(StaticSecret::from(*private_key));
        let one = |spec: &PeerSpec| handshake(&identity, spec);
        let threads = threads.clamp(1, 64);
        if threads == 1 || specs.len() < 2 {
            return Handshakes(specs.iter().map(one).collect());
        }
        let chunk = specs.len().div_ceil(threads);
        let made = std::thread::scope(|scope| {
            let parts: Vec<_> = specs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().expect("a handshake thread"))
                .collect()
        });
        Handshakes(made)
    }
}

/// The handshake with the peer of `spec`, for `identity`.
fn handshake(identity: &Identity, spec: &PeerSpec) -> Result<PeerHandshake, HandshakeError> {
    PeerHandshake::new(
        identity,
        PublicKey::from(spec.public_key),
        spec.preshared_key.as_ref(),
    )
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
        let handshakes = Handshakes::make(private_key, specs, 1);
        Self::with_handshakes(private_key, specs, handshakes, shared, rng)
    }

    /// [`ControlPlane::new`] with the handshakes of `specs` made beforehand
    /// ([`Handshakes::make`], for the same key and specs).
    pub fn with_handshakes(
        private_key: &[u8; 32],
        specs: &[PeerSpec],
        handshakes: Handshakes,
        shared: Arc<Shared>,
        rng: R,
    ) -> Result<Self, String> {
        assert_eq!(
            handshakes.0.len(),
            specs.len(),
            "handshakes for these specs"
        );
        let mut plane = ControlPlane {
            identity: Identity::new(StaticSecret::from(*private_key)),
            private_key: crate::config::Key::from_bytes(*private_key),
            activity: shared.activity.writer(),
            shared,
            peers: Peers::default(),
            owners: HashMap::new(),
            batching: false,
            routes_dirty: false,
            changed_nets: HashSet::new(),
            rebuild: true,
            allowed: dataplane::allowed::Writer::new(dpdk_sys::eal_running()),
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
            dh: dh::DhWork::default(),
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
        for (i, (spec, hs)) in specs.iter().zip(handshakes.0).enumerate() {
            plane
                .insert_peer(spec.clone(), hs)
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
        let hs = handshake(&self.identity, &spec);
        let id = self.insert_peer(spec, hs)?;
        self.routes_changed();
        Ok(id)
    }

    fn insert_peer(
        &mut self,
        spec: PeerSpec,
        hs: Result<PeerHandshake, HandshakeError>,
    ) -> Result<u32, String> {
        if self.peers.id_of(&spec.public_key).is_some() {
            return Err("public_key: this peer exists already".into());
        }
        let hs = hs.map_err(|e| format!("public_key: {e}"))?;
        let max = self.sessions().max_peers();
        let id = self
            .peers
            .free_id(max)
            .ok_or_else(|| format!("no room: wgdp holds at most {max} peers"))?;
        for &net in &spec.allowed_ips {
            self.own(net, id);
        }
        let shared = Arc::new(Peer::new(id as u32, spec.endpoint));
        let base = self.shared.activity.total(id as u32);
        let peer = PeerState::new(spec, shared, base, hs);
        let keepalive = peer.has_persistent_keepalive();
        self.peers.insert(id, max, peer);
        // A reused id's old deadline is not this peer's; one with a persistent keepalive
        // has its timers run at the next tick.
        self.timers.disarm(id as u32);
        if keepalive {
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
        let Some((id, ps)) = self.peers.remove(public_key) else {
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
        self.stats.dropped_n(ControlDrop::PeerRemoved, ps.staged());
        self.timers.disarm(id as u32);
        self.routes_changed();
        true
    }

    /// Peer `id` owns `net` now.
    fn own(&mut self, net: (IpAddr, u8), id: usize) {
        self.owners.insert(net, id);
        self.changed_nets.insert(net);
    }

    /// Forget that peer `id` owns `nets`.
    fn disown(&mut self, id: usize, nets: &[(IpAddr, u8)]) {
        for net in nets {
            if self.owners.get(net) == Some(&id) {
                self.owners.remove(net);
                self.changed_nets.insert(*net);
            }
        }
    }

    /// Changes a peer in place (preshared key, endpoint, allowed IPs, keepalive),
    /// keeping its sessions. A new preshared key applies from the next handshake.
    /// False if there is no such peer.
    pub fn update_peer(&mut self, spec: PeerSpec) -> bool {
        let Some(id) = self.peers.id_of(&spec.public_key) else {
            return false;
        };
        let ps = self.peers.live_mut(id);
        if ps.spec == spec {
            return true;
        }
        let old = ps.reconfigure(spec);
        self.wake(id);
        if old.allowed_ips != self.peers.live(id).spec.allowed_ips {
            self.disown(id, &old.allowed_ips);
            let nets = self.peers.live(id).spec.allowed_ips.clone();
            for net in nets {
                self.own(net, id);
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
        self.peers.by_key(public_key).map(|p| &p.spec)
    }

    /// The public key of the peer that owns network `net` among its allowed IPs.
    pub fn owner_of(&self, net: (IpAddr, u8)) -> Option<&[u8; 32]> {
        let &id = self.owners.get(&net)?;
        self.peers.get(id).map(|p| &p.spec.public_key)
    }

    /// Replaces the gateway's private key. Every session and handshake in progress is
    /// dropped, since they were made with the old key.
    pub fn set_private_key(&mut self, private_key: &[u8; 32]) {
        self.identity = Identity::new(StaticSecret::from(*private_key));
        self.private_key = crate::config::Key::from_bytes(*private_key);
        let identity = &self.identity;
        let mut broken = Vec::new();
        for ps in self.peers.iter_mut() {
            if ps.hs.set_identity(identity).is_err() {
                broken.push(ps.spec.public_key);
            }
        }
        self.reset_sessions(false);
        // A peer whose key is now our own cannot be talked to; it goes.
        for key in broken {
            self.remove_peer(&key);
        }
    }

    /// Drops every session and handshake under way, and the waiting packets if
    /// `staged`.
    fn reset_sessions(&mut self, staged: bool) {
        for ps in self.peers.iter_mut() {
            for k in ps.reset(staged) {
                self.shared.sessions.remove(k.local_index);
            }
            self.shared.sessions.clear_sending(ps.shared.id);
        }
        self.pending.clear();
    }

    /// The configured peers.
    pub fn peer_specs(&self) -> impl Iterator<Item = &PeerSpec> {
        self.peers.iter().map(|p| &p.spec)
    }

    /// What an operator sees of each peer.
    pub fn peer_views(&self) -> impl Iterator<Item = PeerView<'_>> {
        self.peers.iter().map(|p| self.view(p))
    }

    /// What an operator sees of each peer whose id is `from` or more, in the order of
    /// `peer_views` (by id); the ids below `from` cost nothing. A streamed `wg show`
    /// resumes here.
    pub fn peer_views_from(&self, from: u32) -> impl Iterator<Item = PeerView<'_>> {
        self.peers.iter_from(from as usize).map(|p| self.view(p))
    }

    /// What an operator sees of each peer that has a session, a handshake under way,
    /// packets waiting or a persistent keepalive: the peers whose timers are armed.
    /// Costs a scan of one word per peer id, and a look at those peers only.
    pub fn active_peer_views(&self) -> impl Iterator<Item = PeerView<'_>> {
        self.timers
            .armed_peers()
            .filter_map(|i| self.peers.get(i as usize))
            .map(|p| self.view(p))
    }

    /// `active_peer_views` from peer id `from` on: the peers below cost a skip each
    /// (the route export's sweeps resume here, `export::Export::poll`).
    pub fn active_peer_views_from(&self, from: u32) -> impl Iterator<Item = PeerView<'_>> {
        self.timers
            .armed_peers()
            .skip_while(move |&i| i < from)
            .filter_map(|i| self.peers.get(i as usize))
            .map(|p| self.view(p))
    }

    /// Peers configured.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
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
        let base = self.peers.live(i).activity_base;
        self.shared.activity.total(i as u32).since(base)
    }

    /// The tables the workers use now.
    pub fn current_tables(&self) -> Arc<Tables> {
        self.tables()
    }

    /// Replaces the port tables (addresses, routes, listen port, MTU) and keeps the
    /// peers' routes (the allowed IPs of `base` are not looked at).
    pub fn set_port_tables(&mut self, base: Tables) {
        let t = base.with_allowed(self.tables().allowed.clone());
        self.shared.tables.store(Arc::new(t));
        self.routes_changed();
    }

    /// Publishes the tables with cryptokey routing as the peers have it now: the
    /// published routes with the changed networks changed, at a cost in proportion to
    /// the changes (`dataplane::allowed`), or built anew from every peer at start.
    fn publish_tables(&mut self) {
        let current = self.tables();
        let live = |id: &usize| self.peers.get(*id).is_some();
        let allowed = if self.rebuild {
            let routes: Vec<_> = self
                .owners
                .iter()
                .filter(|(_, id)| live(id))
                .map(|(&(addr, len), &id)| (addr, len, id as u32))
                .collect();
            self.allowed.build(routes)
        } else {
            let changes: Vec<_> = self
                .changed_nets
                .iter()
                .map(|&(addr, len)| {
                    let owner = self.owners.get(&(addr, len)).filter(|id| live(id));
                    (addr, len, owner.map(|&id| id as u32))
                })
                .collect();
            self.allowed.apply(&current.allowed, &changes)
        };
        for note in self.allowed.take_notes() {
            tracing::warn!("{note}");
        }
        self.changed_nets.clear();
        self.rebuild = false;
        let t = current.with_allowed(allowed);
        drop(current);
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
                if dst_addr(pkt.data()).and_then(|d| t.allowed.lookup(d)) == Some(id) {
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
            self.stage(peer as usize, b, now, alloc);
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
            .map(|p| p as usize);
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
    ///
    /// Their Diffie-Hellman work runs on the handshake threads (`plane/dh.rs`,
    /// [`ControlPlane::set_handshake_threads`]) while the round goes on; the results
    /// that are back are applied here, in the order the messages came, before and after
    /// new messages are taken (and, with no threads, as each message is taken). A
    /// message stays in the queue while the threads have their fill of work. Applied
    /// results count in the number returned.
    pub fn poll_handshakes(&mut self, now: Now, alloc: Alloc<'_, B>, budget: usize) -> usize {
        let mut done = self.apply_handshake_results(now, alloc);
        let under_load = self.load.update(self.handshakes.len(), now.mono);
        let mut taken = 0;
        while taken < budget && self.dh.has_room() {
            let Some(pkt) = self.handshakes.pop_front() else {
                break;
            };
            if under_load {
                self.stats.count(ControlEvent::UnderLoad);
            }
            self.handle_handshake(pkt, now, alloc, under_load);
            taken += 1;
            done += self.apply_handshake_results(now, alloc);
        }
        done += taken + self.apply_handshake_results(now, alloc);
        self.publish_neighbors();
        done
    }

    /// Runs the Diffie-Hellman work of handshakes where `work` says from now on (a
    /// new control plane does it on the control thread; `dh::DhWork::with_threads`).
    /// Work in flight is finished and applied first.
    pub fn set_handshake_work(&mut self, work: dh::DhWork, now: Now, alloc: Alloc<'_, B>) {
        while self.dh.in_flight() > 0 {
            if self.apply_handshake_results(now, alloc) == 0 {
                std::thread::yield_now();
            }
        }
        self.dh = work;
    }

    /// Threads doing the Diffie-Hellman work of handshakes (0: the control thread).
    pub fn handshake_threads(&self) -> usize {
        self.dh.threads()
    }

    /// Handshake messages whose Diffie-Hellman work is under way.
    pub fn handshakes_in_flight(&self) -> usize {
        self.dh.in_flight()
    }

    /// Whether results of handshake work wait to be applied: a control loop about to
    /// sleep must not (see `dh::Notify`).
    pub fn handshake_results_ready(&self) -> bool {
        self.dh.ready()
    }

    /// Applies the results of handshake work that are back, in order; how many.
    fn apply_handshake_results(&mut self, now: Now, alloc: Alloc<'_, B>) -> usize {
        let mut n = 0;
        while let Some((step, done)) = self.dh.next_result() {
            n += 1;
            match (step, done) {
                (
                    dh::Step::Open {
                        dg,
                        now: at,
                        our_key,
                    },
                    dh::Done::Opened(r),
                ) => self.on_initiation_opened(r, our_key, dg, at),
                (
                    dh::Step::Answer {
                        dg,
                        now: at,
                        peer,
                        generation,
                    },
                    dh::Done::Answered(r),
                ) => self.on_initiation_answered(r, peer, generation, dg, at, now, alloc),
                (
                    dh::Step::Complete {
                        dg,
                        now: at,
                        peer,
                        generation,
                        receiver,
                    },
                    dh::Done::Completed(r),
                ) => self.on_response_done(r, peer, generation, receiver, dg, at, now, alloc),
                _ => unreachable!("a job's result is of its step's kind"),
            }
        }
        n
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
                self.on_initiation(&msg, dg, now)
            }
            Ok(MessageKind::Response) => {
                let msg = msg.to_vec();
                self.on_response(&msg, dg, now)
            }
            Ok(MessageKind::CookieReply) => {
                let receiver = CookieReply::new_checked(msg).map(|c| c.receiver());
                let peer = receiver.ok().and_then(|r| self.pending_peer(r));
                match peer {
                    Some(i) => {
                        if let Err(e) = self
                            .peers
                            .live_mut(i)
                            .hs
                            .consume_cookie_reply(msg, now.dur())
                        {
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

    /// An initiation (mac1, and under load mac2 and its source's rate, checked): the
    /// opening of its static key goes to the handshake work (`on_initiation_opened`
    /// follows).
    fn on_initiation(&mut self, msg: &[u8], dg: frames::Datagram, now: Now) {
        match self.identity.initiation_job(msg) {
            Ok(job) => {
                let our_key = *self.identity.public_key().as_bytes();
                self.dh
                    .submit(dh::Step::Open { dg, now, our_key }, dh::Work::Open(job));
            }
            Err(e) => self.error(e),
        }
    }

    /// The initiation's static key is open: the peer is looked up by it, and the rest
    /// of the initiation and our response go to the handshake work with a fresh
    /// ephemeral key (`on_initiation_answered` follows). An opening made with a
    /// private key we no longer have is dropped (`handshake_outdated`).
    fn on_initiation_opened(
        &mut self,
        opened: Result<crate::noise::InitiationInfo, HandshakeError>,
        our_key: [u8; 32],
        dg: frames::Datagram,
        now: Now,
    ) {
        if our_key != *self.identity.public_key().as_bytes() {
            return self.stats.dropped(ControlDrop::HandshakeOutdated);
        }
        let info = match opened {
            Ok(i) => i,
            Err(e) => return self.error(e),
        };
        let Some(i) = self.peers.id_of(info.initiator_static().as_bytes()) else {
            return self.error(HandshakeError::UnknownPeer);
        };
        let ephemeral = crate::noise::DhKey::random(&mut self.rng);
        let ps = self.peers.live(i);
        let generation = ps.generation();
        match ps.hs.answer_job(info, ephemeral) {
            Ok(job) => self.dh.submit(
                dh::Step::Answer {
                    dg,
                    now,
                    peer: i,
                    generation,
                },
                dh::Work::Answer(job),
            ),
            Err(e) => self.error(e),
        }
    }

    /// The initiation of peer `i` (generation `generation`), taken at `at`, is
    /// authenticated and our response's keys are made: the replay and flood checks
    /// against the peer's state now, then the response goes straight to the source MAC,
    /// IP and port of the initiation, and the new keypair is installed for receiving
    /// and kept as the peer's `next`. A result for a peer removed or changed meanwhile
    /// is dropped (`handshake_outdated`).
    #[allow(clippy::too_many_arguments)]
    fn on_initiation_answered(
        &mut self,
        answered: Result<crate::noise::Answer, HandshakeError>,
        i: usize,
        generation: u64,
        dg: frames::Datagram,
        at: Now,
        now: Now,
        alloc: Alloc<'_, B>,
    ) {
        if self.peers.get(i).map(|p| p.generation()) != Some(generation) {
            return self.stats.dropped(ControlDrop::HandshakeOutdated);
        }
        let answer = match answered {
            Ok(a) => a,
            Err(e) => return self.error(e),
        };
        let local = self.new_index();
        let ps = self.peers.live_mut(i);
        let (reply, session) = match ps.hs.finish_answer(answer, local, at.dur()) {
            Ok(r) => r,
            Err(e) => return self.error(e),
        };
        let kp = Arc::new(Keypair::new(
            ps.shared.clone(),
            session.local_index,
            session.remote_index,
            &session.send_key,
            &session.recv_key,
            false,
            now.mono,
        ));
        let old_next = ps.responder_session(kp.clone());
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
        self.peers.live_mut(i).completed(now.wall);
        self.wake(i);
        self.send_udp(dg.src, Some(dg.src_mac), &reply, now, alloc);
    }

    /// A response (mac1, and under load mac2 and its source's rate, checked): found by
    /// its receiver index, checked against our initiation, and its key exchange goes to
    /// the handshake work (`on_response_done` follows).
    fn on_response(&mut self, msg: &[u8], dg: frames::Datagram, now: Now) {
        let receiver = match Response::new_checked(msg) {
            Ok(r) => r.receiver(),
            Err(_) => return self.error(HandshakeError::Malformed),
        };
        let Some(i) = self.pending_peer(receiver) else {
            return self.error(HandshakeError::WrongIndex);
        };
        let ps = self.peers.live(i);
        let generation = ps.generation();
        match ps.hs.response_job(&self.identity, msg) {
            Ok(job) => self.dh.submit(
                dh::Step::Complete {
                    dg,
                    now,
                    peer: i,
                    generation,
                    receiver,
                },
                dh::Work::Complete(job),
            ),
            Err(e) => self.error(e),
        }
    }

    /// The response to our initiation `receiver` to peer `i`, taken at `at`, gave its
    /// keys: if the initiation is still pending, the keypair is installed for receiving
    /// and as the sending keypair and becomes `current` (the old `current` becomes
    /// `previous`; the old `previous` and any `next` are removed), and the staged
    /// packets go out, or a keepalive if there are none, so the responder can confirm.
    /// A result for a peer removed or changed meanwhile is dropped
    /// (`handshake_outdated`).
    #[allow(clippy::too_many_arguments)]
    fn on_response_done(
        &mut self,
        done: Result<crate::noise::Completion, HandshakeError>,
        i: usize,
        generation: u64,
        receiver: u32,
        dg: frames::Datagram,
        at: Now,
        now: Now,
        alloc: Alloc<'_, B>,
    ) {
        if self.peers.get(i).map(|p| p.generation()) != Some(generation) {
            return self.stats.dropped(ControlDrop::HandshakeOutdated);
        }
        if self.pending_peer(receiver) != Some(i) {
            // Another response to the same initiation came first, or the initiation
            // was replaced: as if this one had come after.
            return self.error(HandshakeError::WrongIndex);
        }
        let done = match done {
            Ok(d) => d,
            Err(e) => return self.error(e),
        };
        let ps = self.peers.live_mut(i);
        let session = match ps.hs.finish_response(done, at.dur()) {
            Ok(s) => s,
            Err(e) => return self.error(e),
        };
        let slot = self.slot(receiver);
        self.pending.remove(&slot);
        let ps = self.peers.live_mut(i);
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
        for old in ps.initiator_session(kp.clone()) {
            self.shared.sessions.remove(old.local_index);
        }
        if self.shared.sessions.install(kp.clone()).is_err() {
            self.stats.dropped(ControlDrop::IndexTaken);
            return;
        }
        self.shared.sessions.set_sending(kp);
        self.stats.count(ControlEvent::HandshakesCompleted);
        self.peers.live_mut(i).completed(now.wall);
        self.wake(i);
        // Send what waited; with nothing waiting, a keepalive confirms the keypair to
        // the responder (whitepaper 6.4 / wireguard-go `SendKeepalive` after a response).
        if self.peers.live(i).staged() == 0 {
            self.send_keepalive(i, now, alloc);
        } else {
            self.flush_staged(i, now, alloc);
        }
    }

    /// Start (or retry) a handshake with peer `i`.
    fn initiate(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>, why: &'static str) {
        let st = self.activity_of(i);
        let ps = self.peers.live_mut(i);
        tracing::debug!(
            peer = %crate::keys::encode(&ps.spec.public_key),
            id = i,
            why,
            since_rx_ms = now.mono.saturating_sub(st.rx.last) / 1_000_000,
            since_tx_data_ms = now.mono.saturating_sub(st.tx.last_data) / 1_000_000,
            "initiating a handshake"
        );
        let Some(endpoint) = ps.shared.endpoint() else {
            ps.shared.want_handshake.store(false, Ordering::Relaxed);
            return;
        };
        if let Some(old) = ps.pending_index.take() {
            let slot = self.slot(old);
            self.pending.remove(&slot);
        }
        let local = self.new_index();
        let wall = Tai64N::from_system_time(now.wall);
        let ps = self.peers.live_mut(i);
        let msg =
            match ps
                .hs
                .create_initiation(&self.identity, local, wall, now.dur(), &mut self.rng)
            {
                Ok(m) => m,
                Err(e) => return self.error(e),
            };
        let jitter = (self.rng.next_u32() % RETRY_JITTER_MS) as u64 * 1_000_000;
        let retry_at = now.mono + limits::REKEY_TIMEOUT + jitter;
        ps.initiation_sent(local, now.mono, retry_at);
        let slot = self.slot(local);
        self.pending.insert(slot, (local, i));
        self.timers.arm(i as u32, retry_at);
        self.stats.count(ControlEvent::InitiationsSent);
        self.send_udp(endpoint, None, &msg, now, alloc);
    }

    /// Queue a packet for a peer without a usable session, and make sure a handshake
    /// is under way.
    fn stage(&mut self, i: usize, pkt: B, now: Now, alloc: Alloc<'_, B>) {
        let Some(ps) = self.peers.get_mut(i) else {
            self.stats.dropped(ControlDrop::PeerGone);
            return;
        };
        if ps.stage(pkt) {
            self.stats.dropped(ControlDrop::StagedFull);
        }
        self.timers.arm_by(i as u32, 0);
        if ps.can_send(now.mono) && self.shared.sessions.sending(ps.shared.id).is_some() {
            // A keypair became usable after the worker looked.
            self.flush_staged(i, now, alloc);
        } else if !ps.attempting() {
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
        let ps = self.peers.live_mut(i);
        let id = ps.shared.id;
        let pkts: Vec<B> = ps
            .take_staged()
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
        b.set_meta(meta::for_peer(self.peers.live(i).shared.id));
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
            if self.peers.get(i).is_none() {
                continue;
            }
            let st = self.run_timers(i, now, alloc);
            if let Some(at) = self.peers.live(i).next_check(t, &st) {
                self.timers.arm_by(i as u32, at);
            }
        }
        due.clear();
        self.due = due;
        let tables = self.tables();
        self.resolver.tick(&tables, t, alloc, &mut self.out);
        self.publish_neighbors();
    }

    /// Peer `i`'s timers (whitepaper 6), at `now`: its engine decides
    /// (`PeerState::on_timers`), this does what it asks; returns what the workers
    /// counted of its traffic, for `PeerState::next_check`.
    fn run_timers(&mut self, i: usize, now: Now, alloc: Alloc<'_, B>) -> Totals {
        let t = now.mono;
        let ps = self.peers.live_mut(i);
        let expired = ps.expire_keypairs(t);
        if !expired.is_empty() && !ps.has_current() {
            self.shared.sessions.clear_sending(ps.shared.id);
        }
        let retired = ps.promote_confirmed();
        for k in expired.iter().chain(retired.as_ref()) {
            self.shared.sessions.remove(k.local_index);
        }
        self.stats
            .events
            .add(ControlEvent::KeypairsExpired, expired.len() as u64);
        let st = self.activity_of(i);
        match self.peers.live_mut(i).on_timers(t, &st) {
            Due::Nothing => st,
            Due::Initiate(why) => {
                self.initiate(i, now, alloc, why);
                st
            }
            Due::GiveUp { dropped, pending } => {
                self.stats.dropped_n(ControlDrop::HandshakeGaveUp, dropped);
                self.stats.count(ControlEvent::HandshakeTimeouts);
                if let Some(idx) = pending {
                    let slot = self.slot(idx);
                    self.pending.remove(&slot);
                }
                st
            }
            Due::Keepalive => {
                self.send_keepalive(i, now, alloc);
                // Control counts what it sends itself: the keepalive is in the traffic now.
                self.activity_of(i)
            }
        }
    }

    /// Packets waiting for a handshake or a next hop.
    pub fn queued(&self) -> usize {
        self.peers.iter().map(|p| p.staged()).sum::<usize>()
            + self.resolver.pending_frames()
            + self.handshakes.len()
    }

    /// Drop every queued packet and keypair (shutdown).
    pub fn clear(&mut self) {
        self.reset_sessions(true);
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
