# wgdp: `sudo make demo` installs what is missing and runs the demo;
# `sudo make test` runs every test (what CI runs).
.PHONY: deps build demo test clean

deps:
	bash scripts/setup.sh

build:
	cargo build --release --workspace

demo: deps build
	bash scripts/demo.sh

test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace --release
	cargo build --release -p control
	bash scripts/e2e.sh

clean:
	cargo clean
