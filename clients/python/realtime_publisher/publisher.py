"""Publish events to the realtime events queue from an application server.

    from realtime_publisher import Publisher

    publisher = Publisher(queue_url)                      # or REALTIME_EVENTS_QUEUE_URL
    publisher.publish("order.updated", {"orderId": "o-1"}, audience=["user:42"])
    publisher.publish_many([Event("a.b", {...}, audience=["all"]), ...])  # 10 per SQS call

Messages are validated here, before they are sent, against the same rules the
`process-events` function applies, so a mistake raises at the call site rather
than landing in the dead-letter queue. Only boto3 is needed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

# The wire contract (contract/wire.json; a test keeps these equal to it). Always
# matched with fullmatch: with re.match, "$" would let a trailing newline through.
TYPE_PATTERN = re.compile(r"^[a-z0-9_.-]{1,64}$")
TOPIC_PATTERN = re.compile(r"^(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,128})$")
ID_PATTERN = re.compile(r"^[!-~]{1,128}$")  # printable ASCII, no spaces
MAX_AUDIENCE = 100
DEFAULT_MAX_DATA_BYTES = 32 * 1024  # the module's max_event_data_bytes default
MAX_DATA_BYTES = 120 * 1024  # the most max_event_data_bytes can be
MAX_DATA_DEPTH = 64  # objects and lists inside data, data itself included
# Presence events are the module's own: a type or id starting with these is refused.
RESERVED_TYPE_PREFIX = "presence."
RESERVED_ID_PREFIX = "presence-"
SQS_BATCH_LIMIT = 10  # messages per SendMessageBatch
SQS_BATCH_BYTES = 256 * 1024  # total payload per SendMessageBatch

# RFC 3339 with a time zone: a strict subset of what process-events parses, so
# a time this accepts is never the reason for a dead letter.
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


class InvalidEvent(ValueError):
    """The event would be refused by the pipeline; nothing was sent. ``field`` names the wire field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


class PublishError(RuntimeError):
    """SQS refused some messages of a batch; ``failed`` maps each event's index to the reason."""

    def __init__(self, failed: dict[int, str]):
        self.failed = failed
        super().__init__(f"{len(failed)} event(s) were not accepted by SQS: {failed}")


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    audience: Sequence[str] | None = None
    id: str | None = None
    occurred_at: datetime | str | None = None

    def to_message(self, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> str:
        """The SQS message body (docs/design.md, producer message), or InvalidEvent."""
        if not _matches(TYPE_PATTERN, self.type):
            raise InvalidEvent("type", f"type {self.type!r} must match {TYPE_PATTERN.pattern}")
        if self.type.startswith(RESERVED_TYPE_PREFIX):
            raise InvalidEvent("type", f"types starting with {RESERVED_TYPE_PREFIX!r} are the module's own")
        _check_data(self.data, max_data_bytes)
        message: dict[str, Any] = {"type": self.type, "data": self.data}
        if self.audience is not None:
            message["audience"] = _checked_audience(self.audience)
        if self.id is not None:
            if not _matches(ID_PATTERN, self.id):
                raise InvalidEvent("id", "id must be 1-128 printable ASCII characters without spaces")
            if self.id.startswith(RESERVED_ID_PREFIX):
                raise InvalidEvent("id", f"ids starting with {RESERVED_ID_PREFIX!r} are the module's own")
            message["id"] = self.id
        if self.occurred_at is not None:
            message["occurredAt"] = _timestamp(self.occurred_at)
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _check_data(data: object, max_data_bytes: int) -> None:
    if not isinstance(data, dict):
        raise InvalidEvent("data", "data must be a JSON object (a dict)")
    if _too_deep(data):
        raise InvalidEvent("data", f"data nests dicts and lists more than {MAX_DATA_DEPTH} levels deep")
    try:
        # Measured as process-events measures it: compact JSON, UTF-8.
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except UnicodeEncodeError as error:
        raise InvalidEvent("data", "data contains invalid Unicode (a lone surrogate)") from error
    except (TypeError, ValueError) as error:
        raise InvalidEvent("data", f"data is not JSON-serialisable: {error}") from error
    if size > max_data_bytes:
        raise InvalidEvent("data", f"data is {size} bytes; the limit is {max_data_bytes}")


def _too_deep(data: dict) -> bool:
    """Whether data nests deeper than MAX_DATA_DEPTH, checked a level at a time (no recursion to overflow)."""
    level: list[Any] = [data]
    for _ in range(MAX_DATA_DEPTH):
        level = [
            child
            for node in level
            if isinstance(node, dict | list | tuple)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
    return any(isinstance(node, dict | list | tuple) for node in level)


def _checked_audience(audience: Sequence[str]) -> list[str]:
    if isinstance(audience, str):
        raise InvalidEvent("audience", "audience must be a list of topics, not a string")
    topics = list(audience)
    if not 1 <= len(topics) <= MAX_AUDIENCE:
        raise InvalidEvent("audience", f"audience must have 1 to {MAX_AUDIENCE} topics")
    bad = [topic for topic in topics if not _matches(TOPIC_PATTERN, topic)]
    if bad:
        raise InvalidEvent("audience", f"not a topic: {bad!r} (user:<id>, group:<name>, presence:<id> or all)")
    if len(set(topics)) != len(topics):
        raise InvalidEvent("audience", "audience lists a topic twice")
    return topics


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidEvent("occurredAt", "occurred_at must be timezone-aware")
        value = value.isoformat().replace("+00:00", "Z")
    if not _matches(TIMESTAMP_PATTERN, value):
        raise InvalidEvent("occurredAt", f"occurred_at {value!r} is not an ISO 8601 time with a time zone")
    try:
        datetime.fromisoformat(value).astimezone(UTC)  # a real date, and one that exists in UTC
    except (ValueError, OverflowError) as error:
        raise InvalidEvent("occurredAt", f"occurred_at {value!r} is not a valid time: {error}") from error
    return value


class Publisher:
    def __init__(
        self,
        queue_url: str | None = None,
        *,
        sqs_client: Any = None,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    ):
        self.queue_url = queue_url or os.environ.get("REALTIME_EVENTS_QUEUE_URL")
        if not self.queue_url:
            raise ValueError("queue_url is required (or set REALTIME_EVENTS_QUEUE_URL)")
        if not 0 < max_data_bytes <= MAX_DATA_BYTES:
            raise ValueError(f"max_data_bytes must be 1 to {MAX_DATA_BYTES}, as the module's max_event_data_bytes")
        self.sqs = sqs_client or boto3.client("sqs")
        self.max_data_bytes = max_data_bytes

    def publish(
        self,
        type: str,  # the wire format's field names
        data: dict[str, Any],
        *,
        audience: Sequence[str] | None = None,
        id: str | None = None,
        occurred_at: datetime | str | None = None,
    ) -> str:
        """Send one event; returns the SQS message id."""
        body = Event(type, data, audience, id, occurred_at).to_message(self.max_data_bytes)
        return self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)["MessageId"]

    def publish_many(self, events: Iterable[Event]) -> list[str]:
        """Send events, up to 10 per SQS call. All are validated before any is sent.

        Returns the SQS message ids in order; raises PublishError naming the
        events SQS refused (the others were sent).
        """
        bodies = [event.to_message(self.max_data_bytes) for event in events]
        message_ids: list[str] = [""] * len(bodies)
        failed: dict[int, str] = {}
        for chunk in _batches(bodies):
            response = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(index), "MessageBody": bodies[index]} for index in chunk],
            )
            for ok in response.get("Successful", []):
                message_ids[int(ok["Id"])] = ok["MessageId"]
            for error in response.get("Failed", []):
                failed[int(error["Id"])] = f"{error.get('Code')}: {error.get('Message', '')}".strip()
        if failed:
            raise PublishError(failed)
        return message_ids


def _batches(bodies: list[str]) -> Iterable[list[int]]:
    """Indexes of ``bodies`` grouped within SQS's per-call count and size limits."""
    chunk: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        body_size = len(body.encode())
        if chunk and (len(chunk) == SQS_BATCH_LIMIT or size + body_size > SQS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(index)
        size += body_size
    if chunk:
        yield chunk
