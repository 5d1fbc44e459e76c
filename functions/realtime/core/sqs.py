"""SQS plumbing every function shares: batches with partial failures, sending in batches, the DLQ.

A record that fails is reported alone (batchItemFailures) and made visible again
soon; the others are done. Messages that can never succeed go to a DLQ with
their reason attached.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.contract import QUEUE_MESSAGE_BYTES
from realtime.core.observability import logger

MAX_RETRY_DELAY_SECONDS = 120
VISIBILITY_BATCH = 10  # ChangeMessageVisibilityBatch's limit
MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limit
MAX_BATCH_BYTES = QUEUE_MESSAGE_BYTES  # ...and its limit on the sum of the bodies
MAX_REASON_LENGTH = 1024  # of the reason attached to a dead letter


class QueueRecord(msgspec.Struct, frozen=True):
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


def batch_failures(failed: Sequence[QueueRecord]) -> dict[str, Any]:
    """The batchItemFailures response: these records are retried alone, the others are done."""
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
        return batch_failures(failed)

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


# --- sending ----------------------------------------------------------------------------------------


def send_batches(sqs: Any, queue_url: str, messages: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Send each message (`MessageBody`, optionally `DelaySeconds`); the index and reason of each one not accepted."""
    failures: dict[int, str] = {}
    for chunk in _chunks([len(message["MessageBody"].encode("utf-8")) for message in messages]):
        entries = [{"Id": str(index), **messages[index]} for index in chunk]
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as error:
            failures.update({index: f"SendMessageBatch failed: {error}" for index in chunk})
            continue
        for failed in response.get("Failed", []):
            failures[int(failed["Id"])] = f"{failed.get('Code', 'Error')}: {failed.get('Message', '')}".strip()
    return failures


def _chunks(sizes: Sequence[int]) -> list[list[int]]:
    """Indexes grouped into calls of at most 10 entries and 256 KiB."""
    chunks: list[list[int]] = []
    size = 0
    for index, length in enumerate(sizes):
        if not chunks or len(chunks[-1]) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(index)
        size += length
    return chunks


# --- dead letters -----------------------------------------------------------------------------------


def _text_attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class DeadLetterQueue:
    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url

    def send(self, body: str, *, error_code: str, error_reason: str, source_message_id: str) -> str:
        """Send the original body unchanged; return the DLQ's message id."""
        reason = error_reason if len(error_reason) <= MAX_REASON_LENGTH else error_reason[: MAX_REASON_LENGTH - 1] + "…"
        response = self._sqs.send_message(
            QueueUrl=self._queue_url,
            MessageBody=body,
            MessageAttributes={
                "errorCode": _text_attribute(error_code),
                "errorReason": _text_attribute(reason or error_code),
                "sourceMessageId": _text_attribute(source_message_id),
            },
        )
        return response["MessageId"]
