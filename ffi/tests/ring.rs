//! Rings of mbufs: partial enqueue, ordering, freeing on drop, and a
//! single-producer/single-consumer ring between two lcores.

mod common;

use std::sync::Arc;

use dpdk_sys::{Eal, Mempool, Ring, SOCKET_ID_ANY};

const DATA_ROOM: u16 = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

#[test]
fn ring_of_mbufs() {
    let Some(eal) = common::eal_or_skip("ring_of_mbufs", &[]) else {
        return;
    };
    let pool = Mempool::pktmbuf("t_ring", 2047, 32, DATA_ROOM, SOCKET_ID_ANY).unwrap();

    creation_errors();
    fill_drain_and_drop(&pool);
    across_lcores(&eal, &pool);

    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), pool.capacity());
}

fn creation_errors() {
    let err = Ring::new("t_bad", 1000, false, false).expect_err("count not a power of two");
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
    let _first = Ring::new("t_dup", 16, false, false).unwrap();
    let err = Ring::new("t_dup", 16, false, false).expect_err("duplicate name");
    assert_eq!(err.errno(), libc::EEXIST, "{err}");
}

fn fill_drain_and_drop(pool: &Mempool) {
    let ring = Ring::new("t_fill", 1024, true, true).unwrap();
    assert_eq!(ring.capacity(), 1023);
    assert_eq!(ring.count(), 0);
    assert_eq!(ring.free_count(), 1023);

    let mut pkts = Vec::new();
    assert!(pool.alloc_bulk(&mut pkts, 1100));
    for (i, m) in pkts.iter_mut().enumerate() {
        m.set_user(i as u64);
    }

    // Only what fits is taken, from the front; the rest stays in order.
    assert_eq!(ring.enqueue_burst(&mut pkts), 1023);
    assert_eq!(pkts.len(), 77);
    assert_eq!(pkts[0].user(), 1023);
    assert_eq!(ring.count(), 1023);
    assert_eq!(ring.free_count(), 0);
    assert_eq!(ring.enqueue_burst(&mut pkts), 0);
    assert_eq!(pkts.len(), 77);

    let mut out = Vec::new();
    assert_eq!(ring.dequeue_burst(&mut out, 10), 10);
    let users: Vec<u64> = out.iter().map(|m| m.user()).collect();
    assert_eq!(users, (0..10).collect::<Vec<_>>());
    assert_eq!(ring.count(), 1013);
    assert_eq!(pool.in_use_count(), 1100);

    // Dropping the ring frees the 1013 mbufs still inside.
    drop(ring);
    assert_eq!(pool.in_use_count(), 87);
    drop(out);
    drop(pkts);
    assert_eq!(pool.in_use_count(), 0);
}

fn across_lcores(eal: &Eal, pool: &Mempool) {
    const TOTAL: u64 = 50_000;
    let ring = Arc::new(Ring::new("t_spsc", 256, true, true).unwrap());

    let producer_ring = Arc::clone(&ring);
    let producer_pool = pool.clone();
    eal.remote_launch(1, move || {
        let mut next = 0u64;
        let mut pending = Vec::with_capacity(32);
        while next < TOTAL || !pending.is_empty() {
            while pending.len() < 32 && next < TOTAL {
                let Some(mut m) = producer_pool.alloc() else {
                    break;
                };
                m.set_user(next);
                m.append(8).unwrap().copy_from_slice(&next.to_be_bytes());
                pending.push(m);
                next += 1;
            }
            producer_ring.enqueue_burst(&mut pending);
        }
        0
    })
    .unwrap();

    let mut expected = 0u64;
    let mut burst = Vec::with_capacity(64);
    while expected < TOTAL {
        ring.dequeue_burst(&mut burst, 64);
        for m in burst.drain(..) {
            assert_eq!(m.user(), expected);
            assert_eq!(m.data(), expected.to_be_bytes());
            expected += 1;
        }
    }
    assert_eq!(eal.wait_lcore(1), 0);
    assert_eq!(ring.count(), 0);
}
