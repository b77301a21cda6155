//! What keeping one flow's order costs per packet when its AEAD is shared between
//! workers (docs/benchmarks.md, "One tunnel on many cores"): DPDK's `rte_reorder` (a
//! sequence number in each mbuf, insert, drain) against the stages' flight queue (the
//! packets in arrival order, a handed-out packet's place empty until it is back, leaving
//! from the front). Both on vectors of 256 mbufs whose first half the owner opened
//! itself and whose second half comes back from a helper: insert (or join) the first
//! half, take out what can leave, then the second half, and take out the rest.
//!
//! DPDK 22.11's `rte_reorder` takes its first sequence number from the first packet
//! inserted and refuses anything older afterwards, so the owner's own half goes in
//! first, as it would in the worker.
//!
//! usage: sudo cargo run --release -p dataplane --example reorder_cost
//! Prints clocks per packet, best of 7 runs of 20000 vectors.

use dataplane::clock::tsc;
use dpdk_sys::{sys, Eal, Mbuf, Mempool, SOCKET_ID_ANY};
use std::collections::VecDeque;
use std::hint::black_box;

const VECTOR: usize = 256;
const VECTORS: usize = 20_000;

/// A place in the flight: the packet, or `None` while a helper has it.
struct Flying {
    pkt: Option<Mbuf>,
    done: bool,
}

/// The flight: clocks per packet.
fn flight(pkts: &mut Vec<Mbuf>) -> f64 {
    let mut q: VecDeque<Flying> = VecDeque::with_capacity(4 * VECTOR);
    let mut away: Vec<Mbuf> = Vec::with_capacity(VECTOR);
    let mut out: Vec<Mbuf> = Vec::with_capacity(VECTOR);
    let mut base = 0u64;
    let t0 = tsc();
    for _ in 0..VECTORS {
        let first = base + q.len() as u64;
        // The second half goes to the helper; the first is done here.
        away.extend(pkts.drain(VECTOR / 2..));
        for p in pkts.drain(..) {
            q.push_back(Flying {
                pkt: Some(p),
                done: true,
            });
        }
        for _ in 0..VECTOR / 2 {
            q.push_back(Flying {
                pkt: None,
                done: false,
            });
        }
        leave(&mut q, &mut base, &mut out);
        // The helper's half is back.
        let at = (first - base) as usize + VECTOR / 2;
        for (i, p) in away.drain(..).enumerate() {
            let f = &mut q[at + i];
            f.pkt = Some(p);
            f.done = true;
        }
        leave(&mut q, &mut base, &mut out);
        black_box(&out);
        pkts.append(&mut out);
    }
    (tsc() - t0) as f64 / (VECTORS * VECTOR) as f64
}

fn leave(q: &mut VecDeque<Flying>, base: &mut u64, out: &mut Vec<Mbuf>) {
    while q.front().is_some_and(|f| f.done && f.pkt.is_some()) {
        let f = q.pop_front().expect("front");
        *base += 1;
        out.push(f.pkt.expect("checked"));
    }
}

/// `rte_reorder`: clocks per packet.
fn reorder(pkts: &[Mbuf]) -> f64 {
    // SAFETY: the name is a C string; the buffer is freed below, once empty.
    let b = unsafe {
        sys::rte_reorder_create(c"wgdp_reorder_cost".as_ptr(), SOCKET_ID_ANY as u32, 1024)
    };
    assert!(!b.is_null(), "rte_reorder_create failed");
    let mut drained = vec![std::ptr::null_mut::<sys::rte_mbuf>(); VECTOR];
    let mut seqn: u32 = 0;
    let t0 = tsc();
    for _ in 0..VECTORS {
        for half in [0..VECTOR / 2, VECTOR / 2..VECTOR] {
            for p in &pkts[half] {
                // SAFETY: the mbuf is alive and ours; the sequence number is the
                // library's dynamic field, registered when the buffer was made.
                unsafe {
                    *sys::rte_reorder_seqn(p.as_ptr()) = seqn;
                    seqn = seqn.wrapping_add(1);
                    let r = sys::rte_reorder_insert(b, p.as_ptr());
                    assert_eq!(r, 0, "rte_reorder_insert refused a packet");
                }
            }
            // SAFETY: `drained` has room for VECTOR pointers.
            let n = unsafe { sys::rte_reorder_drain(b, drained.as_mut_ptr(), VECTOR as u32) };
            black_box(n);
        }
    }
    let clocks = (tsc() - t0) as f64 / (VECTORS * VECTOR) as f64;
    // SAFETY: every packet was drained; the mbufs stay owned by `pkts`.
    unsafe { sys::rte_reorder_free(b) };
    clocks
}

fn main() {
    let eal = Eal::init(&[
        "--no-pci",
        "--no-huge",
        "--no-shconf",
        "-m",
        "128",
        "-l",
        "0",
        "--log-level",
        "warning",
        "--file-prefix=wgdp-reorder-cost",
    ])
    .expect("EAL");
    let room = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let pool = Mempool::pktmbuf("rc_pool", 1023, 0, room, SOCKET_ID_ANY).expect("pool");
    let mut pkts = Vec::new();
    assert!(pool.alloc_bulk(&mut pkts, VECTOR));
    let (mut best_flight, mut best_reorder) = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        best_flight = best_flight.min(flight(&mut pkts));
        best_reorder = best_reorder.min(reorder(&pkts));
    }
    println!("flight queue: {best_flight:.1} clocks per packet");
    println!("rte_reorder:  {best_reorder:.1} clocks per packet");
    drop(pkts);
    drop(pool);
    drop(eal);
}
