import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.client
import pytest
from realtime.events.store import EventStore, StoreContentionError
from stored_events import write_events

from ..support import REGION, dynamodb_calls

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


def test_a_page_stops_at_its_byte_limit_but_always_holds_one_event(store):
    for n in range(4):
        store.append(f"e{n}", "user:1", lambda seq: "x" * 400, event_type="t", published_at=f"{n:02d}")

    capped = store.read_after(["user:1"], {}, limit=10, max_bytes=1000)
    single = store.read_after(["user:1"], {}, limit=10, max_bytes=100)

    assert ([e.seq for e in capped.events], capped.positions, capped.has_more) == ([1, 2], {"user:1": 2}, True)
    assert ([e.seq for e in single.events], single.has_more) == ([1], True)


def test_read_after_pages_through_large_items(store):
    # Bodies near 100 KB make a single Query stop at DynamoDB's 1 MB page size.
    for n in range(12):
        store.append(f"big{n}", "user:1", lambda seq: "x" * 100_000, event_type="t", published_at=f"{n:02d}")

    result = store.read_after(["user:1"], {}, limit=11, max_bytes=2_000_000)

    assert [e.seq for e in result.events] == list(range(1, 12))
    assert result.has_more


def test_heads_are_each_topics_last_seq(store):
    append(store, "a", "user:1")
    append(store, "b", "user:1")
    append(store, "c", "all")

    assert store.heads(["user:1", "all", "group:new"]) == {"user:1": 2, "all": 1, "group:new": 0}


# --- retention: items past expiresAt are never served, whenever TTL deletes them ------------


@pytest.fixture
def expired_store(events_table):
    """Appends events that expired an hour ago (TTL has not deleted them yet)."""
    return EventStore(events_table, RETENTION, clock=lambda: time.time() - RETENTION - 3600)


def test_reads_skip_expired_events_and_move_past_them(store, expired_store):
    for event_id in ("old1", "old2"):
        append(expired_store, event_id)
    append(store, "fresh3")
    append(expired_store, "old4")
    append(store, "fresh5")

    from_start = store.read_after(["user:1"], {})
    from_cursor = store.read_after(["user:1"], {"user:1": 3})

    assert [e.seq for e in from_start.events] == [3, 5]
    assert [e.seq for e in from_cursor.events] == [5]
    assert from_start.positions == from_cursor.positions == {"user:1": 5}
    assert store.get_body("user:1", 4) is None


def test_a_topic_whose_remaining_events_all_expired_moves_to_its_head(store, expired_store):
    append(store, "fresh1")
    append(expired_store, "old2")
    append(expired_store, "old3")

    result = store.read_after(["user:1"], {"user:1": 1})

    assert (result.events, result.positions, result.has_more) == ([], {"user:1": 3}, False)


def test_a_page_waits_for_nothing_behind_many_expired_events(store, expired_store, events_table):
    for n in range(40):
        append(expired_store, f"old{n}")
    append(store, "fresh")
    calls = dynamodb_calls(events_table)

    result = store.read_after(["user:1"], {}, limit=1)

    assert [e.seq for e in result.events] == [41]
    # Past retention's leftovers in doubling steps: 1 + 2 + ... + 32 seqs.
    assert len([name for name, _ in calls if name == "Query"]) <= 6


# --- cost: only what the page needs -----------------------------------------------------


def test_only_topics_that_moved_are_queried(store, events_table):
    append(store, "a", "user:1")
    append(store, "b", "group:ops")
    calls = dynamodb_calls(events_table)

    result = store.read_after(["user:1", "group:ops", "all"], {"user:1": 1})

    assert [(e.topic, e.seq) for e in result.events] == [("group:ops", 1)]
    assert [name for name, _ in calls] == ["BatchGetItem", "Query"]


def test_a_page_over_many_topics_reads_little_more_than_it_returns(store, events_table):
    topics = [f"group:g{n}" for n in range(100)]
    for topic in topics:
        write_events(events_table, topic, 5)
    calls = dynamodb_calls(events_table)

    result = store.read_after(topics, {}, limit=200)

    items_read = sum(response["ScannedCount"] for name, response in calls if name == "Query")
    assert len(result.events) == 200
    assert items_read <= 2 * 200, f"{items_read} items read for a page of 200 (limit + 1 per topic: 20,100)"
