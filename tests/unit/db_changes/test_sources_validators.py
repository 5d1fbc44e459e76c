"""DB_CHANGE_SOURCES' two validators agree: the one every cold start runs (msgspec and shared checks) and
the pydantic models (the words for a refused source). Generated sources, valid and nearly valid, go
through both."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from realtime.core.errors import ConfigError
from realtime.db_changes import rules, sources, sources_model

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/clinic/stream/2026-01-01T00:00:00.000"

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
)


def mostly(valid: list, invalid: list) -> st.SearchStrategy:
    """A valid value most of the time (so that whole sources are often valid), else a near miss or any JSON."""
    return weighted(st.sampled_from(valid), st.sampled_from(invalid) | JSON_VALUES)


def weighted(usual: st.SearchStrategy, rare: st.SearchStrategy, percent_rare: int = 8) -> st.SearchStrategy:
    # Drawn through an integer: st.one_of does not weigh its branches by how often they are repeated. Hypothesis
    # favours small integers: they pick the usual branch.
    return st.integers(0, 99).flatmap(lambda n: rare if n >= 100 - percent_rare else usual)


def mostly_lists(item: st.SearchStrategy, **sizes: int) -> st.SearchStrategy:
    return weighted(st.lists(item, **sizes), JSON_VALUES)


def sometimes_with(extra: dict[str, st.SearchStrategy], strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The dictionaries of `strategy`, now and then with a key of `extra` added."""
    with_extra = st.tuples(strategy, st.fixed_dictionaries({}, optional=extra)).map(lambda pair: pair[0] | pair[1])
    return weighted(strategy, with_extra, percent_rare=15)


# Texts near each pattern's edges: valid ones, and the ways configurations get them wrong.
NAMES = mostly(["clinic", "a", "0-x_y", "x" * 64], ["x" * 65, "", "Clinic", "-a", "a b", "a\n", "é"])
ARNS = mostly(
    [ARN, "arn:aws-cn:dynamodb:cn-north-1:123456789012:table/abc/stream/x"],
    [ARN.replace("123456789012", "12345"), ARN.replace("clinic", "ab"), ARN + "\n", ARN + " x",
     ARN.split("/stream/")[0] + "/stream/", "arn:aws:s3:::b"],
)  # fmt: skip
EVENT_TYPES = mostly(["doctor.online", "a", "x" * 64], ["x" * 65, "", "Doctor.Online", "a b", "a\n"])
ATTRIBUTE = mostly(["doctorId", "online", "clinicIds", "a.b-c_d", "x" * 255], ["x" * 256, "", "a b", "a\n"])
TEMPLATE = mostly(
    ["presence:{doctorId}", "group:{clinicIds}", "user:{online}", "all", "user:{doctorId}-{clinicIds}"],
    ["room:{doctorId}", "user:{}", "user:{a b}", "presence:{doctorId}\n", "user:{" + "x" * 256 + "}"],
)
KIND = mostly(["INSERT", "MODIFY", "REMOVE"], ["DELETE", "insert"])
BECOMES = st.fixed_dictionaries(
    {},
    optional={
        "S": st.none() | st.none() | st.text(max_size=3) | st.integers(),
        "N": st.none()
        | st.integers()
        | st.floats()
        | st.booleans()
        | st.sampled_from(["1", "1.50", "1e3", "abc", "NaN", "Infinity", "", "-0"]),
        "BOOL": st.none() | st.booleans() | st.integers(0, 1),
        "type": st.none() | st.sampled_from(["S", "N", "BOOL", "X"]),  # the model's own form
        "value": JSON_SCALARS,
        "X": st.none() | st.integers(),
    },
)
WHEN = sometimes_with(
    {"since": JSON_VALUES}, st.fixed_dictionaries({"attribute": ATTRIBUTE}, optional={"becomes": st.none() | BECOMES})
)
RULE = st.fixed_dictionaries(
    {
        "name": mostly(["doctor-online", "doctor-changed"], ["Bad Name"]),
        "event_type": EVENT_TYPES,
        "audience": weighted(
            mostly_lists(TEMPLATE, min_size=1, max_size=3, unique_by=repr),
            st.lists(TEMPLATE, max_size=3)
            | st.lists(st.sampled_from(["user:{a}", "user:{b}"]), min_size=99, max_size=101),
        ),
    },
    optional={
        "kinds": st.none() | mostly_lists(KIND, max_size=4),
        "when": st.none() | WHEN | JSON_VALUES,
        "list_placeholders": mostly_lists(st.sampled_from(["clinicIds", "doctorId", "other"]) | ATTRIBUTE, max_size=2),
        "data": mostly_lists(ATTRIBUTE, max_size=3) | st.lists(st.just("a"), min_size=100, max_size=101),
    },
)
RULES = sometimes_with(
    {"source": NAMES, "priority": JSON_VALUES},  # a field of the model, which fills it in itself; unknown to both
    RULE,
)
SOURCES = weighted(
    sometimes_with(
        {"table": JSON_VALUES},
        st.fixed_dictionaries(
            {"name": NAMES, "stream_arn": ARNS, "rules": mostly_lists(RULES, min_size=1, max_size=2)}
        ),
    ),
    JSON_VALUES,
    percent_rare=4,
)


def pydantic_reading(raw: object) -> rules.ChangeSource | None:
    try:
        return sources_model.read(sources_model.ChangeSource.model_validate(raw))
    except ValidationError:
        return None


def cold_start_reading(raw: object) -> rules.ChangeSource | None:
    try:
        return sources._source(raw)
    except (msgspec.ValidationError, ValueError):
        return None


@settings(max_examples=3000, deadline=None)
@given(SOURCES)
def test_what_the_cold_start_path_accepts_pydantic_accepts_and_reads_the_same(raw):
    fast = cold_start_reading(raw)
    if fast is not None:
        assert pydantic_reading(raw) == fast


@settings(max_examples=1000, deadline=None)
@given(SOURCES)
def test_a_source_is_read_as_pydantic_reads_it_and_refused_in_its_words(raw):
    expected = pydantic_reading(raw)
    if expected is None:
        with pytest.raises(ConfigError):
            sources.parse_source(0, raw)
    else:
        assert sources.parse_source(0, raw) == expected


def test_the_generated_sources_reach_both_outcomes_of_the_cold_start_path():
    """The property above is only as good as its examples: valid ones must be among them, read on both paths."""
    valid = {
        "name": "clinic",
        "stream_arn": ARN,
        "rules": [
            {
                "name": "doctor-online",
                "event_type": "doctor.online",
                "when": {"attribute": "online", "becomes": {"S": None, "N": "1.50", "BOOL": None}},
                "audience": ["presence:{doctorId}", "group:{clinicIds}"],
                "list_placeholders": ["clinicIds"],
                "data": ["doctorId"],
            }
        ],
    }
    fast = cold_start_reading(valid)
    assert fast is not None
    assert fast == pydantic_reading(valid)
    assert fast.rules[0].kinds == {"INSERT", "MODIFY"}
    assert str(fast.rules[0].when.becomes.value) == "1.50"
    # The model's own form of a typed value: only pydantic reads it, the same way.
    own_form = {
        **valid,
        "rules": [{**valid["rules"][0], "when": {"attribute": "a", "becomes": {"type": "S", "value": "x"}}}],
    }
    assert cold_start_reading(own_form) is None
    assert sources.parse_source(0, own_form).rules[0].when.becomes == rules.TypedValue("S", "x")
