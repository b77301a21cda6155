//! Longest-prefix-match tables for IPv4 and IPv6.
//!
//! Contract: `insert` stores a value under a network prefix (host bits are masked off, a
//! second insert of the same prefix replaces the value and returns the old one);
//! `lookup` returns the value of the longest stored prefix containing the address.
//! Used for cryptokey routing (allowed IPs -> peer) and for the inside routes.
//!
//! Layout: one hash map per prefix length in use, searched from the longest length down.
//! A table holds few distinct lengths in practice (a /32 per road-warrior peer, a few
//! site prefixes, a default), so a lookup costs a handful of hash probes and the table
//! is rebuilt cheaply when the configuration changes. Tables are immutable once
//! published to workers; control builds a new one and swaps it in.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

/// A multiplicative hasher for integer keys. The keys are network addresses chosen by
/// the operator, not by the remote side, so a keyed hash buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        // Odd constant from the golden ratio; rotate so high bits reach the low bits
        // HashMap uses for its buckets.
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

#[derive(Clone)]
struct Family<V> {
    bits: u8,
    /// (prefix length, networks of that length), longest first.
    levels: Vec<(u8, IntMap<u128, V>)>,
}

impl<V> Family<V> {
    fn new(bits: u8) -> Self {
        Family {
            bits,
            levels: Vec::new(),
        }
    }

    #[inline]
    fn mask(&self, addr: u128, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            let host = self.bits - len;
            (addr >> host) << host
        }
    }

    fn insert(&mut self, addr: u128, len: u8, value: V) -> Option<V> {
        let key = self.mask(addr, len);
        let at = match self.levels.iter().position(|(l, _)| *l <= len) {
            Some(i) if self.levels[i].0 == len => i,
            Some(i) => {
                self.levels.insert(i, (len, IntMap::default()));
                i
            }
            None => {
                self.levels.push((len, IntMap::default()));
                self.levels.len() - 1
            }
        };
        self.levels[at].1.insert(key, value)
    }

    fn remove(&mut self, addr: u128, len: u8) -> Option<V> {
        let key = self.mask(addr, len);
        let i = self.levels.iter().position(|(l, _)| *l == len)?;
        let old = self.levels[i].1.remove(&key);
        if self.levels[i].1.is_empty() {
            self.levels.remove(i);
        }
        old
    }

    #[inline]
    fn lookup(&self, addr: u128) -> Option<(u8, &V)> {
        self.levels
            .iter()
            .find_map(|(len, map)| map.get(&self.mask(addr, *len)).map(|v| (*len, v)))
    }

    fn exact(&self, addr: u128, len: u8) -> Option<&V> {
        let key = self.mask(addr, len);
        self.levels
            .iter()
            .find(|(l, _)| *l == len)
            .and_then(|(_, m)| m.get(&key))
    }

    fn entries(&self) -> impl Iterator<Item = (u128, u8, &V)> {
        self.levels
            .iter()
            .flat_map(|(len, map)| map.iter().map(move |(k, v)| (*k, *len, v)))
    }
}

/// A longest-prefix-match table over both address families.
#[derive(Clone)]
pub struct PrefixTable<V> {
    v4: Family<V>,
    v6: Family<V>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn split(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (true, u32::from(a) as u128),
        IpAddr::V6(a) => (false, u128::from(a)),
    }
}

impl<V> PrefixTable<V> {
    pub fn new() -> Self {
        PrefixTable {
            v4: Family::new(32),
            v6: Family::new(128),
        }
    }

    fn family_mut(&mut self, v4: bool) -> &mut Family<V> {
        if v4 {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    /// Store `value` for `addr/len`. Panics if `len` is longer than the address.
    pub fn insert(&mut self, addr: IpAddr, len: u8, value: V) -> Option<V> {
        let (v4, a) = split(addr);
        let fam = self.family_mut(v4);
        assert!(len <= fam.bits, "prefix length {len} too long for {addr}");
        fam.insert(a, len, value)
    }

    pub fn remove(&mut self, addr: IpAddr, len: u8) -> Option<V> {
        let (v4, a) = split(addr);
        self.family_mut(v4).remove(a, len)
    }

    /// The value of the longest prefix containing `addr`.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<&V> {
        self.lookup_with_len(addr).map(|(_, v)| v)
    }

    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> Option<&V> {
        self.v4.lookup(addr as u128).map(|(_, v)| v)
    }

    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> Option<&V> {
        self.v6.lookup(addr).map(|(_, v)| v)
    }

    /// The longest matching prefix length and its value.
    pub fn lookup_with_len(&self, addr: IpAddr) -> Option<(u8, &V)> {
        match split(addr) {
            (true, a) => self.v4.lookup(a),
            (false, a) => self.v6.lookup(a),
        }
    }

    /// The value stored for exactly this prefix.
    pub fn exact(&self, addr: IpAddr, len: u8) -> Option<&V> {
        match split(addr) {
            (true, a) => self.v4.exact(a, len),
            (false, a) => self.v6.exact(a, len),
        }
    }

    /// Every (network, length, value), in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (IpAddr, u8, &V)> {
        let v4 = self
            .v4
            .entries()
            .map(|(k, l, v)| (IpAddr::from((k as u32).to_be_bytes()), l, v));
        let v6 = self
            .v6
            .entries()
            .map(|(k, l, v)| (IpAddr::from(k.to_be_bytes()), l, v));
        v4.chain(v6)
    }

    pub fn len(&self) -> usize {
        self.v4.entries().count() + self.v6.entries().count()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.levels.is_empty() && self.v6.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_match_wins() {
        let mut t = PrefixTable::new();
        t.insert(ip("0.0.0.0"), 0, "default");
        t.insert(ip("198.18.0.0"), 15, "bench");
        t.insert(ip("198.18.1.0"), 24, "site");
        t.insert(ip("198.18.1.7"), 32, "host");
        assert_eq!(t.lookup(ip("198.18.1.7")), Some(&"host"));
        assert_eq!(t.lookup(ip("198.18.1.8")), Some(&"site"));
        assert_eq!(t.lookup(ip("198.19.200.1")), Some(&"bench"));
        assert_eq!(t.lookup(ip("203.0.113.1")), Some(&"default"));
        assert_eq!(t.lookup_with_len(ip("198.18.1.9")), Some((24, &"site")));
    }

    #[test]
    fn no_match_without_default() {
        let mut t = PrefixTable::new();
        t.insert(ip("198.18.1.0"), 24, 1);
        assert_eq!(t.lookup(ip("198.18.2.1")), None);
        // Families do not mix: ::ffff:198.18.1.1 is an IPv6 address.
        assert_eq!(t.lookup(ip("::ffff:198.18.1.1")), None);
    }

    #[test]
    fn ipv6_longest_match() {
        let mut t = PrefixTable::new();
        t.insert(ip("2001:2::"), 48, 'a');
        t.insert(ip("2001:2:0:1::"), 64, 'b');
        t.insert(ip("2001:2:0:1::5"), 128, 'c');
        t.insert(ip("::"), 0, 'z');
        assert_eq!(t.lookup(ip("2001:2:0:1::5")), Some(&'c'));
        assert_eq!(t.lookup(ip("2001:2:0:1::6")), Some(&'b'));
        assert_eq!(t.lookup(ip("2001:2:0:9::1")), Some(&'a'));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(&'z'));
        assert_eq!(
            t.lookup_v6(u128::from_str_radix("20010002000000010000000000000005", 16).unwrap()),
            Some(&'c')
        );
    }

    #[test]
    fn host_bits_are_masked_and_replace() {
        let mut t = PrefixTable::new();
        assert_eq!(t.insert(ip("198.18.1.77"), 24, 1), None);
        assert_eq!(t.insert(ip("198.18.1.0"), 24, 2), Some(1));
        assert_eq!(t.exact(ip("198.18.1.200"), 24), Some(&2));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(ip("198.18.1.1"), 24), Some(2));
        assert!(t.is_empty());
    }

    #[test]
    fn entries_round_trip() {
        let mut t = PrefixTable::new();
        t.insert(ip("198.18.1.0"), 24, 1);
        t.insert(ip("2001:2::"), 48, 2);
        let mut e: Vec<_> = t
            .entries()
            .map(|(a, l, v)| (a.to_string(), l, *v))
            .collect();
        e.sort();
        assert_eq!(
            e,
            vec![("198.18.1.0".into(), 24, 1), ("2001:2::".into(), 48, 2)]
        );
    }
}
