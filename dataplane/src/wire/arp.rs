//! ARP (RFC 826) for IPv4 over Ethernet, the only combination wgdp resolves.
//!
//! Contract: [`Packet::new_checked`] accepts only the 28-byte Ethernet/IPv4 form
//! (hardware type 1, protocol type 0x0800, address lengths 6 and 4) and returns
//! [`WireError::Unsupported`] for any other hardware or protocol; after it, every getter
//! reads a fixed offset. Anything past 28 bytes (Ethernet padding) is ignored.
//! [`Repr`] is the parsed form, used to answer requests and to build our own.

use core::net::Ipv4Addr;

use super::{read_ipv4, read_u16, write_u16, MacAddr, WireError};

mod field {
    use crate::wire::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an ARP packet for Ethernet and IPv4.
pub const PACKET_LEN: usize = field::TPA.end;

/// Hardware type for Ethernet (IANA "ARP Parameters").
const HTYPE_ETHERNET: u16 = 1;
/// Protocol type for IPv4: its EtherType.
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    #[inline]
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
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

    /// Ensures the buffer holds a whole Ethernet/IPv4 ARP packet.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the hardware/protocol type and length fields for Ethernet and IPv4.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let data = self.buffer.as_mut();
        write_u16(data, field::HTYPE, HTYPE_ETHERNET);
        write_u16(data, field::PTYPE, PTYPE_IPV4);
        data[field::HLEN] = 6;
        data[field::PLEN] = 4;
    }

    #[inline]
    pub fn set_operation(&mut self, operation: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, operation.into());
    }

    #[inline]
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_sender_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }

    /// Turns a request for one of our addresses into the reply, in place: the requester
    /// becomes the target, and `our_mac` answers for the address that was asked about
    /// (RFC 826, "Packet Reception"). The caller has checked that the packet is a
    /// request and that its target protocol address is ours.
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let requester_mac = self.sender_hardware_addr();
        let requester_ip = self.sender_protocol_addr();
        let asked_ip = self.target_protocol_addr();
        self.set_operation(Operation::Reply);
        self.set_target_hardware_addr(requester_mac);
        self.set_target_protocol_addr(requester_ip);
        self.set_sender_hardware_addr(our_mac);
        self.set_sender_protocol_addr(asked_ip);
    }
}

/// The content of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub sender_hardware_addr: MacAddr,
    pub sender_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            operation: packet.operation(),
            sender_hardware_addr: packet.sender_hardware_addr(),
            sender_protocol_addr: packet.sender_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        }
    }

    /// A request asking who has `target`. The target hardware address is zero, as
    /// RFC 826 leaves it unset and Linux sends it.
    pub fn request(our_mac: MacAddr, our_ip: Ipv4Addr, target: Ipv4Addr) -> Repr {
        Repr {
            operation: Operation::Request,
            sender_hardware_addr: our_mac,
            sender_protocol_addr: our_ip,
            target_hardware_addr: MacAddr::UNSPECIFIED,
            target_protocol_addr: target,
        }
    }

    /// The reply to `self` (a request for one of our addresses) announcing `our_mac`.
    pub fn reply(&self, our_mac: MacAddr) -> Repr {
        Repr {
            operation: Operation::Reply,
            sender_hardware_addr: our_mac,
            sender_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.sender_hardware_addr,
            target_protocol_addr: self.sender_protocol_addr,
        }
    }

    /// Bytes needed by [`emit`](Self::emit).
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the whole packet into the first [`PACKET_LEN`] bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ethernet_ipv4();
        packet.set_operation(self.operation);
        packet.set_sender_hardware_addr(self.sender_hardware_addr);
        packet.set_sender_protocol_addr(self.sender_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;

    /// Who has 192.168.1.1? Tell 192.168.1.100 (52:54:00:12:34:56).
    #[rustfmt::skip]
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc0, 0xa8, 0x01, 0x64,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
    ];

    /// 192.168.1.1 is at 02:00:5e:10:00:01.
    #[rustfmt::skip]
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
        0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x01,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc0, 0xa8, 0x01, 0x64,
    ];

    const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
    const HOST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    #[test]
    fn parse_request() {
        let packet = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(packet.operation(), Operation::Request);
        assert_eq!(packet.sender_hardware_addr(), HOST_MAC);
        assert_eq!(
            packet.sender_protocol_addr(),
            Ipv4Addr::new(192, 168, 1, 100)
        );
        assert_eq!(packet.target_hardware_addr(), MacAddr::UNSPECIFIED);
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(192, 168, 1, 1));
    }

    #[test]
    fn request_becomes_reply_in_place() {
        let mut buf = REQUEST;
        let mut packet = Packet::new_checked(&mut buf[..]).unwrap();
        packet.make_reply(OUR_MAC);
        assert_eq!(buf, REPLY);
    }

    #[test]
    fn repr_reply_emits_the_same_bytes() {
        let request = Repr::parse(&Packet::new_checked(&REQUEST[..]).unwrap());
        let reply = request.reply(OUR_MAC);
        let mut buf = [0xaau8; 28];
        reply.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REPLY);
        assert_eq!(reply.buffer_len(), buf.len());
    }

    #[test]
    fn build_request() {
        let repr = Repr::request(
            HOST_MAC,
            Ipv4Addr::new(192, 168, 1, 100),
            Ipv4Addr::new(192, 168, 1, 1),
        );
        let mut buf = [0xaau8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
        assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), repr);
    }

    #[test]
    fn padding_is_ignored() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(192, 168, 1, 1));
    }

    #[test]
    fn impossible_lengths_and_other_links() {
        assert_eq!(
            Packet::new_checked(&REQUEST[..27]).unwrap_err(),
            WireError::Truncated
        );
        // ARP over IEEE 802 networks (hardware type 6).
        let mut other = REQUEST;
        other[1] = 6;
        assert_eq!(
            Packet::new_checked(&other[..]).unwrap_err(),
            WireError::Unsupported
        );
        // Hardware length that does not fit a MAC address.
        let mut other = REQUEST;
        other[4] = 8;
        assert_eq!(
            Packet::new_checked(&other[..]).unwrap_err(),
            WireError::Unsupported
        );
        // Protocol type IPv6 is not how ARP is used; refuse rather than misread.
        let mut other = REQUEST;
        other[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(
            Packet::new_checked(&other[..]).unwrap_err(),
            WireError::Unsupported
        );
    }

    #[test]
    fn unknown_operations_are_kept() {
        let mut buf = REQUEST;
        buf[7] = 9;
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.operation(), Operation::Unknown(9));
        assert_eq!(u16::from(packet.operation()), 9);
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for_each_mutation(&REQUEST, 2000, |bytes| {
            if let Ok(packet) = Packet::new_checked(bytes) {
                let _ = Repr::parse(&packet);
            }
        });
    }
}
