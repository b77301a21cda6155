#!/usr/bin/env python3
"""Writes docs/benchmarks.md and its plots from the results of one `make bench` run
(scripts/bench-run.sh leaves them in a work directory). Standard library only; the
plots are drawn by gnuplot (pngcairo).

usage: bench-report.py --work DIR --doc FILE --plots DIR --seconds N [--quick]
"""

import argparse
import json
import os
import re
import subprocess
import sys

# Inside frame -> AEAD plaintext length: the inner packet (frame - 14) padded to 16.
def padded(frame):
    return (frame - 14 + 15) // 16 * 16


IMIX = [64] * 7 + [570] * 4 + [1420]
STAGE_ORDER = ["rx", "classify", "offload", "decrypt", "route", "encrypt", "tx"]


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class Bound:
    """The in-line AEAD bound of the worker's core (aead_bound --json)."""

    def __init__(self, aead):
        self.rows = {r["size"]: r for r in (aead or {}).get("sizes", [])}

    def pps(self, direction, size):
        key = "open_mpps" if direction == "decrypt" else "seal_mpps"
        frames = IMIX if size == "imix" else [int(size)]
        try:
            # Time per packet, averaged over the mix.
            t = sum(1.0 / (self.rows[padded(f)][key] * 1e6) for f in frames) / len(frames)
        except (KeyError, ZeroDivisionError):
            return None
        return 1.0 / t


def mean_frame(size):
    return sum(IMIX) / len(IMIX) if size == "imix" else float(size)


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def cryptoperf_rows(text):
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 10 and all(re.fullmatch(r"[0-9.]+", p) for p in parts):
            rows.append({"size": int(parts[1]), "mops": float(parts[7]),
                         "gbps": float(parts[8]), "cycles": float(parts[9])})
    return rows


def iperf_rows(text):
    """(check, Mbit/s) from the PASS lines of an e2e report."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"PASS\s+\S+ wgdp-first\s+(iperf3 TCP .*?)\s{2,}(\d+) Mbit/s", line)
        if m:
            rows.append((m.group(1), int(m.group(2))))
    return rows


def stage_table(stages, received):
    """Rows of (stage, calls, packets/vector, clocks/packet, share) for one worker."""
    by = {}
    for s in stages:
        by.setdefault(s["worker"], []).append(s)
    out = []
    for worker, rows in sorted(by.items()):
        # rx's clocks include the empty polls of the whole window (the gateway renews its
        # metrics twice a second, so the window is wider than the trial): per packet they
        # mean little, so rx is given per poll and left out of the per-packet total.
        busy = sum(r["clocks"] for r in rows
                   if not r["stage"].endswith("_crypto") and r["stage"] != "rx")
        for r in rows:
            if r["packets"] == 0 and r["calls"] == 0:
                continue
            rx = r["stage"] == "rx"
            out.append({
                "worker": worker,
                "stage": "rx (clocks per poll, empty polls included)" if rx else r["stage"],
                "calls": r["calls"],
                "per_vector": r["packets"] / r["vectors"] if r["vectors"] else 0.0,
                "clocks_per_packet": (r["clocks"] / r["calls"] if r["calls"] else 0.0) if rx
                else (r["clocks"] / r["packets"] if r["packets"] else 0.0),
                "share": None if rx else (r["clocks"] / busy if busy else 0.0),
                "clocks": None if rx else r["clocks"],
            })
        # Each stage per the packets it handled (the metrics window can hold a few
        # packets of the trials next to this one).
        total = sum(r["clocks"] / r["packets"] for r in rows if r["packets"]
                    and not r["stage"].endswith("_crypto") and r["stage"] != "rx")
        out.append({"worker": worker, "stage": "all stages but rx", "calls": None,
                    "per_vector": None, "clocks_per_packet": total,
                    "share": 1.0, "clocks": busy})
    return out


def gnuplot(script, plots):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, cwd=plots,
                       capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench-report: gnuplot failed: {getattr(e, 'stderr', e)}", file=sys.stderr)
        return False


def histogram(plots, name, title, ylabel, columns, rows, style):
    """A gnuplot histogram of `rows` = [(label, [value per column])], drawn as
    `style` ("clustered gap 1" or "rowstacked"), into plots/name.png."""
    dat = os.path.join(plots, name + ".dat")
    with open(dat, "w") as f:
        f.write("label " + " ".join(f'"{c}"' for c in columns) + "\n")
        for label, vals in rows:
            f.write(f'"{label}" ' + " ".join(f"{v or 0:.6g}" for v in vals) + "\n")
    cols = ", ".join(
        (f'"{name}.dat" using {i + 2}:xtic(1) title columnheader({i + 2})' if i == 0
         else f"'' using {i + 2} title columnheader({i + 2})")
        for i in range(len(columns)))
    key = "outside right"
    script = f"""
set terminal pngcairo size 900,480 font "sans,10" noenhanced
set output "{name}.png"
set title "{title}"
set ylabel "{ylabel}"
set style data histograms
set style histogram {style}
set style fill solid 0.8 border -1
set boxwidth 0.6
set key {key}
set grid ytics
set yrange [0:*]
plot {cols}
"""
    ok = gnuplot(script, plots)
    os.remove(dat)
    return ok


def bar_plot(plots, name, title, ylabel, labels, series):
    """Clustered bars: `labels` on x, `series` = [(title, [value per label])]."""
    rows = [(label, [v[i] for _, v in series]) for i, label in enumerate(labels)]
    return histogram(plots, name, title, ylabel, [t for t, _ in series], rows,
                     "clustered gap 1")


def stacked_plot(plots, name, title, labels, stages, values):
    """Row-stacked bars: for each label, clocks per packet of each stage."""
    return histogram(plots, name, title, "TSC clocks per packet", stages,
                     list(zip(labels, values)), "rowstacked")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--plots", required=True)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()

    def tidy(command):
        """A command line without this machine's paths."""
        command = command.replace(a.repo + "/", "")
        return re.sub(r"/tmp/wgdp-bench\.\w+", "$WORK", command).replace(a.work, "$WORK")
    w = lambda n: os.path.join(a.work, n)  # noqa: E731
    os.makedirs(a.plots, exist_ok=True)
    plots_rel = os.path.relpath(a.plots, os.path.dirname(os.path.abspath(a.doc)))

    machine = load(w("machine.json"), {})
    bound = Bound(load(w("aead.json")))
    memif = load(w("memif.json"))
    base = {(r["direction"], r["size"]): r["latency"]
            for r in (load(w("baseline.json")) or {}).get("latency", []) if r.get("latency")}
    afxdp = load(w("afxdp.json"))
    wggo = load(w("wireguard-go.json"))
    cp = cryptoperf_rows(read(w("cryptoperf.txt")))
    iperf = {gw: iperf_rows(read(w(f"iperf-{gw}.txt"))) for gw in ("wgdp", "wireguard-go")}

    L = []
    p = L.append
    cpu = machine.get("cpu", "unknown CPU")
    where = (f"{machine.get('date', '?')}, {cpu}, {machine.get('cpus', '?')} vCPUs"
             f"{' (AVX-512)' if machine.get('avx512') else ''}, Linux {machine.get('kernel', '?')}, "
             f"DPDK {machine.get('dpdk', '?')}, wgdp {machine.get('revision', '?')}")
    p("# Benchmarks")
    p("")
    p("Written by `sudo make bench` (`scripts/bench.sh bench`, then `scripts/bench-report.py`); "
      "run it again to measure the machine you have. Every figure below comes from that one "
      f"run: {where}; the run took {a.seconds} s."
      + (" **This was a `--quick` run (short trials, few sizes): a check of the harness, not "
         "figures to quote.**" if a.quick else ""))
    p("")
    p("These machines are small and shared (two vCPUs, other guests on the host), so read "
      "absolute numbers as lower bounds and compare figures of the same run: every "
      "throughput is given as a ratio to the AEAD bound measured on the worker's core minutes "
      "before. Nothing here is a test; no figure is asserted anywhere.")
    p("")
    p("Layout of every run: wgdp with one worker (lcore 1, `idle: poll`) and its control "
      "thread (lcore 0); `wgdp-pktgen` on lcore 0, sharing that CPU with wgdp's control "
      f"thread; {memif['peers'] if memif else '?'} generator peers, each with a session, "
      "sharing the traffic round robin. Frame sizes are those of the plaintext Ethernet "
      "frame on the inside link (without FCS); Gbit/s counts those frames' bytes. IMIX is "
      "7 x 64, 4 x 570 and 1 x 1420 bytes (mean 345.7).")
    p("")

    def throughput_rows(report):
        rows = []
        for t in (report or {}).get("throughput", []):
            b = bound.pps(t["direction"], t["size"])
            rows.append({**t, "bound_pps": b,
                         "ratio": (t["rate_pps"] / b) if b else None})
        return rows

    mrows = throughput_rows(memif)
    arows = throughput_rows(afxdp)

    # ---- targets of "Line rate on one core"
    def stage_clocks(r):
        """Clocks per packet of each stage of a throughput row's lossless trial."""
        return {x["stage"]: x["clocks"] / x["packets"]
                for x in (r.get("best") or {}).get("stages", []) if x["packets"]}

    def outside_aead(r):
        """Clocks per packet of the worker's own stages outside the AEAD (rx and tx, the
        drivers' copies, apart) for a throughput row's lossless trial."""
        per = stage_clocks(r)
        own = sum(per.get(n, 0.0) for n in ("classify", "offload", "route"))
        for stage in ("decrypt", "encrypt"):
            if stage in per:
                own += per[stage] - per.get(f"{stage}_crypto", 0.0)
        return own, per.get("tx", 0.0)

    zc = load(w("memif-zc.json"))
    zrows = throughput_rows(zc)
    if mrows:
        p("## Targets of one worker")
        p("")
        p("What wgdp aims for on one worker over net_memif, and where this run stands, "
          "with memif copying each packet (wgdp the server) and with wgdp a zero-copy "
          "client (\"Zero-copy memif\" below). Ratios are against the AEAD bound measured "
          "in this run on the worker's core (below); the stage clocks are those of the "
          "lossless trial at the rate found (\"Where the clocks go\").")
        p("")
        p("| target | measured | met |")
        p("|---|---|---|")
        for link, rows in (("memif", mrows), ("memif zero-copy", zrows)):
            for r in rows:
                if r["size"] == "1420":
                    ok = r["ratio"] is not None and r["ratio"] >= 0.9
                    p(f"| {link}, {r['direction']} 1420 B: at least 0.90 of the AEAD bound | "
                      f"{fmt(r['ratio'])} ({r['gbps']:.2f} Gbit/s) | {'yes' if ok else 'no'} |")
            for r in rows:
                if r["size"] == "64":
                    lim = " (the generator's limit)" if r["generator_limited"] else ""
                    p(f"| {link}, {r['direction']} 64 B: at least 5 Mpps | {r['mpps']:.3f} Mpps{lim} | "
                      f"{'yes' if r['mpps'] >= 5 else 'no'} |")
            for r in rows:
                if r["size"] == "64" and stage_clocks(r):
                    own, tx = outside_aead(r)
                    p(f"| {link}, {r['direction']} 64 B: work outside the AEAD under 150 clocks | "
                      f"{own:.0f} clocks in wgdp's stages, and {tx:.0f} in tx (the memif "
                      f"driver) | {'yes' if own < 150 else 'no'} |")
        cr = throughput_rows(load(w("cryptodev.json")))
        inl = {(r["direction"], r["size"]): r for r in mrows}
        for r in cr:
            i = inl.get((r["direction"], r["size"]))
            if i:
                q = r["mpps"] / i["mpps"]
                p(f"| cryptodev (crypto_aesni_mb) {r['direction']} {r['size']} B: at least the "
                  f"in-line path | {q:.2f} of it | {'yes' if q >= 0.99 else 'no'} |")
        for mode, limit in (("poll", 10.0), ("adaptive", 60.0)):
            for t in (load(w(f"idle-{mode}.json")) or {}).get("trials", []):
                l = t.get("latency")
                b = base.get((t["direction"], "64"))
                if not l or not b:
                    continue
                added = (l["median_ns"] - b["median_ns"]) / 1e3
                p(f"| median latency added at 10000 packets/s, `idle: {mode}`, "
                  f"{t['direction']}: under {limit:.0f} us | {added:.1f} us | "
                  f"{'yes' if added < limit else 'no'} |")
        p("")
        why = []
        for link, report, rows in (("memif", memif, mrows), ("memif zero-copy", zc, zrows)):
            hz = (report or {}).get("tsc_hz") or 0
            for r in rows:
                per = stage_clocks(r)
                crypto = f"{r['direction']}_crypto"
                if not hz or not r["rate_pps"] or crypto not in per:
                    continue
                budget = hz / r["rate_pps"]
                own, tx = outside_aead(r)
                bound_clocks = hz / r["bound_pps"] if r["bound_pps"] else 0
                why.append(f"| {link} | {r['direction']} {r['size']} B | {budget:.0f} | "
                           f"{per[crypto]:.0f} | {bound_clocks:.0f} | {own:.0f} | {tx:.0f} | "
                           f"{budget - per[crypto] - own - tx:.0f} |")
        if why:
            p("Where each packet's clocks go at the rate found (TSC clocks per packet; \"AEAD "
              "in the gateway\" is the crypto call on packets as they arrive, \"AEAD bound\" "
              "the same call on buffers hot in the cache; the rest is the driver's receive, "
              "the poll loop and the idle polls of a lossless trial):")
            p("")
            p("| link | trial | all | AEAD in the gateway | AEAD bound | wgdp's own stages | tx (driver) | rest |")
            p("|---|---|---|---|---|---|---|---|")
            for line in why:
                p(line)
            p("")

    # ---- headline
    p("## Headline: one worker over net_memif")
    p("")
    if mrows:
        p("| direction | frame | throughput | Gbit/s | AEAD bound of the core | ratio to the bound |")
        p("|---|---|---|---|---|---|")
        for r in mrows:
            lim = " (generator's limit)" if r["generator_limited"] else ""
            p(f"| {r['direction']} | {r['size']} B | {r['mpps']:.3f} Mpps{lim} | {r['gbps']:.2f} | "
              f"{fmt(r['bound_pps'] and r['bound_pps'] / 1e6, 3)} Mpps | {fmt(r['ratio'], 2)} |")
        p("")
        lat = [r for r in (memif or {}).get("latency", []) if r.get("latency")]
        if lat:
            def added(r):
                b = base.get((r["direction"], r["size"]))
                m = r["latency"]["median_ns"] / 1e3
                if b:
                    return f"{r['direction']} {r['size']} B {m - b['median_ns'] / 1e3:.1f} us"
                return f"{r['direction']} {r['size']} B {m:.1f} us (no baseline)"
            p(f"Median latency the gateway adds, at {lat[0]['rate_asked']:.0f} packets/s (its "
              "median minus that of dpdk-testpmd forwarding over the same links): "
              + ", ".join(added(r) for r in lat) + ".")
            p("")
    else:
        p("(the memif run produced no results)")
        p("")

    # ---- throughput plots
    labels = sorted({r["size"] for r in mrows}, key=lambda s: mean_frame(s))
    if mrows:
        def val(rows, d, s, k):
            for r in rows:
                if r["direction"] == d and r["size"] == s:
                    v = r[k]
                    return None if v is None else v
            return None
        series = []
        for d in ("decrypt", "encrypt"):
            if any(r["direction"] == d for r in mrows):
                series.append((f"wgdp {d}", [val(mrows, d, s, "mpps") for s in labels]))
                series.append((f"AEAD bound ({'open' if d == 'decrypt' else 'seal'})",
                               [(bound.pps(d, s) or 0) / 1e6 for s in labels]))
        if bar_plot(a.plots, "throughput-mpps", "Throughput over net_memif, one worker (Mpps)",
                    "Mpps", [f"{s} B" for s in labels], series):
            p(f"![Throughput in Mpps against the AEAD bound]({plots_rel}/throughput-mpps.png)")
            p("")
        series_g = []
        for d in ("decrypt", "encrypt"):
            if any(r["direction"] == d for r in mrows):
                series_g.append((f"wgdp {d}", [val(mrows, d, s, "gbps") for s in labels]))
                series_g.append((f"AEAD bound ({'open' if d == 'decrypt' else 'seal'})",
                                 [(bound.pps(d, s) or 0) * mean_frame(s) * 8 / 1e9 for s in labels]))
        if bar_plot(a.plots, "throughput-gbps", "Throughput over net_memif, one worker (Gbit/s)",
                    "Gbit/s of inside frames", [f"{s} B" for s in labels], series_g):
            p(f"![Throughput in Gbit/s against the AEAD bound]({plots_rel}/throughput-gbps.png)")
            p("")

    # ---- bound
    p("## The AEAD bound")
    p("")
    aead = load(w("aead.json")) or {}
    default = aead.get("backend", "?")
    p(f"The worker's in-line ChaCha20-Poly1305 (`{default}`, the software backend) with nothing "
      "else to do, pinned to the worker's CPU: fresh counters, vectors of 256 packets from a "
      "64 MiB pool walked in order, best of 3 runs. No gateway can forward faster on this core. "
      "The sizes are the AEAD plaintexts the benchmark's frames become (the inner packet padded "
      "to 16 bytes: 64 -> 64, 512 -> 512, 570 -> 560, 1420 -> 1408). Only the AEAD calls are "
      "counted (TSC around each vector's call; before an open, the sealed vector is copied "
      "back in place outside the clock).")
    p("")
    p("    taskset -c 1 target/release/examples/aead_bound SECONDS 64,512,560,1408 --compare")
    p("")
    if bound.rows:
        p("| plaintext | seal Mpps | seal clocks | open Mpps | open clocks |")
        p("|---|---|---|---|---|")
        for size, r in sorted(bound.rows.items()):
            p(f"| {size} B | {r['seal_mpps']:.3f} | {r['seal_clocks']:.0f} | "
              f"{r['open_mpps']:.3f} | {r['open_clocks']:.0f} |")
        p("")
    cands = aead.get("candidates") or {}
    if cands:
        p("### Which AEAD in line")
        p("")
        p("Every in-line candidate, same run, same core: `ring` 0.17 (BoringSSL's assembly), "
          "the `chacha20poly1305` crate 0.10 (RustCrypto, its AVX2 backends chosen at run "
          "time), `aws-lc-rs` (AWS-LC's assembly), and the Intel IPsec-MB library through its "
          "job API, a vector at a time. The fastest is the software backend. Clocks per "
          "packet, and in brackets the ratio of Mpps to `ring`:")
        p("")
        sizes = sorted({r["size"] for rows in cands.values() for r in rows})
        p("| implementation | " + " | ".join(f"seal {z} B | open {z} B" for z in sizes) + " |")
        p("|---|" + "---|---|" * len(sizes))
        ring = {r["size"]: r for r in cands.get("ring", [])}
        for name, rows in cands.items():
            by = {r["size"]: r for r in rows}
            cells = []
            for z in sizes:
                for op in ("seal", "open"):
                    r = by.get(z)
                    ring_mpps = ring.get(z, {}).get(f"{op}_mpps")
                    if r is None:
                        cells.append("-")
                        continue
                    ratio = f" ({r[f'{op}_mpps'] / ring_mpps:.2f})" if ring_mpps else ""
                    cells.append(f"{r[f'{op}_clocks']:.0f}{ratio}")
            mark = " (default)" if name == default else ""
            p(f"| `{name}`{mark} | " + " | ".join(cells) + " |")
        p("")
    if cp:
        p("The reference of the field on the same core: `dpdk-test-crypto-perf` with the "
          "`crypto_aesni_mb` driver's ChaCha20-Poly1305 (IPsec-MB), encrypt, bursts of 32, "
          "lcore 1:")
        p("")
        p("    dpdk-test-crypto-perf --no-pci --in-memory --vdev crypto_aesni_mb0 -l 0,1 -- \\")
        p("        --ptest throughput --devtype crypto_aesni_mb --optype aead \\")
        p("        --aead-algo chacha20-poly1305 --aead-op encrypt --aead-key-sz 32 \\")
        p("        --aead-iv-sz 12 --digest-sz 16 --buffer-sz 64,512,560,1408 --total-ops 2000000 --burst-sz 32")
        p("")
        p(f"| size | Mops | Gbit/s | cycles/buf | against `{default}` in line, seal |")
        p("|---|---|---|---|---|")
        for r in cp:
            ring = bound.rows.get(r["size"], {}).get("seal_mpps")
            p(f"| {r['size']} B | {r['mops']:.3f} | {r['gbps']:.2f} | {r['cycles']:.0f} | "
              f"{fmt(r['mops'] / ring if ring else None, 2)} |")
        p("")

    # ---- full throughput tables
    def throughput_section(title, report, rows, how, baseline=None):
        p(f"## {title}")
        p("")
        p(how)
        p("")
        if not report:
            p("(no results)")
            p("")
            return
        p("    " + tidy(report["command"]))
        p("")
        retries = report.get("retries") or 0
        p(f"RFC 2544 throughput: trials of {report.get('trial_ms')} ms, binary search to 1 % "
          "(the first trial as fast as the generator can send), zero loss: every packet "
          "offered came out, checked."
          + (f" A rate that lost is tried {retries} more time{'s' if retries > 1 else ''} "
             "before it counts as failed: on these shared vCPUs a single preemption of the "
             "worker loses packets at any rate (RFC 2544 proper is `--retries 0`)."
             if retries else ""))
        p("")
        p("| direction | frame | Mpps | Gbit/s | ratio to the bound | trials | lossless trial at the rate found |")
        p("|---|---|---|---|---|---|---|")
        for r in rows:
            best = r.get("best") or {}
            b = (f"{best.get('received', 0)} of {best.get('offered', 0)} received, "
                 f"{best.get('verified', 0)} checked") if best else "-"
            lim = " (generator's limit)" if r["generator_limited"] else ""
            p(f"| {r['direction']} | {r['size']} B | {r['mpps']:.3f}{lim} | {r['gbps']:.2f} | "
              f"{fmt(r['ratio'])} | {len(r['steps'])} | {b} |")
        p("")
        lat = [r for r in report.get("latency", []) if r.get("latency")]
        if lat:
            p(f"Latency through the gateway, generator to generator (memif or veth, the "
              f"gateway, and back), at {lat[0]['rate_asked']:.0f} packets/s, one packet per "
              "burst, TSC read before the send and after the receive burst:")
            p("")
            p("| direction | frame | packets | min us | median us | p99 us | max us | baseline median us | added median us |")
            p("|---|---|---|---|---|---|---|---|---|")
            for r in lat:
                l = r["latency"]
                b = baseline.get((r["direction"], r["size"])) if baseline else None
                p(f"| {r['direction']} | {r['size']} B | {l['samples']} | {l['min_ns'] / 1e3:.1f} | "
                  f"{l['median_ns'] / 1e3:.1f} | {l['p99_ns'] / 1e3:.1f} | {l['max_ns'] / 1e3:.1f} | "
                  f"{fmt(b and b['median_ns'] / 1e3, 1)} | "
                  f"{fmt(b and (l['median_ns'] - b['median_ns']) / 1e3, 1)} |")
            p("")
            if baseline:
                labels = [f"{r['direction']} {r['size']} B" for r in lat]
                series = [
                    ("median", [r["latency"]["median_ns"] / 1e3 for r in lat]),
                    ("p99", [r["latency"]["p99_ns"] / 1e3 for r in lat]),
                    ("baseline median", [(baseline.get((r["direction"], r["size"])) or {}).get("median_ns", 0) / 1e3 for r in lat]),
                ]
                if bar_plot(a.plots, "latency", "Latency through the gateway over net_memif (us)",
                            "microseconds", labels, series):
                    p(f"![Latency through the gateway]({plots_rel}/latency.png)")
                    p("")
                p("The baseline: the same generator and the same kind of links with "
                  "`dpdk-testpmd --forward-mode=io` (one forwarding core on lcore 1) in the "
                  "gateway's place, plaintext both ways:")
                p("")
                p("    dpdk-testpmd --no-pci --in-memory -l 0,1 --vdev net_memif0,role=server,socket=OUT "
                  "--vdev net_memif1,role=server,socket=IN -- --forward-mode=io --auto-start --nb-cores=1")
                p("    wgdp-pktgen baseline --outside net_memif0,role=client,socket=OUT "
                  "--inside net_memif1,role=client,socket=IN --count N")
                p("")

    throughput_section(
        "Throughput and latency over net_memif", memif, mrows,
        "Two DPDK processes over shared memory: no kernel in the path, so this is the "
        "figure that counts. wgdp's ports are `net_memif` servers, the generator's clients, "
        "with rings of 2^14 slots (`rsize=14`): about 25 ms of traffic at these rates, so that "
        "the few milliseconds for which the machine's other guests take a vCPU are not "
        "counted as the gateway's loss.",
        base)

    # ---- zero-copy memif
    if zc:
        throughput_section(
            "Zero-copy memif", zc, zrows,
            "The memif search again with the roles turned: the generator serves and wgdp is "
            "the client with `zero-copy=yes` (and EAL `--single-file-segments`), so wgdp's "
            "driver hands the generator's buffers to the worker instead of copying each "
            "packet in and out: the packet lines arrive from memory another core wrote, as "
            "from a NIC's DMA, and the copy cost in tx goes (`scripts/bench.sh profile "
            "--zero-copy` shows the stages).")
        zst = [(r, stage_clocks(r)) for r in zrows]
        if any(per for _, per in zst):
            p("Clocks per packet of the lossless trial at the rate found:")
            p("")
            p("| direction | frame | stages |")
            p("|---|---|---|")
            for r, per in zst:
                if per:
                    p(f"| {r['direction']} | {r['size']} B | "
                      + ", ".join(f"{n} {c:.0f}" for n, c in per.items()) + " |")
            p("")

    # ---- scaling over workers
    import glob
    runs = []
    for meta_path in sorted(glob.glob(w("scale-*.meta.json"))):
        meta = load(meta_path)
        rep = load(meta_path.replace(".meta.json", ".json"))
        if meta and rep:
            runs.append((meta, throughput_rows(rep)))
    if runs:
        p("## Scaling over workers")
        p("")
        p("The memif search again with N workers, for 16 peers and for a single peer. Each "
          "port has N queue pairs; the generator puts peer i's flow on queue i mod N "
          "(`wgdp-pktgen --queues N`), as a NIC's RSS spreads flows, so 16 peers spread "
          "over the workers and one peer lands on one queue. With more than one worker, each "
          "case runs with `dpdk.share_crypto` on (the default: a worker that cannot keep up "
          "hands part of its AEAD to quiet workers, docs/architecture.md \"One tunnel on many "
          "cores\") and off; \"helped\" is the packets workers opened or sealed for another "
          "worker over the whole run (`spread.helped_*` in the stop log). Worker w runs on lcore w; "
          "control and the generator share lcore 0. Where the machine has fewer than N + 2 "
          "CPUs, lcores share CPUs (`dpdk.lcores.cpus`) and the row is marked: those rows "
          "show that the mechanism works, not how it scales. To measure scaling, run "
          "`sudo make bench` on a machine with at least N + 2 free CPUs (the run goes up to "
          "the machine's CPUs less one): the targets are N workers at 0.9 x N times one "
          "worker for 16 peers, sharing on as fast as sharing off for 16 peers, and one peer "
          "on two workers at 1.8 times one worker.")
        p("")
        p("| workers | peers | share_crypto | direction | frame | Mpps | Gbit/s | against 1 worker | helped | lcores share CPUs |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        one = {(m["peers"], r["direction"], r["size"]): r["mpps"]
               for m, rows in runs if m["workers"] == 1 for r in rows}
        order = lambda x: (x[0]["peers"] == 1, x[0]["workers"], not x[0].get("share", True))
        for m, rows in sorted(runs, key=order):
            share = "-" if m["workers"] == 1 else ("on" if m.get("share", True) else "off")
            for r in rows:
                base1 = one.get((m["peers"], r["direction"], r["size"]))
                p(f"| {m['workers']} | {m['peers']} | {share} | {r['direction']} | {r['size']} B | "
                  f"{r['mpps']:.3f} | {r['gbps']:.2f} | {fmt(base1 and r['mpps'] / base1, 2)} | "
                  f"{m.get('helped', 0)} | {'yes' if m['shared'] else 'no'} |")
        p("")

    # ---- one tunnel on two cores, on plain memory
    tunnel = load(w("one_tunnel.json"))
    if tunnel:
        p("## One tunnel on two cores")
        p("")
        p("One peer's packets, all reaching one worker, through `Worker::poll` alone and "
          "with a second worker on another CPU taking part of each vector's AEAD "
          "(`dpdk.share_crypto`; docs/architecture.md, \"One tunnel on many cores\"). The "
          "queues are plain memory filled before the clock starts, each packet in a heap "
          "buffer of its own that is not in the cache, so there is no driver and no "
          "generator on the two CPUs: the owner runs on CPU 1, the helper on CPU 0, and the "
          "ratio is the sharing's (`target/release/examples/one_tunnel PACKETS SIZES`). "
          "\"done by the helper\" is its share of the AEAD. The target is 1.8 times one "
          "worker.")
        p("")
        p("| direction | frame | 1 worker Mpps | 2 workers Mpps | 2 / 1 | done by the helper |")
        p("|---|---|---|---|---|---|")
        for r in tunnel:
            p(f"| {r['direction']} | {r['size']} B | {r['one']:.3f} | {r['two']:.3f} | "
              f"{r['two'] / r['one']:.2f} | {100 * r['helped']:.0f} % |")
        p("")

    # ---- scale
    scale = [json.loads(l) for l in read(w("scale.json")).splitlines() if l.strip()]
    if scale:
        p("## Scale: many configured peers")
        p("")
        p("A gateway with N configured peers (`scripts/scale-peers.py`: random keys, an "
          "IPv6 /128 each and an IPv4 /32 for the first 32768), idle, on memif ports with "
          "nobody on the other side, one worker. `check`: `wgdp check` of the file; "
          "`start`: until the worker runs and the UAPI socket answers; `memory`: the "
          "process's resident memory 2 s later, and per peer over the smallest run; "
          "`control CPU`: the control thread's share of a CPU over 5 s of idling; "
          "`wg show`: `wg show IFACE dump` of every peer; `scrape`: one `GET /metrics` "
          "(per-peer series bounded by `metrics.peer_series`, 1000); `reload`: SIGHUP with "
          "one peer's allowed IPs changed, until the log says it is applied; `stop`: "
          "SIGTERM until the process is gone, every mbuf back.")
        p("")
        p("| peers | check (s) | start (s) | memory (MiB) | per peer (KiB) | control CPU | wg show (s) | scrape (s) | reload (s) | stop (s) |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        base = min(scale, key=lambda r: r["peers"])
        for r in scale:
            per = ("-" if r is base else
                   f"{(r['rss_kb'] - base['rss_kb']) / (r['peers'] - base['peers']):.2f}")
            p(f"| {r['peers']} | {r['check_s']:.2f} | {r['start_s']:.2f} | "
              f"{r['rss_kb'] / 1024:.0f} | {per} | {r['control_cpu_percent']} % | "
              f"{r['show_s']:.2f} | {r['scrape_s']:.2f} | {r['reload_s']:.2f} | {r['stop_s']:.2f} |")
        p("")
        cs = read(w("control_scale.txt")).strip()
        if cs:
            p("The control plane alone, without DPDK (`target/release/examples/control_scale "
              "N...`): making it (a static-static Diffie-Hellman per peer, precomputed as the "
              "kernel does), its memory per peer, a timer tick while every peer is idle, one "
              "changed peer (cryptokey routing changed and published), a walk over every "
              "peer's counters, and the memory of an active session (for min(N, 10^5) peers, "
              "a keypair installed as a handshake leaves it, with its keys, replay window, "
              "receiver index and sending slot, and one packet each way counted by a worker):")
            p("")
            p(cs)
            p("")

    # ---- handshakes per second on one core
    hs = read(w("handshakes.txt")).strip()
    m = re.search(r"^\| responder: [^|]*\| (\d+) \| [^|]*\| (\d+) \|", hs, re.M)
    if m:
        peers, rate = int(m.group(1)), int(m.group(2))
        p("## Handshakes per second on one core")
        p("")
        p("How many complete WireGuard handshakes the control thread does in a second, on "
          "one CPU, with real X25519 and without DPDK (`taskset -c 1 "
          f"target/release/examples/handshake_rate {peers}`): wgdp's control plane, the code "
          f"the control lcore runs, on plain memory, with {peers} configured peers, each with "
          "a key of its own. As responder it receives one valid initiation from every peer, "
          "as a worker hands it over, 32 in each round of the control loop, fewer than the "
          "queue depth from which the gateway counts itself under load, so no cookie is ever "
          "asked for; it answers each with a response and installs the session. As "
          "initiator it gets one waiting packet for every peer and sends an initiation, then "
          "receives the peers' responses, installs each session and sends the packet that "
          "waited. Only the control plane's work is timed; the peers are played by wgdp's "
          "own handshake engine outside the timing, whose cost alone is shown for comparison. "
          "\"X25519 per handshake\" is a handshake's time over that of one X25519 "
          "multiplication as the engine makes it (aws-lc's, on a key imported once) on the "
          "same CPU: with the static-static one computed once per peer when it is "
          "configured, each side needs three, and a cheaper one (fixed base) for its "
          "ephemeral key, which it also imports; what lies above that is hashing, "
          "encryption and bookkeeping. x25519-dalek's multiplication, which the engine used "
          "before, is shown for comparison. "
          f"For an operator: at the responder's {rate} handshakes a second, {peers} peers "
          f"that all reconnect at once (after a restart) are answered in {peers / rate:.1f} s, "
          "and as every peer with traffic makes a new handshake every two minutes, one core "
          f"keeps up with the rekeying of about {rate * 120 / 1000:.0f} thousand active "
          "peers. Above that rate "
          "handshake messages queue up, and from 128 waiting the gateway is under load and "
          "answers with cookies first.")
        p("")
        p(hs)
        p("")

    # ---- handshakes per second on threads
    ht = read(w("handshake_threads.txt")).strip()
    if ht.startswith("|"):
        p("## Handshakes per second on threads")
        p("")
        p("The responder of the section above with the Diffie-Hellman work of its "
          "handshakes on threads (`dpdk.handshake_threads`, docs/architecture.md, "
          "\"Handshakes on several threads\"; `target/release/examples/handshake_rate "
          "N --threads 0,1,2`, on every CPU of the machine): 0 is the control thread doing "
          "it as above; with threads, the control thread keeps the order, the state and "
          "every check, the threads do the X25519, and the control loop sleeps on its "
          "doorbell until they give results back. Timed: from the first initiation handed "
          "over to the last response sent, in wall time and in CPU time of the whole "
          "process; \"handshakes per CPU second\" is the work per core. On a machine "
          "with two CPUs, one thread beside the control thread is all that can run at "
          "once; with two, three threads share two CPUs.")
        p("")
        p(ht)
        p("")

    # ---- restart storm
    st = read(w("storm.txt")).strip()
    if st.startswith("|"):
        p("## A restart storm")
        p("")
        p("A gateway with N configured peers comes back after a restart while every peer "
          "still sends, so every peer makes a handshake (`target/release/examples/"
          "restart_storm N --threads K`): wgdp's control plane with real X25519, the "
          "handshake queue (1024), cookies under load and the per-source limits as in "
          "production, its Diffie-Hellman work on K threads; the peers, played by wgdp's "
          "own handshake engine with a key each, send their first initiation at a random "
          "moment in the first second and retry after Rekey-Timeout (5 s) plus up to "
          "333 ms, with mac2 once they got a cookie, as WireGuard peers do; messages "
          "reach control through one worker's ring of 4096. The gateway's clock runs "
          "while it works (rounds, and sleeps until a thread gives a result) and stands "
          "still while the peers make their messages, since real peers are other "
          "machines. \"Start\" is the making of the control plane with the peers' "
          "static-static Diffie-Hellman on every CPU; \"all back after\" the time from "
          "the restart until the last peer has its session; every session is checked by "
          "its peer's engine, and every initiation is counted as answered, given a "
          "cookie or dropped (queue or ring full, rate-limited or refused).")
        p("")
        p("| peers | handshake threads | start (s) | all back after (s) | handshakes/s (average) | "
          "most in one second | initiations | responses | cookie replies | dropped (queue, ring) | "
          "rate-limited or refused |")
        p("|---|---|---|---|---|---|---|---|---|---|---|")
        p(st)
        p("")

    # ---- restart storm through DPDK
    storms = [(t, load(w(f"gateway_storm-{t}.json"))) for t in (0, 1)]
    storms = [(t, r) for t, r in storms if r]
    failed = [t for t in (0, 1) if "failed" in read(w(f"gateway_storm-{t}.txt"))]
    if storms or failed:
        peers = storms[0][1]["storm"]["peers"] if storms else "?"
        p("## A restart storm through DPDK")
        p("")
        p(f"`wgdp` with {peers} configured peers is stopped and started again while "
          f"`wgdp-pktgen`'s {peers} peers send (`scripts/bench.sh storm --peers {peers} "
          "--rate 20000 --threads K`): wgdp on veth with net_af_xdp in a network namespace "
          "of its own, its worker on CPU 1 (idle: adaptive) beside the generator, its "
          "control thread on CPU 0; `dpdk.handshake_threads` K, a thread on CPU 0 too (no "
          "CPU is free). Each generator peer has a key and an address of its own "
          "(198.19.128.0/17, about three peers per address, behind the generator as the "
          "gateway's next hop), and the peers send 20000 data packets a second between "
          "them (one every 5 s each). They keep a WireGuard peer's timers: data sent "
          "and nothing authenticated heard for 15 s (plus up to 333 ms) makes a new "
          "handshake, an unanswered initiation is sent again after 5 s (plus up to "
          "333 ms), a cookie waits for that retry. Before the restart every peer has a "
          "session and hears the gateway's passive keepalives; after it, each peer notices "
          "on its own timer. Times are seconds after the stop: \"down\" until the new "
          "`wgdp` answered, \"first\" and \"all\" the first and the last peer with a "
          "new session, \"data\" the last peer whose data came out of the inside port on "
          "its new session (it sends every 5 s). Handshakes a second: every peer over the "
          "time from the first new session to the last, and the best second. The "
          "gateway's counters are the restarted gateway's. \"Handshakes while up\": "
          "peers that heard no keepalive for 15 s from the live gateway before the "
          "restart and made a new handshake; the gateway sent every keepalive, and the "
          "generator's AF_XDP receive path on veth lost a few when hundreds came at once "
          "(docs/architecture.md, section 7).")
        p("")
        p("| handshake threads | down | first | all | data | handshakes/s | best second | "
          "initiations | retries | cookie replies | under load | queue full | rate-limited | "
          "handshakes while up |")
        p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for t, r in storms:
            s_ = r["storm"]
            g = r.get("gateway_control", {})
            def ctl(kind, name):
                return g.get(f'wgdp_control_{kind}_total{{{"event" if kind == "events" else "reason"}="{name}"}}', 0)
            p(f"| {t} | {s_['gateway_down_seconds']:.1f} | {s_['first_session_seconds']:.1f} | "
              f"{s_['all_sessions_seconds']:.1f} | {s_['all_delivering_seconds']:.1f} | "
              f"{s_['mean_handshakes_per_second']:.0f} | {s_['peak_handshakes_per_second']} | "
              f"{s_['initiations']} | {s_['retries']} | {s_['cookie_replies']} | "
              f"{ctl('events', 'under_load')} | {ctl('drops', 'handshake_queue_full')} | "
              f"{ctl('drops', 'rate_limited')} | {s_['initiations_before_stop']} |")
        for t in failed:
            p(f"| {t} | failed: see the run's gateway_storm-{t}.txt | | | | | | | | | | | | |")
        p("")
        for t, r in storms:
            per = r["storm"]["sessions_per_second"]
            first = next((i for i, n in enumerate(per) if n), 0)
            p(f"New sessions in each second from second {first} after the stop, "
              f"{t} handshake threads: {', '.join(str(n) for n in per[first:])}.")
            p("")

    # ---- allowed IPs at 10^6 prefixes
    fib = "\n".join(l for l in read(w("fib.txt")).splitlines() if not l.startswith("EAL:"))
    m = re.search(r"^IPv[46]: (\d+) prefixes", fib, re.M)
    if m:
        count = int(m.group(1))
        power = len(str(count)) - 1
        count = f"10^{power}" if count == 10 ** power else str(count)
        p(f"## Allowed-IPs lookups at {count} prefixes")
        p("")
        p("Cryptokey routing's table (`dataplane::lpm::PrefixTable`: a hash map per prefix "
          "length, searched longest first) against DPDK's own longest-prefix-match tables, "
          "`rte_fib` (DIR-24-8) for IPv4 and `rte_fib6` (a trie of 8-bit strides under a "
          "24-bit first level) for IPv6, with 4-byte next hops and their scalar and AVX-512 "
          "lookups, on CPU 1 (`taskset -c 1 target/release/examples/fib_cost PREFIXES "
          "--ipv4`, then `--ipv6`). The prefixes are shaped like a concentrator's: IPv4 "
          "mostly /32s at random in 10.0.0.0/9 and 100.64.0.0/10 with site /24s to /16s and "
          "/28s and /30s under a /12; IPv6 mostly /128s from a /64 pool per /48 and /64s "
          "under 16 /48s, some /56s, four of the /48s themselves; each prefix its own value. "
          "2^20 random addresses, 90 % inside a prefix and 10 % a pool's address that is no "
          "peer's; \"single\" is one address at a time (for `rte_fib`, a bulk lookup of "
          "one), \"bulk N\" N at a time; each sixteenth of the addresses the best of 5 runs. Before the timing, 100000 "
          "addresses must get the same answer from every structure. `MiB`: the own table's "
          "heap, or the DPDK heap `rte_fib` holds (sized at creation: its first level, node "
          "pool and the 256-entry groups it reserves, which DPDK 22.11 counts per prefix "
          "added), and what of that was touched; `add`/`del`: 1000 prefixes added to the full "
          "table and deleted again, the median of batches of 50. A family whose tables do not fit "
          "in the free hugepages runs on plain memory (the first line of its block says which). "
          "\"IPv4 as wgdp keeps it\" is `dataplane::allowed` as the gateway runs it: two "
          "`rte_fib`s changed left-right (docs/architecture.md, section 4), against two "
          "`PrefixTable`s changed the same way (wgdp without DPDK, and IPv6); `build s` both "
          "tables, `MiB` both, `lookup clk` an address at a time through `Allowed::lookup`, "
          "`1 change ms` the median of 50 changes of one prefix each (what a reload or "
          "`wg set` of one peer costs cryptokey routing), `1000 ms` one change of 1000 prefixes.")
        p("")
        p("\n".join(("    " + l).rstrip() for l in fib.splitlines()))
        p("")

    # ---- cryptodev
    crows = throughput_rows(load(w("cryptodev.json")))
    if crows:
        p("## The cryptodev backend against the in-line one")
        p("")
        p("The same memif search with `crypto: { backend: cryptodev, device: crypto_aesni_mb0 }`: "
          "the Intel IPsec-MB library behind DPDK's cryptodev API, on the worker's own lcore "
          "(a software PMD does its work inside the enqueue and dequeue calls), against the "
          "in-line backend above, which calls the same library directly.")
        p("")
        p("| direction | frame | in line Mpps | cryptodev Mpps | cryptodev / in line |")
        p("|---|---|---|---|---|")
        inline = {(r["direction"], r["size"]): r for r in mrows}
        for r in crows:
            i = inline.get((r["direction"], r["size"]))
            p(f"| {r['direction']} | {r['size']} B | {fmt(i and i['mpps'], 3)} | {r['mpps']:.3f} | "
              f"{fmt(i and r['mpps'] / i['mpps'], 2)} |")
        p("")

    # ---- adaptive idle
    idle = load(w("idle.json")) or {}
    idle_runs = {mode: [t for t in (load(w(f"idle-{mode}.json")) or {}).get("trials", [])
                        if t.get("latency")]
                 for mode in ("poll", "adaptive")}
    if idle.get("rows") or any(idle_runs.values()):
        p("## Adaptive idle")
        p("")
        p("With `idle: adaptive` a worker sleeps after 64 empty polls, 1 us first, doubling "
          "every 64 polls up to half the time its smallest RX ring takes to fill at line rate "
          "(at most 256 us; the gateway logs the figure at start). Latency at 10000 packets/s, "
          "64-byte frames, so that the worker is idle between packets, with each `idle` "
          "setting (median, p99, generator to generator over net_memif; the testpmd "
          "baseline above is what the links and generator add):")
        p("")
        p("    GW_IDLE=adaptive ... wgdp-pktgen run --latency --rate 10000 --size 64")
        p("")
        if any(idle_runs.values()):
            p("| idle | direction | median | p99 | max |")
            p("|---|---|---|---|---|")
            for mode, trials in idle_runs.items():
                for t in trials:
                    l = t["latency"]
                    p(f"| `{mode}` | {t['direction']} | {l['median_ns'] / 1e3:.1f} us | "
                      f"{l['p99_ns'] / 1e3:.1f} us | {l['max_ns'] / 1e3:.1f} us |")
            p("")
        if idle.get("rows"):
            p("How long the sleeps really last on the worker's CPU "
              f"(`examples/idle_wakeup`, {idle.get('samples')} sleeps each): with the kernel's "
              "default timer slack of 50 us, and with the 1 ns that `Worker::run` sets for "
              "`idle: adaptive`:")
            p("")
            p("    taskset -c 1 target/release/examples/idle_wakeup 1000")
            p("")
            p("| asked | default slack: median | p99 | 1 ns slack: median | p99 |")
            p("|---|---|---|---|---|")
            by = {}
            for r in idle["rows"]:
                by.setdefault(r["asked_us"], {})[r["slack_ns"]] = r
            for asked, rows in sorted(by.items()):
                d, f = rows.get(50000, {}), rows.get(1, {})
                p(f"| {asked} us | {fmt(d.get('median_us'), 1)} us | {fmt(d.get('p99_us'), 1)} us | "
                  f"{fmt(f.get('median_us'), 1)} us | {fmt(f.get('p99_us'), 1)} us |")
            p("")

    # ---- stages
    p("## Where the clocks go")
    p("")
    p("wgdp's runtime accounting (docs/operations.md, \"Where the clocks go\") read from its "
      "metrics before and after the lossless trial at the rate found: clocks per packet of "
      "each stage of the worker, packets per vector, and each stage's share of the worker's "
      "busy clocks (`*_crypto` is the AEAD's part of decrypt or encrypt, already inside "
      "it). `rx` is given per poll: its clocks include the empty polls of the whole "
      "window, which is wider than the trial (the gateway renews its metrics twice a "
      "second). `all stages but rx` is the sum of the other stages' clocks per packet.")
    p("")
    stage_labels, stage_values, stage_names = [], [], []
    for r in mrows:
        best = r.get("best")
        if not best or not best.get("stages"):
            continue
        rows = stage_table(best["stages"], best["received"])
        p(f"**{r['direction']}, {r['size']} B** at {r['mpps']:.3f} Mpps "
          f"(TSC {memif.get('tsc_hz', 0) / 1e9:.2f} GHz):")
        p("")
        p("| stage | calls | packets/vector | clocks/packet | share of busy |")
        p("|---|---|---|---|---|")
        for s in rows:
            p(f"| {s['stage']} | {s['calls'] if s['calls'] is not None else ''} | "
              f"{fmt(s['per_vector'], 1) if s['per_vector'] is not None else ''} | "
              f"{s['clocks_per_packet']:.0f} | "
              f"{'' if s['share'] is None else format(s['share'] * 100, '.0f') + ' %'} |")
        p("")
        if r["size"] in ("64", "1420"):
            main = {s["stage"]: s for s in rows if not s["stage"].endswith("_crypto")
                    and s["clocks"] is not None and s["stage"] != "all stages but rx"}
            for st in main:
                if st not in stage_names:
                    stage_names.append(st)
            stage_labels.append(f"{r['direction']} {r['size']} B")
            stage_values.append((main, best["received"]))
    if stage_labels:
        order = [s for s in STAGE_ORDER if s in stage_names] + [s for s in stage_names if s not in STAGE_ORDER]
        # Per packet forwarded, so that a bar adds up to the worker's clocks per packet.
        vals = [[m[s]["clocks_per_packet"] if s in m else 0 for s in order]
                for m, _ in stage_values]
        if stacked_plot(a.plots, "stages", "Clocks per packet by stage (net_memif, one worker)",
                        stage_labels, order, vals):
            p(f"![Clocks per packet by stage]({plots_rel}/stages.png)")
            p("")

    throughput_section(
        "Throughput and latency over veth with net_af_xdp", afxdp, arows,
        "The same, over two veth pairs in a network namespace, wgdp and the generator each "
        "on one end through AF_XDP (copy mode on veth). The kernel's veth and XDP paths are "
        "in these figures.")

    # ---- the same generator against wireguard-go
    grows = throughput_rows(wggo)
    throughput_section(
        "The same generator against wireguard-go", wggo, grows,
        "wireguard-go (Debian's) as the gateway, in a network namespace with the gateway's "
        "veth ends, IP forwarding and a wireguard-go interface holding the generator's "
        "peers; the generator on the other ends through net_af_xdp, as in the section "
        "above. The ratio column is against the AEAD bound of wgdp's in-line code, "
        "which wireguard-go does not use (it has Go's ChaCha20-Poly1305).")
    if arows and grows:
        p("wgdp over veth and AF_XDP against wireguard-go over the same veths, same generator, "
          "same run:")
        p("")
        p("| direction | frame | wgdp Mpps | wireguard-go Mpps | wgdp / wireguard-go |")
        p("|---|---|---|---|---|")
        for r in arows:
            g = next((x for x in grows if x["direction"] == r["direction"] and x["size"] == r["size"]), None)
            if g:
                p(f"| {r['direction']} | {r['size']} B | {r['mpps']:.3f} | {g['mpps']:.3f} | "
                  f"{fmt(r['mpps'] / g['mpps'] if g['mpps'] else None, 1)} |")
        p("")

    # ---- iperf
    p("## iperf3 through the gateway: wgdp against wireguard-go")
    p("")
    p("TCP through a gateway between a wireguard-go peer and a LAN host, each in its own "
      "network namespace on the same two CPUs, with the end-to-end harness "
      "(`scripts/e2e.sh --only wgdp-first --drivers af_xdp`): wgdp (one worker, AF_XDP on "
      "veth) as the gateway, then wireguard-go (Debian's, with kernel forwarding) as the "
      "gateway, in the same run. The peer is wireguard-go in both, and on these two CPUs it is "
      "often the bottleneck.")
    p("")
    if iperf["wgdp"] or iperf["wireguard-go"]:
        checks = []
        for gw in ("wgdp", "wireguard-go"):
            for c, _ in iperf[gw]:
                if c not in checks:
                    checks.append(c)
        p("| check | wgdp Mbit/s | wireguard-go Mbit/s | ratio |")
        p("|---|---|---|---|")
        for c in checks:
            x = dict(iperf["wgdp"]).get(c)
            y = dict(iperf["wireguard-go"]).get(c)
            p(f"| {c} | {x if x is not None else '-'} | {y if y is not None else '-'} | "
              f"{fmt(x / y if x and y else None)} |")
        p("")
    else:
        p("(no iperf3 results)")
        p("")

    # ---- costs
    off = read(w("offload.txt")).strip()
    acc = read(w("accounting.txt")).strip()
    reo = "\n".join(l for l in read(w("reorder.txt")).splitlines()
                    if "clocks per packet" in l)
    if off or acc or reo:
        p("## Costs of single operations")
        p("")
        if off:
            p("### Checksums and super-packets")
            p("")
            p("What the offload stage (docs/architecture.md, \"What a host hands the ports\") "
              "costs per packet, next to the seal every packet pays anyway "
              "(`taskset -c 1 target/release/examples/offload_cost`):")
            p("")
            p(off)
            p("")
        if acc:
            p("### Runtime accounting")
            p("")
            p("What one mark of the runtime accounting costs "
              "(`taskset -c 1 target/release/examples/accounting_cost`):")
            p("")
            p("    " + "\n    ".join(acc.splitlines()))
            p("")
        if reo:
            p("### Keeping one tunnel's order")
            p("")
            p("What restoring a flow's order costs per packet when a helper opened half of "
              "each vector of 256 (docs/architecture.md, \"One tunnel on many cores\"): the "
              "stages' flight queue, which wgdp uses, against DPDK's `rte_reorder` (a "
              "sequence number in each mbuf, insert, drain), the field's library for it "
              "(`sudo taskset -c 1 target/release/examples/reorder_cost`):")
            p("")
            p("    " + "\n    ".join(reo.splitlines()))
            p("")

    earlier = read(os.path.join(a.plots, "earlier.md")).strip()
    if earlier:
        p("## Earlier measurements")
        p("")
        p("Taken by hand on the same kind of machine, each with its command and date; "
          "`make bench` does not repeat them (kept in docs/bench/earlier.md).")
        p("")
        p("\n".join(l for l in earlier.splitlines() if not l.startswith("<!--")).strip())
        p("")

    p("## How to measure again")
    p("")
    p("    sudo make bench                      # everything above; rewrites this file")
    p("    sudo make bench BENCH_ARGS=--quick   # a short run that checks the harness")
    p("")
    p("`wgdp-pktgen --help` tells the generator's options, docs/architecture.md (section 7) "
      "how it works, and pktgen-scripts/README.md how to drive wgdp with DPDK-Pktgen instead.")
    with open(a.doc, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


if __name__ == "__main__":
    main()
