"""The events table: exactly-once, gapless per-topic sequence numbers, and reads after a cursor.

Layout (see docs/internals.md): event items at (topic, seq>=1), the topic's
counter at (topic, 0) with `lastSeq`, and idempotency records at
(`dedup#<topic>#<eventId>`, 0) with `assignedSeq`.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from realtime.core.contract import DEFAULT_PAGE_EVENTS, MAX_PAGE_EVENTS

MAX_APPEND_ATTEMPTS = 10
COUNTER_SEQ = 0


class StoreContentionError(RuntimeError):
    """Too many writers raced for one topic's counter; the message is retried later."""


class AppendResult(NamedTuple):
    seq: int
    created: bool  # False: the event id was already stored on this topic, under `seq`


@dataclass(frozen=True)
class StoredEvent:
    topic: str
    seq: int
    published_at: str
    body: str  # the delivered frame, JSON text


@dataclass(frozen=True)
class ReadResult:
    events: list[StoredEvent]
    positions: dict[str, int]  # the last seq returned (or already seen) per topic
    has_more: bool


def dedup_key(topic: str, event_id: str) -> str:
    return f"dedup#{topic}#{event_id}"


def _cancellation_codes(error: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


class EventStore:
    def __init__(
        self,
        table: Any,
        retention_seconds: int | None = None,  # None: a store that only reads (events-api)
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_APPEND_ATTEMPTS,
    ) -> None:
        self._table = table
        self._client = table.meta.client
        self._retention_seconds = retention_seconds
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts

    def append(
        self,
        event_id: str,
        topic: str,
        build_body: Callable[[int], str],
        *,
        event_type: str,
        published_at: str,
    ) -> AppendResult:
        """Store an event on a topic once; return its seq and whether this call stored it.

        One transaction advances the counter from the value just read, puts the
        event in the free slot and records the event id. Losing the counter race
        to another writer retries with a fresh read; finding the id already
        recorded returns the seq it was given.
        """
        for attempt in range(self._max_attempts):
            assigned = self._assigned_seq(topic, event_id)
            if assigned is not None:
                return AppendResult(assigned, created=False)
            last_seq = self._last_seq(topic)
            seq = last_seq + 1
            try:
                self._client.transact_write_items(
                    TransactItems=self._append_items(
                        topic, seq, last_seq, event_id, build_body(seq), event_type, published_at
                    )
                )
                return AppendResult(seq, created=True)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                codes = _cancellation_codes(error)
                if len(codes) == 3 and codes[2] == "ConditionalCheckFailed":
                    # Another delivery of the same message stored it first.
                    assigned = self._assigned_seq(topic, event_id)
                    if assigned is not None:
                        return AppendResult(assigned, created=False)
                elif not any(code in ("ConditionalCheckFailed", "TransactionConflict") for code in codes):
                    raise
            # Lost the race for this seq: back off a little, with jitter, and read again.
            self._sleep(random.uniform(0, min(0.2, 0.01 * 2**attempt)))
        raise StoreContentionError(f"could not get a seq on topic {topic!r} after {self._max_attempts} attempts")

    def _append_items(
        self,
        topic: str,
        seq: int,
        last_seq: int,
        event_id: str,
        body: str,
        event_type: str,
        published_at: str,
    ) -> list[dict[str, Any]]:
        table_name = self._table.name
        if self._retention_seconds is None:
            raise RuntimeError("this EventStore was built without a retention: it can only read")
        expires_at = int(self._clock()) + self._retention_seconds
        counter_values: dict[str, int] = {":next": seq}
        if last_seq == 0:
            counter_condition = "attribute_not_exists(lastSeq)"
        else:
            counter_condition = "lastSeq = :last"
            counter_values[":last"] = last_seq
        # The resource's client takes plain Python values and serializes them itself.
        return [
            {
                "Update": {
                    "TableName": table_name,
                    "Key": {"topic": topic, "seq": COUNTER_SEQ},
                    "UpdateExpression": "SET lastSeq = :next",
                    "ConditionExpression": counter_condition,
                    "ExpressionAttributeValues": counter_values,
                }
            },
            {
                "Put": {
                    "TableName": table_name,
                    "Item": {
                        "topic": topic,
                        "seq": seq,
                        "id": event_id,
                        "type": event_type,
                        "body": body,
                        "publishedAt": published_at,
                        "expiresAt": expires_at,
                    },
                    "ConditionExpression": "attribute_not_exists(#seq)",
                    "ExpressionAttributeNames": {"#seq": "seq"},
                }
            },
            {
                "Put": {
                    "TableName": table_name,
                    "Item": {
                        "topic": dedup_key(topic, event_id),
                        "seq": COUNTER_SEQ,
                        "assignedSeq": seq,
                        "expiresAt": expires_at,
                    },
                    "ConditionExpression": "attribute_not_exists(#topic)",
                    "ExpressionAttributeNames": {"#topic": "topic"},
                }
            },
        ]

    def _assigned_seq(self, topic: str, event_id: str) -> int | None:
        item = self._table.get_item(
            Key={"topic": dedup_key(topic, event_id), "seq": COUNTER_SEQ}, ConsistentRead=True
        ).get("Item")
        return int(item["assignedSeq"]) if item else None

    def _last_seq(self, topic: str) -> int:
        item = self._table.get_item(Key={"topic": topic, "seq": COUNTER_SEQ}, ConsistentRead=True).get("Item")
        return int(item["lastSeq"]) if item else 0

    def last_seq(self, topic: str) -> int:
        """The highest seq ever assigned on a topic (0 if none)."""
        return self._last_seq(topic)

    def get_body(self, topic: str, seq: int) -> str | None:
        """The stored frame of one event, or None once retention has removed it."""
        item = self._table.get_item(
            Key={"topic": topic, "seq": seq},
            ConsistentRead=True,
            ProjectionExpression="#body",
            ExpressionAttributeNames={"#body": "body"},
        ).get("Item")
        return item["body"] if item else None

    def read_after(
        self,
        topics: Iterable[str],
        positions: Mapping[str, int],
        limit: int = DEFAULT_PAGE_EVENTS,
    ) -> ReadResult:
        """Events after each topic's position, merged oldest first by publishedAt.

        Within a topic the seq order is kept even when publishedAt disagrees
        (heapq.merge only ever takes the head of each topic's list).
        """
        if not 1 <= limit <= MAX_PAGE_EVENTS:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_EVENTS}")
        topics = list(dict.fromkeys(topics))
        new_positions = {topic: max(0, int(positions.get(topic, 0))) for topic in topics}
        per_topic = [self._query_after(topic, new_positions[topic], limit + 1) for topic in topics]
        merged = list(heapq.merge(*per_topic, key=lambda event: event.published_at))
        page = merged[:limit]
        for event in page:
            new_positions[event.topic] = event.seq
        return ReadResult(events=page, positions=new_positions, has_more=len(merged) > limit)

    def _query_after(self, topic: str, after_seq: int, wanted: int) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        request: dict[str, Any] = {
            "KeyConditionExpression": "#topic = :topic AND #seq > :after",
            "ExpressionAttributeValues": {":topic": topic, ":after": after_seq},
            # Strong reads: a reader must never see seq n+1 without seq n.
            "ConsistentRead": True,
            "ProjectionExpression": "#seq, #body, publishedAt",
            "ExpressionAttributeNames": {"#topic": "topic", "#seq": "seq", "#body": "body"},
        }
        while len(events) < wanted:
            response = self._table.query(Limit=wanted - len(events), **request)
            events.extend(
                StoredEvent(topic, int(item["seq"]), item["publishedAt"], item["body"])
                for item in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return events
