"""The Python client against contract/: the logic cases it shares with the
browser client (contract/vectors/client.json), the cursor (cursor.json) and
the server limits it uses.
It validates no topics, so the grammar vectors have nothing to run here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from realtime_client import Backoff, EventTracker, PresenceTracker, RealtimeClient, decode_cursor, encode_cursor
from realtime_client.client import TOKEN_EXPIRED
from realtime_client.tracker import MAX_SEQ

from .contract import load

WIRE = load("wire.json")
VECTORS = load("vectors/client.json")
CURSOR = load("vectors/cursor.json")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def frame(value: Any) -> Any:
    """A frame as the vectors write it: 'topic#seq' shorthand, or the object itself."""
    if not isinstance(value, str):
        return value
    topic, _, seq = value.rpartition("#")
    return {
        "id": value,
        "type": "test.event",
        "topic": topic,
        "seq": int(seq),
        "data": {},
        "occurredAt": "2026-11-26T10:00:00.000Z",
        "publishedAt": f"2026-11-26T10:00:00.{int(seq):03d}Z",
    }


def cursor(value: Any) -> Any:
    return encode_cursor(value["v1"]) if isinstance(value, dict) else value


def keys(events: list[dict]) -> list[str]:
    return [f"{event['topic']}#{event['seq']}" for event in events]


def assert_cursor(actual: str | None, expected: Any) -> None:
    if isinstance(expected, dict):
        assert decode_cursor(actual) == expected["v1"], f"{actual!r} does not decode to {expected['v1']}"
    else:
        assert actual == expected


def assert_query(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    if "cursor" in expected:
        assert_cursor(actual["cursor"], expected["cursor"])
    else:
        assert actual == expected


def page(value: dict) -> dict:
    events = value.get("events")
    return {
        **value,
        "events": [frame(e) for e in events] if isinstance(events, list) else events,
        "cursor": cursor(value.get("cursor")),
    }


def assert_delivered(events: list[dict], step: dict) -> None:
    assert keys(events) == step["deliver"]
    if "deliverSeqs" in step:
        assert [event["seqs"] for event in events] == step["deliverSeqs"]


def run_step(tracker: EventTracker, step: dict) -> None:
    if "live" in step:
        result = tracker.offer_live(frame(step["live"]))
        assert_delivered(result.deliver, step)
        assert result.need_sync == step.get("needSync", False)
    elif "page" in step:
        assert_delivered(tracker.apply_page(page(step["page"])), step)
    elif "beginSync" in step:
        tracker.begin_sync()
    elif "endSync" in step:
        result = tracker.end_sync(**{snake(name): value for name, value in step["endSync"].items()})
        assert_delivered(result.deliver, step)
        assert result.gap_remaining == step["gapRemaining"]
    elif "restore" in step:
        tracker.restore(cursor(step["restore"]))
    elif "reset" in step:
        tracker.reset()
    elif "fetchQuery" in step:
        assert_query(tracker.fetch_query(), step["fetchQuery"])
    elif "fetchCursor" in step:
        assert_cursor(tracker.fetch_cursor(), step["fetchCursor"])
    elif "expect" in step:
        expect = step["expect"]
        if "positions" in expect:
            assert tracker.positions == expect["positions"]
        if "syncing" in expect:
            assert tracker.syncing == expect["syncing"]
        if "serverCursor" in expect:
            assert_cursor(tracker.server_cursor, expect["serverCursor"])
        for name, value in expect.get("stats", {}).items():
            assert getattr(tracker.stats, snake(name)) == value, f"stats.{name}"
    else:
        raise AssertionError(f"unknown step {step}")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=f"{category}: {case['name']}")
        for category, cases in VECTORS["tracker"].items()
        for case in cases
    ],
)
def test_tracker(case):
    options = {snake(name): value for name, value in case.get("options", {}).items()}
    if "dedupe_by_id" in options:
        with pytest.warns(DeprecationWarning, match="dedupe_events"):
            tracker = EventTracker(**options)
    else:
        tracker = EventTracker(**options)
    for index, step in enumerate(case["steps"]):
        try:
            run_step(tracker, step)
        except AssertionError as error:
            raise AssertionError(f"step {index} {step}: {error}") from error


BACKOFF_OPTIONS = {"initialMs": "initial", "maxMs": "maximum", "factor": "factor", "jitter": "jitter"}


def backoff(options: dict, rand: float) -> Backoff:
    seconds = {BACKOFF_OPTIONS[name]: value / 1000 if name.endswith("Ms") else value for name, value in options.items()}
    return Backoff(**seconds, rand=lambda: rand)


@pytest.mark.parametrize("case", VECTORS["backoff"]["cases"], ids=lambda case: case["name"])
def test_backoff(case):
    lowest, highest = backoff(case["options"], 0.0), backoff(case["options"], 1.0)
    for step in case["steps"]:
        if step == "reset":
            lowest.reset()
            highest.reset()
        else:
            assert [lowest.next() * 1000, highest.next() * 1000] == pytest.approx(step)


@pytest.mark.parametrize("vector", CURSOR["encode"], ids=lambda vector: vector["cursor"])
def test_encode_cursor(vector):
    assert encode_cursor(vector["positions"]) == vector["cursor"]


@pytest.mark.parametrize("vector", CURSOR["decode"], ids=lambda vector: vector["name"])
def test_decode_cursor(vector):
    assert decode_cursor(vector["cursor"]) == vector["positions"]


@pytest.mark.parametrize("case", VECTORS["presence"]["cases"], ids=lambda case: case["name"])
def test_presence(case):
    presence = PresenceTracker()
    for update in case["updates"]:
        got = presence.update(frame(update["event"]))
        seen = got and {"userId": got.user_id, "online": got.online, "version": got.version}
        assert seen == update["update"], update["event"]


def test_uses_the_server_limits_and_codes():
    client = RealtimeClient("wss://ws.test", "https://api.test", lambda: "t")
    assert client.page_limit == WIRE["limits"]["pageEventsMax"]
    assert client.long_poll_wait == WIRE["limits"]["waitSecondsMax"]
    assert WIRE["limits"]["seqMax"] == MAX_SEQ
    assert WIRE["socketErrors"]["tokenExpired"] == TOKEN_EXPIRED
