import json
import time

import boto3
import pytest
from realtime.core import lifecycle
from realtime.core.errors import ConfigError
from realtime.events.connections import ConnectionStore
from realtime.events.store import EventStore
from realtime.handlers import process_events

from ..support import REGION, client_error, sqs_record

RULES = [{"type": "order.*", "audience": ["user:{data.userId}"]}]


@pytest.fixture
def dlq(aws_mock, monkeypatch):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="realtime-test-dlq")["QueueUrl"]
    monkeypatch.setenv("DLQ_URL", url)
    return sqs, url


@pytest.fixture
def stack(events_table, connections_table, management_client, dlq, monkeypatch):
    monkeypatch.setenv("EVENT_TYPE_RULES", json.dumps(RULES))
    monkeypatch.setenv("MAX_DATA_BYTES", "1024")
    # Connected a minute ago: past the window in which the gateway answers 410 for a socket still connecting.
    connections = ConnectionStore(connections_table, clock=lambda: time.time() - 60)
    connections.add("alice-tab-1", "alice", ["user:alice", "group:ops", "all"], ttl_seconds=600)
    connections.add("alice-tab-2", "alice", ["user:alice", "all"], ttl_seconds=600)
    connections.add("bob", "bob", ["user:bob", "all"], ttl_seconds=600)
    return EventStore(events_table, 3600)


def dead_letters(dlq):
    sqs, url = dlq
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return {
        message["MessageAttributes"]["sourceMessageId"]["StringValue"]: (
            message["Body"],
            message["MessageAttributes"]["errorCode"]["StringValue"],
            message["MessageAttributes"]["errorReason"]["StringValue"],
        )
        for message in messages.get("Messages", [])
    }


def test_mixed_batch_stores_good_messages_and_sends_poison_to_the_dlq(stack, dlq, management_client, lambda_context):
    records = [
        sqs_record('{"type": "order.updated", "data": {"userId": "alice", "total": 3}}', "good-by-rule"),
        sqs_record('{"type": "notice", "data": {"text": "hi"}, "audience": ["group:ops", "user:bob"]}', "good-2"),
        sqs_record("{not json", "bad-json"),
        sqs_record('{"type": "Order Updated", "data": {}}', "bad-fields"),
        sqs_record('{"type": "blob", "data": {"x": "' + "y" * 2000 + '"}, "audience": ["all"]}', "too-big"),
        sqs_record('{"type": "notice", "data": {}}', "no-audience"),
        sqs_record('{"type": "order.created", "data": {}}', "missing-field"),
    ]

    result = process_events.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": []}
    poison = dead_letters(dlq)
    assert {message_id: code for message_id, (_, code, _) in poison.items()} == {
        "bad-json": "invalid_json",
        "bad-fields": "invalid_message",
        "too-big": "too_large",
        "no-audience": "no_audience",
        "missing-field": "audience_field_missing",
    }
    assert poison["bad-json"][0] == "{not json"  # original body, unchanged
    assert "type" in poison["bad-fields"][2]
    assert "data.userId" in poison["missing-field"][2]

    by_connection = {}
    for connection_id, data in management_client.posts:
        frame = json.loads(data)
        by_connection.setdefault(connection_id, []).append((frame["id"], frame["topic"], frame["seq"]))
    assert sorted(by_connection["alice-tab-1"]) == [("good-2", "group:ops", 1), ("good-by-rule", "user:alice", 1)]
    assert by_connection["alice-tab-2"] == [("good-by-rule", "user:alice", 1)]
    assert by_connection["bob"] == [("good-2", "user:bob", 1)]

    stored = stack.read_after(["user:alice", "group:ops", "user:bob", "all"], {}).events
    assert sorted((e.topic, e.seq) for e in stored) == [("group:ops", 1), ("user:alice", 1), ("user:bob", 1)]


def test_delivered_frame_equals_the_stored_one(stack, management_client, lambda_context):
    body = '{"type": "order.updated", "data": {"userId": "alice"}, "id": "o-1", "occurredAt": "2026-01-01T00:00:00Z"}'

    process_events.handler({"Records": [sqs_record(body, "m-1")]}, lambda_context)

    (stored,) = stack.read_after(["user:alice"], {}).events
    assert management_client.posts[0][1].decode() == stored.body
    frame = json.loads(stored.body)
    assert (frame["id"], frame["type"], frame["topic"], frame["seq"]) == ("o-1", "order.updated", "user:alice", 1)
    assert frame["occurredAt"] == "2026-01-01T00:00:00.000Z"
    assert frame["publishedAt"].endswith("Z")


def test_sqs_redelivery_is_stored_once(stack, lambda_context):
    record = sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "same-message")

    process_events.handler({"Records": [record]}, lambda_context)
    process_events.handler({"Records": [record]}, lambda_context)

    assert [e.seq for e in stack.read_after(["user:alice"], {}).events] == [1]


def test_transient_delivery_failure_is_retried_by_sqs(stack, management_client, lambda_context):
    management_client.failures["bob"] = client_error("InternalServerError", 500)
    records = [
        sqs_record('{"type": "order.updated", "data": {"userId": "bob"}}', "to-bob"),
        sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "to-alice"),
    ]

    result = process_events.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "to-bob"}]}
    # Stored before delivery: the retry finds it and delivers the same (topic, seq).
    assert [e.seq for e in stack.read_after(["user:bob"], {}).events] == [1]
    del management_client.failures["bob"]
    retry = process_events.handler({"Records": [records[0]]}, lambda_context)
    assert retry == {"batchItemFailures": []}
    assert [(json.loads(d)["topic"], json.loads(d)["seq"]) for c, d in management_client.posts if c == "bob"] == [
        ("user:bob", 1)
    ]


def test_gone_connections_are_cleaned_up(stack, management_client, connections_table, lambda_context):
    management_client.failures["alice-tab-2"] = client_error("GoneException", 410)

    result = process_events.handler(
        {"Records": [sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "m")]}, lambda_context
    )

    assert result == {"batchItemFailures": []}
    assert ConnectionStore(connections_table).get("alice-tab-2") is None


def test_a_connection_still_connecting_is_not_removed_on_gone(
    stack, management_client, connections_table, lambda_context
):
    # The gateway answers 410 until $connect has returned: $disconnect or maintenance decide about this one.
    ConnectionStore(connections_table).add("alice-tab-3", "alice", ["user:alice"], ttl_seconds=600)
    management_client.failures["alice-tab-3"] = client_error("GoneException", 410)

    process_events.handler(
        {"Records": [sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "m")]}, lambda_context
    )

    assert ConnectionStore(connections_table).get("alice-tab-3") is not None


def test_storage_failure_is_a_batch_item_failure(stack, lambda_context, monkeypatch):
    def broken_append(*_args, **_kwargs):
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(EventStore, "append", broken_append)

    result = process_events.handler(
        {"Records": [sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "m")]}, lambda_context
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "m"}]}


def test_metrics_are_emitted(stack, lambda_context, capsys):
    records = [
        sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "ok"),
        sqs_record("nope", "poison"),
    ]

    process_events.handler({"Records": records}, lambda_context)

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (metrics,) = emitted

    def total(name):
        value = metrics[name]
        return sum(value) if isinstance(value, list) else value

    assert (total("EventsStored"), total("Delivered"), total("PoisonMessages")) == (1, 2, 1)


def test_bad_rules_fail_the_invocation_naming_the_rule(stack, lambda_context, monkeypatch):
    monkeypatch.setenv("EVENT_TYPE_RULES", '[{"type": "order.*", "audience": ["room:{data.id}"]}]')
    lifecycle.reset()

    with pytest.raises(ConfigError, match=r"EVENT_TYPE_RULES\[0\]"):
        process_events.handler({"Records": [sqs_record('{"type": "x", "data": {}}', "m")]}, lambda_context)
