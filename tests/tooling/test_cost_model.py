"""What an idle connection costs (scripts/lab/cost_model.py), from the request counts `make bench` stored
(docs/benchmarks/results.json) put together with the module's current defaults (ping intervals, stale
threshold, maintenance schedule: scripts/module_defaults.py, checked against variables.tf), so a default
that changes the figures changes them here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.lab import cost_model, request_counts
from scripts.module_defaults import PING_INTERVAL_SECONDS

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "results.json"


@pytest.fixture(scope="module")
def counts():
    stored = json.loads(RESULTS.read_text())["request_counts"]
    return stored | {"connection_hour": request_counts.connection_hour(stored)}


@pytest.fixture(scope="module")
def idle(counts):
    return cost_model.idle_costs(counts)


def test_the_stored_connection_hour_is_the_one_the_defaults_give(counts):
    """`make bench` stored it with the defaults of its day: a changed default shows here until it runs again."""
    stored = json.loads(RESULTS.read_text())["request_counts"]["connection_hour"]
    assert stored == counts["connection_hour"]


def test_0_2s_connection_minutes_cost_5_31_per_million():
    """The before figure, from 0.2's counted connection-hour at today's prices."""
    before = cost_model.before_connection_minute() * 1e6
    assert round(before.total, 2) == 5.31
    assert before.pings == pytest.approx(4.00)  # a ping and a pong every 30 s
    assert before.lambda_ > 0.45  # ws-ping, 120 invocations an hour


def test_a_ping_costs_its_two_messages_and_nothing_else(counts):
    """The gateway answers pings: halving the interval adds two messages a ping, no invocation, no write."""
    slow = cost_model.per_connection_minute(counts, 120) * 1e6
    fast = cost_model.per_connection_minute(counts, 60) * 1e6
    assert fast.pings - slow.pings == pytest.approx(1.00)  # 1 more ping a minute: 2 messages per minute-million
    assert (fast.lambda_, fast.dynamodb, fast.checks) == (slow.lambda_, slow.dynamodb, slow.checks)


def test_get_connection_is_counted_as_a_billed_message(idle):
    """The ASSUMPTION the rendered text states: 6 checks an hour, a message each."""
    assert idle["visible"].checks == pytest.approx(6 / 60)
    assert "does not say whether @connections GetConnection calls are billed" in cost_model.render(
        json.loads(RESULTS.read_text())["request_counts"]
    )


def test_the_rendered_text_shows_both_designs_and_both_pages():
    text = cost_model.render(json.loads(RESULTS.read_text())["request_counts"])
    for heading in ("0.2: pings every 30 s, each invoking ws-ping", "visible page: pings every 60 s"):
        assert heading in text
    assert "hidden page: pings every 480 s" in text
    assert "Requests per idle connection-hour" in text
    assert "| 0.2, pings every 30 s | 240 | 121 |" in text


@pytest.mark.parametrize("page", sorted(cost_model.TARGETS))
def test_the_defaults_meet_the_idle_connection_targets(idle, page):
    print(f"\n{page} page, pings every {PING_INTERVAL_SECONDS[page]} s: {idle[page].total:.4f} per million minutes")
    assert idle[page].total <= cost_model.TARGETS[page]


def test_a_month_of_sockets_is_their_connection_minutes(counts, idle):
    month = cost_model.monthly(counts, 100_000, 10)
    assert month["visible"] == pytest.approx(idle["visible"].total / 1e6 * 100_000 * 30 * 24 * 60)
    assert month["events"] == pytest.approx(cost_model.per_event(counts, 2).total * 10 * 30 * 24 * 3600)
    assert month["hidden"] < month["visible"] < month["before"]
