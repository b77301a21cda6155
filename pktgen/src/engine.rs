//! The generator itself: two DPDK ports wired to the gateway under test (its outside and
//! its inside), WireGuard peers that complete their handshakes with the gateway as
//! initiators, and trials that offer a set number of packets at a set rate in one
//! direction and count what comes out of the other side.
//!
//! Everything runs on one thread, the EAL main lcore: sending, receiving, answering ARP
//! and handshaking. Packets to send are built before a trial into one block of ordinary
//! memory (a *pool*) and copied into mbufs as they are sent, so that the send loop does
//! no cryptography: in the decrypt direction every packet carries a fresh counter,
//! sealed in advance; a replayed counter would only measure the gateway's replay check.
//!
//! Offered load: the send loop keeps to the rate with the TSC and sends in bursts. A
//! packet the port refuses (its ring towards the gateway is full: the gateway did not
//! keep up) is freed and counted as `refused`, which is loss, as a NIC's full RX ring
//! at the gateway would be.

use crate::frames::{self, Frame, Mac, UdpFlow, HEADERS_LEN};
use crate::peers::{Keys, Peer, Stamp, PAYLOAD_MIN};
use control::noise::Tai64N;
use dataplane::wire::wireguard::{
    TAG_LEN, TRANSPORT_HEADER_LEN, TRANSPORT_MIN_LEN, TYPE_COOKIE_REPLY, TYPE_RESPONSE,
    TYPE_TRANSPORT,
};
use dpdk_sys::{Eal, Mbuf, Mempool, Port, PortConfig};
use rand_core::OsRng;
use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};
use x25519_dalek::PublicKey;

mod storm;
pub use storm::{StormResult, StormSpec};

/// Packets per send and per receive call.
const BURST: usize = 32;
const RX_BURST: usize = 256;
/// Mbufs of the generator's pool.
const MBUFS: u32 = 16383;
/// Data room of an mbuf: 2048 bytes of frame and DPDK's usual 128 of headroom.
const MBUF_ROOM: u16 = 2048 + 128;
/// Initiations in flight at once while handshaking many peers: half the depth of a
/// wgdp gateway's handshake queue from which it is under load
/// (`control::plane::load::UNDER_LOAD_DEPTH`, 128). With as many as that in flight,
/// a gateway that falls behind answers with cookies and the peers wait 5 s to retry:
/// 30000 peers took over 20 s with 128, 12 s with 64 (docs/architecture.md, section 6).
pub const HANDSHAKE_WINDOW: usize = control::plane::load::UNDER_LOAD_DEPTH / 2;
/// An unanswered initiation is sent again after this long (whitepaper 6.4,
/// `REKEY_TIMEOUT`).
const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Sessions older than this are renewed before a trial, well before the gateway would
/// stop accepting them (`REJECT_AFTER_TIME`, 180 s).
pub const SESSION_RENEW_AFTER: Duration = Duration::from_secs(100);
/// Largest inside frame: an inner packet of the tunnel MTU (1420) on Ethernet.
pub const MAX_FRAME: usize = 1420 + 14;
/// Smallest inside frame that holds the generator's stamp.
pub const MIN_FRAME: usize = HEADERS_LEN + PAYLOAD_MIN;

/// Where the generator sits: its addresses on the gateway's two links, the gateway's
/// addresses, and the tunnel addresses of its peers.
#[derive(Debug, Clone)]
pub struct Link {
    /// The generator's peers' endpoint address on the gateway's outside link.
    pub outside: Ipv4Addr,
    /// The gateway's outside address and WireGuard port.
    pub gateway: Ipv4Addr,
    pub gateway_port: u16,
    /// The generator's LAN host address on the gateway's inside link.
    pub inside: Ipv4Addr,
    /// The gateway's inside address.
    pub gateway_inside: Ipv4Addr,
    /// Tunnel address of peer 0; peer `i` has `tunnel + i`.
    pub tunnel: Ipv4Addr,
    /// The peers' own endpoint addresses, if they are not all `outside`: the first
    /// address and how many; peer `i` sends from `first + i mod count`, reached by the
    /// gateway through `outside` as its next hop (as remote peers on the Internet are).
    pub sources: Option<(Ipv4Addr, u32)>,
}

impl Link {
    /// The address peer `p` sends from.
    pub fn peer_address(&self, p: usize) -> Ipv4Addr {
        match self.sources {
            Some((first, count)) => {
                Ipv4Addr::from(first.to_bits().wrapping_add((p as u32) % count.max(1)))
            }
            None => self.outside,
        }
    }

    /// Whether the gateway's packets to `a` are the generator's on the outside link.
    pub fn is_peer_address(&self, a: Ipv4Addr) -> bool {
        a == self.outside
            || self
                .sources
                .is_some_and(|(first, count)| a.to_bits().wrapping_sub(first.to_bits()) < count)
    }
}

/// Which way the packets go through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Transport packets into the outside port, plaintext out of the inside port.
    Decrypt,
    /// Plaintext into the inside port, transport packets out of the outside port.
    Encrypt,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Decrypt => "decrypt",
            Direction::Encrypt => "encrypt",
        }
    }
}

/// Frame sizes: the length of the plaintext Ethernet frame on the inside link (without
/// FCS). `Imix` repeats 7 x 64, 4 x 570 and 1 x 1420 bytes (the simple IMIX, with its
/// largest frame cut to the tunnel MTU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(usize),
    Imix,
}

const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1420];

impl Size {
    pub fn frame(self, k: u64) -> usize {
        match self {
            Size::Fixed(n) => n,
            Size::Imix => IMIX[(k % IMIX.len() as u64) as usize],
        }
    }

    /// Mean frame length.
    pub fn mean(self) -> f64 {
        match self {
            Size::Fixed(n) => n as f64,
            Size::Imix => IMIX.iter().sum::<usize>() as f64 / IMIX.len() as f64,
        }
    }

    pub fn label(self) -> String {
        match self {
            Size::Fixed(n) => n.to_string(),
            Size::Imix => "imix".into(),
        }
    }

    pub fn parse(s: &str) -> Result<Size, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        let n: usize = s
            .parse()
            .map_err(|_| format!("{s:?}: a frame size in bytes, or imix"))?;
        if !(MIN_FRAME..=MAX_FRAME).contains(&n) {
            return Err(format!(
                "{n}: frame sizes go from {MIN_FRAME} to {MAX_FRAME} bytes"
            ));
        }
        Ok(Size::Fixed(n))
    }
}

/// Sent packets, in one block of memory.
struct Pool {
    data: Vec<u8>,
    /// Start of each frame in `data`; frame `k` ends where `k + 1` starts.
    starts: Vec<usize>,
}

impl Pool {
    fn with_capacity(frames: usize, bytes: usize) -> Pool {
        let mut starts = Vec::with_capacity(frames + 1);
        starts.push(0);
        Pool {
            data: Vec::with_capacity(bytes),
            starts,
        }
    }

    /// Appends a zeroed frame of `len` bytes and returns it.
    fn push(&mut self, len: usize) -> &mut [u8] {
        let at = self.data.len();
        self.data.resize(at + len, 0);
        self.starts.push(at + len);
        &mut self.data[at..]
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    fn frame(&self, k: usize) -> &[u8] {
        &self.data[self.starts[k]..self.starts[k + 1]]
    }
}

/// What one trial asks for.
#[derive(Debug, Clone, Copy)]
pub struct TrialSpec {
    pub direction: Direction,
    pub size: Size,
    /// Packets per second to offer; `f64::INFINITY` for as fast as the generator can.
    pub rate: f64,
    pub count: u64,
    /// Record each packet's latency (sends one packet per burst).
    pub latency: bool,
    /// Plaintext frames in either direction, counted when they come back unchanged on
    /// the other port: for measuring a plain forwarder (such as testpmd) between the
    /// two links, the baseline of the latency through a gateway.
    pub baseline: bool,
    /// Stop offering after this long even if packets are left (what was not offered
    /// does not count): bounds a trial as fast as the generator can on a slow link.
    pub max_send: Option<Duration>,
    /// How long to keep receiving after the last packet was sent, at most, when
    /// packets are still missing: the wait ends as soon as every sent packet is back.
    pub drain: Duration,
}

/// Latency figures in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub min_ns: f64,
    pub median_ns: f64,
    pub p99_ns: f64,
    pub max_ns: f64,
}

/// What one trial measured.
#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    pub direction: Direction,
    pub size: String,
    /// The rate asked for (packets/s), `null` when unlimited.
    pub rate_asked: Option<f64>,
    /// Packets the generator tried to send.
    pub offered: u64,
    /// Packets the gateway's port took.
    pub sent: u64,
    /// Packets the gateway's port refused (its ring was full): loss.
    pub refused: u64,
    /// Packets of this trial that came out of the other side.
    pub received: u64,
    /// Of those, how many were checked (decrypted and read, in the encrypt direction;
    /// every packet's stamp, in the decrypt direction) and found right.
    pub verified: u64,
    /// Packets that came out wrong: a stamp of another peer or a corrupt payload, or
    /// (encrypt direction) a sampled packet that did not open.
    pub bad: u64,
    /// Seconds from the first packet sent to the last.
    pub send_seconds: f64,
    /// The offered rate achieved (packets/s): `offered / send_seconds`.
    pub offered_rate: f64,
    /// Mean inside frame length of the trial's packets.
    pub mean_frame: f64,
    pub latency: Option<Latency>,
}

impl TrialResult {
    /// Packets offered and not received.
    pub fn lost(&self) -> u64 {
        self.offered.saturating_sub(self.received)
    }

    pub fn received_rate(&self) -> f64 {
        if self.send_seconds > 0.0 {
            self.received as f64 / self.send_seconds
        } else {
            0.0
        }
    }
}

/// Counters of everything the generator received, over its whole run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub arp_requests_answered: u64,
    pub arp_replies: u64,
    pub handshake_initiations_sent: u64,
    pub handshake_responses: u64,
    pub handshake_refused: u64,
    pub cookie_replies: u64,
    pub keepalives_received: u64,
    /// Transport packets from the gateway outside any trial, or of an earlier one.
    pub transport_outside_trials: u64,
    /// Frames that are none of the above (IPv6, other protocols, other addresses).
    pub other_frames: u64,
}

/// State of the trial in progress.
#[derive(Default)]
struct Trial {
    active: bool,
    baseline: bool,
    id: u32,
    direction: Option<Direction>,
    count: u64,
    received: u64,
    verified: u64,
    bad: u64,
    /// Encrypt direction: decrypt one received packet in this many (1 = all).
    verify_every: u64,
    /// Per peer: the lowest gateway counter that belongs to this trial.
    first_counter: Vec<u64>,
    /// Latency: TSC when packet `seq` was sent (0: not sent), and the latencies seen.
    sent_at: Vec<u64>,
    latencies: Vec<u64>,
}

pub struct Options {
    pub seed: u64,
    pub peers: u32,
    pub gateway_key: PublicKey,
    pub psk: Option<[u8; 32]>,
    pub link: Link,
    /// Encrypt direction: decrypt one packet in this many to check it.
    pub verify_every: u64,
    /// Most memory for one trial's packets, in bytes.
    pub pool_bytes: usize,
    /// Queue pairs on each port: peer i sends on queue i mod `queues`, as RSS would put
    /// its flow, and every queue is received from.
    pub queues: u16,
    /// Handshakes in flight at most (0: every peer's at once, as after a gateway's
    /// restart); [`HANDSHAKE_WINDOW`] by default.
    pub handshake_window: usize,
}

pub struct Generator {
    // Ports are declared before the pool: they are closed first, with every mbuf they
    // held returned.
    outside: Port,
    inside: Port,
    mbufs: Mempool,
    out_mac: Mac,
    in_mac: Mac,
    gw_out_mac: Option<Mac>,
    gw_in_mac: Option<Mac>,
    link: Link,
    queues: u16,
    handshake_window: usize,
    peers: Vec<Peer>,
    /// Local index (of an initiation in flight or of a session) -> peer.
    by_index: HashMap<u32, usize>,
    next_index: u32,
    hz: u64,
    start: Instant,
    trial: Trial,
    next_trial_id: u32,
    /// Per peer: the highest counter the gateway sent with on the current session, plus
    /// one (0: none yet). A trial counts only packets above its start value.
    seen_counter: Vec<u64>,
    pool_bytes: usize,
    /// A port's driver loses the mbufs in its rings at close (net_af_xdp).
    forgetful: bool,
    scratch: Vec<u8>,
    /// The restart storm under way, if any (`storm.rs`).
    storm: Option<Box<storm::Storm>>,
    pub totals: Totals,
    // Last: the EAL outlives every DPDK object above.
    _eal: Eal,
}

/// The name DPDK gives the port of a vdev spec: what precedes the first comma.
fn vdev_name(spec: &str) -> &str {
    spec.split(',').next().unwrap_or(spec)
}

impl Generator {
    /// Starts the EAL with the two vdevs (`eal_args` first) and both ports.
    pub fn start(
        eal_args: &[String],
        outside_dev: &str,
        inside_dev: &str,
        opts: Options,
    ) -> Result<Generator, String> {
        let mut args: Vec<String> = eal_args.to_vec();
        for dev in [outside_dev, inside_dev] {
            args.push("--vdev".into());
            args.push(dev.into());
        }
        let eal = Eal::init(&args).map_err(|e| format!("EAL: {e}"))?;
        let mbufs = Mempool::pktmbuf(
            "pktgen_pkts",
            MBUFS,
            256,
            MBUF_ROOM,
            dpdk_sys::SOCKET_ID_ANY,
        )
        .map_err(|e| format!("packet pool: {e}"))?;
        let queues = opts.queues.max(1);
        let open = |spec: &str| -> Result<Port, String> {
            let id = Port::by_name(vdev_name(spec)).map_err(|e| format!("{spec}: {e}"))?;
            let config = PortConfig {
                rx_queues: queues,
                tx_queues: queues,
                ..PortConfig::default()
            };
            Port::start(id, &config, &mbufs).map_err(|e| format!("{spec}: {e}"))
        };
        let outside = open(outside_dev)?;
        let inside = open(inside_dev)?;
        let mut peers = Vec::with_capacity(opts.peers as usize);
        for i in 0..opts.peers {
            peers.push(Peer::new(
                opts.seed,
                i,
                &opts.gateway_key,
                opts.psk.as_ref(),
                opts.link.tunnel,
            )?);
        }
        Ok(Generator {
            out_mac: outside.mac_addr(),
            in_mac: inside.mac_addr(),
            outside,
            inside,
            mbufs,
            gw_out_mac: None,
            gw_in_mac: None,
            link: opts.link,
            queues,
            handshake_window: match opts.handshake_window {
                0 => usize::MAX,
                w => w,
            },
            peers,
            by_index: HashMap::new(),
            next_index: 1,
            hz: Eal::tsc_hz(),
            start: Instant::now(),
            trial: Trial {
                verify_every: opts.verify_every.max(1),
                ..Trial::default()
            },
            next_trial_id: 1,
            seen_counter: vec![0; opts.peers as usize],
            pool_bytes: opts.pool_bytes,
            forgetful: [outside_dev, inside_dev]
                .iter()
                .any(|d| d.starts_with("net_af_xdp")),
            scratch: vec![0u8; 2048],
            storm: None,
            totals: Totals::default(),
            _eal: eal,
        })
    }

    pub fn tsc_hz(&self) -> u64 {
        self.hz
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Closes both ports and tells how many mbufs are still out (0: all came back).
    /// The AF_XDP driver loses the mbufs in its rings when it closes (as wgdp's own
    /// stop knows, docs/architecture.md section 2): with such a port, those are taken
    /// back and only what is still out after that counts.
    pub fn finish(self) -> u32 {
        let Generator {
            outside,
            inside,
            mbufs,
            forgetful,
            _eal,
            ..
        } = self;
        drop(outside);
        drop(inside);
        if forgetful && mbufs.in_use_count() > 0 {
            // SAFETY: both ports using the pool are closed, and every mbuf the generator
            // held (its send and receive vectors) was freed before `finish`: nothing
            // refers to the mbufs still counted as out.
            unsafe { mbufs.reclaim_orphans() };
        }
        let out = mbufs.in_use_count();
        drop(mbufs);
        out
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    // ---- sending ------------------------------------------------------------------

    /// Sends frames given as byte slices; returns how many the port took.
    fn send_raw(&mut self, outside: bool, frames: &[&[u8]]) -> usize {
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(frames.len());
        if !self.mbufs.alloc_bulk(&mut pkts, frames.len()) {
            return 0;
        }
        for (m, f) in pkts.iter_mut().zip(frames) {
            m.append(f.len() as u16)
                .expect("an mbuf holds a frame")
                .copy_from_slice(f);
        }
        let port = if outside { &self.outside } else { &self.inside };
        let sent = port.tx_burst(0, &mut pkts);
        Mbuf::free_bulk(&mut pkts);
        sent
    }

    fn send_one(&mut self, outside: bool, frame: &[u8]) -> bool {
        self.send_raw(outside, &[frame]) == 1
    }

    fn udp_flow_out(&self, peer: usize) -> Option<UdpFlow> {
        Some(UdpFlow {
            dst_mac: self.gw_out_mac?,
            src_mac: self.out_mac,
            src: self.link.peer_address(peer),
            dst: self.link.gateway,
            sport: self.peers[peer].port,
            dport: self.link.gateway_port,
        })
    }

    /// A transport message of peer `peer` carrying `inner` (empty: a keepalive), as an
    /// outside frame, appended to `pool`. The peer must have keys.
    fn seal_into(&mut self, pool: &mut Pool, peer: usize, inner: &[u8], ident: u16) {
        let flow = self.udp_flow_out(peer).expect("gateway MAC resolved");
        let keys = self.peers[peer].keys.as_mut().expect("peer has a session");
        let padded = inner.len().div_ceil(16) * 16;
        let len = HEADERS_LEN + TRANSPORT_HEADER_LEN + padded + TAG_LEN;
        let counter = keys.take_counter();
        let f = pool.push(len);
        let wg = &mut f[HEADERS_LEN..];
        wg[0..4].copy_from_slice(&u32::from(TYPE_TRANSPORT).to_le_bytes());
        wg[4..8].copy_from_slice(&keys.remote_index.to_le_bytes());
        wg[8..16].copy_from_slice(&counter.to_le_bytes());
        let body = &mut wg[TRANSPORT_HEADER_LEN..];
        body[..inner.len()].copy_from_slice(inner);
        let tag = keys.send.seal(counter, &mut body[..padded]);
        body[padded..].copy_from_slice(&tag);
        frames::udp(f, &flow, ident);
    }

    /// Builds an inner IPv4/UDP packet (no Ethernet) into `self.scratch` and returns
    /// its length; the inside frame it stands for is `frame` bytes long.
    fn inner_packet(&mut self, src: Ipv4Addr, dst: Ipv4Addr, frame: usize, stamp: Stamp) -> usize {
        let flow = UdpFlow {
            dst_mac: [0; 6],
            src_mac: [0; 6],
            src,
            dst,
            sport: 5000 + (stamp.peer % 1000) as u16,
            dport: 5001,
        };
        let b = &mut self.scratch[..frame];
        stamp.write(&mut b[HEADERS_LEN..]);
        frames::udp(b, &flow, stamp.seq as u16);
        b.copy_within(frames::ETH_LEN.., 0);
        frame - frames::ETH_LEN
    }

    // ---- receiving ----------------------------------------------------------------

    /// Receives and handles everything waiting on both ports; returns how many frames.
    pub fn poll(&mut self) -> usize {
        let mut rx: Vec<Mbuf> = Vec::with_capacity(RX_BURST);
        let mut n = 0;
        for q in 0..self.queues {
            n += self.outside.rx_burst(q, &mut rx, RX_BURST);
            let now_tsc = Eal::tsc();
            for m in &rx {
                self.on_outside(m.data(), now_tsc);
            }
            Mbuf::free_bulk(&mut rx);
            n += self.inside.rx_burst(q, &mut rx, RX_BURST);
            let now_tsc = Eal::tsc();
            for m in &rx {
                self.on_inside(m.data(), now_tsc);
            }
            Mbuf::free_bulk(&mut rx);
        }
        n
    }

    fn on_arp(&mut self, outside: bool, op: u16, mac: Mac, sender: Ipv4Addr, target: Ipv4Addr) {
        let (ours, our_mac, gw) = if outside {
            (self.link.outside, self.out_mac, self.link.gateway)
        } else {
            (self.link.inside, self.in_mac, self.link.gateway_inside)
        };
        if sender == gw {
            // A request from the gateway also tells us its MAC (RFC 826's merge).
            if outside {
                self.gw_out_mac = Some(mac);
            } else {
                self.gw_in_mac = Some(mac);
            }
        }
        match op {
            1 if target == ours || (outside && self.link.is_peer_address(target)) => {
                let reply = frames::arp(2, our_mac, target, mac, sender);
                if self.send_one(outside, &reply) {
                    self.totals.arp_requests_answered += 1;
                }
            }
            2 => self.totals.arp_replies += 1,
            _ => self.totals.other_frames += 1,
        }
    }

    /// A baseline trial's frame, back unchanged on either port.
    fn on_baseline(&mut self, data: &[u8], now_tsc: u64) {
        let t = &mut self.trial;
        let stamp = match frames::parse(data) {
            Frame::Udp { payload, .. } => Stamp::read(payload),
            _ => None,
        };
        match stamp {
            Some(s) if s.trial == t.id && s.seq < t.count => {
                t.received += 1;
                t.verified += 1;
                record_latency(t, s.seq, now_tsc);
            }
            _ => self.totals.other_frames += 1,
        }
    }

    fn on_inside(&mut self, data: &[u8], now_tsc: u64) {
        if self.trial.active && self.trial.baseline {
            return self.on_baseline(data, now_tsc);
        }
        match frames::parse(data) {
            Frame::Arp {
                op,
                sender_mac,
                sender_ip,
                target_ip,
            } => self.on_arp(false, op, sender_mac, sender_ip, target_ip),
            Frame::Udp {
                src, dst, payload, ..
            } if dst == self.link.inside => {
                let t = &mut self.trial;
                let Some(stamp) = Stamp::read(payload) else {
                    self.totals.other_frames += 1;
                    return;
                };
                if let Some(st) = self.storm.as_mut() {
                    let right_peer = (stamp.peer as usize) < self.peers.len()
                        && self.peers[stamp.peer as usize].tunnel == src;
                    if right_peer && st.on_delivered(&stamp, self.start.elapsed().as_nanos() as u64)
                    {
                        return;
                    }
                }
                if !t.active || t.direction != Some(Direction::Decrypt) || stamp.trial != t.id {
                    self.totals.transport_outside_trials += 1;
                    return;
                }
                let right_peer = (stamp.peer as usize) < self.peers.len()
                    && self.peers[stamp.peer as usize].tunnel == src
                    && stamp.seq < t.count;
                if right_peer {
                    t.received += 1;
                    t.verified += 1;
                    record_latency(t, stamp.seq, now_tsc);
                } else {
                    t.bad += 1;
                }
            }
            _ => self.totals.other_frames += 1,
        }
    }

    fn on_outside(&mut self, data: &[u8], now_tsc: u64) {
        if self.trial.active && self.trial.baseline {
            return self.on_baseline(data, now_tsc);
        }
        match frames::parse(data) {
            Frame::Arp {
                op,
                sender_mac,
                sender_ip,
                target_ip,
            } => self.on_arp(true, op, sender_mac, sender_ip, target_ip),
            Frame::Udp {
                src,
                dst,
                sport,
                payload,
                ..
            } if self.link.is_peer_address(dst)
                && src == self.link.gateway
                && sport == self.link.gateway_port
                && !payload.is_empty() =>
            {
                match payload[0] {
                    TYPE_TRANSPORT => self.on_transport(payload, now_tsc),
                    TYPE_RESPONSE => self.on_response(payload),
                    TYPE_COOKIE_REPLY => self.on_cookie(payload),
                    _ => self.totals.other_frames += 1,
                }
            }
            _ => self.totals.other_frames += 1,
        }
    }

    fn on_transport(&mut self, msg: &[u8], now_tsc: u64) {
        if msg.len() < TRANSPORT_MIN_LEN {
            self.totals.other_frames += 1;
            return;
        }
        let receiver = u32::from_le_bytes(msg[4..8].try_into().unwrap());
        let counter = u64::from_le_bytes(msg[8..16].try_into().unwrap());
        let Some(&p) = self.by_index.get(&receiver) else {
            self.totals.other_frames += 1;
            return;
        };
        let seen = &mut self.seen_counter[p];
        *seen = (*seen).max(counter + 1);
        if msg.len() == TRANSPORT_MIN_LEN {
            self.totals.keepalives_received += 1;
            let now_ns = self.now_ns();
            if let Some(st) = self.storm.as_mut() {
                // A peer's timers count only what authenticates.
                let ok = self.peers[p].keys.as_ref().is_some_and(|k| {
                    let mut tag = [0u8; TAG_LEN];
                    tag.copy_from_slice(&msg[TRANSPORT_HEADER_LEN..]);
                    k.local_index == receiver && k.recv.open(counter, &mut tag) == Some(0)
                });
                st.on_heard(p, ok, now_ns);
            }
            return;
        }
        let t = &mut self.trial;
        let in_trial = t.active
            && t.direction == Some(Direction::Encrypt)
            && counter >= t.first_counter.get(p).copied().unwrap_or(u64::MAX);
        if !in_trial {
            self.totals.transport_outside_trials += 1;
            return;
        }
        t.received += 1;
        let check = !t.sent_at.is_empty() || t.received % t.verify_every == 1 % t.verify_every;
        if !check {
            return;
        }
        let Some(keys) = self.peers[p].keys.as_ref() else {
            t.bad += 1;
            return;
        };
        let body = &mut self.scratch[..msg.len() - TRANSPORT_HEADER_LEN];
        body.copy_from_slice(&msg[TRANSPORT_HEADER_LEN..]);
        let ok = keys.recv.open(counter, body).and_then(|len| {
            let packet = &body[..len];
            let ihl = usize::from(packet.first()? & 0x0f) * 4;
            let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            let stamp = Stamp::read(packet.get(ihl + frames::UDP_LEN..)?)?;
            (dst == self.peers[p].tunnel
                && stamp.trial == t.id
                && stamp.peer as usize == p
                && stamp.seq < t.count)
                .then_some(stamp)
        });
        match ok {
            Some(stamp) => {
                t.verified += 1;
                record_latency(t, stamp.seq, now_tsc);
            }
            None => t.bad += 1,
        }
    }

    fn on_response(&mut self, msg: &[u8]) {
        if msg.len() < 12 {
            self.totals.other_frames += 1;
            return;
        }
        let receiver = u32::from_le_bytes(msg[8..12].try_into().unwrap());
        let Some(&p) = self.by_index.get(&receiver) else {
            self.totals.handshake_refused += 1;
            return;
        };
        let now = self.now();
        let peer = &mut self.peers[p];
        match peer.handshake.consume_response(&peer.identity, msg, now) {
            Ok(session) => {
                self.totals.handshake_responses += 1;
                if let Some(old) = peer.keys.take() {
                    self.by_index.remove(&old.local_index);
                }
                peer.pending = None;
                peer.keys = Some(Keys::from_session(&session));
                self.seen_counter[p] = 0;
                let now_ns = self.now_ns();
                if let Some(st) = self.storm.as_mut() {
                    st.on_session(p, now_ns);
                }
                // Confirm the session with a keepalive: the gateway, as responder,
                // sends with it only after a first transport message (whitepaper 5.4.5).
                let mut pool = Pool::with_capacity(1, 128);
                self.seal_into(&mut pool, p, &[], 0);
                let frame = pool.frame(0).to_vec();
                self.send_one(true, &frame);
            }
            Err(_) => self.totals.handshake_refused += 1,
        }
    }

    fn on_cookie(&mut self, msg: &[u8]) {
        self.totals.cookie_replies += 1;
        if msg.len() < 8 {
            return;
        }
        let receiver = u32::from_le_bytes(msg[4..8].try_into().unwrap());
        if let Some(&p) = self.by_index.get(&receiver) {
            let now = self.now();
            let kept = self.peers[p]
                .handshake
                .consume_cookie_reply(msg, now)
                .is_ok();
            let now_ns = self.now_ns();
            match self.storm.as_mut() {
                // In a storm the peers act as WireGuard peers do: the cookie waits for
                // the next retry (storm.rs).
                Some(st) => st.on_cookie(now_ns),
                // Setting up: send again at once, now with mac2.
                None if kept => self.initiate(p),
                None => {}
            }
        }
    }

    // ---- ARP and handshakes ----------------------------------------------------------

    /// Waits until both ports report their link up (a memif client's link comes up
    /// only once the server has taken the connection).
    pub fn wait_links(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !(self.outside.link_up() && self.inside.link_up()) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the links did not come up within {timeout:?} (outside {}, inside {})",
                    if self.outside.link_up() { "up" } else { "down" },
                    if self.inside.link_up() { "up" } else { "down" }
                ));
            }
            self.poll();
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Waits, without polling the ports, until the other end has closed both links;
    /// false if they are still up after `timeout`.
    pub fn wait_links_down(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.outside.link_up() || self.inside.link_up() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Asks for the gateway's MAC on both links until both are known.
    pub fn resolve(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut next_ask = Instant::now();
        while self.gw_out_mac.is_none() || self.gw_in_mac.is_none() {
            if Instant::now() >= deadline {
                let missing: Vec<String> = [
                    (self.gw_out_mac, self.link.gateway),
                    (self.gw_in_mac, self.link.gateway_inside),
                ]
                .iter()
                .filter(|(m, _)| m.is_none())
                .map(|(_, ip)| ip.to_string())
                .collect();
                return Err(format!(
                    "no ARP reply from the gateway ({}) within {timeout:?}: are the links and addresses right?",
                    missing.join(", ")
                ));
            }
            if Instant::now() >= next_ask {
                if self.gw_out_mac.is_none() {
                    let q = frames::arp(
                        1,
                        self.out_mac,
                        self.link.outside,
                        [0; 6],
                        self.link.gateway,
                    );
                    self.send_one(true, &q);
                }
                if self.gw_in_mac.is_none() {
                    let q = frames::arp(
                        1,
                        self.in_mac,
                        self.link.inside,
                        [0; 6],
                        self.link.gateway_inside,
                    );
                    self.send_one(false, &q);
                }
                next_ask = Instant::now() + Duration::from_millis(200);
            }
            if self.poll() == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        Ok(())
    }

    fn initiate(&mut self, p: usize) {
        let Some(flow) = self.udp_flow_out(p) else {
            return;
        };
        let index = self.next_index;
        self.next_index = self.next_index.wrapping_add(1).max(1);
        let now = self.now();
        let wall = Tai64N::from_system_time(SystemTime::now());
        let peer = &mut self.peers[p];
        let Ok(msg) =
            peer.handshake
                .create_initiation(&peer.identity, index, wall, now, &mut OsRng)
        else {
            return;
        };
        if let Some(old) = peer.pending.replace(index) {
            self.by_index.remove(&old);
        }
        self.by_index.insert(index, p);
        let mut f = vec![0u8; HEADERS_LEN + msg.len()];
        f[HEADERS_LEN..].copy_from_slice(&msg);
        frames::udp(&mut f, &flow, index as u16);
        if self.send_one(true, &f) {
            self.totals.handshake_initiations_sent += 1;
        }
    }

    /// Completes a handshake for every peer without a session younger than
    /// `renew_after`, at most `Options::handshake_window` at a time, each retried every
    /// `REKEY_TIMEOUT`, until all are done or `timeout` passes.
    pub fn handshake(&mut self, renew_after: Duration, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut todo: Vec<usize> = (0..self.peers.len())
            .filter(|&p| {
                self.peers[p]
                    .keys
                    .as_ref()
                    .map_or(true, |k| k.established.elapsed() >= renew_after)
            })
            .collect();
        todo.reverse();
        // (peer, when its initiation went out)
        let mut in_flight: Vec<(usize, Instant)> = Vec::new();
        let renewing: HashMap<usize, u32> = todo
            .iter()
            .filter_map(|&p| Some((p, self.peers[p].keys.as_ref()?.local_index)))
            .collect();
        loop {
            in_flight.retain(|&(p, _)| {
                let done = match (&self.peers[p].keys, renewing.get(&p)) {
                    (Some(k), Some(&old)) => k.local_index != old,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                !done
            });
            if todo.is_empty() && in_flight.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} of {} handshakes did not complete within {timeout:?} (gateway's public key and peers configured?)",
                    todo.len() + in_flight.len(),
                    self.peers.len()
                ));
            }
            while in_flight.len() < self.handshake_window {
                let Some(p) = todo.pop() else { break };
                self.initiate(p);
                in_flight.push((p, Instant::now()));
            }
            let mut i = 0;
            while i < in_flight.len() {
                let (p, at) = in_flight[i];
                if at.elapsed() >= REKEY_TIMEOUT {
                    self.initiate(p);
                    in_flight[i].1 = Instant::now();
                }
                i += 1;
            }
            if self.poll() == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    // ---- trials -------------------------------------------------------------------

    /// Bytes one packet of `frame` inside bytes takes in a pool of `direction`.
    fn stride(direction: Direction, frame: usize) -> usize {
        match direction {
            Direction::Encrypt => frame,
            Direction::Decrypt => {
                let inner = frame - frames::ETH_LEN;
                HEADERS_LEN + TRANSPORT_HEADER_LEN + inner.div_ceil(16) * 16 + TAG_LEN
            }
        }
    }

    /// How many packets of `size` fit in the pool memory.
    pub fn pool_limit(&self, direction: Direction, size: Size) -> u64 {
        let stride = Self::stride(direction, size.mean().ceil() as usize + 1);
        (self.pool_bytes / stride) as u64
    }

    fn build_pool(&mut self, spec: &TrialSpec, id: u32) -> Pool {
        let peers = self.peers.len() as u64;
        let bytes = (0..spec.count.min(12))
            .map(|k| Self::stride(spec.direction, spec.size.frame(k)))
            .sum::<usize>()
            * (spec.count as usize).div_ceil(12);
        let mut pool = Pool::with_capacity(spec.count as usize, bytes);
        for k in 0..spec.count {
            let p = (k % peers) as usize;
            let frame = spec.size.frame(k);
            let stamp = Stamp {
                trial: id,
                seq: k,
                peer: p as u32,
            };
            if spec.baseline {
                let flow = UdpFlow {
                    dst_mac: frames::BROADCAST,
                    src_mac: self.in_mac,
                    src: self.link.inside,
                    dst: self.peers[p].tunnel,
                    sport: 5000 + (p % 1000) as u16,
                    dport: 5001,
                };
                let f = pool.push(frame);
                stamp.write(&mut f[HEADERS_LEN..]);
                frames::udp(f, &flow, k as u16);
                continue;
            }
            match spec.direction {
                Direction::Decrypt => {
                    let len =
                        self.inner_packet(self.peers[p].tunnel, self.link.inside, frame, stamp);
                    let scratch = std::mem::take(&mut self.scratch);
                    self.seal_into(&mut pool, p, &scratch[..len], k as u16);
                    self.scratch = scratch;
                }
                Direction::Encrypt => {
                    let flow = UdpFlow {
                        dst_mac: self.gw_in_mac.expect("gateway MAC resolved"),
                        src_mac: self.in_mac,
                        src: self.link.inside,
                        dst: self.peers[p].tunnel,
                        sport: 5000 + (p % 1000) as u16,
                        dport: 5001,
                    };
                    let f = pool.push(frame);
                    stamp.write(&mut f[HEADERS_LEN..]);
                    frames::udp(f, &flow, k as u16);
                }
            }
        }
        pool
    }

    /// Writes `count` packets of one direction to a pcap file (classic libpcap format,
    /// Ethernet), built as a trial would build them: transport messages with fresh
    /// counters of the current sessions (decrypt direction), or the plaintext frames
    /// for the peers' tunnel addresses (encrypt direction). Another generator can then
    /// send them while the sessions last; each transport message is accepted once.
    pub fn write_pcap(
        &mut self,
        direction: Direction,
        size: Size,
        count: u64,
        path: &std::path::Path,
    ) -> Result<(), String> {
        if self.peers.iter().any(|p| p.keys.is_none()) {
            return Err("a peer has no session: handshake first".into());
        }
        let id = self.next_trial_id;
        self.next_trial_id += 1;
        let spec = TrialSpec {
            direction,
            size,
            rate: 0.0,
            count,
            latency: false,
            baseline: false,
            max_send: None,
            drain: Duration::ZERO,
        };
        let pool = self.build_pool(&spec, id);
        let mut out = Vec::with_capacity(24 + pool.data.len() + 16 * pool.len());
        // Global header: magic, version 2.4, zone 0, sigfigs 0, snaplen, LINKTYPE_ETHERNET
        // (the libpcap file format, pcap-savefile(5)).
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for k in 0..pool.len() {
            let f = pool.frame(k);
            let usec = k as u32;
            out.extend_from_slice(&(usec / 1_000_000).to_le_bytes());
            out.extend_from_slice(&(usec % 1_000_000).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The generator's MACs (outside, inside) and the gateway's (outside, inside).
    pub fn macs(&self) -> [Mac; 4] {
        [
            self.out_mac,
            self.in_mac,
            self.gw_out_mac.unwrap_or_default(),
            self.gw_in_mac.unwrap_or_default(),
        ]
    }

    /// Runs one trial: builds its packets, offers them at the rate, and receives until
    /// every sent packet is back or `drain` has passed since the last one arrived.
    pub fn trial(&mut self, spec: &TrialSpec) -> Result<TrialResult, String> {
        if !spec.baseline && self.peers.iter().any(|p| p.keys.is_none()) {
            return Err("a peer has no session: handshake first".into());
        }
        let id = self.next_trial_id;
        self.next_trial_id += 1;
        let pool = self.build_pool(spec, id);
        let mean_frame = (0..spec.count)
            .map(|k| spec.size.frame(k) as f64)
            .sum::<f64>()
            / spec.count as f64;

        // Arm the receive side.
        self.trial = Trial {
            active: true,
            baseline: spec.baseline,
            id,
            direction: Some(spec.direction),
            count: spec.count,
            verify_every: self.trial.verify_every,
            first_counter: self.seen_counter.clone(),
            sent_at: if spec.latency {
                vec![0; spec.count as usize]
            } else {
                Vec::new()
            },
            latencies: Vec::new(),
            ..Trial::default()
        };
        let outside = spec.direction == Direction::Decrypt;
        let burst = if spec.latency { 1 } else { BURST };
        let clocks_per_packet = if spec.rate.is_finite() && spec.rate > 0.0 {
            self.hz as f64 / spec.rate
        } else {
            0.0
        };

        let mut refused = 0u64;
        let mut sent = 0u64;
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(BURST);
        let t0 = Eal::tsc();
        let mut last_send = t0;
        let mut k = 0usize;
        let mut total = pool.len();
        let stop_at = spec
            .max_send
            .map(|d| t0 + (d.as_secs_f64() * self.hz as f64) as u64);
        while k < total {
            if stop_at.is_some_and(|t| Eal::tsc() >= t) {
                total = k;
                break;
            }
            let due = if clocks_per_packet > 0.0 {
                (((Eal::tsc() - t0) as f64 / clocks_per_packet) as usize + 1).min(total)
            } else {
                total
            };
            if due > k {
                let n = (due - k).min(burst);
                if self.mbufs.alloc_bulk(&mut pkts, n) {
                    for (i, m) in pkts.iter_mut().enumerate() {
                        let f = pool.frame(k + i);
                        m.append(f.len() as u16)
                            .expect("an mbuf holds a frame")
                            .copy_from_slice(f);
                    }
                    let port = if outside { &self.outside } else { &self.inside };
                    // A packet's send time is taken before the port has it: a pause of
                    // this thread after the send can only lengthen, never shorten, the
                    // latency it shows.
                    let before = Eal::tsc();
                    if self.queues == 1 {
                        let s = port.tx_burst(0, &mut pkts);
                        if spec.latency {
                            for seq in k..k + s {
                                self.trial.sent_at[seq] = before;
                            }
                        }
                        sent += s as u64;
                        refused += (n - s) as u64;
                    } else {
                        // Packet k is peer k's (round robin), whose flow is on queue
                        // peer mod queues; each queue's share keeps its order.
                        let peers = self.peers.len();
                        let mut by_queue: Vec<Vec<Mbuf>> =
                            (0..self.queues).map(|_| Vec::new()).collect();
                        let mut seqs: Vec<Vec<usize>> =
                            (0..self.queues).map(|_| Vec::new()).collect();
                        for (i, m) in pkts.drain(..).enumerate() {
                            let q = ((k + i) % peers) % usize::from(self.queues);
                            by_queue[q].push(m);
                            seqs[q].push(k + i);
                        }
                        for (q, (mut v, seq)) in by_queue.into_iter().zip(seqs).enumerate() {
                            let want = v.len();
                            let s = port.tx_burst(q as u16, &mut v);
                            if spec.latency {
                                for &at in &seq[..s] {
                                    self.trial.sent_at[at] = before;
                                }
                            }
                            sent += s as u64;
                            refused += (want - s) as u64;
                            Mbuf::free_bulk(&mut v);
                        }
                    }
                    last_send = Eal::tsc();
                    Mbuf::free_bulk(&mut pkts);
                    k += n;
                }
            }
            self.poll();
        }
        let send_seconds = (last_send - t0) as f64 / self.hz as f64;

        // Drain: until every sent packet is accounted for, or nothing arrived for
        // `drain`.
        let mut quiet_since = Instant::now();
        while self.trial.received + self.trial.bad < sent {
            if self.poll() > 0 {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= spec.drain {
                break;
            }
        }
        self.trial.active = false;
        let t = std::mem::take(&mut self.trial);
        self.trial.verify_every = t.verify_every;
        let latency = spec.latency.then(|| latency_figures(t.latencies, self.hz));
        Ok(TrialResult {
            direction: spec.direction,
            size: spec.size.label(),
            rate_asked: spec.rate.is_finite().then_some(spec.rate),
            offered: total as u64,
            sent,
            refused,
            received: t.received,
            verified: t.verified,
            bad: t.bad,
            send_seconds,
            offered_rate: if send_seconds > 0.0 {
                total as f64 / send_seconds
            } else {
                0.0
            },
            mean_frame,
            latency,
        })
    }
}

fn record_latency(t: &mut Trial, seq: u64, now_tsc: u64) {
    if let Some(&at) = t.sent_at.get(seq as usize) {
        if at != 0 && now_tsc >= at {
            t.latencies.push(now_tsc - at);
        }
    }
}

/// Minimum, median, 99th percentile and maximum of latencies in TSC clocks.
pub fn latency_figures(mut clocks: Vec<u64>, hz: u64) -> Latency {
    clocks.sort_unstable();
    let ns = |c: u64| c as f64 * 1e9 / hz as f64;
    let at = |q: f64| -> f64 {
        if clocks.is_empty() {
            return 0.0;
        }
        let i = ((clocks.len() as f64 * q).ceil() as usize).clamp(1, clocks.len()) - 1;
        ns(clocks[i])
    };
    Latency {
        samples: clocks.len() as u64,
        min_ns: clocks.first().map_or(0.0, |&c| ns(c)),
        median_ns: at(0.5),
        p99_ns: at(0.99),
        max_ns: clocks.last().map_or(0.0, |&c| ns(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_imix_repeats() {
        assert_eq!(Size::parse("64"), Ok(Size::Fixed(64)));
        assert_eq!(Size::parse("IMIX"), Ok(Size::Imix));
        assert!(Size::parse("40").is_err());
        assert!(Size::parse("1500").is_err());
        assert!(Size::parse("big").is_err());
        let s = Size::Imix;
        assert_eq!(s.frame(0), 64);
        assert_eq!(s.frame(7), 570);
        assert_eq!(s.frame(11), 1420);
        assert_eq!(s.frame(12), 64);
        assert!((s.mean() - 4148.0 / 12.0).abs() < 1e-9);
    }

    #[test]
    fn peers_send_from_their_own_addresses_when_given() {
        let mut link = Link {
            outside: Ipv4Addr::new(198, 19, 0, 1),
            gateway: Ipv4Addr::new(198, 19, 0, 2),
            gateway_port: 51820,
            inside: Ipv4Addr::new(198, 18, 2, 2),
            gateway_inside: Ipv4Addr::new(198, 18, 2, 1),
            tunnel: Ipv4Addr::new(198, 18, 128, 0),
            sources: None,
        };
        assert_eq!(link.peer_address(7), link.outside);
        assert!(link.is_peer_address(link.outside));
        assert!(!link.is_peer_address(Ipv4Addr::new(198, 19, 128, 0)));
        link.sources = Some((Ipv4Addr::new(198, 19, 128, 0), 1 << 15));
        assert_eq!(link.peer_address(0), Ipv4Addr::new(198, 19, 128, 0));
        assert_eq!(link.peer_address(257), Ipv4Addr::new(198, 19, 129, 1));
        assert_eq!(link.peer_address(1 << 15), Ipv4Addr::new(198, 19, 128, 0));
        assert!(link.is_peer_address(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(
            link.is_peer_address(link.outside),
            "the router's own address stays"
        );
        assert!(!link.is_peer_address(Ipv4Addr::new(198, 20, 0, 0)));
        assert!(!link.is_peer_address(Ipv4Addr::new(198, 19, 127, 255)));
    }

    #[test]
    fn decrypt_strides_pad_to_sixteen() {
        // 64-byte frame: 50-byte inner packet, padded to 64, plus headers and tag.
        assert_eq!(Generator::stride(Direction::Decrypt, 64), 42 + 16 + 64 + 16);
        assert_eq!(
            Generator::stride(Direction::Decrypt, 1434),
            42 + 16 + 1424 + 16
        );
        assert_eq!(Generator::stride(Direction::Encrypt, 64), 64);
    }

    #[test]
    fn latency_percentiles() {
        let l = latency_figures((1..=100).collect(), 1_000_000_000);
        assert_eq!(l.samples, 100);
        assert_eq!(l.min_ns, 1.0);
        assert_eq!(l.median_ns, 50.0);
        assert_eq!(l.p99_ns, 99.0);
        assert_eq!(l.max_ns, 100.0);
        assert_eq!(latency_figures(Vec::new(), 1).samples, 0);
    }
}
