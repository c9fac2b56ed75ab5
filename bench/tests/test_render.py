"""BENCHMARKS.md is rendered from bench-results.json alone, and every sentence follows the
run's figures: run with `python3 -m unittest discover -s bench/tests` from the repository
root (scripts/test does)."""

import copy
import json
import re
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(ROOT / "bench"))

from mcgate_bench.render import markdown  # noqa: E402

RESULTS = json.loads((ROOT / "bench-results.json").read_text())


def case(res, name):
    return next(x for x in res["cases"] if x["name"] == name)


def prose(text):
    """The lines that are sentences: not tables, headings, code or notes."""
    return [ln for ln in text.splitlines()
            if ln and not ln.startswith(("|", "#", "    ", "```", "- "))]


class Render(unittest.TestCase):
    def test_committed_report_is_the_committed_results_rendered(self):
        self.assertEqual(markdown(RESULTS), (ROOT / "BENCHMARKS.md").read_text())

    def test_same_sections_and_tables_as_the_committed_report(self):
        text = markdown(RESULTS)
        heads = [ln for ln in text.splitlines() if ln.startswith(("#", "|---"))]
        self.assertIn("## Targets", heads)
        self.assertIn("## 1. Cross-host replication (mcgate vs kernel VXLAN head-end "
                      "replication)", heads)
        self.assertIn("## 4. Membership speed across hosts", heads)
        rows = [ln for ln in text.splitlines() if ln.startswith("| 1. cross-host")]
        self.assertEqual(len(rows), sum(1 for x in RESULTS["cases"] if x["case"] == 1))

    def test_no_fixed_conclusions(self):
        text = markdown(RESULTS)
        for fixed in ["tens of milliseconds", "every 250 ms", "2.0-3.25 s",
                      "below saturation every remote got every datagram", "about 2.0 s"]:
            self.assertNotIn(fixed, text)

    def test_host_loss_sentences_follow_the_figures(self):
        res = copy.deepcopy(RESULTS)
        m = case(res, "host loss to removal")["mcgate"]
        m["runs_s"], m["median_s"], m["max_s"] = [2.5, 2.6, 3.2], 2.6, 3.2
        case(res, "host loss to removal")["target_met"] = False
        text = markdown(res)
        self.assertIn("2.500, 2.600, 3.200 s after the kill", text)
        limit = case(res, "host loss to removal").get("limit_s", 3.0)
        self.assertIn(f"{abs(limit - 3.2) * 1000:.0f} ms over the {limit:g} s target", text)
        self.assertIn(f"max 3.2 s against < {limit:g} s over 3 kill(s).", text)

    def test_every_sentence_moves_with_its_figures(self):
        """Scale every figure of the results: each prose line that holds a number must
        change, or it holds a number that is not the run's."""
        def scaled(v):
            if isinstance(v, bool):
                return v
            if isinstance(v, (int, float)):
                return v * 3 + 7
            if isinstance(v, list):
                return [scaled(x) for x in v]
            if isinstance(v, dict):
                return {k: scaled(x) for k, x in v.items()}
            return v

        res = copy.deepcopy(RESULTS)
        res["cases"] = scaled(res["cases"])
        before = prose(markdown(RESULTS))
        after = set(prose(markdown(res)))
        # Numbers that name the method, not a figure: sizes in the text of the cases, the
        # targets, the documented tool names.
        constant = re.compile(r"\b(64|1470|50|3|2|1|0\.1|99\.9|20|1000|10|16)\b")
        for line in before:
            digits = re.sub(r"`[^`]*`|\([^)]*\.json[^)]*\)", "", line)
            if re.search(r"\d", constant.sub("", digits)) and line in after:
                self.fail(f"a sentence did not follow its figures: {line}")


if __name__ == "__main__":
    unittest.main()


class Encryption(unittest.TestCase):
    def test_encrypted_and_unencrypted_relay_rows_make_the_cost_table(self):
        from mcgate_bench.render import section_encryption
        rows = []
        for dp, pps in [("userspace", 70000), ("userspace+vxlan", 100000)]:
            rows.append({"case": 1, "dataplane": dp, "size": 1470, "remote_hosts": 1,
                         "mcgate": {"pps": pps}, "baseline": {"pps": 50000}})
        out = []
        section_encryption(out.append, rows)
        line = next(ln for ln in out if ln.startswith("| 1470 B"))
        self.assertEqual(line, "| 1470 B | 1 | 70000 | 100000 | 0.70 | 50000 | 1.40 |")
        # Without the unencrypted relay's rows there is no table.
        out = []
        section_encryption(out.append, rows[:1])
        self.assertEqual(out, [])


class ControlPlaneScale(unittest.TestCase):
    def test_fanout_probe_figures_make_their_own_row(self):
        res = copy.deepcopy(RESULTS)
        scale = case(res, "control-plane scale")
        scale["baseline"] = {"target_converge_ms": 3000, "target_peak_rss_mb": 500}
        scale["mcgate"]["converge_ms"] = 6000.0
        res["cases"].append({
            "name": "one change to every agent", "case": 5,
            "mcgate": {"agents": 1000, "probes": 50, "probe_audience": 1000,
                       "probe_p50_ms": 7.25, "probe_p99_ms": 31.5, "command": "loadgen x",
                       "heartbeat_ms": 1000, "idle_controller_cpu_pct": 25.84},
            "baseline": {"target_p99_ms": 20}, "source": "this run",
            "note": "ran in this run", "target": "p99 < 20 ms to all 1000 agents",
            "target_met": False})
        text = markdown(res)
        self.assertIn("every one of the 1000 agents of its domain applied it, 50 times: "
                      "p50 7.2 ms, p99 31.5 ms", text)
        self.assertIn("p50 7.2 ms, p99 31.5 ms | **not met**", text)
        self.assertIn("(2.0x the 3 s target)", text)
        self.assertIn("heartbeating every 1000 ms and nothing else happening (a keepalive "
                      "line on each stream every second), the controller used 25.8% of one "
                      "CPU.", text)
