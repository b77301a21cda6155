//! A [`Snapshot`] in the Prometheus text exposition format (version 0.0.4).
//!
//! Every scrape builds a fresh registry from the snapshot: the figures are copies
//! already, so there is nothing to keep between scrapes, and a peer removed by a reload
//! simply stops appearing. Names start with `wgdp_`; counters end in `_total`; every
//! family has a HELP line (`promtool check metrics` finds nothing to say).

use std::time::UNIX_EPOCH;

use prometheus::core::{AtomicU64, GenericGaugeVec};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use super::Snapshot;

type U64GaugeVec = GenericGaugeVec<AtomicU64>;

/// The Prometheus text for `s`.
pub fn render(s: &Snapshot) -> String {
    let r = Registry::new();

    let build = gauge_f64(
        &r,
        "wgdp_build_info",
        "wgdp and DPDK versions; always 1",
        &["version", "dpdk"],
    );
    build
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &s.dpdk_version])
        .set(1.0);
    let taken = s
        .taken_at
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    gauge_f64(
        &r,
        "wgdp_snapshot_timestamp_seconds",
        "Unix time when the control thread took these figures (about every 0.5 s)",
        &[],
    )
    .with_label_values(&[])
    .set(taken);
    gauge_u64(
        &r,
        "wgdp_tsc_hz",
        "TSC clocks per second: the unit of wgdp_worker_stage_clocks_total",
        &[],
    )
    .with_label_values(&[])
    .set(s.tsc_hz);

    peers(&r, s);
    workers(&r, s);
    control(&r, s);
    mempools(&r, s);
    ports(&r, s);

    TextEncoder::new()
        .encode_to_string(&r.gather())
        .expect("gather returns only families with a name and samples")
}

fn peers(r: &Registry, s: &Snapshot) {
    let count = gauge_u64(
        r,
        "wgdp_peers",
        "Peers configured, and active ones (a session, a handshake under way or a \
         persistent keepalive); per-peer series cover every peer up to \
         metrics.peer_series, and the busiest active ones beyond",
        &["state"],
    );
    count
        .with_label_values(&["configured"])
        .set(s.peers_configured);
    count.with_label_values(&["active"]).set(s.peers_active);
    let labels = &["public_key", "id"];
    let rx_packets = counter(
        r,
        "wgdp_peer_rx_packets_total",
        "Authenticated transport messages received from the peer, keepalives included",
        labels,
    );
    let tx_packets = counter(
        r,
        "wgdp_peer_tx_packets_total",
        "Transport messages sent to the peer, keepalives included",
        labels,
    );
    let rx_bytes = counter(
        r,
        "wgdp_peer_rx_bytes_total",
        "Bytes of the authenticated transport messages received from the peer",
        labels,
    );
    let tx_bytes = counter(
        r,
        "wgdp_peer_tx_bytes_total",
        "Bytes of the transport messages sent to the peer",
        labels,
    );
    let latest = gauge_u64(
        r,
        "wgdp_peer_latest_handshake_seconds",
        "Unix time of the latest completed handshake with the peer; 0 if none",
        labels,
    );
    let handshakes = counter(
        r,
        "wgdp_peer_handshakes_total",
        "Handshakes completed with the peer",
        labels,
    );
    for p in &s.peers {
        let id = p.id.to_string();
        let l = [p.public_key.as_str(), id.as_str()];
        rx_packets.with_label_values(&l).inc_by(p.rx_packets);
        tx_packets.with_label_values(&l).inc_by(p.tx_packets);
        rx_bytes.with_label_values(&l).inc_by(p.rx_bytes);
        tx_bytes.with_label_values(&l).inc_by(p.tx_bytes);
        latest.with_label_values(&l).set(p.latest_handshake);
        handshakes.with_label_values(&l).inc_by(p.handshakes);
    }
}

fn workers(r: &Registry, s: &Snapshot) {
    let rx = counter(
        r,
        "wgdp_worker_rx_packets_total",
        "Frames the worker received, by port",
        &["lcore", "port"],
    );
    let tx = counter(
        r,
        "wgdp_worker_tx_packets_total",
        "Frames the worker transmitted, by port",
        &["lcore", "port"],
    );
    let lcore = &["lcore"];
    let decrypted = counter(
        r,
        "wgdp_worker_decrypted_packets_total",
        "Transport messages decrypted and authenticated",
        lcore,
    );
    let encrypted = counter(
        r,
        "wgdp_worker_encrypted_packets_total",
        "Packets encrypted into transport messages",
        lcore,
    );
    let keepalives = counter(
        r,
        "wgdp_worker_keepalives_received_total",
        "Authenticated keepalives (empty transport messages) received",
        lcore,
    );
    let from_control = counter(
        r,
        "wgdp_worker_control_frames_total",
        "Frames the control thread handed this worker to transmit",
        lcore,
    );
    let vectors = counter(
        r,
        "wgdp_worker_vectors_total",
        "Vectors (bursts) processed; packets per vector = vector_packets / vectors",
        lcore,
    );
    let vector_packets = counter(
        r,
        "wgdp_worker_vector_packets_total",
        "Packets in all vectors processed",
        lcore,
    );
    let polls = counter(
        r,
        "wgdp_worker_polls_total",
        "Polls of the RX queues",
        lcore,
    );
    let busy_polls = counter(
        r,
        "wgdp_worker_busy_polls_total",
        "Polls that found work; busy share = busy_polls / polls",
        lcore,
    );
    let drops = counter(
        r,
        "wgdp_worker_drops_total",
        "Packets dropped, by stage (classify, decrypt, route, offload, encrypt, tx) and reason",
        &["lcore", "stage", "reason"],
    );
    let punts = counter(
        r,
        "wgdp_worker_punts_total",
        "Packets handed to the control thread, by reason",
        &["lcore", "reason"],
    );
    let offload = counter(
        r,
        "wgdp_worker_offload_total",
        "Work done on frames a local sender left to its network card: checksums completed, \
         super-packets cut and the pieces made",
        &["lcore", "event"],
    );
    let spread = counter(
        r,
        "wgdp_worker_spread_total",
        "AEAD work shared between workers: packets handed to another worker to open or \
         seal, packets opened or sealed for another worker, and packets a full helper \
         left to their own worker",
        &["lcore", "event"],
    );
    let stage_labels = &["worker", "stage"];
    let stage_calls = counter(
        r,
        "wgdp_worker_stage_calls_total",
        "Runs of each step of the worker loop (rx: every rx_burst, empty ones included)",
        stage_labels,
    );
    let stage_vectors = counter(
        r,
        "wgdp_worker_stage_vectors_total",
        "Runs of each step of the worker loop with at least one packet",
        stage_labels,
    );
    let stage_packets = counter(
        r,
        "wgdp_worker_stage_packets_total",
        "Packets through each step of the worker loop",
        stage_labels,
    );
    let stage_clocks = counter(
        r,
        "wgdp_worker_stage_clocks_total",
        "TSC clocks spent in each step of the worker loop (decrypt_crypto and \
         encrypt_crypto are the crypto backend's part of decrypt and encrypt)",
        stage_labels,
    );
    for w in &s.workers {
        let l = w.lcore.as_str();
        let t = &w.traffic;
        for o in &w.offload {
            offload.with_label_values(&[l, o.event]).inc_by(o.count);
        }
        for o in &w.spread {
            spread.with_label_values(&[l, o.event]).inc_by(o.count);
        }
        for st in &w.stages {
            let labels = [l, st.stage];
            stage_calls.with_label_values(&labels).inc_by(st.calls);
            stage_vectors.with_label_values(&labels).inc_by(st.vectors);
            stage_packets.with_label_values(&labels).inc_by(st.packets);
            stage_clocks.with_label_values(&labels).inc_by(st.clocks);
        }
        for (port, rx_n, tx_n) in [
            ("outside", t.rx_outside, t.tx_outside),
            ("inside", t.rx_inside, t.tx_inside),
        ] {
            rx.with_label_values(&[l, port]).inc_by(rx_n);
            tx.with_label_values(&[l, port]).inc_by(tx_n);
        }
        for (family, value) in [
            (&decrypted, t.decrypted),
            (&encrypted, t.encrypted),
            (&keepalives, t.keepalives_rx),
            (&from_control, t.from_control),
            (&vectors, t.vectors),
            (&vector_packets, t.vector_packets),
            (&polls, t.polls),
            (&busy_polls, t.busy_polls),
        ] {
            family.with_label_values(&[l]).inc_by(value);
        }
        for d in &w.drops {
            drops
                .with_label_values(&[l, d.stage, d.reason])
                .inc_by(d.count);
        }
        for p in &w.punts {
            punts.with_label_values(&[l, p.reason]).inc_by(p.count);
        }
    }
}

fn control(r: &Registry, s: &Snapshot) {
    let events = counter(
        r,
        "wgdp_control_events_total",
        "What the control thread did, by event: handshake messages sent and completed, \
         timeouts, keepalives, ICMP errors, fragmentation, ARP/ND and control port traffic",
        &["event"],
    );
    for (name, &value) in &s.control {
        events.with_label_values(&[name]).inc_by(value);
    }
    let drops = counter(
        r,
        "wgdp_control_drops_total",
        "Packets and handshake messages the control thread dropped, by reason",
        &["reason"],
    );
    for (name, &value) in &s.control_drops {
        drops.with_label_values(&[name]).inc_by(value);
    }
    let errors = counter(
        r,
        "wgdp_control_handshake_errors_total",
        "Handshake messages the control thread refused, by reason",
        &["reason"],
    );
    for (reason, &value) in &s.handshake_errors {
        errors.with_label_values(&[reason]).inc_by(value);
    }
}

fn mempools(r: &Registry, s: &Snapshot) {
    let capacity = gauge_u64(
        r,
        "wgdp_mempool_capacity_mbufs",
        "Mbufs in the packet pool",
        &["pool"],
    );
    let in_use = gauge_u64(
        r,
        "wgdp_mempool_in_use_mbufs",
        "Mbufs of the pool allocated (in flight, in NIC and inter-thread rings)",
        &["pool"],
    );
    for p in &s.mempools {
        capacity.with_label_values(&[&p.name]).set(p.capacity);
        in_use.with_label_values(&[&p.name]).set(p.in_use);
    }
}

fn ports(r: &Registry, s: &Snapshot) {
    let family = |name, help| counter(r, name, help, &["port"]);
    let ipackets = family(
        "wgdp_port_rx_packets_total",
        "Packets received by the port (DPDK ipackets)",
    );
    let opackets = family(
        "wgdp_port_tx_packets_total",
        "Packets sent by the port (DPDK opackets)",
    );
    let ibytes = family(
        "wgdp_port_rx_bytes_total",
        "Bytes received by the port (DPDK ibytes)",
    );
    let obytes = family(
        "wgdp_port_tx_bytes_total",
        "Bytes sent by the port (DPDK obytes)",
    );
    let imissed = family(
        "wgdp_port_rx_missed_total",
        "Packets the device dropped because the RX queues were full (DPDK imissed)",
    );
    let ierrors = family(
        "wgdp_port_rx_errors_total",
        "Erroneous packets received (DPDK ierrors)",
    );
    let oerrors = family(
        "wgdp_port_tx_errors_total",
        "Packets the device failed to send (DPDK oerrors)",
    );
    let nombuf = family(
        "wgdp_port_rx_nombuf_total",
        "RX descriptors not refilled because the pool was empty (DPDK rx_nombuf)",
    );
    for p in &s.ports {
        let l = [p.name.as_str()];
        let st = &p.stats;
        for (family, value) in [
            (&ipackets, st.ipackets),
            (&opackets, st.opackets),
            (&ibytes, st.ibytes),
            (&obytes, st.obytes),
            (&imissed, st.imissed),
            (&ierrors, st.ierrors),
            (&oerrors, st.oerrors),
            (&nombuf, st.rx_nombuf),
        ] {
            family.with_label_values(&l).inc_by(value);
        }
    }
}

// Names and labels are constants of this file, so a registration failure is a bug that
// the tests of this module hit first.

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_u64(r: &Registry, name: &str, help: &str, labels: &[&str]) -> U64GaugeVec {
    let g = U64GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_f64(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}
