"""Sending messages that can never succeed to the DLQ, with the reason attached."""

from __future__ import annotations

from typing import Any

MAX_REASON_LENGTH = 1024


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
