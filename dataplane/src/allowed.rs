//! Cryptokey routing (whitepaper 2): the allowed IPs of every peer, mapped to the peer's
//! id, as the workers look them up.
//!
//! Contract:
//! - [`Allowed`] is part of the immutable tables a worker loads once per poll; `lookup`
//!   answers the id of the peer whose allowed IPs hold the address by longest prefix.
//! - IPv4 prefixes live in DPDK's `rte_fib` (DIR-24-8: a lookup is one or two memory
//!   reads) when the gateway runs on DPDK, or in a [`PrefixTable`] when there is no
//!   DPDK (the simulated-clock tests, or DPDK memory ran out: see below). IPv6 prefixes
//!   always live in a `PrefixTable`: `rte_fib6` is faster only with AVX-512 and reserves
//!   gigabytes at 10^6 prefixes (docs/architecture.md, section 4).
//! - [`Writer`] makes each new `Allowed` from the one published and a list of changes,
//!   at a cost in proportion to the changes. Neither `rte_fib` (DPDK 22.11 has no RCU
//!   for it) nor a `PrefixTable` can be changed while workers read it, so the writer
//!   keeps two of each (left-right): the published ones, which workers read, and
//!   spares that no published snapshot holds, to which it applies the changes the
//!   published ones have and they lack, then the new ones; the spares are published,
//!   and the old tables become the spares once no snapshot holds them any more (the
//!   writer's `Arc`s are the only ones left: workers hold a snapshot only during a
//!   poll).
//! - A next hop in `rte_fib` is the peer id with the prefix's length above it, so that
//!   no prefix has the next hop of the prefix that covers it: DPDK 22.11's
//!   `dir24_8_modify` adds such a prefix without counting the second-level group it
//!   reserves, but uncounts it when the prefix goes, after which the count wraps below
//!   zero and every new prefix longer than /24 fails for lack of room.
//! - The writer counts the IPv4 prefixes and the /24s that hold a longer one; a change
//!   that would leave less than [`MARGIN`] of either free builds the tables anew,
//!   larger. `rte_fib` then never runs out while it changes a prefix it has (in 22.11
//!   it would report success with the change half made).
//! - When a table has no room left, or the spare stays held (someone kept an old
//!   snapshot), both are built anew from every route, larger if needed. If DPDK has no
//!   memory for that, IPv4 moves to a `PrefixTable` and the failure is reported
//!   ([`Writer::take_notes`]): routes are never lost.

use crate::lpm::PrefixTable;
use dpdk_sys::{Error, Fib4};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cryptokey routing as the workers read it: allowed IPs -> peer id.
#[derive(Clone, Default)]
pub struct Allowed {
    /// IPv6, and IPv4 when there is no `fib`.
    table: Arc<PrefixTable<u32>>,
    fib: Option<Arc<Fib4>>,
}

impl Allowed {
    /// The peer whose allowed IPs hold `addr`.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<u32> {
        match (addr, &self.fib) {
            (IpAddr::V4(a), Some(fib)) => {
                let nh = fib.lookup(u32::from(a));
                (nh != Fib4::MISS).then_some(peer_of(nh))
            }
            _ => self.table.lookup(addr).copied(),
        }
    }

    /// Every (network, length, peer), in no particular order.
    pub fn entries(&self) -> Vec<(IpAddr, u8, u32)> {
        let mut out: Vec<_> = self.table.entries().map(|(a, l, &p)| (a, l, p)).collect();
        if let Some(fib) = &self.fib {
            out.extend(
                fib.entries()
                    .into_iter()
                    .map(|(a, l, nh)| (IpAddr::from(a.to_be_bytes()), l, peer_of(nh))),
            );
        }
        out
    }

    /// Whether IPv4 lives in `rte_fib`.
    pub fn on_fib(&self) -> bool {
        self.fib.is_some()
    }
}

/// A table without DPDK holding exactly these routes.
impl FromIterator<(IpAddr, u8, u32)> for Allowed {
    fn from_iter<I: IntoIterator<Item = (IpAddr, u8, u32)>>(routes: I) -> Self {
        Writer::new(false).build(routes)
    }
}

/// A change of cryptokey routing: `addr/len` now belongs to a peer, or to none.
pub type Change = (IpAddr, u8, Option<u32>);

/// How long [`Writer::apply`] waits for the workers to let go of the spare table
/// before it builds both anew. A worker holds a snapshot for one poll.
const SPARE_WAIT: Duration = Duration::from_millis(50);

/// Prefixes, and second-level groups, kept free in a table (changing one prefix takes
/// up to two groups for a moment).
pub const MARGIN: usize = 64;

/// Where the prefix length starts in a next hop (module docs); peer ids are below.
const LEN_SHIFT: u32 = 24;

fn next_hop(id: u32, len: u8) -> u64 {
    assert!(id < 1 << LEN_SHIFT, "peer id {id} too large for a next hop");
    (len as u64) << LEN_SHIFT | id as u64
}

fn peer_of(nh: u64) -> u32 {
    (nh & ((1 << LEN_SHIFT) - 1)) as u32
}

fn v4_addr(a: u32) -> IpAddr {
    IpAddr::from(a.to_be_bytes())
}

fn masked(a: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        a & (u32::MAX << (32 - len))
    }
}

/// What the IPv4 tables hold: prefixes, and for each /24 that holds longer prefixes,
/// how many.
#[derive(Default)]
struct Counts {
    routes: usize,
    long: HashMap<u32, u32>,
}

impl Counts {
    fn change(&mut self, a: u32, len: u8, added: bool) {
        if added {
            self.routes += 1;
        } else {
            self.routes -= 1;
        }
        if len > 24 {
            let n = self.long.entry(a >> 8).or_default();
            if added {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    self.long.remove(&(a >> 8));
                }
            }
        }
    }

    /// What tables for these are created with: room for a quarter as many again
    /// (peers come through `wg set`), and the margin.
    fn sizing(&self) -> (u32, u32) {
        let grow = |n: usize| (n + n / 4 + 2 * MARGIN).min(i32::MAX as usize) as u32;
        (grow(self.routes), grow(self.long.len()))
    }

    fn fits(&self, size: (u32, u32)) -> bool {
        self.routes + MARGIN <= size.0 as usize && self.long.len() + MARGIN <= size.1 as usize
    }
}

/// Makes the [`Allowed`] tables control publishes; see the module docs.
pub struct Writer {
    dpdk: bool,
    /// The tables no published snapshot holds once the workers let go of them.
    spare: Option<Allowed>,
    /// Changes the published tables have and the spare lacks.
    behind: Vec<Change>,
    /// What the published IPv4 table holds, and what both were created with.
    counts: Counts,
    size: (u32, u32),
    notes: Vec<String>,
}

/// Names of `rte_fib`s, which must be unique in the process.
static FIBS: AtomicU32 = AtomicU32::new(0);

fn v4(addr: IpAddr) -> Option<u32> {
    match addr {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(_) => None,
    }
}

fn fib_with(routes: &[(u32, u8, u32)], size: (u32, u32)) -> Result<Fib4, Error> {
    let n = FIBS.fetch_add(1, Ordering::Relaxed);
    let mut fib = Fib4::new(&format!("wgdp_allowed{n}"), size.0, size.1)?;
    for &(a, l, id) in routes {
        fib.add(a, l, next_hop(id, l))?;
    }
    Ok(fib)
}

/// Lets the calling thread run on any CPU: a thread inherits the CPU its creator is
/// pinned to (an lcore), and the second table is built beside the first. Where a CPU
/// is not this process's to use, the kernel refuses and the thread stays where it is.
fn any_cpu() {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it; the calls only
    // read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let cpus = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).clamp(1, libc::CPU_SETSIZE as i64);
        for c in 0..cpus as usize {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Writer {
    /// A writer whose IPv4 tables are `rte_fib`s (`dpdk`: the EAL is running) or
    /// `PrefixTable`s.
    pub fn new(dpdk: bool) -> Writer {
        Writer {
            dpdk,
            spare: None,
            behind: Vec::new(),
            counts: Counts::default(),
            size: (0, 0),
            notes: Vec::new(),
        }
    }

    /// What the operator should hear of since the last call: tables built anew, and
    /// failures of `rte_fib` (each made IPv4 fall back to a `PrefixTable`).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The prefixes and second-level groups each IPv4 table has room for.
    pub fn capacity(&self) -> (u32, u32) {
        self.size
    }

    /// Cryptokey routing with exactly `routes`, built anew.
    pub fn build(&mut self, routes: impl IntoIterator<Item = (IpAddr, u8, u32)>) -> Allowed {
        self.spare = None;
        self.behind.clear();
        self.counts = Counts::default();
        self.size = (0, 0);
        let mut table = PrefixTable::new();
        let mut four = HashMap::new();
        for (a, l, id) in routes {
            match v4(a) {
                Some(a) if self.dpdk => {
                    four.insert((masked(a, l), l), id);
                }
                _ => {
                    table.insert(a, l, id);
                }
            }
        }
        let four: Vec<(u32, u8, u32)> = four.into_iter().map(|((a, l), id)| (a, l, id)).collect();
        let mut counts = Counts::default();
        for &(a, l, _) in &four {
            counts.change(a, l, true);
        }
        let size = counts.sizing();
        // The two tables are built side by side: at 10^6 prefixes each takes seconds.
        let dpdk = self.dpdk;
        let (live, spare) = std::thread::scope(|scope| {
            let spare = scope.spawn(|| {
                any_cpu();
                dpdk.then(|| fib_with(&four, size)).transpose()
            });
            let live = dpdk.then(|| fib_with(&four, size)).transpose();
            (live, spare.join().expect("building a table panicked"))
        });
        match live.and_then(|live| Ok((live, spare?))) {
            Ok((live, spare)) => {
                self.counts = counts;
                self.size = size;
                self.spare = Some(Allowed {
                    table: Arc::new(table.clone()),
                    fib: spare.map(Arc::new),
                });
                Allowed {
                    table: Arc::new(table),
                    fib: live.map(Arc::new),
                }
            }
            Err(e) => {
                self.notes.push(format!(
                    "IPv4 allowed IPs stay in a hash table: {} prefixes ({} MiB for two \
                     tables of DPDK memory): {e}",
                    four.len(),
                    (2 * Fib4::memory(size.0, size.1)) >> 20
                ));
                for (a, l, id) in four {
                    table.insert(IpAddr::from(a.to_be_bytes()), l, id);
                }
                self.spare = Some(Allowed {
                    table: Arc::new(table.clone()),
                    fib: None,
                });
                Allowed {
                    table: Arc::new(table),
                    fib: None,
                }
            }
        }
    }

    /// `current` (the published table, made by this writer) with `changes` applied
    /// in order.
    pub fn apply(&mut self, current: &Allowed, changes: &[Change]) -> Allowed {
        if changes.is_empty() {
            return current.clone();
        }
        let changes: Vec<Change> = changes
            .iter()
            .map(|&(a, l, id)| match a {
                IpAddr::V4(v) => (v4_addr(masked(u32::from(v), l)), l, id),
                IpAddr::V6(v) => {
                    let bits = u128::from(v);
                    let net = if l == 0 {
                        0
                    } else {
                        bits & (u128::MAX << (128 - l.min(128)))
                    };
                    (IpAddr::from(net.to_be_bytes()), l, id)
                }
            })
            .collect();
        if let Some(live) = &current.fib {
            // What the IPv4 table will hold.
            let mut now: HashMap<(u32, u8), bool> = HashMap::new();
            for &(a, l, id) in &changes {
                let Some(a) = v4(a) else { continue };
                let before = *now
                    .entry((a, l))
                    .or_insert_with(|| live.get(a, l).is_some());
                if before != id.is_some() {
                    self.counts.change(a, l, id.is_some());
                }
                now.insert((a, l), id.is_some());
            }
        }
        let done = if current.fib.is_none() || self.counts.fits(self.size) {
            self.update_spare(&changes)
        } else {
            Err(format!(
                "{} prefixes in {} /24s with longer ones need more room than {} and {}",
                self.counts.routes,
                self.counts.long.len(),
                self.size.0,
                self.size.1
            ))
        };
        match done {
            Ok(next) => {
                self.spare = Some(current.clone());
                self.behind = changes;
                next
            }
            Err(why) => {
                // Built anew from the published tables and the changes.
                let mut routes: HashMap<(IpAddr, u8), u32> = current
                    .entries()
                    .into_iter()
                    .map(|(a, l, id)| ((a, l), id))
                    .collect();
                for &(a, l, id) in &changes {
                    match id {
                        Some(id) => routes.insert((a, l), id),
                        None => routes.remove(&(a, l)),
                    };
                }
                self.notes.push(format!("allowed IPs built anew: {why}"));
                self.build(routes.into_iter().map(|((a, l), id)| (a, l, id)))
            }
        }
    }

    /// The spare with what it lacks and `changes` applied, ready to publish; why not.
    fn update_spare(&mut self, changes: &[Change]) -> Result<Allowed, String> {
        let mut spare = self.spare.take().ok_or("no spare table")?;
        let start = Instant::now();
        // Workers let go of a snapshot at the end of their poll.
        while Arc::get_mut(&mut spare.table).is_none()
            || spare
                .fib
                .as_mut()
                .is_some_and(|f| Arc::get_mut(f).is_none())
        {
            if start.elapsed() > SPARE_WAIT {
                return Err(format!(
                    "the spare table was still held after {SPARE_WAIT:?}"
                ));
            }
            std::thread::yield_now();
        }
        let table = Arc::get_mut(&mut spare.table).expect("held by this writer alone");
        let mut fib = spare
            .fib
            .as_mut()
            .map(|f| Arc::get_mut(f).expect("held by this writer alone"));
        for &(a, l, id) in self.behind.iter().chain(changes) {
            match (v4(a), fib.as_deref_mut()) {
                (Some(a), Some(fib)) => {
                    let done = match id {
                        Some(id) => fib.add(a, l, next_hop(id, l)),
                        None => fib.delete(a, l).map(|_| ()),
                    };
                    done.map_err(|e| {
                        let net = std::net::Ipv4Addr::from(a);
                        format!("changing {net}/{l} in the spare table: {e}")
                    })?;
                }
                _ => {
                    match id {
                        Some(id) => table.insert(a, l, id),
                        None => table.remove(a, l),
                    };
                }
            }
        }
        self.behind.clear();
        Ok(spare)
    }
}
