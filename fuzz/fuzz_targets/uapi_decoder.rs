//! The UAPI request decoder fed an arbitrary byte stream in arbitrary pieces, as a
//! client connection would deliver it. Input: a byte seeding the piece sizes, a byte
//! choosing the request-size limit and how bytes are handed over (`push`, or `spare` and
//! `filled`), then the stream.
//!
//! The decoder must never stall (room to read whenever it has nothing to give, unless it
//! has desynced), must yield nothing after `Desynced`, and what it yields must keep its
//! promises: errors with a positive errno, allowed IPs within their family's length with
//! host bits cleared, no endpoint with port 0. Every answer must end with a blank line,
//! and a get answer listing everything a set request carried must fit the size bound
//! `encode_response` reserves up front (it asserts so in debug builds). Each set request
//! is also applied to a control plane (capacity four peers), whose description must then
//! list distinct peers within the capacity and encode as a complete answer.

#![no_main]

use control::config::Key;
use control::plane::ControlPlane;
use control::uapi::device;
use control::uapi::{
    encode_response, AllowedIpChange, Decoded, Decoder, Request, Response, SecretUpdate,
    SetRequest, UapiDevice, UapiPeer,
};
use dataplane::buf::HeapBuf;
use dataplane::session::Sessions;
use dataplane::tables::Shared;
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use wgdp_fuzz::{net, rng, Cursor};

const MAX_PEERS: usize = 4;

type Plane = ControlPlane<HeapBuf, ChaCha8Rng>;

fuzz_target!(|data: &[u8]| {
    let mut cur = Cursor::new(data);
    let mut seed = u32::from(cur.u8()) | 1;
    let mode = cur.u8();
    let max_request = if mode & 0x80 == 0 {
        64 + usize::from(mode & 0x3f) * 64
    } else {
        control::uapi::protocol::DEFAULT_MAX_REQUEST_BYTES
    };
    let use_spare = mode & 0x40 != 0;
    let mut stream = cur.rest();
    let mut decoder = Decoder::new(max_request);
    let mut desynced = false;
    let shared = Arc::new(Shared::new(net::tables(), Sessions::new(10, MAX_PEERS)));
    let mut plane: Plane =
        ControlPlane::new(&[0xb0; 32], &[], shared, rng(0)).expect("a plane without peers");

    while !stream.is_empty() {
        // xorshift32: piece sizes from 1 byte to 4 KiB, mostly small.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let piece = (1 + seed as usize % 4096) >> (seed >> 28);
        let (mut chunk, tail) = stream.split_at(piece.clamp(1, stream.len()));
        stream = tail;
        while !chunk.is_empty() {
            let taken = if use_spare {
                let spare = decoder.spare();
                let n = spare.len().min(chunk.len());
                spare[..n].copy_from_slice(&chunk[..n]);
                decoder.filled(n);
                n
            } else {
                decoder.push(chunk)
            };
            assert!(taken <= chunk.len());
            chunk = &chunk[taken..];
            drain(&mut decoder, &mut desynced, &mut plane);
            if desynced {
                // The server closes the connection; later bytes must change nothing.
                decoder.push(chunk);
                assert!(decoder.decode().is_none(), "a request after Desynced");
                return;
            }
            assert!(
                !decoder.spare().is_empty(),
                "the decoder is full and has nothing to give: the connection stalls"
            );
        }
    }
});

fn drain(decoder: &mut Decoder, desynced: &mut bool, plane: &mut Plane) {
    while let Some(decoded) = decoder.decode() {
        assert!(!*desynced, "a request after Desynced");
        let answer = match decoded {
            Decoded::Request(Request::Get) => {
                encode_response(&Response::Device(UapiDevice::default()))
            }
            Decoded::Request(Request::Set(set)) => {
                check_set(&set);
                let answer = encode_response(&Response::Device(device_from(&set)));
                assert!(answer.ends_with(b"errno=0\n\n"));
                let applied = device::apply(plane, &set, MAX_PEERS);
                let described = device::describe(plane);
                assert!(described.peers.len() <= MAX_PEERS);
                let keys: HashSet<_> = described.peers.iter().map(|p| p.public_key).collect();
                assert_eq!(keys.len(), described.peers.len(), "peers are distinct");
                assert!(encode_response(&Response::Device(described)).ends_with(b"errno=0\n\n"));
                match applied {
                    Ok(()) => encode_response(&Response::Applied),
                    Err(error) => {
                        assert!(error.errno() > 0, "{error}");
                        encode_response(&Response::Failed(error))
                    }
                }
            }
            Decoded::Rejected(error) => {
                assert!(error.errno() > 0, "{error}");
                encode_response(&Response::Failed(error))
            }
            Decoded::Desynced(error) => {
                assert!(error.errno() > 0, "{error}");
                *desynced = true;
                encode_response(&Response::Failed(error))
            }
        };
        assert!(answer.starts_with(b"errno=") || answer.ends_with(b"errno=0\n\n"));
        assert!(
            answer.ends_with(b"\n\n"),
            "every answer ends with a blank line"
        );
    }
}

fn check_set(set: &SetRequest) {
    for peer in &set.peers {
        if let Some(endpoint) = peer.endpoint {
            assert_ne!(endpoint.port(), 0, "port 0 is refused");
        }
        for change in &peer.allowed_ips {
            let (AllowedIpChange::Add(addr, len) | AllowedIpChange::Remove(addr, len)) = *change;
            let host_bits = match addr {
                IpAddr::V4(a) => {
                    assert!(len <= 32);
                    u128::from(u32::from(a) & u32::MAX.checked_shr(u32::from(len)).unwrap_or(0))
                }
                IpAddr::V6(a) => {
                    assert!(len <= 128);
                    u128::from(a) & u128::MAX.checked_shr(u32::from(len)).unwrap_or(0)
                }
            };
            assert_eq!(host_bits, 0, "host bits of {addr}/{len} cleared");
        }
    }
}

/// A get answer holding everything the set request carried, every counter and time at
/// its widest.
fn device_from(set: &SetRequest) -> UapiDevice {
    let key = |update: &Option<SecretUpdate>| {
        update
            .as_ref()
            .and_then(SecretUpdate::key)
            .map(|k| Key::from_bytes(*k.as_bytes()))
    };
    UapiDevice {
        private_key: key(&set.private_key),
        listen_port: set.listen_port.unwrap_or(0),
        peers: set
            .peers
            .iter()
            .map(|p| UapiPeer {
                public_key: p.public_key,
                preshared_key: key(&p.preshared_key),
                endpoint: p.endpoint,
                last_handshake: Some(
                    UNIX_EPOCH + Duration::new(u64::from(u32::MAX) * 64, 999_999_999),
                ),
                rx_bytes: u64::MAX,
                tx_bytes: u64::MAX,
                persistent_keepalive: p.persistent_keepalive,
                allowed_ips: p
                    .allowed_ips
                    .iter()
                    .map(|c| match *c {
                        AllowedIpChange::Add(a, l) | AllowedIpChange::Remove(a, l) => (a, l),
                    })
                    .collect(),
            })
            .collect(),
    }
}
