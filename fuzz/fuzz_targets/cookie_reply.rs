//! Cookies: the initiator's engine fed a sequence of cookie replies where it may expect
//! one (Bob's genuine reply to Alice's last message, replays, arbitrary bytes, each
//! optionally mutated and given Alice's index), and the responder's `CookieChecker` fed
//! arbitrary handshake messages.
//!
//! Input: a byte of settings (bit 0 Alice sends an initiation first), then per message a
//! mode byte: bits 0-1 source (0-1 the genuine reply, 2 arbitrary bytes, 3 Alice sends a
//! new initiation and Bob answers it), bit 3 shape arbitrary bytes as a cookie reply,
//! bit 4 write Alice's index as receiver, bits 5-6 how many byte edits; milliseconds to
//! advance the clock; then what the source needs.
//!
//! A model of both sides predicts: the refusals in their documented order (malformed,
//! nothing sent, index, AEAD); that only the genuine reply opens; and that Alice's next
//! initiation carries a mac2 Bob accepts exactly while her cookie is fresh and made with
//! Bob's live secret, from the same source address only.

#![no_main]

use control::noise::{CookieChecker, HandshakeError, PeerHandshake, COOKIE_REFRESH_TIME};
use dataplane::wire::wireguard::{
    classify, CookieReply, MessageKind, COOKIE_REPLY_LEN, INITIATION_LEN,
};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgdp_fuzz::cast::{self, ALICE, BOB};
use wgdp_fuzz::{mac1_key, mutate, rng, set_mac1, Cursor};

const MAX_MESSAGES: usize = 6;
const SOURCE: &[u8] = &[198, 19, 0, 2, 0xca, 0x6c];
const OTHER_SOURCE: &[u8] = &[198, 19, 0, 3, 0xca, 0x6c];

/// What the harness knows of both sides.
#[derive(Default)]
struct Model {
    /// When Bob's current cookie secret was drawn.
    secret_born: Option<Duration>,
    /// Alice's cookie: the secret's birth it was made with, and when she got it.
    cookie: Option<(Duration, Duration)>,
    /// The sender index of Alice's last message.
    last_index: Option<u32>,
    /// Bob's reply to that message, and the secret birth behind it.
    genuine: Option<([u8; COOKIE_REPLY_LEN], Duration)>,
}

impl Model {
    fn secret_live(&self, now: Duration) -> bool {
        self.secret_born
            .is_some_and(|b| now.saturating_sub(b) <= COOKIE_REFRESH_TIME)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let settings = cur.u8();
    let (alice, bob) = (cast::identity(ALICE), cast::identity(BOB));
    let mut alice_hs = PeerHandshake::new(alice, cast::public(BOB), None).unwrap();
    let mut checker = CookieChecker::new();
    let mut spare_checker = CookieChecker::new();
    let bob_key = mac1_key(cast::public(BOB).as_bytes());
    let mut rng = rng(0xc00c1e);
    let mut now = Duration::from_secs(1_000);
    let mut m = Model::default();

    // Alice sends an initiation; Bob, under load, checks its mac2 and answers with a
    // cookie reply.
    let mut initiate =
        |cur: &mut Cursor<'_>, now: Duration, m: &mut Model, alice_hs: &mut PeerHandshake| {
            let index = cur.u32();
            let init = alice_hs
                .create_initiation(alice, index, cast::wall(0, 0), now, &mut rng)
                .expect("an initiation to a valid key");
            let with_mac2 = m
                .cookie
                .is_some_and(|(_, got)| now.saturating_sub(got) <= COOKIE_REFRESH_TIME);
            if !with_mac2 {
                assert_eq!(init[132..], [0; 16], "no fresh cookie, no mac2");
            }
            let mac2_valid =
                with_mac2 && m.secret_live(now) && m.cookie.map(|(born, _)| born) == m.secret_born;
            assert_eq!(
                checker.verify_mac2(&init, SOURCE, now).is_ok(),
                mac2_valid,
                "verify_mac2 (cookie {:?}, secret {:?}, now {now:?})",
                m.cookie,
                m.secret_born
            );
            assert_eq!(
                checker.verify_mac2(&init, OTHER_SOURCE, now),
                Err(HandshakeError::BadMac2),
                "a cookie is bound to its source address"
            );
            if !m.secret_live(now) {
                m.secret_born = Some(now);
            }
            let reply = checker
                .create_reply(bob, &init, SOURCE, now, &mut rng)
                .expect("a reply to an initiation");
            assert_eq!(
                CookieReply::new_checked(&reply[..]).unwrap().receiver(),
                index
            );
            m.last_index = Some(index);
            m.genuine = Some((reply, m.secret_born.unwrap()));
        };
    if settings & 1 != 0 {
        initiate(&mut cur, now, &mut m, &mut alice_hs);
    }

    for _ in 0..MAX_MESSAGES {
        if cur.is_empty() {
            break;
        }
        let mode = cur.u8();
        now += Duration::from_millis(u64::from(cur.u16()) * 8);
        let mut msg: Vec<u8> = match mode & 3 {
            0 | 1 => match m.genuine {
                Some((reply, _)) => reply.to_vec(),
                None => continue,
            },
            2 => {
                let mut raw = cur.blob(192).to_vec();
                responder_side(
                    &mut spare_checker,
                    &bob_key,
                    &raw,
                    now,
                    &mut rng_for_raw(&raw),
                );
                if mode & 8 != 0 {
                    raw.resize(COOKIE_REPLY_LEN, 0);
                    raw[..4].copy_from_slice(&[3, 0, 0, 0]);
                }
                raw
            }
            _ => {
                initiate(&mut cur, now, &mut m, &mut alice_hs);
                m.genuine.unwrap().0.to_vec()
            }
        };
        mutate(&mut cur, &mut msg, usize::from(mode >> 5 & 3));
        if mode & 0x10 != 0 && msg.len() >= 8 {
            msg[4..8].copy_from_slice(&m.last_index.unwrap_or(0).to_le_bytes());
        }

        let well_formed = CookieReply::new_checked(&msg[..]).is_ok();
        let receiver = well_formed.then(|| u32::from_le_bytes(msg[4..8].try_into().unwrap()));
        let authentic = well_formed && m.genuine.is_some_and(|(g, _)| g[8..] == msg[8..]);
        let expected = if !well_formed {
            Err(HandshakeError::Malformed)
        } else if m.last_index.is_none() {
            Err(HandshakeError::WrongState)
        } else if receiver != m.last_index {
            Err(HandshakeError::WrongIndex)
        } else if authentic {
            Ok(())
        } else {
            Err(HandshakeError::DecryptCookie)
        };
        assert_eq!(alice_hs.consume_cookie_reply(&msg, now), expected);
        if expected.is_ok() {
            m.cookie = Some((m.genuine.unwrap().1, now));
        }
    }
});

/// A deterministic RNG for the spare checker, independent of the main sequence.
fn rng_for_raw(raw: &[u8]) -> rand_chacha::ChaCha8Rng {
    rng(raw.len() as u64)
}

/// The responder's cookie code on arbitrary bytes (mac1 made valid for Bob, as the
/// caller checks it first): no mac2 verifies without a cookie handed out, and a reply is
/// made exactly for initiations and responses, addressed to their sender.
fn responder_side(
    checker: &mut CookieChecker,
    bob_key: &[u8; 32],
    raw: &[u8],
    now: Duration,
    rng: &mut rand_chacha::ChaCha8Rng,
) {
    let mut msg = raw.to_vec();
    if msg.len() == INITIATION_LEN || msg.len() == 92 {
        set_mac1(bob_key, &mut msg);
    }
    let kind = classify(&msg);
    let macced = matches!(kind, Ok(MessageKind::Initiation | MessageKind::Response));
    let verified = checker.verify_mac2(&msg, SOURCE, now);
    if !macced {
        assert_eq!(verified, Err(HandshakeError::Malformed));
    }
    match checker.create_reply(cast::identity(BOB), &msg, SOURCE, now, rng) {
        Ok(reply) => {
            assert!(macced);
            let sender = u32::from_le_bytes(msg[4..8].try_into().unwrap());
            assert_eq!(
                CookieReply::new_checked(&reply[..]).unwrap().receiver(),
                sender
            );
        }
        Err(e) => {
            assert!(!macced);
            assert_eq!(e, HandshakeError::Malformed);
        }
    }
}
