# shellcheck shell=bash
#
# The "cluster" scenario of e2e.sh: two wgdp gateways behind one anycast
# address, with FRR (docs/scale-out.md; the FRR configurations are those of
# conf/cluster/, with debug logging of sessions and BFD added).
#
#   [p1..p6]  wireguard-go peers, endpoint 198.19.0.1:51820
#      |      198.19.1N.2/24 (N = 1..6), inner 198.18.100.N/32
#   [up]      upstream router: FRR, AS 65000, ECMP over the gateways,
#      |      fib_multipath_hash_policy 1 (UDP ports in the hash)
#      +-- ga 198.19.1.1/24 --- out0 198.19.1.2 + 198.19.0.1 [gwa] wgdp + FRR AS 65001
#      +-- gb 198.19.2.1/24 --- out0 198.19.2.2 + 198.19.0.1 [gwb] wgdp + FRR AS 65001
#   [in]      inside router: FRR, AS 65002
#      +-- ga 198.18.1.1/24 --- in0 198.18.1.2 [gwa]
#      +-- gb 198.18.2.1/24 --- in0 198.18.2.2 [gwb]
#      +-- lan0 198.18.20.1/24 --- lan0 198.18.20.2 [lan] the LAN host
#
# Sourced by e2e.sh after netns.sh; uses its process helpers (topo_spawn,
# topo_stop, pid_alive, topo_wait) and e2e.sh's record. Every namespace, FRR
# daemon and process of the scenario is made here and removed by
# cluster_destroy, which the scenario traps on EXIT, INT and TERM.

readonly CL_ANYCAST=198.19.0.1 CL_LAN=198.18.20.2 CL_TABLE=200
declare -A CL_OUT=([a]=198.19.1.2 [b]=198.19.2.2)
declare -A CL_UP=([a]=198.19.1.1 [b]=198.19.2.1)
declare -A CL_IN=([a]=198.18.1.2 [b]=198.18.2.2)
declare -A CL_INR=([a]=198.18.1.1 [b]=198.18.2.1)
# The failover bound docs/scale-out.md gives: BFD (1 s), the peer's new
# handshake after data without an answer (Keepalive-Timeout + Rekey-Timeout,
# 15 s, plus up to 1/3 s of jitter), the route's way to the inside router.
readonly CL_FAILOVER_BOUND=25
readonly FRR_DIR=/usr/lib/frr
CL_PEERS=()
declare -A CL_PORT=() CL_SERVED=()

cluster_init() {
    CL_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    CL_NS_UP=wgc-up-$CL_ID
    CL_NS_IN=wgc-in-$CL_ID
    CL_NS_LAN=wgc-lan-$CL_ID
    declare -gA CL_NS_GW=([a]=wgc-gwa-$CL_ID [b]=wgc-gwb-$CL_ID)
    CL_DIR=${TMPDIR:-/tmp}/wgdp-cluster-$CL_ID
    # The names netns.sh's helpers log and work under.
    TOPO_ID=$CL_ID
    TOPO_DIR=$CL_DIR
    TOPO_LOGS=$CL_DIR/logs
    TOPO_TAG=cluster
    CL_PEERS=()
    CL_PORT=()
    CL_SERVED=()
}

# cl_spawn NAME NS LOG CMD...: topo_spawn, and the PID kept for the final
# check that nothing is left.
cl_spawn() {
    topo_spawn "$@"
    CL_ALL_PIDS["$1.${TOPO_PID[$1]}"]=${TOPO_PID[$1]}
}

cl_ns_peer() {
    echo "wgc-p$1-$CL_ID"
}

cluster_namespaces() {
    local i
    echo "$CL_NS_UP" "$CL_NS_IN" "$CL_NS_LAN" "${CL_NS_GW[a]}" "${CL_NS_GW[b]}"
    for i in 1 2 3 4 5 6; do cl_ns_peer "$i"; done
}

# cl_link NS1 IF1 NS2 IF2: a veth pair of one queue each (AF_XDP binds to
# queue 0).
cl_link() {
    ip -n "$1" link add "$2" numtxqueues 1 numrxqueues 1 type veth \
        peer name "$4" numtxqueues 1 numrxqueues 1 netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

cluster_create() {
    local ns i g
    # FRR's daemons run as user frr and reach their directories through it.
    mkdir -m 0711 "$CL_DIR"
    CL_OWNED=1
    mkdir "$TOPO_LOGS"
    topo_log "creating the cluster's namespaces (run $CL_ID)"
    for ns in $(cluster_namespaces); do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    for g in a b; do
        cl_link "$CL_NS_UP" "g$g" "${CL_NS_GW[$g]}" out0
        cl_link "$CL_NS_IN" "g$g" "${CL_NS_GW[$g]}" in0
        ip netns exec "${CL_NS_GW[$g]}" sysctl -qw net.ipv6.conf.out0.disable_ipv6=1 net.ipv6.conf.in0.disable_ipv6=1
        ip -n "$CL_NS_UP" addr add "${CL_UP[$g]}/24" dev "g$g"
        ip -n "$CL_NS_IN" addr add "${CL_INR[$g]}/24" dev "g$g"
    done
    cl_link "$CL_NS_IN" lan0 "$CL_NS_LAN" lan0
    ip -n "$CL_NS_IN" addr add 198.18.20.1/24 dev lan0
    ip -n "$CL_NS_LAN" addr add "$CL_LAN/24" dev lan0
    ip -n "$CL_NS_LAN" route add default via 198.18.20.1
    for i in 1 2 3 4 5 6; do
        cl_link "$CL_NS_UP" "p$i" "$(cl_ns_peer "$i")" up0
        ip -n "$CL_NS_UP" addr add "198.19.1$i.1/24" dev "p$i"
        ip -n "$(cl_ns_peer "$i")" addr add "198.19.1$i.2/24" dev up0
        ip -n "$(cl_ns_peer "$i")" route add default via "198.19.1$i.1"
    done
    ip netns exec "$CL_NS_UP" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
    ip netns exec "$CL_NS_IN" sysctl -qw net.ipv4.ip_forward=1
    (
        umask 077
        wg genkey >"$CL_DIR/gateway.key"
        for i in 1 2 3 4 5 6; do wg genkey >"$CL_DIR/peer$i.key"; done
    )
    CL_GW_PUB=$(wg pubkey <"$CL_DIR/gateway.key")
}

# cluster_destroy: ends every process of the run (by PID), then whatever still
# runs in its namespaces, deletes them and the run's files.
cluster_destroy() {
    local name ns pid
    trap - EXIT INT TERM
    [[ -n ${CL_OWNED:-} ]] || return 0
    CL_OWNED=
    for name in "${!TOPO_PID[@]}"; do
        topo_stop "$name" 5 || true
    done
    for ns in $(cluster_namespaces); do
        if [[ -e /run/netns/$ns ]]; then
            for pid in $(ip netns pids "$ns"); do
                pid_end "$pid" 5
            done
            ip netns delete "$ns"
        fi
    done
    rm -f "$WG_RUN_DIR"/wgc*"$CL_ID".sock
    rm -rf /var/run/dpdk/wgdp-cl?-"$CL_ID"
    if [[ -n ${TOPO_KEEP_LOGS:-} && -d $TOPO_LOGS ]]; then
        mkdir -p "$TOPO_KEEP_LOGS"
        cp -r "$TOPO_LOGS/." "$TOPO_KEEP_LOGS/"
        topo_log "logs kept in $TOPO_KEEP_LOGS"
    fi
    rm -rf "$CL_DIR"
    topo_log "cluster torn down"
}

# --- FRR -----------------------------------------------------------------

# frr_start ROUTER NS: zebra, bfdd and bgpd of ROUTER (gw-a, gw-b, upstream,
# inside) in namespace NS, with conf/cluster/ROUTER's files; sockets, pid
# files and configuration in a directory of the run.
frr_start() {
    local r=$1 ns=$2 dir=$CL_DIR/frr-$1 d
    mkdir -p "$dir"
    cp "$TOPO_REPO/conf/cluster/$r/zebra.conf" "$TOPO_REPO/conf/cluster/$r/bfdd.conf" \
        "$TOPO_REPO/conf/cluster/$r/bgpd.conf" "$dir/"
    # The run's copies also log BGP sessions and BFD state changes, for the logs a
    # failed run keeps.
    printf 'debug bgp neighbor-events\n' >>"$dir/bgpd.conf"
    printf 'debug bfd peer\n' >>"$dir/bfdd.conf"
    chown -R frr:frr "$dir"
    chmod 0750 "$dir"
    for d in zebra bfdd bgpd; do
        local args=(-f "$dir/$d.conf" -i "$dir/$d.pid" -z "$dir/zserv.api" --vty_socket "$dir"
            -u frr -g frr -P 0 --log stdout)
        [[ $d == bfdd ]] && args+=(--bfdctl "$dir/bfdd.sock")
        cl_spawn "frr-$r-$d" "$ns" "$TOPO_LOGS/frr-$r-$d.log" "$FRR_DIR/$d" "${args[@]}"
        if [[ $d == zebra ]]; then
            topo_wait 10 "zebra of $r" test -S "$dir/zserv.api" || return 1
        fi
    done
}

frr_stop() {
    local d
    for d in bgpd bfdd zebra; do
        topo_stop "frr-$1-$d" 5 || true
    done
}

# vty ROUTER NS COMMAND: a vtysh command on ROUTER's daemons.
vty() {
    timeout 5 ip netns exec "$2" vtysh --vty_socket "$CL_DIR/frr-$1" -c "$3"
}

# --- The gateways --------------------------------------------------------

# cl_gw_config G DRIVER: gateway G's wgdp configuration, as
# conf/cluster/gw-G/wgdp.yaml with this run's keys, peers and names.
cl_gw_config() {
    local g=$1 driver=$2 cfg=$CL_DIR/wgdp-$1.yaml memory hp_free hp_kb i n
    [[ $g == a ]] && n=1 || n=2
    hp_free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
    hp_kb=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)
    memory='"--in-memory"'
    if ((${hp_free:-0} * ${hp_kb:-0} < 256 * 1024)) || [[ -n ${WGDP_NO_HUGE:-} ]]; then
        memory='"--no-huge", "--no-shconf", "-m", "256"'
    fi
    {
        cat <<EOF
# Gateway $g of cluster run $CL_ID, written by scripts/cluster.sh.
dpdk:
  eal_args: ["--no-pci", "--file-prefix", "wgdp-cl$g-$CL_ID", $memory]
  lcores: { control: 0, workers: [1] }
ports:
  outside:
    device: "net_${driver}0,iface=out0"
    # The anycast address first: the source of what wgdp sends to peers.
    addresses: ["$CL_ANYCAST/32", "${CL_OUT[$g]}/24"]
    gateway: ["${CL_UP[$g]}"]
    queues: 1
  inside:
    device: "net_${driver}1,iface=in0"
    addresses: ["${CL_IN[$g]}/24"]
    routes:
      - { prefix: "198.18.20.0/24", via: "${CL_INR[$g]}" }
    queues: 1
wireguard:
  private_key_file: "$CL_DIR/gateway.key"
  listen_port: 51820
  mtu: 1420
control_port:
  tap: "wgdp0"
  export:
    table: $CL_TABLE
    announce: ["$CL_ANYCAST"]
uapi:
  name: "wgc$g$CL_ID"
peers:
EOF
        for i in 1 2 3 4 5 6; do
            printf '  - public_key: "%s"\n    allowed_ips: ["198.18.100.%s/32"]\n' \
                "$(wg pubkey <"$CL_DIR/peer$i.key")" "$i"
        done
    } >"$cfg"
    echo "$cfg"
}

# cl_gw_start G DRIVER
cl_gw_start() {
    local cfg
    cfg=$(cl_gw_config "$1" "$2")
    "$WGDP_BIN" check --config "$cfg" >/dev/null || return 1
    cl_spawn "gw-$1" "${CL_NS_GW[$1]}" "$TOPO_LOGS/wgdp-$1.$((++CL_STARTS)).log" sh -c "$GW_PRELUDE" \
        wgdp env WGDP_LOG="${WGDP_LOG:-info}" "$WGDP_BIN" --config "$cfg" --pid-file "$CL_DIR/wgdp-$1.pid"
    CL_GW_LOG[$1]=$TOPO_LOGS/wgdp-$1.$CL_STARTS.log
    echo "wgdp of gateway $1 started ($2)"
}
CL_STARTS=0
declare -A CL_GW_LOG=()

# cl_gw_stop G: stops wgdp of gateway G; fails unless it exits 0 with every
# mbuf back.
cl_gw_stop() {
    local status=0
    topo_stop "gw-$1" 10 || status=$?
    if ((status != 0)); then
        echo "wgdp of gateway $1 exited with status $status"
        return 1
    fi
    if ! grep -q 'every mbuf is back in the pool' "${CL_GW_LOG[$1]}"; then
        echo "gateway $1 exited 0 but did not report every mbuf back"
        return 1
    fi
    echo "exit status 0, every mbuf back in the pool"
}

# The upstream router's next hops for the anycast address.
anycast_hops() {
    ip -n "$CL_NS_UP" route show "$CL_ANYCAST/32" | grep -o 'via [0-9.]*' | awk '{ print $2 }' | sort | tr '\n' ' '
}

# anycast_over HOPS: the upstream router routes the anycast address over
# exactly these gateways ("198.19.1.2 198.19.2.2 " or one of them).
anycast_over() {
    [[ $(anycast_hops) == "$1" ]]
}

# cl_converged: the anycast address over both gateways, and the upstream router's
# BGP sessions to both established with BFD up.
cl_converged() {
    anycast_over "${CL_OUT[a]} ${CL_OUT[b]} " &&
        [[ $(cl_upstream_sessions) == "a: BGP state = Established, BFD up; b: BGP state = Established, BFD up; " ]]
}

# cl_ecmp_up SECONDS: both gateways announce the anycast address, and their
# sessions with the upstream router are up, BFD included.
cl_ecmp_up() {
    local t0=$SECONDS
    if topo_wait "$1" "the anycast address over both gateways" cl_converged; then
        echo "upstream routes $CL_ANYCAST over ${CL_OUT[a]} and ${CL_OUT[b]} (BGP and BFD up) after $((SECONDS - t0)) s"
    else
        echo "upstream's next hops for $CL_ANYCAST: '$(anycast_hops)'; $(cl_upstream_sessions)"
        return 1
    fi
}

# --- The peers -----------------------------------------------------------

# cl_hop_for N PORT: the gateway (a or b) the upstream router's ECMP hash picks
# for peer N's tunnel from UDP port PORT.
cl_hop_for() {
    local out
    out=$(ip -n "$CL_NS_UP" route get "$CL_ANYCAST" from "198.19.1$1.2" iif "p$1" \
        ipproto udp sport "$2" dport 51820) || return 1
    case $out in
    *"via ${CL_OUT[a]} "*) echo a ;;
    *"via ${CL_OUT[b]} "*) echo b ;;
    *) return 1 ;;
    esac
}

# cl_port_for N G: a listen port for peer N whose flow the upstream router
# hashes to gateway G.
cl_port_for() {
    local port
    for ((port = 40000; port < 40200; port++)); do
        if [[ $(cl_hop_for "$1" "$port") == "$2" ]]; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# cl_peer_start N G: wireguard-go peer N, with a port that the upstream router
# hashes to gateway G.
cl_peer_start() {
    local n=$1 ns port
    ns=$(cl_ns_peer "$n")
    port=$(cl_port_for "$n" "$2") || {
        echo "no port of 40000..40199 hashes peer $n to gateway $2"
        return 1
    }
    CL_PORT[$n]=$port
    CL_PEERS+=("$n")
    cl_spawn "peer$n" "$ns" "$TOPO_LOGS/wireguard-go-$n.log" \
        env LOG_LEVEL=verbose WG_PROCESS_FOREGROUND=1 wireguard-go -f "wgc$n$CL_ID"
    topo_wait 10 "wireguard-go's socket of peer $n" test -S "$WG_RUN_DIR/wgc$n$CL_ID.sock" || return 1
    ip netns exec "$ns" wg set "wgc$n$CL_ID" private-key "$CL_DIR/peer$n.key" listen-port "$port" \
        peer "$CL_GW_PUB" endpoint "$CL_ANYCAST:51820" allowed-ips 198.18.20.0/24
    ip -n "$ns" addr add "198.18.100.$n/32" dev "wgc$n$CL_ID"
    ip -n "$ns" link set "wgc$n$CL_ID" mtu 1420 up
    ip -n "$ns" route add 198.18.20.0/24 dev "wgc$n$CL_ID"
    echo "peer $n from UDP port $port, hashed to gateway $2"
}

# cl_served_by N: the gateway (a or b) whose wgdp has a handshake with peer N.
cl_served_by() {
    local g pub out at=""
    pub=$(wg pubkey <"$CL_DIR/peer$1.key")
    for g in a b; do
        topo_running "gw-$g" || continue
        out=$(wg show "wgc$g$CL_ID" latest-handshakes 2>/dev/null | awk -v k="$pub" '$1 == k { print $2 }')
        if [[ -n $out && $out != 0 ]]; then
            at+=$g
        fi
    done
    echo "$at"
}

# cl_inside_hop N: the gateway (a or b) the inside router sends peer N's
# traffic to, or nothing.
cl_inside_hop() {
    local out
    out=$(ip -n "$CL_NS_IN" route show "198.18.100.$1/32")
    case $out in
    *"via ${CL_IN[a]} "*) echo a ;;
    *"via ${CL_IN[b]} "*) echo b ;;
    esac
}

cl_route_is() {
    [[ $(cl_inside_hop "$1") == "$2" ]]
}

# cl_reaches N G: peer N reaches the LAN host and back, served by gateway G;
# the inside router has its route via G.
cl_reaches() {
    local n=$1 g=$2 ns out
    ns=$(cl_ns_peer "$n")
    out=$(ip netns exec "$ns" ping -n -c 1 -w 10 "$CL_LAN" 2>&1) || {
        echo "peer $n -> LAN: $(ping_summary "$out")"
        return 1
    }
    if ! topo_wait 10 "the inside route of peer $n" cl_route_is "$n" "$g"; then
        echo "peer $n: the inside router's route is via '$(cl_inside_hop "$n")', not gateway $g"
        return 1
    fi
    out=$(ip netns exec "$CL_NS_LAN" ping -n -q -c 3 -i 0.2 -w 5 "198.18.100.$n" 2>&1) || {
        echo "LAN -> peer $n: $(ping_summary "$out")"
        return 1
    }
    if [[ $(cl_served_by "$n") != "$g" ]]; then
        echo "peer $n has sessions at '$(cl_served_by "$n")', not at gateway $g alone"
        return 1
    fi
    CL_SERVED[$n]=$g
    echo "peer $n <-> LAN through gateway $g, inside route via ${CL_IN[$g]}"
}

# cl_spread: the peers so far are served by both gateways.
cl_spread() {
    local n a=0 b=0
    for n in "${CL_PEERS[@]}"; do
        case ${CL_SERVED[$n]:-} in
        a) a=$((a + 1)) ;;
        b) b=$((b + 1)) ;;
        esac
    done
    echo "gateway a serves $a peers, gateway b $b"
    ((a > 0 && b > 0))
}

# cl_pings_start: every peer pings the LAN host 5 times a second, each reply
# stamped, until cl_pings_stop.
cl_pings_start() {
    local n
    for n in "${CL_PEERS[@]}"; do
        cl_spawn "ping$n" "$(cl_ns_peer "$n")" "$TOPO_LOGS/ping-$n.log" \
            ping -n -D -O -i 0.2 "$CL_LAN"
    done
}

cl_pings_stop() {
    local n
    for n in "${CL_PEERS[@]}"; do
        topo_stop "ping$n" 2 || true
    done
}

# cl_first_reply_after N T: the time of peer N's first reply after T (seconds
# since the epoch, with decimals); fails if there is none.
cl_first_reply_after() {
    awk -v t="$2" '/bytes from/ { s = substr($1, 2, length($1) - 2); if (s + 0 > t + 0) { print s; found = 1; exit } } END { exit !found }' \
        "$TOPO_LOGS/ping-$1.log"
}

# cl_reply_after N T: peer N has a reply after time T.
cl_reply_after() {
    cl_first_reply_after "$1" "$2" >/dev/null
}

# cl_unanswered_since N T: how many of peer N's pings sent after T never got a
# reply (ping -O names each ping still unanswered when the next one leaves; a
# reply that comes later still counts as an answer).
cl_unanswered_since() {
    awk -v t="$2" '
        /no answer yet/ {
            s = substr($1, 2, length($1) - 2)
            if (s + 0 > t + 0 && match($0, /icmp_seq=[0-9]+/)) late[substr($0, RSTART + 9, RLENGTH - 9)] = 1
        }
        /bytes from/ && match($0, /icmp_seq=[0-9]+/) { answered[substr($0, RSTART + 9, RLENGTH - 9)] = 1 }
        END { for (q in late) if (!(q in answered)) n++; print n + 0 }' "$TOPO_LOGS/ping-$1.log"
}

now_s() {
    date +%s.%N
}

# elapsed FROM TO: TO - FROM in seconds, two decimals.
elapsed() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

# --- The scenario --------------------------------------------------------

# cl_check NAME CMD...: runs CMD (which prints a one-line detail) and records
# the result, as e2e.sh's check does, without its single gateway.
cl_check() {
    local name=$1 detail status=0
    shift
    "$@" >"$CL_CHECK_OUT" 2>&1 || status=$?
    detail=$(<"$CL_CHECK_OUT")
    detail=${detail//$'\n'/; }
    if ((status == 0)); then
        record PASS "$name" "$detail"
    else
        record FAIL "$name" "$detail"
    fi
    return "$status"
}

cl_start_all() {
    local g
    frr_start upstream "$CL_NS_UP" || return 1
    frr_start inside "$CL_NS_IN" || return 1
    for g in a b; do
        frr_start "gw-$g" "${CL_NS_GW[$g]}" || return 1
        cl_gw_start "$g" "$1" || return 1
    done
    echo "wgdp and FRR started on both gateways, FRR on the routers"
}

# cl_failover: stops gateway a while every peer pings the LAN host; measures
# each phase; checks that a's peers come back through b within the bound and
# b's peers lose nothing.
cl_failover() {
    local t0 t_up t_in n first worst=0 lost gone=() kept=() detail
    for n in "${CL_PEERS[@]}"; do
        if [[ ${CL_SERVED[$n]} == a ]]; then gone+=("$n"); else kept+=("$n"); fi
    done
    cl_pings_start
    # Every ping answered before the stop.
    for n in "${CL_PEERS[@]}"; do
        topo_wait 10 "peer $n's pings" cl_reply_after "$n" "$(now_s)" || {
            echo "peer $n's pings got no reply before the stop"
            return 1
        }
    done
    t0=$(now_s)
    cl_gw_stop a >"$CL_DIR/stop.out" || {
        cat "$CL_DIR/stop.out"
        return 1
    }
    # Phase 1: the upstream and inside routers drop gateway a (BFD, then BGP).
    topo_wait 10 "upstream to drop gateway a" anycast_over "${CL_OUT[b]} " || {
        echo "upstream still routes $CL_ANYCAST over '$(anycast_hops)'"
        return 1
    }
    t_up=$(now_s)
    in_without_a() { ! ip -n "$CL_NS_IN" route show | grep -q "via ${CL_IN[a]} "; }
    topo_wait 10 "the inside router to drop gateway a" in_without_a || {
        echo "the inside router still routes via gateway a: $(ip -n "$CL_NS_IN" route show | grep "via ${CL_IN[a]} " | tr '\n' ' ')"
        return 1
    }
    t_in=$(now_s)
    detail="stop->upstream withdrew a: $(elapsed "$t0" "$t_up") s, stop->inside withdrew a: $(elapsed "$t0" "$t_in") s"
    # Phase 2 and 3: a's peers make a handshake at b, their routes move to b.
    for n in "${gone[@]}"; do
        if ! topo_wait "$CL_FAILOVER_BOUND" "peer $n back through b" cl_reply_after "$n" "$t_up"; then
            echo "$detail; peer $n got no reply through b within $CL_FAILOVER_BOUND s"
            return 1
        fi
        first=$(cl_first_reply_after "$n" "$t0")
        detail+="; peer $n: handshake at b after $(elapsed "$t0" "$(cl_handshake_at b "$n")") s, back after $(elapsed "$t0" "$first") s"
        awk -v a="$(elapsed "$t0" "$first")" -v b="$CL_FAILOVER_BOUND" 'BEGIN { exit !(a < b) }' || {
            echo "$detail: over the bound of $CL_FAILOVER_BOUND s"
            return 1
        }
        topo_wait 5 "peer $n's inside route via b" cl_route_is "$n" b || {
            echo "$detail; peer $n's inside route is via '$(cl_inside_hop "$n")'"
            return 1
        }
        CL_SERVED[$n]=b
    done
    # b's own peers never noticed.
    for n in "${kept[@]}"; do
        lost=$(cl_unanswered_since "$n" "$t0")
        if ((lost > 0)); then
            echo "$detail; peer $n of gateway b lost $lost pings"
            return 1
        fi
    done
    cl_pings_stop
    CL_FAILOVER_DETAIL=$detail
    echo "$detail; peers ${kept[*]} of b lost no ping"
}

# cl_handshake_at G N: when gateway G last made a handshake with peer N
# (seconds since the epoch, as wg show gives it).
cl_handshake_at() {
    local pub
    pub=$(wg pubkey <"$CL_DIR/peer$2.key")
    wg show "wgc$1$CL_ID" latest-handshakes | awk -v k="$pub" '$1 == k { print $2 }'
}

# cl_withdrawn_within G SIGNAL SECONDS: sends SIGNAL to gateway G's wgdp
# (STOP: hung; KILL: crashed); the upstream router must route the anycast
# address over the other gateway alone within SECONDS.
cl_withdrawn_within() {
    local g=$1 other=b t0 t1 pid=${TOPO_PID[gw-$1]}
    [[ $g == b ]] && other=a
    t0=$(now_s)
    kill "-$2" "$pid"
    if [[ $2 == KILL ]]; then
        # Reaped here, so that bash reports nothing; cl_crashed_gone checks how
        # it ended.
        CL_KILLED_STATUS=0
        { wait "$pid"; } 2>/dev/null || CL_KILLED_STATUS=$?
        unset "TOPO_PID[gw-$g]"
    fi
    if ! topo_wait "$3" "upstream to drop gateway $g" anycast_over "${CL_OUT[$other]} "; then
        echo "after SIG$2, upstream routes $CL_ANYCAST over '$(anycast_hops)'; its sessions: $(cl_upstream_sessions)"
        return 1
    fi
    t1=$(now_s)
    echo "SIG$2 to gateway $g's wgdp: upstream withdrew it after $(elapsed "$t0" "$t1") s"
}

# cl_upstream_sessions: the upstream router's BGP and BFD state of each gateway.
cl_upstream_sessions() {
    local g bgp bfd
    for g in a b; do
        bgp=$(timeout 5 ip netns exec "$CL_NS_UP" vtysh --vty_socket "$CL_DIR/frr-upstream" \
            -c "show bgp neighbors ${CL_OUT[$g]}" 2>&1 | grep -m1 -o 'BGP state = [A-Za-z]*')
        bfd=$(timeout 5 ip netns exec "$CL_NS_UP" vtysh --vty_socket "$CL_DIR/frr-upstream" \
            -c "show bfd peers brief" 2>&1 | awk -v p="${CL_OUT[$g]}" '$3 == p { print $4 }')
        printf '%s: %s, BFD %s; ' "$g" "${bgp:-?}" "${bfd:-?}"
    done
}

# cl_resumed G: gateway G's wgdp, stopped by SIGSTOP, continues; both gateways
# are announced again.
cl_resumed() {
    kill -CONT "${TOPO_PID[gw-$1]}"
    cl_ecmp_up 60
}

# cl_crashed_gone G: after a SIGKILL, gateway G's TAP, routes and address
# went with the process.
cl_crashed_gone() {
    local ns=${CL_NS_GW[$1]} status=${CL_KILLED_STATUS:-0}
    if ((status != 137)); then
        echo "wgdp of gateway $1 ended with status $status, not by SIGKILL"
        return 1
    fi
    if ip -n "$ns" link show wgdp0 >/dev/null 2>&1 || [[ -n $(ip -n "$ns" route show table "$CL_TABLE") ]]; then
        echo "gateway $1's TAP or table $CL_TABLE outlived wgdp"
        return 1
    fi
    if ! topo_wait 10 "the inside router to drop gateway $1" cl_inside_without "$1"; then
        echo "the inside router still routes via gateway $1"
        return 1
    fi
    echo "gateway $1's TAP, its anycast address and table $CL_TABLE are gone; no route via it upstream or inside"
}

cl_inside_without() {
    ! ip -n "$CL_NS_IN" route show | grep -q "via ${CL_IN[$1]} "
}

# cl_routes_gone: nothing routes to the stopped gateway a any more, and its
# host holds none of wgdp's routes.
cl_routes_gone() {
    local left
    anycast_over "${CL_OUT[b]} " || {
        echo "upstream routes $CL_ANYCAST over '$(anycast_hops)'"
        return 1
    }
    left=$(ip -n "$CL_NS_IN" route show | grep -c "via ${CL_IN[a]} " || true)
    if ((left > 0)); then
        echo "the inside router has $left routes via gateway a"
        return 1
    fi
    left=$(ip -n "${CL_NS_GW[a]}" route show table "$CL_TABLE" | wc -l)
    if ((left > 0)); then
        echo "gateway a's table $CL_TABLE holds $left routes"
        return 1
    fi
    if ip -n "${CL_NS_GW[a]}" link show wgdp0 >/dev/null 2>&1; then
        echo "gateway a's TAP is still there"
        return 1
    fi
    echo "upstream: $CL_ANYCAST via b only; inside router: no route via a; a's table $CL_TABLE empty, its TAP gone"
}

# cl_all_gone: no namespace, process or FRR daemon of the run is left.
cl_all_gone() {
    local ns name left=()
    for ns in $(cluster_namespaces); do
        [[ -e /run/netns/$ns ]] && left+=("namespace $ns")
    done
    for name in "${!CL_ALL_PIDS[@]}"; do
        pid_alive "${CL_ALL_PIDS[$name]}" && left+=("$name (pid ${CL_ALL_PIDS[$name]})")
        # An FRR daemon that did not end cleanly leaves its crash log directory.
        if [[ $name == frr-* ]]; then
            local daemon=${name%.*}
            daemon=${daemon##*-}
            [[ -e /var/tmp/frr/$daemon.${CL_ALL_PIDS[$name]} ]] && left+=("/var/tmp/frr/$daemon.${CL_ALL_PIDS[$name]}")
        fi
    done
    [[ -d $CL_DIR ]] && left+=("$CL_DIR")
    compgen -G "/var/run/dpdk/wgdp-cl?-$CL_ID" >/dev/null && left+=("DPDK runtime directories")
    if ((${#left[@]} > 0)); then
        echo "left behind: ${left[*]}"
        return 1
    fi
    echo "${#CL_ALL_PIDS[@]} processes (wgdp, FRR daemons, wireguard-go, ping) and $(cluster_namespaces | wc -w) namespaces gone"
}

# scenario_cluster DRIVER
scenario_cluster() {
    local driver=$1 n saved_dir=${TOPO_DIR:-} g name
    SCENARIO="$driver cluster"
    SCENARIO_FAILED_BEFORE=$FAILED
    cluster_init
    trap cluster_destroy EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    declare -gA CL_ALL_PIDS=()
    CL_CHECK_OUT=$(mktemp)
    cluster_create
    if [[ ! -x $FRR_DIR/bgpd ]]; then
        record FAIL "FRR installed" "no $FRR_DIR/bgpd: run scripts/setup.sh"
        cluster_destroy
        return 0
    fi
    if cl_check "wgdp and FRR start" cl_start_all "$driver" &&
        cl_check "anycast over both gateways (ECMP)" cl_ecmp_up 60; then
        for n in 1 2 3 4; do
            # Peers 1 and 2 hash to gateway a, 3 and 4 to b.
            g=a
            ((n > 2)) && g=b
            cl_check "peer $n started" cl_peer_start "$n" "$g" &&
                cl_check "peer $n <-> LAN host" cl_reaches "$n" "$g" || true
        done
        cl_check "peers spread over both gateways" cl_spread || true
        cl_check "gateway a stopped: failover" cl_failover || true
        cl_check "stopped gateway's routes gone" cl_routes_gone || true
        if cl_check "gateway a back" cl_gw_start a "$driver" &&
            cl_check "anycast over both gateways again" cl_ecmp_up 60; then
            cl_check "peer 5 started" cl_peer_start 5 a && cl_check "peer 5 <-> LAN host" cl_reaches 5 a || true
            cl_check "peer 6 started" cl_peer_start 6 b && cl_check "peer 6 <-> LAN host" cl_reaches 6 b || true
            cl_check "new peers spread again" cl_spread || true
            # A hung gateway (every thread stopped) stops answering BFD.
            cl_check "gateway b hung: withdrawn" cl_withdrawn_within b STOP 5 || true
            cl_check "gateway b resumed: announced again" cl_resumed b || true
            # A crashed one takes its TAP, address and routes with it.
            cl_check "gateway a crashed: withdrawn" cl_withdrawn_within a KILL 5 &&
                cl_check "crashed gateway's state gone" cl_crashed_gone a || true
        fi
    fi
    if ((FAILED > SCENARIO_FAILED_BEFORE)); then
        cl_diagnostics >"$TOPO_LOGS/diagnostics.log" 2>&1 || true
    fi
    for g in a b; do
        if topo_running "gw-$g"; then
            cl_check "gateway $g stops cleanly" cl_gw_stop "$g" || true
        fi
    done
    TOPO_KEEP_LOGS=
    if ((FAILED > SCENARIO_FAILED_BEFORE)); then
        TOPO_KEEP_LOGS=$TOPO_REPO/target/e2e-logs/$RUN_ID
        cl_print_logs
    elif [[ -n ${WGDP_KEEP_LOGS:-} ]]; then
        TOPO_KEEP_LOGS=$TOPO_REPO/target/e2e-logs/$RUN_ID
    fi
    [[ -z $TOPO_KEEP_LOGS ]] || KEPT_LOGS=$TOPO_KEEP_LOGS
    cluster_destroy
    cl_check "every namespace, process and FRR daemon gone" cl_all_gone || true
    rm -f "$CL_CHECK_OUT"
    TOPO_DIR=$saved_dir
}

cl_diagnostics() {
    local g
    echo "--- upstream: BGP, BFD, routes"
    vty upstream "$CL_NS_UP" "show bgp summary"
    vty upstream "$CL_NS_UP" "show bfd peers brief"
    ip -n "$CL_NS_UP" route show
    echo "--- inside router"
    vty inside "$CL_NS_IN" "show bgp summary"
    ip -n "$CL_NS_IN" route show
    for g in a b; do
        echo "--- gateway $g"
        vty "gw-$g" "${CL_NS_GW[$g]}" "show bgp summary"
        vty "gw-$g" "${CL_NS_GW[$g]}" "show ip route"
        ip -n "${CL_NS_GW[$g]}" route show table "$CL_TABLE"
        ip -n "${CL_NS_GW[$g]}" addr show wgdp0
        timeout 5 wg show "wgc$g$CL_ID"
    done
}

cl_print_logs() {
    local f
    for f in "$TOPO_LOGS"/wgdp-*.log "$TOPO_LOGS/diagnostics.log" "$TOPO_LOGS"/frr-*-bgpd.log; do
        [[ -f $f ]] || continue
        echo "----- ${f##*/} (last 40 lines)"
        tail -n 40 "$f"
    done
    echo "-----"
}
