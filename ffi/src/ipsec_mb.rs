//! ChaCha20-Poly1305 from the Intel IPsec-MB library, called in line by a worker.
//!
//! The library's job API is a queue of operations that its multi-buffer code works on
//! several at a time (up to 16 lanes with AVX-512), so a whole vector of packets is
//! pushed before any of it is asked back: [`MbManager::batch`] opens a batch, each
//! [`ChachaBatch::push`] submits one packet, and [`ChachaBatch::finish`] flushes the
//! queue and reports every job's result. The borrow of each packet's bytes lasts until
//! the batch ends, which is when the library has let go of every pointer it was given;
//! a batch dropped without `finish` flushes all the same.
//!
//! Nonces and computed tags live in the manager, one slot per job of the library's
//! queue (`IMB_MAX_JOBS`), so a job's inputs stay put while it is queued. Open compares
//! the computed tag with the received one in constant time.
//!
//! A manager belongs to one thread at a time (it is `Send`, not `Sync`); each worker has
//! its own, as each has its own queue pair of a crypto device.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The raw bindgen output for `ipsec_mb.h`.
#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]
#[allow(dead_code, clippy::all)]
pub mod raw {
    include!(concat!(env!("OUT_DIR"), "/ipsec_mb.rs"));
}

use raw::{IMB_ARCH, IMB_JOB, IMB_MGR};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Jobs the library's queue holds (`IMB_MAX_JOBS`).
const QUEUE: usize = raw::IMB_MAX_JOBS as usize;

/// Which way a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encrypt `len` bytes in place and write the tag right after them.
    Seal,
    /// Check the tag that follows `len` bytes of ciphertext, and decrypt them in place.
    Open,
}

/// A multi-buffer manager of the library, initialised for the best instruction set of
/// this CPU.
pub struct MbManager {
    mgr: NonNull<IMB_MGR>,
    arch: IMB_ARCH,
    nonces: Box<[[u8; NONCE_LEN]; QUEUE]>,
    tags: Box<[[u8; TAG_LEN]; QUEUE]>,
    /// (user value, ok) of the jobs of the current batch that are done.
    done: Vec<(u16, bool)>,
}

// SAFETY: the manager is plain memory that the library only touches when called with it;
// `&mut self` on every call keeps it to one thread at a time.
unsafe impl Send for MbManager {}

impl fmt::Debug for MbManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbManager")
            .field("arch", &self.arch_name())
            .finish()
    }
}

impl MbManager {
    /// A manager for this CPU; `None` if the library could not allocate one.
    pub fn new() -> Option<MbManager> {
        // SAFETY: alloc_mb_mgr returns an owned manager or NULL; init_mb_mgr_auto fills
        // in the function table for the best architecture and tells which it chose.
        let mgr = NonNull::new(unsafe { raw::alloc_mb_mgr(0) })?;
        let mut arch: IMB_ARCH = raw::IMB_ARCH_NONE;
        unsafe { raw::init_mb_mgr_auto(mgr.as_ptr(), &mut arch) };
        if arch == raw::IMB_ARCH_NONE {
            unsafe { raw::free_mb_mgr(mgr.as_ptr()) };
            return None;
        }
        Some(MbManager {
            mgr,
            arch,
            nonces: Box::new([[0; NONCE_LEN]; QUEUE]),
            tags: Box::new([[0; TAG_LEN]; QUEUE]),
            done: Vec::with_capacity(QUEUE),
        })
    }

    /// The code path the library chose: "avx512", "avx2", "avx", "sse" or "no-aesni".
    pub fn arch_name(&self) -> &'static str {
        match self.arch {
            raw::IMB_ARCH_AVX512 => "avx512",
            raw::IMB_ARCH_AVX2 => "avx2",
            raw::IMB_ARCH_AVX => "avx",
            raw::IMB_ARCH_SSE => "sse",
            raw::IMB_ARCH_NOAESNI => "no-aesni",
            _ => "none",
        }
    }

    /// Start a batch of operations in direction `dir`.
    pub fn batch<'a>(&mut self, dir: Direction) -> ChachaBatch<'_, 'a> {
        self.done.clear();
        ChachaBatch {
            m: self,
            dir,
            _data: PhantomData,
        }
    }

    fn mgr(&mut self) -> *mut IMB_MGR {
        self.mgr.as_ptr()
    }

    /// Record a job the library hands back.
    ///
    /// # Safety
    /// `job` is a job of this manager that the library has just returned.
    unsafe fn complete(&mut self, job: *const IMB_JOB, dir: Direction) {
        let job = &*job;
        let user = job.user_data as usize as u16;
        let mut ok = job.status == raw::IMB_STATUS_COMPLETED;
        if ok && dir == Direction::Open {
            let slot = job.user_data2 as usize;
            let len = job.__bindgen_anon_5.msg_len_to_hash_in_bytes as usize;
            // SAFETY: push checked that the packet holds `len` bytes and the tag.
            let received = std::slice::from_raw_parts(job.__bindgen_anon_1.src.add(len), TAG_LEN);
            ok = tags_equal(received, &self.tags[slot]);
        }
        self.done.push((user, ok));
    }
}

impl Drop for MbManager {
    fn drop(&mut self) {
        // SAFETY: no batch is open (a batch borrows the manager), so the library holds no
        // job; the manager came from alloc_mb_mgr.
        unsafe { raw::free_mb_mgr(self.mgr.as_ptr()) };
    }
}

/// Tags compared without an early exit, so that the time taken does not tell how many
/// leading bytes of a forged tag were right.
#[inline(never)]
fn tags_equal(a: &[u8], b: &[u8; TAG_LEN]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Operations submitted to a manager and not yet all reported; see the module docs.
pub struct ChachaBatch<'m, 'a> {
    m: &'m mut MbManager,
    dir: Direction,
    _data: PhantomData<&'a mut [u8]>,
}

impl<'a> ChachaBatch<'_, 'a> {
    /// Submit one operation: `buf` is the plaintext followed by 16 bytes for the tag
    /// (seal) or the ciphertext followed by its tag (open); the nonce is 32 zero bits and
    /// `counter` in little-endian (the WireGuard transport nonce). `user` comes back with
    /// the result. A `buf` shorter than a tag fails the job.
    pub fn push(&mut self, key: &'a [u8; KEY_LEN], counter: u64, buf: &'a mut [u8], user: u16) {
        let Some(len) = buf.len().checked_sub(TAG_LEN) else {
            self.m.done.push((user, false));
            return;
        };
        let seal = self.dir == Direction::Seal;
        let mgr = self.m.mgr();
        // SAFETY: the manager is initialised; get_next_job returns a free job of its
        // queue, which is filled in completely and submitted before the next call.
        // Every pointer given to it (key, buffer, nonce and tag slots) stays valid
        // until the batch ends: the key and buffer by the 'a borrows, the slots by
        // belonging to the manager, which the batch borrows.
        unsafe {
            let get_next = (*mgr).get_next_job.expect("initialised manager");
            let job = get_next(mgr);
            let slot = job.offset_from((*mgr).jobs.as_ptr()) as usize % QUEUE;
            let nonce = &mut self.m.nonces[slot];
            nonce[..4].fill(0);
            nonce[4..].copy_from_slice(&counter.to_le_bytes());
            let p = buf.as_mut_ptr();
            let j = &mut *job;
            j.cipher_mode = raw::IMB_CIPHER_CHACHA20_POLY1305;
            j.hash_alg = raw::IMB_AUTH_CHACHA20_POLY1305;
            if seal {
                j.cipher_direction = raw::IMB_DIR_ENCRYPT;
                j.chain_order = raw::IMB_ORDER_CIPHER_HASH;
                j.auth_tag_output = p.add(len);
            } else {
                j.cipher_direction = raw::IMB_DIR_DECRYPT;
                j.chain_order = raw::IMB_ORDER_HASH_CIPHER;
                j.auth_tag_output = self.m.tags[slot].as_mut_ptr();
            }
            j.auth_tag_output_len_in_bytes = TAG_LEN as u64;
            j.enc_keys = key.as_ptr().cast();
            j.dec_keys = key.as_ptr().cast();
            j.key_len_in_bytes = KEY_LEN as u64;
            j.__bindgen_anon_1.src = p;
            j.__bindgen_anon_2.dst = p;
            j.__bindgen_anon_3.cipher_start_src_offset_in_bytes = 0;
            j.__bindgen_anon_4.msg_len_to_cipher_in_bytes = len as u64;
            j.hash_start_src_offset_in_bytes = 0;
            j.__bindgen_anon_5.msg_len_to_hash_in_bytes = len as u64;
            j.iv = nonce.as_ptr();
            j.iv_len_in_bytes = NONCE_LEN as u64;
            // No associated data; the library wants a pointer all the same.
            j.u.CHACHA20_POLY1305.aad = nonce.as_ptr().cast();
            j.u.CHACHA20_POLY1305.aad_len_in_bytes = 0;
            j.user_data = user as usize as *mut _;
            j.user_data2 = slot as *mut _;
            let submit = (*mgr).submit_job.expect("initialised manager");
            let get_completed = (*mgr).get_completed_job.expect("initialised manager");
            let mut done = submit(mgr);
            while !done.is_null() {
                self.m.complete(done, self.dir);
                done = get_completed(mgr);
            }
        }
    }

    /// Finish every submitted job and call `f(user, ok)` for each.
    pub fn finish(mut self, mut f: impl FnMut(u16, bool)) {
        self.flush();
        for &(user, ok) in &self.m.done {
            f(user, ok);
        }
    }

    fn flush(&mut self) {
        let mgr = self.m.mgr();
        // SAFETY: the manager is initialised; flush_job returns queued jobs, finished,
        // until none is left.
        unsafe {
            let flush = (*mgr).flush_job.expect("initialised manager");
            loop {
                let job = flush(mgr);
                if job.is_null() {
                    break;
                }
                self.m.complete(job, self.dir);
            }
        }
    }
}

impl Drop for ChachaBatch<'_, '_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::ChaCha20Poly1305;

    fn nonce(counter: u64) -> chacha20poly1305::Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[4..].copy_from_slice(&counter.to_le_bytes());
        n.into()
    }

    fn run(
        m: &mut MbManager,
        dir: Direction,
        key: &[u8; 32],
        bufs: &mut [Vec<u8>],
        counter: impl Fn(usize) -> u64,
    ) -> Vec<bool> {
        let mut ok = vec![None; bufs.len()];
        let mut b = m.batch(dir);
        for (i, buf) in bufs.iter_mut().enumerate() {
            b.push(key, counter(i), buf, i as u16);
        }
        b.finish(|user, r| ok[user as usize] = Some(r));
        ok.into_iter()
            .map(|r| r.expect("every job reported"))
            .collect()
    }

    /// Sealed by the library, opened by an independent implementation (the
    /// `chacha20poly1305` crate), then sealed by it and opened by the library, with
    /// lengths from 0 to past a full MTU; a forged tag and a wrong counter are refused.
    #[test]
    fn agrees_with_reference_and_refuses_forgeries() {
        let mut m = MbManager::new().expect("manager");
        let key = [7u8; KEY_LEN];
        let reference = ChaCha20Poly1305::new(&key.into());
        let plain: Vec<Vec<u8>> = (0..60usize)
            .map(|i| (0..i * 37 % 1600).map(|b| (b * 7 + i) as u8).collect())
            .collect();
        let mut bufs: Vec<Vec<u8>> = plain
            .iter()
            .map(|p| [p.as_slice(), &[0; TAG_LEN]].concat())
            .collect();
        let ok = run(&mut m, Direction::Seal, &key, &mut bufs, |i| {
            1000 + i as u64
        });
        assert!(ok.iter().all(|&o| o));
        for (i, buf) in bufs.iter().enumerate() {
            let n = buf.len() - TAG_LEN;
            let mut data = buf[..n].to_vec();
            reference
                .decrypt_in_place_detached(&nonce(1000 + i as u64), &[], &mut data, buf[n..].into())
                .unwrap_or_else(|_| panic!("reference opens job {i}"));
            assert_eq!(data, plain[i]);
        }
        let mut bufs: Vec<Vec<u8>> = plain
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut data = p.clone();
                let tag = reference
                    .encrypt_in_place_detached(&nonce(i as u64), &[], &mut data)
                    .expect("seal");
                [data.as_slice(), tag.as_slice()].concat()
            })
            .collect();
        *bufs[3].last_mut().expect("a tag") ^= 1;
        let ok = run(&mut m, Direction::Open, &key, &mut bufs, |i| {
            if i == 5 {
                0
            } else {
                i as u64
            }
        });
        for (i, ok) in ok.into_iter().enumerate() {
            assert_eq!(ok, i != 3 && i != 5, "job {i}");
            if ok {
                assert_eq!(bufs[i][..plain[i].len()], plain[i][..], "job {i} decrypted");
            }
        }
    }

    #[test]
    fn short_buffer_fails_without_reaching_the_library() {
        let mut m = MbManager::new().expect("manager");
        let key = [1u8; KEY_LEN];
        let mut short = [0u8; TAG_LEN - 1];
        let mut b = m.batch(Direction::Open);
        b.push(&key, 0, &mut short, 9);
        let mut seen = Vec::new();
        b.finish(|user, ok| seen.push((user, ok)));
        assert_eq!(seen, [(9, false)]);
    }
}
