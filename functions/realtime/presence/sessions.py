"""Connections and presence together: what $connect, $disconnect, delivery and maintenance do.

Order of writes, chosen so that a refused connect writes nothing and a crash
at any point leaves something maintenance can find and repair:

- open:  the session first (the conditional write that enforces
  max_sessions_per_user, stamped with when it was claimed), then the connection
  record and its subscriptions; if those fail, the session is given back. A
  session claimed less than CONNECTING_WINDOW_SECONDS ago may have no record
  yet: it is never taken for one whose record is gone (its $connect is still
  running); after that, a session without a record is an orphan;
- close: the session off the presence item first, then the connection record
  (a record left behind is found by maintenance; removing the session again is
  a no-op).

Only the remover whose conditional removal of the session succeeds schedules
the offline check, so $disconnect, maintenance and delivery racing to remove one
connection decide at most once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from realtime.connections.store import ConnectionStore, TooManySessions
from realtime.core.encoding import parse_timestamp
from realtime.core.observability import logger
from realtime.presence.store import PresenceState, PresenceStore, SessionStarted

if TYPE_CHECKING:
    from realtime.core.auth import Principal  # only $connect verifies tokens: the others never load PyJWT

# API Gateway answers GoneException for a connection whose $connect has not returned yet, so a post to a
# connection this young says nothing about it: delivery leaves it to $disconnect or maintenance. Likewise a
# session claimed this recently may still be waiting for its record (ws-connect's timeout is at most 29 s).
CONNECTING_WINDOW_SECONDS = 30


def still_connecting(claimed_at: dict[str, float], now: float) -> set[str]:
    """The sessions claimed so recently that their $connect may still be writing the record."""
    return {connection_id for connection_id, at in claimed_at.items() if now - at < CONNECTING_WINDOW_SECONDS}


Announce = Callable[[PresenceState], str]
ScheduleCheck = Callable[[str, int], None]


class PresenceDecider:
    """Flips decided outside a connection's own lifecycle: the delayed offline check, and (re)announcing a flip."""

    def __init__(self, presence: PresenceStore, announce: Announce | None = None) -> None:
        self._presence = presence
        self._announce = announce

    def check_offline(self, user_id: str, version: int) -> str | None:
        """The delayed check: flip the user offline if nothing happened since `version`.

        Returns the id of the presence.offline event sent, or None. Raises if the
        event could not be sent: the check is then retried, and finds the flip it
        made (version + 1, not yet announced) to send again.
        """
        state = self._presence.go_offline(user_id, version)
        if state is None:
            current = self._presence.get(user_id)
            ours = current is not None and not current.online and current.state_version == version + 1
            if not (ours and current.unannounced):
                return None
            state = current
        return self.announce(state, raise_errors=True)

    def announce(self, state: PresenceState, *, raise_errors: bool = False) -> str | None:
        """Send the presence event of the user's last flip. Failures are left to maintenance unless asked."""
        if self._announce is None:
            return None
        try:
            return self._announce(state)
        except Exception:
            if raise_errors:
                raise
            # The flip stays unannounced on the item; maintenance sends it.
            logger.exception("Presence event not sent", extra={"user_id": state.user_id})
            return None


class SessionTracker:
    """Connection records plus the user's presence. Without a presence store, only the records."""

    def __init__(
        self,
        connections: ConnectionStore,
        presence: PresenceStore | None = None,
        *,
        announce: Announce | None = None,
        schedule_check: ScheduleCheck | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._clock = clock
        self._presence = presence
        self._decider = PresenceDecider(presence, announce) if presence is not None else None
        self._schedule_check = schedule_check

    def open(
        self, connection_id: str, principal: Principal, ttl_seconds: int, max_sessions: int
    ) -> PresenceState | None:
        """Count a new connection, then record it; announce presence.online on the user's first session.

        At `max_sessions` the connection is refused, TooManySessions, before
        anything is written. Sessions whose connection record is gone (expired,
        or removed without their session) are ended first, so they never hold a
        place; sessions still connecting (see still_connecting) are not.
        """
        started = self._claim(connection_id, principal, ttl_seconds, max_sessions)
        try:
            self._connections.add(connection_id, principal.user_id, principal.topics, ttl_seconds, principal.expires_at)
        except Exception:
            self._give_back(principal.user_id, connection_id)
            raise
        if started is None:
            return None
        if started.came_online:
            self.announce(started.state)
        return started.state

    def _claim(
        self, connection_id: str, principal: Principal, ttl_seconds: int, max_sessions: int
    ) -> SessionStarted | None:
        for attempt in range(2):
            try:
                return self._count(connection_id, principal, ttl_seconds, max_sessions)
            except TooManySessions as refusal:
                stale = self._orphans(refusal)
                if attempt or not stale:
                    raise
                for stale_id in stale:
                    self._stop_counting(principal.user_id, stale_id)
        raise AssertionError("unreachable")

    def _orphans(self, refusal: TooManySessions) -> set[str]:
        """The refused user's sessions whose record is gone, leaving out those whose $connect may still run."""
        candidates = refusal.sessions - still_connecting(refusal.claimed_at, self._clock())
        return candidates - self._connections.existing(candidates) if candidates else set()

    def _give_back(self, user_id: str, connection_id: str) -> None:
        """Undo a connect whose record could not be written: what was written of it, then its session."""
        try:
            self._connections.remove(connection_id)
        finally:
            self._stop_counting(user_id, connection_id)

    def _count(
        self, connection_id: str, principal: Principal, ttl_seconds: int, max_sessions: int
    ) -> SessionStarted | None:
        if self._presence is None:
            self._connections.claim_session(principal.user_id, connection_id, max_sessions, ttl_seconds)
            return None
        return self._presence.session_started(principal.user_id, connection_id, principal.groups, max_sessions)

    def _stop_counting(self, user_id: str, connection_id: str, *, seen_now: bool = False) -> None:
        if self._presence is None:
            self._connections.release_session(user_id, connection_id)
        else:
            self.end_session(user_id, connection_id, seen_now=seen_now)

    def close(self, connection_id: str) -> bool:
        """$disconnect: the client left now. False if the connection was already removed."""
        return self._remove(connection_id, seen_now=True)

    def remove(self, connection_id: str) -> bool:
        """A connection found dead (GoneException): the user's lastSeen stays what it was (no clean end to record).

        A connection younger than CONNECTING_WINDOW_SECONDS is kept: its $connect may still be running.
        """
        return self._remove(connection_id, seen_now=False)

    def _remove(self, connection_id: str, *, seen_now: bool) -> bool:
        record = self._connections.get(connection_id)
        if record is None:
            return False
        connected_at = parse_timestamp(record.get("connectedAt")) or 0.0
        if not seen_now and self._clock() - connected_at < CONNECTING_WINDOW_SECONDS:
            return False
        if record.get("userId"):
            self._stop_counting(str(record["userId"]), connection_id, seen_now=seen_now)
        return self._connections.remove(connection_id)

    def end_session(self, user_id: str, connection_id: str, *, seen_now: bool = False) -> PresenceState | None:
        """Stop counting one session; after the last one, schedule the offline check.

        None when the session was not counted (someone else removed it first).
        """
        if self._presence is None:
            return None
        state = self._presence.session_ended(user_id, connection_id, seen_now=seen_now)
        if state is not None and state.sessions == 0 and self._schedule_check is not None:
            try:
                self._schedule_check(user_id, state.version)
            except Exception:
                # Maintenance finds users left online with no session and decides for them.
                logger.exception("Offline check not scheduled", extra={"user_id": user_id})
        return state

    def check_offline(self, user_id: str, version: int) -> str | None:
        """See PresenceDecider.check_offline."""
        return self._decider.check_offline(user_id, version) if self._decider is not None else None

    def announce(self, state: PresenceState, *, raise_errors: bool = False) -> str | None:
        """See PresenceDecider.announce."""
        return self._decider.announce(state, raise_errors=raise_errors) if self._decider is not None else None
