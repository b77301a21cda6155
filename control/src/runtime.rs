//! `wgdp runtime`: the runtime accounting of a running gateway as a table, the way VPP's
//! `show runtime` prints it (docs/operations.md, "Where the clocks go").
//!
//! Reads the gateway's Prometheus text (`metrics.listen` of its configuration): the
//! `wgdp_worker_stage_*_total` families and `wgdp_tsc_hz`. `--clear` saves the current
//! figures to a state file; later runs print only what happened since (a measurement
//! window), until the gateway restarts and its counters go back below the saved ones.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The four counters of one stage of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageFigures {
    pub calls: u64,
    pub vectors: u64,
    pub packets: u64,
    pub clocks: u64,
}

impl StageFigures {
    fn minus(self, b: StageFigures) -> Option<StageFigures> {
        Some(StageFigures {
            calls: self.calls.checked_sub(b.calls)?,
            vectors: self.vectors.checked_sub(b.vectors)?,
            packets: self.packets.checked_sub(b.packets)?,
            clocks: self.clocks.checked_sub(b.clocks)?,
        })
    }
}

/// Every worker's stages, in the order the gateway lists them, and the TSC rate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub tsc_hz: u64,
    /// (worker, stage) -> figures; stages keep the order of first appearance.
    pub stages: Vec<((String, String), StageFigures)>,
}

/// Stages whose clocks are part of another stage's (`dataplane::counters::Stage`).
fn is_share(stage: &str) -> bool {
    stage.ends_with("_crypto")
}

/// The value of label `name` in a Prometheus label set `{a="x",b="y"}`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let at = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &labels[at..];
    Some(&rest[..rest.find('"')?])
}

/// The runtime figures in a Prometheus text.
pub fn parse(text: &str) -> Figures {
    let mut f = Figures::default();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
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
        let value = value as u64;
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        if name == "wgdp_tsc_hz" {
            f.tsc_hz = value;
            continue;
        }
        let Some(field) = name
            .strip_prefix("wgdp_worker_stage_")
            .and_then(|n| n.strip_suffix("_total"))
        else {
            continue;
        };
        let (Some(worker), Some(stage)) = (label(labels, "worker"), label(labels, "stage")) else {
            continue;
        };
        let key = (worker.to_owned(), stage.to_owned());
        let i = *index.entry(key.clone()).or_insert_with(|| {
            f.stages.push((key, StageFigures::default()));
            f.stages.len() - 1
        });
        let s = &mut f.stages[i].1;
        match field {
            "calls" => s.calls = value,
            "vectors" => s.vectors = value,
            "packets" => s.packets = value,
            "clocks" => s.clocks = value,
            _ => {}
        }
    }
    f
}

/// `now - base`, per stage; `None` if any counter went back (the gateway restarted).
pub fn since(now: &Figures, base: &Figures) -> Option<Figures> {
    let mut out = Figures {
        tsc_hz: now.tsc_hz,
        stages: Vec::new(),
    };
    for (key, fig) in &now.stages {
        let b = base
            .stages
            .iter()
            .find(|(k, _)| k == key)
            .map_or(StageFigures::default(), |(_, f)| *f);
        out.stages.push((key.clone(), fig.minus(b)?));
    }
    Some(out)
}

/// The state file's text: a line of the time, then one line per stage.
pub fn save(f: &Figures, at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut s = format!("wgdp-runtime 1 {secs}\n");
    for ((w, st), v) in &f.stages {
        let _ = writeln!(
            s,
            "{w} {st} {} {} {} {}",
            v.calls, v.vectors, v.packets, v.clocks
        );
    }
    s
}

/// A state file's figures and the time they were taken; `None` if it is not one.
pub fn load(text: &str) -> Option<(Figures, SystemTime)> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next()?.split(' ').collect();
    if head.len() != 3 || head[0] != "wgdp-runtime" || head[1] != "1" {
        return None;
    }
    let at = UNIX_EPOCH + Duration::from_secs(head[2].parse().ok()?);
    let mut f = Figures::default();
    for line in lines {
        let p: Vec<&str> = line.split(' ').collect();
        if p.len() != 6 {
            return None;
        }
        let n = |i: usize| p[i].parse::<u64>().ok();
        f.stages.push((
            (p[0].to_owned(), p[1].to_owned()),
            StageFigures {
                calls: n(2)?,
                vectors: n(3)?,
                packets: n(4)?,
                clocks: n(5)?,
            },
        ));
    }
    Some((f, at))
}

/// The table: per worker, per stage, calls, vectors, packets, packets per vector,
/// clocks per packet and per call, and the share of the worker's busy clocks.
pub fn table(f: &Figures) -> String {
    let mut out = String::new();
    let mut workers: Vec<&str> = Vec::new();
    for ((w, _), _) in &f.stages {
        if !workers.contains(&w.as_str()) {
            workers.push(w);
        }
    }
    for w in workers {
        let rows: Vec<_> = f.stages.iter().filter(|((x, _), _)| x == w).collect();
        let busy: u64 = rows
            .iter()
            .filter(|((_, st), _)| !is_share(st))
            .map(|(_, v)| v.clocks)
            .sum();
        let secs = if f.tsc_hz > 0 {
            format!(", {:.3} s", busy as f64 / f.tsc_hz as f64)
        } else {
            String::new()
        };
        let _ = writeln!(out, "worker {w}: {busy} clocks{secs}");
        let _ = writeln!(
            out,
            "  {:<16} {:>12} {:>12} {:>14} {:>10} {:>12} {:>12} {:>7}",
            "stage",
            "calls",
            "vectors",
            "packets",
            "pkts/vec",
            "clocks/pkt",
            "clocks/call",
            "share"
        );
        for ((_, st), v) in rows {
            let ratio = |a: u64, b: u64| {
                if b == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}", a as f64 / b as f64)
                }
            };
            let share = if busy == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * v.clocks as f64 / busy as f64)
            };
            let name = if is_share(st) {
                format!("  {st}")
            } else {
                st.clone()
            };
            let _ = writeln!(
                out,
                "  {:<16} {:>12} {:>12} {:>14} {:>10} {:>12} {:>12} {:>7}",
                name,
                v.calls,
                v.vectors,
                v.packets,
                ratio(v.packets, v.vectors),
                ratio(v.clocks, v.packets),
                ratio(v.clocks, v.calls),
                share
            );
        }
    }
    out.push_str(
        "rx includes empty polls; an indented stage is part of the one above it \
         (the crypto backend's share).\n",
    );
    out
}

/// The Prometheus text served at `addr`.
pub fn fetch(addr: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("metrics at {addr}: {e} (is wgdp running here?)"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("metrics at {addr}: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("metrics at {addr}: {e}"))?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("metrics at {addr}: no HTTP reply"))?;
    let status = head.split(' ').nth(1);
    if !head.starts_with("HTTP/1.") || status != Some("200") {
        return Err(format!(
            "metrics at {addr}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP wgdp_tsc_hz TSC clocks per second
# TYPE wgdp_tsc_hz gauge
wgdp_tsc_hz 2000000000
wgdp_worker_stage_calls_total{stage=\"rx\",worker=\"1\"} 1000
wgdp_worker_stage_vectors_total{stage=\"rx\",worker=\"1\"} 10
wgdp_worker_stage_packets_total{stage=\"rx\",worker=\"1\"} 2560
wgdp_worker_stage_clocks_total{stage=\"rx\",worker=\"1\"} 100000
wgdp_worker_stage_calls_total{stage=\"decrypt\",worker=\"1\"} 10
wgdp_worker_stage_vectors_total{stage=\"decrypt\",worker=\"1\"} 10
wgdp_worker_stage_packets_total{stage=\"decrypt\",worker=\"1\"} 2560
wgdp_worker_stage_clocks_total{stage=\"decrypt\",worker=\"1\"} 300000
wgdp_worker_stage_calls_total{stage=\"decrypt_crypto\",worker=\"1\"} 10
wgdp_worker_stage_vectors_total{stage=\"decrypt_crypto\",worker=\"1\"} 10
wgdp_worker_stage_packets_total{stage=\"decrypt_crypto\",worker=\"1\"} 2560
wgdp_worker_stage_clocks_total{stage=\"decrypt_crypto\",worker=\"1\"} 256000
wgdp_worker_drops_total{lcore=\"1\",reason=\"x\",stage=\"decrypt\"} 5
";

    #[test]
    fn parses_the_stage_families_and_prints_the_table() {
        let f = parse(TEXT);
        assert_eq!(f.tsc_hz, 2_000_000_000);
        assert_eq!(f.stages.len(), 3);
        let rx = f.stages[0].1;
        assert_eq!(
            (rx.calls, rx.vectors, rx.packets, rx.clocks),
            (1000, 10, 2560, 100_000)
        );
        let t = table(&f);
        // Busy: rx + decrypt (the crypto share is inside decrypt).
        assert!(t.contains("worker 1: 400000 clocks, 0.000 s"), "{t}");
        let decrypt = t
            .lines()
            .find(|l| l.trim_start().starts_with("decrypt "))
            .unwrap();
        assert!(decrypt.contains("256.0"), "packets per vector: {decrypt}");
        assert!(decrypt.contains("117.2"), "clocks per packet: {decrypt}");
        assert!(decrypt.contains("75.0%"), "share: {decrypt}");
        let crypto = t.lines().find(|l| l.contains("decrypt_crypto")).unwrap();
        assert!(
            crypto.starts_with("    decrypt_crypto"),
            "indented: {crypto}"
        );
        assert!(
            crypto.contains("100.0") && crypto.contains("64.0%"),
            "{crypto}"
        );
    }

    #[test]
    fn a_window_starts_at_clear_and_ends_at_a_restart() {
        let base = parse(TEXT);
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (loaded, when) = load(&save(&base, at)).unwrap();
        assert_eq!((loaded.stages.clone(), when), (base.stages.clone(), at));
        let later = parse(
            &TEXT
                .replace("} 2560", "} 5120")
                .replace("} 300000", "} 700000"),
        );
        let d = since(&later, &loaded).unwrap();
        let decrypt = d
            .stages
            .iter()
            .find(|((_, s), _)| s == "decrypt")
            .unwrap()
            .1;
        assert_eq!((decrypt.packets, decrypt.clocks), (2560, 400_000));
        // A restarted gateway counts from zero: the window is gone.
        let restarted = parse(&TEXT.replace("} 1000", "} 3"));
        assert!(since(&restarted, &loaded).is_none());
        assert!(load("garbage").is_none());
    }
}
