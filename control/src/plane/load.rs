//! Defences of the handshake path against floods, as the reference implementations
//! have them (wireguard-go `device/receive.go` and `ratelimiter/`, the whitepaper's
//! section 5.3):
//!
//! - handshake messages wait in one bounded queue ([`HANDSHAKE_QUEUE`]); when it is full
//!   the newest is dropped, so a flood costs a counter increment per packet;
//! - the gateway is "under load" while that queue holds at least an eighth of its size,
//!   and for a second after; then initiations and responses need a valid mac2, and
//!   without one get a cookie reply instead of the Diffie-Hellman work;
//! - under load, messages with a valid mac2 are also limited per source address by a
//!   token bucket ([`SourceLimiter`]), so one host that has a cookie cannot take over.
//!
//! Contract: sans-IO; times are the control plane's nanoseconds.

use std::collections::HashMap;
use std::net::IpAddr;

/// Handshake messages waiting for the control thread (wireguard-go
/// `QueueHandshakeSize`, `device/queueconstants_default.go`: 1024).
pub const HANDSHAKE_QUEUE: usize = 1024;
/// Queue depth from which the gateway is under load (wireguard-go: an eighth of the
/// queue, `device/receive.go`).
pub const UNDER_LOAD_DEPTH: usize = HANDSHAKE_QUEUE / 8;
/// How long the gateway stays under load after the queue was last that deep
/// (wireguard-go `UnderLoadAfterTime`: 1 s).
pub const UNDER_LOAD_AFTER: u64 = 1_000_000_000;

/// Handshake messages per second and burst per source address under load
/// (wireguard-go `ratelimiter/ratelimiter.go`: 20 per second, burst 5).
const PER_SOURCE_PER_SECOND: u64 = 20;
const PER_SOURCE_BURST: u64 = 5;
const COST: u64 = 1_000_000_000 / PER_SOURCE_PER_SECOND;
const MAX_CREDIT: u64 = COST * PER_SOURCE_BURST;
/// Sources remembered at most; beyond, the oldest are forgotten first.
const MAX_SOURCES: usize = 65_536;
/// A source idle for this long is forgotten (wireguard-go: 1 s garbage collection).
const FORGET_AFTER: u64 = 1_000_000_000;

/// A token bucket measured in time: credit is nanoseconds earned since the last
/// message, up to a cap; a message spends a fixed cost. Shared by the per-source
/// limiter here and the ICMP error limit.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenBucket {
    credit: u64,
    last: u64,
}

impl TokenBucket {
    /// A bucket holding its whole burst at `now`.
    pub fn full(cap: u64, now: u64) -> Self {
        TokenBucket {
            credit: cap,
            last: now,
        }
    }

    /// Whether a message costing `cost` may go at `now`; if so it is paid for. Credit
    /// never exceeds `cap`.
    pub fn take(&mut self, now: u64, cost: u64, cap: u64) -> bool {
        self.credit = self
            .credit
            .saturating_add(now.saturating_sub(self.last))
            .min(cap);
        self.last = now;
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }

    /// When the bucket was last used.
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// Whether the gateway is under load, from the queue depth over time.
#[derive(Debug, Default)]
pub struct Load {
    until: u64,
}

impl Load {
    /// Notes the queue depth at `now`; true while under load.
    pub fn update(&mut self, depth: usize, now: u64) -> bool {
        if depth >= UNDER_LOAD_DEPTH {
            self.until = now + UNDER_LOAD_AFTER;
        }
        now < self.until
    }
}

/// Per-source token buckets.
#[derive(Debug, Default)]
pub struct SourceLimiter {
    buckets: HashMap<IpAddr, TokenBucket>,
    last_sweep: u64,
}

impl SourceLimiter {
    /// Whether a message from `src` may be processed now; if so it is paid for.
    /// IPv6 sources count per /64, as a host usually has a whole /64.
    pub fn allow(&mut self, src: IpAddr, now: u64) -> bool {
        let key = match src {
            IpAddr::V6(a) => {
                let mut o = a.octets();
                o[8..].fill(0);
                IpAddr::from(o)
            }
            v4 => v4,
        };
        if now.saturating_sub(self.last_sweep) >= FORGET_AFTER || self.buckets.len() >= MAX_SOURCES
        {
            self.buckets
                .retain(|_, b| now.saturating_sub(b.last()) < FORGET_AFTER);
            self.last_sweep = now;
            if self.buckets.len() >= MAX_SOURCES {
                // Still full of active sources: refuse newcomers rather than grow.
                return self.buckets.contains_key(&key) && self.spend(key, now);
            }
        }
        self.spend(key, now)
    }

    fn spend(&mut self, key: IpAddr, now: u64) -> bool {
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(MAX_CREDIT, now))
            .take(now, COST, MAX_CREDIT)
    }

    pub fn sources(&self) -> usize {
        self.buckets.len()
    }
}

/// The bytes a cookie is bound to: the source address and port of the message.
pub fn cookie_source(src: std::net::SocketAddr) -> Vec<u8> {
    let mut b = match src.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    b.extend_from_slice(&src.port().to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn under_load_from_an_eighth_of_the_queue_and_for_a_second() {
        let mut l = Load::default();
        assert!(!l.update(UNDER_LOAD_DEPTH - 1, 10 * S));
        assert!(l.update(UNDER_LOAD_DEPTH, 10 * S));
        assert!(l.update(0, 10 * S + S / 2));
        assert!(!l.update(0, 11 * S));
    }

    #[test]
    fn per_source_burst_then_twenty_per_second() {
        let mut r = SourceLimiter::default();
        let a: IpAddr = "198.19.0.7".parse().unwrap();
        let b: IpAddr = "198.19.0.8".parse().unwrap();
        let t = 5 * S;
        assert_eq!((0..10).filter(|_| r.allow(a, t)).count(), 5);
        // Another source has its own bucket.
        assert!(r.allow(b, t));
        // One more every 50 ms.
        assert!(!r.allow(a, t + S / 40));
        assert!(r.allow(a, t + S / 20));
        // Over a second: a full burst again, then 20 more.
        let n = (0..1000)
            .filter(|i| r.allow(a, t + S + i * S / 1000))
            .count();
        assert!((24..=25).contains(&n), "{n}");
        // IPv6 counts per /64.
        let x: IpAddr = "2001:2::1".parse().unwrap();
        let y: IpAddr = "2001:2::2".parse().unwrap();
        assert_eq!((0..5).filter(|_| r.allow(x, t)).count(), 5);
        assert!(!r.allow(y, t));
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let mut r = SourceLimiter::default();
        for i in 0..100u8 {
            r.allow(IpAddr::from([198, 19, 1, i]), S);
        }
        assert_eq!(r.sources(), 100);
        r.allow(IpAddr::from([198, 19, 2, 1]), 3 * S);
        assert_eq!(r.sources(), 1);
    }
}
