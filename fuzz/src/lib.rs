//! What the fuzz targets share: a reader for the fuzzer's bytes, a fixed two-port
//! network, frame builders and fix-ups that carry arbitrary bytes past length fields and
//! checksums, the mac1 a WireGuard receiver checks first, and a packet buffer that
//! counts how many of its kind are alive.
//!
//! Contract: everything here is deterministic (no clock, no OS randomness), so a crash
//! input replays the same way. Nothing here decides what the code under test should do;
//! the targets assert that.

use blake2::digest::consts::U16;
use blake2::digest::{Digest, KeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::tables::{LocalAddr, PortTables, Side, Tables};
use dataplane::wire::{
    ethernet, ipv4, ipv6, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet, UdpPacket,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads the fuzzer's bytes front to back. Past the end every read yields zeros (or an
/// empty slice), so any input is a complete program and seeds are easy to write by hand:
/// integers are little-endian.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A byte string prefixed by its 16-bit length, cut to `max`.
    pub fn blob(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.u16()) % (max + 1);
        self.bytes(n)
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// XORs `(position, value)` pairs read from `cur` into `msg`: `count` edits at most.
/// Returns whether any byte changed.
pub fn mutate(cur: &mut Cursor<'_>, msg: &mut [u8], count: usize) -> bool {
    let mut changed = false;
    if msg.is_empty() {
        return false;
    }
    for _ in 0..count {
        let at = usize::from(cur.u8()) % msg.len();
        let x = cur.u8();
        msg[at] ^= x;
        changed |= x != 0;
    }
    changed
}

/// The fixed network of the classify and control-plane targets: the gateway's two ports
/// and the one peer behind the outside port.
pub mod net {
    use super::*;

    pub const OUTSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    pub const INSIDE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    pub const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
    pub const LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];
    pub const LISTEN_PORT: u16 = 51820;
    pub const MTU: u16 = 1420;

    pub const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
    pub const INSIDE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    pub const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    pub const LAN_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    /// An address in the peer's allowed IPs.
    pub const PEER_NET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);

    pub fn outside_v6() -> Ipv6Addr {
        "2001:db8:19::1".parse().unwrap()
    }

    pub fn inside_v6() -> Ipv6Addr {
        "2001:db8:18::1".parse().unwrap()
    }

    pub fn remote_v6() -> Ipv6Addr {
        "2001:db8:19::2".parse().unwrap()
    }

    pub fn peer_net_v6() -> Ipv6Addr {
        "2001:db8:2::2".parse().unwrap()
    }

    pub fn remote_endpoint() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(REMOTE_V4), LISTEN_PORT)
    }

    /// The peer's allowed IPs.
    pub fn peer_allowed() -> Vec<(IpAddr, u8)> {
        vec![
            (IpAddr::V4(Ipv4Addr::new(198, 18, 2, 0)), 24),
            ("2001:db8:2::".parse().unwrap(), 64),
        ]
    }

    pub fn mac(side: Side) -> [u8; 6] {
        match side {
            Side::Outside => OUTSIDE_MAC,
            Side::Inside => INSIDE_MAC,
        }
    }

    /// Both ports with an IPv4 and an IPv6 address each; no peers' routes.
    pub fn tables() -> Tables {
        let port = |mac, v4: Ipv4Addr, v6: Ipv6Addr| {
            PortTables::new(
                mac,
                vec![
                    LocalAddr {
                        addr: IpAddr::V4(v4),
                        prefix_len: 24,
                    },
                    LocalAddr {
                        addr: IpAddr::V6(v6),
                        prefix_len: 64,
                    },
                ],
            )
        };
        Tables {
            ports: [
                port(OUTSIDE_MAC, OUTSIDE_V4, outside_v6()),
                port(INSIDE_MAC, INSIDE_V4, inside_v6()),
            ],
            allowed: Default::default(),
            listen_port: LISTEN_PORT,
            mtu: MTU,
            outer_dscp: Default::default(),
        }
    }
}

/// Which fix-ups [`fix_frame`] and [`fix_ip`] apply.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixups {
    /// Rewrite the IP version, the IPv4 IHL (to 5 if below), the IP and UDP length
    /// fields to match the buffer.
    pub lengths: bool,
    /// Fill the IPv4 header checksum and the UDP, ICMP and ICMPv6 checksums.
    pub checksums: bool,
}

impl Fixups {
    pub fn from_bits(bits: u8) -> Self {
        Fixups {
            lengths: bits & 1 != 0,
            checksums: bits & 2 != 0,
        }
    }
}

/// Makes an Ethernet frame's IP and transport headers consistent, so that mutations of
/// its other bytes reach the code behind the length and checksum checks.
pub fn fix_frame(frame: &mut [u8], fix: Fixups) {
    if frame.len() < ethernet::HEADER_LEN {
        return;
    }
    let ethertype = EthernetFrame::new_unchecked(&*frame).ethertype();
    let ip = &mut frame[ethernet::HEADER_LEN..];
    match ethertype {
        EtherType::Ipv4 => fix_ipv4(ip, fix),
        EtherType::Ipv6 => fix_ipv6(ip, fix),
        _ => {}
    }
}

/// [`fix_frame`] for an IP packet without Ethernet header; the version nibble decides.
pub fn fix_ip(ip: &mut [u8], fix: Fixups) {
    match ip.first().map(|b| b >> 4) {
        Some(6) => fix_ipv6(ip, fix),
        _ => fix_ipv4(ip, fix),
    }
}

fn fix_ipv4(ip: &mut [u8], fix: Fixups) {
    if ip.len() < ipv4::HEADER_LEN {
        return;
    }
    if fix.lengths {
        let len = ip.len().min(usize::from(u16::MAX));
        let mut p = Ipv4Packet::new_unchecked(&mut *ip);
        p.set_version(4);
        if p.header_len() < ipv4::HEADER_LEN || p.header_len() > len {
            p.set_header_len(ipv4::HEADER_LEN);
        }
        p.set_total_len(len as u16);
    }
    let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else {
        return;
    };
    let (src, dst, protocol) = (p.src_addr(), p.dst_addr(), p.protocol());
    if fix.checksums {
        p.fill_checksum();
    }
    let payload = p.payload_mut();
    match protocol {
        IpProtocol::Udp => {
            let len = payload.len();
            if fix.lengths && len >= 8 && len <= usize::from(u16::MAX) {
                UdpPacket::new_unchecked(&mut *payload).set_len(len as u16);
            }
            if let (true, Ok(mut u)) = (fix.checksums, UdpPacket::new_checked(payload)) {
                u.fill_checksum_v4(src, dst);
            }
        }
        IpProtocol::Icmp => {
            if let (true, Ok(mut i)) = (fix.checksums, Icmpv4Packet::new_checked(payload)) {
                i.fill_checksum();
            }
        }
        _ => {}
    }
}

fn fix_ipv6(ip: &mut [u8], fix: Fixups) {
    if ip.len() < ipv6::HEADER_LEN {
        return;
    }
    if fix.lengths {
        let len = (ip.len() - ipv6::HEADER_LEN).min(usize::from(u16::MAX));
        let mut p = Ipv6Packet::new_unchecked(&mut *ip);
        p.set_version(6);
        p.set_payload_len(len as u16);
    }
    let Ok(mut p) = Ipv6Packet::new_checked(&mut *ip) else {
        return;
    };
    let (src, dst, next) = (p.src_addr(), p.dst_addr(), p.next_header());
    let payload = p.payload_mut();
    match next {
        IpProtocol::Udp => {
            let len = payload.len();
            if fix.lengths && len >= 8 && len <= usize::from(u16::MAX) {
                UdpPacket::new_unchecked(&mut *payload).set_len(len as u16);
            }
            if let (true, Ok(mut u)) = (fix.checksums, UdpPacket::new_checked(payload)) {
                u.fill_checksum_v6(&src, &dst);
            }
        }
        // The checksum covers the whole ICMPv6 message; it must at least hold one.
        IpProtocol::Icmpv6 if fix.checksums && payload.len() >= 4 => {
            Icmpv6Packet::new_unchecked(payload).fill_checksum(&src, &dst);
        }
        _ => {}
    }
}

/// An IPv4 or IPv6 header (TTL/hop limit `ttl`, DF set for IPv4 when `df`) in front of
/// `l4` with protocol `proto`, checksums filled.
pub fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    ttl: u8,
    df: bool,
    l4: &[u8],
) -> Vec<u8> {
    let mut p = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut b = vec![0u8; ipv4::HEADER_LEN + l4.len()];
            let mut h = Ipv4Packet::new_unchecked(&mut b[..]);
            h.set_version(4);
            h.set_header_len(ipv4::HEADER_LEN);
            h.set_total_len((ipv4::HEADER_LEN + l4.len()) as u16);
            h.set_dont_frag(df);
            h.set_ttl(ttl);
            h.set_protocol(proto);
            h.set_src_addr(s);
            h.set_dst_addr(d);
            h.payload_mut().copy_from_slice(l4);
            b
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut b = vec![0u8; ipv6::HEADER_LEN + l4.len()];
            let mut h = Ipv6Packet::new_unchecked(&mut b[..]);
            h.set_version(6);
            h.set_payload_len(l4.len() as u16);
            h.set_next_header(proto);
            h.set_hop_limit(ttl);
            h.set_src_addr(&s);
            h.set_dst_addr(&d);
            h.payload_mut().copy_from_slice(l4);
            b
        }
        _ => panic!("ip_packet: mixed address families"),
    };
    fix_ip(
        &mut p,
        Fixups {
            lengths: false,
            checksums: true,
        },
    );
    p
}

/// An Ethernet header in front of `payload`.
pub fn ethernet_frame(dst: [u8; 6], src: [u8; 6], ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    let mut e = EthernetFrame::new_unchecked(&mut b[..]);
    e.set_dst_addr(dataplane::wire::MacAddr(dst));
    e.set_src_addr(dataplane::wire::MacAddr(src));
    e.set_ethertype(ethertype);
    e.payload_mut().copy_from_slice(payload);
    b
}

/// A whole Ethernet/IP/UDP frame carrying `payload`, checksums filled.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + payload.len()];
    let mut u = UdpPacket::new_unchecked(&mut udp[..]);
    u.set_src_port(src.port());
    u.set_dst_port(dst.port());
    u.set_len((8 + payload.len()) as u16);
    u.payload_mut().copy_from_slice(payload);
    let ip = ip_packet(src.ip(), dst.ip(), IpProtocol::Udp, 64, false, &udp);
    let ethertype = if src.is_ipv4() {
        EtherType::Ipv4
    } else {
        EtherType::Ipv6
    };
    ethernet_frame(dst_mac, src_mac, ethertype, &ip)
}

/// The mac1 key of messages sent to the owner of `public`:
/// `HASH(LABEL_MAC1 || S_pub)` (whitepaper 5.4.4).
pub fn mac1_key(public: &[u8; 32]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    Digest::update(&mut h, control::noise::LABEL_MAC1);
    Digest::update(&mut h, public);
    h.finalize().into()
}

/// Writes mac1 (`MAC(key, msg[..len-32])`, keyed BLAKE2s-128, whitepaper 5.4.4) into an
/// initiation or response of any length of at least 32 bytes.
pub fn set_mac1(key: &[u8; 32], msg: &mut [u8]) {
    if msg.len() < 32 {
        return;
    }
    let at = msg.len() - 32;
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("a 32-byte key");
    Mac::update(&mut m, &msg[..at]);
    msg[at..at + 16].copy_from_slice(&m.finalize().into_bytes());
}

static LIVE_BUFS: AtomicUsize = AtomicUsize::new(0);

/// A [`HeapBuf`] that counts the live instances of its kind, so a target can check that
/// every buffer handed to the code under test is sent, queued or freed: never kept
/// somewhere it is not accounted for.
#[derive(Debug)]
pub struct TrackedBuf(HeapBuf);

impl TrackedBuf {
    pub fn new(data: &[u8]) -> Self {
        LIVE_BUFS.fetch_add(1, Ordering::Relaxed);
        TrackedBuf(HeapBuf::new(data))
    }

    /// Instances alive now.
    pub fn live() -> usize {
        LIVE_BUFS.load(Ordering::Relaxed)
    }
}

impl Drop for TrackedBuf {
    fn drop(&mut self) {
        LIVE_BUFS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PacketBuf for TrackedBuf {
    fn data(&self) -> &[u8] {
        self.0.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.0.data_mut()
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.0.adj(n)
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        self.0.append(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.0.trim(n)
    }
    fn headroom(&self) -> usize {
        self.0.headroom()
    }
    fn tailroom(&self) -> usize {
        self.0.tailroom()
    }
    fn port(&self) -> u16 {
        self.0.port()
    }
    fn set_port(&mut self, port: u16) {
        self.0.set_port(port)
    }
    fn meta(&self) -> u64 {
        self.0.meta()
    }
    fn set_meta(&mut self, meta: u64) {
        self.0.set_meta(meta)
    }
    fn rx_ipv4_checksum(&self) -> dataplane::buf::RxChecksum {
        self.0.rx_ipv4_checksum()
    }
    fn offload_tx_checksum(&mut self, l2_len: u8, l3_len: u16, what: dataplane::buf::TxChecksum) {
        self.0.offload_tx_checksum(l2_len, l3_len, what)
    }
}

/// The largest frame a [`HeapBuf`] holds (its room less its headroom).
pub const MAX_FRAME: usize = dataplane::buf::HEAP_ROOM - dataplane::buf::HEAP_HEADROOM;

/// The handshake targets' cast: three static key pairs, made once per process.
pub mod cast {
    use control::noise::{Identity, Tai64N};
    use std::sync::OnceLock;
    use x25519_dalek::{PublicKey, StaticSecret};

    /// The initiator, and Bob's only peer.
    pub const ALICE: usize = 0;
    /// The responder.
    pub const BOB: usize = 1;
    /// A stranger to Bob, with a key pair of her own.
    pub const CAROL: usize = 2;

    const SEEDS: [u8; 3] = [0xa1, 0xb0, 0xc0];

    /// The identity of ALICE, BOB or CAROL.
    pub fn identity(who: usize) -> &'static Identity {
        static IDS: OnceLock<Vec<Identity>> = OnceLock::new();
        &IDS.get_or_init(|| {
            SEEDS
                .iter()
                .map(|&s| Identity::new(StaticSecret::from([s; 32])))
                .collect()
        })[who]
    }

    pub fn public(who: usize) -> PublicKey {
        *identity(who).public_key()
    }

    /// The preshared key of a peering that uses one.
    pub const PSK: [u8; 32] = [7; 32];

    /// A wall-clock timestamp `secs` seconds after an arbitrary date.
    pub fn wall(secs: u64, nanos: u32) -> Tai64N {
        Tai64N::from_unix(1_700_000_000 + secs, nanos)
    }
}

/// A seeded ChaCha RNG: deterministic, and a `CryptoRng` as the engines require.
pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(seed)
}
