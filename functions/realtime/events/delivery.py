"""Posting frames to live WebSocket connections through the `@connections` API."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.observability import logger

THROTTLING_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "Throttling"}
)


class TransientDeliveryError(Exception):
    """Some posts failed in a way that may succeed later (throttling, 5xx, network)."""


class Outcome(enum.Enum):
    SENT = "sent"
    GONE = "gone"
    FAILED = "failed"  # the gateway refused this post for good (4xx): retrying cannot help
    TRANSIENT = "transient"


@dataclass
class DeliveryReport:
    sent: int = 0
    gone: int = 0
    failed: int = 0


class Deliverer:
    def __init__(self, client: Any, concurrency: int, on_gone: Callable[[str], object]) -> None:
        """`on_gone(connection_id)` forgets a connection the gateway no longer knows (and ends its session)."""
        self._client = client
        self._concurrency = concurrency
        self._on_gone = on_gone

    def deliver(self, posts: Sequence[tuple[str, bytes]]) -> DeliveryReport:
        """Post each (connection id, frame) once, in parallel.

        Gone connections are removed. After every post was attempted, raises
        TransientDeliveryError if any may succeed on a retry: the whole record
        is then retried, and clients drop the copies they already have.
        """
        report = DeliveryReport()
        if not posts:
            return report
        workers = min(self._concurrency, len(posts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
            outcomes = list(pool.map(lambda post: self._post(*post), posts))
        gone: set[str] = set()
        transient = 0
        for (connection_id, _), outcome in zip(posts, outcomes, strict=True):
            if outcome is Outcome.SENT:
                report.sent += 1
            elif outcome is Outcome.GONE:
                gone.add(connection_id)
            elif outcome is Outcome.FAILED:
                report.failed += 1
            else:
                transient += 1
        # Removed here, not in the pool: boto3 resources are not thread-safe.
        for connection_id in gone:
            self._on_gone(connection_id)
        report.gone = len(gone)
        if transient:
            raise TransientDeliveryError(f"{transient} of {len(posts)} posts failed transiently")
        return report

    def _post(self, connection_id: str, frame: bytes) -> Outcome:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=frame)
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
    if code in THROTTLING_CODES or status == 429 or status >= 500:
        logger.warning("Post failed (retryable)", extra={"connection_id": connection_id, "code": code})
        return Outcome.TRANSIENT
    logger.warning(
        "Post refused; not retried",
        extra={"connection_id": connection_id, "code": code, "status": status, "error": str(error)},
    )
    return Outcome.FAILED
