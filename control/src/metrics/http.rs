//! The `/metrics` endpoint: `hyper` (HTTP/1.1) on a single-threaded `tokio` runtime that
//! runs on one thread of its own.
//!
//! Every connection is a task on that thread, so clients are answered at the same time:
//! a client that takes a large answer slowly, or not at all, holds a socket and its
//! answer, not the thread, and the next scrape is answered meanwhile. At most
//! [`MAX_CONNECTIONS`] are served at once; more wait in the kernel's listen queue until
//! one ends. One request per connection (`Connection: close`), which is how Prometheus
//! scrapes; the answer is rendered on the thread when the request has arrived.
//!
//! No client can stop the server or hold a connection for ever: a request head larger
//! than [`MAX_REQUEST`] gets 431, bytes that are not HTTP/1.x get 400, a client that has
//! not sent its whole request head within [`IO_TIMEOUT`] is disconnected, and so is one
//! whose connection is still open after [`CONNECTION_TIMEOUT`] (one that does not take its
//! answer); never a panic. Dropping the [`Handle`] stops the runtime, which closes the
//! listener and every connection at once, and waits for the thread to end.
//!
//! The thread is a plain thread, and the runtime starts no other (no worker pool, and
//! nothing here uses its pool for blocking calls): started from the control lcore, it
//! inherits that lcore's CPU affinity and never competes with the workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::{render, Reader};

/// Longest request head accepted (request line and headers); also the most read from a
/// client before its request is complete. `hyper` takes no less than 8 KiB.
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request head, from when it connected.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection may last, taking the answer included. Prometheus' own scrape
/// timeout is at most its scrape interval, so a scrape that lasts longer is abandoned.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; the most answers held in memory for slow clients.
pub const MAX_CONNECTIONS: usize = 32;
/// How long to wait for a client to close after its answer.
const LINGER: Duration = Duration::from_millis(200);

/// The running endpoint; dropping it stops the server and closes its connections.
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    /// Dropped to stop: the thread waits for this channel to close.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// The address actually bound (the port is known here when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves the latest snapshot of `reader` at `http://listen/metrics` until the returned
/// [`Handle`] drops.
pub fn serve(listen: SocketAddr, reader: Reader) -> Result<Handle, String> {
    let err = |e: std::io::Error| format!("metrics.listen: {listen}: {e}");
    let listener = std::net::TcpListener::bind(listen).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    // Built here so that a failure is the caller's error; it starts no thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("metrics.listen: {listen}: cannot start the server: {e}"))?;
    let listener = {
        let _in_runtime = runtime.enter();
        TcpListener::from_std(listener).map_err(err)?
    };
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("wgdp-metrics".into())
        .spawn(move || run(runtime, listener, reader, stopped))
        .map_err(|e| format!("metrics.listen: {listen}: cannot start a thread: {e}"))?;
    Ok(Handle {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The server thread: accepts and answers until `stopped` closes.
fn run(runtime: Runtime, listener: TcpListener, reader: Reader, stopped: oneshot::Receiver<()>) {
    runtime.spawn(accept_loop(listener, reader));
    let _ = runtime.block_on(stopped);
    // Dropping the runtime drops every task, and with them the listener and every
    // connection, whatever state it is in.
    drop(runtime);
}

async fn accept_loop(listener: TcpListener, reader: Reader) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .max_buf_size(MAX_REQUEST)
        .keep_alive(false)
        // As Prometheus' own exporters write them; clients must not care, some do.
        .title_case_headers(true);
    loop {
        // The semaphore is never closed.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, http.clone(), reader.clone(), slot));
            }
            // Out of file descriptors and the like: wait rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Answers one connection; its slot is free again when this returns.
async fn connection(
    stream: TcpStream,
    http: http1::Builder,
    reader: Reader,
    _slot: OwnedSemaphorePermit,
) {
    // A second descriptor of the socket keeps it open after `hyper` has dropped its own,
    // whether it ended well or not, for `linger`.
    let Ok(keep) = stream.as_fd().try_clone_to_owned() else {
        return;
    };
    let service = service_fn(move |request| {
        let response = respond(&request, &reader);
        async move { Ok::<_, Infallible>(response) }
    });
    let served = http.serve_connection(TokioIo::new(stream), service);
    // A client error or a timeout only ends this connection.
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, served).await;
    linger(std::net::TcpStream::from(keep)).await;
}

/// Reads what the client still sends (the rest of a refused request, a body) until it
/// closes, briefly and up to a bound: closing a socket with unread input sends a reset,
/// which can destroy the answer before the client has read it.
async fn linger(socket: std::net::TcpStream) {
    // `hyper` has sent everything it will; the client sees the end of the answer.
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let Ok(socket) = TcpStream::from_std(socket) else {
        return;
    };
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left = 16 * MAX_REQUEST;
        while left > 0 {
            if socket.readable().await.is_err() {
                return;
            }
            match socket.try_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => left = left.saturating_sub(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The answer to a request whose head `hyper` has read; its body is never read.
fn respond(request: &Request<Incoming>, reader: &Reader) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(render(&reader.load()))));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
