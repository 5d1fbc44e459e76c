"""SQS batches with partial failures: a record that fails is retried alone, the others are done."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.observability import logger

MAX_RETRY_DELAY_SECONDS = 120
VISIBILITY_BATCH = 10  # ChangeMessageVisibilityBatch's limit


@dataclass(frozen=True)
class QueueRecord:
    """One record of an SQS -> Lambda event, the fields the functions read.

    Not Powertools' SQSRecord or batch utilities: importing them loads every event
    class of Powertools (and its pydantic models when pydantic is loaded), a large
    share of a cold start for five fields.
    """

    message_id: str
    body: str
    receipt_handle: str
    receive_count: int
    sent_timestamp_ms: int | None
    sender_id: str | None  # who sent it (SenderId): on AWS the IAM role's unique id and session
    event_source_arn: str  # the queue it came from, for a function fed by two

    @classmethod
    def from_event(cls, raw: Mapping[str, Any]) -> QueueRecord:
        attributes = raw.get("attributes") or {}
        sent = attributes.get("SentTimestamp")
        return cls(
            message_id=raw["messageId"],
            body=raw["body"],
            receipt_handle=raw["receiptHandle"],
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            sent_timestamp_ms=int(sent) if sent else None,
            sender_id=attributes.get("SenderId"),
            event_source_arn=raw.get("eventSourceARN", ""),
        )


def records(event: Mapping[str, Any]) -> list[QueueRecord]:
    return [QueueRecord.from_event(raw) for raw in event["Records"]]


def process_sqs_batch(event: Mapping[str, Any], handle_record: Callable[[QueueRecord], None]) -> dict[str, Any]:
    """The batchItemFailures response for the records `handle_record` raised on (each retried alone)."""
    failed = []
    for record in records(event):
        try:
            handle_record(record)
        except Exception:
            logger.exception("Record failed; SQS will retry it", extra={"message_id": record.message_id})
            failed.append(record)
    return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in failed]}


def retry_delay(receive_count: int, rand: Callable[[], float] = random.random) -> int:
    """Seconds before a failed record's next try: about 2^receives, ±50 %, at most 2 minutes."""
    ceiling = min(MAX_RETRY_DELAY_SECONDS, 2**receive_count)
    return min(MAX_RETRY_DELAY_SECONDS, round(ceiling * (0.5 + rand())))


class RetrySoon:
    """Reports failed records to Lambda, after making each visible again in seconds rather than after the
    queue's visibility timeout (minutes): transient failures (throttling, contention) clear up quickly.

    `other_queues` maps the eventSourceARN of a function's other queues to their URL.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        other_queues: Mapping[str, str] | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._other_queues = other_queues or {}
        self._rand = rand

    def report(self, failed: Sequence[QueueRecord]) -> dict[str, Any]:
        """The batchItemFailures response for these records."""
        by_queue: dict[str, list[QueueRecord]] = {}
        for record in failed:
            by_queue.setdefault(self._other_queues.get(record.event_source_arn, self._queue_url), []).append(record)
        for queue_url, records in by_queue.items():
            self._retry_soon(queue_url, records)
        return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in failed]}

    def _retry_soon(self, queue_url: str, failed: Sequence[QueueRecord]) -> None:
        for start in range(0, len(failed), VISIBILITY_BATCH):
            chunk = failed[start : start + VISIBILITY_BATCH]
            entries = [
                {
                    "Id": str(index),
                    "ReceiptHandle": record.receipt_handle,
                    "VisibilityTimeout": retry_delay(record.receive_count, self._rand),
                }
                for index, record in enumerate(chunk)
            ]
            try:
                response = self._sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as error:
                response = {"Failed": [{"Id": entry["Id"], "Message": str(error)} for entry in entries]}
            for failure in response.get("Failed", []):
                # Not fatal: that record waits out the visibility timeout instead.
                logger.warning(
                    "Retry delay not set",
                    extra={"message_id": chunk[int(failure["Id"])].message_id, "reason": failure.get("Message")},
                )
