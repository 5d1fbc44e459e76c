"""Delivery turns: a topic's batches are posted in seq order across invocations, within a bound."""

import json

import pytest
from realtime.connections.posting import Poster
from realtime.connections.store import ConnectionStore
from realtime.events.delivery import EventDelivery
from realtime.events.models import Publication
from realtime.events.store import POSTED_SEQ, EventStore
from realtime.events.turns import DeliveryTurns

from ..support import FakeManagementClient, client_error


class Clock:
    """Time that moves only when someone sleeps; `on_sleep` runs after each sleep (another invocation's work)."""

    def __init__(self):
        self.now = 0.0
        self.on_sleep = lambda now: None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.on_sleep(self.now)


@pytest.fixture
def store(events_table):
    return EventStore(events_table, 86400)


@pytest.fixture
def clock():
    return Clock()


def turns(store, clock, bound=1.0):
    return DeliveryTurns(store, bound, clock=clock, sleep=clock.sleep)


def test_a_batch_waits_until_the_batch_before_it_has_posted(store, clock):
    store.mark_posted("all", 10)  # posted up to 10: seqs 11-20 are being posted by another invocation
    clock.on_sleep = lambda now: store.mark_posted("all", 20) if now >= 0.3 else None

    report = turns(store, clock).wait({"all": 21})

    assert 300 <= report.waited_ms < 350
    assert report.late == []


def test_a_batch_whose_predecessor_never_posts_goes_after_the_bound_and_says_so(store, clock):
    store.mark_posted("all", 10)

    report = turns(store, clock, bound=0.5).wait({"all": 21, "group:ops": 3})

    assert report.waited_ms == 500
    assert report.late == ["all"]  # group:ops was never marked: nobody to wait for


def test_a_batch_never_waits_more_than_half_the_time_its_invocation_has_left(store, clock):
    store.mark_posted("all", 10)  # the batch before never posts (crashed): only the bound ends the wait

    report = turns(store, clock, bound=5.0).wait({"all": 21}, deadline=clock.now + 2.0)

    assert report.waited_ms == 1000  # not 5,000: it would leave no time to post, and time out again
    assert report.late == ["all"]


def test_nobody_waits_on_a_topic_already_posted_up_to_its_turn_or_never_marked(store, clock, events_table):
    store.mark_posted("all", 20)
    reads = []
    events_table.meta.client.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: reads.append(1))

    report = turns(store, clock).wait({"all": 21, "user:1": 7})

    assert (report.waited_ms, report.late, len(reads)) == (0, [], 1)


def test_a_lower_mark_never_replaces_a_higher_one(store, events_table):
    store.mark_posted("all", 30)
    store.mark_posted("all", 20)  # a batch that posted after the bound, behind a later one

    assert store.posted_through(["all", "user:1"]) == {"all": 30}
    assert events_table.get_item(Key={"topic": "all", "seq": POSTED_SEQ})["Item"]["postedSeq"] == 30


def test_a_mark_that_cannot_be_written_is_logged_not_raised(store, clock, monkeypatch, caplog):
    def throttled(*_args, **_kwargs):
        raise client_error("ProvisionedThroughputExceededException", 400, "UpdateItem")

    monkeypatch.setattr(store, "mark_posted", throttled)

    turns(store, clock).done({"all": 3})

    assert [r.getMessage() for r in caplog.records] == ["Delivery turn not marked"]


def publication(event_id, seqs):
    return Publication(event_id, "t", {}, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z", seqs)


def test_inline_delivery_takes_turns_only_on_topics_it_posts_to_and_marks_them_after_posting(
    store, clock, connections_table
):
    connections = ConnectionStore(connections_table)
    connections.add("c1", "1", ["user:1", "all"], ttl_seconds=600)
    store.mark_posted("all", 4)
    store.mark_posted("group:empty", 1)  # nobody listens there: never waited for
    client = FakeManagementClient()
    marks_when_posting = []
    client.on_post = lambda: marks_when_posting.append(store.posted_through(["all"]).get("all"))
    clock.on_sleep = lambda now: store.mark_posted("all", 6) if now >= 0.1 else None
    delivery = EventDelivery(
        connections=connections,
        poster=Poster(client, 4, on_gone=connections.remove),
        queue=None,
        max_attempts=3,
        page_size=100,
        turns=turns(store, clock),
    )

    report = delivery.deliver_stored(
        [publication("e7", {"all": 7, "group:empty": 9}), publication("e8", {"all": 8, "user:1": 2})]
    )

    assert (report.turn_wait_ms, report.turns_late) == (100, 0)  # waited for 5-6 to be posted
    assert [json.loads(data)["id"] for _, data in client.posts] == ["e7", "e8"]
    assert marks_when_posting == [6, 6]  # not marked before its own posts were made
    assert store.posted_through(["all", "user:1", "group:empty"]) == {"all": 8, "user:1": 2, "group:empty": 1}


def test_a_batch_after_one_this_container_posted_does_not_read_the_mark(store, clock, events_table):
    waiting = turns(store, clock)
    waiting.done({"all": 20})  # this container posted seqs up to 20 and marked them
    reads = []
    events_table.meta.client.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: reads.append(1))

    report = waiting.wait({"all": 21})

    assert (report.waited_ms, report.late, len(reads)) == (0, [], 0)
    store.mark_posted("all", 30)  # another invocation posted 21-30 meanwhile
    assert waiting.wait({"all": 31}).late == []
    assert len(reads) == 1  # past what it marked itself, it reads the mark as before


def test_a_mark_that_failed_is_not_remembered(store, clock, monkeypatch):
    waiting = turns(store, clock, bound=0.1)
    monkeypatch.setattr(store, "mark_posted", lambda topic, seq: (_ for _ in ()).throw(RuntimeError("throttled")))
    waiting.done({"all": 20})
    monkeypatch.undo()
    store.mark_posted("all", 10)

    assert waiting.wait({"all": 21}).late == ["all"]  # the mark says 10: the batch before has not posted


def test_the_batch_next_in_line_reads_the_mark_more_often_than_those_behind_it(store, clock, events_table):
    store.mark_posted("all", 10)
    reads = []
    events_table.meta.client.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **_: reads.append(1))

    turns(store, clock, bound=0.1).wait({"all": 21})  # seqs 11-20 are posting: it goes next
    next_in_line, reads[:] = len(reads), []
    turns(store, clock, bound=0.1).wait({"all": 41})  # 30 seqs ahead of it: several batches

    assert next_in_line >= 20  # every 5 ms over the 100 ms bound
    assert len(reads) <= 7  # every 20 ms
