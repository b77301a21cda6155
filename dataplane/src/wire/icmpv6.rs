//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages wgdp answers and sends
//! (RFC 4861): echo, packet too big, time exceeded, neighbor solicitation and
//! advertisement with their link-layer address options.
//!
//! Contract: the buffer is the whole ICMPv6 message, i.e. exactly the IPv6 payload,
//! since the checksum covers all of it together with the IPv6 pseudo-header.
//! [`Packet::new_checked`] guarantees the 8-byte header for every type, and for neighbor
//! solicitations and advertisements also the 16-byte target address and a well-formed
//! option list (no zero-length option, none running past the end). After it, no getter
//! that applies to the message's type panics; the ND getters ([`Packet::target_addr`])
//! must not be used on other types. The IP-level acceptance rules of RFC 4861
//! section 7.1 (hop limit 255, code 0) need the IPv6 header and are the caller's.

use core::net::Ipv6Addr;

use super::{
    checksum, read_ipv6, read_u16, read_u32, write_u16, write_u32, IpProtocol, MacAddr, WireError,
};

mod field {
    use crate::wire::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The four type-specific bytes ("message body" start).
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const MTU: Field = 4..8;
    pub const NA_FLAGS: usize = 4;
    pub const DATA: Rest = 8..;
    pub const TARGET_ADDR: Field = 8..24;
    pub const ND_OPTIONS: Rest = 24..;
}

/// Length of the ICMPv6 header, type-specific bytes included.
pub const HEADER_LEN: usize = field::DATA.start;
/// Length of a neighbor solicitation or advertisement without options.
pub const ND_HEADER_LEN: usize = field::ND_OPTIONS.start;
/// Length of a link-layer address option for Ethernet (RFC 4861 section 4.6.1).
pub const LL_ADDR_OPTION_LEN: usize = 8;
/// An ICMPv6 error, IPv6 header included, must fit the minimum IPv6 MTU
/// (RFC 4443 section 2.4 (c)).
pub const MAX_ERROR_PACKET_LEN: usize = 1280;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// ICMPv6 message types (IANA "ICMPv6 Parameters").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    DstUnreachable,
    PacketTooBig,
    TimeExceeded,
    ParamProblem,
    EchoRequest,
    EchoReply,
    RouterSolicit,
    RouterAdvert,
    NeighborSolicit,
    NeighborAdvert,
    Redirect,
    Unknown(u8),
}

impl From<u8> for Message {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => Message::DstUnreachable,
            2 => Message::PacketTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    #[inline]
    fn from(value: Message) -> Self {
        match value {
            Message::DstUnreachable => 1,
            Message::PacketTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(other) => other,
        }
    }
}

impl Message {
    /// Error messages have types 0-127 (RFC 4443 section 2.1); a node must never answer
    /// one with another error.
    #[inline]
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

/// Codes of destination unreachable messages (RFC 4443 section 3.1).
pub mod dst_unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const ADDR_UNREACHABLE: u8 = 3;
    pub const PORT_UNREACHABLE: u8 = 4;
}

/// Codes of time exceeded messages (RFC 4443 section 3.3).
pub mod time_exceeded {
    pub const HOP_LIMIT_EXCEEDED: u8 = 0;
    pub const FRAG_REASSEMBLY: u8 = 1;
}

/// Which link-layer address an option carries (RFC 4861 section 4.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayerOption {
    /// Source link-layer address, in solicitations.
    Source,
    /// Target link-layer address, in advertisements.
    Target,
}

impl LinkLayerOption {
    #[inline]
    const fn kind(self) -> u8 {
        match self {
            LinkLayerOption::Source => 1,
            LinkLayerOption::Target => 2,
        }
    }
}

/// One Neighbor Discovery option: its type and its body (the bytes after the type and
/// length octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterator over the options of an ND message; stops at the first malformed option.
#[derive(Debug, Clone)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = NdOption<'a>;

    fn next(&mut self) -> Option<NdOption<'a>> {
        let &[kind, units, ..] = self.rest else {
            return None;
        };
        // The length counts 8-octet units, type and length octets included.
        let len = usize::from(units) * 8;
        if len == 0 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let (option, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(NdOption {
            kind,
            data: &option[2..],
        })
    }
}

/// Checks an option list as RFC 4861 section 7.1.1/7.1.2 requires: every option has a
/// nonzero length and lies inside the message.
fn check_nd_options(mut options: &[u8]) -> Result<(), WireError> {
    while !options.is_empty() {
        let &[_, units, ..] = options else {
            return Err(WireError::Malformed);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(WireError::Malformed);
        }
        options = &options[len..];
    }
    Ok(())
}

/// The solicited-node multicast address of `addr`: `ff02::1:ff00:0/104` followed by the
/// low 24 bits of `addr` (RFC 4291 section 2.7.1). Neighbor solicitations for `addr`
/// are sent there.
#[inline]
pub fn solicited_node_addr(addr: &Ipv6Addr) -> Ipv6Addr {
    let low = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, low[13], low[14], low[15],
    ])
}

/// The Ethernet multicast address for IPv6 multicast `group`: `33:33` followed by the
/// group's last four octets (RFC 2464 section 7).
#[inline]
pub fn multicast_mac(group: &Ipv6Addr) -> MacAddr {
    let octets = group.octets();
    MacAddr([0x33, 0x33, octets[12], octets[13], octets[14], octets[15]])
}

/// A view of an ICMPv6 message.
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

    /// Ensures the header is present and, for neighbor solicitations and
    /// advertisements, the target address and a well-formed option list.
    pub fn check_len(&self) -> Result<(), WireError> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if matches!(
            self.msg_type(),
            Message::NeighborSolicit | Message::NeighborAdvert
        ) {
            if data.len() < ND_HEADER_LEN {
                return Err(WireError::Truncated);
            }
            check_nd_options(&data[field::ND_OPTIONS])?;
        }
        Ok(())
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

    /// MTU of the next hop, in a packet too big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU)
    }

    /// Router flag of a neighbor advertisement.
    #[inline]
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & FLAG_ROUTER != 0
    }

    /// Solicited flag of a neighbor advertisement: it answers a solicitation.
    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & FLAG_SOLICITED != 0
    }

    /// Override flag of a neighbor advertisement: replace a cached link-layer address.
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & FLAG_OVERRIDE != 0
    }

    /// Target address of a neighbor solicitation or advertisement.
    ///
    /// # Panics
    /// On a message shorter than 24 bytes, which `new_checked` rules out for both ND
    /// types.
    #[inline]
    pub fn target_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::TARGET_ADDR)
    }

    /// The options of a neighbor solicitation or advertisement; empty on shorter
    /// messages.
    #[inline]
    pub fn nd_options(&self) -> NdOptions<'_> {
        let rest = self.buffer.as_ref().get(field::ND_OPTIONS).unwrap_or(&[]);
        NdOptions { rest }
    }

    /// The first link-layer address option of `which` kind holding an Ethernet address.
    /// Options sized for other link layers are skipped.
    pub fn ll_addr(&self, which: LinkLayerOption) -> Option<MacAddr> {
        self.nd_options()
            .find(|option| option.kind == which.kind() && option.data.len() == 6)
            .map(|option| MacAddr::from_bytes(option.data))
    }

    /// True if the message and the IPv6 pseudo-header from `src` to `dst` sum to the
    /// one's-complement -0.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::combine(&[
            self.pseudo_header(src, dst),
            checksum::data(self.buffer.as_ref()),
        ]) == 0xffff
    }

    #[inline]
    fn pseudo_header(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        // An ICMPv6 message fits in an IPv6 payload, so its length fits in u32.
        let len = self.buffer.as_ref().len() as u32;
        checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len)
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

    /// Zeroes the four type-specific bytes: the reserved field of ND messages, NA flags
    /// included, and the unused field of time exceeded.
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

    #[inline]
    pub fn set_mtu(&mut self, mtu: u32) {
        write_u32(self.buffer.as_mut(), field::MTU, mtu);
    }

    #[inline]
    pub fn set_router_flag(&mut self, value: bool) {
        self.set_na_flag(FLAG_ROUTER, value);
    }

    #[inline]
    pub fn set_solicited_flag(&mut self, value: bool) {
        self.set_na_flag(FLAG_SOLICITED, value);
    }

    #[inline]
    pub fn set_override_flag(&mut self, value: bool) {
        self.set_na_flag(FLAG_OVERRIDE, value);
    }

    #[inline]
    fn set_na_flag(&mut self, flag: u8, value: bool) {
        let byte = &mut self.buffer.as_mut()[field::NA_FLAGS];
        *byte = if value { *byte | flag } else { *byte & !flag };
    }

    #[inline]
    pub fn set_target_addr(&mut self, addr: &Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET_ADDR].copy_from_slice(&addr.octets());
    }

    /// Writes one Ethernet link-layer address option as the first option of an ND
    /// message, in bytes 24..32; size the buffer as
    /// `ND_HEADER_LEN + LL_ADDR_OPTION_LEN`.
    #[inline]
    pub fn set_ll_addr_option(&mut self, which: LinkLayerOption, addr: MacAddr) {
        let option = &mut self.buffer.as_mut()[ND_HEADER_LEN..ND_HEADER_LEN + LL_ADDR_OPTION_LEN];
        option[0] = which.kind();
        option[1] = (LL_ADDR_OPTION_LEN / 8) as u8;
        option[2..].copy_from_slice(&addr.0);
    }

    /// Computes the checksum over the IPv6 pseudo-header from `src` to `dst` and the
    /// whole buffer, and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = checksum::combine(&[
            self.pseudo_header(src, dst),
            checksum::data(self.buffer.as_ref()),
        ]);
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
    use crate::wire::Ipv6Packet;

    /// Echo request 2001:db8::1 -> 2001:db8::2, id 0x2a2a, seq 7.
    #[rustfmt::skip]
    const ECHO_REQUEST: [u8; 24] = [
        0x80, 0x00, 0x15, 0x39, 0x2a, 0x2a, 0x00, 0x07,
        0x77, 0x67, 0x64, 0x70, 0x2d, 0x65, 0x63, 0x68,
        0x6f, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x21, 0x21,
    ];

    /// 2001:db8::1 asks for 2001:db8::2 (sent to ff02::1:ff00:2), source link-layer
    /// option 52:54:00:12:34:56.
    #[rustfmt::skip]
    const NEIGHBOR_SOLICIT: [u8; 32] = [
        0x87, 0x00, 0x97, 0x6b, 0x00, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];

    /// The solicited answer from 2001:db8::2 to 2001:db8::1 (S and O set) with target
    /// link-layer option 02:00:5e:10:00:01.
    #[rustfmt::skip]
    const NEIGHBOR_ADVERT: [u8; 32] = [
        0x88, 0x00, 0x2c, 0x62, 0x60, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x02, 0x01, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01,
    ];

    /// Packet too big, MTU 1420, from 2001:db8::ffff to 2001:db8:1::7, quoting the start
    /// of a 1500-byte packet.
    #[rustfmt::skip]
    const PACKET_TOO_BIG: [u8; 56] = [
        0x02, 0x00, 0xca, 0x0d, 0x00, 0x00, 0x05, 0x8c, 0x60, 0x00, 0x00, 0x00, 0x05, 0xb4, 0x11, 0x40,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    const HOST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);

    fn addr(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn parse_echo_request() {
        let packet = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert!(!packet.msg_type().is_error());
        assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (0x2a2a, 7));
        assert!(packet.verify_checksum(&addr("2001:db8::1"), &addr("2001:db8::2")));
        // The pseudo-header matters: the same bytes between other hosts fail.
        assert!(!packet.verify_checksum(&addr("2001:db8::1"), &addr("2001:db8::3")));
        assert_eq!(packet.data(), b"wgdp-echo-test!!");
    }

    #[test]
    fn echo_request_becomes_reply() {
        let mut buf = ECHO_REQUEST;
        let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
        packet.set_msg_type(Message::EchoReply);
        // The reply goes back, but the pseudo-header sum is symmetric in the addresses.
        packet.fill_checksum(&addr("2001:db8::2"), &addr("2001:db8::1"));
        assert!(packet.verify_checksum(&addr("2001:db8::2"), &addr("2001:db8::1")));
        assert_eq!(packet.checksum(), 0x1439);
    }

    #[test]
    fn echo_inside_ipv6() {
        #[rustfmt::skip]
        let mut frame = [
            0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0x40,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        frame[40..].copy_from_slice(&ECHO_REQUEST);
        let ip = Ipv6Packet::new_checked(&frame[..]).unwrap();
        let icmp = Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    }

    #[test]
    fn parse_neighbor_solicitation() {
        let packet = Packet::new_checked(&NEIGHBOR_SOLICIT[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::NeighborSolicit);
        assert_eq!(packet.target_addr(), addr("2001:db8::2"));
        assert_eq!(packet.ll_addr(LinkLayerOption::Source), Some(HOST_MAC));
        assert_eq!(packet.ll_addr(LinkLayerOption::Target), None);
        assert!(packet.verify_checksum(&addr("2001:db8::1"), &addr("ff02::1:ff00:2")));
        let options: Vec<_> = packet.nd_options().collect();
        assert_eq!(options.len(), 1);
        assert_eq!(options[0].kind, 1);
        assert_eq!(options[0].data, &HOST_MAC.0);
    }

    #[test]
    fn parse_neighbor_advertisement() {
        let packet = Packet::new_checked(&NEIGHBOR_ADVERT[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::NeighborAdvert);
        assert!(!packet.router_flag() && packet.solicited_flag() && packet.override_flag());
        assert_eq!(packet.target_addr(), addr("2001:db8::2"));
        assert_eq!(packet.ll_addr(LinkLayerOption::Target), Some(OUR_MAC));
        assert!(packet.verify_checksum(&addr("2001:db8::2"), &addr("2001:db8::1")));
    }

    #[test]
    fn answer_a_solicitation() {
        let solicit = Packet::new_checked(&NEIGHBOR_SOLICIT[..]).unwrap();
        let mut buf = [0xeeu8; ND_HEADER_LEN + LL_ADDR_OPTION_LEN];
        let mut advert = Packet::new_unchecked(&mut buf[..]);
        advert.set_msg_type(Message::NeighborAdvert);
        advert.set_msg_code(0);
        advert.clear_rest_of_header();
        advert.set_solicited_flag(true);
        advert.set_override_flag(true);
        advert.set_target_addr(&solicit.target_addr());
        advert.set_ll_addr_option(LinkLayerOption::Target, OUR_MAC);
        advert.fill_checksum(&addr("2001:db8::2"), &addr("2001:db8::1"));
        assert_eq!(buf, NEIGHBOR_ADVERT);
    }

    #[test]
    fn build_solicitation() {
        let target = addr("2001:db8::2");
        let mut buf = [0xeeu8; 32];
        let mut solicit = Packet::new_unchecked(&mut buf[..]);
        solicit.set_msg_type(Message::NeighborSolicit);
        solicit.set_msg_code(0);
        solicit.clear_rest_of_header();
        solicit.set_target_addr(&target);
        solicit.set_ll_addr_option(LinkLayerOption::Source, HOST_MAC);
        solicit.fill_checksum(&addr("2001:db8::1"), &solicited_node_addr(&target));
        assert_eq!(buf, NEIGHBOR_SOLICIT);
    }

    #[test]
    fn na_flags_are_independent() {
        let mut buf = NEIGHBOR_ADVERT;
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_router_flag(true);
        packet.set_solicited_flag(false);
        assert!(packet.router_flag() && !packet.solicited_flag() && packet.override_flag());
        assert_eq!(buf[4], 0xa0);
    }

    #[test]
    fn parse_packet_too_big() {
        let packet = Packet::new_checked(&PACKET_TOO_BIG[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::PacketTooBig);
        assert!(packet.msg_type().is_error());
        assert_eq!(packet.mtu(), 1420);
        assert!(packet.verify_checksum(&addr("2001:db8::ffff"), &addr("2001:db8:1::7")));
        let quoted = Ipv6Packet::new_unchecked(packet.data());
        assert_eq!(quoted.payload_len(), 1460);
        assert_eq!(quoted.dst_addr(), addr("2001:db8:2::9"));
    }

    #[test]
    fn build_packet_too_big_and_time_exceeded() {
        let mut buf = [0xeeu8; 56];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_msg_type(Message::PacketTooBig);
        packet.set_msg_code(0);
        packet.set_mtu(1420);
        packet.data_mut().copy_from_slice(&PACKET_TOO_BIG[8..]);
        packet.fill_checksum(&addr("2001:db8::ffff"), &addr("2001:db8:1::7"));
        assert_eq!(buf, PACKET_TOO_BIG);

        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_msg_type(Message::TimeExceeded);
        packet.set_msg_code(time_exceeded::HOP_LIMIT_EXCEEDED);
        packet.clear_rest_of_header();
        packet.fill_checksum(&addr("2001:db8::ffff"), &addr("2001:db8:1::7"));
        assert!(packet.verify_checksum(&addr("2001:db8::ffff"), &addr("2001:db8:1::7")));
        assert_eq!(&buf[..2], &[3, 0]);
        assert_eq!(&buf[4..8], &[0; 4]);
    }

    #[test]
    fn solicited_node_and_multicast_mac() {
        let target = addr("2001:db8::2");
        assert_eq!(solicited_node_addr(&target), addr("ff02::1:ff00:2"));
        let link_local = addr("fe80::5054:ff:fe12:3456");
        let group = solicited_node_addr(&link_local);
        assert_eq!(group, addr("ff02::1:ff12:3456"));
        let mac = multicast_mac(&group);
        assert_eq!(mac, MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56]));
        assert!(mac.is_multicast());
        assert_eq!(
            multicast_mac(&addr("ff02::1")),
            MacAddr([0x33, 0x33, 0, 0, 0, 1])
        );
    }

    #[test]
    fn options_of_other_link_layers_and_unknown_kinds_are_skipped() {
        let mut buf = [0u8; 56];
        buf[..24].copy_from_slice(&NEIGHBOR_SOLICIT[..24]);
        // A nonce option (RFC 3971, type 14, one unit), then a two-unit source
        // link-layer address option for some non-Ethernet link, then the Ethernet one.
        buf[24..32].copy_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]);
        buf[32..34].copy_from_slice(&[1, 2]);
        buf[48..56].copy_from_slice(&NEIGHBOR_SOLICIT[24..]);
        let packet = Packet::new_checked(&buf[..48]).unwrap();
        assert_eq!(packet.nd_options().count(), 2);
        assert_eq!(packet.ll_addr(LinkLayerOption::Source), None);
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.nd_options().count(), 3);
        assert_eq!(packet.ll_addr(LinkLayerOption::Source), Some(HOST_MAC));
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            Packet::new_checked(&ECHO_REQUEST[..7]).unwrap_err(),
            WireError::Truncated
        );
        // An ND message without its target address.
        assert_eq!(
            Packet::new_checked(&NEIGHBOR_SOLICIT[..23]).unwrap_err(),
            WireError::Truncated
        );
        // Zero-length option (RFC 4861 7.1.1: silently discard).
        let mut buf = NEIGHBOR_SOLICIT;
        buf[25] = 0;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // Option claiming more than the message holds.
        let mut buf = NEIGHBOR_ADVERT;
        buf[25] = 2;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            WireError::Malformed
        );
        // A stray byte after the last option.
        let mut long = [0u8; 33];
        long[..32].copy_from_slice(&NEIGHBOR_ADVERT);
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            WireError::Malformed
        );
        // A bare ND header without options is fine.
        let packet = Packet::new_checked(&NEIGHBOR_SOLICIT[..24]).unwrap();
        assert_eq!(packet.ll_addr(LinkLayerOption::Source), None);
    }

    #[test]
    fn message_types_round_trip() {
        for value in 0..=u8::MAX {
            assert_eq!(u8::from(Message::from(value)), value);
        }
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        let src = addr("2001:db8::1");
        let dst = addr("ff02::1:ff00:2");
        for sample in [
            &NEIGHBOR_SOLICIT[..],
            &NEIGHBOR_ADVERT[..],
            &PACKET_TOO_BIG[..],
        ] {
            for_each_mutation(sample, 5000, |bytes| {
                let Ok(packet) = Packet::new_checked(bytes) else {
                    return;
                };
                let _ = (packet.msg_code(), packet.echo_ident(), packet.echo_seq_no());
                let _ = (packet.mtu(), packet.router_flag(), packet.override_flag());
                let _ = (packet.verify_checksum(&src, &dst), packet.data());
                let _ = packet.nd_options().count();
                if matches!(
                    packet.msg_type(),
                    Message::NeighborSolicit | Message::NeighborAdvert
                ) {
                    let _ = packet.target_addr();
                    let _ = packet.ll_addr(LinkLayerOption::Source);
                    let _ = packet.ll_addr(LinkLayerOption::Target);
                }
            });
        }
    }
}
