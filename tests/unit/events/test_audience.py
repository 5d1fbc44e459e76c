import json

import pytest
from realtime.core.errors import ConfigError, PermanentError
from realtime.events.audience import EventTypeRules

RULES = [
    {"type": "order.*", "audience": ["user:{data.customer.id}", "group:ops"]},
    {"type": "chat.message", "audience": ["group:{data.room}"]},
    {"type": "*", "audience": ["all"]},
]


@pytest.fixture
def rules():
    return EventTypeRules.from_json(json.dumps(RULES))


def test_first_matching_rule_gives_the_audience(rules):
    assert rules.audience_for("order.updated", {"customer": {"id": 42}}) == ["user:42", "group:ops"]
    assert rules.audience_for("chat.message", {"room": "lobby"}) == ["group:lobby"]
    assert rules.audience_for("anything.else", {}) == ["all"]


def test_patterns_are_case_sensitive_fnmatch():
    rules = EventTypeRules.from_json('[{"type": "order.*", "audience": ["all"]}]')

    assert rules.audience_for("order.created", {}) == ["all"]
    assert rules.audience_for("ORDER.created", {}) is None
    assert rules.audience_for("orders", {}) is None


def test_no_rules_means_no_default():
    assert EventTypeRules.from_json("[]").audience_for("order.updated", {}) is None


def test_rendered_topics_are_deduplicated():
    rules = EventTypeRules.from_json('[{"type": "*", "audience": ["user:{data.a}", "user:{data.b}"]}]')

    assert rules.audience_for("x", {"a": "1", "b": "1"}) == ["user:1"]


def test_missing_field_is_a_permanent_error_naming_it(rules):
    with pytest.raises(PermanentError) as caught:
        rules.audience_for("order.updated", {"customer": {}})

    assert caught.value.code == "audience_field_missing"
    assert "data.customer.id" in caught.value.reason


@pytest.mark.parametrize("value", [True, None, 1.5, ["a"], {"x": 1}, "has space", ""])
def test_field_that_cannot_form_a_topic_is_a_permanent_error(rules, value):
    with pytest.raises(PermanentError) as caught:
        rules.audience_for("chat.message", {"room": value})

    assert caught.value.code == "invalid_audience"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"type": "*"}', "must be a JSON list"),
        ('["x"]', r"EVENT_TYPE_RULES\[0\] must be an object"),
        ('[{"type": "", "audience": ["all"]}]', r"EVENT_TYPE_RULES\[0\].type"),
        ('[{"type": "a", "audience": []}]', r"EVENT_TYPE_RULES\[0\].audience"),
        ('[{"type": "a", "audience": "all"}]', r"EVENT_TYPE_RULES\[0\].audience"),
        ('[{"type": "a", "audience": ["all"], "extra": 1}]', "unknown keys"),
        ('[{"type": "a", "audience": ["all"]}, {"type": "b", "audience": ["room:{data.x}"]}]', r"\[1\].*room"),
        ('[{"type": "a", "audience": ["user:{userId}"]}]', r"\{data.field\}"),
        ('[{"type": "a", "audience": ["user:{data.}"]}]', r"\{data.field\}"),
        ('[{"type": "a", "audience": ["{data.topic}"]}]', "does not form a topic"),
        ('[{"type": "a", "audience": [7]}]', "must be strings"),
    ],
)
def test_bad_rules_fail_at_parse_time_naming_the_rule(text, message):
    with pytest.raises(ConfigError, match=message):
        EventTypeRules.from_json(text)
