"""Each function's cold start loads only what the function uses.

In a fresh interpreter per function: import its handler module and build what its
first invocation builds (realtime.services, with the dummy settings of
scripts.lab.cold_start), then look at what got imported. Each forbidden entry is a
package or module the function never needs; loading it would cost every cold start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.lab.cold_start import environment, handlers

ROOT = Path(__file__).resolve().parents[2]

TOKENS = ("jwt", "cryptography")  # only ws-connect and events-api verify tokens
VALIDATION = ("pydantic",)  # only for a refused input or rule, and event-type rules (process-events) when set
EVENT_STORE = ("realtime.events.store", "realtime.events.pipeline", "realtime.events.feed")
DELIVERY = ("realtime.events.delivery", "realtime.connections.posting")
# Powertools' HTTP router, its catalogue of event classes, and X-Ray (tracing is off here).
POWERTOOLS_EXTRAS = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
ALWAYS = ("aws_xray_sdk", "aws_lambda_powertools.utilities.parser")
DB_CHANGES = ("realtime.db_changes",)

FORBIDDEN = {
    "ws-connect": (*DB_CHANGES, *VALIDATION, *EVENT_STORE, *DELIVERY, *POWERTOOLS_EXTRAS),
    "ws-disconnect": (*DB_CHANGES, *TOKENS, *VALIDATION, *EVENT_STORE, *DELIVERY, *POWERTOOLS_EXTRAS),
    # Producer messages are validated with msgspec; pydantic only explains a refused one, or validates event-type
    # rules when there are some (none here: the module's default).
    "process-events": (*DB_CHANGES, *TOKENS, *VALIDATION, "realtime.events.feed", *POWERTOOLS_EXTRAS),
    # fanout reads the events its jobs refer to back from the store, but never stores or pages a feed.
    "fanout": (
        *DB_CHANGES,
        *TOKENS,
        *VALIDATION,
        "realtime.events.pipeline",
        "realtime.events.feed",
        *POWERTOOLS_EXTRAS,
    ),
    "events-api": (*DB_CHANGES, *VALIDATION, "realtime.events.pipeline", *DELIVERY, *POWERTOOLS_EXTRAS),
    # maintenance closes connections whose token expired with the posting code delivery uses (stdlib only).
    "maintenance": (*DB_CHANGES, *TOKENS, *VALIDATION, *EVENT_STORE, "realtime.events", *POWERTOOLS_EXTRAS),
    "presence-checks": (*DB_CHANGES, *TOKENS, *VALIDATION, *EVENT_STORE, *DELIVERY, *POWERTOOLS_EXTRAS),
    # Sources are validated with msgspec; pydantic only explains a refused one.
    "db-changes": (
        *TOKENS,
        *VALIDATION,
        *EVENT_STORE,
        *DELIVERY,
        *POWERTOOLS_EXTRAS,
        "aws_lambda_powertools.utilities.batch",
    ),
}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
getattr(importlib.import_module("realtime.services"), sys.argv[2])()
print(json.dumps(sorted(sys.modules)))
"""


def loaded_at_cold_start(function: str, module: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, function.replace("-", "_")],
        capture_output=True,
        text=True,
        env={**environment(function), "PYTHONPATH": str(ROOT / "functions"), "HOME": os.environ.get("HOME", "/")},
        check=True,
    )
    return set(json.loads(result.stdout))


def test_every_function_has_a_forbidden_list():
    assert set(FORBIDDEN) == set(handlers())


@pytest.mark.parametrize("function", sorted(FORBIDDEN))
def test_a_cold_start_loads_nothing_the_function_does_not_use(function):
    loaded = loaded_at_cold_start(function, handlers()[function])
    forbidden = (*FORBIDDEN[function], *ALWAYS)

    found = sorted(name for name in loaded if any(name == f or name.startswith(f"{f}.") for f in forbidden))

    assert found == [], f"{function} loads {found}"
