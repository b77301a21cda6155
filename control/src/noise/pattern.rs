//! The Noise IKpsk2 pattern over the whitepaper's primitives: the two handshake messages
//! as a chaining key and a transcript hash evolve through them.
//!
//! ```text
//! IKpsk2:
//!   <- s
//!   ...
//!   -> e, es, s, ss
//!   <- e, ee, se, psk
//! ```
//!
//! This is the Noise framework's handshake with the steps of whitepaper sections 5.4.2
//! and 5.4.3 (Noise rev. 34 sections 5.2, 7.5 and 9.2: in a psk handshake an `e` token
//! also mixes the ephemeral key into the chaining key). Prologue and payloads are
//! parameters, so that a published Noise test vector checks this code; WireGuard uses
//! the prologue [`IDENTIFIER`](super::IDENTIFIER), a TAI64N timestamp as the first
//! payload and an empty second payload. Each key is used for one AEAD operation only, so every nonce
//! counter is zero. Message layout (indexes, MACs) is the caller's.

use x25519_dalek::PublicKey;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::primitives::{
    aead_open, aead_seal, dh, hash, kdf1, kdf2, kdf3, DhKey, SecretKey, KEY_LEN, TAG_LEN,
};
use super::{HandshakeError, CONSTRUCTION};

/// Length of a public key as sent, and of the sealed static key of message 1.
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SEALED_STATIC_LEN: usize = PUBLIC_KEY_LEN + TAG_LEN;

/// The chaining key `C` and the transcript hash `H` of one handshake in progress.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SymmetricState {
    chaining_key: [u8; KEY_LEN],
    hash: [u8; KEY_LEN],
}

impl SymmetricState {
    /// The state both sides start from, before the responder's static key is known:
    /// `C := HASH(CONSTRUCTION)`, `H := HASH(C || prologue)`. (Noise hashes a protocol
    /// name longer than HASHLEN, and the construction name is 37 bytes.)
    pub fn initial(prologue: &[u8]) -> Self {
        let chaining_key = hash(&[CONSTRUCTION]);
        let hash = hash(&[&chaining_key, prologue]);
        SymmetricState { chaining_key, hash }
    }

    /// `<- s`: both sides mix the responder's static public key into `H` before
    /// message 1, so the initiation is bound to the responder it was meant for.
    pub fn with_responder_static(prologue: &[u8], responder_static: &PublicKey) -> Self {
        let mut state = Self::initial(prologue);
        state.mix_hash(responder_static.as_bytes());
        state
    }

    /// `H := HASH(H || data)`.
    fn mix_hash(&mut self, data: &[u8]) {
        self.hash = hash(&[&self.hash, data]);
    }

    /// `C := KDF1(C, input)`.
    fn mix_key(&mut self, input: &[u8]) {
        self.chaining_key = *kdf1(&self.chaining_key, input);
    }

    /// `(C, k) := KDF2(C, input)`, returning the AEAD key `k`.
    fn mix_key_for_aead(&mut self, input: &[u8]) -> SecretKey {
        let (chaining_key, key) = kdf2(&self.chaining_key, input);
        self.chaining_key = *chaining_key;
        key
    }

    /// `e` (either side, psk mode): `H := HASH(H || e)`, `C := KDF1(C, e)`.
    fn mix_ephemeral(&mut self, ephemeral: &PublicKey) {
        self.mix_hash(ephemeral.as_bytes());
        self.mix_key(ephemeral.as_bytes());
    }

    /// `psk`: `(C, τ, k) := KDF3(C, Q)`, `H := HASH(H || τ)`, returning `k`.
    fn mix_preshared_key(&mut self, psk: &[u8; KEY_LEN]) -> SecretKey {
        let (chaining_key, tau, key) = kdf3(&self.chaining_key, psk);
        self.chaining_key = *chaining_key;
        self.mix_hash(&tau[..]);
        key
    }

    /// `out := AEAD(k, 0, plaintext, H)`, `H := HASH(H || out)`.
    fn encrypt_and_hash(&mut self, key: &SecretKey, plaintext: &[u8], out: &mut [u8]) {
        aead_seal(key, 0, plaintext, &self.hash, out);
        self.mix_hash(out);
    }

    /// Opens `ciphertext` with `H` as associated data into `out`, then
    /// `H := HASH(H || ciphertext)`.
    fn decrypt_and_hash(
        &mut self,
        key: &SecretKey,
        ciphertext: &[u8],
        out: &mut [u8],
        error: HandshakeError,
    ) -> Result<(), HandshakeError> {
        aead_open(key, 0, ciphertext, &self.hash, out).map_err(|_| error)?;
        self.mix_hash(ciphertext);
        Ok(())
    }

    /// The transport keys after message 2: `(T_first, T_second) := KDF2(C, ε)`. The
    /// first is the initiator's sending key, the second the responder's.
    pub fn split(&self) -> (SecretKey, SecretKey) {
        kdf2(&self.chaining_key, &[])
    }

    /// The transcript hash `H`, as Noise's `GetHandshakeHash`.
    #[cfg(test)]
    pub fn handshake_hash(&self) -> [u8; KEY_LEN] {
        self.hash
    }

    /// Message 1, initiator side: `-> e, es, s, ss` then the payload. Returns the sealed
    /// static key; `sealed_payload` receives the sealed payload
    /// (`payload.len() + TAG_LEN` bytes). The caller has sent `e`'s public key first.
    pub fn write_initiation(
        &mut self,
        (ephemeral, ephemeral_public): (&DhKey, &PublicKey),
        own_static: &PublicKey,
        responder_static: &PublicKey,
        static_static: &SecretKey,
        payload: &[u8],
        sealed_payload: &mut [u8],
    ) -> Result<[u8; SEALED_STATIC_LEN], HandshakeError> {
        // e: the ephemeral public key goes out in the clear.
        self.mix_ephemeral(ephemeral_public);
        // es: (C, k) := KDF2(C, DH(E_priv, S_pub_responder)).
        let shared = dh(ephemeral, responder_static).map_err(|_| HandshakeError::BadPublicKey)?;
        let key = self.mix_key_for_aead(&shared[..]);
        // s: msg.static := AEAD(k, 0, S_pub_initiator, H).
        let mut sealed_static = [0u8; SEALED_STATIC_LEN];
        self.encrypt_and_hash(&key, own_static.as_bytes(), &mut sealed_static);
        // ss: (C, k) := KDF2(C, DH(S_priv_initiator, S_pub_responder)), precomputed.
        let key = self.mix_key_for_aead(&static_static[..]);
        // payload: msg.timestamp := AEAD(k, 0, TAI64N, H).
        self.encrypt_and_hash(&key, payload, sealed_payload);
        Ok(sealed_static)
    }

    /// Message 1, responder side, up to the initiator's static key: `e, es, s`. The key
    /// returned is only a claim until [`Self::read_initiation_payload`] succeeds.
    pub fn read_initiation_static(
        &mut self,
        own_private: &DhKey,
        ephemeral: &PublicKey,
        sealed_static: &[u8; SEALED_STATIC_LEN],
    ) -> Result<PublicKey, HandshakeError> {
        self.mix_ephemeral(ephemeral);
        let shared = dh(own_private, ephemeral).map_err(|_| HandshakeError::BadPublicKey)?;
        let key = self.mix_key_for_aead(&shared[..]);
        let mut initiator_static = [0u8; PUBLIC_KEY_LEN];
        self.decrypt_and_hash(
            &key,
            sealed_static,
            &mut initiator_static,
            HandshakeError::DecryptStatic,
        )?;
        Ok(PublicKey::from(initiator_static))
    }

    /// Message 1, responder side, the rest: `ss` then the payload, whose successful
    /// opening proves the initiator holds the private half of its static key.
    pub fn read_initiation_payload(
        &mut self,
        static_static: &SecretKey,
        sealed_payload: &[u8],
        payload: &mut [u8],
    ) -> Result<(), HandshakeError> {
        let key = self.mix_key_for_aead(&static_static[..]);
        self.decrypt_and_hash(
            &key,
            sealed_payload,
            payload,
            HandshakeError::DecryptTimestamp,
        )
    }

    /// Message 2, responder side: `<- e, ee, se, psk` then the payload into
    /// `sealed_payload` (`payload.len() + TAG_LEN` bytes). The caller sends `e`'s public
    /// key first.
    pub fn write_response(
        &mut self,
        (ephemeral, ephemeral_public): (&DhKey, &PublicKey),
        initiator_ephemeral: &PublicKey,
        initiator_static: &PublicKey,
        psk: &[u8; KEY_LEN],
        payload: &[u8],
        sealed_payload: &mut [u8],
    ) -> Result<(), HandshakeError> {
        self.mix_ephemeral(ephemeral_public);
        // ee: C := KDF1(C, DH(E_priv_responder, E_pub_initiator)).
        let shared =
            dh(ephemeral, initiator_ephemeral).map_err(|_| HandshakeError::BadPublicKey)?;
        self.mix_key(&shared[..]);
        // se: C := KDF1(C, DH(E_priv_responder, S_pub_initiator)).
        let shared = dh(ephemeral, initiator_static).map_err(|_| HandshakeError::BadPublicKey)?;
        self.mix_key(&shared[..]);
        // psk: (C, τ, k) := KDF3(C, Q); H := HASH(H || τ).
        let key = self.mix_preshared_key(psk);
        // payload: msg.empty := AEAD(k, 0, ε, H).
        self.encrypt_and_hash(&key, payload, sealed_payload);
        Ok(())
    }

    /// Message 2, initiator side: `e, ee, se, psk` then the payload, whose opening
    /// authenticates the responder and the whole transcript.
    pub fn read_response(
        &mut self,
        ephemeral: &DhKey,
        own_private: &DhKey,
        psk: &[u8; KEY_LEN],
        responder_ephemeral: &PublicKey,
        sealed_payload: &[u8],
        payload: &mut [u8],
    ) -> Result<(), HandshakeError> {
        self.mix_ephemeral(responder_ephemeral);
        let shared =
            dh(ephemeral, responder_ephemeral).map_err(|_| HandshakeError::BadPublicKey)?;
        self.mix_key(&shared[..]);
        let shared =
            dh(own_private, responder_ephemeral).map_err(|_| HandshakeError::BadPublicKey)?;
        self.mix_key(&shared[..]);
        let key = self.mix_preshared_key(psk);
        self.decrypt_and_hash(
            &key,
            sealed_payload,
            payload,
            HandshakeError::DecryptResponse,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::primitives::aead_open;
    use super::*;
    use x25519_dalek::StaticSecret;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn key(s: &str) -> [u8; 32] {
        hex(s).try_into().unwrap()
    }

    #[test]
    fn initial_state_matches_published_constants() {
        // C_i = HASH(CONSTRUCTION) and H_i = HASH(C_i || IDENTIFIER), as hard-coded in
        // wireguard-rs `src/wireguard/handshake/noise.rs` (INITIAL_CK, INITIAL_HS) and,
        // in decimal, boringtun `boringtun/src/noise/handshake.rs` (INITIAL_CHAIN_KEY,
        // INITIAL_CHAIN_HASH).
        let state = SymmetricState::initial(super::super::IDENTIFIER);
        assert_eq!(
            state.chaining_key,
            key("60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36")
        );
        assert_eq!(
            state.hash,
            key("2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3")
        );
    }

    /// The `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` vector of the cacophony test suite, as
    /// shipped in snow's `tests/vectors/cacophony.txt`: both handshake messages, the
    /// handshake hash, and the first transport messages under the split keys.
    #[test]
    fn cacophony_ikpsk2_vector() {
        let prologue = hex("4a6f686e2047616c74");
        let psk = key("54686973206973206d7920417573747269616e20706572737065637469766521");
        let init_static = StaticSecret::from(key(
            "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
        ));
        let init_ephemeral = StaticSecret::from(key(
            "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
        ));
        let resp_static = StaticSecret::from(key(
            "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
        ));
        let resp_ephemeral = StaticSecret::from(key(
            "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
        ));
        let resp_public = PublicKey::from(&resp_static);
        assert_eq!(
            resp_public.to_bytes(),
            key("31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62"),
            "init_remote_static of the vector"
        );
        let init_public = PublicKey::from(&init_static);
        let static_static = dh(&DhKey::new(&init_static), &resp_public).unwrap();

        // Message 1: e (32) || sealed s (48) || sealed payload.
        let payload1 = hex("4c756477696720766f6e204d69736573");
        let expected1 = hex(
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8\
             e2ad57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000\
             980c84831215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f",
        );
        let mut initiator = SymmetricState::with_responder_static(&prologue, &resp_public);
        let mut sealed_payload1 = vec![0u8; payload1.len() + TAG_LEN];
        let sealed_static = initiator
            .write_initiation(
                (
                    &DhKey::new(&init_ephemeral),
                    &PublicKey::from(&init_ephemeral),
                ),
                &init_public,
                &resp_public,
                &static_static,
                &payload1,
                &mut sealed_payload1,
            )
            .unwrap();
        let message1 = [
            PublicKey::from(&init_ephemeral).as_bytes().as_slice(),
            &sealed_static,
            &sealed_payload1,
        ]
        .concat();
        assert_eq!(message1, expected1);

        let mut responder = SymmetricState::with_responder_static(&prologue, &resp_public);
        let claimed = responder
            .read_initiation_static(
                &DhKey::new(&resp_static),
                &PublicKey::from(<[u8; 32]>::try_from(&message1[..32]).unwrap()),
                message1[32..80].try_into().unwrap(),
            )
            .unwrap();
        assert_eq!(claimed, init_public);
        let responder_static_static = dh(&DhKey::new(&resp_static), &claimed).unwrap();
        let mut opened1 = vec![0u8; payload1.len()];
        responder
            .read_initiation_payload(&responder_static_static, &message1[80..], &mut opened1)
            .unwrap();
        assert_eq!(opened1, payload1);

        // Message 2: e (32) || sealed payload.
        let payload2 = hex("4d757272617920526f746862617264");
        let expected2 = hex(
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b\
             8f007572dab0322217755c0632f365717edbf34d33e87a",
        );
        let mut sealed_payload2 = vec![0u8; payload2.len() + TAG_LEN];
        let init_ephemeral_public = PublicKey::from(&init_ephemeral);
        responder
            .write_response(
                (
                    &DhKey::new(&resp_ephemeral),
                    &PublicKey::from(&resp_ephemeral),
                ),
                &init_ephemeral_public,
                &claimed,
                &psk,
                &payload2,
                &mut sealed_payload2,
            )
            .unwrap();
        let message2 = [
            PublicKey::from(&resp_ephemeral).as_bytes().as_slice(),
            &sealed_payload2,
        ]
        .concat();
        assert_eq!(message2, expected2);

        let mut opened2 = vec![0u8; payload2.len()];
        initiator
            .read_response(
                &DhKey::new(&init_ephemeral),
                &DhKey::new(&init_static),
                &psk,
                &PublicKey::from(<[u8; 32]>::try_from(&message2[..32]).unwrap()),
                &message2[32..],
                &mut opened2,
            )
            .unwrap();
        assert_eq!(opened2, payload2);

        let handshake_hash =
            key("f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5");
        assert_eq!(initiator.handshake_hash(), handshake_hash);
        assert_eq!(responder.handshake_hash(), handshake_hash);

        // Transport: the initiator sends with the first split key, the responder with the
        // second, each counting nonces from zero.
        let (initiator_send, responder_send) = initiator.split();
        assert_eq!(
            responder.split(),
            (initiator_send.clone(), responder_send.clone())
        );
        let transport = [
            (
                &initiator_send,
                0,
                "462e20412e20486179656b",
                "8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7",
            ),
            (
                &responder_send,
                0,
                "4361726c204d656e676572",
                "07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef",
            ),
            (
                &initiator_send,
                1,
                "4a65616e2d426170746973746520536179",
                "6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d",
            ),
            (
                &responder_send,
                1,
                "457567656e2042f6686d20766f6e2042617765726b",
                "dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292",
            ),
        ];
        for (key, counter, payload, ciphertext) in transport {
            let (payload, ciphertext) = (hex(payload), hex(ciphertext));
            let mut opened = vec![0u8; payload.len()];
            aead_open(key, counter, &ciphertext, &[], &mut opened).unwrap();
            assert_eq!(opened, payload);
        }
    }
}
