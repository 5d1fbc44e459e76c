import pytest
from realtime.core.contract import DEFAULT_PAGE_EVENTS as DEFAULT_READ_LIMIT
from realtime.core.errors import BadRequest
from realtime.events import cursor
from realtime.events.feed import FeedPage, FeedRequest


def test_defaults():
    request = FeedRequest.from_query(None)

    assert (request.positions, request.limit, request.wait_seconds) == ({}, DEFAULT_READ_LIMIT, 0.0)


def test_parses_cursor_limit_and_wait():
    request = FeedRequest.from_query({"cursor": cursor.encode({"user:1": 4}), "limit": "10", "wait": "2.5"})

    assert (request.positions, request.limit, request.wait_seconds) == ({"user:1": 4}, 10, 2.5)


@pytest.mark.parametrize(
    ("query", "code"),
    [({"cursor": "%%"}, "invalid_cursor"), ({"limit": "1.5"}, "invalid_limit"), ({"wait": "inf"}, "invalid_wait")],
)
def test_bad_parameters(query, code):
    with pytest.raises(BadRequest) as caught:
        FeedRequest.from_query(query)

    assert caught.value.code == code


def test_page_json_splices_frames_verbatim():
    page = FeedPage(events=['{"seq":1}', '{"seq":2}'], cursor="abc", has_more=True)

    assert page.to_json() == '{"events":[{"seq":1},{"seq":2}],"cursor":"abc","hasMore":true}'
