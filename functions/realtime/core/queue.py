"""Sending many messages to one SQS queue: SendMessageBatch, 10 entries and 256 KiB a call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from realtime.core.contract import QUEUE_MESSAGE_BYTES

MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limit
MAX_BATCH_BYTES = QUEUE_MESSAGE_BYTES  # ...and its limit on the sum of the bodies


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
