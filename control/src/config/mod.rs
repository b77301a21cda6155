//! The YAML configuration of `wgdp --config FILE`, read and checked before anything is
//! started.
//!
//! Contract: [`load`] and [`parse`] either return a [`Config`] in which every value has
//! its final type and has been checked, alone and against the others, or one
//! [`ConfigError`] naming the key path (`peers[2].allowed_ips[0]`) and the reason. The
//! rest of the program never re-validates. The keys are those of docs/configuration.md;
//! an unknown key is an error, because a misspelt optional key would otherwise be
//! silently ignored. Defaults are applied here and are the `DEFAULT_*` constants below.
//!
//! Reading happens in two steps: `raw` mirrors the file (structure, unknown keys, types),
//! then `validate` turns text into addresses, keys and devices and checks the relations
//! (lcores used twice, next hops off-link, the same network claimed by two peers). Key
//! files named in the configuration are read during validation, relative to the
//! configuration file's directory.
//!
//! The peers are read one item at a time where the layout of the file allows it (`source`:
//! a configuration with many peers costs time in proportion to its size, and memory for
//! its result only), with the YAML parser reading the whole text whenever that is not
//! certain; both give the same result and the same errors. [`reload`] reads a file again
//! for a configuration loaded from it before and reads only what changed.
//!
//! Secret keys end up in [`Key`], which wipes itself on drop. The YAML text and the key
//! files are held in wiped buffers too (a loaded configuration keeps its text for the
//! next reload), but the YAML parser's intermediate tree is not; `private_key_file`
//! keeps the private key out of that tree entirely.

mod device;
mod error;
mod item;
mod key;
mod layout;
mod net;
mod raw;
mod source;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_by_parts;

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use zeroize::Zeroizing;

pub use error::ConfigError;
pub use key::{decode_key, Key, KEY_LEN};
pub use net::{InterfaceAddr, Prefix, PrefixParseError};

/// Packets per vector when `dpdk.burst` is not given; also the largest allowed.
pub const DEFAULT_BURST: u16 = 256;
/// Mbufs in the packet pool when `dpdk.mbufs` is not given, with one worker (2^n - 1
/// is the mempool's most memory-efficient size); more workers get more
/// ([`DpdkConfig::default_mbufs`]).
pub const DEFAULT_MBUFS: u32 = 16383;
/// What one worker can hold at once: an RX and a TX ring of 1024 descriptors on each of
/// the two ports, four vectors of 256 packets in its stages and as many again in their
/// flights (`dataplane::worker::FLIGHT_LIMIT`), and its lcore's cache of 256 in the pool.
pub const MBUFS_PER_WORKER: u32 = 4 * 1024 + 4 * 256 + dataplane::worker::FLIGHT_LIMIT as u32 + 256;
/// WireGuard's usual listen port, used when `wireguard.listen_port` is not given.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// The inner MTU when `wireguard.mtu` is not given: what wg-quick picks, so that the
/// encrypted packet (+80 bytes over IPv6) fits a 1500-byte link.
pub const DEFAULT_MTU: u16 = 1420;

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub dpdk: DpdkConfig,
    pub ports: Ports,
    pub wireguard: WireguardConfig,
    /// In file order; may be empty.
    pub peers: Vec<PeerConfig>,
    pub crypto: CryptoConfig,
    pub control_port: Option<ControlPortConfig>,
    pub metrics: Option<MetricsConfig>,
    pub uapi: Option<UapiConfig>,
    /// What [`reload`] reuses: the text this was read from and what its peers claim
    /// together. It describes `peers` as loaded; `None` when the text was read whole.
    source: Option<Arc<source::Source>>,
}

/// EAL and lcore settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Passed to `rte_eal_init` verbatim. Never contains lcore options (`-l`, `-c`,
    /// `--lcores`, `--main-lcore`): those follow from the two fields below.
    pub eal_args: Vec<String>,
    /// The EAL main lcore, where the control thread runs; not one of the workers.
    pub control_lcore: u32,
    /// One poll-mode worker per entry; non-empty, no duplicates.
    pub worker_lcores: Vec<u32>,
    /// The CPU of each lcore that does not run on the CPU of its own number
    /// (`dpdk.lcores.cpus`); several lcores may share one CPU.
    pub cpus: std::collections::BTreeMap<u32, u32>,
    /// Packets per vector, 1..=256.
    pub burst: u16,
    /// Mbufs in the packet pool.
    pub mbufs: u32,
    pub idle: IdleMode,
    /// A worker that cannot keep up hands AEAD work to quiet workers (`dpdk.share_crypto`,
    /// default on; `dataplane::spread`).
    pub share_crypto: bool,
    /// Threads for the Diffie-Hellman work of handshakes (`dpdk.handshake_threads`; 0:
    /// the control thread does it); `None`: one per CPU left to the process by the
    /// workers and the control lcore (`gateway::handshake_threads`).
    pub handshake_threads: Option<u16>,
}

impl DpdkConfig {
    /// The pool for `workers` workers when `dpdk.mbufs` is not given: room for what every
    /// worker holds at once and as much again for the control thread and the rings
    /// between them, at least [`DEFAULT_MBUFS`], rounded up to 2^n - 1.
    pub fn default_mbufs(workers: usize) -> u32 {
        let need = (workers as u32 + 1) * MBUFS_PER_WORKER;
        need.max(DEFAULT_MBUFS)
            .next_power_of_two()
            .saturating_sub(1)
            .max(DEFAULT_MBUFS)
    }
}

/// What a worker does when a poll returns no packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleMode {
    /// Back off and sleep a little after repeated empty polls, to spare the CPU.
    #[default]
    Adaptive,
    /// Busy-poll always: lowest latency, the lcore stays at 100%.
    Poll,
}

/// What a port does with TCP/UDP checksums that a sender on the same host left for its
/// network card to finish (docs/architecture.md, "What a host hands the ports").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartialChecksums {
    /// `complete` on drivers that hand over frames of local senders (AF_XDP,
    /// AF_PACKET, TAP, virtio-user, vhost), `pass` on everything else (physical NICs
    /// receive only finished frames from the wire).
    #[default]
    Auto,
    /// Recognise partial checksums and complete them.
    Complete,
    /// Leave every checksum as received.
    Pass,
}

/// Drivers whose frames can come from a sender on the same host, offloads undone.
const HOST_SIDE_DRIVERS: &[&str] = &[
    "net_af_xdp",
    "net_af_packet",
    "eth_af_packet",
    "net_tap",
    "net_virtio_user",
    "net_vhost",
    "eth_vhost",
];

impl PortConfig {
    /// Whether this port completes partial checksums, `auto` resolved by its driver.
    pub fn completes_checksums(&self) -> bool {
        match self.partial_checksums {
            PartialChecksums::Complete => true,
            PartialChecksums::Pass => false,
            PartialChecksums::Auto => self.device.is_host_side(),
        }
    }
}

impl DeviceSpec {
    /// Whether the device's frames may come from a sender on this host (a kernel
    /// interface or a local VM), rather than from a wire.
    pub fn is_host_side(&self) -> bool {
        match self {
            DeviceSpec::Vdev { name, .. } => HOST_SIDE_DRIVERS.iter().any(|d| name.starts_with(d)),
            DeviceSpec::Pci { .. } => false,
        }
    }

    /// Whether DPDK 22.11's driver loses the mbufs it holds in its rings when the port
    /// closes: AF_XDP (fill, RX and completion rings over the pool), and memif as a
    /// zero-copy client (the buffers it lent the server).
    pub fn forgets_ring_mbufs(&self) -> bool {
        match self {
            DeviceSpec::Vdev { spec, name } => {
                name.starts_with("net_af_xdp")
                    || (name.starts_with("net_memif")
                        && spec.split(',').any(|kv| kv == "zero-copy=yes"))
            }
            DeviceSpec::Pci { .. } => false,
        }
    }

    /// Whether the kernel picks the queue each received packet reaches, whatever the DPDK
    /// driver reports: AF_XDP and AF_PACKET sockets sit on the queues of a kernel
    /// interface, which the interface's own RSS (or, on a veth, the sender's queue) fills.
    pub fn kernel_picks_queue(&self) -> bool {
        matches!(self, DeviceSpec::Vdev { name, .. }
            if name.starts_with("net_af_xdp") || self.is_af_packet())
    }

    /// Whether this is DPDK's AF_PACKET driver.
    pub fn is_af_packet(&self) -> bool {
        matches!(self, DeviceSpec::Vdev { name, .. }
            if name.starts_with("net_af_packet") || name.starts_with("eth_af_packet"))
    }
}

/// The two ports of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// Carries encrypted WireGuard UDP.
    pub outside: PortConfig,
    /// Carries the plaintext traffic of the protected networks.
    pub inside: PortConfig,
}

/// One port. Invariants: at least one address; every gateway and every route's `via`
/// lies in a connected subnet of this port and is not one of its addresses; at most
/// one gateway per address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub device: DeviceSpec,
    pub addresses: Vec<InterfaceAddr>,
    /// Default next hops, at most one IPv4 and one IPv6.
    pub gateway: Vec<IpAddr>,
    /// RX/TX queue pairs; `None` means one per worker.
    pub queues: Option<u16>,
    pub routes: Vec<Route>,
    pub partial_checksums: PartialChecksums,
}

/// How DPDK finds a port's device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// A virtual device: `spec` is the whole `--vdev` argument
    /// (`net_af_xdp0,iface=eth1`), `name` the part before the first comma
    /// (`net_af_xdp0`), which is also the DPDK port name.
    Vdev { spec: String, name: String },
    /// A PCI device, `address` in canonical form (`0000:3b:00.0`).
    Pci { address: String },
}

/// A network behind a router on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    /// The router; in a connected subnet of the port, same family as `prefix`.
    pub via: IpAddr,
}

/// The gateway's own WireGuard interface.
#[derive(Debug, Clone)]
pub struct WireguardConfig {
    pub private_key: Key,
    /// UDP port on the outside addresses, 1..=65535.
    pub listen_port: u16,
    /// Largest inner packet; the encrypted packet is 60 (IPv4) or 80 (IPv6) bytes more.
    pub mtu: u16,
    /// Seconds after which the initiator of a session replaces it: the protocol's 120
    /// (Rekey-After-Time) unless shortened for testing.
    pub rekey_after_time: u16,
    /// The DSCP of the outer headers: 0 by default (nothing about the inner traffic
    /// shows outside), a fixed code point, or the inner packet's. The ECN field is
    /// always the inner packet's (RFC 6040).
    pub outer_dscp: dataplane::ecn::OuterDscp,
}

/// One remote peer. Invariants across peers: public keys are distinct and none is the
/// gateway's own; no network appears in the allowed IPs of two peers (nested networks
/// may, and longest prefix wins).
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub public_key: [u8; KEY_LEN],
    pub preshared_key: Option<Key>,
    /// Where to send before the peer is heard from; then learned from its packets.
    pub endpoint: Option<SocketAddr>,
    /// Networks this peer may send from and that are routed to it; masked.
    pub allowed_ips: Vec<Prefix>,
    /// Seconds between keepalives when idle, 1..=65535; `None` sends none.
    pub persistent_keepalive: Option<u16>,
}

/// Where the transport AEAD runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoConfig {
    pub backend: CryptoBackend,
    /// The crypto device: a `crypto_*` vdev spec or a canonical PCI address. Always
    /// present with `Cryptodev`; may be present, checked but unused, with `Software`.
    pub device: Option<String>,
}

/// Transport crypto implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CryptoBackend {
    /// In-line on the worker lcore.
    #[default]
    Software,
    /// A DPDK crypto device, one queue pair per worker.
    Cryptodev,
}

/// The kernel TAP that receives traffic addressed to the gateway itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPortConfig {
    /// Interface name, 1..=15 characters.
    pub tap: String,
    /// Routes for a routing daemon on the host (`control_port.export`).
    pub export: Option<ExportConfig>,
}

/// `control_port.export`: the kernel routing table wgdp keeps the routes of its live
/// peers in, and the outside addresses it routes there while its workers poll
/// (docs/scale-out.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// 1..=252: FRR's `ip import-table` takes no other (253 to 255 are the kernel's).
    pub table: u32,
    /// Addresses of the outside port, each routed as a host route in the table.
    pub announce: Vec<IpAddr>,
    /// A worker that has not polled for this long makes the gateway unhealthy.
    pub stall_ms: u32,
}

/// `control_port.export.stall_ms` when not given.
pub const DEFAULT_STALL_MS: u32 = 1000;

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
    /// Most peers with series of their own (`metrics.peer_series`): every peer when
    /// there are no more, otherwise the busiest of those with a session.
    pub peer_series: usize,
}

/// `metrics.peer_series` when not given.
pub const DEFAULT_PEER_SERIES: usize = 1000;
/// The largest `metrics.peer_series`.
pub const MAX_PEER_SERIES: usize = 100_000;

/// The WireGuard UAPI socket, `/var/run/wireguard/<name>.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UapiConfig {
    /// Interface-style name, 1..=15 characters of `a-zA-Z0-9_=+.-`.
    pub name: String,
}

/// Reads and checks the configuration file at `path`. Key files it names are looked
/// up relative to the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    check_text(path, text, None)
}

/// Reads and checks the file at `path` again, for `previous`, a configuration loaded
/// from it: the result is what [`load`] would give, errors included, but only what
/// changed since `previous` was read is read and checked again, where that can be done
/// with certainty. On success, `previous` keeps its other values but has given its peers
/// to the result (the caller replaces it, see `reload::applied`); on failure it is
/// unchanged.
pub fn reload(path: &Path, previous: &mut Config) -> Result<Config, ConfigError> {
    let text = read(path)?;
    check_text(path, text, Some(previous))
}

fn read(path: &Path) -> Result<Zeroizing<String>, ConfigError> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|err| ConfigError::io("", path, &err))
}

/// Checks `text`, read from `path`, by parts, or by its differences to `previous`.
fn check_text(
    path: &Path,
    text: Zeroizing<String>,
    previous: Option<&mut Config>,
) -> Result<Config, ConfigError> {
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let reread = previous.and_then(|previous| source::reread(&text, base_dir, previous));
    let parsed = match reread {
        Some(parsed) => parsed,
        None => parse_text(&text, base_dir).map_err(|mut err| {
            // Errors about the document as a whole are about this file.
            if err.path.is_empty() {
                err.path = path.display().to_string();
            }
            err
        })?,
    };
    // The file itself holds a secret when a key is written inline.
    if parsed.inline_secret {
        validate::warn_if_exposed("wireguard.private_key", path);
    }
    let mut config = parsed.config;
    config.source = parsed
        .kept
        .map(|kept| Arc::new(kept.into_source(text, base_dir)));
    Ok(config)
}

/// Checks configuration text; relative key file paths are taken from `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    parse_text(text, base_dir).map(|parsed| parsed.config)
}

/// By parts if the layout allows, else whole.
fn parse_text(text: &str, base_dir: &Path) -> Result<source::Parsed, ConfigError> {
    match source::parse_split(text, base_dir) {
        Some(parsed) => parsed,
        None => parse_whole(text, base_dir),
    }
}

/// The whole text through the YAML parser and serde, then checked: what reading by
/// parts must always agree with.
fn parse_whole(text: &str, base_dir: &Path) -> Result<source::Parsed, ConfigError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|err| ConfigError::new("", format!("not valid YAML: {err}")))?;
    if value.is_null() {
        return Err(ConfigError::new("", "the configuration is empty"));
    }
    let raw: raw::RawConfig =
        serde_path_to_error::deserialize(value).map_err(ConfigError::from_serde)?;
    let inline_secret =
        raw.wireguard.private_key.is_some() || raw.peers.iter().any(|p| p.preshared_key.is_some());
    let config = validate::validate(raw, base_dir)?;
    Ok(source::Parsed {
        config,
        inline_secret,
        kept: None,
    })
}
