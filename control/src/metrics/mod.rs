//! What the gateway counts, published for Prometheus and DPDK telemetry.
//!
//! Contract:
//! - The control thread takes a [`Snapshot`] (plain numbers copied out of the workers'
//!   counters, the peers' stats, its own counters, the pools and the ports) about twice
//!   a second and hands it to [`Publisher::publish`]. Publishing is one pointer swap: no
//!   lock, no rendering, nothing a scraper can slow down.
//! - Readers ([`Reader`], cloned freely) always see one whole snapshot, the latest; a
//!   scrape never mixes two.
//! - [`serve`] answers `GET /metrics` on its own thread, rendering the latest snapshot
//!   with [`render`]; [`register_telemetry`] answers `/wgdp/...` commands on DPDK's
//!   telemetry socket from the same snapshots. Both stop when their handle drops. No
//!   client can stop them: garbage gets an error status, and `serve` answers up to
//!   [`MAX_CONNECTIONS`] clients at once, each for at most [`CONNECTION_TIMEOUT`], so
//!   one that stalls holds up nobody.
//! - Counters are totals since the gateway started (ports: since they started); rates
//!   and ratios (busy share, packets per vector) are the reader's arithmetic, so that
//!   Prometheus' `rate()` works on them.

mod http;
mod render;
mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use dataplane::activity::Totals;
use dataplane::counters::{Stage, WorkerCounters};
use dpdk_sys::{Mempool, PortStats};

use crate::plane::ControlStats;

pub use http::{serve, Handle, CONNECTION_TIMEOUT, IO_TIMEOUT, MAX_CONNECTIONS, MAX_REQUEST};
pub use render::render;
pub use telemetry::{register_telemetry, TelemetryCommands};

/// Everything the metrics show, as plain numbers taken at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When the control thread took it.
    pub taken_at: SystemTime,
    /// `dpdk_sys::version()`, e.g. `DPDK 22.11.4`.
    pub dpdk_version: String,
    /// TSC clocks per second (`rte_get_tsc_hz`), the unit of the stage clocks; 0 unknown.
    pub tsc_hz: u64,
    /// The peers with series of their own: every peer, or with more peers than
    /// `metrics.peer_series`, that many of the busiest with a session (`select_peers`).
    pub peers: Vec<PeerSnapshot>,
    /// Peers configured, and those with a session, a handshake under way or a
    /// persistent keepalive.
    pub peers_configured: u64,
    pub peers_active: u64,
    /// Workers, and the control thread's own encrypt runs if it reports them as a worker
    /// (lcore label `control`).
    pub workers: Vec<WorkerSnapshot>,
    /// Control-thread counters by name (`initiations_sent`, `keepalives_sent`, ...).
    /// Names are free-form snake_case; [`Snapshot::set_control`] fills in
    /// [`ControlStats`], and the gateway may add its own (ring drops, ARP/ND).
    pub control: BTreeMap<String, u64>,
    /// What the control thread dropped, by reason ([`ControlStats::drops`], and the
    /// gateway's own: full rings, unresolved next hops, a full TAP queue).
    pub control_drops: BTreeMap<String, u64>,
    /// Handshake messages the control thread refused, by reason.
    pub handshake_errors: BTreeMap<String, u64>,
    pub mempools: Vec<MempoolSnapshot>,
    /// The ports, labelled `outside` and `inside`.
    pub ports: Vec<PortSnapshot>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            taken_at: SystemTime::UNIX_EPOCH,
            dpdk_version: String::new(),
            tsc_hz: 0,
            peers: Vec::new(),
            peers_configured: 0,
            peers_active: 0,
            workers: Vec::new(),
            control: BTreeMap::new(),
            control_drops: BTreeMap::new(),
            handshake_errors: BTreeMap::new(),
            mempools: Vec::new(),
            ports: Vec::new(),
        }
    }
}

impl Snapshot {
    /// An empty snapshot taken now.
    pub fn new(dpdk_version: impl Into<String>) -> Snapshot {
        Snapshot {
            taken_at: SystemTime::now(),
            dpdk_version: dpdk_version.into(),
            ..Snapshot::default()
        }
    }

    /// Keeps at most `limit` of `peers` (every peer when there are no more): the busiest
    /// by bytes both ways, in id order. What bounds the per-peer series, so that a
    /// gateway of a million peers does not give Prometheus six million series
    /// (docs/operations.md, "Metrics").
    pub fn select_peers(mut peers: Vec<PeerSnapshot>, limit: usize) -> Vec<PeerSnapshot> {
        if peers.len() > limit {
            let bytes = |p: &PeerSnapshot| std::cmp::Reverse(p.rx_bytes + p.tx_bytes);
            if limit > 0 {
                peers.select_nth_unstable_by_key(limit - 1, bytes);
            }
            peers.truncate(limit);
        }
        peers.sort_unstable_by_key(|p| p.id);
        peers
    }

    /// Copies every [`ControlStats`] counter into [`Snapshot::control`] (events),
    /// [`Snapshot::control_drops`] and [`Snapshot::handshake_errors`], each under its
    /// reason's name.
    pub fn set_control(&mut self, stats: &ControlStats) {
        for (name, value) in stats.events.snapshot() {
            self.control.insert(name.to_owned(), value);
        }
        for (name, value) in stats.drops.snapshot() {
            self.control_drops.insert(name.to_owned(), value);
        }
        for (&reason, &count) in &stats.handshake_errors {
            self.handshake_errors.insert(reason.to_owned(), count);
        }
    }
}

/// One peer's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer's slot, as in `dataplane::session::Peer::id`.
    pub id: u32,
    /// Base64, as in the configuration and `wg show`.
    pub public_key: String,
    /// Authenticated transport messages, keepalives included.
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Unix time in seconds of the latest completed handshake; 0 if none.
    pub latest_handshake: u64,
    /// Handshakes completed with this peer.
    pub handshakes: u64,
}

impl PeerSnapshot {
    /// The traffic figures of `activity`; `latest_handshake` and `handshakes` are left 0
    /// for the caller, who knows them.
    pub fn new(id: u32, public_key: &[u8; 32], activity: &Totals) -> PeerSnapshot {
        PeerSnapshot {
            id,
            public_key: crate::keys::encode(public_key),
            rx_packets: activity.rx.packets,
            tx_packets: activity.tx.packets,
            rx_bytes: activity.rx.bytes,
            tx_bytes: activity.tx.bytes,
            latest_handshake: 0,
            handshakes: 0,
        }
    }
}

/// One worker's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The `lcore` label: the lcore id, or `control` for the control thread.
    pub lcore: String,
    pub traffic: TrafficSnapshot,
    /// Every drop reason of every stage, zeros included, so that each series exists
    /// from the first scrape on.
    pub drops: Vec<DropCount>,
    pub punts: Vec<PuntCount>,
    /// Work done on what hosts left to their cards, by event, zeros included.
    pub offload: Vec<EventCount>,
    /// AEAD work handed to and done for other workers, by event, zeros included.
    pub spread: Vec<EventCount>,
    /// Runtime accounting, every stage (`dataplane::counters::Stage`).
    pub stages: Vec<StageCount>,
}

/// What one stage of a worker did (docs/architecture.md, "Runtime accounting").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageCount {
    pub stage: &'static str,
    pub calls: u64,
    pub vectors: u64,
    pub packets: u64,
    /// TSC clocks; [`Snapshot::tsc_hz`] of them make a second.
    pub clocks: u64,
    /// Part of another stage's clocks (the crypto backend's share).
    pub share: bool,
}

/// How often one kind of event happened in a worker (`dataplane::counters::OffloadEvent`,
/// `SpreadEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCount {
    pub event: &'static str,
    pub count: u64,
}

/// Packets a stage dropped for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCount {
    /// `classify`, `decrypt`, `route`, `offload`, `encrypt` or `tx`.
    pub stage: &'static str,
    pub reason: &'static str,
    pub count: u64,
}

/// Packets handed to the control thread for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PuntCount {
    pub reason: &'static str,
    pub count: u64,
}

/// A copy of `dataplane::counters::Traffic`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    pub rx_outside: u64,
    pub rx_inside: u64,
    pub tx_outside: u64,
    pub tx_inside: u64,
    pub decrypted: u64,
    pub encrypted: u64,
    pub keepalives_rx: u64,
    pub from_control: u64,
    pub vectors: u64,
    pub vector_packets: u64,
    pub busy_polls: u64,
    pub polls: u64,
}

impl WorkerSnapshot {
    pub fn new(lcore: impl Into<String>, c: &WorkerCounters) -> WorkerSnapshot {
        let t = &c.traffic;
        let traffic = TrafficSnapshot {
            rx_outside: t.rx_outside.get(),
            rx_inside: t.rx_inside.get(),
            tx_outside: t.tx_outside.get(),
            tx_inside: t.tx_inside.get(),
            decrypted: t.decrypted.get(),
            encrypted: t.encrypted.get(),
            keepalives_rx: t.keepalives_rx.get(),
            from_control: t.from_control.get(),
            vectors: t.vectors.get(),
            vector_packets: t.vector_packets.get(),
            busy_polls: t.busy_polls.get(),
            polls: t.polls.get(),
        };
        let drops = c
            .classify
            .snapshot()
            .map(in_stage("classify"))
            .chain(c.decrypt.snapshot().map(in_stage("decrypt")))
            .chain(c.route.snapshot().map(in_stage("route")))
            .chain(c.offload.snapshot().map(in_stage("offload")))
            .chain(c.encrypt.snapshot().map(in_stage("encrypt")))
            .chain(c.tx.snapshot().map(in_stage("tx")))
            .collect();
        let punts = c
            .punt
            .snapshot()
            .map(|(reason, count)| PuntCount { reason, count })
            .collect();
        WorkerSnapshot {
            lcore: lcore.into(),
            traffic,
            drops,
            punts,
            offload: c
                .offload_events
                .snapshot()
                .map(|(event, count)| EventCount { event, count })
                .collect(),
            spread: c
                .spread
                .snapshot()
                .map(|(event, count)| EventCount { event, count })
                .collect(),
            stages: Stage::ALL
                .iter()
                .map(|&st| {
                    let r = c.runtime.get(st);
                    StageCount {
                        stage: st.name(),
                        calls: r.calls.get(),
                        vectors: r.vectors.get(),
                        packets: r.packets.get(),
                        clocks: r.clocks.get(),
                        share: st.is_share(),
                    }
                })
                .collect(),
        }
    }
}

/// Makes a [`DropCount`] of `stage` from a `(reason, count)` of the counters' snapshot.
fn in_stage(stage: &'static str) -> impl Fn((&'static str, u64)) -> DropCount {
    move |(reason, count)| DropCount {
        stage,
        reason,
        count,
    }
}

/// A packet pool's fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MempoolSnapshot {
    pub name: String,
    pub capacity: u64,
    /// Mbufs allocated: in flight, in NIC rings, in rings between threads.
    pub in_use: u64,
}

impl MempoolSnapshot {
    pub fn new(pool: &Mempool) -> MempoolSnapshot {
        MempoolSnapshot {
            name: pool.name().to_owned(),
            capacity: pool.capacity().into(),
            in_use: pool.in_use_count().into(),
        }
    }
}

/// A port's DPDK counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSnapshot {
    /// `outside` or `inside`.
    pub name: String,
    pub stats: PortStats,
}

/// The control thread's end: publishes snapshots to every [`Reader`].
#[derive(Debug, Default)]
pub struct Publisher {
    latest: Arc<ArcSwap<Snapshot>>,
}

impl Publisher {
    /// Starts with an empty [`Snapshot::default`].
    pub fn new() -> Publisher {
        Publisher::default()
    }

    pub fn publish(&self, snapshot: Snapshot) {
        self.latest.store(Arc::new(snapshot));
    }

    pub fn reader(&self) -> Reader {
        Reader {
            latest: self.latest.clone(),
        }
    }
}

/// A view of the latest published [`Snapshot`], for any thread.
#[derive(Debug, Clone)]
pub struct Reader {
    latest: Arc<ArcSwap<Snapshot>>,
}

impl Reader {
    pub fn load(&self) -> Arc<Snapshot> {
        self.latest.load_full()
    }
}

#[cfg(test)]
mod tests;
