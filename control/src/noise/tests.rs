//! Two handshake engines against each other, on a simulated clock and a seeded RNG.

use std::time::Duration;

use dataplane::wire::wireguard::{
    CookieReply, Initiation, Response, COOKIE_REPLY_LEN, INITIATION_LEN, RESPONSE_LEN,
};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey, StaticSecret};

use super::cookie::mac1_key;
use super::primitives::{hash, mac};
use super::*;

/// A deterministic RNG: BLAKE2s of a counter. Good enough to make keys for tests, and
/// the `CryptoRng` marker lets it stand in for the real one.
struct TestRng(u64);

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            self.0 += 1;
            let block = hash(&[b"test rng", &self.0.to_le_bytes()]);
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

const SECOND: Duration = Duration::from_secs(1);
const SOURCE: &[u8] = &[192, 0, 2, 1, 0xca, 0x6c];

fn identity(seed: u8) -> Identity {
    Identity::new(StaticSecret::from([seed; 32]))
}

/// Wall-clock timestamps a second apart, starting at an arbitrary date.
fn wall(second: u64) -> Tai64N {
    Tai64N::from_unix(1_700_000_000 + second, 0)
}

/// Both sides of one peering: Alice initiates to Bob.
struct Pair {
    alice: Identity,
    bob: Identity,
    /// Alice's view of Bob.
    alice_to_bob: PeerHandshake,
    /// Bob's view of Alice.
    bob_to_alice: PeerHandshake,
    rng: TestRng,
}

impl Pair {
    fn new(alice_psk: Option<&[u8; 32]>, bob_psk: Option<&[u8; 32]>) -> Self {
        let (alice, bob) = (identity(0xa1), identity(0xb0));
        let alice_to_bob = PeerHandshake::new(&alice, *bob.public_key(), alice_psk).unwrap();
        let bob_to_alice = PeerHandshake::new(&bob, *alice.public_key(), bob_psk).unwrap();
        Pair {
            alice,
            bob,
            alice_to_bob,
            bob_to_alice,
            rng: TestRng(0),
        }
    }

    fn initiation(&mut self, index: u32, second: u64, now: Duration) -> [u8; INITIATION_LEN] {
        self.alice_to_bob
            .create_initiation(&self.alice, index, wall(second), now, &mut self.rng)
            .unwrap()
    }

    /// Bob receives an initiation, looking Alice up by the static key it carries.
    fn bob_accepts(&mut self, msg: &[u8], now: Duration) -> Result<Tai64N, HandshakeError> {
        let info = self.bob.consume_initiation(msg)?;
        if info.initiator_static() != self.bob_to_alice.remote_static() {
            return Err(HandshakeError::UnknownPeer);
        }
        self.bob_to_alice.accept_initiation(info, now)
    }

    fn response(&mut self, index: u32, now: Duration) -> ([u8; RESPONSE_LEN], Session) {
        self.bob_to_alice
            .create_response(index, now, &mut self.rng)
            .unwrap()
    }

    /// A full handshake; returns Alice's and Bob's sessions.
    fn handshake(&mut self, now: Duration) -> Result<(Session, Session), HandshakeError> {
        let initiation = self.initiation(7, now.as_secs(), now);
        self.bob_accepts(&initiation, now)?;
        let (response, bob_session) = self.response(0x8000_0001, now);
        let alice_session = self
            .alice_to_bob
            .consume_response(&self.alice, &response, now)?;
        Ok((alice_session, bob_session))
    }
}

fn assert_crossed(alice: &Session, bob: &Session) {
    assert_eq!(alice.send_key, bob.recv_key);
    assert_eq!(alice.recv_key, bob.send_key);
    assert_ne!(alice.send_key, alice.recv_key);
    assert_eq!(alice.local_index, bob.remote_index);
    assert_eq!(alice.remote_index, bob.local_index);
    assert!(alice.initiator);
    assert!(!bob.initiator);
}

#[test]
fn handshake_without_psk_gives_crossed_sessions() {
    let mut pair = Pair::new(None, None);
    let now = 10 * SECOND;
    let (alice, bob) = pair.handshake(now).unwrap();
    assert_crossed(&alice, &bob);
    assert_eq!((alice.local_index, alice.remote_index), (7, 0x8000_0001));
    assert_eq!((alice.created, bob.created), (now, now));
    assert_eq!(pair.alice_to_bob.phase(), HandshakePhase::Idle);
    assert_eq!(pair.bob_to_alice.phase(), HandshakePhase::Idle);
}

#[test]
fn handshake_with_psk_gives_crossed_sessions() {
    let psk = [0x5c; 32];
    let mut with_psk = Pair::new(Some(&psk), Some(&psk));
    let (alice, bob) = with_psk.handshake(SECOND).unwrap();
    assert_crossed(&alice, &bob);

    // Same keys and RNG without the psk: the psk changes the session keys.
    let mut without = Pair::new(None, None);
    let (plain, _) = without.handshake(SECOND).unwrap();
    assert_ne!(plain.send_key, alice.send_key);
}

#[test]
fn wrong_psk_fails_and_keeps_the_initiation_pending() {
    let mut pair = Pair::new(Some(&[1; 32]), Some(&[2; 32]));
    let initiation = pair.initiation(7, 1, SECOND);
    pair.bob_accepts(&initiation, SECOND).unwrap();
    let (response, _) = pair.response(9, SECOND);
    assert_eq!(
        pair.alice_to_bob
            .consume_response(&pair.alice, &response, SECOND)
            .unwrap_err(),
        HandshakeError::DecryptResponse
    );
    assert_eq!(
        pair.alice_to_bob.phase(),
        HandshakePhase::InitiationSent {
            local_index: 7,
            sent: SECOND
        }
    );

    // A psk on one side only fails the same way.
    let mut pair = Pair::new(Some(&[1; 32]), None);
    assert_eq!(
        pair.handshake(SECOND).unwrap_err(),
        HandshakeError::DecryptResponse
    );
}

#[test]
fn initiation_for_another_responder_is_rejected() {
    let mut pair = Pair::new(None, None);
    let carol = identity(0xc0);
    let mut alice_to_carol = PeerHandshake::new(&pair.alice, *carol.public_key(), None).unwrap();
    let mut msg = alice_to_carol
        .create_initiation(&pair.alice, 1, wall(1), SECOND, &mut pair.rng)
        .unwrap();
    // mac1 is keyed with Carol's public key.
    assert_eq!(
        pair.bob.consume_initiation(&msg).unwrap_err(),
        HandshakeError::BadMac1
    );
    // With a mac1 fit for Bob, the static key still does not open: it was sealed with
    // a DH against Carol's key.
    let mac1 = mac(&mac1_key(pair.bob.public_key()), &[&msg[..116]]);
    Initiation::new_unchecked(&mut msg[..]).set_mac1(&mac1);
    assert_eq!(
        pair.bob.consume_initiation(&msg).unwrap_err(),
        HandshakeError::DecryptStatic
    );
    assert!(carol.consume_initiation(&msg).is_err());
}

#[test]
fn initiation_from_an_unknown_peer_is_rejected() {
    let mut pair = Pair::new(None, None);
    let mallory = identity(0x66);
    let mut mallory_to_bob = PeerHandshake::new(&mallory, *pair.bob.public_key(), None).unwrap();
    let msg = mallory_to_bob
        .create_initiation(&mallory, 1, wall(1), SECOND, &mut pair.rng)
        .unwrap();
    let info = pair.bob.consume_initiation(&msg).unwrap();
    assert_eq!(info.initiator_static(), mallory.public_key());
    // Handing it to Alice's handshake anyway is refused.
    assert_eq!(
        pair.bob_to_alice
            .accept_initiation(info, SECOND)
            .unwrap_err(),
        HandshakeError::UnknownPeer
    );
}

#[test]
fn tampered_timestamp_does_not_authenticate() {
    let mut pair = Pair::new(None, None);
    let mut msg = pair.initiation(1, 1, SECOND);
    msg[100] ^= 1;
    let mac1 = mac(&mac1_key(pair.bob.public_key()), &[&msg[..116]]);
    Initiation::new_unchecked(&mut msg[..]).set_mac1(&mac1);
    assert_eq!(
        pair.bob_accepts(&msg, SECOND).unwrap_err(),
        HandshakeError::DecryptTimestamp
    );
    assert_eq!(pair.bob_to_alice.phase(), HandshakePhase::Idle);
}

#[test]
fn bad_mac1_is_rejected() {
    let mut pair = Pair::new(None, None);
    let good = pair.initiation(1, 1, SECOND);
    assert_eq!(pair.bob.verify_mac1(&good), Ok(()));
    for at in [0x08, 0x60, 116, 131] {
        let mut msg = good;
        msg[at] ^= 0x40;
        assert_eq!(
            pair.bob.verify_mac1(&msg),
            Err(HandshakeError::BadMac1),
            "byte {at}"
        );
        assert_eq!(
            pair.bob.consume_initiation(&msg).unwrap_err(),
            HandshakeError::BadMac1
        );
    }
    // mac2 is not covered by mac1.
    let mut msg = good;
    msg[140] ^= 1;
    assert_eq!(pair.bob.verify_mac1(&msg), Ok(()));

    // The same for a response.
    pair.bob_accepts(&good, SECOND).unwrap();
    let (mut response, _) = pair.response(2, SECOND);
    response[70] ^= 1;
    assert_eq!(
        pair.alice_to_bob
            .consume_response(&pair.alice, &response, SECOND)
            .unwrap_err(),
        HandshakeError::BadMac1
    );
}

#[test]
fn mac1_is_over_everything_before_it() {
    let mut pair = Pair::new(None, None);
    let msg = pair.initiation(1, 1, SECOND);
    let key = hash(&[b"mac1----", pair.bob.public_key().as_bytes()]);
    let view = Initiation::new_checked(&msg[..]).unwrap();
    assert_eq!(view.mac1(), mac(&key, &[&msg[..INITIATION_LEN - 32]]));
    assert_eq!(view.mac2(), [0; 16], "no cookie, no mac2");
    assert_eq!(view.sender(), 1);
    assert_eq!(&msg[..4], &[1, 0, 0, 0]);
}

#[test]
fn replayed_initiation_is_stale() {
    let mut pair = Pair::new(None, None);
    let msg = pair.initiation(1, 1, SECOND);
    assert_eq!(pair.bob_accepts(&msg, SECOND), Ok(wall(1)));
    pair.response(2, SECOND);
    // The same bytes again, long after the flood limit.
    assert_eq!(
        pair.bob_accepts(&msg, 10 * SECOND).unwrap_err(),
        HandshakeError::StaleTimestamp
    );
    // An older timestamp too.
    let older = pair.initiation(3, 0, 10 * SECOND);
    assert_eq!(
        pair.bob_accepts(&older, 10 * SECOND).unwrap_err(),
        HandshakeError::StaleTimestamp
    );
    // A newer one is fine.
    let newer = pair.initiation(4, 2, 10 * SECOND);
    assert_eq!(pair.bob_accepts(&newer, 10 * SECOND), Ok(wall(2)));
}

#[test]
fn initiation_flood_is_rate_limited() {
    let mut pair = Pair::new(None, None);
    let first = pair.initiation(1, 1, SECOND);
    pair.bob_accepts(&first, SECOND).unwrap();
    let second = pair.initiation(2, 2, SECOND);
    let too_soon = SECOND + HANDSHAKE_INITIATION_RATE;
    assert_eq!(
        pair.bob_accepts(&second, too_soon).unwrap_err(),
        HandshakeError::RateLimited
    );
    // Refused, so it still owes the response to the first one.
    assert_eq!(
        pair.bob_to_alice.phase(),
        HandshakePhase::InitiationConsumed { remote_index: 1 }
    );
    let later = too_soon + Duration::from_millis(1);
    assert_eq!(pair.bob_accepts(&second, later), Ok(wall(2)));
}

#[test]
fn response_to_an_older_initiation_has_the_wrong_index() {
    let mut pair = Pair::new(None, None);
    let first = pair.initiation(1, 1, SECOND);
    pair.bob_accepts(&first, SECOND).unwrap();
    let (response, _) = pair.response(5, SECOND);
    // Alice gave up on the first initiation and sent another before the response came.
    pair.initiation(2, 2, 2 * SECOND);
    assert_eq!(
        pair.alice_to_bob
            .consume_response(&pair.alice, &response, 2 * SECOND)
            .unwrap_err(),
        HandshakeError::WrongIndex
    );
}

#[test]
fn steps_out_of_order_are_wrong_state() {
    let mut pair = Pair::new(None, None);
    assert_eq!(
        pair.bob_to_alice
            .create_response(1, SECOND, &mut pair.rng)
            .unwrap_err(),
        HandshakeError::WrongState
    );

    let initiation = pair.initiation(1, 1, SECOND);
    pair.bob_accepts(&initiation, SECOND).unwrap();
    let (response, _) = pair.response(2, SECOND);
    // The response is owed once.
    assert_eq!(
        pair.bob_to_alice
            .create_response(3, SECOND, &mut pair.rng)
            .unwrap_err(),
        HandshakeError::WrongState
    );
    pair.alice_to_bob
        .consume_response(&pair.alice, &response, SECOND)
        .unwrap();
    // A replayed response finds no initiation.
    assert_eq!(
        pair.alice_to_bob
            .consume_response(&pair.alice, &response, SECOND)
            .unwrap_err(),
        HandshakeError::WrongState
    );
}

#[test]
fn wrong_type_or_length_is_malformed() {
    let mut pair = Pair::new(None, None);
    let initiation = pair.initiation(1, 1, SECOND);
    assert_eq!(
        pair.bob.consume_initiation(&initiation[..147]).unwrap_err(),
        HandshakeError::Malformed
    );
    let mut longer = [0u8; INITIATION_LEN + 1];
    longer[..INITIATION_LEN].copy_from_slice(&initiation);
    assert_eq!(
        pair.bob.consume_initiation(&longer).unwrap_err(),
        HandshakeError::Malformed
    );
    assert_eq!(
        pair.alice_to_bob
            .consume_response(&pair.alice, &initiation, SECOND)
            .unwrap_err(),
        HandshakeError::Malformed
    );
    assert_eq!(
        pair.alice_to_bob
            .consume_cookie_reply(&initiation[..COOKIE_REPLY_LEN], SECOND)
            .unwrap_err(),
        HandshakeError::Malformed
    );
}

#[test]
fn low_order_peer_key_is_refused() {
    let alice = identity(0xa1);
    assert_eq!(
        PeerHandshake::new(&alice, PublicKey::from([0; 32]), None).unwrap_err(),
        HandshakeError::BadPublicKey
    );
}

#[test]
fn cookie_reply_round_trip() {
    let mut pair = Pair::new(None, None);
    let mut checker = CookieChecker::new();
    let now = 50 * SECOND;

    // Bob is under load: the first initiation carries no mac2 and gets a cookie reply.
    let first = pair.initiation(11, 1, now);
    pair.bob.verify_mac1(&first).unwrap();
    assert_eq!(
        checker.verify_mac2(&first, SOURCE, now),
        Err(HandshakeError::BadMac2)
    );
    let reply = checker
        .create_reply(&pair.bob, &first, SOURCE, now, &mut pair.rng)
        .unwrap();
    assert_eq!(CookieReply::new_checked(&reply[..]).unwrap().receiver(), 11);

    pair.alice_to_bob.consume_cookie_reply(&reply, now).unwrap();

    // The next initiation carries a valid mac2, from Alice's address only.
    let second = pair.initiation(12, 2, now + SECOND);
    assert_ne!(
        Initiation::new_checked(&second[..]).unwrap().mac2(),
        [0; 16]
    );
    pair.bob.verify_mac1(&second).unwrap();
    assert_eq!(checker.verify_mac2(&second, SOURCE, now + SECOND), Ok(()));
    assert_eq!(
        checker.verify_mac2(&second, &[192, 0, 2, 2, 0xca, 0x6c], now + SECOND),
        Err(HandshakeError::BadMac2)
    );
    pair.bob_accepts(&second, now + SECOND).unwrap();

    // Past COOKIE_REFRESH_TIME Alice stops using the cookie, and Bob's secret expires.
    let late = now + COOKIE_REFRESH_TIME + SECOND;
    let third = pair.initiation(13, 3, late);
    assert_eq!(Initiation::new_checked(&third[..]).unwrap().mac2(), [0; 16]);
    assert_eq!(
        checker.verify_mac2(&second, SOURCE, late),
        Err(HandshakeError::BadMac2)
    );
}

#[test]
fn responder_adds_mac2_after_a_cookie_reply_to_its_response() {
    let mut pair = Pair::new(None, None);
    let mut alice_checker = CookieChecker::new();
    let initiation = pair.initiation(1, 1, SECOND);
    pair.bob_accepts(&initiation, SECOND).unwrap();
    let (response, _) = pair.response(21, SECOND);
    // Alice is under load and answers Bob's response with a cookie.
    let reply = alice_checker
        .create_reply(&pair.alice, &response, SOURCE, SECOND, &mut pair.rng)
        .unwrap();
    pair.bob_to_alice
        .consume_cookie_reply(&reply, SECOND)
        .unwrap();

    let again = pair.initiation(2, 2, 2 * SECOND);
    pair.bob_accepts(&again, 2 * SECOND).unwrap();
    let (response, _) = pair.response(22, 2 * SECOND);
    assert_eq!(Response::new_checked(&response[..]).unwrap().receiver(), 2);
    assert_eq!(
        alice_checker.verify_mac2(&response, SOURCE, 2 * SECOND),
        Ok(())
    );
}

#[test]
fn bad_cookie_replies_are_rejected() {
    let mut pair = Pair::new(None, None);
    let mut checker = CookieChecker::new();

    let initiation = pair.initiation(11, 1, SECOND);
    let reply = checker
        .create_reply(&pair.bob, &initiation, SOURCE, SECOND, &mut pair.rng)
        .unwrap();

    // Before Alice sent anything to Bob there is nothing to answer.
    let mut fresh = Pair::new(None, None);
    assert_eq!(
        fresh.alice_to_bob.consume_cookie_reply(&reply, SECOND),
        Err(HandshakeError::WrongState)
    );

    let mut tampered = reply;
    tampered[40] ^= 1;
    assert_eq!(
        pair.alice_to_bob.consume_cookie_reply(&tampered, SECOND),
        Err(HandshakeError::DecryptCookie)
    );
    let mut misdirected = reply;
    CookieReply::new_unchecked(&mut misdirected[..]).set_receiver(12);
    assert_eq!(
        pair.alice_to_bob.consume_cookie_reply(&misdirected, SECOND),
        Err(HandshakeError::WrongIndex)
    );

    // A reply to an earlier initiation does not open once a newer one went out.
    pair.initiation(11, 2, 2 * SECOND);
    assert_eq!(
        pair.alice_to_bob.consume_cookie_reply(&reply, 2 * SECOND),
        Err(HandshakeError::DecryptCookie)
    );
}

#[test]
fn cookie_secret_rotates() {
    let mut pair = Pair::new(None, None);
    let mut checker = CookieChecker::new();
    let initiation = pair.initiation(1, 1, SECOND);
    let first = checker
        .create_reply(&pair.bob, &initiation, SOURCE, SECOND, &mut pair.rng)
        .unwrap();
    pair.alice_to_bob
        .consume_cookie_reply(&first, SECOND)
        .unwrap();
    let with_old_cookie = pair.initiation(2, 2, 100 * SECOND);

    // A reply after the secret expired draws a new secret: old cookies stop working.
    let later = SECOND + COOKIE_REFRESH_TIME + SECOND;
    checker
        .create_reply(&pair.bob, &initiation, SOURCE, later, &mut pair.rng)
        .unwrap();
    assert_eq!(
        checker.verify_mac2(&with_old_cookie, SOURCE, later),
        Err(HandshakeError::BadMac2)
    );
}

#[test]
fn debug_output_redacts_secrets() {
    let mut pair = Pair::new(Some(&[0x77; 32]), Some(&[0x77; 32]));
    let (alice, _) = pair.handshake(SECOND).unwrap();
    let session = format!("{alice:?}");
    assert!(session.contains("<redacted>"));
    assert!(!session.contains(&format!("{:?}", alice.send_key)));

    let identity = format!("{:?}", pair.alice);
    assert!(identity.contains("<redacted>"));
    assert!(!identity.contains(&format!("{:?}", [0xa1u8; 32])));
    let peer = format!("{:?}", pair.alice_to_bob);
    assert!(!peer.contains(&format!("{:?}", [0x77u8; 32])));
    assert!(!format!("{:?}", CookieChecker::new()).contains("[0"));
}

#[test]
fn error_names_are_distinct() {
    let mut names: Vec<&str> = HandshakeError::ALL.iter().map(|e| e.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), HandshakeError::ALL.len());
}
