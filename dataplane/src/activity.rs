//! What each peer sent and received, counted by every worker on its own and summed by
//! control.
//!
//! Contract:
//! - Every thread that moves a peer's packets (each worker, and control for the packets
//!   it encrypts itself) takes one [`Table`] with [`Activity::writer`] and is its only
//!   writer. A write is a load and a store of the thread's own cache lines: no locked
//!   instruction, and no line that another thread writes, whatever the number of
//!   workers that carry one peer.
//! - Control reads a peer's [`Totals`] with [`Activity::total`]: counts summed, times
//!   the latest of all writers. A reader may see one writer's packets before its bytes;
//!   the next read is exact.
//! - A table is indexed by peer id, in chunks of [`CHUNK`] peers allocated by the writer
//!   on its first packet for a peer of the chunk: a worker that never carries a peer of a
//!   chunk holds no memory for it. Ids are reused after a peer is removed, so the counts
//!   of an id outlive its peer; control takes a [`Totals`] when it adds a peer and
//!   reports what came after it ([`Totals::since`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Peers per chunk of a table: 256 x 64 bytes, 16 KB.
pub const CHUNK: usize = 256;

/// One direction of one peer as one writer saw it.
#[derive(Default, Debug)]
struct Direction {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// Last authenticated packet of any kind, keepalives included (`clock::now_ns`).
    last: AtomicU64,
    /// Last packet that carried data.
    last_data: AtomicU64,
}

impl Direction {
    /// Only the table's writer calls this, so a plain load and store is an exact add.
    #[inline]
    fn add(&self, packets: u64, bytes: u64, data: bool, now: u64) {
        let add = |a: &AtomicU64, n: u64| a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        add(&self.packets, packets);
        add(&self.bytes, bytes);
        self.last.store(now, Ordering::Relaxed);
        if data {
            self.last_data.store(now, Ordering::Relaxed);
        }
    }

    fn read(&self) -> Count {
        Count {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            last: self.last.load(Ordering::Relaxed),
            last_data: self.last_data.load(Ordering::Relaxed),
        }
    }
}

/// Both directions of one peer: one cache line.
#[derive(Default, Debug)]
#[repr(align(64))]
struct Line {
    rx: Direction,
    tx: Direction,
}

/// One writer's counts of every peer.
#[derive(Debug)]
pub struct Table {
    chunks: Box<[OnceLock<Box<[Line]>>]>,
}

impl Table {
    fn new(max_peers: usize) -> Self {
        Table {
            chunks: (0..max_peers.div_ceil(CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    #[inline]
    fn line(&self, peer: u32) -> Option<&Line> {
        let (chunk, at) = (peer as usize / CHUNK, peer as usize % CHUNK);
        let lines = self
            .chunks
            .get(chunk)?
            .get_or_init(|| (0..CHUNK).map(|_| Line::default()).collect());
        Some(&lines[at])
    }

    /// Packets received from `peer` and authenticated. A peer id beyond the table (which
    /// `Sessions` never hands out) is not counted.
    #[inline]
    pub fn add_rx(&self, peer: u32, packets: u64, bytes: u64, data: bool, now: u64) {
        if let Some(l) = self.line(peer) {
            l.rx.add(packets, bytes, data, now);
        }
    }

    /// Packets sent to `peer`.
    #[inline]
    pub fn add_tx(&self, peer: u32, packets: u64, bytes: u64, data: bool, now: u64) {
        if let Some(l) = self.line(peer) {
            l.tx.add(packets, bytes, data, now);
        }
    }

    fn read(&self, peer: u32) -> Option<(Count, Count)> {
        let (chunk, at) = (peer as usize / CHUNK, peer as usize % CHUNK);
        let l = &self.chunks.get(chunk)?.get()?[at];
        Some((l.rx.read(), l.tx.read()))
    }
}

/// One direction's figures.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
    /// `clock::now_ns` of the last authenticated packet (0: none).
    pub last: u64,
    /// `clock::now_ns` of the last packet that carried data (0: none).
    pub last_data: u64,
}

impl Count {
    fn merge(&mut self, o: Count) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.last = self.last.max(o.last);
        self.last_data = self.last_data.max(o.last_data);
    }

    fn since(self, base: Count) -> Count {
        let after = |t: u64, b: u64| if t > b { t } else { 0 };
        Count {
            packets: self.packets - base.packets,
            bytes: self.bytes - base.bytes,
            last: after(self.last, base.last),
            last_data: after(self.last_data, base.last_data),
        }
    }
}

/// A peer's figures summed over every writer.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub rx: Count,
    pub tx: Count,
}

impl Totals {
    /// What happened after `base` was read (the counts of an earlier peer with the same
    /// id are left out).
    pub fn since(self, base: Totals) -> Totals {
        Totals {
            rx: self.rx.since(base.rx),
            tx: self.tx.since(base.tx),
        }
    }
}

/// The tables of every writer.
#[derive(Debug)]
pub struct Activity {
    max_peers: usize,
    writers: Mutex<Vec<Arc<Table>>>,
}

impl Activity {
    /// For peer ids below `max_peers`.
    pub fn new(max_peers: usize) -> Self {
        Activity {
            max_peers,
            writers: Mutex::new(Vec::new()),
        }
    }

    /// A table for a new writer; it lives as long as `Activity` (a stopped worker's counts
    /// stay in the totals).
    pub fn writer(&self) -> Arc<Table> {
        let t = Arc::new(Table::new(self.max_peers));
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(t.clone());
        t
    }

    /// `peer`'s figures over every writer.
    pub fn total(&self, peer: u32) -> Totals {
        let mut sum = Totals::default();
        for t in self
            .writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if let Some((rx, tx)) = t.read(peer) {
                sum.rx.merge(rx);
                sum.tx.merge(tx);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_are_summed() {
        let a = Activity::new(1000);
        let (w1, w2) = (a.writer(), a.writer());
        w1.add_rx(7, 3, 300, true, 10);
        w2.add_rx(7, 2, 200, false, 20);
        w2.add_tx(7, 5, 500, true, 15);
        let t = a.total(7);
        assert_eq!(
            t.rx,
            Count {
                packets: 5,
                bytes: 500,
                last: 20,
                last_data: 10
            }
        );
        assert_eq!(t.tx.packets, 5);
        assert_eq!(t.tx.last_data, 15);
        assert_eq!(a.total(8), Totals::default());
    }

    #[test]
    fn chunks_are_allocated_on_first_use() {
        let a = Activity::new(3 * CHUNK);
        let w = a.writer();
        w.add_tx(CHUNK as u32 + 1, 1, 64, true, 1);
        let used = w.chunks.iter().filter(|c| c.get().is_some()).count();
        assert_eq!(used, 1);
        // Beyond the table: not counted, no panic.
        w.add_tx(3 * CHUNK as u32, 1, 64, true, 1);
        assert_eq!(a.total(3 * CHUNK as u32), Totals::default());
    }

    #[test]
    fn a_reused_id_starts_from_its_base() {
        let a = Activity::new(16);
        let w = a.writer();
        w.add_rx(3, 10, 1000, true, 50);
        let base = a.total(3);
        assert_eq!(a.total(3).since(base), Totals::default());
        w.add_rx(3, 1, 32, false, 60);
        let t = a.total(3).since(base);
        assert_eq!(
            (t.rx.packets, t.rx.bytes, t.rx.last, t.rx.last_data),
            (1, 32, 60, 0)
        );
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let a = Activity::new(CHUNK * 2);
        std::thread::scope(|s| {
            for _ in 0..3 {
                let w = a.writer();
                s.spawn(move || {
                    for i in 0..10_000u64 {
                        w.add_rx((i % 300) as u32, 1, 100, true, i + 1);
                    }
                });
            }
        });
        let packets: u64 = (0..300).map(|p| a.total(p).rx.packets).sum();
        assert_eq!(packets, 30_000);
    }
}
