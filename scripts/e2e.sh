#!/usr/bin/env bash
#
# End-to-end tests of wgdp: a wireguard-go peer <-> wgdp <-> a LAN host, each
# in its own network namespace (the network is drawn in netns.sh).
#
# Each scenario builds that network anew (namespaces, keys, processes of its
# own) and removes it at its end, so nothing one scenario leaves behind (a TCP
# retransmission, a neighbour entry) reaches the next. Every veth keeps the
# kernel's default offloads, as on a container host, except in "offloads-off".
#
# For each DPDK driver (net_af_xdp, net_af_packet on veth):
#   - "wgdp-first": a fresh peer without keepalives; the LAN host pings the
#     peer first, so wgdp must start the handshake. Then ping IPv4 and IPv6
#     inner both ways and iperf3 TCP both ways (-R) over IPv4 and IPv6, and
#     from the LAN host with 64 KB writes (TSO/GSO super-packets); wgdp's
#     offload counters must show the checksums it completed (and, on
#     af_packet, the super-packets it cut).
#   - "offloads-off": the same with every offload off on every veth, as a
#     physical NIC behaves; wgdp must complete and cut nothing. The summary
#     puts its iperf3 rates next to those of "wgdp-first".
#   - "peer-first": fresh wgdp and peer; the peer pings first and starts the
#     handshake; a ping each way; the gateway's own addresses (a TCP
#     connection from the LAN host to the gateway's kernel needs the
#     checksums the LAN host left partial completed).
# Once, with the first driver:
#   - "ipv6-outer": the tunnel runs over IPv6 between peer and wgdp; ping both
#     ways and iperf3 over both inner families.
#   - "cluster" (cluster.sh): two wgdp gateways with FRR behind one anycast
#     address, an upstream router (BGP ECMP), an inside router, a LAN host and
#     six wireguard-go peers; spread, failover of a stopped gateway (measured
#     per phase), its return, and nothing left behind.
# Every scenario also checks that the gateway answers ARP on both ports
# before traffic starts, and that it exits 0 on SIGTERM. With a LAN MTU above
# the tunnel MTU (WGDP_LAN_MTU, 1500 by default), "wgdp-first" also checks that
# packets too big for the tunnel are answered with ICMP too-big (DF set) or
# fragmented (IPv4, DF clear).
#
# Prints a line per check as it runs, a summary table at the end, and exits
# non-zero if any check failed. On failure, the tails of the logs of the
# failed scenario are printed and all logs are kept under
# target/e2e-logs/RUN_ID.
#
# usage: scripts/e2e.sh [--gateway wgdp|wireguard-go] [--drivers "af_xdp af_packet"]
#                       [--seconds N] [--only "SCENARIO..."]
#   --gateway wireguard-go  runs the same checks against wireguard-go with kernel
#                           forwarding as the gateway: a check of the harness.
#   --seconds N             length of each iperf3 run (default 3).
#   --only "S..."           runs only these scenarios: wgdp-first, peer-first,
#                           offloads-off, ipv6-outer, cryptodev, operations,
#                           hardening, cluster.
# Environment:
#   WGDP_BIN       the wgdp binary (default: target/release/wgdp of this checkout)
#   WGDP_LOG       wgdp's log filter (default info)
#   WGDP_LAN_MTU   MTU of the LAN link (default 1500; at 1420, the tunnel MTU,
#                  the too-big and fragmentation checks are skipped)
#   WGDP_NO_HUGE   if set, DPDK runs with --no-huge even when hugepages are free
#   WGDP_KEEP_LOGS if set, logs are kept in target/e2e-logs/RUN_ID after a pass too
# Needs root, and the tools that scripts/setup.sh installs.

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=netns.sh
source "$(dirname "${BASH_SOURCE[0]}")/netns.sh"
# shellcheck source-path=SCRIPTDIR source=cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

IPERF_SECONDS=3
DRIVERS=(af_xdp af_packet)

PASSED=0
FAILED=0
SKIPPED=0
ONLY=()
RESULTS=()
SCENARIO=
SCENARIO_DEAD=
SCENARIO_FAILED_BEFORE=0
# Run after the gateway stopped, before the scenario's network is removed.
SCENARIO_AFTER_STOP=
KEPT_LOGS=

usage() {
    sed -n 's/^# \{0,1\}//; /^usage:/,/^Needs root/p' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
    --gateway) TOPO_GATEWAY=${2:?--gateway needs a value} && shift 2 ;;
    --drivers) read -r -a DRIVERS <<<"${2:?--drivers needs a value}" && shift 2 ;;
    --seconds) IPERF_SECONDS=${2:?--seconds needs a value} && shift 2 ;;
    --only) read -r -a ONLY <<<"${2:?--only needs a value}" && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && exit 2 ;;
    esac
done
[[ $IPERF_SECONDS =~ ^[1-9][0-9]*$ ]] || topo_die "--seconds takes a positive number"
case $TOPO_GATEWAY in
wgdp)
    for driver in "${DRIVERS[@]}"; do
        [[ $driver == af_xdp || $driver == af_packet ]] || topo_die "unknown driver '$driver' (af_xdp, af_packet)"
    done
    ;;
# The reference gateway forwards in the kernel: there is no DPDK driver.
wireguard-go) DRIVERS=(kernel) ;;
*) topo_die "--gateway is wgdp or wireguard-go" ;;
esac
((${#DRIVERS[@]} > 0)) || topo_die "--drivers lists no driver"

# --- Recording results ---------------------------------------------------

# record RESULT CHECK DETAIL
record() {
    case $1 in
    PASS) PASSED=$((PASSED + 1)) ;;
    FAIL) FAILED=$((FAILED + 1)) ;;
    SKIP) SKIPPED=$((SKIPPED + 1)) ;;
    esac
    RESULTS+=("$SCENARIO"$'\t'"$2"$'\t'"$1"$'\t'"$3")
    printf '%-4s  %-20s  %-38s  %s\n' "$1" "$SCENARIO" "$2" "$3"
}

# check NAME CMD...: runs CMD, which prints a one-line detail and succeeds or
# fails; records the result. Once the gateway is gone, the remaining checks of
# the scenario are skipped.
check() {
    local name=$1 detail status=0
    shift
    if [[ -n $SCENARIO_DEAD ]]; then
        record SKIP "$name" "$SCENARIO_DEAD"
        return 1
    fi
    # In the background, because bash runs the INT trap at once during
    # `wait`, but not after a foreground program that handles SIGINT itself
    # (ping, iperf3): Ctrl-C then stops the run instead of failing one check.
    "$@" >"$TOPO_DIR/check.out" 2>&1 &
    wait "$!" || status=$?
    detail=$(<"$TOPO_DIR/check.out")
    detail=${detail//$'\n'/; }
    if ((status == 0)); then
        record PASS "$name" "$detail"
    else
        record FAIL "$name" "$detail"
    fi
    if ! topo_running gw; then
        local exit_status=0
        gw_stop || exit_status=$?
        SCENARIO_DEAD="the gateway exited"
        record FAIL "gateway still running" "exited with status $exit_status during the previous check"
    fi
    return "$status"
}

# --- The checks (each prints its detail) ---------------------------------

# ping_summary OUTPUT: "3/3 replies, avg rtt 0.1 ms" from ping's statistics.
ping_summary() {
    local stats rtt tx rx
    stats=$(grep -o '[0-9]* packets transmitted, [0-9]* received' <<<"$1" || true)
    rtt=$(sed -n 's|^rtt min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$1")
    read -r tx _ _ rx _ <<<"$stats"
    echo "${rx:-0}/${tx:-0} replies${rtt:+, avg rtt $rtt ms}"
}

# ping_first NS DST: pings once a second until the first reply, for at most
# 10 s: the first packets wait for the handshake.
ping_first() {
    local out status=0
    out=$(ip netns exec "$1" ping -n -c 1 -w 10 "$2" 2>&1) || status=$?
    ping_summary "$out"
    return "$status"
}

# ping_check NS DST: three replies within 5 s.
ping_check() {
    local out status=0
    out=$(ip netns exec "$1" ping -n -q -c 3 -i 0.2 -w 5 "$2" 2>&1) || status=$?
    ping_summary "$out"
    return "$status"
}

# ping_fragmented NS DST SIZE: a ping of SIZE bytes without DF, over the
# tunnel MTU, gets its replies (wgdp fragments it, the peer reassembles it).
ping_fragmented() {
    local out status=0
    ip -n "$1" route flush cache
    out=$(ip netns exec "$1" ping -n -q -c 3 -i 0.2 -w 5 -M dont -s "$3" "$2" 2>&1) || status=$?
    echo "$(ping_summary "$out"), $3 bytes of data"
    return "$status"
}

# tcp_to_gateway ADDR: a TCP connection from the LAN host to a listener that
# the gateway's kernel runs on ADDR (reached through wgdp's control port).
tcp_to_gateway() {
    local out status=0 server
    local completed
    ip netns exec "$NS_GW" timeout 15 iperf3 -s -1 -B "$1" -p "$CTL_PORT" >"$TOPO_DIR/ctl-iperf.out" 2>&1 &
    server=$!
    if ! topo_wait 5 "the gateway kernel's iperf3 server" gw_kernel_listening; then
        wait "$server" || true
        echo "the gateway kernel's iperf3 server did not listen: $(<"$TOPO_DIR/ctl-iperf.out")"
        return 1
    fi
    out=$(ip netns exec "$NS_LAN" timeout 10 iperf3 -c "$1" -p "$CTL_PORT" -t 1 -f m --connect-timeout 3000 2>&1) || status=$?
    wait "$server" || true
    if ((status != 0)); then
        echo "iperf3 to $1 failed ($status): $(tail -n 1 <<<"$out")"
        return 1
    fi
    if [[ $TOPO_GATEWAY != wgdp ]]; then
        echo "connected; $(iperf_receiver_rate "$out") Mbit/s"
        return 0
    fi
    # The LAN host's kernel leaves its TCP checksums to the veth's "card" unless
    # offloads are off. The metrics are renewed twice a second: wait for them.
    if [[ $TOPO_OFFLOADS == on ]]; then
        topo_wait 5 "host_checksums_completed" event_above host_checksums_completed 0 >/dev/null 2>&1 || true
    fi
    completed=$(event "$(scrape)" host_checksums_completed)
    echo "connected; $(iperf_receiver_rate "$out") Mbit/s; ${completed:-?} checksums completed for the kernel"
    if [[ $TOPO_OFFLOADS == on ]]; then
        ((${completed:-0} > 0))
    fi
}

# event_above EVENT N: the control event counter is above N.
event_above() {
    local n
    n=$(event "$(scrape)" "$1")
    [[ -n $n ]] && ((n > $2))
}

gw_kernel_listening() {
    [[ -n $(ip netns exec "$NS_GW" ss -Hltn "sport = :$CTL_PORT") ]]
}

# iperf_receiver_rate OUTPUT: the receiver's Mbit/s from iperf3's text report.
iperf_receiver_rate() {
    awk '$NF == "receiver" { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") r = $(i - 1) } END { print r }' <<<"$1"
}

# gw_no_initiations: wgdp has started no handshake (nothing sent toward the
# peer's allowed IPs yet). A LAN host left over from an earlier scenario
# retransmitting to the peer made wgdp start one before a scenario began.
gw_no_initiations() {
    local n
    n=$(event "$(scrape)" initiations_sent)
    echo "initiations sent by wgdp: ${n:-?}"
    [[ $n == 0 ]]
}

# offload_event TEXT EVENT: a worker offload counter from a scrape (lcore 1).
offload_event() {
    awk -v e="event=\"$2\"" \
        'index($0, "wgdp_worker_offload_total{") == 1 && index($0, e) && index($0, "lcore=\"1\"") { print $NF; exit }' <<<"$1"
}

# offload_expected DRIVER: the counters show what default offloads must give.
offload_expected() {
    local text
    text=$(scrape) || return 1
    (($(offload_event "$text" checksum_completed) > 0)) || return 1
    [[ $1 != af_packet ]] || (($(offload_event "$text" superpacket_cut) > 0))
}

# offload_counters DRIVER: what wgdp finished for the senders. With the
# kernel's default offloads, the LAN host's TCP checksums arrive partial on
# both drivers, and af_packet also hands over its TSO super-packets; with
# offloads off, wgdp must find nothing to do.
offload_counters() {
    local text completed cut pieces
    # The metrics are renewed twice a second: wait until they include the last run.
    if [[ $TOPO_OFFLOADS == on ]]; then
        topo_wait 5 "the offload counters" offload_expected "$1" >/dev/null 2>&1 || true
    fi
    text=$(scrape) || return 1
    completed=$(offload_event "$text" checksum_completed)
    cut=$(offload_event "$text" superpacket_cut)
    pieces=$(offload_event "$text" superpacket_pieces)
    echo "checksums completed ${completed:-?}, super-packets cut ${cut:-?} into ${pieces:-?} packets"
    [[ -n $completed && -n $cut && -n $pieces ]] || return 1
    if [[ $TOPO_OFFLOADS == off ]]; then
        ((completed == 0 && cut == 0))
    elif [[ $1 == af_packet ]]; then
        ((completed > 0 && cut > 0 && pieces > cut))
    else
        ((completed > 0))
    fi
}

no_handshake_yet() {
    local t
    t=$(peer_latest_handshake) || return 1
    if ((t != 0)); then
        echo "the peer had a handshake before any traffic"
        return 1
    fi
    echo "no handshake before traffic"
}

handshake_done() {
    local t
    t=$(peer_latest_handshake) || return 1
    if ((t == 0)); then
        echo "the peer has no handshake"
        return 1
    fi
    echo "peer's latest handshake $(($(date +%s) - t)) s ago"
}

# too_big_check GW DST SIZE: a ping of SIZE bytes with DF from the LAN host
# to DST, over the tunnel MTU, must be answered by GW with ICMP
# "fragmentation needed" / "packet too big" naming the tunnel MTU.
too_big_check() {
    local out
    # The path MTU learnt in an earlier scenario must not answer for the
    # gateway.
    ip -n "$NS_LAN" route flush cache
    ip -n "$NS_LAN" -6 route flush cache
    out=$(ip netns exec "$NS_LAN" ping -n -c 2 -i 0.5 -W 2 -M "do" -s "$3" "$2" 2>&1 || true)
    if ! grep -Eq "^From $1 .*mtu ?= ?$TUNNEL_MTU" <<<"$out"; then
        echo "no ICMP too-big from $1 ($(ping_summary "$out"))"
        return 1
    fi
    grep -m 1 -E "^From $1" <<<"$out"
}

# iperf_check DST [IPERF3 ARGS...]: TCP from the peer to DST (-R: from DST to
# the peer) for IPERF_SECONDS; prints the receiver's rate.
iperf_check() {
    local dst=$1 out rate retr status=0
    shift
    out=$(ip netns exec "$NS_PEER" timeout $((IPERF_SECONDS + 20)) \
        iperf3 -c "$dst" -p "$IPERF_PORT" -t "$IPERF_SECONDS" -f m --connect-timeout 3000 "$@" 2>&1) || status=$?
    if ((status != 0)); then
        echo "iperf3 failed ($status): $(tail -n 1 <<<"$out")"
        return 1
    fi
    rate=$(iperf_receiver_rate "$out")
    if [[ -z $rate ]] || ! awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
        echo "no data arrived: $(tail -n 1 <<<"$out")"
        return 1
    fi
    retr=$(awk '$NF == "sender" && $(NF - 1) ~ /^[0-9]+$/ { print $(NF - 1) }' <<<"$out")
    echo "$rate Mbit/s${retr:+, $retr retransmits}"
}

# iperf_step NAME DST [ARGS...]: an iperf3 check; a failed client can leave
# the server stuck in its test, so the server is restarted after a failure.
iperf_step() {
    local name=$1
    shift
    if ! check "$name" iperf_check "$@"; then
        lan_stop
        lan_start
    fi
}

# --- Scenarios -----------------------------------------------------------

# scenario_begin NAME DRIVER OUTER: a network of its own (namespaces, veths,
# keys), a fresh LAN server, peer and gateway.
scenario_begin() {
    SCENARIO=$1
    SCENARIO_DEAD=
    SCENARIO_FAILED_BEFORE=$FAILED
    topo_init
    topo_trap
    topo_create
    TOPO_TAG=${1// /-}
    topo_log "scenario $SCENARIO (offloads $TOPO_OFFLOADS)"
    lan_start
    peer_start "$3"
    gw_start "$2" "$3"
    local started=$SECONDS
    if gw_wait_ready 30; then
        record PASS "gateway up" "answers ARP on both ports after $((SECONDS - started)) s"
    elif topo_running gw; then
        record FAIL "gateway up" "no ARP answer on both ports within 30 s"
        SCENARIO_DEAD="the gateway did not come up"
    else
        local status=0
        gw_stop || status=$?
        record FAIL "gateway up" "exited with status $status before it answered ARP"
        SCENARIO_DEAD="the gateway exited"
    fi
}

# check_mbufs_back LOG: after a stop, wgdp's log says that every packet buffer
# came back to its pool and the EAL was cleaned up.
check_mbufs_back() {
    local line reclaimed
    line=$(grep -o 'every mbuf is back in the pool.*' "$1" || true)
    reclaimed=$(grep -o 'reclaimed=[0-9]*' "$1" || true)
    if [[ -n $line ]] && ! grep -q 'mbufs still out\|skipping rte_eal_cleanup' "$1"; then
        record PASS "every mbuf back in its pool" "${line#*the pool }${reclaimed:+ ($reclaimed from the af_xdp rings)}"
    else
        record FAIL "every mbuf back in its pool" "$(grep -m1 'mbufs still out\|skipping rte_eal_cleanup' "$1" || echo 'no report in the log')"
    fi
}

scenario_end() {
    local status=0
    if ((FAILED > SCENARIO_FAILED_BEFORE)); then
        scenario_diagnostics >"$(topo_log_path diagnostics)" 2>&1
    fi
    if topo_running gw; then
        gw_stop || status=$?
        if ((status == 0)); then
            record PASS "stops cleanly on SIGTERM" "exit status 0"
        else
            record FAIL "stops cleanly on SIGTERM" "exit status $status"
        fi
        if [[ $TOPO_GATEWAY == wgdp ]]; then
            check_mbufs_back "$(topo_log_path wgdp)"
        fi
    else
        gw_stop || true
    fi
    peer_stop
    lan_stop
    if [[ -n $SCENARIO_AFTER_STOP ]]; then
        "$SCENARIO_AFTER_STOP"
        SCENARIO_AFTER_STOP=
    fi
    TOPO_KEEP_LOGS=
    if ((FAILED > SCENARIO_FAILED_BEFORE)); then
        TOPO_KEEP_LOGS=$TOPO_REPO/target/e2e-logs/$RUN_ID
        scenario_print_logs
    elif [[ -n ${WGDP_KEEP_LOGS:-} ]]; then
        TOPO_KEEP_LOGS=$TOPO_REPO/target/e2e-logs/$RUN_ID
    fi
    [[ -z $TOPO_KEEP_LOGS ]] || KEPT_LOGS=$TOPO_KEEP_LOGS
    topo_destroy
}

# scenario_diagnostics: the state that explains most failures, taken while
# everything still runs.
scenario_diagnostics() {
    echo "--- wg show (peer)"
    ip netns exec "$NS_PEER" wg show "$PEER_WG"
    echo "--- neighbours of the peer"
    ip -n "$NS_PEER" neigh show
    echo "--- neighbours of the LAN host"
    ip -n "$NS_LAN" neigh show
    echo "--- gateway links"
    ip -n "$NS_GW" -s -d link show
}

# scenario_print_logs: the tails of the failed scenario's logs, the gateway's
# first.
scenario_print_logs() {
    local name lines f
    for name in wgdp:80 wireguard-go-gateway:40 diagnostics:80 wireguard-go:25; do
        lines=${name#*:}
        f=$TOPO_LOGS/$TOPO_TAG.${name%:*}.log
        [[ -f $f ]] || continue
        echo "----- ${f##*/} (last $lines lines)"
        tail -n "$lines" "$f"
    done
    echo "-----"
}

# scenario_wgdp_first DRIVER [off]: with "off", every veth has its offloads
# off (the scenario "offloads-off").
scenario_wgdp_first() {
    local name=wgdp-first
    if [[ ${2:-on} == off ]]; then
        TOPO_OFFLOADS=off
        name=offloads-off
    fi
    scenario_begin "$1 $name" "$1" 4
    check "fresh peer" no_handshake_yet || true
    check "LAN->peer IPv4 ping starts handshake" ping_first "$NS_LAN" "$PEER_IN4" || true
    check "handshake made (by the gateway)" handshake_done || true
    check "ping IPv4 LAN->peer" ping_check "$NS_LAN" "$PEER_IN4" || true
    check "ping IPv6 LAN->peer" ping_check "$NS_LAN" "$PEER_IN6" || true
    check "ping IPv4 peer->LAN" ping_check "$NS_PEER" "$LAN_IN4" || true
    check "ping IPv6 peer->LAN" ping_check "$NS_PEER" "$LAN_IN6" || true
    if ((LAN_MTU > TUNNEL_MTU)); then
        check "IPv4 DF over MTU: ICMP too-big" too_big_check "$GW_IN4" "$PEER_IN4" $((LAN_MTU - 28)) || true
        check "IPv6 over MTU: ICMP too-big" too_big_check "$GW_IN6" "$PEER_IN6" $((LAN_MTU - 48)) || true
        check "IPv4 over MTU without DF: fragmented" ping_fragmented "$NS_LAN" "$PEER_IN4" $((LAN_MTU - 28)) || true
    fi
    iperf_step "iperf3 TCP IPv4 peer->LAN" "$LAN_IN4"
    iperf_step "iperf3 TCP IPv4 LAN->peer" "$LAN_IN4" -R
    iperf_step "iperf3 TCP IPv6 peer->LAN" "$LAN_IN6"
    iperf_step "iperf3 TCP IPv6 LAN->peer" "$LAN_IN6" -R
    # The LAN host's kernel builds TSO/GSO super-packets of up to 64 KB from
    # large writes where its veth keeps TSO.
    iperf_step "iperf3 TCP IPv4 LAN->peer 64 KB" "$LAN_IN4" -R -l 64K
    iperf_step "iperf3 TCP IPv6 LAN->peer 64 KB" "$LAN_IN6" -R -l 64K
    if [[ $TOPO_GATEWAY == wgdp ]]; then
        check "offload counters" offload_counters "$1" || true
    fi
    scenario_end
    TOPO_OFFLOADS=on
}

scenario_peer_first() {
    scenario_begin "$1 peer-first" "$1" 4
    check "fresh peer" no_handshake_yet || true
    if [[ $TOPO_GATEWAY == wgdp ]]; then
        check "wgdp started no handshake" gw_no_initiations || true
    fi
    check "peer->LAN IPv4 ping starts handshake" ping_first "$NS_PEER" "$LAN_IN4" || true
    check "handshake made (by the peer)" handshake_done || true
    check "ping IPv6 peer->LAN" ping_check "$NS_PEER" "$LAN_IN6" || true
    check "ping IPv4 LAN->peer" ping_check "$NS_LAN" "$PEER_IN4" || true
    # The gateway's own addresses, answered by its kernel through the control port.
    check "ping gateway outside IPv4" ping_check "$NS_PEER" "$GW_OUT4" || true
    check "ping gateway inside IPv4" ping_check "$NS_LAN" "$GW_IN4" || true
    check "ping gateway inside IPv6" ping_check "$NS_LAN" "$GW_IN6" || true
    check "ping gateway through the tunnel" ping_check "$NS_PEER" "$GW_IN4" || true
    check "TCP to the gateway's kernel" tcp_to_gateway "$GW_IN4" || true
    scenario_end
}

# The same traffic with ChaCha20-Poly1305 on a DPDK crypto device (the
# ipsec_mb driver's crypto_aesni_mb) instead of in the worker.
scenario_cryptodev() {
    GW_CRYPTO_DEVICE=crypto_aesni_mb0
    SCENARIO_AFTER_STOP=crypto_record
    scenario_begin "$1 cryptodev" "$1" 4
    check "crypto device in use" crypto_started || true
    check "LAN->peer IPv4 ping starts handshake" ping_first "$NS_LAN" "$PEER_IN4" || true
    check "ping IPv6 peer->LAN" ping_check "$NS_PEER" "$LAN_IN6" || true
    iperf_step "iperf3 TCP IPv4 peer->LAN" "$LAN_IN4"
    iperf_step "iperf3 TCP IPv4 LAN->peer" "$LAN_IN4" -R
    scenario_end
    GW_CRYPTO_DEVICE=
}

# Read from the log of the stopped gateway, so not through `check`.
crypto_record() {
    local out
    if out=$(crypto_jobs); then
        record PASS "the crypto device did the work" "$out"
    else
        record FAIL "the crypto device did the work" "$out"
    fi
}

# crypto_jobs: after the stop, wgdp's log counts the jobs its crypto device
# ran, and none it failed.
crypto_jobs() {
    local line
    line=$(grep -m 1 -o 'crypto device counters.*' "$(topo_log_path wgdp)") || {
        echo "no crypto device counters in the log"
        return 1
    }
    echo "${line#crypto device counters }"
    [[ $line =~ device_jobs=([0-9]+) ]] && ((BASH_REMATCH[1] > 1000)) &&
        [[ $line == *" failed=0 "* ]]
}

# crypto_started: wgdp started its crypto device.
crypto_started() {
    grep -m 1 -o 'crypto device started.*' "$(topo_log_path wgdp)"
}

# --- Operations: the wg tool, metrics, telemetry, reloads ----------------

# scrape: wgdp's Prometheus text.
scrape() {
    ip netns exec "$NS_GW" curl -sS --max-time 5 "http://$GW_METRICS/metrics"
}

# metric TEXT NAME KEY: the value of the series NAME whose labels mention KEY.
metric() {
    awk -v n="$2" -v k="$3" 'index($0, n "{") == 1 && index($0, k) { print $NF; exit }' <<<"$1"
}

wg_show_check() {
    local out
    out=$(wg show "$GW_UAPI" 2>&1) || { echo "$out"; return 1; }
    grep -q "peer: $PEER_PUB" <<<"$out" && grep -q 'latest handshake:' <<<"$out" &&
        grep -q 'transfer:' <<<"$out" && grep -q 'private key: (hidden)' <<<"$out" || {
        echo "unexpected: ${out//$'\n'/; }"
        return 1
    }
    echo "$(grep -m1 'transfer:' <<<"$out" | sed 's/^ *//'); $(grep -m1 'latest handshake:' <<<"$out" | sed 's/^ *//')"
}

wg_showconf_check() {
    local out
    out=$(wg showconf "$GW_UAPI" 2>&1) || { echo "$out"; return 1; }
    grep -qxF "PrivateKey = $(cat "$TOPO_DIR/gateway.key")" <<<"$out" &&
        grep -qxF "ListenPort = $GW_PORT" <<<"$out" &&
        grep -qxF "PublicKey = $PEER_PUB" <<<"$out" &&
        grep -qxF "AllowedIPs = $PEER_IN4/32, $PEER_IN6/128" <<<"$out" || {
        echo "unexpected: ${out//$'\n'/; }"
        return 1
    }
    echo "$(grep -c . <<<"$out") lines, the private key, the listen port and the peer"
}

metrics_move() {
    local before after b a
    before=$(scrape) || return 1
    ip netns exec "$NS_PEER" ping -n -q -c 5 -i 0.2 "$LAN_IN4" >/dev/null
    b=$(metric "$before" wgdp_peer_rx_packets_total "$PEER_PUB")
    [[ -n $b ]] || { echo "no wgdp_peer_rx_packets_total"; return 1; }
    # The per-peer counters are gathered by the control thread now and then.
    topo_wait 5 "the peer's counter to move" peer_rx_at_least $((b + 5)) >/dev/null 2>&1 || true
    a=$(metric "$(scrape)" wgdp_peer_rx_packets_total "$PEER_PUB")
    echo "wgdp_peer_rx_packets_total $b -> ${a:-?}"
    [[ -n $a ]] && ((a >= b + 5))
}

peer_rx_at_least() {
    local a
    a=$(metric "$(scrape)" wgdp_peer_rx_packets_total "$PEER_PUB")
    [[ -n $a ]] && ((a >= $1))
}

metrics_promtool() {
    local text out
    text=$(scrape) || return 1
    out=$(promtool check metrics <<<"$text" 2>&1) || { echo "${out//$'\n'/; }"; return 1; }
    echo "promtool: no problems in $(grep -vc '^#' <<<"$text") series"
}

telemetry_check() {
    local out
    out=$(printf '/wgdp/peers\n/wgdp/peer,%s\n' "$PEER_PUB" |
        ip netns exec "$NS_GW" timeout 10 dpdk-telemetry.py -f "$EAL_PREFIX" 2>&1) || {
        echo "${out//$'\n'/; }"
        return 1
    }
    grep -q '"/wgdp/peers": \[0\]' <<<"$out" && grep -q 'rx_packets' <<<"$out" || {
        echo "unexpected: ${out//$'\n'/; }"
        return 1
    }
    echo "/wgdp/peers and /wgdp/peer,KEY: $(grep -o '"rx_packets": [0-9]*' <<<"$out" | head -1)"
}

# runtime_table: `wgdp runtime` against the running gateway prints each stage with the
# packets it saw; after --clear, a window that counts only the pings sent since.
runtime_table() {
    local out state=$TOPO_DIR/runtime.state line
    out=$(ip netns exec "$NS_GW" "$WGDP_BIN" runtime --config "$GW_CONFIG" --state "$state" 2>&1) || {
        echo "wgdp runtime failed: ${out//$'\n'/; }"
        return 1
    }
    line=$(grep -m1 -E '^  decrypt +[0-9]' <<<"$out") || { echo "no decrypt row: ${out//$'\n'/; }"; return 1; }
    read -r _ _ _ packets _ <<<"$line"
    ((packets > 0)) || { echo "decrypt saw no packets: $line"; return 1; }
    ip netns exec "$NS_GW" "$WGDP_BIN" runtime --config "$GW_CONFIG" --state "$state" --clear >/dev/null || return 1
    ip netns exec "$NS_PEER" ping -n -q -c 4 -i 0.2 "$LAN_IN4" >/dev/null
    # The metrics are renewed twice a second.
    topo_wait 5 "the window to show the pings" runtime_window_has "$state" 4 >/dev/null 2>&1 || true
    out=$(ip netns exec "$NS_GW" "$WGDP_BIN" runtime --config "$GW_CONFIG" --state "$state" 2>&1) || return 1
    line=$(grep -m1 -E '^  decrypt +[0-9]' <<<"$out")
    read -r _ _ _ packets _ <<<"$line"
    echo "$(head -n 1 <<<"$out"); decrypt: ${line#  decrypt }"
    [[ $out == *"since wgdp runtime --clear"* ]] && ((packets >= 4 && packets < 100))
}

# runtime_window_has STATE N: the decrypt row of the window shows at least N packets.
runtime_window_has() {
    local out line packets
    out=$(ip netns exec "$NS_GW" "$WGDP_BIN" runtime --config "$GW_CONFIG" --state "$1" 2>/dev/null) || return 1
    line=$(grep -m1 -E '^  decrypt +[0-9]' <<<"$out") || return 1
    read -r _ _ _ packets _ <<<"$line"
    ((packets >= $2))
}

# ping_peer2 [expect-fail]: a ping from the second peer's inner address.
ping_peer2() {
    local out status=0
    out=$(ip netns exec "$NS_PEER" ping -n -q -c 3 -i 0.2 -w 4 -I "$PEER2_IN4" "$LAN_IN4" 2>&1) || status=$?
    if [[ ${1:-} == gone ]]; then
        echo "$(ping_summary "$out") (none expected)"
        ((status != 0))
    else
        ping_summary "$out"
        return "$status"
    fi
}

wg_set_add() {
    wg set "$GW_UAPI" peer "$PEER2_PUB" endpoint "$PEER_OUT4:$PEER2_PORT" allowed-ips "$PEER2_IN4/32" || return 1
    wg show "$GW_UAPI" peers | grep -qx "$PEER2_PUB" || { echo "not listed by wg show"; return 1; }
    ping_peer2
}

wg_set_remove() {
    wg set "$GW_UAPI" peer "$PEER2_PUB" remove || return 1
    if wg show "$GW_UAPI" peers | grep -qx "$PEER2_PUB"; then
        echo "still listed by wg show"
        return 1
    fi
    ping_peer2 gone
}

# reload_with EXTRA_PEERS: rewrites wgdp's configuration with these extra
# peer entries and has wgdp reload it.
reload_with() {
    local n
    n=$(reloads_done)
    GW_EXTRA_PEERS=$1 gw_config "$GW_DRIVER" 4 >/dev/null
    "$WGDP_BIN" reload --config "$GW_CONFIG" --pid-file "$TOPO_DIR/wgdp.pid" >/dev/null || return 1
    topo_wait 10 "wgdp to apply the reload" log_count_above "configuration reloaded" "$n"
}

# reloads_done: how many reloads wgdp's log reports as applied.
reloads_done() {
    grep -c 'configuration reloaded' "$(topo_log_path wgdp)" || true
}

# log_count_above TEXT N: wgdp's log has more than N lines with TEXT.
log_count_above() {
    (($(grep -c "$1" "$(topo_log_path wgdp)" || true) > $2))
}

peer2_entry() {
    printf '  - public_key: "%s"\n    endpoint: "%s:%s"\n    allowed_ips: [%s]' \
        "$PEER2_PUB" "$PEER_OUT4" "$PEER2_PORT" "$1"
}

reload_add() {
    reload_with "$(peer2_entry "\"$PEER2_IN4/32\"")" || return 1
    ping_peer2
}

reload_change() {
    reload_with "$(peer2_entry "\"$PEER2_IN4/32\", \"198.18.97.0/24\"")" || return 1
    local ips
    ips=$(wg show "$GW_UAPI" allowed-ips | grep "^$PEER2_PUB")
    [[ $ips == *198.18.97.0/24* ]] || { echo "allowed IPs: $ips"; return 1; }
    echo "allowed IPs now ${ips#*$'\t'}; $(ping_peer2)"
}

reload_bad() {
    local out status=0 cfg_ok
    cfg_ok=$(<"$GW_CONFIG")
    GW_EXTRA_PEERS=$(peer2_entry '"198.18.98.2"') gw_config "$GW_DRIVER" 4 >/dev/null
    out=$("$WGDP_BIN" reload --config "$GW_CONFIG" --pid-file "$TOPO_DIR/wgdp.pid" 2>&1) || status=$?
    if ((status != 2)) || [[ $out != "config error: peers[1].allowed_ips[0]:"* ]]; then
        echo "wgdp reload: status $status: $out"
        return 1
    fi
    # The running gateway, told directly, refuses the file too.
    kill -HUP "$(<"$TOPO_DIR/wgdp.pid")"
    if ! topo_wait 10 "wgdp to refuse the file" log_count_above \
        'reload refused, the running configuration stays: config error: peers\[1\]' 0; then
        echo "no refusal in wgdp's log"
        return 1
    fi
    printf '%s\n' "$cfg_ok" >"$GW_CONFIG"
    echo "refused: $out; $(ping_peer2)"
}

reload_remove() {
    reload_with "" || return 1
    if wg show "$GW_UAPI" peers | grep -qx "$PEER2_PUB"; then
        echo "still listed by wg show"
        return 1
    fi
    ping_peer2 gone
}

# iperf_intervals JSON FROM: a summary of an iperf3 -J report; fails if any
# one-second interval from the FROM-th on carried no data.
iperf_intervals() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rates = [i["sum"]["bits_per_second"] / 1e6 for i in r["intervals"]]
sent = r["end"]["sum_sent"]
print(f"{len(rates)} one-second intervals, slowest {min(rates):.0f} Mbit/s, "
      f"{r['end']['sum_received']['bits_per_second'] / 1e6:.0f} Mbit/s overall, "
      f"{sent.get('retransmits', 0)} retransmits")
sys.exit(0 if rates[int(sys.argv[2]):] and min(rates[int(sys.argv[2]):]) > 0 else 1)
EOF
}

# The first peer's iperf3 that runs while the reloads happen.
background_iperf_start() {
    ip netns exec "$NS_PEER" timeout 60 iperf3 -c "$LAN_IN4" -p "$IPERF_PORT" -t "$1" -i 1 -J \
        >"$TOPO_DIR/background-iperf.json" 2>&1 &
    BACKGROUND_IPERF=$!
    sleep 1
}

# background_iperf_check STATUS: STATUS is iperf3's exit status.
background_iperf_check() {
    (($1 == 0)) || { echo "iperf3 failed ($1): $(tail -n 3 "$TOPO_DIR/background-iperf.json")"; return 1; }
    iperf_intervals "$TOPO_DIR/background-iperf.json" 0
}

# The first peer's handshake count: a reload must not touch its session.
peer1_handshakes() {
    metric "$(scrape)" wgdp_peer_handshakes_total "$PEER_PUB"
}

# --- Bulk changes through the wg tool, while peer 1's iperf3 runs ----------

BULK_PEERS=5000

# timed CMD...: runs CMD; prints the seconds it took, or its output if it failed.
timed() {
    local start=$EPOCHREALTIME out
    out=$("$@" 2>&1) || { echo "${out//$'\n'/; }"; return 1; }
    awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f\n", b - a }'
}

# bulk_keys: BULK_PEERS random public keys, one a line, in $TOPO_DIR/bulk.keys
# (any 32 bytes in base64 make a key a configuration can name; `wg genkey`
# 5000 times would take minutes).
bulk_keys() {
    python3 - "$BULK_PEERS" >"$TOPO_DIR/bulk.keys" <<'EOF2'
import base64, os, sys
for _ in range(int(sys.argv[1])):
    print(base64.b64encode(os.urandom(32)).decode())
EOF2
}

# bulk_conf KIND CURRENT: a wg configuration file on stdout. add: a [Peer] for
# each bulk key, bulk peer i with 198.18.128.0/17's i-th address as a /32.
# sync: the [Interface] and peer 1's [Peer] of CURRENT (a `wg showconf`)
# unchanged, and the first half of the bulk with 2001:2:0:1000::i+1/128 instead.
bulk_conf() {
    python3 - "$1" "$TOPO_DIR/bulk.keys" "${2:-}" "$PEER_PUB" <<'EOF2'
import ipaddress, sys
kind, keys, current, peer1 = sys.argv[1:5]
keys = open(keys).read().split()
v4 = ipaddress.IPv4Address("198.18.128.0")
if kind == "add":
    for i, k in enumerate(keys):
        print(f"[Peer]\nPublicKey = {k}\nAllowedIPs = {v4 + i}/32\n")
    sys.exit(0)
sections = open(current).read().split("\n\n")
print(sections[0].strip() + "\n")
mine = [s for s in sections if f"PublicKey = {peer1}\n" in s + "\n"]
if len(mine) != 1:
    sys.exit(f"peer 1 is in {len(mine)} sections of {current}")
print(mine[0].strip() + "\n")
for i, k in enumerate(keys[: len(keys) // 2]):
    print(f"[Peer]\nPublicKey = {k}\nAllowedIPs = 2001:2:0:1000::{i + 1:x}/128\n")
EOF2
}

# bulk_allowed N: the allowed IPs `wg show` lists for bulk peer N ("" if it is
# no peer), from $TOPO_DIR/bulk.allowed.
bulk_allowed() {
    local key
    key=$(sed -n "$(($1 + 1))p" "$TOPO_DIR/bulk.keys")
    awk -v k="$key" '$1 == k { $1 = ""; print substr($0, 2) }' "$TOPO_DIR/bulk.allowed"
}

# bulk_expect WHAT GOT WANT: fails, saying so, unless GOT is WANT.
bulk_expect() {
    [[ $2 == "$3" ]] || { echo "$1: '$2', expected '$3'"; return 1; }
}

# bulk_state: `wg show` of the gateway now, into $TOPO_DIR/bulk.allowed;
# prints the number of peers.
bulk_state() {
    wg show "$GW_UAPI" allowed-ips >"$TOPO_DIR/bulk.allowed" || return 1
    wc -l <"$TOPO_DIR/bulk.allowed"
}

# bulk_addconf BEFORE: `wg addconf` adds BULK_PEERS peers to the BEFORE peers.
bulk_addconf() {
    local took n half=$((BULK_PEERS / 2)) last=$((BULK_PEERS - 1))
    bulk_keys && bulk_conf add >"$TOPO_DIR/bulk-add.conf" || return 1
    took=$(timed wg addconf "$GW_UAPI" "$TOPO_DIR/bulk-add.conf") || { echo "wg addconf: $took"; return 1; }
    n=$(bulk_state) || return 1
    echo "$BULK_PEERS peers added in $took s; wg show lists $n;" \
        "bulk peer $last: $(bulk_allowed $last)"
    bulk_expect "peers" "$n" $(($1 + BULK_PEERS)) &&
        bulk_expect "bulk peer 0" "$(bulk_allowed 0)" 198.18.128.0/32 &&
        bulk_expect "bulk peer $half" "$(bulk_allowed $half)" \
            "198.18.$((128 + half / 256)).$((half % 256))/32" &&
        bulk_expect "peer 1" "$(peer1_allowed)" "$PEER_IN4/32 $PEER_IN6/128"
}

# peer1_allowed: peer 1's allowed IPs in $TOPO_DIR/bulk.allowed.
peer1_allowed() {
    awk -v k="$PEER_PUB" '$1 == k { $1 = ""; print substr($0, 2) }' "$TOPO_DIR/bulk.allowed"
}

# bulk_syncconf BEFORE: `wg syncconf` with a file that has peer 1 as `wg
# showconf` shows it and half the bulk with new allowed IPs: the other half goes.
bulk_syncconf() {
    local took n half=$((BULK_PEERS / 2))
    wg showconf "$GW_UAPI" >"$TOPO_DIR/bulk-now.conf" || return 1
    bulk_conf sync "$TOPO_DIR/bulk-now.conf" >"$TOPO_DIR/bulk-sync.conf" || return 1
    took=$(timed wg syncconf "$GW_UAPI" "$TOPO_DIR/bulk-sync.conf") || { echo "wg syncconf: $took"; return 1; }
    n=$(bulk_state) || return 1
    echo "$half peers changed and $((BULK_PEERS - half)) removed in $took s; wg show lists $n;" \
        "bulk peer $((half - 1)): $(bulk_allowed $((half - 1)))"
    bulk_expect "peers" "$n" $(($1 + half)) &&
        bulk_expect "bulk peer 0" "$(bulk_allowed 0)" 2001:2:0:1000::1/128 &&
        bulk_expect "bulk peer $((half - 1))" "$(bulk_allowed $((half - 1)))" \
            "2001:2:0:1000::$(printf %x "$half")/128" &&
        bulk_expect "bulk peer $half (removed)" "$(bulk_allowed "$half")" "" &&
        bulk_expect "bulk peer $((BULK_PEERS - 1)) (removed)" "$(bulk_allowed $((BULK_PEERS - 1)))" "" &&
        bulk_expect "peer 1" "$(peer1_allowed)" "$PEER_IN4/32 $PEER_IN6/128"
}

# bulk_setconf BEFORE: `wg setconf` with what `wg showconf` gave before the
# bulk brings the gateway back to it.
bulk_setconf() {
    local took n diff
    took=$(timed wg setconf "$GW_UAPI" "$TOPO_DIR/before.conf") || { echo "wg setconf: $took"; return 1; }
    n=$(bulk_state) || return 1
    diff=$(wg showconf "$GW_UAPI" | diff "$TOPO_DIR/before.conf" - 2>&1) || {
        echo "wg showconf differs from before the bulk: ${diff//$'\n'/; }"
        return 1
    }
    echo "back to before in $took s: wg show lists $n peers, wg showconf as before the bulk"
    bulk_expect "peers" "$n" "$1"
}

# session_drops TEXT: the counters, from a scrape, that a change of peers moves
# when it disturbs a running session: packets for a keypair that is gone, from a
# source or to a destination no peer has, for a peer without an endpoint, punted
# for a lost session, and whatever the control thread dropped. Only peer 1 has
# traffic while the bulk changes run, so these are its packets; the drops that
# its iperf3 makes itself (a full TX queue) are not among them.
session_drops() {
    awk '
        function add(name) { sum[name] += $NF }
        index($0, "wgdp_worker_drops_total{") == 1 {
            if (match($0, /stage="[a-z_]*"/)) stage = substr($0, RSTART + 7, RLENGTH - 8)
            if (match($0, /reason="[a-z_]*"/)) reason = substr($0, RSTART + 8, RLENGTH - 9)
            if (reason ~ /^(unknown_index|expired|source_not_allowed|no_route|no_endpoint)$/) add(stage "." reason)
        }
        index($0, "wgdp_worker_punts_total{") == 1 && index($0, "reason=\"no_session\"") { add("punt.no_session") }
        index($0, "wgdp_control_drops_total{") == 1 { add("control_drops") }
        END {
            split("decrypt.unknown_index decrypt.expired route.source_not_allowed route.no_route encrypt.no_endpoint punt.no_session control_drops", names, " ")
            for (i = 1; i in names; i++) printf "%s%s=%d", (i > 1 ? " " : ""), names[i], sum[names[i]]
            print ""
        }' <<<"$1"
}

# snapshot_after T: wgdp's metrics were taken after Unix time T (with a
# fraction).
snapshot_after() {
    local taken
    taken=$(awk 'index($0, "wgdp_snapshot_timestamp_seconds ") == 1 { print $NF }' <<<"$(scrape)")
    [[ -n $taken ]] && awk -v a="$taken" -v t="$1" 'BEGIN { exit !(a > t) }'
}

# session_counters: session_drops in a snapshot of wgdp's metrics taken from
# now on, and the UAPI requests that wgdp's log says failed.
session_counters() {
    topo_wait 5 "a metrics snapshot from now on" snapshot_after "$EPOCHREALTIME" >/dev/null 2>&1 || true
    echo "$(session_drops "$(scrape)") uapi_failed=$(grep -c 'uapi: request failed' "$(topo_log_path wgdp)" || true)"
}

# session_undisturbed BEFORE: session_counters are now what they were before.
session_undisturbed() {
    local after
    after=$(session_counters)
    echo "$after"
    [[ -n $1 && $1 == "$after" ]] || { echo "before: $1"; return 1; }
}

# bulk_iperf_check STATUS RAN_ON: the background iperf3 of the bulk changes;
# RAN_ON says it was still running when they were done.
bulk_iperf_check() {
    [[ $2 == yes ]] || { echo "iperf3 ended before the bulk changes did: give it a longer -t"; return 1; }
    background_iperf_check "$1"
}

scenario_operations() {
    GW_DRIVER=$1
    scenario_begin "$1 operations" "$1" 4
    GW_CONFIG=$TOPO_DIR/wgdp-$1-ipv4.yaml
    check "peer->LAN ping" ping_first "$NS_PEER" "$LAN_IN4" || true
    check "wg show" wg_show_check || true
    check "wg showconf" wg_showconf_check || true
    check "metrics move with traffic" metrics_move || true
    check "promtool check metrics" metrics_promtool || true
    check "dpdk-telemetry.py" telemetry_check || true
    check "wgdp runtime" runtime_table || true
    peer2_start
    check "wg set adds a peer that passes traffic" wg_set_add || true
    check "wg set removes it" wg_set_remove || true
    # A removed peer's session is gone at wgdp but not at the peer, which would
    # only start a new handshake after 15 s of silence: a fresh peer instead.
    peer2_stop
    peer2_start
    local hs_before hs_after iperf_status=0
    hs_before=$(peer1_handshakes)
    background_iperf_start 12
    check "reload adds a peer" reload_add || true
    check "reload changes its allowed IPs" reload_change || true
    check "reload refuses a bad file" reload_bad || true
    check "reload removes the peer" reload_remove || true
    wait "$BACKGROUND_IPERF" || iperf_status=$?
    check "the other peer's iperf3 ran on" background_iperf_check "$iperf_status" || true
    hs_after=$(peer1_handshakes)
    if [[ -n $hs_before && $hs_before == "$hs_after" ]]; then
        record PASS "its session survived the reloads" "handshakes $hs_before -> $hs_after"
    else
        record FAIL "its session survived the reloads" "handshakes ${hs_before:-?} -> ${hs_after:-?}"
    fi
    peer2_stop
    # Thousands of peers come, change and go through the wg tool while peer 1's
    # iperf3 runs on.
    local peers_before drops_before ran_on=no
    iperf_status=0
    wg showconf "$GW_UAPI" >"$TOPO_DIR/before.conf" || true
    peers_before=$(bulk_state || echo "?")
    drops_before=$(session_counters)
    hs_before=$(peer1_handshakes)
    background_iperf_start 30
    check "wg addconf: $BULK_PEERS peers" bulk_addconf "$peers_before" || true
    check "wg syncconf: half changed, half gone" bulk_syncconf "$peers_before" || true
    check "wg setconf: back to before" bulk_setconf "$peers_before" || true
    pid_alive "$BACKGROUND_IPERF" && ran_on=yes
    wait "$BACKGROUND_IPERF" || iperf_status=$?
    check "peer 1's iperf3 ran on through them" bulk_iperf_check "$iperf_status" "$ran_on" || true
    hs_after=$(peer1_handshakes)
    if [[ -n $hs_before && $hs_before == "$hs_after" ]]; then
        record PASS "its session survived the bulk" "handshakes $hs_before -> $hs_after"
    else
        record FAIL "its session survived the bulk" "handshakes ${hs_before:-?} -> ${hs_after:-?}"
    fi
    check "peer 1 lost no packet to the changes" session_undisturbed "$drops_before" || true
    scenario_end
}

# --- Hardening: rekeys, roaming, replays, a handshake flood ------------------

PROBE_BIN=${WGDP_PROBE:-$TOPO_REPO/target/release/examples/probe}

# event TEXT NAME: a control event counter from a scrape.
event() {
    awk -v e="event=\"$2\"" 'index($0, "wgdp_control_events_total{") == 1 && index($0, e) { print $NF; exit }' <<<"$1"
}

# drops TEXT STAGE REASON: a worker drop counter from a scrape (worker lcore 1).
drops() {
    awk -v s="stage=\"$2\"" -v r="reason=\"$3\"" \
        'index($0, "wgdp_worker_drops_total{") == 1 && index($0, s) && index($0, r) && index($0, "lcore=\"1\"") { print $NF; exit }' <<<"$1"
}

# rekeys_under_iperf SECONDS: LAN->peer iperf3 while wgdp, the initiator, rekeys every
# wireguard.rekey_after_time; every one-second interval must carry data.
rekeys_under_iperf() {
    local before after summary status=0
    before=$(event "$(scrape)" initiations_sent)
    ip netns exec "$NS_PEER" timeout $(($1 + 20)) iperf3 -c "$LAN_IN4" -p "$IPERF_PORT" -t "$1" -i 1 -R -J \
        >"$TOPO_DIR/rekey-iperf.json" 2>&1 || status=$?
    after=$(event "$(scrape)" initiations_sent)
    ((status == 0)) || { echo "iperf3 failed ($status)"; return 1; }
    summary=$(iperf_intervals "$TOPO_DIR/rekey-iperf.json" 0) || { echo "a stall: $summary"; return 1; }
    echo "$((after - before)) handshakes started by wgdp; $summary"
    ((after - before >= $1 / GW_REKEY - 1))
}

# roam: mid-stream, the peer moves to a new address and port; wgdp must follow.
roam() {
    local new_ip=198.19.0.77 new_port=51899 out status=0 ep
    ip netns exec "$NS_PEER" sysctl -qw net.ipv4.conf.peer0.promote_secondaries=1
    ip netns exec "$NS_PEER" timeout 30 iperf3 -c "$LAN_IN4" -p "$IPERF_PORT" -t 8 -i 1 -J \
        >"$TOPO_DIR/roam-iperf.json" 2>&1 &
    local iperf=$!
    sleep 3
    ip -n "$NS_PEER" addr add "$new_ip/$OUT_PLEN4" dev peer0
    ip -n "$NS_PEER" addr del "$PEER_OUT4/$OUT_PLEN4" dev peer0
    ip netns exec "$NS_PEER" wg set "$PEER_WG" listen-port "$new_port"
    wait "$iperf" || status=$?
    ep=$(wg show "$GW_UAPI" endpoints | awk '{ print $2 }')
    # Back where the other scenarios expect the peer.
    ip -n "$NS_PEER" addr add "$PEER_OUT4/$OUT_PLEN4" dev peer0
    ip -n "$NS_PEER" addr del "$new_ip/$OUT_PLEN4" dev peer0
    ((status == 0)) || { echo "iperf3 failed ($status)"; return 1; }
    # The first seconds after the move may be empty while the endpoint changes.
    out=$(iperf_intervals "$TOPO_DIR/roam-iperf.json" 5) || status=$?
    echo "endpoint now $ep; $out"
    ((status == 0)) && [[ $ep == "$new_ip:$new_port" ]]
}

# replays: transport messages the peer sent are sent again; wgdp must drop every
# one of them as a replay.
replays() {
    local before after out status=0
    before=$(drops "$(scrape)" decrypt replay)
    ip netns exec "$NS_PEER" ping -n -q -c 400 -i 0.005 "$LAN_IN4" >/dev/null 2>&1 &
    local pinger=$!
    out=$(ip netns exec "$NS_PEER" "$PROBE_BIN" replay peer0 "$GW_PORT" 300 10 2>&1) || status=$?
    wait "$pinger" || true
    ((status == 0)) || { echo "$out"; return 1; }
    local replayed=${out##*replayed }
    # The worker counts each replay as it drops it: wait until all are counted.
    topo_wait 5 "the replays to be counted" replay_drops_at_least $((${before:-0} + replayed)) >/dev/null 2>&1 || true
    after=$(drops "$(scrape)" decrypt replay)
    echo "$out; decrypt.replay ${before:-?} -> ${after:-?}"
    [[ -n $before && -n $after ]] && ((after - before == replayed))
}

replay_drops_at_least() {
    local n
    n=$(drops "$(scrape)" decrypt replay)
    [[ -n $n ]] && ((n >= $1))
}

# flood SECONDS: initiations with a valid mac1 from 150 spoofed sources while a fresh
# peer makes its handshake; wgdp must answer with cookies and let the peer in.
flood() {
    local out ping_out status=0 text
    ip netns exec "$NS_PEER" "$PROBE_BIN" flood "$GW_PUB" "$GW_OUT4:$GW_PORT" 198.19.0 "$1" \
        >"$TOPO_DIR/flood.out" 2>&1 &
    local flooder=$!
    sleep 2
    ping_out=$(ip netns exec "$NS_PEER" ping -n -c 1 -w $(($1 + 10)) "$LAN_IN4" 2>&1) || status=$?
    wait "$flooder" || true
    out=$(<"$TOPO_DIR/flood.out")
    text=$(scrape)
    echo "$out; peer: $(ping_summary "$ping_out"); cookie replies $(event "$text" cookie_replies_sent)," \
        "queue drops $(awk 'index($0, "wgdp_control_drops_total{reason=\"handshake_queue_full\"}") == 1 { print $NF }' <<<"$text"), handled under load $(event "$text" under_load)," \
        "handshake errors $(awk 'index($0, "wgdp_control_handshake_errors_total{") == 1 { s += $NF } END { print s + 0 }' <<<"$text")"
    ((status == 0)) && (($(event "$text" cookie_replies_sent) > 0))
}

scenario_hardening() {
    GW_REKEY=10
    scenario_begin "$1 hardening" "$1" 4
    check "LAN->peer IPv4 ping starts handshake" ping_first "$NS_LAN" "$PEER_IN4" || true
    check "rekeys every 10 s under iperf3" rekeys_under_iperf 35 || true
    check "replayed transport messages dropped" replays || true
    check "the peer roams mid-stream" roam || true
    scenario_end
    GW_REKEY=
    scenario_begin "$1 flood" "$1" 4
    check "a handshake through a flood of initiations" flood 10 || true
    check "traffic after the flood" ping_check "$NS_PEER" "$LAN_IN4" || true
    scenario_end
}

scenario_ipv6_outer() {
    scenario_begin "$1 ipv6-outer" "$1" 6
    check "peer->LAN IPv6 ping starts handshake" ping_first "$NS_PEER" "$LAN_IN6" || true
    check "handshake made over IPv6" handshake_done || true
    check "ping IPv4 peer->LAN" ping_check "$NS_PEER" "$LAN_IN4" || true
    check "ping IPv4 LAN->peer" ping_check "$NS_LAN" "$PEER_IN4" || true
    check "ping IPv6 LAN->peer" ping_check "$NS_LAN" "$PEER_IN6" || true
    iperf_step "iperf3 TCP IPv4 peer->LAN" "$LAN_IN4"
    iperf_step "iperf3 TCP IPv6 LAN->peer" "$LAN_IN6" -R
    scenario_end
}

# print_throughput: iperf3 rates of "wgdp-first" (default offloads) next to
# those of "offloads-off", per driver.
print_throughput() {
    local row scenario name result detail driver check on off
    declare -A rate=()
    local -a checks=()
    for row in "${RESULTS[@]}"; do
        IFS=$'\t' read -r scenario name result detail <<<"$row"
        [[ $name == "iperf3 TCP"* && $result == PASS ]] || continue
        [[ $scenario == *" wgdp-first" || $scenario == *" offloads-off" ]] || continue
        rate["$scenario|$name"]=${detail%% Mbit/s*}
        [[ " ${checks[*]} " == *" ${name// /_} "* ]] || checks+=("${name// /_}")
    done
    ((${#rate[@]} > 0)) || return 0
    echo
    echo "iperf3 through $TOPO_GATEWAY, Mbit/s: veths with the kernel's default offloads | all offloads off"
    printf '%-10s  %-34s  %10s  %10s\n' DRIVER CHECK "OFFLOADS" "NO OFFLOAD"
    for driver in "${DRIVERS[@]}"; do
        for name in "${checks[@]}"; do
            name=${name//_/ }
            on=${rate["$driver wgdp-first|$name"]:-}
            off=${rate["$driver offloads-off|$name"]:-}
            [[ -n $on || -n $off ]] || continue
            printf '%-10s  %-34s  %10s  %10s\n' "$driver" "$name" "${on:--}" "${off:--}"
        done
    done
}

print_summary() {
    local row scenario name result detail
    print_throughput
    echo
    echo "wgdp end-to-end results (run $RUN_ID, gateway $TOPO_GATEWAY, $((SECONDS - START)) s)"
    printf '%-20s  %-38s  %-6s  %s\n' SCENARIO CHECK RESULT DETAIL
    for row in "${RESULTS[@]}"; do
        IFS=$'\t' read -r scenario name result detail <<<"$row"
        printf '%-20s  %-38s  %-6s  %s\n' "$scenario" "$name" "$result" "$detail"
    done
    if [[ -n $KEPT_LOGS ]]; then
        echo "logs: $KEPT_LOGS"
    fi
    echo "e2e: $PASSED passed, $FAILED failed, $SKIPPED skipped"
}

# --- Main ----------------------------------------------------------------

topo_require_root
topo_require_tools
gw_binary
if [[ $TOPO_GATEWAY == wgdp ]] && (($(nproc) < 2)); then
    topo_die "wgdp's configuration here needs two CPUs (lcore 0 for control, 1 for the worker)"
fi
# Names the kept logs (target/e2e-logs/RUN_ID); each scenario's network has an id
# of its own.
RUN_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
START=$SECONDS

# wanted NAME: the scenario is to run (all do without --only).
wanted() {
    ((${#ONLY[@]} == 0)) || [[ " ${ONLY[*]} " == *" $1 "* ]]
}

for driver in "${DRIVERS[@]}"; do
    wanted wgdp-first && scenario_wgdp_first "$driver"
    wanted offloads-off && scenario_wgdp_first "$driver" off
    wanted peer-first && scenario_peer_first "$driver"
done
wanted ipv6-outer && scenario_ipv6_outer "${DRIVERS[0]}"
# wgdp's own features, which the reference gateway does not have.
if [[ $TOPO_GATEWAY == wgdp ]]; then
    wanted cryptodev && scenario_cryptodev "${DRIVERS[0]}"
    wanted operations && scenario_operations "${DRIVERS[0]}"
    wanted hardening && scenario_hardening "${DRIVERS[0]}"
    wanted cluster && scenario_cluster "${DRIVERS[0]}"
fi

print_summary
((FAILED == 0))
