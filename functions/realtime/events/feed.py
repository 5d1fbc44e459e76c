"""`GET /events`: a caller's events after a cursor, with optional long polling."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from realtime.core.contract import DEFAULT_PAGE_EVENTS, MAX_PAGE_EVENTS, MAX_WAIT_SECONDS
from realtime.core.errors import BadRequest
from realtime.events import cursor as cursor_codec
from realtime.events.store import EventStore

POLL_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True)
class FeedRequest:
    positions: dict[str, int]
    limit: int = DEFAULT_PAGE_EVENTS
    wait_seconds: float = 0.0

    @classmethod
    def from_query(cls, params: Mapping[str, str] | None) -> FeedRequest:
        params = params or {}
        positions: dict[str, int] = {}
        if params.get("cursor"):
            try:
                positions = cursor_codec.decode(params["cursor"])
            except ValueError as error:
                raise BadRequest("invalid_cursor", str(error)) from None
        return cls(positions=positions, limit=_limit(params.get("limit")), wait_seconds=_wait(params.get("wait")))


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_EVENTS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_EVENTS:
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


@dataclass(frozen=True)
class FeedPage:
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
        poll_interval: float = POLL_INTERVAL_SECONDS,
    ) -> None:
        self._store = store
        self._sleep = sleep
        self._monotonic = monotonic
        self._poll_interval = poll_interval

    def read(self, topics: Sequence[str], request: FeedRequest, *, max_seconds: float | None = None) -> FeedPage:
        """One page of the caller's events; with `wait`, re-query until one arrives or time is up.

        Positions for topics the caller is not granted are ignored; `max_seconds`
        caps the wait (the Lambda's remaining time minus a margin).
        """
        positions = {topic: request.positions.get(topic, 0) for topic in topics}
        wait = request.wait_seconds if max_seconds is None else max(0.0, min(request.wait_seconds, max_seconds))
        deadline = self._monotonic() + wait
        while True:
            result = self._store.read_after(topics, positions, request.limit)
            remaining = deadline - self._monotonic()
            if result.events or remaining <= 0:
                break
            self._sleep(min(self._poll_interval, remaining))
        return FeedPage(
            events=[event.body for event in result.events],
            cursor=cursor_codec.encode(result.positions),
            has_more=result.has_more,
        )
