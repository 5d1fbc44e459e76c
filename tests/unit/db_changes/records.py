"""Building DynamoDB Streams records (as the event source mapping delivers them) for the db-changes tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from boto3.dynamodb.types import TypeSerializer

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"
_serializer = TypeSerializer()


def image(item: dict[str, Any]) -> dict[str, Any]:
    """A Python item in DynamoDB JSON, as stream images carry it (binary as base64 text, like the event's JSON)."""
    serialized = {name: _serializer.serialize(value) for name, value in item.items()}
    return json.loads(json.dumps(serialized, default=lambda raw: base64.b64encode(bytes(raw)).decode()))


def stream_record(
    kind: str,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    event_id: str = "event-1",
    sequence_number: str = "100",
    stream_arn: str = STREAM_ARN,
    created: float = 1_767_225_600,
    view_type: str = "NEW_AND_OLD_IMAGES",
) -> dict[str, Any]:
    keys = (new or old or {}).get("pk")
    stream: dict[str, Any] = {
        "ApproximateCreationDateTime": created,
        "Keys": image({"pk": keys}) if keys is not None else {},
        "SequenceNumber": sequence_number,
        "SizeBytes": 100,
        "StreamViewType": view_type,
    }
    if old is not None:
        stream["OldImage"] = image(old)
    if new is not None:
        stream["NewImage"] = image(new)
    return {
        "eventID": event_id,
        "eventName": kind,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": stream,
        "eventSourceARN": stream_arn,
    }
