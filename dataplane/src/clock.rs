//! The monotonic clock shared by workers and the control thread.
//!
//! Contract: nanoseconds since a process-wide epoch fixed at first use. Workers read it
//! once per burst and pass the value down the stages; keypair ages and peer activity
//! times are all in this unit, so control can compare them without conversions.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process epoch (never 0 after the first call returns, so 0 can
/// mean "never").
#[inline]
pub fn now_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    Instant::now().duration_since(epoch).as_nanos() as u64 + 1
}

pub const fn secs(s: u64) -> u64 {
    s * 1_000_000_000
}
