//! The Environment Abstraction Layer: initialisation, lcores, the TSC.
//!
//! Contract:
//! - [`Eal::init`] runs `rte_eal_init` at most once per process; a second call
//!   (even after the first failed or its `Eal` was dropped) is an error.
//! - The thread that calls `Eal::init` becomes the main lcore. `Eal` is neither
//!   `Send` nor `Sync`, so launching and waiting for workers, which DPDK allows
//!   only on the main lcore, can happen only there.
//! - Dropping `Eal` first waits for every worker lcore to return, then runs
//!   `rte_eal_cleanup` if no [`Mempool`](crate::Mempool), [`Port`](crate::Port)
//!   or [`Ring`](crate::Ring) is still alive. If one is, cleanup is skipped (and
//!   reported on stderr) rather than freeing memory still in use; the process
//!   is then expected to exit. No DPDK object can be created after the drop.
//! - Closures given to [`Eal::remote_launch`] run on the worker lcore's thread;
//!   a panic is caught at the C boundary and reported as [`LCORE_PANICKED`].

use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::lifecycle;
use crate::sys;

/// What [`Eal::wait_lcore`] returns for a launched closure that panicked.
pub const LCORE_PANICKED: i32 = i32::MIN;

/// Name of the mbuf dynamic field behind [`Mbuf::user`](crate::Mbuf::user).
const USER_FIELD_NAME: &[u8] = b"wgdp_user_u64";

/// Byte offset of the user field in every mbuf; 0 until `Eal::init` has
/// registered it (offset 0 is `buf_addr`, never a dynamic field).
static USER_FIELD_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// Whether the EAL of this process is running: `Eal::init` succeeded and the `Eal` has
/// not been dropped.
pub fn running() -> bool {
    lifecycle::ensure_running("").is_ok()
}

/// The initialised EAL. See the module docs for its contract.
pub struct Eal {
    /// `rte_eal_init` may keep pointers into argv, so the strings live as
    /// long as the EAL does.
    _argv: Vec<CString>,
    /// Pins `Eal` to the main lcore's thread (neither `Send` nor `Sync`).
    _main_lcore_only: PhantomData<*mut ()>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal")
            .field("main_lcore", &self.main_lcore())
            .field("lcore_count", &self.lcore_count())
            .finish()
    }
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (EAL options only; the program name is
    /// prepended) and registers the mbuf user field.
    ///
    /// Always pass `--no-pci` (or a PCI allow-list): without it DPDK probes
    /// every PCI NIC it can bind.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, Error> {
        let program = std::env::args().next().unwrap_or_else(|| "wgdp".into());
        let argv = std::iter::once(program.as_str())
            .chain(args.iter().map(AsRef::as_ref))
            .map(|arg| {
                CString::new(arg).map_err(|_| {
                    Error::invalid(
                        "rte_eal_init",
                        libc::EINVAL,
                        format!("EAL argument {arg:?} contains a NUL byte"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let argc = c_int::try_from(argv.len()).expect("fewer than 2^31 EAL arguments");

        lifecycle::begin_init()?;
        // Registered before rte_eal_init, so that it runs after the exit handlers
        // DPDK registers there (telemetry unlinks its sockets in one): see
        // `remove_runtime_dir`.
        // SAFETY: atexit takes a plain function with no preconditions.
        unsafe { libc::atexit(remove_runtime_dir) };
        // getopt permutes this array, so DPDK gets its own copy of the
        // pointers; the strings themselves stay in `argv`.
        let mut ptrs: Vec<*mut c_char> = argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
        // SAFETY: argc/argv describe NUL-terminated strings that outlive the
        // EAL; begin_init guarantees this is the process's only call.
        let ret = unsafe { sys::rte_eal_init(argc, ptrs.as_mut_ptr()) };
        lifecycle::end_init(ret >= 0);
        if ret < 0 {
            return Err(Error::from_rte_errno("rte_eal_init"));
        }

        // SAFETY: the EAL is initialised; the string is static and NUL-terminated.
        let dir = unsafe { std::ffi::CStr::from_ptr(sys::rte_eal_get_runtime_dir()) };
        if let Ok(dir) = dir.to_str() {
            let _ = RUNTIME_DIR.set(std::path::PathBuf::from(dir));
        }
        let eal = Eal {
            _argv: argv,
            _main_lcore_only: PhantomData,
        };
        register_user_field()?;
        Ok(eal)
    }

    /// The lcore id of the calling thread, or `LCORE_ID_ANY` (`u32::MAX`)
    /// for a thread that is not an EAL lcore.
    #[inline]
    pub fn lcore_id() -> u32 {
        // SAFETY: reads a thread-local; valid on any thread.
        unsafe { sys::rte_lcore_id() }
    }

    /// The id of the main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: the EAL is initialised while `self` exists.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// The number of enabled lcores, main included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: as above.
        unsafe { sys::rte_lcore_count() }
    }

    /// Whether `lcore` is enabled (listed in `-l`/`--lcores`).
    pub fn is_lcore_enabled(&self, lcore: u32) -> bool {
        // SAFETY: rte_lcore_is_enabled bounds-checks `lcore`.
        unsafe { sys::rte_lcore_is_enabled(lcore) != 0 }
    }

    /// Every enabled lcore except the main one, in increasing order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        (0..sys::RTE_MAX_LCORE)
            .filter(|&lcore| lcore != self.main_lcore() && self.is_lcore_enabled(lcore))
            .collect()
    }

    /// Runs `f` on worker lcore `lcore`; its return value is collected by
    /// [`Eal::wait_lcore`]. Fails if `lcore` is not an enabled worker or is
    /// still running an earlier closure.
    pub fn remote_launch<F>(&self, lcore: u32, f: F) -> Result<(), Error>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let op = || format!("rte_eal_remote_launch(lcore {lcore})");
        self.check_worker(lcore)
            .map_err(|detail| Error::invalid(op(), libc::EINVAL, detail))?;

        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: `lcore` is an enabled worker and we are on the main lcore
        // (Eal is !Send); the trampoline takes ownership of `arg`.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(run_job), arg, lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so the trampoline will never run and
            // `arg` is still ours.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(Error::from_ret(op(), ret));
        }
        Ok(())
    }

    /// Waits until worker `lcore` has finished its closure and returns the
    /// closure's value ([`LCORE_PANICKED`] if it panicked), or 0 if nothing
    /// was launched there.
    ///
    /// # Panics
    /// If `lcore` is not an enabled worker lcore.
    pub fn wait_lcore(&self, lcore: u32) -> i32 {
        if let Err(detail) = self.check_worker(lcore) {
            panic!("Eal::wait_lcore({lcore}): {detail}");
        }
        // SAFETY: `lcore` is an enabled worker and we are on the main lcore.
        unsafe { sys::rte_eal_wait_lcore(lcore) }
    }

    /// TSC ticks per second (0 before `Eal::init`).
    pub fn tsc_hz() -> u64 {
        // SAFETY: reads a value EAL computed at init; valid on any thread.
        unsafe { sys::rte_get_tsc_hz() }
    }

    /// The current TSC value.
    #[inline]
    pub fn tsc() -> u64 {
        // SAFETY: reads the time-stamp counter; no memory is touched.
        unsafe { sys::rte_get_tsc_cycles() }
    }

    fn check_worker(&self, lcore: u32) -> Result<(), String> {
        if lcore == self.main_lcore() {
            Err(format!("lcore {lcore} is the main lcore"))
        } else if !self.is_lcore_enabled(lcore) {
            Err(format!("lcore {lcore} is not enabled in the EAL arguments"))
        } else {
            Ok(())
        }
    }
}

/// The EAL's runtime directory (`/var/run/dpdk/<file-prefix>`), for
/// `remove_runtime_dir`.
static RUNTIME_DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// At process exit, after DPDK's own exit handlers have unlinked their files,
/// removes the runtime directory, which DPDK leaves behind, if it is empty: a
/// directory still holding files (another process of the same prefix) stays.
extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::remove_dir(dir);
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: on the main lcore; waits for every worker to go idle, so
        // none runs while memory is torn down.
        unsafe { sys::rte_eal_mp_wait_lcore() };
        match lifecycle::begin_cleanup() {
            Ok(()) => {
                // SAFETY: no owner of a DPDK object is alive and none can be
                // created any more (see lifecycle).
                unsafe { sys::rte_eal_cleanup() };
            }
            Err(alive) => eprintln!(
                "dpdk-sys: {alive} DPDK object owner(s) still alive when the Eal was dropped; \
                 skipping rte_eal_cleanup"
            ),
        }
    }
}

/// The closure handed to a worker lcore, boxed twice so that a thin pointer
/// crosses the C boundary.
type Job = Box<dyn FnOnce() -> i32 + Send>;

unsafe extern "C" fn run_job(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` came from Box::into_raw in remote_launch, and DPDK calls
    // this exactly once per successful launch.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // Unwinding into C is undefined behaviour, so the panic stops here. The
    // panic hook has already printed its message.
    panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or(LCORE_PANICKED)
}

fn register_user_field() -> Result<(), Error> {
    let mut desc = sys::rte_mbuf_dynfield {
        size: std::mem::size_of::<u64>(),
        align: std::mem::align_of::<u64>(),
        ..Default::default()
    };
    for (dst, &src) in desc.name.iter_mut().zip(USER_FIELD_NAME) {
        *dst = src as c_char;
    }
    // SAFETY: `desc` is a valid descriptor with a NUL-terminated name (the
    // array is zeroed and longer than the name); the EAL is initialised.
    let offset = unsafe { sys::rte_mbuf_dynfield_register(&desc) };
    if offset < 0 {
        return Err(Error::from_rte_errno(
            "rte_mbuf_dynfield_register(wgdp_user_u64)",
        ));
    }
    USER_FIELD_OFFSET.store(offset as usize, Ordering::Release);
    Ok(())
}

/// Offset of the user field inside `rte_mbuf`.
///
/// # Panics
/// Before `Eal::init` has succeeded; no mbuf can exist then.
#[inline]
pub(crate) fn user_field_offset() -> usize {
    let offset = USER_FIELD_OFFSET.load(Ordering::Acquire);
    assert_ne!(offset, 0, "mbuf user field used before Eal::init");
    offset
}

/// The DPDK version string, e.g. `"DPDK 22.11.4"`.
pub fn version() -> String {
    // SAFETY: rte_version returns a static NUL-terminated string and needs no
    // initialisation.
    unsafe { std::ffi::CStr::from_ptr(sys::rte_version()) }
        .to_string_lossy()
        .into_owned()
}
