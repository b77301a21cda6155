//! Offload: finish, on IP packets from the inside port, what the sending host left to its
//! network card (module `offload`; docs/architecture.md, "What a host hands the ports").
//!
//! - A packet longer than the port's link MTU is a super-packet: TCP is cut into packets
//!   that fit the tunnel (and the link), each with its own complete checksum; UDP is cut
//!   only where the driver reports the sender's datagram size (a cut anywhere else would
//!   change the datagrams the receiver sees). Anything else that long goes on unchanged,
//!   for route to answer as any packet too big for the tunnel (ICMP too-big, or IPv4
//!   fragments without DF).
//! - On ports that may deliver them (`complete_checksums`), a TCP/UDP checksum the
//!   sender left partial is completed.
//!
//! Runs between classify and route, so every path a packet can take afterwards (a peer,
//! the inside again, the control thread) sees finished packets. The pieces come from the
//! worker's packet pool through `alloc` and inherit the super-packet's port and meta.

use crate::buf::PacketBuf;
use crate::counters::{OffloadDrop, OffloadEvent};
use crate::offload;
use crate::stages::Poll;
use crate::tables::Side;

/// Finish `pkts` (IP packets received on the inside port) into `out`. The tunnel MTU
/// bounds the pieces of a super-packet; `alloc(v, n)` appends `n` empty buffers to `v`
/// or returns false without change.
#[inline(never)]
pub fn run<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    pkts: &mut Vec<B>,
    alloc: &mut impl FnMut(&mut Vec<B>, usize) -> bool,
    out: &mut Vec<B>,
) {
    let port = p.tables.port(Side::Inside);
    let link_mtu = usize::from(port.link_mtu);
    let piece_max = usize::from(p.tables.mtu.min(port.link_mtu));
    for mut pkt in pkts.drain(..) {
        if pkt.len() > link_mtu {
            match offload::plan(pkt.data(), piece_max, None) {
                Ok(plan) => cut(p, pkt, &plan, alloc, out),
                Err(_) => out.push(pkt),
            }
            continue;
        }
        if port.complete_checksums && offload::complete(pkt.data_mut()) {
            p.counters
                .offload_events
                .inc(OffloadEvent::ChecksumCompleted);
        }
        out.push(pkt);
    }
}

fn cut<B: PacketBuf>(
    p: &mut Poll<'_, B>,
    pkt: B,
    plan: &offload::Plan,
    alloc: &mut impl FnMut(&mut Vec<B>, usize) -> bool,
    out: &mut Vec<B>,
) {
    let c = p.counters;
    let first = out.len();
    if !alloc(out, plan.count) {
        c.offload.inc(OffloadDrop::NoBuffers);
        p.discard(pkt);
        return;
    }
    let total = pkt.len();
    for (i, piece) in out[first..].iter_mut().enumerate() {
        let data = piece
            .append(plan.piece_len(total, i))
            .expect("a fresh buffer holds a packet of the link MTU");
        offload::write(pkt.data(), plan, i, data);
        piece.set_port(pkt.port());
        piece.set_meta(pkt.meta());
    }
    c.offload_events.inc(OffloadEvent::SuperpacketCut);
    c.offload_events
        .add(OffloadEvent::SuperpacketPieces, plan.count as u64);
    // The super-packet itself is done with.
    p.discard(pkt);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::stages::TestPoll;
    use crate::tables::{PortTables, Tables};

    /// A poll whose inside port is `port`, with a tunnel MTU of 1420.
    fn with_inside(port: PortTables) -> TestPoll<HeapBuf> {
        TestPoll::new(Tables {
            ports: [PortTables::new([1; 6], vec![]), port],
            allowed: Default::default(),
            listen_port: 51820,
            mtu: 1420,
            outer_dscp: Default::default(),
        })
    }

    fn tcp_super(payload: usize) -> Vec<u8> {
        let mut ip = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2, 198, 18, 99, 2,
        ];
        let mut tcp = vec![0u8; 20];
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        ip.extend_from_slice(&tcp);
        ip.extend((0..payload).map(|i| i as u8));
        let len = ip.len() as u16;
        ip[2..4].copy_from_slice(&len.to_be_bytes());
        crate::wire::Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
        ip
    }

    fn alloc_heap(v: &mut Vec<HeapBuf>, n: usize) -> bool {
        v.extend((0..n).map(|_| HeapBuf::new(&[])));
        true
    }

    #[test]
    fn super_packets_are_cut_and_counted_small_ones_pass() {
        let mut port = PortTables::new([2; 6], vec![]);
        port.link_mtu = 1500;
        let mut tp = with_inside(port);
        let big = tcp_super(20_000);
        let mut pkts = vec![
            HeapBuf::with_room(&big, 128, 128 + big.len()),
            HeapBuf::new(&tcp_super(1000)),
        ];
        pkts[0].set_meta(7);
        let mut out = Vec::new();
        run(&mut tp.poll(), &mut pkts, &mut alloc_heap, &mut out);
        let c = &tp.counters;
        let pieces = 20_000usize.div_ceil(1420 - 40);
        assert_eq!(out.len(), pieces + 1);
        assert!(out[..pieces]
            .iter()
            .all(|p| p.len() <= 1420 && p.meta() == 7));
        assert_eq!(out[pieces].len(), 1040);
        assert_eq!(c.offload_events.get(OffloadEvent::SuperpacketCut), 1);
        assert_eq!(
            c.offload_events.get(OffloadEvent::SuperpacketPieces),
            pieces as u64
        );
        assert_eq!(c.drops(), 0);
        // The super-packet went to the bin, not counted as a drop.
        assert_eq!(tp.dropped.len(), 1);
    }

    #[test]
    fn no_buffers_is_a_counted_drop_udp_without_size_goes_on() {
        let mut tp = with_inside(PortTables::new([2; 6], vec![]));
        let big = tcp_super(5000);
        let mut udp = big.clone();
        udp[9] = 17;
        crate::wire::Ipv4Packet::new_unchecked(&mut udp[..]).fill_checksum();
        let room = 128 + big.len();
        let mut pkts = vec![
            HeapBuf::with_room(&big, 128, room),
            HeapBuf::with_room(&udp, 128, room),
        ];
        let mut out = Vec::new();
        run(&mut tp.poll(), &mut pkts, &mut |_, _| false, &mut out);
        let c = &tp.counters;
        assert_eq!(c.offload.get(OffloadDrop::NoBuffers), 1);
        assert_eq!(c.drops(), 1);
        // Left whole for route's too-big path.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data(), &udp[..]);
    }

    #[test]
    fn partial_checksums_are_completed_only_where_the_port_says() {
        let mut ip = tcp_super(100);
        // The pseudo-header sum the kernel leaves for the card.
        let l = offload::l4(&ip).unwrap();
        let p = crate::wire::checksum::pseudo_header_v4(
            [198, 18, 1, 2].into(),
            [198, 18, 99, 2].into(),
            crate::wire::IpProtocol::Tcp,
            l.len as u16,
        );
        ip[36..38].copy_from_slice(&p.to_be_bytes());
        for complete in [false, true] {
            let mut port = PortTables::new([2; 6], vec![]);
            port.complete_checksums = complete;
            let mut tp = with_inside(port);
            let mut pkts = vec![HeapBuf::new(&ip)];
            let mut out = Vec::new();
            run(&mut tp.poll(), &mut pkts, &mut alloc_heap, &mut out);
            let c = &tp.counters;
            assert_eq!(out[0].data() != &ip[..], complete);
            assert_eq!(
                c.offload_events.get(OffloadEvent::ChecksumCompleted),
                complete as u64
            );
        }
    }
}
