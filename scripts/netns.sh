#!/usr/bin/env bash
# shellcheck shell=bash
#
# The test network of wgdp's end-to-end tests and demo: three network
# namespaces joined by two veth pairs.
#
#   [wgdp-peer-ID]            [wgdp-gw-ID]                            [wgdp-lan-ID]
#   wireguard-go wgpID        wgdp; DPDK owns out0 and in0            iperf3 -s
#   198.18.99.2/32
#   2001:2:0:99::2/128
#   peer0 ------------------- out0               in0 ----------------- lan0
#   198.19.0.1/24             198.19.0.2/24      198.18.2.1/24        198.18.2.2/24
#   2001:2:0:1::1/64          2001:2:0:1::2/64   2001:2:0:2::1/64     2001:2:0:2::2/64
#                             (wgdp's addresses, none in the kernel)
#
# Only the benchmarking ranges 198.18.0.0/15 (RFC 2544) and 2001:2::/48
# (RFC 5180) are used. Nothing outside the three namespaces is changed: the
# veth pairs are created inside them, so no interface, address or route of the
# namespace the script runs in is touched. Every name carries a random run id,
# so parallel runs and leftovers of a killed run never clash.
#
# Sourced by e2e.sh and demo.sh, which get the topo_*, peer_*, lan_* and gw_*
# functions below. Run directly, it brings the network up and leaves it
# running so that each step can be tried by hand:
#
#   scripts/netns.sh up [--driver af_xdp|af_packet] [--outer 4|6]
#                       [--gateway none|wgdp|wireguard-go] [--offloads on|off]
#   scripts/netns.sh down ID
#   scripts/netns.sh list
#
# Contract of the library:
# - topo_init must be called first; it fixes every name from the run id.
# - topo_trap tears everything down on EXIT, INT and TERM, also after a failed
#   step. Teardown ends, by PID, the processes this run started and whatever
#   else runs inside this run's namespaces, deletes the namespaces, and
#   removes this run's wireguard-go sockets and DPDK runtime directory.
# - Helpers that wait always have a deadline; none waits forever.
# - The gateway under test is $TOPO_GATEWAY: `wgdp` (the default), or
#   `wireguard-go` with kernel forwarding, which checks the harness itself
#   against a known-good WireGuard implementation.

# --- Addresses and ports -------------------------------------------------

readonly PEER_OUT4=198.19.0.1 GW_OUT4=198.19.0.2 OUT_PLEN4=24
readonly PEER_OUT6=2001:2:0:1::1 GW_OUT6=2001:2:0:1::2 OUT_PLEN6=64
readonly GW_IN4=198.18.2.1 LAN_IN4=198.18.2.2 IN_NET4=198.18.2.0/24
readonly GW_IN6=2001:2:0:2::1 LAN_IN6=2001:2:0:2::2 IN_NET6=2001:2:0:2::/64
readonly PEER_IN4=198.18.99.2 PEER_IN6=2001:2:0:99::2
# A second peer, added and removed at run time by the operations tests; it
# shares the first peer's namespace and outside address.
readonly PEER2_IN4=198.18.98.2 PEER2_PORT=51822 PEER2_TABLE=102
readonly GW_PORT=51820 PEER_PORT=51821 IPERF_PORT=5201 CTL_PORT=5202

# The largest inner packet the tunnel carries (wgdp's wireguard.mtu and the
# peer's interface MTU).
readonly TUNNEL_MTU=1420
# MTU of the LAN link: Ethernet's 1500, above the tunnel MTU, so the LAN host
# learns the path MTU from wgdp's ICMP too-big answers (or has its packets
# fragmented when DF is clear), as on a real network.
LAN_MTU=${WGDP_LAN_MTU:-1500}

# Where wireguard-go keeps its UAPI sockets, whatever the network namespace.
readonly WG_RUN_DIR=/var/run/wireguard

# Run by `sh -c` in front of wgdp inside the gateway namespace. `ip netns exec`
# mounts a fresh /sys, which hides the bpffs that libxdp pins its XDP
# dispatcher in; a bpffs mounted there stays private to wgdp's mount
# namespace. Root needs no memlock limit when it holds CAP_IPC_LOCK, so a
# refused `ulimit -l` does not matter.
# shellcheck disable=SC2016 # "$@" is for the inner shell
readonly GW_PRELUDE='mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null; ulimit -l unlimited 2>/dev/null; exec "$@"'

TOPO_GATEWAY=${TOPO_GATEWAY:-wgdp}
# on: the kernel's default offloads on every veth; off: none (topo_create).
TOPO_OFFLOADS=${TOPO_OFFLOADS:-on}
TOPO_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
declare -A TOPO_PID=()

# --- Logging and small helpers -------------------------------------------

topo_log() {
    printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "${TOPO_ID:-netns}" "$*" >&2
}

topo_die() {
    topo_log "error: $*"
    exit 1
}

topo_require_root() {
    [[ $EUID -eq 0 ]] || topo_die "network namespaces and DPDK need root; run with sudo"
}

topo_require_tools() {
    local tool missing=()
    for tool in ip wg wireguard-go iperf3 ping ethtool ss sysctl timeout mountpoint setsid \
        curl python3 promtool dpdk-telemetry.py; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || topo_die "missing: ${missing[*]}; run scripts/setup.sh (or make deps) first"
}

# topo_wait SECONDS WHAT CMD...: runs CMD every 0.2 s until it succeeds; fails
# after SECONDS.
topo_wait() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
        if ((SECONDS >= deadline)); then
            topo_log "timed out waiting for $what"
            return 1
        fi
        sleep 0.2
    done
}

# --- Processes -----------------------------------------------------------

# pid_alive PID: true while PID runs; a zombie counts as gone.
pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# pid_end PID SECONDS: SIGTERM, then SIGKILL if still running after SECONDS.
pid_end() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    topo_log "pid $pid ignored SIGTERM for $2 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# topo_spawn NAME NS LOG CMD...: runs CMD in namespace NS in the background,
# output to LOG. CMD gets a session of its own, so that a Ctrl-C at the
# terminal reaches the script, which stops it, and not CMD directly. Neither
# setsid (not a process group leader here, so it does not fork) nor
# `ip netns exec` forks: $! is CMD's own PID.
topo_spawn() {
    local name=$1 ns=$2 log=$3
    shift 3
    setsid ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
    TOPO_PID[$name]=$!
}

topo_running() {
    [[ -n ${TOPO_PID[$1]:-} ]] && pid_alive "${TOPO_PID[$1]}"
}

# topo_stop NAME [SECONDS]: ends a process started by topo_spawn; returns its
# exit status (143 for an unhandled SIGTERM, 137 if it had to be killed).
topo_stop() {
    local name=$1 pid=${TOPO_PID[$1]:-} status=0
    [[ -n $pid ]] || return 0
    unset "TOPO_PID[$name]"
    pid_end "$pid" "${2:-10}"
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

# --- The network ---------------------------------------------------------

# topo_init [ID]: fixes the names of this run; a new random id by default.
topo_init() {
    TOPO_ID=${1:-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
    [[ $TOPO_ID =~ ^[0-9a-f]{6}$ ]] || topo_die "a run id is 6 hex digits, got '$TOPO_ID'"
    NS_PEER=wgdp-peer-$TOPO_ID
    NS_GW=wgdp-gw-$TOPO_ID
    NS_LAN=wgdp-lan-$TOPO_ID
    # Interface names have at most 15 characters.
    PEER_WG=wgp$TOPO_ID
    PEER2_WG=wgq$TOPO_ID
    # wgdp's wg tool socket (/var/run/wireguard/NAME.sock) and metrics listener
    # (in the gateway's namespace).
    GW_UAPI=wgu$TOPO_ID
    GW_METRICS=127.0.0.1:9586
    REF_WG=wgg$TOPO_ID
    EAL_PREFIX=wgdp-e2e-$TOPO_ID
    # wgdp's control port, a TAP in the gateway's namespace.
    GW_TAP=wgt$TOPO_ID
    TOPO_DIR=${TMPDIR:-/tmp}/wgdp-e2e-$TOPO_ID
    TOPO_LOGS=$TOPO_DIR/logs
    TOPO_TAG=setup
}

topo_log_path() {
    echo "$TOPO_LOGS/$TOPO_TAG.$1.log"
}

topo_trap() {
    trap topo_destroy EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# topo_create: the namespaces, veth pairs, addresses and keys.
topo_create() {
    mkdir -m 0700 "$TOPO_DIR" || topo_die "$TOPO_DIR exists: is run $TOPO_ID still up?"
    TOPO_OWNED=1
    mkdir "$TOPO_LOGS"
    topo_log "creating namespaces $NS_PEER, $NS_GW, $NS_LAN"

    local ns
    for ns in "$NS_PEER" "$NS_GW" "$NS_LAN"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # One queue each: AF_XDP binds to queue 0, and veth delivers a packet to
    # the receive queue numbered like the sender's transmit queue.
    ip -n "$NS_PEER" link add peer0 numtxqueues 1 numrxqueues 1 type veth \
        peer name out0 numtxqueues 1 numrxqueues 1 netns "$NS_GW"
    ip -n "$NS_LAN" link add lan0 numtxqueues 1 numrxqueues 1 type veth \
        peer name in0 numtxqueues 1 numrxqueues 1 netns "$NS_GW"

    # wgdp owns out0 and in0: no kernel addresses, and no IPv6 so that the
    # kernel sends no router solicitations or DAD probes of its own.
    ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.out0.disable_ipv6=1 net.ipv6.conf.in0.disable_ipv6=1

    # Every veth keeps the kernel's default offloads, as on any container
    # host: the LAN host and the peer hand over TCP/UDP checksums left to the
    # "card" and, where the link allows, TSO/GSO super-packets, and wgdp must
    # finish both (docs/architecture.md, "What a host hands the ports").
    # TOPO_OFFLOADS=off turns them off on all four ends instead, as a physical
    # NIC behaves: every frame complete, and rx off makes the kernels verify
    # the checksums that wgdp writes.
    case $TOPO_OFFLOADS in
    on) ;;
    off)
        topo_offloads_off "$NS_PEER" peer0
        topo_offloads_off "$NS_GW" out0
        topo_offloads_off "$NS_GW" in0
        topo_offloads_off "$NS_LAN" lan0
        ;;
    *) topo_die "TOPO_OFFLOADS is on or off, got '$TOPO_OFFLOADS'" ;;
    esac

    ip -n "$NS_PEER" addr add "$PEER_OUT4/$OUT_PLEN4" dev peer0
    ip -n "$NS_PEER" addr add "$PEER_OUT6/$OUT_PLEN6" dev peer0 nodad
    ip -n "$NS_PEER" link set peer0 up

    ip -n "$NS_GW" link set out0 up
    ip -n "$NS_GW" link set in0 mtu "$LAN_MTU" up

    ip -n "$NS_LAN" addr add "$LAN_IN4/24" dev lan0
    ip -n "$NS_LAN" addr add "$LAN_IN6/64" dev lan0 nodad
    ip -n "$NS_LAN" link set lan0 mtu "$LAN_MTU" up
    ip -n "$NS_LAN" route add default via "$GW_IN4"
    ip -n "$NS_LAN" -6 route add default via "$GW_IN6"

    (
        umask 077
        wg genkey >"$TOPO_DIR/gateway.key"
        wg genkey >"$TOPO_DIR/peer.key"
        wg genkey >"$TOPO_DIR/peer2.key"
    )
    GW_PUB=$(wg pubkey <"$TOPO_DIR/gateway.key")
    PEER_PUB=$(wg pubkey <"$TOPO_DIR/peer.key")
    PEER2_PUB=$(wg pubkey <"$TOPO_DIR/peer2.key")
}

topo_offloads_off() {
    ip netns exec "$1" ethtool -K "$2" rx off tx off tso off gso off gro off >/dev/null
}

# topo_destroy: ends this run's processes and removes its namespaces, sockets
# and files. Safe to call more than once and after a partial topo_create; does
# nothing unless this shell created the run (topo_create) or took it over
# (netns.sh down), so that a clash of run ids never removes another run.
topo_destroy() {
    local name ns pid
    trap - EXIT INT TERM
    [[ -n ${TOPO_OWNED:-} ]] || return 0
    TOPO_OWNED=
    for name in "${!TOPO_PID[@]}"; do
        topo_stop "$name" 5 || true
    done
    # Whatever still runs inside this run's namespaces belongs to this run:
    # started by `netns.sh up` from another shell, or by hand in the
    # namespace. It would keep the namespace's interfaces alive.
    for ns in "$NS_PEER" "$NS_GW" "$NS_LAN"; do
        if [[ -e /run/netns/$ns ]]; then
            for pid in $(ip netns pids "$ns"); do
                pid_end "$pid" 5
            done
            ip netns delete "$ns"
        fi
    done
    rm -f "$WG_RUN_DIR/$PEER_WG.sock" "$WG_RUN_DIR/$PEER2_WG.sock" "$WG_RUN_DIR/$REF_WG.sock" \
        "$WG_RUN_DIR/$GW_UAPI.sock"
    rm -rf "/var/run/dpdk/$EAL_PREFIX"
    if [[ -n ${TOPO_KEEP_LOGS:-} && -d $TOPO_LOGS ]]; then
        mkdir -p "$TOPO_KEEP_LOGS"
        cp -r "$TOPO_LOGS/." "$TOPO_KEEP_LOGS/"
        topo_log "logs kept in $TOPO_KEEP_LOGS"
    fi
    rm -rf "$TOPO_DIR"
    topo_log "torn down"
}

# neigh_resolved NS DEV ADDR: probes ADDR once and tells whether it answered
# ARP or neighbour discovery. Only the resolution matters, not the echo reply.
neigh_resolved() {
    local entry
    ip netns exec "$1" ping -n -c 1 -W 1 "$3" >/dev/null 2>&1 || true
    entry=$(ip -n "$1" neigh show "$3" dev "$2")
    [[ $entry == *lladdr* ]]
}

# --- The remote peer: wireguard-go ---------------------------------------

# peer_start OUTER: a fresh wireguard-go peer that has never made a handshake
# and sends no keepalives. OUTER (4 or 6) is the family of the gateway's
# endpoint.
peer_start() {
    local endpoint="$GW_OUT4:$GW_PORT"
    [[ $1 == 6 ]] && endpoint="[$GW_OUT6]:$GW_PORT"
    topo_wait 5 "the previous $PEER_WG to go away" topo_link_absent "$NS_PEER" "$PEER_WG"
    topo_spawn peer "$NS_PEER" "$(topo_log_path wireguard-go)" \
        env LOG_LEVEL=verbose WG_PROCESS_FOREGROUND=1 wireguard-go -f "$PEER_WG"
    topo_wait 10 "wireguard-go's socket $WG_RUN_DIR/$PEER_WG.sock" test -S "$WG_RUN_DIR/$PEER_WG.sock"
    ip netns exec "$NS_PEER" wg set "$PEER_WG" private-key "$TOPO_DIR/peer.key" \
        listen-port "$PEER_PORT" \
        peer "$GW_PUB" endpoint "$endpoint" allowed-ips "$IN_NET4,$IN_NET6"
    ip -n "$NS_PEER" addr add "$PEER_IN4/32" dev "$PEER_WG"
    ip -n "$NS_PEER" addr add "$PEER_IN6/128" dev "$PEER_WG" nodad
    ip -n "$NS_PEER" link set "$PEER_WG" mtu "$TUNNEL_MTU" up
    ip -n "$NS_PEER" route add "$IN_NET4" dev "$PEER_WG"
    ip -n "$NS_PEER" -6 route add "$IN_NET6" dev "$PEER_WG"
}

peer_stop() {
    topo_stop peer 5 || true
}

# peer2_start: the second peer, a wireguard-go of its own in the peer's
# namespace. Packets from its inner address take its tunnel (a rule and a
# table of their own), everything else the first peer's.
peer2_start() {
    topo_wait 5 "the previous $PEER2_WG to go away" topo_link_absent "$NS_PEER" "$PEER2_WG"
    topo_spawn peer2 "$NS_PEER" "$(topo_log_path wireguard-go-2)" \
        env LOG_LEVEL=verbose WG_PROCESS_FOREGROUND=1 wireguard-go -f "$PEER2_WG"
    topo_wait 10 "wireguard-go's socket $WG_RUN_DIR/$PEER2_WG.sock" test -S "$WG_RUN_DIR/$PEER2_WG.sock"
    ip netns exec "$NS_PEER" wg set "$PEER2_WG" private-key "$TOPO_DIR/peer2.key" \
        listen-port "$PEER2_PORT" \
        peer "$GW_PUB" endpoint "$GW_OUT4:$GW_PORT" allowed-ips "$IN_NET4"
    ip -n "$NS_PEER" addr add "$PEER2_IN4/32" dev "$PEER2_WG"
    ip -n "$NS_PEER" link set "$PEER2_WG" mtu "$TUNNEL_MTU" up
    ip -n "$NS_PEER" route add "$IN_NET4" dev "$PEER2_WG" table "$PEER2_TABLE"
    ip -n "$NS_PEER" rule add from "$PEER2_IN4" lookup "$PEER2_TABLE"
}

peer2_stop() {
    ip -n "$NS_PEER" rule del from "$PEER2_IN4" lookup "$PEER2_TABLE" 2>/dev/null || true
    topo_stop peer2 5 || true
}

topo_link_absent() {
    ! ip -n "$1" link show "$2" >/dev/null 2>&1
}

# peer_latest_handshake: the peer's last handshake with the gateway, in
# seconds since the epoch; 0 if there was none.
peer_latest_handshake() {
    local out
    out=$(ip netns exec "$NS_PEER" wg show "$PEER_WG" latest-handshakes) || return 1
    out=${out##*[[:space:]]}
    echo "${out:-0}"
}

# --- The LAN host: an iperf3 server --------------------------------------

lan_start() {
    topo_spawn lan-iperf3 "$NS_LAN" "$(topo_log_path iperf3-server)" iperf3 -s -p "$IPERF_PORT"
    topo_wait 5 "the iperf3 server" lan_listening
}

lan_listening() {
    local out
    out=$(ip netns exec "$NS_LAN" ss -Hltn "sport = :$IPERF_PORT")
    [[ -n $out ]]
}

lan_stop() {
    topo_stop lan-iperf3 5 || true
}

# --- The gateway ---------------------------------------------------------

# gw_config DRIVER OUTER: writes wgdp's configuration for this run and prints
# its path. DRIVER is af_xdp or af_packet; OUTER the family of the peer's
# endpoint.
gw_config() {
    local driver=$1 outer=$2 cfg="$TOPO_DIR/wgdp-$1-ipv$2.yaml" endpoint memory hp_free hp_kb
    endpoint="$PEER_OUT4:$PEER_PORT"
    [[ $outer == 6 ]] && endpoint="[$PEER_OUT6]:$PEER_PORT"
    # In-memory mode takes hugepages without a hugetlbfs mount and leaves no
    # files behind. Without 256 MiB of free hugepages, fall back to plain
    # memory, which AF_XDP accepts too (--no-huge excludes --in-memory;
    # --no-shconf keeps the files away instead).
    hp_free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
    hp_kb=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)
    memory='"--in-memory"'
    if ((${hp_free:-0} * ${hp_kb:-0} < 256 * 1024)) || [[ -n ${WGDP_NO_HUGE:-} ]]; then
        memory='"--no-huge", "--no-shconf", "-m", "512"'
    fi
    cat >"$cfg" <<EOF
# wgdp configuration of end-to-end run $TOPO_ID, written by scripts/netns.sh.
dpdk:
  eal_args: ["--no-pci", "--file-prefix", "$EAL_PREFIX", $memory]
  lcores: { control: 0, workers: [1] }
ports:
  outside:
    device: "net_${driver}0,iface=out0"
    addresses: ["$GW_OUT4/$OUT_PLEN4", "$GW_OUT6/$OUT_PLEN6"]
    queues: 1
  inside:
    device: "net_${driver}1,iface=in0"
    addresses: ["$GW_IN4/24", "$GW_IN6/64"]
    queues: 1
wireguard:
  private_key_file: "$TOPO_DIR/gateway.key"
  listen_port: $GW_PORT
  mtu: $TUNNEL_MTU
${GW_REKEY:+  rekey_after_time: $GW_REKEY}
peers:
  - public_key: "$PEER_PUB"
    endpoint: "$endpoint"
    allowed_ips: ["$PEER_IN4/32", "$PEER_IN6/128"]
${GW_EXTRA_PEERS:-}
control_port:
  tap: "$GW_TAP"
uapi:
  name: "$GW_UAPI"
metrics:
  listen: "$GW_METRICS"
EOF
    if [[ -n ${GW_CRYPTO_DEVICE:-} ]]; then
        printf 'crypto:\n  backend: cryptodev\n  device: "%s"\n' "$GW_CRYPTO_DEVICE" >>"$cfg"
    fi
    echo "$cfg"
}

# gw_command CONFIG: the command line that runs wgdp in the gateway namespace.
gw_command() {
    printf "ip netns exec %s sh -c '%s' wgdp %q --config %q" "$NS_GW" "$GW_PRELUDE" "$WGDP_BIN" "$1"
}

# gw_start DRIVER OUTER: starts the gateway under test.
gw_start() {
    # Entries left from a previous gateway would make gw_ready pass early.
    ip -n "$NS_PEER" neigh flush dev peer0
    ip -n "$NS_LAN" neigh flush dev lan0
    case $TOPO_GATEWAY in
    wgdp)
        local cfg
        cfg=$(gw_config "$1" "$2")
        topo_log "starting wgdp ($1, IPv$2 outside): $cfg"
        topo_spawn gw "$NS_GW" "$(topo_log_path wgdp)" sh -c "$GW_PRELUDE" \
            wgdp env WGDP_LOG="${WGDP_LOG:-info}" "$WGDP_BIN" --config "$cfg" --pid-file "$TOPO_DIR/wgdp.pid"
        ;;
    wireguard-go) ref_start "$2" ;;
    *) topo_die "unknown gateway '$TOPO_GATEWAY' (wgdp or wireguard-go)" ;;
    esac
}

# gw_ready: the gateway answers ARP on both ports.
gw_ready() {
    neigh_resolved "$NS_PEER" peer0 "$GW_OUT4" && neigh_resolved "$NS_LAN" lan0 "$GW_IN4"
}

# gw_wait_ready SECONDS: waits for gw_ready; fails at once if the gateway
# exits.
gw_wait_ready() {
    local deadline=$((SECONDS + $1))
    until gw_ready; do
        if ! topo_running gw; then
            topo_log "the gateway exited before it answered ARP"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            topo_log "the gateway did not answer ARP on both ports within $1 s"
            return 1
        fi
        sleep 0.2
    done
}

# gw_stop: stops the gateway and returns its exit status.
gw_stop() {
    local status=0
    topo_stop gw 10 || status=$?
    if [[ $TOPO_GATEWAY == wireguard-go ]]; then
        ref_cleanup
    fi
    return "$status"
}

# ref_start OUTER: the reference gateway, wireguard-go plus kernel forwarding,
# on the same links and addresses that wgdp uses.
ref_start() {
    local endpoint="$PEER_OUT4:$PEER_PORT"
    [[ $1 == 6 ]] && endpoint="[$PEER_OUT6]:$PEER_PORT"
    topo_log "starting the reference gateway wireguard-go (IPv$1 outside)"
    ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.out0.disable_ipv6=0 net.ipv6.conf.in0.disable_ipv6=0 \
        net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    ip -n "$NS_GW" addr add "$GW_OUT4/$OUT_PLEN4" dev out0
    ip -n "$NS_GW" addr add "$GW_OUT6/$OUT_PLEN6" dev out0 nodad
    ip -n "$NS_GW" addr add "$GW_IN4/24" dev in0
    ip -n "$NS_GW" addr add "$GW_IN6/64" dev in0 nodad
    topo_wait 5 "the previous $REF_WG to go away" topo_link_absent "$NS_GW" "$REF_WG"
    topo_spawn gw "$NS_GW" "$(topo_log_path wireguard-go-gateway)" \
        env LOG_LEVEL=verbose WG_PROCESS_FOREGROUND=1 wireguard-go -f "$REF_WG"
    topo_wait 10 "wireguard-go's socket $WG_RUN_DIR/$REF_WG.sock" test -S "$WG_RUN_DIR/$REF_WG.sock"
    ip netns exec "$NS_GW" wg set "$REF_WG" private-key "$TOPO_DIR/gateway.key" \
        listen-port "$GW_PORT" \
        peer "$PEER_PUB" endpoint "$endpoint" allowed-ips "$PEER_IN4/32,$PEER_IN6/128"
    ip -n "$NS_GW" link set "$REF_WG" mtu "$TUNNEL_MTU" up
    ip -n "$NS_GW" route add "$PEER_IN4/32" dev "$REF_WG"
    ip -n "$NS_GW" -6 route add "$PEER_IN6/128" dev "$REF_WG"
}

ref_cleanup() {
    ip -n "$NS_GW" addr flush dev out0
    ip -n "$NS_GW" addr flush dev in0
    ip netns exec "$NS_GW" sysctl -qw net.ipv6.conf.out0.disable_ipv6=1 net.ipv6.conf.in0.disable_ipv6=1 \
        net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
}

# gw_binary: sets WGDP_BIN (the release build of this checkout unless given)
# and checks that it exists when wgdp is the gateway under test.
gw_binary() {
    WGDP_BIN=${WGDP_BIN:-$TOPO_REPO/target/release/wgdp}
    if [[ $TOPO_GATEWAY == wgdp && ! -x $WGDP_BIN ]]; then
        topo_die "$WGDP_BIN not found; build it first (make build)"
    fi
}

# --- Command line --------------------------------------------------------

netns_usage() {
    cat <<EOF
usage: $0 up [--driver af_xdp|af_packet] [--outer 4|6] [--gateway none|wgdp|wireguard-go]
             [--offloads on|off]
       $0 down ID
       $0 list

up    creates the namespaces, starts the wireguard-go peer and the LAN host's
      iperf3 server, writes wgdp's configuration, starts the gateway unless
      --gateway none (the default: run wgdp yourself with the printed
      command), and leaves everything running. Every veth keeps the kernel's
      default offloads unless --offloads off.
down  ends the processes of run ID and deletes its namespaces.
list  prints the ids of runs whose namespaces still exist.
EOF
}

netns_up() {
    local driver=af_xdp outer=4 cfg
    TOPO_GATEWAY=none
    while (($#)); do
        case $1 in
        --driver) driver=${2:?--driver needs a value} && shift 2 ;;
        --outer) outer=${2:?--outer needs a value} && shift 2 ;;
        --gateway) TOPO_GATEWAY=${2:?--gateway needs a value} && shift 2 ;;
        --offloads) TOPO_OFFLOADS=${2:?--offloads needs a value} && shift 2 ;;
        *) netns_usage >&2 && exit 2 ;;
        esac
    done
    [[ $driver == af_xdp || $driver == af_packet ]] || topo_die "--driver is af_xdp or af_packet"
    [[ $outer == 4 || $outer == 6 ]] || topo_die "--outer is 4 or 6"
    topo_require_root
    topo_require_tools
    topo_init
    gw_binary
    topo_trap
    topo_create
    lan_start
    peer_start "$outer"
    cfg=$(gw_config "$driver" "$outer")
    if [[ $TOPO_GATEWAY != none ]]; then
        gw_start "$driver" "$outer"
        gw_wait_ready 30 || topo_die "the gateway did not come up; see $TOPO_LOGS"
    fi
    trap - EXIT INT TERM
    cat <<EOF

run $TOPO_ID is up (logs in $TOPO_LOGS)
  wgdp config:  $cfg
  run wgdp:     $(gw_command "$cfg")
  ping:         ip netns exec $NS_PEER ping $LAN_IN4
                ip netns exec $NS_LAN ping $PEER_IN6
  iperf3:       ip netns exec $NS_PEER iperf3 -c $LAN_IN4 [-R]
  peer state:   ip netns exec $NS_PEER wg show $PEER_WG
  tear down:    $0 down $TOPO_ID
EOF
}

netns_down() {
    [[ $# -eq 1 ]] || { netns_usage >&2 && exit 2; }
    topo_require_root
    topo_init "$1"
    [[ -d $TOPO_DIR || -e /run/netns/$NS_GW ]] || topo_die "no run $1 here"
    TOPO_OWNED=1
    topo_destroy
}

netns_list() {
    local f
    for f in /run/netns/wgdp-gw-*; do
        [[ -e $f ]] && echo "${f##*-}"
    done
    return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
    up) shift && netns_up "$@" ;;
    down) shift && netns_down "$@" ;;
    list) netns_list ;;
    *) netns_usage >&2 && exit 2 ;;
    esac
fi
