//! The kernel TAP interface of the control port (`control_port.tap`), and its set-up in
//! the kernel: the gateway's addresses on it, and policy routing so that what the
//! kernel sends from those addresses goes back through wgdp and nothing else of the
//! host's routing changes.
//!
//! Contract: [`Tap::open`] creates the interface (non-persistent: it disappears with
//! the process), brings it up with the tunnel MTU, adds each address as a host address
//! (/32, /128: no connected route), and adds, per family, a rule `from ADDRESS lookup
//! TABLE` for each address and a default route through the TAP in TABLE. Dropping the
//! `Tap` removes the rules; the routes and addresses go with the interface. Reads and
//! writes never block.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

/// The routing table that holds the control port's default routes.
pub const TABLE: u32 = 51820;
/// The priority of the rules that send the gateway's own traffic to [`TABLE`]: before
/// the main table (32766), after the local table (0).
pub const RULE_PRIORITY: u32 = 5182;

// linux/if_tun.h
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    /// `ifr_flags`, or the start of `ifr_hwaddr` (a sockaddr) for SIOCGIFHWADDR.
    data: [u8; 24],
}

pub struct Tap {
    file: File,
    name: String,
    rules: Vec<IpAddr>,
    mac: [u8; 6],
}

impl Tap {
    /// Creates and configures the TAP `name` for the gateway's `addresses`.
    pub fn open(name: &str, addresses: &[IpAddr], mtu: u16) -> Result<Tap, String> {
        let err = |what: &str, e: std::io::Error| format!("control_port.tap: {name}: {what}: {e}");
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(format!(
                "control_port.tap: {name:?}: a name of 1 to {} bytes is needed",
                libc::IFNAMSIZ - 1
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| err("/dev/net/tun", e))?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            data: [0; 24],
        };
        for (d, s) in req.name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        req.data[..2].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which IfReq lays out (name
        // then a 24-byte union); the fd is open.
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
            return Err(err("TUNSETIFF", std::io::Error::last_os_error()));
        }
        let mut tap = Tap {
            file,
            name: name.to_owned(),
            rules: Vec::new(),
            mac: [0; 6],
        };
        tap.mac = hw_addr(name).map_err(|e| err("reading its MAC address", e))?;
        // Stale rules of an earlier run that did not stop cleanly.
        tap.flush_rules();
        ip(&["link", "set", "dev", name, "mtu", &mtu.to_string(), "up"])?;
        for fam in ["-4", "-6"] {
            let v6 = fam == "-6";
            let addrs: Vec<&IpAddr> = addresses.iter().filter(|a| a.is_ipv6() == v6).collect();
            if addrs.is_empty() {
                continue;
            }
            if v6 {
                // No router solicitations, no autoconfigured addresses: the link is ours.
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/accept_ra"), "0");
            } else {
                // Replies come from addresses the kernel reaches through other
                // interfaces; strict reverse-path filtering would drop them.
                let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"), "0");
            }
            for a in addrs {
                let (host, extra): (String, &[&str]) = if v6 {
                    (format!("{a}/128"), &["nodad"])
                } else {
                    (format!("{a}/32"), &[])
                };
                let mut args = vec![fam, "addr", "add", &host, "dev", name];
                args.extend_from_slice(extra);
                ip(&args)?;
                let a_str = a.to_string();
                let table = TABLE.to_string();
                let pref = RULE_PRIORITY.to_string();
                ip(&[
                    fam, "rule", "add", "from", &a_str, "lookup", &table, "pref", &pref,
                ])?;
                tap.rules.push(*a);
            }
            ip(&[
                fam,
                "route",
                "replace",
                "default",
                "dev",
                name,
                "table",
                &TABLE.to_string(),
            ])?;
        }
        Ok(tap)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel's MAC address on the TAP.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The descriptor that becomes readable when the kernel sends a frame.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }

    /// One frame from the kernel, if there is one.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self.file.read(buf) {
            Ok(n) if n > 0 => Some(n),
            _ => None,
        }
    }

    /// Hands a frame to the kernel; false if the kernel's queue is full.
    pub fn write(&mut self, frame: &[u8]) -> bool {
        match self.file.write(frame) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(_) => false,
        }
    }

    fn flush_rules(&self) {
        let pref = RULE_PRIORITY.to_string();
        for fam in ["-4", "-6"] {
            // Each call removes one rule of that priority; stop when none is left.
            for _ in 0..64 {
                let ok = Command::new("ip")
                    .args([fam, "rule", "del", "pref", &pref])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    break;
                }
            }
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // The interface, its addresses and the routes through it go when the file is
        // closed; the rules are not attached to it.
        self.flush_rules();
    }
}

/// Runs `ip ARGS`; an error carries its message.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("control_port: running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "control_port: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn hw_addr(name: &str) -> Result<[u8; 6], std::io::Error> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let cname = CString::new(name).map_err(|_| ErrorKind::InvalidInput)?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: [0; 24],
    };
    for (d, s) in req.name.iter_mut().zip(cname.as_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills the sockaddr in the ifreq union; fd is a socket.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let e = std::io::Error::last_os_error();
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(e);
    }
    // struct sockaddr: sa_family (2 bytes), then the address.
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.data[2..8]);
    Ok(mac)
}
