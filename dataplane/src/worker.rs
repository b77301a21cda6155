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

use crate::activity::Table;
use crate::buf::PacketBuf;
use crate::clock::tsc;
use crate::counters::{Stage, TxDrop, WorkerCounters};
use crate::crypto::Backend;
use crate::spread::Crew;
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
    /// After a run of empty polls, sleep a little, longer as the quiet lasts, but never
    /// longer than `max_sleep` (see [`Idle::adaptive`]).
    Adaptive { max_sleep: Duration },
}

/// Packets a worker's stages may hold in flight (with a crypto device, or while helpers
/// have their AEAD) before it stops reading its queues, which then hold what arrives.
pub const FLIGHT_LIMIT: usize = 4 * MAX_BURST;

/// Empty polls before the first sleep, and between doublings of the sleep.
const QUIET_POLLS: u32 = 64;
/// The first sleep, and the longest whatever the rings.
const MIN_SLEEP: Duration = Duration::from_micros(1);
const MAX_SLEEP: Duration = Duration::from_micros(256);
/// The link speed assumed for a port whose driver reports none (Mbit/s).
const UNKNOWN_SPEED_MBPS: u32 = 100_000;

impl Idle {
    /// Adaptive idle for ports whose RX queues have `(descriptors, link Mbit/s)`: the
    /// longest sleep is half the time the smallest of them takes to fill with
    /// minimum-size frames at line rate (84 bytes on the wire each: 64 + preamble and
    /// inter-frame gap), within 1..=256 µs, so that a burst arriving during a sleep
    /// finds room. A link of unknown speed counts as 100 Gbit/s.
    pub fn adaptive(rings: &[(u16, Option<u32>)]) -> Idle {
        let fill = rings
            .iter()
            .map(|&(desc, mbps)| {
                let pps = f64::from(mbps.unwrap_or(UNKNOWN_SPEED_MBPS)) * 1e6 / (84.0 * 8.0);
                Duration::from_secs_f64(f64::from(desc.max(1)) / pps / 2.0)
            })
            .min()
            .unwrap_or(MAX_SLEEP);
        Idle::Adaptive {
            max_sleep: fill.clamp(MIN_SLEEP, MAX_SLEEP),
        }
    }

    /// The sleep after `quiet` empty polls in a row, if any: none before
    /// `QUIET_POLLS`, then 1 µs, doubling every `QUIET_POLLS` up to `max_sleep`.
    pub fn sleep_after(self, quiet: u32) -> Option<Duration> {
        match self {
            Idle::Poll => None,
            Idle::Adaptive { max_sleep } => (quiet > QUIET_POLLS).then(|| {
                let doublings = ((quiet - QUIET_POLLS) / QUIET_POLLS).min(8);
                (MIN_SLEEP * (1 << doublings)).min(max_sleep)
            }),
        }
    }
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
    activity: Arc<Table>,
    backend: Backend,
    /// Sharing AEAD work with the other workers (module `spread`).
    crew: Crew<I::Buf>,
    burst: usize,
    v: Vectors<I::Buf>,
    /// Stopping: polls read no new packets, only finish what is in flight.
    draining: bool,
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
            activity: shared.activity.writer(),
            shared,
            counters,
            backend,
            crew: Crew::solo(),
            burst: burst.clamp(1, MAX_BURST),
            v: Vectors::default(),
            draining: false,
        }
    }

    /// Work with the other workers of `crew` (from `spread::crews`): serve their tasks,
    /// and hand them some of this worker's AEAD when it cannot keep up, if `share` and
    /// the backend works in line (a crypto device is already another engine).
    pub fn with_crew(mut self, mut crew: Crew<I::Buf>, share: bool) -> Self {
        crew.set_enabled(share && !self.backend.is_async());
        self.crew = crew;
        self
    }

    /// Where this worker's AEAD runs.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// One pass over every queue; the number of packets that entered (from the ports and
    /// from control) and that it did AEAD work on for other workers.
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
        // A worker whose flights are long (its helpers are behind) reads no more until
        // they shorten: its queues hold what arrives meanwhile.
        let flying = decrypt::in_flight(scratch) + encrypt::in_flight(enc_scratch);
        if !self.draining && flying < FLIGHT_LIMIT {
            self.io.rx(Side::Outside, rx, self.burst);
            self.io.rx(Side::Inside, rx_inside, self.burst);
            self.io.control_frames(control, self.burst);
        }
        self.crew.note_load(rx.len() + rx_inside.len());
        mark(Stage::Rx, rx.len() + rx_inside.len());
        let helped = self.crew.serve(&mut self.backend, c);
        if rx.is_empty() && rx_inside.is_empty() && control.is_empty() && flying == 0 {
            return helped;
        }
        let tables = self.shared.tables.load();
        let neighbors = self.shared.neighbors.load();
        let mut p = Poll {
            now: self.io.now(),
            tables: &tables,
            neighbors: &neighbors,
            sessions: &self.shared.sessions,
            counters: c,
            activity: &self.activity,
            backend: &mut self.backend,
            crew: Some(&mut self.crew),
            dropped,
        };
        let mut seen = helped;

        // Outside: encrypted traffic in. With an asynchronous crypto backend, decrypt also
        // runs without new packets while some are in flight, to collect them.
        let n = rx.len();
        if n > 0 {
            seen += n;
            c.traffic.rx_outside.add(n as u64);
            c.traffic.vectors.inc();
            c.traffic.vector_packets.add(n as u64);
            classify::outside(&mut p, rx, transport, sources, punt);
            mark(Stage::Classify, n);
        }
        let n = transport.len();
        if n > 0 || decrypt::in_flight(scratch) > 0 {
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
        if n > 0 || encrypt::in_flight(enc_scratch) > 0 {
            encrypt::run(&mut p, to_peer, enc_scratch, to_outside, punt);
            mark(Stage::Encrypt, n);
        }

        // Frames the control thread built (handshakes, ARP replies, released queues).
        if !control.is_empty() {
            let n = control.len();
            seen += n;
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
    ///
    /// With adaptive idle, the thread's timer slack is set to 1 ns first: the kernel's
    /// default of 50 µs would stretch every "1 µs" sleep to about 50 µs.
    pub fn run(&mut self, stop: &AtomicBool, idle: Idle) {
        if matches!(idle, Idle::Adaptive { .. }) {
            crate::clock::set_timer_slack_ns(1);
        }
        let mut quiet = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let n = self.poll();
            self.counters.traffic.polls.inc();
            if n > 0 {
                self.counters.traffic.busy_polls.inc();
                quiet = 0;
                continue;
            }
            if self.in_flight() > 0 {
                // The crypto device is working for us: no sleeping.
                continue;
            }
            quiet = quiet.saturating_add(1);
            if let Some(d) = idle.sleep_after(quiet) {
                std::thread::sleep(d);
            }
        }
        self.drain();
    }

    /// Packets handed to an asynchronous crypto backend and not yet out of the worker.
    pub fn in_flight(&self) -> usize {
        decrypt::in_flight(&self.v.scratch) + encrypt::in_flight(&self.v.enc_scratch)
    }

    /// Finish what is in flight without taking new packets, and serve the other workers
    /// until none has a task out, so that a stop loses nothing; gives up after the crypto
    /// device's own timeout has long passed (1 s).
    pub fn drain(&mut self) {
        self.draining = true;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while (self.in_flight() > 0 || self.crew.outstanding() > 0)
            && std::time::Instant::now() < deadline
        {
            self.poll();
        }
        self.draining = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_sleep_fits_the_smallest_ring_at_line_rate() {
        // 1024 descriptors at 10 Gbit/s fill in 1024 / 14.88 Mpps = 68.8 µs: half is 34 µs.
        let Idle::Adaptive { max_sleep } = Idle::adaptive(&[(1024, Some(10_000))]) else {
            panic!("adaptive");
        };
        assert_eq!(max_sleep.as_micros(), 34);
        // The faster or smaller ring decides; unknown speed counts as 100 Gbit/s.
        let Idle::Adaptive { max_sleep } = Idle::adaptive(&[(4096, Some(10_000)), (1024, None)])
        else {
            panic!("adaptive");
        };
        assert_eq!(max_sleep.as_micros(), 3);
        // Within 1..=256 µs.
        assert_eq!(
            Idle::adaptive(&[(64, Some(400_000))]),
            Idle::Adaptive {
                max_sleep: MIN_SLEEP
            }
        );
        assert_eq!(
            Idle::adaptive(&[(u16::MAX, Some(1_000))]),
            Idle::Adaptive {
                max_sleep: MAX_SLEEP
            }
        );
    }

    #[test]
    fn sleeps_start_after_a_run_of_empty_polls_and_double_up_to_the_cap() {
        let idle = Idle::Adaptive {
            max_sleep: Duration::from_micros(34),
        };
        assert_eq!(idle.sleep_after(QUIET_POLLS), None);
        let us = |q| idle.sleep_after(q).map(|d| d.as_micros());
        assert_eq!(us(QUIET_POLLS + 1), Some(1));
        assert_eq!(us(2 * QUIET_POLLS), Some(2));
        assert_eq!(us(6 * QUIET_POLLS), Some(32));
        assert_eq!(us(7 * QUIET_POLLS), Some(34));
        assert_eq!(us(u32::MAX), Some(34));
        assert_eq!(Idle::Poll.sleep_after(u32::MAX), None);
    }
}
