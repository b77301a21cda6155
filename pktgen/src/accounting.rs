//! Where the packets that did not come out went: the gateway's counters of packets it
//! did not forward, read from its Prometheus endpoint before and after a trial.
//!
//! A wgdp gateway counts every packet it does not forward under a named counter
//! (docs/operations.md): the worker's `wgdp_worker_drops_total{stage,reason}`, the
//! ports' missed, error and no-buffer counters, the control thread's drops
//! (`wgdp_control_drops_total{reason}`),
//! and the packets the worker hands the control thread to answer instead of forwarding
//! them (`wgdp_worker_punts_total` with reason `icmp_error`: too big for the tunnel, TTL
//! expired; `local` and `tunnel_local`: for the gateway itself). The sum of their
//! increases over a trial, plus what the generator received, must equal what it sent.

use std::collections::BTreeMap;

/// Control drops of packets that the punts counted here already: the packet that called
/// for an ICMP error that was not sent, and one for the gateway without a control port.
const PUNTED: [&str; 3] = ["icmp_suppressed", "icmp_rate_limited", "no_control_port"];

/// Every drop series of a Prometheus text, by its full name with labels.
pub fn drop_series(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let counted = matches!(
            name,
            "wgdp_worker_drops_total"
                | "wgdp_port_rx_missed_total"
                | "wgdp_port_rx_errors_total"
                | "wgdp_port_tx_errors_total"
                | "wgdp_port_rx_nombuf_total"
        ) || (name == "wgdp_control_drops_total"
            && !PUNTED
                .iter()
                .any(|r| labels.contains(&format!("reason=\"{r}\""))))
            || (name == "wgdp_worker_punts_total"
                && ["icmp_error", "local", "tunnel_local"]
                    .iter()
                    .any(|r| labels.contains(&format!("reason=\"{r}\""))));
        if counted {
            out.insert(series.to_owned(), value as u64);
        }
    }
    out
}

/// The series that grew from `before` to `after`, with how much.
pub fn growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    after
        .iter()
        .filter_map(|(k, &v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP x\n\
        wgdp_worker_drops_total{worker=\"1\",stage=\"decrypt\",reason=\"replay\"} 3\n\
        wgdp_port_rx_missed_total{port=\"outside\"} 0\n\
        wgdp_control_drops_total{reason=\"staged_full\"} 1\n\
        wgdp_control_drops_total{reason=\"icmp_suppressed\"} 1\n\
        wgdp_control_events_total{event=\"handshakes_completed\"} 5\n\
        wgdp_worker_punts_total{lcore=\"1\",reason=\"icmp_error\"} 4\n\
        wgdp_worker_punts_total{lcore=\"1\",reason=\"no_neighbor\"} 4\n\
        wgdp_worker_stage_packets_total{worker=\"1\",stage=\"rx\"} 100\n";

    #[test]
    fn only_counters_of_packets_not_forwarded_are_read_and_their_growth_is_named() {
        let b = drop_series(BEFORE);
        assert_eq!(b.len(), 4, "{b:?}");
        let after = BEFORE
            .replace("} 3\n", "} 10\n")
            .replace("\"handshakes_completed\"} 5", "\"handshakes_completed\"} 9")
            .replace("\"staged_full\"} 1", "\"staged_full\"} 2")
            .replace("\"icmp_suppressed\"} 1", "\"icmp_suppressed\"} 2")
            .replace("\"icmp_error\"} 4", "\"icmp_error\"} 6")
            .replace("\"no_neighbor\"} 4", "\"no_neighbor\"} 8")
            .replace("port=\"outside\"} 0", "port=\"outside\"} 2");
        let g = growth(&b, &drop_series(&after));
        let named: Vec<(&str, u64)> = g.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        assert_eq!(
            named,
            vec![
                ("wgdp_control_drops_total{reason=\"staged_full\"}", 1),
                ("wgdp_port_rx_missed_total{port=\"outside\"}", 2),
                (
                    "wgdp_worker_drops_total{worker=\"1\",stage=\"decrypt\",reason=\"replay\"}",
                    7
                ),
                (
                    "wgdp_worker_punts_total{lcore=\"1\",reason=\"icmp_error\"}",
                    2
                ),
            ]
        );
    }
}
