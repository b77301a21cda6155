//! `Backend::Cryptodev` against the in-line backends (`Backend::Software`, IPsec-MB, and
//! `Backend::Ring`) on the `ipsec_mb` crypto vdevs
//! (`crypto_aesni_mb0`, `crypto_chacha20_poly1305_0`).
//!
//! On each device: a few hundred packets of varying sizes under several keypairs, in a
//! vector where some packets have no job and the jobs are not in packet order, sealed
//! by both backends byte for byte alike; opened again by both with a few tags and
//! ciphertexts tampered with, which fail alone; buffers in plain memory going through
//! the software path; two workers on two lcores sharing keypairs, each on its own queue
//! pair. Afterwards every op, session and mbuf is back in its pool.
//!
//! Then, without asserting anything, seal throughput on one core at 64 and 1420 bytes,
//! software against each device (run with `--release --nocapture` to read it).
//!
//! Needs root (DPDK EAL); skipped with a message otherwise. `rte_eal_init` runs once per
//! process, so this file holds a single test. No PCI device is probed and no hugepage
//! is used.

use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::crypto::{Backend, CryptoJob, TAG_LEN};
use dataplane::session::{Keypair, Peer};
use dpdk_sys::{CryptoDev, CryptoDevConfig, Eal, Mbuf, Mempool, SOCKET_ID_ANY};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "dpdk_cryptodev";
const DEVICES: [&str; 2] = ["crypto_aesni_mb0", "crypto_chacha20_poly1305_0"];
const PACKETS: usize = 300;
const KEYPAIRS: usize = 5;
/// Every this many packets, one has no job (the stage refused it before crypto).
const NO_JOB_EVERY: usize = 7;
/// Every this many jobs, the open is tampered with (tag or ciphertext).
const TAMPER_EVERY: usize = 11;
const POOL_SIZE: u32 = 4095;

/// The EAL options of `ffi/tests`, with this file's own runtime prefix and the vdevs.
const EAL_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "-l",
    "0-1",
    "--log-level",
    "warning",
    "--file-prefix=wgdp-dpdk_cryptodev",
    "--vdev",
    "crypto_aesni_mb0",
    "--vdev",
    "crypto_chacha20_poly1305_0",
];

/// `/proc/self` belongs to the process's effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn cryptodev_backend_matches_software() {
    if !is_root() {
        eprintln!("{TEST}: skipped: needs root (DPDK EAL)");
        return;
    }
    let eal = Eal::init(EAL_ARGS).unwrap_or_else(|e| panic!("{TEST}: {e}"));
    let data_room = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
    let pool = Mempool::pktmbuf("dc_pool", POOL_SIZE, 128, data_room, SOCKET_ID_ANY).unwrap();

    let mut devices = Vec::new();
    for name in DEVICES {
        let id = CryptoDev::by_name(name).unwrap();
        let config = CryptoDevConfig {
            queue_pairs: 2,
            ..CryptoDevConfig::default()
        };
        let dev = CryptoDev::start(id, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
        same_as_software(&dev, &pool);
        two_workers(&eal, &dev, &pool);
        assert_eq!(dev.ops_in_use(), 0, "{name}: ops left out");
        assert_eq!(dev.sessions_in_use(), 0, "{name}: sessions left");
        assert_eq!(pool.in_use_count(), 0, "{name}: mbufs left out");
        devices.push(dev);
    }

    throughput(&devices, &pool);
    drop(devices);
    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), pool.capacity());
}

/// Keypair `i` of the sealing side and its mirror on the opening side.
fn keypairs() -> (Vec<Arc<Keypair>>, Vec<Arc<Keypair>>) {
    let peer = Arc::new(Peer::new(0, None));
    let key = |i: usize, dir: u8| [i as u8 * 16 + dir; 32];
    let sealers = (0..KEYPAIRS)
        .map(|i| {
            Arc::new(Keypair::new(
                peer.clone(),
                i as u32,
                100 + i as u32,
                &key(i, 1),
                &key(i, 2),
                true,
                0,
            ))
        })
        .collect();
    let openers = (0..KEYPAIRS)
        .map(|i| {
            Arc::new(Keypair::new(
                peer.clone(),
                100 + i as u32,
                i as u32,
                &key(i, 2),
                &key(i, 1),
                false,
                0,
            ))
        })
        .collect();
    (sealers, openers)
}

/// Packet `i`'s plaintext: 0 to 1420 bytes.
fn plaintext(i: usize) -> Vec<u8> {
    let len = (i * 97) % 1421;
    (0..len).map(|b| (b ^ (i * 31)) as u8).collect()
}

/// Jobs for every packet but every `NO_JOB_EVERY`th, in an order that is not the
/// packets' (reversed in blocks), with keypairs and counters spread around.
fn jobs() -> Vec<CryptoJob> {
    let mut jobs: Vec<CryptoJob> = (0..PACKETS)
        .filter(|i| i % NO_JOB_EVERY != 3)
        .map(|i| CryptoJob {
            pkt: i as u16,
            key: (i % KEYPAIRS) as u16,
            counter: (i as u64) << (i % 50),
            ok: false,
        })
        .collect();
    for block in jobs.chunks_mut(16) {
        block.reverse();
    }
    jobs
}

fn mbufs(pool: &Mempool, data: &[Vec<u8>]) -> Vec<Mbuf> {
    data.iter()
        .map(|d| {
            let mut m = pool.alloc().expect("pool has room");
            m.append(d.len() as u16).unwrap().copy_from_slice(d);
            m
        })
        .collect()
}

fn contents<B: PacketBuf>(pkts: &[B]) -> Vec<Vec<u8>> {
    pkts.iter().map(|p| p.data().to_vec()).collect()
}

fn oks(jobs: &[CryptoJob]) -> Vec<bool> {
    jobs.iter().map(|j| j.ok).collect()
}

fn same_as_software(dev: &Arc<CryptoDev>, pool: &Mempool) {
    let name = dev.name();
    let (sealers, openers) = keypairs();
    let plain: Vec<Vec<u8>> = (0..PACKETS).map(plaintext).collect();
    let mut device = Backend::cryptodev(dev, 0).unwrap();
    let mut software = Backend::software();
    let mut ring = Backend::Ring;

    // Seal.
    let mut by_device = mbufs(pool, &plain);
    let mut by_software = mbufs(pool, &plain);
    let mut by_ring = mbufs(pool, &plain);
    let mut dev_jobs = jobs();
    let mut sw_jobs = jobs();
    let mut ring_jobs = jobs();
    device.seal_batch(&mut by_device, &sealers, &mut dev_jobs);
    software.seal_batch(&mut by_software, &sealers, &mut sw_jobs);
    ring.seal_batch(&mut by_ring, &sealers, &mut ring_jobs);
    assert!(sw_jobs.iter().all(|j| j.ok));
    assert_eq!(oks(&dev_jobs), oks(&sw_jobs), "{name}: seal results");
    assert_eq!(oks(&ring_jobs), oks(&sw_jobs), "{name}: seal results, ring");
    let sealed = contents(&by_device);
    assert_eq!(sealed, contents(&by_software), "{name}: sealed bytes");
    assert_eq!(sealed, contents(&by_ring), "{name}: sealed bytes, ring");
    drop(by_ring);
    for (i, (s, p)) in sealed.iter().zip(&plain).enumerate() {
        let want = if i % NO_JOB_EVERY == 3 {
            p.len()
        } else {
            p.len() + TAG_LEN
        };
        assert_eq!(s.len(), want, "{name}: packet {i}");
    }
    let stats = device.device_stats().unwrap();
    assert_eq!(
        stats.device_jobs,
        dev_jobs.len() as u64,
        "{name}: {stats:?}"
    );
    assert_eq!(stats.software_jobs, 0, "{name}: {stats:?}");

    // Open, with some tampered with.
    let mut wire = sealed.clone();
    let mut tampered = vec![false; PACKETS];
    for (n, job) in dev_jobs
        .iter()
        .enumerate()
        .filter(|(n, _)| n % TAMPER_EVERY == 5)
    {
        let data = &mut wire[job.pkt as usize];
        let at = if n % 2 == 0 {
            data.len() - 1
        } else {
            n % data.len()
        };
        data[at] ^= 0x10;
        tampered[job.pkt as usize] = true;
    }
    let mut by_device = mbufs(pool, &wire);
    let mut by_software = mbufs(pool, &wire);
    let mut by_ring = mbufs(pool, &wire);
    let mut dev_jobs = jobs();
    let mut sw_jobs = jobs();
    let mut ring_jobs = jobs();
    device.open_batch(&mut by_device, &openers, &mut dev_jobs);
    software.open_batch(&mut by_software, &openers, &mut sw_jobs);
    ring.open_batch(&mut by_ring, &openers, &mut ring_jobs);
    assert_eq!(oks(&dev_jobs), oks(&sw_jobs), "{name}: open results");
    assert_eq!(oks(&ring_jobs), oks(&sw_jobs), "{name}: open results, ring");
    for job in ring_jobs.iter().filter(|j| j.ok) {
        let i = job.pkt as usize;
        assert_eq!(
            by_ring[i].data(),
            plain[i],
            "{name}: packet {i} opened by ring"
        );
    }
    drop(by_ring);
    for job in &dev_jobs {
        let i = job.pkt as usize;
        assert_eq!(job.ok, !tampered[i], "{name}: packet {i}");
        if job.ok {
            assert_eq!(by_device[i].data(), plain[i], "{name}: packet {i} opened");
            assert_eq!(by_software[i].data(), plain[i], "{name}: packet {i} opened");
        }
    }
    let failed = tampered.iter().filter(|t| **t).count() as u64;
    assert!(failed > 10);
    assert_eq!(
        device.device_stats().unwrap().queue.failed,
        failed,
        "{name}"
    );
    drop((by_device, by_software));

    // Buffers in plain memory take the software path, with the same results.
    let mut heap: Vec<HeapBuf> = wire.iter().map(|w| HeapBuf::new(w)).collect();
    let mut heap_jobs = jobs();
    device.open_batch(&mut heap, &openers, &mut heap_jobs);
    assert_eq!(
        oks(&heap_jobs),
        oks(&sw_jobs),
        "{name}: open results in plain memory"
    );
    let before = device.device_stats().unwrap();
    assert_eq!(
        before.software_jobs,
        heap_jobs.len() as u64,
        "{name}: {before:?}"
    );
    assert_eq!(before.session_errors, 0, "{name}: {before:?}");
    assert_eq!(before.queue.timed_out, 0, "{name}: {before:?}");

    drop(device);
    assert_eq!(
        dev.sessions_in_use(),
        2 * KEYPAIRS as u32,
        "{name}: one per key used"
    );
    drop((sealers, openers));
    assert_eq!(
        dev.sessions_in_use(),
        0,
        "{name}: sessions freed with their keys"
    );
}

/// Two backends on two lcores share the keypairs (so they race to make each session)
/// and each seals its own packets on its own queue pair.
fn two_workers(eal: &Eal, dev: &Arc<CryptoDev>, pool: &Mempool) {
    let name = dev.name().to_owned();
    let (sealers, _) = keypairs();
    let plain: Vec<Vec<u8>> = (0..PACKETS).map(plaintext).collect();
    let mut expected = mbufs(pool, &plain);
    let mut sw_jobs = jobs();
    Backend::software().seal_batch(&mut expected, &sealers, &mut sw_jobs);
    let expected = Arc::new(contents(&expected));

    let run = {
        let (dev, sealers, expected, pool) =
            (dev.clone(), sealers.clone(), expected.clone(), pool.clone());
        move |qp: u16| -> bool {
            let mut backend = Backend::cryptodev(&dev, qp).unwrap();
            (0..20).all(|_| {
                let mut pkts = mbufs(&pool, &plain);
                let mut jobs = jobs();
                backend.seal_batch(&mut pkts, &sealers, &mut jobs);
                jobs.iter().all(|j| j.ok) && contents(&pkts) == *expected
            })
        }
    };
    let worker = run.clone();
    eal.remote_launch(1, move || i32::from(!worker(1))).unwrap();
    assert!(run(0), "{name}: main lcore");
    assert_eq!(eal.wait_lcore(1), 0, "{name}: worker lcore");
    drop((run, sealers));
    assert_eq!(dev.sessions_in_use(), 0, "{name}");
}

/// Seal throughput on this core, printed; nothing asserted. The best of a few short
/// runs, so that other processes on the machine disturb the figures less.
fn throughput(devices: &[Arc<CryptoDev>], pool: &Mempool) {
    const BATCH: usize = 256;
    const RUNS: usize = 5;
    const RUN: Duration = Duration::from_millis(200);
    let (sealers, _) = keypairs();
    let sealers = &sealers[..1];
    let mut backends: Vec<(String, Backend)> = vec![
        ("software (ipsec-mb in line)".into(), Backend::software()),
        ("ring".into(), Backend::Ring),
    ];
    for dev in devices {
        backends.push((dev.name().to_owned(), Backend::cryptodev(dev, 0).unwrap()));
    }
    eprintln!("{TEST}: seal throughput, one core, batches of {BATCH}, best of {RUNS}:");
    for size in [64usize, 1420] {
        for (name, backend) in backends.iter_mut() {
            let mut pkts = mbufs(pool, &vec![vec![0x5a; size]; BATCH]);
            let mut jobs: Vec<CryptoJob> = (0..BATCH)
                .map(|i| CryptoJob {
                    pkt: i as u16,
                    key: 0,
                    counter: i as u64,
                    ok: false,
                })
                .collect();
            let mut best = 0f64;
            for _ in 0..RUNS {
                let mut sealed = 0u64;
                let start = Instant::now();
                while start.elapsed() < RUN {
                    backend.seal_batch(&mut pkts, sealers, &mut jobs);
                    for p in pkts.iter_mut() {
                        PacketBuf::trim(p, TAG_LEN);
                    }
                    sealed += BATCH as u64;
                }
                best = best.max(sealed as f64 / start.elapsed().as_secs_f64());
            }
            assert!(jobs.iter().all(|j| j.ok), "{name}");
            eprintln!(
                "  {size:>5} B  {name:<28} {:>6.2} Mops  {:>6.2} Gbit/s",
                best / 1e6,
                best * (size * 8) as f64 / 1e9
            );
        }
    }
}
