"""The scheduled `maintenance` run: remove dead connections and repair presence.

API Gateway sends `$disconnect` best-effort, so some connections die without
one. Each run:

1. Stale connections. Pages through the connection records (Scan, filtered on
   `lastSeen` older than the stale threshold, `connectedAt` older than API
   Gateway's 2 h limit, or a token that has expired) and asks the `@connections`
   API about each (GetConnection). GoneException means dead: the connection is
   removed with its subscriptions and its session, as a $disconnect would have,
   and the last session's end schedules the offline check. Any other answer
   leaves it alone. A connection whose token has expired is closed (a last
   frame saying why, then DeleteConnection; its $disconnect removes it), as
   delivery would at its next event.
2. Presence repair. Pages through the users that are online, have sessions or
   have an unconfirmed presence event, and
   - drops sessions whose connection record is gone (removed by a path that
     did not know about presence, or expired by TTL). Records are read only
     for users not seen for the stale threshold (pings keep a live user's
     lastSeen fresh: a user whose sessions are all orphans is soon stale) and
     for a random 1 in ORPHAN_SAMPLE_RUNS of the others (an orphan beside a
     live session), 100 keys a request: a run does not read a record per
     online user;
   - decides offline for users left online with no session well past the grace
     period (their check was lost);
   - re-sends presence events whose sending was never confirmed.

Every step is a conditional write or an idempotent send, so two runs, or a run
and live traffic, never double-count a session or emit an event twice. A run
stops early when its time is nearly up; the next one carries on.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.encoding import parse_timestamp, timestamp_at
from realtime.core.observability import logger
from realtime.core.ttl import sample_expired
from realtime.events.connections import ConnectionStore
from realtime.events.delivery import Outcome, close_expired
from realtime.presence.sessions import SessionTracker
from realtime.presence.store import PresenceState, PresenceStore

MAX_CONNECTION_AGE_SECONDS = 7200  # API Gateway closes every WebSocket after 2 hours
# A check scheduled at a session's end fires after the grace period; give SQS and Lambda this long on top.
OVERDUE_CHECK_MARGIN_SECONDS = 60
# An announcement is normally confirmed within milliseconds of its flip; leave in-flight ones alone.
UNCONFIRMED_EVENT_AGE_SECONDS = 30
# A user seen lately has its sessions checked against their records in about one run in this many.
ORPHAN_SAMPLE_RUNS = 12
USERS_PER_CHECK = 50  # users whose records one BatchGetItem (at most 100 keys a request) looks for


@dataclass
class MaintenanceReport:
    connections_checked: int = 0
    connections_alive: int = 0
    connections_removed: int = 0
    connections_unknown: int = 0  # GetConnection failed for another reason: left for the next run
    connections_expired: int = 0  # closed because their token had expired
    orphan_sessions_removed: int = 0
    offline_decided: int = 0
    events_resent: int = 0
    # Per table with TTL: its size (DynamoDB's count, about six hours old at most) and, estimated from
    # a sample, how many of its items are past expiresAt but not deleted by TTL yet.
    table_items: dict[str, int] = field(default_factory=dict)
    expired_items: dict[str, int] = field(default_factory=dict)
    errors: int = 0  # connections or users whose step failed (logged); the next run tries them again
    complete: bool = True


class Maintenance:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        management: Any,
        sessions: SessionTracker,
        presence: PresenceStore | None,
        ttl_tables: Mapping[str, Any],
        stale_seconds: int,
        grace_seconds: int,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._connections = connections
        self._ttl_tables = ttl_tables
        self._management = management
        self._sessions = sessions
        self._presence = presence
        self._stale_seconds = stale_seconds
        self._grace_seconds = grace_seconds
        self._clock = clock
        self._rand = rand

    def run(self, time_is_up: Callable[[], bool] = lambda: False) -> MaintenanceReport:
        report = MaintenanceReport()
        for name, table in self._ttl_tables.items():
            self._isolated(report, self._sample_expired, name, table, report)
        stale = self._connections.not_seen_since(
            timestamp_at(self._clock() - self._stale_seconds), timestamp_at(self._clock() - MAX_CONNECTION_AGE_SECONDS)
        )
        for record in stale:
            if time_is_up():
                report.complete = False
                return report
            self._isolated(report, self._check_connection, record, report)
        users = self._presence.needing_repair() if self._presence is not None else iter(())
        for batch in itertools.batched(users, USERS_PER_CHECK):
            orphans: dict[str, list[str]] = {}
            self._isolated(report, self._find_orphans, batch, orphans)
            for state in batch:
                if time_is_up():
                    report.complete = False
                    return report
                self._isolated(report, self._repair, state, orphans.get(state.user_id, ()), report)
        return report

    @staticmethod
    def _isolated(report: MaintenanceReport, step: Callable[..., None], *args: Any) -> None:
        """One connection or user failing (throttling, a queue down) must not stop the run."""
        try:
            step(*args)
        except Exception:
            logger.exception("Maintenance step failed; the next run retries it", extra={"step": step.__name__})
            report.errors += 1

    def _sample_expired(self, name: str, table: Any, report: MaintenanceReport) -> None:
        sample = sample_expired(table, int(self._clock()))
        report.table_items[name] = sample.items
        report.expired_items[name] = sample.expired_estimate

    # --- 1. stale connections ------------------------------------------------------

    def _check_connection(self, record: dict[str, Any], report: MaintenanceReport) -> None:
        connection_id = str(record["connectionId"])
        report.connections_checked += 1
        token_expires_at = record.get("tokenExpiresAt")
        if token_expires_at is not None and int(token_expires_at) <= self._clock():
            self._close_expired(connection_id, report)
            return
        alive = self._alive(connection_id)
        if alive is None:
            report.connections_unknown += 1
        elif alive:
            report.connections_alive += 1
        elif self._sessions.remove(connection_id):
            report.connections_removed += 1
            logger.debug(
                "Dead connection removed", extra={"connection_id": connection_id, "user_id": record.get("userId")}
            )

    def _close_expired(self, connection_id: str, report: MaintenanceReport) -> None:
        outcome = close_expired(self._management, connection_id)
        if outcome is Outcome.SENT:
            report.connections_expired += 1
        elif outcome is Outcome.GONE:
            if self._sessions.remove(connection_id):
                report.connections_removed += 1
        else:
            report.connections_unknown += 1

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

    # --- 2. presence repair -------------------------------------------------------

    def _repair(self, state: PresenceState, orphans: Iterable[str], report: MaintenanceReport) -> None:
        for connection_id in orphans:
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
        seen_since = timestamp_at(self._clock() - self._stale_seconds)
        due = [
            state
            for state in states
            if state.connection_ids and ((state.last_seen or "") < seen_since or self._rand() * ORPHAN_SAMPLE_RUNS < 1)
        ]
        if due:
            existing = self._connections.existing(itertools.chain.from_iterable(s.connection_ids for s in due))
            orphans.update({state.user_id: sorted(state.connection_ids - existing) for state in due})
