"""The keepalive soak's accounting (scripts/lab/keepalive_soak.py) and the emulator's invocation counter's
triggers (scripts/lab/counted_emulator.py), without a stack: what a run must fail on, it fails on."""

from __future__ import annotations

import json

import pytest

from scripts.lab.counted_emulator import Counts as InvocationCounts
from scripts.lab.counted_emulator import trigger
from scripts.lab.keepalive_soak import (
    EVENT_TYPE,
    Allowance,
    Deliveries,
    Receipts,
    Result,
    by_key,
    deliveries,
    delta,
    established,
    jobs_per_event,
    ping_times,
    rate_seconds,
    render,
    route_invocations,
    ticks,
    unexplained,
)

NAMES = {"ws-connect": "rt-ws-connect", "process-events": "rt-process-events", "fanout": "rt-fanout"}
ALLOWED = Allowance(events=120, events_queue="rt-events", fanout_jobs_per_event=1, maintenance_ticks=3)


# --- the counter's triggers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"requestContext": {"routeKey": "$connect", "eventType": "CONNECT"}}, ("route $connect", 1)),
        ({"requestContext": {"routeKey": "GET /events"}, "rawPath": "/events"}, ("route GET /events", 1)),
        (
            {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:0:rt-events"}] * 3},
            ("sqs rt-events", 3),
        ),
        (
            {"Records": [{"eventSource": "aws:dynamodb", "eventSourceARN": "arn:aws:dynamodb:r:0:table/t/stream/x"}]},
            ("dynamodb t", 1),
        ),
        ({}, ("direct", 1)),  # a schedule's payload, or the Invoke API's
        (["not", "a", "dict"], ("direct", 1)),
    ],
)
def test_the_counter_names_what_triggered_an_invocation(event, expected):
    assert trigger(event) == expected


def test_the_counter_writes_invocations_and_records_per_function(tmp_path):
    counts = InvocationCounts(tmp_path / "counts.json")
    counts.add("rt-process-events", {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": "a:b:rt-events"}] * 2})
    counts.add("rt-ws-connect", {"requestContext": {"routeKey": "$connect"}})
    counts.write()
    written = json.loads((tmp_path / "counts.json").read_text())
    assert written["invocations"] == {"rt-process-events": {"sqs rt-events": 1}, "rt-ws-connect": {"route $connect": 1}}
    assert written["records"]["rt-process-events"] == {"sqs rt-events": 2}


# --- counts between snapshots ---------------------------------------------------------------------


def test_counts_are_keyed_by_function_and_only_growth_is_kept():
    before = by_key({"rt-ws-connect": {"route $connect": 5}}, NAMES)
    after = by_key({"rt-ws-connect": {"route $connect": 8}, "rt-process-events": {"sqs rt-events": 2}}, NAMES)
    assert delta(before, after) == {"ws-connect": {"route $connect": 3}, "process-events": {"sqs rt-events": 2}}
    assert delta(after, after) == {}
    assert route_invocations(after) == {"$connect": 8}


def test_a_window_with_only_events_and_the_schedule_is_explained():
    invocations = {
        "process-events": {"sqs rt-events": 118},  # a few batches of two
        "fanout": {"sqs rt-fanout-jobs": 120},
        "maintenance": {"direct": 2},
    }
    records = {"process-events": {"sqs rt-events": 120}, "fanout": {"sqs rt-fanout-jobs": 120}}
    assert unexplained(invocations, records, ALLOWED) == []


@pytest.mark.parametrize(
    ("invocations", "records", "blamed"),
    [
        ({"ws-connect": {"route ping": 1}}, {}, "ws-connect: 1 invocations by route ping"),
        ({"events-api": {"route $default": 3}}, {}, "events-api: 3 invocations by route $default"),
        ({"ws-disconnect": {"route $disconnect": 1}}, {}, "ws-disconnect"),
        (  # a keepalive written as an event would show here
            {"process-events": {"sqs rt-events": 121}},
            {"process-events": {"sqs rt-events": 121}},
            "121 events-queue records for 120 events",
        ),
        ({"process-events": {"sqs rt-events": 100}}, {"process-events": {"sqs rt-events": 100}}, "100 events-queue"),
        ({"process-events": {"sqs rt-presence-events": 4}}, {}, "process-events: 4 invocations by sqs rt-presence"),
        ({"fanout": {"sqs rt-fanout-jobs": 121}}, {}, "fanout: 121 invocations"),
        ({"maintenance": {"direct": 4}}, {}, "maintenance: 4 runs"),
    ],
)
def test_anything_else_in_the_window_is_a_problem(invocations, records, blamed):
    found = unexplained(invocations, records, ALLOWED)
    assert len(found) == 1
    assert blamed in found[0]


def test_allowances_from_the_configuration():
    assert jobs_per_event(1000, threshold=500, page_size=1000) == 1
    assert jobs_per_event(100, threshold=500, page_size=1000) == 0
    assert jobs_per_event(2600, threshold=500, page_size=1000) == 3
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("cron(0 * * * ? *)") is None
    assert ticks(600, 300) == 3
    assert ticks(120, 300) == 1
    assert ticks(600, None) is None


# --- what the sockets got ---------------------------------------------------------------------------


def frame(event_id: str, type_: str = EVENT_TYPE) -> str:
    return json.dumps({"type": type_, "id": event_id, "seq": 1, "topic": "group:g"})


def test_receipts_count_pongs_events_and_other_frames():
    receipts = Receipts()
    for raw in ['{"type":"pong"}', frame("e1"), frame("e1"), frame("p1", "presence.online"), "not json", "[1]"]:
        receipts.frame(raw, 10.0)
    assert receipts.pongs == 1
    assert receipts.events == {"e1": 2}
    assert receipts.first_at == {"e1": 10.0}
    assert receipts.other_frames == 3


def test_deliveries_find_missing_duplicated_and_unexpected_events():
    sent = {"e1": 1.0, "e2": 2.0}
    whole, short, doubled, stranger = Receipts(), Receipts(), Receipts(), Receipts()
    for receipts, ids in (
        (whole, ["e1", "e2"]),
        (short, ["e1"]),
        (doubled, ["e1", "e2", "e2"]),
        (stranger, ["e1", "e2", "x"]),
    ):
        for event_id in ids:
            receipts.frame(frame(event_id), 3.0)
    summary = deliveries([whole, short, doubled, stranger], sent)
    assert (summary.expected, summary.received, summary.missing) == (8, 7, 1)
    assert (summary.duplicates, summary.unexpected, summary.sockets_complete) == (1, 1, 1)
    assert sorted(summary.latencies) == [1.0] * 3 + [2.0] * 4  # e2 (sent at 2.0) reached three sockets


def test_each_socket_pings_once_an_interval_after_its_jitter():
    assert ping_times(12.5, 60, 600) == [12.5 + 60 * n for n in range(10)]
    assert ping_times(0, 60, 120) == [0, 60]
    assert ping_times(59.9, 60, 120) == [59.9, 119.9]
    assert ping_times(59.9, 60, 119) == [59.9]
    assert ping_times(30, 60, 20) == []


# --- the verdict and the report ---------------------------------------------------------------------


def passing_result() -> Result:
    result = Result(
        sockets=2,
        minutes=1,
        ping_interval=60,
        event_every=5,
        concurrency=2,
        group_presence=False,
        command="python -m scripts.lab.keepalive_soak --sockets 2 --minutes 1",
        started_at="2026-12-06 00:00 UTC",
        opened=2,
        open_seconds=0.5,
        pings=2,
        pongs=2,
        sockets_pings_equal_pongs=2,
        events=12,
        delivery=Deliveries(24, 24, 0, 0, 0, 2, [0.1] * 24),
        allowance=Allowance(12, "rt-events", 0, 1),
        window_seconds=60,
    )
    result.phases = {
        "opening": {"ws-connect": {"route $connect": 2}, "process-events": {"sqs rt-presence-events": 1}},
        "window": {"process-events": {"sqs rt-events": 12}},
        "closing": {"ws-disconnect": {"route $disconnect": 2}},
    }
    result.window_records = {"process-events": {"sqs rt-events": 12}}
    result.tables_end = {"connection records": 0}
    return result


def test_a_clean_run_passes_and_its_report_says_so():
    result = passing_result()
    assert result.problems() == []
    text = render(result)
    assert "**PASSED**" in text
    assert "| ws-connect | 2 | 0 | 0 | 2 | 0 | 0 |" in text
    assert "| pings sent / pongs received | 2 / 2 (equal on 2 of 2 sockets) |" in text
    assert "connects/s while opening | 4.0" in text


@pytest.mark.parametrize(
    ("change", "blamed"),
    [
        ({"pongs": 1}, "2 pings sent, 1 pongs received"),
        ({"dropped": ["closed 1006"]}, "1 sockets dropped"),
        ({"open_failures": ["socket 1: TimeoutError"]}, "1 sockets did not open"),
        ({"delivery": Deliveries(24, 23, 1, 0, 0, 1, [])}, "1 (socket, event) pairs missing"),
        ({"delivery": Deliveries(24, 24, 0, 2, 0, 1, [])}, "2 duplicates"),
        ({"tables_end": {"connection records": 3}}, "3 connection records left"),
        ({"events": 0}, "no event was published"),
    ],
)
def test_a_run_fails_on(change, blamed):
    result = passing_result()
    for name, value in change.items():
        setattr(result, name, value)
    problems = result.problems()
    assert any(blamed in problem for problem in problems), problems
    assert "**FAILED**" in render(result)


def test_a_run_fails_when_a_ping_or_a_missing_connect_shows_in_the_counts():
    result = passing_result()
    result.phases["window"]["ws-connect"] = {"route ping": 2}
    result.phases["opening"]["ws-connect"] = {"route $connect": 1}
    problems = result.problems()
    assert any("keepalive routes invoked functions: {'ping': 2}" in p for p in problems), problems
    assert any("ws-connect: 2 invocations by route ping" in p for p in problems), problems
    assert any("ws-connect ran 3 times for 2 sockets opened" in p for p in problems), problems


def test_established_connections_are_read_from_the_kernel_table(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000\n"  # 127.0.0.1:8080, established
        "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n"  # listening
        "   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000\n"  # the client's side
    )
    assert established(8080, str(table)) == 1
    assert established(8080, str(tmp_path / "absent")) == 0
