#!/usr/bin/env bash
#
# The wgdp demo: a wireguard-go peer, wgdp and a LAN host, each in its own
# network namespace (drawn in netns.sh). The peer pings the LAN host through
# the tunnel, the LAN host pings the peer back over IPv6, and iperf3 measures
# TCP throughput from the peer through wgdp to the LAN host. Everything is
# removed at the end, also after a failure or Ctrl-C.
#
# usage: scripts/demo.sh [--driver af_xdp|af_packet] [--seconds N]
#                        [--gateway wgdp|wireguard-go]
#   --driver   the DPDK driver of wgdp's ports (default af_xdp)
#   --seconds  length of the iperf3 run (default 5)
#   --gateway  wireguard-go shows the same with wireguard-go as the gateway,
#              for comparison
# Needs root, the tools that scripts/setup.sh installs, and a release build
# of wgdp (make build).

set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=netns.sh
source "$(dirname "${BASH_SOURCE[0]}")/netns.sh"

DRIVER=af_xdp
IPERF_SECONDS=5

usage() {
    sed -n 's/^# \{0,1\}//; /^usage:/,/^of wgdp/p' "${BASH_SOURCE[0]}"
}

while (($#)); do
    case $1 in
    --driver) DRIVER=${2:?--driver needs a value} && shift 2 ;;
    --seconds) IPERF_SECONDS=${2:?--seconds needs a value} && shift 2 ;;
    --gateway) TOPO_GATEWAY=${2:?--gateway needs a value} && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && exit 2 ;;
    esac
done
[[ $DRIVER == af_xdp || $DRIVER == af_packet ]] || topo_die "--driver is af_xdp or af_packet"
[[ $IPERF_SECONDS =~ ^[1-9][0-9]*$ ]] || topo_die "--seconds takes a positive number"
[[ $TOPO_GATEWAY == wgdp || $TOPO_GATEWAY == wireguard-go ]] || topo_die "--gateway is wgdp or wireguard-go"

step() {
    if [[ -t 1 ]]; then
        printf '\n\033[1m== %s\033[0m\n' "$*"
    else
        printf '\n== %s\n' "$*"
    fi
}

# demo_fail MESSAGE: says what did not work and shows the end of the
# gateway's log.
demo_fail() {
    local log
    echo
    echo "demo failed: $*"
    for log in "$(topo_log_path wgdp)" "$(topo_log_path wireguard-go-gateway)"; do
        if [[ -f $log ]]; then
            echo "----- last 40 lines of ${log##*/}"
            tail -n 40 "$log"
        fi
    done
    exit 1
}

topo_require_root
topo_require_tools
gw_binary
if [[ $TOPO_GATEWAY == wgdp ]] && (($(nproc) < 2)); then
    topo_die "the demo runs wgdp on two CPUs (lcore 0 for control, 1 for the worker)"
fi
topo_init
topo_trap
TOPO_TAG=demo
topo_create
lan_start
peer_start 4
gw_start "$DRIVER" 4

step "Network"
cat <<EOF
  peer   $NS_PEER: wireguard-go, tunnel address $PEER_IN4 and $PEER_IN6
  wgdp   $NS_GW: outside $GW_OUT4 (net_${DRIVER}0 on out0), inside $GW_IN4 (net_${DRIVER}1 on in0)
  LAN    $NS_LAN: $LAN_IN4 and $LAN_IN6, default route via wgdp
EOF
[[ $TOPO_GATEWAY == wgdp ]] || echo "  (the gateway is wireguard-go with kernel forwarding, not wgdp)"

gw_wait_ready 30 || demo_fail "the gateway did not start"

step "Handshake: the peer's first packet starts it"
ip netns exec "$NS_PEER" ping -n -q -c 1 -w 10 "$LAN_IN4" >/dev/null || demo_fail "no reply through the tunnel within 10 s"
ip netns exec "$NS_PEER" wg show "$PEER_WG" | sed -n 's/^ *\(latest handshake\|transfer\|endpoint\): /  \1: /p'

step "ping from the peer through the tunnel to the LAN host"
ip netns exec "$NS_PEER" ping -n -c 3 "$LAN_IN4" || demo_fail "ping from the peer to $LAN_IN4"

step "ping from the LAN host back to the peer, IPv6"
ip netns exec "$NS_LAN" ping -n -c 3 "$PEER_IN6" || demo_fail "ping from the LAN host to $PEER_IN6"

step "iperf3: TCP from the peer through the tunnel to the LAN host, $IPERF_SECONDS s"
out=$(ip netns exec "$NS_PEER" timeout $((IPERF_SECONDS + 20)) \
    iperf3 -c "$LAN_IN4" -p "$IPERF_PORT" -t "$IPERF_SECONDS" -f m --connect-timeout 3000 2>&1) ||
    demo_fail "iperf3: $(tail -n 1 <<<"$out")"
echo "$out"
rate=$(awk '$NF == "receiver" { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") r = $(i - 1) } END { print r }' <<<"$out")
[[ -n $rate ]] || demo_fail "iperf3 reported no receiver rate"

gw_stop || demo_fail "the gateway did not stop cleanly on SIGTERM"
# Torn down before the figure, so that the figure ends the output.
topo_destroy

if [[ $TOPO_GATEWAY == wgdp ]]; then
    label="wgdp ($DRIVER)"
else
    label="wireguard-go (reference)"
fi
line="  Throughput through $label, TCP peer -> LAN, $IPERF_SECONDS s: $rate Mbit/s  "
rule=$(printf '%*s' "${#line}" '' | tr ' ' '=')
printf '\n%s\n%s\n%s\n\n' "$rule" "$line" "$rule"
