//! From the file as written to a checked [`Config`]: parse every text value, apply
//! defaults, check ranges, then check the values against each other. The first problem
//! found is returned, with the key path of the value at fault; where two values
//! conflict, the path is the later one and the reason names the earlier.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use dataplane::ecn::OuterDscp;
use zeroize::Zeroizing;

use super::device::{crypto_device, interface_name};
use super::key::decode_key;
use super::raw::{
    RawConfig, RawControlPort, RawCrypto, RawDpdk, RawDscp, RawMetrics, RawPeer, RawPort, RawPorts,
    RawUapi, RawWireguard, Secret,
};
use super::{
    Config, ConfigError, ControlPortConfig, CryptoBackend, CryptoConfig, DeviceSpec, DpdkConfig,
    InterfaceAddr, Key, MetricsConfig, PeerConfig, PortConfig, Ports, Prefix, Route, UapiConfig,
    WireguardConfig, DEFAULT_BURST, DEFAULT_LISTEN_PORT, DEFAULT_MTU, KEY_LEN, MBUFS_PER_WORKER,
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
fn ranged<T: TryFrom<i64>>(path: &str, value: i64, lo: i64, hi: i64) -> Result<T, ConfigError> {
    if (lo..=hi).contains(&value) {
        if let Ok(value) = T::try_from(value) {
            return Ok(value);
        }
    }
    fail(path, format!("must be between {lo} and {hi}, got {value}"))
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

pub(super) fn validate(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let dpdk = dpdk(raw.dpdk)?;
    let ports = ports(raw.ports)?;
    let (private_key, listen_port) = wireguard_key_and_port(&raw.wireguard, base_dir)?;
    let own_public_key = public_key_of(&private_key);
    let peers = peers(&raw.peers, base_dir, &ports.outside, &own_public_key)?;
    let mtu = mtu(raw.wireguard.mtu, &ports, &peers)?;
    // Only ever shorter than the protocol's 120 s, and long enough for a handshake to
    // complete (Rekey-Timeout, 5 s) before the next one is due.
    let rekey_after_time = match raw.wireguard.rekey_after_time {
        Some(s) => ranged("wireguard.rekey_after_time", s, 10, 120)?,
        None => 120,
    };
    let outer_dscp = match raw.wireguard.outer_dscp {
        None => OuterDscp::default(),
        Some(RawDscp::Code(c)) => OuterDscp::Fixed(ranged("wireguard.outer_dscp", c, 0, 63)?),
        Some(RawDscp::Word(w)) if w == "inner" => OuterDscp::Inner,
        Some(RawDscp::Word(w)) => {
            return fail(
                "wireguard.outer_dscp",
                format!("must be a DSCP from 0 to 63 or \"inner\", got {w:?}"),
            )
        }
    };
    let crypto = crypto(raw.crypto)?;
    check_pci_probing(&dpdk.eal_args, &ports, &crypto)?;
    Ok(Config {
        dpdk,
        ports,
        wireguard: WireguardConfig {
            private_key,
            listen_port,
            mtu,
            rekey_after_time,
            outer_dscp,
        },
        peers,
        crypto,
        control_port: raw.control_port.map(control_port).transpose()?,
        metrics: raw.metrics.map(metrics).transpose()?,
        uapi: raw.uapi.map(uapi).transpose()?,
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
        .map(|queues| ranged(&format!("{port_path}.queues"), queues, 1, MAX_QUEUES))
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
        raw.private_key.as_ref(),
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

/// A secret given inline under `key_path` or in a file under `key_path` + `_file`, at
/// most one of the two.
fn secret_key(
    key_path: &str,
    inline: Option<&Secret>,
    file: Option<&str>,
    base_dir: &Path,
) -> Result<Option<Key>, ConfigError> {
    let file_path = format!("{key_path}_file");
    match (inline, file) {
        (Some(_), Some(_)) => {
            let reason = format!(
                "give either {} or {}, not both",
                leaf(key_path),
                leaf(&file_path)
            );
            fail(file_path, reason)
        }
        (Some(text), None) => decode_key(&text.0)
            .map(|bytes| Some(Key::from_bytes(bytes)))
            .or_else(|reason| fail(key_path, reason)),
        (None, Some(file)) => key_file(&file_path, file, base_dir).map(Some),
        (None, None) => Ok(None),
    }
}

/// The last component of a key path, as the user wrote it in the mapping.
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Reads a key file as `wg genkey > file` writes it: the base64 key and white space.
fn key_file(path: &str, file: &str, base_dir: &Path) -> Result<Key, ConfigError> {
    if file.is_empty() {
        return fail(path, "is empty; give the path of a key file");
    }
    let full = base_dir.join(file);
    let text = fs::read_to_string(&full)
        .map(Zeroizing::new)
        .map_err(|err| ConfigError::io(path, &full, &err))?;
    warn_if_exposed(path, &full);
    let text = text.trim();
    if text.is_empty() {
        return fail(path, format!("{}: the file is empty", full.display()));
    }
    decode_key(text)
        .map(Key::from_bytes)
        .or_else(|reason| fail(path, format!("{}: {reason}", full.display())))
}

/// Warns when a file holding a secret can be read or written by others than its owner
/// (as `wg` does for its configuration files).
pub(super) fn warn_if_exposed(path: &str, file: &Path) {
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

fn peers(
    raw: &[RawPeer],
    base_dir: &Path,
    outside: &PortConfig,
    own_public_key: &[u8; KEY_LEN],
) -> Result<Vec<PeerConfig>, ConfigError> {
    // What start would refuse, refused here too.
    if raw.len() > crate::gateway::MAX_PEERS {
        return fail(
            format!("peers[{}]", crate::gateway::MAX_PEERS),
            format!(
                "{} peers are configured; wgdp holds at most {}",
                raw.len(),
                crate::gateway::MAX_PEERS
            ),
        );
    }
    let mut peers: Vec<PeerConfig> = Vec::with_capacity(raw.len());
    // Each public key and the peer that has it; each network, after masking, and where
    // it was first claimed: (peer, index). Both by hash, so a check costs in proportion
    // to the file.
    let mut keys: HashMap<[u8; KEY_LEN], usize> = HashMap::with_capacity(raw.len());
    let mut owners: HashMap<Prefix, (usize, usize)> = HashMap::new();
    for (p, raw) in raw.iter().enumerate() {
        let path = format!("peers[{p}]");

        let key_path = format!("{path}.public_key");
        let public_key = decode_key(&raw.public_key).or_else(|reason| fail(&key_path, reason))?;
        if &public_key == own_public_key {
            return fail(
                key_path,
                "is the gateway's own public key (of wireguard.private_key)",
            );
        }
        if let Some(first) = keys.insert(public_key, p) {
            return fail(key_path, format!("is also the key of peers[{first}]"));
        }

        let preshared_key = secret_key(
            &format!("{path}.preshared_key"),
            raw.preshared_key.as_ref(),
            raw.preshared_key_file.as_deref(),
            base_dir,
        )?;

        let endpoint = raw
            .endpoint
            .as_deref()
            .map(|text| endpoint(&format!("{path}.endpoint"), text, outside))
            .transpose()?;

        let mut allowed_ips = Vec::with_capacity(raw.allowed_ips.len());
        for (i, text) in raw.allowed_ips.iter().enumerate() {
            let ip_path = format!("{path}.allowed_ips[{i}]");
            let prefix: Prefix = text
                .parse()
                .or_else(|err| fail(&ip_path, format!("{err}")))?;
            if let Some(&(owner, j)) = owners.get(&prefix) {
                let what = if *text == prefix.to_string() {
                    format!("{prefix}")
                } else {
                    format!("{text} (network {prefix})")
                };
                let reason = if owner == p {
                    format!("{what} is listed twice (also allowed_ips[{j}])")
                } else {
                    format!(
                        "{what} is already an allowed IP of peers[{owner}] (allowed_ips[{j}]); \
                         a network can belong to one peer only"
                    )
                };
                return fail(ip_path, reason);
            }
            owners.insert(prefix, (p, i));
            allowed_ips.push(prefix);
        }

        let persistent_keepalive = raw
            .persistent_keepalive
            .map(|seconds| {
                ranged(
                    &format!("{path}.persistent_keepalive"),
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

        peers.push(PeerConfig {
            public_key,
            preshared_key,
            endpoint,
            allowed_ips,
            persistent_keepalive,
        });
    }
    Ok(peers)
}

/// `IP:port` or `[IPv6]:port`. Host names are refused: resolving them would make the
/// configuration's meaning depend on DNS at start-up.
fn socket_addr(path: &str, text: &str, example_port: u16) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = match text.parse() {
        Ok(addr) => addr,
        Err(_) => {
            let hint = match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => format!("has no port (write {ip}:{example_port})"),
                Ok(IpAddr::V6(ip)) => format!("has no port (write [{ip}]:{example_port})"),
                Err(_) => "is not IP:port or [IPv6]:port (host names are not resolved)".to_string(),
            };
            return fail(path, format!("{text:?} {hint}"));
        }
    };
    if addr.port() == 0 {
        return fail(path, format!("{text:?} has port 0"));
    }
    Ok(addr)
}

fn endpoint(path: &str, text: &str, outside: &PortConfig) -> Result<SocketAddr, ConfigError> {
    let addr = socket_addr(path, text, DEFAULT_LISTEN_PORT)?;
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || broadcast {
        return fail(path, format!("{ip} is not a peer's unicast address"));
    }
    if !outside
        .addresses
        .iter()
        .any(|a| a.addr.is_ipv4() == ip.is_ipv4())
    {
        return fail(
            path,
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
fn mtu(raw: Option<i64>, ports: &Ports, peers: &[PeerConfig]) -> Result<u16, ConfigError> {
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
        .or_else(|| {
            peers.iter().enumerate().find_map(|(p, peer)| {
                let i = peer.allowed_ips.iter().position(|ip| !ip.is_ipv4())?;
                Some(format!("peers[{p}].allowed_ips[{i}]"))
            })
        });
    match ipv6_user {
        Some(user) if mtu < MIN_MTU_IPV6 => fail(
            "wireguard.mtu",
            format!(
                "{mtu} is below {MIN_MTU_IPV6}, the least IPv6 allows (RFC 8200), \
                 and IPv6 is carried ({user})"
            ),
        ),
        _ if mtu < MIN_MTU_IPV4 => fail(
            "wireguard.mtu",
            format!("{mtu} is below {MIN_MTU_IPV4}, the least every IPv4 host accepts (RFC 791)"),
        ),
        _ => ranged("wireguard.mtu", mtu, MIN_MTU_IPV4, max),
    }
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

fn control_port(raw: RawControlPort) -> Result<ControlPortConfig, ConfigError> {
    interface_name(&raw.tap).or_else(|reason| fail("control_port.tap", reason))?;
    Ok(ControlPortConfig { tap: raw.tap })
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
