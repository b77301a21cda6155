#!/usr/bin/env python3
"""Writes the checked-in seed inputs under fuzz/seeds/<target>/.

The seeds are small and hand-made: real frames for the wire and classify targets,
operation programs that reach completed handshakes for the control-plane target, and
configuration and UAPI texts. Each target's input layout is described at the top of
its file in fuzz_targets/. Run from anywhere; it rewrites the seed directories.
"""

import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

OUTSIDE_MAC = bytes([2, 0, 0, 0, 0, 1])
INSIDE_MAC = bytes([2, 0, 0, 0, 0, 2])
REMOTE_MAC = bytes([2, 0, 0, 0, 0, 0x99])
OUTSIDE_V4 = bytes([198, 19, 0, 1])
REMOTE_V4 = bytes([198, 19, 0, 2])
INSIDE_V4 = bytes([198, 18, 1, 1])
LAN_V4 = bytes([198, 18, 1, 2])
PEER_V4 = bytes([198, 18, 2, 2])
OUTSIDE_V6 = bytes.fromhex("20010db8001900000000000000000001")
REMOTE_V6 = bytes.fromhex("20010db8001900000000000000000002")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4(src, dst, proto, payload, ttl=64, df=True):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0,
                      0x4000 if df else 0, ttl, proto, 0, src, dst)
    c = ~csum(hdr) & 0xFFFF
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def udp4(src, dst, sport, dport, payload):
    u = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 17, len(u))
    c = ~csum(pseudo + u) & 0xFFFF or 0xFFFF
    return ipv4(src, dst, 17, u[:6] + struct.pack("!H", c) + u[8:])


def ipv6(src, dst, nh, payload, hop=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), nh, hop) + src + dst + payload


def icmp6(src, dst, msg):
    pseudo = src + dst + struct.pack("!I3xB", len(msg), 58)
    c = ~csum(pseudo + msg) & 0xFFFF
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa


def wg_initiation():
    return b"\x01\0\0\0" + struct.pack("<I", 0x11223344) + bytes(range(140))


def wg_response():
    return b"\x02\0\0\0" + struct.pack("<II", 7, 0x11223344) + bytes(range(84))


def wg_cookie():
    return b"\x03\0\0\0" + struct.pack("<I", 7) + bytes(range(56))


def wg_transport(n=0):
    return b"\x04\0\0\0" + struct.pack("<IQ", 7, 1) + bytes(16 + n)


def frame_to_us(wg):
    return eth(OUTSIDE_MAC, REMOTE_MAC, 0x0800,
               udp4(REMOTE_V4, OUTSIDE_V4, 51820, 51820, wg))


def ns_for(target_v6, src_v6, src_mac):
    group = bytes.fromhex("ff0200000000000000000001ff") + target_v6[13:]
    msg = icmp6(src_v6, group,
                struct.pack("!BBHI", 135, 0, 0, 0) + target_v6 + bytes([1, 1]) + src_mac)
    return eth(bytes([0x33, 0x33, 0xFF]) + target_v6[13:], src_mac, 0x86DD,
               ipv6(src_v6, group, 58, msg, hop=255))


def blob(b):
    return struct.pack("<H", len(b)) + b


def seeds():
    s = {}
    ping = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"wgdp" * 8
    icmp = ping[:2] + struct.pack("!H", ~csum(ping) & 0xFFFF) + ping[4:]
    arp_req = eth(b"\xff" * 6, REMOTE_MAC, 0x0806,
                  arp(1, REMOTE_MAC, REMOTE_V4, bytes(6), OUTSIDE_V4))
    ns = ns_for(OUTSIDE_V6, REMOTE_V6, REMOTE_MAC)
    udp_frame = frame_to_us(wg_transport(32))
    s["wire_ethernet_ip_udp"] = {
        "udp4": udp_frame,
        "icmp4": eth(OUTSIDE_MAC, REMOTE_MAC, 0x0800, ipv4(REMOTE_V4, OUTSIDE_V4, 1, icmp)),
        "ns6": ns,
        "udp6": eth(OUTSIDE_MAC, REMOTE_MAC, 0x86DD,
                    ipv6(REMOTE_V6, OUTSIDE_V6, 17,
                         struct.pack("!HHHH", 51820, 51820, 40, 0) + wg_transport())),
    }
    s["wire_arp_nd"] = {"arp": arp_req, "ns": ns, "mac": b"02:00:5e:10:00:01"}
    s["wire_wireguard"] = {
        "initiation": wg_initiation(),
        "response": wg_response(),
        "cookie": wg_cookie(),
        "transport": wg_transport(16),
    }
    # classify: flags, then length-prefixed frames.
    lan = eth(INSIDE_MAC, bytes([2, 0, 0, 0, 0, 0x42]), 0x0800,
              udp4(LAN_V4, PEER_V4, 1000, 2000, b"x" * 32))
    s["classify"] = {
        "outside": b"\x00" + blob(udp_frame) + blob(frame_to_us(wg_initiation()))
        + blob(arp_req) + blob(ns) + blob(frame_to_us(wg_cookie())),
        "inside": b"\x01" + blob(lan) + blob(eth(INSIDE_MAC, REMOTE_MAC, 0x0800,
                                                  ipv4(LAN_V4, INSIDE_V4, 1, icmp))),
        "fixups": b"\x0e" + blob(frame_to_us(wg_response())),
    }
    # Handshake targets: settings, then per message mode and arguments (see each file).
    s["handshake_initiation"] = {
        "genuine_answered": bytes([0, 0x00, 0x01]) + struct.pack("<HIHB", 0, 5, 1, 0)
        + struct.pack("<I", 9),
        "replay": bytes([3, 0x00, 0x01]) + struct.pack("<HIHB", 0, 5, 1, 0)
        + struct.pack("<I", 9) + bytes([0x03, 0x00]) + struct.pack("<H", 500),
        "carol": bytes([0, 0x04, 0x00]) + struct.pack("<HIHB", 0, 6, 1, 0),
        "raw_fixed": bytes([0, 0x8A, 0x00]) + struct.pack("<H", 0) + blob(bytes(148)),
    }
    s["handshake_response"] = {
        "genuine": bytes([0]) + struct.pack("<II", 1, 2) + bytes([0x00]) + struct.pack("<H", 1)
        + bytes([0x00]) + struct.pack("<H", 1),
        "again": bytes([3]) + struct.pack("<II", 1, 2) + bytes([0x03]) + struct.pack("<H", 1)
        + struct.pack("<II", 3, 4),
        "raw_fixed": bytes([0]) + struct.pack("<II", 1, 2) + bytes([0x9A])
        + struct.pack("<H", 1) + blob(bytes(92)),
    }
    s["cookie_reply"] = {
        "genuine_then_mac2": bytes([1]) + struct.pack("<I", 5) + bytes([0x00])
        + struct.pack("<H", 1) + bytes([0x03]) + struct.pack("<H", 1) + struct.pack("<I", 6),
        "unsent": bytes([0, 0x1A]) + struct.pack("<H", 1) + blob(bytes(64)),
        "expired": bytes([1]) + struct.pack("<I", 5) + bytes([0x00]) + struct.pack("<H", 1)
        + bytes([0x03]) + struct.pack("<H", 20000) + struct.pack("<I", 6),
    }

    # control_plane: settings, seed, then (opcode, budget, arguments...).
    def op(code, *args):
        return bytes([code, 0]) + b"".join(args)

    tick_s = lambda n: op(5, bytes([1, n]))
    data_v4 = op(7, bytes([0]), struct.pack("<H", 100), bytes([64, 1, 17]))
    arp_reply = op(8, bytes([0]))
    s["control_plane"] = {
        # The peer initiates; the plane answers; the peer takes the answer; a worker
        # confirms the keypair; data flows; timers run.
        "peer_initiates": bytes([0, 1]) + op(1, bytes([0, 1])) + op(2) + op(6, bytes([0, 0]))
        + data_v4 + tick_s(1) + tick_s(12) + op(6, bytes([0, 2, 1])) + tick_s(12),
        # A packet waits; the plane resolves the peer's MAC, initiates; the peer answers.
        "plane_initiates": bytes([1, 2]) + data_v4 + arp_reply + op(3) + tick_s(1)
        + op(6, bytes([0, 3, 1])) + tick_s(20) + tick_s(200),
        # A cookie reply before the answer, then retries and giving up.
        "cookie_and_retry": bytes([0, 3]) + data_v4 + arp_reply + op(4) + tick_s(6)
        + op(3) + op(5, bytes([2, 10])) + op(5, bytes([2, 60])),
        # Neighbor discovery both ways, on both ports.
        "neighbors": bytes([0, 4]) + op(8, bytes([1])) + op(8, bytes([4])) + op(8, bytes([5]))
        + op(8, bytes([3])) + op(8, bytes([6])) + tick_s(1) + tick_s(1) + tick_s(1),
        # Fragmenting and ICMP errors, both sides, after a handshake.
        "fragment_icmp": bytes([4, 5]) + op(1, bytes([0, 1])) + op(2) + op(6, bytes([0, 0]))
        + op(7, bytes([1]), struct.pack("<H", 1500), bytes([64, 0, 17]))
        + op(7, bytes([2]), struct.pack("<H", 60), bytes([1, 1, 17]))
        + op(7, bytes([3]), struct.pack("<H", 1500), bytes([64, 1, 6]))
        + op(7, bytes([6]), struct.pack("<H", 1500), bytes([64, 1, 17])),
        # The host's TAP, and raw punts of every reason.
        "host_and_raw": bytes([2, 6]) + op(12, bytes([0]), blob(b"hello"))
        + op(12, bytes([1]), blob(arp_req), bytes([0]))
        + b"".join(op(0, bytes([r, 0, 0, 3]), blob(udp_frame)) for r in range(10))
        + op(9, bytes([0])),
        # A flood puts the plane under load: the peer's initiation earns a cookie reply,
        # the peer takes it and comes back with mac2.
        "flood_cookie": bytes([0, 7]) + op(10, bytes([200, 0])) + op(1, bytes([0, 1]))
        + op(11) + op(1, bytes([0, 1])) + op(2) + op(9, bytes([0])) + tick_s(2),
    }
    s["uapi_decoder"] = {
        "get": b"\x01\x80get=1\n\n",
        "set": b"\x05\x80set=1\nprivate_key=" + b"a1" * 32 + b"\nlisten_port=51820\n"
        b"replace_peers=true\npublic_key=" + b"b0" * 32 + b"\npreshared_key=" + b"07" * 32
        + b"\nendpoint=[2001:db8::1%3]:51820\npersistent_keepalive_interval=25\n"
        b"replace_allowed_ips=true\nallowed_ip=10.0.0.1/24\nallowed_ip=-fd00::/64\n"
        b"protocol_version=1\n\nget=1\n\n",
        "bad": b"\x07\x01set=1\nlisten_port=99999\nno_equals\n\nbogus\n",
        "spare": b"\x09\xc0set=1\nfwmark=0\npublic_key=" + b"c0" * 32 + b"\nremove=true\n\n",
    }
    key = b"2AE5ZYOXw7Z59ZuCa8ev2J+DQdmiHiFmsJWNCdebEUo="
    peer = b"y5UiRTv21z13y1slCElewt5wrpmWPIXcYT/8soAPEFk="
    s["config_parse"] = {
        "minimal": b"dpdk:\n  eal_args: [\"--no-pci\"]\n  lcores: { control: 0, workers: [1] }\n"
        b"ports:\n  outside:\n    device: \"net_af_xdp0,iface=eth1\"\n"
        b"    addresses: [\"198.19.0.2/24\"]\n  inside:\n"
        b"    device: \"net_af_xdp1,iface=eth2\"\n    addresses: [\"198.18.2.1/24\"]\n"
        b"wireguard:\n  private_key: \"" + key + b"\"\npeers:\n  - public_key: \"" + peer
        + b"\"\n    allowed_ips: [\"198.18.1.0/24\"]\n",
        "full": b"dpdk:\n  lcores: { control: 0, workers: [1, 2] }\n  burst: 64\n"
        b"  mbufs: 8191\n  idle: poll\nports:\n  outside:\n    device: \"0000:3b:00.0\"\n"
        b"    addresses: [\"198.19.0.2/24\", \"2001:2:0:1::2/64\"]\n"
        b"    gateway: [\"198.19.0.254\"]\n    queues: 2\n  inside:\n"
        b"    device: \"net_ring0\"\n    addresses: [\"198.18.2.1/24\"]\n    routes:\n"
        b"      - { prefix: \"198.18.200.0/24\", via: \"198.18.2.254\" }\n"
        b"wireguard:\n  private_key_file: \"private.key\"\n  listen_port: 51820\n  mtu: 1420\n"
        b"peers:\n  - public_key: \"" + peer + b"\"\n    preshared_key_file: \"psk.key\"\n"
        b"    endpoint: \"198.19.0.1:51820\"\n    allowed_ips: [\"198.18.99.2/32\"]\n"
        b"    persistent_keepalive: 25\ncrypto:\n  backend: cryptodev\n"
        b"  device: \"crypto_aesni_mb\"\ncontrol_port:\n  tap: \"wgdp0\"\nmetrics:\n"
        b"  listen: \"127.0.0.1:9586\"\nuapi:\n  name: \"wgdp0\"\n",
    }
    return s


def main():
    for target, files in seeds().items():
        d = os.path.join(ROOT, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            os.remove(os.path.join(d, old))
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
