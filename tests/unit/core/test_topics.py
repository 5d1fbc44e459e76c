import pytest
from hypothesis import given
from hypothesis import strategies as st
from realtime.core.contract import is_topic as is_valid_topic
from realtime.core.topics import topics_for_claims


@pytest.mark.parametrize(
    "topic",
    [
        "all",
        "user:42",
        "group:ops",
        "presence:doctor-7",
        "user:a.b@example.com",
        "group:x:y+z_1",
        "user:auth0|5f1c",
        "user:" + "a" * 128,
    ],
)
def test_valid_topics(topic):
    assert is_valid_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "ALL",
        "all:x",
        "user:",
        "user",
        "room:1",
        "user:a b",
        "user:a/b",
        "user:" + "a" * 129,
        "all\n",
        "user:42\n",
        42,
    ],
)
def test_invalid_topics(topic):
    assert not is_valid_topic(topic)


def test_topics_for_claims_orders_user_groups_granted_then_all():
    claims = {"sub": "42", "groups": ["ops", "billing"], "topics": ["presence:7", "group:ops"]}

    assert topics_for_claims(claims) == ["user:42", "group:ops", "group:billing", "presence:7", "all"]


def test_topics_for_claims_skips_entries_outside_the_grammar():
    claims = {"sub": "42", "groups": ["ops", "bad group", 7], "topics": ["room:1", "presence:7", None]}

    assert topics_for_claims(claims) == ["user:42", "group:ops", "presence:7", "all"]


def test_topics_for_claims_ignores_a_string_where_a_list_belongs():
    # Iterating "ops" would otherwise grant group:o, group:p and group:s.
    assert topics_for_claims({"sub": "42", "groups": "ops"}) == ["user:42", "all"]


def test_topics_for_claims_with_only_sub():
    assert topics_for_claims({"sub": "u-1"}) == ["user:u-1", "all"]


@pytest.mark.parametrize("sub", ["", "has space", "a/b", "x" * 129])
def test_topics_for_claims_rejects_a_sub_that_cannot_be_a_topic(sub):
    with pytest.raises(ValueError, match="sub"):
        topics_for_claims({"sub": sub})


@given(st.from_regex(r"[A-Za-z0-9_.@:|+-]{1,128}", fullmatch=True))
def test_every_sub_in_the_grammar_gives_its_own_topic_first(sub):
    assert topics_for_claims({"sub": sub})[0] == f"user:{sub}"
