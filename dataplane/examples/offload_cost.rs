//! What the offload stage costs per packet, next to the AEAD that every packet pays
//! anyway (docs/benchmarks.md, "Checksums and super-packets").
//!
//! - detect: `offload::complete` on a 1400-byte TCP packet whose checksum is already
//!   complete (what every packet from a host-side port pays: the pseudo-header sum and
//!   a compare).
//! - complete: the same packet with its checksum left partial (the sum over the whole
//!   segment).
//! - cut: a 64 KB TCP super-packet cut into pieces of the tunnel MTU (1420), per
//!   super-packet and per piece (copy of headers and payload, checksums of each piece).
//! - seal: ChaCha20-Poly1305 (`ring`, a fixed reference; the worker's in-line backend is
//!   faster, see `aead_bound`) of a 1420-byte packet, the scale the other costs are
//!   read against.
//!
//! usage: cargo run --release -p dataplane --example offload_cost [-- ROUNDS]
//! Prints a Markdown table: nanoseconds and TSC clocks per operation, best of ROUNDS
//! (default 7) runs of about 200 ms each.

use dataplane::clock::tsc;
use dataplane::offload;
use dataplane::wire::checksum;
use dataplane::wire::{IpProtocol, Ipv4Packet};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 2);

/// A TCP/IPv4 packet of `len` bytes with a pseudo-random payload and the partial
/// checksum a host leaves for its card.
fn tcp_partial(len: usize) -> Vec<u8> {
    let mut ip = vec![0u8; len];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for b in ip[40..].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    {
        let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(len as u16);
        p.set_dont_frag(true);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::Tcp);
        p.set_src_addr(SRC);
        p.set_dst_addr(DST);
        p.fill_checksum();
    }
    ip[32] = 5 << 4; // data offset
    ip[33] = 0x18; // PSH, ACK
    let pseudo = checksum::pseudo_header_v4(SRC, DST, IpProtocol::Tcp, (len - 20) as u16);
    ip[36..38].copy_from_slice(&pseudo.to_be_bytes());
    ip
}

/// Best (ns, clocks) per operation over `rounds` runs of `f`, which does `ops`
/// operations per call.
fn measure(rounds: usize, ops: usize, mut f: impl FnMut()) -> (f64, f64) {
    // Calls per round: about 200 ms.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_millis() < 50 {
        f();
        calls += 1;
    }
    let calls = calls * 4;
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let (t0, c0) = (Instant::now(), tsc());
        for _ in 0..calls {
            f();
        }
        let (dt, dc) = (t0.elapsed().as_nanos() as f64, (tsc() - c0) as f64);
        let n = (calls as usize * ops) as f64;
        if dt / n < best.0 {
            best = (dt / n, dc / n);
        }
    }
    best
}

fn main() {
    let rounds = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROUNDS is a number"))
        .unwrap_or(7);

    let partial = tcp_partial(1400);
    let mut done = partial.clone();
    assert!(offload::complete(&mut done), "the sample is partial");
    let field = [partial[36], partial[37]];

    let detect = measure(rounds, 1, || {
        black_box(offload::complete(black_box(&mut done)));
    });
    let mut work = partial.clone();
    let complete = measure(rounds, 1, || {
        work[36..38].copy_from_slice(&field);
        black_box(offload::complete(black_box(&mut work)));
    });

    let big = tcp_partial(65_000);
    let plan = offload::plan(&big, 1420, None).expect("a TCP super-packet can be cut");
    let mut pieces: Vec<Vec<u8>> = (0..plan.count)
        .map(|i| vec![0u8; plan.piece_len(big.len(), i)])
        .collect();
    let cut = measure(rounds, 1, || {
        let plan = offload::plan(black_box(&big), 1420, None).unwrap();
        for (i, out) in pieces.iter_mut().enumerate() {
            offload::write(&big, &plan, i, out);
        }
        black_box(&pieces);
    });

    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).unwrap());
    let mut buf = vec![0u8; 1420];
    let mut counter = 0u64;
    let seal = measure(rounds, 1, || {
        counter += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&counter.to_le_bytes());
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf)
            .unwrap();
        let _ = black_box(tag);
    });

    let per_piece = (cut.0 / plan.count as f64, cut.1 / plan.count as f64);
    println!("| operation | ns | clocks (TSC) | against the seal of 1420 B |");
    println!("|---|---|---|---|");
    for (name, (ns, clk)) in [
        ("detect: 1400 B TCP, checksum complete", detect),
        ("complete: 1400 B TCP, checksum partial", complete),
        (
            "cut: 65000 B TCP super-packet, per piece of 1420 B",
            per_piece,
        ),
        ("seal: ChaCha20-Poly1305 of 1420 B (ring)", seal),
    ] {
        println!("| {name} | {ns:.1} | {clk:.0} | {:.3} |", ns / seal.0);
    }
    println!(
        "\ncut: {} pieces per super-packet, {:.1} us and {:.0} clocks per super-packet",
        plan.count,
        cut.0 / 1000.0,
        cut.1
    );
}
