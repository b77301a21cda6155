//! The generator's WireGuard peers: keys derived from a seed (so that a gateway's
//! configuration can be written for them in advance), the handshake with the gateway
//! as initiator, and the transport keys it yields.
//!
//! Peer `i` has the private key `BLAKE2s-256("wgdp-pktgen peer" || seed || i)` (x25519
//! clamps it), the tunnel address `tunnel + i`, and sends from UDP port
//! `PORT_BASE + i mod PORT_SPAN`, so that many peers also spread over RSS queues.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use blake2::{Blake2s256, Digest};
use control::noise::{Identity, PeerHandshake, Session};
use dataplane::crypto::TransportKey;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Instant;
use x25519_dalek::{PublicKey, StaticSecret};

/// First UDP source port of the peers.
pub const PORT_BASE: u16 = 20000;
/// Source ports cycle through this many values.
pub const PORT_SPAN: u32 = 40000;

/// The private key of peer `index` of generator `seed`.
pub fn private_key(seed: u64, index: u32) -> StaticSecret {
    let mut h = Blake2s256::new();
    h.update(b"wgdp-pktgen peer");
    h.update(seed.to_le_bytes());
    h.update(index.to_le_bytes());
    let bytes: [u8; 32] = h.finalize().into();
    StaticSecret::from(bytes)
}

pub fn tunnel_address(base: Ipv4Addr, index: u32) -> Ipv4Addr {
    Ipv4Addr::from(base.to_bits().wrapping_add(index))
}

pub fn source_port(index: u32) -> u16 {
    PORT_BASE + (index % PORT_SPAN) as u16
}

/// The `peers:` section of a wgdp configuration for `count` generator peers.
pub fn yaml(seed: u64, count: u32, tunnel: Ipv4Addr) -> String {
    let mut out = format!(
        "# {count} wgdp-pktgen peers (seed {seed}); write them under the gateway's configuration\n\
         peers:\n"
    );
    for i in 0..count {
        let public = PublicKey::from(&private_key(seed, i));
        let _ = writeln!(
            out,
            "  - public_key: \"{}\"\n    allowed_ips: [\"{}/32\"]",
            BASE64.encode(public.as_bytes()),
            tunnel_address(tunnel, i)
        );
    }
    out
}

/// The keys of an established session, and the next counter to send with.
pub struct Keys {
    pub local_index: u32,
    pub remote_index: u32,
    pub send: TransportKey,
    pub recv: TransportKey,
    pub next_counter: u64,
    pub established: Instant,
}

impl Keys {
    pub fn from_session(s: &Session) -> Keys {
        Keys {
            local_index: s.local_index,
            remote_index: s.remote_index,
            send: TransportKey::new(&s.send_key),
            recv: TransportKey::new(&s.recv_key),
            next_counter: 0,
            established: Instant::now(),
        }
    }

    /// Takes the next send counter.
    pub fn take_counter(&mut self) -> u64 {
        let c = self.next_counter;
        self.next_counter += 1;
        c
    }
}

/// One generator peer.
pub struct Peer {
    pub identity: Identity,
    pub handshake: PeerHandshake,
    pub keys: Option<Keys>,
    /// The index of the initiation in flight, if any.
    pub pending: Option<u32>,
    pub tunnel: Ipv4Addr,
    pub port: u16,
}

impl Peer {
    pub fn new(
        seed: u64,
        index: u32,
        gateway: &PublicKey,
        psk: Option<&[u8; 32]>,
        tunnel: Ipv4Addr,
    ) -> Result<Peer, String> {
        let identity = Identity::new(private_key(seed, index));
        let handshake = PeerHandshake::new(&identity, *gateway, psk)
            .map_err(|e| format!("the gateway's public key: {}", e.name()))?;
        Ok(Peer {
            identity,
            handshake,
            keys: None,
            pending: None,
            tunnel: tunnel_address(tunnel, index),
            port: source_port(index),
        })
    }
}

/// The generator's payload, at the start of every inner UDP datagram it sends: a magic,
/// the trial it belongs to, its sequence number in the trial and the peer it is for.
pub const MAGIC: [u8; 4] = *b"wgpg";
pub const PAYLOAD_MIN: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub trial: u32,
    pub seq: u64,
    pub peer: u32,
}

impl Stamp {
    pub fn write(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&self.trial.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.peer.to_le_bytes());
        // The rest is a pattern of the sequence number, so that equal-sized packets
        // do not carry equal plaintext.
        for (i, x) in b[PAYLOAD_MIN..].iter_mut().enumerate() {
            *x = (self.seq as u8).wrapping_add(i as u8);
        }
    }

    pub fn read(b: &[u8]) -> Option<Stamp> {
        if b.len() < PAYLOAD_MIN || b[0..4] != MAGIC {
            return None;
        }
        Some(Stamp {
            trial: u32::from_le_bytes(b[4..8].try_into().unwrap()),
            seq: u64::from_le_bytes(b[8..16].try_into().unwrap()),
            peer: u32::from_le_bytes(b[16..20].try_into().unwrap()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_a_function_of_seed_and_index() {
        let a = PublicKey::from(&private_key(1, 0));
        assert_eq!(a, PublicKey::from(&private_key(1, 0)));
        assert_ne!(a, PublicKey::from(&private_key(1, 1)));
        assert_ne!(a, PublicKey::from(&private_key(2, 0)));
    }

    #[test]
    fn yaml_lists_every_peer_with_its_tunnel_address() {
        let y = yaml(7, 3, Ipv4Addr::new(198, 18, 128, 0));
        assert_eq!(y.matches("public_key").count(), 3);
        assert!(y.contains("198.18.128.2/32"));
        let key = BASE64.encode(PublicKey::from(&private_key(7, 1)).as_bytes());
        assert!(y.contains(&key));
    }

    #[test]
    fn stamps_read_back() {
        let s = Stamp {
            trial: 3,
            seq: 1 << 40,
            peer: 9,
        };
        let mut b = [0u8; 30];
        s.write(&mut b);
        assert_eq!(Stamp::read(&b), Some(s));
        b[0] = b'x';
        assert_eq!(Stamp::read(&b), None);
        assert_eq!(Stamp::read(&b[..10]), None);
    }
}
