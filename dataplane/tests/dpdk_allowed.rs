//! Cryptokey routing on DPDK's `rte_fib` (`dataplane::allowed`): changes made while
//! other threads look up never show a reader a table that changes under it; a snapshot
//! held too long, and a table with no room left, make it build anew; and after any
//! sequence of changes it answers what the `PrefixTable` of the same changes answers.

use arc_swap::ArcSwap;
use dataplane::allowed::{Allowed, Change, Writer};
use dpdk_sys::Eal;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const TEST: &str = "dpdk_allowed";

/// Each table takes 64 MiB for its first level; a build anew holds four for a moment.
const EAL_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "768",
    "-l",
    "0-1",
    "--log-level",
    "warning",
    "--file-prefix=wgdp-dpdk_allowed",
];

fn v4(a: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

#[test]
fn allowed_ips_on_rte_fib() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{TEST}: skipped: needs root (DPDK EAL)");
        return;
    }
    let _eal = Eal::init(EAL_ARGS).unwrap_or_else(|e| panic!("{TEST}: {e}"));
    readers_never_see_a_table_change();
    a_held_snapshot_and_a_full_table_build_anew();
    random_changes_answer_as_the_prefix_table();
}

/// Peers' /32s in 512 different /24s, the /24s themselves, a /16 over them, and IPv6.
fn prefixes() -> Vec<(IpAddr, u8)> {
    let mut p = vec![(v4(0xc612_0000), 15)];
    for i in 0..512u32 {
        p.push((v4(0xc612_0000 | i << 8), 24));
        p.push((v4(0xc612_0000 | i << 8 | (i % 250 + 1)), 32));
    }
    p.push(("2001:2::".parse().unwrap(), 48));
    p
}

/// Version `v` gives every prefix to peer `v`; odd versions remove every other /32
/// (their addresses then fall to their /24, also peer `v`).
fn version(v: u32) -> Vec<Change> {
    prefixes()
        .into_iter()
        .enumerate()
        .map(|(i, (a, l))| {
            let gone = v % 2 == 1 && l == 32 && i % 4 == 2;
            (a, l, (!gone).then_some(v))
        })
        .collect()
}

fn readers_never_see_a_table_change() {
    let mut w = Writer::new(true);
    let first = w.build(prefixes().into_iter().map(|(a, l)| (a, l, 0)));
    assert!(first.on_fib(), "{:?}", w.take_notes());
    let published = Arc::new(ArcSwap::from_pointee((first, 0u32)));
    let stop = Arc::new(AtomicBool::new(false));
    let looked = Arc::new(AtomicU64::new(0));
    let addrs: Vec<IpAddr> = prefixes().iter().map(|p| p.0).collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (published, stop, looked, addrs) = (
                published.clone(),
                stop.clone(),
                looked.clone(),
                addrs.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let snap = published.load();
                    let (allowed, v) = &**snap;
                    // Every answer of one snapshot is its version, however long it
                    // is held: a table changed under it would mix versions.
                    for _ in 0..4 {
                        for &a in &addrs {
                            assert_eq!(allowed.lookup(a), Some(*v), "{a} in version {v}");
                        }
                    }
                    looked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for v in 1..=300 {
        let current = published.load_full();
        let next = w.apply(&current.0, &version(v));
        drop(current);
        assert!(next.on_fib());
        published.store(Arc::new((next, v)));
        // Let the readers through a few snapshots of this version.
        let seen = looked.load(Ordering::Relaxed);
        while looked.load(Ordering::Relaxed) < seen + 2 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw a table change under it");
    }
    let notes = w.take_notes();
    assert!(notes.is_empty(), "no build anew: {notes:?}");
}

fn a_held_snapshot_and_a_full_table_build_anew() {
    let mut w = Writer::new(true);
    let t0 = w.build(prefixes().into_iter().map(|(a, l)| (a, l, 0)));
    let t1 = w.apply(&t0, &version(1));
    // `t0`'s table is the spare now, and still held: the next change cannot use it.
    let t2 = w.apply(&t1, &version(2));
    let notes = w.take_notes();
    assert!(notes.iter().any(|n| n.contains("still held")), "{notes:?}");
    for (a, _) in prefixes() {
        assert_eq!(t0.lookup(a), Some(0), "the held snapshot is unchanged");
        assert_eq!(t1.lookup(a), Some(1));
        assert_eq!(t2.lookup(a), Some(2));
    }
    drop((t0, t1));
    // Many more /24s with a /32 in them than the tables have second-level groups for.
    let many: Vec<Change> = (0..4000u32)
        .map(|i| (v4(0x6440_0000 | i << 8 | 7), 32, Some(9)))
        .collect();
    let t3 = w.apply(&t2, &many);
    let notes = w.take_notes();
    assert!(notes.iter().any(|n| n.contains("built anew")), "{notes:?}");
    assert!(t3.on_fib());
    for &(a, _, _) in &many {
        assert_eq!(t3.lookup(a), Some(9));
    }
    for (a, _) in prefixes() {
        assert_eq!(t3.lookup(a), Some(2));
    }
    // And on from there without building anew.
    drop(t2);
    let t4 = w.apply(&t3, &version(4));
    drop(t3);
    let t5 = w.apply(&t4, &version(5));
    assert!(w.take_notes().is_empty());
    assert_eq!(t5.lookup(v4(0x6440_0007)), Some(9));
    assert_eq!(t5.lookup(v4(0xc612_0001)), Some(5));
}

fn random_changes_answer_as_the_prefix_table() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut fib_w, mut table_w) = (Writer::new(true), Writer::new(false));
    let (mut fib, mut table) = (fib_w.build([]), table_w.build([]));
    assert!(fib.on_fib() && !table.on_fib());
    let addr = |r: u64| 0xc612_0000 | (r as u32 & 0x0001_ffff);
    let mask = |len: u8| if len == 0 { 0 } else { u32::MAX << (32 - len) };
    for round in 0..200 {
        let changes: Vec<Change> = (0..(next() % 40))
            .map(|_| {
                let r = next();
                let len = [0, 15, 16, 20, 24, 25, 30, 32][(r % 8) as usize];
                let id = (r >> 40) % 4 != 0;
                (
                    v4(addr(r >> 8) & mask(len)),
                    len,
                    id.then_some((r >> 48) as u32 % 100),
                )
            })
            .collect();
        fib = fib_w.apply(&fib, &changes);
        table = table_w.apply(&table, &changes);
        let sorted = |a: &Allowed| {
            let mut e = a.entries();
            e.sort();
            e
        };
        assert_eq!(sorted(&fib), sorted(&table), "round {round}");
        for _ in 0..300 {
            let a = v4(addr(next()));
            assert_eq!(fib.lookup(a), table.lookup(a), "round {round}: {a}");
        }
    }
    // Built anew only to grow.
    let notes = fib_w.take_notes();
    assert!(
        notes.iter().all(|n| n.contains("need more room")),
        "{notes:?}"
    );
}
