//! What an allowed-IPs lookup costs at 10^6 prefixes (docs/benchmarks.md, "Allowed-IPs
//! lookups at 10^6 prefixes"): the project's own table (`dataplane::lpm::PrefixTable`, a
//! hash map per prefix length, searched longest first) against DPDK's `rte_fib`
//! (DIR-24-8) for IPv4 and `rte_fib6` (a trie with a 24-bit first level and 8-bit strides
//! after it) for IPv6, the field's libraries for longest-prefix match, with their scalar
//! and AVX-512 lookups.
//!
//! The tables are shaped like a concentrator's. IPv4: mostly /32s, one per peer, at random
//! in 10.0.0.0/9 (two thirds) and 100.64.0.0/10; site /24s, /20s and /16s in
//! 10.128.0.0/9, the shorter ones covering some of the /24s, and a few /32s inside them;
//! /28s and /30s under 172.16.0.0/12, itself a prefix. IPv6: 16 /48s, four of them
//! prefixes themselves; in each, a /64 pool of peers' /128s (host numbers at random below
//! 2^20), and delegated /64s and /56s elsewhere in the /48. Every prefix has a value of
//! its own (a peer index), the hard case for `rte_fib`, which shares table entries among
//! covering prefixes of the same next hop.
//!
//! For each family and structure: the time to build the table, prefixes shortest first;
//! the memory it holds (the heap's growth for the own table, counted by this program's
//! allocator; the growth of DPDK's malloc heap for `rte_fib`, whose tables and node pool
//! are sized at creation); the cost of adding 1000 more prefixes to the full table and of
//! deleting them again (the median of batches of 50); and the clocks per lookup of 2^20
//! random addresses, 90 % inside a prefix and 10 % addresses of the peers' pools that
//! belong to no peer, one address at a time and in bulks of 32, 64 and 256, each
//! sixteenth of them the best of 5 runs. `rte_fib` has no single-address lookup: "single"
//! is `rte_fib_lookup_bulk` of one. Before the timing, and again after the adds and
//! deletes, 100000 of the addresses must get the same answer from every structure and
//! lookup function, or the program fails.
//!
//! `rte_fib` and `rte_fib6` are told at creation how many 256-entry groups (`num_tbl8`)
//! they may use, and reserve groups for each prefix added; the program creates them with
//! what DPDK 22.11 reserves for these prefixes (see `reserved`), prints it next to the
//! groups the prefixes fill, and prints the DPDK heap the table holds and the memory it
//! touched. A table that cannot be created in DPDK's memory is reported as not built.
//!
//! usage: sudo taskset -c 1 target/release/examples/fib_cost [PREFIXES] [--ipv4 | --ipv6]
//!        [--no-huge]
//! (default 10^6 prefixes of each family, both families). DPDK's main lcore is the first
//! CPU the program may run on. Its memory is hugepages when enough are free for the
//! larger family's table, else (or with --no-huge) plain memory.

use dataplane::clock::tsc;
use dataplane::lpm::{IntHasher, PrefixTable};
use dpdk_sys::{sys, Eal, Fib4, SOCKET_ID_ANY};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::ffi::CString;
use std::hash::BuildHasherDefault;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The value of "no prefix": the largest next hop of 4-byte entries (DPDK 22.11,
/// `rte_fib.h` and `rte_fib6.h`: one bit of each entry marks an extended entry).
const MISS: u64 = (1 << 31) - 1;
const LOOKUPS: usize = 1 << 20;
/// One in this many looked-up addresses is no peer's.
const MISS_ONE_IN: u64 = 10;
const CHECKED: usize = 100_000;
const CHURN: usize = 1000;
const REPEATS: usize = 5;
const BULKS: [usize; 3] = [32, 64, 256];

/// Counts the bytes live on the Rust heap, for the own table's memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type IntSet<K> = HashSet<K, BuildHasherDefault<IntHasher>>;

/// splitmix64: the same shapes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }

    /// `bits` random low bits (up to 128).
    fn bits(&mut self, bits: u32) -> u128 {
        let r = (self.next() as u128) << 64 | self.next() as u128;
        if bits == 0 {
            0
        } else {
            r >> (128 - bits)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Prefix {
    addr: u128,
    len: u8,
}

/// One family's prefixes (value = index, shortest first), the addresses looked up, and
/// prefixes not in the table for the adds and deletes.
struct Shape {
    bits: u8,
    prefixes: Vec<Prefix>,
    lookups: Vec<u128>,
    churn: Vec<Prefix>,
}

impl Shape {
    fn ip(&self, a: u128) -> IpAddr {
        if self.bits == 32 {
            IpAddr::V4(Ipv4Addr::from(a as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }

    /// "/32 939000, /24 30000, ...", longest first.
    fn counts(&self) -> String {
        let mut lens: Vec<(u8, usize)> = Vec::new();
        for p in self.prefixes.iter().rev() {
            match lens.last_mut() {
                Some((l, n)) if *l == p.len => *n += 1,
                _ => lens.push((p.len, 1)),
            }
        }
        lens.iter()
            .map(|(l, n)| format!("/{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A random prefix of length `len` inside `base/base_len` in a `bits`-bit family.
fn within(rng: &mut Rng, bits: u8, base: u128, base_len: u8, len: u8) -> Prefix {
    let free = rng.bits((len - base_len) as u32);
    Prefix {
        addr: base | free << (bits - len),
        len,
    }
}

/// Adds `count` prefixes from `make` that are not in `seen` yet.
fn unique(
    seen: &mut IntSet<Prefix>,
    out: &mut Vec<Prefix>,
    rng: &mut Rng,
    count: usize,
    mut make: impl FnMut(&mut Rng) -> Prefix,
) {
    let mut tries = 0usize;
    let mut added = 0;
    while added < count {
        let p = make(rng);
        if seen.insert(p) {
            out.push(p);
            added += 1;
        }
        tries += 1;
        assert!(
            tries < 50 * count + 1000,
            "the address space of a shape is too small"
        );
    }
}

fn v4_net(a: [u8; 4]) -> u128 {
    u32::from_be_bytes(a) as u128
}

/// Hits (a random prefix's random address) and, one in `MISS_ONE_IN`, a `miss`.
fn lookups(
    rng: &mut Rng,
    bits: u8,
    prefixes: &[Prefix],
    mut miss: impl FnMut(&mut Rng) -> u128,
) -> Vec<u128> {
    (0..LOOKUPS)
        .map(|_| {
            if rng.below(MISS_ONE_IN) == 0 {
                miss(rng)
            } else {
                let p = prefixes[rng.below(prefixes.len() as u64) as usize];
                p.addr | rng.bits((bits - p.len) as u32)
            }
        })
        .collect()
}

fn v4_shape(n: usize, rng: &mut Rng) -> Shape {
    let sites = v4_net([10, 128, 0, 0]);
    let links = v4_net([172, 16, 0, 0]);
    let pools = [(v4_net([10, 0, 0, 0]), 9), (v4_net([100, 64, 0, 0]), 10)];
    let mut seen = IntSet::default();
    let mut p = Vec::with_capacity(n);
    unique(&mut seen, &mut p, rng, 1.min(n), |_| Prefix {
        addr: links,
        len: 12,
    });
    let n16 = (n / 10_000).clamp(1, 64);
    let n20 = (n / 1000).clamp(1, 1024);
    let n24 = (n * 3 / 100).min(30_000);
    let (n28, n30, n_site_hosts) = (n / 200, n / 200, n / 1000);
    unique(&mut seen, &mut p, rng, n16, |r| within(r, 32, sites, 9, 16));
    unique(&mut seen, &mut p, rng, n20, |r| within(r, 32, sites, 9, 20));
    unique(&mut seen, &mut p, rng, n24, |r| within(r, 32, sites, 9, 24));
    unique(&mut seen, &mut p, rng, n28, |r| {
        within(r, 32, links, 12, 28)
    });
    unique(&mut seen, &mut p, rng, n30, |r| {
        within(r, 32, links, 12, 30)
    });
    unique(&mut seen, &mut p, rng, n_site_hosts, |r| {
        within(r, 32, sites, 9, 32)
    });
    let peer = |r: &mut Rng| {
        let (base, len) = pools[(r.below(3) == 2) as usize];
        within(r, 32, base, len, 32)
    };
    let rest = n.saturating_sub(p.len());
    unique(&mut seen, &mut p, rng, rest, peer);
    let mut churn = Vec::new();
    unique(&mut seen, &mut churn, rng, CHURN, peer);
    p.sort_by_key(|x| x.len);
    // A pool's address that is no peer's: nothing covers the pools.
    let lookups = lookups(rng, 32, &p, |r| loop {
        let c = peer(r);
        if !seen.contains(&c) {
            break c.addr;
        }
    });
    Shape {
        bits: 32,
        prefixes: p,
        lookups,
        churn,
    }
}

fn v6_shape(n: usize, rng: &mut Rng) -> Shape {
    let doc = 0x2001_0db8u128 << 96;
    let site = |k: u64| doc | (k as u128) << 80;
    let mut seen = IntSet::default();
    let mut p = Vec::with_capacity(n);
    let n48 = 4.min(n);
    let n56 = (n / 100).min(2048);
    let n64 = n * 39 / 100;
    for k in 0..n48 as u64 {
        unique(&mut seen, &mut p, rng, 1, |_| Prefix {
            addr: site(k),
            len: 48,
        });
    }
    // Delegated /56s, outside the /56 that holds the pool (/64 number 0), and /64s.
    unique(&mut seen, &mut p, rng, n56, |r| {
        let s = 1 + r.below(255) as u128;
        Prefix {
            addr: site(r.below(16)) | s << 72,
            len: 56,
        }
    });
    unique(&mut seen, &mut p, rng, n64, |r| {
        let s = 1 + r.below(65535) as u128;
        Prefix {
            addr: site(r.below(16)) | s << 64,
            len: 64,
        }
    });
    let host = |r: &mut Rng, k: u64| Prefix {
        addr: site(k) | (1 + r.below((1 << 20) - 1)) as u128,
        len: 128,
    };
    let peer = |r: &mut Rng| {
        let k = r.below(16);
        host(r, k)
    };
    let rest = n.saturating_sub(p.len());
    unique(&mut seen, &mut p, rng, rest, peer);
    let mut churn = Vec::new();
    unique(&mut seen, &mut churn, rng, CHURN, peer);
    p.sort_by_key(|x| x.len);
    // In the pools of the /48s that are no prefix themselves: nothing covers them.
    let lookups = lookups(rng, 128, &p, |r| loop {
        let k = n48 as u64 + r.below(16 - n48 as u64);
        let c = host(r, k);
        if !seen.contains(&c) {
            break c.addr;
        }
    });
    Shape {
        bits: 128,
        prefixes: p,
        lookups,
        churn,
    }
}

/// The 256-entry groups (tbl8) DPDK 22.11 reserves for `prefixes` added shortest
/// first (`lib/fib/dir24_8.c` and `lib/fib/trie.c`, `*_modify`). DIR-24-8 reserves one
/// group for each /24 holding longer prefixes. The trie reserves, for a prefix longer
/// than /24 with no longer prefix yet in its 8-bit-aligned network, a group for each
/// stride between the longest prefix covering it (at least /24) and itself: a /128 alone
/// under a /48 takes 10, with no cover 13, however many it shares with its neighbours.
fn reserved(prefixes: &[Prefix], bits: u8) -> usize {
    let ceil8 = |l: u8| (l as usize).div_ceil(8) * 8;
    if bits == 32 {
        let nets: IntSet<u128> = prefixes
            .iter()
            .filter(|p| p.len > 24)
            .map(|p| p.addr >> 8)
            .collect();
        return nets.len();
    }
    let mut t = PrefixTable::new();
    let mut sum = 0;
    for p in prefixes {
        let ip = IpAddr::V6(Ipv6Addr::from(p.addr));
        if p.len > 24 {
            let cover = t.lookup_with_len(ip).map_or(0, |(l, _)| l).max(24);
            sum += (ceil8(p.len) - ceil8(cover)) / 8;
        }
        t.insert(ip, p.len, ());
    }
    sum
}

/// The groups the table fills: one for each distinct network one stride (8 bits)
/// shorter than a prefix, from /24 on.
fn used_groups(prefixes: &[Prefix], bits: u8) -> usize {
    let mut nets = IntSet::<(u8, u128)>::default();
    for p in prefixes {
        let mut l = 24;
        while l < p.len {
            nets.insert((l, p.addr >> (bits - l)));
            l += 8;
        }
    }
    nets.len()
}

/// What `rte_fib` or `rte_fib6` with 4-byte entries is created with for a shape: the
/// routes (its node pool holds twice as many nodes), the groups, and an upper bound of
/// the DPDK memory that takes (the 2^24-entry first level, the groups, the nodes).
struct Sizing {
    routes: usize,
    /// Groups reserved for the prefixes, and those they fill.
    reserved: usize,
    used: usize,
    /// Created with: the reserved groups and room for the churn's.
    num_tbl8: u32,
    bytes: u64,
}

fn sizing(s: &Shape) -> Sizing {
    let routes = s.prefixes.len() + CHURN + 1024;
    // The adds of the churn come on top: up to 13 groups each.
    let reserved = reserved(&s.prefixes, s.bits);
    let num_tbl8 = (reserved + 13 * CHURN + 1024) as u32;
    let bytes = (4u64 << 24) + (num_tbl8 as u64 + 1) * (256 * 4 + 8) + routes as u64 * 2 * 192;
    Sizing {
        routes,
        reserved,
        used: used_groups(&s.prefixes, s.bits),
        num_tbl8,
        bytes: bytes + bytes / 8,
    }
}

/// Resident memory, hugepages included, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("VmRSS:")
                .or_else(|| l.strip_prefix("HugetlbPages:"))
        })
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// Bytes allocated from DPDK's malloc heap, over every socket.
fn dpdk_heap() -> usize {
    // SAFETY: the EAL is initialised; the stats are written into a local.
    unsafe {
        (0..sys::rte_socket_count())
            .map(|i| {
                let mut s = sys::rte_malloc_socket_stats::default();
                let socket = sys::rte_socket_id_by_idx(i);
                if sys::rte_malloc_get_socket_stats(socket, &mut s) == 0 {
                    s.heap_allocsz_bytes
                } else {
                    0
                }
            })
            .sum()
    }
}

/// `rte_fib` or `rte_fib6` with 4-byte next hops.
trait Fib: Sized {
    type Ip: Copy + Default;
    const NAME: &'static str;
    fn ip(addr: u128) -> Self::Ip;
    /// `Err(-errno)` with `rte_errno`.
    fn create(name: &str, routes: usize, num_tbl8: u32) -> Result<Self, i32>;
    fn add(&mut self, p: Prefix, nh: u64) -> i32;
    fn delete(&mut self, p: Prefix) -> i32;
    /// Whether the library has this lookup here.
    fn select(&mut self, vector: bool) -> bool;
    fn lookup(&self, ips: &mut [Self::Ip], nhs: &mut [u64]);
}

/// wgdp's own `rte_fib` wrapper, the one cryptokey routing uses.
impl Fib for Fib4 {
    type Ip = u32;
    const NAME: &'static str = "rte_fib DIR-24-8";

    fn ip(addr: u128) -> u32 {
        addr as u32
    }

    fn create(name: &str, routes: usize, num_tbl8: u32) -> Result<Self, i32> {
        Fib4::new(name, routes as u32, num_tbl8).map_err(|e| -e.errno())
    }

    fn add(&mut self, p: Prefix, nh: u64) -> i32 {
        match Fib4::add(self, p.addr as u32, p.len, nh) {
            Ok(()) => 0,
            Err(e) => -e.errno(),
        }
    }

    fn delete(&mut self, p: Prefix) -> i32 {
        match Fib4::delete(self, p.addr as u32, p.len) {
            Ok(true) => 0,
            Ok(false) => -libc::ENOENT,
            Err(e) => -e.errno(),
        }
    }

    fn select(&mut self, vector: bool) -> bool {
        self.select_lookup(vector)
    }

    #[inline]
    fn lookup(&self, ips: &mut [u32], nhs: &mut [u64]) {
        self.lookup_bulk(ips, nhs);
    }
}

struct Fib6(*mut sys::rte_fib6);

impl Drop for Fib6 {
    fn drop(&mut self) {
        // SAFETY: created by rte_fib6_create, freed once.
        unsafe { sys::rte_fib6_free(self.0) }
    }
}

impl Fib for Fib6 {
    type Ip = [u8; 16];
    const NAME: &'static str = "rte_fib6 trie";

    fn ip(addr: u128) -> [u8; 16] {
        addr.to_be_bytes()
    }

    fn create(name: &str, routes: usize, num_tbl8: u32) -> Result<Self, i32> {
        let mut conf = sys::rte_fib6_conf {
            type_: sys::RTE_FIB6_TRIE,
            default_nh: MISS,
            max_routes: routes as i32,
            rib_ext_sz: 0,
            __bindgen_anon_1: sys::rte_fib6_conf__bindgen_ty_1 {
                trie: sys::rte_fib6_conf__bindgen_ty_1__bindgen_ty_1 {
                    nh_sz: sys::RTE_FIB6_TRIE_4B,
                    num_tbl8,
                },
            },
        };
        let name = CString::new(name).expect("no NUL");
        // SAFETY: a valid name and configuration; the EAL is initialised.
        let f = unsafe { sys::rte_fib6_create(name.as_ptr(), SOCKET_ID_ANY, &mut conf) };
        if f.is_null() {
            // SAFETY: reads the calling thread's rte_errno.
            Err(-unsafe { sys::wgdp_rte_errno() })
        } else {
            Ok(Fib6(f))
        }
    }

    fn add(&mut self, p: Prefix, nh: u64) -> i32 {
        let ip = p.addr.to_be_bytes();
        // SAFETY: a live table; `ip` is 16 bytes.
        unsafe { sys::rte_fib6_add(self.0, ip.as_ptr(), p.len, nh) }
    }

    fn delete(&mut self, p: Prefix) -> i32 {
        let ip = p.addr.to_be_bytes();
        // SAFETY: as above.
        unsafe { sys::rte_fib6_delete(self.0, ip.as_ptr(), p.len) }
    }

    fn select(&mut self, vector: bool) -> bool {
        let t = if vector {
            sys::RTE_FIB6_LOOKUP_TRIE_VECTOR_AVX512
        } else {
            sys::RTE_FIB6_LOOKUP_TRIE_SCALAR
        };
        // SAFETY: a live table.
        unsafe { sys::rte_fib6_select_lookup(self.0, t) == 0 }
    }

    #[inline]
    fn lookup(&self, ips: &mut [[u8; 16]], nhs: &mut [u64]) {
        debug_assert!(nhs.len() >= ips.len());
        // SAFETY: as for Fib4.
        unsafe {
            sys::rte_fib6_lookup_bulk(self.0, ips.as_mut_ptr(), nhs.as_mut_ptr(), ips.len() as i32)
        };
    }
}

/// Clocks per lookup of `f` over the `LOOKUPS` addresses, given a range of them at a
/// time: each 1/16 of the addresses the best of `REPEATS` runs, so that a preemption by
/// the machine's other guests, which lands in one run of one slice, does not count.
fn best(mut f: impl FnMut(Range<usize>)) -> f64 {
    const SLICES: usize = 16;
    let slice = LOOKUPS / SLICES;
    let mut fastest = [u64::MAX; SLICES];
    for _ in 0..REPEATS {
        for (k, fast) in fastest.iter_mut().enumerate() {
            let t = tsc();
            f(k * slice..(k + 1) * slice);
            *fast = (*fast).min(tsc() - t);
        }
    }
    fastest.iter().sum::<u64>() as f64 / LOOKUPS as f64
}

/// Clocks per lookup: one at a time, then in each of `BULKS`.
type Costs = Vec<f64>;

/// The own table's lookup for a family.
type Get = fn(&PrefixTable<u32>, u128) -> Option<&u32>;

fn own_costs(t: &PrefixTable<u32>, addrs: &[u128], get: Get) -> Costs {
    let mut costs = vec![best(|r| {
        let mut acc = 0u64;
        for &a in &addrs[r] {
            acc = acc.wrapping_add(get(t, a).map_or(MISS, |&v| v as u64));
        }
        black_box(acc);
    })];
    let mut out = vec![0u64; 256];
    for b in BULKS {
        costs.push(best(|r| {
            for chunk in addrs[r].chunks(b) {
                for (o, &a) in out.iter_mut().zip(chunk) {
                    *o = get(t, a).map_or(MISS, |&v| v as u64);
                }
                black_box(&mut out);
            }
        }));
    }
    costs
}

fn fib_costs<F: Fib>(f: &F, ips: &mut [F::Ip]) -> Costs {
    let mut costs = vec![best(|r| {
        let mut acc = 0u64;
        let mut nh = 0u64;
        for ip in ips[r].iter_mut() {
            f.lookup(std::slice::from_mut(ip), std::slice::from_mut(&mut nh));
            acc = acc.wrapping_add(nh);
        }
        black_box(acc);
    })];
    let mut out = vec![0u64; 256];
    for b in BULKS {
        costs.push(best(|r| {
            for chunk in ips[r].chunks_mut(b) {
                f.lookup(chunk, &mut out);
                black_box(&mut out);
            }
        }));
    }
    costs
}

/// Fails the program unless `f` answers the first `CHECKED` addresses as `t` does, one
/// at a time and in bulks of 64.
fn verify<F: Fib>(what: &str, f: &F, t: &PrefixTable<u32>, s: &Shape, get: Get) {
    let addrs = &s.lookups[..CHECKED.min(s.lookups.len())];
    let want: Vec<u64> = addrs
        .iter()
        .map(|&a| get(t, a).map_or(MISS, |&v| v as u64))
        .collect();
    let mut ips: Vec<F::Ip> = addrs.iter().map(|&a| F::ip(a)).collect();
    let mut bulk = vec![0u64; ips.len()];
    for (i, o) in ips.chunks_mut(64).zip(bulk.chunks_mut(64)) {
        f.lookup(i, o);
    }
    let mut wrong = 0usize;
    for (i, ip) in ips.iter_mut().enumerate() {
        let mut one = 0u64;
        f.lookup(std::slice::from_mut(ip), std::slice::from_mut(&mut one));
        if one != want[i] || bulk[i] != want[i] {
            if wrong < 5 {
                eprintln!(
                    "fib_cost: {what}: {} -> {} alone, {} in a bulk; PrefixTable says {}",
                    s.ip(addrs[i]),
                    one,
                    bulk[i],
                    want[i]
                );
            }
            wrong += 1;
        }
    }
    if wrong > 0 {
        eprintln!(
            "fib_cost: FAILED: {what} differs from PrefixTable on {wrong} of {} addresses",
            addrs.len()
        );
        std::process::exit(1);
    }
}

/// One structure's row: build seconds, MiB held, clocks of one add and one delete.
struct Built {
    name: String,
    build_s: f64,
    mib: f64,
    add: f64,
    delete: f64,
    note: String,
}

/// Clocks per call of `f(0..n)`: the median of batches of `BATCH` calls, so that a
/// preemption by the machine's other guests, which lands in one batch, does not count.
fn op_clocks(n: usize, mut f: impl FnMut(usize)) -> f64 {
    const BATCH: usize = 50;
    let mut batches: Vec<u64> = (0..n / BATCH)
        .map(|b| {
            let t = tsc();
            for i in b * BATCH..(b + 1) * BATCH {
                f(i);
            }
            tsc() - t
        })
        .collect();
    batches.sort_unstable();
    batches[batches.len() / 2] as f64 / BATCH as f64
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// `rte_fib` built from `s`, with its build seconds and the MiB of DPDK heap it holds;
/// the groups are doubled while an add finds no room (the count of `reserved` is a
/// lower bound for other shapes). `Err` says why it could not be built.
fn build_fib<F: Fib>(s: &Shape, z: &Sizing) -> Result<(F, f64, f64, u32), String> {
    let mut num_tbl8 = z.num_tbl8;
    for attempt in 1.. {
        let heap = dpdk_heap();
        let t0 = Instant::now();
        let name = format!("fib_cost_{}_{attempt}", s.bits);
        let mut f = F::create(&name, z.routes, num_tbl8).map_err(|e| {
            format!(
                "creation with {num_tbl8} groups ({:.0} MiB) failed: {}",
                mib((num_tbl8 as u64 + 1) * 1024),
                std::io::Error::from_raw_os_error(-e)
            )
        })?;
        let refused = s
            .prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| f.add(*p, i as u64))
            .find(|&r| r != 0);
        let took = t0.elapsed().as_secs_f64();
        match refused {
            None => return Ok((f, took, mib((dpdk_heap() - heap) as u64), num_tbl8)),
            Some(r) if r == -libc::ENOSPC && num_tbl8 < u32::MAX / 4 => num_tbl8 *= 2,
            Some(r) => {
                return Err(format!(
                    "add failed: {}",
                    std::io::Error::from_raw_os_error(-r)
                ))
            }
        }
    }
    unreachable!()
}

fn family<F: Fib>(label: &str, s: &Shape, get: Get, hz: f64) {
    let n = s.prefixes.len();
    println!("{label}: {n} prefixes ({})", s.counts());

    // The own table.
    let before = LIVE.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut own = PrefixTable::new();
    for (i, p) in s.prefixes.iter().enumerate() {
        own.insert(s.ip(p.addr), p.len, i as u32);
    }
    let own_build = t0.elapsed().as_secs_f64();
    let own_mib = mib((LIVE.load(Ordering::Relaxed) - before) as u64);
    let misses = s
        .lookups
        .iter()
        .filter(|&&a| get(&own, a).is_none())
        .count();
    let t0 = Instant::now();
    let copy = own.clone();
    let clone_ms = t0.elapsed().as_secs_f64() * 1e3;
    drop(copy);

    // rte_fib.
    let z = sizing(s);
    let rss = resident();
    let built = build_fib::<F>(s, &z);
    let touched = mib(resident().saturating_sub(rss));
    let mut rows: Vec<(String, Costs)> = Vec::new();
    let mut vector = false;
    let mut fib_row = None;
    match built {
        Ok((mut fib, fib_build, fib_mib, num_tbl8)) => {
            assert!(fib.select(false), "the scalar lookup is always there");
            verify(&format!("{} scalar", F::NAME), &fib, &own, s, get);
            vector = fib.select(true);
            if vector {
                verify(&format!("{} AVX-512", F::NAME), &fib, &own, s, get);
            }
            let mut ips: Vec<F::Ip> = s.lookups.iter().map(|&a| F::ip(a)).collect();
            rows.push(("PrefixTable".into(), own_costs(&own, &s.lookups, get)));
            fib.select(false);
            rows.push((format!("{} scalar", F::NAME), fib_costs(&fib, &mut ips)));
            if vector {
                fib.select(true);
                rows.push((format!("{} AVX-512", F::NAME), fib_costs(&fib, &mut ips)));
                fib.select(false);
            }
            let base = n as u64;
            let add = op_clocks(CHURN, |i| {
                let r = fib.add(s.churn[i], base + i as u64);
                assert_eq!(r, 0, "{}: an add to the full table failed", F::NAME);
            });
            let delete = op_clocks(CHURN, |i| {
                let r = fib.delete(s.churn[i]);
                assert_eq!(r, 0, "{}: a delete failed", F::NAME);
            });
            verify(
                &format!("{} after adds and deletes", F::NAME),
                &fib,
                &own,
                s,
                get,
            );
            fib_row = Some(Built {
                name: F::NAME.into(),
                build_s: fib_build,
                mib: fib_mib,
                add,
                delete,
                note: format!(
                    "{touched:.0} MiB touched; tbl8 groups {} reserved, {} filled{}",
                    z.reserved,
                    z.used,
                    if num_tbl8 > z.num_tbl8 {
                        format!(" (created with {num_tbl8})")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        Err(why) => {
            rows.push(("PrefixTable".into(), own_costs(&own, &s.lookups, get)));
            println!("  {}: not built: {why}", F::NAME);
        }
    }

    // One prefix more and one less in the full own table.
    let base = n as u32;
    let own_add = op_clocks(CHURN, |i| {
        own.insert(s.ip(s.churn[i].addr), s.churn[i].len, base + i as u32);
    });
    let own_del = op_clocks(CHURN, |i| {
        own.remove(s.ip(s.churn[i].addr), s.churn[i].len);
    });
    let mut table = vec![Built {
        name: "PrefixTable".into(),
        build_s: own_build,
        mib: own_mib,
        add: own_add,
        delete: own_del,
        note: format!("clone {clone_ms:.0} ms"),
    }];
    table.extend(fib_row);

    let us = |clocks: f64| clocks / hz * 1e6;
    println!(
        "  {} lookups, {:.1} % of them no peer's; each sixteenth the best of {REPEATS} runs",
        s.lookups.len(),
        misses as f64 * 100.0 / s.lookups.len() as f64
    );
    println!(
        "  {:<24} {:>8} {:>7} {:>9} {:>9}",
        "structure", "build s", "MiB", "add µs", "del µs"
    );
    for b in &table {
        println!(
            "  {:<24} {:>8.2} {:>7.0} {:>9.2} {:>9.2}   {}",
            b.name,
            b.build_s,
            b.mib,
            us(b.add),
            us(b.delete),
            b.note
        );
    }
    println!(
        "  {:<24} {:>8} {:>8} {:>8} {:>8}",
        "clocks per lookup", "single", "bulk 32", "bulk 64", "bulk 256"
    );
    for (name, c) in &rows {
        println!(
            "  {:<24} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            name, c[0], c[1], c[2], c[3]
        );
    }
    println!(
        "  {:<24} {:>8} {:>8} {:>8} {:>8}",
        "Mlookups/s", "single", "bulk 32", "bulk 64", "bulk 256"
    );
    let m = |x: f64| hz / x / 1e6;
    for (name, c) in &rows {
        println!(
            "  {:<24} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            name,
            m(c[0]),
            m(c[1]),
            m(c[2]),
            m(c[3])
        );
    }
    if !vector && rows.len() > 1 {
        println!("  (no AVX-512 lookup: the CPU or this DPDK lacks it)");
    }
    println!();
}

/// IPv4 cryptokey routing as wgdp keeps it (`dataplane::allowed`): two `rte_fib`s
/// changed left-right, against two `PrefixTable`s changed the same way (what wgdp has
/// without DPDK, and for IPv6);
/// lookups as the route stage makes them (an address, one at a time), and the cost of a
/// change of one prefix (the median of 50) and of 1000 at once.
fn as_wgdp_has_it(s: &Shape) {
    use dataplane::allowed::{Allowed, Change, Writer};
    let routes: Vec<(IpAddr, u8, u32)> = s
        .prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| (s.ip(p.addr), p.len, i as u32))
        .collect();
    // As compact as the other structures' inputs (an array of `IpAddr` streams five
    // times the bytes of one of u32 and costs some 20 clocks a lookup here); the
    // route stage takes its addresses from headers in cache.
    let addrs: Vec<u32> = s.lookups.iter().map(|&a| a as u32).collect();
    println!("IPv4 as wgdp keeps it (dataplane::allowed):");
    println!(
        "  {:<24} {:>8} {:>7} {:>10} {:>12} {:>10}",
        "writer", "build s", "MiB", "lookup clk", "1 change ms", "1000 ms"
    );
    let mut reference: Option<Allowed> = None;
    for dpdk in [false, true] {
        let heap = dpdk_heap();
        let live = LIVE.load(Ordering::Relaxed);
        let mut w = Writer::new(dpdk);
        let t0 = Instant::now();
        let mut t = w.build(routes.iter().copied());
        let build = t0.elapsed().as_secs_f64();
        let bytes =
            (dpdk_heap() - heap) as u64 + LIVE.load(Ordering::Relaxed).saturating_sub(live) as u64;
        assert_eq!(t.on_fib(), dpdk, "{:?}", w.take_notes());
        if let Some(r) = &reference {
            for &a in addrs.iter().step_by(10) {
                let a = IpAddr::V4(a.into());
                assert_eq!(t.lookup(a), r.lookup(a), "{a}");
            }
        }
        let lookup = best(|r| {
            let mut acc = 0u64;
            for &a in &addrs[r] {
                acc = acc.wrapping_add(t.lookup(IpAddr::V4(a.into())).map_or(MISS, u64::from));
            }
            black_box(acc);
        });
        let churn: Vec<Change> = s
            .churn
            .iter()
            .enumerate()
            .map(|(i, p)| (s.ip(p.addr), p.len, Some((routes.len() + i) as u32)))
            .collect();
        let mut one = Vec::new();
        for c in churn.iter().take(50) {
            let t0 = Instant::now();
            t = w.apply(&t, std::slice::from_ref(c));
            one.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        one.sort_by(f64::total_cmp);
        let t0 = Instant::now();
        t = w.apply(&t, &churn);
        let thousand = t0.elapsed().as_secs_f64() * 1e3;
        let gone: Vec<Change> = churn.iter().map(|&(a, l, _)| (a, l, None)).collect();
        t = w.apply(&t, &gone);
        let notes = w.take_notes();
        assert!(notes.is_empty(), "{notes:?}");
        println!(
            "  {:<24} {:>8.2} {:>7.0} {:>10.1} {:>12.3} {:>10.1}",
            if dpdk {
                "two rte_fib, left-right"
            } else {
                "two PrefixTable, left-right"
            },
            build,
            mib(bytes),
            lookup,
            one[one.len() / 2],
            thousand
        );
        if !dpdk {
            reference = Some(t);
        }
    }
    println!();
}

/// The first CPU this process may run on.
fn first_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t is valid; the call writes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .unwrap_or(0)
    }
}

/// Free hugepages in bytes.
fn free_hugepages() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") * 1024
}

const USAGE: &str = "usage: fib_cost [PREFIXES] [--ipv4 | --ipv6] [--no-huge]";

fn main() {
    let mut n = 1_000_000usize;
    let (mut no_huge, mut v4, mut v6) = (false, true, true);
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--no-huge" => no_huge = true,
            "--ipv4" => v6 = false,
            "--ipv6" => v4 = false,
            _ => n = a.parse().expect(USAGE),
        }
    }
    assert!(v4 || v6, "{USAGE}");
    let mut rng = Rng(0x5eed);
    let s4 = v4.then(|| v4_shape(n, &mut rng));
    let s6 = v6.then(|| v6_shape(n, &mut rng));
    // The families run one after the other, each freeing its tables.
    // IPv4 as wgdp keeps it takes two tables, with more room for routes than the one
    // measured against the own table.
    let need = [&s4, &s6]
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.as_ref()
                .map(|s| sizing(s).bytes * if i == 0 { 3 } else { 1 })
        })
        .max()
        .expect("a family");
    let huge = !no_huge && free_hugepages() >= need + (128 << 20);
    let lcore = first_cpu().to_string();
    let megs = (need >> 20).max(512).to_string();
    let mut args = vec![
        "--no-pci",
        "--no-telemetry",
        "--file-prefix=wgdp_fib",
        "-l",
        &lcore,
        "--log-level",
        "warning",
        // DPDK picks 512-bit code only when allowed to.
        "--force-max-simd-bitwidth=512",
    ];
    if huge {
        args.push("--in-memory");
    } else {
        args.extend(["--no-huge", "--no-shconf", "-m", &megs]);
    }
    let eal = Eal::init(&args).expect("EAL");
    let hz = Eal::tsc_hz() as f64;
    println!(
        "fib_cost: {}, TSC {:.2} GHz, CPU {lcore}, DPDK on {}",
        dpdk_sys::version(),
        hz / 1e9,
        if huge {
            "hugepages".to_string()
        } else {
            format!("plain memory (--no-huge -m {megs})")
        },
    );
    println!();
    if let Some(s) = s4 {
        family::<Fib4>("IPv4", &s, |t, a| t.lookup_v4(a as u32), hz);
        as_wgdp_has_it(&s);
    }
    if let Some(s) = s6 {
        family::<Fib6>("IPv6", &s, |t, a| t.lookup_v6(a), hz);
    }
    drop(eal);
}
