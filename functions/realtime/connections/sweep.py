"""Connections whose `$disconnect` never came, and connections whose token expired.

API Gateway sends `$disconnect` best-effort, so some connections die without
one. The sweep pages through the connection records (Scan, filtered on
`lastSeen` older than the stale threshold, `connectedAt` older than API
Gateway's 2 h limit, or a token that has expired) and asks the `@connections`
API about each (GetConnection). GoneException means dead: the connection is
removed, as a $disconnect would have (with its session, through `remove`).
Any other answer leaves it alone. A connection whose token has expired is
closed (a last frame saying why, then DeleteConnection; its $disconnect
removes it), as delivery would at its next event.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from realtime.connections.posting import Outcome, close_expired
from realtime.connections.store import ConnectionStore
from realtime.core.encoding import timestamp_at
from realtime.core.observability import logger

MAX_CONNECTION_AGE_SECONDS = 7200  # API Gateway closes every WebSocket after 2 hours


@dataclass
class SweepReport:
    checked: int = 0
    alive: int = 0
    removed: int = 0
    unknown: int = 0  # GetConnection failed for another reason: left for the next run
    expired: int = 0  # closed because their token had expired


class ConnectionSweep:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        management: Any,
        remove: Callable[[str], bool],
        stale_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`remove(connection_id)` removes a dead connection as $disconnect does; False if it was gone."""
        self._connections = connections
        self._management = management
        self._remove = remove
        self._stale_seconds = stale_seconds
        self._clock = clock

    def steps(self, report: SweepReport) -> Iterator[Callable[[], None]]:
        """One step per connection to check, read lazily: a run can stop between any two."""
        stale = self._connections.not_seen_since(
            timestamp_at(self._clock() - self._stale_seconds), timestamp_at(self._clock() - MAX_CONNECTION_AGE_SECONDS)
        )
        for record in stale:
            yield functools.partial(self._check, record, report)

    def _check(self, record: dict[str, Any], report: SweepReport) -> None:
        connection_id = str(record["connectionId"])
        report.checked += 1
        token_expires_at = record.get("tokenExpiresAt")
        if token_expires_at is not None and int(token_expires_at) <= self._clock():
            self._close_expired(connection_id, report)
            return
        alive = self._alive(connection_id)
        if alive is None:
            report.unknown += 1
        elif alive:
            report.alive += 1
        elif self._remove(connection_id):
            report.removed += 1
            logger.debug(
                "Dead connection removed", extra={"connection_id": connection_id, "user_id": record.get("userId")}
            )

    def _close_expired(self, connection_id: str, report: SweepReport) -> None:
        outcome = close_expired(self._management, connection_id)
        if outcome is Outcome.SENT:
            report.expired += 1
        elif outcome is Outcome.GONE:
            if self._remove(connection_id):
                report.removed += 1
        else:
            report.unknown += 1

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
