"""Follow the functions' logs on the local stack, from the emulator's CloudWatch Logs API.

    python -m scripts.local.logs [FUNCTION ...] [--correlation-id ID] [--since 10m] [--no-follow]

FUNCTION is a key of the module's function map (process-events, ws-connect, ...);
none means every function. ministack writes each invocation's output to the
function's log group, as Lambda does, so this reads what `aws logs tail` would.
Powertools' JSON lines print as time, function, level, message, correlation id
and the line's own extra fields (times in UTC); other output (a traceback) prints
as it is, and metrics records not at all.
``--correlation-id`` keeps the lines of one event, connection or request.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import EndpointConnectionError

from scripts.local.emulator import LOCAL_ENDPOINTS, emulator_client, read_endpoints

# Lambda's own lines around each invocation; the function's output is what matters here.
PLATFORM_LINE = re.compile(r"^(START|END|REPORT) RequestId: ")
# Powertools fields every line carries, shown in the columns or not at all.
STANDARD_FIELDS = {
    "level", "location", "message", "timestamp", "service", "cold_start", "function_name",
    "function_memory_size", "function_arn", "function_request_id", "correlation_id", "xray_trace_id", "sampling_rate",
}  # fmt: skip
DURATION = re.compile(r"^(\d+)([smh])$")


def parse_since(text: str) -> int:
    """'90s', '10m', '2h' -> epoch milliseconds that long ago."""
    match = DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number and s, m or h (e.g. 10m)")
    seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
    return int((time.time() - seconds) * 1000)


def format_line(function: str, event: dict, correlation_id: str | None) -> str | None:
    """One log event as a line to print, or None when it is filtered out."""
    message = event["message"].rstrip("\n")
    if PLATFORM_LINE.match(message):
        return None
    try:
        record = json.loads(message)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return None if correlation_id else f"{clock(event['timestamp'])} {function:<16} {message}"
    if "_aws" in record:  # a metrics record (embedded metric format): the dashboard's, not a log line
        return None
    if correlation_id and record.get("correlation_id") != correlation_id:
        return None
    extra = " ".join(
        f"{key}={json.dumps(value, separators=(',', ':'))}"
        for key, value in record.items()
        if key not in STANDARD_FIELDS
    )
    parts = [
        clock(event["timestamp"]),
        f"{function:<16}",
        f"{record.get('level', ''):<7}",
        str(record.get("message", "")),
        f"[{record['correlation_id']}]" if record.get("correlation_id") else "",
        extra,
    ]
    return " ".join(part for part in parts if part)


def clock(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]


class LogFollower:
    """Reads new events from each log group since the last read; each event is returned once."""

    def __init__(self, logs_client, groups: dict[str, str], start_ms: int):
        self.logs = logs_client
        self.groups = groups  # function -> log group name
        self.since = dict.fromkeys(groups, start_ms)
        # Events at the last timestamp read, already returned: the next read starts at that timestamp again.
        self.seen_at_boundary: dict[str, Counter] = {function: Counter() for function in groups}

    def read(self) -> list[tuple[str, dict]]:
        found = []
        for function, group in self.groups.items():
            found += [(function, event) for event in self._read_group(function, group)]
        return sorted(found, key=lambda item: item[1]["timestamp"])

    def _read_group(self, function: str, group: str) -> Iterable[dict]:
        paginator = self.logs.get_paginator("filter_log_events")
        pages = paginator.paginate(logGroupName=group, startTime=self.since[function])
        try:
            events = [event for page in pages for event in page["events"]]
        except self.logs.exceptions.ResourceNotFoundException:
            return []  # no invocation yet: the group appears with its first lines
        already = self.seen_at_boundary[function]
        fresh = []
        for event in events:
            key = (event.get("logStreamName"), event["timestamp"], event["message"])
            if already[key] > 0:
                already[key] -= 1
                continue
            fresh.append(event)
        if events:
            last = max(event["timestamp"] for event in events)
            self.since[function] = last
            self.seen_at_boundary[function] = Counter(
                (event.get("logStreamName"), event["timestamp"], event["message"])
                for event in events
                if event["timestamp"] == last
            )
        return fresh


def log_groups(endpoints: dict, functions: list[str]) -> dict[str, str]:
    groups = endpoints["log_group_names"]
    unknown = sorted(set(functions) - set(groups))
    if unknown:
        names = ", ".join(sorted(name for name in groups if name in endpoints["function_names"]))
        raise SystemExit(f"no function {', '.join(unknown)} in this stack; its functions: {names}")
    return {function: groups[function] for function in functions or sorted(endpoints["function_names"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="*", metavar="FUNCTION", help="function keys (default: all)")
    parser.add_argument("--correlation-id", help="only lines with this correlation id")
    parser.add_argument("--since", type=parse_since, default="10m", help="start this long ago (default 10m)")
    parser.add_argument("--no-follow", action="store_true", help="print what is there and stop")
    parser.add_argument("--endpoints", type=Path, default=LOCAL_ENDPOINTS, help="the stack's endpoints.json")
    args = parser.parse_args()
    endpoints = read_endpoints(args.endpoints)
    follower = LogFollower(emulator_client(endpoints, "logs"), log_groups(endpoints, args.functions), args.since)
    try:
        while True:
            for function, event in follower.read():
                line = format_line(function, event, args.correlation_id)
                if line:
                    print(line, flush=True)
            if args.no_follow:
                return
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    except EndpointConnectionError as error:
        sys.exit(f"the emulator does not answer ({error}): `make status` shows what is running")


if __name__ == "__main__":
    main()
