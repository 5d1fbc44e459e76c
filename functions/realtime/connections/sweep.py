"""Connections whose `$disconnect` never came, and connections whose token expired.

API Gateway sends `$disconnect` best-effort, so some connections die without
one. The sweep reads the connections table a slice a run (a Scan from where
the last run stopped, at most `items_per_run` items, filtered on `lastSeen`
older than the stale threshold, `connectedAt` older than API Gateway's 2 h
limit, or a token that has expired; see realtime.connections.scan_positions)
and asks the `@connections` API about each (GetConnection), a few at a time
and at most `checks_per_second`. GoneException means dead: the connection is
removed, as a $disconnect would have (with its session, through `remove`).
Alive moves its `lastSeen` to now, so it is checked again a stale threshold
later: pings are answered by the gateway and write nothing, so with the
default schedule (5 min) and threshold (300 s) each live connection costs a
GetConnection and a write every 10 minutes, and a dead one is found within
10 minutes of its last check. Any other answer leaves it alone. A connection whose token has expired is
closed (a last frame saying why, then DeleteConnection; its $disconnect
removes it), as delivery would at its next event.
"""

from __future__ import annotations

import enum
import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from realtime.connections.posting import Outcome, close_expired
from realtime.connections.scan_positions import ResumedScan, ScanPositions, ScanReport
from realtime.connections.store import ConnectionStore
from realtime.core.encoding import timestamp_at
from realtime.core.observability import logger
from realtime.core.scanning import Key

MAX_CONNECTION_AGE_SECONDS = 7200  # API Gateway closes every WebSocket after 2 hours
CHECKS_IN_FLIGHT = 16  # GetConnection answers in ~20 ms: 16 at a time allow about 800/s, past the default rate
SCAN = "connections"  # this scan's position item (realtime.connections.scan_positions)


class SweepReport(msgspec.Struct):
    checked: int = 0
    alive: int = 0
    removed: int = 0
    unknown: int = 0  # GetConnection failed for another reason: left for the next pass
    expired: int = 0  # closed because their token had expired
    scan: ScanReport = msgspec.field(default_factory=ScanReport)


class RateLimit:
    """A token bucket: at most `per_second` a second on average, in bursts of at most a tenth of a second's worth."""

    def __init__(
        self,
        per_second: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = per_second
        self._burst = max(1.0, math.ceil(per_second / 10))
        self._tokens = self._burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._updated = monotonic()

    def acquire(self) -> None:
        """Take a token, first waiting for it if there is none (a debt, repaid by the wait)."""
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1
        if self._tokens < 0:
            self._sleep(-self._tokens / self._rate)


class Answer(enum.Enum):
    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"  # could not tell: left for the next pass
    CLOSED = "closed"  # token expired: told why and closed


class ConnectionSweep:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        management: Any,
        remove: Callable[[str], bool],
        stale_seconds: int,
        positions: ScanPositions,
        items_per_run: int,
        checks_per_second: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`remove(connection_id)` removes a dead connection as $disconnect does; False if it was gone.

        `management` (the `@connections` client) is called from CHECKS_IN_FLIGHT threads;
        `remove` only from the caller's.
        """
        self._connections = connections
        self._management = management
        self._remove = remove
        self._stale_seconds = stale_seconds
        self._positions = positions
        self._items_per_run = items_per_run
        self._checks_per_second = checks_per_second
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep

    def start(self, report: SweepReport) -> SweepRun:
        """This run's sweep: its steps, then its finishing steps (see realtime.maintenance)."""
        now = self._clock()
        scan = ResumedScan(
            self._positions,
            SCAN,
            lambda start_key, budget: self._connections.not_seen_since(
                timestamp_at(now - self._stale_seconds),
                timestamp_at(now - MAX_CONNECTION_AGE_SECONDS),
                start_key=start_key,
                budget=budget,
            ),
            self._items_per_run,
            report.scan,
            clock=self._clock,
        )
        limit = RateLimit(self._checks_per_second, monotonic=self._monotonic, sleep=self._sleep)
        return SweepRun(self, scan, limit, report)

    def _ask(self, record: dict[str, Any], now: float) -> Answer:
        """What the gateway says about one connection (runs in a worker thread: no DynamoDB here)."""
        connection_id = str(record["connectionId"])
        token_expires_at = record.get("tokenExpiresAt")
        if token_expires_at is not None and int(token_expires_at) <= now:
            outcome = close_expired(self._management, connection_id)
            if outcome is Outcome.SENT:
                return Answer.CLOSED
            return Answer.GONE if outcome is Outcome.GONE else Answer.UNKNOWN
        alive = self._alive(connection_id)
        if alive is None:
            return Answer.UNKNOWN
        return Answer.ALIVE if alive else Answer.GONE

    def _settle(self, record: dict[str, Any], answer: Answer, report: SweepReport) -> None:
        """Count the answer; remove a dead connection (in the caller's thread: boto3 resources are not thread-safe)."""
        connection_id = str(record["connectionId"])
        if answer is Answer.ALIVE:
            report.alive += 1
            # Pings write nothing (the gateway answers them): this is what keeps a live connection
            # out of the next runs' checks for the stale threshold.
            self._connections.touch(connection_id)
        elif answer is Answer.CLOSED:
            report.expired += 1
        elif answer is Answer.UNKNOWN:
            report.unknown += 1
        elif self._remove(connection_id):
            report.removed += 1
            logger.debug(
                "Dead connection removed", extra={"connection_id": connection_id, "user_id": record.get("userId")}
            )

    def _alive(self, connection_id: str) -> bool | None:
        """GetConnection: True if the gateway knows it, False on GoneException, None if it cannot tell."""
        try:
            # Only success matters: the emulator's answer has no usable fields.
            self._management.get_connection(ConnectionId=connection_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "GoneException" or status == 410:
                return False
            logger.warning("GetConnection failed", extra={"connection_id": connection_id, "code": code})
            return None
        except BotoCoreError as error:
            logger.warning(
                "GetConnection failed (network)", extra={"connection_id": connection_id, "error": f"{error}"}
            )
            return None
        return True


class SweepRun:
    """One run of the sweep: checks start in scan order, CHECKS_IN_FLIGHT at a time, rate-limited.

    A step starts one check (waiting for the rate limit and a free worker) and
    is followed by a step per answer that came back meanwhile. The run can stop
    between any two steps; `finish` then waits for the checks in flight, settles
    them and saves the position just after the last check started.
    """

    def __init__(
        self, sweep: ConnectionSweep, scan: ResumedScan[dict[str, Any]], limit: RateLimit, report: SweepReport
    ):
        self._sweep = sweep
        self._scan = scan
        self._limit = limit
        self._report = report
        self._pool = ThreadPoolExecutor(max_workers=CHECKS_IN_FLIGHT, thread_name_prefix="sweep")
        self._free_workers = threading.BoundedSemaphore(CHECKS_IN_FLIGHT)
        self._started: list[tuple[dict[str, Any], Future[Answer]]] = []  # not settled yet

    def steps(self) -> Iterator[Callable[[], None]]:
        for page in self._scan.pages():
            for key, record in page.entries:
                yield functools.partial(self._start, key, record)
                yield from self._settling(lambda future: future.done())

    def finish(self) -> Iterator[Callable[[], None]]:
        try:
            yield from self._settling(lambda future: True)  # waits for each
        finally:
            self._pool.shutdown()
        yield self._scan.save

    def _start(self, key: Key, record: dict[str, Any]) -> None:
        self._limit.acquire()
        self._free_workers.acquire()
        self._scan.done(key)
        self._report.checked += 1
        future = self._pool.submit(self._sweep._ask, record, self._sweep._clock())
        future.add_done_callback(lambda _: self._free_workers.release())
        self._started.append((record, future))

    def _settling(self, ready: Callable[[Future[Answer]], bool]) -> Iterator[Callable[[], None]]:
        """A step per started check whose answer is `ready` (its failure is the step's: counted by the run)."""
        for started in [started for started in self._started if ready(started[1])]:
            yield functools.partial(self._settle, started)

    def _settle(self, started: tuple[dict[str, Any], Future[Answer]]) -> None:
        # Taken off only when it runs: a step the run stopped before is settled by `finish`.
        self._started.remove(started)
        record, future = started
        self._sweep._settle(record, future.result(), self._report)
