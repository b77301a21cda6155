//! `wg show` and `wg set` for wgdp: the WireGuard cross-platform configuration protocol
//! ("UAPI", <https://www.wireguard.com/xplatform/>) on the Unix socket that `wg` looks
//! for, `/var/run/wireguard/NAME.sock`.
//!
//! Two layers, in the crate's usual split:
//! - [`protocol`]: sans-IO. A [`Decoder`] turns the bytes of one connection into typed
//!   [`Request`]s; [`encode_response`] turns a [`Response`] into bytes. It knows nothing
//!   of sockets, clocks or the gateway.
//! - [`server`]: the non-blocking socket. [`Server::serve`] (or [`Server::poll`]) is
//!   called from the control loop; it accepts, reads, hands each complete request to the
//!   caller's [`Handler`] and writes the answer, without ever blocking. A get is
//!   streamed: its peers are asked of the handler a batch per poll while the client
//!   reads, so a device of a million peers holds up no poll for long.
//!
//! - [`device`]: the control plane as a [`UapiDevice`], or as a [`Handler`] that lists
//!   its peers piece by piece ([`device::Served`]), and a [`SetRequest`] applied to it; the docs of [`SetRequest`] and [`PeerChange`] say what each change means in
//!   wireguard-go, the reference implementation.

mod answer;
pub mod device;
pub mod protocol;
pub mod server;

pub use protocol::{
    encode_response, AllowedIpChange, Decoded, Decoder, PeerChange, Request, Response,
    SecretUpdate, SetRequest, UapiDevice, UapiError, UapiInterface, UapiPeer,
};
pub use server::{Handler, Limits, Server, ServerError, ServerStats, SOCKET_DIR};
