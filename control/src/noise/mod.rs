//! The WireGuard handshake: `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` as the whitepaper
//! (section 5.4) and wireguard-go (`device/noise-protocol.go`, `device/cookie.go`) do it,
//! byte for byte, so that wgdp handshakes with any WireGuard implementation.
//!
//! Contract:
//! - Sans-IO. Every call takes what it needs as arguments: the message bytes, `now` (a
//!   monotonic [`Duration`] since an arbitrary epoch, for the flood limit, cookie ages
//!   and session creation times), a wall-clock [`Tai64N`] for the initiation timestamp,
//!   and a `RngCore + CryptoRng` for ephemeral keys, cookie secrets and nonces. Nothing here reads a clock, draws randomness of its own, does I/O or
//!   keeps global state, so tests drive two engines against each other on a simulated
//!   clock with a seeded RNG.
//! - Messages go out as fixed-size byte arrays laid out by the views of
//!   [`dataplane::wire::wireguard`]; messages come in as byte slices, checked for exact
//!   (type, length) before anything else.
//! - Every refusal is a [`HandshakeError`] variant, whose [`name`](HandshakeError::name)
//!   the control thread counts drops under. A refused message leaves the handshake state
//!   as it was.
//! - Index allocation, peer lookup (by static key for initiations, by receiver index for
//!   responses and cookie replies), the decision to be "under load", timers and
//!   retransmission belong to the caller.
//! - Secret keys, chaining keys and session keys are wiped when dropped, and `Debug`
//!   never prints them.
//!
//! Receiving, in the order wireguard-go's `RoutineHandshake` uses:
//! 1. [`Identity::verify_mac1`] on initiations and responses.
//! 2. Under load: [`CookieChecker::verify_mac2`]; on failure send
//!    [`CookieChecker::create_reply`] and stop.
//! 3. Initiation: [`Identity::consume_initiation`], look the peer up by
//!    [`InitiationInfo::initiator_static`], [`PeerHandshake::accept_initiation`],
//!    [`PeerHandshake::create_response`]. Response: [`PeerHandshake::consume_response`].
//!    Cookie reply: [`PeerHandshake::consume_cookie_reply`].

mod cookie;
mod handshake;
mod pattern;
mod primitives;
mod tai64n;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

pub use cookie::CookieChecker;
pub use handshake::{
    Answer, AnswerJob, Completion, HandshakePhase, Identity, InitiationInfo, InitiationJob,
    PeerHandshake, ResponseJob, Session,
};
pub use primitives::{dh, DhKey, KEY_LEN};
pub use tai64n::Tai64N;

/// The Noise protocol name, hashed into the initial chaining key (whitepaper 5.4).
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue (whitepaper 5.4).
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Prefix of the mac1 key `HASH(LABEL_MAC1 || S_pub)` (whitepaper 5.4.4).
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Prefix of the cookie-reply key `HASH(LABEL_COOKIE || S_pub)` (whitepaper 5.4.7).
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// How long a cookie secret, and a cookie received, stays usable: whitepaper 5.4.7 and 6.1
/// ("every two minutes"), wireguard-go `CookieRefreshTime` (`device/constants.go`).
pub const COOKIE_REFRESH_TIME: Duration = Duration::from_secs(120);

/// At most one initiation per peer is accepted within this interval: wireguard-go
/// `HandshakeInitationRate = time.Second / 50` (`device/constants.go`), checked in
/// `ConsumeMessageInitiation` as `time.Since(lastInitiationConsumption) <= rate`.
pub const HANDSHAKE_INITIATION_RATE: Duration = Duration::from_millis(20);

/// Why a handshake message was refused or could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeError {
    /// Not a message of the expected type and exact length.
    Malformed,
    /// mac1 does not match: the message was not meant for our public key, or was damaged.
    BadMac1,
    /// mac2 is missing or does not match while we are under load: answer with a cookie
    /// reply.
    BadMac2,
    /// A Diffie-Hellman result was all zeros: a low-order public key.
    BadPublicKey,
    /// The initiation's static key did not open: sealed for another public key.
    DecryptStatic,
    /// The initiator's static key belongs to none of our peers (the caller's lookup, or a
    /// [`PeerHandshake`] handed an initiation from another peer).
    UnknownPeer,
    /// The initiation's timestamp did not open: the initiator does not hold the private
    /// key of the static key it sent.
    DecryptTimestamp,
    /// The response did not authenticate: a different preshared key, or not from the
    /// peer we initiated with.
    DecryptResponse,
    /// The cookie reply did not open: not an answer to the last message we sent.
    DecryptCookie,
    /// The initiation's timestamp is not newer than one already accepted from this peer:
    /// a replay.
    StaleTimestamp,
    /// A second initiation from this peer within [`HANDSHAKE_INITIATION_RATE`].
    RateLimited,
    /// The message does not fit the handshake's state: a response with no initiation
    /// pending, a response owed with no initiation accepted, a cookie reply before we
    /// sent anything.
    WrongState,
    /// The receiver index is not that of the message in progress.
    WrongIndex,
}

impl HandshakeError {
    /// Every variant, for a counter table indexed by reason.
    pub const ALL: [HandshakeError; 13] = [
        HandshakeError::Malformed,
        HandshakeError::BadMac1,
        HandshakeError::BadMac2,
        HandshakeError::BadPublicKey,
        HandshakeError::DecryptStatic,
        HandshakeError::UnknownPeer,
        HandshakeError::DecryptTimestamp,
        HandshakeError::DecryptResponse,
        HandshakeError::DecryptCookie,
        HandshakeError::StaleTimestamp,
        HandshakeError::RateLimited,
        HandshakeError::WrongState,
        HandshakeError::WrongIndex,
    ];

    /// A stable snake_case name, for counters and logs.
    pub const fn name(self) -> &'static str {
        match self {
            HandshakeError::Malformed => "malformed",
            HandshakeError::BadMac1 => "bad_mac1",
            HandshakeError::BadMac2 => "bad_mac2",
            HandshakeError::BadPublicKey => "bad_public_key",
            HandshakeError::DecryptStatic => "decrypt_static",
            HandshakeError::UnknownPeer => "unknown_peer",
            HandshakeError::DecryptTimestamp => "decrypt_timestamp",
            HandshakeError::DecryptResponse => "decrypt_response",
            HandshakeError::DecryptCookie => "decrypt_cookie",
            HandshakeError::StaleTimestamp => "stale_timestamp",
            HandshakeError::RateLimited => "rate_limited",
            HandshakeError::WrongState => "wrong_state",
            HandshakeError::WrongIndex => "wrong_index",
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            HandshakeError::Malformed => "not a handshake message of the expected type and length",
            HandshakeError::BadMac1 => "mac1 does not match our public key",
            HandshakeError::BadMac2 => "mac2 missing or invalid while under load",
            HandshakeError::BadPublicKey => "low-order public key (all-zero shared secret)",
            HandshakeError::DecryptStatic => "initiator static key does not decrypt with our key",
            HandshakeError::UnknownPeer => "initiator static key is not a configured peer",
            HandshakeError::DecryptTimestamp => {
                "initiation timestamp does not decrypt: initiator not authenticated"
            }
            HandshakeError::DecryptResponse => {
                "response does not authenticate (preshared key mismatch?)"
            }
            HandshakeError::DecryptCookie => "cookie reply does not decrypt",
            HandshakeError::StaleTimestamp => {
                "initiation timestamp not newer than the last (replay)"
            }
            HandshakeError::RateLimited => "initiations from this peer arrive too fast",
            HandshakeError::WrongState => "message does not fit the handshake state",
            HandshakeError::WrongIndex => "receiver index is not the one in progress",
        };
        f.write_str(text)
    }
}

impl std::error::Error for HandshakeError {}
