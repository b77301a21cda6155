//! The Prometheus endpoint over real TCP: scrapes follow published snapshots, the text
//! passes `promtool check metrics` (when promtool is installed), clients that are not
//! Prometheus get an error status and do not stop the server, a client that does not
//! take its answer holds up nobody, many clients at once all get their answers, and the
//! handle stops the server, closing the connections still open.
//!
//! No test passes or fails by how long something takes: the clients' timeouts only turn
//! a hang into a failure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use control::metrics::{self, PeerSnapshot, Publisher, Snapshot, WorkerSnapshot};
use dataplane::activity::Activity;
use dataplane::counters::{DecryptDrop, WorkerCounters};
use dpdk_sys::PortStats;

#[test]
fn metrics_over_http() {
    let publisher = Publisher::new();
    let stats = Activity::new(1);
    let worker = stats.writer();
    let counters = WorkerCounters::default();
    worker.add_rx(0, 7, 700, true, 1);
    counters.decrypt.add(DecryptDrop::Replay, 1);
    publisher.publish(snapshot(&stats, &counters));

    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), publisher.reader()).unwrap();
    let addr = server.local_addr();

    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert_eq!(value(&body, "wgdp_peer_rx_packets_total"), 7.0, "{body}");
    assert_eq!(
        value(
            &body,
            "wgdp_worker_drops_total{lcore=\"1\",reason=\"replay\""
        ),
        1.0
    );
    promtool_check(&body);

    // A newer snapshot is what the next scrape shows.
    worker.add_rx(0, 1, 100, true, 2);
    counters.decrypt.add(DecryptDrop::Replay, 2);
    publisher.publish(snapshot(&stats, &counters));
    let (_, body) = get(addr, "/metrics?x=1");
    assert_eq!(value(&body, "wgdp_peer_rx_packets_total"), 8.0, "{body}");
    assert_eq!(value(&body, "wgdp_peer_rx_bytes_total"), 800.0, "{body}");
    assert_eq!(
        value(
            &body,
            "wgdp_worker_drops_total{lcore=\"1\",reason=\"replay\""
        ),
        3.0
    );

    odd_clients(addr);

    // The address is taken: a second server says which setting to change.
    let err = metrics::serve(addr, publisher.reader()).unwrap_err();
    assert!(err.starts_with("metrics.listen: "), "{err}");

    drop(server);
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after the handle dropped"
    );
}

/// Requests that are not a Prometheus scrape, each followed by a good scrape.
fn odd_clients(addr: SocketAddr) {
    let status = |request: &[u8]| {
        let reply = exchange(addr, request);
        reply.lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        status(b"\x00\xff\x16\x03\x01garbage\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(b"GET /metrics SPDY/3\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    // A head that never ends is cut off at the size limit.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.resize(64 * 1024, b'a');
    assert!(huge.len() > metrics::MAX_REQUEST);
    assert_eq!(
        status(&huge),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Connects and leaves at once.
    drop(TcpStream::connect(addr).unwrap());

    // Sends half a request and stalls: the next client is answered meanwhile, and the
    // server closes the stalled connection, without an answer, after its timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /metr").unwrap();
    let (head, _) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    stalled
        .set_read_timeout(Some(metrics::IO_TIMEOUT + GUARD))
        .unwrap();
    let mut rest = Vec::new();
    let end = stalled.read_to_end(&mut rest);
    assert!(
        end.is_ok() && rest.is_empty(),
        "{end:?} {}",
        String::from_utf8_lossy(&rest)
    );
}

/// A client that asks for a large answer and does not read it holds up nobody: while
/// the server still has part of that answer to write, another client's scrape is
/// answered in full, and the first then gets the whole of its answer too.
#[test]
fn a_client_that_does_not_read_holds_up_nobody() {
    let publisher = Publisher::new();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), publisher.reader()).unwrap();
    let addr = server.local_addr();

    let (snapshot, text) = large_snapshot(unsent_room());
    publisher.publish(snapshot);
    let mut slow = TcpStream::connect(addr).unwrap();
    shrink_receive_buffer(&slow);
    let (head, mut body) = start_reading(&mut slow);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(content_length(&head), text.len());

    // The slow client has read only the head and the first bytes of its answer: the
    // server cannot have written all the rest.
    let (head, other) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(other == text, "another scrape got {} bytes", other.len());

    let end = slow.read_to_end(&mut body);
    assert!(end.is_ok(), "{end:?} after {} bytes", body.len());
    assert!(
        body == text.as_bytes(),
        "the slow client got {} bytes",
        body.len()
    );
}

/// More clients than [`metrics::MAX_CONNECTIONS`], all connected before any asks, all
/// get the whole answer: those beyond the limit wait for a connection to end. The
/// server starts no thread beyond its own.
#[test]
fn many_clients_at_once_all_get_their_answer() {
    const CLIENTS: usize = 50;
    const { assert!(CLIENTS > metrics::MAX_CONNECTIONS) };
    let publisher = Publisher::new();
    let stats = Activity::new(1);
    let counters = WorkerCounters::default();
    stats.writer().add_rx(0, 7, 700, true, 1);
    let snapshot = snapshot(&stats, &counters);
    let text = metrics::render(&snapshot);
    publisher.publish(snapshot);
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), publisher.reader()).unwrap();
    let addr = server.local_addr();

    let all_connected = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let all_connected = all_connected.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(GUARD)).unwrap();
                all_connected.wait();
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
                    .unwrap();
                let mut reply = Vec::new();
                let end = stream.read_to_end(&mut reply);
                (
                    end.map(|_| ()),
                    String::from_utf8_lossy(&reply).into_owned(),
                )
            })
        })
        .collect();
    for client in clients {
        let (end, reply) = client.join().unwrap();
        assert!(end.is_ok(), "{end:?}: {reply}");
        let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(body == text, "got {} of {} bytes", body.len(), text.len());
    }

    // One thread serves them all: no runtime worker or blocking-pool thread exists.
    let threads = thread_names();
    assert!(threads.iter().any(|t| t == "wgdp-metrics"), "{threads:?}");
    assert!(
        !threads.iter().any(|t| t.starts_with("tokio")),
        "{threads:?}"
    );
    drop(server);
}

/// Dropping the handle ends the server while one client sits connected and silent and
/// another is in the middle of a large answer it does not read: both connections are
/// closed, the second with its answer cut short, and nothing listens any more.
#[test]
fn dropping_the_handle_closes_open_connections() {
    let publisher = Publisher::new();
    let server = metrics::serve("127.0.0.1:0".parse().unwrap(), publisher.reader()).unwrap();
    let addr = server.local_addr();

    let (snapshot, text) = large_snapshot(unsent_room());
    publisher.publish(snapshot);
    let mut idle = TcpStream::connect(addr).unwrap();
    let mut slow = TcpStream::connect(addr).unwrap();
    shrink_receive_buffer(&slow);
    let (head, mut body) = start_reading(&mut slow);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");

    // Drop waits for the server thread; a thread of its own turns a hang into a failure.
    let (dropped, done) = mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        let _ = dropped.send(());
    });
    done.recv_timeout(GUARD)
        .expect("the server thread did not end");
    assert!(
        TcpStream::connect(addr).is_err(),
        "still listening after the handle dropped"
    );

    // What the kernel had taken of the answer still arrives, then the end.
    let end = slow.read_to_end(&mut body);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    assert!(
        body.len() < text.len(),
        "{} of {} bytes",
        body.len(),
        text.len()
    );
    idle.set_read_timeout(Some(GUARD)).unwrap();
    let mut rest = Vec::new();
    let end = idle.read_to_end(&mut rest);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

/// How long a test waits for what should come at once before it fails.
const GUARD: Duration = Duration::from_secs(20);

/// What [`shrink_receive_buffer`] asks for; Linux doubles it.
const RECEIVE_BUFFER: usize = 16 * 1024;

/// How many bytes of an answer the kernels on both ends can hold while a client with a
/// [`shrink_receive_buffer`] reads nothing: its receive buffer and the server's largest
/// send buffer, with room to spare.
fn unsent_room() -> usize {
    // The kernel grows a socket's send buffer up to the last of these three.
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    let send_max: usize = wmem.split_whitespace().nth(2).unwrap().parse().unwrap();
    send_max + 16 * RECEIVE_BUFFER + (1 << 20)
}

/// Makes `stream`'s receive buffer small: at most four times [`RECEIVE_BUFFER`].
fn shrink_receive_buffer(stream: &TcpStream) {
    let fd = stream.as_raw_fd();
    let want = RECEIVE_BUFFER as libc::c_int;
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket; the option values point to live c_ints of the
    // length given.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&want as *const libc::c_int).cast(),
            len,
        )
    };
    assert_eq!(set, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
    // SAFETY: as above; `len` is the size of `got`.
    let read = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(read, 0, "SO_RCVBUF: {}", io::Error::last_os_error());
    assert!(got as usize <= 4 * RECEIVE_BUFFER, "SO_RCVBUF is {got}");
}

/// A snapshot whose text is longer than `min_len` bytes, and that text.
fn large_snapshot(min_len: usize) -> (Snapshot, String) {
    let mut peers = 1024;
    loop {
        let mut s = Snapshot::new("DPDK test");
        for id in 0..peers {
            s.peers.push(PeerSnapshot {
                id,
                public_key: format!("{id:0>43}="),
                rx_packets: u64::from(id),
                tx_packets: u64::from(id) * 2,
                rx_bytes: u64::from(id) * 1000,
                tx_bytes: u64::from(id) * 2000,
                latest_handshake: 1_700_000_000,
                handshakes: 1,
            });
        }
        let text = metrics::render(&s);
        if text.len() > min_len {
            return (s, text);
        }
        peers = (peers as usize * (min_len / text.len() + 1) * 5 / 4) as u32;
    }
}

/// Asks for /metrics on `stream` and reads until the head has arrived: the head, and the
/// first bytes of the body read with it.
fn start_reading(stream: &mut TcpStream) -> (String, Vec<u8>) {
    stream.set_read_timeout(Some(GUARD)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = got.split_off(end + 4);
            got.truncate(end);
            return (String::from_utf8(got).unwrap(), body);
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap()
}

/// The names of this process' threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

fn snapshot(stats: &Activity, counters: &WorkerCounters) -> Snapshot {
    let mut s = Snapshot::new(dpdk_sys::version());
    let mut peer = PeerSnapshot::new(0, &[7; 32], &stats.total(0));
    peer.latest_handshake = 1_700_000_000;
    peer.handshakes = 1;
    s.peers.push(peer);
    s.workers.push(WorkerSnapshot::new("1", counters));
    s.set_control(&Default::default());
    s.handshake_errors.insert("bad_mac1".into(), 1);
    s.mempools.push(metrics::MempoolSnapshot {
        name: "wgdp_pkts".into(),
        capacity: 4096,
        in_use: 100,
    });
    for name in ["outside", "inside"] {
        s.ports.push(metrics::PortSnapshot {
            name: name.into(),
            stats: PortStats::default(),
        });
    }
    s
}

/// Sends `request` and reads until the server closes the connection.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before reading all of an oversized request.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// (head, body) of a GET for `path`.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let reply = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n").as_bytes(),
    );
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert_eq!(body.len(), content_length(head));
    (head.to_owned(), body.to_owned())
}

/// The value of the first sample whose line starts with `prefix`.
fn value(body: &str, prefix: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix}:\n{body}"))
}

/// `promtool check metrics` reads the exposition on stdin and lists what breaks the
/// format or Prometheus' naming conventions.
fn promtool_check(body: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "metrics_over_http: promtool check skipped: cannot run promtool ({e}); \
                 Debian package `prometheus` provides it"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {}\n{report}\n{body}",
        out.status
    );
}
