//! UDP datagrams (RFC 768) and their checksum over the IPv4 (RFC 768) and IPv6
//! (RFC 8200 section 8.1) pseudo-headers.
//!
//! Contract: [`Packet::new_checked`] guarantees `8 <= length <= buffer length`, so
//! [`Packet::payload`] is exactly the datagram's payload (bytes after `length` are
//! ignored). The buffer is the IP payload. Checksum rules differ by IP version: over
//! IPv4 a zero checksum means the sender computed none and the datagram is accepted;
//! over IPv6 the checksum is mandatory and zero is invalid. When we compute a checksum
//! that comes out as zero, `0xffff` is sent instead (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use super::{checksum, read_u16, write_u16, IpProtocol, WireError};

mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it (see the module contract).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the header is present and the length field covers it and fits.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let datagram_len = usize::from(self.len());
        if datagram_len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if datagram_len > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a datagram is never empty: it has a header
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// The one's-complement sum of the datagram as the length field delimits it.
    #[inline]
    fn datagram_sum(&self) -> u16 {
        checksum::data(&self.buffer.as_ref()[..usize::from(self.len())])
    }

    /// Verifies the checksum of a datagram carried in IPv4 from `src` to `dst`. A zero
    /// checksum means none was sent and passes.
    #[inline]
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, self.len());
        checksum::combine(&[pseudo, self.datagram_sum()]) == 0xffff
    }

    /// Verifies the checksum of a datagram carried in IPv6 from `src` to `dst`. A zero
    /// checksum fails: it is mandatory over IPv6.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, u32::from(self.len()));
        checksum::combine(&[pseudo, self.datagram_sum()]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Stores a raw checksum value; 0 over IPv4 means "no checksum".
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes and stores the checksum for a datagram carried in IPv4. The length
    /// field must already be set.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let pseudo = checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, self.len());
        self.fill_checksum_with(pseudo);
    }

    /// Computes and stores the checksum for a datagram carried in IPv6. The length
    /// field must already be set.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, u32::from(self.len()));
        self.fill_checksum_with(pseudo);
    }

    #[inline]
    fn fill_checksum_with(&mut self, pseudo: u16) {
        self.set_checksum(0);
        let sum = !checksum::combine(&[pseudo, self.datagram_sum()]);
        // A computed zero is sent as all ones, since zero means "none" (RFC 768).
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;
    use crate::wire::{Ipv4Packet, Ipv6Packet};

    /// A WireGuard keepalive (transport message, empty payload) over IPv4.
    #[rustfmt::skip]
    const WG_KEEPALIVE_V4: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xd4, 0x63, 0xc6, 0x33, 0x64, 0x14,
        0xcb, 0x00, 0x71, 0x05, 0xca, 0x6c, 0xca, 0x6c, 0x00, 0x28, 0x85, 0x13, 0x04, 0x00, 0x00, 0x00,
        0xc2, 0x51, 0x3a, 0x8e, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5b, 0x1e, 0x0c, 0x9a,
        0x7d, 0x24, 0xf3, 0xe8, 0xa1, 0xb2, 0x6c, 0x0d, 0x94, 0xe7, 0xf2, 0x15,
    ];

    /// A DNS query for example.com A over IPv6 (odd UDP length: 37).
    #[rustfmt::skip]
    const DNS_QUERY_V6: [u8; 77] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x25, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0xcf, 0x84, 0x00, 0x35, 0x00, 0x25, 0x45, 0xc7,
        0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61,
        0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    const V4_SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
    const V4_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn parse_over_ipv4() {
        let ip = Ipv4Packet::new_checked(&WG_KEEPALIVE_V4[..]).unwrap();
        assert_eq!(ip.protocol(), IpProtocol::Udp);
        let udp = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (51820, 51820));
        assert_eq!(udp.len(), 40);
        assert_eq!(udp.checksum(), 0x8513);
        assert!(udp.verify_checksum_v4(ip.src_addr(), ip.dst_addr()));
        assert_eq!(udp.payload().len(), 32);
        // WireGuard message type 4 (transport data), little-endian.
        assert_eq!(&udp.payload()[..4], &[4, 0, 0, 0]);
    }

    #[test]
    fn parse_over_ipv6_with_odd_length() {
        let ip = Ipv6Packet::new_checked(&DNS_QUERY_V6[..]).unwrap();
        let udp = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (53124, 53));
        assert_eq!(udp.len(), 37);
        assert!(udp.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(udp.payload()[..2], [0xbe, 0xef]);
    }

    #[test]
    fn build_over_ipv4() {
        let mut buf = [0u8; 40];
        buf[8..].copy_from_slice(&WG_KEEPALIVE_V4[28..]);
        let mut udp = Packet::new_unchecked(&mut buf[..]);
        udp.set_src_port(51820);
        udp.set_dst_port(51820);
        udp.set_len(40);
        udp.fill_checksum_v4(V4_SRC, V4_DST);
        assert_eq!(buf, WG_KEEPALIVE_V4[20..]);
    }

    #[test]
    fn build_over_ipv6() {
        let mut buf = [0u8; 37];
        buf[8..].copy_from_slice(&DNS_QUERY_V6[48..]);
        let mut udp = Packet::new_unchecked(&mut buf[..]);
        udp.set_src_port(53124);
        udp.set_dst_port(53);
        udp.set_len(37);
        udp.payload_mut()[0] = 0xbe;
        udp.fill_checksum_v6(&v6("2001:db8::1"), &v6("2001:db8::53"));
        assert_eq!(buf, DNS_QUERY_V6[40..]);
    }

    #[test]
    fn zero_checksum_means_none_only_over_ipv4() {
        let mut buf = [0u8; 40];
        buf.copy_from_slice(&WG_KEEPALIVE_V4[20..]);
        let mut udp = Packet::new_checked(&mut buf[..]).unwrap();
        udp.set_checksum(0);
        assert!(udp.verify_checksum_v4(V4_SRC, V4_DST));
        let mut buf = [0u8; 37];
        buf.copy_from_slice(&DNS_QUERY_V6[40..]);
        let mut udp = Packet::new_checked(&mut buf[..]).unwrap();
        udp.set_checksum(0);
        assert!(!udp.verify_checksum_v6(&v6("2001:db8::1"), &v6("2001:db8::53")));
    }

    #[test]
    fn wrong_addresses_or_bytes_fail_verification() {
        let udp = Packet::new_checked(&WG_KEEPALIVE_V4[20..]).unwrap();
        assert!(!udp.verify_checksum_v4(V4_DST, V4_SRC.to_bits().wrapping_add(1).into()));
        let mut buf = [0u8; 37];
        buf.copy_from_slice(&DNS_QUERY_V6[40..]);
        buf[36] ^= 0x01;
        let udp = Packet::new_checked(&buf[..]).unwrap();
        assert!(!udp.verify_checksum_v6(&v6("2001:db8::1"), &v6("2001:db8::53")));
    }

    #[test]
    fn computed_zero_is_sent_as_all_ones() {
        // Choose a source port that makes the datagram sum to 0xffff with a zero
        // checksum field, so the complemented checksum would be 0.
        let mut buf = [0u8; 8];
        let mut udp = Packet::new_unchecked(&mut buf[..]);
        udp.set_dst_port(0);
        udp.set_len(8);
        let pseudo = checksum::pseudo_header_v4(V4_SRC, V4_DST, IpProtocol::Udp, 8);
        let without_port = checksum::combine(&[pseudo, 8]);
        udp.set_src_port(0xffff - without_port);
        udp.fill_checksum_v4(V4_SRC, V4_DST);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum_v4(V4_SRC, V4_DST));
    }

    #[test]
    fn impossible_lengths() {
        let datagram = &WG_KEEPALIVE_V4[20..];
        assert_eq!(
            Packet::new_checked(&datagram[..7]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&datagram[..39]).unwrap_err(),
            WireError::Truncated
        );
        let mut buf = [0u8; 40];
        buf.copy_from_slice(datagram);
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // A length shorter than the buffer is legal: the rest is not ours.
        buf[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(Packet::new_checked(&buf[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for_each_mutation(&DNS_QUERY_V6[40..], 5000, |bytes| {
            if let Ok(udp) = Packet::new_checked(bytes) {
                let _ = (udp.src_port(), udp.dst_port(), udp.payload());
                let _ = udp.verify_checksum_v4(V4_SRC, V4_DST);
                let _ = udp.verify_checksum_v6(&v6("::1"), &v6("::2"));
            }
        });
    }
}
