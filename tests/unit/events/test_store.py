import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from realtime.events.models import EventRef, event_key
from realtime.events.store import EventStore, NewEvent, StoreContentionError
from stored_events import write_events

from ..fake_dynamodb import FakeDynamoDB
from ..support import REGION, client_error, dynamodb_calls

RETENTION = 3600
PUBLISHED = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def store(events_table):
    return EventStore(events_table, RETENTION, sleep=lambda _seconds: None)


@pytest.fixture(params=["moto", "fake"])
def events_backend(request):
    """The events table on moto and on the in-memory fake: the write path must behave the same on both."""
    if request.param == "moto":
        return request.getfixturevalue("events_table")
    return FakeDynamoDB().create_table("events", "topic", "seq")


def body_for(event_id, topic, published_at=PUBLISHED):
    return lambda seq: f'{{"id":"{event_id}","topic":"{topic}","seq":{seq},"publishedAt":"{published_at}"}}'


def append(store, event_id, topic="user:1", published_at=PUBLISHED):
    return store.append(
        event_id, topic, body_for(event_id, topic, published_at), event_type="t", published_at=published_at
    )


def new_event(event_id, topic="user:1"):
    return NewEvent(topic, event_id, "t", lambda seq, at: f'{{"id":"{event_id}","seq":{seq},"publishedAt":"{at}"}}')


def seqs(result):
    return {key: (found.seq, found.created) for key, found in result.stored.items()}


def stored_ids(table, topic):
    """(seq, id) of the events stored on a topic, and its counter."""
    items = table.query(KeyConditionExpression="topic = :t", ExpressionAttributeValues={":t": topic})["Items"]
    counter = next((int(i["lastSeq"]) for i in items if int(i["seq"]) == 0), 0)
    return sorted((int(i["seq"]), i["id"]) for i in items if int(i["seq"]) > 0), counter


def test_two_ids_get_seqs_1_and_2(store):
    assert append(store, "a")[:2] == (1, True)
    assert append(store, "b")[:2] == (2, True)
    assert store.last_seq("user:1") == 2


def test_same_id_twice_is_stored_once(store):
    first = append(store, "a", published_at="2026-01-01T00:00:01.000Z")
    again = append(store, "a", published_at="2026-01-01T00:00:09.000Z")

    assert first == (1, True, "2026-01-01T00:00:01.000Z")
    assert again == (1, False, "2026-01-01T00:00:01.000Z")  # when it was first stored
    assert append(store, "b")[:2] == (2, True)


def test_topics_count_independently(store):
    assert append(store, "a", "user:1")[:2] == (1, True)
    assert append(store, "a", "group:ops")[:2] == (1, True)
    assert append(store, "b", "group:ops")[:2] == (2, True)


def test_stored_item_layout(store, events_table):
    append(store, "a")

    event = events_table.get_item(Key={"topic": "user:1", "seq": 1})["Item"]
    counter = events_table.get_item(Key={"topic": "user:1", "seq": 0})["Item"]
    dedup = events_table.get_item(Key={"topic": "dedup#user:1#a", "seq": 0})["Item"]
    assert event["id"] == "a"
    assert event["type"] == "t"
    assert event["body"] == body_for("a", "user:1")(1)
    assert event["publishedAt"] == PUBLISHED
    assert event["expiresAt"] > 0
    assert counter["lastSeq"] == 1
    assert "expiresAt" not in counter  # seq must never restart after retention
    assert dedup["assignedSeq"] == 1
    assert dedup["publishedAt"] == PUBLISHED
    assert dedup["expiresAt"] == event["expiresAt"]


def test_a_batch_on_one_topic_is_one_read_and_one_transaction(events_table):
    calls = []
    events_table.meta.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    store = EventStore(events_table, RETENTION)

    result = store.append_batch([new_event(f"e{n}") for n in range(10)], PUBLISHED)

    assert calls == ["BatchGetItem", "TransactWriteItems"]
    assert seqs(result) == {("user:1", f"e{n}"): (n + 1, True) for n in range(10)}
    assert stored_ids(events_table, "user:1") == ([(n + 1, f"e{n}") for n in range(10)], 10)


def operations(table):
    calls = []
    table.meta.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_a_container_that_is_a_topics_only_writer_stores_its_next_batch_in_one_transaction(events_table):
    store = EventStore(events_table, RETENTION)
    store.append_batch([new_event("a")], PUBLISHED)  # read, write: the counter is now this container's
    store.append_batch([new_event("b")], PUBLISHED)  # read: nobody else wrote in between
    calls = operations(events_table)

    result = store.append_batch([new_event("c"), new_event("d")], PUBLISHED)

    assert calls == ["TransactWriteItems"]
    assert seqs(result) == {("user:1", "c"): (3, True), ("user:1", "d"): (4, True)}
    assert stored_ids(events_table, "user:1") == ([(1, "a"), (2, "b"), (3, "c"), (4, "d")], 4)


def test_a_guess_another_writer_made_stale_is_read_and_retried_without_backing_off(events_table):
    slept = []
    store = EventStore(events_table, RETENTION, sleep=slept.append)
    store.append_batch([new_event("a")], PUBLISHED)
    store.append_batch([new_event("b")], PUBLISHED)
    EventStore(events_table, RETENTION).append_batch([new_event("rival")], PUBLISHED)  # another container
    calls = operations(events_table)

    result = store.append_batch([new_event("c")], PUBLISHED)

    assert calls == ["TransactWriteItems", "BatchGetItem", "TransactWriteItems"]
    assert slept == []  # a stale guess is not contention
    assert seqs(result) == {("user:1", "c"): (4, True)}
    assert stored_ids(events_table, "user:1") == ([(1, "a"), (2, "b"), (3, "rival"), (4, "c")], 4)
    calls.clear()
    store.append_batch([new_event("d")], PUBLISHED)
    assert calls == ["BatchGetItem", "TransactWriteItems"]  # it guesses again only once it is alone again


def test_a_redelivered_event_under_a_guess_keeps_its_seq_and_is_not_stored_twice(events_table):
    store = EventStore(events_table, RETENTION)
    store.append_batch([new_event("a")], PUBLISHED)
    store.append_batch([new_event("b")], PUBLISHED)

    result = store.append_batch([new_event("b"), new_event("c")], "2026-01-01T00:00:09.000Z")

    assert seqs(result) == {("user:1", "b"): (2, False), ("user:1", "c"): (3, True)}
    assert result.stored[("user:1", "b")].published_at == PUBLISHED
    assert stored_ids(events_table, "user:1") == ([(1, "a"), (2, "b"), (3, "c")], 3)


def test_a_batch_with_an_event_told_to_two_topics_always_reads_first(events_table):
    # Its idempotency record on one topic dates it on the other: only a read finds it.
    store = EventStore(events_table, RETENTION)
    for event_id in ("a", "b"):
        store.append_batch([new_event(event_id, "user:1"), new_event(f"{event_id}-2", "group:ops")], PUBLISHED)
    calls = operations(events_table)

    store.append_batch([new_event("c", "user:1"), new_event("c", "group:ops")], PUBLISHED)

    assert calls[0] == "BatchGetItem"


def test_a_batchs_topics_are_stored_side_by_side(events_table):
    in_flight, most = [], []
    client = events_table.meta.client
    transact = client.transact_write_items

    def slow_transaction(**request):
        in_flight.append(1)
        most.append(len(in_flight))
        time.sleep(0.05)
        try:
            return transact(**request)
        finally:
            in_flight.pop()

    client.transact_write_items = slow_transaction
    store = EventStore(events_table, RETENTION)

    result = store.append_batch([new_event(f"e{n}", f"group:g{n}") for n in range(5)], PUBLISHED)

    assert not result.failed
    assert seqs(result) == {(f"group:g{n}", f"e{n}"): (1, True) for n in range(5)}
    assert max(most) > 1


def test_a_topic_with_more_than_49_new_events_takes_a_transaction_per_49(events_backend):
    store = EventStore(events_backend, RETENTION)

    result = store.append_batch([new_event(f"e{n:03}") for n in range(120)], PUBLISHED)

    assert not result.failed
    assert stored_ids(events_backend, "user:1") == ([(n + 1, f"e{n:03}") for n in range(120)], 120)


def test_a_batch_stores_each_topic_and_an_id_once_per_topic(events_backend):
    store = EventStore(events_backend, RETENTION)
    append(store, "old", "group:ops")

    result = store.append_batch(
        [
            new_event("x", "user:1"),
            new_event("x", "group:ops"),
            new_event("x", "user:1"),
            new_event("old", "group:ops"),
        ],
        PUBLISHED,
    )

    assert seqs(result) == {("user:1", "x"): (1, True), ("group:ops", "x"): (2, True), ("group:ops", "old"): (1, False)}


def test_an_event_stored_on_some_topics_keeps_its_first_published_at_on_the_others(events_backend):
    store = EventStore(events_backend, RETENTION)
    append(store, "x", "user:1", published_at="2026-01-01T00:00:01.000Z")

    result = store.append_batch([new_event("x", "user:1"), new_event("x", "group:ops")], "2026-01-01T00:00:09.000Z")

    assert {key: found.published_at for key, found in result.stored.items()} == {
        ("user:1", "x"): "2026-01-01T00:00:01.000Z",
        ("group:ops", "x"): "2026-01-01T00:00:01.000Z",
    }
    assert result.stored[("group:ops", "x")].created


def rival_after_first_read(store, rival_events):
    """Make another writer store `rival_events` right after `store` has read the counters (once)."""
    read = store._read
    rival = EventStore(store._table, RETENTION)
    pending = list(rival_events)

    def read_then_rival_writes(*args):
        found = read(*args)
        if pending:
            rival.append_batch(pending, PUBLISHED)
            pending.clear()
        return found

    store._read = read_then_rival_writes


def test_a_lost_counter_race_is_retried_with_the_counter_read_again(events_backend):
    store = EventStore(events_backend, RETENTION, sleep=lambda _seconds: None)
    rival_after_first_read(store, [new_event("rival")])

    result = store.append_batch([new_event("mine"), new_event("mine-too")], PUBLISHED)

    assert seqs(result) == {("user:1", "mine"): (2, True), ("user:1", "mine-too"): (3, True)}
    assert stored_ids(events_backend, "user:1") == ([(1, "rival"), (2, "mine"), (3, "mine-too")], 3)


def test_an_event_another_delivery_stored_meanwhile_keeps_its_seq_and_the_rest_follow(events_backend):
    # The cancelled transaction names the idempotency record that exists: that event leaves the chunk.
    store = EventStore(events_backend, RETENTION, sleep=lambda _seconds: None)
    rival_after_first_read(store, [new_event("b")])

    result = store.append_batch([new_event("a"), new_event("b"), new_event("c")], PUBLISHED)

    assert seqs(result) == {("user:1", "b"): (1, False), ("user:1", "a"): (2, True), ("user:1", "c"): (3, True)}
    assert stored_ids(events_backend, "user:1") == ([(1, "b"), (2, "a"), (3, "c")], 3)


def test_endless_contention_fails_that_topic_only(events_backend):
    store = EventStore(events_backend, RETENTION, sleep=lambda _seconds: None, max_attempts=3)
    rival = EventStore(events_backend, RETENTION)
    read = store._read
    rivals = iter(range(100))

    def always_overtaken(event_ids):
        found = read(event_ids)
        if "user:1" in event_ids:
            rival.append_batch([new_event(f"rival-{next(rivals)}")], PUBLISHED)
        return found

    store._read = always_overtaken

    result = store.append_batch([new_event("mine", "user:1"), new_event("mine", "group:ops")], PUBLISHED)

    assert isinstance(result.failed["user:1"], StoreContentionError)
    assert "after 3 attempts" in str(result.failed["user:1"])
    assert seqs(result) == {("group:ops", "mine"): (1, True)}


def test_other_errors_fail_their_topic_without_retrying(events_backend, monkeypatch):
    store = EventStore(events_backend, RETENTION, sleep=lambda _seconds: None)
    client = events_backend.meta.client
    transact = client.transact_write_items
    attempts = []

    def throttled_on_user_1(**request):
        if request["TransactItems"][0]["Update"]["Key"]["topic"] == "user:1":
            attempts.append(1)
            raise client_error("ThrottlingException", 400, "TransactWriteItems")
        return transact(**request)

    monkeypatch.setattr(client, "transact_write_items", throttled_on_user_1)

    result = store.append_batch([new_event("a", "user:1"), new_event("a", "group:ops")], PUBLISHED)

    assert list(result.failed) == ["user:1"]
    assert len(attempts) == 1
    assert seqs(result) == {("group:ops", "a"): (1, True)}


def test_concurrent_batches_get_unique_gapless_seqs(events_table, atomic_requests):
    def writer(worker):
        table = boto3.session.Session().resource("dynamodb", region_name=REGION).Table(events_table.name)
        store = EventStore(table, RETENTION)
        # Each worker also re-sends one shared id: it must be stored exactly once.
        results = []
        for batch in range(3):
            ids = ["shared"] + [f"w{worker}-{batch}-{n}" for n in range(4)]
            result = store.append_batch([new_event(event_id) for event_id in ids], PUBLISHED)
            assert not result.failed
            results += list(result.stored.items())
        return results

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = [result for batch in pool.map(writer, range(6)) for result in batch]

    created = sorted(found.seq for _, found in results if found.created)
    assert created == list(range(1, 6 * 3 * 4 + 2))  # 72 distinct ids + "shared" once
    assert len({found.seq for (_, event_id), found in results if event_id == "shared"}) == 1
    assert stored_ids(events_table, "user:1")[1] == 73


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


def test_a_delivery_job_reads_back_exactly_the_event_it_refers_to(events_table):
    store = EventStore(events_table, 3600)
    one = NewEvent(
        "all",
        "from:p:e1",
        "t",
        lambda seq, at: json.dumps(
            {"id": "e1", "type": "t", "topic": "all", "seq": seq, "data": {"n": 1}, "occurredAt": at, "publishedAt": at}
        ),
    )
    mine = NewEvent("user:1", "from:p:e1", "t", one.body)
    other = NewEvent("user:2", "from:q:e1", "t", one.body)  # another producer's e1
    store.append_batch([one, mine, other], "2026-01-01T00:00:00.000Z")

    found = store.publication(EventRef("e1", {"all": 1, "user:1": 1}))

    assert (found.id, found.type, found.data, dict(found.seqs)) == ("e1", "t", {"n": 1}, {"all": 1, "user:1": 1})
    assert store.publication(EventRef("e1", {"all": 2})) is None  # no such seq
    assert store.publication(EventRef("e2", {"all": 1})) is None  # another id
    assert store.publication(EventRef("e1", {"all": 1, "user:2": 1})) is None  # two events' items


def test_a_delivery_job_finds_nothing_past_retention(events_table):
    now = [1_800_000_000.0]
    store = EventStore(events_table, 60, clock=lambda: now[0])
    body = json.dumps({"id": "e1", "type": "t", "data": {}, "occurredAt": "x", "publishedAt": "x"})
    store.append_batch([NewEvent("all", "e1", "t", lambda seq, at: body)], "2026-01-01T00:00:00.000Z")
    now[0] += 61

    assert store.publication(EventRef("e1", {"all": 1})) is None


@pytest.mark.parametrize("key", [event_key("from:p:e1"), None])
def test_a_delivery_job_posts_the_key_stored_with_the_event_and_none_for_one_stored_before_keys(events_table, key):
    """Jobs carry references, not keys: the frame's key is the stored one (events stored by the version
    before keys have none, and their frames go out without, as that version's did)."""
    store = EventStore(events_table, 3600)
    head = {"id": "e1", **({"key": key} if key else {})}
    body = json.dumps(
        {**head, "type": "t", "topic": "all", "seq": 1, "data": {}, "occurredAt": "x", "publishedAt": "x"}
    )
    store.append_batch([NewEvent("all", "from:p:e1", "t", lambda seq, at: body)], "2026-01-01T00:00:00.000Z")

    found = store.publication(EventRef("e1", {"all": 1}))

    assert found.key == key
    assert json.loads(found.frame(["all"])).get("key") == key
