//! IPv4 fragmentation (RFC 791 section 3.2, RFC 1812 section 5.2.6) of packets for a
//! peer that are larger than the tunnel MTU and allow it (DF clear). The kernel's
//! WireGuard and wireguard-go both fragment such packets (their tunnel is a network
//! device with that MTU), so wgdp does too instead of dropping them.
//!
//! Contract: [`split`] takes a packet as the route stage punted it (starting at the IP
//! header, TTL not yet decremented and above 1) and returns its fragments, each a fresh
//! buffer holding an IP packet of at most `mtu` bytes with the TTL decremented once.

use dataplane::buf::PacketBuf;
use dataplane::wire::{ipv4, Ipv4Packet};

/// Why a packet was not fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a well-formed IPv4 packet, or DF set.
    Malformed,
    /// Carries IP options, which would have to be sorted into copied and not copied
    /// ones (RFC 791 3.1); such packets are rare enough to be dropped.
    Options,
    /// The MTU leaves no room for eight bytes of data after the header.
    MtuTooSmall,
    /// No buffer for a fragment.
    NoBuffer,
}

/// The fragments of `ip`, or why there are none.
pub fn split<B: PacketBuf>(
    ip: &[u8],
    mtu: u16,
    alloc: &mut dyn FnMut() -> Option<B>,
) -> Result<Vec<B>, Refusal> {
    let p = Ipv4Packet::new_checked(ip).map_err(|_| Refusal::Malformed)?;
    if p.dont_frag() || p.ttl() <= 1 {
        return Err(Refusal::Malformed);
    }
    if p.header_len() != ipv4::HEADER_LEN {
        return Err(Refusal::Options);
    }
    // Every fragment but the last carries a multiple of eight bytes (RFC 791 3.2).
    let step = (usize::from(mtu).saturating_sub(ipv4::HEADER_LEN)) & !7;
    if step == 0 {
        return Err(Refusal::MtuTooSmall);
    }
    let header = &ip[..ipv4::HEADER_LEN];
    let payload = p.payload();
    let base = p.frag_offset();
    let more_after = p.more_frags();
    let mut out = Vec::with_capacity(payload.len().div_ceil(step));
    for (i, chunk) in payload.chunks(step).enumerate() {
        let mut b = alloc().ok_or(Refusal::NoBuffer)?;
        let data = b
            .append(ipv4::HEADER_LEN + chunk.len())
            .ok_or(Refusal::NoBuffer)?;
        data[..ipv4::HEADER_LEN].copy_from_slice(header);
        data[ipv4::HEADER_LEN..].copy_from_slice(chunk);
        let last = (i + 1) * step >= payload.len();
        let mut f = Ipv4Packet::new_unchecked(&mut data[..]);
        f.set_total_len((ipv4::HEADER_LEN + chunk.len()) as u16);
        // A fragment of a fragment: offsets add up, and the last piece keeps the
        // original's "more fragments".
        f.set_frag_offset(base + (i * step) as u16);
        f.set_more_frags(!last || more_after);
        f.set_ttl(p.ttl() - 1);
        f.fill_checksum();
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::frames::write_ipv4;
    use dataplane::buf::HeapBuf;
    use dataplane::wire::IpProtocol;
    use std::net::Ipv4Addr;

    fn packet(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        write_ipv4(
            &mut b,
            Ipv4Addr::new(198, 18, 1, 2),
            Ipv4Addr::new(198, 18, 2, 2),
            IpProtocol::Udp,
            len - ipv4::HEADER_LEN,
        );
        for (i, x) in b[ipv4::HEADER_LEN..].iter_mut().enumerate() {
            *x = i as u8;
        }
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_ident(0x1234);
        p.fill_checksum();
        b
    }

    fn heap() -> Option<HeapBuf> {
        Some(HeapBuf::new(&[]))
    }

    #[test]
    fn splits_and_reassembles() {
        let orig = packet(3000);
        let frags = split(&orig, 1420, &mut heap).unwrap();
        // 2980 bytes of data in pieces of 1400 (1420 - 20, a multiple of 8).
        let sizes: Vec<usize> = frags.iter().map(|f| f.data().len()).collect();
        assert_eq!(sizes, vec![1420, 1420, 200]);
        let mut data = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let p = Ipv4Packet::new_checked(f.data()).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(p.ident(), 0x1234);
            assert_eq!(p.ttl(), 63);
            assert_eq!(usize::from(p.frag_offset()), i * 1400);
            assert_eq!(p.more_frags(), i < 2);
            assert!(!p.dont_frag());
            data.extend_from_slice(p.payload());
        }
        assert_eq!(data, orig[20..]);
    }

    #[test]
    fn fragment_of_a_fragment_keeps_offsets_and_more_fragments() {
        let mut orig = packet(1600);
        {
            let mut p = Ipv4Packet::new_unchecked(&mut orig[..]);
            p.set_frag_offset(800);
            p.set_more_frags(true);
            p.fill_checksum();
        }
        let frags = split(&orig, 1000, &mut heap).unwrap();
        let offs: Vec<(u16, bool)> = frags
            .iter()
            .map(|f| {
                let p = Ipv4Packet::new_checked(f.data()).unwrap();
                (p.frag_offset(), p.more_frags())
            })
            .collect();
        assert_eq!(offs, vec![(800, true), (800 + 976, true)]);
    }

    #[test]
    fn refusals() {
        let mut df = packet(3000);
        Ipv4Packet::new_unchecked(&mut df[..]).set_dont_frag(true);
        assert_eq!(split(&df, 1420, &mut heap).err(), Some(Refusal::Malformed));
        assert_eq!(
            split(&packet(3000), 27, &mut heap).err(),
            Some(Refusal::MtuTooSmall)
        );
        let mut opts = packet(3000);
        opts[0] = 0x46;
        assert_eq!(split(&opts, 1420, &mut heap).err(), Some(Refusal::Options));
        let mut none = || None::<HeapBuf>;
        assert_eq!(
            split(&packet(3000), 1420, &mut none).err(),
            Some(Refusal::NoBuffer)
        );
    }
}
