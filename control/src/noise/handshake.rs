//! The WireGuard handshake state machine (whitepaper 5.4.2 and 5.4.3, wireguard-go
//! `device/noise-protocol.go`): our [`Identity`], one [`PeerHandshake`] per peer, and the
//! [`Session`] keys a completed handshake yields.
//!
//! States of a [`PeerHandshake`]:
//!
//! ```text
//!            create_initiation                 consume_response
//!   Idle ----------------------> InitiationSent ----------------> Idle + Session (initiator)
//!    |                                |
//!    | accept_initiation              | accept_initiation (the peer initiated too:
//!    v                                v   its initiation wins, ours is forgotten)
//!   InitiationConsumed --create_response--> Idle + Session (responder)
//! ```
//!
//! A failed step leaves the state as it was, so a forged or damaged message cannot cancel
//! a handshake in progress. `create_initiation` from any state starts afresh.
//!
//! Receiving is also offered in parts, so that the Diffie-Hellman work can run on other
//! threads while the caller keeps the state (docs/architecture.md, "Handshakes on
//! several threads"): a *job* is made from the message and a peer's fixed keys by a
//! cheap call that checks nothing stateful ([`Identity::initiation_job`],
//! [`PeerHandshake::answer_job`], [`PeerHandshake::response_job`]), its `run` is pure
//! (inputs to result, no shared mutable state, any thread), and a *finish* call on the
//! peer's handshake applies the result with every stateful check (replay, flood limit,
//! the handshake still in the state the job was made from): [`PeerHandshake::finish_answer`],
//! [`PeerHandshake::finish_response`]. The one-call methods are these parts in a row.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use dataplane::wire::wireguard::{
    Initiation, Response, INITIATION_LEN, RESPONSE_LEN, TAG_LEN, TIMESTAMP_LEN,
};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::cookie::{self, CookieGenerator};
use super::pattern::SymmetricState;
use super::primitives::{dh, DhKey, SecretKey, KEY_LEN};
use super::{HandshakeError, Tai64N, HANDSHAKE_INITIATION_RATE, IDENTIFIER};

/// Our static key pair and the keys derived from our public key. Secrets are wiped on
/// drop and never printed.
pub struct Identity {
    /// The private key, ready for X25519 (shared with the jobs that need it).
    private: Arc<DhKey>,
    public: PublicKey,
    /// `HASH(LABEL_MAC1 || S_pub)`: checks mac1 on messages sent to us.
    mac1_key: [u8; KEY_LEN],
    /// `HASH(LABEL_COOKIE || S_pub)`: seals the cookie replies we send.
    cookie_key: [u8; KEY_LEN],
}

impl Identity {
    pub fn new(private: StaticSecret) -> Self {
        let public = PublicKey::from(&private);
        Identity {
            private: Arc::new(DhKey::new(&private)),
            public,
            mac1_key: cookie::mac1_key(&public),
            cookie_key: cookie::cookie_key(&public),
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(super) fn cookie_key(&self) -> &[u8; KEY_LEN] {
        &self.cookie_key
    }

    /// Checks mac1 of an initiation or response sent to us. Cheap (one keyed BLAKE2s), so
    /// it comes before any other work on a message.
    pub fn verify_mac1(&self, msg: &[u8]) -> Result<(), HandshakeError> {
        cookie::verify_mac1(&self.mac1_key, msg)
    }

    /// First half of receiving an initiation: checks mac1 and opens the initiator's
    /// static key (`e, es, s`), which tells the caller which [`PeerHandshake`] to hand
    /// the result to ([`PeerHandshake::accept_initiation`]).
    ///
    /// The static key is only a claim at this point: anyone can seal any key to our
    /// public key. It is authenticated by the second half, which needs the peer's
    /// precomputed `DH(S_priv, S_pub_peer)`. mac2 is the caller's business
    /// ([`CookieChecker`](super::CookieChecker)), before this call.
    pub fn consume_initiation(&self, msg: &[u8]) -> Result<InitiationInfo, HandshakeError> {
        self.initiation_job(msg)?.run()
    }

    /// [`Self::consume_initiation`] in parts: checks the message's type, length and
    /// mac1 here, and returns the rest (`e, es, s`: one X25519) as a job to run on any
    /// thread.
    pub fn initiation_job(&self, msg: &[u8]) -> Result<InitiationJob, HandshakeError> {
        let view = Initiation::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        self.verify_mac1(msg)?;
        Ok(InitiationJob {
            private: self.private.clone(),
            public: self.public,
            ephemeral: PublicKey::from(view.ephemeral()),
            sealed_static: view.encrypted_static(),
            sender_index: view.sender(),
            sealed_timestamp: view.encrypted_timestamp(),
        })
    }
}

/// The opening of an initiation's static key (`e, es, s`), made by
/// [`Identity::initiation_job`]: pure, for any thread.
pub struct InitiationJob {
    private: Arc<DhKey>,
    public: PublicKey,
    ephemeral: PublicKey,
    sealed_static: [u8; super::pattern::SEALED_STATIC_LEN],
    sender_index: u32,
    sealed_timestamp: [u8; TIMESTAMP_LEN + TAG_LEN],
}

impl InitiationJob {
    pub fn run(self) -> Result<InitiationInfo, HandshakeError> {
        let mut symmetric = SymmetricState::with_responder_static(IDENTIFIER, &self.public);
        let initiator_static = symmetric.read_initiation_static(
            &self.private,
            &self.ephemeral,
            &self.sealed_static,
        )?;
        Ok(InitiationInfo {
            initiator_static,
            sender_index: self.sender_index,
            ephemeral: self.ephemeral,
            sealed_timestamp: self.sealed_timestamp,
            symmetric,
        })
    }
}

impl fmt::Debug for InitiationJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiationJob")
            .field("sender_index", &self.sender_index)
            .finish_non_exhaustive()
    }
}

/// The rest of receiving an initiation and the crypto of answering it, made by
/// [`PeerHandshake::answer_job`]: `ss` and the timestamp, then `<- e, ee, se, psk`
/// with the ephemeral key the caller drew. Pure, for any thread; its result is applied
/// by [`PeerHandshake::finish_answer`].
pub struct AnswerJob {
    info: InitiationInfo,
    static_static: SecretKey,
    psk: SecretKey,
    /// The newest timestamp accepted from the peer when the job was made: an older
    /// one is refused before the response's X25519 work (the finish checks again).
    latest_timestamp: Option<Tai64N>,
    ephemeral: DhKey,
}

impl AnswerJob {
    pub fn run(self) -> Result<Answer, HandshakeError> {
        let AnswerJob {
            info,
            static_static,
            psk,
            latest_timestamp,
            ephemeral,
        } = self;
        let InitiationInfo {
            initiator_static,
            sender_index,
            ephemeral: remote_ephemeral,
            sealed_timestamp,
            mut symmetric,
        } = info;
        let mut timestamp = [0u8; TIMESTAMP_LEN];
        symmetric.read_initiation_payload(&static_static, &sealed_timestamp, &mut timestamp)?;
        let timestamp = Tai64N::from_bytes(timestamp);
        if latest_timestamp.is_some_and(|latest| timestamp <= latest) {
            return Err(HandshakeError::StaleTimestamp);
        }
        let ephemeral_public = ephemeral.public_key();
        let mut sealed_nothing = [0u8; TAG_LEN];
        symmetric.write_response(
            (&ephemeral, &ephemeral_public),
            &remote_ephemeral,
            &initiator_static,
            &psk,
            &[],
            &mut sealed_nothing,
        )?;
        // The first split key is the initiator's sending key: here, our receiving key.
        let (recv_key, send_key) = symmetric.split();
        Ok(Answer {
            timestamp,
            remote_index: sender_index,
            ephemeral_public,
            sealed_nothing,
            send_key,
            recv_key,
        })
    }
}

impl fmt::Debug for AnswerJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnswerJob")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// An authenticated initiation and the keys of our response to it: the result of an
/// [`AnswerJob`].
pub struct Answer {
    timestamp: Tai64N,
    remote_index: u32,
    ephemeral_public: PublicKey,
    sealed_nothing: [u8; TAG_LEN],
    send_key: SecretKey,
    recv_key: SecretKey,
}

impl Answer {
    /// The initiation's timestamp.
    pub fn timestamp(&self) -> Tai64N {
        self.timestamp
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("timestamp", &self.timestamp)
            .field("remote_index", &self.remote_index)
            .finish_non_exhaustive()
    }
}

/// The completion of our handshake from the peer's response (`e, ee, se, psk`), made by
/// [`PeerHandshake::response_job`]: pure, for any thread; applied by
/// [`PeerHandshake::finish_response`].
pub struct ResponseJob {
    private: Arc<DhKey>,
    ephemeral: Arc<DhKey>,
    psk: SecretKey,
    symmetric: SymmetricState,
    local_index: u32,
    remote_index: u32,
    remote_ephemeral: PublicKey,
    sealed_nothing: [u8; TAG_LEN],
}

impl ResponseJob {
    pub fn run(self) -> Result<Completion, HandshakeError> {
        let mut symmetric = self.symmetric;
        symmetric.read_response(
            &self.ephemeral,
            &self.private,
            &self.psk,
            &self.remote_ephemeral,
            &self.sealed_nothing,
            &mut [],
        )?;
        let (send_key, recv_key) = symmetric.split();
        Ok(Completion {
            local_index: self.local_index,
            remote_index: self.remote_index,
            send_key,
            recv_key,
        })
    }
}

impl fmt::Debug for ResponseJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseJob")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .finish_non_exhaustive()
    }
}

/// The keys of a response that authenticated: the result of a [`ResponseJob`].
pub struct Completion {
    local_index: u32,
    remote_index: u32,
    send_key: SecretKey,
    recv_key: SecretKey,
}

impl Completion {
    /// The local index of the initiation it answers.
    pub fn local_index(&self) -> u32 {
        self.local_index
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &BASE64.encode(self.public.as_bytes()))
            .field("private", &"<redacted>")
            .finish()
    }
}

/// An initiation whose static key has been opened but not yet authenticated: the result
/// of [`Identity::consume_initiation`].
pub struct InitiationInfo {
    initiator_static: PublicKey,
    sender_index: u32,
    ephemeral: PublicKey,
    sealed_timestamp: [u8; TIMESTAMP_LEN + TAG_LEN],
    symmetric: SymmetricState,
}

impl InitiationInfo {
    /// The static public key the initiator claims: the key to look its peer up by.
    pub fn initiator_static(&self) -> &PublicKey {
        &self.initiator_static
    }

    /// The initiator's index, which our response and our transport messages will carry.
    pub fn sender_index(&self) -> u32 {
        self.sender_index
    }
}

impl fmt::Debug for InitiationInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitiationInfo")
            .field(
                "initiator_static",
                &BASE64.encode(self.initiator_static.as_bytes()),
            )
            .field("sender_index", &self.sender_index)
            .field("symmetric", &"<redacted>")
            .finish()
    }
}

/// Where a [`PeerHandshake`] stands, without its secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakePhase {
    Idle,
    /// We sent an initiation under `local_index` at `sent` and await the response.
    InitiationSent {
        local_index: u32,
        sent: Duration,
    },
    /// We accepted an initiation from the peer's `remote_index` and owe a response.
    InitiationConsumed {
        remote_index: u32,
    },
}

enum State {
    Idle,
    InitiationSent {
        local_index: u32,
        sent: Duration,
        /// Shared with the job that completes the handshake on another thread.
        ephemeral: Arc<DhKey>,
        symmetric: SymmetricState,
    },
    InitiationConsumed {
        remote_index: u32,
        remote_ephemeral: PublicKey,
        symmetric: SymmetricState,
    },
}

/// The handshake with one peer: its keys, the replay and flood protection of initiations
/// it sends us, the handshake in progress, and the cookie it gave us.
pub struct PeerHandshake {
    remote_static: PublicKey,
    /// The preshared key `Q`; all zeros when none is configured (whitepaper 5.4.3).
    psk: SecretKey,
    /// `DH(S_priv, S_pub_peer)`, the same for every handshake with this peer.
    static_static: SecretKey,
    cookies: CookieGenerator,
    /// The newest timestamp of an initiation accepted from the peer: only a strictly
    /// newer one is accepted, so a captured initiation cannot be replayed.
    latest_timestamp: Option<Tai64N>,
    /// When the last initiation from the peer was accepted, for the flood limit.
    last_initiation_accepted: Option<Duration>,
    state: State,
}

impl PeerHandshake {
    /// The handshake with the owner of `remote_static`, with an optional preshared key.
    /// Fails with [`HandshakeError::BadPublicKey`] for a low-order public key, with which
    /// no handshake could succeed.
    pub fn new(
        id: &Identity,
        remote_static: PublicKey,
        psk: Option<&[u8; KEY_LEN]>,
    ) -> Result<Self, HandshakeError> {
        let static_static =
            dh(&id.private, &remote_static).map_err(|_| HandshakeError::BadPublicKey)?;
        Ok(PeerHandshake {
            remote_static,
            psk: Zeroizing::new(psk.copied().unwrap_or([0; KEY_LEN])),
            static_static,
            cookies: CookieGenerator::new(&remote_static),
            latest_timestamp: None,
            last_initiation_accepted: None,
            state: State::Idle,
        })
    }

    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    pub fn phase(&self) -> HandshakePhase {
        match &self.state {
            State::Idle => HandshakePhase::Idle,
            State::InitiationSent {
                local_index, sent, ..
            } => HandshakePhase::InitiationSent {
                local_index: *local_index,
                sent: *sent,
            },
            State::InitiationConsumed { remote_index, .. } => HandshakePhase::InitiationConsumed {
                remote_index: *remote_index,
            },
        }
    }

    /// Replaces the preshared key. A handshake in progress is abandoned: its keys
    /// would not match the peer's.
    pub fn set_preshared_key(&mut self, psk: Option<&[u8; KEY_LEN]>) {
        *self.psk = psk.copied().unwrap_or([0; KEY_LEN]);
        self.state = State::Idle;
    }

    /// Follows a change of our static key: recomputes `DH(S_priv, S_pub_peer)` and
    /// abandons a handshake in progress.
    pub fn set_identity(&mut self, id: &Identity) -> Result<(), HandshakeError> {
        self.static_static =
            dh(&id.private, &self.remote_static).map_err(|_| HandshakeError::BadPublicKey)?;
        self.state = State::Idle;
        Ok(())
    }

    /// Builds an initiation (`-> e, es, s, ss`, timestamp `wall`) with mac1, and mac2 if
    /// the peer gave us a fresh cookie. `local_index` is the caller's fresh index for
    /// this handshake; a response must echo it. Any earlier handshake in progress is
    /// replaced.
    pub fn create_initiation(
        &mut self,
        id: &Identity,
        local_index: u32,
        wall: Tai64N,
        now: Duration,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<[u8; INITIATION_LEN], HandshakeError> {
        let mut symmetric = SymmetricState::with_responder_static(IDENTIFIER, &self.remote_static);
        let ephemeral = DhKey::random(&mut *rng);
        // A fixed-base scalar multiplication: made once for the hash and the message.
        let ephemeral_public = ephemeral.public_key();
        let mut sealed_timestamp = [0u8; TIMESTAMP_LEN + TAG_LEN];
        let sealed_static = symmetric.write_initiation(
            (&ephemeral, &ephemeral_public),
            &id.public,
            &self.remote_static,
            &self.static_static,
            &wall.to_bytes(),
            &mut sealed_timestamp,
        )?;

        let mut msg = [0u8; INITIATION_LEN];
        let mut view = Initiation::new_unchecked(&mut msg[..]);
        view.set_message_type();
        view.set_sender(local_index);
        view.set_ephemeral(ephemeral_public.as_bytes());
        view.set_encrypted_static(&sealed_static);
        view.set_encrypted_timestamp(&sealed_timestamp);
        self.cookies.add_macs(&mut msg, local_index, now);

        self.state = State::InitiationSent {
            local_index,
            sent: now,
            ephemeral: Arc::new(ephemeral),
            symmetric,
        };
        Ok(msg)
    }

    /// Second half of receiving an initiation (after [`Identity::consume_initiation`]):
    /// `ss` and the timestamp, which authenticate the initiator, then the replay and
    /// flood checks. On success we owe the peer a response ([`Self::create_response`])
    /// and the accepted timestamp is returned. An initiation of ours still awaiting its
    /// response is dropped, as wireguard-go does: the caller may free its index.
    ///
    /// Rejects a timestamp not strictly newer than the newest accepted from this peer
    /// ([`HandshakeError::StaleTimestamp`]) and an initiation within
    /// [`HANDSHAKE_INITIATION_RATE`] of the last accepted one
    /// ([`HandshakeError::RateLimited`]).
    pub fn accept_initiation(
        &mut self,
        info: InitiationInfo,
        now: Duration,
    ) -> Result<Tai64N, HandshakeError> {
        if info.initiator_static != self.remote_static {
            return Err(HandshakeError::UnknownPeer);
        }
        let InitiationInfo {
            sender_index,
            ephemeral,
            sealed_timestamp,
            mut symmetric,
            ..
        } = info;
        let mut timestamp = [0u8; TIMESTAMP_LEN];
        symmetric.read_initiation_payload(
            &self.static_static,
            &sealed_timestamp,
            &mut timestamp,
        )?;
        let timestamp = Tai64N::from_bytes(timestamp);
        self.check_initiation(timestamp, now)?;
        self.latest_timestamp = Some(timestamp);
        self.last_initiation_accepted = Some(now);
        self.state = State::InitiationConsumed {
            remote_index: sender_index,
            remote_ephemeral: ephemeral,
            symmetric,
        };
        Ok(timestamp)
    }

    /// The replay and flood checks of an initiation with `timestamp` received at `now`.
    fn check_initiation(&self, timestamp: Tai64N, now: Duration) -> Result<(), HandshakeError> {
        if self
            .latest_timestamp
            .is_some_and(|latest| timestamp <= latest)
        {
            return Err(HandshakeError::StaleTimestamp);
        }
        if self
            .last_initiation_accepted
            .is_some_and(|last| now.saturating_sub(last) <= HANDSHAKE_INITIATION_RATE)
        {
            return Err(HandshakeError::RateLimited);
        }
        Ok(())
    }

    /// [`Self::accept_initiation`] and [`Self::create_response`] in parts: the work of
    /// both for an initiation opened by [`Identity::consume_initiation`] (or an
    /// [`InitiationJob`]), with `ephemeral` the response's ephemeral key, as a job for
    /// any thread. Nothing here changes: [`Self::finish_answer`] applies the result.
    pub fn answer_job(
        &self,
        info: InitiationInfo,
        ephemeral: DhKey,
    ) -> Result<AnswerJob, HandshakeError> {
        if info.initiator_static != self.remote_static {
            return Err(HandshakeError::UnknownPeer);
        }
        Ok(AnswerJob {
            info,
            static_static: self.static_static.clone(),
            psk: self.psk.clone(),
            latest_timestamp: self.latest_timestamp,
            ephemeral,
        })
    }

    /// Applies an [`AnswerJob`]'s result received at `now`: the replay and flood
    /// checks of [`Self::accept_initiation`] against the state as it is now, then the
    /// response with `local_index`, mac1 and mac2 as [`Self::create_response`] makes
    /// it. An initiation of ours still awaiting its response is dropped. On failure
    /// nothing changes.
    pub fn finish_answer(
        &mut self,
        answer: Answer,
        local_index: u32,
        now: Duration,
    ) -> Result<([u8; RESPONSE_LEN], Session), HandshakeError> {
        self.check_initiation(answer.timestamp, now)?;
        self.latest_timestamp = Some(answer.timestamp);
        self.last_initiation_accepted = Some(now);
        self.state = State::Idle;
        let mut msg = [0u8; RESPONSE_LEN];
        let mut view = Response::new_unchecked(&mut msg[..]);
        view.set_message_type();
        view.set_sender(local_index);
        view.set_receiver(answer.remote_index);
        view.set_ephemeral(answer.ephemeral_public.as_bytes());
        view.set_encrypted_nothing(&answer.sealed_nothing);
        self.cookies.add_macs(&mut msg, local_index, now);
        let session = Session::new(
            local_index,
            answer.remote_index,
            &answer.send_key,
            &answer.recv_key,
            false,
            now,
        );
        Ok((msg, session))
    }

    /// Answers the accepted initiation (`<- e, ee, se, psk`) with mac1, and mac2 if we
    /// hold a fresh cookie from the peer, and derives the session. `local_index` is the
    /// caller's fresh index for the session.
    ///
    /// The responder must not send with the session until the initiator has proven it
    /// holds it too, by a first transport message (whitepaper 5.4.6, "key confirmation").
    pub fn create_response(
        &mut self,
        local_index: u32,
        now: Duration,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<([u8; RESPONSE_LEN], Session), HandshakeError> {
        let State::InitiationConsumed {
            remote_index,
            remote_ephemeral,
            symmetric,
        } = &self.state
        else {
            return Err(HandshakeError::WrongState);
        };
        let (remote_index, remote_ephemeral) = (*remote_index, *remote_ephemeral);
        let mut symmetric = symmetric.clone();
        // Whatever happens next, this initiation has been answered or cannot be.
        self.state = State::Idle;

        let ephemeral = DhKey::random(&mut *rng);
        let ephemeral_public = ephemeral.public_key();
        let mut sealed_nothing = [0u8; TAG_LEN];
        symmetric.write_response(
            (&ephemeral, &ephemeral_public),
            &remote_ephemeral,
            &self.remote_static,
            &self.psk,
            &[],
            &mut sealed_nothing,
        )?;

        let mut msg = [0u8; RESPONSE_LEN];
        let mut view = Response::new_unchecked(&mut msg[..]);
        view.set_message_type();
        view.set_sender(local_index);
        view.set_receiver(remote_index);
        view.set_ephemeral(ephemeral_public.as_bytes());
        view.set_encrypted_nothing(&sealed_nothing);
        self.cookies.add_macs(&mut msg, local_index, now);

        // The first split key is the initiator's sending key: here, our receiving key.
        let (recv_key, send_key) = symmetric.split();
        let session = Session::new(local_index, remote_index, &send_key, &recv_key, false, now);
        Ok((msg, session))
    }

    /// Receives the response to our initiation: checks mac1 and the receiver index,
    /// completes the key exchange, and derives the session. The caller found this peer
    /// by the response's receiver index.
    pub fn consume_response(
        &mut self,
        id: &Identity,
        msg: &[u8],
        now: Duration,
    ) -> Result<Session, HandshakeError> {
        let done = self.response_job(id, msg)?.run()?;
        self.finish_response(done, now)
    }

    /// [`Self::consume_response`] in parts: checks the message, mac1, the state and
    /// the receiver index here, and returns the key exchange (`e, ee, se, psk`: two
    /// X25519) as a job for any thread; [`Self::finish_response`] applies its result.
    pub fn response_job(&self, id: &Identity, msg: &[u8]) -> Result<ResponseJob, HandshakeError> {
        let view = Response::new_checked(msg).map_err(|_| HandshakeError::Malformed)?;
        id.verify_mac1(msg)?;
        let State::InitiationSent {
            local_index,
            ephemeral,
            symmetric,
            ..
        } = &self.state
        else {
            return Err(HandshakeError::WrongState);
        };
        if view.receiver() != *local_index {
            return Err(HandshakeError::WrongIndex);
        }
        Ok(ResponseJob {
            private: id.private.clone(),
            ephemeral: ephemeral.clone(),
            psk: self.psk.clone(),
            symmetric: symmetric.clone(),
            local_index: *local_index,
            remote_index: view.sender(),
            remote_ephemeral: PublicKey::from(view.ephemeral()),
            sealed_nothing: view.encrypted_nothing(),
        })
    }

    /// Applies a [`ResponseJob`]'s result at `now`, if our initiation is still the one
    /// the job was made for (else [`HandshakeError::WrongState`] or
    /// [`HandshakeError::WrongIndex`], and nothing changes): the session.
    pub fn finish_response(
        &mut self,
        done: Completion,
        now: Duration,
    ) -> Result<Session, HandshakeError> {
        let State::InitiationSent { local_index, .. } = &self.state else {
            return Err(HandshakeError::WrongState);
        };
        if done.local_index != *local_index {
            return Err(HandshakeError::WrongIndex);
        }
        let session = Session::new(
            done.local_index,
            done.remote_index,
            &done.send_key,
            &done.recv_key,
            true,
            now,
        );
        // The handshake is spent: a replayed response now finds no initiation.
        self.state = State::Idle;
        Ok(session)
    }

    /// Receives a cookie reply from the peer (found by the reply's receiver index) to
    /// the last message we sent it; our next messages carry mac2. Send nothing in
    /// response: the peer is under load, and the next initiation is due to the retry
    /// timer anyway.
    pub fn consume_cookie_reply(
        &mut self,
        msg: &[u8],
        now: Duration,
    ) -> Result<(), HandshakeError> {
        self.cookies.consume_reply(msg, now)
    }
}

impl fmt::Debug for PeerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerHandshake")
            .field(
                "remote_static",
                &BASE64.encode(self.remote_static.as_bytes()),
            )
            .field("psk", &"<redacted>")
            .field("phase", &self.phase())
            .field("latest_timestamp", &self.latest_timestamp)
            .field("last_initiation_accepted", &self.last_initiation_accepted)
            .field("cookie_received", &self.cookies.cookie_received())
            .finish()
    }
}

/// The transport keys of a completed handshake, for the data plane. Keys are wiped on
/// drop and never printed.
pub struct Session {
    /// Our index: transport messages to us carry it as receiver.
    pub local_index: u32,
    /// The peer's index: our transport messages carry it as receiver.
    pub remote_index: u32,
    pub send_key: [u8; KEY_LEN],
    pub recv_key: [u8; KEY_LEN],
    /// Whether we initiated. A responder's session is confirmed only by the first
    /// transport message it receives with it.
    pub initiator: bool,
    /// The `now` of the handshake's last step, for the rekey and reject timers.
    pub created: Duration,
}

impl Session {
    fn new(
        local_index: u32,
        remote_index: u32,
        send_key: &SecretKey,
        recv_key: &SecretKey,
        initiator: bool,
        created: Duration,
    ) -> Self {
        Session {
            local_index,
            remote_index,
            send_key: **send_key,
            recv_key: **recv_key,
            initiator,
            created,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.send_key.zeroize();
        self.recv_key.zeroize();
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("send_key", &"<redacted>")
            .field("recv_key", &"<redacted>")
            .field("initiator", &self.initiator)
            .field("created", &self.created)
            .finish()
    }
}
