use super::*;

fn net(s: &str) -> (IpAddr, u8) {
    let (a, l) = s.split_once('/').unwrap();
    (a.parse().unwrap(), l.parse().unwrap())
}

fn route(s: &str) -> Route {
    let (addr, len) = net(s);
    Route { addr, len }
}

/// Peers as a sweep sees them: (id, live, allowed IPs).
type Peers = Vec<(u32, bool, Vec<(IpAddr, u8)>)>;

/// A whole sweep in steps of `budget`; the changes it made.
fn sweep(r: &mut Routes, peers: &Peers, budget: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    r.begin();
    let mut steps = 0;
    loop {
        steps += 1;
        let from = r.cursor();
        let it = peers
            .iter()
            .filter(|p| p.0 >= from)
            .map(|p| (p.0, p.1, p.2.as_slice()));
        if r.step(it, budget, &mut ops) {
            break;
        }
        assert!(steps < 10_000, "a sweep ends");
    }
    ops
}

/// The table the changes make, from `table`.
fn apply(table: &mut std::collections::BTreeSet<Route>, ops: &[Op]) {
    for op in ops {
        let Op::Route(add, r) = *op else {
            panic!("{op:?} is no route")
        };
        if add {
            assert!(table.insert(r), "{r:?} added twice");
        } else {
            assert!(table.remove(&r), "{r:?} deleted while absent");
        }
    }
}

#[test]
fn live_peers_are_added_and_peers_that_go_lose_their_routes() {
    let mut r = Routes::default();
    let mut table = Default::default();
    let mut peers: Peers = vec![
        (
            0,
            true,
            vec![net("198.18.100.1/32"), net("2001:2:0:100::1/128")],
        ),
        (1, false, vec![net("198.18.100.2/32")]),
        (5, true, vec![net("198.18.101.0/24")]),
    ];
    let ops = sweep(&mut r, &peers, 2);
    apply(&mut table, &ops);
    assert_eq!(ops.len(), 3);
    assert!(table.contains(&route("198.18.100.1/32")));
    assert!(table.contains(&route("198.18.101.0/24")));
    assert!(!table.contains(&route("198.18.100.2/32")));

    // Nothing changed: nothing to write.
    assert!(sweep(&mut r, &peers, 1).is_empty());

    // Peer 1 gets a session, peer 0 loses it, peer 5 goes (no longer active).
    peers[0].1 = false;
    peers[1].1 = true;
    peers.pop();
    let ops = sweep(&mut r, &peers, 1);
    apply(&mut table, &ops);
    let want: std::collections::BTreeSet<Route> = [route("198.18.100.2/32")].into();
    assert_eq!(table, want);
    assert_eq!(r.len(), 1);
}

#[test]
fn changed_allowed_ips_change_only_the_routes_that_differ() {
    let mut r = Routes::default();
    let mut table = Default::default();
    let mut peers: Peers = vec![(3, true, vec![net("198.18.1.0/24"), net("198.18.2.0/24")])];
    apply(&mut table, &sweep(&mut r, &peers, 10));
    peers[0].2 = vec![net("198.18.2.0/24"), net("198.18.3.0/24")];
    let ops = sweep(&mut r, &peers, 10);
    assert_eq!(
        ops,
        vec![
            Op::Route(false, route("198.18.1.0/24")),
            Op::Route(true, route("198.18.3.0/24"))
        ]
    );
    apply(&mut table, &ops);
}

#[test]
fn a_network_moving_between_peers_stays_in_the_table_in_either_order() {
    // Peer 9 had the network; peer 2 (seen earlier in the sweep) takes it: the route
    // is claimed twice for a moment and never deleted.
    let mut r = Routes::default();
    let mut table = Default::default();
    let peers: Peers = vec![(9, true, vec![net("198.18.7.0/24")])];
    apply(&mut table, &sweep(&mut r, &peers, 10));
    let peers: Peers = vec![(2, true, vec![net("198.18.7.0/24")]), (9, true, vec![])];
    let ops = sweep(&mut r, &peers, 1);
    assert!(ops.is_empty(), "{ops:?}");
    apply(&mut table, &ops);
    assert!(table.contains(&route("198.18.7.0/24")));
    // And the other way.
    let peers: Peers = vec![(2, true, vec![]), (9, true, vec![net("198.18.7.0/24")])];
    let ops = sweep(&mut r, &peers, 1);
    apply(&mut table, &ops);
    assert!(table.contains(&route("198.18.7.0/24")));
}

/// xorshift64*: deterministic.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

#[test]
fn random_sweeps_keep_the_table_equal_to_the_live_peers() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut r = Routes::default();
    let mut table = std::collections::BTreeSet::new();
    let nets: Vec<(IpAddr, u8)> = (0..40u8)
        .map(|i| (IpAddr::from([198, 18, i, 0]), 24))
        .collect();
    for _ in 0..400 {
        // Each network to at most one peer, as the configuration demands.
        let mut peers: Peers = (0..20).map(|id| (id, rng.below(10) < 6, vec![])).collect();
        for n in &nets {
            if rng.below(10) < 8 {
                let p = rng.below(peers.len());
                peers[p].2.push(*n);
            }
        }
        peers.retain(|_| rng.below(10) < 9);
        apply(&mut table, &sweep(&mut r, &peers, 1 + rng.below(29)));
        let want: std::collections::BTreeSet<Route> = peers
            .iter()
            .filter(|p| p.1)
            .flat_map(|p| p.2.iter().map(|&(addr, len)| Route { addr, len }))
            .collect();
        assert_eq!(table, want);
    }
}

#[test]
fn health_needs_every_worker_polling_and_falls_when_one_stalls() {
    let ms = 1_000_000;
    let mut h = Health::new(1000 * ms);
    assert_eq!(h.observe([5, 7].into_iter(), 0), None);
    // Only one worker moved.
    assert_eq!(h.observe([6, 7].into_iter(), 100 * ms), None);
    assert_eq!(h.observe([7, 8].into_iter(), 200 * ms), Some(true));
    // Quiet for less than the stall time: still polling (an idle worker polls, so
    // this is a hang, not silence).
    assert_eq!(h.observe([7, 9].into_iter(), 1100 * ms), None);
    assert_eq!(h.observe([7, 10].into_iter(), 1200 * ms), Some(false));
    assert!(!h.healthy());
    assert_eq!(h.observe([8, 11].into_iter(), 1300 * ms), Some(true));
    // No workers at all is never healthy.
    let mut none = Health::new(ms);
    assert_eq!(none.observe(std::iter::empty(), 0), None);
    assert!(!none.healthy());
}
