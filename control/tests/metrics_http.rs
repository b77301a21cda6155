//! The Prometheus endpoint over real TCP: scrapes follow published snapshots, the text
//! passes `promtool check metrics` (when promtool is installed), clients that are not
//! Prometheus get an error status and do not stop the server, and the handle stops it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    assert_eq!(status(&huge), "HTTP/1.1 400 Bad Request");
    // Connects and leaves at once.
    drop(TcpStream::connect(addr).unwrap());

    // Sends half a request and stalls: the server gives up on it after its timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /metr").unwrap();
    let start = Instant::now();
    let (head, _) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        start.elapsed() < metrics::IO_TIMEOUT + Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    drop(stalled);
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
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length);
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
