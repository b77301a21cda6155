//! The UAPI socket, served from the control loop without blocking it.
//!
//! Contract: [`Server::bind`] creates `DIR/NAME.sock` (the directory 0755 if missing,
//! the socket 0600 so that only root may connect, as wireguard-go does in
//! `ipc/uapi_unix.go`). It refuses a name that another live process answers on and
//! replaces a stale socket left by a process that died. Dropping the server removes the
//! socket file, if it is still ours.
//!
//! [`Server::poll`] is meant to be called on every iteration of the control loop. It
//! accepts, reads and writes only what the sockets have ready, and does a bounded amount
//! of work per connection per call; the one thing that may take time is the handler it
//! calls with each complete request. Each connection answers its requests one at a
//! time, in order: the next request is not read until the last answer is written.
//!
//! Bounds: at most [`Limits::max_connections`] at once (more are accepted and closed at
//! once, so a client fails fast rather than hanging); a request is rejected as soon as it
//! passes [`Limits::max_request_bytes`], and the rest of it is skipped, not kept; a
//! connection that has not completed a request and read its answer within
//! [`Limits::timeout`] (of being accepted, of its last answer, or of the last part of an
//! answer it took) is closed. While an answer is being written ([`Server::writing`]) the
//! control loop polls on every round rather than every 10 ms, so a long answer goes as
//! fast as the client reads it. A connection
//! closed in the middle of a request has that request discarded, never half-applied.
//!
//! Gets, two ways. [`Server::poll`] takes a closure that answers each request whole: a
//! get costs the description and encoding of every peer in one call. [`Server::serve`]
//! takes a [`Handler`], whose gets are streamed: the device lines when the request
//! arrives, then on each poll at most [`Limits::peers_per_poll`] more peers, and only
//! while less than [`Limits::answer_bytes`] of the answer waits unsent: a poll costs a
//! batch of peers (if the handler takes up its list where it left it without walking
//! the peers before), and a connection's memory does not grow with the number of
//! peers. The bytes are the same either way. Which peers a streamed answer lists when peers come and go while it
//! is written is the handler's to say ([`Handler::peers`]; for the control plane,
//! [`crate::uapi::device::Served`]).
//!
//! Writes to a client that has gone away fail with EPIPE rather than killing the
//! process because Rust programs start with SIGPIPE ignored.

use super::answer::Answer;
use super::protocol::{
    encode_response, Decoded, Decoder, Request, Response, SetRequest, UapiError, UapiInterface,
    UapiPeer, DEFAULT_MAX_REQUEST_BYTES,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where `wg` looks for userspace interfaces (wireguard-tools `src/ipc-uapi-unix.h`,
/// `RUNSTATEDIR "/wireguard/"`).
pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// Longest interface name `wg` accepts (IFNAMSIZ - 1).
const MAX_NAME: usize = 15;

/// Connections accepted per poll, so that a flood of connects cannot hold up the loop.
const ACCEPTS_PER_POLL: usize = 16;

/// Requests answered per connection per poll, so that a client pipelining many small
/// requests cannot hold up the loop either.
const ANSWERS_PER_POLL: usize = 4;

/// What a server will put up with.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest set request, in bytes.
    pub max_request_bytes: usize,
    /// Time a connection has to send a request and read the answer, counted from its
    /// accept or its last answer; also how long it may sit idle.
    pub timeout: Duration,
    /// Reads (of up to 16 KiB each) per connection per poll; at least one is made.
    pub reads_per_poll: usize,
    /// Peers of a streamed get ([`Server::serve`]) listed per connection per poll; at
    /// least one.
    pub peers_per_poll: usize,
    /// Bytes of a streamed get that may wait unsent: no more peers are listed while this
    /// much waits for the client to read it.
    pub answer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // `wg` opens one connection per command; a few spare ones for scripts.
            max_connections: 8,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            timeout: Duration::from_secs(10),
            reads_per_poll: 4,
            // About 250 KB of answer per poll.
            peers_per_poll: 1024,
            // More than a Unix socket's send buffer (208 KiB by default), so that the
            // socket never runs dry between two polls.
            answer_bytes: 256 * 1024,
        }
    }
}

/// What happened on the socket since the server started.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    pub accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: u64,
    /// Well-formed requests handed to the handler.
    pub gets: u64,
    pub sets: u64,
    /// Requests answered with an error: malformed, or failed by the handler.
    pub failed: u64,
    /// Connections closed after a line that was no operation.
    pub desynced: u64,
    /// Connections closed by the timeout.
    pub timed_out: u64,
    /// Connections that closed in the middle of a request, which was discarded.
    pub truncated: u64,
    /// Connections lost to a socket error other than the client hanging up.
    pub io_errors: u64,
}

/// The device behind the socket, for [`Server::serve`]: it applies sets, and lists the
/// peers of a get a few at a time, on as many polls as the client takes to read them.
pub trait Handler {
    /// Applies a set request; an error goes to the client as its errno.
    fn set(&mut self, request: SetRequest) -> Result<(), UapiError>;

    /// The device lines that start a get answer, taken when the request arrives.
    fn interface(&mut self) -> UapiInterface;

    /// The peers of a get answer, from `cursor` on: 0 for the first peers, then a value
    /// this method returned. Calls `each` with one peer after another until `each`
    /// returns false or no peer is left, and returns the cursor of the peers after the
    /// last one given, or `None` when none is left (the answer then ends).
    ///
    /// The calls of one answer come on successive polls, and the device may change in
    /// between: the cursor should let each peer be given at most once, and every peer
    /// that stays for the whole answer be given.
    fn peers(&mut self, cursor: u64, each: &mut dyn FnMut(&UapiPeer) -> bool) -> Option<u64>;
}

/// How the requests of one poll are answered.
enum Respond<'a> {
    /// Each request whole, by a closure ([`Server::poll`]).
    Whole(&'a mut dyn FnMut(Request) -> Response),
    /// Gets streamed ([`Server::serve`]).
    Streamed(&'a mut dyn Handler),
}

/// Why the socket could not be opened.
#[derive(Debug)]
pub enum ServerError {
    /// The name cannot be an interface name for `wg`.
    BadName { name: String, reason: &'static str },
    /// A live process answers on the socket.
    InUse { path: PathBuf },
    /// Something that is not a socket has the socket's name.
    NotASocket { path: PathBuf },
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::BadName { name, reason } => {
                write!(f, "UAPI interface name {name:?}: {reason}")
            }
            ServerError::InUse { path } => write!(
                f,
                "UAPI socket {} is in use by another process (another wgdp or wireguard-go \
                 with this interface name?)",
                path.display()
            ),
            ServerError::NotASocket { path } => write!(
                f,
                "{} exists and is not a socket; remove it or choose another UAPI name",
                path.display()
            ),
            ServerError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The listening socket and its connections.
#[derive(Debug)]
pub struct Server {
    path: PathBuf,
    /// Device and inode of the socket file we created, so that we never remove a file
    /// that someone else has put in its place.
    identity: (u64, u64),
    listener: UnixListener,
    connections: Vec<Connection>,
    limits: Limits,
    stats: ServerStats,
}

impl Server {
    /// Listens on `dir/name.sock` with the default [`Limits`]. `dir` is [`SOCKET_DIR`]
    /// for `wg`; tests use their own.
    pub fn bind(dir: &Path, name: &str) -> Result<Server, ServerError> {
        Server::with_limits(dir, name, Limits::default())
    }

    /// [`Server::bind`] with limits of the caller's choosing.
    pub fn with_limits(dir: &Path, name: &str, limits: Limits) -> Result<Server, ServerError> {
        check_name(name)?;
        let io_error = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| ServerError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io_error("create the directory", dir))?;
        let path = dir.join(format!("{name}.sock"));
        let listener = match bind_private(&path) {
            Ok(listener) => listener,
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                remove_stale(&path)?;
                bind_private(&path).map_err(io_error("listen on", &path))?
            }
            Err(err) => return Err(io_error("listen on", &path)(err)),
        };
        let finish = || -> Result<(u64, u64), ServerError> {
            // Even with the umask, a default ACL on the directory could have widened it.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_error("restrict", &path))?;
            listener
                .set_nonblocking(true)
                .map_err(io_error("set non-blocking mode on", &path))?;
            let meta = std::fs::symlink_metadata(&path).map_err(io_error("inspect", &path))?;
            Ok((meta.dev(), meta.ino()))
        };
        let identity = finish().inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })?;
        Ok(Server {
            identity,
            path,
            listener,
            connections: Vec::new(),
            limits,
            stats: ServerStats::default(),
        })
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Whether our socket file is gone or replaced. The protocol asks implementations to
    /// shut down when it is deleted; the caller decides.
    pub fn socket_removed(&self) -> bool {
        !self.owns_socket_file()
    }

    /// Accepts, reads, answers complete requests through `handler`, writes; never waits
    /// for a socket. Requests left over (a client pipelining many) are answered on the
    /// next calls. Each get is answered whole; [`Server::serve`] streams them instead. A
    /// streamed get still under way goes on only when [`Server::serve`] is next called.
    pub fn poll(&mut self, handler: &mut dyn FnMut(Request) -> Response) {
        self.poll_at(Instant::now(), &mut Respond::Whole(handler))
    }

    /// [`Server::poll`] with gets streamed from `handler`: the poll that reads a get
    /// takes its device lines, and each poll lists at most [`Limits::peers_per_poll`]
    /// more of its peers per connection, while the client reads the answer.
    pub fn serve(&mut self, handler: &mut dyn Handler) {
        self.poll_at(Instant::now(), &mut Respond::Streamed(handler))
    }

    /// Whether an answer is waiting for its client to read the rest of it, or has peers
    /// still to list: the next poll has work to do.
    pub fn writing(&self) -> bool {
        self.connections.iter().any(|c| c.answer.pending())
    }

    /// Bytes of memory the answers of all connections hold now.
    pub fn answer_bytes_held(&self) -> usize {
        self.connections.iter().map(|c| c.answer.held()).sum()
    }

    /// What to wait on before the next [`Server::poll`]: the listening socket for a
    /// new client, each connection for its request, or for room to write its answer.
    pub fn wait_fds(&self, into: &mut Vec<libc::pollfd>) {
        let fd = |fd, events| libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        into.push(fd(self.listener.as_raw_fd(), libc::POLLIN));
        for c in &self.connections {
            let events = if c.answer.pending() {
                libc::POLLOUT
            } else {
                libc::POLLIN
            };
            into.push(fd(c.stream.as_raw_fd(), events));
        }
    }

    fn poll_at(&mut self, now: Instant, handler: &mut Respond<'_>) {
        self.accept(now);
        let mut i = 0;
        while i < self.connections.len() {
            let outcome = self.connections[i].drive(now, &self.limits, &mut self.stats, handler);
            match outcome {
                Outcome::Open => i += 1,
                Outcome::Closed => {
                    self.connections.swap_remove(i);
                }
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_POLL {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    self.stats.accepted += 1;
                    if self.connections.len() >= self.limits.max_connections {
                        self.stats.refused += 1;
                        tracing::debug!(
                            limit = self.limits.max_connections,
                            "uapi: connection refused, too many open"
                        );
                        continue;
                    }
                    if let Err(err) = stream.set_nonblocking(true) {
                        self.stats.io_errors += 1;
                        tracing::warn!("uapi: cannot make a connection non-blocking: {err}");
                        continue;
                    }
                    self.connections
                        .push(Connection::new(stream, now, &self.limits));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    // Out of descriptors and the like: the connection waits in the
                    // backlog for the next poll.
                    self.stats.io_errors += 1;
                    tracing::debug!("uapi: accept failed: {err}");
                    return;
                }
            }
        }
    }

    fn owns_socket_file(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.owns_socket_file() {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!("uapi: cannot remove {}: {err}", self.path.display());
            }
        }
    }
}

/// Interface names as `wg` takes them: it puts the name in a path and refuses names of
/// IFNAMSIZ bytes or more.
fn check_name(name: &str) -> Result<(), ServerError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME {
        Some("longer than 15 bytes, which `wg` refuses")
    } else if name == "." || name == ".." || name.contains(['/', '\0']) {
        Some("not a file name (no '/', NUL, \".\" or \"..\")")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ServerError::BadName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Binds with the umask at 077, so that the socket file is born 0600: root alone may
/// connect, from the first instant (wireguard-go does the same). The umask is
/// process-wide; a file another thread creates meanwhile is born private too, which is
/// harmless.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    // SAFETY: umask only swaps the process's file-creation mask; it touches no memory.
    let old = unsafe { libc::umask(0o077) };
    let result = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    result
}

/// Removes a socket that nobody answers on any more, as `wg` and wireguard-go do. A
/// socket that answers, or a file that is not a socket, is left alone.
fn remove_stale(path: &Path) -> Result<(), ServerError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| ServerError::Io {
        action: "inspect",
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ServerError::InUse {
            path: path.to_path_buf(),
        }),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("uapi: removing stale socket {}", path.display());
            std::fs::remove_file(path).map_err(|source| ServerError::Io {
                action: "remove the stale socket",
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(ServerError::Io {
            action: "check whether another process answers on",
            path: path.to_path_buf(),
            source,
        }),
    }
}

enum Outcome {
    Open,
    Closed,
}

/// One client.
struct Connection {
    stream: UnixStream,
    decoder: Decoder,
    /// The answer being written (it may hold the private key).
    answer: Answer,
    /// Close once the answer is written.
    close_after_answer: bool,
    deadline: Instant,
}

impl Connection {
    fn new(stream: UnixStream, now: Instant, limits: &Limits) -> Connection {
        Connection {
            stream,
            decoder: Decoder::new(limits.max_request_bytes),
            answer: Answer::default(),
            close_after_answer: false,
            deadline: now + limits.timeout,
        }
    }

    fn drive(
        &mut self,
        now: Instant,
        limits: &Limits,
        stats: &mut ServerStats,
        handler: &mut Respond<'_>,
    ) -> Outcome {
        let mut reads = 0;
        let mut answers = 0;
        let mut filled = false;
        loop {
            // The next peers of a streamed get: once per poll, and only while little of
            // the answer waits unsent.
            if let Respond::Streamed(h) = handler {
                if !filled
                    && self.answer.streaming()
                    && self.answer.unsent().len() < limits.answer_bytes
                {
                    filled = true;
                    self.answer
                        .fill(&mut **h, limits.peers_per_poll, limits.answer_bytes);
                }
            }
            if !self.answer.unsent().is_empty() {
                match self.stream.write(self.answer.unsent()) {
                    Ok(n) if n > 0 => {
                        self.answer.sent(n);
                        // A client reading a long answer (`wg show` of many peers) is
                        // making progress: the timeout counts from its last read.
                        self.deadline = now + limits.timeout;
                        continue;
                    }
                    Ok(_) => return lost(stats, io::ErrorKind::WriteZero.into()),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return lost(stats, err),
                }
            }
            if self.answer.streaming() {
                // Its next peers come on the next poll.
                break;
            }
            if !self.answer.is_empty() {
                // Dropping the old buffer wipes it.
                self.answer = Answer::default();
                self.deadline = now + limits.timeout;
            }
            if self.close_after_answer {
                return Outcome::Closed;
            }
            if answers == ANSWERS_PER_POLL {
                break;
            }
            if let Some(decoded) = self.decoder.decode() {
                answers += 1;
                self.answer = answer(decoded, stats, handler, &mut self.close_after_answer);
                continue;
            }
            if reads >= limits.reads_per_poll.max(1) {
                break;
            }
            reads += 1;
            match self.stream.read(self.decoder.spare()) {
                Ok(0) => {
                    if self.decoder.in_request() {
                        stats.truncated += 1;
                        tracing::debug!("uapi: client left in the middle of a request");
                    }
                    return Outcome::Closed;
                }
                Ok(n) => self.decoder.filled(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return lost(stats, err),
            }
        }
        if now >= self.deadline {
            stats.timed_out += 1;
            tracing::debug!(
                timeout = ?limits.timeout,
                "uapi: connection closed, no complete request answered in time"
            );
            return Outcome::Closed;
        }
        Outcome::Open
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the answer itself: it may hold the private key.
        f.debug_struct("Connection")
            .field("decoder", &self.decoder)
            .field("answer_unsent", &self.answer.unsent().len())
            .field("answer_streaming", &self.answer.streaming())
            .field("close_after_answer", &self.close_after_answer)
            .field("deadline", &self.deadline)
            .finish()
    }
}

fn lost(stats: &mut ServerStats, err: io::Error) -> Outcome {
    // A client that hangs up before reading its answer is not our error.
    let hung_up = matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    );
    if !hung_up {
        stats.io_errors += 1;
        tracing::debug!("uapi: connection lost: {err}");
    }
    Outcome::Closed
}

/// Runs one decoded request through the handler and encodes the answer, or its start.
fn answer(
    decoded: Decoded,
    stats: &mut ServerStats,
    handler: &mut Respond<'_>,
    close: &mut bool,
) -> Answer {
    let response = match decoded {
        Decoded::Request(request) => {
            match request {
                Request::Get => stats.gets += 1,
                Request::Set(_) => stats.sets += 1,
            }
            match (handler, request) {
                (Respond::Whole(handler), request) => handler(request),
                (Respond::Streamed(handler), Request::Get) => {
                    return Answer::streamed(&handler.interface());
                }
                (Respond::Streamed(handler), Request::Set(set)) => match handler.set(set) {
                    Ok(()) => Response::Applied,
                    Err(error) => Response::Failed(error),
                },
            }
        }
        Decoded::Rejected(error) => Response::Failed(error),
        Decoded::Desynced(error) => {
            stats.desynced += 1;
            *close = true;
            Response::Failed(error)
        }
    };
    if let Response::Failed(error) = &response {
        stats.failed += 1;
        tracing::warn!("uapi: request failed: {error}");
    }
    Answer::whole(encode_response(&response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_as_wg_takes_them() {
        for good in ["wg0", "wgdp0", "a", "fifteen-bytes-x", "wg.0"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        for (bad, reason) in [
            ("", "empty"),
            ("sixteen-bytes-xx", "longer than 15"),
            ("a/b", "not a file name"),
            ("..", "not a file name"),
            (".", "not a file name"),
            ("a\0b", "not a file name"),
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
    }
}
