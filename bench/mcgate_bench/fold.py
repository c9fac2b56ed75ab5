"""Result folding: per-run figures into medians, ratios against the kernel's paths and
target verdicts, as the `cases` list of bench-results.json. Pure: no I/O.
"""

import statistics

# The case-5 row of single changes fanned out to every agent of a domain.
FANOUT = "one change to every agent"

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def med_summary(runs, field):
    return median([r["summary"].get(field) for r in runs])


def fold(runs):
    """Median of each figure over runs."""
    keys = ["pps", "gbit_s", "payload_gbit_s", "loss_pct", "agent_cpu_s_per_mpkt",
            "sender_agent_cpu_s_per_mpkt", "machine_cpu_s_per_mpkt", "full_rate_offered_pps",
            "full_rate_received_pps", "full_rate_loss_pct"]
    out = {}
    for k in keys:
        v = med_summary(runs, k)
        if v is not None:
            out[k] = round(v, 4) if isinstance(v, float) else v
    out["runs_pps"] = [r["summary"].get("pps") for r in runs]
    out["probes_per_run"] = [[{"offered": p["offered"], "sent_pps": round(p["send_pps"]),
                               "worst_rx_pps": round(p["min_rx_pps"]),
                               "max_loss_pct": round(100 * p["max_loss"], 3)}
                              for p in r["probes"]] for r in runs]
    out["sender_bound_runs"] = sum(1 for r in runs if r["summary"].get("sender_bound"))
    return out


def ratio(a, b):
    if a is None or not b:
        return None
    return round(a / b, 3)


def build_results(cfg, meta, rep, same, lat, lat_low, memb, kills, loadgen, perfjs, profile):
    cases = []
    ref = {"system": "reference gateway (not measured here)", "note": "minutes"}
    for dp in rep["mcgate"]:
        for (size, n) in sorted(rep["mcgate"][dp]):
            runs_m, runs_b = rep["mcgate"][dp][(size, n)], rep["baseline"].get((size, n), [])
            m, b = fold(runs_m), fold(runs_b)
            per_run = [ratio(x["summary"].get("pps"), y["summary"].get("pps"))
                       for x, y in zip(runs_m, runs_b)]
            r = ratio(m.get("pps"), b.get("pps"))
            cases.append({"name": "cross-host replication", "case": 1, "dataplane": dp,
                          "size": size, "remote_hosts": n, "mcgate": m,
                          "baseline": dict(b, system=(
                              "kernel VXLAN head-end replication (all-zero FDB entry per "
                              "remote host, bridge querier on)")),
                          "ratio": r, "ratio_per_run": per_run, "target": "ratio >= 1.0",
                          "target_met": bool(r is not None and r >= 1.0)})
    for dp in same["mcgate"]:
        for size in sorted(same["mcgate"][dp]):
            m, b = fold(same["mcgate"][dp][size]), fold(same["baseline"].get(size, []))
            r = ratio(m.get("pps"), b.get("pps"))
            cases.append({"name": "same-host delivery", "case": 2, "dataplane": dp,
                          "size": size, "remote_hosts": 0, "mcgate": m,
                          "baseline": dict(b, system="Linux bridge, snooping and querier on"),
                          "ratio": r, "target": "none set; bar used: ratio >= 1.0",
                          "target_met": bool(r is not None and r >= 1.0)})
    for dp, runs in lat.items():
        if not runs:
            continue
        mp50 = median([x["mcgate"]["latency_us"]["p50"] for x in runs])
        mp99 = median([x["mcgate"]["latency_us"]["p99"] for x in runs])
        up50 = median([x["unicast"]["latency_us"]["p50"] for x in runs])
        up99 = median([x["unicast"]["latency_us"]["p99"] for x in runs])
        added = round(mp50 - up50, 1) if mp50 is not None and up50 is not None else None
        cases.append({"name": "added latency", "case": 3, "dataplane": dp, "size": 64,
                      "remote_hosts": 1, "rate_pps": cfg.lat_rate,
                      "mcgate": {"p50_us": round(mp50, 1), "p99_us": round(mp99, 1),
                                 "runs": [x["mcgate"] for x in runs]},
                      "baseline": {"system": "routed unicast between the same two tasks",
                                   "p50_us": round(up50, 1), "p99_us": round(up99, 1),
                                   "runs": [x["unicast"] for x in runs]},
                      "added_p50_us": added,
                      "at_tenth_rate": [{"rate_pps": x["rate_pps"],
                                         "mcgate_p50_us": x["mcgate"]["latency_us"]["p50"],
                                         "mcgate_p99_us": x["mcgate"]["latency_us"]["p99"],
                                         "unicast_p50_us": x["unicast"]["latency_us"]["p50"],
                                         "unicast_p99_us": x["unicast"]["latency_us"]["p99"]}
                                        for x in lat_low.get(dp, [])],
                      "added_p99_us": round(mp99 - up99, 1),
                      "ratio": ratio(mp50, up50),
                      "target": "added p50 < 50 us",
                      "target_met": bool(added is not None and added < 50)})
    if memb:
        jf, lv = memb["join_to_first_ms"], memb["leave_to_last_ms"]
        cases.append({"name": "join to first packet", "case": 4, "remote_hosts": 1,
                      "dataplane": memb.get("dataplane"),
                      "mcgate": {"p50_ms": rnd(jf["p50"], 2), "p99_ms": rnd(jf["p99"], 2),
                                 "max_ms": rnd(jf["max"], 2), "joins": jf["n"],
                                 "joins_without_first_packet": memb["joins_without_first_packet"],
                                 "sender": memb["sender"]},
                      "baseline": ref, "target": "p99 < 50 ms",
                      "target_met": bool(jf["p99"] is not None and jf["p99"] < 50
                                         and memb["joins_without_first_packet"] == 0)})
        cases.append({"name": "leave to last packet", "case": 4, "remote_hosts": 1,
                      "dataplane": memb.get("dataplane"),
                      "mcgate": {"p50_ms": rnd(lv["p50"], 1), "p99_ms": rnd(lv["p99"], 1),
                                 "max_ms": rnd(lv["max"], 1), "leaves": lv["n"],
                                 "igmp": "fast leave on the receiver's task veth (the domain's "
                                         "single_host_fast_leave, on by default)"},
                      "baseline": ref, "target": "p99 < 100 ms", "limit_ms": 100,
                      "target_met": bool(lv["p99"] is not None and lv["p99"] < 100)})
    if kills is not None:
        ok = [k for k in kills if k is not None]
        cases.append({"name": "host loss to removal", "case": 4, "remote_hosts": 1,
                      "dataplane": memb.get("dataplane") if memb else None,
                      "mcgate": {"median_s": rnd(median(ok), 3), "max_s": rnd(max(ok), 3)
                                 if ok else None, "runs_s": kills,
                                 "how": "agent SIGKILLed; GET /v1/groups polled every 20 ms"},
                      "baseline": ref,
                      "target": "< 1 s (every kill)", "limit_s": 1.0,
                      "target_met": bool(ok and len(ok) == len(kills) and max(ok) < 1.0)})
    lg, lg_note = loadgen
    if lg is not None or lg_note:
        tgt = (lg or {}).get("target") or {"converge_ms": 2000, "peak_rss_mb": 200}
        source = ("this run" if lg_note and lg_note.startswith("ran in this run")
                  else "bench/controller-scale.json")
        cases.append({"name": "control-plane scale", "case": 5,
                      "mcgate": {k: lg.get(k) for k in (
                          "agents", "groups_per_agent", "domains", "converge_ms",
                          "converge_p50_ms", "reports_acked_ms", "controller_peak_rss_mb",
                          "controller_memberships", "expected_memberships", "stream_bytes",
                          "verify")} if lg else {},
                      "baseline": {"target_converge_ms": tgt.get("converge_ms"),
                                   "target_peak_rss_mb": tgt.get("peak_rss_mb")},
                      "source": source, "note": lg_note,
                      "target": (f"{(lg or {}).get('agents', 1000)} agents x "
                                 f"{(lg or {}).get('groups_per_agent', 100)} groups converge <= "
                                 f"{tgt.get('converge_ms', 0) / 1000:g} s, controller < "
                                 f"{tgt.get('peak_rss_mb')} MB"),
                      "target_met": bool(lg and lg.get("met"))})
        fan = (lg or {}).get("fanout")
        if fan and fan.get("probe_p99_ms") is not None:
            limit = (fan.get("target") or {}).get("probe_p99_ms", 20)
            cases.append({"name": FANOUT, "case": 5,
                          "mcgate": {k: fan.get(k) for k in (
                              "agents", "probes", "probe_audience", "probe_p50_ms",
                              "probe_p99_ms", "command", "heartbeat_ms",
                              "idle_controller_cpu_pct")},
                          "baseline": {"target_p99_ms": limit},
                          "source": source,
                          "note": (f"ran in this run: {fan.get('command')}"
                                   if source == "this run" else lg_note),
                          "target": f"p99 < {limit} ms to all {fan.get('probe_audience')} agents",
                          "target_met": fan["probe_p99_ms"] < limit})
    pj, pj_note = perfjs
    if pj:
        for r in pj.get("results", []):
            cases.append({"name": "mcgate perf vs iperf 2", "case": 6, "size": r.get("size_bytes"),
                          "mcgate": {"rx_pps": r.get("mcgate_rx_pps"),
                                     "tx_pps": r.get("mcgate_tx_pps"),
                                     "rx_pps_runs": r.get("mcgate_rx_pps_runs")},
                          "baseline": {"system": "iperf 2", "rx_pps": r.get("iperf_rx_pps"),
                                       "tx_pps": r.get("iperf_tx_pps"),
                                       "rx_pps_runs": r.get("iperf_rx_pps_runs")},
                          "ratio": r.get("ratio"), "source": "bench/perf-vs-iperf.json",
                          "note": pj_note, "target": "none set; bar used: ratio >= 1.0",
                          "target_met": bool(r.get("ratio") is not None and r["ratio"] >= 1.0)})
    elif pj_note:
        cases.append({"name": "mcgate perf vs iperf 2", "case": 6, "mcgate": {}, "baseline": {},
                      "note": pj_note, "target": "none set", "target_met": False})
    return dict(meta, cases=cases, profile_sender_agent=profile)


def rnd(x, nd):
    return None if x is None else round(x, nd)
