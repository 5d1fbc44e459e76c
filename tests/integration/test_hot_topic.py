"""A hot topic on the emulator: many producers at once on one topic slow events down, they never lose
one or send one to the DLQ (docs/design.md, guarantee 3)."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from measurements import FIGURES
from realtime.core.encoding import parse_timestamp
from realtime.events.store import COUNTER_SEQ

from scripts.local.emulator import emulator_client

pytestmark = pytest.mark.integration

PRODUCERS = 10
EVENTS_PER_PRODUCER = 200
STORED_WITHIN = 300.0  # seconds; the retries' delays grow to 2 minutes at most


def test_2000_events_from_10_producers_on_one_topic_are_stored_gapless_once_and_none_in_the_dlq(stack, events_table):
    topic = f"group:hot-{uuid.uuid4().hex[:8]}"
    sent_at: dict[str, float] = {}
    lock = threading.Lock()

    def produce(producer: int) -> None:
        sqs = emulator_client(stack, "sqs")
        for start in range(0, EVENTS_PER_PRODUCER, 10):
            entries = []
            for n in range(start, start + 10):
                event_id = f"hot-{producer}-{n:04d}"
                body = {"type": "hot.tick", "id": event_id, "data": {"n": n}, "audience": [topic]}
                entries.append({"Id": str(n - start), "MessageBody": json.dumps(body)})
            now = time.time()
            response = sqs.send_message_batch(QueueUrl=stack["events_queue_url"], Entries=entries)
            assert not response.get("Failed"), response["Failed"]
            with lock:
                sent_at.update({json.loads(e["MessageBody"])["id"]: now for e in entries})

    started = time.time()
    with ThreadPoolExecutor(PRODUCERS) as producers:
        list(producers.map(produce, range(PRODUCERS)))
    published = PRODUCERS * EVENTS_PER_PRODUCER

    items: list[dict] = []
    deadline = time.monotonic() + STORED_WITHIN
    while time.monotonic() < deadline:
        counter = events_table.get_item(Key={"topic": topic, "seq": COUNTER_SEQ}, ConsistentRead=True).get("Item")
        if counter and int(counter["lastSeq"]) >= published:
            break
        time.sleep(1)
    query = {
        "KeyConditionExpression": "#topic = :topic AND #seq > :counter",
        "ExpressionAttributeNames": {"#topic": "topic", "#seq": "seq"},
        "ExpressionAttributeValues": {":topic": topic, ":counter": COUNTER_SEQ},
        "ConsistentRead": True,
    }
    while True:
        page = events_table.query(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    seqs = [int(item["seq"]) for item in items]
    ids = [json.loads(item["body"])["id"] for item in items]  # the item's own id is namespaced by producer
    assert seqs == list(range(1, len(items) + 1)), "seqs must be gapless from 1"
    assert len(ids) == len(set(ids)), "an event stored twice"
    assert set(ids) == set(sent_at), f"{len(set(sent_at) - set(ids))} of {published} events not stored"

    sqs = emulator_client(stack, "sqs")
    dead: dict[str, str] = {}
    for _ in range(5):  # other tests' dead letters may be there too: look at all of them
        received = sqs.receive_message(QueueUrl=stack["dlq_url"], MaxNumberOfMessages=10, VisibilityTimeout=0)
        dead.update({m["MessageId"]: m["Body"] for m in received.get("Messages", [])})
    ours = [body for body in dead.values() if topic in body]
    assert ours == [], "a valid event of the hot topic reached the DLQ"

    delays = sorted(parse_timestamp(item["publishedAt"]) - sent_at[i] for item, i in zip(items, ids, strict=True))
    last = max(parse_timestamp(item["publishedAt"]) for item in items)
    FIGURES.append(
        f"hot topic: {published} events from {PRODUCERS} producers on one topic stored gapless, once, none in the DLQ "
        f"in {last - started:.1f} s ({published / (last - started):.0f} events/s); send to store median "
        f"{statistics.median(delays):.2f} s, slowest {delays[-1]:.2f} s"
    )
