use super::*;
use crate::wire::{Ipv4Packet, Ipv6Packet};

const NAMES: [&str; 4] = ["Not-ECT", "ECT(1)", "ECT(0)", "CE"];

fn v4(tos: u8) -> Vec<u8> {
    let mut ip = vec![
        0x45, tos, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 198, 18, 2, 2, 198, 18, 99, 2,
    ];
    ip.extend_from_slice(&[0x30, 0x39, 0x13, 0x88, 0, 8, 0, 0]);
    Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
    ip
}

fn v6(tc: u8) -> Vec<u8> {
    let mut ip = vec![0u8; 48];
    ip[0] = 0x60 | (tc >> 4);
    ip[1] = (tc << 4) | 0x0a; // flow label bits beside the class must survive
    ip[2] = 0xbc;
    ip[3] = 0xde;
    ip[5] = 8;
    ip[6] = 17;
    ip[7] = 64;
    ip
}

/// RFC 6040 section 4.2, Figure 4, written out cell by cell: (inner, outer, result).
const FIGURE_4: [(u8, u8, Option<u8>); 16] = [
    (NOT_ECT, NOT_ECT, Some(NOT_ECT)),
    (NOT_ECT, ECT_0, Some(NOT_ECT)),
    (NOT_ECT, ECT_1, Some(NOT_ECT)),
    (NOT_ECT, CE, None),
    (ECT_0, NOT_ECT, Some(ECT_0)),
    (ECT_0, ECT_0, Some(ECT_0)),
    (ECT_0, ECT_1, Some(ECT_1)),
    (ECT_0, CE, Some(CE)),
    (ECT_1, NOT_ECT, Some(ECT_1)),
    (ECT_1, ECT_0, Some(ECT_1)),
    (ECT_1, ECT_1, Some(ECT_1)),
    (ECT_1, CE, Some(CE)),
    (CE, NOT_ECT, Some(CE)),
    (CE, ECT_0, Some(CE)),
    (CE, ECT_1, Some(CE)),
    (CE, CE, Some(CE)),
];

#[test]
fn decapsulation_follows_rfc_6040_figure_4() {
    for (inner, outer, want) in FIGURE_4 {
        assert_eq!(
            decapsulate(outer, inner),
            want,
            "inner {} under outer {}",
            NAMES[inner as usize],
            NAMES[outer as usize]
        );
    }
}

#[test]
fn encapsulation_copies_every_inner_field() {
    for inner in [NOT_ECT, ECT_0, ECT_1, CE] {
        assert_eq!(encapsulate(inner), inner, "{}", NAMES[inner as usize]);
        for family in [4, 6] {
            let ip = if family == 4 {
                v4((46 << 2) | inner)
            } else {
                v6((46 << 2) | inner)
            };
            // DSCP 0 outside by default, the inner one where configured; ECN copied.
            assert_eq!(OuterDscp::default().outer_tos(&ip), inner);
            assert_eq!(OuterDscp::Fixed(10).outer_tos(&ip), (10 << 2) | inner);
            assert_eq!(OuterDscp::Inner.outer_tos(&ip), (46 << 2) | inner);
        }
    }
}

/// Both directions on real headers: what one end's encapsulation writes outside, and a
/// congested router's mark on it, arrive at the other end's inner packet as Figure 4 says.
#[test]
fn a_round_trip_through_a_marking_router() {
    for inner in [NOT_ECT, ECT_0, ECT_1, CE] {
        for marks in [false, true] {
            let outer = if marks && encapsulate(inner) != NOT_ECT {
                CE
            } else {
                encapsulate(inner)
            };
            let want = decapsulate(outer, inner);
            // A router only marks ECN-capable packets, so the tunnel never drops.
            assert!(want.is_some());
            if marks && inner != NOT_ECT {
                assert_eq!(want, Some(CE));
            } else {
                assert_eq!(want, Some(inner));
            }
        }
    }
}

#[test]
fn setting_the_field_keeps_headers_valid() {
    for (inner, outer, want) in FIGURE_4 {
        let Some(result) = want else { continue };
        let mut a = v4((18 << 2) | inner);
        assert_eq!(get(&a), Some(inner));
        let got = decapsulate(outer, get(&a).unwrap()).unwrap();
        set(&mut a, got);
        let p = Ipv4Packet::new_checked(&a[..]).unwrap();
        assert_eq!((p.dscp(), p.ecn()), (18, result));
        assert!(
            p.verify_checksum(),
            "IPv4 checksum after {inner} -> {result}"
        );

        let mut b = v6((18 << 2) | inner);
        assert_eq!(get(&b), Some(inner));
        set(&mut b, result);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), (18 << 2) | result);
        assert_eq!(p.flow_label(), 0xabcde);
    }
    // Not IP: nothing read, nothing written.
    let mut junk = vec![0x10, 0xff, 0, 0];
    assert_eq!(get(&junk), None);
    set(&mut junk, CE);
    assert_eq!(junk, vec![0x10, 0xff, 0, 0]);
}
