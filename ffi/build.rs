//! Finds the system DPDK with pkg-config, generates bindings for `wrapper.h`
//! and compiles C wrappers for DPDK's static-inline functions.
//!
//! DPDK is linked as shared libraries. Its drivers (PMDs) are not linked at
//! all: a shared EAL loads every driver in its compiled-in plugin directory
//! (`RTE_EAL_PMD_PATH`, on Debian `<libdir>/dpdk/pmds-23.0`) during
//! `rte_eal_init`, so `--vdev net_ring0` and friends work without `-d`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use bindgen::callbacks::ParseCallbacks;

const DPDK_MIN_VERSION: &str = "22.11";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let header = manifest_dir.join("wrapper.h");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");

    // Checked first so that a missing or old DPDK gets this message rather
    // than a compiler error; the linker flags are printed at the end.
    pkg_config::Config::new()
        .atleast_version(DPDK_MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("DPDK {DPDK_MIN_VERSION} or newer not found: {e}"));

    let cflags = dpdk_cflags();
    let macro_dir = out_dir.join("macro_fallback");
    std::fs::create_dir_all(&macro_dir).expect("cannot create the macro fallback directory");

    // `-include rte_config.h` and `-march=corei7` change what the headers
    // declare (the config macros) and which inline code is legal (SSE4.2),
    // so bindgen and the C compiler must both see exactly these flags.
    let bindings = bindgen::Builder::default()
        .header(header.to_str().expect("wrapper.h path is not UTF-8"))
        .clang_args(joined_includes(&cflags))
        .parse_callbacks(Box::new(Callbacks(bindgen::CargoCallbacks::new())))
        .allowlist_function("rte_.*")
        .allowlist_function("wgdp_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("E_RTE_.*")
        // Protocol headers pulled in by rte_flow.h that Rust cannot lay out
        // (a packed struct holding an aligned one; a packed struct with a
        // flexible array, so no Debug); wgdp only needs them by pointer.
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        // Many DPDK constants (RSS types, name sizes) are built with
        // function-like macros such as RTE_BIT64() that bindgen alone skips.
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&macro_dir)
        .wrap_static_fns(true)
        .wrap_static_fns_path(out_dir.join("static_fns"))
        .generate()
        .expect("bindgen failed on wrapper.h");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("cannot write bindings.rs");

    // The wrappers must be linked before the DPDK libraries they call, so
    // they are compiled before pkg-config prints the `-l` flags.
    let mut build = cc::Build::new();
    // The generated file repeats qualifiers (`const const void *`), which
    // is valid C but noisy.
    build.file(out_dir.join("static_fns.c")).warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("dpdk_static_fns");

    pkg_config::Config::new()
        .atleast_version(DPDK_MIN_VERSION)
        .probe("libdpdk")
        .expect("libdpdk was found above");

    ipsec_mb(&manifest_dir, &out_dir);
}

/// Bindings for the Intel IPsec-MB library (`ipsec_mb.h`), linked as a shared
/// library. Debian ships no pkg-config file for it; the header's presence is
/// checked so that a missing package gets a message naming it.
fn ipsec_mb(manifest_dir: &std::path::Path, out_dir: &std::path::Path) {
    let header = manifest_dir.join("ipsec_mb.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let found = ["/usr/include", "/usr/local/include"]
        .iter()
        .any(|d| std::path::Path::new(d).join("intel-ipsec-mb.h").exists());
    assert!(
        found,
        "intel-ipsec-mb.h not found: install the IPsec-MB library (Debian: libipsec-mb-dev)"
    );
    let bindings = bindgen::Builder::default()
        .header(header.to_str().expect("ipsec_mb.h path is not UTF-8"))
        .parse_callbacks(Box::new(Callbacks(bindgen::CargoCallbacks::new())))
        .allowlist_function("alloc_mb_mgr")
        .allowlist_function("free_mb_mgr")
        .allowlist_function("init_mb_mgr_auto")
        .allowlist_type("IMB_.*")
        .allowlist_var("IMB_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        .generate()
        .expect("bindgen failed on ipsec_mb.h");
    bindings
        .write_to_file(out_dir.join("ipsec_mb.rs"))
        .expect("cannot write ipsec_mb.rs");
    println!("cargo:rustc-link-lib=IPSec_MB");
}

/// Cargo's rerun-if-changed tracking, plus DPDK's Doxygen comments kept as
/// preformatted text: rustdoc would otherwise run their indented parts (e.g.
/// the devargs syntax) as Rust doctests.
#[derive(Debug)]
struct Callbacks(bindgen::CargoCallbacks);

impl ParseCallbacks for Callbacks {
    fn process_comment(&self, comment: &str) -> Option<String> {
        Some(format!("```text\n{comment}\n```"))
    }

    fn header_file(&self, filename: &str) {
        self.0.header_file(filename);
    }

    fn include_file(&self, filename: &str) {
        self.0.include_file(filename);
    }

    fn read_env_var(&self, key: &str) {
        self.0.read_env_var(key);
    }
}

/// `flags` with each `-include FILE` pair written as one `-includeFILE`.
///
/// bindgen's clang macro fallback (needed for the many DPDK constants built
/// with `RTE_BIT64()`) drops a lone `-include` but keeps the file name after
/// it, which clang then takes for a second input file.
fn joined_includes(flags: &[String]) -> Vec<String> {
    let mut joined = Vec::with_capacity(flags.len());
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match (flag.as_str(), flags.as_slice().first()) {
            ("-include", Some(file)) => {
                joined.push(format!("-include{file}"));
                flags.next();
            }
            _ => joined.push(flag.clone()),
        }
    }
    joined
}

/// Every flag of `pkg-config --cflags libdpdk`, in order.
///
/// The pkg-config crate keeps only the `-I` paths, which would lose
/// `-include rte_config.h` and `-march`.
fn dpdk_cflags() -> Vec<String> {
    let output = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("cannot run pkg-config");
    assert!(
        output.status.success(),
        "pkg-config --cflags libdpdk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("pkg-config output is not UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}
