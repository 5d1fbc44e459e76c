"""The publisher SDK against contract/: its constants, the grammar vectors and the producer-message vectors.

Whatever process-events would send to the DLQ, the SDK must refuse at the call
site (InvalidEvent naming the wire field); whatever it accepts, the SDK must
send unchanged.
"""

from __future__ import annotations

import json

import pytest
from realtime_publisher import Event, InvalidEvent, publisher

from .contract import load

WIRE = load("wire.json")
GRAMMAR = load("vectors/grammar.json")
MESSAGES = load("vectors/messages.json")

# Producer-message field -> Event argument. A field left out of a message is
# passed as None, which is how the SDK spells "absent".
ARGUMENTS = {"type": "type", "data": "data", "audience": "audience", "id": "id", "occurredAt": "occurred_at"}


def event_from(message: dict) -> Event:
    return Event(**{argument: message.get(field) for field, argument in ARGUMENTS.items()})


def expressible(message: dict):
    """Event takes the producer message's fields and no others, so a message
    with an unknown key (which the server refuses) cannot even be built."""
    unknown = sorted(set(message) - set(ARGUMENTS))
    return pytest.mark.skip(reason=f"Event has no argument for {unknown}") if unknown else ()


def test_constants_are_the_wire_contract():
    patterns = {
        "eventType": publisher.TYPE_PATTERN.pattern,
        "topic": publisher.TOPIC_PATTERN.pattern,
        "eventId": publisher.ID_PATTERN.pattern,
    }
    limits = {
        "audienceTopics": publisher.MAX_AUDIENCE,
        "dataBytesDefault": publisher.DEFAULT_MAX_DATA_BYTES,
        "dataBytesMax": publisher.MAX_DATA_BYTES,
        "dataDepthMax": publisher.MAX_DATA_DEPTH,
        "queueMessageBytes": publisher.SQS_BATCH_BYTES,
    }
    assert patterns == {name: WIRE["patterns"][name] for name in patterns}
    assert limits == {name: WIRE["limits"][name] for name in limits}
    assert (
        WIRE["reserved"]["eventTypePrefix"],
        WIRE["reserved"]["eventIdPrefix"],
    ) == (publisher.RESERVED_TYPE_PREFIX, publisher.RESERVED_ID_PREFIX)


@pytest.mark.parametrize(
    ("event", "field"),
    [(Event("presence.online", {}), "type"), (Event("order.updated", {}, id="presence-alice-1"), "id")],
)
def test_the_modules_own_types_and_ids_are_refused_before_sending(event, field):
    with pytest.raises(InvalidEvent) as refused:
        event.to_message()

    assert refused.value.field == field


# Each grammar through the Event field that carries it. The SDK has no user id
# of its own: a user topic carries one.
CARRIERS = {
    "eventType": ("type", lambda value: Event(value, {})),
    "eventId": ("id", lambda value: Event("a", {}, id=value)),
    "topic": ("audience", lambda value: Event("a", {}, audience=[value])),
    "userId": ("audience", lambda value: Event("a", {}, audience=[f"user:{value}"])),
}


def grammar_vectors(verdict: str) -> list:
    return [
        pytest.param(name, value, id=f"{name}-{index}")
        for name, vectors in GRAMMAR.items()
        if name in CARRIERS
        for index, value in enumerate(vectors[verdict])
    ]


def test_every_grammar_has_a_carrier():
    assert set(CARRIERS) == {name for name in GRAMMAR if not name.startswith("$")}


@pytest.mark.parametrize(("name", "value"), grammar_vectors("accept"))
def test_grammar_accepts(name, value):
    _, build = CARRIERS[name]
    build(value).to_message()


@pytest.mark.parametrize(("name", "value"), grammar_vectors("reject"))
def test_grammar_rejects(name, value):
    field, build = CARRIERS[name]
    with pytest.raises(InvalidEvent) as error:
        build(value).to_message()
    assert error.value.field == field


@pytest.mark.parametrize("message", MESSAGES["accept"])
def test_accepted_messages_are_sent_unchanged(message):
    assert json.loads(event_from(message).to_message()) == message


@pytest.mark.parametrize(
    ("message", "field"),
    [pytest.param(v["message"], v["field"], marks=expressible(v["message"])) for v in MESSAGES["reject"]],
)
def test_rejected_messages_raise_naming_the_field(message, field):
    with pytest.raises(InvalidEvent) as error:
        event_from(message).to_message()
    assert error.value.field == field


def test_one_topic_over_the_audience_limit_is_refused():
    over = MESSAGES["generated"]["audienceOverLimit"]
    topics = [over["topicFormat"].format(i=i) for i in range(over["topics"])]
    Event("a", {}, audience=topics[:-1]).to_message()
    with pytest.raises(InvalidEvent) as error:
        Event("a", {}, audience=topics).to_message()
    assert error.value.field == over["field"]


def data_of(size: int) -> dict:
    """A data object whose compact JSON is ``size`` bytes."""
    data = {"x": "a" * (size - len('{"x":""}'))}
    assert len(json.dumps(data, separators=(",", ":"))) == size
    return data


def test_one_byte_over_the_data_limit_is_refused():
    over = MESSAGES["generated"]["dataOverLimit"]
    Event("a", data_of(over["bytes"] - 1)).to_message()
    with pytest.raises(InvalidEvent) as error:
        Event("a", data_of(over["bytes"])).to_message()
    assert error.value.field == over["field"]


def nested_data(depth: int) -> dict:
    """A data object ``depth`` dicts and lists deep: {"x": [[...[1]...]]}."""
    value: object = 1
    for _ in range(depth - 1):
        value = [value]
    return {"x": value}


def test_one_level_over_the_depth_limit_is_refused():
    over = MESSAGES["generated"]["dataOverDepth"]
    Event("a", nested_data(over["depth"] - 1)).to_message()
    with pytest.raises(InvalidEvent) as error:
        Event("a", nested_data(over["depth"])).to_message()
    assert error.value.field == over["field"]


def test_data_nested_past_what_json_can_serialise_is_refused_as_too_deep():
    with pytest.raises(InvalidEvent, match="levels deep"):
        Event("a", nested_data(100_000)).to_message()
