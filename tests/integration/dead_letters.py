"""Reading the reasons process-events gave for the messages it sent to the events DLQ."""

from __future__ import annotations

import time
from typing import Any


def dead_letter_reasons(sqs: Any, dlq_url: str, source_ids: dict[str, str], timeout: float = 60) -> dict[str, dict]:
    """The message attributes (errorCode, errorReason, ...) of the dead letters of these source messages
    (SQS message id -> a name), by name, once all have arrived or the time is up. Those are taken off the
    DLQ; other tests' are left there."""
    reasons: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(reasons) < len(source_ids) and time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=2, MessageAttributeNames=["All"]
        )
        for message in received.get("Messages", []):
            attributes = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            name = source_ids.get(attributes.get("sourceMessageId"))
            if name:
                reasons[name] = attributes
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
    return reasons
