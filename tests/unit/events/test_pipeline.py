import json
from datetime import UTC, datetime

import pytest
from realtime.core.errors import PermanentError
from realtime.events.connections import ConnectionStore
from realtime.events.delivery import Deliverer
from realtime.events.pipeline import EventPipeline
from realtime.events.rules import EventTypeRules
from realtime.events.store import EventStore

from ..support import FakeManagementClient

NOW = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
SENT_AT = datetime(2026, 1, 1, 11, 59, 59, tzinfo=UTC)


@pytest.fixture
def client():
    return FakeManagementClient()


@pytest.fixture
def pipeline(events_table, connections_table, client):
    connections = ConnectionStore(connections_table)
    return EventPipeline(
        store=EventStore(events_table, 3600),
        connections=connections,
        deliverer=Deliverer(client, concurrency=4, on_gone=connections.remove),
        rules=EventTypeRules.from_json('[{"type": "order.*", "audience": ["user:{data.userId}"]}]'),
        max_data_bytes=100,
        now=lambda: NOW,
    )


def test_id_defaults_to_the_sqs_message_id(pipeline):
    pending = pipeline.parse('{"type": "order.updated", "data": {"userId": 42}}', "msg-1", SENT_AT)

    assert pending.event_id == "msg-1"
    assert pending.topics == ["user:42"]
    assert pending.occurred_at == "2026-01-01T11:59:59.000Z"  # when it was sent, lacking occurredAt


def test_explicit_fields_win(pipeline):
    body = {
        "type": "order.updated",
        "data": {"userId": 42},
        "id": "order-42-v1",
        "audience": ["group:ops"],
        "occurredAt": "2026-01-01T10:00:00+02:00",
    }

    pending = pipeline.parse(json.dumps(body), "msg-1", SENT_AT)

    assert (pending.event_id, pending.topics, pending.occurred_at) == (
        "order-42-v1",
        ["group:ops"],
        "2026-01-01T08:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type": "a", "data": {"x": NaN}, "audience": ["all"]}', "invalid_json"),
        ('{"type": "a", "data": {"x": Infinity}, "audience": ["all"]}', "invalid_json"),
        ('["a"]', "invalid_message"),
        ('{"type": "A!", "data": {}}', "invalid_message"),
        ('{"type": "a", "data": {"s": "\\ud800"}, "audience": ["all"]}', "invalid_message"),
        ('{"type": "a", "data": {"x": "' + "y" * 100 + '"}, "audience": ["all"]}', "too_large"),
        ('{"type": "a", "data": {}}', "no_audience"),
        ('{"type": "order.created", "data": {}}', "audience_field_missing"),
        ('{"type": "a", "data": {"x": ' + "[" * 64 + "]" * 64 + '}, "audience": ["all"]}', "too_deep"),
        # Deeper than Python's JSON parser goes: a RecursionError, which SQS would retry until redrive.
        ('{"type": "a", "data": {"x": ' + "[" * 100_000 + "]" * 100_000 + '}, "audience": ["all"]}', "too_deep"),
        ("[" * 100_000 + "]" * 100_000, "too_deep"),
    ],
)
def test_messages_that_can_never_succeed(pipeline, body, code):
    with pytest.raises(PermanentError) as caught:
        pipeline.parse(body, "msg-1")

    assert caught.value.code == code
    assert caught.value.reason


def test_validation_reason_names_the_fields(pipeline):
    with pytest.raises(PermanentError) as caught:
        pipeline.parse('{"type": "Bad Type", "audience": []}', "msg-1")

    assert "type:" in caught.value.reason
    assert "data:" in caught.value.reason
    assert "audience:" in caught.value.reason


def test_size_limit_counts_utf8_bytes(pipeline):
    # {"t":"…"} is 8 bytes plus 2 per "é": 46 of them make exactly the 100-byte limit.
    fits = {"type": "a", "data": {"t": "é" * 46}, "audience": ["all"]}
    too_big = {"type": "a", "data": {"t": "é" * 47}, "audience": ["all"]}

    pipeline.parse(json.dumps(fits), "m1")
    with pytest.raises(PermanentError, match="too_large"):
        pipeline.parse(json.dumps(too_big), "m2")


def test_process_stores_then_delivers_one_frame_per_topic(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42", "group:ops", "all"], ttl_seconds=60)
    pending = pipeline.parse(
        '{"type": "order.updated", "data": {"userId": 42}, "audience": ["user:42", "group:ops"]}', "m1", SENT_AT
    )

    report = pipeline.process(pending)

    assert (report.stored, report.duplicates, report.delivery.sent) == (2, 0, 2)
    assert client.frames_for("c1") == [
        {
            "id": "m1",
            "type": "order.updated",
            "topic": topic,
            "seq": 1,
            "data": {"userId": 42},
            "occurredAt": "2026-01-01T11:59:59.000Z",
            "publishedAt": "2026-01-01T12:00:00.250Z",
        }
        for topic in ("user:42", "group:ops")
    ]


def test_redelivered_message_is_not_stored_again_but_delivered_again(pipeline, connections_table, client):
    ConnectionStore(connections_table).add("c1", "42", ["user:42"], ttl_seconds=60)
    body = '{"type": "order.updated", "data": {"userId": 42}}'

    first = pipeline.process(pipeline.parse(body, "m1"))
    second = pipeline.process(pipeline.parse(body, "m1"))

    assert (first.stored, first.duplicates) == (1, 0)
    assert (second.stored, second.duplicates) == (0, 1)
    frames = client.frames_for("c1")
    assert len(frames) == 2
    assert frames[0] == frames[1]  # same (topic, seq): the client drops the copy


def test_occurred_at_defaults_to_published_at_without_any_timestamp(pipeline):
    pending = pipeline.parse('{"type": "order.updated", "data": {"userId": 1}}', "m1", None)

    assert pending.occurred_at == ""
    pipeline.process(pending)
