"""What `process-events` does with a batch of SQS records: validate each, store them all, then deliver."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from realtime.core.contract import MAX_DATA_DEPTH, RESERVED_ID_PREFIX, RESERVED_TYPE_PREFIX
from realtime.core.encoding import compact_json, format_timestamp, nesting_depth
from realtime.core.errors import PermanentError, TransientError
from realtime.core.topics import group_topic, presence_topic
from realtime.events.delivery import DeliveryReport, EventDelivery
from realtime.events.models import Event, Publication, event_key
from realtime.events.producer import ProducerMessage, parse_producer_message
from realtime.events.store import AppendResult, EventStore, NewEvent

if TYPE_CHECKING:  # its rule models are pydantic's: imported only when there are rules (realtime.services)
    from realtime.events.audience import EventTypeRules


class PendingEvent(msgspec.Struct, frozen=True):
    """A validated message with its id and audience settled, ready to store."""

    event_id: str
    type: str
    data: dict[str, Any]
    topics: list[str]
    occurred_at: str
    key: str  # what storage is idempotent on: the id, within its producer's namespace (see idempotency_key)

    @property
    def event_key(self) -> str:
        """The stored event's opaque `key` on the wire, what clients dedupe on (models.event_key)."""
        return event_key(self.key)

    def stored_body(self, topic: str, seq: int, published_at: str) -> str:
        """The event as stored on one topic: what `GET /events` returns."""
        return Event(
            id=self.event_id,
            type=self.type,
            topic=topic,
            seq=seq,
            data=self.data,
            occurred_at=self.occurred_at or published_at,
            published_at=published_at,
            key=self.event_key,
        ).to_json()


class StoredOne(msgspec.Struct):
    event: PendingEvent
    seqs: dict[str, int]
    created: list[str]  # the topics this batch stored it on (the others had it already)


class BatchReport(msgspec.Struct):
    stored: list[StoredOne] = msgspec.field(default_factory=list)
    failed: dict[int, Exception] = msgspec.field(default_factory=dict)  # index in the batch -> why it must be retried
    delivery: DeliveryReport = msgspec.field(default_factory=DeliveryReport)


# Role ids (`AROA...`): a SenderId starting with one goes on with `:<session name>`, which varies.
ROLE_ID_PREFIX = "AROA"


def producer_of(sender_id: str | None) -> str | None:
    """The idempotency namespace of an SQS record's SenderId (docs/design.md, "Producer identity").

    Only an assumed role's session name is dropped (`AROA...:session` -> `AROA...`): a role's
    sessions (Lambda, EC2, SSO, web identity) are one producer. Every other form is kept whole,
    so a federated user (`<account>:<name>`) is never the account, nor another federated user;
    its `:` becomes `/` (which no SenderId holds) so a namespace never contains the `:` that
    ends it in an idempotency key. An IAM user (`AIDA...`), the account root (`<account>`) and
    an AWS service delivering for a producer (SNS, EventBridge: the service's own id) are
    their own namespaces.
    """
    if not sender_id:
        return None
    principal, colon, _session = sender_id.partition(":")
    if colon and principal.startswith(ROLE_ID_PREFIX):
        return principal
    return sender_id.replace(":", "/")


def idempotency_key(event_id: str, producer: str | None) -> str:
    """A producer's ids are its own: two producers choosing one id store two events.

    The module's own events (producer None) and producers SQS names no sender for
    keep the id itself; a producer's ids never collide with the module's, whose id
    space (RESERVED_ID_PREFIX) producers may not use.
    """
    return f"from:{producer}:{event_id}" if producer else event_id


def _refuse_reserved(message: ProducerMessage) -> None:
    if message.type.startswith(RESERVED_TYPE_PREFIX):
        raise PermanentError(
            "reserved_type", f"types starting with {RESERVED_TYPE_PREFIX!r} are the module's own presence events"
        )
    if message.id is not None and message.id.startswith(RESERVED_ID_PREFIX):
        raise PermanentError(
            "reserved_id", f"ids starting with {RESERVED_ID_PREFIX!r} are the module's own presence events"
        )


def _refuse_foreign(message: ProducerMessage) -> None:
    """A record of the presence-events queue must be what the module writes there (presence/announcer.py):
    a presence type and id, told to the user's presence topic and, at most, group topics. Anything else
    (e.g. redriven into that queue from its DLQ) is not trusted as the module's own."""
    if not message.type.startswith(RESERVED_TYPE_PREFIX):
        raise PermanentError(
            "not_internal",
            f"a presence-events record's type starts with {RESERVED_TYPE_PREFIX!r}; got {message.type!r}",
        )
    if message.id is None or not message.id.startswith(RESERVED_ID_PREFIX):
        raise PermanentError(
            "not_internal", f"a presence-events record's id starts with {RESERVED_ID_PREFIX!r}; got {message.id!r}"
        )
    user_id = message.data.get("userId")
    own_topic = presence_topic(user_id) if isinstance(user_id, str) else None
    audience = message.audience or []
    others = [t for t in audience if t != own_topic and not t.startswith(group_topic(""))]
    if own_topic not in audience or others:
        raise PermanentError(
            "not_internal",
            "a presence-events record is told to presence:<data.userId> and group topics only; "
            f"got {audience[:5]!r}{' and more' if len(audience) > 5 else ''} for userId {user_id!r}",
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class EventPipeline:
    def __init__(
        self,
        *,
        store: EventStore,
        delivery: EventDelivery,
        rules: EventTypeRules | None,
        max_data_bytes: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._delivery = delivery
        self._rules = rules
        self._max_data_bytes = max_data_bytes
        self._now = now

    def parse(
        self,
        body: str,
        message_id: str,
        sent_at: datetime | None = None,
        *,
        producer: str | None = None,
        internal: bool = False,
    ) -> PendingEvent:
        """Validate a queue message. Raises PermanentError for anything a retry cannot fix.

        `internal`: a record of the presence-events queue, which only the module's
        functions may send to: it must also look like theirs (a presence event), and
        keeps its id as is. Any other message may not use the reserved types and ids;
        `producer` (see producer_of) namespaces its ids.
        """
        try:
            # NaN and Infinity are not JSON, and browsers could not parse a frame carrying them.
            raw = json.loads(body, parse_constant=_reject_constant)
        except RecursionError:
            raise PermanentError(
                "too_deep", f"the body nests objects and lists too deep to parse; data may nest {MAX_DATA_DEPTH} levels"
            ) from None
        except ValueError as error:
            raise PermanentError("invalid_json", f"body is not JSON: {error}") from None
        # Before anything walks it recursively (validation, serialization, the clients' parsers).
        if isinstance(raw, dict) and nesting_depth(raw.get("data"), MAX_DATA_DEPTH) > MAX_DATA_DEPTH:
            raise PermanentError("too_deep", f"data nests objects and lists more than {MAX_DATA_DEPTH} levels deep")
        message = parse_producer_message(raw)
        if internal:
            _refuse_foreign(message)
        else:
            _refuse_reserved(message)
        try:
            size = len(compact_json(message.data).encode("utf-8"))
        except UnicodeEncodeError:
            raise PermanentError("invalid_message", "data: contains invalid Unicode (lone surrogate)") from None
        if size > self._max_data_bytes:
            raise PermanentError("too_large", f"data is {size} bytes serialized; the limit is {self._max_data_bytes}")
        topics = message.audience or (self._rules and self._rules.audience_for(message.type, message.data))
        if not topics:
            raise PermanentError(
                "no_audience", f"message has no audience and no EVENT_TYPE_RULES entry matches type {message.type!r}"
            )
        # The SQS message id as default keeps a redelivered id-less message idempotent.
        occurred = message.occurred_at or sent_at
        event_id = message.id or message_id
        return PendingEvent(
            event_id=event_id,
            type=message.type,
            data=message.data,
            topics=topics,
            occurred_at=format_timestamp(occurred) if occurred else "",
            key=idempotency_key(event_id, None if internal else producer),
        )

    def process(self, batch: Sequence[PendingEvent], *, deadline: float | None = None) -> BatchReport:
        """Store every event of the batch on each of its topics, then deliver those wholly stored.

        An event a topic failed on (throttling, contention) is reported failed:
        its message is retried, finds what was stored, and stores the rest. A
        redelivered event is delivered again (the first attempt may have
        stopped between storing and delivering); clients drop the copy.
        Delivery never fails an event: a post that fails is retried alone.

        Messages with one key (one producer, one id) in a batch are one event
        (docs/design.md, "One id in one batch"): on each topic the first of them
        that names it is stored, and the event is delivered once, on every topic
        any of them stored, so an audience split across messages (db-changes
        over 100 topics) reaches every topic. Only a message of other content
        under the same key is delivered apart, on the topics it stored.
        """
        result = self._store.append_batch(
            [
                NewEvent(topic, event.key, event.type, _body_of(event, topic))
                for event in batch
                for topic in event.topics
            ],
            format_timestamp(self._now()),
        )
        # The store keeps, per (key, topic), the first message of the batch naming it (append_batch).
        kept_by: dict[tuple[str, str], int] = {}
        for index, event in enumerate(batch):
            for topic in event.topics:
                kept_by.setdefault((event.key, topic), index)
        contents = [_content_of(event) for event in batch]
        report = BatchReport()
        counted: set[tuple[str, str]] = set()
        deliveries: dict[tuple[str, str], tuple[PendingEvent, dict[str, AppendResult]]] = {}
        for index, event in enumerate(batch):
            failed = next((result.failed[topic] for topic in event.topics if topic in result.failed), None)
            if failed is not None:
                report.failed[index] = failed
                continue
            found = {topic: result.stored[(topic, event.key)] for topic in event.topics}
            created = [t for t, f in found.items() if f.created and (event.key, t) not in counted]
            counted.update((event.key, t) for t in event.topics)
            report.stored.append(StoredOne(event, {t: f.seq for t, f in found.items()}, created))
            _, topics = deliveries.setdefault((event.key, contents[index]), (event, {}))
            # A topic is delivered with the content stored there: a message of other content kept it.
            topics.update({t: f for t, f in found.items() if contents[kept_by[(event.key, t)]] == contents[index]})
        publications = []
        for event, found in deliveries.values():
            if not found:
                continue
            published_at = min(f.published_at for f in found.values())
            publications.append(
                Publication(
                    id=event.event_id,
                    type=event.type,
                    data=event.data,
                    occurred_at=event.occurred_at or published_at,
                    published_at=published_at,
                    seqs={topic: f.seq for topic, f in found.items()},
                    key=event.event_key,
                )
            )
        report.delivery = self._delivery.deliver_stored(publications, deadline=deadline)
        for index, event in enumerate(batch):
            if event.event_id in report.delivery.unqueued and index not in report.failed:
                report.failed[index] = TransientError("its fan-out jobs were not queued")
        return report


def _content_of(event: PendingEvent) -> str:
    """What a frame of the event says besides its topics: equal for every part of one event."""
    return compact_json([event.type, event.data, event.occurred_at])


def _body_of(event: PendingEvent, topic: str) -> Callable[[int, str], str]:
    return lambda seq, published_at: event.stored_body(topic, seq, published_at)
