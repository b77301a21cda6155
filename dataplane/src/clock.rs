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

/// The CPU's time-stamp counter, for runtime accounting: cheap (no serialisation) and
/// constant-rate on the CPUs DPDK runs on; its rate is DPDK's `rte_get_tsc_hz`. On other
/// architectures, nanoseconds.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        now_ns()
    }
}

/// Set the calling thread's timer slack (`PR_SET_TIMERSLACK`): how much later than asked
/// the kernel may end its sleeps, to batch wake-ups. The default is 50 µs. Returns
/// whether the kernel took it.
pub fn set_timer_slack_ns(ns: u64) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_TIMERSLACK takes one integer argument and touches
        // only the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = ns;
        false
    }
}
