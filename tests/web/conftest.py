"""Shared pieces of the web view's browser tests: the mcgate binary, Debian's
chromium driven by Playwright (no browser download), a page that records console
errors, and the artifacts directory for screenshots and figures."""

import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARTIFACTS = pathlib.Path(os.environ.get("WEB_ARTIFACTS", ROOT / "target" / "web-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def mcgate():
    exe = pathlib.Path(os.environ.get("MCGATE", ROOT / "target" / "debug" / "mcgate"))
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run cargo build -p mcgate first (or set MCGATE)")
    return exe.resolve()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


class Page:
    """A browser page on the web view that keeps every console error and page error."""

    def __init__(self, browser, base):
        self.context = browser.new_context(
            ignore_https_errors=True, viewport={"width": 1600, "height": 1000}
        )
        self.page = self.context.new_page()
        self.base = base
        self.errors = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    def sign_in(self, text):
        """Opens /ui/ and pastes `text` (a token or a credential file) in the form."""
        self.page.goto(f"{self.base}/ui/")
        self.page.fill("#token", text)
        self.page.click("#login-form button[type=submit]")

    def measures(self, name):
        return self.page.evaluate(
            "(n) => performance.getEntriesByName(n).map(e => e.duration)", name
        )

    def close(self):
        self.context.close()


@pytest.fixture
def page_factory(browser, artifacts, request):
    pages = []

    def make(base):
        p = Page(browser, base)
        pages.append(p)
        return p

    yield make
    for i, p in enumerate(pages):
        # The page as the test left it, and what its console said: for a failure.
        p.page.screenshot(path=str(artifacts / f"{request.node.name}-end-{i}.png"))
        if p.errors:
            print(f"{request.node.name}: page errors: {p.errors}")
        p.close()


def record(artifacts, name, figures):
    """Writes a test's figures as JSON next to its screenshots, and prints them."""
    (artifacts / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{name}: {json.dumps(figures)}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout):
    """Polls `check` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def controller(mcgate):
    data = pathlib.Path(tempfile.mkdtemp(prefix="mcgate-web-scale-"))
    port = free_port()
    log = open(data / "controller.log", "wb")
    proc = subprocess.Popen(
        [
            str(mcgate), "controller", "--data-dir", str(data),
            "--listen", f"127.0.0.1:{port}",
            # Synthetic agents send no heartbeats: a long lease keeps them up.
            "--lease-ms", "600000",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        cred_file = data / "admin.credentials"

        def ready():
            if proc.poll() is not None:
                pytest.fail(f"the controller exited: {(data / 'controller.log').read_text()}")
            if not cred_file.exists():
                return None
            try:
                cred = json.loads(cred_file.read_text())
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return cred
            except (ValueError, OSError):
                return None

        cred = wait_for("the controller answers", ready, 30)
        yield port, cred
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        subprocess.run(["rm", "-rf", str(data)], check=False)
