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
//! nanoseconds each, a deadline filed in the slot of the first tick that starts at or
//! after it, so that it is reported at most one `TICK` late, never early. Re-arming
//! leaves the old entry where it is; an entry counts only while it matches the peer's
//! armed deadline, so arming and disarming are O(1). Expiring visits the slots of the
//! ticks that started, each once: an entry is reported when due, kept when its deadline
//! is a whole turn of the wheel or more away (`SLOTS` x `TICK` = 41 s; a deadline of
//! 540 s is looked at 14 times before it is due), and dropped when stale. A deadline
//! armed for a tick already visited (a time past, such as 0 for "at the next round")
//! waits in a list of its own that the next `expire` reports first.
//!
//! A slot is never visited twice in a turn: with 10^5 peers in session each rechecked
//! every second, a slot holds about a thousand entries, and visiting the tick in
//! progress again on every round of the control loop (as this wheel first did) took a
//! quarter of the control thread during a restart storm (docs/architecture.md,
//! section 5).

/// Width of a slot, ns.
pub const TICK: u64 = 10_000_000;
/// Slots in the wheel (a power of two).
const SLOTS: usize = 4096;

pub struct Wheel {
    slots: Vec<Vec<(u32, u64)>>,
    /// Deadlines armed for a tick already visited: due at the next `expire`.
    overdue: Vec<(u32, u64)>,
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

/// The tick in progress at `at`.
#[inline]
fn tick_of(at: u64) -> u64 {
    at / TICK
}

/// The first tick that starts at or after `at`: where a deadline of `at` is filed.
#[inline]
fn tick_from(at: u64) -> u64 {
    at.div_ceil(TICK)
}

impl Wheel {
    /// An empty wheel whose first tick is that of `now`.
    pub fn new(now: u64) -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            overdue: Vec::new(),
            armed: Vec::new(),
            next_tick: tick_from(now),
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
        let tick = tick_from(at);
        if tick < self.next_tick {
            self.overdue.push((peer, at));
            self.soonest = 0;
        } else {
            self.slots[(tick as usize) & (SLOTS - 1)].push((peer, at));
            self.soonest = self.soonest.min(tick * TICK);
        }
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
        for (peer, at) in self.overdue.drain(..) {
            let a = &mut self.armed[peer as usize];
            if *a == at {
                *a = 0;
                self.live -= 1;
                due.push(peer);
            }
        }
        let last = tick_of(now);
        if last < self.next_tick {
            self.soonest = self.first_filled(now);
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
        // Every deadline filed in a visited tick is at or before its start, so at or
        // before `now`: the next visit starts after it.
        self.next_tick = last + 1;
        self.soonest = self.first_filled(now);
    }

    /// When `expire` next has something to report, at the earliest: `u64::MAX` when
    /// nothing is armed. The control loop sleeps until then (or a packet).
    pub fn next_deadline(&self) -> u64 {
        self.soonest
    }

    /// The start of the first tick to visit whose slot holds a live entry (a turn of
    /// the wheel at most; an entry a turn or more away makes this early, which costs a
    /// look, never a late deadline). Called by `expire`, after it emptied `overdue`.
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
        // Reported at the start of the next tick: never early, at most a tick late.
        assert_eq!(w.next_deadline(), 5 * S + TICK);
        w.arm(2, 2 * S);
        assert_eq!(w.next_deadline(), 2 * S);
        assert!(expire(&mut w, S).is_empty());
        // After a visit: the start of the first tick holding a deadline.
        assert_eq!(w.next_deadline(), 2 * S);
        assert_eq!(expire(&mut w, 2 * S), [2]);
        assert_eq!(w.next_deadline(), 5 * S + TICK);
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
        // A deadline later in the tick being visited waits for the next tick, not for
        // the next turn of the wheel.
        w.arm(8, 50 * S + 5);
        assert!(expire(&mut w, 50 * S + 2).is_empty());
        assert!(expire(&mut w, 50 * S + 6).is_empty());
        assert_eq!(w.next_deadline(), 50 * S + TICK);
        assert_eq!(expire(&mut w, 50 * S + TICK), [8]);
        // "At the next round": due at the next expire, whatever the time.
        w.arm(4, 0);
        assert_eq!(w.next_deadline(), 0);
        assert_eq!(expire(&mut w, 50 * S + TICK), [4]);
    }

    #[test]
    fn a_slot_is_visited_once_a_turn() {
        // The tick in progress is not visited again on every call: its entries for
        // later are in the next tick's slot.
        let mut w = Wheel::new(0);
        for p in 0..1000u32 {
            w.arm(p, S + 1 + u64::from(p) * 1000);
        }
        let mut due = Vec::new();
        let mut calls = 0;
        let mut t = S - TICK;
        while due.len() < 1000 {
            if t >= w.next_deadline() {
                w.expire(t, &mut due);
                calls += 1;
            }
            t += 1000;
        }
        assert!((S + TICK..=S + TICK + 1000).contains(&t), "{t}");
        assert_eq!(calls, 1, "one look at the slot, when its tick started");
    }
}
