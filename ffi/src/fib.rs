//! DPDK's IPv4 longest-prefix-match table, `rte_fib` with the DIR-24-8 algorithm and
//! 4-byte next hops.
//!
//! Contract:
//! - A lookup answers the next hop of the longest prefix holding the address, or
//!   [`Fib4::MISS`] when none does. Next hops are below 2^31 (DIR-24-8 keeps one bit
//!   of each 4-byte entry for itself).
//! - `rte_fib` in DPDK 22.11 has no RCU: a table changed while another thread looks
//!   up in it may give that lookup a wrong answer (a group of the second level is
//!   freed and reused at once). So changes take `&mut self` and lookups `&self`:
//!   whoever shares a `Fib4` between threads (e.g. in an `Arc`) can change it only
//!   when no other thread holds it (`Arc::get_mut`).
//! - Dropping the table frees its memory.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::Error;
use crate::lifecycle::OwnerToken;
use crate::sys;

/// An `rte_fib` DIR-24-8 table of IPv4 prefixes; see the module docs.
pub struct Fib4 {
    raw: NonNull<sys::rte_fib>,
    routes: u32,
    groups: u32,
    _owner: OwnerToken,
}

// SAFETY: lookups only read the table; changes need `&mut` (module docs).
unsafe impl Send for Fib4 {}
// SAFETY: as above.
unsafe impl Sync for Fib4 {}

/// The largest next hop a [`Fib4`] holds.
pub const FIB4_MAX_NEXT_HOP: u64 = (1 << 31) - 1;

impl Fib4 {
    /// What a lookup answers for an address no prefix holds.
    pub const MISS: u64 = u32::MAX as u64 >> 1;

    /// Bytes of DPDK memory a table with room for `routes` prefixes and `groups`
    /// second-level groups takes, about: the 2^24 first-level entries, 1 KiB per
    /// group, and the node pool of the prefix tree (`rte_rib`) beside it, two nodes
    /// per route at about 200 bytes each (measured: 519 MiB for 10^6 routes and 54000
    /// groups, docs/benchmarks.md).
    pub fn memory(routes: u32, groups: u32) -> u64 {
        (4u64 << 24) + (groups as u64 + 1) * 1024 + routes as u64 * 400
    }

    /// Creates a table with room for `routes` prefixes and `groups` second-level
    /// groups (one for each distinct /24 that holds a prefix longer than /24). `name`
    /// must be unique in the process.
    pub fn new(name: &str, routes: u32, groups: u32) -> Result<Fib4, Error> {
        let op = || format!("rte_fib_create({name:?})");
        let owner = OwnerToken::acquire(&op())?;
        let cname = CString::new(name)
            .map_err(|_| Error::invalid(op(), libc::EINVAL, "the name contains a NUL byte"))?;
        if routes == 0 || routes > i32::MAX as u32 || groups == 0 {
            return Err(Error::invalid(
                op(),
                libc::EINVAL,
                format!("{routes} routes and {groups} groups"),
            ));
        }
        let mut conf = sys::rte_fib_conf {
            type_: sys::RTE_FIB_DIR24_8,
            default_nh: Self::MISS,
            max_routes: routes as i32,
            rib_ext_sz: 0,
            __bindgen_anon_1: sys::rte_fib_conf__bindgen_ty_1 {
                dir24_8: sys::rte_fib_conf__bindgen_ty_1__bindgen_ty_1 {
                    nh_sz: sys::RTE_FIB_DIR24_8_4B,
                    num_tbl8: groups,
                },
            },
        };
        // SAFETY: the EAL is running (owner token); DPDK copies the name and the
        // configuration.
        let raw = unsafe { sys::rte_fib_create(cname.as_ptr(), sys::SOCKET_ID_ANY, &mut conf) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::from_rte_errno(op()))?;
        Ok(Fib4 {
            raw,
            routes,
            // DIR-24-8 rounds the groups up to a whole slab of its bitmap of free
            // groups (64, lib/fib/dir24_8.c in DPDK 22.11).
            groups: groups.div_ceil(64) * 64,
            _owner: owner,
        })
    }

    /// The prefixes it has room for.
    pub fn routes(&self) -> u32 {
        self.routes
    }

    /// The second-level groups it has room for (what it was created with, rounded up
    /// to a multiple of 64).
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// Adds `addr/len` (host bits ignored) with `next_hop`, or changes its next hop.
    /// `ENOSPC` when the table has no room left for it.
    pub fn add(&mut self, addr: u32, len: u8, next_hop: u64) -> Result<(), Error> {
        if len > 32 || next_hop > FIB4_MAX_NEXT_HOP || next_hop == Self::MISS {
            return Err(Error::invalid(
                "rte_fib_add",
                libc::EINVAL,
                format!("prefix length {len}, next hop {next_hop}"),
            ));
        }
        // SAFETY: a live table, changed by this thread alone (`&mut self`).
        let ret = unsafe { sys::rte_fib_add(self.raw.as_ptr(), addr, len, next_hop) };
        if ret < 0 {
            return Err(Error::from_ret("rte_fib_add", ret));
        }
        Ok(())
    }

    /// Removes `addr/len`; whether it was there.
    pub fn delete(&mut self, addr: u32, len: u8) -> Result<bool, Error> {
        if len > 32 {
            return Err(Error::invalid(
                "rte_fib_delete",
                libc::EINVAL,
                format!("prefix length {len}"),
            ));
        }
        // SAFETY: a live table, changed by this thread alone (`&mut self`).
        let ret = unsafe { sys::rte_fib_delete(self.raw.as_ptr(), addr, len) };
        match ret {
            0 => Ok(true),
            r if r == -libc::ENOENT => Ok(false),
            r => Err(Error::from_ret("rte_fib_delete", r)),
        }
    }

    /// Chooses DPDK's lookup function: its AVX-512 bulk lookup (`vector`) or its scalar
    /// one; by default DPDK takes the best this CPU has. False if the CPU or the
    /// library build lacks the one asked for (the table keeps the one it had).
    pub fn select_lookup(&mut self, vector: bool) -> bool {
        let kind = if vector {
            sys::RTE_FIB_LOOKUP_DIR24_8_VECTOR_AVX512
        } else {
            sys::RTE_FIB_LOOKUP_DIR24_8_SCALAR_MACRO
        };
        // SAFETY: a live table, and `&mut self`: no lookup runs meanwhile.
        unsafe { sys::rte_fib_select_lookup(self.raw.as_ptr(), kind) == 0 }
    }

    /// The next hop of each of `addrs` (host order) into `next_hops`, which must be
    /// at least as long.
    #[inline]
    pub fn lookup_bulk(&self, addrs: &[u32], next_hops: &mut [u64]) {
        assert!(next_hops.len() >= addrs.len(), "room for every answer");
        let n = i32::try_from(addrs.len()).expect("fewer than 2^31 addresses");
        // SAFETY: a live table that no thread changes meanwhile (module docs);
        // `next_hops` has room for `n` answers and the library only reads `addrs`
        // (its pointer is not const in the C API).
        unsafe {
            sys::rte_fib_lookup_bulk(
                self.raw.as_ptr(),
                addrs.as_ptr().cast_mut(),
                next_hops.as_mut_ptr(),
                n,
            )
        };
    }

    /// The next hop of `addr` (host order).
    #[inline]
    pub fn lookup(&self, mut addr: u32) -> u64 {
        let mut nh = Self::MISS;
        // SAFETY: as in `lookup_bulk`, for one address and one answer.
        unsafe { sys::rte_fib_lookup_bulk(self.raw.as_ptr(), &mut addr, &mut nh, 1) };
        nh
    }

    /// The next hop of exactly `addr/len`, if the table holds that prefix.
    pub fn get(&self, addr: u32, len: u8) -> Option<u64> {
        if len > 32 {
            return None;
        }
        let addr = if len == 0 {
            0
        } else {
            addr & (u32::MAX << (32 - len))
        };
        // SAFETY: a live table and its tree, which no one changes meanwhile (`&self`).
        unsafe {
            let rib = sys::rte_fib_get_rib(self.raw.as_ptr());
            let node = sys::rte_rib_lookup_exact(rib, addr, len);
            if node.is_null() {
                return None;
            }
            let mut nh = 0u64;
            sys::rte_rib_get_nh(node, &mut nh);
            Some(nh)
        }
    }

    /// Every prefix with its next hop, from the table's prefix tree, in no particular
    /// order.
    pub fn entries(&self) -> Vec<(u32, u8, u64)> {
        let mut out = Vec::new();
        // SAFETY: a live table; its tree lives as long as it does.
        let rib = unsafe { sys::rte_fib_get_rib(self.raw.as_ptr()) };
        if rib.is_null() {
            return out;
        }
        // The walk below passes over a prefix of length 0.
        // SAFETY: a live tree.
        let default = unsafe { sys::rte_rib_lookup_exact(rib, 0, 0) };
        if !default.is_null() {
            let mut nh = 0u64;
            // SAFETY: a node of the tree.
            unsafe { sys::rte_rib_get_nh(default, &mut nh) };
            out.push((0, 0, nh));
        }
        let mut node = std::ptr::null_mut();
        loop {
            // SAFETY: walks the tree from the last node it returned, which no one
            // changes meanwhile (`&self`).
            node =
                unsafe { sys::rte_rib_get_nxt(rib, 0, 0, node, sys::RTE_RIB_GET_NXT_ALL as i32) };
            if node.is_null() {
                return out;
            }
            let (mut ip, mut depth, mut nh) = (0u32, 0u8, 0u64);
            // SAFETY: a node of the tree.
            unsafe {
                sys::rte_rib_get_ip(node, &mut ip);
                sys::rte_rib_get_depth(node, &mut depth);
                sys::rte_rib_get_nh(node, &mut nh);
            }
            out.push((ip, depth, nh));
        }
    }
}

impl Drop for Fib4 {
    fn drop(&mut self) {
        // SAFETY: created by rte_fib_create and freed once, here.
        unsafe { sys::rte_fib_free(self.raw.as_ptr()) }
    }
}
