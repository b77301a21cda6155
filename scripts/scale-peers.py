#!/usr/bin/env python3
"""Writes the peers section of a wgdp configuration with N peers, for scale tests and
make bench: peer i has a random public key (seeded, so runs repeat), an IPv6 /128 from
2001:2:0:1000::/64 and, for the first 32768, an IPv4 /32 from 198.19.128.0/17.

usage: scale-peers.py N [SEED] [--items] >> config.yaml
(--items: the list's entries only, to follow another list of peers)
"""
import base64
import ipaddress
import random
import sys

args = [a for a in sys.argv[1:] if a != "--items"]
n = int(args[0])
rng = random.Random(int(args[1]) if len(args) > 1 else 1)
v4 = int(ipaddress.IPv4Address("198.19.128.0"))
v6 = int(ipaddress.IPv6Address("2001:2:0:1000::"))
out = sys.stdout
if "--items" not in sys.argv:
    out.write("peers:\n")
for i in range(n):
    key = base64.b64encode(rng.randbytes(32)).decode()
    ips = f'"{ipaddress.IPv6Address(v6 + i)}/128"'
    if i < 32768:
        ips = f'"{ipaddress.IPv4Address(v4 + i)}/32", ' + ips
    out.write(f'  - {{ public_key: "{key}", allowed_ips: [{ips}] }}\n')
