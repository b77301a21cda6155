//! What the route export costs with many live peers (docs/scale-out.md, section 6):
//! the control thread's diff per peer (`export::Routes::step`, as the sweeps run it,
//! `export::BATCH` peers a step), for a first sweep (every route new) and a sweep
//! where nothing changed; and, given an interface, the export thread's rate of route
//! writes into a kernel table over rtnetlink (added, then deleted).
//!
//! usage: export_sweep [N [IFACE TABLE]]  (N defaults to 1000000). With IFACE, run it
//! as root in a network namespace of its own: it writes N routes through IFACE into
//! TABLE and removes them.

use control::export::netlink::{if_index, Op, Route, Writer};
use control::export::{Routes, BATCH};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant;

fn route(i: usize) -> (IpAddr, u8) {
    let v6 = u128::from(Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 0)) + i as u128;
    (IpAddr::V6(Ipv6Addr::from(v6)), 128)
}

fn sweep(r: &mut Routes, nets: &[Vec<(IpAddr, u8)>], ops: &mut Vec<Op>) -> f64 {
    let t0 = Instant::now();
    r.begin();
    loop {
        let from = r.cursor() as usize;
        let peers = nets
            .iter()
            .enumerate()
            .skip(from)
            .map(|(i, n)| (i as u32, true, n.as_slice()));
        if r.step(peers, BATCH, ops) {
            break;
        }
    }
    t0.elapsed().as_secs_f64() * 1e9 / nets.len() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(1_000_000, |a| a.parse().expect("N"));
    let nets: Vec<Vec<(IpAddr, u8)>> = (0..n).map(|i| vec![route(i)]).collect();
    let mut r = Routes::default();
    let mut ops = Vec::new();
    let first = sweep(&mut r, &nets, &mut ops);
    assert_eq!(ops.len(), n);
    let mut none = Vec::new();
    let steady = sweep(&mut r, &nets, &mut none);
    assert!(none.is_empty());
    println!("| peers | first sweep (ns a peer) | unchanged sweep (ns a peer) | kernel adds a second | kernel deletes a second |");
    print!("| {n} | {first:.0} | {steady:.0} |");
    if let [_, iface, table] = &args[..] {
        let oif = if_index(iface).expect("interface");
        let mut w = Writer::open(table.parse().expect("TABLE"), oif).expect("netlink");
        let adds: Vec<Op> = (0..n)
            .map(|i| {
                let (addr, len) = route(i);
                Op::Route(true, Route { addr, len })
            })
            .collect();
        let t0 = Instant::now();
        let a = w.apply(&adds).expect("adds");
        let add_rate = n as f64 / t0.elapsed().as_secs_f64();
        assert_eq!((a.ok, a.failed), (n as u64, 0), "every add taken");
        let dels: Vec<Op> = adds
            .iter()
            .map(|op| match *op {
                Op::Route(_, r) | Op::Addr(_, r) => Op::Route(false, r),
            })
            .collect();
        let t0 = Instant::now();
        let d = w.apply(&dels).expect("deletes");
        let del_rate = n as f64 / t0.elapsed().as_secs_f64();
        assert_eq!((d.ok, d.failed), (n as u64, 0), "every delete taken");
        println!(" {add_rate:.0} | {del_rate:.0} |");
    } else {
        println!(" - | - |");
    }
}
