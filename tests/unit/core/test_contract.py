"""The functions keep the wire contract of contract/: same patterns and limits, same verdict on every vector."""

import json
from pathlib import Path

import msgspec
import pytest
from pydantic import ValidationError
from realtime.core import contract
from realtime.core.errors import PermanentError
from realtime.events.audience import EventTypeRules
from realtime.events.pipeline import EventPipeline
from realtime.events.producer import ProducerMessage
from realtime.events.producer_model import ProducerMessageModel

CONTRACT = Path(__file__).resolve().parents[3] / "contract"
WIRE = json.loads((CONTRACT / "wire.json").read_text())
GRAMMAR = json.loads((CONTRACT / "vectors" / "grammar.json").read_text())
MESSAGES = json.loads((CONTRACT / "vectors" / "messages.json").read_text())


def producer_accepts(field: str, value: object) -> bool:
    """Whether process-events' producer message (msgspec) takes `value` as this field of an otherwise valid one."""
    try:
        msgspec.convert({"type": "a", "data": {}, "audience": ["all"], field: value}, ProducerMessage)
    except msgspec.ValidationError:
        return False
    return True


def producer_model_accepts(field: str, value: object) -> bool:
    """The same question to the pydantic model, which explains the messages msgspec refuses."""
    try:
        ProducerMessageModel.model_validate({"type": "a", "data": {}, "audience": ["all"], field: value})
    except ValidationError:
        return False
    return True


# Every code path production uses to check each kind of value: the vectors run against each of them.
CHECKS = {
    "topic": {
        "contract.is_topic (tokens, presence)": contract.is_topic,
        "producer message audience": lambda value: producer_accepts("audience", [value]),
        "producer model audience": lambda value: producer_model_accepts("audience", [value]),
    },
    "userId": {"contract.is_user_id (GET /presence)": contract.is_user_id},
    "eventType": {
        "producer message type": lambda value: producer_accepts("type", value),
        "producer model type": lambda value: producer_model_accepts("type", value),
    },
    "eventId": {
        "producer message id": lambda value: producer_accepts("id", value),
        "producer model id": lambda value: producer_model_accepts("id", value),
    },
}


def test_patterns_and_limits_equal_the_contract():
    assert WIRE["patterns"] == {
        "topic": contract.TOPIC_PATTERN,
        "userId": contract.USER_ID_PATTERN,
        "eventType": contract.EVENT_TYPE_PATTERN,
        "eventId": contract.EVENT_ID_PATTERN,
    }
    assert WIRE["broadcastTopic"] == contract.BROADCAST_TOPIC
    assert WIRE["socketErrors"]["tokenExpired"] == contract.TOKEN_EXPIRED
    assert WIRE["reserved"] == {
        "$comment": WIRE["reserved"]["$comment"],
        "eventTypePrefix": contract.RESERVED_TYPE_PREFIX,
        "eventIdPrefix": contract.RESERVED_ID_PREFIX,
    }
    assert WIRE["limits"] == {
        "audienceTopics": contract.MAX_AUDIENCE_TOPICS,
        "topicsPerToken": contract.MAX_TOPICS_PER_TOKEN,
        "dataBytesDefault": contract.DEFAULT_DATA_BYTES,
        "dataBytesMax": contract.MAX_DATA_BYTES,
        "dataDepthMax": contract.MAX_DATA_DEPTH,
        "queueMessageBytes": contract.QUEUE_MESSAGE_BYTES,
        "pageEventsDefault": contract.DEFAULT_PAGE_EVENTS,
        "pageEventsMax": contract.MAX_PAGE_EVENTS,
        "pageBytesMax": contract.MAX_PAGE_BYTES,
        "seqMax": contract.MAX_SEQ,
        "waitSecondsMax": contract.MAX_WAIT_SECONDS,
        "presenceUsersDefault": contract.DEFAULT_PRESENCE_USERS,
        "presenceUsersMax": contract.MAX_PRESENCE_USERS,
    }


GRAMMAR_CASES = [
    (kind, value, verdict)
    for kind, vectors in GRAMMAR.items()
    if not kind.startswith("$")
    for verdict in ("accept", "reject")
    for value in vectors[verdict]
]


@pytest.mark.parametrize(("kind", "value", "verdict"), GRAMMAR_CASES)
def test_grammar_vectors(kind, value, verdict):
    verdicts = {path: check(value) for path, check in CHECKS[kind].items()}

    assert verdicts == dict.fromkeys(CHECKS[kind], verdict == "accept")


def pipeline() -> EventPipeline:
    """Parsing only (no store or delivery); a catch-all rule gives audience-less messages one."""
    return EventPipeline(
        store=None,
        delivery=None,
        rules=EventTypeRules.from_json('[{"type": "*", "audience": ["all"]}]'),
        max_data_bytes=WIRE["limits"]["dataBytesDefault"],
    )


@pytest.mark.parametrize("message", MESSAGES["accept"])
def test_accepted_messages_parse(message):
    pending = pipeline().parse(json.dumps(message), "sqs-message-id")

    assert pending.type == message["type"]
    assert pending.topics == message.get("audience", ["all"])


def rejected_messages():
    yield from ((case["message"], case["field"]) for case in MESSAGES["reject"])
    generated = MESSAGES["generated"]
    audience = generated["audienceOverLimit"]
    topics = [audience["topicFormat"].format(i=i) for i in range(audience["topics"])]
    yield {"type": "a", "data": {}, "audience": topics}, audience["field"]
    data = generated["dataOverLimit"]
    # {"x":"..."} serializes to the text plus 8 bytes of JSON around it.
    yield {"type": "a", "data": {"x": "y" * (data["bytes"] - 8)}, "audience": ["all"]}, data["field"]
    deep = generated["dataOverDepth"]
    yield {"type": "a", "data": nested_data(deep["depth"]), "audience": ["all"]}, deep["field"]


def nested_data(depth: int) -> dict:
    """A data object `depth` objects and lists deep: {"x": [[...]]}."""
    return json.loads('{"x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}")


def test_data_may_nest_up_to_the_limit():
    depth = WIRE["limits"]["dataDepthMax"]
    pipeline().parse(json.dumps({"type": "a", "data": nested_data(depth)}), "sqs-message-id")


@pytest.mark.parametrize(("message", "field"), list(rejected_messages()))
def test_rejected_messages_go_to_the_dlq_naming_the_field(message, field):
    # json.dumps escapes non-ASCII, so a lone surrogate travels as \ud800, as a producer would send it.
    with pytest.raises(PermanentError) as caught:
        pipeline().parse(json.dumps(message), "sqs-message-id")

    assert caught.value.code in ("invalid_message", "too_large", "too_deep")
    assert field in caught.value.reason
