"""Helpers for the unit tests: constants, token minting, fakes of Lambda and AWS objects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

# Events, contexts, tokens and the module's defaults live with the scripts, which run the handlers too
# (scripts must not import tests); the unit tests take them from here.
from scripts.lab.lambda_events import (
    AUDIENCE,
    ISSUER,
    REGION,
    SECRET,
    SSM_PARAMETER,
    FakeLambdaContext,
    http_event,
    make_token,
    sqs_record,
    ws_event,
)
from scripts.module_defaults import FUNCTION_ENVIRONMENT as MODULE_DEFAULTS

CONNECTIONS_TABLE = "realtime-test-connections"
EVENTS_TABLE = "realtime-test-events"

__all__ = [
    "AUDIENCE",
    "CONNECTIONS_TABLE",
    "EVENTS_TABLE",
    "ISSUER",
    "MODULE_DEFAULTS",
    "REGION",
    "SECRET",
    "SSM_PARAMETER",
    "FakeLambdaContext",
    "FakeManagementClient",
    "client_error",
    "dynamodb_calls",
    "http_event",
    "make_token",
    "sqs_record",
    "subscribed",
    "ws_event",
]


def client_error(code: str, status: int, operation: str = "PostToConnection") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@dataclass
class FakeManagementClient:
    """Stands in for the `apigatewaymanagementapi` client: records posts, fails on request."""

    posts: list[tuple[str, bytes]] = field(default_factory=list)
    failures: dict[str, Exception] = field(default_factory=dict)
    on_post: Any = None  # called before each post
    deleted: list[str] = field(default_factory=list)  # connections closed with DeleteConnection

    def post_to_connection(self, *, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        if self.on_post is not None:
            self.on_post()
        failure = self.failures.get(ConnectionId)
        if failure is not None:
            raise failure
        self.posts.append((ConnectionId, Data))
        return {}

    def delete_connection(self, *, ConnectionId: str) -> dict[str, Any]:
        failure = self.failures.get(ConnectionId)
        if failure is not None:
            raise failure
        self.deleted.append(ConnectionId)
        return {}

    def frames_for(self, connection_id: str) -> list[dict[str, Any]]:
        return [json.loads(data) for target, data in self.posts if target == connection_id]


def subscribed(connections: Any, topic: str, page_size: int = 1000) -> list[str]:
    """Every connection id subscribed to a topic, page after page."""
    ids: list[str] = []
    start = None
    while True:
        page = connections.subscriber_page(topic, page_size, start)
        ids += [subscriber.connection_id for subscriber in page.subscribers]
        if page.next_key is None:
            return ids
        start = page.next_key


def dynamodb_calls(table: Any) -> list[tuple[str, dict[str, Any]]]:
    """(operation, parsed response) of every call the table's client makes from now on."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(parsed: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        calls.append((model.name, parsed))

    table.meta.client.meta.events.register("after-call.dynamodb", record)
    return calls
