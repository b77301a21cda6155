//! The configuration protocol as bytes, sans-IO.
//!
//! Contract: a [`Decoder`] takes the bytes that one client sends, in pieces of any size,
//! and yields one [`Decoded`] per request: a typed [`Request`], or the error the request
//! earned. [`encode_response`] turns the device's answer into the bytes to send back.
//! Nothing here reads a socket or a clock or touches the device.
//!
//! The protocol as `wg` speaks it (wireguard-tools `src/ipc-uapi.h`) and wireguard-go
//! answers it (`device/uapi.go`): `get=1\n\n` is answered with `key=value` lines and
//! `errno=0\n\n`; `set=1\n` is followed by `key=value` lines and a blank line and is
//! answered with `errno=N\n\n`. Device keys come first; each `public_key` line starts a
//! peer, and every later line belongs to that peer. Keys are 64 hex digits. One
//! connection may carry several requests, one after the other.
//!
//! Error numbers go on the wire negated, `errno=-22` for EINVAL, as wireguard-go writes
//! them (`ipc/uapi_unix.go`: `IpcErrorInvalid = -int64(unix.EINVAL)`). `wg set` negates
//! the number back and prints "Unable to modify interface: Invalid argument"; `wg show`
//! reads only non-negative numbers and reports any failed get as "Protocol error".
//!
//! Where wgdp differs from wireguard-go, on purpose:
//! - A set request is parsed whole before anything is applied, and one bad line rejects
//!   all of it. wireguard-go applies lines as it reads them and stops at the first bad
//!   one, leaving the lines before it applied.
//! - A request is complete only at its blank line. A connection that ends before it has
//!   its partial request discarded; wireguard-go applies what it read.
//! - An unknown operation line, or `get=1\n` not followed by a blank line, leaves a
//!   stream that cannot be framed: wgdp answers `errno=-22` and the connection is closed.
//!   wireguard-go closes without an answer (or, for the second, answers and reads on).
//! - Lines longer than [`MAX_LINE`] and requests longer than the decoder's limit are
//!   rejected with EMSGSIZE. wireguard-go has a 64 KiB line limit (EIO) and no request
//!   limit.
//! - An endpoint with port 0 or a named IPv6 zone (`fe80::1%eth0`) is refused: wgdp
//!   sends from DPDK ports, which have no kernel interface names. Numeric zones work.
//! - `replace_peers` (`wg setconf`) keeps the sessions of the peers the request lists
//!   again; their configuration ends up as wireguard-go's would (`uapi::device`).
//! - A get answer lists `preshared_key` only for peers that have one, where wireguard-go
//!   prints 64 zeros; `wg` reads both as "no preshared key". `fwmark` is never listed.
//!
//! Key hygiene: private and preshared keys travel as [`Key`] (wiped on drop, `Debug`
//! redacted); the decoder wipes the bytes it has consumed and its buffer on drop, and the
//! encoded answer is a [`Zeroizing`] buffer sized up front so that it never reallocates
//! (which would leave a copy of a key in freed memory). Error messages name the line and
//! the key, never the bytes of a secret.

use crate::config::{Key, KEY_LEN};
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::{Zeroize, Zeroizing};

/// Longest line accepted in a request. The longest valid line, an endpoint with an IPv6
/// address, a numeric zone and a port, is under 80 bytes.
pub const MAX_LINE: usize = 1024;

/// Default limit on the size of one set request: about 30 000 peers as `wg setconf`
/// writes them (some 270 bytes a peer with one allowed IP).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 << 20;

/// Bytes the decoder buffers; the server reads at most this much at once.
const INPUT_CAPACITY: usize = 16 * 1024;

/// Errno that wireguard-go answers for an error it cannot classify (ENOANO,
/// `ipc/uapi_unix.go` `IpcErrorUnknown`).
const ERRNO_UNKNOWN: i32 = libc::ENOANO;

/// A request that failed, with the errno the client gets and a message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UapiError {
    errno: i32,
    message: String,
}

impl UapiError {
    /// An error with a positive errno value from `errno.h` (`libc::EADDRINUSE`, ...).
    /// Zero would read as success, so it becomes ENOANO, wireguard-go's "unknown"; a
    /// negative value is taken as already negated.
    pub fn new(errno: i32, message: impl Into<String>) -> UapiError {
        let errno = match errno.checked_abs() {
            Some(0) | None => ERRNO_UNKNOWN,
            Some(errno) => errno,
        };
        UapiError {
            errno,
            message: message.into(),
        }
    }

    /// EINVAL, the answer to every malformed value (wireguard-go `IpcErrorInvalid`).
    pub fn invalid(message: impl Into<String>) -> UapiError {
        UapiError::new(libc::EINVAL, message)
    }

    /// The errno, positive; the wire carries it negated.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for UapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.message, self.errno)
    }
}

impl std::error::Error for UapiError {}

/// One request from a client.
#[derive(Debug)]
pub enum Request {
    /// `get=1`: answer with [`Response::Device`].
    Get,
    /// `set=1`: apply the changes, answer [`Response::Applied`] or [`Response::Failed`].
    Set(SetRequest),
}

/// A new value for a private or preshared key.
#[derive(Debug, Clone)]
pub enum SecretUpdate {
    Set(Key),
    /// All zeros on the wire: no private key (the device stops answering handshakes), or
    /// no preshared key (the Noise handshake then mixes in 32 zero bytes, the same thing).
    Clear,
}

impl SecretUpdate {
    /// The key, `None` for [`SecretUpdate::Clear`].
    pub fn key(&self) -> Option<&Key> {
        match self {
            SecretUpdate::Set(key) => Some(key),
            SecretUpdate::Clear => None,
        }
    }
}

/// A `set=1` request, in the order wireguard-go applies it: the device fields, then
/// `replace_peers`, then each [`PeerChange`] in turn.
#[derive(Debug, Default)]
pub struct SetRequest {
    /// `private_key`. wireguard-go also removes any peer whose public key is the
    /// device's new public key.
    pub private_key: Option<SecretUpdate>,
    /// `listen_port`; 0 lets wireguard-go pick a free port. wireguard-go answers
    /// EADDRINUSE when it cannot bind.
    pub listen_port: Option<u16>,
    /// `fwmark`, a socket mark for the kernel's routing rules. Parsed and checked as
    /// wireguard-go does, and meant to be ignored: wgdp sends from DPDK ports, not
    /// kernel sockets, so there is nothing to mark (wireguard-go also ignores it on
    /// systems without socket marks). `wg setconf` always sends `fwmark=0`, so refusing
    /// it would break configuration files.
    pub fwmark: Option<u32>,
    /// `replace_peers=true`: remove every peer before applying `peers`. wgdp keeps the
    /// sessions of the peers that `peers` makes again (see [`crate::uapi::device`]);
    /// wireguard-go drops them.
    pub replace_peers: bool,
    /// One entry per `public_key` line, in order. A key may appear more than once.
    pub peers: Vec<PeerChange>,
}

/// The lines that follow one `public_key` line.
///
/// wireguard-go ignores the whole block when `public_key` is the device's own public
/// key.
#[derive(Clone)]
pub struct PeerChange {
    pub public_key: [u8; KEY_LEN],
    /// `remove=true`: remove the peer if it exists, and ignore every other field (the
    /// peer's other lines are still checked).
    pub remove: bool,
    /// `update_only=true`: change the peer only if it exists; never create it.
    pub update_only: bool,
    /// `preshared_key`.
    pub preshared_key: Option<SecretUpdate>,
    /// `endpoint`: where to send until the peer roams.
    pub endpoint: Option<SocketAddr>,
    /// `persistent_keepalive_interval` in seconds; `Some(0)` turns it off.
    /// wireguard-go sends a keepalive at once when it goes from off to on.
    pub persistent_keepalive: Option<u16>,
    /// `replace_allowed_ips=true`: drop every allowed IP the peer had before applying
    /// `allowed_ips`. Any `allowed_ip` lines before it in the same block are already
    /// left out of `allowed_ips`, as wireguard-go would have removed them again.
    pub replace_allowed_ips: bool,
    /// `allowed_ip` lines, in order, host bits cleared.
    pub allowed_ips: Vec<AllowedIpChange>,
}

impl PeerChange {
    fn new(public_key: [u8; KEY_LEN]) -> PeerChange {
        PeerChange {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

impl fmt::Debug for PeerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerChange")
            .field("public_key", &crate::keys::encode(&self.public_key))
            .field("remove", &self.remove)
            .field("update_only", &self.update_only)
            .field("preshared_key", &self.preshared_key)
            .field("endpoint", &self.endpoint)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("replace_allowed_ips", &self.replace_allowed_ips)
            .field("allowed_ips", &self.allowed_ips)
            .finish()
    }
}

/// One `allowed_ip` line: an address and prefix length, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedIpChange {
    /// `allowed_ip=10.0.0.0/24`. As in a routing table, the prefix moves to this peer if
    /// another peer had it.
    Add(IpAddr, u8),
    /// `allowed_ip=-10.0.0.0/24` (wireguard-go since 2025): remove the prefix if this
    /// peer has it.
    Remove(IpAddr, u8),
}

/// The answer to a request.
#[derive(Debug)]
pub enum Response {
    /// The answer to a get.
    Device(UapiDevice),
    /// A set that was applied.
    Applied,
    /// The request failed; its errno goes to the client.
    Failed(UapiError),
}

/// The device as a get describes it.
#[derive(Debug, Default)]
pub struct UapiDevice {
    pub private_key: Option<Key>,
    /// Not listed when 0.
    pub listen_port: u16,
    pub peers: Vec<UapiPeer>,
}

/// The device lines of a get answer, which come before its peers: what a handler that
/// lists the peers piece by piece gives first (`server::Handler`).
#[derive(Debug, Default, Clone)]
pub struct UapiInterface {
    pub private_key: Option<Key>,
    /// Not listed when 0.
    pub listen_port: u16,
}

/// One peer as a get describes it.
#[derive(Clone)]
pub struct UapiPeer {
    pub public_key: [u8; KEY_LEN],
    pub preshared_key: Option<Key>,
    pub endpoint: Option<SocketAddr>,
    /// When the last handshake completed; `None` is listed as 0, "never".
    pub last_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// `None` is listed as 0, "off".
    pub persistent_keepalive: Option<u16>,
    pub allowed_ips: Vec<(IpAddr, u8)>,
}

impl fmt::Debug for UapiPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UapiPeer")
            .field("public_key", &crate::keys::encode(&self.public_key))
            .field("preshared_key", &self.preshared_key)
            .field("endpoint", &self.endpoint)
            .field("last_handshake", &self.last_handshake)
            .field("rx_bytes", &self.rx_bytes)
            .field("tx_bytes", &self.tx_bytes)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("allowed_ips", &self.allowed_ips)
            .finish()
    }
}

/// What the decoder found at the end of a request.
#[derive(Debug)]
pub enum Decoded {
    /// A complete, valid request.
    Request(Request),
    /// A complete request that was malformed: answer with the error; nothing in it is to
    /// be applied. The connection goes on.
    Rejected(UapiError),
    /// The stream cannot be framed any more: answer with the error, then close. The
    /// decoder yields nothing after this.
    Desynced(UapiError),
}

/// Frames and parses the requests of one connection.
pub struct Decoder {
    /// `input[start..end]` is received and not yet consumed. Consumed bytes are wiped.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    state: State,
    max_request_bytes: usize,
}

enum State {
    /// Waiting for `get=1\n` or `set=1\n`.
    Operation,
    /// After `get=1\n`: the blank line.
    GetEnd,
    Set(SetBuilder),
    /// A set that failed: discarding its lines up to the blank line. `mid_line` when the
    /// bytes discarded last did not end a line.
    Failed {
        error: UapiError,
        mid_line: bool,
    },
    Desynced,
}

impl Decoder {
    /// A decoder that rejects set requests longer than `max_request_bytes`.
    pub fn new(max_request_bytes: usize) -> Decoder {
        Decoder {
            input: vec![0; INPUT_CAPACITY].into_boxed_slice(),
            start: 0,
            end: 0,
            state: State::Operation,
            max_request_bytes,
        }
    }

    /// Room for more input, to read into; then call [`Decoder::filled`]. Empty only
    /// when [`Decoder::decode`] has a request to give, or after [`Decoded::Desynced`].
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            let pending = self.end - self.start;
            self.input.copy_within(self.start..self.end, 0);
            self.input[pending..self.end].zeroize();
            self.start = 0;
            self.end = pending;
        }
        &mut self.input[self.end..]
    }

    /// Marks `n` bytes at the front of [`Decoder::spare`] as received.
    pub fn filled(&mut self, n: usize) {
        assert!(self.end + n <= self.input.len(), "filled beyond spare()");
        self.end += n;
    }

    /// Copies as much of `bytes` as fits; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.filled(n);
        n
    }

    /// Whether a request has begun and not yet ended. A connection that closes now loses
    /// that request.
    pub fn in_request(&self) -> bool {
        !matches!(self.state, State::Operation | State::Desynced) || self.start < self.end
    }

    /// The next complete request, if the input holds one.
    pub fn decode(&mut self) -> Option<Decoded> {
        loop {
            let step = match self.state {
                State::Desynced => return None,
                State::Operation => self.operation(),
                State::GetEnd => self.get_end(),
                State::Set(_) | State::Failed { .. } => self.body_line(),
            };
            match step {
                Step::NeedMore => return None,
                Step::Continue => {}
                Step::Done(decoded) => return Some(decoded),
            }
        }
    }

    fn pending(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.input[self.start..self.start + n].zeroize();
        self.start += n;
    }

    fn desync(&mut self, error: UapiError) -> Step {
        self.state = State::Desynced;
        Step::Done(Decoded::Desynced(error))
    }

    fn operation(&mut self) -> Step {
        const GET: &[u8] = b"get=1\n";
        const SET: &[u8] = b"set=1\n";
        let pending = self.pending();
        if pending.is_empty() {
            return Step::NeedMore;
        }
        let seen = &pending[..pending.len().min(GET.len())];
        if seen == GET {
            self.consume(GET.len());
            self.state = State::GetEnd;
            Step::Continue
        } else if seen == SET {
            self.consume(SET.len());
            self.state = State::Set(SetBuilder::new());
            Step::Continue
        } else if GET.starts_with(seen) || SET.starts_with(seen) {
            Step::NeedMore
        } else {
            let error = UapiError::invalid(format!(
                "unknown operation {:?}: expected get=1 or set=1",
                Shown(seen)
            ));
            self.desync(error)
        }
    }

    fn get_end(&mut self) -> Step {
        match self.pending().first() {
            None => Step::NeedMore,
            Some(b'\n') => {
                self.consume(1);
                self.state = State::Operation;
                Step::Done(Decoded::Request(Request::Get))
            }
            Some(&other) => {
                let error = UapiError::invalid(format!(
                    "get=1 followed by {:?} where a blank line ends it",
                    Shown(&[other])
                ));
                self.desync(error)
            }
        }
    }

    /// One line of a set request, or of a failed one being skipped.
    fn body_line(&mut self) -> Step {
        let pending = self.pending();
        let Some(len) = pending.iter().position(|&b| b == b'\n') else {
            if pending.len() < MAX_LINE {
                return Step::NeedMore;
            }
            // Too long to be a line of this protocol: drop what we have and skip the
            // rest of the line as it arrives.
            let n = pending.len();
            self.consume(n);
            self.fail(
                UapiError::new(
                    libc::EMSGSIZE,
                    format!("a line longer than {MAX_LINE} bytes"),
                ),
                true,
            );
            return Step::Continue;
        };
        let state = std::mem::replace(&mut self.state, State::Operation);
        let step = match state {
            State::Failed { error, mid_line } => {
                if len == 0 && !mid_line {
                    Step::Done(Decoded::Rejected(error))
                } else {
                    self.state = State::Failed {
                        error,
                        mid_line: false,
                    };
                    Step::Continue
                }
            }
            State::Set(mut builder) => {
                let line = &self.input[self.start..self.start + len];
                builder.bytes += len + 1;
                if len == 0 {
                    Step::Done(Decoded::Request(Request::Set(builder.request)))
                } else if builder.bytes > self.max_request_bytes {
                    let error = UapiError::new(
                        libc::EMSGSIZE,
                        format!(
                            "request longer than {} bytes (at line {})",
                            self.max_request_bytes,
                            builder.line + 1
                        ),
                    );
                    self.state = State::Failed {
                        error,
                        mid_line: false,
                    };
                    Step::Continue
                } else if len > MAX_LINE {
                    let error = UapiError::new(
                        libc::EMSGSIZE,
                        format!("line {}: longer than {MAX_LINE} bytes", builder.line + 1),
                    );
                    self.state = State::Failed {
                        error,
                        mid_line: false,
                    };
                    Step::Continue
                } else {
                    match builder.add_line(line) {
                        Ok(()) => self.state = State::Set(builder),
                        Err(error) => {
                            self.state = State::Failed {
                                error,
                                mid_line: false,
                            }
                        }
                    }
                    Step::Continue
                }
            }
            State::Operation | State::GetEnd | State::Desynced => {
                unreachable!("body_line outside a set request")
            }
        };
        self.consume(len + 1);
        step
    }

    fn fail(&mut self, error: UapiError, mid_line: bool) {
        // The first error of a request is the one reported.
        self.state = match std::mem::replace(&mut self.state, State::Operation) {
            State::Failed { error: first, .. } => State::Failed {
                error: first,
                mid_line,
            },
            _ => State::Failed { error, mid_line },
        };
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        self.input.zeroize();
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("pending_bytes", &(self.end - self.start))
            .field("in_request", &self.in_request())
            .finish()
    }
}

enum Step {
    NeedMore,
    Continue,
    Done(Decoded),
}

/// A set request being parsed.
struct SetBuilder {
    request: SetRequest,
    /// Lines read so far, counting `set=1` as line 1.
    line: usize,
    /// Bytes of the request so far, without `set=1\n`.
    bytes: usize,
}

impl SetBuilder {
    fn new() -> SetBuilder {
        SetBuilder {
            request: SetRequest::default(),
            line: 1,
            bytes: 0,
        }
    }

    /// One non-empty line. Errors carry the errno wireguard-go answers for the same line.
    fn add_line(&mut self, line: &[u8]) -> Result<(), UapiError> {
        self.line += 1;
        let number = self.line;
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            // The line may be a secret pasted in the wrong place: describe it only.
            return Err(UapiError::new(
                libc::EPROTO,
                format!("line {number}: no '=' in this {}-byte line", line.len()),
            ));
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        let result = if key == b"public_key" {
            parse_key(value).map(|key| {
                self.request.peers.push(PeerChange::new(key));
            })
        } else if let Some(peer) = self.request.peers.last_mut() {
            peer_line(peer, key, value)
        } else {
            device_line(&mut self.request, key, value)
        };
        result.map_err(|reason| {
            UapiError::invalid(format!("line {number}: {}: {reason}", Shown(key)))
        })
    }
}

fn device_line(request: &mut SetRequest, key: &[u8], value: &[u8]) -> Result<(), String> {
    match key {
        b"private_key" => request.private_key = Some(parse_secret(value)?),
        b"listen_port" => request.listen_port = Some(parse_u16(value)?),
        b"fwmark" => request.fwmark = Some(parse_number(value, u32::MAX.into())? as u32),
        b"replace_peers" => request.replace_peers = parse_true(value)?,
        _ => {
            return Err(
                "not a device key (private_key, listen_port, fwmark, replace_peers, \
                 public_key)"
                    .to_string(),
            )
        }
    }
    Ok(())
}

fn peer_line(peer: &mut PeerChange, key: &[u8], value: &[u8]) -> Result<(), String> {
    match key {
        b"remove" => peer.remove = parse_true(value)?,
        b"update_only" => peer.update_only = parse_true(value)?,
        b"preshared_key" => peer.preshared_key = Some(parse_secret(value)?),
        b"endpoint" => peer.endpoint = Some(parse_endpoint(value)?),
        b"persistent_keepalive_interval" => peer.persistent_keepalive = Some(parse_u16(value)?),
        b"replace_allowed_ips" => {
            peer.replace_allowed_ips = parse_true(value)?;
            peer.allowed_ips.clear();
        }
        b"allowed_ip" => peer.allowed_ips.push(parse_allowed_ip(value)?),
        b"protocol_version" => {
            if value != b"1" {
                return Err(format!("version {:?}; only 1 exists", Shown(value)));
            }
        }
        b"private_key" | b"listen_port" | b"fwmark" | b"replace_peers" => {
            return Err("a device key after a public_key line; device keys come first".into())
        }
        _ => {
            return Err(
                "not a peer key (remove, update_only, preshared_key, endpoint, \
                 persistent_keepalive_interval, replace_allowed_ips, allowed_ip, \
                 protocol_version)"
                    .to_string(),
            )
        }
    }
    Ok(())
}

/// A key in hex, as `wg` writes it (lowercase; uppercase is accepted as by
/// wireguard-go's `hex.DecodeString`). The reason never quotes the value.
fn parse_key(value: &[u8]) -> Result<[u8; KEY_LEN], String> {
    let mut key = [0; KEY_LEN];
    decode_hex(value, &mut key)?;
    Ok(key)
}

fn parse_secret(value: &[u8]) -> Result<SecretUpdate, String> {
    let mut key = Zeroizing::new([0; KEY_LEN]);
    decode_hex(value, &mut key)?;
    if *key == [0; KEY_LEN] {
        Ok(SecretUpdate::Clear)
    } else {
        Ok(SecretUpdate::Set(Key::from_bytes(*key)))
    }
}

fn decode_hex(value: &[u8], out: &mut [u8; KEY_LEN]) -> Result<(), String> {
    if value.len() != 2 * KEY_LEN {
        return Err(format!(
            "{} characters where a key has {} hex digits",
            value.len(),
            2 * KEY_LEN
        ));
    }
    for (i, byte) in out.iter_mut().enumerate() {
        let digit = |at: usize| {
            (value[at] as char)
                .to_digit(16)
                .ok_or_else(|| format!("not hex (bad character at position {})", at + 1))
        };
        // Both digits are below 16, so the byte cannot overflow.
        *byte = ((digit(2 * i)? << 4) | digit(2 * i + 1)?) as u8;
    }
    Ok(())
}

/// A decimal number as Go's `strconv.ParseUint(value, 10, bits)` takes it: digits only,
/// no sign, leading zeros allowed.
fn parse_number(value: &[u8], max: u64) -> Result<u64, String> {
    let bad = || format!("{:?} is not a number from 0 to {max}", Shown(value));
    if value.is_empty() {
        return Err(bad());
    }
    value.iter().try_fold(0u64, |number, &b| {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        number
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .filter(|&n| n <= max)
            .ok_or_else(bad)
    })
}

fn parse_u16(value: &[u8]) -> Result<u16, String> {
    // In range by the check.
    parse_number(value, u16::MAX.into()).map(|n| n as u16)
}

/// The flags take exactly `true`, as in wireguard-go; `wg` never sends anything else.
fn parse_true(value: &[u8]) -> Result<bool, String> {
    if value == b"true" {
        Ok(true)
    } else {
        Err(format!("{:?} where only \"true\" is valid", Shown(value)))
    }
}

/// `198.19.0.1:51820` or `[fd00::1]:51820`; `wg` resolves names before it sends.
fn parse_endpoint(value: &[u8]) -> Result<SocketAddr, String> {
    let text = std::str::from_utf8(value).ok();
    let endpoint: SocketAddr = text.and_then(|t| t.parse().ok()).ok_or_else(|| {
        format!(
            "{:?} is not IP:port or [IPv6]:port (numeric address, numeric zone)",
            Shown(value)
        )
    })?;
    if endpoint.port() == 0 {
        return Err(format!("{:?}: port 0", Shown(value)));
    }
    Ok(endpoint)
}

/// `10.0.0.0/24`, `fd00::/64`, or either with a leading `-` to remove it. Host bits are
/// cleared, as wireguard-go's allowed-IPs table does on insert.
fn parse_allowed_ip(value: &[u8]) -> Result<AllowedIpChange, String> {
    let (remove, prefix) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    let bad = || format!("{:?} is not an address/prefix-length", Shown(value));
    let text = std::str::from_utf8(prefix).map_err(|_| bad())?;
    let (addr, bits) = text.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    // Like Go's netip.ParsePrefix: no sign, no leading zeros.
    if bits.len() > 1 && bits.starts_with('0') {
        return Err(bad());
    }
    let len = parse_number(bits.as_bytes(), max).map_err(|_| {
        format!(
            "{:?}: prefix length is not a number from 0 to {max}",
            Shown(value)
        )
    })?;
    // In range by the check.
    let len = len as u8;
    let addr = mask(addr, len);
    Ok(if remove {
        AllowedIpChange::Remove(addr, len)
    } else {
        AllowedIpChange::Add(addr, len)
    })
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a) & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Client bytes in a message: escaped, and cut short, since they may be anything.
struct Shown<'a>(&'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        let cut = self.0.len() > MAX;
        write!(f, "\"{}", self.0[..self.0.len().min(MAX)].escape_ascii())?;
        f.write_str(if cut { "...\"" } else { "\"" })
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        write!(f, "{}", self.0[..self.0.len().min(MAX)].escape_ascii())
    }
}

/// Upper bounds of one line of a get answer, for sizing the buffer: a key line is
/// 78 bytes, the largest peer (every field at its widest, an IPv6 endpoint with a zone)
/// is under 430, an IPv6 allowed IP 61, the device lines and errno under 120.
pub(crate) const DEVICE_BOUND: usize = 256;
const PEER_BOUND: usize = 512;
const ALLOWED_IP_BOUND: usize = 64;

/// The last line of a get answer that succeeded, and the blank line that ends it.
pub(crate) const GET_END: &[u8] = b"errno=0\n\n";

/// The bytes that answer a request, ending with `errno=N` and a blank line.
pub fn encode_response(response: &Response) -> Zeroizing<Vec<u8>> {
    let bound = match response {
        Response::Device(device) => {
            DEVICE_BOUND + device.peers.iter().map(peer_bound).sum::<usize>()
        }
        Response::Applied | Response::Failed(_) => DEVICE_BOUND,
    };
    let mut out = Zeroizing::new(Vec::with_capacity(bound));
    let capacity = out.capacity();
    match response {
        Response::Device(device) => {
            write_interface(&mut out, device.private_key.as_ref(), device.listen_port);
            for peer in &device.peers {
                write_peer(&mut out, peer);
            }
            out.extend_from_slice(GET_END);
        }
        Response::Applied => out.extend_from_slice(b"errno=0\n\n"),
        Response::Failed(error) => put(&mut out, format_args!("errno=-{}\n", error.errno)),
    }
    debug_assert_eq!(
        out.capacity(),
        capacity,
        "the answer outgrew its bound and was reallocated"
    );
    out
}

/// At least the bytes [`write_peer`] writes for `peer`.
pub(crate) fn peer_bound(peer: &UapiPeer) -> usize {
    PEER_BOUND + ALLOWED_IP_BOUND * peer.allowed_ips.len()
}

/// The device lines that wireguard-go's `IpcGetOperation` writes before the peers (at
/// most [`DEVICE_BOUND`] bytes).
pub(crate) fn write_interface(out: &mut Vec<u8>, private_key: Option<&Key>, listen_port: u16) {
    if let Some(key) = private_key {
        put_key(out, "private_key", key.as_bytes());
    }
    if listen_port != 0 {
        put(out, format_args!("listen_port={listen_port}"));
    }
}

/// The lines of one peer, in wireguard-go's order (at most [`peer_bound`] bytes).
pub(crate) fn write_peer(out: &mut Vec<u8>, peer: &UapiPeer) {
    put_key(out, "public_key", &peer.public_key);
    if let Some(psk) = &peer.preshared_key {
        put_key(out, "preshared_key", psk.as_bytes());
    }
    put(out, format_args!("protocol_version=1"));
    if let Some(endpoint) = peer.endpoint {
        put(out, format_args!("endpoint={endpoint}"));
    }
    let since_epoch = peer
        .last_handshake
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    put(
        out,
        format_args!("last_handshake_time_sec={}", since_epoch.as_secs()),
    );
    put(
        out,
        format_args!("last_handshake_time_nsec={}", since_epoch.subsec_nanos()),
    );
    put(out, format_args!("tx_bytes={}", peer.tx_bytes));
    put(out, format_args!("rx_bytes={}", peer.rx_bytes));
    put(
        out,
        format_args!(
            "persistent_keepalive_interval={}",
            peer.persistent_keepalive.unwrap_or(0)
        ),
    );
    for &(addr, len) in &peer.allowed_ips {
        put(out, format_args!("allowed_ip={}/{len}", mask(addr, len)));
    }
}

fn put(out: &mut Vec<u8>, line: fmt::Arguments<'_>) {
    // Writing into a Vec cannot fail.
    let _ = out.write_fmt(line);
    out.push(b'\n');
}

fn put_key(out: &mut Vec<u8>, name: &str, key: &[u8; KEY_LEN]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    for &b in key {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Keys of the requests below, captured from `wg` (wireguard-tools v1.0.20210914).
    const PEER_HEX: &str = "b3f0db210918491e39f8ad10651be1bf03733432157667aa15f47273909b643c";
    const PRIVATE_HEX: &str = "a82cc39212030442303ec692c4dd5683f87a5cade266f3de7b8bc2d81240de5d";
    const PSK_HEX: &str = "ca6b317e7d36e491f940ef8e7ad4bfa7dfa7753707ad68bad9638c4553a94cdc";

    fn hex_key(text: &str) -> [u8; KEY_LEN] {
        parse_key(text.as_bytes()).unwrap()
    }

    fn decode_all(bytes: &[u8]) -> Vec<Decoded> {
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            while let Some(decoded) = decoder.decode() {
                out.push(decoded);
            }
            if rest.is_empty() {
                return out;
            }
            let n = decoder.push(rest);
            rest = &rest[n..];
        }
    }

    fn one(bytes: &[u8]) -> Decoded {
        let mut all = decode_all(bytes);
        assert_eq!(all.len(), 1, "{all:?}");
        all.pop().unwrap()
    }

    fn set(bytes: &[u8]) -> SetRequest {
        match one(bytes) {
            Decoded::Request(Request::Set(set)) => set,
            other => panic!("not a set: {other:?}"),
        }
    }

    fn rejected(bytes: &[u8]) -> UapiError {
        match one(bytes) {
            Decoded::Rejected(error) => error,
            other => panic!("not rejected: {other:?}"),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn wg_set_peer_with_allowed_ips_endpoint_and_keepalive() {
        // wg set IF peer KEY allowed-ips 198.18.1.0/24 endpoint 198.19.0.1:51820
        //        persistent-keepalive 25
        let bytes = format!(
            "set=1\npublic_key={PEER_HEX}\nendpoint=198.19.0.1:51820\n\
             persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
             allowed_ip=198.18.1.0/24\n\n"
        );
        let set = set(bytes.as_bytes());
        assert!(set.private_key.is_none());
        assert_eq!((set.listen_port, set.fwmark), (None, None));
        assert!(!set.replace_peers);
        assert_eq!(set.peers.len(), 1);
        let peer = &set.peers[0];
        assert_eq!(peer.public_key, hex_key(PEER_HEX));
        assert_eq!(peer.public_key[0], 0xb3);
        assert_eq!(peer.endpoint, Some("198.19.0.1:51820".parse().unwrap()));
        assert_eq!(peer.persistent_keepalive, Some(25));
        assert!(peer.replace_allowed_ips);
        assert_eq!(
            peer.allowed_ips,
            [AllowedIpChange::Add(ip("198.18.1.0"), 24)]
        );
        assert!(!peer.remove && !peer.update_only && peer.preshared_key.is_none());
    }

    #[test]
    fn wg_set_peer_remove() {
        let bytes = format!("set=1\npublic_key={PEER_HEX}\nremove=true\n\n");
        let set = set(bytes.as_bytes());
        assert_eq!(set.peers.len(), 1);
        assert!(set.peers[0].remove);
        assert_eq!(set.peers[0].public_key, hex_key(PEER_HEX));
    }

    #[test]
    fn wg_set_device_keys_and_a_peer_with_psk_and_ipv6() {
        // wg set IF listen-port 51820 private-key FILE fwmark 0x10 peer KEY
        //        preshared-key FILE allowed-ips 10.0.0.1/32,fd00::/64 endpoint [fd00::1]:51820
        let bytes = format!(
            "set=1\nprivate_key={PRIVATE_HEX}\nlisten_port=51820\nfwmark=16\n\
             public_key={PEER_HEX}\npreshared_key={PSK_HEX}\nendpoint=[fd00::1]:51820\n\
             replace_allowed_ips=true\nallowed_ip=10.0.0.1/32\nallowed_ip=fd00::/64\n\n"
        );
        let set = set(bytes.as_bytes());
        let private = set.private_key.as_ref().and_then(|k| k.key()).unwrap();
        assert_eq!(private.as_bytes(), &hex_key(PRIVATE_HEX));
        assert_eq!(set.listen_port, Some(51820));
        assert_eq!(set.fwmark, Some(16));
        let peer = &set.peers[0];
        let psk = peer.preshared_key.as_ref().and_then(|k| k.key()).unwrap();
        assert_eq!(psk.as_bytes(), &hex_key(PSK_HEX));
        assert_eq!(peer.endpoint, Some("[fd00::1]:51820".parse().unwrap()));
        assert_eq!(
            peer.allowed_ips,
            [
                AllowedIpChange::Add(ip("10.0.0.1"), 32),
                AllowedIpChange::Add(ip("fd00::"), 64)
            ]
        );
    }

    #[test]
    fn wg_setconf_replaces_peers() {
        let bytes = format!(
            "set=1\nprivate_key={PRIVATE_HEX}\nlisten_port=51821\nfwmark=0\n\
             replace_peers=true\npublic_key={PEER_HEX}\nreplace_allowed_ips=true\n\
             allowed_ip=10.1.0.0/16\n\n"
        );
        let set = set(bytes.as_bytes());
        assert!(set.replace_peers);
        assert_eq!(set.fwmark, Some(0));
        assert_eq!(set.listen_port, Some(51821));
        assert_eq!(
            set.peers[0].allowed_ips,
            [AllowedIpChange::Add(ip("10.1.0.0"), 16)]
        );
    }

    #[test]
    fn wg_set_empty_allowed_ips_replaces_with_nothing() {
        let bytes = format!("set=1\npublic_key={PEER_HEX}\nreplace_allowed_ips=true\n\n");
        let set = set(bytes.as_bytes());
        assert!(set.peers[0].replace_allowed_ips);
        assert!(set.peers[0].allowed_ips.is_empty());
    }

    #[test]
    fn get_and_empty_set() {
        assert!(matches!(one(b"get=1\n\n"), Decoded::Request(Request::Get)));
        let set = set(b"set=1\n\n");
        assert!(set.peers.is_empty() && set.private_key.is_none());
    }

    #[test]
    fn zero_keys_clear_and_flags_and_removal() {
        let zeros = "0".repeat(64);
        let bytes = format!(
            "set=1\nprivate_key={zeros}\npublic_key={PEER_HEX}\nupdate_only=true\n\
             preshared_key={zeros}\nprotocol_version=1\npersistent_keepalive_interval=0\n\
             allowed_ip=10.9.0.0/16\nreplace_allowed_ips=true\nallowed_ip=10.0.0.7/8\n\
             allowed_ip=-fd00::1/48\nallowed_ip=::/0\n\n"
        );
        let set = set(bytes.as_bytes());
        assert!(matches!(set.private_key, Some(SecretUpdate::Clear)));
        let peer = &set.peers[0];
        assert!(peer.update_only);
        assert!(matches!(peer.preshared_key, Some(SecretUpdate::Clear)));
        assert_eq!(peer.persistent_keepalive, Some(0));
        // The allowed_ip before replace_allowed_ips is gone; host bits are cleared.
        assert_eq!(
            peer.allowed_ips,
            [
                AllowedIpChange::Add(ip("10.0.0.0"), 8),
                AllowedIpChange::Remove(ip("fd00::"), 48),
                AllowedIpChange::Add(ip("::"), 0),
            ]
        );
    }

    #[test]
    fn uppercase_hex_and_leading_zeros_are_accepted_like_go() {
        let bytes = format!(
            "set=1\nlisten_port=0051820\npublic_key={}\nendpoint=[fe80::1%2]:7\n\n",
            PEER_HEX.to_uppercase()
        );
        let set = set(bytes.as_bytes());
        assert_eq!(set.listen_port, Some(51820));
        assert_eq!(set.peers[0].public_key, hex_key(PEER_HEX));
        assert_eq!(
            set.peers[0].endpoint,
            Some("[fe80::1%2]:7".parse().unwrap())
        );
    }

    #[test]
    fn several_peers_and_repeated_keys_in_order() {
        let other = "11".repeat(32);
        let bytes = format!(
            "set=1\npublic_key={PEER_HEX}\nremove=true\npublic_key={other}\n\
             public_key={PEER_HEX}\nendpoint=1.2.3.4:5\n\n"
        );
        let set = set(bytes.as_bytes());
        assert_eq!(set.peers.len(), 3);
        assert!(set.peers[0].remove);
        assert_eq!(set.peers[1].public_key, [0x11; 32]);
        assert!(!set.peers[2].remove);
        assert_eq!(set.peers[2].endpoint, Some("1.2.3.4:5".parse().unwrap()));
    }

    #[test]
    fn requests_split_at_every_byte_and_back_to_back() {
        let bytes =
            format!("get=1\n\nset=1\npublic_key={PEER_HEX}\nremove=true\n\nget=1\n\nset=1\n\n");
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        let mut kinds = Vec::new();
        for &b in bytes.as_bytes() {
            assert_eq!(decoder.push(&[b]), 1);
            while let Some(decoded) = decoder.decode() {
                kinds.push(match decoded {
                    Decoded::Request(Request::Get) => "get",
                    Decoded::Request(Request::Set(_)) => "set",
                    other => panic!("{other:?}"),
                });
            }
        }
        assert_eq!(kinds, ["get", "set", "get", "set"]);
        assert!(!decoder.in_request());
    }

    #[test]
    fn a_partial_request_is_reported_in_progress() {
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        assert!(!decoder.in_request());
        decoder.push(b"se");
        assert!(decoder.decode().is_none());
        assert!(decoder.in_request());
        decoder.push(b"t=1\nlisten_port=1\n");
        assert!(decoder.decode().is_none());
        assert!(decoder.in_request());
    }

    /// Every malformed line, with the errno wireguard-go answers for it.
    #[test]
    fn errors_carry_wireguard_go_errno_and_say_where() {
        let key = format!("public_key={PEER_HEX}\n");
        let cases: Vec<(String, i32, &str)> = vec![
            ("private_key\n".into(), libc::EPROTO, "line 2: no '='"),
            (
                "private_key=abc\n".into(),
                libc::EINVAL,
                "private_key: 3 characters",
            ),
            (
                format!("private_key={}g\n", "0".repeat(63)),
                libc::EINVAL,
                "not hex (bad character at position 64)",
            ),
            ("listen_port=65536\n".into(), libc::EINVAL, "listen_port"),
            ("listen_port=+1\n".into(), libc::EINVAL, "from 0 to 65535"),
            ("listen_port=\n".into(), libc::EINVAL, "listen_port"),
            ("fwmark=0x10\n".into(), libc::EINVAL, "fwmark"),
            ("fwmark=4294967296\n".into(), libc::EINVAL, "4294967295"),
            (
                "replace_peers=false\n".into(),
                libc::EINVAL,
                "only \"true\"",
            ),
            (
                "allowed_ip=10.0.0.0/8\n".into(),
                libc::EINVAL,
                "not a device key",
            ),
            (
                "public_key=00\n".into(),
                libc::EINVAL,
                "public_key: 2 characters",
            ),
            (
                format!("{key}listen_port=1\n"),
                libc::EINVAL,
                "device keys come first",
            ),
            (format!("{key}remove=1\n"), libc::EINVAL, "remove"),
            (
                format!("{key}update_only=yes\n"),
                libc::EINVAL,
                "update_only",
            ),
            (
                format!("{key}replace_allowed_ips=\n"),
                libc::EINVAL,
                "replace_allowed_ips",
            ),
            (
                format!("{key}preshared_key=zz\n"),
                libc::EINVAL,
                "preshared_key",
            ),
            (
                format!("{key}endpoint=1.2.3.4\n"),
                libc::EINVAL,
                "not IP:port",
            ),
            (
                format!("{key}endpoint=::1:51820\n"),
                libc::EINVAL,
                "not IP:port",
            ),
            (
                format!("{key}endpoint=example.com:1\n"),
                libc::EINVAL,
                "not IP:port",
            ),
            (
                format!("{key}endpoint=[fe80::1%eth0]:1\n"),
                libc::EINVAL,
                "numeric zone",
            ),
            (format!("{key}endpoint=1.2.3.4:0\n"), libc::EINVAL, "port 0"),
            (
                format!("{key}persistent_keepalive_interval=70000\n"),
                libc::EINVAL,
                "persistent_keepalive_interval",
            ),
            (
                format!("{key}allowed_ip=10.0.0.0\n"),
                libc::EINVAL,
                "address/prefix-length",
            ),
            (
                format!("{key}allowed_ip=10.0.0.0/33\n"),
                libc::EINVAL,
                "from 0 to 32",
            ),
            (
                format!("{key}allowed_ip=fd00::/129\n"),
                libc::EINVAL,
                "from 0 to 128",
            ),
            (
                format!("{key}allowed_ip=10.0.0.0/08\n"),
                libc::EINVAL,
                "allowed_ip",
            ),
            (
                format!("{key}allowed_ip=010.0.0.0/8\n"),
                libc::EINVAL,
                "allowed_ip",
            ),
            (
                format!("{key}allowed_ip=fe80::%2/64\n"),
                libc::EINVAL,
                "allowed_ip",
            ),
            (format!("{key}allowed_ip=\n"), libc::EINVAL, "allowed_ip"),
            (
                format!("{key}protocol_version=2\n"),
                libc::EINVAL,
                "only 1 exists",
            ),
            (format!("{key}rx_bytes=1\n"), libc::EINVAL, "not a peer key"),
            (
                format!("{key}endpoint=\u{e9}:1\n"),
                libc::EINVAL,
                "\\xc3\\xa9",
            ),
        ];
        for (body, errno, expected) in cases {
            let request = format!("set=1\n{body}\n");
            let error = rejected(request.as_bytes());
            assert_eq!(error.errno(), errno, "{body:?}: {error}");
            assert!(error.message().contains(expected), "{body:?}: {error}");
        }
    }

    #[test]
    fn errors_never_quote_secrets() {
        let secret = "5".repeat(63);
        for key in ["private_key", "preshared_key"] {
            let request = format!("set=1\npublic_key={PEER_HEX}\n{key}={secret}\n\n");
            let error = rejected(request.as_bytes());
            assert!(!error.message().contains("555"), "{error}");
        }
        let error = rejected(format!("set=1\n{PRIVATE_HEX}\n\n").as_bytes());
        assert!(!error.message().contains(&PRIVATE_HEX[..8]), "{error}");
    }

    #[test]
    fn the_first_error_is_reported_and_the_request_is_skipped_to_its_end() {
        let all =
            decode_all(b"set=1\nlisten_port=x\nfwmark=y\nnonsense\n\nset=1\nlisten_port=7\n\n");
        assert_eq!(all.len(), 2, "{all:?}");
        match &all[0] {
            Decoded::Rejected(error) => assert!(error.message().contains("listen_port")),
            other => panic!("{other:?}"),
        }
        match &all[1] {
            Decoded::Request(Request::Set(set)) => assert_eq!(set.listen_port, Some(7)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_operations_desync_the_stream() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"get=2\n\n",
            b"\nget=1\n\n",
            b"set=1\r\n",
            b"get=1\nx\n",
        ] {
            let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
            decoder.push(bytes);
            match decoder.decode() {
                Some(Decoded::Desynced(error)) => assert_eq!(error.errno(), libc::EINVAL),
                other => panic!("{:?}: {other:?}", bytes.escape_ascii().to_string()),
            }
            decoder.push(b"get=1\n\n");
            assert!(decoder.decode().is_none());
        }
    }

    #[test]
    fn garbage_is_refused_before_a_newline_arrives() {
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        decoder.push(b"ge");
        assert!(decoder.decode().is_none());
        decoder.push(b"x");
        assert!(matches!(decoder.decode(), Some(Decoded::Desynced(_))));
    }

    #[test]
    fn overlong_lines_are_rejected_without_being_buffered() {
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        decoder.push(b"set=1\nendpoint=");
        let junk = vec![b'1'; 4096];
        for _ in 0..256 {
            let mut rest = &junk[..];
            while !rest.is_empty() {
                let n = decoder.push(rest);
                assert!(n > 0, "the decoder stopped taking input");
                rest = &rest[n..];
                assert!(decoder.decode().is_none());
            }
        }
        // "\n" ends the long line, the next "\n" the request.
        decoder.push(b"\n\nget=1\n\n");
        match decoder.decode() {
            Some(Decoded::Rejected(error)) => {
                assert_eq!(error.errno(), libc::EMSGSIZE);
                assert!(error.message().contains("longer than 1024"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decoder.decode(),
            Some(Decoded::Request(Request::Get))
        ));
    }

    #[test]
    fn a_line_over_the_limit_that_arrives_whole_is_rejected() {
        let request = format!("set=1\nendpoint={}\n\n", "1".repeat(2000));
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        decoder.push(request.as_bytes());
        match decoder.decode() {
            Some(Decoded::Rejected(error)) => assert_eq!(error.errno(), libc::EMSGSIZE),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_over_the_size_limit_are_rejected() {
        let mut decoder = Decoder::new(1000);
        decoder.push(b"set=1\n");
        let line = format!("public_key={PEER_HEX}\nallowed_ip=10.0.0.0/8\n");
        for _ in 0..20 {
            decoder.push(line.as_bytes());
            assert!(decoder.decode().is_none());
        }
        decoder.push(b"\n");
        match decoder.decode() {
            Some(Decoded::Rejected(error)) => {
                assert_eq!(error.errno(), libc::EMSGSIZE);
                assert!(error.message().contains("longer than 1000"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        // Just under the limit is fine.
        let mut decoder = Decoder::new(line.len() + 1);
        decoder.push(format!("set=1\n{line}\n").as_bytes());
        assert!(matches!(
            decoder.decode(),
            Some(Decoded::Request(Request::Set(_)))
        ));
    }

    #[test]
    fn consumed_bytes_are_wiped() {
        let mut decoder = Decoder::new(DEFAULT_MAX_REQUEST_BYTES);
        decoder.push(format!("set=1\nprivate_key={PRIVATE_HEX}\n\nget=1\n").as_bytes());
        assert!(decoder.decode().is_some());
        let pattern = &PRIVATE_HEX.as_bytes()[..16];
        assert!(!decoder.input.windows(16).any(|w| w == pattern));
        decoder.spare();
        assert!(decoder.input[..6].starts_with(b"get=1\n"));
        assert!(decoder.input[6..].iter().all(|&b| b == 0));
    }

    fn sample_device() -> UapiDevice {
        UapiDevice {
            private_key: Some(Key::from_bytes(hex_key(PRIVATE_HEX))),
            listen_port: 51820,
            peers: vec![
                UapiPeer {
                    public_key: hex_key(PEER_HEX),
                    preshared_key: Some(Key::from_bytes(hex_key(PSK_HEX))),
                    endpoint: Some("198.19.0.1:51820".parse().unwrap()),
                    last_handshake: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
                    rx_bytes: 1234,
                    tx_bytes: 5678,
                    persistent_keepalive: Some(25),
                    allowed_ips: vec![(ip("198.18.1.0"), 24), (ip("fd00::"), 64)],
                },
                UapiPeer {
                    public_key: [0x11; 32],
                    preshared_key: None,
                    endpoint: Some("[fd00::1]:51821".parse().unwrap()),
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                    persistent_keepalive: None,
                    allowed_ips: vec![],
                },
            ],
        }
    }

    #[test]
    fn get_answer_has_wireguard_go_lines_in_order() {
        let bytes = encode_response(&Response::Device(sample_device()));
        let expected = format!(
            "private_key={PRIVATE_HEX}\nlisten_port=51820\n\
             public_key={PEER_HEX}\npreshared_key={PSK_HEX}\nprotocol_version=1\n\
             endpoint=198.19.0.1:51820\nlast_handshake_time_sec=1700000000\n\
             last_handshake_time_nsec=123456789\ntx_bytes=5678\nrx_bytes=1234\n\
             persistent_keepalive_interval=25\nallowed_ip=198.18.1.0/24\n\
             allowed_ip=fd00::/64\n\
             public_key={}\nprotocol_version=1\nendpoint=[fd00::1]:51821\n\
             last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\n\
             rx_bytes=0\npersistent_keepalive_interval=0\nerrno=0\n\n",
            "11".repeat(32)
        );
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
    }

    #[test]
    fn empty_device_and_unmasked_prefixes() {
        let device = UapiDevice {
            private_key: None,
            listen_port: 0,
            peers: vec![UapiPeer {
                public_key: [1; 32],
                preshared_key: None,
                endpoint: None,
                last_handshake: Some(UNIX_EPOCH - Duration::from_secs(1)),
                rx_bytes: u64::MAX,
                tx_bytes: 0,
                persistent_keepalive: Some(0),
                allowed_ips: vec![(ip("10.1.2.3"), 16)],
            }],
        };
        let bytes = encode_response(&Response::Device(device));
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("private_key") && !text.contains("listen_port"));
        assert!(!text.contains("endpoint"));
        assert!(text.contains("last_handshake_time_sec=0\n"));
        assert!(text.contains("rx_bytes=18446744073709551615\n"));
        assert!(text.contains("allowed_ip=10.1.0.0/16\n"));
        assert_eq!(
            &*encode_response(&Response::Device(UapiDevice::default())),
            b"errno=0\n\n"
        );
    }

    #[test]
    fn set_answers_and_negative_errno() {
        assert_eq!(&*encode_response(&Response::Applied), b"errno=0\n\n");
        let failed = Response::Failed(UapiError::new(libc::EADDRINUSE, "port taken"));
        assert_eq!(&*encode_response(&failed), b"errno=-98\n\n");
        assert_eq!(UapiError::new(-22, "x").errno(), 22);
        assert_eq!(UapiError::new(0, "x").errno(), libc::ENOANO);
        assert_eq!(UapiError::new(i32::MIN, "x").errno(), libc::ENOANO);
    }

    /// What the get answer says, read back the way `wg` reads it, gives the same device.
    #[test]
    fn get_answer_round_trips_through_a_set() {
        let device = sample_device();
        let answer = encode_response(&Response::Device(device));
        let text = std::str::from_utf8(&answer).unwrap();
        let body = text.strip_suffix("errno=0\n\n").unwrap();
        // Lines a set does not take are the statistics.
        let settable: String = body
            .lines()
            .filter(|l| {
                !["last_handshake", "tx_bytes", "rx_bytes"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let set = set(format!("set=1\n{settable}\n").as_bytes());
        let original = sample_device();
        assert_eq!(
            set.private_key
                .as_ref()
                .and_then(|k| k.key())
                .unwrap()
                .as_bytes(),
            original.private_key.as_ref().unwrap().as_bytes()
        );
        assert_eq!(set.listen_port, Some(original.listen_port));
        assert_eq!(set.peers.len(), original.peers.len());
        for (change, peer) in set.peers.iter().zip(&original.peers) {
            assert_eq!(change.public_key, peer.public_key);
            assert_eq!(
                change
                    .preshared_key
                    .as_ref()
                    .and_then(|k| k.key())
                    .map(|k| *k.as_bytes()),
                peer.preshared_key.as_ref().map(|k| *k.as_bytes())
            );
            assert_eq!(change.endpoint, peer.endpoint);
            assert_eq!(
                change.persistent_keepalive,
                Some(peer.persistent_keepalive.unwrap_or(0))
            );
            let allowed: Vec<_> = peer
                .allowed_ips
                .iter()
                .map(|&(a, l)| AllowedIpChange::Add(a, l))
                .collect();
            assert_eq!(change.allowed_ips, allowed);
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!("{:?}", sample_device());
        assert!(!text.contains(&PRIVATE_HEX[..8]) && !text.contains(&PSK_HEX[..8]));
        assert!(text.contains("<redacted>"));
        // Public keys print as `wg` shows them.
        assert!(text.contains(&crate::keys::encode(&hex_key(PEER_HEX))));
        let request = format!(
            "set=1\nprivate_key={PRIVATE_HEX}\npublic_key={PEER_HEX}\npreshared_key={PSK_HEX}\n\n"
        );
        let text = format!("{:?}", set(request.as_bytes()));
        assert!(!text.contains(&crate::keys::encode(&hex_key(PRIVATE_HEX))));
        assert!(!text.contains(&crate::keys::encode(&hex_key(PSK_HEX))));
    }
}
