//! Telemetry commands answered by Rust closures, queried over the EAL's telemetry socket
//! the way `dpdk-telemetry.py` does.

mod common;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dpdk_sys::telemetry::{self, Dict, Reply};

#[test]
fn telemetry_commands() {
    // Registered before the EAL exists: DPDK keeps the command until the socket opens.
    let early = telemetry::register("/wgdp_test/early", "registered before EAL init", |_| {
        Some(Reply::U64s(vec![1, 2, 3]))
    })
    .unwrap();

    let Some(_eal) = common::eal_or_skip("telemetry", &[]) else {
        return;
    };
    let mut client = Client::connect_own().unwrap();

    assert_eq!(
        client.query("/wgdp_test/early").unwrap(),
        r#"{"/wgdp_test/early":[1,2,3]}"#
    );

    dicts(&mut client);
    params_and_lists(&mut client);
    failures_answer_null(&mut client);
    listing_and_help(&mut client);

    drop(early);
    assert_eq!(
        client.query("/wgdp_test/early").unwrap(),
        r#"{"/wgdp_test/early":null}"#
    );
}

/// Nested dicts, and a value that changes between two queries (the closure reads
/// shared state, as the gateway's does).
fn dicts(client: &mut Client) {
    let packets = Arc::new(AtomicU64::new(5));
    let shared = packets.clone();
    let _cmd = telemetry::register("/wgdp_test/dict", "a nested dict", move |_| {
        let mut drops = Dict::new();
        drops.add_u64("bad_tag", 2).add_u64("replay", 0);
        let mut d = Dict::new();
        d.add_u64("rx_packets", shared.load(Ordering::Relaxed))
            .add_string("public_key", "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=")
            .add_dict("decrypt", drops);
        Some(Reply::Dict(d))
    })
    .unwrap();

    assert_eq!(
        client.query("/wgdp_test/dict").unwrap(),
        r#"{"/wgdp_test/dict":{"rx_packets":5,"#.to_owned()
            + r#""public_key":"xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=","#
            + r#""decrypt":{"bad_tag":2,"replay":0}}}"#
    );
    packets.store(6, Ordering::Relaxed);
    let again = client.query("/wgdp_test/dict").unwrap();
    assert!(again.contains(r#""rx_packets":6"#), "{again}");
}

fn params_and_lists(client: &mut Client) {
    let _cmd = telemetry::register("/wgdp_test/echo", "echoes its parameter", |params| {
        Some(Reply::Strings(vec![params.unwrap_or("none").to_owned()]))
    })
    .unwrap();
    assert_eq!(
        client.query("/wgdp_test/echo").unwrap(),
        r#"{"/wgdp_test/echo":["none"]}"#
    );
    // Everything after the first comma is the parameter, later commas included.
    assert_eq!(
        client.query("/wgdp_test/echo,a+b/c=,d").unwrap(),
        r#"{"/wgdp_test/echo":["a+b/c=,d"]}"#
    );
}

fn failures_answer_null(client: &mut Client) {
    let _none = telemetry::register("/wgdp_test/none", "finds nothing", |_| None).unwrap();
    let _bad = telemetry::register("/wgdp_test/bad_key", "a key DPDK refuses", |_| {
        let mut d = Dict::new();
        d.add_u64("fine", 1).add_u64("not-fine", 2);
        Some(Reply::Dict(d))
    })
    .unwrap();
    let _panics = telemetry::register("/wgdp_test/panics", "panics", |_| {
        panic!("deliberate panic in a telemetry handler")
    })
    .unwrap();
    for cmd in ["/wgdp_test/none", "/wgdp_test/bad_key", "/wgdp_test/panics"] {
        assert_eq!(client.query(cmd).unwrap(), format!(r#"{{"{cmd}":null}}"#));
    }
    // The telemetry thread survived the panic.
    assert!(client.query("/info").unwrap().contains("DPDK 22.11"));
}

fn listing_and_help(client: &mut Client) {
    let _cmd = telemetry::register("/wgdp_test/listed", "shows up in the list", |_| {
        Some(Reply::U64s(Vec::new()))
    })
    .unwrap();
    let list = client.query("/").unwrap();
    assert!(list.contains(r#""/wgdp_test/listed""#), "{list}");
    assert!(list.contains(r#""/ethdev/list""#), "{list}");
    assert_eq!(
        client.query("/help,/wgdp_test/listed").unwrap(),
        r#"{"/help":{"/wgdp_test/listed":"shows up in the list"}}"#
    );
    assert_eq!(
        client.query("/wgdp_test/listed").unwrap(),
        r#"{"/wgdp_test/listed":[]}"#
    );
}

/// A telemetry client on the v2 socket of this process.
struct Client {
    fd: OwnedFd,
}

/// What DPDK 22.11 writes at most per answer (`MAX_OUTPUT_LEN`).
const MAX_ANSWER: usize = 16 * 1024;

impl Client {
    /// Connects to this process's socket: another test process with the same file prefix
    /// may hold `dpdk_telemetry.v2`, leaving this one a `:N` suffix, so each candidate's
    /// greeting is checked for our pid.
    fn connect_own() -> io::Result<Client> {
        let dir = telemetry::socket_dir().map_err(io::Error::other)?;
        let pid = format!(r#""pid":{}"#, std::process::id());
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let is_socket = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dpdk_telemetry.v2"));
            if !is_socket {
                continue;
            }
            let Ok(mut client) = Client::connect(&path) else {
                continue;
            };
            if client.read()?.contains(&pid) {
                return Ok(client);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no telemetry socket of pid {} in {}",
                std::process::id(),
                dir.display()
            ),
        ))
    }

    fn connect(path: &Path) -> io::Result<Client> {
        use std::os::unix::ffi::OsStrExt;

        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= addr.sun_path.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "path too long"));
        }
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        // SAFETY: `addr` is a valid sockaddr_un of the size given.
        let ret = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Client { fd })
    }

    /// One message: the greeting, or one answer.
    fn read(&mut self) -> io::Result<String> {
        let mut buf = vec![0u8; MAX_ANSWER];
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn query(&mut self, request: &str) -> io::Result<String> {
        // SAFETY: `request` is readable for its length.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), request.as_ptr().cast(), request.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.read()
    }
}
