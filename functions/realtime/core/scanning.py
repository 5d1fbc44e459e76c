"""A Scan read a bounded slice at a time: from a saved position, at most a budget of items.

Maintenance scans whole tables; reading all of a large table every run would
make a run's cost and duration grow with the table. `scan_pages` reads from
where the last run stopped until it has read `budget` items (matching its
filter or not: DynamoDB charges for what it reads) or reached the table's end,
and says where the next read should start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

Key = dict[str, Any]  # a table's primary key: an ExclusiveStartKey


class ScanPage[T](msgspec.Struct, frozen=True):
    entries: tuple[tuple[Key, T], ...]  # the items that matched the filter, each with its primary key
    start_key: Key | None  # where this page began (None: at the table's start)
    end_key: Key | None  # where the next page begins; None: this page reached the table's end
    scanned: int  # items read for this page, matching or not


def _unchanged(item: dict[str, Any]) -> Any:
    return item


def scan_pages[T](
    table: Any,
    request: Mapping[str, Any],
    *,
    key_names: tuple[str, ...],
    start_key: Key | None,
    budget: int,
    convert: Callable[[dict[str, Any]], T] = _unchanged,
) -> Iterator[ScanPage[T]]:
    """Scan pages (read lazily) from `start_key` until `budget` items are read or the table ends.

    Each page asks for at most the budget left (`Limit` counts items read, not
    matches), so the pages together read at most `budget` items. `key_names`
    must be in the request's projection: an item's key is where a scan resumes
    just after it.
    """
    remaining = budget
    key = start_key
    while remaining > 0:
        page_request = {**request, "Limit": remaining}
        if key is not None:
            page_request["ExclusiveStartKey"] = key
        response = table.scan(**page_request)
        end_key = response.get("LastEvaluatedKey")
        scanned = int(response["ScannedCount"])
        yield ScanPage(
            entries=tuple(
                ({name: item[name] for name in key_names}, convert(item)) for item in response.get("Items", [])
            ),
            start_key=key,
            end_key=end_key,
            scanned=scanned,
        )
        if end_key is None:
            return
        remaining -= max(scanned, 1)  # never loop on an empty page
        key = end_key
