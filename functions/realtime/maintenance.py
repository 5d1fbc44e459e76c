"""The scheduled `maintenance` run: each step is owned by its capability, this only orchestrates.

1. Retention report (realtime.core.ttl): per table with TTL, its size and how
   many of its items are past expiry but not yet deleted by TTL, from a sample.
2. Connection sweep (realtime.connections.sweep): connections whose
   `$disconnect` never came are removed; those whose token expired are closed.
3. Presence repair (realtime.presence.repair), when presence is on: orphan
   sessions, overdue offline decisions, unconfirmed presence events.

One connection or user failing (throttling, a queue down) does not stop the
run; it is counted and logged, and the next run tries it again. A run stops
starting work when its time is nearly up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from realtime.connections.sweep import ConnectionSweep, SweepReport
from realtime.core.observability import logger
from realtime.core.ttl import sample_expired
from realtime.presence.repair import PresenceRepair, RepairReport


@dataclass
class MaintenanceReport:
    connections: SweepReport = field(default_factory=SweepReport)
    presence: RepairReport = field(default_factory=RepairReport)
    # Per table with TTL: its size (DynamoDB's count, about six hours old at most) and, estimated from
    # a sample, how many of its items are past expiresAt but not deleted by TTL yet.
    table_items: dict[str, int] = field(default_factory=dict)
    expired_items: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # connections or users whose step failed (logged); the next run tries them again
    complete: bool = True

    def summary(self) -> dict[str, Any]:
        """The run's log line and metrics, one flat record."""
        return {
            **{f"connections_{name}": value for name, value in asdict(self.connections).items()},
            **asdict(self.presence),
            "table_items": self.table_items,
            "expired_items": self.expired_items,
            "errors": self.errors,
            "complete": self.complete,
        }


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
        steps: list[Iterable[Callable[[], None]]] = [self._sweep.steps(report.connections)]
        if self._repair is not None:
            steps.append(self._repair.steps(report.presence))
        for part in steps:
            for step in part:
                if time_is_up():
                    report.complete = False
                    return report
                self._isolated(report, step)
        return report

    @staticmethod
    def _isolated(report: MaintenanceReport, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:
            name = getattr(step, "func", step).__name__
            logger.exception("Maintenance step failed; the next run retries it", extra={"step": name})
            report.errors += 1

    def _sample_expired(self, name: str, table: Any, report: MaintenanceReport) -> None:
        sample = sample_expired(table, int(self._clock()))
        report.table_items[name] = sample.items
        report.expired_items[name] = sample.expired_estimate
