"""Delivering stored events to their audience: small audiences inline, large ones in pages by fan-out jobs.

Who posts to a connection: an event with topics T reaches a connection c
through S = topics(c) ∩ T. Each topic's subscriber pages are read on their
own (inline, or by fan-out workers in parallel), and c is posted from the page
of its *owner* topic, min(S), only; the frame carries the seqs of all of S. So
every connection gets one frame per event, whichever pages are read where.

Jobs on the fanout queue (JSON):

    {"event": {...}, "topic": "<t>", "startKey": {...}, "attempt": 0}
        post the page of t's subscribers that starts after startKey, and
        queue the next page at once (so pages are read ahead and posted in parallel);
    {"event": {...}, "targets": [{"connectionId": "...", "topics": [...]}], "attempt": n}
        post these connections again: their post failed transiently n times.

`event` is the Publication (content and seq per topic). A connection whose
post keeps failing is given up after `max_attempts` posts: logged and
counted; its client catches up over HTTP.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from realtime.core.contract import QUEUE_MESSAGE_BYTES
from realtime.core.encoding import compact_json
from realtime.core.observability import logger
from realtime.core.queue import send_batches
from realtime.events.connections import ConnectionStore, Subscriber
from realtime.events.delivery import Deliverer
from realtime.events.models import Publication

RETRY_BASE_SECONDS = 1
RETRY_MAX_SECONDS = 900  # the longest SQS DelaySeconds


@dataclass(frozen=True)
class Target:
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


@dataclass
class FanoutReport:
    sent: int = 0
    gone: int = 0
    refused: int = 0
    throttled: int = 0
    retried: int = 0  # connections queued for another post
    abandoned: int = 0  # connections given up after max_attempts posts
    expired: int = 0  # connections closed instead of posted: their token had expired
    pages_queued: int = 0
    lowest_concurrency: int | None = None
    unqueued: set[str] = field(default_factory=set)  # ids of events whose jobs the queue did not take

    def metrics(self) -> dict[str, int]:
        """The counts process-events and fanout emit, by metric name."""
        return {
            "Delivered": self.sent,
            "ConnectionsGone": self.gone,
            "DeliveryRefused": self.refused,
            "DeliveryThrottled": self.throttled,
            "DeliveriesRetried": self.retried,
            "DeliveriesAbandoned": self.abandoned,
            "ExpiredConnectionsClosed": self.expired,
            "FanoutPagesQueued": self.pages_queued,
        }


class FanoutQueue:
    """The fanout queue: page jobs at once, retry jobs after an exponential backoff with full jitter."""

    def __init__(self, sqs: Any, queue_url: str, *, rand: Callable[[], float] = random.random) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._rand = rand

    def send(self, jobs: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue each job; the indexes of those the queue did not take."""
        messages = []
        for job in jobs:
            message: dict[str, Any] = {"MessageBody": compact_json(job)}
            if job["attempt"]:
                ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** job["attempt"])
                message["DelaySeconds"] = round(self._rand() * ceiling)
            messages.append(message)
        failures = send_batches(self._sqs, self._queue_url, messages)
        for index, reason in failures.items():
            logger.error("Fan-out job not queued", extra={"event_id": jobs[index]["event"]["id"], "reason": reason})
        return sorted(failures)


def retry_jobs(publication: Publication, targets: Sequence[Target], attempt: int) -> list[dict[str, Any]]:
    """Retry jobs for these targets, as few as fit in SQS messages."""
    base = {"event": publication.to_message(), "targets": [], "attempt": attempt}
    room = QUEUE_MESSAGE_BYTES - len(compact_json(base).encode("utf-8"))
    jobs: list[dict[str, Any]] = []
    size = room
    for target in targets:
        entry = target.to_message()
        length = len(compact_json(entry).encode("utf-8")) + 1  # and a comma
        if size + length > room:
            jobs.append({**base, "targets": []})
            size = 0
        jobs[-1]["targets"].append(entry)
        size += length
    return jobs


class FanoutDelivery:
    def __init__(
        self,
        *,
        connections: ConnectionStore,
        deliverer: Deliverer,
        queue: FanoutQueue,
        max_attempts: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connections = connections
        self._deliverer = deliverer
        self._queue = queue
        self._max_attempts = max_attempts
        self._clock = clock

    def deliver_stored(self, publications: Sequence[Publication], first_page: int) -> FanoutReport:
        """process-events: read each topic's first page once for the whole batch and post it inline;
        queue a page job for each (event, topic) whose audience goes on."""
        report = FanoutReport()
        pages = {topic: self._connections.subscriber_page(topic, first_page) for topic in _topics(publications)}
        page_jobs = [
            _page_job(publication, topic, pages[topic].next_key)
            for publication in publications
            for topic in publication.seqs
            if pages[topic].next_key is not None
        ]
        self._queue_jobs(page_jobs, report)
        report.pages_queued = len(page_jobs)
        targets = [
            (publication, target)
            for publication in publications
            if publication.id not in report.unqueued  # its record is retried whole
            for topic in publication.seqs
            for target in owned_targets(publication, topic, pages[topic].subscribers)
        ]
        self._post(targets, 0, report)
        return report

    def run_job(self, job: Mapping[str, Any], page_size: int) -> FanoutReport:
        """fanout: one job. Raises when a job it had to queue was not taken (the job is then retried)."""
        publication = Publication.from_message(job["event"])
        report = FanoutReport()
        if "targets" in job:
            targets = [Target.from_message(t) for t in job["targets"]]
            self._post([(publication, target) for target in targets], int(job["attempt"]), report)
        else:
            topic = job["topic"]
            page = self._connections.subscriber_page(topic, page_size, job["startKey"])
            if page.next_key is not None:
                # Queued before posting, so the next page is read while this one is posted.
                self._queue_jobs([_page_job(publication, topic, page.next_key)], report)
                report.pages_queued = 1
            owned = owned_targets(publication, topic, page.subscribers)
            self._post([(publication, target) for target in owned], 0, report)
        if report.unqueued:
            raise JobsNotQueued(f"fan-out jobs of event {publication.id} were not queued")
        return report

    def _post(self, targets: Sequence[tuple[Publication, Target]], attempt: int, report: FanoutReport) -> None:
        """Post each target its frame; queue the transient failures again, or give them up after max_attempts.

        A target whose token has expired gets no event: it is closed instead.
        """
        now = self._clock()
        expired = {t.connection_id for _, t in targets if t.token_expires_at is not None and t.token_expires_at <= now}
        if expired:
            report.expired += self._deliverer.close_expired(sorted(expired))
            targets = [(publication, target) for publication, target in targets if target.connection_id not in expired]
        # Keyed by the publication itself: two producers' events may share an id.
        frames: dict[tuple[int, tuple[str, ...]], bytes] = {}
        posts = []
        for publication, target in targets:
            key = (id(publication), target.topics)
            if key not in frames:
                frames[key] = publication.frame(target.topics)
            posts.append((target.connection_id, frames[key]))
        delivered = self._deliverer.deliver(posts)
        report.sent += delivered.sent
        report.gone += delivered.gone
        report.refused += delivered.failed
        report.throttled += delivered.throttled
        if posts:
            report.lowest_concurrency = min(report.lowest_concurrency or delivered.concurrency, delivered.concurrency)
        failed: dict[int, tuple[Publication, list[Target]]] = {}
        for index in delivered.retry:
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
        report.retried += sum(len(job["targets"]) for job in jobs if job["event"]["id"] not in report.unqueued)

    def _queue_jobs(self, jobs: Sequence[Mapping[str, Any]], report: FanoutReport) -> None:
        for index in self._queue.send(jobs) if jobs else []:
            report.unqueued.add(jobs[index]["event"]["id"])


class JobsNotQueued(RuntimeError):
    """The fanout queue did not take a job this one had to queue: the job is retried."""


def _page_job(publication: Publication, topic: str, start_key: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"event": publication.to_message(), "topic": topic, "startKey": start_key, "attempt": 0}


def _topics(publications: Iterable[Publication]) -> list[str]:
    return sorted({topic for publication in publications for topic in publication.seqs})
