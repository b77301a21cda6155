//! The packet buffer the stages work on.
//!
//! Contract: a `PacketBuf` is one owned, contiguous packet with room to grow at both ends
//! (headroom for outer headers, tailroom for padding and the AEAD tag). Dropping it
//! returns it to where it came from (an mbuf to its mempool). Two words of metadata ride
//! along: `port` (the port it arrived on or must leave by) and `meta` (a stage's note to
//! the next consumer, such as why a packet was handed to the control thread: a
//! `meta::Note`, whose encoding says which kind of note it is).
//!
//! Checksum offloads ride along too: a receiving device's verdict on the IPv4 header and a
//! request to the transmitting one ([`RxChecksum`], [`TxChecksum`]).
//!
//! `dpdk_sys::Mbuf` implements it for the real data path; [`HeapBuf`] implements it on
//! plain memory so every stage and the worker loop run in unit tests.

pub use dpdk_sys::{RxChecksum, TxChecksum};

pub trait PacketBuf: Send {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grow at the front by `n` bytes and return them, or `None` without change if the
    /// headroom is too small.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Remove `n` bytes from the front; false without change if the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Grow at the back by `n` bytes and return them, or `None` without change.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Remove `n` bytes from the back; false without change if the packet is shorter.
    fn trim(&mut self, n: usize) -> bool;
    fn headroom(&self) -> usize;
    fn tailroom(&self) -> usize;
    fn port(&self) -> u16;
    fn set_port(&mut self, port: u16);
    /// The raw note: written with `meta::Note::encode` (or the `meta` helpers), read back
    /// with `meta::Note::decode`.
    fn meta(&self) -> u64;
    fn set_meta(&mut self, meta: u64);
    /// False for a chained (multi-segment) buffer, which the stages refuse.
    fn is_contiguous(&self) -> bool {
        true
    }
    /// The mbuf this buffer is, for a crypto device to work on; `None` for a buffer in
    /// plain memory.
    fn as_mbuf_mut(&mut self) -> Option<&mut dpdk_sys::Mbuf> {
        None
    }
    /// Start bringing the cache line at `offset` from the start of the data (negative: in
    /// the headroom) into the cache, `write` if it is about to be written. A hint.
    #[inline]
    fn prefetch(&self, _offset: isize, _write: bool) {}
    /// The receiving device's verdict on the IPv4 header checksum.
    fn rx_ipv4_checksum(&self) -> RxChecksum {
        RxChecksum::Unknown
    }
    /// Ask the transmitting device to fill a checksum (`dpdk_sys::Mbuf::offload_tx_checksum`
    /// says what the caller leaves in the headers). Only for a port whose tables say its
    /// device does it.
    fn offload_tx_checksum(&mut self, l2_len: u8, l3_len: u16, what: TxChecksum);
    /// Free every buffer of `bufs` and leave it empty (mbufs go back with one DPDK call).
    fn free_all(bufs: &mut Vec<Self>)
    where
        Self: Sized,
    {
        bufs.clear();
    }

    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.data().is_empty()
    }

    /// Set the length to `len` by trimming or appending (appended bytes are zeroed).
    fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len <= cur {
            self.trim(cur - len)
        } else {
            match self.append(len - cur) {
                Some(tail) => {
                    tail.fill(0);
                    true
                }
                None => false,
            }
        }
    }
}

/// A packet on the heap with fixed head- and tailroom, the stand-in for an mbuf in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
    port: u16,
    meta: u64,
    rx_checksum: RxChecksum,
    tx_checksum: Option<(u8, u16, TxChecksum)>,
}

/// Same headroom as an mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const HEAP_HEADROOM: usize = 128;
/// Same data room as a default mbuf (`RTE_MBUF_DEFAULT_DATAROOM`).
pub const HEAP_ROOM: usize = 2048;

impl HeapBuf {
    pub fn new(data: &[u8]) -> Self {
        Self::with_room(data, HEAP_HEADROOM, HEAP_ROOM)
    }

    pub fn with_room(data: &[u8], headroom: usize, room: usize) -> Self {
        assert!(headroom + data.len() <= room, "packet larger than its room");
        let mut storage = vec![0u8; room];
        storage[headroom..headroom + data.len()].copy_from_slice(data);
        HeapBuf {
            storage,
            start: headroom,
            end: headroom + data.len(),
            port: 0,
            meta: 0,
            rx_checksum: RxChecksum::Unknown,
            tx_checksum: None,
        }
    }

    /// Arrive as if the device had judged the IPv4 header checksum.
    pub fn set_rx_ipv4_checksum(&mut self, verdict: RxChecksum) {
        self.rx_checksum = verdict;
    }

    /// The checksum request made of the device, if any: Ethernet and IP header lengths
    /// and what to fill.
    pub fn tx_checksum(&self) -> Option<(u8, u16, TxChecksum)> {
        self.tx_checksum
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    /// A real prefetch, as an mbuf's, so that a worker on heap buffers (tests, the
    /// `one_tunnel` example) meets the cache as it would on mbufs.
    #[inline]
    fn prefetch(&self, offset: isize, write: bool) {
        dpdk_sys::prefetch(
            self.storage
                .as_ptr()
                .wrapping_offset(self.start as isize + offset),
            write,
        )
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.storage[self.start..self.start + n])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        self.end += n;
        Some(&mut self.storage[self.end - n..self.end])
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn set_port(&mut self, port: u16) {
        self.port = port;
    }
    fn meta(&self) -> u64 {
        self.meta
    }
    fn set_meta(&mut self, meta: u64) {
        self.meta = meta;
    }
    fn rx_ipv4_checksum(&self) -> RxChecksum {
        self.rx_checksum
    }
    fn offload_tx_checksum(&mut self, l2_len: u8, l3_len: u16, what: TxChecksum) {
        self.tx_checksum = Some((l2_len, l3_len, what));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink_both_ends() {
        let mut b = HeapBuf::with_room(&[1, 2, 3], 4, 10);
        assert!(b.prepend(5).is_none());
        b.prepend(2).unwrap().copy_from_slice(&[8, 9]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3]);
        assert!(b.append(4).is_none());
        b.append(2).unwrap().copy_from_slice(&[4, 5]);
        assert_eq!(b.data(), &[8, 9, 1, 2, 3, 4, 5]);
        assert!(b.adj(3));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[2, 3, 4]);
        assert!(!b.adj(4));
        assert!(!b.trim(4));
        assert!(b.set_len(5));
        assert_eq!(b.data(), &[2, 3, 4, 0, 0]);
        assert!(b.set_len(1));
        assert_eq!(b.data(), &[2]);
    }
}
