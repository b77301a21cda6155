//! Ethernet ports (ethdev).
//!
//! Contract:
//! - [`Port::start`] configures and starts a port; the [`Port`] owns it until
//!   dropped, which stops and closes it (closing a vdev port releases it: it
//!   cannot be started again in this process). One `Port` per port id.
//! - A `Port` keeps a handle to each RX queue's [`Mempool`], so the pools
//!   outlive the descriptors that hold their mbufs.
//! - `Port` is `Send + Sync`: workers share one (typically in an `Arc`) and
//!   call [`Port::rx_burst`]/[`Port::tx_burst`] concurrently, each on its own
//!   queues. A queue must be used by one thread at a time; overlapping use of
//!   one queue panics (a cheap per-queue flag) instead of corrupting it.
//! - RX appends mbufs that the caller then owns. TX takes ownership of what
//!   the driver accepted (it frees them after sending); the rest stay in the
//!   caller's `Vec`.
//! - [`Port::start_on_rings`] makes a port out of [`Ring`]s (the `net_ring`
//!   driver), so a test can play the wire: enqueue frames for the port to
//!   receive, dequeue what it sent. Such a port keeps its rings alive.

use std::ffi::{CStr, CString};
use std::fmt;
use std::mem::MaybeUninit;
use std::os::raw::c_char;
use std::ptr;
use std::sync::Arc;

use crate::error::Error;
use crate::exclusive::Exclusive;
use crate::lifecycle::{self, OwnerToken, PortClaim};
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::ring::Ring;
use crate::sys;

// `rte_eth_from_rings` lives in the ring driver, which pkg-config's libdpdk
// does not list (drivers are plugins). Linking it is harmless: when the EAL
// loads its plugin directory it finds the same file already mapped and does
// not register the driver twice.
#[link(name = "rte_net_ring")]
extern "C" {}

/// How to set up a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues; more than one enables RSS over IP addresses and UDP ports
    /// when the device supports it.
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Descriptors per RX queue, rounded to what the device accepts.
    pub rx_desc: u16,
    /// Descriptors per TX queue, rounded to what the device accepts.
    pub tx_desc: u16,
    /// MTU to set, or `None` to keep the device's default.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
        }
    }
}

/// Basic port counters (`rte_eth_stats`), totals since the port started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Packets dropped by the hardware because RX queues were full.
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// RX descriptors that could not be refilled because the pool was empty.
    pub rx_nombuf: u64,
}

/// A started ethdev port; see the module docs.
pub struct Port {
    id: u16,
    name: String,
    mac: [u8; 6],
    rx_users: Box<[Exclusive]>,
    tx_users: Box<[Exclusive]>,
    /// Descriptors of each RX queue, as set up.
    rx_desc: u16,
    offloads: Offloads,
    /// Received packets are spread over the RX queues by a hash of their addresses
    /// and ports (RSS).
    rss: bool,
    /// The rings behind a port from [`Port::start_on_rings`]; empty otherwise.
    /// Declared before the pools so that mbufs left in them are freed while
    /// their pools are certainly alive.
    _rings: Vec<Arc<Ring>>,
    _pools: Vec<Mempool>,
    _claim: PortClaim,
    _owner: OwnerToken,
}

impl Port {
    /// The id of the port DPDK named `name` (e.g. `net_ring0`, a vdev name,
    /// or a PCI address).
    pub fn by_name(name: &str) -> Result<u16, Error> {
        let op = || format!("rte_eth_dev_get_port_by_name({name:?})");
        lifecycle::ensure_running(&op())?;
        let cname = CString::new(name)
            .map_err(|_| Error::invalid(op(), libc::EINVAL, "the name contains a NUL byte"))?;
        let mut id = 0u16;
        // SAFETY: EAL running; valid C string and out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(Error::from_ret(op(), ret));
        }
        Ok(id)
    }

    /// The NUMA socket of port `port_id`, or `SOCKET_ID_ANY` if unknown; use
    /// it to place the port's mempools.
    pub fn socket_id(port_id: u16) -> i32 {
        // SAFETY: any id is accepted (invalid ones give SOCKET_ID_ANY).
        unsafe { sys::rte_eth_dev_socket_id(port_id) }
    }

    /// Configures and starts port `port_id`; every RX queue fills from `pool`.
    pub fn start(port_id: u16, config: &PortConfig, pool: &Mempool) -> Result<Port, Error> {
        let pools = vec![pool; usize::from(config.rx_queues)];
        Port::start_with_pools(port_id, config, &pools)
    }

    /// As [`Port::start`], with one pool per RX queue (`pools[q]` for queue `q`).
    pub fn start_with_pools(
        port_id: u16,
        config: &PortConfig,
        pools: &[&Mempool],
    ) -> Result<Port, Error> {
        let owner = OwnerToken::acquire(&format!("Port::start(port {port_id})"))?;
        let claim = PortClaim::acquire(port_id, &format!("Port::start(port {port_id})"))?;

        let info = dev_info(port_id)?;
        let name = port_name(port_id)?;
        let op = |call: &str| format!("{call}(port {name})");
        let invalid = |detail: String| Error::invalid(op("Port::start"), libc::EINVAL, detail);

        check_queue_count("RX", config.rx_queues, info.max_rx_queues).map_err(invalid)?;
        check_queue_count("TX", config.tx_queues, info.max_tx_queues).map_err(invalid)?;
        if pools.len() != usize::from(config.rx_queues) {
            return Err(invalid(format!(
                "{} pools given for {} RX queues",
                pools.len(),
                config.rx_queues
            )));
        }
        if let Some(mtu) = config.mtu {
            if !(info.min_mtu..=info.max_mtu).contains(&mtu) {
                return Err(invalid(format!(
                    "MTU {mtu} is outside the device's range {}..={}",
                    info.min_mtu, info.max_mtu
                )));
            }
        }

        let mut conf = sys::rte_eth_conf::default();
        let offloads = Offloads::of(&info);
        conf.rxmode.offloads = offloads.rx_flags();
        conf.txmode.offloads = offloads.tx_flags();
        let mut rss = false;
        if config.rx_queues > 1 {
            // Spread tunnels over queues by outer addresses and UDP ports.
            let rss_hf =
                u64::from(sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
            if rss_hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
                rss = true;
            }
        }
        // SAFETY: valid port id (dev_info succeeded) and configuration.
        let ret = unsafe {
            sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        };
        check(ret, || op("rte_eth_dev_configure"))?;

        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port id and out-pointers.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        check(ret, || op("rte_eth_dev_adjust_nb_rx_tx_desc"))?;

        if let Some(mtu) = config.mtu {
            // SAFETY: valid port id, configured and stopped.
            let ret = unsafe { sys::rte_eth_dev_set_mtu(port_id, mtu) };
            check(ret, || format!("rte_eth_dev_set_mtu(port {name}, {mtu})"))?;
        }

        // SOCKET_ID_ANY travels through the unsigned parameter as all ones,
        // which DPDK reads back as "any socket".
        let socket = Port::socket_id(port_id) as u32;
        for (queue, pool) in (0..config.rx_queues).zip(pools) {
            // SAFETY: queue < rx_queues; NULL selects the default rxconf; the
            // pool lives as long as the Port (it keeps a handle).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    queue,
                    rx_desc,
                    socket,
                    ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(ret, || {
                format!("rte_eth_rx_queue_setup(port {name}, queue {queue})")
            })?;
        }
        for queue in 0..config.tx_queues {
            // SAFETY: queue < tx_queues; NULL selects the default txconf.
            let ret = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, queue, tx_desc, socket, ptr::null())
            };
            check(ret, || {
                format!("rte_eth_tx_queue_setup(port {name}, queue {queue})")
            })?;
        }

        // Traffic for the gateway's own MAC is all we need, but virtual
        // devices and bonded setups often deliver other addresses; drivers
        // that cannot do it are fine as they are.
        // SAFETY: valid port id.
        let ret = unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        if ret != -libc::ENOTSUP {
            check(ret, || op("rte_eth_promiscuous_enable"))?;
        }

        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(port_id, &mut mac) };
        check(ret, || op("rte_eth_macaddr_get"))?;

        // SAFETY: valid port id, every queue set up.
        let ret = unsafe { sys::rte_eth_dev_start(port_id) };
        check(ret, || op("rte_eth_dev_start"))?;

        Ok(Port {
            id: port_id,
            name,
            mac: mac.addr_bytes,
            rx_users: (0..config.rx_queues)
                .map(|_| Exclusive::default())
                .collect(),
            tx_users: (0..config.tx_queues)
                .map(|_| Exclusive::default())
                .collect(),
            rx_desc,
            offloads,
            rss,
            _rings: Vec::new(),
            _pools: pools.iter().map(|&p| p.clone()).collect(),
            _claim: claim,
            _owner: owner,
        })
    }

    /// Creates a port over rings (`rte_eth_from_rings`) and starts it: RX queue
    /// `q` dequeues from `rx[q]`, TX queue `q` enqueues into `tx[q]`, and every
    /// RX queue is set up with `pool` (the driver allocates nothing from it).
    /// The device is named `net_ring_<name>`; like every vdev port it cannot be
    /// created again in this process once dropped.
    ///
    /// The port dequeues from `rx` and enqueues into `tx` behind the back of
    /// the [`Ring`] owners and their single-user checks, so an RX ring must be
    /// multi-consumer and a TX ring multi-producer; the other end of each may
    /// be single-user.
    pub fn start_on_rings(
        name: &str,
        rx: &[Arc<Ring>],
        tx: &[Arc<Ring>],
        pool: &Mempool,
    ) -> Result<Port, Error> {
        let device = format!("net_ring_{name}");
        let op = || format!("rte_eth_from_rings({device:?})");
        lifecycle::ensure_running(&op())?;
        let invalid = |detail: String| Error::invalid(op(), libc::EINVAL, detail);
        let rx_queues = u16::try_from(rx.len()).unwrap_or(u16::MAX);
        let tx_queues = u16::try_from(tx.len()).unwrap_or(u16::MAX);
        check_queue_count("RX", rx_queues, sys::RTE_PMD_RING_MAX_RX_RINGS as u16)
            .map_err(invalid)?;
        check_queue_count("TX", tx_queues, sys::RTE_PMD_RING_MAX_TX_RINGS as u16)
            .map_err(invalid)?;
        let rx_raw = rx
            .iter()
            .map(|r| shared_ring_end(r, sys::RING_F_SC_DEQ, "single-consumer"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let tx_raw = tx
            .iter()
            .map(|r| shared_ring_end(r, sys::RING_F_SP_ENQ, "single-producer"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let cname =
            CString::new(name).map_err(|_| invalid("the name contains a NUL byte".to_owned()))?;

        // SAFETY: EAL running; the arrays hold live rings (the Arcs, kept by
        // the Port below, keep them so) and their lengths are checked above;
        // all ones is SOCKET_ID_ANY through the unsigned parameter.
        let ret = unsafe {
            sys::rte_eth_from_rings(
                cname.as_ptr(),
                rx_raw.as_ptr(),
                u32::from(rx_queues),
                tx_raw.as_ptr(),
                u32::from(tx_queues),
                sys::SOCKET_ID_ANY as u32,
            )
        };
        let port_id = u16::try_from(ret).map_err(|_| Error::from_rte_errno(op()))?;

        let config = PortConfig {
            rx_queues,
            tx_queues,
            ..PortConfig::default()
        };
        match Port::start_with_pools(port_id, &config, &vec![pool; rx.len()]) {
            Ok(mut port) => {
                port._rings = rx.iter().chain(tx).cloned().collect();
                Ok(port)
            }
            Err(e) => {
                // The device exists but no Port owns it: close it, which releases
                // the port, so that nothing keeps pointers to the rings.
                // SAFETY: EAL running; a valid port id that is not started.
                unsafe { sys::rte_eth_dev_close(port_id) };
                Err(e)
            }
        }
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The device name, e.g. `net_ring0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port's MAC address (read when it started).
    pub fn mac_addr(&self) -> [u8; 6] {
        self.mac
    }

    /// The port's MTU as DPDK has it (`rte_eth_dev_get_mtu`): the largest IP packet
    /// the link carries.
    pub fn mtu(&self) -> Result<u16, Error> {
        let mut mtu = 0u16;
        // SAFETY: our started port; valid out-pointer.
        let ret = unsafe { sys::rte_eth_dev_get_mtu(self.id, &mut mtu) };
        check(ret, || format!("rte_eth_dev_get_mtu(port {})", self.name))?;
        Ok(mtu)
    }

    /// Whether the device spreads received packets over the RX queues by a hash of
    /// their addresses and UDP ports (RSS, enabled with more than one queue where the
    /// device has it).
    pub fn rss(&self) -> bool {
        self.rss
    }

    /// The checksum offloads the port was started with.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// Descriptors of each RX queue as set up (after the driver's adjustment). A driver
    /// may size its rings otherwise (memif takes the client's).
    pub fn rx_desc(&self) -> u16 {
        self.rx_desc
    }

    /// The link's speed in Mbit/s, if the driver reports one (without waiting for
    /// negotiation).
    pub fn link_speed_mbps(&self) -> Option<u32> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: our started port; valid out-pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        let speed = link.link_speed;
        (ret == 0
            && speed != sys::RTE_ETH_SPEED_NUM_NONE
            && speed != sys::RTE_ETH_SPEED_NUM_UNKNOWN)
            .then_some(speed)
    }

    /// Whether the link is up, without waiting for negotiation.
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: our started port; valid out-pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        ret == 0 && link.link_status() != 0
    }

    /// The port counters; all zero if the driver cannot report them.
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: our started port; valid out-pointer.
        if unsafe { sys::rte_eth_stats_get(self.id, &mut s) } != 0 {
            return PortStats::default();
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Receives up to `max` packets from RX queue `queue`, appending them to
    /// `out` (which grows if needed); returns how many arrived.
    ///
    /// # Panics
    /// If `queue` does not exist, or another thread is using it right now.
    #[inline]
    pub fn rx_burst(&self, queue: u16, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let _user = self.rx_users[usize::from(queue)]
            .enter(|| format!("RX queue {queue} of port {}", self.name));
        let max = max.min(usize::from(u16::MAX));
        out.reserve(max);
        // SAFETY: queue exists and is used only by this thread (guard); the
        // spare capacity holds `max` pointers and Mbuf is a transparent
        // rte_mbuf pointer; DPDK writes `n` owned mbufs there.
        unsafe {
            let spare = out.as_mut_ptr().add(out.len()).cast::<*mut sys::rte_mbuf>();
            let n = usize::from(sys::rte_eth_rx_burst(self.id, queue, spare, max as u16));
            out.set_len(out.len() + n);
            n
        }
    }

    /// Sends packets from the front of `pkts` on TX queue `queue`; the sent
    /// ones leave `pkts` (the driver frees them), the rest stay in order.
    /// Returns how many were sent.
    ///
    /// # Panics
    /// If `queue` does not exist, or another thread is using it right now.
    #[inline]
    pub fn tx_burst(&self, queue: u16, pkts: &mut Vec<Mbuf>) -> usize {
        let _user = self.tx_users[usize::from(queue)]
            .enter(|| format!("TX queue {queue} of port {}", self.name));
        let count = pkts.len().min(usize::from(u16::MAX)) as u16;
        // SAFETY: queue exists and is used only by this thread (guard); the
        // Vec holds `count` owned mbufs laid out as rte_mbuf pointers.
        let sent = usize::from(unsafe {
            sys::rte_eth_tx_burst(self.id, queue, pkts.as_mut_ptr().cast(), count)
        });
        // The driver owns the sent mbufs now: remove them without freeing.
        pkts.drain(..sent).for_each(std::mem::forget);
        sent
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("rx_queues", &self.rx_users.len())
            .field("tx_queues", &self.tx_users.len())
            .finish()
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // SAFETY: we own the started port and nobody uses its queues any more
        // (`&mut self`). Failures cannot be acted upon here: close releases
        // the port whatever stop reported.
        unsafe {
            sys::rte_eth_dev_stop(self.id);
            sys::rte_eth_dev_close(self.id);
        }
    }
}

fn check(ret: i32, op: impl FnOnce() -> String) -> Result<(), Error> {
    if ret < 0 {
        Err(Error::from_ret(op(), ret))
    } else {
        Ok(())
    }
}

fn check_queue_count(kind: &str, requested: u16, max: u16) -> Result<(), String> {
    if requested == 0 {
        Err(format!("at least one {kind} queue is needed"))
    } else if requested > max {
        Err(format!(
            "{requested} {kind} queues requested, the device supports at most {max}"
        ))
    } else {
        Ok(())
    }
}

/// `ring`'s pointer, if the end of it that a port uses (`flag` names the
/// single-user mode of that end) may be shared with the ring's owner.
fn shared_ring_end(ring: &Ring, flag: u32, mode: &str) -> Result<*mut sys::rte_ring, String> {
    // Ring names are unique while the ring lives, so the lookup finds the ring
    // `ring` owns; it does not expose its pointer.
    let name = CString::new(ring.name()).expect("a ring name has no NUL byte");
    // SAFETY: EAL running (the Ring exists); valid C string.
    let raw = unsafe { sys::rte_ring_lookup(name.as_ptr()) };
    if raw.is_null() {
        return Err(format!("ring {} not found by name", ring.name()));
    }
    // SAFETY: a live ring (found above, kept by `ring`); flags never change.
    if unsafe { (*raw).flags } as u32 & flag != 0 {
        return Err(format!(
            "ring {} is {mode}, but the port shares that end with its owner",
            ring.name()
        ));
    }
    Ok(raw)
}

/// The checksum work a port does for the gateway: each is enabled when the device has
/// it, and the packet path relies on it only then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Received IPv4 headers come with their checksum verdict (`Mbuf::rx_ipv4_checksum`).
    pub rx_ipv4_checksum: bool,
    /// The device fills the IPv4 header checksum of packets that ask for it.
    pub tx_ipv4_checksum: bool,
    /// The device fills the UDP checksum of packets that ask for it.
    pub tx_udp_checksum: bool,
}

impl Offloads {
    fn of(info: &sys::rte_eth_dev_info) -> Offloads {
        let rx = |f: u32| info.rx_offload_capa & u64::from(f) != 0;
        let tx = |f: u32| info.tx_offload_capa & u64::from(f) != 0;
        Offloads {
            rx_ipv4_checksum: rx(sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM),
            tx_ipv4_checksum: tx(sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM),
            tx_udp_checksum: tx(sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM),
        }
    }

    fn rx_flags(self) -> u64 {
        if self.rx_ipv4_checksum {
            u64::from(sys::RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)
        } else {
            0
        }
    }

    fn tx_flags(self) -> u64 {
        let mut f = 0;
        if self.tx_ipv4_checksum {
            f |= u64::from(sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
        }
        if self.tx_udp_checksum {
            f |= u64::from(sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
        }
        f
    }
}

fn dev_info(port_id: u16) -> Result<sys::rte_eth_dev_info, Error> {
    let mut info = MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
    // SAFETY: any port id is accepted (invalid ones fail with -ENODEV); the
    // out-pointer is valid and an all-zero rte_eth_dev_info is a valid value.
    let ret = unsafe { sys::rte_eth_dev_info_get(port_id, info.as_mut_ptr()) };
    check(ret, || format!("rte_eth_dev_info_get(port {port_id})"))?;
    // SAFETY: zero-initialised and filled in by DPDK.
    Ok(unsafe { info.assume_init() })
}

fn port_name(port_id: u16) -> Result<String, Error> {
    let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: the buffer has the RTE_ETH_NAME_MAX_LEN bytes DPDK requires.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(port_id, buf.as_mut_ptr()) };
    check(ret, || {
        format!("rte_eth_dev_get_name_by_port(port {port_id})")
    })?;
    // SAFETY: DPDK wrote a NUL-terminated name into the buffer.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}
