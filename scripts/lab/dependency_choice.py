"""JSON and validation libraries, measured side by side: what the functions use and a faster candidate.

    python -m scripts.lab.dependency_choice [--runs 7]

For each choice, in fresh `python -I` interpreters (median of `runs`): the import of
what the functions load (the library, and for validation the producer message's
model as process-events builds it), and in one process the time of one call on
a typical message (min of 5 repeats of 20,000 calls):

- JSON: the standard library's `json` (what `realtime.core.encoding.compact_json`
  uses; boto3 imports it anyway, so a function pays nothing for it) against `orjson`;
- validation: msgspec's `ProducerMessage` (realtime/events/producer.py, what validates
  every producer message) against the pydantic model of the same fields and constraints
  (realtime/events/producer_model.py, which the functions import only to explain a refused
  message; its import includes the msgspec module it builds on).

`make bench` writes the figures into docs/benchmarks.md; docs/internals.md says what
was kept and why. orjson is a development dependency (requirements-dev.txt), never in the layer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import timeit
from typing import Any

from scripts.local.emulator import ROOT

FUNCTIONS = ROOT / "functions"
MESSAGE = json.dumps(
    {
        "type": "order.updated",
        "id": "o-123",
        "data": {"orderId": "o-123", "status": "shipped", "items": [{"sku": "a-1", "quantity": 2}]},
        "audience": ["user:alice", "group:ops"],
        "occurredAt": "2026-12-07T10:00:00Z",
    }
)
FRAME = {
    "id": "o-123",
    "key": "6GCJb0AdvzpX-Ix3",
    "type": "order.updated",
    "seqs": {"user:alice": 17},
    "data": {"orderId": "o-123", "status": "shipped", "items": [{"sku": "a-1", "quantity": 2}]},
    "occurredAt": "2026-12-07T10:00:00.000Z",
    "publishedAt": "2026-12-07T10:00:00.052Z",
}
IMPORTS = {
    "json": "import json",
    "orjson": "import orjson",
    "msgspec": "from realtime.events.producer import parse_producer_message",
    "pydantic": "from realtime.events.producer_model import ProducerMessageModel",
}
# What a process-events cold start already has loaded when these imports run (so `json` costs nothing).
PRELUDE = (
    f"import sys; sys.path[:0] = [{str(FUNCTIONS)!r}, {str(ROOT)!r}]; import boto3, time\nstart = time.perf_counter()\n"
)
CALLS = 20_000


def import_ms(code: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        script = PRELUDE + code + "\nprint((time.perf_counter() - start) * 1000)\n"
        result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True)
        samples.append(float(result.stdout))
    return round(statistics.median(samples), 1)


def call_us(function: Any) -> float:
    return round(min(timeit.repeat(function, number=CALLS, repeat=5)) / CALLS * 1e6, 2)


def measure(runs: int = 7) -> dict[str, Any]:
    import orjson

    sys.path.insert(0, str(FUNCTIONS))
    from realtime.core.encoding import compact_json
    from realtime.events.producer import parse_producer_message
    from realtime.events.producer_model import ProducerMessageModel

    expected = ProducerMessageModel.model_validate_json(MESSAGE)
    assert parse_producer_message(json.loads(MESSAGE)).audience == expected.audience
    return {
        "runs": runs,
        "json": {
            "kept": {"name": "json (standard library)", "import_ms": import_ms(IMPORTS["json"], runs)},
            "candidate": {"name": "orjson", "import_ms": import_ms(IMPORTS["orjson"], runs)},
            "call": "serialize a frame",
            "kept_us": call_us(lambda: compact_json(FRAME)),
            "candidate_us": call_us(lambda: orjson.dumps(FRAME)),
        },
        "validation": {
            "kept": {"name": "msgspec", "import_ms": import_ms(IMPORTS["msgspec"], runs)},
            "candidate": {"name": "pydantic", "import_ms": import_ms(IMPORTS["pydantic"], runs)},
            "call": "parse and validate a producer message",
            "kept_us": call_us(lambda: parse_producer_message(json.loads(MESSAGE))),
            "candidate_us": call_us(lambda: ProducerMessageModel.model_validate(json.loads(MESSAGE))),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    print(json.dumps(measure(parser.parse_args().runs), indent=2))


if __name__ == "__main__":
    main()
