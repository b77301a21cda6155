//! Ports over virtual devices, with drivers loaded from the EAL's plugin
//! directory (no `-d`):
//! - `net_ring0`: one ring per queue that TX writes and RX reads, i.e. a
//!   loopback. Packets sent from the main lcore are received on a worker.
//! - `net_null0`: RX makes packets from the queue's pool, TX frees them.
//!
//! Afterwards every mbuf is back in its pool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use dpdk_sys::{Eal, Mbuf, Mempool, Port, PortConfig, SOCKET_ID_ANY};

const DATA_ROOM: u16 = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
const TOTAL: u64 = 5000;

#[test]
fn ports_over_vdevs() {
    let Some(eal) = common::eal_or_skip(
        "ports_over_vdevs",
        &["--vdev", "net_ring0", "--vdev", "net_null0"],
    ) else {
        return;
    };
    let pool = Mempool::pktmbuf("t_port", 4095, 64, DATA_ROOM, SOCKET_ID_ANY).unwrap();

    start_errors(&pool);
    ring_loopback(&eal, &pool);
    null_device(&pool);

    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), pool.capacity());
}

fn start_errors(pool: &Mempool) {
    let err = Port::by_name("net_absent0").expect_err("no such port");
    assert_eq!(err.errno(), libc::ENODEV, "{err}");

    let id = Port::by_name("net_ring0").unwrap();
    let too_many = PortConfig {
        rx_queues: 1000,
        ..PortConfig::default()
    };
    let err = Port::start(id, &too_many, pool).expect_err("more queues than the device has");
    assert!(
        err.to_string().contains("1000 RX queues requested"),
        "{err}"
    );
    assert!(err.to_string().contains("net_ring0"), "{err}");
}

fn ring_loopback(eal: &Eal, pool: &Mempool) {
    let id = Port::by_name("net_ring0").unwrap();
    let port = Arc::new(Port::start(id, &PortConfig::default(), pool).unwrap());
    assert_eq!(port.id(), id);
    assert_eq!(port.name(), "net_ring0");
    assert!(port.link_up());
    let err = Port::start(id, &PortConfig::default(), pool).expect_err("port already owned");
    assert_eq!(err.errno(), libc::EBUSY, "{err}");

    // Receive on the worker lcore while the main lcore sends: the ring
    // behind the port holds only 1023 packets.
    let rx_port = Arc::clone(&port);
    eal.remote_launch(1, move || receive_in_order(&rx_port))
        .unwrap();

    let mut pending: Vec<Mbuf> = Vec::with_capacity(32);
    let mut next = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while next < TOTAL || !pending.is_empty() {
        assert!(std::time::Instant::now() < deadline, "TX stalled at {next}");
        while pending.len() < 32 && next < TOTAL {
            let Some(mut m) = pool.alloc() else {
                break;
            };
            m.append(60).unwrap()[..8].copy_from_slice(&next.to_be_bytes());
            pending.push(m);
            next += 1;
        }
        let before = pending.len();
        let sent = port.tx_burst(0, &mut pending);
        assert_eq!(pending.len(), before - sent);
    }
    assert_eq!(
        eal.wait_lcore(1),
        0,
        "the worker saw packets missing or out of order"
    );

    let stats = port.stats();
    assert_eq!(stats.opackets, TOTAL);
    assert_eq!(stats.ipackets, TOTAL);
    assert_eq!(pool.in_use_count(), 0);
    drop(port);
    assert_eq!(pool.in_use_count(), 0);
}

/// Receives `TOTAL` packets on queue 0 and checks their sequence numbers;
/// 0 if all arrived in order, -1 otherwise.
fn receive_in_order(port: &Port) -> i32 {
    let deadline = Eal::tsc() + 20 * Eal::tsc_hz();
    let mut expected = 0u64;
    let mut burst = Vec::with_capacity(32);
    while expected < TOTAL {
        if Eal::tsc() > deadline {
            return -1;
        }
        port.rx_burst(0, &mut burst, 32);
        for m in burst.iter() {
            if m.len() != 60 || m.data()[..8] != expected.to_be_bytes() {
                return -1;
            }
            expected += 1;
        }
        Mbuf::free_bulk(&mut burst);
    }
    0
}

fn null_device(pool: &Mempool) {
    let id = Port::by_name("net_null0").unwrap();
    let port = Port::start(id, &PortConfig::default(), pool).unwrap();

    let mut rx = Vec::new();
    assert_eq!(port.rx_burst(0, &mut rx, 32), 32);
    assert_eq!(rx.len(), 32);
    assert_eq!(pool.in_use_count(), 32);
    // Appends after what is already there.
    assert_eq!(port.rx_burst(0, &mut rx, 8), 8);
    assert_eq!(rx.len(), 40);
    assert!(rx.iter().all(|m| m.port() == id));

    assert_eq!(port.tx_burst(0, &mut rx), 40);
    assert!(rx.is_empty());
    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(port.stats().opackets, 40);
}
