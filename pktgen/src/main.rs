//! `wgdp-pktgen`: a WireGuard-aware traffic generator on DPDK, for measuring a gateway
//! (wgdp or any other WireGuard implementation) from the outside. See
//! docs/benchmarks.md for what it measures and how `make bench` runs it.

mod accounting;
mod engine;
mod frames;
mod peers;
mod search;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use engine::{Direction, Generator, Link, Options, Size, TrialResult, TrialSpec};
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x25519_dalek::PublicKey;

#[derive(Parser)]
#[command(
    name = "wgdp-pktgen",
    version,
    about = "A WireGuard-aware traffic generator on DPDK: handshakes with a gateway as its peers, \
             offers transport packets to its outside port and plaintext to its inside port, and \
             counts what comes out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the `peers:` section of a wgdp configuration for the generator's peers.
    Peers {
        /// How many peers.
        #[arg(long, default_value_t = 1)]
        peers: u32,
        /// Seed of the peers' keys (the same for the generator's run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Tunnel address of peer 0; peer i has this plus i.
        #[arg(long, default_value = "198.18.128.0")]
        tunnel: Ipv4Addr,
    },
    /// Run one trial (or one per direction) at a set rate and count.
    Run {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = Which::Both)]
        direction: Which,
        /// Inside frame size in bytes (without FCS), or imix.
        #[arg(long, default_value = "64", value_parser = Size::parse)]
        size: Size,
        /// Packets per second; 0 for as fast as the generator can.
        #[arg(long, default_value_t = 10000.0)]
        rate: f64,
        /// Packets per direction.
        #[arg(long, default_value_t = 4000)]
        count: u64,
        /// Record the latency of every packet (one packet per burst).
        #[arg(long)]
        latency: bool,
        /// Fail (exit 1) unless every packet is accounted for (received, or dropped or
        /// answered under a named counter of the gateway, which needs --metrics), none came out
        /// wrong, and every mbuf is back in the generator's pool at the end.
        #[arg(long)]
        check: bool,
    },
    /// Handshake, then write pcaps of transport packets (decrypt.pcap, fresh counters
    /// of the new sessions) and of plaintext (encrypt.pcap) for another generator such
    /// as DPDK-Pktgen to send while the sessions last (under 180 s), and session.txt
    /// with the addresses and MACs to configure it with.
    Pcap {
        #[command(flatten)]
        common: Common,
        /// Directory to write into.
        #[arg(long)]
        out: std::path::PathBuf,
        /// Inside frame size in bytes (without FCS), or imix.
        #[arg(long, default_value = "64", value_parser = Size::parse)]
        size: Size,
        /// Packets per pcap.
        #[arg(long, default_value_t = 10000)]
        count: u64,
    },
    /// Latency through a plain forwarder between the two links (such as dpdk-testpmd in
    /// io mode), the baseline that a gateway's latency is compared with: plaintext
    /// frames out of each port, back unchanged on the other. No handshake, no ARP.
    Baseline {
        #[command(flatten)]
        common: Common,
        /// Packets per second.
        #[arg(long, default_value_t = 10000.0)]
        rate: f64,
        /// Packets per direction and size.
        #[arg(long, default_value_t = 20000)]
        count: u64,
        /// Frame sizes, comma-separated.
        #[arg(long, default_value = "64,1420", value_delimiter = ',', value_parser = Size::parse)]
        sizes: Vec<Size>,
    },
    /// RFC 2544 throughput per direction and frame size, then latency at a low rate.
    Search {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t = Which::Both)]
        direction: Which,
        /// Frame sizes, comma-separated.
        #[arg(long, default_value = "64,512,1420,imix", value_delimiter = ',', value_parser = Size::parse)]
        sizes: Vec<Size>,
        /// Length of a trial, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        trial_ms: u64,
        /// Stop when the interval is this fraction of the upper bound.
        #[arg(long, default_value_t = 0.01)]
        resolution: f64,
        /// Most trials per search after the first.
        #[arg(long, default_value_t = 14)]
        max_trials: usize,
        /// Try a rate that lost this many more times before it counts as failed (0:
        /// strictly one trial per rate, as RFC 2544).
        #[arg(long, default_value_t = 1)]
        retries: usize,
        /// Latency trial rate (packets/s); 0 for no latency trials.
        #[arg(long, default_value_t = 10000.0)]
        latency_rate: f64,
        /// Packets per latency trial.
        #[arg(long, default_value_t = 20000)]
        latency_count: u64,
        /// Frame sizes of the latency trials, comma-separated.
        #[arg(long, default_value = "64,1420", value_delimiter = ',', value_parser = Size::parse)]
        latency_sizes: Vec<Size>,
    },
    /// A restart storm: every peer handshakes, then sends data at --rate (packets/s
    /// over all peers) and keeps a WireGuard peer's timers, while the gateway is
    /// restarted from outside. Ends once every peer has a new session and its data
    /// comes through; reports how long that took and the handshakes per second.
    /// Give the peers addresses of their own (--peer-sources), or the gateway's limit
    /// per source address under load (20 handshakes a second) sets the pace.
    Storm {
        #[command(flatten)]
        common: Common,
        /// Data packets per second over all peers.
        #[arg(long, default_value_t = 20000.0)]
        rate: f64,
        /// Inside frame size of the data packets in bytes.
        #[arg(long, default_value = "64", value_parser = Size::parse)]
        size: Size,
        /// The restart is told here: "STOP READY", the Unix times (seconds) at which
        /// the gateway was stopped and at which its new start was complete.
        #[arg(long)]
        restart_file: std::path::PathBuf,
        /// Created once every peer's data comes through: restart the gateway after.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
        /// Give up if the restart is not told within this many seconds.
        #[arg(long, default_value_t = 600)]
        wait_restart: u64,
        /// Give up if the peers are not all back this many seconds after the stop.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Fail if a peer made a handshake while the gateway was up: it heard no
        /// keepalive for 15 s. (Over veth with net_af_xdp, the generator's receive
        /// path loses a few frames when the gateway sends hundreds at once, so a large
        /// storm only reports them.)
        #[arg(long)]
        keepalive_check: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Decrypt,
    Encrypt,
    Both,
}

impl Which {
    fn directions(self) -> Vec<Direction> {
        match self {
            Which::Decrypt => vec![Direction::Decrypt],
            Which::Encrypt => vec![Direction::Encrypt],
            Which::Both => vec![Direction::Decrypt, Direction::Encrypt],
        }
    }
}

#[derive(Args)]
struct Common {
    /// The port wired to the gateway's outside port: a DPDK vdev spec
    /// (net_memif0,role=client,socket=/run/x.sock or net_af_xdp0,iface=veth1) or a PCI
    /// address (then no --no-pci is passed, and the address is allowed).
    #[arg(long)]
    outside: String,
    /// The port wired to the gateway's inside port.
    #[arg(long)]
    inside: String,
    /// The gateway's public key (base64); not needed by `baseline`.
    #[arg(long)]
    gateway_key: Option<String>,
    /// A preshared key file (base64), if the gateway has one for the peers.
    #[arg(long)]
    psk_file: Option<std::path::PathBuf>,
    /// The gateway's outside address and WireGuard port.
    #[arg(long, default_value = "198.19.0.2:51820")]
    gateway: SocketAddrV4,
    /// The generator's peers' address on the outside link.
    #[arg(long, default_value = "198.19.0.1")]
    outside_addr: Ipv4Addr,
    /// Give the peers endpoint addresses of their own, from this network (peer i:
    /// its first address plus i modulo its size), behind --outside-addr as their
    /// router: the gateway needs it as a next hop (`gateway:` of its outside port)
    /// unless the network is on its outside link.
    #[arg(long, value_parser = parse_sources)]
    peer_sources: Option<(Ipv4Addr, u32)>,
    /// The generator's LAN host address on the inside link.
    #[arg(long, default_value = "198.18.2.2")]
    inside_addr: Ipv4Addr,
    /// The gateway's inside address.
    #[arg(long, default_value = "198.18.2.1")]
    gateway_inside: Ipv4Addr,
    /// Tunnel address of peer 0; peer i has this plus i.
    #[arg(long, default_value = "198.18.128.0")]
    tunnel: Ipv4Addr,
    /// How many peers handshake and share the traffic (round robin).
    #[arg(long, default_value_t = 1)]
    peers: u32,
    /// Queue pairs on each port: peer i's traffic goes out on queue i mod N (as RSS
    /// would put its flow on a gateway with N workers), and every queue is received
    /// from.
    #[arg(long, default_value_t = 1)]
    queues: u16,
    /// Seed of the peers' keys (as given to `wgdp-pktgen peers`).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The lcore the generator runs on.
    #[arg(long, default_value_t = 0)]
    lcore: u32,
    /// DPDK file prefix (default: wgdp-pktgen-<pid>).
    #[arg(long)]
    file_prefix: Option<String>,
    /// More EAL arguments, one per use (--eal-arg=--log-level=8).
    #[arg(long = "eal-arg", allow_hyphen_values = true)]
    eal_args: Vec<String>,
    /// The gateway's Prometheus endpoint (wgdp's metrics.listen): names the gateway's
    /// drops per trial and records its runtime accounting.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Encrypt direction: decrypt one received packet in this many to check it.
    #[arg(long, default_value_t = 64)]
    verify_every: u64,
    /// Handshakes in flight at most; 0: every peer's at once (a restart storm: the
    /// gateway is under load and answers with cookies first; raise --setup-timeout).
    #[arg(long, default_value_t = engine::HANDSHAKE_WINDOW)]
    handshake_window: usize,
    /// Most memory for one trial's prebuilt packets, in MiB.
    #[arg(long, default_value_t = 1024)]
    pool_mb: usize,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// When the traffic is done, create this file and keep the ports open, without
    /// polling them, until the gateway has closed both links (at most
    /// --setup-timeout seconds): DPDK 22.11's memif server can crash when its client
    /// disconnects while it polls, so stop the gateway first, then the generator.
    #[arg(long)]
    linger_file: Option<std::path::PathBuf>,
    /// Give up on ARP and handshakes after this many seconds.
    #[arg(long, default_value_t = 20)]
    setup_timeout: u64,
}

/// One stage's runtime accounting over a trial.
#[derive(Serialize, Clone)]
struct StageRow {
    worker: String,
    stage: String,
    calls: u64,
    vectors: u64,
    packets: u64,
    clocks: u64,
}

/// A trial with what the gateway says about it.
#[derive(Serialize, Clone)]
struct Record {
    #[serde(flatten)]
    result: TrialResult,
    /// Growth of the gateway's counters of packets it did not forward (drops, and
    /// packets answered with an ICMP error) during the trial (with --metrics).
    gateway_drops: Vec<(String, u64)>,
    /// The gateway's runtime accounting during the trial (with --metrics).
    stages: Vec<StageRow>,
}

impl Record {
    fn drops(&self) -> u64 {
        self.gateway_drops.iter().map(|(_, d)| d).sum()
    }
}

#[derive(Serialize)]
struct Throughput {
    direction: Direction,
    size: String,
    mean_frame: f64,
    /// Highest lossless rate, packets/s.
    rate_pps: f64,
    mpps: f64,
    /// Inside frames' bits per second at that rate, in Gbit/s.
    gbps: f64,
    generator_limited: bool,
    steps: Vec<(Option<f64>, bool)>,
    /// The trial at the rate found.
    best: Option<Record>,
}

#[derive(Serialize)]
struct Report {
    generator: String,
    command: String,
    date: String,
    tsc_hz: u64,
    peers: u32,
    trial_ms: Option<u64>,
    /// Repeats of a trial that lost before its rate counts as failed.
    retries: Option<usize>,
    throughput: Vec<Throughput>,
    latency: Vec<Record>,
    trials: Vec<Record>,
    totals: engine::Totals,
    mbufs_out_at_end: u32,
}

/// UTC date and time, ISO 8601, from the system clock (civil-from-days, as in
/// Howard Hinnant's date algorithms).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn looks_like_pci(spec: &str) -> bool {
    let name = spec.split(',').next().unwrap_or("");
    name.contains(':') && !name.starts_with("net_")
}

struct Session {
    gen: Generator,
    metrics: Option<SocketAddr>,
    records: Vec<Record>,
}

impl Session {
    /// Starts the generator, resolves the gateway, completes every handshake and
    /// warms the path up.
    fn open(c: &Common) -> Result<Session, String> {
        let key = c
            .gateway_key
            .as_deref()
            .and_then(|k| BASE64.decode(k.trim()).ok())
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or("--gateway-key: a base64 WireGuard public key (32 bytes)")?;
        let mut s = Session::start(c, PublicKey::from(key))?;
        let timeout = Duration::from_secs(c.setup_timeout);
        s.gen.resolve(timeout)?;
        let began = std::time::Instant::now();
        s.gen.handshake(Duration::ZERO, timeout)?;
        let took = began.elapsed().as_secs_f64();
        eprintln!(
            "wgdp-pktgen: {} peer(s) have a session with the gateway, after {took:.1} s \
             ({:.0} handshakes a second; {} initiations sent, {} cookie replies received)",
            s.gen.peer_count(),
            s.gen.peer_count() as f64 / took,
            s.gen.totals.handshake_initiations_sent,
            s.gen.totals.cookie_replies
        );
        // Warm-up, not measured: the gateway learns the generator's MACs on both links.
        for direction in [Direction::Decrypt, Direction::Encrypt] {
            s.gen.trial(&TrialSpec {
                direction,
                size: Size::Fixed(64),
                rate: 1000.0,
                count: 16 * u64::from(c.peers).min(64),
                latency: false,
                baseline: false,
                max_send: None,
                drain: Duration::from_millis(500),
            })?;
        }
        Ok(s)
    }

    /// Starts the generator's EAL and ports only.
    fn start(c: &Common, gateway_key: PublicKey) -> Result<Session, String> {
        let psk = match &c.psk_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--psk-file {}: {e}", path.display()))?;
                Some(
                    BASE64
                        .decode(text.trim())
                        .ok()
                        .and_then(|k| <[u8; 32]>::try_from(k).ok())
                        .ok_or_else(|| {
                            format!("--psk-file {}: not a base64 key", path.display())
                        })?,
                )
            }
        };
        if c.peers == 0 {
            return Err("--peers: at least one".into());
        }
        let prefix = c
            .file_prefix
            .clone()
            .unwrap_or_else(|| format!("wgdp-pktgen-{}", std::process::id()));
        let mut eal = vec![
            "-l".to_string(),
            c.lcore.to_string(),
            "--file-prefix".into(),
            prefix,
        ];
        let pci: Vec<&str> = [c.outside.as_str(), c.inside.as_str()]
            .into_iter()
            .filter(|s| looks_like_pci(s))
            .collect();
        if pci.is_empty() {
            eal.push("--no-pci".into());
        }
        for p in &pci {
            eal.push("-a".into());
            eal.push((*p).into());
        }
        // Hugepages without files (nothing left behind at exit), unless the memory
        // options are the user's.
        if !c
            .eal_args
            .iter()
            .any(|a| a.starts_with("--no-huge") || a.starts_with("--in-memory"))
        {
            eal.push("--in-memory".into());
        }
        eal.extend(c.eal_args.iter().cloned());
        let opts = Options {
            seed: c.seed,
            peers: c.peers,
            queues: c.queues,
            gateway_key,
            psk,
            link: Link {
                outside: c.outside_addr,
                gateway: *c.gateway.ip(),
                gateway_port: c.gateway.port(),
                inside: c.inside_addr,
                gateway_inside: c.gateway_inside,
                tunnel: c.tunnel,
                sources: c.peer_sources,
            },
            verify_every: c.verify_every,
            pool_bytes: c.pool_mb << 20,
            handshake_window: c.handshake_window,
        };
        let mut gen = Generator::start(&eal, &c.outside, &c.inside, opts)?;
        gen.wait_links(Duration::from_secs(c.setup_timeout))?;
        Ok(Session {
            gen,
            metrics: c.metrics,
            records: Vec::new(),
        })
    }

    /// With --linger-file: tells that the traffic is done, then waits for the other
    /// end to close the links.
    fn linger(&self, c: &Common) -> Result<(), String> {
        let Some(path) = &c.linger_file else {
            return Ok(());
        };
        std::fs::write(path, b"done\n").map_err(|e| format!("{}: {e}", path.display()))?;
        if !self
            .gen
            .wait_links_down(Duration::from_secs(c.setup_timeout))
        {
            eprintln!(
                "wgdp-pktgen: the links are still up {} s after the traffic ended; closing them",
                c.setup_timeout
            );
        }
        Ok(())
    }

    /// Lingers if asked, closes the generator and writes the JSON report (with
    /// --json); returns how many mbufs were still out of its pool.
    fn close(
        mut self,
        c: &Common,
        trial_ms: Option<u64>,
        retries: Option<usize>,
        throughput: Vec<Throughput>,
        latency: Vec<Record>,
    ) -> Result<u32, String> {
        self.linger(c)?;
        let tsc_hz = self.gen.tsc_hz();
        let totals = self.gen.totals;
        let trials = std::mem::take(&mut self.records);
        let out = self.gen.finish();
        write_json(
            &c.json,
            &Report {
                generator: format!("wgdp-pktgen {}", env!("CARGO_PKG_VERSION")),
                command: command_line(),
                date: utc_now(),
                tsc_hz,
                peers: c.peers,
                trial_ms,
                retries,
                throughput,
                latency,
                trials,
                totals,
                mbufs_out_at_end: out,
            },
        )?;
        Ok(out)
    }

    fn metrics_text(&self) -> Result<Option<String>, String> {
        self.metrics.map(control::runtime::fetch).transpose()
    }

    /// A trial, with the gateway's drops and runtime accounting around it.
    fn trial(&mut self, spec: &TrialSpec, timeout: Duration) -> Result<Record, String> {
        if !spec.baseline {
            self.gen.handshake(engine::SESSION_RENEW_AFTER, timeout)?;
        }
        let before = self.metrics_text()?;
        let result = self.gen.trial(spec)?;
        let after = self.metrics_text()?;
        let (gateway_drops, stages) = match (before, after) {
            (Some(b), Some(a)) => {
                let drops =
                    accounting::growth(&accounting::drop_series(&b), &accounting::drop_series(&a));
                let fb = control::runtime::parse(&b);
                let fa = control::runtime::parse(&a);
                let stages = control::runtime::since(&fa, &fb)
                    .map(|f| {
                        f.stages
                            .into_iter()
                            .map(|((worker, stage), s)| StageRow {
                                worker,
                                stage,
                                calls: s.calls,
                                vectors: s.vectors,
                                packets: s.packets,
                                clocks: s.clocks,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (drops, stages)
            }
            _ => (Vec::new(), Vec::new()),
        };
        let r = Record {
            result,
            gateway_drops,
            stages,
        };
        self.records.push(r.clone());
        Ok(r)
    }
}

fn print_trial(r: &Record) {
    let t = &r.result;
    println!(
        "{:<8} {:>5} B  offered {:>9} at {:>10.0} pps  sent {:>9}  refused {:>7}  received {:>9}  checked {:>9}  bad {}  not forwarded by the gateway {}",
        t.direction.name(),
        t.size,
        t.offered,
        t.offered_rate,
        t.sent,
        t.refused,
        t.received,
        t.verified,
        t.bad,
        r.drops()
    );
    for (series, d) in &r.gateway_drops {
        println!("           {d:>9}  {series}");
    }
    if !r.stages.is_empty() {
        println!("           gateway stages: worker stage packets packets/vector clocks/packet");
        for st in r.stages.iter().filter(|st| st.packets > 0) {
            println!(
                "           {:>6} {:<16} {:>9} {:>7.1} {:>8.1}",
                st.worker,
                st.stage,
                st.packets,
                st.packets as f64 / st.vectors.max(1) as f64,
                st.clocks as f64 / st.packets as f64
            );
        }
    }
    if let Some(l) = &t.latency {
        println!(
            "           latency over {} packets: min {:.1} us, median {:.1} us, p99 {:.1} us, max {:.1} us",
            l.samples,
            l.min_ns / 1e3,
            l.median_ns / 1e3,
            l.p99_ns / 1e3,
            l.max_ns / 1e3
        );
    }
}

fn write_json(path: &Option<std::path::PathBuf>, report: &Report) -> Result<(), String> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A network "a.b.c.d/len" as its first address and its size.
fn parse_sources(s: &str) -> Result<(Ipv4Addr, u32), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: a network such as 198.19.128.0/17"))?;
    let addr: Ipv4Addr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| (8..=32).contains(l))
        .ok_or_else(|| format!("{len:?}: a prefix length from 8 to 32"))?;
    let size = 1u32 << (32 - len);
    if addr.to_bits() & (size - 1) != 0 {
        return Err(format!("{s}: host bits are set"));
    }
    Ok((addr, size))
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn run(
    common: &Common,
    which: Which,
    size: Size,
    rate: f64,
    count: u64,
    latency: bool,
    check: bool,
) -> Result<bool, String> {
    if count == 0 {
        return Err("--count: at least one packet".into());
    }
    if check && common.metrics.is_none() {
        eprintln!("wgdp-pktgen: without --metrics, --check needs every packet received");
    }
    let timeout = Duration::from_secs(common.setup_timeout);
    let mut s = Session::open(common)?;
    let mut ok = true;
    for direction in which.directions() {
        let r = s.trial(
            &TrialSpec {
                direction,
                size,
                rate: if rate > 0.0 { rate } else { f64::INFINITY },
                count,
                latency,
                baseline: false,
                max_send: None,
                drain: Duration::from_secs(2),
            },
            timeout,
        )?;
        print_trial(&r);
        let t = &r.result;
        let accounted = t.received + r.drops() + t.refused;
        if accounted != t.offered {
            println!(
                "           NOT ACCOUNTED FOR: offered {} = received {} + not forwarded by the gateway {} + refused {} does not hold",
                t.offered,
                t.received,
                r.drops(),
                t.refused
            );
            ok = false;
        }
        if t.bad > 0 {
            println!("           {} packets came out wrong", t.bad);
            ok = false;
        }
    }
    let out = s.close(common, None, None, Vec::new(), Vec::new())?;
    if out == 0 {
        println!("every mbuf is back in the generator's pool");
    } else {
        println!("{out} mbufs are still out of the generator's pool");
        ok = false;
    }
    Ok(ok || !check)
}

/// The storm's report (--json).
#[derive(Serialize)]
struct StormReport {
    generator: String,
    command: String,
    date: String,
    storm: engine::StormResult,
    /// The restarted gateway's counters of its control thread at the end (with
    /// --metrics): what became of every handshake message.
    gateway_control: std::collections::BTreeMap<String, u64>,
    totals: engine::Totals,
    mbufs_out_at_end: u32,
}

/// The series of `wgdp_control_events_total` and `wgdp_control_drops_total` that are
/// not zero.
fn control_series(text: &str) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter(|l| {
            l.starts_with("wgdp_control_events_total") || l.starts_with("wgdp_control_drops_total")
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let v = value.parse::<f64>().ok()? as u64;
            (v > 0).then(|| (series.to_string(), v))
        })
        .collect()
}

fn storm(common: &Common, spec: &engine::StormSpec, keepalive_check: bool) -> Result<bool, String> {
    if spec.rate <= 0.0 {
        return Err("--rate: the peers must send for a restart to be noticed".into());
    }
    let mut s = Session::open(common)?;
    eprintln!(
        "wgdp-pktgen: storm: {} peers send {:.0} packets/s; waiting for the restart (told in {})",
        s.gen.peer_count(),
        spec.rate,
        spec.restart_file.display()
    );
    let r = s.gen.storm(spec)?;
    // The gateway publishes its counters now and then: wait (5 s at most) until they
    // show every peer's handshake.
    let mut gateway_control = Default::default();
    for _ in 0..50 {
        let Some(text) = s.metrics_text()? else { break };
        gateway_control = control_series(&text);
        let done = gateway_control
            .get("wgdp_control_events_total{event=\"handshakes_completed\"}")
            .is_some_and(|&d| d >= r.peers as u64);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "storm: {} peers; gateway down {:.2} s; first new session {:.2} s, all {:.2} s, all passing data {:.2} s after the stop",
        r.peers,
        r.gateway_down_seconds,
        r.first_session_seconds,
        r.all_sessions_seconds,
        r.all_delivering_seconds
    );
    println!(
        "storm: handshakes {:.0}/s on average from the first to the last, {} in the best second; {} initiations ({} retries), {} cookie replies",
        r.mean_handshakes_per_second, r.peak_handshakes_per_second, r.initiations, r.retries, r.cookie_replies
    );
    for (series, v) in &gateway_control {
        println!("           {v:>9}  {series}");
    }
    println!(
        "storm: data packets: {} sent, {} refused by the generator's port, {} came through",
        r.data_sent, r.data_refused, r.data_delivered
    );
    if r.outside_rx_missed + r.outside_rx_nombuf > 0 {
        println!(
            "storm: the generator's outside port lost {} frames (ring full) and {} (no mbuf)",
            r.outside_rx_missed, r.outside_rx_nombuf
        );
    }
    let mut ok = true;
    if r.initiations_before_stop > 0 {
        println!(
            "storm: {}{} initiations while the gateway was up: peers heard nothing from it for 15 s (its passive keepalives did not come)",
            if keepalive_check { "FAILED: " } else { "" },
            r.initiations_before_stop
        );
        ok = !keepalive_check;
    }
    if r.keepalives_bad > 0 {
        println!(
            "storm: FAILED: {} keepalives from the gateway did not open",
            r.keepalives_bad
        );
        ok = false;
    }
    s.linger(common)?;
    let totals = s.gen.totals;
    let out = s.gen.finish();
    let report = StormReport {
        generator: format!("wgdp-pktgen {}", env!("CARGO_PKG_VERSION")),
        command: command_line(),
        date: utc_now(),
        storm: r,
        gateway_control,
        totals,
        mbufs_out_at_end: out,
    };
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if out != 0 {
        println!("{out} mbufs are still out of the generator's pool");
    }
    Ok(ok && out == 0)
}

#[allow(clippy::too_many_arguments)]
fn search_all(
    common: &Common,
    which: Which,
    sizes: &[Size],
    trial_ms: u64,
    resolution: f64,
    max_trials: usize,
    retries: usize,
    latency_rate: f64,
    latency_count: u64,
    latency_sizes: &[Size],
) -> Result<bool, String> {
    let timeout = Duration::from_secs(common.setup_timeout);
    let mut s = Session::open(common)?;
    let mut rows = Vec::new();
    let trial_s = trial_ms as f64 / 1e3;
    for direction in which.directions() {
        for &size in sizes {
            let limit = s.gen.pool_limit(direction, size).max(1);
            let mut last: Option<(f64, Record)> = None;
            let mut best: Option<Record> = None;
            let found = search::throughput(
                search::Settings {
                    resolution,
                    max_trials,
                    retries,
                },
                |rate| {
                    let count = if rate.is_finite() {
                        ((rate * trial_s) as u64).clamp(1000, limit)
                    } else {
                        limit.min(3_000_000)
                    };
                    let r = s.trial(
                        &TrialSpec {
                            direction,
                            size,
                            rate,
                            count,
                            latency: false,
                            baseline: false,
                            // As fast as it can: for twice a trial's length at most.
                            max_send: (!rate.is_finite())
                                .then(|| Duration::from_millis(2 * trial_ms.max(500))),
                            drain: Duration::from_millis(200),
                        },
                        timeout,
                    )?;
                    print_trial(&r);
                    let passed = r.result.lost() == 0 && r.result.bad == 0;
                    let o = search::Outcome {
                        passed,
                        offered_rate: r.result.offered_rate,
                        received_rate: r.result.received_rate(),
                    };
                    if passed
                        && best
                            .as_ref()
                            .map_or(true, |b| b.result.offered_rate <= r.result.offered_rate)
                    {
                        best = Some(r.clone());
                    }
                    last = Some((rate, r));
                    Ok::<_, String>(o)
                },
            )?;
            drop(last);
            let mean = size.mean();
            println!(
                "==> {} {} B: {:.3} Mpps, {:.3} Gbit/s{}",
                direction.name(),
                size.label(),
                found.rate / 1e6,
                found.rate * mean * 8.0 / 1e9,
                if found.generator_limited {
                    " (the generator's limit)"
                } else {
                    ""
                }
            );
            rows.push(Throughput {
                direction,
                size: size.label(),
                mean_frame: mean,
                rate_pps: found.rate,
                mpps: found.rate / 1e6,
                gbps: found.rate * mean * 8.0 / 1e9,
                generator_limited: found.generator_limited,
                steps: found
                    .steps
                    .iter()
                    .map(|&(r, p)| (r.is_finite().then_some(r), p))
                    .collect(),
                best,
            });
        }
    }
    let mut latency = Vec::new();
    if latency_rate > 0.0 {
        for direction in which.directions() {
            for &size in latency_sizes {
                let r = s.trial(
                    &TrialSpec {
                        direction,
                        size,
                        rate: latency_rate,
                        count: latency_count,
                        latency: true,
                        baseline: false,
                        max_send: None,
                        drain: Duration::from_millis(500),
                    },
                    timeout,
                )?;
                print_trial(&r);
                latency.push(r);
            }
        }
    }
    let out = s.close(common, Some(trial_ms), Some(retries), rows, latency)?;
    if out != 0 {
        println!("{out} mbufs are still out of the generator's pool");
    }
    Ok(out == 0)
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pcap(common: &Common, out: &std::path::Path, size: Size, count: u64) -> Result<bool, String> {
    if count == 0 {
        return Err("--count: at least one packet".into());
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut s = Session::open(common)?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    s.gen
        .write_pcap(Direction::Decrypt, size, count, &out.join("decrypt.pcap"))?;
    s.gen
        .write_pcap(Direction::Encrypt, size, count, &out.join("encrypt.pcap"))?;
    let [out_mac, in_mac, gw_out, gw_in] = s.gen.macs();
    let info = [
        format!("# written by wgdp-pktgen pcap at {}", utc_now()),
        "# The gateway accepts the sessions until `expires` (Unix time, 170 s after the".into(),
        "# handshakes), and each transport message of decrypt.pcap once.".into(),
        format!("count={count}"),
        format!("size={}", size.label()),
        format!("peers={}", common.peers),
        format!("outside_mac={}", mac_text(&out_mac)),
        format!("inside_mac={}", mac_text(&in_mac)),
        format!("gateway_outside_mac={}", mac_text(&gw_out)),
        format!("gateway_inside_mac={}", mac_text(&gw_in)),
        format!("outside_addr={}", common.outside_addr),
        format!("inside_addr={}", common.inside_addr),
        format!("gateway={}", common.gateway),
        format!("gateway_inside={}", common.gateway_inside),
        format!("tunnel={}", common.tunnel),
        format!("expires={}", started + 170),
    ]
    .join("\n")
        + "\n";
    std::fs::write(out.join("session.txt"), info).map_err(|e| format!("{}: {e}", out.display()))?;
    s.linger(common)?;
    let left = s.gen.finish();
    println!(
        "wrote {count} packets each to {}/decrypt.pcap and encrypt.pcap",
        out.display()
    );
    Ok(left == 0)
}

fn baseline(common: &Common, rate: f64, count: u64, sizes: &[Size]) -> Result<bool, String> {
    if count == 0 || rate <= 0.0 {
        return Err("--count and --rate: above zero".into());
    }
    // Any valid key: nobody handshakes.
    let key = PublicKey::from(&peers::private_key(common.seed, u32::MAX));
    let mut s = Session::start(common, key)?;
    let mut latency = Vec::new();
    for direction in [Direction::Decrypt, Direction::Encrypt] {
        for &size in sizes {
            let r = s.trial(
                &TrialSpec {
                    direction,
                    size,
                    rate,
                    count,
                    latency: true,
                    baseline: true,
                    max_send: None,
                    drain: Duration::from_millis(500),
                },
                Duration::from_secs(common.setup_timeout),
            )?;
            print_trial(&r);
            latency.push(r);
        }
    }
    let out = s.close(common, None, None, Vec::new(), latency)?;
    Ok(out == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Peers {
            peers,
            seed,
            tunnel,
        } => {
            print!("{}", peers::yaml(seed, peers, tunnel));
            Ok(true)
        }
        Command::Run {
            common,
            direction,
            size,
            rate,
            count,
            latency,
            check,
        } => run(&common, direction, size, rate, count, latency, check),
        Command::Pcap {
            common,
            out,
            size,
            count,
        } => pcap(&common, &out, size, count),
        Command::Baseline {
            common,
            rate,
            count,
            sizes,
        } => baseline(&common, rate, count, &sizes),
        Command::Search {
            common,
            direction,
            sizes,
            trial_ms,
            resolution,
            max_trials,
            retries,
            latency_rate,
            latency_count,
            latency_sizes,
        } => search_all(
            &common,
            direction,
            &sizes,
            trial_ms,
            resolution,
            max_trials,
            retries,
            latency_rate,
            latency_count,
            &latency_sizes,
        ),
        Command::Storm {
            common,
            rate,
            size,
            restart_file,
            ready_file,
            wait_restart,
            timeout,
            keepalive_check,
        } => match size {
            Size::Imix => Err("--size: one frame size for a storm, not imix".into()),
            Size::Fixed(frame) => storm(
                &common,
                &engine::StormSpec {
                    rate,
                    frame,
                    restart_file,
                    ready_file,
                    wait_restart: Duration::from_secs(wait_restart),
                    timeout: Duration::from_secs(timeout),
                },
                keepalive_check,
            ),
        },
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("wgdp-pktgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_utc() {
        let d = utc_now();
        assert_eq!(d.len(), 20);
        assert!(d.starts_with("20") && d.ends_with('Z'));
    }

    #[test]
    fn peer_sources_are_networks() {
        assert_eq!(
            parse_sources("198.19.128.0/17"),
            Ok((Ipv4Addr::new(198, 19, 128, 0), 1 << 15))
        );
        assert_eq!(
            parse_sources("198.19.0.7/32"),
            Ok((Ipv4Addr::new(198, 19, 0, 7), 1))
        );
        assert!(parse_sources("198.19.128.1/17").is_err(), "host bits");
        assert!(parse_sources("198.19.128.0").is_err());
        assert!(parse_sources("198.19.128.0/4").is_err());
        assert!(parse_sources("nowhere/24").is_err());
    }

    #[test]
    fn control_series_keep_what_is_not_zero() {
        let text = "# HELP x\nwgdp_control_events_total{event=\"cookie_replies_sent\"} 12\n\
                    wgdp_control_drops_total{reason=\"rate_limited\"} 0\n\
                    wgdp_worker_drops_total{reason=\"x\"} 5\n";
        let m = control_series(text);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m["wgdp_control_events_total{event=\"cookie_replies_sent\"}"],
            12
        );
    }

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(looks_like_pci("0000:3b:00.0"));
        assert!(!looks_like_pci("net_memif0,role=client,socket=/run/a.sock"));
        assert!(!looks_like_pci("net_af_xdp0,iface=veth1"));
    }

    #[test]
    fn the_command_line_parses() {
        Cli::try_parse_from([
            "wgdp-pktgen",
            "search",
            "--outside",
            "net_memif0,role=client,socket=/run/o.sock",
            "--inside",
            "net_memif1,role=client,socket=/run/i.sock",
            "--gateway-key",
            "AAAA",
            "--sizes",
            "64,imix",
            "--eal-arg=--log-level=8",
        ])
        .unwrap();
        assert!(Cli::try_parse_from(["wgdp-pktgen", "run", "--size", "9000"]).is_err());
    }
}
