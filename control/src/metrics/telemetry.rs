//! The published snapshot as `/wgdp/...` commands on DPDK's telemetry socket, for
//! `dpdk-telemetry.py` (Debian package `dpdk-dev`) and other telemetry clients.
//!
//! | command | parameter | answer |
//! |---|---|---|
//! | `/wgdp/info` | | versions, snapshot time, counts, packet pools |
//! | `/wgdp/control` | | control-thread events, `drops/<reason>`, `handshake_errors/<reason>` |
//! | `/wgdp/peers` | first id (optional) | up to 512 peer ids, ascending |
//! | `/wgdp/peer` | id or base64 public key | one peer's traffic and handshakes |
//! | `/wgdp/workers` | | worker lcore labels |
//! | `/wgdp/worker` | lcore label | traffic, `drops/<stage>/<reason>`, `offload/<event>`, `punts/<reason>`, `stages/<stage>/{calls,vectors,packets,clocks}`, `tsc_hz` |
//! | `/wgdp/ports` | | `<port>/<rte_eth_stats field>` |
//!
//! Keys are flat, with `/` between levels, as in DPDK's own commands; names that hold
//! characters DPDK refuses in keys get `_` instead. The figures are those of the latest
//! snapshot, as on `/metrics`. Per-peer figures go through a list and one command per
//! peer because DPDK 22.11 writes at most 16 KiB per answer.
//!
//! Telemetry needs an EAL started without `--no-telemetry`; it works with `--in-memory`,
//! `--no-huge` and `--no-shconf` alike (the socket is in the runtime directory,
//! `/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2` for root).

use dpdk_sys::telemetry::{self, Command, Dict, Reply, MAX_ARRAY_ENTRIES};

use super::{Reader, Snapshot};

/// The registered commands; dropping this makes them answer `null`.
#[derive(Debug)]
pub struct TelemetryCommands {
    _commands: Vec<Command>,
}

type Answer = fn(&Snapshot, Option<&str>) -> Option<Reply>;

const COMMANDS: &[(&str, &str, Answer)] = &[
    (
        "/wgdp/info",
        "wgdp and DPDK versions, snapshot time, peer and worker counts, packet pools. No parameters.",
        info,
    ),
    (
        "/wgdp/control",
        "Control-thread counters and handshake errors by reason. No parameters.",
        control,
    ),
    (
        "/wgdp/peers",
        "Up to 512 peer ids, ascending. Parameters: int first id (optional).",
        peers,
    ),
    (
        "/wgdp/peer",
        "One peer's traffic and handshakes. Parameters: int peer id, or base64 public key.",
        peer,
    ),
    ("/wgdp/workers", "Worker lcore labels. No parameters.", workers),
    (
        "/wgdp/worker",
        "One worker's traffic, drops by stage and reason, punts. Parameters: string lcore label.",
        worker,
    ),
    (
        "/wgdp/ports",
        "DPDK counters of the outside and inside ports. No parameters.",
        ports,
    ),
];

/// Registers every `/wgdp/...` command, answered from `reader`'s latest snapshot.
pub fn register_telemetry(reader: &Reader) -> Result<TelemetryCommands, String> {
    let mut commands = Vec::with_capacity(COMMANDS.len());
    for &(name, help, answer) in COMMANDS {
        let reader = reader.clone();
        let command = telemetry::register(name, help, move |params| answer(&reader.load(), params))
            .map_err(|e| format!("DPDK telemetry: {e}"))?;
        commands.push(command);
    }
    Ok(TelemetryCommands {
        _commands: commands,
    })
}

pub(super) fn info(s: &Snapshot, _: Option<&str>) -> Option<Reply> {
    let mut d = Dict::new();
    d.add_string("version", env!("CARGO_PKG_VERSION"))
        .add_string("dpdk", s.dpdk_version.as_str())
        .add_u64("taken_at", unix_seconds(s))
        .add_u64("peers", s.peers_configured)
        .add_u64("peers_active", s.peers_active)
        .add_u64("workers", s.workers.len() as u64);
    for p in &s.mempools {
        let name = key(&p.name);
        d.add_u64(format!("mempool/{name}/capacity"), p.capacity)
            .add_u64(format!("mempool/{name}/in_use"), p.in_use);
    }
    Some(Reply::Dict(d))
}

pub(super) fn control(s: &Snapshot, _: Option<&str>) -> Option<Reply> {
    let mut d = Dict::new();
    for (name, &value) in &s.control {
        d.add_u64(key(name), value);
    }
    for (reason, &value) in &s.control_drops {
        d.add_u64(format!("drops/{}", key(reason)), value);
    }
    for (reason, &value) in &s.handshake_errors {
        d.add_u64(format!("handshake_errors/{}", key(reason)), value);
    }
    Some(Reply::Dict(d))
}

pub(super) fn peers(s: &Snapshot, params: Option<&str>) -> Option<Reply> {
    let first = match params {
        Some(p) => p.trim().parse::<u32>().ok()?,
        None => 0,
    };
    let mut ids: Vec<u64> = s
        .peers
        .iter()
        .filter(|p| p.id >= first)
        .map(|p| u64::from(p.id))
        .collect();
    ids.sort_unstable();
    ids.truncate(MAX_ARRAY_ENTRIES);
    Some(Reply::U64s(ids))
}

pub(super) fn peer(s: &Snapshot, params: Option<&str>) -> Option<Reply> {
    let wanted = params?.trim();
    let id = wanted.parse::<u32>().ok();
    let p = s
        .peers
        .iter()
        .find(|p| Some(p.id) == id || p.public_key == wanted)?;
    let mut d = Dict::new();
    d.add_u64("id", p.id.into())
        .add_string("public_key", p.public_key.as_str())
        .add_u64("rx_packets", p.rx_packets)
        .add_u64("tx_packets", p.tx_packets)
        .add_u64("rx_bytes", p.rx_bytes)
        .add_u64("tx_bytes", p.tx_bytes)
        .add_u64("latest_handshake", p.latest_handshake)
        .add_u64("handshakes", p.handshakes);
    Some(Reply::Dict(d))
}

pub(super) fn workers(s: &Snapshot, _: Option<&str>) -> Option<Reply> {
    Some(Reply::Strings(
        s.workers.iter().map(|w| w.lcore.clone()).collect(),
    ))
}

pub(super) fn worker(s: &Snapshot, params: Option<&str>) -> Option<Reply> {
    let wanted = params?.trim();
    let w = s.workers.iter().find(|w| w.lcore == wanted)?;
    let t = &w.traffic;
    let mut d = Dict::new();
    d.add_string("lcore", w.lcore.as_str());
    for (name, value) in [
        ("rx_outside", t.rx_outside),
        ("rx_inside", t.rx_inside),
        ("tx_outside", t.tx_outside),
        ("tx_inside", t.tx_inside),
        ("decrypted", t.decrypted),
        ("encrypted", t.encrypted),
        ("keepalives_rx", t.keepalives_rx),
        ("from_control", t.from_control),
        ("vectors", t.vectors),
        ("vector_packets", t.vector_packets),
        ("busy_polls", t.busy_polls),
        ("polls", t.polls),
    ] {
        d.add_u64(name, value);
    }
    for drop in &w.drops {
        d.add_u64(
            format!("drops/{}/{}", key(drop.stage), key(drop.reason)),
            drop.count,
        );
    }
    for o in &w.offload {
        d.add_u64(format!("offload/{}", key(o.event)), o.count);
    }
    for o in &w.spread {
        d.add_u64(format!("spread/{}", key(o.event)), o.count);
    }
    for st in &w.stages {
        let k = key(st.stage);
        d.add_u64(format!("stages/{k}/calls"), st.calls);
        d.add_u64(format!("stages/{k}/vectors"), st.vectors);
        d.add_u64(format!("stages/{k}/packets"), st.packets);
        d.add_u64(format!("stages/{k}/clocks"), st.clocks);
    }
    d.add_u64("tsc_hz", s.tsc_hz);
    for punt in &w.punts {
        d.add_u64(format!("punts/{}", key(punt.reason)), punt.count);
    }
    Some(Reply::Dict(d))
}

pub(super) fn ports(s: &Snapshot, _: Option<&str>) -> Option<Reply> {
    let mut d = Dict::new();
    for p in &s.ports {
        let name = key(&p.name);
        let st = &p.stats;
        for (field, value) in [
            ("ipackets", st.ipackets),
            ("opackets", st.opackets),
            ("ibytes", st.ibytes),
            ("obytes", st.obytes),
            ("imissed", st.imissed),
            ("ierrors", st.ierrors),
            ("oerrors", st.oerrors),
            ("rx_nombuf", st.rx_nombuf),
        ] {
            d.add_u64(format!("{name}/{field}"), value);
        }
    }
    Some(Reply::Dict(d))
}

fn unix_seconds(s: &Snapshot) -> u64 {
    s.taken_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `name` with every character DPDK refuses in a key (anything but ASCII letters,
/// digits, `_` and `/`) replaced by `_`.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '/' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
