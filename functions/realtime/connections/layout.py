"""Where a topic's subscription rows live: under one key, or spread over several (write-sharded).

A topic's rows live under `topic#<topic>` (shard 0) and, when the topic is
spread over N keys, `topic#<topic>#1` .. `topic#<topic>#<N-1>` (topics never
hold `#`, so no topic's key is another's shard). A connection's row goes to
shard crc32(connection id) mod N: connects and disconnects spread evenly, and
each key stays under DynamoDB's per-partition write ceiling. Readers gather a
topic's shards; a broadcast reads them in parallel, one page chain per shard.

Shard 0 is the key every topic used before there were shards, so rows written
then are read as shard 0 and need no migration. How many keys a topic has is
configuration (`subscription_shards`: a topic, or `kind:*`, to a count; others
get one): readers (process-events, fanout) get it as SUBSCRIPTION_SHARDS, and
the writer (ws-connect) reads it from the layout item that Terraform writes
into the connections table only after every function has been updated. So a
connection is never written to a shard before the readers read that shard, and
each connection record keeps the counts it was written with (`topicShards`),
which is what its removal follows.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from realtime.core.contract import is_topic
from realtime.core.errors import ConfigError

MAX_SHARDS = 64
TOPIC_KINDS = ("user", "group", "presence")
# The layout item (terraform/connections.tf): `shards` holds the same JSON as SUBSCRIPTION_SHARDS.
LAYOUT_KEY = {"pk": "layout", "sk": "subscriptions"}
LAYOUT_REFRESH_SECONDS = 60  # how long ws-connect keeps the layout it read


def subscription_key(topic: str, shard: int) -> str:
    """The partition key of one shard of a topic's subscription rows."""
    return f"topic#{topic}" if shard == 0 else f"topic#{topic}#{shard}"


def shard_of(connection_id: str, shards: int) -> int:
    """The shard of a topic with `shards` keys that holds this connection's row."""
    return zlib.crc32(connection_id.encode("utf-8")) % shards if shards > 1 else 0


class SubscriptionLayout(msgspec.Struct, frozen=True):
    """How many keys each topic's subscription rows are spread over: a topic or `kind:*` -> count."""

    shards: Mapping[str, int] = msgspec.field(default_factory=dict)

    def count(self, topic: str) -> int:
        if topic in self.shards:
            return self.shards[topic]
        kind, _, _ = topic.partition(":")
        return self.shards.get(f"{kind}:*", 1)

    def current(self) -> SubscriptionLayout:
        return self

    @classmethod
    def from_json(cls, raw: str) -> SubscriptionLayout:
        """The layout SUBSCRIPTION_SHARDS (or the layout item) holds; ConfigError naming what is wrong."""
        try:
            shards = json.loads(raw)
        except ValueError as error:
            raise ConfigError(f"SUBSCRIPTION_SHARDS is not JSON: {error}") from None
        if not isinstance(shards, dict):
            raise ConfigError("SUBSCRIPTION_SHARDS must be a JSON object: topic or kind:* -> count")
        for name, count in shards.items():
            if not (is_topic(name) or name in {f"{kind}:*" for kind in TOPIC_KINDS}):
                raise ConfigError(f"SUBSCRIPTION_SHARDS key {name!r} is neither a topic nor a kind (user:*, ...)")
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SHARDS:
                raise ConfigError(f"SUBSCRIPTION_SHARDS[{name!r}] must be a whole number from 1 to {MAX_SHARDS}")
        return cls(dict(shards))


ONE_KEY_EACH = SubscriptionLayout()


class StoredLayout:
    """The writer's layout: the layout item of the connections table, read again after a minute.

    Until the item exists (a deployment being upgraded, before Terraform writes it), every topic
    has one key: the rows go where readers of every version look.
    """

    def __init__(
        self,
        table: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = LAYOUT_REFRESH_SECONDS,
    ) -> None:
        self._table = table
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._layout = ONE_KEY_EACH
        self._read_at: float | None = None

    def current(self) -> SubscriptionLayout:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._refresh_seconds:
            item = self._table.get_item(Key=LAYOUT_KEY, ConsistentRead=True).get("Item")
            self._layout = ONE_KEY_EACH if item is None else SubscriptionLayout.from_json(str(item["shards"]))
            self._read_at = now
        return self._layout
