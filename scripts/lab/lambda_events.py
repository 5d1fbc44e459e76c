"""Lambda events, contexts and tokens as AWS and an issuer make them, for running the handlers
outside Lambda: the unit tests (tests/unit/support.py) and the request counts (scripts.lab.request_counts)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

REGION = "us-east-1"
SECRET = "unit-test-hs256-secret-that-is-long-enough-0123456789"  # noqa: S105 -- a test secret, signing tokens for handlers run outside Lambda
SSM_PARAMETER = "/realtime-test/token-secret"
ISSUER = "https://issuer.example/"
AUDIENCE = "realtime-test"


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
