#!/usr/bin/env python3
"""One-way UDP latency between two tasks, the same tool for multicast and unicast.

    udp_latency.py send --dst ADDR [--port P] [--rate PPS] [--time S] [--len N]
    udp_latency.py recv [--group G] [--port P] [--time S]

The sender puts a sequence number and its CLOCK_REALTIME send time (ns) in each datagram.
The receiver takes the kernel's receive timestamp (SO_TIMESTAMPNS: when the datagram
reached the socket, so the receiver's own wake-up is not counted) and prints one JSON
object: count, lost (sequence gaps) and one-way latency percentiles in microseconds.
Both ends run on one machine, so they share one clock. Standard library only.
"""

import argparse
import json
import socket
import struct
import sys
import time

from mcgate_bench.stats import summary

SO_TIMESTAMPNS = 35  # Linux; not exported by the socket module
HEADER = struct.Struct("!QQ")  # sequence, send time in ns


def fine_sleeps():
    """Timer slack of 1 µs, so short sleeps end on time: the sender sleeps between
    datagrams instead of spinning, leaving the CPUs to the path being measured."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK, in ns
    except (OSError, AttributeError):
        pass


def send(a):
    fine_sleeps()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if socket.inet_aton(a.dst)[0] & 0xF0 == 0xE0:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 32)
    pad = b"\0" * max(0, a.len - HEADER.size)
    gap = 1.0 / a.rate
    start = time.monotonic()
    end = start + a.time
    nxt = start
    seq = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < nxt:
            time.sleep(nxt - now)
            continue
        s.sendto(HEADER.pack(seq, time.time_ns()) + pad, (a.dst, a.port))
        seq += 1
        nxt += gap
        if now - nxt > 0.05:  # fell far behind: do not burst to catch up
            nxt = now
    print(json.dumps({"sent": seq, "seconds": a.time}))


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind(("0.0.0.0", a.port))
    if a.group:
        mreq = socket.inet_aton(a.group) + socket.inet_aton("0.0.0.0")
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(0.2)
    lat = []
    seen = 0
    first_seq = None
    max_seq = -1
    deadline = time.monotonic() + a.time
    while time.monotonic() < deadline:
        try:
            data, anc, _flags, _addr = s.recvmsg(2048, 64)
        except socket.timeout:
            continue
        if len(data) < HEADER.size:
            continue
        seq, sent_ns = HEADER.unpack_from(data)
        rx_ns = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= 16:
                sec, nsec = struct.unpack("qq", cdata[:16])
                rx_ns = sec * 1_000_000_000 + nsec
        if rx_ns is None:
            rx_ns = time.time_ns()
        lat.append((rx_ns - sent_ns) / 1000.0)
        seen += 1
        if first_seq is None:
            first_seq = seq
        max_seq = max(max_seq, seq)
    lat.sort()
    expected = (max_seq - first_seq + 1) if first_seq is not None else 0
    out = {
        "count": seen,
        "lost": max(0, expected - seen),
        "latency_us": summary(lat, (50, 90, 99)),
    }
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    ps = sub.add_parser("send", help="send timestamped datagrams")
    ps.add_argument("--dst", required=True, help="destination address (unicast or group)")
    ps.add_argument("--port", type=int, default=5002, help="UDP destination port")
    ps.add_argument("--rate", type=float, default=10000, help="datagrams per second")
    ps.add_argument("--time", type=float, default=3, help="seconds to send for")
    ps.add_argument("--len", type=int, default=64, help="UDP payload bytes (at least 16)")
    pr = sub.add_parser("recv", help="receive and report latency")
    pr.add_argument("--group", help="multicast group to join (omit for unicast)")
    pr.add_argument("--port", type=int, default=5002, help="UDP port to listen on")
    pr.add_argument("--time", type=float, default=5, help="seconds to listen for")
    a = p.parse_args()
    if a.mode == "send":
        send(a)
    else:
        recv(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
