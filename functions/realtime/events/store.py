"""The events table: exactly-once, gapless per-topic sequence numbers, and reads after a cursor.

Layout (see docs/internals.md): event items at (topic, seq>=1), the topic's
counter at (topic, 0) with `lastSeq`, its delivery turn at (topic, -1) with
`postedSeq` (realtime.events.turns), and idempotency records at
(`dedup#<topic>#<eventId>`, 0) with `assignedSeq` and `publishedAt`.

A batch is stored topic by topic: one consistent BatchGetItem reads every
counter and idempotency record the batch needs, then each topic's new events
take their seqs from one counter update in one transaction (49 events a
transaction: 1 + 2 x 49 items, under DynamoDB's 100), the topics' transactions
side by side.

A store that was the last writer of a topic skips the read: while no other
writer has moved the topic's counter since this container's last transaction
on it (which the read before confirmed), the counter it left is the one to
condition on, and a batch of events each told to that one topic cannot find
an idempotency record on another topic that would date it. A guess that turns
out stale costs the read it skipped: the transaction is cancelled (the counter
moved, or an idempotency record exists), and the topic is read and retried as
after any lost race. Conditions on the counter and on each idempotency record
keep exactly-once and gapless seqs whatever was guessed.
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import msgspec
from botocore.exceptions import ClientError

from realtime.core.contract import DEFAULT_PAGE_EVENTS, MAX_PAGE_BYTES, MAX_PAGE_EVENTS
from realtime.core.errors import TransientError
from realtime.events.models import EventRef, Publication

# Losing the counter race costs a re-read and a retry; with batches the losers are few.
MAX_APPEND_ATTEMPTS = 20
MAX_BACKOFF_SECONDS = 0.25
COUNTER_SEQ = 0
# Apart from the counter, so marking a turn never conflicts with a transaction that takes seqs.
POSTED_SEQ = -1
EVENTS_PER_TRANSACTION = 49  # the counter plus an event and an idempotency record each: 99 items
BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
# A cancelled transaction that another writer caused: read again and retry.
_LOST_RACE_CODES = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
# How far one Query may look past retention's leftovers (DynamoDB stops at 1 MB anyway).
MAX_QUERY_ITEMS = 1000
# Topics of one batch whose transactions run at once: as many as the DynamoDB client's connection pool holds
# (botocore's default, 10), so none waits for a connection; the other topics of the batch follow as they finish.
PARALLEL_TOPICS = 10
# Topics whose last counter this container remembers (the most recently written ones are kept).
MAX_KNOWN_TOPICS = 10_000


class StoreContentionError(TransientError):
    """Too many writers raced for one topic's counter; the message is retried later."""


class AppendResult(NamedTuple):
    seq: int
    created: bool  # False: the event id was already stored on this topic, under `seq`
    published_at: str  # when the event was first stored (a redelivery keeps it)


class NewEvent(msgspec.Struct, frozen=True):
    """One event to store on one of its topics."""

    topic: str
    event_id: str
    event_type: str
    body: Callable[[int, str], str]  # (seq, publishedAt) -> the stored frame, JSON text


class BatchResult(msgspec.Struct):
    # (topic, event id) -> where it was stored
    stored: dict[tuple[str, str], AppendResult] = msgspec.field(default_factory=dict)
    # topic -> why some of its events were not stored
    failed: dict[str, Exception] = msgspec.field(default_factory=dict)


class StoredEvent(msgspec.Struct, frozen=True):
    topic: str
    seq: int
    published_at: str
    body: str  # the delivered frame, JSON text


class ReadResult(msgspec.Struct, frozen=True):
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


def _dated(
    recorded: Mapping[tuple[str, str], AppendResult], first_published: Mapping[str, str], published_at: str
) -> dict[tuple[str, str], AppendResult]:
    """Records written before publishedAt was kept take the event's time from its other topics, or this attempt's."""
    return {
        key: found if found.published_at else found._replace(published_at=first_published.get(key[1], published_at))
        for key, found in recorded.items()
    }


def _lost_race(error: ClientError) -> bool:
    """A cancelled transaction that only another writer caused (counter moved, id stored, item busy)."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return False
    codes = {code for code in _cancellation_codes(error) if code != "None"}
    return bool(codes) and codes <= _LOST_RACE_CODES


class EventStore:
    def __init__(
        self,
        table: Any,
        retention_seconds: int | None = None,  # None: a store that only reads (events-api)
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = MAX_APPEND_ATTEMPTS,
        parallel_topics: int = PARALLEL_TOPICS,
    ) -> None:
        """`parallel_topics`: how many topics of one batch are stored at once (1: one after another)."""
        self._table = table
        self._client = table.meta.client
        self._retention_seconds = retention_seconds
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._parallel_topics = parallel_topics
        # topic -> (the counter this container's last transaction on it left, whether nobody else had
        # written the topic since the one before: only then is the next batch's read skipped)
        self._known: dict[str, tuple[int, bool]] = {}
        self._known_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def append(
        self,
        event_id: str,
        topic: str,
        build_body: Callable[[int], str],
        *,
        event_type: str,
        published_at: str,
    ) -> AppendResult:
        """Store one event on one topic (see append_batch); raises what stopped it."""
        result = self.append_batch(
            [NewEvent(topic, event_id, event_type, lambda seq, _at: build_body(seq))], published_at
        )
        if topic in result.failed:
            raise result.failed[topic]
        return result.stored[(topic, event_id)]

    def append_batch(self, events: Sequence[NewEvent], published_at: str) -> BatchResult:
        """Store each (topic, event id) once; a topic that fails does not stop the others.

        An id already recorded on a topic keeps the seq it was given. An event
        already stored on some of its topics (a redelivery after a partial
        failure) is stored on the others with the publishedAt it got first.
        """
        if self._retention_seconds is None:
            raise RuntimeError("this EventStore was built without a retention: it can only read")
        by_topic: dict[str, dict[str, NewEvent]] = {}
        topics_of: dict[str, set[str]] = {}
        for event in events:
            by_topic.setdefault(event.topic, {}).setdefault(event.event_id, event)
            topics_of.setdefault(event.event_id, set()).add(event.topic)
        guessed = self._guessed_counters(by_topic, topics_of)
        if guessed is not None:
            counters, recorded = guessed, {}
        else:
            counters, recorded = self._read({topic: list(entries) for topic, entries in by_topic.items()})
        first_published = {
            event_id: found.published_at for (_, event_id), found in recorded.items() if found.published_at
        }
        result = BatchResult(stored=_dated(recorded, first_published, published_at))
        work = [
            (topic, [event for event_id, event in entries.items() if (topic, event_id) not in recorded])
            for topic, entries in by_topic.items()
        ]
        work = [(topic, new) for topic, new in work if new]
        # Nobody else wrote the topic since this container's last transaction on it: the next batch may guess.
        alone = {topic: guessed is not None or self._left(topic) == counters.get(topic, 0) for topic, _ in work}

        def attempt(
            item: tuple[str, list[NewEvent]],
        ) -> tuple[str, dict[tuple[str, str], AppendResult], Exception | None]:
            topic, new = item
            stored: dict[tuple[str, str], AppendResult] = {}
            try:
                self._append_topic(
                    topic,
                    new,
                    counters.get(topic, 0),
                    first_published,
                    published_at,
                    stored,
                    guessed=guessed is not None,
                    alone=alone[topic],
                )
            except Exception as error:  # throttling, contention...: these events' messages are retried
                return topic, stored, error
            return topic, stored, None

        # Each topic's transactions touch only its own items: the topics of a batch are stored side by side.
        outcomes = (
            self._threads().map(attempt, work) if len(work) > 1 and self._parallel_topics > 1 else map(attempt, work)
        )
        for topic, stored, error in outcomes:
            result.stored.update(stored)  # the chunks stored before a failure stay stored
            if error is not None:
                result.failed[topic] = error
        return result

    def _threads(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallel_topics, thread_name_prefix="store")
        return self._pool

    def _guessed_counters(
        self, by_topic: Mapping[str, Mapping[str, NewEvent]], topics_of: Mapping[str, set[str]]
    ) -> dict[str, int] | None:
        """The counters to condition on without reading, when every topic's is known and every event has one topic."""
        if any(len(topics) > 1 for topics in topics_of.values()):
            return None
        with self._known_lock:
            known = [self._known.get(topic) for topic in by_topic]
        if not all(entry is not None and entry[1] for entry in known):
            return None
        return {topic: entry[0] for topic, entry in zip(by_topic, known, strict=True) if entry is not None}

    def _left(self, topic: str) -> int | None:
        """The counter this container's last transaction on the topic left (None: it has not written it)."""
        with self._known_lock:
            entry = self._known.get(topic)
        return entry[0] if entry is not None else None

    def _remember(self, topic: str, last_seq: int, alone: bool) -> None:
        with self._known_lock:
            self._known.pop(topic, None)  # re-inserted last: the oldest entries go first
            self._known[topic] = (last_seq, alone)
            while len(self._known) > MAX_KNOWN_TOPICS:
                del self._known[next(iter(self._known))]

    def _append_topic(
        self,
        topic: str,
        pending: list[NewEvent],
        last_seq: int,
        first_published: Mapping[str, str],
        published_at: str,
        stored: dict[tuple[str, str], AppendResult],
        *,
        guessed: bool = False,
        alone: bool = False,
    ) -> None:
        """Give the pending events the next seqs of the topic, a transaction per 49, exactly once each.

        A cancelled transaction says why: an idempotency record that exists
        means another delivery stored that event (its seq is read back and it
        leaves the batch); a moved counter or a conflict means another writer
        took the seqs. Either way: read again, back off with jitter, retry.
        `guessed`: `last_seq` was not read but remembered; a first cancellation
        only says the guess was stale, so it is read and retried at once.
        `alone`: no other writer has written the topic since this container's
        last transaction on it; remembered with the counter, so the next batch
        guesses only while this container is the topic's only writer.
        """
        failures = 0
        while pending:
            chunk = pending[:EVENTS_PER_TRANSACTION]
            published = {event.event_id: first_published.get(event.event_id, published_at) for event in chunk}
            try:
                self._client.transact_write_items(TransactItems=self._append_items(topic, last_seq, chunk, published))
            except ClientError as error:
                if not _lost_race(error):
                    self._forget(topic)
                    raise
                alone = False
                if guessed:
                    guessed = False
                else:
                    failures += 1
                    if failures >= self._max_attempts:
                        self._forget(topic)
                        raise StoreContentionError(
                            f"could not get seqs on topic {topic!r} after {self._max_attempts} attempts"
                        ) from None
                    self._sleep(random.uniform(0, min(MAX_BACKOFF_SECONDS, 0.01 * 2**failures)))
                counters, recorded = self._read({topic: [event.event_id for event in pending]})
                last_seq = counters.get(topic, 0)
                stored.update(_dated(recorded, first_published, published_at))
                pending = [event for event in pending if (topic, event.event_id) not in recorded]
                continue
            for offset, event in enumerate(chunk, start=1):
                stored[(topic, event.event_id)] = AppendResult(last_seq + offset, True, published[event.event_id])
            last_seq += len(chunk)
            pending = pending[len(chunk) :]
            self._remember(topic, last_seq, alone)

    def _forget(self, topic: str) -> None:
        with self._known_lock:
            self._known.pop(topic, None)

    def _append_items(
        self, topic: str, last_seq: int, chunk: Sequence[NewEvent], published: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The counter moved from `last_seq` by len(chunk), then per event its item and its idempotency record."""
        table_name = self._table.name
        assert self._retention_seconds is not None
        expires_at = int(self._clock()) + self._retention_seconds
        counter_values: dict[str, int] = {":next": last_seq + len(chunk)}
        if last_seq == 0:
            counter_condition = "attribute_not_exists(lastSeq)"
        else:
            counter_condition = "lastSeq = :last"
            counter_values[":last"] = last_seq
        # The resource's client takes plain Python values and serializes them itself.
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": table_name,
                    "Key": {"topic": topic, "seq": COUNTER_SEQ},
                    "UpdateExpression": "SET lastSeq = :next",
                    "ConditionExpression": counter_condition,
                    "ExpressionAttributeValues": counter_values,
                }
            }
        ]
        for seq, event in enumerate(chunk, start=last_seq + 1):
            published_at = published[event.event_id]
            items += [
                {
                    "Put": {
                        "TableName": table_name,
                        "Item": event_item(
                            topic,
                            seq,
                            event.event_id,
                            event.event_type,
                            event.body(seq, published_at),
                            published_at,
                            expires_at,
                        ),
                        "ConditionExpression": "attribute_not_exists(#seq)",
                        "ExpressionAttributeNames": {"#seq": "seq"},
                    }
                },
                {
                    "Put": {
                        "TableName": table_name,
                        "Item": {
                            "topic": dedup_key(topic, event.event_id),
                            "seq": COUNTER_SEQ,
                            "assignedSeq": seq,
                            "publishedAt": published_at,
                            "expiresAt": expires_at,
                        },
                        "ConditionExpression": "attribute_not_exists(#topic)",
                        "ExpressionAttributeNames": {"#topic": "topic"},
                    }
                },
            ]
        return items

    def _read(
        self, event_ids: Mapping[str, Sequence[str]]
    ) -> tuple[dict[str, int], dict[tuple[str, str], AppendResult]]:
        """Consistent reads of these topics' counters and of the events' idempotency records.

        Returns each topic's last seq (counters not found are absent) and, per
        (topic, event id) already stored, its seq and publishedAt.
        """
        keys = [{"topic": topic, "seq": COUNTER_SEQ} for topic in event_ids] + [
            {"topic": dedup_key(topic, event_id), "seq": COUNTER_SEQ}
            for topic, ids in event_ids.items()
            for event_id in ids
        ]
        by_key = {dedup_key(topic, event_id): (topic, event_id) for topic, ids in event_ids.items() for event_id in ids}
        counters: dict[str, int] = {}
        recorded: dict[tuple[str, str], AppendResult] = {}
        for item in self._batch_get(keys):
            if "lastSeq" in item:
                counters[item["topic"]] = int(item["lastSeq"])
            elif item["topic"] in by_key:
                recorded[by_key[item["topic"]]] = AppendResult(
                    int(item["assignedSeq"]), False, item.get("publishedAt", "")
                )
        return counters, recorded

    def _batch_get(
        self, keys: Sequence[Mapping[str, Any]], *, consistent: bool = True, projection: Sequence[str] = ()
    ) -> Iterable[dict[str, Any]]:
        table_name = self._table.name
        for start in range(0, len(keys), BATCH_GET_KEYS):
            request: dict[str, Any] = {
                table_name: {"Keys": list(keys[start : start + BATCH_GET_KEYS]), "ConsistentRead": consistent}
            }
            if projection:
                names = {f"#a{index}": name for index, name in enumerate(projection)}
                request[table_name] |= {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                yield from response.get("Responses", {}).get(table_name, [])
                # Throttled keys come back unprocessed: ask again for those only.
                request = response.get("UnprocessedKeys") or {}

    def _last_seq(self, topic: str) -> int:
        item = self._table.get_item(Key={"topic": topic, "seq": COUNTER_SEQ}, ConsistentRead=True).get("Item")
        return int(item["lastSeq"]) if item else 0

    def last_seq(self, topic: str) -> int:
        """The highest seq ever assigned on a topic (0 if none)."""
        return self._last_seq(topic)

    # --- delivery turns (realtime.events.turns) ---------------------------------------------

    def posted_through(self, topics: Iterable[str]) -> dict[str, int]:
        """Each topic's last seq whose inline posts are done; topics never marked are left out."""
        keys = [{"topic": topic, "seq": POSTED_SEQ} for topic in dict.fromkeys(topics)]
        items = self._batch_get(keys, projection=("topic", "postedSeq"))
        return {str(item["topic"]): int(item["postedSeq"]) for item in items if "postedSeq" in item}

    def mark_posted(self, topic: str, seq: int) -> None:
        """Say that the topic's posts are done up to `seq` (a lower mark never replaces a higher one)."""
        try:
            self._table.update_item(
                Key={"topic": topic, "seq": POSTED_SEQ},
                UpdateExpression="SET postedSeq = :seq",
                ConditionExpression="attribute_not_exists(postedSeq) OR postedSeq < :seq",
                ExpressionAttributeValues={":seq": seq},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # --- reads ---------------------------------------------------------------------------

    def publication(self, ref: EventRef) -> Publication | None:
        """The stored event a delivery job refers to, read back (consistent reads: the job may have
        been queued a moment after the store); None unless every (topic, seq) holds one same event
        with that id, within retention."""
        keys = [{"topic": topic, "seq": seq} for topic, seq in ref.seqs.items()]
        items = list(self._batch_get(keys, projection=("topic", "seq", "id", "body", "publishedAt", "expiresAt")))
        now = int(self._clock())
        if len(items) != len(keys) or len({item["id"] for item in items}) != 1:
            return None
        if any(int(item.get("expiresAt", now + 1)) <= now for item in items):
            return None
        body = json.loads(items[0]["body"])
        if body.get("id") != ref.id:
            return None
        return Publication(
            id=ref.id,
            type=body["type"],
            data=body["data"],
            occurred_at=body["occurredAt"],
            published_at=min(str(item["publishedAt"]) for item in items),
            seqs={str(item["topic"]): int(item["seq"]) for item in items},
            key=body.get("key"),  # None for an event stored before keys existed
        )

    def heads(self, topics: Iterable[str], *, consistent: bool = True) -> dict[str, int]:
        """Each topic's last seq (0 for a topic never used), from its counter: one BatchGetItem per 100 topics."""
        heads = dict.fromkeys(topics, 0)
        keys = [{"topic": topic, "seq": COUNTER_SEQ} for topic in heads]
        for item in self._batch_get(keys, consistent=consistent, projection=("topic", "lastSeq")):
            heads[item["topic"]] = int(item["lastSeq"])
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


class _TopicRead(msgspec.Struct):
    """One topic's events after a position, fetched as the merge needs them, never past `head`."""

    topic: str
    evaluated: int  # the last seq DynamoDB has looked at: handed on, buffered, or past retention
    head: int  # the topic's last seq when this read began
    buffered: deque[StoredEvent] = msgspec.field(default_factory=deque)
    chunk: int = 0  # how many seqs the last query asked for

    @property
    def position(self) -> int:
        """Every seq up to here was handed on or is past retention."""
        return self.buffered[0].seq - 1 if self.buffered else self.evaluated

    @property
    def exhausted(self) -> bool:
        return not self.buffered and self.evaluated >= self.head
