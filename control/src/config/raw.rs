//! The YAML file exactly as written: one struct per mapping, every mapping closed to
//! unknown keys, values still text or plain integers. Turning text into addresses and
//! keys, and checking ranges and cross references, is `validate`'s job, so that every
//! such message is written once, in our words, with its key path.
//!
//! Integers are read as `i64` so that a negative or too large number reaches the range
//! check and gets "must be between 1 and 256, got 300" rather than serde's type error.

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::{CryptoBackend, IdleMode, PartialChecksums};

/// A list that may also be written as an empty key (`peers:` with every entry commented
/// out), which YAML reads as null.
fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Text that may be a secret key; wiped when dropped.
pub(super) struct Secret(pub Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(|text| Secret(Zeroizing::new(text)))
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys dpdk, ports, wireguard, peers, crypto, control_port, metrics, uapi"
)]
pub(super) struct RawConfig {
    pub dpdk: RawDpdk,
    pub ports: RawPorts,
    pub wireguard: RawWireguard,
    #[serde(default, deserialize_with = "list")]
    pub peers: Vec<RawPeer>,
    pub crypto: Option<RawCrypto>,
    pub control_port: Option<RawControlPort>,
    pub metrics: Option<RawMetrics>,
    pub uapi: Option<RawUapi>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys eal_args, lcores, burst, mbufs, idle, share_crypto, \
                 handshake_threads"
)]
pub(super) struct RawDpdk {
    #[serde(default, deserialize_with = "list")]
    pub eal_args: Vec<String>,
    pub lcores: RawLcores,
    pub burst: Option<i64>,
    pub mbufs: Option<i64>,
    pub idle: Option<IdleMode>,
    pub share_crypto: Option<bool>,
    pub handshake_threads: Option<i64>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys control, workers and cpus"
)]
pub(super) struct RawLcores {
    pub control: i64,
    pub workers: Vec<i64>,
    /// lcore -> CPU, for lcores not on the CPU of their own number.
    pub cpus: Option<std::collections::BTreeMap<i64, i64>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys outside and inside"
)]
pub(super) struct RawPorts {
    pub outside: RawPort,
    pub inside: RawPort,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys device, addresses, gateway, queues, routes, partial_checksums"
)]
pub(super) struct RawPort {
    pub device: String,
    pub addresses: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub gateway: Vec<String>,
    pub queues: Option<i64>,
    #[serde(default, deserialize_with = "list")]
    pub routes: Vec<RawRoute>,
    pub partial_checksums: Option<PartialChecksums>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with keys prefix and via")]
pub(super) struct RawRoute {
    pub prefix: String,
    pub via: String,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys private_key, private_key_file, listen_port, mtu, rekey_after_time, outer_dscp"
)]
pub(super) struct RawWireguard {
    pub private_key: Option<Secret>,
    pub private_key_file: Option<String>,
    pub listen_port: Option<i64>,
    pub mtu: Option<i64>,
    pub rekey_after_time: Option<i64>,
    pub outer_dscp: Option<RawDscp>,
}

/// `wireguard.outer_dscp`: a code point, or the word `inner`.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a DSCP from 0 to 63, or \"inner\"")]
pub(super) enum RawDscp {
    Code(i64),
    Word(String),
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys public_key, preshared_key, preshared_key_file, endpoint, allowed_ips, persistent_keepalive"
)]
pub(super) struct RawPeer {
    pub public_key: String,
    pub preshared_key: Option<Secret>,
    pub preshared_key_file: Option<String>,
    pub endpoint: Option<String>,
    #[serde(default, deserialize_with = "list")]
    pub allowed_ips: Vec<String>,
    pub persistent_keepalive: Option<i64>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys backend and device"
)]
pub(super) struct RawCrypto {
    pub backend: Option<CryptoBackend>,
    pub device: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with keys tap and export")]
pub(super) struct RawControlPort {
    pub tap: String,
    pub export: Option<RawExport>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys table, announce, stall_ms"
)]
pub(super) struct RawExport {
    pub table: i64,
    #[serde(default, deserialize_with = "list")]
    pub announce: Vec<String>,
    pub stall_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with keys listen, peer_series"
)]
pub(super) struct RawMetrics {
    pub listen: String,
    pub peer_series: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with key name")]
pub(super) struct RawUapi {
    pub name: String,
}
