"""The connections table: one item per live WebSocket plus one per (topic, connection).

Delivery reads a topic's connections a page at a time with a Query on one of
the topic's subscription keys (`topic#<topic>`, and for a topic spread over
several keys its shards: realtime.connections.layout). Each subscription also
carries the connection's full topic list, so a page alone tells which of an
event's topics reach each connection (see realtime.events.delivery).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from realtime.connections.layout import ONE_KEY_EACH, StoredLayout, SubscriptionLayout, shard_of, subscription_key
from realtime.core.encoding import timestamp_at
from realtime.core.scanning import Key, ScanPage, scan_pages

META_SK = "meta"
SHARDS_ATTRIBUTE = "topicShards"  # on a connection record: topic -> keys it was spread over, where more than one
PARALLEL_READS = 16  # subscriber pages read at once
SESSIONS_SK = "sessions"
BATCH_GET_LIMIT = 100  # keys per BatchGetItem
# A session is claimed before its connection record is written: the claim's time is kept beside the session
# set, in one attribute per session (`claimed:<connection id>`, epoch seconds), so the session of a $connect
# still writing its record is not taken for one whose record is gone. Removed with the session.
CLAIM_PREFIX = "claimed:"


def claim_attribute(connection_id: str) -> str:
    return f"{CLAIM_PREFIX}{connection_id}"


def claims_on(item: Mapping[str, Any]) -> dict[str, float]:
    """Connection id -> when its session was claimed, from a sessions or presence item."""
    return {
        name[len(CLAIM_PREFIX) :]: float(value)
        for name, value in item.items()
        if name.startswith(CLAIM_PREFIX) and not isinstance(value, bool) and isinstance(value, int | float | Decimal)
    }


class TooManySessions(Exception):
    """The user already has as many sessions as allowed: the new connection is refused.

    `claimed_at`: when each session was claimed, for those claimed by this version (see CLAIM_PREFIX).
    """

    def __init__(self, user_id: str, sessions: frozenset[str], claimed_at: Mapping[str, float] | None = None) -> None:
        super().__init__(f"user {user_id!r} already has {len(sessions)} sessions")
        self.user_id = user_id
        self.sessions = sessions
        self.claimed_at = dict(claimed_at or {})


class Subscriber(msgspec.Struct, frozen=True):
    connection_id: str
    topics: tuple[str, ...] | None  # all the connection's topics; None on items written before they were kept
    token_expires_at: int | None = None  # its token's `exp`; None on items written before it was kept


class ConnectionRecord(msgspec.Struct, frozen=True):
    topics: tuple[str, ...]  # every topic the connection holds
    token_expires_at: int | None  # its token's `exp`; None on records written before it was kept


class SubscriberPage(msgspec.Struct, frozen=True):
    subscribers: list[Subscriber]
    next_key: dict[str, Any] | None  # where the next page starts; None: this was the last one


def connection_pk(connection_id: str) -> str:
    return f"conn#{connection_id}"


def topic_pk(topic: str, shard: int = 0) -> str:
    return subscription_key(topic, shard)


def user_pk(user_id: str) -> str:
    return f"user#{user_id}"


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class ConnectionStore:
    """`layout`: how many keys each topic's rows are spread over. Writers (ws-connect) pass the stored
    layout; readers the one they are configured with; removals follow each record's own counts."""

    def __init__(
        self,
        table: Any,
        *,
        clock: Callable[[], float] = time.time,
        layout: SubscriptionLayout | StoredLayout = ONE_KEY_EACH,
    ) -> None:
        self._table = table
        self._clock = clock
        self._layout = layout
        self._readers: ThreadPoolExecutor | None = None

    def _now_iso(self) -> str:
        return timestamp_at(self._clock())

    def add(
        self,
        connection_id: str,
        user_id: str,
        topics: Iterable[str],
        ttl_seconds: int,
        token_expires_at: int | None = None,
    ) -> None:
        """Record a new connection and subscribe it to its topics.

        `token_expires_at` (the token's `exp`) goes on every item, so delivery sees
        it in the subscriber pages it reads anyway. The record's own lifetime is not
        cut to it: the record must outlive the token until the socket is closed.
        """
        topics = list(dict.fromkeys(topics))
        now = self._now_iso()
        expires_at = int(self._clock()) + ttl_seconds
        token = {} if token_expires_at is None else {"tokenExpiresAt": token_expires_at}
        layout = self._layout.current()
        shards = {topic: layout.count(topic) for topic in topics if layout.count(topic) > 1}
        # The connection item first: it is what $disconnect reads to find the subscriptions (and their keys).
        self._table.put_item(
            Item={
                "pk": connection_pk(connection_id),
                "sk": META_SK,
                "connectionId": connection_id,
                "userId": user_id,
                "topics": topics,
                "connectedAt": now,
                "lastSeen": now,
                "expiresAt": expires_at,
                **token,
                **({SHARDS_ATTRIBUTE: shards} if shards else {}),
            }
        )
        with self._table.batch_writer() as batch:
            for topic in topics:
                batch.put_item(
                    Item={
                        "pk": topic_pk(topic, shard_of(connection_id, shards.get(topic, 1))),
                        "sk": connection_pk(connection_id),
                        "connectionId": connection_id,
                        "userId": user_id,
                        "topics": topics,
                        "expiresAt": expires_at,
                        **token,
                    }
                )

    def get(self, connection_id: str) -> dict[str, Any] | None:
        return self._table.get_item(Key={"pk": connection_pk(connection_id), "sk": META_SK}, ConsistentRead=True).get(
            "Item"
        )

    def remove(self, connection_id: str) -> bool:
        """Delete a connection and its subscriptions. Idempotent; False if it was already gone."""
        item = self.get(connection_id)
        if item is None:
            return False
        shards = item.get(SHARDS_ATTRIBUTE, {})  # records written before shards: one key each
        with self._table.batch_writer() as batch:
            for topic in item.get("topics", []):
                pk = topic_pk(topic, shard_of(connection_id, int(shards.get(topic, 1))))
                batch.delete_item(Key={"pk": pk, "sk": connection_pk(connection_id)})
            batch.delete_item(Key={"pk": connection_pk(connection_id), "sk": META_SK})
        return True

    def claim_session(self, user_id: str, connection_id: str, max_sessions: int, ttl_seconds: int) -> None:
        """Count a session on the user's sessions item (without presence, which counts them itself).

        One conditional UpdateItem, so concurrent connects of a user cannot both
        take the last place; it records when the session was claimed (see
        CLAIM_PREFIX). Raises TooManySessions at the limit, having written nothing.
        """
        key = {"pk": user_pk(user_id), "sk": SESSIONS_SK}
        now = self._clock()
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="ADD #connections :ids SET expiresAt = :expires, #claimed = :now",
                ConditionExpression="attribute_not_exists(#connections) OR size(#connections) < :max "
                "OR contains(#connections, :id)",
                ExpressionAttributeNames={"#connections": "connections", "#claimed": claim_attribute(connection_id)},
                ExpressionAttributeValues={
                    ":ids": {connection_id},
                    ":id": connection_id,
                    ":max": max_sessions,
                    # The item outlives the user's last connection record, then expires with it.
                    ":expires": int(now) + ttl_seconds,
                    ":now": int(now),
                },
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            raise TooManySessions(user_id, frozenset(item.get("connections", ())), claims_on(item)) from None

    def release_session(self, user_id: str, connection_id: str) -> None:
        """Stop counting a session on the user's sessions item. Idempotent."""
        try:
            self._table.update_item(
                Key={"pk": user_pk(user_id), "sk": SESSIONS_SK},
                UpdateExpression="DELETE #connections :ids REMOVE #claimed",
                ConditionExpression="attribute_exists(pk)",  # never create an item to delete from
                ExpressionAttributeNames={"#connections": "connections", "#claimed": claim_attribute(connection_id)},
                ExpressionAttributeValues={":ids": {connection_id}},
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise

    def touch(self, connection_id: str) -> bool:
        """Move the connection's lastSeen to now (maintenance found it alive). False if it has no record."""
        try:
            self._table.update_item(
                Key={"pk": connection_pk(connection_id), "sk": META_SK},
                UpdateExpression="SET lastSeen = :now",
                # Without it, UpdateItem would create a stray item for a removed connection.
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": self._now_iso()},
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def not_seen_since(
        self, seen_before: str, connected_before: str, *, start_key: Key | None, budget: int
    ) -> Iterator[ScanPage[dict[str, Any]]]:
        """Connection records (`connectionId`, `userId`, `tokenExpiresAt`) last seen before one time,
        connected before another, or whose token has expired: Scan pages from `start_key`, at most
        `budget` items read (subscriptions too), each record with its key (where a scan resumes after it).

        The timestamps are fixed-width ISO text, so comparing strings compares times.
        """
        request: dict[str, Any] = {
            "FilterExpression": "sk = :meta AND "
            "(lastSeen < :seen OR connectedAt < :connected OR tokenExpiresAt <= :now)",
            "ProjectionExpression": "pk, sk, connectionId, userId, tokenExpiresAt",
            "ExpressionAttributeValues": {
                ":meta": META_SK,
                ":seen": seen_before,
                ":connected": connected_before,
                ":now": int(self._clock()),
            },
        }
        return scan_pages(
            self._table,
            request,
            key_names=("pk", "sk"),
            start_key=start_key,
            budget=budget,
            convert=lambda item: {name: value for name, value in item.items() if name not in ("pk", "sk")},
        )

    def existing(self, connection_ids: Iterable[str]) -> set[str]:
        """Which of these connections still have a record (consistent BatchGetItem)."""
        return {str(item["connectionId"]) for item in self._records(connection_ids, "connectionId")}

    def records(self, connection_ids: Iterable[str]) -> dict[str, ConnectionRecord]:
        """The topics and token expiry of these connections, for those that still have a record."""
        return {
            str(item["connectionId"]): ConnectionRecord(
                tuple(item.get("topics", ())),
                int(item["tokenExpiresAt"]) if "tokenExpiresAt" in item else None,
            )
            for item in self._records(connection_ids, "connectionId, topics, tokenExpiresAt")
        }

    def _records(self, connection_ids: Iterable[str], projection: str) -> Iterator[dict[str, Any]]:
        """Consistent BatchGetItem of the connections' records, 100 keys a request."""
        ids = sorted(set(connection_ids))
        client = self._table.meta.client
        table_name = self._table.name
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            keys = [{"pk": connection_pk(i), "sk": META_SK} for i in ids[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {
                table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": projection}
            }
            while request:
                response = client.batch_get_item(RequestItems=request)
                yield from response.get("Responses", {}).get(table_name, [])
                # Throttled keys come back unprocessed: ask again for those only.
                request = response.get("UnprocessedKeys") or {}

    def shard_count(self, topic: str) -> int:
        """How many keys this reader gathers the topic's subscriptions from."""
        return self._layout.current().count(topic)

    def first_pages(self, topics: Iterable[str], limit: int) -> dict[tuple[str, int], SubscriberPage]:
        """The first page of every shard of each topic, (topic, shard) -> page, read in parallel:
        a topic over N keys gets ceil(limit / N) subscribers a shard, so about `limit` in all."""
        shards = [(topic, shard) for topic in topics for shard in range(self.shard_count(topic))]
        if len(shards) == 1:
            return {shards[0]: self.subscriber_page(shards[0][0], limit)}

        def read(topic_shard: tuple[str, int]) -> SubscriberPage:
            topic, shard = topic_shard
            return self.subscriber_page(topic, -(-limit // self.shard_count(topic)), shard=shard)

        if self._readers is None:  # kept for the container's life: no threads started per batch
            self._readers = ThreadPoolExecutor(PARALLEL_READS, thread_name_prefix="subscriber-pages")
        return dict(zip(shards, self._readers.map(read, shards), strict=True))

    def subscriber_page(
        self, topic: str, limit: int, start_key: Mapping[str, Any] | None = None, *, shard: int = 0
    ) -> SubscriberPage:
        """Up to `limit` connections of one shard of a topic's subscriptions, from `start_key`
        (expired ones skipped: TTL lags). Thread-safe: it queries through the table's client."""
        now = int(self._clock())
        request: dict[str, Any] = {
            "TableName": self._table.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": topic_pk(topic, shard)},
            "ProjectionExpression": "connectionId, topics, expiresAt, tokenExpiresAt",
            "Limit": limit,
        }
        if start_key is not None:
            request["ExclusiveStartKey"] = dict(start_key)
        response = self._table.meta.client.query(**request)
        subscribers = [
            Subscriber(
                str(item["connectionId"]),
                tuple(item["topics"]) if "topics" in item else None,
                int(item["tokenExpiresAt"]) if "tokenExpiresAt" in item else None,
            )
            for item in response.get("Items", [])
            if int(item.get("expiresAt", now + 1)) > now
        ]
        return SubscriberPage(subscribers, response.get("LastEvaluatedKey"))
