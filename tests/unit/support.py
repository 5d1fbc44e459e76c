"""Helpers for the unit tests: constants, token minting, fakes of Lambda and AWS objects."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from botocore.exceptions import ClientError

REGION = "us-east-1"
SECRET = "unit-test-hs256-secret-that-is-long-enough-0123456789"
SSM_PARAMETER = "/realtime-test/token-secret"
ISSUER = "https://issuer.example/"
AUDIENCE = "realtime-test"
CONNECTIONS_TABLE = "realtime-test-connections"
EVENTS_TABLE = "realtime-test-events"

# The module's defaults for the functions' tunables (terraform/variables.tf), as the environment carries them.
MODULE_DEFAULTS = {
    "CONNECTION_TTL_SECONDS": "7500",
    "EVENT_RETENTION_SECONDS": str(7 * 86400),
    "MAX_DATA_BYTES": "32768",
    "DELIVERY_CONCURRENCY": "32",
    "DELIVERY_MAX_ATTEMPTS": "5",
    "FANOUT_THRESHOLD": "500",
    "FANOUT_PAGE_SIZE": "1000",
    "FANOUT_CONCURRENCY": "64",
    "MAX_SESSIONS_PER_USER": "10",
    "MAX_TOPICS_PER_TOKEN": "100",
    "EVENT_TYPE_RULES": "[]",
    "STALE_CONNECTION_SECONDS": "300",
    "MAX_TOPICS_PER_RECORD": "100",
    "TOKEN_MAX_LIFETIME_SECONDS": "86400",
}


def make_token(
    sub: str | None = "user-1",
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    expires_in: int = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A signed token with the claims the functions need; a claim given as None is left out."""
    payload = {"sub": sub, "exp": int(time.time()) + expires_in, "iss": ISSUER, "aud": AUDIENCE, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


@dataclass
class FakeLambdaContext:
    function_name: str = "realtime-test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:realtime-test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


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


def sqs_record(body: str, message_id: str, sent_timestamp_ms: int = 1_767_225_600_000) -> dict[str, Any]:
    """One record of an SQS -> Lambda event, as the event source mapping sends it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_timestamp_ms),
            "SenderId": "AIDATEST",
            "ApproximateFirstReceiveTimestamp": str(sent_timestamp_ms),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:realtime-test-events",
        "awsRegion": REGION,
    }


def ws_event(route_key: str, connection_id: str = "conn-1", **extra: Any) -> dict[str, Any]:
    """A WebSocket API event (fields as API Gateway sends them)."""
    return {
        "requestContext": {
            "routeKey": route_key,
            "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE"),
            "connectionId": connection_id,
            "stage": "test",
            "apiId": "api123",
            "domainName": "api123.execute-api.us-east-1.amazonaws.com",
            "requestId": "req-1",
            "connectedAt": 1_767_225_600_000,
            "requestTimeEpoch": 1_767_225_600_000,
        },
        "isBase64Encoded": False,
        **extra,
    }


def http_event(
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    path: str = "/events",
    method: str = "GET",
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"host": "api.example", **(headers or {})},
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "http123",
            "domainName": "http123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "http123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "unit-test",
            },
            "requestId": "req-1",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1_767_225_600_000,
        },
        "isBase64Encoded": False,
    }


def dynamodb_calls(table: Any) -> list[tuple[str, dict[str, Any]]]:
    """(operation, parsed response) of every call the table's client makes from now on."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(parsed: dict[str, Any], model: Any, **_kwargs: Any) -> None:
        calls.append((model.name, parsed))

    table.meta.client.meta.events.register("after-call.dynamodb", record)
    return calls
