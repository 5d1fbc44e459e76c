"""What `process-events` does with one SQS record: validate, store on each topic, then deliver."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from realtime.core.encoding import compact_json, format_timestamp
from realtime.core.errors import PermanentError
from realtime.events.connections import ConnectionStore
from realtime.events.delivery import Deliverer, DeliveryReport
from realtime.events.models import Event, ProducerMessage
from realtime.events.rules import EventTypeRules
from realtime.events.store import EventStore

MAX_REPORTED_ERRORS = 5


@dataclass(frozen=True)
class PendingEvent:
    """A validated message with its id and audience settled, ready to store."""

    event_id: str
    type: str
    data: dict[str, Any]
    topics: list[str]
    occurred_at: str


@dataclass
class ProcessReport:
    stored: int = 0
    duplicates: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _field_errors(error: ValidationError) -> str:
    details = error.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in d['loc']) or 'message'}: {d['msg']}" for d in details]
    if len(parts) > MAX_REPORTED_ERRORS:
        parts = [*parts[:MAX_REPORTED_ERRORS], f"and {len(parts) - MAX_REPORTED_ERRORS} more"]
    return "; ".join(parts)


class EventPipeline:
    def __init__(
        self,
        *,
        store: EventStore,
        connections: ConnectionStore,
        deliverer: Deliverer,
        rules: EventTypeRules,
        max_data_bytes: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._connections = connections
        self._deliverer = deliverer
        self._rules = rules
        self._max_data_bytes = max_data_bytes
        self._now = now

    def parse(self, body: str, message_id: str, sent_at: datetime | None = None) -> PendingEvent:
        """Validate a queue message. Raises PermanentError for anything a retry cannot fix."""
        try:
            # NaN and Infinity are not JSON, and browsers could not parse a frame carrying them.
            raw = json.loads(body, parse_constant=_reject_constant)
        except ValueError as error:
            raise PermanentError("invalid_json", f"body is not JSON: {error}") from None
        try:
            message = ProducerMessage.model_validate(raw)
        except ValidationError as error:
            raise PermanentError("invalid_message", _field_errors(error)) from None
        try:
            size = len(compact_json(message.data).encode("utf-8"))
        except UnicodeEncodeError:
            raise PermanentError("invalid_message", "data: contains invalid Unicode (lone surrogate)") from None
        if size > self._max_data_bytes:
            raise PermanentError("too_large", f"data is {size} bytes serialized; the limit is {self._max_data_bytes}")
        topics = message.audience or self._rules.audience_for(message.type, message.data)
        if not topics:
            raise PermanentError(
                "no_audience", f"message has no audience and no EVENT_TYPE_RULES entry matches type {message.type!r}"
            )
        # The SQS message id as default keeps a redelivered id-less message idempotent.
        occurred = message.occurred_at or sent_at
        return PendingEvent(
            event_id=message.id or message_id,
            type=message.type,
            data=message.data,
            topics=topics,
            occurred_at=format_timestamp(occurred) if occurred else "",
        )

    def process(self, pending: PendingEvent) -> ProcessReport:
        """Store on every topic first (store before deliver), then deliver each stored frame."""
        published_at = format_timestamp(self._now())
        occurred_at = pending.occurred_at or published_at
        report = ProcessReport()
        frames: list[tuple[str, bytes]] = []

        def build_body(topic: str) -> Callable[[int], str]:
            def body(seq: int) -> str:
                return Event(
                    id=pending.event_id,
                    type=pending.type,
                    topic=topic,
                    seq=seq,
                    data=pending.data,
                    occurred_at=occurred_at,
                    published_at=published_at,
                ).to_json()

            return body

        for topic in pending.topics:
            build = build_body(topic)
            seq, created, _ = self._store.append(
                pending.event_id, topic, build, event_type=pending.type, published_at=published_at
            )
            if created:
                report.stored += 1
                frames.append((topic, build(seq).encode("utf-8")))
                continue
            report.duplicates += 1
            # A redelivery may follow a failed delivery: send the stored frame again
            # (at-least-once; clients drop copies by (topic, seq)).
            stored_body = self._store.get_body(topic, seq)
            if stored_body is not None:
                frames.append((topic, stored_body.encode("utf-8")))

        posts = [
            (connection_id, frame) for topic, frame in frames for connection_id in self._connections.subscribers(topic)
        ]
        report.delivery = self._deliverer.deliver(posts)
        return report
