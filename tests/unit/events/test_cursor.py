import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from realtime.core.contract import MAX_SEQ
from realtime.events import cursor

VECTORS = json.loads((Path(__file__).resolve().parents[3] / "contract" / "vectors" / "cursor.json").read_text())


def test_round_trip():
    positions = {"user:42": 17, "group:ops": 3}

    assert cursor.decode(cursor.encode(positions)) == positions


def test_format_is_unpadded_base64url_json():
    text = cursor.encode({"user:42": 17})

    assert "=" not in text
    assert json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == {"v": 1, "t": {"user:42": 17}}


def test_topics_at_zero_are_left_out():
    assert cursor.decode(cursor.encode({"user:42": 0, "all": 2})) == {"all": 2}


def test_version_is_the_contracts():
    assert VECTORS["version"] == cursor.CURSOR_VERSION


@pytest.mark.parametrize("vector", VECTORS["decode"], ids=lambda vector: vector["name"])
def test_decode_vectors(vector):
    if vector["positions"] is None:
        with pytest.raises(ValueError, match="cursor"):
            cursor.decode(vector["cursor"])
    else:
        assert cursor.decode(vector["cursor"]) == vector["positions"]


def test_a_very_long_cursor_is_refused_before_decoding():
    with pytest.raises(ValueError, match="too long"):
        cursor.decode("a" * 20000)


def test_a_cursor_nested_thousands_deep_is_refused_before_json_parses_it():
    """Issue 20, finding 6: base64url of a few thousand `[` was a RecursionError (a 500 and a stack trace)."""
    deep = base64.urlsafe_b64encode(b"[" * 5000).rstrip(b"=").decode()

    with pytest.raises(ValueError, match="nests more than 8 levels deep"):
        cursor.decode(deep)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"v":1,"t":{"a":[[[[[[1]]]]]]}}', "must be an integer"),  # 8 deep: parsed, refused for its shape
        ('{"v":1,"t":{"[[[[[[[[[[":1}}', None),  # brackets inside strings do not nest
        ('{"v":1,"t":{"\\"[[[[[[[[[[":1}}', None),  # nor after an escaped quote
    ],
)
def test_nesting_is_counted_outside_strings_only(text, message):
    encoded = base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()
    if message is None:
        assert len(cursor.decode(encoded)) == 1
    else:
        with pytest.raises(ValueError, match=message):
            cursor.decode(encoded)


topics = st.from_regex(r"(all|(user|group|presence):[A-Za-z0-9_.@:|+-]{1,20})", fullmatch=True)


@given(st.dictionaries(topics, st.integers(min_value=1, max_value=MAX_SEQ), max_size=20))
def test_round_trip_any_positions(positions):
    assert cursor.decode(cursor.encode(positions)) == positions
