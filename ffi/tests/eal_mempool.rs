//! EAL life cycle, lcore launching and mempool accounting.

mod common;

use std::sync::Arc;

use dpdk_sys::{Eal, Mbuf, Mempool, LCORE_PANICKED, SOCKET_ID_ANY};

const DATA_ROOM: u16 = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

#[test]
fn eal_and_mempool() {
    let Some(eal) = common::eal_or_skip("eal_and_mempool", &[]) else {
        return;
    };

    init_runs_once();
    lcores(&eal);
    pool_accounting();
    pool_on_worker_lcore(&eal);
    pool_dropped_with_mbufs_out();
    orphans_reclaimed(&eal);
}

fn init_runs_once() {
    let err = Eal::init(&["--no-pci"]).expect_err("second rte_eal_init must fail");
    assert_eq!(err.errno(), libc::EALREADY, "{err}");
    assert!(
        dpdk_sys::version().starts_with("DPDK 22.11"),
        "{}",
        dpdk_sys::version()
    );
}

fn lcores(eal: &Eal) {
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(Eal::lcore_id(), eal.main_lcore());
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert!(eal.is_lcore_enabled(1));
    assert!(!eal.is_lcore_enabled(2));
    assert!(!eal.is_lcore_enabled(u32::MAX));
    assert!(Eal::tsc_hz() > 0);
    let t0 = Eal::tsc();
    assert!(Eal::tsc() >= t0);

    assert!(eal.remote_launch(eal.main_lcore(), || 0).is_err());
    assert!(eal.remote_launch(5, || 0).is_err());

    eal.remote_launch(1, || Eal::lcore_id() as i32 + 40)
        .unwrap();
    assert_eq!(eal.wait_lcore(1), 41);

    eal.remote_launch(1, || panic!("deliberate panic on a worker lcore"))
        .unwrap();
    assert_eq!(eal.wait_lcore(1), LCORE_PANICKED);

    // The worker is usable again after a panic.
    eal.remote_launch(1, || 7).unwrap();
    assert_eq!(eal.wait_lcore(1), 7);
}

fn pool_accounting() {
    let pool = Mempool::pktmbuf("t_acct", 1023, 32, DATA_ROOM, SOCKET_ID_ANY).unwrap();
    assert_eq!(pool.name(), "t_acct");
    assert_eq!(pool.capacity(), 1023);
    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), 1023);

    let dup = Mempool::pktmbuf("t_acct", 15, 0, DATA_ROOM, SOCKET_ID_ANY)
        .expect_err("duplicate pool name");
    assert_eq!(dup.errno(), libc::EEXIST, "{dup}");

    let one = pool.alloc().unwrap();
    assert_eq!(one.len(), 0);
    assert_eq!(pool.in_use_count(), 1);

    let mut many = Vec::new();
    assert!(pool.alloc_bulk(&mut many, 100));
    assert_eq!(many.len(), 100);
    assert_eq!(pool.in_use_count(), 101);
    // All or nothing: more than is left allocates none.
    assert!(!pool.alloc_bulk(&mut many, 2000));
    assert_eq!(many.len(), 100);

    Mbuf::free_bulk(&mut many);
    assert!(many.is_empty());
    drop(one);
    assert_eq!(pool.in_use_count(), 0);

    // Drain the pool completely.
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m);
    }
    assert_eq!(all.len(), 1023);
    assert_eq!(pool.avail_count(), 0);
    drop(all);
    assert_eq!(pool.avail_count(), pool.capacity());

    // A clone is the same pool; the last handle frees it, so the name is
    // reusable afterwards.
    let clone = pool.clone();
    drop(pool);
    assert_eq!(clone.capacity(), 1023);
    drop(clone);
    Mempool::pktmbuf("t_acct", 63, 0, DATA_ROOM, SOCKET_ID_ANY).unwrap();
}

fn pool_on_worker_lcore(eal: &Eal) {
    let pool = Mempool::pktmbuf("t_worker", 2047, 64, DATA_ROOM, SOCKET_ID_ANY).unwrap();
    let worker_pool = pool.clone();
    let mbufs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let worker_mbufs = Arc::clone(&mbufs);
    eal.remote_launch(1, move || {
        let mut local = Vec::new();
        for _ in 0..10 {
            if !worker_pool.alloc_bulk(&mut local, 100) {
                return -1;
            }
            // Freed on the worker: these go to lcore 1's cache.
            local.truncate(local.len() - 50);
        }
        worker_mbufs.lock().unwrap().append(&mut local);
        0
    })
    .unwrap();
    assert_eq!(eal.wait_lcore(1), 0);
    assert_eq!(pool.in_use_count(), 500);
    // Mbufs allocated on the worker are freed on the main lcore.
    mbufs.lock().unwrap().clear();
    assert_eq!(pool.in_use_count(), 0);
    assert_eq!(pool.avail_count(), pool.capacity());
}

fn pool_dropped_with_mbufs_out() {
    let pool = Mempool::pktmbuf("t_leak", 63, 0, DATA_ROOM, SOCKET_ID_ANY).unwrap();
    let mut m = pool.alloc().unwrap();
    drop(pool);
    // The pool was leaked, not freed: the mbuf is still valid.
    m.append(4).unwrap().copy_from_slice(b"live");
    assert_eq!(m.data(), b"live");
    drop(m);
}

fn orphans_reclaimed(eal: &Eal) {
    let pool = Mempool::pktmbuf("t_orphans", 2047, 64, DATA_ROOM, SOCKET_ID_ANY).unwrap();
    // On the worker lcore: some mbufs are freed into lcore 1's cache, some
    // are lost (as a driver's ring forgets them), the rest come back.
    let worker_pool = pool.clone();
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let worker_kept = Arc::clone(&kept);
    eal.remote_launch(1, move || {
        let mut local = Vec::new();
        if !worker_pool.alloc_bulk(&mut local, 300) {
            return -1;
        }
        local.truncate(200);
        for m in local.drain(150..) {
            m.into_raw();
        }
        worker_kept.lock().unwrap().append(&mut local);
        0
    })
    .unwrap();
    assert_eq!(eal.wait_lcore(1), 0);
    // On the main lcore: more lost, and some into the main lcore's cache.
    let mut local = Vec::new();
    assert!(pool.alloc_bulk(&mut local, 40));
    for m in local.drain(..20) {
        m.into_raw();
    }
    drop(local);
    kept.lock().unwrap().clear();
    assert_eq!(pool.in_use_count(), 70);

    // SAFETY: nothing refers to the 70 lost mbufs any more.
    assert_eq!(unsafe { pool.reclaim_orphans() }, 70);
    assert_eq!(pool.in_use_count(), 0);
    // Every object comes out exactly once: nothing free was counted twice.
    let mut all = Vec::new();
    while let Some(m) = pool.alloc() {
        all.push(m.as_ptr() as usize);
        std::mem::forget(m);
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((count, all.len()), (2047, 2047));
    // SAFETY: the test forgot every mbuf above; none is referenced.
    assert_eq!(unsafe { pool.reclaim_orphans() }, 2047);
    assert_eq!(pool.avail_count(), pool.capacity());
    // With nothing lost there is nothing to reclaim.
    // SAFETY: as above.
    assert_eq!(unsafe { pool.reclaim_orphans() }, 0);
}
