//! Hostile traffic for wgdp's end-to-end tests. Not part of the product.
//!
//! `probe flood GATEWAY_PUBLIC_KEY DST_IP:PORT SRC_NET_PREFIX SECONDS`
//!   sends handshake initiations with a valid mac1 (made by a stranger's key, so they
//!   cost wgdp real work unless it is under load) as fast as it can for SECONDS, each
//!   from a spoofed source `SRC_NET_PREFIX.N` (N from 100 to 249) and port, through a
//!   raw IPv4 socket. Prints the packets sent and the rate.
//!
//! `probe replay IFACE DST_PORT COUNT SECONDS`
//!   captures the first COUNT WireGuard transport messages (type 4) to UDP port
//!   DST_PORT that leave through IFACE, within SECONDS, then sends each of those frames
//!   again, unchanged. Prints how many were captured and replayed.

use control::noise::{Identity, PeerHandshake, Tai64N};
use control::plane::frames;
use dataplane::wire::wireguard::{self, MessageKind};
use dataplane::wire::{ipv4, udp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};
use rand_core::OsRng;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime};
use x25519_dalek::{PublicKey, StaticSecret};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("flood") if args.len() == 5 => flood(&args[1], &args[2], &args[3], &args[4]),
        Some("replay") if args.len() == 5 => replay(&args[1], &args[2], &args[3], &args[4]),
        _ => Err("usage: probe flood KEY DST:PORT SRC_PREFIX SECONDS | probe replay IFACE DST_PORT COUNT SECONDS".into()),
    };
    if let Err(e) = result {
        eprintln!("probe: {e}");
        std::process::exit(1);
    }
}

fn flood(key: &str, dst: &str, prefix: &str, secs: &str) -> Result<(), String> {
    let key = control::config::decode_key(key).map_err(|e| format!("key: {e}"))?;
    let dst: SocketAddrV4 = dst.parse().map_err(|e| format!("{dst}: {e}"))?;
    let secs: u64 = secs.parse().map_err(|e| format!("{secs}: {e}"))?;
    let net: Vec<u8> = prefix
        .split('.')
        .map(|o| o.parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{prefix}: {e}"))?;
    if net.len() != 3 {
        return Err(format!("{prefix}: three octets, as 198.19.0"));
    }
    // A few hundred distinct initiations, reused round robin.
    let stranger = Identity::new(StaticSecret::random_from_rng(OsRng));
    let mut hs =
        PeerHandshake::new(&stranger, PublicKey::from(key), None).map_err(|e| format!("{e:?}"))?;
    let msgs: Vec<Vec<u8>> = (0..256u32)
        .map(|i| {
            hs.create_initiation(
                &stranger,
                i,
                Tai64N::from_system_time(SystemTime::now()),
                Duration::from_secs(u64::from(i) + 1),
                &mut OsRng,
            )
            .map(|m| m.to_vec())
            .map_err(|e| format!("{e:?}"))
        })
        .collect::<Result<_, _>>()?;

    // SAFETY: plain socket creation; IPPROTO_RAW implies IP_HDRINCL.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
    }
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(*dst.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut frame = Vec::with_capacity(28 + 148);
    while start.elapsed() < Duration::from_secs(secs) {
        for _ in 0..256 {
            let n = sent as usize;
            let src = Ipv4Addr::new(net[0], net[1], net[2], 100 + (n % 150) as u8);
            let sport = 1024 + (n % 60_000) as u16;
            frame.clear();
            push_ipv4_udp(&mut frame, src, sport, dst, &msgs[n % msgs.len()]);
            // SAFETY: frame and address are valid for the call.
            let r = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if r > 0 {
                sent += 1;
            }
        }
    }
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    let el = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} initiations in {el:.1} s: {:.0} per second",
        sent as f64 / el
    );
    Ok(())
}

/// `payload` in a UDP datagram (checksum 0: none, as IPv4 allows) in an IPv4 packet.
fn push_ipv4_udp(b: &mut Vec<u8>, src: Ipv4Addr, sport: u16, dst: SocketAddrV4, payload: &[u8]) {
    let udp_len = udp::HEADER_LEN + payload.len();
    b.resize(ipv4::HEADER_LEN + udp_len, 0);
    frames::write_ipv4(b, src, *dst.ip(), IpProtocol::Udp, udp_len);
    let mut u = UdpPacket::new_unchecked(&mut b[ipv4::HEADER_LEN..]);
    u.set_src_port(sport);
    u.set_dst_port(dst.port());
    u.set_len(udp_len as u16);
    u.set_checksum(0);
    u.payload_mut().copy_from_slice(payload);
}

fn replay(iface: &str, port: &str, count: &str, secs: &str) -> Result<(), String> {
    let port: u16 = port.parse().map_err(|e| format!("{port}: {e}"))?;
    let count: usize = count.parse().map_err(|e| format!("{count}: {e}"))?;
    let secs: u64 = secs.parse().map_err(|e| format!("{secs}: {e}"))?;
    let name = std::ffi::CString::new(iface).map_err(|_| "bad interface name")?;
    // SAFETY: a plain C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(format!("{iface}: {}", std::io::Error::last_os_error()));
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if fd < 0 {
        return Err(format!(
            "packet socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: binding our socket to a valid sockaddr_ll.
    if unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    } != 0
    {
        return Err(format!("bind: {}", std::io::Error::last_os_error()));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: a valid timeval for SO_RCVTIMEO.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let start = Instant::now();
    let mut captured: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while captured.len() < count && start.elapsed() < Duration::from_secs(secs) {
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buffers valid for the call.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n <= 0 || from.sll_pkttype != libc::PACKET_OUTGOING {
            continue;
        }
        let f = &buf[..n as usize];
        if is_transport_to(f, port) {
            captured.push(f.to_vec());
        }
    }
    let mut replayed = 0;
    for f in &captured {
        // SAFETY: sending a frame through our bound socket.
        let r = unsafe {
            libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r > 0 {
            replayed += 1;
        }
    }
    // SAFETY: closing our socket.
    unsafe { libc::close(fd) };
    println!(
        "captured {} transport messages, replayed {replayed}",
        captured.len()
    );
    if captured.is_empty() {
        return Err("nothing captured".into());
    }
    Ok(())
}

/// An Ethernet/IPv4/UDP frame to `port` carrying a WireGuard transport message.
fn is_transport_to(f: &[u8], port: u16) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(f) else {
        return false;
    };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    let Ok(u) = UdpPacket::new_checked(ip.payload()) else {
        return false;
    };
    eth.ethertype() == EtherType::Ipv4
        && ip.protocol() == IpProtocol::Udp
        && u.dst_port() == port
        && matches!(wireguard::classify(u.payload()), Ok(MessageKind::Transport))
}
