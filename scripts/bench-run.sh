# shellcheck shell=bash
# `make bench`: sourced by scripts/bench.sh, whose helpers (need, gw_start,
# gw_stop, memif_devices, pktgen, eal_memory) it uses. Every step writes its
# results into $WORK; scripts/bench-report.py turns them into docs/benchmarks.md
# and the plots in docs/bench/.

# bench_log MESSAGE
bench_log() {
    echo "bench: $(date -u +%H:%M:%S) $*"
}

# machine_info FILE: what the figures were measured on, as JSON.
machine_info() {
    local cpu flags
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    python3 - "$1" "$cpu" "$(nproc)" "$(uname -r)" "$(pkg-config --modversion libdpdk 2>/dev/null || echo unknown)" \
        "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        "$([[ $flags == *avx512f* ]] && echo yes || echo no)" \
        "$(wireguard-go --version 2>/dev/null | head -1 || echo unknown)" <<'PY'
import json, sys, datetime
out, cpu, cpus, kernel, dpdk, rev, avx512, wggo = sys.argv[1:]
json.dump({"cpu": cpu, "cpus": int(cpus), "kernel": kernel, "dpdk": dpdk,
           "revision": rev, "avx512": avx512 == "yes", "wireguard_go": wggo,
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
          open(out, "w"), indent=1)
PY
}

# The AEAD plaintext lengths that the inside frames of the benchmark become:
# inner packet = frame - 14, padded to 16 (64 -> 64, 512 -> 512, 570 -> 560,
# 1420 -> 1408).
AEAD_SIZES=64,512,560,1408

bench_aead() {
    local secs=$1
    bench_log "AEAD bound on CPU 1 (the worker's), ${secs} s per run"
    taskset -c 1 "$REPO/target/release/examples/aead_bound" "$secs" "$AEAD_SIZES" --json --compare >"$WORK/aead.json"
    if command -v dpdk-test-crypto-perf >/dev/null; then
        bench_log "dpdk-test-crypto-perf, crypto_aesni_mb, ChaCha20-Poly1305 on lcore 1"
        # shellcheck disable=SC2046
        dpdk-test-crypto-perf --no-pci $(eal_memory) --file-prefix "wgdp-bench-cp-$$" \
            --vdev crypto_aesni_mb0 -l 0,1 -- --ptest throughput --devtype crypto_aesni_mb \
            --optype aead --aead-algo chacha20-poly1305 --aead-op encrypt --aead-key-sz 32 \
            --aead-iv-sz 12 --digest-sz 16 --buffer-sz "$AEAD_SIZES" --total-ops 2000000 \
            --burst-sz 32 >"$WORK/cryptoperf.txt" 2>&1 || echo "failed: $?" >>"$WORK/cryptoperf.txt"
        # It leaves its runtime directory (telemetry sockets) behind.
        rm -rf "/var/run/dpdk/wgdp-bench-cp-$$"
    fi
}

# bench_memif ARGS...: wgdp-pktgen search over net_memif.
bench_memif() {
    bench_log "throughput and latency over net_memif"
    memif_devices memif
    gw_start memif "$GW_OUT" "$GW_IN" "$BENCH_PEERS"
    GEN_OUTPUT=$WORK/memif.txt pktgen_memif search --peers "$BENCH_PEERS" \
        --json "$WORK/memif.json" "$@"
    cat "$WORK/memif.txt"
}

# bench_baseline COUNT: latency through dpdk-testpmd forwarding between the same
# kind of memif links (io mode, one forwarding core on lcore 1, as wgdp's worker):
# what the links and the generator add, so that the report can tell what the
# gateway adds.
bench_baseline() {
    command -v dpdk-testpmd >/dev/null || return 0
    bench_log "latency baseline: dpdk-testpmd io forwarding over net_memif"
    memif_devices testpmd
    local prefix=wgdp-bench-tp-$$ log=$WORK/testpmd.log pid i
    # shellcheck disable=SC2046
    dpdk-testpmd --no-pci $(eal_memory) --no-telemetry --file-prefix "$prefix" -l 0,1 \
        --vdev "$GW_OUT" --vdev "$GW_IN" -- \
        --forward-mode=io --auto-start --nb-cores=1 --stats-period 3600 >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        memif_listening "$WORK/testpmd-out.sock" && memif_listening "$WORK/testpmd-in.sock" && break
        kill -0 "$pid" 2>/dev/null || die "dpdk-testpmd exited (log: $log)"
        sleep 0.1
    done
    local -a eal=()
    for i in $(eal_memory); do eal+=("--eal-arg=$i"); done
    "$PKTGEN" baseline --outside "$GEN_OUT" --inside "$GEN_IN" --lcore 0 "${eal[@]}" \
        --count "$1" --json "$WORK/baseline.json" --linger-file "$WORK/baseline.done" \
        >"$WORK/baseline.txt" &
    local gen=$!
    PIDS+=("$gen")
    while [[ ! -e $WORK/baseline.done ]] && kill -0 "$gen" 2>/dev/null; do sleep 0.1; done
    kill -TERM "$pid"
    wait "$pid" || true
    wait "$gen" || echo "bench: wgdp-pktgen baseline failed" >&2
    cat "$WORK/baseline.txt"
    rm -rf "/var/run/dpdk/$prefix"
}

# bench_afxdp ARGS...: the same over veth pairs with net_af_xdp, in a network
# namespace of its own.
bench_afxdp() {
    bench_log "throughput and latency over veth with net_af_xdp"
    local ns
    afxdp_link
    ns=$AFXDP_NS
    gw_start afxdp "net_af_xdp0,iface=gw-out" "net_af_xdp1,iface=gw-in" "$BENCH_PEERS" "$ns"
    pktgen search NETNS="$ns" --peers "$BENCH_PEERS" --json "$WORK/afxdp.json" "$@" | tee "$WORK/afxdp.txt"
    gw_stop
}

# bench_wireguard_go ARGS...: the same generator against wireguard-go (Debian's)
# as the gateway: a namespace with the gateway's two veth ends, their addresses,
# IP forwarding and a wireguard-go interface with the generator's peers; the
# generator in a namespace of its own on the other ends, through net_af_xdp.
bench_wireguard_go() {
    command -v wireguard-go >/dev/null || return 0
    bench_log "the same generator against wireguard-go as the gateway (veth)"
    local gw=wgdp-bench-$$-wggo gen=wgdp-bench-$$-wggen name=wgb$$ key pid i l
    ip netns add "$gw"
    NETNS+=("$gw")
    ip netns add "$gen"
    NETNS+=("$gen")
    ip link add gw-out netns "$gw" type veth peer name gen-out netns "$gen"
    ip link add gw-in netns "$gw" type veth peer name gen-in netns "$gen"
    for l in gen-out gen-in; do
        ip netns exec "$gen" sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
    done
    ip -n "$gw" addr add 198.19.0.2/24 dev gw-out
    ip -n "$gw" addr add 198.18.2.1/24 dev gw-in
    for l in lo gw-out gw-in; do ip -n "$gw" link set "$l" up; done
    for l in lo gen-out gen-in; do ip -n "$gen" link set "$l" up; done
    ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$gw" wireguard-go -f "$name" >"$WORK/wireguard-go.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 100; i++)); do
        [[ -S /var/run/wireguard/$name.sock ]] && break
        sleep 0.1
    done
    key=$(wg genkey)
    GW_PUB=$(wg pubkey <<<"$key")
    printf '%s\n' "$key" >"$WORK/wireguard-go.key"
    ip netns exec "$gw" wg set "$name" private-key "$WORK/wireguard-go.key" listen-port 51820
    # The generator's peers, from the same seed as its keys.
    local pub ips
    while read -r pub ips; do
        ip netns exec "$gw" wg set "$name" peer "$pub" allowed-ips "$ips"
    done < <("$PKTGEN" peers --peers "$BENCH_PEERS" |
        sed -n 's/.*public_key: "\(.*\)"/\1/p; s/.*allowed_ips: \["\(.*\)"\]/\1/p' | paste - -)
    ip -n "$gw" link set "$name" up
    ip -n "$gw" route add 198.18.128.0/24 dev "$name"
    GEN_OUT="net_af_xdp0,iface=gen-out"
    GEN_IN="net_af_xdp1,iface=gen-in"
    GW_METRICS=
    pktgen search NETNS="$gen" --peers "$BENCH_PEERS" --json "$WORK/wireguard-go.json" "$@" |
        tee "$WORK/wireguard-go.txt"
    kill -TERM "$pid"
    wait "$pid" || true
}

# bench_iperf SECONDS: iperf3 through wgdp and through wireguard-go as the
# gateway, with the end-to-end harness (scripts/e2e.sh, scenario wgdp-first).
bench_iperf() {
    local secs=$1 gw
    for gw in wgdp wireguard-go; do
        bench_log "iperf3 through $gw ($secs s per run)"
        bash "$REPO/scripts/e2e.sh" --gateway "$gw" --drivers af_xdp --only wgdp-first \
            --seconds "$secs" >"$WORK/iperf-$gw.txt" 2>&1 || true
    done
}

# bench_memif_zero_copy ARGS...: the memif search again with wgdp as a zero-copy memif
# client (memif_zero_copy): its driver no longer copies each packet in and out, as with
# a NIC, which writes packets into memory itself.
bench_memif_zero_copy() {
    bench_log "throughput over net_memif, wgdp a zero-copy client"
    # Its EAL arguments and pool size are for this run only.
    local GW_EAL_ARGS GW_MBUFS
    memif_zero_copy memif-zc
    gw_config memif-zc "$GW_OUT" "$GW_IN" "$BENCH_PEERS"
    AFTER_GEN=gen_first_gw_launch GEN_OUTPUT=$WORK/memif-zc.txt pktgen_memif search \
        --peers "$BENCH_PEERS" --json "$WORK/memif-zc.json" "$@" || true
    cat "$WORK/memif-zc.txt"
}

# bench_scaling ARGS...: the memif search with 1, 2, ... workers (as many as the
# machine has CPUs for, and at least 2 with lcores sharing CPUs, to show the method), for
# 16 peers over as many queues as workers, and for one peer (one flow, one queue); with
# more than one worker, each once with dpdk.share_crypto on and once off. Worker w runs
# on lcore w; where there are fewer than workers + 2 CPUs (control and the generator
# take lcore 0), lcores share CPUs (dpdk.lcores.cpus) and the run is marked so. The
# stop log's spread counters of each run go into its meta file.
bench_scaling() {
    local cpus n peers most w map share name
    cpus=$(nproc)
    most=$((cpus - 1 > 2 ? cpus - 1 : 2))
    for ((n = 1; n <= most; n++)); do
        map=
        for ((w = 1; w <= n; w++)); do
            ((w < cpus)) || map+="${map:+, }$w: $((w % cpus))"
        done
        for peers in 16 1; do
            for share in true false; do
                ((n > 1)) || [[ $share == true ]] || continue
                name=scale-$n-$peers$([[ $share == true ]] || echo -alone)
                bench_log "scaling: $n worker(s), $peers peer(s), share_crypto $share"
                memif_devices "$name"
                GW_LCORES="{ control: 0, workers: [$(seq -s ', ' 1 "$n")]${map:+, cpus: { $map \}} }" \
                    GW_MBUFS= GW_SHARE=$share gw_start "$name" "$GW_OUT" "$GW_IN" "$peers"
                GEN_OUTPUT=$WORK/$name.txt pktgen_memif search --peers "$peers" \
                    --queues "$n" --json "$WORK/$name.json" "$@" || true
                echo "{\"workers\": $n, \"peers\": $peers, \"cpus\": $cpus, \"share\": $share," \
                    "\"shared\": $([[ -n $map ]] && echo true || echo false)," \
                    "\"helped\": $(spread_helped "$GW_LOG")}" >"$WORK/$name.meta.json"
            done
        done
    done
}

# spread_helped LOG: the packets workers opened or sealed for other workers, from the
# counters wgdp logs at stop (spread.helped_open=N spread.helped_seal=N).
spread_helped() {
    grep -o 'spread\.helped_[a-z]*=[0-9]*' "$1" | awk -F= '{ n += $2 } END { print n + 0 }'
}

# bench_one_tunnel PACKETS SIZES: one peer's packets through one worker and through two
# on CPUs 0 and 1 sharing its AEAD, on plain memory (examples/one_tunnel.rs).
bench_one_tunnel() {
    bench_log "one tunnel on one worker and on two ($1 packets, frames of $2 bytes)"
    "$REPO/target/release/examples/one_tunnel" "$1" "$2" --json >"$WORK/one_tunnel.json" 2>"$WORK/one_tunnel.err" || true
}

# bench_scale COUNTS...: a gateway with each count of configured peers (scripts/scale-peers.py:
# random keys, an IPv6 /128 each and an IPv4 /32 for the first 32768), idle, on memif
# ports with nobody on the other side: how long `wgdp check` and a start take, the
# memory it holds, the control thread's CPU while idle, `wg show` of every peer, a
# metrics scrape, a reload that changes one peer, and the stop. Then the control plane
# alone (examples/control_scale). One JSON line per count in scale.json.
bench_scale() {
    local n dir pid t started check start rss c0 c1 show scrape reload stop lines key
    : >"$WORK/scale.json"
    for n in "$@"; do
        bench_log "scale: $n peers"
        dir=$WORK/scale-$n
        mkdir -p "$dir"
        key=$(wg genkey)
        # shellcheck disable=SC2046 # word splitting of the memory options is wanted
        cat >"$dir/gw.yaml" <<EOF
dpdk:
  eal_args: $(yaml_list --no-pci --file-prefix "wgdp-bench-$$-scale" $(eal_memory $((256 + n * 1400 / 1000000))))
  lcores: { control: 0, workers: [1] }
ports:
  outside:
    device: "net_memif0,role=server,socket=$dir/out.sock"
    addresses: ["198.19.0.2/24"]
  inside:
    device: "net_memif1,role=server,socket=$dir/in.sock"
    addresses: ["198.18.2.1/24"]
wireguard:
  private_key: "$key"
metrics:
  listen: "127.0.0.1:19977"
uapi:
  name: "wgdps$$"
EOF
        python3 "$REPO/scripts/scale-peers.py" "$n" >>"$dir/gw.yaml"
        chmod 600 "$dir/gw.yaml"
        t=$(now_s)
        "$REPO/target/release/wgdp" check --config "$dir/gw.yaml" >/dev/null
        check=$(since "$t")
        started=$(now_s)
        "$REPO/target/release/wgdp" --config "$dir/gw.yaml" --pid-file "$dir/pid" >"$dir/log" 2>&1 &
        pid=$!
        until [[ -S /var/run/wireguard/wgdps$$.sock ]] && grep -q 'worker started' "$dir/log"; do
            kill -0 "$pid" 2>/dev/null || die "scale $n: wgdp did not start: $(tail -3 "$dir/log")"
            sleep 0.05
        done
        start=$(since "$started")
        sleep 2
        rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
        c0=$(awk '{ print $14 + $15 }' "/proc/$pid/task/$pid/stat")
        sleep 5
        c1=$(awk '{ print $14 + $15 }' "/proc/$pid/task/$pid/stat")
        t=$(now_s)
        lines=$(wg show "wgdps$$" dump | wc -l)
        show=$(since "$t")
        t=$(now_s)
        curl -s 127.0.0.1:19977/metrics >/dev/null
        scrape=$(since "$t")
        # One peer's allowed IPs change: the last one gains an IPv6 /128.
        sed -i '$ s|"\] }$|", "2001:2:0:2000::1/128"] }|' "$dir/gw.yaml"
        t=$(now_s)
        kill -HUP "$pid"
        until grep -q 'configuration reloaded' "$dir/log"; do sleep 0.02; done
        reload=$(since "$t")
        t=$(now_s)
        kill -TERM "$pid"
        wait "$pid" || true
        stop=$(since "$t")
        grep -q 'every mbuf is back in the pool' "$dir/log" || echo "bench: scale $n: mbufs not all back" >&2
        echo "{\"peers\": $n, \"check_s\": $check, \"start_s\": $start, \"rss_kb\": $rss," \
            "\"control_cpu_percent\": $(((c1 - c0) * 100 / 5 / $(getconf CLK_TCK)))," \
            "\"show_s\": $show, \"show_lines\": $lines, \"scrape_s\": $scrape," \
            "\"reload_s\": $reload, \"stop_s\": $stop}" >>"$WORK/scale.json"
        rm -f "$dir/gw.yaml"
    done
    "$REPO/target/release/examples/control_scale" "$@" >"$WORK/control_scale.txt" 2>&1 || true
}

# now_s: seconds since the epoch, with fractions. since T: seconds from T to now.
now_s() {
    date +%s.%N
}
since() {
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'
}

# bench_cryptodev ARGS...: the memif search again with the cryptodev backend on the
# Intel IPsec-MB library's PMD (crypto_aesni_mb), which the in-line backend replaces.
bench_cryptodev() {
    bench_log "throughput over net_memif with the cryptodev backend (crypto_aesni_mb)"
    memif_devices cryptodev
    GW_CRYPTO=crypto_aesni_mb0 gw_start cryptodev "$GW_OUT" "$GW_IN" "$BENCH_PEERS"
    GEN_OUTPUT=$WORK/cryptodev.txt pktgen_memif search --peers "$BENCH_PEERS" \
        --json "$WORK/cryptodev.json" "$@" || true
    cat "$WORK/cryptodev.txt"
}

# bench_idle COUNT: what `idle: adaptive` costs a packet that arrives while the worker
# sleeps: latency at a low rate (10000 packets/s, so the worker is idle between them)
# through wgdp with `idle: poll` and with `idle: adaptive`, and the sleeps themselves
# (examples/idle_wakeup).
bench_idle() {
    local count=$1 idle
    bench_log "adaptive idle: sleep lengths, and latency at 10000 packets/s"
    taskset -c 1 "$REPO/target/release/examples/idle_wakeup" 1000 --json >"$WORK/idle.json" || true
    for idle in poll adaptive; do
        memif_devices "idle-$idle"
        GW_IDLE=$idle gw_start "idle-$idle" "$GW_OUT" "$GW_IN" "$BENCH_PEERS"
        GEN_OUTPUT=$WORK/idle-$idle.txt pktgen_memif run --peers "$BENCH_PEERS" --latency \
            --rate 10000 --count "$count" --size 64 --json "$WORK/idle-$idle.json" || true
        cat "$WORK/idle-$idle.txt"
    done
}

bench_costs() {
    bench_log "offload and accounting costs"
    taskset -c 1 "$REPO/target/release/examples/offload_cost" >"$WORK/offload.txt" 2>&1 || true
    taskset -c 1 "$REPO/target/release/examples/accounting_cost" >"$WORK/accounting.txt" 2>&1 || true
    taskset -c 1 "$REPO/target/release/examples/reorder_cost" >"$WORK/reorder.txt" 2>&1 || true
}

# bench_fib PREFIXES: allowed-IPs lookups at PREFIXES prefixes of each family, the own
# table (dataplane::lpm) against DPDK's rte_fib and rte_fib6 (examples/fib_cost.rs). Each
# family in a process of its own, so that each gets hugepages when its tables fit in
# the free ones (rte_fib6 at 10^6 prefixes does not: it then runs on plain memory).
bench_fib() {
    local family
    local -a memory=()
    [[ -z ${WGDP_NO_HUGE:-} ]] || memory=(--no-huge)
    bench_log "allowed-IPs lookups at $1 prefixes: PrefixTable, rte_fib, rte_fib6"
    : >"$WORK/fib.txt"
    for family in --ipv4 --ipv6; do
        taskset -c 1 "$REPO/target/release/examples/fib_cost" "$1" "$family" "${memory[@]}" \
            >>"$WORK/fib.txt" 2>&1 ||
            echo "fib_cost $family failed: $?" >>"$WORK/fib.txt"
    done
}

# bench_handshakes N: full WireGuard handshakes per second on one core, the control
# plane with N peers as responder and as initiator, with real X25519
# (examples/handshake_rate.rs).
bench_handshakes() {
    bench_log "handshakes per second on one core, $1 peers"
    taskset -c 1 "$REPO/target/release/examples/handshake_rate" "$1" >"$WORK/handshakes.txt" 2>&1 ||
        echo "handshake_rate failed: $?" >>"$WORK/handshakes.txt"
}

# bench_handshake_threads N: the responder's handshakes per second with the
# Diffie-Hellman work on 0 (the control thread), 1 and 2 threads, on every CPU
# (examples/handshake_rate.rs --threads).
bench_handshake_threads() {
    bench_log "handshakes per second on threads, $1 peers"
    "$REPO/target/release/examples/handshake_rate" "$1" --threads 0,1,2 \
        >"$WORK/handshake_threads.txt" 2>&1 ||
        echo "handshake_rate --threads failed: $?" >>"$WORK/handshake_threads.txt"
}

# bench_storm N: a gateway with N peers comes back after a restart while every peer
# sends; the time until every peer has its session back, with the Diffie-Hellman work
# on the control thread and on one thread (examples/restart_storm.rs).
bench_storm() {
    local t
    bench_log "restart storm, $1 peers"
    : >"$WORK/storm.txt"
    for t in 0 1; do
        "$REPO/target/release/examples/restart_storm" "$1" --threads "$t" \
            >>"$WORK/storm.txt" 2>>"$WORK/storm.err" ||
            echo "restart_storm --threads $t failed: $?" >>"$WORK/storm.txt"
    done
}

# bench_gateway_storm N: the restart storm through DPDK: wgdp with N peers on
# net_af_xdp is restarted while wgdp-pktgen's N peers send (storm_run in
# scripts/bench.sh), with the Diffie-Hellman work on the control thread and on one
# thread.
bench_gateway_storm() {
    local t
    for t in 0 1; do
        bench_log "restart storm through DPDK, $1 peers, $t handshake threads"
        storm_run "$1" 20000 "$t" "$WORK/gateway_storm-$t.json" >"$WORK/gateway_storm-$t.txt" 2>&1 ||
            echo "storm_run failed: $?" >>"$WORK/gateway_storm-$t.txt"
    done
}

bench_main() {
    local quick= doc=$REPO/docs/benchmarks.md keep=
    while (($#)); do
        case $1 in
        --quick) quick=1 && shift ;;
        --doc) doc=${2:?} && shift 2 ;;
        --keep) keep=${2:?} && shift 2 ;;
        *) die "bench: unknown option $1" ;;
        esac
    done
    need
    command -v gnuplot >/dev/null || die "gnuplot is missing: run scripts/setup.sh"
    BENCH_PEERS=4
    local -a search=(--sizes 64,512,1420,imix --trial-ms 1000 --latency-count 20000)
    local -a search_afxdp=(--sizes 64,1420 --trial-ms 1000 --latency-count 20000)
    local -a search_cryptodev=(--sizes 64,1420 --trial-ms 1000 --latency-count 2000 --latency-sizes 64)
    local -a search_scaling=(--sizes 64,1420 --trial-ms 500 --latency-rate 0)
    local aead_secs=1 iperf_secs=10 latency_count=20000 tunnel_packets=200000 tunnel_sizes=64,1420
    local fib_prefixes=1000000 handshake_peers=10000 storm_peers=100000
    local -a scale_counts=(10000 100000 1000000)
    if [[ -n $quick ]]; then
        search=(--sizes 64,1420 --trial-ms 200 --max-trials 5 --latency-count 2000)
        search_afxdp=(--sizes 64 --trial-ms 200 --max-trials 4 --latency-count 2000 --latency-sizes 64)
        search_cryptodev=(--sizes 64 --trial-ms 200 --max-trials 4 --latency-count 2000 --latency-sizes 64)
        search_scaling=(--sizes 64 --trial-ms 200 --max-trials 4 --latency-rate 0)
        aead_secs=0.2
        iperf_secs=2
        latency_count=2000
        tunnel_packets=50000
        tunnel_sizes=64
        scale_counts=(1000 10000)
        fib_prefixes=100000
        handshake_peers=2000
        storm_peers=10000
    fi
    local started=$SECONDS
    machine_info "$WORK/machine.json"
    bench_aead "$aead_secs"
    bench_costs
    bench_handshakes "$handshake_peers"
    bench_handshake_threads "$handshake_peers"
    bench_storm "$storm_peers"
    bench_gateway_storm "$storm_peers"
    bench_fib "$fib_prefixes"
    bench_memif "${search[@]}"
    bench_memif_zero_copy "${search_cryptodev[@]}"
    bench_scaling "${search_scaling[@]}"
    bench_one_tunnel "$tunnel_packets" "$tunnel_sizes"
    bench_scale "${scale_counts[@]}"
    bench_baseline "$latency_count"
    bench_cryptodev "${search_cryptodev[@]}"
    bench_idle "$latency_count"
    bench_afxdp "${search_afxdp[@]}"
    bench_wireguard_go "${search_afxdp[@]}"
    bench_iperf "$iperf_secs"
    bench_log "writing $doc"
    python3 "$REPO/scripts/bench-report.py" --work "$WORK" --doc "$doc" \
        --plots "$(dirname "$doc")/bench" --seconds $((SECONDS - started)) \
        ${quick:+--quick}
    if [[ -n $keep ]]; then
        mkdir -p "$keep"
        cp -r "$WORK"/. "$keep"/
    fi
    bench_log "done in $((SECONDS - started)) s"
}
