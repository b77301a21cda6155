//! The one error type of this crate.
//!
//! Every failure names the operation that failed (with the object it was
//! applied to, e.g. `rte_eth_rx_queue_setup(port net_ring0, queue 1)`) and
//! carries the errno DPDK reported, with `rte_strerror`'s text captured at the
//! moment of failure (its buffer is per-thread and reused, so it is copied).

use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_int;

use crate::sys;

/// A failed DPDK call, or a request this crate refused before calling DPDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: String,
    errno: i32,
    detail: String,
}

impl Error {
    /// An error with the errno DPDK left in `rte_errno`.
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Error {
        // SAFETY: reads this thread's rte_errno; valid before and after EAL init.
        let errno = unsafe { sys::wgdp_rte_errno() };
        Error::from_errno(op, errno)
    }

    /// An error from a DPDK function that returns `-errno`.
    pub(crate) fn from_ret(op: impl Into<String>, ret: c_int) -> Error {
        Error::from_errno(op, ret.saturating_abs())
    }

    pub(crate) fn from_errno(op: impl Into<String>, errno: i32) -> Error {
        Error {
            op: op.into(),
            errno,
            detail: strerror(errno),
        }
    }

    /// An error found by this crate, with its own explanation.
    pub(crate) fn invalid(op: impl Into<String>, errno: i32, detail: impl Into<String>) -> Error {
        Error {
            op: op.into(),
            errno,
            detail: detail.into(),
        }
    }

    /// The operation that failed, with the object it was applied to.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno value (positive) that describes the failure.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// `rte_strerror(errno)`, or this crate's explanation.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (errno {})",
            self.op, self.detail, self.errno
        )
    }
}

impl std::error::Error for Error {}

fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated
    // string (static, or in a per-thread buffer that is copied right away).
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}
