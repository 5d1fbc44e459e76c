"""Every DynamoDB request the code under test sends, and the items it wrote.

Counted at botocore's `BaseClient._make_api_call`, which every client and
resource goes through whatever the layer above (resource, batch_writer, client)
and whenever it was created: an event hook registered on boto3's session would
miss the clients the functions cached before it (each client copies the hooks
of its session when created). A write whose condition failed writes no item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.client
from botocore.exceptions import ClientError

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class DynamoRequests:
    requests: Counter[str] = field(default_factory=Counter)  # operation -> requests sent
    refused: Counter[str] = field(default_factory=Counter)  # operation -> requests answered with an error
    item_writes: int = 0  # items put, updated or deleted by the requests DynamoDB applied

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def applied_writes(self) -> int:
        """Write requests DynamoDB applied (one whose condition failed is not applied)."""
        return sum(self.requests[op] - self.refused[op] for op in WRITE_OPERATIONS)

    def summary(self) -> str:
        calls = ", ".join(
            f"{op} x{n}" + (f" ({self.refused[op]} refused)" if self.refused[op] else "")
            for op, n in sorted(self.requests.items())
        )
        return f"{self.total} requests ({calls}); {self.item_writes} item writes"


def _items_in(operation: str, params: dict[str, Any]) -> int:
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    if operation == "TransactWriteItems":
        return sum(1 for item in params.get("TransactItems", []) if "ConditionCheck" not in item)
    return 1 if operation in WRITE_OPERATIONS else 0


@contextmanager
def dynamodb_requests() -> Iterator[DynamoRequests]:
    """Count the DynamoDB requests made inside the block (not thread-safe: single-threaded tests)."""
    seen = DynamoRequests()
    make_api_call = botocore.client.BaseClient._make_api_call

    def counted_api_call(self: Any, operation: str, params: dict) -> Any:
        if self.meta.service_model.service_name != "dynamodb":
            return make_api_call(self, operation, params)
        seen.requests[operation] += 1
        try:
            response = make_api_call(self, operation, params)
        except ClientError:
            seen.refused[operation] += 1
            raise
        unprocessed = response.get("UnprocessedItems") or {}
        seen.item_writes += _items_in(operation, params) - sum(len(r) for r in unprocessed.values())
        return response

    botocore.client.BaseClient._make_api_call = counted_api_call
    try:
        yield seen
    finally:
        botocore.client.BaseClient._make_api_call = make_api_call
