//! A worker's queues on plain memory: what tests feed a [`Worker`](crate::worker::Worker)
//! and what they read back, with a clock they set.

use crate::buf::HeapBuf;
use crate::tables::Side;
use crate::worker::Io;
use std::collections::VecDeque;

#[derive(Default)]
pub struct MemIo {
    /// Frames waiting to be received, per side (`Side::index`).
    pub rx: [VecDeque<HeapBuf>; 2],
    /// Frames the worker sent, per side.
    pub tx: [Vec<HeapBuf>; 2],
    /// Packets the worker handed to control.
    pub punted: Vec<HeapBuf>,
    /// Frames control wants the worker to send.
    pub control: VecDeque<HeapBuf>,
    pub now: u64,
}

impl Io for MemIo {
    type Buf = HeapBuf;
    fn rx(&mut self, side: Side, out: &mut Vec<HeapBuf>, max: usize) {
        let q = &mut self.rx[side.index()];
        let n = q.len().min(max);
        out.extend(q.drain(..n));
    }
    fn tx(&mut self, side: Side, pkts: &mut Vec<HeapBuf>) {
        self.tx[side.index()].append(pkts);
    }
    fn punt(&mut self, pkts: &mut Vec<HeapBuf>) {
        self.punted.append(pkts);
    }
    fn control_frames(&mut self, out: &mut Vec<HeapBuf>, max: usize) {
        let n = self.control.len().min(max);
        out.extend(self.control.drain(..n));
    }
    fn alloc(&mut self, out: &mut Vec<HeapBuf>, n: usize) -> bool {
        out.extend((0..n).map(|_| HeapBuf::new(&[])));
        true
    }
    fn now(&self) -> u64 {
        self.now
    }
}
