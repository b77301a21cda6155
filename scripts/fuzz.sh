#!/usr/bin/env bash
#
# Runs wgdp's fuzz targets (fuzz/, cargo fuzz and libFuzzer) and prints a table:
# target, seconds, executions, corpus size, crashes.
#
#   scripts/fuzz.sh [TARGET...]           fuzz each target for FUZZ_SECONDS (default 60)
#   scripts/fuzz.sh --replay [TARGET...]  run each target once over its seeds, its
#                                         regressions and its corpus (-runs=0)
#   scripts/fuzz.sh --list                name the targets
#
# Inputs: fuzz/seeds/TARGET (checked in, written by fuzz/make_seeds.py) and
# fuzz/regressions/TARGET (checked in: inputs that once crashed) are read; new inputs
# go to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET, logs to fuzz/logs.
#
# Toolchain: with a nightly toolchain installed (rustup), targets are built with
# `cargo +nightly fuzz` and AddressSanitizer. Without one, the stable toolchain builds
# them with RUSTC_BOOTSTRAP=1 and no sanitizer (Rust's own checks remain: bounds,
# overflow, debug assertions). cargo-fuzz is installed when missing.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TIMEOUT (seconds one input may take,
# default 25), FUZZ_ARGS (more libFuzzer options), FUZZ_TOOLCHAIN (nightly or
# stable, to choose rather than detect).
#
# Exit status: 0 if no target crashed, 1 if one did, 2 if the targets do not build.

set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-25}
read -r -a EXTRA_ARGS <<<"${FUZZ_ARGS:-}"
LOGS=fuzz/logs

say() {
    echo "fuzz: $*"
}

mode=run
case "${1:-}" in
    --replay)
        mode=replay
        shift
        ;;
    --list)
        mode=list
        shift
        ;;
    -h | --help)
        sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac

# The toolchain: nightly with AddressSanitizer if there is one, else stable.
toolchain=${FUZZ_TOOLCHAIN:-auto}
if [[ $toolchain == auto ]]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        toolchain=nightly
    elif rustc --version 2>/dev/null | grep -q nightly; then
        toolchain=default
    else
        toolchain=stable
    fi
fi
case $toolchain in
    nightly)
        CARGO=(cargo +nightly)
        SANITIZER=()
        described="nightly, AddressSanitizer"
        ;;
    default)
        CARGO=(cargo)
        SANITIZER=()
        described="$(rustc --version), AddressSanitizer"
        ;;
    stable)
        CARGO=(cargo)
        if rustup toolchain list 2>/dev/null | grep -q '^stable'; then
            CARGO=(cargo +stable)
        fi
        SANITIZER=(--sanitizer none)
        # cargo-fuzz passes compiler flags (-Cpasses=sancov-module, -Cllvm-args for the
        # coverage instrumentation) and fuzz/Cargo.toml uses a Cargo feature
        # (profile-rustflags) that only nightly accepts, unless told it is
        # bootstrapping itself. No sanitizer: they need nightly's -Zsanitizer.
        export RUSTC_BOOTSTRAP=1
        described="stable with RUSTC_BOOTSTRAP=1, no sanitizer"
        ;;
    *)
        echo "fuzz: FUZZ_TOOLCHAIN is nightly, stable or unset, not $toolchain" >&2
        exit 2
        ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

mapfile -t ALL < <(cargo fuzz list)
if [[ $mode == list ]]; then
    printf '%s\n' "${ALL[@]}"
    exit 0
fi
if (($# > 0)); then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        if [[ ! " ${ALL[*]} " == *" $t "* ]]; then
            echo "fuzz: no target $t; the targets are: ${ALL[*]}" >&2
            exit 2
        fi
    done
else
    TARGETS=("${ALL[@]}")
fi

mkdir -p "$LOGS"
say "toolchain: $described"
say "building ${#TARGETS[@]} targets"
if ! "${CARGO[@]}" fuzz build "${SANITIZER[@]}" >"$LOGS/build.log" 2>&1; then
    tail -n 40 "$LOGS/build.log" >&2
    echo "fuzz: the targets do not build; see $LOGS/build.log" >&2
    exit 2
fi

# libFuzzer's options per target: frames and operation programs need room.
max_len() {
    case $1 in
        classify | control_plane) echo -max_len=8192 ;;
        *) echo -max_len=4096 ;;
    esac
}

count_files() {
    if [[ -d $1 ]]; then
        find "$1" -maxdepth 1 -type f | wc -l
    else
        echo 0
    fi
}

# The last value of `key: N` in a log, or 0.
stat_of() {
    { grep -o "$2: *[0-9]*" "$1" || true; } | tail -n 1 | grep -o '[0-9]*$' || echo 0
}

rows=()
failures=()
total_seconds=0
total_execs=0
crashed=0

for t in "${TARGETS[@]}"; do
    log="$LOGS/$t.log"
    mkdir -p "fuzz/seeds/$t" "fuzz/regressions/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    rc=0
    start=$(date +%s)
    if [[ $mode == replay ]]; then
        scratch=$(mktemp -d)
        say "$t: replaying seeds, regressions and corpus"
        "${CARGO[@]}" fuzz run "${SANITIZER[@]}" "$t" "$scratch" \
            "fuzz/seeds/$t" "fuzz/regressions/$t" "fuzz/corpus/$t" -- \
            -runs=0 -print_final_stats=1 -timeout="$TIMEOUT" "$(max_len "$t")" \
            "${EXTRA_ARGS[@]}" >"$log" 2>&1 || rc=$?
        rm -rf "$scratch"
    else
        say "$t: fuzzing for ${SECONDS_PER_TARGET}s"
        "${CARGO[@]}" fuzz run "${SANITIZER[@]}" "$t" \
            "fuzz/corpus/$t" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
            -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
            -timeout="$TIMEOUT" "$(max_len "$t")" "${EXTRA_ARGS[@]}" >"$log" 2>&1 || rc=$?
    fi
    elapsed=$(($(date +%s) - start))
    execs=$(stat_of "$log" stat::number_of_executed_units)
    corpus=$(stat_of "$log" corp)
    crashes=0
    if ((rc != 0)); then
        crashes=1
        crashed=1
        artifact=$({ grep -o 'Test unit written to .*' "$log" || true; } | tail -n 1 | sed 's/Test unit written to //')
        message=$({ grep -m 1 -A 1 -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$log" || true; } | tr '\n' ' ')
        failures+=("$t: ${artifact:-no artifact (exit $rc)}: ${message:-see $log}")
    fi
    rows+=("$(printf '%-22s %8s %12s %8s %8s' "$t" "$elapsed" "$execs" "$corpus" "$crashes")")
    total_seconds=$((total_seconds + elapsed))
    total_execs=$((total_execs + execs))
done

echo
printf '%-22s %8s %12s %8s %8s\n' target seconds executions corpus crashes
printf '%s\n' "${rows[@]}"
printf '%-22s %8s %12s\n' total "$total_seconds" "$total_execs"
awk -v s="$total_seconds" -v tc="$described" \
    'BEGIN { printf "fuzzing time: %.2f hours (%s)\n", s / 3600, tc }'
if ((crashed)); then
    echo
    echo "crashes (logs in $LOGS; minimise with: cargo fuzz tmin TARGET FILE):"
    printf '  %s\n' "${failures[@]}"
    exit 1
fi
