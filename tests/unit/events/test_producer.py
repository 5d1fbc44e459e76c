"""The producer message's two validators agree: msgspec (every message) and the pydantic model (the words
for a refused one). Generated messages, valid and nearly valid, go through both."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from realtime.core.errors import PermanentError
from realtime.events.producer import ProducerMessage, parse_producer_message
from realtime.events.producer_model import ProducerMessageModel

# Texts near each pattern's edges: valid ones, and the ways producers get them wrong.
NEAR_TYPES = st.sampled_from(["order.updated", "a", "x" * 64, "x" * 65, "", "Order.Updated", "a b", "a\n", "é"])
NEAR_TOPICS = st.sampled_from(
    ["all", "user:42", "group:ops", "presence:u1", "user:" + "x" * 128, "user:" + "x" * 129, "room:1", "all\n",
     "user:", "User:1", "user:a b", "group:é", " all"]
)  # fmt: skip
NEAR_IDS = st.sampled_from(["o-1", "x" * 128, "x" * 129, "", "has space", "tab\t", "o-1\n", "ü"])
NEAR_TIMES = st.sampled_from(
    ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00+02:00", "2026-11-26T10:00:00", "2026-11-26", "yesterday",
     "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "", "1700000000"]
)  # fmt: skip
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
)


def either(near: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the field's own kind of value, sometimes any JSON value in its place."""
    return st.one_of(near, near, near, JSON_VALUES)


FIELDS = {
    "type": either(NEAR_TYPES),
    "data": st.one_of(st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4), JSON_VALUES),
    "audience": either(
        st.lists(NEAR_TOPICS, max_size=4) | st.lists(st.sampled_from(["user:1", "user:2"]), min_size=99, max_size=102)
    ),
    "id": either(NEAR_IDS),
    "occurredAt": either(NEAR_TIMES),
    "occurred_at": either(NEAR_TIMES),  # the model's field name: pydantic takes it too (populate_by_name)
    "priority": JSON_VALUES,  # unknown to both
}
MESSAGES = (
    st.fixed_dictionaries(
        {"type": FIELDS["type"], "data": FIELDS["data"]},
        optional={name: strategy for name, strategy in FIELDS.items() if name not in ("type", "data")},
    )
    | st.fixed_dictionaries({}, optional=FIELDS)
    | JSON_VALUES
)


def reading(message: object) -> tuple:
    return (message.type, message.data, message.audience, message.id, message.occurred_at)


@settings(max_examples=3000, deadline=None)
@given(MESSAGES)
def test_msgspec_accepts_a_message_only_when_pydantic_does_and_reads_it_the_same(raw):
    try:
        model = ProducerMessageModel.model_validate(raw)
    except ValidationError:
        model = None
    try:
        message = msgspec.convert(raw, ProducerMessage)
    except msgspec.ValidationError:
        message = None

    if message is not None:
        assert model is not None, f"msgspec accepted what pydantic refuses: {raw!r}"
        assert reading(message) == reading(model)
    elif model is not None:
        # The one difference by design: pydantic also takes the field's own name for occurredAt.
        assert isinstance(raw, dict), f"msgspec refused what pydantic accepts: {raw!r}"
        assert "occurred_at" in raw, f"msgspec refused what pydantic accepts: {raw!r}"


@settings(max_examples=1000, deadline=None)
@given(MESSAGES)
def test_a_message_is_parsed_or_refused_as_the_pydantic_model_alone_would(raw):
    try:
        expected = reading(ProducerMessageModel.model_validate(raw))
    except ValidationError:
        expected = None
    try:
        got = reading(parse_producer_message(raw))
    except PermanentError as error:
        got = error.code
    assert got == (expected or "invalid_message")


def test_a_refused_message_is_explained_in_pydantics_words():
    raw = {"type": "Order Updated", "data": [1], "audience": [], "colour": "red"}

    with pytest.raises(PermanentError) as caught:
        parse_producer_message(raw)

    assert caught.value.code == "invalid_message"
    assert str(caught.value.reason) == (
        "type: String should match pattern '^[a-z0-9_.-]{1,64}$'; data: Input should be a valid dictionary; "
        "audience: List should have at least 1 item after validation, not 0; colour: Extra inputs are not permitted"
    )
