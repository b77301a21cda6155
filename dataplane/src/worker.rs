//! The poll-mode worker: one per configured lcore, each with its own queues.
//!
//! Contract: [`Worker::poll`] reads one burst from each port and the frames control
//! queued for this worker, pushes the vectors through the stages (one [`Poll`] context
//! for all of them), transmits what is ready, hands what needs the control thread to it,
//! and frees what was dropped in one call. A poll with work reads the clock once and
//! loads the published tables once; an empty poll reads neither. [`Worker::run`] polls
//! until told to stop, sleeping when idle if asked to. Every packet that enters a poll
//! leaves it: sent, handed to control, or dropped under a named counter; no buffer
//! outlives the worker.
//!
//! I/O sits behind [`Io`], so the loop and every stage run on plain memory in tests and
//! on DPDK queues and rings in production.

use crate::buf::PacketBuf;
use crate::clock::tsc;
use crate::counters::{Stage, TxDrop, WorkerCounters};
use crate::crypto::Backend;
use crate::stages::{classify, decrypt, encrypt, offload, route, Poll};
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
    rx_inside: Vec<B>,
    transport: Vec<B>,
    sources: Vec<classify::Origin>,
    plain: Vec<B>,
    finished: Vec<B>,
    to_peer: Vec<B>,
    to_inside: Vec<B>,
    to_outside: Vec<B>,
    punt: Vec<B>,
    control: Vec<B>,
    /// Packets dropped this poll, freed together at its end.
    dropped: Vec<B>,
    scratch: decrypt::Scratch<B>,
    route_scratch: route::Scratch,
    enc_scratch: encrypt::Scratch<B>,
}

impl<B> Default for Vectors<B> {
    fn default() -> Self {
        let v = || Vec::with_capacity(MAX_BURST * 2);
        Vectors {
            rx: v(),
            rx_inside: v(),
            transport: v(),
            sources: Vec::with_capacity(MAX_BURST),
            plain: v(),
            finished: v(),
            to_peer: v(),
            to_inside: v(),
            to_outside: v(),
            punt: v(),
            control: v(),
            dropped: v(),
            scratch: decrypt::Scratch::default(),
            route_scratch: route::Scratch::default(),
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
        let c = &*self.counters;
        let rt = &c.runtime;
        let Vectors {
            rx,
            rx_inside,
            transport,
            sources,
            plain,
            finished,
            to_peer,
            to_inside,
            to_outside,
            punt,
            control,
            dropped,
            scratch,
            route_scratch,
            enc_scratch,
        } = &mut self.v;
        let mut t = tsc();
        // Records `stage` over `n` packets from the last mark to now.
        let mut mark = |stage: Stage, n: usize| {
            let t1 = tsc();
            rt.record(stage, n, t1.wrapping_sub(t));
            t = t1;
        };

        // An empty poll costs the reads of the queues and nothing else: the clock and the
        // tables are read only when there is work.
        self.io.rx(Side::Outside, rx, self.burst);
        self.io.rx(Side::Inside, rx_inside, self.burst);
        self.io.control_frames(control, self.burst);
        mark(Stage::Rx, rx.len() + rx_inside.len());
        if rx.is_empty() && rx_inside.is_empty() && control.is_empty() {
            return 0;
        }
        let tables = self.shared.tables.load();
        let neighbors = self.shared.neighbors.load();
        let mut p = Poll {
            now: self.io.now(),
            tables: &tables,
            neighbors: &neighbors,
            sessions: &self.shared.sessions,
            counters: c,
            backend: &mut self.backend,
            dropped,
        };
        let mut seen = 0;

        // Outside: encrypted traffic in.
        let n = rx.len();
        if n > 0 {
            seen += n;
            c.traffic.rx_outside.add(n as u64);
            c.traffic.vectors.inc();
            c.traffic.vector_packets.add(n as u64);
            classify::outside(&mut p, rx, transport, sources, punt);
            mark(Stage::Classify, n);
            let n = transport.len();
            if n > 0 {
                decrypt::run(&mut p, transport, sources, scratch, plain);
                mark(Stage::Decrypt, n);
            }
            sources.clear();
            let n = plain.len();
            if n > 0 {
                route::run(
                    &mut p,
                    Side::Outside,
                    plain,
                    route_scratch,
                    to_peer,
                    to_inside,
                    punt,
                );
                mark(Stage::Route, n);
            }
        }

        // Inside: plaintext in.
        let n = rx_inside.len();
        if n > 0 {
            seen += n;
            c.traffic.rx_inside.add(n as u64);
            c.traffic.vectors.inc();
            c.traffic.vector_packets.add(n as u64);
            classify::inside(&mut p, rx_inside, plain, punt);
            mark(Stage::Classify, n);
            let n = plain.len();
            if n > 0 {
                let io = &mut self.io;
                offload::run(&mut p, plain, &mut |out, n| io.alloc(out, n), finished);
                mark(Stage::Offload, n);
            }
            let n = finished.len();
            if n > 0 {
                route::run(
                    &mut p,
                    Side::Inside,
                    finished,
                    route_scratch,
                    to_peer,
                    to_inside,
                    punt,
                );
                mark(Stage::Route, n);
            }
        }

        let n = to_peer.len();
        if n > 0 {
            encrypt::run(&mut p, to_peer, enc_scratch, to_outside, punt);
            mark(Stage::Encrypt, n);
        }

        // Frames the control thread built (handshakes, ARP replies, released queues).
        if !control.is_empty() {
            let n = control.len();
            c.traffic.from_control.add(n as u64);
            for pkt in control.drain(..) {
                match crate::meta::side(pkt.meta()) {
                    Side::Outside => to_outside.push(pkt),
                    Side::Inside => to_inside.push(pkt),
                }
            }
            mark(Stage::Control, n);
        }

        let n = to_outside.len() + to_inside.len() + punt.len();
        if n > 0 {
            transmit(&mut self.io, Side::Outside, to_outside, c);
            transmit(&mut self.io, Side::Inside, to_inside, c);
            if !punt.is_empty() {
                self.io.punt(punt);
                c.tx.add(TxDrop::ControlRingFull, punt.len() as u64);
                I::Buf::free_all(punt);
            }
            mark(Stage::Tx, n);
        }
        if !p.dropped.is_empty() {
            I::Buf::free_all(p.dropped);
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
#[inline(never)]
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
        I::Buf::free_all(pkts);
    }
}
