"""A burst on one topic from concurrent producers: stored gapless and exactly once, each event within seconds."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest
from measurements import FIGURES

pytestmark = pytest.mark.integration

PRODUCERS = 5
BATCHES_PER_PRODUCER = 10  # of 10 messages (SendMessageBatch's most): 500 events


def read_topic(http_url: str, token: str, topic: str) -> list[dict]:
    """The topic's events over GET /events, every page."""
    events, cursor = [], None
    with httpx.Client(timeout=40) as client:
        while True:
            params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
            response = client.get(f"{http_url}/events", params=params, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            page = response.json()
            events += [event for event in page["events"] if event["topic"] == topic]
            cursor = page["cursor"]
            if not page["hasMore"]:
                return events


def test_a_burst_on_one_topic_is_stored_gapless_exactly_once_and_never_waits_out_a_visibility_timeout(
    stack, aws, token
):
    user = f"burst-{uuid.uuid4().hex[:8]}"
    topic = f"user:{user}"
    sqs = aws("sqs")
    sent_at: dict[str, float] = {}

    def produce(producer: int) -> None:
        for batch in range(BATCHES_PER_PRODUCER):
            ids = [f"{user}-{producer}-{batch}-{n}" for n in range(10)]
            entries = [
                {"Id": str(n), "MessageBody": json.dumps({"type": "burst", "id": i, "data": {}, "audience": [topic]})}
                for n, i in enumerate(ids)
            ]
            now = time.time()
            sent_at.update(dict.fromkeys(ids, now))
            response = sqs.send_message_batch(QueueUrl=stack["events_queue_url"], Entries=entries)
            assert not response.get("Failed"), response["Failed"]

    started = time.time()
    with ThreadPoolExecutor(PRODUCERS) as pool:
        list(pool.map(produce, range(PRODUCERS)))
    expected = PRODUCERS * BATCHES_PER_PRODUCER * 10

    reader = token(user)
    deadline = started + 120
    while len(events := read_topic(stack["http_api_url"], reader, topic)) < expected and time.time() < deadline:
        time.sleep(1)

    assert sorted(event["id"] for event in events) == sorted(sent_at), "every event exactly once"
    assert [event["seq"] for event in events] == list(range(1, expected + 1)), "seqs 1..500, gapless, in order"
    stored_after = {
        event["id"]: datetime.fromisoformat(event["publishedAt"]).timestamp() - sent_at[event["id"]] for event in events
    }
    delays = sorted(stored_after.values())
    total = max(datetime.fromisoformat(e["publishedAt"]).timestamp() for e in events) - started
    FIGURES.append(
        f"burst of {expected} events on one topic from {PRODUCERS} producers in batches of 10: all stored "
        f"{total:.1f} s after the first send ({expected / total:.0f} events/s); publish to stored: median "
        f"{statistics.median(delays):.1f} s, slowest {delays[-1]:.1f} s"
    )
    # A record that waited out the events queue's visibility timeout (360 s) would be minutes late.
    assert delays[-1] < 60
