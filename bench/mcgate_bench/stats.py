"""Percentiles of measured samples, as the probe scripts (`bench/membership.py`,
`bench/udp_latency.py`) report them."""


def pct(vals, p):
    """The `p`th percentile of `vals` (nearest rank), or None when there are none."""
    if not vals:
        return None
    v = sorted(vals)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))]


def summary(vals, ps):
    """`{"p50": ..., "p99": ..., "max": ...}` for each percentile of `ps`; None where
    `vals` is empty."""
    out = {f"p{p}": pct(vals, p) for p in ps}
    out["max"] = max(vals) if vals else None
    return out
