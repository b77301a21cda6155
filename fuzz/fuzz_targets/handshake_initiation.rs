//! The responder's handshake engine fed a sequence of initiations: genuine ones from
//! Alice (Bob's peer) or Carol (a stranger), replays, arbitrary bytes, each optionally
//! mutated and optionally given a valid mac1 for Bob's key so the fuzzer gets past the
//! first check.
//!
//! Input: a byte of settings (bit 0 Alice uses the PSK, bit 1 Bob does), then per message
//! a mode byte: bits 0-1 source (0-1 genuine, 2 arbitrary bytes, 3 replay of the last
//! genuine one), bit 2 Carol sends, bit 3 fix mac1, bits 4-6 how many byte edits, bit 7
//! shape arbitrary bytes as an initiation; an options byte (bit 0 answer an accepted
//! initiation, bit 1 ask for a response with none owed); milliseconds to advance the
//! clock; and per source the index, timestamp, bytes and edits.
//!
//! A model predicts every outcome: only a valid mac1 and the ephemeral and sealed static
//! key of a genuine initiation (bytes 8..88; the sender index and mac2 are not
//! authenticated by Noise) may pass `consume_initiation`; `accept_initiation` must then
//! refuse strangers, a damaged timestamp (bytes 88..116), stale timestamps and floods
//! exactly as documented and otherwise succeed; a refusal
//! must leave the state as it was; and a response to Alice's latest initiation must give
//! both sides the same keys, unless the PSKs differ.

#![no_main]

use control::noise::{HandshakeError, HandshakePhase, PeerHandshake, Tai64N};
use dataplane::wire::wireguard::{Initiation, INITIATION_LEN};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgdp_fuzz::cast::{self, ALICE, BOB, CAROL, PSK};
use wgdp_fuzz::{mac1_key, mutate, rng, set_mac1, Cursor};

const MAX_MESSAGES: usize = 6;
/// wireguard-go's `HandshakeInitationRate`, as `control::noise` documents it.
const RATE: Duration = Duration::from_millis(20);

/// A genuine initiation and what its sealed fields hold.
struct Sent {
    bytes: [u8; INITIATION_LEN],
    from: usize,
    timestamp: Tai64N,
}

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let settings = cur.u8();
    let alice_psk = (settings & 1 != 0).then_some(&PSK);
    let bob_psk = (settings & 2 != 0).then_some(&PSK);
    let (alice, bob, carol) = (
        cast::identity(ALICE),
        cast::identity(BOB),
        cast::identity(CAROL),
    );
    let mut initiators = [
        PeerHandshake::new(alice, cast::public(BOB), alice_psk).unwrap(),
        PeerHandshake::new(carol, cast::public(BOB), None).unwrap(),
    ];
    let mut bob_hs = PeerHandshake::new(bob, cast::public(ALICE), bob_psk).unwrap();
    let bob_key = mac1_key(cast::public(BOB).as_bytes());
    let mut rng = rng(0x1417);

    let mut sent: Vec<Sent> = Vec::new();
    // Alice's latest initiation: the only one a response can complete.
    let mut alice_latest: Option<[u8; INITIATION_LEN]> = None;
    // The model of Bob's replay and flood state.
    let mut latest_ts: Option<Tai64N> = None;
    let mut last_accept: Option<Duration> = None;
    let mut now = Duration::from_secs(1_000);

    for _ in 0..MAX_MESSAGES {
        if cur.is_empty() {
            break;
        }
        let mode = cur.u8();
        let opts = cur.u8();
        now += Duration::from_millis(u64::from(cur.u16()));
        let edits = usize::from(mode >> 4 & 7);

        let mut msg: Vec<u8> = match mode & 3 {
            0 | 1 => {
                let from = if mode & 4 == 0 { ALICE } else { CAROL };
                let index = cur.u32();
                let timestamp = cast::wall(u64::from(cur.u16()), u32::from(cur.u8() % 60) << 24);
                let slot = if from == ALICE { 0 } else { 1 };
                let bytes = initiators[slot]
                    .create_initiation(cast::identity(from), index, timestamp, now, &mut rng)
                    .expect("an initiation to a valid key");
                let mut check = bytes;
                set_mac1(&bob_key, &mut check);
                assert_eq!(check, bytes, "the harness computes mac1 as the engine does");
                if from == ALICE {
                    alice_latest = Some(bytes);
                }
                sent.push(Sent {
                    bytes,
                    from,
                    timestamp,
                });
                bytes.to_vec()
            }
            2 => {
                let mut raw = cur.blob(256).to_vec();
                if mode & 0x80 != 0 {
                    raw.resize(INITIATION_LEN, 0);
                    raw[..4].copy_from_slice(&[1, 0, 0, 0]);
                }
                raw
            }
            _ => match sent.last() {
                Some(s) => s.bytes.to_vec(),
                None => continue,
            },
        };
        mutate(&mut cur, &mut msg, edits);
        if mode & 8 != 0 {
            set_mac1(&bob_key, &mut msg);
        }

        let well_formed = Initiation::new_checked(&msg[..]).is_ok();
        let mac1_ok = well_formed && {
            let mut check = msg.clone();
            set_mac1(&bob_key, &mut check);
            check == msg
        };
        let authentic = sent
            .iter()
            .rev()
            .find(|s| well_formed && s.bytes[8..88] == msg[8..88]);

        let phase_before = bob_hs.phase();
        let consumed = bob.consume_initiation(&msg);
        assert_eq!(
            consumed.is_ok(),
            mac1_ok && authentic.is_some(),
            "consume_initiation: {:?} (well formed {well_formed}, mac1 {mac1_ok}, authentic {})",
            consumed.as_ref().err(),
            authentic.is_some()
        );
        match &consumed {
            Err(HandshakeError::Malformed) => assert!(!well_formed),
            Err(HandshakeError::BadMac1) => assert!(well_formed && !mac1_ok),
            _ => {}
        }
        assert!(bob.verify_mac1(&msg).is_ok() == mac1_ok);
        let Ok(info) = consumed else {
            assert_eq!(bob_hs.phase(), phase_before);
            continue;
        };
        let s = authentic.expect("only authentic initiations pass");
        assert_eq!(info.initiator_static(), &cast::public(s.from));
        let sender_index = u32::from_le_bytes(msg[4..8].try_into().unwrap());
        assert_eq!(info.sender_index(), sender_index);

        let expected = if s.from != ALICE {
            Err(HandshakeError::UnknownPeer)
        } else if s.bytes[88..116] != msg[88..116] {
            Err(HandshakeError::DecryptTimestamp)
        } else if latest_ts.is_some_and(|t| s.timestamp <= t) {
            Err(HandshakeError::StaleTimestamp)
        } else if last_accept.is_some_and(|t| now.saturating_sub(t) <= RATE) {
            Err(HandshakeError::RateLimited)
        } else {
            Ok(s.timestamp)
        };
        let body = s.bytes;
        let accepted = bob_hs.accept_initiation(info, now);
        assert_eq!(accepted, expected, "accept_initiation");
        if accepted.is_err() {
            assert_eq!(bob_hs.phase(), phase_before, "a refusal changes nothing");
        } else {
            latest_ts = Some(s.timestamp);
            last_accept = Some(now);
            assert_eq!(
                bob_hs.phase(),
                HandshakePhase::InitiationConsumed {
                    remote_index: sender_index
                }
            );
        }

        if opts & 2 != 0 && !matches!(bob_hs.phase(), HandshakePhase::InitiationConsumed { .. }) {
            let refused = bob_hs.create_response(cur.u32(), now, &mut rng);
            assert_eq!(refused.err(), Some(HandshakeError::WrongState));
        }
        if accepted.is_err() || opts & 1 == 0 {
            continue;
        }

        let (response, bob_session) = bob_hs
            .create_response(cur.u32(), now, &mut rng)
            .expect("a response to an accepted initiation");
        assert_eq!(bob_hs.phase(), HandshakePhase::Idle);
        assert!(!bob_session.initiator);
        assert_eq!(bob_session.remote_index, sender_index);

        let alice_hs = &mut initiators[0];
        let alice_phase = alice_hs.phase();
        let outcome = alice_hs.consume_response(alice, &response, now);
        let in_flight = match alice_phase {
            HandshakePhase::InitiationSent { local_index, .. } => local_index == sender_index,
            _ => false,
        };
        let for_latest = alice_latest.is_some_and(|l| l[8..116] == body[8..116]);
        match outcome {
            Ok(alice_session) => {
                assert!(in_flight && for_latest && alice_psk == bob_psk);
                assert!(alice_session.initiator);
                assert_eq!(alice_session.send_key, bob_session.recv_key);
                assert_eq!(alice_session.recv_key, bob_session.send_key);
                assert_eq!(alice_session.local_index, bob_session.remote_index);
                assert_eq!(alice_session.remote_index, bob_session.local_index);
                assert_eq!(alice_hs.phase(), HandshakePhase::Idle);
            }
            Err(e) => {
                assert!(
                    !(in_flight && for_latest && alice_psk == bob_psk),
                    "Alice refused the response to her own initiation: {e:?}"
                );
                assert_eq!(alice_hs.phase(), alice_phase, "a refusal changes nothing");
            }
        }
    }
});
