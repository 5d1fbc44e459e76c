"""Events written straight into the events table in the store's layout (realtime.events.store:
event items and the topic's counter; no idempotency records, which reads never look at),
for tests that need many stored events quickly, or events the pipeline never writes (already
past retention). Not safe against the pipeline writing the same topic at the same time: use a
topic of the test's own."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from realtime.core.encoding import format_timestamp
from realtime.events.models import Event
from realtime.events.store import COUNTER_SEQ, event_item

RETENTION_SECONDS = 7 * 86400


def write_events(
    table: Any,
    topic: str,
    count: int,
    *,
    data: dict[str, Any] | None = None,
    expires_at: int | None = None,
    event_type: str = "test.stored",
) -> list[dict[str, Any]]:
    """Store `count` events after the topic's last one (one ms apart); returns their frames, oldest first.

    `table` is a boto3 DynamoDB Table resource. `expires_at` (epoch seconds) defaults to a week ahead;
    one in the past plants events that TTL has not deleted yet.
    """
    counter = table.get_item(Key={"topic": topic, "seq": COUNTER_SEQ}, ConsistentRead=True).get("Item")
    last_seq = int(counter["lastSeq"]) if counter else 0
    expires_at = int(time.time()) + RETENTION_SECONDS if expires_at is None else expires_at
    started = datetime.now(UTC)
    frames = []
    with table.batch_writer() as batch:
        for offset in range(1, count + 1):
            seq = last_seq + offset
            published_at = format_timestamp(started + timedelta(milliseconds=offset))
            event_id = f"stored-{uuid.uuid4().hex[:12]}"
            event = Event(event_id, event_type, topic, seq, {"n": seq, **(data or {})}, published_at, published_at)
            body = event.to_json()
            frames.append(json.loads(body))
            batch.put_item(Item=event_item(topic, seq, event_id, event_type, body, published_at, expires_at))
    table.put_item(Item={"topic": topic, "seq": COUNTER_SEQ, "lastSeq": last_seq + count})
    return frames
