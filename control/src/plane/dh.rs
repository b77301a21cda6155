//! The Diffie-Hellman work of handshakes, on a pool of threads or on the control thread.
//!
//! Contract: the control thread makes a job from a handshake message and a peer's fixed
//! keys (`noise::InitiationJob`, `noise::AnswerJob`, `noise::ResponseJob`: the X25519
//! and the AEADs that need their results, nothing that reads or changes state) and
//! hands it here with what it needs to apply the result later (a [`Step`]). Jobs run on
//! the pool's threads in any order; [`DhWork`] gives their results back strictly in the
//! order the jobs were handed in, so the control thread applies them, with every
//! stateful check (replay, flood limit, the peer still the one the job was made for),
//! in a well-defined order that does not depend on the threads. With no threads, a job
//! runs at once on the control thread and its result is next in line: the same code,
//! the same order.
//!
//! Nothing blocks the control thread: [`DhWork::submit`] queues, [`DhWork::next_result`] takes
//! only results that are there. A pool thread that finishes a job calls the notify
//! function it was given (the gateway rings the control loop's doorbell), and
//! [`DhWork::ready`] tells a control loop about to sleep that results wait.

use super::frames::Datagram;
use super::Now;
use crate::noise::{
    Answer, AnswerJob, Completion, HandshakeError, InitiationInfo, InitiationJob, ResponseJob,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Jobs in flight per pool thread at most: enough that a thread never waits for the
/// control thread to hand it the next, few enough that the handshake queue, not the
/// pool, holds a flood (and the gateway is seen to be under load).
pub const IN_FLIGHT_PER_THREAD: usize = 64;

/// The most threads a pool has.
pub const MAX_THREADS: usize = 64;

/// The pure part of a handshake step.
pub enum Work {
    /// An initiation's `e, es, s`: whose it claims to be.
    Open(InitiationJob),
    /// An initiation's `ss` and timestamp, and our response's `e, ee, se, psk`.
    Answer(AnswerJob),
    /// A response's `e, ee, se, psk`: the keys of our handshake.
    Complete(ResponseJob),
}

/// The result of a [`Work`].
pub enum Done {
    Opened(Result<InitiationInfo, HandshakeError>),
    Answered(Result<Answer, HandshakeError>),
    Completed(Result<Completion, HandshakeError>),
}

impl Work {
    pub fn run(self) -> Done {
        match self {
            Work::Open(j) => Done::Opened(j.run()),
            Work::Answer(j) => Done::Answered(j.run()),
            Work::Complete(j) => Done::Completed(j.run()),
        }
    }
}

/// What the control thread needs to apply a job's result: the message's datagram and
/// when it was taken from the handshake queue, and for a peer's job that peer's id and
/// generation (`PeerState::generation`) when the job was made.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// `our_key` is the gateway's public key the job opened the initiation with.
    Open {
        dg: Datagram,
        now: Now,
        our_key: [u8; 32],
    },
    Answer {
        dg: Datagram,
        now: Now,
        peer: usize,
        generation: u64,
    },
    Complete {
        dg: Datagram,
        now: Now,
        peer: usize,
        generation: u64,
        receiver: u32,
    },
}

/// A function a pool thread calls when it finished a job.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// The threads and their queues.
struct Pool {
    jobs: Option<mpsc::Sender<(u64, Work)>>,
    results: mpsc::Receiver<(u64, Done)>,
    /// Results made and not yet received.
    ready: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
    size: usize,
}

impl Pool {
    fn new(threads: usize, notify: Option<Notify>) -> std::io::Result<Pool> {
        let (jobs_tx, jobs_rx) = mpsc::channel::<(u64, Work)>();
        let (results_tx, results) = mpsc::channel();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let ready = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (jobs_rx, results_tx, ready, notify) = (
                jobs_rx.clone(),
                results_tx.clone(),
                ready.clone(),
                notify.clone(),
            );
            let h = std::thread::Builder::new()
                .name(format!("wgdp-dh{t}"))
                .spawn(move || loop {
                    // The lock is held while waiting for a job only: one thread waits
                    // in `recv`, the others for the lock.
                    let job = jobs_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, work))) = job else {
                        return;
                    };
                    let done = work.run();
                    // Counted before it is sent, so the count never falls below zero:
                    // the control thread may see it a moment before the result.
                    ready.fetch_add(1, Ordering::SeqCst);
                    if results_tx.send((seq, done)).is_err() {
                        return;
                    }
                    if let Some(n) = &notify {
                        n();
                    }
                })?;
            handles.push(h);
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            results,
            ready,
            threads: handles,
            size: threads,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Without a sender every thread's `recv` fails once the jobs queued are done.
        self.jobs = None;
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// Handshake jobs in flight and their results, in the order they were handed in.
#[derive(Default)]
pub struct DhWork {
    pool: Option<Pool>,
    /// The sequence number of `flight[0]`.
    first: u64,
    flight: VecDeque<(Step, Option<Done>)>,
}

impl DhWork {
    /// Work on `threads` threads (none: on the caller's), each calling `notify` when it
    /// finished a job. Jobs in flight are finished first.
    pub fn with_threads(threads: usize, notify: Option<Notify>) -> std::io::Result<DhWork> {
        let threads = threads.min(MAX_THREADS);
        let pool = match threads {
            0 => None,
            n => Some(Pool::new(n, notify)?),
        };
        Ok(DhWork {
            pool,
            first: 0,
            flight: VecDeque::new(),
        })
    }

    /// Threads of the pool (0: the control thread does the work).
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.size)
    }

    /// Jobs handed in whose results were not taken yet.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }

    /// Whether another job may be handed in: the pool is not full.
    pub fn has_room(&self) -> bool {
        match &self.pool {
            None => true,
            Some(p) => self.flight.len() < p.size * IN_FLIGHT_PER_THREAD,
        }
    }

    /// Hands in `work`, to be applied with `step`.
    pub fn submit(&mut self, step: Step, work: Work) {
        let seq = self.first + self.flight.len() as u64;
        match self.pool.as_ref().and_then(|p| p.jobs.as_ref()) {
            Some(jobs) => {
                self.flight.push_back((step, None));
                if let Err(mpsc::SendError((_, work))) = jobs.send((seq, work)) {
                    // The pool's threads are gone (a panic): do the work here.
                    self.flight.back_mut().expect("just pushed").1 = Some(work.run());
                }
            }
            None => self.flight.push_back((step, Some(work.run()))),
        }
    }

    /// Whether the next result in order is there, or results wait to be collected.
    pub fn ready(&self) -> bool {
        self.flight.front().is_some_and(|(_, d)| d.is_some())
            || self
                .pool
                .as_ref()
                .is_some_and(|p| p.ready.load(Ordering::SeqCst) > 0)
    }

    /// The next result in order, if it is there.
    pub fn next_result(&mut self) -> Option<(Step, Done)> {
        if let Some(p) = &self.pool {
            while let Ok((seq, done)) = p.results.try_recv() {
                p.ready.fetch_sub(1, Ordering::SeqCst);
                let at = (seq - self.first) as usize;
                if let Some(slot) = self.flight.get_mut(at) {
                    slot.1 = Some(done);
                }
            }
        }
        if !self.flight.front().is_some_and(|(_, d)| d.is_some()) {
            return None;
        }
        let (step, done) = self.flight.pop_front().expect("a front");
        self.first += 1;
        done.map(|d| (step, d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Identity, PeerHandshake, Tai64N};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;
    use x25519_dalek::StaticSecret;

    fn step(n: u16) -> Step {
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), n);
        Step::Open {
            dg: Datagram {
                src_mac: [0; 6],
                src: a,
                dst: a,
                payload: (0, 0),
            },
            now: Now {
                mono: 0,
                wall: std::time::UNIX_EPOCH,
            },
            our_key: [0; 32],
        }
    }

    /// Results come back in the order the jobs went in, whatever thread finished first,
    /// and with the results a job run here gives.
    #[test]
    fn results_come_in_the_order_of_the_jobs() {
        let gw = Identity::new(StaticSecret::from([7; 32]));
        let mut initiations = Vec::new();
        for i in 0..200u8 {
            let peer = Identity::new(StaticSecret::from([i.wrapping_add(9); 32]));
            let mut hs = PeerHandshake::new(&peer, *gw.public_key(), None).unwrap();
            let wall = Tai64N::from_system_time(std::time::UNIX_EPOCH);
            let mut m = hs
                .create_initiation(&peer, i as u32, wall, Duration::ZERO, &mut rand_core::OsRng)
                .unwrap();
            if i % 7 == 0 {
                // A damaged message: refused at mac1, before any job is made.
                m[40] ^= 1;
            }
            initiations.push((*peer.public_key(), m));
        }
        for threads in [0, 1, 3] {
            let mut w = DhWork::with_threads(threads, None).unwrap();
            for (i, (_, m)) in initiations.iter().enumerate() {
                let job = gw.initiation_job(m);
                let job = match job {
                    Ok(j) => j,
                    Err(e) => {
                        assert_eq!((i % 7, e), (0, HandshakeError::BadMac1));
                        continue;
                    }
                };
                w.submit(step(i as u16), Work::Open(job));
            }
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while w.in_flight() > 0 {
                assert!(std::time::Instant::now() < deadline, "the pool answers");
                match w.next_result() {
                    Some((Step::Open { dg, .. }, Done::Opened(r))) => {
                        got.push((dg.src.port(), r.map(|info| *info.initiator_static())))
                    }
                    Some(_) => panic!("an opening was asked for"),
                    None => std::thread::yield_now(),
                }
            }
            let want: Vec<_> = initiations
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 7 != 0)
                .map(|(i, (k, _))| (i as u16, Ok(*k)))
                .collect();
            assert_eq!(got, want, "{threads} threads");
            assert!(!w.ready());
        }
    }
}
