//! Process-wide EAL state, kept so that misuse is an error rather than
//! undefined behaviour.
//!
//! - `rte_eal_init` runs at most once per process ([`begin_init`]).
//! - Every owner (mempool, port, ring) holds an [`OwnerToken`] from the moment
//!   it is created until after its DPDK object is freed. `Eal`'s drop runs
//!   `rte_eal_cleanup` only when no token is alive, and after it no new owner
//!   can be created, so no DPDK object is ever used after the EAL's memory is
//!   gone.
//! - A port id is owned by at most one `Port` at a time ([`PortClaim`]).
//!
//! These checks run on the control path only; the fast path never locks.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use crate::error::Error;
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninit,
    Initialising,
    Running,
    /// `rte_eal_init` failed, or the EAL was cleaned up: DPDK cannot be
    /// initialised again in this process.
    Finished,
}

struct Lifecycle {
    state: State,
    owners: usize,
}

static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle {
    state: State::Uninit,
    owners: 0,
});

static CLAIMED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Locks `m`; a panic while it was held cannot have left it half-updated
/// (every critical section is a single assignment), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Marks the start of the only `rte_eal_init` call of this process.
pub(crate) fn begin_init() -> Result<(), Error> {
    let mut l = lock(&LIFECYCLE);
    if l.state != State::Uninit {
        return Err(Error::invalid(
            "rte_eal_init",
            libc::EALREADY,
            "the EAL can be initialised only once per process",
        ));
    }
    l.state = State::Initialising;
    Ok(())
}

/// Records the outcome of the `rte_eal_init` call started by [`begin_init`].
pub(crate) fn end_init(succeeded: bool) {
    lock(&LIFECYCLE).state = if succeeded {
        State::Running
    } else {
        State::Finished
    };
}

/// Decides whether `rte_eal_cleanup` may run now; if so, no owner can be
/// created afterwards. Returns the number of owners still alive otherwise.
pub(crate) fn begin_cleanup() -> Result<(), usize> {
    let mut l = lock(&LIFECYCLE);
    if l.owners > 0 {
        return Err(l.owners);
    }
    l.state = State::Finished;
    Ok(())
}

/// Fails unless the EAL is initialised and not cleaned up.
pub(crate) fn ensure_running(op: &str) -> Result<(), Error> {
    match lock(&LIFECYCLE).state {
        State::Running => Ok(()),
        _ => Err(not_running(op)),
    }
}

fn not_running(op: &str) -> Error {
    Error::invalid(
        op,
        sys::E_RTE_NO_CONFIG as i32,
        "the EAL is not running (Eal::init has not succeeded, or the Eal was dropped)",
    )
}

/// Proof that an owner of a DPDK object is alive; see the module docs.
#[derive(Debug)]
pub(crate) struct OwnerToken(());

impl OwnerToken {
    pub(crate) fn acquire(op: &str) -> Result<OwnerToken, Error> {
        let mut l = lock(&LIFECYCLE);
        if l.state != State::Running {
            return Err(not_running(op));
        }
        l.owners += 1;
        Ok(OwnerToken(()))
    }
}

impl Drop for OwnerToken {
    fn drop(&mut self) {
        lock(&LIFECYCLE).owners -= 1;
    }
}

/// Exclusive ownership of one ethdev port id.
#[derive(Debug)]
pub(crate) struct PortClaim(u16);

impl PortClaim {
    pub(crate) fn acquire(port_id: u16, op: &str) -> Result<PortClaim, Error> {
        if lock(&CLAIMED_PORTS).insert(port_id) {
            Ok(PortClaim(port_id))
        } else {
            Err(Error::invalid(
                op,
                libc::EBUSY,
                format!("port {port_id} is already started by another Port"),
            ))
        }
    }
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        lock(&CLAIMED_PORTS).remove(&self.0);
    }
}
