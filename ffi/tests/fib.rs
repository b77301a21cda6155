//! `Fib4` (DPDK's `rte_fib`, DIR-24-8): errors, prefixes of every length (the default
//! route among them), no room left, and random changes checked against a plain
//! longest-prefix match.

mod common;

use dpdk_sys::{Fib4, FIB4_MAX_NEXT_HOP};

#[test]
fn fib4() {
    let Some(_eal) = common::eal_or_skip("fib4", &[]) else {
        return;
    };
    errors();
    lengths_and_entries();
    no_room();
    random_against_a_plain_match();
}

fn errors() {
    let err = Fib4::new("t_zero", 0, 16).err().expect("no routes");
    assert_eq!(err.errno(), libc::EINVAL, "{err}");
    let _first = Fib4::new("t_dup", 16, 16).unwrap();
    let err = Fib4::new("t_dup", 16, 16).err().expect("duplicate name");
    assert_eq!(err.errno(), libc::EEXIST, "{err}");
    let mut f = Fib4::new("t_errors", 16, 16).unwrap();
    for (len, nh) in [(33, 1), (24, Fib4::MISS), (24, FIB4_MAX_NEXT_HOP + 1)] {
        let err = f.add(0x0a00_0000, len, nh).expect_err("refused");
        assert_eq!(err.errno(), libc::EINVAL, "/{len} -> {nh}: {err}");
    }
    assert!(!f.delete(0x0a00_0000, 8).unwrap(), "not there");
    assert!(f.delete(0, 33).is_err());
}

fn lengths_and_entries() {
    let mut f = Fib4::new("t_lengths", 64, 64).unwrap();
    assert_eq!(f.lookup(0x0a01_0203), Fib4::MISS);
    f.add(0, 0, 1).unwrap();
    f.add(0x0a00_0000, 8, 2).unwrap();
    f.add(0x0a01_0200, 24, 3).unwrap();
    f.add(0x0a01_0203, 32, 4).unwrap();
    // Host bits are ignored.
    f.add(0x0a01_02ff, 25, 5).unwrap();
    assert_eq!(f.lookup(0xc0a8_0001), 1);
    assert_eq!(f.lookup(0x0aff_0001), 2);
    assert_eq!(f.lookup(0x0a01_0201), 3);
    assert_eq!(f.lookup(0x0a01_0203), 4);
    assert_eq!(f.lookup(0x0a01_0280), 5);
    f.add(0x0a01_0203, 32, 6).unwrap();
    assert_eq!(f.lookup(0x0a01_0203), 6, "a next hop changed in place");
    let mut entries = f.entries();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            (0, 0, 1),
            (0x0a00_0000, 8, 2),
            (0x0a01_0200, 24, 3),
            (0x0a01_0203, 32, 6),
            (0x0a01_0280, 25, 5)
        ]
    );
    assert_eq!(f.get(0x0a01_0203, 32), Some(6));
    assert_eq!(f.get(0x0a01_02ff, 25), Some(5), "host bits ignored");
    assert_eq!(f.get(0x0a01_0203, 31), None);
    assert!(f.delete(0x0a01_0203, 32).unwrap());
    assert_eq!(f.get(0x0a01_0203, 32), None);
    assert_eq!(f.lookup(0x0a01_0203), 3);
    assert!(f.delete(0, 0).unwrap());
    assert_eq!(f.lookup(0xc0a8_0001), Fib4::MISS, "no default any more");
    let mut addrs = [0x0a01_0201, 0x0b00_0000, 0x0a01_0290];
    let mut nhs = [0; 3];
    f.lookup_bulk(&addrs, &mut nhs);
    assert_eq!(nhs, [3, Fib4::MISS, 5]);
    addrs.reverse();
    f.lookup_bulk(&addrs, &mut nhs);
    assert_eq!(nhs, [5, Fib4::MISS, 3]);
    // Either lookup function gives the same answers: the scalar one is always there,
    // the AVX-512 one where the CPU and DPDK's build have it.
    assert!(f.select_lookup(false), "the scalar lookup");
    f.lookup_bulk(&addrs, &mut nhs);
    assert_eq!(nhs, [5, Fib4::MISS, 3]);
    if f.select_lookup(true) {
        f.lookup_bulk(&addrs, &mut nhs);
        assert_eq!(nhs, [5, Fib4::MISS, 3]);
    }
}

fn no_room() {
    // One second-level group asked for, 64 given: a 65th /24 holding a longer prefix
    // does not fit.
    let mut f = Fib4::new("t_room", 128, 1).unwrap();
    assert_eq!(f.groups(), 64);
    for i in 0..64 {
        f.add(0x0a00_0001 | i << 8, 32, 1).unwrap();
    }
    let err = f.add(0x0a00_4001, 32, 2).expect_err("no group left");
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
    assert_eq!(f.lookup(0x0a00_0001), 1, "the table is unchanged");
    assert_eq!(f.lookup(0x0a00_4001), Fib4::MISS);
    // A prefix of /24 or shorter needs no group.
    f.add(0x0a00_4000, 24, 3).unwrap();
    assert_eq!(f.lookup(0x0a00_4001), 3);
}

fn random_against_a_plain_match() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut f = Fib4::new("t_random", 4096, 4096).unwrap();
    let mut plain: Vec<(u32, u8, u64)> = Vec::new();
    let mask = |len: u8| if len == 0 { 0 } else { u32::MAX << (32 - len) };
    // Addresses within 10.0.0.0/14, so that prefixes nest.
    let addr = |r: u64| 0x0a00_0000 | (r as u32 & 0x0003_ffff);
    for step in 0..6000 {
        let r = next();
        let len = [0, 8, 14, 16, 20, 24, 26, 30, 32][(r % 9) as usize];
        let a = addr(r >> 8) & mask(len);
        if r % 3 == 0 && !plain.is_empty() {
            let (a, len, _) = plain.swap_remove((r >> 40) as usize % plain.len());
            assert!(f.delete(a, len).unwrap(), "step {step}");
        } else {
            let nh = (r >> 32) % 1000;
            f.add(a, len, nh).unwrap();
            plain.retain(|p| (p.0, p.1) != (a, len));
            plain.push((a, len, nh));
        }
        if step % 200 == 199 {
            for _ in 0..500 {
                let x = addr(next());
                let want = plain
                    .iter()
                    .filter(|p| x & mask(p.1) == p.0)
                    .max_by_key(|p| p.1)
                    .map_or(Fib4::MISS, |p| p.2);
                assert_eq!(f.lookup(x), want, "step {step}, {x:#x}");
            }
            let mut got = f.entries();
            got.sort();
            let mut want = plain.clone();
            want.sort();
            assert_eq!(got, want, "step {step}");
        }
    }
}
