"""Presence events and the delayed offline check.

Presence events are producer messages on the presence-events queue, which
only the module's functions may send to and process-events also consumes: they
take the same store-then-deliver path as every event and are readable with
`GET /events`, while producers can neither forge nor suppress them (their
types and ids are reserved). Their id is derived from the user and the version
of the flip, so sending one twice (a retry, or maintenance re-sending an
unconfirmed one) stores it once.

The offline decision waits for the grace period in an SQS message with
`DelaySeconds`: a reconnect inside the grace period moves the user's version,
and the check then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

from realtime.core.contract import MAX_AUDIENCE_TOPICS, is_topic
from realtime.core.encoding import compact_json
from realtime.core.topics import group_topic, presence_topic
from realtime.presence.store import PresenceState, PresenceStore

PRESENCE_ONLINE = "presence.online"
PRESENCE_OFFLINE = "presence.offline"
MAX_EVENT_ID_LENGTH = 128  # contract.EVENT_ID_PATTERN


def presence_event_id(user_id: str, version: int) -> str:
    """`presence-<user>-<version>`; a long user id is replaced by its hash to fit the id limit."""
    event_id = f"presence-{user_id}-{version}"
    if len(event_id) <= MAX_EVENT_ID_LENGTH:
        return event_id
    return f"presence-{hashlib.sha256(user_id.encode()).hexdigest()[:48]}-{version}"


def presence_audience(state: PresenceState, *, include_groups: bool) -> list[str]:
    topics = [presence_topic(state.user_id)]
    if include_groups:
        topics += [t for t in dict.fromkeys(group_topic(g) for g in state.groups) if is_topic(t)]
    return topics[:MAX_AUDIENCE_TOPICS]


def presence_message(state: PresenceState, *, include_groups: bool) -> dict[str, Any]:
    """The producer message announcing the user's last flip (online or offline, at stateVersion)."""
    message: dict[str, Any] = {
        "type": PRESENCE_ONLINE if state.online else PRESENCE_OFFLINE,
        "id": presence_event_id(state.user_id, state.state_version),
        "data": {"userId": state.user_id, "version": state.state_version, "lastSeen": state.last_seen},
        "audience": presence_audience(state, include_groups=include_groups),
    }
    if state.state_changed_at:
        message["occurredAt"] = state.state_changed_at
    return message


class PresenceAnnouncer:
    """Sends the presence event of a flip to the presence-events queue, then marks it sent on the user's item."""

    def __init__(self, sqs: Any, queue_url: str, store: PresenceStore, *, include_groups: bool) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._store = store
        self._include_groups = include_groups

    def announce(self, state: PresenceState) -> str:
        message = presence_message(state, include_groups=self._include_groups)
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=compact_json(message))
        self._store.mark_announced(state.user_id, state.state_version)
        return message["id"]


class OfflineCheck(msgspec.Struct, frozen=True):
    user_id: str
    version: int  # the user's version when the last session ended

    def to_json(self) -> str:
        return compact_json({"userId": self.user_id, "version": self.version})

    @classmethod
    def from_json(cls, body: str) -> OfflineCheck:
        """Raises ValueError for a body this module did not write."""
        raw = json.loads(body)
        if not isinstance(raw, dict):
            raise ValueError("an offline check is a JSON object")
        user_id, version = raw.get("userId"), raw.get("version")
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("userId must be a non-empty string")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError("version must be a positive integer")
        return cls(user_id, version)


class OfflineChecks:
    """Schedules an offline check `grace_seconds` from now (SQS DelaySeconds, at most 900)."""

    def __init__(self, sqs: Any, queue_url: str, grace_seconds: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._grace_seconds = grace_seconds

    @property
    def grace_seconds(self) -> int:
        return self._grace_seconds

    def schedule(self, user_id: str, version: int) -> None:
        self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=OfflineCheck(user_id, version).to_json(),
            DelaySeconds=self._grace_seconds,
        )
