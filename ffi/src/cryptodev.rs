//! Crypto devices (cryptodev) doing ChaCha20-Poly1305 on mbufs.
//!
//! Contract:
//! - [`CryptoDev::start`] configures a device (a vdev such as `crypto_aesni_mb0` or
//!   `crypto_chacha20_poly1305_0`, or a PCI device), checks that it offers
//!   ChaCha20-Poly1305 with a 32-byte key, a 12-byte IV, a 16-byte tag and no associated
//!   data, creates its op pool and session pool, sets up its queue pairs and starts it.
//!   One `CryptoDev` per device id. It lives in an `Arc`: every [`AeadSession`] and
//!   [`CryptoQueue`] keeps a handle, and when the last one goes the device is stopped and
//!   closed and its pools are freed.
//! - An [`AeadSession`] is one key, one direction (seal or open), one device. DPDK copies
//!   the key into the session; dropping the session frees it, and DPDK 22.11 zeroes the
//!   copy on the way (`rte_cryptodev_sym_session_free` clears the driver's private data).
//!   Sessions may be created and dropped on any thread and used by every queue pair.
//! - A [`CryptoQueue`] is the only user of one queue pair: it claims the pair when made
//!   and releases it on drop, and every operation takes `&mut self`, so a queue pair can
//!   never be used by two threads at once. A worker owns one.
//! - [`CryptoQueue::batch`] collects operations on mbufs, [`AeadBatch::run`] enqueues
//!   them all and polls until every one is back, reporting each result. Sealing
//!   encrypts the data in place and appends the 16-byte tag; opening decrypts in place,
//!   checks the tag (the last 16 bytes of the data) and trims it off on success. The
//!   batch borrows the mbufs and sessions, so neither can go away while the device holds
//!   them.
//! - [`CryptoQueue::submit`], [`CryptoQueue::flush`] and [`CryptoQueue::collect`] are the
//!   same work without waiting: an operation submitted in one poll is handed to the
//!   device by `flush` (as many as the device takes; the rest wait their turn, nothing is
//!   refused for a busy device) and reported by a later `collect`, always in submission
//!   order, whatever order the device returns them in. Each submitted operation holds a
//!   reference to its mbuf until it is collected, so the caller may drop its handle at
//!   any time; it must only leave the data alone meanwhile. At most
//!   [`MAX_IN_FLIGHT`] operations are submitted and not yet collected.
//! - A device that stops answering cannot make the caller wait forever nor make it free
//!   memory the device still writes: after the queue's timeout the remaining operations
//!   are reported failed, and each keeps an extra reference to its mbuf and its session
//!   until it comes back in a later batch (or when the queue is dropped). Only a device
//!   that never returns them leaks them, and that is reported on stderr.
//!
//! Operations are session-based. The `ipsec_mb` drivers of DPDK 22.11 also accept
//! sessionless operations ([`CryptoDev::supports_sessionless`]), but those configure a
//! temporary session per operation; a session made once per key is cheaper and works on
//! every device, hardware included.

use std::collections::BTreeSet;
use std::ffi::{c_void, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{size_of, MaybeUninit};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::eal::Eal;
use crate::error::Error;
use crate::lifecycle::{self, OwnerToken};
use crate::mbuf::Mbuf;
use crate::sys;

/// ChaCha20-Poly1305 key length (RFC 8439 2.8).
pub const AEAD_KEY_LEN: usize = 32;
/// ChaCha20-Poly1305 nonce length (RFC 8439 2.8).
pub const AEAD_IV_LEN: usize = 12;
/// Poly1305 tag length (RFC 8439 2.8).
pub const AEAD_TAG_LEN: usize = 16;

/// Where each op keeps its IV: right after the symmetric op, DPDK's convention
/// (`rte_crypto_op_ctod_offset(op, uint8_t *, IV_OFFSET)` in the examples).
const IV_OFFSET: usize = size_of::<sys::rte_crypto_op>() + size_of::<sys::rte_crypto_sym_op>();
/// After the IV (padded to 16 bytes): the batch the op belongs to (u64) and its slot
/// in that batch (u32), so that an op coming back late is recognised.
const MARK_OFFSET: usize = IV_OFFSET + 16;
/// Private bytes per op: IV and mark.
const OP_PRIV_SIZE: u16 = 16 + 16;

/// The most operations one batch can hold (the burst functions count in `u16`).
pub const MAX_AEAD_BATCH: usize = u16::MAX as usize;

/// The mark's batch number of an operation from [`CryptoQueue::submit`]; its slot is the
/// low 32 bits of its submission number.
const SUBMITTED: u64 = u64::MAX;

/// The most operations submitted and not yet collected on one queue.
pub const MAX_IN_FLIGHT: usize = 8192;

/// How long [`AeadBatch::run`] waits for a device by default. A software device
/// finishes a batch of 256 full-size packets in well under a millisecond.
pub const DEFAULT_CRYPTO_TIMEOUT: Duration = Duration::from_millis(100);

/// How to set up a crypto device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoDevConfig {
    /// Queue pairs: one per worker.
    pub queue_pairs: u16,
    /// Descriptors per queue pair. The `ipsec_mb` drivers need a power of two and
    /// hold one fewer operation than that.
    pub descriptors: u32,
    /// Ops in the op pool, shared by every queue pair: at least the largest batch per
    /// queue pair plus the per-lcore caches.
    pub ops: u32,
    /// Per-lcore cache of the op pool.
    pub op_cache: u32,
    /// Sessions in the session pool: two per live keypair (one per direction).
    pub sessions: u32,
    /// Per-lcore cache of the session pool.
    pub session_cache: u32,
}

impl Default for CryptoDevConfig {
    fn default() -> Self {
        CryptoDevConfig {
            queue_pairs: 1,
            descriptors: 2048,
            ops: 8191,
            op_cache: 256,
            sessions: 8191,
            session_cache: 32,
        }
    }
}

/// Which way a session works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AeadDirection {
    /// Encrypt and append the tag.
    Seal,
    /// Check the tag, decrypt and trim the tag.
    Open,
}

/// Device ids owned by a `CryptoDev`.
static CLAIMED_DEVICES: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

/// Exclusive ownership of one crypto device id.
#[derive(Debug)]
struct DeviceClaim(u8);

impl DeviceClaim {
    fn acquire(id: u8, op: &str) -> Result<DeviceClaim, Error> {
        let mut claimed = CLAIMED_DEVICES.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.insert(id) {
            Ok(DeviceClaim(id))
        } else {
            Err(Error::invalid(
                op,
                libc::EBUSY,
                format!("crypto device {id} is already started by another CryptoDev"),
            ))
        }
    }
}

impl Drop for DeviceClaim {
    fn drop(&mut self) {
        CLAIMED_DEVICES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// A started crypto device; see the module docs.
pub struct CryptoDev {
    id: u8,
    name: String,
    driver: String,
    features: u64,
    started: bool,
    /// One flag per queue pair: claimed by a live `CryptoQueue`.
    queue_claims: Box<[AtomicBool]>,
    /// Freed in `Drop` (after the device is closed), unless ops are still out.
    op_pool: NonNull<sys::rte_mempool>,
    /// Freed in `Drop`; no session can be alive then (each holds a handle).
    session_pool: NonNull<sys::rte_mempool>,
    _claim: DeviceClaim,
    owner: Option<OwnerToken>,
}

// SAFETY: the pools are thread-safe mempools; the device's control functions are
// called only from `start` and `Drop` (exclusive access); session creation is
// thread-safe in DPDK (a mempool get and the driver filling the new session's private
// data); queue pairs are used only through a `CryptoQueue`, one thread at a time.
unsafe impl Send for CryptoDev {}
// SAFETY: as above; shared access creates sessions or reads fixed fields.
unsafe impl Sync for CryptoDev {}

impl CryptoDev {
    /// The id of the crypto device DPDK named `name` (a vdev name such as
    /// `crypto_aesni_mb0`, or the name a PCI driver gave its device).
    pub fn by_name(name: &str) -> Result<u8, Error> {
        let op = || format!("rte_cryptodev_get_dev_id({name:?})");
        lifecycle::ensure_running(&op())?;
        let cname = CString::new(name)
            .map_err(|_| Error::invalid(op(), libc::EINVAL, "the name contains a NUL byte"))?;
        // SAFETY: EAL running; valid C string.
        let id = unsafe { sys::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        u8::try_from(id).map_err(|_| {
            Error::invalid(
                op(),
                libc::ENODEV,
                format!(
                    "no crypto device named {name:?} (is its --vdev given and its driver \
                     installed?)"
                ),
            )
        })
    }

    /// Configures and starts crypto device `dev_id` for ChaCha20-Poly1305; see the
    /// module docs.
    pub fn start(dev_id: u8, config: &CryptoDevConfig) -> Result<Arc<CryptoDev>, Error> {
        let what = format!("CryptoDev::start(crypto device {dev_id})");
        let owner = OwnerToken::acquire(&what)?;
        // SAFETY: EAL running; any id is accepted (unknown ones give NULL).
        let name_ptr = unsafe { sys::rte_cryptodev_name_get(dev_id) };
        if name_ptr.is_null() {
            return Err(Error::invalid(what, libc::ENODEV, "no such crypto device"));
        }
        // SAFETY: a NUL-terminated name owned by DPDK for the device's life.
        let name = unsafe { CStr::from_ptr(name_ptr) }
            .to_string_lossy()
            .into_owned();
        let claim = DeviceClaim::acquire(dev_id, &format!("CryptoDev::start({name})"))?;
        let op = |call: &str| format!("{call}({name})");
        let invalid = |detail: String| Error::invalid(op("CryptoDev::start"), libc::EINVAL, detail);

        let mut info = MaybeUninit::<sys::rte_cryptodev_info>::zeroed();
        // SAFETY: valid device id; the out-pointer is valid and all zeroes is a valid
        // rte_cryptodev_info.
        let info = unsafe {
            sys::rte_cryptodev_info_get(dev_id, info.as_mut_ptr());
            info.assume_init()
        };
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a static NUL-terminated string of the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        check_chacha20_poly1305(dev_id).map_err(|detail| {
            Error::invalid(
                op("CryptoDev::start"),
                libc::ENOTSUP,
                format!("driver {driver}: {detail}"),
            )
        })?;
        if config.queue_pairs == 0 {
            return Err(invalid("at least one queue pair is needed".into()));
        }
        if u32::from(config.queue_pairs) > info.max_nb_queue_pairs {
            return Err(invalid(format!(
                "{} queue pairs requested, the device supports at most {}",
                config.queue_pairs, info.max_nb_queue_pairs
            )));
        }

        // SAFETY: valid device id.
        let socket = unsafe { sys::rte_cryptodev_socket_id(dev_id) };
        // SAFETY: valid device id.
        let session_size = unsafe { sys::rte_cryptodev_sym_get_private_session_size(dev_id) };
        let session_pool = {
            let pool_name = CString::new(format!("wgdp_csess_{dev_id}")).expect("no NUL");
            // SAFETY: EAL running; plain values and a name DPDK copies.
            let raw = unsafe {
                sys::rte_cryptodev_sym_session_pool_create(
                    pool_name.as_ptr(),
                    config.sessions,
                    session_size,
                    config.session_cache,
                    0,
                    socket,
                )
            };
            NonNull::new(raw)
                .ok_or_else(|| Error::from_rte_errno(op("rte_cryptodev_sym_session_pool_create")))?
        };
        let op_pool = {
            let pool_name = CString::new(format!("wgdp_cops_{dev_id}")).expect("no NUL");
            // SAFETY: as above.
            let raw = unsafe {
                sys::rte_crypto_op_pool_create(
                    pool_name.as_ptr(),
                    sys::RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                    config.ops,
                    config.op_cache,
                    OP_PRIV_SIZE,
                    socket,
                )
            };
            match NonNull::new(raw) {
                Some(p) => p,
                None => {
                    let err = Error::from_rte_errno(op("rte_crypto_op_pool_create"));
                    // SAFETY: created above, never used.
                    unsafe { sys::rte_mempool_free(session_pool.as_ptr()) };
                    return Err(err);
                }
            }
        };

        // From here on, Drop undoes whatever was done.
        let mut dev = CryptoDev {
            id: dev_id,
            name,
            driver,
            features: info.feature_flags,
            started: false,
            queue_claims: (0..config.queue_pairs)
                .map(|_| AtomicBool::new(false))
                .collect(),
            op_pool,
            session_pool,
            _claim: claim,
            owner: Some(owner),
        };

        let mut conf = sys::rte_cryptodev_config {
            socket_id: socket,
            nb_queue_pairs: config.queue_pairs,
            // Only symmetric crypto is used; the others would reserve resources.
            ff_disable: u64::from(
                sys::RTE_CRYPTODEV_FF_ASYMMETRIC_CRYPTO | sys::RTE_CRYPTODEV_FF_SECURITY,
            ),
        };
        // SAFETY: valid device id and configuration.
        let ret = unsafe { sys::rte_cryptodev_configure(dev_id, &mut conf) };
        check(ret, || dev.op("rte_cryptodev_configure"))?;
        let qp_conf = sys::rte_cryptodev_qp_conf {
            nb_descriptors: config.descriptors,
            // Only sessionless operations need a pool here.
            mp_session: ptr::null_mut(),
        };
        for qp in 0..config.queue_pairs {
            // SAFETY: configured device, qp < nb_queue_pairs.
            let ret = unsafe { sys::rte_cryptodev_queue_pair_setup(dev_id, qp, &qp_conf, socket) };
            check(ret, || {
                format!(
                    "rte_cryptodev_queue_pair_setup({}, queue pair {qp}, {} descriptors)",
                    dev.name, config.descriptors
                )
            })?;
        }
        // SAFETY: configured device with every queue pair set up.
        let ret = unsafe { sys::rte_cryptodev_start(dev_id) };
        check(ret, || dev.op("rte_cryptodev_start"))?;
        dev.started = true;
        Ok(Arc::new(dev))
    }

    fn op(&self, call: &str) -> String {
        format!("{call}({})", self.name)
    }

    /// The device id.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The device name, e.g. `crypto_aesni_mb0`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver name, e.g. `crypto_aesni_mb`.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// The number of queue pairs.
    pub fn queue_pairs(&self) -> u16 {
        self.queue_claims.len() as u16
    }

    /// Whether the driver accepts sessionless symmetric operations
    /// (`RTE_CRYPTODEV_FF_SYM_SESSIONLESS`); informational, see the module docs.
    pub fn supports_sessionless(&self) -> bool {
        self.features & u64::from(sys::RTE_CRYPTODEV_FF_SYM_SESSIONLESS) != 0
    }

    /// Whether the device is hardware (`RTE_CRYPTODEV_FF_HW_ACCELERATED`).
    pub fn is_hardware(&self) -> bool {
        self.features & u64::from(sys::RTE_CRYPTODEV_FF_HW_ACCELERATED) != 0
    }

    /// Ops taken from the op pool and not yet returned (in a batch, in the device, or
    /// given up on after a timeout).
    pub fn ops_in_use(&self) -> u32 {
        // SAFETY: the pool lives as long as `self`.
        unsafe { sys::rte_mempool_in_use_count(self.op_pool.as_ptr()) }
    }

    /// Sessions alive.
    pub fn sessions_in_use(&self) -> u32 {
        // SAFETY: the pool lives as long as `self`.
        unsafe { sys::rte_mempool_in_use_count(self.session_pool.as_ptr()) }
    }

    /// A session for `key` in `direction` on this device. May run on any thread.
    pub fn session(
        self: &Arc<Self>,
        direction: AeadDirection,
        key: &[u8; AEAD_KEY_LEN],
    ) -> Result<AeadSession, Error> {
        let mut xform = sys::rte_crypto_sym_xform {
            next: ptr::null_mut(),
            type_: sys::RTE_CRYPTO_SYM_XFORM_AEAD,
            ..Default::default()
        };
        xform.__bindgen_anon_1.aead = sys::rte_crypto_aead_xform {
            op: match direction {
                AeadDirection::Seal => sys::RTE_CRYPTO_AEAD_OP_ENCRYPT,
                AeadDirection::Open => sys::RTE_CRYPTO_AEAD_OP_DECRYPT,
            },
            algo: sys::RTE_CRYPTO_AEAD_CHACHA20_POLY1305,
            key: sys::rte_crypto_aead_xform__bindgen_ty_1 {
                data: key.as_ptr(),
                length: AEAD_KEY_LEN as u16,
            },
            iv: sys::rte_crypto_aead_xform__bindgen_ty_2 {
                offset: IV_OFFSET as u16,
                length: AEAD_IV_LEN as u16,
            },
            digest_length: AEAD_TAG_LEN as u16,
            aad_length: 0,
        };
        // SAFETY: started device; the transform and the key it points to are valid
        // for the call (the driver copies the key); the pool is the device's session
        // pool, alive while `self` is.
        let raw = unsafe {
            sys::rte_cryptodev_sym_session_create(self.id, &mut xform, self.session_pool.as_ptr())
        };
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::from_rte_errno(self.op("rte_cryptodev_sym_session_create")))?;
        Ok(AeadSession {
            inner: Arc::new(SessionInner {
                raw,
                direction,
                dev: Arc::clone(self),
            }),
        })
    }

    /// The user of queue pair `qp`; fails if it does not exist or another
    /// `CryptoQueue` has it.
    pub fn queue(self: &Arc<Self>, qp: u16) -> Result<CryptoQueue, Error> {
        let what = || format!("CryptoDev::queue({}, queue pair {qp})", self.name);
        let claim = self.queue_claims.get(usize::from(qp)).ok_or_else(|| {
            Error::invalid(
                what(),
                libc::EINVAL,
                format!("the device has {} queue pair(s)", self.queue_pairs()),
            )
        })?;
        if claim.swap(true, Ordering::Acquire) {
            return Err(Error::invalid(
                what(),
                libc::EBUSY,
                "the queue pair is already used by another CryptoQueue",
            ));
        }
        Ok(CryptoQueue {
            dev: Arc::clone(self),
            qp,
            timeout_cycles: cycles(DEFAULT_CRYPTO_TIMEOUT),
            seq: 0,
            pending: Vec::new(),
            ops: Vec::new(),
            back: Vec::new(),
            settled: Vec::new(),
            returned: Vec::new(),
            sent: 0,
            outstanding: 0,
            strays: Vec::new(),
            flight: std::collections::VecDeque::new(),
            flight_base: 0,
            flight_sent: 0,
            flight_out: 0,
            send: Vec::new(),
            stats: CryptoQueueStats::default(),
        })
    }
}

impl fmt::Debug for CryptoDev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoDev")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("driver", &self.driver)
            .field("queue_pairs", &self.queue_pairs())
            .finish()
    }
}

impl Drop for CryptoDev {
    fn drop(&mut self) {
        // SAFETY: we own the device; no session and no queue is left (each holds a
        // handle), so nothing uses it any more.
        unsafe {
            if self.started {
                sys::rte_cryptodev_stop(self.id);
            }
            sys::rte_cryptodev_close(self.id);
        }
        let ops_out = self.ops_in_use();
        let sessions_out = self.sessions_in_use();
        // SAFETY: the device is closed, so it holds no op and no session; the pools
        // are freed only when nothing else does either.
        unsafe {
            if ops_out == 0 {
                sys::rte_mempool_free(self.op_pool.as_ptr());
            }
            if sessions_out == 0 {
                sys::rte_mempool_free(self.session_pool.as_ptr());
            }
        }
        if ops_out != 0 || sessions_out != 0 {
            eprintln!(
                "dpdk-sys: crypto device {} closed with {ops_out} op(s) and {sessions_out} \
                 session(s) still out; leaking their pools",
                self.name
            );
            // The leaked pools keep the EAL's memory in use.
            std::mem::forget(self.owner.take());
        }
    }
}

/// `Ok` if device `dev_id` does ChaCha20-Poly1305 with our sizes; why not otherwise.
fn check_chacha20_poly1305(dev_id: u8) -> Result<(), String> {
    let idx = sys::rte_cryptodev_sym_capability_idx {
        type_: sys::RTE_CRYPTO_SYM_XFORM_AEAD,
        algo: sys::rte_cryptodev_sym_capability_idx__bindgen_ty_1 {
            aead: sys::RTE_CRYPTO_AEAD_CHACHA20_POLY1305,
        },
    };
    // SAFETY: valid device id and index.
    let cap = unsafe { sys::rte_cryptodev_sym_capability_get(dev_id, &idx) };
    if cap.is_null() {
        return Err("the device has no ChaCha20-Poly1305 AEAD capability".into());
    }
    // SAFETY: a capability entry of the device, checked by DPDK.
    let ret = unsafe {
        sys::rte_cryptodev_sym_capability_check_aead(
            cap,
            AEAD_KEY_LEN as u16,
            AEAD_TAG_LEN as u16,
            0,
            AEAD_IV_LEN as u16,
        )
    };
    if ret != 0 {
        return Err(format!(
            "the device's ChaCha20-Poly1305 does not take a {AEAD_KEY_LEN}-byte key, \
             {AEAD_IV_LEN}-byte IV, {AEAD_TAG_LEN}-byte tag and no AAD"
        ));
    }
    Ok(())
}

fn check(ret: i32, op: impl FnOnce() -> String) -> Result<(), Error> {
    if ret < 0 {
        Err(Error::from_ret(op(), ret))
    } else {
        Ok(())
    }
}

/// TSC cycles in `d`.
fn cycles(d: Duration) -> u64 {
    let hz = u128::from(Eal::tsc_hz());
    u64::try_from(d.as_nanos() * hz / 1_000_000_000).unwrap_or(u64::MAX)
}

/// A key in one direction on one device; see the module docs. The key is not
/// readable back, and `Debug` shows none of it.
pub struct AeadSession {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    raw: NonNull<c_void>,
    direction: AeadDirection,
    dev: Arc<CryptoDev>,
}

// SAFETY: a session is immutable once created; drivers only read it while processing
// (on any queue pair), and freeing it needs exclusive ownership (the last Arc).
unsafe impl Send for SessionInner {}
// SAFETY: as above.
unsafe impl Sync for SessionInner {}

impl AeadSession {
    pub fn direction(&self) -> AeadDirection {
        self.inner.direction
    }

    /// The id of the device the session belongs to.
    pub fn device_id(&self) -> u8 {
        self.inner.dev.id
    }
}

impl fmt::Debug for AeadSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadSession")
            .field("device", &self.inner.dev.name)
            .field("direction", &self.inner.direction)
            .finish_non_exhaustive()
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        // SAFETY: the session was made on this device, which is alive (we hold a
        // handle), and no op uses it any more: batches borrow the session and ops
        // given up on hold their own reference. DPDK zeroes the private data, the key
        // included, before returning it to the pool.
        unsafe { sys::rte_cryptodev_sym_session_free(self.dev.id, self.raw.as_ptr()) };
    }
}

/// Counters of one queue pair, totals since the queue was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CryptoQueueStats {
    /// Operations handed to the device.
    pub enqueued: u64,
    /// Operations the device reported failed (an open with a bad tag, mostly).
    pub failed: u64,
    /// Operations reported failed without a try because the op pool was empty.
    pub no_op: u64,
    /// Operations given up on after the timeout (also reported failed).
    pub timed_out: u64,
    /// Operations given up on that came back later and were released.
    pub reaped: u64,
}

/// An operation collected by a batch.
struct Pending {
    mbuf: NonNull<sys::rte_mbuf>,
    session: *const SessionInner,
    seal: bool,
    /// Bytes to encrypt or decrypt (the tag excluded).
    len: u32,
    iv: [u8; AEAD_IV_LEN],
}

/// An operation given up on: it keeps its mbuf (one extra reference) and its session
/// until the device returns it.
struct Stray {
    op: NonNull<sys::rte_crypto_op>,
    mbuf: NonNull<sys::rte_mbuf>,
    session: Arc<SessionInner>,
}

/// The user of one queue pair; see the module docs.
pub struct CryptoQueue {
    dev: Arc<CryptoDev>,
    qp: u16,
    timeout_cycles: u64,
    /// Batch number written into each op's mark.
    seq: u64,
    /// The running batch's operations, by slot.
    pending: Vec<Pending>,
    /// The running batch's ops, by slot; null once handed over to a stray.
    ops: Vec<*mut sys::rte_crypto_op>,
    /// Whether each slot's op is back.
    returned: Vec<bool>,
    /// The running batch's ops handed to the device (a prefix of `ops`).
    sent: usize,
    /// The running batch's ops in the device.
    outstanding: usize,
    /// Dequeue buffer.
    back: Vec<*mut sys::rte_crypto_op>,
    /// Results of the running batch's ops in `back`, by slot.
    settled: Vec<(usize, bool)>,
    strays: Vec<Stray>,
    /// Submitted operations not yet collected, oldest first; the first is number
    /// `flight_base`.
    flight: std::collections::VecDeque<Flying>,
    flight_base: u64,
    /// `flight[..flight_sent]` have been handed to the device.
    flight_sent: usize,
    /// Of those, how many the device still holds.
    flight_out: usize,
    /// Enqueue buffer for `flush`.
    send: Vec<*mut sys::rte_crypto_op>,
    stats: CryptoQueueStats,
}

/// A submitted operation: its op (prepared), a reference to its mbuf and its session.
struct Flying {
    op: NonNull<sys::rte_crypto_op>,
    mbuf: NonNull<sys::rte_mbuf>,
    session: Arc<SessionInner>,
    seal: bool,
    user: u64,
    /// TSC when handed to the device (0 before).
    sent_at: u64,
    /// The result, once back.
    done: Option<bool>,
}

// SAFETY: between calls the queue holds no borrowed pointer (`pending`, `ops` and
// `back` are emptied by every batch); strays own an op, an mbuf reference and a
// session handle, all of which may be released on any thread. The queue pair itself
// is used by one thread at a time (`&mut self`).
unsafe impl Send for CryptoQueue {}
// SAFETY: shared access only reads plain fields (counters, ids); everything that
// touches a pointer takes `&mut self`.
unsafe impl Sync for CryptoQueue {}

impl CryptoQueue {
    /// The device.
    pub fn device(&self) -> &Arc<CryptoDev> {
        &self.dev
    }

    /// The queue pair id.
    pub fn queue_pair(&self) -> u16 {
        self.qp
    }

    /// How long a batch waits for the device before giving up on what is left.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout_cycles = cycles(timeout);
    }

    pub fn stats(&self) -> CryptoQueueStats {
        self.stats
    }

    /// Operations given up on and not yet returned by the device.
    pub fn strays(&self) -> usize {
        self.strays.len()
    }

    /// Starts a batch on this queue pair.
    pub fn batch(&mut self) -> AeadBatch<'_> {
        self.pending.clear();
        AeadBatch {
            queue: self,
            _borrows: PhantomData,
        }
    }

    /// Releases the operations given up on that the device has returned since; how
    /// many are still out.
    pub fn reap_strays(&mut self) -> usize {
        while !self.strays.is_empty() && self.dequeue(&mut |_, _| {}) > 0 {}
        self.strays.len()
    }

    /// Dequeues what the device has ready, up to the running batch's outstanding ops
    /// plus the strays, and settles each: an op of batch `self.seq` is reported to
    /// `done`, a stray is released. Returns how many came back.
    fn dequeue(&mut self, done: &mut dyn FnMut(usize, bool)) -> usize {
        let want =
            (self.outstanding + self.strays.len() + self.flight_out).clamp(1, MAX_AEAD_BATCH);
        self.back.clear();
        self.back.reserve(want);
        // SAFETY: our queue pair of a started device (exclusive through `&mut self`);
        // the spare capacity holds `want` pointers and DPDK writes `n` ops there.
        let n = unsafe {
            let n = sys::rte_cryptodev_dequeue_burst(
                self.dev.id,
                self.qp,
                self.back.as_mut_ptr(),
                want as u16,
            );
            self.back.set_len(usize::from(n));
            usize::from(n)
        };
        // Everything is settled before the caller hears of any of it, so that a panic
        // in `done` leaves no op out of both the device and the queue's books.
        self.settled.clear();
        for i in 0..n {
            let op = self.back[i];
            // SAFETY: an op this queue enqueued, marked by `prepare`.
            let (seq, slot) = unsafe { read_mark(op) };
            let slot = slot as usize;
            // (An op of `submit` carries the low bits of its number as its slot.)
            if seq == SUBMITTED {
                self.land(op, slot as u32);
            } else if seq == self.seq && slot < self.ops.len() && self.ops[slot] == op {
                self.returned[slot] = true;
                self.outstanding -= 1;
                // SAFETY: the op is back, so it and its mbuf (borrowed by the running
                // batch) are ours again.
                let ok = unsafe { finish(op, self.pending[slot].seal) };
                if !ok {
                    self.stats.failed += 1;
                }
                self.settled.push((slot, ok));
            } else {
                self.release_stray(op);
            }
        }
        for &(slot, ok) in &self.settled {
            done(slot, ok);
        }
        n
    }

    /// Submits an operation with `session` on `mbuf`'s data and nonce `iv`, to be handed
    /// to the device by [`CryptoQueue::flush`] and reported with `user` by
    /// [`CryptoQueue::collect`]. A seal gets its tag room appended now.
    ///
    /// # Safety
    /// Until `collect` reports `user`, nothing may read or write the mbuf's data or
    /// change its lengths (the device works on it). Dropping the `Mbuf` is fine: the
    /// queue holds a reference of its own.
    pub unsafe fn submit(
        &mut self,
        session: &AeadSession,
        mbuf: &mut Mbuf,
        iv: &[u8; AEAD_IV_LEN],
        user: u64,
    ) -> Result<(), Refused> {
        let p = pending_op(
            &self.dev,
            session,
            mbuf,
            iv,
            self.flight.len() >= MAX_IN_FLIGHT,
        )?;
        let mut op = ptr::null_mut();
        // SAFETY: room for one op pointer; on success DPDK wrote a reset op we own.
        let got = sys::rte_crypto_op_bulk_alloc(
            self.dev.op_pool.as_ptr(),
            sys::RTE_CRYPTO_OP_TYPE_SYMMETRIC,
            &mut op,
            1,
        );
        let Some(op) = NonNull::new(op).filter(|_| got == 1) else {
            self.stats.no_op += 1;
            return Err(Refused::NoOp);
        };
        let number = self.flight_base + self.flight.len() as u64;
        let m = p.mbuf;
        // SAFETY: a fresh op of our pool; the mbuf and session are alive (the reference
        // taken below and the Arc keep them so); the lengths and room are checked.
        prepare(op.as_ptr(), &p, SUBMITTED, number as u32);
        sys::rte_mbuf_refcnt_update(m.as_ptr(), 1);
        self.flight.push_back(Flying {
            op,
            mbuf: m,
            session: Arc::clone(&session.inner),
            seal: p.seal,
            user,
            sent_at: 0,
            done: None,
        });
        Ok(())
    }

    /// Hands submitted operations to the device, as many as it takes now; returns how
    /// many still wait (they go with the next `flush`).
    pub fn flush(&mut self) -> usize {
        let waiting = self.flight.len() - self.flight_sent;
        if waiting == 0 {
            return 0;
        }
        self.send.clear();
        self.send
            .extend(self.flight.range(self.flight_sent..).map(|f| f.op.as_ptr()));
        let want = waiting.min(MAX_AEAD_BATCH);
        // SAFETY: our queue pair; the ops are prepared and ours until the device takes
        // them.
        let k = usize::from(unsafe {
            sys::rte_cryptodev_enqueue_burst(
                self.dev.id,
                self.qp,
                self.send.as_mut_ptr(),
                want as u16,
            )
        });
        let now = Eal::tsc();
        for f in self
            .flight
            .range_mut(self.flight_sent..self.flight_sent + k)
        {
            f.sent_at = now;
        }
        self.flight_sent += k;
        self.flight_out += k;
        self.stats.enqueued += k as u64;
        waiting - k
    }

    /// Reports submitted operations that are done, in submission order, as
    /// `done(user, ok)`: a sealed mbuf has its tag written, an opened one has it trimmed
    /// off when `ok`; a failed one's data is undefined. One the device has held longer
    /// than the queue's timeout is reported failed, and its mbuf stays referenced until
    /// the device returns it. Returns how many were reported.
    pub fn collect(&mut self, mut done: impl FnMut(u64, bool)) -> usize {
        if self.flight_out > 0 || !self.strays.is_empty() {
            while self.dequeue(&mut |_, _| {}) > 0 {}
        }
        let now = Eal::tsc();
        let mut n = 0;
        while let Some(front) = self.flight.front() {
            let ok = match front.done {
                Some(ok) => ok,
                None if front.sent_at != 0
                    && now.saturating_sub(front.sent_at) > self.timeout_cycles =>
                {
                    let f = self.flight.pop_front().expect("front");
                    self.flight_base += 1;
                    self.flight_sent -= 1;
                    self.flight_out -= 1;
                    self.stats.timed_out += 1;
                    self.stats.failed += 1;
                    // The submit reference stays with the stray until the device returns
                    // the op.
                    self.strays.push(Stray {
                        op: f.op,
                        mbuf: f.mbuf,
                        session: f.session,
                    });
                    done(f.user, false);
                    n += 1;
                    continue;
                }
                None => break,
            };
            let f = self.flight.pop_front().expect("front");
            self.flight_base += 1;
            self.flight_sent -= 1;
            // SAFETY: the op is back (done), so it and the submit reference are ours.
            unsafe {
                sys::rte_mempool_put(self.dev.op_pool.as_ptr(), f.op.as_ptr().cast());
                sys::rte_pktmbuf_free(f.mbuf.as_ptr());
            }
            done(f.user, ok);
            n += 1;
        }
        n
    }

    /// Operations submitted and not yet collected.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }

    /// A submitted op came back: settle it by its number's low bits.
    fn land(&mut self, op: *mut sys::rte_crypto_op, low: u32) {
        let at = low.wrapping_sub(self.flight_base as u32) as usize;
        match self.flight.get_mut(at) {
            Some(f) if f.op.as_ptr() == op && f.done.is_none() => {
                // SAFETY: the op is back; its mbuf is alive (the submit reference).
                let ok = unsafe { finish(op, f.seal) };
                if !ok {
                    self.stats.failed += 1;
                }
                f.done = Some(ok);
                self.flight_out -= 1;
            }
            // Given up on by `collect` and turned into a stray.
            _ => self.release_stray(op),
        }
    }

    /// Releases a stray that the device returned.
    fn release_stray(&mut self, op: *mut sys::rte_crypto_op) {
        let Some(at) = self.strays.iter().position(|s| s.op.as_ptr() == op) else {
            // Only this queue's ops are in its pair, and each is either in the running
            // batch or a stray.
            debug_assert!(false, "dequeued an op this queue does not know");
            return;
        };
        let stray = self.strays.swap_remove(at);
        // SAFETY: the op is back from the device; the stray's extra reference on the
        // mbuf is dropped and the op returns to its pool.
        unsafe {
            sys::rte_pktmbuf_free(stray.mbuf.as_ptr());
            sys::rte_crypto_op_free(stray.op.as_ptr());
        }
        drop(stray.session);
        self.stats.reaped += 1;
    }

    /// The running batch's deadline passed: report every slot not back as failed, and
    /// turn those the device still holds into strays (nulled out of `ops`). As in
    /// `dequeue`, the books are settled before `done` hears of anything.
    fn give_up(&mut self, done: &mut dyn FnMut(usize, bool)) {
        self.settled.clear();
        for slot in 0..self.ops.len() {
            if self.returned[slot] {
                continue;
            }
            self.returned[slot] = true;
            self.settled.push((slot, false));
            if slot < self.sent {
                let p = &self.pending[slot];
                // SAFETY: the mbuf and session are borrowed by the running batch, so
                // alive; the extra mbuf reference and the session handle keep them so
                // after it, until the device returns the op.
                let session = unsafe {
                    sys::rte_mbuf_refcnt_update(p.mbuf.as_ptr(), 1);
                    Arc::increment_strong_count(p.session);
                    Arc::from_raw(p.session)
                };
                self.strays.push(Stray {
                    op: NonNull::new(self.ops[slot]).expect("a sent op"),
                    mbuf: p.mbuf,
                    session,
                });
                self.ops[slot] = ptr::null_mut();
                self.stats.timed_out += 1;
            }
        }
        self.outstanding = 0;
        for &(slot, ok) in &self.settled {
            done(slot, ok);
        }
    }

    /// Ends the running batch: its ops that are ours go back to the pool.
    fn end_batch(&mut self) {
        self.ops.retain(|op| !op.is_null());
        // SAFETY: every op left is back from the device or was never sent, so ours, and
        // all come from the device's op pool; session-based ops need no more than
        // `rte_mempool_put` (what `rte_crypto_op_free` does for them).
        unsafe {
            sys::rte_mempool_put_bulk(
                self.dev.op_pool.as_ptr(),
                self.ops.as_ptr().cast(),
                self.ops.len() as u32,
            )
        };
        self.ops.clear();
        self.pending.clear();
        self.returned.clear();
        self.sent = 0;
        self.outstanding = 0;
    }
}

impl fmt::Debug for CryptoQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoQueue")
            .field("device", &self.dev.name)
            .field("queue_pair", &self.qp)
            .field("strays", &self.strays.len())
            .finish()
    }
}

impl Drop for CryptoQueue {
    fn drop(&mut self) {
        // Submitted operations not collected: those never sent go back at once; those in
        // the device become strays, reaped below like any other.
        for f in self.flight.drain(..) {
            if f.sent_at == 0 || f.done.is_some() {
                // SAFETY: never handed to the device, or back from it: ours.
                unsafe {
                    sys::rte_mempool_put(self.dev.op_pool.as_ptr(), f.op.as_ptr().cast());
                    sys::rte_pktmbuf_free(f.mbuf.as_ptr());
                }
            } else {
                self.strays.push(Stray {
                    op: f.op,
                    mbuf: f.mbuf,
                    session: f.session,
                });
            }
        }
        self.flight_out = 0;
        let deadline = Eal::tsc().saturating_add(self.timeout_cycles);
        while self.reap_strays() > 0 && Eal::tsc() < deadline {
            std::hint::spin_loop();
        }
        if !self.strays.is_empty() {
            eprintln!(
                "dpdk-sys: queue pair {} of crypto device {} dropped with {} operation(s) \
                 the device never returned; leaking them with their mbufs and sessions",
                self.qp,
                self.dev.name,
                self.strays.len()
            );
            // The device may still write them: their mbufs keep the extra reference,
            // and their sessions (so the device and its pools) stay alive.
            for stray in self.strays.drain(..) {
                std::mem::forget(stray.session);
            }
        }
        self.dev.queue_claims[usize::from(self.qp)].store(false, Ordering::Release);
    }
}

/// Why [`AeadBatch::push`] refused an operation; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session belongs to another device.
    OtherDevice,
    /// A chained (multi-segment) mbuf.
    Chained,
    /// Open: shorter than the tag.
    TooShort,
    /// Seal: no tailroom for the tag.
    NoRoom,
    /// The batch already holds [`MAX_AEAD_BATCH`] operations, or the queue
    /// [`MAX_IN_FLIGHT`] submitted ones.
    Full,
    /// Submit: the device's op pool is empty.
    NoOp,
}

/// Operations collected on one queue pair; see [`CryptoQueue::batch`].
///
/// The batch borrows every mbuf and session pushed into it until [`AeadBatch::run`];
/// dropping it without running changes nothing.
pub struct AeadBatch<'a> {
    queue: &'a mut CryptoQueue,
    _borrows: PhantomData<(&'a AeadSession, &'a mut Mbuf)>,
}

impl<'a> AeadBatch<'a> {
    /// Adds an operation with `session` on `mbuf`'s data and nonce `iv`; returns its
    /// slot (0, 1, ... in push order), by which [`AeadBatch::run`] reports its result.
    pub fn push(
        &mut self,
        session: &'a AeadSession,
        mbuf: &'a mut Mbuf,
        iv: &[u8; AEAD_IV_LEN],
    ) -> Result<usize, Refused> {
        let q = &mut *self.queue;
        let p = pending_op(&q.dev, session, mbuf, iv, q.pending.len() >= MAX_AEAD_BATCH)?;
        q.pending.push(p);
        Ok(q.pending.len() - 1)
    }

    /// Operations collected so far.
    pub fn len(&self) -> usize {
        self.queue.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.pending.is_empty()
    }

    /// Processes the batch: enqueues every operation, polls the device until each one
    /// is back (or the queue's timeout passes), and calls `done(slot, ok)` once per
    /// operation, in any order. A sealed mbuf has the tag appended; an opened one has
    /// it trimmed off when `ok`. A failed operation leaves the data undefined.
    pub fn run(self, mut done: impl FnMut(usize, bool)) {
        let n = self.queue.pending.len();
        if n == 0 {
            return;
        }
        let mut q = Running(self.queue);
        q.seq = q.seq.wrapping_add(1);

        q.ops.reserve(n);
        // SAFETY: the spare capacity holds `n` pointers; on success DPDK wrote `n`
        // reset ops there, which we now own.
        let got = unsafe {
            let got = sys::rte_crypto_op_bulk_alloc(
                q.dev.op_pool.as_ptr(),
                sys::RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                q.ops.as_mut_ptr(),
                n as u16,
            );
            q.ops.set_len(got as usize);
            got as usize
        };
        if got != n {
            q.stats.no_op += n as u64;
            (0..n).for_each(|slot| done(slot, false));
            return;
        }
        for (slot, (p, &op)) in q.pending.iter().zip(&q.ops).enumerate() {
            // SAFETY: a fresh op of our pool (with our private area), an mbuf and a
            // session borrowed by this batch; push checked the lengths and the room.
            unsafe { prepare(op, p, q.seq, slot as u32) };
        }
        q.returned.resize(n, false);

        let deadline = Eal::tsc().saturating_add(q.timeout_cycles);
        loop {
            if q.sent < n {
                let sent = q.sent;
                // SAFETY: our queue pair; ops[sent..n] are prepared and still ours.
                let k = usize::from(unsafe {
                    sys::rte_cryptodev_enqueue_burst(
                        q.dev.id,
                        q.qp,
                        q.ops.as_mut_ptr().add(sent),
                        (n - sent) as u16,
                    )
                });
                q.sent += k;
                q.outstanding += k;
                q.stats.enqueued += k as u64;
            }
            // Checked before polling, so that a zero timeout means "do not wait".
            if Eal::tsc() > deadline {
                q.give_up(&mut done);
                break;
            }
            q.dequeue(&mut done);
            if q.sent == n && q.outstanding == 0 {
                break;
            }
        }
    }
}

/// The queue while a batch runs. However `run` is left, the batch ends: its ops go
/// back to the pool, and on a panic in the caller's `done` whatever the device still
/// holds becomes a stray first, so that unwinding frees no mbuf under the device.
struct Running<'q>(&'q mut CryptoQueue);

impl std::ops::Deref for Running<'_> {
    type Target = CryptoQueue;
    fn deref(&self) -> &CryptoQueue {
        self.0
    }
}

impl std::ops::DerefMut for Running<'_> {
    fn deref_mut(&mut self) -> &mut CryptoQueue {
        self.0
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.0.returned.is_empty() {
            self.0.give_up(&mut |_, _| {});
        }
        self.0.end_batch();
    }
}

/// The operation `session` on `mbuf` with nonce `iv` would be, or why it cannot be
/// (`full`: no room for it where it would go).
fn pending_op(
    dev: &CryptoDev,
    session: &AeadSession,
    mbuf: &Mbuf,
    iv: &[u8; AEAD_IV_LEN],
    full: bool,
) -> Result<Pending, Refused> {
    if session.inner.dev.id != dev.id {
        return Err(Refused::OtherDevice);
    }
    if !mbuf.is_contiguous() {
        return Err(Refused::Chained);
    }
    if full {
        return Err(Refused::Full);
    }
    let data = u32::from(mbuf.data_len());
    let seal = session.inner.direction == AeadDirection::Seal;
    let len = if seal {
        if usize::from(mbuf.tailroom()) < AEAD_TAG_LEN {
            return Err(Refused::NoRoom);
        }
        data
    } else {
        data.checked_sub(AEAD_TAG_LEN as u32)
            .ok_or(Refused::TooShort)?
    };
    Ok(Pending {
        mbuf: NonNull::new(mbuf.as_ptr()).expect("an Mbuf is never null"),
        session: Arc::as_ptr(&session.inner),
        seal,
        len,
        iv: *iv,
    })
}

/// The symmetric part of `op`, which follows it.
///
/// # Safety
/// `op` is a valid symmetric op.
#[inline]
unsafe fn sym_op(op: *mut sys::rte_crypto_op) -> *mut sys::rte_crypto_sym_op {
    op.cast::<u8>()
        .add(size_of::<sys::rte_crypto_op>())
        .cast::<sys::rte_crypto_sym_op>()
}

/// Fills a fresh op for `p`, marked as `slot` of batch `seq`. A seal gets its tag
/// room appended here.
///
/// # Safety
/// `op` is a reset op from the device's op pool; `p`'s mbuf and session are alive and
/// used by nothing else until the op is back; push checked the lengths and the room.
#[inline]
unsafe fn prepare(op: *mut sys::rte_crypto_op, p: &Pending, seq: u64, slot: u32) {
    let base = op.cast::<u8>();
    ptr::copy_nonoverlapping(p.iv.as_ptr(), base.add(IV_OFFSET), AEAD_IV_LEN);
    base.add(MARK_OFFSET).cast::<u64>().write_unaligned(seq);
    base.add(MARK_OFFSET + 8)
        .cast::<u32>()
        .write_unaligned(slot);

    let m = p.mbuf.as_ptr();
    if p.seal {
        let tag = sys::rte_pktmbuf_append(m, AEAD_TAG_LEN as u16);
        assert!(!tag.is_null(), "tailroom is checked when pushed");
    }
    let digest = (*m)
        .buf_addr
        .cast::<u8>()
        .add(usize::from((*m).data_off) + p.len as usize);

    (*op).__bindgen_anon_1.__bindgen_anon_1.sess_type = sys::RTE_CRYPTO_OP_WITH_SESSION as u8;
    let sym = &mut *sym_op(op);
    sym.m_src = m;
    sym.m_dst = ptr::null_mut();
    sym.__bindgen_anon_1.session = (*p.session).raw.as_ptr();
    let aead = &mut sym.__bindgen_anon_2.aead;
    aead.data.offset = 0;
    aead.data.length = p.len;
    aead.digest.data = digest;
    aead.digest.phys_addr = sys::rte_mbuf_data_iova(m) + u64::from(p.len);
    // No AAD; the pointer still names valid memory (the IV) for drivers that look.
    aead.aad.data = base.add(IV_OFFSET);
    aead.aad.phys_addr = (*op).phys_addr + IV_OFFSET as u64;
}

/// The batch and slot `prepare` marked `op` with.
///
/// # Safety
/// `op` went through `prepare`.
#[inline]
unsafe fn read_mark(op: *mut sys::rte_crypto_op) -> (u64, u32) {
    let base = op.cast::<u8>();
    (
        base.add(MARK_OFFSET).cast::<u64>().read_unaligned(),
        base.add(MARK_OFFSET + 8).cast::<u32>().read_unaligned(),
    )
}

/// Whether a returned op succeeded; trims the tag off a successful open.
///
/// # Safety
/// `op` is back from the device and its mbuf is borrowed by the running batch.
#[inline]
unsafe fn finish(op: *mut sys::rte_crypto_op, seal: bool) -> bool {
    let status = (*op).__bindgen_anon_1.__bindgen_anon_1.status;
    let ok = status == sys::RTE_CRYPTO_OP_STATUS_SUCCESS as u8;
    if ok && !seal {
        let trimmed = sys::rte_pktmbuf_trim((*sym_op(op)).m_src, AEAD_TAG_LEN as u16);
        debug_assert_eq!(trimmed, 0, "an open's data ends with the tag");
    }
    ok
}
