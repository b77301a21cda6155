/*
 * The Intel IPsec-MB library (libipsec-mb-dev 1.3 on Debian 12), which wgdp
 * calls directly from a worker for in-line ChaCha20-Poly1305. build.rs runs a
 * second bindgen over this file.
 */
#include <stdint.h>
#include <stddef.h>
#include <intel-ipsec-mb.h>
