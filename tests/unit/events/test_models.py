import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from realtime.core.encoding import format_timestamp
from realtime.core.errors import PermanentError
from realtime.events.models import EVENT_KEY, Event, event_key
from realtime.events.producer import parse_producer_message


def test_minimal_message():
    message = parse_producer_message({"type": "order.updated", "data": {"orderId": 1}})

    assert (message.type, message.data, message.audience, message.id, message.occurred_at) == (
        "order.updated",
        {"orderId": 1},
        None,
        None,
        None,
    )


def test_full_message():
    message = parse_producer_message(
        {
            "type": "order.updated",
            "data": {},
            "audience": ["user:42", "group:ops"],
            "id": "order-1-v3",
            "occurredAt": "2026-11-26T10:00:00Z",
        }
    )

    assert message.audience == ["user:42", "group:ops"]
    assert message.occurred_at == datetime(2026, 11, 26, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"data": {}}, "type"),
        ({"type": "Order.Updated", "data": {}}, "type"),
        ({"type": "x" * 65, "data": {}}, "type"),
        ({"type": "a"}, "data"),
        ({"type": "a", "data": [1]}, "data"),
        ({"type": "a", "data": "text"}, "data"),
        ({"type": "a", "data": {}, "audience": []}, "audience"),
        ({"type": "a", "data": {}, "audience": ["room:1"]}, "audience"),
        ({"type": "a", "data": {}, "audience": ["user:1", "user:1"]}, "audience"),
        ({"type": "a", "data": {}, "audience": [f"user:{i}" for i in range(101)]}, "audience"),
        ({"type": "a", "data": {}, "id": ""}, "id"),
        ({"type": "a", "data": {}, "id": "has space"}, "id"),
        ({"type": "a", "data": {}, "id": "x" * 129}, "id"),
        ({"type": "a", "data": {}, "occurredAt": "yesterday"}, "occurredAt"),
        ({"type": "a", "data": {}, "occurredAt": "2026-11-26T10:00:00"}, "occurredAt"),
        ({"type": "a", "data": {}, "occurredAt": 1700000000}, "occurredAt"),
        ({"type": "a", "data": {}, "extra": True}, "extra"),
    ],
)
def test_invalid_messages_name_the_field(message, field):
    with pytest.raises(PermanentError) as caught:
        parse_producer_message(message)

    assert caught.value.code == "invalid_message"
    assert field in {problem.split(":")[0].split(".")[0] for problem in caught.value.reason.split("; ")}


def test_format_timestamp_is_utc_with_milliseconds_and_z():
    moment = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))

    assert format_timestamp(moment) == "2026-11-26T10:00:00.123Z"


def test_event_frame_is_compact_with_contract_keys_in_order():
    event = Event(
        id="e1",
        type="order.updated",
        topic="user:42",
        seq=17,
        data={"name": "Zoë", "n": 1},
        occurred_at="2026-11-26T10:00:00.000Z",
        published_at="2026-11-26T10:00:00.250Z",
    )

    text = event.to_json()

    assert text == (
        '{"id":"e1","type":"order.updated","topic":"user:42","seq":17,"data":{"name":"Zoë","n":1},'
        '"occurredAt":"2026-11-26T10:00:00.000Z","publishedAt":"2026-11-26T10:00:00.250Z"}'
    )
    assert list(json.loads(text)) == ["id", "type", "topic", "seq", "data", "occurredAt", "publishedAt"]


def test_an_event_with_a_key_carries_it_after_its_id():
    event = Event(
        id="e1",
        type="t",
        topic="user:42",
        seq=1,
        data={},
        occurred_at="2026-11-26T10:00:00.000Z",
        published_at="2026-11-26T10:00:00.250Z",
        key=event_key("from:AROAEXAMPLE:e1"),
    )

    fields = ["id", "key", "type", "topic", "seq", "data", "occurredAt", "publishedAt"]
    assert list(json.loads(event.to_json())) == fields


def test_the_event_key_is_a_fixed_length_url_safe_hash_of_the_idempotency_key():
    keys = {event_key(idempotency) for idempotency in ("e1", "from:AROAA:e1", "from:AROAB:e1")}

    assert len(keys) == 3
    assert all(EVENT_KEY.fullmatch(key) for key in keys)
    assert event_key("from:AROAA:e1") == event_key("from:AROAA:e1")  # every function computes the same one
