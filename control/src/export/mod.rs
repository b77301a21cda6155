//! What a routing daemon on the gateway host needs to know, given to it through the
//! kernel (`control_port.export`, docs/scale-out.md): a route through the control
//! port's TAP, in a kernel routing table of wgdp's own, for each allowed IP of each
//! peer with a live session; and each address to announce (the cluster's anycast
//! outside address) as a host address of the TAP, only while every worker polls. FRR
//! imports the table (`ip import-table`) and the TAP's address (`redistribute
//! connected`) and announces them over BGP.
//!
//! Contract: the control thread calls [`Export::poll`] on every loop and sleeps no
//! longer than [`Export::next_deadline`]. A poll costs at most one batch of
//! [`BATCH`] peers; the kernel is written by a thread of its own, which receives the
//! changes in order through a channel, so neither the control thread nor a worker ever
//! waits for netlink. Routes and addresses all belong to the TAP, so they leave the
//! kernel with it when the process ends, however it ends.
//!
//! The ports' connected networks are routed through the TAP in the table too, from the
//! start: FRR resolves its BGP and BFD neighbors on those links through them.
//!
//! A peer is *live* while it has a keypair (a handshake in the last Reject-After-Time
//! × 3, 540 s, after which its keypairs are gone) and sent us an authenticated packet
//! in the last Reject-After-Time (180 s): a peer whose traffic moved to another
//! gateway stops being announced here within 180 s.

pub mod netlink;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::plane::{ControlPlane, Now, PeerView};
use dataplane::buf::PacketBuf;
use netlink::{Op, Route};

/// Time between two sweeps of the peers, and between two looks at the workers.
pub const EVERY: u64 = 100_000_000;
/// Peers looked at per poll while a sweep is under way: about 0.6 ms of the control
/// thread (a peer's view, about 46 ns, docs/benchmarks.md "walk every peer", and the
/// diff of an unchanged peer, about 100 ns, examples/export_sweep).
pub const BATCH: usize = 4096;
/// Time between two polls of one sweep: a sweep of many peers takes at most about an
/// eighth of the control thread (10^6 active peers: 245 polls, 1.2 s).
const BATCH_GAP: u64 = 5_000_000;
/// Reject-After-Time (whitepaper 6.1, 180 s).
pub const RECEIVED_WITHIN: Duration = Duration::from_secs(180);
/// Keypairs are removed this long after their handshake (Reject-After-Time × 3).
pub const KEYPAIR_LIFE: Duration = Duration::from_secs(540);

/// Whether a peer's allowed IPs are announced (see the module documentation).
pub fn live(view: &PeerView<'_>, now: Now) -> bool {
    let keyed = view.last_handshake.is_some_and(|t| {
        now.wall
            .duration_since(t)
            .map_or(true, |age| age < KEYPAIR_LIFE)
    });
    let rx = view.activity.rx.last;
    keyed && rx > 0 && now.mono.saturating_sub(rx) < RECEIVED_WITHIN.as_nanos() as u64
}

/// The routes of the peers, diffed against the peers in sweeps. Sans-IO: the caller
/// gives the peers and takes the changes.
#[derive(Default)]
pub struct Routes {
    /// Peer id -> the routes it has in the table and the sweep that last saw it.
    peers: HashMap<u32, (Vec<Route>, u64)>,
    /// How many live peers claim each route (two at once only while a network moves
    /// between peers within one sweep).
    claims: HashMap<Route, u32>,
    sweep: u64,
    /// The next peer id to look at; `None` between sweeps.
    cursor: Option<u32>,
}

impl Routes {
    /// Starts a sweep unless one is under way.
    pub fn begin(&mut self) {
        if self.cursor.is_none() {
            self.sweep += 1;
            self.cursor = Some(0);
        }
    }

    pub fn sweeping(&self) -> bool {
        self.cursor.is_some()
    }

    /// The peer id the sweep goes on from.
    pub fn cursor(&self) -> u32 {
        self.cursor.unwrap_or(0)
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// One step of the sweep: `peers` are the peers from [`Routes::cursor`] on, in id
    /// order (id, live, allowed IPs); at most `budget` are looked at. When they run out
    /// the sweep ends, and peers it did not see (removed, or no longer active) lose
    /// their routes. Returns whether the sweep ended.
    pub fn step<'a>(
        &mut self,
        peers: impl Iterator<Item = (u32, bool, &'a [(IpAddr, u8)])>,
        budget: usize,
        ops: &mut Vec<Op>,
    ) -> bool {
        let Some(mut cursor) = self.cursor else {
            return true;
        };
        for (looked, (id, is_live, nets)) in peers.enumerate() {
            if looked == budget {
                self.cursor = Some(cursor);
                return false;
            }
            cursor = id.saturating_add(1);
            if !is_live {
                continue;
            }
            let sweep = self.sweep;
            // The common case, a peer seen as it was: one lookup, nothing allocated.
            if let Some((have, seen)) = self.peers.get_mut(&id) {
                let same = have.len() == nets.len()
                    && have
                        .iter()
                        .zip(nets)
                        .all(|(r, &(addr, len))| r.addr == addr && r.len == len);
                if same {
                    *seen = sweep;
                    continue;
                }
            }
            let want: Vec<Route> = nets
                .iter()
                .map(|&(addr, len)| Route { addr, len })
                .collect();
            let old = self.peers.insert(id, (want.clone(), sweep));
            let old = old.map(|(r, _)| r).unwrap_or_default();
            if old != want {
                for r in old.iter().filter(|r| !want.contains(r)) {
                    unclaim(&mut self.claims, *r, ops);
                }
                for r in want.iter().filter(|r| !old.contains(r)) {
                    claim(&mut self.claims, *r, ops);
                }
            }
        }
        // The end of the peers: whoever this sweep did not see goes.
        let sweep = self.sweep;
        let gone: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, (_, seen))| *seen != sweep)
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            if let Some((routes, _)) = self.peers.remove(&id) {
                for r in routes {
                    unclaim(&mut self.claims, r, ops);
                }
            }
        }
        self.cursor = None;
        true
    }
}

fn claim(claims: &mut HashMap<Route, u32>, r: Route, ops: &mut Vec<Op>) {
    let n = claims.entry(r).or_insert(0);
    *n += 1;
    if *n == 1 {
        ops.push(Op::Route(true, r));
    }
}

fn unclaim(claims: &mut HashMap<Route, u32>, r: Route, ops: &mut Vec<Op>) {
    if let Some(n) = claims.get_mut(&r) {
        *n -= 1;
        if *n == 0 {
            claims.remove(&r);
            ops.push(Op::Route(false, r));
        }
    }
}

/// The workers' watchdog: healthy once every worker was seen polling, unhealthy while
/// one has not polled for `stall` nanoseconds.
pub struct Health {
    stall: u64,
    /// Per worker: its last count, when it last changed, whether it ever did.
    last: Vec<(u64, u64, bool)>,
    healthy: bool,
}

impl Health {
    pub fn new(stall: u64) -> Health {
        Health {
            stall,
            last: Vec::new(),
            healthy: false,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Looks at each worker's count of polls at `now`; returns the new state if it
    /// changed.
    pub fn observe(&mut self, polls: impl Iterator<Item = u64>, now: u64) -> Option<bool> {
        let mut workers = 0;
        let mut polling = true;
        for (i, p) in polls.enumerate() {
            workers += 1;
            if i == self.last.len() {
                // The first look tells nothing yet.
                self.last.push((p, now, false));
            }
            let (count, at, moved) = &mut self.last[i];
            if p != *count {
                (*count, *at, *moved) = (p, now, true);
            }
            polling &= *moved && now.saturating_sub(*at) < self.stall;
        }
        let healthy = workers > 0 && polling;
        if healthy != self.healthy {
            self.healthy = healthy;
            Some(healthy)
        } else {
            None
        }
    }
}

/// Figures of the export, shared with the thread that writes the kernel.
#[derive(Default, Debug)]
pub struct ExportStats {
    /// Route changes the kernel took.
    pub applied: AtomicU64,
    /// Route changes the kernel refused.
    pub failed: AtomicU64,
}

/// The export: its sweeps and watchdog on the control thread, its writer thread.
pub struct Export {
    table: u32,
    announce: Vec<Route>,
    routes: Routes,
    health: Health,
    next_at: u64,
    next_sweep: u64,
    tx: Option<mpsc::Sender<Vec<Op>>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<ExportStats>,
    ops: Vec<Op>,
}

impl Export {
    /// Empties `table`, then starts the thread that writes it, with routes through
    /// interface `tap`.
    /// The export `cfg.control_port.export` asks for, if any, through the control
    /// port's TAP (which must be open), with the ports' connected networks.
    pub fn for_config(cfg: &crate::config::Config) -> Result<Option<Export>, String> {
        let Some(cp) = cfg.control_port.as_ref() else {
            return Ok(None);
        };
        let Some(e) = cp.export.as_ref() else {
            return Ok(None);
        };
        let networks: Vec<(IpAddr, u8)> = [&cfg.ports.outside, &cfg.ports.inside]
            .iter()
            .flat_map(|p| p.addresses.iter())
            .filter(|a| a.prefix_len < if a.addr.is_ipv4() { 32 } else { 128 })
            .map(|a| (a.network().addr, a.prefix_len))
            .collect();
        Export::start(e, &cp.tap, &networks).map(Some)
    }

    /// `networks` are the ports' connected networks: routed through the TAP in the
    /// table for as long as it lives, so that the routing daemon sees its neighbors
    /// on those links as reachable (FRR's next-hop tracking) and reaches them through
    /// wgdp.
    pub fn start(
        cfg: &crate::config::ExportConfig,
        tap: &str,
        networks: &[(IpAddr, u8)],
    ) -> Result<Export, String> {
        let oif = netlink::if_index(tap).map_err(|e| format!("control_port.export: {tap}: {e}"))?;
        flush(cfg.table)?;
        // The kernel's own packets from an announced address (an echo reply) go back
        // through wgdp, as from the TAP's other addresses (`tap::Tap::open`); dropping
        // the `Tap` removes these rules with its own.
        for a in &cfg.announce {
            let fam = if a.is_ipv4() { "-4" } else { "-6" };
            let (a, table, pref) = (
                a.to_string(),
                crate::tap::TABLE.to_string(),
                crate::tap::RULE_PRIORITY.to_string(),
            );
            run_ip(&[
                fam, "rule", "add", "from", &a, "lookup", &table, "pref", &pref,
            ])?;
        }
        let mut writer = netlink::Writer::open(cfg.table, oif)
            .map_err(|e| format!("control_port.export: netlink socket: {e}"))?;
        let stats = Arc::new(ExportStats::default());
        let (tx, rx) = mpsc::channel::<Vec<Op>>();
        let st = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wgdp-export".into())
            .spawn(move || {
                while let Ok(mut ops) = rx.recv() {
                    // Whatever else waits goes in the same sends, still in order.
                    while let Ok(more) = rx.try_recv() {
                        ops.extend(more);
                    }
                    match writer.apply(&ops) {
                        Ok(a) => {
                            st.applied.fetch_add(a.ok, Ordering::Relaxed);
                            st.failed.fetch_add(a.failed, Ordering::Relaxed);
                            if a.failed > 0 {
                                warn!(
                                    failed = a.failed,
                                    "export: the kernel refused route changes"
                                );
                            }
                        }
                        Err(e) => {
                            st.failed.fetch_add(ops.len() as u64, Ordering::Relaxed);
                            warn!(error = %e, "export: netlink");
                        }
                    }
                }
            })
            .map_err(|e| format!("control_port.export: thread: {e}"))?;
        info!(
            table = cfg.table,
            announce = ?cfg.announce,
            stall_ms = cfg.stall_ms,
            "export of routes ready"
        );
        Ok(Export {
            table: cfg.table,
            announce: cfg
                .announce
                .iter()
                .map(|&a| Route {
                    addr: a,
                    len: if a.is_ipv4() { 32 } else { 128 },
                })
                .collect(),
            routes: Routes::default(),
            health: Health::new(u64::from(cfg.stall_ms) * 1_000_000),
            next_at: 0,
            next_sweep: 0,
            tx: Some(tx),
            thread: Some(thread),
            stats,
            ops: networks
                .iter()
                .map(|&(addr, len)| Op::Route(true, Route { addr, len }))
                .collect(),
        })
    }

    /// When the control loop must call [`Export::poll`] next.
    pub fn next_deadline(&self) -> u64 {
        self.next_at
    }

    /// Routes of peers in the table (the announced addresses left out).
    pub fn peer_routes(&self) -> usize {
        self.routes.len()
    }

    /// Whether the announced addresses are on the TAP.
    pub fn healthy(&self) -> bool {
        self.health.healthy()
    }

    /// Watches the workers (`polls`: each one's count of polls) and goes on with the
    /// sweep of the peers, if it is time.
    pub fn poll<B: PacketBuf, R: rand_core::RngCore + rand_core::CryptoRng>(
        &mut self,
        plane: &ControlPlane<B, R>,
        polls: impl Iterator<Item = u64>,
        now: Now,
    ) {
        if now.mono < self.next_at {
            return;
        }
        if let Some(healthy) = self.health.observe(polls, now.mono) {
            if healthy {
                info!("workers polling: announcing {:?}", self.announce);
            } else {
                warn!("a worker stopped polling: withdrawing {:?}", self.announce);
            }
            self.ops
                .extend(self.announce.iter().map(|&a| Op::Addr(healthy, a)));
        }
        if !self.routes.sweeping() && now.mono >= self.next_sweep {
            self.routes.begin();
        }
        if self.routes.sweeping() {
            let from = self.routes.cursor();
            let peers = plane
                .active_peer_views_from(from)
                .map(|v| (v.peer.id, live(&v, now), v.spec.allowed_ips.as_slice()));
            if self.routes.step(peers, BATCH, &mut self.ops) {
                self.next_sweep = now.mono + EVERY;
            }
        }
        if !self.ops.is_empty() {
            if let Some(tx) = &self.tx {
                let _ = tx.send(std::mem::take(&mut self.ops));
            }
        }
        self.next_at = if self.routes.sweeping() {
            now.mono + BATCH_GAP
        } else {
            now.mono + EVERY
        };
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        // The thread ends when the channel closes, after the changes sent.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        info!(
            table = self.table,
            applied = self.stats.applied.load(Ordering::Relaxed),
            failed = self.stats.failed.load(Ordering::Relaxed),
            "export counters"
        );
    }
}

/// Deletes every route of `table` (those of an earlier run that did not go with its
/// TAP, or an operator's).
fn flush(table: u32) -> Result<(), String> {
    let table = table.to_string();
    for fam in ["-4", "-6"] {
        match run_ip(&[fam, "route", "flush", "table", &table]) {
            // A table with no route yet.
            Err(e) if e.contains("does not exist") => {}
            r => r?,
        }
    }
    Ok(())
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("control_port.export: running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "control_port.export: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests;
