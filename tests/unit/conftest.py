"""Shared fixtures for the unit tests: fake AWS credentials, moto, tables, tokens, contexts."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client
import pytest
from moto import mock_aws
from realtime.core import aws, lifecycle

from .support import (
    AUDIENCE,
    CONNECTIONS_TABLE,
    EVENTS_TABLE,
    ISSUER,
    MODULE_DEFAULTS,
    REGION,
    SECRET,
    SSM_PARAMETER,
    FakeLambdaContext,
    FakeManagementClient,
    sqs_record,
)


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, no endpoint overrides, and fresh per-container caches for every test."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "TOKEN_")) or name in ("AWS_PROFILE", "EVENT_TYPE_RULES"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "realtime-test")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "RealtimeTest")
    # What the module sets by default (terraform/variables.tf); tests override what they exercise.
    for name, value in MODULE_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    lifecycle.reset()
    yield
    lifecycle.reset()


_MOTO_LOCK = threading.RLock()  # re-entrant: a test hook may send a request from inside one


@pytest.fixture(autouse=True)
def moto_one_request_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto is not thread-safe (two threads' transactions can break its tables: "dictionary changed
    size during iteration"), and the functions send requests from several threads (the store writes
    a batch's topics side by side, delivery reads shards in parallel), as DynamoDB allows. One lock
    around every request keeps each request atomic, as it is in DynamoDB."""
    make_api_call = botocore.client.BaseClient._make_api_call

    def one_at_a_time(self: Any, operation: str, params: dict) -> Any:
        with _MOTO_LOCK:
            return make_api_call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", one_at_a_time)


@pytest.fixture
def aws_mock() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws_mock: None) -> Any:
    return boto3.resource("dynamodb", region_name=REGION)


@pytest.fixture
def connections_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Same key schema as docs/internals.md: pk/sk strings."""
    table = dynamodb.create_table(
        TableName=CONNECTIONS_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("CONNECTIONS_TABLE", CONNECTIONS_TABLE)
    return table


@pytest.fixture
def events_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Same key schema as docs/internals.md: topic string, seq number."""
    table = dynamodb.create_table(
        TableName=EVENTS_TABLE,
        KeySchema=[{"AttributeName": "topic", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "topic", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    monkeypatch.setenv("EVENTS_TABLE", EVENTS_TABLE)
    return table


@pytest.fixture
def hs256_token_mode(aws_mock: None, token_checks: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """hs256 mode with the secret in an SSM SecureString parameter."""
    boto3.client("ssm", region_name=REGION).put_parameter(Name=SSM_PARAMETER, Value=SECRET, Type="SecureString")
    monkeypatch.setenv("TOKEN_SECRET_SSM_PARAMETER", SSM_PARAMETER)
    return SECRET


@pytest.fixture
def token_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """hs256 mode with the issuer and audience every mode checks (make_token's by default)."""
    monkeypatch.setenv("TOKEN_MODE", "hs256")
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("TOKEN_AUDIENCE", AUDIENCE)


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def management_client(monkeypatch: pytest.MonkeyPatch) -> FakeManagementClient:
    fake = FakeManagementClient()
    monkeypatch.setattr(aws, "connections_management", lambda *_args, **_kwargs: fake)
    monkeypatch.setattr(aws, "connections_gateway", lambda *_args, **_kwargs: fake)
    monkeypatch.setenv("CONNECTIONS_ENDPOINT", "https://example.execute-api.us-east-1.amazonaws.com/test")
    return fake


@dataclass
class Queues:
    """The queues of process-events and fanout on moto, through the client the functions use."""

    sqs: Any
    events: str
    fanout: str
    dlq: str
    sent_jobs: list[dict] = field(default_factory=list)

    def fanout_jobs(self) -> list[dict]:
        """Every job sent to the fanout queue so far (delayed ones included)."""
        return [json.loads(entry["MessageBody"]) for entry in self.sent_jobs]

    def received(self, body: str, receives: int = 1) -> list[dict]:
        """A message on the events queue as Lambda would get it on its `receives`-th receive."""
        self.sqs.send_message(QueueUrl=self.events, MessageBody=body)
        for _ in range(receives):
            (message,) = self.sqs.receive_message(QueueUrl=self.events, VisibilityTimeout=0, AttributeNames=["All"])[
                "Messages"
            ]
        record = sqs_record(body, message["MessageId"])
        record["receiptHandle"] = message["ReceiptHandle"]
        record["attributes"]["ApproximateReceiveCount"] = message["Attributes"]["ApproximateReceiveCount"]
        return [record]


@pytest.fixture
def queues(aws_mock: None, monkeypatch: pytest.MonkeyPatch) -> Queues:
    sqs = aws.sqs()
    found = Queues(
        sqs,
        events=sqs.create_queue(QueueName="realtime-test-events")["QueueUrl"],
        fanout=sqs.create_queue(QueueName="realtime-test-fanout")["QueueUrl"],
        dlq=sqs.create_queue(QueueName="realtime-test-dlq")["QueueUrl"],
    )

    def record_jobs(params: dict, **_: Any) -> None:
        if params["QueueUrl"] == found.fanout:
            found.sent_jobs.extend(params["Entries"])

    sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", record_jobs)
    monkeypatch.setenv("EVENTS_QUEUE_URL", found.events)
    monkeypatch.setenv("FANOUT_QUEUE_URL", found.fanout)
    monkeypatch.setenv("DLQ_URL", found.dlq)
    return found


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto, request by request atomic like DynamoDB, for tests with threads.

    moto does not apply a request atomically; serializing its API calls models
    DynamoDB, while the threads still interleave between their requests.
    """
    lock = threading.Lock()
    make_api_call = botocore.client.BaseClient._make_api_call

    def atomic_api_call(self: Any, operation: str, params: dict) -> Any:
        with lock:
            response = make_api_call(self, operation, params)
        time.sleep(0.001)  # let another thread in between this request and the next
        return response

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", atomic_api_call)
