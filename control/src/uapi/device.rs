//! The gateway behind the UAPI socket: what `wg show` sees of the control plane, and
//! how a `wg set` changes it.
//!
//! Contract: [`describe`] and [`Served`]'s gets never fail (a failed get shows as
//! "Protocol error" in `wg`).
//! [`apply`] checks the whole request against the peer limit before changing anything,
//! then applies it in wireguard-go's order: private key, listen port, `replace_peers`,
//! then each peer block in turn. Peers changed this way keep their sessions; a reload
//! of the configuration file brings the peers back to what the file says.
//!
//! `replace_peers` (`wg setconf`) differs from wireguard-go in one way, on purpose:
//! wireguard-go removes every peer and makes the request's peers anew, so each loses
//! its session and has to handshake again. Here a peer that a block of the request
//! makes again (a block that is neither `remove` nor `update_only`, with no `remove`
//! block for the same key) stays, with its sessions, and ends up with the configuration
//! that block gives, as wireguard-go's new peer would: a preshared key, keepalive or
//! allowed IP that the block does not repeat is gone. Until its block it counts as
//! absent, so an `update_only` block before it is skipped, as in wireguard-go. Only its
//! endpoint stays where it was when the block gives none, since its session goes on
//! there. Peers the request does not make again are removed.
//!
//! Cost: a look-up per block of the request, and a change per peer it touches; the
//! tables are rebuilt once. Only `replace_peers` passes over every peer of the device.

use super::protocol::{
    AllowedIpChange, SecretUpdate, SetRequest, UapiDevice, UapiError, UapiInterface, UapiPeer,
};
use super::server::Handler;
use crate::plane::{ControlPlane, PeerSpec, PeerView};
use dataplane::buf::PacketBuf;
use rand_core::{CryptoRng, RngCore};
use std::collections::{HashMap, HashSet};

/// The device as `wg show` / `wg showconf` print it, every peer at once.
pub fn describe<B: PacketBuf, R: RngCore + CryptoRng>(plane: &ControlPlane<B, R>) -> UapiDevice {
    let UapiInterface {
        private_key,
        listen_port,
    } = interface(plane);
    UapiDevice {
        private_key,
        listen_port,
        peers: plane.peer_views().map(|v| uapi_peer(&v)).collect(),
    }
}

/// The device lines of a get answer.
pub fn interface<B: PacketBuf, R: RngCore + CryptoRng>(
    plane: &ControlPlane<B, R>,
) -> UapiInterface {
    UapiInterface {
        private_key: Some(plane.private_key().clone()),
        listen_port: plane.current_tables().listen_port,
    }
}

fn uapi_peer(v: &PeerView<'_>) -> UapiPeer {
    UapiPeer {
        public_key: v.spec.public_key,
        preshared_key: v.spec.preshared_key.map(crate::config::Key::from_bytes),
        endpoint: v.peer.endpoint(),
        last_handshake: v.last_handshake,
        rx_bytes: v.activity.rx.bytes,
        tx_bytes: v.activity.tx.bytes,
        persistent_keepalive: v.spec.persistent_keepalive,
        allowed_ips: v.spec.allowed_ips.clone(),
    }
}

/// The control plane behind the UAPI socket ([`crate::uapi::Server::serve`]): sets
/// applied with [`apply`], gets streamed a batch of peers per poll.
///
/// A get lists the peers in the order of their ids (`ControlPlane::peer_views`'s), and
/// its cursor is the id after the last peer listed. A peer keeps its id for its life
/// (an update, a reload or `replace_peers` that lists it again keep it), so while
/// peers come and go during an answer: a peer there for the whole answer is listed
/// once, with its figures as they are when its batch is made; no peer is listed twice;
/// a peer added or removed meanwhile may or may not be listed (it is if its id is still
/// ahead of the cursor). A key removed and added again is a new peer with a new id, and
/// may then be listed twice, as it was and as it is. The device lines are as they were
/// when the request arrived.
pub struct Served<'a, B: PacketBuf, R: RngCore + CryptoRng> {
    plane: &'a mut ControlPlane<B, R>,
    max_peers: usize,
}

impl<'a, B: PacketBuf, R: RngCore + CryptoRng> Served<'a, B, R> {
    /// `max_peers` is the capacity of the gateway, for [`apply`].
    pub fn new(plane: &'a mut ControlPlane<B, R>, max_peers: usize) -> Self {
        Served { plane, max_peers }
    }
}

impl<B: PacketBuf, R: RngCore + CryptoRng> Handler for Served<'_, B, R> {
    fn set(&mut self, request: SetRequest) -> Result<(), UapiError> {
        apply(self.plane, &request, self.max_peers)
    }

    fn interface(&mut self) -> UapiInterface {
        interface(self.plane)
    }

    fn peers(&mut self, cursor: u64, each: &mut dyn FnMut(&UapiPeer) -> bool) -> Option<u64> {
        // No id is that large: nothing is left.
        let from = u32::try_from(cursor).ok()?;
        for v in self.plane.peer_views_from(from) {
            if !each(&uapi_peer(&v)) {
                return Some(u64::from(v.peer.id) + 1);
            }
        }
        None
    }
}

/// Applies a `wg set`. `max_peers` is the capacity of the gateway. The tables are
/// published once, after every peer of the request (`ControlPlane::batch`).
pub fn apply<B: PacketBuf, R: RngCore + CryptoRng>(
    plane: &mut ControlPlane<B, R>,
    req: &SetRequest,
    max_peers: usize,
) -> Result<(), UapiError> {
    plane.batch(|plane| apply_all(plane, req, max_peers))
}

fn apply_all<B: PacketBuf, R: RngCore + CryptoRng>(
    plane: &mut ControlPlane<B, R>,
    req: &SetRequest,
    max_peers: usize,
) -> Result<(), UapiError> {
    // Refuse what cannot be done before anything changes.
    if req.listen_port == Some(0) {
        return Err(UapiError::invalid(
            "listen_port: wgdp listens on a fixed port; 0 (pick any) cannot be served",
        ));
    }
    if matches!(req.private_key, Some(SecretUpdate::Clear)) {
        return Err(UapiError::invalid(
            "private_key: wgdp cannot run without a private key",
        ));
    }
    if peers_after(plane, req) > max_peers {
        return Err(UapiError::new(
            libc::ENOSPC,
            format!("wgdp holds at most {max_peers} peers"),
        ));
    }

    if let Some(SecretUpdate::Set(k)) = &req.private_key {
        if k.as_bytes() != plane.private_key().as_bytes() {
            plane.set_private_key(k.as_bytes());
        }
    }
    if let Some(port) = req.listen_port {
        let mut t = (*plane.current_tables()).clone();
        if t.listen_port != port {
            t.listen_port = port;
            plane.set_port_tables(t);
        }
    }
    let own = plane.public_key();
    // Peers that `replace_peers` removed in wireguard-go and that a block of this
    // request makes anew: here they stay, with their sessions, and count as absent
    // until that block, which starts them from a blank configuration.
    let mut reborn: HashSet<[u8; 32]> = HashSet::new();
    if req.replace_peers {
        let relisted = relisted(req);
        let all: Vec<[u8; 32]> = plane.peer_specs().map(|s| s.public_key).collect();
        for k in all {
            if k != own && relisted.contains(&k) {
                reborn.insert(k);
            } else {
                plane.remove_peer(&k);
            }
        }
    }
    for c in &req.peers {
        // wireguard-go ignores a block about the device's own key.
        if c.public_key == own {
            continue;
        }
        if c.remove {
            plane.remove_peer(&c.public_key);
            continue;
        }
        let existing = if reborn.contains(&c.public_key) {
            None
        } else {
            plane.peer_spec(&c.public_key).cloned()
        };
        if existing.is_none() && c.update_only {
            continue;
        }
        let in_plane = existing.is_some() || reborn.remove(&c.public_key);
        let mut spec = existing.unwrap_or(PeerSpec {
            public_key: c.public_key,
            preshared_key: None,
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: None,
        });
        match &c.preshared_key {
            Some(SecretUpdate::Set(k)) => spec.preshared_key = Some(*k.as_bytes()),
            Some(SecretUpdate::Clear) => spec.preshared_key = None,
            None => {}
        }
        if let Some(e) = c.endpoint {
            spec.endpoint = Some(e);
        }
        if let Some(k) = c.persistent_keepalive {
            spec.persistent_keepalive = (k != 0).then_some(k);
        }
        if c.replace_allowed_ips {
            spec.allowed_ips.clear();
        }
        for change in &c.allowed_ips {
            match *change {
                AllowedIpChange::Add(addr, len) => {
                    // A network belongs to one peer: it moves here from any other.
                    take_from_others(plane, &c.public_key, (addr, len));
                    if !spec.allowed_ips.contains(&(addr, len)) {
                        spec.allowed_ips.push((addr, len));
                    }
                }
                AllowedIpChange::Remove(addr, len) => {
                    spec.allowed_ips.retain(|&p| p != (addr, len));
                }
            }
        }
        if in_plane {
            plane.update_peer(spec);
        } else {
            plane.add_peer(spec).map_err(|e| {
                // The count was checked above: what is left is a key that no handshake
                // can be made with (one of small order).
                let errno = if e.starts_with("no room") {
                    libc::ENOSPC
                } else {
                    libc::EINVAL
                };
                UapiError::new(errno, e)
            })?;
        }
    }
    Ok(())
}

/// How many peers the device has once `req` is applied. Costs a look-up per block of
/// the request, not a pass over the device's peers.
fn peers_after<B: PacketBuf, R: RngCore + CryptoRng>(
    plane: &ControlPlane<B, R>,
    req: &SetRequest,
) -> usize {
    // Whether each key the request names is a peer, after its blocks so far.
    let mut present: HashMap<[u8; 32], bool> = HashMap::new();
    let mut count = if req.replace_peers {
        0
    } else {
        plane.peer_count()
    };
    for c in &req.peers {
        let before = *present
            .entry(c.public_key)
            .or_insert_with(|| !req.replace_peers && plane.peer_spec(&c.public_key).is_some());
        let after = if c.remove {
            false
        } else {
            before || !c.update_only
        };
        match (before, after) {
            (false, true) => count += 1,
            (true, false) => count -= 1,
            _ => {}
        }
        present.insert(c.public_key, after);
    }
    count
}

/// The keys that a block of `req` would make anew after `replace_peers` (one that is
/// neither `remove` nor `update_only`), without a `remove` block for them anywhere in
/// it: such a peer, when it exists, keeps its sessions.
fn relisted(req: &SetRequest) -> HashSet<[u8; 32]> {
    let mut removed = HashSet::new();
    let mut made = HashSet::new();
    for c in &req.peers {
        if c.remove {
            removed.insert(c.public_key);
        } else if !c.update_only {
            made.insert(c.public_key);
        }
    }
    made.retain(|k| !removed.contains(k));
    made
}

fn take_from_others<B: PacketBuf, R: RngCore + CryptoRng>(
    plane: &mut ControlPlane<B, R>,
    owner: &[u8; 32],
    net: (std::net::IpAddr, u8),
) {
    let Some(loser) = plane
        .owner_of(net)
        .filter(|k| *k != owner)
        .and_then(|k| plane.peer_spec(k))
        .cloned()
    else {
        return;
    };
    let mut s = loser;
    s.allowed_ips.retain(|&p| p != net);
    plane.update_peer(s);
}
