"""Large audiences on the local stack without sockets: the gateway simulator stands in for them.

A simulated connection is what `$connect` leaves in the connections table (the
connection item and one subscription item per topic, on the key the deployed
layout gives it: the layout item ws-connect reads; docs/internals.md),
written straight with BatchWriteItem, plus the same id registered in the
gateway simulator (scripts.lab.gateway_sim). `posting_to` points every function
that talks to `@connections` (those with CONNECTIONS_ENDPOINT: process-events,
maintenance, and any later delivery function) at the simulator and restores
them afterwards; `simulated_audience` does all of it for one test or
benchmark. Used by tests/integration/test_delivery_scale.py and scripts/lab/bench.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from realtime.connections.layout import LAYOUT_KEY, ONE_KEY_EACH, SubscriptionLayout, shard_of
from realtime.connections.store import META_SK, SHARDS_ATTRIBUTE, connection_pk, topic_pk
from realtime.core.encoding import timestamp_at

from scripts.lab.gateway_sim import SimulatorClient
from scripts.local.emulator import emulator_client

BATCH_WRITE_LIMIT = 25  # items per BatchWriteItem
WRITERS = 4  # BatchWriteItem calls in flight: the emulator answers each in a few ms
ENDPOINT_VARIABLE = "CONNECTIONS_ENDPOINT"
_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


@dataclass(frozen=True)
class Audience:
    connection_ids: list[str]
    topics: list[str]


def connection_items(
    connection_id: str, topics: Sequence[str], now: float, ttl_seconds: int, layout: SubscriptionLayout = ONE_KEY_EACH
) -> list[dict[str, Any]]:
    """The items `$connect` writes for one connection (subscriptions carry its topics, for the owner-topic rule)."""
    at = timestamp_at(now)
    expires_at = int(now) + ttl_seconds
    common = {"connectionId": connection_id, "userId": connection_id, "topics": list(topics), "expiresAt": expires_at}
    shards = {topic: layout.count(topic) for topic in topics if layout.count(topic) > 1}
    meta = {"pk": connection_pk(connection_id), "sk": META_SK, **common, "connectedAt": at, "lastSeen": at}
    if shards:
        meta[SHARDS_ATTRIBUTE] = shards
    return [
        meta,
        *(
            {"pk": topic_pk(topic, shard_of(connection_id, shards.get(topic, 1))), "sk": connection_pk(connection_id)}
            | common
            for topic in topics
        ),
    ]


def deployed_layout(dynamodb: Any, table: str) -> SubscriptionLayout:
    """The layout ws-connect writes by: the layout item (one key each until Terraform has written it)."""
    key = {name: _serialize(value) for name, value in LAYOUT_KEY.items()}
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    return ONE_KEY_EACH if item is None else SubscriptionLayout.from_json(str(_deserialize(item["shards"])))


def _batch_write(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    """One BatchWriteItem, asked again for whatever comes back unprocessed (throttling)."""
    pending = {table: requests}
    while pending:
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _write_all(dynamodb: Any, table: str, requests: Iterable[dict[str, Any]]) -> None:
    requests = list(requests)
    chunks = [requests[start : start + BATCH_WRITE_LIMIT] for start in range(0, len(requests), BATCH_WRITE_LIMIT)]
    with ThreadPoolExecutor(WRITERS) as pool:  # boto3 clients are thread-safe
        list(pool.map(lambda chunk: _batch_write(dynamodb, table, chunk), chunks))


def register(dynamodb: Any, table: str, connection_ids: Iterable[str], topics: Sequence[str], ttl_seconds: int) -> None:
    """Write the connection and subscription items of each connection (`dynamodb`: a boto3 client)."""
    now = time.time()
    layout = deployed_layout(dynamodb, table)
    _write_all(
        dynamodb,
        table,
        (
            {"PutRequest": {"Item": {name: _serialize(value) for name, value in item.items()}}}
            for connection_id in connection_ids
            for item in connection_items(connection_id, topics, now, ttl_seconds, layout)
        ),
    )


def unregister(dynamodb: Any, table: str, connection_ids: Iterable[str], topics: Sequence[str]) -> None:
    """Delete what `register` wrote (items already gone, e.g. found gone by delivery, are no error)."""
    layout = deployed_layout(dynamodb, table)
    keys = (
        {"pk": item["pk"], "sk": item["sk"]}
        for connection_id in connection_ids
        for item in connection_items(connection_id, topics, 0, 0, layout)
    )
    _write_all(
        dynamodb,
        table,
        ({"DeleteRequest": {"Key": {name: _serialize(value) for name, value in key.items()}}} for key in keys),
    )


def _set_endpoint(lambda_client: Any, name: str, endpoint: str) -> None:
    variables = lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": variables | {ENDPOINT_VARIABLE: endpoint}}
    )
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name)


@contextlib.contextmanager
def posting_to(lambda_client: Any, function_names: Iterable[str], endpoint: str) -> Iterator[list[str]]:
    """Point every function with CONNECTIONS_ENDPOINT at `endpoint`; yields their names, restores them on exit.

    Updating the configuration replaces the function's warm workers, so the next
    invocation builds its `@connections` client with the new endpoint.
    """
    original: dict[str, str] = {}
    for name in function_names:
        variables = lambda_client.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        if ENDPOINT_VARIABLE in variables:
            original[name] = variables[ENDPOINT_VARIABLE]
    try:
        for name in original:
            _set_endpoint(lambda_client, name, endpoint)
        yield sorted(original)
    finally:
        for name, value in original.items():
            _set_endpoint(lambda_client, name, value)


@contextlib.contextmanager
def simulated_audience(
    stack: dict, simulator: SimulatorClient, connection_ids: Sequence[str], topic: str, ttl_seconds: int = 3600
) -> Iterator[Audience]:
    """`connection_ids` subscribed to `topic`, in the stack's connections table and the simulator; removed on exit."""
    dynamodb = emulator_client(stack, "dynamodb")
    table = stack["connections_table_name"]
    audience = Audience(list(connection_ids), [topic])
    simulator.register(audience.connection_ids)
    register(dynamodb, table, audience.connection_ids, audience.topics, ttl_seconds)
    try:
        yield audience
    finally:
        unregister(dynamodb, table, audience.connection_ids, audience.topics)
        simulator.unregister(audience.connection_ids)
