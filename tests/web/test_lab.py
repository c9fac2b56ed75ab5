"""The web view on a running lab (tests/web/lab.toml, a lab name of its own): every
host and group shows; a join made in the lab appears within 2 s and a sender's rate on
its edge within 3 s, without a reload; a killed agent's host turns dead within its
lease; no console errors. Screenshots go to the artifacts directory.

Needs root (the lab makes network namespaces). Every wait is for a state of the page,
with a deadline; nothing is retried."""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from conftest import record

HERE = pathlib.Path(__file__).resolve().parent
GROUP = "233.252.0.5"
JOINED = "233.252.0.9"
# The lab's controller runs with the default lease.
LEASE_S = 3.0
# The view is sent on each change and at least every second.
WATCH_S = 1.0

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a lab needs root")


def lab(mcgate, *args, check=True):
    r = subprocess.run([str(mcgate), "lab", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        pytest.fail(f"mcgate lab {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture
def running_lab(mcgate):
    name = f"web{os.getpid() % 100000}"
    started = []
    try:
        lab(mcgate, "up", str(HERE / "lab.toml"), "--name", name)
        status = json.loads(lab(mcgate, "status", "--name", name, "--json").stdout)

        def in_lab(node, *cmd):
            """Starts `cmd` in a node of the lab, in a process group of its own (so
            that the command, a grandchild, ends with it)."""
            p = subprocess.Popen(
                [str(mcgate), "lab", "exec", node, "--name", name, "--", *cmd],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            started.append(p)
            return p

        yield name, status, in_lab
    finally:
        for p in started:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        lab(mcgate, "down", name, check=False)


def test_the_page_follows_the_lab(running_lab, mcgate, page_factory, artifacts):
    name, status, in_lab = running_lab
    ui = status["ui"]
    base = ui["url"].rstrip("/").removesuffix("/ui")
    p = page_factory(base)
    # What `lab up` says to do: paste the credential file (its token field is taken).
    p.sign_in(pathlib.Path(ui["credentials"]).read_text())
    page = p.page
    for h in ("host-a", "host-b"):
        page.wait_for_selector(f"#hosts tr[data-host='{h}'][data-state='up']", timeout=10_000)
    page.wait_for_selector(f"#groups tr[data-group='{GROUP}']", timeout=10_000)
    assert page.evaluate("window.mcgate.graph.cy.nodes('.host').length") == 2
    assert page.locator("#status").get_attribute("data-state") == "live"
    # Zones and subnets are drawn around the hosts.
    labels = page.evaluate("window.mcgate.graph.cy.nodes('.zone, .subnet').map(n => n.data('label'))")
    assert {"zone a", "zone b", "10.0.2.0/24", "10.0.3.0/24"} <= set(labels), labels
    # The group table lists the receiver's membership.
    page.wait_for_selector("#group-table tbody tr td:text-is('233.252.0.5')", timeout=5_000)
    page.screenshot(path=str(artifacts / "lab-start.png"))

    # A join in the lab: a receiver on host-b.
    mc = str(mcgate)
    t = time.monotonic()
    in_lab("spare-b-1", mc, "perf", "recv", "--group", JOINED, "--interval", "1")
    page.wait_for_function(
        """([g, h]) => {
            const tr = document.querySelector(`#groups tr[data-group='${g}']`);
            return tr && tr.cells[2].textContent.split(' ').includes(h);
        }""",
        arg=[JOINED, "host-b"],
        timeout=2_000,
    )
    join_s = time.monotonic() - t

    # A sender on host-a: its rate on the edge host-a -> host-b of the group.
    t = time.monotonic()
    in_lab("spare-a-1", mc, "perf", "send", "--group", JOINED, "--rate", "1m", "--time", "120")
    page.wait_for_function(
        "([g, f, to]) => /[0-9.]+ [kMG]?bit\\/s/.test(window.mcgate.graph.edgeLabel(g, f, to) ?? '')",
        arg=[JOINED, "host-a", "host-b"],
        timeout=3_000,
    )
    rate_s = time.monotonic() - t
    edge = page.evaluate("window.mcgate.graph.edgeLabel('233.252.0.9', 'host-a', 'host-b')")

    # Click the group: its tree lights up, its flows are listed.
    page.click(f"#groups tr[data-group='{JOINED}']")
    page.wait_for_selector("#details tr[data-flow='host-a>host-b']")
    hot = page.evaluate("window.mcgate.graph.cy.edges('.hot').map(e => e.id())")
    assert hot == [f"flow:{JOINED}:host-a:host-b"], hot
    page.screenshot(path=str(artifacts / "lab-group.png"))

    # Click a host: its links, querier state and IGMP version.
    page.click("#hosts tr[data-host='host-b']")
    page.wait_for_selector("#details table.links tbody tr")
    link_rows = page.eval_on_selector_all(
        "#details table.links tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert any(r[2] == "this agent" and r[3] == "v2" for r in link_rows), link_rows

    # The group table's filters: by host.
    page.fill("#filters input[name=host]", "host-b")
    page.wait_for_function(
        """() => { const rows = [...document.querySelectorAll('#group-table tbody tr')];
                   return rows.length > 0 && rows.every(r => r.cells[2].textContent === 'host-b'); }""",
        timeout=5_000,
    )
    page.fill("#filters input[name=host]", "")

    # The agent of host-b dies: its host turns dead within its lease.
    t = time.monotonic()
    lab(mcgate, "kill", "host-b", "--name", name)
    page.wait_for_selector(
        "#hosts tr[data-host='host-b'][data-state='expired']",
        state="attached",
        timeout=(LEASE_S + WATCH_S) * 1000,
    )
    dead_s = time.monotonic() - t
    assert page.evaluate("window.mcgate.graph.cy.getElementById('host:host-b').hasClass('dead')")
    page.click("#hosts tr[data-host='host-b']")
    page.wait_for_selector("#details dd:text-is('lease expired')")
    page.screenshot(path=str(artifacts / "lab-dead.png"))

    figures = {
        "join_seen_s": round(join_s, 3),
        "rate_on_edge_s": round(rate_s, 3),
        "edge_label": edge,
        "dead_seen_s": round(dead_s, 3),
        "lease_s": LEASE_S,
        "links_of_host_b": link_rows,
    }
    record(artifacts, "lab", figures)
    assert join_s < 2.0, figures
    assert rate_s < 3.0, figures
    assert p.errors == [], p.errors
