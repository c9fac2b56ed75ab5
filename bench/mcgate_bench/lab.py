"""The benchmark's lab and processes: constants of the topology, commands run and
processes started (stopped by PID on exit), CPU accounting, `mcgate lab` driven from
Python, and the kernel baselines built in the lab's namespaces while mcgate's agents
are stopped. Touches the machine (as root).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
TOPOLOGY = ROOT / "bench" / "topologies" / "bench-cross.toml"
LAB = "bench-cross"
SENDER = "tx-1"
LOCAL_RX = "local-1"
SENDER_HOST = "host-a"
REMOTE_RX = {1: ["rb-1"], 3: ["rb-1", "rc-1", "rd-1"]}
LOSS_LIMIT = 0.001  # 0.1%
VNI = 4242  # the baseline's VXLAN network; mcgate's agents are stopped while it exists
VX = "bvx0"  # the baseline's VXLAN device in each host namespace
GROUP_BASE = "233.252.0."
T0 = time.monotonic()
HZ = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def sh(args, check=True, capture=True, timeout=120):
    r = subprocess.run(args, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({r.returncode}): "
                           f"{(r.stderr or '').strip()[:500]}")
    return r


# ---------------------------------------------------------------- processes and CPU

STARTED = []  # Popen objects this script started, stopped by PID on exit


def spawn(args, **kw):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    STARTED.append(p)
    return p


def stop_started():
    for p in STARTED:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    STARTED.clear()


def finish(p, timeout):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGINT)
        try:
            out, err = p.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate()
    if p in STARTED:
        STARTED.remove(p)
    return out, err


def proc_cpu(pid):
    """utime + stime of a process in seconds, or None if it is gone."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = s[s.rfind(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / HZ


def machine_cpu():
    """Busy seconds of all CPUs (everything but idle and iowait), from /proc/stat."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    return (sum(v[:8]) - v[3] - v[4]) / HZ


def children(pid):
    out = []
    for t in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (t / "children").read_text().split()]
        except OSError:
            pass
    return out



# ---------------------------------------------------------------- the lab


class Lab:
    def __init__(self, mcgate, topology, name):
        self.mcgate = mcgate
        self.topology = topology
        self.name = name
        self.status = None

    def ns(self, node):
        return f"mcgl-{self.name}-{node}"

    def up(self):
        sh([self.mcgate, "lab", "down", self.name], check=False)
        r = sh([self.mcgate, "lab", "up", str(self.topology), "--name", self.name], check=False)
        if r.returncode != 0:
            raise RuntimeError(f"mcgate lab up failed:\n{r.stdout}\n{r.stderr}")
        self.refresh()

    def refresh(self):
        r = sh([self.mcgate, "lab", "status", "--name", self.name, "--json"])
        self.status = json.loads(r.stdout)
        return self.status

    def down(self):
        sh([self.mcgate, "lab", "down", self.name], check=False)

    def host(self, name):
        return next(h for h in self.status["hosts"] if h["name"] == name)

    def task(self, name):
        return next(t for t in self.status["tasks"] if t["name"] == name)

    def hosts(self):
        return [h["name"] for h in self.status["hosts"]]

    def agent_pid(self, host):
        """The agent process: the child of the lab's supervisor for the host."""
        sup = self.host(host).get("agent_pid")
        if not sup:
            return None
        kids = children(sup)
        return kids[0] if kids else None

    def restart_agent(self, host):
        sh([self.mcgate, "lab", "restart", "--name", self.name, host])

    def exec_args(self, node, args):
        # `ip netns exec` execs in place, so the PID we get is the measuring tool's own.
        return ["ip", "netns", "exec", self.ns(node)] + args

    def groups(self):
        sock = self.status["controller"]["socket"]

        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(2)
                self.sock.connect(sock)

        c = Conn("localhost", timeout=2)
        try:
            c.request("GET", "/v1/groups")
            return json.loads(c.getresponse().read())
        finally:
            c.close()


def agent_knows(mcgate, value):
    """Whether `mcgate agent --help` lists this data plane value."""
    text = sh([mcgate, "agent", "--help"], check=False).stdout or ""
    return f'"{value}"' in text


def agent_dataplane(lab):
    """The data plane host-a's agent says it runs (its start-up log line)."""
    r = sh([lab.mcgate, "lab", "logs", "--name", lab.name, SENDER_HOST], check=False)
    for ln in (r.stdout or "").splitlines():
        if "dataplane=" in ln:
            return ln.split("dataplane=", 1)[1].split()[0].strip('"')
    return "unknown"


# ---------------------------------------------------------------- kernel baselines


def ipn(lab, node, args, check=True):
    return sh(["ip", "-n", lab.ns(node)] + args, check=check)


def underlay_mtu(lab):
    """The MTU of the sender's host's uplink, the underlay every tunnelled copy crosses."""
    out = ipn(lab, SENDER_HOST, ["-j", "link", "show", "uplink"], check=False).stdout or "[]"
    links = json.loads(out)
    return links[0].get("mtu") if links else None


def bridge_querier_on(lab, host):
    # A 1 s query response interval: the bridge counts its own querier as present after
    # it (10 s by default), so the baseline prunes within a second or two.
    ipn(lab, host, ["link", "set", "br0", "type", "bridge", "mcast_snooping", "1",
                    "mcast_querier", "1", "mcast_query_response_interval", "100",
                    "mcast_startup_query_interval", "100", "mcast_query_interval", "1000"])


def bridge_restore(lab, host):
    ipn(lab, host, ["link", "del", VX], check=False)
    ipn(lab, host, ["link", "set", "br0", "type", "bridge", "mcast_querier", "0",
                    "mcast_snooping", "0"], check=False)


def task_ports(lab, host):
    return ["tk" + t["name"] for t in lab.status["tasks"] if t["host"] == host]


def set_flood(lab, host, on):
    for port in task_ports(lab, host):
        ipn(lab, host, ["link", "set", port, "type", "bridge_slave", "mcast_flood",
                        "on" if on else "off"], check=False)


def vxlan_mesh(lab, hosts):
    """Kernel VXLAN head-end replication among `hosts`: a VXLAN port on each br0 and an
    all-zero FDB entry per other host; the VXLAN port is a permanent multicast router
    port, so every group reaches it and it copies to each remote."""
    for h in lab.hosts():
        ipn(lab, h, ["link", "del", VX], check=False)
    for h in hosts:
        local = lab.host(h)["underlay_ip"]
        ipn(lab, h, ["link", "add", VX, "type", "vxlan", "id", str(VNI), "local", local,
                     "dstport", "4789", "nolearning"])
        ipn(lab, h, ["link", "set", VX, "mtu", "1500", "master", "br0"])
        # Multicast only: with the host's own address on br0, unknown unicast or
        # broadcast flooded into the VXLAN port would be tunnelled to the other hosts and
        # come back through their uplinks and the VPC router (a loop).
        ipn(lab, h, ["link", "set", VX, "type", "bridge_slave", "mcast_router", "2",
                     "mcast_flood", "on", "flood", "off", "bcast_flood", "off",
                     "learning", "off"])
        ipn(lab, h, ["link", "set", VX, "up"])
        for other in hosts:
            if other != h:
                sh(["bridge", "-n", lab.ns(h), "fdb", "append", "00:00:00:00:00:00", "dev", VX,
                    "dst", lab.host(other)["underlay_ip"]])


def stop_agents(lab):
    pids = {}
    for h in lab.hosts():
        p = lab.agent_pid(h)
        if p:
            pids[h] = p
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists()
                                              and proc_state(p) not in ("Z", "X")
                                              for p in pids.values()):
        time.sleep(0.1)
    for h, p in pids.items():
        if Path(f"/proc/{p}").exists() and proc_state(p) not in ("Z", "X"):
            os.kill(p, signal.SIGKILL)
    time.sleep(0.5)
    # A kernel data plane may leave VXLAN ports on br0 behind; they would copy the
    # baseline's traffic too. Set them down for the baseline (the agents' restart
    # reconciles them) and say so.
    left = []
    for h in lab.hosts():
        r = sh(["ip", "-n", lab.ns(h), "-o", "link", "show", "type", "vxlan"], check=False)
        for ln in (r.stdout or "").splitlines():
            name = ln.split(":")[1].strip().split("@")[0] if ":" in ln else ""
            if name and name != VX:
                ipn(lab, h, ["link", "set", name, "down"], check=False)
                left.append(f"{h}/{name}")
    if left:
        log(f"  VXLAN devices left by the stopped agents, set down for the baseline: {left}")
    # ... and its VXLAN source filter (nftables tables `inet mcgate` and `bridge mcgate`),
    # kept for a restarting agent: it would drop the baseline's VXLAN, which comes from no
    # peer of any domain. The agents' restart writes the filter again.
    filters = []
    for h in lab.hosts():
        for family in ("inet", "bridge"):
            r = sh(["ip", "netns", "exec", lab.ns(h), "nft", "delete", "table", family,
                    "mcgate"], check=False)
            if r.returncode == 0:
                filters.append(f"{h}/{family}")
    if filters:
        log(f"  VXLAN source filters left by the stopped agents, removed for the baseline: "
            f"{filters}")
    return left


def proc_state(pid):
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
        return s[s.rfind(")") + 2]
    except OSError:
        return None


def start_agents(lab):
    for h in lab.hosts():
        lab.restart_agent(h)
    lab.refresh()
    wait_agents_registered(lab)


def wait_agents_registered(lab, limit=15):
    """Waits until every agent runs and the controller lists its host's agent."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        lab.refresh()
        if all(h["state"] == "running" and lab.agent_pid(h["name"]) for h in
               lab.status["hosts"]):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # registration and the first queries
