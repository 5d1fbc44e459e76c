"""`GET /events`: a caller's events after a cursor (or from now), with optional long polling."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from realtime.core.contract import DEFAULT_PAGE_EVENTS, MAX_PAGE_EVENTS, MAX_WAIT_SECONDS
from realtime.core.errors import BadRequest
from realtime.events import cursor as cursor_codec
from realtime.events.store import EventStore

# A long poll looks at its topics' counters (one BatchGetItem) at these intervals, the first
# soon after the request and then less often: its cost does not grow with topics times ticks.
FIRST_TICK_SECONDS = 0.25
MAX_TICK_SECONDS = 1.0


class FeedRequest(msgspec.Struct, frozen=True):
    positions: dict[str, int]
    limit: int = DEFAULT_PAGE_EVENTS
    wait_seconds: float = 0.0
    from_now: bool = False  # since=now: start at the topics' last events instead of a cursor

    @classmethod
    def from_query(cls, params: Mapping[str, str] | None) -> FeedRequest:
        params = params or {}
        positions: dict[str, int] = {}
        if params.get("cursor"):
            try:
                positions = cursor_codec.decode(params["cursor"])
            except ValueError as error:
                raise BadRequest("invalid_cursor", str(error)) from None
        return cls(
            positions=positions,
            limit=_limit(params.get("limit")),
            wait_seconds=_wait(params.get("wait")),
            from_now=_since(params.get("since"), has_cursor=bool(params.get("cursor"))),
        )


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_EVENTS
    # ASCII digits only, and few: int() refuses other Unicode digits ('²') and over 4300 digits (a 500 before).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= MAX_PAGE_EVENTS:
        raise BadRequest("invalid_limit", f"limit must be an integer from 1 to {MAX_PAGE_EVENTS}")
    return int(raw)


def _wait(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # also false for NaN
        raise BadRequest("invalid_wait", f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return seconds


def _since(raw: str | None, *, has_cursor: bool) -> bool:
    if raw is None or raw == "":
        return False
    if raw != "now":
        raise BadRequest("invalid_since", "since must be 'now' (leave it out to read from the start of retention)")
    if has_cursor:
        raise BadRequest("invalid_since", "give a cursor or since=now, not both")
    return True


class FeedPage(msgspec.Struct, frozen=True):
    events: list[str]  # stored frames, JSON text
    cursor: str
    has_more: bool

    def to_json(self) -> str:
        # The stored frames are spliced in as they are: no re-serialization, byte-identical to WebSocket.
        return (
            '{"events":['
            + ",".join(self.events)
            + '],"cursor":'
            + json.dumps(self.cursor)
            + ',"hasMore":'
            + ("true" if self.has_more else "false")
            + "}"
        )


class EventFeed:
    def __init__(
        self,
        store: EventStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._monotonic = monotonic

    def read(self, topics: Sequence[str], request: FeedRequest, *, max_seconds: float | None = None) -> FeedPage:
        """One page of the caller's events; with `wait`, until one arrives or time is up.

        Positions for topics the caller is not granted are ignored; `max_seconds`
        caps the wait (the Lambda's remaining time minus a margin). Each look at
        the topics is one BatchGetItem over their counters; only topics that moved
        are queried.
        """
        wait = request.wait_seconds if max_seconds is None else max(0.0, min(request.wait_seconds, max_seconds))
        deadline = self._monotonic() + wait
        heads = self._store.heads(topics)
        positions = dict(heads) if request.from_now else {topic: request.positions.get(topic, 0) for topic in topics}
        for topic in topics:
            if positions[topic] > heads[topic]:
                raise BadRequest(
                    "invalid_cursor",
                    f"cursor position {positions[topic]} of {topic!r} is past its last event ({heads[topic]}): "
                    "the cursor is not from this deployment; start again without it",
                )
        tick = FIRST_TICK_SECONDS
        while True:
            result = self._store.read_after(topics, positions, request.limit, heads=heads)
            positions = result.positions
            remaining = deadline - self._monotonic()
            if result.events or remaining <= 0:
                break
            self._sleep(min(tick, remaining))
            tick = min(2 * tick, MAX_TICK_SECONDS)
            # Eventually consistent: a counter read a moment stale only delays this poll by a tick;
            # the Query of a topic that moved is strongly consistent.
            heads = self._store.heads(topics, consistent=False)
        return FeedPage(
            events=[event.body for event in result.events],
            cursor=cursor_codec.encode(positions),
            has_more=result.has_more,
        )
