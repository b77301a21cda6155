//! From the file as written to a checked [`Config`]: parse every text value, apply
//! defaults, check ranges, then check the values against each other. The first problem
//! found is returned, with the key path of the value at fault; where two values
//! conflict, the path is the later one and the reason names the earlier.
//!
//! The checks run in three parts so that the peers can also be checked one at a time
//! (and on a reload only those that changed): [`front`] (the keys every peer is checked
//! against), [`peer`] for each peer in file order, and [`tail`]. What the peers claim
//! together (public keys, networks) goes through [`Claims`]. Key paths are only built
//! into text when an error names them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use dataplane::ecn::OuterDscp;
use zeroize::Zeroizing;

use super::device::{crypto_device, interface_name};
use super::item::PeerFields;
use super::key::decode_key;
use super::raw::{
    RawConfig, RawControlPort, RawCrypto, RawDpdk, RawDscp, RawExport, RawMetrics, RawPeer,
    RawPort, RawPorts, RawUapi, RawWireguard,
};
use super::{
    Config, ConfigError, ControlPortConfig, CryptoBackend, CryptoConfig, DeviceSpec, DpdkConfig,
    ExportConfig, InterfaceAddr, Key, MetricsConfig, PeerConfig, PortConfig, Ports, Prefix, Route,
    UapiConfig, WireguardConfig, DEFAULT_BURST, DEFAULT_LISTEN_PORT, DEFAULT_MTU, KEY_LEN,
    MBUFS_PER_WORKER,
};

/// RTE_MAX_LCORE of the DPDK 22.11 build wgdp targets (Debian's `rte_build_config.h`).
const MAX_LCORE: i64 = 128;
/// RTE_MAX_QUEUES_PER_PORT of the same build (`rte_config.h`).
const MAX_QUEUES: i64 = 1024;
/// A floor against slips such as a missing digit, not a sizing rule: the RX rings
/// alone hold hundreds of mbufs per queue, so a smaller pool starves at once.
const MIN_MBUFS: i64 = 1023;
/// The largest IP packet planned for on the outside link: the usual jumbo MTU.
const MAX_OUTER_PACKET: i64 = 9000;
/// What encryption adds to an inner packet besides the outer IP header: UDP 8, the
/// WireGuard data header 16 (type, receiver, counter) and the Poly1305 tag 16.
const ENCRYPTION_OVERHEAD: i64 = 8 + 16 + 16;
/// The smallest MTU an IPv6 link may have (RFC 8200, section 5).
const MIN_MTU_IPV6: i64 = 1280;
/// The datagram size every IPv4 host must accept (RFC 791).
const MIN_MTU_IPV4: i64 = 576;

/// EAL options that wgdp sets itself from `dpdk.lcores`; also given in `eal_args`
/// they would fight with it. Short options may carry their value attached (`-l0-3`).
const LCORE_OPTIONS_SHORT: [&str; 2] = ["-l", "-c"];
const LCORE_OPTIONS_LONG: [&str; 3] = ["--lcores", "--main-lcore", "--master-lcore"];

fn fail<T>(path: impl Into<String>, reason: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(path, reason))
}

/// `value` if it lies in `lo..=hi`, converted to the field's type.
fn ranged<T: TryFrom<i64>>(
    path: impl fmt::Display,
    value: i64,
    lo: i64,
    hi: i64,
) -> Result<T, ConfigError> {
    if (lo..=hi).contains(&value) {
        if let Ok(value) = T::try_from(value) {
            return Ok(value);
        }
    }
    fail(
        path.to_string(),
        format!("must be between {lo} and {hi}, got {value}"),
    )
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// A key path under `peers[N]`, written out only when an error names it.
#[derive(Clone, Copy)]
struct PeerPath<'a> {
    peer: usize,
    key: &'a str,
    index: Option<usize>,
}

impl PeerPath<'_> {
    fn of(peer: usize, key: &str) -> PeerPath<'_> {
        PeerPath {
            peer,
            key,
            index: None,
        }
    }
}

impl fmt::Display for PeerPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peers[{}].{}", self.peer, self.key)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// Checks the whole configuration as read by serde (see [`front`], [`peer`], [`tail`]).
pub(super) fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let RawConfig {
        dpdk,
        ports,
        wireguard,
        peers: raw_peers,
        crypto,
        control_port,
        metrics,
        uapi,
    } = raw;
    let front = front(dpdk, ports, &wireguard, base_dir)?;
    check_peer_count(raw_peers.len())?;
    let cx = front.context(base_dir);
    // Each peer alone, then their claims together; the first error, if there is one,
    // from checking them in order.
    let mut peers: Vec<PeerConfig> = Vec::with_capacity(raw_peers.len());
    let mut ips = Vec::new();
    let mut failed = false;
    for (p, raw) in raw_peers.iter().enumerate() {
        match peer(p, &raw.fields(&mut ips), &ips, &cx, &mut Alone, &[]) {
            Ok(checked) => peers.push(checked),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed || Claimed::of(&peers).is_none() {
        let mut claims = InOrder::default();
        peers.clear();
        for (p, raw) in raw_peers.iter().enumerate() {
            let checked = peer(p, &raw.fields(&mut ips), &ips, &cx, &mut claims, &peers)?;
            peers.push(checked);
        }
    }
    let tail = tail(
        &front,
        &wireguard,
        crypto,
        control_port,
        metrics,
        uapi,
        || ipv6_peer(peers.iter()),
    )?;
    Ok(assemble(front, tail, peers))
}

/// What the keys before the peers give, checked; the peers are checked against it.
pub(super) struct Front {
    pub dpdk: DpdkConfig,
    pub ports: Ports,
    pub private_key: Key,
    pub listen_port: u16,
    pub own_public_key: [u8; KEY_LEN],
}

impl Front {
    pub fn context<'a>(&'a self, base_dir: &'a Path) -> PeerContext<'a> {
        PeerContext {
            base_dir,
            outside: &self.ports.outside,
            own_public_key: &self.own_public_key,
        }
    }
}

/// `dpdk`, `ports` and the key and port of `wireguard`, checked in that order.
pub(super) fn front(
    dpdk_raw: RawDpdk,
    ports_raw: RawPorts,
    wireguard: &RawWireguard,
    base_dir: &Path,
) -> Result<Front, ConfigError> {
    let dpdk = dpdk(dpdk_raw)?;
    let ports = ports(ports_raw)?;
    let (private_key, listen_port) = wireguard_key_and_port(wireguard, base_dir)?;
    let own_public_key = public_key_of(&private_key);
    Ok(Front {
        dpdk,
        ports,
        private_key,
        listen_port,
        own_public_key,
    })
}

/// What the keys after the peers give, checked.
pub(super) struct Tail {
    mtu: u16,
    rekey_after_time: u16,
    outer_dscp: OuterDscp,
    crypto: CryptoConfig,
    control_port: Option<ControlPortConfig>,
    metrics: Option<MetricsConfig>,
    uapi: Option<UapiConfig>,
}

/// The rest of `wireguard` and the sections after it, checked in order. `ipv6_peer`
/// names the first allowed IP of the peers that is IPv6, if any (asked only when the MTU
/// is too small for IPv6).
pub(super) fn tail(
    front: &Front,
    wireguard: &RawWireguard,
    crypto_raw: Option<RawCrypto>,
    control_port_raw: Option<RawControlPort>,
    metrics_raw: Option<RawMetrics>,
    uapi_raw: Option<RawUapi>,
    ipv6_peer: impl FnOnce() -> Option<String>,
) -> Result<Tail, ConfigError> {
    let mtu = mtu(wireguard.mtu, &front.ports, ipv6_peer)?;
    // Only ever shorter than the protocol's 120 s, and long enough for a handshake to
    // complete (Rekey-Timeout, 5 s) before the next one is due.
    let rekey_after_time = match wireguard.rekey_after_time {
        Some(s) => ranged("wireguard.rekey_after_time", s, 10, 120)?,
        None => 120,
    };
    let outer_dscp = match &wireguard.outer_dscp {
        None => OuterDscp::default(),
        Some(RawDscp::Code(c)) => OuterDscp::Fixed(ranged("wireguard.outer_dscp", *c, 0, 63)?),
        Some(RawDscp::Word(w)) if w == "inner" => OuterDscp::Inner,
        Some(RawDscp::Word(w)) => {
            return fail(
                "wireguard.outer_dscp",
                format!("must be a DSCP from 0 to 63 or \"inner\", got {w:?}"),
            )
        }
    };
    let crypto = crypto(crypto_raw)?;
    check_pci_probing(&front.dpdk.eal_args, &front.ports, &crypto)?;
    Ok(Tail {
        mtu,
        rekey_after_time,
        outer_dscp,
        crypto,
        control_port: control_port_raw
            .map(|c| control_port(c, &front.ports))
            .transpose()?,
        metrics: metrics_raw.map(metrics).transpose()?,
        uapi: uapi_raw.map(uapi).transpose()?,
    })
}

/// The checked parts put together.
pub(super) fn assemble(front: Front, tail: Tail, peers: Vec<PeerConfig>) -> Config {
    Config {
        dpdk: front.dpdk,
        ports: front.ports,
        wireguard: WireguardConfig {
            private_key: front.private_key,
            listen_port: front.listen_port,
            mtu: tail.mtu,
            rekey_after_time: tail.rekey_after_time,
            outer_dscp: tail.outer_dscp,
        },
        peers,
        crypto: tail.crypto,
        control_port: tail.control_port,
        metrics: tail.metrics,
        uapi: tail.uapi,
        source: None,
    }
}

/// The key path of the first IPv6 allowed IP among `peers` (in file order).
pub(super) fn ipv6_peer<'a>(peers: impl Iterator<Item = &'a PeerConfig>) -> Option<String> {
    peers.enumerate().find_map(|(p, peer)| {
        let i = peer.allowed_ips.iter().position(|ip| !ip.is_ipv4())?;
        Some(format!("peers[{p}].allowed_ips[{i}]"))
    })
}

fn dpdk(raw: RawDpdk) -> Result<DpdkConfig, ConfigError> {
    for (i, arg) in raw.eal_args.iter().enumerate() {
        let short = LCORE_OPTIONS_SHORT
            .iter()
            .any(|opt| arg.starts_with(opt) && !arg.starts_with("--"));
        let long = LCORE_OPTIONS_LONG
            .iter()
            .any(|opt| arg == opt || arg.starts_with(&format!("{opt}=")));
        if short || long {
            return fail(
                format!("dpdk.eal_args[{i}]"),
                format!("{arg:?} is set by wgdp from dpdk.lcores; remove it here"),
            );
        }
    }

    let control_lcore = ranged("dpdk.lcores.control", raw.lcores.control, 0, MAX_LCORE - 1)?;
    if raw.lcores.workers.is_empty() {
        return fail(
            "dpdk.lcores.workers",
            "lists no lcore; give at least one worker",
        );
    }
    let mut worker_lcores: Vec<u32> = Vec::with_capacity(raw.lcores.workers.len());
    for (i, &lcore) in raw.lcores.workers.iter().enumerate() {
        let path = format!("dpdk.lcores.workers[{i}]");
        let lcore = ranged(&path, lcore, 0, MAX_LCORE - 1)?;
        if lcore == control_lcore {
            return fail(
                path,
                format!("lcore {lcore} is the control lcore; workers need lcores of their own"),
            );
        }
        if let Some(first) = worker_lcores.iter().position(|&w| w == lcore) {
            return fail(
                path,
                format!("lcore {lcore} is listed twice (also workers[{first}])"),
            );
        }
        worker_lcores.push(lcore);
    }

    let burst = match raw.burst {
        Some(burst) => ranged("dpdk.burst", burst, 1, i64::from(DEFAULT_BURST))?,
        None => DEFAULT_BURST,
    };
    let mbufs = match raw.mbufs {
        Some(mbufs) => {
            let mbufs = ranged("dpdk.mbufs", mbufs, MIN_MBUFS, i64::from(u32::MAX))?;
            let need = worker_lcores.len() as u32 * MBUFS_PER_WORKER;
            if worker_lcores.len() > 1 && mbufs < need {
                return fail(
                    "dpdk.mbufs",
                    format!(
                        "{mbufs} mbufs are fewer than {} workers hold at once ({need}: \
                         {MBUFS_PER_WORKER} each in their queues and vectors); give at least \
                         that, or leave dpdk.mbufs out for {}",
                        worker_lcores.len(),
                        DpdkConfig::default_mbufs(worker_lcores.len())
                    ),
                );
            }
            mbufs
        }
        None => DpdkConfig::default_mbufs(worker_lcores.len()),
    };
    let mut cpus = std::collections::BTreeMap::new();
    for (&lcore, &cpu) in raw.lcores.cpus.iter().flatten() {
        let path = format!("dpdk.lcores.cpus.{lcore}");
        let lcore = ranged(&path, lcore, 0, MAX_LCORE - 1)?;
        if lcore != control_lcore && !worker_lcores.contains(&lcore) {
            return fail(
                path,
                format!("lcore {lcore} is neither the control lcore nor a worker"),
            );
        }
        cpus.insert(lcore, ranged(&path, cpu, 0, MAX_LCORE - 1)?);
    }
    Ok(DpdkConfig {
        eal_args: raw.eal_args,
        control_lcore,
        worker_lcores,
        cpus,
        burst,
        mbufs,
        idle: raw.idle.unwrap_or_default(),
        share_crypto: raw.share_crypto.unwrap_or(true),
        handshake_threads: match raw.handshake_threads {
            Some(n) => Some(ranged(
                "dpdk.handshake_threads",
                n,
                0,
                crate::plane::dh::MAX_THREADS as i64,
            )?),
            None => None,
        },
    })
}

fn ports(raw: RawPorts) -> Result<Ports, ConfigError> {
    let outside = port("ports.outside", raw.outside)?;
    let inside = port("ports.inside", raw.inside)?;

    if inside.device.name() == outside.device.name() {
        return fail(
            "ports.inside.device",
            format!(
                "{} is already ports.outside.device; the ports need two devices",
                inside.device.name()
            ),
        );
    }
    // Link-local subnets exist once per link by definition, so both ports may have one.
    let routed = |addr: &&InterfaceAddr| !is_link_local(addr.addr);
    for (i, addr) in inside
        .addresses
        .iter()
        .enumerate()
        .filter(|(_, a)| routed(a))
    {
        for (j, other) in outside
            .addresses
            .iter()
            .enumerate()
            .filter(|(_, a)| routed(a))
        {
            if addr.network().overlaps(&other.network()) {
                return fail(
                    format!("ports.inside.addresses[{i}]"),
                    format!(
                        "subnet {} overlaps {} of ports.outside.addresses[{j}]; \
                         the two ports need separate subnets",
                        addr.network(),
                        other.network()
                    ),
                );
            }
        }
    }

    // Every network is routed one way only: connected subnets, routes, and the
    // gateways (a gateway is a route for the default network of its family).
    let mut claimed: HashMap<Prefix, String> = HashMap::new();
    for (name, port) in [("outside", &outside), ("inside", &inside)] {
        for (i, addr) in port.addresses.iter().enumerate() {
            claimed
                .entry(addr.network())
                .or_insert_with(|| format!("ports.{name}.addresses[{i}]"));
        }
    }
    for (name, port) in [("outside", &outside), ("inside", &inside)] {
        let gateways = port.gateway.iter().enumerate().map(|(i, &via)| {
            let default = Prefix {
                addr: unspecified(via),
                len: 0,
            };
            (format!("ports.{name}.gateway[{i}]"), default)
        });
        let routes = port
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| (format!("ports.{name}.routes[{i}].prefix"), route.prefix));
        for (path, prefix) in gateways.chain(routes) {
            if let Some(earlier) = claimed.get(&prefix) {
                let what = if prefix.len == 0 {
                    format!("a default {} route", family(prefix.addr))
                } else {
                    format!("{prefix}")
                };
                return fail(path, format!("{what} is already given by {earlier}"));
            }
            claimed.insert(prefix, path);
        }
    }
    Ok(Ports { outside, inside })
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// 169.254.0.0/16 or fe80::/10.
fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn port(port_path: &str, raw: RawPort) -> Result<PortConfig, ConfigError> {
    let device = DeviceSpec::parse_port(&raw.device)
        .or_else(|reason| fail(format!("{port_path}.device"), reason))?;

    if raw.addresses.is_empty() {
        return fail(
            format!("{port_path}.addresses"),
            "lists no address; a port needs at least one",
        );
    }
    let mut addresses: Vec<InterfaceAddr> = Vec::with_capacity(raw.addresses.len());
    for (i, text) in raw.addresses.iter().enumerate() {
        let path = format!("{port_path}.addresses[{i}]");
        let addr: InterfaceAddr = text.parse().or_else(|err| fail(&path, format!("{err}")))?;
        check_interface_addr(&path, text, addr)?;
        if let Some(first) = addresses.iter().position(|a| a.addr == addr.addr) {
            return fail(
                path,
                format!("{} is listed twice (also addresses[{first}])", addr.addr),
            );
        }
        addresses.push(addr);
    }

    let mut gateway: Vec<IpAddr> = Vec::with_capacity(raw.gateway.len());
    for (i, text) in raw.gateway.iter().enumerate() {
        let path = format!("{port_path}.gateway[{i}]");
        let via = next_hop(&path, port_path, text, &addresses)?;
        if let Some(first) = gateway.iter().position(|g| g.is_ipv4() == via.is_ipv4()) {
            return fail(
                path,
                format!(
                    "a second {} gateway (the first is gateway[{first}]); give at most one \
                     per address family",
                    family(via)
                ),
            );
        }
        gateway.push(via);
    }

    let queues = raw
        .queues
        .map(|queues| ranged(format!("{port_path}.queues"), queues, 1, MAX_QUEUES))
        .transpose()?;

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, route) in raw.routes.iter().enumerate() {
        let path = format!("{port_path}.routes[{i}]");
        let network: Prefix = route
            .prefix
            .parse()
            .or_else(|err| fail(format!("{path}.prefix"), format!("{err}")))?;
        let via = next_hop(&format!("{path}.via"), port_path, &route.via, &addresses)?;
        if via.is_ipv4() != network.is_ipv4() {
            return fail(
                format!("{path}.via"),
                format!(
                    "{via} is {} but the prefix {network} is {}",
                    family(via),
                    family(network.addr)
                ),
            );
        }
        routes.push(Route {
            prefix: network,
            via,
        });
    }

    Ok(PortConfig {
        device,
        addresses,
        gateway,
        queues,
        routes,
        partial_checksums: raw.partial_checksums.unwrap_or_default(),
    })
}

/// Refuses addresses no interface can have: unspecified, loopback, multicast, and for
/// IPv4 subnets with host bits (up to /30) the network and broadcast addresses.
fn check_interface_addr(path: &str, text: &str, addr: InterfaceAddr) -> Result<(), ConfigError> {
    let ip = addr.addr;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return fail(
            path,
            format!("{text:?} is not usable as an interface address"),
        );
    }
    if let IpAddr::V4(v4) = ip {
        if addr.prefix_len <= 30 {
            let host_bits = u32::MAX >> addr.prefix_len;
            let host = u32::from(v4) & host_bits;
            if host == 0 {
                return fail(
                    path,
                    format!("{text:?} is the network address of its subnet, not a host address"),
                );
            }
            if host == host_bits {
                return fail(
                    path,
                    format!("{text:?} is the broadcast address of its subnet, not a host address"),
                );
            }
        }
    }
    Ok(())
}

/// A router address on port `port`: on one of its connected subnets, and not its own.
fn next_hop(
    path: &str,
    port: &str,
    text: &str,
    addresses: &[InterfaceAddr],
) -> Result<IpAddr, ConfigError> {
    let via: IpAddr = text
        .parse()
        .or_else(|_| fail(path, format!("{text:?} is not an IP address")))?;
    if let Some(i) = addresses.iter().position(|a| a.addr == via) {
        return fail(
            path,
            format!("{via} is this port's own address ({port}.addresses[{i}]), not a router"),
        );
    }
    if !addresses.iter().any(|a| a.contains(via)) {
        let subnets: Vec<String> = addresses.iter().map(|a| a.network().to_string()).collect();
        return fail(
            path,
            format!(
                "{via} is not in a connected subnet of {port} ({})",
                subnets.join(", ")
            ),
        );
    }
    Ok(via)
}

fn wireguard_key_and_port(raw: &RawWireguard, base_dir: &Path) -> Result<(Key, u16), ConfigError> {
    let key = secret_key(
        "wireguard.private_key",
        "private_key",
        raw.private_key.as_ref().map(|s| s.0.as_str()),
        raw.private_key_file.as_deref(),
        base_dir,
    )?;
    let Some(key) = key else {
        return fail(
            "wireguard.private_key",
            "is required (or give private_key_file); generate one with `wg genkey`",
        );
    };
    let listen_port = match raw.listen_port {
        Some(port) => ranged("wireguard.listen_port", port, 1, i64::from(u16::MAX))?,
        None => DEFAULT_LISTEN_PORT,
    };
    Ok((key, listen_port))
}

/// `path` with `_file` appended.
#[derive(Clone, Copy)]
struct FileKey<P>(P);

impl<P: fmt::Display> fmt::Display for FileKey<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_file", self.0)
    }
}

/// A secret given inline under `key_path` (whose last component is `leaf`) or in a file
/// under `key_path` + `_file`, at most one of the two.
fn secret_key<P: fmt::Display + Copy>(
    key_path: P,
    leaf: &str,
    inline: Option<&str>,
    file: Option<&str>,
    base_dir: &Path,
) -> Result<Option<Key>, ConfigError> {
    let file_path = FileKey(key_path);
    match (inline, file) {
        (Some(_), Some(_)) => fail(
            file_path.to_string(),
            format!("give either {leaf} or {leaf}_file, not both"),
        ),
        (Some(text), None) => decode_key(text)
            .map(|bytes| Some(Key::from_bytes(bytes)))
            .or_else(|reason| fail(key_path.to_string(), reason)),
        (None, Some(file)) => key_file(file_path, file, base_dir).map(Some),
        (None, None) => Ok(None),
    }
}

/// Reads a key file as `wg genkey > file` writes it: the base64 key and white space.
fn key_file(path: impl fmt::Display, file: &str, base_dir: &Path) -> Result<Key, ConfigError> {
    if file.is_empty() {
        return fail(path.to_string(), "is empty; give the path of a key file");
    }
    let full = base_dir.join(file);
    let text = fs::read_to_string(&full)
        .map(Zeroizing::new)
        .map_err(|err| ConfigError::io(path.to_string(), &full, &err))?;
    warn_if_exposed(&path, &full);
    let text = text.trim();
    if text.is_empty() {
        return fail(
            path.to_string(),
            format!("{}: the file is empty", full.display()),
        );
    }
    decode_key(text)
        .map(Key::from_bytes)
        .or_else(|reason| fail(path.to_string(), format!("{}: {reason}", full.display())))
}

/// Warns when a file holding a secret can be read or written by others than its owner
/// (as `wg` does for its configuration files).
pub(super) fn warn_if_exposed(path: impl fmt::Display, file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{path}: {} holds a secret key and is accessible to others (mode {mode:o}); \
                 chmod 600 it",
                file.display()
            );
        }
    }
}

fn public_key_of(private_key: &Key) -> [u8; KEY_LEN] {
    let secret = x25519_dalek::StaticSecret::from(*private_key.as_bytes());
    x25519_dalek::PublicKey::from(&secret).to_bytes()
}

/// What start would refuse, refused here too.
pub(super) fn check_peer_count(count: usize) -> Result<(), ConfigError> {
    if count > crate::gateway::MAX_PEERS {
        return fail(
            format!("peers[{}]", crate::gateway::MAX_PEERS),
            format!(
                "{count} peers are configured; wgdp holds at most {}",
                crate::gateway::MAX_PEERS
            ),
        );
    }
    Ok(())
}

/// What each peer is checked against.
pub(super) struct PeerContext<'a> {
    pub base_dir: &'a Path,
    pub outside: &'a PortConfig,
    pub own_public_key: &'a [u8; KEY_LEN],
}

/// What the peers checked so far have claimed that no other peer may have: public keys
/// and networks (after masking).
pub(super) trait Claims {
    /// Claims `key`; if it is taken, the peer among `earlier` that has it.
    fn key(&mut self, key: &[u8; KEY_LEN], earlier: &[PeerConfig]) -> Result<(), usize>;
    /// Claims `net` for the peer whose allowed IPs so far are `own`; if it is taken,
    /// where: `None` for `own`, or the peer among `earlier`, and the index in its list.
    fn net(
        &mut self,
        net: Prefix,
        own: &[Prefix],
        earlier: &[PeerConfig],
    ) -> Result<(), (Option<usize>, usize)>;
}

/// No claims: each peer checked alone (its claims are checked together by
/// [`Claimed::of`]).
pub(super) struct Alone;

impl Claims for Alone {
    fn key(&mut self, _: &[u8; KEY_LEN], _: &[PeerConfig]) -> Result<(), usize> {
        Ok(())
    }

    fn net(
        &mut self,
        _: Prefix,
        _: &[Prefix],
        _: &[PeerConfig],
    ) -> Result<(), (Option<usize>, usize)> {
        Ok(())
    }
}

/// Claims checked one by one in file order, by hash; who has a taken key or network is
/// looked for only for the error. What finds the first error when there is one.
#[derive(Default)]
pub(super) struct InOrder {
    keys: HashSet<[u8; KEY_LEN]>,
    nets: HashSet<Prefix>,
}

impl Claims for InOrder {
    fn key(&mut self, key: &[u8; KEY_LEN], earlier: &[PeerConfig]) -> Result<(), usize> {
        if self.keys.insert(*key) {
            return Ok(());
        }
        Err(earlier
            .iter()
            .position(|p| &p.public_key == key)
            .unwrap_or_default())
    }

    fn net(
        &mut self,
        net: Prefix,
        own: &[Prefix],
        earlier: &[PeerConfig],
    ) -> Result<(), (Option<usize>, usize)> {
        if self.nets.insert(net) {
            return Ok(());
        }
        if let Some(j) = own.iter().position(|n| *n == net) {
            return Err((None, j));
        }
        let owner = earlier.iter().enumerate().find_map(|(q, peer)| {
            let j = peer.allowed_ips.iter().position(|n| *n == net)?;
            Some((Some(q), j))
        });
        Err(owner.unwrap_or_default())
    }
}

/// The public keys and networks of a set of peers, each once, sorted: made and checked
/// for duplicates by sorting (O(n log n), in order in memory, unlike a hash table of a
/// million entries), searched by bisection.
#[derive(Default, Clone)]
pub(super) struct Claimed {
    keys: Vec<[u8; KEY_LEN]>,
    nets: Vec<Prefix>,
}

impl Claimed {
    /// What `peers` claim, if no two claims are the same.
    pub fn of(peers: &[PeerConfig]) -> Option<Claimed> {
        let mut keys: Vec<[u8; KEY_LEN]> = peers.iter().map(|p| p.public_key).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        let mut nets: Vec<Prefix> = peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .collect();
        nets.sort_unstable();
        if nets.windows(2).any(|w| w[0] == w[1]) {
            return None;
        }
        Some(Claimed { keys, nets })
    }

    pub fn has_key(&self, key: &[u8; KEY_LEN]) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    pub fn has_net(&self, net: &Prefix) -> bool {
        self.nets.binary_search(net).is_ok()
    }

    /// These claims without `removed` (which they hold) and with `added` (which they do
    /// not hold).
    pub fn updated(
        &self,
        removed: (&HashSet<[u8; KEY_LEN]>, &HashSet<Prefix>),
        added: (&HashSet<[u8; KEY_LEN]>, &HashSet<Prefix>),
    ) -> Claimed {
        Claimed {
            keys: merged(&self.keys, removed.0, added.0),
            nets: merged(&self.nets, removed.1, added.1),
        }
    }
}

/// Sorted `base` without `removed` and with `added`, still sorted.
fn merged<T: Ord + Copy + std::hash::Hash>(
    base: &[T],
    removed: &HashSet<T>,
    added: &HashSet<T>,
) -> Vec<T> {
    let sorted = |set: &HashSet<T>| {
        let mut v: Vec<T> = set.iter().copied().collect();
        v.sort_unstable();
        v
    };
    let (removed, added) = (sorted(removed), sorted(added));
    let mut out = Vec::with_capacity(base.len() + added.len());
    let (mut r, mut a) = (removed.iter().peekable(), added.iter().peekable());
    for &x in base {
        while let Some(&&y) = a.peek() {
            if y >= x {
                break;
            }
            out.push(y);
            a.next();
        }
        if r.peek() == Some(&&x) {
            r.next();
            continue;
        }
        out.push(x);
    }
    out.extend(a);
    out
}

impl RawPeer {
    /// The fields as the item parser gives them, the allowed IPs into `ips`.
    pub(super) fn fields<'a>(&'a self, ips: &mut Vec<&'a str>) -> PeerFields<'a> {
        ips.clear();
        ips.extend(self.allowed_ips.iter().map(String::as_str));
        PeerFields {
            public_key: &self.public_key,
            preshared_key: self.preshared_key.as_ref().map(|s| s.0.as_str()),
            preshared_key_file: self.preshared_key_file.as_deref(),
            endpoint: self.endpoint.as_deref(),
            persistent_keepalive: self.persistent_keepalive,
        }
    }
}

/// Checks peer `p` (`raw`, its allowed IPs `ips`) alone and against the claims of the
/// peers before it, `earlier` (used only to name the owner of a taken key or network).
pub(super) fn peer(
    p: usize,
    raw: &PeerFields<'_>,
    ips: &[&str],
    cx: &PeerContext<'_>,
    claims: &mut impl Claims,
    earlier: &[PeerConfig],
) -> Result<PeerConfig, ConfigError> {
    let key_path = PeerPath::of(p, "public_key");
    let public_key =
        decode_key(raw.public_key).or_else(|reason| fail(key_path.to_string(), reason))?;
    if &public_key == cx.own_public_key {
        return fail(
            key_path.to_string(),
            "is the gateway's own public key (of wireguard.private_key)",
        );
    }
    if let Err(first) = claims.key(&public_key, earlier) {
        return fail(
            key_path.to_string(),
            format!("is also the key of peers[{first}]"),
        );
    }

    let preshared_key = secret_key(
        PeerPath::of(p, "preshared_key"),
        "preshared_key",
        raw.preshared_key,
        raw.preshared_key_file,
        cx.base_dir,
    )?;

    let endpoint = raw
        .endpoint
        .map(|text| endpoint(PeerPath::of(p, "endpoint"), text, cx.outside))
        .transpose()?;

    let mut allowed_ips: Vec<Prefix> = Vec::with_capacity(ips.len());
    for (i, &text) in ips.iter().enumerate() {
        let ip_path = PeerPath {
            peer: p,
            key: "allowed_ips",
            index: Some(i),
        };
        let prefix: Prefix = text
            .parse()
            .or_else(|err| fail(ip_path.to_string(), format!("{err}")))?;
        if let Err((owner, j)) = claims.net(prefix, &allowed_ips, earlier) {
            let what = if text == prefix.to_string() {
                format!("{prefix}")
            } else {
                format!("{text} (network {prefix})")
            };
            let reason = match owner {
                None => format!("{what} is listed twice (also allowed_ips[{j}])"),
                Some(owner) => format!(
                    "{what} is already an allowed IP of peers[{owner}] (allowed_ips[{j}]); \
                     a network can belong to one peer only"
                ),
            };
            return fail(ip_path.to_string(), reason);
        }
        allowed_ips.push(prefix);
    }

    let persistent_keepalive = raw
        .persistent_keepalive
        .map(|seconds| {
            ranged(
                PeerPath::of(p, "persistent_keepalive"),
                seconds,
                1,
                i64::from(u16::MAX),
            )
            .map_err(|mut err| {
                err.reason
                    .push_str(" seconds (leave the key out for no keepalives)");
                err
            })
        })
        .transpose()?;

    Ok(PeerConfig {
        public_key,
        preshared_key,
        endpoint,
        allowed_ips,
        persistent_keepalive,
    })
}

/// `IP:port` or `[IPv6]:port`. Host names are refused: resolving them would make the
/// configuration's meaning depend on DNS at start-up.
fn socket_addr(
    path: impl fmt::Display,
    text: &str,
    example_port: u16,
) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = match text.parse() {
        Ok(addr) => addr,
        Err(_) => {
            let hint = match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => format!("has no port (write {ip}:{example_port})"),
                Ok(IpAddr::V6(ip)) => format!("has no port (write [{ip}]:{example_port})"),
                Err(_) => "is not IP:port or [IPv6]:port (host names are not resolved)".to_string(),
            };
            return fail(path.to_string(), format!("{text:?} {hint}"));
        }
    };
    if addr.port() == 0 {
        return fail(path.to_string(), format!("{text:?} has port 0"));
    }
    Ok(addr)
}

fn endpoint(
    path: impl fmt::Display + Copy,
    text: &str,
    outside: &PortConfig,
) -> Result<SocketAddr, ConfigError> {
    let addr = socket_addr(path, text, DEFAULT_LISTEN_PORT)?;
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || broadcast {
        return fail(
            path.to_string(),
            format!("{ip} is not a peer's unicast address"),
        );
    }
    if !outside
        .addresses
        .iter()
        .any(|a| a.addr.is_ipv4() == ip.is_ipv4())
    {
        return fail(
            path.to_string(),
            format!(
                "{text:?} is {} but ports.outside has no {} address to send from",
                family(ip),
                family(ip)
            ),
        );
    }
    Ok(addr)
}

/// The inner MTU: at least what IPv6 needs if IPv6 is carried, and small enough that
/// the encrypted packet fits a jumbo frame on the outside link.
fn mtu(
    raw: Option<i64>,
    ports: &Ports,
    ipv6_peer: impl FnOnce() -> Option<String>,
) -> Result<u16, ConfigError> {
    let Some(mtu) = raw else {
        return Ok(DEFAULT_MTU);
    };
    let outer_ip_header = if ports.outside.addresses.iter().any(|a| a.addr.is_ipv6()) {
        40
    } else {
        20
    };
    let overhead = outer_ip_header + ENCRYPTION_OVERHEAD;
    let max = MAX_OUTER_PACKET - overhead;
    if mtu > max {
        return fail(
            "wireguard.mtu",
            format!(
                "{mtu} is too large: an encrypted packet is mtu + {overhead} bytes here \
                 (outer IP {outer_ip_header}, UDP 8, WireGuard header 16, tag 16) and must fit \
                 {MAX_OUTER_PACKET} bytes; at most {max}"
            ),
        );
    }
    if mtu < MIN_MTU_IPV6 {
        let ipv6_user = ports
            .inside
            .addresses
            .iter()
            .position(|a| a.addr.is_ipv6())
            .map(|i| format!("ports.inside.addresses[{i}]"))
            .or_else(|| {
                let i = ports
                    .inside
                    .routes
                    .iter()
                    .position(|r| !r.prefix.is_ipv4())?;
                Some(format!("ports.inside.routes[{i}].prefix"))
            })
            .or_else(ipv6_peer);
        if let Some(user) = ipv6_user {
            return fail(
                "wireguard.mtu",
                format!(
                    "{mtu} is below {MIN_MTU_IPV6}, the least IPv6 allows (RFC 8200), \
                     and IPv6 is carried ({user})"
                ),
            );
        }
    }
    if mtu < MIN_MTU_IPV4 {
        return fail(
            "wireguard.mtu",
            format!("{mtu} is below {MIN_MTU_IPV4}, the least every IPv4 host accepts (RFC 791)"),
        );
    }
    ranged("wireguard.mtu", mtu, MIN_MTU_IPV4, max)
}

fn crypto(raw: Option<RawCrypto>) -> Result<CryptoConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(CryptoConfig {
            backend: CryptoBackend::Software,
            device: None,
        });
    };
    let backend = raw.backend.unwrap_or_default();
    // A device next to `backend: software` is checked but unused, so that switching
    // backends is a one-word edit.
    let device = match (backend, raw.device) {
        (_, Some(text)) => {
            Some(crypto_device(&text).or_else(|reason| fail("crypto.device", reason))?)
        }
        (CryptoBackend::Software, None) => None,
        (CryptoBackend::Cryptodev, None) => {
            return fail(
                "crypto.device",
                "is required with backend: cryptodev (for example crypto_aesni_mb or a PCI \
                 address)",
            )
        }
    };
    Ok(CryptoConfig { backend, device })
}

/// A PCI device is invisible to DPDK when `--no-pci` is given, and the failure would
/// only show later as "no such port".
fn check_pci_probing(
    eal_args: &[String],
    ports: &Ports,
    crypto: &CryptoConfig,
) -> Result<(), ConfigError> {
    let Some(i) = eal_args.iter().position(|arg| arg == "--no-pci") else {
        return Ok(());
    };
    let crypto_pci = crypto.device.as_deref().filter(|device| {
        crypto.backend == CryptoBackend::Cryptodev && !device.starts_with("crypto_")
    });
    let pci_user = [
        ("ports.outside.device", &ports.outside.device),
        ("ports.inside.device", &ports.inside.device),
    ]
    .into_iter()
    .find(|(_, device)| device.is_pci())
    .map(|(key, device)| (key, device.name()))
    .or(crypto_pci.map(|device| ("crypto.device", device)));
    match pci_user {
        Some((key, device)) => fail(
            format!("dpdk.eal_args[{i}]"),
            format!("--no-pci hides {key} ({device}), a PCI device; remove --no-pci"),
        ),
        None => Ok(()),
    }
}

fn control_port(raw: RawControlPort, ports: &Ports) -> Result<ControlPortConfig, ConfigError> {
    interface_name(&raw.tap).or_else(|reason| fail("control_port.tap", reason))?;
    let export = match raw.export {
        None => None,
        Some(e) => Some(export(e, ports)?),
    };
    Ok(ControlPortConfig {
        tap: raw.tap,
        export,
    })
}

fn export(raw: RawExport, ports: &Ports) -> Result<ExportConfig, ConfigError> {
    let table = ranged("control_port.export.table", raw.table, 1, 252)?;
    let mut announce: Vec<IpAddr> = Vec::with_capacity(raw.announce.len());
    for (i, text) in raw.announce.iter().enumerate() {
        let path = format!("control_port.export.announce[{i}]");
        let Ok(addr) = text.parse::<IpAddr>() else {
            return fail(path, format!("{text:?} is not an IP address"));
        };
        if !ports.outside.addresses.iter().any(|a| a.addr == addr) {
            return fail(path, format!("{addr} is not an address of ports.outside"));
        }
        if announce.contains(&addr) {
            return fail(path, format!("{addr} is listed twice"));
        }
        announce.push(addr);
    }
    let stall_ms = match raw.stall_ms {
        Some(ms) => ranged("control_port.export.stall_ms", ms, 10, 60_000)?,
        None => crate::config::DEFAULT_STALL_MS,
    };
    Ok(ExportConfig {
        table,
        announce,
        stall_ms,
    })
}

fn metrics(raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let listen = socket_addr("metrics.listen", &raw.listen, 9586)?;
    let peer_series = match raw.peer_series {
        Some(n) => ranged(
            "metrics.peer_series",
            n,
            0,
            crate::config::MAX_PEER_SERIES as i64,
        )?,
        None => crate::config::DEFAULT_PEER_SERIES,
    };
    Ok(MetricsConfig {
        listen,
        peer_series,
    })
}

fn uapi(raw: RawUapi) -> Result<UapiConfig, ConfigError> {
    interface_name(&raw.name).or_else(|reason| fail("uapi.name", reason))?;
    Ok(UapiConfig { name: raw.name })
}
