"""Maintenance whose cost per run does not grow with the table.

Over 100,000 simulated connection records (an in-memory DynamoDB: moto would
take minutes), each run reads at most its budget of items, consecutive runs
visit every item exactly once per pass and then start over, a run stopped by
time resumes where it stopped, and GetConnection checks run concurrently,
within their rate.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from realtime.connections.scan_positions import POSITION_SK, ResumedScan, ScanPositions, ScanReport, position_key
from realtime.connections.store import ConnectionStore
from realtime.connections.sweep import CHECKS_IN_FLIGHT, ConnectionSweep, RateLimit
from realtime.core.encoding import timestamp_at
from realtime.maintenance import Maintenance
from realtime.presence.repair import PresenceRepair
from realtime.presence.sessions import SessionTracker
from realtime.presence.store import PresenceStore

from .fake_dynamodb import FakeDynamoDB
from .support import client_error

NOW = 1_767_225_600.0
STALE_SECONDS = 180
RECORDS = 100_000
BUDGET = 30_000  # items a scan reads a run
FRESH, OLD = timestamp_at(NOW - 10), timestamp_at(NOW - 3600)


@dataclass
class Gateway:
    """GetConnection: success for live ids, GoneException otherwise; remembers every id it was asked about."""

    dead: set[str] = field(default_factory=set)
    asked: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_connection(self, *, ConnectionId: str) -> dict[str, Any]:
        with self.lock:
            self.asked[ConnectionId] += 1
        if ConnectionId in self.dead:
            raise client_error("GoneException", 410, "GetConnection")
        return {}


class CountingTable:
    """The table maintenance scans, counting what each Scan read and which keys it evaluated."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.scanned = 0
        self.evaluated: Counter = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def scan(self, **request: Any) -> dict:
        response = self._table.scan(**request)
        self.scanned += response["ScannedCount"]
        keys = sorted(self._table.items)
        after = self._table._key(request["ExclusiveStartKey"]) if "ExclusiveStartKey" in request else None
        read = [key for key in keys if after is None or key > after][: response["ScannedCount"]]
        self.evaluated.update(key for key in read if key[-1] != POSITION_SK)
        return response

    def take_counts(self) -> tuple[int, Counter]:
        scanned, evaluated = self.scanned, self.evaluated
        self.scanned, self.evaluated = 0, Counter()
        return scanned, evaluated


def connection_table(records: int, stale_every: int) -> tuple[FakeDynamoDB, Any]:
    """`records` connections, each a record and a subscription; every `stale_every`-th not seen for an hour."""
    db = FakeDynamoDB(page_size=10_000)
    table = db.create_table("connections", "pk", "sk")
    for n in range(records):
        connection_id = f"c{n:06d}"
        seen = OLD if n % stale_every == 0 else FRESH
        table.items[(f"conn#{connection_id}", "meta")] = {
            "pk": f"conn#{connection_id}",
            "sk": "meta",
            "connectionId": connection_id,
            "userId": f"u{n}",
            "topics": ["all"],
            "connectedAt": seen,
            "lastSeen": seen,
            "expiresAt": int(NOW) + 7200,
        }
        table.items[("topic#all", f"conn#{connection_id}")] = {
            "pk": "topic#all",
            "sk": f"conn#{connection_id}",
            "connectionId": connection_id,
            "topics": ["all"],
            "expiresAt": int(NOW) + 7200,
        }
    return db, table


def sweeping(table: Any, gateway: Gateway, *, budget: int = BUDGET) -> tuple[Maintenance, CountingTable]:
    counting = CountingTable(table)
    connections = ConnectionStore(counting, clock=lambda: NOW)
    sweep = ConnectionSweep(
        connections=connections,
        management=gateway,
        remove=connections.remove,
        stale_seconds=STALE_SECONDS,
        positions=ScanPositions(table, clock=lambda: NOW),
        items_per_run=budget,
        checks_per_second=50_000,
        clock=lambda: NOW,
    )
    return Maintenance(sweep=sweep, repair=None, ttl_tables={}, clock=lambda: NOW), counting


def test_each_run_reads_at_most_its_budget_and_consecutive_runs_visit_every_record_once_a_pass():
    _, table = connection_table(RECORDS, stale_every=10)
    items = len(table.items)  # records and subscriptions: 200,000
    gateway = Gateway()
    maintenance, counting = sweeping(table, gateway)
    runs_per_pass = -(-(items + 1) // BUDGET)  # the position item is read too: 7 runs

    visited: Counter = Counter()
    reports = []
    for _ in range(runs_per_pass):
        report = maintenance.run()
        scanned, evaluated = counting.take_counts()
        assert scanned <= BUDGET
        assert report.connections.scan.items_scanned == scanned
        visited.update(evaluated)
        reports.append(report)

    assert len(visited) == items
    assert set(visited.values()) == {1}
    assert set(gateway.asked) == {f"c{n:06d}" for n in range(0, RECORDS, 10)}
    assert set(gateway.asked.values()) == {1}  # every stale record checked once a pass
    assert [r.connections.scan.pass_ended for r in reports] == [False] * (runs_per_pass - 1) + [True]
    assert [r.connections.scan.cycle for r in reports] == [0] * (runs_per_pass - 1) + [1]
    assert reports[-1].summary()["connections_cycle"] == 1
    assert reports[-1].connections.scan.last_pass_ended_at == timestamp_at(NOW)

    maintenance.run()  # the next pass starts over at the table's start
    scanned, evaluated = counting.take_counts()
    assert scanned == BUDGET
    assert min(evaluated) == min(table.items)
    assert gateway.asked["c000000"] == 1  # found alive last pass: marked seen, not asked again until stale


def test_a_run_reads_the_same_budget_whatever_the_tables_size():
    for records in (20_000, 100_000):
        _, table = connection_table(records, stale_every=1000)
        maintenance, counting = sweeping(table, Gateway(), budget=10_000)

        maintenance.run()

        assert counting.take_counts()[0] == 10_000


def test_a_run_stopped_by_time_saves_its_position_and_the_next_run_resumes_there():
    records = 2_000
    _, table = connection_table(records, stale_every=1)  # every one stale, every one dead
    gateway = Gateway(dead={f"c{n:06d}" for n in range(records)})
    maintenance, _ = sweeping(table, gateway, budget=100_000)
    steps = iter(range(700))

    stopped = maintenance.run(lambda: next(steps, None) is None)

    assert not stopped.complete
    assert 0 < stopped.connections.removed < records
    assert stopped.connections.removed == stopped.connections.checked  # what it started, it settled
    assert stopped.connections.scan.position_saved
    assert not stopped.connections.scan.pass_ended

    resumed = maintenance.run()

    assert resumed.complete
    assert resumed.connections.scan.pass_ended
    assert stopped.connections.removed + resumed.connections.removed == records
    assert set(gateway.asked.values()) == {1}  # none asked twice, none skipped
    assert not [key for key in table.items if key[1] == "meta"]


def test_checks_run_concurrently():
    _, table = connection_table(CHECKS_IN_FLIGHT * 4, stale_every=1)
    together = threading.Barrier(CHECKS_IN_FLIGHT, timeout=10)  # broken unless that many are in flight at once

    class SlowGateway(Gateway):
        def get_connection(self, *, ConnectionId: str) -> dict[str, Any]:
            together.wait()
            return super().get_connection(ConnectionId=ConnectionId)

    report = sweeping(table, SlowGateway())[0].run()

    assert (report.connections.alive, report.errors) == (CHECKS_IN_FLIGHT * 4, 0)


def test_the_rate_limit_allows_a_short_burst_then_its_rate():
    now = [0.0]
    limit = RateLimit(100, monotonic=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))

    for _ in range(1010):
        limit.acquire()

    assert now[0] == pytest.approx(10.0)  # a burst of 10, then 100 a second


def test_overlapping_runs_keep_one_position():
    db = FakeDynamoDB()
    table = db.create_table("connections", "pk", "sk")
    for n in range(10):
        table.items[(f"conn#c{n}", "meta")] = {"pk": f"conn#c{n}", "sk": "meta"}
    positions = ScanPositions(table, clock=lambda: NOW)

    def run(budget: int) -> tuple[ResumedScan, ScanReport]:
        report = ScanReport()
        scan = ResumedScan(
            positions,
            "connections",
            lambda start, left: ConnectionStore(table).not_seen_since("", "", start_key=start, budget=left),
            budget,
            report,
        )
        return scan, report

    (first, first_report), (second, second_report) = run(3), run(5)
    for scan in (first, second):
        for _ in scan.pages():
            pass
    first.save()
    second.save()  # read the same version: dropped

    assert (first_report.position_saved, second_report.position_saved) == (True, False)
    saved = table.items[tuple(position_key("connections").values())]
    assert (saved["startKey"], saved["version"]) == ({"pk": "conn#c2", "sk": "meta"}, 1)


def test_presence_repair_reads_the_presence_table_a_slice_a_run():
    db = FakeDynamoDB(page_size=500)
    connections = db.create_table("connections", "pk", "sk")
    presence_table = db.create_table("presence", "userId")
    for n in range(5_000):  # online with no session long past the grace period: each is decided offline
        presence_table.items[(f"u{n:05d}",)] = {
            "userId": f"u{n:05d}",
            "online": True,
            "version": 2,
            "stateVersion": 1,
            "announcedVersion": 1,
            "sessionEndedAt": OLD,
        }
    counting = CountingTable(presence_table)
    db.tables["presence"] = counting
    connection_store = ConnectionStore(connections, clock=lambda: NOW)
    store = PresenceStore(db, "presence", clock=lambda: NOW)
    repair = PresenceRepair(
        presence=store,
        connections=connection_store,
        sessions=SessionTracker(
            connection_store, store, announce=lambda state: f"sent-{state.user_id}", clock=lambda: NOW
        ),
        grace_seconds=5,
        positions=ScanPositions(connections, clock=lambda: NOW),
        items_per_run=1_000,
        clock=lambda: NOW,
    )
    sweep = ConnectionSweep(
        connections=connection_store,
        management=Gateway(),
        remove=connection_store.remove,
        stale_seconds=STALE_SECONDS,
        positions=ScanPositions(connections, clock=lambda: NOW),
        items_per_run=1_000,
        checks_per_second=100,
        clock=lambda: NOW,
    )
    maintenance = Maintenance(sweep=sweep, repair=repair, ttl_tables={}, clock=lambda: NOW)

    # The fifth run stops at its budget just at the table's end: the sixth finds the end and starts over.
    reports = [maintenance.run() for _ in range(6)]

    assert [r.presence.offline_decided for r in reports] == [1_000] * 5 + [0]
    assert [r.presence.scan.items_scanned for r in reports] == [1_000] * 5 + [0]
    assert [r.presence.scan.pass_ended for r in reports] == [False] * 5 + [True]
    assert reports[-1].summary()["presence_cycle"] == 1
    assert not [item for item in presence_table.items.values() if item["online"]]
