//! The initiator's handshake engine fed a sequence of responses where Alice awaits one:
//! Bob's genuine response, replays, fresh handshakes, arbitrary bytes, each optionally
//! mutated, optionally given Alice's index as receiver and a valid mac1 for her key.
//!
//! Input: a byte of settings (bit 0 Alice uses the PSK, bit 1 Bob does) and the indexes
//! of the first handshake; then per message a mode byte: bits 0-1 source (0-1 the
//! genuine response, 2 arbitrary bytes, 3 a new handshake and its response), bit 3 fix
//! mac1, bit 4 write Alice's index as receiver, bits 5-6 how many byte edits, bit 7
//! shape arbitrary bytes as a response; milliseconds to advance the clock; then what
//! the source needs.
//!
//! The checks follow the documented order of refusals (malformed, mac1, state, index,
//! then the AEAD), predict each outcome, require that a refusal leaves Alice's state as
//! it was, and that the genuine response yields the keys Bob derived, with the sender
//! index it carries (the indexes are not authenticated by Noise).

#![no_main]

use control::noise::{HandshakeError, HandshakePhase, PeerHandshake};
use dataplane::wire::wireguard::{Response, RESPONSE_LEN};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgdp_fuzz::cast::{self, ALICE, BOB, PSK};
use wgdp_fuzz::{mac1_key, mutate, rng, set_mac1, Cursor};

const MAX_MESSAGES: usize = 6;

/// Bob's answer to Alice's initiation in flight.
struct Genuine {
    alice_index: u32,
    bytes: [u8; RESPONSE_LEN],
    send_key: [u8; 32],
    recv_key: [u8; 32],
    bob_index: u32,
}

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let settings = cur.u8();
    let alice_psk = (settings & 1 != 0).then_some(&PSK);
    let bob_psk = (settings & 2 != 0).then_some(&PSK);
    let (alice, bob) = (cast::identity(ALICE), cast::identity(BOB));
    let mut alice_hs = PeerHandshake::new(alice, cast::public(BOB), alice_psk).unwrap();
    let mut bob_hs = PeerHandshake::new(bob, cast::public(ALICE), bob_psk).unwrap();
    let alice_key = mac1_key(cast::public(ALICE).as_bytes());
    let mut rng = rng(0x7e5);
    let mut now = Duration::from_secs(1_000);
    let mut handshakes = 0u64;

    let mut exchange = |cur: &mut Cursor<'_>, now: &mut Duration, alice_hs: &mut PeerHandshake| {
        // A second apart, so Bob's replay and flood checks never object.
        *now += Duration::from_secs(1);
        handshakes += 1;
        let alice_index = cur.u32();
        let init = alice_hs
            .create_initiation(
                alice,
                alice_index,
                cast::wall(handshakes, 0),
                *now,
                &mut rng,
            )
            .expect("an initiation to a valid key");
        let info = bob.consume_initiation(&init).expect("a genuine initiation");
        bob_hs
            .accept_initiation(info, *now)
            .expect("a fresh genuine initiation");
        let (bytes, session) = bob_hs
            .create_response(cur.u32(), *now, &mut rng)
            .expect("a response to an accepted initiation");
        let mut check = bytes;
        set_mac1(&alice_key, &mut check);
        assert_eq!(check, bytes, "the harness computes mac1 as the engine does");
        Genuine {
            alice_index,
            bytes,
            send_key: session.send_key,
            recv_key: session.recv_key,
            bob_index: session.local_index,
        }
    };
    let mut current = exchange(&mut cur, &mut now, &mut alice_hs);

    for _ in 0..MAX_MESSAGES {
        if cur.is_empty() {
            break;
        }
        let mode = cur.u8();
        now += Duration::from_millis(u64::from(cur.u16()));
        let mut msg: Vec<u8> = match mode & 3 {
            0 | 1 => current.bytes.to_vec(),
            2 => {
                let mut raw = cur.blob(128).to_vec();
                if mode & 0x80 != 0 {
                    raw.resize(RESPONSE_LEN, 0);
                    raw[..4].copy_from_slice(&[2, 0, 0, 0]);
                }
                raw
            }
            _ => {
                current = exchange(&mut cur, &mut now, &mut alice_hs);
                current.bytes.to_vec()
            }
        };
        mutate(&mut cur, &mut msg, usize::from(mode >> 5 & 3));
        if mode & 0x10 != 0 && msg.len() >= 12 {
            msg[8..12].copy_from_slice(&current.alice_index.to_le_bytes());
        }
        if mode & 8 != 0 {
            set_mac1(&alice_key, &mut msg);
        }

        let well_formed = Response::new_checked(&msg[..]).is_ok();
        let mac1_ok = well_formed && {
            let mut check = msg.clone();
            set_mac1(&alice_key, &mut check);
            check == msg
        };
        let phase = alice_hs.phase();
        let expected_index = match phase {
            HandshakePhase::InitiationSent { local_index, .. } => Some(local_index),
            _ => None,
        };
        let receiver = well_formed.then(|| u32::from_le_bytes(msg[8..12].try_into().unwrap()));
        let authentic = well_formed && msg[12..60] == current.bytes[12..60];

        let outcome = alice_hs.consume_response(alice, &msg, now);
        match outcome {
            Ok(session) => {
                assert!(mac1_ok && authentic && alice_psk == bob_psk);
                assert_eq!(expected_index, receiver);
                assert_eq!(session.local_index, current.alice_index);
                assert_eq!(
                    session.remote_index,
                    u32::from_le_bytes(msg[4..8].try_into().unwrap())
                );
                assert_eq!(session.send_key, current.recv_key);
                assert_eq!(session.recv_key, current.send_key);
                assert!(session.initiator);
                assert_eq!(alice_hs.phase(), HandshakePhase::Idle);
                if session.remote_index == current.bob_index {
                    assert_eq!(
                        &msg[..76],
                        &current.bytes[..76],
                        "only indexes and mac2 may differ"
                    );
                }
            }
            Err(e) => {
                assert_eq!(alice_hs.phase(), phase, "a refusal changes nothing");
                let expected = if !well_formed {
                    Some(HandshakeError::Malformed)
                } else if !mac1_ok {
                    Some(HandshakeError::BadMac1)
                } else if expected_index.is_none() {
                    Some(HandshakeError::WrongState)
                } else if receiver != expected_index {
                    Some(HandshakeError::WrongIndex)
                } else {
                    None
                };
                match expected {
                    Some(expected) => assert_eq!(e, expected),
                    None => {
                        assert!(
                            matches!(
                                e,
                                HandshakeError::DecryptResponse | HandshakeError::BadPublicKey
                            ),
                            "refused for {e:?}"
                        );
                        assert!(
                            !authentic || alice_psk != bob_psk,
                            "Alice refused Bob's genuine response: {e:?}"
                        );
                    }
                }
            }
        }
    }
});
