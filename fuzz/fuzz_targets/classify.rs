//! The classify stage on a vector of arbitrary frames, outside or inside, with the fixed
//! tables of `wgdp_fuzz::net`. Input: a flags byte (bit 0 inside, bit 1 write our MAC
//! as destination, bits 2-3 the length and checksum fix-ups), then frames as
//! 16-bit-length-prefixed byte strings.
//!
//! Every frame must leave by exactly one way (forwarded, punted, dropped under a named
//! reason), the counters must say so, and what goes on must be what the next stage
//! expects: a whole transport message with its sender, an IP packet trimmed to its own
//! length, or a punted frame whose meta carries its reason and side. Handshake punts must
//! parse as the control thread parses them.

#![no_main]

use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::counters::{Punt, WorkerCounters};
use dataplane::crypto::Backend;
use dataplane::meta;
use dataplane::session::Sessions;
use dataplane::stages::{classify, Poll};
use dataplane::tables::{Neighbors, Side};
use dataplane::wire::wireguard::{self, MessageKind, Transport};
use dataplane::wire::{Ipv4Packet, Ipv6Packet};
use libfuzzer_sys::fuzz_target;
use wgdp_fuzz::{fix_frame, net, Cursor, Fixups, MAX_FRAME};

const MAX_FRAMES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let flags = cur.u8();
    let side = if flags & 1 == 0 {
        Side::Outside
    } else {
        Side::Inside
    };
    let fix = Fixups::from_bits(flags >> 2);
    let tables = net::tables();

    let mut rx = Vec::new();
    while !cur.is_empty() && rx.len() < MAX_FRAMES {
        let mut frame = cur.blob(MAX_FRAME).to_vec();
        if flags & 2 != 0 && frame.len() >= 6 {
            frame[..6].copy_from_slice(&net::mac(side));
        }
        fix_frame(&mut frame, fix);
        rx.push(HeapBuf::new(&frame));
    }
    let n = rx.len();
    let c = WorkerCounters::default();
    let mut fwd = Vec::new();
    let mut sources: Vec<classify::Origin> = Vec::new();
    let mut punt = Vec::new();
    let (neighbors, sessions) = (Neighbors::default(), Sessions::new(1, 1));
    let activity = dataplane::activity::Activity::new(1).writer();
    let (mut backend, mut dropped) = (Backend::Ring, Vec::new());
    let mut p = Poll {
        now: 0,
        tables: &tables,
        neighbors: &neighbors,
        sessions: &sessions,
        counters: &c,
        activity: &activity,
        backend: &mut backend,
        crew: None,
        dropped: &mut dropped,
    };
    match side {
        Side::Outside => classify::outside(&mut p, &mut rx, &mut fwd, &mut sources, &mut punt),
        Side::Inside => classify::inside(&mut p, &mut rx, &mut fwd, &mut punt),
    }
    assert_eq!(
        dropped.len() as u64,
        c.classify.total(),
        "every drop is in the bin"
    );

    assert!(rx.is_empty(), "classify leaves its input empty");
    assert_eq!(
        fwd.len() + punt.len() + c.classify.total() as usize,
        n,
        "every frame forwarded, punted or dropped exactly once"
    );
    assert_eq!(c.punt.total() as usize, punt.len());
    for &reason in Punt::ALL.iter() {
        let punted = punt
            .iter()
            .filter(|p| meta::punt_reason(p.meta()) == Some(reason))
            .count();
        assert_eq!(punted as u64, c.punt.get(reason), "{reason:?}");
    }
    for p in &punt {
        assert_eq!(meta::side(p.meta()), side);
        assert_eq!(meta::peer(p.meta()), 0);
        if meta::punt_reason(p.meta()) == Some(Punt::Handshake) {
            assert_eq!(side, Side::Outside);
            let dg = control::plane::frames::parse_udp(p.data())
                .expect("a punted handshake parses as the control thread parses it");
            assert_eq!(dg.dst.port(), net::LISTEN_PORT);
            let msg = &p.data()[dg.payload.0..dg.payload.0 + dg.payload.1];
            let kind = wireguard::classify(msg).expect("a punted handshake classifies");
            assert!(kind.is_handshake());
        }
    }

    match side {
        Side::Outside => {
            assert_eq!(fwd.len(), sources.len(), "one source per transport message");
            for m in &fwd {
                assert_eq!(wireguard::classify(m.data()), Ok(MessageKind::Transport));
                assert!(Transport::new_checked(m.data()).is_ok());
            }
        }
        Side::Inside => {
            assert!(sources.is_empty());
            for p in &fwd {
                let len = match p.data().first().map(|b| b >> 4) {
                    Some(4) => usize::from(
                        Ipv4Packet::new_checked(p.data())
                            .expect("forwarded IPv4 parses")
                            .total_len(),
                    ),
                    Some(6) => Ipv6Packet::new_checked(p.data())
                        .expect("forwarded IPv6 parses")
                        .total_len(),
                    other => panic!("forwarded a non-IP packet (version {other:?})"),
                };
                assert_eq!(len, p.len(), "trailing padding trimmed");
            }
        }
    }
});
