//! The 64-bit note a packet carries (`PacketBuf::meta`), as a typed value: [`Note`].
//!
//! What the note says depends on where the packet is, so its kind is written into the
//! note itself (the top byte) and [`Note::decode`] gives back exactly what was written,
//! or `None` for a note of no kind (a fresh buffer's, or garbage):
//! - [`Note::Peer`]: decrypt -> route, the peer the packet came from; route -> encrypt
//!   and control -> encrypt, the peer to send it to.
//! - [`Note::Punt`]: worker -> control, why the packet was handed over, the side it
//!   arrived on (for `no_neighbor`, the side it is to leave by), and the peer where the
//!   reason concerns one.
//! - [`Note::Send`]: control -> worker, the side to send the frame out of.
//!
//! Layout: bits 0..8 the punt reason, 8..16 the side, 16..48 the peer id, 56..64 the
//! kind.

use crate::counters::Punt;
use crate::tables::Side;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    Peer(u32),
    Punt { reason: Punt, side: Side, peer: u32 },
    Send(Side),
}

const KIND_PEER: u64 = 1;
const KIND_PUNT: u64 = 2;
const KIND_SEND: u64 = 3;

#[inline]
fn side_of(bits: u64) -> Option<Side> {
    match (bits >> 8) as u8 {
        s if s == Side::Outside as u8 => Some(Side::Outside),
        s if s == Side::Inside as u8 => Some(Side::Inside),
        _ => None,
    }
}

impl Note {
    #[inline]
    pub fn encode(self) -> u64 {
        match self {
            Note::Peer(id) => KIND_PEER << 56 | (id as u64) << 16,
            Note::Punt { reason, side, peer } => {
                KIND_PUNT << 56 | (peer as u64) << 16 | (side as u64) << 8 | reason as u64
            }
            Note::Send(side) => KIND_SEND << 56 | (side as u64) << 8,
        }
    }

    #[inline]
    pub fn decode(bits: u64) -> Option<Note> {
        let peer = (bits >> 16) as u32;
        match bits >> 56 {
            KIND_PEER => Some(Note::Peer(peer)),
            KIND_PUNT => Some(Note::Punt {
                reason: Punt::from_u8(bits as u8)?,
                side: side_of(bits)?,
                peer,
            }),
            KIND_SEND => Some(Note::Send(side_of(bits)?)),
            _ => None,
        }
    }

    /// The peer of a `Peer` note.
    #[inline]
    pub fn peer(self) -> Option<u32> {
        match self {
            Note::Peer(id) => Some(id),
            _ => None,
        }
    }
}

/// The note of a packet handed to control.
#[inline]
pub fn punt(reason: Punt, side: Side, peer: u32) -> u64 {
    Note::Punt { reason, side, peer }.encode()
}

/// The reason of a punt note.
#[inline]
pub fn punt_reason(meta: u64) -> Option<Punt> {
    match Note::decode(meta)? {
        Note::Punt { reason, .. } => Some(reason),
        _ => None,
    }
}

/// The side of a punt or send note (`Outside` for any other note).
#[inline]
pub fn side(meta: u64) -> Side {
    match Note::decode(meta) {
        Some(Note::Punt { side, .. } | Note::Send(side)) => side,
        _ => Side::Outside,
    }
}

/// The peer of a punt or peer note (0 for any other note).
#[inline]
pub fn peer(meta: u64) -> u32 {
    match Note::decode(meta) {
        Some(Note::Punt { peer, .. } | Note::Peer(peer)) => peer,
        _ => 0,
    }
}

/// The note of a frame control wants sent out of `side`.
#[inline]
pub fn send_on(side: Side) -> u64 {
    Note::Send(side).encode()
}

/// The note of a packet for (or from) peer `id`.
#[inline]
pub fn for_peer(id: u32) -> u64 {
    Note::Peer(id).encode()
}

/// The peer of a `Peer` note; `None` for any other note.
#[inline]
pub fn peer_of(meta: u64) -> Option<u32> {
    Note::decode(meta).and_then(Note::peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_says_which_it_is() {
        let notes = [
            Note::Peer(0),
            Note::Peer(u32::MAX),
            Note::Punt {
                reason: Punt::NoSession,
                side: Side::Inside,
                peer: 0xdead_beef,
            },
            Note::Punt {
                reason: Punt::Handshake,
                side: Side::Outside,
                peer: 0,
            },
            Note::Send(Side::Outside),
            Note::Send(Side::Inside),
        ];
        for n in notes {
            assert_eq!(Note::decode(n.encode()), Some(n));
        }
        let m = punt(Punt::NoSession, Side::Inside, 0xdead_beef);
        assert_eq!(punt_reason(m), Some(Punt::NoSession));
        assert_eq!(side(m), Side::Inside);
        assert_eq!(peer(m), 0xdead_beef);
        assert_eq!(side(send_on(Side::Inside)), Side::Inside);
        assert_eq!(peer_of(for_peer(7)), Some(7));
        // A note of one kind is not read as another.
        assert_eq!(peer_of(send_on(Side::Inside)), None);
        assert_eq!(punt_reason(for_peer(3)), None);
        // Nothing written, or garbage: no kind.
        assert_eq!(Note::decode(0), None);
        assert_eq!(Note::decode(7), None);
        assert_eq!(Note::decode(u64::MAX), None);
    }
}
