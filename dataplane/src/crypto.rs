//! Transport-data AEAD (ChaCha20-Poly1305, whitepaper 5.4.6) and the batch interface the
//! decrypt and encrypt stages call.
//!
//! Contract: a stage prepares its whole vector first (each packet's data is exactly the
//! ciphertext+tag to open, or the padded plaintext to seal), then makes one batch call.
//! Every job's `ok` is set: an opened packet has its tag trimmed off, a sealed one has
//! its tag appended (the caller made room); a failed job's data is undefined.
//!
//! Backends:
//! - [`Backend::Software`] works in place on the worker with the Intel IPsec-MB
//!   library's job API (`dpdk_sys::ipsec_mb`): the whole batch is queued before any of
//!   it is asked back, so the library's multi-buffer code seals or opens several packets
//!   at once. It is the fastest in-line ChaCha20-Poly1305 of the candidates measured
//!   side by side on one core (`aead_bound --compare`; docs/benchmarks.md, "Which AEAD
//!   in line"). [`Backend::Ring`] does the same one packet at a time with the `ring`
//!   crate: the reference the tests hold the others to, and what [`TransportKey::seal`]
//!   and [`TransportKey::open`] use for single packets.
//! - [`Backend::Cryptodev`] hands the vector to the worker's own queue pairs of a DPDK
//!   crypto device ([`DeviceQueue`]). The worker does not wait for it: the stages
//!   [`Backend::submit`] a vector in one poll and [`Backend::collect`] what the device
//!   has finished in the same or a later one, in submission order, one queue pair per
//!   direction so that each stage collects its own. A device queue that is full holds
//!   the work back (it is handed over by a later poll), and nothing is freed under the
//!   device (see `dpdk_sys::CryptoQueue`). [`Backend::open_batch`] and
//!   [`Backend::seal_batch`] also work on a device, waiting for it. Jobs the device
//!   cannot take (a buffer that is not a single mbuf, a key with no session on this
//!   device) go through the software path at once, with the same result.
//!
//! Keys: a [`TransportKey`] keeps its 32 bytes so that the first worker that needs it
//! on a device makes the device session (DPDK's copy of the key). The session is freed
//! and zeroed, and the bytes are overwritten, when the key is dropped with its keypair.
//!
//! Nonce: 32 zero bits followed by the 64-bit little-endian counter; no associated data.

use crate::buf::PacketBuf;
use crate::session::Keypair;
use dpdk_sys::ipsec_mb::{self, MbManager};
use dpdk_sys::{AeadDirection, AeadSession, CryptoDev, CryptoQueue, CryptoQueueStats};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::{Arc, OnceLock};

pub const TAG_LEN: usize = 16;
/// The in-line implementation of [`Backend::Software`] (`aead_bound` measures it as the
/// bound of the core).
pub const SOFTWARE_NAME: &str = "ipsec-mb";

/// One direction's key. The key schedule and the key bytes are wiped when dropped, and
/// a device session made from it is freed.
pub struct TransportKey {
    key: ManuallyDrop<LessSafeKey>,
    /// For making a device session on first use.
    raw: [u8; 32],
    /// The session on the crypto device that first asked for one.
    session: OnceLock<AeadSession>,
}

#[inline]
fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

#[inline]
fn nonce(counter: u64) -> Nonce {
    Nonce::assume_unique_for_key(nonce_bytes(counter))
}

impl TransportKey {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key");
        TransportKey {
            key: ManuallyDrop::new(LessSafeKey::new(unbound)),
            raw: *key,
            session: OnceLock::new(),
        }
    }

    /// The key itself, for an implementation that takes raw keys.
    #[inline]
    fn bytes(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Encrypt `in_out` in place and return the tag.
    #[inline]
    pub fn seal(&self, counter: u64, in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(nonce(counter), Aad::empty(), in_out)
            .expect("chacha20-poly1305 seal cannot fail below 256 GiB");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypt `in_out` (ciphertext followed by the tag) in place; the plaintext length
    /// on success.
    #[inline]
    pub fn open(&self, counter: u64, in_out: &mut [u8]) -> Option<usize> {
        self.key
            .open_in_place(nonce(counter), Aad::empty(), in_out)
            .ok()
            .map(|p| p.len())
    }

    /// This key's session on `dev` for `direction`, made on first use. `Ok(None)` if
    /// the key already has a session elsewhere (another device, or the other
    /// direction): a key is meant for one direction on one device.
    fn device_session(
        &self,
        dev: &Arc<CryptoDev>,
        direction: AeadDirection,
    ) -> Result<Option<&AeadSession>, dpdk_sys::Error> {
        let session = match self.session.get() {
            Some(s) => s,
            None => {
                let made = dev.session(direction, &self.raw)?;
                // Another worker may have been quicker: its session stays, ours is
                // freed right here.
                let _ = self.session.set(made);
                self.session.get().expect("set just above")
            }
        };
        Ok(
            (session.device_id() == dev.id() && session.direction() == direction)
                .then_some(session),
        )
    }
}

impl Drop for TransportKey {
    fn drop(&mut self) {
        // SAFETY: the key is dropped exactly once, here, and never used again; the bytes
        // it occupied are then overwritten so the expanded key does not linger in memory.
        // The raw key bytes are plain data, overwritten the same way.
        unsafe {
            ManuallyDrop::drop(&mut self.key);
            let p = (&mut self.key as *mut ManuallyDrop<LessSafeKey>).cast::<u8>();
            for i in 0..std::mem::size_of::<ManuallyDrop<LessSafeKey>>() {
                std::ptr::write_volatile(p.add(i), 0);
            }
            for b in self.raw.iter_mut() {
                std::ptr::write_volatile(b, 0);
            }
        }
    }
}

/// One AEAD operation of a batch: which packet, which keypair (index into the batch's
/// keypair list), which counter; `ok` is the result.
#[derive(Debug, Clone, Copy)]
pub struct CryptoJob {
    pub pkt: u16,
    pub key: u16,
    pub counter: u64,
    pub ok: bool,
}

/// Which implementation runs the batches.
#[derive(Debug)]
pub enum Backend {
    /// IPsec-MB in line, with the worker's own manager.
    Software(Box<Inline>),
    /// `ring` in line, a packet at a time.
    Ring,
    /// A queue pair of a crypto device, owned by one worker.
    Cryptodev(Box<DeviceQueue>),
}

impl Backend {
    /// The default in-line backend ([`SOFTWARE_NAME`]).
    pub fn software() -> Backend {
        // The library allocates a manager with malloc and falls back to plain x86-64 code
        // on a CPU without AES-NI or AVX, so this only fails when memory does.
        Backend::Software(Box::new(Inline {
            mb: MbManager::new().expect("cannot allocate an IPsec-MB manager"),
            job_of_pkt: Vec::new(),
        }))
    }

    /// The backend of the worker that uses queue pair `queue_pair` of `dev` for both
    /// directions; fails if the pair does not exist or another backend has it.
    pub fn cryptodev(dev: &Arc<CryptoDev>, queue_pair: u16) -> Result<Backend, dpdk_sys::Error> {
        Backend::cryptodev_pairs(dev, queue_pair, None)
    }

    /// The backend of worker `worker` on `dev` with a queue pair per direction:
    /// `2 * worker` for opening, `2 * worker + 1` for sealing.
    pub fn cryptodev_for_worker(
        dev: &Arc<CryptoDev>,
        worker: u16,
    ) -> Result<Backend, dpdk_sys::Error> {
        Backend::cryptodev_pairs(dev, 2 * worker, Some(2 * worker + 1))
    }

    fn cryptodev_pairs(
        dev: &Arc<CryptoDev>,
        queue_pair: u16,
        seal_pair: Option<u16>,
    ) -> Result<Backend, dpdk_sys::Error> {
        Ok(Backend::Cryptodev(Box::new(DeviceQueue {
            dev: Arc::clone(dev),
            queue: dev.queue(queue_pair)?,
            seal_queue: seal_pair.map(|q| dev.queue(q)).transpose()?,
            job_of_pkt: Vec::new(),
            pushed: Vec::new(),
            software: Vec::new(),
            no_session: Vec::new(),
            stats: DeviceStats::default(),
        })))
    }

    /// What runs the batches, for the log: "ipsec-mb (avx512)", "ring", "cryptodev".
    pub fn describe(&self) -> String {
        match self {
            Backend::Software(m) => format!("{SOFTWARE_NAME} ({})", m.mb.arch_name()),
            Backend::Ring => "ring".into(),
            Backend::Cryptodev(d) => format!("cryptodev {}", d.dev.name()),
        }
    }

    /// Whether the stages hand work over with [`Backend::submit`] and take it back with
    /// [`Backend::collect`] (a crypto device), rather than in one call.
    pub fn is_async(&self) -> bool {
        matches!(self, Backend::Cryptodev(_))
    }

    /// Hand every job's packet to the device without waiting; `pending[j]` tells whether
    /// job `j` went (it is reported later by [`Backend::collect`] as `first + job.pkt`;
    /// its packet must be left alone until then) or was done at once in software (`ok`
    /// is its result). A seal gets its tag room appended. On a backend that is not
    /// asynchronous, every job is done at once.
    pub fn submit<B: PacketBuf>(
        &mut self,
        dir: AeadDirection,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
        first: u64,
        pending: &mut Vec<bool>,
    ) {
        pending.clear();
        pending.resize(jobs.len(), false);
        match self {
            Backend::Cryptodev(d) => d.submit(dir, pkts, keys, jobs, first, pending),
            other => match dir {
                AeadDirection::Open => other.open_batch(pkts, keys, jobs),
                AeadDirection::Seal => other.seal_batch(pkts, keys, jobs),
            },
        }
    }

    /// Report the submitted jobs of direction `dir` that are done, in submission order,
    /// as `done(user, ok)` (an opened packet has its tag trimmed off when `ok`).
    pub fn collect(&mut self, dir: AeadDirection, done: impl FnMut(u64, bool)) {
        if let Backend::Cryptodev(d) = self {
            let q = d.queue_for_mut(dir);
            q.flush();
            q.collect(done);
        }
    }

    /// The counters of a cryptodev backend.
    pub fn device_stats(&self) -> Option<DeviceStats> {
        match self {
            Backend::Software(_) | Backend::Ring => None,
            Backend::Cryptodev(d) => Some(d.stats()),
        }
    }

    /// Open every job's packet in place (data = ciphertext + tag). On success the tag is
    /// trimmed off and `ok` is set. At most one job per packet.
    pub fn open_batch<B: PacketBuf>(
        &mut self,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        match self {
            Backend::Software(m) => {
                m.run(ipsec_mb::Direction::Open, pkts, keys, jobs);
                for job in jobs.iter_mut().filter(|j| j.ok) {
                    job.ok = pkts[job.pkt as usize].trim(TAG_LEN);
                }
            }
            Backend::Ring => {
                for job in jobs.iter_mut() {
                    open_one(&mut pkts[job.pkt as usize], keys, job);
                }
            }
            Backend::Cryptodev(d) => d.run(AeadDirection::Open, pkts, keys, jobs),
        }
    }

    /// Seal every job's packet in place (data = padded plaintext) and append the tag.
    /// The caller made sure there is tailroom for it. At most one job per packet.
    pub fn seal_batch<B: PacketBuf>(
        &mut self,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        match self {
            Backend::Software(m) => m.run(ipsec_mb::Direction::Seal, pkts, keys, jobs),
            Backend::Ring => {
                for job in jobs.iter_mut() {
                    seal_one(&mut pkts[job.pkt as usize], keys, job);
                }
            }
            Backend::Cryptodev(d) => d.run(AeadDirection::Seal, pkts, keys, jobs),
        }
    }
}

/// The in-line backend's state: the worker's IPsec-MB manager.
#[derive(Debug)]
pub struct Inline {
    mb: MbManager,
    /// The job of each packet of the vector, or `NO_JOB`.
    job_of_pkt: Vec<u16>,
}

impl Inline {
    /// One IPsec-MB batch over the jobs' packets, walking the vector so that each packet
    /// is borrowed once. A seal gets its tag's room appended first (no room: the job
    /// fails untouched); an open leaves the tag in place for the caller to trim.
    fn run<B: PacketBuf>(
        &mut self,
        dir: ipsec_mb::Direction,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        let seal = dir == ipsec_mb::Direction::Seal;
        mark_jobs(&mut self.job_of_pkt, pkts.len(), jobs);
        let mut batch = self.mb.batch(dir);
        for (pkt, &j) in pkts.iter_mut().zip(self.job_of_pkt.iter()) {
            if j == NO_JOB {
                continue;
            }
            let job = &jobs[j as usize];
            let kp = &keys[job.key as usize];
            let key = if seal { kp.send_key() } else { kp.recv_key() };
            if seal && pkt.append(TAG_LEN).is_none() {
                continue;
            }
            batch.push(key.bytes(), job.counter, pkt.data_mut(), j);
        }
        batch.finish(|j, ok| jobs[j as usize].ok = ok);
    }
}

/// Fill `job_of_pkt` with the job of each of `n` packets (`NO_JOB` for none) and clear
/// every job's `ok`.
fn mark_jobs(job_of_pkt: &mut Vec<u16>, n: usize, jobs: &mut [CryptoJob]) {
    job_of_pkt.clear();
    job_of_pkt.resize(n, NO_JOB);
    for (j, job) in jobs.iter_mut().enumerate() {
        debug_assert_eq!(job_of_pkt[job.pkt as usize], NO_JOB, "one job per packet");
        job.ok = false;
        job_of_pkt[job.pkt as usize] = j as u16;
    }
}

#[inline]
fn open_one<B: PacketBuf>(pkt: &mut B, keys: &[Arc<Keypair>], job: &mut CryptoJob) {
    let key = keys[job.key as usize].recv_key();
    job.ok = match key.open(job.counter, pkt.data_mut()) {
        Some(_) => pkt.trim(TAG_LEN),
        None => false,
    };
}

#[inline]
fn seal_one<B: PacketBuf>(pkt: &mut B, keys: &[Arc<Keypair>], job: &mut CryptoJob) {
    let key = keys[job.key as usize].send_key();
    let tag = key.seal(job.counter, pkt.data_mut());
    job.ok = match pkt.append(TAG_LEN) {
        Some(t) => {
            t.copy_from_slice(&tag);
            true
        }
        None => false,
    };
}

/// Counters of a cryptodev backend, totals since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Jobs handed to the device.
    pub device_jobs: u64,
    /// Jobs done in software: not a single mbuf, or the key had no session here.
    pub software_jobs: u64,
    /// Device sessions that could not be made (session pool full, device error); the
    /// key's jobs then run in software.
    pub session_errors: u64,
    /// The queue pair's own counters (failed operations, timeouts).
    pub queue: CryptoQueueStats,
}

/// Marks a packet without a job in `DeviceQueue::job_of_pkt`.
const NO_JOB: u16 = u16::MAX;

/// A worker's queue pairs of a crypto device and the arrays a batch reuses.
pub struct DeviceQueue {
    dev: Arc<CryptoDev>,
    /// For opening, and for sealing when there is no `seal_queue`.
    queue: CryptoQueue,
    seal_queue: Option<CryptoQueue>,
    /// The job of each packet of the vector, or `NO_JOB`.
    job_of_pkt: Vec<u16>,
    /// The job of each operation handed to the device, by slot.
    pushed: Vec<u16>,
    /// Jobs that run in software this call.
    software: Vec<u16>,
    /// Keys of this call that have no session on the device (asked once per call).
    no_session: Vec<bool>,
    stats: DeviceStats,
}

impl fmt::Debug for DeviceQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceQueue")
            .field("device", &self.dev.name())
            .field("queue_pair", &self.queue.queue_pair())
            .finish()
    }
}

impl DeviceQueue {
    pub fn stats(&self) -> DeviceStats {
        let mut queue = self.queue.stats();
        if let Some(q) = &self.seal_queue {
            let s = q.stats();
            queue.enqueued += s.enqueued;
            queue.failed += s.failed;
            queue.no_op += s.no_op;
            queue.timed_out += s.timed_out;
            queue.reaped += s.reaped;
        }
        DeviceStats {
            queue,
            ..self.stats
        }
    }

    fn queue_for_mut(&mut self, dir: AeadDirection) -> &mut CryptoQueue {
        match (dir, &mut self.seal_queue) {
            (AeadDirection::Seal, Some(q)) => q,
            _ => &mut self.queue,
        }
    }

    /// The device's part of [`Backend::submit`].
    fn submit<B: PacketBuf>(
        &mut self,
        direction: AeadDirection,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
        first: u64,
        pending: &mut [bool],
    ) {
        mark_jobs(&mut self.job_of_pkt, pkts.len(), jobs);
        self.no_session.clear();
        self.no_session.resize(keys.len(), false);
        self.software.clear();
        let mut taken = 0u64;
        for (pkt, &j) in pkts.iter_mut().zip(self.job_of_pkt.iter()) {
            if j == NO_JOB {
                continue;
            }
            let job = jobs[j as usize];
            let k = job.key as usize;
            let session = if self.no_session[k] {
                None
            } else {
                let key = match direction {
                    AeadDirection::Seal => keys[k].send_key(),
                    AeadDirection::Open => keys[k].recv_key(),
                };
                let session = key
                    .device_session(&self.dev, direction)
                    .unwrap_or_else(|_| {
                        self.stats.session_errors += 1;
                        None
                    });
                self.no_session[k] = session.is_none();
                session
            };
            let queue = match (direction, &mut self.seal_queue) {
                (AeadDirection::Seal, Some(q)) => q,
                _ => &mut self.queue,
            };
            let went = match (session, pkt.as_mbuf_mut()) {
                // SAFETY: the stage leaves the packet alone until `collect` reports it
                // (the contract of `Backend::submit`).
                (Some(s), Some(m)) => unsafe {
                    queue
                        .submit(s, m, &nonce_bytes(job.counter), first + u64::from(job.pkt))
                        .is_ok()
                },
                _ => false,
            };
            if went {
                pending[j as usize] = true;
                taken += 1;
            } else {
                self.software.push(j);
            }
        }
        for &j in self.software.iter() {
            let job = &mut jobs[j as usize];
            let pkt = &mut pkts[job.pkt as usize];
            match direction {
                AeadDirection::Seal => seal_one(pkt, keys, job),
                AeadDirection::Open => open_one(pkt, keys, job),
            }
        }
        self.stats.device_jobs += taken;
        self.stats.software_jobs += self.software.len() as u64;
        self.queue_for_mut(direction).flush();
    }

    /// The device's part of the batch contract, see [`Backend::open_batch`] and
    /// [`Backend::seal_batch`].
    fn run<B: PacketBuf>(
        &mut self,
        direction: AeadDirection,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        let DeviceQueue {
            dev,
            queue,
            seal_queue,
            job_of_pkt,
            pushed,
            software,
            no_session,
            stats,
        } = self;
        let queue = match (direction, seal_queue) {
            (AeadDirection::Seal, Some(q)) => q,
            _ => queue,
        };
        mark_jobs(job_of_pkt, pkts.len(), jobs);
        no_session.clear();
        no_session.resize(keys.len(), false);
        pushed.clear();
        software.clear();

        // Packets in vector order, so that each mbuf is borrowed once by the batch.
        let mut batch = queue.batch();
        for (pkt, &j) in pkts.iter_mut().zip(job_of_pkt.iter()) {
            if j == NO_JOB {
                continue;
            }
            let job = jobs[j as usize];
            let k = job.key as usize;
            let session = if no_session[k] {
                None
            } else {
                let key = match direction {
                    AeadDirection::Seal => keys[k].send_key(),
                    AeadDirection::Open => keys[k].recv_key(),
                };
                let session = key.device_session(dev, direction).unwrap_or_else(|_| {
                    stats.session_errors += 1;
                    None
                });
                no_session[k] = session.is_none();
                session
            };
            let on_device = match (session, pkt.as_mbuf_mut()) {
                (Some(s), Some(m)) => batch.push(s, m, &nonce_bytes(job.counter)).is_ok(),
                _ => false,
            };
            if on_device {
                pushed.push(j);
            } else {
                software.push(j);
            }
        }
        batch.run(|slot, ok| jobs[pushed[slot] as usize].ok = ok);

        for &j in software.iter() {
            let job = &mut jobs[j as usize];
            let pkt = &mut pkts[job.pkt as usize];
            match direction {
                AeadDirection::Seal => seal_one(pkt, keys, job),
                AeadDirection::Open => open_one(pkt, keys, job),
            }
        }
        stats.device_jobs += pushed.len() as u64;
        stats.software_jobs += software.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip() {
        let k = TransportKey::new(&[7; 32]);
        let mut buf = *b"sixteen byte msg";
        let tag = k.seal(42, &mut buf);
        assert_ne!(&buf, b"sixteen byte msg");
        let mut wire = buf.to_vec();
        wire.extend_from_slice(&tag);
        let mut bad = wire.clone();
        assert_eq!(k.open(42, &mut wire), Some(16));
        assert_eq!(&wire[..16], b"sixteen byte msg");
        // Wrong counter or flipped bit: refused.
        assert_eq!(k.open(43, &mut bad.clone()), None);
        bad[3] ^= 1;
        assert_eq!(k.open(42, &mut bad), None);
    }

    /// Same bytes as an independent implementation (the `chacha20poly1305` crate) with
    /// WireGuard's nonce layout, so the layout, not just the round trip, is checked.
    #[test]
    fn matches_reference_implementation() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        let key = [0x80u8; 32];
        let ours = TransportKey::new(&key);
        let theirs = chacha20poly1305::ChaCha20Poly1305::new((&key).into());
        let mut a = b"Ladies and Gentlemen of the class of '99".to_vec();
        let mut b = a.clone();
        let tag_a = ours.seal(0x0102_0304_0506_0708, &mut a);
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        let tag_b = theirs
            .encrypt_in_place_detached((&n).into(), &[], &mut b)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(&tag_a[..], tag_b.as_slice());
    }
}
