//! The control thread's counters, declared like the workers' (`dataplane::counters`):
//! what it did, by event, and every packet or message it dropped, under one reason that
//! says why. Written only by the control thread; metrics read them as
//! `wgdp_control_events_total{event}` and `wgdp_control_drops_total{reason}`.

use std::collections::HashMap;

dataplane::reasons! {
    /// What the control thread did.
    ControlEvent, ControlEvents {
        /// Handshake initiations sent (first attempts and retries).
        InitiationsSent = "initiations_sent",
        /// Handshake responses sent.
        ResponsesSent = "responses_sent",
        /// Handshakes completed, as initiator or responder.
        HandshakesCompleted = "handshakes_completed",
        /// Handshake attempts abandoned after Rekey-Attempt-Time (90 s).
        HandshakeTimeouts = "handshake_timeouts",
        /// Keepalives sent (passive, persistent, or confirming a new keypair).
        KeepalivesSent = "keepalives_sent",
        /// Cookie replies sent to handshake messages without a valid mac2 under load.
        CookieRepliesSent = "cookie_replies_sent",
        /// Handshake messages handled while under load.
        UnderLoad = "under_load",
        /// ICMP errors sent (time exceeded, too big).
        IcmpSent = "icmp_sent",
        /// IPv4 packets over the tunnel MTU (DF clear) split into fragments.
        Fragmented = "fragmented",
        /// Keypairs retired after three times Reject-After-Time.
        KeypairsExpired = "keypairs_expired",
    }
}

dataplane::reasons! {
    /// Why the control thread dropped a packet or a handshake message.
    ControlDrop, ControlDrops {
        /// Handshake message: the handshake queue was full (a flood, or a control thread
        /// that cannot keep up).
        HandshakeQueueFull = "handshake_queue_full",
        /// Handshake message with a valid mac2 over its source's rate, under load.
        RateLimited = "rate_limited",
        /// Packet waiting for a handshake: its peer's queue (128) was full, the oldest
        /// went.
        StagedFull = "staged_full",
        /// Packets waiting for a handshake that gave up after Rekey-Attempt-Time.
        HandshakeGaveUp = "handshake_gave_up",
        /// Packets waiting for a peer that was removed.
        PeerRemoved = "peer_removed",
        /// Packet for a peer that is gone, or whose allowed IPs no longer hold its
        /// destination, since a worker routed it.
        PeerGone = "peer_gone",
        /// Waiting packet the encrypt stage would not take when the session came (no
        /// usable keypair after all).
        NoKeypair = "no_keypair",
        /// Packet for one of the gateway's own addresses without a control port.
        NoControlPort = "no_control_port",
        /// A packet that needed an ICMP error may not get one (an error about an error,
        /// a later fragment, a source that is no single host).
        IcmpSuppressed = "icmp_suppressed",
        /// ICMP error not sent because of the rate limit.
        IcmpRateLimited = "icmp_rate_limited",
        /// IPv4 packet over the tunnel MTU that could not be fragmented (IP options, no
        /// buffer).
        NotFragmentable = "not_fragmentable",
        /// The packet pool was empty.
        NoBuffer = "no_buffer",
        /// No address of ours to send from to that destination.
        NoSourceAddress = "no_source_address",
        /// No route (and so no next hop) to the destination.
        NoRoute = "no_route",
        /// A frame that did not fit its buffer, or input that did not parse.
        Malformed = "malformed",
        /// A worker handed over a packet without a reason control knows.
        UnknownPunt = "unknown_punt",
        /// A new keypair's receiver index was taken meanwhile; the handshake is lost
        /// and the peer makes another.
        IndexTaken = "index_taken",
        /// Handshake message whose Diffie-Hellman work (on the handshake threads)
        /// finished after its peer was removed or changed (preshared key, private key):
        /// dropped, the peer makes another.
        HandshakeOutdated = "handshake_outdated",
    }
}

/// Every counter of the control plane.
#[derive(Default, Debug)]
pub struct ControlStats {
    pub events: ControlEvents,
    pub drops: ControlDrops,
    /// Handshake messages refused, by `HandshakeError::name`.
    pub handshake_errors: HashMap<&'static str, u64>,
}

impl ControlStats {
    pub fn event(&self, e: ControlEvent) -> u64 {
        self.events.get(e)
    }

    pub fn drop_count(&self, d: ControlDrop) -> u64 {
        self.drops.get(d)
    }

    pub(super) fn count(&mut self, e: ControlEvent) {
        self.events.inc(e)
    }

    pub(super) fn dropped(&mut self, d: ControlDrop) {
        self.drops.inc(d)
    }

    pub(super) fn dropped_n(&mut self, d: ControlDrop, n: usize) {
        self.drops.add(d, n as u64)
    }
}
