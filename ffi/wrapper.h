/*
 * The DPDK API surface that wgdp binds. build.rs runs bindgen over this file
 * with every flag of `pkg-config --cflags libdpdk` (which force-includes
 * rte_config.h), and compiles the generated wrappers for the static-inline
 * functions with the same flags.
 */
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_cryptodev.h>
#include <rte_telemetry.h>
#include <rte_bus_vdev.h>
#include <rte_dev.h>
#include <rte_version.h>
/* Measured against the stages' flight queue (dataplane/examples/reorder_cost.rs). */
#include <rte_reorder.h>
/*
 * DPDK's longest-prefix-match tables (DIR-24-8 for IPv4, a trie for IPv6) and
 * the heap statistics their memory is counted with: measured against the
 * allowed-IPs table (dataplane/examples/fib_cost.rs); rte_fib holds the IPv4
 * allowed IPs (ffi/src/fib.rs), walked through its rte_rib.
 */
#include <rte_malloc.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_rib.h>
/*
 * The ring PMD's constructor: a port over rings that tests stand in for the
 * wire with. The driver library is linked for this one symbol (see port.rs).
 */
#include <rte_eth_ring.h>

/*
 * rte_errno is a thread-local variable (RTE_PER_LCORE); Rust cannot name a C
 * thread-local, so it is read through this function.
 */
static inline int wgdp_rte_errno(void)
{
	return rte_errno;
}
