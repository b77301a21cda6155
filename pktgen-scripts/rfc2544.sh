#!/usr/bin/env bash
#
# RFC 2544 throughput of a running wgdp gateway, measured with DPDK-Pktgen: a
# binary search on the rate in which every trial is a fresh pair of runs,
#   1. `wgdp-pktgen pcap`: handshakes with wgdp as its peers and writes pcaps of
#      transport messages with never-used counters (decrypt.pcap) and of
#      plaintext (encrypt.pcap) for the trial's packet count, then disconnects;
#   2. Pktgen with wgdp-trial.lua: sends one of them at the trial's rate and
#      prints what it sent and what came back.
# Fresh pcaps per trial are what the decrypt direction needs (wgdp accepts each
# transport message once); the encrypt direction gets them too, for new sessions.
#
# usage: rfc2544.sh --gateway-key KEY (--out-sock PATH --in-sock PATH | --outside SPEC --inside SPEC) [options]
#
#   wgdp, already running (README.md shows how to start one):
#   --gateway-key KEY     wgdp's public key (wg pubkey < its private key file)
#   --out-sock PATH       the socket of wgdp's outside port (net_memif, role=server)
#   --in-sock PATH        the socket of wgdp's inside port
#   --outside SPEC        instead of --out-sock: the generators' DPDK vdev for the
#                         link to wgdp's outside port (net_af_xdp0,iface=pg-out)
#   --inside SPEC         the same for the inside port
#   --netns NS            run the generators in this network namespace (AF_XDP)
#   --metrics IP:PORT     wgdp's metrics.listen: each trial names wgdp's drops
#   --ifaces LIST         veth ends (gw-out,gw-in,pg-out,pg-in) whose kernel drop
#                         counters each trial reports (net_af_xdp: frames dropped
#                         before an AF_XDP socket, wgdp's or Pktgen's); needs --netns
#   --link-mbps N         the link speed Pktgen's rate percent is of; default:
#                         100000 for memif, /sys/class/net/IFACE/speed for
#                         net_af_xdp's iface=
#   --peers N             peers in wgdp's configuration (`wgdp-pktgen peers`); 1
#   --seed N              their seed, as given to `wgdp-pktgen peers`; 1
#
#   what to measure:
#   --direction D         decrypt (outside to inside) or encrypt; decrypt
#   --size BYTES          inside frame size without FCS (wgdp-pktgen's --size);
#                         64. Pktgen's and RFC 2544's sizes count the FCS: +4.
#   --trial-seconds S     length of a trial at its rate; 2
#   --max-rate PCT        top of the search, percent of the link speed; 1
#   --resolution PCT      stop when the range is this narrow; 0.01
#   --loss-pct PCT        loss a trial may have and pass; 0
#   --rate-slack F        shortfall of Pktgen's achieved rate a trial may have; 0.05
#   --rate PCT            no search: one trial at this rate
#   --retry N             run a failed trial again, up to N times, before the
#                         search takes the rate as failed (for machines whose load
#                         comes and goes); 0
#
#   the generators:
#   --pktgen PATH         the DPDK-Pktgen binary (or PKTGEN=...); required, never
#                         downloaded
#   --wgdp-pktgen PATH    wgdp-pktgen (or WGDP_PKTGEN=...); default
#                         target/release/wgdp-pktgen of this checkout
#   --lcores MAP          EAL --lcores for Pktgen: its main lcore 0 and its port
#                         lcore 1; 0@0,1@0 (both on CPU 0, away from wgdp's worker
#                         on CPU 1 of a 2-CPU machine)
#   --gen-lcore N         wgdp-pktgen's lcore; 0
#   --memory MB           Pktgen's -m (it runs with --no-huge); default 4096 plus
#                         room for the trial's pcap
#   --keep DIR            keep each trial's pcaps and logs under DIR
#
# Output: one WGDP_RESULT line per trial (wgdp-trial.lua's) followed by
# "pass=... why=...", and a last line
#   RFC2544 direction=decrypt size=64 frame=138 throughput_pct=... throughput_pps=... trials=N
# Exit status 0 when the search ran to the end, 1 when a trial could not be run,
# 2 on a usage error. Needs root (DPDK). It removes what it creates (its work
# directory unless --keep, the DPDK runtime directories of its runs) at exit and
# ends only the processes it started.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

PKTGEN=${PKTGEN:-}
WGDP_PKTGEN=${WGDP_PKTGEN:-$HERE/../target/release/wgdp-pktgen}
GW_KEY=
OUT_SOCK=
IN_SOCK=
OUT_SPEC=
IN_SPEC=
NETNS=
METRICS=
PEERS=1
SEED=1
DIRECTION=decrypt
SIZE=64
TRIAL_SECONDS=2
MAX_RATE=1
RESOLUTION=0.01
LOSS_PCT=0
RATE_SLACK=0.05
ONE_RATE=
RETRY=0
LCORES=0@0,1@0
GEN_LCORE=0
MEMORY=
KEEP=
IFACES=
LINK_MBPS=

# The MACs the generators' ports take on memif links, so that the pcaps that
# wgdp-pktgen writes fit Pktgen's ports (locally administered addresses).
OUT_MAC=02:00:00:00:00:01
IN_MAC=02:00:00:00:00:02

WORK=
CHILD=
PREFIXES=()

die() {
    echo "rfc2544: $*" >&2
    exit 2
}

usage() {
    sed -n 's/^# \{0,1\}//; /^usage:/,/^Output:/p' "${BASH_SOURCE[0]}" | sed '$d'
}

cleanup() {
    if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    local p
    for p in "${PREFIXES[@]}"; do
        rm -rf "/var/run/dpdk/$p"
    done
    if [[ -n $WORK && -z $KEEP ]]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while (($#)); do
    opt=$1
    case $opt in
    -h | --help)
        usage
        exit 0
        ;;
    --gateway-key | --out-sock | --in-sock | --outside | --inside | --netns | --metrics | \
        --peers | --seed | --direction | --size | --trial-seconds | --max-rate | \
        --resolution | --loss-pct | --rate-slack | --rate | --retry | --pktgen | --wgdp-pktgen | \
        --lcores | --gen-lcore | --memory | --keep | --ifaces | --link-mbps)
        (($# >= 2)) || die "$opt needs a value"
        val=$2
        shift 2
        ;;
    *) die "unknown option $opt (--help lists them)" ;;
    esac
    case $opt in
    --gateway-key) GW_KEY=$val ;;
    --out-sock) OUT_SOCK=$val ;;
    --in-sock) IN_SOCK=$val ;;
    --outside) OUT_SPEC=$val ;;
    --inside) IN_SPEC=$val ;;
    --netns) NETNS=$val ;;
    --metrics) METRICS=$val ;;
    --peers) PEERS=$val ;;
    --seed) SEED=$val ;;
    --direction) DIRECTION=$val ;;
    --size) SIZE=$val ;;
    --trial-seconds) TRIAL_SECONDS=$val ;;
    --max-rate) MAX_RATE=$val ;;
    --resolution) RESOLUTION=$val ;;
    --loss-pct) LOSS_PCT=$val ;;
    --rate-slack) RATE_SLACK=$val ;;
    --rate) ONE_RATE=$val ;;
    --retry) RETRY=$val ;;
    --pktgen) PKTGEN=$val ;;
    --wgdp-pktgen) WGDP_PKTGEN=$val ;;
    --lcores) LCORES=$val ;;
    --gen-lcore) GEN_LCORE=$val ;;
    --memory) MEMORY=$val ;;
    --keep) KEEP=$val ;;
    --ifaces) IFACES=$val ;;
    --link-mbps) LINK_MBPS=$val ;;
    esac
done

# listening PATH: a Unix socket listens at PATH, as a file or, as DPDK 22.11's
# memif makes them by default (socket-abstract=yes), in the abstract namespace
# of the network namespace the generators run in.
listening() {
    [[ -S $1 ]] && return 0
    in_ns cat /proc/net/unix | awk -v p="@$1" '$NF == p { found = 1 } END { exit !found }'
}

# in_ns CMD...: runs CMD in the generators' network namespace, if any.
in_ns() {
    if [[ -n $NETNS ]]; then
        ip netns exec "$NETNS" "$@"
    else
        "$@"
    fi
}

# is_number VALUE: a plain decimal number (no sign, no exponent).
is_number() {
    [[ $1 =~ ^[0-9]+([.][0-9]+)?$|^[.][0-9]+$ ]]
}

[[ $(id -u) == 0 ]] || die "needs root (DPDK)"
[[ -n $GW_KEY ]] || die "--gateway-key is required (wgdp's public key)"
[[ -n $PKTGEN ]] || die "no Pktgen: set PKTGEN=/path/to/pktgen or --pktgen (README.md: building it)"
[[ -x $PKTGEN ]] || die "$PKTGEN is not an executable"
[[ -x $WGDP_PKTGEN ]] || die "$WGDP_PKTGEN is not an executable (cargo build --release --workspace --bins)"
[[ -f $HERE/wgdp-trial.lua && -f $HERE/wgdp-common.lua ]] || die "wgdp-trial.lua and wgdp-common.lua must be next to $0"
[[ $DIRECTION == decrypt || $DIRECTION == encrypt ]] || die "--direction: decrypt or encrypt"
if ! [[ $SIZE =~ ^[0-9]+$ ]] || ((SIZE < 64 || SIZE > 1434)); then
    die "--size: 64 to 1434 (bytes without FCS)"
fi
[[ $PEERS =~ ^[1-9][0-9]*$ ]] || die "--peers: a number above 0"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed: a number"
[[ $GEN_LCORE =~ ^[0-9]+$ ]] || die "--gen-lcore: a number"
[[ $RETRY =~ ^[0-9]+$ ]] || die "--retry: a number"
for v in "$TRIAL_SECONDS" "$MAX_RATE" "$RESOLUTION" "$LOSS_PCT" "$RATE_SLACK" ${ONE_RATE:+"$ONE_RATE"}; do
    is_number "$v" || die "not a plain number: $v"
done
[[ -z $MEMORY || $MEMORY =~ ^[0-9]+$ ]] || die "--memory: megabytes"
[[ -z $LINK_MBPS || $LINK_MBPS =~ ^[1-9][0-9]*$ ]] || die "--link-mbps: megabits per second"
[[ -z $IFACES || -n $NETNS ]] || die "--ifaces needs --netns (the interfaces' namespace)"
[[ -z $NETNS ]] || ip netns pids "$NETNS" >/dev/null 2>&1 || die "no network namespace $NETNS"
if [[ -n $OUT_SOCK || -n $IN_SOCK ]]; then
    [[ -n $OUT_SOCK && -n $IN_SOCK ]] || die "--out-sock and --in-sock go together"
    [[ -z $OUT_SPEC && -z $IN_SPEC ]] || die "either the memif sockets or --outside/--inside, not both"
    for sock in "$OUT_SOCK" "$IN_SOCK"; do
        listening "$sock" || die "nothing listens on $sock: is wgdp running (in this network namespace)?"
    done
    # rsize=14: rings of 16384 descriptors; with shared CPUs a generator that is
    # not scheduled for a few milliseconds would otherwise find wgdp's replies
    # dropped on a full ring (wgdp counts them as tx/queue_full).
    OUT_SPEC="net_memif0,role=client,socket=$OUT_SOCK,mac=$OUT_MAC,rsize=14"
    IN_SPEC="net_memif1,role=client,socket=$IN_SOCK,mac=$IN_MAC,rsize=14"
fi
[[ -n $OUT_SPEC && -n $IN_SPEC ]] || die "give --out-sock/--in-sock (memif) or --outside/--inside"

if [[ -n $KEEP ]]; then
    mkdir -p "$KEEP"
    WORK=$(cd "$KEEP" && pwd)
else
    WORK=$(mktemp -d /tmp/wgdp-rfc2544.XXXXXX)
fi

# frame_estimate: the frame length (without FCS) of the pcap the direction sends,
# before there is one: the plaintext frame, or the transport message carrying it
# over IPv4 (Ethernet 14, IPv4 20, UDP 8, WireGuard header 16, the inner IP packet
# padded to 16 bytes, tag 16). Each trial reads the real length from its pcap.
frame_estimate() {
    if [[ $DIRECTION == encrypt ]]; then
        echo "$SIZE"
    else
        echo $((14 + 20 + 8 + 16 + (SIZE - 14 + 15) / 16 * 16 + 16))
    fi
}

# pcap_frame_len FILE: incl_len of the first record of a little-endian pcap.
pcap_frame_len() {
    local magic
    magic=$(od -An -tx4 -N4 "$1" | tr -d ' ')
    [[ $magic == a1b2c3d4 ]] || die "$1: not a little-endian pcap (magic $magic)"
    od -An -tu4 -j32 -N4 "$1" | tr -d ' '
}

# The link speed Pktgen's percentages are of: memif links report 100 Gbit/s,
# net_af_xdp the speed of its interface (veth: 10 Gbit/s). Each trial also
# takes it from the line Pktgen printed.
if [[ -z $LINK_MBPS ]]; then
    LINK_MBPS=100000
    iface_re='(^|,)iface=([^,]+)'
    if [[ $OUT_SPEC == net_af_xdp* && $OUT_SPEC =~ $iface_re ]]; then
        speed=$(in_ns cat "/sys/class/net/${BASH_REMATCH[2]}/speed" 2>/dev/null || true)
        [[ ! $speed =~ ^[1-9][0-9]*$ ]] || LINK_MBPS=$speed
    fi
fi
FRAME=$(frame_estimate)

# count_for RATE: packets of a trial at RATE percent.
count_for() {
    awk -v r="$1" -v m="$LINK_MBPS" -v l="$FRAME" -v s="$TRIAL_SECONDS" \
        'BEGIN { c = m * 1e6 / ((l + 24) * 8) * r / 100 * s; c = int(c + 0.5); print (c < 1 ? 1 : c) }'
}

# field NAME LINE: the value of NAME=... in a result line.
field() {
    local re="(^| )$1=([^ ]*)"
    [[ $2 =~ $re ]] && echo "${BASH_REMATCH[2]}"
}

TRIALS=0
# Pktgen's achieved rate in the passing trial at the highest rate.
MEASURED=0

# trial RATE: one trial; prints its result line and sets PASS (true/false).
trial() {
    local rate=$1 n dir count pcount len mem rc=0 line sock
    # wgdp must still be there: a memif server socket goes when wgdp does.
    for sock in ${OUT_SOCK:+"$OUT_SOCK"} ${IN_SOCK:+"$IN_SOCK"}; do
        if ! listening "$sock"; then
            echo "rfc2544: nothing listens on $sock any more: wgdp has stopped" >&2
            exit 1
        fi
    done
    TRIALS=$((TRIALS + 1))
    n=$TRIALS
    dir=$WORK/trial-$n
    mkdir -p "$dir"
    count=$(count_for "$rate")
    # Decrypt: one fresh transport message per packet sent. Encrypt: Pktgen
    # loops the plaintext pcap, which need not be longer than 100000 frames.
    pcount=$count
    if [[ $DIRECTION == encrypt ]] && ((pcount > 100000)); then
        pcount=100000
    fi

    local gen_prefix=wgdp-rfc2544-$$-gen-$n pg_prefix=wgdp-rfc2544-$$-pg-$n
    PREFIXES+=("$gen_prefix" "$pg_prefix")
    local -a gen=("$WGDP_PKTGEN" pcap --outside "$OUT_SPEC" --inside "$IN_SPEC"
        --gateway-key "$GW_KEY" --peers "$PEERS" --seed "$SEED" --out "$dir"
        --count "$pcount" --size "$SIZE" --lcore "$GEN_LCORE" --file-prefix "$gen_prefix"
        --eal-arg=--no-huge --eal-arg=--no-shconf --eal-arg=-m --eal-arg=512)
    [[ -z $METRICS ]] || gen+=(--metrics "$METRICS")
    in_ns "${gen[@]}" >"$dir/wgdp-pktgen.log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    rm -rf "/var/run/dpdk/$gen_prefix"
    if ((rc != 0)); then
        tail -5 "$dir/wgdp-pktgen.log" >&2
        echo "rfc2544: wgdp-pktgen pcap failed with status $rc (log above)" >&2
        exit 1
    fi

    len=$(pcap_frame_len "$dir/$DIRECTION.pcap")
    if [[ $len != "$FRAME" ]]; then
        FRAME=$len
        count=$(count_for "$rate")
        if [[ $DIRECTION == decrypt ]] && ((count > pcount)); then
            count=$pcount
        fi
    fi

    # Pktgen's memory: its own pools take about 3.5 GB with --no-huge, and the
    # pcap's pool up to 600 bytes a frame (mbuf, headroom and frame, aligned).
    mem=${MEMORY:-$((4096 + (pcount * 600 + 1048575) / 1048576))}
    local port=0
    [[ $DIRECTION == encrypt ]] && port=1
    local -a pg=(env WGDP_DIRECTION="$DIRECTION" WGDP_SESSION="$dir/session.txt"
        WGDP_PCAP="$dir/$DIRECTION.pcap" WGDP_RATE="$rate" WGDP_COUNT="$count"
        WGDP_LIMIT="$(awk -v s="$TRIAL_SECONDS" 'BEGIN { print s * 3 + 5 }')"
        WGDP_METRICS="$METRICS" WGDP_IFACES="$IFACES"
        timeout --kill-after=10 "$(awk -v s="$TRIAL_SECONDS" 'BEGIN { print int(s * 3 + 90) }')"
        "$PKTGEN" --lcores "$LCORES" --no-pci --no-huge -m "$mem" --file-prefix "$pg_prefix"
        --vdev "$OUT_SPEC" --vdev "$IN_SPEC" --
        -P -m "1.[0-1]" -s "$port:$dir/$DIRECTION.pcap" -f "$HERE/wgdp-trial.lua")
    rc=0
    in_ns "${pg[@]}" </dev/null >"$dir/pktgen.log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    rm -rf "/var/run/dpdk/$pg_prefix"
    line=$(grep -a -o 'WGDP_RESULT .*' "$dir/pktgen.log" | tail -1 || true)
    if [[ -z $line ]]; then
        # The log's tail without the screen's escape sequences.
        tail -40 "$dir/pktgen.log" | tr -d '\033' | grep -a '[[:alpha:]]' | tail -8 >&2 || true
        echo "rfc2544: Pktgen exited with status $rc without a result (its log's end above;" \
            "--keep DIR keeps the logs)" >&2
        exit 1
    fi
    local speed
    speed=$(grep -a -o 'of [0-9]* Mbit/s' "$dir/pktgen.log" | head -1 | tr -dc '0-9')
    [[ -z $speed ]] || LINK_MBPS=$speed

    # The same verdict as wgdp-rfc2544.lua: all sent, loss within the bound,
    # and Pktgen's achieved rate within the slack of the rate asked for.
    local why
    why=$(awk -v sent="$(field sent "$line")" -v offered="$(field offered "$line")" \
        -v to="$(field timed_out "$line")" -v loss="$(field loss_pct "$line")" \
        -v txpps="$(field tx_pps "$line")" -v lossok="$LOSS_PCT" -v slack="$RATE_SLACK" \
        -v r="$rate" -v m="$LINK_MBPS" -v l="$FRAME" 'BEGIN {
            pps = m * 1e6 / ((l + 24) * 8) * r / 100
            if (to == "true" || sent + 0 < offered + 0) print "not_all_sent"
            else if (loss + 0 > lossok + 0) print "loss"
            else if (txpps + 0 < pps * (1 - slack)) printf "rate_short_%.0f_of_%.0f_pps\n", txpps, pps
            else print "ok"
        }')
    PASS=false
    if [[ $why == ok ]]; then
        PASS=true
        MEASURED=$(field tx_pps "$line")
    fi
    echo "$line pass=$PASS why=$why"
    [[ -n $KEEP ]] || rm -rf "$dir"
}

echo "rfc2544: $DIRECTION, inside frames of $SIZE bytes (+4 FCS), ${TRIAL_SECONDS} s trials," \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if [[ -n $ONE_RATE ]]; then
    trial "$ONE_RATE"
    echo "RFC2544 direction=$DIRECTION size=$SIZE frame=$FRAME single_rate_pct=$ONE_RATE pass=$PASS trials=$TRIALS"
    exit 0
fi

# at_rate RATE: a trial at RATE, and up to --retry more while they fail.
at_rate() {
    local i
    for ((i = 0; i <= RETRY; i++)); do
        trial "$1"
        if $PASS; then
            return 0
        fi
    done
}

# Binary search: lo passed (0 by definition), hi failed or is the untested top.
lo=0
hi=$MAX_RATE
at_rate "$MAX_RATE"
if $PASS; then
    lo=$MAX_RATE
else
    while awk -v a="$hi" -v b="$lo" -v r="$RESOLUTION" 'BEGIN { exit !(a - b > r) }'; do
        mid=$(awk -v a="$hi" -v b="$lo" 'BEGIN { printf "%.6g\n", (a + b) / 2 }')
        at_rate "$mid"
        if $PASS; then lo=$mid; else hi=$mid; fi
    done
fi
pps=$(awk -v r="$lo" -v m="$LINK_MBPS" -v l="$FRAME" 'BEGIN { printf "%.0f\n", m * 1e6 / ((l + 24) * 8) * r / 100 }')
echo "RFC2544 direction=$DIRECTION size=$SIZE frame=$FRAME throughput_pct=$lo throughput_pps=$pps" \
    "measured_pps=$MEASURED upper_pct=$hi trials=$TRIALS"
