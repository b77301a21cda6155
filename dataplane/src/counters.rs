//! Per-worker counters: one cache-aligned block per worker, written only by that worker,
//! summed by control (metrics, `wg show`, tests).
//!
//! Contract: every packet a stage drops is counted under exactly one named reason of
//! that stage; every packet handed to the control thread is counted under its reason.
//! A writer is single-threaded (its worker), so `Counter::add` is a plain load and store
//! (no locked instruction); readers on other threads see a value at most one burst old.

use std::sync::atomic::{AtomicU64, Ordering};

/// A counter with one writer and any number of readers.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        let v = self.0.load(Ordering::Relaxed);
        self.0.store(v.wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declares a reason enum and a matching counter block (the control thread declares
/// its own counters with it too).
#[macro_export]
macro_rules! reasons {
    ($(#[$doc:meta])* $enum:ident, $block:ident { $($(#[$vdoc:meta])* $variant:ident = $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $enum { $($(#[$vdoc])* $variant,)* }

        impl $enum {
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)*];
            /// The reason's name as it appears in metrics.
            pub fn name(self) -> &'static str {
                match self { $($enum::$variant => $name,)* }
            }
        }

        #[derive(Default)]
        pub struct $block {
            counts: [$crate::counters::Counter; [$($name,)*].len()],
        }

        impl std::fmt::Debug for $block {
            /// The reasons counted so far, by name.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_map()
                    .entries(self.snapshot().filter(|(_, v)| *v > 0))
                    .finish()
            }
        }

        impl $block {
            #[inline]
            pub fn add(&self, reason: $enum, n: u64) {
                self.counts[reason as usize].add(n)
            }
            #[inline]
            pub fn inc(&self, reason: $enum) {
                self.add(reason, 1)
            }
            pub fn get(&self, reason: $enum) -> u64 {
                self.counts[reason as usize].get()
            }
            pub fn total(&self) -> u64 {
                self.counts.iter().map($crate::counters::Counter::get).sum()
            }
            /// (name, value) of every reason, for metrics.
            pub fn snapshot(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                $enum::ALL.iter().map(move |r| (r.name(), self.get(*r)))
            }
        }
    };
}

reasons! {
    /// Why classify dropped a frame.
    ClassifyDrop, ClassifyDrops {
        /// Shorter than its headers claim, or a header that does not parse.
        Malformed = "malformed",
        /// A chained mbuf; wgdp's pools hold a whole frame per mbuf.
        MultiSegment = "multi_segment",
        /// Unicast to another MAC address.
        OtherHost = "other_host",
        /// An EtherType wgdp does not handle (VLAN tags, LLDP, ...).
        UnknownEtherType = "unknown_ethertype",
        /// IPv4 header checksum wrong.
        BadChecksum = "bad_checksum",
        /// Outside port: IP packet not addressed to one of our outside addresses.
        NotLocal = "not_local",
        /// A fragment of a packet to our WireGuard port (WireGuard never fragments).
        Fragment = "fragment",
        /// WireGuard port: not a known message type or a wrong length for its type.
        BadMessage = "bad_message",
    }
}

reasons! {
    /// Why decrypt dropped a transport message.
    DecryptDrop, DecryptDrops {
        /// Too short to hold a header and a tag.
        Truncated = "truncated",
        /// Receiver index of no current keypair.
        UnknownIndex = "unknown_index",
        /// Keypair older than Reject-After-Time.
        Expired = "expired",
        /// Counter already seen, or below the replay window.
        Replay = "replay",
        /// Authentication failed.
        BadTag = "bad_tag",
        /// Plaintext is not an IPv4 or IPv6 packet, or its length field disagrees.
        BadInner = "bad_inner",
        /// Marked congestion-experienced outside, but its inner packet is not
        /// ECN-capable and could not carry the mark on (RFC 6040 section 4.2).
        CeOnNotEct = "ce_on_not_ect",
    }
}

reasons! {
    /// Why route dropped a plaintext packet.
    RouteDrop, RouteDrops {
        /// Decrypted packet whose source is not in its peer's allowed IPs.
        SourceNotAllowed = "source_not_allowed",
        /// No peer and no inside route for the destination.
        NoRoute = "no_route",
        /// From a peer, back to the same peer.
        Loop = "loop",
        /// Martian: multicast, broadcast or unspecified where a unicast is required.
        BadAddress = "bad_address",
        /// Not an IPv4 or IPv6 header that parses (from the inside: classify checked
        /// it already; from a peer: decrypt checked its length).
        Malformed = "malformed",
        /// No headroom left for the inside Ethernet header.
        NoHeadroom = "no_headroom",
    }
}

reasons! {
    /// Why encrypt dropped a packet.
    EncryptDrop, EncryptDrops {
        /// Peer has no endpoint yet (no configured one and none learned).
        NoEndpoint = "no_endpoint",
        /// No outside address of the endpoint's family.
        NoSourceAddress = "no_source_address",
        /// Not enough head- or tailroom for the outer headers, padding and tag.
        NoRoom = "no_room",
        /// No outside route to the peer's endpoint.
        NoOuterRoute = "no_outer_route",
        /// The AEAD backend did not seal the packet (a crypto device's error or
        /// timeout).
        SealFailed = "seal_failed",
    }
}

reasons! {
    /// Why a super-packet from a host was dropped instead of cut (docs/architecture.md,
    /// "What a host hands the ports").
    OffloadDrop, OffloadDrops {
        /// No buffers for the pieces in the packet pool.
        NoBuffers = "no_buffers",
    }
}

reasons! {
    /// Work done on what a host left to its network card (not drops).
    OffloadEvent, OffloadEvents {
        /// A TCP/UDP checksum the sender left partial, completed.
        ChecksumCompleted = "checksum_completed",
        /// A super-packet (TSO, GSO, GRO) cut into packets that fit.
        SuperpacketCut = "superpacket_cut",
        /// Packets made by cutting super-packets.
        SuperpacketPieces = "superpacket_pieces",
    }
}

reasons! {
    /// AEAD work shared between workers (module `spread`; not drops).
    SpreadEvent, SpreadEvents {
        /// Packets this worker handed to another worker to open.
        HandedOpen = "handed_open",
        /// Packets this worker handed to another worker to seal.
        HandedSeal = "handed_seal",
        /// Packets of other workers this worker opened.
        HelpedOpen = "helped_open",
        /// Packets of other workers this worker sealed.
        HelpedSeal = "helped_seal",
        /// Packets meant for a helper whose queue was full, done by this worker at once.
        HelperFull = "helper_full",
    }
}

reasons! {
    /// Why a frame did not leave.
    TxDrop, TxDrops {
        /// The port's TX queue stayed full.
        QueueFull = "queue_full",
        /// The ring to the control thread was full.
        ControlRingFull = "control_ring_full",
    }
}

reasons! {
    /// Why a packet went to the control thread instead of on.
    Punt, Punts {
        /// Handshake initiation, response or cookie reply.
        Handshake = "handshake",
        /// ARP.
        Arp = "arp",
        /// Neighbor discovery (solicitation, advertisement, router messages).
        Nd = "nd",
        /// Addressed to one of our own addresses, not WireGuard (an Ethernet frame).
        Local = "local",
        /// Through the tunnel to one of our own addresses (an IP packet, its peer in
        /// meta).
        TunnelLocal = "tunnel_local",
        /// For a peer with no usable keypair: control queues it and starts a handshake.
        NoSession = "no_session",
        /// Next hop's link-layer address unknown: control resolves it and sends.
        NoNeighbor = "no_neighbor",
        /// Needs an ICMP error (too big, time exceeded) that control builds.
        IcmpError = "icmp_error",
        /// IPv4 for a peer over the tunnel MTU with DF clear: control fragments it.
        Fragment = "fragment",
    }
}

impl Punt {
    pub fn from_u8(v: u8) -> Option<Punt> {
        Punt::ALL.get(v as usize).copied()
    }
}

/// Traffic that is not a drop.
#[derive(Default, Debug)]
pub struct Traffic {
    pub rx_outside: Counter,
    pub rx_inside: Counter,
    pub tx_outside: Counter,
    pub tx_inside: Counter,
    pub decrypted: Counter,
    pub encrypted: Counter,
    pub keepalives_rx: Counter,
    /// Frames control asked this worker to send.
    pub from_control: Counter,
    pub vectors: Counter,
    /// Packets in all vectors (packets per vector = this / vectors).
    pub vector_packets: Counter,
    /// Polls that found work / all polls (busy share).
    pub busy_polls: Counter,
    pub polls: Counter,
}

/// Everything one worker counts.
#[derive(Default, Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub traffic: Traffic,
    pub runtime: Runtime,
    pub classify: ClassifyDrops,
    pub decrypt: DecryptDrops,
    pub route: RouteDrops,
    pub encrypt: EncryptDrops,
    pub offload: OffloadDrops,
    pub tx: TxDrops,
    pub punt: Punts,
    pub offload_events: OffloadEvents,
    pub spread: SpreadEvents,
}

impl WorkerCounters {
    /// Every drop of every stage.
    pub fn drops(&self) -> u64 {
        self.classify.total()
            + self.decrypt.total()
            + self.route.total()
            + self.encrypt.total()
            + self.offload.total()
            + self.tx.total()
    }
}

/// A step of the worker's loop, for runtime accounting (docs/architecture.md, "Runtime
/// accounting"). `DecryptCrypto` and `EncryptCrypto` are the crypto backend's calls
/// within `Decrypt` and `Encrypt`, whose clocks include them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// `rx_burst` on both ports and the dequeue from the control thread's ring, once per
    /// poll, empty polls included.
    Rx,
    Classify,
    Decrypt,
    DecryptCrypto,
    Offload,
    Route,
    Encrypt,
    EncryptCrypto,
    /// Sorting the frames from the control thread's ring to their ports.
    Control,
    /// `tx_burst` on both ports and the hand-over to the control thread.
    Tx,
}

impl Stage {
    pub const ALL: &'static [Stage] = &[
        Stage::Rx,
        Stage::Classify,
        Stage::Decrypt,
        Stage::DecryptCrypto,
        Stage::Offload,
        Stage::Route,
        Stage::Encrypt,
        Stage::EncryptCrypto,
        Stage::Control,
        Stage::Tx,
    ];

    /// The stage's name in metrics, telemetry and `wgdp runtime`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Rx => "rx",
            Stage::Classify => "classify",
            Stage::Decrypt => "decrypt",
            Stage::DecryptCrypto => "decrypt_crypto",
            Stage::Offload => "offload",
            Stage::Route => "route",
            Stage::Encrypt => "encrypt",
            Stage::EncryptCrypto => "encrypt_crypto",
            Stage::Control => "control",
            Stage::Tx => "tx",
        }
    }

    /// Part of another stage's clocks (not to be added to the busy total).
    pub fn is_share(self) -> bool {
        matches!(self, Stage::DecryptCrypto | Stage::EncryptCrypto)
    }
}

/// What one stage did: calls (for `rx`, empty polls too), vectors (calls with at least
/// one packet), packets and TSC clocks.
#[derive(Default, Debug)]
pub struct StageCounters {
    pub calls: Counter,
    pub vectors: Counter,
    pub packets: Counter,
    pub clocks: Counter,
}

/// The worker's runtime accounting, as VPP's `show runtime`: one clock read per stage
/// per vector, never per packet.
#[derive(Default, Debug)]
pub struct Runtime {
    stages: [StageCounters; Stage::ALL.len()],
}

impl Runtime {
    #[inline]
    pub fn record(&self, stage: Stage, packets: usize, clocks: u64) {
        let s = &self.stages[stage as usize];
        s.calls.inc();
        if packets > 0 {
            s.vectors.inc();
            s.packets.add(packets as u64);
        }
        s.clocks.add(clocks);
    }

    pub fn get(&self, stage: Stage) -> &StageCounters {
        &self.stages[stage as usize]
    }

    /// Runs `f` and records its clocks under `stage` for `packets` packets (nothing
    /// for an empty batch).
    #[inline]
    pub fn timed<R>(&self, stage: Stage, packets: usize, f: impl FnOnce() -> R) -> R {
        let t0 = crate::clock::tsc();
        let r = f();
        if packets > 0 {
            self.record(stage, packets, crate::clock::tsc().wrapping_sub(t0));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_reasons_count_separately() {
        let c = WorkerCounters::default();
        c.decrypt.inc(DecryptDrop::Replay);
        c.decrypt.add(DecryptDrop::BadTag, 3);
        assert_eq!(c.decrypt.get(DecryptDrop::Replay), 1);
        assert_eq!(c.decrypt.get(DecryptDrop::BadTag), 3);
        assert_eq!(c.drops(), 4);
        let names: Vec<_> = c.decrypt.snapshot().filter(|(_, v)| *v > 0).collect();
        assert_eq!(names, vec![("replay", 1), ("bad_tag", 3)]);
        assert_eq!(Punt::from_u8(Punt::NoSession as u8), Some(Punt::NoSession));
    }
}
