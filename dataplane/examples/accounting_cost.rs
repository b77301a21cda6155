//! What the runtime accounting costs (docs/benchmarks.md, "Runtime accounting"): one
//! `mark` of the worker loop is a TSC read and four counter updates of the stage.
//!
//! usage: cargo run --release -p dataplane --example accounting_cost
//! Prints clocks and nanoseconds per mark, best of 7 runs of 10 million marks.

use dataplane::clock::tsc;
use dataplane::counters::{Stage, WorkerCounters};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let c = WorkerCounters::default();
    let rt = &c.runtime;
    let n = 10_000_000u64;
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        let (t0, c0) = (Instant::now(), tsc());
        let mut t = tsc();
        for i in 0..n {
            let t1 = tsc();
            rt.record(
                black_box(Stage::ALL[(i % 8) as usize]),
                black_box(32),
                t1.wrapping_sub(t),
            );
            t = t1;
        }
        let ns = t0.elapsed().as_nanos() as f64 / n as f64;
        let clocks = (tsc() - c0) as f64 / n as f64;
        if ns < best.0 {
            best = (ns, clocks);
        }
    }
    println!(
        "one mark (TSC read + stage counters): {:.1} ns, {:.0} clocks",
        best.0, best.1
    );
    println!(
        "per poll: 2 marks when idle ({:.0} clocks), about 8 with traffic on both ports \
         ({:.0} clocks, spread over the vector's packets)",
        2.0 * best.1,
        8.0 * best.1
    );
    black_box(&c);
}
