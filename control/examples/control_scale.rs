//! What the control plane costs with many peers (docs/benchmarks.md, "Scale"): making it
//! with N configured peers, the memory that takes, a timer tick while they are all idle,
//! one changed peer (its routes republished), one walk over every peer as a metrics
//! snapshot or `wg show` makes, and the memory of an active session: for min(N, 100000)
//! peers a keypair installed in `Sessions` as a completed handshake leaves it (keys,
//! replay window, receiver index, sending slot) and one packet each way counted by a
//! worker (its activity counters).
//!
//! usage: cargo run --release -p control --example control_scale [-- N...]
//! (default 10000 100000). Peer i has a random key, an IPv6 /128 and, for the first
//! 32768, an IPv4 /32. Prints a Markdown table.

use control::plane::{ControlPlane, Now, PeerSpec};
use dataplane::buf::HeapBuf;
use dataplane::session::{Keypair, Sessions};
use dataplane::tables::{LocalAddr, PortTables, Shared, Tables};
use rand_core::{OsRng, RngCore};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Resident memory of this process, bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn spec(i: usize) -> PeerSpec {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let v6 = u128::from(Ipv6Addr::new(0x2001, 2, 0, 0x1000, 0, 0, 0, 0)) + i as u128;
    let mut allowed_ips = vec![(IpAddr::V6(Ipv6Addr::from(v6)), 128)];
    if i < 32768 {
        let v4 = u32::from(Ipv4Addr::new(198, 19, 128, 0)) + i as u32;
        allowed_ips.push((IpAddr::V4(Ipv4Addr::from(v4)), 32));
    }
    PeerSpec {
        public_key: key,
        preshared_key: None,
        endpoint: None,
        allowed_ips,
        persistent_keepalive: None,
    }
}

fn now(mono: u64) -> Now {
    Now {
        mono,
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(mono),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let counts: Vec<usize> = {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().expect("N"))
            .collect();
        if args.is_empty() {
            vec![10_000, 100_000]
        } else {
            args
        }
    };
    println!(
        "| peers | make (s) | memory per peer (B) | idle tick (µs) | one peer changed (ms) | walk every peer (ms) | memory per session (B) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in counts {
        let specs: Vec<PeerSpec> = (0..n).map(spec).collect();
        let port = |addr: &str| {
            PortTables::new(
                [2, 0, 0, 0, 0, 1],
                vec![LocalAddr {
                    addr: addr.parse().unwrap(),
                    prefix_len: 24,
                }],
            )
        };
        let tables = Tables {
            ports: [port("198.19.0.2"), port("198.18.2.1")],
            allowed: Default::default(),
            listen_port: 51820,
            mtu: 1420,
            outer_dscp: Default::default(),
        };
        let before = resident();
        let t0 = Instant::now();
        let shared = Arc::new(Shared::new(tables, Sessions::new(22, n + 1)));
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let mut plane: ControlPlane<HeapBuf, OsRng> =
            ControlPlane::new(&key, &specs, shared.clone(), OsRng).expect("control plane");
        let made = t0.elapsed();
        let per_peer = resident().saturating_sub(before) as f64 / n as f64;

        let mut alloc = || Some(HeapBuf::new(&[]));
        let mut t = 1_000_000_000u64;
        plane.tick(now(t), &mut alloc);
        let ticks = 100;
        let t0 = Instant::now();
        for _ in 0..ticks {
            t += 10_000_000;
            plane.tick(now(t), &mut alloc);
        }
        let tick = t0.elapsed() / ticks;

        let mut changed = specs[n / 2].clone();
        changed.allowed_ips.pop();
        let t0 = Instant::now();
        assert!(plane.update_peer(changed));
        let change = t0.elapsed();

        let t0 = Instant::now();
        let walked = plane
            .peer_views()
            .filter(|v| v.activity.rx.packets == 0)
            .count();
        let walk = t0.elapsed();
        assert_eq!(walked, n);

        let active = n.min(100_000);
        let worker = shared.activity.writer();
        let before = resident();
        for (i, v) in plane.peer_views().take(active).enumerate() {
            let kp = Arc::new(Keypair::new(
                v.peer.clone(),
                i as u32,
                i as u32,
                &key,
                &key,
                true,
                t,
            ));
            shared.sessions.install(kp.clone()).expect("a free index");
            shared.sessions.set_sending(kp);
            worker.add_rx(v.peer.id, 1, 100, true, t);
            worker.add_tx(v.peer.id, 1, 100, true, t);
        }
        let per_session = resident().saturating_sub(before) as f64 / active as f64;

        println!(
            "| {n} | {:.2} | {per_peer:.0} | {:.1} | {:.1} | {:.1} | {per_session:.0} |",
            made.as_secs_f64(),
            tick.as_secs_f64() * 1e6,
            ms(change),
            ms(walk)
        );
        drop(plane);
        drop(specs);
    }
}
