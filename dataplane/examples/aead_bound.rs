//! The AEAD bound of this core: how many packets a second the worker's in-line
//! ChaCha20-Poly1305 (`crypto::TransportKey`, the software backend) can seal and open,
//! with nothing else to do. No gateway can forward faster on one core, so throughput
//! figures are quoted as a ratio to this (docs/benchmarks.md, "The AEAD bound").
//!
//! Every operation has a fresh counter (the nonce), and the packets come from a pool
//! of 64 MiB, larger than the caches, walked in order, as a worker's buffers would be.
//! Open runs on what seal produced, so every tag is checked for real.
//!
//! usage: cargo run --release -p dataplane --example aead_bound [-- SECONDS [SIZES] [--json]]
//! Prints a Markdown table per size (by default 64, 128, 256, 512, 1024, 1420 bytes;
//! SIZES is a comma-separated list): Mpps, Gbit/s of plaintext, clocks per packet, for
//! seal and open; best of 3 runs of SECONDS (default 1) each. `--json` prints one
//! JSON object instead, for `make bench`.

use dataplane::clock::tsc;
use dataplane::crypto::{TransportKey, TAG_LEN};
use std::hint::black_box;
use std::time::Instant;

const POOL_BYTES: usize = 64 << 20;
const SIZES: [usize; 6] = [64, 128, 256, 512, 1024, 1420];

struct Row {
    size: usize,
    seal: Run,
    open: Run,
}

struct Run {
    mpps: f64,
    clocks: f64,
}

/// Best of three runs of `secs` seconds of `op` over the pool; `op(i, counter)` works
/// on packet `i`.
fn best(secs: f64, count: usize, mut op: impl FnMut(usize, u64)) -> Run {
    let mut best = Run {
        mpps: 0.0,
        clocks: f64::MAX,
    };
    let mut counter = 0u64;
    for _ in 0..3 {
        let (t0, c0) = (Instant::now(), tsc());
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            // A lap of the pool between clock reads.
            for i in 0..count {
                op(i, counter);
                counter += 1;
            }
            n += count as u64;
        }
        let dt = t0.elapsed().as_secs_f64();
        let clocks = (tsc() - c0) as f64 / n as f64;
        let mpps = n as f64 / dt / 1e6;
        if mpps > best.mpps {
            best = Run { mpps, clocks };
        }
    }
    best
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let secs: f64 = args
        .first()
        .map(|a| a.parse().expect("SECONDS is a number"))
        .unwrap_or(1.0);
    let sizes: Vec<usize> = args.get(1).map_or(SIZES.to_vec(), |list| {
        list.split(',')
            .map(|s| s.parse().expect("SIZES: comma-separated byte counts"))
            .collect()
    });
    let key = TransportKey::new(&[0x42; 32]);
    let mut rows = Vec::new();
    for size in sizes {
        let slot = size + TAG_LEN;
        let count = POOL_BYTES / slot;
        let mut pool = vec![0u8; count * slot];
        for (i, b) in pool.iter_mut().enumerate() {
            *b = (i * 31) as u8;
        }
        let seal = best(secs, count, |i, counter| {
            let p = &mut pool[i * slot..(i + 1) * slot];
            let tag = key.seal(counter, &mut p[..size]);
            p[size..].copy_from_slice(&tag);
        });
        // Seal the pool once with known counters, so that open checks real tags: each
        // open restores the ciphertext it decrypted (a copy), so the pool stays valid.
        for i in 0..count {
            let p = &mut pool[i * slot..(i + 1) * slot];
            let tag = key.seal(i as u64, &mut p[..size]);
            p[size..].copy_from_slice(&tag);
        }
        let sealed = pool.clone();
        let mut failed = 0u64;
        let open = best(secs, count, |i, _| {
            let p = &mut pool[i * slot..(i + 1) * slot];
            p.copy_from_slice(&sealed[i * slot..(i + 1) * slot]);
            if key.open(i as u64, p).is_none() {
                failed += 1;
            }
        });
        assert_eq!(failed, 0, "every tag checks");
        black_box(&pool);
        rows.push(Row { size, seal, open });
    }
    let gbit = |r: &Run, size: usize| r.mpps * 1e6 * size as f64 * 8.0 / 1e9;
    if json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{{\"size\": {}, \"seal_mpps\": {:.4}, \"seal_clocks\": {:.1}, \"open_mpps\": {:.4}, \"open_clocks\": {:.1}}}",
                    r.size, r.seal.mpps, r.seal.clocks, r.open.mpps, r.open.clocks
                )
            })
            .collect();
        println!(
            "{{\"seconds\": {secs}, \"backend\": \"ring\", \"sizes\": [{}]}}",
            items.join(", ")
        );
        return;
    }
    println!("| size | seal Mpps | seal Gbit/s | seal clocks/pkt | open Mpps | open Gbit/s | open clocks/pkt |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} |",
            r.size,
            r.seal.mpps,
            gbit(&r.seal, r.size),
            r.seal.clocks,
            r.open.mpps,
            gbit(&r.open, r.size),
            r.open.clocks
        );
    }
    println!(
        "\nopen includes copying the sealed packet back in place (size + 16 bytes) before \
         each open, as the pool must stay sealed."
    );
}
