//! The wgdp packet path.
//!
//! Typed views over packet bytes ([`wire`]), the vectors and stages a worker pushes its
//! bursts through ([`stages`], [`worker`]), transport crypto ([`crypto`]), the replay
//! window ([`replay`]), cryptokey routing and inside routes ([`lpm`], [`tables`]), the
//! keypairs control publishes to workers ([`session`]), per-worker counters
//! ([`counters`]) and each worker's count of every peer's traffic ([`activity`]), and one worker's AEAD
//! work shared with the others ([`spread`]). I/O is behind [`worker::Io`]: the stages and the loop run on plain
//! memory ([`buf::HeapBuf`]) in tests and on DPDK mbufs in production.

pub mod activity;
pub mod allowed;
pub mod buf;
pub mod clock;
pub mod counters;
pub mod crypto;
pub mod doorbell;
pub mod ecn;
pub mod lpm;
pub mod mbuf;
pub mod memio;
pub mod meta;
pub mod offload;
pub mod replay;
pub mod session;
pub mod spread;
pub mod stages;
pub mod tables;
pub mod wire;
pub mod worker;
