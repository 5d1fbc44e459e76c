"""Publisher SDK: validated before send, batched within SQS limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws
from realtime_publisher import Event, InvalidEvent, Publisher, PublishError


@pytest.fixture
def queue():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="events")["QueueUrl"]
        yield sqs, url


def received(sqs, url) -> list[dict]:
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_publish_sends_the_producer_message(queue):
    sqs, url = queue
    publisher = Publisher(url, sqs_client=sqs)
    occurred = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

    message_id = publisher.publish(
        "order.updated", {"orderId": "o-1"}, audience=["user:42", "group:ops"], id="o-1-v2", occurred_at=occurred
    )

    assert message_id
    assert received(sqs, url) == [
        {
            "type": "order.updated",
            "data": {"orderId": "o-1"},
            "audience": ["user:42", "group:ops"],
            "id": "o-1-v2",
            "occurredAt": "2026-11-26T10:00:00Z",
        }
    ]


def test_optional_fields_are_left_out(queue):
    sqs, url = queue
    Publisher(url, sqs_client=sqs).publish("announcement", {"text": "hi"})
    assert received(sqs, url) == [{"type": "announcement", "data": {"text": "hi"}}]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"type": "Order Updated", "data": {}}, "type"),
        ({"type": "x" * 65, "data": {}}, "type"),
        ({"type": "a", "data": ["not", "an", "object"]}, "data must be a JSON object"),
        ({"type": "a", "data": {"when": datetime.now(UTC)}}, "not JSON-serialisable"),
        ({"type": "a", "data": {"blob": "x" * 40_000}}, "limit is 32768"),
        ({"type": "a", "data": {}, "audience": "user:42"}, "not a string"),
        ({"type": "a", "data": {}, "audience": []}, "1 to 100"),
        ({"type": "a", "data": {}, "audience": ["users:42"]}, "not a topic"),
        ({"type": "a", "data": {}, "audience": ["user:42", "user:42"]}, "twice"),
        ({"type": "a", "data": {}, "id": "has spaces"}, "id must be"),
        ({"type": "a", "data": {}, "occurred_at": "yesterday"}, "ISO 8601"),
        ({"type": "a", "data": {}, "occurred_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"type": "a", "data": {}, "occurred_at": "2026-11-26T10:00:00.123"}, "time zone"),
        ({"type": "a", "data": {}, "occurred_at": "2026-02-30T10:00:00Z"}, "not a valid time"),
        # In UTC this falls before year 1: process-events could not store it.
        ({"type": "a", "data": {}, "occurred_at": "0001-01-01T00:00:00+01:00"}, "not a valid time"),
        ({"type": "a", "data": {}, "occurred_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(seconds=30)))}, "ISO"),
    ],
)
def test_bad_events_raise_before_anything_is_sent(queue, kwargs, reason):
    sqs, url = queue
    publisher = Publisher(url, sqs_client=sqs)
    with pytest.raises(InvalidEvent, match=reason):
        publisher.publish(kwargs.pop("type"), kwargs.pop("data"), **kwargs)
    assert received(sqs, url) == []


def test_publish_many_sends_ten_per_call_in_order(queue, monkeypatch):
    sqs, url = queue
    calls = []
    original = sqs.send_message_batch
    monkeypatch.setattr(sqs, "send_message_batch", lambda **kw: calls.append(kw) or original(**kw))
    events = [Event("tick", {"n": n}, audience=["all"]) for n in range(23)]

    ids = Publisher(url, sqs_client=sqs).publish_many(events)

    assert [len(call["Entries"]) for call in calls] == [10, 10, 3]
    assert len(set(ids)) == 23
    assert all(ids)
    assert sorted(body["data"]["n"] for body in received(sqs, url)) == list(range(23))


def test_publish_many_splits_batches_by_size(queue, monkeypatch):
    sqs, url = queue
    calls = []
    original = sqs.send_message_batch
    monkeypatch.setattr(sqs, "send_message_batch", lambda **kw: calls.append(kw) or original(**kw))
    events = [Event("big", {"blob": "x" * 30_000}, audience=["all"]) for _ in range(10)]

    Publisher(url, sqs_client=sqs).publish_many(events)

    assert len(calls) == 2  # 10 x 30 KB exceeds SQS's 256 KiB per call
    assert all(sum(len(e["MessageBody"]) for e in call["Entries"]) <= 256 * 1024 for call in calls)


def test_publish_many_validates_all_before_sending_any(queue):
    sqs, url = queue
    events = [Event("ok", {}, audience=["all"]), Event("BAD TYPE", {}, audience=["all"])]
    with pytest.raises(InvalidEvent):
        Publisher(url, sqs_client=sqs).publish_many(events)
    assert received(sqs, url) == []


def test_publish_many_reports_what_sqs_refused():
    class RefusingSqs:
        def send_message_batch(self, QueueUrl, Entries):
            return {
                "Successful": [{"Id": Entries[0]["Id"], "MessageId": "m-0"}],
                "Failed": [{"Id": Entries[1]["Id"], "Code": "InternalError", "SenderFault": False}],
            }

    publisher = Publisher("https://sqs.example/queue", sqs_client=RefusingSqs())
    with pytest.raises(PublishError) as error:
        publisher.publish_many([Event("a", {}, audience=["all"]), Event("b", {}, audience=["all"])])
    assert error.value.failed == {1: "InternalError:"}


def test_a_data_limit_beyond_what_the_module_allows_is_refused():
    with pytest.raises(ValueError, match="max_data_bytes"):
        Publisher("https://sqs.example/q", sqs_client=object(), max_data_bytes=122_881)


def test_queue_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("REALTIME_EVENTS_QUEUE_URL", raising=False)
    with pytest.raises(ValueError, match="queue_url is required"):
        Publisher(sqs_client=object())
    monkeypatch.setenv("REALTIME_EVENTS_QUEUE_URL", "https://sqs.example/q")
    assert Publisher(sqs_client=object()).queue_url == "https://sqs.example/q"
