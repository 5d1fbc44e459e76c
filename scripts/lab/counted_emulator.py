"""ministack, counting the Lambda invocations it makes: per function, and per what triggered each.

    .venv-ministack/bin/python scripts/lab/counted_emulator.py   (environment as for `ministack`, plus
    LAB_INVOCATION_COUNTS=<file>)

The emulator writes no START lines for the invocations a WebSocket route makes (nor anything else of
them) and publishes its `AWS/Lambda` metrics only for the Invoke API, so neither counts every call.
Every invocation of a Python function, whatever makes it (a WebSocket route, an SQS or stream mapping,
a schedule, the HTTP API, the Invoke API), is one `Worker.invoke` of ministack's warm worker pool. This
wraps that method (ministack itself is not changed), counts each call as it enters (before it waits
for the worker), and writes the counts to the file as JSON, at most twice a second and only when they
changed (written beside and moved, so a reader never sees half a file):

    {"written_at": <epoch s>, "invocations": {function: {trigger: n}}, "records": {function: {trigger: n}}}

A trigger is `route <routeKey>` for the gateways (`route $connect`, `route GET /events`), `sqs <queue>`
or `dynamodb <table>` for mappings (`records` counts their records), else `direct` (the Invoke API and
schedules, whose payload is the caller's). Run with ministack's interpreter; this module imports
ministack only in `main`, so `trigger` can be tested without it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

COUNTS_ENV = "LAB_INVOCATION_COUNTS"
WRITE_EVERY = 0.5  # seconds


def trigger(event: Any) -> tuple[str, int]:
    """What made an invocation with this event, and how many records it carries (1 unless a batch)."""
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict) and context.get("routeKey"):
            return f"route {context['routeKey']}", 1
        records = event.get("Records")
        if isinstance(records, list) and records and isinstance(records[0], dict):
            first = records[0]
            source = str(first.get("eventSource") or first.get("EventSource") or "records").removeprefix("aws:")
            arn = str(first.get("eventSourceARN") or first.get("EventSubscriptionArn") or "")
            name = arn.split(":")[-1].split("/")[1] if source == "dynamodb" and "/" in arn else arn.split(":")[-1]
            return f"{source} {name}".strip(), len(records)
    return "direct", 1


class Counts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.invocations: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.records: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.changed = threading.Event()

    def add(self, function: str, event: Any) -> None:
        kind, records = trigger(event)
        with self.lock:
            self.invocations[function][kind] += 1
            self.records[function][kind] += records
        self.changed.set()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "written_at": time.time(),
                "invocations": {name: dict(counts) for name, counts in self.invocations.items()},
                "records": {name: dict(counts) for name, counts in self.records.items()},
            }

    def write(self) -> None:
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(self.snapshot(), sort_keys=True))
        partial.replace(self.path)

    def keep_writing(self) -> None:
        self.write()  # an empty file at once: the reader knows the counter is there
        while True:
            self.changed.wait()
            self.changed.clear()
            self.write()
            time.sleep(WRITE_EVERY)


def main() -> None:
    from ministack.app import main as ministack_main  # only under ministack's interpreter
    from ministack.core import lambda_runtime

    counts = Counts(Path(os.environ[COUNTS_ENV]))
    invoke = lambda_runtime.Worker.invoke

    def counted_invoke(self: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        counts.add(self.func_name, event)
        return invoke(self, event, *args, **kwargs)

    lambda_runtime.Worker.invoke = counted_invoke
    threading.Thread(target=counts.keep_writing, name="lab-invocation-counts", daemon=True).start()
    ministack_main()


if __name__ == "__main__":
    main()
