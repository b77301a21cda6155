//! Whole-file tests: the documented examples parse, defaults apply, and every class of
//! mistake is reported on the right key path.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::*;

// Real keys, made with `wg genkey | tee priv | wg pubkey` and `wg genpsk`.
const GATEWAY_PRIVATE: &str = "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo=";
const GATEWAY_PUBLIC: &str = "sjqtiiul7IvvnNWuAeqU3CzSRHos7yX/YpuquXDJ7mA=";
const PEER1_PUBLIC: &str = "y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEFk=";
const PEER2_PUBLIC: &str = "ggdGQcHi+E4V01q7aECwEYfKv95KnzBlq92CQvKyUhA=";
const PEER3_PUBLIC: &str = "k4aj9eWEUh1vI56xfQeyO8Y99/6iGvZcCNM3kCpzImM=";
const PSK: &str = "gQFoga4GS0lKD1NsvdJ7H6wtcLyzDX+bzNsJdeS0d7s=";

/// The example of the configuration contract, keys filled in, `private_key_file`
/// dropped (it is the alternative to `private_key`).
const SCHEMA_EXAMPLE: &str = r#"
dpdk:
  eal_args: ["--no-pci", "--file-prefix", "wgdp"]   # passed to rte_eal_init verbatim (optional)
  lcores:
    control: 0            # lcore of the control thread (the EAL main lcore)
    workers: [1]          # lcores of the poll-mode workers, one or more
  burst: 256              # vector size, 1..=256 (optional, default 256)
  mbufs: 16383            # mbufs in the packet pool (optional)
  idle: adaptive          # adaptive | poll  (optional; adaptive sleeps when no packets arrive)

ports:
  outside:                # carries encrypted WireGuard UDP
    device: "net_af_xdp0,iface=eth1"   # a DPDK vdev spec or a PCI address such as 0000:3b:00.0
    addresses: ["198.19.0.2/24", "2001:2:0:1::2/64"]
    gateway: ["198.19.0.254"]          # default next hops for this port (optional)
    queues: 1                          # RX/TX queue pairs (optional, default: one per worker)
  inside:                 # carries plaintext traffic of the protected networks
    device: "net_af_xdp1,iface=eth2"
    addresses: ["198.18.2.1/24", "2001:2:0:2::1/64"]
    routes:               # networks behind a router on this port (optional)
      - { prefix: "198.18.200.0/24", via: "198.18.2.254" }

wireguard:
  private_key: "GATEWAY_PRIVATE"
  listen_port: 51820
  mtu: 1420                            # largest inner packet; larger IPv4 DF / IPv6 gets ICMP too-big

peers:
  - public_key: "PEER1_PUBLIC"
    preshared_key: "PSK"               # optional; or preshared_key_file
    endpoint: "198.19.0.1:51820"       # optional; "[2001:2::1]:51820" for IPv6; learned by roaming
    allowed_ips: ["198.18.99.2/32", "198.18.1.0/24"]
    persistent_keepalive: 25           # seconds (optional)

crypto:
  backend: software                    # software | cryptodev
  device: "crypto_chacha20_poly1305"   # cryptodev vdev spec or PCI address (cryptodev only)

control_port:
  tap: "wgdp0"                         # kernel TAP that receives host-bound traffic (optional)

metrics:
  listen: "127.0.0.1:9586"             # Prometheus /metrics (optional)

uapi:
  name: "wgdp0"                        # /var/run/wireguard/wgdp0.sock, for `wg show wgdp0` (optional)
"#;

/// The least a configuration needs; the error tests edit it one mistake at a time.
const MINIMAL: &str = r#"
dpdk:
  lcores: { control: 0, workers: [1] }
ports:
  outside:
    device: "net_af_xdp0,iface=eth1"
    addresses: ["198.19.0.2/24"]
  inside:
    device: "net_af_xdp1,iface=eth2"
    addresses: ["198.18.2.1/24"]
wireguard:
  private_key: "GATEWAY_PRIVATE"
peers:
  - public_key: "PEER1_PUBLIC"
    allowed_ips: ["198.18.1.0/24"]
"#;

fn with_keys(yaml: &str) -> String {
    yaml.replace("GATEWAY_PRIVATE", GATEWAY_PRIVATE)
        .replace("GATEWAY_PUBLIC", GATEWAY_PUBLIC)
        .replace("PEER1_PUBLIC", PEER1_PUBLIC)
        .replace("PEER2_PUBLIC", PEER2_PUBLIC)
        .replace("PEER3_PUBLIC", PEER3_PUBLIC)
        .replace("PSK", PSK)
}

/// `MINIMAL` with `from` replaced by `to`; `from` must occur.
fn minimal_with(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "{from:?} is not in MINIMAL");
    MINIMAL.replacen(from, to, 1)
}

/// `MINIMAL` with more YAML appended at the top level.
fn minimal_plus(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

fn parse_ok(yaml: &str) -> Config {
    parse(&with_keys(yaml), Path::new(".")).unwrap_or_else(|err| panic!("{err}\n{yaml}"))
}

fn parse_err(yaml: &str) -> ConfigError {
    match parse(&with_keys(yaml), Path::new(".")) {
        Ok(_) => panic!("parsed, but should not have:\n{yaml}"),
        Err(err) => err,
    }
}

/// Asserts the error's key path exactly and that its reason mentions `reason`.
#[track_caller]
fn assert_error(yaml: &str, path: &str, reason: &str) {
    let err = parse_err(yaml);
    assert_eq!(err.path, path, "wrong key path in: {err}");
    assert!(err.reason.contains(reason), "{err:?} lacks {reason:?}");
    assert!(!err.to_string().contains('\n'), "not one line: {err}");
}

fn key(base64: &str) -> [u8; KEY_LEN] {
    decode_key(base64).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn prefix(text: &str) -> Prefix {
    text.parse().unwrap()
}

/// A scratch directory for key files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> ScratchDir {
        let dir =
            std::env::temp_dir().join(format!("wgdp-config-test-{}-{tag}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn schema_example_parses() {
    let config = parse_ok(SCHEMA_EXAMPLE);

    assert_eq!(
        config.dpdk,
        DpdkConfig {
            eal_args: vec!["--no-pci".into(), "--file-prefix".into(), "wgdp".into()],
            control_lcore: 0,
            worker_lcores: vec![1],
            cpus: Default::default(),
            burst: 256,
            mbufs: 16383,
            idle: IdleMode::Adaptive,
            share_crypto: true,
            handshake_threads: None,
        }
    );

    let outside = &config.ports.outside;
    assert_eq!(
        outside.device,
        DeviceSpec::Vdev {
            spec: "net_af_xdp0,iface=eth1".into(),
            name: "net_af_xdp0".into()
        }
    );
    assert_eq!(
        outside.addresses,
        vec![
            InterfaceAddr {
                addr: ip("198.19.0.2"),
                prefix_len: 24
            },
            InterfaceAddr {
                addr: ip("2001:2:0:1::2"),
                prefix_len: 64
            },
        ]
    );
    assert_eq!(outside.gateway, vec![ip("198.19.0.254")]);
    assert_eq!(outside.queues, Some(1));
    assert!(outside.routes.is_empty());

    let inside = &config.ports.inside;
    assert_eq!(inside.device.name(), "net_af_xdp1");
    assert_eq!(inside.queues, None);
    assert_eq!(
        inside.routes,
        vec![Route {
            prefix: prefix("198.18.200.0/24"),
            via: ip("198.18.2.254")
        }]
    );

    assert_eq!(
        config.wireguard.private_key.as_bytes(),
        &key(GATEWAY_PRIVATE)
    );
    assert_eq!(config.wireguard.listen_port, 51820);
    assert_eq!(config.wireguard.mtu, 1420);

    assert_eq!(config.peers.len(), 1);
    let peer = &config.peers[0];
    assert_eq!(peer.public_key, key(PEER1_PUBLIC));
    assert_eq!(peer.preshared_key.as_ref().unwrap().as_bytes(), &key(PSK));
    assert_eq!(
        peer.endpoint,
        Some("198.19.0.1:51820".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        peer.allowed_ips,
        vec![prefix("198.18.99.2/32"), prefix("198.18.1.0/24")]
    );
    assert_eq!(peer.persistent_keepalive, Some(25));

    assert_eq!(
        config.crypto,
        CryptoConfig {
            backend: CryptoBackend::Software,
            device: Some("crypto_chacha20_poly1305".into())
        }
    );
    assert_eq!(config.control_port.unwrap().tap, "wgdp0");
    assert_eq!(
        config.metrics.unwrap().listen,
        "127.0.0.1:9586".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.uapi.unwrap().name, "wgdp0");
}

#[test]
fn defaults_fill_omitted_keys() {
    let config = parse_ok(MINIMAL);
    assert!(config.dpdk.eal_args.is_empty());
    assert_eq!(config.dpdk.burst, DEFAULT_BURST);
    assert_eq!(config.dpdk.mbufs, DEFAULT_MBUFS);
    assert_eq!(config.dpdk.idle, IdleMode::Adaptive);
    for port in [&config.ports.outside, &config.ports.inside] {
        assert!(port.gateway.is_empty());
        assert!(port.routes.is_empty());
        assert_eq!(port.queues, None);
    }
    assert_eq!(config.wireguard.listen_port, DEFAULT_LISTEN_PORT);
    assert_eq!(config.wireguard.mtu, DEFAULT_MTU);
    let peer = &config.peers[0];
    assert!(peer.preshared_key.is_none());
    assert_eq!(peer.endpoint, None);
    assert_eq!(peer.persistent_keepalive, None);
    assert_eq!(
        config.crypto,
        CryptoConfig {
            backend: CryptoBackend::Software,
            device: None
        }
    );
    assert!(config.control_port.is_none());
    assert!(config.metrics.is_none());
    assert!(config.uapi.is_none());
}

#[test]
fn empty_optional_lists_and_sections_are_allowed() {
    let config = parse_ok(&minimal_with(
        "peers:\n  - public_key: \"PEER1_PUBLIC\"\n    allowed_ips: [\"198.18.1.0/24\"]\n",
        "peers:\nmetrics:\n",
    ));
    assert!(config.peers.is_empty());
    assert!(config.metrics.is_none());
    let config = parse_ok(&minimal_with(
        "allowed_ips: [\"198.18.1.0/24\"]",
        "allowed_ips: []",
    ));
    assert!(config.peers[0].allowed_ips.is_empty());
}

#[test]
fn other_values_are_accepted() {
    let config = parse_ok(&minimal_with(
        "lcores: { control: 0, workers: [1] }",
        "lcores: { control: 3, workers: [1, 2, 0] }\n  burst: 1\n  mbufs: 32767\n  idle: poll\n  share_crypto: false\n  handshake_threads: 3",
    ));
    assert_eq!(config.dpdk.handshake_threads, Some(3));
    assert_eq!(config.dpdk.worker_lcores, vec![1, 2, 0]);
    assert_eq!(config.dpdk.burst, 1);
    assert_eq!(config.dpdk.mbufs, 32767);
    assert_eq!(config.dpdk.idle, IdleMode::Poll);
    assert!(!config.dpdk.share_crypto);
}

#[test]
fn partial_checksums_default_by_driver() {
    let config = parse_ok(MINIMAL);
    assert_eq!(
        config.ports.inside.partial_checksums,
        PartialChecksums::Auto
    );
    assert!(config.ports.inside.completes_checksums());
    let yaml = minimal_with(
        "device: \"net_af_xdp1,iface=eth2\"",
        "device: \"0000:3b:00.1\"\n    partial_checksums: auto",
    );
    let yaml = yaml.replace("lcores:", "eal_args: []\n  lcores:");
    let config = parse_ok(&yaml);
    assert!(!config.ports.inside.completes_checksums(), "a PCI NIC");
    for (driver, host) in [
        ("net_af_packet0,iface=eth2", true),
        ("net_tap0,iface=t0", true),
        ("net_virtio_user0,path=/dev/vhost-net", true),
        ("net_ring0", false),
        ("net_memif0", false),
    ] {
        let yaml = minimal_with("net_af_xdp1,iface=eth2", driver);
        assert_eq!(
            parse_ok(&yaml).ports.inside.completes_checksums(),
            host,
            "{driver}"
        );
    }
    let yaml = minimal_with(
        "device: \"net_af_xdp1,iface=eth2\"",
        "device: \"net_af_xdp1,iface=eth2\"\n    partial_checksums: pass",
    );
    assert!(!parse_ok(&yaml).ports.inside.completes_checksums());
    let yaml = minimal_with(
        "device: \"net_af_xdp1,iface=eth2\"",
        "device: \"net_ring0\"\n    partial_checksums: complete",
    );
    assert!(parse_ok(&yaml).ports.inside.completes_checksums());
    assert_error(
        &minimal_with(
            "device: \"net_af_xdp1,iface=eth2\"",
            "device: \"net_af_xdp1,iface=eth2\"\n    partial_checksums: yes",
        ),
        "ports.inside.partial_checksums",
        "expected one of `auto`, `complete`, `pass`",
    );

    let config = parse_ok(&minimal_with(
        "device: \"net_af_xdp0,iface=eth1\"",
        "device: 0000:3B:00.1",
    ));
    assert_eq!(
        config.ports.outside.device,
        DeviceSpec::Pci {
            address: "0000:3b:00.1".into()
        }
    );

    let config = parse_ok(&minimal_plus(
        "crypto: { backend: cryptodev, device: \"0000:3d:01.0\" }\n",
    ));
    assert_eq!(config.crypto.backend, CryptoBackend::Cryptodev);
    assert_eq!(config.crypto.device.as_deref(), Some("0000:3d:01.0"));

    let config = parse_ok(&minimal_with(
        "addresses: [\"198.19.0.2/24\"]",
        "addresses: [\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]\n    gateway: [\"2001:2:0:1::1\", \"198.19.0.1\"]",
    )
    .replacen(
        "allowed_ips: [\"198.18.1.0/24\"]",
        "allowed_ips: [\"198.18.1.0/24\"]\n    endpoint: \"[2001:2::1]:51820\"",
        1,
    ));
    assert_eq!(
        config.peers[0].endpoint,
        Some("[2001:2::1]:51820".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        config.ports.outside.gateway,
        vec![ip("2001:2:0:1::1"), ip("198.19.0.1")]
    );

    // Link-local subnets on both ports, a link-local router, and a route nested in a
    // connected subnet.
    let config = parse_ok(
        &minimal_with(
            "addresses: [\"198.19.0.2/24\"]",
            "addresses: [\"198.19.0.2/24\", \"fe80::2/64\"]\n    gateway: [\"fe80::1\"]",
        )
        .replacen(
            "addresses: [\"198.18.2.1/24\"]",
            "addresses: [\"198.18.2.1/24\", \"fe80::2/64\"]\n    routes: [{ prefix: \"198.18.2.128/25\", via: \"198.18.2.254\" }]",
            1,
        ),
    );
    assert_eq!(config.ports.outside.gateway, vec![ip("fe80::1")]);
    assert_eq!(
        config.ports.inside.routes[0].prefix,
        prefix("198.18.2.128/25")
    );

    // A /31 and a /32 have no network or broadcast address to refuse.
    parse_ok(&minimal_with("198.18.2.1/24", "198.18.2.0/31"));
    parse_ok(&minimal_with("198.18.2.1/24", "198.18.2.255/32"));

    // The largest inner MTU that fits a 9000-byte packet with IPv4 outside.
    let config = parse_ok(&minimal_plus("").replacen(
        "private_key: \"GATEWAY_PRIVATE\"",
        "private_key: \"GATEWAY_PRIVATE\"\n  mtu: 8940\n  listen_port: 65535",
        1,
    ));
    assert_eq!(config.wireguard.mtu, 8940);
    assert_eq!(config.wireguard.listen_port, 65535);
}

#[test]
fn allowed_ips_are_normalised_and_may_nest() {
    let config = parse_ok(&minimal_plus(
        "  - public_key: \"PEER2_PUBLIC\"\n    allowed_ips: [\"0.0.0.0/0\", \"::/0\"]\n\
         \x20 - public_key: \"PEER3_PUBLIC\"\n    allowed_ips: [\"198.18.1.7/32\", \"198.18.3.9/24\"]\n",
    ));
    assert_eq!(config.peers.len(), 3);
    assert_eq!(
        config.peers[1].allowed_ips,
        vec![prefix("0.0.0.0/0"), prefix("::/0")]
    );
    // Inside peers[0]'s 198.18.1.0/24, and host bits cleared on the /24.
    assert_eq!(
        config.peers[2].allowed_ips,
        vec![prefix("198.18.1.7/32"), prefix("198.18.3.0/24")]
    );
    assert_eq!(config.peers[2].allowed_ips[1].to_string(), "198.18.3.0/24");
}

#[test]
fn example_files_parse() {
    let dir = ScratchDir::new("examples");
    dir.write("private.key", &format!("{GATEWAY_PRIVATE}\n"));
    dir.write("branch1.psk", &format!("{PSK}\n"));

    let gateway = parse(include_str!("../../../conf/gateway.yaml"), &dir.0)
        .unwrap_or_else(|err| panic!("conf/gateway.yaml: {err}"));
    assert_eq!(
        gateway.wireguard.private_key.as_bytes(),
        &key(GATEWAY_PRIVATE)
    );
    assert!(gateway.peers.len() >= 2);
    assert!(gateway.control_port.is_some());
    assert!(gateway.metrics.is_some());
    assert!(gateway.uapi.is_some());

    for (name, text) in [
        ("gw-a", include_str!("../../../conf/cluster/gw-a/wgdp.yaml")),
        ("gw-b", include_str!("../../../conf/cluster/gw-b/wgdp.yaml")),
    ] {
        let text = text.replace("/etc/wgdp/private.key", "private.key");
        let gateway = parse(&text, &dir.0)
            .unwrap_or_else(|err| panic!("conf/cluster/{name}/wgdp.yaml: {err}"));
        let export = gateway.control_port.unwrap().export.unwrap();
        assert_eq!(export.table, 200);
        assert_eq!(export.announce, vec![ip("198.19.0.1")]);
        assert_eq!(gateway.ports.outside.addresses[0].addr, ip("198.19.0.1"));
    }

    let minimal = parse(include_str!("../../../conf/minimal.yaml"), Path::new("."))
        .unwrap_or_else(|err| panic!("conf/minimal.yaml: {err}"));
    assert!(minimal.control_port.is_none());
}

#[test]
fn key_files_are_read_relative_to_the_config() {
    let dir = ScratchDir::new("keyfiles");
    dir.write("private.key", &format!("  {GATEWAY_PRIVATE}\n\n"));
    let psk_path = dir.write("peer.psk", PSK);
    let yaml = minimal_with(
        "private_key: \"GATEWAY_PRIVATE\"",
        "private_key_file: private.key",
    )
    .replacen(
        "allowed_ips:",
        &format!(
            "preshared_key_file: {}\n    allowed_ips:",
            psk_path.display()
        ),
        1,
    );
    let config = parse(&with_keys(&yaml), &dir.0).unwrap();
    assert_eq!(
        config.wireguard.private_key.as_bytes(),
        &key(GATEWAY_PRIVATE)
    );
    assert_eq!(
        config.peers[0].preshared_key.as_ref().unwrap().as_bytes(),
        &key(PSK)
    );

    // load() takes the directory of the file it reads.
    let config_path = dir.write("gateway.yaml", &with_keys(&yaml));
    let config = load(&config_path).unwrap();
    assert_eq!(
        config.wireguard.private_key.as_bytes(),
        &key(GATEWAY_PRIVATE)
    );
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = ScratchDir::new("badkeys");
    dir.write("empty.key", "\n");
    dir.write("short.key", "abcd\n");
    let yaml = |file: &str| {
        with_keys(&minimal_with(
            "private_key: \"GATEWAY_PRIVATE\"",
            &format!("private_key_file: {file}"),
        ))
    };
    let cases = [
        ("missing.key", "missing.key: No such file or directory"),
        ("empty.key", "empty.key: the file is empty"),
        ("short.key", "short.key: 4 characters where a key has 44"),
        ("\"\"", "is empty"),
    ];
    for (file, reason) in cases {
        let err = parse(&yaml(file), &dir.0).unwrap_err();
        assert_eq!(err.path, "wireguard.private_key_file", "{err}");
        assert!(err.reason.contains(reason), "{err}");
    }
    let err = parse(&yaml("missing.key"), &dir.0).unwrap_err();
    assert!(
        err.reason
            .starts_with(&dir.0.join("missing.key").display().to_string()),
        "the resolved path is named: {err}"
    );
}

#[test]
fn file_errors() {
    let missing = Path::new("/nonexistent-wgdp-dir/gateway.yaml");
    let err = load(missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        "config error: /nonexistent-wgdp-dir/gateway.yaml: No such file or directory"
    );

    let dir = ScratchDir::new("files");
    let bad = dir.write("bad.yaml", "dpdk: [\n");
    let err = load(&bad).unwrap_err();
    assert_eq!(err.path, bad.display().to_string());
    assert!(err.reason.starts_with("not valid YAML: "), "{err}");
    assert!(err.reason.contains("line 2"), "{err}");

    let empty = dir.write("empty.yaml", "# nothing yet\n");
    let err = load(&empty).unwrap_err();
    assert_eq!(err.path, empty.display().to_string());
    assert_eq!(err.reason, "the configuration is empty");

    let err = load(&dir.0).unwrap_err();
    assert_eq!(err.path, dir.0.display().to_string());
}

#[test]
fn yaml_and_structure_errors() {
    let err = parse_err("dpdk: [\n");
    assert_eq!(err.path, "");
    assert!(err.reason.starts_with("not valid YAML"), "{err}");
    assert!(err.to_string().starts_with("config error: not valid YAML"));

    let err = parse_err(&minimal_with(
        "workers: [1] }",
        "workers: [1], control: 2 }",
    ));
    assert!(err.reason.contains("duplicate entry"), "{err}");

    assert_error("- dpdk\n", "", "expected a mapping with keys dpdk, ports");
    assert_error(
        &minimal_plus("dpkd: {}\n"),
        "dpkd",
        "unknown key (expected one of",
    );
    assert_error(
        &minimal_with("allowed_ips:", "allowd_ips:"),
        "peers[0].allowd_ips",
        "unknown key",
    );
    assert_error(
        &minimal_with(
            "addresses: [\"198.19.0.2/24\"]",
            "adresses: [\"198.19.0.2/24\"]",
        ),
        "ports.outside.adresses",
        "unknown key",
    );
    assert_error(
        &minimal_with(
            "lcores: { control: 0, workers: [1] }",
            "lcores: { control: 0 }",
        ),
        "dpdk.lcores.workers",
        "is required",
    );
    // An empty mapping key reads as an empty mapping.
    assert_error(
        &minimal_with("lcores: { control: 0, workers: [1] }", "lcores:"),
        "dpdk.lcores.control",
        "is required",
    );
    assert_error(
        &minimal_with("lcores: { control: 0, workers: [1] }", "lcores: [0, 1]"),
        "dpdk.lcores",
        "invalid type: sequence, expected a mapping with keys control, workers and cpus",
    );
    assert_error(
        &minimal_with("workers: [1]", "workers:"),
        "dpdk.lcores.workers",
        "lists no lcore",
    );
    assert_error(
        &minimal_plus("control_port:\n  tap:\n"),
        "control_port.tap",
        "has no value, expected a string",
    );
    assert_error(
        &minimal_with("control: 0", "control: zero"),
        "dpdk.lcores.control",
        "invalid type: string \"zero\", expected an integer",
    );
    assert_error(
        &minimal_plus("metrics: { listen: \"127.0.0.1:9586\", peer_series: 100001 }\n"),
        "metrics.peer_series",
        "must be between 0 and 100000",
    );
    assert_eq!(
        parse_ok(&minimal_plus(
            "metrics: { listen: \"127.0.0.1:9586\", peer_series: 0 }\n"
        ))
        .metrics
        .map(|m| m.peer_series),
        Some(0)
    );
    assert_error(
        &minimal_plus("crypto: { backend: quantum }\n"),
        "crypto.backend",
        "unknown variant `quantum`",
    );
    assert_error(
        &minimal_plus("metrics: { listen: \"127.0.0.1:9586\", path: /m }\n"),
        "metrics.path",
        "unknown key (expected `listen` or `peer_series`)",
    );
    assert_error(
        &minimal_with(
            "allowed_ips: [\"198.18.1.0/24\"]",
            "allowed_ips: [\"198.18.1.0/24\"]\n    7: x",
        ),
        "peers[0].?",
        "",
    );
}

#[test]
fn dpdk_errors() {
    let lcores = "lcores: { control: 0, workers: [1] }";
    assert_error(
        &minimal_with(lcores, "lcores: { control: 0, workers: [1, 2, 1] }"),
        "dpdk.lcores.workers[2]",
        "lcore 1 is listed twice (also workers[0])",
    );
    assert_error(
        &minimal_with(lcores, "lcores: { control: 0, workers: [] }"),
        "dpdk.lcores.workers",
        "give at least one worker",
    );
    assert_error(
        &minimal_with(lcores, "lcores: { control: 2, workers: [1, 2] }"),
        "dpdk.lcores.workers[1]",
        "lcore 2 is the control lcore",
    );
    assert_error(
        &minimal_with(lcores, "lcores: { control: -1, workers: [1] }"),
        "dpdk.lcores.control",
        "must be between 0 and 127, got -1",
    );
    assert_error(
        &minimal_with(lcores, "lcores: { control: 0, workers: [128] }"),
        "dpdk.lcores.workers[0]",
        "must be between 0 and 127, got 128",
    );
    for burst in ["0", "257"] {
        assert_error(
            &minimal_with(lcores, &format!("{lcores}\n  burst: {burst}")),
            "dpdk.burst",
            &format!("must be between 1 and 256, got {burst}"),
        );
    }
    assert_error(
        &minimal_with(lcores, &format!("{lcores}\n  mbufs: 100")),
        "dpdk.mbufs",
        "must be between 1023 and",
    );
    assert_error(
        &minimal_with(lcores, &format!("{lcores}\n  idle: sleep")),
        "dpdk.idle",
        "expected `adaptive` or `poll`",
    );
    assert_error(
        &minimal_with(lcores, &format!("{lcores}\n  share_crypto: \"yes\"")),
        "dpdk.share_crypto",
        "expected a boolean",
    );
    assert_error(
        &minimal_with(lcores, &format!("{lcores}\n  handshake_threads: 65")),
        "dpdk.handshake_threads",
        "65",
    );
    for arg in ["-l", "-l0-3", "--lcores", "--main-lcore=0", "-c"] {
        assert_error(
            &minimal_with(
                lcores,
                &format!("{lcores}\n  eal_args: [\"--no-huge\", \"{arg}\"]"),
            ),
            "dpdk.eal_args[1]",
            "is set by wgdp from dpdk.lcores",
        );
    }
    assert_error(
        &minimal_with(lcores, &format!("{lcores}\n  eal_args: [\"--no-pci\"]")).replacen(
            "\"net_af_xdp1,iface=eth2\"",
            "\"0000:3b:00.0\"",
            1,
        ),
        "dpdk.eal_args[0]",
        "--no-pci hides ports.inside.device (0000:3b:00.0)",
    );
    assert_error(
        &minimal_plus("crypto: { backend: cryptodev, device: \"0000:3d:01.0\" }\n").replacen(
            lcores,
            &format!("{lcores}\n  eal_args: [\"--no-pci\"]"),
            1,
        ),
        "dpdk.eal_args[0]",
        "--no-pci hides crypto.device",
    );
}

#[test]
fn port_errors() {
    let outside_device = "device: \"net_af_xdp0,iface=eth1\"";
    assert_error(
        &minimal_with(outside_device, "device: \"eth1\""),
        "ports.outside.device",
        "neither a DPDK network vdev",
    );
    assert_error(
        &minimal_with(outside_device, "device: \"0000:3b:00.0,foo=1\""),
        "ports.outside.device",
        "a PCI address takes no arguments here",
    );
    assert_error(
        &minimal_with("\"net_af_xdp1,iface=eth2\"", "\"net_af_xdp0,iface=eth2\""),
        "ports.inside.device",
        "net_af_xdp0 is already ports.outside.device",
    );
    assert_error(
        &minimal_with("198.19.0.2/24", "198.19.0.2"),
        "ports.outside.addresses[0]",
        "\"198.19.0.2\" has no prefix length (write 198.19.0.2/32)",
    );
    assert_error(
        &minimal_with("\"198.19.0.2/24\"", "\"198.19.0.2/24\", \"198.19.0.2/25\""),
        "ports.outside.addresses[1]",
        "198.19.0.2 is listed twice",
    );
    assert_error(
        &minimal_with("addresses: [\"198.19.0.2/24\"]", "addresses: []"),
        "ports.outside.addresses",
        "lists no address",
    );
    for (bad, reason) in [
        ("198.19.0.0/24", "network address"),
        ("198.19.0.255/24", "broadcast address"),
        ("0.0.0.0/0", "not usable"),
        ("127.0.0.1/8", "not usable"),
        ("ff02::1/64", "not usable"),
        ("198.19.0.2/33", "too long for IPv4"),
    ] {
        assert_error(
            &minimal_with("198.19.0.2/24", bad),
            "ports.outside.addresses[0]",
            reason,
        );
    }
    assert_error(
        &minimal_with("198.18.2.1/24", "198.19.0.3/16"),
        "ports.inside.addresses[0]",
        "subnet 198.19.0.0/16 overlaps 198.19.0.0/24 of ports.outside.addresses[0]",
    );

    let outside_addrs = "addresses: [\"198.19.0.2/24\"]";
    let with_gateway = |gateway: &str| {
        minimal_with(
            outside_addrs,
            &format!("{outside_addrs}\n    gateway: [{gateway}]"),
        )
    };
    assert_error(
        &with_gateway("\"198.19.1.254\""),
        "ports.outside.gateway[0]",
        "198.19.1.254 is not in a connected subnet of ports.outside (198.19.0.0/24)",
    );
    assert_error(
        &with_gateway("\"198.19.0.2\""),
        "ports.outside.gateway[0]",
        "this port's own address",
    );
    assert_error(
        &with_gateway("\"198.19.0.254\", \"198.19.0.253\""),
        "ports.outside.gateway[1]",
        "a second IPv4 gateway",
    );
    assert_error(
        &with_gateway("\"gw.example\""),
        "ports.outside.gateway[0]",
        "is not an IP address",
    );
    assert_error(
        &with_gateway("\"198.19.0.254\"").replacen(
            "addresses: [\"198.18.2.1/24\"]",
            "addresses: [\"198.18.2.1/24\"]\n    gateway: [\"198.18.2.254\"]",
            1,
        ),
        "ports.inside.gateway[0]",
        "a default IPv4 route is already given by ports.outside.gateway[0]",
    );

    let inside_addrs = "addresses: [\"198.18.2.1/24\"]";
    let with_route = |route: &str| {
        minimal_with(
            inside_addrs,
            &format!("{inside_addrs}\n    routes:\n      - {route}"),
        )
    };
    assert_error(
        &with_route("{ prefix: \"198.18.200.0/24\", via: \"198.18.3.254\" }"),
        "ports.inside.routes[0].via",
        "not in a connected subnet of ports.inside",
    );
    assert_error(
        &with_route("{ prefix: \"198.18.200.0\", via: \"198.18.2.254\" }"),
        "ports.inside.routes[0].prefix",
        "has no prefix length",
    );
    assert_error(
        &with_route("{ prefix: \"198.18.2.0/24\", via: \"198.18.2.254\" }"),
        "ports.inside.routes[0].prefix",
        "198.18.2.0/24 is already given by ports.inside.addresses[0]",
    );
    assert_error(
        &with_route("{ prefix: \"198.18.200.0/24\", via: \"198.18.2.254\" }\n      - { prefix: \"198.18.200.9/24\", via: \"198.18.2.253\" }"),
        "ports.inside.routes[1].prefix",
        "198.18.200.0/24 is already given by ports.inside.routes[0].prefix",
    );
    assert_error(
        &with_route("{ prefix: \"198.18.200.0/24\" }"),
        "ports.inside.routes[0].via",
        "is required",
    );
    assert_error(
        &with_route("{ prefix: \"2001:db8::/48\", via: \"198.18.2.254\" }"),
        "ports.inside.routes[0].via",
        "198.18.2.254 is IPv4 but the prefix 2001:db8::/48 is IPv6",
    );

    for queues in ["0", "1025"] {
        assert_error(
            &minimal_with(
                outside_addrs,
                &format!("{outside_addrs}\n    queues: {queues}"),
            ),
            "ports.outside.queues",
            "must be between 1 and 1024",
        );
    }
}

#[test]
fn wireguard_errors() {
    let private = "private_key: \"GATEWAY_PRIVATE\"";
    // Rekey-After-Time may only be shortened, and not below a few handshakes' time.
    for bad in ["5", "121"] {
        assert_error(
            &minimal_with(private, &format!("{private}\n  rekey_after_time: {bad}")),
            "wireguard.rekey_after_time",
            "must be between 10 and 120",
        );
    }
    assert_error(
        &minimal_with(private, "listen_port: 51820"),
        "wireguard.private_key",
        "is required (or give private_key_file)",
    );
    assert_error(
        &minimal_with(
            private,
            &format!("{private}\n  private_key_file: /etc/wgdp/private.key"),
        ),
        "wireguard.private_key_file",
        "give either private_key or private_key_file, not both",
    );
    assert_error(
        &minimal_with(
            private,
            "private_key: \"2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEU\"",
        ),
        "wireguard.private_key",
        "42 characters where a key has 44",
    );
    // The error never repeats the (secret) text.
    let err = parse_err(&minimal_with(
        private,
        "private_key: \"2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdeb!Uo=\"",
    ));
    assert!(!err.to_string().contains("2AE5ZYOX"), "{err}");
    assert!(err.reason.contains("not valid base64"), "{err}");

    for port in ["0", "65536", "-1"] {
        assert_error(
            &minimal_with(private, &format!("{private}\n  listen_port: {port}")),
            "wireguard.listen_port",
            "must be between 1 and 65535",
        );
    }

    let mtu = |value: &str| minimal_with(private, &format!("{private}\n  mtu: {value}"));
    assert_error(&mtu("500"), "wireguard.mtu", "is below 576");
    assert_error(&mtu("8941"), "wireguard.mtu", "at most 8940");
    parse_ok(&mtu("1000"));
    let ipv6_inside = mtu("1000").replacen(
        "\"198.18.2.1/24\"",
        "\"198.18.2.1/24\", \"2001:2:0:2::1/64\"",
        1,
    );
    assert_error(
        &ipv6_inside,
        "wireguard.mtu",
        "1000 is below 1280, the least IPv6 allows (RFC 8200), and IPv6 is carried (ports.inside.addresses[1])",
    );
    assert_error(
        &mtu("1279").replacen("\"198.18.1.0/24\"", "\"2001:2:1::/48\"", 1),
        "wireguard.mtu",
        "IPv6 is carried (peers[0].allowed_ips[0])",
    );
    let ipv6_outside = mtu("8921").replacen(
        "\"198.19.0.2/24\"",
        "\"198.19.0.2/24\", \"2001:2:0:1::2/64\"",
        1,
    );
    assert_error(&ipv6_outside, "wireguard.mtu", "mtu + 80 bytes");
}

#[test]
fn peer_errors() {
    let peer2 = |allowed: &str| {
        minimal_plus(&format!(
            "  - public_key: \"PEER2_PUBLIC\"\n    allowed_ips: [{allowed}]\n"
        ))
    };
    assert_error(
        &peer2("\"198.18.1.7/24\""),
        "peers[1].allowed_ips[0]",
        "198.18.1.7/24 (network 198.18.1.0/24) is already an allowed IP of peers[0] (allowed_ips[0])",
    );
    assert_error(
        &peer2("\"198.18.7.0/24\", \"198.18.7.0/24\""),
        "peers[1].allowed_ips[1]",
        "198.18.7.0/24 is listed twice (also allowed_ips[0])",
    );
    assert_error(
        &peer2("\"198.18.7.0/24\"").replacen("PEER2_PUBLIC", "PEER1_PUBLIC", 1),
        "peers[1].public_key",
        "is also the key of peers[0]",
    );
    assert_error(
        &peer2("\"198.18.7.0/24\"").replacen("PEER2_PUBLIC", "GATEWAY_PUBLIC", 1),
        "peers[1].public_key",
        "is the gateway's own public key",
    );
    assert_error(
        &peer2("\"2001:2:1::/48\", \"2001:2:2::1\""),
        "peers[1].allowed_ips[1]",
        "\"2001:2:2::1\" has no prefix length (write 2001:2:2::1/128)",
    );

    // The exact line of the configuration contract.
    let three = minimal_plus(
        "  - public_key: \"PEER2_PUBLIC\"\n    allowed_ips: [\"198.18.7.0/24\"]\n\
         \x20 - public_key: \"PEER3_PUBLIC\"\n    allowed_ips: [\"198.18.1.0\"]\n",
    );
    assert_eq!(
        parse_err(&three).to_string(),
        "config error: peers[2].allowed_ips[0]: \"198.18.1.0\" has no prefix length \
         (write 198.18.1.0/32)"
    );

    let public = "public_key: \"PEER1_PUBLIC\"";
    assert_error(
        &minimal_with(
            public,
            "public_key: \"y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEF\"",
        ),
        "peers[0].public_key",
        "42 characters where a key has 44",
    );
    assert_error(
        &minimal_with(
            public,
            "public_key: \"y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEF=k\"",
        ),
        "peers[0].public_key",
        "not valid base64",
    );
    let with = |line: &str| minimal_with(public, &format!("{public}\n    {line}"));
    assert_error(
        &with("preshared_key: \"PSK\"\n    preshared_key_file: peer.psk"),
        "peers[0].preshared_key_file",
        "give either preshared_key or preshared_key_file, not both",
    );
    assert_error(
        &with("preshared_key: \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\""),
        "peers[0].preshared_key",
        "all zeros",
    );
    assert_error(
        &with("preshared_key_file: no-such.psk"),
        "peers[0].preshared_key_file",
        "no-such.psk: No such file or directory",
    );
    for (endpoint, reason) in [
        ("vpn.example.net:51820", "host names are not resolved"),
        ("198.19.0.1", "has no port (write 198.19.0.1:51820)"),
        ("2001:2::1", "has no port (write [2001:2::1]:51820)"),
        ("198.19.0.1:0", "has port 0"),
        ("198.19.0.1:65536", "is not IP:port"),
        ("0.0.0.0:51820", "not a peer's unicast address"),
        ("255.255.255.255:51820", "not a peer's unicast address"),
        (
            "[2001:2::1]:51820",
            "is IPv6 but ports.outside has no IPv6 address",
        ),
    ] {
        assert_error(
            &with(&format!("endpoint: \"{endpoint}\"")),
            "peers[0].endpoint",
            reason,
        );
    }
    for seconds in ["0", "65536"] {
        assert_error(
            &with(&format!("persistent_keepalive: {seconds}")),
            "peers[0].persistent_keepalive",
            "must be between 1 and 65535",
        );
    }
    assert_error(
        &with("persistent_keepalive: 0"),
        "peers[0].persistent_keepalive",
        "leave the key out",
    );
}

#[test]
fn section_errors() {
    assert_error(
        &minimal_plus("crypto: { backend: cryptodev }\n"),
        "crypto.device",
        "is required with backend: cryptodev",
    );
    assert_error(
        &minimal_plus("crypto: { backend: cryptodev, device: net_null0 }\n"),
        "crypto.device",
        "neither a DPDK crypto vdev",
    );
    assert_error(
        &minimal_plus("crypto: { device: \"crypto aesni\" }\n"),
        "crypto.device",
        "white space",
    );
    assert_error(
        &minimal_plus("control_port: { tap: wgdp-control-port0 }\n"),
        "control_port.tap",
        "has 18 characters; an interface name has at most 15",
    );
    assert_error(
        &minimal_plus("control_port: {}\n"),
        "control_port.tap",
        "is required",
    );
    for (name, reason) in [
        ("../../etc/x", "contains '/'"),
        ("\"\"", "is empty"),
        ("\"wg 0\"", "contains ' '"),
    ] {
        assert_error(
            &minimal_plus(&format!("uapi: {{ name: {name} }}\n")),
            "uapi.name",
            reason,
        );
    }
    for (listen, reason) in [
        ("localhost:9586", "host names are not resolved"),
        ("127.0.0.1", "has no port (write 127.0.0.1:9586)"),
        ("127.0.0.1:0", "has port 0"),
        ("9586", "is not IP:port"),
    ] {
        assert_error(
            &minimal_plus(&format!("metrics: {{ listen: \"{listen}\" }}\n")),
            "metrics.listen",
            reason,
        );
    }
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let config = parse_ok(SCHEMA_EXAMPLE);
    let debug = format!("{config:?}");
    assert!(debug.contains("Key(<redacted>)"));
    assert!(!debug.contains(&format!("{:?}", key(GATEWAY_PRIVATE))));
    assert!(!debug.contains(&format!("{:?}", key(PSK))));
}

#[test]
fn outer_dscp_is_zero_unless_configured() {
    use dataplane::ecn::OuterDscp;
    let private = "private_key: \"GATEWAY_PRIVATE\"";
    let dscp = |value: &str| minimal_with(private, &format!("{private}\n  outer_dscp: {value}"));
    assert_eq!(parse_ok(MINIMAL).wireguard.outer_dscp, OuterDscp::Fixed(0));
    assert_eq!(
        parse_ok(&dscp("46")).wireguard.outer_dscp,
        OuterDscp::Fixed(46)
    );
    assert_eq!(
        parse_ok(&dscp("inner")).wireguard.outer_dscp,
        OuterDscp::Inner
    );
    assert_error(&dscp("64"), "wireguard.outer_dscp", "between 0 and 63");
    assert_error(&dscp("-1"), "wireguard.outer_dscp", "between 0 and 63");
    assert_error(
        &dscp("outer"),
        "wireguard.outer_dscp",
        "must be a DSCP from 0 to 63 or \"inner\", got \"outer\"",
    );
}

#[test]
fn drivers_that_forget_the_mbufs_of_their_rings() {
    for (driver, forgets) in [
        ("net_af_xdp1,iface=eth2", true),
        (
            "net_memif0,role=client,socket=/run/m.sock,zero-copy=yes",
            true,
        ),
        (
            "net_memif0,role=client,socket=/run/m.sock,zero-copy=no",
            false,
        ),
        ("net_memif0,role=server", false),
        ("net_af_packet0,iface=eth2", false),
        ("0000:3b:00.1", false),
    ] {
        let yaml = minimal_with("net_af_xdp1,iface=eth2", driver);
        assert_eq!(
            parse_ok(&yaml).ports.inside.device.forgets_ring_mbufs(),
            forgets,
            "{driver}"
        );
    }
}

#[test]
fn the_pool_grows_with_the_workers() {
    let lcores = "lcores: { control: 0, workers: [1] }";
    assert_eq!(parse_ok(MINIMAL).dpdk.mbufs, DEFAULT_MBUFS);
    let three = "lcores: { control: 0, workers: [1, 2, 3] }";
    let config = parse_ok(&minimal_with(lcores, three));
    assert_eq!(
        config.dpdk.mbufs, 32767,
        "(3 + 1) x {MBUFS_PER_WORKER}, as 2^n - 1"
    );
    // One worker keeps the old floor; more are refused a pool they would empty.
    let config = parse_ok(&minimal_with(lcores, &format!("{lcores}\n  mbufs: 1023")));
    assert_eq!(config.dpdk.mbufs, 1023);
    assert_error(
        &minimal_with(lcores, &format!("{three}\n  mbufs: 8191")),
        "dpdk.mbufs",
        "8191 mbufs are fewer than 3 workers hold at once (19200",
    );
}

#[test]
fn lcores_may_share_cpus() {
    let lcores = "lcores: { control: 0, workers: [1] }";
    let config = parse_ok(&minimal_with(
        lcores,
        "lcores: { control: 0, workers: [1, 2, 3], cpus: { 2: 0, 3: 1 } }",
    ));
    assert_eq!(
        config.dpdk.cpus,
        std::collections::BTreeMap::from([(2, 0), (3, 1)])
    );
    let args = crate::gateway::eal_args(&config);
    let at = args.iter().position(|a| a == "--lcores").expect("--lcores");
    assert_eq!(args[at + 1], "0@0,1@1,2@0,3@1");
    assert!(!args.iter().any(|a| a == "-l"));
    assert_error(
        &minimal_with(
            lcores,
            "lcores: { control: 0, workers: [1], cpus: { 5: 0 } }",
        ),
        "dpdk.lcores.cpus.5",
        "lcore 5 is neither the control lcore nor a worker",
    );
}

/// `--check` refuses what start would: a file with more peers than the gateway holds
/// passed the check and then failed at start with `peers[16384]: no room` (when it held
/// 16384).
#[test]
fn more_peers_than_the_gateway_holds_are_refused() {
    let mut yaml = MINIMAL.replace(
        "peers:\n  - public_key: \"PEER1_PUBLIC\"\n    allowed_ips: [\"198.18.1.0/24\"]\n",
        "peers:\n",
    );
    assert!(yaml.ends_with("peers:\n"), "{yaml}");
    for _ in 0..=crate::gateway::MAX_PEERS {
        yaml.push_str("  - public_key: \"PEER1_PUBLIC\"\n");
    }
    let max = crate::gateway::MAX_PEERS;
    assert_error(
        &yaml,
        &format!("peers[{max}]"),
        &format!("{} peers are configured; wgdp holds at most {max}", max + 1),
    );
}

#[test]
fn control_port_export_is_read_and_checked() {
    let outside = "addresses: [\"198.19.0.2/24\"]";
    let yaml = |export: &str| {
        let text = minimal_plus(&format!(
            "control_port:\n  tap: wgdp0\n  export: {export}\n"
        ));
        assert!(text.contains(outside), "MINIMAL changed");
        text.replacen(
            outside,
            "addresses: [\"198.19.0.1/32\", \"198.19.0.2/24\", \"2001:2:0:1::2/64\"]",
            1,
        )
    };
    let config = parse_ok(&yaml(
        "{ table: 200, announce: [\"198.19.0.1\", \"2001:2:0:1::2\"] }",
    ));
    let export = config.control_port.unwrap().export.unwrap();
    assert_eq!(export.table, 200);
    assert_eq!(export.announce, vec![ip("198.19.0.1"), ip("2001:2:0:1::2")]);
    assert_eq!(export.stall_ms, DEFAULT_STALL_MS);
    let config = parse_ok(&yaml("{ table: 1, stall_ms: 250 }"));
    let export = config.control_port.unwrap().export.unwrap();
    assert!(export.announce.is_empty());
    assert_eq!(export.stall_ms, 250);
    assert!(parse_ok(&minimal_plus("control_port: { tap: wgdp0 }\n"))
        .control_port
        .unwrap()
        .export
        .is_none());

    assert_error(
        &yaml("{ table: 253 }"),
        "control_port.export.table",
        "must be between 1 and 252, got 253",
    );
    assert_error(
        &yaml("{ announce: [] }"),
        "control_port.export.table",
        "is required",
    );
    assert_error(
        &yaml("{ table: 200, announce: [\"198.18.2.1\"] }"),
        "control_port.export.announce[0]",
        "198.18.2.1 is not an address of ports.outside",
    );
    assert_error(
        &yaml("{ table: 200, announce: [\"198.19.0.1\", \"198.19.0.1\"] }"),
        "control_port.export.announce[1]",
        "listed twice",
    );
    assert_error(
        &yaml("{ table: 200, announce: [\"198.19.0.1/32\"] }"),
        "control_port.export.announce[0]",
        "is not an IP address",
    );
    assert_error(
        &yaml("{ table: 200, stall_ms: 5 }"),
        "control_port.export.stall_ms",
        "must be between 10 and 60000, got 5",
    );
    assert_error(
        &yaml("{ table: 200, tabel: 3 }"),
        "control_port.export.tabel",
        "unknown key",
    );
}
