//! The restart storm (docs/benchmarks.md, "A restart storm through DPDK"): every peer
//! sends data at a steady rate and keeps the timers a WireGuard peer keeps, so that
//! when the gateway restarts and forgets every session, the peers notice and come back
//! the way real ones do, not the way a benchmark would like:
//!
//! - a peer that sent data and has heard nothing authenticated from the gateway for
//!   `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT` (15 s) makes a new handshake (whitepaper 6.2;
//!   the gateway's passive keepalives, every 10 s while the peer sends, keep a live
//!   session from tripping it);
//! - an unanswered initiation is sent again after `REKEY_TIMEOUT` (5 s) plus a jitter
//!   of up to a third of a second (whitepaper 6.4, and the Linux implementation's
//!   jitter);
//! - a cookie reply is kept for the next retry, not answered at once (whitepaper 5.4.7);
//! - data keeps going out on the old session until a new one exists.
//!
//! The gateway's restart is told through a file (`StormSpec::restart_file`) holding
//! the wall-clock times of its stop and of its start being complete. The storm ends
//! when every peer has a session made after the stop and a data packet of it came out
//! of the gateway's inside port.

use super::*;
use std::path::PathBuf;

/// Whitepaper 6.1: `Keepalive-Timeout`.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Data sent and nothing authenticated heard for this long: a new handshake
/// (whitepaper 6.2, `Keepalive-Timeout + Rekey-Timeout`).
const NEW_HANDSHAKE_AFTER: Duration =
    Duration::from_secs(KEEPALIVE_TIMEOUT.as_secs() + REKEY_TIMEOUT.as_secs());
/// Largest jitter added to a retry, in nanoseconds (the Linux implementation:
/// `REKEY_TIMEOUT_JITTER_MAX_JIFFIES`, a third of a second).
const RETRY_JITTER_NS: u64 = 333_333_333;
/// How often the peers' timers are looked at.
const TICK: Duration = Duration::from_millis(10);
/// Initiations made between two polls of the ports at most: each costs the generator
/// two X25519 operations, and the answers must not wait in a full ring meanwhile.
const INITIATIONS_PER_TURN: usize = 8;

/// What a storm asks for.
pub struct StormSpec {
    /// Data packets per second over all peers (round robin).
    pub rate: f64,
    /// Inside frame length of the data packets.
    pub frame: usize,
    /// Where the gateway's restart is told: "STOP READY", two Unix times in seconds.
    pub restart_file: PathBuf,
    /// Created once every peer has a session and the data flows.
    pub ready_file: Option<PathBuf>,
    /// Give up if the restart is not told within this long.
    pub wait_restart: Duration,
    /// Give up if the peers are not all back this long after the stop.
    pub timeout: Duration,
}

/// What a storm measured. Times are seconds after the gateway's stop.
#[derive(Debug, Clone, Serialize)]
pub struct StormResult {
    pub peers: usize,
    pub rate_asked: f64,
    /// Data packets sent, and refused by the port (its ring was full), over the storm.
    pub data_sent: u64,
    pub data_refused: u64,
    /// Data packets that came out of the gateway's inside port.
    pub data_delivered: u64,
    /// Seconds from the gateway's stop until its new start was complete.
    pub gateway_down_seconds: f64,
    /// The first and the last peer with a new session.
    pub first_session_seconds: f64,
    pub all_sessions_seconds: f64,
    /// The last peer whose data came through on its new session.
    pub all_delivering_seconds: f64,
    /// New sessions in each second after the stop.
    pub sessions_per_second: Vec<u32>,
    pub peak_handshakes_per_second: u32,
    /// Peers over the time from the first new session to the last.
    pub mean_handshakes_per_second: f64,
    /// Since the stop: initiations sent (first attempts and retries), of them retries,
    /// and cookie replies received.
    pub initiations: u64,
    /// Initiations while the gateway was up: a peer that heard nothing from a live
    /// gateway for 15 s (0 unless its keepalives went missing).
    pub initiations_before_stop: u64,
    pub retries: u64,
    pub cookie_replies: u64,
    /// Keepalives from the gateway that authenticated, and that did not.
    pub keepalives_authenticated: u64,
    pub keepalives_bad: u64,
    /// The generator's outside port over the run: frames its driver dropped because
    /// the receive ring was full, or for want of an mbuf.
    pub outside_rx_missed: u64,
    pub outside_rx_nombuf: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct StormPeer {
    /// When data went out while nothing authenticated had been heard since.
    unanswered_since: Option<u64>,
    /// A handshake is under way: when it is sent again (`u64::MAX`: its initiation
    /// waits for its turn).
    retry_at: Option<u64>,
    /// Initiations of the handshake under way.
    tries: u32,
    /// When the current session was made (during the storm).
    established: Option<u64>,
    /// When a data packet of this peer last came out of the inside port.
    delivered: Option<u64>,
    /// When the gateway's last keepalive reached it.
    heard: Option<u64>,
    /// When its first data packet of the storm came out of the inside port.
    first_delivered: Option<u64>,
}

/// The storm's state, seen by the receive path.
pub(super) struct Storm {
    id: u32,
    peers: Vec<StormPeer>,
    /// The gateway's stop and ready, in the generator's nanoseconds, once told.
    stop: Option<u64>,
    ready: Option<u64>,
    sent: u64,
    refused: u64,
    initiations: u64,
    /// Initiations before the stop was told, with whether each was a retry: sorted
    /// into before and after the stop once it is.
    untold: Vec<(u64, bool)>,
    before_stop: u64,
    retries: u64,
    cookies: u64,
    delivered: u64,
    keepalives_ok: u64,
    keepalives_bad: u64,
}

impl Storm {
    fn new(id: u32, peers: usize) -> Storm {
        Storm {
            id,
            peers: vec![StormPeer::default(); peers],
            stop: None,
            ready: None,
            sent: 0,
            refused: 0,
            initiations: 0,
            untold: Vec::new(),
            before_stop: 0,
            retries: 0,
            cookies: 0,
            delivered: 0,
            keepalives_ok: 0,
            keepalives_bad: 0,
        }
    }

    fn after_stop(&self, t: u64) -> bool {
        self.stop.is_some_and(|s| t >= s)
    }

    /// A peer's session made at `now`.
    pub(super) fn on_session(&mut self, p: usize, now: u64) {
        let sp = &mut self.peers[p];
        sp.established = Some(now);
        sp.unanswered_since = None;
        sp.retry_at = None;
        sp.tries = 0;
    }

    /// Something authenticated from the gateway reached peer `p`.
    pub(super) fn on_heard(&mut self, p: usize, ok: bool, now: u64) {
        if ok {
            self.keepalives_ok += 1;
            self.peers[p].unanswered_since = None;
            self.peers[p].heard = Some(now);
        } else {
            self.keepalives_bad += 1;
        }
    }

    pub(super) fn on_cookie(&mut self, now: u64) {
        if self.after_stop(now) {
            self.cookies += 1;
        }
    }

    /// A data packet with `stamp` came out of the inside port; false if it is not the
    /// storm's.
    pub(super) fn on_delivered(&mut self, stamp: &Stamp, now: u64) -> bool {
        if stamp.trial != self.id {
            return false;
        }
        self.delivered += 1;
        let sp = &mut self.peers[stamp.peer as usize];
        sp.delivered = Some(now);
        sp.first_delivered.get_or_insert(now);
        true
    }

    /// Peers back: a session made after the stop, and data delivered on it.
    fn back(&self, stop: u64) -> usize {
        self.peers
            .iter()
            .filter(|sp| match (sp.established, sp.delivered) {
                (Some(e), Some(d)) => e >= stop && d >= e,
                _ => false,
            })
            .count()
    }
}

/// A cheap deterministic jitter in `0..RETRY_JITTER_NS` (splitmix64 of a counter).
fn jitter(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % RETRY_JITTER_NS
}

/// Reads "STOP READY" (Unix seconds) from the restart file, if it is there.
fn read_restart(path: &std::path::Path) -> Result<Option<(f64, f64)>, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|w| w.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match v[..] {
        [stop, ready] if ready >= stop => Ok(Some((stop, ready))),
        // Written but not complete yet: read again on the next turn.
        [] => Ok(None),
        _ => Err(format!(
            "{}: want two Unix times, the gateway's stop and its ready",
            path.display()
        )),
    }
}

impl Generator {
    pub(super) fn now_ns(&self) -> u64 {
        self.now().as_nanos() as u64
    }

    /// Sends `k` data packets (at most a burst) of the next peers in turn.
    fn storm_send(&mut self, k: usize, next: &mut usize, seq: &mut u64, frame: usize, now: u64) {
        let n = self.peers.len();
        let id = self.storm.as_ref().map_or(0, |s| s.id);
        let mut pool = Pool::with_capacity(k, k * (frame + 64));
        for _ in 0..k {
            let p = *next;
            *next = (*next + 1) % n;
            let stamp = Stamp {
                trial: id,
                seq: *seq,
                peer: p as u32,
            };
            *seq += 1;
            let len = self.inner_packet(self.peers[p].tunnel, self.link.inside, frame, stamp);
            let scratch = std::mem::take(&mut self.scratch);
            self.seal_into(&mut pool, p, &scratch[..len], stamp.seq as u16);
            self.scratch = scratch;
            if let Some(st) = self.storm.as_mut() {
                let sp = &mut st.peers[p];
                sp.unanswered_since.get_or_insert(now);
            }
        }
        let frames: Vec<&[u8]> = (0..pool.len()).map(|i| pool.frame(i)).collect();
        let sent = self.send_raw(true, &frames);
        if let Some(st) = self.storm.as_mut() {
            st.sent += sent as u64;
            st.refused += (k - sent) as u64;
        }
    }

    /// Runs the storm (module documentation). Every peer must have a session.
    pub fn storm(&mut self, spec: &StormSpec) -> Result<StormResult, String> {
        if self.peers.iter().any(|p| p.keys.is_none()) {
            return Err("a peer has no session: handshake first".into());
        }
        let n = self.peers.len();
        let id = self.next_trial_id;
        self.next_trial_id += 1;
        self.storm = Some(Box::new(Storm::new(id, n)));
        let result = self.storm_loop(spec);
        let st = self.storm.take().expect("the storm's state");
        let (stop, ready) = result?;
        let secs = |t: u64| t.saturating_sub(stop) as f64 / 1e9;
        let mut first = u64::MAX;
        let mut last_session = 0;
        let mut last_delivery = 0;
        let mut sessions: Vec<u32> = Vec::new();
        for sp in &st.peers {
            let e = sp.established.expect("every peer is back");
            first = first.min(e);
            last_session = last_session.max(e);
            last_delivery = last_delivery.max(sp.delivered.expect("every peer is back"));
            let second = ((e - stop) / 1_000_000_000) as usize;
            if sessions.len() <= second {
                sessions.resize(second + 1, 0);
            }
            sessions[second] += 1;
        }
        let span = secs(last_session) - secs(first);
        Ok(StormResult {
            peers: n,
            rate_asked: spec.rate,
            data_sent: st.sent,
            data_refused: st.refused,
            data_delivered: st.delivered,
            gateway_down_seconds: secs(ready),
            first_session_seconds: secs(first),
            all_sessions_seconds: secs(last_session),
            all_delivering_seconds: secs(last_delivery),
            peak_handshakes_per_second: sessions.iter().copied().max().unwrap_or(0),
            sessions_per_second: sessions,
            mean_handshakes_per_second: if span > 0.0 { n as f64 / span } else { 0.0 },
            initiations: st.initiations,
            initiations_before_stop: st.before_stop,
            retries: st.retries,
            cookie_replies: st.cookies,
            keepalives_authenticated: st.keepalives_ok,
            keepalives_bad: st.keepalives_bad,
            outside_rx_missed: self.outside.stats().imissed,
            outside_rx_nombuf: self.outside.stats().rx_nombuf,
        })
    }

    /// The storm's loop; returns the gateway's stop and ready times.
    fn storm_loop(&mut self, spec: &StormSpec) -> Result<(u64, u64), String> {
        let n = self.peers.len();
        let start = self.now_ns();
        let mut next_peer = 0usize;
        let mut seq = 0u64;
        let mut offered = 0u64;
        let mut next_tick = start;
        let mut next_check = start;
        let mut due: std::collections::VecDeque<usize> = Default::default();
        let mut rng = start ^ 0x5eed;
        // Nothing to tell without a ready file.
        let mut ready_told = spec.ready_file.is_none();
        let rate_per_ns = spec.rate / 1e9;
        // Packets owed beyond one second's worth are forgone, not sent in a rush.
        let backlog_cap = (spec.rate as u64).max(BURST as u64);
        loop {
            let now = self.now_ns();
            let mut busy = false;
            // Data, at the rate.
            let owed = ((now - start) as f64 * rate_per_ns) as u64;
            if owed > offered {
                offered = offered.max(owed.saturating_sub(backlog_cap));
                let k = ((owed - offered) as usize).min(BURST);
                self.storm_send(k, &mut next_peer, &mut seq, spec.frame, now);
                offered += k as u64;
                busy = true;
            }
            // The peers' timers.
            if now >= next_tick {
                next_tick = now + TICK.as_nanos() as u64;
                let st = self.storm.as_mut().expect("storm state");
                let quiet = NEW_HANDSHAKE_AFTER.as_nanos() as u64;
                for (p, sp) in st.peers.iter_mut().enumerate() {
                    let fire = match (sp.retry_at, sp.unanswered_since) {
                        (Some(r), _) => now >= r,
                        // With a jitter of its own, as the implementations add.
                        (None, Some(u)) => {
                            now - u
                                >= quiet + (p as u64).wrapping_mul(2_654_435_761) % RETRY_JITTER_NS
                        }
                        (None, None) => false,
                    };
                    if fire {
                        if sp.retry_at.is_none() && st.stop.is_none() && st.untold.len() < 5 {
                            // Worth a line: either the gateway is down (and the stop
                            // is told soon), or a peer missed its keepalives.
                            let ago = |t: Option<u64>| {
                                t.map_or("never".into(), |t| {
                                    format!("{:.2} s ago", (now - t) as f64 / 1e9)
                                })
                            };
                            eprintln!(
                                "wgdp-pktgen: storm: peer {p} starts a handshake {:.2} s into the storm: data unanswered since {}, last keepalive {}, first data through {}",
                                (now - start) as f64 / 1e9,
                                ago(sp.unanswered_since),
                                ago(sp.heard),
                                ago(sp.first_delivered)
                            );
                        }
                        sp.retry_at = Some(u64::MAX);
                        due.push_back(p);
                    }
                }
            }
            // Oldest first: the retry timer starts when the initiation goes out.
            for _ in 0..INITIATIONS_PER_TURN {
                let Some(p) = due.pop_front() else { break };
                // Only if still under way: a response may have come meanwhile.
                if self.storm.as_ref().expect("storm").peers[p]
                    .retry_at
                    .is_none()
                {
                    continue;
                }
                self.initiate(p);
                let now = self.now_ns();
                let st = self.storm.as_mut().expect("storm state");
                let retry = now + REKEY_TIMEOUT.as_nanos() as u64 + jitter(&mut rng);
                let sp = &mut st.peers[p];
                sp.retry_at = Some(retry);
                sp.tries += 1;
                let again = sp.tries > 1;
                if st.after_stop(now) {
                    st.initiations += 1;
                    st.retries += u64::from(again);
                } else {
                    st.untold.push((now, again));
                }
                busy = true;
            }
            if self.poll() > 0 {
                busy = true;
            }
            if now >= next_check {
                next_check = now + 100_000_000;
                let st = self.storm.as_ref().expect("storm state");
                if !ready_told {
                    let all = st.peers.iter().all(|sp| sp.delivered.is_some());
                    if let (true, Some(path)) = (all, &spec.ready_file) {
                        std::fs::write(path, b"ready\n")
                            .map_err(|e| format!("{}: {e}", path.display()))?;
                        ready_told = true;
                    }
                }
                match (st.stop, st.ready) {
                    (Some(stop), Some(ready)) => {
                        let back = st.back(stop);
                        if back == n {
                            return Ok((stop, ready));
                        }
                        if now >= stop + spec.timeout.as_nanos() as u64 {
                            return Err(format!(
                                "{} of {n} peers were not back {:?} after the gateway's stop",
                                n - back,
                                spec.timeout
                            ));
                        }
                    }
                    _ => {
                        if now - start >= spec.wait_restart.as_nanos() as u64 {
                            return Err(format!(
                                "the gateway's restart was not told in {} within {:?}",
                                spec.restart_file.display(),
                                spec.wait_restart
                            ));
                        }
                        if let Some((stop, ready)) = read_restart(&spec.restart_file)? {
                            let wall = SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_err(|e| e.to_string())?
                                .as_secs_f64();
                            let ago = |t: f64| ((wall - t).max(0.0) * 1e9) as u64;
                            let st = self.storm.as_mut().expect("storm state");
                            let stop = now.saturating_sub(ago(stop));
                            st.stop = Some(stop);
                            st.ready = Some(now.saturating_sub(ago(ready)));
                            for (at, again) in std::mem::take(&mut st.untold) {
                                if at >= stop {
                                    st.initiations += 1;
                                    st.retries += u64::from(again);
                                } else {
                                    st.before_stop += 1;
                                }
                            }
                        }
                    }
                }
            }
            if !busy {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_file_is_read_when_complete() {
        let dir = std::env::temp_dir().join(format!("wgdp-storm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("restart");
        assert_eq!(read_restart(&f), Ok(None), "not there yet");
        std::fs::write(&f, "").unwrap();
        assert_eq!(read_restart(&f), Ok(None), "not written yet");
        std::fs::write(&f, "1765100000.25 1765100003.5\n").unwrap();
        assert_eq!(read_restart(&f), Ok(Some((1765100000.25, 1765100003.5))));
        std::fs::write(&f, "1765100003.5 1765100000.25\n").unwrap();
        assert!(read_restart(&f).is_err(), "ready before the stop");
        std::fs::write(&f, "soon\n").unwrap();
        assert!(read_restart(&f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retry_jitter_stays_under_a_third_of_a_second_and_varies() {
        let mut state = 1;
        let j: Vec<u64> = (0..1000).map(|_| jitter(&mut state)).collect();
        assert!(j.iter().all(|&x| x < RETRY_JITTER_NS));
        let spread = j.iter().max().unwrap() - j.iter().min().unwrap();
        assert!(spread > RETRY_JITTER_NS / 2);
    }

    #[test]
    fn a_peer_is_back_with_a_session_after_the_stop_and_data_on_it() {
        let stamp = |trial, seq, peer| Stamp { trial, seq, peer };
        let mut st = Storm::new(3, 3);
        st.stop = Some(100);
        st.ready = Some(150);
        // Peer 0: a session before the stop and data on it: not back.
        st.on_session(0, 50);
        assert!(st.on_delivered(&stamp(3, 0, 0), 60));
        // Peer 1: a new session, no data on it yet.
        st.on_session(1, 200);
        // Peer 2: a new session and data after it.
        st.on_session(2, 210);
        assert!(st.on_delivered(&stamp(3, 1, 2), 220));
        assert!(!st.on_delivered(&stamp(4, 2, 1), 230), "another run's");
        assert_eq!(st.back(100), 1);
        assert!(st.on_delivered(&stamp(3, 3, 1), 240));
        assert_eq!(st.back(100), 2);
    }
}
