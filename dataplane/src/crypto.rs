//! Transport-data AEAD (ChaCha20-Poly1305, whitepaper 5.4.6) and the batch interface the
//! decrypt and encrypt stages call.
//!
//! Contract: a stage prepares its whole vector first (each packet's data is exactly the
//! ciphertext+tag to open, or the padded plaintext to seal), then makes one batch call.
//! The software backend works in place on the worker with the `ring` crate, the fastest
//! in-line ChaCha20-Poly1305 measured on our machines (see DESIGN.md); a cryptodev backend
//! plugs in at the same two calls.
//!
//! Nonce: 32 zero bits followed by the 64-bit little-endian counter; no associated data.

use crate::buf::PacketBuf;
use crate::session::Keypair;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};
use std::mem::ManuallyDrop;
use std::sync::Arc;

pub const TAG_LEN: usize = 16;

/// One direction's key. The key schedule is wiped when dropped.
pub struct TransportKey {
    key: ManuallyDrop<LessSafeKey>,
}

#[inline]
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

impl TransportKey {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key");
        TransportKey {
            key: ManuallyDrop::new(LessSafeKey::new(unbound)),
        }
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
}

impl Drop for TransportKey {
    fn drop(&mut self) {
        // SAFETY: the key is dropped exactly once, here, and never used again; the bytes
        // it occupied are then overwritten so the expanded key does not linger in memory.
        unsafe {
            ManuallyDrop::drop(&mut self.key);
            let p = (&mut self.key as *mut ManuallyDrop<LessSafeKey>).cast::<u8>();
            for i in 0..std::mem::size_of::<ManuallyDrop<LessSafeKey>>() {
                std::ptr::write_volatile(p.add(i), 0);
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Software,
}

impl Backend {
    /// Open every job's packet in place (data = ciphertext + tag). On success the tag is
    /// trimmed off and `ok` is set.
    pub fn open_batch<B: PacketBuf>(
        &mut self,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        match self {
            Backend::Software => {
                for job in jobs.iter_mut() {
                    let pkt = &mut pkts[job.pkt as usize];
                    let key = keys[job.key as usize].recv_key();
                    job.ok = match key.open(job.counter, pkt.data_mut()) {
                        Some(_) => pkt.trim(TAG_LEN),
                        None => false,
                    };
                }
            }
        }
    }

    /// Seal every job's packet in place (data = padded plaintext) and append the tag.
    /// The caller made sure there is tailroom for it.
    pub fn seal_batch<B: PacketBuf>(
        &mut self,
        pkts: &mut [B],
        keys: &[Arc<Keypair>],
        jobs: &mut [CryptoJob],
    ) {
        match self {
            Backend::Software => {
                for job in jobs.iter_mut() {
                    let pkt = &mut pkts[job.pkt as usize];
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
            }
        }
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
