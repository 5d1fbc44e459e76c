"""Presence repair, a step of the scheduled maintenance run.

Reads the presence table a slice a run (a Scan from where the last run
stopped, at most `items_per_run` items, its position kept with the connection
sweep's: realtime.connections.scan_positions) for the users that are online,
have sessions or have an unconfirmed presence event, and
- drops sessions whose connection record is gone (removed by a path that did
  not know about presence, or expired by TTL; a dead connection the sweep
  finds ends its session itself). Each user's records are looked up in a
  random 1 in ORPHAN_SAMPLE_RUNS runs (about once an hour at the default
  schedule): 100 keys a request, a read unit each. Checking every user on
  every run (or writing the user's lastSeen on every check so that only
  silent users need it) would cost more than these rare orphans are worth:
  pings write nothing, so most users' lastSeen is their connect time;
- decides offline for users left online with no session well past the grace
  period (their check was lost);
- re-sends presence events whose sending was never confirmed.

Every step is a conditional write or an idempotent send, so two runs, or a run
and live traffic, never double-count a session or emit an event twice.
"""

from __future__ import annotations

import functools
import itertools
import random
import time
from collections.abc import Callable, Iterator

import msgspec

from realtime.connections.scan_positions import ResumedScan, ScanPositions, ScanReport
from realtime.connections.store import ConnectionStore
from realtime.core.encoding import parse_timestamp
from realtime.core.observability import logger
from realtime.core.scanning import Key
from realtime.presence.sessions import SessionTracker, still_connecting
from realtime.presence.store import PresenceState, PresenceStore

# A check scheduled at a session's end fires after the grace period; give SQS and Lambda this long on top.
OVERDUE_CHECK_MARGIN_SECONDS = 60
# An announcement is normally confirmed within milliseconds of its flip; leave in-flight ones alone.
UNCONFIRMED_EVENT_AGE_SECONDS = 30
# A user's sessions are checked against their records in about one run in this many (orphans are rare).
ORPHAN_SAMPLE_RUNS = 12
USERS_PER_CHECK = 50  # users whose records one BatchGetItem (at most 100 keys a request) looks for
SCAN = "presence"  # this scan's position item (realtime.connections.scan_positions)


class RepairReport(msgspec.Struct):
    orphan_sessions_removed: int = 0
    offline_decided: int = 0
    events_resent: int = 0
    scan: ScanReport = msgspec.field(default_factory=ScanReport)


class PresenceRepair:
    def __init__(
        self,
        *,
        presence: PresenceStore,
        connections: ConnectionStore,
        sessions: SessionTracker,
        grace_seconds: int,
        positions: ScanPositions,
        items_per_run: int,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._positions = positions
        self._items_per_run = items_per_run
        self._presence = presence
        self._connections = connections
        self._sessions = sessions
        self._grace_seconds = grace_seconds
        self._clock = clock
        self._rand = rand

    def start(self, report: RepairReport) -> RepairRun:
        """This run's repair: its steps, then its finishing step (see realtime.maintenance)."""
        scan = ResumedScan(
            self._positions,
            SCAN,
            lambda start_key, budget: self._presence.needing_repair(start_key=start_key, budget=budget),
            self._items_per_run,
            report.scan,
            clock=self._clock,
        )
        return RepairRun(self, scan, report)

    def _repair(self, state: PresenceState, orphans: dict[str, list[str]], report: RepairReport) -> None:
        for connection_id in orphans.get(state.user_id, ()):
            ended = self._sessions.end_session(state.user_id, connection_id)
            if ended is not None:
                report.orphan_sessions_removed += 1
                state = ended
                logger.debug("Orphan session removed", extra={"user_id": state.user_id, "connection_id": connection_id})
        now = self._clock()
        ended_at = parse_timestamp(state.session_ended_at) or 0.0
        if state.online and state.sessions == 0 and now - ended_at > self._grace_seconds + OVERDUE_CHECK_MARGIN_SECONDS:
            # The check scheduled at the last session's end never came (or could not be sent).
            if self._sessions.check_offline(state.user_id, state.version) is not None:
                report.offline_decided += 1
                logger.debug("Overdue offline decided", extra={"user_id": state.user_id})
            return
        changed_at = parse_timestamp(state.state_changed_at) or 0.0
        overdue = state.unannounced and now - changed_at > UNCONFIRMED_EVENT_AGE_SECONDS
        if overdue and self._sessions.announce(state) is not None:
            report.events_resent += 1
            logger.debug("Unconfirmed presence event sent again", extra={"user_id": state.user_id})

    def _find_orphans(self, states: tuple[PresenceState, ...], orphans: dict[str, list[str]]) -> None:
        """Per user due a check, the counted sessions whose connection record no longer exists."""
        due = [state for state in states if state.connection_ids and self._rand() * ORPHAN_SAMPLE_RUNS < 1]
        if due:
            existing = self._connections.existing(itertools.chain.from_iterable(s.connection_ids for s in due))
            now = self._clock()
            # A session counted moments ago may be waiting for its $connect to write the record.
            orphans.update(
                {
                    state.user_id: sorted(state.connection_ids - existing - still_connecting(state.claimed_at, now))
                    for state in due
                }
            )


class RepairRun:
    """One run of presence repair: a step per batch of users (finding orphan sessions) and per user (repairing it).

    The run can stop between any two steps; `finish` saves the position just
    after the last user whose repair started.
    """

    def __init__(self, repair: PresenceRepair, scan: ResumedScan[PresenceState], report: RepairReport) -> None:
        self._repair = repair
        self._scan = scan
        self._report = report

    def steps(self) -> Iterator[Callable[[], None]]:
        for page in self._scan.pages():
            for batch in itertools.batched(page.entries, USERS_PER_CHECK):
                orphans: dict[str, list[str]] = {}
                yield functools.partial(self._repair._find_orphans, tuple(state for _, state in batch), orphans)
                for key, state in batch:
                    yield functools.partial(self._repair_user, key, state, orphans)

    def finish(self) -> Iterator[Callable[[], None]]:
        yield self._scan.save

    def _repair_user(self, key: Key, state: PresenceState, orphans: dict[str, list[str]]) -> None:
        self._scan.done(key)  # a failure is counted by the run and retried by the next pass
        self._repair._repair(state, orphans, self._report)
