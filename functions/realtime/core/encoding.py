"""JSON and timestamps exactly as they travel on the wire and sit in the tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def compact_json(value: Any) -> str:
    # ensure_ascii=False keeps non-ASCII text at its UTF-8 size, which is what the size limits count.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def nesting_depth(value: Any, limit: int) -> int:
    """How many objects and lists deep `value` goes (a scalar: 0), counted no further than `limit` + 1.

    Level by level, without recursion: the value may be nested deeper than Python's stack allows.
    """
    depth, level = 0, [value]
    while depth <= limit:
        containers = [node for node in level if isinstance(node, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for node in containers for child in (node.values() if isinstance(node, dict) else node)]
    return depth


def format_timestamp(moment: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: 2026-11-26T10:00:00.000Z (fixed width, so strings sort as times)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def timestamp_at(epoch_seconds: float) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch_seconds, UTC))


def aware_datetime(value: object, name: str) -> datetime | None:
    """An ISO 8601 date-time string with a time zone (`name` is the field, for the errors), as a datetime;
    None stays None, and a datetime is taken as it is. ValueError for anything else."""
    if value is None or isinstance(value, datetime):
        return value
    problem = f"{name} must be an ISO 8601 date-time string with a time zone, e.g. 2026-11-26T10:00:00Z"
    if not isinstance(value, str):
        raise ValueError(problem)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(problem) from None
    if moment.tzinfo is None:
        raise ValueError(problem)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} is outside the years 1 to 9999 in UTC") from None
    return moment


def parse_timestamp(value: str | None) -> float | None:
    """Epoch seconds of a stored ISO timestamp (None stays None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
