//! The cryptographic functions of the handshake, named as in the whitepaper (section 5.4,
//! "Protocol & Cryptography"): DH, HASH, MAC, HMAC, KDF1/2/3, AEAD and XAEAD.
//!
//! Outputs that are key material come back in [`Zeroizing`] buffers, so they are wiped
//! wherever the caller drops them. MAC outputs are compared in constant time.

use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, X25519};
use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hmac::SimpleHmac;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Output length of HASH and HMAC (BLAKE2s-256), and length of every symmetric key.
pub const KEY_LEN: usize = 32;
/// Output length of MAC (keyed BLAKE2s-128).
pub const MAC_LEN: usize = 16;
/// Length of the Poly1305 tag appended by AEAD and XAEAD.
pub const TAG_LEN: usize = 16;
/// Length of the XChaCha20-Poly1305 nonce.
pub const XNONCE_LEN: usize = 24;

/// A 32-byte secret that is wiped on drop.
pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

/// An AEAD open failed: wrong key, wrong associated data, or tampered ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// A Diffie-Hellman result was all zeros: the peer's public key is of low order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowOrderPoint;

/// An X25519 private key made ready for key agreement: aws-lc's X25519, which takes
/// about half the time of x25519-dalek's on the machines of docs/benchmarks.md
/// ("Handshakes per second on one core"). Made once for a key used more than once.
pub struct DhKey(PrivateKey);

impl DhKey {
    pub fn new(secret: &StaticSecret) -> DhKey {
        // Any 32 bytes are an X25519 private key (RFC 7748 5: the scalar is clamped
        // when used), so the import cannot fail.
        DhKey(
            PrivateKey::from_private_key(&X25519, secret.as_bytes())
                .expect("32 bytes are an X25519 private key"),
        )
    }

    /// A fresh key from `rng` (an ephemeral key of the handshake).
    pub fn random(rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng)) -> DhKey {
        DhKey::new(&StaticSecret::random_from_rng(rng))
    }

    /// The public key: X25519 of the base point.
    pub fn public_key(&self) -> PublicKey {
        let public = self
            .0
            .compute_public_key()
            .expect("an X25519 private key has a public key");
        let bytes: [u8; KEY_LEN] = public
            .as_ref()
            .try_into()
            .expect("an X25519 public key is 32 bytes");
        PublicKey::from(bytes)
    }
}

/// DH(private, public): X25519. An all-zero result is refused, as wireguard-go does
/// (`sharedSecret` in `device/noise-helpers.go` returns `errInvalidPublicKey`): such a
/// key agreement would let a man in the middle fix the shared secret. aws-lc refuses it
/// itself (RFC 7748 6.1 allows the check).
pub fn dh(private: &DhKey, public: &PublicKey) -> Result<SecretKey, LowOrderPoint> {
    let peer = UnparsedPublicKey::new(&X25519, public.as_bytes());
    agree(&private.0, peer, LowOrderPoint, |shared| {
        let shared: &[u8; KEY_LEN] = shared.try_into().map_err(|_| LowOrderPoint)?;
        Ok(Zeroizing::new(*shared))
    })
}

/// HASH(input): BLAKE2s-256 of the concatenated parts.
pub fn hash(parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut hasher = Blake2s256::new();
    for part in parts {
        Digest::update(&mut hasher, part);
    }
    hasher.finalize().into()
}

/// Keyed BLAKE2s with a 16-byte output over the concatenated parts.
fn keyed_blake2s(key: &[u8], parts: &[&[u8]]) -> Blake2sMac<U16> {
    // Every key used here is 16 or 32 bytes, within BLAKE2s's limit of 32.
    let mut mac =
        <Blake2sMac<U16> as KeyInit>::new_from_slice(key).expect("MAC keys are at most 32 bytes");
    for part in parts {
        Mac::update(&mut mac, part);
    }
    mac
}

/// MAC(key, input): keyed BLAKE2s-128 (not HMAC), used for mac1, mac2 and cookies.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    keyed_blake2s(key, parts).finalize_fixed().into()
}

/// Whether `expected` is MAC(key, input), compared in constant time.
pub fn mac_matches(key: &[u8], parts: &[&[u8]], expected: &[u8; MAC_LEN]) -> bool {
    keyed_blake2s(key, parts).verify_slice(expected).is_ok()
}

/// HMAC(key, input): HMAC (RFC 2104) over BLAKE2s-256.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> SecretKey {
    // `SimpleHmac` because BLAKE2s does not expose the block-level core `Hmac` needs.
    let mut mac = <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for part in parts {
        Update::update(&mut mac, part);
    }
    Zeroizing::new(mac.finalize_fixed().into())
}

/// KDF1(key, input): the first output of HKDF (RFC 5869) with HMAC-BLAKE2s, where `key`
/// is the salt (the chaining key) and `input` the input key material.
pub fn kdf1(key: &[u8], input: &[u8]) -> SecretKey {
    let prk = hmac(key, &[input]);
    hmac(&prk[..], &[&[1]])
}

/// KDF2(key, input): the first two HKDF outputs; τ2 = HMAC(τ0, τ1 || 0x2).
pub fn kdf2(key: &[u8], input: &[u8]) -> (SecretKey, SecretKey) {
    let prk = hmac(key, &[input]);
    let t1 = hmac(&prk[..], &[&[1]]);
    let t2 = hmac(&prk[..], &[&t1[..], &[2]]);
    (t1, t2)
}

/// KDF3(key, input): the first three HKDF outputs; τ3 = HMAC(τ0, τ2 || 0x3).
pub fn kdf3(key: &[u8], input: &[u8]) -> (SecretKey, SecretKey, SecretKey) {
    let prk = hmac(key, &[input]);
    let t1 = hmac(&prk[..], &[&[1]]);
    let t2 = hmac(&prk[..], &[&t1[..], &[2]]);
    let t3 = hmac(&prk[..], &[&t2[..], &[3]]);
    (t1, t2, t3)
}

/// The 96-bit ChaCha20-Poly1305 nonce of the whitepaper: 32 zero bits, then the 64-bit
/// counter little-endian.
fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce.into()
}

/// AEAD(key, counter, plaintext, ad): ChaCha20-Poly1305 (RFC 8439). `out` receives the
/// ciphertext then the tag, so it must be `plaintext.len() + TAG_LEN` bytes long.
pub fn aead_seal(key: &[u8; KEY_LEN], counter: u64, plaintext: &[u8], ad: &[u8], out: &mut [u8]) {
    let cipher = ChaCha20Poly1305::new(key.into());
    seal_with(&cipher, &nonce(counter), plaintext, ad, out);
}

/// Opens an [`aead_seal`] output (`ciphertext` = ciphertext || tag) into `out`, which must
/// be `TAG_LEN` bytes shorter. On failure `out` is left zeroed.
pub fn aead_open(
    key: &[u8; KEY_LEN],
    counter: u64,
    ciphertext: &[u8],
    ad: &[u8],
    out: &mut [u8],
) -> Result<(), OpenError> {
    let cipher = ChaCha20Poly1305::new(key.into());
    open_with(&cipher, &nonce(counter), ciphertext, ad, out)
}

/// XAEAD(key, nonce, plaintext, ad): XChaCha20-Poly1305 with a random 24-byte nonce, used
/// only for cookie replies. `out` is `plaintext.len() + TAG_LEN` bytes long.
pub fn xaead_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    plaintext: &[u8],
    ad: &[u8],
    out: &mut [u8],
) {
    let cipher = XChaCha20Poly1305::new(key.into());
    seal_with(&cipher, nonce.into(), plaintext, ad, out);
}

/// Opens an [`xaead_seal`] output into `out`, which must be `TAG_LEN` bytes shorter.
pub fn xaead_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; XNONCE_LEN],
    ciphertext: &[u8],
    ad: &[u8],
    out: &mut [u8],
) -> Result<(), OpenError> {
    let cipher = XChaCha20Poly1305::new(key.into());
    open_with(&cipher, nonce.into(), ciphertext, ad, out)
}

fn seal_with<A: AeadInPlace>(
    cipher: &A,
    nonce: &chacha20poly1305::aead::Nonce<A>,
    plaintext: &[u8],
    ad: &[u8],
    out: &mut [u8],
) {
    assert_eq!(out.len(), plaintext.len() + TAG_LEN, "AEAD output length");
    let (body, tag_out) = out.split_at_mut(plaintext.len());
    body.copy_from_slice(plaintext);
    // Sealing fails only for messages longer than ChaCha20's 256 GiB keystream.
    let tag = cipher
        .encrypt_in_place_detached(nonce, ad, body)
        .expect("handshake plaintexts are short");
    tag_out.copy_from_slice(&tag);
}

fn open_with<A: AeadInPlace>(
    cipher: &A,
    nonce: &chacha20poly1305::aead::Nonce<A>,
    ciphertext: &[u8],
    ad: &[u8],
    out: &mut [u8],
) -> Result<(), OpenError> {
    assert_eq!(ciphertext.len(), out.len() + TAG_LEN, "AEAD input length");
    let (body, tag) = ciphertext.split_at(out.len());
    out.copy_from_slice(body);
    cipher
        .decrypt_in_place_detached(nonce, ad, out, tag.into())
        .map_err(|_| {
            out.zeroize();
            OpenError
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hash_matches_rfc7693_abc() {
        // RFC 7693 appendix B: BLAKE2s-256("abc").
        assert_eq!(
            hash(&[b"abc"]).to_vec(),
            hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982")
        );
        assert_eq!(hash(&[b"a", b"", b"bc"]), hash(&[b"abc"]));
    }

    #[test]
    fn kdf_matches_wireguard_go() {
        // Vectors generated with wireguard-go's KDF1/2/3, published in the `hkdf` test of
        // wireguard-rs `src/wireguard/handshake/noise.rs`: (key, input, τ1, τ2, τ3).
        let vectors = [
            (
                "",
                "",
                "8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0",
                "58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e",
                "0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e",
            ),
            (
                "deadbeef",
                "",
                "55329dc80e690fd86bd9661f0851c9b3686df2b1fda0347bc3d27958254b32c6",
                "8dfc6d33a8118ffe408b31ddac25f72aee9115a45b69ba176ad012b243834fee",
                "d69e852a2896569ea54a67969aa1800287921dac53ce6db4b4e12192f263c4c4",
            ),
        ];
        for (key, input, t1, t2, t3) in vectors {
            let (key, input) = (hex(key), hex(input));
            assert_eq!(kdf1(&key, &input).to_vec(), hex(t1));
            let (a, b) = kdf2(&key, &input);
            assert_eq!((a.to_vec(), b.to_vec()), (hex(t1), hex(t2)));
            let (a, b, c) = kdf3(&key, &input);
            assert_eq!(
                (a.to_vec(), b.to_vec(), c.to_vec()),
                (hex(t1), hex(t2), hex(t3))
            );
        }
    }

    #[test]
    fn mac_is_keyed_blake2s_128() {
        // Keyed BLAKE2s with digest size 16 and key 00..1f over the empty input, computed
        // with Python's hashlib (the BLAKE2 reference code):
        // blake2s(b"", key=bytes(range(32)), digest_size=16).
        let key: Vec<u8> = (0..32).collect();
        let expected = hex("9536f9b267655743dee97b8a670f9f53");
        assert_eq!(mac(&key, &[]).to_vec(), expected);
        assert!(mac_matches(
            &key,
            &[],
            &expected.clone().try_into().unwrap()
        ));
        let mut wrong: [u8; MAC_LEN] = expected.try_into().unwrap();
        wrong[15] ^= 1;
        assert!(!mac_matches(&key, &[], &wrong));
    }

    #[test]
    fn aead_matches_rfc8439() {
        // RFC 8439 section 2.8.2. Its nonce is not of the whitepaper's shape, so the
        // vector goes through the cipher directly and the nonce layout is checked below.
        let key: [u8; 32] = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .try_into()
            .unwrap();
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you \
            only one tip for the future, sunscreen would be it.";
        let ad = hex("50515253c0c1c2c3c4c5c6c7");
        let rfc_nonce = hex("070000004041424344454647");
        let mut out = vec![0u8; plaintext.len() + TAG_LEN];
        let cipher = ChaCha20Poly1305::new((&key).into());
        seal_with(
            &cipher,
            rfc_nonce.as_slice().into(),
            plaintext,
            &ad,
            &mut out,
        );
        assert_eq!(out[..16].to_vec(), hex("d31a8d34648e60db7b86afbc53ef7ec2"));
        assert_eq!(
            out[plaintext.len()..].to_vec(),
            hex("1ae10b594f09e26a7e902ecbd0600691")
        );
    }

    #[test]
    fn nonce_is_zero_then_little_endian_counter() {
        assert_eq!(
            nonce(0x0807_0605_0403_0201).as_slice(),
            &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [7u8; 32];
        let mut sealed = [0u8; 12 + TAG_LEN];
        aead_seal(&key, 0, b"hello, world", b"ad", &mut sealed);
        let mut opened = [0u8; 12];
        aead_open(&key, 0, &sealed, b"ad", &mut opened).unwrap();
        assert_eq!(&opened, b"hello, world");

        assert_eq!(
            aead_open(&key, 1, &sealed, b"ad", &mut opened),
            Err(OpenError)
        );
        assert_eq!(opened, [0; 12], "a failed open leaves no plaintext behind");
        assert_eq!(
            aead_open(&key, 0, &sealed, b"da", &mut opened),
            Err(OpenError)
        );
        sealed[3] ^= 0x80;
        assert_eq!(
            aead_open(&key, 0, &sealed, b"ad", &mut opened),
            Err(OpenError)
        );
    }

    #[test]
    fn xaead_round_trip_and_tamper() {
        let key = [9u8; 32];
        let nonce = [3u8; XNONCE_LEN];
        let mut sealed = [0u8; 16 + TAG_LEN];
        xaead_seal(&key, &nonce, &[0x55; 16], b"mac1", &mut sealed);
        let mut opened = [0u8; 16];
        xaead_open(&key, &nonce, &sealed, b"mac1", &mut opened).unwrap();
        assert_eq!(opened, [0x55; 16]);
        let mut other_nonce = nonce;
        other_nonce[23] ^= 1;
        assert_eq!(
            xaead_open(&key, &other_nonce, &sealed, b"mac1", &mut opened),
            Err(OpenError)
        );
    }

    #[test]
    fn dh_refuses_low_order_points() {
        let private = StaticSecret::from([0x42; 32]);
        let key = DhKey::new(&private);
        // Points of small order on the curve and its twist, and their non-canonical
        // encodings (the list in libsodium's crypto_scalarmult/curve25519/ref10/
        // x25519_ref10.c, `has_small_order`): u = 0, 1, the two points of order 8, p - 1,
        // p and p + 1.
        let hex = |s: &str| -> [u8; 32] {
            let b: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            b.try_into().unwrap()
        };
        let small = [
            hex("0000000000000000000000000000000000000000000000000000000000000000"),
            hex("0100000000000000000000000000000000000000000000000000000000000000"),
            hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            hex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        ];
        for (i, u) in small.into_iter().enumerate() {
            let public = PublicKey::from(u);
            assert_eq!(dh(&key, &public), Err(LowOrderPoint), "point {i}");
            // x25519-dalek, the reference it replaced, agrees.
            assert!(
                !private.diffie_hellman(&public).was_contributory(),
                "point {i}"
            );
        }
        let other = StaticSecret::from([0x24; 32]);
        let a = dh(&key, &PublicKey::from(&other)).unwrap();
        let b = dh(&DhKey::new(&other), &PublicKey::from(&private)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn dh_is_x25519_as_x25519_dalek_computes_it() {
        // Keys whose bytes need clamping, and public keys with the top bit set (ignored,
        // RFC 7748 5).
        for seed in 0..64u8 {
            let private = StaticSecret::from([seed.wrapping_mul(37) | 0x87; 32]);
            let mut u = *PublicKey::from(&StaticSecret::from([seed ^ 0x5a; 32])).as_bytes();
            if seed % 2 == 1 {
                u[31] |= 0x80;
            }
            let public = PublicKey::from(u);
            let expected = private.diffie_hellman(&public).to_bytes();
            assert_eq!(
                *dh(&DhKey::new(&private), &public).unwrap(),
                expected,
                "seed {seed}"
            );
            // And the public key, for ephemeral keys.
            assert_eq!(DhKey::new(&private).public_key(), PublicKey::from(&private));
        }
    }
}
