//! Bindings to the system DPDK (22.11, found with pkg-config) and thin safe
//! owners for the objects wgdp uses.
//!
//! - [`sys`]: the raw bindgen output, including wrappers for DPDK's
//!   static-inline fast-path functions (`rte_eth_rx_burst`,
//!   `rte_pktmbuf_alloc`, `rte_ring_enqueue_burst`, ...).
//! - [`Eal`], [`Mempool`], [`Mbuf`], [`Port`], [`Ring`], [`CryptoDev`]: owners that free what
//!   they own on drop. Each module states who frees what and which threads
//!   may call what.
//! - [`telemetry`]: commands on DPDK's telemetry socket answered by Rust
//!   closures.
//!
//! This crate is the only place in wgdp with `unsafe` code that touches DPDK.
//!
//! Order of teardown: mbufs, then rings and ports, then mempools, then the
//! `Eal`. Getting it wrong is caught where possible (a pool with mbufs out is
//! leaked rather than freed; the EAL is not cleaned up while an owner lives).
//!
//! DPDK drivers are not linked: the shared EAL loads every driver from its
//! compiled-in plugin directory (on Debian `/usr/lib/<triplet>/dpdk/pmds-23.0`)
//! at `rte_eal_init`, so `--vdev net_ring0`, `net_null0`, `net_af_packet0` or
//! `net_af_xdp0` need no `-d` option.

mod cryptodev;
mod eal;
mod error;
mod exclusive;
mod fib;
pub mod ipsec_mb;
mod lifecycle;
mod mbuf;
mod mempool;
mod port;
mod ring;
pub mod sys;
pub mod telemetry;

pub use cryptodev::{
    AeadBatch, AeadDirection, AeadSession, CryptoDev, CryptoDevConfig, CryptoQueue,
    CryptoQueueStats, Refused, AEAD_IV_LEN, AEAD_KEY_LEN, AEAD_TAG_LEN, DEFAULT_CRYPTO_TIMEOUT,
    MAX_AEAD_BATCH,
};
pub use eal::{running as eal_running, version, Eal, LCORE_PANICKED};
pub use error::Error;
pub use fib::{Fib4, FIB4_MAX_NEXT_HOP};
pub use mbuf::{prefetch, Mbuf, RxChecksum, TxChecksum};
pub use mempool::Mempool;
pub use port::{Offloads, Port, PortConfig, PortStats};
pub use ring::Ring;

/// "No NUMA preference", for [`Mempool::pktmbuf`].
pub const SOCKET_ID_ANY: i32 = sys::SOCKET_ID_ANY;
