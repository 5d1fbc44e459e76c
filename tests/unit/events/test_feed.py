import json

import pytest
from realtime.core.contract import DEFAULT_PAGE_EVENTS as DEFAULT_READ_LIMIT
from realtime.core.errors import BadRequest
from realtime.events import cursor
from realtime.events.feed import MAX_TICK_SECONDS, EventFeed, FeedPage, FeedRequest
from realtime.events.models import Event, event_key
from realtime.events.store import EventStore
from stored_events import write_events

from ..support import dynamodb_calls


def test_defaults():
    request = FeedRequest.from_query(None)

    assert (request.positions, request.limit, request.wait_seconds, request.from_now) == (
        {},
        DEFAULT_READ_LIMIT,
        0.0,
        False,
    )


def test_parses_cursor_limit_wait_and_since():
    request = FeedRequest.from_query({"cursor": cursor.encode({"user:1": 4}), "limit": "10", "wait": "2.5"})
    from_now = FeedRequest.from_query({"since": "now"})

    assert (request.positions, request.limit, request.wait_seconds) == ({"user:1": 4}, 10, 2.5)
    assert from_now.from_now


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"cursor": "%%"}, "invalid_cursor"),
        ({"limit": "1.5"}, "invalid_limit"),
        ({"wait": "inf"}, "invalid_wait"),
        ({"since": "yesterday"}, "invalid_since"),
        ({"since": "now", "cursor": cursor.encode({"user:1": 4})}, "invalid_since"),
    ],
)
def test_bad_parameters(query, code):
    with pytest.raises(BadRequest) as caught:
        FeedRequest.from_query(query)

    assert caught.value.code == code


def test_page_json_splices_frames_verbatim():
    page = FeedPage(events=['{"seq":1}', '{"seq":2}'], cursor="abc", has_more=True)

    assert page.to_json() == '{"events":[{"seq":1},{"seq":2}],"cursor":"abc","hasMore":true}'


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def feed_on(events_table, clock=None):
    clock = clock or FakeTime()
    return EventFeed(EventStore(events_table), sleep=clock.sleep, monotonic=clock.monotonic)


def test_since_now_is_the_head_from_one_batch_get(events_table):
    write_events(events_table, "user:1", 3)
    write_events(events_table, "all", 2)
    calls = dynamodb_calls(events_table)

    page = feed_on(events_table).read(["user:1", "all", "group:quiet"], FeedRequest({}, from_now=True))

    assert (page.events, page.has_more) == ([], False)
    assert cursor.decode(page.cursor) == {"user:1": 3, "all": 2}
    assert [name for name, _ in calls] == ["BatchGetItem"]


def test_a_cursor_past_a_topics_last_event_is_refused(events_table):
    write_events(events_table, "user:1", 3)

    with pytest.raises(BadRequest, match="past its last event") as caught:
        feed_on(events_table).read(["user:1"], FeedRequest({"user:1": 4}))

    assert caught.value.code == "invalid_cursor"


@pytest.mark.parametrize("topic_count", [1, 10, 100])
def test_an_empty_long_poll_costs_the_same_whatever_the_number_of_topics(events_table, topic_count):
    topics = [f"group:g{n}" for n in range(topic_count)]
    for topic in topics:
        write_events(events_table, topic, 1)
    clock = FakeTime()
    calls = dynamodb_calls(events_table)

    page = feed_on(events_table, clock).read(topics, FeedRequest(dict.fromkeys(topics, 1), wait_seconds=20))

    assert page.events == []
    assert clock.now == 20
    # One BatchGetItem over the counters per tick, the tick backing off to a second; no Query at all.
    assert clock.sleeps[:3] == [0.25, 0.5, 1.0]
    assert max(clock.sleeps) == MAX_TICK_SECONDS
    assert {name for name, _ in calls} == {"BatchGetItem"}
    assert len(calls) == len(clock.sleeps) + 1 <= 25


def test_a_long_poll_queries_only_the_topic_that_moved(events_table):
    topics = [f"group:g{n}" for n in range(10)]
    for topic in topics:
        write_events(events_table, topic, 1)
    clock = FakeTime()
    calls = dynamodb_calls(events_table)

    def sleep_while_one_topic_moves(seconds):
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            write_events(events_table, "group:g7", 1)

    feed = EventFeed(EventStore(events_table), sleep=sleep_while_one_topic_moves, monotonic=clock.monotonic)
    page = feed.read(topics, FeedRequest(dict.fromkeys(topics, 1), wait_seconds=20))

    assert [event.count('"topic":"group:g7"') for event in page.events] == [1]
    assert cursor.decode(page.cursor)["group:g7"] == 2
    queries = [response for name, response in calls if name == "Query"]
    assert len(queries) == 1
    assert clock.now == 1.75


def test_events_stored_before_keys_are_served_without_one_beside_newer_ones(events_table):
    """Upgrade path of issue 20 finding 4: items the previous version wrote have no `key`; the page serves
    them as they are (clients dedupe those by id) next to items that have one."""
    old = write_events(events_table, "user:upgrade", 2)
    store = EventStore(events_table, 3600)
    new = Event(
        "e-new",
        "t",
        "user:upgrade",
        3,
        {},
        "2099-01-01T00:00:00.000Z",
        "2099-01-01T00:00:00.000Z",
        key=event_key("e-new"),
    )
    store.append("e-new", "user:upgrade", lambda seq: new.to_json(), event_type="t", published_at=new.published_at)

    page = json.loads(EventFeed(store).read(["user:upgrade"], FeedRequest(positions={})).to_json())

    assert [event.get("key") for event in page["events"]] == [None, None, event_key("e-new")]
    assert [event["id"] for event in page["events"]] == [old[0]["id"], old[1]["id"], "e-new"]
