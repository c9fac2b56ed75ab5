"""Every figure of a bench-results.json beside the same figure of an earlier one.

A case is known by its identity (name, case, data plane, size, remote hosts, rate); within
it every number is a figure, named by its path (`mcgate.pps`, `added_p99_us`), except
the per-run and per-probe lists, whose summary figures are already there. The ratio is
new / old: above 1 means more (faster for rates, slower for latencies: the reader knows
which, the unit is in the name).
"""

IDENTITY = ("name", "case", "dataplane", "size", "remote_hosts", "rate_pps")
SKIPPED = {"runs_pps", "probes_per_run", "ratio_per_run", "target_met"}


def case_key(case):
    """The identity of a case, as a readable label."""
    parts = [str(case[k]) for k in IDENTITY if k in case and k != "case"]
    return " / ".join(parts)


def figures(case, prefix=""):
    """(path, number) for every number of a case but its identity and per-run lists."""
    out = []
    for k, v in case.items():
        if k in SKIPPED or (not prefix and k in IDENTITY):
            continue
        path = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out.append((path, float(v)))
        elif isinstance(v, dict):
            out.extend(figures(v, path + "."))
    return out


def compare(old, new):
    """Rows (case, figure, old, new, ratio) for the figures both results hold; ratio is
    None when the old figure is 0. Cases or figures only one side has are listed with
    None on the other side."""
    before = {case_key(c): dict(figures(c)) for c in old.get("cases", [])}
    rows = []
    seen = set()
    for c in new.get("cases", []):
        key = case_key(c)
        seen.add(key)
        was = before.get(key, {})
        for path, value in figures(c):
            o = was.get(path)
            ratio = value / o if o not in (None, 0.0) else None
            rows.append((key, path, o, value, ratio))
    for key, was in before.items():
        if key not in seen:
            rows.extend((key, path, o, None, None) for path, o in was.items())
    return rows


def render(rows, old_label, new_label):
    """The rows as an aligned text table."""
    def num(x):
        if x is None:
            return "-"
        return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:.4g}"

    table = [("CASE", "FIGURE", old_label, new_label, "NEW/OLD")]
    for key, path, o, n, r in rows:
        table.append((key, path, num(o), num(n), "-" if r is None else f"{r:.2f}x"))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines) + "\n"
