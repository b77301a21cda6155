//! An answer on its way to one client: the bytes not yet sent and, for a get whose peers
//! are listed piece by piece (a [`Handler`]), where the list goes on.
//!
//! Contract: a whole answer ([`Answer::whole`]) is the bytes [`encode_response`] made.
//! A streamed one ([`Answer::streamed`]) starts with the device lines; each
//! [`Answer::fill`] asks the handler for the next peers, at most `max_peers` of them
//! and no more once `max_unsent` bytes wait to be sent, and appends them; the fill that
//! finds no peer left appends `errno=0` and the blank line. The bytes are those
//! [`encode_response`] gives for the same device and peers.
//!
//! Memory: the buffer holds what is unsent, compacted when it needs room, so a client
//! that reads slowly costs at most `max_unsent` bytes plus the longest peer, twice over
//! at worst (the buffer doubles when it grows), whatever the number of peers.
//!
//! Key hygiene: the buffer is [`Zeroizing`] and never reallocated in place: bytes moved
//! forward by a compaction are wiped where they were, and a buffer too small is copied
//! into a larger one and the old one wiped as it is dropped.
//!
//! [`encode_response`]: super::protocol::encode_response

use super::protocol::{
    peer_bound, write_interface, write_peer, UapiInterface, DEVICE_BOUND, GET_END,
};
use super::server::Handler;
use zeroize::{Zeroize, Zeroizing};

/// What a streamed answer starts with room for; it grows from there as needed.
const FIRST_CAPACITY: usize = 16 * 1024;

#[derive(Default)]
pub(crate) struct Answer {
    buf: Zeroizing<Vec<u8>>,
    /// `buf[sent..]` is still to be sent.
    sent: usize,
    /// For a streamed get whose peers are not all listed yet: the handler's cursor of
    /// the next ones.
    next_peers: Option<u64>,
}

impl Answer {
    /// An answer encoded whole.
    pub fn whole(bytes: Zeroizing<Vec<u8>>) -> Answer {
        Answer {
            buf: bytes,
            sent: 0,
            next_peers: None,
        }
    }

    /// A get answer that starts with `interface`'s lines; its peers come with
    /// [`Answer::fill`].
    pub fn streamed(interface: &UapiInterface) -> Answer {
        let mut buf = Zeroizing::new(Vec::with_capacity(FIRST_CAPACITY));
        write_interface(
            &mut buf,
            interface.private_key.as_ref(),
            interface.listen_port,
        );
        Answer {
            buf,
            sent: 0,
            next_peers: Some(0),
        }
    }

    /// The bytes still to send.
    pub fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// `n` more bytes of [`Answer::unsent`] are sent.
    pub fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.buf.len());
    }

    /// Whether peers remain to be listed ([`Answer::fill`]).
    pub fn streaming(&self) -> bool {
        self.next_peers.is_some()
    }

    /// Whether something is left to send now or to list later.
    pub fn pending(&self) -> bool {
        self.sent < self.buf.len() || self.streaming()
    }

    /// Whether there is no answer at all (none since the last was dropped).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.streaming()
    }

    /// The memory the answer holds, in bytes.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Lists the next peers of a streamed get: at most `max_peers` (at least one), and
    /// none after the one that brings the unsent bytes to `max_unsent`. Ends the answer
    /// when the handler has no peer left. Returns how many peers were listed.
    pub fn fill(
        &mut self,
        handler: &mut dyn Handler,
        max_peers: usize,
        max_unsent: usize,
    ) -> usize {
        let Some(cursor) = self.next_peers else {
            return 0;
        };
        let max_peers = max_peers.max(1);
        let (buf, sent) = (&mut self.buf, &mut self.sent);
        let mut listed = 0;
        let next = handler.peers(cursor, &mut |peer| {
            reserve(buf, sent, peer_bound(peer));
            write_peer(buf, peer);
            listed += 1;
            listed < max_peers && buf.len() - *sent < max_unsent
        });
        self.next_peers = next;
        if next.is_none() {
            reserve(&mut self.buf, &mut self.sent, DEVICE_BOUND);
            self.buf.extend_from_slice(GET_END);
        }
        listed
    }
}

/// Makes room for `extra` more bytes in `buf` without reallocating it in place: first by
/// dropping the sent bytes, then by moving to a larger buffer.
fn reserve(buf: &mut Zeroizing<Vec<u8>>, sent: &mut usize, extra: usize) {
    if buf.capacity() - buf.len() >= extra {
        return;
    }
    if *sent > 0 {
        let unsent = buf.len() - *sent;
        buf.copy_within(*sent.., 0);
        buf[unsent..].zeroize();
        buf.truncate(unsent);
        *sent = 0;
        if buf.capacity() - buf.len() >= extra {
            return;
        }
    }
    let capacity = (buf.len() + extra).max(2 * buf.capacity());
    let mut larger = Zeroizing::new(Vec::with_capacity(capacity));
    larger.extend_from_slice(buf);
    // The old buffer is wiped as it is dropped.
    *buf = larger;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Key;
    use crate::uapi::protocol::{encode_response, Response, UapiDevice, UapiPeer};
    use crate::uapi::SetRequest;
    use crate::uapi::UapiError;
    use std::net::IpAddr;
    use std::time::{Duration, UNIX_EPOCH};

    fn peer(i: u32, ips: usize) -> UapiPeer {
        let mut key = [0; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        UapiPeer {
            public_key: key,
            preshared_key: (i % 3 == 1).then(|| Key::from_bytes([i as u8; 32])),
            endpoint: (i % 2 == 1).then(|| ([198, 19, (i >> 8) as u8, i as u8], 51820).into()),
            last_handshake: Some(UNIX_EPOCH + Duration::new(1_700_000_000 + u64::from(i), i)),
            rx_bytes: u64::from(i) * 1000,
            tx_bytes: u64::from(i) * 7,
            persistent_keepalive: (i % 5 == 1).then_some(25),
            allowed_ips: (0..ips)
                .map(|k| (IpAddr::from([10, (k >> 8) as u8, k as u8, 0]), 24))
                .collect(),
        }
    }

    /// Peers in a vector; the cursor is an index. Counts the peers it gives per fill.
    struct Listed {
        peers: Vec<UapiPeer>,
        given: Vec<usize>,
    }

    impl Handler for Listed {
        fn set(&mut self, _: SetRequest) -> Result<(), UapiError> {
            unreachable!()
        }
        fn interface(&mut self) -> UapiInterface {
            unreachable!()
        }
        fn peers(&mut self, cursor: u64, each: &mut dyn FnMut(&UapiPeer) -> bool) -> Option<u64> {
            let mut given = 0;
            let mut i = cursor as usize;
            let next = loop {
                let Some(p) = self.peers.get(i) else {
                    break None;
                };
                given += 1;
                i += 1;
                if !each(p) {
                    break Some(i as u64);
                }
            };
            self.given.push(given);
            next
        }
    }

    fn device(peers: &[UapiPeer]) -> UapiDevice {
        UapiDevice {
            private_key: Some(Key::from_bytes([7; 32])),
            listen_port: 51820,
            peers: peers.to_vec(),
        }
    }

    /// Fills and sends everything, `take` bytes after each fill.
    fn drain(
        answer: &mut Answer,
        handler: &mut Listed,
        max_peers: usize,
        max_unsent: usize,
        take: usize,
    ) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut most_held = 0;
        while answer.pending() {
            if answer.unsent().len() < max_unsent {
                answer.fill(handler, max_peers, max_unsent);
            }
            most_held = most_held.max(answer.held());
            let n = answer.unsent().len().min(take);
            out.extend_from_slice(&answer.unsent()[..n]);
            answer.sent(n);
        }
        (out, most_held)
    }

    #[test]
    fn a_streamed_answer_is_the_whole_one_in_pieces() {
        let peers: Vec<UapiPeer> = (0..1000).map(|i| peer(i, (i % 4) as usize)).collect();
        let whole = encode_response(&Response::Device(device(&peers)));
        for (max_peers, max_unsent, take) in [
            (1, 1, 1000),
            (64, 4096, 1000),
            (1000, 1 << 20, usize::MAX),
            (7, 100_000, 50),
        ] {
            let mut handler = Listed {
                peers: peers.clone(),
                given: Vec::new(),
            };
            let d = device(&[]);
            let mut answer = Answer::streamed(&UapiInterface {
                private_key: d.private_key.clone(),
                listen_port: d.listen_port,
            });
            let (out, _) = drain(&mut answer, &mut handler, max_peers, max_unsent, take);
            assert_eq!(out, *whole, "{max_peers} {max_unsent} {take}");
            assert!(
                handler.given.iter().all(|&n| n <= max_peers),
                "{:?}",
                handler.given
            );
        }
        // No peers at all.
        let mut answer = Answer::streamed(&UapiInterface::default());
        let mut handler = Listed {
            peers: Vec::new(),
            given: Vec::new(),
        };
        let (out, _) = drain(&mut answer, &mut handler, 10, 10, 10);
        assert_eq!(out, b"errno=0\n\n");
    }

    #[test]
    fn a_slow_reader_holds_bounded_memory() {
        let peers: Vec<UapiPeer> = (0..20_000).map(|i| peer(i, 1)).collect();
        let mut handler = Listed {
            peers,
            given: Vec::new(),
        };
        let mut answer = Answer::streamed(&UapiInterface::default());
        let max_unsent = 64 * 1024;
        let (out, most_held) = drain(&mut answer, &mut handler, 1024, max_unsent, 1000);
        assert!(out.ends_with(b"errno=0\n\n"));
        assert!(out.len() > 4 << 20, "{}", out.len());
        assert!(most_held <= 2 * (max_unsent + 1024), "{most_held}");
        // A peer far longer than the buffer makes it grow; it fits whole.
        let mut handler = Listed {
            peers: vec![peer(1, 10_000), peer(2, 1)],
            given: Vec::new(),
        };
        let mut answer = Answer::streamed(&UapiInterface::default());
        let (out, _) = drain(&mut answer, &mut handler, 1, 1024, 100);
        let whole = encode_response(&Response::Device(UapiDevice {
            peers: handler.peers.clone(),
            ..UapiDevice::default()
        }));
        assert_eq!(out, *whole);
    }
}
