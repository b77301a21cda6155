//! The running gateway: DPDK start-up from the configuration, the workers on their
//! lcores, the control loop on the main lcore, and an orderly stop.
//!
//! Start-up: EAL (with the configured lcores and one `--vdev` or `-a` per port device,
//! and `--no-pci` unless a PCI device is configured), one packet pool, both ports with
//! one RX/TX queue pair per worker, two rings per worker (to control, from control),
//! the tables and sessions shared with the workers. Stop (SIGINT/SIGTERM): workers leave
//! their loops, control drops everything it holds, rings and ports are closed and the
//! pool is freed last.

use crate::config::{Config, CryptoBackend, DeviceSpec, IdleMode, PortConfig as PortCfg};
use crate::metrics;
use crate::plane::host::HostPort;
use crate::plane::{ControlIo, ControlPlane, Now, PeerSpec};
use crate::reload;
use crate::uapi;
use dataplane::counters::WorkerCounters;
use dataplane::crypto::Backend;
use dataplane::mbuf::DpdkIo;
use dataplane::session::Sessions;
use dataplane::tables::{LocalAddr, NextHop, PortTables, Shared, Tables};
use dataplane::worker::{Idle, Worker};
use dpdk_sys::{CryptoDev, CryptoDevConfig, Eal, Mbuf, Mempool, Offloads, Port, PortConfig, Ring};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{error, info, warn};

/// Crypto sessions on a crypto device (the DPDK session pool's size).
const CRYPTO_SESSIONS: u32 = 65_535;
/// Peers a gateway can hold, configured or added at run time: 2^20, as the Linux
/// kernel's WireGuard (`MAX_PEERS_PER_DEVICE`, `drivers/net/wireguard/device.h`).
pub const MAX_PEERS: usize = 1 << 20;
/// Receiver-index slots: 2^22 (32 MiB of pointers), so that the three keypairs and the
/// handshake a peer may have at once fit for every peer with room to spare (random
/// indexes find a free slot quickly).
const INDEX_BITS: u32 = 22;
const RING_SIZE: u32 = 4096;
/// Packets control takes from each worker's ring per round.
const RING_BURST: usize = 256;
/// Data room of a packet buffer: DPDK's default (2048) plus its headroom.
const MBUF_ROOM: u16 = 2048 + 128;
/// How often a control loop too busy to sleep looks at the UAPI socket.
const UAPI_EVERY: u64 = 10_000_000;
/// Longest sleep of the control loop, whatever it waits for.
const MAX_SLEEP: u64 = 1_000_000_000;
/// Sleep while a UAPI client is connected, so that its timeout is noticed.
const UAPI_CLIENT_SLEEP: u64 = 100_000_000;
/// How often the figures for metrics and telemetry are renewed.
const SNAPSHOT_EVERY: u64 = 500_000_000;

/// AF_PACKET ring frames that hold a 64 KB super-packet (TSO on a local sender, the
/// kernel's GRO). The kernel writes a frame 66 bytes into its slot (TPACKET_V2 header and
/// `sockaddr_ll`, aligned), so a slot of 65408 bytes takes frames up to 65342 bytes, above
/// the largest TCP super-packet of Debian's kernels (65329 bytes: 64 KiB less 1 and the
/// kernel's 320 bytes of header room, plus the headers). DPDK's
/// driver wants `framesz - 32` bytes of mbuf data room behind the headroom (its
/// `eth_rx_queue_setup`), which 65408 leaves within the 16-bit data room. The driver
/// finds slot `i` at `i * framesz` in its mapping, so slots must tile each block
/// exactly, and blocks are whole pages: 32 slots make a block of 511 pages.
/// docs/architecture.md, "What a host hands the ports".
const AF_PACKET_FRAMESZ: u32 = 65_408;
const AF_PACKET_BLOCKSZ: u32 = AF_PACKET_FRAMESZ * 32;
/// Large buffers per AF_PACKET port: the driver copies each frame into one, and they
/// live only until the frame is cut, sent or handed to control.
const AF_PACKET_MBUFS: u32 = 1023;

/// The `--vdev` argument of a port: the configured spec, and for AF_PACKET ring frames
/// large enough for super-packets unless the spec sizes them itself.
pub fn vdev_spec(device: &DeviceSpec) -> Option<String> {
    let DeviceSpec::Vdev { spec, .. } = device else {
        return None;
    };
    let sized = ["framesz=", "blocksz="]
        .iter()
        .any(|k| spec.split(',').any(|a| a.trim_start().starts_with(k)));
    if device.is_af_packet() && !sized {
        Some(format!(
            "{spec},blocksz={AF_PACKET_BLOCKSZ},framesz={AF_PACKET_FRAMESZ}"
        ))
    } else {
        Some(spec.clone())
    }
}

/// The mbuf data room a port's RX queues need beyond the shared pool's, if any: an
/// AF_PACKET port with frames larger than the pool's buffers.
pub fn rx_data_room(device: &DeviceSpec) -> Option<u16> {
    if !device.is_af_packet() {
        return None;
    }
    let spec = vdev_spec(device)?;
    let framesz = spec
        .split(',')
        .find_map(|a| a.trim().strip_prefix("framesz="))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(2048);
    let room = framesz.saturating_sub(32) + 128;
    (room > u32::from(MBUF_ROOM)).then(|| room.min(u32::from(u16::MAX)) as u16)
}

/// The EAL arguments for `cfg`.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    // `Eal::init` puts the program name in front.
    let mut args = cfg.dpdk.eal_args.clone();
    let mut lcores = vec![cfg.dpdk.control_lcore];
    lcores.extend(&cfg.dpdk.worker_lcores);
    if cfg.dpdk.cpus.is_empty() {
        args.push("-l".into());
        args.push(
            lcores
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    } else {
        // Some lcores run on another CPU than their number (`dpdk.lcores.cpus`).
        args.push("--lcores".into());
        args.push(
            lcores
                .iter()
                .map(|l| format!("{l}@{}", cfg.dpdk.cpus.get(l).unwrap_or(l)))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    args.push("--main-lcore".into());
    args.push(cfg.dpdk.control_lcore.to_string());
    let mut any_pci = false;
    for port in [&cfg.ports.outside, &cfg.ports.inside] {
        match &port.device {
            DeviceSpec::Vdev { .. } => {
                args.push("--vdev".into());
                args.push(vdev_spec(&port.device).expect("a vdev"));
            }
            DeviceSpec::Pci { address } => {
                any_pci = true;
                args.push("-a".into());
                args.push(address.clone());
            }
        }
    }
    if let Some(dev) = crypto_device(cfg) {
        if dev.starts_with("crypto_") {
            args.push("--vdev".into());
        } else {
            any_pci = true;
            args.push("-a".into());
        }
        args.push(dev.to_owned());
    }
    // Never let DPDK probe PCI devices nobody configured (the machine's own NIC).
    if !any_pci && !cfg.dpdk.eal_args.iter().any(|a| a == "--no-pci") {
        args.push("--no-pci".into());
    }
    args
}

/// The crypto device spec, when the cryptodev backend is configured.
fn crypto_device(cfg: &Config) -> Option<&str> {
    (cfg.crypto.backend == CryptoBackend::Cryptodev)
        .then_some(cfg.crypto.device.as_deref())
        .flatten()
}

/// Starts the crypto device with one queue pair per worker.
fn start_crypto(cfg: &Config, workers: u16) -> Result<Option<Arc<CryptoDev>>, String> {
    let Some(spec) = crypto_device(cfg) else {
        return Ok(None);
    };
    // A vdev spec may carry arguments after its name; the device is named without.
    let name = spec.split(',').next().unwrap_or(spec);
    let id = CryptoDev::by_name(name).map_err(|e| format!("crypto.device: {spec}: {e}"))?;
    let dev = CryptoDev::start(
        id,
        &CryptoDevConfig {
            // One queue pair per worker and direction: each stage collects its own.
            queue_pairs: 2 * workers,
            // Two sessions (one per direction) per keypair, and up to three keypairs per
            // peer; beyond that, packets of the newest keys fall back to software.
            sessions: CRYPTO_SESSIONS,
            ..CryptoDevConfig::default()
        },
    )
    .map_err(|e| format!("crypto.device: {spec}: {e}"))?;
    info!(
        device = dev.name(),
        driver = dev.driver(),
        queue_pairs = 2 * workers,
        "crypto device started"
    );
    Ok(Some(dev))
}

fn local_addrs(p: &PortCfg) -> Vec<LocalAddr> {
    p.addresses
        .iter()
        .map(|a| LocalAddr {
            addr: a.addr,
            prefix_len: a.prefix_len,
        })
        .collect()
}

/// The worker whose TX queues carry a frame control sends: by a hash of its destination
/// (MAC, and IP address and UDP/TCP port where it has them), the same for every frame
/// to one peer or host.
pub fn worker_for(frame: &[u8], workers: usize) -> usize {
    let at = |r: std::ops::Range<usize>| frame.get(r).unwrap_or(&[]);
    let ethertype = at(12..14);
    let (addr, port) = match ethertype {
        [0x08, 0x00] => (at(30..34), at(36..38)),
        [0x86, 0xdd] => (at(38..54), at(56..58)),
        _ => (&[][..], &[][..]),
    };
    // FNV-1a: a few bytes, no need for more.
    let mut h: u32 = 0x811c_9dc5;
    for &b in at(0..6).iter().chain(addr).chain(port) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize % workers.max(1)
}

/// What the started devices of the ports are (outside, inside).
#[derive(Debug, Clone, Copy, Default)]
pub struct Devices {
    pub macs: [[u8; 6]; 2],
    pub link_mtus: [u16; 2],
    pub offloads: [Offloads; 2],
}

/// Forwarding tables of the ports for `cfg`, on `devices`; the control plane adds the
/// peers' allowed IPs.
pub fn port_tables(cfg: &Config, devices: &Devices) -> Tables {
    let port = |p: &PortCfg, i: usize| {
        let mut t = PortTables::new(devices.macs[i], local_addrs(p));
        t.link_mtu = devices.link_mtus[i];
        t.offloads = devices.offloads[i];
        t.complete_checksums = p.completes_checksums();
        for g in &p.gateway {
            let any = if g.is_ipv4() {
                std::net::IpAddr::from([0u8; 4])
            } else {
                std::net::IpAddr::from([0u8; 16])
            };
            t.fib.insert(any, 0, NextHop::Via(*g));
        }
        for r in &p.routes {
            t.fib
                .insert(r.prefix.addr, r.prefix.len, NextHop::Via(r.via));
        }
        t
    };
    Tables {
        ports: [port(&cfg.ports.outside, 0), port(&cfg.ports.inside, 1)],
        allowed: Default::default(),
        listen_port: cfg.wireguard.listen_port,
        mtu: cfg.wireguard.mtu,
        outer_dscp: cfg.wireguard.outer_dscp,
    }
}

pub fn peer_specs(cfg: &Config) -> Vec<PeerSpec> {
    cfg.peers.iter().map(peer_spec).collect()
}

/// What the control plane is given for a peer of the configuration.
pub fn peer_spec(p: &crate::config::PeerConfig) -> PeerSpec {
    PeerSpec {
        public_key: p.public_key,
        preshared_key: p.preshared_key.as_ref().map(|k| *k.as_bytes()),
        endpoint: p.endpoint,
        allowed_ips: p.allowed_ips.iter().map(|a| (a.addr, a.len)).collect(),
        persistent_keepalive: p.persistent_keepalive,
    }
}

struct WorkerHandle {
    lcore: u32,
    to_control: Arc<Ring>,
    from_control: Arc<Ring>,
    counters: Arc<WorkerCounters>,
}

/// Where the running gateway is, for `wgdp reload`.
pub struct Runtime<'a> {
    /// The configuration file, read again on SIGHUP.
    pub config_path: &'a Path,
    /// Written with the process id at start, removed at stop.
    pub pid_file: Option<&'a Path>,
}

/// Run the gateway until SIGINT or SIGTERM; SIGHUP reloads the configuration.
pub fn run(cfg: Config, rt: Runtime<'_>) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .map_err(|e| format!("signal handler: {e}"))?;
    // A signal may be delivered to any thread: each also writes a byte here, which
    // wakes the control loop from its sleep.
    let (wakeup, wakeup_tx) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("signal pipe: {e}"))?;
    for s in [&wakeup, &wakeup_tx] {
        s.set_nonblocking(true)
            .map_err(|e| format!("signal pipe: {e}"))?;
    }
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let tx = wakeup_tx
            .try_clone()
            .map_err(|e| format!("signal pipe: {e}"))?;
        signal_hook::low_level::pipe::register(sig, tx)
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let doorbell = Arc::new(
        dataplane::doorbell::Doorbell::new().map_err(|e| format!("control wake-up: {e}"))?,
    );
    let _pid_file = match rt.pid_file {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    let mut running = cfg.clone();

    // The peers' static-static Diffie-Hellman on every CPU the process may use, before
    // DPDK pins this thread to the control lcore and the workers take theirs.
    let specs = peer_specs(&cfg);
    let threads = if specs.len() < 1024 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let handshakes =
        crate::plane::Handshakes::make(cfg.wireguard.private_key.as_bytes(), &specs, threads);
    // The threads of the handshakes' Diffie-Hellman work, also before DPDK pins this
    // thread: they run on the CPUs the workers and the control lcore leave free.
    let dh_work = handshake_work(&cfg, &doorbell)?;

    let args = eal_args(&cfg);
    info!(args = %args.join(" "), "starting DPDK");
    let eal = Eal::init(&args).map_err(|e| format!("DPDK EAL: {e}"))?;
    let workers = cfg.dpdk.worker_lcores.clone();
    for &l in &workers {
        if !eal.is_lcore_enabled(l) {
            return Err(format!("dpdk.lcores.workers: lcore {l} is not available"));
        }
    }
    let nworkers = workers.len() as u16;
    let pool = Mempool::pktmbuf(
        "wgdp_pkts",
        cfg.dpdk.mbufs,
        256,
        MBUF_ROOM,
        dpdk_sys::SOCKET_ID_ANY,
    )
    .map_err(|e| format!("dpdk.mbufs: packet pool of {}: {e}", cfg.dpdk.mbufs))?;

    let mut ports = Vec::new();
    let mut devices = Devices::default();
    for (i, (key, p)) in [
        ("outside", &cfg.ports.outside),
        ("inside", &cfg.ports.inside),
    ]
    .into_iter()
    .enumerate()
    {
        let queues = p.queues.unwrap_or(nworkers);
        if queues != nworkers {
            return Err(format!(
                "ports.{key}.queues: {queues} queue pairs for {nworkers} workers; wgdp gives each worker one queue pair per port"
            ));
        }
        let id = Port::by_name(p.device.name())
            .map_err(|e| format!("ports.{key}.device: {} not found: {e}", p.device))?;
        let pc = PortConfig {
            rx_queues: queues,
            tx_queues: queues,
            ..PortConfig::default()
        };
        let port = match rx_data_room(&p.device) {
            Some(room) => {
                let large = Mempool::pktmbuf(
                    &format!("wgdp_large_{key}"),
                    AF_PACKET_MBUFS,
                    64,
                    room,
                    dpdk_sys::SOCKET_ID_ANY,
                )
                .map_err(|e| {
                    format!("ports.{key}.device: {AF_PACKET_MBUFS} buffers of {room} bytes for AF_PACKET frames: {e}")
                })?;
                let pools = vec![&large; usize::from(queues)];
                Port::start_with_pools(id, &pc, &pools)
            }
            None => Port::start(id, &pc, &pool),
        }
        .map_err(|e| format!("ports.{key}.device: {e}"))?;
        let link_mtu = port.mtu().map_err(|e| format!("ports.{key}.device: {e}"))?;
        if queues > 1 && !port.rss() {
            if p.device.kernel_picks_queue() {
                info!(port = key, queues, "the kernel interface's RSS decides which queue (and worker) each packet reaches");
            } else {
                warn!(port = key, device = %p.device, queues,
                      "the device cannot spread received packets over its queues (no RSS): its peer or driver decides which worker gets each packet, and one queue may carry everything");
            }
        }
        info!(port = key, device = %p.device, mac = ?port.mac_addr(), link_mtu,
              complete_checksums = p.completes_checksums(), offloads = ?port.offloads(), "port started");
        devices.macs[i] = port.mac_addr();
        devices.link_mtus[i] = link_mtu;
        devices.offloads[i] = port.offloads();
        ports.push(Arc::new(port));
    }
    let ports: [Arc<Port>; 2] = ports.try_into().map_err(|_| "two ports".to_string())?;

    let shared = Arc::new(Shared::new(
        port_tables(&cfg, &devices),
        Sessions::new(INDEX_BITS, MAX_PEERS),
    ));
    let mut plane = ControlPlane::<Mbuf, _>::with_handshakes(
        cfg.wireguard.private_key.as_bytes(),
        &specs,
        handshakes,
        shared.clone(),
        rand_core::OsRng,
    )?;
    if cfg.wireguard.rekey_after_time < 120 {
        warn!(
            seconds = cfg.wireguard.rekey_after_time,
            "wireguard.rekey_after_time is shorter than the protocol's 120 s: for tests only"
        );
        plane.set_rekey_after(dataplane::clock::secs(
            cfg.wireguard.rekey_after_time.into(),
        ));
    }
    plane.set_handshake_work(dh_work, Now::real(), &mut || None);
    info!(public_key = %crate::keys::encode(&plane.public_key()), peers = specs.len(),
          handshake_threads = plane.handshake_threads(), "wireguard ready");
    let mut tap = match &cfg.control_port {
        Some(cp) => {
            // Addresses to announce are the export's to give the TAP, while healthy.
            let held = cp.export.as_ref().map_or(&[][..], |e| &e.announce[..]);
            let addrs: Vec<std::net::IpAddr> = [&cfg.ports.outside, &cfg.ports.inside]
                .iter()
                .flat_map(|p| p.addresses.iter().map(|a| a.addr))
                .filter(|a| !held.contains(a))
                .collect();
            let tap = crate::tap::Tap::open(&cp.tap, &addrs, cfg.wireguard.mtu)?;
            plane.host = Some(HostPort::new(tap.mac(), devices.macs[1]));
            info!(tap = tap.name(), "control port ready");
            Some(tap)
        }
        None => None,
    };
    // Routes for a routing daemon on the host (docs/scale-out.md).
    let mut export = crate::export::Export::for_config(&cfg)?;
    // Figures for Prometheus and DPDK telemetry, published by this thread.
    let publisher = metrics::Publisher::new();
    let _telemetry = metrics::register_telemetry(&publisher.reader())?;
    let _metrics_server = match &cfg.metrics {
        Some(m) => {
            let h = metrics::serve(m.listen, publisher.reader())?;
            info!(listen = %h.local_addr(), "metrics at /metrics");
            Some(h)
        }
        None => None,
    };
    let mut uapi = match &cfg.uapi {
        Some(u) => {
            let server = uapi::Server::bind(Path::new(uapi::SOCKET_DIR), &u.name)
                .map_err(|e| format!("uapi.name: {e}"))?;
            info!(socket = %server.path().display(), "wg tool socket ready");
            Some(server)
        }
        None => None,
    };

    let crypto = start_crypto(&cfg, nworkers)?;
    let worker_stop = Arc::new(AtomicBool::new(false));
    let idle = match cfg.dpdk.idle {
        IdleMode::Adaptive => Idle::adaptive(
            &ports
                .iter()
                .map(|p| (p.rx_desc(), p.link_speed_mbps()))
                .collect::<Vec<_>>(),
        ),
        IdleMode::Poll => Idle::Poll,
    };
    if let Idle::Adaptive { max_sleep } = idle {
        info!(
            max_sleep_us = max_sleep.as_micros() as u64,
            "adaptive idle: workers sleep when the ports are quiet"
        );
    }
    let peer_series = cfg
        .metrics
        .as_ref()
        .map_or(crate::config::DEFAULT_PEER_SERIES, |m| m.peer_series);
    let mut handles = Vec::new();
    let share = cfg.dpdk.share_crypto && crypto.is_none() && workers.len() > 1;
    if share {
        info!("a worker that cannot keep up shares its AEAD work with quiet workers (dpdk.share_crypto)");
    }
    let mut crews = dataplane::spread::crews::<Mbuf>(workers.len()).into_iter();
    for (q, &lcore) in workers.iter().enumerate() {
        let crew = crews.next().expect("a crew per worker");
        let to_control = Arc::new(
            Ring::new(&format!("wgdp_to_ctl{q}"), RING_SIZE, true, true)
                .map_err(|e| format!("ring: {e}"))?,
        );
        let from_control = Arc::new(
            Ring::new(&format!("wgdp_from_ctl{q}"), RING_SIZE, true, true)
                .map_err(|e| format!("ring: {e}"))?,
        );
        let counters = Arc::new(WorkerCounters::default());
        let io = DpdkIo {
            ports: ports.clone(),
            queue: q as u16,
            to_control: to_control.clone(),
            from_control: from_control.clone(),
            pool: pool.clone(),
            doorbell: Some(doorbell.clone()),
        };
        let (shared, c, stop, burst) = (
            shared.clone(),
            counters.clone(),
            worker_stop.clone(),
            cfg.dpdk.burst as usize,
        );
        let backend = match &crypto {
            Some(dev) => Backend::cryptodev_for_worker(dev, q as u16)
                .map_err(|e| format!("crypto.device: queue pairs of worker {q}: {e}"))?,
            None => Backend::software(),
        };
        let aead = backend.describe();
        eal.remote_launch(lcore, move || {
            let mut w = Worker::new(io, shared, c, backend, burst).with_crew(crew, share);
            w.run(&stop, idle);
            if let Some(d) = w.backend().device_stats() {
                info!(
                    queue = q,
                    device_jobs = d.device_jobs,
                    software_jobs = d.software_jobs,
                    session_errors = d.session_errors,
                    failed = d.queue.failed,
                    timed_out = d.queue.timed_out,
                    "crypto device counters"
                );
            }
            0
        })
        .map_err(|e| format!("dpdk.lcores.workers: launching lcore {lcore}: {e}"))?;
        info!(lcore, queue = q, aead = %aead, "worker started");
        handles.push(WorkerHandle {
            lcore,
            to_control,
            from_control,
            counters,
        });
    }

    // The control loop: rounds while there is work, and between them a sleep until the
    // next deadline, a packet from a worker, the control port, the UAPI socket or a
    // signal (`wait`).
    let mut io = GatewayIo {
        handles: &handles,
        pool: &pool,
        tap: tap.as_mut(),
        to_workers: handles.iter().map(|_| Vec::new()).collect(),
        ring_drops: 0,
    };
    let mut next_snapshot = 0u64;
    let mut next_uapi = 0u64;
    let mut uapi_ready = false;
    let mut fds = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Now::real();
        let round = plane.round(now, &mut io);
        let mut work = round.work;
        if let Some(e) = export.as_mut() {
            e.poll(
                &plane,
                handles.iter().map(|h| h.counters.traffic.polls.get()),
                now,
            );
        }
        if now.mono >= next_snapshot {
            next_snapshot = now.mono + SNAPSHOT_EVERY;
            let s = snapshot(&plane, &handles, &pool, &ports, io.ring_drops, peer_series);
            publisher.publish(s);
        }
        // When its socket woke the loop, on every round while a long answer is being
        // written, and every UAPI_EVERY while the loop is too busy to sleep.
        if let Some(server) = uapi.as_mut() {
            if uapi_ready || server.writing() || now.mono >= next_uapi {
                next_uapi = now.mono + UAPI_EVERY;
                uapi_ready = false;
                // A get's peers are listed a batch per poll while `wg` reads them.
                server.serve(&mut uapi::device::Served::new(&mut plane, MAX_PEERS));
                work += usize::from(server.writing());
                // What a `wg set` made (a keepalive, an initiation) leaves in this round.
                if !plane.out.is_empty() {
                    io.transmit(&mut plane.out);
                }
            }
        }
        if reload.swap(false, Ordering::Relaxed) {
            reload_config(&mut running, rt.config_path, &mut plane, &devices);
            work += 1;
        }
        if work == 0 && !stop.load(Ordering::Relaxed) {
            let until = plane.next_deadline().min(next_snapshot).min(
                export
                    .as_ref()
                    .map_or(u64::MAX, crate::export::Export::next_deadline),
            );
            fds.clear();
            if let Some(t) = io.tap.as_ref() {
                fds.push(pollfd(t.fd()));
            }
            let uapi_from = fds.len();
            if let Some(server) = uapi.as_ref() {
                server.wait_fds(&mut fds);
            }
            let results = || plane.handshake_results_ready();
            let woken = wait(
                &doorbell, &handles, &results, &wakeup, &mut fds, until, uapi_from,
            );
            uapi_ready |= woken;
        }
    }

    info!("stopping");
    worker_stop.store(true, Ordering::Relaxed);
    for h in &handles {
        let rc = eal.wait_lcore(h.lcore);
        if rc != 0 {
            warn!(lcore = h.lcore, rc, "worker ended abnormally");
        }
    }
    for (i, h) in handles.iter().enumerate() {
        let c = &h.counters;
        info!(
            worker = i,
            rx_outside = c.traffic.rx_outside.get(),
            rx_inside = c.traffic.rx_inside.get(),
            tx_outside = c.traffic.tx_outside.get(),
            tx_inside = c.traffic.tx_inside.get(),
            decrypted = c.traffic.decrypted.get(),
            encrypted = c.traffic.encrypted.get(),
            drops = c.drops(),
            "worker counters"
        );
        let reasons: Vec<String> = c
            .classify
            .snapshot()
            .map(|(n, v)| ("classify", n, v))
            .chain(c.decrypt.snapshot().map(|(n, v)| ("decrypt", n, v)))
            .chain(c.route.snapshot().map(|(n, v)| ("route", n, v)))
            .chain(c.offload.snapshot().map(|(n, v)| ("offload", n, v)))
            .chain(
                c.offload_events
                    .snapshot()
                    .map(|(n, v)| ("offload_events", n, v)),
            )
            .chain(c.encrypt.snapshot().map(|(n, v)| ("encrypt", n, v)))
            .chain(c.spread.snapshot().map(|(n, v)| ("spread", n, v)))
            .chain(c.tx.snapshot().map(|(n, v)| ("tx", n, v)))
            .chain(c.punt.snapshot().map(|(n, v)| ("punt", n, v)))
            .filter(|(_, _, v)| *v > 0)
            .map(|(s, n, v)| format!("{s}.{n}={v}"))
            .collect();
        info!(worker = i, "{}", reasons.join(" "));
    }
    let ring_drops = io.ring_drops;
    drop(io);
    info!(stats = ?plane.stats, neighbors = ?plane.neighbor_stats(), ring_full = ring_drops, "control counters");
    if let Some(h) = &plane.host {
        info!(stats = ?h.stats, "control port counters");
    }
    drop(export);
    drop(tap);
    drop(uapi);
    drop(_metrics_server);
    drop(_telemetry);
    plane.clear();
    drop(plane);
    drop(handles);
    drop(shared);
    // Sessions on the crypto device went with the keypairs; the device goes before the
    // pools.
    drop(crypto);
    let forgetful = [&cfg.ports.outside, &cfg.ports.inside]
        .iter()
        .any(|p| p.device.forgets_ring_mbufs());
    close(ports, pool, forgetful);
    drop(eal);
    Ok(())
}

/// The figures of the whole gateway at this moment.
fn snapshot<R: rand_core::RngCore + rand_core::CryptoRng>(
    plane: &ControlPlane<Mbuf, R>,
    workers: &[WorkerHandle],
    pool: &Mempool,
    ports: &[Arc<Port>; 2],
    ring_drops: u64,
    peer_series: usize,
) -> metrics::Snapshot {
    let mut s = metrics::Snapshot::new(dpdk_sys::version());
    s.tsc_hz = dpdk_sys::Eal::tsc_hz();
    let to_snapshot = |v: crate::plane::PeerView<'_>| {
        let mut p = metrics::PeerSnapshot::new(v.peer.id, &v.spec.public_key, &v.activity);
        p.latest_handshake = v
            .last_handshake
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        p.handshakes = v.handshakes;
        p
    };
    // Every peer while they are few; past `peer_series`, only the active ones are
    // looked at (not a walk over every peer twice a second), and the busiest kept.
    s.peers_configured = plane.peer_count() as u64;
    s.peers_active = plane.active_peer_count() as u64;
    s.peers = if plane.peer_count() <= peer_series {
        plane.peer_views().map(to_snapshot).collect()
    } else {
        let active = plane.active_peer_views().map(to_snapshot).collect();
        metrics::Snapshot::select_peers(active, peer_series)
    };
    s.workers = workers
        .iter()
        .map(|h| metrics::WorkerSnapshot::new(h.lcore.to_string(), &h.counters))
        .collect();
    // The control thread's encrypt runs are not a worker loop: no runtime accounting
    // (only their crypto share would be timed, without the stage around it).
    let mut control_runs = metrics::WorkerSnapshot::new("control", &plane.counters);
    control_runs.stages.clear();
    s.workers.push(control_runs);
    s.set_control(&plane.stats);
    s.control_drops.insert("ring_full".into(), ring_drops);
    let n = plane.neighbor_stats();
    for (k, v) in [
        ("arp_replies_sent", n.arp_replies_sent),
        ("arp_requests_sent", n.arp_requests_sent),
        ("na_sent", n.na_sent),
        ("ns_sent", n.ns_sent),
        ("neighbors_learned", n.learned),
    ] {
        s.control.insert(k.into(), v);
    }
    s.control_drops
        .insert("unresolved".into(), n.unresolved_drops);
    if let Some(h) = &plane.host {
        for (k, v) in [
            ("host_delivered", h.stats.to_host),
            ("host_sent", h.stats.from_host),
            ("host_answered", h.stats.answered),
            ("host_checksums_completed", h.stats.checksums_completed),
        ] {
            s.control.insert(k.into(), v);
        }
        s.control_drops
            .insert("host_queue_full".into(), h.stats.queue_drops);
    }
    s.mempools.push(metrics::MempoolSnapshot::new(pool));
    s.ports = ["outside", "inside"]
        .iter()
        .zip(ports)
        .map(|(name, p)| metrics::PortSnapshot {
            name: (*name).into(),
            stats: p.stats(),
        })
        .collect();
    s
}

/// Reads the configuration file again and applies what changed (see `reload`). A file
/// with an error is refused with the message it would get at start, and nothing changes.
fn reload_config<R: rand_core::RngCore + rand_core::CryptoRng>(
    running: &mut Config,
    path: &Path,
    plane: &mut ControlPlane<Mbuf, R>,
    devices: &Devices,
) {
    let new = match crate::config::reload(path, running) {
        Ok(c) => c,
        Err(e) => {
            error!("reload refused, the running configuration stays: {e}");
            return;
        }
    };
    // Only the listen port: a snapshot kept would hold on to a table of cryptokey
    // routing that publication changes next (`dataplane::allowed`).
    let listen_port = plane.current_tables().listen_port;
    let live = reload::Live {
        peers: plane.peer_specs().collect(),
        find: Box::new(|k| plane.peer_spec(k)),
        listen_port,
        private_key: plane.private_key().as_bytes(),
    };
    let plan = reload::plan(running, live, &new);
    for key in &plan.restart_needed {
        warn!(
            key,
            "changed in the file, but only a restart applies it; the running value stays"
        );
    }
    // One publication of the tables for the whole reload.
    let failed = plane.batch(|plane| {
        if let Some(k) = plan.private_key {
            plane.set_private_key(&k);
        }
        if plan.tables {
            plane.set_port_tables(port_tables(&new, devices));
        }
        if let Some(s) = plan.rekey_after_time {
            plane.set_rekey_after(dataplane::clock::secs(s.into()));
        }
        for k in &plan.remove {
            plane.remove_peer(k);
        }
        for s in &plan.update {
            plane.update_peer(s.clone());
        }
        let mut failed = 0;
        for s in &plan.add {
            if let Err(e) = plane.add_peer(s.clone()) {
                error!(peer = %crate::keys::encode(&s.public_key), "reload: peer not added: {e}");
                failed += 1;
            }
        }
        failed
    });
    *running = reload::applied(running, new);
    info!(
        added = plan.add.len() - failed,
        removed = plan.remove.len(),
        updated = plan.update.len(),
        tables = plan.tables,
        private_key = plan.private_key.is_some(),
        "configuration reloaded"
    );
}

/// The control loop's view of the workers' rings, the pool and the control port.
struct GatewayIo<'a> {
    handles: &'a [WorkerHandle],
    pool: &'a Mempool,
    tap: Option<&'a mut crate::tap::Tap>,
    /// Frames for each worker, reused from round to round.
    to_workers: Vec<Vec<Mbuf>>,
    /// Frames dropped because a worker's ring from control was full.
    ring_drops: u64,
}

impl ControlIo<Mbuf> for GatewayIo<'_> {
    fn receive(&mut self, into: &mut Vec<Mbuf>) {
        for h in self.handles {
            h.to_control.dequeue_burst(into, RING_BURST);
        }
    }

    fn transmit(&mut self, frames: &mut Vec<Mbuf>) {
        // Each destination's frames through one worker (its TX queues), so that a
        // peer's packets leave in the order control made them.
        for f in frames.drain(..) {
            let w = worker_for(f.data(), self.handles.len());
            self.to_workers[w].push(f);
        }
        for (h, frames) in self.handles.iter().zip(self.to_workers.iter_mut()) {
            if !frames.is_empty() {
                h.from_control.enqueue_burst(frames);
                self.ring_drops += frames.len() as u64;
                frames.clear();
            }
        }
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn read_host(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.tap.as_mut()?.read(buf)
    }

    fn write_host(&mut self, frame: &[u8]) -> bool {
        self.tap.as_mut().is_some_and(|t| t.write(frame))
    }
}

fn pollfd(fd: std::os::fd::RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Sleeps until `until` (the `Now::mono` clock; at most `MAX_SLEEP`), a worker hands
/// control a packet or a handshake thread a result (the doorbell: `results` says
/// whether some are there), a signal, or one of `fds` is ready; true if one of
/// `fds[uapi_from..]` (the UAPI socket's) is.
fn wait(
    doorbell: &dataplane::doorbell::Doorbell,
    handles: &[WorkerHandle],
    results: &dyn Fn() -> bool,
    signals: &std::os::unix::net::UnixStream,
    fds: &mut Vec<libc::pollfd>,
    until: u64,
    uapi_from: usize,
) -> bool {
    use std::os::fd::AsRawFd;
    let now = dataplane::clock::now_ns();
    if until <= now {
        return false;
    }
    let mut sleep = (until - now).min(MAX_SLEEP);
    if fds.len() > uapi_from + 1 {
        // A client is connected: its timeout counts.
        sleep = sleep.min(UAPI_CLIENT_SLEEP);
    }
    doorbell.prepare();
    // After `prepare`, a packet is either seen here or rings the doorbell.
    if handles.iter().any(|h| h.to_control.count() > 0) || results() {
        doorbell.woke();
        return false;
    }
    fds.push(pollfd(doorbell.fd()));
    fds.push(pollfd(signals.as_raw_fd()));
    let ts = libc::timespec {
        tv_sec: (sleep / 1_000_000_000) as libc::time_t,
        tv_nsec: (sleep % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `fds` is a live array of `fds.len()` pollfds and `ts` a live timespec;
    // no signal mask is changed. EINTR (a signal) is a wake-up like any other.
    let ready = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    doorbell.woke();
    let mut drain = [0u8; 64];
    while let Ok(n) = std::io::Read::read(&mut &*signals, &mut drain) {
        if n == 0 {
            break;
        }
    }
    ready > 0 && fds[uapi_from..fds.len() - 2].iter().any(|f| f.revents != 0)
}

/// The threads for the Diffie-Hellman work of handshakes (`dpdk.handshake_threads`;
/// by default one per CPU this process may use that no worker lcore and not the
/// control lcore runs on), each ringing `doorbell` when it finished a job. They are
/// made on the free CPUs (or, when there are none, on the control lcore's), so that
/// they never take a worker's CPU.
fn handshake_work(
    cfg: &Config,
    doorbell: &Arc<dataplane::doorbell::Doorbell>,
) -> Result<crate::plane::dh::DhWork, String> {
    use crate::plane::dh::{DhWork, MAX_THREADS};
    let cpu_of = |lcore: u32| *cfg.dpdk.cpus.get(&lcore).unwrap_or(&lcore) as usize;
    let taken: Vec<usize> = cfg
        .dpdk
        .worker_lcores
        .iter()
        .chain([&cfg.dpdk.control_lcore])
        .map(|&l| cpu_of(l))
        .collect();
    // SAFETY: `cpu_set_t` is plain data; sched_getaffinity writes at most its size.
    let mut mine: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a live cpu_set_t of the size given, for this thread (0).
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut mine) } != 0
    {
        return Err(format!(
            "handshake threads: sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    let limit = (libc::CPU_SETSIZE as usize).min(8 * std::mem::size_of::<libc::cpu_set_t>());
    // SAFETY: CPU_ISSET reads the set within its size (`cpu` < CPU_SETSIZE).
    let allowed: Vec<usize> = (0..limit)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &mine) })
        .collect();
    let free: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !taken.contains(c))
        .collect();
    let threads = match cfg.dpdk.handshake_threads {
        Some(n) => usize::from(n),
        None => free.len().min(MAX_THREADS),
    };
    if threads == 0 {
        info!("handshakes' Diffie-Hellman work on the control thread (no CPU left free: dpdk.handshake_threads)");
        return Ok(DhWork::default());
    }
    let cpus = if free.is_empty() {
        vec![cpu_of(cfg.dpdk.control_lcore)]
    } else {
        free
    };
    // The threads take this thread's affinity when they are made: give it theirs for
    // that moment.
    // SAFETY: as above, plain data.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in &cpus {
        // SAFETY: `c` came from a set of this size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: live sets of `size` bytes, for this thread.
    if unsafe { libc::sched_setaffinity(0, size, &set) } != 0 {
        warn!(?cpus, error = %std::io::Error::last_os_error(),
              "handshake threads: could not be kept off the workers' CPUs");
    }
    let bell = doorbell.clone();
    let work = DhWork::with_threads(threads, Some(Arc::new(move || bell.ring())));
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, size, &mine) };
    let work = work.map_err(|e| format!("dpdk.handshake_threads: starting {threads}: {e}"))?;
    info!(threads, ?cpus, "handshakes' Diffie-Hellman work on threads");
    Ok(work)
}

/// A file holding the process id while the gateway runs.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: &Path) -> Result<PidFile, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Closes the ports, then checks that every packet buffer is back in the pool before
/// freeing it. Everything else that held mbufs (workers, rings, the control plane) is
/// gone by now. `forgetful` says that a port's driver is known to lose the mbufs in
/// its rings at close (`DeviceSpec::forgets_ring_mbufs`, `Mempool::reclaim_orphans`);
/// those are taken back.
/// Any other mbuf still out is a leak: it is reported and the pool is left alone.
fn close(ports: [Arc<Port>; 2], pool: Mempool, forgetful: bool) {
    let mut closed = true;
    for port in ports {
        let name = port.name().to_owned();
        // Workers held clones; they have all returned, so this is the last one.
        if Arc::try_unwrap(port).is_err() {
            warn!(port = %name, "port still shared at stop; not closed");
            closed = false;
        }
    }
    let out = pool.in_use_count();
    if out > 0 && forgetful && closed {
        // SAFETY: every port using the pool is closed, and the workers, rings and the
        // control plane that could hold mbufs are dropped: nothing refers to them.
        let reclaimed = unsafe { pool.reclaim_orphans() };
        info!(
            reclaimed,
            "took back the mbufs the driver left in its rings"
        );
    }
    let out = pool.in_use_count();
    if out == 0 {
        info!(mbufs = pool.capacity(), "every mbuf is back in the pool");
    } else {
        warn!(in_use = out, "mbufs still out after stop");
    }
    drop(pool);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/UDP frame to `dst`:`port`.
    fn frame_to(dst: [u8; 4], port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[30..34].copy_from_slice(&dst);
        f[36..38].copy_from_slice(&port.to_be_bytes());
        f
    }

    #[test]
    fn control_frames_of_one_destination_go_through_one_worker() {
        let peers: Vec<Vec<u8>> = (0..64u8)
            .map(|i| frame_to([198, 19, 0, i], 51820))
            .collect();
        for f in &peers {
            let w = worker_for(f, 3);
            assert!(w < 3);
            assert_eq!(w, worker_for(f, 3), "the same frame, the same worker");
            // The payload does not matter, the destination does.
            let mut other = f.clone();
            other[50] = 0xff;
            assert_eq!(w, worker_for(&other, 3));
        }
        let used: std::collections::HashSet<usize> =
            peers.iter().map(|f| worker_for(f, 3)).collect();
        assert_eq!(used.len(), 3, "64 peers spread over every worker");
        assert_eq!(
            worker_for(&[], 3),
            worker_for(&[], 3),
            "a runt frame still has a worker"
        );
        assert_eq!(worker_for(&peers[0], 1), 0);
    }

    fn vdev(spec: &str) -> DeviceSpec {
        DeviceSpec::Vdev {
            spec: spec.into(),
            name: spec.split(',').next().unwrap().into(),
        }
    }

    /// The AF_PACKET ring geometry wgdp asks for must be one the kernel accepts and the
    /// driver walks correctly: slots tile each block (the driver addresses slot `i` at
    /// `i * framesz`; a gap at a block's end made it read the wrong place after the first
    /// frame), blocks are whole pages, 512 slots fill whole blocks, a 64 KiB TCP
    /// super-packet fits a slot, and the driver's data-room check fits in 16 bits.
    #[test]
    fn af_packet_ring_holds_super_packets_and_tiles_its_blocks() {
        let spec = vdev_spec(&vdev("net_af_packet0,iface=in0")).unwrap();
        assert_eq!(
            spec,
            format!(
                "net_af_packet0,iface=in0,blocksz={AF_PACKET_BLOCKSZ},framesz={AF_PACKET_FRAMESZ}"
            )
        );
        assert_eq!(AF_PACKET_BLOCKSZ % AF_PACKET_FRAMESZ, 0);
        assert_eq!(AF_PACKET_BLOCKSZ % 4096, 0);
        assert_eq!(AF_PACKET_FRAMESZ % 16, 0, "TPACKET_ALIGNMENT");
        assert_eq!(
            512 % (AF_PACKET_BLOCKSZ / AF_PACKET_FRAMESZ),
            0,
            "framecnt 512"
        );
        // The frame starts 66 bytes into its slot. Linux sizes a TCP super-packet's
        // payload to at most 64 KiB - 1 - MAX_TCP_HEADER (320 bytes on Debian's kernels),
        // and adds at most 60 bytes of TCP, 40 of IP and 14 of Ethernet header.
        const { assert!(AF_PACKET_FRAMESZ - 66 >= 65_536 - 1 - 320 + 60 + 40 + 14) };
        let room = rx_data_room(&vdev("net_af_packet0,iface=in0")).unwrap();
        assert_eq!(u32::from(room), AF_PACKET_FRAMESZ - 32 + 128);
        // A spec that sizes its own ring is left alone; other drivers get nothing.
        let own = vdev("net_af_packet0,iface=in0,framesz=2048");
        assert_eq!(
            vdev_spec(&own).unwrap(),
            "net_af_packet0,iface=in0,framesz=2048"
        );
        assert_eq!(rx_data_room(&own), None);
        assert_eq!(rx_data_room(&vdev("net_af_xdp0,iface=in0")), None);
    }
}
