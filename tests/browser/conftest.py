"""Browser tests run the demo page in Chromium against the whole stack on the emulator.

The session fixtures (`stack`, `aws`, `secret`, `token`) live in tests/conftest.py,
so every suite in one pytest run shares one stack.
"""

from __future__ import annotations

import json
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def pytest_terminal_summary(terminalreporter, config):
    path = getattr(config, "browser_timings", None)
    if path is not None and path.exists():
        terminalreporter.section("Browser client timings (Chromium, emulator)")
        for name, values in json.loads(path.read_text()).items():
            terminalreporter.write_line(f"{name}: {', '.join(str(v) for v in values)} ms")
