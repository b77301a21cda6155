//! The control loop: one round of everything the control thread does, the same in
//! `wgdp` and in the simulated-clock tests.
//!
//! Contract: [`ControlPlane::round`] takes the time and a [`ControlIo`] (the workers'
//! rings, the packet pool and the control port in production; plain memory in tests).
//! It handles what the workers handed over, works through waiting handshake messages
//! (at most [`HANDSHAKE_BUDGET`]), takes frames from the control port, runs the timers
//! that are due, and gives the frames to send to the `ControlIo`. It returns how much
//! it did and when it next has something to do by itself ([`Round::next_deadline`]): a
//! caller with nothing else to do sleeps until then or until a worker hands it a packet
//! (`dataplane::doorbell`), rather than waking on a fixed tick. Timers are data
//! (module `timers`), so a round costs what is due, not what is configured.

use super::{ControlPlane, Now};
use dataplane::buf::{HeapBuf, PacketBuf};
use dataplane::memio::MemIo;
use rand_core::{CryptoRng, RngCore};

/// Handshake messages a round works through; the rest wait in the bounded queue (and
/// under load, in the cookie mechanism), so that a flood cannot starve the rest of the
/// round.
pub const HANDSHAKE_BUDGET: usize = 32;

/// Frames read from the control port per round, so that a busy kernel cannot starve
/// the rings.
const HOST_FRAMES: usize = 64;

/// Largest frame the control port hands over (its MTU is the tunnel's, with room for
/// any header).
const HOST_FRAME_ROOM: usize = 65536;

/// What the control loop talks to.
pub trait ControlIo<B> {
    /// Appends the packets the workers handed over (a burst from each at most).
    fn receive(&mut self, into: &mut Vec<B>);
    /// Takes every frame of `frames` (each with `meta::send_on(side)`) for a worker to
    /// transmit; frames it cannot place are dropped and counted by it.
    fn transmit(&mut self, frames: &mut Vec<B>);
    /// A packet buffer, if the pool has one.
    fn alloc(&mut self) -> Option<B>;
    /// A frame the kernel sent on the control port, copied into `buf`: its length.
    fn read_host(&mut self, _buf: &mut [u8]) -> Option<usize> {
        None
    }
    /// Gives a frame to the kernel on the control port; false if it could not take it.
    fn write_host(&mut self, _frame: &[u8]) -> bool {
        false
    }
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Packets, messages and frames it handled (0: an idle round).
    pub work: usize,
    /// When the control plane next has work of its own (timers, retries, waiting
    /// handshake messages), on the `Now::mono` clock; `u64::MAX` for never.
    pub next_deadline: u64,
}

impl<B: PacketBuf, R: RngCore + CryptoRng> ControlPlane<B, R> {
    /// One round of the control loop at `now` (see the module's contract).
    pub fn round(&mut self, now: Now, io: &mut impl ControlIo<B>) -> Round {
        let mut batch = std::mem::take(&mut self.received);
        io.receive(&mut batch);
        let mut work = batch.len();
        for pkt in batch.drain(..) {
            self.handle(pkt, now, &mut || io.alloc());
        }
        self.received = batch;
        work += self.poll_handshakes(now, &mut || io.alloc(), HANDSHAKE_BUDGET);
        if self.host.is_some() {
            work += self.host_round(now, io);
        }
        if now.mono >= self.next_deadline() {
            self.tick(now, &mut || io.alloc());
        }
        if !self.out.is_empty() {
            io.transmit(&mut self.out);
        }
        Round {
            work,
            next_deadline: self.next_deadline(),
        }
    }

    /// The control port's part of a round: frames from the kernel, and those for it.
    fn host_round(&mut self, now: Now, io: &mut impl ControlIo<B>) -> usize {
        let mut buf = std::mem::take(&mut self.host_buf);
        buf.resize(HOST_FRAME_ROOM, 0);
        let mut work = 0;
        while work < HOST_FRAMES {
            let Some(n) = io.read_host(&mut buf) else {
                break;
            };
            work += 1;
            self.from_host(&buf[..n.min(buf.len())], now, &mut || io.alloc());
        }
        self.host_buf = buf;
        if let Some(h) = self.host.as_mut() {
            for f in h.to_host.drain(..) {
                if !io.write_host(&f) {
                    h.stats.queue_drops += 1;
                }
            }
        }
        work
    }

    /// When the control plane next has work of its own, on the `Now::mono` clock: the
    /// first peer timer, neighbor retry, or now if handshake messages or results of
    /// handshake work wait.
    pub fn next_deadline(&self) -> u64 {
        // Messages wait for the handshake threads to have room: a result wakes the
        // loop (`dh::Notify`), so it need not spin meanwhile.
        if (!self.handshakes.is_empty() && self.dh.has_room()) || self.dh.ready() {
            return 0;
        }
        self.timers
            .next_deadline()
            .min(self.resolver.next_deadline())
    }
}

/// A worker on plain memory (tests, fuzzing, examples): control takes what it punted
/// and gives it frames to send; buffers come from the heap.
impl ControlIo<HeapBuf> for MemIo {
    fn receive(&mut self, into: &mut Vec<HeapBuf>) {
        into.append(&mut self.punted);
    }

    fn transmit(&mut self, frames: &mut Vec<HeapBuf>) {
        self.control.extend(frames.drain(..));
    }

    fn alloc(&mut self) -> Option<HeapBuf> {
        Some(HeapBuf::new(&[]))
    }
}
