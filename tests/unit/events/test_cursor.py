import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from realtime.events import cursor


def test_round_trip():
    positions = {"user:42": 17, "group:ops": 3}

    assert cursor.decode(cursor.encode(positions)) == positions


def test_format_is_unpadded_base64url_json():
    text = cursor.encode({"user:42": 17})

    assert "=" not in text
    assert json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == {"v": 1, "t": {"user:42": 17}}


def test_topics_at_zero_are_left_out():
    assert cursor.decode(cursor.encode({"user:42": 0, "all": 2})) == {"all": 2}


def _raw(document):
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "bad",
    [
        "not a cursor!",
        "%%%",
        _raw([1, 2]),
        _raw({"v": 2, "t": {}}),
        _raw({"v": 1}),
        _raw({"v": 1, "t": {"user:42": -1}}),
        _raw({"v": 1, "t": {"user:42": "7"}}),
        _raw({"v": 1, "t": {"user:42": True}}),
        _raw({"v": 1, "t": {"room:1": 3}}),
        "a" * 20000,
    ],
)
def test_bad_cursors_raise_value_error(bad):
    with pytest.raises(ValueError, match="cursor"):
        cursor.decode(bad)


topics = st.from_regex(r"(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,20})", fullmatch=True)


@given(st.dictionaries(topics, st.integers(min_value=1, max_value=2**53), max_size=20))
def test_round_trip_any_positions(positions):
    assert cursor.decode(cursor.encode(positions)) == positions
