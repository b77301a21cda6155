#!/usr/bin/env bash
#
# Benchmarks of wgdp with its own traffic generator, wgdp-pktgen (docs/benchmarks.md).
#
# usage: scripts/bench.sh smoke
#        scripts/bench.sh bench [--quick] [--json-dir DIR] [--doc FILE]
#        scripts/bench.sh profile [--size N] [--rate PPS] [--count N] [--direction D]
#                                 [--peers N] [--zero-copy] [--perf FILE]
#                                 [--handshake-window N] [--setup-timeout S]
#                                 [--peer-sources NET]
#        scripts/bench.sh storm [--peers N] [--rate PPS] [--threads K]
#
#   smoke   what `make test` runs: wgdp with two net_memif ports and wgdp-pktgen on
#           the other end; the generator's peers handshake, a few thousand packets
#           go each way, and every one must be accounted for (received, or dropped
#           or answered under a named counter of the gateway), and every mbuf must
#           be back in its pool on both sides; then packets too big for the tunnel,
#           all of which must be answered; then 12 peers through 3 workers (lcores
#           sharing the CPUs, the generator on 3 queues), each worker carrying traffic
#           both ways; 4 peers among 100004 configured; a restart storm of 200 peers
#           (storm_run), each of which must get a new session on its own timers and
#           none of which may need one while the gateway is up; and the first run again
#           over veth with net_af_xdp. No figure is asserted.
#   bench   what `make bench` runs: the AEAD bound of the worker's core, RFC 2544
#           throughput and latency over net_memif and over veth with net_af_xdp,
#           the runtime accounting per stage, iperf3 through wgdp and through
#           wireguard-go, then writes docs/benchmarks.md and its plots.
#           --quick: shorter trials and fewer sizes (a check of the harness).
#   profile where the worker's clocks go: wgdp over net_memif with --peers (default 4), the
#           generator at --rate packets/s (default 1000000; keep it below what the
#           gateway forwards, or the backlog spills into the next trial's figures),
#           --count packets (default 3000000) of --size bytes (default 64), in
#           --direction decrypt, encrypt or both (default), and the gateway's clocks
#           per packet by stage; --zero-copy runs wgdp as a zero-copy memif client
#           (memif_zero_copy); --perf FILE also records the
#           worker thread with `perf record -g -t` into FILE and prints the top of
#           `perf report`. --handshake-window and --setup-timeout go to the
#           generator (0: every peer's handshake at once, a restart storm), and
#           --peer-sources (each peer from an address of its own in NET, behind the
#           generator, which wgdp then has as its next hop).
#           Not a test, and not a throughput figure.
#   storm   a restart storm (storm_run below): wgdp with --peers (default 10000) is
#           restarted while they send --rate data packets a second (default 20000);
#           prints how long until every peer has a new session and its data comes
#           through, and the handshakes per second; --threads sets
#           dpdk.handshake_threads.
#
# Environment: WGDP_BIN, PKTGEN_BIN (default: target/release/ of this checkout),
# WGDP_NO_HUGE (DPDK runs with --no-huge even when hugepages are free).
# Needs root, two CPUs, and what scripts/setup.sh installs. Everything it makes
# (a work directory, sockets, network namespaces, processes) it removes at exit,
# also on failure; it ends only the processes it started, by their PID.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WGDP=${WGDP_BIN:-$REPO/target/release/wgdp}
PKTGEN=${PKTGEN_BIN:-$REPO/target/release/wgdp-pktgen}
WORK=
GW_METRICS=
PIDS=()
NETNS=()

die() {
    echo "bench: $*" >&2
    exit 2
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    PIDS=()
    local ns
    for ns in "${NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    NETNS=()
    [[ -z $WORK ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# eal_memory [MIB]: DPDK's memory options for one process that needs MIB
# (default 256) of DPDK memory. In-memory mode takes hugepages without files;
# with fewer free hugepages (or WGDP_NO_HUGE), plain memory: 512 MiB, or twice
# MIB if more.
eal_memory() {
    local free kb need=${1:-256}
    free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
    kb=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)
    if ((${free:-0} * ${kb:-0} < need * 1024)) || [[ -n ${WGDP_NO_HUGE:-} ]]; then
        echo "--no-huge --no-shconf -m $((need * 2 > 512 ? need * 2 : 512))"
    else
        echo "--in-memory"
    fi
}

# yaml_list WORDS...: ["a", "b"]
yaml_list() {
    local out="" w
    for w in "$@"; do out+="${out:+, }\"$w\""; done
    echo "[$out]"
}

# gw_start NAME OUTSIDE_DEV INSIDE_DEV PEERS [NETNS]: gw_config, then gw_launch.
gw_start() {
    gw_config "$1" "$2" "$3" "$4"
    gw_launch "${5:-}"
}

# gw_config NAME OUTSIDE_DEV INSIDE_DEV PEERS: writes a wgdp configuration for the
# generator's PEERS peers; sets GW_CFG, GW_PUB, GW_METRICS. GW_MTU sets the tunnel MTU
# (default 1420), GW_IDLE the idle mode (default poll), GW_CRYPTO a crypto device for
# the cryptodev backend, GW_EAL_ARGS more EAL arguments, GW_MBUFS the packet pool's size,
# GW_LCORES the dpdk.lcores mapping (default one worker on lcore 1), GW_SHARE
# dpdk.share_crypto (default true), GW_EXTRA_PEERS that many more configured peers
# after the generator's (scripts/scale-peers.py), GW_OUT_GATEWAY a next hop on the
# outside port (for peers off its link), GW_HANDSHAKE_THREADS dpdk.handshake_threads;
# an empty GW_MBUFS leaves the pool's size to wgdp.
gw_config() {
    local name=$1 out_dev=$2 in_dev=$3 peers=$4 key cfg
    local lcores=${GW_LCORES:-"{ control: 0, workers: [1] }"} mbufs=
    [[ -z ${GW_MBUFS-16383} ]] || mbufs="  mbufs: ${GW_MBUFS-16383}"
    local threads= next_hop=
    [[ -z ${GW_HANDSHAKE_THREADS:-} ]] || threads="  handshake_threads: $GW_HANDSHAKE_THREADS"
    [[ -z ${GW_OUT_GATEWAY:-} ]] || next_hop="    gateway: [\"$GW_OUT_GATEWAY\"]"
    key=$(wg genkey)
    GW_PUB=$(wg pubkey <<<"$key")
    printf '%s\n' "$key" >"$WORK/$name.key"
    chmod 600 "$WORK/$name.key"
    GW_METRICS=127.0.0.1:$((19000 + RANDOM % 1000))
    cfg=$WORK/$name.yaml
    # shellcheck disable=SC2046 # word splitting of the memory options is wanted
    cat >"$cfg" <<EOF
# wgdp under test, written by scripts/bench.sh
dpdk:
  eal_args: $(yaml_list --no-pci --file-prefix "wgdp-bench-$$-$name" $(eal_memory "${GW_MEMORY:-256}") ${GW_EAL_ARGS:-})
  lcores: $lcores
  idle: ${GW_IDLE:-poll}
  share_crypto: ${GW_SHARE:-true}
$threads
$mbufs
ports:
  outside:
    device: "$out_dev"
    addresses: ["198.19.0.2/24"]
$next_hop
  inside:
    device: "$in_dev"
    addresses: ["198.18.2.1/24"]
wireguard:
  private_key_file: "$WORK/$name.key"
  mtu: ${GW_MTU:-1420}
metrics:
  listen: "$GW_METRICS"
EOF
    if [[ -n ${GW_CRYPTO:-} ]]; then
        printf 'crypto:\n  backend: cryptodev\n  device: "%s"\n' "$GW_CRYPTO" >>"$cfg"
    fi
    "$PKTGEN" peers --peers "$peers" >>"$cfg"
    if [[ -n ${GW_EXTRA_PEERS:-} ]]; then
        python3 "$REPO/scripts/scale-peers.py" "$GW_EXTRA_PEERS" --items >>"$cfg"
    fi
    GW_CFG=$cfg
}

# gw_launch [NETNS]: starts wgdp with GW_CFG (in NETNS if given) and waits until it
# answers; sets GW_PID and GW_LOG.
gw_launch() {
    local ns=${1:-}
    GW_LOG=${GW_CFG%.yaml}.log
    if [[ -n $ns ]]; then
        ip netns exec "$ns" "$WGDP" --config "$GW_CFG" >"$GW_LOG" 2>&1 &
    else
        "$WGDP" --config "$GW_CFG" >"$GW_LOG" 2>&1 &
    fi
    GW_PID=$!
    PIDS+=("$GW_PID")
    # Ready when its metrics answer: the ports are started by then.
    local i
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$GW_PID" 2>/dev/null; then
            tail -20 "$GW_LOG" >&2
            die "wgdp exited during start (log above)"
        fi
        if gw_answers "$ns"; then
            return 0
        fi
        sleep 0.1
    done
    die "wgdp did not come up within 30 s (log: $GW_LOG)"
}

# gw_answers [NETNS]: wgdp's metrics endpoint takes a connection.
gw_answers() {
    local probe="exec 3<>/dev/tcp/${GW_METRICS%:*}/${GW_METRICS#*:}"
    if [[ -n ${1:-} ]]; then
        ip netns exec "$1" bash -c "$probe" 2>/dev/null
    else
        bash -c "$probe" 2>/dev/null
    fi
}

# gw_stop: SIGTERM, exit status 0, and every mbuf back in wgdp's pool.
gw_stop() {
    local status=0
    kill -TERM "$GW_PID"
    wait "$GW_PID" || status=$?
    if ((status != 0)); then
        tail -20 "$GW_LOG" >&2
        echo "bench: wgdp exited with status $status" >&2
        return 1
    fi
    if ! grep -q 'every mbuf is back in the pool' "$GW_LOG" || grep -q 'mbufs still out' "$GW_LOG"; then
        grep 'mbuf' "$GW_LOG" >&2 || true
        echo "bench: wgdp did not get every mbuf back" >&2
        return 1
    fi
    echo "wgdp: stopped with status 0, $(grep -o 'every mbuf is back in the pool.*' "$GW_LOG")"
}

# memif_zero_copy NAME: as memif_devices, with the roles turned: the generator serves,
# and wgdp is the client with zero-copy=yes, so that its driver hands the generator's
# ring buffers to the worker instead of copying each packet in and out (DPDK's memif
# offers zero-copy to clients only, on memory from --single-file-segments). wgdp must
# then start after the generator: gen_first_gw_launch. Sets GW_EAL_ARGS and GW_MBUFS,
# which callers make local to their run. The client sets the ring size
# (2^14 slots, as memif_devices), and a zero-copy client fills its RX rings with its own
# mbufs, 2^14 for each port: wgdp gets a pool of 2^16 - 1.
memif_zero_copy() {
    GW_OUT="net_memif0,role=client,socket=$WORK/$1-out.sock,rsize=14,zero-copy=yes"
    GW_IN="net_memif1,role=client,socket=$WORK/$1-in.sock,rsize=14,zero-copy=yes"
    GEN_OUT="net_memif0,role=server,socket=$WORK/$1-out.sock"
    GEN_IN="net_memif1,role=server,socket=$WORK/$1-in.sock"
    GW_EAL_ARGS=--single-file-segments
    GW_MBUFS=65535
}

# gen_first_gw_launch: for pktgen_memif's AFTER_GEN with memif_zero_copy: waits until
# the generator's servers listen, then gw_launch.
gen_first_gw_launch() {
    local i sock
    for ((i = 0; i < 300; i++)); do
        sock=${GEN_OUT#*socket=}
        if memif_listening "${sock%%,*}"; then
            sock=${GEN_IN#*socket=}
            memif_listening "${sock%%,*}" && break
        fi
        sleep 0.1
    done
    gw_launch
}

# memif_devices NAME: sets GW_OUT/GW_IN (servers) and GEN_OUT/GEN_IN (clients).
memif_devices() {
    GW_OUT="net_memif0,role=server,socket=$WORK/$1-out.sock"
    GW_IN="net_memif1,role=server,socket=$WORK/$1-in.sock"
    # The client sets the ring size: 2^14 slots rather than 2^10 hold about 25 ms of
    # traffic at 0.65 Mpps, so that a preemption of the gateway's worker by the
    # machine's other guests, a few milliseconds, is not counted as the gateway's loss.
    GEN_OUT="net_memif0,role=client,socket=$WORK/$1-out.sock,rsize=14"
    GEN_IN="net_memif1,role=client,socket=$WORK/$1-in.sock,rsize=14"
}

# afxdp_link: a network namespace of its own with two veth pairs, gw-out/gen-out
# and gw-in/gen-in: wgdp's ports on the gw-* ends and the generator's on the gen-*
# ends, both through net_af_xdp. Sets AFXDP_NS, GEN_OUT and GEN_IN.
afxdp_link() {
    AFXDP_NS=wgdp-bench-$$-${#NETNS[@]}
    ip netns add "$AFXDP_NS"
    NETNS+=("$AFXDP_NS")
    ip -n "$AFXDP_NS" link add gw-out type veth peer name gen-out
    ip -n "$AFXDP_NS" link add gw-in type veth peer name gen-in
    # The generator's ends speak only what it sends: without IPv6 on them their
    # kernel sends no router solicitations or MLD reports into the gateway's ports,
    # which wgdp would count as drops in the middle of a trial. wgdp's ends keep the
    # kernel's defaults.
    local l
    for l in gen-out gen-in; do
        ip netns exec "$AFXDP_NS" sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
    done
    for l in lo gw-out gen-out gw-in gen-in; do ip -n "$AFXDP_NS" link set "$l" up; done
    GEN_OUT="net_af_xdp0,iface=gen-out"
    GEN_IN="net_af_xdp1,iface=gen-in"
}

# pktgen SUBCOMMAND [NETNS=ns] ARGS...: runs the generator against the gateway
# started last, on lcore 0.
pktgen() {
    local sub=$1 ns=
    shift
    if [[ ${1:-} == NETNS=* ]]; then
        ns=${1#NETNS=}
        shift
    fi
    local -a cmd=("$PKTGEN" "$sub" --outside "$GEN_OUT" --inside "$GEN_IN"
        --gateway-key "$GW_PUB" --lcore "${GEN_LCORE:-0}")
    [[ -z $GW_METRICS ]] || cmd+=(--metrics "$GW_METRICS")
    local m
    for m in $(eal_memory); do cmd+=("--eal-arg=$m"); done
    if [[ -n $ns ]]; then
        ip netns exec "$ns" "${cmd[@]}" "$@"
    else
        "${cmd[@]}" "$@"
    fi
}

# pktgen_memif SUBCOMMAND ARGS...: as pktgen, for memif links: when its traffic is
# done the generator keeps its ports open (without polling them) while the gateway
# is stopped, by gw_stop or by the function named in STOP_GATEWAY, and closes them
# after. DPDK 22.11's memif server unmaps a ring in its interrupt thread when the
# client disconnects, under a worker that may be reading it, so the side that polls
# stops first. Output goes to $GEN_OUTPUT (default: stdout); AFTER_GEN names a function
# run once the generator started (gen_first_gw_launch).
pktgen_memif() {
    local flag=$WORK/linger.$RANDOM status=0 gen
    # (Not ">/dev/stdout": that opens the file stdout is, truncating it.)
    if [[ -n ${GEN_OUTPUT:-} ]]; then
        pktgen "$@" --linger-file "$flag" >"$GEN_OUTPUT" &
    else
        pktgen "$@" --linger-file "$flag" &
    fi
    gen=$!
    PIDS+=("$gen")
    [[ -z ${AFTER_GEN:-} ]] || "$AFTER_GEN"
    while [[ ! -e $flag ]] && kill -0 "$gen" 2>/dev/null; do
        sleep 0.1
    done
    "${STOP_GATEWAY:-gw_stop}" || status=1
    local gen_status=0
    wait "$gen" || gen_status=$?
    rm -f "$flag"
    ((gen_status == 0)) || status=$gen_status
    return "$status"
}

# memif_listening PATH: a memif server listens on PATH (an abstract socket: it shows
# only in /proc/net/unix).
memif_listening() {
    grep -q "@$1\$" /proc/net/unix
}

need() {
    [[ $(id -u) == 0 ]] || die "needs root (DPDK, hugepages, network namespaces)"
    (($(nproc) >= 2)) || die "needs two CPUs (lcore 0 for control and the generator, 1 for the worker)"
    [[ -x $WGDP && -x $PKTGEN ]] || die "build first: cargo build --release --workspace --bins"
    command -v wg >/dev/null || die "wg (wireguard-tools) is missing: run scripts/setup.sh"
    WORK=$(mktemp -d /tmp/wgdp-bench.XXXXXX)
}

# every_worker_carried N: the log of the gateway stopped last shows each of its N
# workers with packets received on both ports.
every_worker_carried() {
    local w line status=0
    for ((w = 0; w < $1; w++)); do
        line=$(grep -o "worker counters worker=$w rx_outside=[0-9]* rx_inside=[0-9]*" "$GW_LOG" || true)
        if [[ ! $line =~ rx_outside=[1-9][0-9]*\ rx_inside=[1-9] ]]; then
            echo "bench smoke: worker $w carried no traffic in one direction: ${line:-no counters}"
            status=1
        fi
    done
    return "$status"
}

smoke() {
    need
    local status=0
    memif_devices smoke
    gw_start smoke "$GW_OUT" "$GW_IN" 4
    echo "bench smoke: 4000 packets of 64 bytes each way, all to be received"
    pktgen_memif run --peers 4 --count 4000 --rate 20000 --size 64 --check \
        --json "$WORK/smoke.json" || status=1

    # A tunnel MTU of 1280, so that 1420-byte frames are too big for the tunnel: the
    # gateway must answer each with ICMP (counted), not forward it.
    echo "bench smoke: 1000 packets of 1420 bytes into the inside port, too big for the tunnel"
    memif_devices smoke-mtu
    GW_MTU=1280 gw_start smoke-mtu "$GW_OUT" "$GW_IN" 4
    pktgen_memif run --peers 4 --count 1000 --rate 20000 --size 1420 --direction encrypt \
        --check --json "$WORK/smoke-too-big.json" || status=1
    # Each must have been answered, not forwarded: the accounting names them.
    if ! python3 - "$WORK/smoke-too-big.json" <<'PY'; then
import json, sys
t = json.load(open(sys.argv[1]))["trials"][-1]
named = dict(t["gateway_drops"])
icmp = sum(d for k, d in named.items() if 'reason="icmp_error"' in k)
sys.exit(not (t["received"] == 0 and t["offered"] == 1000 == icmp))
PY
        echo "bench smoke: the too-big packets were not all accounted for as answered with ICMP"
        status=1
    fi

    # Three workers on lcores that share the two CPUs, each with a queue pair of both
    # memif ports; the generator puts each peer's flow on queue peer mod 3, as RSS
    # would. Every packet must come back, and every worker must have carried traffic
    # both ways.
    echo "bench smoke: 3000 packets of 64 bytes each way, 12 peers, through 3 workers"
    memif_devices smoke-workers
    GW_LCORES='{ control: 0, workers: [1, 2, 3], cpus: { 2: 0, 3: 1 } }' GW_IDLE=adaptive \
        GW_MBUFS= gw_start smoke-workers "$GW_OUT" "$GW_IN" 12
    pktgen_memif run --peers 12 --queues 3 --count 3000 --rate 20000 --size 64 --check \
        --json "$WORK/smoke-workers.json" || status=1
    every_worker_carried 3 || status=1

    # The generator's 4 peers among 100000 configured ones: the gateway starts with
    # them all, the 4 pass traffic, and it stops with every mbuf back.
    echo "bench smoke: 4000 packets of 64 bytes each way, 4 peers among 100004 configured"
    memif_devices smoke-many
    GW_EXTRA_PEERS=100000 GW_MEMORY=512 gw_start smoke-many "$GW_OUT" "$GW_IN" 4
    pktgen_memif run --peers 4 --count 4000 --rate 20000 --size 64 --check \
        --json "$WORK/smoke-many.json" || status=1
    # Their IPv4 allowed IPs in DPDK's rte_fib, as in production, not in the
    # hash table wgdp falls back to when DPDK's memory cannot hold them.
    if grep -q 'stay in a hash table' "$GW_LOG"; then
        echo "bench smoke: allowed IPs not in rte_fib: $(grep -m1 'stay in a hash table' "$GW_LOG")"
        status=1
    fi
    if ! grep -Eq 'wireguard ready.* peers=100004($| )' "$GW_LOG"; then
        echo "bench smoke: the gateway did not start with 100004 peers: $(grep -m1 'wireguard ready' "$GW_LOG")"
        status=1
    fi

    # wgdp restarted under traffic: every peer notices on its own WireGuard timers and
    # gets a new session, and none needed one while the gateway was up.
    echo "bench smoke: a restart storm of 200 peers over net_af_xdp"
    storm_run 200 2000 "" "$WORK/smoke-storm.json" check || status=1

    echo "bench smoke: 2000 packets of 64 bytes each way over veth with net_af_xdp"
    afxdp_link
    gw_start smoke-afxdp "net_af_xdp0,iface=gw-out" "net_af_xdp1,iface=gw-in" 2 "$AFXDP_NS"
    pktgen run NETNS="$AFXDP_NS" --peers 2 --count 2000 --rate 10000 --size 64 --check \
        --json "$WORK/smoke-afxdp.json" || status=1
    gw_stop || status=1
    if ((status != 0)); then
        echo "bench smoke: FAILED"
        exit 1
    fi
    echo "bench smoke: passed"
}

# storm_run PEERS RATE THREADS JSON [CHECK]: the restart storm through DPDK (`wgdp-pktgen
# storm`). wgdp with PEERS peers runs on veth with net_af_xdp in a network namespace
# of its own (the veth ends wgdp does not own keep the kernel's defaults); the
# generator's peers each send from an address of their own in 198.19.128.0/17,
# behind the generator's 198.19.0.1 (the gateway's next hop on its outside port), and
# send RATE data packets a second between them. Once every peer's data comes
# through, and the gateway's passive keepalives (every 10 s) have run for 20 s, wgdp is
# stopped and started again with the same configuration; the generator's peers
# notice as WireGuard peers do and come back. THREADS: dpdk.handshake_threads (empty:
# wgdp's default). CHECK (any word): fail if a peer needed a handshake while the
# gateway was up. The generator writes JSON and prints its summary.
storm_run() {
    local peers=$1 rate=$2 threads=$3 json=$4 gen status=0 stop up
    local -a check=()
    [[ -z ${5:-} ]] || check=(--keepalive-check)
    local restart=$WORK/storm-restart.$RANDOM ready=$WORK/storm-ready.$RANDOM
    afxdp_link
    GW_MEMORY=$((256 + peers * 1400 / 1000000)) GW_OUT_GATEWAY=198.19.0.1 \
        GW_HANDSHAKE_THREADS=$threads GW_IDLE=adaptive \
        gw_start storm "net_af_xdp0,iface=gw-out" "net_af_xdp1,iface=gw-in" "$peers" "$AFXDP_NS"
    GEN_LCORE=1 pktgen storm NETNS="$AFXDP_NS" --peers "$peers" --peer-sources 198.19.128.0/17 \
        --rate "$rate" --restart-file "$restart" --ready-file "$ready" --setup-timeout 600 \
        --json "$json" "${check[@]}" &
    gen=$!
    PIDS+=("$gen")
    while [[ ! -e $ready ]]; do
        if ! kill -0 "$gen" 2>/dev/null; then
            wait "$gen" || true
            echo "bench storm: the generator ended before every peer's data came through"
            return 1
        fi
        sleep 0.2
    done
    # Longer than a peer's 15 s timer for a new handshake: a peer that hears no
    # keepalive from the live gateway makes one, and fails the run.
    sleep 20
    # What the gateway dropped before its restart (the restarted one starts at 0).
    ip netns exec "$AFXDP_NS" curl -s "http://$GW_METRICS/metrics" |
        grep -E '^wgdp_[a-z_]*(drops|missed|errors|nombuf)[a-z_]*(\{| )' | awk '$NF != 0' |
        sed 's/^/bench storm: before the restart: /' || true
    stop=$(date +%s.%N)
    gw_stop || status=1
    gw_launch "$AFXDP_NS"
    up=$(date +%s.%N)
    echo "$stop $up" >"$restart.tmp"
    mv "$restart.tmp" "$restart"
    wait "$gen" || status=1
    gw_stop || status=1
    return "$status"
}

storm() {
    need
    local peers=10000 rate=20000 threads=
    while (($#)); do
        case $1 in
        --peers) peers=$2 && shift 2 ;;
        --rate) rate=$2 && shift 2 ;;
        --threads) threads=$2 && shift 2 ;;
        *) die "storm: unknown option $1" ;;
        esac
    done
    storm_run "$peers" "$rate" "$threads" "$WORK/storm.json"
}

profile() {
    need
    local size=64 rate=1000000 count=3000000 direction=both peers=4 zero_copy= perf_out= tid perf_pid=
    local GW_OUT_GATEWAY=
    local -a storm=()
    while (($#)); do
        case $1 in
        --size) size=$2 && shift 2 ;;
        --rate) rate=$2 && shift 2 ;;
        --count) count=$2 && shift 2 ;;
        --direction) direction=$2 && shift 2 ;;
        --peers) peers=$2 && shift 2 ;;
        --handshake-window | --setup-timeout) storm+=("$1" "$2") && shift 2 ;;
        --peer-sources) storm+=("$1" "$2") && GW_OUT_GATEWAY=198.19.0.1 && shift 2 ;;
        --zero-copy) zero_copy=1 && shift ;;
        --perf) perf_out=$2 && shift 2 ;;
        *) die "profile: unknown option $1" ;;
        esac
    done
    if [[ -n $zero_copy ]]; then
        [[ -z $perf_out ]] || die "profile: --perf needs wgdp running before the generator; not with --zero-copy"
        local GW_EAL_ARGS GW_MBUFS
        memif_zero_copy profile
        gw_config profile "$GW_OUT" "$GW_IN" "$peers"
        AFTER_GEN=gen_first_gw_launch pktgen_memif run --peers "$peers" --count "$count" --rate "$rate" \
            --size "$size" --direction "$direction" || {
            grep -v '^EAL' "$GW_LOG" | tail -30 >&2
            return 1
        }
        return
    fi
    memif_devices profile
    gw_start profile "$GW_OUT" "$GW_IN" "$peers"
    if [[ -n $perf_out ]]; then
        command -v perf >/dev/null || die "perf is missing: run scripts/setup.sh (linux-perf)"
        # Debian's DPDK 22.11 names its worker threads rte-worker-N (lcore-worker-N
        # upstream); wgdp has one, on lcore 1.
        tid=$(ps -T -o tid=,comm= -p "$GW_PID" | awk '$2 ~ /^(rte|lcore)-worker/ {print $1; exit}')
        [[ -n $tid ]] || die "profile: no worker thread in wgdp"
        perf record -q -g -t "$tid" -o "$perf_out" >"$WORK/perf.log" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
    fi
    pktgen_memif run --peers "$peers" --count "$count" --rate "$rate" --size "$size" --direction "$direction" \
        "${storm[@]}"
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        perf report -i "$perf_out" --no-children --stdio --percent-limit 1.5 -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -40
    fi
}

case ${1:-} in
smoke) smoke ;;
storm)
    shift
    storm "$@"
    ;;
profile)
    shift
    profile "$@"
    ;;
bench)
    shift
    # shellcheck source-path=SCRIPTDIR source=bench-run.sh
    source "$REPO/scripts/bench-run.sh"
    bench_main "$@"
    ;;
-h | --help) sed -n 's/^# \{0,1\}//; /^usage:/,/^Needs root/p' "${BASH_SOURCE[0]}" ;;
*)
    sed -n 's/^# \{0,1\}//; /^usage:/,/^Needs root/p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
