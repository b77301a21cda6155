//! The UAPI server on a real Unix socket: files and permissions, requests over the
//! socket, and clients that misbehave (garbage, huge requests, clients that never finish
//! or never read). The device behind it is a small in-memory model that applies a set
//! request the way wireguard-go does.
//!
//! As root with wireguard-tools installed, `wg` itself is run against the server; `wg`
//! only looks in /var/run/wireguard, so that test uses an interface name of its own
//! (`wgdpt<pid>`) there and removes the socket when done, even when it fails.

use control::uapi::{
    AllowedIpChange, Limits, Request, Response, SecretUpdate, Server, ServerError, ServerStats,
    SetRequest, UapiDevice, UapiError, UapiPeer, SOCKET_DIR,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};
use x25519_dalek::{PublicKey, StaticSecret};

/// The port the model pretends another program holds.
const TAKEN_PORT: u16 = 1;

const PEER_HEX: &str = "b3f0db210918491e39f8ad10651be1bf03733432157667aa15f47273909b643c";

/// A device as wireguard-go keeps it, with made-up statistics.
#[derive(Default, Clone)]
struct Model {
    private_key: Option<[u8; 32]>,
    listen_port: u16,
    peers: Vec<ModelPeer>,
}

#[derive(Clone)]
struct ModelPeer {
    public_key: [u8; 32],
    preshared_key: Option<[u8; 32]>,
    endpoint: Option<SocketAddr>,
    keepalive: u16,
    allowed_ips: Vec<(IpAddr, u8)>,
}

impl Model {
    fn handle(&mut self, request: Request) -> Response {
        match request {
            Request::Get => Response::Device(self.describe()),
            Request::Set(set) => match self.apply(set) {
                Ok(()) => Response::Applied,
                Err(error) => Response::Failed(error),
            },
        }
    }

    /// All or nothing: the changes go to a copy that replaces the model at the end.
    fn apply(&mut self, set: SetRequest) -> Result<(), UapiError> {
        if set.listen_port == Some(TAKEN_PORT) {
            return Err(UapiError::new(
                libc::EADDRINUSE,
                format!("listen_port {TAKEN_PORT} is taken"),
            ));
        }
        let mut next = self.clone();
        if let Some(update) = &set.private_key {
            next.private_key = update.key().map(|k| *k.as_bytes());
        }
        if let Some(port) = set.listen_port {
            next.listen_port = port;
        }
        if set.replace_peers {
            next.peers.clear();
        }
        let own = next
            .private_key
            .map(|k| PublicKey::from(&StaticSecret::from(k)).to_bytes());
        for change in set.peers {
            if Some(change.public_key) == own {
                continue;
            }
            let found = next
                .peers
                .iter()
                .position(|p| p.public_key == change.public_key);
            if change.remove {
                if let Some(i) = found {
                    next.peers.remove(i);
                }
                continue;
            }
            let i = match found {
                Some(i) => i,
                None if change.update_only => continue,
                None => {
                    next.peers.push(ModelPeer {
                        public_key: change.public_key,
                        preshared_key: None,
                        endpoint: None,
                        keepalive: 0,
                        allowed_ips: Vec::new(),
                    });
                    next.peers.len() - 1
                }
            };
            let peer = &mut next.peers[i];
            if let Some(update) = &change.preshared_key {
                peer.preshared_key = update.key().map(|k| *k.as_bytes());
            }
            if let Some(endpoint) = change.endpoint {
                peer.endpoint = Some(endpoint);
            }
            if let Some(keepalive) = change.persistent_keepalive {
                peer.keepalive = keepalive;
            }
            if change.replace_allowed_ips {
                peer.allowed_ips.clear();
            }
            for op in change.allowed_ips {
                match op {
                    AllowedIpChange::Add(addr, len) => {
                        // A prefix belongs to one peer: it moves.
                        for other in next.peers.iter_mut() {
                            other.allowed_ips.retain(|&p| p != (addr, len));
                        }
                        next.peers[i].allowed_ips.push((addr, len));
                    }
                    AllowedIpChange::Remove(addr, len) => {
                        next.peers[i].allowed_ips.retain(|&p| p != (addr, len));
                    }
                }
            }
        }
        *self = next;
        Ok(())
    }

    fn describe(&self) -> UapiDevice {
        UapiDevice {
            private_key: self.private_key.map(control::config::Key::from_bytes),
            listen_port: self.listen_port,
            peers: self
                .peers
                .iter()
                .map(|p| UapiPeer {
                    public_key: p.public_key,
                    preshared_key: p.preshared_key.map(control::config::Key::from_bytes),
                    endpoint: p.endpoint,
                    last_handshake: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)),
                    rx_bytes: 1000,
                    tx_bytes: 2000,
                    persistent_keepalive: Some(p.keepalive).filter(|&k| k != 0),
                    allowed_ips: p.allowed_ips.clone(),
                })
                .collect(),
        }
    }
}

/// A directory of its own under the system's temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "wgdp-uapi-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server polled by a thread of its own, as the control loop would, until stopped.
/// Dropping it stops the thread, which drops the server and so removes its socket.
struct Running {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(Server, Model)>>,
    path: PathBuf,
}

impl Running {
    fn start(server: Server, mut model: Model) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let path = server.path().to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut server = server;
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                server.poll(&mut |request| model.handle(request));
                // A poll that waited on a client would show here.
                assert!(
                    started.elapsed() < Duration::from_millis(500),
                    "poll blocked"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            (server, model)
        });
        Running {
            stop,
            thread: Some(thread),
            path,
        }
    }

    fn stop(mut self) -> (Server, Model) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().unwrap();
        thread.join().expect("the server thread panicked")
    }

    fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(dir: &Path, limits: Limits) -> Running {
    let server = Server::with_limits(dir, "wgtest0", limits).unwrap();
    Running::start(server, Model::default())
}

/// Reads until `n` answers (each ends with a blank line) have arrived.
fn read_answers(stream: &mut UnixStream, n: usize) -> Vec<String> {
    let mut text = Vec::new();
    let mut buf = [0; 4096];
    while count_answers(&text) < n {
        let got = stream.read(&mut buf).expect("no answer in time");
        assert!(got > 0, "closed after {:?}", String::from_utf8_lossy(&text));
        text.extend_from_slice(&buf[..got]);
    }
    let text = String::from_utf8(text).unwrap();
    let answers: Vec<String> = text.split_inclusive("\n\n").map(str::to_string).collect();
    assert_eq!(answers.len(), n, "{text:?}");
    answers
}

fn count_answers(bytes: &[u8]) -> usize {
    bytes.windows(2).filter(|w| w == b"\n\n").count()
}

fn exchange(stream: &mut UnixStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    read_answers(stream, 1).pop().unwrap()
}

/// Whether the server has closed `stream` (reads EOF or a reset).
fn closed(stream: &mut UnixStream) -> bool {
    let mut buf = [0; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() == ErrorKind::ConnectionReset,
    }
}

#[test]
fn socket_file_is_private_and_removed_on_drop() {
    let tmp = TempDir::new();
    let dir = tmp.0.join("run/wireguard");
    let server = Server::bind(&dir, "wgtest0").unwrap();
    let path = dir.join("wgtest0.sock");
    assert_eq!(server.path(), path);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode & 0o755, dir_mode, "directory mode {dir_mode:o}");
    assert!(!server.socket_removed());
    drop(server);
    assert!(!path.exists());
}

#[test]
fn a_live_socket_is_refused_a_stale_one_replaced() {
    let tmp = TempDir::new();
    std::fs::create_dir_all(&tmp.0).unwrap();
    let path = tmp.0.join("wgtest0.sock");

    let other = UnixListener::bind(&path).unwrap();
    match Server::bind(&tmp.0, "wgtest0") {
        Err(err @ ServerError::InUse { .. }) => {
            assert!(
                err.to_string().contains("in use by another process"),
                "{err}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A listener that is gone leaves its file behind: stale.
    drop(other);
    assert!(path.exists());
    let server = Server::bind(&tmp.0, "wgtest0").unwrap();
    assert!(UnixStream::connect(&path).is_ok());

    // Someone else's socket in our place is theirs to remove.
    std::fs::remove_file(&path).unwrap();
    assert!(server.socket_removed());
    let theirs = UnixListener::bind(&path).unwrap();
    drop(server);
    assert!(path.exists());
    drop(theirs);
    std::fs::remove_file(&path).unwrap();

    std::fs::write(&path, b"not a socket").unwrap();
    assert!(matches!(
        Server::bind(&tmp.0, "wgtest0"),
        Err(ServerError::NotASocket { .. })
    ));
    assert!(
        path.exists(),
        "a file that is not a socket is never removed"
    );
}

#[test]
fn bad_names_are_refused() {
    let tmp = TempDir::new();
    for name in ["", "a/b", "..", "sixteen-bytes-xx"] {
        match Server::bind(&tmp.0, name) {
            Err(ServerError::BadName { .. }) => {}
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn get_and_set_over_the_socket_several_per_connection() {
    let tmp = TempDir::new();
    let running = serve(&tmp.0, Limits::default());
    let mut client = running.connect();

    assert_eq!(exchange(&mut client, "get=1\n\n"), "errno=0\n\n");
    let set = format!(
        "set=1\nlisten_port=51820\npublic_key={PEER_HEX}\nendpoint=198.19.0.1:51820\n\
         persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
         allowed_ip=198.18.1.0/24\n\n"
    );
    assert_eq!(exchange(&mut client, &set), "errno=0\n\n");
    let got = exchange(&mut client, "get=1\n\n");
    assert_eq!(
        got,
        format!(
            "listen_port=51820\npublic_key={PEER_HEX}\nprotocol_version=1\n\
             endpoint=198.19.0.1:51820\nlast_handshake_time_sec=1700000000\n\
             last_handshake_time_nsec=5\ntx_bytes=2000\nrx_bytes=1000\n\
             persistent_keepalive_interval=25\nallowed_ip=198.18.1.0/24\nerrno=0\n\n"
        )
    );

    // Pipelined in one write, answered in order.
    let batch = format!(
        "set=1\npublic_key={PEER_HEX}\nremove=true\n\nget=1\n\nset=1\nlisten_port=x\n\nget=1\n\n"
    );
    client.write_all(batch.as_bytes()).unwrap();
    let answers = read_answers(&mut client, 4);
    assert_eq!(answers[0], "errno=0\n\n");
    assert_eq!(answers[1], "listen_port=51820\nerrno=0\n\n");
    assert_eq!(answers[2], "errno=-22\n\n");
    assert_eq!(answers[3], "listen_port=51820\nerrno=0\n\n");

    // A request in pieces, with pauses between them.
    for piece in ["se", "t=1\nlisten_", "port=51821\n", "\n"] {
        client.write_all(piece.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read_answers(&mut client, 1)[0], "errno=0\n\n");

    // A handler failure reaches the client as its errno, and nothing is applied.
    let failed = format!("set=1\nlisten_port={TAKEN_PORT}\npublic_key={PEER_HEX}\n\n");
    assert_eq!(exchange(&mut client, &failed), "errno=-98\n\n");
    assert_eq!(
        exchange(&mut client, "get=1\n\n"),
        "listen_port=51821\nerrno=0\n\n"
    );
    drop(client);

    let (server, model) = running.stop();
    let stats = server.stats().clone();
    // The malformed set never reached the model, so it is not counted as a set.
    assert_eq!((stats.gets, stats.sets), (5, 4), "{stats:?}");
    assert_eq!(stats.failed, 2, "{stats:?}");
    assert_eq!(model.listen_port, 51821);
    assert!(model.peers.is_empty());
}

#[test]
fn an_unknown_operation_is_answered_then_closed() {
    let tmp = TempDir::new();
    let running = serve(&tmp.0, Limits::default());
    let mut client = running.connect();
    assert_eq!(
        exchange(&mut client, "GET / HTTP/1.0\r\n\r\n"),
        "errno=-22\n\n"
    );
    assert!(closed(&mut client));

    // The server goes on serving others.
    let mut other = running.connect();
    assert_eq!(exchange(&mut other, "get=1\n\n"), "errno=0\n\n");
    drop(other);
    let (server, _) = running.stop();
    assert_eq!(server.stats().desynced, 1);
}

#[test]
fn a_huge_request_is_rejected_without_hurting_the_connection() {
    let tmp = TempDir::new();
    let limits = Limits {
        max_request_bytes: 64 * 1024,
        ..Limits::default()
    };
    let running = serve(&tmp.0, limits);
    let mut client = running.connect();
    let writer_stream = client.try_clone().unwrap();
    // Four megabytes of valid lines, written while the answer is read.
    let writer = std::thread::spawn(move || {
        let mut stream = writer_stream;
        stream.write_all(b"set=1\n").unwrap();
        stream
            .write_all(format!("public_key={PEER_HEX}\n").as_bytes())
            .unwrap();
        let line = b"allowed_ip=10.0.0.0/8\n";
        let chunk: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 4096)
            .collect();
        for _ in 0..(4 << 20) / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
        stream.write_all(b"\n").unwrap();
    });
    let answer = read_answers(&mut client, 1).pop().unwrap();
    writer.join().unwrap();
    assert_eq!(answer, format!("errno=-{}\n\n", libc::EMSGSIZE));
    assert_eq!(exchange(&mut client, "get=1\n\n"), "errno=0\n\n");
    drop(client);
    let (_, model) = running.stop();
    assert!(
        model.peers.is_empty(),
        "nothing of the rejected request applied"
    );
}

#[test]
fn unfinished_and_idle_connections_time_out() {
    let tmp = TempDir::new();
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let running = serve(&tmp.0, limits);

    let mut unfinished = running.connect();
    unfinished.write_all(b"set=1\nlisten_port=7").unwrap();
    let mut idle = running.connect();
    assert_eq!(exchange(&mut idle, "get=1\n\n"), "errno=0\n\n");
    let started = Instant::now();
    assert!(closed(&mut unfinished));
    assert!(closed(&mut idle));
    assert!(started.elapsed() < Duration::from_secs(3));

    let (server, model) = running.stop();
    assert_eq!(server.stats().timed_out, 2, "{:?}", server.stats());
    assert_eq!(
        model.listen_port, 0,
        "the unfinished request was not applied"
    );
    assert_eq!(server.connections(), 0);
}

#[test]
fn a_client_that_closes_mid_request_has_it_discarded() {
    let tmp = TempDir::new();
    let running = serve(&tmp.0, Limits::default());
    let mut client = running.connect();
    client.write_all(b"set=1\nlisten_port=7\n").unwrap();
    drop(client);
    let mut other = running.connect();
    // Ordered after the first client's bytes by the time the server gets here.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(exchange(&mut other, "get=1\n\n"), "errno=0\n\n");
    drop(other);
    let (server, model) = running.stop();
    assert_eq!(model.listen_port, 0);
    assert_eq!(server.stats().truncated, 1);
}

#[test]
fn connections_over_the_limit_are_closed_at_once() {
    let tmp = TempDir::new();
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let running = serve(&tmp.0, limits);
    let mut first = running.connect();
    let mut second = running.connect();
    // Both accepted before the third arrives.
    assert_eq!(exchange(&mut first, "get=1\n\n"), "errno=0\n\n");
    assert_eq!(exchange(&mut second, "get=1\n\n"), "errno=0\n\n");
    let mut third = running.connect();
    assert!(closed(&mut third));
    drop(first);
    std::thread::sleep(Duration::from_millis(50));
    let mut fourth = running.connect();
    assert_eq!(exchange(&mut fourth, "get=1\n\n"), "errno=0\n\n");
    drop((second, fourth));
    let (server, _) = running.stop();
    let stats: ServerStats = server.stats().clone();
    assert_eq!((stats.accepted, stats.refused), (4, 1), "{stats:?}");
}

#[test]
fn a_client_that_never_reads_holds_up_no_one() {
    let tmp = TempDir::new();
    let limits = Limits {
        timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut model = Model::default();
    // A long answer, so that unread answers fill the socket buffer quickly.
    let set = SetRequest {
        private_key: Some(SecretUpdate::Set(control::config::Key::from_bytes([7; 32]))),
        ..SetRequest::default()
    };
    model.apply(set).unwrap();
    for i in 0..200u8 {
        model.peers.push(ModelPeer {
            public_key: [i; 32],
            preshared_key: Some([i; 32]),
            endpoint: Some(SocketAddr::from(([198, 19, 0, i], 51820))),
            keepalive: 25,
            allowed_ips: vec![(IpAddr::from([10, i, 0, 0]), 16)],
        });
    }
    let server = Server::with_limits(&tmp.0, "wgtest0", limits).unwrap();
    let running = Running::start(server, model);

    let mut greedy = running.connect();
    greedy.write_all(&b"get=1\n\n".repeat(2000)).unwrap();
    let mut polite = running.connect();
    let started = Instant::now();
    let answer = exchange(&mut polite, "get=1\n\n");
    assert!(answer.ends_with("errno=0\n\n"));
    // Well before the greedy client's timeout would free the loop, if it were stuck.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(closed_eventually(&mut greedy));
    drop(polite);
    let (server, _) = running.stop();
    assert!(server.stats().timed_out >= 1, "{:?}", server.stats());
}

/// Reads and discards until the server closes the stream.
fn closed_eventually(stream: &mut UnixStream) -> bool {
    let mut buf = vec![0; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    // Let the timeout pass before reading, or reading would keep it alive.
    std::thread::sleep(Duration::from_millis(2500));
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return true,
            Err(err) => panic!("{err}"),
        }
    }
    false
}

/// Runs `wg` with `args`; returns its exit status, stdout and stderr.
fn wg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("wg").args(args).output().expect("run wg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wg_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = wg(args);
    assert!(ok, "wg {args:?}: {stderr}");
    stdout
}

/// Removes a path on drop: the socket in the shared directory, even if the test fails
/// in a way that skips the server's own cleanup.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_wg_tool_against_the_server() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: `wg` only looks in {SOCKET_DIR}, which needs root");
        return;
    }
    if Command::new("wg").arg("--version").output().is_err() {
        eprintln!("skipped: `wg` (wireguard-tools) is not installed");
        return;
    }
    let name = format!("wgdpt{}", std::process::id());
    let dir = Path::new(SOCKET_DIR);
    let _cleanup = RemoveOnDrop(dir.join(format!("{name}.sock")));
    let server = Server::bind(dir, &name).unwrap();
    let running = Running::start(server, Model::default());
    let tmp = TempDir::new();
    std::fs::create_dir_all(&tmp.0).unwrap();

    let private = StaticSecret::from([0x48; 32]);
    let public = PublicKey::from(&private);
    let private_b64 = control::keys::encode(&private.to_bytes());
    let private_file = tmp.0.join("private");
    std::fs::write(&private_file, format!("{private_b64}\n")).unwrap();
    std::fs::set_permissions(&private_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let peer = control::keys::encode(&[0x51; 32]);

    assert!(wg_ok(&["show", "interfaces"])
        .split_whitespace()
        .any(|n| n == name));
    wg_ok(&[
        "set",
        &name,
        "listen-port",
        "51820",
        "private-key",
        private_file.to_str().unwrap(),
    ]);
    wg_ok(&[
        "set",
        &name,
        "peer",
        &peer,
        "allowed-ips",
        "198.18.1.0/24",
        "endpoint",
        "198.19.0.1:51820",
        "persistent-keepalive",
        "25",
    ]);
    let dump = wg_ok(&["show", &name, "dump"]);
    let public_b64 = control::keys::encode(public.as_bytes());
    assert_eq!(
        dump,
        format!(
            "{private_b64}\t{public_b64}\t51820\toff\n\
             {peer}\t(none)\t198.19.0.1:51820\t198.18.1.0/24\t1700000000\t1000\t2000\t25\n"
        )
    );
    let show = wg_ok(&["show", &name]);
    assert!(show.contains(&format!("peer: {peer}")), "{show}");
    assert!(
        show.contains("transfer: 1000 B received, 1.95 KiB sent"),
        "{show}"
    );
    let conf = wg_ok(&["showconf", &name]);
    for line in [
        format!("PrivateKey = {private_b64}"),
        "ListenPort = 51820".to_string(),
        format!("PublicKey = {peer}"),
        "AllowedIPs = 198.18.1.0/24".to_string(),
        "Endpoint = 198.19.0.1:51820".to_string(),
        "PersistentKeepalive = 25".to_string(),
    ] {
        assert!(conf.contains(&line), "{line:?} not in {conf}");
    }

    // The errno convention, end to end: wg prints the handler's error.
    let (ok, _, stderr) = wg(&["set", &name, "listen-port", &TAKEN_PORT.to_string()]);
    assert!(!ok);
    assert!(stderr.contains("Address already in use"), "{stderr}");

    // syncconf reads the device, then sets it to the file.
    let conf_file = tmp.0.join("wg.conf");
    let other_peer = control::keys::encode(&[0x62; 32]);
    std::fs::write(
        &conf_file,
        format!(
            "[Interface]\nPrivateKey = {private_b64}\nListenPort = 51821\n\n\
             [Peer]\nPublicKey = {other_peer}\nAllowedIPs = 10.1.0.0/16, fd00::/64\n"
        ),
    )
    .unwrap();
    wg_ok(&["syncconf", &name, conf_file.to_str().unwrap()]);
    assert_eq!(
        wg_ok(&["show", &name, "allowed-ips"]),
        format!("{other_peer}\t10.1.0.0/16 fd00::/64\n")
    );
    wg_ok(&["set", &name, "peer", &other_peer, "remove"]);
    assert_eq!(wg_ok(&["show", &name, "peers"]), "");

    let (server, model) = running.stop();
    assert_eq!(model.listen_port, 51821);
    assert_eq!(server.stats().failed, 1, "{:?}", server.stats());
    drop(server);
    assert!(!dir.join(format!("{name}.sock")).exists());
}

// --- Bulk changes on the real control plane, next to a live session -------------------
//
// Gateway A (the one the socket serves) and its peer B, two control planes and workers
// on plain memory with a simulated clock, as in tests/pair.rs. B's session is made
// first; then thousands of peers are added, changed and removed over the socket with
// the requests `wg addconf`, `wg syncconf` and `wg setconf` send, and B's session must
// come through all of it: the same handshake, and traffic both ways without a new one.

use control::plane::{ControlEvent, ControlPlane, PeerSpec};
use control::uapi::device;
use dataplane::buf::HeapBuf;
use dataplane::session::Sessions;
use dataplane::tables::{PortTables, Shared, Side, Tables};
use rand_core::OsRng;

mod common;
use common::{ip, lan_packet, step, Gw, MS};

/// Peers gateway A has room for.
const ROOM: usize = 8192;
/// Peers of the bulk requests.
const BULK: usize = 5000;

/// A gateway with one peer, `peer_key`, whose allowed IPs are `peer_net`/24.
fn gateway(
    key: &StaticSecret,
    peer_key: &PublicKey,
    addrs: [&str; 3],
    peer_net: &str,
    peer_endpoint: &str,
    id: u8,
) -> Gw {
    let spec = PeerSpec {
        public_key: *peer_key.as_bytes(),
        preshared_key: None,
        endpoint: Some(peer_endpoint.parse().unwrap()),
        allowed_ips: vec![(ip(peer_net), 24)],
        persistent_keepalive: None,
    };
    common::gateway(key, spec, addrs, id, Sessions::new(14, ROOM))
}

/// A control plane alone (no worker, ports without addresses) with `specs`.
fn lone_plane(
    key: &[u8; 32],
    specs: &[PeerSpec],
    sessions: Sessions,
) -> ControlPlane<HeapBuf, OsRng> {
    let tables = Tables {
        ports: [
            PortTables::new([2, 0, 0, 0, 0, 1], vec![]),
            PortTables::new([2, 0, 0, 0, 0, 2], vec![]),
        ],
        allowed: Default::default(),
        listen_port: 51820,
        mtu: 1420,
        outer_dscp: Default::default(),
    };
    let shared = Arc::new(Shared::new(tables, sessions));
    ControlPlane::new(key, specs, shared, OsRng).unwrap()
}

/// A's LAN is 198.18.2.0/24, B's 198.18.99.0/24.
const A_LAN_HOST: &str = "198.18.2.2";
const B_LAN_HOST: &str = "198.18.99.2";

/// A packet each way, `n` in both; each must arrive.
fn both_ways(a: &mut Gw, b: &mut Gw, t: &mut u64, n: u8) {
    let (to_b, to_a) = (lan_packet(a, B_LAN_HOST, n), lan_packet(b, A_LAN_HOST, n));
    a.worker.io.rx[Side::Inside.index()].push_back(to_b);
    b.worker.io.rx[Side::Inside.index()].push_back(to_a);
    let (got_a, got_b) = (a.delivered.len(), b.delivered.len());
    for _ in 0..20 {
        step(a, b, *t);
        *t += MS;
    }
    assert_eq!(
        b.delivered.len(),
        got_b + 1,
        "packet {n} A->B did not arrive"
    );
    assert_eq!(
        a.delivered.len(),
        got_a + 1,
        "packet {n} B->A did not arrive"
    );
    assert_eq!((b.delivered[got_b][28], a.delivered[got_a][28]), (n, n));
}

/// A key that looks random and is the same on every run: splitmix64 of `seed`.
fn made_up_key(seed: u64) -> [u8; 32] {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5157_4450_4b45_5953;
    let mut key = [0; 32];
    for chunk in key.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    key
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bulk peer `i`'s first allowed IP: 198.18.128.0/17, one /32 each.
fn bulk_v4(i: usize) -> String {
    let n = u32::from(std::net::Ipv4Addr::new(198, 18, 128, 0)) + i as u32;
    format!("{}/32", std::net::Ipv4Addr::from(n))
}

/// Bulk peer `i`'s allowed IP after the change: 2001:2:0:1000::/64, one /128 each.
fn bulk_v6(i: usize) -> String {
    format!("2001:2:0:1000::{:x}/128", i + 1)
}

/// Sends `request` over the socket, as `wg` does, while this thread runs the control
/// loop's part: polls the server, whose handler applies to and describes A's plane.
fn over_the_socket(
    server: &mut Server,
    plane: &mut ControlPlane<HeapBuf, OsRng>,
    request: String,
) -> String {
    let path = server.path().to_path_buf();
    let client = std::thread::spawn(move || {
        let mut stream = UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while !answer.ends_with(b"\n\n") {
            let n = stream.read(&mut buf).expect("no answer in time");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(answer).unwrap()
    });
    while !client.is_finished() {
        server.poll(&mut |request| match request {
            Request::Get => Response::Device(device::describe(plane)),
            Request::Set(set) => match device::apply(plane, &set, ROOM) {
                Ok(()) => Response::Applied,
                Err(error) => Response::Failed(error),
            },
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    client.join().expect("the client failed")
}

/// The peers of a get answer: each public key (hex) with its `allowed_ip` values.
fn peers_of(answer: &str) -> Vec<(String, Vec<String>)> {
    assert!(answer.ends_with("errno=0\n\n"), "{answer:.200}");
    let mut peers: Vec<(String, Vec<String>)> = Vec::new();
    for line in answer.lines() {
        if let Some(key) = line.strip_prefix("public_key=") {
            peers.push((key.to_string(), Vec::new()));
        } else if let Some(net) = line.strip_prefix("allowed_ip=") {
            peers.last_mut().unwrap().1.push(net.to_string());
        }
    }
    peers
}

fn allowed_ips_of<'a>(peers: &'a [(String, Vec<String>)], key: &[u8; 32]) -> Option<&'a [String]> {
    let key = hex(key);
    peers
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, ips)| &ips[..])
}

/// The lines `wg showconf` would have given for the peer `key` of a get answer, as a
/// set request's block (`wg` writes `replace_allowed_ips` for each peer of a file).
fn block_of(answer: &str, key: &[u8; 32]) -> String {
    let start = answer
        .find(&format!("public_key={}\n", hex(key)))
        .expect("the peer is listed");
    let mut block = String::new();
    for line in answer[start..].lines().enumerate() {
        let (i, line) = line;
        if i > 0 && line.starts_with("public_key=") || line.starts_with("errno=") {
            break;
        }
        if line.starts_with("public_key=")
            || line.starts_with("preshared_key=")
            || line.starts_with("endpoint=")
        {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("public_key=") {
                block.push_str("replace_allowed_ips=true\n");
            }
        } else if line.starts_with("allowed_ip=") {
            block.push_str(line);
            block.push('\n');
        }
    }
    block
}

#[test]
fn thousands_of_peers_come_change_and_go_while_another_peers_session_runs_on() {
    let ka = StaticSecret::from(made_up_key(1));
    let kb = StaticSecret::from(made_up_key(2));
    let b_key = *PublicKey::from(&kb).as_bytes();
    let mut a = gateway(
        &ka,
        &PublicKey::from(&kb),
        ["198.19.0.2", "198.18.2.1", A_LAN_HOST],
        "198.18.99.0",
        "198.19.0.1:51820",
        1,
    );
    let mut b = gateway(
        &kb,
        &PublicKey::from(&ka),
        ["198.19.0.1", "198.18.99.1", B_LAN_HOST],
        "198.18.2.0",
        "198.19.0.2:51820",
        2,
    );
    let mut t = 1_000 * MS;
    // A starts the handshake with a packet of its LAN host; then traffic both ways.
    a.worker.io.rx[Side::Inside.index()].push_back(lan_packet(&a, B_LAN_HOST, 0));
    for _ in 0..20 {
        step(&mut a, &mut b, t);
        t += MS;
    }
    assert_eq!(b.delivered.len(), 1, "the first packet arrived");
    both_ways(&mut a, &mut b, &mut t, 1);
    let session = |a: &Gw| {
        let v = a
            .plane
            .peer_views()
            .find(|v| v.spec.public_key == b_key)
            .expect("B is a peer of A");
        (v.handshakes, v.last_handshake)
    };
    let b_session = session(&a);
    assert_eq!(b_session.0, 1, "one handshake made");
    let initiations = (
        a.plane.stats.event(ControlEvent::InitiationsSent),
        b.plane.stats.event(ControlEvent::InitiationsSent),
    );

    let tmp = TempDir::new();
    let mut server = Server::bind(&tmp.0, "wgtest0").unwrap();
    let get = |server: &mut Server, a: &mut Gw| {
        over_the_socket(server, &mut a.plane, "get=1\n\n".to_string())
    };
    let before = get(&mut server, &mut a);
    assert_eq!(peers_of(&before).len(), 1);
    let b_block = block_of(&before, &b_key);
    assert!(b_block.contains("allowed_ip=198.18.99.0/24\n"), "{b_block}");

    // `wg addconf` of a file with BULK peers, each with a /32 of its own.
    let keys: Vec<[u8; 32]> = (0..BULK).map(|i| made_up_key(1000 + i as u64)).collect();
    let mut add = String::from("set=1\n");
    for (i, key) in keys.iter().enumerate() {
        add += &format!(
            "public_key={}\nreplace_allowed_ips=true\nallowed_ip={}\n",
            hex(key),
            bulk_v4(i)
        );
    }
    add.push('\n');
    assert_eq!(
        over_the_socket(&mut server, &mut a.plane, add),
        "errno=0\n\n"
    );
    let after_add = peers_of(&get(&mut server, &mut a));
    assert_eq!(after_add.len(), BULK + 1);
    for i in [0, 1, BULK / 2, BULK - 1] {
        assert_eq!(allowed_ips_of(&after_add, &keys[i]).unwrap(), [bulk_v4(i)]);
    }
    assert_eq!(session(&a), b_session);
    both_ways(&mut a, &mut b, &mut t, 2);

    // `wg syncconf` of a file with B as `wg showconf` gave it and the first half of the
    // bulk with new allowed IPs: `wg` reads the device, and sends the second half as
    // removals first, then the file's peers.
    let mut sync = String::from("set=1\n");
    for key in &keys[BULK / 2..] {
        sync += &format!("public_key={}\nremove=true\n", hex(key));
    }
    sync += &b_block;
    for (i, key) in keys[..BULK / 2].iter().enumerate() {
        sync += &format!(
            "public_key={}\nreplace_allowed_ips=true\nallowed_ip={}\n",
            hex(key),
            bulk_v6(i)
        );
    }
    sync.push('\n');
    assert_eq!(
        over_the_socket(&mut server, &mut a.plane, sync),
        "errno=0\n\n"
    );
    let after_sync = peers_of(&get(&mut server, &mut a));
    assert_eq!(after_sync.len(), BULK / 2 + 1);
    for i in [0, 1, BULK / 2 - 1] {
        assert_eq!(allowed_ips_of(&after_sync, &keys[i]).unwrap(), [bulk_v6(i)]);
    }
    for i in [BULK / 2, BULK - 1] {
        assert!(
            allowed_ips_of(&after_sync, &keys[i]).is_none(),
            "peer {i} stayed"
        );
    }
    assert_eq!(
        allowed_ips_of(&after_sync, &b_key).unwrap(),
        ["198.18.99.0/24"]
    );
    assert_eq!(session(&a), b_session);
    both_ways(&mut a, &mut b, &mut t, 3);

    // `wg setconf` of the file `wg showconf` gave before the bulk: the device lines,
    // replace_peers, and B.
    let own = format!(
        "private_key={}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n",
        hex(&ka.to_bytes())
    );
    let set = format!("set=1\n{own}{b_block}\n");
    assert_eq!(
        over_the_socket(&mut server, &mut a.plane, set),
        "errno=0\n\n"
    );
    let after_set = get(&mut server, &mut a);
    assert_eq!(peers_of(&after_set), peers_of(&before));
    assert_eq!(a.plane.peer_count(), 1);
    assert_eq!(session(&a), b_session, "B's session survived");
    both_ways(&mut a, &mut b, &mut t, 4);
    assert_eq!(
        (
            a.plane.stats.event(ControlEvent::InitiationsSent),
            b.plane.stats.event(ControlEvent::InitiationsSent)
        ),
        initiations,
        "no new handshake"
    );
    assert_eq!(a.worker.counters().drops(), 0, "{:?}", a.worker.counters());
    assert_eq!(b.worker.counters().drops(), 0, "{:?}", b.worker.counters());
    let stats = server.stats();
    assert_eq!((stats.sets, stats.failed), (3, 0), "{stats:?}");
}

/// `replace_peers` leaves each peer as its block in the request says, as wireguard-go
/// (which removes every peer and makes them anew) would: a peer listed again keeps no
/// setting its block does not repeat; a peer named only with `update_only`, or removed
/// again, is gone.
#[test]
fn replace_peers_leaves_exactly_what_the_request_lists() {
    let key = StaticSecret::from(made_up_key(1));
    let peers: Vec<[u8; 32]> = (0..4).map(|i| made_up_key(100 + i)).collect();
    let specs: Vec<PeerSpec> = peers
        .iter()
        .enumerate()
        .map(|(i, k)| PeerSpec {
            public_key: *k,
            preshared_key: Some([9; 32]),
            endpoint: Some(SocketAddr::from(([198, 19, 0, 10 + i as u8], 51820))),
            allowed_ips: vec![(IpAddr::from([198, 18, 10 + i as u8, 0]), 24)],
            persistent_keepalive: Some(25),
        })
        .collect();
    let mut plane = lone_plane(&key.to_bytes(), &specs, Sessions::new(10, 16));
    let [p0, p1, p2] = [0, 1, 2].map(|i| hex(&peers[i]));
    // p0 listed with an allowed IP only; p1 only to be updated; p2 listed, then removed;
    // p3 not listed, and its network goes to p0.
    let request = format!(
        "set=1\nreplace_peers=true\n\
         public_key={p1}\nupdate_only=true\nallowed_ip=198.18.50.0/24\n\
         public_key={p0}\nallowed_ip=198.18.13.0/24\n\
         public_key={p2}\nallowed_ip=198.18.52.0/24\n\
         public_key={p2}\nremove=true\n\n"
    );
    let mut decoder = control::uapi::Decoder::new(1 << 20);
    decoder.push(request.as_bytes());
    let Some(control::uapi::Decoded::Request(Request::Set(set))) = decoder.decode() else {
        panic!("not a set request");
    };
    device::apply(&mut plane, &set, 16).unwrap();
    let described = device::describe(&plane);
    assert_eq!(described.peers.len(), 1, "{:?}", described.peers);
    let p = &described.peers[0];
    assert_eq!(p.public_key, peers[0]);
    assert!(p.preshared_key.is_none());
    assert_eq!(p.persistent_keepalive, None);
    // Where it was last heard from stays: a session it keeps goes on there.
    assert_eq!(
        p.endpoint,
        Some(SocketAddr::from(([198, 19, 0, 10], 51820)))
    );
    assert_eq!(p.allowed_ips, [(ip("198.18.13.0"), 24)]);
    assert_eq!(plane.owner_of((ip("198.18.13.0"), 24)), Some(&peers[0]));
    assert_eq!(plane.owner_of((ip("198.18.10.0"), 24)), None);
}

/// A public key of small order (here 0) makes no handshake possible, and wgdp refuses
/// it: as an invalid argument, not as a lack of room.
#[test]
fn a_key_of_small_order_is_an_invalid_argument() {
    let mut plane = lone_plane(&made_up_key(1), &[], Sessions::new(10, 16));
    let request = format!("set=1\npublic_key={}\n\n", "00".repeat(32));
    let mut decoder = control::uapi::Decoder::new(1 << 20);
    decoder.push(request.as_bytes());
    let Some(control::uapi::Decoded::Request(Request::Set(set))) = decoder.decode() else {
        panic!("not a set request");
    };
    let error = device::apply(&mut plane, &set, 16).unwrap_err();
    assert_eq!(error.errno(), libc::EINVAL, "{error}");
    assert_eq!(plane.peer_count(), 0);
}

// Gets streamed from the control plane (`Server::serve` with `device::Served`), as the
// gateway answers them: a batch of peers per poll while the client reads.

use control::uapi::{encode_response, Handler, UapiInterface};
use std::collections::HashMap;

/// Peers of the streamed gets.
const STREAMED: usize = 20_000;
/// Peers a streamed plane has room for.
const STREAMED_ROOM: usize = 32_768;

/// Streamed peer `i`'s configuration: a /32 of its own, and a preshared key, an endpoint
/// and a keepalive for some.
fn streamed_spec(i: usize) -> PeerSpec {
    PeerSpec {
        public_key: made_up_key(100_000 + i as u64),
        preshared_key: (i % 3 == 1).then(|| made_up_key(200_000 + i as u64)),
        endpoint: (i % 2 == 1)
            .then(|| SocketAddr::from(([198, 19, (i >> 8) as u8, i as u8], 51820))),
        allowed_ips: vec![(IpAddr::from((0x0a00_0000 + i as u32).to_be_bytes()), 32)],
        persistent_keepalive: (i % 5 == 1).then_some(25),
    }
}

/// A plane with peers `0..n` of `streamed_spec`; peer `i` has id `i`.
fn streamed_plane(n: usize) -> ControlPlane<HeapBuf, OsRng> {
    let specs: Vec<PeerSpec> = (0..n).map(streamed_spec).collect();
    lone_plane(&made_up_key(1), &specs, Sessions::new(16, STREAMED_ROOM))
}

/// The plane's handler, counting the peers the server asks of it.
struct Counting<'a> {
    inner: device::Served<'a, HeapBuf, OsRng>,
    given: usize,
}

impl Handler for Counting<'_> {
    fn set(&mut self, request: SetRequest) -> Result<(), UapiError> {
        self.inner.set(request)
    }

    fn interface(&mut self) -> UapiInterface {
        self.inner.interface()
    }

    fn peers(&mut self, cursor: u64, each: &mut dyn FnMut(&UapiPeer) -> bool) -> Option<u64> {
        let given = &mut self.given;
        self.inner.peers(cursor, &mut |peer| {
            *given += 1;
            each(peer)
        })
    }
}

/// What one streamed get saw: the answer, and after each poll the peers listed in it
/// and the answer bytes the server held.
struct Streamed {
    answer: String,
    listed: Vec<usize>,
    held: Vec<usize>,
}

/// A client sends `get=1` and reads the answer `chunk` bytes at a time, pausing a
/// millisecond every `pause_every` reads, while this thread polls as the control loop
/// does. After each poll that listed peers, `between(such polls so far, plane)` may
/// change the plane.
fn streamed_get(
    server: &mut Server,
    plane: &mut ControlPlane<HeapBuf, OsRng>,
    chunk: usize,
    pause_every: usize,
    mut between: impl FnMut(usize, &mut ControlPlane<HeapBuf, OsRng>),
) -> Streamed {
    let path = server.path().to_path_buf();
    let client = std::thread::spawn(move || {
        let mut stream = UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(b"get=1\n\n").unwrap();
        let mut answer = Vec::new();
        let mut buf = vec![0; chunk];
        let mut reads = 0;
        while !answer.ends_with(b"errno=0\n\n") {
            let n = stream.read(&mut buf).expect("no answer in time");
            assert!(n > 0, "closed after {} bytes", answer.len());
            answer.extend_from_slice(&buf[..n]);
            reads += 1;
            if reads % pause_every == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        String::from_utf8(answer).unwrap()
    });
    let mut seen = Streamed {
        answer: String::new(),
        listed: Vec::new(),
        held: Vec::new(),
    };
    while !client.is_finished() {
        let mut handler = Counting {
            inner: device::Served::new(plane, STREAMED_ROOM),
            given: 0,
        };
        server.serve(&mut handler);
        let given = handler.given;
        seen.listed.push(given);
        seen.held.push(server.answer_bytes_held());
        if given > 0 {
            between(seen.listed.iter().filter(|&&n| n > 0).count(), plane);
        }
    }
    seen.answer = client.join().expect("the client failed");
    // The last poll finished the answer: nothing is left to do.
    assert!(!server.writing());
    seen
}

/// The public keys of a get answer, in order, with each one's lines, after checking
/// that it is well-formed: device lines, then blocks that each start with
/// `public_key`, then `errno=0` and the blank line.
fn blocks_of(answer: &str) -> Vec<(String, Vec<String>)> {
    let body = answer.strip_suffix("errno=0\n\n").unwrap_or_else(|| {
        panic!(
            "unfinished: {:?}",
            &answer[answer.len().saturating_sub(200)..]
        )
    });
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    for line in body.lines() {
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
        match key {
            "private_key" | "listen_port" => assert!(blocks.is_empty(), "{line:?} after a peer"),
            "public_key" => blocks.push((value.to_string(), Vec::new())),
            "preshared_key"
            | "protocol_version"
            | "endpoint"
            | "last_handshake_time_sec"
            | "last_handshake_time_nsec"
            | "tx_bytes"
            | "rx_bytes"
            | "persistent_keepalive_interval"
            | "allowed_ip" => {
                let block = blocks
                    .last_mut()
                    .unwrap_or_else(|| panic!("{line:?} before a peer"));
                block.1.push(line.to_string());
            }
            _ => panic!("{line:?}"),
        }
    }
    blocks
}

#[test]
fn a_get_of_many_peers_is_streamed_a_batch_per_poll() {
    let mut plane = streamed_plane(STREAMED);
    let whole = encode_response(&Response::Device(device::describe(&plane)));
    let whole = std::str::from_utf8(&whole).unwrap();
    let tmp = TempDir::new();
    let limits = Limits::default();
    let mut server = Server::with_limits(&tmp.0, "wgtest0", limits.clone()).unwrap();
    let seen = streamed_get(&mut server, &mut plane, 64 * 1024, usize::MAX, |_, _| {});
    // Byte for byte what a whole answer is.
    assert_eq!(seen.answer.len(), whole.len());
    assert!(seen.answer == whole, "the streamed answer differs");
    assert_eq!(blocks_of(&seen.answer).len(), STREAMED);
    // Never more than the budget in one poll, so over many polls.
    assert_eq!(seen.listed.iter().sum::<usize>(), STREAMED);
    assert!(
        seen.listed.iter().all(|&n| n <= limits.peers_per_poll),
        "{:?}",
        seen.listed
    );
    let batches = seen.listed.iter().filter(|&&n| n > 0).count();
    assert!(batches >= STREAMED / limits.peers_per_poll, "{batches}");
    // The next get on the same connection, and a set, still work.
    let mut client = UnixStream::connect(server.path()).unwrap();
    client.set_nonblocking(true).unwrap();
    let set = format!(
        "set=1\npublic_key={}\nremove=true\n\n",
        hex(&streamed_spec(7).public_key)
    );
    client.write_all(set.as_bytes()).unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\n\n") {
        server.serve(&mut device::Served::new(&mut plane, STREAMED_ROOM));
        let mut buf = [0; 64];
        match client.read(&mut buf) {
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(answer, b"errno=0\n\n");
    assert_eq!(plane.peer_count(), STREAMED - 1);
    assert_eq!(server.stats().gets, 1);
    assert_eq!(server.stats().sets, 1);
}

#[test]
fn a_slow_reader_of_a_streamed_get_holds_bounded_memory() {
    let mut plane = streamed_plane(STREAMED);
    let whole = encode_response(&Response::Device(device::describe(&plane)));
    let tmp = TempDir::new();
    let limits = Limits {
        answer_bytes: 16 * 1024,
        ..Limits::default()
    };
    let mut server = Server::with_limits(&tmp.0, "wgtest0", limits.clone()).unwrap();
    // Reads of 4 KiB, with a pause every 16.
    let seen = streamed_get(&mut server, &mut plane, 4096, 16, |_, _| {});
    assert!(
        seen.answer.as_bytes() == &whole[..],
        "the streamed answer differs"
    );
    // What waits unsent stays under the limit and a peer; the buffer at most doubles
    // that.
    let most = seen.held.iter().copied().max().unwrap();
    assert!(
        most <= 2 * (limits.answer_bytes + 1024),
        "{most} bytes held for an answer of {}",
        whole.len()
    );
    assert!(whole.len() > 100 * most, "{} {most}", whole.len());
    assert!(seen.listed.iter().all(|&n| n <= limits.peers_per_poll));
    // Nothing held once the answer is read.
    assert_eq!(server.answer_bytes_held(), 0);
}

#[test]
fn peers_that_come_and_go_during_a_streamed_get_are_listed_at_most_once() {
    let mut plane = streamed_plane(STREAMED);
    let tmp = TempDir::new();
    let limits = Limits {
        peers_per_poll: 100,
        ..Limits::default()
    };
    let mut server = Server::with_limits(&tmp.0, "wgtest0", limits.clone()).unwrap();
    let key = |i: usize| streamed_spec(i).public_key;
    let added = |i: usize| PeerSpec {
        public_key: made_up_key(300_000 + i as u64),
        preshared_key: None,
        endpoint: None,
        allowed_ips: vec![(IpAddr::from((0x0b00_0000 + i as u32).to_be_bytes()), 32)],
        persistent_keepalive: None,
    };
    let moved = (ip("198.51.100.0"), 24);
    let seen = streamed_get(
        &mut server,
        &mut plane,
        64 * 1024,
        usize::MAX,
        |batches, plane| {
            match batches {
                // Three batches of at most 100 are out, the first whole: peers 0..100 are
                // listed and peers from 300 on are not.
                3 => {
                    for i in (0..10).chain(19_000..STREAMED).chain([5000]) {
                        assert!(plane.remove_peer(&key(i)), "{i}");
                    }
                    // Removed and added back ahead of the answer: listed once, as it is now.
                    let mut again = streamed_spec(5000);
                    again.persistent_keepalive = Some(7);
                    plane.add_peer(again).unwrap();
                    let mut changed = streamed_spec(10_000);
                    changed.allowed_ips.push(moved);
                    assert!(plane.update_peer(changed));
                    for i in 0..500 {
                        plane.add_peer(added(i)).unwrap();
                    }
                }
                // Ten batches out: peers from 1000 on are not listed yet.
                10 => {
                    for i in 15_000..15_100 {
                        assert!(plane.remove_peer(&key(i)));
                    }
                    for i in 500..600 {
                        plane.add_peer(added(i)).unwrap();
                    }
                }
                _ => {}
            }
        },
    );
    assert!(
        seen.listed.iter().all(|&n| n <= limits.peers_per_poll),
        "{:?}",
        seen.listed
    );
    let blocks = blocks_of(&seen.answer);
    let mut listed: HashMap<String, Vec<String>> = HashMap::new();
    for (k, lines) in &blocks {
        assert!(
            listed.insert(k.clone(), lines.clone()).is_none(),
            "{k} listed twice"
        );
    }
    for i in 0..STREAMED {
        let there = listed.contains_key(&hex(&key(i)));
        let removed_ahead = (19_000..STREAMED).contains(&i) || (15_000..15_100).contains(&i);
        // Peers 0..10 were listed before they went; the others there all along are.
        assert_eq!(there, !removed_ahead, "peer {i}");
    }
    let again = &listed[&hex(&key(5000))];
    assert!(
        again.contains(&"persistent_keepalive_interval=7".to_string()),
        "{again:?}"
    );
    let changed = &listed[&hex(&key(10_000))];
    assert!(
        changed.contains(&"allowed_ip=198.51.100.0/24".to_string()),
        "{changed:?}"
    );
    // The added peers may or may not be listed, each at most once (checked above).
    let news = (0..600)
        .filter(|&i| listed.contains_key(&hex(&added(i).public_key)))
        .count();
    assert_eq!(
        blocks.len(),
        STREAMED - 1000 - 100 + news,
        "every other listed peer is one of the plane's"
    );
}

#[test]
fn the_wg_tool_reads_a_streamed_answer() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: `wg` only looks in {SOCKET_DIR}, which needs root");
        return;
    }
    if Command::new("wg").arg("--version").output().is_err() {
        eprintln!("skipped: `wg` (wireguard-tools) is not installed");
        return;
    }
    let mut plane = streamed_plane(STREAMED);
    let name = format!("wgdps{}", std::process::id());
    let dir = Path::new(SOCKET_DIR);
    let _cleanup = RemoveOnDrop(dir.join(format!("{name}.sock")));
    let mut server = Server::bind(dir, &name).unwrap();
    let wg_name = name.clone();
    let dump = std::thread::spawn(move || wg_ok(&["show", &wg_name, "dump"]));
    while !dump.is_finished() {
        server.serve(&mut device::Served::new(&mut plane, STREAMED_ROOM));
    }
    let dump = dump.join().expect("wg failed");
    let lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.len(), STREAMED + 1, "{:.300}", dump);
    assert!(lines[0].starts_with(&control::keys::encode(&made_up_key(1))));
    for (i, line) in lines[1..].iter().enumerate() {
        let spec = streamed_spec(i);
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields[0], control::keys::encode(&spec.public_key), "{line}");
        assert_eq!(fields[3], format!("{}/32", spec.allowed_ips[0].0), "{line}");
    }
}
