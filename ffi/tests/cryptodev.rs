//! ChaCha20-Poly1305 on the `ipsec_mb` crypto vdevs, loaded from the EAL's plugin
//! directory (no `-d`): `crypto_aesni_mb0` and `crypto_chacha20_poly1305_0`, plus
//! `crypto_null0`, which has no ChaCha20-Poly1305 and must be refused by name.
//!
//! On each device: the RFC 8439 section 2.8.2 vector sealed byte for byte (without its
//! AAD, which this API never sends: the ciphertext is the RFC's, the tag the
//! `chacha20poly1305` crate's), the open round trip, a tampered tag refused in a batch
//! whose other operations succeed, a batch larger than the queue pair, one larger than
//! the op pool, operations given up on after a (zero) timeout and reaped later, a panic
//! in the caller's callback; then the same work submitted without waiting (more than
//! the device's ring takes at once, reported in submission order, some handles dropped
//! while in flight, a tampered tag) and a queue dropped with work in flight; and
//! afterwards every op, session and mbuf back in its pool.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use dpdk_sys::{
    AeadDirection, CryptoDev, CryptoDevConfig, CryptoQueue, Mbuf, Mempool, Refused,
    DEFAULT_CRYPTO_TIMEOUT, SOCKET_ID_ANY,
};

const DATA_ROOM: u16 = dpdk_sys::sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// RFC 8439 section 2.8.2.
const RFC_KEY: [u8; 32] = [
    0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
    0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
];
const RFC_NONCE: [u8; 12] = [
    0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
];
const RFC_AAD: [u8; 12] = [
    0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
];
const RFC_PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
const RFC_CIPHERTEXT: [u8; 114] = [
    0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2,
    0xa4, 0xad, 0xed, 0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee, 0x62, 0xd6,
    0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9, 0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda, 0x92, 0x72, 0x8b,
    0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05, 0xd6, 0xa5, 0xb6, 0x7e, 0xcd, 0x3b, 0x36,
    0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae, 0xe3, 0x28, 0x09, 0x1b, 0x58,
    0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85, 0x80, 0x8b, 0x48, 0x31, 0xd7, 0xbc,
    0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5, 0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b,
    0x61, 0x16,
];
const RFC_TAG: [u8; 16] = [
    0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91,
];

/// Descriptors per queue pair: fewer than the big batch below, so that batch must be
/// fed to the device in several enqueues.
const DESCRIPTORS: u32 = 256;
const BIG_BATCH: usize = 1000;
/// The op pool: enough for the big batch, not for one larger than itself.
const OPS: u32 = 1023;

#[test]
fn chacha20_poly1305_on_crypto_vdevs() {
    let Some(_eal) = common::eal_or_skip(
        "cryptodev",
        &[
            "--vdev",
            "crypto_aesni_mb0",
            "--vdev",
            "crypto_chacha20_poly1305_0",
            "--vdev",
            "crypto_null0",
        ],
    ) else {
        return;
    };
    let pool = Mempool::pktmbuf("t_cdev", 4095, 64, DATA_ROOM, SOCKET_ID_ANY).unwrap();

    refusals();
    for name in ["crypto_aesni_mb0", "crypto_chacha20_poly1305_0"] {
        device(name, &pool);
        assert_eq!(pool.in_use_count(), 0, "{name}: mbufs left out");
    }
    assert_eq!(pool.avail_count(), pool.capacity());
}

fn refusals() {
    let err = CryptoDev::by_name("crypto_absent0").expect_err("no such device");
    assert_eq!(err.errno(), libc::ENODEV, "{err}");

    let null = CryptoDev::by_name("crypto_null0").unwrap();
    let err = CryptoDev::start(null, &CryptoDevConfig::default())
        .expect_err("the null device has no ChaCha20-Poly1305");
    let msg = err.to_string();
    assert!(msg.contains("crypto_null0"), "{msg}");
    assert!(msg.contains("ChaCha20-Poly1305"), "{msg}");
    assert_eq!(err.errno(), libc::ENOTSUP, "{msg}");
}

fn device(name: &str, pool: &Mempool) {
    let id = CryptoDev::by_name(name).unwrap();
    let config = CryptoDevConfig {
        queue_pairs: 2,
        descriptors: DESCRIPTORS,
        ops: OPS,
        op_cache: 0,
        sessions: 63,
        session_cache: 0,
    };
    let dev = CryptoDev::start(id, &config).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(dev.name(), name);
    assert_eq!(dev.queue_pairs(), 2);
    eprintln!(
        "{name}: driver {}, sessionless {}, hardware {}",
        dev.driver(),
        dev.supports_sessionless(),
        dev.is_hardware()
    );
    let err = CryptoDev::start(id, &config).expect_err("the device is owned");
    assert_eq!(err.errno(), libc::EBUSY, "{err}");

    let mut q = dev.queue(0).unwrap();
    assert_eq!(dev.queue(0).unwrap_err().errno(), libc::EBUSY);
    assert_eq!(dev.queue(2).unwrap_err().errno(), libc::EINVAL);

    rfc_vector(name, &dev, &mut q, pool);
    tampered_tag_fails_alone(name, &dev, &mut q, pool);
    big_batch(name, &dev, &mut q, pool);
    more_than_the_op_pool(name, &dev, &mut q, pool);
    given_up_and_reaped(name, &dev, &mut q, pool);
    submitted_in_order(name, &dev, &mut q, pool);
    dropped_with_work_in_flight(name, &dev, pool);

    assert_eq!(dev.ops_in_use(), 0, "{name}: ops left out");
    assert_eq!(dev.sessions_in_use(), 0, "{name}: sessions left");
    let stats = q.stats();
    assert_eq!(stats.timed_out, stats.reaped, "{name}: {stats:?}");
    drop(q);
    // The queue pair is free again once its queue is gone.
    drop(dev.queue(0).unwrap());
}

fn mbuf(pool: &Mempool, data: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has room");
    m.append(data.len() as u16).unwrap().copy_from_slice(data);
    m
}

/// Ciphertext and tag of `plaintext` by the `chacha20poly1305` crate, no AAD.
fn reference_seal(key: &[u8; 32], nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    let aead = ChaCha20Poly1305::new(key.into());
    let mut out = plaintext.to_vec();
    let tag = aead
        .encrypt_in_place_detached(nonce.into(), &[], &mut out)
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

fn rfc_vector(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    // The reference reproduces the RFC with its AAD, so it is trusted without.
    let aead = ChaCha20Poly1305::new((&RFC_KEY).into());
    let mut check = RFC_PLAINTEXT.to_vec();
    let tag = aead
        .encrypt_in_place_detached((&RFC_NONCE).into(), &RFC_AAD, &mut check)
        .unwrap();
    assert_eq!(check, RFC_CIPHERTEXT);
    assert_eq!(tag.as_slice(), RFC_TAG);
    let expected = reference_seal(&RFC_KEY, &RFC_NONCE, RFC_PLAINTEXT);

    let seal = dev.session(AeadDirection::Seal, &RFC_KEY).unwrap();
    let open = dev.session(AeadDirection::Open, &RFC_KEY).unwrap();
    assert_eq!(dev.sessions_in_use(), 2);
    assert_eq!(seal.direction(), AeadDirection::Seal);
    assert_eq!(seal.device_id(), dev.id());
    assert!(!format!("{seal:?}").contains("128"), "Debug shows no key");

    let mut m = mbuf(pool, RFC_PLAINTEXT);
    let mut results = Vec::new();
    let mut b = q.batch();
    assert_eq!(b.push(&seal, &mut m, &RFC_NONCE), Ok(0));
    b.run(|slot, ok| results.push((slot, ok)));
    assert_eq!(results, [(0, true)], "{name}");
    assert_eq!(&m.data()[..114], RFC_CIPHERTEXT, "{name}: ciphertext");
    assert_eq!(m.data(), expected, "{name}: ciphertext and tag");

    results.clear();
    let mut b = q.batch();
    assert_eq!(b.push(&open, &mut m, &RFC_NONCE), Ok(0));
    b.run(|slot, ok| results.push((slot, ok)));
    assert_eq!(results, [(0, true)], "{name}");
    assert_eq!(m.data(), RFC_PLAINTEXT, "{name}: opened");

    // What cannot be done is refused before anything changes.
    let mut short = mbuf(pool, &[0; 15]);
    let mut full = mbuf(pool, &[]);
    let room = full.tailroom();
    full.append(room - 8).unwrap();
    let mut b = q.batch();
    assert_eq!(
        b.push(&open, &mut short, &RFC_NONCE),
        Err(Refused::TooShort)
    );
    assert_eq!(b.push(&seal, &mut full, &RFC_NONCE), Err(Refused::NoRoom));
    assert!(b.is_empty());
    b.run(|_, _| panic!("nothing to report"));
    assert_eq!(short.data(), &[0; 15]);
    assert_eq!(dev.ops_in_use(), 0);
}

fn tampered_tag_fails_alone(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    let key = [0x42; 32];
    let open = dev.session(AeadDirection::Open, &key).unwrap();
    let sealed: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            let mut nonce = [0; 12];
            nonce[4] = i;
            reference_seal(&key, &nonce, &vec![i; 64 + usize::from(i)])
        })
        .collect();
    let mut pkts: Vec<Mbuf> = sealed.iter().map(|s| mbuf(pool, s)).collect();
    // Packet 3: a bit of the tag flipped; packet 5: a bit of the ciphertext.
    let last = pkts[3].data().len() - 1;
    pkts[3].data_mut()[last] ^= 0x01;
    pkts[5].data_mut()[10] ^= 0x80;

    let mut ok = [None; 8];
    let mut b = q.batch();
    for (i, m) in pkts.iter_mut().enumerate() {
        let mut nonce = [0; 12];
        nonce[4] = i as u8;
        assert_eq!(b.push(&open, m, &nonce), Ok(i));
    }
    b.run(|slot, good| ok[slot] = Some(good));
    for (i, m) in pkts.iter().enumerate() {
        let want = i != 3 && i != 5;
        assert_eq!(ok[i], Some(want), "{name}: packet {i}");
        if want {
            assert_eq!(m.data(), vec![i as u8; 64 + i], "{name}: packet {i}");
        }
    }
    assert_eq!(q.stats().failed, 2, "{name}");
}

fn big_batch(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    let key = [0x07; 32];
    let seal = dev.session(AeadDirection::Seal, &key).unwrap();
    let plain: Vec<Vec<u8>> = (0..BIG_BATCH)
        .map(|i| (0..i % 1500).map(|b| (b * 7 + i) as u8).collect())
        .collect();
    let mut pkts: Vec<Mbuf> = plain.iter().map(|p| mbuf(pool, p)).collect();
    let nonce = |i: usize| {
        let mut n = [0; 12];
        n[4..].copy_from_slice(&(i as u64).to_le_bytes());
        n
    };
    let mut done = vec![false; BIG_BATCH];
    let mut b = q.batch();
    for (i, m) in pkts.iter_mut().enumerate() {
        b.push(&seal, m, &nonce(i)).unwrap();
    }
    b.run(|slot, ok| {
        assert!(ok, "{name}: slot {slot}");
        assert!(!done[slot], "{name}: slot {slot} reported twice");
        done[slot] = true;
    });
    assert!(done.iter().all(|d| *d));
    for (i, (m, p)) in pkts.iter().zip(&plain).enumerate() {
        assert_eq!(
            m.data(),
            reference_seal(&key, &nonce(i), p),
            "{name}: packet {i}"
        );
    }
    assert_eq!(dev.ops_in_use(), 0);
}

/// A batch the op pool cannot serve fails whole, untouched.
fn more_than_the_op_pool(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    let seal = dev.session(AeadDirection::Seal, &[0x55; 32]).unwrap();
    let mut pkts: Vec<Mbuf> = (0..OPS as usize + 1)
        .map(|_| mbuf(pool, &[9; 32]))
        .collect();
    let before = q.stats();
    let mut failed = 0;
    let mut b = q.batch();
    for m in pkts.iter_mut() {
        b.push(&seal, m, &[0; 12]).unwrap();
    }
    b.run(|_, ok| {
        assert!(!ok);
        failed += 1;
    });
    assert_eq!(failed, pkts.len(), "{name}");
    assert_eq!(q.stats().no_op - before.no_op, pkts.len() as u64, "{name}");
    assert!(
        pkts.iter().all(|m| m.data() == [9; 32]),
        "{name}: untouched"
    );
    assert_eq!(dev.ops_in_use(), 0);
}

/// A zero timeout gives up on everything enqueued; the ops and their mbufs stay out
/// (the device still has them) until a later batch or `reap_strays` collects them.
fn given_up_and_reaped(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    let key = [0x99; 32];
    let seal = dev.session(AeadDirection::Seal, &key).unwrap();
    let before = q.stats();

    let mut pkts: Vec<Mbuf> = (0..10).map(|_| mbuf(pool, &[1; 100])).collect();
    q.set_timeout(Duration::ZERO);
    let mut failed = 0;
    let mut b = q.batch();
    for m in pkts.iter_mut() {
        b.push(&seal, m, &[0; 12]).unwrap();
    }
    b.run(|_, ok| {
        assert!(!ok);
        failed += 1;
    });
    assert_eq!(failed, 10, "{name}");
    assert_eq!(q.strays(), 10);
    assert_eq!(dev.ops_in_use(), 10);
    // The packets are dropped, but the device may still write them: they stay out.
    drop(pkts);
    assert_eq!(pool.in_use_count(), 10);
    // Nor does the session go while an op holds it.
    drop(seal);
    assert_eq!(dev.sessions_in_use(), 1);

    // The next batch finds them ahead of its own op and releases them;
    // `reap_strays` does the same without a batch.
    q.set_timeout(DEFAULT_CRYPTO_TIMEOUT);
    let again = dev.session(AeadDirection::Seal, &key).unwrap();
    let mut m = mbuf(pool, &[2; 50]);
    let mut b = q.batch();
    b.push(&again, &mut m, &[0; 12]).unwrap();
    let mut ok = false;
    b.run(|_, good| ok = good);
    assert!(ok, "{name}");
    assert_eq!(q.reap_strays(), 0);
    drop(m);
    drop(again);

    // A panic in the caller's `done` does not lose track of any op or mbuf.
    let again = dev.session(AeadDirection::Seal, &key).unwrap();
    let mut pkts: Vec<Mbuf> = (0..4).map(|_| mbuf(pool, &[3; 70])).collect();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut b = q.batch();
        for m in pkts.iter_mut() {
            b.push(&again, m, &[0; 12]).unwrap();
        }
        b.run(|_, _| panic!("the caller's bug"));
    }));
    assert!(unwound.is_err());
    assert_eq!(q.reap_strays(), 0);
    assert_eq!(dev.ops_in_use(), 0);
    // The same when the batch gives up (zero timeout) and `done` panics then.
    q.set_timeout(Duration::ZERO);
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut b = q.batch();
        for m in pkts.iter_mut() {
            b.push(&again, m, &[0; 12]).unwrap();
        }
        b.run(|_, _| panic!("the caller's bug"));
    }));
    assert!(unwound.is_err());
    assert_eq!(q.strays(), 4);
    q.set_timeout(DEFAULT_CRYPTO_TIMEOUT);
    assert_eq!(q.reap_strays(), 0);
    assert_eq!(dev.ops_in_use(), 0);
    drop((pkts, again));

    let after = q.stats();
    assert_eq!(after.timed_out - before.timed_out, 14, "{name}");
    assert_eq!(after.reaped - before.reaped, 14, "{name}");
    assert_eq!(dev.ops_in_use(), 0);
    assert_eq!(dev.sessions_in_use(), 0);
    assert_eq!(pool.in_use_count(), 0);
}

/// `submit`, `flush`, `collect`: 1000 operations, more than the queue pair's 256
/// descriptors, so that `flush` must leave some waiting; every one reported once, in
/// submission order, sealed as the reference seals it; every other packet's handle
/// dropped while it is in flight. Then opened again the same way, one tag tampered with.
fn submitted_in_order(name: &str, dev: &Arc<CryptoDev>, q: &mut CryptoQueue, pool: &Mempool) {
    const N: usize = 1000;
    let key = [0x3c; 32];
    let seal = dev.session(AeadDirection::Seal, &key).unwrap();
    let open = dev.session(AeadDirection::Open, &key).unwrap();
    let base = pool.in_use_count();
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_le_bytes());
        n
    };
    let plain = |i: usize| vec![i as u8; 16 + i % 200];
    let mut kept: Vec<Option<Mbuf>> = Vec::new();
    for i in 0..N {
        let mut m = mbuf(pool, &plain(i));
        // SAFETY: the data is not touched until collected.
        unsafe { q.submit(&seal, &mut m, &nonce(i), i as u64) }.unwrap();
        kept.push((i % 2 == 0).then_some(m));
    }
    assert_eq!(q.in_flight(), N);
    assert!(
        q.flush() > 0,
        "{name}: the device takes {DESCRIPTORS} at a time"
    );
    let mut order = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while order.len() < N && std::time::Instant::now() < deadline {
        q.flush();
        q.collect(|user, ok| order.push((user, ok)));
    }
    assert_eq!(order.len(), N, "{name}: every operation reported");
    assert!(
        order
            .iter()
            .enumerate()
            .all(|(i, &(u, ok))| u == i as u64 && ok),
        "{name}: in submission order, all sealed"
    );
    assert_eq!(q.in_flight(), 0);
    // The dropped handles' mbufs went back when their operations were collected.
    assert_eq!((pool.in_use_count() - base) as usize, N / 2, "{name}");
    for (i, m) in kept.iter().enumerate() {
        if let Some(m) = m {
            assert_eq!(
                m.data(),
                reference_seal(&key, &nonce(i), &plain(i)),
                "{name}: {i}"
            );
        }
    }

    // Open them again, one tag tampered with.
    let mut sealed: Vec<(usize, Mbuf)> = kept
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| (i, m)))
        .collect();
    let tampered = sealed[7].0;
    let last = sealed[7].1.data_len() as usize - 1;
    sealed[7].1.data_mut()[last] ^= 1;
    for (i, m) in sealed.iter_mut() {
        // SAFETY: as above.
        unsafe { q.submit(&open, m, &nonce(*i), *i as u64) }.unwrap();
    }
    let mut results = Vec::new();
    while results.len() < sealed.len() && std::time::Instant::now() < deadline {
        q.flush();
        q.collect(|user, ok| results.push((user as usize, ok)));
    }
    let want: Vec<(usize, bool)> = sealed.iter().map(|(i, _)| (*i, *i != tampered)).collect();
    assert_eq!(
        results, want,
        "{name}: in order, only the tampered one failed"
    );
    for (i, m) in &sealed {
        if *i != tampered {
            assert_eq!(m.data(), plain(*i), "{name}: {i} opened");
        }
    }
    drop(sealed);
    assert_eq!(pool.in_use_count(), base);
    assert_eq!(dev.ops_in_use(), 0, "{name}");
}

/// A queue dropped with operations submitted, some handed to the device and some not:
/// nothing leaks, and no mbuf is freed under the device.
fn dropped_with_work_in_flight(name: &str, dev: &Arc<CryptoDev>, pool: &Mempool) {
    let base = pool.in_use_count();
    let seal = dev.session(AeadDirection::Seal, &[0x77; 32]).unwrap();
    let mut q = dev.queue(1).unwrap();
    for i in 0..600u64 {
        let mut m = mbuf(pool, &[3; 300]);
        // SAFETY: the handle is dropped at once and nothing else touches the data.
        unsafe { q.submit(&seal, &mut m, &[0; 12], i) }.unwrap();
    }
    q.flush();
    drop(q);
    assert_eq!(pool.in_use_count(), base, "{name}: mbufs back");
    assert_eq!(dev.ops_in_use(), 0, "{name}: ops back");
    drop(seal);
    assert_eq!(dev.sessions_in_use(), 0, "{name}");
}
