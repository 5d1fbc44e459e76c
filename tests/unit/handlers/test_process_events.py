import json
import time

import pytest
from realtime.connections.store import ConnectionStore
from realtime.core import aws, lifecycle
from realtime.core.errors import ConfigError
from realtime.events.store import EventStore
from realtime.handlers import process_events

from ..support import client_error, sqs_record

RULES = [{"type": "order.*", "audience": ["user:{data.userId}"]}]


@pytest.fixture
def dlq(queues):
    return queues.sqs, queues.dlq


@pytest.fixture
def stack(events_table, connections_table, management_client, queues, monkeypatch):
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


PRESENCE_EVENTS_ARN = "arn:aws:sqs:us-east-1:123456789012:realtime-test-presence-events"


@pytest.fixture
def presence_events(queues, monkeypatch):
    """process-events with presence: it also consumes the presence-events queue, known by its ARN."""
    url = queues.sqs.create_queue(QueueName="realtime-test-presence-events")["QueueUrl"]
    for name, value in {
        "PRESENCE_TABLE": "realtime-test-presence",
        "PRESENCE_CHECKS_QUEUE_URL": url + "-checks",
        "PRESENCE_GRACE_SECONDS": "5",
        "PRESENCE_EVENTS_QUEUE_URL": url,
        "PRESENCE_EVENTS_QUEUE_ARN": PRESENCE_EVENTS_ARN,
    }.items():
        monkeypatch.setenv(name, value)
    return url


def test_a_producer_can_neither_forge_nor_suppress_a_presence_event(
    stack, dlq, presence_events, connections_table, management_client, lambda_context
):
    online = {"type": "presence.online", "id": "presence-alice-1", "data": {"userId": "alice", "version": 1}}
    forged = {**online, "type": "presence.offline"}
    squatter = {"type": "order.updated", "id": "presence-alice-1", "data": {"userId": "alice"}}
    producers = [
        sqs_record(json.dumps({**forged, "audience": ["user:alice"]}), "forged"),
        sqs_record(json.dumps(squatter), "squatter"),
    ]
    real = sqs_record(json.dumps({**online, "audience": ["presence:alice"]}), "real")
    real["eventSourceARN"] = PRESENCE_EVENTS_ARN
    ConnectionStore(connections_table).add("watcher", "bob", ["user:bob", "presence:alice"], ttl_seconds=600)

    assert process_events.handler({"Records": producers}, lambda_context) == {"batchItemFailures": []}
    assert process_events.handler({"Records": [real]}, lambda_context) == {"batchItemFailures": []}

    refused = dead_letters(dlq)
    assert {message_id: code for message_id, (_, code, _) in refused.items()} == {
        "forged": "reserved_type",
        "squatter": "reserved_id",
    }
    (stored,) = stack.read_after(["user:alice", "presence:alice"], {}).events
    assert (json.loads(stored.body)["type"], json.loads(stored.body)["id"]) == ("presence.online", "presence-alice-1")
    assert {json.loads(data)["type"] for _, data in management_client.posts} == {"presence.online"}


def test_the_presence_events_dlq_is_no_back_door(stack, dlq, presence_events, management_client, lambda_context):
    """Whatever is redriven into the presence-events queue must still be a presence event the module would write."""
    own = {"type": "presence.online", "id": "presence-alice-1", "data": {"userId": "alice", "version": 1}}
    foreign = {
        "broadcast": {"type": "promo", "id": "p-1", "data": {"userId": "alice"}, "audience": ["all"]},
        "ordinary-id": {**own, "id": "o-1", "audience": ["presence:alice"]},
        "to-a-user": {**own, "audience": ["presence:alice", "user:bob"]},
        "someone-else": {**own, "audience": ["presence:bob"]},
    }
    records = [sqs_record(json.dumps(body), name) for name, body in foreign.items()]
    for record in records:
        record["eventSourceARN"] = PRESENCE_EVENTS_ARN

    assert process_events.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    assert {message_id: code for message_id, (_, code, _) in dead_letters(dlq).items()} == dict.fromkeys(
        foreign, "not_internal"
    )
    assert stack.read_after(["all", "user:bob", "presence:alice", "presence:bob"], {}).events == []
    assert management_client.posts == []


def test_federated_users_of_one_account_keep_their_own_ids(stack, management_client, lambda_context):
    """`<account>:<name>` is the federated user, not the account (nor the root, whose SenderId is the account)."""

    def sent_by(sender_id, message_id, total):
        record = sqs_record(
            json.dumps({"type": "order.updated", "id": "o-1", "data": {"userId": "bob", "total": total}}), message_id
        )
        record["attributes"]["SenderId"] = sender_id
        return record

    records = [
        sent_by("123456789012:alice", "m1", 1),
        sent_by("123456789012:carol", "m2", 2),
        sent_by("123456789012", "m3", 3),
        sent_by("123456789012:alice", "m4", 1),  # alice, retrying
    ]
    process_events.handler({"Records": records}, lambda_context)

    stored = [json.loads(e.body) for e in stack.read_after(["user:bob"], {}).events]
    assert [(e["id"], e["seq"], e["data"]["total"]) for e in stored] == [("o-1", 1, 1), ("o-1", 2, 2), ("o-1", 3, 3)]


def test_two_producers_choosing_one_id_both_get_their_event_stored(stack, management_client, lambda_context):
    def sent_by(sender_id, message_id, total):
        record = sqs_record(
            json.dumps({"type": "order.updated", "id": "o-1", "data": {"userId": "bob", "total": total}}), message_id
        )
        record["attributes"]["SenderId"] = sender_id
        return record

    process_events.handler({"Records": [sent_by("AROASHOP:i-1", "m1", 1)]}, lambda_context)
    process_events.handler({"Records": [sent_by("AROABILLING:job-7", "m2", 2)]}, lambda_context)
    process_events.handler({"Records": [sent_by("AROASHOP:i-2", "m3", 1)]}, lambda_context)  # the shop, retrying

    stored = [json.loads(e.body) for e in stack.read_after(["user:bob"], {}).events]
    assert [(e["id"], e["seq"], e["data"]["total"]) for e in stored] == [("o-1", 1, 1), ("o-1", 2, 2)]


def test_failed_records_of_the_presence_events_queue_are_retried_on_it(
    stack, queues, presence_events, lambda_context, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(EventStore, "append_batch", broken)
    queues.sqs.send_message(QueueUrl=presence_events, MessageBody="{}")
    (message,) = queues.sqs.receive_message(QueueUrl=presence_events, VisibilityTimeout=300)["Messages"]
    body = (
        '{"type": "presence.online", "id": "presence-bob-1", "data": {"userId": "bob"}, "audience": ["presence:bob"]}'
    )
    record = sqs_record(body, message["MessageId"])
    record["receiptHandle"] = message["ReceiptHandle"]
    record["eventSourceARN"] = PRESENCE_EVENTS_ARN
    changed = []
    queues.sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: changed.append(params["QueueUrl"]),
    )

    result = process_events.handler({"Records": [record]}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert changed == [presence_events]


def test_delivered_frame_equals_the_stored_one(stack, management_client, lambda_context):
    body = '{"type": "order.updated", "data": {"userId": "alice"}, "id": "o-1", "occurredAt": "2026-01-01T00:00:00Z"}'

    process_events.handler({"Records": [sqs_record(body, "m-1")]}, lambda_context)

    (stored,) = stack.read_after(["user:alice"], {}).events
    frame = json.loads(management_client.posts[0][1])
    assert frame.pop("seqs") == {"user:alice": 1}
    assert json.dumps(frame, separators=(",", ":")) == stored.body  # the HTTP item is the frame without seqs
    frame = json.loads(stored.body)
    assert (frame["id"], frame["type"], frame["topic"], frame["seq"]) == ("o-1", "order.updated", "user:alice", 1)
    assert frame["occurredAt"] == "2026-01-01T00:00:00.000Z"
    assert frame["publishedAt"].endswith("Z")


def test_sqs_redelivery_is_stored_once(stack, lambda_context):
    record = sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "same-message")

    process_events.handler({"Records": [record]}, lambda_context)
    process_events.handler({"Records": [record]}, lambda_context)

    assert [e.seq for e in stack.read_after(["user:alice"], {}).events] == [1]


def test_a_failed_post_is_retried_alone_and_never_fails_the_record(stack, queues, management_client, lambda_context):
    management_client.failures["alice-tab-2"] = client_error("InternalServerError", 500)
    record = sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "to-alice")

    result = process_events.handler({"Records": [record]}, lambda_context)

    assert result == {"batchItemFailures": []}  # stored: the events DLQ never sees it because of delivery
    (job,) = queues.fanout_jobs()
    assert job["targets"] == [{"connectionId": "alice-tab-2", "topics": ["user:alice"]}]
    assert (job["attempt"], job["event"]["seqs"]) == (1, {"user:alice": 1})
    assert [c for c, _ in management_client.posts] == ["alice-tab-1"]


def test_one_post_per_connection_however_many_of_its_topics_the_event_has(stack, management_client, lambda_context):
    body = '{"type": "notice", "data": {}, "audience": ["user:alice", "group:ops", "all"]}'

    process_events.handler({"Records": [sqs_record(body, "m")]}, lambda_context)

    seqs = {connection: json.loads(data)["seqs"] for connection, data in management_client.posts}
    assert len(management_client.posts) == 3
    assert seqs == {
        "alice-tab-1": {"all": 1, "group:ops": 1, "user:alice": 1},
        "alice-tab-2": {"all": 1, "user:alice": 1},
        "bob": {"all": 1},
    }


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


def test_a_storage_failure_is_retried_in_seconds_not_after_the_visibility_timeout(
    stack, queues, lambda_context, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise RuntimeError("DynamoDB is having a bad day")

    monkeypatch.setattr(EventStore, "append_batch", broken)
    delays = []
    queues.sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: delays.extend(e["VisibilityTimeout"] for e in params["Entries"]),
    )
    records = queues.received('{"type": "order.updated", "data": {"userId": "alice"}}', receives=3)

    result = process_events.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert 4 <= delays[0] <= 12  # about 2^3 s, +-50 %, not the queue's 360 s


BOB = '{"type": "order.updated", "data": {"userId": "bob"}}'


def throttle_bob(dynamodb, monkeypatch):
    """DynamoDB throttles every write to user:bob's topic."""
    monkeypatch.setattr(aws, "dynamodb", lambda: dynamodb)
    transact = dynamodb.meta.client.transact_write_items

    def bob_throttled(**request):
        if request["TransactItems"][0]["Update"]["Key"]["topic"] == "user:bob":
            raise client_error("ProvisionedThroughputExceededException", 400, "TransactWriteItems")
        return transact(**request)

    monkeypatch.setattr(dynamodb.meta.client, "transact_write_items", bob_throttled)


def test_a_topic_that_cannot_be_stored_fails_only_its_records(stack, dynamodb, lambda_context, monkeypatch):
    throttle_bob(dynamodb, monkeypatch)
    records = [
        sqs_record('{"type": "order.updated", "data": {"userId": "bob"}}', "to-bob"),
        sqs_record('{"type": "order.updated", "data": {"userId": "alice"}}', "to-alice"),
    ]

    result = process_events.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "to-bob"}]}
    assert [e.seq for e in stack.read_after(["user:alice"], {}).events] == [1]


def test_a_hot_topic_slows_a_valid_event_down_and_never_sends_it_to_the_dlq(
    stack, dlq, queues, dynamodb, lambda_context, monkeypatch
):
    """Throttling and contention are overload: on the 50th receive the record still waits and is retried."""
    throttle_bob(dynamodb, monkeypatch)
    records = queues.received(BOB, receives=50)

    result = process_events.handler({"Records": records}, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["messageId"]}]}
    assert dead_letters(dlq) == {}


def test_a_record_that_keeps_failing_for_another_reason_goes_to_the_dlq_with_it(
    stack, dlq, queues, lambda_context, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug, not overload")

    monkeypatch.setattr(EventStore, "append_batch", broken)
    fourth = queues.received(BOB, receives=4)

    early = process_events.handler({"Records": fourth}, lambda_context)
    given_up = process_events.handler({"Records": queues.received(BOB, receives=5)}, lambda_context)

    assert early == {"batchItemFailures": [{"itemIdentifier": fourth[0]["messageId"]}]}  # it may be a passing fault
    assert given_up == {"batchItemFailures": []}
    ((body, code, reason),) = dead_letters(dlq).values()
    assert code == "failed_repeatedly"
    assert "failed 5 times" in reason
    assert "a bug, not overload" in reason
    assert json.loads(body)["data"] == {"userId": "bob"}


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
    assert (total("DeliveriesRetried"), total("DeliveriesAbandoned"), total("RecordsRetried")) == (0, 0, 0)


def test_delivery_lag_is_emitted_in_milliseconds_once_per_batch(stack, lambda_context, capsys):
    records = [sqs_record(json.dumps({"type": "order.updated", "data": {"userId": n}}), n) for n in ("alice", "bob")]

    process_events.handler({"Records": records}, lambda_context)

    (emitted,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (definition,) = emitted["_aws"]["CloudWatchMetrics"]
    assert {"Name": "DeliveryLag", "Unit": "Milliseconds"} in definition["Metrics"]
    (lag,) = emitted["DeliveryLag"] if isinstance(emitted["DeliveryLag"], list) else [emitted["DeliveryLag"]]
    assert 0 <= lag < 60_000


def test_bad_rules_fail_the_invocation_naming_the_rule(stack, lambda_context, monkeypatch):
    monkeypatch.setenv("EVENT_TYPE_RULES", '[{"type": "order.*", "audience": ["room:{data.id}"]}]')
    lifecycle.reset()

    with pytest.raises(ConfigError, match=r"EVENT_TYPE_RULES\[0\]"):
        process_events.handler({"Records": [sqs_record('{"type": "x", "data": {}}', "m")]}, lambda_context)


@pytest.mark.parametrize(
    ("audiences", "requests"),
    [
        # Before batching, every (event, topic) cost two GetItems, a transaction and a Query: 4 per event here.
        # Delivery turns add a BatchGetItem of the posted topics' marks and an UpdateItem per topic posted to.
        (
            [["user:alice"]] * 10,
            {"BatchGetItem": 1 + 1, "TransactWriteItems": 1, "Query": 1, "UpdateItem": 1},
        ),
        # 12 here (`all` is spread over 16 keys by default: a Query each, read in parallel),
        (
            [["user:alice", "group:ops", "all"]] * 10,
            {"BatchGetItem": 1 + 1, "TransactWriteItems": 3, "Query": 2 + 16, "UpdateItem": 3},
        ),
        # and 4 here.
        (
            [[f"user:u{n}"] for n in range(10)],
            {"BatchGetItem": 1, "TransactWriteItems": 10, "Query": 10},
        ),
    ],
)
def test_dynamodb_requests_per_batch(stack, lambda_context, audiences, requests):
    made = []
    aws.dynamodb().meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: made.append(model.name)
    )
    records = [
        sqs_record(json.dumps({"type": "t", "data": {}, "audience": audience}), f"m{n}")
        for n, audience in enumerate(audiences)
    ]

    assert process_events.handler({"Records": records}, lambda_context) == {"batchItemFailures": []}

    assert {name: made.count(name) for name in set(made)} == requests


def test_a_warm_container_that_is_a_topics_only_writer_reads_neither_its_counter_nor_its_turn(stack, lambda_context):
    def batch(number):
        return {
            "Records": [
                sqs_record(json.dumps({"type": "t", "data": {}, "audience": ["user:alice"]}), f"b{number}-m{n}")
                for n in range(10)
            ]
        }

    for number in range(2):  # the first batch writes; the second finds the counter where the first left it
        process_events.handler(batch(number), lambda_context)
    made = []
    aws.dynamodb().meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: made.append(model.name)
    )

    assert process_events.handler(batch(2), lambda_context) == {"batchItemFailures": []}

    # The store's BatchGetItem and the turn's are left out: a transaction, the subscribers, the mark.
    assert sorted(made) == ["Query", "TransactWriteItems", "UpdateItem"]
    assert [event.seq for event in stack.read_after(["user:alice"], {}, 100).events] == list(range(1, 31))


def test_a_batch_that_sends_nothing_to_sqs_never_builds_the_sqs_client(stack, dlq, lambda_context, monkeypatch):
    built = []
    create = aws.sqs.__wrapped__

    def counted():
        built.append(1)
        return create()

    monkeypatch.setattr(aws, "sqs", lifecycle.per_container(counted))
    lifecycle.reset()
    good = sqs_record('{"type": "notice", "data": {}, "audience": ["user:bob"]}', "good")

    assert process_events.handler({"Records": [good]}, lambda_context) == {"batchItemFailures": []}
    assert built == []  # a cold start that delivers only pays for the clients it uses

    process_events.handler({"Records": [sqs_record("{not json", "poison")]}, lambda_context)
    assert built == [1]
    assert "poison" in dead_letters(dlq)
