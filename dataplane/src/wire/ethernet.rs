//! Ethernet II frames (IEEE 802.3, DIX framing) and MAC addresses.
//!
//! Contract: [`Frame::new_checked`] guarantees the 14-byte header is present; the
//! payload is everything after it, including any padding the sender added to reach the
//! 60-byte minimum (the network-layer view trims that by its own length field). The
//! frame check sequence is never part of the buffer: NICs strip it on receive and add it
//! on transmit. A VLAN-tagged frame shows [`EtherType::Vlan`] and the tag as the first
//! four payload bytes.

use core::fmt;
use core::str::FromStr;

use super::{read_u16, write_u16, WireError};

mod field {
    use crate::wire::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Length of the Ethernet header (no VLAN tag).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The EtherType field: which protocol the payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// IEEE 802.1Q tag; the real EtherType follows the tag.
    Vlan,
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const UNSPECIFIED: MacAddr = MacAddr([0; 6]);

    /// The address in `bytes`, which must be exactly six bytes long.
    ///
    /// # Panics
    /// If `bytes` is not six bytes long.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> MacAddr {
        MacAddr(bytes.try_into().expect("a MAC address is six bytes"))
    }

    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group address: the I/G bit (least significant bit of the first octet) is set.
    /// Broadcast is a multicast address too.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered: the U/L bit (second least significant bit) is set.
    #[inline]
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseMacAddrError;

impl fmt::Display for ParseMacAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "expected a MAC address as six hex octets separated by ':', e.g. 02:00:5e:10:00:01",
        )
    }
}

// `std` for the same MSRV reason as `WireError`'s impl.
impl std::error::Error for ParseMacAddrError {}

impl FromStr for MacAddr {
    type Err = ParseMacAddrError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators); each octet is one or two hex
    /// digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let separator = if s.contains('-') { '-' } else { ':' };
        let mut octets = [0u8; 6];
        let mut parts = s.split(separator);
        for octet in &mut octets {
            let part = parts.next().ok_or(ParseMacAddrError)?;
            // Checked by hand because `from_str_radix` would also accept a leading '+'.
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseMacAddrError);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| ParseMacAddrError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacAddrError);
        }
        Ok(MacAddr(octets))
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checking its length (see the module contract).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the header is present.
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

    /// The buffer length needed for a frame carrying `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::for_each_mutation;

    /// An ARP request as a Linux host sends it: broadcast destination, EtherType 0x0806,
    /// padded to the 60-byte minimum.
    #[rustfmt::skip]
    const ARP_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
        0x08, 0x06,
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc0, 0xa8, 0x01, 0x64,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn parse_arp_broadcast() {
        let frame = Frame::new_checked(&ARP_FRAME[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr::BROADCAST);
        assert_eq!(
            frame.src_addr(),
            MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(frame.payload().len(), 46);
        assert_eq!(&frame.payload()[..2], &[0x00, 0x01]);
    }

    #[test]
    fn build_matches_capture() {
        let mut buf = [0u8; 60];
        let mut frame = Frame::new_unchecked(&mut buf[..]);
        frame.set_dst_addr(MacAddr::BROADCAST);
        frame.set_src_addr("52:54:00:12:34:56".parse().unwrap());
        frame.set_ethertype(EtherType::Arp);
        frame.payload_mut()[..28].copy_from_slice(&ARP_FRAME[14..42]);
        assert_eq!(buf, ARP_FRAME);
        assert_eq!(Frame::<&[u8]>::buffer_len(46), 60);
    }

    #[test]
    fn impossible_lengths() {
        assert_eq!(
            Frame::new_checked(&ARP_FRAME[..13]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Frame::new_checked(&[][..]).unwrap_err(),
            WireError::Truncated
        );
        let header_only = Frame::new_checked(&ARP_FRAME[..14]).unwrap();
        assert!(header_only.payload().is_empty());
    }

    #[test]
    fn ethertypes_round_trip() {
        for (value, ethertype) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88cc, EtherType::Unknown(0x88cc)),
        ] {
            assert_eq!(EtherType::from(value), ethertype);
            assert_eq!(u16::from(ethertype), value);
        }
    }

    #[test]
    fn mac_address_classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        let ipv6_multicast = MacAddr([0x33, 0x33, 0xff, 0x00, 0x00, 0x02]);
        assert!(ipv6_multicast.is_multicast() && !ipv6_multicast.is_broadcast());
        let nic = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert!(nic.is_unicast() && nic.is_local());
        assert!(!MacAddr([0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c]).is_local());
    }

    #[test]
    fn mac_address_text() {
        let mac = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x0a, 0xff]);
        assert_eq!(mac.to_string(), "02:00:5e:10:0a:ff");
        assert_eq!(format!("{mac:?}"), "02:00:5e:10:0a:ff");
        assert_eq!("02:00:5E:10:0A:FF".parse::<MacAddr>(), Ok(mac));
        assert_eq!("2-0-5e-10-a-ff".parse::<MacAddr>(), Ok(mac));
        for bad in [
            "",
            "02:00:5e:10:0a",
            "02:00:5e:10:0a:ff:00",
            "02:00:5e:10:0a:fff",
            "02:00:5e:10::ff",
            "02:00:5e:10:0a:fg",
            "02:00-5e:10:0a:ff",
            "+2:00:5e:10:0a:ff",
        ] {
            assert_eq!(bad.parse::<MacAddr>(), Err(ParseMacAddrError), "{bad:?}");
        }
    }

    #[test]
    fn getters_never_panic_after_new_checked() {
        for_each_mutation(&ARP_FRAME, 2000, |bytes| {
            if let Ok(frame) = Frame::new_checked(bytes) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
                assert_eq!(frame.payload().len(), bytes.len() - HEADER_LEN);
            }
        });
    }
}
