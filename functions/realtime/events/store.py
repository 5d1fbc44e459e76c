"""The events table: exactly-once, gapless per-topic sequence numbers, and reads after a cursor.

Layout (see docs/internals.md): event items at (topic, seq>=1), the topic's
counter at (topic, 0) with `lastSeq`, and idempotency records at
(`dedup#<topic>#<eventId>`, 0) with `assignedSeq`.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from realtime.core.contract import DEFAULT_PAGE_EVENTS, MAX_PAGE_BYTES, MAX_PAGE_EVENTS

MAX_APPEND_ATTEMPTS = 10
COUNTER_SEQ = 0
BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
# How far one Query may look past retention's leftovers (DynamoDB stops at 1 MB anyway).
MAX_QUERY_ITEMS = 1000


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
    positions: dict[str, int]  # per topic, the last seq returned, already seen, or past retention
    has_more: bool


def dedup_key(topic: str, event_id: str) -> str:
    return f"dedup#{topic}#{event_id}"


def event_item(
    topic: str, seq: int, event_id: str, event_type: str, body: str, published_at: str, expires_at: int
) -> dict[str, Any]:
    """An event's item in the table (plain values, as the resource's client takes them)."""
    return {
        "topic": topic,
        "seq": seq,
        "id": event_id,
        "type": event_type,
        "body": body,
        "publishedAt": published_at,
        "expiresAt": expires_at,
    }


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
                    "Item": event_item(topic, seq, event_id, event_type, body, published_at, expires_at),
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
        """The stored frame of one event, or None once it is past retention (TTL deletes it late)."""
        item = self._table.get_item(
            Key={"topic": topic, "seq": seq},
            ConsistentRead=True,
            ProjectionExpression="#body, expiresAt",
            ExpressionAttributeNames={"#body": "body"},
        ).get("Item")
        return item["body"] if item and int(item["expiresAt"]) > self._clock() else None

    # --- reads ---------------------------------------------------------------------------

    def heads(self, topics: Iterable[str], *, consistent: bool = True) -> dict[str, int]:
        """Each topic's last seq (0 for a topic never used), from its counter: one BatchGetItem per 100 topics."""
        heads = dict.fromkeys(topics, 0)
        names = list(heads)
        table_name = self._table.name
        for start in range(0, len(names), BATCH_GET_KEYS):
            keys = [{"topic": topic, "seq": COUNTER_SEQ} for topic in names[start : start + BATCH_GET_KEYS]]
            request: dict[str, Any] = {
                table_name: {
                    "Keys": keys,
                    "ConsistentRead": consistent,
                    "ProjectionExpression": "#topic, lastSeq",
                    "ExpressionAttributeNames": {"#topic": "topic"},
                }
            }
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(table_name, []):
                    heads[item["topic"]] = int(item["lastSeq"])
                # Throttled keys come back unprocessed: ask again for those only.
                request = response.get("UnprocessedKeys") or {}
        return heads

    def read_after(
        self,
        topics: Iterable[str],
        positions: Mapping[str, int],
        limit: int = DEFAULT_PAGE_EVENTS,
        *,
        heads: Mapping[str, int] | None = None,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> ReadResult:
        """The oldest events after each topic's position, merged by publishedAt, at most `limit` and `max_bytes`.

        Only topics whose counter (`heads`, read here when not given) is past their
        position are queried, each for its share of the page first and for more
        only when the merge has taken all it read, so a page reads little more
        than it returns. Within a topic the seq order is kept even when publishedAt
        disagrees. Events past retention are skipped as if TTL had deleted them,
        and the positions move past them: a topic's events in a page follow on
        from its position except for those.
        """
        if not 1 <= limit <= MAX_PAGE_EVENTS:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_EVENTS}")
        topics = list(dict.fromkeys(topics))
        heads = self.heads(topics) if heads is None else heads
        start = {topic: max(0, int(positions.get(topic, 0))) for topic in topics}
        moved = [topic for topic in topics if heads.get(topic, 0) > start[topic]]
        reads = [_TopicRead(topic, start[topic], heads[topic]) for topic in moved]
        now = int(self._clock())
        share = -(-limit // len(reads)) if reads else 0  # the page split evenly, rounded up
        for read in reads:
            self._fill(read, share, now)
        page = self._merge(reads, limit, max_bytes, now)
        new_positions = start | {read.topic: read.position for read in reads}
        return ReadResult(events=page, positions=new_positions, has_more=not all(read.exhausted for read in reads))

    def _merge(self, reads: list[_TopicRead], limit: int, max_bytes: int, now: int) -> list[StoredEvent]:
        """Take the oldest buffered event across topics until the page is full, refilling a topic as it empties."""
        heap = [(read.buffered[0].published_at, index) for index, read in enumerate(reads) if read.buffered]
        heapq.heapify(heap)
        page: list[StoredEvent] = []
        size = 0
        streak = 0  # events taken in a row from one topic
        while heap and len(page) < limit:
            read = reads[heap[0][1]]
            event = read.buffered[0]
            event_size = len(event.body.encode()) + 1  # and its comma
            if page and size + event_size > max_bytes:
                break  # the first event always fits: one is never too big for a page
            streak = streak + 1 if page and page[-1].topic == read.topic else 1
            read.buffered.popleft()
            page.append(event)
            size += event_size
            if not read.buffered and len(page) < limit:
                left = limit - len(page)
                # A topic whose whole last read was taken in a row gets twice as much next;
                # one taken in turn with others, its share of what the page still needs.
                wanted = 2 * read.chunk if streak >= read.chunk else -(-left // len(heap))
                self._fill(read, min(wanted, left), now)
            if read.buffered:
                heapq.heapreplace(heap, (read.buffered[0].published_at, heap[0][1]))
            else:
                heapq.heappop(heap)
        return page

    def _fill(self, read: _TopicRead, count: int, now: int) -> None:
        """Buffer the topic's next `count` seqs; read further while every one of them is past retention."""
        while not read.buffered and read.evaluated < read.head:
            read.chunk = min(count, read.head - read.evaluated)
            response = self._table.query(
                KeyConditionExpression="#topic = :topic AND #seq BETWEEN :first AND :head",
                FilterExpression="expiresAt > :now",
                ExpressionAttributeValues={
                    ":topic": read.topic,
                    ":first": read.evaluated + 1,
                    ":head": read.head,
                    ":now": now,
                },
                ExpressionAttributeNames={"#topic": "topic", "#seq": "seq", "#body": "body"},
                ProjectionExpression="#seq, #body, publishedAt",
                # Strong reads: a reader must never see seq n+1 without seq n.
                ConsistentRead=True,
                Limit=read.chunk,
            )
            read.buffered.extend(
                StoredEvent(read.topic, int(item["seq"]), item["publishedAt"], item["body"])
                for item in response.get("Items", [])
            )
            last = response.get("LastEvaluatedKey")
            read.evaluated = int(last["seq"]) if last else read.head
            count = min(2 * count, MAX_QUERY_ITEMS)


@dataclass
class _TopicRead:
    """One topic's events after a position, fetched as the merge needs them, never past `head`."""

    topic: str
    evaluated: int  # the last seq DynamoDB has looked at: handed on, buffered, or past retention
    head: int  # the topic's last seq when this read began
    buffered: deque[StoredEvent] = field(default_factory=deque)
    chunk: int = 0  # how many seqs the last query asked for

    @property
    def position(self) -> int:
        """Every seq up to here was handed on or is past retention."""
        return self.buffered[0].seq - 1 if self.buffered else self.evaluated

    @property
    def exhausted(self) -> bool:
        return not self.buffered and self.evaluated >= self.head
