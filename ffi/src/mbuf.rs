//! An owned packet buffer.
//!
//! Contract:
//! - An [`Mbuf`] owns one reference to an `rte_mbuf` chain; dropping it frees
//!   the chain back to its pool (`rte_pktmbuf_free`). There is no `Clone`.
//!   Ownership moves into transmit and ring functions, which take from a
//!   `Vec<Mbuf>` exactly the mbufs DPDK accepted.
//! - `Mbuf` is `#[repr(transparent)]` over `NonNull<rte_mbuf>`, so a
//!   `Vec<Mbuf>` is passed to DPDK as `struct rte_mbuf **` without copying.
//! - An `Mbuf` must not outlive its [`Mempool`](crate::Mempool). The pool does
//!   not free its memory while any of its mbufs is out (it leaks itself
//!   instead), but an mbuf dropped after the process has torn down the EAL is
//!   undefined behaviour; drop packets before the pools and the `Eal`.
//! - `Mbuf` is `Send` (packets move between lcores through rings) and `Sync`
//!   (shared access only reads).
//!
//! Lengths follow DPDK: [`Mbuf::len`] is the whole packet (`pkt_len`);
//! [`Mbuf::data`] and [`Mbuf::data_len`] are the first segment only.

use std::fmt;
use std::ptr::NonNull;
use std::slice;

use crate::eal::user_field_offset;
use crate::sys;

/// Ask the CPU to bring the cache line holding `at` closer, without waiting for it;
/// `write` when the line is about to be written. A hint: nothing on other targets.
#[inline]
pub fn prefetch(at: *const u8, write: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        let at = at.cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
        unsafe {
            if write {
                _mm_prefetch::<_MM_HINT_ET0>(at);
            } else {
                _mm_prefetch::<_MM_HINT_T0>(at);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, write);
}

/// An owned `rte_mbuf` chain; see the module docs.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the only handle to its buffer; DPDK mbufs may be freed
// on any thread (mempools are thread-safe).
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only reads the buffer.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of `raw`.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf from a live pool whose reference the caller
    /// owns and gives up (no other `Mbuf` or DPDK queue holds it).
    ///
    /// # Panics
    /// If `raw` is null.
    #[inline]
    pub unsafe fn from_raw(raw: *mut sys::rte_mbuf) -> Mbuf {
        Mbuf(NonNull::new(raw).expect("Mbuf::from_raw on a null pointer"))
    }

    /// Gives up ownership; the caller must free the mbuf or hand it to DPDK.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    /// The underlying pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// The pool this mbuf returns to when freed.
    #[inline]
    pub fn pool_ptr(&self) -> *mut sys::rte_mempool {
        self.raw().pool
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf and nobody else writes it.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { self.0.as_mut() }
    }

    /// Start of the first segment's data.
    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let m = self.raw();
        // SAFETY: data_off is within the segment's buffer.
        unsafe { m.buf_addr.cast::<u8>().add(usize::from(m.data_off)) }
    }

    /// Ask the CPU to bring the cache line at `offset` bytes from the start of the
    /// data (negative: in the headroom) closer, without waiting for it; `write` when
    /// the line is about to be written.
    #[inline]
    pub fn prefetch(&self, offset: isize, write: bool) {
        prefetch(self.data_ptr().wrapping_offset(offset), write)
    }

    /// The first segment's data (`data_len` bytes).
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: [data_off, data_off + data_len) lies in the segment buffer,
        // which we own for the lifetime of the borrow.
        unsafe { slice::from_raw_parts(self.data_ptr(), self.data_len().into()) }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe { slice::from_raw_parts_mut(self.data_ptr(), self.data_len().into()) }
    }

    /// Length of the whole packet, all segments (`pkt_len`).
    #[inline]
    pub fn len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Whether the packet has no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the first segment's data.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.raw().data_len
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Whether the whole packet is in the first segment, i.e. `data()` is
    /// the whole packet.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.nb_segs() == 1
    }

    /// Free bytes before the data of the first segment.
    #[inline]
    pub fn headroom(&self) -> u16 {
        self.raw().data_off
    }

    /// Free bytes after the data of the last segment (where `append` writes).
    #[inline]
    pub fn tailroom(&self) -> u16 {
        let last = self.last_segment();
        last.buf_len - last.data_off - last.data_len
    }

    /// The last segment of the chain: the mbuf itself when it is alone.
    #[inline]
    fn last_segment(&self) -> &sys::rte_mbuf {
        let m = self.raw();
        if m.nb_segs == 1 {
            return m;
        }
        // SAFETY: walks the chain we own.
        unsafe { &*sys::rte_pktmbuf_lastseg(self.0.as_ptr()) }
    }

    // The four length changes below are DPDK's inline rte_pktmbuf_prepend, _adj, _append
    // and _trim (rte_mbuf.h, 22.11), written out in Rust so that they inline into the
    // stages: the bindgen wrappers of static-inline functions are real calls. A chain
    // still goes through DPDK for its last segment.

    /// Grows the packet by `n` bytes at the front and returns them; `None`
    /// (packet unchanged) if the headroom is smaller than `n`.
    #[inline]
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        let m = self.raw_mut();
        if n > m.data_off {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        // SAFETY: the n bytes before the old data start are in our buffer (headroom).
        Some(unsafe { slice::from_raw_parts_mut(self.data_ptr(), n.into()) })
    }

    /// Removes `n` bytes from the front; false (packet unchanged) if the
    /// first segment holds fewer than `n` bytes.
    #[inline]
    pub fn adj(&mut self, n: u16) -> bool {
        let m = self.raw_mut();
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.data_off += n;
        m.pkt_len -= u32::from(n);
        true
    }

    /// Grows the packet by `n` bytes at the end of its last segment and
    /// returns them; `None` (packet unchanged) if the tailroom is smaller.
    #[inline]
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        if self.raw().nb_segs != 1 {
            // SAFETY: we own the mbuf; DPDK checks the tailroom.
            let start = unsafe { sys::rte_pktmbuf_append(self.0.as_ptr(), n) };
            // SAFETY: on success `start` points at the n new bytes of our buffer.
            return NonNull::new(start.cast::<u8>())
                .map(|p| unsafe { slice::from_raw_parts_mut(p.as_ptr(), n.into()) });
        }
        if n > self.tailroom() {
            return None;
        }
        let m = self.raw_mut();
        let old = m.data_len;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        // SAFETY: the n bytes after the old data end are in our buffer (tailroom).
        Some(unsafe { slice::from_raw_parts_mut(self.data_ptr().add(old.into()), n.into()) })
    }

    /// Removes `n` bytes from the end; false (packet unchanged) if the last
    /// segment holds fewer than `n` bytes.
    #[inline]
    pub fn trim(&mut self, n: u16) -> bool {
        if self.raw().nb_segs != 1 {
            // SAFETY: we own the mbuf; DPDK checks the length.
            return unsafe { sys::rte_pktmbuf_trim(self.0.as_ptr(), n) == 0 };
        }
        let m = self.raw_mut();
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    /// The input port (set by RX) or the port an application assigned.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Sets the port field.
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// A 64-bit value for the application.
    ///
    /// It lives in an mbuf dynamic field (`wgdp_user_u64`) that `Eal::init`
    /// registers, so no PMD or library writes it (unlike `hash.usr`, which
    /// shares storage with the RSS hash). Its value is unspecified until
    /// [`Mbuf::set_user`] is called on this mbuf: allocation does not reset it.
    #[inline]
    pub fn user(&self) -> u64 {
        // SAFETY: the offset was registered for an aligned u64 inside every
        // mbuf of this process.
        unsafe {
            self.0
                .as_ptr()
                .cast::<u8>()
                .add(user_field_offset())
                .cast::<u64>()
                .read()
        }
    }

    /// Sets the application value, see [`Mbuf::user`].
    #[inline]
    pub fn set_user(&mut self, value: u64) {
        // SAFETY: as in `user`, and `&mut self` makes the access exclusive.
        unsafe {
            self.0
                .as_ptr()
                .cast::<u8>()
                .add(user_field_offset())
                .cast::<u64>()
                .write(value)
        }
    }

    /// What the receiving device found of the IPv4 header checksum (only ports started
    /// with `Offloads::rx_ipv4_checksum` say anything).
    #[inline]
    pub fn rx_ipv4_checksum(&self) -> RxChecksum {
        let f = self.raw().ol_flags & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        match f as u32 {
            sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD => RxChecksum::Good,
            sys::RTE_MBUF_F_RX_IP_CKSUM_BAD => RxChecksum::Bad,
            // NONE: the header's integrity was checked although its checksum field is
            // not filled in (DPDK's `rte_mbuf_core.h`).
            sys::RTE_MBUF_F_RX_IP_CKSUM_NONE => RxChecksum::Good,
            _ => RxChecksum::Unknown,
        }
    }

    /// Ask the transmitting device to fill checksums of this frame: an Ethernet header of
    /// `l2_len` bytes, an IP header of `l3_len`. Replaces every flag the mbuf carried from
    /// its reception. The caller leaves the IPv4 checksum 0, and for a UDP checksum
    /// writes the pseudo-header's sum into the field (DPDK's `rte_ipv4_phdr_cksum` /
    /// `rte_ipv6_phdr_cksum` contract).
    #[inline]
    pub fn offload_tx_checksum(&mut self, l2_len: u8, l3_len: u16, what: TxChecksum) {
        let flags = match what {
            TxChecksum::Ipv4Header => sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM,
            TxChecksum::Ipv6Udp => sys::RTE_MBUF_F_TX_IPV6 | sys::RTE_MBUF_F_TX_UDP_CKSUM,
        };
        let m = self.raw_mut();
        m.ol_flags = flags;
        // tx_offload packs l2_len (7 bits) then l3_len (9 bits) from bit 0
        // (`struct rte_mbuf` in rte_mbuf_core.h); the other lengths stay 0.
        m.__bindgen_anon_3.tx_offload = u64::from(l2_len & 0x7f) | (u64::from(l3_len & 0x1ff) << 7);
    }

    /// Frees every mbuf in `pkts` with one DPDK call and leaves it empty.
    #[inline]
    pub fn free_bulk(pkts: &mut Vec<Mbuf>) {
        let count = u32::try_from(pkts.len()).expect("fewer than 2^32 mbufs");
        // SAFETY: the Vec owns `count` valid mbufs laid out as rte_mbuf
        // pointers; after the call they are gone, so the length is reset
        // without running their destructors.
        unsafe {
            sys::rte_pktmbuf_free_bulk(pkts.as_mut_ptr().cast(), count);
            pkts.set_len(0);
        }
    }
}

/// A receiving device's verdict on a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxChecksum {
    /// Not checked: verify it in software.
    Unknown,
    Good,
    Bad,
}

/// Checksums a transmitting device is asked to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxChecksum {
    /// The IPv4 header's (a UDP checksum over IPv4 stays 0).
    Ipv4Header,
    /// The UDP checksum over IPv6.
    Ipv6Udp,
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own this reference to the chain.
        unsafe { sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port())
            .finish()
    }
}
