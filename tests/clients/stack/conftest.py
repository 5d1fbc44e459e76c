"""The Python client against the whole stack on the emulator (the `stack` fixture).

The session fixtures (`stack`, `aws`, `secret`, `token`) live in tests/conftest.py,
so every suite in one pytest run shares one stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]

ARTIFACTS = TESTS.parent / "test-artifacts"

# Measurements reported at the end of the run and written to test-artifacts/client-timings.json.
TIMINGS: dict[str, list[float]] = {}


def record(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)
    print(f"[timing] {name}: {seconds * 1000:.0f} ms")


@pytest.fixture
def timings():
    return record


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("Python client timings (emulator)")
    for name, values in TIMINGS.items():
        shown = ", ".join(f"{v * 1000:.0f}" for v in values)
        terminalreporter.write_line(f"{name}: {shown} ms")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "client-timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")
