"""Delivering stored events to their audience: small audiences inline, large ones in pages by delivery jobs.

Who posts to a connection: an event with topics T reaches a connection c
through S = topics(c) ∩ T. Each topic's subscriber pages are read on their
own (inline by process-events, or by `fanout` workers in parallel; a topic
spread over several keys has one page chain per key), and c is
posted from the page of its *owner* topic, min(S), only; the frame carries the
seqs of all of S. So every connection gets one frame per event, whichever pages
are read where.

Jobs on the fanout queue are typed (PageJob, RetryJob): written with
`to_message`, read back with `job_from_message`, which refuses anything the
module would not have written. A job refers to a stored event by its id and
its seq on each topic (EventRef); the worker reads the event back from the
events table and drops a job that refers to nothing stored. Anyone who can
write to the queue can therefore only make the module post, again, an event it
stored to connections that hold one of its topics (a retry job's connections
are checked against their records, which also give their token's expiry).
A connection whose post keeps failing is given up after `max_attempts` posts:
logged and counted; its client catches up over HTTP.

Each delivery also reports its lag: milliseconds from an event's publishedAt
(when it was first stored) to the end of its first posts, inline or by page
(the `DeliveryLag` metric, alarmed in terraform/monitoring.tf). Retried posts
are left out: they wait out their backoff by design and are counted apart.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from realtime.connections.layout import MAX_SHARDS
from realtime.connections.posting import Poster
from realtime.connections.store import ConnectionStore, Subscriber, topic_pk
from realtime.core.contract import QUEUE_MESSAGE_BYTES, is_topic
from realtime.core.encoding import compact_json
from realtime.core.errors import PermanentError
from realtime.core.observability import logger
from realtime.core.sqs import send_batches
from realtime.events.models import EventRef, Publication
from realtime.events.store import EventStore
from realtime.events.turns import DeliveryTurns

RETRY_BASE_SECONDS = 1
RETRY_MAX_SECONDS = 900  # the longest SQS DelaySeconds


class Target(msgspec.Struct, frozen=True):
    connection_id: str
    topics: tuple[str, ...]  # the event's topics that reach this connection, sorted: its frame's seqs
    token_expires_at: int | None = None  # its token's `exp`: from then on it gets no event, it is closed

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"connectionId": self.connection_id, "topics": list(self.topics)}
        if self.token_expires_at is not None:
            message["tokenExpiresAt"] = self.token_expires_at
        return message

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Target:
        return cls(message["connectionId"], tuple(message["topics"]), message.get("tokenExpiresAt"))


def owned_targets(publication: Publication, topic: str, subscribers: Iterable[Subscriber]) -> list[Target]:
    """The subscribers of `topic` that this topic's page must post: those whose first shared topic it is."""
    targets = []
    for subscriber in subscribers:
        if subscriber.topics is None:  # an item from before topics were kept: reached through this topic only
            reached: tuple[str, ...] = (topic,)
        else:
            reached = tuple(sorted((set(subscriber.topics) | {topic}) & publication.seqs.keys()))
        if reached[0] == topic:
            targets.append(Target(subscriber.connection_id, reached, subscriber.token_expires_at))
    return targets


# --- jobs on the fanout queue ----------------------------------------------------------------------


class InvalidJob(PermanentError):
    """A fanout-queue message the module would not have written: dropped, never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid_delivery_job", reason)


class PageJob(msgspec.Struct, frozen=True):
    """Post the page of `topic`'s subscribers (of one of its shards) that starts after `start_key`
    (None: the shard's first page), and queue the next page at once, so pages are read ahead and
    posted in parallel: one chain of pages per shard."""

    event: EventRef
    topic: str
    start_key: Mapping[str, Any] | None
    attempt: int = 0  # page jobs are never retried as such: failed posts become retry jobs
    shard: int = 0  # jobs queued before shards existed have none: shard 0, the topic's only key then

    def to_message(self) -> dict[str, Any]:
        message = {"event": self.event.to_message(), "topic": self.topic, "startKey": self.start_key, "attempt": 0}
        return message | ({"shard": self.shard} if self.shard else {})


class RetryJob(msgspec.Struct, frozen=True):
    """Post these connections again: their post failed transiently `attempt` times."""

    event: EventRef
    targets: tuple[Target, ...]
    attempt: int

    def to_message(self) -> dict[str, Any]:
        return {
            "event": self.event.to_message(),
            "targets": [target.to_message() for target in self.targets],
            "attempt": self.attempt,
        }


DeliveryJob = PageJob | RetryJob


def job_from_message(body: str) -> DeliveryJob:
    """The job a fanout-queue message holds; InvalidJob if it is not one the module writes.

    Jobs queued before jobs were references carry the whole event as well: only its id and seqs
    are read, so they run as references too (the content comes from the events table).
    """
    try:
        message = json.loads(body)
        event = EventRef.from_message(message["event"])
        attempt = message.get("attempt", 0)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise InvalidJob(f"attempt must be a whole number >= 0, not {attempt!r}")
        if "targets" in message:
            targets = tuple(Target.from_message(target) for target in message["targets"])
            if not targets or not all(set(t.topics) <= event.seqs.keys() and t.topics for t in targets):
                raise InvalidJob("a retry job names connections and, for each, topics of its event")
            return RetryJob(event, targets, attempt)
        topic, start_key, shard = message["topic"], message.get("startKey"), message.get("shard", 0)
        if not is_topic(topic) or topic not in event.seqs:
            raise InvalidJob(f"a page job's topic must be one of its event's topics, not {topic!r}")
        if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < MAX_SHARDS:
            raise InvalidJob(f"shard must be a whole number from 0 to {MAX_SHARDS - 1}, not {shard!r}")
        if start_key is not None and not _is_page_key(start_key, topic, shard):
            raise InvalidJob("startKey must be null or a key of the topic's subscriptions in that shard")
        return PageJob(event, topic, start_key, shard=shard)
    except InvalidJob:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidJob(f"not a delivery job: {error!r}") from None


def _is_page_key(start_key: object, topic: str, shard: int) -> bool:
    """A LastEvaluatedKey of a Query on one shard of the topic's subscriptions:
    {"pk": "topic#<topic>[#<shard>]", "sk": "conn#..."}."""
    return (
        isinstance(start_key, dict)
        and start_key.keys() == {"pk", "sk"}
        and start_key["pk"] == topic_pk(topic, shard)
        and isinstance(start_key["sk"], str)
        and start_key["sk"].startswith("conn#")
    )


def retry_jobs(publication: Publication, targets: Sequence[Target], attempt: int) -> list[RetryJob]:
    """Retry jobs for these targets, as few as fit in SQS messages."""
    event = publication.ref()
    room = QUEUE_MESSAGE_BYTES - len(compact_json(RetryJob(event, (), attempt).to_message()).encode("utf-8"))
    groups: list[list[Target]] = []
    size = room
    for target in targets:
        length = len(compact_json(target.to_message()).encode("utf-8")) + 1  # and a comma
        if size + length > room:
            groups.append([])
            size = 0
        groups[-1].append(target)
        size += length
    return [RetryJob(event, tuple(group), attempt) for group in groups]


class DeliveryQueue:
    """The fanout queue: page jobs at once, retry jobs after an exponential backoff with full jitter."""

    def __init__(self, sqs: Any, queue_url: str, *, rand: Callable[[], float] = random.random) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._rand = rand

    def send(self, jobs: Sequence[DeliveryJob]) -> list[int]:
        """Queue each job; the indexes of those the queue did not take."""
        messages = []
        for job in jobs:
            message: dict[str, Any] = {"MessageBody": compact_json(job.to_message())}
            if job.attempt:
                ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**job.attempt)
                message["DelaySeconds"] = round(self._rand() * ceiling)
            messages.append(message)
        failures = send_batches(self._sqs, self._queue_url, messages)
        for index, reason in failures.items():
            logger.error("Delivery job not queued", extra={"event_id": jobs[index].event.id, "reason": reason})
        return sorted(failures)


# --- delivery ---------------------------------------------------------------------------------------


class DeliveryReport(msgspec.Struct):
    """What one delivery (a batch inline, or one job) did: process-events and fanout log and count it alike."""

    sent: int = 0
    gone: int = 0
    refused: int = 0
    throttled: int = 0
    retried: int = 0  # connections queued for another post
    abandoned: int = 0  # connections given up after max_attempts posts
    expired: int = 0  # connections closed instead of posted: their token had expired
    rejected: int = 0  # retry targets whose record is gone or does not hold the event's topics
    pages_queued: int = 0
    turn_wait_ms: int = 0  # how long inline posts waited for the topic's batch before (realtime.events.turns)
    turns_late: int = 0  # topics whose batch before had not posted within the bound
    lowest_concurrency: int | None = None
    lag_ms: int | None = None  # publishedAt to the end of first posts, the most of its events; None: none made
    unqueued: set[str] = msgspec.field(default_factory=set)  # ids of events whose jobs the queue did not take

    def metrics(self) -> dict[str, int]:
        """The counts, by metric name."""
        return {
            "Delivered": self.sent,
            "ConnectionsGone": self.gone,
            "DeliveryRefused": self.refused,
            "DeliveryThrottled": self.throttled,
            "DeliveriesRetried": self.retried,
            "DeliveriesAbandoned": self.abandoned,
            "ExpiredConnectionsClosed": self.expired,
            "DeliveryTargetsRejected": self.rejected,
            "FanoutPagesQueued": self.pages_queued,
            "DeliveryTurnsLate": self.turns_late,
        }

    def timings(self) -> dict[str, int]:
        """The durations, in milliseconds, by metric name: none when no first post was made."""
        return {} if self.lag_ms is None else {"DeliveryLag": self.lag_ms}

    def log_fields(self) -> dict[str, Any]:
        """The fields of the delivery's log line."""
        return {
            "delivered": self.sent,
            "gone": self.gone,
            "refused": self.refused,
            "throttled": self.throttled,
            "retried": self.retried,
            "abandoned": self.abandoned,
            "expired": self.expired,
            "rejected": self.rejected,
            "pages_queued": self.pages_queued,
            "turn_wait_ms": self.turn_wait_ms,
            "turns_late": self.turns_late,
            "lowest_concurrency": self.lowest_concurrency,
            "lag_ms": self.lag_ms,
        }


class EventDelivery:
    """Posts stored events to their audience: the first page of each topic inline, the rest by jobs."""

    def __init__(
        self,
        *,
        connections: ConnectionStore,
        poster: Poster,
        queue: DeliveryQueue,
        max_attempts: int,
        page_size: int,
        events: EventStore | None = None,
        turns: DeliveryTurns | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`page_size`: the subscribers of a topic one page holds; process-events posts its first page
        itself (fanout_threshold), a page job posts one further page (fanout_page_size). `events`:
        where jobs' events are read back (None for process-events, which delivers what it stored).
        `turns`: process-events' inline posts wait for the topic's batch before (None: they do not)."""
        self._turns = turns
        self._connections = connections
        self._events = events
        self._poster = poster
        self._queue = queue
        self._max_attempts = max_attempts
        self._page_size = page_size
        self._clock = clock

    def deliver_stored(self, publications: Sequence[Publication], *, deadline: float | None = None) -> DeliveryReport:
        """process-events: read each topic's first page (of each of its shards, in parallel) once for
        the whole batch and post it inline; queue a page job for each (event, topic, shard) whose
        audience goes on: the shards' chains then run side by side. `deadline` (time.monotonic()):
        when the invocation ends; delivery turns wait at most half of what is left of it."""
        report = DeliveryReport()
        pages = self._connections.first_pages(_topics(publications), self._page_size)
        page_jobs = [
            PageJob(publication.ref(), topic, page.next_key, shard=shard)
            for publication in publications
            for (topic, shard), page in pages.items()
            if topic in publication.seqs and page.next_key is not None
        ]
        self._queue_jobs(page_jobs, report)
        report.pages_queued = len(page_jobs)
        posting = [publication for publication in publications if publication.id not in report.unqueued]
        targets = [
            (publication, target)
            for publication in posting  # one whose job was not queued is retried whole
            for (topic, _shard), page in pages.items()
            if topic in publication.seqs
            for target in owned_targets(publication, topic, page.subscribers)
        ]
        if self._turns is None:
            self._post(targets, 0, report)
            return report
        # Topics with someone to post to take turns: wait for the batch before, post, let the next one go.
        heard = {topic for (topic, _shard), page in pages.items() if page.subscribers}
        seqs = [(topic, seq) for publication in posting for topic, seq in publication.seqs.items() if topic in heard]
        first, last = {}, {}
        for topic, seq in seqs:
            first[topic] = min(seq, first.get(topic, seq))
            last[topic] = max(seq, last.get(topic, seq))
        turn = self._turns.wait(first, deadline=deadline)
        report.turn_wait_ms, report.turns_late = turn.waited_ms, len(turn.late)
        if turn.late:
            logger.info("Posting before the batch ahead on these topics", extra={"topics": turn.late[:10]})
        try:
            self._post(targets, 0, report)
        finally:
            self._turns.done(last)
        return report

    def run(self, job: DeliveryJob) -> DeliveryReport:
        """fanout: one job. Raises InvalidJob when it refers to no stored event (dropped), and another
        error when a job it had to queue was not taken (the job is then retried)."""
        if self._events is None:
            raise RuntimeError("this delivery reads no jobs: it was built without the events table")
        publication = self._events.publication(job.event)
        if publication is None:
            raise InvalidJob(f"the job refers to no stored event: {job.event.id!r} at {dict(job.event.seqs)}")
        report = DeliveryReport()
        if isinstance(job, RetryJob):
            targets = self._verified(publication, job.targets, report)
            self._post([(publication, target) for target in targets], job.attempt, report)
        else:
            page = self._connections.subscriber_page(job.topic, self._page_size, job.start_key, shard=job.shard)
            if page.next_key is not None:
                # Queued before posting, so the next page is read while this one is posted.
                self._queue_jobs([PageJob(job.event, job.topic, page.next_key, shard=job.shard)], report)
                report.pages_queued = 1
            owned = owned_targets(publication, job.topic, page.subscribers)
            self._post([(publication, target) for target in owned], 0, report)
        if report.unqueued:
            raise JobsNotQueued(f"delivery jobs of event {publication.id} were not queued")
        return report

    def _verified(self, publication: Publication, targets: Sequence[Target], report: DeliveryReport) -> list[Target]:
        """The retry targets as their connection records have them: only the event's topics the
        connection holds, and the token expiry it was stored with; gone or foreign ones are left out."""
        records = self._connections.records(target.connection_id for target in targets)
        verified = []
        for target in targets:
            record = records.get(target.connection_id)
            held = set(record.topics) if record is not None else set()
            topics = tuple(sorted(set(target.topics) & held & publication.seqs.keys()))
            if record is None or not topics:
                report.rejected += 1
                continue
            verified.append(Target(target.connection_id, topics, record.token_expires_at))
        if report.rejected:
            logger.warning(
                "Retry targets left out: gone, or not holding the event's topics",
                extra={"event_id": publication.id, "rejected": report.rejected},
            )
        return verified

    def _post(self, targets: Sequence[tuple[Publication, Target]], attempt: int, report: DeliveryReport) -> None:
        """Post each target its frame; queue the transient failures again, or give them up after max_attempts.

        A target whose token has expired gets no event: it is closed instead.
        """
        now = self._clock()
        expired = {t.connection_id for _, t in targets if t.token_expires_at is not None and t.token_expires_at <= now}
        if expired:
            report.expired += self._poster.close_expired(sorted(expired))
            targets = [(publication, target) for publication, target in targets if target.connection_id not in expired]
        # Keyed by the publication itself: two producers' events may share an id.
        frames: dict[tuple[int, tuple[str, ...]], bytes] = {}
        posts = []
        for publication, target in targets:
            key = (id(publication), target.topics)
            if key not in frames:
                frames[key] = publication.frame(target.topics)
            posts.append((target.connection_id, frames[key]))
        posted = self._poster.post(posts)
        report.sent += posted.sent
        report.gone += posted.gone
        report.refused += posted.failed
        report.throttled += posted.throttled
        if posts:
            report.lowest_concurrency = min(report.lowest_concurrency or posted.concurrency, posted.concurrency)
            if attempt == 0:
                _note_lag(report, [publication for publication, _ in targets], self._clock())
        failed: dict[int, tuple[Publication, list[Target]]] = {}
        for index in posted.retry:
            publication, target = targets[index]
            failed.setdefault(id(publication), (publication, []))[1].append(target)
        if attempt + 1 >= self._max_attempts:
            for publication, given_up in failed.values():
                for target in given_up:
                    logger.warning(
                        "Delivery abandoned; the client catches up over HTTP",
                        extra={"connection_id": target.connection_id, "event_id": publication.id, "posts": attempt + 1},
                    )
                report.abandoned += len(given_up)
            return
        jobs = [job for publication, again in failed.values() for job in retry_jobs(publication, again, attempt + 1)]
        self._queue_jobs(jobs, report)
        report.retried += sum(len(job.targets) for job in jobs if job.event.id not in report.unqueued)

    def _queue_jobs(self, jobs: Sequence[DeliveryJob], report: DeliveryReport) -> None:
        for index in self._queue.send(jobs) if jobs else []:
            report.unqueued.add(jobs[index].event.id)


def _note_lag(report: DeliveryReport, posted: Iterable[Publication], now: float) -> None:
    """Keep the largest lag from publishedAt to `now` of the events just posted (an unreadable time is skipped)."""
    published = [_epoch_seconds(at) for at in {publication.published_at for publication in posted}]
    known = [at for at in published if at is not None]
    if known:
        lag_ms = max(0, round((now - min(known)) * 1000))
        report.lag_ms = max(report.lag_ms or 0, lag_ms)


def _epoch_seconds(timestamp: str) -> float | None:
    """An ISO 8601 time with its zone (publishedAt) as seconds since the epoch; None if it is not one."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class JobsNotQueued(RuntimeError):
    """The fanout queue did not take a job this one had to queue: the job is retried."""


def _topics(publications: Iterable[Publication]) -> list[str]:
    return sorted({topic for publication in publications for topic in publication.seqs})
