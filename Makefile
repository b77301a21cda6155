# wgdp: build, test and demo on Debian 12, as root.
#
#   sudo make demo   installs what is missing, builds, runs the demo
#   sudo make test   installs what is missing, runs every test (what CI runs)
#
# Other targets: deps (scripts/setup.sh alone), build, e2e (the end-to-end
# tests alone, on the current build), bench (measures wgdp with wgdp-pktgen and
# rewrites docs/benchmarks.md; not a test), clean.

# A toolchain installed by rustup (scripts/setup.sh does so when cargo is
# missing) lives in ~/.cargo/bin, which sudo's PATH does not include.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo

# deps must finish before anything builds or runs, also under make -j.
.NOTPARALLEL:
.PHONY: deps build demo test e2e bench fuzz clean

deps:
	bash scripts/setup.sh

build:
	$(CARGO) build --release --workspace --bins --examples

demo: deps build
	bash scripts/demo.sh

# Unit and DPDK integration tests (which need root) run under cargo test; the
# end-to-end tests need the release binary.
test: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --release
	$(CARGO) build --release --workspace --bins --examples
	bash scripts/e2e.sh
	bash scripts/bench.sh smoke

e2e: build
	bash scripts/e2e.sh

# Figures, not tests: nothing here fails for being slow. BENCH_ARGS=--quick for a
# short run that checks the harness.
bench: deps build
	bash scripts/bench.sh bench $(BENCH_ARGS)

# libFuzzer on every parser that sees the network, the handshake engine and the
# control plane, FUZZ_SECONDS (default 60) per target; fails if any target crashes.
fuzz:
	bash scripts/fuzz.sh

clean:
	$(CARGO) clean
