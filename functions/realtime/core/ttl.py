"""What DynamoDB TTL has yet to remove: it deletes expired items in the background, typically
within a few days, and until then they are ordinary items (every read here ignores them)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec

SAMPLE_ITEMS = 100
MAX_SCANS = 10


class ExpirySample(msgspec.Struct, frozen=True):
    items: int  # the table's item count (DescribeTable: DynamoDB refreshes it about every six hours)
    sampled: int
    expired_in_sample: int

    @property
    def expired_estimate(self) -> int:
        """Items past expiresAt still in the table, extrapolated from the sample."""
        return round(self.items * self.expired_in_sample / self.sampled) if self.sampled else 0


def sample_expired(
    table: Any,
    now: int,
    *,
    sample_items: int = SAMPLE_ITEMS,
    pick: Callable[[int], int] = random.randrange,
) -> ExpirySample:
    """One DescribeTable and Scan pages counted (Select=COUNT), not returned, until about `sample_items`
    items are seen: from a random segment of about that many items on, at most MAX_SCANS pages (a
    segment holds whole topics, so some are nearly empty). Cheap enough for every maintenance run."""
    items = int(table.meta.client.describe_table(TableName=table.name)["Table"].get("ItemCount", 0))
    segments = max(1, min(1_000_000, items // sample_items))
    first = pick(segments)
    sampled = expired = 0
    for offset in range(min(segments, MAX_SCANS)):
        response = table.scan(
            Segment=(first + offset) % segments,
            TotalSegments=segments,
            Limit=sample_items - sampled,
            Select="COUNT",
            FilterExpression="expiresAt <= :now",
            ExpressionAttributeValues={":now": now},
        )
        sampled += int(response["ScannedCount"])
        expired += int(response["Count"])
        if sampled >= sample_items:
            break
    return ExpirySample(items, sampled, expired)
