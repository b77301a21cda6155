//! IPv6 fixed headers (RFC 8200 section 3).
//!
//! Contract: [`Packet::new_checked`] guarantees version 6 and that the 40-byte header
//! plus `payload_len` fits in the buffer, so [`Packet::payload`] is exactly the
//! announced payload (Ethernet padding excluded). Extension headers are not walked:
//! [`Packet::next_header`] names whatever follows the fixed header, and the payload
//! starts right after it. Jumbograms (payload length 0 with a Jumbo option, RFC 2675)
//! are not supported; they read as an empty payload.

use core::net::Ipv6Addr;

use super::{read_ipv6, read_u16, read_u32, write_u16, write_u32, IpProtocol, WireError};

mod field {
    use crate::wire::Field;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet.
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

    /// Ensures the version is 6 and the payload length fits in the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::UnsupportedVersion);
        }
        if self.total_len() > len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// The traffic class byte: DSCP in the upper six bits, ECN in the lower two.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & FLOW_LABEL_MASK
    }

    /// Length of everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Length of the whole packet: fixed header plus payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Everything after the fixed header, up to the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_TC_FLOW.start];
        *byte = (*byte & 0x0f) | (version << 4);
    }

    #[inline]
    pub fn set_traffic_class(&mut self, class: u8) {
        let data = self.buffer.as_mut();
        let word = read_u32(data, field::VER_TC_FLOW) & !0x0ff0_0000;
        write_u32(data, field::VER_TC_FLOW, word | (u32::from(class) << 20));
    }

    /// Sets the 20-bit flow label; higher bits of `label` are ignored.
    #[inline]
    pub fn set_flow_label(&mut self, label: u32) {
        let data = self.buffer.as_mut();
        let word = read_u32(data, field::VER_TC_FLOW) & !FLOW_LABEL_MASK;
        write_u32(data, field::VER_TC_FLOW, word | (label & FLOW_LABEL_MASK));
    }

    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_next_header(&mut self, next_header: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = next_header.into();
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Decrements the hop limit for forwarding. Returns `false`, leaving the packet
    /// untouched, when the hop limit is 0 or 1: the packet must not be forwarded, and
    /// the caller may answer with ICMPv6 time exceeded (RFC 8200 section 3,
    /// RFC 4443 section 3.3). IPv6 has no header checksum to patch.
    #[inline]
    #[must_use]
    pub fn decrement_hop_limit(&mut self) -> bool {
        let hop_limit = self.hop_limit();
        if hop_limit <= 1 {
            return false;
        }
        self.set_hop_limit(hop_limit - 1);
        true
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;

    /// ping 2001:db8::2 with traffic class 0xb8 (EF) and flow label 0x5e8a1.
    #[rustfmt::skip]
    const ECHO_V6: [u8; 64] = [
        0x6b, 0x85, 0xe8, 0xa1, 0x00, 0x18, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x15, 0x39, 0x2a, 0x2a, 0x00, 0x07,
        0x77, 0x67, 0x64, 0x70, 0x2d, 0x65, 0x63, 0x68, 0x6f, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x21, 0x21,
    ];

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn parse_echo() {
        let packet = Packet::new_checked(&ECHO_V6[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0x5e8a1);
        assert_eq!(packet.payload_len(), 24);
        assert_eq!(packet.total_len(), 64);
        assert_eq!(packet.next_header(), IpProtocol::Icmpv6);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), addr("2001:db8::1"));
        assert_eq!(packet.dst_addr(), addr("2001:db8::2"));
        assert_eq!(packet.payload(), &ECHO_V6[40..]);
    }

    #[test]
    fn build_matches_capture() {
        let mut buf = [0u8; 64];
        buf[40..].copy_from_slice(&ECHO_V6[40..]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(6);
        packet.set_traffic_class(0xb8);
        packet.set_flow_label(0x5e8a1);
        packet.set_payload_len(24);
        packet.set_next_header(IpProtocol::Icmpv6);
        packet.set_hop_limit(64);
        packet.set_src_addr(&addr("2001:db8::1"));
        packet.set_dst_addr(&addr("2001:db8::2"));
        assert_eq!(buf, ECHO_V6);
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut buf = ECHO_V6;
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_flow_label(0xfff_ffff);
        assert_eq!((packet.version(), packet.traffic_class()), (6, 0xb8));
        assert_eq!(packet.flow_label(), 0xf_ffff);
        packet.set_traffic_class(0x01);
        assert_eq!((packet.version(), packet.flow_label()), (6, 0xf_ffff));
        packet.set_version(6);
        assert_eq!(packet.traffic_class(), 0x01);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut padded = [0u8; 80];
        padded[..64].copy_from_slice(&ECHO_V6);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 24);
    }

    #[test]
    fn hop_limit_decrement() {
        let mut buf = ECHO_V6;
        let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
        assert!(packet.decrement_hop_limit());
        assert_eq!(packet.hop_limit(), 63);
        for hop_limit in [0, 1] {
            packet.set_hop_limit(hop_limit);
            assert!(!packet.decrement_hop_limit());
            assert_eq!(packet.hop_limit(), hop_limit);
        }
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&ECHO_V6[..39]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&ECHO_V6[..63]).unwrap_err(),
            WireError::Truncated
        );
        let mut buf = ECHO_V6;
        buf[4..6].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut buf = ECHO_V6;
        buf[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::UnsupportedVersion
        );
        let header_only = Packet::new_checked(&ECHO_V6[..40]);
        assert_eq!(header_only.unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for_each_mutation(&ECHO_V6, 5000, |bytes| {
            if let Ok(packet) = Packet::new_checked(bytes) {
                let _ = (
                    packet.traffic_class(),
                    packet.flow_label(),
                    packet.next_header(),
                );
                let _ = (packet.hop_limit(), packet.src_addr(), packet.dst_addr());
                assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
            }
        });
    }
}
