//! The control port: the gateway's own addresses as seen by the host's kernel, through a
//! TAP interface. Traffic for those addresses that is not WireGuard (a ping, SSH to the
//! gateway) is handed to the kernel; what the kernel sends back is routed out of the
//! right port or through the tunnel.
//!
//! Contract: sans-IO. [`HostPort`] turns punted packets into Ethernet frames for the
//! kernel ([`HostPort::to_host`] collects them) and sorts frames from the kernel into
//! IP packets to route and link-layer questions it answers itself. On the TAP link
//! wgdp is a router with one MAC address: it answers every ARP request and neighbor
//! solicitation from the kernel with it, so the kernel sends everything to wgdp.

use super::frames;
use super::neighbor::parse_nd;
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::wire::{
    ipv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Message, Ipv4Packet,
    Ipv6Packet, MacAddr,
};
use std::net::IpAddr;

/// Frames waiting for the kernel are bounded: the kernel reads the TAP in its own time.
pub const MAX_QUEUED: usize = 1024;

/// Counters of the control port.
#[derive(Debug, Default, Clone)]
pub struct HostStats {
    /// Packets handed to the kernel.
    pub to_host: u64,
    /// Packets from the kernel routed out.
    pub from_host: u64,
    /// ARP and ND answers given to the kernel.
    pub answered: u64,
    /// Frames from the kernel that were not unicast IP, ARP or ND (router
    /// solicitations, multicast listener reports...).
    pub ignored: u64,
    /// Packets for the kernel dropped because its queue was full.
    pub queue_drops: u64,
    /// TCP/UDP checksums a sending host left partial, completed before the packet went
    /// to the kernel (which would drop it otherwise; docs/architecture.md, "What a host
    /// hands the ports").
    pub checksums_completed: u64,
}

/// What to do with a frame from the kernel.
pub enum FromHost {
    /// An IP packet (the frame's payload, trimmed to the IP length) to route.
    Route(Vec<u8>),
    /// Answered (ARP, ND) or ignored: nothing more to do.
    Done,
}

pub struct HostPort {
    /// The kernel's MAC on the TAP.
    host_mac: [u8; 6],
    /// wgdp's MAC on the TAP link.
    mac: [u8; 6],
    /// Frames for the kernel.
    pub to_host: Vec<Vec<u8>>,
    pub stats: HostStats,
}

impl HostPort {
    pub fn new(host_mac: [u8; 6], mac: [u8; 6]) -> Self {
        HostPort {
            host_mac,
            mac,
            to_host: Vec::new(),
            stats: HostStats::default(),
        }
    }

    /// Hands an IP packet to the kernel.
    pub fn deliver(&mut self, ip: &[u8]) {
        let Some(ethertype) = ethertype_of(ip) else {
            return;
        };
        if self.to_host.len() >= MAX_QUEUED {
            self.stats.queue_drops += 1;
            return;
        }
        let mut f = vec![0u8; dataplane::wire::ethernet::HEADER_LEN + ip.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(MacAddr(self.host_mac));
        eth.set_src_addr(MacAddr(self.mac));
        eth.set_ethertype(ethertype);
        f[dataplane::wire::ethernet::HEADER_LEN..].copy_from_slice(ip);
        // A TAP written without a virtio-net header tells the kernel nothing about
        // checksums, so it checks them all: a partial one must be finished here.
        if dataplane::offload::complete(&mut f[dataplane::wire::ethernet::HEADER_LEN..]) {
            self.stats.checksums_completed += 1;
        }
        self.to_host.push(f);
        self.stats.to_host += 1;
    }

    /// Hands a frame a port received (for one of our addresses) to the kernel.
    pub fn deliver_frame(&mut self, frame: &[u8]) {
        match ip_of_frame(frame) {
            Some(ip) => self.deliver(ip),
            None => self.stats.ignored += 1,
        }
    }

    /// Sorts a frame the kernel sent on the TAP.
    pub fn from_host(&mut self, frame: &[u8]) -> FromHost {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.ignored += 1;
            return FromHost::Done;
        };
        match eth.ethertype() {
            EtherType::Arp => {
                self.answer_arp(eth.payload());
                FromHost::Done
            }
            EtherType::Ipv6
                if parse_nd(frame)
                    .is_some_and(|(_, msg, _, _)| msg == Icmpv6Message::NeighborSolicit) =>
            {
                self.answer_ns(frame);
                FromHost::Done
            }
            EtherType::Ipv4 | EtherType::Ipv6 => match ip_of_frame(frame) {
                Some(ip) if is_unicast_dst(ip) => {
                    self.stats.from_host += 1;
                    FromHost::Route(ip.to_vec())
                }
                _ => {
                    self.stats.ignored += 1;
                    FromHost::Done
                }
            },
            _ => {
                self.stats.ignored += 1;
                FromHost::Done
            }
        }
    }

    /// Every address the kernel asks for is reached through wgdp.
    fn answer_arp(&mut self, payload: &[u8]) {
        let Ok(p) = ArpPacket::new_checked(payload) else {
            self.stats.ignored += 1;
            return;
        };
        let req = ArpRepr::parse(&p);
        // A gratuitous request announces the kernel's own address: nothing to answer.
        if req.operation != ArpOperation::Request
            || req.target_protocol_addr == req.sender_protocol_addr
        {
            self.stats.ignored += 1;
            return;
        }
        let mut b = HeapBuf::new(&[]);
        if frames::write_arp(
            &mut b,
            req.sender_hardware_addr.0,
            self.mac,
            &req.reply(MacAddr(self.mac)),
        ) {
            self.to_host.push(b.data().to_vec());
            self.stats.answered += 1;
        }
    }

    fn answer_ns(&mut self, frame: &[u8]) {
        let Some((src, _, target, ll)) = parse_nd(frame) else {
            return;
        };
        // Duplicate address detection (unspecified source) must not be answered, or the
        // kernel would give up its own address.
        let Some(mac) = ll.filter(|_| !src.is_unspecified()) else {
            self.stats.ignored += 1;
            return;
        };
        let mut b = HeapBuf::new(&[]);
        if frames::write_nd(
            &mut b,
            Icmpv6Message::NeighborAdvert,
            mac,
            self.mac,
            &target,
            &src,
            &target,
            // Answered as a router, so the kernel may also send through us.
            frames::NaFlags {
                solicited: true,
                router: true,
            },
        ) {
            self.to_host.push(b.data().to_vec());
            self.stats.answered += 1;
        }
    }
}

fn ethertype_of(ip: &[u8]) -> Option<EtherType> {
    match ip.first()? >> 4 {
        4 => Some(EtherType::Ipv4),
        6 => Some(EtherType::Ipv6),
        _ => None,
    }
}

/// The IP packet in an Ethernet frame, without the link layer's padding.
fn ip_of_frame(frame: &[u8]) -> Option<&[u8]> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let start = dataplane::wire::ethernet::HEADER_LEN;
    let len = match eth.ethertype() {
        EtherType::Ipv4 => Ipv4Packet::new_checked(eth.payload()).ok()?.total_len() as usize,
        EtherType::Ipv6 => {
            ipv6::HEADER_LEN + Ipv6Packet::new_checked(eth.payload()).ok()?.payload_len() as usize
        }
        _ => return None,
    };
    frame.get(start..start + len)
}

fn is_unicast_dst(ip: &[u8]) -> bool {
    match super::dst_addr(ip) {
        Some(IpAddr::V4(a)) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        Some(IpAddr::V6(a)) => !(a.is_multicast() || a.is_unspecified()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::wire::{ethernet, Icmpv6Packet};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOST: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];
    const US: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        let mut b = HeapBuf::new(&[]);
        let req = ArpRepr::request(MacAddr(HOST), Ipv4Addr::new(198, 18, 2, 1), target);
        assert!(frames::write_arp(&mut b, [0xff; 6], HOST, &req));
        b.data().to_vec()
    }

    #[test]
    fn answers_every_arp_and_solicitation_as_a_router() {
        let mut h = HostPort::new(HOST, US);
        assert!(matches!(
            h.from_host(&arp_request(Ipv4Addr::new(198, 18, 1, 10))),
            FromHost::Done
        ));
        let reply = h.to_host.pop().unwrap();
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(eth.dst_addr(), MacAddr(HOST));
        let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap());
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!(arp.sender_hardware_addr, MacAddr(US));
        assert_eq!(arp.sender_protocol_addr, Ipv4Addr::new(198, 18, 1, 10));

        let src: Ipv6Addr = "2001:2:0:2::1".parse().unwrap();
        let target: Ipv6Addr = "2001:2:0:1::10".parse().unwrap();
        let mut b = HeapBuf::new(&[]);
        assert!(frames::write_nd(
            &mut b,
            Icmpv6Message::NeighborSolicit,
            [0x33, 0x33, 0xff, 0, 0, 0x10],
            HOST,
            &src,
            &dataplane::wire::icmpv6::solicited_node_addr(&target),
            &target,
            frames::NaFlags::default(),
        ));
        h.from_host(b.data());
        let na = h.to_host.pop().unwrap();
        let ip = Ipv6Packet::new_checked(&na[ethernet::HEADER_LEN..]).unwrap();
        assert_eq!(ip.dst_addr(), src);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Message::NeighborAdvert);
        assert_eq!(icmp.target_addr(), target);
        assert!(icmp.router_flag() && icmp.solicited_flag());
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));

        // Duplicate address detection is not answered.
        let mut b = HeapBuf::new(&[]);
        frames::write_nd(
            &mut b,
            Icmpv6Message::NeighborSolicit,
            [0x33, 0x33, 0xff, 0, 0, 1],
            HOST,
            &Ipv6Addr::UNSPECIFIED,
            &dataplane::wire::icmpv6::solicited_node_addr(&src),
            &src,
            frames::NaFlags::default(),
        );
        h.from_host(b.data());
        assert!(h.to_host.is_empty());
        assert_eq!(h.stats.answered, 2);
    }

    #[test]
    fn delivers_and_routes_ip() {
        let mut h = HostPort::new(HOST, US);
        let mut ip = vec![0u8; 40];
        frames::write_ipv4(
            &mut ip,
            Ipv4Addr::new(198, 18, 1, 10),
            Ipv4Addr::new(198, 18, 2, 1),
            dataplane::wire::IpProtocol::Udp,
            20,
        );
        h.deliver(&ip);
        let f = h.to_host.pop().unwrap();
        assert_eq!(&f[ethernet::HEADER_LEN..], &ip[..]);
        assert_eq!(&f[..6], &HOST);
        // The same frame from the kernel, padded as Ethernet pads, is routed as the IP
        // packet alone.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 6]);
        match h.from_host(&padded) {
            FromHost::Route(p) => assert_eq!(p, ip),
            FromHost::Done => panic!("not routed"),
        }
        // Garbage and non-IP are ignored.
        assert!(matches!(h.from_host(&[1, 2, 3]), FromHost::Done));
        h.deliver(&[0x10, 0, 0]);
        assert!(h.to_host.is_empty());
    }

    #[test]
    fn partial_checksums_are_completed_for_the_kernel() {
        // A SYN-ACK as a veth sender leaves it: 0x9656 is the pseudo-header sum the
        // kernel put in the field for the card to finish (captured with tcpdump -xx).
        let hex = "4500003c000040004006a494c6120501c61205021b5895206ae9595687a5022c\
                   a012fe8896560000020405b40402080aa923717c5bfc7828 0103030a";
        let hex: String = hex.split_whitespace().collect();
        let ip: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut h = HostPort::new(HOST, US);
        h.deliver(&ip);
        let f = h.to_host.pop().unwrap();
        let tcp = &f[ethernet::HEADER_LEN + 20..];
        let pseudo = dataplane::wire::checksum::pseudo_header_v4(
            Ipv4Addr::new(198, 18, 5, 1),
            Ipv4Addr::new(198, 18, 5, 2),
            dataplane::wire::IpProtocol::Tcp,
            tcp.len() as u16,
        );
        assert_eq!(
            !dataplane::wire::checksum::combine(&[pseudo, dataplane::wire::checksum::data(tcp)]),
            0,
            "the kernel gets a valid checksum"
        );
        assert_eq!(h.stats.checksums_completed, 1);
        // A complete one goes as it came.
        let done = f[ethernet::HEADER_LEN..].to_vec();
        h.deliver(&done);
        assert_eq!(&h.to_host.pop().unwrap()[ethernet::HEADER_LEN..], &done[..]);
        assert_eq!(h.stats.checksums_completed, 1);
    }
}
