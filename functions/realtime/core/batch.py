"""SQS batches with partial failures: a record that fails is retried alone, the others are done."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.observability import logger

# Report failed records instead of raising, even when the whole batch failed: same retry, clearer logs.
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

MAX_RETRY_DELAY_SECONDS = 120
VISIBILITY_BATCH = 10  # ChangeMessageVisibilityBatch's limit


def process_sqs_batch(
    event: dict[str, Any], context: LambdaContext, handle_record: Callable[[SQSRecord], None]
) -> dict[str, Any]:
    """The batchItemFailures response for the records `handle_record` raised on."""
    return process_partial_response(event=event, record_handler=handle_record, processor=_processor, context=context)


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

    def report(self, failed: Sequence[SQSRecord]) -> dict[str, Any]:
        """The batchItemFailures response for these records."""
        by_queue: dict[str, list[SQSRecord]] = {}
        for record in failed:
            by_queue.setdefault(self._other_queues.get(record.event_source_arn, self._queue_url), []).append(record)
        for queue_url, records in by_queue.items():
            self._retry_soon(queue_url, records)
        return {"batchItemFailures": [{"itemIdentifier": record.message_id} for record in failed]}

    def _retry_soon(self, queue_url: str, failed: Sequence[SQSRecord]) -> None:
        for start in range(0, len(failed), VISIBILITY_BATCH):
            chunk = failed[start : start + VISIBILITY_BATCH]
            entries = [
                {
                    "Id": str(index),
                    "ReceiptHandle": record.receipt_handle,
                    "VisibilityTimeout": retry_delay(int(record.attributes.approximate_receive_count), self._rand),
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
