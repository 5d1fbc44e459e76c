import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.client
import pytest
from realtime.events.store import EventStore, StoreContentionError

from ..support import REGION

RETENTION = 3600


@pytest.fixture
def store(events_table):
    return EventStore(events_table, RETENTION, sleep=lambda _seconds: None)


def body_for(event_id, topic, published_at="2026-01-01T00:00:00.000Z"):
    return lambda seq: f'{{"id":"{event_id}","topic":"{topic}","seq":{seq},"publishedAt":"{published_at}"}}'


def append(store, event_id, topic="user:1", published_at="2026-01-01T00:00:00.000Z"):
    return store.append(
        event_id, topic, body_for(event_id, topic, published_at), event_type="t", published_at=published_at
    )


def test_two_ids_get_seqs_1_and_2(store):
    assert append(store, "a") == (1, True)
    assert append(store, "b") == (2, True)
    assert store.last_seq("user:1") == 2


def test_same_id_twice_is_stored_once(store):
    assert append(store, "a") == (1, True)
    assert append(store, "a") == (1, False)
    assert append(store, "b") == (2, True)


def test_topics_count_independently(store):
    assert append(store, "a", "user:1") == (1, True)
    assert append(store, "a", "group:ops") == (1, True)
    assert append(store, "b", "group:ops") == (2, True)


def test_stored_item_layout(store, events_table):
    append(store, "a")

    event = events_table.get_item(Key={"topic": "user:1", "seq": 1})["Item"]
    counter = events_table.get_item(Key={"topic": "user:1", "seq": 0})["Item"]
    dedup = events_table.get_item(Key={"topic": "dedup#user:1#a", "seq": 0})["Item"]
    assert event["id"] == "a"
    assert event["type"] == "t"
    assert event["body"] == body_for("a", "user:1")(1)
    assert event["expiresAt"] > 0
    assert counter["lastSeq"] == 1
    assert "expiresAt" not in counter  # seq must never restart after retention
    assert dedup["assignedSeq"] == 1
    assert dedup["expiresAt"] == event["expiresAt"]
    assert store.get_body("user:1", 1) == event["body"]
    assert store.get_body("user:1", 99) is None


def test_lost_counter_race_is_retried(store, events_table):
    rival = EventStore(events_table, RETENTION)
    read_last_seq = store._last_seq
    raced = []

    def last_seq_then_rival_writes(topic):
        value = read_last_seq(topic)
        if not raced:
            raced.append(True)
            append(rival, "rival", topic)  # takes the seq we are about to claim
        return value

    store._last_seq = last_seq_then_rival_writes

    assert append(store, "mine") == (2, True)
    assert rival.get_body("user:1", 1) == body_for("rival", "user:1")(1)


def test_concurrent_duplicate_reuses_the_assigned_seq(store, events_table):
    other_delivery = EventStore(events_table, RETENTION)
    read_last_seq = store._last_seq

    def last_seq_then_duplicate_stored(topic):
        value = read_last_seq(topic)
        append(other_delivery, "same-id", topic)
        return value

    store._last_seq = last_seq_then_duplicate_stored

    assert append(store, "same-id") == (1, False)
    assert store.last_seq("user:1") == 1


def test_endless_contention_gives_up_with_a_retryable_error(events_table):
    store = EventStore(events_table, RETENTION, sleep=lambda _seconds: None, max_attempts=3)
    rival = EventStore(events_table, RETENTION)
    read_last_seq = store._last_seq
    rivals = iter(range(100))

    def always_overtaken(topic):
        value = read_last_seq(topic)
        append(rival, f"rival-{next(rivals)}", topic)
        return value

    store._last_seq = always_overtaken

    with pytest.raises(StoreContentionError, match="after 3 attempts"):
        append(store, "mine")


def test_concurrent_writers_get_unique_gapless_seqs(events_table, monkeypatch):
    # DynamoDB applies each request atomically; serializing moto's API calls models exactly that,
    # while the threads still interleave between reading the counter and writing.
    lock = threading.Lock()
    make_api_call = botocore.client.BaseClient._make_api_call

    def atomic_api_call(self, operation, params):
        with lock:
            response = make_api_call(self, operation, params)
        time.sleep(0.001)  # let another writer in between our read and our write
        return response

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", atomic_api_call)

    def writer(worker):
        table = boto3.session.Session().resource("dynamodb", region_name=REGION).Table(events_table.name)
        store = EventStore(table, RETENTION)
        # Each worker also re-sends one shared id: it must be stored exactly once.
        ids = ["shared"] + [f"w{worker}-{n}" for n in range(5)]
        return [append(store, event_id) for event_id in ids]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [result for batch in pool.map(writer, range(6)) for result in batch]

    created = sorted(seq for seq, was_created in results if was_created)
    assert created == list(range(1, 32))  # 30 distinct ids + "shared" once
    shared = {seq for seq, _ in results[0::6]}
    assert len(shared) == 1


# --- read_after ---------------------------------------------------------------


def test_read_after_merges_topics_oldest_first_and_pages_with_positions(store):
    append(store, "a1", "user:1", "2026-01-01T00:00:01.000Z")
    append(store, "g1", "group:ops", "2026-01-01T00:00:02.000Z")
    append(store, "a2", "user:1", "2026-01-01T00:00:03.000Z")
    append(store, "g2", "group:ops", "2026-01-01T00:00:04.000Z")
    append(store, "x1", "user:2", "2026-01-01T00:00:00.000Z")  # not requested

    first = store.read_after(["user:1", "group:ops"], {}, limit=3)
    assert [(e.topic, e.seq) for e in first.events] == [("user:1", 1), ("group:ops", 1), ("user:1", 2)]
    assert first.positions == {"user:1": 2, "group:ops": 1}
    assert first.has_more

    second = store.read_after(["user:1", "group:ops"], first.positions, limit=3)
    assert [(e.topic, e.seq) for e in second.events] == [("group:ops", 2)]
    assert second.positions == {"user:1": 2, "group:ops": 2}
    assert not second.has_more

    third = store.read_after(["user:1", "group:ops"], second.positions, limit=3)
    assert third.events == []
    assert third.positions == second.positions
    assert not third.has_more


def test_read_after_keeps_seq_order_within_a_topic(store):
    # Two processors may publish out of clock order; a topic must still read 1, 2.
    append(store, "late", "user:1", "2026-01-01T00:00:05.000Z")
    append(store, "early", "user:1", "2026-01-01T00:00:01.000Z")
    append(store, "mid", "all", "2026-01-01T00:00:03.000Z")

    result = store.read_after(["user:1", "all"], {}, limit=10)

    user_seqs = [e.seq for e in result.events if e.topic == "user:1"]
    assert user_seqs == [1, 2]


def test_read_after_exact_limit_has_no_more(store):
    for n in range(3):
        append(store, f"e{n}")

    result = store.read_after(["user:1"], {}, limit=3)

    assert len(result.events) == 3
    assert not result.has_more


def test_read_after_bodies_are_stored_frames(store):
    append(store, "a")

    (event,) = store.read_after(["user:1"], {"user:1": 0}).events

    assert event.body == body_for("a", "user:1")(1)


@pytest.mark.parametrize("limit", [0, 201])
def test_read_after_limit_bounds(store, limit):
    with pytest.raises(ValueError, match="limit"):
        store.read_after(["user:1"], {}, limit=limit)


def test_read_after_pages_through_large_items(store):
    # Bodies near 100 KB make a single Query stop at DynamoDB's 1 MB page size.
    for n in range(12):
        store.append(f"big{n}", "user:1", lambda seq: "x" * 100_000, event_type="t", published_at=f"{n:02d}")

    result = store.read_after(["user:1"], {}, limit=11)

    assert [e.seq for e in result.events] == list(range(1, 12))
    assert result.has_more
