//! `wg show` and `wg set` for wgdp: the WireGuard cross-platform configuration protocol
//! ("UAPI", <https://www.wireguard.com/xplatform/>) on the Unix socket that `wg` looks
//! for, `/var/run/wireguard/NAME.sock`.
//!
//! Two layers, in the crate's usual split:
//! - [`protocol`]: sans-IO. A [`Decoder`] turns the bytes of one connection into typed
//!   [`Request`]s; [`encode_response`] turns a [`Response`] into bytes. It knows nothing
//!   of sockets, clocks or the gateway.
//! - [`server`]: the non-blocking socket. [`Server::poll`] is called from the control
//!   loop; it accepts, reads, hands each complete request to the caller's handler and
//!   writes the answer, without ever blocking.
//!
//! - [`device`]: the control plane as a [`UapiDevice`], and a [`SetRequest`] applied to
//!   it; the docs of [`SetRequest`] and [`PeerChange`] say what each change means in
//!   wireguard-go, the reference implementation.

pub mod device;
pub mod protocol;
pub mod server;

pub use protocol::{
    encode_response, AllowedIpChange, Decoded, Decoder, PeerChange, Request, Response,
    SecretUpdate, SetRequest, UapiDevice, UapiError, UapiPeer,
};
pub use server::{Limits, Server, ServerError, ServerStats, SOCKET_DIR};
