"""Runs tests/browser/demo.test.mjs (node:test + playwright-core + Debian's Chromium)
against the demo server on the `stack` fixture, and reports its timings. Two users get
450 events stored straight into the events table first (HISTORY_USERS, for the tests of
where the browser client starts)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from stored_events import write_events

from scripts.local.demo_server import BackgroundServer
from scripts.local.emulator import port_in_use

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@contextlib.contextmanager
def demo_page(stack: dict) -> Iterator[str]:
    """The demo server on the port whose origin the stack's HTTP API allows (CORS): `make up`'s, or one of ours."""
    port = stack["demo_port"]
    if port_in_use(port):
        yield f"http://127.0.0.1:{port}"
        return
    with BackgroundServer(stack, port=port) as demo:
        yield demo.url


def test_demo_page_in_chromium(stack, events_table, request):
    node = shutil.which("node")
    assert node, "node (>= 20) is needed for the browser tests"
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test-browser` installs Debian's chromium"
    assert (ROOT / "node_modules" / "playwright-core").is_dir(), "run `npm ci` (make test-browser does)"
    ARTIFACTS.mkdir(exist_ok=True)
    history = {}
    for since in ("now", "retention"):
        user = f"hist-{since}-{uuid.uuid4().hex[:8]}"
        history[since] = {"user": user, "ids": [e["id"] for e in write_events(events_table, f"user:{user}", 450)]}
    with demo_page(stack) as demo_url:
        result = subprocess.run(
            [node, "--test", "--test-concurrency=1", "--test-reporter=spec", "tests/browser/demo.test.mjs"],
            cwd=ROOT,
            env={
                **os.environ,
                "DEMO_URL": demo_url,
                "CHROMIUM": CHROMIUM,
                "ARTIFACTS": str(ARTIFACTS),
                "HISTORY_USERS": json.dumps(history),
            },
            capture_output=True,
            text=True,
            timeout=600,
        )
    print(result.stdout[-20000:])
    print(result.stderr[-5000:])
    assert result.returncode == 0, f"browser tests failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
    request.config.browser_timings = ARTIFACTS / "browser-timings.json"  # reported by conftest.py
    assert (ARTIFACTS / "demo-page.png").stat().st_size > 10_000
