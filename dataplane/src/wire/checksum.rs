//! The Internet checksum (RFC 1071): one's-complement sums, pseudo-headers, and the
//! incremental update of RFC 1624.
//!
//! Contract: [`data`], [`pseudo_header_v4`] and [`pseudo_header_v6`] return *folded
//! sums*, not checksums. Combine the parts with [`combine`], then complement the result
//! to get the value that goes on the wire. A received message whose parts, including its
//! checksum field, sum to `0xffff` is intact.
//!
//! Summing is done 32 bits at a time into a 64-bit accumulator: the one's-complement sum
//! is independent of word size as long as carries are folded back in at the end
//! (RFC 1071 section 2), and the loop compiles to wide vector adds.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Adds `bytes` as big-endian 16-bit words to `acc` without folding. An odd trailing
/// byte counts as the high byte of a word whose low byte is zero (RFC 1071).
#[inline]
fn accumulate(mut acc: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(4);
    for word in &mut words {
        acc += u64::from(u32::from_be_bytes(word.try_into().unwrap()));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a wide accumulator into 16 bits, adding carries back in.
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The folded one's-complement sum of `bytes`. Only the last slice passed to
/// [`combine`] may have odd length: an odd slice pads the following byte position.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    fold(accumulate(0, bytes))
}

/// Adds partial sums together.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&sum| u64::from(sum)).sum())
}

/// The sum of the IPv4 pseudo-header (RFC 768; RFC 793 section 3.1): source, destination,
/// zero byte and protocol, and the upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u16) -> u16 {
    let acc = u64::from(src.to_bits())
        + u64::from(dst.to_bits())
        + u64::from(u8::from(protocol))
        + u64::from(length);
    fold(acc)
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, the
/// 32-bit upper-layer length, three zero bytes and the next header.
#[inline]
pub fn pseudo_header_v6(
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    next_header: IpProtocol,
    length: u32,
) -> u16 {
    let acc = accumulate(0, &src.octets());
    let acc = accumulate(acc, &dst.octets());
    fold(acc + u64::from(length) + u64::from(u8::from(next_header)))
}

/// The new checksum after one 16-bit word of the covered data changes from `old` to
/// `new`, without summing the data again: RFC 1624 equation 3,
/// `HC' = ~(~HC + ~m + m')`. Equation 3 rather than RFC 1141's equation 2, which can
/// yield `0xffff` (one's-complement -0) where recomputing from scratch gives `0x0000`
/// (RFC 1624 sections 3 and 4).
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    !combine(&[!checksum, !old, new])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-at-a-time reference straight from the RFC 1071 definition.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = (u32::from(pair[0]) << 8) | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn wide_sum_matches_byte_reference_at_every_length() {
        let mut rng = crate::wire::test_util::Rng::new(7);
        let mut buf = [0u8; 1600];
        rng.fill(&mut buf);
        for len in 0..buf.len() {
            assert_eq!(data(&buf[..len]), reference(&buf[..len]), "length {len}");
        }
        // All ones: the largest carries the folding has to absorb.
        let ones = [0xffu8; 1500];
        assert_eq!(data(&ones), reference(&ones));
    }

    #[test]
    fn combine_equals_summing_the_concatenation() {
        let header = [0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00];
        let payload = [0x08, 0x00, 0xf7, 0xff, 0xde, 0xad, 0xbe];
        let mut whole = header.to_vec();
        whole.extend_from_slice(&payload);
        assert_eq!(combine(&[data(&header), data(&payload)]), data(&whole));
    }

    #[test]
    fn pseudo_headers_match_their_byte_layout() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 7);
        let v4 = [192, 0, 2, 1, 198, 51, 100, 7, 0, 17, 0x05, 0xdc];
        assert_eq!(pseudo_header_v4(src, dst, IpProtocol::Udp, 1500), data(&v4));

        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::ffff:1".parse().unwrap();
        let mut v6 = [0u8; 40];
        v6[..16].copy_from_slice(&src.octets());
        v6[16..32].copy_from_slice(&dst.octets());
        v6[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        v6[39] = 58;
        assert_eq!(
            pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, 70_000),
            data(&v6)
        );
    }

    #[test]
    fn incremental_update_matches_recomputation() {
        let mut rng = crate::wire::test_util::Rng::new(99);
        let mut buf = [0u8; 20];
        for _ in 0..20_000 {
            rng.fill(&mut buf);
            buf[10..12].fill(0);
            let before = !data(&buf);
            buf[10..12].copy_from_slice(&before.to_be_bytes());
            // Any 16-bit word except the checksum itself (word 5).
            let index = [0, 1, 2, 3, 4, 6, 7, 8, 9][(rng.next_u64() % 9) as usize] * 2;
            let old = u16::from_be_bytes([buf[index], buf[index + 1]]);
            let new = rng.next_u64() as u16;
            buf[index..index + 2].copy_from_slice(&new.to_be_bytes());
            let incremental = update(before, old, new);
            buf[10..12].copy_from_slice(&incremental.to_be_bytes());
            // The header, checksum included, must sum to 0xffff (verification rule).
            assert_eq!(data(&buf), 0xffff, "old {old:04x} new {new:04x}");
        }
    }

    #[test]
    fn rfc1624_section4_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
