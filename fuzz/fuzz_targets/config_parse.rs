//! The configuration parser on arbitrary text, with key files looked up in a scratch
//! directory that holds a valid key (`private.key`, `psk.key`), an empty one, a
//! malformed one and a subdirectory.
//!
//! An accepted configuration must hold every invariant `control::config` documents
//! (they are what the rest of the program relies on without checking again); a refusal
//! must name a reason. Texts that name key files outside the scratch directory through
//! a parent, device or process path are skipped: reading `/dev/zero` as a key file is
//! not a parser bug.

#![no_main]

use control::config::{self, Config, CryptoBackend, DeviceSpec};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `wg genkey` output; any 32 bytes in base64 would do.
const KEY: &str = "2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo=\n";

fn base_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One directory for every run: the files are always written the same.
        let dir = std::env::temp_dir().join("wgdp-fuzz-config");
        std::fs::create_dir_all(dir.join("subdir")).expect("scratch directory");
        for (name, text) in [
            ("private.key", KEY),
            ("psk.key", KEY),
            ("empty.key", ""),
            ("bad.key", "not base64 at all\n"),
        ] {
            std::fs::write(dir.join(name), text).expect("scratch key file");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("_file")
        && ["..", "/dev", "/proc", "/sys", "/run", "\\", "%"]
            .iter()
            .any(|bad| text.contains(bad))
    {
        return;
    }
    match config::parse(text, base_dir()) {
        Ok(cfg) => check(&cfg),
        Err(e) => assert!(!e.reason.is_empty(), "a refusal names its reason: {e:?}"),
    }
});

fn mask_ok(addr: IpAddr, len: u8) -> bool {
    match addr {
        IpAddr::V4(a) => {
            len <= 32 && u32::from(a) & u32::MAX.checked_shr(u32::from(len)).unwrap_or(0) == 0
        }
        IpAddr::V6(a) => {
            len <= 128 && u128::from(a) & u128::MAX.checked_shr(u32::from(len)).unwrap_or(0) == 0
        }
    }
}

fn check(cfg: &Config) {
    let d = &cfg.dpdk;
    assert!(!d.worker_lcores.is_empty(), "at least one worker");
    let workers: HashSet<_> = d.worker_lcores.iter().collect();
    assert_eq!(
        workers.len(),
        d.worker_lcores.len(),
        "no worker lcore twice"
    );
    assert!(
        !workers.contains(&d.control_lcore),
        "control lcore not a worker"
    );
    assert!((1..=config::DEFAULT_BURST).contains(&d.burst));
    for arg in &d.eal_args {
        let short = ["-l", "-c"]
            .iter()
            .any(|o| arg.starts_with(o) && !arg.starts_with("--"));
        let long = ["--lcores", "--main-lcore", "--master-lcore"]
            .iter()
            .any(|o| arg == o || arg.starts_with(&format!("{o}=")));
        assert!(!short && !long, "lcore option {arg:?} in eal_args");
    }

    for (name, port) in [
        ("outside", &cfg.ports.outside),
        ("inside", &cfg.ports.inside),
    ] {
        assert!(!port.addresses.is_empty(), "{name}: an address");
        let v4 = port.gateway.iter().filter(|g| g.is_ipv4()).count();
        assert!(
            v4 <= 1 && port.gateway.len() - v4 <= 1,
            "{name}: a gateway per family"
        );
        for hop in port
            .gateway
            .iter()
            .chain(port.routes.iter().map(|r| &r.via))
        {
            assert!(
                port.addresses.iter().any(|a| a.contains(*hop)),
                "{name}: next hop {hop} on a connected subnet"
            );
            assert!(
                !port.addresses.iter().any(|a| a.addr == *hop),
                "{name}: next hop {hop} is not our own address"
            );
        }
        for r in &port.routes {
            assert_eq!(
                r.prefix.addr.is_ipv4(),
                r.via.is_ipv4(),
                "{name}: route family"
            );
            assert!(mask_ok(r.prefix.addr, r.prefix.len));
        }
        if let DeviceSpec::Vdev { spec, name: vdev } = &port.device {
            assert!(spec.starts_with(vdev.as_str()));
            assert!(!vdev.contains(','));
        }
    }
    assert_ne!(
        cfg.ports.outside.device, cfg.ports.inside.device,
        "two devices"
    );

    assert!(cfg.wireguard.listen_port >= 1);
    let own_public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(
        *cfg.wireguard.private_key.as_bytes(),
    ))
    .to_bytes();
    let mut keys = HashSet::new();
    let mut networks: Vec<config::Prefix> = Vec::new();
    for p in &cfg.peers {
        assert_ne!(p.public_key, own_public, "a peer is not the gateway itself");
        assert!(keys.insert(p.public_key), "peer keys distinct");
        assert!(p.persistent_keepalive != Some(0));
        for a in &p.allowed_ips {
            assert!(
                mask_ok(a.addr, a.len),
                "allowed IP {}/{} masked",
                a.addr,
                a.len
            );
        }
        for a in p.allowed_ips.iter() {
            assert!(
                !networks.contains(a),
                "{}/{} claimed by two peers",
                a.addr,
                a.len
            );
        }
        networks.extend(p.allowed_ips.iter().copied());
    }
    if cfg.crypto.backend == CryptoBackend::Cryptodev {
        assert!(cfg.crypto.device.is_some(), "cryptodev names its device");
    }
    if let Some(c) = &cfg.control_port {
        assert!((1..=15).contains(&c.tap.len()));
    }
    if let Some(u) = &cfg.uapi {
        assert!((1..=15).contains(&u.name.len()));
        assert!(u
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_=+.-".contains(&b)));
    }
}
