"""SQS batches with partial failures: a record that fails is retried alone, the others are done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

# Report failed records instead of raising, even when the whole batch failed: same retry, clearer logs.
_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def process_sqs_batch(
    event: dict[str, Any], context: LambdaContext, handle_record: Callable[[SQSRecord], None]
) -> dict[str, Any]:
    """The batchItemFailures response for the records `handle_record` raised on."""
    return process_partial_response(event=event, record_handler=handle_record, processor=_processor, context=context)
