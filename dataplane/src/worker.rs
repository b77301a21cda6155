//! The poll-mode worker: one per configured lcore, each with its own queues.
//!
//! Contract: [`Worker::poll`] reads one burst from each port, pushes the vectors through
//! the stages, transmits what is ready, hands what needs the control thread to it, and
//! sends the frames control queued for this worker. It reads the clock once per poll and
//! loads the published tables once per poll. [`Worker::run`] polls until told to stop,
//! sleeping when idle if asked to. Every packet that enters a poll leaves it: sent, handed
//! to control, or dropped under a named counter; no buffer outlives the worker.
//!
//! I/O sits behind [`Io`], so the loop and every stage run on plain memory in tests and
//! on DPDK queues and rings in production.

use crate::buf::PacketBuf;
use crate::clock::tsc;
use crate::counters::{Stage, TxDrop, WorkerCounters};
use crate::crypto::Backend;
use crate::stages::{classify, decrypt, encrypt, offload, route};
use crate::tables::{Shared, Side};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest vector (and burst).
pub const MAX_BURST: usize = 256;

/// A worker's queues.
pub trait Io {
    type Buf: PacketBuf;
    /// Append up to `max` received frames of `side` to `out`.
    fn rx(&mut self, side: Side, out: &mut Vec<Self::Buf>, max: usize);
    /// Send from the front of `pkts`; what could not be sent stays in `pkts`.
    fn tx(&mut self, side: Side, pkts: &mut Vec<Self::Buf>);
    /// Hand packets to the control thread; what did not fit stays in `pkts`.
    fn punt(&mut self, pkts: &mut Vec<Self::Buf>);
    /// Append up to `max` frames control wants sent (`meta::send_on`).
    fn control_frames(&mut self, out: &mut Vec<Self::Buf>, max: usize);
    /// Append `n` empty packet buffers to `out`, or none (false) if the pool is short.
    fn alloc(&mut self, out: &mut Vec<Self::Buf>, n: usize) -> bool;
    /// `clock::now_ns`, or a simulated clock in tests.
    fn now(&self) -> u64;
}

/// How a worker waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Spin on the queues (lowest latency, one core at 100 %).
    Poll,
    /// After a run of empty polls, sleep a little, longer as the quiet lasts.
    Adaptive,
}

/// The vectors a poll passes between stages; allocated once per worker.
pub struct Vectors<B> {
    rx: Vec<B>,
    transport: Vec<B>,
    sources: Vec<classify::Origin>,
    plain: Vec<B>,
    finished: Vec<B>,
    to_peer: Vec<B>,
    to_inside: Vec<B>,
    to_outside: Vec<B>,
    punt: Vec<B>,
    control: Vec<B>,
    scratch: decrypt::Scratch<B>,
    enc_scratch: encrypt::Scratch<B>,
}

impl<B> Default for Vectors<B> {
    fn default() -> Self {
        let v = || Vec::with_capacity(MAX_BURST * 2);
        Vectors {
            rx: v(),
            transport: v(),
            sources: Vec::with_capacity(MAX_BURST),
            plain: v(),
            finished: v(),
            to_peer: v(),
            to_inside: v(),
            to_outside: v(),
            punt: v(),
            control: v(),
            scratch: decrypt::Scratch::default(),
            enc_scratch: encrypt::Scratch::default(),
        }
    }
}

pub struct Worker<I: Io> {
    pub io: I,
    shared: Arc<Shared>,
    counters: Arc<WorkerCounters>,
    backend: Backend,
    burst: usize,
    v: Vectors<I::Buf>,
}

impl<I: Io> Worker<I> {
    pub fn new(
        io: I,
        shared: Arc<Shared>,
        counters: Arc<WorkerCounters>,
        backend: Backend,
        burst: usize,
    ) -> Self {
        Worker {
            io,
            shared,
            counters,
            backend,
            burst: burst.clamp(1, MAX_BURST),
            v: Vectors::default(),
        }
    }

    /// Where this worker's AEAD runs.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// One pass over every queue; the number of packets that entered.
    ///
    /// Each step's clocks go to the runtime accounting (`WorkerCounters::runtime`): one
    /// TSC read after each step that ran, none per packet.
    pub fn poll(&mut self) -> usize {
        let now = self.io.now();
        let tables = self.shared.tables.load();
        let neighbors = self.shared.neighbors.load();
        let sessions = &self.shared.sessions;
        let c = &*self.counters;
        let rt = &c.runtime;
        let v = &mut self.v;
        let mut seen = 0;
        let mut t = tsc();
        // Records `stage` over `n` packets from the last mark to now.
        let mut mark = |stage: Stage, n: usize| {
            let t1 = tsc();
            rt.record(stage, n, t1.wrapping_sub(t));
            t = t1;
        };

        // Outside: encrypted traffic in.
        self.io.rx(Side::Outside, &mut v.rx, self.burst);
        let n = v.rx.len();
        mark(Stage::Rx, n);
        if n > 0 {
            seen += n;
            c.traffic.rx_outside.add(n as u64);
            c.traffic.vectors.inc();
            c.traffic.vector_packets.add(n as u64);
            classify::outside(
                &mut v.rx,
                &tables,
                c,
                &mut v.transport,
                &mut v.sources,
                &mut v.punt,
            );
            mark(Stage::Classify, n);
            let n = v.transport.len();
            if n > 0 {
                decrypt::run(
                    &mut v.transport,
                    &v.sources,
                    sessions,
                    &mut self.backend,
                    now,
                    c,
                    &mut v.scratch,
                    &mut v.plain,
                );
                mark(Stage::Decrypt, n);
            }
            v.sources.clear();
            let n = v.plain.len();
            if n > 0 {
                route::run(
                    Side::Outside,
                    &mut v.plain,
                    &tables,
                    &neighbors,
                    c,
                    &mut v.to_peer,
                    &mut v.to_inside,
                    &mut v.punt,
                );
                mark(Stage::Route, n);
            }
        }

        // Inside: plaintext in.
        self.io.rx(Side::Inside, &mut v.rx, self.burst);
        let n = v.rx.len();
        mark(Stage::Rx, n);
        if n > 0 {
            seen += n;
            c.traffic.rx_inside.add(n as u64);
            c.traffic.vectors.inc();
            c.traffic.vector_packets.add(n as u64);
            classify::inside(&mut v.rx, &tables, c, &mut v.plain, &mut v.punt);
            mark(Stage::Classify, n);
            let n = v.plain.len();
            if n > 0 {
                let io = &mut self.io;
                offload::run(
                    &mut v.plain,
                    tables.port(Side::Inside),
                    tables.mtu,
                    c,
                    &mut |out, n| io.alloc(out, n),
                    &mut v.finished,
                );
                mark(Stage::Offload, n);
            }
            let n = v.finished.len();
            if n > 0 {
                route::run(
                    Side::Inside,
                    &mut v.finished,
                    &tables,
                    &neighbors,
                    c,
                    &mut v.to_peer,
                    &mut v.to_inside,
                    &mut v.punt,
                );
                mark(Stage::Route, n);
            }
        }

        let n = v.to_peer.len();
        if n > 0 {
            encrypt::run(
                &mut v.to_peer,
                &tables,
                &neighbors,
                sessions,
                &mut self.backend,
                now,
                c,
                &mut v.enc_scratch,
                &mut v.to_outside,
                &mut v.punt,
            );
            mark(Stage::Encrypt, n);
        }

        // Frames the control thread built (handshakes, ARP replies, released queues).
        self.io.control_frames(&mut v.control, self.burst);
        if !v.control.is_empty() {
            let n = v.control.len();
            c.traffic.from_control.add(n as u64);
            for pkt in v.control.drain(..) {
                match crate::meta::side(pkt.meta()) {
                    Side::Outside => v.to_outside.push(pkt),
                    Side::Inside => v.to_inside.push(pkt),
                }
            }
            mark(Stage::Control, n);
        }

        let n = v.to_outside.len() + v.to_inside.len() + v.punt.len();
        if n > 0 {
            transmit(&mut self.io, Side::Outside, &mut v.to_outside, c);
            transmit(&mut self.io, Side::Inside, &mut v.to_inside, c);
            if !v.punt.is_empty() {
                self.io.punt(&mut v.punt);
                c.tx.add(TxDrop::ControlRingFull, v.punt.len() as u64);
                v.punt.clear();
            }
            mark(Stage::Tx, n);
        }
        seen
    }

    /// Poll until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool, idle: Idle) {
        let mut quiet = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let n = self.poll();
            self.counters.traffic.polls.inc();
            if n > 0 {
                self.counters.traffic.busy_polls.inc();
                quiet = 0;
                continue;
            }
            quiet = quiet.saturating_add(1);
            if idle == Idle::Adaptive && quiet > 64 {
                // From 1 µs after 64 empty polls up to 256 µs: a burst after a quiet spell
                // waits at most that long, and an idle gateway does not burn its cores.
                let us = 1u64 << ((quiet - 64) / 64).min(8);
                std::thread::sleep(Duration::from_micros(us));
            }
        }
    }
}

/// Send a vector out of `side`, retrying a few times while the queue drains; what still
/// does not fit is dropped and counted.
fn transmit<I: Io>(io: &mut I, side: Side, pkts: &mut Vec<I::Buf>, c: &WorkerCounters) {
    if pkts.is_empty() {
        return;
    }
    let total = pkts.len() as u64;
    for _ in 0..4 {
        io.tx(side, pkts);
        if pkts.is_empty() {
            break;
        }
    }
    let left = pkts.len() as u64;
    let sent = total - left;
    match side {
        Side::Outside => c.traffic.tx_outside.add(sent),
        Side::Inside => c.traffic.tx_inside.add(sent),
    }
    if left > 0 {
        c.tx.add(TxDrop::QueueFull, left);
        pkts.clear();
    }
}
