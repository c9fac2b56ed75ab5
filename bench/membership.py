#!/usr/bin/env python3
"""Membership speed: join to first packet and leave to last packet, seen from a task.

    membership.py send --base 233.252.1.0 --count 16 --rate 1000 --time 60
    membership.py join --base 233.252.1.0 --count 16 --joins 50 [--iface eth0]

`send` sends to COUNT consecutive groups in turn, RATE datagrams per second to each.

`join` watches every IPv4 frame arriving on IFACE with an AF_PACKET socket (so it sees
what the network delivers to the task whether or not a socket has joined), and for each
of JOINS rounds takes the next group in turn: waits until nothing of that group has
arrived for QUIET seconds, joins (IP_ADD_MEMBERSHIP, timestamp), waits for the group's
first frame (timestamp), holds HOLD seconds, leaves (IP_DROP_MEMBERSHIP, timestamp). The
last frame of a group after its leave is known once the group has gone quiet again. It
prints one JSON object with every measurement in milliseconds. Standard library only.
"""

import argparse
import ipaddress
import json
import socket
import struct
import sys
import threading
import time

from mcgate_bench.stats import summary

ETH_P_IP = 0x0800


def groups(base, count):
    b = int(ipaddress.IPv4Address(base))
    return [str(ipaddress.IPv4Address(b + i)) for i in range(count)]


def send(a):
    gs = groups(a.base, a.count)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 32)
    payload = b"m" * 64
    start = time.monotonic()
    end = start + a.time
    tick = 1.0 / a.rate  # one datagram to every group per tick
    nxt = start
    sent = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < nxt:
            time.sleep(max(0.0, nxt - now - 0.0001))
            continue
        for g in gs:
            s.sendto(payload, (g, a.port))
        sent += len(gs)
        nxt += tick
        if now - nxt > 0.05:
            nxt = now
    print(json.dumps({"sent": sent}))


class Watch(threading.Thread):
    """Records, per group, the time of the last frame and of the first frame after a join."""

    def __init__(self, iface, wanted):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.sock.bind((iface, ETH_P_IP))
        self.sock.settimeout(0.1)
        self.wanted = {socket.inet_aton(g): g for g in wanted}
        self.lock = threading.Lock()
        self.last = {}
        self.armed = {}  # group -> join time; cleared when the first frame comes
        self.first = {}
        self.event = threading.Event()
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(2048)
            except socket.timeout:
                continue
            now = time.monotonic()
            if len(data) < 20:
                continue
            g = self.wanted.get(data[16:20])
            if g is None:
                continue
            with self.lock:
                self.last[g] = now
                t = self.armed.get(g)
                if t is not None and now >= t:
                    self.first[g] = now
                    del self.armed[g]
                    self.event.set()

    def last_seen(self, g):
        with self.lock:
            return self.last.get(g)


def timing(vals, digits):
    """How many, p50, p99, max and every sample of `vals` (milliseconds)."""
    return {"n": len(vals), **summary(vals, (50, 99)), "all": [round(x, digits) for x in vals]}


def join(a):
    gs = groups(a.base, a.count)
    w = Watch(a.iface, gs)
    w.start()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    join_ms, leave_ms, not_quiet, no_first = [], [], 0, 0
    pending = {}  # group -> leave time
    # Let the watcher see which groups still arrive from an earlier run.
    time.sleep(a.quiet)

    def settle(g, limit):
        """Waits until g has been quiet for QUIET s; returns False at the limit."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ls = w.last_seen(g)
            if ls is None or time.monotonic() - ls >= a.quiet:
                return True
            time.sleep(0.01)
        return False

    def close_leave(g):
        t = pending.pop(g, None)
        if t is None:
            return
        ls = w.last_seen(g)
        leave_ms.append(max(0.0, (ls - t) * 1000.0) if ls is not None else 0.0)

    for i in range(a.joins):
        g = gs[i % len(gs)]
        if not settle(g, a.settle_limit):
            not_quiet += 1
            pending.pop(g, None)
            continue
        close_leave(g)
        mreq = socket.inet_aton(g) + socket.inet_aton("0.0.0.0")
        with w.lock:
            w.event.clear()
            t_join = time.monotonic()
            w.armed[g] = t_join
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        deadline = t_join + a.first_timeout
        got = None
        while time.monotonic() < deadline:
            w.event.wait(0.01)
            with w.lock:
                got = w.first.pop(g, None)
                w.event.clear()
            if got is not None:
                break
        if got is None:
            no_first += 1
            with w.lock:
                w.armed.pop(g, None)
        else:
            join_ms.append((got - t_join) * 1000.0)
        time.sleep(a.hold)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
        pending[g] = time.monotonic()
    for g in list(pending):
        settle(g, a.settle_limit)
        close_leave(g)
    w.stop = True
    out = {
        "joins": a.joins,
        "join_to_first_ms": timing(join_ms, 3),
        "leave_to_last_ms": timing(leave_ms, 1),
        "joins_without_first_packet": no_first,
        "joins_skipped_group_not_quiet": not_quiet,
    }
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    ps = sub.add_parser("send", help="send to COUNT groups in turn")
    ps.add_argument("--base", required=True, help="first group")
    ps.add_argument("--count", type=int, default=16, help="number of consecutive groups")
    ps.add_argument("--rate", type=float, default=1000, help="datagrams per second per group")
    ps.add_argument("--port", type=int, default=5003, help="UDP destination port")
    ps.add_argument("--time", type=float, default=60, help="seconds to send for")
    pj = sub.add_parser("join", help="join and leave groups in turn, timing each")
    pj.add_argument("--base", required=True, help="first group")
    pj.add_argument("--count", type=int, default=16, help="number of consecutive groups")
    pj.add_argument("--joins", type=int, default=50, help="join/leave rounds")
    pj.add_argument("--iface", default="eth0", help="interface to watch")
    pj.add_argument("--hold", type=float, default=0.05, help="seconds joined before leaving")
    pj.add_argument("--quiet", type=float, default=0.3,
                    help="seconds without a frame that make a group count as stopped")
    pj.add_argument("--settle-limit", type=float, default=8.0,
                    help="longest wait for a group to stop before skipping it")
    pj.add_argument("--first-timeout", type=float, default=2.0,
                    help="longest wait for the first frame after a join")
    a = p.parse_args()
    if a.mode == "send":
        send(a)
    else:
        join(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
