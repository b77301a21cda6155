//! Mbuf data manipulation: prepend, adj, append, trim, fields, raw round trip.

mod common;

use dpdk_sys::{Mbuf, Mempool, SOCKET_ID_ANY};

const DATA_ROOM: u16 = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
const HEADROOM: u16 = dpdk_sys::sys::RTE_PKTMBUF_HEADROOM as u16;

#[test]
fn mbuf_operations() {
    let Some(_eal) = common::eal_or_skip("mbuf_operations", &[]) else {
        return;
    };
    let pool = Mempool::pktmbuf("t_mbuf", 255, 0, DATA_ROOM, SOCKET_ID_ANY).unwrap();

    data_round_trip(&pool);
    limits(&pool);
    fields_and_raw(&pool);

    assert_eq!(pool.in_use_count(), 0);
}

fn data_round_trip(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    assert!(m.is_empty());
    assert!(m.is_contiguous());
    assert_eq!(m.nb_segs(), 1);
    assert_eq!(m.headroom(), HEADROOM);
    assert_eq!(m.tailroom(), DATA_ROOM - HEADROOM);

    m.append(5).unwrap().copy_from_slice(b"hello");
    assert_eq!(m.data(), b"hello");
    assert_eq!(m.len(), 5);
    assert_eq!(m.data_len(), 5);
    assert_eq!(m.tailroom(), DATA_ROOM - HEADROOM - 5);

    // An outer header in front, as encapsulation does.
    m.prepend(4).unwrap().copy_from_slice(b"HDR:");
    assert_eq!(m.data(), b"HDR:hello");
    assert_eq!(m.headroom(), HEADROOM - 4);
    assert_eq!(m.len(), 9);

    m.data_mut()[4] = b'H';
    assert_eq!(m.data(), b"HDR:Hello");

    m.append(6).unwrap().copy_from_slice(b" world");
    assert_eq!(m.data(), b"HDR:Hello world");

    // Decapsulation: strip the header, then the trailer.
    assert!(m.adj(4));
    assert_eq!(m.data(), b"Hello world");
    assert_eq!(m.headroom(), HEADROOM);
    assert!(m.trim(6));
    assert_eq!(m.data(), b"Hello");
    assert_eq!(m.len(), 5);
}

fn limits(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    m.append(3).unwrap().copy_from_slice(b"abc");

    // Failures leave the packet unchanged.
    assert!(m.prepend(HEADROOM + 1).is_none());
    assert!(!m.adj(4));
    assert!(!m.trim(4));
    let tailroom = m.tailroom();
    assert!(m.append(tailroom + 1).is_none());
    assert_eq!(m.data(), b"abc");

    // The exact room is usable.
    assert_eq!(m.prepend(HEADROOM).unwrap().len(), usize::from(HEADROOM));
    assert_eq!(m.headroom(), 0);
    assert_eq!(m.append(tailroom).unwrap().len(), usize::from(tailroom));
    assert_eq!(m.tailroom(), 0);
    assert_eq!(u32::from(m.data_len()), m.len());
    assert!(m.adj(m.data_len()));
    assert!(m.is_empty());
}

fn fields_and_raw(pool: &Mempool) {
    let mut m = pool.alloc().unwrap();
    m.set_port(3);
    assert_eq!(m.port(), 3);
    m.set_user(0xdead_beef_0bad_f00d);
    assert_eq!(m.user(), 0xdead_beef_0bad_f00d);
    assert_eq!(m.pool_ptr(), pool.as_ptr());

    let raw = m.into_raw();
    assert_eq!(pool.in_use_count(), 1);
    // SAFETY: `raw` came from into_raw and is owned by nobody else.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.user(), 0xdead_beef_0bad_f00d);
    assert_eq!(m.as_ptr(), raw);
    drop(m);
    assert_eq!(pool.in_use_count(), 0);
}
