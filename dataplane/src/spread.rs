//! One worker's AEAD work shared with the others: a busy tunnel on several cores.
//!
//! RSS keeps one outer flow, and so one peer's tunnel, on one RX queue; without help a
//! tunnel runs at the speed of one worker. Here a worker that cannot keep up (its
//! load, below) while another worker's queues are quiet cuts the AEAD jobs of a vector
//! into contiguous segments, keeps the first and hands the others to quiet workers, each
//! as a [`Task`]. The helper runs its own backend over the task at its next poll and
//! sends it back. The handing worker (the owner) keeps every packet of its vectors in the
//! stage's flight queue in arrival order and lets them out from the front only, so they
//! leave in the order they arrived, as with a crypto device (`decrypt` and `encrypt`,
//! `through_flight`). Only the AEAD moves: classify, the replay check and its recording,
//! nonce reservation, route and transmit stay with the owner, so a keypair's replay
//! window and nonces are written by one worker per vector as before, and nonces leave in
//! the order they were given.
//!
//! When it engages: a worker's load is the moving average (weight 1/8) of the packets it
//! received per poll, in 1/16 packets, published on a cache line of its own. An owner
//! shares a vector of at least [`MIN_JOBS`] jobs when its load is at least [`SATURATED`]
//! (its queues fill faster than it empties them: one peer alone fills it) and a worker
//! whose load is at most half its own exists. Workers that are all busy, as with many
//! peers spread by RSS, never share; what the many-peer case pays is reading the other
//! workers' loads once per vector of a busy worker.
//!
//! How much: the owner keeps a part of each shared vector that starts at half and
//! follows the helpers' pace (`Crew::collect`), and cuts the rest into equal segments,
//! at most one per `MIN_SEGMENT` jobs.
//!
//! Bounds: an owner has at most [`MAX_OUT`] tasks out per direction, and a helper's queue
//! holds [`QUEUE`] tasks; a task its helper cannot take is done by the owner at once and
//! comes back through the same path. A task goes back through a channel whose capacity
//! is the owner's bound, so giving it back never fails. A task dropped with its channel
//! frees its packets. [`Crew::outstanding`] counts the tasks out over all workers, so that
//! stopping workers keep serving each other until none is (`Worker::drain`).

use crate::buf::PacketBuf;
use crate::counters::{SpreadEvent, Stage, WorkerCounters};
use crate::crypto::{Backend, CryptoJob};
use crate::session::Keypair;
use dpdk_sys::AeadDirection;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// One packet per poll, in the units of a load.
const LOAD_ONE: u32 = 16;
/// The load from which a worker counts as unable to keep up: 64 packets per poll on
/// average (a quarter of a full vector).
pub const SATURATED: u32 = 64 * LOAD_ONE;
/// Fewest AEAD jobs in a vector worth cutting.
pub const MIN_JOBS: usize = 32;
/// Fewest jobs in a segment.
pub const MIN_SEGMENT: usize = 16;
/// Tasks one owner has out per direction.
pub const MAX_OUT: usize = 8;
/// Tasks waiting in one helper's queue.
pub const QUEUE: usize = 16;
/// The whole of a vector, in the units of the owner's part of it.
const KEEP_ONE: usize = 64;
/// The largest part an owner keeps: the helpers always get some, so that the owner
/// learns whether they have time to spare.
const KEEP_MOST: usize = KEEP_ONE * 3 / 4;

#[inline]
fn slot(dir: AeadDirection) -> usize {
    match dir {
        AeadDirection::Open => 0,
        AeadDirection::Seal => 1,
    }
}

/// A worker's load, alone on its cache line.
#[derive(Default)]
#[repr(align(64))]
struct Load(AtomicU32);

/// What the workers of one gateway share.
struct Board {
    loads: Box<[Load]>,
    /// Tasks handed out and not yet taken back, over all workers.
    outstanding: AtomicUsize,
}

/// A contiguous piece of a stage's vector whose AEAD another worker does.
pub struct Task<B> {
    pub dir: AeadDirection,
    owner: usize,
    /// The flight number of `pkts[0]` in the owner's stage.
    pub first: u64,
    /// The packets, in vector order; those without a job come back untouched.
    pub pkts: Vec<B>,
    pub keys: Vec<Arc<Keypair>>,
    /// The jobs, `pkt` counted from the start of `pkts`; `ok` is set when done.
    pub jobs: Vec<CryptoJob>,
}

/// What a task gives back to a place of its owner's flight.
pub enum Back<B> {
    /// The packet's buffer.
    Buffer(B),
    /// Its AEAD's result.
    Done(bool),
}

impl<B> Task<B> {
    /// Hand the task back to a flight whose first place is number `base`: each packet's
    /// buffer, then each job's result, as `put(place, what)`.
    pub fn give_back(&mut self, base: u64, mut put: impl FnMut(usize, Back<B>)) {
        let at = (self.first - base) as usize;
        for (i, p) in self.pkts.drain(..).enumerate() {
            put(at + i, Back::Buffer(p));
        }
        for job in &self.jobs {
            put(at + job.pkt as usize, Back::Done(job.ok));
        }
    }
}

/// One worker's end of the sharing: its queue of work from others, the tasks of its own
/// coming back, and the way to the others' queues.
pub struct Crew<B> {
    me: usize,
    enabled: bool,
    board: Arc<Board>,
    work: Receiver<Task<B>>,
    /// Own tasks coming back, per direction.
    done: [Receiver<Task<B>>; 2],
    work_to: Vec<SyncSender<Task<B>>>,
    done_to: Vec<[SyncSender<Task<B>>; 2]>,
    /// Tasks a busy helper could not take, done here at once, per direction.
    ready: [Vec<Task<B>>; 2],
    /// Tasks to reuse, so that sharing allocates nothing once warm.
    spare: Vec<Task<B>>,
    out: [usize; 2],
    /// The part of a shared vector this worker keeps, in 1/`KEEP_ONE`, per direction.
    keep: [usize; 2],
    /// Tasks handed out for the vector at hand, until `collect` has judged the helpers.
    handed_now: [Option<usize>; 2],
    load: u32,
    /// The helpers chosen for the vector at hand (`plan`), and its direction.
    chosen: Vec<usize>,
    planned: AeadDirection,
}

/// The crews of `workers` workers, worker `i`'s at position `i`.
pub fn crews<B: PacketBuf>(workers: usize) -> Vec<Crew<B>> {
    let board = Arc::new(Board {
        loads: (0..workers).map(|_| Load::default()).collect(),
        outstanding: AtomicUsize::new(0),
    });
    let (work_to, work): (Vec<_>, Vec<_>) = (0..workers).map(|_| sync_channel(QUEUE)).unzip();
    let (done_to, done): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| {
            let (open_to, open) = sync_channel(MAX_OUT);
            let (seal_to, seal) = sync_channel(MAX_OUT);
            ([open_to, seal_to], [open, seal])
        })
        .unzip();
    work.into_iter()
        .zip(done)
        .enumerate()
        .map(|(me, (work, done))| Crew {
            me,
            enabled: true,
            board: board.clone(),
            work,
            done,
            work_to: work_to.clone(),
            done_to: done_to.clone(),
            ready: [Vec::new(), Vec::new()],
            spare: Vec::new(),
            out: [0; 2],
            keep: [KEEP_ONE / 2; 2],
            handed_now: [None; 2],
            load: 0,
            chosen: Vec::with_capacity(workers),
            planned: AeadDirection::Open,
        })
        .collect()
}

impl<B: PacketBuf> Crew<B> {
    /// The crew of a worker that has no one to share with.
    pub fn solo() -> Crew<B> {
        crews(1).pop().expect("one crew")
    }

    /// Whether this worker hands work out (it serves others' work either way).
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Tasks handed out by any worker and not yet taken back.
    pub fn outstanding(&self) -> usize {
        self.board.outstanding.load(Ordering::Acquire)
    }

    /// Count a poll that received `packets` into this worker's load.
    #[inline]
    pub fn note_load(&mut self, packets: usize) {
        if self.work_to.len() < 2 {
            return;
        }
        let sample = (packets.min(1 << 16) as u32) * LOAD_ONE;
        let load = self.load - self.load / 8 + sample / 8;
        if load != self.load {
            self.load = load;
            self.board.loads[self.me].0.store(load, Ordering::Relaxed);
        }
    }

    /// Whether a vector of `jobs` jobs in direction `dir` is to be shared, choosing its
    /// helpers: quiet workers, at most one per `MIN_SEGMENT` jobs beyond the owner's
    /// own segment, and no more than the tasks still allowed out.
    pub fn plan(&mut self, dir: AeadDirection, jobs: usize) -> bool {
        self.chosen.clear();
        self.planned = dir;
        let n = self.work_to.len();
        let room = MAX_OUT - self.out[slot(dir)];
        if !self.enabled || n < 2 || jobs < MIN_JOBS || self.load < SATURATED || room == 0 {
            return false;
        }
        let most = (jobs / MIN_SEGMENT - 1).min(n - 1).min(room);
        for i in 1..n {
            let h = (self.me + i) % n;
            if self.board.loads[h].0.load(Ordering::Relaxed) * 2 <= self.load {
                self.chosen.push(h);
                if self.chosen.len() == most {
                    break;
                }
            }
        }
        !self.chosen.is_empty()
    }

    /// Hand out the vector `plan` chose helpers for: the owner keeps its part of the
    /// jobs (`keep`) from the front, the rest is cut into equal segments, at most one per
    /// `MIN_SEGMENT` jobs, and each goes with its packets (from its first job's packet up
    /// to the next segment's) to a helper, numbered from `first` by position in `pkts`.
    /// Returns how many leading jobs stay; their packets are what is left in `pkts`. Jobs
    /// past those are reported by [`Crew::collect`].
    pub fn share(
        &mut self,
        pkts: &mut Vec<B>,
        keys: &[Arc<Keypair>],
        jobs: &[CryptoJob],
        first: u64,
        backend: &mut Backend,
        c: &WorkerCounters,
    ) -> usize {
        let dir = self.planned;
        let d = slot(dir);
        let helpers = std::mem::take(&mut self.chosen);
        // The owner's part, then equal segments; the owner's takes the remainder.
        let rest = jobs.len() - jobs.len() * self.keep[d] / KEEP_ONE;
        let used = helpers.len().min(rest / MIN_SEGMENT).max(1);
        let per = rest / used;
        let kept = jobs.len() - per * used;
        let mut sent = 0;
        for (i, &h) in helpers[..used].iter().enumerate().rev() {
            let start = kept + i * per;
            let cut = jobs[start].pkt as usize;
            let mut task = self.spare.pop().unwrap_or_else(|| Task {
                dir,
                owner: self.me,
                first: 0,
                pkts: Vec::with_capacity(crate::worker::MAX_BURST),
                keys: Vec::new(),
                jobs: Vec::with_capacity(crate::worker::MAX_BURST),
            });
            task.dir = dir;
            task.first = first + cut as u64;
            task.pkts.extend(pkts.drain(cut..));
            task.keys.extend(keys.iter().cloned());
            task.jobs
                .extend(jobs[start..start + per].iter().map(|j| CryptoJob {
                    pkt: j.pkt - cut as u16,
                    ..*j
                }));
            let handed = match dir {
                AeadDirection::Open => SpreadEvent::HandedOpen,
                AeadDirection::Seal => SpreadEvent::HandedSeal,
            };
            match self.work_to[h].try_send(task) {
                Ok(()) => {
                    sent += 1;
                    self.out[d] += 1;
                    self.board.outstanding.fetch_add(1, Ordering::AcqRel);
                    c.spread.add(handed, per as u64);
                }
                Err(TrySendError::Full(mut task) | TrySendError::Disconnected(mut task)) => {
                    c.spread.add(SpreadEvent::HelperFull, per as u64);
                    run(backend, &mut task, c);
                    self.ready[d].push(task);
                }
            }
        }
        self.handed_now[d] = Some(sent);
        self.chosen = helpers;
        kept
    }

    /// Run the tasks other workers handed to this one and send them back; the number of
    /// packets they held.
    pub fn serve(&mut self, backend: &mut Backend, c: &WorkerCounters) -> usize {
        if self.work_to.len() < 2 {
            // Alone: nobody hands it work (an empty poll stays two queue reads).
            return 0;
        }
        let mut n = 0;
        while let Ok(mut task) = self.work.try_recv() {
            run(backend, &mut task, c);
            let helped = match task.dir {
                AeadDirection::Open => SpreadEvent::HelpedOpen,
                AeadDirection::Seal => SpreadEvent::HelpedSeal,
            };
            c.spread.add(helped, task.jobs.len() as u64);
            n += task.pkts.len();
            // The owner's bound keeps room in its channel; an owner that is gone takes
            // the task's packets with it (they are freed).
            let _ = self.done_to[task.owner][slot(task.dir)].try_send(task);
        }
        n
    }

    /// Give every task of direction `dir` that is back to `f`, which takes its packets
    /// (any it leaves are freed).
    ///
    /// After a vector was shared, this also moves the owner's part: tasks of earlier
    /// vectors still out mean the helpers are behind, so the owner keeps a little more
    /// of the next vector; all back means they had time to spare, so it keeps a little
    /// less. The part settles where a helper finishes its segment as the owner finishes
    /// the rest of its poll (at most `KEEP_MOST`, at least nothing).
    pub fn collect(&mut self, dir: AeadDirection, mut f: impl FnMut(&mut Task<B>)) {
        let d = slot(dir);
        let mut ready = std::mem::take(&mut self.ready[d]);
        for mut task in ready.drain(..) {
            f(&mut task);
            self.recycle(task);
        }
        self.ready[d] = ready;
        while self.out[d] > 0 {
            let Ok(mut task) = self.done[d].try_recv() else {
                break;
            };
            self.out[d] -= 1;
            self.board.outstanding.fetch_sub(1, Ordering::AcqRel);
            f(&mut task);
            self.recycle(task);
        }
        if let Some(handed) = self.handed_now[d].take() {
            self.keep[d] = if self.out[d] > handed {
                (self.keep[d] + 1).min(KEEP_MOST)
            } else {
                self.keep[d].saturating_sub(1)
            };
        }
    }

    fn recycle(&mut self, mut task: Task<B>) {
        B::free_all(&mut task.pkts);
        task.keys.clear();
        task.jobs.clear();
        self.spare.push(task);
    }
}

/// A task's AEAD on this worker's backend, its clocks counted as the stage's own.
fn run<B: PacketBuf>(backend: &mut Backend, task: &mut Task<B>, c: &WorkerCounters) {
    let dir = task.dir;
    let Task {
        pkts, keys, jobs, ..
    } = task;
    match dir {
        AeadDirection::Open => c.runtime.timed(Stage::DecryptCrypto, jobs.len(), || {
            backend.open_batch(pkts, keys, jobs)
        }),
        AeadDirection::Seal => c.runtime.timed(Stage::EncryptCrypto, jobs.len(), || {
            backend.seal_batch(pkts, keys, jobs)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::crypto::TransportKey;
    use crate::session::Peer;

    const KEY: [u8; 32] = [7; 32];

    fn keypair() -> Arc<Keypair> {
        let peer = Arc::new(Peer::new(0, None));
        Arc::new(Keypair::new(peer, 1, 2, &KEY, &KEY, true, 0))
    }

    /// `n` packets of 32 bytes numbered in their first byte, each with a seal job whose
    /// counter is its number.
    fn vector(n: usize) -> (Vec<HeapBuf>, Vec<CryptoJob>) {
        let pkts = (0..n).map(|i| HeapBuf::new(&[i as u8; 32])).collect();
        let jobs = (0..n)
            .map(|i| CryptoJob {
                pkt: i as u16,
                key: 0,
                counter: i as u64,
                ok: false,
            })
            .collect();
        (pkts, jobs)
    }

    /// Make a worker look as busy as full vectors make it.
    fn busy(crew: &mut Crew<HeapBuf>) {
        for _ in 0..8 {
            crew.note_load(256);
        }
    }

    #[test]
    fn only_a_busy_worker_with_a_quiet_one_shares_a_vector_big_enough() {
        let mut all = crews::<HeapBuf>(3);
        let seal = AeadDirection::Seal;
        assert!(!all[0].plan(seal, 256), "not busy yet");
        busy(&mut all[0]);
        assert!(!all[0].plan(seal, MIN_JOBS - 1), "too small a vector");
        assert!(all[0].plan(seal, MIN_JOBS));
        assert_eq!(
            all[0].chosen,
            [1],
            "one helper per MIN_SEGMENT beyond the first"
        );
        assert!(all[0].plan(seal, 256));
        assert_eq!(all[0].chosen, [1, 2]);
        // A worker more than half as busy is no helper; all busy: nobody shares.
        for _ in 0..64 {
            all[1].note_load(160);
        }
        assert!(all[0].plan(seal, 256));
        assert_eq!(all[0].chosen, [2]);
        busy(&mut all[2]);
        assert!(!all[0].plan(seal, 256));
        // Alone, or switched off: never.
        let mut solo = Crew::<HeapBuf>::solo();
        busy(&mut solo);
        assert!(!solo.plan(seal, 256));
        let mut off = crews::<HeapBuf>(2);
        off[0].set_enabled(false);
        busy(&mut off[0]);
        assert!(!off[0].plan(seal, 256));
    }

    #[test]
    fn a_shared_vector_comes_back_whole_and_numbered() {
        let mut all = crews::<HeapBuf>(3);
        let c = WorkerCounters::default();
        let mut backend = Backend::Ring;
        let keys = [keypair()];
        busy(&mut all[0]);
        let (mut pkts, jobs) = vector(100);
        assert!(all[0].plan(AeadDirection::Seal, jobs.len()));
        let kept = all[0].share(&mut pkts, &keys, &jobs, 1000, &mut backend, &c);
        // 100 jobs: the owner keeps half at first, two helpers take 25 each.
        assert_eq!(kept, 50);
        assert_eq!(pkts.len(), 50);
        assert_eq!(all[0].outstanding(), 2);
        assert_eq!(c.spread.get(SpreadEvent::HandedSeal), 50);
        let mut back = 0;
        all[0].collect(AeadDirection::Seal, |_| back += 1);
        assert_eq!(back, 0, "nothing is back before the helpers ran");
        assert_eq!(all[1].serve(&mut Backend::Ring, &c), 25);
        assert_eq!(all[2].serve(&mut Backend::Ring, &c), 25);
        let mut seen = Vec::new();
        all[0].collect(AeadDirection::Seal, |t| {
            for (i, mut p) in t.pkts.drain(..).enumerate() {
                let number = t.first - 1000 + i as u64;
                let job = &t.jobs[i];
                assert!(job.ok);
                assert_eq!(job.counter, number);
                let n = TransportKey::new(&KEY).open(number, p.data_mut());
                assert_eq!(n, Some(32), "packet {number} sealed with its own nonce");
                assert_eq!(p.data()[0] as u64, number);
                seen.push(number);
            }
        });
        seen.sort_unstable();
        assert_eq!(seen, (50..100).collect::<Vec<_>>());
        assert_eq!(all[0].outstanding(), 0);
        assert_eq!(c.spread.get(SpreadEvent::HelpedSeal), 50);
    }

    #[test]
    fn the_owner_keeps_less_while_its_helper_keeps_up_and_more_when_it_falls_behind() {
        let mut all = crews::<HeapBuf>(2);
        let c = WorkerCounters::default();
        let keys = [keypair()];
        let seal = AeadDirection::Seal;
        busy(&mut all[0]);
        let round = |all: &mut Vec<Crew<HeapBuf>>, helper_runs: bool| {
            let (mut pkts, jobs) = vector(64);
            assert!(all[0].plan(seal, jobs.len()));
            let kept = all[0].share(&mut pkts, &keys, &jobs, 0, &mut Backend::Ring, &c);
            if helper_runs {
                all[1].serve(&mut Backend::Ring, &c);
            }
            all[0].collect(seal, |t| t.pkts.clear());
            kept
        };
        // Only this vector's task out: the helper keeps up.
        assert_eq!(round(&mut all, false), 32);
        assert_eq!(all[0].keep[1], KEEP_ONE / 2 - 1);
        // The last vector's task still out: it is behind.
        round(&mut all, false);
        assert_eq!(all[0].keep[1], KEEP_ONE / 2);
        // A helper with time to spare ends up with the whole of every vector.
        all[1].serve(&mut Backend::Ring, &c);
        for _ in 0..KEEP_ONE {
            round(&mut all, true);
        }
        assert_eq!(all[0].keep[1], 0);
        assert_eq!(round(&mut all, true), 0);
        assert_eq!(all[0].outstanding(), 0);
        // One that never returns makes the owner keep more, up to KEEP_MOST; then its
        // queue is full and the owner stops handing out.
        let mut kept = Vec::new();
        while all[0].plan(seal, 64) {
            kept.push(round(&mut all, false));
        }
        assert_eq!(kept.len(), MAX_OUT);
        assert!(kept.windows(2).all(|w| w[0] <= w[1]), "{kept:?}");
        assert!(all[0].keep[1] <= KEEP_MOST);
    }

    #[test]
    fn a_task_a_full_helper_cannot_take_is_done_by_its_owner() {
        let mut all = crews::<HeapBuf>(2);
        let c = WorkerCounters::default();
        let keys = [keypair()];
        busy(&mut all[0]);
        // Other work fills the helper's queue first.
        for _ in 0..QUEUE {
            let task = Task {
                dir: AeadDirection::Seal,
                owner: 0,
                first: 0,
                pkts: Vec::new(),
                keys: Vec::new(),
                jobs: Vec::new(),
            };
            all[0].work_to[1].try_send(task).unwrap();
        }
        let (mut pkts, jobs) = vector(64);
        assert!(all[0].plan(AeadDirection::Seal, jobs.len()));
        let kept = all[0].share(&mut pkts, &keys, &jobs, 0, &mut Backend::Ring, &c);
        assert_eq!(kept, 32);
        assert_eq!(c.spread.get(SpreadEvent::HelperFull), 32);
        assert_eq!(c.spread.get(SpreadEvent::HandedSeal), 0);
        assert_eq!(all[0].outstanding(), 0);
        let mut sealed = 0;
        all[0].collect(AeadDirection::Seal, |t| {
            assert_eq!(t.first, 32);
            assert!(t.jobs.iter().all(|j| j.ok));
            sealed += t.pkts.drain(..).filter(|p| p.len() == 32 + 16).count();
        });
        assert_eq!(sealed, 32);
    }
}
