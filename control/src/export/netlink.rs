//! Routes of one kernel routing table and addresses of one interface, written over
//! rtnetlink (`NETLINK_ROUTE`) by the export thread. Only what the export needs: a
//! route to a prefix through the interface (`PREFIX dev IFACE table N proto static
//! scope link`) and a host address on it (`ADDR/32` or `ADDR/128 nodad`), each added
//! (create or replace) or deleted, many per `send`.
//!
//! Messages follow `linux/netlink.h`, `linux/rtnetlink.h` and `linux/if_addr.h`: an
//! `nlmsghdr` (16 bytes), an `rtmsg` (12 bytes) or an `ifaddrmsg` (8 bytes), then the
//! attributes (`RTA_TABLE`, `RTA_DST`, `RTA_OIF`; `IFA_LOCAL`, `IFA_ADDRESS`), each a
//! 4-byte header and its value padded to 4 bytes. Every message asks for an
//! acknowledgement, so each error comes back with the sequence number of the change it
//! concerns.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// linux/netlink.h
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
// linux/rtnetlink.h
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_F_NODAD: u8 = 0x02;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const RTN_UNICAST: u8 = 1;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_LINK: u8 = 253;

/// Messages per `send`: well within the socket's default buffer.
const PER_SEND: usize = 256;

/// One route of the table: to `prefix`, through the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub addr: IpAddr,
    pub len: u8,
}

/// One change: a route of the table or an address of the interface, added (`true`)
/// or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Route(bool, Route),
    /// `Route::len` is 32 or 128.
    Addr(bool, Route),
}

impl Op {
    fn adds(&self) -> bool {
        match *self {
            Op::Route(add, _) | Op::Addr(add, _) => add,
        }
    }
}

/// What happened to a batch of changes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub ok: u64,
    /// Refused by the kernel (an add that failed; a delete of a route that is not
    /// there counts as done).
    pub failed: u64,
}

/// A netlink socket that writes the routes of `table` through interface `oif`.
pub struct Writer {
    fd: OwnedFd,
    table: u32,
    oif: u32,
    seq: u32,
    buf: Vec<u8>,
}

impl Writer {
    pub fn open(table: u32, oif: u32) -> io::Result<Writer> {
        // SAFETY: plain socket creation; the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Writer {
            fd,
            table,
            oif,
            seq: 0,
            buf: Vec::new(),
        })
    }

    /// Makes the changes in order; blocks until the kernel answered each.
    pub fn apply(&mut self, ops: &[Op]) -> io::Result<Applied> {
        let mut done = Applied::default();
        for chunk in ops.chunks(PER_SEND) {
            self.send_chunk(chunk, &mut done)?;
        }
        Ok(done)
    }

    fn send_chunk(&mut self, chunk: &[Op], done: &mut Applied) -> io::Result<()> {
        self.buf.clear();
        let first = self.seq.wrapping_add(1);
        for op in chunk {
            self.seq = self.seq.wrapping_add(1);
            match *op {
                Op::Route(add, r) => encode(&mut self.buf, add, &r, self.table, self.oif, self.seq),
                Op::Addr(add, a) => encode_addr(&mut self.buf, add, &a, self.oif, self.seq),
            }
        }
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf is valid for its length; kernel is a sockaddr_nl of that size.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                self.buf.as_ptr().cast(),
                self.buf.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // One acknowledgement (an NLMSG_ERROR, 0 for success) per message.
        let mut left = chunk.len();
        let mut rbuf = vec![0u8; 64 * 1024];
        while left > 0 {
            // SAFETY: rbuf is valid for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut msgs = &rbuf[..n as usize];
            while msgs.len() >= 16 {
                let len = u32::from_ne_bytes(msgs[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(msgs[4..6].try_into().unwrap());
                let seq = u32::from_ne_bytes(msgs[8..12].try_into().unwrap());
                if len < 16 || len > msgs.len() {
                    break;
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    let errno = -i32::from_ne_bytes(msgs[16..20].try_into().unwrap());
                    let idx = seq.wrapping_sub(first) as usize;
                    if idx < chunk.len() {
                        left -= 1;
                        // Deleting what is not there counts as done.
                        let absent = errno == libc::ESRCH || errno == libc::EADDRNOTAVAIL;
                        if errno == 0 || (!chunk[idx].adds() && absent) {
                            done.ok += 1;
                        } else {
                            done.failed += 1;
                        }
                    }
                }
                msgs = &msgs[align(len).min(msgs.len())..];
            }
        }
        Ok(())
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + align(len) - len, 0);
}

/// Appends one RTM_NEWROUTE or RTM_DELROUTE message to `buf`.
fn encode(buf: &mut Vec<u8>, add: bool, r: &Route, table: u32, oif: u32, seq: u32) {
    let start = buf.len();
    let (kind, flags) = if add {
        (
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK)
    };
    // nlmsghdr: length (filled below), type, flags, sequence, port id (0: the kernel
    // fills it in).
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // rtmsg: family, dst_len, src_len, tos, table (RT_TABLE_UNSPEC: RTA_TABLE says),
    // protocol, scope, type, flags (u32).
    let family = if r.addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    buf.extend_from_slice(&[
        family,
        r.len,
        0,
        0,
        0,
        RTPROT_STATIC,
        RT_SCOPE_LINK,
        RTN_UNICAST,
    ]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    attr(buf, RTA_TABLE, &table.to_ne_bytes());
    match r.addr {
        IpAddr::V4(a) => attr(buf, RTA_DST, &a.octets()),
        IpAddr::V6(a) => attr(buf, RTA_DST, &a.octets()),
    }
    attr(buf, RTA_OIF, &oif.to_ne_bytes());
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends one RTM_NEWADDR or RTM_DELADDR message (a host address) to `buf`.
fn encode_addr(buf: &mut Vec<u8>, add: bool, a: &Route, oif: u32, seq: u32) {
    let start = buf.len();
    let (kind, flags) = if add {
        (
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    } else {
        (RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK)
    };
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // ifaddrmsg: family, prefix length, flags (no duplicate address detection for
    // IPv6: the link is ours), scope, interface index (u32).
    let (family, ifa_flags) = if a.addr.is_ipv4() {
        (libc::AF_INET as u8, 0)
    } else {
        (libc::AF_INET6 as u8, IFA_F_NODAD)
    };
    buf.extend_from_slice(&[family, a.len, ifa_flags, RT_SCOPE_UNIVERSE]);
    buf.extend_from_slice(&oif.to_ne_bytes());
    let octets: Vec<u8> = match a.addr {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    attr(buf, IFA_LOCAL, &octets);
    attr(buf, IFA_ADDRESS, &octets);
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// The index of interface `name`.
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_message_is_laid_out_as_rtnetlink_reads_it() {
        let mut buf = Vec::new();
        let r = Route {
            addr: "198.18.100.1".parse().unwrap(),
            len: 32,
        };
        encode(&mut buf, true, &r, 200, 7, 42);
        // 16 header + 12 rtmsg + 8 table + 8 dst + 8 oif
        assert_eq!(buf.len(), 52);
        assert_eq!(u32::from_ne_bytes(buf[0..4].try_into().unwrap()), 52);
        assert_eq!(
            u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            RTM_NEWROUTE
        );
        assert_eq!(
            u16::from_ne_bytes(buf[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        );
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 42);
        assert_eq!(&buf[16..24], &[libc::AF_INET as u8, 32, 0, 0, 0, 4, 253, 1]);
        assert_eq!(&buf[28..32], &[8, 0, RTA_TABLE as u8, 0]);
        assert_eq!(u32::from_ne_bytes(buf[32..36].try_into().unwrap()), 200);
        assert_eq!(&buf[36..44], &[8, 0, RTA_DST as u8, 0, 198, 18, 100, 1]);
        assert_eq!(&buf[44..48], &[8, 0, RTA_OIF as u8, 0]);
        assert_eq!(u32::from_ne_bytes(buf[48..52].try_into().unwrap()), 7);

        let mut buf = Vec::new();
        let r6 = Route {
            addr: "2001:2:0:100::1".parse().unwrap(),
            len: 128,
        };
        encode(&mut buf, false, &r6, 200, 7, 43);
        assert_eq!(buf.len(), 16 + 12 + 8 + 20 + 8);
        assert_eq!(
            u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            RTM_DELROUTE
        );
        assert_eq!(buf[16], libc::AF_INET6 as u8);
        assert_eq!(buf[17], 128);
    }

    #[test]
    fn an_address_message_is_laid_out_as_rtnetlink_reads_it() {
        let mut buf = Vec::new();
        let a = Route {
            addr: "198.19.0.1".parse().unwrap(),
            len: 32,
        };
        encode_addr(&mut buf, true, &a, 9, 1);
        assert_eq!(buf.len(), 16 + 8 + 8 + 8);
        assert_eq!(
            u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            RTM_NEWADDR
        );
        assert_eq!(&buf[16..20], &[libc::AF_INET as u8, 32, 0, 0]);
        assert_eq!(u32::from_ne_bytes(buf[20..24].try_into().unwrap()), 9);
        assert_eq!(&buf[24..32], &[8, 0, IFA_LOCAL as u8, 0, 198, 19, 0, 1]);
        assert_eq!(&buf[32..40], &[8, 0, IFA_ADDRESS as u8, 0, 198, 19, 0, 1]);
        let mut buf = Vec::new();
        let a6 = Route {
            addr: "2001:2::1".parse().unwrap(),
            len: 128,
        };
        encode_addr(&mut buf, false, &a6, 9, 2);
        assert_eq!(
            u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            RTM_DELADDR
        );
        assert_eq!(&buf[16..20], &[libc::AF_INET6 as u8, 128, IFA_F_NODAD, 0]);
    }
}
