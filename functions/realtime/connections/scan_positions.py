"""Where maintenance's scans stopped, so that each run carries on from there.

Each scan (the connection sweep's, presence repair's) reads at most a budget
of items a run (realtime.core.scanning) and saves its position in one small
item of the connections table, `pk = maintenance#<scan>`, `sk = position`:

    startKey         M  where the pass in progress resumes (absent: at the table's start)
    cycle            N  full passes ended so far
    passStartedAt    S  when the pass in progress started
    lastPassEndedAt  S  when the last full pass ended
    lastPassSeconds  N  how long it took: the period within which every item was visited
    version          N  +1 on every save

No reader of the connections table trips over it: subscriber pages query
`topic#` keys, records are read by `conn#`/`user#` key, and the sweep's Scan
keeps `sk = meta` only.

Two overlapping runs both start from the position they read; each save is
conditional on the version it read, so only the first one moves it and the
other's save is dropped (logged). Both read from the same place, so dropping
either skips nothing: at worst the next run reads some items again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from realtime.core.encoding import parse_timestamp, timestamp_at
from realtime.core.observability import logger
from realtime.core.scanning import Key, ScanPage

POSITION_SK = "position"


def position_key(scan: str) -> Key:
    return {"pk": f"maintenance#{scan}", "sk": POSITION_SK}


class ScanPosition(msgspec.Struct, frozen=True):
    start_key: Key | None = None  # where the pass in progress resumes; None: at the table's start
    cycle: int = 0  # full passes ended so far
    pass_started_at: str | None = None
    last_pass_ended_at: str | None = None
    last_pass_seconds: float | None = None
    version: int = 0  # 0: never saved

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ScanPosition:
        seconds = item.get("lastPassSeconds")
        return cls(
            start_key=dict(item["startKey"]) if "startKey" in item else None,
            cycle=int(item.get("cycle", 0)),
            pass_started_at=item.get("passStartedAt"),
            last_pass_ended_at=item.get("lastPassEndedAt"),
            last_pass_seconds=float(seconds) if seconds is not None else None,
            version=int(item.get("version", 0)),
        )


class ScanReport(msgspec.Struct):
    """What one run's share of a scan did, for the run's log line and metrics."""

    items_scanned: int = 0  # items read, matching or not: at most the budget
    pass_ended: bool = False  # this run reached the table's end (the next run starts over)
    cycle: int = 0  # full passes ended so far, this run's included
    last_pass_ended_at: str | None = None
    last_pass_seconds: float | None = None  # how long the last full pass took (runs at the schedule's pace)
    position_saved: bool = False  # False: the run could not save it, or an overlapping run moved it first


class ScanPositions:
    def __init__(self, table: Any, *, clock: Callable[[], float] = time.time) -> None:
        """`table`: the connections table, which holds every scan's position."""
        self._table = table
        self._clock = clock

    def load(self, scan: str) -> ScanPosition:
        item = self._table.get_item(Key=position_key(scan), ConsistentRead=True).get("Item")
        return ScanPosition.from_item(item) if item else ScanPosition()

    def save(self, scan: str, read: ScanPosition, new: ScanPosition) -> bool:
        """Replace the position `read` (by its version) with `new`; False if another run saved first."""
        values: dict[str, Any] = {":cycle": new.cycle, ":next": read.version + 1}
        sets = ["#cycle = :cycle", "#version = :next"]
        removes = []
        for attribute, value in (
            ("startKey", new.start_key),
            ("passStartedAt", new.pass_started_at),
            ("lastPassEndedAt", new.last_pass_ended_at),
            ("lastPassSeconds", None if new.last_pass_seconds is None else round(new.last_pass_seconds)),
        ):
            if value is None:
                removes.append(f"#{attribute}")
            else:
                sets.append(f"#{attribute} = :{attribute}")
                values[f":{attribute}"] = value
        if read.version:
            condition = "#version = :read"
            values[":read"] = read.version
        else:
            condition = "attribute_not_exists(#version)"
        names = {
            f"#{name}": name
            for name in ("cycle", "version", "startKey", "passStartedAt", "lastPassEndedAt", "lastPassSeconds")
        }
        try:
            self._table.update_item(
                Key=position_key(scan),
                UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.info("Scan position moved by an overlapping run; kept", extra={"scan": scan})
            return False
        return True


class ResumedScan[T]:
    """One run's share of a long scan: read from the saved position, at most `budget` items, saved where it stopped.

    The consumer calls `done(key)` as it starts on each entry; a page whose
    entries are all started moves the position to the page's end. So the saved
    position has everything before it started and nothing after it, whether
    the run ran out of budget, out of time, or reached the table's end.
    """

    def __init__(
        self,
        positions: ScanPositions,
        scan: str,
        read: Callable[[Key | None, int], Iterator[ScanPage[T]]],
        budget: int,
        report: ScanReport,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`read(start_key, budget)`: the scan's pages from `start_key`, at most `budget` items read."""
        self._positions = positions
        self._scan = scan
        self._read = read
        self._budget = budget
        self._report = report
        self._clock = clock
        self._loaded: ScanPosition | None = None
        self._resume_key: Key | None = None
        self._started_at = clock()

    def pages(self) -> Iterator[ScanPage[T]]:
        self._loaded = self._positions.load(self._scan)
        self._resume_key = self._loaded.start_key
        for page in self._read(self._resume_key, self._budget):
            self._report.items_scanned += page.scanned
            yield page
            # Asked for the next page: every entry of this one was started.
            self._resume_key = page.end_key
            self._report.pass_ended = page.end_key is None

    def done(self, key: Key) -> None:
        """The entry at `key` is started: the next run resumes after it."""
        self._resume_key = key

    def save(self) -> None:
        """Save where this run stopped (nothing if it never read: its position is unchanged)."""
        loaded = self._loaded
        if loaded is None:
            return
        now = self._clock()
        pass_started_at = loaded.pass_started_at
        if loaded.start_key is None or pass_started_at is None:
            pass_started_at = timestamp_at(self._started_at)  # this run started the pass
        if self._report.pass_ended:
            seconds = now - (parse_timestamp(pass_started_at) or now)
            new = ScanPosition(None, loaded.cycle + 1, None, timestamp_at(now), seconds)
        else:
            new = ScanPosition(
                self._resume_key, loaded.cycle, pass_started_at, loaded.last_pass_ended_at, loaded.last_pass_seconds
            )
        self._report.position_saved = self._positions.save(self._scan, loaded, new)
        self._report.cycle = new.cycle
        self._report.last_pass_ended_at = new.last_pass_ended_at
        self._report.last_pass_seconds = new.last_pass_seconds
