//! The AEAD bound of this core: how many packets a second the worker's in-line
//! ChaCha20-Poly1305 (the software backend, `crypto::Backend::Software`) can seal and
//! open, with nothing else to do. No gateway can forward faster on one core, so
//! throughput figures are quoted as a ratio to this (docs/benchmarks.md, "The AEAD
//! bound").
//!
//! `--compare` measures, in the same run and on the same core, every in-line candidate
//! (docs/benchmarks.md, "Which AEAD in line"): `ring` (BoringSSL's assembly), the
//! `chacha20poly1305` crate (RustCrypto, AVX2 backends chosen at run time), `aws-lc-rs`
//! (AWS-LC's assembly) and the Intel IPsec-MB library through its job API, a vector of
//! 256 packets at a time (`dpdk_sys::ipsec_mb`).
//!
//! Every operation has a fresh counter (the nonce), and the packets come from a pool
//! of 64 MiB, larger than the caches, walked in order, as a worker's buffers would be.
//! Open runs on what seal produced, so every tag is checked for real.
//!
//! usage: cargo run --release -p dataplane --example aead_bound [-- SECONDS [SIZES] [--json] [--compare]]
//! Prints a Markdown table per size (by default 64, 128, 256, 512, 1024, 1420 bytes;
//! SIZES is a comma-separated list): Mpps, Gbit/s of plaintext, clocks per packet, for
//! seal and open; best of 3 runs of SECONDS (default 1) each. `--json` prints one
//! JSON object instead, for `make bench`: `sizes` holds the default backend's rows,
//! `candidates` (with `--compare`) every candidate's.

use dataplane::clock::tsc;
use dataplane::crypto::{TransportKey, TAG_LEN};
use dpdk_sys::ipsec_mb::{self, MbManager};
use std::hint::black_box;
use std::time::Instant;

const POOL_BYTES: usize = 64 << 20;
const SIZES: [usize; 6] = [64, 128, 256, 512, 1024, 1420];
/// Packets per call, as the worker's vectors.
const VECTOR: usize = 256;
const KEY: [u8; 32] = [0x42; 32];

/// One in-line implementation, driven a vector at a time. `chunk` holds whole slots of
/// `slot` bytes: `size` bytes of data followed by the tag; packet `i` of the vector
/// uses counter `first + i`.
trait Candidate {
    fn name(&self) -> &'static str;
    fn seal(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64);
    /// How many packets failed to open.
    fn open(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64) -> u64;
}

/// `ring`, through the worker's own key type.
struct Ring(TransportKey);

impl Candidate for Ring {
    fn name(&self) -> &'static str {
        "ring"
    }
    fn seal(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64) {
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            let tag = self.0.seal(first + i as u64, &mut p[..size]);
            p[size..].copy_from_slice(&tag);
        }
    }
    fn open(&mut self, chunk: &mut [u8], slot: usize, _size: usize, first: u64) -> u64 {
        let mut failed = 0;
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            failed += self.0.open(first + i as u64, p).is_none() as u64;
        }
        failed
    }
}

fn nonce12(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

/// The `chacha20poly1305` crate (RustCrypto).
struct RustCrypto(chacha20poly1305::ChaCha20Poly1305);

impl Candidate for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }
    fn seal(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64) {
        use chacha20poly1305::AeadInPlace;
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            let (data, tag) = p.split_at_mut(size);
            let t = self
                .0
                .encrypt_in_place_detached(&nonce12(first + i as u64).into(), &[], data)
                .expect("seal");
            tag.copy_from_slice(&t);
        }
    }
    fn open(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64) -> u64 {
        use chacha20poly1305::AeadInPlace;
        let mut failed = 0;
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            let (data, tag) = p.split_at_mut(size);
            let n = nonce12(first + i as u64).into();
            failed += self
                .0
                .decrypt_in_place_detached(&n, &[], data, (&*tag).into())
                .is_err() as u64;
        }
        failed
    }
}

/// `aws-lc-rs`.
struct AwsLc(aws_lc_rs::aead::LessSafeKey);

impl Candidate for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }
    fn seal(&mut self, chunk: &mut [u8], slot: usize, size: usize, first: u64) {
        use aws_lc_rs::aead::{Aad, Nonce};
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            let (data, tag) = p.split_at_mut(size);
            let n = Nonce::assume_unique_for_key(nonce12(first + i as u64));
            let t = self
                .0
                .seal_in_place_separate_tag(n, Aad::empty(), data)
                .expect("seal");
            tag.copy_from_slice(t.as_ref());
        }
    }
    fn open(&mut self, chunk: &mut [u8], slot: usize, _size: usize, first: u64) -> u64 {
        use aws_lc_rs::aead::{Aad, Nonce};
        let mut failed = 0;
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            let n = Nonce::assume_unique_for_key(nonce12(first + i as u64));
            failed += self.0.open_in_place(n, Aad::empty(), p).is_err() as u64;
        }
        failed
    }
}

/// The Intel IPsec-MB library's job API, a vector per batch.
struct IpsecMb(MbManager);

impl IpsecMb {
    fn run(&mut self, dir: ipsec_mb::Direction, chunk: &mut [u8], slot: usize, first: u64) -> u64 {
        let mut failed = 0;
        let mut b = self.0.batch(dir);
        for (i, p) in chunk.chunks_exact_mut(slot).enumerate() {
            b.push(&KEY, first + i as u64, p, i as u16);
        }
        b.finish(|_, ok| failed += !ok as u64);
        failed
    }
}

impl Candidate for IpsecMb {
    fn name(&self) -> &'static str {
        "ipsec-mb"
    }
    fn seal(&mut self, chunk: &mut [u8], slot: usize, _size: usize, first: u64) {
        let failed = self.run(ipsec_mb::Direction::Seal, chunk, slot, first);
        assert_eq!(failed, 0, "ipsec-mb seal");
    }
    fn open(&mut self, chunk: &mut [u8], slot: usize, _size: usize, first: u64) -> u64 {
        self.run(ipsec_mb::Direction::Open, chunk, slot, first)
    }
}

struct Row {
    size: usize,
    seal: Run,
    open: Run,
}

struct Run {
    mpps: f64,
    clocks: f64,
}

/// Best of three runs of `secs` seconds of `op` over the pool; `op(v, counter)` works
/// on vector `v` of the pool with counters from `counter` and returns the TSC clocks of
/// the part to count (the AEAD calls, not the preparation around them).
fn best(secs: f64, vectors: usize, packets: usize, mut op: impl FnMut(usize, u64) -> u64) -> Run {
    let mut best = Run {
        mpps: 0.0,
        clocks: f64::MAX,
    };
    let mut counter = 0u64;
    for _ in 0..3 {
        let (t0, c0) = (Instant::now(), tsc());
        let (mut n, mut timed) = (0u64, 0u64);
        while t0.elapsed().as_secs_f64() < secs {
            // A lap of the pool between clock reads.
            for v in 0..vectors {
                timed += op(v, counter);
                counter += VECTOR as u64;
            }
            n += packets as u64;
        }
        let hz = (tsc() - c0) as f64 / t0.elapsed().as_secs_f64();
        let clocks = timed as f64 / n as f64;
        let mpps = hz / clocks / 1e6;
        if mpps > best.mpps {
            best = Run { mpps, clocks };
        }
    }
    best
}

/// TSC clocks that `f` takes.
#[inline]
fn timed(f: impl FnOnce()) -> u64 {
    let t = tsc();
    f();
    tsc() - t
}

/// Seal and open rates of `c` for `size`-byte packets.
fn measure(c: &mut dyn Candidate, secs: f64, size: usize) -> Row {
    let slot = size + TAG_LEN;
    let vectors = POOL_BYTES / slot / VECTOR;
    let packets = vectors * VECTOR;
    let vbytes = VECTOR * slot;
    let mut pool = vec![0u8; vectors * vbytes];
    for (i, b) in pool.iter_mut().enumerate() {
        *b = (i * 31) as u8;
    }
    let seal = best(secs, vectors, packets, |v, counter| {
        let chunk = &mut pool[v * vbytes..(v + 1) * vbytes];
        timed(|| c.seal(chunk, slot, size, counter))
    });
    // Seal the pool once with known counters, so that open checks real tags: each
    // vector is copied back from the sealed pool before it is opened (not counted).
    for v in 0..vectors {
        c.seal(
            &mut pool[v * vbytes..(v + 1) * vbytes],
            slot,
            size,
            (v * VECTOR) as u64,
        );
    }
    let sealed = pool.clone();
    let mut failed = 0u64;
    let open = best(secs, vectors, packets, |v, _| {
        let chunk = &mut pool[v * vbytes..(v + 1) * vbytes];
        chunk.copy_from_slice(&sealed[v * vbytes..(v + 1) * vbytes]);
        timed(|| failed += c.open(chunk, slot, size, (v * VECTOR) as u64))
    });
    assert_eq!(failed, 0, "{}: every tag checks", c.name());
    black_box(&pool);
    Row { size, seal, open }
}

fn candidates() -> Vec<Box<dyn Candidate>> {
    use chacha20poly1305::KeyInit;
    let aws = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::CHACHA20_POLY1305, &KEY)
        .expect("32-byte key");
    vec![
        Box::new(Ring(TransportKey::new(&KEY))),
        Box::new(RustCrypto(chacha20poly1305::ChaCha20Poly1305::new(
            &KEY.into(),
        ))),
        Box::new(AwsLc(aws_lc_rs::aead::LessSafeKey::new(aws))),
        Box::new(IpsecMb(MbManager::new().expect("an IPsec-MB manager"))),
    ]
}

fn json_rows(rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"size\": {}, \"seal_mpps\": {:.4}, \"seal_clocks\": {:.1}, \"open_mpps\": {:.4}, \"open_clocks\": {:.1}}}",
                r.size, r.seal.mpps, r.seal.clocks, r.open.mpps, r.open.clocks
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let compare = args.iter().any(|a| a == "--compare");
    args.retain(|a| a != "--json" && a != "--compare");
    let secs: f64 = args
        .first()
        .map(|a| a.parse().expect("SECONDS is a number"))
        .unwrap_or(1.0);
    let sizes: Vec<usize> = args.get(1).map_or(SIZES.to_vec(), |list| {
        list.split(',')
            .map(|s| s.parse().expect("SIZES: comma-separated byte counts"))
            .collect()
    });
    let default = dataplane::crypto::SOFTWARE_NAME;
    let mut all: Vec<(&'static str, Vec<Row>)> = Vec::new();
    for mut c in candidates() {
        if !compare && c.name() != default {
            continue;
        }
        let rows = sizes
            .iter()
            .map(|&size| measure(&mut *c, secs, size))
            .collect();
        all.push((c.name(), rows));
    }
    let bound = &all
        .iter()
        .find(|(name, _)| *name == default)
        .expect("the default backend is a candidate")
        .1;
    if json {
        let cands: Vec<String> = all
            .iter()
            .map(|(name, rows)| format!("\"{name}\": {}", json_rows(rows)))
            .collect();
        println!(
            "{{\"seconds\": {secs}, \"backend\": \"{default}\", \"sizes\": {}, \"candidates\": {{{}}}}}",
            json_rows(bound),
            cands.join(", ")
        );
        return;
    }
    let gbit = |r: &Run, size: usize| r.mpps * 1e6 * size as f64 * 8.0 / 1e9;
    for (name, rows) in &all {
        let mark = if *name == default { " (default)" } else { "" };
        println!("\n{name}{mark}\n");
        println!("| size | seal Mpps | seal Gbit/s | seal clocks/pkt | open Mpps | open Gbit/s | open clocks/pkt |");
        println!("|---|---|---|---|---|---|---|");
        for r in rows {
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
    }
    println!(
        "\nOnly the AEAD calls are counted: before each open, the sealed vector is copied \
         back in place (the pool must stay sealed), outside the clock."
    );
}
