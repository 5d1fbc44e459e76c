import base64
import json
import logging
import time

import msgspec
import pytest
from realtime import services
from realtime.events import cursor
from realtime.events.feed import EventFeed
from realtime.events.store import EventStore
from realtime.handlers import events_api

from ..support import http_event, make_token


@pytest.fixture
def store(events_table, hs256_token_mode):
    return EventStore(events_table, 3600)


def use_feed(monkeypatch, feed):
    """events-api as deployed, but reading through `feed` (a fake clock and sleep)."""
    deployed = services.events_api()
    monkeypatch.setattr(services, "events_api", lambda: msgspec.structs.replace(deployed, feed=feed))


def publish(store, event_id, topic, published_at):
    def body(seq):
        return json.dumps({"id": event_id, "topic": topic, "seq": seq, "publishedAt": published_at})

    return store.append(event_id, topic, body, event_type="t", published_at=published_at)


def get(context, token=None, **query):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = events_api.handler(http_event(headers=headers, query=query or None), context)
    return response["statusCode"], json.loads(response["body"]), response


def test_returns_the_callers_events_oldest_first(store, lambda_context):
    publish(store, "e1", "user:42", "2026-01-01T00:00:01.000Z")
    publish(store, "e2", "group:ops", "2026-01-01T00:00:02.000Z")
    publish(store, "e3", "all", "2026-01-01T00:00:03.000Z")

    status, body, response = get(lambda_context, make_token("42", groups=["ops"]))

    assert status == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert [e["id"] for e in body["events"]] == ["e1", "e2", "e3"]
    assert body["hasMore"] is False
    assert cursor.decode(body["cursor"]) == {"user:42": 1, "group:ops": 1, "all": 1}


def test_only_the_callers_own_topics(store, lambda_context):
    publish(store, "mine", "user:42", "2026-01-01T00:00:01.000Z")
    publish(store, "theirs", "user:7", "2026-01-01T00:00:02.000Z")
    publish(store, "secret", "group:admins", "2026-01-01T00:00:03.000Z")
    # Even a cursor naming someone else's topic does not open it.
    foreign_cursor = cursor.encode({"user:7": 0, "group:admins": 0})

    _, body, _ = get(lambda_context, make_token("42"), cursor=foreign_cursor)

    assert [e["id"] for e in body["events"]] == ["mine"]


def test_paging_with_the_cursor(store, lambda_context):
    for n in range(5):
        publish(store, f"e{n}", "user:42", f"2026-01-01T00:00:0{n}.000Z")
    token = make_token("42")

    _, first, _ = get(lambda_context, token, limit="2")
    _, second, _ = get(lambda_context, token, limit="2", cursor=first["cursor"])
    _, third, _ = get(lambda_context, token, limit="2", cursor=second["cursor"])
    _, empty, _ = get(lambda_context, token, limit="2", cursor=third["cursor"])

    pages = [[e["id"] for e in page["events"]] for page in (first, second, third, empty)]
    assert pages == [["e0", "e1"], ["e2", "e3"], ["e4"], []]
    assert [page["hasMore"] for page in (first, second, third, empty)] == [True, True, False, False]
    assert empty["cursor"] == third["cursor"]


def test_events_are_the_stored_frames_verbatim(store, lambda_context):
    publish(store, "e1", "user:42", "2026-01-01T00:00:01.000Z")

    response = events_api.handler(http_event(headers={"authorization": f"Bearer {make_token('42')}"}), lambda_context)

    stored = store.read_after(["user:42"], {}).events[0].body
    assert response["body"].startswith('{"events":[' + stored + "]")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"cursor": "garbage!"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "201"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"limit": "-1"}, "invalid_limit"),
        ({"wait": "21"}, "invalid_wait"),
        ({"wait": "-1"}, "invalid_wait"),
        ({"wait": "nan"}, "invalid_wait"),
        ({"wait": "soon"}, "invalid_wait"),
    ],
)
def test_bad_input_is_400(store, lambda_context, query, code):
    status, body, _ = get(lambda_context, make_token("42"), **query)

    assert status == 400
    assert body["error"]["code"] == code
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("positions", "problem"),
    [
        ({"user:42": 10**40}, "must be an integer from 0 to 9007199254740991"),
        ({"user:42": -1}, "must be an integer from 0 to"),
        ({"user:42": 1.5}, "must be an integer from 0 to"),
        ({"user:42": 5}, "past its last event"),
    ],
)
def test_out_of_range_cursor_positions_are_400(store, lambda_context, positions, problem):
    publish(store, "e1", "user:42", "2026-01-01T00:00:01.000Z")
    raw = base64.urlsafe_b64encode(json.dumps({"v": 1, "t": positions}).encode()).decode().rstrip("=")

    status, body, _ = get(lambda_context, make_token("42"), cursor=raw)

    assert (status, body["error"]["code"]) == (400, "invalid_cursor")
    assert problem in body["error"]["message"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")}, "invalid_cursor"),
        ({"limit": "\u00b2"}, "invalid_limit"),
        ({"limit": "9" * 5000}, "invalid_limit"),
    ],
    ids=["a cursor nested 5000 deep", "a limit in Unicode digits", "a limit 5000 digits long"],
)
def test_bounded_parsing_a_hostile_query_is_a_400_and_one_log_line(store, lambda_context, caplog, query, code):
    """Issue 20, finding 6: these were a 500 internal_error with a multi-KB stack trace in the log."""
    caplog.set_level(logging.INFO)

    status, body, _ = get(lambda_context, make_token("42"), **query)

    assert (status, body["error"]["code"]) == (400, code)
    [logged] = [record for record in caplog.records if record.levelno >= logging.INFO]
    assert (logged.getMessage(), logged.reason, logged.exc_info) == ("Request refused", code, None)


def test_since_now_answers_the_head_without_events(store, lambda_context):
    publish(store, "e1", "user:42", "2026-01-01T00:00:01.000Z")
    publish(store, "e2", "user:42", "2026-01-01T00:00:02.000Z")

    status, body, _ = get(lambda_context, make_token("42"), since="now")
    _, after, _ = get(lambda_context, make_token("42"), cursor=body["cursor"])
    publish(store, "e3", "user:42", "2026-01-01T00:00:03.000Z")
    _, later, _ = get(lambda_context, make_token("42"), cursor=body["cursor"])

    assert (status, body["events"], body["hasMore"]) == (200, [], False)
    assert cursor.decode(body["cursor"]) == {"user:42": 2}
    assert after["events"] == []
    assert [e["id"] for e in later["events"]] == ["e3"]


@pytest.mark.parametrize("limit", ["1", "200"])
def test_limit_bounds_are_accepted(store, lambda_context, limit):
    status, _, _ = get(lambda_context, make_token("42"), limit=limit)

    assert status == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "missing_token"),
        ({"authorization": "Bearer "}, "missing_token"),
        ({"authorization": "Bearer not-a-token"}, "invalid_token"),
        ({"authorization": f"Bearer {make_token('42', expires_in=-120)}"}, "token_expired"),
        (
            {"authorization": f"Bearer {make_token('42', key='wrong-secret-but-long-enough-0123456789')}"},
            "invalid_token",
        ),
    ],
)
def test_missing_or_invalid_token_is_401(store, lambda_context, headers, code):
    response = events_api.handler(http_event(headers=headers), lambda_context)

    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == code
    assert response["headers"]["WWW-Authenticate"].startswith("Bearer")


def test_bearer_scheme_is_case_insensitive(store, lambda_context):
    response = events_api.handler(http_event(headers={"Authorization": f"bearer {make_token('42')}"}), lambda_context)

    assert response["statusCode"] == 200


def test_unknown_route_is_404(store, lambda_context):
    response = events_api.handler(http_event(path="/nope"), lambda_context)

    assert response["statusCode"] == 404
    assert json.loads(response["body"])["error"]["code"] == "not_found"


def test_unexpected_failure_is_a_json_500(store, lambda_context, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(EventStore, "read_after", broken)

    status, body, _ = get(lambda_context, make_token("42"))

    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": "the request could not be served; try again"}}


# --- long polling (kept short: a fake sleep does the waiting) --------------------------


def test_wait_returns_as_soon_as_an_event_arrives(store, lambda_context, monkeypatch):
    sleeps = []

    def sleep_while_an_event_is_published(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            publish(store, "late", "user:42", "2026-01-01T00:00:09.000Z")

    feed = EventFeed(store, sleep=sleep_while_an_event_is_published)
    use_feed(monkeypatch, feed)

    started = time.monotonic()
    _, body, _ = get(lambda_context, make_token("42"), wait="20")

    assert [e["id"] for e in body["events"]] == ["late"]
    assert sleeps == [0.25, 0.5]
    assert time.monotonic() - started < 5


def test_wait_gives_up_when_time_is_up(store, lambda_context):
    started = time.monotonic()
    _, body, _ = get(lambda_context, make_token("42"), wait="0.2")

    assert body["events"] == []
    assert 0.2 <= time.monotonic() - started < 2


def test_wait_never_outlasts_the_lambda(store, lambda_context):
    lambda_context.remaining_millis = int((events_api.RESPONSE_MARGIN_SECONDS + 0.2) * 1000)

    started = time.monotonic()
    _, body, _ = get(lambda_context, make_token("42"), wait="20")

    assert body["events"] == []
    assert time.monotonic() - started < 1.5


def test_without_wait_there_is_no_polling(store, lambda_context, monkeypatch):
    def no_sleep(_seconds):
        raise AssertionError("must not wait")

    use_feed(monkeypatch, EventFeed(store, sleep=no_sleep))

    status, body, _ = get(lambda_context, make_token("42"))

    assert (status, body["events"]) == (200, [])


def test_a_token_granting_more_topics_than_allowed_is_refused(store, lambda_context, monkeypatch):
    monkeypatch.setenv("MAX_TOPICS_PER_TOKEN", "3")

    status, body, response = get(lambda_context, make_token("42", groups=["a", "b"]))

    assert (status, body["error"]["code"]) == (401, "invalid_token")
    assert response["headers"]["WWW-Authenticate"].startswith("Bearer")
    assert get(lambda_context, make_token("42", groups=["a"]))[0] == 200
