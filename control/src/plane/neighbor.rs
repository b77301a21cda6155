//! ARP and IPv6 neighbor discovery on both ports.
//!
//! Contract: answers ARP requests and neighbor solicitations for our own addresses;
//! learns link-layer addresses from requests aimed at us and from replies; resolves next
//! hops for frames the workers could not address (sending a request, holding a bounded
//! number of frames per next hop, retrying once a second, giving up after three tries);
//! and keeps the table the workers read in [`dataplane::tables::Neighbors`], published
//! by the caller whenever [`Resolver::take_dirty`] says it changed.

use super::frames;
use dataplane::buf::PacketBuf;
use dataplane::clock::secs;
use dataplane::meta;
use dataplane::tables::{Neighbors, Side, Tables};
use dataplane::wire::{
    icmpv6, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, Icmpv6Message,
    Icmpv6Packet, Ipv6Packet, MacAddr,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};

/// Frames held per unresolved next hop (the Linux default `unres_qlen` is 101 packets;
/// a gateway resolving at most a few hops at once needs less).
pub const PENDING_PER_HOP: usize = 64;
/// Next hops being resolved at once.
pub const MAX_PENDING_HOPS: usize = 1024;
const RETRY: u64 = secs(1);
const TRIES: u8 = 3;

#[derive(Default, Debug, Clone)]
pub struct NeighborStats {
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    pub na_sent: u64,
    pub ns_sent: u64,
    pub learned: u64,
    /// Frames dropped because their next hop did not answer or its queue was full.
    pub unresolved_drops: u64,
    /// ARP/ND that was not for us or did not parse.
    pub ignored: u64,
}

struct Pending<B> {
    frames: VecDeque<B>,
    last_request: u64,
    tries: u8,
}

pub struct Resolver<B> {
    known: Neighbors,
    dirty: bool,
    pending: HashMap<(Side, IpAddr), Pending<B>>,
    pub stats: NeighborStats,
}

impl<B> Default for Resolver<B> {
    fn default() -> Self {
        Resolver {
            known: Neighbors::default(),
            dirty: false,
            pending: HashMap::new(),
            stats: NeighborStats::default(),
        }
    }
}

impl<B: PacketBuf> Resolver<B> {
    pub fn get(&self, side: Side, ip: IpAddr) -> Option<[u8; 6]> {
        self.known.get(side, ip)
    }

    /// The table to publish, if it changed since the last call.
    pub fn take_dirty(&mut self) -> Option<Neighbors> {
        std::mem::take(&mut self.dirty).then(|| self.known.clone())
    }

    fn learn(&mut self, side: Side, ip: IpAddr, mac: [u8; 6], out: &mut Vec<B>) {
        if !MacAddr(mac).is_unicast() {
            return;
        }
        if self.known.insert(side, ip, mac) != Some(mac) {
            self.dirty = true;
            self.stats.learned += 1;
        }
        if let Some(p) = self.pending.remove(&(side, ip)) {
            for mut f in p.frames {
                set_dst_mac(&mut f, mac);
                f.set_meta(meta::send_on(side));
                out.push(f);
            }
        }
    }

    /// An ARP frame from `side`.
    pub fn handle_arp(
        &mut self,
        side: Side,
        frame: &B,
        t: &Tables,
        alloc: &mut dyn FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) {
        let repr = match EthernetFrame::new_checked(frame.data())
            .ok()
            .and_then(|e| ArpPacket::new_checked(e.payload().to_vec()).ok())
        {
            Some(p) => ArpRepr::parse(&p),
            None => {
                self.stats.ignored += 1;
                return;
            }
        };
        let port = t.port(side);
        let sender = IpAddr::V4(repr.sender_protocol_addr);
        let for_us = port.is_local(IpAddr::V4(repr.target_protocol_addr));
        // RFC 826: update a known sender; add it only if the packet is for us.
        if t.port(side).on_link(sender) && (for_us || self.known.get(side, sender).is_some()) {
            self.learn(side, sender, repr.sender_hardware_addr.0, out);
        }
        if !for_us || repr.operation != ArpOperation::Request {
            if !for_us {
                self.stats.ignored += 1;
            }
            return;
        }
        let reply = repr.reply(MacAddr(port.mac));
        if let Some(mut b) = alloc() {
            if frames::write_arp(&mut b, repr.sender_hardware_addr.0, port.mac, &reply) {
                b.set_meta(meta::send_on(side));
                out.push(b);
                self.stats.arp_replies_sent += 1;
            }
        }
    }

    /// A neighbor discovery frame from `side`.
    pub fn handle_nd(
        &mut self,
        side: Side,
        frame: &B,
        t: &Tables,
        alloc: &mut dyn FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) {
        let Some((src, msg, target, ll)) = parse_nd(frame.data()) else {
            self.stats.ignored += 1;
            return;
        };
        let port = t.port(side);
        match msg {
            Icmpv6Message::NeighborSolicit => {
                if !port.is_local(IpAddr::V6(target)) {
                    self.stats.ignored += 1;
                    return;
                }
                // Duplicate address detection uses the unspecified source: nothing to
                // learn, and the answer goes to all nodes (RFC 4861 7.2.4).
                let (dst, dst_mac, solicited) = if src.is_unspecified() {
                    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                    (all, icmpv6::multicast_mac(&all).0, false)
                } else {
                    let Some(mac) = ll else {
                        self.stats.ignored += 1;
                        return;
                    };
                    if port.on_link(IpAddr::V6(src)) || (src.segments()[0] & 0xffc0) == 0xfe80 {
                        self.learn(side, IpAddr::V6(src), mac, out);
                    }
                    (src, mac, true)
                };
                if let Some(mut b) = alloc() {
                    if frames::write_nd(
                        &mut b,
                        Icmpv6Message::NeighborAdvert,
                        dst_mac,
                        port.mac,
                        &target,
                        &dst,
                        &target,
                        frames::NaFlags {
                            solicited,
                            router: false,
                        },
                    ) {
                        b.set_meta(meta::send_on(side));
                        out.push(b);
                        self.stats.na_sent += 1;
                    }
                }
            }
            Icmpv6Message::NeighborAdvert => match ll {
                Some(mac) => self.learn(side, IpAddr::V6(target), mac, out),
                None => self.stats.ignored += 1,
            },
            // Router solicitations/advertisements and redirects: wgdp routes statically.
            _ => self.stats.ignored += 1,
        }
    }

    /// Send `frame` (complete but for its destination MAC) to next hop `hop` on `side`.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        &mut self,
        side: Side,
        hop: IpAddr,
        mut frame: B,
        t: &Tables,
        now: u64,
        alloc: &mut dyn FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) {
        if let Some(mac) = self.known.get(side, hop) {
            set_dst_mac(&mut frame, mac);
            frame.set_meta(meta::send_on(side));
            out.push(frame);
            return;
        }
        let new = !self.pending.contains_key(&(side, hop));
        if new && self.pending.len() >= MAX_PENDING_HOPS {
            // Many unanswered next hops at once (a scan, or spoofed sources): frames
            // for yet another one are dropped rather than held without bound.
            self.stats.unresolved_drops += 1;
            return;
        }
        let p = self.pending.entry((side, hop)).or_insert_with(|| Pending {
            frames: VecDeque::new(),
            last_request: 0,
            tries: 0,
        });
        if p.frames.len() >= PENDING_PER_HOP {
            // Keep the newest, as the Linux neighbor queue does.
            p.frames.pop_front();
            self.stats.unresolved_drops += 1;
        }
        p.frames.push_back(frame);
        if new {
            self.solicit(side, hop, t, now, alloc, out);
        }
    }

    fn solicit(
        &mut self,
        side: Side,
        hop: IpAddr,
        t: &Tables,
        now: u64,
        alloc: &mut dyn FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) {
        let port = t.port(side);
        // The try counts even when no request can be sent, so that the held frames are
        // given up after the last one instead of waiting forever.
        if let Some(p) = self.pending.get_mut(&(side, hop)) {
            p.last_request = now;
            p.tries += 1;
        }
        let Some(src) = port.source_for(hop) else {
            return;
        };
        let Some(mut b) = alloc() else { return };
        let ok = match (src, hop) {
            (IpAddr::V4(s), IpAddr::V4(h)) => {
                self.stats.arp_requests_sent += 1;
                frames::write_arp(
                    &mut b,
                    [0xff; 6],
                    port.mac,
                    &ArpRepr::request(MacAddr(port.mac), s, h),
                )
            }
            (IpAddr::V6(s), IpAddr::V6(h)) => {
                self.stats.ns_sent += 1;
                let group = icmpv6::solicited_node_addr(&h);
                frames::write_nd(
                    &mut b,
                    Icmpv6Message::NeighborSolicit,
                    icmpv6::multicast_mac(&group).0,
                    port.mac,
                    &s,
                    &group,
                    &h,
                    frames::NaFlags::default(),
                )
            }
            _ => false,
        };
        if ok {
            b.set_meta(meta::send_on(side));
            out.push(b);
        }
    }

    /// Retry unanswered requests; drop what waited for a next hop that never answered.
    pub fn tick(
        &mut self,
        t: &Tables,
        now: u64,
        alloc: &mut dyn FnMut() -> Option<B>,
        out: &mut Vec<B>,
    ) {
        let due: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last_request) >= RETRY)
            .map(|(k, p)| (*k, p.tries))
            .collect();
        for ((side, hop), tries) in due {
            if tries >= TRIES {
                if let Some(p) = self.pending.remove(&(side, hop)) {
                    self.stats.unresolved_drops += p.frames.len() as u64;
                }
            } else {
                self.solicit(side, hop, t, now, alloc, out);
            }
        }
    }

    /// When `tick` next has a request to retry or give up on (`u64::MAX`: none).
    pub fn next_deadline(&self) -> u64 {
        self.pending
            .values()
            .map(|p| p.last_request + RETRY)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Frames waiting for resolution.
    pub fn pending_frames(&self) -> usize {
        self.pending.values().map(|p| p.frames.len()).sum()
    }
}

fn set_dst_mac<B: PacketBuf>(frame: &mut B, mac: [u8; 6]) {
    if frame.len() >= 6 {
        frame.data_mut()[..6].copy_from_slice(&mac);
    }
}

/// (source, message, target, link-layer address option) of an NS or NA.
pub(super) fn parse_nd(
    frame: &[u8],
) -> Option<(Ipv6Addr, Icmpv6Message, Ipv6Addr, Option<[u8; 6]>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    // RFC 4861 7.1.1/7.1.2: ND from off-link is refused by its hop limit.
    if ip.hop_limit() != 255 {
        return None;
    }
    let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
    if !icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()) {
        return None;
    }
    let msg = icmp.msg_type();
    let which = match msg {
        Icmpv6Message::NeighborSolicit => icmpv6::LinkLayerOption::Source,
        Icmpv6Message::NeighborAdvert => icmpv6::LinkLayerOption::Target,
        _ => return Some((ip.src_addr(), msg, Ipv6Addr::UNSPECIFIED, None)),
    };
    Some((
        ip.src_addr(),
        msg,
        icmp.target_addr(),
        icmp.ll_addr(which).map(|m| m.0),
    ))
}
