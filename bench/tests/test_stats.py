import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcgate_bench.stats import pct, summary  # noqa: E402


class Stats(unittest.TestCase):
    def test_nearest_rank_percentiles(self):
        vals = [5, 1, 4, 2, 3]
        self.assertEqual(pct(vals, 50), 3)
        self.assertEqual(pct(vals, 99), 5)
        self.assertEqual(pct(vals, 0), 1)
        self.assertIsNone(pct([], 50))

    def test_summary_keys_in_order(self):
        s = summary([10, 30, 20], (50, 90, 99))
        self.assertEqual(list(s), ["p50", "p90", "p99", "max"])
        self.assertEqual(s["p50"], 20)
        self.assertEqual(s["max"], 30)
        self.assertEqual(summary([], (50,)), {"p50": None, "max": None})


if __name__ == "__main__":
    unittest.main()
