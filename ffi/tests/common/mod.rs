//! Shared set-up for the DPDK integration tests.
//!
//! Each test file is its own process with a single `#[test]`, because
//! `rte_eal_init` runs once per process. The tests need root; without it they
//! print why and pass. They never probe PCI devices and use no hugepages.

use dpdk_sys::Eal;

/// EAL options every test uses; `extra` adds vdevs.
///
/// `--in-memory` cannot be combined with `--no-huge` (EAL: "Option
/// --legacy-mem is not compatible with --in-memory"); `--no-shconf` is what
/// keeps concurrent test processes from sharing a runtime configuration.
const BASE_ARGS: &[&str] = &[
    "--no-pci",
    "--no-huge",
    "--no-shconf",
    "-m",
    "256",
    "-l",
    "0-1",
    "--log-level",
    "warning",
];

/// Initialises the EAL for `test`, or returns `None` after printing why the
/// test is skipped.
pub fn eal_or_skip(test: &str, extra: &[&str]) -> Option<Eal> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{test}: skipped: needs root (DPDK EAL)");
        return None;
    }
    let prefix = format!("--file-prefix=wgdp-{test}");
    let args: Vec<&str> = BASE_ARGS
        .iter()
        .copied()
        .chain([prefix.as_str()])
        .chain(extra.iter().copied())
        .collect();
    Some(Eal::init(&args).unwrap_or_else(|e| panic!("{test}: {e}")))
}
