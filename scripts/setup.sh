#!/usr/bin/env bash
#
# Prepares a Debian 12 machine to build, test and demo wgdp:
#   - installs the Debian packages below that are missing;
#   - installs a Rust toolchain with rustup, only if there is no cargo;
#   - reserves 2 MiB hugepages (WGDP_HUGEPAGES, default 512) if fewer are;
#   - mounts hugetlbfs at /dev/hugepages and bpffs at /sys/fs/bpf if they
#     are not mounted.
# Idempotent: what is already there is left as it is, and a machine that has
# everything needs no network. Needs root.
#
# usage: sudo scripts/setup.sh

set -euo pipefail

PACKAGES=(
    # Building: gcc for DPDK's inline-function wrappers, clang and libclang
    # for bindgen. libdpdk-dev brings DPDK 22.11's libraries and drivers
    # (net_af_xdp with libbpf and libxdp, net_af_packet, net_ring, net_memif,
    # net_null, the ipsec_mb crypto drivers); dpdk adds its tools.
    build-essential pkg-config clang libclang-dev libdpdk-dev dpdk
    # The workers' in-line ChaCha20-Poly1305 (bindgen over intel-ipsec-mb.h).
    libipsec-mb-dev
    # Running the end-to-end tests and the demo.
    wireguard-go wireguard-tools iperf3 iputils-ping iproute2 ethtool procps util-linux curl
    # python3 reads iperf3's JSON reports in the end-to-end tests.
    python3
    # Observing: dpdk-telemetry.py (dpdk-dev) and promtool (prometheus), which the
    # tests use to check wgdp's telemetry and metrics.
    dpdk-dev prometheus
    # The cluster end-to-end test (scripts/e2e.sh --only cluster): FRR's zebra, bgpd
    # and bfdd, started per network namespace by the test itself.
    frr
    # make bench: gnuplot draws the plots of docs/benchmarks.md; linux-perf profiles
    # the worker.
    gnuplot-nox linux-perf
)
RUST_MIN=1.80
HUGEPAGES=${WGDP_HUGEPAGES:-512}
HUGEPAGES_2M=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages

say() {
    echo "setup: $*"
}

warn() {
    echo "setup: warning: $*" >&2
}

if [[ $EUID -ne 0 ]]; then
    echo "setup: needs root to install packages and reserve hugepages; run: sudo make deps" >&2
    exit 1
fi

install_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) != ii* ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Only promtool is wanted from the prometheus package, and only the daemons'
    # programs from frr (the tests start their own instances): keep either
    # service from starting (policy-rc.d answers 101, "action forbidden", to
    # package scripts) and from starting at boot.
    local policy=/usr/sbin/policy-rc.d made_policy= daemons=()
    [[ " ${missing[*]} " == *" prometheus "* ]] && daemons+=(prometheus)
    [[ " ${missing[*]} " == *" frr "* ]] && daemons+=(frr)
    if ((${#daemons[@]} > 0)) && [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=1
    fi
    apt-get install -y -q "${missing[@]}" || {
        [[ -n $made_policy ]] && rm -f "$policy"
        return 1
    }
    [[ -n $made_policy ]] && rm -f "$policy"
    local d
    for d in "${daemons[@]}"; do
        systemctl disable --now "$d" >/dev/null 2>&1 || true
        # Without systemd (a container), the SysV links are what starts it at boot.
        update-rc.d "$d" disable >/dev/null 2>&1 || true
    done
}

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
    install_packages "${PACKAGES[@]}"
else
    warn "not a Debian system: install the equivalents of ${PACKAGES[*]} yourself"
fi

# Rust. Debian 12's own cargo is older than the workspace's rust-version, so a
# missing toolchain comes from rustup, for root (the user that `sudo make`
# builds as).
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    if ! command -v rustup >/dev/null; then
        install_packages curl ca-certificates
        say "installing rustup and the stable Rust toolchain into $HOME/.cargo"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy
    else
        rustup toolchain install stable --profile minimal --component rustfmt,clippy
    fi
fi
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
rust_version=$(rustc --version | awk '{ print $2 }')
if [[ $(printf '%s\n' "$RUST_MIN" "$rust_version" | sort -V | head -n 1) != "$RUST_MIN" ]]; then
    warn "rustc $rust_version is older than $RUST_MIN, which wgdp needs; update it (rustup update stable)"
fi

# Hugepages: DPDK's packet buffers live in them. The 2 MiB pool is set
# directly, whatever the machine's default hugepage size.
if [[ -w $HUGEPAGES_2M ]]; then
    have=$(<"$HUGEPAGES_2M")
    if ((have < HUGEPAGES)); then
        say "reserving $HUGEPAGES hugepages of 2 MiB (had $have)"
        echo "$HUGEPAGES" >"$HUGEPAGES_2M" || true
        have=$(<"$HUGEPAGES_2M")
        if ((have < HUGEPAGES)); then
            warn "the kernel gave only $have hugepages (memory too fragmented?); the tests then run DPDK with --no-huge"
        fi
    fi
else
    warn "cannot set $HUGEPAGES_2M; the tests then run DPDK with --no-huge"
fi

if ! mountpoint -q /dev/hugepages; then
    say "mounting hugetlbfs at /dev/hugepages"
    mkdir -p /dev/hugepages
    mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
fi

# libxdp (used by the AF_XDP driver) keeps its XDP dispatcher in bpffs.
if ! mountpoint -q /sys/fs/bpf; then
    say "mounting bpffs at /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
fi

# wireguard-go needs the TUN device.
if [[ ! -c /dev/net/tun ]]; then
    modprobe tun 2>/dev/null || warn "no /dev/net/tun: wireguard-go, and so the end-to-end tests, cannot run"
fi

say "ready"
