"""Talking to live WebSocket connections through the `@connections` API: posting frames, closing them.

Shared by delivery (events) and maintenance (closing connections whose token expired)."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.contract import TOKEN_EXPIRED
from realtime.core.encoding import compact_json
from realtime.core.observability import logger

# The last frame a connection gets when its token has expired; the socket is closed right after it.
TOKEN_EXPIRED_FRAME = compact_json(
    {
        "type": "error",
        "error": {"code": TOKEN_EXPIRED, "message": "the token has expired; reconnect with a new token"},
    }
).encode("utf-8")

THROTTLING_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "Throttling"}
)


class Outcome(enum.Enum):
    SENT = "sent"
    GONE = "gone"
    FAILED = "failed"  # the gateway refused this post for good (4xx): retrying cannot help
    TRANSIENT = "transient"  # 5xx, network: may succeed later
    THROTTLED = "throttled"  # 429: may succeed later, and slows this invocation down


class PostReport(msgspec.Struct):
    sent: int = 0
    gone: int = 0
    failed: int = 0
    throttled: int = 0
    # indexes of the posts that may succeed later (throttled too)
    retry: list[int] = msgspec.field(default_factory=list)
    concurrency: int = 0  # posts allowed in flight when the last post ended
    cpu_seconds: float = 0.0  # CPU time of this process while posting (scripts/lab/post_cpu.py: per post)


class InFlightLimit:
    """How many posts may be in flight: halved by throttling, raised by one after as many successes (AIMD).

    Only one halving per round: a throttled post that started before the last
    halving says nothing new, so a burst of 429s does not collapse the limit to 1.
    """

    def __init__(self, maximum: int) -> None:
        self.limit = maximum
        self._maximum = maximum
        self._in_flight = 0
        self._successes = 0
        self._round = 0
        self._changed = threading.Condition()

    def acquire(self) -> int:
        """Wait for room; returns the round the post starts in."""
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
            return self._round

    def release(self, started_in: int, outcome: Outcome) -> None:
        with self._changed:
            self._in_flight -= 1
            if outcome is Outcome.THROTTLED and started_in == self._round:
                self.limit = max(1, self.limit // 2)
                self._round += 1
                self._successes = 0
            elif outcome is Outcome.SENT:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self._maximum:
                    self.limit += 1
                    self._successes = 0
            self._changed.notify_all()


class PostPace:
    """At most `per_second` posts a second from this invocation, spaced evenly (each post takes the next
    free slot, and waits for it): the invocation's share of the module's post budget, so that every
    delivery invocation at once stays within it (terraform/events.tf: delivery_posts_per_second).
    Thread-safe: the posting threads share it."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next = -float("inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class Poster:
    def __init__(
        self,
        client: Any,
        concurrency: int,
        on_gone: Callable[[str], object],
        pace: PostPace | None = None,
    ) -> None:
        """`on_gone(connection_id)` forgets a connection the gateway no longer knows (and ends its session);
        `pace`: this invocation's share of the module's post budget (None: posts go as fast as they can)."""
        self._client = client
        self._concurrency = concurrency
        self._on_gone = on_gone
        self._pace = pace

    def post(self, posts: Sequence[tuple[str, bytes]]) -> PostReport:
        """Post each (connection id, frame) once, in parallel across connections and in the given order
        to each one (a socket receives its frames in seq order); nothing is retried here.

        Gone connections are removed (their later posts are not made). The
        report lists the posts that may succeed later: the caller schedules
        them again, alone.
        """
        report = PostReport(concurrency=self._concurrency)
        if not posts:
            return report
        limit = InFlightLimit(self._concurrency)
        by_connection: dict[str, list[int]] = {}
        for index, (connection_id, _) in enumerate(posts):
            by_connection.setdefault(connection_id, []).append(index)
        outcomes: list[Outcome] = [Outcome.GONE] * len(posts)

        def post_in_order(indexes: list[int]) -> None:
            for index in indexes:
                connection_id, frame = posts[index]
                started_in = limit.acquire()
                outcomes[index] = self._post_one(connection_id, frame)
                limit.release(started_in, outcomes[index])
                if outcomes[index] is Outcome.GONE:
                    return  # the rest stay GONE: the connection is removed once

        workers = min(self._concurrency, len(by_connection))
        cpu_at_start = time.process_time()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="post") as pool:
            list(pool.map(post_in_order, by_connection.values()))
        report.cpu_seconds = time.process_time() - cpu_at_start
        gone: set[str] = set()
        for index, ((connection_id, _), outcome) in enumerate(zip(posts, outcomes, strict=True)):
            if outcome is Outcome.SENT:
                report.sent += 1
            elif outcome is Outcome.GONE:
                gone.add(connection_id)
            elif outcome is Outcome.FAILED:
                report.failed += 1
            else:
                report.throttled += outcome is Outcome.THROTTLED
                report.retry.append(index)
        # Removed here, not in the pool: boto3 resources are not thread-safe.
        for connection_id in gone:
            self._on_gone(connection_id)
        report.gone = len(gone)
        report.concurrency = limit.limit
        return report

    def close_expired(self, connection_ids: Sequence[str]) -> int:
        """Close connections whose token has expired; how many were closed.

        Each gets TOKEN_EXPIRED_FRAME, then DeleteConnection: the gateway closes
        the socket and runs $disconnect, which removes it. One that is gone is
        removed here; one that could not be closed gets no events and is tried
        again by the next delivery or maintenance.
        """
        if not connection_ids:
            return 0
        workers = min(self._concurrency, len(connection_ids))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="close") as pool:
            outcomes = list(pool.map(lambda c: close_expired(self._client, c), connection_ids))
        for connection_id, outcome in zip(connection_ids, outcomes, strict=True):
            if outcome is Outcome.GONE:
                self._on_gone(connection_id)
        return sum(outcome is Outcome.SENT for outcome in outcomes)

    def _post_one(self, connection_id: str, frame: bytes) -> Outcome:
        if self._pace is not None:
            self._pace.wait()
        return _call(connection_id, lambda: self._client.post_to_connection(ConnectionId=connection_id, Data=frame))


def close_expired(client: Any, connection_id: str) -> Outcome:
    """Tell a connection its token expired and close it. SENT: closed; GONE: it was closed already."""
    outcome = _call(
        connection_id, lambda: client.post_to_connection(ConnectionId=connection_id, Data=TOKEN_EXPIRED_FRAME)
    )
    if outcome is not Outcome.GONE:  # the frame only says why: the socket is closed whether it went or not
        outcome = _call(connection_id, lambda: client.delete_connection(ConnectionId=connection_id))
    if outcome is Outcome.SENT:
        logger.info("Connection closed: its token expired", extra={"connection_id": connection_id})
    return outcome


def _call(connection_id: str, request: Callable[[], object]) -> Outcome:
    try:
        request()
    except ClientError as error:
        return _classify(connection_id, error)
    except BotoCoreError as error:  # connection refused, timeouts, ...
        logger.warning("Post failed (network)", extra={"connection_id": connection_id, "error": str(error)})
        return Outcome.TRANSIENT
    return Outcome.SENT


def _classify(connection_id: str, error: ClientError) -> Outcome:
    code = error.response.get("Error", {}).get("Code", "")
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "GoneException" or status == 410:
        return Outcome.GONE
    if code in THROTTLING_CODES or status == 429:
        return Outcome.THROTTLED
    if status >= 500:
        logger.warning("Post failed (retryable)", extra={"connection_id": connection_id, "code": code})
        return Outcome.TRANSIENT
    logger.warning(
        "Post refused; not retried",
        extra={"connection_id": connection_id, "code": code, "status": status, "error": str(error)},
    )
    return Outcome.FAILED
