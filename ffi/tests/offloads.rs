//! Checksum offloads on a device that has them: the TAP PMD (`net_tap0`), whose kernel
//! side the test reads and writes with a packet socket.
//!
//! The test thread moves into a network namespace of its own before the EAL starts, so
//! the tap interface exists only there and goes away with the process. Needs root.
//!
//! - The port reports the offloads it was started with.
//! - TX: an IPv4 frame sent with its header checksum 0 and the request reaches the kernel
//!   with the right checksum; an IPv6/UDP frame sent with the pseudo-header's sum reaches
//!   it with the right UDP checksum.
//! - RX: frames the kernel side writes arrive with the device's verdict on their IPv4
//!   header checksum, bad and good.

mod common;

use std::time::{Duration, Instant};

use dpdk_sys::{Mbuf, Mempool, Port, PortConfig, RxChecksum, TxChecksum, SOCKET_ID_ANY};

const IFACE: &str = "wgdpck0";
const MARK: &[u8; 8] = b"wgdp-ofl";

#[test]
fn tap_checksum_offloads() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tap_checksum_offloads: skipped: needs root (DPDK EAL, a network namespace)");
        return;
    }
    // SAFETY: affects this thread only, which then creates everything the test uses.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        ret,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    let vdev = format!("net_tap0,iface={IFACE}");
    let _eal = common::eal_or_skip("tap_checksum_offloads", &["--vdev", &vdev]).unwrap();
    let pool = Mempool::pktmbuf("t_ofl", 4095, 32, 2048 + 128, SOCKET_ID_ANY).unwrap();
    let port = Port::start(
        Port::by_name("net_tap0").unwrap(),
        &PortConfig::default(),
        &pool,
    )
    .unwrap();
    let o = port.offloads();
    assert!(
        o.rx_ipv4_checksum && o.tx_ipv4_checksum && o.tx_udp_checksum,
        "the TAP PMD offers these: {o:?}"
    );
    let kernel = PacketSocket::open(IFACE);

    // TX, IPv4: the header checksum is left 0 for the device.
    let mut m = pool.alloc().unwrap();
    let frame = ipv4_frame(port.mac_addr(), false);
    m.append(frame.len() as u16)
        .unwrap()
        .copy_from_slice(&frame);
    m.data_mut()[24..26].copy_from_slice(&[0, 0]);
    m.offload_tx_checksum(14, 20, TxChecksum::Ipv4Header);
    send(&port, m);
    let got = kernel.recv_marked();
    assert_ne!(&got[24..26], &[0, 0], "the device filled the checksum");
    assert_eq!(
        sum(&got[14..34]),
        0xffff,
        "and it is right: {:02x?}",
        &got[14..34]
    );

    // TX, IPv6: the UDP checksum field holds the pseudo-header's sum.
    let mut m = pool.alloc().unwrap();
    let frame = ipv6_frame(port.mac_addr());
    m.append(frame.len() as u16)
        .unwrap()
        .copy_from_slice(&frame);
    let udp_len = (frame.len() - 54) as u16;
    let pseudo = fold(u64::from(sum(&frame[22..54])) + u64::from(udp_len) + 17);
    m.data_mut()[60..62].copy_from_slice(&pseudo.to_be_bytes());
    m.offload_tx_checksum(14, 40, TxChecksum::Ipv6Udp);
    send(&port, m);
    let got = kernel.recv_marked();
    let whole =
        fold(u64::from(sum(&got[22..54])) + u64::from(udp_len) + 17 + u64::from(sum(&got[54..])));
    assert_eq!(
        whole,
        0xffff,
        "the UDP checksum is right: {:02x?}",
        &got[54..62]
    );

    // RX: the kernel side writes one frame with a broken IPv4 header checksum and one
    // with a right one.
    kernel.send(&ipv4_frame(port.mac_addr(), true));
    kernel.send(&ipv4_frame(port.mac_addr(), false));
    let mut verdicts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut burst = Vec::new();
    while verdicts.len() < 2 {
        assert!(Instant::now() < deadline, "frames missing: {verdicts:?}");
        port.rx_burst(0, &mut burst, 32);
        for m in burst.drain(..) {
            // The kernel also sends its own frames (IPv6 neighbour discovery).
            if marked(m.data()) {
                verdicts.push(m.rx_ipv4_checksum());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(verdicts, [RxChecksum::Bad, RxChecksum::Good]);

    drop(port);
    assert_eq!(pool.in_use_count(), 0);
}

fn send(port: &Port, m: Mbuf) {
    let mut v = vec![m];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !v.is_empty() {
        assert!(Instant::now() < deadline, "TX stalled");
        port.tx_burst(0, &mut v);
    }
}

/// A UDP datagram from 198.18.0.1 to 198.18.0.2 carrying `MARK`; with a right header
/// checksum, or one off by one.
fn ipv4_frame(dst_mac: [u8; 6], broken: bool) -> Vec<u8> {
    let mut f = ethernet(dst_mac, 0x0800);
    let payload_len = 8 + MARK.len();
    let total = (20 + payload_len) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
    let mut c = !sum(&f[14..34]);
    if broken {
        c = c.wrapping_add(1);
    }
    f[24..26].copy_from_slice(&c.to_be_bytes());
    udp(&mut f, payload_len as u16);
    f
}

/// A UDP datagram from 2001:2::1 to 2001:2::2 carrying `MARK`, UDP checksum 0.
fn ipv6_frame(dst_mac: [u8; 6]) -> Vec<u8> {
    let mut f = ethernet(dst_mac, 0x86dd);
    let payload_len = (8 + MARK.len()) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    for last in [1u8, 2] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
        a[15] = last;
        f.extend_from_slice(&a);
    }
    udp(&mut f, payload_len);
    f
}

fn ethernet(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn udp(f: &mut Vec<u8>, len: u16) {
    f.extend_from_slice(&[0x30, 0x39, 0xca, 0x6c]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MARK);
}

fn marked(frame: &[u8]) -> bool {
    frame.len() >= MARK.len() && frame.ends_with(MARK)
}

/// The one's-complement sum of `bytes` (0xffff for an intact header with its checksum).
fn sum(bytes: &[u8]) -> u16 {
    fold(
        bytes
            .chunks(2)
            .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum(),
    )
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// A raw packet socket on the kernel side of the tap.
struct PacketSocket {
    fd: libc::c_int,
    ifindex: libc::c_int,
}

impl PacketSocket {
    fn open(iface: &str) -> PacketSocket {
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as libc::c_int;
        assert!(ifindex > 0, "{iface} exists");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto.into()) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let s = PacketSocket { fd, ifindex };
        // SAFETY: an all-zero sockaddr_ll is valid; its size is passed.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: valid fd and address of the given size.
        let ret = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(ret, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: valid fd and option of the given size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        s
    }

    /// The next frame carrying `MARK` (the kernel's own frames are skipped).
    fn recv_marked(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        loop {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(
                n >= 0,
                "nothing from the tap: {}",
                std::io::Error::last_os_error()
            );
            if marked(&buf[..n as usize]) {
                return buf[..n as usize].to_vec();
            }
        }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: an all-zero sockaddr_ll is valid; its size is passed.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: valid fd, buffer and address.
        let n = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: our fd.
        unsafe { libc::close(self.fd) };
    }
}
