"""The scheduled `maintenance` run: each step is owned by its capability, this only orchestrates.

1. Retention report (realtime.core.ttl): per table with TTL, its size and how
   many of its items are past expiry but not yet deleted by TTL, from a sample.
2. Connection sweep (realtime.connections.sweep): connections whose
   `$disconnect` never came are removed; those whose token expired are closed.
3. Presence repair (realtime.presence.repair), when presence is on: orphan
   sessions, overdue offline decisions, unconfirmed presence events.

Steps 2 and 3 each read a bounded slice of their table a run, from where the
previous run stopped (realtime.connections.scan_positions): a run's cost does
not grow with the table, and consecutive runs visit every item, a full pass
every ceil(items / budget) runs. One connection or user failing (throttling,
a queue down) does not stop the run; it is counted and logged, and the next
pass tries it again. A run stops starting work when its time is nearly up,
settles what it started and saves its positions: the next run carries on
from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import msgspec
from msgspec.structs import asdict

from realtime.connections.scan_positions import ScanReport
from realtime.connections.sweep import ConnectionSweep, SweepReport
from realtime.core.observability import logger
from realtime.core.ttl import sample_expired
from realtime.presence.repair import PresenceRepair, RepairReport


class MaintenanceReport(msgspec.Struct):
    connections: SweepReport = msgspec.field(default_factory=SweepReport)
    presence: RepairReport = msgspec.field(default_factory=RepairReport)
    # Per table with TTL: its size (DynamoDB's count, about six hours old at most) and, estimated from
    # a sample, how many of its items are past expiresAt but not deleted by TTL yet.
    table_items: dict[str, int] = msgspec.field(default_factory=dict)
    expired_items: dict[str, int] = msgspec.field(default_factory=dict)
    errors: int = 0  # connections or users whose step failed (logged); the next run tries them again
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        """The run's log line and metrics, one flat record."""
        return {
            **{f"connections_{name}": value for name, value in asdict(self.connections).items() if name != "scan"},
            **{name: value for name, value in asdict(self.presence).items() if name != "scan"},
            **_scan_summary("connections", self.connections.scan),
            **_scan_summary("presence", self.presence.scan),
            "table_items": self.table_items,
            "expired_items": self.expired_items,
            "errors": self.errors,
            "complete": self.complete,
        }


def _scan_summary(table: str, scan: ScanReport) -> dict[str, Any]:
    """`<table>_items_scanned`, `<table>_cycle`, ...: where the table's scan stands."""
    return {f"{table}_{name}": value for name, value in asdict(scan).items()}


class MaintenanceRun(Protocol):
    """One run of a maintenance step: lazy steps it may be stopped between, then steps that finish it."""

    def steps(self) -> Iterator[Callable[[], None]]: ...

    def finish(self) -> Iterator[Callable[[], None]]: ...


class Maintenance:
    def __init__(
        self,
        *,
        sweep: ConnectionSweep,
        repair: PresenceRepair | None,  # None: presence is off
        ttl_tables: Mapping[str, Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sweep = sweep
        self._repair = repair
        self._ttl_tables = ttl_tables
        self._clock = clock

    def run(self, time_is_up: Callable[[], bool] = lambda: False) -> MaintenanceReport:
        report = MaintenanceReport()
        for name, table in self._ttl_tables.items():
            self._isolated(report, self._sample_expired, name, table, report)
        runs: list[MaintenanceRun] = [self._sweep.start(report.connections)]
        if self._repair is not None:
            runs.append(self._repair.start(report.presence))
        for run in runs:
            try:
                for step in run.steps():
                    if time_is_up():
                        report.complete = False
                        break
                    self._isolated(report, step)
            finally:
                # Even when stopped (or a Scan page failed): settle what was started, save the position.
                for step in run.finish():
                    self._isolated(report, step)
            if not report.complete:
                return report
        return report

    @staticmethod
    def _isolated(report: MaintenanceReport, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:
            name = getattr(step, "func", step).__name__
            logger.exception("Maintenance step failed; the next pass retries it", extra={"step": name})
            report.errors += 1

    def _sample_expired(self, name: str, table: Any, report: MaintenanceReport) -> None:
        sample = sample_expired(table, int(self._clock()))
        report.table_items[name] = sample.items
        report.expired_items[name] = sample.expired_estimate
