//! The data path on DPDK: [`PacketBuf`] for mbufs, and [`DpdkIo`], a worker's queues on
//! two DPDK ports and its two rings to and from the control thread.

use crate::buf::{PacketBuf, RxChecksum, TxChecksum};
use crate::clock;
use crate::tables::Side;
use crate::worker::Io;
use dpdk_sys::{Mbuf, Mempool, Port, Ring};
use std::sync::Arc;

/// Lengths above an mbuf's 16-bit fields cannot be asked of a single segment.
#[inline]
fn short(n: usize) -> Option<u16> {
    u16::try_from(n).ok()
}

impl PacketBuf for Mbuf {
    #[inline]
    fn prefetch(&self, offset: isize, write: bool) {
        Mbuf::prefetch(self, offset, write)
    }
    #[inline]
    fn rx_ipv4_checksum(&self) -> RxChecksum {
        Mbuf::rx_ipv4_checksum(self)
    }
    #[inline]
    fn offload_tx_checksum(&mut self, l2_len: u8, l3_len: u16, what: TxChecksum) {
        Mbuf::offload_tx_checksum(self, l2_len, l3_len, what)
    }
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::prepend(self, short(n)?)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        short(n).is_some_and(|n| Mbuf::adj(self, n))
    }
    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        Mbuf::append(self, short(n)?)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        short(n).is_some_and(|n| Mbuf::trim(self, n))
    }
    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self) as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self) as usize
    }
    #[inline]
    fn port(&self) -> u16 {
        Mbuf::port(self)
    }
    #[inline]
    fn set_port(&mut self, port: u16) {
        Mbuf::set_port(self, port)
    }
    #[inline]
    fn meta(&self) -> u64 {
        self.user()
    }
    #[inline]
    fn set_meta(&mut self, meta: u64) {
        self.set_user(meta)
    }
    #[inline]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }
    #[inline]
    fn as_mbuf_mut(&mut self) -> Option<&mut Mbuf> {
        Some(self)
    }
    #[inline]
    fn free_all(bufs: &mut Vec<Mbuf>) {
        Mbuf::free_bulk(bufs)
    }
}

/// One worker's queues: queue `queue` of both ports, and its rings to and from control.
pub struct DpdkIo {
    pub ports: [Arc<Port>; 2],
    pub queue: u16,
    pub to_control: Arc<Ring>,
    pub from_control: Arc<Ring>,
    /// Where the pieces of cut super-packets come from.
    pub pool: Mempool,
    /// Rung after packets are handed to control, which may be asleep.
    pub doorbell: Option<Arc<crate::doorbell::Doorbell>>,
}

impl Io for DpdkIo {
    type Buf = Mbuf;

    #[inline]
    fn rx(&mut self, side: Side, out: &mut Vec<Mbuf>, max: usize) {
        self.ports[side.index()].rx_burst(self.queue, out, max);
    }

    #[inline]
    fn tx(&mut self, side: Side, pkts: &mut Vec<Mbuf>) {
        self.ports[side.index()].tx_burst(self.queue, pkts);
    }

    #[inline]
    fn punt(&mut self, pkts: &mut Vec<Mbuf>) {
        self.to_control.enqueue_burst(pkts);
        if let Some(d) = &self.doorbell {
            d.ring();
        }
    }

    #[inline]
    fn control_frames(&mut self, out: &mut Vec<Mbuf>, max: usize) {
        self.from_control.dequeue_burst(out, max);
    }

    #[inline]
    fn alloc(&mut self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        self.pool.alloc_bulk(out, n)
    }

    #[inline]
    fn now(&self) -> u64 {
        clock::now_ns()
    }
}
