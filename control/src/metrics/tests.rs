use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use dataplane::activity::Activity;
use dataplane::counters::{DecryptDrop, Punt, WorkerCounters};
use dpdk_sys::telemetry::{Reply, Value};
use dpdk_sys::PortStats;

use super::*;
use crate::plane::{ControlDrop, ControlEvent};

/// A snapshot with one of everything and distinct numbers.
fn sample() -> Snapshot {
    let counters = WorkerCounters::default();
    counters.traffic.rx_outside.add(100);
    counters.traffic.vectors.add(4);
    counters.traffic.vector_packets.add(100);
    counters.traffic.busy_polls.add(4);
    counters.traffic.polls.add(10);
    counters.decrypt.add(DecryptDrop::BadTag, 3);
    counters.punt.add(Punt::Handshake, 2);
    counters
        .offload_events
        .add(dataplane::counters::OffloadEvent::ChecksumCompleted, 9);
    counters
        .spread
        .add(dataplane::counters::SpreadEvent::HelpedSeal, 7);
    counters
        .runtime
        .record(dataplane::counters::Stage::Decrypt, 40, 12_000);
    counters
        .runtime
        .record(dataplane::counters::Stage::Decrypt, 0, 0);

    let activity = Activity::new(1);
    let w = activity.writer();
    w.add_rx(0, 7, 700, true, 1);
    w.add_tx(0, 5, 500, true, 1);
    let mut peer = PeerSnapshot::new(0, &[0x11; 32], &activity.total(0));
    peer.latest_handshake = 1_700_000_000;
    peer.handshakes = 2;

    let mut s = Snapshot::new("DPDK 22.11.0");
    s.taken_at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
    s.tsc_hz = 2_000_000_000;
    s.peers.push(peer);
    s.peers_configured = 1;
    s.peers_active = 1;
    s.workers.push(WorkerSnapshot::new("1", &counters));
    let stats = ControlStats {
        handshake_errors: HashMap::from([("bad_mac1", 4)]),
        ..ControlStats::default()
    };
    stats.events.add(ControlEvent::InitiationsSent, 9);
    stats.drops.add(ControlDrop::StagedFull, 3);
    s.set_control(&stats);
    s.control_drops.insert("ring_full".into(), 1);
    s.mempools.push(MempoolSnapshot {
        name: "wgdp_pkts".into(),
        capacity: 8192,
        in_use: 1500,
    });
    for (name, ipackets) in [("outside", 1000), ("inside", 2000)] {
        s.ports.push(PortSnapshot {
            name: name.into(),
            stats: PortStats {
                ipackets,
                rx_nombuf: 6,
                ..PortStats::default()
            },
        });
    }
    s
}

#[test]
fn worker_snapshot_has_every_reason() {
    let c = WorkerCounters::default();
    c.decrypt.add(DecryptDrop::Replay, 2);
    let w = WorkerSnapshot::new("3", &c);
    let stages: Vec<_> = w.drops.iter().map(|d| d.stage).collect();
    for stage in ["classify", "decrypt", "route", "offload", "encrypt", "tx"] {
        assert!(stages.contains(&stage), "{stage} missing");
    }
    let expected = DecryptDrop::ALL.len()
        + c.classify.snapshot().count()
        + c.route.snapshot().count()
        + c.offload.snapshot().count()
        + c.encrypt.snapshot().count()
        + c.tx.snapshot().count();
    assert_eq!(w.drops.len(), expected);
    let replay = w
        .drops
        .iter()
        .find(|d| d.stage == "decrypt" && d.reason == "replay")
        .unwrap();
    assert_eq!(replay.count, 2);
    assert_eq!(w.punts.len(), Punt::ALL.len());
}

#[test]
fn publisher_swaps_whole_snapshots() {
    let publisher = Publisher::new();
    let reader = publisher.reader();
    assert!(reader.load().peers.is_empty());
    let held = reader.load();
    publisher.publish(sample());
    assert_eq!(reader.load().peers.len(), 1);
    assert!(held.peers.is_empty(), "a loaded snapshot never changes");
}

/// The value on the line of `name` whose labels contain every one of `labels`.
fn sample_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn render_shows_every_figure() {
    let text = render(&sample());
    let v = |name, labels: &[&str]| {
        sample_value(&text, name, labels).unwrap_or_else(|| panic!("{name} {labels:?}:\n{text}"))
    };
    let key = crate::keys::encode(&[0x11; 32]);
    let peer = format!("public_key=\"{key}\"");
    assert_eq!(v("wgdp_peer_rx_packets_total", &[&peer, "id=\"0\""]), 7.0);
    assert_eq!(v("wgdp_peer_tx_bytes_total", &[&peer]), 500.0);
    assert_eq!(
        v("wgdp_peer_latest_handshake_seconds", &[&peer]),
        1_700_000_000.0
    );
    assert_eq!(v("wgdp_peer_handshakes_total", &[&peer]), 2.0);
    assert_eq!(
        v(
            "wgdp_worker_drops_total",
            &["lcore=\"1\"", "stage=\"decrypt\"", "reason=\"bad_tag\""]
        ),
        3.0
    );
    assert_eq!(
        v(
            "wgdp_worker_drops_total",
            &["stage=\"classify\"", "reason=\"malformed\""]
        ),
        0.0
    );
    assert_eq!(v("wgdp_worker_punts_total", &["reason=\"handshake\""]), 2.0);
    assert_eq!(
        v(
            "wgdp_worker_offload_total",
            &["lcore=\"1\"", "event=\"checksum_completed\""]
        ),
        9.0
    );
    assert_eq!(
        v("wgdp_worker_offload_total", &["event=\"superpacket_cut\""]),
        0.0
    );
    assert_eq!(
        v(
            "wgdp_worker_spread_total",
            &["lcore=\"1\"", "event=\"helped_seal\""]
        ),
        7.0
    );
    assert_eq!(
        v("wgdp_worker_spread_total", &["event=\"handed_open\""]),
        0.0
    );
    assert_eq!(
        v("wgdp_worker_rx_packets_total", &["port=\"outside\""]),
        100.0
    );
    assert_eq!(v("wgdp_worker_vector_packets_total", &[]), 100.0);
    assert_eq!(v("wgdp_worker_busy_polls_total", &[]), 4.0);
    assert_eq!(
        v("wgdp_control_events_total", &["event=\"initiations_sent\""]),
        9.0
    );
    assert_eq!(
        v("wgdp_control_drops_total", &["reason=\"ring_full\""]),
        1.0
    );
    assert_eq!(
        v("wgdp_control_drops_total", &["reason=\"staged_full\""]),
        3.0
    );
    assert_eq!(
        v("wgdp_control_drops_total", &["reason=\"no_buffer\""]),
        0.0
    );
    assert_eq!(
        v(
            "wgdp_control_handshake_errors_total",
            &["reason=\"bad_mac1\""]
        ),
        4.0
    );
    assert_eq!(
        v("wgdp_mempool_in_use_mbufs", &["pool=\"wgdp_pkts\""]),
        1500.0
    );
    assert_eq!(v("wgdp_mempool_capacity_mbufs", &[]), 8192.0);
    assert_eq!(
        v("wgdp_port_rx_packets_total", &["port=\"inside\""]),
        2000.0
    );
    assert_eq!(v("wgdp_port_rx_nombuf_total", &["port=\"outside\""]), 6.0);
    assert_eq!(v("wgdp_build_info", &["dpdk=\"DPDK 22.11.0\""]), 1.0);
    assert_eq!(v("wgdp_snapshot_timestamp_seconds", &[]), 1_700_000_000.5);
    let decrypt = ["worker=\"1\"", "stage=\"decrypt\""];
    assert_eq!(v("wgdp_worker_stage_calls_total", &decrypt), 2.0);
    assert_eq!(v("wgdp_worker_stage_vectors_total", &decrypt), 1.0);
    assert_eq!(v("wgdp_worker_stage_packets_total", &decrypt), 40.0);
    assert_eq!(v("wgdp_worker_stage_clocks_total", &decrypt), 12_000.0);
    assert_eq!(
        v(
            "wgdp_worker_stage_clocks_total",
            &["stage=\"encrypt_crypto\""]
        ),
        0.0
    );
    assert_eq!(v("wgdp_tsc_hz", &[]), 2_000_000_000.0);
}

#[test]
fn render_follows_the_naming_rules() {
    let text = render(&sample());
    let mut families = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families += 1;
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(name.starts_with("wgdp_"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
    }
    assert!(families >= 30, "{families} families:\n{text}");
}

#[test]
fn empty_snapshot_renders() {
    let text = render(&Snapshot::default());
    assert!(text.contains("wgdp_build_info"), "{text}");
    assert!(!text.contains("wgdp_peer_"), "{text}");
}

fn dict(reply: Option<Reply>) -> dpdk_sys::telemetry::Dict {
    let reply = reply.expect("an answer");
    reply.validate().expect("DPDK accepts the answer");
    match reply {
        Reply::Dict(d) => d,
        other => panic!("not a dict: {other:?}"),
    }
}

#[test]
fn telemetry_answers_fit_dpdk() {
    let s = sample();
    let key = crate::keys::encode(&[0x11; 32]);

    let info = dict(telemetry::info(&s, None));
    assert_eq!(info.get("peers"), Some(&Value::U64(1)));
    assert_eq!(info.get("taken_at"), Some(&Value::U64(1_700_000_000)));
    assert_eq!(
        info.get("mempool/wgdp_pkts/in_use"),
        Some(&Value::U64(1500))
    );

    let control = dict(telemetry::control(&s, None));
    assert_eq!(control.get("initiations_sent"), Some(&Value::U64(9)));
    assert_eq!(control.get("drops/staged_full"), Some(&Value::U64(3)));
    assert_eq!(
        control.get("handshake_errors/bad_mac1"),
        Some(&Value::U64(4))
    );

    for by in ["0", key.as_str()] {
        let peer = dict(telemetry::peer(&s, Some(by)));
        assert_eq!(peer.get("rx_bytes"), Some(&Value::U64(700)), "{by}");
        assert_eq!(peer.get("public_key"), Some(&Value::String(key.clone())));
    }
    assert_eq!(telemetry::peer(&s, Some("1")), None);
    assert_eq!(telemetry::peer(&s, None), None);
    assert_eq!(telemetry::peers(&s, None), Some(Reply::U64s(vec![0])));
    assert_eq!(telemetry::peers(&s, Some("1")), Some(Reply::U64s(vec![])));
    assert_eq!(telemetry::peers(&s, Some("x")), None);

    assert_eq!(
        telemetry::workers(&s, None),
        Some(Reply::Strings(vec!["1".into()]))
    );
    let worker = dict(telemetry::worker(&s, Some("1")));
    assert_eq!(worker.get("drops/decrypt/bad_tag"), Some(&Value::U64(3)));
    assert_eq!(worker.get("punts/handshake"), Some(&Value::U64(2)));
    assert_eq!(
        worker.get("offload/checksum_completed"),
        Some(&Value::U64(9))
    );
    assert_eq!(worker.get("polls"), Some(&Value::U64(10)));
    assert_eq!(telemetry::worker(&s, Some("2")), None);

    let ports = dict(telemetry::ports(&s, None));
    assert_eq!(ports.get("inside/ipackets"), Some(&Value::U64(2000)));
    assert_eq!(ports.get("outside/rx_nombuf"), Some(&Value::U64(6)));
}

#[test]
fn telemetry_keys_are_sanitised() {
    let mut s = sample();
    s.control.insert("odd-name.x".into(), 1);
    let control = dict(telemetry::control(&s, None));
    assert_eq!(control.get("odd_name_x"), Some(&Value::U64(1)));
}

#[test]
fn peer_list_stays_within_dpdk_limits() {
    let mut s = sample();
    let template = s.peers[0].clone();
    s.peers = (0..1000)
        .rev()
        .map(|id| PeerSnapshot {
            id,
            ..template.clone()
        })
        .collect();
    let Some(Reply::U64s(first)) = telemetry::peers(&s, None) else {
        panic!("a list");
    };
    assert_eq!(first.len(), dpdk_sys::telemetry::MAX_ARRAY_ENTRIES);
    assert_eq!(first[0], 0);
    let next = first.last().unwrap() + 1;
    let Some(Reply::U64s(rest)) = telemetry::peers(&s, Some(&next.to_string())) else {
        panic!("a list");
    };
    assert_eq!(rest.len(), 1000 - first.len());
}

#[test]
fn telemetry_commands_register_once_at_a_time() {
    let publisher = Publisher::new();
    let first = register_telemetry(&publisher.reader()).expect("DPDK takes every name and help");
    let err = register_telemetry(&publisher.reader()).unwrap_err();
    assert!(err.contains("/wgdp/info"), "{err}");
    drop(first);
    register_telemetry(&publisher.reader()).expect("free again after the drop");
}

#[test]
fn per_peer_series_are_bounded_to_the_busiest() {
    let template = sample().peers[0].clone();
    let peers: Vec<PeerSnapshot> = (0..50u32)
        .map(|id| PeerSnapshot {
            id,
            rx_bytes: u64::from(id % 10) * 1000,
            tx_bytes: u64::from(id),
            ..template.clone()
        })
        .collect();
    // Within the limit: all of them, in id order.
    assert_eq!(Snapshot::select_peers(peers.clone(), 50).len(), 50);
    // Past it: the busiest by bytes both ways (ids ending in 9, then the biggest ending
    // in 8), in id order.
    let kept = Snapshot::select_peers(peers.clone(), 7);
    let ids: Vec<u32> = kept.iter().map(|p| p.id).collect();
    assert_eq!(ids, [9, 19, 29, 38, 39, 48, 49]);
    assert!(Snapshot::select_peers(peers, 0).is_empty());

    let mut s = sample();
    s.peers_configured = 1_000_000;
    s.peers_active = 12;
    let text = render(&s);
    let v = |labels: &[&str]| sample_value(&text, "wgdp_peers", labels).unwrap();
    assert_eq!(v(&["state=\"configured\""]), 1_000_000.0);
    assert_eq!(v(&["state=\"active\""]), 12.0);
}
