"""What DynamoDB TTL has yet to remove: it deletes expired items in the background, typically
within a few days, and until then they are ordinary items (every read here ignores them)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SAMPLE_ITEMS = 100


@dataclass(frozen=True)
class ExpirySample:
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
    """One DescribeTable and one Scan page of about `sample_items` items from a random segment,
    counted (Select=COUNT), not returned: cheap enough for every maintenance run."""
    items = int(table.meta.client.describe_table(TableName=table.name)["Table"].get("ItemCount", 0))
    segments = max(1, min(1_000_000, items // sample_items))
    response = table.scan(
        Segment=pick(segments),
        TotalSegments=segments,
        Limit=sample_items,
        Select="COUNT",
        FilterExpression="expiresAt <= :now",
        ExpressionAttributeValues={":now": now},
    )
    return ExpirySample(items, int(response["ScannedCount"]), int(response["Count"]))
