//! ICMP for IPv4 (RFC 792): echo, destination unreachable (with the next-hop MTU of
//! RFC 1191 for "fragmentation needed"), and time exceeded.
//!
//! Contract: the buffer is the whole ICMP message, i.e. exactly the IPv4 payload, since
//! the checksum covers all of it. [`Packet::new_checked`] guarantees the 8-byte header
//! (type, code, checksum and the four type-specific bytes), so every getter is safe for
//! any message type; reading `echo_ident` of a time-exceeded message returns whatever
//! its unused bytes hold. For error messages, [`Packet::data`] is the quoted invoking
//! packet (its IP header and at least the first 8 payload bytes).

use super::{checksum, read_u16, write_u16, WireError};

mod field {
    use crate::wire::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The four type-specific bytes ("rest of header").
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMP header, type-specific bytes included.
pub const HEADER_LEN: usize = field::DATA.start;
/// An ICMP error, IPv4 header included, quotes as much of the invoking packet as fits
/// in this many bytes (RFC 1812 section 4.3.2.3).
pub const MAX_ERROR_PACKET_LEN: usize = 576;

/// ICMP message types used by wgdp (IANA "ICMP Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    EchoReply,
    DstUnreachable,
    EchoRequest,
    TimeExceeded,
    Unknown(u8),
}

impl From<u8> for Message {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    #[inline]
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::Unknown(other) => other,
        }
    }
}

/// Codes of destination unreachable messages (RFC 792, RFC 1812 section 5.2.7.1).
pub mod dst_unreachable {
    pub const NET_UNREACHABLE: u8 = 0;
    pub const HOST_UNREACHABLE: u8 = 1;
    pub const PROTOCOL_UNREACHABLE: u8 = 2;
    pub const PORT_UNREACHABLE: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of time exceeded messages (RFC 792).
pub mod time_exceeded {
    pub const TTL_EXPIRED: u8 = 0;
    pub const FRAG_REASSEMBLY: u8 = 1;
}

/// A view of an ICMPv4 message.
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

    /// Ensures the 8-byte header is present.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message; 0 from routers that predate
    /// RFC 1191.
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// True if the whole message sums to the one's-complement -0.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// Echo data, or the quoted invoking packet of an error message.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, message: Message) {
        self.buffer.as_mut()[field::TYPE] = message.into();
    }

    #[inline]
    pub fn set_msg_code(&mut self, code: u8) {
        self.buffer.as_mut()[field::CODE] = code;
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Zeroes the four type-specific bytes, which error messages leave unused.
    #[inline]
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::REST_OF_HEADER].fill(0);
    }

    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, ident);
    }

    #[inline]
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, seq_no);
    }

    /// Sets the next-hop MTU; the two bytes before it must be zero, see
    /// [`clear_rest_of_header`](Self::clear_rest_of_header).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// Computes the checksum over the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;
    use crate::wire::{IpProtocol, Ipv4Packet};

    /// The ICMP part of `ping 10.0.0.1`: id 0x0d1f, seq 1, 56 data bytes.
    #[rustfmt::skip]
    const ECHO_REQUEST: [u8; 64] = [
        0x08, 0x00, 0xb4, 0x11, 0x0d, 0x1f, 0x00, 0x01, 0xa0, 0xc2, 0xf1, 0x65, 0x00, 0x00, 0x00, 0x00,
        0xe1, 0xd2, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
        0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// Fragmentation needed, next-hop MTU 1420, quoting a 1500-byte DF TCP packet.
    #[rustfmt::skip]
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0xf7, 0x6f, 0x00, 0x00, 0x05, 0x8c,
        0x45, 0x00, 0x05, 0xdc, 0x04, 0xd2, 0x40, 0x00,
        0x40, 0x06, 0xfc, 0x0b, 0x0a, 0x00, 0x00, 0x02,
        0xc6, 0x33, 0x64, 0x09, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    /// Time exceeded in transit, quoting the ping above as it arrived with TTL 1.
    #[rustfmt::skip]
    const TTL_EXCEEDED: [u8; 36] = [
        0x0b, 0x00, 0x2b, 0xce, 0x00, 0x00, 0x00, 0x00,
        0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00,
        0x01, 0x01, 0x49, 0x61, 0x0a, 0x00, 0x00, 0x02,
        0x0a, 0x00, 0x00, 0x01, 0x08, 0x00, 0xb4, 0x11,
        0x0d, 0x1f, 0x00, 0x01,
    ];

    #[test]
    fn parse_echo_request() {
        let packet = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0xb411);
        assert!(packet.verify_checksum());
        assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (0x0d1f, 1));
        assert_eq!(packet.data().len(), 56);
    }

    #[test]
    fn echo_request_becomes_reply() {
        let mut buf = ECHO_REQUEST;
        let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
        packet.set_msg_type(Message::EchoReply);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        // Only the type changed (8 -> 0), so the checksum rises by 0x0800.
        assert_eq!(packet.checksum(), 0xbc11);
        assert_eq!(&buf[4..], &ECHO_REQUEST[4..]);
    }

    #[test]
    fn parse_frag_needed() {
        let packet = Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::DstUnreachable);
        assert_eq!(packet.msg_code(), dst_unreachable::FRAG_NEEDED);
        assert_eq!(packet.next_hop_mtu(), 1420);
        assert!(packet.verify_checksum());
        // The quote is the invoking IPv4 header and 8 bytes: too short to view as a
        // whole packet, but its header fields are readable.
        let quoted = Ipv4Packet::new_unchecked(packet.data());
        assert_eq!(quoted.total_len(), 1500);
        assert_eq!(quoted.protocol(), IpProtocol::Tcp);
        assert!(quoted.dont_frag());
    }

    #[test]
    fn build_frag_needed() {
        let mut buf = [0xeeu8; 36];
        buf[8..].copy_from_slice(&FRAG_NEEDED[8..]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_msg_type(Message::DstUnreachable);
        packet.set_msg_code(dst_unreachable::FRAG_NEEDED);
        packet.clear_rest_of_header();
        packet.set_next_hop_mtu(1420);
        packet.fill_checksum();
        assert_eq!(buf, FRAG_NEEDED);
    }

    #[test]
    fn build_time_exceeded() {
        let mut buf = [0xeeu8; 36];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_msg_type(Message::TimeExceeded);
        packet.set_msg_code(time_exceeded::TTL_EXPIRED);
        packet.clear_rest_of_header();
        packet.data_mut().copy_from_slice(&TTL_EXCEEDED[8..]);
        packet.fill_checksum();
        assert_eq!(buf, TTL_EXCEEDED);
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap().msg_type(),
            Message::TimeExceeded
        );
    }

    #[test]
    fn corrupted_message_fails_verification() {
        let mut buf = ECHO_REQUEST;
        buf[40] ^= 0x80;
        assert!(!Packet::new_checked(&buf[..]).unwrap().verify_checksum());
    }

    #[test]
    fn message_types_round_trip() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(Message::from(value)), value);
        }
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&ECHO_REQUEST[..7]).unwrap_err(),
            WireError::Truncated
        );
        let header_only = Packet::new_checked(&ECHO_REQUEST[..8]).unwrap();
        assert!(header_only.data().is_empty());
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for_each_mutation(&FRAG_NEEDED, 2000, |bytes| {
            if let Ok(packet) = Packet::new_checked(bytes) {
                let _ = (packet.msg_type(), packet.msg_code(), packet.checksum());
                let _ = (
                    packet.echo_ident(),
                    packet.echo_seq_no(),
                    packet.next_hop_mtu(),
                );
                let _ = (packet.verify_checksum(), packet.data());
            }
        });
    }
}
