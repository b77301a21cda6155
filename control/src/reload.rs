//! Live reconfiguration: what changes when the configuration file is read again.
//!
//! Contract: [`plan`] compares a newly loaded (and so already valid) configuration with
//! the one running and with the peers the control plane holds now (which `wg set` may
//! have changed since the file was last read), and says what to do. The peers are
//! synchronised to the file, like `wg syncconf`: peers missing from the file go, new ones
//! are added, changed ones are updated in place; unchanged peers are not touched, so
//! their sessions live on. Port addresses and routes, the listen port, the MTU and the
//! private key apply at once too. What DPDK set up at start (EAL, lcores, devices,
//! queues, the pool, the crypto backend) and the listeners (metrics, UAPI, control port)
//! keep their running values; the plan names those keys so that the operator is told
//! that they need a restart.

use crate::config::{Config, PeerConfig};
use crate::gateway::peer_spec;
use crate::plane::PeerSpec;
use std::collections::HashSet;

/// What a reload does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<PeerSpec>,
    /// Public keys of the peers to remove.
    pub remove: Vec<[u8; 32]>,
    pub update: Vec<PeerSpec>,
    /// The port tables (addresses, gateway, routes, listen port, MTU) changed.
    pub tables: bool,
    pub private_key: Option<[u8; 32]>,
    /// The new `wireguard.rekey_after_time`, in seconds, if it changed.
    pub rekey_after_time: Option<u16>,
    /// Keys whose new value only applies after a restart; they keep the running one.
    pub restart_needed: Vec<&'static str>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.update.is_empty()
            && !self.tables
            && self.private_key.is_none()
            && self.rekey_after_time.is_none()
    }
}

/// Finds the control plane's peer of a public key.
pub type FindPeer<'a> = Box<dyn Fn(&[u8; 32]) -> Option<&'a PeerSpec> + 'a>;

/// What the control plane holds now of the keys that `wg set` can change too: these
/// are compared with the file rather than with the configuration read last.
pub struct Live<'a> {
    /// Every peer, in the control plane's order (peer ids; those read from the file got
    /// them in the file's order).
    pub peers: Vec<&'a PeerSpec>,
    /// The peer with this public key, if the control plane holds it.
    pub find: FindPeer<'a>,
    pub listen_port: u16,
    pub private_key: &'a [u8; 32],
}

/// Whether the control plane's `have` is what the file's `want` says.
fn same(want: &PeerConfig, have: &PeerSpec) -> bool {
    want.public_key == have.public_key
        && want.preshared_key.as_ref().map(|k| k.as_bytes()) == have.preshared_key.as_ref()
        && want.endpoint == have.endpoint
        && want.persistent_keepalive == have.persistent_keepalive
        && want.allowed_ips.len() == have.allowed_ips.len()
        && want
            .allowed_ips
            .iter()
            .zip(&have.allowed_ips)
            .all(|(w, h)| (w.addr, w.len) == *h)
}

/// How far past a peer that is not where the file's order puts it the walk looks for it.
const RESYNC: usize = 8;

/// The plan to go from `running`, as `live` shows it now, to `new`.
///
/// Every peer of the file is compared with the live peer of its key, so that what `wg
/// set` changed is set back; nothing is built for the peers that stay as they are. The
/// live peers are walked alongside the file's, which they follow in order unless peers
/// were added or removed since, so that most are found without a lookup.
pub fn plan(running: &Config, live: Live<'_>, new: &Config) -> Plan {
    let mut p = Plan::default();
    // Live peers matched by a file peer: by position in the walk, or by lookup.
    let mut seen = vec![false; live.peers.len()];
    let mut found: HashSet<*const PeerSpec> = HashSet::new();
    let mut at = 0;
    for want in &new.peers {
        let have = match live.peers.get(at) {
            Some(s) if s.public_key == want.public_key => {
                seen[at] = true;
                at += 1;
                Some(*s)
            }
            _ => {
                let have = (live.find)(&want.public_key);
                if let Some(s) = have {
                    // Back in step past peers the file does not have (any more).
                    let ahead = live.peers[at.min(live.peers.len())..]
                        .iter()
                        .take(RESYNC)
                        .position(|l| std::ptr::eq(*l, s));
                    match ahead {
                        Some(d) => {
                            seen[at + d] = true;
                            at += d + 1;
                        }
                        None => {
                            found.insert(s as *const PeerSpec);
                        }
                    }
                }
                have
            }
        };
        match have {
            None => p.add.push(peer_spec(want)),
            Some(s) if !same(want, s) => p.update.push(peer_spec(want)),
            Some(_) => {}
        }
    }
    // Live peers the file does not have: added at run time, or gone from the file.
    for (i, s) in live.peers.iter().enumerate() {
        if !seen[i] && !found.contains(&(*s as *const PeerSpec)) {
            p.remove.push(s.public_key);
        }
    }

    let (o, n) = (&running.ports, &new.ports);
    p.tables = o.outside.addresses != n.outside.addresses
        || o.outside.gateway != n.outside.gateway
        || o.outside.routes != n.outside.routes
        || o.inside.addresses != n.inside.addresses
        || o.inside.gateway != n.inside.gateway
        || o.inside.routes != n.inside.routes
        || o.outside.partial_checksums != n.outside.partial_checksums
        || o.inside.partial_checksums != n.inside.partial_checksums
        || live.listen_port != new.wireguard.listen_port
        || running.wireguard.mtu != new.wireguard.mtu
        || running.wireguard.outer_dscp != new.wireguard.outer_dscp;
    if live.private_key != new.wireguard.private_key.as_bytes() {
        p.private_key = Some(*new.wireguard.private_key.as_bytes());
    }

    if running.wireguard.rekey_after_time != new.wireguard.rekey_after_time {
        p.rekey_after_time = Some(new.wireguard.rekey_after_time);
    }

    let fixed: [(&'static str, bool); 9] = [
        ("dpdk", running.dpdk != new.dpdk),
        ("ports.outside.device", o.outside.device != n.outside.device),
        ("ports.outside.queues", o.outside.queues != n.outside.queues),
        ("ports.inside.device", o.inside.device != n.inside.device),
        ("ports.inside.queues", o.inside.queues != n.inside.queues),
        ("crypto", running.crypto != new.crypto),
        ("control_port", running.control_port != new.control_port),
        ("metrics", running.metrics != new.metrics),
        ("uapi", running.uapi != new.uapi),
    ];
    // The TAP got its addresses and MTU at start.
    let tap_stale = new.control_port.is_some()
        && (o.outside.addresses != n.outside.addresses
            || o.inside.addresses != n.inside.addresses
            || running.wireguard.mtu != new.wireguard.mtu);
    p.restart_needed = fixed
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| *k)
        .collect();
    if tap_stale {
        p.restart_needed
            .push("control_port (its TAP keeps the addresses and MTU of the start)");
    }
    p
}

/// `new` with the keys that a reload cannot apply (see [`Plan::restart_needed`]) set
/// back to their running values: what runs after the reload.
pub fn applied(running: &Config, new: Config) -> Config {
    let mut c = new;
    c.dpdk = running.dpdk.clone();
    for (dst, src) in [
        (&mut c.ports.outside, &running.ports.outside),
        (&mut c.ports.inside, &running.ports.inside),
    ] {
        dst.device = src.device.clone();
        dst.queues = src.queues;
    }
    c.crypto = running.crypto.clone();
    c.control_port = running.control_port.clone();
    c.metrics = running.metrics.clone();
    c.uapi = running.uapi.clone();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::gateway::peer_specs;
    use std::path::Path;

    const K1: &str = "GIbOrd1XzNMoZxFFoINEBkYDFSizO3dhP+h36uo7JVU=";
    const P1: &str = "y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEFk=";
    const P2: &str = "k4aj9eWEUh1vI56xfQeyO8Y99/6iGvZcCNM3kCpzImM=";
    const P3: &str = "cFxGnHlpCgjjaybK0NGYzSsVu7GcXVMe/Xb4SDN5gXU=";

    fn config(extra_ports: &str, peers: &str, rest: &str) -> Config {
        let text = format!(
            "dpdk:\n  lcores: {{ control: 0, workers: [1] }}\n\
             ports:\n  outside:\n    device: net_ring0\n    addresses: [\"198.19.0.2/24\"]\n\
             {extra_ports}  inside:\n    device: net_ring1\n    addresses: [\"198.18.2.1/24\"]\n\
             wireguard:\n  private_key: \"{K1}\"\n{rest}peers:\n{peers}"
        );
        parse(&text, Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn peer(key: &str, net: &str) -> String {
        format!("  - public_key: \"{key}\"\n    allowed_ips: [\"{net}\"]\n")
    }

    fn specs(c: &Config) -> Vec<PeerSpec> {
        peer_specs(c)
    }

    /// The live state of a gateway running `c` with `peers`.
    fn live<'a>(c: &'a Config, peers: &'a [PeerSpec]) -> Live<'a> {
        Live {
            peers: peers.iter().collect(),
            find: Box::new(move |k| peers.iter().find(|s| &s.public_key == k)),
            listen_port: c.wireguard.listen_port,
            private_key: c.wireguard.private_key.as_bytes(),
        }
    }

    #[test]
    fn peers_are_synchronised_to_the_file() {
        let old = config(
            "",
            &(peer(P1, "198.18.1.0/24") + &peer(P2, "198.18.3.0/24")),
            "",
        );
        let new = config(
            "",
            &(peer(P1, "198.18.1.0/24") + &peer(P2, "198.18.4.0/24") + &peer(P3, "198.18.5.0/24")),
            "",
        );
        let running = specs(&old);
        let p = plan(&old, live(&old, &running), &new);
        assert_eq!(p.add.len(), 1);
        assert_eq!(p.add[0], specs(&new)[2]);
        assert_eq!(p.update, vec![specs(&new)[1].clone()]);
        assert!(p.remove.is_empty());
        assert!(!p.tables && p.private_key.is_none() && p.restart_needed.is_empty());

        // Peers added at run time (wg set) that the file does not have are removed.
        let p = plan(&new, live(&new, &specs(&new)), &old);
        assert_eq!(p.remove, vec![specs(&new)[2].public_key]);
        // The same file again changes nothing.
        assert!(plan(&old, live(&old, &running), &old).is_empty());
    }

    #[test]
    fn tables_key_and_restart_keys() {
        let old = config("", "", "");
        let new = config(
            "    routes: [{ prefix: \"198.18.200.0/24\", via: \"198.19.0.254\" }]\n",
            "",
            "  mtu: 1400\n",
        );
        let p = plan(&old, live(&old, &[]), &new);
        assert!(p.tables);
        assert!(p.restart_needed.is_empty());
        let mut moved = config("", "", "");
        moved.dpdk.burst = 32;
        moved.metrics = Some(crate::config::MetricsConfig {
            listen: "127.0.0.1:9586".parse().unwrap(),
            peer_series: 10,
        });
        let p = plan(&old, live(&old, &[]), &moved);
        assert_eq!(p.restart_needed, vec!["dpdk", "metrics"]);
        assert!(p.is_empty(), "nothing that applies live changed");
        let kept = applied(&old, moved.clone());
        assert_eq!(kept.dpdk, old.dpdk);
        assert_eq!(kept.metrics, None);
        let taken = applied(&old, new);
        assert_eq!(taken.wireguard.mtu, 1400);
        assert_eq!(taken.ports.outside.routes.len(), 1);
    }

    #[test]
    fn changes_at_run_time_are_set_back_wherever_the_peers_are() {
        let nets = ["198.18.1.0/24", "198.18.3.0/24", "198.18.4.0/24"];
        let file = config(
            "",
            &[P1, P2, P3]
                .iter()
                .zip(nets)
                .map(|(k, n)| peer(k, n))
                .collect::<String>(),
            "",
        );
        let wanted = specs(&file);
        // `wg set` changed P2's endpoint, added a peer, and the live order differs.
        let mut running = wanted.clone();
        running[1].endpoint = Some("198.19.0.9:51820".parse().unwrap());
        let extra = PeerSpec {
            public_key: [9; 32],
            preshared_key: None,
            endpoint: None,
            allowed_ips: vec![],
            persistent_keepalive: None,
        };
        running.insert(0, extra.clone());
        running.swap(2, 3);
        let p = plan(&file, live(&file, &running), &file);
        assert_eq!(p.update, vec![wanted[1].clone()]);
        assert_eq!(p.remove, vec![[9; 32]]);
        assert!(p.add.is_empty());
        // A peer removed at run time comes back; one gone from the file goes.
        let running = vec![wanted[0].clone(), wanted[2].clone(), extra];
        let p = plan(&file, live(&file, &running), &file);
        assert_eq!(p.add, vec![wanted[1].clone()]);
        assert_eq!(p.remove, vec![[9; 32]]);
        assert!(p.update.is_empty());
    }
}
