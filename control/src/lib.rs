//! wgdp's control plane: configuration, the WireGuard handshake engine, the control
//! thread's logic (handshakes, timers, ARP/ND), metrics (Prometheus and DPDK telemetry)
//! and the DPDK runtime that ties workers and control together. The `wgdp` binary is a
//! thin CLI over [`gateway`].

pub mod config;
pub mod export;
pub mod gateway;
pub mod keys;
pub mod metrics;
pub mod noise;
pub mod plane;
pub mod reload;
pub mod runtime;
pub mod tap;
pub mod uapi;
