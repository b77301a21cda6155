//! One gateway's surroundings for the handshake measurements and tests
//! (`examples/handshake_rate.rs`, `examples/restart_storm.rs`,
//! `tests/handshake_threads.rs`, each of which includes this file by path): its
//! addresses and MACs, a router on the outside link as the default next hop, the peers'
//! endpoints behind it and their tunnel addresses, and the control plane's clock.
#![allow(dead_code)]

use control::plane::Now;
use dataplane::tables::{LocalAddr, NextHop, PortTables, Tables};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

pub const LISTEN_PORT: u16 = 51820;
pub const GW_OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const GW_INSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
pub const GW_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const GW_INSIDE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
/// The gateway's clock when the run starts.
pub const T0: u64 = 10_000_000_000;
/// The first peer endpoint: peers are off link, behind the router, in 100.64.0.0/10.
const ENDPOINTS: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);

/// Peer `i`'s endpoint.
pub fn endpoint(i: usize) -> SocketAddr {
    let a = u32::from(ENDPOINTS) + i as u32;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), LISTEN_PORT)
}

/// The peer whose endpoint `addr` is (`usize::MAX` for none).
pub fn peer_of(addr: SocketAddr) -> usize {
    match addr.ip() {
        IpAddr::V4(a) => (u32::from(a) - u32::from(ENDPOINTS)) as usize,
        IpAddr::V6(_) => usize::MAX,
    }
}

/// Peer `i`'s allowed IP: 10.0.0.0/8, one /32 each.
pub fn tunnel_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i as u32)
}

/// Both clocks at `mono` on the control plane's monotonic clock.
pub fn now(mono: u64) -> Now {
    Now {
        mono,
        wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_nanos(mono),
    }
}

/// The gateway's port tables: its outside address with the router as default next hop,
/// and its inside address.
pub fn tables() -> Tables {
    let mut outside = PortTables::new(
        GW_MAC,
        vec![LocalAddr {
            addr: IpAddr::V4(GW_OUTSIDE),
            prefix_len: 24,
        }],
    );
    outside.fib.insert(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        0,
        NextHop::Via(IpAddr::V4(ROUTER)),
    );
    let inside = PortTables::new(
        GW_INSIDE_MAC,
        vec![LocalAddr {
            addr: IpAddr::V4(GW_INSIDE),
            prefix_len: 24,
        }],
    );
    Tables {
        ports: [outside, inside],
        allowed: Default::default(),
        listen_port: LISTEN_PORT,
        mtu: 1420,
        outer_dscp: Default::default(),
    }
}
