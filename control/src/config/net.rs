//! IP prefixes and interface addresses as the configuration writes them.
//!
//! Both are `address/length` text. They differ in what they keep: a [`Prefix`] names a
//! network, so host bits are cleared on parsing (`198.18.1.7/24` becomes
//! `198.18.1.0/24`); an [`InterfaceAddr`] is one of our own addresses together with its
//! connected subnet, so the host part is the point and is kept.
//!
//! A missing `/length` is always an error, never an implicit `/32`: an operator who
//! writes `198.18.1.0` for a peer may mean a single host or may have forgotten `/24`,
//! and guessing wrong sends a whole network into the wrong tunnel.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why an `address/length` text was refused; the text says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixParseError {
    reason: String,
}

impl fmt::Display for PrefixParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PrefixParseError {}

fn refuse(reason: String) -> PrefixParseError {
    PrefixParseError { reason }
}

/// The longest prefix length of the address's family.
fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Clears every bit of `addr` beyond the first `len`; `len` must not exceed the family's
/// maximum.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    // A shift by the full width is `None`, which is the empty mask of a /0.
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & keep))
        }
    }
}

/// Splits `address/length`, checking both halves. Shared by both types so that their
/// messages agree.
fn parse_addr_len(text: &str) -> Result<(IpAddr, u8), PrefixParseError> {
    let Some((addr_text, len_text)) = text.split_once('/') else {
        return Err(match text.parse::<IpAddr>() {
            Ok(addr) => refuse(format!(
                "{text:?} has no prefix length (write {text}/{})",
                max_len(addr)
            )),
            Err(_) => refuse(format!(
                "{text:?} is not an address with prefix length (like 198.18.1.0/24 or 2001:db8::/64)"
            )),
        });
    };
    let addr: IpAddr = addr_text
        .parse()
        .map_err(|_| refuse(format!("{addr_text:?} in {text:?} is not an IP address")))?;
    // `u8::from_str` accepts a leading '+', which no one means in a prefix length.
    if len_text.is_empty() || !len_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse(format!(
            "{len_text:?} in {text:?} is not a prefix length"
        )));
    }
    let max = max_len(addr);
    let len = len_text.parse::<u8>().ok().filter(|&len| len <= max);
    let Some(len) = len else {
        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(refuse(format!(
            "prefix length {len_text} in {text:?} is too long for {family} (at most {max})"
        )));
    };
    Ok((addr, len))
}

/// An IP network: an address with every bit past `len` cleared.
///
/// The fields are public for reading; build values with [`Prefix::new`] or by parsing,
/// which keep `addr` masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// The network address, host bits zero.
    pub addr: IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub len: u8,
}

impl Prefix {
    /// The network of `addr/len`; host bits of `addr` are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixParseError> {
        if len > max_len(addr) {
            return Err(refuse(format!(
                "prefix length {len} is too long for {addr} (at most {})",
                max_len(addr)
            )));
        }
        Ok(Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// Whether `ip` lies inside this network (always false across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }

    /// Whether the two networks share any address, that is one contains the other.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        let shorter = self.len.min(other.len);
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && mask(self.addr, shorter) == mask(other.addr, shorter)
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl FromStr for Prefix {
    type Err = PrefixParseError;

    fn from_str(text: &str) -> Result<Prefix, PrefixParseError> {
        let (addr, len) = parse_addr_len(text)?;
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// One of the gateway's own addresses on a port, with the length of its connected
/// subnet (`198.19.0.2/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceAddr {
    /// The address itself, host part kept.
    pub addr: IpAddr,
    /// Length of the connected subnet.
    pub prefix_len: u8,
}

impl InterfaceAddr {
    /// The connected subnet this address sits in.
    pub fn network(&self) -> Prefix {
        Prefix {
            addr: mask(self.addr, self.prefix_len),
            len: self.prefix_len,
        }
    }

    /// Whether `ip` is on the connected subnet (reachable without a router).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.network().contains(ip)
    }
}

impl FromStr for InterfaceAddr {
    type Err = PrefixParseError;

    fn from_str(text: &str) -> Result<InterfaceAddr, PrefixParseError> {
        let (addr, prefix_len) = parse_addr_len(text)?;
        Ok(InterfaceAddr { addr, prefix_len })
    }
}

impl fmt::Display for InterfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Prefix {
        text.parse().unwrap()
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(prefix("198.18.1.7/24").to_string(), "198.18.1.0/24");
        assert_eq!(prefix("2001:db8::1/64").to_string(), "2001:db8::/64");
        assert_eq!(prefix("10.1.2.3/0").to_string(), "0.0.0.0/0");
        assert_eq!(prefix("::1/0").to_string(), "::/0");
        assert_eq!(prefix("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(prefix("2001:db8::1/128").to_string(), "2001:db8::1/128");
    }

    #[test]
    fn missing_length_suggests_host_prefix() {
        let err = "198.18.1.0".parse::<Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"198.18.1.0\" has no prefix length (write 198.18.1.0/32)"
        );
        let err = "2001:db8::1".parse::<Prefix>().unwrap_err();
        assert!(err.to_string().contains("(write 2001:db8::1/128)"));
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in [
            "",
            "/24",
            "198.18.1.0/",
            "198.18.1.0/+24",
            "198.18.1.0/ 24",
            "198.18.1.0/33",
            "2001:db8::/129",
            "198.18.1/24",
            "host.example/24",
            "198.18.1.0/24/1",
            "198.18.1.0/300",
        ] {
            assert!(text.parse::<Prefix>().is_err(), "{text:?} parsed");
            assert!(text.parse::<InterfaceAddr>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn containment_and_overlap() {
        let net = prefix("198.18.1.0/24");
        assert!(net.contains("198.18.1.255".parse().unwrap()));
        assert!(!net.contains("198.18.2.0".parse().unwrap()));
        assert!(!net.contains("::ffff:198.18.1.1".parse().unwrap()));
        assert!(prefix("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!prefix("0.0.0.0/0").contains("::1".parse().unwrap()));

        assert!(net.overlaps(&prefix("198.18.0.0/16")));
        assert!(prefix("198.18.0.0/16").overlaps(&net));
        assert!(!net.overlaps(&prefix("198.18.2.0/24")));
        assert!(!prefix("::/0").overlaps(&prefix("0.0.0.0/0")));
    }

    #[test]
    fn interface_address_keeps_host_part() {
        let addr: InterfaceAddr = "198.19.0.2/24".parse().unwrap();
        assert_eq!(addr.to_string(), "198.19.0.2/24");
        assert_eq!(addr.network().to_string(), "198.19.0.0/24");
        assert!(addr.contains("198.19.0.254".parse().unwrap()));
        assert!(!addr.contains("198.19.1.1".parse().unwrap()));
    }
}
