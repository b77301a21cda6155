//! How long a worker's idle sleep really lasts: `std::thread::sleep` of 1 to 256 µs,
//! with the kernel's default timer slack (50 µs) and with the 1 ns slack that
//! `Worker::run` sets for `idle: adaptive`. The overshoot is latency added to the first
//! packet after a quiet spell (docs/benchmarks.md, "Adaptive idle").
//!
//! usage: cargo run --release -p dataplane --example idle_wakeup [-- SAMPLES] [--json]
//! Prints, for each asked duration and each slack, the median and 99th percentile of
//! the time the sleep took, over SAMPLES sleeps (default 2000).

use dataplane::clock::set_timer_slack_ns;
use std::time::{Duration, Instant};

const ASKED_US: [u64; 5] = [1, 4, 16, 64, 256];

fn figures(asked: Duration, samples: usize) -> (f64, f64) {
    let mut took: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            std::thread::sleep(asked);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    took.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (at(0.5), at(0.99))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let samples: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("SAMPLES is a number"))
        .unwrap_or(2000);
    let mut rows = Vec::new();
    for (slack_name, slack_ns) in [("default (50 us)", 50_000u64), ("1 ns (adaptive idle)", 1)] {
        assert!(set_timer_slack_ns(slack_ns), "prctl(PR_SET_TIMERSLACK)");
        for us in ASKED_US {
            let (median, p99) = figures(Duration::from_micros(us), samples);
            rows.push((slack_name, slack_ns, us, median, p99));
        }
    }
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|(_, slack, us, med, p99)| {
                format!(
                    "{{\"slack_ns\": {slack}, \"asked_us\": {us}, \"median_us\": {med:.1}, \"p99_us\": {p99:.1}}}"
                )
            })
            .collect();
        println!(
            "{{\"samples\": {samples}, \"rows\": [{}]}}",
            items.join(", ")
        );
        return;
    }
    println!("| timer slack | asked | median | p99 |");
    println!("|---|---|---|---|");
    for (name, _, us, med, p99) in rows {
        println!("| {name} | {us} us | {med:.1} us | {p99:.1} us |");
    }
}
