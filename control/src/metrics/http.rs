//! The `/metrics` endpoint: a minimal HTTP/1.1 server on its own thread.
//!
//! One connection at a time, one request per connection (`Connection: close`), which is
//! how Prometheus scrapes. A request head larger than [`MAX_REQUEST`], a client slower
//! than [`IO_TIMEOUT`], or bytes that are not HTTP get an error status or a closed
//! connection, never a panic, and the next client is served. The thread is a plain
//! thread: started from the control lcore, it inherits that lcore's CPU affinity and
//! never competes with the workers.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::warn;

use super::{render, Reader};

/// Longest request head accepted (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request or take the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a client to close after its answer.
const LINGER: Duration = Duration::from_millis(200);

/// The running endpoint; dropping it stops the thread.
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
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
        self.stop.store(true, Ordering::Release);
        // The thread sleeps in accept(); a connection of our own wakes it to see the flag.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
            }
            a => a,
        };
        match TcpStream::connect_timeout(&wake, IO_TIMEOUT) {
            Ok(_) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            // Left running rather than waited for forever: it ends at its next client.
            Err(e) => warn!(
                addr = %self.addr,
                error = %e,
                "metrics: cannot wake the server thread to stop it"
            ),
        }
    }
}

/// Serves the latest snapshot of `reader` at `http://listen/metrics` until the returned
/// [`Handle`] drops.
pub fn serve(listen: SocketAddr, reader: Reader) -> Result<Handle, String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("metrics.listen: {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("metrics.listen: {listen}: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("wgdp-metrics".into())
            .spawn(move || accept_loop(&listener, &reader, &stop))
            .map_err(|e| format!("metrics.listen: {listen}: cannot start a thread: {e}"))?
    };
    Ok(Handle {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &TcpListener, reader: &Reader, stop: &AtomicBool) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        match conn {
            // A client that misbehaves only loses its own connection.
            Ok((stream, _)) => {
                let _ = answer(stream, reader);
            }
            // Out of file descriptors and the like: wait rather than spin.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn answer(mut stream: TcpStream, reader: &Reader) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let response = match read_head(&mut stream)? {
        Some(head) => respond(&head, reader),
        None => Response::error(400, "Bad Request", "request head too large or cut short"),
    };
    stream.write_all(&response.head)?;
    stream.write_all(&response.body)?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)?;
    linger(&mut stream)
}

/// Reads what the client still sends (the rest of a refused request, a body) until it
/// closes, briefly and up to a bound: closing a socket with unread input sends a reset,
/// which can destroy the answer before the client has read it.
fn linger(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(LINGER))?;
    let mut buf = [0u8; 4096];
    let mut left = 16 * MAX_REQUEST;
    while left > 0 {
        match stream.read(&mut buf)? {
            0 => break,
            n => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

/// The request head up to its blank line, or `None` if the client closed first or sent
/// more than [`MAX_REQUEST`] bytes without one.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Response {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, reason: &str, content_type: &str, extra: &str, body: Vec<u8>) -> Self {
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        Response {
            head: head.into_bytes(),
            body,
        }
    }

    fn error(status: u16, reason: &str, why: &str) -> Self {
        Response::new(
            status,
            reason,
            "text/plain; charset=utf-8",
            "",
            format!("{why}\n").into_bytes(),
        )
    }
}

/// The answer to a request head (request line and headers, without the blank line).
fn respond(head: &[u8], reader: &Reader) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).unwrap_or_default().trim_end();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::error(400, "Bad Request", "not an HTTP request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::error(400, "Bad Request", "only HTTP/1.x is served");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response::error(404, "Not Found", "not found; metrics are at /metrics");
    }
    if method != "GET" {
        return Response::new(
            405,
            "Method Not Allowed",
            "text/plain; charset=utf-8",
            "Allow: GET\r\n",
            b"use GET\n".to_vec(),
        );
    }
    Response::new(
        200,
        "OK",
        "text/plain; version=0.0.4; charset=utf-8",
        "",
        render(&reader.load()).into_bytes(),
    )
}
