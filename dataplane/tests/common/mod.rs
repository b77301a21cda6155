//! Frame builders and set-up shared by the DPDK worker tests (`dpdk_worker.rs`,
//! `dpdk_workers.rs`).

use dataplane::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, UdpPacket};
use dpdk_sys::{Mbuf, Mempool};
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;

/// `/proc/self` belongs to the process's effective user.
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// An IPv4/UDP packet from `src`:`sport` to `dst`:`dport` with both checksums.
pub fn ipv4_udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut b = vec![0u8; 20 + 8 + payload.len()];
    let total = b.len() as u16;
    let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
    p.set_version(4);
    p.set_header_len(20);
    p.set_total_len(total);
    p.set_ttl(64);
    p.set_protocol(IpProtocol::Udp);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    let mut u = UdpPacket::new_unchecked(&mut b[20..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len(total - 20);
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum_v4(src, dst);
    b
}

/// An Ethernet frame around `payload`.
pub fn frame(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 14 + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut b[..]);
    f.set_dst_addr(MacAddr(dst));
    f.set_src_addr(MacAddr(src));
    f.set_ethertype(ethertype);
    f.payload_mut().copy_from_slice(payload);
    b
}

/// An mbuf of `pool` holding `bytes`.
pub fn mbuf(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool
        .alloc()
        .expect("the pool holds every frame of the test");
    m.append(bytes.len() as u16)
        .expect("a frame fits in one mbuf")
        .copy_from_slice(bytes);
    m
}
