"""The request counts behind the cost model (scripts/lab/request_counts.py): what maintenance's check of a live
connection costs, and how an idle connection's hour is put together from the measured operations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.lab import request_counts
from scripts.module_defaults import CONNECTION_CHECKS_PER_HOUR, MAINTENANCE_RUNS_PER_HOUR


@pytest.fixture(scope="module")
def checks():
    return request_counts.measure_connection_checks(20)


def test_a_due_connection_costs_one_get_connection_and_one_write(checks):
    """Counted on the real maintenance handler: GetConnection (moto answers alive) from the sweep's worker
    threads, then the UpdateItem moving lastSeen; nothing else grows with the connections checked."""
    check = checks["maintenance_check_per_connection"]
    assert check["requests"] == {"dynamodb:UpdateItem": 1, "execute-api:GetConnection": 1}
    assert (check["wcu"], check["rcu"], check["sqs"]) == (1, 0, 0)


def test_the_stored_check_is_the_one_measured_now(checks):
    """docs/benchmarks/results.json (what the cost model and docs/benchmarks.md read) holds the same check."""
    results = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "results.json"
    stored = json.loads(results.read_text())["request_counts"]["maintenance_check_per_connection"]
    assert stored == checks["maintenance_check_per_connection"]


def test_a_run_with_no_connection_due_asks_the_gateway_nothing(checks):
    settled = checks["maintenance_20_settled"]
    assert settled["execute-api"] == 0
    assert "dynamodb:BatchGetItem" in settled["requests"]  # presence repair reads long-lived users' records


def _counts(requests: dict[str, float], rcu: float = 0, wcu: float = 0, sqs: float = 0) -> dict:
    return {
        "requests": requests,
        "rcu": rcu,
        "wcu": wcu,
        "reported_capacity": 0,
        "dynamodb": sum(n for name, n in requests.items() if name.startswith("dynamodb:")),
        "sqs": sqs,
        "execute-api": sum(n for name, n in requests.items() if name.startswith("execute-api:")),
    }


def test_an_idle_connection_hour_is_its_checks_its_share_of_the_runs_and_a_reconnect_every_two_hours():
    size = request_counts.CHECKED_CONNECTIONS
    counts = {
        "maintenance_check_per_connection": _counts({"dynamodb:UpdateItem": 1, "execute-api:GetConnection": 1}, wcu=1),
        f"maintenance_{size}_settled": _counts({"dynamodb:Scan": 5, "dynamodb:BatchGetItem": 20}, rcu=1000),
        "connect": _counts({"dynamodb:PutItem": 1, "sqs:SendMessage": 1}, wcu=4, sqs=1),
        "disconnect": _counts({"dynamodb:DeleteItem": 1, "sqs:SendMessage": 1}, wcu=2, sqs=1),
    }
    hour = request_counts.connection_hour(counts)
    assert CONNECTION_CHECKS_PER_HOUR == 6
    assert MAINTENANCE_RUNS_PER_HOUR == 12
    assert hour["requests"]["execute-api:GetConnection"] == 6
    assert hour["requests"]["dynamodb:UpdateItem"] == 6
    assert hour["requests"]["dynamodb:Scan"] == pytest.approx(12 * 5 / size)
    assert hour["rcu"] == pytest.approx(12 * 1000 / size)
    assert hour["wcu"] == pytest.approx(6 + (4 + 2) / 2)
    assert hour["sqs"] == 1
