"""Measurement: probes and rate searches, and each benchmark case, in the lab of
`lab`. What it returns are raw per-run figures for `fold`.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .lab import (
    GROUP_BASE,
    LOCAL_RX,
    LOSS_LIMIT,
    REMOTE_RX,
    ROOT,
    SENDER,
    SENDER_HOST,
    VNI,
    VX,
    finish,
    ipn,
    log,
    machine_cpu,
    proc_cpu,
    sh,
    spawn,
    vxlan_mesh,
    wait_agents_registered,
)


# ---------------------------------------------------------------- probes


def last_summary(out):
    """The last JSON line of `mcgate perf` output that is its summary, or None."""
    found = None
    for line in out.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and o.get("summary"):
            found = o
    return found


def probe(lab, cfg, receivers, group, size, rate, secs):
    """One run: receivers join, the sender sends `rate` ("10g" = as fast as it can) for
    `secs`. Returns per-receiver counts, the sender's count, CPU deltas."""
    rx = {}
    for r in receivers:
        rx[r] = spawn(lab.exec_args(r, [cfg.mcgate, "perf", "recv", "--group", group,
                                        "--buffer", "8M", "--interval", "1000", "--json",
                                        "--time", str(secs + 4)]))
    time.sleep(cfg.join_wait)
    agents = {h: lab.agent_pid(h) for h in lab.hosts()} if cfg.agents_running else {}
    a0 = {h: proc_cpu(p) for h, p in agents.items() if p}
    m0 = machine_cpu()
    t0 = time.monotonic()
    tx = spawn(lab.exec_args(SENDER, [cfg.mcgate, "perf", "send", "--group", group, "--rate",
                                      rate, "--len", str(size), "--time", str(secs),
                                      "--ttl", "32", "--json", "--interval", "1000"]))
    tx_pid = tx.pid
    tx_cpu = None
    # Sample the sender's CPU just before it exits.
    while tx.poll() is None and time.monotonic() - t0 < secs + 10:
        c = proc_cpu(tx_pid)
        if c is not None:
            tx_cpu = c
        time.sleep(0.05)
    out, err = finish(tx, 10)
    time.sleep(0.3)  # in flight
    m1 = machine_cpu()
    a1 = {h: proc_cpu(p) for h, p in agents.items() if p}
    elapsed = time.monotonic() - t0
    sent = last_summary(out)
    if sent is None:
        raise RuntimeError(f"perf send printed no summary: {err.strip()[:300]}")
    res = {"offered": rate, "sent": sent["datagrams"], "send_pps": sent["datagrams_per_second"],
           "send_seconds": sent["end"] - sent["start"], "receivers": {}}
    rx_cpu = 0.0
    for r, p in rx.items():
        c = proc_cpu(p.pid)
        os.kill(p.pid, signal.SIGINT)
        o, e = finish(p, 5)
        rx_cpu += c or 0.0
        summ = last_summary(o)
        got = summ["datagrams"] - summ.get("duplicates", 0) if summ else 0
        loss = 1.0 - got / sent["datagrams"] if sent["datagrams"] else 1.0
        res["receivers"][r] = {"datagrams": got, "loss": max(0.0, loss),
                               "seq_lost": summ["lost"] if summ else None}
        if summ is None:
            res["receivers"][r]["output"] = (o[-300:] + e[-300:]).strip()
    got = [v["datagrams"] for v in res["receivers"].values()]
    secs_sent = res["send_seconds"] or secs
    res["min_rx_pps"] = min(got) / secs_sent if got else 0
    res["max_loss"] = max(v["loss"] for v in res["receivers"].values()) if got else 1.0
    res["delivered"] = sum(got)
    agent_cpu = {h: a1[h] - a0[h] for h in a0 if a1.get(h) is not None}
    res["agent_cpu_s"] = sum(agent_cpu.values()) if agent_cpu else None
    res["sender_agent_cpu_s"] = agent_cpu.get(SENDER_HOST)
    res["machine_cpu_s"] = m1 - m0
    res["tool_cpu_s"] = (tx_cpu or 0.0) + rx_cpu
    res["wall_s"] = elapsed
    return res


def search(lab, cfg, receivers, group, size, label):
    """Highest offered rate with loss <= 0.1% at every receiver: a full-rate probe, then
    bisection over the offered rate (packets per second)."""
    probes = []
    first = probe(lab, cfg, receivers, group, size, "10g", cfg.secs)
    probes.append(first)
    log(f"  {label}: full rate: sent {first['send_pps']:.0f} pps, worst receiver "
        f"{first['min_rx_pps']:.0f} pps, loss {100 * first['max_loss']:.2f}%")
    best = first if first["max_loss"] <= LOSS_LIMIT else None
    if best is None:
        # Past saturation the delivered rate can fall as the offered rate rises, so the
        # full-rate figure bounds the search from above only loosely.
        x, sent = first["min_rx_pps"], first["send_pps"]
        if x >= 0.5 * sent:
            lo, hi, rate = 0.0, min(sent, x * 1.15), x * 0.97
        else:
            # Overloaded so badly that some receiver got (almost) nothing: the worst
            # receiver's figure says nothing about capacity; search below what was sent.
            lo, hi, rate = 0.0, sent, sent * 0.5
        rate = max(1000.0, rate)
        for _ in range(cfg.steps):
            if lo > 0 and hi - lo < 0.02 * hi:
                break  # converged, or the sender cannot offer more than `lo`
            p = probe(lab, cfg, receivers, group, size, f"{int(rate)}pps", cfg.secs)
            probes.append(p)
            ok = p["max_loss"] <= LOSS_LIMIT
            log(f"  {label}: offered {int(rate)} pps: sent {p['send_pps']:.0f}, worst receiver "
                f"{p['min_rx_pps']:.0f} pps, loss {100 * p['max_loss']:.3f}% "
                f"{'ok' if ok else 'too lossy'}")
            if ok:
                lo = rate
                if best is None or p["min_rx_pps"] > best["min_rx_pps"]:
                    best = p
                if p["send_pps"] < 0.95 * rate:
                    hi = rate  # the sender could not offer more: nothing to find above
            else:
                hi = rate
            rate = (lo + hi) / 2 if lo > 0 else rate * 0.6
    return summarize(best, size, first), probes


def summarize(best, size, first):
    out = {
        "pps": None, "gbit_s": None, "loss_pct": None,
        "full_rate_offered_pps": round(first["send_pps"]),
        "full_rate_received_pps": round(first["min_rx_pps"]),
        "full_rate_loss_pct": round(100 * first["max_loss"], 3),
        "sender_bound": best is first,
    }
    if best is None:
        return out
    pps = best["min_rx_pps"]
    mpkt = best["delivered"] / 1e6
    out.update({
        "pps": round(pps),
        # UDP payload + UDP/IP/Ethernet headers on the receiving task's link.
        "gbit_s": round(pps * (size + 42) * 8 / 1e9, 3),
        "payload_gbit_s": round(pps * size * 8 / 1e9, 3),
        "loss_pct": round(100 * best["max_loss"], 4),
        "agent_cpu_s_per_mpkt": (round(best["agent_cpu_s"] / mpkt, 3)
                                 if best["agent_cpu_s"] is not None and mpkt else None),
        "sender_agent_cpu_s_per_mpkt": (round(best["sender_agent_cpu_s"] / mpkt, 3)
                                        if best["sender_agent_cpu_s"] is not None and mpkt
                                        else None),
        "machine_cpu_s_per_mpkt": round(best["machine_cpu_s"] / mpkt, 3) if mpkt else None,
    })
    return out


# ---------------------------------------------------------------- cases


def case_replication(lab, cfg, system, results):
    for size in cfg.sizes:
        for n in (1, 3):
            key = (size, n)
            if system == "baseline":
                vxlan_mesh(lab, [SENDER_HOST] + [lab.task(t)["host"] for t in REMOTE_RX[n]])
                time.sleep(0.3)
            grp = f"{GROUP_BASE}{10 + n}"
            label = f"{system} {size} B, {n} remote host(s)"
            summ, probes = search(lab, cfg, REMOTE_RX[n], grp, size, label)
            results.setdefault(key, []).append({"summary": summ, "probes": probes})
    if system == "baseline":
        for h in lab.hosts():
            ipn(lab, h, ["link", "del", VX], check=False)


def case_same_host(lab, cfg, system, results):
    for size in cfg.sizes:
        label = f"{system} same host {size} B"
        summ, probes = search(lab, cfg, [LOCAL_RX], f"{GROUP_BASE}20", size, label)
        results.setdefault(size, []).append({"summary": summ, "probes": probes})


def latency_run(lab, cfg, dst, group, label, rate):
    rx = spawn(lab.exec_args("rb-1", [sys.executable, str(ROOT / "bench" / "udp_latency.py"),
                                      "recv", "--time", str(cfg.lat_secs + 1.5)]
                             + (["--group", group] if group else [])))
    time.sleep(cfg.join_wait)
    tx = spawn(lab.exec_args(SENDER, [sys.executable, str(ROOT / "bench" / "udp_latency.py"),
                                      "send", "--dst", dst, "--rate", str(rate),
                                      "--time", str(cfg.lat_secs)]))
    out_tx, _ = finish(tx, cfg.lat_secs + 10)
    out, err = finish(rx, cfg.lat_secs + 10)
    try:
        r = json.loads(out.strip().splitlines()[-1])
        r["sent"] = json.loads(out_tx.strip().splitlines()[-1])["sent"]
    except (ValueError, IndexError):
        raise RuntimeError(f"latency {label}: no result ({err.strip()[:300]})")
    log(f"  latency {label} at {rate} pps: p50 {r['latency_us']['p50']} us, p99 {r['latency_us']['p99']} us, "
        f"{r['count']}/{r['sent']} received")
    return r


def case_latency(lab, cfg, results, low):
    """At the case's rate, and once at a tenth of it (load dependence)."""
    dst = lab.task("rb-1")["ip"]
    for _ in range(cfg.lat_runs):
        m = latency_run(lab, cfg, f"{GROUP_BASE}30", f"{GROUP_BASE}30", "mcgate multicast",
                        cfg.lat_rate)
        u = latency_run(lab, cfg, dst, None, "routed unicast", cfg.lat_rate)
        results.append({"mcgate": m, "unicast": u})
    rate = cfg.lat_rate // 10
    m = latency_run(lab, cfg, f"{GROUP_BASE}30", f"{GROUP_BASE}30", "mcgate multicast", rate)
    u = latency_run(lab, cfg, dst, None, "routed unicast", rate)
    low.append({"rate_pps": rate, "mcgate": m, "unicast": u})


def case_membership(lab, cfg):
    script = str(ROOT / "bench" / "membership.py")
    base, count, rate = "233.252.1.0", 16, 1000
    send_time = 300
    tx = spawn(lab.exec_args(SENDER, [sys.executable, script, "send", "--base", base,
                                      "--count", str(count), "--rate", str(rate),
                                      "--time", str(send_time)]))
    try:
        time.sleep(0.5)
        j = spawn(lab.exec_args("rb-1", [sys.executable, script, "join", "--base", base,
                                         "--count", str(count), "--joins", str(cfg.joins),
                                         "--hold", "0.1"]))
        out, err = finish(j, 240)
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise RuntimeError(f"membership.py join printed no result: {err.strip()[:300]}")
    finally:
        os.kill(tx.pid, signal.SIGKILL)
        finish(tx, 5)
    res["sender"] = {"groups": count, "pps_per_group": rate, "pps_total": count * rate}
    jf, lv = res["join_to_first_ms"], res["leave_to_last_ms"]
    log(f"  join to first packet: p50 {fmt(jf['p50'])} ms, p99 {fmt(jf['p99'])} ms "
        f"({jf['n']} joins); leave to last packet: p50 {fmt(lv['p50'])} ms, "
        f"max {fmt(lv['max'])} ms ({lv['n']} leaves)")
    return res


def case_host_loss(lab, cfg):
    """A receiver on host-c joins; its agent is killed (SIGKILL); time until the
    controller's group table no longer lists host-c for the group."""
    host, task, grp = "host-c", "rc-1", f"{GROUP_BASE}40"
    times = []
    for i in range(cfg.kills):
        rx = spawn(lab.exec_args(task, [cfg.mcgate, "perf", "recv", "--group", grp,
                                        "--interval", "1000"]))
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if any(r["group"] == grp and r["host"] == host for r in lab.groups()):
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("the receiver's join never reached the group table")
            pid = lab.agent_pid(host)
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            gone = None
            while time.monotonic() - t_kill < 30:
                try:
                    rows = lab.groups()
                except OSError:
                    rows = None
                if rows is not None and not any(r["host"] == host for r in rows):
                    gone = time.monotonic() - t_kill
                    break
                time.sleep(0.02)
            times.append(gone)
            log(f"  host loss {i + 1}: members of {host} gone from the group table after "
                f"{fmt(gone, 3)} s" if gone is not None else "  host loss: never removed (30 s)")
        finally:
            os.kill(rx.pid, signal.SIGINT)
            finish(rx, 5)
            lab.restart_agent(host)
            lab.refresh()
            wait_agents_registered(lab)
    return times


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def profile_agent(lab, cfg, out_dir):
    """perf record -g on the sending host's agent during a full-rate 1470 B probe to 3
    remote hosts; returns the top of `perf report`."""
    if not cfg.profile or not shutil.which("perf"):
        return None
    pid = lab.agent_pid(SENDER_HOST)
    data = out_dir / "agent.perf.data"
    rx = [spawn(lab.exec_args(r, [cfg.mcgate, "perf", "recv", "--group", f"{GROUP_BASE}50",
                                  "--interval", "1000", "--time", "8"])) for r in REMOTE_RX[3]]
    time.sleep(cfg.join_wait)
    tx = spawn(lab.exec_args(SENDER, [cfg.mcgate, "perf", "send", "--group", f"{GROUP_BASE}50",
                                      "--rate", "10g", "--len", "1470", "--time", "5",
                                      "--ttl", "32"]))
    time.sleep(1)
    rec = sh(["perf", "record", "-g", "-o", str(data), "-p", str(pid), "--", "sleep", "3"],
             check=False, timeout=60)
    finish(tx, 10)
    for p in rx:
        finish(p, 10)
    if rec.returncode != 0 or not data.exists():
        return f"perf record failed: {(rec.stderr or '').strip()[:300]}"
    out = []
    for sort, limit, n in (("dso", "2", 8), ("symbol", "1.2", 25)):
        rep = sh(["perf", "report", "--stdio", "--no-children", "-i", str(data),
                  "--percent-limit", limit, "-g", "none", "--sort", sort], check=False,
                 timeout=120)
        lines = [re.sub(r"[\s-]+$", "", ln) for ln in (rep.stdout or "").splitlines()
                 if ln.strip() and not ln.startswith("#")]
        out.append(f"by {sort}:")
        out += lines[:n]
    return "\n".join(out)


# ---------------------------------------------------------------- external benchmarks


def run_bench_perf(cfg):
    script = ROOT / "scripts" / "bench-perf"
    out = ROOT / "bench" / "perf-vs-iperf.json"
    note = None
    if script.exists() and shutil.which("iperf"):
        env = dict(os.environ, MCGATE=cfg.mcgate, RUNS=str(cfg.perf_runs),
                   SECONDS_PER_RUN=str(cfg.perf_secs))
        log(f"case 6: scripts/bench-perf (RUNS={cfg.perf_runs} SECONDS_PER_RUN={cfg.perf_secs})")
        # bench-perf always writes bench/perf-vs-iperf.json, which belongs to its own
        # runs: the file is put back after reading, and this run's figures live in
        # bench-results.json.
        saved = out.read_bytes() if out.exists() else None
        r = subprocess.run([str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=900)
        if r.returncode != 0:
            note = f"scripts/bench-perf failed ({r.returncode}): {r.stderr.strip()[-300:]}"
            log("  " + note)
        else:
            note = (f"ran in this run: RUNS={cfg.perf_runs} SECONDS_PER_RUN={cfg.perf_secs} "
                    "scripts/bench-perf")
        fresh = None
        if r.returncode == 0 and out.exists():
            try:
                fresh = json.loads(out.read_text())
            except ValueError as e:
                note = f"{out.name} unreadable after the run: {e}"
        if saved is not None:
            out.write_bytes(saved)
        if fresh is not None:
            return fresh, note
        if r.returncode != 0 and saved is not None:
            note += "; figures below are from the committed bench/perf-vs-iperf.json"
            return json.loads(saved), note
        return None, note
    note = "scripts/bench-perf or iperf missing; figures from the committed JSON"
    if out.exists():
        try:
            return json.loads(out.read_text()), note
        except ValueError as e:
            return None, f"{out.name} unreadable: {e}"
    return None, note + "; no bench/perf-vs-iperf.json"


def free_port():
    """A loopback TCP port nobody listens on (the load generator's default may be taken)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_loadgen(cfg, tmpdir):
    # The load generator writes its JSON to a scratch file: bench/controller-scale.json
    # is its owner's committed result and is only read when the run here fails.
    committed = ROOT / "bench" / "controller-scale.json"
    out = tmpdir / "controller-scale.json"
    exe = Path(cfg.mcgate).parent / "examples" / "loadgen"
    note = None
    if cfg.build and (ROOT / "crates" / "controller" / "examples" / "loadgen.rs").exists():
        r = subprocess.run(["cargo", "build", "--release", "--locked", "-p", "mcgate-controller",
                            "--example", "loadgen"], cwd=ROOT, capture_output=True, text=True,
                           timeout=1800)
        if r.returncode != 0:
            note = f"building the load generator failed: {r.stderr.strip()[-300:]}"
    if exe.exists() and note is None:
        agents = 1000 if cfg.quick else 5000
        log(f"case 5: controller load generator, {agents} agents x 100 groups")
        # Heartbeats every 10 s: the burst is what this run measures; the simulated
        # agents' heartbeats run on the same 2 CPUs (their cost is the next run's).
        r = subprocess.run([str(exe), "--agents", str(agents), "--groups", "100", "--light",
                            "--probes", "0", "--heartbeat-ms", "10000", "--mcgate", cfg.mcgate,
                            "--port", str(free_port()), "--out", str(out)],
                           cwd=ROOT, capture_output=True,
                           text=True, timeout=900)
        if r.returncode != 0:
            note = f"loadgen failed ({r.returncode}): {r.stderr.strip()[-300:]}"
            log("  " + note)
        else:
            note = (f"ran in this run: loadgen --agents {agents} --groups 100 --light "
                    "--heartbeat-ms 10000")
            for ln in r.stdout.strip().splitlines()[-4:]:
                log("  " + ln)
            # One change fanned out to 1000 agents of one domain, timed 50 times.
            log("case 5: one change to 1000 agents of one domain")
            fan = tmpdir / "controller-fanout.json"
            r = subprocess.run([str(exe), "--agents", "1000", "--domains", "1", "--groups", "10",
                                "--light", "--probes", "50", "--heartbeat-ms", "1000",
                                "--mcgate", cfg.mcgate,
                                "--port", str(free_port()), "--out", str(fan)],
                               cwd=ROOT, capture_output=True, text=True, timeout=900)
            if r.returncode == 0:
                try:
                    f = json.loads(fan.read_text())
                    d = json.loads(out.read_text())
                    f["command"] = ("loadgen --agents 1000 --domains 1 --groups 10 --light "
                                    "--probes 50 --heartbeat-ms 1000")
                    d["fanout"] = {k: f.get(k) for k in (
                        "command", "agents", "probes", "probe_audience", "probe_p50_ms",
                        "probe_p99_ms", "target", "heartbeat_ms", "idle_controller_cpu_pct")}
                    out.write_text(json.dumps(d, indent=2) + "\n")
                except ValueError as e:
                    note += f"; fan-out figures unreadable: {e}"
                for ln in r.stdout.strip().splitlines():
                    if ln.startswith(("single change", "heartbeats every")):
                        log("  " + ln)
            else:
                note += f"; fan-out run failed ({r.returncode}): {r.stderr.strip()[-300:]}"
    elif note is None:
        note = "no load generator binary"
    for f, why in ((out, None), (committed, "figures from the committed "
                                             "bench/controller-scale.json")):
        if f.exists() and (why is None or "ran in this run" not in (note or "")):
            try:
                data = json.loads(f.read_text())
            except ValueError as e:
                return None, f"{f.name} unreadable: {e}"
            return data, note if why is None else f"{note}; {why}"
    return None, (note or "") + "; no bench/controller-scale.json"


def cpu_model():
    for ln in Path("/proc/cpuinfo").read_text().splitlines():
        if ln.startswith("model name"):
            return ln.split(":", 1)[1].strip()
    return "unknown"


def standard_notes(cfg, underlay_mtu):
    return [
        "Rate search: one probe with the sender at full rate (`mcgate perf send --rate 10g`), "
        f"then {cfg.steps} bisection steps over the offered rate (pps), starting just under "
        "the worst receiver's full-rate figure; a probe passes when every receiver got at "
        f"least 99.9% of the datagrams sent. Each probe sends for {cfg.secs} s. If the "
        "full-rate probe already passes, the figure is sender-bound (counted in "
        "`sender_bound_runs`; marked in the tables): such a figure is a lower bound for the path.",
        "Receivers are `mcgate perf recv --buffer 8M` (the kernel doubles it), so loss is not "
        "the receiving socket's buffer at these rates; senders use TTL 32.",
        "Kernel baseline: the lab's agents are stopped (SIGTERM to the PIDs under the lab's "
        "supervisors), each br0 gets mcast_snooping 1, mcast_querier 1 with a 1 s query "
        "response interval (instead of 10 s, so the querier counts as present in about a "
        "second), task ports get mcast_flood on, and each host involved gets a VXLAN port "
        f"(VNI {VNI}, local = host IP, dstport 4789, nolearning, permanent multicast router "
        "port) with an all-zero FDB entry for each *other host involved in the case* only: "
        "with 1 remote host the kernel floods to that host alone, the kernel's best case. "
        "All of it is removed and the agents restarted afterwards.",
        (f"MTU: the sending host's uplink is {underlay_mtu} bytes; a 1470-byte datagram in "
         f"VXLAN takes {1470 + 28 + 50} bytes of IP packet, which "
         + ("fits" if 1470 + 28 + 50 <= underlay_mtu else "does not fit") + "."
         if underlay_mtu else "MTU: the underlay's MTU was not read."),
        "CPU per million packets: agent = utime+stime of every agent process over the probe, "
        "divided by datagrams delivered to all receivers; machine = busy time of all CPUs from "
        "/proc/stat over the same interval (it includes the sender, receivers and softirq "
        "work, and anything else running on this shared machine; near saturation it is "
        "mostly 2 CPU-seconds per second divided by the rate).",
        f"The machine has {os.cpu_count()} CPUs shared by the sender, the receivers, the "
        "agents and softirq work; absolute rates move with background load, which is why only "
        "same-run ratios are compared. The mcgate and kernel phases alternate in each run.",
        "Latency: bench/udp_latency.py (Python) for both the multicast and the unicast path, "
        "since `mcgate perf send` only sends to multicast groups. It reads the kernel's "
        "receive timestamp (SO_TIMESTAMPNS), so the receiving process's wake-up is excluded, "
        "and its sender sleeps between datagrams (1 µs timer slack) instead of spinning on a "
        "CPU the relay threads need.",
    ]
