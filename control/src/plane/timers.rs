//! Timers as data: when each peer next needs the control thread's attention.
//!
//! Contract: a peer has at most one deadline armed ([`Wheel::arm`] replaces it, and
//! [`Wheel::disarm`] drops it). [`Wheel::expire`] reports, once each, the peers whose
//! deadline is not later than the time it is given, and disarms them; their handler
//! arms the next one. A peer without a deadline costs nothing, so a million idle peers
//! cost no more per round than none.
//!
//! Layout: a hashed timing wheel (Varghese and Lauck's scheme 4, as the Linux kernel's
//! timer wheel and quinn-proto's timer table are used): `SLOTS` slots of `TICK`
//! nanoseconds each, a deadline filed in the slot of its tick. Re-arming leaves the old
//! entry where it is; an entry counts only while it matches the peer's armed deadline,
//! so arming and disarming are O(1). Expiring visits the slots of the ticks that passed:
//! an entry is reported when due, kept when its deadline is a whole turn of the wheel or
//! more away (`SLOTS` x `TICK` = 41 s; a deadline of 540 s is looked at 14 times before
//! it is due), and dropped when stale.

/// Width of a slot, ns.
pub const TICK: u64 = 10_000_000;
/// Slots in the wheel (a power of two).
const SLOTS: usize = 4096;

pub struct Wheel {
    slots: Vec<Vec<(u32, u64)>>,
    /// The deadline each peer has armed, by peer id; 0 is none.
    armed: Vec<u64>,
    /// The next tick `expire` has to visit.
    next_tick: u64,
    /// Deadlines armed now.
    live: usize,
    /// No deadline is earlier than this (`u64::MAX`: none armed); may be earlier than
    /// the true first deadline, never later.
    soonest: u64,
}

#[inline]
fn tick_of(at: u64) -> u64 {
    at / TICK
}

impl Wheel {
    /// An empty wheel whose first tick is that of `now`.
    pub fn new(now: u64) -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            armed: Vec::new(),
            next_tick: tick_of(now),
            live: 0,
            soonest: u64::MAX,
        }
    }

    /// Peer `peer` wants attention at `at` (ns, the control plane's monotonic clock), and
    /// at no other time it asked for before. A time already past is due at the next
    /// `expire`.
    pub fn arm(&mut self, peer: u32, at: u64) {
        let at = at.max(1);
        let i = peer as usize;
        if self.armed.len() <= i {
            self.armed.resize(i + 1, 0);
        }
        if self.armed[i] == at {
            return;
        }
        if self.armed[i] == 0 {
            self.live += 1;
        }
        self.armed[i] = at;
        self.soonest = self.soonest.min(at);
        // A deadline in a tick already visited goes into the next one to visit.
        let tick = tick_of(at).max(self.next_tick);
        self.slots[(tick as usize) & (SLOTS - 1)].push((peer, at));
    }

    /// Peer `peer` wants attention at `at` or earlier: keeps an earlier deadline.
    pub fn arm_by(&mut self, peer: u32, at: u64) {
        match self.armed(peer) {
            Some(armed) if armed <= at => {}
            _ => self.arm(peer, at),
        }
    }

    /// Drop peer `peer`'s deadline, if any (a removed peer; its id may be reused).
    pub fn disarm(&mut self, peer: u32) {
        if let Some(a) = self.armed.get_mut(peer as usize) {
            if *a != 0 {
                *a = 0;
                self.live -= 1;
            }
        }
    }

    /// The deadline peer `peer` has armed.
    pub fn armed(&self, peer: u32) -> Option<u64> {
        self.armed.get(peer as usize).copied().filter(|&a| a != 0)
    }

    /// The peers with a deadline armed, by id (a scan of one word per peer id).
    pub fn armed_peers(&self) -> impl Iterator<Item = u32> + '_ {
        self.armed
            .iter()
            .enumerate()
            .filter(|(_, &a)| a != 0)
            .map(|(i, _)| i as u32)
    }

    /// Deadlines armed now.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Append to `due` every peer whose deadline is at or before `now`, in the order of
    /// their ticks, and disarm them.
    pub fn expire(&mut self, now: u64, due: &mut Vec<u32>) {
        let last = tick_of(now);
        if last < self.next_tick {
            return;
        }
        // Past a whole turn, every slot has been visited once.
        let first = self.next_tick.max(last.saturating_sub(SLOTS as u64 - 1));
        for tick in first..=last {
            let slot = &mut self.slots[(tick as usize) & (SLOTS - 1)];
            let armed = &mut self.armed;
            let live = &mut self.live;
            slot.retain(|&(peer, at)| {
                let a = &mut armed[peer as usize];
                if *a != at {
                    return false;
                }
                if at > now {
                    return true;
                }
                *a = 0;
                *live -= 1;
                due.push(peer);
                false
            });
        }
        // The tick of `now` is visited again next time: what it holds for later in
        // that tick is not due yet.
        self.next_tick = last;
        self.soonest = self.first_filled(now);
    }

    /// When `expire` next has something to report, at the earliest: `u64::MAX` when
    /// nothing is armed. The control loop sleeps until then (or a packet).
    pub fn next_deadline(&self) -> u64 {
        self.soonest
    }

    /// The start of the first tick, from `now`'s on, whose slot holds a live entry (a
    /// turn of the wheel at most; an entry a turn or more away makes this early, which
    /// costs a look, never a late deadline).
    fn first_filled(&self, now: u64) -> u64 {
        if self.live == 0 {
            return u64::MAX;
        }
        let armed = &self.armed;
        (self.next_tick..self.next_tick + SLOTS as u64)
            .find(|&tick| {
                self.slots[(tick as usize) & (SLOTS - 1)]
                    .iter()
                    .any(|&(peer, at)| armed[peer as usize] == at)
            })
            .map_or(u64::MAX, |tick| (tick * TICK).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn expire(w: &mut Wheel, now: u64) -> Vec<u32> {
        let mut due = Vec::new();
        w.expire(now, &mut due);
        due
    }

    #[test]
    fn the_next_deadline_is_never_late() {
        let mut w = Wheel::new(0);
        assert_eq!(w.next_deadline(), u64::MAX);
        w.arm(1, 5 * S + 3);
        assert_eq!(w.next_deadline(), 5 * S + 3);
        w.arm(2, 2 * S);
        assert_eq!(w.next_deadline(), 2 * S);
        assert!(expire(&mut w, S).is_empty());
        // After a visit: the start of the first tick holding a deadline.
        assert_eq!(w.next_deadline(), 2 * S);
        assert_eq!(expire(&mut w, 2 * S), [2]);
        assert_eq!(w.next_deadline(), 5 * S);
        // Disarmed and stale entries do not count.
        w.disarm(1);
        assert!(expire(&mut w, 3 * S).is_empty());
        assert_eq!(w.next_deadline(), u64::MAX);
        // A deadline more than a turn away is looked at early, never late.
        w.arm(3, 100 * S);
        assert!(expire(&mut w, 4 * S).is_empty());
        let next = w.next_deadline();
        assert!(next > 4 * S && next <= 100 * S, "{next}");
    }

    #[test]
    fn a_deadline_is_reported_once_when_due() {
        let mut w = Wheel::new(0);
        w.arm(7, 5 * S);
        w.arm(3, 2 * S);
        assert_eq!(w.len(), 2);
        assert!(expire(&mut w, S).is_empty());
        assert_eq!(expire(&mut w, 2 * S), [3]);
        assert!(expire(&mut w, 4 * S).is_empty());
        assert_eq!(expire(&mut w, 6 * S), [7]);
        assert!(expire(&mut w, 100 * S).is_empty());
        assert!(w.is_empty());
        assert_eq!(w.armed(7), None);
    }

    #[test]
    fn arming_again_replaces_and_disarming_forgets() {
        let mut w = Wheel::new(0);
        w.arm(1, 3 * S);
        w.arm(1, 9 * S);
        w.arm(2, 3 * S);
        w.disarm(2);
        assert_eq!(w.len(), 1);
        assert!(
            expire(&mut w, 5 * S).is_empty(),
            "the old deadline is stale"
        );
        assert_eq!(expire(&mut w, 9 * S), [1]);
        // arm_by keeps the earlier of two.
        w.arm(4, 2 * S + 9 * S);
        w.arm_by(4, 30 * S);
        assert_eq!(w.armed(4), Some(11 * S));
        w.arm_by(4, 10 * S);
        assert_eq!(w.armed(4), Some(10 * S));
        // The same deadline twice is one entry that counts.
        w.arm(5, 12 * S);
        w.arm(5, 12 * S);
        assert_eq!(expire(&mut w, 12 * S), [4, 5]);
    }

    #[test]
    fn deadlines_past_a_turn_of_the_wheel_wait_their_turn() {
        let turn = SLOTS as u64 * TICK;
        let mut w = Wheel::new(0);
        w.arm(1, 540 * S);
        w.arm(2, turn + TICK);
        w.arm(3, TICK);
        let mut seen = Vec::new();
        let mut t = 0;
        while t <= 600 * S {
            for p in expire(&mut w, t) {
                seen.push((p, t));
            }
            t += 7 * TICK;
        }
        assert_eq!(seen.len(), 3);
        for (p, at) in seen {
            let due = [0, 540 * S, turn + TICK, TICK][p as usize];
            assert!(
                at >= due && at < due + 7 * TICK,
                "peer {p} at {at}, due {due}"
            );
        }
    }

    #[test]
    fn a_long_sleep_reports_everything_due_in_it() {
        let mut w = Wheel::new(0);
        for p in 0..100u32 {
            w.arm(p, u64::from(p) * 3 * S + 1);
        }
        let mut due = expire(&mut w, 1000 * S);
        due.sort_unstable();
        assert_eq!(due, (0..100).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    #[test]
    fn a_deadline_in_the_past_is_due_at_once() {
        let mut w = Wheel::new(50 * S);
        assert!(expire(&mut w, 50 * S).is_empty());
        w.arm(9, 10 * S);
        assert_eq!(expire(&mut w, 50 * S + 1), [9]);
        // A deadline later in the tick being visited waits for its time, not for the
        // next turn of the wheel.
        w.arm(8, 50 * S + 5);
        assert!(expire(&mut w, 50 * S + 2).is_empty());
        assert_eq!(expire(&mut w, 50 * S + 6), [8]);
    }
}
