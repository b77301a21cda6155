//! What the workers need to know to forward, as immutable snapshots control publishes.
//!
//! Contract: control builds a [`Tables`] from the configuration (and rebuilds it when the
//! configuration changes) and a [`Neighbors`] map whenever it learns a link-layer address;
//! it publishes each with an atomic pointer swap ([`Shared`]). A worker loads both once
//! per burst and never sees a half-built table.

use crate::activity::Activity;
use crate::allowed::Allowed;
use crate::lpm::{IntMap, PrefixTable};
use crate::session::Sessions;
use arc_swap::ArcSwap;
use dpdk_sys::Offloads;
use std::net::IpAddr;

/// The two ports of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    /// Encrypted WireGuard UDP.
    Outside = 0,
    /// Plaintext of the protected networks.
    Inside = 1,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Outside, Side::Inside];

    pub fn name(self) -> &'static str {
        match self {
            Side::Outside => "outside",
            Side::Inside => "inside",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a route sends a packet next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// The destination is on the link: send to it directly.
    Connected,
    /// Through a router on the link.
    Via(IpAddr),
}

/// One of our addresses on a port, with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A port as the data path sees it.
#[derive(Clone)]
pub struct PortTables {
    pub mac: [u8; 6],
    pub addrs: Vec<LocalAddr>,
    /// Connected networks, `routes` and the default `gateway`s of this port.
    pub fib: PrefixTable<NextHop>,
    /// The link's MTU: a received IP packet longer than this can only be a host's
    /// super-packet (TSO, GSO, GRO), which the offload stage cuts.
    pub link_mtu: u16,
    /// Complete TCP/UDP checksums a host left partial (`partial_checksums`).
    pub complete_checksums: bool,
    /// The checksums the port's device fills on sending.
    pub offloads: Offloads,
}

impl PortTables {
    pub fn new(mac: [u8; 6], addrs: Vec<LocalAddr>) -> Self {
        let mut fib = PrefixTable::new();
        for a in &addrs {
            fib.insert(a.addr, a.prefix_len, NextHop::Connected);
        }
        PortTables {
            mac,
            addrs,
            fib,
            link_mtu: 1500,
            complete_checksums: false,
            offloads: Offloads::default(),
        }
    }

    #[inline]
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.addr == addr)
    }

    /// Does `ip` sit on one of this port's connected networks?
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| match (a.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let m = u32::MAX.checked_shl(32 - a.prefix_len as u32).unwrap_or(0);
                u32::from(n) & m == u32::from(i) & m
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let m = u128::MAX
                    .checked_shl(128 - a.prefix_len as u32)
                    .unwrap_or(0);
                u128::from(n) & m == u128::from(i) & m
            }
            _ => false,
        })
    }

    /// Our first address of `addr`'s family (the source of what we send to it).
    #[inline]
    pub fn source_for(&self, addr: IpAddr) -> Option<IpAddr> {
        self.addrs
            .iter()
            .find(|a| a.addr.is_ipv4() == addr.is_ipv4())
            .map(|a| a.addr)
    }

    /// The link-layer destination to send `dst` to: itself, or a router.
    #[inline]
    pub fn next_hop(&self, dst: IpAddr) -> Option<IpAddr> {
        match self.fib.lookup(dst)? {
            NextHop::Connected => Some(dst),
            NextHop::Via(r) => Some(*r),
        }
    }
}

/// Forwarding state of the whole gateway.
#[derive(Clone)]
pub struct Tables {
    pub ports: [PortTables; 2],
    /// Cryptokey routing: allowed IPs -> peer id.
    pub allowed: Allowed,
    pub listen_port: u16,
    /// Largest inner packet.
    pub mtu: u16,
    /// The DSCP encrypt writes outside (module `ecn`).
    pub outer_dscp: crate::ecn::OuterDscp,
}

impl Tables {
    #[inline]
    pub fn port(&self, side: Side) -> &PortTables {
        &self.ports[side.index()]
    }

    /// These tables with cryptokey routing replaced (the old one is not copied).
    pub fn with_allowed(&self, allowed: Allowed) -> Tables {
        Tables {
            ports: self.ports.clone(),
            allowed,
            listen_port: self.listen_port,
            mtu: self.mtu,
            outer_dscp: self.outer_dscp,
        }
    }
}

/// Link-layer addresses learned by control (ARP, neighbor discovery).
#[derive(Clone, Default)]
pub struct Neighbors {
    map: IntMap<(u8, u128), [u8; 6]>,
}

#[inline]
fn key(side: Side, ip: IpAddr) -> (u8, u128) {
    let a = match ip {
        IpAddr::V4(a) => u32::from(a) as u128 | (1u128 << 127),
        IpAddr::V6(a) => u128::from(a),
    };
    (side as u8, a)
}

impl Neighbors {
    #[inline]
    pub fn get(&self, side: Side, ip: IpAddr) -> Option<[u8; 6]> {
        self.map.get(&key(side, ip)).copied()
    }

    pub fn insert(&mut self, side: Side, ip: IpAddr, mac: [u8; 6]) -> Option<[u8; 6]> {
        self.map.insert(key(side, ip), mac)
    }

    pub fn remove(&mut self, side: Side, ip: IpAddr) -> Option<[u8; 6]> {
        self.map.remove(&key(side, ip))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Everything control shares with the workers.
pub struct Shared {
    pub tables: ArcSwap<Tables>,
    pub neighbors: ArcSwap<Neighbors>,
    pub sessions: Sessions,
    /// Each peer's traffic, counted by every worker on its own.
    pub activity: Activity,
}

impl Shared {
    pub fn new(tables: Tables, sessions: Sessions) -> Self {
        Shared {
            tables: ArcSwap::from_pointee(tables),
            neighbors: ArcSwap::from_pointee(Neighbors::default()),
            activity: Activity::new(sessions.max_peers()),
            sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_hop_connected_route_and_default() {
        let mut p = PortTables::new(
            [2, 0, 0, 0, 0, 1],
            vec![
                LocalAddr {
                    addr: ip("198.18.2.1"),
                    prefix_len: 24,
                },
                LocalAddr {
                    addr: ip("2001:2:0:2::1"),
                    prefix_len: 64,
                },
            ],
        );
        p.fib
            .insert(ip("198.18.200.0"), 24, NextHop::Via(ip("198.18.2.254")));
        p.fib
            .insert(ip("0.0.0.0"), 0, NextHop::Via(ip("198.18.2.253")));
        assert_eq!(p.next_hop(ip("198.18.2.9")), Some(ip("198.18.2.9")));
        assert_eq!(p.next_hop(ip("198.18.200.9")), Some(ip("198.18.2.254")));
        assert_eq!(p.next_hop(ip("203.0.113.1")), Some(ip("198.18.2.253")));
        assert_eq!(p.next_hop(ip("2001:2:0:2::7")), Some(ip("2001:2:0:2::7")));
        assert_eq!(p.next_hop(ip("2001:db8::1")), None);
        assert!(p.is_local(ip("198.18.2.1")));
        assert!(p.on_link(ip("198.18.2.200")));
        assert!(!p.on_link(ip("198.18.200.9")));
        assert_eq!(p.source_for(ip("2001:db8::1")), Some(ip("2001:2:0:2::1")));
    }

    #[test]
    fn neighbors_per_side_and_family() {
        let mut n = Neighbors::default();
        n.insert(Side::Inside, ip("198.18.2.2"), [1; 6]);
        assert_eq!(n.get(Side::Inside, ip("198.18.2.2")), Some([1; 6]));
        assert_eq!(n.get(Side::Outside, ip("198.18.2.2")), None);
        // ::c612:202 must not alias 198.18.2.2.
        assert_eq!(n.get(Side::Inside, ip("::c612:202")), None);
    }
}
