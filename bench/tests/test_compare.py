import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcgate_bench.compare import compare, render  # noqa: E402


def case(pps, p99=None, size=64):
    c = {"name": "cross-host replication", "case": 1, "dataplane": "userspace",
         "size": size, "remote_hosts": 1, "ratio": pps / 100,
         "mcgate": {"pps": pps, "runs_pps": [pps, pps]}, "target_met": True}
    if p99 is not None:
        c["added_p99_us"] = p99
    return c


class CompareTest(unittest.TestCase):
    def test_figures_pair_by_case_identity_and_path(self):
        old = {"cases": [case(100, p99=20.0), case(50, size=1470)]}
        new = {"cases": [case(50, size=1470), case(200, p99=10.0)]}
        rows = {(k, p): (o, n, r) for k, p, o, n, r in compare(old, new)}
        key = "cross-host replication / userspace / 64 / 1"
        self.assertEqual(rows[(key, "mcgate.pps")], (100.0, 200.0, 2.0))
        self.assertEqual(rows[(key, "added_p99_us")], (20.0, 10.0, 0.5))
        self.assertEqual(rows[(key, "ratio")], (1.0, 2.0, 2.0))
        # Per-run lists and verdicts are not figures.
        self.assertFalse(any("runs_pps" in p or p == "target_met" for _, p in rows))

    def test_cases_on_one_side_only_and_zero_baselines(self):
        old = {"cases": [case(0), dict(case(10), name="gone")]}
        new = {"cases": [case(5)]}
        rows = compare(old, new)
        pps = [r for r in rows if r[1] == "mcgate.pps" and r[0].startswith("cross")]
        self.assertEqual(pps[0][2:], (0.0, 5.0, None))
        gone = [r for r in rows if r[0].startswith("gone")]
        self.assertTrue(gone and all(r[3] is None for r in gone))
        text = render(rows, "old.json", "new.json")
        self.assertIn("NEW/OLD", text.splitlines()[0])
        self.assertIn("2.00x", render(compare({"cases": [case(1)]}, {"cases": [case(2)]}), "a", "b"))


if __name__ == "__main__":
    unittest.main()
