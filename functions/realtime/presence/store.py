"""Per-user presence state: live sessions, last seen, and a version that only grows.

One item per user in the presence table (hash key `userId`):

    connections       SS    ids of the user's live connections (DynamoDB drops the attribute when empty)
    online            BOOL  the state last decided, i.e. what watchers were (or are being) told
    version           N     +1 on every session change and every flip; never reset (the item never expires)
    stateVersion      N     the version at which `online` last flipped: the version its presence event carries
    stateChangedAt    S     when `online` last flipped
    announcedVersion  N     the last stateVersion handed to the events queue (an outbox: a gap is re-sent)
    lastSeen          S     the latest connect or clean disconnect (pings are answered by the gateway and write nothing)
    sessionEndedAt    S     the last time a session ended (maintenance finds overdue offline checks with it)
    groups            L     the groups of the user's latest token (watch rights and the group audience)
    claimed:<id>      N     when the session <id> was counted (epoch seconds): a $connect counts its session
                            before writing its connection record (see realtime.connections.store.CLAIM_PREFIX)

Sessions are counted by connection id, not with a counter: adding or removing
the same id twice changes nothing, so a $disconnect, a maintenance run and a
delivery that saw GoneException, racing to remove one dead connection, can
never count it twice. Each transition is one conditional UpdateItem, so
concurrent connects and disconnects of a user serialize on its item: no
read-modify-write anywhere.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from realtime.connections.store import TooManySessions, claim_attribute, claims_on
from realtime.core.encoding import timestamp_at
from realtime.core.scanning import Key, ScanPage, scan_pages

# BatchGetItem takes at most 100 keys.
BATCH_GET_LIMIT = 100
# A connect retries when a concurrent flip changes which of its two updates applies.
MAX_CONNECT_ATTEMPTS = 8


_PLACEHOLDER = re.compile(r"#(\w+)")


def _names(*expressions: str) -> dict[str, str]:
    """ExpressionAttributeNames for the `#name` placeholders used (`online`, `connections` are reserved words)."""
    return {f"#{name}": name for expression in expressions for name in _PLACEHOLDER.findall(expression)}


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class PresenceState(msgspec.Struct, frozen=True):
    user_id: str
    connection_ids: frozenset[str] = frozenset()
    online: bool = False
    version: int = 0
    state_version: int = 0
    announced_version: int = 0
    state_changed_at: str | None = None
    last_seen: str | None = None
    session_ended_at: str | None = None
    groups: tuple[str, ...] = ()
    claims: tuple[tuple[str, float], ...] = ()  # (connection id, when its session was counted), for this version's

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> PresenceState:
        return cls(
            user_id=str(item["userId"]),
            connection_ids=frozenset(item.get("connections", ())),
            online=bool(item.get("online", False)),
            version=int(item.get("version", 0)),
            state_version=int(item.get("stateVersion", 0)),
            announced_version=int(item.get("announcedVersion", 0)),
            state_changed_at=item.get("stateChangedAt"),
            last_seen=item.get("lastSeen"),
            session_ended_at=item.get("sessionEndedAt"),
            groups=tuple(str(g) for g in item.get("groups", ())),
            claims=tuple(sorted(claims_on(item).items())),
        )

    @property
    def claimed_at(self) -> dict[str, float]:
        """Connection id -> when its session was counted (sessions counted by earlier versions are absent)."""
        return dict(self.claims)

    @property
    def sessions(self) -> int:
        return len(self.connection_ids)

    @property
    def unannounced(self) -> bool:
        """The last flip has not (yet) been handed to the events queue."""
        return self.state_version > self.announced_version

    def public_view(self) -> dict[str, Any]:
        """What `GET /presence` shows for this user."""
        return {"online": self.online, "sessions": self.sessions, "lastSeen": self.last_seen, "version": self.version}


class SessionStarted(msgspec.Struct, frozen=True):
    state: PresenceState
    came_online: bool  # this connect flipped the user online: it announces presence.online


class PresenceStore:
    def __init__(self, dynamodb: Any, table_name: str, *, clock: Callable[[], float] = time.time) -> None:
        self._dynamodb = dynamodb  # the service resource, for BatchGetItem
        self._table_name = table_name
        self._table = dynamodb.Table(table_name)
        self._clock = clock

    def _now_iso(self) -> str:
        return timestamp_at(self._clock())

    def _update(self, user_id: str, names: Mapping[str, str] | None = None, **request: Any) -> PresenceState | None:
        """One conditional UpdateItem; the new state, or None if the condition did not hold.

        `names`: placeholders whose attribute is not the placeholder's own name.
        """
        try:
            response = self._table.update_item(
                Key={"userId": user_id},
                ReturnValues="ALL_NEW",
                ExpressionAttributeNames={
                    **_names(request["UpdateExpression"], request["ConditionExpression"]),
                    **(names or {}),
                },
                **request,
            )
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        return PresenceState.from_item(response["Attributes"])

    # --- transitions ---------------------------------------------------------------

    def session_started(
        self, user_id: str, connection_id: str, groups: Iterable[str], max_sessions: int
    ) -> SessionStarted:
        """Count a new session. Exactly one of concurrent first connects flips the user online.

        Raises TooManySessions when the user already has `max_sessions`, having
        written nothing: the size of the session set is part of each update's
        condition, so concurrent connects cannot both take the last place. Each
        update records when the session was counted (`claimed:<id>`).
        """
        now = self._now_iso()
        claim = {"#claimed": claim_attribute(connection_id)}
        values = {
            ":ids": {connection_id},
            ":id": connection_id,
            ":max": max_sessions,
            ":zero": 0,
            ":one": 1,
            ":true": True,
            ":now": now,
            ":groups": list(dict.fromkeys(groups)),
            ":claimedAt": int(self._clock()),
        }
        room = "(attribute_not_exists(#connections) OR size(#connections) < :max OR contains(#connections, :id))"
        for _ in range(MAX_CONNECT_ATTEMPTS):
            # Already online (another session, or a reload inside the grace period): nothing to announce.
            state = self._update(
                user_id,
                claim,
                UpdateExpression="ADD #connections :ids SET #version = if_not_exists(#version, :zero) + :one, "
                "#lastSeen = :now, #groups = :groups, #claimed = :claimedAt",
                ConditionExpression=f"#online = :true AND {room}",
                ExpressionAttributeValues=values,
            )
            if state is not None:
                return SessionStarted(state, came_online=False)
            state = self._update(
                user_id,
                claim,
                UpdateExpression="ADD #connections :ids SET #version = if_not_exists(#version, :zero) + :one, "
                "#stateVersion = if_not_exists(#version, :zero) + :one, #online = :true, #stateChangedAt = :now, "
                "#lastSeen = :now, #groups = :groups, #claimed = :claimedAt",
                ConditionExpression=f"(attribute_not_exists(#online) OR #online = :false) AND {room}",
                ExpressionAttributeValues={**values, ":false": False},
            )
            if state is not None:
                return SessionStarted(state, came_online=True)
            current = self.get(user_id)
            if current is not None and current.sessions >= max_sessions and connection_id not in current.connection_ids:
                raise TooManySessions(user_id, current.connection_ids, current.claimed_at)
            # Someone flipped the user between our two attempts: try again from the top.
        raise RuntimeError(f"presence of {user_id!r} kept changing; gave up after {MAX_CONNECT_ATTEMPTS} attempts")

    def session_ended(self, user_id: str, connection_id: str, *, seen_now: bool) -> PresenceState | None:
        """Stop counting a session. None if it was not counted (already removed, or never added).

        `seen_now` (a clean $disconnect) also moves lastSeen; a connection found
        dead later leaves it at the user's latest connect or clean disconnect.
        """
        now = self._now_iso()
        return self._update(
            user_id,
            {"#claimed": claim_attribute(connection_id)},
            UpdateExpression="DELETE #connections :ids SET #version = #version + :one, #sessionEndedAt = :now"
            + (", #lastSeen = :now" if seen_now else "")
            + " REMOVE #claimed",
            ConditionExpression="contains(#connections, :id)",
            ExpressionAttributeValues={":ids": {connection_id}, ":id": connection_id, ":one": 1, ":now": now},
        )

    def go_offline(self, user_id: str, expected_version: int) -> PresenceState | None:
        """Flip the user offline if nothing happened since `expected_version` (the last session's end).

        Any connect or disconnect since has moved the version, so a reload inside
        the grace period makes this a no-op. None when it did not flip.
        """
        return self._update(
            user_id,
            UpdateExpression="SET #online = :false, #version = #version + :one, #stateVersion = #version + :one, "
            "#stateChangedAt = :now",
            ConditionExpression="#version = :expected AND #online = :true AND attribute_not_exists(#connections)",
            ExpressionAttributeValues={
                ":false": False,
                ":true": True,
                ":one": 1,
                ":expected": expected_version,
                ":now": self._now_iso(),
            },
        )

    def mark_announced(self, user_id: str, state_version: int) -> None:
        """Record that the flip at `state_version` reached the events queue (never moves backwards)."""
        self._update(
            user_id,
            UpdateExpression="SET #announcedVersion = :v",
            ConditionExpression="attribute_exists(#userId) AND "
            "(attribute_not_exists(#announcedVersion) OR #announcedVersion < :v)",
            ExpressionAttributeValues={":v": state_version},
        )

    # --- reads ---------------------------------------------------------------------

    def get(self, user_id: str) -> PresenceState | None:
        item = self._table.get_item(Key={"userId": user_id}, ConsistentRead=True).get("Item")
        return PresenceState.from_item(item) if item else None

    def get_many(self, user_ids: Iterable[str]) -> dict[str, PresenceState]:
        """The known users among `user_ids` (unknown ones are absent), with BatchGetItem."""
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, PresenceState] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [{"userId": user_id} for user_id in wanted[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self._table_name: {"Keys": keys}}
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table_name, []):
                    state = PresenceState.from_item(item)
                    found[state.user_id] = state
                # Throttled keys come back unprocessed: ask again for those only.
                request = response.get("UnprocessedKeys") or {}
        return found

    def needing_repair(self, *, start_key: Key | None, budget: int) -> Iterator[ScanPage[PresenceState]]:
        """Users maintenance should look at: with sessions, online, or with an unannounced flip.

        Scan pages from `start_key`, at most `budget` items read (one small item
        per user ever seen), each user with its key (where a scan resumes after it).
        """
        condition = (
            "attribute_exists(#connections) OR #online = :true OR (attribute_exists(#stateVersion) AND "
            "(attribute_not_exists(#announcedVersion) OR #announcedVersion < #stateVersion))"
        )
        request: dict[str, Any] = {
            "FilterExpression": condition,
            "ExpressionAttributeNames": _names(condition),
            "ExpressionAttributeValues": {":true": True},
        }
        return scan_pages(
            self._table,
            request,
            key_names=("userId",),
            start_key=start_key,
            budget=budget,
            convert=PresenceState.from_item,
        )
