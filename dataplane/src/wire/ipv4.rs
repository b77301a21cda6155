//! IPv4 headers (RFC 791).
//!
//! Contract: [`Packet::new_checked`] guarantees version 4, an IHL of at least 5, and
//! `header_len <= total_len <= buffer length`, so [`Packet::payload`] is exactly the
//! bytes the header announces (Ethernet padding after them is excluded). Options are
//! not interpreted: [`Packet::options`] exposes them raw and the payload starts after
//! them. Fragments are not reassembled; [`Packet::is_fragment`] tells the caller.
//!
//! Forwarding decrements the TTL of every packet, so [`Packet::decrement_ttl`] patches
//! the header checksum incrementally (RFC 1624) instead of summing the header again.

use core::net::Ipv4Addr;

use super::{checksum, read_ipv4, read_u16, write_u16, IpProtocol, WireError};

mod field {
    use crate::wire::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    /// TTL and protocol share one 16-bit checksum word.
    pub const TTL_PROTOCOL: Field = 8..10;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DONT_FRAG: u16 = 0x4000;
const FLAG_MORE_FRAGS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// Ensures the version is 4 and the header and total lengths are consistent with
    /// each other and with the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::UnsupportedVersion);
        }
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > len {
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
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes, options included (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated Services code point (RFC 2474), the upper six bits of the old ToS.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit Congestion Notification bits (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Length of header plus payload in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DONT_FRAG != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MORE_FRAGS != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// True for any fragment of a larger datagram, first one included: only then are
    /// the transport header and ports possibly absent.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MORE_FRAGS | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The raw options between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// True if the header, options included, sums to the one's-complement -0.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The payload as delimited by the header and total length fields.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0x0f) | (version << 4);
    }

    /// Sets the IHL from a length in bytes, which must be a multiple of 4 between 20 and
    /// 60.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        debug_assert!(len & 3 == 0 && (HEADER_LEN..=60).contains(&len));
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0x03) | (dscp << 2);
    }

    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0xfc) | (ecn & 0x03);
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Clears the flags and the fragment offset: an unfragmented datagram that may be
    /// fragmented further.
    #[inline]
    pub fn clear_flags(&mut self) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, 0);
    }

    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DONT_FRAG, value);
    }

    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MORE_FRAGS, value);
    }

    /// Sets the fragment offset from a byte offset, which must be a multiple of 8.
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        debug_assert!(offset & 7 == 0);
        let data = self.buffer.as_mut();
        let flags = read_u16(data, field::FLG_OFF) & !FRAG_OFFSET_MASK;
        write_u16(data, field::FLG_OFF, flags | (offset >> 3));
    }

    #[inline]
    fn set_flag(&mut self, flag: u16, value: bool) {
        let data = self.buffer.as_mut();
        let word = read_u16(data, field::FLG_OFF);
        let word = if value { word | flag } else { word & !flag };
        write_u16(data, field::FLG_OFF, word);
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum over the header and options and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = checksum::data(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(!sum);
    }

    /// Decrements the TTL for forwarding and patches the checksum with RFC 1624
    /// equation 3. Returns `false`, leaving the packet untouched, when the TTL is 0 or 1:
    /// the packet must not be forwarded, and the caller may answer with ICMP time
    /// exceeded (RFC 1812 section 5.3.1).
    #[inline]
    #[must_use]
    pub fn decrement_ttl(&mut self) -> bool {
        if self.ttl() <= 1 {
            return false;
        }
        let data = self.buffer.as_mut();
        let old = read_u16(data, field::TTL_PROTOCOL);
        let new = old - 0x0100;
        write_u16(data, field::TTL_PROTOCOL, new);
        let sum = checksum::update(read_u16(data, field::CHECKSUM), old, new);
        write_u16(data, field::CHECKSUM, sum);
        true
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..header_len]
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{for_each_mutation, Rng};

    /// ping 10.0.0.1 from 10.0.0.2: IPv4, TTL 64, DF, ICMP echo request.
    #[rustfmt::skip]
    const PING: [u8; 84] = [
        0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x0a, 0x61, 0x0a, 0x00, 0x00, 0x02,
        0x0a, 0x00, 0x00, 0x01, 0x08, 0x00, 0xb4, 0x11, 0x0d, 0x1f, 0x00, 0x01, 0xa0, 0xc2, 0xf1, 0x65,
        0x00, 0x00, 0x00, 0x00, 0xe1, 0xd2, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13,
        0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23,
        0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
        0x34, 0x35, 0x36, 0x37,
    ];

    /// IGMPv2 report for 224.0.0.251 with the Router Alert option (IHL 6), CS6 DSCP.
    #[rustfmt::skip]
    const IGMP_WITH_OPTIONS: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x02, 0x81, 0x10, 0xc0, 0xa8, 0x01, 0x64,
        0xe0, 0x00, 0x00, 0xfb, 0x94, 0x04, 0x00, 0x00,
        0x16, 0x00, 0x09, 0x04, 0xe0, 0x00, 0x00, 0xfb,
    ];

    #[test]
    fn parse_ping() {
        let packet = Packet::new_checked(&PING[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!((packet.dscp(), packet.ecn()), (0, 0));
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x1c46);
        assert!(packet.dont_frag() && !packet.more_frags() && !packet.is_fragment());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Icmp);
        assert_eq!(packet.checksum(), 0x0a61);
        assert!(packet.verify_checksum());
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &PING[20..]);
    }

    #[test]
    fn options_are_skipped() {
        let packet = Packet::new_checked(&IGMP_WITH_OPTIONS[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!((packet.dscp(), packet.ecn()), (48, 0));
        assert_eq!(packet.ttl(), 1);
        assert_eq!(packet.protocol(), IpProtocol::Unknown(2));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &IGMP_WITH_OPTIONS[24..]);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut padded = [0u8; 46];
        padded[..32].copy_from_slice(&IGMP_WITH_OPTIONS);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload().len(), 8);
    }

    #[test]
    fn build_matches_capture() {
        let mut buf = [0u8; 84];
        buf[20..].copy_from_slice(&PING[20..]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(0);
        packet.set_ecn(0);
        packet.set_total_len(84);
        packet.set_ident(0x1c46);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::Icmp);
        packet.set_src_addr(Ipv4Addr::new(10, 0, 0, 2));
        packet.set_dst_addr(Ipv4Addr::new(10, 0, 0, 1));
        packet.fill_checksum();
        assert_eq!(buf, PING);
    }

    #[test]
    fn fragment_fields() {
        let mut buf = PING;
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        packet.set_ecn(3);
        assert!(!packet.dont_frag() && packet.more_frags() && packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        assert_eq!(&buf[6..8], &[0x20, 0xb9]);
        assert_eq!(buf[1], 0x03);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        // The last fragment has no MF flag but is still a fragment.
        packet.set_more_frags(false);
        assert!(packet.is_fragment());
    }

    #[test]
    fn corrupted_checksum_is_detected() {
        let mut buf = PING;
        buf[15] ^= 0x01;
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn decrement_ttl_keeps_checksum_valid() {
        let mut buf = PING;
        let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
        assert!(packet.decrement_ttl());
        assert_eq!(packet.ttl(), 63);
        assert!(packet.verify_checksum());
        let incremental = packet.checksum();
        packet.fill_checksum();
        assert_eq!(packet.checksum(), incremental);
    }

    #[test]
    fn decrement_ttl_matches_recomputation_for_any_header() {
        let mut rng = Rng::new(1624);
        let mut buf = PING;
        for _ in 0..50_000 {
            rng.fill(&mut buf[..20]);
            buf[0] = 0x45;
            let mut packet = Packet::new_unchecked(&mut buf[..]);
            packet.fill_checksum();
            let ttl = packet.ttl();
            if !packet.decrement_ttl() {
                assert!(ttl <= 1);
                continue;
            }
            assert_eq!(packet.ttl(), ttl - 1);
            let incremental = packet.checksum();
            packet.fill_checksum();
            assert_eq!(incremental, packet.checksum(), "header {:02x?}", &buf[..20]);
        }
    }

    #[test]
    fn expiring_ttl_is_refused_untouched() {
        for ttl in [0, 1] {
            let mut buf = PING;
            buf[8] = ttl;
            let before = buf;
            let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
            assert!(!packet.decrement_ttl());
            assert_eq!(buf, before);
        }
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&PING[..19]).unwrap_err(),
            WireError::Truncated
        );
        // The buffer ends before the total length does.
        assert_eq!(
            Packet::new_checked(&PING[..83]).unwrap_err(),
            WireError::Truncated
        );
        // 40 bytes of options announced, but the buffer ends after 20 of them.
        let mut buf = PING;
        buf[0] = 0x4f;
        buf[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..40]).unwrap_err(),
            WireError::Truncated
        );
        // Options longer than the whole datagram.
        buf[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // IHL below 5.
        let mut buf = PING;
        buf[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // Total length shorter than the header.
        let mut buf = PING;
        buf[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // An IPv6 packet handed to the IPv4 view.
        let mut buf = PING;
        buf[0] = 0x60;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::UnsupportedVersion
        );
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for sample in [&PING[..], &IGMP_WITH_OPTIONS[..]] {
            for_each_mutation(sample, 5000, |bytes| {
                let mut owned = [0u8; 256];
                owned[..bytes.len()].copy_from_slice(bytes);
                let Ok(mut packet) = Packet::new_checked(&mut owned[..bytes.len()]) else {
                    return;
                };
                let _ = (
                    packet.dscp(),
                    packet.ecn(),
                    packet.ident(),
                    packet.frag_offset(),
                );
                let _ = (packet.protocol(), packet.src_addr(), packet.dst_addr());
                let _ = (packet.options(), packet.verify_checksum(), packet.payload());
                let _ = packet.decrement_ttl();
                packet.fill_checksum();
                let _ = (packet.options_mut().len(), packet.payload_mut().len());
            });
        }
    }
}
