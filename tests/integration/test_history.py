"""GET /events on the emulator: where a client starts, pages that always fit a response, events past
retention never served, refused cursors, and what maintenance reports. Events are stored straight
into the events table (stored_events.py) where a test needs many, or ones already past retention."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import pytest
from measurements import FIGURES
from realtime.events.cursor import decode, encode
from realtime_publisher import Publisher
from stored_events import write_events

pytestmark = pytest.mark.integration

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Reader:
    """GET /events as one user."""

    def __init__(self, http_url: str, token: str):
        self.url = f"{http_url}/events"
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, **params) -> httpx.Response:
        return httpx.get(self.url, params=params, headers=self.headers, timeout=40)

    def page(self, **params) -> dict:
        response = self.get(**params)
        assert response.status_code == 200, response.text
        return response.json()

    def all_pages(self, topic: str, **params) -> tuple[list[dict], list[httpx.Response]]:
        """Follow the cursor until hasMore is false: the topic's events and every response."""
        events, responses = [], []
        while True:
            response = self.get(**params)
            responses.append(response)
            assert response.status_code == 200, response.text
            page = response.json()
            events += [event for event in page["events"] if event["topic"] == topic]
            if not page["hasMore"]:
                return events, responses
            params = {**params, "cursor": page["cursor"]}


@pytest.fixture
def reader(stack, token):
    def make(user: str) -> Reader:
        return Reader(stack["http_api_url"], token(user))

    return make


def publish(stack, aws, user: str, count: int) -> list[str]:
    publisher = Publisher(stack["events_queue_url"], sqs_client=aws("sqs"))
    ids = [unique("evt") for _ in range(count)]
    for n, event_id in enumerate(ids):
        publisher.publish("test.history", {"n": n}, audience=[f"user:{user}"], id=event_id)
    return ids


def wait_for_seq(reader: Reader, topic: str, seq: int, timeout: float = 30) -> None:
    """Until the pipeline has stored `seq` on the topic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if decode(reader.page(since="now")["cursor"]).get(topic, 0) >= seq:
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic} never reached seq {seq}")


def test_since_now_is_the_head_and_history_is_read_only_on_request(stack, aws, events_table, reader):
    user = unique("hist")
    topic = f"user:{user}"
    stored = write_events(events_table, topic, 450)
    me = reader(user)

    head = me.page(since="now")
    ids = publish(stack, aws, user, 2)
    new = [event for event in me.page(cursor=head["cursor"], wait=20)["events"] if event["topic"] == topic]
    wait_for_seq(me, topic, 452)
    history, responses = me.all_pages(topic, limit=200)

    assert (head["events"], head["hasMore"]) == ([], False)
    assert decode(head["cursor"])[topic] == 450
    assert new[0]["seq"] == 451
    assert {event["id"] for event in new} <= set(ids)
    assert [event["seq"] for event in history] == list(range(1, 453))
    assert [event["id"] for event in history[:450]] == [event["id"] for event in stored]
    assert len(responses) == 3


def test_pages_of_large_events_stay_far_under_the_response_limit(events_table, reader):
    user = unique("big")
    topic = f"user:{user}"
    write_events(events_table, topic, 210, data={"blob": "x" * 32_000})  # just under the default data limit

    events, responses = reader(user).all_pages(topic, limit=200)

    assert [event["seq"] for event in events] == list(range(1, 211))
    assert {response.status_code for response in responses} == {200}
    sizes = [len(response.content) for response in responses]
    assert max(sizes) < 1.1 * 1024 * 1024 < LAMBDA_RESPONSE_LIMIT, sizes
    print(f"\n210 events of 32 KB, limit=200: {len(responses)} pages, largest {max(sizes)} bytes")


def test_events_past_retention_are_never_served_and_leave_no_gap(stack, aws, events_table, reader):
    user = unique("ttl")
    topic = f"user:{user}"
    past = int(time.time()) - 3600  # expired an hour ago; TTL deletes late (the emulator: never)
    write_events(events_table, topic, 2, expires_at=past)  # seqs 1, 2
    write_events(events_table, topic, 2)  # 3, 4
    write_events(events_table, topic, 1, expires_at=past)  # 5
    publish(stack, aws, user, 2)  # 6, 7 through the pipeline
    me = reader(user)
    wait_for_seq(me, topic, 7)

    from_start, _ = me.all_pages(topic)
    from_before_it, _ = me.all_pages(topic, cursor=encode({topic: 4}))
    all_expired_after = me.page(cursor=encode({topic: 4}), limit=1)

    assert [event["seq"] for event in from_start] == [3, 4, 6, 7]
    assert [event["seq"] for event in from_before_it] == [6, 7]
    # The position moves past expired events: the page's cursor is gapless for the client.
    assert [event["seq"] for event in all_expired_after["events"]] == [6]
    assert decode(all_expired_after["cursor"])[topic] == 6


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"t": {"user:{me}": 10**40}}, "invalid_cursor"),
        ({"t": {"user:{me}": -1}}, "invalid_cursor"),
        ({"t": {"user:{me}": 1.5}}, "invalid_cursor"),
        ({"t": {"user:{me}": 5}}, "invalid_cursor"),  # past the topic's last event
    ],
)
def test_out_of_range_cursor_positions_are_400(reader, params, code):
    user = unique("bad")
    positions = {topic.format(me=user): seq for topic, seq in params["t"].items()}
    cursor = base64.urlsafe_b64encode(json.dumps({"v": 1, "t": positions}).encode()).decode().rstrip("=")

    response = reader(user).get(cursor=cursor)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert "cursor position" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")}, "invalid_cursor"),
        ({"limit": "\u00b2"}, "invalid_limit"),
    ],
    ids=["a cursor nested 5000 deep", "a limit in Unicode digits"],
)
def test_bounded_parsing_hostile_queries_are_400_on_the_stack(reader, params, code):
    """Issue 20, finding 6: these were a 500 internal_error and a stack trace in the log."""
    response = reader(unique("hostile")).get(**params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_maintenance_reports_a_run_in_one_log_line(stack, aws, events_table):
    for _ in range(30):  # on topics of their own, so that they spread over the sampled segments
        write_events(events_table, f"user:{unique('old')}", 1, expires_at=int(time.time()) - 60)

    response = aws("lambda").invoke(FunctionName=stack["maintenance_function_name"], Payload=b"{}", LogType="Tail")

    summary = json.loads(response["Payload"].read())
    assert set(summary["table_items"]) == set(summary["expired_items"]) == {"events", "connections"}
    assert summary["table_items"]["events"] >= 30
    log = base64.b64decode(response.get("LogResult", "")).decode()
    lines = [line for line in log.splitlines() if '"Maintenance run finished"' in line]
    FIGURES.append(f"maintenance run: {lines[0] if lines else summary}")
